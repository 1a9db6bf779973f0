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
    /// The setup findings of the last whole-horizon PMS read (none before the first).
    pub setup_findings: SetupFindings,
    /// The oldest PMS change seen and not yet published; `None` when nothing waits.
    pub change_pending_since: Option<Timestamp>,
    /// From the last published change to its publish.
    pub last_freshness: Option<jiff::SignedDuration>,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// The setup findings of a PMS read, kept with the sync state so a list of thousands of
/// practices needs no PMS call: counts by severity, and the codes (`stacking-off`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SetupFindings {
    /// Error-level findings.
    pub errors: u32,
    /// Warnings.
    pub warnings: u32,
    /// The distinct codes, sorted.
    pub codes: BTreeSet<String>,
}

impl SetupFindings {
    /// As stored: `,code,code,` (`,` when none), so one `LIKE '%,code,%'` filters by a code.
    pub(crate) fn codes_text(&self) -> String {
        let mut out = String::from(",");
        for c in &self.codes {
            out.push_str(c);
            out.push(',');
        }
        out
    }

    fn parse_codes(text: &str) -> BTreeSet<String> {
        text.split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }
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
    /// Replace the setup findings (after a whole-horizon read).
    pub setup_findings: Option<SetupFindings>,
    /// A PMS change was seen then and is not published yet: kept unless an older one waits.
    pub change_pending_since: Option<Timestamp>,
    /// The practice's name as the PMS reports it (stored on the link when it differs).
    pub pms_practice_name: Option<String>,
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
    setup_errors: i64,
    setup_warnings: i64,
    setup_codes: String,
    change_pending_since: Option<i64>,
    last_freshness_us: Option<i64>,
    updated_at: i64,
}

macro_rules! select_sync {
    ($rest:literal) => {
        concat!(
            "SELECT link_id, last_pms_read_at, last_publish_at, last_poll_at, last_error_kind, \
             last_error_message, last_error_at, change_cursor, consent, health_flags, setup_errors, \
             setup_warnings, setup_codes, change_pending_since, last_freshness_us, updated_at \
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
            setup_findings: SetupFindings {
                errors: u32::try_from(r.setup_errors).unwrap_or(0),
                warnings: u32::try_from(r.setup_warnings).unwrap_or(0),
                codes: SetupFindings::parse_codes(&r.setup_codes),
            },
            change_pending_since: opt_instant(
                "sync_state.change_pending_since",
                r.change_pending_since,
            )?,
            last_freshness: r.last_freshness_us.map(jiff::SignedDuration::from_micros),
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
                 updated_at = $13, \
                 setup_errors = COALESCE($14, setup_errors), \
                 setup_warnings = COALESCE($15, setup_warnings), \
                 setup_codes = COALESCE($16, setup_codes), \
                 change_pending_since = COALESCE(change_pending_since, $17) \
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
            .bind(changes.setup_findings.as_ref().map(|f| i64::from(f.errors)))
            .bind(
                changes
                    .setup_findings
                    .as_ref()
                    .map(|f| i64::from(f.warnings)),
            )
            .bind(
                changes
                    .setup_findings
                    .as_ref()
                    .map(SetupFindings::codes_text),
            )
            .bind(changes.change_pending_since.map(micros))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if let Some(name) = &changes.pms_practice_name {
                sqlx::query(
                    "UPDATE links SET pms_practice_name = $2 WHERE id = $1 \
                     AND (pms_practice_name IS NULL OR pms_practice_name <> $2)",
                )
                .bind(link_id.0)
                .bind(name.clone())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            n
        });
        if n == 0 {
            return Err(StoreError::LinkNotFound(link_id));
        }
        self.sync_state(link_id).await
    }

    /// A PMS change published at `published_at`: clears what waited, records the time from the
    /// oldest change waiting (or `change_at`, when none was stored) to the publish as the
    /// link's last freshness and as a sample of its day, and forgets samples older than a day.
    /// Returns the freshness recorded.
    pub async fn record_freshness(
        &self,
        lease: &Lease,
        change_at: Timestamp,
        published_at: Timestamp,
    ) -> Result<jiff::SignedDuration, StoreError> {
        let link_id = lease.link_id;
        let day_ago = micros(published_at) - DAY_MICROS;
        let freshness = on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            hold_lease!(pool, tx, lease);
            let pending: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT change_pending_since FROM sync_state WHERE link_id = $1",
            )
            .bind(link_id.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(pending) = pending else {
                return Err(StoreError::LinkNotFound(link_id));
            };
            let since = pending.map_or(micros(change_at), |p| p.min(micros(change_at)));
            let freshness = (micros(published_at) - since).max(0);
            sqlx::query(
                "UPDATE sync_state SET change_pending_since = NULL, last_freshness_us = $2 \
                 WHERE link_id = $1",
            )
            .bind(link_id.0)
            .bind(freshness)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO freshness_samples (link_id, published_at, freshness_us) \
                 VALUES ($1, $2, $3)",
            )
            .bind(link_id.0)
            .bind(micros(published_at))
            .bind(freshness)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM freshness_samples WHERE link_id = $1 AND published_at < $2")
                .bind(link_id.0)
                .bind(day_ago)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            freshness
        });
        Ok(jiff::SignedDuration::from_micros(freshness))
    }

    /// The link's freshness over the day before `now`: how many changes were published and the
    /// 99th percentile (nearest rank) of their freshness; `None` when none was.
    pub async fn freshness_p99(
        &self,
        link_id: LinkId,
        now: Timestamp,
    ) -> Result<Option<(u64, jiff::SignedDuration)>, StoreError> {
        let samples: Vec<i64> = on_backend!(self, |pool| {
            sqlx::query_scalar(
                "SELECT freshness_us FROM freshness_samples WHERE link_id = $1 \
                 AND published_at >= $2 ORDER BY freshness_us",
            )
            .bind(link_id.0)
            .bind(micros(now) - DAY_MICROS)
            .fetch_all(pool)
            .await?
        });
        Ok(nearest_rank(&samples, 0.99)
            .map(|v| (samples.len() as u64, jiff::SignedDuration::from_micros(v))))
    }
}

const DAY_MICROS: i64 = 86_400_000_000;

/// The nearest-rank percentile `q` (0 < q ≤ 1) of sorted `values`.
fn nearest_rank(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_99th_percentile_is_the_nearest_rank() {
        assert_eq!(nearest_rank(&[], 0.99), None);
        assert_eq!(nearest_rank(&[5], 0.99), Some(5));
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 0.99), Some(99));
        let two_hundred: Vec<i64> = (1..=200).collect();
        assert_eq!(nearest_rank(&two_hundred, 0.99), Some(198));
    }

    #[test]
    fn codes_are_stored_between_commas_and_read_back() {
        let f = SetupFindings {
            errors: 1,
            warnings: 2,
            codes: ["stacking-off".to_owned(), "duration-mismatch".to_owned()].into(),
        };
        assert_eq!(f.codes_text(), ",duration-mismatch,stacking-off,");
        assert_eq!(SetupFindings::parse_codes(&f.codes_text()), f.codes);
        assert_eq!(SetupFindings::default().codes_text(), ",");
        assert!(SetupFindings::parse_codes(",").is_empty());
    }
}
