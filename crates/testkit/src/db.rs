//! The database of one test: SQLite in a temporary directory, or a fresh PostgreSQL database.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the PostgreSQL tests use unless `SLOTBRIDGE_TEST_PG_URL` names another.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where a test's database lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database created for the test on `SLOTBRIDGE_TEST_PG_URL`, dropped afterwards.
    Postgres,
}

/// `sqlite://PATH?mode=rwc`: a SQLite database file, created when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A test's database; a PostgreSQL one is dropped (with its connections) with it.
pub struct TestDb {
    url: String,
    kind: Db,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    /// `slotbridge.db` in a new temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        TestDb {
            url: sqlite_url(&dir.path().join("slotbridge.db")),
            kind: Db::Sqlite,
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// A SQLite file at `path` (its directory outlives the database; nothing is removed).
    pub fn sqlite_at(path: &Path) -> TestDb {
        TestDb {
            url: sqlite_url(path),
            kind: Db::Sqlite,
            _dir: None,
            _pg: None,
        }
    }

    /// A fresh database of `kind`; `None` for PostgreSQL when no server answers and `CI` is
    /// unset (said on stderr). Under CI a missing server fails the test.
    pub fn fresh(kind: Db) -> Option<TestDb> {
        match kind {
            Db::Sqlite => Some(TestDb::sqlite()),
            Db::Postgres => {
                let pg = PgDatabase::fresh()?;
                Some(TestDb {
                    url: pg.url.clone(),
                    kind,
                    _dir: None,
                    _pg: Some(pg),
                })
            }
        }
    }

    /// The database URL a node or a store opens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend.
    pub fn kind(&self) -> Db {
        self.kind
    }

    /// For failure messages: on PostgreSQL, the database's sessions that are in a transaction
    /// (state, since when, their last query) and the locks they hold on `link_leases`; empty
    /// on SQLite.
    pub fn activity(&self) -> String {
        match self.kind {
            Db::Sqlite => String::new(),
            Db::Postgres => pg_activity(&self.url),
        }
    }
}

/// See [`TestDb::activity`].
pub fn pg_activity(url: &str) -> String {
    let sql = "SELECT a.pid, a.application_name, a.state, now() - a.xact_start AS in_xact, \
               left(a.query, 200), \
               (SELECT string_agg(l.mode, ',') FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                WHERE l.pid = a.pid AND c.relname = 'link_leases') AS lease_locks \
               FROM pg_stat_activity a WHERE a.datname = current_database() \
               AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL";
    match Command::new("psql")
        .arg(url)
        .args(["-q", "-At", "-c", sql])
        .output()
    {
        Ok(out) => format!(
            "sessions in a transaction:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("psql: {e}"),
    }
}

/// A PostgreSQL database created for one test and dropped (with its connections) afterwards.
pub struct PgDatabase {
    /// The database's URL.
    pub url: String,
    server: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database on `SLOTBRIDGE_TEST_PG_URL` (default [`DEFAULT_PG_URL`]), or `None`,
    /// visibly skipped, when no server answers and `CI` is unset. Under CI a missing server
    /// fails the test. Created and dropped with `psql`.
    pub fn fresh() -> Option<PgDatabase> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let server =
            std::env::var("SLOTBRIDGE_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let name = format!(
            "slotbridge_test_{}_{}_{}",
            std::process::id(),
            jiff::Timestamp::now().as_microsecond(),
            COUNT.fetch_add(1, Ordering::Relaxed)
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
                // libtest names the test's thread after the test.
                let test = std::thread::current().name().unwrap_or("test").to_owned();
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

impl PgDatabase {
    /// The server's address (host and port of the database's URL; 5432 when it names none).
    pub fn server_addr(&self) -> std::net::SocketAddr {
        PgDatabase::server_addr_of(&self.url)
    }

    /// The database's URL, but through `addr` (a [`TcpProxy`] in front of the server).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        PgDatabase::url_through(&self.url, addr)
    }

    /// The server of the PostgreSQL URL `url` (host and port; 5432 when it names none).
    pub fn server_addr_of(url: &str) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs as _;
        let url = reqwest::Url::parse(url).expect("the database URL parses");
        let host = url.host_str().unwrap_or("127.0.0.1");
        (host, url.port().unwrap_or(5432))
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("the database server {host} resolves"))
    }

    /// The PostgreSQL URL `url`, but through `addr` (a [`TcpProxy`] in front of its server).
    pub fn url_through(url: &str, addr: std::net::SocketAddr) -> String {
        let mut url = reqwest::Url::parse(url).expect("the database URL parses");
        url.set_host(Some(&addr.ip().to_string()))
            .expect("a host for the database URL");
        url.set_port(Some(addr.port()))
            .expect("a port for the database URL");
        url.to_string()
    }
}

