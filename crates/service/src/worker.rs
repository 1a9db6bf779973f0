//! The node's work: hold leases on links, and for each held link run one worker that keeps the
//! marketplace in step with the PMS and answers the marketplace's requests.
//!
//! A link worker:
//! - on start (a new lease, link creation or re-enable) sends the configuration (liveness
//!   contract, resources, appointment types), publishes the availability and checks for
//!   outstanding requests (suggested-testing: linking, re-enabling);
//! - on a PMS change (a webhook from the PMS, or the change feed at each tick) re-reads the
//!   setup and diary and sends what changed: config snapshots by hash, availability per
//!   (resource, date) by hash;
//! - polls the marketplace's requests every tick (5 s by default) and answers them, bookings
//!   first;
//! - resyncs everything periodically, and on the operator's request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use secrecy::ExposeSecret;
use slotbridge_domain::practice::{Diary, PracticeSetup};
use slotbridge_market::types::RequestType;
use slotbridge_market::{MarketClient, MarketError, PracticeClient, PracticeCredentials};
use slotbridge_pms::{Changes, ExactConfig, ExactConnector, PmsConnector, PmsError};
use slotbridge_store::{
    ConsentStatus, Link, LinkId, NewMarketRequest, Store, SyncChanges, SyncError,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::publisher::{self, PublishError};

/// What wakes a link worker besides its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The PMS said the diary or setup changed.
    PmsChanged,
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
}

/// This node's webhook endpoints, registered with each linked PMS site and the marketplace.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// The node's public base URL; receivers are under `/webhooks/pms` and `/webhooks/market`.
    pub public_url: url::Url,
    /// The secret PMS deliveries are signed with.
    pub pms_secret: secrecy::SecretString,
}

