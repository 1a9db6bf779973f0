//! Contract tests: the Cliniko connector against the Cliniko simulator over real HTTP. The
//! connector was written from Cliniko's published documentation, the simulator separately from
//! the same documentation; these tests check that the two agree.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use slotbridge_cliniko_sim::{
    AppointmentTypeSpec, BusinessSpec, ClinikoSim, DeskAction, OnlineBookings, PatientSpec,
    PracticeSpec, PractitionerSpec, SeededPractice, SimHandle, WeeklySpec, generate,
};
use slotbridge_domain::clock::ManualClock;
use slotbridge_domain::practice::Attendance;
use slotbridge_pms::cliniko::{ClinikoConfig, ClinikoConnector, ClinikoKey, RateLimit};
use slotbridge_pms::{Changes, NewAppointment, NewPatient, PatientQuery, PmsConnector, PmsError};

struct Env {
    sim: ClinikoSim,
    handle: SimHandle,
    practice: SeededPractice,
}

impl Env {
    fn connector_at(&self, base: &str) -> ClinikoConnector {
        let key = ClinikoKey::parse(self.practice.api_key.clone().into()).expect("key");
        assert_eq!(key.shard(), self.practice.shard);
        let mut cfg = ClinikoConfig::new(key, self.practice.business_ids[0].clone())
            .with_base_url(format!("{base}/").parse().expect("url"));
        cfg.backoff = Duration::from_millis(20);
        cfg.changes_every = Duration::ZERO;
        cfg.rate = RateLimit {
            requests: 100_000,
            per: Duration::from_secs(60),
        };
        ClinikoConnector::new(cfg)
    }

    fn connector(&self) -> ClinikoConnector {
        self.connector_at(&self.handle.api_base(&self.practice.shard))
    }

    fn desk(&self, action: DeskAction) -> Option<u64> {
        self.sim
            .desk(self.practice.account_id, action)
            .expect("desk action")
            .id
    }

    fn id(s: &str) -> u64 {
        s.parse().expect("numeric id")
    }
}

async fn start(sim: ClinikoSim, spec: PracticeSpec) -> Env {
    let practice = sim.seed(spec).expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = slotbridge_cliniko_sim::serve(listener, sim.clone())
        .await
        .expect("serve");
    Env {
        sim,
        handle,
        practice,
    }
}

fn weekdays(intervals: &[(&str, &str)]) -> Vec<WeeklySpec> {
    (1..=5)
        .map(|d| WeeklySpec {
            business: 0,
            day_of_week: d,
            intervals: intervals
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        })
        .collect()
}

/// Two businesses; three types (one hidden); Ann (shown, both shown types), Bob (hidden), Cat
/// (shown, only the hidden type), Dan (at the other business).
fn contract_practice(patients: usize) -> PracticeSpec {
    let p =
        |first: &str, shown: bool, businesses: Vec<usize>, types: Vec<usize>| PractitionerSpec {
            first_name: first.to_owned(),
            last_name: "Lee".to_owned(),
            title: "Dr".to_owned(),
            designation: "Dentist".to_owned(),
            active: true,
            show_in_online_bookings: shown,
            businesses: businesses.clone(),
            appointment_types: types,
            availabilities: weekdays(&[("09:00", "12:00"), ("13:00", "17:00")])
                .into_iter()
                .map(|mut w| {
                    w.business = businesses[0];
                    w
                })
                .collect(),
        };
    PracticeSpec {
        name: "Contract Dental".into(),
        shard: "au2".into(),
        time_zone: "Sydney".into(),
        api_key: None,
        online_bookings: OnlineBookings::default(),
        timeslot_size_in_minutes: 15,
        businesses: vec![
            BusinessSpec {
                name: "Contract Dental Harbour".into(),
                show_in_online_bookings: true,
            },
            BusinessSpec {
                name: "Contract Dental Hills".into(),
                show_in_online_bookings: true,
            },
        ],
        appointment_types: vec![
            AppointmentTypeSpec {
                name: "Check-up".into(),
                duration_in_minutes: 30,
                show_in_online_bookings: true,
                category: None,
            },
            AppointmentTypeSpec {
                name: "Whitening".into(),
                duration_in_minutes: 60,
                show_in_online_bookings: true,
                category: None,
            },
            AppointmentTypeSpec {
                name: "Root canal".into(),
                duration_in_minutes: 90,
                show_in_online_bookings: false,
                category: None,
            },
        ],
        practitioners: vec![
            p("Ann", true, vec![0], vec![0, 1]),
            p("Bob", false, vec![0], vec![0]),
            p("Cat", true, vec![0], vec![2]),
            p("Dan", true, vec![1], vec![0]),
        ],
        patients: (0..patients)
            .map(|i| PatientSpec {
                first_name: format!("Pat{i}"),
                last_name: "Paging".into(),
                date_of_birth: Some(jiff::civil::date(1980, 1, 1 + (i % 28) as i8)),
                email: Some(format!("pat{i}@example.com")),
                mobile: Some(format!("04123450{:02}", i % 100)),
            })
            .collect(),
    }
}

