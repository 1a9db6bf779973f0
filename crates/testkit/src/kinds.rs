//! The end-to-end suite over both PMS kinds. A [`crate::Stack`] built with
//! [`crate::StackBuilder::pms_kind`] links its practice ("Harbour Dental" on the marketplace)
//! either to the PMS simulator's demo site ([`PmsKind::Exact`]) or to the business of a
//! practice seeded in an in-process Cliniko simulator ([`PmsKind::Cliniko`]). A scenario is
//! written once against the helpers here (a desk booking, cancelling at the desk, what the
//! diary holds, patient files, a practitioner's hours and online booking, appointment types)
//! and instantiated for each kind; each helper acts on the kind's own simulator, the Cliniko
//! one through its control API ([`slotbridge_cliniko_sim::DeskAction`]) and its published API.
//!
//! What differs between the kinds, and is said here once:
//! - **Freshness.** The Exact-style PMS pushes a webhook for every change, so a desk change is
//!   on the marketplace within 5 s. Cliniko documents no webhooks: its change feed is polled at
//!   most every 10 s per link (`ClinikoConfig::changes_every`, to stay inside the key's 200
//!   requests a minute), so a desk change can take up to 10 s more ([`PmsKind::fresh_within`]).
//! - **Practitioners.** Cliniko's practitioners have one designation, the generated practice
//!   one specialty each, so one marketplace resource per practitioner (the resource id is the
//!   practitioner's id).
//! - **Appointment types.** Cliniko's desk cannot rename a type; it changes its duration, or
//!   hides it from online bookings ([`crate::Stack::desk_drop_type`]).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use slotbridge_cliniko_sim::{ClinikoSim, DeskAction, SeededPractice, generate};
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG};

use crate::control::{get_json, practitioner_of};
use crate::stack::Stack;

/// Which PMS a stack's practice is linked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmsKind {
    /// The Exact-style API of the PMS simulator (the demo site, Harbour Dental).
    Exact,
    /// Cliniko's published API, served by the Cliniko simulator.
    Cliniko,
}

impl PmsKind {
    /// How long a change made at the desk may take to reach the marketplace: 5 s with the
    /// Exact-style PMS's webhooks, 15 s when Cliniko's change feed is polled every 10 s.
    pub fn fresh_within(self) -> Duration {
        match self {
            PmsKind::Exact => Duration::from_secs(5),
            PmsKind::Cliniko => Duration::from_secs(15),
        }
    }
}

/// The seed of the Cliniko practice a stack links ([`generate::practice`]): one business, a
/// hygienist and one to three dentists, an empty diary.
pub const CLINIKO_SEED: u64 = 11;

/// The User-Agent the helpers send to the Cliniko API (it must name an app and an address).
const CLINIKO_UA: &str = "slotbridge tests (tests@slotbridge.example)";

/// A stack's Cliniko simulator, served in-process, and the practice seeded in it.
pub struct ClinikoSide {
    /// The simulator (its desk, its appointments).
    pub sim: ClinikoSim,
    /// Where it is served.
    pub handle: slotbridge_cliniko_sim::SimHandle,
    /// The practice the stack links (its key, business, practitioners, types, patients).
    pub practice: SeededPractice,
    http: reqwest::Client,
}

