//! The Cliniko connector: a [`PmsConnector`] over Cliniko's published REST API (v1).
//!
//! What the documentation fixes, and how this client follows it:
//!
//! - **Where.** The API key ends in its shard (`…-au1`, `…-uk1`), which picks the base URL
//!   `https://api.{shard}.cliniko.com/v1`; a key without a suffix is an `au1` key
//!   ([`ClinikoKey`]). Tests and the demo point [`ClinikoConfig::base_url`] at the simulator.
//! - **Who.** HTTP Basic with the key as user name and no password; a `User-Agent` naming the
//!   vendor and a contact address (`slotbridge (integrations@slotbridge.dev)` by default).
//! - **Lists.** 100 items a page, and the next page is the `links.next` the answer gives, never a
//!   URL of our own; a `next` that leaves the API's origin is refused (the key would go with it).
//! - **Rate.** 200 requests a minute per user: every request of every connector sharing a key
//!   waits for one process-wide limiter of that key ([`RateLimit`]), sized so that no sliding
//!   minute holds more than 200; a 429 is waited out until its `X-RateLimit-Reset`.
//! - **Setup.** The business, its practitioners and the appointment types shown in online
//!   bookings (each practitioner's own types), the types' durations, the account's time zone and
//!   time slot, and the online-booking settings that shape available times (the setup's
//!   [`OnlineRules`]: notice, per-day-segment limit, and how far ahead, which the settings do
//!   not carry and [`rules`] learns from the available times).
//! - **Diary.** Daily availabilities (weekly hours), unavailable blocks, and individual
//!   appointments that are neither cancelled nor deleted, for the practitioners who work at the
//!   business (their bookings at other businesses of the account occupy them too).
//! - **Exactly once.** Cliniko has no field for an outside reference, so the booking's reference
//!   goes in the appointment's `notes` as a line `slotbridge-ref: <ref>` ([`REF_PREFIX`]). The
//!   API documents no filter on `notes`: the look-up lists the patient's appointments
//!   (`q[]=patient_id:=…`, a short list) and reads the line back. An insert looks up first, then
//!   checks the slot is free (Cliniko itself accepts overlapping appointments), creates, and asks
//!   Cliniko for the new appointment's conflicts: if a desk booking landed in between, ours is
//!   deleted again and the insert answers a conflict. A create whose answer is lost is not sent
//!   again blind: the look-up runs first.
//! - **Changes.** No webhooks: [`PmsConnector::read_changes`] polls each resource with
//!   `q[]=updated_at:>=…` and keeps in its cursor the last instant seen and what was seen at it.
//! - **Errors.** Typed [`PmsError`]s that name the operation, the status and Cliniko's own field
//!   names: never a URL, a query (a patient search carries names), a header or Cliniko's text.

mod rules;
pub mod wire;
mod zones;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use backon::Retryable as _;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use slotbridge_domain::backoff::{Backoff, Jitter, retry_wait};
use slotbridge_domain::practice::{
    Attendance, BlockKind, BookingSource, ClockTime, Diary, DiaryAppointment, DiaryBlock, IanaZone,
    OnlineBookingEntry, OnlineRules, PmsPractitioner, PmsReason, PracticeSetup, PractitionerHours,
    ReasonProviderRule, SiteSlug, Specialty, Weekday, WeeklyWindow,
};
use slotbridge_redact::outbound::{BodyError, MAX_RESPONSE_BYTES, read_capped};
use tokio::sync::Semaphore;

pub use rules::SHORT_DAYS_AHEAD;
pub use wire::reset_wait;
pub use zones::account_zone;

use crate::exact::{CallObserver, http_client};
use crate::types::{
    Address, Capabilities, ChangeEntry, ChangePage, Changes, Inserted, Medicare, NewAppointment,
    NewPatient, Patient, PatientQuery,
};
use crate::{PmsConnector, PmsError, safe};

/// The line of an appointment's `notes` that holds the booking's reference.
pub const REF_PREFIX: &str = "slotbridge-ref: ";

/// The `User-Agent` Cliniko requires: the application's name and a contact address.
pub const DEFAULT_USER_AGENT: &str = "slotbridge (integrations@slotbridge.dev)";

/// A Cliniko API key and the shard it belongs to.
#[derive(Clone)]
pub struct ClinikoKey {
    secret: SecretString,
    shard: String,
}

impl std::fmt::Debug for ClinikoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClinikoKey")
            .field("shard", &self.shard)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ClinikoKey {
    /// Read a key: its shard is the suffix after the last `-` when that is letters then digits
    /// (`au1`, `uk1`, `us1`); a key without one is an `au1` key, as the sharding guide says of
    /// keys issued before shards.
    ///
    /// ```
    /// use slotbridge_pms::cliniko::ClinikoKey;
    /// let k = ClinikoKey::parse("MS0xLWl4SzYY-uk1".to_owned().into()).unwrap();
    /// assert_eq!(k.shard(), "uk1");
    /// assert_eq!(ClinikoKey::parse("MS0xLWl4SzYY".to_owned().into()).unwrap().shard(), "au1");
    /// assert!(ClinikoKey::parse("  ".to_owned().into()).is_err());
    /// ```
    pub fn parse(secret: SecretString) -> Result<Self, PmsError> {
        let raw = secret.expose_secret().trim();
        if raw.is_empty() || raw.bytes().any(|b| b.is_ascii_whitespace() || b == b':') {
            return Err(PmsError::Invalid {
                kind: "api-key".into(),
                detail: "a Cliniko API key is one word without spaces or colons".into(),
            });
        }
        let shard = raw
            .rsplit_once('-')
            .map(|(_, s)| s)
            .filter(|s| is_shard(s))
            .unwrap_or("au1")
            .to_owned();
        Ok(Self {
            secret: raw.to_owned().into(),
            shard,
        })
    }

    /// The shard, e.g. `au1`.
    pub fn shard(&self) -> &str {
        &self.shard
    }

    /// The API's base URL for this key's shard.
    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("https://api.{}.cliniko.com/v1/", self.shard))
            .expect("a shard of letters and digits makes a valid host")
    }

    /// The rate limiter's name for this key: a hash, so the key itself is kept nowhere else.
    fn limiter_id(&self) -> String {
        let raw = self.secret.expose_secret();
        let without_shard = raw
            .rsplit_once('-')
            .filter(|(_, s)| is_shard(s))
            .map_or(raw, |(k, _)| k);
        hex::encode(Sha256::digest(without_shard.as_bytes()))
    }
}

