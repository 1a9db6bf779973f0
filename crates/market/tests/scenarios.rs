//! The suggested-testing.md scenarios that concern the API's mechanics, exercised by the client
//! against the simulator over real HTTP.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::*;
use serde_json::json;
use slotbridge_market::{
    ErrorLogQuery, MarketError, PracticeCredentials, WebhookReceiver,
    types::{
        Booking, BookingStatus, BookingUpdate, ConfirmBookingInsert, RequestType, Subscription,
        SubscriptionTopic, WebhookPayload,
    },
};
use slotbridge_market_sim::MarketSim;

// ---- linking and consent ----------------------------------------------------------------------

#[tokio::test]
async fn practice_provides_practice_id_and_key_without_consent() {
    let w = world().await;
    // A practice that has not given this consumer its consent: 403, with the guidance.
    let (status, created) = w
        .post(
            "/practices",
            serde_json::json!({"name": "No Consent Dental"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let other = created["practice_id"].as_str().unwrap();
    let none = w
        .client
        .practice(PracticeCredentials::new(other, "not-the-key"));
    let err = none.send_pms_resources(&resources()).await.unwrap_err();
    assert!(matches!(err, MarketError::ConsentMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("API Consumer Consent") && msg.contains("Grant new consent"),
        "guides the practice: {msg}"
    );
    // A wrong practice key or an unknown practice id are bad credentials: the spec's 401.
    let wrong = w
        .client
        .practice(PracticeCredentials::new(w.pid(), "not-the-key"));
    let err = wrong.send_pms_resources(&resources()).await.unwrap_err();
    assert!(
        matches!(
            err,
            MarketError::Unauthorized | MarketError::ConsentMissing { .. }
        ),
        "{err:?}"
    );
    let unknown = w.client.practice(PracticeCredentials::new("999", "x"));
    assert!(matches!(
        unknown.poll().await,
        Err(MarketError::Unauthorized | MarketError::ConsentMissing { .. })
    ));
}

#[tokio::test]
async fn practice_provides_practice_id_and_key_for_a_revoked_consent() {
    let w = world().await;
    w.practice
        .send_pms_resources(&resources())
        .await
        .expect("consent works");
    let r = w
        .http
        .delete(w.url(&format!("/practices/{}/consents/{CONSUMER}", w.pid())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let err = w
        .practice
        .send_pms_resources(&resources())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MarketError::ConsentMissing { ref practice_id, .. } if practice_id == w.pid()),
        "{err:?}"
    );
    // Granting new consent gives a new key that works.
    let (s, v) = w
        .post(
            &format!("/practices/{}/consents", w.pid()),
            json!({"consumer": CONSUMER}),
        )
        .await;
    assert_eq!(s, 201);
    let again = w.client.practice(PracticeCredentials::new(
        w.pid(),
        v["practice_key"].as_str().unwrap(),
    ));
    again
        .send_pms_resources(&resources())
        .await
        .expect("new consent works");
}

#[tokio::test]
async fn a_bad_api_key_is_unauthorized_not_a_consent_problem() {
    let w = world().await;
    let other = client_for(&w.sim, "wrong-api-key");
    let p = other.practice(PracticeCredentials::new(w.pid(), &w.practice_key));
    assert!(matches!(p.poll().await, Err(MarketError::Unauthorized)));
}

#[tokio::test]
async fn integration_of_pms_account_with_multi_location_support() {
    let w = world().await;
    let (s, v) = w.post("/practices", json!({"name": "Harbour Dental North", "timezone": "Australia/Perth", "consumer": CONSUMER})).await;
    assert_eq!(s, 201, "{v}");
    let north = w.client.practice(PracticeCredentials::new(
        v["practice_id"].as_str().unwrap(),
        v["practice_key"].as_str().unwrap(),
    ));
    w.practice
        .send_pms_resources(&resources()[..1])
        .await
        .unwrap();
    north.send_pms_resources(&resources()).await.unwrap();
    assert_eq!(w.practice.pms_resources().await.unwrap().len(), 1);
    assert_eq!(north.pms_resources().await.unwrap().len(), 2);
}

#[tokio::test]
async fn outstanding_requests_during_initial_configuration_synchronisation() {
    // A booking is waiting from the practice's previous integration (another consumer).
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    w.http
        .delete(w.url(&format!("/practices/{}/consents/{CONSUMER}", w.pid())))
        .send()
        .await
        .unwrap();
    let (s, _) = w
        .post(
            "/consumers",
            json!({"name": "next-vendor", "api_key": "next-vendor-key"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, v) = w
        .post(
            &format!("/practices/{}/consents", w.pid()),
            json!({"consumer": "next-vendor"}),
        )
        .await;
    assert_eq!(s, 201);
    let next = client_for(&w.sim, "next-vendor-key").practice(PracticeCredentials::new(
        w.pid(),
        v["practice_key"].as_str().unwrap(),
    ));
    assert_eq!(next.poll().await.unwrap().known, [RequestType::Bookings]);
    assert_eq!(
        next.booking_requests(1).await.unwrap().items[0].booking_id,
        id
    );
}

// ---- initial configuration --------------------------------------------------------------------

#[tokio::test]
async fn initial_configuration_synchronisation() {
    let w = world().await;
    w.practice
        .set_liveness_contract(&always_live())
        .await
        .unwrap();
    w.practice.send_pms_resources(&resources()).await.unwrap();
    w.practice
        .send_pms_appointment_types(&types())
        .await
        .unwrap();
    assert_eq!(w.practice.liveness_contract().await.unwrap(), always_live());
    assert_eq!(w.practice.pms_resources().await.unwrap(), resources());
    assert_eq!(w.practice.pms_appointment_types().await.unwrap(), types());
    assert_eq!(
        w.practice.find_pms_resource("R2").await.unwrap(),
        vec![resources()[1].clone()]
    );
    assert!(
        w.practice
            .find_pms_resource("nope")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.practice.find_pms_appointment_type("CL:R2").await.unwrap(),
        vec![types()[1].clone()]
    );
}

#[tokio::test]
async fn changes_detected_in_pms_resource_snapshot() {
    let w = world().await;
    w.configure().await;
    let day = future_date(3);
    w.practice
        .send_availability(&snapshot("R2", day, &[("09:00", "12:00", 900)]))
        .await
        .unwrap();
    // R2 removed: it is deleted, with its availability; R3 added.
    let mut changed = vec![resources()[0].clone()];
    changed.push(slotbridge_market::types::PmsResource {
        pms_resource_id: "R3".into(),
        pms_resource_name: "Dr New".into(),
        pms_practitioner_title: None,
        pms_practitioner_firstname: None,
        pms_practitioner_lastname: None,
    });
    w.practice
        .send_pms_appointment_types(&types()[..1])
        .await
        .unwrap();
    w.practice.send_pms_resources(&changed).await.unwrap();
    let ids: Vec<String> = w
        .practice
        .pms_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.pms_resource_id)
        .collect();
    assert_eq!(ids, ["R1", "R3"]);
    let published = w.get(&format!("/practices/{}/availability", w.pid())).await;
    assert!(
        published.as_array().unwrap().is_empty(),
        "availability of the deleted resource is gone: {published}"
    );
    // Duplicate ids or names are refused with a reason naming the field.
    let dup = vec![resources()[0].clone(), resources()[0].clone()];
    match w.practice.send_pms_resources(&dup).await {
        Err(MarketError::Invalid { detail }) => {
            assert!(detail.contains("pmsResourceId"), "{detail}")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn changes_detected_in_pms_appointment_type_snapshot() {
    let w = world().await;
    w.configure().await;
    w.practice
        .send_pms_appointment_types(&types()[1..])
        .await
        .unwrap();
    let ids: Vec<String> = w
        .practice
        .pms_appointment_types()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.pms_appointment_type_id)
        .collect();
    assert_eq!(ids, ["CL:R2"]);
    let mut bad = types();
    bad[1].pms_resource_id = Some("unknown".into());
    assert!(matches!(
        w.practice.send_pms_appointment_types(&bad).await,
        Err(MarketError::Invalid { .. })
    ));
}

// ---- availability -----------------------------------------------------------------------------

#[tokio::test]
async fn availability_snapshots_report_created_existing_and_failed() {
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    let mut a = snapshot("R1", day, &[("09:00", "12:00", 1800)]);
    a.id = Some("r1-day".into());
    let b = snapshot("R2", day, &[("13:00", "17:00", 0)]);
    let bad = snapshot("R9", day, &[("09:00", "10:00", 900)]);
    let r = w
        .practice
        .send_availability_batch(&[a.clone(), b.clone(), bad.clone()])
        .await
        .unwrap();
    assert_eq!(r.created, ["r1-day", "1"]);
    assert!(r.existing.is_empty());
    assert_eq!(r.failed, ["2"]);
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].error.contains("pmsResourceId"),
        "{:?}",
        r.errors
    );
    // Unchanged snapshots are reported as existing (same hash).
    let r = w
        .practice
        .send_availability_batch(&[a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(r.existing, ["r1-day", "1"]);
    assert!(r.created.is_empty() && r.failed.is_empty() && r.errors.is_empty());
    // More than 100 in one call is refused before sending.
    let many: Vec<_> = (0..101)
        .map(|i| snapshot("R1", future_date(1 + i % 60), &[]))
        .collect();
    assert!(matches!(
        w.practice.send_availability_batch(&many).await,
        Err(MarketError::Usage { .. })
    ));
}

#[tokio::test]
async fn availability_snapshots_in_batches_of_100_are_merged_and_renumbered() {
    let w = world().await;
    w.configure().await;
    let mut all = Vec::new();
    for d in 1..=75 {
        for r in ["R1", "R2"] {
            all.push(snapshot(
                r,
                future_date(d),
                &[("08:00", "12:00", 900), ("13:00", "18:00", 900)],
            ));
        }
    }
    all[150 - 1].pms_resource_id = "missing".into();
    let r = w.practice.send_availability_all(&all).await.unwrap();
    assert_eq!(r.created.len(), 149);
    assert_eq!(r.failed, ["149"]);
    assert!(
        r.created.contains(&"120".to_owned()),
        "indexes of later batches are offset"
    );
    let r = w.practice.send_availability_all(&all).await.unwrap();
    assert_eq!(r.existing.len(), 149);
}

#[tokio::test]
async fn availability_replace_semantics_and_slicing() {
    let w = world().await;
    w.configure().await;
    let day = future_date(4);
    // R1: 09:00-10:00 in 15-minute steps, Healthengine type 30 min: 09:00, 09:15, 09:30.
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "10:00", 900)]))
        .await
        .unwrap();
    let slots = w
        .get(&format!("/practices/{}/slots?date={day}", w.pid()))
        .await;
    let starts: Vec<&str> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert_eq!(starts.len(), 3, "{slots}");
    assert!(starts[0].contains("T09:00:00+1"), "{starts:?}");
    assert_eq!(slots[0]["pms_resource_id"], "R1");
    assert_eq!(slots[0]["appointment_type"], "Healthengine");
    // slotLength below 60: the appointment length is the step: 09:00, 09:30.
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "10:00", 0)]))
        .await
        .unwrap();
    let slots = w
        .get(&format!("/practices/{}/slots?date={day}", w.pid()))
        .await;
    assert_eq!(slots.as_array().unwrap().len(), 2, "{slots}");
    // Replace with an empty day: nothing is bookable.
    w.practice
        .send_availability(&snapshot("R1", day, &[]))
        .await
        .unwrap();
    let slots = w
        .get(&format!("/practices/{}/slots?date={day}", w.pid()))
        .await;
    assert!(slots.as_array().unwrap().is_empty(), "{slots}");
    // A range that is not 'start before end' is invalid.
    let err = w
        .practice
        .send_availability(&snapshot("R1", day, &[("10:00", "09:00", 900)]))
        .await
        .unwrap_err();
    assert!(matches!(err, MarketError::Invalid { .. }), "{err:?}");
}

