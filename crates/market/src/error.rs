//! The client's typed errors.
//!
//! Their text is stored with bookings, logged, shown in the console and may end up in a reason
//! sent back to the marketplace, so the client never puts personal data in it: no URL or query
//! string, no header or key, no value from a body (an answer may hold a patient; an error body
//! may echo our request). A `detail` names the operation (`POST /bookings/{id}/rejectInsert`),
//! the HTTP status or the kind of transport failure, and the API's own field names.

use std::time::Duration;

/// What went wrong talking to the marketplace.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The call was not made: the caller's guard refused it (the node no longer holds the link
    /// it works on). See [`crate::PracticeClient::with_guard`].
    #[error("the call was not made: this node no longer holds the link")]
    Fenced,
    /// 403: the practice has not granted consent to this integration, or has revoked it. The
    /// practice must be guided to grant it.
    #[error(
        "Healthengine refused access to practice {practice_id}: the practice has not granted consent \
         to this integration, or has revoked it. To fix it, a practice administrator opens \
         Healthengine Practice Admin → API Consumer Consent → Grant new consent, selects this \
         integration, and then supplies the practice ID and practice key shown there"
    )]
    ConsentMissing {
        /// The practice id that was used.
        practice_id: String,
        /// The refused operation and status, and the field the marketplace named, if any (not
        /// its own words, which may echo the request).
        detail: Option<String>,
    },
    /// 401: the api-key is missing or invalid (a problem with our consumer credentials, not the
    /// practice's).
    #[error(
        "Healthengine rejected the api-key (401): check the consumer API key this integration is configured with"
    )]
    Unauthorized,
    /// 404: the resource does not exist.
    #[error("not found on Healthengine: {what}")]
    NotFound {
        /// The operation, e.g. `GET /features/{id}` (booking ids shown as `{id}`).
        what: String,
    },
    /// 400 or 422: the marketplace rejected the request's content (the status is in `detail`).
    #[error("Healthengine rejected the request as invalid: {detail}")]
    Invalid {
        /// The operation, the status and the field the marketplace named, if any.
        detail: String,
    },
    /// 409: the request conflicts with the resource's state (e.g. the booking was already
    /// answered, or confirmed by the marketplace itself).
    #[error("Healthengine refused the request as conflicting with the current state: {detail}")]
    Conflict {
        /// The operation and the status.
        detail: String,
    },
    /// 410: the resource was already handled or has expired.
    #[error("gone on Healthengine (already handled or expired): {detail}")]
    Gone {
        /// The operation and the status.
        detail: String,
    },
    /// 429: slow down.
    #[error("Healthengine is rate limiting us{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// From the `Retry-After` header, when given.
        retry_after: Option<Duration>,
    },
    /// 5xx or the connection failed: the marketplace is unavailable.
    #[error("Healthengine is unavailable: {detail}")]
    Unavailable {
        /// The operation and the status or the kind of connection failure.
        detail: String,
    },
    /// No answer within the per-request timeout.
    #[error("Healthengine did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer did not follow the API (unexpected status or body).
    #[error("unexpected answer from Healthengine: {detail}")]
    Protocol {
        /// The operation and what was unexpected: the status, or the JSON path and position that
        /// did not fit (never the value found there).
        detail: String,
    },
    /// The call was not made: the arguments break a rule of the API (e.g. more than 100
    /// snapshots in a batch) or the client's configuration is wrong.
    #[error("request not sent: {detail}")]
    Usage {
        /// What rule was broken.
        detail: String,
    },
}

impl MarketError {
    /// Whether retrying the same idempotent call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Timeout(_)
        )
    }

    /// Whether the marketplace refused an answer to one of its requests for good (400, 404,
    /// 409, 410 or 422 on `confirmInsert`, `rejectInsert`, `confirmUpdate`, `rejectUpdate`,
    /// `cancel`, `didNotAttend` or `noPmsAppointmentChange`): typically it had already closed
    /// the request (a booking it auto-confirmed after 20 s, one answered before, one it no
    /// longer knows). Sending the same answer again cannot succeed: record the outcome and stop.
    /// Never true of a transient error ([`MarketError::is_transient`]), of refused credentials
    /// or consent, or of an answer the client could not read.
    ///
    /// ```
    /// use slotbridge_market::MarketError;
    /// let late = MarketError::Invalid { detail: "POST /bookings/{id}/confirmInsert: HTTP 400".into() };
    /// assert!(late.is_refused_answer() && !late.is_transient());
    /// assert!(!MarketError::Timeout(std::time::Duration::from_secs(10)).is_refused_answer());
    /// assert!(!MarketError::Unauthorized.is_refused_answer());
    /// ```
    pub fn is_refused_answer(&self) -> bool {
        matches!(
            self,
            Self::Invalid { .. }
                | Self::NotFound { .. }
                | Self::Conflict { .. }
                | Self::Gone { .. }
        )
    }

    /// A short, stable name of the variant, for metrics and logs (`consent_missing`, `gone`…).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConsentMissing { .. } => "consent_missing",
            Self::Unauthorized => "unauthorized",
            Self::NotFound { .. } => "not_found",
            Self::Invalid { .. } => "invalid",
            Self::Conflict { .. } => "conflict",
            Self::Gone { .. } => "gone",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Protocol { .. } => "protocol",
            Self::Usage { .. } => "usage",
            Self::Fenced => "fenced",
        }
    }
}
