//! End to end over real HTTP: both simulators and one slotbridge node, SQLite in a temporary
//! directory. Named after the suggested-testing.md scenarios and the acceptance checks.
//!
//! Every scenario that applies to a Cliniko practice runs for one too (`<scenario>::on_cliniko`):
//! Harbour Dental's marketplace practice is then linked to a business in the Cliniko simulator,
//! and the scenario's desk actions go to that simulator (testkit's `kinds` module). Left
//! Exact-only, each for its reason (docs/architecture.md, "The end-to-end suite"):
//! - the hundred patients booking one slot: every Cliniko booking costs several of the key's
//!   200 requests a minute (look-up, the slot's check, patient search, create, conflicts), so a
//!   hundred cannot be answered within the marketplace's 20 s; the pipeline's race is PMS-neutral;
//! - two nodes sharing practices: leases and fencing do not depend on the PMS;
//! - a booking without a linked type: the "Healthengine" reason is an Exact-style setup;
//! - a resource per specialty: the generated Cliniko practitioners have one designation each;
//!   Cliniko's designation-to-specialties mapping is the connector's (crates/pms);
//! - multi-location: a Cliniko account's businesses, each linked to its own listing, are not
//!   yet instantiated here;
//! - the webhooks registered once: Cliniko documents no webhooks (its changes are polled);
//! - stacking off: stacking is an Exact-style setting (Cliniko's analogue is its online-booking
//!   limit per day segment);
//! - a patient who did not attend: the Cliniko simulator's desk has no did-not-arrive action.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG};
use slotbridge_testkit::control::offers;
use slotbridge_testkit::{Db, PmsKind, Practice, Stack, booking_body, eventually, patient};

/// The suite's waits for the configuration and for bookable slots (more than two on a day).
const LINKED: Duration = Duration::from_secs(20);

type World = Stack;

/// Harbour Dental's configuration published, Step 2 done, and the first day with bookable
/// slots: `(day, slots)`.
async fn linked_with_slots(w: &World) -> (String, Vec<Value>) {
    w.linked_with_slots(LINKED, 2).await
}

async fn linking_the_pms_account_with_a_practice_publishes_configuration_and_availability(
    w: &World,
) {
    let (_day, slots) = linked_with_slots(w).await;
    assert!(
        slots
            .iter()
            .all(|s| s["start"].as_str().is_some_and(|t| t.contains('+')))
    );
    let p = w.practice(&w.harbour().practice_id).await;
    assert!(p["liveness_contract"].is_object(), "{p}");
}

async fn a_desk_booking_disappears_from_the_marketplace_within_5_seconds(w: &World) {
    let (day, slots) = linked_with_slots(w).await;
    let slot = &slots[0];
    w.desk_book_slot(slot).await;
    eventually(
        "the desk booking's slot is gone",
        w.kind().fresh_within(),
        || async {
            let now = w.slots(&w.harbour().practice_id, &day).await;
            (!offers(&now, slot)).then_some(now)
        },
    )
    .await;
}

async fn a_marketplace_booking_ends_confirmed_and_is_in_the_diary_exactly_once(w: &World) {
    let (day, slots) = linked_with_slots(w).await;
    let slot = slots.last().expect("slot");
    let id = book(w, &w.harbour().practice_id, slot, "Ada").await;
    let status = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = w.booking(&id).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(status["status"], "Confirmed", "{status}");
    assert_eq!(
        status["auto_confirmed"], false,
        "confirmed by the integration: {status}"
    );
    let mine = w.diary_holds(&day, &id).await;
    assert_eq!(
        mine.len(),
        1,
        "one appointment with the reference: {mine:?}"
    );
    let instant = |f: &str| -> jiff::Timestamp {
        status[f].as_str().expect("time").parse().expect("instant")
    };
    // With the PMS's own duration for the booked type.
    assert_eq!(
        (mine[0].start, mine[0].end),
        (instant("start"), instant("end")),
        "{status}"
    );
    assert_eq!(
        status["pms_appointment_ids"][0].as_str(),
        Some(mine[0].id.as_str()),
        "{status}"
    );
    if w.kind() == PmsKind::Cliniko {
        // Cliniko's appointment carries its type; the reason below is the Exact-style API's.
        return;
    }
    let diary = w
        .get(&format!(
            "{}/_desk/sites/{DEMO_SLUG}/appointments?date={day}",
            w.pms_url
        ))
        .await;
    let mine: Vec<&Value> = diary
        .as_array()
        .expect("diary")
        .iter()
        .filter(|a| a["external_ref"] == format!("HE-{id}"))
        .collect();
    assert!(mine[0]["notes"].as_str().is_some_and(|n| n.contains(&id)));
    // The marketplace type is linked to a PMS booking reason: the appointment carries that
    // reason, with the PMS's own duration for it.
    let appointment = status["pms_appointment_ids"][0]
        .as_str()
        .expect("appointment");
    let a: Value = w
        .http
        .get(format!(
            "{}/api/v1/sites/{DEMO_SLUG}/appointments/{appointment}",
            w.pms_url
        ))
        .header("x-api-key", DEMO_API_KEY)
        .send()
        .await
        .expect("PMS")
        .json()
        .await
        .expect("appointment");
    let pms_type = status["pms_appointment_type_id"].as_str().expect("type");
    assert_eq!(
        a["reason"].as_str(),
        pms_type.split(':').next(),
        "the booking's reason: {a} for {status}"
    );
    assert_eq!(a["start"], status["start"], "{a} {status}");
    assert_eq!(a["end"], status["end"], "the PMS's duration: {a} {status}");
}

/// The seed: a booking whose marketplace type carries no PMS reason goes into the diary with the
/// "Healthengine" reason (the marketing one), with the PMS's duration for it. Here the practice
/// unlinks the booked type on the marketplace before the booking is processed, so the booking
/// arrives with a null `pmsAppointmentTypeId`.
async fn a_booking_without_a_linked_type_is_inserted_with_the_healthengine_reason(w: &World) {
    let setup = w
        .http
        .get(format!("{}/api/v1/sites/{DEMO_SLUG}/web-setup", w.pms_url))
        .header("x-api-key", DEMO_API_KEY)
        .send()
        .await
        .expect("PMS")
        .json::<Value>()
        .await
        .expect("web setup");
    let healthengine = setup["reasons"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "Healthengine"))
        .cloned()
        .expect("the demo practice has a Healthengine reason");
    let he_id = healthengine["id"].as_str().expect("reason id").to_owned();
    let reason_of = |slot: &Value| {
        slot["pms_appointment_type_id"]
            .as_str()
            .and_then(|t| t.split(':').next())
            .map(str::to_owned)
    };
    // A slot of a type linked to another reason, at a time the Healthengine reason is offered
    // for the same practitioner too: its duration fits there.
    let (booked, he_slot) = eventually(
        "a slot of another reason where the Healthengine reason fits too",
        LINKED,
        || async {
            let (_day, slots) = linked_with_slots(w).await;
            slots.iter().find_map(|a| {
                let he = slots.iter().find(|b| {
                    reason_of(b).as_deref() == Some(he_id.as_str())
                        && b["pms_resource_id"] == a["pms_resource_id"]
                        && b["start"] == a["start"]
                })?;
                (reason_of(a).as_deref() != Some(he_id.as_str())).then(|| (a.clone(), he.clone()))
            })
        },
    )
    .await;
    let mut body = booking_body(
        &booked,
        patient(
            "Unlinked",
            "Scenario",
            "1980-03-04",
            "0411 222 333",
            "unlinked@example.com",
        ),
    );
    body["unlink_type"] = json!(true);
    let id = w.book(&w.harbour().practice_id, &body).await.to_string();
    let b = eventually("booking answered", Duration::from_secs(20), || async {
        let b = w.booking(&id).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(b["status"], "Confirmed", "{b}");
    let appointment = b["pms_appointment_ids"][0].as_str().expect("appointment");
    let a: Value = w
        .http
        .get(format!(
            "{}/api/v1/sites/{DEMO_SLUG}/appointments/{appointment}",
            w.pms_url
        ))
        .header("x-api-key", DEMO_API_KEY)
        .send()
        .await
        .expect("PMS")
        .json()
        .await
        .expect("appointment");
    assert_eq!(
        a["reason"].as_str(),
        Some(he_id.as_str()),
        "the Healthengine reason, not the unlinked type's {:?}: {a}",
        reason_of(&booked)
    );
    let practitioner = slotbridge_testkit::control::practitioner_of(&booked);
    let minutes = healthengine["providers"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["practitioner"] == practitioner.as_str())
        })
        .and_then(|p| p["duration_minutes"].as_i64())
        .expect("the Healthengine reason's rule for the practitioner");
    let start: jiff::Timestamp = a["start"].as_str().expect("start").parse().expect("time");
    let end: jiff::Timestamp = a["end"].as_str().expect("end").parse().expect("time");
    let booked_start: jiff::Timestamp = booked["start"]
        .as_str()
        .expect("start")
        .parse()
        .expect("time");
    assert_eq!(start, booked_start, "{a}");
    assert_eq!(
        end.duration_since(start).as_secs(),
        minutes * 60,
        "the PMS's duration for the Healthengine reason: {a} (its slot {he_slot})"
    );
}

