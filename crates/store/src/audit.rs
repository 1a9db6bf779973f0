//! The audit log of operators' actions (who, what, when, on which practices) and the bulk
//! actions on a filtered set of practices, with their progress.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::leases::{pg_now, sqlite_now};
use crate::types::{LinkId, instant, micros, opt_instant};

/// What [`Store::record_audit`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Who: the console session or the API token (never a secret).
    pub actor: String,
    /// What: `link.create`, `link.update`, `link.resync`, `bulk.disable`, …
    pub action: String,
    /// On which practices.
    pub links: Vec<LinkId>,
    /// In words: the fields changed, the filter of a bulk action.
    pub detail: String,
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its place in the log (increasing).
    pub seq: i64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On which practices.
    pub links: Vec<LinkId>,
    /// In words.
    pub detail: String,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    links: String,
    detail: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEntry {
            seq: r.seq,
            at: instant("audit_log.at", r.at)?,
            actor: r.actor,
            action: r.action,
            links: serde_json::from_str(&r.links)
                .map_err(|e| StoreError::corrupt("audit_log.links", e))?,
            detail: r.detail,
        })
    }
}

/// The id of a bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BulkId(pub Uuid);

impl fmt::Display for BulkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for BulkId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(BulkId)
            .map_err(|e| StoreError::InvalidInput {
                field: "bulk id",
                message: format!("expected a UUID, found {s:?} ({e})"),
            })
    }
}

/// A bulk action and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkAction {
    /// Its id.
    pub id: BulkId,
    /// What it does to each practice (`resync_config`, `disable`, …).
    pub action: String,
    /// The list's filter it applies to, in words.
    pub filter: String,
    /// Who asked.
    pub actor: String,
    /// How many practices it applies to.
    pub total: u64,
    /// How many are done (succeeded or failed).
    pub done: u64,
    /// How many of those failed.
    pub failed: u64,
    /// The first failures, one line each (practice and why).
    pub failures: Vec<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
}

/// At most this many failures are kept per bulk action.
pub const BULK_FAILURES_KEPT: usize = 50;

#[derive(sqlx::FromRow)]
struct BulkRow {
    id: Uuid,
    action: String,
    filter: String,
    actor: String,
    total: i64,
    done: i64,
    failed: i64,
    failures: String,
    started_at: i64,
    finished_at: Option<i64>,
}

impl TryFrom<BulkRow> for BulkAction {
    type Error = StoreError;
    fn try_from(r: BulkRow) -> Result<Self, StoreError> {
        Ok(BulkAction {
            id: BulkId(r.id),
            action: r.action,
            filter: r.filter,
            actor: r.actor,
            total: u64::try_from(r.total).unwrap_or(0),
            done: u64::try_from(r.done).unwrap_or(0),
            failed: u64::try_from(r.failed).unwrap_or(0),
            failures: serde_json::from_str(&r.failures)
                .map_err(|e| StoreError::corrupt("bulk_actions.failures", e))?,
            started_at: instant("bulk_actions.started_at", r.started_at)?,
            finished_at: opt_instant("bulk_actions.finished_at", r.finished_at)?,
        })
    }
}

