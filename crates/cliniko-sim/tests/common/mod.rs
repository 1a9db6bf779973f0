//! The test practice and a client that speaks to the simulator as an integration must: HTTP
//! Basic with the key, a `User-Agent` naming the app and an email, `Accept: application/json`.

#![allow(dead_code)]

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;
use slotbridge_cliniko_sim::{
    AppointmentTypeSpec, BusinessSpec, ClinikoSim, OnlineBookings, PatientSpec, PracticeSpec,
    PractitionerSpec, SeededPractice, SimHandle, WeeklySpec, serve,
};
use slotbridge_domain::clock::ManualClock;

pub const UA: &str = "slotbridge tests (dev@slotbridge.example)";

/// Sunday 1 March 2026, 20:00 in Sydney (UTC+11): the whole of Monday is ahead.
pub fn t0() -> Timestamp {
    "2026-03-01T09:00:00Z".parse().unwrap()
}

/// Harbour Dental on `shard`: one business; Dr Ada Lovelace (active, online, Monday to Friday
/// 09:00-12:00 and 13:00-17:00, offers both types) and Dr Grace Hopper (inactive); "Check-up"
/// 30 min shown online, "Surgery" 60 min not shown; `patients` patients.
pub fn practice(shard: &str, patients: usize) -> PracticeSpec {
    let week: Vec<WeeklySpec> = (1..=5)
        .map(|d| WeeklySpec {
            business: 0,
            day_of_week: d,
            intervals: vec![
                ("09:00".into(), "12:00".into()),
                ("13:00".into(), "17:00".into()),
            ],
        })
        .collect();
    PracticeSpec {
        name: "Harbour Dental".into(),
        shard: shard.into(),
        time_zone: "Australia/Sydney".into(),
        api_key: None,
        online_bookings: OnlineBookings::default(),
        timeslot_size_in_minutes: 15,
        businesses: vec![BusinessSpec {
            name: "Harbour Dental".into(),
            show_in_online_bookings: true,
        }],
        appointment_types: vec![
            AppointmentTypeSpec {
                name: "Check-up".into(),
                duration_in_minutes: 30,
                show_in_online_bookings: true,
                category: Some("Dental".into()),
            },
            AppointmentTypeSpec {
                name: "Surgery".into(),
                duration_in_minutes: 60,
                show_in_online_bookings: false,
                category: None,
            },
        ],
        practitioners: vec![
            PractitionerSpec {
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                title: "Dr".into(),
                designation: "Dentist".into(),
                active: true,
                show_in_online_bookings: true,
                businesses: vec![0],
                appointment_types: vec![0, 1],
                availabilities: week,
            },
            PractitionerSpec {
                first_name: "Grace".into(),
                last_name: "Hopper".into(),
                title: "Dr".into(),
                designation: "Dentist".into(),
                active: false,
                show_in_online_bookings: true,
                businesses: vec![0],
                appointment_types: vec![0],
                availabilities: Vec::new(),
            },
        ],
        patients: (0..patients)
            .map(|i| PatientSpec {
                first_name: format!("Pat{i:03}"),
                last_name: "Smith".into(),
                date_of_birth: Some(jiff::civil::date(1980, 1 + (i % 12) as i8, 15)),
                email: Some(format!("pat{i}@example.com")),
                mobile: Some("0400000000".into()),
            })
            .collect(),
    }
}

pub struct Env {
    pub sim: ClinikoSim,
    pub clock: Arc<ManualClock>,
    pub handle: SimHandle,
    pub practice: SeededPractice,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn start(spec: PracticeSpec, rate_limit: Option<u32>) -> Env {
        let clock = Arc::new(ManualClock::new(t0()));
        let sim = ClinikoSim::builder()
            .clock(clock.clone())
            .rate_limit(rate_limit)
            .build();
        let practice = sim.seed(spec).expect("seed");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve(listener, sim.clone()).await.unwrap();
        Env {
            sim,
            clock,
            handle,
            practice,
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> String {
        self.handle.api_base(&self.practice.shard)
    }

    pub fn b(&self) -> u64 {
        self.practice.business_ids[0].parse().unwrap()
    }
    pub fn p(&self) -> u64 {
        self.practice.practitioner_ids[0].parse().unwrap()
    }
    pub fn t(&self, i: usize) -> u64 {
        self.practice.appointment_type_ids[i].parse().unwrap()
    }

    /// A GET as an integration sends it, on the practice's shard; `path` starts with `/`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_url(&format!("{}{path}", self.base())).await
    }

    pub async fn get_url(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .basic_auth(&self.practice.api_key, Some(""))
            .header("User-Agent", UA)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .basic_auth(&self.practice.api_key, Some(""))
            .header("User-Agent", UA)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}
