//! The HTTP client for the Healthengine PMS API v1.9.0.
//!
//! One [`MarketClient`] per consumer (api key); one cheap [`PracticeClient`] per practice
//! (practice id and key). Every call sends `api-key`, `practice-id`, `practice-key` and the
//! configured `User-Agent`; bodies above [`ClientConfig::gzip_threshold`] bytes are sent gzipped.
//! Each attempt has a timeout; idempotent calls (GETs, snapshots, the liveness contract, feature
//! switches, subscription deletes) are retried a bounded number of times with jittered
//! exponential backoff on timeouts, 429 and 5xx (`backon`'s retry loop over
//! `slotbridge_domain::backoff`; a 429's `Retry-After` is waited for instead, up to
//! [`ClientConfig::max_retry_after`]). Booking calls are never retried here: their outcome must
//! be decided by the caller (the durable outbox).

use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use backon::Retryable as _;
use bytes::Bytes;
use jiff::Timestamp;
use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use slotbridge_domain::backoff::{Backoff, Jitter, retry_wait};
use slotbridge_redact::outbound::{BodyError, MAX_RESPONSE_BYTES, read_capped};

use crate::{
    error::MarketError,
    format,
    read::{ListItem, Polled, RequestPage, Requests},
    safe,
    types::*,
};

/// The most snapshots `POST /availability/snapshots` takes in one call.
pub const MAX_SNAPSHOTS_PER_BATCH: usize = 100;

/// The longest wait between two attempts of an idempotent call (before a `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The most pages [`PracticeClient`] follows when collecting every page of a request list.
const MAX_PAGES: u64 = 1_000;

/// Build a User-Agent of the form the quick-start guide asks for:
/// `APP_VENDOR_NAME (APP_VENDOR_EMAIL) APP_ENVIRONMENT`.
///
/// ```
/// assert_eq!(
///     slotbridge_market::user_agent("slotbridge", "integrations@slotbridge.example", "DEV"),
///     "slotbridge (integrations@slotbridge.example) DEV"
/// );
/// ```
pub fn user_agent(vendor: &str, email: &str, environment: &str) -> String {
    format!("{vendor} ({email}) {environment}")
}

/// How to reach the marketplace, as which consumer.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL including `/pms-api/v1`, e.g. `https://healthengine.com.au/pms-api/v1`.
    pub base_url: String,
    /// The consumer's API key (sent as `api-key`).
    pub api_key: SecretString,
    /// The User-Agent (see [`user_agent`]).
    pub user_agent: String,
    /// Timeout of each attempt.
    pub timeout: Duration,
    /// Attempts of an idempotent call (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubled each retry up to 30 s, each wait between half and all of it.
    pub retry_base: Duration,
    /// Longest `Retry-After` we wait for before giving up with [`MarketError::RateLimited`].
    pub max_retry_after: Duration,
    /// Request bodies longer than this many bytes are sent with `Content-Encoding: gzip`.
    pub gzip_threshold: usize,
    /// Told of every attempt: operation (`POST /bookings/{id}/confirmInsert`), outcome (`ok` or
    /// the error's kind) and how long it took. For metrics.
    pub observer: Option<CallObserver>,
}

/// Receives `(operation, outcome, elapsed)` for every call attempt.
pub type CallObserver = Arc<dyn Fn(&str, &str, Duration) + Send + Sync>;

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("user_agent", &self.user_agent)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// A path with its numeric segments (booking ids) replaced by `{id}`: a bounded metric label.
fn operation(method: &Method, path: &str) -> String {
    let shape: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    format!("{method} {}", shape.join("/"))
}

impl ClientConfig {
    /// A configuration with the defaults: User-Agent
    /// `slotbridge (integrations@slotbridge.example) DEV`, 10 s timeout, 3 attempts from 250 ms,
    /// gzip above 8 KiB.
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            user_agent: user_agent("slotbridge", "integrations@slotbridge.example", "DEV"),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            retry_base: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(30),
            gzip_threshold: 8 * 1024,
            observer: None,
        }
    }

    /// Replace the User-Agent.
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Replace the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replace the retry policy of idempotent calls.
    pub fn with_retries(mut self, max_attempts: u32, base: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.retry_base = base;
        self
    }

    /// Observe every call attempt (for metrics).
    pub fn with_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Replace the gzip threshold (bytes).
    pub fn with_gzip_threshold(mut self, bytes: usize) -> Self {
        self.gzip_threshold = bytes;
        self
    }
}

/// A practice's credentials, as the practice admin received them on granting consent.
#[derive(Debug, Clone)]
pub struct PracticeCredentials {
    /// The Healthengine practice id (sent as `practice-id`).
    pub practice_id: String,
    /// The practice key (sent as `practice-key`); never logged.
    pub practice_key: SecretString,
}