fn is_shard(s: &str) -> bool {
    let letters = s.bytes().take_while(u8::is_ascii_lowercase).count();
    (2..=4).contains(&letters)
        && s.len() > letters
        && s.len() <= letters + 3
        && s.bytes().skip(letters).all(|b| b.is_ascii_digit())
}

/// A request budget: at most `requests` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests allowed in one window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl RateLimit {
    /// Cliniko's: 200 requests a minute per user.
    pub const CLINIKO: RateLimit = RateLimit {
        requests: 200,
        per: Duration::from_secs(60),
    };

    /// A GCRA quota that never lets more than `requests` through in any sliding window of
    /// `per`: a burst of a twentieth of them, the rest spread evenly (`burst + per / period ≤
    /// requests`).
    fn quota(self) -> Quota {
        let requests = self.requests.max(2);
        let burst = (requests / 20).max(1);
        let steady = requests - burst;
        let period = (self.per / steady).max(Duration::from_micros(1));
        Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(burst).expect("burst ≥ 1"))
    }
}

type Limiters = Mutex<HashMap<(String, RateLimit), Arc<DefaultDirectRateLimiter>>>;

/// One limiter per key (and budget) for the whole process: connectors to several businesses of
/// one account share the account's 200 a minute.
static LIMITERS: LazyLock<Limiters> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn limiter_for(key: &ClinikoKey, rate: RateLimit) -> Arc<DefaultDirectRateLimiter> {
    let mut map = LIMITERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry((key.limiter_id(), rate))
        .or_insert_with(|| Arc::new(RateLimiter::direct(rate.quota())))
        .clone()
}

/// How a [`ClinikoConnector`] reaches one Cliniko business.
#[derive(Clone)]
pub struct ClinikoConfig {
    /// The key (and its shard).
    pub key: ClinikoKey,
    /// The business (location) this link publishes.
    pub business_id: String,
    /// The API's base URL ending in `/v1/`; `None`: the key's shard
    /// (`https://api.{shard}.cliniko.com/v1/`). Set for the simulator.
    pub base_url: Option<url::Url>,
    /// The `User-Agent`: application name and contact address.
    pub user_agent: String,
    /// Per-request timeout (default 10 s).
    pub timeout: Duration,
    /// Retries after the first attempt (default 3).
    pub max_retries: u32,
    /// First backoff; doubles per retry with jitter (default 200 ms).
    pub backoff: Duration,
    /// A wait for the rate limit's reset longer than this is not waited for: the error is
    /// returned (default 60 s).
    pub max_retry_after: Duration,
    /// Requests in flight at most (default 4).
    pub concurrency: usize,
    /// The request budget of the key (default [`RateLimit::CLINIKO`]).
    pub rate: RateLimit,
    /// The change feed is polled at most this often (default 10 s): a poll costs about seven
    /// requests, so at 10 s polling takes about 42 of the key's 200 a minute, and a node polling
    /// every second would otherwise spend the whole budget on polls. A poll asked for sooner
    /// answers "nothing new" with the same cursor, without a request.
    pub changes_every: Duration,
    /// How far ahead Cliniko offers bookings is learnt from its available times at most this
    /// often (default 10 min; about ten requests each time, see [`rules`]).
    pub rules_every: Duration,
    /// Told of every attempt: operation, outcome and time taken.
    pub observer: Option<CallObserver>,
}

impl std::fmt::Debug for ClinikoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClinikoConfig")
            .field("key", &self.key)
            .field("business_id", &self.business_id)
            .field("base_url", &self.base_url.as_ref().map(url::Url::as_str))
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl ClinikoConfig {
    /// A configuration with the defaults.
    pub fn new(key: ClinikoKey, business_id: impl Into<String>) -> Self {
        Self {
            key,
            business_id: business_id.into(),
            base_url: None,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(60),
            concurrency: 4,
            rate: RateLimit::CLINIKO,
            changes_every: Duration::from_secs(10),
            rules_every: Duration::from_secs(600),
            observer: None,
        }
    }

    /// The same, against another base URL (the simulator's `{base}/v1/`).
    pub fn with_base_url(mut self, base: url::Url) -> Self {
        self.base_url = Some(base);
        self
    }
}

/// What `GET /settings/public` says: the account's zone, its time slot, whether online bookings
/// are on, their rules, and the server's time.
struct Settings {
    zone: IanaZone,
    interval: u32,
    enabled: bool,
    rules: OnlineRules,
    now: Timestamp,
}

/// The Cliniko connector to one business.
#[derive(Debug, Clone)]
pub struct ClinikoConnector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: ClinikoConfig,
    base: url::Url,
    client: reqwest::Client,
    permits: Semaphore,
    limiter: Arc<DefaultDirectRateLimiter>,
    zone: Mutex<Option<IanaZone>>,
    /// How far ahead Cliniko offers bookings, as last learnt, and when ([`rules`]).
    days_ahead: Mutex<Option<(std::time::Instant, Option<u32>)>>,
    /// When the change feed was last polled (see [`ClinikoConfig::changes_every`]).
    changes_polled: Mutex<Option<std::time::Instant>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Safe,
    Never,
}

/// An answer: body, and the server's `Date`.
struct Answer {
    body: Bytes,
    date: Option<Timestamp>,
}

