//! `slotbridge bench scale --practices N`: N practices on one node.
//!
//! 1. The PMS simulator (N generated practices), the marketplace simulator and one node start,
//!    each in its own process; a marketplace practice is made for each PMS practice.
//! 2. All N are linked through the node's admin API; the clock runs from the first link until
//!    every practice's configuration and availability are on the marketplace (`publish_all_s`).
//! 3. Idle: nothing changes for `--idle-seconds`; the node's CPU is measured.
//! 4. Steady state for `--seconds`: one desk change per practice per minute (a desk appointment
//!    on a published slot, removed at the practice's next turn). Up to two changes a second
//!    are watched on the marketplace until the slot is gone: freshness p50/p99. The node's CPU,
//!    its largest RSS and its PMS and marketplace calls per minute are measured over the window.
//!
//! It ends with one line: `practices=N publish_all_s=… node_rss_mb=… node_cpu_cores=…
//! freshness_p50_ms=… freshness_p99_ms=… …`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use slotbridge_testkit::Practice;
use slotbridge_testkit::control::{Control, offers, practitioner_of};
use tokio::sync::Mutex;

use super::{Fleet, FleetOptions, Samples, keep_logs};

/// `slotbridge bench scale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many practices the node serves.
    #[arg(long, default_value_t = 1000)]
    practices: u32,
    /// PostgreSQL (a database of its own: the bench adds links to it); default: a SQLite file
    /// in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Pure polling of both sides every `--poll-ms` (no webhooks registered).
    #[arg(long)]
    polling: bool,
    /// The node's polling interval (with webhooks, the marketplace and PMS are still polled
    /// every 60 s as a backstop).
    #[arg(long, default_value_t = 5000)]
    poll_ms: u64,
    /// Seconds with nothing changing, for the idle CPU.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Seconds of steady state with one desk change per practice per minute.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Give up waiting for every practice to be published after this many seconds.
    #[arg(long, default_value_t = 900)]
    publish_timeout: u64,
    /// The PMS simulator's rate limit per API key (requests per second).
    #[arg(long, default_value_t = 50.0)]
    pms_rate_limit: f64,
    /// The simulator's seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Copy the processes' logs here at the end.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// The practices' PMS: `exact` (the PMS simulator's generated sites) or `cliniko` (practices
    /// generated in the Cliniko simulator, polled within each key's rate limit).
    #[arg(long, value_enum, default_value_t = Pms::Exact)]
    pms: Pms,
}

/// Which PMS `bench scale` links its practices to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pms {
    Exact,
    Cliniko,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    if a.pms == Pms::Cliniko {
        return super::cliniko::run(super::cliniko::Options {
            practices: a.practices,
            database_url: a.database_url,
            poll: Duration::from_millis(a.poll_ms.max(50)),
            idle_seconds: a.idle_seconds,
            seconds: a.seconds,
            publish_timeout: a.publish_timeout,
            seed: a.seed,
            keep_logs: a.keep_logs,
        })
        .await;
    }
    if a.practices == 0 {
        bail!("--practices: expected at least 1");
    }
    let opts = FleetOptions {
        pms_practices: a.practices,
        seed: a.seed,
        database_url: a.database_url.clone(),
        poll: Duration::from_millis(a.poll_ms.max(50)),
        webhooks: !a.polling,
        max_links: a.practices.max(1),
        pms_rate_limit: a.pms_rate_limit,
        cliniko_url: None,
    };
    let fleet = Fleet::start(&opts).await?;
    let outcome = measure(&fleet, &a).await;
    keep_logs(&fleet, a.keep_logs.as_ref())?;
    if outcome.is_err() {
        eprintln!("{}", fleet.log_tail());
    }
    outcome
}

