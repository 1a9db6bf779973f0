//! Reading a snapshot from JSON text, with errors that name the field.
//!
//! serde_json reports a mistyped field by line and column only ("invalid type: string "15",
//! expected u32 at line 4 column 27"). When that happens the text is read again as a
//! `serde_json::Value` and walked along the snapshot's shape, so the error names the field's path
//! (`interval_minutes`, `practitioners[0].sessions[1].days`), like validation errors do.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Snapshot;

/// Why JSON text is not a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all; the message has the line and column.
    #[error("invalid JSON: {0}")]
    Syntax(serde_json::Error),
    /// JSON, but a field is missing or has the wrong type.
    #[error("{path}: {message}")]
    Field {
        /// The field's path, e.g. `practitioners[0].sessions`.
        path: String,
        /// What is wrong, e.g. `invalid type: string "15", expected u32`.
        message: String,
    },
    /// JSON of the wrong shape that could not be pinned to a field; the message has the line
    /// and column.
    #[error("{0}")]
    Data(serde_json::Error),
}

impl Snapshot {
    /// Reads a snapshot from JSON text. Unknown fields are ignored.
    ///
    /// ```
    /// use slotbridge_domain::snapshot::Snapshot;
    /// let err = Snapshot::from_json(r#"{"timezone": "Australia/Sydney",
    ///     "now": "2026-04-03T08:00:00+11:00", "interval_minutes": "15", "stacking": true}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), r#"interval_minutes: invalid type: string "15", expected u32"#);
    /// ```
    pub fn from_json(text: &str) -> Result<Snapshot, JsonError> {
        match serde_json::from_str(text) {
            Ok(snapshot) => Ok(snapshot),
            Err(e) if e.is_data() => {
                let located = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| snapshot_shape(&v).err());
                Err(match located {
                    Some((path, message)) => JsonError::Field { path, message },
                    None => JsonError::Data(e),
                })
            }
            Err(e) => Err(JsonError::Syntax(e)),
        }
    }
}