/// A TCP proxy of the test process between clients (the nodes) and a server (PostgreSQL, or
/// the PMS simulator): it forwards every connection until [`TcpProxy::cut`], which drops the
/// open connections and refuses new ones (accepted and closed at once, before any byte) until
/// [`TcpProxy::restore`]. It also notes the HTTP/1 request lines clients send through it, with
/// when they went through ([`TcpProxy::requests`]), so a test can tell what a node asked a
/// server after a given instant, and can act at the moment a given request passes
/// ([`TcpProxy::on_request`]: e.g. pause the node that sent it).
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    shared: std::sync::Arc<ProxyShared>,
    accept: tokio::task::JoinHandle<()>,
}

/// An HTTP request line a client sent through a [`TcpProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// When the proxy read it.
    pub at: std::time::Instant,
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target, e.g. `/api/v1/sites/harbour/appointments`.
    pub path: String,
}

impl SeenRequest {
    /// `"METHOD PATH"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Debug, Clone, Copy)]
struct ProxyState {
    up: bool,
    /// Nothing moves: bytes wait in the proxy (and new connections wait to be connected)
    /// until it is lifted, as over a network that lost its route for a while.
    stalled: bool,
    /// Bumped by every cut (and on drop): connections opened under an older one end.
    generation: u64,
}

/// What [`TcpProxy::on_request`] waits for.
struct RequestTrigger {
    method: String,
    path_contains: String,
    action: Box<dyn FnOnce() + Send>,
    fired: tokio::sync::oneshot::Sender<SeenRequest>,
}

/// What [`TcpProxy::on_bytes`] waits for.
struct ByteTrigger {
    pattern: Vec<u8>,
    /// Fire at the client's next chunk after the one holding the pattern, on that connection.
    next: bool,
    /// The connection whose next chunk fires it (`next`, once the pattern was seen).
    armed_on: Option<u64>,
    action: Box<dyn FnOnce() + Send>,
    fired: tokio::sync::oneshot::Sender<std::time::Instant>,
}

struct ProxyShared {
    upstream: std::net::SocketAddr,
    bytes_trigger: std::sync::Mutex<Option<ByteTrigger>>,
    connections: std::sync::atomic::AtomicU64,
    state: tokio::sync::watch::Sender<ProxyState>,
    requests: std::sync::Mutex<Vec<SeenRequest>>,
    trigger: std::sync::Mutex<Option<RequestTrigger>>,
    refused: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
}

impl TcpProxy {
    /// A proxy on a free loopback port in front of `upstream`, forwarding.
    ///
    /// # Errors
    /// No loopback port can be bound.
    pub async fn start(upstream: std::net::SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = tokio::sync::watch::channel(ProxyState {
            up: true,
            stalled: false,
            generation: 0,
        });
        let shared = std::sync::Arc::new(ProxyShared {
            upstream,
            state,
            requests: std::sync::Mutex::new(Vec::new()),
            trigger: std::sync::Mutex::new(None),
            bytes_trigger: std::sync::Mutex::new(None),
            connections: std::sync::atomic::AtomicU64::new(0),
            refused: std::sync::atomic::AtomicU64::new(0),
            dropped: std::sync::atomic::AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(TcpProxy {
            addr,
            shared,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `http://ADDR` (a proxy in front of an HTTP server).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server is unreachable from now on: every open connection is dropped, and new ones
    /// are closed as soon as they are accepted, until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.shared.state.send_modify(|s| {
            s.up = false;
            s.generation += 1;
        });
    }

    /// Forward new connections again (after [`TcpProxy::cut`]), and move bytes again (after
    /// [`TcpProxy::stall`]).
    pub fn restore(&self) {
        self.shared.state.send_modify(|s| {
            s.up = true;
            s.stalled = false;
        });
    }

    /// The server is unreachable, silently, from now on: connections stay open but no byte
    /// moves either way, and new connections are accepted but not connected, until
    /// [`TcpProxy::restore`], when what waited goes through (a network partition, not a refusal:
    /// the clients see neither an error nor an answer).
    pub fn stall(&self) {
        self.shared.state.send_modify(|s| s.stalled = true);
    }

    /// [`TcpProxy::cut`], wait `outage`, [`TcpProxy::restore`].
    pub async fn outage(&self, outage: std::time::Duration) {
        self.cut();
        tokio::time::sleep(outage).await;
        self.restore();
    }

    /// Run `action` once, as soon as a client sends a request with `method` whose target
    /// contains `path_contains`, *before* the proxy forwards it (the server gets it after
    /// `action` returned; e.g. [`crate::process::NodeProcess::pause_action`] stops the node
    /// that sent it before any answer can reach it). The receiver gets the request. Replaces a
    /// trigger that has not fired yet.
    pub fn on_request(
        &self,
        method: &str,
        path_contains: &str,
        action: impl FnOnce() + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<SeenRequest> {
        let (fired, rx) = tokio::sync::oneshot::channel();
        *self
            .shared
            .trigger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(RequestTrigger {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            action: Box::new(action),
            fired,
        });
        rx
    }

    /// Run `action` once, as soon as a client sends `pattern` (e.g. a piece of SQL a node sends
    /// PostgreSQL), before the proxy forwards the bytes holding it (so the server acts on them
    /// while the client is stopped, if `action` stops it). The receiver gets when.
    pub fn on_bytes(
        &self,
        pattern: &[u8],
        action: impl FnOnce() + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<std::time::Instant> {
        self.bytes_trigger(pattern, false, action)
    }

    /// [`TcpProxy::on_bytes`], but at the next bytes the client sends on the connection that
    /// carried `pattern`. A PostgreSQL client prepares a statement (its text) in one exchange
    /// and runs it (its parameters) in the next: this stops the client just before the server
    /// runs the statement, which it then does while the client is stopped.
    pub fn on_bytes_then_next(
        &self,
        pattern: &[u8],
        action: impl FnOnce() + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<std::time::Instant> {
        self.bytes_trigger(pattern, true, action)
    }

    fn bytes_trigger(
        &self,
        pattern: &[u8],
        next: bool,
        action: impl FnOnce() + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<std::time::Instant> {
        assert!(!pattern.is_empty(), "an empty pattern");
        let (fired, rx) = tokio::sync::oneshot::channel();
        *self
            .shared
            .bytes_trigger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ByteTrigger {
            pattern: pattern.to_owned(),
            next,
            armed_on: None,
            action: Box::new(action),
            fired,
        });
        rx
    }

    /// Whether it forwards new connections.
    pub fn is_up(&self) -> bool {
        self.shared.state.borrow().up
    }

    /// How many connections it refused while cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// How many open connections a cut dropped.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Every HTTP request line clients sent through it so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The HTTP request lines clients sent through it at or after `since`.
    pub fn requests_since(&self, since: std::time::Instant) -> Vec<SeenRequest> {
        let mut all = self.requests();
        all.retain(|r| r.at >= since);
        all
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: std::sync::Arc<ProxyShared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = *shared.state.borrow();
        if !state.up {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let _ = client.set_nodelay(true);
        tokio::spawn(forward(
            shared.clone(),
            client,
            shared.state.subscribe(),
            state.generation,
        ));
    }
}

/// Forward one connection both ways until either side closes or a cut ends it.
async fn forward(
    shared: std::sync::Arc<ProxyShared>,
    client: tokio::net::TcpStream,
    mut state: tokio::sync::watch::Receiver<ProxyState>,
    generation: u64,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let moving = |mut rx: tokio::sync::watch::Receiver<ProxyState>| async move {
        let _ = rx.wait_for(|s| !s.stalled).await;
    };
    moving(state.clone()).await;
    let Ok(server) = tokio::net::TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let gate = state.clone();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        let mut recent: Vec<u8> = Vec::new();
        let connection = shared.connections.fetch_add(1, Ordering::Relaxed);
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            moving(gate.clone()).await;
            watch_bytes(&shared, connection, &mut recent, &buf[..n]);
            note_requests(&shared, &mut pending, &buf[..n]);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            moving(gate.clone()).await;
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        _ = async { tokio::join!(upstream, downstream) } => {}
        _ = state.wait_for(|s| s.generation != generation) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Fire the [`TcpProxy::on_bytes`] trigger if `chunk` (after the end of the previous chunks,
/// `recent`) holds its pattern.
fn watch_bytes(shared: &ProxyShared, connection: u64, recent: &mut Vec<u8>, chunk: &[u8]) {
    let fired = {
        let mut trigger = shared
            .bytes_trigger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((pattern, next, armed_on)) = trigger
            .as_ref()
            .map(|t| (t.pattern.clone(), t.next, t.armed_on))
        else {
            recent.clear();
            return;
        };
        if armed_on == Some(connection) {
            trigger.take()
        } else {
            recent.extend_from_slice(chunk);
            let found = armed_on.is_none()
                && recent
                    .windows(pattern.len())
                    .any(|w| w == pattern.as_slice());
            let keep = recent.len().saturating_sub(pattern.len());
            recent.drain(..keep);
            match trigger.as_mut() {
                Some(t) if found && next => {
                    t.armed_on = Some(connection);
                    None
                }
                _ if found => trigger.take(),
                _ => None,
            }
        }
    };
    if let Some(t) = fired {
        (t.action)();
        let _ = t.fired.send(std::time::Instant::now());
    }
}

/// The HTTP methods a request line may start with.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Add `chunk` to what a client sent and note every complete HTTP/1 request line in it. A
/// request line may follow a body without a line break, so it is looked for at the end of each
/// line (`… METHOD TARGET HTTP/1.x`).
fn note_requests(shared: &ProxyShared, pending: &mut Vec<u8>, chunk: &[u8]) {
    pending.extend_from_slice(chunk);
    let mut seen = Vec::new();
    while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&pending[..end]).into_owned();
        pending.drain(..end + 2);
        if let Some(found) = request_line(&line) {
            seen.push(found);
        }
    }
    // Bodies without line breaks are not kept whole: a request line is short.
    if pending.len() > 64 * 1024 {
        let keep = pending.len() - 8 * 1024;
        pending.drain(..keep);
    }
    let at = std::time::Instant::now();
    for (method, path) in seen {
        let request = SeenRequest { at, method, path };
        let fired = {
            let mut trigger = shared
                .trigger
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let matches = trigger.as_ref().is_some_and(|t| {
                t.method == request.method && request.path.contains(&t.path_contains)
            });
            if matches { trigger.take() } else { None }
        };
        if let Some(t) = fired {
            // Before the chunk holding the request is forwarded.
            (t.action)();
            let _ = t.fired.send(request.clone());
        }
        shared
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request);
    }
}

/// `(method, target)` of an HTTP/1 request line at the end of `line`, if there is one.
fn request_line(line: &str) -> Option<(String, String)> {
    let rest = line
        .strip_suffix(" HTTP/1.1")
        .or_else(|| line.strip_suffix(" HTTP/1.0"))?;
    METHODS
        .iter()
        .filter_map(|m| {
            let at = rest.rfind(&format!("{m} /"))?;
            let target = &rest[at + m.len() + 1..];
            (!target.contains(' ')).then(|| (at, (*m).to_owned(), target.to_owned()))
        })
        .max_by_key(|(at, _, _)| *at)
        .map(|(_, m, t)| (m, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_found_after_a_body_and_across_chunks() {
        assert_eq!(
            request_line("GET /a?b=1 HTTP/1.1"),
            Some(("GET".into(), "/a?b=1".into()))
        );
        assert_eq!(
            request_line(r#"{"notes":"GET / here"}POST /api/v1/x HTTP/1.1"#),
            Some(("POST".into(), "/api/v1/x".into()))
        );
        assert_eq!(request_line("host: 127.0.0.1"), None);
        assert_eq!(request_line("HTTP/1.1 200 OK"), None);
    }

    #[tokio::test]
    async fn a_proxy_forwards_notes_requests_and_a_cut_refuses_connections_until_restored() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let upstream = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = TcpProxy::start(upstream).await.expect("proxy");
        let acted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = acted.clone();
        let fired = proxy.on_request("GET", "/y", move || flag.store(true, Ordering::SeqCst));
        let mut c = tokio::net::TcpStream::connect(proxy.addr())
            .await
            .expect("connect");
        c.write_all(b"POST /x HTTP/1.1\r\nhost: a\r\n\r\n{}GET ")
            .await
            .expect("write");
        c.write_all(b"/y HTTP/1.1\r\n\r\n").await.expect("write");
        let mut got = Vec::new();
        while got.len() < 50 {
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "echo closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let lines: Vec<String> = proxy.requests().iter().map(SeenRequest::line).collect();
        assert_eq!(lines, ["POST /x", "GET /y"]);
        assert!(acted.load(Ordering::SeqCst), "the trigger's action ran");
        let bytes = proxy.on_bytes(b"FOR SHARE", || ());
        c.write_all(b"SELECT 1 FOR ").await.expect("write");
        c.write_all(b"SHARE").await.expect("write");
        tokio::time::timeout(std::time::Duration::from_secs(5), bytes)
            .await
            .expect("the pattern across two writes")
            .expect("fired");
        let mut echoed = 0;
        while echoed < 18 {
            let mut buf = [0u8; 64];
            echoed += c.read(&mut buf).await.expect("read");
        }
        assert_eq!(fired.await.expect("fired").line(), "GET /y");
        proxy.cut();
        let mut buf = [0u8; 8];
        assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0, "dropped by the cut");
        let mut refused = tokio::net::TcpStream::connect(proxy.addr())
            .await
            .expect("accepted");
        assert_eq!(
            refused.read(&mut buf).await.unwrap_or(0),
            0,
            "closed at once"
        );
        assert_eq!(proxy.refused(), 1);
        assert_eq!(proxy.dropped(), 1);
        proxy.restore();
        let mut again = tokio::net::TcpStream::connect(proxy.addr())
            .await
            .expect("connect");
        again.write_all(b"ok").await.expect("write");
        let n = again.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"ok");
        proxy.stall();
        again.write_all(b"hi").await.expect("write");
        let held =
            tokio::time::timeout(std::time::Duration::from_millis(200), again.read(&mut buf));
        assert!(held.await.is_err(), "nothing moves while stalled");
        proxy.restore();
        let n = again.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"hi", "what waited goes through");
    }
}
