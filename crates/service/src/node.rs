//! The composition root of one `slotbridge run` node: the store, the marketplace client, the
//! lease supervisor with its link workers, and the HTTP server, stopped together by one
//! cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use slotbridge_market::{ClientConfig, MarketClient};
use slotbridge_store::{Keyring, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ctx::{Ctx, Webhooks, WorkerSettings};
use crate::http::AdminAccess;
use crate::metrics::Metrics;
use crate::supervisor;

/// Everything a node needs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `sqlite://…?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// The marketplace API base URL including `/pms-api/v1`.
    pub market_url: String,
    /// This integration's marketplace api key.
    pub market_api_key: SecretString,
    /// The User-Agent sent to the marketplace.
    pub user_agent: String,
    /// The PMS API base URL.
    pub pms_url: url::Url,
    /// The Cliniko API base URL (ending in `/v1`) for Cliniko links; `None`: each key's shard
    /// names it (`https://api.{shard}.cliniko.com/v1`). Set for the simulator.
    pub cliniko_url: Option<url::Url>,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// This node's id.
    pub node_id: String,
    /// Link polling interval.
    pub poll_interval: Duration,
    /// Lease time-to-live (a dead node's links are taken over after it).
    pub lease_ttl: Duration,
    /// Secret the PMS signs its webhooks with. When missing, the node makes a random one at
    /// start (enough for one node; nodes behind one shared URL must share a configured secret).
    pub pms_webhook_secret: Option<SecretString>,
    /// Where the PMS and the marketplace reach this node's `/webhooks/…` (for example
    /// `https://slotbridge.example.com`). Defaults to `http://` + the bound listen address.
    pub public_url: Option<url::Url>,
    /// Added to this node's clock (tests run nodes whose clocks disagree); zero in production.
    /// Leases never depend on it: the database's clock decides their expiry.
    pub clock_offset: jiff::SignedDuration,
    /// What the HTTP listener accepts: body limit, header-read and request timeouts
    /// ([`crate::http::limits`] unless a test needs them short).
    pub limits: slotbridge_edge::Limits,
    /// How long a final booking's request (the patient's details) is kept
    /// ([`crate::ctx::BOOKING_RETENTION`] by default).
    pub booking_retention: Duration,
    /// How many links this node works at most; the rest are left to other nodes, and a
    /// practice no node works is reported (console, metric, log).
    pub max_links: u32,
    /// Register webhooks with both sides (`false`: poll both every `poll_interval`).
    pub webhooks: bool,
    /// How long one call to the PMS or the marketplace may take before it is given up as a
    /// timeout ([`DEFAULT_CALL_TIMEOUT`]; tests of slow servers shorten it).
    pub call_timeout: Duration,
}

