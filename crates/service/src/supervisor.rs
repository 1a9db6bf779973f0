//! Leases and supervision: which links this node works, and one supervised worker per link.
//!
//! Two loops, each every quarter of the lease TTL:
//!
//! The **renewer** sends the node's heartbeat and renews its leases (the database's clock
//! decides expiry), on the store's lease pool, and extends each running worker's [`Fence`] to
//! *when the renewal was sent* + TTL. A worker whose lease was not renewed is stopped; one whose
//! fence lapses (a pause, a slow database) stops by itself before any other node can take the
//! link over. A worker whose link changed (its revision; wherever the change was made) is
//! restarted after it finished the bookings in flight with the settings it started with. As it
//! writes every round, it also keeps [`Ctx::disk_full`]: set when a renewal is refused for a
//! full disk, cleared by the next one that succeeds. The renewer does nothing else, so however
//! long a lease round takes, renewals stay on time (a node starting 10,000 workers had its
//! rounds outlast the TTL, and every fence lapsed).
//!
//! Each **lease round** (also at once when links change):
//! 1. reaps workers that ended: one that failed (or panicked) is restarted with backoff, and
//!    its link shows why; one handed back releases its lease;
//! 2. shares the links evenly among live nodes, handing back the surplus without blocking;
//! 3. acquires free or expired leases (each take-over a new epoch) and starts their workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slotbridge_domain::backoff::{Backoff, Jitter};
use slotbridge_store::{HeldLease, Lease, LinkId, StoreError, SyncChanges, SyncError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::ctx::{Ctx, Running, WorkerExit};
use crate::fence::Fence;
use crate::metrics::LeaseMove;
use crate::worker;

/// The restart backoff of a link whose worker failed.
#[derive(Debug, Clone)]
struct Failed {
    failures: u32,
    not_before: Instant,
}

/// Restart delay after `failures` failures in a row: the link backoff (1 s, 2 s, 4 s … 60 s)
/// with jitter, so the links of a node that lost its database do not restart in step.
fn restart_delay(failures: u32) -> Duration {
    Backoff::LINK
        .delay(failures, Jitter::new(rand::random::<f64>()))
        .unsigned_abs()
}

/// The most leases one round takes. A node given 10,000 links at once took them all in one
/// round and started a worker for each (a link read, its keys decrypted) before the round
/// ended, by which time the first leases' fences had lapsed: the workers stopped as soon as
/// they started, over and over. In steps of 500 a round stays short, and a node takes 10,000
/// links within 20 rounds.
const NEW_LEASES_PER_ROUND: u32 = 500;

/// A worker that ran this long before it failed is restarted after the shortest backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The renewer's last renewal: the leases it found held, and until when they certainly are.
struct Renewal {
    held: Vec<HeldLease>,
    until: Instant,
}

/// The last renewal, shared by the renewer (which writes it) and the lease rounds (which start
/// workers for held leases that have none, and hand back the surplus).
type LastRenewal = Arc<Mutex<Option<Renewal>>>;

/// The supervisor's own state between rounds.
#[derive(Default)]
struct Supervisor {
    failed: HashMap<LinkId, Failed>,
    /// When the unserved links were last counted.
    unserved_checked: Option<Instant>,
}

/// How long a renewal sent at `sent` keeps the lease certainly ours: the database set its
/// expiry to (its now when it ran) + TTL, which is after `sent` + TTL; a small margin covers
/// clocks that run at slightly different rates.
fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    let margin = (ttl / 10).min(Duration::from_secs(1));
    sent + ttl.saturating_sub(margin)
}

