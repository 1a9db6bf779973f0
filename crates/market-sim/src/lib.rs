//! A simulator of the Healthengine marketplace's PMS API v1.9.0 (see `docs/market-sim.md`).
//!
//! It serves the spec's endpoints under `/pms-api/v1` for many practices and consumers, a JSON
//! control API under `/_market` (the practice admin's and the patient's side), and simple
//! server-rendered pages under `/admin` and `/book`. It is embeddable:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use slotbridge_market_sim::MarketSim;
//! let sim = MarketSim::builder().consumer("slotbridge", "test-api-key").time_factor(0.01).build()?;
//! let (practice_id, practice_key) = sim.create_practice("Harbour Dental", "Australia/Sydney", "slotbridge").unwrap();
//! let handle = sim.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
//! println!("API at {}, practice {practice_id} / {practice_key}", handle.api_url());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod cli;
pub mod control;
pub mod delivery;
pub mod faults;
pub mod pages;
pub mod record;
pub mod slots;
pub mod state;
pub mod wire;

use std::{
    io::Read as _,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use jiff::{SignedDuration, Timestamp};
pub use state::{Market, Timing};

/// Shared state of the running simulator.
#[derive(Clone)]
pub struct App {
    market: Arc<Mutex<Market>>,
    http: reqwest::Client,
    recorder: Option<Arc<record::Recorder>>,
    /// How far the simulator's clock runs ahead of (or behind) the real clock.
    clock_offset: Arc<Mutex<SignedDuration>>,
    /// The injected faults (`/_market/faults`).
    faults: Arc<Mutex<faults::FaultState>>,
    /// The timing rules.
    pub timing: Timing,
}

impl App {
    /// The simulator's time: the real time moved by the offset set through the control API
    /// (`/_market/clock`). Every rule of the simulator reads the time here.
    pub fn now(&self) -> Timestamp {
        let offset = *self
            .clock_offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Set the simulator's time to `at` (it runs on from there in real time).
    pub fn set_now(&self, at: Timestamp) {
        *self
            .clock_offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = at.duration_since(Timestamp::now());
    }

    /// Move the simulator's time by `by`.
    pub fn advance(&self, by: SignedDuration) {
        let mut o = self
            .clock_offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *o = o.checked_add(by).unwrap_or(*o);
    }

    /// The injected faults and the API requests noted (never held across an await).
    pub fn faults(&self) -> MutexGuard<'_, faults::FaultState> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lock the model (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Market> {
        self.market
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Builds a [`MarketSim`].
#[derive(Debug, Clone)]
pub struct MarketSimBuilder {
    time_factor: f64,
    per_page: u64,
    consumers: Vec<(String, String)>,
    record: Option<PathBuf>,
    quirks: bool,
}

impl MarketSimBuilder {
    /// Answer with data that the spec allows but that is shaped differently from the usual
    /// answers (see "Quirks mode" in docs/market-sim.md). Default off.
    pub fn quirks(mut self, on: bool) -> Self {
        self.quirks = on;
        self
    }

    /// Multiply every window (auto-confirm 20 s, health 10 min, webhook timeout and retries) by
    /// `f` (> 0). Default 1.
    pub fn time_factor(mut self, f: f64) -> Self {
        self.time_factor = f;
        self
    }

    /// Items per page of the request lists. Default 100.
    pub fn per_page(mut self, n: u64) -> Self {
        self.per_page = n;
        self
    }

    /// Register a consumer and its api key.
    pub fn consumer(mut self, name: impl Into<String>, api_key: impl Into<String>) -> Self {
        self.consumers.push((name.into(), api_key.into()));
        self
    }

    /// Record every PMS API call to this file, one JSON line each.
    pub fn record(mut self, path: impl Into<PathBuf>) -> Self {
        self.record = Some(path.into());
        self
    }

    /// Build.
    ///
    /// # Errors
    /// An invalid time factor, a duplicate consumer, or a record file that cannot be created.
    pub fn build(self) -> std::io::Result<MarketSim> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        if !(self.time_factor.is_finite() && self.time_factor > 0.0) {
            return Err(invalid(format!(
                "time factor: must be a positive number, found {}",
                self.time_factor
            )));
        }
        let timing = Timing {
            time_factor: self.time_factor,
        };
        let mut market = Market::new(timing, self.per_page);
        market.quirks = self.quirks;
        for (name, key) in self.consumers {
            market
                .add_consumer(&name, Some(key))
                .map_err(|e| invalid(format!("consumer {name:?}: {e}")))?;
        }
        let recorder = self
            .record
            .as_deref()
            .map(record::Recorder::create)
            .transpose()?;
        // Deliveries follow no redirect, as an outbound client of ours never does.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Healthengine PMS API simulator (slotbridge market-sim)")
            .build()
            .map_err(|e| invalid(format!("cannot build the webhook client: {e}")))?;
        Ok(MarketSim {
            app: App {
                market: Arc::new(Mutex::new(market)),
                http,
                recorder,
                clock_offset: Arc::new(Mutex::new(SignedDuration::ZERO)),
                faults: Arc::default(),
                timing,
            },
        })
    }
}

/// The simulator, before and while it serves.
#[derive(Clone)]
pub struct MarketSim {
    app: App,
}

impl MarketSim {
    /// A builder with the defaults (time factor 1, 100 per page, no consumers, no recording).
    pub fn builder() -> MarketSimBuilder {
        MarketSimBuilder {
            time_factor: 1.0,
            per_page: 100,
            consumers: Vec::new(),
            record: None,
            quirks: false,
        }
    }

    /// The simulator's time (see [`App::now`]).
    pub fn now(&self) -> Timestamp {
        self.app.now()
    }

    /// Set the simulator's time (it runs on from there in real time).
    pub fn set_now(&self, at: Timestamp) {
        self.app.set_now(at);
    }

    /// Replace the faults in force (see [`faults::Faults`]).
    pub fn set_faults(&self, faults: faults::Faults) {
        self.app.faults().faults = faults;
    }

    /// The API requests noted so far, oldest first (see [`faults::NotedRequest`]).
    pub fn noted_requests(&self) -> Vec<faults::NotedRequest> {
        self.app.faults().requests.iter().cloned().collect()
    }

    /// Switch quirks mode on or off while serving (see [`MarketSimBuilder::quirks`]).
    pub fn set_quirks(&self, on: bool) {
        self.app.lock().quirks = on;
    }

    /// Run `f` on the model (for embedding and inspection).
    pub fn with_market<T>(&self, f: impl FnOnce(&mut Market) -> T) -> T {
        f(&mut self.app.lock())
    }

    /// Create a practice and grant `consumer` consent; returns the practice id and key.
    ///
    /// # Errors
    /// Unknown time zone or consumer.
    pub fn create_practice(
        &self,
        name: &str,
        timezone: &str,
        consumer: &str,
    ) -> Result<(String, String), state::SimError> {
        let now = self.app.now();
        let mut m = self.app.lock();
        let id = m.add_practice(name, timezone, false)?;
        let key = m.grant_consent(id, consumer, now)?;
        Ok((id.to_string(), key))
    }

    /// The whole HTTP surface: `/pms-api/v1`, `/_market`, `/admin`, `/book`.
    pub fn router(&self) -> Router {
        let api = api::router()
            .layer(middleware::from_fn_with_state(
                self.app.clone(),
                faults::apply,
            ))
            .layer(middleware::from_fn_with_state(
                self.app.recorder.clone(),
                record::record,
            ))
            .with_state(self.app.clone());
        Router::new()
            .nest("/pms-api/v1", api)
            .nest("/_market", control::router().with_state(self.app.clone()))
            .merge(pages::router().with_state(self.app.clone()))
            .layer(middleware::from_fn(gunzip))
            .layer(DefaultBodyLimit::max(LIMITS.max_body))
    }

    /// Serve on `listener` with the simulator's [`LIMITS`] until the handle is shut down or
    /// dropped.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<SimHandle> {
        self.serve_with(listener, LIMITS).await
    }

    /// Serve on `listener` with other listener limits (a test's short header-read timeout,
    /// say; the body limit stays [`LIMITS`]'s, which the router applies itself) until the
    /// handle is shut down or dropped.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub async fn serve_with(
        self,
        listener: tokio::net::TcpListener,
        limits: slotbridge_edge::Limits,
    ) -> std::io::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = self.router();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = slotbridge_edge::serve(listener, router, limits, shutdown).await {
                tracing::error!(error = %e, "market-sim stopped");
            }
        });
        Ok(SimHandle {
            addr,
            shutdown: Some(tx),
            task: Some(task),
            sim: self,
        })
    }
}

