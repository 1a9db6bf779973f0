//! `slotbridge bench`: measurements of one node in its own process, against both simulators in
//! their own processes, over real HTTP (see docs/performance.md).
//!
//! - `bench scale --practices N`: link N practices, time until all are published, the node's
//!   RSS and CPU, freshness with one desk change per practice per minute, calls per minute.
//!   With `--pms cliniko`, N Cliniko practices polled within each key's 200 requests a minute.
//! - `bench bookings --rate R --seconds S --practices P`: R bookings a second for S seconds over
//!   P practices; every booking's outcome, none lost, none duplicated, latency p50/p99.
//!
//! Each ends with one summary line of `key=value` pairs, for scripts and docs/performance.md.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use slotbridge_testkit::Practice;
use slotbridge_testkit::control::Control;
use slotbridge_testkit::process::{KillOnDrop, NodeProcess, NodeSpec, free_port};

mod bookings;
mod cliniko;
mod scale;

/// `slotbridge bench …`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Many practices on one node: publish time, RSS, CPU, freshness, calls per minute.
    Scale(scale::Args),
    /// Bookings under load: outcomes, none lost or duplicated, latency.
    Bookings(bookings::Args),
}

/// Run the chosen measurement.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.which {
            Which::Scale(a) => scale::run(a).await,
            Which::Bookings(a) => bookings::run(a).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The marketplace consumer the node is (its api key, given to the simulator).
const CONSUMER: &str = "slotbridge";
const MARKET_API_KEY: &str = "bench-api-key";

/// How the fleet under measurement is set up.
#[derive(Debug, Clone)]
struct FleetOptions {
    /// PMS practices the simulator generates (besides its demo practice, which is left out).
    pms_practices: u32,
    /// The simulator's seed.
    seed: u64,
    /// `None`: a SQLite file in the bench's directory.
    database_url: Option<String>,
    /// The node's polling interval of both sides.
    poll: Duration,
    /// Webhooks registered with both sides (otherwise polling only).
    webhooks: bool,
    /// The node's `max_links`.
    max_links: u32,
    /// The PMS simulator's rate limit per API key (requests per second).
    pms_rate_limit: f64,
    /// The Cliniko simulator's API base (`…/v1/`) the node is given, for Cliniko links.
    cliniko_url: Option<String>,
}

/// Both simulators and one node, each in its own process, in a temporary directory; all
/// killed on drop.
struct Fleet {
    dir: tempfile::TempDir,
    _pms: KillOnDrop,
    _market: KillOnDrop,
    node: NodeProcess,
    control: Control,
    http: reqwest::Client,
    pms_url: String,
}

