//! Appointment bodies (list and single) must parse or fail cleanly, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("bundled tzdb");
    let _ = slotbridge_pms::parse::parse_appointments(data, &tz);
    let _ = slotbridge_pms::parse::parse_appointment(data, &tz);
});