impl ClinikoSide {
    /// A Cliniko simulator with the practice of `seed` (on shard `au1`), served on loopback.
    ///
    /// # Errors
    /// The listener cannot be bound, or the practice is refused.
    pub async fn start(seed: u64) -> anyhow::Result<ClinikoSide> {
        let sim = ClinikoSim::builder().build();
        let practice = sim
            .seed(generate::practice(seed, "au1"))
            .map_err(|e| anyhow::anyhow!("seeding the Cliniko practice: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let handle = slotbridge_cliniko_sim::serve(listener, sim.clone()).await?;
        Ok(ClinikoSide {
            sim,
            handle,
            practice,
            http: crate::control::client_builder().build()?,
        })
    }

    /// The API base of the practice's shard, ending in `/v1/` (a node's `cliniko_url`).
    pub fn api_url(&self) -> url::Url {
        format!("{}/", self.handle.api_base(&self.practice.shard))
            .parse()
            .expect("the simulator's API URL")
    }

    /// The linked business.
    pub fn business_id(&self) -> &str {
        &self.practice.business_ids[0]
    }

    /// Do `action` at the practice's desk; the id of what it made, if anything. Panics when
    /// the simulator refuses it.
    pub fn desk(&self, action: DeskAction) -> Option<u64> {
        let what = format!("{action:?}");
        self.sim
            .desk(self.practice.account_id, action)
            .unwrap_or_else(|e| panic!("the Cliniko desk refused {what}: {e}"))
            .id
    }

    fn business(&self) -> u64 {
        self.business_id().parse().expect("a numeric business id")
    }

    /// A request to the practice's Cliniko API with its key.
    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_url()))
            .basic_auth(&self.practice.api_key, None::<&str>)
            .header("user-agent", CLINIKO_UA)
            .header("accept", "application/json")
    }
}

/// An id as Cliniko's JSON gives it (a string or a number) as text.
fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A slot's start or end as an instant.
fn instant(slot: &Value, field: &str) -> Timestamp {
    slot[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {field} instant in {slot}"))
}

/// An appointment in the PMS diary: its id and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The PMS's appointment id.
    pub id: String,
    /// Its start.
    pub start: Timestamp,
    /// Its end.
    pub end: Timestamp,
}

/// The helpers a scenario uses whatever the stack's PMS kind.
impl Stack {
    /// The PMS the stack's practice is linked to.
    pub fn kind(&self) -> PmsKind {
        if self.cliniko.is_some() {
            PmsKind::Cliniko
        } else {
            PmsKind::Exact
        }
    }

    /// The stack's Cliniko simulator (panics on an Exact-style stack).
    pub fn cliniko(&self) -> &ClinikoSide {
        self.cliniko.as_ref().expect("a Cliniko stack")
    }

    /// Link the marketplace practice `p` to the stack's practice in its PMS (the demo site, or
    /// the Cliniko business) through the first node's admin API (201 asserted); the link id.
    pub async fn link_listing(&self, p: &crate::Practice) -> String {
        match &self.cliniko {
            None => self.link(p).await,
            Some(c) => {
                let token = self.token();
                let v = crate::link_cliniko(
                    &self.http,
                    &self.node().url(),
                    token.as_deref(),
                    &c.practice.api_key,
                    c.business_id(),
                    p,
                )
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
                v["id"].as_str().expect("link id").to_owned()
            }
        }
    }

    /// The front desk books `slot`'s time with its practitioner (and, on Cliniko, its type);
    /// the new appointment's id.
    pub async fn desk_book_slot(&self, slot: &Value) -> String {
        match &self.cliniko {
            None => {
                let r = self
                    .http
                    .post(self.desk(DEMO_SLUG, "/appointments"))
                    .json(&json!({"practitioner": practitioner_of(slot),
                        "start": slot["start"], "end": slot["end"]}))
                    .send()
                    .await
                    .expect("desk");
                let status = r.status();
                let v: Value = r.json().await.unwrap_or_default();
                assert_eq!(status, 201, "desk booking: {v}");
                id_text(&v["id"])
            }
            Some(c) => {
                let kind = slot["pms_appointment_type_id"]
                    .as_str()
                    .and_then(|t| t.split(':').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("no Cliniko type in {slot}"));
                let id = c.desk(DeskAction::Book {
                    business_id: c.business(),
                    practitioner_id: practitioner_of(slot).parse().expect("practitioner id"),
                    appointment_type_id: kind,
                    patient_id: c.practice.patient_ids.first().copied(),
                    starts_at: instant(slot, "start"),
                    ends_at: Some(instant(slot, "end")),
                    notes: None,
                });
                id.expect("the new appointment's id").to_string()
            }
        }
    }