fn sydney() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Australia/Sydney").expect("tz")
}

/// A weekday at least two days ahead, Sydney.
fn next_weekday() -> Date {
    let mut d = Timestamp::now()
        .to_zoned_datetime(sydney())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .expect("date");
    while d.weekday().to_monday_one_offset() > 5 {
        d = d.tomorrow().expect("date");
    }
    d
}

fn at(d: Date, h: i8, m: i8) -> Timestamp {
    d.at(h, m, 0, 0)
        .to_zoned_datetime(sydney())
        .expect("local time")
        .timestamp()
}

fn sim() -> ClinikoSim {
    ClinikoSim::builder().rate_limit(None).build()
}

#[tokio::test]
async fn the_setup_maps_what_online_bookings_show() {
    let env = start(sim(), contract_practice(0)).await;
    let setup = env.connector().read_setup().await.expect("setup");
    let ids = &env.practice.practitioner_ids;
    let types = &env.practice.appointment_type_ids;
    assert_eq!(setup.timezone.name(), "Australia/Sydney");
    assert_eq!(setup.interval_minutes, 15);
    assert_eq!(setup.name, "Contract Dental Harbour");
    // The business's practitioners, shown or not; Dan works elsewhere.
    let all: Vec<_> = setup.practitioners.iter().map(|p| p.id.clone()).collect();
    assert_eq!(all, ids[..3].to_vec());
    // Online: Ann only (Bob is hidden, Cat offers only a hidden type); her shortest type.
    let online: Vec<_> = setup
        .online_booking
        .iter()
        .map(|e| (e.practitioner.clone(), e.duration_minutes))
        .collect();
    assert_eq!(online, [(ids[0].clone(), 30)]);
    let reason = |id: &str| setup.reasons.iter().find(|r| r.id == id).expect("type");
    let providers = |id: &str| {
        reason(id)
            .providers
            .iter()
            .map(|p| (p.practitioner.clone(), p.duration_minutes))
            .collect::<Vec<_>>()
    };
    // Bob offers it too: his rule stays (he is not online, so nothing of his is published).
    assert_eq!(
        providers(&types[0]),
        [(ids[0].clone(), 30), (ids[1].clone(), 30)]
    );
    assert_eq!(providers(&types[1]), [(ids[0].clone(), 60)]);
    assert!(
        providers(&types[2]).is_empty(),
        "a hidden type has no providers"
    );
    assert!(!reason(&types[2]).marketing);
    assert_eq!(reason(&types[0]).name, "Check-up");
}

#[tokio::test]
async fn the_diary_holds_live_appointments_blocks_and_weekly_hours() {
    let env = start(sim(), contract_practice(3)).await;
    let day = next_weekday();
    let (b, ann, dan) = (
        Env::id(&env.practice.business_ids[0]),
        Env::id(&env.practice.practitioner_ids[0]),
        Env::id(&env.practice.practitioner_ids[3]),
    );
    let t = Env::id(&env.practice.appointment_type_ids[0]);
    let book = |h: i8, who: u64, business: u64| DeskAction::Book {
        business_id: business,
        practitioner_id: who,
        appointment_type_id: t,
        patient_id: Some(env.practice.patient_ids[0]),
        starts_at: at(day, h, 0),
        ends_at: None,
        notes: None,
    };
    let kept = env.desk(book(9, ann, b)).expect("id");
    let cancelled = env.desk(book(10, ann, b)).expect("id");
    let deleted = env.desk(book(11, ann, b)).expect("id");
    env.desk(book(14, dan, Env::id(&env.practice.business_ids[1])));
    env.desk(DeskAction::Cancel {
        appointment_id: cancelled,
        reason: 50,
    });
    env.desk(DeskAction::Delete {
        appointment_id: deleted,
    });
    env.desk(DeskAction::Block {
        business_id: b,
        practitioner_id: ann,
        starts_at: at(day, 15, 0),
        ends_at: at(day, 16, 30),
    });
    let pms = env.connector();
    let diary = pms
        .read_diary(day, day.tomorrow().expect("date"))
        .await
        .expect("diary");
    let appts: Vec<_> = diary
        .appointments
        .iter()
        .map(|a| (a.id.clone(), a.start.to_string(), a.end.to_string()))
        .collect();
    assert_eq!(
        appts,
        [(
            kept.to_string(),
            day.at(9, 0, 0, 0).to_string(),
            day.at(9, 30, 0, 0).to_string()
        )],
        "cancelled and deleted appointments are left out, and Dan does not work here"
    );
    assert_eq!(diary.appointments[0].attendance, Attendance::Booked);
    let blocks: Vec<_> = diary
        .blocks
        .iter()
        .map(|b| (b.date, b.start.to_string(), b.end.to_string()))
        .collect();
    assert_eq!(blocks, [(day, "15:00".into(), "16:30".into())]);
    let ann_hours = diary.hours_of(&ann.to_string()).expect("Ann's hours");
    assert_eq!(ann_hours.sessions.len(), 10, "two windows on five weekdays");
    assert!(diary.hours_of(&dan.to_string()).is_none());
    // One appointment read by id; a cancelled one reads as gone.
    let one = pms.read_appointment(&kept.to_string()).await.expect("read");
    assert_eq!(one.map(|a| a.id), Some(kept.to_string()));
    assert_eq!(
        pms.read_appointment(&cancelled.to_string())
            .await
            .expect("read"),
        None
    );
    assert_eq!(pms.read_appointment("999999").await.expect("read"), None);
}