impl PracticeCredentials {
    /// Credentials from an id and a key.
    pub fn new(practice_id: impl Into<String>, practice_key: impl Into<String>) -> Self {
        Self {
            practice_id: practice_id.into(),
            practice_key: SecretString::from(practice_key.into()),
        }
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

/// The marketplace client of one consumer. Cheap to clone.
#[derive(Clone)]
pub struct MarketClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MarketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketClient")
            .field("base_url", &self.inner.base)
            .field("user_agent", &self.inner.config.user_agent)
            .finish_non_exhaustive()
    }
}

impl MarketClient {
    /// A client for this configuration.
    ///
    /// # Errors
    /// [`MarketError::Usage`] when the base URL is not an http(s) URL or the User-Agent is not a
    /// valid header value.
    pub fn new(config: ClientConfig) -> Result<Self, MarketError> {
        // The URL itself is not repeated: it may hold credentials.
        let url = url::Url::parse(&config.base_url).map_err(|e| MarketError::Usage {
            detail: format!("base_url is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(MarketError::Usage {
                detail: "base_url must be http or https".into(),
            });
        }
        header::HeaderValue::from_str(config.api_key.expose_secret()).map_err(|_| {
            MarketError::Usage {
                detail: "api_key contains characters not allowed in a header".into(),
            }
        })?;
        // No redirects: the key headers must not follow a `Location` to another host.
        let http = slotbridge_redact::outbound::client_builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .build()
            .map_err(|e| MarketError::Usage {
                detail: format!(
                    "cannot build the HTTP client: {}",
                    safe::transport_kind(&e.without_url())
                ),
            })?;
        let base = config.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            inner: Arc::new(Inner { http, base, config }),
        })
    }

    /// The API's base URL, as configured (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// A handle for one practice.
    pub fn practice(&self, credentials: PracticeCredentials) -> PracticeClient {
        PracticeClient {
            client: self.clone(),
            credentials: Arc::new(credentials),
            guard: None,
            not_before: Arc::default(),
        }
    }
}

/// Calls for one practice. Cheap to clone.
#[derive(Clone)]
pub struct PracticeClient {
    client: MarketClient,
    credentials: Arc<PracticeCredentials>,
    guard: Option<CallGuard>,
    /// No call for this practice is sent before this instant: the marketplace answered 429 with
    /// a `Retry-After` (shared by the clones, so it holds across calls, not only between the
    /// attempts of one).
    not_before: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// Asked before every call attempt; `false` refuses the call with [`MarketError::Fenced`]
/// without sending anything.
pub type CallGuard = Arc<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for PracticeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PracticeClient")
            .field("practice_id", &self.credentials.practice_id)
            .finish_non_exhaustive()
    }
}

/// Whether a call may be repeated safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

/// Query of `GET /subscriptionErrorLog`.
#[derive(Debug, Clone, Default)]
pub struct ErrorLogQuery {
    /// Only this subscription's errors.
    pub subscription_id: Option<String>,
    /// From this instant (UTC).
    pub from: Option<Timestamp>,
    /// Until this instant (UTC).
    pub to: Option<Timestamp>,
    /// The page, from 1.
    pub page: Option<u64>,
}