impl Fleet {
    async fn start(opts: &FleetOptions) -> anyhow::Result<Fleet> {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let binary = std::env::current_exe().context("the slotbridge binary")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?;
        let pms_port = free_port();
        let pms = spawn(
            &binary,
            dir.path(),
            "pms-sim",
            &[
                "--listen".into(),
                format!("127.0.0.1:{pms_port}"),
                "--practices".into(),
                opts.pms_practices.to_string(),
                "--seed".into(),
                opts.seed.to_string(),
                "--rate-limit".into(),
                opts.pms_rate_limit.to_string(),
            ],
        )?;
        let market_port = free_port();
        let market = spawn(
            &binary,
            dir.path(),
            "market-sim",
            &[
                "--listen".into(),
                format!("127.0.0.1:{market_port}"),
                "--consumer".into(),
                format!("{CONSUMER}={MARKET_API_KEY}"),
            ],
        )?;
        let pms_url = format!("http://127.0.0.1:{pms_port}");
        let market_url = format!("http://127.0.0.1:{market_port}");
        wait_answering(&http, &format!("{pms_url}/_sim/stats"), dir.path()).await?;
        wait_answering(&http, &format!("{market_url}/_market/stats"), dir.path()).await?;
        let database_url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| slotbridge_testkit::sqlite_url(&dir.path().join("slotbridge.db")));
        let env = vec![
            (
                "SLOTBRIDGE_MAX_LINKS".to_owned(),
                opts.max_links.to_string(),
            ),
            ("SLOTBRIDGE_WEBHOOKS".to_owned(), opts.webhooks.to_string()),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];
        let env = env
            .into_iter()
            .chain(
                opts.cliniko_url
                    .iter()
                    .map(|u| ("SLOTBRIDGE_CLINIKO_URL".to_owned(), u.clone())),
            )
            .collect();
        let spec = NodeSpec {
            binary: binary.clone(),
            node_id: "bench".into(),
            database_url,
            market_url: format!("{market_url}/pms-api/v1"),
            market_api_key: MARKET_API_KEY.into(),
            pms_url: pms_url.clone(),
            user_agent: "slotbridge (bench@slotbridge.example) DEV".into(),
            poll_interval_ms: u64::try_from(opts.poll.as_millis()).unwrap_or(5000),
            lease_ttl_secs: Some(20),
            env,
            log_dir: dir.path().to_owned(),
        };
        let node = NodeProcess::start(&spec, Duration::from_secs(60)).await;
        let control = Control::new(market_url, pms_url.clone());
        Ok(Fleet {
            dir,
            _pms: pms,
            _market: market,
            node,
            control,
            http,
            pms_url,
        })
    }

    /// The PMS simulator's practices (its manifest), the demo practice left out.
    async fn manifest(&self) -> anyhow::Result<Vec<Value>> {
        let m: Value = self
            .http
            .get(format!("{}/_sim/manifest", self.pms_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let all = m["practices"].as_array().cloned().unwrap_or_default();
        Ok(all.into_iter().skip(1).collect())
    }

    /// A marketplace practice for each manifest entry (consent for the node's consumer).
    async fn market_practices(&self, entries: &[Value]) -> anyhow::Result<Vec<Practice>> {
        let made = in_parallel(entries.to_vec(), 32, |e| async move {
            let name = e["name"].as_str().unwrap_or("Practice").to_owned();
            let timezone = e["timezone"]
                .as_str()
                .unwrap_or("Australia/Sydney")
                .to_owned();
            let r: Value = self
                .http
                .post(self.control.market("/practices"))
                .json(&json!({"name": name, "timezone": timezone, "consumer": CONSUMER}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(Practice {
                practice_id: r["practice_id"].as_str().unwrap_or_default().to_owned(),
                practice_key: r["practice_key"].as_str().unwrap_or_default().to_owned(),
                slug: e["slug"].as_str().unwrap_or_default().to_owned(),
                api_key: e["api_key"].as_str().unwrap_or_default().to_owned(),
                timezone,
                name,
            })
        })
        .await;
        made.into_iter().collect()
    }

    /// Link every practice through the node's admin API (`concurrency` at a time).
    async fn link_all(&self, practices: &[Practice]) -> anyhow::Result<()> {
        let results = in_parallel(practices.to_vec(), 16, |p| async move {
            slotbridge_testkit::link_practice(&self.http, &self.node.url, None, &p).await
        })
        .await;
        for r in results {
            r?;
        }
        Ok(())
    }

    /// Wait until the marketplace has all `n` practices configured and published: the seconds
    /// since `started` until all were configured, and until all were published. Fails after
    /// `timeout_s` saying how many were.
    async fn until_published(
        &self,
        n: usize,
        started: Instant,
        timeout_s: u64,
    ) -> anyhow::Result<(f64, f64)> {
        let mut configured_s = None;
        loop {
            let s = self.market_stats().await?;
            let configured = s["practices_configured"].as_u64().unwrap_or(0) as usize;
            let published = s["practices_published"].as_u64().unwrap_or(0) as usize;
            if configured >= n && configured_s.is_none() {
                configured_s = Some(started.elapsed().as_secs_f64());
            }
            if configured >= n && published >= n {
                let published_s = started.elapsed().as_secs_f64();
                return Ok((configured_s.unwrap_or(published_s), published_s));
            }
            if started.elapsed() > Duration::from_secs(timeout_s) {
                bail!(
                    "after {timeout_s} s only {configured} of {n} practices configured and {published} published"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The marketplace simulator's counts: practices, configured, with availability, API calls.
    async fn market_stats(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.control.market("/stats"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The node's CPU seconds (user + system) and RSS in MB, from /proc.
    fn node_usage(&self) -> Usage {
        self.node.pid().map(Usage::of).unwrap_or_default()
    }

    /// The sum of every series of counter `name` on the node's `/metrics`.
    async fn node_counter(&self, name: &str) -> f64 {
        let Ok(r) = self
            .http
            .get(format!("{}/metrics", self.node.url))
            .send()
            .await
        else {
            return 0.0;
        };
        let text = r.text().await.unwrap_or_default();
        sum_series(&text, name)
    }

    fn log_tail(&self) -> String {
        slotbridge_testkit::process::logs(self.dir.path(), 30)
    }
}

/// The sum of every series of metric `name` (with or without labels) in a Prometheus text page.
fn sum_series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let series = key.split('{').next()?;
            (series == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Start `binary sub args…` with its output in `dir/sub.log`.
fn spawn(binary: &Path, dir: &Path, sub: &str, args: &[String]) -> anyhow::Result<KillOnDrop> {
    let log = std::fs::File::create(dir.join(format!("{sub}.log")))?;
    let child = Command::new(binary)
        .arg(sub)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {sub}"))?;
    Ok(KillOnDrop(child))
}

async fn wait_answering(http: &reqwest::Client, url: &str, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "{url} did not answer within 120 s:\n{}",
                slotbridge_testkit::process::logs(dir, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `f` on every item, at most `width` at a time; the results in the items' order.
async fn in_parallel<T, F, Fut, R>(items: Vec<T>, width: usize, f: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    use futures::StreamExt as _;
    futures::stream::iter(items.into_iter().map(f))
        .buffered(width)
        .collect()
        .await
}

/// CPU time and memory of a process.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu_seconds: f64,
    rss_mb: f64,
}

impl Usage {
    /// Read from /proc (zeros where it cannot be read).
    fn of(pid: u32) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // After the command: state is field 0, utime 11, stime 12, in clock ticks (1/100 s).
        let cpu_seconds = (ticks(11) + ticks(12)) / 100.0;
        let rss_mb = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0;
        Usage {
            cpu_seconds,
            rss_mb,
        }
    }
}

/// Sorted samples in milliseconds, with nearest-rank percentiles.
#[derive(Debug, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1000.0);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (nearest rank), 0 when empty.
    fn quantile(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_by(f64::total_cmp);
        let n = self.0.len();
        let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
        self.0[rank - 1]
    }
}

/// Where a bench keeps what it leaves for a look afterwards (logs are in the fleet's temporary
/// directory, removed at the end unless `--keep` moves them here).
fn keep_logs(fleet: &Fleet, to: Option<&PathBuf>) -> anyhow::Result<()> {
    let Some(to) = to else { return Ok(()) };
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(fleet.dir.path())? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "log") {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    eprintln!("logs kept in {}", to.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_their_labels_only() {
        let page = "# HELP x\nslotbridge_pms_request_duration_seconds_count{operation=\"a\"} 3\n\
                    slotbridge_pms_request_duration_seconds_count{operation=\"b\"} 4.5\n\
                    slotbridge_pms_request_duration_seconds_sum 9\n\
                    slotbridge_pms_request_duration_seconds_count 1\n";
        assert_eq!(
            sum_series(page, "slotbridge_pms_request_duration_seconds_count"),
            8.5
        );
        assert_eq!(sum_series(page, "missing"), 0.0);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut s = Samples::default();
        for ms in [5u64, 1, 4, 2, 3] {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.quantile(0.5), 3.0);
        assert_eq!(s.quantile(0.99), 5.0);
        assert_eq!(s.quantile(0.0), 1.0);
        assert_eq!(Samples::default().quantile(0.5), 0.0);
    }
}