async fn a_patients_online_cancellation_is_refused_with_the_call_the_practice_answer(w: &World) {
    let (_day, slots) = linked_with_slots(w).await;
    let id = book(w, &w.harbour().practice_id, &slots[1], "Grace").await;
    eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = w.booking(&id).await;
        (b["status"] == "Confirmed").then_some(b)
    })
    .await;
    w.cancel_booking(&id).await;
    let b = eventually("cancellation answered", Duration::from_secs(20), || async {
        let b = w.booking(&id).await;
        let answered = b["updates"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| !u["resolution"].is_null()));
        answered.then_some(b)
    })
    .await;
    assert_eq!(b["status"], "Confirmed", "the appointment stays: {b}");
    assert!(b.to_string().contains("call the practice"), "{b}");
}

async fn the_admin_api_explains_findings_and_missing_slots(w: &World) {
    let (day, slots) = linked_with_slots(w).await;
    let links = w.api_get("/api/links").await;
    let link = links[0]["id"].as_str().expect("link id").to_owned();
    let key = match w.kind() {
        PmsKind::Exact => DEMO_API_KEY.to_owned(),
        PmsKind::Cliniko => w.cliniko().practice.api_key.clone(),
    };
    assert!(!links.to_string().contains(&key), "secrets are write-only");
    let findings = w.api_get(&format!("/api/links/{link}/findings")).await;
    let findings = findings.as_array().expect("findings");
    assert!(
        findings.iter().all(|f| f["severity"] != "error"),
        "the demo practice is healthy: {findings:?}"
    );
    // A published slot is explained as published.
    let slot = &slots[0];
    let practitioner = slot["pms_resource_id"]
        .as_str()
        .and_then(|r| r.split(':').next())
        .expect("practitioner")
        .to_owned();
    let local = slot["start"].as_str().expect("start")[..16].to_owned();
    let e = w
        .api_get(&format!(
            "/api/links/{link}/explain?practitioner={practitioner}&at={local}"
        ))
        .await;
    assert_eq!(e["published"], true, "{e}");
    // 03:00 is outside anyone's sessions.
    let e = w
        .api_get(&format!(
            "/api/links/{link}/explain?practitioner={practitioner}&at={day}T03:00"
        ))
        .await;
    assert_eq!(e["published"], false, "{e}");
    assert_eq!(e["cause"], "outside_sessions", "{e}");
    // Bad input names the field.
    let r = w
        .http
        .get(format!(
            "{}/api/links/{link}/explain?practitioner=x&at=tuesday",
            w.node().url()
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap_or_default().contains("at:"));
}

// ---- suggested-testing.md: linking, configuration and availability ---------------------------

/// A new marketplace listing of the demo site, with consent for our consumer.
fn market_practice(w: &World, name: &str) -> Practice {
    w.listing(name).expect("marketplace practice")
}

/// The marketplace API calls recorded so far for one practice: `(method path, body)`.
fn recorded_calls(w: &World, practice_id: &str) -> Vec<(String, Value)> {
    slotbridge_testkit::recorded_calls(w.record())
        .into_iter()
        .filter(|c| c.practice_id == practice_id)
        .map(|c| (c.line(), c.body))
        .collect()
}

fn count_calls(w: &World, practice_id: &str, what: &str) -> usize {
    recorded_calls(w, practice_id)
        .iter()
        .filter(|(c, _)| c.ends_with(what))
        .count()
}

/// A patient books `slot` on the marketplace; the booking id.
async fn book(w: &World, practice_id: &str, slot: &Value, first: &str) -> String {
    let patient = patient(
        first,
        "Scenario",
        "1980-03-04",
        "0411 222 333",
        &format!("{first}@example.com"),
    );
    w.book(practice_id, &booking_body(slot, patient))
        .await
        .to_string()
}

async fn initial_configuration_synchronisation_sends_liveness_resources_and_types_before_availability(
    w: &World,
) {
    linked_with_slots(w).await;
    // A call is recorded once answered: wait for the availability's record line.
    eventually(
        "the availability recorded",
        Duration::from_secs(10),
        || async {
            (count_calls(w, &w.harbour().practice_id, "/availability/snapshots") > 0)
                .then_some(json!(1))
        },
    )
    .await;
    let calls: Vec<String> = recorded_calls(w, &w.harbour().practice_id)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let at = |what: &str| {
        calls
            .iter()
            .position(|c| c.ends_with(what))
            .unwrap_or_else(|| panic!("{what} was never sent: {calls:?}"))
    };
    let liveness = at("/config/livenessContract");
    let resources = at("/config/pmsResources/snapshot");
    let types = at("/config/pmsAppointmentTypes/snapshot");
    let availability = at("/availability/snapshots");
    assert!(
        liveness < resources && resources < types && types < availability,
        "{calls:?}"
    );
}

async fn managing_pms_practitioners_with_multiple_specialties_sends_a_resource_per_specialty(
    w: &World,
) {
    linked_with_slots(w).await;
    let p = w.practice(&w.harbour().practice_id).await;
    let ids: Vec<&str> = p["pms_resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["pmsResourceId"].as_str())
        .collect();
    // Harbour Dental's 1004 is both an oral health therapist and a hygienist.
    let of_1004: Vec<&&str> = ids.iter().filter(|i| i.starts_with("1004")).collect();
    assert!(ids.len() >= 5, "{p}");
    assert_eq!(of_1004.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&"1004:oht") && ids.contains(&"1004:hygienist"),
        "{ids:?}"
    );
}

async fn practice_provides_id_and_key_without_consent_and_is_guided_to_establish_it(w: &World) {
    let revoked = market_practice(w, "Revoked Dental");
    let pid = revoked.practice_id.clone();
    let r = w
        .http
        .delete(format!(
            "{}/_market/practices/{pid}/consents/slotbridge",
            w.market_url
        ))
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success(), "{}", r.status());
    let link = w.link_listing(&revoked).await;
    let findings = eventually(
        "a consent finding with the fix",
        Duration::from_secs(20),
        || async {
            let f = w.api_get(&format!("/api/links/{link}/findings")).await;
            f.as_array()
                .is_some_and(|a| a.iter().any(|f| f["code"] == "consent-missing"))
                .then_some(f)
        },
    )
    .await;
    let consent = findings
        .as_array()
        .and_then(|a| a.iter().find(|f| f["code"] == "consent-missing"))
        .expect("finding");
    assert_eq!(consent["severity"], "error", "{consent}");
    assert!(
        consent.to_string().contains("Grant new consent"),
        "the fix names the portal's steps: {consent}"
    );
}