#[tokio::test]
async fn patients_are_searched_across_pages_and_created() {
    let env = start(sim(), contract_practice(230)).await;
    let pms = env.connector();
    let all = pms
        .search_patients(&PatientQuery {
            last_name: Some("Paging".into()),
            ..PatientQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(
        all.len(),
        230,
        "three pages of up to 100, every patient once"
    );
    let ids: BTreeSet<_> = all.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids.len(), 230);
    let by_email = pms
        .search_patients(&PatientQuery {
            email: Some("pat7@example.com".into()),
            ..PatientQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].first_name, "Pat7");
    assert_eq!(by_email[0].mobile_phone.as_deref(), Some("0412345007"));
    // A phone narrows another search; alone it finds nothing (no documented filter).
    let narrowed = pms
        .search_patients(&PatientQuery {
            last_name: Some("Paging".into()),
            phone: Some("+61 412 345 007".into()),
            ..PatientQuery::default()
        })
        .await
        .expect("search");
    assert!(
        narrowed
            .iter()
            .all(|p| p.mobile_phone.as_deref() == Some("0412345007"))
    );
    assert!(!narrowed.is_empty());
    let phone_only = pms
        .search_patients(&PatientQuery {
            phone: Some("0412345007".into()),
            ..PatientQuery::default()
        })
        .await
        .expect("search");
    assert!(phone_only.is_empty());

    let created = pms
        .create_patient(&NewPatient {
            first_name: "Zoe".into(),
            last_name: "Quinn".into(),
            date_of_birth: jiff::civil::date(1990, 2, 3),
            mobile_phone: Some("0400000001".into()),
            home_phone: None,
            email: Some("zoe@example.com".into()),
            address: None,
            medicare: None,
        })
        .await
        .expect("create");
    let found = pms
        .search_patients(&PatientQuery {
            first_name: Some("Zoe".into()),
            last_name: Some("Quinn".into()),
            date_of_birth: Some(jiff::civil::date(1990, 2, 3)),
            ..PatientQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(
        found.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        [created.id]
    );
    assert_eq!(found[0].mobile_phone.as_deref(), Some("0400000001"));
}

fn booking(env: &Env, day: Date, h: i8, reference: &str) -> NewAppointment {
    NewAppointment {
        practitioner: env.practice.practitioner_ids[0].clone(),
        start: day.at(h, 0, 0, 0),
        end: day.at(h, 30, 0, 0),
        reason: Some(env.practice.appointment_type_ids[0].clone()),
        patient: env.practice.patient_ids[0].to_string(),
        notes: "Booked online".into(),
        external_ref: reference.into(),
    }
}

#[tokio::test]
async fn an_appointment_is_inserted_exactly_once_and_never_on_top_of_another() {
    let env = start(sim(), contract_practice(2)).await;
    let day = next_weekday();
    let pms = env.connector();
    let first = pms
        .insert_appointment(&booking(&env, day, 9, "HE-1001"))
        .await
        .expect("insert");
    assert!(first.created);
    assert_eq!(first.appointment.external_ref.as_deref(), Some("HE-1001"));
    assert_eq!(first.appointment.notes, "Booked online");
    let again = pms
        .insert_appointment(&booking(&env, day, 9, "HE-1001"))
        .await
        .expect("insert again");
    assert!(!again.created);
    assert_eq!(again.appointment.id, first.appointment.id);
    let live = env.sim.live_appointments(env.practice.account_id);
    assert_eq!(live.len(), 1);
    assert!(
        live[0]
            .4
            .as_deref()
            .is_some_and(|n| n.contains("slotbridge-ref: HE-1001"))
    );

    // Another booking for the same slot is refused: the slot holds ours.
    let err = pms
        .insert_appointment(&booking(&env, day, 9, "HE-1002"))
        .await
        .expect_err("taken");
    assert!(
        matches!(&err, PmsError::Conflict { kind, .. } if kind == "overlaps-appointment"),
        "{err:?}"
    );
    // A desk block refuses too.
    env.desk(DeskAction::Block {
        business_id: Env::id(&env.practice.business_ids[0]),
        practitioner_id: Env::id(&env.practice.practitioner_ids[0]),
        starts_at: at(day, 10, 0),
        ends_at: at(day, 11, 0),
    });
    let err = pms
        .insert_appointment(&booking(&env, day, 10, "HE-1003"))
        .await
        .expect_err("blocked");
    assert!(
        matches!(&err, PmsError::Conflict { kind, .. } if kind == "overlaps-block"),
        "{err:?}"
    );
    assert_eq!(env.sim.live_appointments(env.practice.account_id).len(), 1);
}

/// Run once, just before the proxy forwards the first create.
type BeforeCreate = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// A proxy in front of the simulator that forwards everything, but answers 502 for the first
/// create it forwards when `lose` is set (after the simulator made the appointment: a lost
/// answer), and runs `before` just before forwarding the first create (a desk booking racing
/// ours).
async fn lossy_proxy(target: String, lose: Arc<AtomicBool>, before: BeforeCreate) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, target, lose, before) =
                (client.clone(), target.clone(), lose.clone(), before.clone());
            async move {
                if method == Method::POST && uri.path().ends_with("/individual_appointments") {
                    let hook = before.lock().expect("hook").take();
                    if let Some(hook) = hook {
                        hook();
                    }
                }
                let url = format!(
                    "{target}{}",
                    uri.path_and_query().map_or("", |p| p.as_str())
                );
                let mut req = client.request(method.clone(), url).body(body);
                for (k, v) in &headers {
                    if k != "host" {
                        req = req.header(k, v);
                    }
                }
                let resp = req.send().await.expect("forward");
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.expect("body");
                if method == Method::POST
                    && uri.path().ends_with("/individual_appointments")
                    && lose.swap(false, Ordering::SeqCst)
                {
                    return StatusCode::BAD_GATEWAY.into_response();
                }
                (
                    StatusCode::from_u16(status).expect("status"),
                    [("content-type", "application/json")],
                    bytes,
                )
                    .into_response()
            }
        },
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    base
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_by_its_notes_reference_not_made_twice() {
    let env = start(sim(), contract_practice(2)).await;
    let lose = Arc::new(AtomicBool::new(true));
    let proxy = lossy_proxy(env.handle.base_url(), lose.clone(), Arc::default()).await;
    let pms = env.connector_at(&format!("{proxy}/{}/v1", env.practice.shard));
    let day = next_weekday();
    let inserted = pms
        .insert_appointment(&booking(&env, day, 14, "HE-2001"))
        .await
        .expect("insert");
    assert!(!lose.load(Ordering::SeqCst), "the first answer was lost");
    assert_eq!(
        inserted.appointment.external_ref.as_deref(),
        Some("HE-2001")
    );
    let live = env.sim.live_appointments(env.practice.account_id);
    assert_eq!(live.len(), 1, "exactly one appointment: {live:?}");
    assert_eq!(live[0].0.to_string(), inserted.appointment.id);
    // The service's own retry after a lost answer finds it too.
    let again = pms
        .insert_appointment(&booking(&env, day, 14, "HE-2001"))
        .await
        .expect("insert again");
    assert!(!again.created);
    assert_eq!(env.sim.live_appointments(env.practice.account_id).len(), 1);
}

#[tokio::test]
async fn a_desk_booking_that_lands_beside_ours_meanwhile_gets_the_slot_and_ours_is_removed() {
    // Cliniko accepts overlapping appointments. The desk books the slot after our check and
    // before our create: the conflicts check after the create must remove ours again.
    let env = start(sim(), contract_practice(2)).await;
    let day = next_weekday();
    let desk = DeskAction::Book {
        business_id: Env::id(&env.practice.business_ids[0]),
        practitioner_id: Env::id(&env.practice.practitioner_ids[0]),
        appointment_type_id: Env::id(&env.practice.appointment_type_ids[0]),
        patient_id: Some(env.practice.patient_ids[1]),
        starts_at: at(day, 9, 15),
        ends_at: None,
        notes: None,
    };
    let (sim, account) = (env.sim.clone(), env.practice.account_id);
    let before: BeforeCreate = Arc::new(Mutex::new(Some(Box::new(move || {
        sim.desk(account, desk).expect("desk books");
    }))));
    let proxy = lossy_proxy(
        env.handle.base_url(),
        Arc::new(AtomicBool::new(false)),
        before.clone(),
    )
    .await;
    let pms = env.connector_at(&format!("{proxy}/{}/v1", env.practice.shard));
    let err = pms
        .insert_appointment(&booking(&env, day, 9, "HE-3001"))
        .await
        .expect_err("the desk won the race");
    assert!(
        before.lock().expect("hook").is_none(),
        "the desk booked meanwhile"
    );
    assert!(
        matches!(&err, PmsError::Conflict { kind, .. } if kind == "overlaps-appointment"),
        "{err:?}"
    );
    let live = env.sim.live_appointments(env.practice.account_id);
    assert_eq!(live.len(), 1, "only the desk's: {live:?}");
    assert!(live[0].4.as_deref().is_none_or(|n| !n.contains("HE-3001")));
}

#[tokio::test]
async fn changes_are_found_by_polling_updated_at_and_each_is_reported_once() {
    let env = start(sim(), contract_practice(2)).await;
    let pms = env.connector();
    assert!(!pms.capabilities().webhooks);
    let err = pms
        .register_webhook("http://127.0.0.1:1/webhooks/pms", &"s".to_owned().into())
        .await
        .expect_err("no webhooks");
    assert!(matches!(err, PmsError::Unsupported { .. }), "{err:?}");

    // The start cursor is the server's clock to the second, and what changed in that second is
    // reported (rather than missed): let the seeding's second pass first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let Changes::Page(start) = pms.read_changes(None).await.expect("start") else {
        panic!("a fresh cursor")
    };
    assert!(start.changes.is_empty());
    let poll = |cursor: String| {
        let pms = pms.clone();
        async move {
            match pms.read_changes(Some(&cursor)).await.expect("poll") {
                Changes::Page(p) => p,
                Changes::CursorExpired => panic!("cursor expired"),
            }
        }
    };
    let quiet = poll(start.next_cursor.clone()).await;
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);

    let day = next_weekday();
    let (b, ann) = (
        Env::id(&env.practice.business_ids[0]),
        Env::id(&env.practice.practitioner_ids[0]),
    );
    let booked = env
        .desk(DeskAction::Book {
            business_id: b,
            practitioner_id: ann,
            appointment_type_id: Env::id(&env.practice.appointment_type_ids[0]),
            patient_id: Some(env.practice.patient_ids[0]),
            starts_at: at(day, 9, 0),
            ends_at: None,
            notes: None,
        })
        .expect("id");
    let page = poll(quiet.next_cursor.clone()).await;
    let kinds: Vec<_> = page.changes.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["appointment.created"], "{:?}", page.changes);
    assert_eq!(page.changes[0].subject, format!("appointment/{booked}"));
    // The appointment's id and local times, as the Exact-style feed gives them: its day.
    let data = &page.changes[0].data;
    assert_eq!(data["id"], booked.to_string());
    assert_eq!(
        data["start"].as_str().map(|s| s[..10].to_owned()),
        Some(day.to_string()),
        "{data}"
    );
    assert!(
        data["start"]
            .as_str()
            .is_some_and(|s| s.ends_with("+11:00") || s.ends_with("+10:00")),
        "{data}"
    );
    let again = poll(page.next_cursor.clone()).await;
    assert!(
        again.changes.is_empty(),
        "reported once: {:?}",
        again.changes
    );

    env.desk(DeskAction::Cancel {
        appointment_id: booked,
        reason: 10,
    });
    env.desk(DeskAction::Block {
        business_id: b,
        practitioner_id: ann,
        starts_at: at(day, 15, 0),
        ends_at: at(day, 16, 0),
    });
    env.desk(DeskAction::SetDailyAvailability {
        business_id: b,
        practitioner_id: ann,
        day_of_week: 6,
        intervals: vec![("09:00".into(), "12:00".into())],
    });
    let page = poll(again.next_cursor.clone()).await;
    let kinds: BTreeSet<_> = page.changes.iter().map(|c| c.kind.clone()).collect();
    assert!(kinds.contains("appointment.deleted"), "{kinds:?}");
    assert!(kinds.contains("block.changed"), "{kinds:?}");
    assert!(kinds.contains("sessions.changed"), "{kinds:?}");
    assert!(poll(page.next_cursor.clone()).await.changes.is_empty());

    // A type archived at the desk leaves the types' list for the archived one: still a change.
    let type_id = Env::id(&env.practice.appointment_type_ids[0]);
    env.desk(DeskAction::SetAppointmentType {
        appointment_type_id: type_id,
        duration_in_minutes: None,
        show_in_online_bookings: None,
        archived: Some(true),
    });
    let archived = poll(page.next_cursor.clone()).await;
    assert!(
        archived
            .changes
            .iter()
            .any(|c| c.kind == "setup.changed" && c.subject == format!("type/{type_id}")),
        "{:?}",
        archived.changes
    );
    assert!(poll(archived.next_cursor.clone()).await.changes.is_empty());
    assert_eq!(
        pms.read_changes(Some("not a cursor")).await.expect("read"),
        Changes::CursorExpired
    );
}

