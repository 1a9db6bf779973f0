//! Helpers shared by the engine's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use serde_json::{Value, json};
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::snapshot::{Snapshot, ValidSnapshot};

/// A slot as plain strings: (practitioner, reason, start, end).
pub type Row = (String, String, String, String);

/// A small Sydney practice on Friday 2026-04-03, overridden field by field by `overrides`:
/// practitioner `lee` works 09:00-17:00 with lunch 12:30-13:30, reason `checkup` is 30 minutes
/// inside a whole-day window, 15-minute grid, stacking on, one day.
pub fn practice(overrides: Value) -> Value {
    let mut base = json!({
        "timezone": "Australia/Sydney",
        "now": "2026-04-03T07:00:00+11:00",
        "horizon_days": 1,
        "interval_minutes": 15,
        "stacking": true,
        "practitioners": [{
            "id": "lee", "name": "Dr Lee",
            "sessions": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}],
            "breaks": [{"days": ["mon","tue","wed","thu","fri"], "start": "12:30", "end": "13:30"}]
        }],
        "booking_reasons": [{
            "id": "checkup", "name": "Check-up",
            "providers": [{"practitioner": "lee", "duration_minutes": 30,
                "windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "24:00"}]}]
        }]
    });
    if let (Some(base), Value::Object(over)) = (base.as_object_mut(), overrides) {
        for (k, v) in over {
            base.insert(k, v);
        }
    }
    base
}

/// Deserializes and validates, panicking with the error (test input is ours).
pub fn valid(value: Value) -> ValidSnapshot {
    let snapshot: Snapshot = serde_json::from_value(value).expect("test snapshot deserializes");
    snapshot.validate().expect("test snapshot is valid")
}

/// The validation error message of an invalid snapshot.
pub fn invalid(value: Value) -> String {
    let snapshot: Snapshot = serde_json::from_value(value).expect("test snapshot deserializes");
    match snapshot.validate() {
        Ok(_) => panic!("snapshot unexpectedly valid"),
        Err(e) => e.to_string(),
    }
}

/// The engine's output as strings.
pub fn rows(value: Value) -> Vec<Row> {
    let valid = valid(value);
    compute_slots(&valid)
        .iter()
        .map(|s| {
            (
                s.practitioner.to_owned(),
                s.reason.to_owned(),
                s.start_rfc3339(),
                s.end_rfc3339(),
            )
        })
        .collect()
}

/// Only the start times of the output.
pub fn starts(value: Value) -> Vec<String> {
    rows(value).into_iter().map(|r| r.2).collect()
}
