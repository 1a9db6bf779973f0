//! The admin operations: the one layer under both the JSON admin API (`http`) and the operator
//! console (`console`). Neither of those reaches into the store or the PMS directly; both are thin
//! over the functions here, which take the node's [`Ctx`] and return plain views (serialisable,
//! described in the OpenAPI document, never carrying a secret).

use std::collections::BTreeMap;

use jiff::civil::{Date, DateTime};
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use slotbridge_domain::diagnostics::{
    self, Consent, Finding, HealthView, Input, PmsAuth, RejectedBooking, Severity,
};
use slotbridge_domain::horizon::Horizon;
use slotbridge_domain::practice::{Diary, PracticeSetup, SiteSlug, to_snapshot};
use slotbridge_pms::{PmsConnector, PmsError};
use slotbridge_store::{
    Booking, BookingEvent, ConsentStatus, HorizonDays, Link, LinkChanges, LinkId, LinkPms,
    MarketRequest, NewLink, StoreError, SyncState,
};
use utoipa::{IntoParams, ToSchema};

use crate::ctx::{Ctx, ResyncState, Trigger};
use crate::failure::FailureKind;

/// Published availability older than this is stale.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_mins(30);

/// How many bookings and requests the log shows.
pub const LOG_LIMIT: u32 = 50;

/// Why an admin operation failed; the HTTP layer turns it into problem+json, the console into a
/// message on the page.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such link (or practitioner, or reason).
    #[error("{0}")]
    NotFound(String),
    /// The input is malformed or out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// The operation conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The PMS could not be read.
    #[error("the PMS could not be read: {0}")]
    Pms(#[from] PmsError),
    /// The PMS's data is not a valid diary.
    #[error("the PMS data is not a valid diary: {0}")]
    PmsData(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidInput { field, message } => AdminError::Invalid { field, message },
            StoreError::PracticeAlreadyLinked { .. } => AdminError::Conflict(e.to_string()),
            StoreError::LinkNotFound(_) => AdminError::NotFound(e.to_string()),
            other => AdminError::Store(other),
        }
    }
}

impl From<slotbridge_domain::horizon::HorizonError> for AdminError {
    fn from(e: slotbridge_domain::horizon::HorizonError) -> Self {
        AdminError::Invalid {
            field: e.field(),
            message: e.detail(),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field,
        message: message.into(),
    }
}

fn ts(t: Timestamp) -> String {
    t.to_string()
}

/// A link as the admin API shows it: never with its secrets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkView {
    /// Link id (a UUID).
    pub id: String,
    /// PMS site slug.
    pub site_slug: String,
    /// Marketplace practice id.
    pub practice_id: String,
    /// Whether it publishes and takes bookings.
    pub enabled: bool,
    /// Publishing horizon in days.
    pub horizon_days: i64,
    /// Bumped when the practice id changes.
    pub generation: i64,
    /// Whether a PMS API key and a practice key are set (they are write-only).
    pub secrets_set: bool,
    /// Which PMS: `exact` (an Exact-style site) or `cliniko`.
    pub pms_kind: String,
    /// The Cliniko business id (Cliniko links only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    /// The practice's name: the PMS's, else the marketplace practice's; none until the first
    /// PMS read when no marketplace name was entered.
    pub name: Option<String>,
    /// The practice's name as the PMS reported it at the last read.
    pub pms_name: Option<String>,
    /// The marketplace practice's name, as entered (the marketplace's API does not give it).
    pub market_name: Option<String>,
}

impl From<&Link> for LinkView {
    fn from(l: &Link) -> Self {
        LinkView {
            id: l.id.to_string(),
            site_slug: l.site_slug.as_str().to_owned(),
            practice_id: l.market_practice_id.clone(),
            enabled: l.enabled,
            horizon_days: l.horizon_days.get(),
            generation: l.generation,
            secrets_set: true,
            pms_kind: l.pms.kind().to_owned(),
            business_id: match &l.pms {
                LinkPms::Exact => None,
                LinkPms::Cliniko { business_id } => Some(business_id.clone()),
            },
            name: l.display_name().map(str::to_owned),
            pms_name: l.pms_practice_name.clone(),
            market_name: l.market_practice_name.clone(),
        }
    }
}

/// Which PMS a new link reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PmsKind {
    /// An Exact-style site: `site_slug` and `pms_api_key`.
    #[default]
    Exact,
    /// A Cliniko business: `pms_api_key` (its shard suffix included) and `business_id`.
    Cliniko,
}

/// `POST /api/links`: link a PMS site to a marketplace practice.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    /// Which PMS (default `exact`).
    #[serde(default)]
    pub pms_kind: PmsKind,
    /// PMS site slug (Exact-style links; a Cliniko link's is made from its business id).
    #[serde(default)]
    pub site_slug: String,
    /// The Cliniko business (location) id (Cliniko links).
    #[serde(default)]
    pub business_id: Option<String>,
    /// PMS API key (write-only).
    pub pms_api_key: String,
    /// Marketplace practice id.
    pub practice_id: String,
    /// Marketplace practice key (write-only).
    pub practice_key: String,
    /// Publishing horizon, 1..=90 (default 30).
    #[serde(default)]
    pub horizon_days: Option<i64>,
    /// Start enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The marketplace practice's name, to show (optional).
    #[serde(default)]
    pub market_name: Option<String>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for CreateLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateLink")
            .field("pms_kind", &self.pms_kind)
            .field("site_slug", &self.site_slug)
            .field("business_id", &self.business_id)
            .field("practice_id", &self.practice_id)
            .field("horizon_days", &self.horizon_days)
            .field("enabled", &self.enabled)
            .field("market_name", &self.market_name)
            .finish_non_exhaustive()
    }
}

/// `PATCH /api/links/{id}`: any of the fields; secrets are write-only (set, never shown).
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLink {
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New marketplace practice id (publishing moves to it).
    pub practice_id: Option<String>,
    /// New marketplace practice key.
    pub practice_key: Option<String>,
    /// New PMS API key.
    pub pms_api_key: Option<String>,
    /// New horizon, 1..=90.
    pub horizon_days: Option<i64>,
    /// The marketplace practice's name, to show (blank forgets it). Changing only the name
    /// does not restart the link's worker.
    #[serde(default)]
    pub market_name: Option<String>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for UpdateLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateLink")
            .field("enabled", &self.enabled)
            .field("practice_id", &self.practice_id)
            .field("horizon_days", &self.horizon_days)
            .field("market_name", &self.market_name)
            .finish_non_exhaustive()
    }
}

