//! The shared context of one node: the store, the marketplace client, the settings, the clock,
//! and the link workers this node runs (owned by [`crate::supervisor`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use secrecy::ExposeSecret;
use slotbridge_domain::clock::{Clock, OffsetClock, SystemClock};
use slotbridge_market::{MarketClient, PracticeClient, PracticeCredentials};
use slotbridge_pms::{
    AnyPms, ClinikoConfig, ClinikoConnector, ClinikoKey, ExactConfig, ExactConnector, PmsError,
};
use slotbridge_store::{Link, LinkId, LinkPms, Store};

use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fence::Fence;

/// What wakes a link worker besides its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The PMS said its setup changed (or something it did not say).
    PmsChanged,
    /// The PMS said only its diary changed (appointments, blocks, closed dates, sessions): the
    /// setup read last is still good.
    DiaryChanged,
    /// The PMS said an appointment was made or removed on this practice-local day: only that
    /// day is read again and republished.
    DiaryDay(jiff::civil::Date),
    /// The marketplace said requests are waiting (a webhook).
    MarketRequests,
    /// An operator asked to resend the configuration.
    ResyncConfig,
    /// An operator asked to resend all availability.
    ResyncAvailability,
}

/// How a node works.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This node's id (unique among nodes sharing a database).
    pub node_id: String,
    /// The PMS API's base URL.
    pub pms_url: url::Url,
    /// The Cliniko API's base URL (ending in `/v1`) for every Cliniko link; `None`: the one
    /// each key's shard names (`https://api.{shard}.cliniko.com/v1`). Set for the simulator.
    pub cliniko_url: Option<url::Url>,
    /// How often each link polls the marketplace's requests and the PMS change feed.
    pub poll_interval: Duration,
    /// How often each link resends everything.
    pub full_resync: Duration,
    /// How long a lease lasts without renewal; a dead node's links are taken over after it.
    pub lease_ttl: Duration,
    /// How many links one node works at most.
    pub max_links: u32,
    /// Where the PMS and the marketplace push to this node; `None`: polling only.
    pub webhooks: Option<Webhooks>,
    /// With webhooks registered, how often the PMS change feed and the marketplace's requests
    /// are still polled, to catch what a lost delivery missed (the marketplace asks for at
    /// least hourly).
    pub backstop_poll: Duration,
    /// Added to the system clock for this node's own notion of now (tests run nodes whose
    /// clocks disagree). Leases never use it: the database's clock decides their expiry.
    pub clock_offset: SignedDuration,
    /// For crash tests only: abort the process (as `kill -9` would) at this step of the booking
    /// pipeline. Set from `SLOTBRIDGE_CRASH_AT`; never in production.
    pub crash_at: Option<CrashPoint>,
    /// How long a final booking's request (the patient's details) is kept before it is purged
    /// (default 30 days; docs/operations.md, "Retention").
    pub booking_retention: Duration,
    /// How long one PMS call may take before it fails as a timeout.
    pub pms_timeout: Duration,
}

/// A step of the booking pipeline where a crash test kills the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Bookings claimed, nothing done yet.
    AfterClaim,
    /// The patient was matched or created in the PMS and recorded.
    AfterPatient,
    /// The appointment is in the PMS diary; the store does not know yet.
    AfterInsert,
    /// Inserted and recorded; the marketplace not told yet.
    BeforeConfirm,
}

