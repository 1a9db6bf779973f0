//! Fenced leases, with the real `slotbridge` binary (issue 12's acceptance): `slotbridge run`
//! child processes against both simulators (served by this test process), on a shared SQLite
//! file and on a fresh PostgreSQL database.
//!
//! - A node paused (SIGSTOP) past its lease while bookings arrive: the other takes over, and
//!   once resumed the paused one is refused and stops working the link; every booking is
//!   answered exactly once, no patient is created twice.
//! - kill -9 inside each step of the booking pipeline (`SLOTBRIDGE_CRASH_AT`), then a restart
//!   without it: the booking is confirmed once, with one patient file.
//! - A node paused inside a fenced store write on PostgreSQL: the other still takes over.
//! - PostgreSQL unreachable for 10 s (a TCP proxy of the test refuses or stalls it): the
//!   workers stop within their lease, come back by themselves afterwards, and every lease is
//!   held by the node whose worker runs it.
//!
//! The checks go through the marketplace simulator (bookings, record file), the PMS (diary,
//! patient search, and a TCP proxy in front of it per node that notes what each node asked),
//! the nodes' admin API and the store's lease rows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use slotbridge_store::{BookingState, Lease, LinkId, Store};
use slotbridge_testkit::control::offers;
use slotbridge_testkit::db::TcpProxy;
use slotbridge_testkit::process::{
    Booked, Cluster, NodeProcess, NodeSpec, TestPatient, leases_match_workers, open_store,
};
use slotbridge_testkit::{Db, PgDatabase, Practice, TestDb, eventually_or};

/// The scenarios run one at a time: each starts several processes on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BIN: &str = env!("CARGO_BIN_EXE_slotbridge");
/// How long a node may take to answer `/readyz` after it was started.
const READY: Duration = Duration::from_secs(60);
/// The nodes' polling interval.
const POLL: Duration = Duration::from_millis(300);
/// The nodes' lease time-to-live, in seconds.
const TTL: u64 = 2;
/// How soon after a resume the calls a node had checked its fence for before it was stopped
/// have gone out.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// Wait until one of `nodes` holds `link`'s lease and its admin API says it works the link:
/// its index and the lease.
async fn worked_by(
    c: &Cluster,
    store: &Store,
    nodes: &[&NodeProcess],
    link: &str,
) -> (usize, Lease) {
    let id: LinkId = link.parse().expect("a link id");
    eventually_or(
        &format!("link {link} worked by a node"),
        Duration::from_secs(30),
        || c.logs(),
        || async {
            let lease = store.lease_holder(id).await.ok()??;
            let i = nodes.iter().position(|n| n.node_id == lease.node_id)?;
            let running = nodes[i].running_links(&c.http).await?;
            running.contains(link).then_some((i, lease))
        },
    )
    .await
}