/// What a resync resends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResyncWhat {
    /// The configuration: liveness contract, resources, appointment types.
    Config,
    /// Every day of availability in the horizon.
    Availability,
}

impl ResyncWhat {
    /// `config` or `availability`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncWhat::Config => "config",
            ResyncWhat::Availability => "availability",
        }
    }

    /// Parse `config` or `availability`.
    pub fn parse(s: &str) -> Result<Self, AdminError> {
        match s {
            "config" => Ok(ResyncWhat::Config),
            "availability" => Ok(ResyncWhat::Availability),
            other => Err(invalid(
                "what",
                format!("expected \"config\" or \"availability\", found {other:?}"),
            )),
        }
    }
}

/// `POST /api/links/{id}/resync`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    /// What to resend: `config` or `availability`.
    pub what: String,
}

/// The answer to a resync request: accepted, with where it is now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResyncAccepted {
    /// The link.
    pub link: String,
    /// What is resent.
    pub what: ResyncWhat,
    /// Where to follow its progress (`GET`).
    pub progress_url: String,
}

/// The last error a link's sync hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// Machine-readable kind (`pms`, `pms_unauthorized`, `market`, `consent_missing`, ...).
    pub kind: String,
    /// What happened.
    pub message: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Counts by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeverityCounts {
    /// Error-level findings.
    pub error: u32,
    /// Warnings.
    pub warning: u32,
    /// Informational.
    pub info: u32,
}

impl SeverityCounts {
    fn of(findings: &[FindingView]) -> Self {
        let mut c = SeverityCounts::default();
        for f in findings {
            match f.severity.as_str() {
                "error" => c.error += 1,
                "warning" => c.warning += 1,
                _ => c.info += 1,
            }
        }
        c
    }
}

/// Bookings by outcome, among the most recent [`LOG_LIMIT`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookingCounts {
    /// Confirmed (in the diary, the marketplace told).
    pub confirmed: u32,
    /// Rejected, with a reason.
    pub rejected: u32,
    /// Still being processed.
    pub in_progress: u32,
    /// In the diary, but the marketplace no longer waited for them when they were confirmed
    /// (404/410): the practice checks them with the patient.
    #[serde(default)]
    pub gone: u32,
}

/// One practice (link) with its health at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PracticeSummary {
    /// The practice's name (as [`LinkView::name`]).
    pub name: Option<String>,
    /// The link.
    pub link: LinkView,
    /// Whether this node works the link now (holds its lease).
    pub running_here: bool,
    /// Last successful read of the PMS (RFC 3339).
    pub last_pms_read_at: Option<String>,
    /// Last successful publish to the marketplace (RFC 3339).
    pub last_publish_at: Option<String>,
    /// Last poll of the marketplace's requests (RFC 3339).
    pub last_poll_at: Option<String>,
    /// Seconds since the last publish (not the freshness: a practice whose diary did not
    /// change is up to date however long ago it was published; see `freshness`).
    pub lag_seconds: Option<i64>,
    /// How fresh the published availability is: from a PMS change to its publish.
    pub freshness: FreshnessView,
    /// The last error, until a sync succeeds.
    pub last_error: Option<ErrorView>,
    /// Consent to publish as last seen: `unknown`, `granted` or `withdrawn`.
    pub consent: String,
    /// Why the practice is unhealthy (`disabled`, `error`, `consent_missing`, `never_published`,
    /// `stale`, `bookings_rejected`, `not_served`, `lease_lapsed`: this node could not renew
    /// its lease in time, the database unreachable, locked or full; `disk_full`: the database
    /// refuses writes for want of space; or a flag raised by the service); empty when healthy.
    pub unhealthy: Vec<String>,
    /// The integration-health findings (no PMS read), by severity.
    pub health_findings: SeverityCounts,
    /// The setup findings of the last whole-horizon PMS read (stored with the sync state), by
    /// severity.
    pub setup_findings: SeverityCounts,
    /// The setup findings' codes (`stacking-off`, …).
    pub setup_finding_codes: Vec<String>,
    /// The most recent bookings, by outcome.
    pub bookings: BookingCounts,
}

/// Freshness as it is: the time from a change in the PMS (its webhook or change-feed event, a
/// desk change included) to the marketplace holding the result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FreshnessView {
    /// Nothing waits to be published (and something was published).
    pub up_to_date: bool,
    /// The oldest change seen and not yet published (RFC 3339).
    pub waiting_since: Option<String>,
    /// How long it has waited, in seconds.
    pub waiting_seconds: Option<i64>,
    /// From the last published change to its publish, in seconds.
    pub last_seconds: Option<f64>,
    /// The 99th percentile of that over the last 24 hours, in seconds (nearest rank).
    pub p99_seconds: Option<f64>,
    /// How many changes were published in the last 24 hours.
    pub changes_24h: u64,
}

/// Query of `GET /api/practices`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PracticesQuery {
    /// Part of a name (PMS or marketplace), a PMS site slug or a marketplace practice id.
    #[serde(default)]
    pub q: Option<String>,
    /// `all` (default), `needs_attention`, `parked`, `disabled`, or a setup finding code
    /// (`stacking-off`, …).
    #[serde(default)]
    pub attention: Option<String>,
    /// Page number from 1 (default 1).
    #[serde(default)]
    pub page: Option<u32>,
    /// Practices per page, 1 to [`MAX_PER_PAGE`] (default [`DEFAULT_PER_PAGE`]).
    #[serde(default)]
    pub per_page: Option<u32>,
}

/// Practices per page when not asked.
pub const DEFAULT_PER_PAGE: u32 = 50;
/// The most practices per page.
pub const MAX_PER_PAGE: u32 = 500;

/// One page of the practice list, in attention order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PracticePage {
    /// How many practices match the search and filter.
    pub total: u64,
    /// This page's number (from 1).
    pub page: u32,
    /// Practices per page.
    pub per_page: u32,
    /// The page's practices.
    pub items: Vec<PracticeSummary>,
}

/// A checked list query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The search (trimmed; empty: every practice).
    pub q: String,
    /// The filter, as given (`all` when none).
    pub attention: String,
    /// The store's filter.
    pub filter: slotbridge_store::ListFilter,
    /// Page from 1.
    pub page: u32,
    /// Per page.
    pub per_page: u32,
}

