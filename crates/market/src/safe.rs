//! Error text without personal data.
//!
//! A booking request's answer holds the patient (name, date of birth, phone, email, Medicare
//! number), a reject reason may name them, and the marketplace may echo a request in its error
//! body; serde quotes the offending value in some of its messages, and a reqwest error's text
//! names the URL with its query. Every [`MarketError`](crate::MarketError) the client builds from
//! a transport failure, an error answer or an unreadable body goes through this module, which
//! keeps only what the client itself chose: the operation (`POST /bookings/{id}/rejectInsert`),
//! the HTTP status, the API's own field names, the kind of I/O failure and JSON positions.
//! Never the URL, the query, a header or key, or text the server sent.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;

/// The request fields of the Healthengine API (wire names): the only words of the
/// marketplace's message an error may repeat.
const KNOWN_FIELDS: &[&str] = &[
    "availability",
    "callbackUrl",
    "clientId",
    "date",
    "end",
    "expireAt",
    "friday",
    "id",
    "liveHours",
    "monday",
    "patientAppointmentDescription",
    "patientAppointmentLink",
    "pmsAppointmentIds",
    "pmsAppointmentLength",
    "pmsAppointmentTypeId",
    "pmsAppointmentTypeIds",
    "pmsAppointmentTypeName",
    "pmsPatientId",
    "pmsPractitionerFirstname",
    "pmsPractitionerLastname",
    "pmsPractitionerTitle",
    "pmsResourceId",
    "pmsResourceName",
    "practitionerAppointmentDescription",
    "practitionerAppointmentLink",
    "publicHolidays",
    "reason",
    "saturday",
    "slotLength",
    "start",
    "startAt",
    "sunday",
    "thursday",
    "topic",
    "tuesday",
    "wednesday",
];

/// The field hint of the marketplace's error message.
pub(crate) fn market_field(message: &str) -> Option<String> {
    field_hint(message, KNOWN_FIELDS)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_hints_are_paths_of_known_names_only() {
        assert_eq!(
            market_field("[1].pmsResourceName: \"Zebedee Quixotic\" is not unique").as_deref(),
            Some("[1].pmsResourceName")
        );
        assert_eq!(
            market_field("pmsPatientId: must not be empty").as_deref(),
            Some("pmsPatientId")
        );
        assert_eq!(market_field("booking 12 is cancelled"), None);
        assert_eq!(market_field("Zebedee Quixotic: no"), None);
        assert_eq!(market_field("reason.Zebedee: no"), None);
    }

    #[test]
    fn status_text_shapes() {
        assert_eq!(status_text(400, "", None), "HTTP 400");
        assert_eq!(
            status_text(400, "", Some("reason")),
            "HTTP 400 (field reason)"
        );
    }
}
