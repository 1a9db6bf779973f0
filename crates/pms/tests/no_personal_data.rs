//! No personal data in errors (issue 12, finding 6): a patient search puts the patient's name,
//! date of birth, phone and email in the query string, and a patient create puts them and the
//! Medicare number in the body. Whatever the PMS does with them (echoes them in a problem, answers
//! with a body that does not parse, hangs, refuses, breaks off), neither the `Display` nor the
//! `Debug` text of the error holds any of them, nor the API key, the URL or the query.
//!
//! The failures come from a hostile server over real HTTP (raw TCP, so it can also break a body
//! off or never answer) and from the PMS simulator with its faults.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use secrecy::SecretString;
use slotbridge_domain::practice::SiteSlug;
use slotbridge_pms::types::Medicare;
use slotbridge_pms::{
    ExactConfig, ExactConnector, NewAppointment, NewPatient, PatientQuery, PmsConnector, PmsError,
    parse,
};
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, Faults, Outage, PmsSim, SimHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SITE: &str = "spiiclinic";
const KEY: &str = "pii-test-key-Kx9Vb";

/// Everything that must never appear in an error's text, compared case-insensitively.
const FORBIDDEN: &[&str] = &[
    "Zebedee",
    "Quixotic",
    "1931",
    "0499",
    "888 777",
    "888+777",
    "888777",
    "zq@",
    "zq%40",
    "example.invalid",
    "2953",
    "51470",
    KEY,
    DEMO_API_KEY,
    "x-api-key",
    "127.0.0.1",
    "localhost",
    "http://",
    "/api/v1",
    SITE,
    DEMO_SLUG,
    "first_name=",
    "last_name=",
    "date_of_birth=",
    "phone=",
    "email=",
];

/// The patient's details as a server might echo them back, plainly.
const ECHO: &str = "Zebedee Quixotic 1931-02-03 0499 888 777 zq@example.invalid 2953 51470 1";

fn assert_clean(err: &PmsError, context: &str) {
    let shown = format!("{err} || {err:?}");
    let lower = shown.to_lowercase();
    for f in FORBIDDEN {
        assert!(
            !lower.contains(&f.to_lowercase()),
            "{context}: {f:?} appears in the error: {shown}"
        );
    }
}

fn query() -> PatientQuery {
    PatientQuery {
        first_name: Some("Zebedee".into()),
        last_name: Some("Quixotic".into()),
        date_of_birth: Some(jiff::civil::date(1931, 2, 3)),
        phone: Some("0499 888 777".into()),
        email: Some("zq@example.invalid".into()),
    }
}

fn new_patient() -> NewPatient {
    NewPatient {
        first_name: "Zebedee".into(),
        last_name: "Quixotic".into(),
        date_of_birth: jiff::civil::date(1931, 2, 3),
        mobile_phone: Some("0499 888 777".into()),
        home_phone: None,
        email: Some("zq@example.invalid".into()),
        address: None,
        medicare: Some(Medicare {
            number: "2953514701".into(),
            irn: 1,
        }),
    }
}

