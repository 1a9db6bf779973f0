//! RFC 9457 problem details: every error the simulator returns (rendered by the one shared
//! problem type, `slotbridge_edge::Problem`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The base of every problem `type` URI the simulator returns.
pub const PROBLEM_BASE: &str = "https://slotbridge.dev/problems/pms/";

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, plus an optional `Retry-After`.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The problem type URI: [`PROBLEM_BASE`] followed by a short name.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short human-readable summary of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case, naming the field or the conflict.
    pub detail: String,
    /// Seconds to wait before retrying (sent as the `Retry-After` header too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of type `name` (appended to [`PROBLEM_BASE`]).
    pub fn new(status: StatusCode, name: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{PROBLEM_BASE}{name}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 422 `invalid`: a field is missing or malformed.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid request",
            detail,
        )
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// Attach a `Retry-After` in seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut p =
            slotbridge_edge::Problem::new(status, self.title, self.detail).with_type(&self.kind);
        if let Some(secs) = self.retry_after {
            p = p.with_retry_after(secs);
        }
        p.into_response()
    }
}
