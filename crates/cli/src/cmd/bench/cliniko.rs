//! `slotbridge bench scale --pms cliniko --practices N`: N Cliniko practices on one node,
//! kept fresh by polling within each key's rate limit.
//!
//! 1. The Cliniko simulator (`slotbridge cliniko-sim`, its documented 200 requests a minute per
//!    key), the marketplace simulator, the PMS simulator (no practice: the node needs its URL)
//!    and one node start, each in its own process. N practices are generated in the Cliniko
//!    simulator (each its own account and key, 40 % of the next 14 days booked), and a
//!    marketplace practice is made for each.
//! 2. All N are linked by key and business id through the node's admin API; the clock runs
//!    until every practice's configuration and availability are on the marketplace.
//! 3. Idle for `--idle-seconds`: the node's CPU.
//! 4. Steady state for `--seconds`: one desk change per practice per minute (an appointment on
//!    a published slot, deleted at the practice's next turn), through the simulator's control
//!    API. Up to two changes a second are watched on the marketplace until the slot is gone:
//!    freshness p50/p99. Cliniko has no webhooks, so every change is found by polling the
//!    practice's `updated_at` feed (at most every 10 s per link). Requests per minute per key
//!    come from the simulator's own count (`/_sim/stats`), with the requests it refused (429).
//!
//! It ends with one line: `pms=cliniko practices=N publish_all_s=… node_rss_mb=…
//! node_cpu_cores=… freshness_p50_ms=… freshness_p99_ms=… key_rpm_mean=… key_rpm_max=…
//! rate_limited=…`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use slotbridge_testkit::Practice;
use slotbridge_testkit::control::{Control, offers, practitioner_of};
use slotbridge_testkit::process::{KillOnDrop, free_port};
use tokio::sync::Mutex;

use super::{Fleet, FleetOptions, Samples, in_parallel, keep_logs, spawn, wait_answering};

/// What `bench scale` passes on in its Cliniko mode.
#[derive(Debug, Clone)]
pub struct Options {
    pub practices: u32,
    pub database_url: Option<String>,
    pub poll: Duration,
    pub idle_seconds: u64,
    pub seconds: u64,
    pub publish_timeout: u64,
    pub seed: u64,
    pub keep_logs: Option<PathBuf>,
}

/// One generated Cliniko practice and its marketplace practice.
#[derive(Debug, Clone)]
struct Linked {
    account: u64,
    business: String,
    market: Practice,
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    if o.practices == 0 {
        bail!("--practices: expected at least 1");
    }
    let cliniko_port = free_port();
    let cliniko_url = format!("http://127.0.0.1:{cliniko_port}");
    let opts = FleetOptions {
        pms_practices: 0,
        seed: o.seed,
        database_url: o.database_url.clone(),
        poll: o.poll,
        webhooks: true,
        max_links: o.practices,
        pms_rate_limit: 50.0,
        cliniko_url: Some(format!("{cliniko_url}/v1/")),
    };
    let fleet = Fleet::start(&opts).await?;
    let binary = std::env::current_exe().context("the slotbridge binary")?;
    let _cliniko: KillOnDrop = spawn(
        &binary,
        fleet.dir.path(),
        "cliniko-sim",
        &[
            "--listen".into(),
            format!("127.0.0.1:{cliniko_port}"),
            "--practices".into(),
            "0".into(),
        ],
    )?;
    wait_answering(
        &fleet.http,
        &format!("{cliniko_url}/_sim/stats"),
        fleet.dir.path(),
    )
    .await?;
    let outcome = measure(&fleet, &cliniko_url, &o).await;
    keep_logs(&fleet, o.keep_logs.as_ref())?;
    if outcome.is_err() {
        eprintln!("{}", fleet.log_tail());
    }
    outcome
}

