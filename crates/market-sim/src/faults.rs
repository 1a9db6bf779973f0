//! Fault injection: answers of the PMS API (`/pms-api/v1`) that fail, and webhook deliveries that
//! are lost, sent twice, late or out of order. Set with `PUT /_market/faults` (and read back with
//! `GET`); every field is optional and off by default. The counted faults are used up one
//! request (or delivery) at a time, so a test knows exactly how many calls fail.
//!
//! Every API request is also noted (when it arrived, its practice, method and path, and the
//! status a fault answered), so a test can check how a client behaved during a fault: that it
//! waited for `Retry-After`, that it did not retry in a tight loop
//! (`GET /_market/faults/requests`).

use std::collections::VecDeque;
use std::time::Duration;

use axum::{
    extract::{OriginalUri, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::App;
use crate::control::Problem;

/// The most API requests [`Faults`] keeps noted (the oldest are forgotten first).
pub const NOTED: usize = 10_000;

/// The next `requests` API requests are answered with `status`, a 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBurst {
    /// How many requests fail.
    pub requests: u32,
    /// The status they get (500-599; default 503).
    #[serde(default = "service_unavailable")]
    pub status: u16,
}

fn service_unavailable() -> u16 {
    503
}

/// The next `requests` API requests are answered 429 with `Retry-After: retry_after_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBurst {
    /// How many requests are refused.
    pub requests: u32,
    /// The `Retry-After` they carry, in seconds (default 1).
    #[serde(default = "one")]
    pub retry_after_secs: u64,
}

fn one() -> u64 {
    1
}

/// What happens to webhook deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookFaults {
    /// The first attempt of the next `drop` deliveries is lost on the way: it never reaches the
    /// callback, the marketplace logs a failed attempt (`ConnectException`) and retries on its
    /// schedule (10 s, times the time factor).
    pub drop: u32,
    /// The next `duplicate` deliveries are sent twice.
    pub duplicate: u32,
    /// Every delivery waits this long before its first attempt.
    pub delay_ms: u64,
    /// The next `reorder` deliveries are each held back until the delivery after them was sent
    /// (or 5 s passed), then sent: out of order.
    pub reorder: u32,
}

/// The faults in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// A burst of 5xx answers.
    pub errors: Option<ErrorBurst>,
    /// A burst of 429 answers.
    pub rate_limit: Option<RateLimitBurst>,
    /// Every API request waits this long before it is handled (longer than the client's timeout:
    /// a timeout).
    pub latency_ms: u64,
    /// What happens to webhook deliveries.
    pub webhooks: WebhookFaults,
}

impl Faults {
    /// Check the values, naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(e) = self.errors
            && !(500..=599).contains(&e.status)
        {
            return Err(format!(
                "errors.status: expected 500-599, found {}",
                e.status
            ));
        }
        if self.latency_ms > 120_000 || self.webhooks.delay_ms > 120_000 {
            return Err("latency_ms/webhooks.delay_ms: at most 120000".into());
        }
        Ok(())
    }
}

/// One API request as the fault layer saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotedRequest {
    /// When it arrived (the real clock, not the simulator's).
    pub at: Timestamp,
    /// Its `practice-id` header (empty when absent).
    pub practice_id: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/pms-api/v1/requests`.
    pub path: String,
    /// The status a fault answered it with; `None` when it was handled normally.
    pub fault: Option<u16>,
    /// The `Retry-After` a 429 carried, in seconds.
    pub retry_after_secs: Option<u64>,
}

/// The faults in force and what they did.
#[derive(Debug, Default)]
pub struct FaultState {
    /// The faults in force (counters count down as they are used).
    pub faults: Faults,
    /// The API requests seen, oldest first (at most [`NOTED`]).
    pub requests: VecDeque<NotedRequest>,
    /// A delivery held back by `webhooks.reorder`, released by the next delivery.
    pub held: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What happens to one delivery, decided when it is made.
#[derive(Debug, Default)]
pub struct DeliveryPlan {
    /// Its first attempt is lost.
    pub drop_first: bool,
    /// Sent twice.
    pub duplicate: bool,
    /// Wait before the first attempt.
    pub delay: Duration,
    /// Wait for this before the first attempt (held back for reordering).
    pub after_next: Option<tokio::sync::oneshot::Receiver<()>>,
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

impl FaultState {
    /// The plan of the next delivery (using up the counted faults it takes), releasing a
    /// delivery held back for reordering once this one is sent.
    pub fn plan_delivery(&mut self) -> (DeliveryPlan, Option<tokio::sync::oneshot::Sender<()>>) {
        let w = &mut self.faults.webhooks;
        let released = self.held.take();
        let mut plan = DeliveryPlan {
            drop_first: take(&mut w.drop),
            duplicate: take(&mut w.duplicate),
            delay: Duration::from_millis(w.delay_ms),
            after_next: None,
        };
        if take(&mut w.reorder) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.held = Some(tx);
            plan.after_next = Some(rx);
        }
        (plan, released)
    }

    fn note(&mut self, r: NotedRequest) {
        if self.requests.len() >= NOTED {
            self.requests.pop_front();
        }
        self.requests.push_back(r);
    }
}

/// The middleware applying [`Faults`] to the PMS API.
pub async fn apply(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |o| o.0.path().to_owned());
    let practice_id = req
        .headers()
        .get("practice-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let method = req.method().as_str().to_owned();
    let (latency, answer) = {
        let mut m = app.faults();
        let f = &mut m.faults;
        let answer = if let Some(b) = f.rate_limit.as_mut().filter(|b| b.requests > 0) {
            b.requests -= 1;
            Some((429, Some(b.retry_after_secs)))
        } else if let Some(b) = f.errors.as_mut().filter(|b| b.requests > 0) {
            b.requests -= 1;
            Some((b.status, None))
        } else {
            None
        };
        let latency = Duration::from_millis(f.latency_ms);
        m.note(NotedRequest {
            at: Timestamp::now(),
            practice_id,
            method,
            path,
            fault: answer.map(|(s, _)| s),
            retry_after_secs: answer.and_then(|(_, r)| r),
        });
        (latency, answer)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some((status, retry_after)) = answer else {
        return next.run(req).await;
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = Problem::new(status, "injected fault").into_response();
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_webhook_faults_are_used_up_one_delivery_at_a_time() {
        let mut s = FaultState {
            faults: Faults {
                webhooks: WebhookFaults {
                    drop: 1,
                    duplicate: 2,
                    delay_ms: 30,
                    reorder: 1,
                },
                ..Faults::default()
            },
            ..FaultState::default()
        };
        let (first, released) = s.plan_delivery();
        assert!(first.drop_first && first.duplicate && first.after_next.is_some());
        assert_eq!(first.delay, Duration::from_millis(30));
        assert!(released.is_none());
        let (second, released) = s.plan_delivery();
        assert!(!second.drop_first && second.duplicate && second.after_next.is_none());
        assert!(
            released.is_some(),
            "the second delivery releases the held one"
        );
        let (third, _) = s.plan_delivery();
        assert!(!third.duplicate);
        assert_eq!(s.faults.webhooks.duplicate, 0);
    }

    #[test]
    fn a_status_outside_5xx_is_refused_naming_the_field() {
        let f = Faults {
            errors: Some(ErrorBurst {
                requests: 1,
                status: 404,
            }),
            ..Faults::default()
        };
        assert!(f.validate().unwrap_err().starts_with("errors.status"));
    }
}
