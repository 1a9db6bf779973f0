//! `slotbridge match`: run the patient matcher offline on a file of PMS patients and one
//! marketplace booking's `patient` object (see docs/matching.md).
//!
//! Bad input (an unreadable file, invalid JSON, a field of the wrong type, a date of birth that is
//! not a date, an unknown booking field) is one line on stderr naming the file and the field, exit
//! status 2, and nothing on stdout. Other fields that do not normalise (a phone that is not a
//! phone, a Medicare number with a wrong check digit) are what the matcher meets in real bookings:
//! they are ignored and listed as notes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value};
use slotbridge_domain::matching::normalise::parse_dob;
use slotbridge_domain::matching::{
    AmbiguityPolicy, BookingPatient, Decision, MatchConfig, Outcome, PmsPatient, match_patient,
};

use super::usage_error;

/// Arguments of `slotbridge match`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PMS patients: a JSON array of {id, firstname, lastname, dob (YYYY-MM-DD), mobile, phone,
    /// email, address (string or object), medicare, irn}; any field but id may be missing or null.
    #[arg(long, value_name = "FILE")]
    patients: PathBuf,
    /// One marketplace booking's `patient` object, as the marketplace API sends it (firstname,
    /// lastname, dob as DD-MM-YYYY, phone, email, address, suburb, state, postcode, gender,
    /// medicareNumber, medicareIrn, medicareExpiry). A whole booking with a `patient` member is
    /// accepted too.
    #[arg(long, value_name = "FILE")]
    booking: PathBuf,
    /// Print the decision and its evidence as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// What an ambiguous decision does.
    #[arg(long, value_enum, default_value_t = OnAmbiguous::CreateNewAndFlag)]
    on_ambiguous: OnAmbiguous,
}

/// The ambiguity policy, as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnAmbiguous {
    /// Create a new patient file and flag it for the practice.
    CreateNewAndFlag,
    /// Reject the booking.
    RejectBooking,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let patients = match read_json(&args.patients).and_then(|v| patients_from(&args.patients, &v)) {
        Ok(p) => p,
        Err(msg) => return Ok(usage_error(msg)),
    };
    let booking = match read_json(&args.booking).and_then(|v| booking_from(&args.booking, &v)) {
        Ok(b) => b,
        Err(msg) => return Ok(usage_error(msg)),
    };
    let config = MatchConfig {
        on_ambiguous: match args.on_ambiguous {
            OnAmbiguous::CreateNewAndFlag => AmbiguityPolicy::CreateNewAndFlag,
            OnAmbiguous::RejectBooking => AmbiguityPolicy::RejectBooking,
        },
        ..MatchConfig::default()
    };
    let decision = match_patient(&booking, &patients, &config);
    let text = if args.json {
        let mut t = serde_json::to_string_pretty(&decision).context("serialising the decision")?;
        t.push('\n');
        t
    } else {
        table(&decision)
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing the decision"),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{file}: invalid JSON: {e}"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A text field: a string, a number (phones and Medicare numbers are often written as numbers),
/// null or missing.
fn text(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "{at}{key}: expected a string or null, found {}",
            type_name(other)
        )),
    }
}

const PATIENT_FIELDS: &[&str] = &[
    "id",
    "firstname",
    "lastname",
    "dob",
    "mobile",
    "phone",
    "email",
    "address",
    "medicare",
    "irn",
];

const ADDRESS_PARTS: &[&str] = &[
    "line1", "line2", "street", "address", "suburb", "city", "state", "postcode",
];

fn patients_from(path: &Path, value: &Value) -> Result<Vec<PmsPatient>, String> {
    let file = path.display();
    let Value::Array(items) = value else {
        return Err(format!(
            "{file}: expected a JSON array of patients, found {}",
            type_name(value)
        ));
    };
    let mut patients = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{file}: [{i}].");
        let Value::Object(obj) = item else {
            return Err(format!(
                "{file}: [{i}]: expected a patient object, found {}",
                type_name(item)
            ));
        };
        // A known field in another case ("firstName", "DOB") would be silently ignored: refuse it.
        for key in obj.keys() {
            if let Some(known) = PATIENT_FIELDS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(key) && **k != key)
            {
                return Err(format!("{at}{key}: unknown field; did you mean {known:?}?"));
            }
        }
        let id = match text(obj, "id", &at)? {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => return Err(format!("{at}id: missing: every patient needs an id")),
        };
        let dob = match text(obj, "dob", &at)? {
            Some(d) if !d.trim().is_empty() => {
                Some(parse_dob(&d).map_err(|e| format!("{at}dob: {e}"))?)
            }
            _ => None,
        };
        let address = match obj.get("address") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(parts)) => {
                let mut joined = Vec::new();
                for part in ADDRESS_PARTS {
                    if let Some(v) = text(parts, part, &format!("{at}address."))? {
                        joined.push(v);
                    }
                }
                Some(joined.join(" "))
            }
            Some(other) => {
                return Err(format!(
                    "{at}address: expected a string, an object or null, found {}",
                    type_name(other)
                ));
            }
        };
        patients.push(PmsPatient {
            id,
            firstname: text(obj, "firstname", &at)?,
            lastname: text(obj, "lastname", &at)?,
            dob,
            mobile: text(obj, "mobile", &at)?,
            phone: text(obj, "phone", &at)?,
            email: text(obj, "email", &at)?,
            address,
            medicare: text(obj, "medicare", &at)?,
            irn: text(obj, "irn", &at)?,
        });
    }
    Ok(patients)
}

