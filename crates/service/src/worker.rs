//! One link's worker: keeps the marketplace in step with the PMS and answers the marketplace's
//! requests, under a fenced lease (see [`crate::supervisor`]).
//!
//! A link worker:
//! - on start (a new lease, link creation, a change of the link, re-enable) sends the
//!   configuration (liveness contract, resources, appointment types), publishes the
//!   availability and checks for outstanding requests (suggested-testing: linking, re-enabling);
//! - on a PMS change (a webhook from the PMS, or the change feed at each tick) re-reads the
//!   setup and diary and sends what changed: config snapshots by hash, availability per
//!   (resource, date) by hash;
//! - polls the marketplace's requests every tick (5 s by default) and answers them, bookings
//!   first;
//! - resyncs everything periodically, and on the operator's request;
//! - backs off with jitter (up to 60 s) after a transient failure, and parks after a lasting
//!   one (a PMS key refused or revoked, marketplace consent missing) until the link changes or
//!   an operator resyncs; bookings are still answered while publishing backs off;
//! - stops at once when its fence no longer holds, and, when stopped because its link changed
//!   or was disabled, first finishes the bookings in flight with the settings it started with.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use slotbridge_domain::backoff::{Breaker, BreakerState, FailureClass, Jitter, Lasting};
use slotbridge_domain::horizon::Horizon;
use slotbridge_domain::practice::{Diary, PracticeSetup};
use slotbridge_market::PracticeClient;
use slotbridge_market::types::RequestType;
use slotbridge_pms::{ChangeScope, Changes, PmsConnector, PmsError};
use slotbridge_store::{
    ConsentStatus, Lease, Link, NewMarketRequest, SetupFindings, SyncChanges, SyncError,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use crate::ctx::{Ctx, ResyncState, Trigger, WorkerExit};
use crate::failure::{FailureKind, SyncFailure};
use crate::fence::{Fence, FencedPms};
use crate::publisher;
use crate::subscriptions::Deliveries;

/// How long a setup read is reused when no change of the setup was seen since.
const SETUP_FRESH: Duration = Duration::from_secs(60);

/// The worker's PMS connector: the setup read last is kept and reused (by syncs after diary
/// changes and by booking rounds) until a change of the setup is seen or [`SETUP_FRESH`]
/// passed; every other call goes through.
struct CachedSetup<P> {
    inner: P,
    kept: std::sync::Mutex<Option<(PracticeSetup, Instant)>>,
}

impl<P> CachedSetup<P> {
    fn new(inner: P) -> Self {
        CachedSetup {
            inner,
            kept: std::sync::Mutex::new(None),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(PracticeSetup, Instant)>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The setup may have changed: read it again next time.
    fn forget(&self) {
        *self.kept() = None;
    }
}

impl<P: PmsConnector> PmsConnector for CachedSetup<P> {
    fn capabilities(&self) -> slotbridge_pms::Capabilities {
        self.inner.capabilities()
    }

    async fn read_setup(&self) -> Result<PracticeSetup, PmsError> {
        if let Some((setup, at)) = self.kept().as_ref()
            && at.elapsed() < SETUP_FRESH
        {
            return Ok(setup.clone());
        }
        let setup = self.inner.read_setup().await?;
        *self.kept() = Some((setup.clone(), Instant::now()));
        Ok(setup)
    }

    async fn read_diary(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Diary, PmsError> {
        self.inner.read_diary(from, to).await
    }

    async fn read_appointment(
        &self,
        id: &str,
    ) -> Result<Option<slotbridge_domain::practice::DiaryAppointment>, PmsError> {
        self.inner.read_appointment(id).await
    }

    async fn insert_appointment(
        &self,
        new: &slotbridge_pms::NewAppointment,
    ) -> Result<slotbridge_pms::Inserted, PmsError> {
        self.inner.insert_appointment(new).await
    }

    async fn create_patient(
        &self,
        new: &slotbridge_pms::NewPatient,
    ) -> Result<slotbridge_pms::Patient, PmsError> {
        self.inner.create_patient(new).await
    }

    async fn search_patients(
        &self,
        query: &slotbridge_pms::PatientQuery,
    ) -> Result<Vec<slotbridge_pms::Patient>, PmsError> {
        self.inner.search_patients(query).await
    }

    async fn read_changes(&self, since: Option<&str>) -> Result<Changes, PmsError> {
        self.inner.read_changes(since).await
    }

    async fn register_webhook(
        &self,
        url: &str,
        secret: &secrecy::SecretString,
    ) -> Result<String, PmsError> {
        self.inner.register_webhook(url, secret).await
    }
}

/// One link's state between wake-ups.
struct LinkRun<P> {
    ctx: Arc<Ctx>,
    fence: Arc<Fence>,
    link: Link,
    pms: CachedSetup<FencedPms<P>>,
    market: PracticeClient,
    /// Set when a booking round found the marketplace's availability stale.
    refresh: AtomicBool,
    /// The oldest PMS change seen and not yet published (freshness is measured from it).
    pending_change: std::sync::Mutex<Option<Timestamp>>,
    /// The link's outbox may hold bookings to work: set at start and whenever bookings were
    /// taken in, cleared once none is in flight. Only the link's worker adds bookings to its
    /// outbox (under its lease), so an idle link's tick asks the database nothing; at 10,000
    /// links a look at every tick was 2,000 queries a second for nothing.
    outbox: AtomicBool,
    /// When the time of the last marketplace poll was last stored (see [`POLL_RECORDED_EVERY`]).
    poll_recorded: std::sync::Mutex<Option<Instant>>,
    /// The worker's span (every log line of the worker carries it), and the practice name it
    /// holds: recorded when the PMS first names the practice, and when the name changes.
    span: tracing::Span,
    span_name: std::sync::Mutex<Option<String>>,
}

/// How often the time of the last marketplace poll is stored when the polls find nothing (it
/// is shown on the console): a write at every 5 s poll of 10,000 links was 2,000 writes a
/// second on the database's write lock, which the lease renewals wait for.
const POLL_RECORDED_EVERY: Duration = Duration::from_secs(60);

/// What a sync sent.
#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    days: usize,
    sent: usize,
}

/// Which pushes a link worker receives; without one, it polls that side every tick.
#[derive(Debug, Clone, Default)]
struct Pushed {
    /// The PMS webhook is registered.
    pms: bool,
    /// The marketplace subscription in place.
    market: Option<String>,
}

/// How long a changed or disabled link's worker spends finishing its bookings in flight: the
/// marketplace confirms a booking by itself 20 s after the patient booked.
const DRAIN_WITHIN: Duration = Duration::from_secs(20);

impl<P: PmsConnector> LinkRun<P> {
    fn lease(&self) -> &Lease {
        self.fence.lease()
    }

    /// Put the practice's name on the worker's span when it is new or changed.
    fn name_span(&self, name: &str) {
        let mut known = self
            .span_name
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if name.is_empty() || known.as_deref() == Some(name) {
            return;
        }
        self.span.record("name", name);
        *known = Some(name.to_owned());
    }

    /// Where this worker publishes.
    fn target(&self) -> publisher::Target<'_> {
        publisher::Target {
            store: &self.ctx.store,
            lease: self.lease(),
            market: &self.market,
            link: &self.link,
        }
    }

    async fn read_pms(&self, now: Timestamp) -> Result<(PracticeSetup, Diary), SyncFailure> {
        let setup = self.pms.read_setup().await?;
        let horizon = Horizon::new(setup.timezone.time_zone(), now, self.link.horizon_days);
        let diary = self.pms.read_diary(horizon.start(), horizon.end()).await?;
        Ok((setup, diary))
    }

    /// Read the PMS and publish what changed (everything when `force`).
    /// `days`: only these days changed (appointments made or removed): read and republish just
    /// them, from the setup read last (the configuration is not sent).
    async fn sync(
        &self,
        force_config: bool,
        force_availability: bool,
        days: Option<&BTreeSet<Date>>,
    ) -> Result<Synced, SyncFailure> {
        if force_config {
            // Configuration sent on purpose (start, resync, the marketplace's request): from a
            // fresh read of the setup.
            self.pms.forget();
        }
        // At most a few syncs of this node hold a whole horizon's diary at once: a node that
        // starts (or takes over) thousands of links reads them in turn, not all together.
        let _permit = self.ctx.sync_permit().await;
        let now = self.ctx.now();
        let scoped = days
            .filter(|_| !force_config && !force_availability)
            .and_then(|d| Some((d, *d.first()?, *d.last()?)));
        let (setup, diary) = match scoped {
            Some((_, from, to)) => {
                let setup = self.pms.read_setup().await?;
                let diary = self
                    .pms
                    .read_diary(from, to.tomorrow().unwrap_or(to))
                    .await?;
                (setup, diary)
            }
            None => self.read_pms(now).await?,
        };
        // The practice's name, and (from a whole-horizon read) the setup's findings, kept with
        // the sync state so the practice list needs no PMS call.
        let setup_findings = match scoped {
            Some(_) => None,
            None => Some(setup_findings(&setup, &diary, now, self.link.horizon_days)),
        };
        self.ctx
            .store
            .update_sync_state(
                self.lease(),
                SyncChanges {
                    last_pms_read_at: Some(now),
                    pms_practice_name: Some(setup.name.clone()),
                    setup_findings,
                    ..SyncChanges::default()
                },
            )
            .await?;
        self.name_span(&setup.name);
        let to = self.target();
        // A day-scoped read holds those days' sessions only: the configuration (opening hours
        // included) is sent from whole-horizon reads.
        let config = match scoped {
            Some(_) => publisher::ConfigOutcome::default(),
            None => publisher::publish_config(to, &setup, &diary.hours, force_config, now).await?,
        };
        let avail = publisher::publish_availability(
            to,
            &setup,
            &diary,
            force_availability,
            scoped.map(|(d, _, _)| d),
            now,
        )
        .await?;
        crate::bookings::after_sync(
            &self.ctx,
            self.lease(),
            &self.link,
            &self.market,
            &setup,
            &diary,
            scoped.map(|(_, from, to)| (from, to)),
        )
        .await?;
        debug!(link = %self.link.id, ?config, sent = avail.sent, slots = avail.slots, "synced");
        if !avail.failed.is_empty() {
            warn!(link = %self.link.id, failed = ?avail.failed, "marketplace refused some availability");
        }
        self.ctx
            .store
            .update_sync_state(
                self.lease(),
                SyncChanges {
                    last_publish_at: Some(self.ctx.now()),
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
        let pms_reaches_us = reachable_from(&hooks.public_url, self.ctx.settings.pms_url.as_str());
        let market_reaches_us = reachable_from(&hooks.public_url, self.ctx.market.base_url());
        if !pms_reaches_us || !market_reaches_us {
            warn!(link = %self.link.id, pms = pms_reaches_us, market = market_reaches_us, "the public URL is on loopback and a server is not: no webhook registered there; polling it");
        }
        let pms = if !pms_reaches_us {
            false
        } else {
            match self
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
            }
        };
        let market = if !market_reaches_us {
            None
        } else {
            match crate::subscriptions::ensure(
                &self.market,
                &self.link.id.to_string(),
                &crate::callback::url(&hooks.public_url, &hooks.pms_secret, self.link.id),
                self.ctx.now(),
            )
            .await
            {
                Ok(placed) => {
                    debug!(link = %self.link.id, subscription = %placed.id, created = placed.created, deleted = placed.deleted, "marketplace subscription in place");
                    Some(placed.id)
                }
                Err(e) => {
                    warn!(link = %self.link.id, error = %e, "marketplace subscription failed; polling requests");
                    None
                }
            }
        };
        Pushed { pms, market }
    }

    /// What the PMS change feed has after our cursor (and move the cursor on).
    async fn pms_changed(&self) -> Result<Changed, SyncFailure> {
        let state = self.ctx.store.sync_state(self.link.id).await?;
        let (changed, cursor) = match self
            .pms
            .read_changes(state.change_cursor.as_deref())
            .await?
        {
            Changes::Page(page) => (Changed::of(&page.changes), page.next_cursor),
            // Changes were missed: anything may have changed.
            Changes::CursorExpired => match self.pms.read_changes(None).await? {
                Changes::Page(page) => (Changed::SETUP, page.next_cursor),
                Changes::CursorExpired => (Changed::SETUP, String::new()),
            },
        };
        if state.change_cursor.as_deref() != Some(cursor.as_str()) {
            self.ctx
                .store
                .update_sync_state(
                    self.lease(),
                    SyncChanges {
                        change_cursor: Some(Some(cursor)),
                        ..SyncChanges::default()
                    },
                )
                .await?;
        }
        // The first read only takes the cursor: the start's sync reads everything anyway.
        Ok(if state.change_cursor.is_some() {
            changed
        } else {
            Changed::NOTHING
        })
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
            .record_request(
                self.lease(),
                &NewMarketRequest {
                    request_id: id.clone(),
                    kind: kind.as_str().to_owned(),
                    link_id: Some(self.link.id),
                    received_at: received,
                },
            )
            .await;
        let finished = match logged {
            Ok(_) => {
                self.ctx
                    .store
                    .finish_request(self.lease(), &id, "answered", Some(&detail), self.ctx.now())
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
        let polled = self.market.poll().await?;
        for name in &polled.unknown {
            log_unknown_request_type(name);
        }
        let mut waiting = polled.known;
        let polled = self.ctx.now();
        let record = {
            let mut at = self.poll_recorded.lock().unwrap_or_else(|p| p.into_inner());
            let due = !waiting.is_empty() || at.is_none_or(|t| t.elapsed() >= POLL_RECORDED_EVERY);
            if due {
                *at = Some(Instant::now());
            }
            due
        };
        if record {
            self.ctx
                .store
                .update_sync_state(
                    self.lease(),
                    SyncChanges {
                        last_poll_at: Some(polled),
                        ..SyncChanges::default()
                    },
                )
                .await?;
        }
        waiting.sort_by_key(|t| priority(*t));
        waiting.dedup();
        for kind in waiting {
            match kind {
                RequestType::PmsResources | RequestType::PmsAppointmentTypes => {
                    info!(link = %self.link.id, request = kind.as_str(), "configuration requested");
                    self.sync(true, false, None).await?;
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
                    for u in &asked.unreadable {
                        warn!(link = %self.link.id, item = %u, "availability request unreadable (its day is not known): the horizon is published as usual");
                    }
                    let asked = asked.items;
                    info!(link = %self.link.id, days = asked.len(), "availability requested");
                    let synced = self.sync(false, true, None).await?;
                    // Days outside the horizon are answered with empty days, so no request is
                    // left open.
                    let outside: Vec<_> = asked
                        .iter()
                        .map(|a| (a.day, a.resource().map(str::to_owned)))
                        .collect();
                    let setup = self.pms.read_setup().await?;
                    let emptied =
                        publisher::answer_outside(self.target(), &setup, self.ctx.now(), &outside)
                            .await?;
                    let days: Vec<String> = asked
                        .iter()
                        .map(|a| format!("{} {}", a.day, a.resource().unwrap_or("all resources")))
                        .collect();
                    self.log_request(
                        kind,
                        polled,
                        format!(
                            "asked for {}; sent {} of {} day snapshots, {} empty outside the horizon",
                            days.join(", "),
                            synced.sent,
                            synced.days,
                            emptied
                        ),
                    )
                    .await;
                }
                RequestType::Bookings | RequestType::BookingUpdates => {
                    // Handled by the booking pipeline, which keeps its own log; never dropped.
                    self.outbox.store(true, Ordering::SeqCst);
                    let done = crate::bookings::handle(
                        &self.ctx,
                        self.lease(),
                        &self.link,
                        &self.pms,
                        &self.market,
                        kind,
                    )
                    .await?;
                    self.after_bookings(done);
                }
                RequestType::PmsAppointmentChanges => {
                    let a = crate::bookings::changes::answer(
                        &self.ctx,
                        self.lease(),
                        &self.link,
                        &self.pms,
                        &self.market,
                    )
                    .await?;
                    self.log_request(
                        kind,
                        polled,
                        format!(
                            "answered {} cancel, {} didNotAttend, {} noPmsAppointmentChange; {} closed before the answer",
                            a.cancelled, a.did_not_attend, a.no_change, a.closed
                        ),
                    )
                    .await;
                }
                other => {
                    debug!(link = %self.link.id, request = other.as_str(), "request type not used by this integration")
                }
            }
        }
        Ok(())
    }

    /// Record a failure on the link (shown by the console) and count it; returns its kind.
    /// Nothing is written once the fence no longer holds.
    async fn record_failure(&self, e: &SyncFailure) -> FailureKind {
        let kind = e.kind();
        if kind == FailureKind::Fenced || !self.fence.holds() {
            debug!(link = %self.link.id, error = %e, "stopped: this node no longer holds the link");
            return FailureKind::Fenced;
        }
        warn!(link = %self.link.id, kind = kind.as_str(), error = %e, "sync failed");
        self.ctx.metrics.error(kind.as_str());
        let message = match kind.class() {
            FailureClass::Lasting(why) => format!("{e}. Parked until fixed: {}", why.what_to_do()),
            FailureClass::Transient => e.to_string(),
        };
        let changes = SyncChanges {
            change_pending_since: *self
                .pending_change
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            last_error: Some(Some(SyncError {
                kind: kind.as_str().to_owned(),
                message,
                at: self.ctx.now(),
            })),
            // 401 and 403 on the practice's credentials lead to the same consent guidance.
            consent: matches!(
                kind,
                FailureKind::ConsentMissing | FailureKind::MarketUnauthorized
            )
            .then_some(ConsentStatus::Withdrawn),
            ..SyncChanges::default()
        };
        if let Err(err) = self
            .ctx
            .store
            .update_sync_state(self.lease(), changes)
            .await
        {
            warn!(link = %self.link.id, error = %err, "recording the failure failed");
        }
        kind
    }

    /// A PMS change seen at `at` and not yet published (the oldest one waiting is kept).
    fn note_change(&self, at: Timestamp) {
        let mut pending = self
            .pending_change
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *pending = Some(pending.map_or(at, |p| p.min(at)));
    }

    /// Store the change waiting (the oldest stored one is kept).
    async fn store_pending_change(&self) {
        let pending = *self
            .pending_change
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.is_none() {
            return;
        }
        let changes = SyncChanges {
            change_pending_since: pending,
            ..SyncChanges::default()
        };
        if let Err(e) = self
            .ctx
            .store
            .update_sync_state(self.lease(), changes)
            .await
        {
            debug!(error = %e, "the waiting change could not be stored");
        }
    }

    /// The change waiting, taken by the sync about to publish it.
    fn take_pending_change(&self) -> Option<Timestamp> {
        self.pending_change
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// A change seen at `change_at` is published: its freshness stored and counted.
    async fn published_change(&self, change_at: Timestamp) {
        match self
            .ctx
            .store
            .record_freshness(self.lease(), change_at, self.ctx.now())
            .await
        {
            Ok(freshness) => {
                let secs = freshness.as_secs_f64().max(0.0);
                self.ctx.metrics.freshness(Duration::from_secs_f64(secs));
                debug!(freshness_s = secs, "change published");
            }
            Err(e) => warn!(error = %e, "the freshness could not be recorded"),
        }
    }

    /// What the booking pipeline asked for after a round: a refresh of the availability when
    /// the marketplace's was stale.
    fn after_bookings(&self, done: crate::bookings::Followup) {
        if done.refresh_availability {
            self.refresh.store(true, Ordering::SeqCst);
        }
    }

    /// One round of the link's booking outbox (see [`crate::bookings::on_tick`]), when it may
    /// hold bookings ([`LinkRun::outbox`]).
    async fn outbox_round(&self) -> Result<crate::bookings::Followup, SyncFailure> {
        if !self.outbox.load(Ordering::SeqCst) {
            return Ok(crate::bookings::Followup::default());
        }
        let done =
            crate::bookings::on_tick(&self.ctx, self.lease(), &self.link, &self.pms, &self.market)
                .await?;
        if self.ctx.store.bookings_in_flight(self.link.id).await? == 0 {
            self.outbox.store(false, Ordering::SeqCst);
        }
        Ok(done)
    }

    /// Answer the bookings in flight until none is left or `within` has passed (a changed or
    /// disabled link, before its worker stops).
    async fn drain(&self, within: Duration) {
        let until = Instant::now() + within;
        // Bookings the marketplace still lists (their webhook may wait behind the step the
        // worker was in) are in flight too: take them in first.
        self.outbox.store(true, Ordering::SeqCst);
        if let Err(e) = crate::bookings::handle(
            &self.ctx,
            self.lease(),
            &self.link,
            &self.pms,
            &self.market,
            RequestType::Bookings,
        )
        .await
        .map(|done| self.after_bookings(done))
            && self.record_failure(&e).await == FailureKind::Fenced
        {
            return;
        }
        loop {
            match self.ctx.store.bookings_in_flight(self.link.id).await {
                Ok(0) => return,
                Ok(n) => {
                    debug!(link = %self.link.id, in_flight = n, "finishing bookings in flight")
                }
                Err(e) => {
                    warn!(link = %self.link.id, error = %e, "cannot count bookings in flight")
                }
            }
            if Instant::now() >= until || !self.fence.holds() {
                return;
            }
            match self.outbox_round().await {
                Ok(done) => self.after_bookings(done),
                Err(e) => {
                    if self.record_failure(&e).await == FailureKind::Fenced {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sync, and account for it: metrics, the failure record, and the operator's resync
    /// progress when `resync` names one. Returns the failure's kind when it failed.
    async fn sync_step(
        &self,
        force_config: bool,
        force_availability: bool,
        cause: &'static str,
        woken: std::time::Instant,
        resync: bool,
        days: Option<&BTreeSet<Date>>,
    ) -> Result<(), FailureKind> {
        let id = self.link.id;
        if resync {
            self.ctx.update_progress(id, |p| {
                p.state = ResyncState::Running;
                p.started_at = Some(self.ctx.now());
            });
        }
        let change = self.take_pending_change();
        let result = self.sync(force_config, force_availability, days).await;
        self.ctx.metrics.published(cause, woken.elapsed());
        if let Some(change_at) = change {
            match &result {
                Ok(_) => self.published_change(change_at).await,
                // Still waiting: kept for the next sync, and stored (the list sorts by it).
                Err(_) => self.note_change(change_at),
            }
        }
        if resync {
            self.ctx.update_progress(id, |p| {
                p.finished_at = Some(self.ctx.now());
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
            Ok(_) => Ok(()),
            Err(e) => Err(self.record_failure(&e).await),
        }
    }
}

/// Whether a server at `server` can deliver to `callback`: a callback on loopback only from a
/// server on loopback too (a registration would succeed, but no delivery could ever arrive).
fn reachable_from(callback: &url::Url, server: &str) -> bool {
    fn on_loopback(u: &url::Url) -> bool {
        match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
    }
    match url::Url::parse(server) {
        Ok(s) => !on_loopback(callback) || on_loopback(&s),
        Err(_) => !on_loopback(callback),
    }
}

/// Booking and booking-update requests first: other request types may depend on a booking.
/// A request type the client does not know is logged once per process, and left alone.
fn log_unknown_request_type(name: &str) {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let fresh = seen
        .lock()
        .map(|mut s| s.insert(name.to_owned()))
        .unwrap_or(false);
    if fresh {
        warn!(
            request = name,
            "the marketplace lists a request type this integration does not know: left alone"
        );
    }
}

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
/// What a read of the PMS change feed found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Changed {
    scope: ChangeScope,
    /// With scope [`ChangeScope::Diary`]: only these days changed, when every diary change was
    /// an appointment made or removed within one known day (`None`: any day may have).
    days: Option<BTreeSet<Date>>,
}

impl Changed {
    const NOTHING: Changed = Changed {
        scope: ChangeScope::Nothing,
        days: None,
    };
    const SETUP: Changed = Changed {
        scope: ChangeScope::Setup,
        days: None,
    };

    /// The scope of a page of changes, and the days they touched.
    fn of(changes: &[slotbridge_pms::ChangeEntry]) -> Changed {
        let scope = changes
            .iter()
            .map(|c| ChangeScope::of(&c.kind))
            .max()
            .unwrap_or(ChangeScope::Nothing);
        let days = (scope == ChangeScope::Diary)
            .then(|| {
                changes
                    .iter()
                    .filter(|c| ChangeScope::of(&c.kind) == ChangeScope::Diary)
                    .map(slotbridge_pms::ChangeEntry::appointment_day)
                    .collect::<Option<BTreeSet<Date>>>()
            })
            .flatten();
        Changed { scope, days }
    }
}

struct Wake {
    force_config: bool,
    force_availability: bool,
    sync: bool,
    /// Only these days changed (`None`: any part of the horizon may have).
    days: Option<BTreeSet<Date>>,
    /// The setup may have changed: read it again rather than reuse the last read.
    setup: bool,
    requests: bool,
    cause: &'static str,
    resync: bool,
    /// The PMS said something changed (an event, or the change feed): freshness runs from now.
    changed: bool,
}

/// Work one link until `cancel` or until its fence no longer holds. `drain` (set by the
/// supervisor before it cancels, or at start for a disabled link) first finishes the bookings in
/// flight with this worker's settings.
pub(crate) async fn link_worker<P: PmsConnector>(
    ctx: Arc<Ctx>,
    fence: Arc<Fence>,
    link: Link,
    pms: P,
    mut rx: mpsc::Receiver<Trigger>,
    cancel: CancellationToken,
    drain: Arc<AtomicBool>,
) -> WorkerExit {
    let guard = fence.clone();
    // Every log line of the worker carries the practice it is about; a new link's name is
    // recorded once the PMS is first read (`LinkRun::name_span`).
    let name = link.display_name().map(str::to_owned);
    let span = tracing::info_span!(
        "link",
        link = %link.id,
        site = %link.site_slug.as_str(),
        practice = %link.market_practice_id,
        name = tracing::field::Empty,
    );
    if let Some(n) = &name {
        span.record("name", n.as_str());
    }
    let run = LinkRun {
        pms: CachedSetup::new(FencedPms::new(pms, fence.clone())),
        market: ctx
            .market_for(&link)
            .with_guard(Arc::new(move || guard.holds())),
        ctx: ctx.clone(),
        fence,
        link,
        refresh: AtomicBool::new(false),
        pending_change: std::sync::Mutex::new(None),
        outbox: AtomicBool::new(true),
        poll_recorded: std::sync::Mutex::new(None),
        span: span.clone(),
        span_name: std::sync::Mutex::new(name),
    };
    // A change a previous worker saw and did not publish is still waiting.
    match run.ctx.store.sync_state(run.link.id).await {
        Ok(state) => {
            if let Some(at) = state.change_pending_since {
                run.note_change(at);
            }
        }
        Err(e) => debug!(error = %e, "the sync state could not be read at start"),
    }
    let exit = async {
        // Claims a previous worker of this node left under the same lease are given up first,
        // so its bookings are resumed at once rather than when the claims lapse.
        let exit = match run.ctx.store.release_claims(run.lease()).await {
            Ok(_) => run.work(&mut rx, &cancel, &drain).await,
            Err(e) => run.failed(&SyncFailure::Store(e)).await,
        };
        if drain.load(Ordering::SeqCst) && exit == WorkerExit::Stopped {
            run.drain(DRAIN_WITHIN).await;
        }
        exit
    }
    .instrument(span)
    .await;
    if !run.fence.holds() {
        return WorkerExit::Fenced;
    }
    debug!(link = %run.link.id, ?exit, "link worker stopped");
    exit
}

impl<P: PmsConnector> LinkRun<P> {
    /// The worker's loop; returns why it ended.
    async fn work(
        &self,
        rx: &mut mpsc::Receiver<Trigger>,
        cancel: &CancellationToken,
        drain: &AtomicBool,
    ) -> WorkerExit {
        if drain.load(Ordering::SeqCst) {
            // A disabled link: only its bookings in flight are left to answer.
            return WorkerExit::Stopped;
        }
        let mut breaker = Breaker::default();
        // Link or re-enable: configuration first, then availability, then outstanding requests.
        // The change feed's cursor is taken first, so a change made before the webhook is
        // registered is still seen below.
        if let Err(e) = self.pms_changed().await {
            self.note(&mut breaker, &e).await;
        }
        let started = Instant::now();
        if breaker.may_try(self.ctx.now()) {
            // Everything is sent on start, unchanged or not (suggested-testing: "availability for
            // all resources should be sent" after linking or re-enabling).
            let r = self
                .sync_step(true, true, "start", started, false, None)
                .await;
            self.account(&mut breaker, r);
        }
        let mut pushed = self.subscribe().await;
        let mut deliveries = Deliveries::default();
        let _ = deliveries.subscribed(pushed.market.clone());
        let mut subscribed_at = self.ctx.now();
        if pushed.pms
            && breaker.may_try(self.ctx.now())
            && let Ok(changed) = self.pms_changed().await
            && changed.scope > ChangeScope::Nothing
        {
            if changed.scope == ChangeScope::Setup {
                self.pms.forget();
            }
            let r = self
                .sync_step(false, false, "start", Instant::now(), false, None)
                .await;
            self.account(&mut breaker, r);
        }
        // A poll of the marketplace's requests that failed is owed until one succeeds: at every
        // tick, whatever the webhooks (the delivery that woke us is spent).
        let mut requests_owed = false;
        if self.may_poll_market(&breaker)
            && let Err(e) = self.requests().await
        {
            requests_owed = true;
            self.note(&mut breaker, &e).await;
        }
        let mut poll = tokio::time::interval(self.ctx.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = tokio::time::interval(self.ctx.settings.full_resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let backstop = self.ctx.settings.backstop_poll;
        let mut last_changes_poll = Instant::now();
        let mut last_requests_poll = Instant::now();
        // A sync owed since the last failure (retried when the backoff allows).
        let mut owed = !breaker_closed(&breaker);
        loop {
            if !self.fence.holds() {
                return WorkerExit::Fenced;
            }
            let woken = Instant::now();
            let wake = tokio::select! {
                () = cancel.cancelled() => return WorkerExit::Stopped,
                t = rx.recv() => match t {
                    None => return WorkerExit::Stopped,
                    Some(first) => {
                        // Coalesce a burst of triggers into one sync.
                        let mut all = vec![first];
                        while let Ok(more) = rx.try_recv() {
                            all.push(more);
                        }
                        let resync = all.iter().any(|t| {
                            matches!(t, Trigger::ResyncConfig | Trigger::ResyncAvailability)
                        });
                        if all.contains(&Trigger::MarketRequests) {
                            // A marketplace webhook arrived: deliveries work.
                            deliveries.arrived(Instant::now());
                        }
                        if resync {
                            // An operator's resync reopens a parked link.
                            breaker.resync();
                        }
                        // Appointments made or removed on known days: just those days.
                        let days = all
                            .iter()
                            .all(|t| matches!(t, Trigger::DiaryDay(_) | Trigger::MarketRequests))
                            .then(|| {
                                all.iter()
                                    .filter_map(|t| match t {
                                        Trigger::DiaryDay(d) => Some(*d),
                                        _ => None,
                                    })
                                    .collect()
                            });
                        Wake {
                            force_config: all.contains(&Trigger::ResyncConfig),
                            force_availability: all.contains(&Trigger::ResyncAvailability),
                            sync: all.iter().any(|t| *t != Trigger::MarketRequests),
                            days,
                            setup: all.iter().any(|t| !matches!(t, Trigger::MarketRequests | Trigger::DiaryChanged | Trigger::DiaryDay(_))),
                            requests: all.contains(&Trigger::MarketRequests),
                            cause: if resync { "resync" } else { "pms_event" },
                            resync,
                            changed: all.iter().any(|t| matches!(t, Trigger::PmsChanged | Trigger::DiaryChanged | Trigger::DiaryDay(_))),
                        }
                    }
                },
                _ = poll.tick() => {
                    let may_read = breaker.may_try(self.ctx.now());
                    let changed = if may_read && (!pushed.pms || last_changes_poll.elapsed() >= backstop) {
                        last_changes_poll = Instant::now();
                        match self.pms_changed().await {
                            Ok(c) => c,
                            Err(e) => { self.note(&mut breaker, &e).await; Changed::NOTHING }
                        }
                    } else {
                        Changed::NOTHING
                    };
                    if let Some((id, from)) = deliveries.check_due(Instant::now(), backstop, subscribed_at)
                        && self.may_poll_market(&breaker)
                    {
                        let upto = self.ctx.now();
                        match crate::subscriptions::deliveries_failed(&self.market, &id, from).await {
                            Ok(failed) => deliveries.checked(Instant::now(), upto, failed),
                            Err(e) => {
                                debug!(link = %self.link.id, error = %e, "the subscription error log could not be read; webhooks not trusted until it can");
                                deliveries.checked(Instant::now(), from, true);
                            }
                        }
                    }
                    // Until webhooks are trusted, the marketplace is polled at every tick.
                    let requests = !deliveries.trusted()
                        || requests_owed
                        || last_requests_poll.elapsed() >= backstop;
                    let refresh = self.refresh.swap(false, Ordering::SeqCst);
                    Wake {
                        force_config: false,
                        force_availability: false,
                        sync: changed.scope > ChangeScope::Nothing || (owed && may_read) || refresh,
                        // Appointments made or removed on known days: just those days (a
                        // refresh the bookings asked for is of the whole horizon).
                        days: changed.days.filter(|_| !refresh),
                        setup: changed.scope == ChangeScope::Setup || owed,
                        requests,
                        cause: "poll",
                        resync: false,
                        changed: changed.scope > ChangeScope::Nothing,
                    }
                }
                _ = resync.tick() => {
                    // The periodic full resync also renews the webhook registrations (not while
                    // the link is parked or backing off: nothing is called then).
                    if breaker.may_try(self.ctx.now()) {
                        pushed = self.subscribe().await;
                        if deliveries.subscribed(pushed.market.clone()) {
                            subscribed_at = self.ctx.now();
                        }
                    }
                    Wake {
                        force_config: true,
                        force_availability: true,
                        sync: true,
                        days: None,
                        setup: true,
                        requests: true,
                        cause: "periodic",
                        resync: false,
                        changed: false,
                    }
                }
            };
            if !self.fence.holds() {
                return WorkerExit::Fenced;
            }
            if wake.changed {
                self.note_change(self.ctx.now());
            }
            let wants_sync = wake.sync || wake.force_config || wake.force_availability;
            if wants_sync && (wake.resync || breaker.may_try(self.ctx.now())) {
                if wake.setup || wake.force_config || owed {
                    self.pms.forget();
                }
                let r = self
                    .sync_step(
                        wake.force_config || owed,
                        wake.force_availability,
                        wake.cause,
                        woken,
                        wake.resync,
                        wake.days.as_ref().filter(|_| !wake.setup && !owed),
                    )
                    .await;
                if r == Err(FailureKind::Fenced) {
                    return WorkerExit::Fenced;
                }
                self.account(&mut breaker, r);
                owed = !breaker_closed(&breaker);
            } else if wants_sync {
                owed = true;
                if wake.changed {
                    // Backing off: the change waits, and the list shows how long.
                    self.store_pending_change().await;
                }
            }
            // Bookings are answered while publishing backs off.
            if wake.requests && self.may_poll_market(&breaker) {
                last_requests_poll = Instant::now();
                match self.requests().await {
                    Ok(()) => requests_owed = false,
                    Err(e) => {
                        requests_owed = true;
                        // Then a sync is owed too: its success clears the error shown.
                        owed = true;
                        if self.note_poll_failure(&mut breaker, &e).await == FailureKind::Fenced {
                            return WorkerExit::Fenced;
                        }
                    }
                }
            }
            match self.outbox_round().await {
                Ok(done) => self.after_bookings(done),
                Err(e) => {
                    if self.note(&mut breaker, &e).await == FailureKind::Fenced {
                        return WorkerExit::Fenced;
                    }
                }
            }
        }
    }

    /// A failure outside a sync step: recorded, and the breaker told.
    async fn note(&self, breaker: &mut Breaker, e: &SyncFailure) -> FailureKind {
        let kind = self.record_failure(e).await;
        self.account(breaker, Err(kind));
        kind
    }

    /// A failed poll of the marketplace's requests: recorded, but it backs publishing off only
    /// from a closed breaker (or parks the link). The requests are polled at every tick while
    /// publishing backs off, and each failure must not push the backoff's end further, up to
    /// a minute, or a short outage would hold publishing back long after it ended.
    async fn note_poll_failure(&self, breaker: &mut Breaker, e: &SyncFailure) -> FailureKind {
        let kind = self.record_failure(e).await;
        if breaker_closed(breaker) || matches!(kind.class(), FailureClass::Lasting(_)) {
            self.account(breaker, Err(kind));
        }
        kind
    }

    /// Tell the breaker how a step went.
    fn account(&self, breaker: &mut Breaker, result: Result<(), FailureKind>) {
        match result {
            Ok(()) => breaker.on_success(),
            Err(FailureKind::Fenced) => {}
            Err(kind) => {
                let state = breaker.on_failure(
                    kind.class(),
                    self.ctx.now(),
                    Jitter::new(rand::random::<f64>()),
                );
                if let BreakerState::Parked { why, .. } = state {
                    info!(link = %self.link.id, why = why.kind(), "link parked until its credentials change or an operator resyncs");
                }
            }
        }
    }

    /// Whether the marketplace may be polled: not while consent is missing.
    fn may_poll_market(&self, breaker: &Breaker) -> bool {
        !matches!(
            breaker.state(),
            BreakerState::Parked {
                why: Lasting::ConsentMissing | Lasting::MarketKeyRejected,
                ..
            }
        )
    }

    /// A failure that ends the worker (its store is unusable at start).
    async fn failed(&self, e: &SyncFailure) -> WorkerExit {
        if e.kind() == FailureKind::Fenced || !self.fence.holds() {
            return WorkerExit::Fenced;
        }
        WorkerExit::Failed(format!("{}: {e}", e.kind().as_str()))
    }
}

fn breaker_closed(breaker: &Breaker) -> bool {
    breaker.state() == BreakerState::Closed
}

/// The setup findings of a whole-horizon read (the domain's diagnostics, without the health):
/// counts by severity and the codes.
fn setup_findings(
    setup: &PracticeSetup,
    diary: &Diary,
    now: Timestamp,
    horizon_days: slotbridge_store::HorizonDays,
) -> SetupFindings {
    use slotbridge_domain::diagnostics::{self, Input, Severity};
    let today = Horizon::new(setup.timezone.time_zone(), now, horizon_days).start();
    let found = diagnostics::diagnose(&Input::new(setup, diary, today, horizon_days.days()));
    let count = |s: Severity| {
        u32::try_from(found.iter().filter(|f| f.severity == s).count()).unwrap_or(u32::MAX)
    };
    SetupFindings {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        codes: found.iter().map(|f| f.code.as_str().to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Changed, reachable_from};
    use slotbridge_pms::{ChangeEntry, ChangeScope};

    fn change(kind: &str, data: serde_json::Value) -> ChangeEntry {
        serde_json::from_value(serde_json::json!({
            "seq": 1, "type": kind, "subject": "x", "time": "2026-12-01T10:00:00+11:00",
            "data": data,
        }))
        .expect("change")
    }

    fn appointment(day: u8) -> serde_json::Value {
        serde_json::json!({
            "id": format!("A{day}"),
            "start": format!("2026-12-{day:02}T09:00:00+11:00"),
            "end": format!("2026-12-{day:02}T09:30:00+11:00"),
        })
    }

    /// A polled change feed is as precise as the webhooks: appointments made or removed re-read
    /// only their days; anything else (a block, a setup change, an appointment whose day is not
    /// known) re-reads the whole horizon.
    #[test]
    fn polled_appointment_changes_name_their_days_and_anything_else_the_whole_horizon() {
        let made = change("appointment.created", appointment(3));
        let removed = change("appointment.deleted", appointment(5));
        let patient = change("patient.created", serde_json::json!({"id": "P1"}));
        let c = Changed::of(&[made.clone(), patient.clone(), removed.clone()]);
        assert_eq!(c.scope, ChangeScope::Diary);
        let days: Vec<String> = c
            .days
            .expect("days")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(days, ["2026-12-03", "2026-12-05"]);

        let block = change("block.created", serde_json::json!({"id": "B1"}));
        let c = Changed::of(&[made.clone(), block]);
        assert_eq!((c.scope, c.days), (ChangeScope::Diary, None));
        let unknown_day = change("appointment.created", serde_json::json!({"id": "A9"}));
        assert_eq!(Changed::of(&[made.clone(), unknown_day]).days, None);
        let setup = change("setup.changed", serde_json::json!({}));
        assert_eq!(Changed::of(&[made, setup]), Changed::SETUP);
        assert_eq!(Changed::of(&[patient]), Changed::NOTHING);
        assert_eq!(Changed::of(&[]), Changed::NOTHING);
    }

    #[test]
    fn a_loopback_callback_is_registered_only_with_a_server_on_loopback() {
        let local: url::Url = "http://127.0.0.1:7400".parse().expect("url");
        let named_local: url::Url = "http://localhost:7400".parse().expect("url");
        let public: url::Url = "https://slotbridge.example.com".parse().expect("url");
        for callback in [&local, &named_local] {
            assert!(reachable_from(callback, "http://127.0.0.1:7300/pms-api/v1"));
            assert!(reachable_from(callback, "http://[::1]:7300/"));
            assert!(!reachable_from(
                callback,
                "https://api.healthengine.example/pms-api/v1"
            ));
        }
        assert!(reachable_from(
            &public,
            "https://api.healthengine.example/pms-api/v1"
        ));
        assert!(reachable_from(&public, "http://127.0.0.1:7300/"));
    }
}
