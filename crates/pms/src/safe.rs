//! Error text without personal data.
//!
//! A patient search puts names, the date of birth, a phone and an email in the query string; a
//! patient create puts them (and the Medicare number) in the body; the PMS may echo any of it in
//! a problem's `title` or `detail`, and serde quotes the offending value in some of its messages.
//! Every [`PmsError`] this crate builds from a transport failure, an error answer or an unreadable
//! body goes through this module, which keeps only what the connector itself chose: the
//! operation's name, the HTTP status, the problem type's short name when the API documents it, the
//! names of the API's own fields, the kind of I/O failure, and JSON positions. Never the URL, the
//! query, a header, or text the server sent.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;

use crate::PmsError;

/// The request and response fields of the Exact-style API: the only words of a server's message
/// an error may repeat.
const KNOWN_FIELDS: &[&str] = &[
    "address",
    "body",
    "cursor",
    "date_of_birth",
    "email",
    "end",
    "external_ref",
    "first_name",
    "from",
    "home_phone",
    "id",
    "irn",
    "last_name",
    "limit",
    "line1",
    "medicare",
    "mobile_phone",
    "notes",
    "number",
    "patient",
    "phone",
    "postcode",
    "practitioner",
    "query",
    "reason",
    "secret",
    "since",
    "start",
    "state",
    "suburb",
    "to",
    "url",
];

/// The problem types of the Exact-style API (docs/pms-api.md): the only kinds an error repeats.
const KNOWN_KINDS: &[&str] = &[
    "already-closed",
    "closed-date",
    "cursor-expired",
    "forbidden",
    "gone",
    "internal",
    "invalid",
    "key-revoked",
    "not-found",
    "not-online",
    "off-grid",
    "outside-reason-window",
    "outside-session",
    "overlaps-appointment",
    "overlaps-block",
    "overlaps-break",
    "rate-limited",
    "reason-not-offered",
    "site-exists",
    "unauthorized",
    "unavailable",
    "wrong-duration",
];

/// The problem type's short name when it is one the API documents (`off-grid`); `other` for a
/// type it does not (which could say anything); empty when there was none.
pub(crate) fn problem_kind(short: &str) -> String {
    if short.is_empty() {
        String::new()
    } else if let Some(k) = KNOWN_KINDS.iter().find(|k| **k == short) {
        (*k).to_owned()
    } else {
        "other".to_owned()
    }
}

/// The field a server's message is about, when it starts with a path of the API's own field
/// names (`medicare.number: …`, `[2].start: …`). Only those names are returned, never the rest.
pub(crate) fn field_hint(message: &str, known: &[&str]) -> Option<String> {
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
pub(crate) fn status_text(status: u16, kind: &str, field: Option<&str>) -> String {
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

/// The field hint of a PMS problem's detail.
pub(crate) fn pms_field(detail: &str) -> Option<String> {
    field_hint(detail, KNOWN_FIELDS)
}

/// Parse JSON; on failure, say where and what kind of mismatch it was, without quoting the body.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
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
pub(crate) fn describe_json(
    e: &serde_json::Error,
    path: Option<&serde_path_to_error::Path>,
) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable".to_owned(),
        Category::Syntax => "not valid JSON".to_owned(),
        Category::Eof => "cut short".to_owned(),
        Category::Data => data_kind(&e.to_string()),
    };
    let mut s = what;
    if e.classify() == Category::Data
        && let Some(p) = path.map(render_path).filter(|p| !p.is_empty())
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
fn render_path(path: &serde_path_to_error::Path) -> String {
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
pub(crate) fn transport_kind(e: &reqwest::Error) -> String {
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

/// A reqwest failure during `op` as a [`PmsError`].
pub(crate) fn transport(op: &str, e: &reqwest::Error) -> PmsError {
    if e.is_timeout() {
        PmsError::Timeout
    } else if e.is_decode() || e.is_builder() {
        PmsError::protocol(format!("{op}: {}", transport_kind(e)))
    } else {
        // Connection refused, reset, closed mid-body: the PMS is not reachable right now.
        PmsError::Unavailable {
            detail: format!("{op}: {}", transport_kind(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_hints_are_paths_of_known_names_only() {
        let h = |m: &str| pms_field(m);
        assert_eq!(
            h("email: \"zq@example.invalid\" is not an email address").as_deref(),
            Some("email")
        );
        assert_eq!(
            h("medicare.number: \"2953\" is bad").as_deref(),
            Some("medicare.number")
        );
        assert_eq!(h("[2].start: off grid").as_deref(), Some("[2].start"));
        assert_eq!(h("Zebedee: no"), None);
        assert_eq!(h("email zq@example.invalid: no"), None);
        assert_eq!(h("no colon at all"), None);
        assert_eq!(h("[1]: only an index"), None);
        assert_eq!(h("email.Quixotic: x"), None);
    }

    #[test]
    fn problem_kinds_are_the_documented_ones() {
        assert_eq!(problem_kind("off-grid"), "off-grid");
        assert_eq!(problem_kind(""), "");
        assert_eq!(problem_kind("Zebedee Quixotic"), "other");
        assert_eq!(problem_kind("zebedee-quixotic"), "other");
        assert_eq!(problem_kind("about:blank"), "other");
        assert_eq!(problem_kind("zq@example.invalid"), "other");
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
