//! Contract tests: the Exact connector against the PMS simulator over real HTTP, including every
//! fault the simulator can inject.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::civil::{Date, DateTime};
use secrecy::SecretString;
use serde_json::{Value, json};
use slotbridge_domain::practice::{Attendance, SiteSlug, default_reason};
use slotbridge_pms::webhook::verify_webhook;
use slotbridge_pms::{
    Changes, ExactConfig, ExactConnector, NewAppointment, NewPatient, PatientQuery, PmsConnector,
    PmsError, read_snapshot,
};
use slotbridge_pms_sim::{
    Burst429, DEMO_API_KEY, DEMO_SLUG, DeskAction, DeskOutcome, Faults, Outage, PmsSim, RateLimit,
    SimHandle,
};

const SLUG: &str = "scontract";

/// A webhook delivery as received: content type, signature timestamp, signature, body.
type Delivery = (String, String, String, Vec<u8>);

struct Env {
    handle: SimHandle,
    key: String,
    monday: Date,
}

fn sydney() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Australia/Sydney").expect("tz")
}

fn next_monday() -> Date {
    let mut d = jiff::Timestamp::now()
        .to_zoned_datetime(sydney())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .expect("date");
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.tomorrow().expect("date");
    }
    d
}

async fn env_with(rate: Option<RateLimit>) -> Env {
    let sim = PmsSim::builder()
        .practices(2)
        .seed(9)
        .rate_limit(rate)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = sim.serve(listener).await.expect("serve");
    let week = json!(["mon", "tue", "wed", "thu", "fri"]);
    let body = json!({
        "setup": {
            "site": SLUG, "name": "Contract Dental", "timezone": "Australia/Sydney",
            "phone": "(02) 9000 0001", "interval_minutes": 15, "stacking": true,
            "practitioners": [
                {"id": "D1", "title": "Dr", "first_name": "Ann", "last_name": "Lee", "specialties": ["dentist"]},
                {"id": "X9", "title": "Dr", "first_name": "Off", "last_name": "Line", "specialties": ["dentist"]}
            ],
            "online_booking": [{"practitioner": "D1", "duration_minutes": 30}],
            "reasons": [{"id": "R1", "name": "Healthengine", "marketing": true, "providers": [
                {"practitioner": "D1", "duration_minutes": 30, "windows": [{"days": week, "start": "08:00", "end": "17:00"}]}
            ]}]
        },
        "hours": [{"practitioner": "D1", "sessions": [{"days": week, "start": "08:00", "end": "17:00"}],
                   "breaks": [{"days": week, "start": "12:00", "end": "13:00"}]}]
    });
    let created: Value = reqwest::Client::new()
        .post(format!("{}/_desk/practices", handle.base_url()))
        .json(&body)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    Env {
        key: created["api_key"].as_str().expect("key").to_owned(),
        handle,
        monday: next_monday(),
    }
}

async fn env() -> Env {
    env_with(None).await
}

impl Env {
    fn config(&self, slug: &str, key: &str) -> ExactConfig {
        let mut cfg = ExactConfig::new(
            self.handle.base_url().parse().expect("url"),
            SiteSlug::parse(slug).expect("slug"),
            SecretString::from(key.to_owned()),
        );
        cfg.backoff = Duration::from_millis(20);
        cfg
    }

    fn pms(&self) -> ExactConnector {
        ExactConnector::new(self.config(SLUG, &self.key))
    }

    fn at(&self, day: i64, h: i8, m: i8) -> DateTime {
        self.monday
            .checked_add(jiff::Span::new().days(day))
            .expect("date")
            .at(h, m, 0, 0)
    }

    async fn patient(&self, pms: &ExactConnector) -> String {
        pms.create_patient(&NewPatient {
            first_name: "Ivy".into(),
            last_name: "Tran".into(),
            date_of_birth: jiff::civil::date(1990, 2, 3),
            mobile_phone: Some("0400 111 222".into()),
            home_phone: None,
            email: Some("ivy@example.com".into()),
            address: None,
            medicare: None,
        })
        .await
        .expect("patient")
        .id
    }

    fn booking(&self, patient: &str, h: i8, m: i8, xref: &str) -> NewAppointment {
        let start = self.at(0, h, m);
        NewAppointment {
            practitioner: "D1".into(),
            start,
            end: start
                .checked_add(jiff::SignedDuration::from_mins(30))
                .expect("end"),
            reason: Some("R1".into()),
            patient: patient.into(),
            notes: "booked online".into(),
            external_ref: xref.into(),
        }
    }
}