const BOOKING_FIELDS: &[&str] = &[
    "firstname",
    "lastname",
    "dob",
    "phone",
    "email",
    "address",
    "suburb",
    "state",
    "postcode",
    "gender",
    "medicareNumber",
    "medicareIrn",
    "medicareExpiry",
];

fn booking_from(path: &Path, value: &Value) -> Result<BookingPatient, String> {
    let file = path.display();
    let Value::Object(outer) = value else {
        return Err(format!(
            "{file}: expected the booking's patient object, found {}",
            type_name(value)
        ));
    };
    // A whole booking request: take its patient.
    let (obj, at) = match outer.get("patient") {
        Some(Value::Object(p)) => (p, format!("{file}: patient.")),
        Some(other) => {
            return Err(format!(
                "{file}: patient: expected an object, found {}",
                type_name(other)
            ));
        }
        None => (outer, format!("{file}: ")),
    };
    for key in obj.keys() {
        if !BOOKING_FIELDS.contains(&key.as_str()) {
            let hint = BOOKING_FIELDS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(key))
                .map(|k| format!("did you mean {k:?}?"))
                .unwrap_or_else(|| format!("expected one of {}", BOOKING_FIELDS.join(", ")));
            return Err(format!("{at}{key}: unknown field; {hint}"));
        }
    }
    let t = |key: &str| text(obj, key, &at);
    let dob = t("dob")?;
    if let Some(d) = dob.as_deref().filter(|d| !d.trim().is_empty()) {
        parse_dob(d).map_err(|e| format!("{at}dob: {e}"))?;
    }
    Ok(BookingPatient {
        firstname: t("firstname")?,
        lastname: t("lastname")?,
        dob,
        phone: t("phone")?,
        email: t("email")?,
        address: t("address")?,
        suburb: t("suburb")?,
        state: t("state")?,
        postcode: t("postcode")?,
        gender: t("gender")?,
        medicare_number: t("medicareNumber")?,
        medicare_irn: t("medicareIrn")?,
        medicare_expiry: t("medicareExpiry")?,
    })
}

/// The decision for people: the outcome, then each candidate's evidence.
fn table(d: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "decision: {}", d.kind());
    match &d.outcome {
        Outcome::Match { patient_id } => {
            let _ = writeln!(out, "patient:  {patient_id}");
        }
        Outcome::New => {
            let _ = writeln!(out, "patient:  (none: create a new patient file)");
        }
        Outcome::Ambiguous {
            patient_ids,
            action,
            ..
        } => {
            let _ = writeln!(out, "possible: {}", patient_ids.join(", "));
            let _ = writeln!(
                out,
                "action:   {}",
                match action {
                    AmbiguityPolicy::CreateNewAndFlag => "create a new patient file and flag it",
                    AmbiguityPolicy::RejectBooking => "reject the booking",
                }
            );
            if let Some(flag) = d.practice_flag() {
                let _ = writeln!(out, "flag:     {flag}");
            }
        }
    }
    for c in &d.candidates {
        let _ = writeln!(
            out,
            "\ncandidate {}  score {} (threshold {})  {}{}",
            c.patient_id,
            c.score,
            c.threshold,
            c.status,
            if c.names_swapped {
                "  (first and last names swapped)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  {:<14} {:<10} {:>6}  booking / on file",
            "field", "compare", "points"
        );
        for f in &c.fields {
            let _ = writeln!(
                out,
                "  {:<14} {:<10} {:>6}  {}",
                f.field.to_string(),
                f.comparison.to_string(),
                f.points,
                f.detail
            );
        }
        for conflict in &c.conflicts {
            let _ = writeln!(out, "  conflict: {conflict}");
        }
    }
    if !d.notes.is_empty() {
        let _ = writeln!(out);
        for n in &d.notes {
            let _ = writeln!(
                out,
                "note: {} {}: {} (ignored)",
                n.subject, n.field, n.problem
            );
        }
    }
    out
}
