//! Every answer of the Exact-style PMS API the connector reads (`crates/pms/src/parse.rs`),
//! problem bodies with any status and `Retry-After`, and webhook CloudEvents.
//!
//! Properties, beyond "never panics":
//! - an error never repeats a text value of the body (checked by marking every one; the ids the
//!   messages name on purpose are spared);
//! - 429 is `RateLimited` with a wait of at most an hour, and a 5xx is transient;
//! - an appointment read ends after it starts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotbridge_fuzz::{assert_unmarked, json, marked};
use slotbridge_pms::{PmsError, parse, webhook};

/// Keys whose values the messages may name: ids, not personal data.
const IDS: &[&str] = &["id", "practitioner", "next_cursor", "reason", "type"];

fn every_parser(body: &[u8], tz: &jiff::tz::TimeZone) -> Vec<String> {
    fn err<T>(r: Result<T, PmsError>) -> Option<String> {
        r.err().map(|e| e.to_string())
    }
    let mut errors = vec![
        err(parse::parse_practice(body)),
        err(parse::parse_practitioners(body)),
        err(parse::parse_online_booking(body)),
        err(parse::parse_web_setup(body)),
        err(parse::parse_sessions(body)),
        err(parse::parse_blocks(body, tz)),
        err(parse::parse_closed_dates(body)),
        err(parse::parse_changes(body)),
        err(parse::parse_patient(body)),
        err(parse::parse_patients(body)),
        err(parse::parse_webhook_id(body)),
        err(parse::parse_webhooks(body)),
        err(parse::parse_appointment(body, tz)),
    ];
    match parse::parse_appointments(body, tz) {
        Ok(page) => {
            for a in &page.items {
                assert!(
                    a.end > a.start,
                    "appointment {} read with end <= start",
                    a.id
                );
            }
        }
        Err(e) => errors.push(Some(e.to_string())),
    }
    errors.push(webhook::parse_event(body).err().map(|e| e.to_string()));
    errors.into_iter().flatten().collect()
}

fuzz_target!(|data: &[u8]| {
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("bundled tzdb");
    let (status, rest) = match data.split_first() {
        Some((s, rest)) => (300 + u16::from(*s) * 2, rest),
        None => (500, data),
    };
    let retry_after = std::str::from_utf8(rest).ok();
    let e = parse::parse_error(status, rest, retry_after);
    match status {
        429 => match e {
            PmsError::RateLimited { retry_after } => {
                assert!(retry_after <= std::time::Duration::from_secs(3600))
            }
            other => panic!("429 read as {other:?}"),
        },
        500..=599 => assert!(e.is_transient(), "{status} read as {e:?}"),
        _ => {}
    }
    every_parser(rest, &tz);

    // The same body with every text value marked: no message may show one.
    if let Some(v) = json(rest) {
        let body = serde_json::to_vec(&marked(&v, IDS)).expect("JSON");
        for message in every_parser(&body, &tz) {
            assert_unmarked("a PMS parser's error", &message);
        }
        for status in [400, 401, 404, 409, 422, 429, 500, 503] {
            let e = parse::parse_error(status, &body, None);
            assert_unmarked("a PMS error", &format!("{e} {e:?}"));
        }
    }
});