/// Hold leases and run link workers until `cancel`; then stop the workers and release the
/// leases so another node takes over at once.
pub async fn run_node(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let tick = round_interval(&ctx);
    let last: LastRenewal = Arc::default();
    // The renewer outlives `cancel`: it keeps the leases of workers finishing their step.
    let stop_renewing = CancellationToken::new();
    let renewer = tokio::spawn(renew_loop(ctx.clone(), last.clone(), stop_renewing.clone()));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sup = Supervisor::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = interval.tick() => {}
            () = ctx.lease_round.notified() => {}
        }
        if let Err(e) = round(&ctx, &mut sup, &last, &cancel).await {
            warn!(error = %e, "lease round failed");
        }
        // Bulk resyncs asked on any node, for the links this node holds.
        if let Err(e) = crate::audit::work_resyncs(&ctx).await {
            warn!(error = %e, "the bulk resync requests could not be worked; retried next round");
        }
    }
    // Graceful: each worker finishes the step it is in (an in-flight booking included) before
    // the leases are released; a worker still busy after 30 s loses its fence first.
    let running: Vec<Running> = ctx.workers().drain().map(|(_, r)| r).collect();
    for r in &running {
        r.cancel.cancel();
    }
    let fences: Vec<Arc<Fence>> = running.iter().map(|r| r.fence.clone()).collect();
    let finish = futures::future::join_all(running.into_iter().map(|r| r.task));
    if tokio::time::timeout(Duration::from_secs(30), finish)
        .await
        .is_err()
    {
        warn!("link workers did not finish within 30 s; revoking them before releasing");
    }
    stop_renewing.cancel();
    let _ = renewer.await;
    for f in &fences {
        f.revoke();
    }
    for f in &fences {
        if let Err(e) = ctx.store.release_lease(f.lease()).await {
            warn!(link = %f.lease().link_id, error = %e, "releasing a lease failed");
        }
    }
}

/// How often the renewer renews and a lease round runs: a quarter of the lease TTL.
fn round_interval(ctx: &Ctx) -> Duration {
    (ctx.settings.lease_ttl / 4).max(Duration::from_millis(100))
}

/// Renew the node's leases every [`round_interval`] until `stop`.
async fn renew_loop(ctx: Arc<Ctx>, last: LastRenewal, stop: CancellationToken) {
    let every = round_interval(&ctx);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            due = interval.tick() => {
                let late = due.elapsed();
                if late > every {
                    // The runtime had no thread free for the renewer: the node is overloaded.
                    warn!(late_ms = late.as_millis() as u64, "lease renewal started late: the node's runtime is saturated");
                }
            }
        }
        match renew(&ctx, &last).await {
            Ok(()) => {
                if ctx.set_disk_full(false) {
                    info!("the database takes writes again: its disk has space");
                }
            }
            Err(e) if e.is_disk_full() => {
                if ctx.set_disk_full(true) {
                    error!(error = %e, "disk full (SQLITE_FULL / disk_full): the database refuses every write; free space on its volume, the node recovers by itself");
                } else {
                    warn!(error = %e, "lease renewal failed: the database's disk is still full");
                }
            }
            Err(e) => warn!(error = %e, "lease renewal failed"),
        }
    }
}

/// Send the heartbeat, renew the leases, extend the running workers' fences, and stop the
/// workers whose lease was lost or whose link changed.
async fn renew(ctx: &Ctx, last: &LastRenewal) -> Result<(), StoreError> {
    let node = ctx.settings.node_id.as_str();
    let ttl = ctx.settings.lease_ttl;
    let began = Instant::now();
    ctx.store.heartbeat(node).await?;
    let sent = Instant::now();
    let renewed = ctx.store.renew_leases(node, ttl).await?;
    let until = valid_until(sent, ttl);
    let took = began.elapsed();
    if took > ttl / 4 {
        // Fences lapse when renewals take this long for a while: say so before they do.
        warn!(
            node = %node,
            took_ms = took.as_millis() as u64,
            heartbeat_ms = sent.duration_since(began).as_millis() as u64,
            leases = renewed.len(),
            ttl_ms = ttl.as_millis() as u64,
            "lease renewal slow: over a quarter of the lease TTL (the database or the node is overloaded)"
        );
    }
    let held: HashMap<LinkId, &HeldLease> = renewed.iter().map(|h| (h.lease.link_id, h)).collect();
    {
        let mut workers = ctx.workers();
        for (id, r) in workers.iter_mut() {
            match held.get(id) {
                Some(h) if h.lease == *r.fence.lease() => {
                    r.fence.extend(until);
                    let changed = h.revision != r.revision;
                    if (changed || !h.enabled) && !r.stopping {
                        info!(link = %id, changed, enabled = h.enabled, "link changed; the worker finishes its bookings in flight, then restarts");
                        r.stopping = true;
                        r.drain.store(true, Ordering::SeqCst);
                        r.cancel.cancel();
                    }
                }
                // A worker started after this renewal was sent holds a lease acquired since:
                // the next renewal speaks for it.
                _ if r.started >= sent => {}
                _ if !r.stopping => {
                    info!(link = %id, "lease lost; stopping the worker");
                    ctx.metrics.lease_moved(LeaseMove::Lost);
                    r.stopping = true;
                    r.fence.revoke();
                    r.cancel.cancel();
                }
                _ => {}
            }
        }
    }
    *lock(last) = Some(Renewal {
        held: renewed,
        until,
    });
    Ok(())
}

