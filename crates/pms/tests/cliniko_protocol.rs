//! The Cliniko connector's HTTP manners against a small scripted server: the headers the
//! documentation requires, paging by `links.next` (and never off the API), the client-side rate
//! limit counted at the server, and a 429 waited out until its `X-RateLimit-Reset`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use slotbridge_pms::cliniko::{ClinikoConfig, ClinikoConnector, ClinikoKey, RateLimit};
use slotbridge_pms::{PmsConnector, PmsError};

#[derive(Default)]
struct Seen {
    /// (path and query, authorization, user-agent, when)
    requests: Vec<(String, String, String, Instant)>,
    fail_business: u32,
    next_off_api: bool,
}

type Shared = Arc<Mutex<Seen>>;

struct Stub {
    base: String,
    seen: Shared,
}

fn record(seen: &Shared, what: String, headers: &HeaderMap) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    seen.lock()
        .unwrap()
        .requests
        .push((what, h("authorization"), h("user-agent"), Instant::now()));
}

async fn stub() -> Stub {
    let seen: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1/", listener.local_addr().unwrap());
    let b = base.clone();
    let app = Router::new()
        .route(
            "/v1/settings/public",
            get(|State(s): State<Shared>, h: HeaderMap| async move {
                record(&s, "settings".into(), &h);
                Json(json!({
                    "account": {"time_zone": "Sydney"},
                    "calendar": {"timeslot_size_in_minutes": 15},
                    "online_bookings": {"enabled": true, "max_appointments_per_day_segment": null,
                                         "min_hours_advance_required_to_book": 2}
                }))
            }),
        )
        .route(
            "/v1/businesses/1",
            get(|State(s): State<Shared>, h: HeaderMap| async move {
                record(&s, "business".into(), &h);
                let mut g = s.lock().unwrap();
                if g.fail_business > 0 {
                    g.fail_business -= 1;
                    let reset = jiff::Timestamp::now().as_second() + 1;
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("x-ratelimit-reset", reset.to_string())],
                        "",
                    )
                        .into_response();
                }
                Json(json!({"id": "1", "business_name": "Stub", "show_in_online_bookings": true}))
                    .into_response()
            }),
        )
        .route(
            "/v1/businesses/1/practitioners",
            get(
                move |State(s): State<Shared>,
                      Query(q): Query<std::collections::HashMap<String, String>>,
                      h: HeaderMap| {
                    let base = b.clone();
                    async move {
                        let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                        record(&s, format!("practitioners page {page}"), &h);
                        let off = s.lock().unwrap().next_off_api;
                        let items: Vec<_> = (0..3)
                            .map(|i| {
                                json!({"id": (page * 10 + i).to_string(), "first_name": "P",
                                       "last_name": "Q", "show_in_online_bookings": false})
                            })
                            .collect();
                        let mut links = json!({"self": format!("{base}businesses/1/practitioners?page={page}")});
                        if page < 3 {
                            let next = if off {
                                format!("http://127.0.0.2:9/v1/businesses/1/practitioners?page={}", page + 1)
                            } else {
                                format!("{base}businesses/1/practitioners?page={}&per_page=3", page + 1)
                            };
                            links["next"] = json!(next);
                        }
                        Json(json!({"practitioners": items, "total_entries": 9, "links": links}))
                            .into_response()
                    }
                },
            ),
        )
        .route(
            "/v1/practitioners/{id}/appointment_types",
            get(|| async { Json(json!({"appointment_types": [], "links": {}})) }),
        )
        .route(
            "/v1/appointment_types",
            get(|State(s): State<Shared>, h: HeaderMap| async move {
                record(&s, "types".into(), &h);
                Json(json!({"appointment_types": [], "links": {}}))
            }),
        )
        .with_state(seen.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Stub { base, seen }
}

fn connector(stub: &Stub, key: &str, rate: RateLimit) -> ClinikoConnector {
    let key = ClinikoKey::parse(key.to_owned().into()).unwrap();
    let mut cfg = ClinikoConfig::new(key, "1").with_base_url(stub.base.parse().unwrap());
    cfg.rate = rate;
    cfg.backoff = Duration::from_millis(10);
    ClinikoConnector::new(cfg)
}

