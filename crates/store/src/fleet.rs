//! The fleet's figures over time: what each node's counters counted (bookings by outcome,
//! requests answered close to the marketplace's limit, worker restarts, lease moves, freshness
//! buckets), added per node to 5-minute slots so a view over the last day sums every node that
//! shares the database.
//!
//! A node adds the increase of its counters since its last flush to the slot its clock is in
//! ([`Store::add_fleet_counts`]); the fleet view reads the sums over all nodes
//! ([`Store::fleet_counts_since`]); rows past their use are pruned
//! ([`Store::forget_fleet_counts_before`]).

use jiff::{SignedDuration, Timestamp};

use uuid::Uuid;

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::leases::{pg_now, sqlite_now};
use crate::types::{LinkId, instant, micros, opt_instant};

/// The width of one slot: counts are kept per node and per 5 minutes.
pub const FLEET_SLOT: SignedDuration = SignedDuration::from_mins(5);

/// The longest series name accepted.
const MAX_SERIES: usize = 200;

/// The fleet's sum of one series in one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCount {
    /// The slot's start.
    pub slot: Timestamp,
    /// The series, e.g. `bookings.confirmed`.
    pub series: String,
    /// The sum over every node.
    pub value: i64,
}

/// The start of the slot `at` falls in.
pub fn fleet_slot(at: Timestamp) -> Timestamp {
    let width = FLEET_SLOT.as_micros() as i64;
    let start = micros(at).div_euclid(width) * width;
    Timestamp::from_microsecond(start).unwrap_or(at)
}

fn check(node_id: &str, counts: &[(String, i64)]) -> Result<(), StoreError> {
    if node_id.is_empty() || node_id.len() > 128 {
        return Err(StoreError::InvalidInput {
            field: "node_id",
            message: format!("expected 1 to 128 characters, found {}", node_id.len()),
        });
    }
    if let Some((s, _)) = counts
        .iter()
        .find(|(s, _)| s.is_empty() || s.len() > MAX_SERIES)
    {
        return Err(StoreError::InvalidInput {
            field: "series",
            message: format!("expected 1 to {MAX_SERIES} characters, found {}", s.len()),
        });
    }
    Ok(())
}

