//! `slotbridge run` child processes for cluster tests: started against the in-process
//! simulators, killed with SIGKILL (never shut down cleanly), paused with SIGSTOP, resumed with
//! SIGCONT, restarted, and their logs read. The test passes the binary
//! (`env!("CARGO_BIN_EXE_slotbridge")`).
//!
//! [`Cluster`] is the set-up of such scenarios: the simulators with clean practices, the
//! marketplace's record file, node specs, patients with details of their own, bookings (also
//! of a slot already taken, as a marketplace with stale availability takes them), and the
//! checks afterwards (exactly once in the diary, one patient file each, leases held by the
//! nodes that work them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;
use slotbridge_store::{Lease, LinkId, Store};

use crate::control::{Call, booking_body, practitioner_of, recorded_calls};
use crate::poll::eventually_or;
use crate::sims::{Practice, Sims};

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
        let http = crate::control::client_builder().build().expect("client");
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

impl NodeProcess {
    /// The settings it was last started with.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// SIGSTOP for later, e.g. from [`crate::db::TcpProxy::on_request`] at the moment the node
    /// sends a given request. Call it while this process runs (it is not reaped until this
    /// `NodeProcess` kills it or sees it exit, so its pid is not reused before).
    pub fn pause_action(&self) -> impl FnOnce() + Send + 'static {
        let pid = self
            .pid()
            .and_then(|p| libc::pid_t::try_from(p).ok())
            .unwrap_or_else(|| panic!("node {} is not running", self.node_id));
        let node = self.node_id.clone();
        move || {
            // SAFETY: kill(2) on the pid of this test's child, not reaped yet (see above).
            let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
            assert_eq!(
                rc,
                0,
                "SIGSTOP node {node}: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Kill -9 the process if it runs, and start it with `spec` instead (e.g. the same node
    /// without its crash hook); waits until it is ready.
    pub async fn restart_with(&mut self, spec: NodeSpec, ready_within: Duration) {
        self.kill9();
        self.node_id = spec.node_id.clone();
        self.spec = spec;
        self.spawn(ready_within).await;
    }

    /// Wait up to `within` for the process to end by itself (a crash hook aborts it): its exit
    /// status, reaped; `None` when it still runs then (or was not running).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.as_mut()?.try_wait() {
                self.child = None;
                return Some(status);
            }
            if started.elapsed() >= within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET `path` of the node (its admin API needs no token on loopback): the JSON, or `None`
    /// when the node does not answer 2xx JSON within 5 s (paused, stopped, …).
    pub async fn get_json(&self, http: &reqwest::Client, path: &str) -> Option<Value> {
        let r = http
            .get(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// The links this node works now, by its admin API (`/api/practices`: `running_here`);
    /// `None` when it does not answer.
    pub async fn running_links(&self, http: &reqwest::Client) -> Option<BTreeSet<String>> {
        let mut running = BTreeSet::new();
        for page in 1.. {
            let practices = self
                .get_json(http, &format!("/api/practices?per_page=500&page={page}"))
                .await?;
            let items = practices["items"].as_array()?;
            running.extend(
                items
                    .iter()
                    .filter(|p| p["running_here"] == true)
                    .filter_map(|p| p["link"]["id"].as_str().map(str::to_owned)),
            );
            if items.len() < 500 {
                break;
            }
        }
        Some(running)
    }

    /// The value of the unlabelled metric `name` on its `/metrics`; `None` when the node does
    /// not answer or has no such line.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let r = http
            .get(format!("{}/metrics", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        unlabelled_metric(&r.text().await.ok()?, name)
    }
}

/// The value of the unlabelled metric `name` in a Prometheus text page.
pub fn unlabelled_metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok())?
    })
}

/// A store on a nodes' database, opened by the test (with the nodes' master key).
pub async fn open_store(database_url: &str) -> Store {
    Store::open(database_url, crate::keyring())
        .await
        .unwrap_or_else(|e| panic!("opening the store at {database_url}: {e}"))
}

