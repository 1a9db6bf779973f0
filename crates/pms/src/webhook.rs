//! Verifying the PMS's signed CloudEvents webhooks.
//!
//! The PMS sends `X-Signature-Timestamp: <unix seconds>` and
//! `X-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

/// A CloudEvent from the PMS (structured JSON mode).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PmsEvent {
    /// Must be `1.0`.
    pub specversion: String,
    /// Event id.
    pub id: String,
    /// `/api/v1/sites/{slug}`.
    pub source: String,
    /// e.g. `dev.slotbridge.pms.appointment.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The site slug (extension attribute).
    pub siteslug: String,
    /// The changed thing's id.
    #[serde(default)]
    pub subject: Option<String>,
    /// When.
    #[serde(default)]
    pub time: Option<String>,
    /// `{ "seq", "type", "object" }`.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl PmsEvent {
    /// The one practice-local day an appointment made or removed occupies, read from the event's
    /// `object` (`start` and `end` in RFC 3339 with the practice's offset): only that day's
    /// availability can have changed. `None` for every other event (a moved or updated
    /// appointment may also have left another day), and for an appointment across midnight.
    pub fn appointment_day(&self) -> Option<jiff::civil::Date> {
        crate::types::appointment_day(&self.kind, self.data.get("object")?)
    }
}

/// Why a webhook was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A signature header is missing or malformed.
    #[error("webhook signature header malformed: {0}")]
    Malformed(&'static str),
    /// The timestamp is too far from now (replay protection).
    #[error("webhook timestamp is {0} seconds away from now")]
    Stale(i64),
    /// The signature does not match.
    #[error("webhook signature does not match")]
    BadSignature,
    /// The body is not a CloudEvent.
    #[error("webhook body is not a CloudEvent: {0}")]
    Body(String),
}

/// Verify a delivery's signature and parse its CloudEvent.
///
/// `tolerance` bounds how far the timestamp may be from `now` (5 minutes is usual).
pub fn verify_webhook(
    secret: &SecretString,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: jiff::Timestamp,
    tolerance: Duration,
) -> Result<PmsEvent, WebhookError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::Malformed("X-Signature-Timestamp is not a number"))?;
    let skew = now.as_second().saturating_sub(ts);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(WebhookError::Stale(skew));
    }
    let hex_sig = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::Malformed("X-Signature lacks sha256="))?;
    let sig =
        hex::decode(hex_sig).map_err(|_| WebhookError::Malformed("X-Signature is not hex"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .map_err(|_| WebhookError::BadSignature)?;
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| WebhookError::BadSignature)?;
    parse_event(body)
}

/// Parse a CloudEvent body (without checking its signature).
pub fn parse_event(body: &[u8]) -> Result<PmsEvent, WebhookError> {
    // The event may carry an appointment or a patient: the error names where, never a value.
    let e: PmsEvent = crate::safe::decode(body).map_err(WebhookError::Body)?;
    if e.specversion != "1.0" {
        return Err(WebhookError::Body("specversion: expected 1.0".into()));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: serde_json::Value) -> PmsEvent {
        PmsEvent {
            specversion: "1.0".into(),
            id: "e1".into(),
            source: "/api/v1/sites/sharbour".into(),
            kind: format!("dev.slotbridge.pms.{kind}"),
            siteslug: "sharbour".into(),
            subject: Some("A2".into()),
            time: None,
            data: serde_json::json!({"seq": 7, "type": kind, "object": object}),
        }
    }

    #[test]
    fn a_made_or_removed_appointment_names_its_practice_local_day() {
        let a = serde_json::json!({"id": "A2", "start": "2026-12-03T23:00:00+11:00",
                                   "end": "2026-12-03T23:30:00+11:00"});
        let day: jiff::civil::Date = "2026-12-03".parse().expect("date");
        assert_eq!(
            event("appointment.created", a.clone()).appointment_day(),
            Some(day)
        );
        assert_eq!(
            event("appointment.deleted", a.clone()).appointment_day(),
            Some(day)
        );
        // An update may have moved it from another day: no single day.
        assert_eq!(event("appointment.updated", a).appointment_day(), None);
        // Across midnight, or unreadable: no single day.
        let late = serde_json::json!({"start": "2026-12-03T23:30:00+11:00",
                                      "end": "2026-12-04T00:15:00+11:00"});
        assert_eq!(event("appointment.created", late).appointment_day(), None);
        let bad = serde_json::json!({"start": "2026-12-03 10:00", "end": "2026-12-03 10:30"});
        assert_eq!(event("appointment.created", bad).appointment_day(), None);
        assert_eq!(
            event("block.created", serde_json::json!({})).appointment_day(),
            None
        );
    }
}
