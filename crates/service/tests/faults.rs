//! Faults (issue 14), each bounded in time, on an in-process stack: both simulators and one
//! node on SQLite, the node's PMS calls through a TCP proxy of the test (which counts them and
//! can reset every connection), and calls that time out after 2 s instead of 10.
//!
//! - The PMS: every fault kind the simulator injects (`PUT /_sim/faults`: 500s, a 429 burst, a
//!   503 outage, refused connections, slow bodies, answers dropped halfway, answers slower
//!   than the client's timeout), and every connection reset by the proxy.
//! - The marketplace: 5xx, 429 with `Retry-After` (no request before it has passed), answers
//!   slower than the client's timeout, and webhook deliveries lost, duplicated, late and out of
//!   order (`PUT /_market/faults`).
//! - Webhook deliveries as a flood (two nodes): at most one marketplace poll a second per link,
//!   and a delivery naming another node's link or no link wakes nothing.
//!
//! For each: a booking made during the fault ends confirmed once in the diary or rejected in
//! time with a reason (never confirmed by the marketplace's 20 s rule with nothing in the
//! diary); the simulators' request counts during the fault stay under a bound derived from the
//! documented retries and backoff (no tight loop); the practice shows an error in the admin
//! API while the fault lasts and none afterwards; and a booking made afterwards is confirmed
//! once, with no manual step in between. See docs/operations.md, "Faults".

use std::time::{Duration, Instant};

use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::Value;
use slotbridge_market_sim::faults::{
    ErrorBurst, Faults as MarketFaults, NotedRequest, RateLimitBurst, WebhookFaults,
};
use slotbridge_pms_sim::{Burst429, DEMO_SLUG, Faults as PmsFaults, Outage};
use slotbridge_store::LinkId;
use slotbridge_testkit::control::apart;
use slotbridge_testkit::db::TcpProxy;
use slotbridge_testkit::{Stack, booking_body, eventually, eventually_or, patient};

/// The nodes' call timeout: a slow server times out in seconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a fault lasts.
const FAULT: Duration = Duration::from_secs(5);
/// The waits for the configuration and for bookable slots.
const LINKED: Duration = Duration::from_secs(60);
/// A booking's answer is waited for past the marketplace's 20 s auto-confirm, so one the
/// integration never answered shows as auto-confirmed instead of timing out.
const ANSWERED: Duration = Duration::from_secs(25);
/// How long the link may take to show the fault, and to be healthy again after it.
const SHOWN: Duration = Duration::from_secs(20);
const RECOVERED: Duration = Duration::from_secs(25);
/// The nodes' polling interval (the stack's default).
const POLL: Duration = Duration::from_millis(500);

const TOKEN: &str = "faults-admin-token-0123456789abcdef";
const PASSWORD: &str = "faults console password";

// ---- the stack -------------------------------------------------------------------------------

/// One node on SQLite whose PMS calls go through `pms` (a proxy of the test); Harbour Dental
/// linked, configured, Step 2 done, and a day with bookable slots.
struct World {
    w: Stack,
    pms: TcpProxy,
    link: String,
    practice: String,
    slots: Vec<Value>,
    /// Slots handed out so far.
    used: usize,
    started: Instant,
}

async fn world() -> World {
    // Every log line of the node, for the failure messages.
    let _ = slotbridge_testkit::logs();
    let started = Instant::now();
    let mut w = Stack::builder()
        .nodes(0)
        .admin(TOKEN, PASSWORD)
        .call_timeout(CALL_TIMEOUT)
        .start()
        .await
        .expect("a SQLite stack");
    let pms = TcpProxy::start(w.pms.addr()).await.expect("the PMS proxy");
    let mut config = w.config.clone();
    config.pms_url = pms.http_url().parse().expect("the proxy's URL");
    w.start_node_with(config).await;
    let p = w.harbour().clone();
    let link = w.link(&p).await;
    let (_day, slots) = w.linked_with_slots(LINKED, 6).await;
    World {
        practice: p.practice_id,
        w,
        pms,
        link,
        slots: apart(&slots, usize::MAX),
        used: 0,
        started,
    }
}