impl Store {
    /// Record an operator's action at `at`.
    pub async fn record_audit(
        &self,
        entry: &NewAuditEntry,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let links = serde_json::to_string(&entry.links)
            .map_err(|e| StoreError::corrupt("audit_log.links", e))?;
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, links, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(micros(at))
            .bind(entry.actor.clone())
            .bind(entry.action.clone())
            .bind(links.clone())
            .bind(entry.detail.clone())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The audit log, newest first: at most `limit` entries before `before` (a `seq`), of one
    /// link's when `link` is given.
    pub async fn audit_log(
        &self,
        link: Option<LinkId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let pattern = link.map_or_else(|| "%".to_owned(), |l| format!("%\"{l}\"%"));
        let rows: Vec<AuditRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, at, actor, action, links, detail FROM audit_log \
                 WHERE seq < $1 AND links LIKE $2 ORDER BY seq DESC LIMIT $3",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(pattern.clone())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(AuditEntry::try_from).collect()
    }

    /// Start a bulk action over `total` practices.
    pub async fn create_bulk(
        &self,
        action: &str,
        filter: &str,
        actor: &str,
        total: u64,
        now: Timestamp,
    ) -> Result<BulkAction, StoreError> {
        let id = BulkId(Uuid::now_v7());
        on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO bulk_actions (id, action, filter, actor, total, started_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.0)
            .bind(action.to_owned())
            .bind(filter.to_owned())
            .bind(actor.to_owned())
            .bind(i64::try_from(total).unwrap_or(i64::MAX))
            .bind(micros(now))
            .execute(pool)
            .await?;
        });
        self.bulk(id).await?.ok_or(StoreError::InvalidInput {
            field: "bulk id",
            message: format!("bulk action {id} vanished after it was created"),
        })
    }

    /// Record a bulk action's progress: `done` of its practices so far, `failed` of them, the
    /// failures kept (at most [`BULK_FAILURES_KEPT`]) and, at the end, when it finished.
    pub async fn update_bulk(
        &self,
        id: BulkId,
        done: u64,
        failed: u64,
        failures: &[String],
        finished_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let kept = &failures[..failures.len().min(BULK_FAILURES_KEPT)];
        let failures = serde_json::to_string(kept)
            .map_err(|e| StoreError::corrupt("bulk_actions.failures", e))?;
        on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE bulk_actions SET done = $2, failed = $3, failures = $4, \
                 finished_at = $5 WHERE id = $1",
            )
            .bind(id.0)
            .bind(i64::try_from(done).unwrap_or(i64::MAX))
            .bind(i64::try_from(failed).unwrap_or(i64::MAX))
            .bind(failures.clone())
            .bind(finished_at.map(micros))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A bulk action, if there is one with this id.
    pub async fn bulk(&self, id: BulkId) -> Result<Option<BulkAction>, StoreError> {
        let row: Option<BulkRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT id, action, filter, actor, total, done, failed, failures, started_at, \
                 finished_at FROM bulk_actions WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(pool)
            .await?
        });
        row.map(BulkAction::try_from).transpose()
    }
}

/// One practice's part of a bulk resync: asked, taken by the node that holds the practice's
/// lease (which woke its worker), then done or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PracticeResync {
    /// The bulk action.
    pub bulk_id: BulkId,
    /// The practice's link.
    pub link_id: LinkId,
    /// The practice's name (the PMS's, else the marketplace's), if known.
    pub name: Option<String>,
    /// The marketplace practice id.
    pub practice_id: String,
    /// Whether the link is enabled now.
    pub enabled: bool,
    /// `config` or `availability`.
    pub what: String,
    /// When the bulk action asked for it.
    pub requested_at: Timestamp,
    /// The node that last took it (woke the link's worker).
    pub node_id: Option<String>,
    /// When that node took it.
    pub taken_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Why it failed (none when done).
    pub error: Option<String>,
    /// (resource, date) pairs sent, as the worker reported them.
    pub sent_days: Option<u64>,
    /// (resource, date) pairs in the horizon.
    pub total_days: Option<u64>,
}

/// How one practice's resync ended, for [`Store::finish_resyncs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncEnd {
    /// The bulk action.
    pub bulk: BulkId,
    /// The practice's link.
    pub link: LinkId,
    /// Why it failed; none when done.
    pub error: Option<String>,
    /// Done: (resource, date) pairs sent, and in the horizon.
    pub days: Option<(u64, u64)>,
}

/// What a disabled practice's resync request ends with.
pub const RESYNC_DISABLED: &str = "the link is disabled: enable it first";

#[derive(sqlx::FromRow)]
struct ResyncRow {
    bulk_id: Uuid,
    link_id: Uuid,
    name: Option<String>,
    practice_id: String,
    enabled: bool,
    what: String,
    requested_at: i64,
    node_id: Option<String>,
    taken_at: Option<i64>,
    finished_at: Option<i64>,
    error: Option<String>,
    sent_days: Option<i64>,
    total_days: Option<i64>,
}

