//! `slotbridge demo`: both simulators and one slotbridge node in one process, SQLite in a
//! temporary directory, the demo practice "Harbour Dental" linked through the real HTTP APIs.
//! Ready (first availability published) within seconds; then it runs until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use slotbridge_market_sim::MarketSim;
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, PmsSim};
use slotbridge_service::node::{Node, NodeConfig};
use slotbridge_store::Keyring;
use tokio::net::TcpListener;

/// The marketplace api key the demo's integration uses.
const DEMO_MARKET_KEY: &str = "demo-market-api-key";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the marketplace simulator listens.
    #[arg(long, default_value = "127.0.0.1:7302")]
    market_listen: SocketAddr,
    /// Where the PMS simulator listens.
    #[arg(long, default_value = "127.0.0.1:7301")]
    pms_listen: SocketAddr,
    /// Where slotbridge (admin API, webhooks, metrics) listens.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Keep the database here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Record every API call the marketplace simulator receives, one JSON line each.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Write `{"market", "pms", "console", "practice_id", "site_slug"}` here once the first
    /// availability is published.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(false);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what}; choose another with --{what}-listen")
    })
}

async fn demo(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let pms_sim = PmsSim::builder().build();
    let pms = pms_sim.serve(bind(args.pms_listen, "pms").await?).await?;

    let mut builder = MarketSim::builder().consumer("slotbridge", DEMO_MARKET_KEY);
    if let Some(path) = &args.record {
        builder = builder.record(path.clone());
    }
    let market_sim = builder
        .build()
        .context("starting the marketplace simulator")?;
    let (practice_id, practice_key) = market_sim
        .create_practice("Harbour Dental", "Australia/Sydney", "slotbridge")
        .map_err(|e| anyhow::anyhow!("creating the demo practice: {e:?}"))?;
    let market = market_sim
        .serve(bind(args.market_listen, "market").await?)
        .await?;

    let (data_dir, _temp) = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let keys = match Keyring::from_env() {
        Ok(k) => k,
        Err(_) => Keyring::parse(Keyring::generate_key().expose_secret())
            .map_err(|e| anyhow::anyhow!("demo master key: {e}"))?,
    };
    let node = Node::start(
        NodeConfig {
            database_url: format!("sqlite://{}/slotbridge.db?mode=rwc", data_dir.display()),
            market_url: market.api_url(),
            market_api_key: SecretString::from(DEMO_MARKET_KEY),
            user_agent: "slotbridge (integrations@slotbridge.example) DEV".into(),
            pms_url: pms.base_url().parse()?,
            listen: args.listen,
            node_id: "demo".into(),
            poll_interval: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(10),
            pms_webhook_secret: None,
            public_url: None,
        },
        keys,
    )
    .await?;

    // Link the demo practice through the admin API, as an operator would.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/links", node.url()))
        .json(&json!({
            "site_slug": DEMO_SLUG,
            "pms_api_key": DEMO_API_KEY,
            "practice_id": practice_id,
            "practice_key": practice_key,
        }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("linking the demo practice failed: {}", r.text().await?);
    }
    // The practice admin's Step 2 on the marketplace: a practitioner per appointment book, each
    // type linked to its PMS type.
    let practice_url = format!("{}/_market/practices/{practice_id}", market.base_url());
    wait_for("the configuration", &http, &practice_url, |v| {
        v["pms_resources"].as_array().is_some_and(|a| !a.is_empty())
            && v["pms_appointment_types"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    })
    .await?;
    http.post(format!("{practice_url}/auto-link"))
        .send()
        .await?;
    let availability_url = format!("{practice_url}/availability");
    wait_for("the first availability", &http, &availability_url, |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await?;

    let console = node.url();
    if let Some(path) = &args.ready_file {
        let ready = json!({
            "market": market.base_url(),
            "pms": pms.base_url(),
            "console": console,
            "practice_id": practice_id,
            "site_slug": DEMO_SLUG,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&ready)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "slotbridge demo ready in {:.1} s\n\n\
         Marketplace practice admin  {m}/admin/practices/{practice_id}\n\
         Patient booking page        {m}/book/{practice_id}\n\
         Marketplace control API     {m}/_market/practices/{practice_id}\n\
         PMS desk (Harbour Dental)   {p}/_desk/sites/{DEMO_SLUG}/appointments?date=YYYY-MM-DD\n\
         slotbridge admin API        {console}/api/links   (metrics: {console}/metrics)\n\n\
         Press Ctrl-C to stop.",
        started.elapsed().as_secs_f64(),
        m = market.base_url(),
        p = pms.base_url(),
    );
    tokio::signal::ctrl_c().await?;
    node.shutdown().await;
    Ok(())
}

async fn wait_for(
    what: &str,
    http: &reqwest::Client,
    url: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && done(&v)
        {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not reach the marketplace within 30 s; see the log above");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
