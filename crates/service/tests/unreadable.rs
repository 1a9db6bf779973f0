//! A booking the marketplace client cannot read (issue 13, item 4) is rejected within the
//! marketplace's 20 s with the fixed reason, instead of being left to auto-confirm without being
//! in the diary. A proxy between the node and the marketplace simulator rewrites every listed
//! booking's date of birth to text that is not a date.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use slotbridge_domain::booking_rules::RejectReason;
use slotbridge_store::BookingState;
use slotbridge_testkit::{Db, Stack, booking_body, eventually, patient};
use tokio::net::TcpListener;

/// Forward everything to `origin`; spoil the date of birth of every listed booking.
async fn spoil(
    State(origin): State<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut req = reqwest::Client::new()
        .request(method.clone(), format!("{origin}{path}"))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let Ok(resp) = req.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    if method == Method::GET
        && uri.path().ends_with("/requests/bookings")
        && let Ok(mut page) = serde_json::from_slice::<Value>(&bytes)
    {
        if let Some(items) = page["data"].as_array_mut() {
            for b in items {
                b["patient"]["dob"] = Value::from("the tenth of December");
            }
        }
        bytes = serde_json::to_vec(&page).expect("json");
    }
    (status, [("content-type", "application/json")], bytes).into_response()
}

/// A spoiling proxy in front of `api_url` (`http://host:port/pms-api/v1`); its own API URL.
async fn proxy(api_url: &str) -> String {
    let after_scheme = api_url.find("://").expect("scheme") + 3;
    let split = api_url[after_scheme..]
        .find('/')
        .map_or(api_url.len(), |i| after_scheme + i);
    let (origin, base_path) = api_url.split_at(split);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}{base_path}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .fallback(spoil)
        .with_state(origin.to_owned());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_the_client_cannot_read_is_rejected_with_the_fixed_reason_not_auto_confirmed() {
    let mut stack = Stack::builder()
        .db(Db::Sqlite)
        .nodes(0)
        .start()
        .await
        .expect("sqlite stack");
    stack.config.market_url = proxy(&stack.config.market_url).await;
    stack.start_node().await;
    stack.link(stack.harbour()).await;
    let (_, slots) = stack.linked_with_slots(Duration::from_secs(60), 4).await;
    let who = patient(
        "Ada",
        "Lovelace",
        "1990-12-10",
        "0412 345 678",
        "ada@example.com",
    );
    let id = stack
        .book(&stack.harbour().practice_id, &booking_body(&slots[0], who))
        .await;
    let b = eventually(
        &format!("booking {id} answered"),
        Duration::from_secs(20),
        || async {
            let b = stack.booking(id).await;
            (b["status"] != "Requested").then_some(b)
        },
    )
    .await;
    assert_eq!(b["status"], "Rejected", "rejected, not auto-confirmed: {b}");
    assert_eq!(b["reject_reason"], RejectReason::Unreadable.text());
    let row = stack
        .store()
        .booking(&id.to_string())
        .await
        .expect("store")
        .expect("the booking is recorded");
    assert_eq!(row.state, BookingState::Rejected);
    assert_eq!(
        row.reject_reason.as_deref(),
        Some(RejectReason::Unreadable.text())
    );
    assert_eq!(
        row.request["unreadable"],
        "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD"
    );
}
