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
    start_with(MarketSim::builder()).await
}

async fn start_with(builder: slotbridge_market_sim::MarketSimBuilder) -> S {
    let sim = builder.consumer("slotbridge", KEY).build().unwrap();
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
    /// A PMS API call with these credentials, body and Content-Type (status and JSON answer).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        creds: (&str, &str, &str),
        body: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}/pms-api/v1{path}", self.base))
            .header("api-key", creds.0)
            .header("practice-id", creds.1)
            .header("practice-key", creds.2);
        if let Some((content_type, text)) = body {
            if !content_type.is_empty() {
                r = r.header("content-type", content_type);
            }
            r = r.body(text.to_owned());
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    /// A PMS API call with the practice's credentials and a JSON body.
    async fn json(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        self.call(
            method,
            path,
            (KEY, &self.pid, &self.pkey),
            Some(("application/json", body)),
        )
        .await
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::GET,
            path,
            (KEY, &self.pid, &self.pkey),
            None,
        )
        .await
    }
    /// Configure, auto-link, publish a day and book its first slot: the booking id.
    async fn book_one(&self) -> i64 {
        self.setup().await;
        self.control(
            reqwest::Method::POST,
            &format!("/practices/{}/auto-link", self.pid),
            json!({}),
        )
        .await;
        let day = tomorrow_plus(2);
        let r = self
            .api(
                "/availability/snapshot",
                json!({"date": day, "pmsResourceId": "R1",
            "availability": [{"start": "09:00", "end": "10:00", "slotLength": 1800}]}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let (_, slots) = self
            .control(
                reqwest::Method::GET,
                &format!("/practices/{}/slots?date={day}", self.pid),
                Value::Null,
            )
            .await;
        let slot = &slots[0];
        let (st, b) = self
            .control(
                reqwest::Method::POST,
                &format!("/practices/{}/bookings", self.pid),
                json!({"practitioner": slot["practitioner"], "appointment_type": slot["appointment_type"],
                       "start": slot["start"], "patient": {"firstname": "Ann", "lastname": "Lee", "dob": "1990-02-23"}}),
            )
            .await;
        assert_eq!(st, 201, "{b}");
        b["booking_id"].as_i64().unwrap()
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

/// A webhook receiver: every payload it was sent.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn nonconforming_requests_are_refused_naming_the_field_and_counted() {
    use reqwest::Method;
    let s = start().await;
    let (_, stats) = s.control(Method::GET, "/stats", Value::Null).await;
    assert_eq!(stats["nonconforming_requests"], 0);
    let cases: [(&str, &str, &str, &str); 7] = [
        (
            "/config/pmsResources/snapshot",
            "application/json",
            r#"[{"pmsResourceId": "R1", "pmsResourceName": "Dr A", "colour": "red"}]"#,
            "[0].colour: unknown field `colour`",
        ),
        (
            "/config/pmsResources/snapshot",
            "application/json",
            r#"[{"pmsResourceId": "R1"}]"#,
            "[0]: missing field `pmsResourceName`",
        ),
        (
            "/config/pmsAppointmentTypes/snapshot",
            "application/json",
            r#"[{"pmsAppointmentTypeId": "T", "pmsAppointmentTypeName": "T", "pmsAppointmentLength": null}]"#,
            "[0].pmsAppointmentLength:",
        ),
        (
            "/availability/snapshot",
            "application/json",
            r#"{"date": "2030-01-07", "pmsResourceId": "R1", "availability": [{"start": "9:00", "end": "10:00", "slotLength": 0}]}"#,
            "availability[0].start: expected a time HH:MM",
        ),
        (
            "/availability/snapshot",
            "application/json",
            r#"{"date": "07-01-2030", "pmsResourceId": "R1", "availability": []}"#,
            "date: expected a date YYYY-MM-DD",
        ),
        (
            "/subscription",
            "application/json",
            r#"{"topic": "requests.everything", "callbackUrl": "http://127.0.0.1:9/x"}"#,
            "topic: unknown variant `requests.everything`",
        ),
        (
            "/subscription",
            "text/plain",
            r#"{"topic": "requests.*", "callbackUrl": "http://127.0.0.1:9/x"}"#,
            "Content-Type: expected application/json",
        ),
    ];
    for (path, ct, body, named) in cases {
        let (st, v) = s
            .call(Method::POST, path, (KEY, &s.pid, &s.pkey), Some((ct, body)))
            .await;
        assert_eq!(st, 400, "{path} {body}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.starts_with(named), "{path} {body}: {e:?} names {named:?}");
    }
    // A required body that is missing, and a datetime in another format.
    let (st, v) = s
        .call(
            Method::POST,
            "/bookings/5001/cancel",
            (KEY, &s.pid, &s.pkey),
            None,
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        v["error"].as_str().unwrap().starts_with("body: required"),
        "{v}"
    );
    let (st, v) = s
        .json(
            Method::POST,
            "/subscription",
            r#"{"topic": "requests.*", "callbackUrl": "http://127.0.0.1:9/x", "expireAt": "2030-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().starts_with("expireAt:"), "{v}");
    // A conforming request is not counted.
    s.setup().await;
    let (_, stats) = s.control(Method::GET, "/stats", Value::Null).await;
    assert_eq!(stats["nonconforming_requests"], 9, "{stats}");
    let mine = &stats["nonconforming_by_practice"][0];
    assert_eq!(mine["practice_id"], s.pid.as_str());
    assert_eq!(mine["consumer"], "slotbridge");
    assert_eq!(mine["count"], 9);
    assert_eq!(mine["last_request"], "POST /pms-api/v1/subscription");
    let (_, practice) = s
        .control(Method::GET, &format!("/practices/{}", s.pid), Value::Null)
        .await;
    assert_eq!(practice["nonconforming_requests"], 9);
}

#[tokio::test]
async fn bad_credentials_answer_401_and_missing_or_revoked_consent_403() {
    use reqwest::Method;
    let s = start().await;
    let poll = |creds: (&'static str, String, String)| {
        let s = &s;
        async move {
            s.call(
                Method::GET,
                "/requests",
                (creds.0, &creds.1, &creds.2),
                None,
            )
            .await
        }
    };
    let (pid, pkey) = (s.pid.clone(), s.pkey.clone());
    assert_eq!(poll((KEY, pid.clone(), pkey.clone())).await.0, 200);
    for (what, creds) in [
        ("unknown api-key", ("nope", pid.clone(), pkey.clone())),
        ("wrong practice-key", (KEY, pid.clone(), "nope".to_owned())),
        ("unknown practice-id", (KEY, "999".to_owned(), pkey.clone())),
        ("no practice-id", (KEY, String::new(), pkey.clone())),
    ] {
        let (st, body) = poll(creds).await;
        assert_eq!(st, 401, "{what}");
        assert_eq!(
            body,
            Value::Null,
            "{what}: UnauthorizedError has no content"
        );
    }
    // A practice that never consented to this consumer.
    let (_, other) = s
        .control(Method::POST, "/practices", json!({"name": "Other Dental"}))
        .await;
    let other_id = other["practice_id"].as_str().unwrap().to_owned();
    let (st, body) = poll((KEY, other_id, "any".to_owned())).await;
    assert_eq!(st, 403);
    assert!(
        body["error"].as_str().unwrap().contains("consent"),
        "{body}"
    );
    // A revoked consent, even with the right key.
    let (st, _) = s
        .control(
            Method::DELETE,
            &format!("/practices/{}/consents/slotbridge", s.pid),
            Value::Null,
        )
        .await;
    assert_eq!(st, 204);
    let (st, body) = poll((KEY, pid, pkey)).await;
    assert_eq!(st, 403);
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

#[tokio::test]
async fn each_post_without_id_creates_a_subscription_and_each_gets_the_event() {
    use reqwest::Method;
    let s = start().await;
    let (url, got) = receiver().await;
    let body = format!(r#"{{"topic": "requests.availability", "callbackUrl": "{url}"}}"#);
    let (st, a) = s.json(Method::POST, "/subscription", &body).await;
    assert_eq!(st, 201, "{a}");
    let (st, b) = s.json(Method::POST, "/subscription", &body).await;
    assert_eq!(st, 201, "{b}");
    assert_ne!(
        a["id"], b["id"],
        "the same topic and URL again is a second subscription"
    );
    // One that has expired gets nothing.
    let (st, _) = s
        .json(
            Method::POST,
            "/subscription",
            &format!(
                r#"{{"topic": "requests.*", "callbackUrl": "{url}", "startAt": "2020-01-01 00:00:00", "expireAt": "2020-01-02 00:00:00"}}"#
            ),
        )
        .await;
    assert_eq!(st, 201);
    let (_, all) = s.get("/subscription").await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let (_, listed) = s
        .control(
            Method::GET,
            &format!("/practices/{}/subscriptions", s.pid),
            Value::Null,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert!(
        listed[0]["callback_url"]
            .as_str()
            .unwrap()
            .ends_with("/hook")
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["expire_at"].is_string())
    );

    let (st, _) = s
        .control(
            Method::POST,
            &format!("/practices/{}/requests/availability", s.pid),
            json!({"day": tomorrow_plus(1)}),
        )
        .await;
    assert_eq!(st, 201);
    wait_for("two deliveries", || got.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut ids: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want = vec![
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    ];
    want.sort();
    assert_eq!(ids, want, "one delivery per live subscription");

    // With an id: an update of that one; an unknown id is a 404.
    let id = a["id"].as_str().unwrap();
    let (st, updated) = s
        .json(
            Method::POST,
            "/subscription",
            &format!(
                r#"{{"id": "{id}", "topic": "requests.bookings", "callbackUrl": "{url}", "expireAt": "2031-01-01 00:00:00"}}"#
            ),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(updated["id"], id);
    assert_eq!(updated["topic"], "requests.bookings");
    assert_eq!(updated["expireAt"], "2031-01-01 00:00:00");
    let (st, _) = s
        .json(
            Method::POST,
            "/subscription",
            &format!(r#"{{"id": "no-such-id", "topic": "requests.*", "callbackUrl": "{url}"}}"#),
        )
        .await;
    assert_eq!(st, 404);
    let (st, one) = s.get(&format!("/subscription/{id}")).await;
    assert_eq!((st, &one["topic"]), (200, &json!("requests.bookings")));
    let del = |id: String| {
        let s = &s;
        async move {
            s.call(
                Method::DELETE,
                &format!("/subscription/{id}"),
                (KEY, &s.pid, &s.pkey),
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(del(id.to_owned()).await, 204);
    assert_eq!(del(id.to_owned()).await, 404);
    assert_eq!(s.get(&format!("/subscription/{id}")).await.0, 404);
    assert_eq!(s.get("/subscription").await.1.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn failed_deliveries_are_logged_per_subscription() {
    use reqwest::Method;
    let s = start_with(MarketSim::builder().time_factor(0.001)).await;
    // Nothing listens on the closed port: every attempt is a ConnectException.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let body = format!(r#"{{"topic": "requests.*", "callbackUrl": "http://{closed}/hook"}}"#);
    let (_, a) = s.json(Method::POST, "/subscription", &body).await;
    let (_, b) = s.json(Method::POST, "/subscription", &body).await;
    s.control(
        Method::POST,
        &format!("/practices/{}/requests/availability", s.pid),
        json!({"day": tomorrow_plus(1)}),
    )
    .await;
    for sub in [&a, &b] {
        let id = sub["id"].as_str().unwrap();
        let mut entries = Value::Null;
        for _ in 0..200 {
            entries = s
                .get(&format!("/subscriptionErrorLog?subscriptionId={id}"))
                .await
                .1;
            if entries["data"].as_array().is_some_and(|d| d.len() == 4) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let data = entries["data"].as_array().unwrap();
        assert_eq!(data.len(), 4, "4 attempts of {id}: {entries}");
        assert!(data.iter().all(|e| e["subscriptionId"] == id
            && e["errorType"] == "ConnectException"
            && e["payload"]["id"] == id));
    }
}

#[tokio::test]
async fn appointment_changes_are_requested_and_their_answer_shown() {
    use reqwest::Method;
    let s = start().await;
    let id = s.book_one().await;
    let (st, _) = s
        .control(
            Method::POST,
            "/bookings/999999/request-appointment-changes",
            json!({}),
        )
        .await;
    assert_eq!(st, 404);
    let (st, b) = s
        .control(Method::GET, &format!("/bookings/{id}"), Value::Null)
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["appointment_change"], Value::Null);
    for (answer, shown) in [
        ("noPmsAppointmentChange", "no_change"),
        ("cancel", "cancelled"),
    ] {
        let (st, r) = s
            .control(
                Method::POST,
                &format!("/bookings/{id}/request-appointment-changes"),
                json!({}),
            )
            .await;
        assert_eq!(st, 202, "{r}");
        let (_, list) = s.get("/requests/pmsAppointmentChanges").await;
        assert_eq!(list["data"][0]["bookingId"], id, "{list}");
        let (st, _) = s
            .json(
                Method::POST,
                &format!("/bookings/{id}/{answer}"),
                if answer == "cancel" {
                    r#"{"reason": null}"#
                } else {
                    ""
                },
            )
            .await;
        assert_eq!(st, 200, "{answer}");
        let (_, b) = s
            .control(Method::GET, &format!("/bookings/{id}"), Value::Null)
            .await;
        assert_eq!(b["appointment_change"], shown, "{b}");
        let (_, list) = s.get("/requests/pmsAppointmentChanges").await;
        assert_eq!(list["data"], json!([]));
    }
}

#[tokio::test]
async fn health_counts_only_the_live_hours_of_the_liveness_contract() {
    use reqwest::Method;
    let s = start().await;
    let set_clock = |at: &'static str| {
        let s = &s;
        async move {
            let (st, v) = s.control(Method::PUT, "/clock", json!({"now": at})).await;
            assert_eq!(st, 200, "{v}");
        }
    };
    let health = || {
        let s = &s;
        async move {
            s.control(
                Method::GET,
                &format!("/practices/{}/health", s.pid),
                Value::Null,
            )
            .await
            .1
        }
    };
    // 2030-01-07 is a Monday; the contract: Monday and Tuesday 08:00 to 17:00, Sydney time.
    let (st, _) = s
        .json(
            Method::POST,
            "/config/livenessContract",
            r#"{"liveHours": {"monday": [{"start": "08:00", "end": "17:00"}], "tuesday": [{"start": "08:00", "end": "17:00"}]}}"#,
        )
        .await;
    assert_eq!(st, 200);
    set_clock("2030-01-07T18:00:00+11:00").await;
    assert_eq!(s.get("/requests").await.0, 200);
    s.control(
        Method::POST,
        &format!("/practices/{}/requests/availability", s.pid),
        json!({"day": "2030-01-08"}),
    )
    .await;
    let (_, adv) = s
        .control(Method::POST, "/clock/advance", json!({"seconds": 5 * 3600}))
        .await;
    assert!(
        adv["now"].as_str().unwrap().starts_with("2030-01-07T12:00"),
        "{adv}"
    );
    let h = health().await;
    assert_eq!(h["healthy"], true, "five hours outside the live hours: {h}");
    assert_eq!(h["live_now"], false);
    set_clock("2030-01-08T08:05:00+11:00").await;
    let h = health().await;
    assert_eq!(h["healthy"], true, "five live minutes: {h}");
    assert_eq!(h["live_now"], true);
    set_clock("2030-01-08T08:15:00+11:00").await;
    let h = health().await;
    assert_eq!(h["healthy"], false, "fifteen live minutes: {h}");
    assert_eq!(
        h["reasons"].as_array().unwrap().len(),
        2,
        "no poll and the request: {h}"
    );

    // Without a contract the rule runs around the clock.
    let t = start().await;
    let (st, _) = t
        .control(
            Method::PUT,
            "/clock",
            json!({"now": "2030-01-07T18:00:00+11:00"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(t.get("/requests").await.0, 200);
    t.control(Method::POST, "/clock/advance", json!({"seconds": 11 * 60}))
        .await;
    let (_, h) = t
        .control(
            Method::GET,
            &format!("/practices/{}/health", t.pid),
            Value::Null,
        )
        .await;
    assert_eq!(
        h["healthy"], false,
        "eleven minutes at 18:00 without a contract: {h}"
    );
    assert_eq!(h["live_now"], true);
}

#[tokio::test]
async fn quirks_mode_answers_valid_but_differently_shaped_data() {
    let s = start_with(MarketSim::builder().quirks(true)).await;
    let id = s.book_one().await;
    let (_, kinds) = s.get("/requests").await;
    assert_eq!(kinds, json!(["bookings", "futureRequestType"]));
    let (st, list) = s.get("/requests/bookings").await;
    assert_eq!(st, 200);
    assert!(
        list.get("page").is_none(),
        "one page: no page object: {list}"
    );
    assert!(list.get("simUnknownField").is_some());
    let b = &list["data"][0];
    assert_eq!(b["bookingId"], id);
    assert_eq!(b["patient"]["dob"], "1990-02-23", "YYYY-MM-DD: {b}");
    for k in ["telehealthUrl", "reason", "pmsPatientId", "isNewPatient"] {
        assert!(b.get(k).is_some_and(Value::is_null), "{k} is null: {b}");
    }
    for k in ["phone", "email", "address", "gender"] {
        assert!(
            b["patient"].get(k).is_some_and(Value::is_null),
            "patient.{k}: {b}"
        );
    }
    assert!(b.get("simUnknownField").is_some() && b["patient"].get("simUnknownField").is_some());
    let (_, resources) = s.get("/config/pmsResources").await;
    assert!(
        resources[0]
            .get("pmsPractitionerTitle")
            .is_some_and(Value::is_null),
        "{resources}"
    );
    assert!(resources[0].get("simUnknownField").is_some());

    // Without quirks: DD-MM-YYYY, optional fields left out, a page object, no unknown fields.
    let plain = start().await;
    plain.book_one().await;
    let (_, list) = plain.get("/requests/bookings").await;
    let b = &list["data"][0];
    assert_eq!(b["patient"]["dob"], "23-02-1990");
    assert!(b.get("telehealthUrl").is_none() && b.get("simUnknownField").is_none());
    assert_eq!(list["page"]["totalPages"], 1);
    assert_eq!(plain.get("/requests").await.1, json!(["bookings"]));
    // Switched on while serving.
    plain._h.sim().set_quirks(true);
    assert_eq!(
        plain.get("/requests").await.1,
        json!(["bookings", "futureRequestType"])
    );
}