    /// The desk cancels the appointment `id` (the Exact-style desk removes it; Cliniko's
    /// cancels it, reason 40 "other", and its list keeps it with `cancelled_at`).
    pub async fn desk_cancel(&self, id: &str) {
        match &self.cliniko {
            None => {
                let r = self
                    .http
                    .delete(self.desk(DEMO_SLUG, &format!("/appointments/{id}")))
                    .send()
                    .await
                    .expect("desk");
                assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
            }
            Some(c) => {
                c.desk(DeskAction::Cancel {
                    appointment_id: id.parse().expect("a Cliniko appointment id"),
                    reason: 40,
                });
            }
        }
    }

    /// The live appointments of the diary on the practice-local `day` that carry the
    /// reference of the marketplace booking `booking_id` (`HE-{id}`: the Exact-style
    /// `external_ref`, a `slotbridge-ref:` line of Cliniko's `notes`).
    pub async fn diary_holds(&self, day: &str, booking_id: &str) -> Vec<Held> {
        let reference = format!("HE-{booking_id}");
        match &self.cliniko {
            None => self
                .appointments_of(DEMO_SLUG, day, booking_id)
                .await
                .iter()
                .map(|a| Held {
                    id: id_text(&a["id"]),
                    start: instant(a, "start"),
                    end: instant(a, "end"),
                })
                .collect(),
            Some(c) => {
                let tz = jiff::tz::TimeZone::get(&self.harbour().timezone).expect("zone");
                let line = format!("{}{reference}", slotbridge_pms::cliniko::REF_PREFIX);
                c.sim
                    .live_appointments(c.practice.account_id)
                    .into_iter()
                    .filter(|a| a.4.as_deref().is_some_and(|n| n.lines().any(|l| l == line)))
                    .filter(|a| a.2.to_zoned_datetime(tz.clone()).date().to_string() == day)
                    .map(|a| Held {
                        id: a.0.to_string(),
                        start: a.2,
                        end: a.3,
                    })
                    .collect()
            }
        }
    }

    /// The desk turns `practitioner`'s online booking on or off.
    pub async fn desk_online_booking(&self, practitioner: &str, enabled: bool) {
        match &self.cliniko {
            None => {
                let r = self
                    .http
                    .put(self.desk(
                        DEMO_SLUG,
                        &format!("/practitioners/{practitioner}/online-booking"),
                    ))
                    .json(&json!({"enabled": enabled}))
                    .send()
                    .await
                    .expect("desk");
                assert!(r.status().is_success(), "{}", r.status());
            }
            Some(c) => {
                c.desk(DeskAction::SetPractitioner {
                    practitioner_id: practitioner.parse().expect("practitioner id"),
                    active: None,
                    show_in_online_bookings: Some(enabled),
                });
            }
        }
    }

    /// The desk gives `practitioner` Sunday hours from `start` to `end` (`HH:MM`), keeping the
    /// rest of the week as it is.
    pub async fn desk_sunday_hours(&self, practitioner: &str, start: &str, end: &str) {
        match &self.cliniko {
            None => {
                // The demo site's hours of this practitioner, as the PMS reads them.
                let setup = self.pms_api_get("/sessions").await;
                let mine = setup["items"]
                    .as_array()
                    .and_then(|a| a.iter().find(|h| h["practitioner"] == practitioner))
                    .cloned()
                    .unwrap_or_else(|| panic!("no hours of {practitioner}: {setup}"));
                let mut sessions = mine["sessions"].as_array().cloned().unwrap_or_default();
                sessions.push(json!({"days": ["sun"], "start": start, "end": end}));
                let r = self
                    .http
                    .put(self.desk(DEMO_SLUG, &format!("/practitioners/{practitioner}/hours")))
                    .json(&json!({"sessions": sessions, "breaks": mine["breaks"]}))
                    .send()
                    .await
                    .expect("desk");
                assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
            }
            Some(c) => {
                c.desk(DeskAction::SetDailyAvailability {
                    business_id: c.business(),
                    practitioner_id: practitioner.parse().expect("practitioner id"),
                    day_of_week: 7,
                    intervals: vec![(start.to_owned(), end.to_owned())],
                });
            }
        }
    }

