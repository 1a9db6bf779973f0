//! The node's Prometheus metrics: latency histograms of every PMS and marketplace call, errors
//! by kind, bookings by outcome with their latency, the change → published latency, the age of
//! the marketplace's requests when answered, worker restarts and lease moves; plus gauges read
//! from the store when `/metrics` is scraped (sync lag per link, last error, unhealthy links).
//!
//! The counters the fleet view charts are also flushed to the store ([`crate::fleet`]): each
//! node adds their increase since its last flush, so the view sums every node.
//!
//! A small registry of our own rather than a global recorder: every node (several run in one
//! test process) keeps its own figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ctx::Ctx;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
];

/// Upper bounds of the freshness buckets, in seconds: from a webhook's tens of milliseconds to
/// the minutes a backlog or a poll costs.
const FRESHNESS_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Upper bounds of the request-age buckets, in seconds: fine around the 20 s auto-confirm and
/// the 8 to 10 minutes before the marketplace flags the integration unhealthy.
const AGE_BUCKETS: [f64; 15] = [
    1.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 480.0, 540.0, 600.0, 900.0, 1800.0,
    3600.0,
];

/// The marketplace flags a practice's integration unhealthy when a critical request (bookings,
/// booking updates, availability) waits more than ten minutes (quick-start guide, "Requests").
pub const MARKET_REQUEST_LIMIT: Duration = Duration::from_secs(600);

/// A request answered this old or older counts as close to [`MARKET_REQUEST_LIMIT`].
pub const NEAR_LIMIT: Duration = Duration::from_secs(480);

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (i, le) in self.bounds.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The smallest bucket bound below which at least `q` of the observations fall (an upper
    /// estimate of the quantile, as Prometheus' `histogram_quantile` would bound it).
    fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let need = (q * self.count as f64).ceil() as u64;
        self.bounds
            .iter()
            .zip(self.counts.iter())
            .find(|(_, c)| **c >= need)
            .map(|(le, _)| *le)
            .or(Some(f64::INFINITY))
    }
}

/// Label values, in the order of the family's label names.
type Labels = Vec<String>;

#[derive(Debug, Default)]
struct Registry {
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
}

/// A metric family: name, help, label names, and for a histogram its bucket bounds.
struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
}

const PMS_CALLS: Family = Family {
    name: "slotbridge_pms_request_duration_seconds",
    help: "PMS API calls by operation and outcome.",
    labels: &["operation", "outcome"],
    buckets: &BUCKETS,
};
const MARKET_CALLS: Family = Family {
    name: "slotbridge_market_request_duration_seconds",
    help: "Marketplace API calls by operation and outcome.",
    labels: &["operation", "outcome"],
    buckets: &BUCKETS,
};
const BOOKINGS: Family = Family {
    name: "slotbridge_booking_duration_seconds",
    help: "Bookings by outcome; from the request's arrival to confirmInsert or rejectInsert.",
    labels: &["outcome"],
    buckets: &BUCKETS,
};
const PUBLISH: Family = Family {
    name: "slotbridge_publish_duration_seconds",
    help: "From the wake-up (PMS change, tick or resync) to the marketplace holding the result.",
    labels: &["cause"],
    buckets: &BUCKETS,
};
const REQUEST_AGE: Family = Family {
    name: "slotbridge_request_age_at_answer_seconds",
    help: "Marketplace requests by kind: their age when answered, from when the marketplace raised \
           them (the patient booked, the update was asked for). Past 600 s the marketplace flags \
           the practice's integration unhealthy.",
    labels: &["kind"],
    buckets: &AGE_BUCKETS,
};
const FRESHNESS: Family = Family {
    name: FRESHNESS_FAMILY,
    help: "From a change in the PMS (webhook or change-feed event) to its publish.",
    labels: &[],
    buckets: &FRESHNESS_BUCKETS,
};
const ERRORS: Family = Family {
    name: "slotbridge_errors_total",
    help: "Failed steps by kind.",
    labels: &["kind"],
    buckets: &[],
};
const OUTCOMES: Family = Family {
    name: "slotbridge_bookings_total",
    help: "Bookings by how they ended: confirmed (in the diary), rejected (in time, not \
           in the diary), not_in_diary (auto-confirmed by the marketplace, then rejected late: \
           the patient holds a booking the diary lacks), gone (in the diary; the marketplace no \
           longer took its confirmation).",
    labels: &["outcome"],
    buckets: &[],
};
const NEAR_LIMIT_TOTAL: Family = Family {
    name: "slotbridge_requests_near_limit_total",
    help: "Marketplace requests answered 480 s or more after they were raised (the limit is 600 s).",
    labels: &["kind"],
    buckets: &[],
};
const RESTARTS: Family = Family {
    name: "slotbridge_worker_restarts_total",
    help: "Link workers that failed (or panicked) and were restarted with backoff.",
    labels: &[],
    buckets: &[],
};
const LEASE_MOVES: Family = Family {
    name: "slotbridge_lease_moves_total",
    help: "Link leases that changed hands: taken (this node took a link another node, or its \
           own earlier run, held) and lost (this node's worker stopped because the lease was no \
           longer its own).",
    labels: &["direction"],
    buckets: &[],
};