/// The default [`NodeConfig::call_timeout`]: 10 s.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl NodeConfig {
    /// The worker settings this configuration gives, refused with the setting named when the
    /// node could not run with them (a zero interval, a lease too short to renew).
    pub fn settings(&self) -> Result<WorkerSettings, crate::ctx::SettingsError> {
        let mut settings = WorkerSettings::new(self.node_id.clone(), self.pms_url.clone());
        settings.poll_interval = self.poll_interval;
        settings.lease_ttl = self.lease_ttl;
        settings.clock_offset = self.clock_offset;
        settings.booking_retention = self.booking_retention;
        settings.max_links = self.max_links;
        settings.pms_timeout = self.call_timeout;
        settings.cliniko_url.clone_from(&self.cliniko_url);
        // A crash test's hook (see `CrashPoint`); unset in production.
        if let Ok(at) = std::env::var("SLOTBRIDGE_CRASH_AT")
            && !at.is_empty()
        {
            settings.crash_at = Some(crate::ctx::CrashPoint::parse(&at).ok_or_else(|| {
                crate::ctx::SettingsError {
                    field: "SLOTBRIDGE_CRASH_AT",
                    message: format!(
                        "expected after_claim, after_patient, after_insert or before_confirm, \
                             found {at:?}"
                    ),
                }
            })?);
        }
        settings.validate()?;
        Ok(settings)
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] slotbridge_store::StoreError),
    /// The marketplace client could not be built.
    #[error("marketplace client: {0}")]
    Market(#[from] slotbridge_market::MarketError),
    /// A setting the node cannot run with.
    #[error("{0}")]
    Settings(#[from] crate::ctx::SettingsError),
    /// The admin API would be open on a non-loopback address.
    #[error(
        "no admin token: the admin API and the console would be open to the network on {0}; \
         set admin_token (SLOTBRIDGE_ADMIN_TOKEN) or listen on a loopback address"
    )]
    AdminOpen(SocketAddr),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    /// Where its HTTP server listens.
    pub addr: SocketAddr,
    /// The shared context (store, workers).
    pub ctx: Arc<Ctx>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Start a node whose admin API needs no token (allowed on a loopback address only) and
    /// whose console cannot be logged in to. See [`Node::start_with_access`].
    pub async fn start(cfg: NodeConfig, keys: Keyring) -> Result<Node, StartError> {
        Node::start_with_access(cfg, keys, AdminAccess::default()).await
    }

    /// Start a node; `access` says who may use the admin API (`/api`, bearer token) and the
    /// console (`/console`, password or token). Without a token the node listens only on a
    /// loopback address.
    pub async fn start_with_access(
        cfg: NodeConfig,
        keys: Keyring,
        access: AdminAccess,
    ) -> Result<Node, StartError> {
        if access.token.is_none() && !cfg.listen.ip().is_loopback() {
            return Err(StartError::AdminOpen(cfg.listen));
        }
        let mut settings = cfg.settings()?;
        let store = Store::open(&cfg.database_url, keys).await?;
        let metrics = Arc::new(Metrics::default());
        let market = MarketClient::new(
            ClientConfig::new(cfg.market_url.clone(), cfg.market_api_key.clone())
                .with_user_agent(cfg.user_agent.clone())
                .with_timeout(cfg.call_timeout)
                .with_observer(Metrics::observer(&metrics, "market")),
        )?;
        let listener =
            TcpListener::bind(cfg.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: cfg.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: cfg.listen,
            source,
        })?;
        let public_url = match &cfg.public_url {
            Some(u) => u.clone(),
            None => format!("http://{addr}")
                .parse()
                .map_err(|_| StartError::Listen {
                    addr,
                    source: std::io::Error::other("the listen address is not a valid URL host"),
                })?,
        };
        let pms_webhook_secret = cfg
            .pms_webhook_secret
            .clone()
            .unwrap_or_else(Keyring::generate_key);
        if cfg.webhooks {
            settings.webhooks = Some(Webhooks {
                public_url,
                pms_secret: pms_webhook_secret.clone(),
            });
        }
        // Said before the listener serves: whoever sees the node answer finds it in the log.
        tracing::info!(%addr, node = %cfg.node_id, "slotbridge node started");
        let ctx = Ctx::new(store, market, settings, metrics);
        let cancel = CancellationToken::new();
        let app = crate::http::router(ctx.clone(), Some(pms_webhook_secret), access);
        let http_cancel = cancel.clone();
        let http = tokio::spawn(async move {
            // The body limit, header-read and request timeouts of docs/operations.md.
            let served = slotbridge_edge::serve(listener, app, cfg.limits, async move {
                http_cancel.cancelled().await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        let supervisor = tokio::spawn(supervisor::run_node(ctx.clone(), cancel.clone()));
        let retention = tokio::spawn(purge_booking_requests(ctx.clone(), cancel.clone()));
        let fleet = tokio::spawn(crate::fleet::run(ctx.clone(), cancel.clone()));
        Ok(Node {
            addr,
            ctx,
            cancel,
            tasks: vec![http, supervisor, retention, fleet],
        })
    }

    /// The node's base URL, e.g. `http://127.0.0.1:7400`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop: workers finish their current step, leases are released, the server drains.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// How often the node purges the requests of bookings final for longer than the retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// At start and every [`PURGE_EVERY`]: forget the patient's details of every booking final for
/// longer than `booking_retention` (every node does it; the update is idempotent).
async fn purge_booking_requests(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        let Ok(retention) = jiff::SignedDuration::try_from(ctx.settings.booking_retention) else {
            continue;
        };
        let Ok(before) = ctx.now().checked_sub(retention) else {
            continue;
        };
        match ctx.store.purge_booking_requests(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "booking requests past their retention purged"),
            Err(e) => tracing::warn!(error = %e, "purging booking requests failed; retried later"),
        }
    }
}