impl WorkerSettings {
    /// Defaults: 5 s polling (60 s with webhooks), 15 min resync, 10 s leases, 5000 links.
    pub fn new(node_id: impl Into<String>, pms_url: url::Url) -> Self {
        WorkerSettings {
            node_id: node_id.into(),
            pms_url,
            poll_interval: Duration::from_secs(5),
            full_resync: Duration::from_secs(15 * 60),
            lease_ttl: Duration::from_secs(10),
            max_links: 5000,
            webhooks: None,
            backstop_poll: Duration::from_secs(60),
        }
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
    /// One HTTP client (connection pool) for every PMS connector of this node.
    http: reqwest::Client,
    lease_round: tokio::sync::Notify,
    workers: Mutex<HashMap<LinkId, Running>>,
    progress: Mutex<HashMap<LinkId, ResyncProgress>>,
}

struct Running {
    tx: mpsc::Sender<Trigger>,
    cancel: CancellationToken,
    site: String,
    task: tokio::task::JoinHandle<()>,
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
        Arc::new(Ctx {
            store,
            market,
            settings,
            metrics,
            http: reqwest::Client::new(),
            lease_round: tokio::sync::Notify::new(),
            workers: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
        })
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<LinkId, Running>> {
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
                    requested_at: Timestamp::now(),
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

    fn update_progress(&self, link: LinkId, f: impl FnOnce(&mut ResyncProgress)) {
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

    /// Wake every worker (a marketplace webhook names no practice we can map cheaply).
    pub fn trigger_all(&self, trigger: Trigger) {
        for r in self.workers().values() {
            let _ = r.tx.try_send(trigger);
        }
    }

    /// A marketplace webhook: wake the link it names (our subscriptions carry the link id as
    /// `clientId`), or every link when it names none we know.
    pub fn market_payload(&self, payload: &slotbridge_market::types::WebhookPayload) {
        let link = payload
            .client_id
            .as_deref()
            .and_then(|c| c.parse::<LinkId>().ok());
        debug!(topic = ?payload.topic, ?link, "marketplace webhook");
        match link {
            Some(id) if self.trigger(id, Trigger::MarketRequests) => {}
            _ => self.trigger_all(Trigger::MarketRequests),
        }
    }

    /// Links were created, enabled or moved: run a lease round now instead of at the next tick.
    pub fn links_changed(&self) {
        self.lease_round.notify_one();
    }

    /// Stop the worker of `link` if this node runs it; the lease round that follows at once
    /// starts it again (with a full configuration send) if the link is still enabled and held.
    pub fn restart(&self, link: LinkId) {
        if let Some(r) = self.workers().remove(&link) {
            r.cancel.cancel();
        }
        self.links_changed();
    }

    /// The links this node works now.
    pub fn running(&self) -> Vec<LinkId> {
        self.workers().keys().copied().collect()
    }

    /// The PMS connector for a link.
    pub fn pms_connector(&self, link: &Link) -> ExactConnector {
        let mut cfg = ExactConfig::new(
            self.settings.pms_url.clone(),
            link.site_slug.clone(),
            link.pms_api_key.clone(),
        );
        cfg.observer = Some(crate::metrics::Metrics::observer(&self.metrics, "pms"));
        ExactConnector::with_client(cfg, self.http.clone())
    }

    fn market_for(&self, link: &Link) -> PracticeClient {
        self.market.practice(PracticeCredentials::new(
            link.market_practice_id.clone(),
            link.market_practice_key.expose_secret().to_owned(),
        ))
    }
}

/// Hold leases and run link workers until `cancel`; then stop the workers and release the
/// leases so another node takes over at once.
pub async fn run_node(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let tick = (ctx.settings.lease_ttl / 4).max(Duration::from_millis(200));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = interval.tick() => {}
            () = ctx.lease_round.notified() => {}
        }
        if let Err(e) = supervise(&ctx, &cancel).await {
            warn!(error = %e, "lease round failed");
        }
    }
    // Graceful: each worker finishes the step it is in (an in-flight booking included) before
    // the leases are released.
    let running: Vec<Running> = ctx.workers().drain().map(|(_, r)| r).collect();
    for r in &running {
        r.cancel.cancel();
    }
    let finish = futures::future::join_all(running.into_iter().map(|r| r.task));
    if tokio::time::timeout(Duration::from_secs(30), finish)
        .await
        .is_err()
    {
        warn!("link workers did not finish within 30 s; releasing their leases anyway");
    }
    if let Err(e) = ctx.store.release_leases(&ctx.settings.node_id).await {
        warn!(error = %e, "releasing leases failed");
    }
}

async fn supervise(
    ctx: &Arc<Ctx>,
    cancel: &CancellationToken,
) -> Result<(), slotbridge_store::StoreError> {
    let now = Timestamp::now();
    let node = ctx.settings.node_id.as_str();
    ctx.store.heartbeat(node, now).await?;
    ctx.store
        .renew_leases(node, ctx.settings.lease_ttl, now)
        .await?;
    // Share the links evenly among the live nodes: take up to a fair share, and hand back what
    // is above it (a node that just joined then gets its part on its next round).
    let share = fair_share(ctx, now).await?;
    ctx.store
        .acquire_leases(node, share, ctx.settings.lease_ttl, now)
        .await?;
    let mut held_now = ctx.store.held_leases(node, now).await?;
    if held_now.len() > share as usize {
        let shed: Vec<LinkId> = held_now.split_off(share as usize);
        hand_back(ctx, &shed).await;
    }
    // Stop workers whose lease was lost or whose link was disabled.
    let lost: Vec<LinkId> = ctx
        .workers()
        .keys()
        .filter(|id| !held_now.contains(id))
        .copied()
        .collect();
    for id in lost {
        if let Some(r) = ctx.workers().remove(&id) {
            info!(link = %id, "lease lost; stopping worker");
            r.cancel.cancel();
        }
    }
    for id in held_now {
        if ctx.workers().contains_key(&id) {
            continue;
        }
        let Some(link) = ctx.store.link(id).await? else {
            continue;
        };
        if !link.enabled {
            let _ = ctx.store.release_lease(node, id).await;
            continue;
        }
        let (tx, rx) = mpsc::channel(16);
        let child = cancel.child_token();
        info!(link = %id, site = %link.site_slug, practice = %link.market_practice_id, "starting link worker");
        let task = tokio::spawn(link_worker(ctx.clone(), id, rx, child.clone()));
        ctx.workers().insert(
            id,
            Running {
                tx,
                cancel: child,
                site: link.site_slug.as_str().to_owned(),
                task,
            },
        );
    }
    Ok(())
}

/// How many links this node should work: the enabled links divided among the nodes seen within
/// one lease time-to-live (rounded up), at most `max_links`.
async fn fair_share(ctx: &Ctx, now: Timestamp) -> Result<u32, slotbridge_store::StoreError> {
    let ttl = jiff::SignedDuration::try_from(ctx.settings.lease_ttl).unwrap_or_default();
    let live = ctx
        .store
        .nodes(now)
        .await?
        .iter()
        .filter(|n| now.duration_since(n.last_seen_at) <= ttl)
        .count()
        .max(1);
    let enabled = usize::try_from(ctx.store.count_enabled_links().await?).unwrap_or(usize::MAX);
    let share = enabled.div_ceil(live).max(1);
    Ok(u32::try_from(share)
        .unwrap_or(u32::MAX)
        .min(ctx.settings.max_links))
}

/// Stop the workers of `links`, wait for their current step to finish, then release their
/// leases, so the node that takes them over never works one practice at the same time as this.
async fn hand_back(ctx: &Arc<Ctx>, links: &[LinkId]) {
    let stopping: Vec<Running> = {
        let mut workers = ctx.workers();
        links.iter().filter_map(|id| workers.remove(id)).collect()
    };
    for r in &stopping {
        r.cancel.cancel();
    }
    let finish = futures::future::join_all(stopping.into_iter().map(|r| r.task));
    if tokio::time::timeout(Duration::from_secs(30), finish)
        .await
        .is_err()
    {
        warn!("handed-back workers did not finish within 30 s");
    }
    for id in links {
        info!(link = %id, "handing the link to a less loaded node");
        if let Err(e) = ctx.store.release_lease(&ctx.settings.node_id, *id).await {
            warn!(link = %id, error = %e, "releasing a lease failed");
        }
    }
}

/// Why a sync step failed, in the terms the diagnostics use.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The PMS failed.
    #[error("PMS: {0}")]
    Pms(#[from] PmsError),
    /// Publishing failed.
    #[error("{0}")]
    Publish(#[from] PublishError),
    /// The marketplace failed.
    #[error("marketplace: {0}")]
    Market(#[from] MarketError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] slotbridge_store::StoreError),
}

impl SyncFailure {
    fn kind(&self) -> &'static str {
        match self {
            SyncFailure::Pms(PmsError::Unauthorized { .. }) => "pms_unauthorized",
            SyncFailure::Pms(PmsError::KeyRevoked { .. }) => "pms_key_revoked",
            SyncFailure::Pms(_) => "pms",
            SyncFailure::Publish(PublishError::Market(MarketError::ConsentMissing { .. }))
            | SyncFailure::Market(MarketError::ConsentMissing { .. }) => "consent_missing",
            SyncFailure::Publish(PublishError::Market(_)) | SyncFailure::Market(_) => "market",
            SyncFailure::Publish(_) => "publish",
            SyncFailure::Store(_) => "store",
        }
    }

    fn consent_missing(&self) -> bool {
        self.kind() == "consent_missing"
    }
}

/// One link's state between wake-ups.
struct LinkRun {
    ctx: Arc<Ctx>,
    link: Link,
    pms: ExactConnector,
    market: PracticeClient,
}

/// What a sync sent.
#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    days: usize,
    sent: usize,
}

/// Which pushes a link worker receives; without one, it polls that side every tick.
#[derive(Debug, Clone, Copy, Default)]
struct Pushed {
    pms: bool,
    market: bool,
}

impl LinkRun {
    async fn read_pms(&self, now: Timestamp) -> Result<(PracticeSetup, Diary), SyncFailure> {
        let setup = self.pms.read_setup().await?;
        let horizon = u32::try_from(self.link.horizon_days.get()).unwrap_or(30);
        let dates = publisher::horizon_dates(&setup, now, horizon);
        let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
            return Ok((setup, Diary::default()));
        };
        let end = last.tomorrow().unwrap_or(*last);
        let diary = self.pms.read_diary(*first, end).await?;
        Ok((setup, diary))
    }

