//! The store's behaviour, one suite run against both SQLite and PostgreSQL.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use jiff::civil::{Date, date};
use jiff::{Timestamp, ToSpan};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{
    BookingState, BookingTransition, ConfigHashKind, ConsentStatus, ContentHash, HorizonDays,
    Keyring, Lease, LinkChanges, LinkId, ListFilter, ListQuery, NewAuditEntry, NewBooking, NewLink,
    NewMarketRequest, PublishItem, RequestState, Resealed, SetupFindings, Store, StoreError,
    SyncChanges, SyncError,
};
use support::Ctx;

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_across_calls() {
    let keys = Keyring::parse(&support::one_key()).unwrap();
    let s = Store::open("sqlite::memory:", keys).await.unwrap();
    assert_eq!(s.backend_name(), "sqlite");
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    for _ in 0..3 {
        assert!(s.link(link.id).await.unwrap().is_some());
    }
}

both_backends!(
    link_crud_and_secrets_round_trip,
    secrets_are_not_stored_in_plaintext,
    one_enabled_link_per_practice,
    practice_change_bumps_generation_and_forgets_publish_state,
    publish_hashes_resend_only_changes,
    config_hashes_are_recorded_per_kind,
    days_beyond_a_shrunk_horizon_are_found_and_forgotten,
    sync_state_records_progress_and_errors,
    requests_and_payloads_are_idempotent,
    booking_outbox_moves_by_compare_and_set_and_logs_events,
    booking_claims_belong_to_a_node_and_an_epoch,
    concurrent_claimers_never_share_a_booking,
    leases_are_exclusive_and_expired_ones_are_taken_over,
    links_no_node_holds_are_reported_unserved,
    a_disabled_link_with_bookings_in_flight_is_still_leased,
    concurrent_nodes_split_links_without_overlap,
    renewal_keeps_every_lease_while_fenced_writes_run,
    key_rotation_reseals_every_secret,
    heartbeats_list_nodes,
    bad_input_is_refused_with_the_field_named,
    names_setup_findings_and_freshness_are_kept_with_the_sync_state,
    the_practice_list_searches_filters_and_pages_in_attention_order,
    every_practice_appears_once_across_pages_in_attention_order,
    the_audit_log_and_bulk_progress_are_stored,
);

const PMS_KEY: &str = "pms-key-Zq7tXv93-plaintext";
const PRACTICE_KEY: &str = "practice-key-Hw4nB8c1-plaintext";

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid instant")
}

fn new_link(slug: &str, practice: &str) -> NewLink {
    NewLink {
        site_slug: SiteSlug::parse(slug).expect("valid slug"),
        pms_api_key: SecretString::from(format!("{PMS_KEY}-{practice}")),
        market_practice_id: practice.to_owned(),
        market_practice_key: SecretString::from(format!("{PRACTICE_KEY}-{practice}")),
        enabled: true,
        horizon_days: HorizonDays::default(),
    }
}

/// The lease on `link` of this test's node, taken (with every other free link's) if needed: a
/// worker's writes are fenced by it.
async fn lease_of(s: &Store, link: LinkId) -> Lease {
    s.acquire_leases(NODE, 1000, Duration::from_secs(3600))
        .await
        .unwrap();
    s.held_leases(NODE)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.lease.link_id == link)
        .expect("the link's lease")
        .lease
}

const NODE: &str = "test-node";

fn item(resource: &str, day: Date, hash: u64) -> PublishItem {
    PublishItem {
        resource_id: resource.to_owned(),
        day,
        hash: ContentHash(hash),
    }
}

async fn link_crud_and_secrets_round_trip(ctx: Ctx) {
    let s = &ctx.store;
    let a = s.create_link(new_link("sharbour", "p-100")).await.unwrap();
    assert_eq!(a.generation, 1);
    assert_eq!(a.horizon_days.get(), 30);
    assert!(a.enabled);
    assert_eq!(a.pms_api_key.expose_secret(), format!("{PMS_KEY}-p-100"));
    assert_eq!(
        a.market_practice_key.expose_secret(),
        format!("{PRACTICE_KEY}-p-100")
    );
    let debug = format!("{a:?}");
    assert!(
        !debug.contains(PMS_KEY) && !debug.contains(PRACTICE_KEY),
        "{debug}"
    );

    // A second location of the same PMS site.
    let b = s.create_link(new_link("sharbour", "p-200")).await.unwrap();
    let c = s.create_link(new_link("lother1", "p-300")).await.unwrap();
    let site = SiteSlug::parse("sharbour").unwrap();
    let ids: Vec<_> = s
        .links_for_site(&site)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, vec![a.id, b.id]);
    assert_eq!(s.list_links().await.unwrap().len(), 3);
    assert_eq!(
        s.link_for_practice("p-300").await.unwrap().map(|l| l.id),
        Some(c.id)
    );

    let updated = s
        .update_link(
            b.id,
            LinkChanges {
                horizon_days: Some(HorizonDays::new(90).unwrap()),
                pms_api_key: Some(SecretString::from("new-pms-key")),
                enabled: Some(false),
                ..LinkChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.horizon_days.get(), 90);
    assert!(!updated.enabled);
    assert_eq!(updated.generation, 1, "no practice change, same generation");
    assert_eq!(updated.pms_api_key.expose_secret(), "new-pms-key");
    assert_eq!(
        updated.market_practice_key.expose_secret(),
        format!("{PRACTICE_KEY}-p-200"),
        "untouched secret kept"
    );
    assert!(updated.updated_at >= updated.created_at);
    assert_eq!(
        s.link_for_practice("p-200").await.unwrap().map(|l| l.id),
        None
    );

    assert!(s.delete_link(c.id).await.unwrap());
    assert!(!s.delete_link(c.id).await.unwrap());
    assert!(s.link(c.id).await.unwrap().is_none());
    assert!(matches!(
        s.update_link(c.id, LinkChanges::default()).await,
        Err(StoreError::LinkNotFound(id)) if id == c.id
    ));
    assert!(matches!(
        s.sync_state(c.id).await,
        Err(StoreError::LinkNotFound(_))
    ));

    // Everything survives a restart.
    let reopened = Store::open(&ctx.url, Keyring::parse(&ctx.keyring_text).unwrap())
        .await
        .unwrap();
    let again = reopened.link(a.id).await.unwrap().expect("link persisted");
    assert_eq!(
        again.pms_api_key.expose_secret(),
        format!("{PMS_KEY}-p-100")
    );
    assert_eq!(again.site_slug.as_str(), "sharbour");
    reopened.close().await;
}

async fn secrets_are_not_stored_in_plaintext(ctx: Ctx) {
    let s = &ctx.store;
    for i in 0..3 {
        s.create_link(new_link("sharbour", &format!("p-{i}")))
            .await
            .unwrap();
    }
    let link = s.link_for_practice("p-1").await.unwrap().unwrap();
    s.update_link(
        link.id,
        LinkChanges {
            market_practice_key: Some(SecretString::from(format!("{PRACTICE_KEY}-rotated"))),
            ..LinkChanges::default()
        },
    )
    .await
    .unwrap();
    let dump = ctx.raw_dump().await;
    assert!(
        dump.windows(b"sharbour".len()).any(|w| w == b"sharbour"),
        "the dump sees the rows (non-secret slug found)"
    );
    for secret in [PMS_KEY, PRACTICE_KEY, "Zq7tXv93", "Hw4nB8c1"] {
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} found in the {:?} database",
            ctx.backend
        );
    }
}

