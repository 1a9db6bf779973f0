//! Helpers for tests that run the real `slotbridge` binary as child processes: a node guard
//! that kills its process on drop and shows its log tail on failure, a fresh PostgreSQL database
//! per test, both simulators in the test process, and polling with generous deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The master key every node of a test shares (32 zero bytes; tests only).
pub const MASTER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// The marketplace api key of the `slotbridge` consumer the simulator knows.
pub const MARKET_API_KEY: &str = "cluster-test-api-key";

/// A free loopback port (bound, read, released; the node binds it right after).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// How one `slotbridge run` process is configured (all through `SLOTBRIDGE_*` variables).
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `node_id`.
    pub node_id: String,
    /// `database_url`.
    pub database_url: String,
    /// `market_url` (the simulator's `/pms-api/v1`).
    pub market_url: String,
    /// `pms_url`.
    pub pms_url: String,
    /// `user_agent`: the record file tells the nodes apart by it.
    pub user_agent: String,
    /// `poll_interval_ms`.
    pub poll_interval_ms: u64,
    /// `lease_ttl_secs` (`None`: the binary's default).
    pub lease_ttl_secs: Option<u64>,
    /// Where the node's log goes (one file per start).
    pub log_dir: PathBuf,
}

/// A running `slotbridge run`; killed (SIGKILL) and reaped on drop.
pub struct NodeProcess {
    /// The node id.
    pub node_id: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl NodeProcess {
    /// Start `slotbridge run` and wait until `/readyz` answers (within `ready_within`).
    pub async fn start(spec: &NodeSpec, ready_within: Duration) -> NodeProcess {
        let port = free_port();
        let stamp = jiff::Timestamp::now().as_microsecond();
        let log = spec.log_dir.join(format!("{}-{stamp}.log", spec.node_id));
        let log_file = std::fs::File::create(&log).expect("node log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slotbridge"));
        cmd.arg("run");
        // Only what this test sets: nothing inherited from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SLOTBRIDGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("SLOTBRIDGE_DATABASE_URL", &spec.database_url)
            .env("SLOTBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLOTBRIDGE_NODE_ID", &spec.node_id)
            .env("SLOTBRIDGE_MARKET_URL", &spec.market_url)
            .env("SLOTBRIDGE_MARKET_API_KEY", MARKET_API_KEY)
            .env("SLOTBRIDGE_USER_AGENT", &spec.user_agent)
            .env("SLOTBRIDGE_PMS_URL", &spec.pms_url)
            .env(
                "SLOTBRIDGE_POLL_INTERVAL_MS",
                spec.poll_interval_ms.to_string(),
            )
            .env("SLOTBRIDGE_LOG_FORMAT", "text")
            .env("SLOTBRIDGE_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file);
        if let Some(ttl) = spec.lease_ttl_secs {
            cmd.env("SLOTBRIDGE_LEASE_TTL_SECS", ttl.to_string());
        }
        let child = cmd.spawn().expect("spawn slotbridge run");
        let mut node = NodeProcess {
            node_id: spec.node_id.clone(),
            url: format!("http://127.0.0.1:{port}"),
            log,
            child: Some(child),
        };
        node.wait_ready(ready_within).await;
        node
    }

    async fn wait_ready(&mut self, within: Duration) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "node {} exited before it was ready ({status}); log tail:\n{}",
                    self.node_id,
                    self.log_tail(40)
                );
            }
            let ready = http
                .get(format!("{}/readyz", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < within,
                "node {} not ready within {within:?}; log tail:\n{}",
                self.node_id,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no shutdown hook runs, leases stay held until they expire.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's kill() is SIGKILL on Unix.
            child.kill().expect("SIGKILL the node");
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of a file (empty when unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A PostgreSQL database created for one test and dropped (with its connections) afterwards.
pub struct PgDatabase {
    /// The database's URL.
    pub url: String,
    server: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database on `SLOTBRIDGE_TEST_PG_URL` (default
    /// `postgres://postgres@127.0.0.1:5432/test`), or `None`, visibly skipped, when no server
    /// answers and `CI` is unset. Under CI a missing server fails the test.
    pub fn fresh(test: &str) -> Option<PgDatabase> {
        let server = std::env::var("SLOTBRIDGE_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!(
            "slotbridge_cluster_{}_{}",
            std::process::id(),
            jiff::Timestamp::now().as_microsecond()
        );
        let created = Command::new("psql")
            .arg(&server)
            .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
            .output();
        match created {
            Ok(out) if out.status.success() => {
                let (root, _) = server.rsplit_once('/').expect("database URL has a path");
                Some(PgDatabase {
                    url: format!("{root}/{name}"),
                    server,
                    name,
                })
            }
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but PostgreSQL at {server} cannot be used: {why}"
                );
                eprintln!("SKIPPED {test} on PostgreSQL ({server} unavailable, CI unset): {why}");
                None
            }
        }
    }

    /// Run one query with psql and return its rows, `|`-separated.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-q", "-At", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.server)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Poll `f` every 200 ms until it gives a value; fail naming `what` after `limit`, with
/// `context()` (e.g. a node's log tail).
pub async fn eventually<T, F, Fut>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET a JSON document (panics with the URL on failure).
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let r = http
        .get(url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "GET {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

/// A booking id as the control API returns it (a number), as a string.
pub fn id_string(v: &Value) -> String {
    v.as_i64()
        .map(|n| n.to_string())
        .or_else(|| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// The calls the marketplace simulator recorded so far (`--record`), each as
/// `(practice-id header, user-agent header, method, path)`.
pub fn recorded_calls(record: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    text.lines()
        // The last line may be half written.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            let h = &v["headers"];
            let s = |x: &Value| x.as_str().unwrap_or_default().to_owned();
            (
                s(&h["practice-id"]),
                s(&h["user-agent"]),
                s(&v["method"]),
                s(&v["path"]),
            )
        })
        .collect()
}
