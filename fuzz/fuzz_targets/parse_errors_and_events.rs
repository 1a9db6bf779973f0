//! Problem bodies with any status and Retry-After, and webhook CloudEvents, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data.split_first() {
        Some((s, rest)) => (300 + u16::from(*s) * 2, rest),
        None => (500, data),
    };
    let retry_after = std::str::from_utf8(rest).ok();
    let _ = slotbridge_pms::parse::parse_error(status, rest, retry_after);
    let _ = slotbridge_pms::webhook::parse_event(rest);
});
