//! `slotbridge match`: the binary end to end, on the shipped examples and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/matching")
}

fn slotbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .args(args)
        .output()
        .expect("run slotbridge")
}

fn run_match(patients: &Path, booking: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "match",
        "--patients",
        patients.to_str().expect("utf-8 path"),
        "--booking",
        booking.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    slotbridge(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn example_booking_matches_the_married_patient_with_a_table() {
    let o = run_match(
        &examples().join("patients.json"),
        &examples().join("booking.json"),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("decision: match\npatient:  1001\n"),
        "{out}"
    );
    assert!(out.contains("candidate 1001"), "{out}");
    assert!(out.contains("medicare"), "{out}");
    assert!(
        out.contains("conflict: same Medicare card, IRN 2 in the booking, 1 on file"),
        "{out}"
    );
}

#[test]
fn json_output_carries_the_decision_and_evidence() {
    let o = run_match(
        &examples().join("patients.json"),
        &examples().join("booking.json"),
        &["--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["decision"], "match");
    assert_eq!(v["patientId"], "1001");
    let first = &v["candidates"][0];
    assert_eq!(first["patientId"], "1001");
    assert_eq!(first["status"], "clears");
    let fields: Vec<&str> = first["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        [
            "firstName",
            "lastName",
            "dob",
            "phone",
            "email",
            "medicare",
            "address"
        ]
    );
}

#[test]
fn twin_is_matched_by_first_name() {
    let o = run_match(
        &examples().join("patients.json"),
        &examples().join("booking-twin.json"),
        &["--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["decision"], "match");
    assert_eq!(v["patientId"], "1006");
}

#[test]
fn sibling_sharing_contacts_is_new() {
    let o = run_match(
        &examples().join("patients.json"),
        &examples().join("booking-new.json"),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("decision: new\n"), "{}", stdout(&o));
}

#[test]
fn ambiguous_decision_names_the_files_and_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let patients = dir.path().join("patients.json");
    let booking = dir.path().join("booking.json");
    std::fs::write(
        &patients,
        r#"[{"id":"a","firstname":"Grace","lastname":"Kelly","dob":"1929-11-12","mobile":"0412000111"},
            {"id":"b","firstname":"Grace","lastname":"Kelly","dob":"1929-11-12"}]"#,
    )
    .expect("write");
    std::fs::write(
        &booking,
        r#"{"patient":{"firstname":"Grace","lastname":"Kelly","dob":"12-11-1929","phone":"0412 000 111"}}"#,
    )
    .expect("write");
    let o = run_match(&patients, &booking, &["--on-ambiguous", "reject-booking"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("decision: ambiguous\npossible: a, b\naction:   reject the booking\n"),
        "{out}"
    );
    assert!(out.contains("several patient files match"), "{out}");
}

/// Writes the two files and runs; returns (status, stderr, stdout).
fn bad(patients: &str, booking: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("patients.json");
    let b = dir.path().join("booking.json");
    std::fs::write(&p, patients).expect("write");
    std::fs::write(&b, booking).expect("write");
    let o = run_match(&p, &b, &[]);
    (o.status.code(), stderr(&o), stdout(&o))
}

const GOOD_BOOKING: &str = r#"{"firstname":"Jane","lastname":"Citizen","dob":"12-04-1985"}"#;
const GOOD_PATIENTS: &str =
    r#"[{"id":"1","firstname":"Jane","lastname":"Citizen","dob":"1985-04-12"}]"#;

#[test]
fn bad_input_is_one_line_naming_file_and_field_with_status_2() {
    let cases: &[(&str, &str, &str)] = &[
        ("not json", GOOD_BOOKING, "patients.json: invalid JSON"),
        (
            r#"{"id":"1"}"#,
            GOOD_BOOKING,
            "patients.json: expected a JSON array of patients, found an object",
        ),
        (
            "[3]",
            GOOD_BOOKING,
            "patients.json: [0]: expected a patient object, found a number",
        ),
        (
            r#"[{"firstname":"A"}]"#,
            GOOD_BOOKING,
            "patients.json: [0].id: missing",
        ),
        (
            r#"[{"id":"1","dob":"1985-13-01"}]"#,
            GOOD_BOOKING,
            "patients.json: [0].dob: date of birth \"1985-13-01\" is not a date",
        ),
        (
            r#"[{"id":"1","email":["a"]}]"#,
            GOOD_BOOKING,
            "patients.json: [0].email: expected a string or null, found an array",
        ),
        (
            r#"[{"id":"1","firstName":"A"}]"#,
            GOOD_BOOKING,
            "patients.json: [0].firstName: unknown field; did you mean \"firstname\"?",
        ),
        (
            r#"[{"id":"1","address":7}]"#,
            GOOD_BOOKING,
            "patients.json: [0].address: expected a string, an object or null, found a number",
        ),
        (
            GOOD_PATIENTS,
            "[]",
            "booking.json: expected the booking's patient object, found an array",
        ),
        (
            GOOD_PATIENTS,
            r#"{"firstname":"Jane","dob":"31-02-1985"}"#,
            "booking.json: dob: date of birth \"31-02-1985\" is not a date",
        ),
        (
            GOOD_PATIENTS,
            r#"{"firstName":"Jane"}"#,
            "booking.json: firstName: unknown field; did you mean \"firstname\"?",
        ),
        (
            GOOD_PATIENTS,
            r#"{"patient":{"phone":true}}"#,
            "booking.json: patient.phone: expected a string or null, found a boolean",
        ),
    ];
    for (patients, booking, want) in cases {
        let (code, err, out) = bad(patients, booking);
        assert_eq!(code, Some(2), "{want}: {err}");
        assert!(out.is_empty(), "{want}: stdout {out}");
        assert_eq!(err.lines().count(), 1, "{want}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn missing_file_is_bad_input() {
    let o = run_match(
        Path::new("/nonexistent/patients.json"),
        &examples().join("booking.json"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/patients.json: cannot read"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unusable_booking_fields_are_noted_not_fatal() {
    let (code, err, out) = bad(
        GOOD_PATIENTS,
        r#"{"firstname":"Jane","lastname":"Citizen","dob":"12-04-1985","phone":"call me","medicareNumber":"2123456781"}"#,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("decision: match\npatient:  1\n"), "{out}");
    assert!(
        out.contains("note: booking phone: phone number \"call me\" is not a phone number"),
        "{out}"
    );
    assert!(out.contains("note: booking medicareNumber: Medicare number \"2123456781\" is invalid: the check digit"), "{out}");
}
