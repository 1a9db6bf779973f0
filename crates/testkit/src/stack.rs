//! The in-process stack: both simulators, a database, and one or several nodes.

use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use slotbridge_pms_sim::PmsSim;
use slotbridge_service::http::AdminAccess;
use slotbridge_service::node::{Node, NodeConfig};
use slotbridge_store::Store;

use crate::db::{Db, TestDb};
use crate::sims::{Practice, Sims, SimsBuilder};

/// A node's settings for tests against `sims` and the database at `database_url`: loopback on
/// a free port, 500 ms polling, a 4 s lease. Change what a test needs with struct update.
pub fn node_config(sims: &Sims, database_url: &str, node_id: &str) -> NodeConfig {
    NodeConfig {
        database_url: database_url.to_owned(),
        market_url: sims.market_api_url(),
        market_api_key: SecretString::from(sims.market_api_key.clone()),
        user_agent: "slotbridge (test@slotbridge.example) DEV".into(),
        pms_url: sims.pms_url.parse().expect("the PMS simulator's URL"),
        cliniko_url: None,
        listen: "127.0.0.1:0".parse().expect("addr"),
        node_id: node_id.to_owned(),
        poll_interval: Duration::from_millis(500),
        lease_ttl: Duration::from_secs(4),
        pms_webhook_secret: None,
        public_url: None,
        clock_offset: jiff::SignedDuration::ZERO,
        limits: slotbridge_service::http::limits(),
        booking_retention: slotbridge_service::ctx::BOOKING_RETENTION,
        max_links: 5000,
        webhooks: true,
        call_timeout: slotbridge_service::node::DEFAULT_CALL_TIMEOUT,
    }
}

/// Link `p` through the admin API of the node at `node_url` (with the bearer `token`, if
/// any), as an operator would; the link id.
///
/// # Errors
/// The node cannot be reached or does not answer 201.
pub async fn link_practice(
    http: &reqwest::Client,
    node_url: &str,
    token: Option<&str>,
    p: &Practice,
) -> anyhow::Result<String> {
    let body = json!({
        "site_slug": p.slug,
        "pms_api_key": p.api_key,
        "practice_id": p.practice_id,
        "practice_key": p.practice_key,
    });
    let v = post_link(http, node_url, token, &body, &p.slug, &p.practice_id).await?;
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no link id in {v}"))
}

/// Link the Cliniko business `business_id` (its API key `api_key`, with the shard suffix) to
/// the marketplace practice `p` through the admin API, as an operator would; the link as the
/// API answers it.
///
/// # Errors
/// The node cannot be reached or does not answer 201.
pub async fn link_cliniko(
    http: &reqwest::Client,
    node_url: &str,
    token: Option<&str>,
    api_key: &str,
    business_id: &str,
    p: &Practice,
) -> anyhow::Result<Value> {
    let body = json!({
        "pms_kind": "cliniko",
        "pms_api_key": api_key,
        "business_id": business_id,
        "practice_id": p.practice_id,
        "practice_key": p.practice_key,
    });
    let what = format!("Cliniko business {business_id}");
    post_link(http, node_url, token, &body, &what, &p.practice_id).await
}