/// The engine's slots from the Cliniko diary, against the simulator's own `available_times`, for
/// every practitioner, type and day of a 14-day horizon. Every difference must be one of the
/// rules written in docs/pms-api.md ("Cliniko: availability compared").
async fn compare_availability(seed: u64, rules: OnlineBookings, open_time: bool) -> (usize, usize) {
    let now: Timestamp = Timestamp::now().round(jiff::Unit::Minute).expect("round");
    let clock = Arc::new(ManualClock::new(now));
    let sim = ClinikoSim::builder().clock(clock).rate_limit(None).build();
    let mut spec = generate::practice(seed, "au1");
    spec.online_bookings = rules;
    let env = start(sim, spec).await;
    let today = now.to_zoned_datetime(sydney()).date();
    generate::fill_diary(&env.sim, &env.practice, seed, today, 14, 0.6).expect("fill");
    let b = Env::id(&env.practice.business_ids[0]);
    let first = Env::id(&env.practice.practitioner_ids[0]);
    let day3 = today.checked_add(jiff::Span::new().days(3)).expect("date");
    env.desk(DeskAction::Block {
        business_id: b,
        practitioner_id: first,
        starts_at: at(day3, 10, 0),
        ends_at: at(day3, 11, 45),
    });
    if open_time {
        let day5 = today.checked_add(jiff::Span::new().days(5)).expect("date");
        env.desk(DeskAction::OpenTime {
            business_id: b,
            practitioner_id: first,
            starts_at: at(day5, 18, 0),
            ends_at: at(day5, 20, 0),
        });
    }
    let pms = env.connector();
    let setup = pms.read_setup().await.expect("setup");
    let diary = pms
        .read_diary(
            today,
            today.checked_add(jiff::Span::new().days(14)).expect("date"),
        )
        .await
        .expect("diary");
    // The setup carries Cliniko's notice and per-day-segment limit; the engine applies them.
    let valid = slotbridge_domain::practice::to_snapshot(&setup, &diary, now, 14)
        .validate()
        .expect("valid snapshot");
    let slots = slotbridge_domain::availability::compute_slots(&valid);
    let ours: BTreeSet<(String, String, Timestamp)> = slots
        .iter()
        .map(|s| (s.practitioner.to_owned(), s.reason.to_owned(), s.start))
        .collect();

    // Cliniko's answer, seven days a call (its limit), for every practitioner and type shown.
    let key = &env.practice.api_key;
    let client = reqwest::Client::new();
    let api = env.handle.api_base(&env.practice.shard);
    let mut theirs = BTreeSet::new();
    for entry in &setup.online_booking {
        for reason in setup
            .reasons
            .iter()
            .filter(|r| r.rule_for(&entry.practitioner).is_some())
        {
            for week in 0..2 {
                let from = today
                    .checked_add(jiff::Span::new().days(7 * week))
                    .expect("date");
                let to = from.checked_add(jiff::Span::new().days(6)).expect("date");
                let mut url = format!(
                    "{api}/businesses/{b}/practitioners/{}/appointment_types/{}/available_times?from={from}&to={to}&per_page=100",
                    entry.practitioner, reason.id
                );
                loop {
                    let page: serde_json::Value = client
                        .get(&url)
                        .basic_auth(key, None::<&str>)
                        .header("user-agent", "slotbridge tests (tests@slotbridge.dev)")
                        .header("accept", "application/json")
                        .send()
                        .await
                        .expect("available_times")
                        .error_for_status()
                        .expect("200")
                        .json()
                        .await
                        .expect("json");
                    for t in page["available_times"].as_array().expect("list") {
                        let start: Timestamp = t["appointment_start"]
                            .as_str()
                            .expect("start")
                            .parse()
                            .expect("instant");
                        theirs.insert((entry.practitioner.clone(), reason.id.clone(), start));
                    }
                    match page["links"]["next"].as_str() {
                        Some(next) => url = next.to_owned(),
                        None => break,
                    }
                }
            }
        }
    }
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    // Rule: availability blocks (extra dated hours) are Cliniko's only; the domain's diary has
    // weekly hours only. Every time only Cliniko gives must lie in one.
    let open = open_time.then(|| {
        let day5 = today.checked_add(jiff::Span::new().days(5)).expect("date");
        (first.to_string(), at(day5, 18, 0), at(day5, 20, 0))
    });
    let unexplained: Vec<_> = only_theirs
        .iter()
        .filter(|(p, _, start)| {
            !open
                .as_ref()
                .is_some_and(|(who, from, to)| p == who && start >= from && start < to)
        })
        .collect();
    assert!(
        only_ours.is_empty(),
        "times our engine publishes that Cliniko does not offer: {only_ours:?}"
    );
    assert!(
        unexplained.is_empty(),
        "times Cliniko offers that our engine does not, outside availability blocks: {unexplained:?}"
    );
    if open_time {
        assert!(
            !only_theirs.is_empty(),
            "the extra opening is Cliniko's only"
        );
    }
    println!(
        "seed {seed}: {} practitioners × types, {} times equal, {} only in availability blocks",
        setup.online_booking.len(),
        ours.len(),
        only_theirs.len()
    );
    (ours.len(), only_theirs.len())
}

