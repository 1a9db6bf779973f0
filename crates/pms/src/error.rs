//! The connector's closed error enum.
//!
//! The text of a [`PmsError`] is stored in booking events, logged, shown in the console and may
//! become a reason sent to the marketplace, so the connector never puts personal data in it: no
//! URL or query string (a patient search carries names, the date of birth, a phone and an email
//! there), no header or key, and no text the PMS sent (a problem's `title` and `detail` may echo
//! the request). A `detail` names the operation (`patient search`), the HTTP status or the kind
//! of transport failure, the problem type's short name and the API's own field names.

use std::time::Duration;

/// Everything that can go wrong talking to a PMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmsError {
    /// The call was not made: the caller no longer holds the link it works on (its lease was
    /// lost or lapsed). Not transient: the caller stops.
    #[error("the call was not made: this node no longer holds the link")]
    Fenced,
    /// The API key was not accepted (401).
    #[error("the PMS did not accept the API key: {detail}")]
    Unauthorized {
        /// The operation and the status.
        detail: String,
    },
    /// The API key was revoked by the practice (401, `key-revoked`).
    #[error("the practice revoked the API key: {detail}")]
    KeyRevoked {
        /// The operation and the status.
        detail: String,
    },
    /// The site or the thing asked for does not exist (404).
    #[error("not found: {detail}")]
    NotFound {
        /// The operation and the status.
        detail: String,
    },
    /// The write conflicts with the diary (409), e.g. the slot is taken.
    #[error("conflict ({kind}): {detail}")]
    Conflict {
        /// The problem type's short name, e.g. `overlaps-appointment` (`other` for a type the API
        /// does not document, empty when the PMS sent none).
        kind: String,
        /// The operation, the status and the field named by the PMS, if any.
        detail: String,
    },
    /// The request was refused as invalid (400/422), e.g. off the diary grid.
    #[error("invalid ({kind}): {detail}")]
    Invalid {
        /// The problem type's short name, e.g. `off-grid` (`other` for a type the API does not
        /// document, empty when the PMS sent none).
        kind: String,
        /// The operation, the status and the field named by the PMS, if any.
        detail: String,
    },
    /// Rate limited (429); retry after the given time.
    #[error("rate limited; retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// How long the PMS asked us to wait.
        retry_after: Duration,
    },
    /// The PMS is down or the connection failed (5xx, refused, reset).
    #[error("the PMS is unavailable: {detail}")]
    Unavailable {
        /// The operation and the status or the kind of connection failure.
        detail: String,
    },
    /// The PMS cannot do this at all (e.g. Cliniko has no webhooks): not transient.
    #[error("the PMS does not support {operation}")]
    Unsupported {
        /// The operation, e.g. `webhook register`.
        operation: String,
    },
    /// The PMS did not answer in time.
    #[error("the PMS did not answer within the timeout")]
    Timeout,
    /// The PMS answered something we cannot understand.
    #[error("unexpected answer from the PMS: {detail}")]
    Protocol {
        /// What was wrong with it: the operation or the resource, and the status or the JSON
        /// path and position that did not fit (never the value found there).
        detail: String,
    },
}

impl PmsError {
    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PmsError::RateLimited { .. } | PmsError::Unavailable { .. } | PmsError::Timeout
        )
    }

    /// A short, stable name of the variant, for metrics and logs (`unauthorized`, `timeout`…).
    pub fn kind(&self) -> &'static str {
        match self {
            PmsError::Unauthorized { .. } => "unauthorized",
            PmsError::KeyRevoked { .. } => "key_revoked",
            PmsError::NotFound { .. } => "not_found",
            PmsError::Conflict { .. } => "conflict",
            PmsError::Invalid { .. } => "invalid",
            PmsError::RateLimited { .. } => "rate_limited",
            PmsError::Unavailable { .. } => "unavailable",
            PmsError::Timeout => "timeout",
            PmsError::Protocol { .. } => "protocol",
            PmsError::Fenced => "fenced",
            PmsError::Unsupported { .. } => "unsupported",
        }
    }

    /// The same error, its detail prefixed with the operation it happened in.
    pub(crate) fn during(self, op: &str) -> Self {
        let at = |detail: String| format!("{op}: {detail}");
        match self {
            PmsError::Unauthorized { detail } => PmsError::Unauthorized { detail: at(detail) },
            PmsError::KeyRevoked { detail } => PmsError::KeyRevoked { detail: at(detail) },
            PmsError::NotFound { detail } => PmsError::NotFound { detail: at(detail) },
            PmsError::Conflict { kind, detail } => PmsError::Conflict {
                kind,
                detail: at(detail),
            },
            PmsError::Invalid { kind, detail } => PmsError::Invalid {
                kind,
                detail: at(detail),
            },
            PmsError::Unavailable { detail } => PmsError::Unavailable { detail: at(detail) },
            PmsError::Protocol { detail } => PmsError::Protocol { detail: at(detail) },
            e @ (PmsError::RateLimited { .. }
            | PmsError::Timeout
            | PmsError::Fenced
            | PmsError::Unsupported { .. }) => e,
        }
    }

    pub(crate) fn protocol(detail: impl Into<String>) -> Self {
        PmsError::Protocol {
            detail: detail.into(),
        }
    }
}
