//! A proxy between a node and the PMS simulator that injects the faults the simulator's own
//! (`PUT /_sim/faults`) cannot: an answer lost after the write took effect, a server that echoes
//! the request (query, body) in its error text or in a body the client cannot read, a
//! connection dropped mid-answer, for chosen requests only. Point the node's `pms_url` at
//! [`PmsProxy::url`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the proxy does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request (it takes effect at the PMS), then answer 503 instead of its answer.
    LoseAnswer,
    /// Do not forward; answer this status with a problem whose title and detail repeat the
    /// request (path, query and body), as a careless server does.
    Echo(u16),
    /// Forward, then send the PMS's status, headers and half its body, and drop the connection.
    Cut,
    /// Do not forward; answer 200 with a JSON string repeating the request, which the client
    /// cannot read as what it expects (a parser quoting what it found would repeat it).
    Garble,
    /// Wait this long, then forward.
    Hang(Duration),
}

struct Rule {
    method: Option<Method>,
    path_ends_with: String,
    faults: VecDeque<Fault>,
}

#[derive(Clone)]
struct Shared {
    target: String,
    client: reqwest::Client,
    rules: Arc<Mutex<Vec<Rule>>>,
    faulted: Arc<AtomicUsize>,
}

impl Shared {
    /// The next fault for this request, if a rule matches it (its fault is used up).
    fn take(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut rules = self
            .rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fault = rules
            .iter_mut()
            .filter(|r| r.method.as_ref().is_none_or(|m| m == method))
            .filter(|r| path.ends_with(&r.path_ends_with))
            .find_map(|r| r.faults.pop_front())?;
        rules.retain(|r| !r.faults.is_empty());
        self.faulted.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }
}

/// The proxy, served until the test's runtime ends.
#[derive(Clone)]
pub struct PmsProxy {
    url: String,
    shared: Shared,
}

impl PmsProxy {
    /// A proxy on a loopback port forwarding to `target` (`http://ADDR`), passing everything
    /// through until told otherwise.
    ///
    /// # Panics
    /// No loopback port can be bound.
    pub async fn start(target: impl Into<String>) -> PmsProxy {
        let shared = Shared {
            target: target.into(),
            // A new connection per request, so the simulator's `refused` outage (new
            // connections closed at once) reaches every request.
            client: reqwest::Client::builder()
                .no_gzip()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the proxy's client"),
            rules: Arc::new(Mutex::new(Vec::new())),
            faulted: Arc::new(AtomicUsize::new(0)),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PmsProxy { url, shared }
    }

    /// `http://ADDR`: the PMS URL to give a node.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Apply `faults`, one per request in order, to the requests whose method is `method` (any
    /// when `None`) and whose path ends with `path_ends_with`; later ones pass through.
    pub fn inject(
        &self,
        method: Option<Method>,
        path_ends_with: &str,
        faults: impl IntoIterator<Item = Fault>,
    ) {
        let faults: VecDeque<Fault> = faults.into_iter().collect();
        if faults.is_empty() {
            return;
        }
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Rule {
                method,
                path_ends_with: path_ends_with.to_owned(),
                faults,
            });
    }

    /// Drop every fault not applied yet.
    pub fn clear(&self) {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// Faults not applied yet.
    pub fn pending(&self) -> usize {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|r| r.faults.len())
            .sum()
    }

    /// Requests that got a fault so far.
    pub fn faulted(&self) -> usize {
        self.shared.faulted.load(Ordering::SeqCst)
    }
}

/// Headers that belong to one connection, not passed on.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The request as a careless server would repeat it.
fn echo_text(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    format!(
        "{method} {path_and_query} {}",
        String::from_utf8_lossy(body)
    )
}

/// A response that sends `status`, `headers` and `head`, then drops the connection.
fn cut(status: StatusCode, headers: &HeaderMap, head: Bytes, full_len: usize) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(head),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected drop",
        )),
    ];
    let mut r = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    *r.status_mut() = status;
    copy_headers(headers, r.headers_mut());
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(full_len.max(1)));
    r
}

async fn handle(State(p): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 32 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let fault = p.take(&parts.method, parts.uri.path());
    match &fault {
        Some(Fault::Echo(status)) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = echo_text(&parts.method, &path_and_query, &body);
            let problem = json!({
                "type": "https://pms.example/problems/cannot-handle-this-patient",
                "title": format!("Cannot handle {path_and_query}"),
                "status": status.as_u16(),
                "detail": text,
                "instance": path_and_query,
            });
            let mut r = (status, problem.to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            return r;
        }
        Some(Fault::Garble) => {
            let text = echo_text(&parts.method, &path_and_query, &body);
            let mut r = (StatusCode::OK, Value::from(text).to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return r;
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let sent = p
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", p.target),
        )
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(upstream) = sent else {
        // The PMS could not be reached: neither can the proxy's client.
        return cut(StatusCode::BAD_GATEWAY, &HeaderMap::new(), Bytes::new(), 1);
    };
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let Ok(bytes) = upstream.bytes().await else {
        // The PMS dropped the connection mid-answer: so does the proxy.
        return cut(status, &upstream_headers, Bytes::new(), 1);
    };
    match fault {
        Some(Fault::LoseAnswer) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Some(Fault::Cut) => {
            let half = bytes.slice(..bytes.len() / 2);
            cut(status, &upstream_headers, half, bytes.len())
        }
        _ => {
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            copy_headers(&upstream_headers, r.headers_mut());
            r
        }
    }
}
