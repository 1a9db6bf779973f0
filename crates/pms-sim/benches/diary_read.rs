//! Load bench: one simulator with 10,000 generated practices, diary reads over real HTTP.
//!
//! `cargo bench -p slotbridge-pms-sim --bench diary_read` prints, for a
//! `GET …/appointments` read of `BENCH_DAYS` days (default 1):
//! 1. touching every practice once (cold: each practice is generated on first use), and the
//!    process's resident memory afterwards;
//! 2. an open-loop 500 requests/s for `BENCH_SECS` (default 20) over a working set of 200
//!    practices (warm);
//! 3. the same rate spread evenly over all 10,000 practices (`BENCH_CAP` and `BENCH_BUDGET`,
//!    default the simulator's, set how many stay in memory);
//! 4. the cost of generating a practice (its setup, hours, blocks and closed dates), of building
//!    one diary day, and of building all 90 days and the patient files, on this thread.
//!
//! The client runs in the same process, so the memory figure is an upper bound for the server.
//! The load average is printed before and after (the machine is shared).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use slotbridge_pms_sim::PmsSim;

const PRACTICES: u32 = 10_000;
const RATE: u64 = 500;

fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds this process has used (user + system; server and client together).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the command name: state is field 3, utime 14 and stime 15, in clock ticks (100/s).
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

fn cpu_report(name: &str, cpu: f64, requests: usize, elapsed: Duration) {
    println!(
        "{name}: CPU (server and client) {:.3} ms per request, {:.0}% of one core",
        cpu * 1000.0 / requests.max(1) as f64,
        cpu * 100.0 / elapsed.as_secs_f64()
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn report(name: &str, mut lat: Vec<Duration>, errors: usize, elapsed: Duration) {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{name}: {} requests in {:.1}s ({:.0}/s), errors {errors}, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0),
    );
}

struct Target {
    url: String,
    key: String,
}

