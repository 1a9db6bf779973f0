//! The marketplace request log and webhook payload de-duplication. Both are idempotent: a
//! duplicated or late delivery changes nothing.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::leases::{Lease, hold_lease};
use crate::types::{LinkId, instant, micros, opt_instant};

/// Where a marketplace request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Recorded, not yet answered.
    Received,
    /// Answered; `outcome` says how.
    Handled,
}

impl RequestState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Received => "received",
            RequestState::Handled => "handled",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "received" => Ok(RequestState::Received),
            "handled" => Ok(RequestState::Handled),
            other => Err(StoreError::corrupt(
                "market_requests.state",
                format!("unknown state {other:?}"),
            )),
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request as first received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMarketRequest {
    /// The marketplace's id for the request (the idempotency key).
    pub request_id: String,
    /// What kind of request (e.g. `booking`, `cancellation`), as named by the service.
    pub kind: String,
    /// The link it is for, when known.
    pub link_id: Option<LinkId>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// A logged marketplace request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketRequest {
    /// The marketplace's id for the request.
    pub request_id: String,
    /// What kind of request.
    pub kind: String,
    /// The link it is for, when known.
    pub link_id: Option<LinkId>,
    /// When it first arrived.
    pub received_at: Timestamp,
    /// Where it is.
    pub state: RequestState,
    /// When it was answered.
    pub handled_at: Option<Timestamp>,
    /// How it was answered (e.g. `accepted`, `rejected`).
    pub outcome: Option<String>,
    /// Human detail for the console.
    pub detail: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    request_id: String,
    kind: String,
    link_id: Option<Uuid>,
    received_at: i64,
    state: String,
    handled_at: Option<i64>,
    outcome: Option<String>,
    detail: Option<String>,
}

macro_rules! select_requests {
    ($rest:literal) => {
        concat!(
            "SELECT request_id, kind, link_id, received_at, state, handled_at, outcome, detail \
             FROM market_requests ",
            $rest
        )
    };
}

impl TryFrom<RequestRow> for MarketRequest {
    type Error = StoreError;
    fn try_from(r: RequestRow) -> Result<Self, StoreError> {
        Ok(MarketRequest {
            request_id: r.request_id,
            kind: r.kind,
            link_id: r.link_id.map(LinkId),
            received_at: instant("market_requests.received_at", r.received_at)?,
            state: RequestState::parse(&r.state)?,
            handled_at: opt_instant("market_requests.handled_at", r.handled_at)?,
            outcome: r.outcome,
            detail: r.detail,
        })
    }
}

fn check_id(field: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > 256 {
        return Err(StoreError::InvalidInput {
            field,
            message: format!(
                "expected 1 to 256 characters, found {} characters",
                id.len()
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Log a request unless its id was already logged. Returns `true` if this call recorded it
    /// (first delivery), `false` for a duplicate, which changes nothing.
    pub async fn record_request(
        &self,
        lease: &Lease,
        request: &NewMarketRequest,
    ) -> Result<bool, StoreError> {
        check_id("request_id", &request.request_id)?;
        let n = on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "INSERT INTO market_requests (request_id, kind, link_id, received_at, state) \
                 VALUES ($1, $2, $3, $4, 'received') ON CONFLICT (request_id) DO NOTHING",
            )
            .bind(request.request_id.clone())
            .bind(request.kind.clone())
            .bind(request.link_id.map(|l| l.0))
            .bind(micros(request.received_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// Mark a received request handled with its outcome. Compare-and-set: returns `true` if
    /// this call moved it from `received`; `false` if it was already handled (or unknown), in
    /// which case nothing changes.
    pub async fn finish_request(
        &self,
        lease: &Lease,
        request_id: &str,
        outcome: &str,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE market_requests SET state = 'handled', handled_at = $2, outcome = $3, \
                 detail = $4 WHERE request_id = $1 AND state = 'received'",
            )
            .bind(request_id.to_owned())
            .bind(micros(at))
            .bind(outcome.to_owned())
            .bind(detail.map(str::to_owned))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// One logged request.
    pub async fn market_request(
        &self,
        request_id: &str,
    ) -> Result<Option<MarketRequest>, StoreError> {
        let row: Option<RequestRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_requests!("WHERE request_id = $1"))
                .bind(request_id.to_owned())
                .fetch_optional(pool)
                .await?
        });
        row.map(MarketRequest::try_from).transpose()
    }

    /// The most recent requests, newest first; for one link or all.
    pub async fn recent_requests(
        &self,
        link_id: Option<LinkId>,
        limit: u32,
    ) -> Result<Vec<MarketRequest>, StoreError> {
        let rows: Vec<RequestRow> = on_backend!(self, |pool| {
            match link_id {
                Some(link) => {
                    sqlx::query_as(select_requests!(
                        "WHERE link_id = $1 ORDER BY received_at DESC, request_id LIMIT $2"
                    ))
                    .bind(link.0)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query_as(select_requests!(
                        "ORDER BY received_at DESC, request_id LIMIT $1"
                    ))
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?
                }
            }
        });
        rows.into_iter().map(MarketRequest::try_from).collect()
    }

    /// Remember a webhook payload id. Returns `true` the first time, `false` for a duplicate
    /// delivery (which the caller should then ignore).
    pub async fn mark_payload_seen(
        &self,
        payload_id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        check_id("payload_id", payload_id)?;
        let n = on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO seen_payloads (payload_id, received_at) VALUES ($1, $2) \
                 ON CONFLICT (payload_id) DO NOTHING",
            )
            .bind(payload_id.to_owned())
            .bind(micros(at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Forget payload ids received before `before` (past the marketplace's redelivery window).
    pub async fn forget_payloads_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            sqlx::query("DELETE FROM seen_payloads WHERE received_at < $1")
                .bind(micros(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