    /// The desk takes the appointment type `id` away from online bookings: the Exact-style
    /// desk deletes the reason, Cliniko's stops showing the type in online bookings. (Archiving
    /// the type is Cliniko's other way; the change feed polls `/appointment_types/archived` for
    /// it, tested in crates/pms/tests/cliniko_contract.rs.)
    pub async fn desk_drop_type(&self, id: &str) {
        match &self.cliniko {
            None => {
                let r = self
                    .http
                    .delete(self.desk(DEMO_SLUG, &format!("/reasons/{id}")))
                    .send()
                    .await
                    .expect("delete");
                assert!(r.status().is_success(), "{}", r.status());
            }
            Some(c) => {
                c.desk(DeskAction::SetAppointmentType {
                    appointment_type_id: id.parse().expect("type id"),
                    duration_in_minutes: None,
                    show_in_online_bookings: Some(false),
                    archived: None,
                });
            }
        }
    }

    /// A patient file made in the PMS through its API, from the suite's Exact-style shape
    /// (`first_name`, `last_name`, `date_of_birth`, `mobile_phone`, `email`, `address` with
    /// `line1`, `suburb`, `state`, `postcode`); its id.
    pub async fn pms_patient(&self, file: &Value) -> String {
        let (status, v) = match &self.cliniko {
            None => {
                let r = self
                    .http
                    .post(format!(
                        "{}/api/v1/sites/{}/patients",
                        self.pms_url, DEMO_SLUG
                    ))
                    .header("x-api-key", DEMO_API_KEY)
                    .json(file)
                    .send()
                    .await
                    .expect("PMS");
                (r.status(), r.json::<Value>().await.unwrap_or_default())
            }
            Some(c) => {
                let a = &file["address"];
                let body = json!({
                    "first_name": file["first_name"], "last_name": file["last_name"],
                    "date_of_birth": file["date_of_birth"], "email": file["email"],
                    "patient_phone_numbers": [{"phone_type": "Mobile", "number": file["mobile_phone"]}],
                    "address_1": a["line1"], "city": a["suburb"], "state": a["state"],
                    "post_code": a["postcode"],
                });
                let r = c
                    .api(reqwest::Method::POST, "patients")
                    .json(&body)
                    .send()
                    .await
                    .expect("Cliniko");
                (r.status(), r.json::<Value>().await.unwrap_or_default())
            }
        };
        assert_eq!(status, 201, "creating the patient file: {v}");
        id_text(&v["id"])
    }

    /// The ids of the PMS's patient files born on `dob` (YYYY-MM-DD).
    pub async fn pms_patients_born(&self, dob: &str) -> Vec<String> {
        let (v, key) = match &self.cliniko {
            None => {
                let v: Value = self
                    .http
                    .get(format!(
                        "{}/api/v1/sites/{}/patients?date_of_birth={dob}",
                        self.pms_url, DEMO_SLUG
                    ))
                    .header("x-api-key", DEMO_API_KEY)
                    .send()
                    .await
                    .expect("PMS")
                    .json()
                    .await
                    .expect("patients");
                (v, "items")
            }
            Some(c) => {
                let v: Value = c
                    .api(reqwest::Method::GET, "patients")
                    .query(&[
                        ("q[]", format!("date_of_birth:={dob}")),
                        ("per_page", "100".to_owned()),
                    ])
                    .send()
                    .await
                    .expect("Cliniko")
                    .json()
                    .await
                    .expect("patients");
                (v, "patients")
            }
        };
        v[key]
            .as_array()
            .map(|a| a.iter().map(|p| id_text(&p["id"])).collect())
            .unwrap_or_default()
    }

    /// GET `path` of the demo site's Exact-style API (with its key).
    async fn pms_api_get(&self, path: &str) -> Value {
        let url = format!("{}/api/v1/sites/{}{path}", self.pms_url, DEMO_SLUG);
        let r = self
            .http
            .get(&url)
            .header("x-api-key", DEMO_API_KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.expect("json")
    }
}

/// GET a Cliniko simulator's control statistics (`/_sim/stats`): requests per account.
///
/// # Panics
/// Unless it answers 2xx with JSON.
pub async fn cliniko_stats(http: &reqwest::Client, base_url: &str) -> Value {
    get_json(http, &format!("{base_url}/_sim/stats")).await
}
