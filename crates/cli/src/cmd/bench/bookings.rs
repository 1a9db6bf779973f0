//! `slotbridge bench bookings --rate R --seconds S --practices P`: R bookings a second for S
//! seconds, spread over P practices, each a new patient booking a free slot on the marketplace.
//!
//! Latency is from the booking's creation on the marketplace to the integration's answer
//! (confirmInsert or rejectInsert), read from the marketplace simulator every 10 ms. Lost: a
//! booking the integration did not answer (the marketplace auto-confirmed it, or it was still
//! open a minute later), or confirmed without its diary appointment. Duplicated: more than one
//! diary appointment for a booking. It ends with one line: `bookings=… confirmed=… rejected=…
//! lost=… duplicated=… p50_ms=… p99_ms=…`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;
use slotbridge_testkit::{booking_body, patient};

use super::{Fleet, FleetOptions, Samples, keep_logs};

/// `slotbridge bench bookings`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bookings a second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// For how many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u32,
    /// Over how many practices.
    #[arg(long, default_value_t = 50)]
    practices: u32,
    /// PostgreSQL (a database of its own); default: a SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Copy the processes' logs here at the end.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    if a.rate == 0 || a.seconds == 0 || a.practices == 0 {
        bail!("--rate, --seconds and --practices: expected at least 1 each");
    }
    let opts = FleetOptions {
        // About one generated practice in five has no misconfiguration: make enough.
        pms_practices: a.practices * 8 + 1,
        seed: 11,
        database_url: a.database_url.clone(),
        poll: Duration::from_secs(5),
        webhooks: true,
        max_links: a.practices,
        pms_rate_limit: 50.0,
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

/// A bookable slot and the practice it is at.
struct Target {
    practice: usize,
    slot: Value,
}

/// What became of one booking.
struct Answered {
    id: i64,
    practice: usize,
    day: String,
    latency: Duration,
    /// `Confirmed`, `Rejected`, … as the marketplace holds it.
    status: String,
    /// Answered by the marketplace's own timeout, not by the integration.
    auto: bool,
}

async fn measure(fleet: &Fleet, a: &Args) -> anyhow::Result<()> {
    let total = (a.rate * a.seconds) as usize;
    let entries: Vec<Value> = fleet
        .manifest()
        .await?
        .into_iter()
        .filter(|e| e["misconfigurations"].as_array().is_none_or(Vec::is_empty))
        .take(a.practices as usize)
        .collect();
    if entries.len() < a.practices as usize {
        bail!(
            "the simulator made only {} practices without misconfigurations",
            entries.len()
        );
    }
    let practices = fleet.market_practices(&entries).await?;
    let started = Instant::now();
    fleet.link_all(&practices).await?;
    loop {
        let s = fleet.market_stats().await?;
        if s["practices_published"].as_u64().unwrap_or(0) as usize >= practices.len() {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("not every practice was published within 300 s: {s}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for p in &practices {
        fleet.control.auto_link(&p.practice_id).await?;
    }
    // Free slots an hour apart per practitioner (so one booking cannot take another's), taken
    // round-robin over the practices.
    let per_practice = total.div_ceil(practices.len());
    let mut by_practice: Vec<Vec<Value>> = Vec::new();
    for p in &practices {
        let mut last: HashMap<String, jiff::civil::DateTime> = HashMap::new();
        let mut mine = Vec::new();
        for d in 1..60 {
            if mine.len() >= per_practice {
                break;
            }
            let day = p.today() + jiff::Span::new().days(d);
            for s in fleet.control.slots(&p.practice_id, day).await {
                let Some(start) = s["start"]
                    .as_str()
                    .and_then(|t| t.get(..19))
                    .and_then(|t| t.parse::<jiff::civil::DateTime>().ok())
                else {
                    continue;
                };
                let who = s["practitioner"].to_string();
                if last
                    .get(&who)
                    .is_none_or(|l| start >= *l + jiff::SignedDuration::from_hours(1))
                {
                    last.insert(who, start);
                    mine.push(s);
                }
            }
        }
        by_practice.push(mine);
    }
    let mut targets = Vec::new();
    for i in 0..per_practice {
        for (k, slots) in by_practice.iter().enumerate() {
            if let Some(s) = slots.get(i) {
                targets.push(Target {
                    practice: k,
                    slot: s.clone(),
                });
            }
        }
    }
    targets.truncate(total);
    eprintln!(
        "{} practices published after {:.1} s; {} bookable slots picked",
        practices.len(),
        started.elapsed().as_secs_f64(),
        targets.len()
    );

    let pms0 = fleet
        .node_counter("slotbridge_pms_request_duration_seconds_count")
        .await;
    let usage0 = fleet.node_usage();
    let load_start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / f64::from(a.rate));
    let mut tasks = tokio::task::JoinSet::new();
    let mut refused_at_booking = 0usize;
    for (i, t) in targets.into_iter().enumerate() {
        tokio::time::sleep_until((load_start + gap * u32::try_from(i).unwrap_or(u32::MAX)).into())
            .await;
        let control = fleet.control.clone();
        let p = practices[t.practice].clone();
        tasks.spawn(async move {
            let day = t.slot["start"].as_str()?.get(..10)?.to_owned();
            let who = patient(
                &format!("Load{i}"),
                "Patient",
                "1981-02-03",
                &format!("04{i:08}"),
                &format!("load{i}@example.com"),
            );
            let id = control
                .try_book(&p.practice_id, &booking_body(&t.slot, who))
                .await
                .ok()?;
            let booked = Instant::now();
            loop {
                let b = control.booking(id).await;
                if b["insert_pending"] == false {
                    return Some(Answered {
                        id,
                        practice: t.practice,
                        day,
                        latency: booked.elapsed(),
                        status: b["status"].as_str().unwrap_or_default().to_owned(),
                        auto: b["auto_confirmed"] == true,
                    });
                }
                if booked.elapsed() > Duration::from_secs(60) {
                    return Some(Answered {
                        id,
                        practice: t.practice,
                        day,
                        latency: booked.elapsed(),
                        status: "unanswered".into(),
                        auto: true,
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    let mut latency = Samples::default();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut confirmed: HashMap<(usize, String), Vec<i64>> = HashMap::new();
    let mut lost = 0usize;
    while let Some(r) = tasks.join_next().await {
        let Some(b) = r.ok().flatten() else {
            refused_at_booking += 1;
            continue;
        };
        *outcomes.entry(b.status.clone()).or_default() += 1;
        if b.auto {
            lost += 1;
            continue;
        }
        latency.push(b.latency);
        if b.status == "Confirmed" {
            confirmed.entry((b.practice, b.day)).or_default().push(b.id);
        }
    }
    let seconds = load_start.elapsed().as_secs_f64();
    let pms_calls = fleet
        .node_counter("slotbridge_pms_request_duration_seconds_count")
        .await
        - pms0;
    let cores = (fleet.node_usage().cpu_seconds - usage0.cpu_seconds) / seconds;
    // Exactly one diary appointment per confirmed booking.
    let mut duplicated = 0usize;
    for ((k, day), ids) in &confirmed {
        let diary = fleet.control.diary(&practices[*k].slug, day).await;
        for id in ids {
            let reference = format!("HE-{id}");
            match diary
                .iter()
                .filter(|a| a["external_ref"] == reference.as_str())
                .count()
            {
                0 => lost += 1,
                1 => {}
                _ => duplicated += 1,
            }
        }
    }
    let n_confirmed: usize = confirmed.values().map(Vec::len).sum();
    let answered = latency.len();
    eprintln!(
        "outcomes {outcomes:?}; refused by the marketplace at booking time: {refused_at_booking}"
    );
    println!(
        "bookings={} confirmed={n_confirmed} rejected={} lost={lost} duplicated={duplicated} p50_ms={:.0} \
         p99_ms={:.0} max_ms={:.0} pms_calls_per_booking={:.1} node_cpu_cores={cores:.2}",
        outcomes.values().sum::<usize>(),
        outcomes.get("Rejected").copied().unwrap_or(0),
        latency.quantile(0.5),
        latency.quantile(0.99),
        latency.quantile(1.0),
        pms_calls / answered.max(1) as f64,
    );
    Ok(())
}