/// A patient with details nobody else in the PMS has: each of a scenario's patients gets a last
/// name of its own (so its patient files can be counted) and a date of birth, phone and email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPatient {
    /// First name.
    pub first: String,
    /// Last name (the scenario's tag and the patient's number in letters).
    pub last: String,
    /// Date of birth.
    pub dob: jiff::civil::Date,
    /// Mobile phone.
    pub phone: String,
    /// Email.
    pub email: String,
}

impl TestPatient {
    /// Patient `n` of the scenario `tag` (letters only, e.g. `Fence`).
    pub fn numbered(tag: &str, n: usize) -> TestPatient {
        // The number in letters: names with digits are not names.
        let mut letters = String::new();
        let mut k = n;
        loop {
            letters.insert(0, char::from(b'a' + u8::try_from(k % 26).unwrap_or(0)));
            k /= 26;
            if k == 0 {
                break;
            }
        }
        let days = i64::try_from(n * 37 + tag.len() * 1013).unwrap_or(0);
        TestPatient {
            first: format!("Pat{letters}"),
            last: format!("{tag}{letters}"),
            dob: jiff::civil::date(1950, 1, 1) + jiff::Span::new().days(days),
            phone: format!("04{:08}", 20_000_000 + n * 7919 + tag.len()),
            email: format!("{}.{letters}@example.com", tag.to_lowercase()),
        }
    }

    /// As the marketplace's booking form takes it.
    pub fn form(&self) -> Value {
        crate::control::patient(
            &self.first,
            &self.last,
            &self.dob.to_string(),
            &self.phone,
            &self.email,
        )
    }
}

/// A booking a patient made on the marketplace during a scenario.
#[derive(Debug, Clone)]
pub struct Booked {
    /// The marketplace's booking id.
    pub id: i64,
    /// The slot booked (as the marketplace offered it).
    pub slot: Value,
    /// The practice-local day of the slot (`YYYY-MM-DD`).
    pub day: String,
    /// Who booked.
    pub patient: TestPatient,
}

/// What the bookings of a scenario came to (see [`Cluster::assert_exactly_once`]).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Confirmed, each in the diary once.
    pub confirmed: usize,
    /// Of those, confirmed by the marketplace's 20 s rule before the integration's answer.
    pub auto_confirmed: usize,
    /// Rejected, none in the diary.
    pub rejected: usize,
    /// Why, with how many each.
    pub reasons: BTreeMap<String, usize>,
}

/// Both simulators served by the test process, `count` correctly set-up practices (Harbour
/// Dental first) each with a marketplace practice, the marketplace's `--record` file, and a
/// directory for the logs of the `slotbridge run` processes of a scenario. Derefs to
/// [`Sims`] (and so to the [`crate::Control`] helpers).
pub struct Cluster {
    sims: Sims,
    /// The marketplace's record file (every API call, with the caller's User-Agent).
    pub record: PathBuf,
    /// The practices, Harbour Dental first.
    pub practices: Vec<Practice>,
    binary: PathBuf,
    stale_ids: AtomicI64,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Cluster {
    type Target = Sims;

    fn deref(&self) -> &Sims {
        &self.sims
    }
}

impl Cluster {
    /// The simulators with `count` correctly set-up practices; `binary` is the `slotbridge`
    /// binary the nodes run (`env!("CARGO_BIN_EXE_slotbridge")`).
    pub async fn start(binary: impl Into<PathBuf>, count: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("market-calls.jsonl");
        let pms_sim = slotbridge_pms_sim::PmsSim::builder()
            // About one generated practice in five is set up correctly.
            .practices(u32::try_from(count * 9 + 9).unwrap_or(90))
            .build();
        let manifest = pms_sim.manifest();
        let sims = Sims::builder()
            .pms(pms_sim)
            .record(&record)
            .start()
            .await
            .expect("the simulators start");
        let practices: Vec<Practice> = manifest
            .practices
            .iter()
            .filter(|p| p.misconfigurations.is_empty())
            .take(count)
            .map(|entry| sims.practice_for(entry).expect("marketplace practice"))
            .collect();
        assert_eq!(practices.len(), count, "not enough clean practices");
        Cluster {
            sims,
            record,
            practices,
            binary: binary.into(),
            stale_ids: AtomicI64::new(900_000),
            dir,
        }
    }

