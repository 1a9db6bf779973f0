//! Error text without personal data, shared by the adapters (the PMS connector and the
//! marketplace client).
//!
//! Requests and answers at both edges carry patients (name, date of birth, phone, email,
//! Medicare number); servers echo them in error bodies, serde quotes the offending value in some
//! of its messages, and a reqwest error's text names the URL with its query. The adapters build
//! every error from these functions, which keep only what the client chose to say: the status,
//! the API's own field names, the kind of I/O failure and JSON positions. Never the URL, the
//! query, a header or key, or text the server sent.

use std::fmt::Write as _;

pub mod outbound;

use serde::de::DeserializeOwned;

/// The field a server's message is about, when it starts with a path of the API's own field
/// names (`medicare.number: …`, `[2].start: …`). Only those names are returned, never the rest.
pub fn field_hint(message: &str, known: &[&str]) -> Option<String> {
    let (head, _) = message.split_once(':')?;
    let head = head.trim();
    if head.is_empty() || head.len() > 80 {
        return None;
    }
    let mut out = String::new();
    let mut rest = head;
    let mut named = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (digits, tail) = after.split_once(']')?;
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            out.push('[');
            out.push_str(digits);
            out.push(']');
            rest = tail;
        } else {
            let tail = rest.strip_prefix('.').unwrap_or(rest);
            if tail.len() == rest.len() && !out.is_empty() {
                return None;
            }
            let end = tail.find(['.', '[']).unwrap_or(tail.len());
            let name = known.iter().find(|k| **k == &tail[..end])?;
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
            named = true;
            rest = &tail[end..];
        }
    }
    named.then_some(out)
}

/// `HTTP 422 (field email)`: a status and what else is safe to say about it.
pub fn status_text(status: u16, kind: &str, field: Option<&str>) -> String {
    let mut s = format!("HTTP {status}");
    match (kind.is_empty(), field) {
        (true, None) => {}
        (false, None) => {
            let _ = write!(s, " ({kind})");
        }
        (true, Some(f)) => {
            let _ = write!(s, " (field {f})");
        }
        (false, Some(f)) => {
            let _ = write!(s, " ({kind}, field {f})");
        }
    }
    s
}

/// Parse JSON; on failure, say where and what kind of mismatch it was, without quoting the body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    // The fast path keeps no path; only a failure is parsed again to find where it broke.
    serde_json::from_slice(bytes).map_err(|first| {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => describe_json(e.inner(), Some(e.path())),
            Ok(_) => describe_json(&first, None),
        }
    })
}

/// A serde_json error as its category, the path of our own field names, and the position.
pub fn describe_json(e: &serde_json::Error, path: Option<&serde_path_to_error::Path>) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable".to_owned(),
        Category::Syntax => "not valid JSON".to_owned(),
        Category::Eof => "cut short".to_owned(),
        Category::Data => data_kind(&e.to_string()),
    };
    let mut s = what;
    if e.classify() == Category::Data
        && let Some(p) = path.map(json_path).filter(|p| !p.is_empty())
    {
        let _ = write!(s, " at {p}");
    }
    let _ = write!(s, " (line {}, column {})", e.line(), e.column());
    s
}

/// The kind of a data error, from the start of serde's message (which may go on to quote the
/// value).
fn data_kind(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
        && is_name(name)
    {
        return format!("missing field `{name}`");
    }
    for phrase in [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
        "duplicate field",
    ] {
        if message.starts_with(phrase) {
            return phrase.to_owned();
        }
    }
    "a value does not fit".to_owned()
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `items[3].date_of_birth`. A data error can only happen inside a field the type knows, so the
/// keys are our own names; anything else is shown as `?`.
pub fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_name(key) { key } else { "?" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// What failed on the way to or from the server, by kind: a reqwest error's text names the URL
/// (and so the query), so only its flags and the I/O error kind underneath are kept.
pub fn transport_kind(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() {
        "the answer broke off"
    } else if e.is_decode() {
        "cannot decode the answer"
    } else if e.is_redirect() {
        "redirected"
    } else if e.is_builder() {
        "the request could not be built"
    } else {
        "the request failed"
    };
    match io_kind(e) {
        Some(k) => format!("{what} ({k})"),
        None => what.to_owned(),
    }
}

fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_hints_are_paths_of_known_names_only() {
        let known = ["email", "medicare", "number", "start", "pmsResourceName"];
        let h = |m: &str| field_hint(m, &known);
        assert_eq!(
            h("email: \"zq@example.invalid\" is not an email address").as_deref(),
            Some("email")
        );
        assert_eq!(
            h("medicare.number: \"2953\" is bad").as_deref(),
            Some("medicare.number")
        );
        assert_eq!(h("[2].start: off grid").as_deref(), Some("[2].start"));
        assert_eq!(
            h("[1].pmsResourceName: \"Zebedee Quixotic\" is not unique").as_deref(),
            Some("[1].pmsResourceName")
        );
        assert_eq!(h("Zebedee: no"), None);
        assert_eq!(h("email zq@example.invalid: no"), None);
        assert_eq!(h("no colon at all"), None);
        assert_eq!(h("[1]: only an index"), None);
        assert_eq!(h("email.Quixotic: x"), None);
    }

    #[test]
    fn status_text_shapes() {
        assert_eq!(status_text(400, "", None), "HTTP 400");
        assert_eq!(
            status_text(400, "", Some("reason")),
            "HTTP 400 (field reason)"
        );
        assert_eq!(status_text(409, "taken", None), "HTTP 409 (taken)");
        assert_eq!(
            status_text(422, "invalid", Some("email")),
            "HTTP 422 (invalid, field email)"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct P {
        first_name: String,
        date_of_birth: jiff::civil::Date,
        irn: u8,
    }

    #[test]
    fn json_errors_name_the_path_not_the_value() {
        let cases = [
            r#"{"first_name": 7, "date_of_birth": "1931-02-03", "irn": 1}"#,
            r#"{"first_name": "Zebedee", "date_of_birth": "Zebedee Quixotic", "irn": 1}"#,
            r#"{"first_name": "Zebedee", "date_of_birth": "1931-02-03", "irn": "Zebedee"}"#,
            r#"{"first_name": "Zebedee", "date_of_birth": "1931-02-03"}"#,
            r#"{"first_name": "Zebedee Quixotic", "#,
            r#"Zebedee Quixotic"#,
            r#"{"Zebedee Quixotic": [}"#,
        ];
        let expected = [
            "invalid type at first_name (line 1, column 16)",
            "a value does not fit at date_of_birth (line 1, column 61)",
            "invalid type at irn (line 1, column 73)",
            "missing field `irn` (line 1, column 56)",
            "cut short (line 1, column 35)",
            "not valid JSON (line 1, column 1)",
            "not valid JSON (line 1, column 23)",
        ];
        for (c, want) in cases.iter().zip(expected) {
            let e = decode::<P>(c.as_bytes()).unwrap_err();
            assert_eq!(e, want, "{c}");
        }
        let listed = format!("[{}]", cases[1]);
        let e = decode::<Vec<P>>(listed.as_bytes()).unwrap_err();
        assert!(
            e.starts_with("a value does not fit at [0].date_of_birth"),
            "{e}"
        );
    }
}