impl PracticeClient {
    /// This handle, asking `guard` before every call attempt (a worker's lease fence): a call
    /// it refuses fails with [`MarketError::Fenced`] and nothing is sent.
    pub fn with_guard(mut self, guard: CallGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The practice id this handle speaks for.
    pub fn practice_id(&self) -> &str {
        &self.credentials.practice_id
    }

    // ---- configuration ----------------------------------------------------------------------

    /// `GET /config/livenessContract`.
    pub async fn liveness_contract(&self) -> Result<LivenessContract, MarketError> {
        self.get_json("/config/livenessContract", &[]).await
    }

    /// `POST /config/livenessContract`: create or replace the liveness contract.
    pub async fn set_liveness_contract(
        &self,
        contract: &LivenessContract,
    ) -> Result<(), MarketError> {
        self.post_unit("/config/livenessContract", Some(contract), Idempotent::Yes)
            .await
    }

    /// `POST /config/pmsResources/snapshot`: replace every PMS resource; missing ones are deleted.
    pub async fn send_pms_resources(&self, resources: &[PmsResource]) -> Result<(), MarketError> {
        self.post_unit(
            "/config/pmsResources/snapshot",
            Some(&resources),
            Idempotent::Yes,
        )
        .await
    }

    /// `GET /config/pmsResources`, read item by item: an item that cannot be read is left out
    /// (and logged), the others are read.
    pub async fn pms_resources(&self) -> Result<Vec<PmsResource>, MarketError> {
        self.get_list("/config/pmsResources", &[]).await
    }

    /// `GET /config/pmsResources/findById?id=`: the matching resources (empty when none).
    pub async fn find_pms_resource(&self, id: &str) -> Result<Vec<PmsResource>, MarketError> {
        self.get_list("/config/pmsResources/findById", &[("id", id.to_owned())])
            .await
    }

    /// `POST /config/pmsAppointmentTypes/snapshot`: replace every PMS appointment type.
    pub async fn send_pms_appointment_types(
        &self,
        types: &[PmsAppointmentType],
    ) -> Result<(), MarketError> {
        self.post_unit(
            "/config/pmsAppointmentTypes/snapshot",
            Some(&types),
            Idempotent::Yes,
        )
        .await
    }

    /// `GET /config/pmsAppointmentTypes`, read item by item.
    pub async fn pms_appointment_types(&self) -> Result<Vec<PmsAppointmentType>, MarketError> {
        self.get_list("/config/pmsAppointmentTypes", &[]).await
    }

    /// `GET /config/pmsAppointmentTypes/findById?id=`.
    pub async fn find_pms_appointment_type(
        &self,
        id: &str,
    ) -> Result<Vec<PmsAppointmentType>, MarketError> {
        self.get_list(
            "/config/pmsAppointmentTypes/findById",
            &[("id", id.to_owned())],
        )
        .await
    }

    // ---- availability -----------------------------------------------------------------------

    /// `POST /availability/snapshot`: replace one resource's availability for one day.
    pub async fn send_availability(
        &self,
        snapshot: &AvailabilitySnapshot,
    ) -> Result<(), MarketError> {
        self.post_unit("/availability/snapshot", Some(snapshot), Idempotent::Yes)
            .await
    }

    /// `POST /availability/snapshots`: up to [`MAX_SNAPSHOTS_PER_BATCH`] snapshots in one call.
    ///
    /// # Errors
    /// [`MarketError::Usage`] (nothing sent) for more than 100 snapshots. Snapshots that fail
    /// validation are reported in the result's `failed` and `errors`, not as an error.
    pub async fn send_availability_batch(
        &self,
        snapshots: &[AvailabilitySnapshot],
    ) -> Result<SnapshotsResult, MarketError> {
        if snapshots.len() > MAX_SNAPSHOTS_PER_BATCH {
            return Err(MarketError::Usage {
                detail: format!(
                    "{} snapshots in one batch; the API takes at most {MAX_SNAPSHOTS_PER_BATCH}",
                    snapshots.len()
                ),
            });
        }
        if snapshots.is_empty() {
            return Ok(SnapshotsResult::default());
        }
        self.post_json("/availability/snapshots", &snapshots, Idempotent::Yes)
            .await
    }

    /// Send any number of snapshots in batches of 100 and merge the results. Entries that are
    /// array indexes (snapshots without `id`) are renumbered to index `snapshots`, so they can be
    /// looked up in the caller's slice.
    pub async fn send_availability_all(
        &self,
        snapshots: &[AvailabilitySnapshot],
    ) -> Result<SnapshotsResult, MarketError> {
        let mut merged = SnapshotsResult::default();
        for (n, chunk) in snapshots.chunks(MAX_SNAPSHOTS_PER_BATCH).enumerate() {
            let offset = n * MAX_SNAPSHOTS_PER_BATCH;
            let r = self.send_availability_batch(chunk).await?;
            let fix = |s: String| renumber(chunk, offset, s);
            merged.created.extend(r.created.into_iter().map(fix));
            merged.existing.extend(r.existing.into_iter().map(fix));
            merged.failed.extend(r.failed.into_iter().map(fix));
            merged
                .errors
                .extend(r.errors.into_iter().map(|e| SnapshotError {
                    snapshot: fix(e.snapshot),
                    error: e.error,
                }));
        }
        Ok(merged)
    }

    // ---- requests ---------------------------------------------------------------------------

    /// `GET /requests`: the request types with something outstanding, in the marketplace's order
    /// (see [`RequestType::by_priority`] to process bookings first), and apart from them the
    /// names of types this client does not know (a newer API may list more): they do not fail
    /// the poll. Polling also tells the marketplace the integration is alive.
    pub async fn poll(&self) -> Result<Polled, MarketError> {
        let body = self.get_bytes("/requests", &[]).await?;
        Polled::parse(&body).map_err(|e| unreadable_answer(&Method::GET, "/requests", &e))
    }

    /// `GET /requests/bookings?page=`.
    pub async fn booking_requests(&self, page: u64) -> Result<RequestPage<Booking>, MarketError> {
        self.request_page(RequestType::Bookings, page).await
    }

    /// `GET /requests/bookingUpdates?page=`.
    pub async fn booking_update_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<BookingUpdate>, MarketError> {
        self.request_page(RequestType::BookingUpdates, page).await
    }

    /// `GET /requests/availability?page=`.
    pub async fn availability_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<AvailabilityRequest>, MarketError> {
        self.request_page(RequestType::Availability, page).await
    }

    /// `GET /requests/pmsAppointmentChanges?page=`.
    pub async fn pms_appointment_change_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<PmsAppointmentChangesRequest>, MarketError> {
        self.request_page(RequestType::PmsAppointmentChanges, page)
            .await
    }

    /// `GET /requests/availableDocuments?page=` (extra feature `documents`).
    pub async fn available_documents_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<AvailableDocumentsRequest>, MarketError> {
        self.request_page(RequestType::AvailableDocuments, page)
            .await
    }

    /// `GET /requests/uploadDocuments?page=` (extra feature `documents`).
    pub async fn upload_documents_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<UploadDocumentsRequest>, MarketError> {
        self.request_page(RequestType::UploadDocuments, page).await
    }

    /// `GET /requests/clientSnapshots?page=` (extra feature `clientSnapshots`).
    pub async fn client_snapshot_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<ClientSnapshotRequest>, MarketError> {
        self.request_page(RequestType::ClientSnapshots, page).await
    }

    /// `GET /requests/attachDocuments?page=` (extra feature `attachDocuments`).
    pub async fn attach_document_requests(
        &self,
        page: u64,
    ) -> Result<RequestPage<AttachDocumentRequest>, MarketError> {
        self.request_page(RequestType::AttachDocuments, page).await
    }

    /// One page of the list of `kind` (which must have a target: not the two refresh requests),
    /// read item by item: an item that cannot be read is in [`RequestPage::unreadable`], the
    /// others are read as usual.
    ///
    /// # Errors
    /// [`MarketError::Protocol`] only when the answer as a whole is not a list (not JSON, or
    /// neither an object nor an array), besides the call's own errors.
    pub async fn request_page<T: ListItem>(
        &self,
        kind: RequestType,
        page: u64,
    ) -> Result<RequestPage<T>, MarketError> {
        let Some(path) = kind.target() else {
            return Err(MarketError::Usage {
                detail: format!(
                    "request type {kind} has no list: answer it by sending the snapshot"
                ),
            });
        };
        self.get_page(path, &[("page", page.max(1).to_string())])
            .await
    }

    /// Every page of the list of `kind`, in order, each read item by item. An answer without a
    /// `page` object is taken as the only page.
    pub async fn all_requests<T: ListItem>(
        &self,
        kind: RequestType,
    ) -> Result<Requests<T>, MarketError> {
        let mut out = Requests::default();
        let mut page = 1;
        loop {
            let p: RequestPage<T> = self.request_page(kind, page).await?;
            let more = p.has_more(page);
            out.items.extend(p.items);
            out.unreadable.extend(p.unreadable);
            if !more || page >= MAX_PAGES {
                return Ok(out);
            }
            page += 1;
        }
    }

    // ---- bookings ---------------------------------------------------------------------------

    /// `POST /bookings/{id}/confirmInsert`: the booking is in the PMS.
    pub async fn confirm_insert(
        &self,
        booking_id: i64,
        body: &ConfirmBookingInsert,
    ) -> Result<(), MarketError> {
        self.post_unit(
            &format!("/bookings/{booking_id}/confirmInsert"),
            Some(body),
            Idempotent::No,
        )
        .await
    }

    /// `POST /bookings/{id}/rejectInsert`: the booking could not be inserted (do it within 20 s).
    pub async fn reject_insert(
        &self,
        booking_id: i64,
        reason: Option<&str>,
    ) -> Result<(), MarketError> {
        self.post_unit(
            &format!("/bookings/{booking_id}/rejectInsert"),
            Some(&reason_body(reason)),
            Idempotent::No,
        )
        .await
    }

    /// `POST /bookings/{id}/confirmUpdate/{requestId}`: the update is applied in the PMS.
    pub async fn confirm_update(
        &self,
        booking_id: i64,
        request_id: i64,
    ) -> Result<(), MarketError> {
        self.post_unit::<()>(
            &format!("/bookings/{booking_id}/confirmUpdate/{request_id}"),
            None,
            Idempotent::No,
        )
        .await
    }

    /// `POST /bookings/{id}/rejectUpdate/{requestId}`: the update was not applied.
    pub async fn reject_update(
        &self,
        booking_id: i64,
        request_id: i64,
        reason: Option<&str>,
    ) -> Result<(), MarketError> {
        self.post_unit(
            &format!("/bookings/{booking_id}/rejectUpdate/{request_id}"),
            Some(&reason_body(reason)),
            Idempotent::No,
        )
        .await
    }

    /// `POST /bookings/{id}/cancel`: the booking was cancelled in the PMS.
    pub async fn cancel(&self, booking_id: i64, reason: Option<&str>) -> Result<(), MarketError> {
        self.post_unit(
            &format!("/bookings/{booking_id}/cancel"),
            Some(&reason_body(reason)),
            Idempotent::No,
        )
        .await
    }

    /// `POST /bookings/{id}/didNotAttend`: the patient did not attend.
    pub async fn did_not_attend(
        &self,
        booking_id: i64,
        reason: Option<&str>,
    ) -> Result<(), MarketError> {
        self.post_unit(
            &format!("/bookings/{booking_id}/didNotAttend"),
            Some(&reason_body(reason)),
            Idempotent::No,
        )
        .await
    }

    /// `POST /bookings/{id}/noPmsAppointmentChange`: answers a pmsAppointmentChanges request
    /// when nothing changed.
    pub async fn no_pms_appointment_change(&self, booking_id: i64) -> Result<(), MarketError> {
        self.post_unit::<()>(
            &format!("/bookings/{booking_id}/noPmsAppointmentChange"),
            None,
            Idempotent::No,
        )
        .await
    }

    // ---- features ---------------------------------------------------------------------------

    /// `GET /features`.
    pub async fn features(&self) -> Result<Vec<Feature>, MarketError> {
        self.get_list("/features", &[]).await
    }

    /// `GET /features/{id}`.
    pub async fn feature(&self, id: &str) -> Result<Feature, MarketError> {
        self.get_json(&format!("/features/{}", path_segment(id)), &[])
            .await
    }

    /// `POST /features/{id}/enable`.
    pub async fn enable_feature(&self, id: &str) -> Result<(), MarketError> {
        self.post_unit::<()>(
            &format!("/features/{}/enable", path_segment(id)),
            None,
            Idempotent::Yes,
        )
        .await
    }

    /// `POST /features/{id}/disable`.
    pub async fn disable_feature(&self, id: &str) -> Result<(), MarketError> {
        self.post_unit::<()>(
            &format!("/features/{}/disable", path_segment(id)),
            None,
            Idempotent::Yes,
        )
        .await
    }

    // ---- subscriptions ----------------------------------------------------------------------

    /// `GET /subscription`.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, MarketError> {
        self.get_list("/subscription", &[]).await
    }

