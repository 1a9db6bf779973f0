//! Fault injection for the `/api` routes: latency, 500s, 429 bursts, outages, slow bodies and
//! dropped connections. Set with `PUT /_sim/faults` or `--faults JSON` at start.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::SimState;
use crate::problem::Problem;

/// What an outage looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// Every API request gets 503 with `Retry-After`.
    ServiceUnavailable,
    /// New connections are accepted and closed at once, as if refused.
    Refused,
}

/// A burst of 429s: the next `requests` API requests are rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst429 {
    /// How many requests get 429.
    pub requests: u32,
    /// The `Retry-After` they carry, in seconds.
    #[serde(default = "one")]
    pub retry_after_secs: u64,
}

fn one() -> u64 {
    1
}

/// The faults in force. All default to off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Fixed latency added to every API response, in milliseconds.
    pub latency_ms: u64,
    /// Uniform random extra latency, 0..=`jitter_ms` milliseconds.
    pub jitter_ms: u64,
    /// Fraction of API requests (0.0..=1.0) answered with a 500.
    pub error_rate: f64,
    /// A burst of 429s.
    pub burst_429: Option<Burst429>,
    /// An outage.
    pub outage: Option<Outage>,
    /// Stream every API body slowly, spread over this many milliseconds.
    pub slow_body_ms: u64,
    /// Fraction of API requests (0.0..=1.0) whose connection drops mid-response.
    pub drop_rate: f64,
}

impl Faults {
    /// Check the values, naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name}: expected 0.0..=1.0, found {v}"));
            }
        }
        if self.latency_ms > 60_000 || self.jitter_ms > 60_000 || self.slow_body_ms > 60_000 {
            return Err("latency_ms/jitter_ms/slow_body_ms: at most 60000".into());
        }
        Ok(())
    }
}

/// The middleware applying [`Faults`] to API requests.
pub async fn apply(State(state): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let faults = state.faults();
    if faults == Faults::default() {
        return next.run(req).await;
    }
    let (delay, fail, drop) = {
        let mut r = rand::rng();
        let jitter = if faults.jitter_ms > 0 {
            r.random_range(0..=faults.jitter_ms)
        } else {
            0
        };
        (
            faults.latency_ms + jitter,
            r.random_bool(faults.error_rate),
            r.random_bool(faults.drop_rate),
        )
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if faults.outage == Some(Outage::ServiceUnavailable) {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the PMS is down for maintenance",
        )
        .with_retry_after(5)
        .into_response();
    }
    if let Some(b) = faults.burst_429 {
        let left = state
            .burst_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_ok() {
            return Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                "rate limit exceeded (injected burst)",
            )
            .with_retry_after(b.retry_after_secs)
            .into_response();
        }
    }
    if fail {
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "injected server error",
        )
        .into_response();
    }
    let resp = next.run(req).await;
    if !drop && faults.slow_body_ms == 0 {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    let chunks: Vec<bytes::Bytes> = bytes
        .chunks(64)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let n = chunks.len().max(1) as u64;
    let pause = Duration::from_millis(faults.slow_body_ms / n);
    let cut = if drop { chunks.len() / 2 } else { usize::MAX };
    let stream =
        futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, c)| async move {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if i >= cut {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected drop",
                ))
            } else {
                Ok(c)
            }
        });
    let stream = stream.take_while({
        let mut failed = false;
        move |r| {
            let go = !failed;
            failed |= r.is_err();
            futures::future::ready(go)
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
