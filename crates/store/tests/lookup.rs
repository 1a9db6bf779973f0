//! Booking look-up within a link (by booking id, PMS appointment id or the patient's surname),
//! on both backends: the surname is found through its blind index, never stored in clear, found
//! again after a key rotation, indexed for bookings stored before the index existed, and
//! forgotten with the request; a key rotation reseals every booking request and re-indexes its
//! surname, so the old key can go.

// Shared with behaviour.rs; this suite uses only part of it.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use secrecy::SecretString;
use serde_json::json;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{
    BookingSearch, BookingState, BookingTransition, HorizonDays, Keyring, Lease, LinkId,
    NewBooking, NewLink, Resealed, Store, StoreError,
};
use sqlx::Connection;
use support::{Backend, Ctx};

both_backends!(
    bookings_are_found_by_booking_id_appointment_id_or_surname_within_their_link,
    the_surname_is_never_stored_in_clear_and_goes_with_the_purged_request,
    bookings_are_found_after_a_key_rotation_and_old_rows_are_indexed_when_the_store_opens,
    key_rotation_reseals_every_booking_request_in_resumable_batches_and_the_old_key_goes,
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

/// A booking request as the marketplace sends it (PMS API v1.9.0), for a patient `surname`.
fn booking(id: &str, link: LinkId, surname: Option<&str>, at: Timestamp) -> NewBooking {
    let mut request = json!({
        "bookingId": id.parse::<i64>().unwrap_or(1),
        "pmsResourceId": "R1",
        "pmsAppointmentTime": "2027-01-14T09:00:00",
        "patient": {"firstname": "Ada", "dob": "10-12-1985", "phone": "0400000000"},
    });
    if let Some(s) = surname {
        request["patient"]["lastname"] = json!(s);
    }
    NewBooking {
        booking_id: id.to_owned(),
        link_id: link,
        market_practice_id: "p-1".into(),
        request,
        received_at: at,
    }
}

/// Claim `id` (and every other due booking of the link) an hour after t0, and take it to
/// inserted, with PMS appointment `appointment`.
async fn insert(s: &Store, lease: &Lease, id: &str, appointment: &str) {
    let at = t0() + 1.hour();
    s.claim_link_bookings(lease, 100, Duration::from_secs(60), at)
        .await
        .unwrap();
    s.transition_booking(
        lease,
        id,
        BookingState::Received,
        BookingTransition::PatientResolved {
            pms_patient_id: "P1".into(),
            match_decision: json!({}),
        },
        "matched",
        at,
    )
    .await
    .unwrap();
    s.transition_booking(
        lease,
        id,
        BookingState::PatientResolved,
        BookingTransition::Inserted {
            pms_appointment_id: appointment.into(),
        },
        "in the diary",
        at,
    )
    .await
    .unwrap();
}

fn ids(found: &[slotbridge_store::Booking]) -> Vec<&str> {
    found.iter().map(|b| b.booking_id.as_str()).collect()
}

fn by_surname(s: &str) -> BookingSearch {
    BookingSearch {
        surname: Some(s.into()),
        ..BookingSearch::default()
    }
}

async fn bookings_are_found_by_booking_id_appointment_id_or_surname_within_their_link(ctx: Ctx) {
    let s = &ctx.store;
    let a = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let b = s.create_link(new_link("sbay", "p-2")).await.unwrap();
    let (la, lb) = (lease_of(s, a.id).await, lease_of(s, b.id).await);
    for (id, lease, surname, at) in [
        ("101", &la, Some("O'Brien"), t0()),
        ("102", &la, Some("OBRIEN "), t0() + 1.minute()),
        ("103", &la, Some("Lovelace"), t0() + 2.minutes()),
        ("104", &la, None, t0() + 3.minutes()),
        ("201", &lb, Some("O'Brien"), t0()),
    ] {
        assert!(
            s.enqueue_booking(lease, &booking(id, lease.link_id, surname, at))
                .await
                .unwrap()
        );
    }
    insert(s, &la, "103", "APT-9").await;

    // The surname, normalised: both spellings, newest first; the other link's patient is not
    // this link's.
    let found = s
        .find_bookings(a.id, &by_surname("obrien"), 50)
        .await
        .unwrap();
    assert_eq!(ids(&found), ["102", "101"]);
    assert_eq!(
        found[0].request["patient"]["lastname"], "OBRIEN ",
        "the bookings found are opened"
    );
    let found = s
        .find_bookings(b.id, &by_surname("O’Brien"), 50)
        .await
        .unwrap();
    assert_eq!(ids(&found), ["201"]);
    assert!(
        s.find_bookings(a.id, &by_surname("Brien"), 50)
            .await
            .unwrap()
            .is_empty(),
        "a surname is matched whole"
    );
    // The limit keeps the newest.
    let found = s
        .find_bookings(a.id, &by_surname("O'Brien"), 1)
        .await
        .unwrap();
    assert_eq!(ids(&found), ["102"]);

    // The booking id and the PMS appointment id, exactly, within the link.
    let by_id = BookingSearch {
        booking_id: Some("101".into()),
        ..BookingSearch::default()
    };
    assert_eq!(
        ids(&s.find_bookings(a.id, &by_id, 50).await.unwrap()),
        ["101"]
    );
    assert!(s.find_bookings(b.id, &by_id, 50).await.unwrap().is_empty());
    let by_appointment = BookingSearch {
        pms_appointment_id: Some("APT-9".into()),
        ..BookingSearch::default()
    };
    let found = s.find_bookings(a.id, &by_appointment, 50).await.unwrap();
    assert_eq!(ids(&found), ["103"]);
    assert_eq!(found[0].pms_appointment_id.as_deref(), Some("APT-9"));
    assert!(
        s.find_bookings(b.id, &by_appointment, 50)
            .await
            .unwrap()
            .is_empty()
    );

    // Every criterion given must hold.
    let both = BookingSearch {
        pms_appointment_id: Some("APT-9".into()),
        surname: Some("lovelace".into()),
        ..BookingSearch::default()
    };
    assert_eq!(
        ids(&s.find_bookings(a.id, &both, 50).await.unwrap()),
        ["103"]
    );
    let contradicting = BookingSearch {
        pms_appointment_id: Some("APT-9".into()),
        surname: Some("O'Brien".into()),
        ..BookingSearch::default()
    };
    assert!(
        s.find_bookings(a.id, &contradicting, 50)
            .await
            .unwrap()
            .is_empty()
    );

    // Nothing to look for is refused, naming the field.
    let err = s
        .find_bookings(a.id, &BookingSearch::default(), 50)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "search",
                ..
            }
        ),
        "{err}"
    );
    let err = s
        .find_bookings(a.id, &by_surname(" '- "), 50)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "surname",
                ..
            }
        ),
        "{err}"
    );
}

