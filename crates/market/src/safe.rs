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

pub(crate) use slotbridge_redact::{decode, field_hint, status_text, transport_kind};

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
}