    /// Read the PMS and publish what changed (everything when `force`).
    async fn sync(
        &self,
        force_config: bool,
        force_availability: bool,
    ) -> Result<Synced, SyncFailure> {
        let now = Timestamp::now();
        let (setup, diary) = self.read_pms(now).await?;
        self.ctx
            .store
            .update_sync_state(
                self.link.id,
                SyncChanges {
                    last_pms_read_at: Some(now),
                    ..SyncChanges::default()
                },
            )
            .await?;
        let config = publisher::publish_config(
            &self.ctx.store,
            &self.market,
            &self.link,
            &setup,
            force_config,
            now,
        )
        .await?;
        let avail = publisher::publish_availability(
            &self.ctx.store,
            &self.market,
            &self.link,
            &setup,
            &diary,
            force_availability,
            now,
        )
        .await?;
        crate::bookings::after_sync(&self.ctx, &self.link, &self.market, &setup, &diary).await?;
        debug!(link = %self.link.id, ?config, sent = avail.sent, slots = avail.slots, "synced");
        if !avail.failed.is_empty() {
            warn!(link = %self.link.id, failed = ?avail.failed, "marketplace refused some availability");
        }
        self.ctx
            .store
            .update_sync_state(
                self.link.id,
                SyncChanges {
                    last_publish_at: Some(Timestamp::now()),
                    last_error: Some(None),
                    consent: Some(ConsentStatus::Granted),
                    ..SyncChanges::default()
                },
            )
            .await?;
        Ok(Synced {
            days: avail.days,
            sent: avail.sent,
        })
    }