async fn open_loop(
    http: &reqwest::Client,
    targets: Arc<Vec<Target>>,
    pool: usize,
    secs: u64,
) -> (Vec<Duration>, usize, Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let i = rand::rng().random_range(0..pool.min(targets.len()));
        let http = http.clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let t = &targets[i];
            let sent = Instant::now();
            let ok = http
                .get(&t.url)
                .header("x-api-key", &t.key)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (sent.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for t in tasks {
        if let Ok((d, ok)) = t.await {
            lat.push(d);
            if !ok {
                errors += 1;
            }
        }
    }
    (lat, errors, started.elapsed())
}

/// Phase 4, the generation cost alone, on this thread: the setup, hours, blocks and closed
/// dates of a practice; one diary day; the other 89 days and the patient files (each practice
/// dropped right after, so this does not hold memory).
fn generation_cost() {
    let now = jiff::Timestamp::now();
    let n = 200u32;
    let (mut shell, mut day, mut rest, mut appointments) = (0.0, 0.0, 0.0, 0);
    for index in 1..=n {
        let started = Instant::now();
        let mut p = slotbridge_pms_sim::generate::generated(1, index, now);
        shell += started.elapsed().as_secs_f64();
        let today = now.to_zoned_datetime(p.tz().clone()).date();
        let from = today.to_datetime(jiff::civil::Time::midnight());
        let to = today
            .tomorrow()
            .expect("date")
            .to_datetime(jiff::civil::Time::midnight());
        let started = Instant::now();
        p.appointments_between(from, to, None).count();
        day += started.elapsed().as_secs_f64();
        let started = Instant::now();
        p.materialize_all();
        rest += started.elapsed().as_secs_f64();
        appointments += p.appointment_count();
    }
    let ms = |total: f64| total * 1000.0 / f64::from(n);
    println!(
        "generation, per practice (mean of {n}): setup, hours, blocks and closed dates {:.3} ms; \
         + one diary day {:.3} ms; + the other 89 days and the patient files {:.2} ms \
         ({} appointments on average)",
        ms(shell),
        ms(day),
        ms(rest),
        appointments / n as usize
    );
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let days: i64 = std::env::var("BENCH_DAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let cap: usize = std::env::var("BENCH_CAP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(slotbridge_pms_sim::DEFAULT_RESIDENT_CAP);
    let budget: usize = std::env::var("BENCH_BUDGET")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(slotbridge_pms_sim::DEFAULT_RESIDENT_BUDGET);
    println!(
        "machine: {} CPUs, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let built = Instant::now();
        let sim = PmsSim::builder()
            .practices(PRACTICES)
            .seed(1)
            .rate_limit(None)
            .resident_cap(cap)
            .resident_budget(budget)
            .build();
        let manifest = sim.manifest();
        println!(
            "built simulator and manifest of {} practices in {:.2}s; RSS {:.0} MB",
            manifest.practices.len(),
            built.elapsed().as_secs_f64(),
            rss_mb("VmRSS:")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let handle = sim.serve(listener).await.expect("serve");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client");
        let today = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
            .date();
        let week = today
            .checked_add(jiff::Span::new().days(days))
            .expect("date");
        println!("diary read: GET …/appointments for {days} day(s) from today, limit 500");
        let targets: Arc<Vec<Target>> = Arc::new(
            manifest
                .practices
                .iter()
                .map(|p| Target {
                    url: format!(
                        "{}/api/v1/sites/{}/appointments?from={today}&to={week}&limit=500",
                        handle.base_url(),
                        p.slug
                    ),
                    key: p.api_key.clone(),
                })
                .collect(),
        );

        // 1. Touch every practice once, 8 at a time.
        let started = Instant::now();
        let cpu = cpu_secs();
        let mut lat = Vec::new();
        let mut errors = 0;
        for chunk in targets.chunks(8) {
            let mut set = Vec::new();
            for t in chunk {
                let http = http.clone();
                let (url, key) = (t.url.clone(), t.key.clone());
                set.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let ok = http
                        .get(&url)
                        .header("x-api-key", key)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    (sent.elapsed(), ok)
                }));
            }
            for s in set {
                if let Ok((d, ok)) = s.await {
                    lat.push(d);
                    errors += usize::from(!ok);
                }
            }
        }
        let n = lat.len();
        report("cold: every practice once", lat, errors, started.elapsed());
        cpu_report("cold", cpu_secs() - cpu, n, started.elapsed());
        println!(
            "after touching all {} practices: {} resident (weight {}), RSS {:.0} MB, peak RSS {:.0} MB",
            targets.len(),
            sim.resident_practices(),
            sim.resident_weight(),
            rss_mb("VmRSS:"),
            rss_mb("VmHWM:")
        );

        // 2. Warm working set.
        let warm = 200;
        for t in targets.iter().take(warm) {
            let _ = http.get(&t.url).header("x-api-key", &t.key).send().await;
        }
        let cpu = cpu_secs();
        let (lat, errors, elapsed) = open_loop(&http, targets.clone(), warm, secs).await;
        let n = lat.len();
        report(
            &format!("warm: {RATE}/s over {warm} practices"),
            lat,
            errors,
            elapsed,
        );
        cpu_report("warm", cpu_secs() - cpu, n, elapsed);

        // 3. Everyone, mostly cold.
        let cpu = cpu_secs();
        let (lat, errors, elapsed) = open_loop(&http, targets.clone(), targets.len(), secs).await;
        let n = lat.len();
        report(
            &format!("mixed: {RATE}/s over all {} practices", targets.len()),
            lat,
            errors,
            elapsed,
        );
        cpu_report("mixed", cpu_secs() - cpu, n, elapsed);
        println!(
            "end: {} resident (weight {}), RSS {:.0} MB, peak RSS {:.0} MB; load average {}",
            sim.resident_practices(),
            sim.resident_weight(),
            rss_mb("VmRSS:"),
            rss_mb("VmHWM:"),
            loadavg()
        );
        handle.shutdown().await;
    });
    generation_cost();
}
