//! Diary bodies (sessions, blocks, closed dates, changes, patients) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotbridge_pms::parse;

fuzz_target!(|data: &[u8]| {
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("bundled tzdb");
    let _ = parse::parse_sessions(data);
    let _ = parse::parse_blocks(data, &tz);
    let _ = parse::parse_closed_dates(data);
    let _ = parse::parse_changes(data);
    let _ = parse::parse_patient(data);
    let _ = parse::parse_patients(data);
    let _ = parse::parse_webhook_id(data);
    let _ = parse::parse_webhooks(data);
});
