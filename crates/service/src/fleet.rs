//! The fleet's figures over the last 24 hours, summed over every node that shares the database:
//! practices by health, bookings per hour by outcome, freshness p50/p99, requests answered close
//! to the marketplace's ten minutes, worker restarts and lease moves. The console's fleet view
//! (`/console/fleet`) and `GET /api/fleet` show the same [`FleetView`].
//!
//! Each node flushes the increase of its counters ([`crate::metrics::Metrics::fleet_totals`])
//! every [`FLUSH_EVERY`] into the store's 5-minute slots, stamped by its own clock
//! ([`Ctx::now`]), and prunes slots older than [`KEEP`]. The view reads the sums.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use slotbridge_store::{FleetCount, StoreError};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::admin::{self, AdminError};
use crate::ctx::Ctx;

/// How often a node adds its counters' increase to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// How long the store keeps the fleet's slots.
pub const KEEP: SignedDuration = SignedDuration::from_hours(48);

/// The hours the view covers.
pub const HOURS: usize = 24;

/// Add what this node counted since its last flush to the store, in the slot of `ctx.now()`.
/// Returns how many series changed. On a store failure nothing is marked flushed, so the next
/// flush adds it.
pub async fn flush(ctx: &Ctx) -> Result<usize, StoreError> {
    let mut flushed = ctx.metrics.flushed.lock().await;
    let totals = ctx.metrics.fleet_totals();
    let increases: Vec<(String, i64)> = totals
        .iter()
        .filter_map(|(series, total)| {
            let before = flushed.get(series).copied().unwrap_or(0);
            let up = total.saturating_sub(before);
            (up > 0).then(|| (series.clone(), i64::try_from(up).unwrap_or(i64::MAX)))
        })
        .collect();
    if increases.is_empty() {
        return Ok(0);
    }
    ctx.store
        .add_fleet_counts(&ctx.settings.node_id, ctx.now(), &increases)
        .await?;
    *flushed = totals;
    Ok(increases.len())
}

/// Forget the slots older than [`KEEP`] (every node does it; the delete is idempotent).
pub async fn prune(ctx: &Ctx) -> Result<u64, StoreError> {
    let before = ctx.now().checked_sub(KEEP).unwrap_or(Timestamp::MIN);
    ctx.store.forget_fleet_counts_before(before).await
}

/// Flush every [`FLUSH_EVERY`] and prune every hour until `cancel`; then flush once more.
pub async fn run(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => break,
        }
        if let Err(e) = flush(&ctx).await {
            tracing::warn!(error = %e, "flushing the fleet counters failed; added at the next flush");
        }
        if ticks.is_multiple_of(60)
            && let Err(e) = prune(&ctx).await
        {
            tracing::warn!(error = %e, "pruning the fleet counters failed; retried later");
        }
        ticks += 1;
    }
    if let Err(e) = flush(&ctx).await {
        tracing::warn!(error = %e, "the last flush of the fleet counters failed");
    }
}

/// Practices by health now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PracticesByHealth {
    /// Every linked practice.
    pub total: u64,
    /// Enabled and healthy.
    pub healthy: u64,
    /// Enabled and unhealthy (see `PracticeSummary.unhealthy`).
    pub unhealthy: u64,
    /// Disabled.
    pub disabled: u64,
}

/// The fleet's figures of one hour (or of the whole window, in `FleetView.totals`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct FleetFigures {
    /// The hour's start (RFC 3339); the window's start in the totals.
    pub start: String,
    /// Bookings inserted into the diary and confirmed.
    pub confirmed: u64,
    /// Bookings rejected before the marketplace's auto-confirm.
    pub rejected: u64,
    /// Bookings the marketplace auto-confirmed that were then rejected late: not in the diary.
    pub not_in_diary: u64,
    /// Bookings in the diary whose confirmation the marketplace no longer took.
    pub gone: u64,
    /// Marketplace requests answered (bookings, booking updates).
    pub requests_answered: u64,
    /// Of those, answered 8 minutes or more after the marketplace raised them (its limit is 10).
    pub requests_near_limit: u64,
    /// Failed link workers restarted.
    pub worker_restarts: u64,
    /// Leases taken by a node from an earlier holder.
    pub leases_taken: u64,
    /// Leases a node found were no longer its own.
    pub leases_lost: u64,
    /// Changes published (freshness observations).
    pub publishes: u64,
    /// Median time from a PMS change to its publish, in seconds (an upper bound: the bucket's
    /// bound); none without a publish.
    pub freshness_p50_seconds: Option<f64>,
    /// 99th percentile of the same.
    pub freshness_p99_seconds: Option<f64>,
}