/// The store's state of each booking agrees with the marketplace's answer, within 10 s: the
/// worker records the outcome right after the marketplace took it.
async fn assert_store_agrees(c: &Cluster, store: &Store, p: &Practice, made: &[Booked]) {
    let states = c.booking_states(p).await;
    for m in made {
        let want = if states[&m.id]["status"] == "Confirmed" {
            BookingState::Confirmed
        } else {
            BookingState::Rejected
        };
        eventually_or(
            &format!(
                "booking {}: the store agrees with the marketplace's {} ({want:?})",
                m.id, states[&m.id]["status"]
            ),
            Duration::from_secs(10),
            || c.logs(),
            || async {
                let row = store
                    .booking(&m.id.to_string())
                    .await
                    .expect("store")
                    .unwrap_or_else(|| panic!("booking {} not in the store", m.id));
                (row.state == want).then_some(())
            },
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A node paused past its lease while bookings arrive.
// ---------------------------------------------------------------------------------------------

/// Where the holder is stopped: at the moment it sends this PMS request for a booking, before
/// the PMS has answered it (the PMS gets the request).
#[derive(Debug, Clone, Copy)]
enum PauseAt {
    /// Creating the patient file of a new patient: the file is made, the store does not know.
    PatientCreate,
    /// Inserting the appointment: it is in the diary, the store does not know.
    Insert,
}

impl PauseAt {
    /// The request's method and a part of its path.
    fn request(self) -> (&'static str, &'static str) {
        match self {
            PauseAt::PatientCreate => ("POST", "/patients"),
            PauseAt::Insert => ("POST", "/appointments"),
        }
    }
}

async fn a_node_paused_past_its_lease(kind: Db, at: PauseAt) {
    let Some(db) = TestDb::fresh(kind) else {
        return;
    };
    let started = Instant::now();
    let c = Cluster::start(BIN, 1).await;
    let p = c.practices[0].clone();
    // Each node reaches the PMS through a proxy of its own, which notes what it asks.
    let pms = [
        TcpProxy::start(c.pms.addr()).await.expect("PMS proxy"),
        TcpProxy::start(c.pms.addr()).await.expect("PMS proxy"),
    ];
    let ids = ["fence-a", "fence-b"];
    let mut nodes = Vec::new();
    for (id, proxy) in ids.iter().zip(&pms) {
        let spec = NodeSpec {
            pms_url: proxy.http_url(),
            ..c.spec(id, db.url(), POLL, TTL)
        };
        nodes.push(NodeProcess::start(&spec, READY).await);
    }
    let link = c.link(&nodes[0], &p).await;
    let link_id: LinkId = link.parse().expect("link id");
    c.published(&p).await;
    let store = open_store(db.url()).await;
    let (h, first) = worked_by(&c, &store, &[&nodes[0], &nodes[1]], &link).await;
    let other = 1 - h;
    let slots = c.distinct_slots(&p, 14).await;
    let patient = |n: usize| TestPatient::numbered("Fence", n);
    let mut made: Vec<Booked> = Vec::new();
    let book = |k: usize, n: usize| {
        let (c, p, slot) = (&c, &p, slots[k].clone());
        async move {
            c.book(p, &slot, &patient(n))
                .await
                .unwrap_or_else(|e| panic!("booking slot {k}: {e}"))
        }
    };

    // The holder works: bookings, one of them of a slot already booked.
    for k in 0..4 {
        made.push(book(k, k).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    made.push(c.stale_booking(&made[0], &patient(100)));
    // A new patient books, and the holder stops at the moment it sends the PMS request of `at`
    // for that booking, before the PMS answers.
    let (method, path) = at.request();
    let fired = pms[h].on_request(method, path, nodes[h].pause_action());
    made.push(book(4, 4).await);
    let stopped_on = tokio::time::timeout(Duration::from_secs(10), fired)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the holder sent no {method} …{path} within 10 s\n{}",
                c.logs()
            )
        })
        .expect("the trigger");
    let paused_at = Instant::now();

    // Bookings while it is paused: another of the slot in flight, and a patient who booked
    // already books another slot.
    for k in 5..9 {
        let n = if k == 7 { 0 } else { k };
        made.push(book(k, n).await);
        if k == 6 {
            made.push(c.stale_booking(&made[5], &patient(101)));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let taken = eventually_or(
        "the other node holds the lease at a larger epoch",
        Duration::from_secs(20),
        || format!("{}\n{}", db.activity(), c.logs()),
        || async {
            let lease = store.lease_holder(link_id).await.ok()??;
            (lease.node_id == ids[other] && lease.epoch > first.epoch).then_some(lease)
        },
    )
    .await;
    let takeover = paused_at.elapsed();
    // The other node works the link while the first is still paused.
    for k in 9..12 {
        made.push(book(k, k).await);
        if k == 9 {
            made.push(c.stale_booking(made.last().expect("booked"), &patient(102)));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let calls_at_resume = c.calls_so_far();
    nodes[h].resume();
    let resumed_at = Instant::now();
    let paused_for = paused_at.elapsed();
    for k in 12..14 {
        made.push(book(k, k).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A call whose fence check passed just before the node was stopped goes out as it resumes:
    // neither the PMS nor the marketplace can check a lease epoch, so nothing can recall it.
    // Such calls are let through for a moment after the resume (the checks of the diary and of
    // every outcome below show they did no harm); nothing may be sent after that.
    tokio::time::sleep((resumed_at + IN_FLIGHT).saturating_duration_since(Instant::now())).await;
    let calls_after_in_flight = c.calls_so_far();

    c.all_answered(&p, &made, Duration::from_secs(60)).await;
    let logs = || c.logs();
    let outcome = c.assert_exactly_once(&p, &made, &logs).await;
    eprintln!(
        "{kind:?}: {} paused on {} for {paused_for:?}, taken over by {} after {takeover:?} (epoch {} -> {}); \
         {} bookings: {outcome:?}; {:?} in all",
        ids[h],
        stopped_on.line(),
        ids[other],
        first.epoch,
        taken.epoch,
        made.len(),
        started.elapsed()
    );
    assert!(
        outcome.confirmed > 0,
        "no booking was confirmed: {outcome:?}"
    );
    c.assert_one_patient_file_each(&p, &made).await;
    assert_store_agrees(&c, &store, &p, &made).await;
    // The booking in flight when the holder stopped went on at the other node: confirmed, with
    // the patient file the stopped node created, or the appointment it inserted, found rather
    // than made again (checked above: one file, one appointment).
    let in_flight = &made[5];
    assert_eq!(
        c.booking(in_flight.id).await["status"],
        "Confirmed",
        "the booking in flight when the holder stopped\n{}",
        c.logs()
    );
    let events = store
        .booking_events(&in_flight.id.to_string())
        .await
        .expect("events");
    let row = store
        .booking(&in_flight.id.to_string())
        .await
        .expect("store")
        .expect("row");
    eprintln!(
        "in flight: {:?}; match {:?}",
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        row.match_decision
    );
    if matches!(at, PauseAt::Insert) {
        assert!(
            events.iter().any(|e| e
                .reason
                .contains("found in the diary by its external reference")),
            "the stopped node's insert was not found by its reference: {events:?}"
        );
    }

    // The resumed node was refused and stopped working the link; the other holds it.
    let now = store.lease_holder(link_id).await.expect("lease");
    assert!(
        now.as_ref()
            .is_some_and(|l| l.node_id == ids[other] && l.epoch > first.epoch),
        "the lease after the resume: {now:?} (the paused node held epoch {})",
        first.epoch
    );
    let resumed = &nodes[h];
    let running = eventually_or(
        "the resumed node answers its admin API",
        Duration::from_secs(10),
        || resumed.log_tail(40),
        || resumed.running_links(&c.http),
    )
    .await;
    assert!(
        !running.contains(&link),
        "the resumed node still works the link\n{}",
        resumed.log_tail(40)
    );
    assert!(
        nodes[other]
            .running_links(&c.http)
            .await
            .is_some_and(|r| r.contains(&link)),
        "the node that took over does not work the link\n{}",
        c.logs()
    );
    let log = resumed.log_text();
    assert!(
        log.contains("the lease is no longer this node's") || log.contains("lease lost"),
        "the resumed node's log does not say it lost the lease:\n{}",
        resumed.log_tail(40)
    );
    let lines = |r: Vec<slotbridge_testkit::db::SeenRequest>| {
        r.iter().map(|r| r.line()).collect::<Vec<_>>()
    };
    let asked = pms[h].requests_since(resumed_at + IN_FLIGHT);
    assert!(
        asked.is_empty(),
        "the resumed node called the PMS after it was resumed: {:?}\n{}",
        lines(asked),
        resumed.log_tail(40)
    );
    let calls = c.calls_by(ids[h], calls_after_in_flight);
    assert!(
        calls.is_empty(),
        "the resumed node called the marketplace after it was resumed: {:?}",
        calls.iter().map(|c| c.line()).collect::<Vec<_>>()
    );
    let in_flight: Vec<String> = lines(pms[h].requests_since(resumed_at))
        .into_iter()
        .chain(c.calls_by(ids[h], calls_at_resume).iter().map(|c| c.line()))
        .collect();
    if !in_flight.is_empty() {
        eprintln!("checked before the pause, sent after the resume: {in_flight:?}");
    }
    for n in &mut nodes {
        assert!(n.alive(), "node {} died\n{}", n.node_id, n.log_tail(40));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "SQLite is the one-node store: a node stopped while it holds the file's only write \
            lock blocks every other node for as long as it is stopped (about 1 run in 40 here); \
            several nodes run on PostgreSQL, where the same scenario runs in CI"]
async fn a_node_paused_while_creating_a_patient_on_sqlite_is_fenced_and_every_booking_is_answered_once()
 {
    let _serial = SERIAL.lock().await;
    a_node_paused_past_its_lease(Db::Sqlite, PauseAt::PatientCreate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_while_creating_a_patient_on_postgres_is_fenced_and_every_booking_is_answered_once()
 {
    let _serial = SERIAL.lock().await;
    a_node_paused_past_its_lease(Db::Postgres, PauseAt::PatientCreate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "SQLite is the one-node store: a node stopped while it holds the file's only write \
            lock blocks every other node for as long as it is stopped (about 1 run in 40 here); \
            several nodes run on PostgreSQL, where the same scenario runs in CI"]
async fn a_node_paused_while_inserting_on_sqlite_is_fenced_and_every_booking_is_answered_once() {
    let _serial = SERIAL.lock().await;
    a_node_paused_past_its_lease(Db::Sqlite, PauseAt::Insert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_while_inserting_on_postgres_is_fenced_and_every_booking_is_answered_once() {
    let _serial = SERIAL.lock().await;
    a_node_paused_past_its_lease(Db::Postgres, PauseAt::Insert).await;
}

/// The window the scenarios above can hit by chance: the holder stopped while another of its
/// tasks is inside a fenced store write. Here it is stopped there on purpose: its connection to
/// PostgreSQL goes through a proxy that pauses it the moment it runs its first lease check
/// (`… FOR KEY SHARE`: prepared, then run; the pause comes just before the run, which PostgreSQL
/// then does), so the stopped node's open transaction holds the lease row. The other node must
/// still take the link over (the store ends such a transaction after 5 s idle).
///
/// SQLite has no such remedy: a node stopped inside a write transaction holds the file's only
/// write lock, and every other node's writes wait for it (SQLite is for one node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_inside_a_fenced_write_on_postgres_does_not_keep_the_other_from_taking_over()
{
    let _serial = SERIAL.lock().await;
    let Some(db) = TestDb::fresh(Db::Postgres) else {
        return;
    };
    let c = Cluster::start(BIN, 1).await;
    let p = c.practices[0].clone();
    let pg = TcpProxy::start(db_server(&db))
        .await
        .expect("database proxy");
    let spec_a = c.spec("locked-a", &url_via(&db, pg.addr()), POLL, TTL);
    let mut a = NodeProcess::start(&spec_a, READY).await;
    let fired = pg.on_bytes_then_next(b"FOR KEY SHARE", a.pause_action());
    let link: LinkId = c.link(&a, &p).await.parse().expect("link id");
    tokio::time::timeout(Duration::from_secs(20), fired)
        .await
        .unwrap_or_else(|_| panic!("no lease check from the node within 20 s\n{}", c.logs()))
        .expect("the trigger");
    let paused_at = Instant::now();
    let store = open_store(db.url()).await;
    let first = store
        .lease_holder(link)
        .await
        .expect("lease")
        .expect("held by the stopped node");
    let b = NodeProcess::start(&c.spec("locked-b", db.url(), POLL, TTL), READY).await;
    let taken = eventually_or(
        "the other node holds the lease at a larger epoch while the first is stopped",
        Duration::from_secs(TTL + 10),
        || format!("{}\n{}", db.activity(), c.logs()),
        || async {
            let lease = store.lease_holder(link).await.ok()??;
            (lease.node_id == b.node_id && lease.epoch > first.epoch).then_some(lease)
        },
    )
    .await;
    eprintln!(
        "taken over {:?} after the pause: epoch {} -> {}",
        paused_at.elapsed(),
        first.epoch,
        taken.epoch
    );
    // Resumed, the first finds its transaction ended and its lease gone, and stops working
    // the link; the other publishes it.
    a.resume();
    let id = link.to_string();
    eventually_or(
        "the resumed node no longer works the link",
        Duration::from_secs(10),
        || a.log_tail(40),
        || async { (!a.running_links(&c.http).await?.contains(&id)).then_some(()) },
    )
    .await;
    c.published(&p).await;
    assert!(
        b.running_links(&c.http)
            .await
            .is_some_and(|r| r.contains(&id)),
        "the node that took over does not work the link\n{}",
        c.logs()
    );
    assert!(a.alive(), "the resumed node died\n{}", a.log_tail(40));
}

/// The PostgreSQL server of a test database.
fn db_server(db: &TestDb) -> std::net::SocketAddr {
    PgDatabase::server_addr_of(db.url())
}

/// A test database's URL through `addr`.
fn url_via(db: &TestDb, addr: std::net::SocketAddr) -> String {
    PgDatabase::url_through(db.url(), addr)
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 inside each step of the booking pipeline.
// ---------------------------------------------------------------------------------------------

/// Crash at `at`, then restart the node without the hook: at once (`expire` false: it renews
/// its lease at the same epoch and releases its own claims), or after its lease ran out (a new
/// epoch; the claim made under the old one is taken over).
async fn killed_inside_the_pipeline(kind: Db, at: &str, expire: bool) {
    let Some(db) = TestDb::fresh(kind) else {
        return;
    };
    let started = Instant::now();
    let c = Cluster::start(BIN, 1).await;
    let p = c.practices[0].clone();
    let plain = c.spec("crash-node", db.url(), POLL, TTL);
    let crashing = NodeSpec {
        env: vec![("SLOTBRIDGE_CRASH_AT".into(), at.into())],
        ..plain.clone()
    };
    let mut node = NodeProcess::start(&crashing, READY).await;
    let link: LinkId = c.link(&node, &p).await.parse().expect("link id");
    c.published(&p).await;
    let slot = c.distinct_slots(&p, 1).await.remove(0);
    let patient = TestPatient::numbered(&format!("Crash{}", at.replace('_', "")), 1);
    let booked = c
        .book(&p, &slot, &patient)
        .await
        .unwrap_or_else(|e| panic!("booking: {e}"));
    let booked_at = Instant::now();
    let status = node
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the node did not abort at {at}\n{}", node.log_tail(40)));
    let crashed_after = booked_at.elapsed();
    assert!(
        node.log_text()
            .contains(&format!("crash test: aborting at {at}")),
        "the node ended ({status}) but not at {at}:\n{}",
        node.log_tail(40)
    );
    let store = open_store(db.url()).await;
    let before = store.lease_holder(link).await.expect("lease");
    if expire {
        tokio::time::sleep(Duration::from_secs(TTL + 1)).await;
    }
    node.restart_with(plain, READY).await;
    let made = [booked];
    c.all_answered(&p, &made, Duration::from_secs(60)).await;
    let answered_after = booked_at.elapsed();
    let logs = || c.logs();
    let outcome = c.assert_exactly_once(&p, &made, &logs).await;
    assert_eq!(
        outcome.confirmed,
        1,
        "the booking was not confirmed after a crash at {at}: {outcome:?}\n{}",
        logs()
    );
    c.assert_one_patient_file_each(&p, &made).await;
    assert_store_agrees(&c, &store, &p, &made).await;
    assert!(
        node.alive(),
        "the restarted node died\n{}",
        node.log_tail(40)
    );
    let after = store.lease_holder(link).await.expect("lease");
    let (Some(before), Some(after)) = (before.clone(), after.clone()) else {
        panic!("no lease on the link: {before:?} -> {after:?}");
    };
    if expire {
        assert!(
            after.epoch > before.epoch,
            "the lease was not taken anew after it ran out: {before:?} -> {after:?}"
        );
    }
    eprintln!(
        "{kind:?} {at}: aborted {crashed_after:?} after the booking, answered {answered_after:?} \
         after it ({outcome:?}); lease epoch {} -> {}; {:?} in all",
        before.epoch,
        after.epoch,
        started.elapsed()
    );
}

macro_rules! crash_tests {
    // SQLite: restarted at once; PostgreSQL: restarted after its lease ran out.
    ($($sqlite:ident, $postgres:ident => $at:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let _serial = SERIAL.lock().await;
            killed_inside_the_pipeline(Db::Sqlite, $at, false).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let _serial = SERIAL.lock().await;
            killed_inside_the_pipeline(Db::Postgres, $at, true).await;
        }
    )*};
}

crash_tests! {
    killed_after_the_claim_on_sqlite_the_booking_is_confirmed_once,
    killed_after_the_claim_on_postgres_the_booking_is_confirmed_once => "after_claim";
    killed_after_the_patient_create_on_sqlite_the_booking_is_confirmed_once_with_one_patient_file,
    killed_after_the_patient_create_on_postgres_the_booking_is_confirmed_once_with_one_patient_file => "after_patient";
    killed_after_the_insert_on_sqlite_the_booking_is_confirmed_once,
    killed_after_the_insert_on_postgres_the_booking_is_confirmed_once => "after_insert";
    killed_before_the_confirm_on_sqlite_the_booking_is_confirmed_once,
    killed_before_the_confirm_on_postgres_the_booking_is_confirmed_once => "before_confirm";
}

// ---------------------------------------------------------------------------------------------
// 3. The database unavailable for 10 s.
//
// PostgreSQL only: the nodes reach the server through a TCP proxy of the test, which either
// drops their connections and refuses new ones for 10 s, or lets nothing through for 10 s
// without a word (a partition: queries hang, then go through). A SQLite database is a file the node opens
// itself: there is no server or connection to lose, so "the database unavailable" has no SQLite
// form (a write lock held too long is another failure, bounded by the store's busy timeout).
// ---------------------------------------------------------------------------------------------

/// How the database is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// Connections dropped, new ones refused.
    Refused,
    /// Nothing moves; queries hang until it is over.
    Stalled,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_database_refusing_connections_for_10_s_every_worker_comes_back_and_every_lease_is_held_by_a_running_worker()
 {
    let _serial = SERIAL.lock().await;
    the_database_unavailable_for_10_s(Outage::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_database_unreachable_without_a_word_for_10_s_every_worker_comes_back_and_every_lease_is_held_by_a_running_worker()
 {
    let _serial = SERIAL.lock().await;
    the_database_unavailable_for_10_s(Outage::Stalled).await;
}

async fn the_database_unavailable_for_10_s(outage: Outage) {
    const OUTAGE: Duration = Duration::from_secs(10);
    let Some(pg) = PgDatabase::fresh() else {
        return;
    };
    let started = Instant::now();
    let db = TcpProxy::start(pg.server_addr())
        .await
        .expect("database proxy");
    let c = Cluster::start(BIN, 2).await;
    let ids = ["db-a", "db-b"];
    let pms = [
        TcpProxy::start(c.pms.addr()).await.expect("PMS proxy"),
        TcpProxy::start(c.pms.addr()).await.expect("PMS proxy"),
    ];
    let mut nodes = Vec::new();
    for (id, proxy) in ids.iter().zip(&pms) {
        let spec = NodeSpec {
            pms_url: proxy.http_url(),
            ..c.spec(id, &pg.url_via(db.addr()), POLL, TTL)
        };
        nodes.push(NodeProcess::start(&spec, READY).await);
    }
    let mut links = Vec::new();
    for (i, p) in c.practices.iter().enumerate() {
        let link: LinkId = c.link(&nodes[i % 2], p).await.parse().expect("link id");
        links.push(link);
    }
    for p in &c.practices {
        c.published(p).await;
    }
    // The test's own store goes to the server directly.
    let store = open_store(&pg.url).await;
    let all = [&nodes[0], &nodes[1]];
    // Settled: every link worked by the node holding its lease, and the links shared evenly
    // (a node hands its surplus back after the outage: the link is unworked for a moment).
    let settled = || async {
        let holders = leases_match_workers(&c.http, &store, &all, &links)
            .await
            .ok()?;
        let most = links.len().div_ceil(all.len());
        all.iter()
            .all(|n| holders.values().filter(|l| l.node_id == n.node_id).count() <= most)
            .then_some(holders)
    };
    let before = eventually_or(
        "every link worked by the node holding its lease, links shared evenly",
        Duration::from_secs(30),
        || c.logs(),
        settled,
    )
    .await;
    // A slot per practice, for the desk to book after the outage.
    let mut desk = Vec::new();
    for p in &c.practices {
        desk.push(c.distinct_slots(p, 1).await.remove(0));
    }

    match outage {
        Outage::Refused => db.cut(),
        Outage::Stalled => db.stall(),
    }
    let cut_at = Instant::now();
    // Once the last renewal + TTL has passed, no worker calls the PMS or the marketplace.
    tokio::time::sleep(Duration::from_millis(TTL * 1000 + 500)).await;
    let fenced_from = Instant::now();
    let calls_fenced = c.calls_so_far();
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    let during: Vec<String> = pms
        .iter()
        .flat_map(|px| px.requests_since(fenced_from))
        .map(|r| r.line())
        .collect();
    let market_during: Vec<String> = ids
        .iter()
        .flat_map(|id| c.calls_by(id, calls_fenced))
        .map(|c| c.line())
        .collect();
    db.restore();
    let restored = Instant::now();
    eprintln!(
        "database {outage:?} for {:?}: {} connections dropped, {} refused",
        cut_at.elapsed(),
        db.dropped(),
        db.refused()
    );
    if outage == Outage::Refused {
        assert!(
            db.dropped() + db.refused() > 0,
            "the outage touched no connection"
        );
    }
    assert!(
        during.is_empty() && market_during.is_empty(),
        "workers kept calling after their lease ran out without the database: PMS {during:?}, \
         marketplace {market_during:?}\n{}",
        c.logs()
    );

    // Every worker comes back by itself: a desk booking leaves the marketplace within seconds.
    for (p, slot) in c.practices.iter().zip(&desk) {
        c.desk_book(&p.slug, slot).await;
    }
    let mut back = BTreeMap::new();
    for (p, slot) in c.practices.iter().zip(&desk) {
        let day = slotbridge_testkit::process::day_of(slot);
        eventually_or(
            &format!("the desk booking at {} gone from the marketplace", p.slug),
            Duration::from_secs(10).saturating_sub(restored.elapsed()),
            || c.logs(),
            || async { (!offers(&c.slots(&p.practice_id, &day).await, slot)).then_some(()) },
        )
        .await;
        back.insert(p.slug.clone(), restored.elapsed());
    }
    // No lease held by a stopped worker, and it stays so.
    let after = eventually_or(
        "every link worked by the node holding its lease after the outage, links shared evenly",
        Duration::from_secs(20),
        || c.logs(),
        settled,
    )
    .await;
    let settled_after = restored.elapsed();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if settled().await.is_none() {
            panic!(
                "leases and workers no longer settled: {:?}\n{}",
                leases_match_workers(&c.http, &store, &all, &links).await,
                c.logs()
            );
        }
        let mut running = 0.0;
        for n in &all {
            running += n
                .metric(&c.http, "slotbridge_links_running")
                .await
                .unwrap_or_else(|| panic!("{} /metrics", n.node_id));
        }
        assert_eq!(
            running,
            links.len() as f64,
            "links running on the nodes by /metrics"
        );
    }
    for link in &links {
        assert!(
            after[link].epoch > before[link].epoch,
            "link {link}: the lease was not taken anew after it ran out ({:?} -> {:?})",
            before[link],
            after[link]
        );
    }
    for n in &mut nodes {
        assert!(n.alive(), "node {} died\n{}", n.node_id, n.log_tail(40));
    }
    eprintln!(
        "after the outage: desk bookings gone after {back:?}, leases settled after {settled_after:?} \
         ({:?}); {:?} in all",
        after
            .values()
            .map(|l| (l.node_id.clone(), l.epoch))
            .collect::<Vec<_>>(),
        started.elapsed()
    );
}