impl ListRequest {
    /// Check a list query: the filter known, the page and its length in range.
    pub fn parse(q: &PracticesQuery) -> Result<Self, AdminError> {
        let search = q.q.as_deref().unwrap_or_default().trim().to_owned();
        if search.chars().count() > 200 {
            return Err(invalid("q", "expected at most 200 characters"));
        }
        let attention = q
            .attention
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or("all")
            .to_owned();
        let filter = list_filter(&attention)?;
        let page = q.page.unwrap_or(1);
        if page == 0 {
            return Err(invalid("page", "expected a page number from 1, found 0"));
        }
        let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(invalid(
                "per_page",
                format!("expected 1 to {MAX_PER_PAGE}, found {per_page}"),
            ));
        }
        Ok(ListRequest {
            q: search,
            attention,
            filter,
            page,
            per_page,
        })
    }

    /// The filter in words, for the audit log and the bulk action's record.
    pub fn describe(&self) -> String {
        let mut out = format!("attention={}", self.attention);
        if !self.q.is_empty() {
            out.push_str(&format!(", q={:?}", self.q));
        }
        out
    }
}

/// The failure kinds that park a link until it is fixed.
fn parked_kinds() -> Vec<String> {
    FailureKind::ALL
        .into_iter()
        .filter(|k| {
            matches!(
                k.class(),
                slotbridge_domain::backoff::FailureClass::Lasting(_)
            )
        })
        .map(|k| k.as_str().to_owned())
        .collect()
}

fn list_filter(attention: &str) -> Result<slotbridge_store::ListFilter, AdminError> {
    use slotbridge_store::ListFilter;
    Ok(match attention {
        "all" => ListFilter::All,
        "needs_attention" => ListFilter::NeedsAttention,
        "parked" => ListFilter::Parked {
            kinds: parked_kinds(),
        },
        "disabled" => ListFilter::Disabled,
        code if !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            ListFilter::Finding(code.to_owned())
        }
        other => {
            return Err(invalid(
                "attention",
                format!(
                    "expected all, needs_attention, parked, disabled or a finding code like \
                     stacking-off, found {other:?}"
                ),
            ));
        }
    })
}

/// A finding: what is wrong and how to fix it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    /// Stable code, e.g. `stacking-off`.
    pub code: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// The PMS practitioner id it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// The PMS booking reason it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What is wrong and what it does to availability or bookings.
    pub explanation: String,
    /// How to fix it, in the PMS's or the marketplace portal's own terms.
    pub fix: String,
}

impl From<Finding> for FindingView {
    fn from(f: Finding) -> Self {
        FindingView {
            code: f.code.as_str().to_owned(),
            severity: f.severity.as_str().to_owned(),
            practitioner: f.practitioner,
            reason: f.reason,
            explanation: f.explanation,
            fix: f.fix,
        }
    }
}

/// Query of `GET /api/links/{id}/explain`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// PMS practitioner id.
    pub practitioner: String,
    /// Practice-local start, `YYYY-MM-DDTHH:MM`.
    pub at: String,
    /// Booking reason id (every reason of the practitioner when missing).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer for one booking reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasonAnswerView {
    /// Reason id.
    pub reason: String,
    /// Reason name.
    pub reason_name: String,
    /// Whether a slot of this reason starting then is published.
    pub published: bool,
    /// The rule that removed it: `horizon`, `closed_date`, `outside_sessions`, `break`,
    /// `block`, `appointment`, `window`, `grid`, `notice`, `dst_gap`, `stacking`, `no_rule`.
    pub cause: Option<String>,
    /// In words.
    pub detail: String,
}

/// Why there is (no) slot at a time for a practitioner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExplanationView {
    /// The practitioner id.
    pub practitioner: String,
    /// The practice-local time asked about.
    pub at: String,
    /// Whether a slot is published then.
    pub published: bool,
    /// The rule that removed it (see [`ReasonAnswerView::cause`]).
    pub cause: Option<String>,
    /// One sentence.
    pub summary: String,
    /// Per reason.
    pub reasons: Vec<ReasonAnswerView>,
}

impl From<slotbridge_domain::explain::Explanation> for ExplanationView {
    fn from(e: slotbridge_domain::explain::Explanation) -> Self {
        ExplanationView {
            practitioner: e.practitioner,
            at: e.at.to_string(),
            published: e.published,
            cause: e.cause.map(|c| c.as_str().to_owned()),
            summary: e.summary,
            reasons: e
                .reasons
                .into_iter()
                .map(|r| ReasonAnswerView {
                    reason: r.reason,
                    reason_name: r.reason_name,
                    published: r.published,
                    cause: r.cause.map(|c| c.as_str().to_owned()),
                    detail: r.detail,
                })
                .collect(),
        }
    }
}

/// Query of `GET /api/links/{id}/week`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WeekQuery {
    /// First day (practice-local `YYYY-MM-DD`); today when missing.
    #[serde(default)]
    pub start: Option<String>,
}

/// One published slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlotView {
    /// Practice-local start, `HH:MM`.
    pub start: String,
    /// Practice-local end, `HH:MM`.
    pub end: String,
    /// Booking reason id.
    pub reason: String,
}

/// One practitioner's published slots on one day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WeekDay {
    /// The date.
    pub date: String,
    /// Whether the practice is closed that day.
    pub closed: bool,
    /// The slots, by start.
    pub slots: Vec<SlotView>,
    /// Why the day shows fewer slots than its diary has room for, by the PMS's online-booking
    /// rules (its notice, how far ahead it offers bookings, its per-day-segment limit).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One practitioner's week.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PractitionerWeek {
    /// PMS practitioner id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Seven days from the week's start.
    pub days: Vec<WeekDay>,
}

/// The published availability of a week, per practitioner: the engine's slots from a fresh PMS
/// read, the same computation the publisher sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WeekView {
    /// The practice's name in the PMS.
    pub practice_name: String,
    /// The practice's IANA time zone.
    pub timezone: String,
    /// First day.
    pub start: String,
    /// The seven dates.
    pub dates: Vec<String>,
    /// Today (practice-local).
    pub today: String,
    /// Last day of the horizon.
    pub horizon_end: String,
    /// Per practitioner publishing online.
    pub practitioners: Vec<PractitionerWeek>,
    /// The booking reasons published online.
    pub reasons: Vec<ReasonRef>,
}

/// A booking reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasonRef {
    /// Reason id.
    pub id: String,
    /// Reason name.
    pub name: String,
}

/// A marketplace request as logged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    /// The marketplace's request id.
    pub request_id: String,
    /// Its kind.
    pub kind: String,
    /// `received` or `handled`.
    pub state: String,
    /// When it arrived (RFC 3339).
    pub received_at: String,
    /// When it was answered.
    pub handled_at: Option<String>,
    /// How it was answered.
    pub outcome: Option<String>,
    /// Detail.
    pub detail: Option<String>,
}

