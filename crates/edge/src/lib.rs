//! The HTTP edge every slotbridge listener shares: the node (admin API, console, both webhook
//! receivers), the PMS simulator and the marketplace simulator all serve through [`serve`], with
//! [`Limits`] that keep a bad or slow client from holding the server:
//!
//! - **Body limit.** A request body over [`Limits::max_body`] is refused with `413` before it is
//!   read (when `Content-Length` says so) or as soon as it grows past the limit (chunked).
//! - **Header-read timeout.** The request head (request line and headers) must arrive within
//!   [`Limits::header_read`]; a client sending it a byte at a time (slowloris) is disconnected.
//! - **Request timeout.** Reading the body and answering must end within [`Limits::request`];
//!   a client that never finishes its body gets `408`.
//!
//! Every refusal made here is RFC 9457 `application/problem+json` ([`Problem`], rendered by the
//! `problem_details` crate), so a client reads the same shape from every listener.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use slotbridge_edge::{Limits, serve};
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, app, Limits::default(), std::future::pending()).await
//! # }
//! ```

mod problem;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt as _;

pub use problem::Problem;

/// What one listener accepts from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes; a bigger one is refused with `413`.
    pub max_body: usize,
    /// How long the request head (request line and headers) may take to arrive.
    pub header_read: Duration,
    /// How long reading the body and answering may take; past it the answer is `408`.
    pub request: Duration,
    /// How long a graceful shutdown waits for the requests in flight.
    pub drain: Duration,
}

impl Default for Limits {
    /// 1 MiB bodies, 10 s to send the head, 30 s per request, 10 s to drain.
    fn default() -> Self {
        Limits {
            max_body: 1024 * 1024,
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            drain: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// These limits with another body limit.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// These limits with another header-read timeout.
    pub fn with_header_read(mut self, timeout: Duration) -> Self {
        self.header_read = timeout;
        self
    }

    /// These limits with another request timeout.
    pub fn with_request(mut self, timeout: Duration) -> Self {
        self.request = timeout;
        self
    }

    /// `router` with the body limit and the request timeout applied, and every `413` and `408`
    /// answered as problem+json. [`serve`] applies it; use it directly only to test a router
    /// without a listener.
    pub fn apply(self, router: Router) -> Router {
        router
            .layer(DefaultBodyLimit::max(self.max_body))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                guard(self, req, next)
            }))
    }
}

/// Refuse an announced oversized body at once, bound the whole request by the timeout, and turn
/// a plain `413` of an extractor into problem+json.
async fn guard(limits: Limits, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body as u64) {
        return too_large(limits.max_body);
    }
    match tokio::time::timeout(limits.request, next.run(req)).await {
        Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(&r) => {
            too_large(limits.max_body)
        }
        Ok(r) => r,
        Err(_) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "Request timeout",
            format!(
                "the request was not read and answered within {} s",
                limits.request.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

fn is_problem(r: &Response) -> bool {
    r.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

fn too_large(max: usize) -> Response {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body too large",
        format!("the request body is over the limit of {max} bytes"),
    )
    .into_response()
}

/// Serve `router` on `listener` with `limits` until `shutdown` completes, then drain the
/// requests in flight for at most [`Limits::drain`].
///
/// Each request carries `ConnectInfo<L::Addr>` (the peer address), as `axum::serve` with
/// connect info would. HTTP/1.1 only: every client of ours speaks it, and its header-read
/// timeout starts as soon as a connection waits for a request head (a fresh connection, or an
/// idle keep-alive one), so a silent connection is closed too.
///
/// # Errors
/// Never in practice: accept errors are retried by the listener.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    let app = limits.apply(router);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let svc = tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            app.clone().oneshot(req)
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("requests still in flight after the drain time; closing");
    }
    Ok(())
}
