//! The booking outbox's link-scoped claims and desk-cancellation records, on both backends.

// Shared with behaviour.rs; this suite uses only part of it.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use secrecy::SecretString;
use serde_json::json;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{
    AppointmentChange, BookingState, BookingTransition, HorizonDays, Lease, LinkId, NewBooking,
    NewLink, Store,
};
use support::Ctx;

both_backends!(
    a_link_claims_only_its_own_due_bookings,
    a_desk_cancellation_is_recorded_once_for_a_confirmed_booking,
    appointment_changes_and_late_outcomes_are_recorded_once_each,
    a_booking_request_is_sealed_at_rest_and_purged_once_final_past_the_retention,
);

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid instant")
}

fn new_link(slug: &str, practice: &str) -> NewLink {
    NewLink {
        site_slug: SiteSlug::parse(slug).expect("valid slug"),
        pms_api_key: SecretString::from(format!("pms-key-{practice}")),
        market_practice_id: practice.to_owned(),
        market_practice_key: SecretString::from(format!("practice-key-{practice}")),
        enabled: true,
        horizon_days: HorizonDays::default(),
    }
}

/// The lease on `link` of this test's node (a worker's writes are fenced by it).
async fn lease_of(s: &Store, link: LinkId) -> Lease {
    s.acquire_leases("test-node", 100, Duration::from_secs(3600))
        .await
        .unwrap();
    s.held_leases("test-node")
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.lease.link_id == link)
        .expect("the link's lease")
        .lease
}

/// Move the claimed booking `id` from received to confirmed at t0 (patient P1, appointment A1).
async fn confirm(s: &Store, lease: &Lease, id: &str) {
    let mut state = BookingState::Received;
    for step in [
        BookingTransition::PatientResolved {
            pms_patient_id: "P1".into(),
            match_decision: json!({}),
        },
        BookingTransition::Inserted {
            pms_appointment_id: "A1".into(),
        },
        BookingTransition::Confirmed,
    ] {
        let next = step.target();
        s.transition_booking(lease, id, state, step, "step", t0())
            .await
            .unwrap();
        state = next;
    }
}

fn booking(id: &str, link: LinkId, at: Timestamp) -> NewBooking {
    NewBooking {
        booking_id: id.to_owned(),
        link_id: link,
        market_practice_id: "p-1".into(),
        request: json!({"bookingId": id}),
        received_at: at,
    }
}

async fn a_link_claims_only_its_own_due_bookings(ctx: Ctx) {
    let s = &ctx.store;
    let a = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let b = s.create_link(new_link("sbay", "p-2")).await.unwrap();
    let (la, lb) = (lease_of(s, a.id).await, lease_of(s, b.id).await);
    for (id, lease) in [("a-1", &la), ("a-2", &la), ("b-1", &lb)] {
        assert!(
            s.enqueue_booking(lease, &booking(id, lease.link_id, t0()))
                .await
                .unwrap()
        );
    }
    // a-2 waits for a retry later.
    s.claim_link_bookings(&la, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    s.retry_booking(
        &la,
        "a-2",
        BookingState::Received,
        t0() + 10.seconds(),
        "PMS unavailable",
        t0(),
    )
    .await
    .unwrap();
    // The worker restarts: its claims are given up and resumed at once.
    assert_eq!(s.release_claims(&la).await.unwrap(), 1);
    assert!(s.has_due_bookings(&la, t0()).await.unwrap());
    let claimed = s
        .claim_link_bookings(&la, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|b| b.booking_id.as_str()).collect();
    assert_eq!(
        ids,
        ["a-1"],
        "the other link's and the not-yet-due bookings stay"
    );
    // Claimed: not claimed again until the claim lapses.
    assert!(!s.has_due_bookings(&la, t0() + 1.second()).await.unwrap());
    assert!(
        s.claim_link_bookings(&la, 10, Duration::from_secs(60), t0() + 1.second())
            .await
            .unwrap()
            .is_empty()
    );
    let later = s
        .claim_link_bookings(&la, 10, Duration::from_secs(60), t0() + 61.seconds())
        .await
        .unwrap();
    let ids: Vec<&str> = later.iter().map(|b| b.booking_id.as_str()).collect();
    assert_eq!(ids, ["a-1", "a-2"], "a lapsed claim and a due retry");
    let other = s
        .claim_link_bookings(&lb, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].booking_id, "b-1");
}

