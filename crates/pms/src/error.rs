//! The connector's closed error enum.

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
        /// The PMS's explanation.
        detail: String,
    },
    /// The API key was revoked by the practice (401, `key-revoked`).
    #[error("the practice revoked the API key: {detail}")]
    KeyRevoked {
        /// The PMS's explanation.
        detail: String,
    },
    /// The site or the thing asked for does not exist (404).
    #[error("not found: {detail}")]
    NotFound {
        /// The PMS's explanation.
        detail: String,
    },
    /// The write conflicts with the diary (409), e.g. the slot is taken.
    #[error("conflict ({kind}): {detail}")]
    Conflict {
        /// The problem type's short name, e.g. `overlaps-appointment`.
        kind: String,
        /// The PMS's explanation.
        detail: String,
    },
    /// The request was refused as invalid (400/422), e.g. off the diary grid.
    #[error("invalid ({kind}): {detail}")]
    Invalid {
        /// The problem type's short name, e.g. `off-grid`.
        kind: String,
        /// The PMS's explanation.
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
        /// What happened.
        detail: String,
    },
    /// The PMS did not answer in time.
    #[error("the PMS did not answer within the timeout")]
    Timeout,
    /// The PMS answered something we cannot understand.
    #[error("unexpected answer from the PMS: {detail}")]
    Protocol {
        /// What was wrong with it.
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
        }
    }

    pub(crate) fn protocol(detail: impl Into<String>) -> Self {
        PmsError::Protocol {
            detail: detail.into(),
        }
    }
}
