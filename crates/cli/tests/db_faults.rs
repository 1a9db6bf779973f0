//! Database faults (issue 14), with the real `slotbridge` binary: one `slotbridge run` process
//! against both simulators (served by this test process), each fault bounded in time.
//!
//! - PostgreSQL restarted mid-run: a TCP proxy of the test in front of the server drops every
//!   connection and refuses new ones for a while (other tests' connections are untouched).
//! - SQLite locked by another process: this test process holds the file's write lock
//!   (`BEGIN EXCLUSIVE`) for a while.
//! - The disk full: the SQLite file on a small tmpfs filled to the last byte, then emptied.
//!
//! For each: bookings made during the fault end confirmed once in the diary or rejected in time
//! with a reason (never confirmed by the marketplace's 20 s rule with nothing in the diary); the
//! node's calls to the PMS and the marketplace during the fault stay under a bound (it polls
//! no faster than its interval and stops once its lease has lapsed); the practice is shown
//! unhealthy (or the admin API answers 503) while the fault lasts and healthy after; the node
//! comes back with no manual step. See docs/operations.md, "Faults".

use std::time::{Duration, Instant};

use serde_json::Value;
use slotbridge_testkit::control::get_json;
use slotbridge_testkit::db::TcpProxy;
use slotbridge_testkit::disk::{SmallDisk, SqliteLock, sqlite_integrity, sqlite_truncate_wal};
use slotbridge_testkit::process::{Booked, Cluster, NodeProcess, TestPatient, unlabelled_metric};
use slotbridge_testkit::{PgDatabase, Practice, eventually_or, sqlite_url};

/// The scenarios run one at a time: each starts a process on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BIN: &str = env!("CARGO_BIN_EXE_slotbridge");
/// How long a node may take to answer `/readyz` after it was started.
const READY: Duration = Duration::from_secs(60);
/// The node's polling interval.
const POLL: Duration = Duration::from_millis(300);
/// The node's lease time-to-live, in seconds.
const TTL: u64 = 2;
/// How long each fault lasts.
const FAULT: Duration = Duration::from_secs(6);
/// Bookings are answered within the marketplace's 20 s; waited for a little longer.
const ANSWERED: Duration = Duration::from_secs(30);

/// One node on `database_url` working one practice, configured and with slots apart.
struct Run {
    c: Cluster,
    node: NodeProcess,
    p: Practice,
    link: String,
    slots: Vec<Value>,
    used: usize,
    started: Instant,
}

async fn run(c: Cluster, database_url: &str) -> Run {
    let started = Instant::now();
    let spec = c.spec("faults", database_url, POLL, TTL);
    let node = NodeProcess::start(&spec, READY).await;
    let p = c.practices[0].clone();
    let link = c.link(&node, &p).await;
    c.published(&p).await;
    let slots = c.distinct_slots(&p, 6).await;
    Run {
        c,
        node,
        p,
        link,
        slots,
        used: 0,
        started,
    }
}

impl Run {
    /// Patient `n` books the next unused slot.
    async fn book(&mut self, tag: &str) -> Booked {
        let slot = self.slots[self.used].clone();
        self.used += 1;
        let patient = TestPatient::numbered(tag, self.used);
        self.c
            .book(&self.p, &slot, &patient)
            .await
            .unwrap_or_else(|e| panic!("booking {slot}: {e}"))
    }

    /// The practice as the node's admin API shows it: `Ok(summary)`, or `Err(status)` when it
    /// does not answer 2xx (`0`: no answer at all).
    async fn summary(&self) -> Result<Value, u16> {
        let r = self
            .c
            .http
            .get(format!("{}/api/practices/{}", self.node.url, self.link))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|_| 0u16)?;
        let status = r.status().as_u16();
        if !r.status().is_success() {
            return Err(status);
        }
        r.json().await.map_err(|_| status)
    }

    /// Wait until the node shows the fault: the admin API says the practice is unhealthy
    /// (for the reason `named`, when given), or it cannot read the database and answers 5xx.
    /// What it showed.
    async fn shows_the_fault(&self, named: Option<&str>) -> String {
        eventually_or(
            &format!("the practice shown unhealthy ({named:?}) during the fault"),
            Duration::from_secs(15),
            || self.c.logs(),
            || async {
                match self.summary().await {
                    Err(status) if status >= 500 && named.is_none() => {
                        Some(format!("admin API {status}"))
                    }
                    Ok(s) => {
                        let bad = faults_shown(&s);
                        let shown = match named {
                            Some(n) => bad.iter().any(|b| b == n),
                            None => !bad.is_empty(),
                        };
                        shown.then(|| format!("unhealthy {bad:?}"))
                    }
                    Err(_) => None,
                }
            },
        )
        .await
    }

    /// Wait until the practice is healthy again (a booking the fault made the integration
    /// reject stays counted); how long after `since`.
    async fn healthy_again(&self, since: Instant) -> Duration {
        eventually_or(
            "the practice healthy again",
            Duration::from_secs(30),
            || format!("{:?}\n{}", "", self.c.logs()),
            || async {
                let s = self.summary().await.ok()?;
                (faults_shown(&s).is_empty() && s["running_here"] == true).then_some(())
            },
        )
        .await;
        since.elapsed()
    }

    /// Every booking of `made` answered, each confirmed once in the diary or rejected with a
    /// reason, none confirmed by the 20 s rule with nothing in the diary; `(confirmed,
    /// rejected)`.
    async fn each_answered_once(&self, made: &[Booked]) -> (usize, usize) {
        self.c.all_answered(&self.p, made, ANSWERED).await;
        let outcome = self
            .c
            .assert_exactly_once(&self.p, made, &|| self.c.logs())
            .await;
        (outcome.confirmed, outcome.rejected)
    }

    /// Calls to the PMS site and the marketplace so far.
    async fn calls(&self) -> (u64, usize) {
        (
            self.c.pms_site_requests(&self.p.slug).await,
            self.c.calls_so_far(),
        )
    }
}