impl Store {
    /// Add `counts` (series, increase) to `node_id`'s row of each series in the slot `at`
    /// falls in, in one transaction. Zero increases are skipped.
    pub async fn add_fleet_counts(
        &self,
        node_id: &str,
        at: Timestamp,
        counts: &[(String, i64)],
    ) -> Result<(), StoreError> {
        check(node_id, counts)?;
        let slot = micros(fleet_slot(at));
        on_backend!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for (series, value) in counts.iter().filter(|(_, v)| *v != 0) {
                sqlx::query(
                    "INSERT INTO fleet_counts (node_id, slot, series, value) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (node_id, slot, series) \
                     DO UPDATE SET value = fleet_counts.value + excluded.value",
                )
                .bind(node_id.to_owned())
                .bind(slot)
                .bind(series.clone())
                .bind(*value)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every series' sum over all nodes per slot, for the slots starting at or after the slot
    /// `since` falls in; ordered by slot, then series.
    pub async fn fleet_counts_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<FleetCount>, StoreError> {
        let from = micros(fleet_slot(since));
        let rows: Vec<(i64, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT slot, series, CAST(SUM(value) AS BIGINT) FROM fleet_counts \
                 WHERE slot >= $1 GROUP BY slot, series ORDER BY slot, series",
            )
            .bind(from)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(slot, series, value)| {
                Ok(FleetCount {
                    slot: instant("fleet_counts.slot", slot)?,
                    series,
                    value,
                })
            })
            .collect()
    }

    /// How many nodes reported counts in a slot at or after the one `since` falls in.
    pub async fn fleet_nodes_since(&self, since: Timestamp) -> Result<i64, StoreError> {
        let from = micros(fleet_slot(since));
        Ok(on_backend!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(DISTINCT node_id) FROM fleet_counts WHERE slot >= $1")
                .bind(from)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Forget the slots that started before `before`. Returns how many rows went.
    pub async fn forget_fleet_counts_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool| {
            sqlx::query("DELETE FROM fleet_counts WHERE slot < $1")
                .bind(micros(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// What makes an enabled practice unhealthy, for [`Store::practice_health`]: the practice
/// list's reasons that the store holds (the service adds the node-local ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRules {
    /// Availability last published before this (or never) is stale.
    pub stale_before: Timestamp,
    /// A rejected booking among a practice's this-many newest bookings makes it unhealthy.
    pub recent_bookings: u32,
    /// An enabled practice linked before this with no live lease (by the database's clock)
    /// is served by no node.
    pub linked_before: Timestamp,
}

/// Practices by health, counted by the database in one statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Every practice.
    pub total: u64,
    /// Disabled ones.
    pub disabled: u64,
    /// Enabled and unhealthy by [`HealthRules`].
    pub unhealthy: u64,
}

impl HealthCounts {
    /// Enabled and healthy.
    pub fn healthy(&self) -> u64 {
        self.total
            .saturating_sub(self.disabled)
            .saturating_sub(self.unhealthy)
    }
}

/// One link whose state `/metrics` shows: it failed, or it is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingLink {
    /// The link.
    pub link_id: LinkId,
    /// The kind of its last error, if its last step failed.
    pub error_kind: Option<String>,
    /// Enabled, and its last step failed, its consent is withdrawn, or its availability is
    /// stale or was never published.
    pub unhealthy: bool,
}

/// What `/metrics` reads from the store per scrape: the links that failed or are unhealthy
/// (usually few) and the oldest publish among enabled links, not a row per link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkGauges {
    /// The links with a last error or unhealthy, by id.
    pub failing: Vec<FailingLink>,
    /// The oldest last publish among the enabled links that published (none: no such link).
    pub oldest_publish: Option<Timestamp>,
}

/// An enabled link with a rejected booking among its `$2` newest (`created_at` descending, then
/// booking id, as the booking log orders them): fewer than `$2` bookings are newer than it.
macro_rules! rejected_recently {
    () => {
        "EXISTS (SELECT 1 FROM bookings b WHERE b.link_id = l.id AND b.state = 'rejected' \
         AND (SELECT COUNT(*) FROM bookings n WHERE n.link_id = l.id \
              AND (n.created_at > b.created_at \
                   OR (n.created_at = b.created_at AND n.booking_id < b.booking_id))) < $2)"
    };
}

/// The unhealthy test of [`Store::practice_health`] on `links l JOIN sync_state s`; `$1` stale
/// before, `$2` recent bookings, `$3` linked before; `$now` the database's clock.
macro_rules! unhealthy_sql {
    ($now:ident) => {
        concat!(
            "(s.last_error_kind IS NOT NULL OR s.consent = 'withdrawn' \
              OR s.last_publish_at IS NULL OR s.last_publish_at < $1 \
              OR s.health_flags <> '[]' OR ",
            rejected_recently!(),
            " OR (l.created_at < $3 AND NOT EXISTS (SELECT 1 FROM link_leases ls \
                 WHERE ls.link_id = l.id AND ls.expires_at > ",
            $now!(),
            ")))"
        )
    };
}

macro_rules! health_counts_sql {
    ($now:ident) => {
        concat!(
            "SELECT COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN l.enabled = FALSE THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN l.enabled = TRUE AND ",
            unhealthy_sql!($now),
            " THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM links l JOIN sync_state s ON s.link_id = l.id \
             WHERE ($4 IS NULL OR l.id = $4)"
        )
    };
}

/// A failing link's row: id, last error kind, unhealthy (0 or 1).
type FailingRow = (Uuid, Option<String>, i64);

impl Store {
    /// Practices by health now, in one statement: every link, the disabled ones, and the
    /// enabled ones that are unhealthy by `rules` (a last error, consent withdrawn, availability
    /// stale or never published, a health flag, a rejected booking among the recent ones, or
    /// no node serving it). `only` counts that one link (0 or 1 in each figure).
    pub async fn practice_health(
        &self,
        rules: &HealthRules,
        only: Option<LinkId>,
    ) -> Result<HealthCounts, StoreError> {
        let (total, disabled, unhealthy): (i64, i64, i64) = on_backend!(self, |pool| {
            sqlx::query_as(pool.pick(health_counts_sql!(sqlite_now), health_counts_sql!(pg_now)))
                .bind(micros(rules.stale_before))
                .bind(i64::from(rules.recent_bookings))
                .bind(micros(rules.linked_before))
                .bind(only.map(|l| l.0))
                .fetch_one(pool)
                .await?
        });
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(HealthCounts {
            total: n(total),
            disabled: n(disabled),
            unhealthy: n(unhealthy),
        })
    }

    /// What `/metrics` shows of the links, in two statements whatever their number: the links
    /// with a last error or enabled and unhealthy (a last error, consent withdrawn, or
    /// availability published before `stale_before` or never), and the oldest publish among
    /// the enabled links.
    pub async fn link_gauges(&self, stale_before: Timestamp) -> Result<LinkGauges, StoreError> {
        let stale = micros(stale_before);
        let (rows, oldest): (Vec<FailingRow>, Option<i64>) = on_backend!(self, |pool| {
            let rows = sqlx::query_as(
                "SELECT l.id, s.last_error_kind, \
                     CAST(CASE WHEN l.enabled = TRUE AND (s.last_error_kind IS NOT NULL \
                          OR s.consent = 'withdrawn' OR s.last_publish_at IS NULL \
                          OR s.last_publish_at < $1) THEN 1 ELSE 0 END AS BIGINT) \
                     FROM links l JOIN sync_state s ON s.link_id = l.id \
                     WHERE s.last_error_kind IS NOT NULL OR (l.enabled = TRUE AND \
                          (s.consent = 'withdrawn' OR s.last_publish_at IS NULL \
                           OR s.last_publish_at < $1)) \
                     ORDER BY l.id",
            )
            .bind(stale)
            .fetch_all(pool)
            .await?;
            let oldest = sqlx::query_scalar(
                "SELECT MIN(s.last_publish_at) FROM links l \
                     JOIN sync_state s ON s.link_id = l.id WHERE l.enabled = TRUE",
            )
            .fetch_one(pool)
            .await?;
            (rows, oldest)
        });
        Ok(LinkGauges {
            failing: rows
                .into_iter()
                .map(|(id, kind, unhealthy)| FailingLink {
                    link_id: LinkId(id),
                    error_kind: kind,
                    unhealthy: unhealthy != 0,
                })
                .collect(),
            oldest_publish: opt_instant("sync_state.last_publish_at", oldest)?,
        })
    }
}