async fn measure(fleet: &Fleet, a: &Args) -> anyhow::Result<()> {
    let mut entries = fleet.manifest().await?;
    entries.truncate(a.practices as usize);
    let practices = fleet.market_practices(&entries).await?;
    let n = practices.len();
    eprintln!(
        "{n} practices; node {} ({}, {})",
        fleet.node.url,
        if a.polling { "polling" } else { "webhooks" },
        a.database_url.as_deref().map_or("SQLite", |_| "PostgreSQL")
    );

    // Link all, then wait until every one is configured and has availability.
    let started = Instant::now();
    let cpu0 = fleet.node_usage();
    fleet.link_all(&practices).await?;
    let linked_s = started.elapsed().as_secs_f64();
    eprintln!("linked through the admin API in {linked_s:.1} s");
    let (configured_s, publish_all_s) =
        fleet.until_published(n, started, a.publish_timeout).await?;
    let publish_cpu = fleet.node_usage().cpu_seconds - cpu0.cpu_seconds;
    eprintln!(
        "all configured after {:.1} s, all published after {publish_all_s:.1} s ({publish_cpu:.0} CPU s)",
        configured_s
    );

    // The marketplace admin's Step 2, so every practice's slots are bookable (and visible).
    let linked = super::in_parallel(practices.clone(), 32, |p| async move {
        fleet.control.auto_link(&p.practice_id).await
    })
    .await;
    for r in linked {
        r?;
    }

    // Idle: nothing changes.
    let idle0 = fleet.node_usage();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.idle_seconds)).await;
    let idle_cores =
        (fleet.node_usage().cpu_seconds - idle0.cpu_seconds) / t.elapsed().as_secs_f64();
    eprintln!("idle over {} s: {idle_cores:.3} cores", a.idle_seconds);

    // Steady state: one desk change per practice per minute.
    let pms0 = fleet
        .node_counter("slotbridge_pms_request_duration_seconds_count")
        .await;
    let market0 = fleet
        .node_counter("slotbridge_market_request_duration_seconds_count")
        .await;
    let sites0 = site_requests(fleet).await?;
    let usage0 = fleet.node_usage();
    let window = Instant::now();
    let churn = Churn::new(&fleet.control, &practices);
    let gap = Duration::from_secs_f64(60.0 / n as f64);
    let watch_gap = Duration::from_millis(500);
    let mut last_watch = Instant::now() - watch_gap;
    let mut watchers = tokio::task::JoinSet::new();
    let mut peak_rss = usage0.rss_mb;
    let mut last_rss = Instant::now();
    let mut changes = 0u64;
    let mut i = 0usize;
    while window.elapsed() < Duration::from_secs(a.seconds) {
        let at = window + gap * u32::try_from(changes).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        let watch = last_watch.elapsed() >= watch_gap;
        let p = i % n;
        i += 1;
        changes += 1;
        let churn = churn.clone();
        if watch {
            last_watch = Instant::now();
            watchers.spawn(async move { churn.change(p, true).await });
        } else {
            tokio::spawn(async move { churn.change(p, false).await });
        }
        if last_rss.elapsed() > Duration::from_secs(1) {
            last_rss = Instant::now();
            peak_rss = peak_rss.max(fleet.node_usage().rss_mb);
        }
    }
    let seconds = window.elapsed().as_secs_f64();
    let usage1 = fleet.node_usage();
    let pms_calls = fleet
        .node_counter("slotbridge_pms_request_duration_seconds_count")
        .await
        - pms0;
    let market_calls = fleet
        .node_counter("slotbridge_market_request_duration_seconds_count")
        .await
        - market0;
    let sites1 = site_requests(fleet).await?;
    let mut freshness = Samples::default();
    let mut not_seen = 0usize;
    while let Some(r) = watchers.join_next().await {
        match r {
            Ok(Some(d)) => freshness.push(d),
            Ok(None) => {}
            Err(_) => not_seen += 1,
        }
    }
    not_seen += churn.not_seen.load(std::sync::atomic::Ordering::Relaxed);
    let busiest_site_rpm = sites1
        .iter()
        .map(|(slug, c)| c.saturating_sub(sites0.get(slug).copied().unwrap_or(0)))
        .max()
        .unwrap_or(0) as f64
        * 60.0
        / seconds;
    let cores = (usage1.cpu_seconds - usage0.cpu_seconds) / seconds;
    peak_rss = peak_rss.max(usage1.rss_mb);
    eprintln!(
        "steady state over {seconds:.0} s: {changes} desk changes, {} watched ({not_seen} not seen gone within 60 s)",
        freshness.len()
    );
    println!(
        "practices={n} mode={} linked_s={linked_s:.1} publish_all_s={publish_all_s:.1} node_rss_mb={peak_rss:.0} \
         node_cpu_cores={cores:.3} idle_cpu_cores={idle_cores:.3} freshness_p50_ms={:.0} freshness_p99_ms={:.0} \
         freshness_n={} pms_calls_per_min={:.0} market_calls_per_min={:.0} busiest_pms_key_per_min={busiest_site_rpm:.0} \
         pms_rate_limit_per_min={:.0}",
        if a.polling { "polling" } else { "webhooks" },
        freshness.quantile(0.5),
        freshness.quantile(0.99),
        freshness.len(),
        pms_calls * 60.0 / seconds,
        market_calls * 60.0 / seconds,
        a.pms_rate_limit * 60.0,
    );
    Ok(())
}

/// Requests per PMS site (the simulator counts them per slug).
async fn site_requests(fleet: &Fleet) -> anyhow::Result<HashMap<String, u64>> {
    let s: Value = fleet
        .http
        .get(format!("{}/_sim/stats", fleet.pms_url))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(s["site_requests"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default())
}

/// The desk's changes: at each practice's turn, its bench appointment is removed if it has one,
/// or one is made on a published slot.
#[derive(Clone)]
struct Churn {
    control: Control,
    practices: Arc<Vec<Practice>>,
    held: Arc<Mutex<HashMap<usize, String>>>,
    not_seen: Arc<std::sync::atomic::AtomicUsize>,
}

impl Churn {
    fn new(control: &Control, practices: &[Practice]) -> Churn {
        Churn {
            control: control.clone(),
            practices: Arc::new(practices.to_vec()),
            held: Arc::default(),
            not_seen: Arc::default(),
        }
    }

    /// One change at practice `k`; when `watch` and the change is a new appointment, the time
    /// until the marketplace no longer offers its slot.
    async fn change(&self, k: usize, watch: bool) -> Option<Duration> {
        let p = &self.practices[k];
        let held = self.held.lock().await.remove(&k);
        if let Some(id) = held {
            let _ = self
                .control
                .http
                .delete(self.control.desk(&p.slug, &format!("/appointments/{id}")))
                .send()
                .await;
            return None;
        }
        // A day 2 to 15 days ahead, by practice, so the days differ across the fleet.
        let day = p.today() + jiff::Span::new().days(2 + (k % 14) as i64);
        let slots = self.control.slots(&p.practice_id, day).await;
        let slot = slots
            .get(k.wrapping_mul(7919) % slots.len().max(1))?
            .clone();
        let r = self
            .control
            .http
            .post(self.control.desk(&p.slug, "/appointments"))
            .json(&json!({"practitioner": practitioner_of(&slot), "start": slot["start"], "end": slot["end"]}))
            .send()
            .await
            .ok()?;
        let t = Instant::now();
        if r.status() != 201 {
            return None;
        }
        let made: Value = r.json().await.ok()?;
        let id = made["id"].as_str()?.to_owned();
        self.held.lock().await.insert(k, id);
        if !watch {
            return None;
        }
        loop {
            if !offers(&self.control.slots(&p.practice_id, day).await, &slot) {
                return Some(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(60) {
                self.not_seen
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