async fn a_desk_cancellation_is_recorded_once_for_a_confirmed_booking(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    for id in ["c-1", "c-2"] {
        s.enqueue_booking(&lease, &booking(id, link.id, t0()))
            .await
            .unwrap();
    }
    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    confirm(s, &lease, "c-1").await;
    // Not confirmed: nothing to record.
    assert!(
        !s.mark_booking_cancelled(&lease, "c-2", "removed at the desk", t0())
            .await
            .unwrap()
    );
    let standing = s
        .standing_bookings(link.id, t0() - 1.second())
        .await
        .unwrap();
    assert_eq!(standing.len(), 1);
    assert_eq!(standing[0].booking_id, "c-1");
    assert!(standing[0].cancelled_at.is_none());
    // Bookings received before `since` are not watched.
    assert!(
        s.standing_bookings(link.id, t0() + 1.second())
            .await
            .unwrap()
            .is_empty()
    );
    let at = t0() + 5.seconds();
    assert!(
        s.mark_booking_cancelled(&lease, "c-1", "appointment A1 removed at the desk", at)
            .await
            .unwrap()
    );
    assert!(
        !s.mark_booking_cancelled(&lease, "c-1", "appointment A1 removed at the desk", at)
            .await
            .unwrap(),
        "recorded once"
    );
    let row = s.booking("c-1").await.unwrap().unwrap();
    assert_eq!(row.state, BookingState::Confirmed);
    assert_eq!(row.cancelled_at, Some(at));
    assert!(
        s.standing_bookings(link.id, t0() - 1.second())
            .await
            .unwrap()
            .is_empty()
    );
    let events = s.booking_events("c-1").await.unwrap();
    let desk: Vec<_> = events
        .iter()
        .filter(|e| e.reason.contains("removed at the desk"))
        .collect();
    assert_eq!(desk.len(), 1);
    assert_eq!(
        (desk[0].from, desk[0].to),
        (Some(BookingState::Confirmed), BookingState::Confirmed)
    );
}

async fn appointment_changes_and_late_outcomes_are_recorded_once_each(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    for id in ["d-1", "d-2"] {
        s.enqueue_booking(&lease, &booking(id, link.id, t0()))
            .await
            .unwrap();
    }
    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    confirm(s, &lease, "d-1").await;
    let at = t0() + 5.seconds();
    // What the marketplace is told about the appointment: recorded when it differs.
    for (change, recorded) in [
        (AppointmentChange::NoChange, true),
        (AppointmentChange::NoChange, false),
        (AppointmentChange::DidNotAttend, true),
    ] {
        assert_eq!(
            s.record_appointment_change(&lease, "d-1", change, "told", at)
                .await
                .unwrap(),
            recorded,
            "{change:?}"
        );
    }
    let row = s.booking("d-1").await.unwrap().unwrap();
    assert_eq!(row.appointment_change.as_deref(), Some("did_not_attend"));
    assert_eq!(row.appointment_change_at, Some(at));
    // Only a confirmed booking has an appointment to tell about.
    assert!(
        !s.record_appointment_change(&lease, "d-2", AppointmentChange::Cancelled, "told", at)
            .await
            .unwrap()
    );
    // A late outcome: the first is kept, with an event.
    assert!(
        s.record_late_outcome(&lease, "d-2", "call the patient", at)
            .await
            .unwrap()
    );
    assert!(
        !s.record_late_outcome(&lease, "d-2", "something else", at)
            .await
            .unwrap()
    );
    let row = s.booking("d-2").await.unwrap().unwrap();
    assert_eq!(row.late_outcome.as_deref(), Some("call the patient"));
    let events = s.booking_events("d-2").await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason == "call the patient")
            .count(),
        1
    );
    assert!(
        !s.record_late_outcome(&lease, "nobody", "x", at)
            .await
            .unwrap(),
        "an unknown booking"
    );
}

async fn a_booking_request_is_sealed_at_rest_and_purged_once_final_past_the_retention(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    let request = |id: &str| {
        json!({"bookingId": id, "patient": {"firstname": "Zebediah", "lastname": "Quennell",
               "medicareNumber": "2123456701", "email": "zq@example.com"}})
    };
    for id in ["r-1", "r-2"] {
        let mut b = booking(id, link.id, t0());
        b.request = request(id);
        s.enqueue_booking(&lease, &b).await.unwrap();
    }
    let dump = ctx.raw_dump().await;
    for personal in ["Zebediah", "Quennell", "2123456701", "zq@example.com"] {
        assert!(
            !dump
                .windows(personal.len())
                .any(|w| w == personal.as_bytes()),
            "{personal:?} is stored in clear"
        );
    }
    assert_eq!(
        s.booking("r-1").await.unwrap().unwrap().request,
        request("r-1")
    );
    // r-1 becomes final at t0; r-2 stays in flight.
    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    confirm(s, &lease, "r-1").await;
    assert_eq!(
        s.purge_booking_requests(t0()).await.unwrap(),
        0,
        "not final for long enough"
    );
    assert_eq!(
        s.purge_booking_requests(t0() + 1.second()).await.unwrap(),
        1
    );
    let purged = s.booking("r-1").await.unwrap().unwrap();
    assert_eq!(purged.request, serde_json::Value::Null);
    assert_eq!(
        purged.state,
        BookingState::Confirmed,
        "the booking itself stays"
    );
    assert_eq!(purged.pms_appointment_id.as_deref(), Some("A1"));
    assert_eq!(
        s.booking("r-2").await.unwrap().unwrap().request,
        request("r-2"),
        "a booking in flight keeps its request"
    );
    assert_eq!(
        s.purge_booking_requests(t0() + 1.second()).await.unwrap(),
        0
    );
    let debug = format!("{:?}", s.booking("r-2").await.unwrap().unwrap());
    assert!(!debug.contains("Zebediah"), "{debug}");
}