async fn the_surname_is_never_stored_in_clear_and_goes_with_the_purged_request(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    s.enqueue_booking(
        &lease,
        &booking("301", link.id, Some("Quixotic-Zeta"), t0()),
    )
    .await
    .unwrap();
    let dump = String::from_utf8_lossy(&ctx.raw_dump().await).to_lowercase();
    assert!(
        !dump.contains("quixotic"),
        "the surname is in the database in clear"
    );
    assert_eq!(
        ids(&s
            .find_bookings(link.id, &by_surname("quixotic zeta"), 50)
            .await
            .unwrap()),
        ["301"]
    );
    // Final, and past the retention: the request is purged, and its surname cannot be found.
    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    s.transition_booking(
        &lease,
        "301",
        BookingState::Received,
        BookingTransition::Rejected {
            reason: "slot gone".into(),
        },
        "rejected",
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.purge_booking_requests(t0() + 24.hours()).await.unwrap(),
        1
    );
    assert!(
        s.find_bookings(link.id, &by_surname("quixotic zeta"), 50)
            .await
            .unwrap()
            .is_empty(),
        "a purged booking is not found by its patient's surname"
    );
    let by_id = BookingSearch {
        booking_id: Some("301".into()),
        ..BookingSearch::default()
    };
    let found = s.find_bookings(link.id, &by_id, 50).await.unwrap();
    assert_eq!(ids(&found), ["301"], "but still by its id");
    assert_eq!(found[0].request, json!(null));
}

/// Run `sql` with the text `binds` on the test's database, outside the store.
async fn raw(ctx: &Ctx, sql: &'static str, binds: &[&str]) {
    match ctx.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url).await.unwrap();
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url).await.unwrap();
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.execute(&mut c).await.unwrap();
        }
    }
}

/// Every booking's request as stored, by booking id, read outside the store.
async fn stored_requests(ctx: &Ctx) -> std::collections::BTreeMap<String, String> {
    let sql = "SELECT booking_id, request FROM bookings";
    let rows: Vec<(String, String)> = match ctx.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
        }
    };
    rows.into_iter().collect()
}

/// Set `surname_hash` back to NULL for every booking: as stored before migration 0012.
async fn unindex(ctx: &Ctx) {
    raw(ctx, "UPDATE bookings SET surname_hash = NULL", &[]).await;
}

async fn bookings_are_found_after_a_key_rotation_and_old_rows_are_indexed_when_the_store_opens(
    ctx: Ctx,
) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    s.enqueue_booking(&lease, &booking("401", link.id, Some("Hopper"), t0()))
        .await
        .unwrap();
    s.enqueue_booking(&lease, &booking("402", link.id, None, t0()))
        .await
        .unwrap();

    // A new master key: bookings indexed under the old one are still found, new ones too.
    let (both, _) = ctx.rotation_keyrings();
    let rotated = Store::open(&ctx.url, Keyring::parse(&both).unwrap())
        .await
        .unwrap();
    let lease = lease_of(&rotated, link.id).await;
    rotated
        .enqueue_booking(
            &lease,
            &booking("403", link.id, Some("hopper"), t0() + 1.minute()),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&rotated
            .find_bookings(link.id, &by_surname("HOPPER"), 50)
            .await
            .unwrap()),
        ["403", "401"]
    );

    // Rows stored before the index existed are indexed when the store opens.
    rotated.close().await;
    s.close().await;
    unindex(&ctx).await;
    let reopened = Store::open(&ctx.url, Keyring::parse(&both).unwrap())
        .await
        .unwrap();
    assert_eq!(
        ids(&reopened
            .find_bookings(link.id, &by_surname("Hopper"), 50)
            .await
            .unwrap()),
        ["403", "401"]
    );
    let by_id = BookingSearch {
        booking_id: Some("402".into()),
        ..BookingSearch::default()
    };
    assert_eq!(
        ids(&reopened.find_bookings(link.id, &by_id, 50).await.unwrap()),
        ["402"],
        "a booking without a surname is found by its id"
    );
    reopened.close().await;
}

