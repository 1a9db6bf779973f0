//! Bookings under load: B bookings per second spread over P practices for S seconds, each a new
//! patient booking a free slot on the marketplace, worked by one node through both simulators
//! over real HTTP (all in one process, so the figures include the simulators' own work).
//!
//! Measures booking → answered by the integration (confirmInsert or rejectInsert, read from the
//! marketplace simulator's state every 5 ms) p50/p99, the outcomes, nothing lost (every booking
//! answered by the integration, none auto-confirmed) or duplicated (one diary appointment per
//! confirmed booking), and the PMS requests spent per booking (the simulator counts requests per
//! site; the idle rate measured before the load is subtracted).
//!
//! `cargo bench -p slotbridge-service --bench booking_load [-- P RATE SECONDS]` (defaults 50
//! practices, 50 bookings/s, 60 s). Under `cargo test` it only says how to run it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use slotbridge_pms_sim::PmsSim;
use slotbridge_testkit::{Practice, Stack, booking_body, patient};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "booking_load: a measurement; run it with `cargo bench -p slotbridge-service --bench booking_load`"
        );
        return;
    }
    let numbers: Vec<u64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let practices = numbers.first().copied().unwrap_or(50) as usize;
    let rate = numbers.get(1).copied().unwrap_or(50);
    let seconds = numbers.get(2).copied().unwrap_or(60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(practices, rate, seconds));
}

/// A bookable slot and the practice it is at.
struct Target {
    practice: usize,
    slot: Value,
}

