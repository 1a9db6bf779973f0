//! The simulators' control APIs over HTTP: the marketplace's patient side and practice views
//! (`/_market`), the PMS desk (`/_desk`), and the marketplace's `--record` file.

use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::poll::{eventually_or, poll_until};

/// How long one control call may take.
const CALL: Duration = Duration::from_secs(20);

/// The simulators' control APIs, by URL (a [`crate::Sims`] derefs to one; the demo's test makes
/// one from the URLs the demo prints).
#[derive(Debug, Clone)]
pub struct Control {
    /// The client every helper uses.
    pub http: reqwest::Client,
    /// The marketplace simulator, `http://ADDR`.
    pub market_url: String,
    /// The PMS simulator, `http://ADDR`.
    pub pms_url: String,
}

impl Control {
    /// Helpers on the simulators at these base URLs.
    pub fn new(market_url: impl Into<String>, pms_url: impl Into<String>) -> Control {
        Control {
            http: client_builder().build().expect("client"),
            market_url: market_url.into(),
            pms_url: pms_url.into(),
        }
    }

    /// `{market}/_market{path}`.
    pub fn market(&self, path: &str) -> String {
        format!("{}/_market{path}", self.market_url)
    }

    /// `{pms}/_desk/sites/{slug}{path}`.
    pub fn desk(&self, slug: &str, path: &str) -> String {
        format!("{}/_desk/sites/{slug}{path}", self.pms_url)
    }

    /// GET a JSON document; panics with the URL unless it answers 2xx with JSON.
    pub async fn get(&self, url: &str) -> Value {
        get_json(&self.http, url).await
    }

    /// The marketplace's view of a practice (configuration, links, consent).
    pub async fn practice(&self, practice_id: &str) -> Value {
        self.get(&self.market(&format!("/practices/{practice_id}")))
            .await
    }

