//! The outbound HTTP client's two safety rules, shared by both adapters:
//!
//! - **No redirects.** Every request of ours carries a key header (`x-api-key`, `api-key`,
//!   `practice-key`) that reqwest would send on to wherever a redirect points (it strips only
//!   `Authorization` and cookies). [`client_builder`] follows none: a `3xx` comes back as the
//!   answer, which the adapters report as an unexpected status.
//! - **Capped answers.** [`read_capped`] reads a response body up to a limit and stops with
//!   [`BodyError::TooLarge`] past it (whether `Content-Length` announced it or the body just kept
//!   coming), so a broken or hostile server cannot make the node allocate without bound.

use bytes::{Bytes, BytesMut};

/// The largest answer an adapter reads by default: 16 MiB (the largest real answer, a page of a
/// diary or of requests, is well under 1 MiB).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A reqwest client builder that follows no redirect. Add the timeouts and the User-Agent.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is bigger than the limit.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => {
                write!(f, "the answer is over the limit of {limit} bytes")
            }
            BodyError::Transport(e) => f.write_str(&crate::transport_kind(e)),
        }
    }
}

impl std::error::Error for BodyError {}

/// Read `resp`'s body, at most `limit` bytes.
///
/// # Errors
/// [`BodyError::TooLarge`] past the limit; [`BodyError::Transport`] when the body broke off.
pub async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut out = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    async fn server() -> String {
        let app = axum::Router::new()
            .route("/small", get(|| async { "x".repeat(100) }))
            .route("/big", get(|| async { "x".repeat(5000) }))
            .route(
                "/chunked",
                get(|| async {
                    let chunks =
                        (0..50).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 100])));
                    axum::body::Body::from_stream(futures::stream::iter(chunks))
                }),
            )
            .route(
                "/redirect",
                get(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [(axum::http::header::LOCATION, "/small")],
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_and_a_bigger_one_is_refused() {
        let base = server().await;
        let http = client_builder().build().unwrap();
        let get = |p: &str| http.get(format!("{base}{p}")).send();
        let small = read_capped(get("/small").await.unwrap(), 1000)
            .await
            .unwrap();
        assert_eq!(small.len(), 100);
        let big = read_capped(get("/big").await.unwrap(), 1000).await;
        assert!(
            matches!(big, Err(BodyError::TooLarge { limit: 1000 })),
            "{big:?}"
        );
        let chunked = read_capped(get("/chunked").await.unwrap(), 1000).await;
        assert!(
            matches!(chunked, Err(BodyError::TooLarge { limit: 1000 })),
            "a body without Content-Length is cut at the limit too: {chunked:?}"
        );
        let whole = read_capped(get("/chunked").await.unwrap(), 5000)
            .await
            .unwrap();
        assert_eq!(whole.len(), 5000);
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let base = server().await;
        let http = client_builder().build().unwrap();
        let r = http
            .get(format!("{base}/redirect"))
            .header("x-api-key", "secret")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::FOUND);
    }
}