/// The fleet over the last 24 hours, summed over every node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct FleetView {
    /// When the figures were read (RFC 3339, the node's clock).
    pub at: String,
    /// Nodes that reported in the window.
    pub nodes_reporting: u64,
    /// Practices by health now.
    pub practices: PracticesByHealth,
    /// The 24 hours, oldest first; the last is the hour in progress.
    pub hours: Vec<FleetFigures>,
    /// The whole window.
    pub totals: FleetFigures,
}

/// The start of the hour `t` falls in (UTC).
fn hour_of(t: Timestamp) -> Timestamp {
    let s = t.as_second().div_euclid(3600) * 3600;
    Timestamp::from_second(s).unwrap_or(t)
}

/// Freshness buckets: (upper bound, cumulative count) ascending, from `freshness.le.<bound>`.
type Buckets = BTreeMap<String, u64>;

/// The smallest bucket bound at or below which `q` of the observations fall; the largest bound
/// when they fall beyond it (as Prometheus' `histogram_quantile` answers).
fn quantile(buckets: &Buckets, count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let need = (q * count as f64).ceil() as u64;
    let mut bounds: Vec<(f64, u64)> = buckets
        .iter()
        .filter_map(|(le, c)| Some((le.parse::<f64>().ok()?, *c)))
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    bounds
        .iter()
        .find(|(_, c)| *c >= need)
        .or(bounds.last())
        .map(|(le, _)| *le)
}

#[derive(Default)]
struct Acc {
    figures: FleetFigures,
    freshness: Buckets,
}

impl Acc {
    fn add(&mut self, series: &str, value: i64) {
        let v = u64::try_from(value).unwrap_or(0);
        let f = &mut self.figures;
        match series {
            "bookings.confirmed" => f.confirmed += v,
            "bookings.rejected" => f.rejected += v,
            "bookings.not_in_diary" => f.not_in_diary += v,
            "bookings.gone" => f.gone += v,
            "requests.answered" => f.requests_answered += v,
            "requests.near_limit" => f.requests_near_limit += v,
            "workers.restarts" => f.worker_restarts += v,
            "leases.taken" => f.leases_taken += v,
            "leases.lost" => f.leases_lost += v,
            "freshness.count" => f.publishes += v,
            other => {
                if let Some(le) = other.strip_prefix("freshness.le.") {
                    *self.freshness.entry(le.to_owned()).or_default() += v;
                }
            }
        }
    }

    fn finish(mut self, start: Timestamp) -> FleetFigures {
        self.figures.start = start.to_string();
        let n = self.figures.publishes;
        self.figures.freshness_p50_seconds = quantile(&self.freshness, n, 0.5);
        self.figures.freshness_p99_seconds = quantile(&self.freshness, n, 0.99);
        self.figures
    }
}

/// The 24 hours ending with the hour `now` is in, from the store's slot sums.
pub fn figures(counts: &[FleetCount], now: Timestamp) -> (Vec<FleetFigures>, FleetFigures) {
    let last = hour_of(now);
    let first = last
        .checked_sub(SignedDuration::from_hours(HOURS as i64 - 1))
        .unwrap_or(last);
    let mut hours: Vec<Acc> = (0..HOURS).map(|_| Acc::default()).collect();
    let mut total = Acc::default();
    for c in counts.iter().filter(|c| c.slot >= first) {
        let i = (c.slot.as_second() - first.as_second()) / 3600;
        let Some(acc) = usize::try_from(i).ok().and_then(|i| hours.get_mut(i)) else {
            continue;
        };
        acc.add(&c.series, c.value);
        total.add(&c.series, c.value);
    }
    let hours = hours
        .into_iter()
        .enumerate()
        .map(|(i, acc)| {
            let start = first
                .checked_add(SignedDuration::from_hours(i as i64))
                .unwrap_or(first);
            acc.finish(start)
        })
        .collect();
    (hours, total.finish(first))
}

/// Practices by health now, counted by the store in one statement whatever their number (no
/// PMS read, no row per practice), by the practice list's reasons
/// ([`admin::PracticeSummary::unhealthy`]): the store's, and this node's own (a link whose
/// lease lapsed here).
pub async fn practices_by_health(ctx: &Ctx) -> Result<PracticesByHealth, AdminError> {
    let rules = admin::health_rules(ctx, ctx.now());
    let counts = ctx.store.practice_health(&rules, None).await?;
    // The store counted these healthy; their lease lapsed here. Rare (the database unreachable
    // or locked), so they are read one by one.
    let mut lapsed = 0;
    for link in ctx.running() {
        if ctx.lease_lapsed(link) {
            lapsed += ctx
                .store
                .practice_health(&rules, Some(link))
                .await?
                .healthy();
        }
    }
    Ok(PracticesByHealth {
        total: counts.total,
        healthy: counts.healthy().saturating_sub(lapsed),
        unhealthy: counts.unhealthy + lapsed,
        disabled: counts.disabled,
    })
}