impl From<MarketRequest> for RequestView {
    fn from(r: MarketRequest) -> Self {
        RequestView {
            request_id: r.request_id,
            kind: r.kind,
            state: r.state.as_str().to_owned(),
            received_at: ts(r.received_at),
            handled_at: r.handled_at.map(ts),
            outcome: r.outcome,
            detail: r.detail,
        }
    }
}

/// One state transition of a booking.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransitionView {
    /// The state before (none for the first).
    pub from: Option<String>,
    /// The state after (the same as `from` for a retry).
    pub to: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

impl From<BookingEvent> for TransitionView {
    fn from(e: BookingEvent) -> Self {
        TransitionView {
            from: e.from.map(|s| s.as_str().to_owned()),
            to: e.to.as_str().to_owned(),
            reason: e.reason,
            at: ts(e.at),
        }
    }
}

/// A booking with every transition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BookingView {
    /// The marketplace's booking id.
    pub booking_id: String,
    /// `received`, `patient_resolved`, `inserted`, `confirmed` or `rejected`.
    pub state: String,
    /// The appointment's practice-local start, as the marketplace sent it.
    pub appointment_time: Option<String>,
    /// The PMS resource (practitioner and specialty) booked.
    pub resource: Option<String>,
    /// The marketplace appointment type's name.
    pub appointment_type: Option<String>,
    /// The PMS appointment, once inserted.
    pub pms_appointment_id: Option<String>,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// The last retryable error.
    pub last_error: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Every transition, oldest first.
    pub transitions: Vec<TransitionView>,
}

fn booking_view(b: Booking, events: Vec<BookingEvent>) -> BookingView {
    let field = |k: &str| b.request.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    BookingView {
        appointment_time: field("pmsAppointmentTime"),
        resource: field("pmsResourceId"),
        appointment_type: field("comments"),
        booking_id: b.booking_id,
        state: b.state.as_str().to_owned(),
        pms_appointment_id: b.pms_appointment_id,
        reject_reason: b.reject_reason,
        last_error: b.last_error,
        attempts: b.attempts,
        received_at: ts(b.created_at),
        updated_at: ts(b.updated_at),
        transitions: events.into_iter().map(TransitionView::from).collect(),
    }
}

/// A link's request and booking log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkLog {
    /// Marketplace requests logged for the link.
    pub requests: Vec<RequestView>,
    /// Bookings with their transitions.
    pub bookings: Vec<BookingView>,
}

fn link_id(id: &str) -> Result<LinkId, AdminError> {
    id.parse()
        .map_err(|_| AdminError::NotFound(format!("no link {id:?}")))
}

/// The link, or [`AdminError::NotFound`].
pub async fn load_link(ctx: &Ctx, id: &str) -> Result<Link, AdminError> {
    let lid = link_id(id)?;
    ctx.store
        .link(lid)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no link {id}")))
}

/// Every link.
pub async fn list_links(ctx: &Ctx) -> Result<Vec<LinkView>, AdminError> {
    Ok(ctx
        .store
        .list_links()
        .await?
        .iter()
        .map(LinkView::from)
        .collect())
}

/// One link.
pub async fn get_link(ctx: &Ctx, id: &str) -> Result<LinkView, AdminError> {
    Ok(LinkView::from(&load_link(ctx, id).await?))
}

fn non_empty(field: &'static str, v: &str) -> Result<(), AdminError> {
    if v.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(())
}

/// A key or id sent to the PMS or the marketplace in a header: 1 to 512 visible ASCII
/// characters (anything else could never be sent, so it is refused when given, not when used).
fn header_text(field: &'static str, v: &str) -> Result<(), AdminError> {
    non_empty(field, v)?;
    if v.len() > 512 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            field,
            format!(
                "expected 1 to 512 visible ASCII characters (no spaces), found {} characters",
                v.chars().count()
            ),
        ));
    }
    Ok(())
}

/// Link a PMS site to a marketplace practice.
pub async fn create_link(ctx: &Ctx, req: CreateLink) -> Result<LinkView, AdminError> {
    let (site_slug, pms) = match req.pms_kind {
        PmsKind::Exact => {
            if req.business_id.is_some() {
                return Err(invalid(
                    "business_id",
                    "only a Cliniko link has a business id",
                ));
            }
            let slug = SiteSlug::parse(req.site_slug.trim())
                .map_err(|e| invalid("site_slug", e.to_string()))?;
            (slug, LinkPms::Exact)
        }
        PmsKind::Cliniko => {
            let business = req.business_id.as_deref().map(str::trim).unwrap_or("");
            if business.is_empty()
                || business.len() > 40
                || !business.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid(
                    "business_id",
                    "expected the Cliniko business id: 1 to 40 digits",
                ));
            }
            if !req.site_slug.trim().is_empty() {
                return Err(invalid(
                    "site_slug",
                    "a Cliniko link has no site slug: give business_id",
                ));
            }
            slotbridge_pms::ClinikoKey::parse(SecretString::from(req.pms_api_key.clone()))
                .map_err(|_| {
                    invalid(
                        "pms_api_key",
                        "expected a Cliniko API key: one word, its shard after the last `-`",
                    )
                })?;
            let slug = slotbridge_pms::ClinikoConnector::site_slug(business)
                .map_err(|_| invalid("business_id", "expected digits"))?;
            (
                slug,
                LinkPms::Cliniko {
                    business_id: business.to_owned(),
                },
            )
        }
    };
    let horizon_days = match req.horizon_days {
        Some(d) => HorizonDays::new(d)?,
        None => HorizonDays::DEFAULT,
    };
    header_text("pms_api_key", &req.pms_api_key)?;
    header_text("practice_id", req.practice_id.trim())?;
    header_text("practice_key", &req.practice_key)?;
    let link = ctx
        .store
        .create_link_of(
            NewLink {
                site_slug,
                pms_api_key: SecretString::from(req.pms_api_key),
                market_practice_id: req.practice_id.trim().to_owned(),
                market_practice_key: SecretString::from(req.practice_key),
                enabled: req.enabled.unwrap_or(true),
                horizon_days,
            },
            pms,
        )
        .await?;
    let link = match req.market_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            ctx.store
                .set_market_practice_name(link.id, Some(name))
                .await?
        }
        _ => link,
    };
    Ok(LinkView::from(&link))
}

