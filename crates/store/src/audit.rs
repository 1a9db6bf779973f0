//! The audit log of operators' actions (who, what, when, on which practices) and the bulk
//! actions on a filtered set of practices, with their progress.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backend::{Store, on_backend};
use crate::error::StoreError;
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
