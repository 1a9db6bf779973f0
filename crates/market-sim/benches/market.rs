//! Benchmarks of the marketplace side: slicing a day into slots, storing snapshots (validation and
//! hashing), and a gzipped 100-snapshot batch to the simulator over loopback HTTP.

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::civil::{Date, date};
use std::io::Write as _;

use slotbridge_market_sim::{
    Market, MarketSim, Timing, slots,
    wire::{AvailabilityRange, AvailabilitySnapshot, PmsAppointmentType, PmsResource},
};

const RESOURCES: usize = 20;

fn resources() -> Vec<PmsResource> {
    (0..RESOURCES)
        .map(|i| PmsResource {
            pms_resource_id: format!("R{i}"),
            pms_resource_name: format!("Dr {i}"),
            pms_practitioner_title: None,
            pms_practitioner_firstname: None,
            pms_practitioner_lastname: None,
        })
        .collect()
}

fn types() -> Vec<PmsAppointmentType> {
    [("HE", 30), ("NP", 60), ("CL", 45)]
        .iter()
        .map(|(id, len)| PmsAppointmentType {
            pms_appointment_type_id: (*id).into(),
            pms_appointment_type_name: format!("type {id}"),
            pms_appointment_length: Some(*len),
            pms_resource_id: None,
        })
        .collect()
}

fn snap(r: usize, d: Date) -> AvailabilitySnapshot {
    let range = |s: &str, e: &str| AvailabilityRange {
        start: s.parse().unwrap(),
        end: e.parse().unwrap(),
        slot_length: 900,
        pms_appointment_type_ids: None,
    };
    AvailabilitySnapshot {
        id: None,
        date: d,
        pms_resource_id: format!("R{r}"),
        availability: vec![range("08:00", "12:30"), range("13:30", "18:00")],
    }
}

/// A practice of 20 practitioners with 3 linked types each and a published day.
fn market(day: Date) -> (Market, u64) {
    let mut m = Market::new(Timing { time_factor: 1.0 }, 100);
    let pid = m
        .add_practice("Bench Dental", "Australia/Sydney", false)
        .unwrap();
    m.put_resources(pid, resources()).unwrap();
    m.put_types(pid, types()).unwrap();
    slotbridge_market_sim::control::auto_link_practice(&mut m, pid).unwrap();
    let now = jiff::Timestamp::now();
    for r in 0..RESOURCES {
        m.put_availability(pid, &snap(r, day), now).unwrap();
    }
    (m, pid)
}

fn bench(c: &mut Criterion) {
    let day = date(2030, 3, 4);
    let (m, pid) = market(day);
    let practice = m.practice(pid).unwrap();
    let n = slots::slice(practice, day).len();
    c.bench_function(
        &format!("slice a day: 20 practitioners x 3 types -> {n} slots"),
        |b| b.iter(|| slots::slice(std::hint::black_box(practice), day)),
    );

    let batch: Vec<AvailabilitySnapshot> = (0..100)
        .map(|i| {
            snap(
                i % RESOURCES,
                day.checked_add(jiff::Span::new().days((i / RESOURCES) as i64))
                    .unwrap(),
            )
        })
        .collect();
    c.bench_function("store 100 snapshots (validate, hash, replace)", |b| {
        b.iter_batched(
            || market(day),
            |(mut m, pid)| {
                let now = jiff::Timestamp::now();
                for s in &batch {
                    m.put_availability(pid, s, now).unwrap();
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let (post, handle) = rt.block_on(async {
        let sim = MarketSim::builder()
            .consumer("bench", "bench-key")
            .build()
            .unwrap();
        let (id, key) = sim
            .create_practice("Bench Dental", "Australia/Sydney", "bench")
            .unwrap();
        let h = sim
            .serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
        let api = h.api_url();
        let post = move |path: &str, body: Vec<u8>, gzip: bool| {
            let mut r = http
                .post(format!("{api}{path}"))
                .header("api-key", "bench-key")
                .header("practice-id", &id)
                .header("practice-key", &key)
                .header("content-type", "application/json");
            if gzip {
                r = r.header("content-encoding", "gzip");
            }
            r.body(body).send()
        };
        let r = post(
            "/config/pmsResources/snapshot",
            serde_json::to_vec(&resources()).unwrap(),
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let r = post(
            "/config/pmsAppointmentTypes/snapshot",
            serde_json::to_vec(&types()).unwrap(),
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        (post, h)
    });
    let mut flip = 0u32;
    c.bench_function(
        "POST /availability/snapshots with 100 changed snapshots (gzipped)",
        |b| {
            b.iter(|| {
                flip += 1;
                let mut changed = batch.clone();
                for s in &mut changed {
                    s.availability[0].slot_length = 900 + i64::from(flip % 2) * 60;
                }
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&serde_json::to_vec(&changed).unwrap())
                    .unwrap();
                let body = gz.finish().unwrap();
                let r: serde_json::Value = rt
                    .block_on(async {
                        post("/availability/snapshots", body, true)
                            .await
                            .unwrap()
                            .json()
                            .await
                    })
                    .unwrap();
                assert_eq!(r["created"].as_array().map(Vec::len), Some(100), "{r}");
            })
        },
    );
    drop(handle);
}

criterion_group!(benches, bench);
criterion_main!(benches);
