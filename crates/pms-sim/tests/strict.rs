//! The simulator is as strict as a real PMS: these tests drive it over real HTTP.

use jiff::civil::Date;
use serde_json::{Value, json};
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, PmsSim, RateLimit, SimHandle};

const SLUG: &str = "sstrict";

struct Env {
    handle: SimHandle,
    http: reqwest::Client,
    key: String,
    monday: Date,
    patient: String,
}

/// The next Monday at least two days from now (in Sydney).
fn next_monday() -> Date {
    let mut d = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date()
        .checked_add(jiff::Span::new().days(2))
        .expect("date");
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.tomorrow().expect("date");
    }
    d
}

fn setup_json(monday: Date) -> Value {
    let week = json!(["mon", "tue", "wed", "thu", "fri"]);
    let closed = monday.checked_add(jiff::Span::new().days(1)).expect("date");
    json!({
        "setup": {
            "site": SLUG, "name": "Strict Dental", "timezone": "Australia/Sydney",
            "phone": "(02) 9000 0000", "interval_minutes": 15, "stacking": true,
            "practitioners": [
                {"id": "D1", "title": "Dr", "first_name": "Ann", "last_name": "Lee", "specialties": ["dentist"]},
                {"id": "H1", "title": "Ms", "first_name": "Bea", "last_name": "Ng", "specialties": ["hygienist"]}
            ],
            "online_booking": [
                {"practitioner": "D1", "duration_minutes": 30},
                {"practitioner": "H1", "duration_minutes": 45}
            ],
            "reasons": [{
                "id": "R1", "name": "Healthengine", "marketing": true,
                "providers": [
                    {"practitioner": "D1", "duration_minutes": 30, "windows": [{"days": week, "start": "08:00", "end": "17:00"}]},
                    {"practitioner": "H1", "duration_minutes": 45, "windows": [{"days": week, "start": "08:00", "end": "17:00"}]}
                ]
            }]
        },
        "hours": [
            {"practitioner": "D1", "sessions": [{"days": week, "start": "08:00", "end": "17:00"}],
             "breaks": [{"days": week, "start": "12:00", "end": "13:00"}]},
            {"practitioner": "H1", "sessions": [{"days": week, "start": "08:00", "end": "17:00"}],
             "breaks": []}
        ],
        "closed_dates": [closed.to_string()]
    })
}

async fn env_with(rate: Option<RateLimit>) -> Env {
    let sim = PmsSim::builder()
        .practices(3)
        .seed(5)
        .rate_limit(rate)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = sim.serve(listener).await.expect("serve");
    let http = reqwest::Client::new();
    let monday = next_monday();
    let resp = http
        .post(format!("{}/_desk/practices", handle.base_url()))
        .json(&setup_json(monday))
        .send()
        .await
        .expect("create practice");
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.expect("json");
    let key = created["api_key"].as_str().expect("key").to_owned();
    let resp = http
        .post(format!(
            "{}/api/v1/sites/{SLUG}/patients",
            handle.base_url()
        ))
        .header("x-api-key", &key)
        .json(
            &json!({"first_name": "Zoë", "last_name": "O'Brien", "date_of_birth": "1985-04-12",
                      "mobile_phone": "0412 345 678", "email": "Zoe.OBrien@Example.com",
                      "medicare": {"number": "2123456701", "irn": 1}}),
        )
        .send()
        .await
        .expect("patient");
    let status = resp.status();
    let patient: Value = resp.json().await.expect("json");
    assert_eq!(status, 201, "{patient}");
    Env {
        handle,
        http,
        key,
        monday,
        patient: patient["id"].as_str().expect("id").to_owned(),
    }
}

async fn env() -> Env {
    env_with(None).await
}

impl Env {
    fn url(&self, tail: &str) -> String {
        format!("{}/api/v1/sites/{SLUG}/{tail}", self.handle.base_url())
    }