/// One location of Coast Dental Group: its own practitioners, each in the "Healthengine" reason.
fn coast_site(slug: &str, name: &str, practitioners: &[(&str, &str, &str)]) -> Value {
    let week = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    json!({
        "setup": {
            "site": slug, "name": name, "timezone": slotbridge_testkit::HARBOUR_TZ,
            "phone": "(02) 9000 2000", "interval_minutes": 15, "stacking": true,
            "practitioners": practitioners.iter().map(|(id, first, last)| json!({
                "id": id, "title": "Dr", "first_name": first, "last_name": last,
                "specialties": ["dentist"]})).collect::<Vec<_>>(),
            "online_booking": practitioners.iter().map(|(id, _, _)| json!({
                "practitioner": id, "duration_minutes": 30})).collect::<Vec<_>>(),
            "reasons": [{"id": "R1", "name": "Healthengine", "marketing": true,
                "providers": practitioners.iter().map(|(id, _, _)| json!({
                    "practitioner": id, "duration_minutes": 30,
                    "windows": [{"days": week, "start": "00:00", "end": "24:00"}]}))
                    .collect::<Vec<_>>()}]
        },
        "hours": practitioners.iter().map(|(id, _, _)| json!({
            "practitioner": id,
            "sessions": [{"days": week, "start": "07:00", "end": "21:00"}]})).collect::<Vec<_>>()
    })
}

