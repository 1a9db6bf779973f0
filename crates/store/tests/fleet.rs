//! The fleet's counts per node and 5-minute slot, summed over nodes, pruned; on both backends.

// Not every suite uses every helper of the shared support module.
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp, ToSpan};
use secrecy::SecretString;
use serde_json::json;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{
    BookingState, BookingTransition, ConsentStatus, FleetCount, HealthRules, HorizonDays, Lease,
    LinkId, NewBooking, NewLink, ResyncEnd, Store, StoreError, SyncChanges, SyncError, fleet_slot,
};
use support::Ctx;

both_backends!(
    counts_add_up_per_slot_and_are_summed_over_nodes,
    old_slots_are_pruned,
    bad_input_is_refused_with_the_field_named,
    practices_by_health_are_counted_as_one_by_one,
    the_metrics_gauges_read_only_failing_links_and_the_oldest_publish,
    a_bulk_resync_is_worked_by_the_node_holding_each_practice_and_summed,
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

/// One practice of the health tests, and what a person reading the practice list's rules
/// expects of it.
struct Spec {
    name: &'static str,
    enabled: bool,
    /// Leased by a node (served); the others' leases are released once their state is written.
    leased: bool,
    error: bool,
    consent_withdrawn: bool,
    /// Hours since the last publish; `None`: never published.
    published_hours_ago: Option<i64>,
    flag: bool,
    /// Bookings, oldest first; `true` for a rejected one.
    bookings: &'static [bool],
    /// Expected: enabled and unhealthy by the rules (`RECENT` newest bookings, stale after 30
    /// minutes, unserved when linked before the rules' instant).
    unhealthy: bool,
}

/// A rejected booking among this many newest makes a practice unhealthy (in these tests).
const RECENT: u32 = 3;

const fn ok(name: &'static str) -> Spec {
    Spec {
        name,
        enabled: true,
        leased: true,
        error: false,
        consent_withdrawn: false,
        published_hours_ago: Some(0),
        flag: false,
        bookings: &[],
        unhealthy: false,
    }
}

fn specs() -> Vec<Spec> {
    vec![
        ok("healthy"),
        Spec {
            bookings: &[true, false, false, false],
            ..ok("rejected-before-the-recent-three")
        },
        Spec {
            error: true,
            unhealthy: true,
            ..ok("error")
        },
        Spec {
            consent_withdrawn: true,
            unhealthy: true,
            ..ok("consent")
        },
        Spec {
            published_hours_ago: None,
            unhealthy: true,
            ..ok("never-published")
        },
        Spec {
            published_hours_ago: Some(2),
            unhealthy: true,
            ..ok("stale")
        },
        Spec {
            flag: true,
            unhealthy: true,
            ..ok("flagged")
        },
        Spec {
            bookings: &[true, false, false],
            unhealthy: true,
            ..ok("rejected-recently")
        },
        Spec {
            leased: false,
            unhealthy: true,
            ..ok("unserved")
        },
        Spec {
            enabled: false,
            error: true,
            published_hours_ago: None,
            ..ok("disabled")
        },
        Spec {
            enabled: false,
            leased: false,
            ..ok("disabled-unleased")
        },
    ]
}

async fn lease_of(s: &Store, link: LinkId) -> Lease {
    s.held_leases("test-node")
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.lease.link_id == link)
        .expect("the link's lease")
        .lease
}