#[tokio::test]
async fn availability_equals_cliniko_available_times_over_a_14_day_horizon() {
    for seed in [1, 2, 3] {
        let (equal, _) = compare_availability(seed, OnlineBookings::default(), false).await;
        assert!(equal > 100, "a real comparison: {equal} times");
    }
}

#[tokio::test]
async fn availability_with_notice_and_a_per_segment_limit_equals_cliniko_available_times() {
    let rules = OnlineBookings {
        enabled: true,
        max_appointments_per_day_segment: Some(2),
        min_hours_advance_required_to_book: 4,
        max_days_in_advance: 365,
    };
    for seed in [4, 5] {
        compare_availability(seed, rules.clone(), false).await;
    }
}

#[tokio::test]
async fn availability_differs_only_by_the_written_rules_when_extra_time_is_opened() {
    compare_availability(6, OnlineBookings::default(), true).await;
}

#[tokio::test]
async fn diagnostics_name_clinikos_own_causes_with_fixes_for_its_screens() {
    use slotbridge_domain::diagnostics::{Code, Input, diagnose};
    let env = start(sim(), contract_practice(0)).await;
    let pms = env.connector();
    let today = next_weekday();
    let codes = |setup, diary| {
        let findings = diagnose(&Input::new(setup, diary, today, 14).for_cliniko());
        findings
            .into_iter()
            .map(|f| (f.code, f.practitioner, f.reason, f.fix))
            .collect::<Vec<_>>()
    };
    let ids = env.practice.practitioner_ids.clone();
    let setup = pms.read_setup().await.expect("setup");
    let diary = pms
        .read_diary(today, today.tomorrow().expect("date"))
        .await
        .expect("diary");
    let found = codes(&setup, &diary);
    let has = |code: Code, who: Option<&str>, what: Option<&str>| {
        found.iter().any(|(c, p, r, fix)| {
            *c == code
                && p.as_deref() == who
                && r.as_deref() == what
                && (fix.starts_with("In Cliniko") || fix.contains("in Cliniko"))
        })
    };
    assert!(
        has(Code::ClinikoPractitionerHidden, Some(&ids[1]), None),
        "Bob: {found:?}"
    );
    assert!(
        has(Code::ClinikoPractitionerNoShownType, Some(&ids[2]), None),
        "Cat: {found:?}"
    );
    assert!(
        has(Code::ClinikoTypeHidden, None, Some("Root canal")),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(c, p, ..)| p.as_deref() == Some(&ids[0]) && *c != Code::ClinikoTypeHidden),
        "Ann is fine: {found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(c, ..)| c.as_str().starts_with("healthengine") || *c == Code::StackingOff),
        "no Exact-style causes: {found:?}"
    );

    // Whitening made longer than any of Ann's windows (4 h); then Ann's availability removed.
    env.desk(DeskAction::SetAppointmentType {
        appointment_type_id: Env::id(&env.practice.appointment_type_ids[1]),
        duration_in_minutes: Some(300),
        show_in_online_bookings: None,
        archived: None,
    });
    let setup = pms.read_setup().await.expect("setup");
    let found = codes(&setup, &diary);
    assert!(
        found
            .iter()
            .any(|(c, p, r, _)| *c == Code::ClinikoTypeLongerThanAvailability
                && p.as_deref() == Some(&ids[0])
                && r.as_deref() == Some("Whitening")),
        "{found:?}"
    );
    for day in 1..=5 {
        env.desk(DeskAction::SetDailyAvailability {
            business_id: Env::id(&env.practice.business_ids[0]),
            practitioner_id: Env::id(&ids[0]),
            day_of_week: day,
            intervals: vec![],
        });
    }
    let diary = pms
        .read_diary(today, today.tomorrow().expect("date"))
        .await
        .expect("diary");
    let found = codes(&setup, &diary);
    assert!(
        found
            .iter()
            .any(|(c, p, ..)| *c == Code::ClinikoNoDailyAvailability
                && p.as_deref() == Some(&ids[0])),
        "{found:?}"
    );
}