/// `POST {node_url}/api/links` with `body`; the link, or why the node did not answer 201.
async fn post_link(
    http: &reqwest::Client,
    node_url: &str,
    token: Option<&str>,
    body: &Value,
    pms: &str,
    practice_id: &str,
) -> anyhow::Result<Value> {
    let mut req = http.post(format!("{node_url}/api/links")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    anyhow::ensure!(
        status == 201,
        "linking {pms} to marketplace practice {practice_id}: {status} {text}"
    );
    Ok(serde_json::from_str(&text)?)
}

/// How to start a [`Stack`].
pub struct StackBuilder {
    sims: SimsBuilder,
    record: bool,
    db: Db,
    harbour: bool,
    nodes: usize,
    link: bool,
    node_id: String,
    user_agent: Option<String>,
    poll_interval: Option<Duration>,
    lease_ttl: Option<Duration>,
    call_timeout: Option<Duration>,
    public_url: Option<url::Url>,
    access: AdminAccess,
    http: Option<reqwest::Client>,
    kind: crate::PmsKind,
}

impl StackBuilder {
    /// Which PMS Harbour Dental is linked to (default [`crate::PmsKind::Exact`]): with
    /// `Cliniko`, a Cliniko simulator is served too ([`crate::ClinikoSide`]), the nodes are
    /// pointed at it, and the marketplace practice is linked to its practice's business.
    pub fn pms_kind(mut self, kind: crate::PmsKind) -> Self {
        self.kind = kind;
        self
    }

    /// The PMS simulator (default: Harbour Dental only).
    pub fn pms(mut self, sim: PmsSim) -> Self {
        self.sims = self.sims.pms(sim);
        self
    }

    /// The marketplace api key of the integration (default [`crate::MARKET_API_KEY`]).
    pub fn market_api_key(mut self, key: &str) -> Self {
        self.sims = self.sims.market_api_key(key);
        self
    }

    /// The marketplace simulator in its quirks mode (see [`SimsBuilder::market_quirks`]).
    pub fn market_quirks(mut self) -> Self {
        self.sims = self.sims.market_quirks(true);
        self
    }

    /// Record every marketplace API call ([`Stack::record`]).
    pub fn record(mut self) -> Self {
        self.record = true;
        self
    }

    /// SQLite (default) or a fresh PostgreSQL database.
    pub fn db(mut self, db: Db) -> Self {
        self.db = db;
        self
    }

    /// Whether to create Harbour Dental on the marketplace (default: yes).
    pub fn harbour(mut self, create: bool) -> Self {
        self.harbour = create;
        self
    }

    /// How many nodes to start (default 1; more share the database, `NODE_ID-2`, …).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Whether to link Harbour Dental through the first node (default: yes, when both exist).
    pub fn link(mut self, link: bool) -> Self {
        self.link = link;
        self
    }

    /// The first node's id (default `test-node`).
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = id.into();
        self
    }

    /// The User-Agent the nodes send.
    pub fn user_agent(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// The nodes' polling interval (default 500 ms).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = Some(d);
        self
    }

    /// The nodes' lease time-to-live (default 4 s).
    pub fn lease_ttl(mut self, d: Duration) -> Self {
        self.lease_ttl = Some(d);
        self
    }

    /// How long the nodes' PMS and marketplace calls may take (default 10 s): tests of slow
    /// servers shorten it so that a timeout comes in seconds.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = Some(d);
        self
    }

    /// The public URL the nodes register as their webhooks' base (default: their own listen
    /// address). A URL where nothing listens makes every webhook delivery fail.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.parse().expect("a public URL"));
        self
    }

    /// An admin token (the stack's admin calls send it) and a console password.
    pub fn admin(mut self, token: &str, console_password: &str) -> Self {
        self.access = AdminAccess {
            token: Some(SecretString::from(token)),
            console_password: Some(SecretString::from(console_password)),
        };
        self
    }

    /// The HTTP client of the helpers (default: reqwest's).
    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Start it all; `None` when PostgreSQL was asked for and is unavailable outside CI (said
    /// on stderr). Panics on anything else that fails.
    pub async fn start(self) -> Option<Stack> {
        let db = TestDb::fresh(self.db)?;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sims = self.sims;
        if self.record {
            sims = sims.record(dir.path().join("market-calls.jsonl"));
        }
        let mut sims = sims.start().await.expect("the simulators start");
        if let Some(http) = self.http {
            sims.set_http(http);
        }
        let harbour = self
            .harbour
            .then(|| sims.harbour().expect("Harbour Dental on the marketplace"));
        let cliniko = match self.kind {
            crate::PmsKind::Exact => None,
            crate::PmsKind::Cliniko => Some(
                crate::ClinikoSide::start(crate::kinds::CLINIKO_SEED)
                    .await
                    .expect("the Cliniko simulator starts"),
            ),
        };
        let mut config = node_config(&sims, db.url(), &self.node_id);
        config.cliniko_url = cliniko.as_ref().map(crate::ClinikoSide::api_url);
        if let Some(ua) = self.user_agent {
            config.user_agent = ua;
        }
        if let Some(d) = self.poll_interval {
            config.poll_interval = d;
        }
        if let Some(d) = self.lease_ttl {
            config.lease_ttl = d;
        }
        if let Some(d) = self.call_timeout {
            config.call_timeout = d;
        }
        if let Some(u) = self.public_url {
            config.public_url = Some(u);
        }
        let mut stack = Stack {
            sims,
            harbour,
            db,
            config,
            access: self.access,
            nodes: Vec::new(),
            dir,
            cliniko,
        };
        for n in 0..self.nodes {
            let mut config = stack.config.clone();
            if n > 0 {
                config.node_id = format!("{}-{}", self.node_id, n + 1);
            }
            stack.start_node_with(config).await;
        }
        if self.link && self.nodes > 0 && stack.harbour.is_some() {
            let p = stack.harbour().clone();
            stack.link_listing(&p).await;
        }
        Some(stack)
    }
}

