//! Setup bodies (practice, practitioners, online booking, web setup) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slotbridge_pms::parse;

fuzz_target!(|data: &[u8]| {
    let _ = parse::parse_practice(data);
    let _ = parse::parse_practitioners(data);
    let _ = parse::parse_online_booking(data);
    let _ = parse::parse_web_setup(data);
});
