//! Many practices on one node: N generated PMS practices linked to N marketplace practices, all
//! in one process with both simulators (so the figures include the simulators' own work).
//!
//! Measures: how long linking N practices through the admin API takes; how long until every
//! practice's configuration and availability are on the marketplace; the steady-state CPU of the
//! whole process with nothing changing (webhooks registered, 60 s backstop polls); and the
//! freshness of a desk booking at random practices while all N are linked.
//!
//! `cargo bench -p slotbridge-service --bench scale [-- N]` (default 1000 practices).
//! Under `cargo test` it only says how to run it.

use std::time::{Duration, Instant};

use serde_json::json;
use slotbridge_pms_sim::PmsSim;
use slotbridge_testkit::control::{offers, practitioner_of};
use slotbridge_testkit::{Practice, Stack};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "scale: a measurement; run it with `cargo bench -p slotbridge-service --bench scale`"
        );
        return;
    }
    let n: u32 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks of 1/100 s).
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

async fn run(n: u32) {
    let pms_sim = PmsSim::builder().practices(n).seed(7).build();
    let manifest = pms_sim.manifest();
    let mut w = Stack::builder()
        .pms(pms_sim)
        .harbour(false)
        .node_id("scale")
        .user_agent("slotbridge (bench@slotbridge.example) DEV")
        .poll_interval(Duration::from_secs(5))
        .lease_ttl(Duration::from_secs(20))
        .start()
        .await
        .expect("stack");
    // The generated practices (Harbour Dental, first, is left out: it is the others' scale).
    let practices: Vec<Practice> = manifest
        .practices
        .iter()
        .skip(1)
        .map(|e| w.practice_for(e).expect("practice"))
        .collect();
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    for p in &practices {
        w.link(p).await;
    }
    println!(
        "{} practices linked through the admin API in {:.1} s",
        practices.len(),
        started.elapsed().as_secs_f64()
    );
    let sim = w.market.sim();
    let count = || {
        sim.with_market(|m| {
            let configured = m
                .practices
                .values()
                .filter(|p| !p.appointment_types.is_empty())
                .count();
            let published = m
                .practices
                .values()
                .filter(|p| !p.availability.is_empty())
                .count();
            (configured, published)
        })
    };
    let total = practices.len();
    let mut configured_at = None;
    loop {
        let (configured, published) = count();
        if configured == total && configured_at.is_none() {
            configured_at = Some(started.elapsed());
        }
        if configured == total && published >= total {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            println!("after 900 s: {configured} configured, {published} with availability");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (configured, published) = count();
    println!(
        "configuration of all {total} on the marketplace after {:.1} s; availability of {published} after {:.1} s ({configured} configured); CPU {:.1} s",
        configured_at.unwrap_or_default().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_start
    );

    // Steady state: nothing changes for 60 s.
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let cores = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    println!(
        "steady state over 60 s: {:.3} cores for the whole process (node + both simulators), RSS {:.0} MB",
        cores,
        rss_mb()
    );

    // Freshness at random practices while all are linked.
    let mut samples = Vec::new();
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let mut i = 0usize;
    while samples.len() < 20 && i < 400 {
        i += 1;
        let k = (i * 7919) % total;
        let p = &practices[k];
        // Connect the practice's books so its slots are bookable, then pick one.
        let _ = w.auto_link(&p.practice_id).await;
        let day = (today + jiff::Span::new().days(2 + (i % 10) as i64)).to_string();
        let slots = w.slots(&p.practice_id, &day).await;
        let Some(slot) = slots.first().cloned() else {
            continue;
        };
        let t = Instant::now();
        let r = w
            .http
            .post(w.desk(&p.slug, "/appointments"))
            .json(&json!({"practitioner": practitioner_of(&slot), "start": slot["start"], "end": slot["end"]}))
            .send()
            .await
            .expect("desk");
        if r.status() != 201 {
            continue;
        }
        loop {
            let still = offers(&w.slots(&p.practice_id, &day).await, &slot);
            if !still || t.elapsed() > Duration::from_secs(120) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    if !samples.is_empty() {
        let q = |p: f64| {
            samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1]
                .as_secs_f64()
                * 1000.0
        };
        println!(
            "desk booking → slot gone, with {total} practices linked: n={} p50={:.0} ms p90={:.0} ms max={:.0} ms",
            samples.len(),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
    w.stop_node(0).await;
}