    /// `GET /subscription/{id}`.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, MarketError> {
        self.get_json(&format!("/subscription/{}", path_segment(id)), &[])
            .await
    }

    /// `POST /subscription`: create a subscription (or update the one with the same topic and
    /// callback URL); returns it with its id. The answer echoes what was sent: a field of it
    /// that is null, missing or cannot be read is taken from `subscription`.
    pub async fn create_subscription(
        &self,
        subscription: &Subscription,
    ) -> Result<Subscription, MarketError> {
        known_topic(subscription)?;
        self.post_echoed("/subscription", subscription, Idempotent::No)
            .await
            .map(|answer| with_known_topic(answer, subscription))
    }

    /// Renew a subscription: `POST /subscription` with the same topic and callback URL and a new
    /// expiry. Returns the renewed subscription (same id).
    pub async fn renew_subscription(
        &self,
        subscription: &Subscription,
        expire_at: Option<Timestamp>,
    ) -> Result<Subscription, MarketError> {
        known_topic(subscription)?;
        let mut renewed = subscription.clone();
        renewed.expire_at = expire_at;
        self.post_echoed("/subscription", &renewed, Idempotent::Yes)
            .await
            .map(|answer| with_known_topic(answer, &renewed))
    }

    /// `DELETE /subscription/{id}`.
    pub async fn delete_subscription(&self, id: &str) -> Result<(), MarketError> {
        self.call(
            Method::DELETE,
            &format!("/subscription/{}", path_segment(id)),
            &[],
            None,
            Idempotent::Yes,
        )
        .await
        .map(|_| ())
    }

    /// `GET /subscriptionErrorLog`: failed webhook attempts.
    pub async fn subscription_error_log(
        &self,
        query: &ErrorLogQuery,
    ) -> Result<RequestPage<SubscriptionErrorLog>, MarketError> {
        let mut q = Vec::new();
        if let Some(id) = &query.subscription_id {
            q.push(("subscriptionId", id.clone()));
        }
        if let Some(t) = query.from {
            q.push(("from", format::format_utc(t)));
        }
        if let Some(t) = query.to {
            q.push(("to", format::format_utc(t)));
        }
        if let Some(p) = query.page {
            q.push(("page", p.to_string()));
        }
        self.get_page("/subscriptionErrorLog", &q).await
    }

    // ---- plumbing ---------------------------------------------------------------------------

    /// A list answer (a JSON array) read item by item, like the request lists: an item that
    /// cannot be read is left out and logged with its position and the reason (a field's path
    /// and a fixed text, never a value), so one odd item does not hide the others.
    async fn get_list<T: ListItem>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, MarketError> {
        let body = self.get_bytes(path, query).await?;
        let page = RequestPage::<T>::parse(&body, Timestamp::now())
            .map_err(|e| unreadable_answer(&Method::GET, path, &e))?;
        for item in &page.unreadable {
            tracing::warn!(path, %item, "an item of the marketplace's answer cannot be read; left out");
        }
        Ok(page.items)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, MarketError> {
        let body = self.get_bytes(path, query).await?;
        parse(&Method::GET, path, &body)
    }

    async fn get_bytes(&self, path: &str, query: &[(&str, String)]) -> Result<Bytes, MarketError> {
        self.call(Method::GET, path, query, None, Idempotent::Yes)
            .await
            .map(|(_, body)| body)
    }

    /// A list, read item by item; `fill_in` defaults take the time the answer arrived.
    async fn get_page<T: ListItem>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<RequestPage<T>, MarketError> {
        let body = self.get_bytes(path, query).await?;
        RequestPage::parse(&body, Timestamp::now())
            .map_err(|e| unreadable_answer(&Method::GET, path, &e))
    }

    async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotent: Idempotent,
    ) -> Result<T, MarketError> {
        let bytes = to_json(body)?;
        let (_, body) = self
            .call(Method::POST, path, &[], Some(bytes), idempotent)
            .await?;
        parse(&Method::POST, path, &body)
    }

    async fn post_echoed<T: Serialize + DeserializeOwned>(
        &self,
        path: &str,
        sent: &T,
        idempotent: Idempotent,
    ) -> Result<T, MarketError> {
        let bytes = to_json(sent)?;
        let (_, body) = self
            .call(Method::POST, path, &[], Some(bytes), idempotent)
            .await?;
        echoed(sent, &body).map_err(|e| unreadable_answer(&Method::POST, path, &e))
    }

    async fn post_unit<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: Option<&B>,
        idempotent: Idempotent,
    ) -> Result<(), MarketError> {
        let bytes = body.map(to_json).transpose()?;
        self.call(Method::POST, path, &[], bytes, idempotent)
            .await
            .map(|_| ())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        idempotent: Idempotent,
    ) -> Result<(StatusCode, Bytes), MarketError> {
        let inner = &self.client.inner;
        let cfg = &inner.config;
        let body = body
            .map(|b| encode_body(b, cfg.gzip_threshold))
            .transpose()?;
        let retries = if idempotent == Idempotent::Yes {
            cfg.max_attempts.max(1) - 1
        } else {
            0
        };
        let waits = Backoff::from_std(cfg.retry_base, MAX_BACKOFF)
            .retries(retries, || Jitter::new(rand::random::<f64>()));
        let attempt = AtomicU32::new(0);
        let once = || async {
            attempt.fetch_add(1, Ordering::Relaxed);
            // A 429's Retry-After holds for every call of this practice, not only this one's
            // retries.
            if let Some(wait) = self.rate_limited_for() {
                if wait > cfg.max_retry_after {
                    return Err(MarketError::RateLimited {
                        retry_after: Some(wait),
                    });
                }
                tokio::time::sleep(wait).await;
            }
            if self.guard.as_ref().is_some_and(|allowed| !allowed()) {
                return Err(MarketError::Fenced);
            }
            let started = std::time::Instant::now();
            let result = self.attempt(&method, path, query, body.as_ref()).await;
            if let Some(observe) = &cfg.observer {
                let outcome = result.as_ref().map_or_else(MarketError::kind, |_| "ok");
                observe(&operation(&method, path), outcome, started.elapsed());
            }
            if let Err(MarketError::RateLimited {
                retry_after: Some(d),
            }) = &result
            {
                self.rate_limited_until(std::time::Instant::now() + *d);
            }
            result
        };
        once.retry(waits)
            .sleep(tokio::time::sleep)
            .when(MarketError::is_transient)
            .adjust(|err, scheduled| {
                let asked = match err {
                    MarketError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                retry_wait(scheduled, asked, cfg.max_retry_after)
            })
            .notify(|err, wait| {
                let attempt = attempt.load(Ordering::Relaxed);
                tracing::debug!(%method, path, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying marketplace call");
            })
            .await
    }

    /// How long calls must still wait after a 429's `Retry-After`, if at all.
    fn rate_limited_for(&self) -> Option<Duration> {
        let until = (*self
            .not_before
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// No call before `until` (a later limit already in force stays).
    fn rate_limited_until(&self, until: std::time::Instant) {
        let mut not_before = self
            .not_before
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *not_before = Some(not_before.map_or(until, |t| t.max(until)));
    }

    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&EncodedBody>,
    ) -> Result<(StatusCode, Bytes), MarketError> {
        let inner = &self.client.inner;
        let mut req = inner
            .http
            .request(method.clone(), format!("{}{}", inner.base, path))
            .header("api-key", inner.config.api_key.expose_secret())
            .header("practice-id", &self.credentials.practice_id)
            .header(
                "practice-key",
                self.credentials.practice_key.expose_secret(),
            )
            .header(header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(b.bytes.clone());
            if b.gzipped {
                req = req.header(header::CONTENT_ENCODING, "gzip");
            }
        }
        // The operation names the call in errors: never the URL, which carries the query.
        let op = operation(method, path);
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&op, &e.without_url(), inner.config.timeout))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = read_capped(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::Transport(e) => {
                    transport_error(&op, &e.without_url(), inner.config.timeout)
                }
                too_large => MarketError::Protocol {
                    detail: format!("{op}: {too_large}"),
                },
            })?;
        tracing::debug!(%method, path, status = status.as_u16(), "marketplace call");
        if status.is_success() {
            return Ok((status, bytes));
        }
        // The body is not kept: it may echo the request (a reason, a name). Only the field it
        // names, when that is one of the API's own, is repeated.
        let detail = format!(
            "{op}: {}",
            safe::status_text(status.as_u16(), "", error_field(&bytes).as_deref())
        );
        Err(match status.as_u16() {
            400 => MarketError::Invalid { detail },
            401 => MarketError::Unauthorized,
            403 => MarketError::ConsentMissing {
                practice_id: self.credentials.practice_id.clone(),
                detail: Some(detail),
            },
            404 => MarketError::NotFound { what: op },
            409 => MarketError::Conflict { detail },
            410 => MarketError::Gone { detail },
            422 => MarketError::Invalid { detail },
            429 => MarketError::RateLimited { retry_after },
            500..=599 => MarketError::Unavailable { detail },
            _ => MarketError::Protocol {
                detail: format!("unexpected {detail}"),
            },
        })
    }
}

