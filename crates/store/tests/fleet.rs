//! The fleet's counts per node and 5-minute slot, summed over nodes, pruned; on both backends.

// Not every suite uses every helper of the shared support module.
#[allow(dead_code)]
mod support;

use jiff::{Timestamp, ToSpan};
use slotbridge_store::{FleetCount, StoreError, fleet_slot};
use support::Ctx;

both_backends!(
    counts_add_up_per_slot_and_are_summed_over_nodes,
    old_slots_are_pruned,
    bad_input_is_refused_with_the_field_named,
);

fn t0() -> Timestamp {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect()
}

#[test]
fn an_instant_falls_in_the_5_minute_slot_that_starts_at_or_before_it() {
    assert_eq!(fleet_slot(t0()), t0());
    assert_eq!(fleet_slot(t0() + 4.minutes() + 59.seconds()), t0());
    assert_eq!(fleet_slot(t0() + 5.minutes()), t0() + 5.minutes());
    assert_eq!(fleet_slot(t0() - 1.second()), t0() - 5.minutes());
}

async fn counts_add_up_per_slot_and_are_summed_over_nodes(ctx: Ctx) {
    let s = &ctx.store;
    // node-a flushes twice within one slot, then once in the next; node-b once in the first.
    s.add_fleet_counts(
        "node-a",
        t0() + 1.minute(),
        &counts(&[("bookings.confirmed", 2), ("leases.taken", 1)]),
    )
    .await
    .unwrap();
    s.add_fleet_counts(
        "node-a",
        t0() + 4.minutes(),
        &counts(&[("bookings.confirmed", 3), ("workers.restarts", 0)]),
    )
    .await
    .unwrap();
    s.add_fleet_counts(
        "node-a",
        t0() + 6.minutes(),
        &counts(&[("bookings.confirmed", 1)]),
    )
    .await
    .unwrap();
    s.add_fleet_counts(
        "node-b",
        t0() + 2.minutes(),
        &counts(&[("bookings.confirmed", 10), ("bookings.rejected", 4)]),
    )
    .await
    .unwrap();
    let got = s.fleet_counts_since(t0()).await.unwrap();
    let want = vec![
        FleetCount {
            slot: t0(),
            series: "bookings.confirmed".into(),
            value: 15,
        },
        FleetCount {
            slot: t0(),
            series: "bookings.rejected".into(),
            value: 4,
        },
        FleetCount {
            slot: t0(),
            series: "leases.taken".into(),
            value: 1,
        },
        FleetCount {
            slot: t0() + 5.minutes(),
            series: "bookings.confirmed".into(),
            value: 1,
        },
    ];
    assert_eq!(got, want, "zero increases are not stored");
    // From a later instant: only the slots from the one it falls in.
    let later = s.fleet_counts_since(t0() + 7.minutes()).await.unwrap();
    assert_eq!(later, want[3..].to_vec());
    assert_eq!(s.fleet_nodes_since(t0()).await.unwrap(), 2);
    assert_eq!(s.fleet_nodes_since(t0() + 5.minutes()).await.unwrap(), 1);
}

async fn old_slots_are_pruned(ctx: Ctx) {
    let s = &ctx.store;
    for h in 0..50 {
        s.add_fleet_counts(
            "node-a",
            t0() + h.hours(),
            &counts(&[("bookings.confirmed", 1)]),
        )
        .await
        .unwrap();
    }
    let now = t0() + 49.hours() + 30.minutes();
    let gone = s
        .forget_fleet_counts_before(now - 48.hours())
        .await
        .unwrap();
    assert_eq!(
        gone, 2,
        "the slots at hours 0 and 1 are older than 48 hours"
    );
    let left = s.fleet_counts_since(t0()).await.unwrap();
    assert_eq!(left.len(), 48);
    assert_eq!(left[0].slot, t0() + 2.hours());
}

async fn bad_input_is_refused_with_the_field_named(ctx: Ctx) {
    let s = &ctx.store;
    let e = s
        .add_fleet_counts("", t0(), &counts(&[("bookings.confirmed", 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::InvalidInput {
                field: "node_id",
                ..
            }
        ),
        "{e:?}"
    );
    let long = "x".repeat(201);
    let e = s
        .add_fleet_counts("node-a", t0(), &counts(&[(long.as_str(), 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::InvalidInput {
                field: "series",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(s.fleet_counts_since(t0()).await.unwrap().is_empty());
}