#[tokio::test]
async fn reads_setup_and_diary_into_the_domain_model() {
    let e = env().await;
    let pms = e.pms();
    let setup = pms.read_setup().await.expect("setup");
    assert_eq!(setup.name, "Contract Dental");
    assert_eq!(setup.timezone.name(), "Australia/Sydney");
    assert_eq!(setup.practitioners.len(), 2);
    assert_eq!(setup.online_booking.len(), 1);
    assert_eq!(
        default_reason(&setup.reasons).map(|r| r.id.as_str()),
        Some("R1")
    );
    // A desk booking shows up in the diary read, in civil time.
    let desk = reqwest::Client::new()
        .post(format!(
            "{}/_desk/sites/{SLUG}/appointments",
            e.handle.base_url()
        ))
        .json(&json!({"practitioner": "D1", "start": "2030-01-07T09:00:00+11:00", "end": "2030-01-07T09:30:00+11:00"}))
        .send()
        .await
        .expect("desk");
    assert_eq!(desk.status(), 201);
    let diary = pms
        .read_diary(
            jiff::civil::date(2030, 1, 1),
            jiff::civil::date(2030, 1, 31),
        )
        .await
        .expect("diary");
    assert_eq!(diary.appointments.len(), 1);
    assert_eq!(
        diary.appointments[0].start,
        jiff::civil::date(2030, 1, 7).at(9, 0, 0, 0)
    );
    assert_eq!(diary.hours.len(), 1);
    assert!(!pms.capabilities().can_cancel_online);
}

#[tokio::test]
async fn demo_practice_projects_to_a_snapshot() {
    let e = env().await;
    let pms = ExactConnector::new(e.config(DEMO_SLUG, DEMO_API_KEY));
    let snap = read_snapshot(&pms, jiff::Timestamp::now(), 30)
        .await
        .expect("snapshot");
    assert_eq!(snap.timezone, "Australia/Sydney");
    assert!(snap.stacking);
    assert_eq!(snap.practitioners.len(), 4);
    assert!(
        snap.appointments.len() > 100,
        "{} appointments",
        snap.appointments.len()
    );
    assert!(
        snap.booking_reasons
            .iter()
            .any(|r| r.name == "Healthengine")
    );
}

