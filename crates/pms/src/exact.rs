//! The Exact-style API client.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::Retryable as _;
use bytes::Bytes;
use jiff::civil::Date;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use slotbridge_domain::backoff::{Backoff, Jitter, retry_wait};
use slotbridge_domain::practice::{Diary, DiaryAppointment, IanaZone, PracticeSetup, SiteSlug};
use slotbridge_redact::outbound::{BodyError, MAX_RESPONSE_BYTES, read_capped};
use tokio::sync::Semaphore;

use crate::parse::{self, Page};
use crate::types::{
    Capabilities, Changes, Inserted, NewAppointment, NewPatient, Patient, PatientQuery,
};
use crate::{PmsConnector, PmsError, safe};

/// How an [`ExactConnector`] reaches one practice.
#[derive(Clone)]
pub struct ExactConfig {
    /// The PMS's base URL, e.g. `http://127.0.0.1:7300` (the API is under `/api/v1`).
    pub base_url: url::Url,
    /// The practice's site slug.
    pub site: SiteSlug,
    /// The practice's API key.
    pub api_key: SecretString,
    /// Per-request timeout (default 10 s).
    pub timeout: Duration,
    /// Retries after the first attempt, for requests safe to repeat (default 3).
    pub max_retries: u32,
    /// First backoff; doubles per retry with jitter (default 200 ms).
    pub backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned (default 30 s).
    pub max_retry_after: Duration,
    /// Requests in flight to this site at most (default 4).
    pub concurrency: usize,
    /// Told of every attempt: operation (`GET diary`), outcome (`ok` or the error's kind) and
    /// how long it took. For metrics.
    pub observer: Option<CallObserver>,
}

/// Receives `(operation, outcome, elapsed)` for every request attempt.
pub type CallObserver = Arc<dyn Fn(&str, &str, Duration) + Send + Sync>;

impl ExactConfig {
    /// A configuration with the defaults.
    pub fn new(base_url: url::Url, site: SiteSlug, api_key: SecretString) -> Self {
        Self {
            base_url,
            site,
            api_key,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(30),
            concurrency: 4,
            observer: None,
        }
    }
}