async fn key_rotation_reseals_every_booking_request_in_resumable_batches_and_the_old_key_goes(
    ctx: Ctx,
) {
    // 1,050 bookings under k1 (three batches of the rotation's 500), one stored in clear (as
    // before requests were sealed) and one purged.
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    let ids: Vec<String> = (1000..2050).map(|n| n.to_string()).collect();
    for id in &ids {
        s.enqueue_booking(&lease, &booking(id, link.id, Some("Hopper"), t0()))
            .await
            .unwrap();
    }
    for id in ["5001", "5002"] {
        s.enqueue_booking(&lease, &booking(id, link.id, Some("Hopper"), t0()))
            .await
            .unwrap();
    }
    let clear = booking("5001", link.id, Some("Hopper"), t0()).request;
    raw(
        &ctx,
        "UPDATE bookings SET request = $1 WHERE booking_id = $2",
        &[&clear.to_string(), "5001"],
    )
    .await;
    raw(
        &ctx,
        "UPDATE bookings SET request = 'null', surname_hash = '' WHERE booking_id = $1",
        &["5002"],
    )
    .await;

    // k2 appended; a booking made since is sealed with it already.
    let (both, only_new) = ctx.rotation_keyrings();
    let rotated = Store::open(&ctx.url, Keyring::parse(&both).unwrap())
        .await
        .unwrap();
    let lease = lease_of(&rotated, link.id).await;
    rotated
        .enqueue_booking(&lease, &booking("5003", link.id, Some("Hopper"), t0()))
        .await
        .unwrap();

    // A rotation interrupted in its second batch (a request it cannot open: sealed with a
    // key the keyring does not have) keeps the first batch resealed...
    let kept = stored_requests(&ctx).await["1600"].clone();
    raw(
        &ctx,
        "UPDATE bookings SET request = 'sealed:v1:k0:AAAA:AAAA' WHERE booking_id = $1",
        &["1600"],
    )
    .await;
    let err = rotated.rotate_secrets().await.unwrap_err();
    support::assert_missing_key(&err, "k0");
    let stored = stored_requests(&ctx).await;
    assert!(
        stored["1499"].starts_with("sealed:v1:k2:"),
        "the first batch"
    );
    assert!(stored["1500"].starts_with("sealed:v1:k1:"), "the second");
    // ...and running it again resumes: the rest (and the links' keys, first) resealed, each
    // once; a third run finds nothing to do.
    raw(
        &ctx,
        "UPDATE bookings SET request = $1 WHERE booking_id = $2",
        &[&kept, "1600"],
    )
    .await;
    assert_eq!(
        rotated.rotate_secrets().await.unwrap(),
        Resealed {
            links: 0,
            booking_requests: 551
        },
        "the second run: 550 left under k1 and the one in clear (the first run resealed the link)"
    );
    assert_eq!(
        rotated.rotate_secrets().await.unwrap(),
        Resealed::default(),
        "idempotent"
    );
    let left: Vec<(String, String)> = stored_requests(&ctx)
        .await
        .into_iter()
        .filter(|(_, r)| r != "null" && !r.starts_with("sealed:v1:k2:"))
        .collect();
    assert_eq!(left, [], "requests not sealed with k2");
    rotated.close().await;
    s.close().await;

    // k1 removed: the store opens, every request opens, and the surname is found.
    let new_only = Store::open(&ctx.url, Keyring::parse(&only_new).unwrap())
        .await
        .unwrap();
    for id in ids.iter().map(String::as_str).chain(["5001", "5003"]) {
        let b = new_only.booking(id).await.unwrap().unwrap();
        assert_eq!(
            b.request,
            booking(id, link.id, Some("Hopper"), t0()).request,
            "booking {id}"
        );
    }
    assert_eq!(
        new_only.booking("5002").await.unwrap().unwrap().request,
        json!(null),
        "a purged request stays purged"
    );
    let found = new_only
        .find_bookings(link.id, &by_surname("hopper"), 5000)
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        ids.len() + 2,
        "found by surname under k2 alone"
    );
    new_only.close().await;

    // A request left sealed with a removed key stops the store at start, naming the key.
    raw(
        &ctx,
        "UPDATE bookings SET request = 'sealed:v1:k1:AAAA:AAAA' WHERE booking_id = $1",
        &["1600"],
    )
    .await;
    let err = Store::open(&ctx.url, Keyring::parse(&only_new).unwrap())
        .await
        .unwrap_err();
    support::assert_missing_key(&err, "k1");
}