/// The last renewal's lock (a panic elsewhere while holding it leaves its data usable).
fn lock(last: &LastRenewal) -> std::sync::MutexGuard<'_, Option<Renewal>> {
    last.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One lease round.
async fn round(
    ctx: &Arc<Ctx>,
    sup: &mut Supervisor,
    last: &LastRenewal,
    cancel: &CancellationToken,
) -> Result<(), StoreError> {
    let node = ctx.settings.node_id.as_str();
    let ttl = ctx.settings.lease_ttl;
    reap(ctx, sup).await;
    // The leases the renewer last found held, and until when (no renewal yet: none).
    let (renewed, renewed_until) = match &*lock(last) {
        Some(r) => (r.held.clone(), r.until),
        None => (Vec::new(), Instant::now()),
    };

    // Share the links evenly among the live nodes; hand back the surplus (its workers stop
    // after their current step, and the lease is released when they ended).
    let (share, wanted) = fair_share(ctx).await?;
    note_capacity(ctx, wanted);
    if sup.unserved_checked.is_none_or(|at| at.elapsed() >= ttl) {
        sup.unserved_checked = Some(Instant::now());
        count_unserved(ctx).await?;
    }
    if renewed.len() > share as usize {
        let idle: Vec<Lease> = {
            let mut workers = ctx.workers();
            let mut idle = Vec::new();
            for h in renewed.iter().skip(share as usize) {
                match workers.get_mut(&h.lease.link_id) {
                    Some(r) if !r.stopping => {
                        info!(link = %h.lease.link_id, "handing the link to a less loaded node");
                        r.stopping = true;
                        r.hand_back = true;
                        r.cancel.cancel();
                    }
                    Some(_) => {}
                    None => idle.push(h.lease.clone()),
                }
            }
            idle
        };
        for lease in idle {
            ctx.store.release_lease(&lease).await?;
        }
    }
    // At most NEW_LEASES_PER_ROUND more per round: a round that started thousands of workers
    // (a link read each) would outlast the leases it just took.
    let held = u32::try_from(renewed.len()).unwrap_or(u32::MAX);
    let cap = share.min(held.saturating_add(NEW_LEASES_PER_ROUND));
    let sent = Instant::now();
    let acquired = ctx.store.acquire_leases(node, cap, ttl).await?;
    let acquired_until = valid_until(sent, ttl);
    for h in &acquired {
        info!(link = %h.lease.link_id, epoch = h.lease.epoch, "lease acquired");
        // Epoch 1 is the link's first lease; any later one was held before.
        if h.lease.epoch > 1 {
            ctx.metrics.lease_moved(LeaseMove::Taken);
        }
    }

    let candidates = renewed
        .iter()
        .take(share as usize)
        .map(|h| (h, renewed_until))
        .chain(acquired.iter().map(|h| (h, acquired_until)));
    for (h, until) in candidates {
        let id = h.lease.link_id;
        if ctx.workers().contains_key(&id) {
            continue;
        }
        if let Some(f) = sup.failed.get(&id)
            && Instant::now() < f.not_before
        {
            continue;
        }
        if !h.enabled && ctx.store.bookings_in_flight(id).await? == 0 {
            // Disabled and nothing left to answer: let the lease go.
            ctx.store.release_lease(&h.lease).await?;
            continue;
        }
        let Some(link) = ctx.store.link(id).await? else {
            continue;
        };
        start(ctx, link, h.lease.clone(), until, cancel);
    }
    Ok(())
}