impl std::fmt::Debug for ExactConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactConfig")
            .field("base_url", &self.base_url.as_str())
            .field("site", &self.site)
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("concurrency", &self.concurrency)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The longest wait between two attempts of a request (before a `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The HTTP client for PMS connectors: it follows no redirect (the `x-api-key` header must not
/// go to wherever a `Location` points); answers are read up to
/// [`MAX_RESPONSE_BYTES`](slotbridge_redact::outbound::MAX_RESPONSE_BYTES).
///
/// # Panics
/// When the TLS backend cannot be initialised, as `reqwest::Client::new` does.
pub fn http_client() -> reqwest::Client {
    slotbridge_redact::outbound::client_builder()
        .build()
        .expect("the HTTP client's TLS backend initialises")
}

/// The connector to one practice's Exact-style PMS.
#[derive(Debug, Clone)]
pub struct ExactConnector {
    cfg: Arc<ExactConfig>,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    zone: Arc<Mutex<Option<IanaZone>>>,
}

/// Whether a request may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Safe,
    Never,
}

impl ExactConnector {
    /// A connector with its own HTTP client ([`http_client`]).
    pub fn new(cfg: ExactConfig) -> Self {
        Self::with_client(cfg, http_client())
    }

    /// A connector sharing an HTTP client (connection pool) with others. Build it with
    /// [`http_client`]: a client that follows redirects would send the API key on.
    pub fn with_client(cfg: ExactConfig, client: reqwest::Client) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            cfg: Arc::new(cfg),
            client,
            zone: Arc::new(Mutex::new(None)),
        }
    }

    /// The site this connector talks to.
    pub fn site(&self) -> &SiteSlug {
        &self.cfg.site
    }

    fn url(&self, tail: &str) -> Result<url::Url, PmsError> {
        self.cfg
            .base_url
            .join(&format!("/api/v1/sites/{}/{tail}", self.cfg.site))
            .map_err(|e| PmsError::protocol(format!("base_url: {e}")))
    }

    /// One request with timeouts, the concurrency limit, and retries where `retry` allows. `op`
    /// names the operation in errors (`patient search`): never the URL, which may carry the query.
    ///
    /// The retries are `backon`'s loop over [`Backoff::retries`]: `backoff` doubling up to 10 s,
    /// each wait between half and all of it (the jitter drawn here), and a `Retry-After` up to
    /// `max_retry_after` waited for instead ([`retry_wait`]); a longer one fails the call.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        tail: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        retry: Retry,
    ) -> Result<(u16, Bytes), PmsError> {
        let url = self.url(tail)?;
        let retries = match retry {
            Retry::Safe => self.cfg.max_retries,
            Retry::Never => 0,
        };
        let waits = Backoff::from_std(self.cfg.backoff, MAX_BACKOFF)
            .retries(retries, || Jitter::new(rand::random::<f64>()));
        let attempt = AtomicU32::new(0);
        let once = || async {
            attempt.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let result = self
                .once(op, method.clone(), url.clone(), query, body.clone())
                .await;
            if let Some(observe) = &self.cfg.observer {
                let operation = format!("{method} {}", tail.split('/').next().unwrap_or(tail));
                let outcome = result.as_ref().map_or_else(PmsError::kind, |_| "ok");
                observe(&operation, outcome, started.elapsed());
            }
            result
        };
        once.retry(waits)
            .sleep(tokio::time::sleep)
            .when(PmsError::is_transient)
            .adjust(|err, scheduled| {
                let asked = match err {
                    PmsError::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                };
                retry_wait(scheduled, asked, self.cfg.max_retry_after)
            })
            .notify(|err, wait| {
                let attempt = attempt.load(Ordering::Relaxed);
                tracing::debug!(site = %self.cfg.site, op, attempt, error = %err, ?wait, "retrying PMS request");
            })
            .await
    }

    async fn once(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), PmsError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PmsError::Unavailable {
                detail: format!("{op}: connector closed"),
            })?;
        let mut req = self
            .client
            .request(method, url)
            .header("x-api-key", self.cfg.api_key.expose_secret())
            .header("accept", "application/json")
            .timeout(self.cfg.timeout)
            .query(query);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| safe::transport(op, &e.without_url()))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_capped(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::Transport(e) => safe::transport(op, &e.without_url()),
                too_large => PmsError::Protocol {
                    detail: format!("{op}: {too_large}"),
                },
            })?;
        if (200..300).contains(&status) {
            Ok((status, bytes))
        } else {
            Err(parse::parse_error(status, &bytes, retry_after.as_deref()).during(op))
        }
    }

    async fn get(
        &self,
        op: &'static str,
        tail: &str,
        query: &[(&str, String)],
    ) -> Result<Bytes, PmsError> {
        Ok(self
            .send(op, Method::GET, tail, query, None, Retry::Safe)
            .await?
            .1)
    }

    /// Read every page of a list.
    async fn all<T>(
        &self,
        op: &'static str,
        tail: &str,
        query: &[(&str, String)],
        parse: impl Fn(&[u8]) -> Result<Page<T>, PmsError>,
    ) -> Result<Vec<T>, PmsError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut q = query.to_vec();
            q.push(("limit", "500".into()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = parse(&self.get(op, tail, &q).await?).map_err(|e| e.during(op))?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                Some(_) => {
                    return Err(PmsError::protocol(format!(
                        "{op}: the cursor does not advance"
                    )));
                }
                None => return Ok(out),
            }
        }
        Err(PmsError::protocol(format!("{op}: too many pages")))
    }

    /// The practice's time zone (read once, then remembered).
    pub async fn zone(&self) -> Result<IanaZone, PmsError> {
        if let Some(z) = self.zone.lock().ok().and_then(|g| g.clone()) {
            return Ok(z);
        }
        let op = "practice read";
        let info = parse::parse_practice(&self.get(op, "practice", &[]).await?)
            .map_err(|e| e.during(op))?;
        let zone = IanaZone::parse(&info.timezone)
            .map_err(|e| PmsError::protocol(format!("practice.timezone: {e}")))?;
        if let Ok(mut g) = self.zone.lock() {
            *g = Some(zone.clone());
        }
        Ok(zone)
    }
}

impl PmsConnector for ExactConnector {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            can_cancel_online: false,
            can_search_patients: true,
            webhooks: true,
            change_feed: true,
            max_horizon_days: 90,
        }
    }

    async fn read_setup(&self) -> Result<PracticeSetup, PmsError> {
        let op = "practice read";
        let info = parse::parse_practice(&self.get(op, "practice", &[]).await?)
            .map_err(|e| e.during(op))?;
        let timezone = IanaZone::parse(&info.timezone)
            .map_err(|e| PmsError::protocol(format!("practice.timezone: {e}")))?;
        if let Ok(mut g) = self.zone.lock() {
            *g = Some(timezone.clone());
        }
        let practitioners = self
            .all(
                "practitioners read",
                "practitioners",
                &[],
                parse::parse_practitioners,
            )
            .await?;
        let online_booking = self
            .all(
                "online-booking read",
                "online-booking",
                &[],
                parse::parse_online_booking,
            )
            .await?;
        let op = "web-setup read";
        let web = parse::parse_web_setup(&self.get(op, "web-setup", &[]).await?)
            .map_err(|e| e.during(op))?;
        Ok(PracticeSetup {
            site: self.cfg.site.clone(),
            name: info.name,
            timezone,
            phone: info.phone,
            interval_minutes: info.interval_minutes,
            stacking: web.stacking,
            practitioners,
            online_booking,
            reasons: web.reasons,
            online_rules: Default::default(),
        })
    }

    async fn read_diary(&self, from: Date, to: Date) -> Result<Diary, PmsError> {
        if to <= from {
            return Err(PmsError::Invalid {
                kind: "range".into(),
                detail: format!("to ({to}) must be after from ({from})"),
            });
        }
        let zone = self.zone().await?;
        let tz = zone.time_zone().clone();
        let hours = self
            .all("sessions read", "sessions", &[], parse::parse_sessions)
            .await?;
        let range = [("from", from.to_string()), ("to", to.to_string())];
        let blocks = self
            .all("blocks read", "blocks", &range, |b| {
                parse::parse_blocks(b, &tz)
            })
            .await?;
        let closed_dates = self
            .all(
                "closed-dates read",
                "closed-dates",
                &[],
                parse::parse_closed_dates,
            )
            .await?
            .into_iter()
            .filter(|d| *d >= from && *d < to)
            .collect();
        let mut appointments = Vec::new();
        let mut chunk_start = from;
        while chunk_start < to {
            let chunk_end = chunk_start
                .checked_add(jiff::Span::new().days(90))
                .unwrap_or(to)
                .min(to);
            let q = [
                ("from", chunk_start.to_string()),
                ("to", chunk_end.to_string()),
            ];
            appointments.extend(
                self.all("appointments read", "appointments", &q, |b| {
                    parse::parse_appointments(b, &tz)
                })
                .await?,
            );
            chunk_start = chunk_end;
        }
        Ok(Diary {
            hours,
            blocks,
            closed_dates,
            appointments,
        })
    }

    async fn read_appointment(&self, id: &str) -> Result<Option<DiaryAppointment>, PmsError> {
        let op = "appointment read";
        if id.is_empty() || id == "." || id == ".." {
            return Err(PmsError::Invalid {
                kind: "id".into(),
                detail: format!("{op}: an appointment id is required"),
            });
        }
        let zone = self.zone().await?;
        let tail = format!("appointments/{}", path_segment(id));
        match self.get(op, &tail, &[]).await {
            Ok(bytes) => parse::parse_appointment(&bytes, zone.time_zone())
                .map(Some)
                .map_err(|e| e.during(op)),
            Err(PmsError::NotFound { .. }) => {
                // The API answers 404 for an unknown site too, and its detail is not ours to
                // repeat: the site answering tells that the appointment is what is missing.
                self.get("practice read", "practice", &[]).await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn insert_appointment(&self, new: &NewAppointment) -> Result<Inserted, PmsError> {
        if new.external_ref.trim().is_empty() {
            return Err(PmsError::Invalid {
                kind: "external-ref".into(),
                detail: "an online insert needs an external reference".into(),
            });
        }
        let zone = self.zone().await?;
        let tz = zone.time_zone();
        let instant = |dt: jiff::civil::DateTime| {
            dt.to_zoned_datetime(tz.clone())
                .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
                .map_err(|e| PmsError::Invalid {
                    kind: "time".into(),
                    detail: format!("{dt}: {e}"),
                })
        };
        let body = serde_json::json!({
            "practitioner": new.practitioner,
            "start": instant(new.start)?,
            "end": instant(new.end)?,
            "reason": new.reason,
            "patient": new.patient,
            "notes": new.notes,
            "external_ref": new.external_ref,
        });
        let bytes = serde_json::to_vec(&body)
            .map_err(|_| PmsError::protocol("appointment insert: cannot encode the body"))?;
        // Idempotent on the external reference, so safe to retry.
        let (status, resp) = self
            .send(
                "appointment insert",
                Method::POST,
                "appointments",
                &[],
                Some(bytes),
                Retry::Safe,
            )
            .await?;
        let appointment =
            parse::parse_appointment(&resp, tz).map_err(|e| e.during("appointment insert"))?;
        Ok(Inserted {
            appointment,
            created: status == 201,
        })
    }

    async fn create_patient(&self, new: &NewPatient) -> Result<Patient, PmsError> {
        let bytes = serde_json::to_vec(new)
            .map_err(|_| PmsError::protocol("patient create: cannot encode the body"))?;
        // Not idempotent: a retry could create a second file.
        let (_, resp) = self
            .send(
                "patient create",
                Method::POST,
                "patients",
                &[],
                Some(bytes),
                Retry::Never,
            )
            .await?;
        parse::parse_patient(&resp).map_err(|e| e.during("patient create"))
    }

    async fn search_patients(&self, query: &PatientQuery) -> Result<Vec<Patient>, PmsError> {
        let pairs = query.pairs();
        if pairs.is_empty() {
            return Err(PmsError::Invalid {
                kind: "query".into(),
                detail: "give at least one search criterion".into(),
            });
        }
        // The query holds the patient's details: errors name the operation, never the URL.
        self.all("patient search", "patients", &pairs, parse::parse_patients)
            .await
    }

    async fn read_changes(&self, since: Option<&str>) -> Result<Changes, PmsError> {
        let mut q = vec![("limit", "500".to_owned())];
        if let Some(s) = since {
            q.push(("since", s.to_owned()));
        }
        match self.get("change feed read", "changes", &q).await {
            Ok(bytes) => Ok(Changes::Page(
                parse::parse_changes(&bytes).map_err(|e| e.during("change feed read"))?,
            )),
            Err(PmsError::Invalid { kind, .. }) if kind == "cursor-expired" => {
                Ok(Changes::CursorExpired)
            }
            Err(e) => Err(e),
        }
    }

    async fn register_webhook(&self, url: &str, secret: &SecretString) -> Result<String, PmsError> {
        // One webhook per URL: a restart (or a new secret) replaces ours instead of piling up
        // against the site's limit.
        let existing = self.get("webhooks read", "webhooks", &[]).await?;
        for old in parse::parse_webhooks(&existing).map_err(|e| e.during("webhooks read"))? {
            if old.url == url {
                self.send(
                    "webhook delete",
                    Method::DELETE,
                    &format!("webhooks/{}", old.id),
                    &[],
                    None,
                    Retry::Safe,
                )
                .await?;
            }
        }
        let body = serde_json::json!({ "url": url, "secret": secret.expose_secret() });
        let bytes = serde_json::to_vec(&body)
            .map_err(|_| PmsError::protocol("webhook register: cannot encode the body"))?;
        let (_, resp) = self
            .send(
                "webhook register",
                Method::POST,
                "webhooks",
                &[],
                Some(bytes),
                Retry::Never,
            )
            .await?;
        parse::parse_webhook_id(&resp).map_err(|e| e.during("webhook register"))
    }
}

/// `s` as one URL path segment: every byte but the unreserved characters percent-encoded, so an
/// id can neither leave its segment nor add a query.
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
    use super::path_segment;

    #[test]
    fn a_path_segment_keeps_unreserved_characters_and_encodes_the_rest() {
        assert_eq!(path_segment("A1234"), "A1234");
        assert_eq!(path_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(path_segment("../practice"), "..%2Fpractice");
        assert_eq!(path_segment("A1?x=1#y"), "A1%3Fx%3D1%23y");
        assert_eq!(path_segment("é 1"), "%C3%A9%201");
    }
}
