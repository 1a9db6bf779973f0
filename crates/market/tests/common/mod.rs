//! Shared test helpers: a simulator on 127.0.0.1:0, a client for it, and the control API.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use slotbridge_market::{
    ClientConfig, MarketClient, PracticeClient, PracticeCredentials,
    types::{
        AvailabilityRange, AvailabilitySnapshot, LivenessContract, PmsAppointmentType, PmsResource,
    },
};
use slotbridge_market_sim::{MarketSim, SimHandle};

pub const API_KEY: &str = "test-api-key-0123456789";
pub const CONSUMER: &str = "slotbridge";

/// A running simulator, a client and one consented practice.
pub struct World {
    pub sim: SimHandle,
    pub client: MarketClient,
    pub practice: PracticeClient,
    pub practice_id: String,
    pub practice_key: String,
    pub http: reqwest::Client,
}

pub async fn world() -> World {
    world_with(MarketSim::builder()).await
}

pub async fn world_with(builder: slotbridge_market_sim::MarketSimBuilder) -> World {
    let sim = builder
        .consumer(CONSUMER, API_KEY)
        .build()
        .expect("sim builds");
    let (practice_id, practice_key) = sim
        .create_practice("Harbour Dental", "Australia/Sydney", CONSUMER)
        .expect("practice");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim = sim.serve(listener).await.expect("serve");
    let client = client_for(&sim, API_KEY);
    let practice = client.practice(PracticeCredentials::new(&practice_id, &practice_key));
    World {
        sim,
        client,
        practice,
        practice_id,
        practice_key,
        http: reqwest::Client::new(),
    }
}

pub fn client_for(sim: &SimHandle, api_key: &str) -> MarketClient {
    MarketClient::new(
        ClientConfig::new(sim.api_url(), api_key.to_owned().into())
            .with_timeout(Duration::from_secs(20))
            .with_retries(2, Duration::from_millis(50)),
    )
    .expect("client")
}

impl World {
    pub fn url(&self, path: &str) -> String {
        format!("{}/_market{path}", self.sim.base_url())
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("control GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("control POST");
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    /// Liveness contract, two resources, three PMS types (one per-resource), all linked.
    pub async fn configure(&self) {
        self.practice
            .set_liveness_contract(&always_live())
            .await
            .expect("liveness");
        self.practice
            .send_pms_resources(&resources())
            .await
            .expect("resources");
        self.practice
            .send_pms_appointment_types(&types())
            .await
            .expect("types");
        let (s, _) = self
            .post(
                &format!("/practices/{}/auto-link", self.practice_id),
                json!({}),
            )
            .await;
        assert_eq!(s, 200);
    }

    pub fn pid(&self) -> &str {
        &self.practice_id
    }

    /// Book the first slot of `date`; returns (booking id, slot).
    pub async fn book_first(&self, date: &str) -> (i64, Value) {
        let slots = self
            .get(&format!("/practices/{}/slots?date={date}", self.pid()))
            .await;
        let slot = slots
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .expect("a slot");
        let id = self.book(&slot).await;
        (id, slot)
    }

    pub async fn book(&self, slot: &Value) -> i64 {
        let (s, v) = self
            .post(
                &format!("/practices/{}/bookings", self.pid()),
                json!({
                    "practitioner": slot["practitioner"], "appointment_type": slot["appointment_type"], "start": slot["start"],
                    "patient": {"firstname": "Ann", "lastname": "Lee", "dob": "1990-02-23", "phone": "0400 000 000", "email": "ann@example.com"}
                }),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["booking_id"].as_i64().expect("booking_id")
    }

    pub async fn booking(&self, id: i64) -> Value {
        self.get(&format!("/bookings/{id}")).await
    }
}

pub fn always_live() -> LivenessContract {
    serde_json::from_value(json!({"liveHours": {
        "monday": [{"start": "00:00", "end": "23:59"}], "tuesday": [{"start": "00:00", "end": "23:59"}],
        "wednesday": [{"start": "00:00", "end": "23:59"}], "thursday": [{"start": "00:00", "end": "23:59"}],
        "friday": [{"start": "00:00", "end": "23:59"}], "saturday": [{"start": "00:00", "end": "23:59"}],
        "sunday": [{"start": "00:00", "end": "23:59"}], "publicHolidays": [{"start": "09:00", "end": "12:00"}]
    }}))
    .expect("contract")
}

pub fn resources() -> Vec<PmsResource> {
    vec![
        PmsResource {
            pms_resource_id: "R1".into(),
            pms_resource_name: "Dr Do Good".into(),
            pms_practitioner_title: Some("Dr".into()),
            pms_practitioner_firstname: Some("Do".into()),
            pms_practitioner_lastname: Some("Good".into()),
        },
        PmsResource {
            pms_resource_id: "R2".into(),
            pms_resource_name: "Hygienist Jo".into(),
            pms_practitioner_title: None,
            pms_practitioner_firstname: Some("Jo".into()),
            pms_practitioner_lastname: None,
        },
    ]
}

pub fn types() -> Vec<PmsAppointmentType> {
    vec![
        PmsAppointmentType {
            pms_appointment_type_id: "HE".into(),
            pms_appointment_type_name: "Healthengine".into(),
            pms_appointment_length: Some(30),
            pms_resource_id: None,
        },
        PmsAppointmentType {
            pms_appointment_type_id: "CL:R2".into(),
            pms_appointment_type_name: "Clean - Hygienist Jo".into(),
            pms_appointment_length: Some(45),
            pms_resource_id: Some("R2".into()),
        },
    ]
}

/// A date comfortably in the future (slots in the past are not bookable).
pub fn future_date(days: i64) -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date()
        .checked_add(jiff::Span::new().days(days))
        .expect("date")
}

pub fn snapshot(
    resource: &str,
    date: jiff::civil::Date,
    ranges: &[(&str, &str, i64)],
) -> AvailabilitySnapshot {
    AvailabilitySnapshot {
        id: None,
        date,
        pms_resource_id: resource.into(),
        availability: ranges
            .iter()
            .map(|(s, e, l)| AvailabilityRange {
                start: s.parse().expect("start"),
                end: e.parse().expect("end"),
                slot_length: *l,
                pms_appointment_type_ids: None,
            })
            .collect(),
    }
}

/// Poll `f` until it returns Some, or panic after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