impl CrashPoint {
    /// Every point.
    pub const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterClaim,
        CrashPoint::AfterPatient,
        CrashPoint::AfterInsert,
        CrashPoint::BeforeConfirm,
    ];

    /// The name `SLOTBRIDGE_CRASH_AT` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::AfterClaim => "after_claim",
            CrashPoint::AfterPatient => "after_patient",
            CrashPoint::AfterInsert => "after_insert",
            CrashPoint::BeforeConfirm => "before_confirm",
        }
    }

    /// The point a name stands for.
    pub fn parse(s: &str) -> Option<CrashPoint> {
        CrashPoint::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl Ctx {
    /// Abort the process here if a crash test asked for it (see [`CrashPoint`]).
    pub(crate) fn crash_point(&self, at: CrashPoint) {
        if self.settings.crash_at == Some(at) {
            eprintln!("slotbridge: crash test: aborting at {}", at.as_str());
            std::process::abort();
        }
    }
}

/// A setting that would make the node misbehave, refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {field}: {message}")]
pub struct SettingsError {
    /// The setting.
    pub field: &'static str,
    /// What was expected and what was found.
    pub message: String,
}

/// This node's webhook endpoints, registered with each linked PMS site and the marketplace.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// The node's public base URL; receivers are under `/webhooks/pms` and
    /// `/webhooks/market/{link token}` ([`crate::callback`]).
    pub public_url: url::Url,
    /// The secret PMS deliveries are signed with; the marketplace callback tokens are derived
    /// from it too.
    pub pms_secret: secrecy::SecretString,
}

/// The default of [`WorkerSettings::booking_retention`]: 30 days.
pub const BOOKING_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl WorkerSettings {
    /// Defaults: 5 s polling (60 s with webhooks), 15 min resync, 10 s leases, 5000 links.
    pub fn new(node_id: impl Into<String>, pms_url: url::Url) -> Self {
        WorkerSettings {
            node_id: node_id.into(),
            pms_url,
            cliniko_url: None,
            poll_interval: Duration::from_secs(5),
            full_resync: Duration::from_secs(15 * 60),
            lease_ttl: Duration::from_secs(10),
            max_links: 5000,
            webhooks: None,
            backstop_poll: Duration::from_secs(60),
            clock_offset: SignedDuration::ZERO,
            crash_at: None,
            booking_retention: BOOKING_RETENTION,
            pms_timeout: Duration::from_secs(10),
        }
    }

    /// Refuse settings the node cannot run with, naming the setting: a zero interval (a
    /// timer that would spin or panic), a lease too short to renew, an empty node id.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let at_least = |field: &'static str, value: Duration, min: Duration| {
            if value < min {
                Err(SettingsError {
                    field,
                    message: format!("expected at least {min:?}, found {value:?}"),
                })
            } else {
                Ok(())
            }
        };
        if self.node_id.trim().is_empty() || self.node_id.len() > 128 {
            return Err(SettingsError {
                field: "node_id",
                message: format!("expected 1 to 128 characters, found {:?}", self.node_id),
            });
        }
        at_least(
            "poll_interval",
            self.poll_interval,
            Duration::from_millis(50),
        )?;
        at_least("full_resync", self.full_resync, Duration::from_secs(1))?;
        at_least(
            "backstop_poll",
            self.backstop_poll,
            Duration::from_millis(50),
        )?;
        at_least("lease_ttl", self.lease_ttl, Duration::from_millis(500))?;
        at_least("pms_timeout", self.pms_timeout, Duration::from_millis(50))?;
        if self.max_links == 0 {
            return Err(SettingsError {
                field: "max_links",
                message: "expected at least 1, found 0".into(),
            });
        }
        Ok(())
    }
}

/// Shared by the supervisor, the link workers and the HTTP layer.
pub struct Ctx {
    /// The store.
    pub store: Store,
    /// The marketplace client.
    pub market: MarketClient,
    /// The settings.
    pub settings: WorkerSettings,
    /// This node's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This node's clock: rules measured in time (the 15 s decision, the 20 s auto-confirm,
    /// the 10 min give-up) read it, so tests can drive them.
    pub clock: Arc<dyn Clock>,
    /// One HTTP client (connection pool) for every PMS connector of this node.
    http: reqwest::Client,
    pub(crate) lease_round: tokio::sync::Notify,
    /// What this node knows of the fleet's capacity (the supervisor keeps it current).
    pub capacity: Capacity,
    /// Whether the database's last write refused with its disk full (the renewer writes every
    /// round, so it sets and clears this): shown as `disk_full` on every practice.
    disk_full: std::sync::atomic::AtomicBool,
    /// Syncs (a whole horizon's diary read, computed and published) running at once.
    syncs: tokio::sync::Semaphore,
    workers: Mutex<HashMap<LinkId, Running>>,
    progress: Mutex<HashMap<LinkId, ResyncProgress>>,
}