fn unlimited() -> RateLimit {
    RateLimit {
        requests: 100_000,
        per: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn every_request_carries_basic_auth_with_the_key_and_a_user_agent_with_a_contact() {
    let s = stub().await;
    let pms = connector(&s, "KEYheaders-au1", unlimited());
    pms.read_setup().await.unwrap();
    let seen = s.seen.lock().unwrap();
    assert!(!seen.requests.is_empty());
    use base64::Engine as _;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("KEYheaders-au1:")
    );
    for (what, auth, ua, _) in &seen.requests {
        assert_eq!(auth, &want, "{what}");
        assert!(
            ua.contains('(') && ua.contains('@') && ua.ends_with(')'),
            "{what}: {ua}"
        );
    }
}

#[tokio::test]
async fn lists_are_read_by_following_links_next_to_the_last_page() {
    let s = stub().await;
    let pms = connector(&s, "KEYpaging-au1", unlimited());
    let setup = pms.read_setup().await.unwrap();
    let ids: Vec<_> = setup.practitioners.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        ["10", "11", "12", "20", "21", "22", "30", "31", "32"],
        "three pages of three, in order"
    );
    let pages: Vec<_> = s
        .seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.0.starts_with("practitioners"))
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(
        pages,
        [
            "practitioners page 1",
            "practitioners page 2",
            "practitioners page 3"
        ]
    );
}

#[tokio::test]
async fn a_next_link_off_the_api_is_refused_and_not_followed() {
    let s = stub().await;
    s.seen.lock().unwrap().next_off_api = true;
    let pms = connector(&s, "KEYoffapi-au1", unlimited());
    let err = pms.read_setup().await.unwrap_err();
    assert!(
        matches!(&err, PmsError::Protocol { detail } if detail.contains("links.next leaves the API")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("127.0.0.2"), "{err}");
}

#[tokio::test]
async fn a_429_is_retried_after_its_reset_time() {
    let s = stub().await;
    s.seen.lock().unwrap().fail_business = 1;
    let pms = connector(&s, "KEY429-au1", unlimited());
    pms.read_setup().await.unwrap();
    let seen = s.seen.lock().unwrap();
    let tries: Vec<Instant> = seen
        .requests
        .iter()
        .filter(|r| r.0 == "business")
        .map(|r| r.3)
        .collect();
    assert_eq!(tries.len(), 2, "one 429, then the answer");
    let waited = tries[1] - tries[0];
    assert!(
        waited >= Duration::from_millis(950),
        "waited {waited:?}: the reset is at least a second away"
    );
}

#[tokio::test]
async fn a_429_with_a_reset_beyond_the_patience_fails_as_rate_limited() {
    let s = stub().await;
    s.seen.lock().unwrap().fail_business = 10;
    let key = ClinikoKey::parse("KEY429long-au1".to_owned().into()).unwrap();
    let mut cfg = ClinikoConfig::new(key, "1").with_base_url(s.base.parse().unwrap());
    cfg.max_retry_after = Duration::from_millis(100);
    cfg.backoff = Duration::from_millis(10);
    cfg.max_retries = 1;
    cfg.rate = unlimited();
    let err = ClinikoConnector::new(cfg).read_setup().await.unwrap_err();
    assert!(matches!(err, PmsError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn the_client_never_sends_more_than_its_budget_in_any_window() {
    let s = stub().await;
    // Cliniko's 200 a minute, scaled down to 20 in two seconds to keep the test short: the same
    // quota arithmetic (a burst of a twentieth, the rest spread evenly).
    let rate = RateLimit {
        requests: 20,
        per: Duration::from_secs(2),
    };
    let pms = connector(&s, "KEYrate-au1", rate);
    // Two connectors of one key share its budget.
    let twin = connector(&s, "KEYrate", rate);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let p = if i % 2 == 0 {
            pms.clone()
        } else {
            twin.clone()
        };
        tasks.push(tokio::spawn(async move { p.read_changes(None).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    let times: Vec<Instant> = s
        .seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| r.3)
        .collect();
    assert_eq!(times.len(), 50);
    let mut most = 0;
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| **u - *t < rate.per)
            .count();
        most = most.max(in_window);
    }
    assert!(most <= 20, "{most} requests in one 2 s window");
    assert!(
        elapsed >= Duration::from_secs(4),
        "50 requests at 20 per 2 s take over 4 s, took {elapsed:?}"
    );
    println!("rate: at most {most} requests in any 2 s window; 50 requests took {elapsed:?}");
}