fn start(
    ctx: &Arc<Ctx>,
    link: slotbridge_store::Link,
    lease: Lease,
    valid_until: Instant,
    cancel: &CancellationToken,
) {
    let id = link.id;
    let (tx, rx) = mpsc::channel(16);
    let child = cancel.child_token();
    let fence = Arc::new(Fence::new(lease, valid_until));
    let drain = Arc::new(AtomicBool::new(!link.enabled));
    let revision = link.revision;
    let site = link.site_slug.as_str().to_owned();
    info!(link = %id, epoch = fence.lease().epoch, revision, site = %site, practice = %link.market_practice_id, "starting link worker");
    let task = match ctx.pms_connector(&link) {
        Ok(pms) => tokio::spawn(worker::link_worker(
            ctx.clone(),
            fence.clone(),
            link,
            pms,
            rx,
            child.clone(),
            drain.clone(),
        )),
        // A link whose PMS cannot be reached as configured (a malformed Cliniko key) fails like
        // a worker that failed: shown on the link, retried with backoff.
        Err(e) => tokio::spawn(async move { WorkerExit::Failed(format!("PMS connector: {e}")) }),
    };
    ctx.workers().insert(
        id,
        Running {
            tx,
            site,
            cancel: child,
            task,
            fence,
            revision,
            drain,
            hand_back: false,
            stopping: false,
            started: Instant::now(),
        },
    );
}

/// Remove the workers that ended; restart failed ones with backoff and show why on the link;
/// release the lease of a handed-back one.
async fn reap(ctx: &Arc<Ctx>, sup: &mut Supervisor) {
    let ended: Vec<(LinkId, Running)> = {
        let mut workers = ctx.workers();
        let ids: Vec<LinkId> = workers
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| workers.remove(&id).map(|r| (id, r)))
            .collect()
    };
    for (id, r) in ended {
        let exit = match r.task.await {
            Ok(exit) => exit,
            Err(e) if e.is_panic() => WorkerExit::Failed("the worker panicked".into()),
            Err(_) => WorkerExit::Failed("the worker was aborted".into()),
        };
        match &exit {
            WorkerExit::Failed(reason) => {
                // A worker that ran well for a while before failing starts its backoff afresh.
                let healthy_run = r.started.elapsed() >= HEALTHY_RUN;
                let failures = match sup.failed.get(&id) {
                    Some(f) if !healthy_run => f.failures + 1,
                    _ => 1,
                };
                let delay = restart_delay(failures);
                warn!(link = %id, %reason, failures, restart_in_ms = delay.as_millis() as u64, "link worker failed; restarting with backoff");
                sup.failed.insert(
                    id,
                    Failed {
                        failures,
                        not_before: Instant::now() + delay,
                    },
                );
                ctx.metrics.error("worker_failed");
                ctx.metrics.worker_restarted();
                let shown = SyncChanges {
                    last_error: Some(Some(SyncError {
                        kind: "worker_failed".into(),
                        message: format!(
                            "the link's worker stopped ({reason}); restarting in {} s",
                            delay.as_secs().max(1)
                        ),
                        at: ctx.now(),
                    })),
                    ..SyncChanges::default()
                };
                if let Err(e) = ctx.store.update_sync_state(r.fence.lease(), shown).await {
                    debug!(link = %id, error = %e, "could not record why the worker stopped");
                }
            }
            WorkerExit::Fenced => {
                info!(link = %id, "link worker stopped: the lease is no longer this node's");
            }
            WorkerExit::Stopped | WorkerExit::Gone => {
                sup.failed.remove(&id);
            }
        }
        if r.hand_back
            && let Err(e) = ctx.store.release_lease(r.fence.lease()).await
        {
            warn!(link = %id, error = %e, "releasing a handed-back lease failed");
        }
    }
}

