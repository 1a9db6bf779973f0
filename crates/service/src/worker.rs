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

use jiff::Timestamp;
use secrecy::ExposeSecret;
use slotbridge_domain::practice::{Diary, PracticeSetup};
use slotbridge_market::types::RequestType;
use slotbridge_market::{MarketClient, MarketError, PracticeClient, PracticeCredentials};
use slotbridge_pms::{Changes, ExactConfig, ExactConnector, PmsConnector, PmsError};
use slotbridge_store::{ConsentStatus, Link, LinkId, Store, SyncChanges, SyncError};
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
    /// Defaults: 5 s polling, 15 min resync, 20 s leases, 5000 links.
    pub fn new(node_id: impl Into<String>, pms_url: url::Url) -> Self {
        WorkerSettings {
            node_id: node_id.into(),
            pms_url,
            poll_interval: Duration::from_secs(5),
            full_resync: Duration::from_secs(15 * 60),
            lease_ttl: Duration::from_secs(20),
            max_links: 5000,
            webhooks: None,
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
}

struct Running {
    tx: mpsc::Sender<Trigger>,
    cancel: CancellationToken,
    site: String,
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
        })
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<LinkId, Running>> {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wake the worker of `link` (if this node runs it). Returns whether one was woken.
    pub fn trigger(&self, link: LinkId, trigger: Trigger) -> bool {
        self.workers()
            .get(&link)
            .map(|r| r.tx.try_send(trigger).is_ok() || r.tx.capacity() == 0)
            .unwrap_or(false)
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
    let running: Vec<Running> = ctx.workers().drain().map(|(_, r)| r).collect();
    for r in running {
        r.cancel.cancel();
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
    ctx.store
        .acquire_leases(node, ctx.settings.max_links, ctx.settings.lease_ttl, now)
        .await?;
    let held_now = ctx.store.held_leases(node, now).await?;
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
        ctx.workers().insert(
            id,
            Running {
                tx,
                cancel: child.clone(),
                site: link.site_slug.as_str().to_owned(),
            },
        );
        info!(link = %id, site = %link.site_slug, practice = %link.market_practice_id, "starting link worker");
        tokio::spawn(link_worker(ctx.clone(), id, rx, child));
    }
    Ok(())
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
    async fn sync(&self, force_config: bool, force_availability: bool) -> Result<(), SyncFailure> {
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
        Ok(())
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

    /// Poll the marketplace and answer what is waiting, bookings first.
    async fn requests(&self) -> Result<(), SyncFailure> {
        let mut waiting = self.market.poll().await?;
        self.ctx
            .store
            .update_sync_state(
                self.link.id,
                SyncChanges {
                    last_poll_at: Some(Timestamp::now()),
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
                }
                RequestType::Availability => {
                    let asked = self
                        .market
                        .all_requests::<slotbridge_market::types::AvailabilityRequest>(
                            RequestType::Availability,
                        )
                        .await?;
                    info!(link = %self.link.id, days = asked.len(), "availability requested");
                    self.sync(false, true).await?;
                }
                RequestType::Bookings | RequestType::BookingUpdates => {
                    // Handled by the booking pipeline; never dropped.
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
    let mut healthy = match run.sync(true, false).await {
        Ok(()) => true,
        Err(e) => {
            run.record_failure(&e).await;
            false
        }
    };
    if let Err(e) = run.requests().await {
        run.record_failure(&e).await;
    }
    let mut poll = tokio::time::interval(ctx.settings.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(ctx.settings.full_resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    loop {
        let (force_config, force_availability, changed, poll_requests) = tokio::select! {
            () = cancel.cancelled() => break,
            t = rx.recv() => match t {
                None => break,
                Some(first) => {
                    // Coalesce a burst of triggers into one sync.
                    let mut all = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        all.push(more);
                    }
                    (
                        all.contains(&Trigger::ResyncConfig),
                        all.contains(&Trigger::ResyncAvailability),
                        all.iter().any(|t| *t != Trigger::MarketRequests),
                        all.contains(&Trigger::MarketRequests),
                    )
                }
            },
            _ = poll.tick() => {
                let changed = match run.pms_changed().await {
                    Ok(c) => c,
                    Err(e) => { run.record_failure(&e).await; false }
                };
                (false, false, changed || !healthy, true)
            }
            _ = resync.tick() => (true, true, true, true),
        };
        if changed || force_config || force_availability {
            healthy = match run.sync(force_config || !healthy, force_availability).await {
                Ok(()) => true,
                Err(e) => {
                    run.record_failure(&e).await;
                    false
                }
            };
        }
        if poll_requests && let Err(e) = run.requests().await {
            run.record_failure(&e).await;
        }
        if poll_requests
            && let Err(e) =
                crate::bookings::on_tick(&run.ctx, &run.link, &run.pms, &run.market).await
        {
            run.record_failure(&e).await;
        }
    }
    debug!(link = %id, "link worker stopped");
}