/// The practice-local day of a slot (`YYYY-MM-DD`).
fn day_of(slot: &Value) -> String {
    slot["start"].as_str().expect("start")[..10].to_owned()
}

impl World {
    /// The next unused slot.
    fn slot(&mut self) -> Value {
        let s = self
            .slots
            .get(self.used)
            .cloned()
            .unwrap_or_else(|| panic!("more than {} slots apart", self.slots.len()));
        self.used += 1;
        s
    }

    /// A patient books the next unused slot: `(booking id, its day)`.
    async fn book(&mut self, who: &str) -> (i64, String) {
        let slot = self.slot();
        let n = self.used;
        let body = booking_body(
            &slot,
            patient(
                who,
                "Faults",
                "1980-02-03",
                &format!("0413 000 {n:03}"),
                &format!("{}{n}@example.com", who.to_lowercase()),
            ),
        );
        (self.w.book(&self.practice, &body).await, day_of(&slot))
    }

    /// The operator's "resend availability" (`POST /api/links/{id}/resync`): the worker reads
    /// the PMS now.
    async fn resync(&self) {
        let r = self
            .w
            .http
            .post(self.w.api(&format!("/api/links/{}/resync", self.link)))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"what": "availability"}))
            .send()
            .await
            .expect("resync");
        assert!(r.status().is_success(), "resync: {}", r.status());
    }

    /// The link as the admin API shows it.
    async fn summary(&self) -> Value {
        self.w
            .api_get(&format!("/api/practices/{}", self.link))
            .await
    }

    /// Wait until the admin API shows the link unhealthy with an error of `kind` (`pms`,
    /// `market`); the summary then.
    async fn shows_error(&self, kind: &str) -> Value {
        let want = format!("error: {kind}");
        let last = std::sync::Mutex::new(Value::Null);
        eventually_or(
            &format!("the link shows {want:?}"),
            SHOWN,
            || format!("the link: {}\n{}", last.lock().expect("last"), node_logs()),
            || async {
                let s = self.summary().await;
                *last.lock().expect("last") = s.clone();
                unhealthy(&s).contains(&want).then_some(s)
            },
        )
        .await
    }

    /// Wait until the link is healthy again: no error, published recently (a booking the
    /// fault made the integration reject stays counted, as it should); how long it took.
    async fn healthy_again(&self, since: Instant) -> Duration {
        let last = std::sync::Mutex::new(Value::Null);
        eventually_or(
            "the link healthy again",
            RECOVERED,
            || format!("the link: {}\n{}", last.lock().expect("last"), node_logs()),
            || async {
                let s = self.summary().await;
                *last.lock().expect("last") = s.clone();
                let left: Vec<String> = unhealthy(&s)
                    .into_iter()
                    .filter(|u| u != "bookings_rejected")
                    .collect();
                (left.is_empty() && s["last_error"].is_null()).then_some(())
            },
        )
        .await;
        since.elapsed()
    }

    /// A booking made now ends confirmed, once in the diary: the link works again.
    async fn books_again(&mut self) {
        let (id, day) = self.book("After").await;
        let b = self
            .w
            .assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
            .await;
        assert_eq!(b["status"], "Confirmed", "a booking after the fault: {b}");
    }
}

