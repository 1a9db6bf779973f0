//! No personal data in errors (issue 12, finding 6): a booking request's answer holds the patient,
//! a reject reason may name them, an id may travel in the query string, and the marketplace may
//! echo any of it in an error body. Whatever the marketplace does (echoes, answers a body that
//! does not parse, hangs, refuses, breaks off), neither the `Display` nor the `Debug` text of a
//! [`MarketError`] holds the patient's details, the api-key, the practice key, the URL or the
//! query.
//!
//! The failures come from a hostile server over real HTTP (raw TCP, so it can also break a body
//! off or never answer) and from the marketplace simulator.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use slotbridge_market::{
    ClientConfig, MarketClient, MarketError, PracticeClient, PracticeCredentials,
    types::{ConfirmBookingInsert, PmsResource},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API: &str = "pii-market-api-key-Qw7e";
const PRACTICE_KEY: &str = "pii-practice-key-Zr5t";

/// Everything that must never appear in an error's text, compared case-insensitively.
const FORBIDDEN: &[&str] = &[
    "Zebedee",
    "Quixotic",
    "1931",
    "03-02-1931",
    "0499",
    "888 777",
    "888+777",
    "888777",
    "zq@",
    "zq%40",
    "example.invalid",
    "2953",
    "51470",
    API,
    PRACTICE_KEY,
    API_KEY,
    "practice-key",
    "api-key:",
    "127.0.0.1",
    "localhost",
    "http://",
    "pms-api",
    "id=",
    "page=",
];

/// The patient's details as a server might echo them back, plainly.
const ECHO: &str = "Zebedee Quixotic 03-02-1931 0499 888 777 zq@example.invalid 2953 51470 1";

/// A reject reason naming the patient (what the service must not send, but might).
const REASON: &str = "Zebedee Quixotic (03-02-1931, 0499 888 777, zq@example.invalid)";

fn assert_clean(err: &MarketError, context: &str) {
    let shown = format!("{err} || {err:?}");
    let lower = shown.to_lowercase();
    for f in FORBIDDEN {
        assert!(
            !lower.contains(&f.to_lowercase()),
            "{context}: {f:?} appears in the error: {shown}"
        );
    }
}

// ---- a hostile server ---------------------------------------------------------------------------

/// What the hostile server does with one request.
enum Act {
    /// Write these bytes and close.
    Reply(Vec<u8>),
    /// Keep the connection open without answering.
    Hang,
    /// Close without a word.
    Close,
}

/// One request as received.
struct Request {
    /// The path without the query.
    #[allow(dead_code)]
    path: String,
    /// The whole request (head and body) as text, to echo back.
    raw: String,
}

fn reply(status: u16, content_type: &str, body: &str) -> Act {
    Act::Reply(
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

async fn hostile(respond: impl Fn(&Request) -> Act + Send + Sync + 'static) -> String {
    let respond = Arc::new(respond);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/pms-api/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                match respond(&req) {
                    Act::Reply(bytes) => {
                        let _ = sock.write_all(&bytes).await;
                        let _ = sock.shutdown().await;
                    }
                    Act::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
                    Act::Close => drop(sock),
                }
            });
        }
    });
    base
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let target = head.lines().next()?.split(' ').nth(1)?;
    Some(Request {
        path: target.split('?').next().unwrap_or(target).to_owned(),
        raw: String::from_utf8_lossy(&buf).into_owned(),
    })
}

fn practice(base: &str) -> PracticeClient {
    MarketClient::new(
        ClientConfig::new(base, API.to_owned().into())
            .with_retries(1, Duration::from_millis(10))
            .with_timeout(Duration::from_millis(300)),
    )
    .expect("client")
    .practice(PracticeCredentials::new("4242", PRACTICE_KEY))
}

/// Run the calls that carry patient data, or a value in the query, against `base`; each must
/// fail cleanly and name its operation.
async fn run_all(base: &str, context: &str) -> Vec<MarketError> {
    let p = practice(base);
    let confirm = ConfirmBookingInsert {
        pms_appointment_ids: vec!["A1".into()],
        pms_patient_id: "P1".into(),
        patient_appointment_description: Some(REASON.into()),
        ..Default::default()
    };
    let calls: Vec<(&str, MarketError)> = vec![
        (
            "POST /bookings/{id}/rejectInsert",
            p.reject_insert(17, Some(REASON)).await.expect_err("reject"),
        ),
        (
            "POST /bookings/{id}/confirmInsert",
            p.confirm_insert(17, &confirm).await.expect_err("confirm"),
        ),
        (
            "GET /requests/bookings",
            p.booking_requests(1).await.expect_err("bookings"),
        ),
        (
            "GET /config/pmsResources/findById",
            p.find_pms_resource(ECHO).await.expect_err("find"),
        ),
    ];
    let mut out = Vec::new();
    for (op, err) in calls {
        assert_clean(&err, &format!("{context}, {op}"));
        let text = format!("{err:?}");
        if !matches!(
            err,
            MarketError::Timeout(_) | MarketError::RateLimited { .. } | MarketError::Unauthorized
        ) {
            assert!(text.contains(op), "{context}: {op} not named: {text}");
        }
        out.push(err);
    }
    out
}