/// How many links this node should work, and how many it would without its limit: the links
/// to work (enabled) divided among the nodes seen within one lease time-to-live (rounded up),
/// at most `max_links`.
async fn fair_share(ctx: &Ctx) -> Result<(u32, u64), StoreError> {
    let live = ctx.store.live_nodes(ctx.settings.lease_ttl).await?.max(1);
    let enabled = ctx.store.count_enabled_links().await?;
    let wanted = enabled.div_ceil(live).max(1);
    let share = u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .min(ctx.settings.max_links);
    Ok((share, wanted))
}

/// A link linked within this long may not have been taken by a lease round yet: it is not
/// counted as unserved.
fn unserved_grace(ctx: &Ctx) -> Duration {
    ctx.settings.lease_ttl * 2
}

/// The enabled links no node serves now (see [`unserved_grace`]).
pub(crate) async fn unserved_links(ctx: &Ctx) -> Result<Vec<LinkId>, StoreError> {
    ctx.store.unserved_links(linked_before(ctx)).await
}

/// Links created before this and held by no node are unserved (a newer one waits for a round).
pub(crate) fn linked_before(ctx: &Ctx) -> jiff::Timestamp {
    let grace = jiff::SignedDuration::try_from(unserved_grace(ctx)).unwrap_or_default();
    ctx.now().saturating_sub(grace).unwrap_or(ctx.now())
}

/// Record whether this node's fair share exceeds its `max_links`, and say so the moment it
/// does (and when it no longer does).
fn note_capacity(ctx: &Ctx, wanted: u64) {
    let max = u64::from(ctx.settings.max_links);
    let at_capacity = wanted > max;
    ctx.capacity.wanted.store(wanted, Ordering::Relaxed);
    let was = ctx
        .capacity
        .at_capacity
        .swap(at_capacity, Ordering::Relaxed);
    if at_capacity && !was {
        warn!(
            node = %ctx.settings.node_id,
            max_links = max,
            share = wanted,
            "node at capacity: its share of the links is {wanted} and it works at most {max}; \
             the rest are served only if another node has room (start another node or raise max_links)"
        );
    } else if was && !at_capacity {
        info!(node = %ctx.settings.node_id, max_links = max, share = wanted, "node no longer at capacity");
    }
}