/// The fleet view now: practices by health (no PMS read) and the last 24 hours' figures.
pub async fn view(ctx: &Ctx) -> Result<FleetView, AdminError> {
    let now = ctx.now();
    let practices = practices_by_health(ctx).await?;
    let since = hour_of(now)
        .checked_sub(SignedDuration::from_hours(HOURS as i64 - 1))
        .unwrap_or(now);
    let counts = ctx.store.fleet_counts_since(since).await?;
    let nodes = ctx.store.fleet_nodes_since(since).await?;
    let (hours, totals) = figures(&counts, now);
    Ok(FleetView {
        at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        nodes_reporting: u64::try_from(nodes).unwrap_or(0),
        practices,
        hours,
        totals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn count(slot: &str, series: &str, value: i64) -> FleetCount {
        FleetCount {
            slot: at(slot),
            series: series.into(),
            value,
        }
    }

    #[test]
    fn slots_are_summed_into_their_hour_and_the_window_is_24_hours() {
        let now = at("2026-12-01T10:20:00Z");
        let counts = [
            // Before the window (09:00 the day before is 25 hours back): left out.
            count("2026-11-30T10:55:00Z", "bookings.confirmed", 7),
            // The window's first hour, 11:00 the day before.
            count("2026-11-30T11:00:00Z", "bookings.confirmed", 2),
            count("2026-12-01T09:05:00Z", "bookings.rejected", 1),
            count("2026-12-01T09:55:00Z", "bookings.rejected", 2),
            count("2026-12-01T10:15:00Z", "bookings.not_in_diary", 1),
            count("2026-12-01T10:15:00Z", "requests.near_limit", 1),
            count("2026-12-01T10:15:00Z", "workers.restarts", 3),
            count("2026-12-01T10:15:00Z", "leases.taken", 4),
        ];
        let (hours, total) = figures(&counts, now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0].start, "2026-11-30T11:00:00Z");
        assert_eq!(hours[0].confirmed, 2);
        assert_eq!(hours[22].start, "2026-12-01T09:00:00Z");
        assert_eq!(hours[22].rejected, 3);
        assert_eq!(hours[23].not_in_diary, 1);
        assert_eq!(hours[23].requests_near_limit, 1);
        assert_eq!(hours[23].worker_restarts, 3);
        assert_eq!(hours[23].leases_taken, 4);
        assert_eq!(
            total.confirmed, 2,
            "the slot before the window is not counted"
        );
        assert_eq!(total.rejected, 3);
        assert_eq!(total.start, "2026-11-30T11:00:00Z");
    }

    #[test]
    fn freshness_quantiles_come_from_the_summed_buckets() {
        let now = at("2026-12-01T10:20:00Z");
        // Two nodes' buckets in one hour: 100 publishes, 90 within 1 s, 99 within 30 s, one
        // beyond the last bound.
        let mut counts = Vec::new();
        for (le, a, b) in [("1", 50, 40), ("5", 52, 42), ("30", 55, 44), ("60", 55, 44)] {
            counts.push(count(
                "2026-12-01T10:00:00Z",
                &format!("freshness.le.{le}"),
                a,
            ));
            counts.push(count(
                "2026-12-01T10:05:00Z",
                &format!("freshness.le.{le}"),
                b,
            ));
        }
        counts.push(count("2026-12-01T10:00:00Z", "freshness.count", 56));
        counts.push(count("2026-12-01T10:05:00Z", "freshness.count", 44));
        let (hours, total) = figures(&counts, now);
        let h = &hours[23];
        assert_eq!(h.publishes, 100);
        assert_eq!(h.freshness_p50_seconds, Some(1.0));
        assert_eq!(h.freshness_p99_seconds, Some(30.0));
        assert_eq!(total.freshness_p99_seconds, Some(30.0));
        // An hour without publishes has no freshness.
        assert_eq!(hours[0].freshness_p50_seconds, None);
        // Beyond every bound: the largest bound.
        let beyond = [
            count("2026-12-01T10:00:00Z", "freshness.le.1", 0),
            count("2026-12-01T10:00:00Z", "freshness.le.60", 0),
            count("2026-12-01T10:00:00Z", "freshness.count", 3),
        ];
        assert_eq!(
            figures(&beyond, now).0[23].freshness_p50_seconds,
            Some(60.0)
        );
    }
}
