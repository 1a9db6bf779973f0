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
    "not-started",
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

/// The field hint of a PMS problem's detail.
pub(crate) fn pms_field(detail: &str) -> Option<String> {
    field_hint(detail, KNOWN_FIELDS)
}

pub(crate) use slotbridge_redact::{decode, field_hint, status_text, transport_kind};

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
}
