//! Retry policy against a marketplace that fails: idempotent calls are retried a bounded number of
//! times, booking calls never; 429 honours Retry-After; a slow answer is a Timeout.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::any};
use slotbridge_market::{
    ClientConfig, MarketClient, MarketError, PracticeClient, PracticeCredentials,
    types::ConfirmBookingInsert,
};

/// A server failing the first `fail` calls with `status` (plus `extra` headers), then answering `[]`.
async fn flaky(
    fail: usize,
    status: StatusCode,
    retry_after: Option<&'static str>,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = Router::new().fallback(any(move || {
        let c = c.clone();
        async move {
            let n = c.fetch_add(1, Ordering::SeqCst);
            if n < fail {
                let mut r = status.into_response();
                if let Some(ra) = retry_after {
                    r.headers_mut().insert("retry-after", ra.parse().unwrap());
                }
                return r;
            }
            ([("content-type", "application/json")], "[]").into_response()
        }
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pms-api/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, calls)
}

fn practice(url: &str, attempts: u32, timeout: Duration) -> PracticeClient {
    MarketClient::new(
        ClientConfig::new(url, "k".to_owned().into())
            .with_retries(attempts, Duration::from_millis(10))
            .with_timeout(timeout),
    )
    .unwrap()
    .practice(PracticeCredentials::new("1", "pk"))
}

#[tokio::test]
async fn idempotent_calls_are_retried_on_unavailable() {
    let (url, calls) = flaky(2, StatusCode::SERVICE_UNAVAILABLE, None).await;
    let p = practice(&url, 3, Duration::from_secs(10));
    assert!(p.poll().await.unwrap().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (url, calls) = flaky(100, StatusCode::BAD_GATEWAY, None).await;
    let p = practice(&url, 3, Duration::from_secs(10));
    assert!(matches!(
        p.poll().await,
        Err(MarketError::Unavailable { .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn booking_calls_are_not_retried() {
    let (url, calls) = flaky(1, StatusCode::SERVICE_UNAVAILABLE, None).await;
    let p = practice(&url, 3, Duration::from_secs(10));
    let body = ConfirmBookingInsert {
        pms_appointment_ids: vec!["A".into()],
        pms_patient_id: "P".into(),
        ..Default::default()
    };
    assert!(matches!(
        p.confirm_insert(1, &body).await,
        Err(MarketError::Unavailable { .. })
    ));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "an unclear booking outcome is left to the caller"
    );
}

#[tokio::test]
async fn rate_limits_honour_retry_after_or_are_reported() {
    let (url, calls) = flaky(1, StatusCode::TOO_MANY_REQUESTS, Some("1")).await;
    let p = practice(&url, 2, Duration::from_secs(10));
    assert!(
        p.poll().await.unwrap().is_empty(),
        "waited one second and retried"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let (url, _) = flaky(1, StatusCode::TOO_MANY_REQUESTS, Some("3600")).await;
    let p = practice(&url, 2, Duration::from_secs(10));
    match p.poll().await {
        Err(MarketError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let app = Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "[]"
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pms-api/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let p = practice(&url, 1, Duration::from_millis(300));
    assert!(matches!(p.poll().await, Err(MarketError::Timeout(_))));
}

#[tokio::test]
async fn a_body_that_is_not_the_spec_shape_is_a_protocol_error() {
    let app = Router::new().fallback(any(|| async {
        (
            [("content-type", "application/json")],
            "{\"unexpected\": true}",
        )
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pms-api/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let p = practice(&url, 1, Duration::from_secs(10));
    assert!(matches!(p.poll().await, Err(MarketError::Protocol { .. })));
}