/// The specs' practices in the store, with their ids.
async fn seed(s: &Store, now: Timestamp) -> Vec<(LinkId, Spec)> {
    let mut out = Vec::new();
    for p in specs() {
        let link = s
            .create_link(NewLink {
                site_slug: SiteSlug::parse(&format!("s{}", p.name.replace('-', ""))).unwrap(),
                pms_api_key: SecretString::from("pms-key"),
                market_practice_id: p.name.to_owned(),
                market_practice_key: SecretString::from("practice-key"),
                enabled: true,
                horizon_days: HorizonDays::default(),
            })
            .await
            .unwrap();
        out.push((link.id, p));
    }
    s.acquire_leases("test-node", 100, Duration::from_secs(3600))
        .await
        .unwrap();
    for (id, p) in &out {
        let lease = lease_of(s, *id).await;
        {
            s.update_sync_state(
                &lease,
                SyncChanges {
                    last_publish_at: p
                        .published_hours_ago
                        .map(|h| now - SignedDuration::from_hours(h)),
                    last_error: p.error.then(|| {
                        Some(SyncError {
                            kind: "pms".into(),
                            message: "the PMS did not answer".into(),
                            at: now,
                        })
                    }),
                    consent: p.consent_withdrawn.then_some(ConsentStatus::Withdrawn),
                    health_flags: p.flag.then(|| ["pms_unreachable".to_owned()].into()),
                    ..SyncChanges::default()
                },
            )
            .await
            .unwrap();
            for (i, rejected) in p.bookings.iter().enumerate() {
                let booking = format!("{}-{i}", p.name);
                s.enqueue_booking(
                    &lease,
                    &NewBooking {
                        booking_id: booking.clone(),
                        link_id: *id,
                        market_practice_id: p.name.to_owned(),
                        request: json!({"bookingId": booking}),
                        received_at: now - SignedDuration::from_mins(10 - i as i64),
                    },
                )
                .await
                .unwrap();
                if *rejected {
                    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), now)
                        .await
                        .unwrap();
                    s.transition_booking(
                        &lease,
                        &booking,
                        BookingState::Received,
                        BookingTransition::Rejected {
                            reason: "slot taken".into(),
                        },
                        "re-check failed",
                        now,
                    )
                    .await
                    .unwrap();
                }
            }
        }
        if !p.leased {
            // Written while held, then let go: no node serves it.
            assert!(s.release_lease(&lease).await.unwrap());
        }
        if !p.enabled {
            s.update_link(
                *id,
                slotbridge_store::LinkChanges {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    }
    out
}

async fn practices_by_health_are_counted_as_one_by_one(ctx: Ctx) {
    let s = &ctx.store;
    let now = Timestamp::now();
    let practices = seed(s, now).await;
    let rules = HealthRules {
        stale_before: now - SignedDuration::from_mins(30),
        recent_bookings: RECENT,
        linked_before: now + SignedDuration::from_hours(1),
    };
    let counts = s.practice_health(&rules, None).await.unwrap();
    // By hand, from the specs.
    let disabled = practices.iter().filter(|(_, p)| !p.enabled).count() as u64;
    let unhealthy = practices.iter().filter(|(_, p)| p.unhealthy).count() as u64;
    assert_eq!(counts.total, practices.len() as u64);
    assert_eq!(counts.disabled, disabled);
    assert_eq!(counts.unhealthy, unhealthy, "{counts:?}");
    assert_eq!(counts.healthy(), 2, "{counts:?}");
    // And one by one: each practice counts where its spec says.
    for (id, p) in &practices {
        let one = s.practice_health(&rules, Some(*id)).await.unwrap();
        assert_eq!(one.total, 1, "{}", p.name);
        assert_eq!(one.disabled, u64::from(!p.enabled), "{}", p.name);
        assert_eq!(one.unhealthy, u64::from(p.unhealthy), "{}", p.name);
    }
    // A practice linked after the rules' instant is not yet counted as unserved.
    let early = HealthRules {
        linked_before: now - SignedDuration::from_hours(1),
        ..rules
    };
    let counts = s.practice_health(&early, None).await.unwrap();
    assert_eq!(counts.unhealthy, unhealthy - 1, "{counts:?}");
    // Nothing in the store: zeros.
    for (id, _) in &practices {
        s.delete_link(*id).await.unwrap();
    }
    let none = s.practice_health(&rules, None).await.unwrap();
    assert_eq!((none.total, none.disabled, none.unhealthy), (0, 0, 0));
}

async fn the_metrics_gauges_read_only_failing_links_and_the_oldest_publish(ctx: Ctx) {
    let s = &ctx.store;
    let now = Timestamp::now();
    let practices = seed(s, now).await;
    let gauges = s
        .link_gauges(now - SignedDuration::from_mins(30))
        .await
        .unwrap();
    // By hand: the metrics' own rules (a last error on any link; enabled with an error,
    // withdrawn consent, or a stale or missing publish).
    let mut expected: Vec<(LinkId, Option<String>, bool)> = practices
        .iter()
        .filter_map(|(id, p)| {
            let published = p.published_hours_ago.is_some();
            let unhealthy = p.enabled
                && (p.error
                    || p.consent_withdrawn
                    || !published
                    || p.published_hours_ago.is_some_and(|h| h > 0));
            (p.error || unhealthy).then(|| (*id, p.error.then(|| "pms".to_owned()), unhealthy))
        })
        .collect();
    expected.sort_by_key(|(id, _, _)| id.0);
    let got: Vec<(LinkId, Option<String>, bool)> = gauges
        .failing
        .iter()
        .map(|f| (f.link_id, f.error_kind.clone(), f.unhealthy))
        .collect();
    assert_eq!(got, expected);
    // The oldest publish among enabled links: the stale practice's, two hours ago.
    let oldest = gauges.oldest_publish.expect("an enabled link published");
    assert_eq!(
        oldest.as_microsecond(),
        (now - SignedDuration::from_hours(2)).as_microsecond()
    );
}

async fn a_bulk_resync_is_worked_by_the_node_holding_each_practice_and_summed(ctx: Ctx) {
    let s = &ctx.store;
    let now = Timestamp::now();
    let practices = seed(s, now).await;
    let ids: Vec<LinkId> = practices.iter().map(|(id, _)| *id).collect();
    let bulk = s
        .create_bulk(
            "resync_config",
            "attention=all",
            "test",
            ids.len() as u64,
            now,
        )
        .await
        .unwrap();
    let err = s
        .request_resyncs(bulk.id, "everything", &ids, now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("what"), "{err}");
    s.request_resyncs(bulk.id, "config", &ids, now)
        .await
        .unwrap();
    // The disabled practices fail at once.
    let disabled = practices.iter().filter(|(_, p)| !p.enabled).count() as u64;
    let b = s.bulk(bulk.id).await.unwrap().unwrap();
    assert_eq!(
        (b.done, b.failed, b.finished_at),
        (disabled, disabled, None)
    );
    assert!(b.failures.iter().all(|f| f.contains("disabled")), "{b:?}");
    // Each node sees the requests of the practices it holds: here every enabled served one.
    assert!(s.open_resyncs("another-node").await.unwrap().is_empty());
    let open = s.open_resyncs("test-node").await.unwrap();
    let served: BTreeSet<LinkId> = practices
        .iter()
        .filter(|(_, p)| p.enabled && p.leased)
        .map(|(id, _)| *id)
        .collect();
    let seen: BTreeSet<LinkId> = open.iter().map(|r| r.link_id).collect();
    assert_eq!(seen, served);
    assert!(
        open.iter()
            .all(|r| r.what == "config" && r.node_id.is_none())
    );
    let taken: Vec<_> = open.iter().map(|r| (r.bulk_id, r.link_id, now)).collect();
    assert_eq!(
        s.take_resyncs("test-node", &taken).await.unwrap(),
        served.len() as u64
    );
    // All done but one, which failed.
    let ended: Vec<ResyncEnd> = open
        .iter()
        .enumerate()
        .map(|(i, r)| ResyncEnd {
            bulk: r.bulk_id,
            link: r.link_id,
            error: (i == 0).then(|| "the PMS did not answer".to_owned()),
            days: (i != 0).then_some((5, 5)),
        })
        .collect();
    let at = now + 2.seconds();
    assert_eq!(
        s.finish_resyncs(at, &ended).await.unwrap(),
        served.len() as u64
    );
    // Finishing again changes nothing.
    assert_eq!(s.finish_resyncs(at, &ended).await.unwrap(), 0);
    let b = s.bulk(bulk.id).await.unwrap().unwrap();
    // The unserved practice still waits for a node: the bulk is not finished.
    assert_eq!(b.done, b.total - 1, "{b:?}");
    assert_eq!(b.failed, disabled + 1, "{b:?}");
    assert_eq!(b.finished_at, None);
    let rows = s.bulk_resyncs(bulk.id, 100).await.unwrap();
    assert_eq!(rows.len(), practices.len());
    let first = &rows[0];
    assert_eq!(first.practice_id, "unserved", "the open one comes first");
    assert!(first.finished_at.is_none() && first.node_id.is_none());
    let done = rows
        .iter()
        .find(|r| r.error.is_none() && r.finished_at.is_some());
    let done = done.expect("a done practice");
    assert_eq!((done.sent_days, done.total_days), (Some(5), Some(5)));
    assert_eq!(done.node_id.as_deref(), Some("test-node"));
    // Its node ends it too: the bulk is finished then.
    s.finish_resyncs(
        at,
        &[ResyncEnd {
            bulk: bulk.id,
            link: first.link_id,
            error: None,
            days: Some((1, 1)),
        }],
    )
    .await
    .unwrap();
    let b = s.bulk(bulk.id).await.unwrap().unwrap();
    assert_eq!(b.done, b.total);
    assert_eq!(
        b.finished_at.map(|t| t.as_microsecond()),
        Some(at.as_microsecond())
    );
}
