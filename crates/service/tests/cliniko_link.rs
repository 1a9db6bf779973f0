//! A Cliniko practice linked through the admin API, end to end: the node reads it from the
//! Cliniko simulator, publishes its times on the marketplace, and writes a marketplace booking
//! into its diary exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use slotbridge_cliniko_sim::{ClinikoSim, DeskAction, OnlineBookings, generate};
use slotbridge_testkit::{Db, Stack, booking_body, eventually, link_cliniko, patient, today_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cliniko_practice_linked_through_the_admin_api_takes_a_booking_exactly_once_on_sqlite() {
    cliniko_booking(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cliniko_practice_linked_through_the_admin_api_takes_a_booking_exactly_once_on_postgres()
{
    cliniko_booking(Db::Postgres).await;
}

async fn cliniko_booking(db: Db) {
    let Some(mut stack) = Stack::builder().db(db).nodes(0).link(false).start().await else {
        return;
    };
    let sim = ClinikoSim::builder().build();
    let cliniko = sim.seed(generate::practice(11, "au1")).expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = slotbridge_cliniko_sim::serve(listener, sim.clone())
        .await
        .expect("serve");
    let mut config = stack.config.clone();
    config.cliniko_url = Some(format!("{}/", handle.api_base("au1")).parse().expect("url"));
    stack.start_node_with(config).await;

    let harbour = stack.harbour().clone();
    // Answered 201 with the link, or the helper says why not.
    let link = link_cliniko(
        &stack.http,
        &stack.node().url(),
        stack.token().as_deref(),
        &cliniko.api_key,
        &cliniko.business_ids[0],
        &harbour,
    )
    .await
    .expect("the Cliniko business is linked");
    assert_eq!(link["pms_kind"], "cliniko");
    assert_eq!(link["business_id"], cliniko.business_ids[0].as_str());

    let (_day, slots) = stack.linked_with_slots(Duration::from_secs(30), 2).await;
    let slot = slots.last().expect("slot");
    let body = booking_body(
        slot,
        patient(
            "Ada",
            "Cliniko",
            "1980-03-04",
            "0411 222 333",
            "ada@example.com",
        ),
    );
    let id = stack.book(&harbour.practice_id, &body).await;
    let booking = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = stack.booking(id).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(booking["status"], "Confirmed", "{booking}");
    let mine: Vec<_> = sim
        .live_appointments(cliniko.account_id)
        .into_iter()
        .filter(|a| {
            a.4.as_deref()
                .is_some_and(|n| n.contains(&format!("slotbridge-ref: HE-{id}")))
        })
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "exactly one appointment in Cliniko: {mine:?}"
    );
    let start: jiff::Timestamp = slot["start"]
        .as_str()
        .expect("start")
        .parse()
        .expect("instant");
    assert_eq!(mine[0].2, start, "at the slot's start");
    handle.shutdown().await;
}

/// Cliniko's online-booking settings shape what the marketplace shows: a 2-day notice leaves
/// today and tomorrow empty, "28 days ahead" empties the link's days 28 and 29 (its horizon is
/// 30), and one time per day segment leaves one time per practitioner, type and segment. The
/// console's week view and the explain answer say why. Lifting the notice and the limit at
/// Cliniko's desk then fills tomorrow and the segments again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinikos_online_booking_settings_shape_what_the_marketplace_shows() {
    let Some(mut stack) = Stack::builder()
        .db(Db::Sqlite)
        .nodes(0)
        .link(false)
        .start()
        .await
    else {
        return;
    };
    let sim = ClinikoSim::builder().build();
    let mut spec = generate::practice(12, "au1");
    spec.online_bookings = OnlineBookings {
        enabled: true,
        max_appointments_per_day_segment: Some(1),
        min_hours_advance_required_to_book: 48,
        max_days_in_advance: 28,
    };
    let cliniko = sim.seed(spec).expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = slotbridge_cliniko_sim::serve(listener, sim.clone())
        .await
        .expect("serve");
    let mut config = stack.config.clone();
    config.cliniko_url = Some(format!("{}/", handle.api_base("au1")).parse().expect("url"));
    stack.start_node_with(config).await;
    let harbour = stack.harbour().clone();
    let link = link_cliniko(
        &stack.http,
        &stack.node().url(),
        stack.token().as_deref(),
        &cliniko.api_key,
        &cliniko.business_ids[0],
        &harbour,
    )
    .await
    .expect("linked");
    let link_id = link["id"].as_str().expect("id").to_owned();
    let (_, _) = stack.linked_with_slots(Duration::from_secs(30), 0).await;

    let today = today_in(&harbour.timezone);
    let day = |n: i64| today.checked_add(jiff::Span::new().days(n)).expect("date");
    let market = |n: i64| {
        let stack = &stack;
        let practice = harbour.practice_id.clone();
        async move { stack.slots(&practice, day(n)).await }
    };
    let earliest = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    let mut offered = 0;
    for n in 0..30 {
        let slots = market(n).await;
        if !(2..28).contains(&n) {
            assert!(slots.is_empty(), "day {n} offers {slots:?}");
            continue;
        }
        offered += slots.len();
        let mut per_segment: BTreeMap<(String, String, u8), usize> = BTreeMap::new();
        for s in &slots {
            let start: jiff::Timestamp = s["start"].as_str().expect("start").parse().expect("ts");
            assert!(start >= earliest, "within the notice: {s}");
            let hour: u8 = s["start"].as_str().expect("start")[11..13]
                .parse()
                .expect("hour");
            let segment = match hour {
                ..12 => 0,
                12..17 => 1,
                _ => 2,
            };
            *per_segment
                .entry((
                    s["pms_resource_id"].to_string(),
                    s["pms_appointment_type_id"].to_string(),
                    segment,
                ))
                .or_default() += 1;
        }
        assert!(
            per_segment.values().all(|n| *n == 1),
            "day {n}: more than one time per segment: {per_segment:?}"
        );
    }
    assert!(offered > 20, "a real week of times: {offered}");

    // The week view and the explain answer say why.
    let week: Value = stack
        .api_get(&format!("/api/links/{link_id}/week?start={}", day(1)))
        .await;
    let notes: Vec<String> = week["practitioners"][0]["days"]
        .as_array()
        .expect("days")
        .iter()
        .flat_map(|d| d["notes"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("within the practice's 48-hour online-booking notice")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("online-booking limit is reached")),
        "{notes:?}"
    );
    let late: Value = stack
        .api_get(&format!("/api/links/{link_id}/week?start={}", day(27)))
        .await;
    let late_notes = late["practitioners"][0]["days"][1]["notes"].to_string();
    assert!(
        late_notes.contains("Beyond how far ahead the practice offers online bookings (28 days)"),
        "{late_notes}"
    );
    assert_eq!(late["horizon_end"], day(27).to_string());
    // A published time a week on, asked about on its weekday within the notice.
    let mut asked = None;
    for n in [7, 8] {
        if let Some(slot) = market(n).await.first() {
            asked = Some((n - 7, slot.clone()));
            break;
        }
    }
    let (n, slot) = asked.expect("a published time a week on");
    let reason = slot["pms_appointment_type_id"]
        .as_str()
        .and_then(|t| t.split(':').next())
        .expect("type")
        .to_owned();
    let time = &slot["start"].as_str().expect("start")[11..16];
    let explained: Value = stack
        .api_get(&format!(
            "/api/links/{link_id}/explain?practitioner={}&reason={reason}&at={}T{time}",
            slot["pms_resource_id"]
                .as_str()
                .and_then(|r| r.split(':').next())
                .expect("resource"),
            day(n)
        ))
        .await;
    assert_eq!(explained["cause"], "notice", "{explained}");
    assert!(
        explained["summary"]
            .as_str()
            .is_some_and(|s| s.contains("within the practice's 48-hour online-booking notice")),
        "{explained}"
    );

    // Lifting the notice and the limit at Cliniko's desk fills tomorrow and the segments.
    sim.desk(
        cliniko.account_id,
        DeskAction::SetOnlineBookings {
            online_bookings: OnlineBookings {
                enabled: true,
                max_appointments_per_day_segment: None,
                min_hours_advance_required_to_book: 0,
                max_days_in_advance: 28,
            },
        },
    )
    .expect("desk");
    let mut req = stack
        .http
        .post(stack.api(&format!("/api/links/{link_id}/resync")))
        .json(&json!({"what": "availability"}));
    if let Some(t) = stack.token() {
        req = req.bearer_auth(t);
    }
    assert!(req.send().await.expect("resync").status().is_success());
    let busiest = eventually(
        "more times once the rules are lifted",
        Duration::from_secs(30),
        || async {
            let mut most = 0;
            for n in 1..8 {
                let slots = market(n).await;
                let mut per: BTreeMap<String, usize> = BTreeMap::new();
                for s in &slots {
                    *per.entry(s["pms_appointment_type_id"].to_string())
                        .or_default() += 1;
                }
                most = most.max(per.values().copied().max().unwrap_or(0));
            }
            (!market(1).await.is_empty() && most > 3).then_some(most)
        },
    )
    .await;
    assert!(busiest > 3);
    handle.shutdown().await;
}