    fn at(&self, day_offset: i64, hm: &str) -> String {
        let d = self
            .monday
            .checked_add(jiff::Span::new().days(day_offset))
            .expect("date");
        let t: jiff::civil::Time = format!("{hm}:00").parse().expect("time");
        d.to_datetime(t)
            .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
            .expect("zoned")
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    async fn insert(&self, p: &str, day: i64, start: &str, end: &str, xref: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("appointments"))
            .header("x-api-key", &self.key)
            .json(
                &json!({"practitioner": p, "start": self.at(day, start), "end": self.at(day, end),
                          "reason": "R1", "patient": self.patient, "external_ref": xref}),
            )
            .send()
            .await
            .expect("insert");
        let status = resp.status().as_u16();
        if status >= 400 {
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "errors are problem+json"
            );
        }
        (status, resp.json().await.expect("json"))
    }

    async fn desk_book(&self, p: &str, day: i64, start: &str, end: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!(
                "{}/_desk/sites/{SLUG}/appointments",
                self.handle.base_url()
            ))
            .json(
                &json!({"practitioner": p, "start": self.at(day, start), "end": self.at(day, end)}),
            )
            .send()
            .await
            .expect("desk");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }
}

fn kind(problem: &Value) -> &str {
    problem["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("")
}

#[tokio::test]
async fn online_insert_refuses_every_overlap_with_409() {
    let e = env().await;
    let (s, _) = e.desk_book("D1", 0, "09:00", "09:30").await;
    assert_eq!(s, 201);
    let (s, p) = e.insert("D1", 0, "09:00", "09:30", "x1").await;
    assert_eq!((s, kind(&p)), (409, "overlaps-appointment"), "{p}");
    let (s, p) = e.insert("D1", 0, "09:15", "09:45", "x2").await;
    assert_eq!((s, kind(&p)), (409, "overlaps-appointment"), "{p}");
    let (s, p) = e.insert("D1", 0, "11:45", "12:15", "x3").await;
    assert_eq!((s, kind(&p)), (409, "overlaps-break"), "{p}");
    let (s, p) = e.insert("D1", 0, "17:00", "17:30", "x4").await;
    assert_eq!((s, kind(&p)), (409, "outside-reason-window"), "{p}");
    let (s, p) = e.insert("D1", 1, "09:00", "09:30", "x5").await;
    assert_eq!((s, kind(&p)), (409, "closed-date"), "{p}");
    let (s, p) = e.insert("D1", 5, "09:00", "09:30", "x6").await;
    assert!(s == 409, "{p}");
    // A block for everyone.
    let resp = e
        .http
        .post(format!("{}/_desk/sites/{SLUG}/blocks", e.handle.base_url()))
        .json(
            &json!({"date": e.monday.checked_add(jiff::Span::new().days(2)).expect("d").to_string(),
                      "start": "10:00", "end": "11:00", "kind": "meeting"}),
        )
        .send()
        .await
        .expect("block");
    assert_eq!(resp.status(), 201);
    let (s, p) = e.insert("H1", 2, "10:30", "11:15", "x7").await;
    assert_eq!((s, kind(&p)), (409, "overlaps-block"), "{p}");
    // The slot right after the desk booking is free.
    let (s, p) = e.insert("D1", 0, "09:30", "10:00", "x8").await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["source"], "online");
    assert!(p["detail"].is_null());
}

#[tokio::test]
async fn off_grid_and_wrong_duration_are_422() {
    let e = env().await;
    let (s, p) = e.insert("D1", 0, "09:05", "09:35", "g1").await;
    assert_eq!((s, kind(&p)), (422, "off-grid"), "{p}");
    assert!(p["detail"].as_str().expect("detail").contains("15-minute"));
    let (s, p) = e.insert("D1", 0, "09:00", "09:45", "g2").await;
    assert_eq!((s, kind(&p)), (422, "wrong-duration"), "{p}");
    let (s, p) = e.insert("ZZ", 0, "09:00", "09:30", "g3").await;
    assert_eq!((s, kind(&p)), (422, "invalid"), "{p}");
    assert!(
        p["detail"]
            .as_str()
            .expect("detail")
            .starts_with("practitioner")
    );
    let resp = e
        .http
        .post(e.url("appointments"))
        .header("x-api-key", &e.key)
        .json(
            &json!({"practitioner": "D1", "start": "2026-12-01T09:00:00", "end": "x",
                      "patient": e.patient, "external_ref": "g4"}),
        )
        .send()
        .await
        .expect("insert");
    assert_eq!(resp.status(), 422);
    let p: Value = resp.json().await.expect("json");
    assert!(
        p["detail"].as_str().expect("detail").starts_with("start"),
        "{p}"
    );
}