const HISTOGRAMS: [&Family; 6] = [
    &PMS_CALLS,
    &MARKET_CALLS,
    &BOOKINGS,
    &PUBLISH,
    &REQUEST_AGE,
    &FRESHNESS,
];

/// Counter families, with the label values shown as 0 before anything is counted (so rates
/// and alerts see the series from the start).
const COUNTERS: [(&Family, &[&str]); 5] = [
    (&ERRORS, &[]),
    (
        &OUTCOMES,
        &["confirmed", "rejected", "not_in_diary", "gone"],
    ),
    (&NEAR_LIMIT_TOTAL, &["bookings", "bookingUpdates"]),
    (&RESTARTS, &[""]),
    (&LEASE_MOVES, &["taken", "lost"]),
];

/// How a booking ended, for [`Metrics::booking_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingOutcome {
    /// Inserted into the diary and confirmed.
    Confirmed,
    /// Rejected before the marketplace's auto-confirm: not in the diary, and the patient knows.
    Rejected,
    /// Auto-confirmed by the marketplace, then rejected late (or the late rejection refused):
    /// the patient holds a booking the diary lacks.
    NotInDiary,
    /// In the diary, but the marketplace no longer took its confirmation (404/410 on
    /// confirmInsert, or the confirmation refused).
    Gone,
}

impl BookingOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingOutcome::Confirmed => "confirmed",
            BookingOutcome::Rejected => "rejected",
            BookingOutcome::NotInDiary => "not_in_diary",
            BookingOutcome::Gone => "gone",
        }
    }
}

/// Which way a lease moved, for [`Metrics::lease_moved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMove {
    /// This node took a lease that was held before (a new epoch after the first).
    Taken,
    /// This node's lease was no longer its own at a renewal: its worker stopped.
    Lost,
}

impl LeaseMove {
    /// The `direction` label.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseMove::Taken => "taken",
            LeaseMove::Lost => "lost",
        }
    }
}

/// The histogram family the fleet view reads freshness (a PMS change to its publish) from.
const FRESHNESS_FAMILY: &str = "slotbridge_freshness_seconds";