impl TryFrom<ResyncRow> for PracticeResync {
    type Error = StoreError;
    fn try_from(r: ResyncRow) -> Result<Self, StoreError> {
        Ok(PracticeResync {
            bulk_id: BulkId(r.bulk_id),
            link_id: LinkId(r.link_id),
            name: r.name,
            practice_id: r.practice_id,
            enabled: r.enabled,
            what: r.what,
            requested_at: instant("resync_requests.requested_at", r.requested_at)?,
            node_id: r.node_id,
            taken_at: opt_instant("resync_requests.taken_at", r.taken_at)?,
            finished_at: opt_instant("resync_requests.finished_at", r.finished_at)?,
            error: r.error,
            sent_days: r.sent_days.and_then(|n| u64::try_from(n).ok()),
            total_days: r.total_days.and_then(|n| u64::try_from(n).ok()),
        })
    }
}

macro_rules! resync_select {
    ($rest:literal) => {
        concat!(
            "SELECT r.bulk_id, r.link_id, \
             COALESCE(l.pms_practice_name, l.market_practice_name) AS name, \
             l.market_practice_id AS practice_id, l.enabled, r.what, r.requested_at, r.node_id, \
             r.taken_at, r.finished_at, r.error, r.sent_days, r.total_days \
             FROM resync_requests r JOIN links l ON l.id = r.link_id ",
            $rest
        )
    };
}