async fn integration_of_pms_account_with_multi_location_support_publishes_to_each_practice(
    w: &World,
) {
    linked_with_slots(w).await;
    // One PMS organisation with two locations, each with its own practitioners and key.
    let r = w
        .http
        .post(format!("{}/_desk/organisations", w.pms_url))
        .json(&json!({"name": "Coast Dental Group", "sites": [
            coast_site("scoastmanly", "Coast Dental Manly", &[("2001", "Ravi", "Patel"), ("2002", "Amy", "Lo")]),
            coast_site("scoastbondi", "Coast Dental Bondi", &[("3001", "Lena", "Ross")]),
        ]}))
        .send()
        .await
        .expect("desk");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let org: Value = r.json().await.expect("organisation");
    let mut published = Vec::new();
    for (i, (name, expected)) in [
        ("Coast Dental Manly", vec!["2001", "2002"]),
        ("Coast Dental Bondi", vec!["3001"]),
    ]
    .into_iter()
    .enumerate()
    {
        let site = &org["sites"][i];
        let p = w
            .create_practice(
                name,
                slotbridge_testkit::HARBOUR_TZ,
                site["site"].as_str().expect("slug"),
                site["api_key"].as_str().expect("key"),
            )
            .expect("marketplace practice");
        w.link(&p).await;
        published.push((p.practice_id.clone(), expected));
    }
    // Each marketplace practice holds exactly its own location's practitioners, with availability.
    for (pid, expected) in &published {
        let p = eventually(
            "the location's configuration and availability",
            Duration::from_secs(20),
            || async {
                let p = w.practice(pid).await;
                let a = w
                    .get(&format!(
                        "{}/_market/practices/{pid}/availability",
                        w.market_url
                    ))
                    .await;
                (p["pms_resources"].as_array().is_some_and(|r| !r.is_empty())
                    && a.as_array().is_some_and(|a| !a.is_empty()))
                .then_some(p)
            },
        )
        .await;
        let mut ids: Vec<&str> = p["pms_resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["pmsResourceId"].as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(&ids, expected, "{p}");
    }
    // Harbour Dental keeps its own.
    let harbour = w.practice(&w.harbour().practice_id).await;
    assert!(
        !harbour.to_string().contains("\"2001\"") && !harbour.to_string().contains("\"3001\""),
        "{harbour}"
    );
}

async fn updating_a_healthengine_practice_id_moves_publishing_to_the_new_practice(w: &World) {
    let (day, slots) = linked_with_slots(w).await;
    let link = w.first_link().await;
    let new = market_practice(w, "Harbour Dental (new listing)");
    let (new_id, new_key) = (new.practice_id, new.practice_key);
    w.patch_link(
        &link,
        json!({"practice_id": new_id, "practice_key": new_key}),
    )
    .await;
    eventually(
        "configuration and availability at the new practice",
        Duration::from_secs(20),
        || async {
            let p = w.practice(&new_id).await;
            let a = w
                .get(&format!(
                    "{}/_market/practices/{new_id}/availability",
                    w.market_url
                ))
                .await;
            (p["pms_resources"].as_array().is_some_and(|a| !a.is_empty())
                && a.as_array().is_some_and(|a| !a.is_empty()))
            .then_some(p)
        },
    )
    .await;
    // Nothing more goes to the old practice: its calls stop growing, even after a PMS change.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_calls = recorded_calls(w, &w.harbour().practice_id).len();
    let new_calls = count_calls(w, &new_id, "/availability/snapshots");
    w.desk_book_slot(&slots[0]).await;
    eventually(
        "the new practice follows the PMS",
        w.kind().fresh_within() + Duration::from_secs(5),
        || async {
            (count_calls(w, &new_id, "/availability/snapshots") > new_calls).then_some(json!(1))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recorded_calls(w, &w.harbour().practice_id).len(),
        old_calls,
        "no transmission to the previous practice after the id changed"
    );
    let _ = day;
}

async fn sending_configuration_availability_and_outstanding_requests_after_being_temporarily_disabled(
    w: &World,
) {
    let (day, slots) = linked_with_slots(w).await;
    let link = w.first_link().await;
    w.patch_link(&link, json!({"enabled": false})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let config_sends = count_calls(w, &w.harbour().practice_id, "/config/pmsResources/snapshot");
    // While disabled: a desk booking is not published, and a patient's booking waits.
    w.desk_book_slot(&slots[0]).await;
    // The patient's slot is the day's last, far from the desk's (a booked slot takes any
    // overlapping one off the marketplace by itself).
    let booking = book(
        w,
        &w.harbour().practice_id,
        slots.last().expect("slot"),
        "Disabled",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        offers(&w.slots(&w.harbour().practice_id, &day).await, &slots[0]),
        "nothing is sent while the link is disabled"
    );
    let enabled_from = recorded_calls(w, &w.harbour().practice_id).len();
    w.patch_link(&link, json!({"enabled": true})).await;
    // Re-enabled: the availability of every resource for the whole horizon is sent again (the
    // waiting booking, answered meanwhile, may send its day once more).
    whole_horizon_sent(w, enabled_from, false).await;
    // Re-enabled: configuration is sent again, availability follows the PMS, and the waiting
    // booking (an outstanding request) is handled by the integration, not auto-confirmed.
    eventually(
        "configuration sent after re-enabling",
        Duration::from_secs(10),
        || async {
            (count_calls(w, &w.harbour().practice_id, "/config/pmsResources/snapshot")
                > config_sends)
                .then_some(json!(1))
        },
    )
    .await;
    eventually(
        "the desk booking's slot is gone after re-enabling",
        Duration::from_secs(10),
        || async {
            (!offers(&w.slots(&w.harbour().practice_id, &day).await, &slots[0])).then_some(json!(1))
        },
    )
    .await;
    let b = eventually(
        "the outstanding booking handled",
        Duration::from_secs(15),
        || async {
            let b = w.booking(&booking).await;
            (b["status"] != "Requested").then_some(b)
        },
    )
    .await;
    assert_eq!(b["status"], "Confirmed", "{b}");
    assert_eq!(b["auto_confirmed"], false, "{b}");
}

async fn manual_configuration_and_availability_resync_actions_by_pms_user(w: &World) {
    linked_with_slots(w).await;
    let link = w.first_link().await;
    let pid = w.harbour().practice_id.clone();
    let mut availability_from = 0;
    for (what, call) in [
        ("config", "/config/pmsAppointmentTypes/snapshot"),
        ("availability", "/availability/snapshots"),
    ] {
        let before = count_calls(w, &pid, call);
        availability_from = recorded_calls(w, &pid).len();
        let r = w
            .http
            .post(format!("{}/api/links/{link}/resync", w.node().url()))
            .json(&json!({"what": what}))
            .send()
            .await
            .expect("resync");
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        eventually(
            &format!("{what} resent"),
            Duration::from_secs(10),
            || async { (count_calls(w, &pid, call) > before).then_some(json!(1)) },
        )
        .await;
    }
    // The availability resync sends every (resource, date) of the horizon, unchanged or not:
    // exactly resources × 30 days, each once.
    whole_horizon_sent(w, availability_from, true).await;
}

/// Every (resource, day) of Harbour Dental's 30-day horizon.
async fn horizon_pairs(w: &World) -> std::collections::BTreeSet<(String, String)> {
    let resources: Vec<String> = w.practice(&w.harbour().practice_id).await["pms_resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["pmsResourceId"].as_str().expect("id").to_owned())
        .collect();
    let today = slotbridge_testkit::today_in(slotbridge_testkit::HARBOUR_TZ);
    resources
        .iter()
        .flat_map(|r| {
            (0..30).map(move |n| (r.clone(), (today + jiff::Span::new().days(n)).to_string()))
        })
        .collect()
}

/// The availability snapshots sent to Harbour Dental after its first `from` recorded calls.
fn snapshots_sent_after(w: &World, from: usize) -> Vec<(String, String)> {
    recorded_calls(w, &w.harbour().practice_id)
        .get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|(c, _)| c.ends_with("/availability/snapshots"))
        .flat_map(|(_, b)| b.as_array().cloned().unwrap_or_default())
        .map(|s| {
            (
                s["pmsResourceId"].as_str().unwrap_or_default().to_owned(),
                s["date"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Every (resource, day) of the horizon is sent after the first `from` recorded calls; each
/// exactly once when `once` (nothing else changes meanwhile).
async fn whole_horizon_sent(w: &World, from: usize, once: bool) {
    let expected = horizon_pairs(w).await;
    // A bound, not the figure under test: a Cliniko link re-reads its setup and diary under the
    // key's 200 requests a minute first, which took over 10 s in CI.
    let sent = eventually(
        "the whole horizon sent",
        Duration::from_secs(60),
        || async {
            let sent = snapshots_sent_after(w, from);
            (sent.len() >= expected.len()).then_some(sent)
        },
    )
    .await;
    let distinct: std::collections::BTreeSet<(String, String)> = sent.iter().cloned().collect();
    assert_eq!(
        distinct, expected,
        "every resource for every day of the horizon"
    );
    if once {
        assert_eq!(sent.len(), expected.len(), "each (resource, day) sent once");
    }
}

async fn changes_detected_in_pms_appointment_type_snapshot_reach_the_marketplace_within_5_seconds(
    w: &World,
) {
    linked_with_slots(w).await;
    let names = |p: &Value| -> Vec<String> {
        p["pms_appointment_types"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["pmsAppointmentTypeName"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let fresh = w.kind().fresh_within();
    // An existing type altered: the Exact-style desk renames R2 ("Check-up & Clean"); Cliniko's
    // desk cannot rename a type, so it lengthens "Check-up and clean" from 45 to 60 minutes.
    let emergency = match w.kind() {
        PmsKind::Exact => {
            let r = w
                .http
                .patch(format!("{}/_desk/sites/{DEMO_SLUG}/reasons/R2", w.pms_url))
                .json(&json!({"name": "Check-up and Clean"}))
                .send()
                .await
                .expect("rename");
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
            eventually("the renamed type", fresh, || async {
                let n = names(&w.practice(&w.harbour().practice_id).await);
                (n.iter().any(|n| n.contains("Check-up and Clean"))
                    && !n.iter().any(|n| n.contains("Check-up & Clean")))
                .then_some(json!(n))
            })
            .await;
            "R3".to_owned()
        }
        PmsKind::Cliniko => {
            let c = w.cliniko();
            let types = &c.practice.appointment_type_ids;
            c.desk(slotbridge_cliniko_sim::DeskAction::SetAppointmentType {
                appointment_type_id: types[0].parse().expect("type id"),
                duration_in_minutes: Some(60),
                show_in_online_bookings: None,
                archived: None,
            });
            eventually("the lengthened type", fresh, || async {
                let p = w.practice(&w.harbour().practice_id).await;
                p["pms_appointment_types"]
                    .as_array()?
                    .iter()
                    .any(|t| {
                        t["pmsAppointmentTypeName"]
                            .as_str()
                            .is_some_and(|n| n.contains("Check-up and clean"))
                            && t["pmsAppointmentLength"] == 60
                    })
                    .then_some(())
            })
            .await;
            types[2].clone()
        }
    };
    // An existing type removed ("Emergency"): deleted at the Exact-style desk, no longer shown
    // in Cliniko's online bookings.
    w.desk_drop_type(&emergency).await;
    eventually("the deleted type gone", fresh, || async {
        let n = names(&w.practice(&w.harbour().practice_id).await);
        (!n.iter().any(|n| n.contains("Emergency"))).then_some(json!(n))
    })
    .await;
}

/// A practitioner of the stack's practice who publishes online (Dr Chen on the demo site).
fn a_practitioner(w: &World) -> String {
    match w.kind() {
        PmsKind::Exact => "1001".to_owned(),
        PmsKind::Cliniko => w.cliniko().practice.practitioner_ids[0].clone(),
    }
}

async fn turning_stacking_off_leaves_at_most_one_slot_per_practitioner_type_and_segment_within_5_s(
    w: &World,
) {
    let (day, before) = linked_with_slots(w).await;
    let r = w
        .http
        .put(format!("{}/_desk/sites/{DEMO_SLUG}/stacking", w.pms_url))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("stacking");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    let after = eventually("stacking off published", Duration::from_secs(5), || async {
        let now = w.slots(&w.harbour().practice_id, &day).await;
        (now.len() < before.len()).then_some(json!(now))
    })
    .await;
    let after = after.as_array().expect("slots");
    // Only the first free slot after each break: per practitioner and type, no two slots of one
    // free segment, so consecutive slots never touch or overlap.
    let mut by: std::collections::BTreeMap<(String, String), Vec<(String, String)>> =
        Default::default();
    for s in after {
        by.entry((
            s["pms_resource_id"].as_str().unwrap_or_default().to_owned(),
            s["appointment_type"].to_string(),
        ))
        .or_default()
        .push((
            s["start"].as_str().unwrap_or_default().to_owned(),
            s["end"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    for (key, mut v) in by {
        v.sort();
        for pair in v.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{key:?}: {pair:?} are in one segment (stacking is off)"
            );
        }
        assert!(v.len() <= 4, "{key:?}: {v:?}");
    }
}

async fn outstanding_requests_during_initial_configuration_synchronisation_are_answered(w: &World) {
    linked_with_slots(w).await;
    // A second listing whose marketplace already holds a request before we link it.
    let previous = market_practice(w, "Harbour Dental (previous integration)");
    let pid = previous.practice_id.clone();
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    let day = today + jiff::Span::new().days(3);
    raise_availability_request(w, &pid, &day.to_string()).await;
    w.link_listing(&previous).await;
    eventually(
        "the outstanding request answered",
        Duration::from_secs(20),
        || async {
            let open = w
                .get(&format!(
                    "{}/_market/practices/{pid}/requests",
                    w.market_url
                ))
                .await;
            (!availability_requested(&open)
                && recorded_calls(w, &pid)
                    .iter()
                    .any(|(c, _)| c == "GET /pms-api/v1/requests"))
            .then_some(open)
        },
    )
    .await;
}

async fn the_node_registers_its_webhooks_once_and_is_woken_by_them(w: &World) {
    linked_with_slots(w).await;
    // The PMS site has exactly one webhook to us, even after the worker restarts.
    let link = w.first_link().await;
    w.patch_link(&link, json!({"enabled": false})).await;
    w.patch_link(&link, json!({"enabled": true})).await;
    let hooks = eventually(
        "PMS webhook registered",
        Duration::from_secs(10),
        || async {
            let v: Value = w
                .http
                .get(format!("{}/api/v1/sites/{DEMO_SLUG}/webhooks", w.pms_url))
                .header("x-api-key", DEMO_API_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let ours = v["items"].as_array().map(|a| {
                a.iter()
                    .filter(|h| h["url"] == format!("{}/webhooks/pms", w.node().url()))
                    .count()
            });
            (ours == Some(1)).then_some(v)
        },
    )
    .await;
    assert_eq!(hooks["items"].as_array().map(Vec::len), Some(1), "{hooks}");
    // The marketplace holds a subscription to every request type, answered at once.
    // Its callback URL carries the link's secret (crate::callback). The worker subscribes with
    // the marketplace after registering with the PMS, so this may come a moment later.
    let link = w.store().list_links().await.expect("links")[0].id;
    let hooks = w.node().ctx.settings.webhooks.as_ref().expect("webhooks");
    let callback = slotbridge_service::callback::url(&hooks.public_url, &hooks.pms_secret, link);
    eventually(
        "the marketplace subscription on the link's callback URL",
        Duration::from_secs(10),
        || async {
            recorded_calls(w, &w.harbour().practice_id)
                .iter()
                .any(|(c, b)| {
                    c.ends_with("POST /pms-api/v1/subscription")
                        && b["topic"] == "requests.*"
                        && b["callbackUrl"] == callback
                })
                .then_some(())
        },
    )
    .await;
    let (_day, slots) = linked_with_slots(w).await;
    let booking = book(w, &w.harbour().practice_id, &slots[1], "Webhook").await;
    let b = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = w.booking(&booking).await;
        (b["status"] == "Confirmed").then_some(b)
    })
    .await;
    assert_eq!(b["auto_confirmed"], false, "{b}");
    let deliveries = eventually(
        "the marketplace's webhooks acknowledged at the first attempt",
        Duration::from_secs(10),
        || async {
            let d = w
                .get(&format!(
                    "{}/_market/webhooks?practice_id={}",
                    w.market_url,
                    w.harbour().practice_id
                ))
                .await;
            let all = d.as_array()?;
            (!all.is_empty()
                && all
                    .iter()
                    .all(|d| d["delivered"] == true && d["attempts"] == 1))
            .then_some(d)
        },
    )
    .await;
    assert!(
        deliveries.to_string().contains("bookings"),
        "the booking was pushed: {deliveries}"
    );
}

async fn two_nodes_share_the_practices_evenly_and_never_work_one_at_the_same_time(w: &World) {
    linked_with_slots(w).await;
    for n in 0..3 {
        w.link(&market_practice(w, &format!("Harbour Dental {n}")))
            .await;
    }
    let second = w.spawn_node("test-node-2").await;
    let first = w.node();
    let split = eventually(
        "the links split 2 and 2",
        Duration::from_secs(30),
        || async {
            let a = first.ctx.running();
            let b = second.ctx.running();
            (a.len() == 2 && b.len() == 2).then(|| json!([a.len(), b.len()]))
        },
    )
    .await;
    // Sampled for a while: no link is ever worked by both nodes.
    for _ in 0..20 {
        let a = first.ctx.running();
        let b = second.ctx.running();
        assert!(
            a.iter().all(|id| !b.contains(id)),
            "{a:?} and {b:?} overlap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The second node stops: the first takes all four back.
    second.shutdown().await;
    eventually(
        "all links back on one node",
        Duration::from_secs(30),
        || async { (first.ctx.running().len() == 4).then_some(json!(4)) },
    )
    .await;
    let _ = split;
}

async fn a_hundred_patients_booking_one_slot_at_once_end_with_one_confirmed_and_99_rejected_within_20_s(
    w: &World,
) {
    let (day, slots) = linked_with_slots(w).await;
    let slot = slots[slots.len() / 2].clone();
    // Each patient books from a page loaded before the others booked ("stale"), all at once.
    let started = Instant::now();
    let ids = futures::future::join_all((0..100).map(|n| {
        let w = &w;
        let slot = slot.clone();
        async move {
            let mut body = booking_body(
                &slot,
                patient(
                    &format!("Patient{n}"),
                    "Crowd",
                    "1990-05-06",
                    &format!("04{n:08}"),
                    &format!("crowd{n}@example.com"),
                ),
            );
            body["stale"] = json!(true);
            w.book(&w.harbour().practice_id, &body).await.to_string()
        }
    }))
    .await;
    let mut confirmed = Vec::new();
    let mut rejected = 0;
    for id in &ids {
        let b = eventually(
            "every booking answered",
            Duration::from_secs(40),
            || async {
                let b = w.booking(&id).await;
                (b["status"] != "Requested").then_some(b)
            },
        )
        .await;
        match b["status"].as_str() {
            Some("Confirmed") => {
                assert_eq!(
                    b["auto_confirmed"], false,
                    "confirmed by the integration: {b}"
                );
                confirmed.push(id.clone());
            }
            Some("Rejected") => {
                assert_eq!(b["late_reject"], false, "rejected within 20 s: {b}");
                assert!(
                    b["reject_reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "{b}"
                );
                rejected += 1;
            }
            other => panic!("unexpected {other:?}: {b}"),
        }
    }
    assert_eq!((confirmed.len(), rejected), (1, 99));
    let diary = w
        .get(&format!(
            "{}/_desk/sites/{DEMO_SLUG}/appointments?date={day}",
            w.pms_url
        ))
        .await;
    let online: Vec<&Value> = diary
        .as_array()
        .expect("diary")
        .iter()
        .filter(|a| {
            a["external_ref"]
                .as_str()
                .is_some_and(|r| r.starts_with("HE-"))
        })
        .collect();
    assert_eq!(online.len(), 1, "{diary}");
    assert_eq!(online[0]["external_ref"], format!("HE-{}", confirmed[0]));
    eprintln!(
        "100 bookings of one slot answered in {:?}",
        started.elapsed()
    );
}

async fn changes_detected_in_pms_resource_snapshot_reach_the_marketplace_within_5_seconds(
    w: &World,
) {
    linked_with_slots(w).await;
    let resources = |p: &Value| -> Vec<String> {
        p["pms_resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["pmsResourceId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Ms Wilson on the demo site; the last practitioner (a hygienist) of the Cliniko practice.
    let who = match w.kind() {
        PmsKind::Exact => "1003".to_owned(),
        PmsKind::Cliniko => w
            .cliniko()
            .practice
            .practitioner_ids
            .last()
            .expect("a practitioner")
            .clone(),
    };
    assert!(resources(&w.practice(&w.harbour().practice_id).await).contains(&who));
    // She stops publishing online: her resource leaves the snapshot.
    w.desk_online_booking(&who, false).await;
    eventually("the resource removed", w.kind().fresh_within(), || async {
        let r = resources(&w.practice(&w.harbour().practice_id).await);
        (!r.contains(&who)).then_some(json!(r))
    })
    .await;
    // And back.
    w.desk_online_booking(&who, true).await;
    eventually("the resource back", w.kind().fresh_within(), || async {
        let r = resources(&w.practice(&w.harbour().practice_id).await);
        r.contains(&who).then_some(json!(r))
    })
    .await;
}

/// Raise an availability request for `day` at the marketplace practice `pid`.
async fn raise_availability_request(w: &World, pid: &str, day: &str) {
    let r = w
        .http
        .post(format!(
            "{}/_market/practices/{pid}/requests/availability",
            w.market_url
        ))
        .json(&json!({"day": day}))
        .send()
        .await
        .expect("raise");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

/// Whether the marketplace's open requests (`/_market/practices/{id}/requests`) include an
/// availability request.
fn availability_requested(open: &Value) -> bool {
    open["other"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["request_type"] == "availability"))
}

/// Every snapshot the marketplace holds for `day` at `pid`: `(resource, number of ranges)`.
async fn snapshots_on(w: &World, pid: &str, day: &str) -> Vec<(String, usize)> {
    let v = w
        .get(&format!(
            "{}/_market/practices/{pid}/availability?date={day}",
            w.market_url
        ))
        .await;
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["snapshot"]["pmsResourceId"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        s["snapshot"]["availability"].as_array().map_or(0, Vec::len),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn an_availability_request_for_a_day_outside_the_horizon_is_answered_with_an_empty_day(
    w: &World,
) {
    linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    // The default horizon is 30 days: 45 days ahead is outside it.
    let day = (slotbridge_testkit::today_in(slotbridge_testkit::HARBOUR_TZ)
        + jiff::Span::new().days(45))
    .to_string();
    raise_availability_request(w, &pid, &day).await;
    let held = eventually(
        "the request answered with empty days",
        Duration::from_secs(20),
        || async {
            let open = w
                .get(&format!(
                    "{}/_market/practices/{pid}/requests",
                    w.market_url
                ))
                .await;
            let held = snapshots_on(w, &pid, &day).await;
            (!availability_requested(&open) && !held.is_empty()).then_some(held)
        },
    )
    .await;
    assert!(held.iter().all(|(_, ranges)| *ranges == 0), "{held:?}");
}

async fn a_shrunk_horizon_withdraws_the_days_beyond_it(w: &World) {
    linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    let today = slotbridge_testkit::today_in(slotbridge_testkit::HARBOUR_TZ);
    // A day inside the 30-day horizon, beyond 7 days, with something bookable on it.
    let mut day = None;
    for n in 10..28 {
        let d = (today + jiff::Span::new().days(n)).to_string();
        if snapshots_on(w, &pid, &d).await.iter().any(|(_, r)| *r > 0) {
            day = Some(d);
            break;
        }
    }
    let day = day.expect("a published day 10 to 27 days ahead");
    let link = w.first_link().await;
    w.patch_link(&link, json!({"horizon_days": 7})).await;
    eventually(
        "the days beyond the new horizon withdrawn",
        Duration::from_secs(20),
        || async {
            let held = snapshots_on(w, &pid, &day).await;
            (!held.is_empty() && held.iter().all(|(_, r)| *r == 0)).then_some(())
        },
    )
    .await;
    assert!(
        w.slots(&pid, &day).await.is_empty(),
        "nothing bookable beyond the horizon"
    );
}

/// Book `slot` for `who` and wait until the integration confirmed it: the PMS patient id it
/// was confirmed with.
async fn confirmed_patient(w: &World, slot: &Value, who: Value) -> String {
    let id = w
        .book(&w.harbour().practice_id, &booking_body(slot, who))
        .await;
    let b = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = w.booking(id).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(b["status"], "Confirmed", "{b}");
    assert_eq!(b["auto_confirmed"], false, "{b}");
    b["pms_patient_id"]
        .as_str()
        .expect("pms patient")
        .to_owned()
}

/// Olivia Martin's file in the PMS.
fn olivia() -> Value {
    json!({"first_name": "Olivia", "last_name": "Martin", "date_of_birth": "1984-07-30",
           "mobile_phone": "0412 555 101", "email": "olivia.martin@example.com",
           "address": {"line1": "12 Smith Street", "suburb": "Manly", "state": "NSW", "postcode": "2095"}})
}

async fn attempting_to_match_to_existing_patient(w: &World) {
    let (_day, slots) = linked_with_slots(w).await;
    let existing = w.pms_patient(&olivia()).await;
    let who = patient(
        "Olivia",
        "Martin",
        "1984-07-30",
        "0412 555 101",
        "olivia.martin@example.com",
    );
    assert_eq!(
        confirmed_patient(w, slots.last().expect("slot"), who).await,
        existing
    );
    assert_eq!(
        w.pms_patients_born("1984-07-30").await.len(),
        1,
        "no new file"
    );
}

async fn attempting_to_match_to_existing_patient_who_has_changed_their_details(w: &World) {
    let (_day, slots) = linked_with_slots(w).await;
    let existing = w.pms_patient(&olivia()).await;
    // A new phone and email since her last visit.
    let moved = patient(
        "Olivia",
        "Martin",
        "1984-07-30",
        "0499 888 777",
        "olivia@newmail.example",
    );
    assert_eq!(
        confirmed_patient(w, slots.last().expect("slot"), moved).await,
        existing
    );
    // Married: a new last name, her phone and email as the file has them.
    let married = patient(
        "Olivia",
        "Chen-Martin",
        "1984-07-30",
        "0412 555 101",
        "olivia.martin@example.com",
    );
    assert_eq!(confirmed_patient(w, &slots[0], married).await, existing);
    assert_eq!(
        w.pms_patients_born("1984-07-30").await.len(),
        1,
        "no new file"
    );
}

async fn attempting_to_match_to_existing_patient_who_has_provided_details_in_an_unexpected_format_or_with_a_spelling_mistake(
    w: &World,
) {
    let (_day, slots) = linked_with_slots(w).await;
    let existing = w.pms_patient(&olivia()).await;
    // A misspelt first name, a shouting last name with spaces, the phone in international form,
    // the email in capitals.
    let typed = patient(
        "Olivai",
        " MARTIN ",
        "1984-07-30",
        "+61 412 555 101",
        "Olivia.Martin@Example.COM",
    );
    assert_eq!(
        confirmed_patient(w, slots.last().expect("slot"), typed).await,
        existing
    );
    assert_eq!(
        w.pms_patients_born("1984-07-30").await.len(),
        1,
        "no new file"
    );
    // Someone else entirely with the same birthday gets a new file: never a wrong merge.
    let other = patient(
        "Noah",
        "Williams",
        "1984-07-30",
        "0400 111 222",
        "noah@example.com",
    );
    let new = confirmed_patient(w, &slots[0], other).await;
    assert_ne!(new, existing);
    assert_eq!(w.pms_patients_born("1984-07-30").await.len(), 2);
}

/// The dates the marketplace holds availability snapshots for at `pid` (empty ones included).
async fn held_dates(w: &World, pid: &str) -> std::collections::BTreeSet<String> {
    let v = w
        .get(&format!(
            "{}/_market/practices/{pid}/availability",
            w.market_url
        ))
        .await;
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["snapshot"]["date"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn publishing_30_days_ahead_by_default_and_at_most_90(w: &World) {
    linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    let today = slotbridge_testkit::today_in(slotbridge_testkit::HARBOUR_TZ);
    let days = |n: i64| -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|d| (today + jiff::Span::new().days(d)).to_string())
            .collect()
    };
    let held = eventually("30 days held", Duration::from_secs(10), || async {
        let held = held_dates(w, &pid).await;
        (held.len() >= 30).then_some(held)
    })
    .await;
    assert_eq!(
        held,
        days(30),
        "the default horizon: today and the next 29 days"
    );
    let link = w.first_link().await;
    // More than 90 days is refused, naming the field; nothing changes.
    let r = w
        .http
        .patch(w.api(&format!("/api/links/{link}")))
        .json(&json!({"horizon_days": 91}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 422);
    let problem = r.text().await.unwrap_or_default();
    assert!(problem.contains("horizon_days"), "{problem}");
    w.patch_link(&link, json!({"horizon_days": 90})).await;
    let held = eventually("90 days held", Duration::from_secs(20), || async {
        let held = held_dates(w, &pid).await;
        (held.len() >= 90).then_some(held)
    })
    .await;
    assert_eq!(held, days(90), "the maximum horizon: 90 days");
}

/// Book `slot` for a patient named `first` and wait until the integration confirmed it: the
/// booking id and its PMS appointment id.
async fn confirmed(w: &World, slot: &Value, first: &str) -> (String, String) {
    let id = book(w, &w.harbour().practice_id, slot, first).await;
    let b = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = w.booking(&id).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(b["status"], "Confirmed", "{b}");
    let appointment = b["pms_appointment_ids"][0]
        .as_str()
        .expect("appointment")
        .to_owned();
    (id, appointment)
}

/// The marketplace asks for the booking's appointment changes, and the integration answers
/// `expected` (`no_change`, `cancelled` or `did_not_attend`).
async fn appointment_change_answered(w: &World, id: &str, expected: &str) {
    let r = w
        .http
        .post(format!(
            "{}/_market/bookings/{id}/request-appointment-changes",
            w.market_url
        ))
        .send()
        .await
        .expect("market");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    eventually(
        &format!("the appointment-change request answered {expected}"),
        Duration::from_secs(20),
        || async {
            let b = w.booking(id).await;
            let open = w
                .get(&format!(
                    "{}/_market/practices/{}/requests",
                    w.market_url,
                    w.harbour().practice_id
                ))
                .await;
            (b["appointment_change"] == expected
                && !open.to_string().contains("pmsAppointmentChanges"))
            .then_some(())
        },
    )
    .await;
}

async fn pms_appointment_changes_are_answered_from_the_diary(w: &World) {
    let (_day, slots) = linked_with_slots(w).await;
    let (kept, _) = confirmed(w, slots.last().expect("slot"), "Kept").await;
    let (missed, missed_appointment) = confirmed(w, &slots[0], "Missed").await;
    // Nothing changed in the diary: noPmsAppointmentChange.
    appointment_change_answered(w, &kept, "no_change").await;
    if w.kind() == PmsKind::Exact {
        did_not_attend_answered(w, &missed, &missed_appointment).await;
    }
    // An unknown booking's request cannot be made by the marketplace's control; a cancelled
    // one: cancelled at the desk, reported, and answered `cancel` when asked.
    let appointment = w.booking(&kept).await["pms_appointment_ids"][0]
        .as_str()
        .expect("appointment")
        .to_owned();
    w.desk_cancel(&appointment).await;
    eventually(
        "the desk cancellation reported",
        w.kind().fresh_within(),
        || async { (w.booking(&kept).await["status"] == "Cancelled").then_some(()) },
    )
    .await;
    appointment_change_answered(w, &kept, "cancelled").await;
    // No request is left open.
    let open = w
        .get(&format!(
            "{}/_market/practices/{}/requests",
            w.market_url,
            w.harbour().practice_id
        ))
        .await;
    assert!(
        !open.to_string().contains("pmsAppointmentChanges"),
        "every pmsAppointmentChanges request answered: {open}"
    );
}

/// The Exact-style desk marks the patient of `missed` as not attending: pushed at once, and the
/// answer when asked.
async fn did_not_attend_answered(w: &World, missed: &str, missed_appointment: &str) {
    let r = w
        .http
        .post(format!(
            "{}/_desk/sites/{DEMO_SLUG}/appointments/{missed_appointment}/did-not-attend",
            w.pms_url
        ))
        .send()
        .await
        .expect("desk");
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    eventually(
        "the missed appointment reported",
        Duration::from_secs(10),
        || async { (w.booking(missed).await["did_not_attend"] == true).then_some(()) },
    )
    .await;
    appointment_change_answered(w, missed, "did_not_attend").await;
}

async fn a_late_rejection_the_marketplace_refuses_is_recorded_shown_and_not_sent_again(w: &World) {
    let (_day, slots) = linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    let r = w
        .http
        .put(format!("{}/_market/practices/{pid}/settings", w.market_url))
        .json(&json!({"refuse_late_answers": true}))
        .send()
        .await
        .expect("settings");
    assert_eq!(r.status(), 204);
    // While the link is disabled, the desk takes a slot and a patient books it online; the
    // marketplace auto-confirms the booking after its 20 s window.
    let link = w.first_link().await;
    w.patch_link(&link, json!({"enabled": false})).await;
    let slot = slots.last().expect("slot");
    w.desk_book_slot(slot).await;
    let id = book(w, &pid, slot, "Late").await;
    let r = w
        .http
        .post(format!("{}/_market/clock/advance", w.market_url))
        .json(&json!({"seconds": 25}))
        .send()
        .await
        .expect("clock");
    assert!(r.status().is_success());
    assert_eq!(w.booking(&id).await["auto_confirmed"], true);
    // Re-enabled, the integration finds the slot taken and rejects: too late, refused.
    w.patch_link(&link, json!({"enabled": true})).await;
    let findings = eventually(
        "the refused late answer shown as an error",
        Duration::from_secs(20),
        || async {
            let f = w.api_get(&format!("/api/links/{link}/findings")).await;
            f.as_array()
                .is_some_and(|a| a.iter().any(|f| f["code"] == "late-answer-refused"))
                .then_some(f)
        },
    )
    .await;
    let finding = findings
        .as_array()
        .and_then(|a| a.iter().find(|f| f["code"] == "late-answer-refused"))
        .expect("finding");
    assert_eq!(finding["severity"], "error", "{finding}");
    assert!(finding.to_string().contains("Call"), "{finding}");
    let stored = w
        .store()
        .booking(&id)
        .await
        .expect("store")
        .expect("booking");
    assert!(
        stored
            .late_outcome
            .as_deref()
            .is_some_and(|o| o.contains("call the patient") || o.contains("Call the")),
        "{stored:?}"
    );
    // Not sent again, though the marketplace still lists the booking.
    let rejects = || {
        recorded_calls(w, &pid)
            .iter()
            .filter(|(c, _)| c.contains(&format!("/bookings/{id}/rejectInsert")))
            .count()
    };
    let sent = rejects();
    assert!(sent >= 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rejects(), sent, "the refused rejection is not resent");
    let b = w.booking(&id).await;
    assert_eq!(b["status"], "Confirmed", "the marketplace kept it: {b}");
}

async fn refresh_linked_pms_appointment_types_sends_a_new_types_snapshot(w: &World) {
    linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    let practitioners = w
        .get(&format!(
            "{}/_market/practices/{pid}/practitioners",
            w.market_url
        ))
        .await;
    let prid = practitioners[0]["id"].as_u64().expect("a practitioner");
    let before = count_calls(w, &pid, "/config/pmsAppointmentTypes/snapshot");
    // The practice admin presses "Refresh Linked PMS Appointment Types".
    let r = w
        .http
        .post(format!(
            "{}/_market/practices/{pid}/practitioners/{prid}/refresh-linked-types",
            w.market_url
        ))
        .send()
        .await
        .expect("market");
    assert_eq!(r.status(), 202);
    eventually(
        "a new appointment types snapshot, and the request closed",
        Duration::from_secs(10),
        || async {
            let open = w
                .get(&format!(
                    "{}/_market/practices/{pid}/requests",
                    w.market_url
                ))
                .await;
            (count_calls(w, &pid, "/config/pmsAppointmentTypes/snapshot") > before
                && !open.to_string().contains("pmsAppointmentTypes"))
            .then_some(())
        },
    )
    .await;
}

/// A node whose webhook URL answers nothing: every marketplace delivery fails (port 9, discard,
/// has no listener here).
fn deliveries_fail(b: slotbridge_testkit::StackBuilder) -> slotbridge_testkit::StackBuilder {
    b.public_url("http://127.0.0.1:9")
}

async fn polling_and_missed_webhooks(w: &World) {
    // The subscription is registered (the marketplace accepts it), but no delivery arrives:
    // webhooks are not trusted, so the marketplace is polled every tick and every booking is
    // still answered by the integration within the 20 s window.
    let (day, slots) = linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    let mut slot = slots.last().cloned().expect("slot");
    for i in 0..3 {
        let id = book(w, &pid, &slot, &format!("Missed{i}")).await;
        let b = eventually("booking answered", Duration::from_secs(20), || async {
            let b = w.booking(&id).await;
            (b["status"] != "Requested").then_some(b)
        })
        .await;
        assert_eq!(b["status"], "Confirmed", "{b}");
        assert_eq!(
            b["auto_confirmed"], false,
            "answered by the integration: {b}"
        );
        // The next patient takes another slot still offered.
        slot = w
            .slots(&pid, &day)
            .await
            .first()
            .cloned()
            .expect("a slot left");
    }
    let failed = w
        .get(&format!(
            "{}/_market/webhooks?practice_id={pid}",
            w.market_url
        ))
        .await;
    assert!(
        failed
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["delivered"] == false)),
        "every delivery failed: {failed}"
    );
    let health = w
        .get(&format!("{}/_market/practices/{pid}/health", w.market_url))
        .await;
    assert_eq!(health["healthy"], true, "{health}");
}

async fn updating_liveness_contract_times_in_the_pms(w: &World) {
    linked_with_slots(w).await;
    let pid = w.harbour().practice_id.clone();
    let contract = w.practice(&pid).await["liveness_contract"]["liveHours"].clone();
    // Closed on Sunday (the generated Cliniko practices never work Sundays).
    assert_eq!(contract["sunday"], json!([]), "{contract}");
    if w.kind() == PmsKind::Exact {
        harbour_live_hours(&contract);
    }
    // A practitioner now works Sunday mornings too.
    w.desk_sunday_hours(&a_practitioner(w), "09:00", "12:00")
        .await;
    let before = contract;
    let contract = eventually(
        "the revised liveness contract sent",
        w.kind().fresh_within(),
        || async {
            let c = w.practice(&pid).await["liveness_contract"]["liveHours"].clone();
            (c["sunday"] == json!([{"start": "09:00", "end": "12:00"}])).then_some(c)
        },
    )
    .await;
    assert_eq!(contract["monday"], before["monday"], "{contract}");
}

/// Harbour Dental's liveness contract: weekdays from 08:00 (merged sessions to 20:00 on
/// Thursday), Saturday morning.
fn harbour_live_hours(contract: &Value) {
    assert_eq!(
        contract["monday"],
        json!([{"start": "08:00", "end": "17:30"}]),
        "{contract}"
    );
    assert_eq!(
        contract["thursday"],
        json!([{"start": "08:00", "end": "20:00"}]),
        "{contract}"
    );
    assert_eq!(
        contract["saturday"],
        json!([{"start": "08:30", "end": "13:00"}]),
        "{contract}"
    );
}

/// The strict marketplace simulator refused nothing the node sent: every request of the
/// scenario followed the published schemas.
async fn conforms(w: &World) {
    let stats = w.get(&format!("{}/_market/stats", w.market_url)).await;
    assert_eq!(
        stats["nonconforming_requests"], 0,
        "the node sent requests the API's schemas refuse: {stats}"
    );
}

/// A scenario runs three times: `<scenario>::on_sqlite`, `<scenario>::on_postgres` (a fresh
/// database per test, dropped afterwards), and `<scenario>::with_market_quirks` (SQLite, the
/// marketplace simulator answering in its other valid shapes). Each ends with the conformance
/// check of [`conforms`].
///
/// A scenario followed by `+ on_cliniko` runs a fourth time, `<scenario>::on_cliniko`: SQLite,
/// Harbour Dental's marketplace practice linked to a practice in the Cliniko simulator.
macro_rules! scenarios {
    (with $builder:ident: $($name:ident $(+ $cliniko:ident)?),* $(,)?) => {$(
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $cliniko() {
                    let w = super::$builder(
                        super::Stack::builder()
                            .db(super::Db::Sqlite)
                            .record()
                            .pms_kind(super::PmsKind::Cliniko),
                    );
                    let w = w.start().await.expect("sqlite world");
                    super::$name(&w).await;
                    super::conforms(&w).await;
                }
            )?

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let w = super::$builder(super::Stack::builder().db(super::Db::Sqlite).record());
                let w = w.start().await.expect("sqlite world");
                super::$name(&w).await;
                super::conforms(&w).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                let w = super::$builder(super::Stack::builder().db(super::Db::Postgres).record());
                if let Some(w) = w.start().await {
                    super::$name(&w).await;
                    super::conforms(&w).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn with_market_quirks() {
                let w = super::$builder(
                    super::Stack::builder().db(super::Db::Sqlite).record().market_quirks(),
                );
                let w = w.start().await.expect("sqlite world");
                super::$name(&w).await;
                super::conforms(&w).await;
            }
        }
    )*};
    ($($name:ident $(+ $cliniko:ident)?),* $(,)?) => {
        scenarios!(with as_is: $($name $(+ $cliniko)?),*);
    };
}

/// The stack as it comes.
fn as_is(b: slotbridge_testkit::StackBuilder) -> slotbridge_testkit::StackBuilder {
    b
}

scenarios!(
    changes_detected_in_pms_resource_snapshot_reach_the_marketplace_within_5_seconds + on_cliniko,
    a_hundred_patients_booking_one_slot_at_once_end_with_one_confirmed_and_99_rejected_within_20_s,
    two_nodes_share_the_practices_evenly_and_never_work_one_at_the_same_time,
    linking_the_pms_account_with_a_practice_publishes_configuration_and_availability + on_cliniko,
    a_marketplace_booking_ends_confirmed_and_is_in_the_diary_exactly_once + on_cliniko,
    a_booking_without_a_linked_type_is_inserted_with_the_healthengine_reason,
    a_desk_booking_disappears_from_the_marketplace_within_5_seconds + on_cliniko,
    a_patients_online_cancellation_is_refused_with_the_call_the_practice_answer + on_cliniko,
    the_admin_api_explains_findings_and_missing_slots + on_cliniko,
    initial_configuration_synchronisation_sends_liveness_resources_and_types_before_availability + on_cliniko,
    managing_pms_practitioners_with_multiple_specialties_sends_a_resource_per_specialty,
    practice_provides_id_and_key_without_consent_and_is_guided_to_establish_it + on_cliniko,
    integration_of_pms_account_with_multi_location_support_publishes_to_each_practice,
    updating_a_healthengine_practice_id_moves_publishing_to_the_new_practice + on_cliniko,
    sending_configuration_availability_and_outstanding_requests_after_being_temporarily_disabled + on_cliniko,
    manual_configuration_and_availability_resync_actions_by_pms_user + on_cliniko,
    changes_detected_in_pms_appointment_type_snapshot_reach_the_marketplace_within_5_seconds + on_cliniko,
    turning_stacking_off_leaves_at_most_one_slot_per_practitioner_type_and_segment_within_5_s,
    outstanding_requests_during_initial_configuration_synchronisation_are_answered + on_cliniko,
    the_node_registers_its_webhooks_once_and_is_woken_by_them,
    an_availability_request_for_a_day_outside_the_horizon_is_answered_with_an_empty_day + on_cliniko,
    a_shrunk_horizon_withdraws_the_days_beyond_it + on_cliniko,
    updating_liveness_contract_times_in_the_pms + on_cliniko,
    publishing_30_days_ahead_by_default_and_at_most_90 + on_cliniko,
    pms_appointment_changes_are_answered_from_the_diary + on_cliniko,
    a_late_rejection_the_marketplace_refuses_is_recorded_shown_and_not_sent_again + on_cliniko,
    refresh_linked_pms_appointment_types_sends_a_new_types_snapshot + on_cliniko,
    attempting_to_match_to_existing_patient + on_cliniko,
    attempting_to_match_to_existing_patient_who_has_changed_their_details + on_cliniko,
    attempting_to_match_to_existing_patient_who_has_provided_details_in_an_unexpected_format_or_with_a_spelling_mistake + on_cliniko,
);

scenarios!(with deliveries_fail: polling_and_missed_webhooks + on_cliniko);