/// How many link syncs of one node run at once. Each holds its practice's diary over the whole
/// horizon while it runs; bounding them bounds the node's memory when thousands of links start
/// together (a node's start, a take-over), and shares the cores fairly among the links.
pub const CONCURRENT_SYNCS: usize = 32;

/// The fleet's capacity as this node sees it; the supervisor updates it every lease round
/// (the unserved count once per lease time-to-live).
#[derive(Debug, Default)]
pub struct Capacity {
    /// The links this node would work without its limit: the enabled links divided among the
    /// live nodes.
    pub wanted: std::sync::atomic::AtomicU64,
    /// Whether `wanted` exceeds `max_links`: this node works all it may, and the surplus is
    /// left to other nodes, if there are any with room.
    pub at_capacity: std::sync::atomic::AtomicBool,
    /// Enabled links no node holds a lease on, fleet-wide, at the last count.
    pub unserved: std::sync::atomic::AtomicU64,
}

impl Capacity {
    /// (wanted, at capacity, unserved) now.
    pub fn read(&self) -> (u64, bool, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.wanted.load(Relaxed),
            self.at_capacity.load(Relaxed),
            self.unserved.load(Relaxed),
        )
    }
}

/// Where an operator's resync of a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncState {
    /// Asked for; the link's worker has not started it yet.
    Queued,
    /// Reading the PMS and sending.
    Running,
    /// Finished; the marketplace holds the result.
    Done,
    /// Finished with an error (see `error`).
    Failed,
}

/// The progress of the last resync an operator asked for on a link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResyncProgress {
    /// `config` or `availability`.
    pub what: &'static str,
    /// Where it is.
    pub state: ResyncState,
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// When the worker started it.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// (resource, date) pairs sent to the marketplace.
    pub sent_days: usize,
    /// (resource, date) pairs in the horizon.
    pub total_days: usize,
    /// Why it failed.
    pub error: Option<String>,
}

impl Ctx {
    /// A context; no worker runs until [`run_node`]. `metrics` is shared with the marketplace
    /// client's observer (see [`crate::metrics::Metrics::observer`]).
    pub fn new(
        store: Store,
        market: MarketClient,
        settings: WorkerSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        let clock: Arc<dyn Clock> = Arc::new(OffsetClock::new(SystemClock, settings.clock_offset));
        Arc::new(Ctx {
            clock,
            store,
            market,
            settings,
            metrics,
            http: slotbridge_pms::http_client(),
            lease_round: tokio::sync::Notify::new(),
            capacity: Capacity::default(),
            disk_full: std::sync::atomic::AtomicBool::new(false),
            syncs: tokio::sync::Semaphore::new(CONCURRENT_SYNCS),
            workers: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
        })
    }