/// Change a link; the worker restarts with a full configuration send.
pub async fn update_link(ctx: &Ctx, id: &str, req: UpdateLink) -> Result<LinkView, AdminError> {
    let lid = link_id(id)?;
    if let Some(p) = &req.practice_id {
        header_text("practice_id", p.trim())?;
    }
    for (field, v) in [
        ("practice_key", &req.practice_key),
        ("pms_api_key", &req.pms_api_key),
    ] {
        if let Some(v) = v {
            header_text(field, v)?;
        }
    }
    let name_only = req.enabled.is_none()
        && req.practice_id.is_none()
        && req.practice_key.is_none()
        && req.pms_api_key.is_none()
        && req.horizon_days.is_none();
    if let Some(name) = &req.market_name {
        let link = ctx
            .store
            .set_market_practice_name(lid, Some(name.as_str()))
            .await?;
        if name_only {
            return Ok(LinkView::from(&link));
        }
    }
    let changes = LinkChanges {
        enabled: req.enabled,
        market_practice_id: req.practice_id.map(|p| p.trim().to_owned()),
        market_practice_key: req.practice_key.map(SecretString::from),
        pms_api_key: req.pms_api_key.map(SecretString::from),
        horizon_days: req.horizon_days.map(HorizonDays::new).transpose()?,
        site_slug: None,
    };
    let link = ctx.store.update_link(lid, changes).await?;
    // The node that works the link restarts its worker (a full configuration send) at its next
    // lease round; this node's round runs now.
    ctx.links_changed();
    Ok(LinkView::from(&link))
}

/// Ask the link's worker to resend its configuration or its availability.
pub async fn resync(ctx: &Ctx, id: &str, what: ResyncWhat) -> Result<ResyncAccepted, AdminError> {
    let link = load_link(ctx, id).await?;
    let trigger = match what {
        ResyncWhat::Config => Trigger::ResyncConfig,
        ResyncWhat::Availability => Trigger::ResyncAvailability,
    };
    if !link.enabled {
        return Err(AdminError::Conflict(
            "the link is disabled: enable it first".into(),
        ));
    }
    if !ctx.trigger(link.id, trigger) {
        return Err(AdminError::Conflict(
            "the link is not worked by this node (another node holds it, or it is starting); \
             resync there or try again in a few seconds"
                .into(),
        ));
    }
    Ok(ResyncAccepted {
        link: link.id.to_string(),
        what,
        progress_url: format!("/api/links/{}/resync", link.id),
    })
}

/// Where a resync is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResyncProgressView {
    /// What is resent.
    pub what: ResyncWhat,
    /// When it was asked for (RFC 3339).
    pub requested_at: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Why it failed.
    pub message: Option<String>,
    /// When it finished (RFC 3339).
    pub finished_at: Option<String>,
    /// (resource, date) pairs of availability sent so far, once the worker knows the total.
    pub sent_days: Option<u32>,
    /// (resource, date) pairs in the horizon, once known.
    pub total_days: Option<u32>,
}

impl ResyncProgressView {
    /// Done or failed.
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed")
    }
}