/// Bring a bulk resync's progress up to date from its practices' rows, in `tx`: done (the
/// total less the open ones), failed, the first failures, and when the last one ended.
macro_rules! summarise_resyncs {
    ($tx:expr, $bulk:expr, $at:expr) => {{
        let (open, failed): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN finished_at IS NULL THEN 1 ELSE 0 END), 0) \
                 AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM resync_requests WHERE bulk_id = $1",
        )
        .bind($bulk.0)
        .fetch_one(&mut *$tx)
        .await?;
        let failures: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT link_id, error FROM resync_requests \
             WHERE bulk_id = $1 AND error IS NOT NULL ORDER BY finished_at, link_id LIMIT $2",
        )
        .bind($bulk.0)
        .bind(BULK_FAILURES_KEPT as i64)
        .fetch_all(&mut *$tx)
        .await?;
        let failures: Vec<String> = failures
            .into_iter()
            .map(|(link, e)| format!("{link}: {e}"))
            .collect();
        let failures = serde_json::to_string(&failures)
            .map_err(|e| StoreError::corrupt("bulk_actions.failures", e))?;
        sqlx::query(
            "UPDATE bulk_actions SET done = total - $2, failed = $3, failures = $4, \
             finished_at = COALESCE(finished_at, $5) WHERE id = $1",
        )
        .bind($bulk.0)
        .bind(open)
        .bind(failed)
        .bind(failures)
        .bind((open == 0).then(|| micros($at)))
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// Ask for a resync (`what`: `config` or `availability`) of each of `links` as part of the
    /// bulk action `bulk`, at `at`, in one transaction. A disabled practice's request fails at
    /// once; the others wait for the node that holds their lease
    /// ([`Store::open_resyncs`]).
    pub async fn request_resyncs(
        &self,
        bulk: BulkId,
        what: &str,
        links: &[LinkId],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if !matches!(what, "config" | "availability") {
            return Err(StoreError::InvalidInput {
                field: "what",
                message: format!("expected config or availability, found {what:?}"),
            });
        }
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for link in links {
                sqlx::query(
                    "INSERT INTO resync_requests \
                     (bulk_id, link_id, what, requested_at, finished_at, error) \
                     SELECT $1, l.id, $3, $4, \
                     CASE WHEN l.enabled = TRUE THEN NULL ELSE $4 END, \
                     CASE WHEN l.enabled = TRUE THEN NULL ELSE $5 END \
                     FROM links l WHERE l.id = $2",
                )
                .bind(bulk.0)
                .bind(link.0)
                .bind(what.to_owned())
                .bind(micros(at))
                .bind(RESYNC_DISABLED.to_owned())
                .execute(&mut *tx)
                .await?;
            }
            summarise_resyncs!(tx, bulk, at);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The open resync requests of the practices whose lease `node_id` holds now (by the
    /// database's clock), by link, oldest first.
    pub async fn open_resyncs(&self, node_id: &str) -> Result<Vec<PracticeResync>, StoreError> {
        let rows: Vec<ResyncRow> = on_backend!(self, |pool| {
            sqlx::query_as(pool.pick(
                concat!(
                    resync_select!(
                        "JOIN link_leases ls ON ls.link_id = r.link_id \
                         WHERE r.finished_at IS NULL AND ls.node_id = $1 AND ls.expires_at > "
                    ),
                    sqlite_now!(),
                    " ORDER BY r.link_id, r.requested_at, r.bulk_id"
                ),
                concat!(
                    resync_select!(
                        "JOIN link_leases ls ON ls.link_id = r.link_id \
                         WHERE r.finished_at IS NULL AND ls.node_id = $1 AND ls.expires_at > "
                    ),
                    pg_now!(),
                    " ORDER BY r.link_id, r.requested_at, r.bulk_id"
                ),
            ))
            .bind(node_id.to_owned())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(PracticeResync::try_from).collect()
    }

    /// `node_id` woke these practices' workers for these requests, each at its instant, in one
    /// transaction. Returns how many were still open.
    pub async fn take_resyncs(
        &self,
        node_id: &str,
        taken: &[(BulkId, LinkId, Timestamp)],
    ) -> Result<u64, StoreError> {
        if taken.is_empty() {
            return Ok(0);
        }
        Ok(on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut n = 0;
            for (bulk, link, at) in taken {
                n += sqlx::query(
                    "UPDATE resync_requests SET node_id = $3, taken_at = $4 \
                     WHERE bulk_id = $1 AND link_id = $2 AND finished_at IS NULL",
                )
                .bind(bulk.0)
                .bind(link.0)
                .bind(node_id.to_owned())
                .bind(micros(*at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            n
        }))
    }

    /// These practices' resyncs ended at `at`, in one transaction: each done (`error` none,
    /// with the days sent of the horizon's) or failed. Each bulk action concerned has its
    /// progress brought up to date once, and is marked finished with its last practice.
    /// Returns how many were still open.
    pub async fn finish_resyncs(
        &self,
        at: Timestamp,
        ended: &[ResyncEnd],
    ) -> Result<u64, StoreError> {
        if ended.is_empty() {
            return Ok(0);
        }
        let bulks: std::collections::BTreeSet<Uuid> = ended.iter().map(|e| e.bulk.0).collect();
        Ok(on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut n = 0;
            for e in ended {
                n += sqlx::query(
                    "UPDATE resync_requests SET finished_at = $3, error = $4, sent_days = $5, \
                     total_days = $6 WHERE bulk_id = $1 AND link_id = $2 AND finished_at IS NULL",
                )
                .bind(e.bulk.0)
                .bind(e.link.0)
                .bind(micros(at))
                .bind(e.error.clone())
                .bind(e.days.map(|(s, _)| i64::try_from(s).unwrap_or(i64::MAX)))
                .bind(e.days.map(|(_, t)| i64::try_from(t).unwrap_or(i64::MAX)))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            for bulk in &bulks {
                summarise_resyncs!(tx, BulkId(*bulk), at);
            }
            tx.commit().await?;
            n
        }))
    }

    /// A bulk resync's practices, at most `limit`: the open ones first (oldest first), then
    /// the failed, then the done.
    pub async fn bulk_resyncs(
        &self,
        bulk: BulkId,
        limit: u32,
    ) -> Result<Vec<PracticeResync>, StoreError> {
        let rows: Vec<ResyncRow> = on_backend!(self, |pool| {
            sqlx::query_as(resync_select!(
                "WHERE r.bulk_id = $1 ORDER BY CASE WHEN r.finished_at IS NULL THEN 0 \
                 WHEN r.error IS NOT NULL THEN 1 ELSE 2 END, r.requested_at, r.link_id LIMIT $2"
            ))
            .bind(bulk.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(PracticeResync::try_from).collect()
    }
}