/// The node's log lines at info and above (for failure messages).
fn node_logs() -> String {
    slotbridge_testkit::logs()
        .lines()
        .into_iter()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The link's `unhealthy` list.
fn unhealthy(summary: &Value) -> Vec<String> {
    summary["unhealthy"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---- the PMS ---------------------------------------------------------------------------------

/// Attempts of one PMS call at most: the connector's first and its 3 retries
/// (`ExactConfig::max_retries`).
const PMS_ATTEMPTS: usize = 4;
/// The shortest wait before a failed step is tried again: the link backoff's first 1 s less
/// the most jitter takes (half), and the booking retries' first wait likewise.
const MIN_BACKOFF: Duration = Duration::from_millis(500);

/// The most PMS requests a link may make over `window` of a fault: the worker's steps (a sync,
/// a change-feed read) and the booking pipeline's attempts each make one failing call (its
/// first; the rest are not reached) of at most [`PMS_ATTEMPTS`] attempts, and neither tries
/// again sooner than [`MIN_BACKOFF`] after a failure; `bookings` bookings are worked. Anything
/// retrying in a loop goes far past it.
fn pms_bound(window: Duration, bookings: usize) -> usize {
    let rounds = (window.as_millis() / MIN_BACKOFF.as_millis()) as usize + 1;
    PMS_ATTEMPTS * rounds * (1 + bookings)
}

/// One PMS fault: set it, ask for a resync of the availability (the worker reads the PMS, and
/// fails) and make a booking, check the link shows it and the PMS requests during it, lift it
/// after [`FAULT`], and check the booking, the link's health and a booking afterwards.
async fn pms_fault(name: &str, fault: PmsFaults, reset_connections: bool) {
    let mut x = world().await;
    let set_at = Instant::now();
    let refused_before = x.pms.refused();
    x.w.pms.sim().set_faults(fault);
    // The node's open connections are dropped, so that a fault on new connections (`refused`)
    // reaches it too; with `reset_connections` every new one is reset as well, until lifted.
    x.pms.cut();
    if !reset_connections {
        x.pms.restore();
    }
    x.resync().await;
    let (id, day) = x.book("During").await;
    let shown = x.shows_error("pms").await;
    let shown_after = set_at.elapsed();
    tokio::time::sleep(FAULT.saturating_sub(set_at.elapsed())).await;
    // Requests the proxy passed on, and connections it reset before a request was read.
    let during = x.pms.requests_since(set_at).len()
        + usize::try_from(x.pms.refused() - refused_before).unwrap_or(usize::MAX);
    let window = set_at.elapsed();
    x.w.pms.sim().set_faults(PmsFaults::default());
    if reset_connections {
        x.pms.restore();
    }
    let lifted = Instant::now();
    let bound = pms_bound(window, 1);
    assert!(
        during <= bound,
        "{name}: {during} PMS requests in {window:?} of the fault (bound {bound}): a tight loop"
    );
    let b =
        x.w.assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
            .await;
    let back = x.healthy_again(lifted).await;
    x.books_again().await;
    eprintln!(
        "PMS {name}: shown after {shown_after:?} ({}), {during} PMS requests in {window:?} \
         (bound {bound}), the booking made during it {} {}, healthy {back:?} after; test took {:?}",
        shown["last_error"]["message"],
        b["status"],
        b["reject_reason"],
        x.started.elapsed()
    );
}

/// One test per PMS fault: `name: "label", faults, reset_connections;`.
macro_rules! pms_faults {
    ($($name:ident: $label:literal, $fault:expr, $reset:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            pms_fault($label, $fault, $reset).await;
        }
    )*};
}

pms_faults! {
    pms_answering_500_to_everything: "error_rate 1.0",
        PmsFaults { error_rate: 1.0, ..PmsFaults::default() }, false;
    pms_rate_limiting_every_request: "burst_429",
        PmsFaults {
            burst_429: Some(Burst429 { requests: 1_000_000, retry_after_secs: 1 }),
            ..PmsFaults::default()
        }, false;
    pms_down_for_maintenance_with_503: "outage service_unavailable",
        PmsFaults { outage: Some(Outage::ServiceUnavailable), ..PmsFaults::default() }, false;
    pms_refusing_connections: "outage refused",
        PmsFaults { outage: Some(Outage::Refused), ..PmsFaults::default() }, false;
    pms_answers_slower_than_the_clients_timeout: "latency beyond the timeout",
        PmsFaults { latency_ms: 3_000, ..PmsFaults::default() }, false;
    pms_bodies_trickling_past_the_clients_timeout: "slow_body",
        PmsFaults { slow_body_ms: 4_000, ..PmsFaults::default() }, false;
    pms_dropping_every_connection_halfway_through_the_answer: "drop_rate 1.0",
        PmsFaults { drop_rate: 1.0, ..PmsFaults::default() }, false;
    pms_connections_reset: "connections reset", PmsFaults::default(), true;
}

// ---- the marketplace -------------------------------------------------------------------------

/// Attempts of one idempotent marketplace call at most (`ClientConfig::max_attempts`).
const MARKET_ATTEMPTS: usize = 3;

/// The most marketplace requests a link may make over `window` of a fault: bookings are still
/// answered while publishing backs off, so the worker polls the requests at every tick (one
/// call of at most [`MARKET_ATTEMPTS`] attempts), and a failed sync step is tried again no
/// sooner than [`MIN_BACKOFF`] later (one failing call, its first).
fn market_bound(window: Duration) -> usize {
    let ticks = (window.as_millis() / POLL.as_millis()) as usize + 1;
    let steps = (window.as_millis() / MIN_BACKOFF.as_millis()) as usize + 1;
    MARKET_ATTEMPTS * (ticks + steps)
}

/// The marketplace API requests of the practice noted since `since`.
fn market_requests(x: &World, since: Timestamp) -> Vec<NotedRequest> {
    x.w.market
        .sim()
        .noted_requests()
        .into_iter()
        .filter(|r| r.practice_id == x.practice && r.at >= since)
        .collect()
}

/// One marketplace fault lasting [`FAULT`]: a booking made during it, the link shown with a
/// marketplace error, the requests during it bounded, then recovery.
async fn market_fault(name: &str, fault: MarketFaults) {
    let mut x = world().await;
    let set_at = Instant::now();
    let since = Timestamp::now();
    x.w.market.sim().set_faults(fault);
    let (id, day) = x.book("During").await;
    let shown = x.shows_error("market").await;
    let shown_after = set_at.elapsed();
    tokio::time::sleep(FAULT.saturating_sub(set_at.elapsed())).await;
    let during = market_requests(&x, since).len();
    let window = set_at.elapsed();
    x.w.market.sim().set_faults(MarketFaults::default());
    let lifted = Instant::now();
    let bound = market_bound(window);
    assert!(
        during <= bound,
        "{name}: {during} marketplace requests in {window:?} of the fault (bound {bound})"
    );
    let b =
        x.w.assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
            .await;
    let back = x.healthy_again(lifted).await;
    x.books_again().await;
    eprintln!(
        "marketplace {name}: shown after {shown_after:?} ({}), {during} requests in {window:?} \
         (bound {bound}), the booking made during it {} {}, healthy {back:?} after; test took {:?}",
        shown["last_error"]["message"],
        b["status"],
        b["reject_reason"],
        x.started.elapsed()
    );
}

/// One test per marketplace fault: `name: "label", faults;`.
macro_rules! market_faults {
    ($($name:ident: $label:literal, $fault:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            market_fault($label, $fault).await;
        }
    )*};
}

/// Every API request answered `status` (until lifted).
fn failing(status: u16) -> MarketFaults {
    MarketFaults {
        errors: Some(ErrorBurst {
            requests: 1_000_000,
            status,
        }),
        ..MarketFaults::default()
    }
}

market_faults! {
    marketplace_answering_503: "503", failing(503);
    marketplace_answering_500: "500", failing(500);
    marketplace_answers_slower_than_the_clients_timeout: "latency beyond the timeout",
        MarketFaults { latency_ms: 3_000, ..MarketFaults::default() };
}

/// 429 with `Retry-After`: after each, no request of the practice reaches the marketplace before
/// the time it asked for has passed, across calls (a failed poll is not repeated at the next
/// tick) and for the booking's answer too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_rate_limiting_is_waited_out_as_retry_after_asks() {
    const RETRY_AFTER: u64 = 2;
    const REFUSED: u32 = 4;
    let mut x = world().await;
    let since = Timestamp::now();
    let set_at = Instant::now();
    x.w.market.sim().set_faults(MarketFaults {
        rate_limit: Some(RateLimitBurst {
            requests: REFUSED,
            retry_after_secs: RETRY_AFTER,
        }),
        ..MarketFaults::default()
    });
    let (id, day) = x.book("During").await;
    let shown = x.shows_error("market").await;
    let b =
        x.w.assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
            .await;
    let back = x.healthy_again(set_at).await;
    let requests = market_requests(&x, since);
    let refused: Vec<&NotedRequest> = requests.iter().filter(|r| r.fault == Some(429)).collect();
    assert_eq!(
        refused.len(),
        REFUSED as usize,
        "every 429 went to this practice: {requests:#?}"
    );
    // The simulator notes when a request arrived; the client waited from when the answer
    // reached it, a little later: a small allowance for that, none for a retry at the next tick.
    let slack = jiff::SignedDuration::from_millis(50);
    for r in &refused {
        let until = r.at + jiff::SignedDuration::from_secs(RETRY_AFTER as i64) - slack;
        let early: Vec<String> = requests
            .iter()
            .filter(|o| o.at > r.at && o.at < until)
            .map(|o| format!("{} {} at {}", o.method, o.path, o.at))
            .collect();
        assert!(
            early.is_empty(),
            "requests before the Retry-After of the 429 at {} had passed: {early:?}",
            r.at
        );
    }
    x.books_again().await;
    eprintln!(
        "marketplace 429 × {REFUSED} with Retry-After {RETRY_AFTER} s: shown ({}), each waited \
         out, the booking {} {}, healthy {back:?} after the fault was set; test took {:?}",
        shown["last_error"]["message"],
        b["status"],
        b["reject_reason"],
        x.started.elapsed()
    );
}

