//! `slotbridge slots`, run as a built binary: on the examples, on bad input, and with `--bench`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn slots(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .arg("slots")
        .args(args)
        .output()
        .expect("the slotbridge binary runs")
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Runs on a snapshot written to a temporary file; expects exit status 2, nothing on stdout and
/// one line on stderr, which it returns.
fn rejected(contents: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("snapshot.json");
    std::fs::write(&path, contents).expect("write snapshot");
    let out = slots(&["--snapshot", &path.display().to_string()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty(), "no partial output: {}", stdout(&out));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let prefix = format!("error: {}: ", path.display());
    err.trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{err:?} starts with {prefix:?}"))
        .to_owned()
}

fn slot_array(out: &Output) -> Vec<serde_json::Value> {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    match serde_json::from_slice(&out.stdout).expect("stdout is JSON") {
        serde_json::Value::Array(slots) => slots,
        other => panic!("expected an array, got {other}"),
    }
}

#[test]
fn every_example_gives_well_formed_slots() {
    let mut count = 0;
    for entry in std::fs::read_dir(examples()).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        count += 1;
        let slots = slot_array(&slots(&["--snapshot", &path.display().to_string()]));
        assert!(!slots.is_empty(), "{} publishes slots", path.display());
        for slot in &slots {
            let obj = slot.as_object().expect("slot is an object");
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            assert_eq!(keys, ["end", "practitioner", "reason", "start"]);
            for key in ["start", "end"] {
                let text = obj[key].as_str().expect("instant is a string");
                let instant: jiff::Timestamp = text.parse().expect("RFC 3339");
                assert!(instant.as_second() > 0);
                assert!(!text.ends_with('Z'), "local offset, not UTC: {text}");
            }
        }
    }
    assert!(count >= 3, "examples/ holds the documented examples");
}

#[test]
fn riverside_small_json_golden() {
    let out = slots(&["--snapshot", &example("riverside-small.json")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn riverside_small_table_golden() {
    let out = slots(&[
        "--snapshot",
        &example("riverside-small.json"),
        "--format",
        "table",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn harbour_dental_table_is_for_people() {
    let out = slots(&[
        "--snapshot",
        &example("harbour-dental.json"),
        "--format",
        "table",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("DATE"), "{}", lines[0]);
    assert!(lines.iter().any(|l| l.contains("Dr Amelia Chen (chen)")));
    // Before and after the April DST change.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("2026-04-02") && l.contains("+11:00"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("2026-04-07") && l.contains("+10:00"))
    );
    // Good Friday is closed.
    assert!(!lines.iter().any(|l| l.contains("2026-04-03")));
    let last = lines.last().expect("summary line");
    assert!(
        last.ends_with("slots over 30 days from 2026-03-30 (Australia/Sydney), stacking on"),
        "{last}"
    );
}

#[test]
fn stacking_off_example_is_a_subset_of_stacking_on() {
    let on = slot_array(&slots(&["--snapshot", &example("harbour-dental.json")]));
    let off = slot_array(&slots(&[
        "--snapshot",
        &example("harbour-dental-stacking-off.json"),
    ]));
    assert!(off.len() < on.len() / 2, "{} vs {}", off.len(), on.len());
    for slot in &off {
        assert!(on.contains(slot), "{slot} not in stacking-on output");
    }
}

#[test]
fn bench_prints_the_median_on_stderr_and_the_slots_once() {
    let plain = slots(&["--snapshot", &example("riverside-small.json")]);
    let out = slots(&[
        "--snapshot",
        &example("riverside-small.json"),
        "--bench",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, plain.stdout);
    let err = stderr(&out);
    let value = err
        .lines()
        .find_map(|l| l.strip_prefix("compute_us_median="))
        .unwrap_or_else(|| panic!("no compute_us_median in {err:?}"));
    let micros: f64 = value.parse().expect("a number of microseconds");
    assert!(micros >= 0.0);
}

#[test]
fn an_unreadable_file_is_one_line_and_status_2() {
    let out = slots(&["--snapshot", "/nonexistent/snapshot.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: /nonexistent/snapshot.json: cannot read the snapshot: "),
        "{err}"
    );
}

#[test]
fn bad_json_names_line_and_column() {
    let message = rejected("{\n  \"timezone\": \"Australia/Sydney\",\n  \"now\": ,\n}");
    assert!(message.starts_with("invalid JSON: "), "{message}");
    assert!(message.ends_with("at line 3 column 10"), "{message}");
}

#[test]
fn a_missing_or_mistyped_field_is_named() {
    let message = rejected(
        r#"{"now": "2026-04-03T08:00:00+11:00", "interval_minutes": 15, "stacking": true}"#,
    );
    assert_eq!(message, "snapshot: missing field `timezone`");
    let message = rejected(
        r#"{"timezone": "Australia/Sydney", "now": "2026-04-03T08:00:00+11:00", "interval_minutes": "15", "stacking": true}"#,
    );
    assert_eq!(
        message,
        r#"interval_minutes: invalid type: string "15", expected u32"#
    );
}

#[test]
fn an_invalid_field_is_named_with_its_path() {
    let message = rejected(
        r#"{"timezone": "Australia/Sydney", "now": "2026-04-03T08:00:00+11:00",
            "interval_minutes": 15, "stacking": true,
            "practitioners": [{"id": "lee", "sessions": [
                {"days": ["fri"], "start": "09:00", "end": "12:00"},
                {"days": ["fri"], "start": "8am", "end": "12:00"}]}]}"#,
    );
    assert_eq!(
        message,
        r#"practitioners[0].sessions[1].start: expected "HH:MM" (00:00 to 23:59, or 24:00 as an end time), found "8am""#
    );
    let message = rejected(
        r#"{"timezone": "Australia/Sydney", "now": "2026-04-03T08:00:00+11:00",
            "horizon_days": 120, "interval_minutes": 15, "stacking": true}"#,
    );
    assert_eq!(message, "horizon_days: must be between 1 and 90, found 120");
}

#[test]
fn an_unknown_format_is_a_usage_error() {
    let out = slots(&[
        "--snapshot",
        &example("riverside-small.json"),
        "--format",
        "xml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
