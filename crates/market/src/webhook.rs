//! The webhook receiver: an axum [`Router`] that acknowledges the marketplace's payloads quickly
//! and hands each one, once, to a caller-supplied sink.
//!
//! The marketplace times an attempt out after 5 s and retries at 10, 100 and 1000 s. The receiver
//! therefore does no work itself: it parses the payload, hands it to the sink (a
//! [`tokio::sync::mpsc::Sender`]) within [`WebhookReceiver::handoff_timeout`] (default 2 s), and
//! answers 200. When the sink is full or closed it answers 503, so the marketplace retries.
//!
//! Deduplication: the spec makes the payload's `id` the *subscription's* id, so it is the same
//! for every event of a subscription. The key of an event is therefore its `id` together with its
//! `timestamp` (the time of the first attempt, kept on retries), `topic` and `data`
//! ([`PayloadKey`]). The last [`WebhookReceiver::with_capacity`] keys (default 10 000) are kept in
//! memory; durable deduplication is the integration's job.
//!
//! ```no_run
//! # async fn demo() {
//! let (tx, mut rx) = tokio::sync::mpsc::channel(100);
//! let app = axum::Router::new().nest("/webhooks/healthengine", slotbridge_market::WebhookReceiver::new(tx).router());
//! # let _ = app;
//! while let Some(payload) = rx.recv().await {
//!     println!("poll {:?} now", payload.data.request_type);
//! }
//! # }
//! ```

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::types::{RequestType, SubscriptionTopic, WebhookPayload};

/// What identifies one event across its retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadKey {
    /// The payload `id` (the subscription's id).
    pub id: String,
    /// The time of the first attempt.
    pub timestamp: Timestamp,
    /// The topic.
    pub topic: SubscriptionTopic,
    /// The request type.
    pub request_type: RequestType,
    /// The booking, if any.
    pub booking_id: Option<i64>,
    /// The request, if any.
    pub request_id: Option<i64>,
}

impl PayloadKey {
    /// The key of a payload.
    pub fn of(p: &WebhookPayload) -> Self {
        Self {
            id: p.id.clone(),
            timestamp: p.timestamp,
            topic: p.topic,
            request_type: p.data.request_type,
            booking_id: p.data.booking_id,
            request_id: p.data.request_id,
        }
    }
}

/// A bounded set that forgets its oldest member when full.
#[derive(Debug)]
struct Seen {
    set: HashSet<PayloadKey>,
    order: VecDeque<PayloadKey>,
    capacity: usize,
}

impl Seen {
    /// Insert; false when already present.
    fn insert(&mut self, k: PayloadKey) -> bool {
        if !self.set.insert(k.clone()) {
            return false;
        }
        self.order.push_back(k);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    fn remove(&mut self, k: &PayloadKey) {
        if self.set.remove(k) {
            self.order.retain(|o| o != k);
        }
    }
}

/// The webhook receiver; turn it into a router with [`WebhookReceiver::router`].
#[derive(Debug, Clone)]
pub struct WebhookReceiver {
    sink: mpsc::Sender<WebhookPayload>,
    seen: Arc<Mutex<Seen>>,
    handoff_timeout: Duration,
}

impl WebhookReceiver {
    /// A receiver handing payloads to `sink`.
    pub fn new(sink: mpsc::Sender<WebhookPayload>) -> Self {
        Self {
            sink,
            seen: Arc::new(Mutex::new(Seen {
                set: HashSet::new(),
                order: VecDeque::new(),
                capacity: 10_000,
            })),
            handoff_timeout: Duration::from_secs(2),
        }
    }

    /// Remember the last `capacity` events (at least 1).
    pub fn with_capacity(self, capacity: usize) -> Self {
        if let Ok(mut s) = self.seen.lock() {
            s.capacity = capacity.max(1);
        }
        self
    }

    /// How long to wait for room in the sink before answering 503 (keep it well under 5 s).
    pub fn handoff_timeout(mut self, timeout: Duration) -> Self {
        self.handoff_timeout = timeout;
        self
    }

    /// A router answering `POST /`; nest it where the callback URL points.
    pub fn router(self) -> Router {
        Router::new().route("/", post(receive)).with_state(self)
    }
}

fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    slotbridge_edge::Problem::new(status, title, detail).into_response()
}

async fn receive(State(rx): State<WebhookReceiver>, body: Bytes) -> Response {
    // Where the payload broke, not the values in it.
    let payload: WebhookPayload = match crate::safe::decode(&body) {
        Ok(p) => p,
        Err(_) if names_an_unknown_request_type(&body) => {
            // A type a newer API added: acknowledged so the marketplace does not retry it, and
            // left alone (the poll lists it apart, see `crate::read::Polled`).
            tracing::debug!(
                "webhook payload of a request type this client does not know acknowledged"
            );
            return (StatusCode::OK, "ignored: unknown request type").into_response();
        }
        Err(e) => {
            return problem(StatusCode::BAD_REQUEST, "Invalid webhook payload", e);
        }
    };
    if let Some(target) = &payload.data.target
        && payload.data.request_type.target() != Some(target.as_str())
    {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid webhook payload",
            format!(
                "data.target {target:?} does not belong to request type {}",
                payload.data.request_type
            ),
        );
    }
    let key = PayloadKey::of(&payload);
    let fresh = match rx.seen.lock() {
        Ok(mut s) => s.insert(key.clone()),
        Err(_) => true,
    };
    if !fresh {
        tracing::debug!(request_type = %payload.data.request_type, "duplicate webhook payload acknowledged");
        return (StatusCode::OK, "duplicate").into_response();
    }
    match tokio::time::timeout(rx.handoff_timeout, rx.sink.send(payload)).await {
        Ok(Ok(())) => (StatusCode::OK, "ok").into_response(),
        outcome => {
            if let Ok(mut s) = rx.seen.lock() {
                s.remove(&key);
            }
            let why = if outcome.is_err() {
                "the receiver is busy"
            } else {
                "the receiver is shutting down"
            };
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                why.into(),
            )
        }
    }
}

/// Whether the payload's `data.requestType` is text that names no request type this client
/// knows.
fn names_an_unknown_request_type(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    v.pointer("/data/requestType")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|name| !RequestType::ALL.iter().any(|t| t.as_str() == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64) -> PayloadKey {
        PayloadKey {
            id: "s".into(),
            timestamp: Timestamp::UNIX_EPOCH,
            topic: SubscriptionTopic::All,
            request_type: RequestType::Bookings,
            booking_id: Some(n),
            request_id: None,
        }
    }

    #[test]
    fn only_text_naming_no_known_type_is_an_unknown_request_type() {
        let body = |t: serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({"data": {"requestType": t}})).unwrap()
        };
        assert!(names_an_unknown_request_type(&body("telepathy".into())));
        assert!(!names_an_unknown_request_type(&body("bookings".into())));
        assert!(!names_an_unknown_request_type(&body(3.into())));
        assert!(!names_an_unknown_request_type(b"{\"hello\": 1}"));
        assert!(!names_an_unknown_request_type(b"not json"));
    }

    #[test]
    fn the_seen_set_is_bounded_and_forgets_the_oldest() {
        let mut s = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: 2,
        };
        assert!(s.insert(key(1)));
        assert!(!s.insert(key(1)));
        assert!(s.insert(key(2)));
        assert!(s.insert(key(3)));
        assert_eq!(s.set.len(), 2);
        assert!(s.insert(key(1)), "the oldest was forgotten");
    }
}
