//! A simulator of Cliniko's REST API, written from its published documentation (the
//! `redguava/cliniko-api` repository; see `docs/cliniko-sim.md` for what is simulated and
//! what the simulator chose where the documentation is silent).
//!
//! One process serves several shards: `/{shard}/v1/...` is the API of that shard (what
//! `https://api.{shard}.cliniko.com/v1` is for the real one), and `/v1/...` the API of the
//! default shard (`au1` unless set otherwise). An API key opens its own account on its own
//! shard only. The control API for tests and the demo is under `/_sim`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use slotbridge_cliniko_sim::{ClinikoSim, generate};
//! let sim = ClinikoSim::builder().build();
//! let practice = sim.seed(generate::practice(7, "au2")).expect("a valid practice");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let handle = slotbridge_cliniko_sim::serve(listener, sim).await?;
//! println!("{} with key {}", handle.api_base("au2"), practice.api_key);
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

#![recursion_limit = "256"]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use slotbridge_domain::clock::{Clock, SystemClock};
use tokio::net::TcpListener;

mod api;
pub mod availability;
pub mod control;
pub mod generate;
pub mod model;
pub mod query;
pub mod rate;
pub mod wire;

pub use control::{
    AppointmentTypeSpec, BusinessSpec, ControlError, DeskAction, DeskOutcome, PatientSpec,
    PracticeSpec, PractitionerSpec, SeededPractice, WeeklySpec,
};
pub use model::OnlineBookings;

/// The documented rate limit: requests per minute per user.
pub const DEFAULT_RATE_LIMIT: u32 = 200;

/// The shards the readme lists.
pub const KNOWN_SHARDS: [&str; 6] = ["au1", "au2", "au3", "ca1", "uk1", "eu1"];

/// The request limits of the simulator's listener.
pub const LIMITS: slotbridge_edge::Limits = slotbridge_edge::Limits {
    max_body: 1024 * 1024,
    header_read: std::time::Duration::from_secs(10),
    request: std::time::Duration::from_secs(30),
    drain: std::time::Duration::from_secs(5),
};

/// Builds a [`ClinikoSim`].
pub struct ClinikoSimBuilder {
    clock: Arc<dyn Clock>,
    rate_limit: Option<u32>,
    default_shard: String,
}

impl std::fmt::Debug for ClinikoSimBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClinikoSimBuilder")
            .field("now", &self.clock.now())
            .field("rate_limit", &self.rate_limit)
            .field("default_shard", &self.default_shard)
            .finish()
    }
}

impl ClinikoSimBuilder {
    /// The clock every time of the simulator comes from (default: the system's). Tests pass
    /// a `ManualClock` to move time for the rate limit and the available times.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Requests per minute per user; `None` turns the limit off (default 200).
    pub fn rate_limit(mut self, limit: Option<u32>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// The shard served at `/v1` (default `au1`).
    pub fn default_shard(mut self, shard: &str) -> Self {
        shard.clone_into(&mut self.default_shard);
        self
    }

    pub fn build(self) -> ClinikoSim {
        ClinikoSim {
            inner: Arc::new(Inner {
                world: Mutex::new(model::World::default()),
                limiter: Mutex::new(rate::Limiter::default()),
                stats: Mutex::new(std::collections::BTreeMap::new()),
                clock: self.clock,
                rate_limit: self.rate_limit,
                default_shard: self.default_shard,
            }),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) world: Mutex<model::World>,
    pub(crate) limiter: Mutex<rate::Limiter>,
    /// Authenticated API requests per account: answered, and refused by the rate limit.
    pub(crate) stats: Mutex<std::collections::BTreeMap<u64, AccountRequests>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) default_shard: String,
}

/// The simulator: its accounts, clock and rate limiter. Cheap to clone (shared state).
#[derive(Clone)]
pub struct ClinikoSim {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ClinikoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClinikoSim")
            .field("accounts", &self.world().accounts.len())
            .field("default_shard", &self.inner.default_shard)
            .finish()
    }
}

impl ClinikoSim {
    pub fn builder() -> ClinikoSimBuilder {
        ClinikoSimBuilder {
            clock: Arc::new(SystemClock),
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            default_shard: "au1".to_owned(),
        }
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, model::World> {
        self.inner
            .world
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator's time now.
    pub fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    /// Create an account from `spec` (as `POST /_sim/practices` does).
    ///
    /// # Errors
    /// [`ControlError`] when the spec is inconsistent (an unknown index, a bad time or zone,
    /// a key already in use).
    pub fn seed(&self, spec: PracticeSpec) -> Result<SeededPractice, ControlError> {
        let now = self.now();
        control::seed(&mut self.world(), spec, now)
    }

    /// What the desk does in Cliniko's own screens (as `POST /_sim/practices/{id}/desk`):
    /// book, cancel, delete, block time, change availabilities and online-booking settings.
    ///
    /// # Errors
    /// [`ControlError`] when the account or a record named does not exist, or a value is bad.
    pub fn desk(&self, account: u64, action: DeskAction) -> Result<DeskOutcome, ControlError> {
        let now = self.now();
        control::desk(&mut self.world(), account, action, now)
    }

    /// The live individual appointments of an account (neither cancelled nor deleted), for
    /// tests: `(id, practitioner id, starts_at, ends_at, notes)`.
    pub fn live_appointments(
        &self,
        account: u64,
    ) -> Vec<(u64, u64, jiff::Timestamp, jiff::Timestamp, Option<String>)> {
        self.world()
            .accounts
            .get(&account)
            .map(|a| {
                a.appointments
                    .iter()
                    .filter(|x| x.is_live())
                    .map(|x| {
                        (
                            x.id,
                            x.practitioner_id,
                            x.starts_at,
                            x.ends_at,
                            x.notes.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The authenticated API requests each account's key made so far (what `GET /_sim/stats`
    /// answers): those answered, and those refused by the rate limit.
    pub fn request_counts(&self) -> std::collections::BTreeMap<u64, AccountRequests> {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn count_request(&self, account: u64, allowed: bool) {
        let mut stats = self
            .inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let s = stats.entry(account).or_default();
        if allowed {
            s.requests += 1;
        } else {
            s.rate_limited += 1;
        }
    }

    /// The router: the API of every shard and the control API.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }
}

/// One account's API requests (see [`ClinikoSim::request_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountRequests {
    /// Requests let through (whatever they were answered).
    pub requests: u64,
    /// Requests refused with `429` by the rate limit.
    pub rate_limited: u64,
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API base of `shard`: `http://127.0.0.1:PORT/{shard}/v1`.
    pub fn api_base(&self, shard: &str) -> String {
        format!("{}/{shard}/v1", self.base_url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and wait for the requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Serve `sim` on `listener` until the handle is shut down.
///
/// # Errors
/// When the listener's address cannot be read.
pub async fn serve(listener: TcpListener, sim: ClinikoSim) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = sim.router();
    let task = tokio::spawn(async move {
        let _ = slotbridge_edge::serve(listener, app, LIMITS, async {
            let _ = stopped.await;
        })
        .await;
    });
    Ok(SimHandle {
        addr,
        stop: Some(stop),
        task,
    })
}