/// Polling stays within the key's budget: a poll sooner than `changes_every` after the last
/// answers "nothing new" with the same cursor and makes no request; the next one due finds the
/// change.
#[tokio::test]
async fn change_polls_come_no_oftener_than_changes_every() {
    let env = start(sim(), contract_practice(2)).await;
    let key = ClinikoKey::parse(env.practice.api_key.clone().into()).expect("key");
    let mut cfg = ClinikoConfig::new(key, env.practice.business_ids[0].clone()).with_base_url(
        format!("{}/", env.handle.api_base(&env.practice.shard))
            .parse()
            .expect("url"),
    );
    cfg.changes_every = Duration::from_millis(1500);
    let pms = ClinikoConnector::new(cfg);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let Changes::Page(start) = pms.read_changes(None).await.expect("start") else {
        panic!("a fresh cursor")
    };
    let Changes::Page(first) = pms
        .read_changes(Some(&start.next_cursor))
        .await
        .expect("poll")
    else {
        panic!("a page")
    };
    let booked = env
        .desk(DeskAction::Book {
            business_id: Env::id(&env.practice.business_ids[0]),
            practitioner_id: Env::id(&env.practice.practitioner_ids[0]),
            appointment_type_id: Env::id(&env.practice.appointment_type_ids[0]),
            patient_id: Some(env.practice.patient_ids[0]),
            starts_at: at(next_weekday(), 9, 0),
            ends_at: None,
            notes: None,
        })
        .expect("id");
    let Changes::Page(soon) = pms
        .read_changes(Some(&first.next_cursor))
        .await
        .expect("poll")
    else {
        panic!("a page")
    };
    assert!(soon.changes.is_empty(), "not due yet: {:?}", soon.changes);
    assert_eq!(soon.next_cursor, first.next_cursor, "the cursor is kept");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let Changes::Page(due) = pms
        .read_changes(Some(&soon.next_cursor))
        .await
        .expect("poll")
    else {
        panic!("a page")
    };
    assert!(
        due.changes
            .iter()
            .any(|c| c.subject == format!("appointment/{booked}")),
        "the due poll finds the desk booking: {:?}",
        due.changes
    );
}