#[tokio::test]
async fn inserts_are_idempotent_and_strict() {
    let e = env().await;
    let pms = e.pms();
    let patient = e.patient(&pms).await;
    let first = pms
        .insert_appointment(&e.booking(&patient, 9, 0, "hb-1"))
        .await
        .expect("insert");
    assert!(first.created);
    let again = pms
        .insert_appointment(&e.booking(&patient, 9, 0, "hb-1"))
        .await
        .expect("insert again");
    assert!(!again.created);
    assert_eq!(first.appointment.id, again.appointment.id);
    let overlap = pms
        .insert_appointment(&e.booking(&patient, 9, 15, "hb-2"))
        .await;
    assert!(
        matches!(&overlap, Err(PmsError::Conflict { kind, .. }) if kind == "overlaps-appointment"),
        "{overlap:?}"
    );
    let off_grid = pms
        .insert_appointment(&e.booking(&patient, 10, 5, "hb-3"))
        .await;
    assert!(
        matches!(&off_grid, Err(PmsError::Invalid { kind, .. }) if kind == "off-grid"),
        "{off_grid:?}"
    );
    let found = pms
        .search_patients(&PatientQuery {
            last_name: Some("TRAN".into()),
            date_of_birth: Some(jiff::civil::date(1990, 2, 3)),
            ..PatientQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, patient);
}

#[tokio::test]
async fn reads_one_appointment_with_its_attendance_or_none_once_removed() {
    let e = env().await;
    let pms = e.pms();
    let sim = e.handle.sim();
    let patient = e.patient(&pms).await;

    // Found: an online booking reads back as it was inserted, booked.
    let inserted = pms
        .insert_appointment(&e.booking(&patient, 9, 0, "hb-read-1"))
        .await
        .expect("insert");
    let found = pms
        .read_appointment(&inserted.appointment.id)
        .await
        .expect("read");
    assert_eq!(found.as_ref(), Some(&inserted.appointment));
    assert_eq!(
        found.map(|a| a.attendance),
        Some(Attendance::Booked),
        "an appointment is booked until the desk says otherwise"
    );

    // Did not attend: a desk booking two weeks ago, marked at the desk.
    let start = e.at(-14, 9, 0);
    let instant = |dt: DateTime| {
        dt.to_zoned_datetime(sydney())
            .expect("zoned")
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    let Ok(DeskOutcome::Created { id: past }) = sim.desk(DeskAction::Book {
        site: SLUG.into(),
        practitioner: "D1".into(),
        start: instant(start),
        end: instant(e.at(-14, 9, 30)),
        reason: None,
        patient: Some(patient.clone()),
        notes: String::new(),
    }) else {
        panic!("a desk booking");
    };
    let before = pms.read_appointment(&past).await.expect("read");
    assert_eq!(before.map(|a| a.attendance), Some(Attendance::Booked));
    let marked = reqwest::Client::new()
        .post(format!(
            "{}/_desk/sites/{SLUG}/appointments/{past}/did-not-attend",
            e.handle.base_url()
        ))
        .send()
        .await
        .expect("mark");
    assert_eq!(marked.status(), 204);
    let missed = pms
        .read_appointment(&past)
        .await
        .expect("read")
        .expect("still in the diary");
    assert_eq!(missed.attendance, Attendance::DidNotAttend);
    assert_eq!((missed.id.as_str(), missed.start), (past.as_str(), start));
    // The diary read carries the attendance too.
    let diary = pms
        .read_diary(start.date(), start.date().tomorrow().expect("date"))
        .await
        .expect("diary");
    assert_eq!(
        diary
            .appointments
            .iter()
            .map(|a| (a.id.as_str(), a.attendance))
            .collect::<Vec<_>>(),
        vec![(past.as_str(), Attendance::DidNotAttend)]
    );

    // Removed at the desk (how a practice cancels): None, as for an id the PMS never had.
    sim.desk(DeskAction::Remove {
        site: SLUG.into(),
        id: inserted.appointment.id.clone(),
    })
    .expect("remove");
    assert_eq!(
        pms.read_appointment(&inserted.appointment.id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(pms.read_appointment("A424242").await.expect("read"), None);
    // An id stays in its path segment: this is no appointment, not the practice record.
    assert_eq!(
        pms.read_appointment("../practice").await.expect("read"),
        None
    );
    assert!(matches!(
        pms.read_appointment("").await,
        Err(PmsError::Invalid { kind, .. }) if kind == "id"
    ));

    // An unknown site or a wrong key is an error, never "removed".
    let unknown = ExactConnector::new(e.config("snowhere", &e.key));
    let err = unknown.read_appointment(&past).await;
    assert!(matches!(err, Err(PmsError::NotFound { .. })), "{err:?}");
    let wrong = ExactConnector::new(e.config(SLUG, "nope"));
    let err = wrong.read_appointment(&past).await;
    assert!(matches!(err, Err(PmsError::Unauthorized { .. })), "{err:?}");
}

#[tokio::test]
async fn auth_errors_map_to_their_variants() {
    let e = env().await;
    let wrong = ExactConnector::new(e.config(SLUG, "nope"));
    assert!(matches!(
        wrong.read_setup().await,
        Err(PmsError::Unauthorized { .. })
    ));
    let unknown = ExactConnector::new(e.config("snowhere", &e.key));
    assert!(matches!(
        unknown.read_setup().await,
        Err(PmsError::NotFound { .. })
    ));
    e.handle
        .sim()
        .desk(slotbridge_pms_sim::DeskAction::RevokeKey {
            site: SLUG.into(),
            key: e.key.clone(),
        })
        .expect("revoke");
    assert!(matches!(
        e.pms().read_setup().await,
        Err(PmsError::KeyRevoked { .. })
    ));
}

#[tokio::test]
async fn api_key_never_appears_in_debug_output() {
    let e = env().await;
    let pms = e.pms();
    let shown = format!("{pms:?} {:?}", e.config(SLUG, &e.key));
    assert!(!shown.contains(&e.key), "{shown}");
    assert!(shown.contains("redacted") || shown.contains("REDACTED"));
}

#[tokio::test]
async fn rate_limit_without_retry_reports_retry_after() {
    let e = env_with(Some(RateLimit {
        per_second: 0.1,
        burst: 1.0,
    }))
    .await;
    let mut cfg = e.config(SLUG, &e.key);
    cfg.max_retry_after = Duration::ZERO;
    let pms = ExactConnector::new(cfg);
    let _ = pms.zone().await.expect("first request fits the burst");
    let err = pms.read_setup().await.expect_err("limited");
    match err {
        PmsError::RateLimited { retry_after } => assert!(retry_after >= Duration::from_secs(1)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn fault_burst_of_429_is_waited_out_honouring_retry_after() {
    let e = env().await;
    e.handle.sim().set_faults(Faults {
        burst_429: Some(Burst429 {
            requests: 2,
            retry_after_secs: 1,
        }),
        ..Faults::default()
    });
    let started = Instant::now();
    let setup = e.pms().read_setup().await.expect("setup after the burst");
    assert_eq!(setup.name, "Contract Dental");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited Retry-After twice"
    );
}

#[tokio::test]
async fn fault_server_errors_are_retried_then_reported_unavailable() {
    let e = env().await;
    e.handle.sim().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let err = e.pms().read_setup().await.expect_err("500s");
    assert!(matches!(err, PmsError::Unavailable { .. }), "{err:?}");
    e.handle.sim().set_faults(Faults::default());
    assert!(e.pms().read_setup().await.is_ok());
}

#[tokio::test]
async fn fault_outages_are_unavailable() {
    let e = env().await;
    for outage in [Outage::ServiceUnavailable, Outage::Refused] {
        e.handle.sim().set_faults(Faults {
            outage: Some(outage),
            ..Faults::default()
        });
        let mut cfg = e.config(SLUG, &e.key);
        cfg.max_retry_after = Duration::ZERO;
        cfg.max_retries = 1;
        let err = ExactConnector::new(cfg)
            .read_setup()
            .await
            .expect_err("down");
        assert!(
            matches!(
                err,
                PmsError::Unavailable { .. } | PmsError::RateLimited { .. }
            ),
            "{outage:?}: {err:?}"
        );
        if outage == Outage::ServiceUnavailable {
            assert!(matches!(err, PmsError::Unavailable { .. }), "{err:?}");
        }
    }
}

#[tokio::test]
async fn fault_latency_beyond_the_timeout_is_a_timeout() {
    let e = env().await;
    e.handle.sim().set_faults(Faults {
        latency_ms: 1500,
        jitter_ms: 100,
        ..Faults::default()
    });
    let mut cfg = e.config(SLUG, &e.key);
    cfg.timeout = Duration::from_millis(300);
    cfg.max_retries = 1;
    let err = ExactConnector::new(cfg)
        .read_setup()
        .await
        .expect_err("slow");
    assert_eq!(err, PmsError::Timeout);
}

#[tokio::test]
async fn fault_slow_bodies_within_the_timeout_still_parse() {
    let e = env().await;
    e.handle.sim().set_faults(Faults {
        slow_body_ms: 300,
        latency_ms: 50,
        ..Faults::default()
    });
    let setup = e.pms().read_setup().await.expect("slow but fine");
    assert_eq!(setup.practitioners.len(), 2);
    e.handle.sim().set_faults(Faults {
        slow_body_ms: 5000,
        ..Faults::default()
    });
    let mut cfg = e.config(SLUG, &e.key);
    cfg.timeout = Duration::from_millis(400);
    cfg.max_retries = 0;
    let err = ExactConnector::new(cfg)
        .read_setup()
        .await
        .expect_err("too slow");
    assert_eq!(err, PmsError::Timeout);
}

#[tokio::test]
async fn fault_dropped_connections_are_unavailable_not_panics() {
    let e = env().await;
    e.handle.sim().set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let err = e.pms().read_setup().await.expect_err("dropped");
    assert!(matches!(err, PmsError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn change_feed_and_signed_webhooks_report_desk_changes() {
    let e = env().await;
    let pms = e.pms();
    let Changes::Page(start) = pms.read_changes(None).await.expect("feed") else {
        panic!("fresh cursor cannot be expired");
    };
    // A webhook receiver.
    let received: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    sink.lock().expect("lock").push((
                        h("content-type"),
                        h("x-signature-timestamp"),
                        h("x-signature"),
                        body.to_vec(),
                    ));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let secret = SecretString::from("a-very-secret-signing-key".to_owned());
    pms.register_webhook(&hook_url, &secret)
        .await
        .expect("register");
    let desk = e
        .handle
        .sim()
        .desk(slotbridge_pms_sim::DeskAction::Stacking {
            site: SLUG.into(),
            enabled: false,
        })
        .expect("desk");
    assert_eq!(desk, slotbridge_pms_sim::DeskOutcome::Done);
    let Changes::Page(page) = pms
        .read_changes(Some(&start.next_cursor))
        .await
        .expect("feed")
    else {
        panic!("not expired");
    };
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].kind, "setup.changed");
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivery = loop {
        if let Some(d) = received.lock().expect("lock").first().cloned() {
            break d;
        }
        assert!(Instant::now() < deadline, "no webhook delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (content_type, ts, sig, body) = delivery;
    assert_eq!(content_type, "application/cloudevents+json");
    let event = verify_webhook(
        &secret,
        &ts,
        &sig,
        &body,
        jiff::Timestamp::now(),
        Duration::from_secs(300),
    )
    .expect("valid signature");
    assert_eq!(event.siteslug, SLUG);
    assert_eq!(event.kind, "dev.slotbridge.pms.setup.changed");
    let wrong = SecretString::from("another-secret-entirely".to_owned());
    assert!(
        verify_webhook(
            &wrong,
            &ts,
            &sig,
            &body,
            jiff::Timestamp::now(),
            Duration::from_secs(300)
        )
        .is_err()
    );
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(
        verify_webhook(
            &secret,
            &ts,
            &sig,
            &tampered,
            jiff::Timestamp::now(),
            Duration::from_secs(300)
        )
        .is_err()
    );
    // The setup read now sees stacking off.
    assert!(!pms.read_setup().await.expect("setup").stacking);
}
