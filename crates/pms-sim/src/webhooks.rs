//! CloudEvents webhooks: every change to a practice's diary or setup is POSTed to each subscriber
//! in structured JSON mode, signed with the subscriber's secret.
//!
//! Signature: `X-Signature-Timestamp: <unix seconds>` and
//! `X-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::practice::{Change, Webhook};

/// The CloudEvents `type` prefix of every event.
pub const EVENT_TYPE_PREFIX: &str = "dev.slotbridge.pms.";

/// A CloudEvent in structured JSON mode, with the `siteslug` extension attribute.
#[derive(Debug, Clone, Serialize)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: &'static str,
    /// Unique per event.
    pub id: String,
    /// `/api/v1/sites/{slug}`.
    pub source: String,
    /// [`EVENT_TYPE_PREFIX`] + the change type, e.g. `dev.slotbridge.pms.appointment.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The changed thing's id.
    pub subject: String,
    /// RFC 3339.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: &'static str,
    /// The site slug (extension attribute).
    pub siteslug: String,
    /// The change: `seq` (the change feed cursor), `type` and the changed thing.
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// The event for a change of site `slug`.
    pub fn new(slug: &str, change: &Change) -> Self {
        Self {
            specversion: "1.0",
            id: format!("{slug}-{}", change.seq),
            source: format!("/api/v1/sites/{slug}"),
            kind: format!("{EVENT_TYPE_PREFIX}{}", change.kind),
            subject: change.subject.clone(),
            time: change.time.clone(),
            datacontenttype: "application/json",
            siteslug: slug.to_owned(),
            data: serde_json::json!({
                "seq": change.seq,
                "type": change.kind,
                "object": change.data,
            }),
        }
    }
}

/// `sha256=<hex>` over `"<timestamp>.<body>"` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POST one event to one subscriber, retrying up to 4 times with backoff on failure.
pub async fn deliver(client: reqwest::Client, hook: Webhook, event: CloudEvent) {
    let Ok(body) = serde_json::to_vec(&event) else {
        return;
    };
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=4 {
        let ts = jiff::Timestamp::now().as_second();
        let result = client
            .post(&hook.url)
            .header("content-type", "application/cloudevents+json")
            .header("x-signature-timestamp", ts.to_string())
            .header("x-signature", sign(&hook.secret, ts, &body))
            .body(body.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::debug!(url = %hook.url, status = %r.status(), attempt, "webhook refused")
            }
            Err(e) => tracing::debug!(url = %hook.url, error = %e, attempt, "webhook failed"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