/// The progress of the link's last resync asked on this node (the worker reports it).
pub async fn resync_progress(ctx: &Ctx, id: &str) -> Result<ResyncProgressView, AdminError> {
    let link = load_link(ctx, id).await?;
    let p = ctx.resync_progress(link.id).ok_or_else(|| {
        AdminError::NotFound(format!(
            "no resync of link {} was asked on this node",
            link.id
        ))
    })?;
    let known = |n: usize| (p.total_days > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(ResyncProgressView {
        what: if p.what == "config" {
            ResyncWhat::Config
        } else {
            ResyncWhat::Availability
        },
        requested_at: ts(p.requested_at),
        state: match p.state {
            ResyncState::Queued => "queued",
            ResyncState::Running => "running",
            ResyncState::Done => "done",
            ResyncState::Failed => "failed",
        }
        .to_owned(),
        message: p.error.clone(),
        finished_at: p.finished_at.map(ts),
        sent_days: known(p.sent_days),
        total_days: known(p.total_days),
    })
}

fn health_view(
    state: &SyncState,
    bookings: &[Booking],
    now: Timestamp,
    unserved: bool,
) -> HealthView {
    let error_kind = state
        .last_error
        .as_ref()
        .and_then(|e| FailureKind::parse(&e.kind));
    let message_if = |kind: FailureKind| {
        state
            .last_error
            .as_ref()
            .filter(|_| error_kind == Some(kind))
            .map(|e| e.message.clone())
    };
    HealthView {
        pms_auth: match error_kind {
            Some(FailureKind::PmsUnauthorized) => PmsAuth::Rejected,
            Some(FailureKind::PmsKeyRevoked) => PmsAuth::Revoked,
            _ => PmsAuth::Ok,
        },
        pms_reachable: error_kind != Some(FailureKind::Pms),
        pms_error: message_if(FailureKind::Pms),
        consent: match state.consent {
            ConsentStatus::Granted => Consent::Granted,
            ConsentStatus::Withdrawn => Consent::Missing,
            ConsentStatus::Unknown => Consent::Unknown,
        },
        market_reachable: error_kind != Some(FailureKind::Market),
        market_error: message_if(FailureKind::Market),
        // Bookings still in the outbox are the critical requests the marketplace is waiting on
        // (the worker answers availability and configuration requests as it reads them).
        oldest_open_critical_request: bookings
            .iter()
            .filter(|b| !b.state.is_terminal())
            .map(|b| SignedDuration::from_secs(now.duration_since(b.created_at).as_secs()))
            .max(),
        availability_age: state
            .last_publish_at
            .map(|at| SignedDuration::from_secs(now.duration_since(at).as_secs())),
        availability_stale_after: STALE_AFTER,
        rejected_bookings: bookings
            .iter()
            .filter(|b| b.late_outcome.is_none())
            .filter_map(|b| {
                b.reject_reason.as_ref().map(|reason| RejectedBooking {
                    booking_id: b.booking_id.clone(),
                    reason: reason.clone(),
                })
            })
            .collect(),
        late_answers: bookings
            .iter()
            .filter_map(|b| {
                b.late_outcome.as_ref().map(|outcome| RejectedBooking {
                    booking_id: b.booking_id.clone(),
                    reason: outcome.clone(),
                })
            })
            .collect(),
        unserved,
        // Node-wide, not the link's: the callers set it from the node's context.
        disk_full: false,
    }
}

/// Whether no node serves `link` now (enabled, linked a while ago, and no live lease).
async fn is_unserved(ctx: &Ctx, link: &Link) -> Result<bool, AdminError> {
    if !link.enabled {
        return Ok(false);
    }
    Ok(crate::supervisor::unserved_links(ctx)
        .await?
        .contains(&link.id))
}

fn summarize(
    ctx: &Ctx,
    link: &Link,
    state: &SyncState,
    bookings: &[Booking],
    now: Timestamp,
    unserved: bool,
) -> PracticeSummary {
    let mut health = health_view(state, bookings, now, unserved);
    health.disk_full = ctx.disk_full();
    let health_findings: Vec<FindingView> = diagnostics::diagnose_health(&health)
        .into_iter()
        .map(FindingView::from)
        .collect();
    let lag = state
        .last_publish_at
        .map(|at| now.duration_since(at).as_secs().max(0));
    let mut counts = BookingCounts::default();
    for b in bookings {
        match b.state {
            slotbridge_store::BookingState::Confirmed => counts.confirmed += 1,
            slotbridge_store::BookingState::Rejected => counts.rejected += 1,
            slotbridge_store::BookingState::Gone => counts.gone += 1,
            _ => counts.in_progress += 1,
        }
    }
    let mut unhealthy = Vec::new();
    if !link.enabled {
        unhealthy.push("disabled".to_owned());
    }
    if let Some(e) = &state.last_error {
        unhealthy.push(format!("error: {}", e.kind));
    }
    if state.consent == ConsentStatus::Withdrawn {
        unhealthy.push("consent_missing".to_owned());
    }
    // As `Store::practice_health` counts them (`health_rules`).
    match state.last_publish_at {
        None if link.enabled => unhealthy.push("never_published".to_owned()),
        Some(at) if link.enabled && now.duration_since(at) > STALE_AFTER => {
            unhealthy.push("stale".to_owned())
        }
        _ => {}
    }
    if counts.rejected > 0 {
        unhealthy.push("bookings_rejected".to_owned());
    }
    if unserved {
        unhealthy.push("not_served".to_owned());
    }
    unhealthy.extend(state.health_flags.iter().cloned());
    if ctx.disk_full() {
        // The node can write nothing: no booking is answered, no sync state kept.
        unhealthy.push("disk_full".to_owned());
    }
    if ctx.lease_lapsed(link.id) {
        // Nothing is published or answered for it until the database takes writes again.
        unhealthy.push("lease_lapsed".to_owned());
    }
    PracticeSummary {
        name: link.display_name().map(str::to_owned),
        link: LinkView::from(link),
        running_here: ctx.running().contains(&link.id),
        last_pms_read_at: state.last_pms_read_at.map(ts),
        last_publish_at: state.last_publish_at.map(ts),
        last_poll_at: state.last_poll_at.map(ts),
        lag_seconds: lag,
        last_error: state.last_error.as_ref().map(|e| ErrorView {
            kind: e.kind.clone(),
            message: e.message.clone(),
            at: ts(e.at),
        }),
        consent: state.consent.as_str().to_owned(),
        unhealthy,
        health_findings: SeverityCounts::of(&health_findings),
        setup_findings: SeverityCounts {
            error: state.setup_findings.errors,
            warning: state.setup_findings.warnings,
            info: 0,
        },
        setup_finding_codes: state.setup_findings.codes.iter().cloned().collect(),
        freshness: freshness_view(state, now, None),
        bookings: counts,
    }
}

fn secs(d: SignedDuration) -> f64 {
    d.as_secs_f64()
}

/// Freshness from the stored state, and the day's p99 (changes, p99) when it was read.
fn freshness_view(
    state: &SyncState,
    now: Timestamp,
    day: Option<(u64, SignedDuration)>,
) -> FreshnessView {
    FreshnessView {
        up_to_date: state.change_pending_since.is_none() && state.last_publish_at.is_some(),
        waiting_since: state.change_pending_since.map(ts),
        waiting_seconds: state
            .change_pending_since
            .map(|at| now.duration_since(at).as_secs().max(0)),
        last_seconds: state.last_freshness.map(secs),
        p99_seconds: day.map(|(_, p)| secs(p)),
        changes_24h: day.map_or(0, |(n, _)| n),
    }
}

/// The summary with the day's freshness percentile read.
async fn with_day_freshness(
    ctx: &Ctx,
    mut summary: PracticeSummary,
    state: &SyncState,
    now: Timestamp,
) -> Result<PracticeSummary, AdminError> {
    let day = ctx.store.freshness_p99(state.link_id, now).await?;
    summary.freshness = freshness_view(state, now, day);
    Ok(summary)
}

/// One page of the practice list: search, filter and attention order in the store, so a
/// page costs the same with ten practices or ten thousand (no PMS read).
pub async fn practices_page(ctx: &Ctx, q: &ListRequest) -> Result<PracticePage, AdminError> {
    let now = ctx.now();
    let page = ctx
        .store
        .list_practices(&slotbridge_store::ListQuery {
            search: q.q.clone(),
            filter: q.filter.clone(),
            offset: u64::from(q.page - 1) * u64::from(q.per_page),
            limit: u64::from(q.per_page),
        })
        .await?;
    let unserved: std::collections::HashSet<LinkId> = if page.links.is_empty() {
        Default::default()
    } else {
        crate::supervisor::unserved_links(ctx)
            .await?
            .into_iter()
            .collect()
    };
    let mut items = Vec::with_capacity(page.links.len());
    for id in page.links {
        // A link deleted since the page was read is left out.
        let Some(link) = ctx.store.link(id).await? else {
            continue;
        };
        let state = ctx.store.sync_state(id).await?;
        let bookings = ctx.store.bookings_for_link(id, LOG_LIMIT).await?;
        let summary = summarize(ctx, &link, &state, &bookings, now, unserved.contains(&id));
        items.push(with_day_freshness(ctx, summary, &state, now).await?);
    }
    Ok(PracticePage {
        total: page.total,
        page: q.page,
        per_page: q.per_page,
        items,
    })
}

/// Every link id the list's search and filter match, in attention order (for bulk actions).
pub async fn matching_links(ctx: &Ctx, q: &ListRequest) -> Result<Vec<LinkId>, AdminError> {
    Ok(ctx
        .store
        .list_practices(&slotbridge_store::ListQuery {
            search: q.q.clone(),
            filter: q.filter.clone(),
            offset: 0,
            limit: u64::MAX,
        })
        .await?
        .links)
}

/// The store's part of [`PracticeSummary::unhealthy`] as of `now`, for counting practices by
/// health in SQL ([`crate::fleet::practices_by_health`]); [`summarize`] applies the same rules
/// one practice at a time.
pub fn health_rules(ctx: &Ctx, now: Timestamp) -> slotbridge_store::HealthRules {
    slotbridge_store::HealthRules {
        stale_before: now.checked_sub(STALE_AFTER).unwrap_or(now),
        recent_bookings: LOG_LIMIT,
        linked_before: crate::supervisor::linked_before(ctx),
    }
}

/// One practice with its health at a glance.
pub async fn practice(ctx: &Ctx, id: &str) -> Result<PracticeSummary, AdminError> {
    let link = load_link(ctx, id).await?;
    let state = ctx.store.sync_state(link.id).await?;
    let bookings = ctx.store.bookings_for_link(link.id, LOG_LIMIT).await?;
    let unserved = is_unserved(ctx, &link).await?;
    let now = ctx.now();
    let summary = summarize(ctx, &link, &state, &bookings, now, unserved);
    with_day_freshness(ctx, summary, &state, now).await
}

/// A fresh read of a link's PMS: the setup and the diary over the link's horizon.
pub struct PmsRead {
    /// The setup.
    pub setup: PracticeSetup,
    /// The diary from `today` over the horizon.
    pub diary: Diary,
    /// Practice-local today.
    pub today: Date,
    /// Horizon in days.
    pub horizon: u32,
    /// When it was read.
    pub now: Timestamp,
}

/// Read the link's PMS the way the publisher does.
pub async fn read_pms(ctx: &Ctx, link: &Link) -> Result<PmsRead, PmsError> {
    let pms = ctx.pms_connector(link)?;
    let now = ctx.now();
    let setup = pms.read_setup().await?;
    let horizon = Horizon::new(setup.timezone.time_zone(), now, link.horizon_days);
    let diary = pms.read_diary(horizon.start(), horizon.end()).await?;
    Ok(PmsRead {
        setup,
        diary,
        today: horizon.start(),
        horizon: link.horizon_days.days(),
        now,
    })
}

/// The findings from an already made read (or its failure) and the link's health.
pub async fn findings_from(
    ctx: &Ctx,
    link: &Link,
    read: Result<&PmsRead, &PmsError>,
) -> Result<Vec<FindingView>, AdminError> {
    let state = ctx.store.sync_state(link.id).await?;
    let bookings = ctx.store.bookings_for_link(link.id, LOG_LIMIT).await?;
    let mut health = health_view(&state, &bookings, ctx.now(), is_unserved(ctx, link).await?);
    health.disk_full = ctx.disk_full();
    let found = match read {
        Ok(r) => {
            let input = Input::new(&r.setup, &r.diary, r.today, r.horizon).with_health(&health);
            let input = match link.pms {
                LinkPms::Exact => input,
                LinkPms::Cliniko { .. } => input.for_cliniko(),
            };
            diagnostics::diagnose(&input)
        }
        Err(e) => {
            health.pms_auth = match e {
                PmsError::Unauthorized { .. } => PmsAuth::Rejected,
                PmsError::KeyRevoked { .. } => PmsAuth::Revoked,
                _ => health.pms_auth,
            };
            if health.pms_auth == PmsAuth::Ok {
                health.pms_reachable = false;
                health.pms_error = Some(e.to_string());
            }
            // Without the setup only the health can be judged.
            diagnostics::diagnose_health(&health)
        }
    };
    let mut found: Vec<FindingView> = found.into_iter().map(FindingView::from).collect();
    found.sort_by_key(|f| match f.severity.as_str() {
        "error" => 0,
        "warning" => 1,
        _ => 2,
    });
    Ok(found)
}

/// The diagnostics for the link's practice, from a fresh read of the PMS and the link's sync
/// state. When the PMS cannot be read, that is the finding.
pub async fn findings(ctx: &Ctx, id: &str) -> Result<Vec<FindingView>, AdminError> {
    let link = load_link(ctx, id).await?;
    let read = read_pms(ctx, &link).await;
    findings_from(ctx, &link, read.as_ref()).await
}

fn valid_snapshot(
    read: &PmsRead,
) -> Result<slotbridge_domain::snapshot::ValidSnapshot, AdminError> {
    to_snapshot(&read.setup, &read.diary, read.now, read.horizon)
        .validate()
        .map_err(|e| AdminError::PmsData(e.to_string()))
}

/// Why there is (no) slot then, from an already made read.
pub fn explain_from(read: &PmsRead, q: &ExplainQuery) -> Result<ExplanationView, AdminError> {
    let at = explain_at(q)?;
    let valid = valid_snapshot(read)?;
    let reason = q.reason.as_deref().filter(|r| !r.trim().is_empty());
    slotbridge_domain::explain::explain(&valid, q.practitioner.trim(), at, reason)
        .map(ExplanationView::from)
        .map_err(|e| AdminError::NotFound(e.to_string()))
}

/// The practice-local time an explain question is about; the question checked before the PMS is
/// read, so bad input is refused whatever the PMS says.
fn explain_at(q: &ExplainQuery) -> Result<DateTime, AdminError> {
    let at: DateTime = q.at.trim().parse().map_err(|e| {
        invalid(
            "at",
            format!(
                "expected a practice-local time like 2026-04-07T10:00, found {:?} ({e})",
                q.at
            ),
        )
    })?;
    if q.practitioner.trim().is_empty() {
        return Err(invalid("practitioner", "must not be empty"));
    }
    Ok(at)
}

/// Why there is (no) slot at a time for a practitioner, from a fresh read of the PMS.
pub async fn explain(ctx: &Ctx, id: &str, q: &ExplainQuery) -> Result<ExplanationView, AdminError> {
    explain_at(q)?;
    let link = load_link(ctx, id).await?;
    let read = read_pms(ctx, &link).await?;
    explain_from(&read, q)
}

fn hhmm(t: jiff::civil::Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// The week's published availability from an already made read.
pub fn week_from(read: &PmsRead, start: Option<&str>) -> Result<WeekView, AdminError> {
    let start = week_start(start)?.unwrap_or(read.today);
    let dates: Vec<Date> = (0..7)
        .filter_map(|n| start.checked_add(jiff::Span::new().days(n)).ok())
        .collect();
    let valid = valid_snapshot(read)?;
    let tz = valid.timezone().clone();
    let slots = slotbridge_domain::availability::compute_slots(&valid);
    // practitioner -> date -> slots
    let mut by: BTreeMap<(&str, Date), Vec<SlotView>> = BTreeMap::new();
    for s in &slots {
        let start_local = s.start.to_zoned_datetime(tz.clone());
        let date = start_local.date();
        if !dates.contains(&date) {
            continue;
        }
        let end_local = s.end.to_zoned_datetime(tz.clone());
        let end = if end_local.date() == date {
            hhmm(end_local.time())
        } else {
            "24:00".to_owned()
        };
        by.entry((s.practitioner, date))
            .or_default()
            .push(SlotView {
                start: hhmm(start_local.time()),
                end,
                reason: s.reason.to_owned(),
            });
    }
    let closed: Vec<Date> = valid
        .days()
        .iter()
        .filter(|d| d.is_closed())
        .map(|d| d.date())
        .collect();
    let notes = slotbridge_domain::explain::RuleNotes::new(&valid);
    let last = valid.days().last().map(|d| d.date()).unwrap_or(read.today);
    let link_end = read
        .today
        .checked_add(jiff::Span::new().days(i64::from(read.horizon.max(1)) - 1))
        .unwrap_or(read.today);
    let beyond = |d: &Date| match read.setup.online_rules.max_days_ahead {
        Some(days) if *d > last && *d <= link_end => vec![format!(
            "Beyond how far ahead the practice offers online bookings ({days} days)."
        )],
        _ => Vec::new(),
    };
    let practitioners = valid
        .practitioners()
        .iter()
        .map(|p| PractitionerWeek {
            id: p.id().to_owned(),
            name: if p.name().is_empty() {
                p.id().to_owned()
            } else {
                p.name().to_owned()
            },
            days: dates
                .iter()
                .map(|d| {
                    let mut slots = by.remove(&(p.id(), *d)).unwrap_or_default();
                    slots.sort_by(|a, b| a.start.cmp(&b.start).then(a.reason.cmp(&b.reason)));
                    let mut day_notes = notes.for_day(p.id(), *d);
                    day_notes.extend(beyond(d));
                    WeekDay {
                        date: d.to_string(),
                        closed: closed.contains(d),
                        slots,
                        notes: day_notes,
                    }
                })
                .collect(),
        })
        .collect();
    // The last day published: the link's horizon, or less when the PMS offers bookings less far
    // ahead.
    let horizon_end = last;
    Ok(WeekView {
        practice_name: read.setup.name.clone(),
        timezone: valid.timezone_name().to_owned(),
        start: start.to_string(),
        dates: dates.iter().map(Date::to_string).collect(),
        today: read.today.to_string(),
        horizon_end: horizon_end.to_string(),
        practitioners,
        reasons: valid
            .reasons()
            .iter()
            .map(|r| ReasonRef {
                id: r.id().to_owned(),
                name: r.name().to_owned(),
            })
            .collect(),
    })
}

/// The first day of a week view, when one is given (checked before the PMS is read).
fn week_start(start: Option<&str>) -> Result<Option<Date>, AdminError> {
    start
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Date>().map_err(|e| {
                invalid(
                    "start",
                    format!("expected a date like 2026-04-07, found {s:?} ({e})"),
                )
            })
        })
        .transpose()
}