/// The world, once a booking's webhook delivery reached the node and the booking was answered:
/// from then on the node relies on the deliveries (and polls only at its backstop).
async fn trusting_webhooks() -> World {
    let mut x = world().await;
    let (first, day) = x.book("Trusted").await;
    x.w.assert_answered_once(DEMO_SLUG, &day, first, ANSWERED)
        .await;
    x
}

/// The marketplace's webhook deliveries from now on (no other fault).
fn webhooks(x: &World, faults: WebhookFaults) {
    x.w.market.sim().set_faults(MarketFaults {
        webhooks: faults,
        ..MarketFaults::default()
    });
}

/// Webhooks trusted (a delivery reached the node), then deliveries lost, duplicated, late and
/// out of order: every booking is answered once, in time, and the node polls no more than
/// its backstop asks meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_duplicated_late_and_out_of_order_still_answer_each_booking_once() {
    let mut x = trusting_webhooks().await;
    let since = Timestamp::now();
    let set_at = Instant::now();
    for (what, faults) in [
        (
            "Duplicated",
            WebhookFaults {
                duplicate: 1,
                ..WebhookFaults::default()
            },
        ),
        (
            "Late",
            WebhookFaults {
                delay_ms: 3_000,
                ..WebhookFaults::default()
            },
        ),
    ] {
        webhooks(&x, faults);
        let (id, day) = x.book(what).await;
        let b =
            x.w.assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
                .await;
        assert_eq!(b["status"], "Confirmed", "{what}: {b}");
        eprintln!("webhook {what}: booking {id} confirmed");
    }
    // Out of order: the first booking's delivery is held back until the second's was sent.
    webhooks(
        &x,
        WebhookFaults {
            reorder: 1,
            ..WebhookFaults::default()
        },
    );
    let a = x.book("Earlier").await;
    let b = x.book("Later").await;
    for (id, day) in [a, b] {
        let got =
            x.w.assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
                .await;
        assert_eq!(got["status"], "Confirmed", "out of order: {got}");
    }
    let requests = market_requests(&x, since).len();
    let window = set_at.elapsed();
    let bound = market_bound(window);
    assert!(
        requests <= bound,
        "{requests} marketplace requests in {window:?} (bound {bound})"
    );
    x.w.market.sim().set_faults(MarketFaults::default());
    assert!(
        x.summary().await["last_error"].is_null(),
        "no error: every delivery reached the node in the end"
    );
    eprintln!(
        "webhooks duplicated, late, out of order: each booking confirmed once; {requests} \
         marketplace requests in {window:?} (bound {bound}); test took {:?}",
        x.started.elapsed()
    );
}