    /// The bookable slots of a practice on a (practice-local) day.
    pub async fn slots(&self, practice_id: &str, day: impl Display) -> Vec<Value> {
        self.get(&self.market(&format!("/practices/{practice_id}/slots?date={day}")))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// One booking as the marketplace holds it.
    pub async fn booking(&self, id: impl Display) -> Value {
        self.get(&self.market(&format!("/bookings/{id}"))).await
    }

    /// Every booking of a practice.
    pub async fn bookings(&self, practice_id: &str) -> Vec<Value> {
        self.get(&self.market(&format!("/practices/{practice_id}/bookings")))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A patient books on the marketplace (`body`: see [`booking_body`]); the booking id.
    /// Panics unless the marketplace answers 201.
    pub async fn book(&self, practice_id: &str, body: &Value) -> i64 {
        let (status, text) = self.post_booking(practice_id, body).await;
        assert_eq!(status, 201, "booking at {practice_id}: {text}");
        booking_id(&serde_json::from_str(&text).expect("json"))
    }

    /// [`Control::book`], with `Err(answer)` when the slot was not bookable (409).
    pub async fn try_book(&self, practice_id: &str, body: &Value) -> Result<i64, String> {
        let (status, text) = self.post_booking(practice_id, body).await;
        match status {
            201 => Ok(booking_id(&serde_json::from_str(&text).expect("json"))),
            409 => Err(serde_json::from_str::<Value>(&text)
                .map(|v| v.to_string())
                .unwrap_or(text)),
            other => panic!("booking at {practice_id}: {other} {text}"),
        }
    }

    async fn post_booking(&self, practice_id: &str, body: &Value) -> (u16, String) {
        let r = self
            .http
            .post(self.market(&format!("/practices/{practice_id}/bookings")))
            .timeout(CALL)
            .json(body)
            .send()
            .await
            .expect("POST booking");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// The patient cancels a booking online; the marketplace accepts the request (202).
    pub async fn cancel_booking(&self, id: impl Display) {
        let r = self
            .http
            .post(self.market(&format!("/bookings/{id}/cancel")))
            .send()
            .await
            .expect("cancel");
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    }

    /// The practice admin's Step 2: a practitioner per appointment book, each type linked.
    ///
    /// # Errors
    /// The marketplace cannot be reached or does not answer 2xx.
    pub async fn auto_link(&self, practice_id: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .post(self.market(&format!("/practices/{practice_id}/auto-link")))
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(
            status.is_success(),
            "auto-link of {practice_id}: {status} {}",
            r.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Poll `url` (every 100 ms, for `within`) until its JSON satisfies `done`.
    ///
    /// # Errors
    /// Not within `within`, saying `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        url: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let found = poll_until(within, Duration::from_millis(100), || async {
            let v = self.http.get(url).send().await.ok()?.json().await.ok()?;
            done(&v).then_some(v)
        })
        .await;
        found.ok_or_else(|| {
            anyhow::anyhow!("{what} did not reach the marketplace within {within:?}")
        })
    }

    /// Wait until the practice's configuration (resources and types) is on the marketplace,
    /// then do Step 2 ([`Control::auto_link`]); panics with `context()` when it is not within
    /// `within`.
    pub async fn configured_then_auto_linked(
        &self,
        practice_id: &str,
        within: Duration,
        context: &dyn Fn() -> String,
    ) {
        eventually_or(
            &format!("configuration of {practice_id} published"),
            within,
            context,
            || async { configured(&self.practice(practice_id).await).then_some(()) },
        )
        .await;
        self.auto_link(practice_id).await.expect("auto-link");
    }

    /// The first day from tomorrow on (up to 9 days) with more than `more_than` bookable slots,
    /// waiting for one up to `within`: `(YYYY-MM-DD, slots)`.
    pub async fn day_with_slots(
        &self,
        practice_id: &str,
        tz: &str,
        more_than: usize,
        within: Duration,
    ) -> (String, Vec<Value>) {
        let today = crate::today_in(tz);
        eventually_or("bookable slots", within, String::new, || async {
            for n in 1..10 {
                let day = (today + jiff::Span::new().days(n)).to_string();
                let slots = self.slots(practice_id, &day).await;
                if slots.len() > more_than {
                    return Some((day, slots));
                }
            }
            None
        })
        .await
    }

    /// The PMS diary of a site on a day (every appointment, with its `external_ref`).
    pub async fn diary(&self, slug: &str, day: impl Display) -> Vec<Value> {
        self.get(&self.desk(slug, &format!("/appointments?date={day}")))
            .await
            .as_array()
            .cloned()
            .expect("diary")
    }

    /// The appointments of a site's diary on `day` carrying the external reference of the
    /// marketplace booking `booking_id` (`HE-{id}`).
    pub async fn appointments_of(
        &self,
        slug: &str,
        day: impl Display,
        booking_id: impl Display,
    ) -> Vec<Value> {
        let reference = format!("HE-{booking_id}");
        self.diary(slug, day)
            .await
            .into_iter()
            .filter(|a| a["external_ref"] == reference.as_str())
            .collect()
    }

    /// Wait up to `within` until the marketplace booking `id` is answered (no longer
    /// `Requested`: confirmed, by the integration or by the 20 s rule, or rejected); the
    /// booking as the marketplace holds it then.
    pub async fn answered(&self, id: impl Display, within: Duration) -> Value {
        let id = id.to_string();
        eventually_or(
            &format!("booking {id} answered"),
            within,
            String::new,
            || async {
                let b = self.booking(&id).await;
                (b["status"] != "Requested").then_some(b)
            },
        )
        .await
    }

    /// Wait up to `within` until the marketplace booking `id` (of a slot on `day` at the PMS
    /// site `slug`) is answered, then check that it ended as a fault may leave it: confirmed by
    /// the integration (not by the marketplace's 20 s rule) with exactly one diary appointment
    /// carrying its reference, or rejected in time with a reason and none. Panics naming what
    /// is wrong; the booking as the marketplace holds it.
    pub async fn assert_answered_once(
        &self,
        slug: &str,
        day: impl Display,
        id: impl Display,
        within: Duration,
    ) -> Value {
        let id = id.to_string();
        let b = self.answered(&id, within).await;
        let mine = self.appointments_of(slug, day, &id).await;
        match b["status"].as_str() {
            Some("Confirmed") => {
                assert_eq!(
                    b["auto_confirmed"], false,
                    "booking {id} was confirmed by the marketplace's 20 s rule, not answered: {b}"
                );
                assert_eq!(
                    mine.len(),
                    1,
                    "confirmed booking {id}: one appointment: {mine:?}"
                );
            }
            Some("Rejected") => {
                assert_eq!(b["late_reject"], false, "booking {id} rejected late: {b}");
                assert!(
                    b["reject_reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "booking {id} rejected without a reason: {b}"
                );
                assert!(
                    mine.is_empty(),
                    "rejected booking {id} is in the diary: {mine:?}"
                );
            }
            other => panic!("booking {id} ended {other:?}: {b}"),
        }
        b
    }

    /// The practice's desk makes a new API key for the site (201 asserted); the key.
    pub async fn create_pms_key(&self, slug: &str) -> String {
        let r = self
            .http
            .post(self.desk(slug, "/keys"))
            .timeout(CALL)
            .send()
            .await
            .expect("POST key");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 201, "new key for {slug}: {text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        v["api_key"]
            .as_str()
            .unwrap_or_else(|| panic!("no api_key in {text}"))
            .to_owned()
    }

    /// The practice's desk revokes the site's API key `key` (204 asserted).
    pub async fn revoke_pms_key(&self, slug: &str, key: &str) {
        let r = self
            .http
            .delete(self.desk(slug, &format!("/keys/{key}")))
            .timeout(CALL)
            .send()
            .await
            .expect("DELETE key");
        let status = r.status();
        assert_eq!(
            status,
            204,
            "revoking a key of {slug}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// How many API requests the PMS simulator received for the site `slug` so far, refused
    /// ones included (`GET /_sim/stats`).
    pub async fn pms_site_requests(&self, slug: &str) -> u64 {
        let stats = self.get(&format!("{}/_sim/stats", self.pms_url)).await;
        stats["site_requests"][slug].as_u64().unwrap_or(0)
    }

    /// The front desk books `slot`'s time with its practitioner in the PMS (201 asserted).
    pub async fn desk_book(&self, slug: &str, slot: &Value) {
        let r = self
            .http
            .post(self.desk(slug, "/appointments"))
            .json(&json!({"practitioner": practitioner_of(slot), "start": slot["start"], "end": slot["end"]}))
            .send()
            .await
            .expect("desk");
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    }
}

/// A client for the stack's servers. Every listener closes a keep-alive connection idle for its
/// 10 s header-read timeout (`slotbridge_edge`); a request sent on a pooled connection just as
/// the server closes it fails ("error sending request"), so idle connections are dropped after
/// 5 s, before the server does.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5))
}

/// GET a JSON document with `http`; panics with the URL unless it answers 2xx with JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    assert!(
        url.starts_with("http"),
        "GET {url}: not a URL (a node's admin path goes through Stack::api_get)"
    );
    let r = http
        .get(url)
        .timeout(CALL)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "GET {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

/// Whether a marketplace practice view has resources and appointment types.
pub fn configured(practice: &Value) -> bool {
    let n = |k: &str| practice[k].as_array().map_or(0, Vec::len);
    n("pms_resources") > 0 && n("pms_appointment_types") > 0
}

/// A patient as the marketplace's booking form takes it.
pub fn patient(first: &str, last: &str, dob: &str, phone: &str, email: &str) -> Value {
    json!({"firstname": first, "lastname": last, "dob": dob, "phone": phone, "email": email})
}

/// The booking form for `slot` (its practitioner, type and start) by `patient`.
pub fn booking_body(slot: &Value, patient: Value) -> Value {
    json!({
        "practitioner": slot["practitioner"],
        "appointment_type": slot["appointment_type"],
        "start": slot["start"],
        "patient": patient,
    })
}

/// A booking id as the control API gives it (a number, or a string of one).
pub fn booking_id(v: &Value) -> i64 {
    let id = &v["booking_id"];
    id.as_i64()
        .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no booking id in {v}"))
}

/// The PMS practitioner of a slot: its `pms_resource_id` up to any `:`.
pub fn practitioner_of(slot: &Value) -> String {
    slot["pms_resource_id"]
        .as_str()
        .and_then(|r| r.split(':').next())
        .unwrap_or_default()
        .to_owned()
}

/// Up to `n` of `slots` that overlap no other chosen in any practitioner's diary (a
/// practitioner's specialties share one diary), so each can be confirmed.
pub fn apart(slots: &[Value], n: usize) -> Vec<Value> {
    let mut chosen: Vec<Value> = Vec::new();
    for s in slots {
        if chosen.len() == n {
            break;
        }
        let clash = chosen.iter().any(|c| {
            practitioner_of(c) == practitioner_of(s)
                && s["start"].as_str() < c["end"].as_str()
                && c["start"].as_str() < s["end"].as_str()
        });
        if !clash {
            chosen.push(s.clone());
        }
    }
    chosen
}

/// Whether `slots` still offer `slot` (same practitioner resource and start).
pub fn offers(slots: &[Value], slot: &Value) -> bool {
    slots
        .iter()
        .any(|s| s["pms_resource_id"] == slot["pms_resource_id"] && s["start"] == slot["start"])
}

/// One marketplace API call from the simulator's `--record` file.
#[derive(Debug, Clone)]
pub struct Call {
    /// The `practice-id` header (empty when absent).
    pub practice_id: String,
    /// The `user-agent` header: tells nodes apart when each has its own.
    pub user_agent: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/pms-api/v1/availability/snapshots`.
    pub path: String,
    /// The request body (parsed JSON or null).
    pub body: Value,
}

impl Call {
    /// `"METHOD PATH"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The calls recorded so far (the last line may be half written and is then left out).
pub fn recorded_calls(record: &Path) -> Vec<Call> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            let header = |name: &str| {
                v["headers"]
                    .as_object()
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .and_then(|(_, v)| v.as_str())
                    })
                    .unwrap_or_default()
                    .to_owned()
            };
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            Call {
                practice_id: header("practice-id"),
                user_agent: header("user-agent"),
                method: s("method"),
                path: s("path"),
                body: v["body"].clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_calls_read_headers_in_any_case_and_skip_a_half_written_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("calls.jsonl");
        let line = json!({"method": "POST", "path": "/pms-api/v1/availability/snapshots",
            "headers": {"Practice-Id": "7", "user-agent": "node-a"}, "body": [1]});
        std::fs::write(&path, format!("{line}\n{{\"method\": \"GE")).expect("write");
        let calls = recorded_calls(&path);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].practice_id, "7");
        assert_eq!(calls[0].user_agent, "node-a");
        assert_eq!(calls[0].line(), "POST /pms-api/v1/availability/snapshots");
        assert_eq!(calls[0].body, json!([1]));
    }

    #[test]
    fn a_booking_form_carries_the_slot_and_the_patient() {
        let slot = json!({"practitioner": 3, "appointment_type": 9, "start": "2026-01-05T09:00:00+11:00",
            "pms_resource_id": "1004:oht"});
        let body = booking_body(&slot, patient("Ada", "L", "1990-01-01", "04", "a@x"));
        assert_eq!(body["practitioner"], 3);
        assert_eq!(body["patient"]["firstname"], "Ada");
        assert_eq!(practitioner_of(&slot), "1004");
        assert_eq!(booking_id(&json!({"booking_id": "12"})), 12);
        assert!(offers(std::slice::from_ref(&slot), &slot));
    }
}