/// One node's metrics. Cheap to record into from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// The fleet series' totals at the last flush to the store ([`crate::fleet::flush`]); held
    /// across the flush, so two flushes never count the same increase twice.
    pub(crate) flushed: tokio::sync::Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn observe(&self, family: &Family, labels: &[&str], elapsed: Duration) {
        let key = labels.iter().map(|l| (*l).to_owned()).collect();
        self.registry()
            .histograms
            .entry(family.name)
            .or_default()
            .entry(key)
            .or_insert_with(|| Histogram::new(family.buckets))
            .observe(elapsed.as_secs_f64());
    }

    fn count(&self, family: &Family, labels: &[&str]) {
        let key = labels.iter().map(|l| (*l).to_owned()).collect();
        *self
            .registry()
            .counters
            .entry(family.name)
            .or_default()
            .entry(key)
            .or_default() += 1;
    }

    fn counted(reg: &Registry, family: &Family, labels: &[&str]) -> u64 {
        let key: Labels = labels.iter().map(|l| (*l).to_owned()).collect();
        reg.counters
            .get(family.name)
            .and_then(|m| m.get(&key))
            .copied()
            .unwrap_or(0)
    }

    /// A booking ended with `outcome` (counted once per booking, when its end is recorded).
    pub fn booking_outcome(&self, outcome: BookingOutcome) {
        self.count(&OUTCOMES, &[outcome.as_str()]);
    }

    /// The marketplace's request of `kind` (`bookings`, `bookingUpdates`) was answered `age`
    /// after the marketplace raised it; one [`NEAR_LIMIT`] or older is counted as close to the
    /// marketplace's ten minutes.
    pub fn request_answered(&self, kind: &str, age: Duration) {
        self.observe(&REQUEST_AGE, &[kind], age);
        if age >= NEAR_LIMIT {
            self.count(&NEAR_LIMIT_TOTAL, &[kind]);
        }
    }

    /// A failed link worker is restarted.
    pub fn worker_restarted(&self) {
        self.count(&RESTARTS, &[]);
    }

    /// A lease moved.
    pub fn lease_moved(&self, direction: LeaseMove) {
        self.count(&LEASE_MOVES, &[direction.as_str()]);
    }

    /// The totals of the series the fleet view charts, since this node started: `bookings.*`
    /// by outcome, `requests.answered`, `requests.near_limit`, `workers.restarts`, `leases.*`
    /// by direction, and freshness as cumulative buckets `freshness.le.<bound>` with
    /// `freshness.count` (from the `slotbridge_freshness_seconds` histogram, all labels).
    pub fn fleet_totals(&self) -> BTreeMap<String, u64> {
        let reg = self.registry();
        let mut out = BTreeMap::new();
        for outcome in [
            BookingOutcome::Confirmed,
            BookingOutcome::Rejected,
            BookingOutcome::NotInDiary,
            BookingOutcome::Gone,
        ] {
            out.insert(
                format!("bookings.{}", outcome.as_str()),
                Self::counted(&reg, &OUTCOMES, &[outcome.as_str()]),
            );
        }
        let near: u64 = reg
            .counters
            .get(NEAR_LIMIT_TOTAL.name)
            .map_or(0, |m| m.values().sum());
        out.insert("requests.near_limit".into(), near);
        let answered: u64 = reg
            .histograms
            .get(REQUEST_AGE.name)
            .map_or(0, |m| m.values().map(|h| h.count).sum());
        out.insert("requests.answered".into(), answered);
        out.insert(
            "workers.restarts".into(),
            Self::counted(&reg, &RESTARTS, &[]),
        );
        for d in [LeaseMove::Taken, LeaseMove::Lost] {
            out.insert(
                format!("leases.{}", d.as_str()),
                Self::counted(&reg, &LEASE_MOVES, &[d.as_str()]),
            );
        }
        if let Some(series) = reg.histograms.get(FRESHNESS_FAMILY) {
            for h in series.values() {
                for (le, c) in h.bounds.iter().zip(&h.counts) {
                    *out.entry(format!("freshness.le.{le}")).or_default() += c;
                }
                *out.entry("freshness.count".into()).or_default() += h.count;
            }
        }
        out
    }

    /// A PMS API call finished (`outcome`: `ok` or the error kind).
    pub fn pms_call(&self, operation: &str, outcome: &str, elapsed: Duration) {
        self.observe(&PMS_CALLS, &[operation, outcome], elapsed);
    }

    /// A marketplace API call finished (`outcome`: `ok` or the error kind).
    pub fn market_call(&self, operation: &str, outcome: &str, elapsed: Duration) {
        self.observe(&MARKET_CALLS, &[operation, outcome], elapsed);
    }

    /// A booking ended (`confirmed` or `rejected`) `latency` after its request arrived.
    pub fn booking(&self, outcome: &str, latency: Duration) {
        self.observe(&BOOKINGS, &[outcome], latency);
    }

    /// A sync woken by `cause` reached the marketplace `elapsed` after the wake-up.
    pub fn published(&self, cause: &str, elapsed: Duration) {
        self.observe(&PUBLISH, &[cause], elapsed);
    }

    /// A PMS change was published this long after it was seen.
    pub fn freshness(&self, elapsed: Duration) {
        self.observe(&FRESHNESS, &[], elapsed);
    }

    /// A step failed.
    pub fn error(&self, kind: &str) {
        self.count(&ERRORS, &[kind]);
    }

    /// A call observer for the PMS connector (`side` = `"pms"`) or the marketplace client
    /// (`"market"`) that records into these metrics.
    pub fn observer(metrics: &Arc<Metrics>, side: &'static str) -> slotbridge_pms::CallObserver {
        let metrics = Arc::clone(metrics);
        let family = if side == "pms" {
            &PMS_CALLS
        } else {
            &MARKET_CALLS
        };
        Arc::new(move |operation: &str, outcome: &str, elapsed: Duration| {
            metrics.observe(family, &[operation, outcome], elapsed);
        })
    }

    /// How many bookings ended with `outcome`, and an upper bound of their p99 latency in seconds.
    pub fn booking_summary(&self, outcome: &str) -> (u64, Option<f64>) {
        let reg = self.registry();
        let h = reg
            .histograms
            .get(BOOKINGS.name)
            .and_then(|m| m.get(&vec![outcome.to_owned()]));
        (
            h.map_or(0, |h| h.count),
            h.and_then(|h| h.quantile_bound(0.99)),
        )
    }

    /// The registry in the Prometheus text format.
    pub fn write_to(&self, out: &mut String) {
        let reg = self.registry();
        for family in HISTOGRAMS {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} histogram", family.name);
            let Some(series) = reg.histograms.get(family.name) else {
                continue;
            };
            for (labels, h) in series {
                let base = label_text(family.labels, labels);
                for (le, count) in h.bounds.iter().zip(h.counts.iter()) {
                    let _ = writeln!(
                        out,
                        "{}_bucket{{{base}{}le=\"{le}\"}} {count}",
                        family.name,
                        if base.is_empty() { "" } else { "," },
                    );
                }
                let _ = writeln!(
                    out,
                    "{}_bucket{{{base}{}le=\"+Inf\"}} {}",
                    family.name,
                    if base.is_empty() { "" } else { "," },
                    h.count
                );
                let _ = writeln!(out, "{}_sum{{{base}}} {}", family.name, h.sum);
                let _ = writeln!(out, "{}_count{{{base}}} {}", family.name, h.count);
            }
        }
        for (family, known) in COUNTERS {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} counter", family.name);
            let mut series: BTreeMap<Labels, u64> = known
                .iter()
                .map(|v| {
                    let labels = if family.labels.is_empty() {
                        Vec::new()
                    } else {
                        vec![(*v).to_owned()]
                    };
                    (labels, 0)
                })
                .collect();
            if let Some(counted) = reg.counters.get(family.name) {
                series.extend(counted.iter().map(|(l, n)| (l.clone(), *n)));
            }
            for (labels, n) in series {
                let text = label_text(family.labels, &labels);
                if text.is_empty() {
                    let _ = writeln!(out, "{} {n}", family.name);
                } else {
                    let _ = writeln!(out, "{}{{{text}}} {n}", family.name);
                }
            }
        }
    }
}

