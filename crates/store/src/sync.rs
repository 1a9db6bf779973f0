//! Per-link synchronisation state: what happened last, and whether it is healthy.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::leases::{Lease, hold_lease};
use crate::types::{LinkId, instant, micros, opt_instant};

/// The practice's consent to publishing, as last reported by the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Not yet known.
    #[default]
    Unknown,
    /// The practice agreed.
    Granted,
    /// The practice withdrew (or never gave) consent.
    Withdrawn,
}

impl ConsentStatus {
    /// The stored text: `unknown`, `granted` or `withdrawn`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Unknown => "unknown",
            ConsentStatus::Granted => "granted",
            ConsentStatus::Withdrawn => "withdrawn",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "unknown" => Ok(ConsentStatus::Unknown),
            "granted" => Ok(ConsentStatus::Granted),
            "withdrawn" => Ok(ConsentStatus::Withdrawn),
            other => Err(StoreError::corrupt(
                "sync_state.consent",
                format!("unknown status {other:?}"),
            )),
        }
    }
}

impl fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last error a link's sync hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncError {
    /// A stable, machine-readable kind (e.g. `pms_unauthorized`), chosen by the service.
    pub kind: String,
    /// A human explanation.
    pub message: String,
    /// When it happened.
    pub at: Timestamp,
}

/// A link's sync state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// The link.
    pub link_id: LinkId,
    /// Last successful read of the PMS.
    pub last_pms_read_at: Option<Timestamp>,
    /// Last successful publish to the marketplace.
    pub last_publish_at: Option<Timestamp>,
    /// Last poll of the marketplace or PMS change feed.
    pub last_poll_at: Option<Timestamp>,
    /// The last error, until cleared.
    pub last_error: Option<SyncError>,
    /// Opaque change-feed cursor to resume from.
    pub change_cursor: Option<String>,
    /// Consent to publish.
    pub consent: ConsentStatus,
    /// Health flags raised by the service (e.g. `pms_unreachable`); empty when healthy.
    pub health_flags: BTreeSet<String>,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// Changes for [`Store::update_sync_state`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SyncChanges {
    /// Set the last successful PMS read.
    pub last_pms_read_at: Option<Timestamp>,
    /// Set the last successful publish.
    pub last_publish_at: Option<Timestamp>,
    /// Set the last poll.
    pub last_poll_at: Option<Timestamp>,
    /// `Some(Some(e))` records an error, `Some(None)` clears it.
    pub last_error: Option<Option<SyncError>>,
    /// `Some(Some(c))` stores a cursor, `Some(None)` forgets it.
    pub change_cursor: Option<Option<String>>,
    /// Set the consent status.
    pub consent: Option<ConsentStatus>,
    /// Replace the health flags.
    pub health_flags: Option<BTreeSet<String>>,
}

#[derive(sqlx::FromRow)]
struct SyncRow {
    link_id: Uuid,
    last_pms_read_at: Option<i64>,
    last_publish_at: Option<i64>,
    last_poll_at: Option<i64>,
    last_error_kind: Option<String>,
    last_error_message: Option<String>,
    last_error_at: Option<i64>,
    change_cursor: Option<String>,
    consent: String,
    health_flags: String,
    updated_at: i64,
}

macro_rules! select_sync {
    ($rest:literal) => {
        concat!(
            "SELECT link_id, last_pms_read_at, last_publish_at, last_poll_at, last_error_kind, \
             last_error_message, last_error_at, change_cursor, consent, health_flags, updated_at \
             FROM sync_state ",
            $rest
        )
    };
}

impl TryFrom<SyncRow> for SyncState {
    type Error = StoreError;
    fn try_from(r: SyncRow) -> Result<Self, StoreError> {
        let last_error = match (r.last_error_kind, r.last_error_message, r.last_error_at) {
            (Some(kind), Some(message), Some(at)) => Some(SyncError {
                kind,
                message,
                at: instant("sync_state.last_error_at", at)?,
            }),
            _ => None,
        };
        Ok(SyncState {
            link_id: LinkId(r.link_id),
            last_pms_read_at: opt_instant("sync_state.last_pms_read_at", r.last_pms_read_at)?,
            last_publish_at: opt_instant("sync_state.last_publish_at", r.last_publish_at)?,
            last_poll_at: opt_instant("sync_state.last_poll_at", r.last_poll_at)?,
            last_error,
            change_cursor: r.change_cursor,
            consent: ConsentStatus::parse(&r.consent)?,
            health_flags: serde_json::from_str(&r.health_flags)
                .map_err(|e| StoreError::corrupt("sync_state.health_flags", e))?,
            updated_at: instant("sync_state.updated_at", r.updated_at)?,
        })
    }
}

impl Store {
    /// A link's sync state ([`StoreError::LinkNotFound`] if there is no such link).
    pub async fn sync_state(&self, link_id: LinkId) -> Result<SyncState, StoreError> {
        let row: Option<SyncRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_sync!("WHERE link_id = $1"))
                .bind(link_id.0)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::LinkNotFound(link_id))?.try_into()
    }

    /// Every link's sync state (for the console and health checks).
    pub async fn all_sync_states(&self) -> Result<Vec<SyncState>, StoreError> {
        let rows: Vec<SyncRow> = on_backend!(self, |pool| {
            sqlx::query_as(select_sync!("ORDER BY link_id"))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(SyncState::try_from).collect()
    }

    /// Apply `changes` to a link's sync state in one statement and return the new state.
    pub async fn update_sync_state(
        &self,
        lease: &Lease,
        changes: SyncChanges,
    ) -> Result<SyncState, StoreError> {
        let link_id = lease.link_id;
        let set_error = changes.last_error.is_some();
        let error = changes.last_error.flatten();
        let set_cursor = changes.change_cursor.is_some();
        let flags = changes
            .health_flags
            .as_ref()
            .map(|f| serde_json::to_string(f).unwrap_or_else(|_| "[]".into()));
        let n = on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let n = sqlx::query(
                "UPDATE sync_state SET \
                 last_pms_read_at = COALESCE($2, last_pms_read_at), \
                 last_publish_at = COALESCE($3, last_publish_at), \
                 last_poll_at = COALESCE($4, last_poll_at), \
                 last_error_kind = CASE WHEN $5 THEN $6 ELSE last_error_kind END, \
                 last_error_message = CASE WHEN $5 THEN $7 ELSE last_error_message END, \
                 last_error_at = CASE WHEN $5 THEN $8 ELSE last_error_at END, \
                 change_cursor = CASE WHEN $9 THEN $10 ELSE change_cursor END, \
                 consent = COALESCE($11, consent), \
                 health_flags = COALESCE($12, health_flags), \
                 updated_at = $13 \
                 WHERE link_id = $1",
            )
            .bind(link_id.0)
            .bind(changes.last_pms_read_at.map(micros))
            .bind(changes.last_publish_at.map(micros))
            .bind(changes.last_poll_at.map(micros))
            .bind(set_error)
            .bind(error.as_ref().map(|e| e.kind.clone()))
            .bind(error.as_ref().map(|e| e.message.clone()))
            .bind(error.as_ref().map(|e| micros(e.at)))
            .bind(set_cursor)
            .bind(changes.change_cursor.clone().flatten())
            .bind(changes.consent.map(ConsentStatus::as_str))
            .bind(flags.clone())
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        if n == 0 {
            return Err(StoreError::LinkNotFound(link_id));
        }
        self.sync_state(link_id).await
    }
}
