//! `slotbridge run` child processes for cluster tests: started against the in-process
//! simulators, killed with SIGKILL (never shut down cleanly), paused with SIGSTOP, resumed with
//! SIGCONT, restarted, and their logs read. The test passes the binary
//! (`env!("CARGO_BIN_EXE_slotbridge")`).

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sims::Sims;

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
    /// The `slotbridge` binary.
    pub binary: PathBuf,
    /// `node_id`.
    pub node_id: String,
    /// `database_url`.
    pub database_url: String,
    /// `market_url` (the simulator's `/pms-api/v1`).
    pub market_url: String,
    /// `market_api_key`.
    pub market_api_key: String,
    /// `pms_url`.
    pub pms_url: String,
    /// `user_agent`: the record file tells the nodes apart by it.
    pub user_agent: String,
    /// `poll_interval_ms`.
    pub poll_interval_ms: u64,
    /// `lease_ttl_secs` (`None`: the binary's default).
    pub lease_ttl_secs: Option<u64>,
    /// More `SLOTBRIDGE_*` (or other) variables.
    pub env: Vec<(String, String)>,
    /// Where the node's log goes (one file per start).
    pub log_dir: PathBuf,
}

impl NodeSpec {
    /// `binary run` as `node_id` against `sims` and `database_url`, 500 ms polling, the
    /// binary's lease time-to-live, a User-Agent that names the node, logs in `log_dir`.
    pub fn new(
        binary: impl Into<PathBuf>,
        sims: &Sims,
        node_id: &str,
        database_url: &str,
        log_dir: &Path,
    ) -> NodeSpec {
        NodeSpec {
            binary: binary.into(),
            node_id: node_id.into(),
            database_url: database_url.into(),
            market_url: sims.market_api_url(),
            market_api_key: sims.market_api_key.clone(),
            pms_url: sims.pms_url.clone(),
            user_agent: user_agent(node_id),
            poll_interval_ms: 500,
            lease_ttl_secs: None,
            env: Vec::new(),
            log_dir: log_dir.to_owned(),
        }
    }
}

/// The User-Agent [`NodeSpec::new`] gives node `node_id`.
pub fn user_agent(node_id: &str) -> String {
    format!("slotbridge (cluster-test@slotbridge.example) DEV {node_id}")
}

/// A running `slotbridge run`; killed (SIGKILL) and reaped on drop.
pub struct NodeProcess {
    /// The node id.
    pub node_id: String,
    /// `http://127.0.0.1:PORT` (a new port at each start).
    pub url: String,
    /// Its current log file.
    pub log: PathBuf,
    spec: NodeSpec,
    child: Option<Child>,
}

impl NodeProcess {
    /// Start `slotbridge run` and wait until `/readyz` answers (within `ready_within`).
    pub async fn start(spec: &NodeSpec, ready_within: Duration) -> NodeProcess {
        let mut node = NodeProcess {
            node_id: spec.node_id.clone(),
            url: String::new(),
            log: PathBuf::new(),
            spec: spec.clone(),
            child: None,
        };
        node.spawn(ready_within).await;
        node
    }

    async fn spawn(&mut self, ready_within: Duration) {
        let spec = &self.spec;
        let port = free_port();
        let stamp = jiff::Timestamp::now().as_microsecond();
        let log = spec.log_dir.join(format!("{}-{stamp}.log", spec.node_id));
        let log_file = std::fs::File::create(&log).expect("node log file");
        let mut cmd = Command::new(&spec.binary);
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
            .env("SLOTBRIDGE_MARKET_API_KEY", &spec.market_api_key)
            .env("SLOTBRIDGE_USER_AGENT", &spec.user_agent)
            .env("SLOTBRIDGE_PMS_URL", &spec.pms_url)
            .env(
                "SLOTBRIDGE_POLL_INTERVAL_MS",
                spec.poll_interval_ms.to_string(),
            )
            .env("SLOTBRIDGE_LOG_FORMAT", "text")
            .env("SLOTBRIDGE_MASTER_KEY", crate::MASTER_KEY)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file);
        if let Some(ttl) = spec.lease_ttl_secs {
            cmd.env("SLOTBRIDGE_LEASE_TTL_SECS", ttl.to_string());
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn slotbridge run");
        self.url = format!("http://127.0.0.1:{port}");
        self.log = log;
        self.child = Some(child);
        self.wait_ready(ready_within).await;
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

    /// `kill -STOP`: the process stops where it is (it keeps its sockets and leases but does
    /// nothing, as under a long pause), until [`NodeProcess::resume`].
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP, "SIGSTOP");
    }

    /// `kill -CONT`: a paused process goes on from where it stopped.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT, "SIGCONT");
    }

    fn signal(&mut self, signal: libc::c_int, name: &str) {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: node {} is not running", self.node_id));
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) with the pid of a child this process has not reaped yet (it is still
        // in `self.child`), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "{name} node {}: {}",
            self.node_id,
            std::io::Error::last_os_error()
        );
    }

    /// Kill -9 the process if it runs, and start it again with the same settings (a new port
    /// and log file); waits until it is ready.
    pub async fn restart(&mut self, ready_within: Duration) {
        self.kill9();
        self.spawn(ready_within).await;
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (a paused one is).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The current log file's text.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the node's current log.
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

/// Every `*.log` file in `dir`, oldest name first, each with its last `lines` lines (for
/// failure messages).
pub fn logs(dir: &Path, lines: usize) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|f| f.extension().is_some_and(|x| x == "log"));
    files.sort();
    files
        .iter()
        .map(|f| format!("--- {} ---\n{}", f.display(), log_tail(f, lines)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A child process (e.g. `slotbridge demo`) killed (SIGKILL) and reaped on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
