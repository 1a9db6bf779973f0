//! The documented snapshot format: every example in `examples/` is valid by the engine's
//! validation and by `docs/snapshot.schema.json`, and the schema describes the Rust types' fields.
//!
//! The schema checker here covers the subset of JSON Schema the document uses (`$ref`, `type`,
//! `enum`, `minimum`, `maximum`, `minLength`, `minItems`, `pattern` for its three patterns,
//! `required`, `properties`, `items`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::snapshot::{
    Appointment, Block, BookingReason, Practitioner, ProviderRule, Snapshot, WeeklyWindow,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/snapshot.schema.json"))
        .expect("docs/snapshot.schema.json exists");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn examples() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable");
            out.push((path, serde_json::from_str(&text).expect("example is JSON")));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The schema's three patterns, by their exact text.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    let hm = |s: &str| -> Option<(u32, u32)> {
        let (h, m) = s.split_once(':')?;
        (h.len() == 2 && m.len() == 2 && is_digits(h) && is_digits(m))
            .then(|| (h.parse().ok(), m.parse().ok()))
            .and_then(|(h, m)| Some((h?, m?)))
    };
    match pattern {
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 3
                && parts[0].len() == 4
                && parts[1].len() == 2
                && parts[2].len() == 2
                && parts.iter().all(|p| is_digits(p))
        }
        "^([01][0-9]|2[0-3]):[0-5][0-9]$" => hm(s).is_some_and(|(h, m)| h < 24 && m < 60),
        "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$" => {
            hm(s).is_some_and(|(h, m)| (h < 24 && m < 60) || (h, m) == (24, 0))
        }
        other => panic!("the schema uses a pattern this checker does not know: {other}"),
    }
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// Checks `v` against `schema`; with `closed`, object keys the schema does not list are errors.
fn check(
    v: &Value,
    schema: &Value,
    root: &Value,
    path: &str,
    closed: bool,
    errors: &mut Vec<String>,
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return check(v, &root["$defs"][name], root, path, closed, errors);
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => {
            return errors.push(format!("{path}: expected {t}, found {v}"));
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_matches(t.as_str().unwrap_or(""), v)) => {
            return errors.push(format!("{path}: expected one of {ts:?}, found {v}"));
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        errors.push(format!("{path}: {v} is not one of {options:?}"));
    }
    if let Some(n) = v.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|min| n < min)
        {
            errors.push(format!("{path}: {n} below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|max| n > max)
        {
            errors.push(format!("{path}: {n} above maximum"));
        }
    }
    if let Some(s) = v.as_str() {
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|min| (s.chars().count() as u64) < min)
        {
            errors.push(format!("{path}: too short"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && !matches_pattern(p, s)
        {
            errors.push(format!("{path}: {s:?} does not match {p}"));
        }
    }
    if let Some(items) = v.as_array() {
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|min| (items.len() as u64) < min)
        {
            errors.push(format!("{path}: too few items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(
                    item,
                    item_schema,
                    root,
                    &format!("{path}[{i}]"),
                    closed,
                    errors,
                );
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().expect("required names are strings");
            if !obj.contains_key(key) {
                errors.push(format!("{path}: missing {key}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            match props.and_then(|p| p.get(key)) {
                Some(prop) => check(value, prop, root, &format!("{path}.{key}"), closed, errors),
                None if closed => errors.push(format!("{path}.{key}: not in the schema")),
                None => {}
            }
        }
    }
}

fn schema_errors(v: &Value, closed: bool) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    check(v, &schema, &schema, "$", closed, &mut errors);
    errors
}

#[test]
fn every_example_is_valid_and_publishes_slots() {
    let examples = examples();
    assert!(examples.len() >= 3);
    for (path, value) in examples {
        let errors = schema_errors(&value, false);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let snapshot: Snapshot = serde_json::from_value(value).expect("deserializes");
        let valid = snapshot
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!compute_slots(&valid).is_empty(), "{}", path.display());
    }
}

#[test]
fn the_readme_example_is_a_realistic_sydney_practice() {
    let text =
        std::fs::read_to_string(repo().join("examples/harbour-dental.json")).expect("exists");
    let snapshot: Snapshot = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(snapshot.timezone, "Australia/Sydney");
    assert!(snapshot.stacking);
    assert!(snapshot.practitioners.len() >= 3);
    assert!(snapshot.booking_reasons.len() >= 3);
    assert!(
        snapshot
            .booking_reasons
            .iter()
            .any(|r| r.name == "Healthengine")
    );
    assert!(snapshot.appointments.len() >= 100);
}

/// Every field the Rust types serialize is described by the schema, with a matching type.
#[test]
fn the_schema_describes_every_field_of_the_types() {
    let window = WeeklyWindow {
        days: vec!["mon".into()],
        start: "09:00".into(),
        end: "24:00".into(),
    };
    let full = Snapshot {
        timezone: "Australia/Sydney".into(),
        now: "2026-04-03T08:00:00+11:00".into(),
        horizon_days: Some(30),
        interval_minutes: 15,
        stacking: true,
        min_notice_minutes: Some(60),
        max_per_day_segment: None,
        practitioners: vec![Practitioner {
            id: "lee".into(),
            name: "Dr Lee".into(),
            sessions: vec![window.clone()],
            breaks: vec![window.clone()],
        }],
        booking_reasons: vec![BookingReason {
            id: "checkup".into(),
            name: "Check-up".into(),
            providers: vec![ProviderRule {
                practitioner: "lee".into(),
                duration_minutes: 30,
                windows: vec![window],
            }],
        }],
        appointments: vec![Appointment {
            practitioner: "lee".into(),
            date: "2026-04-03".into(),
            start: "09:00".into(),
            end: "09:30".into(),
        }],
        blocks: vec![Block {
            practitioner: Some("lee".into()),
            date: "2026-04-03".into(),
            start: "12:00".into(),
            end: "13:00".into(),
        }],
        closed_dates: vec!["2026-04-06".into()],
    };
    let value = serde_json::to_value(&full).expect("serializes");
    assert_eq!(schema_errors(&value, true), Vec::<String>::new());
    full.validate().expect("and it is valid");
}

/// The schema rejects what validation rejects, where a schema can say it.
#[test]
fn the_schema_and_validation_agree_on_bad_values() {
    let base = json!({
        "timezone": "Australia/Sydney", "now": "2026-04-03T08:00:00+11:00",
        "interval_minutes": 15, "stacking": true,
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "09:00", "end": "17:00"}]}],
        "appointments": [{"practitioner": "lee", "date": "2026-04-03", "start": "09:00", "end": "09:30"}]
    });
    let bad: [(&str, Value); 6] = [
        ("/horizon_days", json!(91)),
        ("/interval_minutes", json!(7)),
        ("/min_notice_minutes", json!(200000)),
        ("/practitioners/0/sessions/0/start", json!("8am")),
        ("/practitioners/0/sessions/0/days/0", json!("friday")),
        ("/appointments/0/date", json!("3/4/2026")),
    ];
    for (pointer, value) in bad {
        let mut v = base.clone();
        match v.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => {
                let key = pointer.trim_start_matches('/');
                v[key] = value;
            }
        }
        assert!(
            !schema_errors(&v, false).is_empty(),
            "schema accepts {pointer}"
        );
        let snapshot: Snapshot = serde_json::from_value(v).expect("deserializes");
        assert!(snapshot.validate().is_err(), "validation accepts {pointer}");
    }
    assert!(schema_errors(&base, false).is_empty());
}