    /// Wait for a turn to sync a link (see [`CONCURRENT_SYNCS`]).
    pub(crate) async fn sync_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.syncs.acquire().await.ok()
    }

    /// This node's clock (the system clock, shifted by `clock_offset` in tests).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<LinkId, Running>> {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wake the worker of `link` (if this node runs it). Returns whether one was woken. A
    /// resync trigger is tracked: see [`Ctx::resync_progress`].
    pub fn trigger(&self, link: LinkId, trigger: Trigger) -> bool {
        let woken = self
            .workers()
            .get(&link)
            .map(|r| r.tx.try_send(trigger).is_ok() || r.tx.capacity() == 0)
            .unwrap_or(false);
        let what = match trigger {
            Trigger::ResyncConfig => Some("config"),
            Trigger::ResyncAvailability => Some("availability"),
            _ => None,
        };
        if let (true, Some(what)) = (woken, what) {
            self.set_progress(
                link,
                ResyncProgress {
                    what,
                    state: ResyncState::Queued,
                    requested_at: self.now(),
                    started_at: None,
                    finished_at: None,
                    sent_days: 0,
                    total_days: 0,
                    error: None,
                },
            );
        }
        woken
    }

    /// The last operator resync of `link` on this node, if any.
    pub fn resync_progress(&self, link: LinkId) -> Option<ResyncProgress> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&link)
            .cloned()
    }

    fn set_progress(&self, link: LinkId, progress: ResyncProgress) {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(link, progress);
    }

    pub(crate) fn update_progress(&self, link: LinkId, f: impl FnOnce(&mut ResyncProgress)) {
        if let Some(p) = self
            .progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get_mut(&link)
        {
            f(p);
        }
    }

    /// Wake every worker of a PMS site (one site may serve several practices).
    pub fn trigger_site(&self, site: &str, trigger: Trigger) -> usize {
        self.workers()
            .values()
            .filter(|r| r.site == site)
            .filter(|r| r.tx.try_send(trigger).is_ok())
            .count()
    }

    /// Links were created or changed (here or through another node): run a lease round now
    /// instead of at the next tick. The node that works a changed link sees its new revision in
    /// its round and restarts the worker, after the bookings in flight are finished.
    pub fn links_changed(&self) {
        self.lease_round.notify_one();
    }

    /// Whether the database's disk is full: the node's last write was refused for want of
    /// space, and none has succeeded since.
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Record whether the node's last write found the disk full; whether that changed.
    pub(crate) fn set_disk_full(&self, full: bool) -> bool {
        self.disk_full
            .swap(full, std::sync::atomic::Ordering::Relaxed)
            != full
    }

    /// Whether this node runs a worker for `link` whose lease could not be renewed in time
    /// (the database unreachable, locked or full): the worker has stopped acting for it.
    pub fn lease_lapsed(&self, link: LinkId) -> bool {
        self.workers()
            .get(&link)
            .is_some_and(|r| !r.stopping && !r.fence.holds())
    }

    /// The links this node works now.
    pub fn running(&self) -> Vec<LinkId> {
        self.workers().keys().copied().collect()
    }

    /// The PMS connector for a link.
    pub fn pms_connector(&self, link: &Link) -> Result<AnyPms, PmsError> {
        let observer = Some(crate::metrics::Metrics::observer(&self.metrics, "pms"));
        match &link.pms {
            LinkPms::Exact => {
                let mut cfg = ExactConfig::new(
                    self.settings.pms_url.clone(),
                    link.site_slug.clone(),
                    link.pms_api_key.clone(),
                );
                cfg.observer = observer;
                cfg.timeout = self.settings.pms_timeout;
                Ok(ExactConnector::with_client(cfg, self.http.clone()).into())
            }
            LinkPms::Cliniko { business_id } => {
                let key = ClinikoKey::parse(link.pms_api_key.clone())?;
                let mut cfg = ClinikoConfig::new(key, business_id.clone());
                if let Some(base) = &self.settings.cliniko_url {
                    cfg = cfg.with_base_url(base.clone());
                }
                cfg.observer = observer;
                cfg.timeout = self.settings.pms_timeout;
                Ok(ClinikoConnector::with_client(cfg, self.http.clone()).into())
            }
        }
    }

    /// The marketplace client for a link's practice.
    pub fn market_for(&self, link: &Link) -> PracticeClient {
        self.market.practice(PracticeCredentials::new(
            link.market_practice_id.clone(),
            link.market_practice_key.expose_secret().to_owned(),
        ))
    }
}

/// How a link worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    /// The supervisor stopped it (node shutdown, a change of the link, handing it back).
    Stopped,
    /// Its fence no longer held: another node may hold the link now.
    Fenced,
    /// The link no longer exists.
    Gone,
    /// It failed; the supervisor restarts it with backoff and shows the reason on the link.
    Failed(String),
}

/// How the supervisor sees one worker.
pub(crate) struct Running {
    pub(crate) tx: mpsc::Sender<Trigger>,
    pub(crate) site: String,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<WorkerExit>,
    pub(crate) fence: Arc<Fence>,
    pub(crate) revision: i64,
    /// Set before `cancel` when the worker must first finish its bookings in flight.
    pub(crate) drain: Arc<AtomicBool>,
    /// The lease is to be released once the worker ended (balancing or a disabled link).
    pub(crate) hand_back: bool,
    /// The supervisor stopped it (its lease was lost, or it is being restarted).
    pub(crate) stopping: bool,
    /// When it started.
    pub(crate) started: std::time::Instant,
}