fn reason_body(reason: Option<&str>) -> ReasonBody {
    ReasonBody {
        reason: reason.map(str::to_owned),
    }
}

fn renumber(chunk: &[AvailabilitySnapshot], offset: usize, s: String) -> String {
    if chunk.iter().any(|c| c.id.as_deref() == Some(s.as_str())) {
        return s;
    }
    match s.parse::<usize>() {
        Ok(i) if i < chunk.len() && chunk[i].id.is_none() => (offset + i).to_string(),
        _ => s,
    }
}

/// Percent-encode a path segment (ids are opaque strings).
fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn to_json<B: Serialize + ?Sized>(body: &B) -> Result<Vec<u8>, MarketError> {
    serde_json::to_vec(body).map_err(|_| MarketError::Usage {
        detail: "cannot encode the body".into(),
    })
}

struct EncodedBody {
    bytes: Bytes,
    gzipped: bool,
}

fn encode_body(json: Vec<u8>, threshold: usize) -> Result<EncodedBody, MarketError> {
    if json.len() <= threshold {
        return Ok(EncodedBody {
            bytes: Bytes::from(json),
            gzipped: false,
        });
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(&json)
        .and_then(|_| enc.finish())
        .map(|b| EncodedBody {
            bytes: Bytes::from(b),
            gzipped: true,
        })
        .map_err(|e| MarketError::Usage {
            detail: format!("cannot gzip the body ({})", e.kind()),
        })
}

/// Decode an answer. It may hold patients: the error names the JSON path and position that did
/// not fit, never the value found there.
fn parse<T: DeserializeOwned>(method: &Method, path: &str, body: &[u8]) -> Result<T, MarketError> {
    safe::decode(body).map_err(|e| unreadable_answer(method, path, &e))
}

/// The error of an answer that does not match the spec; `why` says where, without values.
/// The client never sends a topic it does not know (one it read as [`SubscriptionTopic::Other`]).
fn known_topic(subscription: &Subscription) -> Result<(), MarketError> {
    if subscription.topic == SubscriptionTopic::Other {
        return Err(MarketError::Usage {
            detail: "POST /subscription: the topic is not one of the spec's".into(),
        });
    }
    Ok(())
}

/// An echoed subscription whose topic reads as unknown keeps the topic that was sent.
fn with_known_topic(mut answer: Subscription, sent: &Subscription) -> Subscription {
    if answer.topic == SubscriptionTopic::Other {
        answer.topic = sent.topic;
    }
    answer
}

fn unreadable_answer(method: &Method, path: &str, why: &str) -> MarketError {
    MarketError::Protocol {
        detail: format!(
            "{}: the answer does not match the spec: {why}",
            operation(method, path)
        ),
    }
}

/// Read an answer that echoes what was sent (`POST /subscription`): each field of the answer
/// that reads is kept (the marketplace's `id`, say); one that is null, missing or cannot be read
/// (a topic or a time in a form this client does not know) is taken from what was sent. Only an
/// answer that is not a JSON object is an error; its text says where, without values.
fn echoed<T: Serialize + DeserializeOwned>(sent: &T, body: &[u8]) -> Result<T, String> {
    let answer: serde_json::Map<String, serde_json::Value> = safe::decode(body)?;
    let mut merged =
        serde_json::to_value(sent).map_err(|_| "cannot encode the request".to_owned())?;
    for (field, value) in answer {
        if value.is_null() {
            continue;
        }
        let mut candidate = merged.clone();
        candidate[field.as_str()] = value;
        if serde_json::from_value::<T>(candidate.clone()).is_ok() {
            merged = candidate;
        }
    }
    serde_json::from_value(merged).map_err(|_| "the request itself does not read back".to_owned())
}

/// The field named by an error body (`{"error": "[1].pmsResourceId: ..."}`), when it is one of
/// the API's own.
fn error_field(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        error: Option<String>,
        detail: Option<String>,
    }
    let e = serde_json::from_slice::<E>(body).ok()?;
    e.error
        .as_deref()
        .and_then(safe::market_field)
        .or_else(|| e.detail.as_deref().and_then(safe::market_field))
}