    /// Register this node's webhooks with the PMS site and the marketplace practice (replacing
    /// earlier ones). What fails is logged and left to polling.
    async fn subscribe(&self) -> Pushed {
        let Some(hooks) = &self.ctx.settings.webhooks else {
            return Pushed::default();
        };
        let base = hooks.public_url.as_str().trim_end_matches('/');
        let pms = match self
            .pms
            .register_webhook(&format!("{base}/webhooks/pms"), &hooks.pms_secret)
            .await
        {
            Ok(id) => {
                debug!(link = %self.link.id, webhook = %id, "PMS webhook registered");
                true
            }
            Err(e) => {
                warn!(link = %self.link.id, error = %e, "PMS webhook not registered; polling the change feed");
                false
            }
        };
        let subscription = slotbridge_market::types::Subscription {
            id: None,
            client_id: Some(self.link.id.to_string()),
            topic: slotbridge_market::types::SubscriptionTopic::All,
            callback_url: format!("{base}/webhooks/market"),
            start_at: None,
            expire_at: Timestamp::now()
                .checked_add(SignedDuration::from_hours(48))
                .ok(),
        };
        let market = match self.market.create_subscription(&subscription).await {
            Ok(sub) => {
                debug!(link = %self.link.id, subscription = ?sub.id, "marketplace subscription in place");
                true
            }
            Err(e) => {
                warn!(link = %self.link.id, error = %e, "marketplace subscription failed; polling requests");
                false
            }
        };
        Pushed { pms, market }
    }

    /// Whether the PMS change feed has anything after our cursor (and move the cursor on).
    async fn pms_changed(&self) -> Result<bool, SyncFailure> {
        let state = self.ctx.store.sync_state(self.link.id).await?;
        let (changed, cursor) = match self
            .pms
            .read_changes(state.change_cursor.as_deref())
            .await?
        {
            Changes::Page(page) => (!page.changes.is_empty(), page.next_cursor),
            Changes::CursorExpired => match self.pms.read_changes(None).await? {
                Changes::Page(page) => (true, page.next_cursor),
                Changes::CursorExpired => (true, String::new()),
            },
        };
        if state.change_cursor.as_deref() != Some(cursor.as_str()) {
            self.ctx
                .store
                .update_sync_state(
                    self.link.id,
                    SyncChanges {
                        change_cursor: Some(Some(cursor)),
                        ..SyncChanges::default()
                    },
                )
                .await?;
        }
        Ok(changed && state.change_cursor.is_some())
    }

