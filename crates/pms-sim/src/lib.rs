//! A simulator of an Exact-style PMS API (see `docs/pms-api.md`): many practices, each with its
//! setup, diary, patients and API keys; the API under `/api/v1/sites/{slug}/`; desk controls
//! under `/_desk`; fault injection under `/_sim/faults`.
//!
//! It is as strict as a real PMS: an online insert that overlaps anything or is off the grid is
//! refused; inserts are idempotent on their external reference; the desk may double-book.
//!
//! Embedded use:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use slotbridge_pms_sim::{PmsSim, DEMO_SLUG, DEMO_API_KEY};
//! let sim = PmsSim::builder().practices(10).seed(42).build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let handle = sim.serve(listener).await?;
//! println!("{}/api/v1/sites/{DEMO_SLUG}/practice (X-API-KEY: {DEMO_API_KEY})", handle.base_url());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};

mod api;
pub mod cli;
mod desk;
pub mod faults;
pub mod generate;
pub mod practice;
pub mod problem;
mod rate;
mod registry;
pub mod webhooks;
pub mod wire;

pub use desk::{DeskAction, DeskOutcome, MAX_SITES, NewSite, SiteKey};
pub use faults::{Burst429, Faults, Outage};
pub use generate::{DEMO_API_KEY, DEMO_SLUG, Manifest, ManifestEntry, ManifestIssue, Misconfig};
pub use problem::Problem;
pub use rate::RateLimit;

use crate::practice::{Change, Practice, Webhook};
use crate::registry::{Lookup, Registry, Shared};

/// The default cap on unchanged generated practices in memory.
pub const DEFAULT_RESIDENT_CAP: usize = 20_000;
/// The default weight budget of generated practices in memory (see
/// [`PmsSimBuilder::resident_budget`]).
pub const DEFAULT_RESIDENT_BUDGET: usize = 50_000;

/// Builds a [`PmsSim`].
#[derive(Debug, Clone)]
pub struct PmsSimBuilder {
    practices: u32,
    seed: u64,
    rate_limit: Option<RateLimit>,
    resident_cap: usize,
    resident_budget: usize,
    epoch: Option<jiff::Timestamp>,
    faults: Faults,
}

impl PmsSimBuilder {
    /// How many practices to generate besides Harbour Dental (default 0).
    pub fn practices(mut self, n: u32) -> Self {
        self.practices = n;
        self
    }

    /// The generation seed (default 1).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The per-key rate limit; `None` turns it off. Default: 50/s, bursts of 200.
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// At most this many unchanged generated practices stay in memory (default 20,000).
    pub fn resident_cap(mut self, cap: usize) -> Self {
        self.resident_cap = cap;
        self
    }

    /// Unchanged generated practices are dropped (oldest first) while the generated practices
    /// in memory weigh more than this: a practice weighs 1, each diary day built by a read 1
    /// more, and its patient files 8 (see `practice::WEIGHT_PER_DAY`). A unit is about 16 KB
    /// (measured, see `docs/performance.md`); the default, [`DEFAULT_RESIDENT_BUDGET`], keeps
    /// 10,000 practices read a day or two at a time all in memory and bounds the total at about
    /// 0.8 GB whatever is read.
    pub fn resident_budget(mut self, budget: usize) -> Self {
        self.resident_budget = budget;
        self
    }

    /// The instant whose practice-local date starts the generated diaries (default: now).
    pub fn epoch(mut self, epoch: jiff::Timestamp) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Faults in force from the start.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Build the simulator (Harbour Dental is built now, the others on first use).
    pub fn build(self) -> PmsSim {
        let epoch = self.epoch.unwrap_or_else(jiff::Timestamp::now);
        let burst = self.faults.burst_429.map_or(0, |b| b.requests);
        PmsSim {
            state: Arc::new(SimState {
                registry: Mutex::new(Registry::new(
                    self.seed,
                    self.practices,
                    epoch,
                    self.resident_cap,
                    self.resident_budget,
                )),
                faults: Mutex::new(self.faults),
                burst_left: AtomicU32::new(burst),
                rate_limit: self.rate_limit.and_then(rate::Limiter::new),
                site_requests: Mutex::new(HashMap::new()),
                client: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default(),
            }),
        }
    }
}

/// The simulator: practices and their state, ready to serve.
#[derive(Debug, Clone)]
pub struct PmsSim {
    state: Arc<SimState>,
}

impl PmsSim {
    /// Start building a simulator.
    pub fn builder() -> PmsSimBuilder {
        PmsSimBuilder {
            practices: 0,
            seed: 1,
            rate_limit: Some(RateLimit::default()),
            resident_cap: DEFAULT_RESIDENT_CAP,
            resident_budget: DEFAULT_RESIDENT_BUDGET,
            epoch: None,
            faults: Faults::default(),
        }
    }

    /// Which practice has which misconfiguration.
    pub fn manifest(&self) -> Manifest {
        self.state.manifest()
    }

    /// Apply a desk action (as the `/_desk` endpoints and start-up flags do).
    pub fn desk(&self, action: DeskAction) -> Result<DeskOutcome, Problem> {
        self.state.desk(action)
    }

    /// How many practices are in memory now (the others are generated on first use).
    pub fn resident_practices(&self) -> usize {
        self.state.resident()
    }

