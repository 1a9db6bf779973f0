//! The response parsers never panic: random bytes and mutated valid bodies give `Ok` or a
//! `Protocol` error. (The cargo-fuzz targets in `fuzz/` explore the same parsers further.)

use proptest::prelude::*;
use slotbridge_pms::parse;
use slotbridge_pms::webhook::parse_event;

const VALID: &[&str] = &[
    r#"{"slug":"sabc","name":"A","timezone":"Australia/Sydney","phone":"1","interval_minutes":15}"#,
    r#"{"items":[{"id":"1","title":"Dr","first_name":"A","last_name":"B","specialties":["dentist"]}],"next_cursor":"o1"}"#,
    r#"{"items":[{"practitioner":"1","duration_minutes":30}],"next_cursor":null}"#,
    r#"{"stacking":true,"reasons":[{"id":"R","name":"Healthengine","marketing":true,"providers":[{"practitioner":"1","duration_minutes":30,"windows":[{"days":["mon"],"start":"08:00","end":"12:00"}]}]}]}"#,
    r#"{"items":[{"practitioner":"1","sessions":[{"days":["mon"],"start":"08:00","end":"17:00"}],"breaks":[]}],"next_cursor":null}"#,
    r#"{"items":[{"id":"B1","practitioner":null,"kind":"meeting","date":"2026-12-07","start":"2026-12-07T08:00:00+11:00","end":"2026-12-07T09:00:00+11:00"}],"next_cursor":null}"#,
    r#"{"items":[{"date":"2026-12-25"}],"next_cursor":null}"#,
    r#"{"items":[{"id":"A1","practitioner":"1","start":"2026-12-07T09:00:00+11:00","end":"2026-12-07T09:30:00+11:00","reason":"R","patient":"P1","notes":"","source":"online","external_ref":"x"}],"next_cursor":"abc"}"#,
    r#"{"items":[{"seq":1,"type":"appointment.created","subject":"A1","time":"2026-12-07T09:00:00+11:00","data":{}}],"next_cursor":"1"}"#,
    r#"{"id":"P1","first_name":"A","last_name":"B","date_of_birth":"1990-01-01"}"#,
    r#"{"type":"https://slotbridge.dev/problems/pms/off-grid","title":"t","status":422,"detail":"d"}"#,
    r#"{"specversion":"1.0","id":"1","source":"/x","type":"t","siteslug":"sabc","data":{}}"#,
];

fn all_parsers(bytes: &[u8]) {
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("tz");
    let _ = parse::parse_practice(bytes);
    let _ = parse::parse_practitioners(bytes);
    let _ = parse::parse_online_booking(bytes);
    let _ = parse::parse_web_setup(bytes);
    let _ = parse::parse_sessions(bytes);
    let _ = parse::parse_blocks(bytes, &tz);
    let _ = parse::parse_closed_dates(bytes);
    let _ = parse::parse_appointments(bytes, &tz);
    let _ = parse::parse_appointment(bytes, &tz);
    let _ = parse::parse_changes(bytes);
    let _ = parse::parse_patient(bytes);
    let _ = parse::parse_patients(bytes);
    let _ = parse::parse_webhook_id(bytes);
    let _ = parse::parse_problem(bytes);
    for status in [400, 401, 404, 409, 410, 422, 429, 500, 503, 302] {
        let _ = parse::parse_error(status, bytes, std::str::from_utf8(bytes).ok());
    }
    let _ = parse_event(bytes);
}

#[test]
fn valid_bodies_parse() {
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("tz");
    assert!(parse::parse_practice(VALID[0].as_bytes()).is_ok());
    assert!(parse::parse_practitioners(VALID[1].as_bytes()).is_ok());
    assert!(parse::parse_web_setup(VALID[3].as_bytes()).is_ok());
    let blocks = parse::parse_blocks(VALID[5].as_bytes(), &tz).expect("blocks");
    assert_eq!(blocks.items[0].start.to_string(), "08:00");
    let appts = parse::parse_appointments(VALID[7].as_bytes(), &tz).expect("appointments");
    assert_eq!(appts.next_cursor.as_deref(), Some("abc"));
    assert_eq!(
        appts.items[0].start,
        jiff::civil::date(2026, 12, 7).at(9, 0, 0, 0)
    );
    assert!(parse::parse_changes(VALID[8].as_bytes()).is_ok());
    assert_eq!(
        parse::parse_problem(VALID[10].as_bytes()).short_kind(),
        "off-grid"
    );
    assert!(parse_event(VALID[11].as_bytes()).is_ok());
}

#[test]
fn hostile_values_are_protocol_errors() {
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("tz");
    let bad_interval = VALID[0].replace("15", "7");
    assert!(parse::parse_practice(bad_interval.as_bytes()).is_err());
    let no_offset = VALID[7].replace("+11:00", "");
    assert!(parse::parse_appointments(no_offset.as_bytes(), &tz).is_err());
    let backwards = VALID[7].replace("09:30:00", "08:30:00");
    assert!(parse::parse_appointments(backwards.as_bytes(), &tz).is_err());
    let bad_time = VALID[3].replace("12:00", "25:00");
    assert!(parse::parse_web_setup(bad_time.as_bytes()).is_err());
    let huge = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse::parse_practice(huge.as_bytes()).is_err());
}

#[test]
fn attendance_is_read_from_status_and_a_missing_status_is_booked() {
    use slotbridge_domain::practice::Attendance;
    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("tz");
    let one = r#"{"id":"A1","practitioner":"1","start":"2026-12-07T09:00:00+11:00","end":"2026-12-07T09:30:00+11:00","source":"desk"}"#;
    let read = |body: &str| parse::parse_appointment(body.as_bytes(), &tz);
    assert_eq!(read(one).expect("no status").attendance, Attendance::Booked);
    let with = |status: &str| one.replace(r#""source""#, &format!(r#""status":{status},"source""#));
    assert_eq!(
        read(&with(r#""booked""#)).expect("booked").attendance,
        Attendance::Booked
    );
    assert_eq!(
        read(&with(r#""did_not_attend""#)).expect("dna").attendance,
        Attendance::DidNotAttend
    );
    let page = VALID[7].replace(r#""source""#, r#""status":"did_not_attend","source""#);
    let appts = parse::parse_appointments(page.as_bytes(), &tz).expect("appointments");
    assert_eq!(appts.items[0].attendance, Attendance::DidNotAttend);
    // An attendance this client does not know is a protocol error that does not repeat it.
    let err = read(&with(r#""Zebedee Quixotic""#)).expect_err("unknown status");
    assert!(
        matches!(err, slotbridge_pms::PmsError::Protocol { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("Zebedee"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&bytes);
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        which in 0..VALID.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = VALID[which].as_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        all_parsers(&bytes);
        all_parsers(&bytes[..cut.index(bytes.len() + 1)]);
    }
}