/// Webhooks trusted, then a delivery's first attempt lost: the marketplace logs the failure and
/// sends it again 10 s later, and the booking is still answered by the integration in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_webhook_delivery_is_made_up_for_before_the_booking_is_auto_confirmed() {
    let mut x = trusting_webhooks().await;
    webhooks(
        &x,
        WebhookFaults {
            drop: 1,
            ..WebhookFaults::default()
        },
    );
    let booked = Instant::now();
    let (id, day) = x.book("Lost").await;
    let b =
        x.w.assert_answered_once(DEMO_SLUG, &day, id, ANSWERED)
            .await;
    let answered = booked.elapsed();
    let log: Vec<Value> =
        x.w.get(&x.w.market(&format!("/webhooks?practice_id={}", x.practice)))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default();
    assert!(
        log.iter().any(|d| d["attempts"].as_u64() >= Some(2)),
        "the lost delivery was sent again: {log:?}"
    );
    eventually("the link healthy", SHOWN, || async {
        x.summary().await["last_error"].is_null().then_some(())
    })
    .await;
    eprintln!(
        "a lost webhook delivery: booking {} {} seen answered {answered:?} after it was made; \
         test took {:?}",
        b["status"],
        b["reject_reason"],
        x.started.elapsed()
    );
}

// ---- webhook deliveries as a flood -----------------------------------------------------------

