//! The simulator's own behaviour over real HTTP: the control API, the slicing rule, the pages.

use serde_json::{Value, json};
use slotbridge_market_sim::MarketSim;

const KEY: &str = "sim-test-key";

struct S {
    base: String,
    http: reqwest::Client,
    pid: String,
    pkey: String,
    _h: slotbridge_market_sim::SimHandle,
}

async fn start() -> S {
    let sim = MarketSim::builder()
        .consumer("slotbridge", KEY)
        .build()
        .unwrap();
    let h = sim
        .serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let v: Value = http
        .post(format!("{}/_market/practices", h.base_url()))
        .json(&json!({"name": "Harbour Dental", "consumer": "slotbridge"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    S {
        base: h.base_url(),
        http,
        pid: v["practice_id"].as_str().unwrap().to_owned(),
        pkey: v["practice_key"].as_str().unwrap().to_owned(),
        _h: h,
    }
}

impl S {
    async fn api(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/pms-api/v1{path}", self.base))
            .header("api-key", KEY)
            .header("practice-id", &self.pid)
            .header("practice-key", &self.pkey)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}/_market{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    async fn setup(&self) {
        assert_eq!(
            self.api(
                "/config/pmsResources/snapshot",
                json!([
                    {"pmsResourceId": "R1", "pmsResourceName": "Dr A"},
                    {"pmsResourceId": "R2", "pmsResourceName": "Dr B"}
                ])
            )
            .await
            .status(),
            200
        );
        assert_eq!(
            self.api("/config/pmsAppointmentTypes/snapshot", json!([
                {"pmsAppointmentTypeId": "T30", "pmsAppointmentTypeName": "Check-up", "pmsAppointmentLength": 30},
                {"pmsAppointmentTypeId": "T60", "pmsAppointmentTypeName": "Long", "pmsAppointmentLength": 60}
            ]))
            .await
            .status(),
            200
        );
    }
}

fn tomorrow_plus(days: i64) -> String {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_pms_appointment_length_is_an_integer_of_minutes_as_the_spec_says() {
    let s = start().await;
    s.setup().await;
    let r = s
        .api("/config/pmsAppointmentTypes/snapshot", json!([{"pmsAppointmentTypeId": "X", "pmsAppointmentTypeName": "X", "pmsAppointmentLength": "30"}]))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("[0].pmsAppointmentLength:"),
        "{v}"
    );
}

#[tokio::test]
async fn slicing_uses_the_range_step_the_marketplace_length_and_the_linked_type() {
    let s = start().await;
    s.setup().await;
    let (st, pr) = s
        .control(
            reqwest::Method::POST,
            &format!("/practices/{}/practitioners", s.pid),
            json!({"name": "Dr A", "pms_resource_id": "R1"}),
        )
        .await;
    assert_eq!(st, 201, "{pr}");
    let prid = pr["id"].as_u64().unwrap();
    // Not linked yet: no slots even with availability.
    let day = tomorrow_plus(3);
    s.api(
        "/availability/snapshot",
        json!({"date": day, "pmsResourceId": "R1", "availability": [
            {"start": "09:00", "end": "10:00", "slotLength": 600},
            {"start": "14:00", "end": "15:00", "slotLength": 600, "pmsAppointmentTypeIds": ["T60"]}
        ]}),
    )
    .await;
    let (_, created) = s
        .control(
            reqwest::Method::POST,
            &format!(
                "/practices/{}/practitioners/{prid}/appointment-types",
                s.pid
            ),
            json!({"name": "Check-up"}),
        )
        .await;
    let tid = created[0]["appointment_type"]["id"].as_u64().unwrap();
    let (_, slots) = s
        .control(
            reqwest::Method::GET,
            &format!("/practices/{}/slots?date={day}", s.pid),
            Value::Null,
        )
        .await;
    assert_eq!(slots, json!([]), "an unlinked type offers nothing");
    // Linked to the 30-minute type: 09:00..09:30 every 10 minutes; the 14:00 range is T60 only.
    let (st, _) = s
        .control(
            reqwest::Method::PUT,
            &format!(
                "/practices/{}/practitioners/{prid}/appointment-types/{tid}",
                s.pid
            ),
            json!({"linked_pms_appointment_type_id": "T30"}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, slots) = s
        .control(
            reqwest::Method::GET,
            &format!("/practices/{}/slots?date={day}", s.pid),
            Value::Null,
        )
        .await;
    let times: Vec<String> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["start"].as_str().unwrap()[11..16].to_owned())
        .collect();
    assert_eq!(times, ["09:00", "09:10", "09:20", "09:30"]);
    assert_eq!(&slots[0]["end"].as_str().unwrap()[11..16], "09:30");
    // A marketplace length overrides the PMS length: 60 minutes fits once (09:00).
    s.control(
        reqwest::Method::PUT,
        &format!(
            "/practices/{}/practitioners/{prid}/appointment-types/{tid}",
            s.pid
        ),
        json!({"linked_pms_appointment_type_id": "T30", "length_minutes": 60}),
    )
    .await;
    let (_, slots) = s
        .control(
            reqwest::Method::GET,
            &format!("/practices/{}/slots?date={day}", s.pid),
            Value::Null,
        )
        .await;
    assert_eq!(slots.as_array().unwrap().len(), 1, "{slots}");
}

#[tokio::test]
async fn create_new_type_can_be_copied_to_practitioners_of_the_same_specialty() {
    let s = start().await;
    s.setup().await;
    let mk = |name: &str, spec: &str, r: &str| json!({"name": name, "specialty": spec, "pms_resource_id": r});
    let (_, a) = s
        .control(
            reqwest::Method::POST,
            &format!("/practices/{}/practitioners", s.pid),
            mk("Dr A", "Dentist", "R1"),
        )
        .await;
    s.control(
        reqwest::Method::POST,
        &format!("/practices/{}/practitioners", s.pid),
        mk("Dr B", "Dentist", "R2"),
    )
    .await;
    s.control(
        reqwest::Method::POST,
        &format!("/practices/{}/practitioners", s.pid),
        mk("Jo", "Hygienist", "R2"),
    )
    .await;
    let (st, created) = s
        .control(
            reqwest::Method::POST,
            &format!("/practices/{}/practitioners/{}/appointment-types", s.pid, a["id"]),
            json!({"name": "Healthengine", "linked_pms_appointment_type_id": "T30", "copy_to_same_specialty": true}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(
        created.as_array().unwrap().len(),
        2,
        "Dr A and Dr B, not the hygienist: {created}"
    );
    let (st, v) = s
        .control(
            reqwest::Method::POST,
            &format!(
                "/practices/{}/practitioners/{}/appointment-types",
                s.pid, a["id"]
            ),
            json!({"name": "Bad", "linked_pms_appointment_type_id": "NOPE"}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("linked_pms_appointment_type_id"),
        "{v}"
    );
}

#[tokio::test]
async fn control_errors_are_problem_json_naming_the_field() {
    let s = start().await;
    let r = s
        .http
        .post(format!("{}/_market/practices", s.base))
        .json(&json!({"name": "X", "timezone": "Mars/Base"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap().starts_with("timezone:"),
        "{v}"
    );
    let (st, v) = s
        .control(
            reqwest::Method::GET,
            &format!("/practices/{}/slots?date=tomorrow", s.pid),
            Value::Null,
        )
        .await;
    assert_eq!(st, 400);
    assert!(v["detail"].as_str().unwrap().starts_with("date:"), "{v}");
    let (st, v) = s
        .control(
            reqwest::Method::POST,
            &format!("/practices/{}/bookings", s.pid),
            json!({"practitioner": "x", "appointment_type": "y", "start": "2030-01-01T09:00:00+11:00",
                   "patient": {"firstname": "A", "lastname": "B", "dob": "01-01-1990"}}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        v["detail"].as_str().unwrap().starts_with("patient.dob:"),
        "{v}"
    );
    let (st, _) = s
        .control(reqwest::Method::GET, "/bookings/123456", Value::Null)
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn the_admin_and_patient_pages_render_and_book() {
    let s = start().await;
    s.setup().await;
    s.control(
        reqwest::Method::POST,
        &format!("/practices/{}/auto-link", s.pid),
        json!({}),
    )
    .await;
    let day = tomorrow_plus(2);
    s.api("/availability/snapshot", json!({"date": day, "pmsResourceId": "R1", "availability": [{"start": "09:00", "end": "10:00", "slotLength": 1800}]}))
        .await;
    let admin = s
        .http
        .get(format!("{}/admin/practices/{}", s.base, s.pid))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "API Consumer Consent",
        "Grant new consent",
        "Refresh linked PMS appointment types",
        "Create new type",
        "Linked PMS Appointment",
        "Dr A",
    ] {
        assert!(admin.contains(needle), "admin page lacks {needle:?}");
    }
    let page = s
        .http
        .get(format!("{}/book/{}?date={day}", s.base, s.pid))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("09:00") && page.contains("09:30"), "{page}");
    let (_, slots) = s
        .control(
            reqwest::Method::GET,
            &format!("/practices/{}/slots?date={day}", s.pid),
            Value::Null,
        )
        .await;
    let start: jiff::Timestamp = slots[0]["start"].as_str().unwrap().parse().unwrap();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(format!("{}/book/{}", s.base, s.pid))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("practitioner", slots[0]["practitioner"].as_str().unwrap()),
            (
                "appointment_type",
                slots[0]["appointment_type"].as_str().unwrap(),
            ),
            ("start", &start.to_string()),
            ("firstname", "Ann"),
            ("lastname", "Lee"),
            ("dob", "1990-02-23"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let booking = s
        .http
        .get(format!("{}{loc}", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(booking.contains("Requested"), "{booking}");
    // The consent form on the admin page grants a new key.
    let granted = s
        .http
        .post(format!("{}/admin/practices/{}/consents", s.base, s.pid))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("consumer", "slotbridge")]))
        .send()
        .await
        .unwrap();
    let text = granted.text().await.unwrap();
    assert!(text.contains("Practice key"), "{text}");
    let old = s.api("/config/pmsResources/snapshot", json!([])).await;
    assert_eq!(
        old.status(),
        401,
        "the old key no longer works after a new grant: a wrong practice-key is a 401"
    );
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
