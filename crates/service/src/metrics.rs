//! The node's Prometheus metrics: latency histograms of every PMS and marketplace call, errors
//! by kind, bookings by outcome with their latency, and the change → published latency; plus
//! gauges read from the store when `/metrics` is scraped (sync lag per link, last error).
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

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
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
        BUCKETS
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

/// A metric family: name, help and label names.
struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const PMS_CALLS: Family = Family {
    name: "slotbridge_pms_request_duration_seconds",
    help: "PMS API calls by operation and outcome.",
    labels: &["operation", "outcome"],
};
const MARKET_CALLS: Family = Family {
    name: "slotbridge_market_request_duration_seconds",
    help: "Marketplace API calls by operation and outcome.",
    labels: &["operation", "outcome"],
};
const BOOKINGS: Family = Family {
    name: "slotbridge_booking_duration_seconds",
    help: "Bookings by outcome; from the request's arrival to confirmInsert or rejectInsert.",
    labels: &["outcome"],
};
const PUBLISH: Family = Family {
    name: "slotbridge_publish_duration_seconds",
    help: "From the wake-up (PMS change, tick or resync) to the marketplace holding the result.",
    labels: &["cause"],
};
const FRESHNESS: Family = Family {
    name: "slotbridge_freshness_seconds",
    help: "From a change in the PMS (webhook or change-feed event) to its publish.",
    labels: &[],
};
const ERRORS: Family = Family {
    name: "slotbridge_errors_total",
    help: "Failed steps by kind.",
    labels: &["kind"],
};

const HISTOGRAMS: [&Family; 5] = [&PMS_CALLS, &MARKET_CALLS, &BOOKINGS, &PUBLISH, &FRESHNESS];

/// One node's metrics. Cheap to record into from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
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
            .or_default()
            .observe(elapsed.as_secs_f64());
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
        *self
            .registry()
            .counters
            .entry(ERRORS.name)
            .or_default()
            .entry(vec![kind.to_owned()])
            .or_default() += 1;
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
                for (le, count) in BUCKETS.iter().zip(h.counts.iter()) {
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
        let _ = writeln!(out, "# HELP {} {}", ERRORS.name, ERRORS.help);
        let _ = writeln!(out, "# TYPE {} counter", ERRORS.name);
        if let Some(series) = reg.counters.get(ERRORS.name) {
            for (labels, n) in series {
                let _ = writeln!(
                    out,
                    "{}{{{}}} {n}",
                    ERRORS.name,
                    label_text(ERRORS.labels, labels)
                );
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
pub async fn render(ctx: &Ctx) -> String {
    let now = ctx.now();
    let read = tokio::time::timeout(STORE_READ_LIMIT, ctx.store.all_sync_states()).await;
    let (states, store_up) = match read {
        Ok(Ok(states)) => (states, 1),
        _ => (Vec::new(), 0),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP slotbridge_store_up Whether the store answered for this scrape.\n\
         # TYPE slotbridge_store_up gauge\n\
         slotbridge_store_up {store_up}"
    );
    out.push_str(
        "# HELP slotbridge_sync_lag_seconds Seconds since availability was last published, per link.\n\
         # TYPE slotbridge_sync_lag_seconds gauge\n",
    );
    for st in &states {
        if let Some(at) = st.last_publish_at {
            let lag = now.duration_since(at).as_secs_f64().max(0.0);
            let _ = writeln!(
                out,
                "slotbridge_sync_lag_seconds{{link=\"{}\"}} {lag:.3}",
                st.link_id
            );
        }
    }
    out.push_str(
        "# HELP slotbridge_link_errors Whether the link's last step failed, by kind.\n\
         # TYPE slotbridge_link_errors gauge\n",
    );
    for st in &states {
        if let Some(e) = &st.last_error {
            let _ = writeln!(
                out,
                "slotbridge_link_errors{{link=\"{}\",kind=\"{}\"}} 1",
                st.link_id,
                escape(&e.kind)
            );
        }
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
}