type Located = (String, String);

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Located> {
    v.as_object().ok_or_else(|| {
        let at = if path.is_empty() { "snapshot" } else { path };
        (
            at.to_owned(),
            format!("expected an object, found {}", kind(v)),
        )
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that field `key` deserializes as `T` (or is absent, unless `required`).
fn field<T: DeserializeOwned>(
    o: &Map<String, Value>,
    key: &str,
    path: &str,
    required: bool,
) -> Result<(), Located> {
    match o.get(key) {
        None if required => Err((
            if path.is_empty() { "snapshot" } else { path }.to_owned(),
            format!("missing field `{key}`"),
        )),
        None => Ok(()),
        Some(v) => serde_json::from_value::<T>(v.clone())
            .map(|_| ())
            .map_err(|e| (join(path, key), e.to_string())),
    }
}

/// Checks list field `key` (optional) element by element with `each`.
fn list(
    o: &Map<String, Value>,
    key: &str,
    path: &str,
    required: bool,
    each: fn(&Value, &str) -> Result<(), Located>,
) -> Result<(), Located> {
    let Some(v) = o.get(key) else {
        return field::<Vec<Value>>(o, key, path, required);
    };
    let items = v.as_array().ok_or_else(|| {
        (
            join(path, key),
            format!("expected an array, found {}", kind(v)),
        )
    })?;
    let path = join(path, key);
    items
        .iter()
        .enumerate()
        .try_for_each(|(i, item)| each(item, &format!("{path}[{i}]")))
}

fn string(v: &Value, path: &str) -> Result<(), Located> {
    match v {
        Value::String(_) => Ok(()),
        other => Err((
            path.to_owned(),
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

fn snapshot_shape(v: &Value) -> Result<(), Located> {
    let o = object(v, "")?;
    field::<String>(o, "timezone", "", true)?;
    field::<String>(o, "now", "", true)?;
    field::<Option<u32>>(o, "horizon_days", "", false)?;
    field::<u32>(o, "interval_minutes", "", true)?;
    field::<bool>(o, "stacking", "", true)?;
    field::<Option<u32>>(o, "min_notice_minutes", "", false)?;
    list(o, "practitioners", "", false, practitioner)?;
    list(o, "booking_reasons", "", false, reason)?;
    list(o, "appointments", "", false, appointment)?;
    list(o, "blocks", "", false, block)?;
    list(o, "closed_dates", "", false, string)
}

fn weekly_window(v: &Value, path: &str) -> Result<(), Located> {
    let o = object(v, path)?;
    list(o, "days", path, true, string)?;
    field::<String>(o, "start", path, true)?;
    field::<String>(o, "end", path, true)
}

fn practitioner(v: &Value, path: &str) -> Result<(), Located> {
    let o = object(v, path)?;
    field::<String>(o, "id", path, true)?;
    field::<String>(o, "name", path, false)?;
    list(o, "sessions", path, false, weekly_window)?;
    list(o, "breaks", path, false, weekly_window)
}

fn reason(v: &Value, path: &str) -> Result<(), Located> {
    let o = object(v, path)?;
    field::<String>(o, "id", path, true)?;
    field::<String>(o, "name", path, false)?;
    list(o, "providers", path, false, provider_rule)
}

fn provider_rule(v: &Value, path: &str) -> Result<(), Located> {
    let o = object(v, path)?;
    field::<String>(o, "practitioner", path, true)?;
    field::<u32>(o, "duration_minutes", path, true)?;
    list(o, "windows", path, false, weekly_window)
}

fn appointment(v: &Value, path: &str) -> Result<(), Located> {
    let o = object(v, path)?;
    for key in ["practitioner", "date", "start", "end"] {
        field::<String>(o, key, path, true)?;
    }
    Ok(())
}

fn block(v: &Value, path: &str) -> Result<(), Located> {
    let o = object(v, path)?;
    field::<Option<String>>(o, "practitioner", path, false)?;
    for key in ["date", "start", "end"] {
        field::<String>(o, key, path, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        match Snapshot::from_json(text) {
            Ok(_) => panic!("accepted {text}"),
            Err(e) => e.to_string(),
        }
    }

    const HEAD: &str = r#""timezone": "Australia/Sydney", "now": "2026-04-03T08:00:00+11:00", "interval_minutes": 15, "stacking": true"#;

    #[test]
    fn data_errors_name_the_field() {
        assert_eq!(
            message(
                r#"{"timezone": "Australia/Sydney", "interval_minutes": 15, "stacking": true}"#
            ),
            "snapshot: missing field `now`"
        );
        assert_eq!(
            message(&format!(r#"{{{HEAD}, "horizon_days": -3}}"#)),
            "horizon_days: invalid value: integer `-3`, expected u32"
        );
        assert_eq!(
            message(&format!(
                r#"{{{HEAD}, "practitioners": [{{"id": "a"}}, {{"id": "b", "sessions": [{{"days": "fri", "start": "09:00", "end": "10:00"}}]}}]}}"#
            )),
            "practitioners[1].sessions[0].days: expected an array, found a string"
        );
        assert_eq!(
            message(&format!(
                r#"{{{HEAD}, "booking_reasons": [{{"id": "x", "providers": [{{"practitioner": "a"}}]}}]}}"#
            )),
            "booking_reasons[0].providers[0]: missing field `duration_minutes`"
        );
        assert_eq!(
            message(&format!(
                r#"{{{HEAD}, "closed_dates": ["2026-04-03", 20260404]}}"#
            )),
            "closed_dates[1]: expected a string, found a number"
        );
        assert_eq!(
            message(&format!(
                r#"{{{HEAD}, "blocks": [{{"practitioner": 7, "date": "2026-04-03", "start": "09:00", "end": "10:00"}}]}}"#
            )),
            "blocks[0].practitioner: invalid type: integer `7`, expected a string"
        );
        assert_eq!(
            message("[1, 2]"),
            "snapshot: expected an object, found an array"
        );
    }

    #[test]
    fn syntax_errors_keep_line_and_column() {
        let m = message("{\n  \"timezone\": \n}");
        assert!(m.starts_with("invalid JSON: "), "{m}");
        assert!(m.ends_with("at line 3 column 1"), "{m}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let s = Snapshot::from_json(&format!(r#"{{{HEAD}, "practice": "Harbour Dental"}}"#))
            .expect("unknown fields are fine");
        assert_eq!(s.interval_minutes, 15);
    }
}
