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

use secrecy::SecretString;
use serde_json::{Value, json};
use slotbridge_market_sim::MarketSim;
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, PmsSim};
use slotbridge_service::node::{Node, NodeConfig};
use slotbridge_store::Keyring;
use tokio::net::TcpListener;

const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
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

struct Bench {
    http: reqwest::Client,
    pms: String,
    market: String,
    practice: String,
}

impl Bench {
    async fn get(&self, url: String) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }

    async fn slots(&self, day: &str) -> Vec<Value> {
        self.get(format!(
            "{}/_market/practices/{}/slots?date={day}",
            self.market, self.practice
        ))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }
}

fn offered(slots: &[Value], slot: &Value) -> bool {
    slots
        .iter()
        .any(|s| s["pms_resource_id"] == slot["pms_resource_id"] && s["start"] == slot["start"])
}

async fn run(samples: usize, pause: Duration) {
    println!(
        "{samples} samples of each, {} ms between samples",
        pause.as_millis()
    );
    let pms_sim = PmsSim::builder().build();
    let pms = pms_sim
        .serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("pms sim");
    let market_sim = MarketSim::builder()
        .consumer("slotbridge", "bench-api-key")
        .build()
        .expect("market sim");
    let (practice, practice_key) = market_sim
        .create_practice("Harbour Dental", "Australia/Sydney", "slotbridge")
        .expect("practice");
    let market = market_sim
        .serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("market sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(
        NodeConfig {
            database_url: format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
            market_url: market.api_url(),
            market_api_key: SecretString::from("bench-api-key"),
            user_agent: "slotbridge (bench@slotbridge.example) DEV".into(),
            pms_url: pms.base_url().parse().expect("url"),
            listen: "127.0.0.1:0".parse().expect("addr"),
            node_id: "bench".into(),
            poll_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(20),
            pms_webhook_secret: None,
            public_url: None,
            clock_offset: jiff::SignedDuration::ZERO,
        },
        Keyring::parse(KEY).expect("key"),
    )
    .await
    .expect("node");
    let b = Bench {
        http: reqwest::Client::new(),
        pms: pms.base_url(),
        market: market.base_url(),
        practice: practice.clone(),
    };
    let r = b
        .http
        .post(format!("{}/api/links", node.url()))
        .json(&json!({"site_slug": DEMO_SLUG, "pms_api_key": DEMO_API_KEY,
                      "practice_id": practice, "practice_key": practice_key}))
        .send()
        .await
        .expect("link");
    assert_eq!(r.status(), 201);
    let view = format!("{}/_market/practices/{}", b.market, b.practice);
    let linked_at = Instant::now();
    loop {
        let p = b.get(view.clone()).await;
        if p["pms_appointment_types"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(linked_at.elapsed() < Duration::from_secs(60), "no config");
        tokio::time::sleep(POLL).await;
    }
    b.http
        .post(format!("{view}/auto-link"))
        .send()
        .await
        .expect("auto-link");
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    let days: Vec<String> = (1..28)
        .map(|n| (today + jiff::Span::new().days(n)).to_string())
        .collect();
    // Wait for the first bookable day.
    while b.slots(&days[0]).await.is_empty() && b.slots(&days[1]).await.is_empty() {
        assert!(linked_at.elapsed() < Duration::from_secs(60), "no slots");
        tokio::time::sleep(POLL).await;
    }
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
        let slots = b.slots(day).await;
        let Some(slot) = slots.first() else { continue };
        let practitioner = slot["pms_resource_id"]
            .as_str()
            .and_then(|r| r.split(':').next())
            .expect("practitioner")
            .to_owned();
        let started = Instant::now();
        let r = b
            .http
            .post(format!("{}/_desk/sites/{DEMO_SLUG}/appointments", b.pms))
            .json(
                &json!({"practitioner": practitioner, "start": slot["start"], "end": slot["end"]}),
            )
            .send()
            .await
            .expect("desk");
        assert_eq!(r.status(), 201);
        while offered(&b.slots(day).await, slot) {
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
        let slots = b.slots(day).await;
        let Some(slot) = slots.last() else { continue };
        let n = booked.len();
        let started = Instant::now();
        let r = b
            .http
            .post(format!("{view}/bookings"))
            .json(&json!({
                "practitioner": slot["practitioner"],
                "appointment_type": slot["appointment_type"],
                "start": slot["start"],
                "patient": {"firstname": format!("Bench{n}"), "lastname": "Patient",
                            "dob": "1980-01-01", "phone": format!("04{n:08}"),
                            "email": format!("bench{n}@example.com")}
            }))
            .send()
            .await
            .expect("book");
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.expect("json")["booking_id"].to_string();
        let id = id.trim_matches('"');
        let status = loop {
            let s = b.get(format!("{}/_market/bookings/{id}", b.market)).await;
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
    node.shutdown().await;
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