/// The published availability of a week per practitioner, from a fresh PMS read and the engine.
pub async fn week(ctx: &Ctx, id: &str, start: Option<&str>) -> Result<WeekView, AdminError> {
    week_start(start)?;
    let link = load_link(ctx, id).await?;
    let read = read_pms(ctx, &link).await?;
    week_from(&read, start)
}

/// The link's request and booking log, newest first, each booking with its transitions.
pub async fn log(ctx: &Ctx, id: &str) -> Result<LinkLog, AdminError> {
    let link = load_link(ctx, id).await?;
    let requests = ctx
        .store
        .recent_requests(Some(link.id), LOG_LIMIT)
        .await?
        .into_iter()
        .map(RequestView::from)
        .collect();
    let mut bookings = Vec::new();
    for b in ctx.store.bookings_for_link(link.id, LOG_LIMIT).await? {
        let events = ctx.store.booking_events(&b.booking_id).await?;
        bookings.push(booking_view(b, events));
    }
    Ok(LinkLog { requests, bookings })
}

/// How severe, for sorting and styling.
pub fn severity_rank(s: &str) -> u8 {
    match s {
        "error" => 0,
        "warning" => 1,
        _ => 2,
    }
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[FindingView]) -> bool {
    findings
        .iter()
        .any(|f| f.severity == Severity::Error.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(id: &str, state: slotbridge_store::BookingState, age_secs: i64) -> Booking {
        let at = Timestamp::now() - SignedDuration::from_secs(age_secs);
        Booking {
            booking_id: id.into(),
            link_id: "00000000-0000-0000-0000-000000000001"
                .parse()
                .expect("link id"),
            state,
            request: serde_json::Value::Null,
            attempts: 1,
            next_attempt_at: at,
            market_practice_id: None,
            claimed_by: None,
            claim_epoch: None,
            claim_until: None,
            pms_patient_id: None,
            pms_appointment_id: None,
            match_decision: None,
            reject_reason: None,
            last_error: None,
            created_at: at,
            updated_at: at,
            cancelled_at: None,
            appointment_change: None,
            appointment_change_at: None,
            late_outcome: None,
        }
    }

    #[test]
    fn a_booking_waiting_for_minutes_is_a_request_nearing_the_10_minute_limit() {
        use slotbridge_store::BookingState::{Confirmed, PatientResolved, Received};
        let state = SyncState {
            link_id: "00000000-0000-0000-0000-000000000001"
                .parse()
                .expect("link id"),
            last_pms_read_at: None,
            last_publish_at: Some(Timestamp::now()),
            last_poll_at: None,
            last_error: None,
            change_cursor: None,
            consent: ConsentStatus::Granted,
            health_flags: Default::default(),
            setup_findings: Default::default(),
            change_pending_since: None,
            last_freshness: None,
            updated_at: Timestamp::now(),
        };
        let now = Timestamp::now();
        let bookings = [
            booking("1", Confirmed, 3600),
            booking("2", PatientResolved, 420),
            booking("3", Received, 30),
        ];
        let h = health_view(&state, &bookings, now, false);
        let age = h.oldest_open_critical_request.expect("an open booking");
        assert!((419..=421).contains(&age.as_secs()), "{age:?}");
        let findings = diagnostics::diagnose_health(&h);
        assert!(
            findings
                .iter()
                .any(|f| f.code == diagnostics::Code::RequestsNearLimit),
            "{findings:?}"
        );
        // Only answered bookings: nothing is waiting.
        let h = health_view(&state, &bookings[..1], now, false);
        assert_eq!(h.oldest_open_critical_request, None);
    }
}