#[tokio::test]
async fn large_snapshot_bodies_are_sent_gzipped_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("record.jsonl");
    let w = world_with(MarketSim::builder().record(&file)).await;
    w.configure().await;
    let all: Vec<_> = (1..=60)
        .map(|d| {
            snapshot(
                "R1",
                future_date(d),
                &[("08:00", "12:00", 900), ("13:00", "18:00", 900)],
            )
        })
        .collect();
    let r = w.practice.send_availability_all(&all).await.unwrap();
    assert_eq!(r.created.len(), 60);
    let lines = std::fs::read_to_string(&file).unwrap();
    let batch = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["path"] == "/pms-api/v1/availability/snapshots")
        .expect("the batch was recorded");
    assert_eq!(batch["headers"]["content-encoding"], "gzip");
    assert_eq!(
        batch["body"].as_array().unwrap().len(),
        60,
        "the recorded body is the decoded JSON"
    );
}

// ---- requests, polling and priorities ---------------------------------------------------------

#[tokio::test]
async fn polling_for_new_requests() {
    let w = world().await;
    w.configure().await;
    assert!(w.practice.poll().await.unwrap().is_empty());
    let health = w.get(&format!("/practices/{}/health", w.pid())).await;
    assert!(
        health["last_poll"].is_string(),
        "the poll is seen: {health}"
    );
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    assert_eq!(
        w.practice.poll().await.unwrap().known,
        [RequestType::Bookings]
    );
    let page = w.practice.booking_requests(1).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let b: &Booking = &page.items[0];
    assert_eq!(b.booking_id, id);
    assert_eq!(b.pms_resource_id.as_deref(), Some("R1"));
    assert_eq!(b.pms_appointment_type_id.as_deref(), Some("HE"));
    assert_eq!(b.pms_appointment_length, 1800);
    assert_eq!(b.pms_appointment_time, day.at(9, 0, 0, 0));
    assert_eq!(b.patient.dob, Some(jiff::civil::date(1990, 2, 23)));
    assert_eq!(b.booking_status, BookingStatus::Requested);
}