/// The marketplace's `GET /requests` polls of `practice` since `since`, as the simulator noted
/// them (when each arrived).
fn polls(w: &Stack, practice: &str, since: Timestamp) -> Vec<Timestamp> {
    w.market
        .sim()
        .noted_requests()
        .into_iter()
        .filter(|r| {
            r.practice_id == practice
                && r.method == "GET"
                && r.path == "/pms-api/v1/requests"
                && r.at >= since
        })
        .map(|r| r.at)
        .collect()
}

/// `count` webhook deliveries (distinct payloads), one every 50 ms, to `node_url`'s callback
/// `token`, each naming `client`; the statuses the node answered.
async fn deliveries(w: &Stack, node_url: &str, token: &str, client: &str, count: u32) -> Vec<u16> {
    let mut statuses = Vec::new();
    for n in 0..count {
        let payload = serde_json::json!({
            "timestamp": "2026-12-01 01:00:00", "id": "sub-flood", "clientId": client,
            "topic": "requests.bookings",
            "data": {"requestType": "bookings", "bookingId": 100_000 + n}
        });
        let r = w
            .http
            .post(format!("{node_url}/webhooks/market/{token}"))
            .json(&payload)
            .send()
            .await
            .expect("a delivery");
        statuses.push(r.status().as_u16());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses
}

/// A flood of webhook deliveries over real HTTP, two nodes sharing the webhook secret (as in
/// production), each working one practice, polling the marketplace only every 2 minutes (so
/// every poll seen is a wake-up): deliveries for one link within a second cause at most one
/// poll of the marketplace per second for that practice, none for the other; deliveries to a
/// node naming a link another node works, or a link that does not exist (with a token that
/// checks out), wake nothing anywhere. See `crates/service/src/callback.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_webhook_deliveries_polls_the_marketplace_at_most_once_a_second_per_link() {
    let _ = slotbridge_testkit::logs();
    let started = Instant::now();
    let mut w = Stack::builder()
        .nodes(0)
        .admin(TOKEN, PASSWORD)
        .poll_interval(Duration::from_secs(120))
        .start()
        .await
        .expect("a SQLite stack");
    let secret = SecretString::from("the webhook secret every node shares".to_owned());
    let mut config = w.config.clone();
    config.pms_webhook_secret = Some(secret.clone());
    let first = w.start_node_with(config.clone()).await;
    config.node_id = "flood-node-2".into();
    let second = w.start_node_with(config).await;
    let harbour = w.harbour().clone();
    let annex = w.listing("Harbour Annex").expect("a second listing");
    let links: Vec<(LinkId, String)> = vec![
        (
            w.link(&harbour).await.parse().expect("link id"),
            harbour.practice_id.clone(),
        ),
        (
            w.link(&annex).await.parse().expect("link id"),
            annex.practice_id.clone(),
        ),
    ];
    eventually("each node works one practice", LINKED, || async {
        let r = w.running();
        (r.len() == 2 && r.iter().all(|(_, l)| l.len() == 1)).then_some(())
    })
    .await;
    for (_, practice) in &links {
        w.configured_then_auto_linked(practice, LINKED, &String::new)
            .await;
    }
    // Who works what: node `x` works link `x_link` (practice `x_practice`), the other node
    // the other link.
    let running = w.running();
    let (x, x_link) = (running[0].0, running[0].1[0]);
    let y_link = running[1].1[0];
    let practice_of = |l: LinkId| {
        links
            .iter()
            .find(|(id, _)| *id == l)
            .map(|(_, p)| p.clone())
            .expect("a linked practice")
    };
    let (x_practice, y_practice) = (practice_of(x_link), practice_of(y_link));
    let x_url = w.node_at(x).url();
    assert!([first, second].contains(&x));
    // Quiet first: the start sequences and the marketplace's own deliveries (the refresh
    // requests of Step 2) answered, no poll of either practice for 2 s.
    eventually("no poll for 2 s", LINKED, || async {
        let since = Timestamp::now() - jiff::SignedDuration::from_secs(2);
        (polls(&w, &x_practice, since).is_empty() && polls(&w, &y_practice, since).is_empty())
            .then_some(())
    })
    .await;

    // 40 deliveries for `x_link` in 2 s, to the node that works it.
    let since = Timestamp::now();
    let window = Instant::now();
    let token = slotbridge_service::callback::token(&secret, x_link);
    let statuses = deliveries(&w, &x_url, &token, &x_link.to_string(), 40).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every delivery accepted: {statuses:?}"
    );
    // The wake-up folded into the end of the last second happens, and its poll.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let window = window.elapsed();
    let seen = polls(&w, &x_practice, since);
    let bound = window.as_secs_f64().ceil() as usize;
    assert!(
        !seen.is_empty() && seen.len() <= bound,
        "40 deliveries in 2 s: {} polls in {window:?} (at least 1, at most one a second: \
         {bound}): {seen:?}\n{}",
        seen.len(),
        node_logs()
    );
    let gaps: Vec<jiff::SignedDuration> =
        seen.windows(2).map(|p| p[1].duration_since(p[0])).collect();
    // Wake-ups are a second apart at least; a poll follows its wake-up as soon as the worker
    // is free, so two polls may come a little closer (a busy worker), never in a loop.
    assert!(
        gaps.iter()
            .all(|g| *g >= jiff::SignedDuration::from_millis(500)),
        "polls closer than half a second apart: {gaps:?}"
    );
    assert_eq!(
        polls(&w, &y_practice, since),
        [],
        "the other practice was not woken"
    );

    // A link another node works, and a link that does not exist, named to node `x`: nothing.
    let since = Timestamp::now();
    let y_token = slotbridge_service::callback::token(&secret, y_link);
    let other = deliveries(&w, &x_url, &y_token, &y_link.to_string(), 20).await;
    let nobody = LinkId::new();
    let n_token = slotbridge_service::callback::token(&secret, nobody);
    let unknown = deliveries(&w, &x_url, &n_token, &nobody.to_string(), 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        other.iter().chain(&unknown).all(|s| *s == 200 || *s == 404),
        "refused or acknowledged, never an error: {other:?} {unknown:?}"
    );
    let (px, py) = (polls(&w, &x_practice, since), polls(&w, &y_practice, since));
    assert!(
        px.is_empty() && py.is_empty(),
        "deliveries naming another node's link or no link woke something: {px:?} {py:?}"
    );
    eprintln!(
        "40 deliveries in 2 s for one link: {} polls in {window:?} (gaps {gaps:?}); 40 naming \
         another node's or no link: none; test took {:?}",
        seen.len(),
        started.elapsed()
    );
}