    /// What the generated practices in memory weigh (see [`PmsSimBuilder::resident_budget`]).
    pub fn resident_weight(&self) -> usize {
        self.state.resident_weight()
    }

    /// How many API requests were addressed to the site `slug` so far, refused ones included
    /// (also `GET /_sim/stats`).
    pub fn site_requests(&self, slug: &str) -> u64 {
        self.state.site_requests(slug)
    }

    /// Replace the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// The router serving the API, the desk and the simulator controls.
    fn router(&self) -> Router {
        let api = api::router().layer(axum::middleware::from_fn_with_state(
            self.state.clone(),
            faults::apply,
        ));
        api.merge(desk::router(self.state.clone()))
            .fallback(|| async {
                Problem::not_found("no such endpoint (see docs/pms-api.md)").into_response()
            })
            .with_state(self.state.clone())
    }

    /// Serve on `listener` with the simulator's [`LIMITS`] until the handle is shut down.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<SimHandle> {
        self.serve_with(listener, LIMITS).await
    }

    /// Serve on `listener` with other listener limits (a test's short header-read timeout,
    /// say) until the handle is shut down.
    pub async fn serve_with(
        &self,
        listener: TcpListener,
        limits: slotbridge_edge::Limits,
    ) -> std::io::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let listener = SimListener {
            inner: listener,
            state: self.state.clone(),
        };
        let app = self.router();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = slotbridge_edge::serve(listener, app, limits, async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(SimHandle {
            addr,
            sim: self.clone(),
            stop: Some(tx),
            task,
        })
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    sim: PmsSim,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator it serves.
    pub fn sim(&self) -> &PmsSim {
        &self.sim
    }

    /// Stop serving and wait for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Wait until the server stops (it runs until [`SimHandle::shutdown`] or an error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The simulator's listener limits: 1 MiB request bodies (the largest the API takes is one
/// appointment), 5 s for a request head, 120 s per request (longer than any latency fault).
pub const LIMITS: slotbridge_edge::Limits = slotbridge_edge::Limits {
    max_body: 1024 * 1024,
    header_read: std::time::Duration::from_secs(5),
    request: std::time::Duration::from_secs(120),
    drain: std::time::Duration::from_secs(5),
};

/// The TCP listener; during a `refused` outage it closes new connections at once.
#[derive(Debug)]
pub struct SimListener {
    inner: TcpListener,
    state: Arc<SimState>,
}

impl Listener for SimListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.state.faults().outage == Some(Outage::Refused) {
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    return (stream, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The state shared by every request.
#[derive(Debug)]
pub struct SimState {
    registry: Mutex<Registry>,
    faults: Mutex<Faults>,
    burst_left: AtomicU32,
    rate_limit: Option<rate::Limiter>,
    /// API requests addressed to each site (refused ones included), for tests of a client
    /// that must stop calling.
    site_requests: Mutex<HashMap<String, u64>>,
    client: reqwest::Client,
}

impl SimState {
    /// The practice with `slug`; a generated one is built outside the registry lock, so one
    /// cold practice does not hold up requests to the others.
    fn practice(&self, slug: &str) -> Option<Shared> {
        let lookup = {
            let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            registry.trim();
            registry.lookup(slug)
        };
        match lookup {
            Lookup::Live(p) => Some(p),
            Lookup::Unknown => None,
            Lookup::Generate { seed, index, epoch } => {
                let p = generate::generated(seed, index, epoch);
                Some(
                    self.registry
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .adopt(slug, p),
                )
            }
        }
    }

    fn insert_practice(&self, slug: &str, p: Practice) -> bool {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slug, p)
    }

    fn insert_practices(&self, practices: Vec<(String, Practice)>) -> Result<(), String> {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert_all(practices)
    }

    fn resident(&self) -> usize {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resident()
    }

    fn count_site_request(&self, slug: &str) {
        *self
            .site_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(slug.to_owned())
            .or_default() += 1;
    }

    fn site_requests(&self, slug: &str) -> u64 {
        self.site_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slug)
            .copied()
            .unwrap_or(0)
    }

    fn all_site_requests(&self) -> HashMap<String, u64> {
        self.site_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn resident_weight(&self) -> usize {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .weight()
    }

    fn manifest(&self) -> Manifest {
        let (seed, count) = {
            let r = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            (r.seed(), r.count())
        };
        generate::manifest(seed, count)
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_faults(&self, f: Faults) {
        self.burst_left
            .store(f.burst_429.map_or(0, |b| b.requests), Ordering::SeqCst);
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = f;
    }

    /// Take a token from `key`'s bucket, or 429 with the seconds until one is back.
    fn check_rate(&self, key: &str) -> Result<(), Problem> {
        self.rate_limit.as_ref().map_or(Ok(()), |l| l.check(key))
    }

    /// Send a change to every webhook of `slug`, in the background.
    fn deliver(&self, slug: &str, hooks: &[Webhook], change: Change) {
        if hooks.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let event = webhooks::CloudEvent::new(slug, &change);
        for hook in hooks {
            rt.spawn(webhooks::deliver(
                self.client.clone(),
                hook.clone(),
                event.clone(),
            ));
        }
    }
}