/// The simulator's listener limits: 32 MiB request bodies (an availability batch of a large
/// practice; gzip bodies are limited before and, to 256 MiB, after decompression), 5 s for a
/// request head, 60 s per request.
pub const LIMITS: slotbridge_edge::Limits = slotbridge_edge::Limits {
    max_body: 32 * 1024 * 1024,
    header_read: std::time::Duration::from_secs(5),
    request: std::time::Duration::from_secs(60),
    drain: std::time::Duration::from_secs(5),
};

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    sim: MarketSim,
}

impl SimHandle {
    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/pms-api/v1`, the client's base URL.
    pub fn api_url(&self) -> String {
        format!("{}/pms-api/v1", self.base_url())
    }

    /// The simulator (for [`MarketSim::with_market`] and [`MarketSim::create_practice`]).
    pub fn sim(&self) -> &MarketSim {
        &self.sim
    }

    /// Stop serving and wait for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Accept `Content-Encoding: gzip` request bodies (the spec allows it on every POST).
async fn gunzip(req: Request, next: Next) -> Response {
    let gz = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gz {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    parts
        .extensions
        .insert(record::ReceivedHeaders(parts.headers.clone()));
    let bad = |m: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": m})),
        )
            .into_response()
    };
    let Ok(bytes) = to_bytes(body, LIMITS.max_body).await else {
        return slotbridge_edge::Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
            format!(
                "the request body is over the limit of {} bytes",
                LIMITS.max_body
            ),
        )
        .into_response();
    };
    let mut out = Vec::new();
    if flate2::read::GzDecoder::new(&bytes[..])
        .take(256 * 1024 * 1024)
        .read_to_end(&mut out)
        .is_err()
    {
        return bad("body: Content-Encoding is gzip but the body is not valid gzip");
    }
    parts.headers.remove(header::CONTENT_ENCODING);
    if let Ok(v) = HeaderValue::from_str(&out.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    next.run(Request::from_parts(parts, Body::from(out))).await
}

/// Parse a JSON body; the error names the field (`[0].pmsAppointmentLength: invalid type ...`).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("body: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })
}
