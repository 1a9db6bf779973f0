//! RFC 9457 problem details, the one error body of every listener.
//!
//! The wire format is the `problem_details` crate's (`ProblemDetails`, rendered as
//! `application/problem+json`); this type adds the two things our listeners need on top: a
//! `Retry-After` header (sent as the `retry_after` member too, which the PMS simulator's
//! contract documents) and a constructor that takes the three fields every problem of ours has.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use problem_details::{JsonProblemDetails, ProblemDetails, ProblemType};
use serde::Serialize;

/// The members we add to a problem.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Extensions {
    /// Seconds to wait before trying again (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and an optional `Retry-After`.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemDetails<Extensions>>);

impl Problem {
    /// A problem of type `about:blank` (the status says it all).
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem(Box::new(
            ProblemDetails::from_status_code(status)
                .with_type(ProblemType::default())
                .with_title(title)
                .with_detail(detail)
                .with_extensions(Extensions::default()),
        ))
    }

    /// The problem with a `type` URI (for example `https://slotbridge.dev/problems/pms/invalid`).
    /// A text that is not a URI keeps `about:blank`.
    pub fn with_type(mut self, uri: &str) -> Self {
        if let Ok(u) = uri.parse::<axum::http::Uri>() {
            self.0.r#type = Some(u.into());
        }
        self
    }

    /// The problem with a `Retry-After` in seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.0.extensions.retry_after = Some(secs);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The title.
    pub fn title(&self) -> &str {
        self.0.title.as_deref().unwrap_or_default()
    }

    /// The detail.
    pub fn detail(&self) -> &str {
        self.0.detail.as_deref().unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let retry_after = self.0.extensions.retry_after;
        let mut r = JsonProblemDetails::from(*self.0).into_response();
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(p: Problem) -> (StatusCode, String, Option<String>, serde_json::Value) {
        let r = p.into_response();
        let status = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let ra = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, ct, ra, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_problem_is_problem_json_with_its_three_fields() {
        let (status, ct, ra, v) = body(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            "the practice is linked",
        ))
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(ra, None);
        assert_eq!(v["status"], 409);
        assert_eq!(v["title"], "Conflict");
        assert_eq!(v["detail"], "the practice is linked");
        assert_eq!(v["type"], "about:blank");
        assert!(v.get("retry_after").is_none());
    }

    #[tokio::test]
    async fn retry_after_is_a_header_and_a_member_and_the_type_is_kept() {
        let (status, _, ra, v) = body(
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many", "slow down")
                .with_type("https://slotbridge.dev/problems/pms/rate-limited")
                .with_retry_after(7),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ra.as_deref(), Some("7"));
        assert_eq!(v["retry_after"], 7);
        assert_eq!(
            v["type"],
            "https://slotbridge.dev/problems/pms/rate-limited"
        );
    }
}