    /// Log a request the worker answers itself, and its answer, in the request log.
    async fn log_request(&self, kind: RequestType, received: Timestamp, detail: String) {
        let id = format!(
            "{}-{}-{}",
            kind.as_str(),
            self.link.id,
            received.as_microsecond()
        );
        let logged = self
            .ctx
            .store
            .record_request(&NewMarketRequest {
                request_id: id.clone(),
                kind: kind.as_str().to_owned(),
                link_id: Some(self.link.id),
                received_at: received,
            })
            .await;
        let finished = match logged {
            Ok(_) => {
                self.ctx
                    .store
                    .finish_request(&id, "answered", Some(&detail), Timestamp::now())
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = finished {
            warn!(link = %self.link.id, error = %e, "request log write failed");
        }
    }

    /// Poll the marketplace and answer what is waiting, bookings first.
    async fn requests(&self) -> Result<(), SyncFailure> {
        let mut waiting = self.market.poll().await?;
        let polled = Timestamp::now();
        self.ctx
            .store
            .update_sync_state(
                self.link.id,
                SyncChanges {
                    last_poll_at: Some(polled),
                    ..SyncChanges::default()
                },
            )
            .await?;
        waiting.sort_by_key(|t| priority(*t));
        waiting.dedup();
        for kind in waiting {
            match kind {
                RequestType::PmsResources | RequestType::PmsAppointmentTypes => {
                    info!(link = %self.link.id, request = kind.as_str(), "configuration requested");
                    self.sync(true, false).await?;
                    self.log_request(kind, polled, "configuration snapshots sent".into())
                        .await;
                }
                RequestType::Availability => {
                    let asked = self
                        .market
                        .all_requests::<slotbridge_market::types::AvailabilityRequest>(
                            RequestType::Availability,
                        )
                        .await?;
                    info!(link = %self.link.id, days = asked.len(), "availability requested");
                    let synced = self.sync(false, true).await?;
                    let days: Vec<String> = asked
                        .iter()
                        .map(|a| format!("{} {}", a.day, a.resource().unwrap_or("all resources")))
                        .collect();
                    self.log_request(
                        kind,
                        polled,
                        format!(
                            "asked for {}; sent {} of {} day snapshots",
                            days.join(", "),
                            synced.sent,
                            synced.days
                        ),
                    )
                    .await;
                }
                RequestType::Bookings | RequestType::BookingUpdates => {
                    // Handled by the booking pipeline, which keeps its own log; never dropped.
                    crate::bookings::handle(&self.ctx, &self.link, &self.pms, &self.market, kind)
                        .await?;
                }
                other => {
                    debug!(link = %self.link.id, request = other.as_str(), "request type not used by this integration")
                }
            }
        }
        Ok(())
    }

    async fn record_failure(&self, e: &SyncFailure) {
        warn!(link = %self.link.id, kind = e.kind(), error = %e, "sync failed");
        self.ctx.metrics.error(e.kind());
        let changes = SyncChanges {
            last_error: Some(Some(SyncError {
                kind: e.kind().to_owned(),
                message: e.to_string(),
                at: Timestamp::now(),
            })),
            consent: e.consent_missing().then_some(ConsentStatus::Withdrawn),
            ..SyncChanges::default()
        };
        if let Err(err) = self
            .ctx
            .store
            .update_sync_state(self.link.id, changes)
            .await
        {
            warn!(link = %self.link.id, error = %err, "recording the failure failed");
        }
    }

    /// Sync, and account for it: metrics, the failure record, and the operator's resync
    /// progress when `resync` names one. Returns whether it succeeded.
    async fn sync_step(
        &self,
        force_config: bool,
        force_availability: bool,
        cause: &'static str,
        woken: std::time::Instant,
        resync: bool,
    ) -> bool {
        let id = self.link.id;
        if resync {
            self.ctx.update_progress(id, |p| {
                p.state = ResyncState::Running;
                p.started_at = Some(Timestamp::now());
            });
        }
        let result = self.sync(force_config, force_availability).await;
        self.ctx.metrics.published(cause, woken.elapsed());
        if resync {
            self.ctx.update_progress(id, |p| {
                p.finished_at = Some(Timestamp::now());
                match &result {
                    Ok(synced) => {
                        p.state = ResyncState::Done;
                        p.sent_days = synced.sent;
                        p.total_days = synced.days;
                    }
                    Err(e) => {
                        p.state = ResyncState::Failed;
                        p.error = Some(e.to_string());
                    }
                }
            });
        }
        match result {
            Ok(_) => true,
            Err(e) => {
                self.record_failure(&e).await;
                false
            }
        }
    }
}

/// Booking and booking-update requests first: other request types may depend on a booking.
fn priority(t: RequestType) -> u8 {
    match t {
        RequestType::Bookings => 0,
        RequestType::BookingUpdates => 1,
        RequestType::Availability => 2,
        RequestType::PmsAppointmentChanges => 3,
        RequestType::PmsResources | RequestType::PmsAppointmentTypes => 4,
        _ => 5,
    }
}

/// What one wake-up of a link worker does.
struct Wake {
    force_config: bool,
    force_availability: bool,
    sync: bool,
    requests: bool,
    cause: &'static str,
    resync: bool,
}

async fn link_worker(
    ctx: Arc<Ctx>,
    id: LinkId,
    mut rx: mpsc::Receiver<Trigger>,
    cancel: CancellationToken,
) {
    let link = match ctx.store.link(id).await {
        Ok(Some(link)) => link,
        Ok(None) => return,
        Err(e) => {
            warn!(link = %id, error = %e, "cannot load link");
            return;
        }
    };
    let run = LinkRun {
        pms: ctx.pms_connector(&link),
        market: ctx.market_for(&link),
        ctx: ctx.clone(),
        link,
    };
    // Link or re-enable: configuration first, then availability, then outstanding requests.
    // The change feed's cursor is taken first, so a change made before the webhook is registered
    // is still seen below.
    if let Err(e) = run.pms_changed().await {
        run.record_failure(&e).await;
    }
    let started = std::time::Instant::now();
    let mut healthy = run.sync_step(true, false, "start", started, false).await;
    let mut pushed = run.subscribe().await;
    if pushed.pms && matches!(run.pms_changed().await, Ok(true)) {
        healthy = run
            .sync_step(false, false, "start", std::time::Instant::now(), false)
            .await;
    }
    if let Err(e) = run.requests().await {
        run.record_failure(&e).await;
    }
    let mut poll = tokio::time::interval(ctx.settings.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(ctx.settings.full_resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    let backstop = ctx.settings.backstop_poll;
    let mut last_changes_poll = std::time::Instant::now();
    let mut last_requests_poll = std::time::Instant::now();
    loop {
        let woken = std::time::Instant::now();
        let wake = tokio::select! {
            () = cancel.cancelled() => break,
            t = rx.recv() => match t {
                None => break,
                Some(first) => {
                    // Coalesce a burst of triggers into one sync.
                    let mut all = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        all.push(more);
                    }
                    let resync = all.iter().any(|t| {
                        matches!(t, Trigger::ResyncConfig | Trigger::ResyncAvailability)
                    });
                    Wake {
                        force_config: all.contains(&Trigger::ResyncConfig),
                        force_availability: all.contains(&Trigger::ResyncAvailability),
                        sync: all.iter().any(|t| *t != Trigger::MarketRequests),
                        requests: all.contains(&Trigger::MarketRequests),
                        cause: if resync { "resync" } else { "pms_event" },
                        resync,
                    }
                }
            },
            _ = poll.tick() => {
                let changed = if !pushed.pms || last_changes_poll.elapsed() >= backstop {
                    last_changes_poll = std::time::Instant::now();
                    match run.pms_changed().await {
                        Ok(c) => c,
                        Err(e) => { run.record_failure(&e).await; false }
                    }
                } else {
                    false
                };
                let requests = !pushed.market || last_requests_poll.elapsed() >= backstop;
                Wake {
                    force_config: false,
                    force_availability: false,
                    sync: changed || !healthy,
                    requests,
                    cause: "poll",
                    resync: false,
                }
            }
            _ = resync.tick() => {
                // The periodic full resync also renews the webhook registrations.
                pushed = run.subscribe().await;
                Wake {
                    force_config: true,
                    force_availability: true,
                    sync: true,
                    requests: true,
                    cause: "periodic",
                    resync: false,
                }
            }
        };
        if wake.sync || wake.force_config || wake.force_availability {
            healthy = run
                .sync_step(
                    wake.force_config || !healthy,
                    wake.force_availability,
                    wake.cause,
                    woken,
                    wake.resync,
                )
                .await;
        }
        if wake.requests {
            last_requests_poll = std::time::Instant::now();
            if let Err(e) = run.requests().await {
                run.record_failure(&e).await;
            }
        }
        if let Err(e) = crate::bookings::on_tick(&run.ctx, &run.link, &run.pms, &run.market).await {
            run.record_failure(&e).await;
        }
    }
    debug!(link = %id, "link worker stopped");
}