fn label_text(names: &[&str], values: &[String]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Escape a label value (backslash, quote, newline) per the text exposition format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// How long `/metrics` waits for the store's gauges before it answers without them.
const STORE_READ_LIMIT: Duration = Duration::from_secs(2);

/// Everything `/metrics` shows: the registry, and gauges read from the store now. With the
/// store unreachable it still answers: the in-memory figures, `slotbridge_store_up 0`, and no
/// per-link gauges.
///
/// The store's part is two statements whatever the number of links
/// ([`slotbridge_store::Store::link_gauges`]): the links that failed or are unhealthy, one
/// series each (the per-practice alert needs them; a healthy fleet has few), and the largest
/// sync lag. A scrape reads a row per failing link only, not one per link (docs/performance.md,
/// "Console at 10,000").
pub async fn render(ctx: &Ctx) -> String {
    let now = ctx.now();
    let stale_before = now.checked_sub(crate::admin::STALE_AFTER).unwrap_or(now);
    let read = tokio::time::timeout(STORE_READ_LIMIT, ctx.store.link_gauges(stale_before)).await;
    let (gauges, store_up) = match read {
        Ok(Ok(gauges)) => (gauges, 1),
        _ => (slotbridge_store::LinkGauges::default(), 0),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP slotbridge_store_up Whether the store answered for this scrape.\n\
         # TYPE slotbridge_store_up gauge\n\
         slotbridge_store_up {store_up}"
    );
    let _ = writeln!(
        out,
        "# HELP slotbridge_store_disk_full Whether the database refuses writes because its disk is full.\n\
         # TYPE slotbridge_store_disk_full gauge\n\
         slotbridge_store_disk_full {}",
        u8::from(ctx.disk_full())
    );
    out.push_str(
        "# HELP slotbridge_sync_lag_max_seconds Seconds since availability was last published, \
         for the enabled link that published longest ago (fleet-wide; the console's practice \
         list sorts the practices).\n\
         # TYPE slotbridge_sync_lag_max_seconds gauge\n",
    );
    if let Some(at) = gauges.oldest_publish {
        let lag = now.duration_since(at).as_secs_f64().max(0.0);
        let _ = writeln!(out, "slotbridge_sync_lag_max_seconds {lag:.3}");
    }
    out.push_str(
        "# HELP slotbridge_link_errors Whether the link's last step failed, by kind.\n\
         # TYPE slotbridge_link_errors gauge\n",
    );
    for l in &gauges.failing {
        if let Some(kind) = &l.error_kind {
            let _ = writeln!(
                out,
                "slotbridge_link_errors{{link=\"{}\",kind=\"{}\"}} 1",
                l.link_id,
                escape(kind)
            );
        }
    }
    out.push_str(
        "# HELP slotbridge_link_unhealthy 1 for an enabled link whose last step failed, whose \
         consent is withdrawn, or whose availability is stale or was never published (fleet-wide: \
         every node reports every link).\n\
         # TYPE slotbridge_link_unhealthy gauge\n",
    );
    for l in gauges.failing.iter().filter(|l| l.unhealthy) {
        let _ = writeln!(out, "slotbridge_link_unhealthy{{link=\"{}\"}} 1", l.link_id);
    }
    let _ = writeln!(
        out,
        "# HELP slotbridge_links_running Links this node works.\n\
         # TYPE slotbridge_links_running gauge\n\
         slotbridge_links_running {}",
        ctx.running().len()
    );
    let (wanted, at_capacity, unserved) = ctx.capacity.read();
    let _ = writeln!(
        out,
        "# HELP slotbridge_node_max_links The most links this node works (max_links).\n\
         # TYPE slotbridge_node_max_links gauge\n\
         slotbridge_node_max_links {}\n\
         # HELP slotbridge_node_link_share The links this node would work without its limit (enabled links over live nodes).\n\
         # TYPE slotbridge_node_link_share gauge\n\
         slotbridge_node_link_share {wanted}\n\
         # HELP slotbridge_node_at_capacity 1 when this node's share exceeds max_links.\n\
         # TYPE slotbridge_node_at_capacity gauge\n\
         slotbridge_node_at_capacity {}\n\
         # HELP slotbridge_links_unserved Enabled links no node serves (fleet-wide, counted once per lease TTL).\n\
         # TYPE slotbridge_links_unserved gauge\n\
         slotbridge_links_unserved {unserved}",
        ctx.settings.max_links,
        u8::from(at_capacity)
    );
    ctx.metrics.write_to(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_every_bucket_at_or_above_the_value() {
        let m = Metrics::default();
        m.booking("confirmed", Duration::from_millis(30));
        m.booking("confirmed", Duration::from_millis(700));
        m.booking("rejected", Duration::from_secs(3));
        let mut out = String::new();
        m.write_to(&mut out);
        assert!(out.contains(
            "slotbridge_booking_duration_seconds_bucket{outcome=\"confirmed\",le=\"0.025\"} 0"
        ));
        assert!(out.contains(
            "slotbridge_booking_duration_seconds_bucket{outcome=\"confirmed\",le=\"0.05\"} 1"
        ));
        assert!(out.contains(
            "slotbridge_booking_duration_seconds_bucket{outcome=\"confirmed\",le=\"1\"} 2"
        ));
        assert!(out.contains(
            "slotbridge_booking_duration_seconds_bucket{outcome=\"confirmed\",le=\"+Inf\"} 2"
        ));
        assert!(out.contains("slotbridge_booking_duration_seconds_count{outcome=\"rejected\"} 1"));
        assert_eq!(m.booking_summary("confirmed"), (2, Some(1.0)));
        assert_eq!(m.booking_summary("nothing"), (0, None));
    }

    #[test]
    fn errors_are_counted_by_kind_and_label_values_are_escaped() {
        let m = Metrics::default();
        m.error("pms");
        m.error("pms");
        m.error("odd\"kind");
        let mut out = String::new();
        m.write_to(&mut out);
        assert!(out.contains("slotbridge_errors_total{kind=\"pms\"} 2"));
        assert!(out.contains("slotbridge_errors_total{kind=\"odd\\\"kind\"} 1"));
        assert!(out.contains("# TYPE slotbridge_pms_request_duration_seconds histogram"));
    }

    #[test]
    fn counters_show_every_known_series_at_zero_before_anything_is_counted() {
        let m = Metrics::default();
        let mut out = String::new();
        m.write_to(&mut out);
        for line in [
            "# TYPE slotbridge_bookings_total counter",
            "slotbridge_bookings_total{outcome=\"confirmed\"} 0",
            "slotbridge_bookings_total{outcome=\"not_in_diary\"} 0",
            "slotbridge_requests_near_limit_total{kind=\"bookings\"} 0",
            "slotbridge_worker_restarts_total 0",
            "slotbridge_lease_moves_total{direction=\"taken\"} 0",
            "slotbridge_lease_moves_total{direction=\"lost\"} 0",
            "# TYPE slotbridge_request_age_at_answer_seconds histogram",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line} missing from:\n{out}"
            );
        }
    }

    #[test]
    fn outcomes_restarts_and_lease_moves_are_counted() {
        let m = Metrics::default();
        m.booking_outcome(BookingOutcome::Confirmed);
        m.booking_outcome(BookingOutcome::Confirmed);
        m.booking_outcome(BookingOutcome::NotInDiary);
        m.worker_restarted();
        m.lease_moved(LeaseMove::Taken);
        m.lease_moved(LeaseMove::Taken);
        m.lease_moved(LeaseMove::Lost);
        let mut out = String::new();
        m.write_to(&mut out);
        assert!(
            out.contains("slotbridge_bookings_total{outcome=\"confirmed\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("slotbridge_bookings_total{outcome=\"not_in_diary\"} 1\n"));
        assert!(out.contains("slotbridge_bookings_total{outcome=\"rejected\"} 0\n"));
        assert!(out.contains("slotbridge_worker_restarts_total 1\n"));
        assert!(out.contains("slotbridge_lease_moves_total{direction=\"taken\"} 2\n"));
        let t = m.fleet_totals();
        assert_eq!(t["bookings.confirmed"], 2);
        assert_eq!(t["bookings.not_in_diary"], 1);
        assert_eq!(t["workers.restarts"], 1);
        assert_eq!(t["leases.taken"], 2);
        assert_eq!(t["leases.lost"], 1);
    }

    #[test]
    fn a_request_answered_at_eight_minutes_or_later_counts_as_close_to_the_limit() {
        let m = Metrics::default();
        m.request_answered("bookings", Duration::from_secs(3));
        m.request_answered("bookings", Duration::from_secs(479));
        m.request_answered("bookings", NEAR_LIMIT);
        m.request_answered("bookingUpdates", Duration::from_secs(700));
        let mut out = String::new();
        m.write_to(&mut out);
        assert!(
            out.contains("slotbridge_requests_near_limit_total{kind=\"bookings\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("slotbridge_requests_near_limit_total{kind=\"bookingUpdates\"} 1\n"));
        // The age histogram reaches past the marketplace's ten minutes.
        assert!(
            out.contains(
                "slotbridge_request_age_at_answer_seconds_bucket{kind=\"bookings\",le=\"480\"} 3\n"
            ),
            "{out}"
        );
        assert!(out.contains(
            "slotbridge_request_age_at_answer_seconds_bucket{kind=\"bookings\",le=\"300\"} 1\n"
        ));
        assert!(out.contains(
            "slotbridge_request_age_at_answer_seconds_bucket{kind=\"bookingUpdates\",le=\"600\"} 0\n"
        ));
        let t = m.fleet_totals();
        assert_eq!(t["requests.answered"], 4);
        assert_eq!(t["requests.near_limit"], 2);
    }

    #[test]
    fn freshness_observations_reach_the_fleet_totals_as_cumulative_buckets() {
        let m = Metrics::default();
        // Whatever its labels and bounds, the freshness family is read by name.
        const FRESHNESS: Family = Family {
            name: FRESHNESS_FAMILY,
            help: "test",
            labels: &["link"],
            buckets: &AGE_BUCKETS,
        };
        m.observe(&FRESHNESS, &["a"], Duration::from_secs(4));
        m.observe(&FRESHNESS, &["b"], Duration::from_secs(40));
        let t = m.fleet_totals();
        assert_eq!(t["freshness.count"], 2);
        assert_eq!(t["freshness.le.5"], 1);
        assert_eq!(t["freshness.le.60"], 2);
        assert_eq!(t["freshness.le.1"], 0);
    }
}
