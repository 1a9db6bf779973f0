//! Reliability over real HTTP (issue 12): fenced leases with nodes whose clocks disagree, link
//! changes reaching the node that works the link, bookings in flight answered when a link is
//! disabled or moved, a revoked PMS key parking the link, and settings refused at start. Both
//! simulators and in-process nodes; each scenario runs as `<scenario>::on_sqlite` and
//! `<scenario>::on_postgres`.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::{Value, json};
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG};
use slotbridge_service::ctx::Ctx;
use slotbridge_service::node::{Node, StartError};
use slotbridge_store::LinkId;
use slotbridge_testkit::control::practitioner_of;
use slotbridge_testkit::{
    Call, Db, Sims, Stack, TestDb, booking_body, eventually, eventually_or, node_config, patient,
    recorded_calls,
};

/// The waits for the configuration and for bookable slots.
const LINKED: Duration = Duration::from_secs(60);

/// The marketplace confirms a booking by itself this long after the patient booked it.
const AUTO_CONFIRM: Duration = Duration::from_secs(20);

/// How long the tests wait for a booking's answer: past the auto-confirm, so a booking the
/// integration never answered shows as auto-confirmed instead of timing out.
const ANSWERED: Duration = Duration::from_secs(25);

/// The stack's nodes' polling interval and lease round (a quarter of the 4 s lease).
const POLL: Duration = Duration::from_millis(500);
const LEASE_ROUND: Duration = Duration::from_secs(1);

const TOKEN: &str = "reliability-admin-token-0123456789";
const PASSWORD: &str = "reliability console password";

// ---- helpers ---------------------------------------------------------------------------------

/// Up to `n` slots of `slots` that do not overlap in any practitioner's diary (a
/// practitioner's specialties share one diary), so each can be confirmed.
fn apart(slots: &[Value], n: usize) -> Vec<Value> {
    let mut chosen: Vec<Value> = Vec::new();
    for s in slots {
        let clash = chosen.iter().any(|c| {
            practitioner_of(c) == practitioner_of(s)
                && s["start"].as_str() < c["end"].as_str()
                && c["start"].as_str() < s["end"].as_str()
        });
        if !clash {
            chosen.push(s.clone());
        }
        if chosen.len() == n {
            break;
        }
    }
    chosen
}

/// The practice-local day of a slot (`YYYY-MM-DD`).
fn day_of(slot: &Value) -> String {
    slot["start"].as_str().expect("start")[..10].to_owned()
}

/// Patients book `slots` at `practice_id` all at once; `(booking id, slot, when booked)`.
async fn book_all(
    w: &Stack,
    practice_id: &str,
    slots: &[Value],
    who: &str,
) -> Vec<(String, Value, Instant)> {
    futures::future::join_all(slots.iter().enumerate().map(|(n, slot)| async move {
        let body = booking_body(
            slot,
            patient(
                &format!("{who}{n}"),
                "Reliability",
                "1975-06-07",
                &format!("0412 000 {n:03}"),
                &format!("{who}{n}@example.com"),
            ),
        );
        let id = w.book(practice_id, &body).await.to_string();
        (id, slot.clone(), Instant::now())
    }))
    .await
}

/// Each booking ends answered by the integration within the marketplace's 20 s: confirmed (not
/// by the 20 s rule) with exactly one appointment carrying its id, or rejected (not late) with
/// none. Returns the longest time from booking to the answer seen, and the outcomes.
async fn each_answered_within_20_s(
    w: &Stack,
    bookings: &[(String, Value, Instant)],
) -> (Duration, Vec<String>) {
    let mut slowest = Duration::ZERO;
    let mut outcomes = Vec::new();
    for (id, slot, booked) in bookings {
        let b = w.answered(id, ANSWERED).await;
        slowest = slowest.max(booked.elapsed().min(ANSWERED));
        let mine = w.appointments_of(DEMO_SLUG, day_of(slot), id).await;
        match b["status"].as_str() {
            Some("Confirmed") => {
                assert_eq!(
                    b["auto_confirmed"], false,
                    "booking {id} was confirmed by the marketplace's 20 s rule, not answered: {b}"
                );
                assert_eq!(
                    mine.len(),
                    1,
                    "confirmed booking {id}: one appointment: {mine:?}"
                );
            }
            Some("Rejected") => {
                assert_eq!(b["late_reject"], false, "booking {id} rejected late: {b}");
                assert!(mine.is_empty(), "rejected booking {id} has {mine:?}");
            }
            other => panic!("booking {id} ended {other:?}: {b}"),
        }
        outcomes.push(b["status"].as_str().unwrap_or_default().to_owned());
    }
    // Answered within 20 s (the flags above); what the test saw, polling, is at most a poll later.
    (slowest, outcomes)
}