/// Count the links no node serves (fleet-wide); say so when some are, and when all are again.
async fn count_unserved(ctx: &Ctx) -> Result<(), StoreError> {
    let unserved = unserved_links(ctx).await?;
    let n = unserved.len() as u64;
    let before = ctx.capacity.unserved.swap(n, Ordering::Relaxed);
    if n > 0 && n != before {
        let first: Vec<String> = unserved.iter().take(5).map(ToString::to_string).collect();
        warn!(
            unserved = n,
            first = %first.join(", "),
            "{n} enabled practice(s) are served by no node: nothing is published for them and \
             their bookings are not answered"
        );
    } else if n == 0 && before > 0 {
        info!("every enabled practice is served by a node again");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use slotbridge_domain::practice::SiteSlug;
    use slotbridge_market::{ClientConfig, MarketClient};
    use slotbridge_store::{HorizonDays, Keyring, NewLink, Store};

    use crate::ctx::WorkerSettings;

    async fn ctx_with_link() -> (Arc<Ctx>, Lease) {
        let keys = Keyring::parse(Keyring::generate_key().expose_secret()).expect("keys");
        let store = Store::open("sqlite::memory:", keys).await.expect("store");
        let link = store
            .create_link(NewLink {
                site_slug: SiteSlug::parse("sharbour").expect("slug"),
                pms_api_key: SecretString::from("pms-key"),
                market_practice_id: "p-1".into(),
                market_practice_key: SecretString::from("practice-key"),
                enabled: true,
                horizon_days: HorizonDays::default(),
            })
            .await
            .expect("link");
        let market = MarketClient::new(ClientConfig::new(
            "http://127.0.0.1:9/pms-api/v1",
            SecretString::from("api-key"),
        ))
        .expect("client");
        let settings = WorkerSettings::new("node-a", "http://127.0.0.1:9".parse().expect("url"));
        let ctx = Ctx::new(store, market, settings, Arc::default());
        let lease = ctx
            .store
            .acquire_leases("node-a", 1, Duration::from_secs(60))
            .await
            .expect("lease")
            .pop()
            .expect("the link's lease")
            .lease;
        assert_eq!(lease.link_id, link.id);
        (ctx, lease)
    }

    /// Put a worker whose task is `task` in the node's table, as `start` would.
    fn running(ctx: &Ctx, lease: &Lease, task: tokio::task::JoinHandle<WorkerExit>) {
        let (tx, _rx) = mpsc::channel(1);
        ctx.workers().insert(
            lease.link_id,
            Running {
                tx,
                site: "sharbour".into(),
                cancel: CancellationToken::new(),
                task,
                fence: Arc::new(Fence::new(
                    lease.clone(),
                    Instant::now() + Duration::from_secs(60),
                )),
                revision: 0,
                drain: Arc::new(AtomicBool::new(false)),
                hand_back: false,
                stopping: false,
                started: Instant::now(),
            },
        );
    }

    #[tokio::test]
    async fn a_worker_that_panics_is_restarted_with_backoff_and_its_link_shows_why() {
        let (ctx, lease) = ctx_with_link().await;
        let mut sup = Supervisor::default();
        for failures in 1..=3u32 {
            running(&ctx, &lease, tokio::spawn(async { panic!("a bug") }));
            tokio::task::yield_now().await;
            while !ctx.workers()[&lease.link_id].task.is_finished() {
                tokio::task::yield_now().await;
            }
            let before = Instant::now();
            reap(&ctx, &mut sup).await;
            assert!(ctx.running().is_empty(), "the ended worker is gone");
            let f = sup.failed[&lease.link_id].clone();
            assert_eq!(
                ctx.metrics.fleet_totals()["workers.restarts"],
                u64::from(failures),
                "each restart is counted"
            );
            assert_eq!(f.failures, failures);
            // 1 s, 2 s, 4 s nominal; jitter shortens by up to half.
            let nominal = Duration::from_secs(1 << (failures - 1));
            let wait = f.not_before.saturating_duration_since(before);
            assert!(
                wait <= nominal && wait + Duration::from_millis(50) >= nominal / 2,
                "{wait:?} after {failures} failures"
            );
            let shown = ctx.store.sync_state(lease.link_id).await.expect("state");
            let error = shown.last_error.expect("the reason is shown");
            assert_eq!(error.kind, "worker_failed");
            assert!(error.message.contains("panicked"), "{}", error.message);
        }
        // A worker that ends normally clears the backoff.
        running(&ctx, &lease, tokio::spawn(async { WorkerExit::Stopped }));
        while !ctx.workers()[&lease.link_id].task.is_finished() {
            tokio::task::yield_now().await;
        }
        reap(&ctx, &mut sup).await;
        assert!(!sup.failed.contains_key(&lease.link_id));
    }

    #[tokio::test]
    async fn a_fence_lapses_by_itself_and_can_be_revoked() {
        let (_ctx, lease) = ctx_with_link().await;
        let fence = Fence::new(lease.clone(), Instant::now() + Duration::from_millis(30));
        assert!(fence.holds());
        fence.extend(Instant::now() + Duration::from_millis(10));
        assert!(fence.holds(), "an extension never shortens the fence");
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(
            !fence.holds(),
            "no renewal within the TTL: the worker must stop"
        );
        let fence = Fence::new(lease, Instant::now() + Duration::from_secs(60));
        fence.revoke();
        assert!(!fence.holds());
    }

    #[test]
    fn a_renewal_keeps_the_lease_certain_a_little_less_than_the_ttl() {
        let sent = Instant::now();
        let ttl = Duration::from_secs(10);
        assert_eq!(valid_until(sent, ttl), sent + Duration::from_secs(9));
        let short = Duration::from_secs(2);
        assert_eq!(valid_until(sent, short), sent + Duration::from_millis(1800));
    }
}