async fn one_enabled_link_per_practice(ctx: Ctx) {
    let s = &ctx.store;
    let first = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let err = s.create_link(new_link("lother1", "p-1")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::PracticeAlreadyLinked { market_practice_id } if market_practice_id == "p-1"),
        "{err}"
    );
    // A disabled link to the same practice is allowed (e.g. prepared for a switch-over) ...
    let mut spare = new_link("lother1", "p-1");
    spare.enabled = false;
    let spare = s.create_link(spare).await.unwrap();
    // ... but cannot be enabled while the first one is.
    let err = s
        .update_link(
            spare.id,
            LinkChanges {
                enabled: Some(true),
                ..LinkChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PracticeAlreadyLinked { .. }),
        "{err}"
    );
    s.update_link(
        first.id,
        LinkChanges {
            enabled: Some(false),
            ..LinkChanges::default()
        },
    )
    .await
    .unwrap();
    let enabled = s
        .update_link(
            spare.id,
            LinkChanges {
                enabled: Some(true),
                ..LinkChanges::default()
            },
        )
        .await
        .unwrap();
    assert!(enabled.enabled);
    assert_eq!(
        s.link_for_practice("p-1").await.unwrap().map(|l| l.id),
        Some(spare.id)
    );
}

async fn practice_change_bumps_generation_and_forgets_publish_state(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-old")).await.unwrap();
    let day = date(2026, 12, 1);
    let items = vec![item("r1", day, 1), item("r2", day, 2)];
    s.record_published(&lease_of(s, link.id).await, 1, &items, t0())
        .await
        .unwrap();
    s.record_config_hash(
        &lease_of(s, link.id).await,
        1,
        ConfigHashKind::Resources,
        ContentHash(9),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(s.published_items(link.id).await.unwrap().len(), 2);

    // Same practice id: no change of generation.
    let same = s
        .update_link(
            link.id,
            LinkChanges {
                market_practice_id: Some("p-old".into()),
                ..LinkChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(same.generation, 1);
    assert_eq!(s.published_items(link.id).await.unwrap().len(), 2);

    let moved = s
        .update_link(
            link.id,
            LinkChanges {
                market_practice_id: Some("p-new".into()),
                ..LinkChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.generation, 2);
    assert_eq!(moved.market_practice_id, "p-new");
    assert!(s.published_items(link.id).await.unwrap().is_empty());
    assert_eq!(s.config_hashes(link.id).await.unwrap().resources, None);
    // Everything is "changed" again for the new practice.
    assert_eq!(
        s.changed_publish_items(link.id, &items).await.unwrap(),
        items
    );

    // A worker still publishing for generation 1 is refused and records nothing.
    let err = s
        .record_published(&lease_of(s, link.id).await, 1, &items, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleGeneration {
                expected: 1,
                current: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = s
        .record_config_hash(
            &lease_of(s, link.id).await,
            1,
            ConfigHashKind::Liveness,
            ContentHash(1),
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleGeneration { .. }), "{err}");
    assert!(s.published_items(link.id).await.unwrap().is_empty());
    s.record_published(&lease_of(s, link.id).await, 2, &items, t0())
        .await
        .unwrap();
    assert_eq!(s.published_items(link.id).await.unwrap().len(), 2);
}

async fn publish_hashes_resend_only_changes(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let other = s.create_link(new_link("sharbour", "p-2")).await.unwrap();
    let start = date(2026, 11, 25);
    // A whole 90-day horizon for 8 resources: 720 pairs, more than one batch.
    let horizon: Vec<PublishItem> = (0..8)
        .flat_map(|r| {
            (0..90).map(move |d| {
                item(
                    &format!("res-{r}"),
                    start.checked_add(d.days()).unwrap(),
                    (r * 1000 + d) as u64,
                )
            })
        })
        .collect();
    assert_eq!(
        s.changed_publish_items(link.id, &horizon)
            .await
            .unwrap()
            .len(),
        720,
        "nothing published yet: everything is new"
    );
    s.record_published(&lease_of(s, link.id).await, 1, &horizon, t0())
        .await
        .unwrap();
    assert!(
        s.changed_publish_items(link.id, &horizon)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.changed_publish_items(other.id, &horizon)
            .await
            .unwrap()
            .len(),
        720,
        "publish state is per link"
    );

    let mut next = horizon.clone();
    next[5].hash = ContentHash(u64::MAX); // full 64-bit range survives the round trip
    next[700].hash = ContentHash(42);
    next.push(item("res-new", start, 7));
    let changed = s.changed_publish_items(link.id, &next).await.unwrap();
    assert_eq!(
        changed,
        vec![next[5].clone(), next[700].clone(), next[720].clone()]
    );
    let later = t0() + 60.seconds();
    s.record_published(&lease_of(s, link.id).await, 1, &changed, later)
        .await
        .unwrap();
    assert!(
        s.changed_publish_items(link.id, &next)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = s.published_items(link.id).await.unwrap();
    assert_eq!(stored.len(), 721);
    let (max_item, at) = stored
        .iter()
        .find(|(i, _)| i.hash == ContentHash(u64::MAX))
        .expect("max hash stored");
    assert_eq!(max_item.resource_id, next[5].resource_id);
    assert_eq!(*at, later);

    // Repeated keys in one batch: the last one wins.
    s.record_published(
        &lease_of(s, link.id).await,
        1,
        &[item("res-0", start, 1), item("res-0", start, 2)],
        later,
    )
    .await
    .unwrap();
    assert!(
        s.changed_publish_items(link.id, &[item("res-0", start, 2)])
            .await
            .unwrap()
            .is_empty()
    );

    // Days in the past are forgotten.
    let removed = s
        .forget_published_before(link.id, start.checked_add(10.days()).unwrap())
        .await
        .unwrap();
    assert_eq!(removed, 8 * 10 + 1);
    assert_eq!(s.published_items(link.id).await.unwrap().len(), 721 - 81);
}

async fn days_beyond_a_shrunk_horizon_are_found_and_forgotten(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    let start = date(2026, 12, 1);
    let items: Vec<PublishItem> = (0..10)
        .flat_map(|d| ["r1", "r2"].map(|r| item(r, start.checked_add(d.days()).unwrap(), d as u64)))
        .collect();
    s.record_published(&lease, 1, &items, t0()).await.unwrap();
    let beyond = s
        .published_from(link.id, start.checked_add(7.days()).unwrap())
        .await
        .unwrap();
    assert_eq!(beyond.len(), 6, "days 7, 8 and 9 of two resources");
    assert!(
        beyond
            .iter()
            .all(|i| i.day >= start.checked_add(7.days()).unwrap())
    );
    assert_eq!(s.forget_published(&lease, &beyond).await.unwrap(), 6);
    assert_eq!(s.published_items(link.id).await.unwrap().len(), 14);
    assert!(
        s.published_from(link.id, start.checked_add(7.days()).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    // Fenced like every worker write.
    let stale = Lease {
        epoch: lease.epoch + 1,
        ..lease.clone()
    };
    assert!(matches!(
        s.forget_published(&stale, &items).await,
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(s.published_items(link.id).await.unwrap().len(), 14);
}

async fn config_hashes_are_recorded_per_kind(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let none = s.config_hashes(link.id).await.unwrap();
    assert_eq!(
        (none.resources, none.appointment_types, none.liveness),
        (None, None, None)
    );
    s.record_config_hash(
        &lease_of(s, link.id).await,
        1,
        ConfigHashKind::Resources,
        ContentHash(1),
        t0(),
    )
    .await
    .unwrap();
    s.record_config_hash(
        &lease_of(s, link.id).await,
        1,
        ConfigHashKind::AppointmentTypes,
        ContentHash(2),
        t0(),
    )
    .await
    .unwrap();
    s.record_config_hash(
        &lease_of(s, link.id).await,
        1,
        ConfigHashKind::Resources,
        ContentHash(3),
        t0(),
    )
    .await
    .unwrap();
    let h = s.config_hashes(link.id).await.unwrap();
    assert_eq!(h.resources, Some(ContentHash(3)));
    assert_eq!(h.appointment_types, Some(ContentHash(2)));
    assert_eq!(h.liveness, None);
    // No lease exists on a link that does not exist: the write is fenced off.
    assert!(matches!(
        s.record_config_hash(
            &Lease {
                link_id: LinkId::new(),
                node_id: NODE.into(),
                epoch: 1,
            },
            1,
            ConfigHashKind::Liveness,
            ContentHash(1),
            t0()
        )
        .await,
        Err(StoreError::Fenced { .. })
    ));
}

async fn sync_state_records_progress_and_errors(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let fresh = s.sync_state(link.id).await.unwrap();
    assert_eq!(fresh.last_pms_read_at, None);
    assert_eq!(fresh.last_error, None);
    assert_eq!(fresh.consent, ConsentStatus::Unknown);
    assert!(fresh.health_flags.is_empty());

    let err = SyncError {
        kind: "pms_unauthorized".into(),
        message: "the PMS refused the API key".into(),
        at: t0(),
    };
    let flags: BTreeSet<String> = ["pms_unreachable".to_owned()].into();
    let st = s
        .update_sync_state(
            &lease_of(s, link.id).await,
            SyncChanges {
                last_pms_read_at: Some(t0()),
                last_poll_at: Some(t0() + 1.second()),
                last_error: Some(Some(err.clone())),
                change_cursor: Some(Some("cursor-17".into())),
                consent: Some(ConsentStatus::Granted),
                health_flags: Some(flags.clone()),
                ..SyncChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(st.last_pms_read_at, Some(t0()));
    assert_eq!(st.last_poll_at, Some(t0() + 1.second()));
    assert_eq!(st.last_publish_at, None);
    assert_eq!(st.last_error, Some(err.clone()));
    assert_eq!(st.change_cursor.as_deref(), Some("cursor-17"));
    assert_eq!(st.consent, ConsentStatus::Granted);
    assert_eq!(st.health_flags, flags);

    // Untouched fields stay; explicit clears clear.
    let st = s
        .update_sync_state(
            &lease_of(s, link.id).await,
            SyncChanges {
                last_publish_at: Some(t0() + 2.seconds()),
                ..SyncChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(st.last_error, Some(err));
    assert_eq!(st.change_cursor.as_deref(), Some("cursor-17"));
    assert_eq!(st.last_publish_at, Some(t0() + 2.seconds()));
    let st = s
        .update_sync_state(
            &lease_of(s, link.id).await,
            SyncChanges {
                last_error: Some(None),
                change_cursor: Some(None),
                health_flags: Some(BTreeSet::new()),
                ..SyncChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(st.last_error, None);
    assert_eq!(st.change_cursor, None);
    assert!(st.health_flags.is_empty());
    assert_eq!(st.consent, ConsentStatus::Granted);
    assert_eq!(s.all_sync_states().await.unwrap(), vec![st]);
}

async fn requests_and_payloads_are_idempotent(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let req = NewMarketRequest {
        request_id: "req-1".into(),
        kind: "booking".into(),
        link_id: Some(link.id),
        received_at: t0(),
    };
    assert!(
        s.record_request(&lease_of(s, link.id).await, &req)
            .await
            .unwrap()
    );
    let duplicate = NewMarketRequest {
        kind: "something-else".into(),
        received_at: t0() + 5.seconds(),
        ..req.clone()
    };
    assert!(
        !s.record_request(&lease_of(s, link.id).await, &duplicate)
            .await
            .unwrap()
    );
    let logged = s.market_request("req-1").await.unwrap().unwrap();
    assert_eq!(logged.kind, "booking", "a duplicate changes nothing");
    assert_eq!(logged.received_at, t0());
    assert_eq!(logged.state, RequestState::Received);

    assert!(
        s.finish_request(
            &lease_of(s, link.id).await,
            "req-1",
            "accepted",
            Some("slot held"),
            t0() + 1.second()
        )
        .await
        .unwrap()
    );
    // A late or duplicated completion changes nothing.
    assert!(
        !s.finish_request(
            &lease_of(s, link.id).await,
            "req-1",
            "rejected",
            None,
            t0() + 9.seconds()
        )
        .await
        .unwrap()
    );
    assert!(
        !s.finish_request(
            &lease_of(s, link.id).await,
            "req-unknown",
            "accepted",
            None,
            t0()
        )
        .await
        .unwrap()
    );
    let done = s.market_request("req-1").await.unwrap().unwrap();
    assert_eq!(done.state, RequestState::Handled);
    assert_eq!(done.outcome.as_deref(), Some("accepted"));
    assert_eq!(done.detail.as_deref(), Some("slot held"));
    assert_eq!(done.handled_at, Some(t0() + 1.second()));

    for i in 2..5 {
        s.record_request(
            &lease_of(s, link.id).await,
            &NewMarketRequest {
                request_id: format!("req-{i}"),
                kind: "cancellation".into(),
                link_id: (i % 2 == 0).then_some(link.id),
                received_at: t0() + i.seconds(),
            },
        )
        .await
        .unwrap();
    }
    let recent: Vec<String> = s
        .recent_requests(None, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(recent, ["req-4", "req-3", "req-2"]);
    let for_link: Vec<String> = s
        .recent_requests(Some(link.id), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(for_link, ["req-4", "req-2", "req-1"]);

    assert!(s.mark_payload_seen("payload-a", t0()).await.unwrap());
    assert!(
        !s.mark_payload_seen("payload-a", t0() + 1.second())
            .await
            .unwrap()
    );
    assert!(
        s.mark_payload_seen("payload-b", t0() + 10.seconds())
            .await
            .unwrap()
    );
    assert_eq!(
        s.forget_payloads_before(t0() + 5.seconds()).await.unwrap(),
        1
    );
    assert!(
        s.mark_payload_seen("payload-a", t0() + 20.seconds())
            .await
            .unwrap()
    );
    assert!(
        !s.mark_payload_seen("payload-b", t0() + 20.seconds())
            .await
            .unwrap()
    );
}

fn new_booking(id: &str, link: LinkId, at: Timestamp) -> NewBooking {
    NewBooking {
        booking_id: id.to_owned(),
        link_id: link,
        market_practice_id: "p-1".into(),
        request: json!({"bookingId": id, "patient": {"firstName": "Ada"}}),
        received_at: at,
    }
}

/// The link's lease, taken by `node` once the previous holder let it go (released here: a
/// crash would let it expire instead).
async fn take_over(s: &Store, from: &Lease, node: &str) -> Lease {
    assert!(s.release_lease(from).await.unwrap());
    let got = s
        .acquire_leases(node, 1000, Duration::from_secs(3600))
        .await
        .unwrap();
    got.into_iter()
        .find(|h| h.lease.link_id == from.link_id)
        .expect("taken over")
        .lease
}

async fn booking_outbox_moves_by_compare_and_set_and_logs_events(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    assert!(
        s.enqueue_booking(&lease, &new_booking("b-1", link.id, t0()))
            .await
            .unwrap()
    );
    assert!(
        !s.enqueue_booking(&lease, &new_booking("b-1", link.id, t0() + 1.second()))
            .await
            .unwrap(),
        "a duplicated booking is not queued twice"
    );
    let b = s.booking("b-1").await.unwrap().unwrap();
    assert_eq!(b.state, BookingState::Received);
    assert_eq!(b.request["patient"]["firstName"], "Ada");
    assert_eq!(b.attempts, 0);
    assert_eq!(b.market_practice_id.as_deref(), Some("p-1"));

    let claimed = s
        .claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].claimed_by.as_deref(), Some(NODE));
    assert_eq!(claimed[0].claim_epoch, Some(lease.epoch));
    assert_eq!(claimed[0].attempts, 1);

    let decision = json!({"rule": "exact name and date of birth", "score": 1.0});
    let b = s
        .transition_booking(
            &lease,
            "b-1",
            BookingState::Received,
            BookingTransition::PatientResolved {
                pms_patient_id: "pat-9".into(),
                match_decision: decision.clone(),
            },
            "matched an existing patient",
            t0() + 1.second(),
        )
        .await
        .unwrap();
    assert_eq!(b.state, BookingState::PatientResolved);
    assert_eq!(b.pms_patient_id.as_deref(), Some("pat-9"));
    assert_eq!(b.match_decision, Some(decision));
    assert_eq!(b.claimed_by.as_deref(), Some(NODE), "still claimed mid-way");

    // Acting on a stale state loses, and nothing changes.
    let err = s
        .transition_booking(
            &lease,
            "b-1",
            BookingState::Received,
            BookingTransition::Rejected {
                reason: "duplicate".into(),
            },
            "stale worker",
            t0() + 2.seconds(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::BookingStateConflict {
                expected: BookingState::Received,
                found: BookingState::PatientResolved,
                ..
            }
        ),
        "{err}"
    );
    // No such edge.
    let err = s
        .transition_booking(
            &lease,
            "b-1",
            BookingState::PatientResolved,
            BookingTransition::Confirmed,
            "skipping insert",
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err}");
    assert!(matches!(
        s.transition_booking(
            &lease,
            "nope",
            BookingState::Received,
            BookingTransition::Confirmed,
            "",
            t0()
        )
        .await,
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(
        s.transition_booking(
            &lease,
            "nope",
            BookingState::Inserted,
            BookingTransition::Confirmed,
            "",
            t0()
        )
        .await,
        Err(StoreError::BookingNotFound(_))
    ));

    let b = s
        .transition_booking(
            &lease,
            "b-1",
            BookingState::PatientResolved,
            BookingTransition::Inserted {
                pms_appointment_id: "appt-5".into(),
            },
            "written to the diary",
            t0() + 3.seconds(),
        )
        .await
        .unwrap();
    assert_eq!(b.pms_appointment_id.as_deref(), Some("appt-5"));
    let b = s
        .transition_booking(
            &lease,
            "b-1",
            BookingState::Inserted,
            BookingTransition::Confirmed,
            "marketplace told",
            t0() + 4.seconds(),
        )
        .await
        .unwrap();
    assert_eq!(b.state, BookingState::Confirmed);
    assert_eq!(b.claimed_by, None, "terminal state releases the claim");
    assert_eq!(b.claim_epoch, None);
    assert_eq!(
        b.pms_patient_id.as_deref(),
        Some("pat-9"),
        "earlier facts kept"
    );
    assert!(
        s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0() + 1.hours())
            .await
            .unwrap()
            .is_empty(),
        "finished bookings are never claimed"
    );

    let events = s.booking_events("b-1").await.unwrap();
    let path: Vec<_> = events.iter().map(|e| (e.from, e.to)).collect();
    use BookingState::*;
    assert_eq!(
        path,
        vec![
            (None, Received),
            (Some(Received), PatientResolved),
            (Some(PatientResolved), Inserted),
            (Some(Inserted), Confirmed),
        ]
    );
    assert_eq!(events[1].reason, "matched an existing patient");
    assert_eq!(events[3].at, t0() + 4.seconds());
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));

    // Rejection from the first state, with its reason; it must be claimed first.
    s.enqueue_booking(&lease, &new_booking("b-2", link.id, t0()))
        .await
        .unwrap();
    let reject = BookingTransition::Rejected {
        reason: "slot no longer free".into(),
    };
    let err = s
        .transition_booking(&lease, "b-2", Received, reject.clone(), "unclaimed", t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ClaimLost { .. }), "{err}");
    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    let r = s
        .transition_booking(
            &lease,
            "b-2",
            Received,
            reject,
            "re-check failed",
            t0() + 1.second(),
        )
        .await
        .unwrap();
    assert_eq!(r.state, Rejected);
    assert_eq!(r.reject_reason.as_deref(), Some("slot no longer free"));

    // Inserted, and the marketplace no longer waits for it: its own terminal state.
    s.enqueue_booking(&lease, &new_booking("b-3", link.id, t0()))
        .await
        .unwrap();
    s.claim_link_bookings(&lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    for (from, t) in [
        (
            Received,
            BookingTransition::PatientResolved {
                pms_patient_id: "pat-1".into(),
                match_decision: json!({}),
            },
        ),
        (
            PatientResolved,
            BookingTransition::Inserted {
                pms_appointment_id: "appt-7".into(),
            },
        ),
        (Inserted, BookingTransition::Gone),
    ] {
        s.transition_booking(&lease, "b-3", from, t, "step", t0())
            .await
            .unwrap();
    }
    let gone = s.booking("b-3").await.unwrap().unwrap();
    assert_eq!(gone.state, Gone);
    assert!(gone.state.is_terminal());
    assert_eq!(gone.pms_appointment_id.as_deref(), Some("appt-7"));
    assert_eq!(s.bookings_for_link(link.id, 10).await.unwrap().len(), 3);
    assert_eq!(s.bookings_in_flight(link.id).await.unwrap(), 0);
}

async fn booking_claims_belong_to_a_node_and_an_epoch(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let a = lease_of(s, link.id).await;
    s.enqueue_booking(&a, &new_booking("b-1", link.id, t0()))
        .await
        .unwrap();
    s.enqueue_booking(&a, &new_booking("b-later", link.id, t0() + 1.hours()))
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);
    let first = s.claim_link_bookings(&a, 10, ttl, t0()).await.unwrap();
    assert_eq!(first.len(), 1, "b-later is not due yet");
    assert!(!s.has_due_bookings(&a, t0()).await.unwrap());
    assert!(
        s.claim_link_bookings(&a, 10, ttl, t0() + 10.seconds())
            .await
            .unwrap()
            .is_empty(),
        "a live claim is respected"
    );
    // Under the same lease, a claim that lapsed (its worker stopped) is taken again.
    let again = s
        .claim_link_bookings(&a, 10, ttl, t0() + 31.seconds())
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);

    // Another node takes the link over: a new epoch. The old claim is dead at once, whatever
    // its time, and the old holder can neither claim nor move the booking any more.
    let b = take_over(s, &a, "node-b").await;
    assert!(b.epoch > a.epoch, "{} then {}", a.epoch, b.epoch);
    assert!(s.has_due_bookings(&b, t0() + 32.seconds()).await.unwrap());
    let taken = s
        .claim_link_bookings(&b, 10, ttl, t0() + 32.seconds())
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].claimed_by.as_deref(), Some("node-b"));
    assert_eq!(taken[0].claim_epoch, Some(b.epoch));
    let fenced = s
        .transition_booking(
            &a,
            "b-1",
            BookingState::Received,
            BookingTransition::Rejected {
                reason: "stale".into(),
            },
            "stale node",
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(fenced, StoreError::Fenced { .. }), "{fenced}");
    for err in [
        s.claim_link_bookings(&a, 10, ttl, t0() + 2.hours())
            .await
            .unwrap_err(),
        s.retry_booking(&a, "b-1", BookingState::Received, t0(), "x", t0())
            .await
            .unwrap_err(),
        s.enqueue_booking(&a, &new_booking("b-9", link.id, t0()))
            .await
            .unwrap_err(),
        s.release_claims(&a).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    }
    assert!(s.booking("b-9").await.unwrap().is_none(), "nothing written");
    // The same node at the new epoch holds no claim made at the old one.
    let same_node_new_epoch = Lease {
        node_id: "node-b".into(),
        ..a.clone()
    };
    assert!(matches!(
        s.check_lease(&same_node_new_epoch).await,
        Err(StoreError::Fenced { .. })
    ));

    // A retryable failure: back off, claim released, error kept, event logged.
    let retry_at = t0() + 5.minutes();
    let r = s
        .retry_booking(
            &b,
            "b-1",
            BookingState::Received,
            retry_at,
            "PMS timeout",
            t0() + 33.seconds(),
        )
        .await
        .unwrap();
    assert_eq!(r.claimed_by, None);
    assert_eq!(r.claim_epoch, None);
    assert_eq!(r.next_attempt_at, retry_at);
    assert_eq!(r.last_error.as_deref(), Some("PMS timeout"));
    assert!(
        s.claim_link_bookings(&b, 10, ttl, t0() + 4.minutes())
            .await
            .unwrap()
            .is_empty()
    );
    let due = s
        .claim_link_bookings(&b, 10, ttl, t0() + 2.hours())
        .await
        .unwrap();
    let ids: Vec<_> = due.iter().map(|b| b.booking_id.as_str()).collect();
    assert_eq!(ids, ["b-1", "b-later"], "oldest due first");
    let err = s
        .retry_booking(&b, "b-1", BookingState::Inserted, retry_at, "x", t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BookingStateConflict { .. }),
        "{err}"
    );
    // A worker restarting under the same lease gives its claims up and resumes at once.
    assert_eq!(s.release_claims(&b).await.unwrap(), 2);
    assert_eq!(
        s.claim_link_bookings(&b, 10, ttl, t0() + 2.hours())
            .await
            .unwrap()
            .len(),
        2
    );
    let events = s.booking_events("b-1").await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].from, Some(BookingState::Received));
    assert_eq!(events[1].to, BookingState::Received);
    assert!(
        events[1].reason.contains("PMS timeout"),
        "{}",
        events[1].reason
    );
}

async fn concurrent_claimers_never_share_a_booking(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    const N: usize = 120;
    for i in 0..N {
        s.enqueue_booking(&lease, &new_booking(&format!("b-{i:03}"), link.id, t0()))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = s.clone();
        let lease = lease.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_link_bookings(&lease, 5, Duration::from_secs(600), t0())
                    .await
                    .expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|b| b.booking_id));
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(total, N);
    assert_eq!(seen.len(), N);
    for b in s.bookings_for_link(link.id, 1000).await.unwrap() {
        assert_eq!(b.attempts, 1, "{} claimed more than once", b.booking_id);
    }
}

fn links_of(held: &[slotbridge_store::HeldLease]) -> Vec<LinkId> {
    held.iter().map(|h| h.lease.link_id).collect()
}

async fn links_no_node_holds_are_reported_unserved(ctx: Ctx) {
    let s = &ctx.store;
    let mut links = Vec::new();
    for i in 0..5 {
        links.push(
            s.create_link(new_link("sharbour", &format!("p-{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut off = new_link("sharbour", "p-off");
    off.enabled = false;
    s.create_link(off).await.unwrap();
    let later = Timestamp::now() + jiff::SignedDuration::from_mins(1);
    let sorted = |mut v: Vec<LinkId>| {
        v.sort();
        v
    };
    let all = s.unserved_links(later).await.unwrap();
    assert_eq!(
        sorted(all),
        sorted(links.clone()),
        "every enabled link; the disabled one is not missed"
    );
    assert!(
        s.unserved_links(Timestamp::now() - jiff::SignedDuration::from_hours(1))
            .await
            .unwrap()
            .is_empty(),
        "links made after the given instant are not counted yet"
    );
    // A node at its capacity takes three; two are left unserved.
    let short = Duration::from_millis(600);
    let held = links_of(&s.acquire_leases("node-a", 3, short).await.unwrap());
    let left = s.unserved_links(later).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|l| !held.contains(l)));
    // The node goes silent: once its leases expire (the database's clock), all five again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        sorted(s.unserved_links(later).await.unwrap()),
        sorted(links)
    );
}

async fn leases_are_exclusive_and_expired_ones_are_taken_over(ctx: Ctx) {
    let s = &ctx.store;
    let mut links = Vec::new();
    for i in 0..10 {
        links.push(
            s.create_link(new_link("sharbour", &format!("p-{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut off = new_link("sharbour", "p-off");
    off.enabled = false;
    let off = s.create_link(off).await.unwrap().id;
    // Expiry is the database's clock: a short lease, and real time passing.
    let short = Duration::from_millis(700);
    let long = Duration::from_secs(60);

    let a = s.acquire_leases("node-a", 6, short).await.unwrap();
    assert_eq!(a.len(), 6);
    assert!(a.iter().all(|h| h.lease.epoch == 1 && h.enabled));
    let b = s.acquire_leases("node-b", 100, long).await.unwrap();
    assert_eq!(b.len(), 4, "only the free links");
    let (la, lb) = (links_of(&a), links_of(&b));
    assert!(la.iter().all(|l| !lb.contains(l)), "no link held twice");
    assert!(
        !la.contains(&off) && !lb.contains(&off),
        "disabled links without bookings in flight are not leased"
    );
    assert!(
        s.acquire_leases("node-a", 6, short)
            .await
            .unwrap()
            .is_empty(),
        "node-a is at capacity"
    );
    for h in &a {
        assert_eq!(
            s.lease_holder(h.lease.link_id).await.unwrap(),
            Some(h.lease.clone())
        );
    }

    // node-b keeps renewing; node-a goes silent and its leases expire.
    assert_eq!(links_of(&s.renew_leases("node-b", long).await.unwrap()), lb);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(s.held_leases("node-a").await.unwrap().is_empty());
    // node-a wakes up: an expired lease is never renewed, even if nobody took it yet.
    assert!(s.renew_leases("node-a", short).await.unwrap().is_empty());
    for h in &a {
        assert!(matches!(
            s.check_lease(&h.lease).await,
            Err(StoreError::Fenced { .. })
        ));
    }
    let taken = s.acquire_leases("node-b", 100, long).await.unwrap();
    assert_eq!(
        links_of(&taken),
        la,
        "node-b takes over node-a's expired leases"
    );
    assert!(
        taken.iter().all(|h| h.lease.epoch == 2),
        "each take-over is a new epoch"
    );
    assert_eq!(s.held_leases("node-b").await.unwrap().len(), 10);
    // A renewal keeps the epoch.
    let renewed = s.renew_leases("node-b", long).await.unwrap();
    assert_eq!(renewed.len(), 10);
    assert!(
        renewed
            .iter()
            .all(|h| taken.iter().chain(&b).any(|t| t.lease == h.lease))
    );

    // A change of the link is seen by its holder as a new revision; disabling keeps the lease
    // (the worker finishes its bookings in flight, then releases it).
    let before = renewed
        .iter()
        .find(|h| h.lease.link_id == links[0])
        .unwrap()
        .clone();
    s.update_link(
        links[0],
        LinkChanges {
            enabled: Some(false),
            ..LinkChanges::default()
        },
    )
    .await
    .unwrap();
    let after = s.renew_leases("node-b", long).await.unwrap();
    let now0 = after.iter().find(|h| h.lease.link_id == links[0]).unwrap();
    assert_eq!(now0.lease, before.lease);
    assert!(now0.revision > before.revision);
    assert!(!now0.enabled);
    assert!(s.release_lease(&now0.lease).await.unwrap());
    assert!(
        !s.release_lease(&now0.lease).await.unwrap(),
        "a released lease is not released twice"
    );
    // A stale holder releases nothing.
    let stale = &a
        .iter()
        .find(|h| h.lease.link_id == links[1])
        .unwrap()
        .lease;
    assert!(!s.release_lease(stale).await.unwrap());
    assert_eq!(s.release_leases("node-b").await.unwrap(), 9);
    let c = s.acquire_leases("node-c", 100, long).await.unwrap();
    assert_eq!(c.len(), 9, "all enabled links are free again");
}

async fn a_disabled_link_with_bookings_in_flight_is_still_leased(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let lease = lease_of(s, link.id).await;
    s.enqueue_booking(&lease, &new_booking("b-1", link.id, t0()))
        .await
        .unwrap();
    s.update_link(
        link.id,
        LinkChanges {
            enabled: Some(false),
            ..LinkChanges::default()
        },
    )
    .await
    .unwrap();
    assert!(s.release_lease(&lease).await.unwrap());
    let again = s
        .acquire_leases("node-b", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        again.len(),
        1,
        "its booking in flight must still be answered"
    );
    assert!(!again[0].enabled);
    s.claim_link_bookings(&again[0].lease, 10, Duration::from_secs(60), t0())
        .await
        .unwrap();
    s.transition_booking(
        &again[0].lease,
        "b-1",
        BookingState::Received,
        BookingTransition::Rejected {
            reason: "disabled".into(),
        },
        "link disabled",
        t0(),
    )
    .await
    .unwrap();
    assert!(s.release_lease(&again[0].lease).await.unwrap());
    assert!(
        s.acquire_leases("node-c", 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "nothing in flight: a disabled link is not leased"
    );
}

async fn concurrent_nodes_split_links_without_overlap(ctx: Ctx) {
    let s = &ctx.store;
    for i in 0..40 {
        s.create_link(new_link("sharbour", &format!("p-{i}")))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for n in 0..4 {
        let store = s.clone();
        tasks.push(tokio::spawn(async move {
            let node = format!("node-{n}");
            let mut mine = Vec::new();
            for _ in 0..5 {
                mine.extend(
                    store
                        .acquire_leases(&node, 15, Duration::from_secs(300))
                        .await
                        .expect("acquire"),
                );
                tokio::task::yield_now().await;
            }
            (node, mine)
        }));
    }
    let mut holder = std::collections::HashMap::new();
    for t in tasks {
        let (node, mine) = t.await.unwrap();
        assert!(mine.len() <= 15, "{node} over capacity: {}", mine.len());
        for h in mine {
            if let Some(other) = holder.insert(h.lease.link_id, h.lease.clone()) {
                panic!("{} acquired by both {other:?} and {node}", h.lease.link_id);
            }
        }
    }
    assert_eq!(holder.len(), 40, "4 nodes x 15 cover all 40 links");
    for (link, lease) in holder {
        assert_eq!(s.lease_holder(link).await.unwrap(), Some(lease));
    }
}

/// A node renews its leases every quarter of the TTL while its workers' fenced writes run
/// without a pause: every renewal keeps every lease at its epoch (a renewal that waited until
/// the leases expired would find none), and no write is refused. More links than one renewal
/// chunk, so a renewal takes several statements.
async fn renewal_keeps_every_lease_while_fenced_writes_run(ctx: Ctx) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let s = &ctx.store;
    let n = slotbridge_store::RENEW_CHUNK_POSTGRES + 100;
    for i in 0..n {
        s.create_link(new_link("sharbour", &format!("p-{i}")))
            .await
            .unwrap();
    }
    let ttl = Duration::from_secs(3);
    let held = s
        .acquire_leases(NODE, u32::try_from(n).unwrap(), ttl)
        .await
        .unwrap();
    assert_eq!(held.len(), n);
    let leases: Arc<Vec<Lease>> = Arc::new(held.into_iter().map(|h| h.lease).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..8usize {
        let (store, leases, stop, writes) =
            (s.clone(), leases.clone(), stop.clone(), writes.clone());
        writers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::SeqCst) {
                let lease = &leases[i % leases.len()];
                let changes = SyncChanges {
                    last_poll_at: Some(Timestamp::now()),
                    ..SyncChanges::default()
                };
                if let Err(e) = store.update_sync_state(lease, changes).await {
                    panic!("a fenced write of a renewed lease was refused: {e}");
                }
                store.check_lease(lease).await.expect("the lease holds");
                writes.fetch_add(1, Ordering::Relaxed);
                i += 8;
            }
        }));
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..8 {
        tokio::time::sleep(ttl / 4).await;
        let began = std::time::Instant::now();
        let renewed = s.renew_leases(NODE, ttl).await.unwrap();
        slowest = slowest.max(began.elapsed());
        assert_eq!(
            renewed.len(),
            n,
            "every lease renewed (the renewal took {:?})",
            began.elapsed()
        );
        for (h, lease) in renewed.iter().zip(leases.iter()) {
            assert_eq!(&h.lease, lease, "renewed at the same epoch");
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("a writer failed");
    }
    let writes = writes.load(Ordering::Relaxed);
    assert!(writes > 0, "the writers wrote");
    eprintln!(
        "{:?}: {n} leases renewed 8 times among {writes} fenced writes; slowest renewal {slowest:?}",
        ctx.backend
    );
}

async fn key_rotation_reseals_every_secret(ctx: Ctx) {
    let s = &ctx.store;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.create_link(new_link("sharbour", &format!("p-{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let (both, only_new) = ctx.rotation_keyrings();

    // Without the old key the store refuses to start, naming the missing key.
    let err = Store::open(&ctx.url, Keyring::parse(&only_new).unwrap())
        .await
        .unwrap_err();
    support::assert_missing_key(&err, "k1");

    let rotated = Store::open(&ctx.url, Keyring::parse(&both).unwrap())
        .await
        .unwrap();
    // Old secrets still open; new ones are sealed with k2.
    let l0 = rotated.link(ids[0]).await.unwrap().unwrap();
    assert_eq!(l0.pms_api_key.expose_secret(), format!("{PMS_KEY}-p-0"));
    rotated
        .create_link(new_link("sharbour", "p-new"))
        .await
        .unwrap();
    assert_eq!(rotated.rotate_secrets().await.unwrap().links, 5);
    assert_eq!(
        rotated.rotate_secrets().await.unwrap(),
        Resealed::default(),
        "idempotent"
    );
    rotated.close().await;

    // Now k1 can be dropped.
    let new_only = Store::open(&ctx.url, Keyring::parse(&only_new).unwrap())
        .await
        .unwrap();
    let links = new_only.list_links().await.unwrap();
    assert_eq!(links.len(), 6);
    for l in &links {
        assert_eq!(
            l.pms_api_key.expose_secret(),
            format!("{PMS_KEY}-{}", l.market_practice_id)
        );
        assert_eq!(
            l.market_practice_key.expose_secret(),
            format!("{PRACTICE_KEY}-{}", l.market_practice_id)
        );
    }
    new_only.close().await;
    // And the old keyring alone no longer opens the store.
    assert!(
        Store::open(&ctx.url, Keyring::parse(&ctx.keyring_text).unwrap())
            .await
            .is_err()
    );
}

async fn heartbeats_list_nodes(ctx: Ctx) {
    let s = &ctx.store;
    s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    s.heartbeat("node-a").await.unwrap();
    let a_started = s.nodes().await.unwrap()[0].started_at;
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.heartbeat("node-b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.heartbeat("node-a").await.unwrap();
    s.acquire_leases("node-a", 5, Duration::from_secs(60))
        .await
        .unwrap();
    let nodes = s.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].node_id, "node-a", "most recently seen first");
    assert_eq!(nodes[0].started_at, a_started);
    assert!(nodes[0].last_seen_at > nodes[1].last_seen_at);
    assert_eq!(nodes[0].leases, 1);
    assert_eq!(nodes[1].leases, 0);
    assert_eq!(s.live_nodes(Duration::from_secs(10)).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.heartbeat("node-a").await.unwrap();
    assert_eq!(
        s.live_nodes(Duration::from_millis(200)).await.unwrap(),
        1,
        "node-b fell silent"
    );
    let b_seen = nodes[1].last_seen_at;
    assert_eq!(
        s.forget_nodes_before(b_seen + 1.millisecond())
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.nodes().await.unwrap().len(), 1);
}

async fn bad_input_is_refused_with_the_field_named(ctx: Ctx) {
    let s = &ctx.store;
    let mut blank = new_link("sharbour", "p-1");
    blank.pms_api_key = SecretString::from("  ");
    let err = s.create_link(blank).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "pms_api_key",
                ..
            }
        ),
        "{err}"
    );
    let err = s.create_link(new_link("sharbour", " ")).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "market_practice_id",
                ..
            }
        ),
        "{err}"
    );
    let err = HorizonDays::new(91).unwrap_err();
    assert!(err.to_string().contains("horizon_days"), "{err}");
    let nobody = Lease {
        link_id: LinkId::new(),
        node_id: NODE.into(),
        epoch: 1,
    };
    let err = s
        .record_request(
            &nobody,
            &NewMarketRequest {
                request_id: String::new(),
                kind: "booking".into(),
                link_id: None,
                received_at: t0(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "request_id",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        s.list_links().await.unwrap().is_empty(),
        "nothing half-written"
    );
    let err = Store::open(
        "mysql://localhost/x",
        Keyring::parse(&ctx.keyring_text).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedScheme { .. }), "{err}");
}

fn findings(errors: u32, warnings: u32, codes: &[&str]) -> SetupFindings {
    SetupFindings {
        errors,
        warnings,
        codes: codes.iter().map(|c| (*c).to_owned()).collect(),
    }
}

async fn names_setup_findings_and_freshness_are_kept_with_the_sync_state(ctx: Ctx) {
    let s = &ctx.store;
    let link = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    assert_eq!(link.display_name(), None);
    let lease = lease_of(s, link.id).await;
    let st = s
        .update_sync_state(
            &lease,
            SyncChanges {
                pms_practice_name: Some("Harbour Dental".into()),
                setup_findings: Some(findings(1, 2, &["stacking-off", "duration-mismatch"])),
                change_pending_since: Some(t0()),
                ..SyncChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        st.setup_findings,
        findings(1, 2, &["duration-mismatch", "stacking-off"])
    );
    assert_eq!(st.change_pending_since, Some(t0()));
    // A later change does not move the oldest one waiting.
    let st = s
        .update_sync_state(
            &lease,
            SyncChanges {
                change_pending_since: Some(t0() + 5.seconds()),
                ..SyncChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(st.change_pending_since, Some(t0()));
    assert_eq!(st.setup_findings.errors, 1, "untouched findings stay");
    let named = s.link(link.id).await.unwrap().unwrap();
    assert_eq!(named.pms_practice_name.as_deref(), Some("Harbour Dental"));
    assert_eq!(
        named.revision, link.revision,
        "a name is no change of the link"
    );
    let named = s
        .set_market_practice_name(link.id, Some("  Harbour Dental HE "))
        .await
        .unwrap();
    assert_eq!(
        named.market_practice_name.as_deref(),
        Some("Harbour Dental HE")
    );
    assert_eq!(named.display_name(), Some("Harbour Dental"));
    assert!(matches!(
        s.set_market_practice_name(link.id, Some(&"x".repeat(201)))
            .await,
        Err(StoreError::InvalidInput {
            field: "market_practice_name",
            ..
        })
    ));
    let cleared = s
        .set_market_practice_name(link.id, Some(" "))
        .await
        .unwrap();
    assert_eq!(cleared.market_practice_name, None);

    // Published 7 s after the oldest change: that is the freshness, and nothing waits.
    let f = s
        .record_freshness(&lease, t0() + 5.seconds(), t0() + 7.seconds())
        .await
        .unwrap();
    assert_eq!(f, jiff::SignedDuration::from_secs(7));
    let st = s.sync_state(link.id).await.unwrap();
    assert_eq!(st.change_pending_since, None);
    assert_eq!(st.last_freshness, Some(jiff::SignedDuration::from_secs(7)));
    for (i, secs) in [1, 2, 3].into_iter().enumerate() {
        let at = t0() + (60 * (i as i64 + 1)).seconds();
        s.record_freshness(&lease, at, at + secs.seconds())
            .await
            .unwrap();
    }
    let now = t0() + 10.minutes();
    assert_eq!(
        s.freshness_p99(link.id, now).await.unwrap(),
        Some((4, jiff::SignedDuration::from_secs(7)))
    );
    // A day later only the newer samples count; adding one forgets those older than a day.
    let later = t0() + 24.hours() + 90.seconds();
    assert_eq!(
        s.freshness_p99(link.id, later).await.unwrap(),
        Some((2, jiff::SignedDuration::from_secs(3)))
    );
    s.record_freshness(&lease, later, later + 1.seconds())
        .await
        .unwrap();
    assert_eq!(
        s.freshness_p99(link.id, later + 1.seconds()).await.unwrap(),
        Some((3, jiff::SignedDuration::from_secs(3)))
    );
    assert_eq!(
        s.freshness_p99(link.id, later + 72.hours()).await.unwrap(),
        None
    );
    // Fenced like every worker write.
    let other = take_over(s, &lease, "node-b").await;
    assert!(matches!(
        s.record_freshness(&lease, t0(), t0()).await,
        Err(StoreError::Fenced { .. })
    ));
    s.record_freshness(&other, t0(), t0()).await.unwrap();
}

/// Set what the list sorts by on `link`.
async fn shape(s: &Store, link: LinkId, name: &str, f: SetupFindings, pending: Option<Timestamp>) {
    s.update_sync_state(
        &lease_of(s, link).await,
        SyncChanges {
            pms_practice_name: Some(name.to_owned()),
            setup_findings: Some(f),
            change_pending_since: pending,
            ..SyncChanges::default()
        },
    )
    .await
    .unwrap();
}

fn query(search: &str, filter: ListFilter, offset: u64, limit: u64) -> ListQuery {
    ListQuery {
        search: search.to_owned(),
        filter,
        offset,
        limit,
    }
}

async fn the_practice_list_searches_filters_and_pages_in_attention_order(ctx: Ctx) {
    let s = &ctx.store;
    let healthy = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let warned = s.create_link(new_link("sfitzroy", "p-2")).await.unwrap();
    let broken = s.create_link(new_link("sbroken", "p-3")).await.unwrap();
    let waiting = s.create_link(new_link("swaiting", "p-4")).await.unwrap();
    let parked = s.create_link(new_link("sparked", "p-5")).await.unwrap();
    let off = s.create_link(new_link("soff", "p-6")).await.unwrap();
    shape(s, healthy.id, "Harbour Dental", findings(0, 0, &[]), None).await;
    shape(
        s,
        warned.id,
        "Fitzroy Dental",
        findings(0, 2, &["stacking-off"]),
        None,
    )
    .await;
    shape(
        s,
        broken.id,
        "Broken 100% Dental_",
        findings(2, 0, &["no-booking-reasons"]),
        None,
    )
    .await;
    shape(
        s,
        waiting.id,
        "Waiting Dental",
        findings(0, 0, &[]),
        Some(t0()),
    )
    .await;
    shape(s, parked.id, "Parked Dental", findings(0, 0, &[]), None).await;
    s.update_sync_state(
        &lease_of(s, parked.id).await,
        SyncChanges {
            last_error: Some(Some(SyncError {
                kind: "pms_key_revoked".into(),
                message: "revoked. Parked until fixed".into(),
                at: t0(),
            })),
            ..SyncChanges::default()
        },
    )
    .await
    .unwrap();
    for l in [&healthy, &warned, &broken, &waiting, &parked] {
        s.update_sync_state(
            &lease_of(s, l.id).await,
            SyncChanges {
                last_publish_at: Some(t0()),
                ..SyncChanges::default()
            },
        )
        .await
        .unwrap();
    }
    s.update_link(
        off.id,
        LinkChanges {
            enabled: Some(false),
            ..LinkChanges::default()
        },
    )
    .await
    .unwrap();
    s.set_market_practice_name(off.id, Some("Closed Clinic"))
        .await
        .unwrap();

    let all = s
        .list_practices(&query("", ListFilter::All, 0, 100))
        .await
        .unwrap();
    assert_eq!(all.total, 6);
    // Errors (2 setup errors; 1 last error), then warnings, then the oldest change waiting,
    // then by name; disabled last.
    assert_eq!(
        all.links,
        vec![
            broken.id, parked.id, warned.id, waiting.id, healthy.id, off.id
        ]
    );
    let page = s
        .list_practices(&query("", ListFilter::All, 2, 2))
        .await
        .unwrap();
    assert_eq!((page.total, page.links), (6, vec![warned.id, waiting.id]));
    let ids =
        |f: ListFilter| async move { s.list_practices(&query("", f, 0, 100)).await.unwrap().links };
    assert_eq!(
        ids(ListFilter::NeedsAttention).await,
        vec![broken.id, parked.id, warned.id, waiting.id]
    );
    assert_eq!(
        ids(ListFilter::Parked {
            kinds: vec!["pms_unauthorized".into(), "pms_key_revoked".into()]
        })
        .await,
        vec![parked.id]
    );
    assert_eq!(ids(ListFilter::Disabled).await, vec![off.id]);
    assert_eq!(
        ids(ListFilter::Finding("stacking-off".into())).await,
        vec![warned.id]
    );
    assert_eq!(ids(ListFilter::Finding("stacking".into())).await, vec![]);
    // Search: PMS name, marketplace name, site slug, practice id; case-insensitive; literal.
    for (q, want) in [
        ("fitzroy", vec![warned.id]),
        ("HARBOUR dental", vec![healthy.id]),
        ("closed clinic", vec![off.id]),
        ("sparked", vec![parked.id]),
        ("p-4", vec![waiting.id]),
        ("100%", vec![broken.id]),
        ("l_", vec![broken.id]),
        ("%", vec![broken.id]),
        ("nothing like it", vec![]),
    ] {
        let got = s
            .list_practices(&query(q, ListFilter::All, 0, 100))
            .await
            .unwrap();
        assert_eq!(got.links, want, "search {q:?}");
        assert_eq!(got.total, want.len() as u64, "search {q:?}");
    }
    let searched = s
        .list_practices(&query("dental", ListFilter::NeedsAttention, 0, 1))
        .await
        .unwrap();
    assert_eq!((searched.total, searched.links), (4, vec![broken.id]));
    assert!(matches!(
        s.list_practices(&query("", ListFilter::Finding("x%".into()), 0, 10))
            .await,
        Err(StoreError::InvalidInput {
            field: "finding",
            ..
        })
    ));
}

/// The attention key the list promises, from what each practice was given.
#[derive(Debug, Clone)]
struct Shaped {
    enabled: bool,
    errors: u32,
    warnings: u32,
    pending: Option<i64>,
    name: String,
}

fn attention_key(
    p: &Shaped,
) -> (
    bool,
    std::cmp::Reverse<u32>,
    std::cmp::Reverse<u32>,
    (bool, i64),
    String,
) {
    (
        !p.enabled,
        std::cmp::Reverse(p.errors),
        std::cmp::Reverse(p.warnings),
        (p.pending.is_none(), p.pending.unwrap_or(0)),
        p.name.to_lowercase(),
    )
}

async fn every_practice_appears_once_across_pages_in_attention_order(ctx: Ctx) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let s = ctx.store.clone();
    let practice = (
        0u32..3,
        0u32..3,
        proptest::option::of(0i64..4),
        "[a-c]{1,3}",
    );
    let strategy = (
        proptest::collection::vec(practice, 1..14),
        1u64..6,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    runner
        .run(&strategy, |(practices, per_page, some_disabled)| {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    for l in s.list_links().await.unwrap() {
                        s.delete_link(l.id).await.unwrap();
                    }
                    let mut shaped = Vec::new();
                    for (i, (errors, warnings, pending, name)) in practices.iter().enumerate() {
                        let link = s
                            .create_link(new_link("sprop", &format!("prop-{i}")))
                            .await
                            .unwrap();
                        shape(
                            &s,
                            link.id,
                            name,
                            findings(*errors, *warnings, &[]),
                            pending.map(|p| t0() + p.seconds()),
                        )
                        .await;
                        let enabled = !(some_disabled && i % 3 == 0);
                        if !enabled {
                            s.update_link(
                                link.id,
                                LinkChanges {
                                    enabled: Some(false),
                                    ..LinkChanges::default()
                                },
                            )
                            .await
                            .unwrap();
                        }
                        shaped.push((
                            link.id,
                            Shaped {
                                enabled,
                                errors: *errors,
                                warnings: *warnings,
                                pending: pending.map(|p| (t0() + p.seconds()).as_microsecond()),
                                name: name.clone(),
                            },
                        ));
                    }
                    let mut seen = Vec::new();
                    let mut offset = 0;
                    loop {
                        let page = s
                            .list_practices(&query("", ListFilter::All, offset, per_page))
                            .await
                            .unwrap();
                        prop_assert_eq!(page.total, shaped.len() as u64);
                        prop_assert!(page.links.len() as u64 <= per_page);
                        if page.links.is_empty() {
                            break;
                        }
                        offset += page.links.len() as u64;
                        seen.extend(page.links);
                    }
                    // Every practice exactly once.
                    let unique: HashSet<LinkId> = seen.iter().copied().collect();
                    prop_assert_eq!(unique.len(), seen.len());
                    prop_assert_eq!(seen.len(), shaped.len());
                    // In attention order.
                    let keys: Vec<_> = seen
                        .iter()
                        .map(|id| {
                            let p = &shaped.iter().find(|(l, _)| l == id).expect("listed").1;
                            attention_key(p)
                        })
                        .collect();
                    prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{:?}", keys);
                    Ok(())
                })
            })
        })
        .unwrap();
}

async fn the_audit_log_and_bulk_progress_are_stored(ctx: Ctx) {
    let s = &ctx.store;
    let a = s.create_link(new_link("sharbour", "p-1")).await.unwrap();
    let b = s.create_link(new_link("sfitzroy", "p-2")).await.unwrap();
    for (i, (action, links)) in [
        ("link.create", vec![a.id]),
        ("link.update", vec![b.id]),
        ("bulk.disable", vec![a.id, b.id]),
    ]
    .into_iter()
    .enumerate()
    {
        s.record_audit(
            &NewAuditEntry {
                actor: "console session 1a2b3c4d".into(),
                action: action.into(),
                links,
                detail: format!("step {i}"),
            },
            t0() + (i as i64).seconds(),
        )
        .await
        .unwrap();
    }
    let all = s.audit_log(None, None, 10).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["bulk.disable", "link.update", "link.create"]);
    assert_eq!(all[0].links, vec![a.id, b.id]);
    assert_eq!(all[2].at, t0());
    assert_eq!(all[0].actor, "console session 1a2b3c4d");
    let of_a: Vec<String> = s
        .audit_log(Some(a.id), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(of_a, ["bulk.disable", "link.create"]);
    let older = s.audit_log(None, Some(all[0].seq), 1).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].action, "link.update");

    let bulk = s
        .create_bulk("disable", "attention=all", "api token", 2, t0())
        .await
        .unwrap();
    assert_eq!(
        (bulk.total, bulk.done, bulk.failed, bulk.finished_at),
        (2, 0, 0, None)
    );
    s.update_bulk(bulk.id, 1, 1, &["p-1: refused".to_owned()], None)
        .await
        .unwrap();
    let failures: Vec<String> = (0..80).map(|i| format!("failure {i}")).collect();
    s.update_bulk(bulk.id, 2, 1, &failures, Some(t0() + 1.seconds()))
        .await
        .unwrap();
    let done = s.bulk(bulk.id).await.unwrap().unwrap();
    assert_eq!((done.done, done.failed), (2, 1));
    assert_eq!(done.failures.len(), slotbridge_store::BULK_FAILURES_KEPT);
    assert_eq!(done.finished_at, Some(t0() + 1.seconds()));
    assert_eq!(done.actor, "api token");
    assert_eq!(
        s.bulk(slotbridge_store::BulkId(uuid::Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );
}