async fn run(n: usize, rate: u64, seconds: u64) {
    let total = (rate * seconds) as usize;
    println!("{total} bookings: {rate}/s over {n} practices for {seconds} s");
    // Most generated practices carry a misconfiguration on purpose: make enough to pick n clean.
    let pms_sim = PmsSim::builder()
        .practices(n as u32 * 8 + 1)
        .seed(11)
        .build();
    let manifest = pms_sim.manifest();
    let w = Stack::builder()
        .pms(pms_sim)
        .harbour(false)
        .node_id("load")
        .user_agent("slotbridge (bench@slotbridge.example) DEV")
        .poll_interval(Duration::from_secs(5))
        .lease_ttl(Duration::from_secs(20))
        .start()
        .await
        .expect("stack");
    // Generated practices without misconfigurations, so every slot is bookable.
    let practices: Vec<Practice> = manifest
        .practices
        .iter()
        .skip(1)
        .filter(|e| e.misconfigurations.is_empty())
        .take(n)
        .map(|e| w.practice_for(e).expect("practice"))
        .collect();
    for p in &practices {
        w.link(p).await;
    }
    let sim = w.market.sim().clone();
    let started = Instant::now();
    loop {
        let ready = sim.with_market(|m| {
            m.practices
                .values()
                .filter(|p| !p.availability.is_empty())
                .count()
        });
        if ready >= practices.len() || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for p in &practices {
        w.auto_link(&p.practice_id).await.expect("auto-link");
    }
    // Free slots, distinct starts per practitioner, round-robin over the practices.
    let per_practice = total.div_ceil(practices.len());
    let today = slotbridge_testkit::today_in("Australia/Sydney");
    let mut by_practice: Vec<Vec<Value>> = Vec::new();
    for p in &practices {
        // An hour apart per practitioner, so one booking does not take the next one's slot.
        let mut last: HashMap<String, jiff::civil::DateTime> = HashMap::new();
        let mut mine = Vec::new();
        for d in 1..60 {
            if mine.len() >= per_practice {
                break;
            }
            let day = (today + jiff::Span::new().days(d)).to_string();
            for s in w.slots(&p.practice_id, &day).await {
                let Some(start) = s["start"]
                    .as_str()
                    .and_then(|t| t.get(..19))
                    .and_then(|t| t.parse::<jiff::civil::DateTime>().ok())
                else {
                    continue;
                };
                let who = s["practitioner"].to_string();
                let free = last
                    .get(&who)
                    .is_none_or(|l| start >= *l + jiff::SignedDuration::from_hours(1));
                if free {
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
    println!(
        "{} practices ready after {:.1} s; {} bookable slots picked",
        practices.len(),
        started.elapsed().as_secs_f64(),
        targets.len()
    );

    // The idle PMS request rate, to subtract from the load's.
    let pms = w.pms.sim().clone();
    let slugs: Vec<String> = practices.iter().map(|p| p.slug.clone()).collect();
    let pms_total = |pms: &PmsSim| -> u64 { slugs.iter().map(|s| pms.site_requests(s)).sum() };
    let idle0 = pms_total(&pms);
    let idle_t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_rate = (pms_total(&pms) - idle0) as f64 / idle_t.elapsed().as_secs_f64();

    let practices = Arc::new(practices);
    let w = Arc::new(w);
    let before = pms_total(&pms);
    let load_start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tasks = Vec::with_capacity(targets.len());
    for (i, t) in targets.into_iter().enumerate() {
        let at = load_start + gap * i as u32;
        tokio::time::sleep_until(at.into()).await;
        let w = w.clone();
        let practices = practices.clone();
        let sim = sim.clone();
        tasks.push(tokio::spawn(async move {
            let p = &practices[t.practice];
            let day = t.slot["start"]
                .as_str()
                .unwrap_or_default()
                .get(..10)?
                .to_owned();
            let who = patient(
                &format!("Load{i}"),
                "Patient",
                "1981-02-03",
                &format!("04{i:08}"),
                &format!("load{i}@example.com"),
            );
            let sent = Instant::now();
            let id = match w
                .try_book(&p.practice_id, &booking_body(&t.slot, who))
                .await
            {
                Ok(id) => id,
                Err(_) => return None,
            };
            loop {
                let state = sim.with_market(|m| {
                    m.bookings.get(&id).map(|b| {
                        (
                            b.insert_pending,
                            b.auto_confirmed,
                            format!("{:?}", b.status),
                        )
                    })
                });
                match state {
                    Some((false, auto, status)) => {
                        return Some((id, t.practice, day, sent.elapsed(), auto, status));
                    }
                    _ if sent.elapsed() > Duration::from_secs(60) => {
                        return Some((
                            id,
                            t.practice,
                            day,
                            sent.elapsed(),
                            true,
                            "unanswered".into(),
                        ));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut confirmed: HashMap<(usize, String), Vec<i64>> = HashMap::new();
    let mut refused_by_marketplace = 0;
    for t in tasks {
        match t.await.expect("task") {
            None => refused_by_marketplace += 1,
            Some((id, practice, day, latency, auto, status)) => {
                latencies.push(latency);
                let key = if auto {
                    format!("auto:{status}")
                } else {
                    status.clone()
                };
                *outcomes.entry(key).or_default() += 1;
                if !auto && status == "Confirmed" {
                    confirmed.entry((practice, day)).or_default().push(id);
                }
            }
        }
    }
    let elapsed = load_start.elapsed().as_secs_f64();
    let used = (pms_total(&pms) - before) as f64 - idle_rate * elapsed;
    // Exactly one diary appointment per confirmed booking.
    let mut duplicated = 0;
    let mut missing = 0;
    for ((k, day), ids) in &confirmed {
        let diary = w.diary(&practices[*k].slug, day).await;
        for id in ids {
            let reference = format!("HE-{id}");
            let n = diary
                .iter()
                .filter(|a| a["external_ref"] == reference.as_str())
                .count();
            match n {
                0 => missing += 1,
                1 => {}
                _ => duplicated += 1,
            }
        }
    }
    latencies.sort();
    let q = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let answered = latencies.len();
    println!(
        "booking → answered by the integration: n={answered} p50={:.0} ms p90={:.0} ms p99={:.0} ms max={:.0} ms",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    println!(
        "outcomes: {outcomes:?}; refused by the marketplace at booking time: {refused_by_marketplace}"
    );
    println!(
        "PMS requests per booking: {:.1} ({:.0} during the load, idle {:.1}/s subtracted)",
        used / answered.max(1) as f64,
        used,
        idle_rate
    );
    println!(
        "diary: {missing} confirmed bookings without an appointment, {duplicated} with more than one"
    );
}