/// Both simulators, a database and in-process nodes; derefs to [`Sims`] (and so to the
/// [`crate::Control`] helpers). A PostgreSQL database is dropped with it.
pub struct Stack {
    sims: Sims,
    harbour: Option<Practice>,
    /// The database the nodes share.
    pub db: TestDb,
    /// The settings [`Stack::start_node`] starts a node with.
    pub config: NodeConfig,
    /// Who may use the nodes' admin API and console.
    pub access: AdminAccess,
    nodes: Vec<(NodeConfig, Option<Node>)>,
    dir: tempfile::TempDir,
    /// The Cliniko simulator, when Harbour Dental is linked to Cliniko.
    pub(crate) cliniko: Option<crate::ClinikoSide>,
}

impl Deref for Stack {
    type Target = Sims;

    fn deref(&self) -> &Sims {
        &self.sims
    }
}

impl Stack {
    /// Defaults: the Harbour Dental PMS simulator, SQLite, one node `test-node`, Harbour Dental
    /// created on the marketplace and linked, no admin token, no recording.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            sims: Sims::builder(),
            record: false,
            db: Db::Sqlite,
            harbour: true,
            nodes: 1,
            link: true,
            node_id: "test-node".into(),
            user_agent: None,
            poll_interval: None,
            lease_ttl: None,
            call_timeout: None,
            public_url: None,
            access: AdminAccess::default(),
            http: None,
            kind: crate::PmsKind::Exact,
        }
    }

    /// The default stack on `db`; `None` when PostgreSQL is unavailable outside CI.
    pub async fn on(db: Db) -> Option<Stack> {
        Stack::builder().db(db).start().await
    }

    /// The stack's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The marketplace's record file (panics unless the stack records).
    pub fn record(&self) -> &Path {
        self.sims.record.as_deref().expect("the stack records")
    }

    /// Harbour Dental (panics when the stack was built without it).
    pub fn harbour(&self) -> &Practice {
        self.harbour.as_ref().expect("Harbour Dental")
    }

    /// The first node (panics when it is stopped).
    pub fn node(&self) -> &Node {
        self.node_at(0)
    }

    /// Node `i` (panics when it is stopped).
    pub fn node_at(&self, i: usize) -> &Node {
        self.nodes
            .get(i)
            .and_then(|(_, n)| n.as_ref())
            .unwrap_or_else(|| panic!("node {i} runs"))
    }

    /// Node `i`, or `None` when it is stopped (or was never started).
    pub fn try_node_at(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(|(_, n)| n.as_ref())
    }

    /// How many nodes were started (stopped ones included: their index stays theirs).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The settings node `i` was started with (panics when there is no node `i`).
    pub fn node_config_at(&self, i: usize) -> &NodeConfig {
        &self.nodes.get(i).unwrap_or_else(|| panic!("no node {i}")).0
    }

    /// The links each running node works now (`ctx.running()`), by node index.
    pub fn running(&self) -> Vec<(usize, Vec<slotbridge_store::LinkId>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, (_, n))| n.as_ref().map(|n| (i, n.ctx.running())))
            .collect()
    }

    /// The first node's store.
    pub fn store(&self) -> &Store {
        &self.node().ctx.store
    }

    /// Another store on the nodes' database.
    pub async fn open_store(&self) -> Store {
        Store::open(self.db.url(), crate::keyring())
            .await
            .expect("store")
    }

    /// Start a node with [`Stack::config`]; its index.
    pub async fn start_node(&mut self) -> usize {
        self.start_node_with(self.config.clone()).await
    }

    /// Start a node with `config`; its index.
    pub async fn start_node_with(&mut self, config: NodeConfig) -> usize {
        let node = self.spawn_node_with(config.clone()).await;
        self.nodes.push((config, Some(node)));
        self.nodes.len() - 1
    }

    /// A node with [`Stack::config`] but the id `node_id`, owned by the caller.
    pub async fn spawn_node(&self, node_id: &str) -> Node {
        let mut config = self.config.clone();
        config.node_id = node_id.into();
        self.spawn_node_with(config).await
    }

    async fn spawn_node_with(&self, config: NodeConfig) -> Node {
        Node::start_with_access(config, crate::keyring(), self.access.clone())
            .await
            .expect("node")
    }

    /// Shut node `i` down (its store state stays, as after a crash between two steps).
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i).and_then(|(_, n)| n.take()) {
            n.shutdown().await;
        }
    }

    /// Shut node `i` down and start it again with the same settings.
    pub async fn restart_node(&mut self, i: usize) {
        self.stop_node(i).await;
        let config = self.nodes[i].0.clone();
        let node = self.spawn_node_with(config).await;
        self.nodes[i].1 = Some(node);
    }

    /// The admin token, if the nodes have one.
    pub fn token(&self) -> Option<String> {
        self.access
            .token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    }

    /// `{first node}{path}`.
    pub fn api(&self, path: &str) -> String {
        self.api_at(0, path)
    }

    /// `{node i}{path}`.
    pub fn api_at(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.node_at(i).url())
    }

    /// GET the first node's `path` (with the admin token, if any); panics unless 2xx JSON.
    pub async fn api_get(&self, path: &str) -> Value {
        let url = self.api(path);
        let mut req = self.http.get(&url);
        if let Some(t) = self.token() {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("get");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Link `p` through the first node's admin API (201 asserted); the link id.
    pub async fn link(&self, p: &Practice) -> String {
        let token = self.token();
        link_practice(&self.http, &self.node().url(), token.as_deref(), p)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The first link's id.
    pub async fn first_link(&self) -> String {
        self.api_get("/api/links").await[0]["id"]
            .as_str()
            .expect("link id")
            .to_owned()
    }

    /// PATCH a link through the first node's admin API (200 asserted).
    pub async fn patch_link(&self, link: &str, body: Value) {
        self.patch_link_at(0, link, body).await;
    }

    /// PATCH a link through node `i`'s admin API (200 asserted).
    pub async fn patch_link_at(&self, i: usize, link: &str, body: Value) {
        let mut req = self
            .http
            .patch(self.api_at(i, &format!("/api/links/{link}")))
            .json(&body);
        if let Some(t) = self.token() {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("patch");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    /// A console page of the first node (`path` such as `/console/practices/{id}`), after
    /// logging in with the console password (or else the admin token): `(status, HTML)`.
    /// Panics when neither is set ([`StackBuilder::admin`]) or the login is refused.
    pub async fn console_page(&self, path: &str) -> (u16, String) {
        let secret = self
            .access
            .console_password
            .as_ref()
            .or(self.access.token.as_ref())
            .expect("a console password or an admin token (StackBuilder::admin)")
            .expose_secret()
            .to_owned();
        // Cookies are read from the answers themselves: no redirect is followed.
        let http = crate::control::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let cookie_of = |r: &reqwest::Response, name: &str| {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|c| c.split(';').next())
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        };
        let form = http
            .get(self.api("/console/login"))
            .send()
            .await
            .expect("GET /console/login");
        let pre = cookie_of(&form, "sb_login").expect("the login form's cookie");
        let body = format!("password={}&csrf={pre}", url_encode(&secret));
        let login = http
            .post(self.api("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("sb_login={pre}"))
            .body(body)
            .send()
            .await
            .expect("POST /console/login");
        assert_eq!(login.status(), 303, "console login refused");
        let session = cookie_of(&login, "sb_session").expect("a session cookie");
        let r = http
            .get(self.api(path))
            .header("cookie", format!("sb_session={session}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// Harbour Dental's configuration on the marketplace (waited for up to `within`), Step 2
    /// done, and the first day from tomorrow with more than `more_than` bookable slots
    /// (waited for up to `within`): `(YYYY-MM-DD, slots)`.
    pub async fn linked_with_slots(
        &self,
        within: Duration,
        more_than: usize,
    ) -> (String, Vec<Value>) {
        let p = self.harbour();
        self.configured_then_auto_linked(&p.practice_id, within, &String::new)
            .await;
        self.day_with_slots(&p.practice_id, &p.timezone, more_than, within)
            .await
    }
}

/// `s` percent-encoded for a form body (everything but unreserved characters).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_form_value_is_percent_encoded() {
        assert_eq!(super::url_encode("a b&c=d~"), "a%20b%26c%3Dd~");
    }
}