fn new_appointment() -> NewAppointment {
    let start = jiff::civil::date(2030, 1, 7).at(9, 0, 0, 0);
    NewAppointment {
        practitioner: "D1".into(),
        start,
        end: start
            .checked_add(jiff::SignedDuration::from_mins(30))
            .expect("end"),
        reason: Some("R1".into()),
        patient: "P1".into(),
        notes: "Zebedee Quixotic, 0499 888 777, zq@example.invalid".into(),
        external_ref: "HE-1".into(),
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

type Responder = Arc<dyn Fn(&Request) -> Act + Send + Sync>;

/// One request as received.
struct Request {
    /// The path without the query.
    path: String,
    method: String,
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

/// A body announced longer than what is sent before the connection closes.
fn broken_off(body: &str) -> Act {
    Act::Reply(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len() + 5000
        )
        .into_bytes(),
    )
}

/// A problem+json echoing the request and the patient in its type, title and detail.
fn echoing_problem(status: u16, kind: &str, req: &Request, detail_prefix: &str) -> Act {
    let echo = format!("{ECHO} {}", req.raw);
    let body = serde_json::json!({
        "type": format!("https://pms.example/problems/{kind}"),
        "title": format!("Patient {echo}"),
        "status": status,
        "detail": format!("{detail_prefix}{echo}"),
    });
    reply(status, "application/problem+json", &body.to_string())
}

const PRACTICE: &str = r#"{"slug":"spiiclinic","name":"PII Dental","timezone":"Australia/Sydney","phone":"","interval_minutes":15}"#;

/// Serve `respond` on a fresh port; the practice read always succeeds (an insert needs the time
/// zone first).
async fn hostile(respond: impl Fn(&Request) -> Act + Send + Sync + 'static) -> String {
    let respond: Responder = Arc::new(respond);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
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
                let act = if req.path.ends_with("/practice") {
                    reply(200, "application/json", PRACTICE)
                } else {
                    respond(&req)
                };
                match act {
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
    let mut first = head.lines().next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    Some(Request {
        path: target.split('?').next().unwrap_or(target).to_owned(),
        method,
        raw: String::from_utf8_lossy(&buf).into_owned(),
    })
}

fn connector(base: &str, key: &str, site: &str) -> ExactConnector {
    let mut cfg = ExactConfig::new(
        base.parse().expect("url"),
        SiteSlug::parse(site).expect("slug"),
        SecretString::from(key.to_owned()),
    );
    cfg.timeout = Duration::from_millis(300);
    cfg.max_retries = 0;
    cfg.max_retry_after = Duration::ZERO;
    cfg.backoff = Duration::from_millis(10);
    ExactConnector::new(cfg)
}

/// Run the three calls that carry patient data against `base`; every one must fail cleanly and
/// name its operation. Returns the errors (search, create, insert).
async fn run_all(base: &str, context: &str) -> [PmsError; 3] {
    let pms = connector(base, KEY, SITE);
    let search = pms
        .search_patients(&query())
        .await
        .expect_err("search fails");
    let create = pms
        .create_patient(&new_patient())
        .await
        .expect_err("create fails");
    let insert = pms
        .insert_appointment(&new_appointment())
        .await
        .expect_err("insert fails");
    for (err, op) in [
        (&search, "patient search"),
        (&create, "patient create"),
        (&insert, "appointment insert"),
    ] {
        assert_clean(err, &format!("{context}, {op}"));
        if !matches!(err, PmsError::Timeout | PmsError::RateLimited { .. }) {
            // An insert reads the practice's time zone first, which may be what failed.
            let text = err.to_string();
            assert!(
                text.contains(op) || (op == "appointment insert" && text.contains("practice read")),
                "{context}: {op} not named: {err}"
            );
        }
    }
    [search, create, insert]
}

#[tokio::test]
async fn error_statuses_echoing_the_patient_keep_only_status_kind_and_field() {
    for (status, kind, prefix) in [
        (400, "invalid", "email: "),
        (401, "unauthorized", ""),
        (401, "key-revoked", ""),
        (403, "forbidden", ""),
        (404, "not-found", ""),
        (409, "overlaps-appointment", "start: "),
        (410, "gone", ""),
        (422, "invalid", "medicare.number: "),
        (422, "Zebedee Quixotic zq@example.invalid", "first_name "),
        (429, "rate-limited", ""),
        (418, "teapot", ""),
        (500, "internal", ""),
        (503, "unavailable", ""),
        (504, "timeout", ""),
    ] {
        let base = hostile(move |req| echoing_problem(status, kind, req, prefix)).await;
        let context = format!("HTTP {status} {kind}");
        let errors = run_all(&base, &context).await;
        for err in &errors {
            let text = err.to_string();
            match status {
                401 if kind == "key-revoked" => {
                    assert!(matches!(err, PmsError::KeyRevoked { .. }), "{err:?}")
                }
                401 | 403 => assert!(matches!(err, PmsError::Unauthorized { .. }), "{err:?}"),
                404 => assert!(matches!(err, PmsError::NotFound { .. }), "{err:?}"),
                409 => {
                    assert!(
                        matches!(err, PmsError::Conflict { kind: k, .. } if k == kind),
                        "{err:?}"
                    );
                    assert!(text.contains("field start"), "{text}");
                }
                400 | 410 | 422 => assert!(matches!(err, PmsError::Invalid { .. }), "{err:?}"),
                429 => assert!(matches!(err, PmsError::RateLimited { .. }), "{err:?}"),
                504 => assert_eq!(err, &PmsError::Timeout),
                500 | 503 => assert!(matches!(err, PmsError::Unavailable { .. }), "{err:?}"),
                _ => assert!(matches!(err, PmsError::Protocol { .. }), "{err:?}"),
            }
            if !matches!(status, 429 | 504) {
                assert!(text.contains(&format!("HTTP {status}")), "{text}");
            }
        }
        if status == 400 {
            assert!(
                errors[0].to_string().contains("field email"),
                "{}",
                errors[0]
            );
        }
        if status == 422 && kind == "invalid" {
            let text = errors[1].to_string();
            assert!(text.contains("field medicare.number"), "{text}");
            assert!(matches!(&errors[1], PmsError::Invalid { kind: k, .. } if k == "invalid"));
        }
        if status == 422 && kind != "invalid" {
            // Not a documented problem type: only `other` is said, and `first_name <value>` is
            // no field path.
            assert!(
                matches!(&errors[0], PmsError::Invalid { kind: k, .. } if k == "other"),
                "{:?}",
                errors[0]
            );
        }
    }
}

#[tokio::test]
async fn undecodable_answers_name_the_path_not_the_value() {
    // Well-formed JSON whose values do not fit, each value a piece of the patient.
    let base = hostile(|req| {
        let body = match (req.method.as_str(), req.path.rsplit('/').next()) {
            ("GET", Some("patients")) => format!(
                r#"{{"items":[{{"id":"P1","first_name":"Zebedee","last_name":"Quixotic","date_of_birth":"{ECHO}","mobile_phone":"0499 888 777","email":"zq@example.invalid","medicare":{{"number":"2953514701","irn":"Zebedee"}}}}]}}"#
            ),
            ("POST", Some("patients")) => format!(
                r#"{{"id":"P1","first_name":"Zebedee","last_name":"Quixotic","date_of_birth":"1931-02-03","email":"zq@example.invalid","medicare":{{"number":2953514701,"irn":"{ECHO}"}}}}"#
            ),
            _ => format!(
                r#"{{"id":"A1","practitioner":"D1","start":"{ECHO}","end":"2030-01-07T09:30:00+11:00","patient":"P1","notes":"Zebedee Quixotic","source":"online"}}"#
            ),
        };
        reply(200, "application/json", &body)
    })
    .await;
    let errors = run_all(&base, "values that do not fit").await;
    for err in &errors {
        assert!(matches!(err, PmsError::Protocol { .. }), "{err:?}");
    }
    let search = errors[0].to_string();
    assert!(
        search.contains("items[0].date_of_birth") && search.contains("line 1"),
        "{search}"
    );
    assert!(
        errors[1].to_string().contains("medicare.number"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].to_string().contains("appointment.start"),
        "{}",
        errors[2]
    );

    // Not JSON at all: the request echoed back as text.
    let base = hostile(|req| reply(200, "application/json", &format!("{ECHO}\n{}", req.raw))).await;
    for err in run_all(&base, "not JSON").await {
        assert!(matches!(err, PmsError::Protocol { .. }), "{err:?}");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }
}

#[tokio::test]
async fn transport_failures_are_kinds_without_the_url() {
    // The body breaks off after the patient's details (reqwest reports it while decoding).
    let base = hostile(|req| broken_off(&format!("{{\"items\":[\"{ECHO} {}", req.raw))).await;
    for err in run_all(&base, "broken off").await {
        assert!(
            matches!(
                err,
                PmsError::Unavailable { .. } | PmsError::Protocol { .. }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("answer"), "{err}");
    }

    // The connection is closed without an answer.
    let base = hostile(|_| Act::Close).await;
    for err in run_all(&base, "closed").await {
        assert!(matches!(err, PmsError::Unavailable { .. }), "{err:?}");
    }

    // No answer within the timeout.
    let base = hostile(|_| Act::Hang).await;
    for err in run_all(&base, "hang").await {
        assert_eq!(err, PmsError::Timeout);
    }

    // Nothing listens on the port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    for err in run_all(&base, "refused").await {
        assert!(matches!(err, PmsError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}

// ---- the PMS simulator -----------------------------------------------------------------------------

async fn simulator() -> SimHandle {
    let sim = PmsSim::builder().practices(1).seed(12).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sim.serve(listener).await.expect("serve")
}

#[tokio::test]
async fn simulator_validation_echoes_are_reduced_to_the_field() {
    let sim = simulator().await;
    let pms = connector(&sim.base_url(), DEMO_API_KEY, DEMO_SLUG);
    // The simulator quotes the bad value in its detail, as a real PMS may.
    let mut bad_email = new_patient();
    bad_email.email = Some("Zebedee Quixotic zq@example.invalid".into());
    let mut bad_phone = new_patient();
    bad_phone.mobile_phone = Some("0499 888 777 Zebedee".into());
    let mut bad_medicare = new_patient();
    bad_medicare.medicare = Some(Medicare {
        number: "2953 51470 1".into(),
        irn: 1,
    });
    for (patient, field) in [
        (bad_email, "email"),
        (bad_phone, "mobile_phone"),
        (bad_medicare, "medicare.number"),
    ] {
        let err = pms.create_patient(&patient).await.expect_err("refused");
        assert_clean(&err, field);
        assert!(matches!(err, PmsError::Invalid { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("patient create") && text.contains(&format!("field {field}")),
            "{text}"
        );
    }
    // A wrong key: refused without repeating it.
    let wrong = connector(&sim.base_url(), KEY, DEMO_SLUG);
    let err = wrong.search_patients(&query()).await.expect_err("401");
    assert!(matches!(err, PmsError::Unauthorized { .. }), "{err:?}");
    assert_clean(&err, "wrong key");
}

#[tokio::test]
async fn simulator_faults_during_a_patient_search_keep_the_query_out() {
    let sim = simulator().await;
    let pms = connector(&sim.base_url(), DEMO_API_KEY, DEMO_SLUG);
    let cases = [
        (
            "server errors",
            Faults {
                error_rate: 1.0,
                ..Faults::default()
            },
        ),
        (
            "dropped connections",
            Faults {
                drop_rate: 1.0,
                ..Faults::default()
            },
        ),
        (
            "refused",
            Faults {
                outage: Some(Outage::Refused),
                ..Faults::default()
            },
        ),
        (
            "service unavailable",
            Faults {
                outage: Some(Outage::ServiceUnavailable),
                ..Faults::default()
            },
        ),
        (
            "slow",
            Faults {
                latency_ms: 1500,
                ..Faults::default()
            },
        ),
    ];
    for (name, faults) in cases {
        sim.sim().set_faults(faults);
        let err = pms.search_patients(&query()).await.expect_err(name);
        assert_clean(&err, name);
        assert!(err.is_transient(), "{name}: {err:?}");
        let err = pms.create_patient(&new_patient()).await.expect_err(name);
        assert_clean(&err, name);
    }
}

// ---- the error constructors --------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever status and problem the PMS answers, with the patient's details anywhere in it,
    /// the error holds none of them.
    #[test]
    fn parse_error_never_repeats_what_the_server_sent(
        status in 100u16..600,
        piece in prop::sample::select(FORBIDDEN),
        field in prop::sample::select(&["", "email: ", "first_name: ", "medicare.number: ", "[0].phone: ", "Zebedee: "][..]),
        noise in "[ -~]{0,40}",
        where_ in 0..4usize,
        retry_after in proptest::option::of("[ -~]{0,12}"),
    ) {
        let echo = format!("{noise}{piece}{noise}");
        let mut problem = serde_json::json!({
            "type": "https://pms.example/problems/invalid",
            "title": "Invalid request",
            "detail": format!("{field}{echo}"),
        });
        match where_ {
            0 => problem["title"] = echo.clone().into(),
            1 => problem["type"] = format!("https://pms.example/problems/{echo}").into(),
            2 => problem["type"] = echo.clone().into(),
            _ => {}
        }
        for body in [problem.to_string(), echo.clone()] {
            let err = parse::parse_error(status, body.as_bytes(), retry_after.as_deref());
            let shown = format!("{err} || {err:?}").to_lowercase();
            prop_assert!(!shown.contains(&piece.to_lowercase()), "{piece:?} in {shown}");
        }
    }
}