#[tokio::test]
async fn error_statuses_echoing_the_request_keep_only_operation_status_and_field() {
    for (status, prefix) in [
        (400, ""),
        (400, "[0].pmsResourceName: "),
        (400, "reason: "),
        (401, ""),
        (403, ""),
        (404, ""),
        (410, ""),
        (429, ""),
        (418, ""),
        (500, ""),
        (503, ""),
    ] {
        let base = hostile(move |req| {
            let echo = format!("{prefix}{ECHO} {}", req.raw);
            reply(
                status,
                "application/json",
                &json!({ "error": echo, "detail": echo }).to_string(),
            )
        })
        .await;
        let context = format!("HTTP {status} {prefix}");
        for err in run_all(&base, &context).await {
            let text = err.to_string();
            match status {
                400 => assert!(matches!(err, MarketError::Invalid { .. }), "{err:?}"),
                401 => assert!(matches!(err, MarketError::Unauthorized), "{err:?}"),
                403 => {
                    assert!(
                        matches!(&err, MarketError::ConsentMissing { practice_id, .. } if practice_id == "4242"),
                        "{err:?}"
                    );
                    assert!(text.contains("Grant new consent"), "{text}");
                }
                404 => assert!(matches!(err, MarketError::NotFound { .. }), "{err:?}"),
                410 => assert!(matches!(err, MarketError::Gone { .. }), "{err:?}"),
                429 => assert!(matches!(err, MarketError::RateLimited { .. }), "{err:?}"),
                500 | 503 => assert!(matches!(err, MarketError::Unavailable { .. }), "{err:?}"),
                _ => assert!(matches!(err, MarketError::Protocol { .. }), "{err:?}"),
            }
            if matches!(status, 400 | 410 | 418 | 500 | 503) {
                assert!(text.contains(&format!("HTTP {status}")), "{text}");
            }
            if status == 400 && !prefix.is_empty() {
                let field = prefix.trim_end_matches(": ");
                assert!(text.contains(&format!("field {field}")), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn undecodable_answers_name_the_path_not_the_value() {
    let booking = |patient: serde_json::Value| {
        json!({
            "data": [{
                "bookingId": 17, "bookedTime": "2030-01-01 10:00:00", "bookingStatus": "Requested",
                "pmsAppointmentTime": "2030-01-07 09:00:00", "pmsAppointmentLength": 30,
                "patient": patient,
            }],
            "page": {"currentPage": 1, "totalPages": 1, "perPage": 10, "total": 1},
        })
        .to_string()
    };
    let patient = json!({
        "firstname": "Zebedee", "lastname": "Quixotic", "dob": "03-02-1931",
        "phone": "0499 888 777", "email": "zq@example.invalid", "medicareNumber": "2953514701",
    });
    // A booking that cannot be read is reported beside its page, by path, never by value.
    let mut bad_dob = patient.clone();
    bad_dob["dob"] = ECHO.into();
    let mut bad_type = patient.clone();
    bad_type["firstname"] = json!({ "name": ECHO });
    let mut bad_item =
        serde_json::from_str::<serde_json::Value>(&booking(patient.clone())).unwrap();
    bad_item["data"][0]["pmsAppointmentTime"] = ECHO.into();
    for (body, reason) in [
        (
            booking(bad_dob),
            "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD",
        ),
        (booking(bad_type), "patient.firstname: not text"),
        (
            bad_item.to_string(),
            "pmsAppointmentTime: not a date-time in YYYY-MM-DD HH24:MI:SS",
        ),
    ] {
        let base = hostile(move |_| reply(200, "application/json", &body)).await;
        let page = practice(&base)
            .booking_requests(1)
            .await
            .expect("the page is read item by item");
        assert!(page.items.is_empty());
        let u = &page.unreadable[0];
        assert_eq!((u.booking_id, u.reason.as_str()), (Some(17), reason));
        let shown = format!("{u} {u:?}").to_lowercase();
        for f in FORBIDDEN {
            assert!(!shown.contains(&f.to_lowercase()), "{f:?} in {shown}");
        }
    }
    // A gender outside the spec's is not guessed and does not spoil the booking.
    let mut odd_gender = patient.clone();
    odd_gender["gender"] = ECHO.into();
    let body = booking(odd_gender);
    let base = hostile(move |_| reply(200, "application/json", &body)).await;
    let page = practice(&base).booking_requests(1).await.expect("read");
    assert_eq!(page.items[0].patient.gender, None);
    // An answer that is not a list at all is an error, by position only.
    for body in [
        format!("{ECHO} not JSON"),
        booking(patient.clone()).replace("}]", ""),
    ] {
        let base = hostile(move |_| reply(200, "application/json", &body)).await;
        let err = practice(&base)
            .booking_requests(1)
            .await
            .expect_err("undecodable");
        assert_clean(&err, "a broken list");
        assert!(matches!(err, MarketError::Protocol { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("GET /requests/bookings") && text.contains("line 1"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn transport_failures_are_kinds_without_the_url() {
    // The body breaks off after the patient's details.
    let base = hostile(|req| {
        let body = format!("{{\"data\":[\"{ECHO} {}", req.raw);
        Act::Reply(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len() + 5000
            )
            .into_bytes(),
        )
    })
    .await;
    for err in run_all(&base, "broken off").await {
        assert!(
            matches!(
                err,
                MarketError::Protocol { .. } | MarketError::Unavailable { .. }
            ),
            "{err:?}"
        );
    }

    let base = hostile(|_| Act::Close).await;
    for err in run_all(&base, "closed").await {
        assert!(matches!(err, MarketError::Unavailable { .. }), "{err:?}");
    }

    let base = hostile(|_| Act::Hang).await;
    for err in run_all(&base, "hang").await {
        assert!(matches!(err, MarketError::Timeout(_)), "{err:?}");
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/pms-api/v1", listener.local_addr().expect("addr"));
    drop(listener);
    for err in run_all(&base, "refused").await {
        assert!(matches!(err, MarketError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot reach"), "{err}");
    }
}

#[tokio::test]
async fn a_bad_base_url_is_not_repeated() {
    for url in [
        "ftp://Zebedee:zq@example.invalid/pms-api/v1",
        "not a url Zebedee zq@example.invalid",
    ] {
        let err =
            MarketClient::new(ClientConfig::new(url, API.to_owned().into())).expect_err("refused");
        assert!(matches!(err, MarketError::Usage { .. }), "{err:?}");
        assert_clean(&err, url);
    }
}

// ---- the marketplace simulator ---------------------------------------------------------------------

#[tokio::test]
async fn simulator_refusals_name_the_field_not_the_value() {
    let w = world().await;
    w.configure().await;
    // The simulator quotes a duplicate name in its 400.
    let mut dup: Vec<PmsResource> = resources();
    for r in &mut dup {
        r.pms_resource_name = "Zebedee Quixotic".into();
    }
    let err = w
        .practice
        .send_pms_resources(&dup)
        .await
        .expect_err("duplicate names");
    assert_clean(&err, "duplicate");
    assert!(matches!(err, MarketError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("pmsResourceName"), "{err}");

    // A booking of the distinctive patient, rejected with a reason naming them, then rejected
    // again: the second refusal repeats neither.
    let day = future_date(3);
    w.practice
        .send_availability(&snapshot("R1", day, &[("09:00", "12:00", 1800)]))
        .await
        .expect("availability");
    let slots = w
        .get(&format!("/practices/{}/slots?date={day}", w.pid()))
        .await;
    let slot = slots[0].clone();
    let (s, v) = w
        .post(
            &format!("/practices/{}/bookings", w.pid()),
            json!({
                "practitioner": slot["practitioner"], "appointment_type": slot["appointment_type"], "start": slot["start"],
                "patient": {"firstname": "Zebedee", "lastname": "Quixotic", "dob": "1931-02-03", "phone": "0499 888 777", "email": "zq@example.invalid"}
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["booking_id"].as_i64().expect("id");
    w.practice
        .reject_insert(id, Some(REASON))
        .await
        .expect("first reject");
    let err = w
        .practice
        .reject_insert(id, Some(REASON))
        .await
        .expect_err("second reject");
    assert_clean(&err, "second reject");
    assert!(
        matches!(err, MarketError::Invalid { .. } | MarketError::Gone { .. }),
        "{err:?}"
    );
    let err = w
        .practice
        .confirm_insert(
            id,
            &ConfirmBookingInsert {
                pms_appointment_ids: vec!["A1".into()],
                pms_patient_id: " ".into(),
                patient_appointment_description: Some(REASON.into()),
                ..Default::default()
            },
        )
        .await
        .expect_err("empty patient id");
    assert_clean(&err, "confirm");
    assert!(err.to_string().contains("field pmsPatientId"), "{err}");

    // Wrong practice key, wrong api-key: refused without repeating either.
    let wrong = w
        .client
        .practice(PracticeCredentials::new(w.pid(), PRACTICE_KEY));
    let err = wrong.poll().await.expect_err("wrong practice key");
    // A wrong practice key is the spec's 401 (the simulator keeps 403 for missing consent).
    assert!(
        matches!(
            err,
            MarketError::Unauthorized | MarketError::ConsentMissing { .. }
        ),
        "{err:?}"
    );
    assert_clean(&err, "consent");
    let err = client_for(&w.sim, API)
        .practice(PracticeCredentials::new(w.pid(), &w.practice_key))
        .poll()
        .await
        .expect_err("unknown api-key");
    assert!(matches!(err, MarketError::Unauthorized), "{err:?}");
    assert_clean(&err, "api-key");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&w.practice_key), "{shown}");
}
