//! `slotbridge run`: one integration node, configured by a TOML file and the environment (see
//! docs/operations.md). Several nodes may share one PostgreSQL database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use serde::Deserialize;
use slotbridge_service::http::AdminAccess;
use slotbridge_service::node::{Node, NodeConfig};
use slotbridge_store::Keyring;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML); every key may also come from the environment as
    /// SLOTBRIDGE_<KEY> (upper case), which wins.
    #[arg(long, short, env = "SLOTBRIDGE_CONFIG")]
    config: Option<PathBuf>,
}

/// The configuration file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    database_url: Option<String>,
    listen: Option<String>,
    node_id: Option<String>,
    market_url: Option<String>,
    market_api_key: Option<String>,
    user_agent: Option<String>,
    pms_url: Option<String>,
    cliniko_url: Option<String>,
    poll_interval_ms: Option<u64>,
    lease_ttl_secs: Option<u64>,
    booking_retention_days: Option<u64>,
    clock_offset_ms: Option<i64>,
    log_format: Option<String>,
    pms_webhook_secret: Option<String>,
    public_url: Option<String>,
    admin_token: Option<String>,
    console_password: Option<String>,
    max_links: Option<u64>,
    webhooks: Option<bool>,
}

fn setting(file: &Option<String>, key: &str) -> Option<String> {
    std::env::var(format!("SLOTBRIDGE_{}", key.to_uppercase()))
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| file.clone())
}

fn number(file: Option<u64>, key: &str) -> anyhow::Result<Option<u64>> {
    match std::env::var(format!("SLOTBRIDGE_{}", key.to_uppercase())) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .with_context(|| format!("{key}: expected a whole number, found {v:?}")),
        _ => Ok(file),
    }
}

/// The configuration file at `path` (none: every key from the environment); `Ok(Err(line))`
/// when it is not valid (a usage error).
pub(super) fn file_config(path: Option<&Path>) -> anyhow::Result<Result<FileConfig, String>> {
    let Some(path) = path else {
        return Ok(Ok(FileConfig::default()));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())))
}

/// The node's database URL: `database_url` from the environment or the file, else the
/// default SQLite file.
pub(super) fn database_url(file: &FileConfig) -> String {
    setting(&file.database_url, "database_url")
        .unwrap_or_else(|| "sqlite://slotbridge.db?mode=rwc".into())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = match file_config(args.config.as_deref())? {
        Ok(c) => c,
        Err(message) => return Ok(super::usage_error(message)),
    };
    let json_logs = setting(&file.log_format, "log_format").as_deref() == Some("json");
    super::init_tracing(json_logs);
    let required = |v: Option<String>, key: &str| {
        v.ok_or_else(|| {
            format!(
                "{key}: missing (set it in the config file or SLOTBRIDGE_{})",
                key.to_uppercase()
            )
        })
    };
    let config = (|| -> Result<NodeConfig, String> {
        let listen: SocketAddr = setting(&file.listen, "listen")
            .unwrap_or_else(|| "127.0.0.1:7400".into())
            .parse()
            .map_err(|e| format!("listen: {e}"))?;
        let pms_url = required(setting(&file.pms_url, "pms_url"), "pms_url")?;
        Ok(NodeConfig {
            database_url: database_url(&file),
            market_url: required(setting(&file.market_url, "market_url"), "market_url")?,
            market_api_key: SecretString::from(required(
                setting(&file.market_api_key, "market_api_key"),
                "market_api_key",
            )?),
            user_agent: setting(&file.user_agent, "user_agent")
                .unwrap_or_else(|| "slotbridge (integrations@slotbridge.example) PROD".into()),
            pms_url: pms_url.parse().map_err(|e| format!("pms_url: {e}"))?,
            cliniko_url: setting(&file.cliniko_url, "cliniko_url")
                .map(|u| u.parse().map_err(|e| format!("cliniko_url: {e}")))
                .transpose()?,
            listen,
            node_id: setting(&file.node_id, "node_id")
                .unwrap_or_else(|| format!("node-{}", std::process::id())),
            poll_interval: Duration::from_millis(
                number(file.poll_interval_ms, "poll_interval_ms")
                    .map_err(|e| format!("{e:#}"))?
                    .unwrap_or(5000),
            ),
            lease_ttl: Duration::from_secs(
                number(file.lease_ttl_secs, "lease_ttl_secs")
                    .map_err(|e| format!("{e:#}"))?
                    .unwrap_or(10),
            ),
            pms_webhook_secret: setting(&file.pms_webhook_secret, "pms_webhook_secret")
                .map(SecretString::from),
            call_timeout: slotbridge_service::node::DEFAULT_CALL_TIMEOUT,
            public_url: setting(&file.public_url, "public_url")
                .map(|u| u.parse().map_err(|e| format!("public_url: {e}")))
                .transpose()?,
            max_links: u32::try_from(
                number(file.max_links, "max_links")
                    .map_err(|e| format!("{e:#}"))?
                    .unwrap_or(5000),
            )
            .map_err(|_| "max_links: expected at most 4294967295".to_owned())?,
            webhooks: match std::env::var("SLOTBRIDGE_WEBHOOKS") {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .map_err(|_| format!("webhooks: expected true or false, found {v:?}"))?,
                _ => file.webhooks.unwrap_or(true),
            },
            clock_offset: jiff::SignedDuration::from_millis(
                match std::env::var("SLOTBRIDGE_CLOCK_OFFSET_MS") {
                    Ok(v) if !v.is_empty() => v.parse().map_err(|_| {
                        format!("clock_offset_ms: expected a whole number, found {v:?}")
                    })?,
                    _ => file.clock_offset_ms.unwrap_or(0),
                },
            ),
            limits: slotbridge_service::http::limits(),
            booking_retention: match number(file.booking_retention_days, "booking_retention_days")
                .map_err(|e| format!("{e:#}"))?
            {
                Some(0) => return Err("booking_retention_days: expected at least 1".to_owned()),
                Some(d) => Duration::from_secs(d.saturating_mul(24 * 3600)),
                None => slotbridge_service::ctx::BOOKING_RETENTION,
            },
        })
    })();
    let config = match config {
        Ok(c) => c,
        Err(message) => return Ok(super::usage_error(message)),
    };
    if let Err(e) = config.settings() {
        return Ok(super::usage_error(e.to_string()));
    }
    let access = AdminAccess {
        token: setting(&file.admin_token, "admin_token").map(SecretString::from),
        console_password: setting(&file.console_password, "console_password")
            .map(SecretString::from),
    };
    if access.token.is_none() && !config.listen.ip().is_loopback() {
        return Ok(super::usage_error(format!(
            "admin_token: missing, and the node listens on {} (not loopback): set admin_token \
             (SLOTBRIDGE_ADMIN_TOKEN) so the admin API and the console are not open to the network",
            config.listen
        )));
    }
    let keys = match Keyring::from_env() {
        Ok(k) => k,
        Err(e) => return Ok(super::usage_error(format!("master key: {e}"))),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        if access.token.is_none() {
            tracing::warn!(
                "no admin_token: the admin API (/api) needs no token; only loopback clients reach it"
            );
        }
        let node = Node::start_with_access(config, keys, access).await?;
        tracing::info!(console = %format!("{}/console", node.url()), "operator console");
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight work");
        node.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