/// Pages of one list at most (100 items each).
const MAX_PAGES: usize = 2_000;
const PER_PAGE: &str = "100";
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl ClinikoConnector {
    /// A connector with its own HTTP client.
    pub fn new(cfg: ClinikoConfig) -> Self {
        Self::with_client(cfg, http_client())
    }

    /// A connector sharing an HTTP client (built with [`http_client`]: it follows no redirect, so
    /// the key never goes where a `Location` points).
    pub fn with_client(cfg: ClinikoConfig, client: reqwest::Client) -> Self {
        let mut base = cfg.base_url.clone().unwrap_or_else(|| cfg.key.base_url());
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let limiter = limiter_for(&cfg.key, cfg.rate);
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(cfg.concurrency.max(1)),
                base,
                client,
                limiter,
                zone: Mutex::new(None),
                days_ahead: Mutex::new(None),
                changes_polled: Mutex::new(None),
                cfg,
            }),
        }
    }

    /// The business this connector publishes.
    pub fn business_id(&self) -> &str {
        &self.inner.cfg.business_id
    }

    /// The site slug a Cliniko business has in the domain model: `lcliniko` and the business id
    /// (the model's slugs are a letter and at least three letters or digits).
    pub fn site_slug(business_id: &str) -> Result<SiteSlug, PmsError> {
        SiteSlug::parse(&format!("lcliniko{business_id}")).map_err(|_| PmsError::Invalid {
            kind: "business-id".into(),
            detail: "a Cliniko business id is letters and digits".into(),
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<url::Url, PmsError> {
        let mut url = self
            .inner
            .base
            .join(path)
            .map_err(|e| PmsError::protocol(format!("base_url: {e}")))?;
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Whether `next` stays on the API: same scheme, host and port, under the base path.
    fn on_api(&self, next: &url::Url) -> bool {
        let base = &self.inner.base;
        next.scheme() == base.scheme()
            && next.host_str() == base.host_str()
            && next.port_or_known_default() == base.port_or_known_default()
            && next.path().starts_with(base.path())
    }

    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<Vec<u8>>,
        retry: Retry,
    ) -> Result<Answer, PmsError> {
        let cfg = &self.inner.cfg;
        // A write (`Retry::Never`) is sent again only when the answer says it was not done: a 429.
        let waits = Backoff::from_std(cfg.backoff, MAX_BACKOFF)
            .retries(cfg.max_retries, || Jitter::new(rand::random::<f64>()));
        let attempt = AtomicU32::new(0);
        let once = || async {
            attempt.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let result = self
                .once(op, method.clone(), url.clone(), body.clone())
                .await;
            if let Some(observe) = &cfg.observer {
                let outcome = result.as_ref().map_or_else(PmsError::kind, |_| "ok");
                observe(op, outcome, started.elapsed());
            }
            result
        };
        once.retry(waits)
            .sleep(tokio::time::sleep)
            .when(|e: &PmsError| match retry {
                Retry::Safe => e.is_transient(),
                Retry::Never => matches!(e, PmsError::RateLimited { .. }),
            })
            .adjust(|err, scheduled| {
                let asked = match err {
                    PmsError::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                };
                retry_wait(scheduled, asked, cfg.max_retry_after)
            })
            .notify(|err, wait| {
                let attempt = attempt.load(Ordering::Relaxed);
                tracing::debug!(business = %cfg.business_id, op, attempt, error = %err, ?wait, "retrying Cliniko request");
            })
            .await
    }

    async fn once(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, PmsError> {
        let inner = &self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| PmsError::Unavailable {
                detail: format!("{op}: connector closed"),
            })?;
        inner.limiter.until_ready().await;
        let mut req = inner
            .client
            .request(method, url)
            .basic_auth(inner.cfg.key.secret.expose_secret(), None::<&str>)
            .header("accept", "application/json")
            .header("user-agent", &inner.cfg.user_agent)
            .timeout(inner.cfg.timeout);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| safe::transport(op, &e.without_url()))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let reset = header("x-ratelimit-reset");
        let date =
            header("date").and_then(|d| jiff::fmt::rfc2822::parse(&d).ok().map(|z| z.timestamp()));
        let bytes = read_capped(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::Transport(e) => safe::transport(op, &e.without_url()),
                too_large => PmsError::Protocol {
                    detail: format!("{op}: {too_large}"),
                },
            })?;
        if (200..300).contains(&status) {
            Ok(Answer { body: bytes, date })
        } else {
            let wait = wire::reset_wait(reset.as_deref(), Timestamp::now());
            Err(wire::error(status, &bytes, wait).during(op))
        }
    }

    async fn get(
        &self,
        op: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, PmsError> {
        let url = self.url(path, query)?;
        self.send(op, Method::GET, url, None, Retry::Safe).await
    }

    async fn get_one<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
    ) -> Result<T, PmsError> {
        let answer = self.get(op, path, &[]).await?;
        wire::json(&answer.body, op)
    }

    /// Every page of a list whose items are under `key`, following `links.next`.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, PmsError> {
        let mut q = query.to_vec();
        q.push(("per_page", PER_PAGE.to_owned()));
        let mut url = self.url(path, &q)?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for _ in 0..MAX_PAGES {
            seen.insert(url.to_string());
            let answer = self
                .send(op, Method::GET, url.clone(), None, Retry::Safe)
                .await?;
            let page: wire::Page<T> = wire::page(&answer.body, key).map_err(|e| e.during(op))?;
            out.extend(page.items);
            let Some(next) = page.next else {
                return Ok(out);
            };
            let next = self
                .inner
                .base
                .join(&next)
                .map_err(|_| PmsError::protocol(format!("{op}: links.next is not a URL")))?;
            if !self.on_api(&next) {
                return Err(PmsError::protocol(format!(
                    "{op}: links.next leaves the API"
                )));
            }
            if seen.contains(next.as_str()) {
                return Err(PmsError::protocol(format!(
                    "{op}: links.next does not advance"
                )));
            }
            url = next;
        }
        Err(PmsError::protocol(format!("{op}: too many pages")))
    }

    /// The account's settings: zone (remembered), time slot and online-booking rules.
    async fn settings(&self) -> Result<Settings, PmsError> {
        let op = "settings read";
        let answer = self.get(op, "settings/public", &[]).await?;
        let s: wire::Settings = wire::json(&answer.body, op)?;
        let zone = zones::account_zone(&s.account.time_zone).ok_or_else(|| {
            PmsError::protocol(format!("{op}: account.time_zone is not a known zone"))
        })?;
        if let Ok(mut z) = self.inner.zone.lock() {
            *z = Some(zone.clone());
        }
        let interval = s
            .calendar
            .and_then(|c| c.timeslot_size_in_minutes)
            .unwrap_or(15);
        if interval == 0 || interval > 60 || 1440 % interval != 0 {
            return Err(PmsError::protocol(format!(
                "{op}: calendar.timeslot_size_in_minutes does not divide the day"
            )));
        }
        let (enabled, rules) = rules::from_settings(&s.online_bookings.unwrap_or_default());
        Ok(Settings {
            zone,
            interval,
            enabled,
            rules,
            now: answer.date.unwrap_or_else(Timestamp::now),
        })
    }

    /// The account's time zone (read once, then remembered).
    pub async fn zone(&self) -> Result<IanaZone, PmsError> {
        if let Some(z) = self.inner.zone.lock().ok().and_then(|g| g.clone()) {
            return Ok(z);
        }
        Ok(self.settings().await?.zone)
    }

    /// The ids of the practitioners with daily availabilities at the business, with those
    /// availabilities as weekly hours.
    async fn hours(&self) -> Result<Vec<PractitionerHours>, PmsError> {
        let op = "daily availabilities read";
        let path = format!("businesses/{}/daily_availabilities", self.business_seg());
        let list: Vec<wire::DailyAvailability> =
            self.all(op, &path, "daily_availabilities", &[]).await?;
        let mut by: BTreeMap<String, Vec<WeeklyWindow>> = BTreeMap::new();
        for d in list {
            if d.business
                .id()
                .is_some_and(|b| b != self.inner.cfg.business_id)
            {
                continue;
            }
            let Some(p) = d.practitioner.id() else {
                return Err(PmsError::protocol(format!(
                    "{op}: practitioner link missing"
                )));
            };
            let day = iso_weekday(d.day_of_week)
                .ok_or_else(|| PmsError::protocol(format!("{op}: day_of_week out of 1..=7")))?;
            let windows = by.entry(p).or_default();
            for a in d.availabilities {
                let (Ok(start), Ok(end)) = (
                    a.starts_at.parse::<ClockTime>(),
                    a.ends_at.parse::<ClockTime>(),
                ) else {
                    return Err(PmsError::protocol(format!(
                        "{op}: availabilities starts_at/ends_at not HH:MM"
                    )));
                };
                if end > start {
                    windows.push(WeeklyWindow::new(vec![day], start, end));
                }
            }
        }
        Ok(by
            .into_iter()
            .map(|(practitioner, sessions)| PractitionerHours {
                practitioner,
                sessions,
                breaks: Vec::new(),
            })
            .collect())
    }

    fn business_seg(&self) -> String {
        path_segment(&self.inner.cfg.business_id)
    }

    /// The practitioner's live appointments overlapping `[from, to)`.
    async fn appointments_between(
        &self,
        op: &'static str,
        practitioners: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<wire::IndividualAppointment>, PmsError> {
        if practitioners.is_empty() {
            return Ok(Vec::new());
        }
        let q = overlap_filter(practitioners, from, to);
        let list: Vec<wire::IndividualAppointment> = self
            .all(op, "individual_appointments", "individual_appointments", &q)
            .await?;
        Ok(list
            .into_iter()
            .filter(|a| a.is_live() && a.starts_at < to && a.ends_at > from)
            .collect())
    }

    async fn blocks_between(
        &self,
        op: &'static str,
        practitioners: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<wire::UnavailableBlock>, PmsError> {
        if practitioners.is_empty() {
            return Ok(Vec::new());
        }
        let q = overlap_filter(practitioners, from, to);
        let list: Vec<wire::UnavailableBlock> = self
            .all(op, "unavailable_blocks", "unavailable_blocks", &q)
            .await?;
        Ok(list
            .into_iter()
            .filter(|b| b.deleted_at.is_none() && b.starts_at < to && b.ends_at > from)
            .collect())
    }

    /// The live appointment of the patient whose notes carry `reference`, if any.
    pub async fn find_booking(
        &self,
        patient: &str,
        reference: &str,
    ) -> Result<Option<DiaryAppointment>, PmsError> {
        let op = "booking look-up";
        let q = [("q[]", format!("patient_id:={}", digits_only(patient, op)?))];
        let list: Vec<wire::IndividualAppointment> = self
            .all(op, "individual_appointments", "individual_appointments", &q)
            .await?;
        let zone = self.zone().await?;
        list.iter()
            .filter(|a| a.is_live() && reference_of(a.notes.as_deref()) == Some(reference))
            .min_by_key(|a| a.created_at)
            .map(|a| to_diary(a, zone.time_zone(), op))
            .transpose()
    }

    /// Cancel an appointment the Cliniko way (`PATCH …/cancel`, reason `50` "Other").
    pub async fn cancel_appointment(&self, id: &str, note: &str) -> Result<(), PmsError> {
        let op = "appointment cancel";
        let url = self.url(
            &format!("individual_appointments/{}/cancel", path_segment(id)),
            &[],
        )?;
        let body = serde_json::to_vec(&serde_json::json!({
            "cancellation_reason": 50,
            "cancellation_note": note,
        }))
        .map_err(|_| PmsError::protocol(format!("{op}: cannot encode the body")))?;
        self.send(op, Method::PATCH, url, Some(body), Retry::Safe)
            .await
            .map(|_| ())
    }

    async fn delete_appointment(&self, id: &str) -> Result<(), PmsError> {
        let url = self.url(
            &format!("individual_appointments/{}", path_segment(id)),
            &[],
        )?;
        match self
            .send("appointment delete", Method::DELETE, url, None, Retry::Safe)
            .await
        {
            Ok(_) | Err(PmsError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create once: the look-up runs before every attempt after the first (a lost answer may
    /// hide a create that went through).
    async fn create_once(
        &self,
        new: &NewAppointment,
        body: &[u8],
        zone: &IanaZone,
    ) -> Result<(DiaryAppointment, bool), PmsError> {
        let op = "appointment insert";
        let cfg = &self.inner.cfg;
        let mut waits = Backoff::from_std(cfg.backoff, MAX_BACKOFF)
            .retries(cfg.max_retries, || Jitter::new(rand::random::<f64>()));
        loop {
            let url = self.url("individual_appointments", &[])?;
            match self
                .send(op, Method::POST, url, Some(body.to_vec()), Retry::Never)
                .await
            {
                Ok(answer) => {
                    let a: wire::IndividualAppointment = wire::json(&answer.body, op)?;
                    return Ok((to_diary(&a, zone.time_zone(), op)?, true));
                }
                Err(e) if e.is_transient() || matches!(e, PmsError::Protocol { .. }) => {
                    let Some(wait) = waits.next() else {
                        return Err(e);
                    };
                    tokio::time::sleep(wait).await;
                    if let Some(found) = self.find_booking(&new.patient, &new.external_ref).await? {
                        return Ok((found, true));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `q[]` filters for the practitioners' records overlapping `[from, to)`.
fn overlap_filter(
    practitioners: &[String],
    from: Timestamp,
    to: Timestamp,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "q[]",
            format!("practitioner_id:={}", practitioners.join(",")),
        ),
        ("q[]", format!("starts_at:<{}", utc(to))),
        ("q[]", format!("ends_at:>{}", utc(from))),
    ]
}

/// An instant as Cliniko's filters want it: UTC, whole seconds, `Z`.
fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn iso_weekday(n: u8) -> Option<Weekday> {
    Some(match n {
        1 => Weekday::Mon,
        2 => Weekday::Tue,
        3 => Weekday::Wed,
        4 => Weekday::Thu,
        5 => Weekday::Fri,
        6 => Weekday::Sat,
        7 => Weekday::Sun,
        _ => return None,
    })
}

const ALL_WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn digits_only<'a>(id: &'a str, op: &str) -> Result<&'a str, PmsError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(PmsError::Invalid {
            kind: "id".into(),
            detail: format!("{op}: Cliniko ids are digits"),
        })
    }
}

/// The booking reference in an appointment's notes: the text after [`REF_PREFIX`] on its line.
///
/// ```
/// use slotbridge_pms::cliniko::reference_of;
/// assert_eq!(reference_of(Some("Check-up\nslotbridge-ref: HE-42")), Some("HE-42"));
/// assert_eq!(reference_of(Some("slotbridge-ref: HE-42\n")), Some("HE-42"));
/// assert_eq!(reference_of(Some("talked about slotbridge-ref: X")), None);
/// assert_eq!(reference_of(None), None);
/// ```
pub fn reference_of(notes: Option<&str>) -> Option<&str> {
    notes?
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(REF_PREFIX))
        .map(str::trim)
        .filter(|r| !r.is_empty())
}

/// The notes written with a booking: the booking's own, then the reference line.
fn notes_with_ref(notes: &str, reference: &str) -> String {
    let notes = notes.trim();
    if notes.is_empty() {
        format!("{REF_PREFIX}{reference}")
    } else {
        format!("{notes}\n{REF_PREFIX}{reference}")
    }
}

fn to_diary(
    a: &wire::IndividualAppointment,
    tz: &TimeZone,
    op: &str,
) -> Result<DiaryAppointment, PmsError> {
    let practitioner = a
        .practitioner
        .id()
        .ok_or_else(|| PmsError::protocol(format!("{op}: practitioner link missing")))?;
    let external_ref = reference_of(a.notes.as_deref()).map(str::to_owned);
    let notes = a
        .notes
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with(REF_PREFIX))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(DiaryAppointment {
        id: a.id.0.clone(),
        practitioner,
        start: a.starts_at.to_zoned_datetime(tz.clone()).datetime(),
        end: a.ends_at.to_zoned_datetime(tz.clone()).datetime(),
        reason: a.appointment_type.id(),
        patient: a.patient.id(),
        notes,
        source: if external_ref.is_some() {
            BookingSource::Online
        } else {
            BookingSource::Desk
        },
        external_ref,
        attendance: if a.did_not_arrive == Some(true) {
            Attendance::DidNotAttend
        } else {
            Attendance::Booked
        },
    })
}

/// A block cut at the practice's midnights into one [`DiaryBlock`] per local date.
fn to_blocks(b: &wire::UnavailableBlock, tz: &TimeZone, out: &mut Vec<DiaryBlock>) {
    let start = b.starts_at.to_zoned_datetime(tz.clone()).datetime();
    let end = b.ends_at.to_zoned_datetime(tz.clone()).datetime();
    let mut day = start.date();
    while day.at(0, 0, 0, 0) < end {
        let from = if day == start.date() {
            ClockTime::of(start)
        } else {
            ClockTime::from_minutes(0).expect("midnight")
        };
        let to = if day == end.date() {
            ClockTime::of(end)
        } else {
            ClockTime::END_OF_DAY
        };
        if to > from {
            out.push(DiaryBlock {
                id: b.id.0.clone(),
                practitioner: b.practitioner.id(),
                date: day,
                start: from,
                end: to,
                kind: BlockKind::Meeting,
            });
        }
        let Ok(next) = day.tomorrow() else { break };
        day = next;
    }
}

fn local_instant(dt: DateTime, tz: &TimeZone) -> Result<Timestamp, PmsError> {
    dt.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| PmsError::Invalid {
            kind: "time".into(),
            detail: format!("{dt}: {e}"),
        })
}

fn specialties(designation: Option<&str>) -> Vec<Specialty> {
    let d = designation.unwrap_or("").to_ascii_lowercase();
    let mut out = Vec::new();
    if d.contains("dentist") {
        out.push(Specialty::Dentist);
    }
    if d.contains("hygienist") {
        out.push(Specialty::Hygienist);
    }
    if d.contains("therapist") {
        out.push(Specialty::OralHealthTherapist);
    }
    out
}

fn to_patient(p: wire::Patient, op: &str) -> Result<Patient, PmsError> {
    let date_of_birth = p
        .date_of_birth
        .ok_or_else(|| PmsError::protocol(format!("{op}: date_of_birth missing")))?;
    let phone = |kind: &str| {
        p.patient_phone_numbers.as_ref().and_then(|ns| {
            ns.iter()
                .find(|n| n.phone_type.as_deref() == Some(kind))
                .and_then(|n| n.number.clone())
                .filter(|n| !n.is_empty())
        })
    };
    let some = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let address = some(p.address_1.clone()).map(|line1| Address {
        line1,
        suburb: p.city.clone().unwrap_or_default(),
        state: p.state.clone().unwrap_or_default(),
        postcode: p.post_code.clone().unwrap_or_default(),
    });
    let medicare = some(p.medicare.clone()).and_then(|number| {
        let irn = p
            .medicare_reference_number
            .as_deref()?
            .trim()
            .parse()
            .ok()?;
        Some(Medicare { number, irn })
    });
    Ok(Patient {
        id: p.id.0.clone(),
        mobile_phone: phone("Mobile"),
        home_phone: phone("Home"),
        first_name: p.first_name.unwrap_or_default(),
        last_name: p.last_name.unwrap_or_default(),
        date_of_birth,
        email: some(p.email),
        address,
        medicare,
    })
}

/// Digits of a phone number, an Australian `61` prefix written as the trunk `0`.
fn phone_digits(raw: &str) -> String {
    let d: String = raw.chars().filter(char::is_ascii_digit).collect();
    match d.strip_prefix("61") {
        Some(rest) if rest.len() == 9 => format!("0{rest}"),
        _ => d,
    }
}

/// The change-polling cursor: the last `updated_at` seen, and the records seen at exactly that
/// instant (filters are `>=`, so a record changed later in the same second is not missed).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    at: Timestamp,
    seen: BTreeSet<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        let seen: Vec<&str> = self.seen.iter().map(String::as_str).collect();
        format!("v1;{};{}", utc(self.at), seen.join(","))
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, ';');
        if parts.next()? != "v1" {
            return None;
        }
        let at = parts.next()?.parse().ok()?;
        let seen = parts
            .next()?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self { at, seen })
    }
}