    /// The directory of the nodes' logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `slotbridge run` as `node_id` on `database_url`, polling every `poll`, leases of
    /// `lease_ttl_secs`, against the simulators (see [`NodeSpec::new`]).
    pub fn spec(
        &self,
        node_id: &str,
        database_url: &str,
        poll: Duration,
        lease_ttl_secs: u64,
    ) -> NodeSpec {
        NodeSpec {
            poll_interval_ms: u64::try_from(poll.as_millis()).unwrap_or(500),
            lease_ttl_secs: Some(lease_ttl_secs),
            ..NodeSpec::new(
                &self.binary,
                &self.sims,
                node_id,
                database_url,
                self.dir.path(),
            )
        }
    }

    /// Every node log of the scenario, each with its last lines (for failure messages).
    pub fn logs(&self) -> String {
        logs(self.dir.path(), 40)
    }

    /// Link `p` through `node`'s admin API; the link id.
    pub async fn link(&self, node: &NodeProcess, p: &Practice) -> String {
        crate::link_practice(&self.http, &node.url, None, p)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Wait until `p`'s configuration is on the marketplace, then do the admin's Step 2.
    pub async fn published(&self, p: &Practice) {
        self.configured_then_auto_linked(&p.practice_id, Duration::from_secs(60), &|| self.logs())
            .await;
    }

    /// At least `wanted` bookable slots of `p` from tomorrow on, no two of them overlapping for
    /// one PMS practitioner (so none can be refused for another's sake).
    pub async fn distinct_slots(&self, p: &Practice, wanted: usize) -> Vec<Value> {
        eventually_or(
            &format!("{wanted} bookable slots at {}", p.slug),
            Duration::from_secs(60),
            || self.logs(),
            || async {
                let today = p.today();
                let mut taken: HashMap<String, Vec<(Timestamp, Timestamp)>> = HashMap::new();
                let mut picked = Vec::new();
                for n in 1..=30 {
                    let day = today + jiff::Span::new().days(n);
                    for s in self.slots(&p.practice_id, day).await {
                        let (start, end) = interval(&s);
                        let mine = taken.entry(practitioner_of(&s)).or_default();
                        if mine.iter().all(|(a, b)| end <= *a || start >= *b) {
                            mine.push((start, end));
                            picked.push(s);
                        }
                    }
                    if picked.len() >= wanted {
                        return Some(picked);
                    }
                }
                None
            },
        )
        .await
    }

    /// `patient` books `slot` at `p` on the marketplace; `Err` with the marketplace's answer
    /// when the slot was not bookable.
    pub async fn book(
        &self,
        p: &Practice,
        slot: &Value,
        patient: &TestPatient,
    ) -> Result<Booked, String> {
        let id = self
            .try_book(&p.practice_id, &booking_body(slot, patient.form()))
            .await?;
        Ok(Booked {
            id,
            slot: slot.clone(),
            day: day_of(slot),
            patient: patient.clone(),
        })
    }

    /// `patient` books the slot of `of` as well, taken by a marketplace whose availability is
    /// stale: the simulator would refuse it through its API while `of` holds the slot, so it
    /// goes straight into its model (the integration sees it at its next look at the requests;
    /// the marketplace sends no webhook for it).
    pub fn stale_booking(&self, of: &Booked, patient: &TestPatient) -> Booked {
        let id = self.stale_ids.fetch_add(1, AtomicOrdering::Relaxed);
        self.market.sim().with_market(|m| {
            let mut b = m
                .bookings
                .get(&of.id)
                .cloned()
                .unwrap_or_else(|| panic!("booking {} on the marketplace", of.id));
            b.id = id;
            b.booked_at = Timestamp::now();
            b.status = slotbridge_market_sim::state::PatientStatus::Requested;
            b.insert_pending = true;
            b.auto_confirmed = false;
            b.pms_appointment_ids.clear();
            b.pms_patient_id = None;
            b.reject_reason = None;
            b.late_reject = false;
            b.patient.firstname = Some(patient.first.clone());
            b.patient.lastname = Some(patient.last.clone());
            b.patient.dob = Some(patient.dob);
            b.patient.phone = Some(patient.phone.clone());
            b.patient.email = Some(patient.email.clone());
            m.bookings.insert(id, b);
        });
        Booked {
            id,
            slot: of.slot.clone(),
            day: of.day.clone(),
            patient: patient.clone(),
        }
    }

    /// Every booking of `p` as the marketplace holds it, by id.
    pub async fn booking_states(&self, p: &Practice) -> HashMap<i64, Value> {
        self.bookings(&p.practice_id)
            .await
            .into_iter()
            .filter_map(|b| Some((b["booking_id"].as_i64()?, b)))
            .collect()
    }

    /// Wait up to `within` until the integration answered every one of `made` (Confirmed or
    /// Rejected, nothing pending); panics with the unanswered ones and the logs.
    pub async fn all_answered(&self, p: &Practice, made: &[Booked], within: Duration) {
        let pending = std::sync::Mutex::new(Vec::new());
        eventually_or(
            &format!("every one of {} bookings answered", made.len()),
            within,
            || {
                format!(
                    "unanswered: {:?}\n{}",
                    pending.lock().map(|p| p.clone()).unwrap_or_default(),
                    self.logs()
                )
            },
            || async {
                let states = self.booking_states(p).await;
                let left: Vec<String> = made
                    .iter()
                    .filter(|m| !states.get(&m.id).is_some_and(answered))
                    .map(|m| {
                        format!(
                            "{} {}",
                            m.id,
                            states
                                .get(&m.id)
                                .map(|b| b["status"].clone())
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                let done = left.is_empty();
                if let Ok(mut p) = pending.lock() {
                    *p = left;
                }
                done.then_some(())
            },
        )
        .await;
    }

    /// The diary entries of `p` on `days` that carry an external reference, by reference.
    pub async fn diary_refs(
        &self,
        p: &Practice,
        days: &BTreeSet<String>,
    ) -> HashMap<String, Vec<Value>> {
        let mut refs: HashMap<String, Vec<Value>> = HashMap::new();
        for day in days {
            for a in self.diary(&p.slug, day).await {
                if let Some(r) = a["external_ref"].as_str().filter(|r| !r.is_empty()) {
                    refs.entry(r.to_owned()).or_default().push(a.clone());
                }
            }
        }
        refs
    }

    /// Every one of `made` ends Confirmed or Rejected (never rejected after the auto-confirm);
    /// each Confirmed one is in the diary exactly once, as the appointment and patient the
    /// marketplace was given; no Rejected one is in it; the diary of those days holds no
    /// marketplace appointment (`HE-…`) but the Confirmed ones; no two Confirmed bookings share
    /// a slot. Panics naming what is wrong, with `context()`.
    pub async fn assert_exactly_once(
        &self,
        p: &Practice,
        made: &[Booked],
        context: &dyn Fn() -> String,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let states = self.booking_states(p).await;
        let days: BTreeSet<String> = made.iter().map(|m| m.day.clone()).collect();
        let refs = self.diary_refs(p, &days).await;
        let mut confirmed_refs = BTreeSet::new();
        let mut slots_taken: HashMap<(String, String), i64> = HashMap::new();
        for m in made {
            let b = states
                .get(&m.id)
                .unwrap_or_else(|| panic!("booking {} unknown to the marketplace", m.id));
            assert!(
                answered(b),
                "booking {} not answered: {b}\n{}",
                m.id,
                context()
            );
            let reference = format!("HE-{}", m.id);
            let in_diary = refs.get(&reference);
            if b["status"] == "Confirmed" {
                assert_eq!(
                    b["late_reject"],
                    false,
                    "booking {} rejected after the auto-confirm: {b}\n{}",
                    m.id,
                    context()
                );
                let entries = in_diary.unwrap_or_else(|| {
                    panic!(
                        "Confirmed booking {} is not in the diary of {}: {b}\n{}",
                        m.id,
                        p.slug,
                        context()
                    )
                });
                assert_eq!(
                    entries.len(),
                    1,
                    "Confirmed booking {} is in the diary {} times: {entries:?}\n{}",
                    m.id,
                    entries.len(),
                    context()
                );
                let appointment = id_text(&entries[0]["id"]);
                assert!(
                    b["pms_appointment_ids"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().any(|x| id_text(x) == appointment)),
                    "booking {} was confirmed with {} but the diary holds {appointment}",
                    m.id,
                    b["pms_appointment_ids"]
                );
                assert_eq!(
                    id_text(&entries[0]["patient"]),
                    id_text(&b["pms_patient_id"]),
                    "booking {}: the diary's patient is not the one the marketplace was given",
                    m.id
                );
                let slot = (
                    m.slot["pms_resource_id"].to_string(),
                    m.slot["start"].to_string(),
                );
                if let Some(other) = slots_taken.insert(slot, m.id) {
                    panic!(
                        "bookings {other} and {} of the same slot were both confirmed\n{}",
                        m.id,
                        context()
                    );
                }
                confirmed_refs.insert(reference);
                outcome.confirmed += 1;
                if b["auto_confirmed"] == true {
                    outcome.auto_confirmed += 1;
                }
            } else {
                assert!(
                    in_diary.is_none(),
                    "Rejected booking {} is in the diary of {}: {b} {in_diary:?}\n{}",
                    m.id,
                    p.slug,
                    context()
                );
                let reason = b["reject_reason"].as_str().unwrap_or_default().to_owned();
                assert!(
                    !reason.is_empty(),
                    "booking {} rejected without a reason: {b}",
                    m.id
                );
                outcome.rejected += 1;
                *outcome.reasons.entry(reason).or_default() += 1;
            }
        }
        let strays: Vec<&String> = refs
            .keys()
            .filter(|r| r.starts_with("HE-") && !confirmed_refs.contains(*r))
            .collect();
        assert!(
            strays.is_empty(),
            "the diary of {} holds marketplace appointments of no Confirmed booking: {strays:?}\n{}",
            p.slug,
            context()
        );
        outcome
    }

    /// The patient files of `p`'s PMS with `patient`'s last name and date of birth (asked
    /// through the PMS API with the site's key, as the integration would).
    pub async fn patient_files(&self, p: &Practice, patient: &TestPatient) -> Vec<Value> {
        let url = format!("{}/api/v1/sites/{}/patients", self.pms_url, p.slug);
        let query = [
            ("last_name", patient.last.clone()),
            ("date_of_birth", patient.dob.to_string()),
            ("limit", "100".to_owned()),
        ];
        for _ in 0..50 {
            let r = self
                .http
                .get(&url)
                .header("x-api-key", &p.api_key)
                .query(&query)
                .send()
                .await
                .expect("PMS patient search");
            let status = r.status();
            if status == 429 {
                // The PMS's per-site rate limit: the nodes share it.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let v: Value = r.json().await.expect("patient search JSON");
            assert!(
                status.is_success(),
                "patient search at {}: {status} {v}",
                p.slug
            );
            assert!(v["next_cursor"].is_null(), "more than 100 patients: {v}");
            return v["items"].as_array().cloned().unwrap_or_default();
        }
        panic!(
            "the PMS kept answering 429 to the patient search at {}",
            p.slug
        );
    }

    /// No patient of `made` has more than one patient file, and every patient with a
    /// Confirmed booking has exactly one: the one the marketplace was given.
    pub async fn assert_one_patient_file_each(&self, p: &Practice, made: &[Booked]) {
        let states = self.booking_states(p).await;
        let mut patients: Vec<&TestPatient> = made.iter().map(|m| &m.patient).collect();
        patients.sort_by(|a, b| a.last.cmp(&b.last));
        patients.dedup();
        for patient in patients {
            let files = self.patient_files(p, patient).await;
            assert!(
                files.len() <= 1,
                "patient {} {} has {} files: {files:?}",
                patient.first,
                patient.last,
                files.len()
            );
            for m in made.iter().filter(|m| m.patient == *patient) {
                let b = &states[&m.id];
                if b["status"] == "Confirmed" {
                    assert_eq!(
                        files.len(),
                        1,
                        "patient {} of confirmed booking {} has no file",
                        patient.last,
                        m.id
                    );
                    assert_eq!(
                        id_text(&files[0]["id"]),
                        id_text(&b["pms_patient_id"]),
                        "booking {} was confirmed with another patient than the file of {}",
                        m.id,
                        patient.last
                    );
                }
            }
        }
    }

    /// The marketplace calls recorded from the `index`-th on (see [`recorded_calls`]) that
    /// `node_id` made (its User-Agent, see [`user_agent`]).
    pub fn calls_by(&self, node_id: &str, index: usize) -> Vec<Call> {
        let agent = user_agent(node_id);
        recorded_calls(&self.record)
            .into_iter()
            .skip(index)
            .filter(|c| c.user_agent == agent)
            .collect()
    }

    /// How many marketplace calls are recorded so far.
    pub fn calls_so_far(&self) -> usize {
        recorded_calls(&self.record).len()
    }
}

/// Whether the lease table and the nodes agree on `links`: each link's unexpired lease is held
/// by one of `nodes` whose admin API says it works the link, and no node says it works a link
/// whose lease it does not hold (a node that does not answer is taken to work nothing).
///
/// # Errors
/// What disagrees.
pub async fn leases_match_workers(
    http: &reqwest::Client,
    store: &Store,
    nodes: &[&NodeProcess],
    links: &[LinkId],
) -> Result<BTreeMap<LinkId, Lease>, String> {
    let mut running: HashMap<String, BTreeSet<String>> = HashMap::new();
    for n in nodes {
        running.insert(
            n.node_id.clone(),
            n.running_links(http).await.unwrap_or_default(),
        );
    }
    let mut holders = BTreeMap::new();
    let mut wrong = Vec::new();
    for link in links {
        let id = link.to_string();
        let holder = store
            .lease_holder(*link)
            .await
            .map_err(|e| format!("reading the lease of {link}: {e}"))?;
        let workers: Vec<&String> = running
            .iter()
            .filter(|(_, links)| links.contains(&id))
            .map(|(node, _)| node)
            .collect();
        match holder {
            None => wrong.push(format!("{link}: no lease held (worked by {workers:?})")),
            Some(lease) => {
                if workers != [&lease.node_id] {
                    wrong.push(format!(
                        "{link}: lease held by {} at epoch {}, worked by {workers:?}",
                        lease.node_id, lease.epoch
                    ));
                }
                holders.insert(*link, lease);
            }
        }
    }
    if wrong.is_empty() {
        Ok(holders)
    } else {
        Err(wrong.join("; "))
    }
}

/// Whether the marketplace's view of a booking says the integration answered it.
pub fn answered(b: &Value) -> bool {
    (b["status"] == "Confirmed" || b["status"] == "Rejected") && b["insert_pending"] == false
}

/// An id given as a string or a number, as text.
fn id_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn interval(slot: &Value) -> (Timestamp, Timestamp) {
    let t = |k: &str| -> Timestamp {
        slot[k]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("slot {k}: {slot}"))
    };
    (t("start"), t("end"))
}

/// The practice-local day of a slot (`YYYY-MM-DD`, the start's date as the simulator prints it).
pub fn day_of(slot: &Value) -> String {
    slot["start"].as_str().unwrap_or_default()[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_patients_have_names_of_letters_and_details_of_their_own() {
        let a = TestPatient::numbered("Fence", 0);
        let b = TestPatient::numbered("Fence", 27);
        assert_eq!((a.first.as_str(), a.last.as_str()), ("Pata", "Fencea"));
        assert_eq!(b.last, "Fencebb");
        assert!(b.last.chars().all(char::is_alphabetic));
        assert_ne!(a.dob, b.dob);
        assert_ne!(a.phone, b.phone);
        assert_eq!(a.phone.len(), 10);
        assert_eq!(a.form()["lastname"], "Fencea");
        assert_eq!(TestPatient::numbered("Fence", 27), b);
    }
}
