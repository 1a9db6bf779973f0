//! What the fuzz targets share: the privacy check by marking. Every text value of a JSON input
//! is wrapped in a marker character that no message of ours contains; an error or a reason that
//! repeats a value the input sent would then show the marker.

use serde_json::Value;

/// A private-use character: in no fixed text, field name or format of the project.
pub const MARK: char = '\u{E000}';

/// `v` with every string value (not the keys) wrapped in [`MARK`], except under the keys
/// `spare` names (ids the errors may name on purpose: they are not personal data).
pub fn marked(v: &Value, spare: &[&str]) -> Value {
    match v {
        Value::String(s) => Value::String(format!("{MARK}{s}{MARK}")),
        Value::Array(items) => Value::Array(items.iter().map(|i| marked(i, spare)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let spared = spare.contains(&k.as_str()) || k.ends_with("_id");
                    (k.clone(), if spared { v.clone() } else { marked(v, spare) })
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Panics when `text` (an error or a reason) repeats a marked value.
pub fn assert_unmarked(what: &str, text: &str) {
    assert!(
        !text.contains(MARK),
        "{what} repeats a value of the input: {text:?}"
    );
}

/// The input as JSON, when it is.
pub fn json(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}