/// The resources polled for changes: path, list key, the subject's prefix and the change type.
const POLLED: &[(&str, &str, &str)] = &[
    (
        "individual_appointments",
        "individual_appointments",
        "appointment",
    ),
    (
        "individual_appointments/cancelled",
        "individual_appointments",
        "appointment",
    ),
    (
        "individual_appointments/deleted",
        "individual_appointments",
        "appointment",
    ),
    ("unavailable_blocks", "unavailable_blocks", "block"),
];

impl PmsConnector for ClinikoConnector {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // `PATCH /individual_appointments/:id/cancel` ([`ClinikoConnector::cancel_appointment`]).
            can_cancel_online: true,
            can_search_patients: true,
            webhooks: false,
            // Emulated by polling `updated_at`.
            change_feed: true,
            max_horizon_days: 90,
        }
    }

    async fn read_setup(&self) -> Result<PracticeSetup, PmsError> {
        let Settings {
            zone: timezone,
            interval: interval_minutes,
            enabled,
            rules,
            now,
        } = self.settings().await?;
        let b: wire::Business = self
            .get_one(
                "business read",
                &format!("businesses/{}", self.business_seg()),
            )
            .await?;
        let all: Vec<wire::Practitioner> = self
            .all(
                "practitioners read",
                &format!("businesses/{}/practitioners", self.business_seg()),
                "practitioners",
                &[],
            )
            .await?;
        let types: Vec<wire::AppointmentType> = self
            .all(
                "appointment types read",
                "appointment_types",
                "appointment_types",
                &[],
            )
            .await?;
        let shown_types: BTreeMap<String, &wire::AppointmentType> = types
            .iter()
            .filter(|t| {
                t.show_in_online_bookings == Some(true) && t.max_attendees.unwrap_or(1) <= 1
            })
            .map(|t| (t.id.0.clone(), t))
            .collect();
        let mut offered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut online_booking = Vec::new();
        // Every practitioner's types, shown online or not: a hidden practitioner's rules stay
        // in the reasons (`to_snapshot` publishes online practitioners only), so diagnostics can
        // tell "not shown in online bookings" from "offers no type shown online".
        for p in &all {
            let theirs: Vec<wire::AppointmentType> = self
                .all(
                    "practitioner types read",
                    &format!("practitioners/{}/appointment_types", path_segment(&p.id.0)),
                    "appointment_types",
                    &[],
                )
                .await?;
            let ids: BTreeSet<String> = theirs
                .into_iter()
                .map(|t| t.id.0)
                .filter(|id| shown_types.contains_key(id))
                .collect();
            let shortest = ids
                .iter()
                .filter_map(|id| shown_types.get(id).map(|t| t.duration_in_minutes))
                .min();
            if let Some(duration_minutes) = shortest
                && p.show_in_online_bookings == Some(true)
            {
                online_booking.push(OnlineBookingEntry {
                    practitioner: p.id.0.clone(),
                    duration_minutes,
                });
            }
            offered.insert(p.id.0.clone(), ids);
        }
        let whole_day = WeeklyWindow::new(
            ALL_WEEK.to_vec(),
            ClockTime::from_minutes(0).expect("midnight"),
            ClockTime::END_OF_DAY,
        );
        let reasons = types
            .iter()
            .map(|t| PmsReason {
                id: t.id.0.clone(),
                name: t.name.clone().unwrap_or_default(),
                marketing: shown_types.contains_key(&t.id.0),
                providers: offered
                    .iter()
                    .filter(|(_, ids)| shown_types.contains_key(&t.id.0) && ids.contains(&t.id.0))
                    .map(|(p, _)| ReasonProviderRule {
                        practitioner: p.clone(),
                        duration_minutes: t.duration_in_minutes,
                        windows: vec![whole_day.clone()],
                    })
                    .collect(),
            })
            .collect();
        // Nothing is bookable online when the account or the business is off online bookings.
        if !enabled || b.show_in_online_bookings == Some(false) {
            online_booking.clear();
        }
        let mut setup = PracticeSetup {
            site: Self::site_slug(&self.inner.cfg.business_id)?,
            name: b
                .display_name
                .filter(|n| !n.trim().is_empty())
                .or(b.business_name)
                .unwrap_or_default(),
            timezone,
            phone: String::new(),
            interval_minutes,
            stacking: true,
            practitioners: all
                .into_iter()
                .map(|p| PmsPractitioner {
                    specialties: specialties(p.designation.as_deref()),
                    id: p.id.0,
                    title: p.title.unwrap_or_default(),
                    first_name: p.first_name.unwrap_or_default(),
                    last_name: p.last_name.unwrap_or_default(),
                })
                .collect(),
            online_booking,
            reasons,
            online_rules: rules,
        };
        if setup.online_rules.max_days_ahead.is_none() && !setup.online_booking.is_empty() {
            setup.online_rules.max_days_ahead = self.days_ahead(&setup, now).await?;
        }
        Ok(setup)
    }

    async fn read_diary(&self, from: Date, to: Date) -> Result<Diary, PmsError> {
        if to <= from {
            return Err(PmsError::Invalid {
                kind: "range".into(),
                detail: format!("to ({to}) must be after from ({from})"),
            });
        }
        let zone = self.zone().await?;
        let tz = zone.time_zone();
        let hours = self.hours().await?;
        let ids: Vec<String> = hours.iter().map(|h| h.practitioner.clone()).collect();
        let start = local_instant(from.at(0, 0, 0, 0), tz)?;
        let end = local_instant(to.at(0, 0, 0, 0), tz)?;
        let mut blocks = Vec::new();
        for b in self
            .blocks_between("unavailable blocks read", &ids, start, end)
            .await?
        {
            to_blocks(&b, tz, &mut blocks);
        }
        blocks.retain(|b| b.date >= from && b.date < to);
        let appointments = self
            .appointments_between("appointments read", &ids, start, end)
            .await?
            .iter()
            .map(|a| to_diary(a, tz, "appointments read"))
            .collect::<Result<_, _>>()?;
        Ok(Diary {
            hours,
            blocks,
            closed_dates: Vec::new(),
            appointments,
        })
    }

    async fn read_appointment(&self, id: &str) -> Result<Option<DiaryAppointment>, PmsError> {
        let op = "appointment read";
        let id = digits_only(id, op)?;
        let zone = self.zone().await?;
        match self
            .get_one::<wire::IndividualAppointment>(op, &format!("individual_appointments/{id}"))
            .await
        {
            Ok(a) if a.is_live() => to_diary(&a, zone.time_zone(), op).map(Some),
            Ok(_) | Err(PmsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn insert_appointment(&self, new: &NewAppointment) -> Result<Inserted, PmsError> {
        let op = "appointment insert";
        let reference = new.external_ref.trim();
        if reference.is_empty() || reference.contains(['\n', '\r']) {
            return Err(PmsError::Invalid {
                kind: "external-ref".into(),
                detail: "an online insert needs a one-line external reference".into(),
            });
        }
        let Some(kind) = new.reason.as_deref() else {
            return Err(PmsError::Invalid {
                kind: "reason".into(),
                detail: format!("{op}: Cliniko needs an appointment type"),
            });
        };
        let patient = digits_only(&new.patient, op)?;
        let practitioner = digits_only(&new.practitioner, op)?;
        let kind = digits_only(kind, op)?;
        if let Some(existing) = self.find_booking(patient, reference).await? {
            return Ok(Inserted {
                appointment: existing,
                created: false,
            });
        }
        let zone = self.zone().await?;
        let tz = zone.time_zone();
        let start = local_instant(new.start, tz)?;
        let end = local_instant(new.end, tz)?;
        if end <= start {
            return Err(PmsError::Invalid {
                kind: "time".into(),
                detail: format!("{op}: end must be after start"),
            });
        }
        let who = [practitioner.to_owned()];
        if !self
            .appointments_between(op, &who, start, end)
            .await?
            .is_empty()
        {
            return Err(PmsError::Conflict {
                kind: "overlaps-appointment".into(),
                detail: format!("{op}: the slot holds another appointment"),
            });
        }
        if !self.blocks_between(op, &who, start, end).await?.is_empty() {
            return Err(PmsError::Conflict {
                kind: "overlaps-block".into(),
                detail: format!("{op}: the slot is in an unavailable block"),
            });
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "starts_at": utc(start),
            "ends_at": utc(end),
            "patient_id": patient,
            "practitioner_id": practitioner,
            "appointment_type_id": kind,
            "business_id": self.inner.cfg.business_id,
            "notes": notes_with_ref(&new.notes, reference),
        }))
        .map_err(|_| PmsError::protocol(format!("{op}: cannot encode the body")))?;
        let (appointment, created) = self.create_once(new, &body, &zone).await?;
        // Cliniko accepts overlapping appointments: one made at the desk since the check above
        // would now sit beside ours. Ask, and give the slot back if so.
        let conflicts = self
            .get_one::<wire::Conflicts>(
                "appointment conflicts read",
                &format!(
                    "individual_appointments/{}/conflicts",
                    path_segment(&appointment.id)
                ),
            )
            .await;
        match conflicts {
            Ok(c) if c.conflicts.exist => {
                self.delete_appointment(&appointment.id).await?;
                Err(PmsError::Conflict {
                    kind: "overlaps-appointment".into(),
                    detail: format!("{op}: another booking took the slot meanwhile"),
                })
            }
            Ok(_) => Ok(Inserted {
                appointment,
                created,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "Cliniko conflicts check failed; the appointment stays");
                Ok(Inserted {
                    appointment,
                    created,
                })
            }
        }
    }

    async fn create_patient(&self, new: &NewPatient) -> Result<Patient, PmsError> {
        let op = "patient create";
        let mut phones = Vec::new();
        if let Some(m) = &new.mobile_phone {
            phones.push(serde_json::json!({"phone_type": "Mobile", "number": m}));
        }
        if let Some(h) = &new.home_phone {
            phones.push(serde_json::json!({"phone_type": "Home", "number": h}));
        }
        let mut body = serde_json::json!({
            "first_name": new.first_name,
            "last_name": new.last_name,
            "date_of_birth": new.date_of_birth.to_string(),
        });
        let o = body.as_object_mut().expect("an object");
        if let Some(e) = &new.email {
            o.insert("email".into(), e.clone().into());
        }
        if !phones.is_empty() {
            o.insert("patient_phone_numbers".into(), phones.into());
        }
        if let Some(a) = &new.address {
            o.insert("address_1".into(), a.line1.clone().into());
            o.insert("city".into(), a.suburb.clone().into());
            o.insert("state".into(), a.state.clone().into());
            o.insert("post_code".into(), a.postcode.clone().into());
        }
        if let Some(m) = &new.medicare {
            o.insert("medicare".into(), m.number.clone().into());
            o.insert("medicare_reference_number".into(), m.irn.to_string().into());
        }
        let bytes = serde_json::to_vec(&body)
            .map_err(|_| PmsError::protocol(format!("{op}: cannot encode the body")))?;
        let url = self.url("patients", &[])?;
        // Not idempotent: sent again only after a 429 (which says it was not done).
        let answer = self
            .send(op, Method::POST, url, Some(bytes), Retry::Never)
            .await?;
        to_patient(wire::json(&answer.body, op)?, op)
    }

    async fn search_patients(&self, query: &PatientQuery) -> Result<Vec<Patient>, PmsError> {
        let op = "patient search";
        let mut q = Vec::new();
        if let Some(v) = &query.first_name {
            q.push(("q[]", format!("first_name:={v}")));
        }
        if let Some(v) = &query.last_name {
            q.push(("q[]", format!("last_name:={v}")));
        }
        if let Some(v) = &query.date_of_birth {
            q.push(("q[]", format!("date_of_birth:={v}")));
        }
        if let Some(v) = &query.email {
            q.push(("q[]", format!("email:={v}")));
        }
        if q.is_empty() {
            if query.phone.is_some() {
                // Cliniko documents no filter on phone numbers, and listing every patient to
                // compare them would spend the key's budget: a phone alone finds nothing here,
                // and the other searches (date of birth, email, name) carry the match.
                return Ok(Vec::new());
            }
            return Err(PmsError::Invalid {
                kind: "query".into(),
                detail: "give at least one search criterion".into(),
            });
        }
        let list: Vec<wire::Patient> = self.all(op, "patients", "patients", &q).await?;
        let want_phone = query.phone.as_deref().map(phone_digits);
        Ok(list
            .into_iter()
            .filter_map(|p| to_patient(p, op).ok())
            .filter(|p| {
                want_phone.as_deref().is_none_or(|w| {
                    [&p.mobile_phone, &p.home_phone]
                        .iter()
                        .any(|n| n.as_deref().map(phone_digits).as_deref() == Some(w))
                })
            })
            .collect())
    }

    async fn read_changes(&self, since: Option<&str>) -> Result<Changes, PmsError> {
        let op = "changes poll";
        let Some(since) = since else {
            // No history to replay: start from the server's own clock.
            let answer = self.get(op, "settings/public", &[]).await?;
            let at = answer.date.unwrap_or_else(Timestamp::now);
            let cursor = Cursor {
                at,
                seen: BTreeSet::new(),
            };
            return Ok(Changes::Page(ChangePage {
                changes: Vec::new(),
                next_cursor: cursor.encode(),
            }));
        };
        let Some(cursor) = Cursor::decode(since) else {
            return Ok(Changes::CursorExpired);
        };
        {
            let mut polled = self
                .inner
                .changes_polled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            if polled.is_some_and(|at| now.duration_since(at) < self.inner.cfg.changes_every) {
                // Within the key's budget: nothing new until the next poll is due.
                return Ok(Changes::Page(ChangePage {
                    changes: Vec::new(),
                    next_cursor: since.to_owned(),
                }));
            }
            *polled = Some(now);
        }
        let after = ("q[]", format!("updated_at:>={}", utc(cursor.at)));
        let business = (
            "q[]",
            format!("business_id:={}", self.inner.cfg.business_id),
        );
        let mut found: Vec<(Timestamp, String, &'static str, String)> = Vec::new();
        let mut data: HashMap<(String, String), serde_json::Value> = HashMap::new();
        let zone = self.zone().await?;
        for (path, key, thing) in POLLED {
            let q = [after.clone(), business.clone()];
            let list: Vec<wire::IndividualAppointmentOrBlock> = self.all(op, path, key, &q).await?;
            for r in list {
                let kind = match (*thing, &r) {
                    ("appointment", r) if r.cancelled_at.is_some() || r.deleted_at.is_some() => {
                        "appointment.deleted"
                    }
                    ("appointment", r) if r.created_at == Some(r.updated_at) => {
                        "appointment.created"
                    }
                    ("appointment", _) => "appointment.updated",
                    _ => "block.changed",
                };
                let subject = format!("{thing}/{}", r.id.0);
                let print = r.fingerprint();
                // As the Exact-style feed: an appointment's id and local times (no patient), so
                // a change made or removed within one day re-reads only that day.
                if let (true, Some(start), Some(end)) =
                    (*thing == "appointment", r.starts_at, r.ends_at)
                {
                    let local = |t: Timestamp| {
                        t.to_zoned_datetime(zone.time_zone().clone())
                            .strftime("%Y-%m-%dT%H:%M:%S%:z")
                            .to_string()
                    };
                    data.insert(
                        (subject.clone(), print.clone()),
                        serde_json::json!({"id": r.id.0, "start": local(start), "end": local(end)}),
                    );
                }
                found.push((r.updated_at, subject, kind, print));
            }
        }
        let business_seg = self.business_seg();
        // (path, the list's key, subject, change kind). An archived appointment type leaves
        // `appointment_types` for `appointment_types/archived` (archiving sets its
        // `updated_at`): without that list, archiving a type at the desk would reach the
        // marketplace only at the next full read.
        let setup_paths: [(String, &str, &str, &'static str); 4] = [
            (
                format!("businesses/{business_seg}/daily_availabilities"),
                "daily_availabilities",
                "sessions",
                "sessions.changed",
            ),
            (
                format!("businesses/{business_seg}/practitioners"),
                "practitioners",
                "practitioner",
                "setup.changed",
            ),
            (
                "appointment_types".to_owned(),
                "appointment_types",
                "type",
                "setup.changed",
            ),
            (
                "appointment_types/archived".to_owned(),
                "appointment_types",
                "type",
                "setup.changed",
            ),
        ];
        for (path, key, thing, kind) in setup_paths {
            let list: Vec<wire::Touched> = self
                .all(op, &path, key, std::slice::from_ref(&after))
                .await?;
            for r in list {
                found.push((
                    r.updated_at,
                    format!("{thing}/{}", r.id.0),
                    kind,
                    String::new(),
                ));
            }
        }
        // A record is seen at an instant in a state: `subject#fingerprint`.
        let seen_key = |subject: &str, print: &str| format!("{subject}#{print}");
        found.retain(|(at, subject, _, print)| {
            !(*at == cursor.at && cursor.seen.contains(&seen_key(subject, print)))
        });
        found.sort();
        // One record in one state once (an appointment may be in two lists).
        found.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.3 == b.3);
        let mut next = cursor.clone();
        for (at, subject, _, print) in &found {
            if *at > next.at {
                next.at = *at;
                next.seen.clear();
            }
            if *at == next.at {
                next.seen.insert(seen_key(subject, print));
            }
        }
        let changes = found
            .into_iter()
            .map(|(at, subject, kind, print)| ChangeEntry {
                seq: u64::try_from(at.as_microsecond()).unwrap_or(0),
                kind: kind.to_owned(),
                data: data.remove(&(subject.clone(), print)).unwrap_or_default(),
                subject,
                time: utc(at),
            })
            .collect();
        Ok(Changes::Page(ChangePage {
            changes,
            next_cursor: next.encode(),
        }))
    }

    async fn register_webhook(
        &self,
        _url: &str,
        _secret: &SecretString,
    ) -> Result<String, PmsError> {
        Err(PmsError::Unsupported {
            operation: "webhook register".into(),
        })
    }
}

/// `s` as one URL path segment (unreserved characters kept, the rest percent-encoded).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_never_allows_more_than_its_budget_in_a_window() {
        let q = RateLimit::CLINIKO.quota();
        let burst = q.burst_size().get();
        let period = q.replenish_interval();
        let in_a_minute =
            burst + u32::try_from(Duration::from_secs(60).as_nanos() / period.as_nanos()).unwrap();
        assert!(in_a_minute <= 200, "{in_a_minute}");
        assert!(in_a_minute >= 195, "{in_a_minute}");
    }

    #[test]
    fn a_cursor_reads_back() {
        let c = Cursor {
            at: "2026-12-01T10:00:00Z".parse().unwrap(),
            seen: ["appointment/1".to_owned(), "block/2".to_owned()].into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("garbage"), None);
    }

    #[test]
    fn a_block_over_midnight_is_cut_per_local_date() {
        let tz = TimeZone::get("Australia/Sydney").unwrap();
        let b = wire::UnavailableBlock {
            id: wire::Id("9".into()),
            // 22:00 on the 1st to 02:00 on the 2nd, Sydney (+11:00).
            starts_at: "2026-12-01T11:00:00Z".parse().unwrap(),
            ends_at: "2026-12-01T15:00:00Z".parse().unwrap(),
            deleted_at: None,
            practitioner: wire::LinkRef::default(),
            updated_at: None,
        };
        let mut out = Vec::new();
        to_blocks(&b, &tz, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|b| (b.date.to_string(), b.start.to_string(), b.end.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("2026-12-01".into(), "22:00".into(), "24:00".into()),
                ("2026-12-02".into(), "00:00".into(), "02:00".into())
            ]
        );
    }

    #[test]
    fn phones_compare_by_digits() {
        assert_eq!(phone_digits("+61 412 345 678"), "0412345678");
        assert_eq!(phone_digits("0412 345 678"), "0412345678");
    }
}