#[tokio::test]
async fn handling_priority_requests_confirm_insert() {
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, slot) = w.book_first(&day.to_string()).await;
    // The slot is taken now.
    let (s, v) = w
        .post(
            &format!("/practices/{}/bookings", w.pid()),
            json!({"practitioner": slot["practitioner"], "appointment_type": slot["appointment_type"], "start": slot["start"],
                   "patient": {"firstname": "B", "lastname": "C", "dob": "1980-01-01"}}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    w.practice
        .confirm_insert(
            id,
            &ConfirmBookingInsert {
                pms_appointment_ids: vec!["A1".into()],
                pms_patient_id: "P1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b = w.booking(id).await;
    assert_eq!(b["status"], "Confirmed");
    assert_eq!(b["pms_appointment_ids"], json!(["A1"]));
    assert!(w.practice.poll().await.unwrap().is_empty());
}

#[tokio::test]
async fn rejecting_a_booking_within_20_seconds_asks_for_availability() {
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    w.practice
        .reject_insert(id, Some("slot taken in the PMS"))
        .await
        .unwrap();
    let b = w.booking(id).await;
    assert_eq!(b["status"], "Rejected");
    assert_eq!(b["reject_reason"], "slot taken in the PMS");
    assert_eq!(
        w.practice.poll().await.unwrap().known,
        [RequestType::Availability]
    );
    let reqs = w.practice.availability_requests(1).await.unwrap();
    assert_eq!(reqs.items.len(), 1);
    assert_eq!(reqs.items[0].day, day);
    assert_eq!(reqs.items[0].resource(), Some("R1"));
    w.practice
        .send_availability(&snapshot("R1", day, &[("10:00", "12:00", 1800)]))
        .await
        .unwrap();
    assert!(
        w.practice.poll().await.unwrap().is_empty(),
        "the snapshot answers the request"
    );
}

#[tokio::test]
async fn a_booking_not_rejected_within_20_seconds_is_auto_confirmed() {
    let w = world_with(MarketSim::builder().time_factor(0.01)).await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    let b = eventually(15, "auto-confirm", || async {
        let b = w.booking(id).await;
        (b["status"] == "Confirmed").then_some(b)
    })
    .await;
    assert_eq!(b["auto_confirmed"], true);
    // It must still be confirmed or rejected by the integration.
    let page = w.practice.booking_requests(1).await.unwrap();
    assert_eq!(page.items[0].booking_status, BookingStatus::Confirmed);
    w.practice
        .reject_insert(id, Some("too late"))
        .await
        .unwrap();
    let b = w.booking(id).await;
    assert_eq!(
        b["status"], "Confirmed",
        "a late rejection leaves it to the practice"
    );
    assert_eq!(b["late_reject"], true);
}

#[tokio::test]
async fn handling_booking_updates_cancellation_confirm_and_reject() {
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    let body = ConfirmBookingInsert {
        pms_appointment_ids: vec!["A1".into()],
        pms_patient_id: "P1".into(),
        ..Default::default()
    };
    w.practice.confirm_insert(id, &body).await.unwrap();
    // The patient asks to cancel; the PMS (Exact: no online cancellation) rejects it.
    let (s, v) = w.post(&format!("/bookings/{id}/cancel"), json!({})).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        w.practice.poll().await.unwrap().known,
        [RequestType::BookingUpdates]
    );
    let ups: Vec<BookingUpdate> = w
        .practice
        .all_requests(RequestType::BookingUpdates)
        .await
        .unwrap()
        .items;
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].booking_status, BookingStatus::Cancelled);
    assert_eq!(ups[0].pms_appointment_ids, ["A1"]);
    w.practice
        .reject_update(id, ups[0].request_id, Some("call the practice"))
        .await
        .unwrap();
    assert_eq!(w.booking(id).await["status"], "Confirmed");
    // Asked again and confirmed this time.
    w.post(&format!("/bookings/{id}/cancel"), json!({})).await;
    let ups: Vec<BookingUpdate> = w
        .practice
        .all_requests(RequestType::BookingUpdates)
        .await
        .unwrap()
        .items;
    w.practice
        .confirm_update(id, ups[0].request_id)
        .await
        .unwrap();
    assert_eq!(w.booking(id).await["status"], "Cancelled");
    assert!(matches!(
        w.practice.confirm_update(id, ups[0].request_id).await,
        Err(MarketError::Invalid { .. })
    ));
}