/// What the summary shows as wrong, leaving out rejected bookings (a fault may rightly cause
/// those, and they stay counted).
fn faults_shown(summary: &Value) -> Vec<String> {
    summary["unhealthy"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .filter(|u| *u != "bookings_rejected")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The most calls a node may make over `window` of a database fault: it polls the PMS change
/// feed and the marketplace's requests no faster than its interval (one call each, of at most
/// 4 and 3 attempts), and stops calling altogether once its lease has lapsed.
fn bound(window: Duration) -> u64 {
    let ticks = (window.as_millis() / POLL.as_millis()) as u64 + 1;
    (4 + 3) * ticks
}

/// The fault's common part: bookings during it, what the node showed (the reason `named`,
/// when given), the calls it made, then recovery. `lift` ends the fault.
async fn during_the_fault(r: &mut Run, name: &str, named: Option<&str>, lift: impl AsyncFnOnce()) {
    let set_at = Instant::now();
    let (pms_before, market_before) = r.calls().await;
    let mut made = vec![r.book("During").await, r.book("During").await];
    let shown = r.shows_the_fault(named).await;
    tokio::time::sleep(FAULT.saturating_sub(set_at.elapsed())).await;
    let (pms_after, market_after) = r.calls().await;
    let window = set_at.elapsed();
    lift().await;
    let lifted = Instant::now();
    let (pms, market) = (
        pms_after - pms_before,
        (market_after - market_before) as u64,
    );
    let limit = bound(window);
    assert!(
        pms + market <= limit,
        "{name}: {pms} PMS and {market} marketplace calls in {window:?} of the fault (bound \
         {limit})\n{}",
        r.c.logs()
    );
    let back = r.healthy_again(lifted).await;
    made.push(r.book("After").await);
    let (confirmed, rejected) = r.each_answered_once(&made).await;
    assert!(r.node.alive(), "the node died\n{}", r.node.log_tail(40));
    eprintln!(
        "{name}: shown as {shown}; {pms} PMS and {market} marketplace calls in {window:?} (bound \
         {limit}); healthy {back:?} after; bookings {confirmed} confirmed, {rejected} rejected; \
         test took {:?}",
        r.started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_the_node_comes_back_and_every_booking_is_answered_once() {
    let _serial = SERIAL.lock().await;
    let Some(pg) = PgDatabase::fresh() else {
        return;
    };
    let proxy = TcpProxy::start(pg.server_addr())
        .await
        .expect("database proxy");
    let c = Cluster::start(BIN, 1).await;
    let mut r = run(c, &pg.url_via(proxy.addr())).await;
    // The server goes away: every connection dropped, new ones refused until it is back.
    proxy.cut();
    during_the_fault(&mut r, "PostgreSQL restarted", None, async || {
        proxy.restore();
    })
    .await;
    assert!(
        proxy.dropped() + proxy.refused() > 0,
        "the restart touched no connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process_the_node_waits_and_every_booking_is_answered_once() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("slotbridge.db");
    let c = Cluster::start(BIN, 1).await;
    let mut r = run(c, &sqlite_url(&file)).await;
    let lock = SqliteLock::take(&file).await;
    during_the_fault(&mut r, "SQLite locked", None, async move || {
        lock.release().await;
    })
    .await;
    assert_eq!(sqlite_integrity(&file).await, ["ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_full_is_a_clear_error_corrupts_nothing_and_the_node_recovers_once_space_is_back()
{
    let _serial = SERIAL.lock().await;
    let Some(disk) = SmallDisk::mount(64) else {
        return;
    };
    let file = disk.path().join("slotbridge.db");
    let c = Cluster::start(BIN, 1).await;
    let mut r = run(c, &sqlite_url(&file)).await;
    // The log emptied into the file, then not one byte left: the node's next write must grow
    // the log, and cannot.
    sqlite_truncate_wal(&file).await;
    let filled = disk.fill();
    // Every practice says so (`disk_full`, shown as "disk full" in the console, and the
    // error finding `disk-full` with its fix), and the metrics, until the space is back.
    let findings = format!("{}/api/links/{}/findings", r.node.url, r.link);
    let metrics = format!("{}/metrics", r.node.url);
    let http = r.c.http.clone();
    during_the_fault(&mut r, "disk full", Some("disk_full"), async || {
        let found = get_json(&http, &findings).await;
        let finding = found
            .as_array()
            .and_then(|a| a.iter().find(|f| f["code"] == "disk-full"))
            .unwrap_or_else(|| panic!("a disk-full finding among {found}"));
        assert_eq!(finding["severity"], "error", "{finding}");
        assert!(
            finding["fix"]
                .as_str()
                .is_some_and(|f| f.contains("Free space")),
            "{finding}"
        );
        let page = http.get(&metrics).send().await.expect("GET /metrics");
        let page = page.text().await.expect("the metrics");
        assert_eq!(
            unlabelled_metric(&page, "slotbridge_store_disk_full"),
            Some(1.0),
            "the metrics say the disk is full:\n{page}"
        );
        disk.free();
    })
    .await;
    let log = r.node.log_text();
    for said in [
        "database or disk is full",
        "disk full (SQLITE_FULL",
        "the database takes writes again",
    ] {
        assert!(
            log.contains(said),
            "the node's log says {said:?}\n{}",
            r.node.log_tail(40)
        );
    }
    assert_eq!(sqlite_integrity(&file).await, ["ok"]);
    eprintln!("disk full: {filled} bytes of filler");
}