#[tokio::test]
async fn insert_is_idempotent_on_external_ref() {
    let e = env().await;
    let (s1, a) = e.insert("H1", 0, "14:00", "14:45", "ref-1").await;
    assert_eq!(s1, 201, "{a}");
    let (s2, b) = e.insert("H1", 0, "14:00", "14:45", "ref-1").await;
    assert_eq!(s2, 200, "{b}");
    assert_eq!(a["id"], b["id"]);
    let day = e.monday.to_string();
    let rows: Value = e
        .http
        .get(format!(
            "{}/_desk/sites/{SLUG}/appointments?date={day}",
            e.handle.base_url()
        ))
        .send()
        .await
        .expect("desk list")
        .json()
        .await
        .expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{rows:?}");
    for field in [
        "id",
        "practitioner",
        "start",
        "end",
        "source",
        "external_ref",
        "notes",
    ] {
        assert!(rows[0].get(field).is_some(), "{field} missing");
    }
    assert_eq!(rows[0]["external_ref"], "ref-1");
}

#[tokio::test]
async fn desk_may_double_book_and_remove() {
    let e = env().await;
    let (s1, a) = e.desk_book("D1", 0, "10:00", "10:30").await;
    let (s2, b) = e.desk_book("D1", 0, "10:00", "10:30").await;
    assert_eq!((s1, s2), (201, 201));
    assert_ne!(a["id"], b["id"]);
    let resp = e
        .http
        .delete(format!(
            "{}/_desk/sites/{SLUG}/appointments/{}",
            e.handle.base_url(),
            a["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    // Still taken by the second one.
    let (s, _) = e.insert("D1", 0, "10:00", "10:30", "d1").await;
    assert_eq!(s, 409);
    // There is no cancel through the API.
    let resp = e
        .http
        .delete(e.url(&format!("appointments/{}", b["id"].as_str().expect("id"))))
        .header("x-api-key", &e.key)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn auth_failures_are_distinct() {
    let e = env().await;
    let get = |key: &str, slug: &str| {
        e.http
            .get(format!(
                "{}/api/v1/sites/{slug}/practice",
                e.handle.base_url()
            ))
            .header("x-api-key", key)
            .send()
    };
    let r = get("wrong", SLUG).await.expect("get");
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.expect("json");
    assert_eq!(kind(&p), "unauthorized");
    let r = get(&e.key, "snosuchsite").await.expect("get");
    assert_eq!(r.status(), 404);
    let r = get(DEMO_API_KEY, DEMO_SLUG).await.expect("get");
    assert_eq!(r.status(), 200);
    let r = e
        .http
        .delete(format!(
            "{}/_desk/sites/{SLUG}/keys/{}",
            e.handle.base_url(),
            e.key
        ))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    let r = get(&e.key, SLUG).await.expect("get");
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.expect("json");
    assert_eq!(kind(&p), "key-revoked");
}

#[tokio::test]
async fn rate_limit_gives_429_with_retry_after() {
    let e = env_with(Some(RateLimit {
        per_second: 0.5,
        burst: 3.0,
    }))
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = e
            .http
            .get(e.url("practice"))
            .header("x-api-key", &e.key)
            .send()
            .await
            .expect("get");
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let secs: u64 = retry_after
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(secs >= 1);
}

#[tokio::test]
async fn patients_are_searched_normalised() {
    let e = env().await;
    let search = |q: &'static str| {
        let url = format!("{}?{q}", e.url("patients"));
        let http = e.http.clone();
        let key = e.key.clone();
        async move {
            let r = http
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .expect("get");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (s, v) = search("last_name=obrien&first_name=ZOE").await;
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().expect("items").len(), 1, "{v}");
    let (_, v) = search("phone=%2B61412345678").await;
    assert_eq!(v["items"].as_array().expect("items").len(), 1, "{v}");
    let (_, v) = search("email=%20zoe.obrien@example.COM").await;
    assert_eq!(v["items"].as_array().expect("items").len(), 1, "{v}");
    let (_, v) = search("date_of_birth=1985-04-13").await;
    assert_eq!(v["items"].as_array().expect("items").len(), 0, "{v}");
    let (s, v) = search("").await;
    assert_eq!(s, 422, "{v}");
    let r = e
        .http
        .post(e.url("patients"))
        .header("x-api-key", &e.key)
        .json(
            &json!({"first_name": "A", "last_name": "B", "date_of_birth": "1990-01-01",
                      "medicare": {"number": "2123456711", "irn": 1}}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.expect("json");
    assert!(
        p["detail"]
            .as_str()
            .expect("d")
            .starts_with("medicare.number"),
        "{p}"
    );
}

#[tokio::test]
async fn generated_practices_serve_their_diary_and_manifest() {
    let e = env().await;
    let manifest = e.handle.sim().manifest();
    assert_eq!(manifest.practices.len(), 4);
    let entry = &manifest.practices[2];
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get(&entry.timezone).expect("tz"))
        .date();
    let to = today.checked_add(jiff::Span::new().days(7)).expect("d");
    let r = e
        .http
        .get(format!(
            "{}/api/v1/sites/{}/appointments?from={today}&to={to}&limit=50",
            e.handle.base_url(),
            entry.slug
        ))
        .header("x-api-key", &entry.api_key)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["items"].as_array().expect("items").len(), 50);
    assert!(page["next_cursor"].is_string());
    let start = page["items"][0]["start"].as_str().expect("start");
    assert!(
        start.parse::<jiff::Timestamp>().is_ok(),
        "{start} has an offset"
    );
    let m: Value = e
        .http
        .get(format!("{}/_sim/manifest", e.handle.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(m["practices"][0]["slug"], DEMO_SLUG);
}

/// Events a webhook receiver got: (X-Signature-Timestamp, X-Signature, raw body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, bytes::Bytes)>>>;

/// A webhook receiver on loopback that keeps everything POSTed to `/hook`.
async fn receiver() -> (String, Received) {
    let got: Received = Default::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let keep = keep.clone();
            async move {
                let h = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                keep.lock().expect("lock").push((
                    h("x-signature-timestamp"),
                    h("x-signature"),
                    body,
                ));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

/// Wait (up to 20 s) for a signed event of `kind` about `subject`; returns its JSON.
async fn event(got: &Received, secret: &str, kind: &str, subject: &str) -> Value {
    use hmac::Mac;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = got.lock().expect("lock").clone();
        for (ts, sig, body) in events {
            let v: Value = serde_json::from_slice(&body).expect("event json");
            if v["type"] == kind && v["subject"] == subject {
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
                mac.update(format!("{ts}.").as_bytes());
                mac.update(&body);
                let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                assert_eq!(sig, expected, "signature of {v}");
                return v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} event for {subject} within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn desk_closes_and_reopens_a_date_with_feed_and_webhook() {
    let e = env().await;
    let secret = "closed-dates-secret-123";
    let (hook, got) = receiver().await;
    let r = e
        .http
        .post(e.url("webhooks"))
        .header("x-api-key", &e.key)
        .json(&json!({"url": hook, "secret": secret}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), 201);
    let feed = |since: String| {
        let (http, url, key) = (e.http.clone(), e.url("changes"), e.key.clone());
        async move {
            let v: Value = http
                .get(format!("{url}?since={since}"))
                .header("x-api-key", key)
                .send()
                .await
                .expect("changes")
                .json()
                .await
                .expect("json");
            v
        }
    };
    let cursor = feed("0".into()).await["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let desk = format!("{}/_desk/sites/{SLUG}/closed-dates", e.handle.base_url());
    let day = |n: i64| {
        e.monday
            .checked_add(jiff::Span::new().days(n))
            .expect("date")
            .to_string()
    };
    // A desk booking on Friday stays when Friday is closed.
    let (s, booked) = e.desk_book("D1", 4, "09:00", "09:30").await;
    assert_eq!(s, 201);

    // Close Thursday.
    let r = e
        .http
        .post(&desk)
        .json(&json!({"date": day(3)}))
        .send()
        .await
        .expect("close");
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["id"], day(3));
    let (s, p) = e.insert("D1", 3, "09:00", "09:30", "c1").await;
    assert_eq!((s, kind(&p)), (409, "closed-date"), "{p}");
    let listed: Value = e
        .http
        .get(e.url("closed-dates"))
        .header("x-api-key", &e.key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let dates: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["date"].as_str())
        .collect();
    assert_eq!(dates, vec![day(1).as_str(), day(3).as_str()]);
    // Closing it twice is a conflict.
    let r = e
        .http
        .post(&desk)
        .json(&json!({"date": day(3)}))
        .send()
        .await
        .expect("close");
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.expect("json");
    assert_eq!(kind(&p), "already-closed", "{p}");

    // The change feed and the webhook.
    let page = feed(cursor.clone()).await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{page}"); // the desk booking, then the closure
    assert_eq!(items[1]["type"], "closed_date.created");
    assert_eq!(items[1]["subject"], day(3));
    assert_eq!(items[1]["data"]["date"], day(3));
    let ev = event(
        &got,
        secret,
        "dev.slotbridge.pms.closed_date.created",
        &day(3),
    )
    .await;
    assert_eq!(ev["siteslug"], SLUG);
    assert_eq!(ev["data"]["seq"], items[1]["seq"]);
    assert_eq!(ev["data"]["object"]["date"], day(3));

    // Close Friday: its appointment stays in the diary.
    let r = e
        .http
        .post(&desk)
        .json(&json!({"date": day(4)}))
        .send()
        .await
        .expect("close");
    assert_eq!(r.status(), 201);
    let friday: Value = e
        .http
        .get(format!(
            "{}?from={}&to={}",
            e.url("appointments"),
            day(4),
            day(5)
        ))
        .header("x-api-key", &e.key)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(friday["items"][0]["id"], booked["id"], "{friday}");

    // Reopen Thursday: online bookings fit again.
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let r = e
        .http
        .delete(format!("{desk}/{}", day(3)))
        .send()
        .await
        .expect("reopen");
    assert_eq!(r.status(), 204);
    let (s, p) = e.insert("D1", 3, "09:00", "09:30", "c2").await;
    assert_eq!(s, 201, "{p}");
    let page = feed(cursor).await;
    let kinds: Vec<(&str, &str)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| Some((c["type"].as_str()?, c["subject"].as_str()?)))
        .collect();
    assert!(
        kinds.contains(&("closed_date.deleted", day(3).as_str())),
        "{kinds:?}"
    );
    event(
        &got,
        secret,
        "dev.slotbridge.pms.closed_date.deleted",
        &day(3),
    )
    .await;

    // Reopening a date that is not closed, or is not a date.
    let r = e
        .http
        .delete(format!("{desk}/{}", day(3)))
        .send()
        .await
        .expect("reopen");
    assert_eq!(r.status(), 404);
    let r = e
        .http
        .delete(format!("{desk}/next-tuesday"))
        .send()
        .await
        .expect("reopen");
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.expect("json");
    assert!(
        p["detail"].as_str().expect("detail").starts_with("date:"),
        "{p}"
    );
    // Unknown site.
    let r = e
        .http
        .post(format!(
            "{}/_desk/sites/snosuchsite/closed-dates",
            e.handle.base_url()
        ))
        .json(&json!({"date": day(3)}))
        .send()
        .await
        .expect("close");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn desk_marks_a_started_appointment_did_not_attend_with_feed_and_webhook() {
    let e = env().await;
    let secret = "did-not-attend-secret-1";
    let (hook, got) = receiver().await;
    let r = e
        .http
        .post(e.url("webhooks"))
        .header("x-api-key", &e.key)
        .json(&json!({"url": hook, "secret": secret}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), 201);
    let read = |id: String| {
        let (http, url, key) = (
            e.http.clone(),
            e.url(&format!("appointments/{id}")),
            e.key.clone(),
        );
        async move {
            let r = http
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .expect("read");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let mark = |id: String| {
        let url = format!(
            "{}/_desk/sites/{SLUG}/appointments/{id}/did-not-attend",
            e.handle.base_url()
        );
        let http = e.http.clone();
        async move { http.post(url).send().await.expect("mark") }
    };
    // Two weeks before the Monday ahead, and the Monday ahead.
    let (s, past) = e.desk_book("D1", -14, "09:00", "09:30").await;
    assert_eq!(s, 201, "{past}");
    let past = past["id"].as_str().expect("id").to_owned();
    let (s, future) = e.desk_book("D1", 0, "09:00", "09:30").await;
    assert_eq!(s, 201, "{future}");
    let future = future["id"].as_str().expect("id").to_owned();
    let (s, a) = read(past.clone()).await;
    assert_eq!((s, &a["status"]), (200, &json!("booked")), "{a}");
    let cursor = e
        .http
        .get(e.url("changes"))
        .header("x-api-key", &e.key)
        .send()
        .await
        .expect("changes")
        .json::<Value>()
        .await
        .expect("json")["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();

    // Unknown: 404, nothing changes.
    assert_eq!(mark("A999999".into()).await.status(), 404);
    assert_eq!(mark("not-an-id".into()).await.status(), 404);
    let r = e
        .http
        .post(format!(
            "{}/_desk/sites/snosuchsite/appointments/{past}/did-not-attend",
            e.handle.base_url()
        ))
        .send()
        .await
        .expect("mark");
    assert_eq!(r.status(), 404);

    // 204, and the appointment reads as did_not_attend, alone and in the list.
    assert_eq!(mark(past.clone()).await.status(), 204);
    let (s, a) = read(past.clone()).await;
    assert_eq!((s, &a["status"]), (200, &json!("did_not_attend")), "{a}");
    let from = e
        .monday
        .checked_add(jiff::Span::new().days(-14))
        .expect("date");
    let to = from.tomorrow().expect("date");
    let listed: Value = e
        .http
        .get(format!("{}?from={from}&to={to}", e.url("appointments")))
        .header("x-api-key", &e.key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"][0]["id"], past.as_str(), "{listed}");
    assert_eq!(listed["items"][0]["status"], "did_not_attend", "{listed}");

    // One appointment.updated in the feed and to the webhook; marking again adds nothing.
    assert_eq!(mark(past.clone()).await.status(), 204);
    let page: Value = e
        .http
        .get(format!("{}?since={cursor}", e.url("changes")))
        .header("x-api-key", &e.key)
        .send()
        .await
        .expect("changes")
        .json()
        .await
        .expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["type"], "appointment.updated");
    assert_eq!(items[0]["subject"], past.as_str());
    assert_eq!(items[0]["data"]["status"], "did_not_attend");
    let ev = event(
        &got,
        secret,
        "dev.slotbridge.pms.appointment.updated",
        &past,
    )
    .await;
    assert_eq!(ev["data"]["seq"], items[0]["seq"]);
    assert_eq!(ev["data"]["object"]["status"], "did_not_attend");

    // One still to come may be marked too: the desk decides.
    assert_eq!(read(future.clone()).await.1["status"], "booked");
    assert_eq!(mark(future.clone()).await.status(), 204);
    assert_eq!(read(future.clone()).await.1["status"], "did_not_attend");
}

/// One site of an organisation: `practitioners` are `(id, specialty)`.
fn org_site(slug: &str, practitioners: &[(&str, &str)]) -> Value {
    let week = json!(["mon", "tue", "wed", "thu", "fri"]);
    let list: Vec<Value> = practitioners
        .iter()
        .map(|(id, sp)| {
            json!({"id": id, "title": "Dr", "first_name": "A", "last_name": id, "specialties": [sp]})
        })
        .collect();
    let online: Vec<Value> = practitioners
        .iter()
        .map(|(id, _)| json!({"practitioner": id, "duration_minutes": 30}))
        .collect();
    let hours: Vec<Value> = practitioners
        .iter()
        .map(|(id, _)| {
            json!({"practitioner": id, "sessions": [{"days": week, "start": "08:00", "end": "17:00"}]})
        })
        .collect();
    json!({
        "setup": {
            "site": slug, "name": format!("Coast {slug}"), "timezone": "Australia/Sydney",
            "phone": "(02) 9000 0000", "interval_minutes": 15, "stacking": true,
            "practitioners": list, "online_booking": online, "reasons": []
        },
        "hours": hours
    })
}

#[tokio::test]
async fn an_organisation_has_two_sites_each_with_its_own_practitioners_and_keys() {
    let e = env().await;
    let orgs = format!("{}/_desk/organisations", e.handle.base_url());
    let create = |body: Value| {
        let (http, url) = (e.http.clone(), orgs.clone());
        async move {
            let r = http.post(url).json(&body).send().await.expect("create");
            let status = r.status().as_u16();
            if status >= 400 {
                assert_eq!(r.headers()["content-type"], "application/problem+json");
            }
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (s, org) = create(json!({"name": "Coast Dental Group", "sites": [
        org_site("scoastmanly", &[("M1", "dentist"), ("M2", "hygienist")]),
        org_site("scoastbondi", &[("B1", "dentist")]),
    ]}))
    .await;
    assert_eq!(s, 201, "{org}");
    let id = org["organisation"].as_str().expect("organisation");
    assert_eq!(org["name"], "Coast Dental Group");
    let sites = org["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), 2, "{org}");
    assert_eq!(sites[0]["site"], "scoastmanly");
    assert_eq!(sites[1]["site"], "scoastbondi");
    let manly = sites[0]["api_key"].as_str().expect("key");
    let bondi = sites[1]["api_key"].as_str().expect("key");
    assert_ne!(manly, bondi);

    let get = |slug: &str, tail: &str, key: &str| {
        let url = format!("{}/api/v1/sites/{slug}/{tail}", e.handle.base_url());
        let (http, key) = (e.http.clone(), key.to_owned());
        async move {
            let r = http
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .expect("get");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect()
    };
    // Each key sees its own site, with its own practitioners, and names the organisation.
    let (s, p) = get("scoastmanly", "practitioners", manly).await;
    assert_eq!((s, ids(&p)), (200, vec!["M1".to_owned(), "M2".to_owned()]));
    let (s, p) = get("scoastbondi", "practitioners", bondi).await;
    assert_eq!((s, ids(&p)), (200, vec!["B1".to_owned()]));
    for (slug, key) in [("scoastmanly", manly), ("scoastbondi", bondi)] {
        let (s, p) = get(slug, "practice", key).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["organisation"]["id"], id, "{p}");
        assert_eq!(p["organisation"]["name"], "Coast Dental Group", "{p}");
    }
    // A practice on its own has none.
    let (_, p) = get(SLUG, "practice", &e.key).await;
    assert_eq!(p["organisation"], Value::Null, "{p}");
    // A key of one site is refused on the other, either way round.
    for (slug, key) in [
        ("scoastbondi", manly),
        ("scoastmanly", bondi),
        (SLUG, manly),
    ] {
        let (s, p) = get(slug, "practitioners", key).await;
        assert_eq!((s, kind(&p)), (401, "unauthorized"), "{slug}: {p}");
    }
    // The diaries are apart: a desk booking at Manly is not in Bondi's diary.
    let monday = e.monday;
    let r = e
        .http
        .post(format!(
            "{}/_desk/sites/scoastmanly/appointments",
            e.handle.base_url()
        ))
        .json(&json!({"practitioner": "M1", "start": e.at(0, "09:00"), "end": e.at(0, "09:30")}))
        .send()
        .await
        .expect("book");
    assert_eq!(r.status(), 201);
    let range = format!(
        "appointments?from={monday}&to={}",
        monday.tomorrow().expect("date")
    );
    let (_, a) = get("scoastmanly", &range, manly).await;
    assert_eq!(a["items"].as_array().map(Vec::len), Some(1), "{a}");
    let (_, a) = get("scoastbondi", &range, bondi).await;
    assert_eq!(a["items"].as_array().map(Vec::len), Some(0), "{a}");

    // All or nothing: a taken slug refuses the whole organisation, naming the site.
    let (s, p) = create(json!({"name": "Other Group", "sites": [
        org_site("sotherone", &[("O1", "dentist")]),
        org_site("scoastbondi", &[("O2", "dentist")]),
    ]}))
    .await;
    assert_eq!((s, kind(&p)), (409, "site-exists"), "{p}");
    assert!(
        p["detail"]
            .as_str()
            .expect("detail")
            .starts_with("sites[1].setup.site:"),
        "{p}"
    );
    let r = e
        .http
        .get(format!(
            "{}/api/v1/sites/sotherone/practice",
            e.handle.base_url()
        ))
        .header("x-api-key", manly)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404, "the first site was not created either");
    // The same slug twice.
    let (s, p) = create(json!({"name": "Twice", "sites": [
        org_site("stwiceone", &[("T1", "dentist")]),
        org_site("stwiceone", &[("T2", "dentist")]),
    ]}))
    .await;
    assert_eq!((s, kind(&p)), (409, "site-exists"), "{p}");
    // Bad input names the field.
    let mut bad = org_site("sbadsite", &[("X1", "dentist")]);
    bad["setup"]["interval_minutes"] = json!(7);
    let (s, p) =
        create(json!({"name": "Bad", "sites": [org_site("sgoodsite", &[("G1", "dentist")]), bad]}))
            .await;
    assert_eq!((s, kind(&p)), (422, "invalid"), "{p}");
    assert!(
        p["detail"]
            .as_str()
            .expect("detail")
            .starts_with("sites[1].setup.interval_minutes:"),
        "{p}"
    );
    let (s, p) =
        create(json!({"name": "  ", "sites": [org_site("sblankname", &[("N1", "dentist")])]}))
            .await;
    assert_eq!(s, 422);
    assert!(
        p["detail"].as_str().expect("detail").starts_with("name:"),
        "{p}"
    );
    let (s, p) = create(json!({"name": "Empty", "sites": []})).await;
    assert_eq!(s, 422);
    assert!(
        p["detail"].as_str().expect("detail").starts_with("sites:"),
        "{p}"
    );
    let (s, p) = create(json!({"name": "No sites"})).await;
    assert_eq!(s, 422);
    assert!(
        p["detail"].as_str().expect("detail").starts_with("body:"),
        "{p}"
    );
    let r = e
        .http
        .post(&orgs)
        .body("[1, 2]")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
}

/// This machine's IPv4 address on its default route, if it has one (no packet is sent).
fn outbound_ipv4() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn desk_and_sim_controls_answer_on_loopback_only() {
    let sim = PmsSim::builder().rate_limit(None).build();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = sim.serve(listener).await.expect("serve");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let controls: [(&str, &str, Option<Value>); 8] = [
        ("GET", "/_sim/manifest", None),
        ("GET", "/_sim/faults", None),
        (
            "PUT",
            "/_sim/faults",
            Some(json!({"outage": "service_unavailable"})),
        ),
        (
            "GET",
            "/_desk/sites/sharbourdental/appointments?date=2030-01-07",
            None,
        ),
        (
            "POST",
            "/_desk/sites/sharbourdental/closed-dates",
            Some(json!({"date": "2030-01-08"})),
        ),
        (
            "PUT",
            "/_desk/sites/sharbourdental/stacking",
            Some(json!({"enabled": false})),
        ),
        ("POST", "/_desk/sites/sharbourdental/keys", None),
        (
            "DELETE",
            "/_desk/sites/sharbourdental/keys/demo-harbour-dental-key",
            None,
        ),
    ];
    let send = |base: String, method: &str, path: &str, body: Option<Value>| {
        let mut req = http.request(method.parse().expect("method"), format!("{base}{path}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let api = |base: String| {
        http.get(format!(
            "{base}/api/v1/sites/{DEMO_SLUG}/closed-dates?limit=500"
        ))
        .header("x-api-key", DEMO_API_KEY)
        .send()
    };
    match outbound_ipv4() {
        Some(ip) => {
            let far = format!("http://{ip}:{port}");
            for (method, path, body) in controls.iter().cloned() {
                let r = send(far.clone(), method, path, body).await.expect("send");
                assert_eq!(r.status(), 403, "{method} {path} from {ip}");
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let p: Value = r.json().await.expect("json");
                assert_eq!(kind(&p), "forbidden", "{p}");
            }
            // The API itself answers from anywhere, and none of the refused controls acted:
            // no outage, no revoked key, no new closed date.
            let r = api(far).await.expect("api");
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.expect("json");
            assert!(
                !v["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .any(|d| d["date"] == "2030-01-08"),
                "{v}"
            );
        }
        None => eprintln!(
            "no non-loopback IPv4 address on this machine: nothing off-host can reach the \
             simulator, so only the loopback half of this test ran"
        ),
    }
    // From loopback every control works.
    let near = format!("http://127.0.0.1:{port}");
    for (method, path, body) in controls.iter().cloned() {
        let r = send(near.clone(), method, path, body).await.expect("send");
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    }
    handle.shutdown().await;
}