/// A reqwest failure (already stripped of its URL) by kind.
fn transport_error(op: &str, e: &reqwest::Error, timeout: Duration) -> MarketError {
    if e.is_timeout() {
        MarketError::Timeout(timeout)
    } else if e.is_decode() || e.is_body() {
        MarketError::Protocol {
            detail: format!("{op}: cannot read the answer: {}", safe::transport_kind(e)),
        }
    } else {
        MarketError::Unavailable {
            detail: format!(
                "{op}: cannot reach Healthengine: {}",
                safe::transport_kind(e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_offsets_indexes_but_keeps_ids() {
        let s = |id: Option<&str>| AvailabilitySnapshot {
            id: id.map(str::to_owned),
            date: jiff::civil::date(2026, 1, 1),
            pms_resource_id: "r".into(),
            availability: vec![],
        };
        let chunk = vec![s(None), s(Some("x")), s(None)];
        assert_eq!(renumber(&chunk, 100, "0".into()), "100");
        assert_eq!(renumber(&chunk, 100, "2".into()), "102");
        assert_eq!(renumber(&chunk, 100, "x".into()), "x");
        assert_eq!(renumber(&chunk, 100, "1".into()), "1");
    }

    #[test]
    fn bodies_above_the_threshold_are_gzipped() {
        let small = encode_body(b"[]".to_vec(), 10).unwrap();
        assert!(!small.gzipped);
        let big = encode_body(vec![b' '; 5000], 10).unwrap();
        assert!(big.gzipped);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&big.bytes[..]), &mut out)
            .unwrap();
        assert_eq!(out.len(), 5000);
    }

    #[test]
    fn an_echoed_answer_keeps_what_reads_and_takes_the_rest_from_what_was_sent() {
        let sent = Subscription {
            id: None,
            client_id: Some("link-1".into()),
            topic: SubscriptionTopic::All,
            callback_url: "https://node.example/hooks".into(),
            start_at: None,
            expire_at: Some(format::parse_utc("2027-01-01 00:00:00").unwrap()),
        };
        let answer = serde_json::json!({
            "id": "6f1c", "clientId": null, "topic": "requests.videoConsults",
            "callbackUrl": "https://node.example/hooks", "startAt": "yesterday",
            "expireAt": "2027-02-01 00:00:00", "somethingNew": true
        });
        let got = with_known_topic(echoed(&sent, answer.to_string().as_bytes()).unwrap(), &sent);
        assert_eq!(got.id.as_deref(), Some("6f1c"));
        assert_eq!(got.client_id.as_deref(), Some("link-1"));
        assert_eq!(got.topic, SubscriptionTopic::All);
        assert_eq!(got.start_at, None);
        assert_eq!(
            got.expire_at,
            Some(format::parse_utc("2027-02-01 00:00:00").unwrap())
        );
        assert!(echoed(&sent, b"[1]").is_err());
        let e = echoed(&sent, b"\"Zebedee\"").unwrap_err();
        assert!(!e.contains("Zebedee"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = MarketClient::new(ClientConfig::new(
            "http://127.0.0.1:1/pms-api/v1",
            SecretString::from("topsecret-api"),
        ))
        .unwrap();
        let p = c.practice(PracticeCredentials::new("1234567", "topsecret-practice"));
        let dbg = format!(
            "{c:?} {p:?} {:?}",
            PracticeCredentials::new("1", "topsecret-practice")
        );
        assert!(!dbg.contains("topsecret"), "{dbg}");
        let consent = MarketError::ConsentMissing {
            practice_id: "1234567".into(),
            detail: None,
        };
        let msg = consent.to_string();
        assert!(
            msg.contains("API Consumer Consent") && msg.contains("Grant new consent"),
            "{msg}"
        );
    }
}