/// When the marketplace's record file grew, sampled every 50 ms from `since`: a call's
/// position in the file tells when (at most 50 ms late) it was made.
struct RecordClock {
    since: Instant,
    samples: Arc<Mutex<Vec<(usize, Duration)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordClock {
    fn start(record: std::path::PathBuf) -> RecordClock {
        let since = Instant::now();
        // The calls made so far count as made at the start.
        let samples = Arc::new(Mutex::new(vec![(
            recorded_calls(&record).len(),
            Duration::ZERO,
        )]));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let samples = samples.clone();
            let stop = stop.clone();
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let n = recorded_calls(&record).len();
                    samples.lock().expect("samples").push((n, since.elapsed()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        RecordClock {
            since,
            samples,
            stop,
            task,
        }
    }

    /// When the call at `index` of the record file was first seen, since the start.
    fn seen_at(&self, index: usize) -> Option<Duration> {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .find(|(n, _)| *n > index)
            .map(|(_, at)| *at)
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
    }
}

/// Whether a marketplace call answers a booking (confirmInsert / rejectInsert).
fn answers_a_booking(c: &Call) -> bool {
    c.path.ends_with("/confirmInsert") || c.path.ends_with("/rejectInsert")
}

// ---- 1. clocks 30 s apart --------------------------------------------------------------------

/// Every 20 ms, the links each node works (`ctx.running()`), read twice in a row: a link counts
/// as worked by two nodes at once only when both show it in both reads (no hand-over, which
/// takes a lease round, fits between two reads microseconds apart).
/// The nodes watched, by name.
type Watched = Arc<Mutex<Vec<(String, Arc<Ctx>)>>>;

struct OverlapWatch {
    ctxs: Watched,
    samples: Arc<Mutex<usize>>,
    overlaps: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl OverlapWatch {
    fn start() -> OverlapWatch {
        let ctxs: Watched = Arc::default();
        let samples = Arc::new(Mutex::new(0));
        let overlaps: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (ctxs, samples, overlaps, stop) = (
                ctxs.clone(),
                samples.clone(),
                overlaps.clone(),
                stop.clone(),
            );
            async move {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let nodes = ctxs.lock().expect("ctxs").clone();
                    let read = || -> Vec<HashSet<LinkId>> {
                        nodes
                            .iter()
                            .map(|(_, c)| c.running().into_iter().collect())
                            .collect()
                    };
                    let (first, second) = (read(), read());
                    for i in 0..nodes.len() {
                        for j in i + 1..nodes.len() {
                            for id in &first[i] {
                                if second[i].contains(id)
                                    && first[j].contains(id)
                                    && second[j].contains(id)
                                {
                                    overlaps.lock().expect("overlaps").push(format!(
                                        "link {id} worked by {} and {} at {:?}",
                                        nodes[i].0,
                                        nodes[j].0,
                                        started.elapsed()
                                    ));
                                }
                            }
                        }
                    }
                    *samples.lock().expect("samples") += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        OverlapWatch {
            ctxs,
            samples,
            overlaps,
            stop,
            task,
        }
    }

    /// Watch this node too (a node started again is a new context).
    fn add(&self, name: &str, node: &Node) {
        self.ctxs
            .lock()
            .expect("ctxs")
            .push((name.to_owned(), node.ctx.clone()));
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let samples = *self.samples.lock().expect("samples");
        let overlaps = self.overlaps.lock().expect("overlaps").clone();
        (samples, overlaps)
    }
}

/// The links by node index, while waiting for `done`.
async fn wait_for_split(
    w: &Stack,
    what: &str,
    within: Duration,
    done: impl Fn(&[(usize, Vec<LinkId>)]) -> bool,
) {
    eventually(what, within, || async {
        let running = w.running();
        done(&running).then_some(())
    })
    .await;
}

fn count_on(running: &[(usize, Vec<LinkId>)], node: usize) -> usize {
    running
        .iter()
        .find(|(i, _)| *i == node)
        .map_or(0, |(_, l)| l.len())
}

async fn two_nodes_whose_clocks_differ_by_30_s_never_work_one_practice_at_once(mut w: Stack) {
    let started = Instant::now();
    let mut links: BTreeSet<LinkId> = BTreeSet::new();
    links.insert(w.first_link().await.parse().expect("link id"));
    for n in 1..4 {
        let p = w
            .listing(&format!("Harbour Dental {n}"))
            .expect("a listing");
        links.insert(w.link(&p).await.parse().expect("link id"));
    }
    // The second node's clock runs 30 s ahead.
    let mut skewed = w.config.clone();
    skewed.node_id = "skewed-node".into();
    skewed.clock_offset = SignedDuration::from_secs(30);
    let b = w.start_node_with(skewed).await;
    let ahead = w.node_at(b).ctx.now().duration_since(w.node().ctx.now());
    assert!(
        (ahead - SignedDuration::from_secs(30)).abs() < SignedDuration::from_secs(1),
        "the second node's clock is 30 s ahead: {ahead:?}"
    );
    let watch = OverlapWatch::start();
    let sampled = Instant::now();
    watch.add("test-node", w.node());
    watch.add("skewed-node", w.node_at(b));
    let even = |r: &[(usize, Vec<LinkId>)]| count_on(r, 0) == 2 && count_on(r, b) == 2;
    wait_for_split(&w, "the links split 2 and 2", Duration::from_secs(30), even).await;
    // Take-overs both ways: the skewed node stops, the other takes its links; it comes back
    // and gets its share; then the other stops and comes back.
    w.stop_node(b).await;
    wait_for_split(
        &w,
        "all links on the first node",
        Duration::from_secs(20),
        |r| count_on(r, 0) == 4,
    )
    .await;
    w.restart_node(b).await;
    watch.add("skewed-node (restarted)", w.node_at(b));
    wait_for_split(&w, "the links split again", Duration::from_secs(30), even).await;
    w.stop_node(0).await;
    wait_for_split(
        &w,
        "all links on the skewed node",
        Duration::from_secs(20),
        |r| count_on(r, b) == 4,
    )
    .await;
    w.restart_node(0).await;
    watch.add("test-node (restarted)", w.node());
    wait_for_split(
        &w,
        "the links split at the end",
        Duration::from_secs(30),
        even,
    )
    .await;
    let window = sampled.elapsed();
    let (samples, overlaps) = watch.finish().await;
    assert!(
        overlaps.is_empty(),
        "a practice was worked by both nodes at once ({} of {samples} samples): {overlaps:#?}",
        overlaps.len()
    );
    // Every link is worked by exactly one node at the end.
    let running = w.running();
    let mut worked: Vec<LinkId> = running.iter().flat_map(|(_, l)| l.clone()).collect();
    worked.sort();
    assert_eq!(
        worked,
        links.iter().copied().collect::<Vec<_>>(),
        "every link worked once: {running:?}"
    );
    eprintln!(
        "clock skew: {samples} samples over {window:?} (with 4 take-overs), no overlap; \
         test took {:?}",
        started.elapsed()
    );
}

// ---- 2. a link moved through node A while node B works it ------------------------------------

async fn a_link_changed_through_node_a_reaches_node_b_within_one_tick_and_its_bookings_end_answered(
    mut w: Stack,
) {
    let started = Instant::now();
    let (_day, slots) = w.linked_with_slots(LINKED, 4).await;
    let chosen = apart(&slots, 4);
    assert_eq!(chosen.len(), 4, "four slots apart: {slots:?}");
    let link = w.first_link().await;
    let link_id: LinkId = link.parse().expect("link id");
    let old = w.harbour().clone();
    // Node B, with its own User-Agent so the record tells who called.
    let b_agent = "slotbridge (node-b@slotbridge.example) DEV";
    let mut cfg = w.config.clone();
    cfg.node_id = "node-b".into();
    cfg.user_agent = b_agent.into();
    let b = w.start_node_with(cfg).await;
    // B takes the link over while A is down; A comes back and gets nothing (one link).
    w.stop_node(0).await;
    eventually("node B works the link", Duration::from_secs(20), || async {
        w.node_at(b).ctx.running().contains(&link_id).then_some(())
    })
    .await;
    w.restart_node(0).await;
    // Node B answers bookings: one booked and confirmed before the change.
    let warmup = book_all(&w, &old.practice_id, &chosen[..1], "Before").await;
    let (_, outcomes) = each_answered_within_20_s(&w, &warmup).await;
    assert_eq!(outcomes, ["Confirmed"], "node B confirms bookings");
    assert!(w.node_at(b).ctx.running().contains(&link_id));
    assert!(!w.node().ctx.running().contains(&link_id));

    // The new marketplace listing and a new PMS key.
    let new = w.listing("Harbour Dental (moved)").expect("listing");
    let new_pms_key = w.create_pms_key(DEMO_SLUG).await;
    let in_flight_slots = &chosen[1..];
    let clock = RecordClock::start(w.record().to_path_buf());
    // Patients book at the old practice, and at once the link is moved through node A.
    let in_flight = book_all(&w, &old.practice_id, in_flight_slots, "Moving").await;
    let changed_at = clock.since.elapsed();
    w.patch_link_at(
        0,
        &link,
        json!({
            "practice_id": new.practice_id,
            "practice_key": new.practice_key,
            "pms_api_key": new_pms_key,
        }),
    )
    .await;
    let patched_at = clock.since.elapsed();

    // Node B restarts its worker on the new practice (the first call naming it).
    let first_new = eventually(
        "node B works the new practice",
        Duration::from_secs(30),
        || async {
            recorded_calls(w.record())
                .iter()
                .position(|c| c.practice_id == new.practice_id)
        },
    )
    .await;
    let calls = recorded_calls(w.record());
    assert_eq!(
        calls[first_new].user_agent,
        b_agent,
        "node B, which works the link, moved it: {:?}",
        calls[first_new].line()
    );
    // The bookings in flight at the change end answered, within the marketplace's 20 s.
    let (slowest, outcomes) = each_answered_within_20_s(&w, &in_flight).await;

    // No call to the old practice from the restarted worker on; before it, only answers to
    // the bookings in flight once a lease round (and the step then running) has passed.
    let calls = recorded_calls(w.record());
    let old_calls: Vec<(usize, &Call)> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.practice_id == old.practice_id)
        .collect();
    let after_new: Vec<String> = old_calls
        .iter()
        .filter(|(i, _)| *i > first_new)
        .map(|(_, c)| c.line())
        .collect();
    assert!(
        after_new.is_empty(),
        "the old practice called after node B restarted on the new one: {after_new:?}"
    );
    let bound = LEASE_ROUND + POLL + Duration::from_secs(1);
    let mut last_use = Duration::ZERO;
    for (i, c) in &old_calls {
        let Some(at) = clock.seen_at(*i) else {
            continue;
        };
        if at <= changed_at || answers_a_booking(c) {
            continue;
        }
        let since_change = at.saturating_sub(patched_at);
        last_use = last_use.max(since_change);
        assert!(
            since_change <= bound,
            "node B still used the old practice {since_change:?} after the change: {}",
            c.line()
        );
    }
    // Only node B ever worked the link: node A made none of these calls.
    let by_a: Vec<String> = old_calls
        .iter()
        .filter(|(i, c)| {
            clock.seen_at(*i).is_some_and(|at| at > changed_at) && c.user_agent != b_agent
        })
        .map(|(i, c)| {
            format!(
                "{} by {:?} at {:?}",
                c.line(),
                c.user_agent,
                clock.seen_at(*i)
            )
        })
        .collect();
    assert!(
        by_a.is_empty(),
        "node A called the marketplace for a link it did not work: {by_a:?} (change at \
         {changed_at:?})"
    );
    clock.stop().await;
    let old_count = |w: &Stack| {
        recorded_calls(w.record())
            .iter()
            .filter(|c| c.practice_id == old.practice_id)
            .count()
    };
    let settled = old_count(&w);

    // The old PMS key is not used any more: the practice revokes it, and a desk change still
    // reaches the new practice, with no key error on the link.
    w.revoke_pms_key(DEMO_SLUG, DEMO_API_KEY).await;
    let snapshots = |w: &Stack| {
        recorded_calls(w.record())
            .iter()
            .filter(|c| {
                c.practice_id == new.practice_id && c.path.ends_with("/availability/snapshots")
            })
            .count()
    };
    let before = snapshots(&w);
    // (The desk may double-book: any slot's time makes a change.)
    w.desk_book(DEMO_SLUG, slots.last().expect("slot")).await;
    eventually(
        "the desk change reaches the new practice",
        Duration::from_secs(10),
        || async { (snapshots(&w) > before).then_some(()) },
    )
    .await;
    let summary = w.api_get(&format!("/api/practices/{link}")).await;
    assert!(
        !summary["last_error"]["kind"]
            .as_str()
            .is_some_and(|k| k.starts_with("pms_")),
        "the new PMS key works: {summary}"
    );
    assert_eq!(summary["link"]["practice_id"], new.practice_id.as_str());
    // Still nothing to the old practice, over several poll intervals.
    let grew = slotbridge_testkit::poll_until(POLL * 4, POLL / 2, || async {
        (old_count(&w) > settled).then_some(())
    })
    .await;
    assert!(grew.is_none(), "the old practice was called again");
    eprintln!(
        "link moved: old practice last polled/published {last_use:?} after the PATCH (bound \
         {bound:?}); bookings in flight {outcomes:?}, slowest answered {slowest:?} after \
         booking; test took {:?}",
        started.elapsed()
    );
}

// ---- 3. disabled with bookings in flight -----------------------------------------------------

async fn a_link_disabled_with_5_bookings_in_flight_answers_each_within_20_s(w: Stack) {
    let started = Instant::now();
    let (_day, slots) = w.linked_with_slots(LINKED, 5).await;
    let link = w.first_link().await;
    let chosen = apart(&slots, 5);
    assert_eq!(chosen.len(), 5, "five slots apart: {slots:?}");
    let practice = w.harbour().practice_id.clone();
    let in_flight = book_all(&w, &practice, &chosen, "Disabled").await;
    w.patch_link(&link, json!({"enabled": false})).await;
    let (slowest, outcomes) = each_answered_within_20_s(&w, &in_flight).await;
    assert!(
        slowest <= AUTO_CONFIRM,
        "answered {slowest:?} after booking"
    );
    // Then the disabled link's lease is let go.
    eventually(
        "the disabled link is worked by no one",
        Duration::from_secs(10),
        || async { w.node().ctx.running().is_empty().then_some(()) },
    )
    .await;
    eprintln!(
        "disabled with 5 in flight: {outcomes:?}, slowest seen answered {slowest:?} after \
         booking; test took {:?}",
        started.elapsed()
    );
}

/// The same while the worker is busy: a sync is reading a slow PMS when the patients book (the
/// marketplace's webhook waits in the worker's queue) and the link is disabled. The bookings
/// were made before the change, so they are in flight and must be answered.
async fn a_link_disabled_while_its_worker_is_busy_answers_the_bookings_waiting_at_the_marketplace(
    w: Stack,
) {
    let (_day, slots) = w.linked_with_slots(LINKED, 6).await;
    let link = w.first_link().await;
    let chosen = apart(&slots, 5);
    assert_eq!(chosen.len(), 5, "five slots apart: {slots:?}");
    let practice = w.harbour().practice_id.clone();
    // A desk change wakes the worker, whose sync then waits on a slow PMS.
    w.pms.sim().set_faults(slotbridge_pms_sim::Faults {
        latency_ms: 1500,
        ..Default::default()
    });
    w.desk_book(DEMO_SLUG, slots.last().expect("slot")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight = book_all(&w, &practice, &chosen, "Busy").await;
    w.patch_link(&link, json!({"enabled": false})).await;
    w.pms
        .sim()
        .set_faults(slotbridge_pms_sim::Faults::default());
    let (slowest, outcomes) = each_answered_within_20_s(&w, &in_flight).await;
    eprintln!("disabled while busy: {outcomes:?}, slowest seen answered {slowest:?}");
}

// ---- 4. a revoked PMS key --------------------------------------------------------------------

async fn a_revoked_pms_key_parks_the_link_until_a_new_key_is_set(w: Stack) {
    let started = Instant::now();
    let (day, slots) = w.linked_with_slots(LINKED, 2).await;
    let link = w.first_link().await;
    let practice = w.harbour().practice_id.clone();
    w.revoke_pms_key(DEMO_SLUG, DEMO_API_KEY).await;
    let revoked = Instant::now();
    // The node hears of it at its next PMS call: a change at the desk (its webhook wakes the
    // worker, which reads the PMS).
    w.desk_book(DEMO_SLUG, &slots[0]).await;
    let last = Mutex::new(Value::Null);
    let summary = eventually_or(
        "the link shows the revoked key",
        Duration::from_secs(10),
        || format!("the link: {}", last.lock().expect("last")),
        || async {
            let s = w.api_get(&format!("/api/practices/{link}")).await;
            *last.lock().expect("last") = s.clone();
            (s["last_error"]["kind"] == "pms_key_revoked").then_some(s)
        },
    )
    .await;
    let shown_after = revoked.elapsed();
    let message = summary["last_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("new key"),
        "the admin API says a new key is needed: {summary}"
    );
    // Parked: no request reaches the site any more, over several poll intervals, although the
    // desk keeps changing the diary (each change's webhook wakes the worker).
    let parked_at = w.pms_site_requests(DEMO_SLUG).await;
    let sampled = Instant::now();
    let mut grew = None;
    let mut changes = 0;
    while sampled.elapsed() < POLL * 8 {
        w.desk_book(DEMO_SLUG, &slots[changes % (slots.len() - 1)])
            .await;
        changes += 1;
        tokio::time::sleep(POLL / 2).await;
        let now = w.pms_site_requests(DEMO_SLUG).await;
        if now > parked_at {
            grew = Some(now);
            break;
        }
    }
    assert_eq!(
        grew, None,
        "the PMS site was still called after the link was parked ({parked_at} before)"
    );
    let quiet = sampled.elapsed();
    let (status, page) = w.console_page(&format!("/console/practices/{link}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("pms_key_revoked") && page.contains("new key"),
        "the console page says a new key is needed"
    );
    // A new key, set through the admin API, brings it back: a desk change reaches the
    // marketplace again.
    let key = w.create_pms_key(DEMO_SLUG).await;
    w.patch_link(&link, json!({"pms_api_key": key})).await;
    let slot = slots.last().expect("slot");
    w.desk_book(DEMO_SLUG, slot).await;
    let back = Instant::now();
    eventually(
        "the desk booking's slot is gone from the marketplace",
        Duration::from_secs(10),
        || async {
            let now = w.slots(&practice, &day).await;
            (!slotbridge_testkit::control::offers(&now, slot)).then_some(())
        },
    )
    .await;
    let back_after = back.elapsed();
    // The sync that published clears the error as it records its success (a moment after the
    // marketplace has the day).
    eventually("the error is cleared", Duration::from_secs(5), || async {
        let s = w.api_get(&format!("/api/practices/{link}")).await;
        s["last_error"].is_null().then_some(())
    })
    .await;
    eprintln!(
        "revoked key: shown after {shown_after:?}, no PMS request for {quiet:?} with \
         {changes} desk changes ({parked_at} in all), back {back_after:?} after the new key; test took {:?}",
        started.elapsed()
    );
}

// ---- 5. settings that would panic ------------------------------------------------------------

async fn settings_that_would_panic_are_refused_at_start_with_one_line(db: Db) {
    let Some(database) = TestDb::fresh(db) else {
        return;
    };
    let sims = Sims::builder().start().await.expect("simulators");
    let good = node_config(&sims, database.url(), "settings-test");
    for (field, config) in [
        (
            "poll_interval",
            slotbridge_service::node::NodeConfig {
                poll_interval: Duration::ZERO,
                ..good.clone()
            },
        ),
        (
            "lease_ttl",
            slotbridge_service::node::NodeConfig {
                lease_ttl: Duration::from_millis(10),
                ..good.clone()
            },
        ),
    ] {
        match Node::start(config, slotbridge_testkit::keyring()).await {
            Err(StartError::Settings(e)) => {
                assert_eq!(e.field, field);
                let line = e.to_string();
                assert!(
                    line.contains(field) && !line.contains('\n'),
                    "one line naming {field}: {line:?}"
                );
                let shown = StartError::Settings(e).to_string();
                assert_eq!(shown, line);
            }
            Err(other) => panic!("{field}: refused for another reason: {other}"),
            Ok(node) => {
                node.shutdown().await;
                panic!("a node started with an unusable {field}");
            }
        }
    }
    // The same database and simulators take a node with usable settings.
    let node = Node::start(good, slotbridge_testkit::keyring())
        .await
        .expect("a node with usable settings");
    node.shutdown().await;
}

// ---- 5. a practice no node can take ---------------------------------------------------------

/// The value of the unlabelled metric `name` on node `i`'s `/metrics` (with the admin token).
async fn metric(w: &Stack, i: usize, name: &str) -> Option<f64> {
    let mut req = w.http.get(w.api_at(i, "/metrics"));
    if let Some(t) = w.token() {
        req = req.bearer_auth(t);
    }
    let page = req.send().await.ok()?.text().await.ok()?;
    slotbridge_testkit::process::unlabelled_metric(&page, name)
}

/// The practices `GET /api/practices` shows as served by no node.
async fn unserved(w: &Stack) -> Vec<String> {
    w.api_get("/api/practices?per_page=500").await["items"]
        .as_array()
        .expect("practices")
        .iter()
        .filter(|p| {
            p["unhealthy"]
                .as_array()
                .is_some_and(|u| u.iter().any(|f| f == "not_served"))
        })
        .filter_map(|p| p["link"]["id"].as_str().map(str::to_owned))
        .collect()
}

async fn a_practice_no_node_can_take_is_shown_unserved_until_a_node_with_room_starts(mut w: Stack) {
    // One node that may work one link, and two practices linked.
    w.config.max_links = 1;
    w.config.lease_ttl = Duration::from_secs(1);
    w.start_node().await;
    let harbour = w.harbour().clone();
    w.link(&harbour).await;
    let annex = w.listing("Harbour Annex").expect("a second listing");
    w.link(&annex).await;
    let left = eventually_or(
        "one practice shown as served by no node",
        Duration::from_secs(15),
        String::new,
        || async {
            let u = unserved(&w).await;
            (u.len() == 1).then_some(u)
        },
    )
    .await;
    let link = &left[0];
    // The practice's findings say so, with the fix.
    let findings = w.api_get(&format!("/api/links/{link}/findings")).await;
    let f = findings
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "not-served")
        .unwrap_or_else(|| panic!("no not-served finding in {findings}"));
    assert_eq!(f["severity"], "error");
    assert!(f["fix"].as_str().unwrap_or_default().contains("max_links"));
    // The metrics and the console say so too.
    assert_eq!(
        metric(&w, 0, "slotbridge_node_at_capacity").await,
        Some(1.0)
    );
    assert_eq!(metric(&w, 0, "slotbridge_node_max_links").await, Some(1.0));
    eventually_or(
        "the unserved count in the metrics",
        Duration::from_secs(5),
        String::new,
        || async { (metric(&w, 0, "slotbridge_links_unserved").await == Some(1.0)).then_some(()) },
    )
    .await;
    let (status, page) = w.console_page("/console").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-finding=\"not-served\"") && page.contains("served by no node"),
        "the practice list says one practice is served by no node"
    );

    // A second node with room: every practice served, and nothing says otherwise.
    let mut second = w.config.clone();
    second.node_id = "second".into();
    w.start_node_with(second).await;
    eventually_or(
        "every practice served once a node with room runs",
        Duration::from_secs(15),
        String::new,
        || async { unserved(&w).await.is_empty().then_some(()) },
    )
    .await;
    eventually_or(
        "the metrics back to zero",
        Duration::from_secs(10),
        String::new,
        || async {
            (metric(&w, 0, "slotbridge_links_unserved").await == Some(0.0)
                && metric(&w, 0, "slotbridge_node_at_capacity").await == Some(0.0))
            .then_some(())
        },
    )
    .await;
    let (_, page) = w.console_page("/console").await;
    assert!(!page.contains("data-finding=\"not-served\""));
}

async fn unlinked_console_stack(db: Db) -> Option<Stack> {
    Stack::builder()
        .db(db)
        .nodes(0)
        .link(false)
        .admin(TOKEN, PASSWORD)
        .start()
        .await
}

// ---- the scenarios on both backends ----------------------------------------------------------

async fn stack(db: Db) -> Option<Stack> {
    Stack::builder().db(db).start().await
}

async fn recording_stack(db: Db) -> Option<Stack> {
    Stack::builder().db(db).record().start().await
}

async fn console_stack(db: Db) -> Option<Stack> {
    Stack::builder().db(db).admin(TOKEN, PASSWORD).start().await
}

/// `<scenario>::on_sqlite` and `<scenario>::on_postgres`, each on a stack made by `$make`.
macro_rules! scenarios {
    ($($name:ident on $make:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let w = super::$make(super::Db::Sqlite).await.expect("sqlite stack");
                super::$name(w).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(w) = super::$make(super::Db::Postgres).await {
                    super::$name(w).await;
                }
            }
        }
    )*};
}

scenarios!(
    two_nodes_whose_clocks_differ_by_30_s_never_work_one_practice_at_once on stack,
    a_link_changed_through_node_a_reaches_node_b_within_one_tick_and_its_bookings_end_answered
        on recording_stack,
    a_link_disabled_with_5_bookings_in_flight_answers_each_within_20_s on stack,
    a_revoked_pms_key_parks_the_link_until_a_new_key_is_set on console_stack,
    a_practice_no_node_can_take_is_shown_unserved_until_a_node_with_room_starts
        on unlinked_console_stack,
);

mod settings_that_would_panic_are_refused_at_start_with_one_line {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite() {
        super::settings_that_would_panic_are_refused_at_start_with_one_line(super::Db::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres() {
        super::settings_that_would_panic_are_refused_at_start_with_one_line(super::Db::Postgres)
            .await;
    }
}

/// The drain before a stop takes the bookings the marketplace still lists, not only the outbox.
mod a_link_disabled_while_its_worker_is_busy_answers_the_bookings_waiting_at_the_marketplace {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite() {
        let w = super::stack(super::Db::Sqlite).await.expect("sqlite stack");
        super::a_link_disabled_while_its_worker_is_busy_answers_the_bookings_waiting_at_the_marketplace(w).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres() {
        if let Some(w) = super::stack(super::Db::Postgres).await {
            super::a_link_disabled_while_its_worker_is_busy_answers_the_bookings_waiting_at_the_marketplace(w).await;
        }
    }
}
