//! `--record FILE`: every PMS API call as one JSON line
//! `{"method", "path", "query", "headers", "body", "status", "response"}`; the values of
//! `api-key` and `practice-key` are replaced by `***`; `body` and `response` are the parsed JSON
//! (after gzip decoding) or null.

use std::{
    io::Write as _,
    path::Path,
    sync::{Arc, Mutex},
};

use axum::{
    body::{Body, to_bytes},
    extract::{OriginalUri, Request, State},
    middleware::Next,
    response::Response,
};

/// The request headers as received, before the gzip decoding rewrote them.
#[derive(Debug, Clone)]
pub struct ReceivedHeaders(pub axum::http::HeaderMap);

/// The record file.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<std::fs::File>,
}

impl Recorder {
    /// Create (truncate) the file.
    pub fn create(path: &Path) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            file: Mutex::new(std::fs::File::create(path)?),
        }))
    }

    fn write(&self, line: &serde_json::Value) {
        if let Ok(mut f) = self.file.lock() {
            let mut s = line.to_string();
            s.push('\n');
            if let Err(e) = f.write_all(s.as_bytes()) {
                tracing::warn!(error = %e, "cannot write the record file");
            }
        }
    }
}

const LIMIT: usize = 64 * 1024 * 1024;

fn parsed(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
}

/// The middleware.
pub async fn record(
    State(rec): State<Option<Arc<Recorder>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(rec) = rec else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, LIMIT).await.unwrap_or_default();
    let received = parts
        .extensions
        .get::<ReceivedHeaders>()
        .map(|h| &h.0)
        .unwrap_or(&parts.headers);
    let headers: serde_json::Map<String, serde_json::Value> = received
        .iter()
        .map(|(k, v)| {
            let value = if k == "api-key" || k == "practice-key" {
                "***".to_owned()
            } else {
                v.to_str().unwrap_or("").to_owned()
            };
            (k.as_str().to_owned(), serde_json::Value::String(value))
        })
        .collect();
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| parts.uri.clone());
    let mut line = serde_json::json!({
        "method": parts.method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body": parsed(&bytes),
    });
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, LIMIT).await.unwrap_or_default();
    line["status"] = rparts.status.as_u16().into();
    line["response"] = parsed(&rbytes);
    rec.write(&line);
    Response::from_parts(rparts, Body::from(rbytes))
}