/// Generate `n` practices in the Cliniko simulator and a marketplace practice for each.
async fn practices(fleet: &Fleet, cliniko: &str, n: u32, seed: u64) -> anyhow::Result<Vec<Linked>> {
    let seeded = in_parallel((0..u64::from(n)).collect(), 16, |i| async move {
        let r: Value = fleet
            .http
            .post(format!("{cliniko}/_sim/practices/generate"))
            .json(&json!({"seed": seed + i, "fill": 0.4, "days": 14}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok::<_, anyhow::Error>(r)
    })
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<Value>>>()?;
    let entries: Vec<Value> = seeded
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"name": format!("Cliniko practice {i}"), "timezone": "Australia/Sydney",
                "slug": "", "api_key": p["api_key"]})
        })
        .collect();
    let market = fleet.market_practices(&entries).await?;
    seeded
        .iter()
        .zip(market)
        .map(|(p, market)| {
            Ok(Linked {
                account: p["account_id"].as_u64().context("an account id")?,
                business: p["business_ids"][0]
                    .as_str()
                    .context("a business id")?
                    .to_owned(),
                market,
            })
        })
        .collect()
}

/// Requests the simulator let through, and refused with 429, per account so far.
async fn key_requests(fleet: &Fleet, cliniko: &str) -> anyhow::Result<BTreeMap<u64, (u64, u64)>> {
    let s: Value = fleet
        .http
        .get(format!("{cliniko}/_sim/stats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(s["accounts"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.parse().ok()?,
                        (
                            v["requests"].as_u64().unwrap_or(0),
                            v["rate_limited"].as_u64().unwrap_or(0),
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn measure(fleet: &Fleet, cliniko: &str, o: &Options) -> anyhow::Result<()> {
    let linked = practices(fleet, cliniko, o.practices, o.seed).await?;
    let n = linked.len();
    eprintln!(
        "{n} Cliniko practices; node {} (polling Cliniko, {})",
        fleet.node.url,
        o.database_url.as_deref().map_or("SQLite", |_| "PostgreSQL")
    );
    let started = Instant::now();
    let cpu0 = fleet.node_usage();
    let results = in_parallel(linked.clone(), 16, |l| async move {
        // The marketplace practice was made with the Cliniko key as its PMS key.
        slotbridge_testkit::link_cliniko(
            &fleet.http,
            &fleet.node.url,
            None,
            &l.market.api_key,
            &l.business,
            &l.market,
        )
        .await
    })
    .await;
    for r in results {
        r?;
    }
    let linked_s = started.elapsed().as_secs_f64();
    eprintln!("linked through the admin API in {linked_s:.1} s");
    let (_, publish_all_s) = fleet.until_published(n, started, o.publish_timeout).await?;
    let publish_cpu = fleet.node_usage().cpu_seconds - cpu0.cpu_seconds;
    eprintln!("all published after {publish_all_s:.1} s ({publish_cpu:.0} CPU s)");
    for r in in_parallel(linked.clone(), 32, |l| async move {
        fleet.control.auto_link(&l.market.practice_id).await
    })
    .await
    {
        r?;
    }

    let idle0 = fleet.node_usage();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.idle_seconds)).await;
    let idle_cores =
        (fleet.node_usage().cpu_seconds - idle0.cpu_seconds) / t.elapsed().as_secs_f64();
    eprintln!("idle over {} s: {idle_cores:.3} cores", o.idle_seconds);

    // Steady state: one desk change per practice per minute.
    let keys0 = key_requests(fleet, cliniko).await?;
    let usage0 = fleet.node_usage();
    let window = Instant::now();
    let churn = Churn {
        control: fleet.control.clone(),
        cliniko: cliniko.to_owned(),
        practices: Arc::new(linked),
        held: Arc::default(),
        not_seen: Arc::default(),
    };
    let gap = Duration::from_secs_f64(60.0 / n as f64);
    let watch_gap = Duration::from_millis(500);
    let mut last_watch = Instant::now() - watch_gap;
    let mut watchers = tokio::task::JoinSet::new();
    let mut peak_rss = usage0.rss_mb;
    let mut last_rss = Instant::now();
    let mut changes = 0u32;
    while window.elapsed() < Duration::from_secs(o.seconds) {
        tokio::time::sleep_until((window + gap * changes).into()).await;
        let p = changes as usize % n;
        changes += 1;
        let churn = churn.clone();
        if last_watch.elapsed() >= watch_gap {
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
    let keys1 = key_requests(fleet, cliniko).await?;
    let mut freshness = Samples::default();
    let mut not_seen = 0usize;
    while let Some(r) = watchers.join_next().await {
        match r {
            Ok(Some(d)) => freshness.push(d),
            Ok(None) => {}
            Err(_) => not_seen += 1,
        }
    }
    not_seen += churn.not_seen.load(Ordering::Relaxed);
    // Per key (each practice is its own account): requests a minute over the window.
    let per_key: Vec<f64> = churn
        .practices
        .iter()
        .map(|l| {
            let (a, _) = keys0.get(&l.account).copied().unwrap_or_default();
            let (b, _) = keys1.get(&l.account).copied().unwrap_or_default();
            b.saturating_sub(a) as f64 * 60.0 / seconds
        })
        .collect();
    let rate_limited: u64 = keys1.values().map(|(_, r)| r).sum();
    let mean = per_key.iter().sum::<f64>() / per_key.len().max(1) as f64;
    let max = per_key.iter().copied().fold(0.0, f64::max);
    let cores = (usage1.cpu_seconds - usage0.cpu_seconds) / seconds;
    peak_rss = peak_rss.max(usage1.rss_mb);
    eprintln!(
        "steady state over {seconds:.0} s: {changes} desk changes, {} watched ({not_seen} not seen gone within 60 s)",
        freshness.len()
    );
    println!(
        "pms=cliniko practices={n} linked_s={linked_s:.1} publish_all_s={publish_all_s:.1} node_rss_mb={peak_rss:.0} \
         node_cpu_cores={cores:.3} idle_cpu_cores={idle_cores:.3} freshness_p50_ms={:.0} freshness_p99_ms={:.0} \
         freshness_n={} not_seen={not_seen} key_rpm_mean={mean:.1} key_rpm_max={max:.1} key_rpm_limit=200 \
         rate_limited={rate_limited}",
        freshness.quantile(0.5),
        freshness.quantile(0.99),
        freshness.len(),
    );
    Ok(())
}

/// The desk's changes in the Cliniko simulator: at each practice's turn, its bench appointment
/// is deleted if it has one, or one is booked on a published slot.
#[derive(Clone)]
struct Churn {
    control: Control,
    cliniko: String,
    practices: Arc<Vec<Linked>>,
    held: Arc<Mutex<HashMap<usize, u64>>>,
    not_seen: Arc<AtomicUsize>,
}

impl Churn {
    async fn desk(&self, account: u64, action: Value) -> Option<Value> {
        let r = self
            .control
            .http
            .post(format!("{}/_sim/practices/{account}/desk", self.cliniko))
            .json(&action)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// One change at practice `k`; when `watch` and the change is a new appointment, the time
    /// until the marketplace no longer offers its slot.
    async fn change(&self, k: usize, watch: bool) -> Option<Duration> {
        let l = &self.practices[k];
        let held = self.held.lock().await.remove(&k);
        if let Some(id) = held {
            self.desk(l.account, json!({"action": "delete", "appointment_id": id}))
                .await;
            return None;
        }
        // A day 2 to 15 days ahead, by practice, so the days differ across the fleet.
        let day = l.market.today() + jiff::Span::new().days(2 + (k % 14) as i64);
        let slots = self.control.slots(&l.market.practice_id, day).await;
        let slot = slots
            .get(k.wrapping_mul(7919) % slots.len().max(1))?
            .clone();
        let kind: u64 = slot["pms_appointment_type_id"]
            .as_str()?
            .split(':')
            .next()?
            .parse()
            .ok()?;
        let made = self
            .desk(
                l.account,
                json!({"action": "book", "business_id": l.business.parse::<u64>().ok()?,
                    "practitioner_id": practitioner_of(&slot).parse::<u64>().ok()?,
                    "appointment_type_id": kind, "starts_at": slot["start"], "ends_at": slot["end"]}),
            )
            .await?;
        let t = Instant::now();
        let id = made["id"].as_u64()?;
        self.held.lock().await.insert(k, id);
        if !watch {
            return None;
        }
        loop {
            if !offers(&self.control.slots(&l.market.practice_id, day).await, &slot) {
                return Some(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(60) {
                self.not_seen.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
