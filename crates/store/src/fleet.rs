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

use crate::backend::{Pool, Store, on_backend};
use crate::error::StoreError;
use crate::types::{instant, micros};

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
