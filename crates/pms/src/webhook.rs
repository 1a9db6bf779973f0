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