/// How far ahead Cliniko offers bookings has no field in the settings: the connector learns it
/// from the available times (28 and 84 days cut a 90-day horizon; 182 and 365 do not), and the
/// setup's rules carry it with the notice and the per-day-segment limit.
#[tokio::test]
async fn the_setup_carries_clinikos_online_booking_rules_how_far_ahead_learnt_from_its_times() {
    for (days, expected) in [(28, Some(28)), (84, Some(84)), (182, None)] {
        let mut spec = generate::practice(11, "au1");
        spec.online_bookings = OnlineBookings {
            enabled: true,
            max_appointments_per_day_segment: Some(3),
            min_hours_advance_required_to_book: 4,
            max_days_in_advance: days,
        };
        let env = start(sim(), spec).await;
        let setup = env.connector().read_setup().await.expect("setup");
        assert_eq!(
            setup.online_rules,
            slotbridge_domain::practice::OnlineRules {
                min_notice_minutes: 240,
                max_days_ahead: expected,
                max_per_day_segment: Some(3),
            },
            "Cliniko set to {days} days"
        );
        assert_eq!(
            slotbridge_domain::practice::to_snapshot(
                &setup,
                &Default::default(),
                Timestamp::now(),
                60
            )
            .horizon_days,
            Some(expected.map_or(60, |d| d.min(60)))
        );
    }
}