#[tokio::test]
async fn handling_multiple_request_types_with_priority() {
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (first, _) = w.book_first(&day.to_string()).await;
    w.practice
        .confirm_insert(
            first,
            &ConfirmBookingInsert {
                pms_appointment_ids: vec!["A1".into()],
                pms_patient_id: "P1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.post(&format!("/bookings/{first}/cancel"), json!({}))
        .await;
    w.post(
        &format!("/bookings/{first}/request-appointment-changes"),
        json!({}),
    )
    .await;
    w.post(
        &format!("/practices/{}/refresh-resources", w.pid()),
        json!({}),
    )
    .await;
    let (_second, _) = w.book_first(&day.to_string()).await;
    let polled = w.practice.poll().await.unwrap().known;
    assert_eq!(polled.len(), 4, "{polled:?}");
    let ordered = RequestType::by_priority(polled.into_iter().rev().collect());
    assert_eq!(
        ordered,
        [
            RequestType::Bookings,
            RequestType::BookingUpdates,
            RequestType::PmsAppointmentChanges,
            RequestType::PmsResources
        ]
    );
}

#[tokio::test]
async fn request_lists_are_paginated() {
    let w = world_with(MarketSim::builder().per_page(2)).await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(w.book_first(&day.to_string()).await.0);
    }
    let p1 = w.practice.booking_requests(1).await.unwrap();
    assert_eq!(
        (
            p1.items.len(),
            p1.page.unwrap().total_pages,
            p1.page.unwrap().total,
            p1.page.unwrap().per_page
        ),
        (2, 3, 5, 2)
    );
    let p3 = w.practice.booking_requests(3).await.unwrap();
    assert_eq!(p3.items.len(), 1);
    assert_eq!(p3.page.unwrap().current_page, 3);
    let all: Vec<Booking> = w
        .practice
        .all_requests(RequestType::Bookings)
        .await
        .unwrap()
        .items;
    assert_eq!(all.iter().map(|b| b.booking_id).collect::<Vec<_>>(), ids);
}

#[tokio::test]
async fn pms_resources_and_appointment_types_refresh_requests() {
    let w = world().await;
    w.configure().await;
    let pr = w
        .get(&format!("/practices/{}/practitioners", w.pid()))
        .await;
    let prid = pr[0]["id"].as_u64().unwrap();
    let (s, _) = w
        .post(
            &format!(
                "/practices/{}/practitioners/{prid}/refresh-linked-types",
                w.pid()
            ),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    w.post(
        &format!("/practices/{}/refresh-resources", w.pid()),
        json!({}),
    )
    .await;
    assert_eq!(
        w.practice.poll().await.unwrap().known,
        [RequestType::PmsResources, RequestType::PmsAppointmentTypes]
    );
    assert!(matches!(
        w.practice
            .request_page::<serde_json::Value>(RequestType::PmsResources, 1)
            .await,
        Err(MarketError::Usage { .. })
    ));
    w.practice
        .send_pms_appointment_types(&types())
        .await
        .unwrap();
    assert_eq!(
        w.practice.poll().await.unwrap().known,
        [RequestType::PmsResources]
    );
    w.practice.send_pms_resources(&resources()).await.unwrap();
    assert!(w.practice.poll().await.unwrap().is_empty());
}

#[tokio::test]
async fn pms_appointment_changes_are_answered_by_cancel_dna_or_no_change() {
    let w = world().await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, _) = w.book_first(&day.to_string()).await;
        w.practice
            .confirm_insert(
                id,
                &ConfirmBookingInsert {
                    pms_appointment_ids: vec![format!("A{id}")],
                    pms_patient_id: "P".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        w.post(
            &format!("/bookings/{id}/request-appointment-changes"),
            json!({}),
        )
        .await;
        ids.push(id);
    }
    let reqs = w.practice.pms_appointment_change_requests(1).await.unwrap();
    assert_eq!(
        reqs.items.iter().map(|r| r.booking_id).collect::<Vec<_>>(),
        ids
    );
    w.practice
        .cancel(ids[0], Some("cancelled at the desk"))
        .await
        .unwrap();
    w.practice.did_not_attend(ids[1], None).await.unwrap();
    w.practice.no_pms_appointment_change(ids[2]).await.unwrap();
    assert!(w.practice.poll().await.unwrap().is_empty());
    assert_eq!(w.booking(ids[0]).await["status"], "Cancelled");
    assert_eq!(w.booking(ids[1]).await["did_not_attend"], true);
    assert!(matches!(
        w.practice.no_pms_appointment_change(ids[2]).await,
        Err(MarketError::Invalid { .. })
    ));
}

#[tokio::test]
async fn handling_an_unknown_booking_id() {
    let w = world().await;
    w.configure().await;
    let body = ConfirmBookingInsert {
        pms_appointment_ids: vec!["A".into()],
        pms_patient_id: "P".into(),
        ..Default::default()
    };
    assert!(matches!(
        w.practice.confirm_insert(424242, &body).await,
        Err(MarketError::NotFound { .. })
    ));
    assert!(matches!(
        w.practice.reject_insert(424242, None).await,
        Err(MarketError::NotFound { .. })
    ));
}

#[tokio::test]
async fn features_are_disabled_by_default_and_can_be_switched() {
    let w = world().await;
    let all = w.practice.features().await.unwrap();
    assert!(all.iter().all(|f| f.enabled == Some(false)), "{all:?}");
    w.practice.enable_feature("documents").await.unwrap();
    assert_eq!(
        w.practice.feature("documents").await.unwrap().enabled,
        Some(true)
    );
    w.practice.disable_feature("documents").await.unwrap();
    assert_eq!(
        w.practice.feature("documents").await.unwrap().enabled,
        Some(false)
    );
    assert!(matches!(
        w.practice.feature("nope").await,
        Err(MarketError::NotFound { .. })
    ));
    // Extra-feature request lists exist and are empty.
    assert!(
        w.practice
            .client_snapshot_requests(1)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        w.practice
            .attach_document_requests(1)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        w.practice
            .available_documents_requests(1)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        w.practice
            .upload_documents_requests(1)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

// ---- health -----------------------------------------------------------------------------------

#[tokio::test]
async fn the_integration_is_unhealthy_when_polling_stops() {
    // 10 minutes × 0.002 = 1.2 s.
    let w = world_with(MarketSim::builder().time_factor(0.002)).await;
    w.configure().await;
    w.practice.poll().await.unwrap();
    let h = eventually(20, "unhealthy", || async {
        let h = w.get(&format!("/practices/{}/health", w.pid())).await;
        (h["healthy"] == false).then_some(h)
    })
    .await;
    assert!(h["reasons"][0].as_str().unwrap().contains("no poll"), "{h}");
    w.practice.poll().await.unwrap();
    let h = w.get(&format!("/practices/{}/health", w.pid())).await;
    assert_eq!(h["healthy"], true, "{h}");
}

#[tokio::test]
async fn handling_priority_requests_unanswered_makes_the_integration_unhealthy() {
    let w = world_with(MarketSim::builder().time_factor(0.002)).await;
    w.configure().await;
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    let h = eventually(20, "unhealthy", || async {
        w.practice.poll().await.unwrap();
        let h = w.get(&format!("/practices/{}/health", w.pid())).await;
        (h["healthy"] == false).then_some(h)
    })
    .await;
    assert!(
        h["reasons"][0]
            .as_str()
            .unwrap()
            .contains(&format!("booking {id}")),
        "{h}"
    );
}

// ---- subscriptions and webhooks ---------------------------------------------------------------

async fn receiver() -> (String, tokio::sync::mpsc::Receiver<WebhookPayload>) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let app = axum::Router::new().nest("/hooks/he", WebhookReceiver::new(tx).router());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/he", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, rx)
}

fn sub(topic: SubscriptionTopic, url: &str) -> Subscription {
    Subscription {
        id: None,
        client_id: Some("practice-7".into()),
        topic,
        callback_url: url.into(),
        start_at: None,
        expire_at: None,
    }
}

#[tokio::test]
async fn subscriptions_create_renew_and_delete() {
    let w = world().await;
    let created = w
        .practice
        .create_subscription(&sub(SubscriptionTopic::All, "http://127.0.0.1:9/x"))
        .await
        .unwrap();
    let id = created.id.clone().expect("an id");
    assert!(created.start_at.is_some());
    let expiry = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    let renewed = w
        .practice
        .renew_subscription(&created, Some(expiry))
        .await
        .unwrap();
    assert_eq!(
        renewed.id.as_deref(),
        Some(id.as_str()),
        "renewing keeps the subscription"
    );
    assert_eq!(
        renewed.expire_at.map(|t| t.as_second()),
        Some(expiry.as_second())
    );
    assert_eq!(w.practice.subscriptions().await.unwrap().len(), 1);
    assert_eq!(
        w.practice.subscription(&id).await.unwrap().expire_at,
        renewed.expire_at
    );
    w.practice.delete_subscription(&id).await.unwrap();
    assert!(matches!(
        w.practice.subscription(&id).await,
        Err(MarketError::NotFound { .. })
    ));
    assert!(matches!(
        w.practice.delete_subscription(&id).await,
        Err(MarketError::NotFound { .. })
    ));
    let mut bad = sub(SubscriptionTopic::Bookings, "not a url");
    bad.client_id = None;
    assert!(matches!(
        w.practice.create_subscription(&bad).await,
        Err(MarketError::Invalid { .. })
    ));
}

#[tokio::test]
async fn acknowledging_a_webhook_payload_to_prevent_timeout() {
    let w = world().await;
    w.configure().await;
    let (url, mut rx) = receiver().await;
    let s = w
        .practice
        .create_subscription(&sub(SubscriptionTopic::Bookings, &url))
        .await
        .unwrap();
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    let p = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a payload")
        .expect("open");
    assert_eq!(p.data.booking_id, Some(id));
    assert_eq!(p.data.request_type, RequestType::Bookings);
    assert_eq!(p.data.target.as_deref(), Some("/requests/bookings"));
    assert_eq!(p.id, s.id.unwrap());
    assert_eq!(p.client_id.as_deref(), Some("practice-7"));
    let d = w.get(&format!("/webhooks?practice_id={}", w.pid())).await;
    assert_eq!(d[0]["delivered"], true);
    assert_eq!(d[0]["attempts"], 1);
}

#[tokio::test]
async fn a_slow_webhook_receiver_times_out_and_the_attempt_is_logged() {
    let w = world_with(MarketSim::builder().time_factor(0.001)).await;
    w.configure().await;
    // Sleeps far longer than the (scaled, at least 500 ms) timeout.
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, slow).await });
    let s = w
        .practice
        .create_subscription(&sub(SubscriptionTopic::All, &url))
        .await
        .unwrap();
    w.post(
        &format!("/practices/{}/refresh-resources", w.pid()),
        json!({}),
    )
    .await;
    let log = eventually(30, "a logged timeout", || async {
        let q = ErrorLogQuery {
            subscription_id: s.id.clone(),
            ..Default::default()
        };
        let log = w.practice.subscription_error_log(&q).await.unwrap();
        (!log.items.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log.items[0].error_type, "TimeoutException");
    assert_eq!(log.items[0].attempt, 1);
    assert_eq!(
        log.items[0].payload.data.request_type,
        RequestType::PmsResources
    );
    assert_eq!(log.items[0].payload.data.target, None);
}

#[tokio::test]
async fn resolving_a_webhook_payload_attempt_before_the_maximum_number_of_retries() {
    // Retries at 10, 100, 1000 s × 0.001 = 10 ms, 100 ms, 1 s.
    let w = world_with(MarketSim::builder().time_factor(0.001)).await;
    w.configure().await;
    let (url, mut rx) = receiver().await;
    // A proxy that fails the first two attempts, then forwards to the receiver.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let target = url.clone();
    let flaky = axum::Router::new().route(
        "/flaky",
        axum::routing::post(move |body: axum::body::Bytes| {
            let c = c.clone();
            let target = target.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let r = reqwest::Client::new()
                    .post(&target)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) => axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap(),
                    Err(_) => axum::http::StatusCode::BAD_GATEWAY,
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky_url = format!("http://{}/flaky", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, flaky).await });
    let s = w
        .practice
        .create_subscription(&sub(SubscriptionTopic::All, &flaky_url))
        .await
        .unwrap();
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    let p = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("delivered on the third attempt")
        .unwrap();
    assert_eq!(p.data.booking_id, Some(id));
    let log = w
        .practice
        .subscription_error_log(&ErrorLogQuery {
            subscription_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        log.items.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(log.items.iter().all(|e| e.error_type == "HttpStatusError"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The same payload delivered again (a retry after a lost acknowledgement) is acknowledged
    // and not handed over twice.
    let again = reqwest::Client::new()
        .post(&url)
        .json(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "deduplicated"
    );
}

#[tokio::test]
async fn handling_missed_webhook_payloads() {
    let w = world_with(MarketSim::builder().time_factor(0.001)).await;
    w.configure().await;
    // Nothing listens there: every attempt fails; after 4 attempts the payload is missed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", l.local_addr().unwrap())
    };
    let s = w
        .practice
        .create_subscription(&sub(SubscriptionTopic::Bookings, &dead))
        .await
        .unwrap();
    let day = future_date(2);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .unwrap();
    let (id, _) = w.book_first(&day.to_string()).await;
    let d = eventually(30, "giving up", || async {
        let d = w.get(&format!("/webhooks?practice_id={}", w.pid())).await;
        (d[0]["gave_up"] == true).then_some(d)
    })
    .await;
    assert_eq!(d[0]["attempts"], 4);
    let log = w
        .practice
        .subscription_error_log(&ErrorLogQuery {
            subscription_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        log.items.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(log.items.iter().all(|e| e.error_type == "ConnectException"));
    // Polling still finds the booking.
    assert_eq!(
        w.practice.poll().await.unwrap().known,
        [RequestType::Bookings]
    );
    assert_eq!(
        w.practice.booking_requests(1).await.unwrap().items[0].booking_id,
        id
    );
    // The error log filters by time.
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let q = ErrorLogQuery {
        from: Some(future),
        ..Default::default()
    };
    assert!(
        w.practice
            .subscription_error_log(&q)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn the_webhook_receiver_rejects_payloads_that_are_not_the_spec_shape() {
    let (url, _rx) = receiver().await;
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

// ---- recording --------------------------------------------------------------------------------

#[tokio::test]
async fn recording_writes_each_call_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calls.jsonl");
    let w = world_with(MarketSim::builder().record(&file)).await;
    w.practice.send_pms_resources(&resources()).await.unwrap();
    w.practice.booking_requests(2).await.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(API_KEY) && !text.contains(&w.practice_key),
        "secrets never recorded"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["path"], "/pms-api/v1/config/pmsResources/snapshot");
    assert_eq!(lines[0]["headers"]["api-key"], "***");
    assert_eq!(lines[0]["headers"]["practice-key"], "***");
    assert_eq!(lines[0]["headers"]["practice-id"], w.pid());
    assert_eq!(
        lines[0]["headers"]["user-agent"],
        "slotbridge (integrations@slotbridge.example) DEV"
    );
    assert_eq!(lines[0]["body"][0]["pmsResourceId"], "R1");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["response"], serde_json::Value::Null);
    assert_eq!(lines[1]["query"], "page=2");
    assert_eq!(lines[1]["response"]["page"]["currentPage"], 2);
}
