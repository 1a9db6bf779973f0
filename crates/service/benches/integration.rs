//! End-to-end latencies of the integration, over real HTTP against both simulators, with the
//! production polling settings (5 s) so that what is measured is the push path:
//!
//! - freshness: a desk booking in the PMS → its slot gone from the marketplace's bookable slots;
//! - bookings: a patient's booking on the marketplace → Confirmed by the integration
//!   (confirmInsert), through the marketplace's webhook, the outbox, patient matching and the
//!   PMS insert.
//!
//! `cargo bench -p slotbridge-service --bench integration [-- N [PAUSE_MS]]` (N samples of each,
//! default 60; PAUSE_MS between samples, default 0: back to back).
//! Under `cargo test` it only says how to run it: it is a measurement, not a test.

use std::time::{Duration, Instant};

use slotbridge_pms_sim::DEMO_SLUG;
use slotbridge_testkit::control::offers;
use slotbridge_testkit::{Stack, booking_body, patient, poll_until};

const POLL: Duration = Duration::from_millis(10);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "integration: a measurement; run it with `cargo bench -p slotbridge-service --bench integration`"
        );
        return;
    }
    let numbers: Vec<u64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let samples = numbers.first().map_or(60, |n| *n as usize);
    let pause = Duration::from_millis(numbers.get(1).copied().unwrap_or(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(samples, pause));
}

async fn run(samples: usize, pause: Duration) {
    println!(
        "{samples} samples of each, {} ms between samples",
        pause.as_millis()
    );
    // The production polling settings: what is measured is the push path.
    let mut b = Stack::builder()
        .node_id("bench")
        .user_agent("slotbridge (bench@slotbridge.example) DEV")
        .poll_interval(Duration::from_secs(5))
        .lease_ttl(Duration::from_secs(20))
        .link(false)
        .start()
        .await
        .expect("stack");
    let practice = b.harbour().practice_id.clone();
    b.link(b.harbour()).await;
    let linked_at = Instant::now();
    let within = || Duration::from_secs(60).saturating_sub(linked_at.elapsed());
    poll_until(within(), POLL, || async {
        let p = b.practice(&practice).await;
        p["pms_appointment_types"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            .then_some(())
    })
    .await
    .expect("no config");
    b.auto_link(&practice).await.expect("auto-link");
    let today = slotbridge_testkit::today_in(slotbridge_testkit::HARBOUR_TZ);
    let days: Vec<String> = (1..28)
        .map(|n| (today + jiff::Span::new().days(n)).to_string())
        .collect();
    // Wait for the first bookable day.
    poll_until(within(), POLL, || async {
        let open = !b.slots(&practice, &days[0]).await.is_empty()
            || !b.slots(&practice, &days[1]).await.is_empty();
        open.then_some(())
    })
    .await
    .expect("no slots");
    println!(
        "linked: bookable slots on the marketplace {:.2} s after the link was created",
        linked_at.elapsed().as_secs_f64()
    );

    // Freshness: desk bookings.
    let mut fresh = Vec::new();
    let mut day_ix = 0;
    while fresh.len() < samples {
        let day = &days[day_ix % days.len()];
        day_ix += 1;
        let slots = b.slots(&practice, day).await;
        let Some(slot) = slots.first() else { continue };
        let started = Instant::now();
        b.desk_book(DEMO_SLUG, slot).await;
        while offers(&b.slots(&practice, day).await, slot) {
            assert!(started.elapsed() < Duration::from_secs(30), "stale slot");
            tokio::time::sleep(POLL).await;
        }
        fresh.push(started.elapsed());
        tokio::time::sleep(pause).await;
    }
    report(
        "PMS desk booking → slot gone from the marketplace",
        &mut fresh,
    );

    // Bookings through the marketplace.
    let mut booked = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    while booked.len() < samples {
        let day = &days[day_ix % days.len()];
        day_ix += 1;
        let slots = b.slots(&practice, day).await;
        let Some(slot) = slots.last() else { continue };
        let n = booked.len();
        let started = Instant::now();
        let who = patient(
            &format!("Bench{n}"),
            "Patient",
            "1980-01-01",
            &format!("04{n:08}"),
            &format!("bench{n}@example.com"),
        );
        let id = b.book(&practice, &booking_body(slot, who)).await;
        let status = loop {
            let s = b.booking(id).await;
            if s["status"] != "Requested" {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "unanswered");
            tokio::time::sleep(POLL).await;
        };
        booked.push(started.elapsed());
        let outcome = if status["auto_confirmed"] == true {
            "auto-confirmed".to_owned()
        } else {
            status["status"].as_str().unwrap_or("?").to_owned()
        };
        *outcomes.entry(outcome).or_default() += 1;
        tokio::time::sleep(pause).await;
    }
    report(
        "marketplace booking → answered by the integration",
        &mut booked,
    );
    println!("  outcomes: {outcomes:?}");
    b.stop_node(0).await;
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let q = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "{what}: n={} p50={:.0} ms p90={:.0} ms p99={:.0} ms max={:.0} ms",
        samples.len(),
        q(0.50),
        q(0.90),
        q(0.99),
        q(1.0)
    );
}
