//! Reading the marketplace's lists item by item, so that one item the client cannot read does
//! not spoil the others.
//!
//! A request list (`GET /requests/bookings` and the others) is `{"data": [...], "page": {...}}`.
//! Read as a whole, one unexpected value (a date of birth in another format, a number where text
//! was expected) would make the page unreadable, and every booking on it would then auto-confirm
//! at the marketplace without being in the diary. Instead each item is read on its own:
//! [`RequestPage::items`] holds those read, [`RequestPage::unreadable`] the others, with what is
//! known of each (its `bookingId` and `requestId` when they can be read) and a reason naming the
//! field and the problem, never the value (it may be a patient's).
//!
//! ```
//! use slotbridge_market::{read::RequestPage, types::Booking};
//! let body = br#"{"data": [
//!     {"bookingId": 1, "bookedTime": "2026-12-01 01:00:00", "pmsAppointmentTime": "2026-12-02 09:30:00",
//!      "patient": {"dob": "1990-02-23"}},
//!     {"bookingId": 2, "bookedTime": "2026-12-01 01:00:00", "pmsAppointmentTime": "2026-12-02 10:00:00",
//!      "patient": {"dob": "23rd of February"}}
//! ]}"#;
//! let page: RequestPage<Booking> = RequestPage::parse(body, jiff::Timestamp::UNIX_EPOCH).unwrap();
//! assert_eq!(page.items[0].booking_id, 1);
//! assert_eq!(page.unreadable[0].booking_id, Some(2));
//! assert_eq!(page.unreadable[0].reason, "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD");
//! assert!(page.page.is_none()); // no `page` object: a single page
//! ```

use jiff::Timestamp;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::{format, lenient, types::*};

/// An item of a list that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its position on its page, from 0.
    pub index: usize,
    /// Its `bookingId`, when that could be read.
    pub booking_id: Option<i64>,
    /// Its `requestId`, when it has one that could be read.
    pub request_id: Option<i64>,
    /// What could not be read: the JSON path of the field and the problem
    /// (`patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD`). Never the value.
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {}", self.index)?;
        if let Some(b) = self.booking_id {
            write!(f, " (booking {b})")?;
        }
        if let Some(r) = self.request_id {
            write!(f, " (request {r})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One page of a request list, read item by item.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPage<T> {
    /// The items read, in the page's order.
    pub items: Vec<T>,
    /// The items that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Where this page is; `None` when the answer had no (readable) `page` object, which is
    /// taken as the only page.
    pub page: Option<Paginated>,
}

/// Every page of a request list, read item by item.
#[derive(Debug, Clone, PartialEq)]
pub struct Requests<T> {
    /// The items read, in order.
    pub items: Vec<T>,
    /// The items that could not be read (their `index` is on their own page).
    pub unreadable: Vec<Unreadable>,
}

impl<T> Default for Requests<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            unreadable: Vec::new(),
        }
    }
}

/// The answer of `GET /requests`: the request types the client knows, and the names of those it
/// does not (a newer API may list more), which the caller leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Polled {
    /// The known types with something outstanding, in the marketplace's order, without repeats.
    pub known: Vec<RequestType>,
    /// The other entries, without repeats: a name that is a plain identifier as sent, anything
    /// else (not a string, or odd characters) as `?`.
    pub unknown: Vec<String>,
}

impl Polled {
    /// Whether nothing is outstanding, of a known type or another.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty() && self.unknown.is_empty()
    }

    /// Read the answer of `GET /requests` (a JSON array).
    ///
    /// # Errors
    /// The answer is not a JSON array; the text says where (never what was found).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let entries: Vec<Value> = crate::safe::decode(body)?;
        let mut out = Polled::default();
        for v in entries {
            let name = v.as_str().unwrap_or("?");
            match RequestType::ALL.into_iter().find(|t| t.as_str() == name) {
                Some(t) if !out.known.contains(&t) => out.known.push(t),
                Some(_) => {}
                None => {
                    let shown = if is_plain_name(name) { name } else { "?" };
                    if !out.unknown.iter().any(|u| u == shown) {
                        out.unknown.push(shown.to_owned());
                    }
                }
            }
        }
        Ok(out)
    }
}

fn is_plain_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// An item of a list the marketplace sends, read on its own.
pub trait ListItem: DeserializeOwned {
    /// Fill in, before the item is read, what the API leaves out but the type needs and has a
    /// sensible default known only when the answer arrives (`read_at`): a booking without
    /// `bookedTime` is taken as booked when it was read. Nothing by default.
    fn fill_in(_item: &mut Map<String, Value>, _read_at: Timestamp) {}
}

/// Put `read_at` in `field` when it is missing or `null`.
fn fill_instant(item: &mut Map<String, Value>, field: &str, read_at: Timestamp) {
    if item.get(field).is_none_or(Value::is_null) {
        item.insert(field.to_owned(), Value::String(format::format_utc(read_at)));
    }
}

impl ListItem for Booking {
    fn fill_in(item: &mut Map<String, Value>, read_at: Timestamp) {
        fill_instant(item, "bookedTime", read_at);
    }
}

impl ListItem for BookingUpdate {
    fn fill_in(item: &mut Map<String, Value>, read_at: Timestamp) {
        fill_instant(item, "updatedAt", read_at);
    }
}

impl ListItem for AvailabilityRequest {}
impl ListItem for PmsAppointmentChangesRequest {}
impl ListItem for AvailableDocumentsRequest {}
impl ListItem for UploadDocumentsRequest {}
impl ListItem for ClientSnapshotRequest {}
impl ListItem for AttachDocumentRequest {}
impl ListItem for SubscriptionErrorLog {}
impl ListItem for PmsResource {}
impl ListItem for PmsAppointmentType {}
impl ListItem for Subscription {}
impl ListItem for Feature {}
/// Items kept as JSON, read as they are.
impl ListItem for Value {}

/// The envelope, read loosely: `data` may be missing or `null` (no items), `page` missing,
/// `null` or unreadable (a single page).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Vec<Value>>,
    #[serde(default)]
    page: Option<Value>,
}

/// `Paginated`, read loosely.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoosePaginated {
    #[serde(default, deserialize_with = "lenient::int_or_zero")]
    current_page: i64,
    #[serde(default, deserialize_with = "lenient::int_or_zero")]
    total_pages: i64,
    #[serde(default, deserialize_with = "lenient::int_or_zero")]
    per_page: i64,
    #[serde(default, deserialize_with = "lenient::int_or_zero")]
    total: i64,
}

impl<T: ListItem> RequestPage<T> {
    /// Read one page: the envelope must be a JSON object (or a bare array of items); each item is
    /// read on its own. `read_at` is when the answer arrived (see [`ListItem::fill_in`]).
    ///
    /// # Errors
    /// The body is not JSON, or neither an object nor an array; the text says where (never what
    /// was found).
    pub fn parse(body: &[u8], read_at: Timestamp) -> Result<Self, String> {
        let (data, page) = match crate::safe::decode::<Value>(body)? {
            Value::Array(items) => (items, None),
            v @ Value::Object(_) => {
                let e = Envelope::deserialize(v)
                    .map_err(|_| "the list is not an object with a `data` array".to_owned())?;
                (e.data.unwrap_or_default(), e.page)
            }
            _ => return Err("the answer is not a JSON object".to_owned()),
        };
        let page = page
            .and_then(|p| LoosePaginated::deserialize(p).ok())
            .map(|p| Paginated {
                current_page: p.current_page.max(0) as u64,
                total_pages: p.total_pages.max(0) as u64,
                per_page: p.per_page.max(0) as u64,
                total: p.total.max(0) as u64,
            });
        let mut out = RequestPage {
            items: Vec::with_capacity(data.len()),
            unreadable: Vec::new(),
            page,
        };
        for (index, item) in data.into_iter().enumerate() {
            match read_item::<T>(item, read_at) {
                Ok(t) => out.items.push(t),
                Err((booking_id, request_id, reason)) => out.unreadable.push(Unreadable {
                    index,
                    booking_id,
                    request_id,
                    reason,
                }),
            }
        }
        Ok(out)
    }

    /// Whether a page after this one may hold more: `false` without a `page` object, on an
    /// empty page, and on the last page.
    pub fn has_more(&self, number: u64) -> bool {
        let listed = self.items.len() + self.unreadable.len();
        listed > 0 && self.page.is_some_and(|p| number < p.total_pages)
    }
}

type ItemError = (Option<i64>, Option<i64>, String);

fn read_item<T: ListItem>(mut item: Value, read_at: Timestamp) -> Result<T, ItemError> {
    let Value::Object(map) = &mut item else {
        return Err((None, None, "not a JSON object".to_owned()));
    };
    T::fill_in(map, read_at);
    let booking_id = map.get("bookingId").and_then(lenient::id_of);
    let request_id = map.get("requestId").and_then(lenient::id_of);
    serde_path_to_error::deserialize::<_, T>(item).map_err(|e| (booking_id, request_id, reason(&e)))
}

/// `patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD`: the path of the field (our own
/// names) and the problem, from a fixed set of texts. Serde's own messages quote the value
/// (`invalid type: string "Ann", expected ...`); only their kind and what was expected are kept.
fn reason(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let mut path = slotbridge_redact::json_path(e.path());
    let message = e.inner().to_string();
    let problem = if let Some(p) = lenient::PROBLEMS.iter().find(|p| **p == message) {
        (*p).to_owned()
    } else if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
        && is_plain_name(name)
    {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(name);
        "missing".to_owned()
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let found = rest.split([' ', ',']).next().unwrap_or_default();
        let found = match found {
            "null" => "null",
            "boolean" => "a boolean",
            "integer" => "an integer",
            "floating" => "a decimal number",
            "string" | "character" => "text",
            "sequence" => "a list",
            "map" => "an object",
            _ => "of another type",
        };
        match expected(&message) {
            Some(x) => format!("is {found}, expected {x}"),
            None => format!("is {found}"),
        }
    } else {
        let kind = [
            ("invalid value", "invalid value"),
            ("invalid length", "wrong length"),
            ("unknown variant", "unknown value"),
        ]
        .into_iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("a value does not fit", |(_, kind)| kind);
        match expected(&message) {
            Some(x) => format!("{kind}, expected {x}"),
            None => kind.to_owned(),
        }
    };
    if path.is_empty() {
        problem
    } else {
        format!("{path}: {problem}")
    }
}

/// What serde expected, from the end of its message (after the value it may quote): the
/// types' own words (`i64`, `struct Patient`, `one of ...` of our variant names).
fn expected(message: &str) -> Option<&str> {
    let (_, x) = message.rsplit_once(", expected ")?;
    (x.len() <= 120 && !x.contains('"')).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const READ_AT: &str = "2026-11-30 22:00:00";

    fn read_at() -> Timestamp {
        format::parse_utc(READ_AT).unwrap()
    }

    fn page<T: ListItem>(body: Value) -> RequestPage<T> {
        RequestPage::parse(&serde_json::to_vec(&body).unwrap(), read_at()).unwrap()
    }

    fn booking(id: i64) -> Value {
        json!({
            "bookingId": id, "pmsResourceId": "1001", "pmsAppointmentTypeId": "G1",
            "pmsAppointmentIds": [], "pmsPatientId": null,
            "bookedTime": "2026-12-01 01:13:55", "bookingStatus": "Requested",
            "pmsAppointmentTime": "2026-12-02 09:30:00", "pmsAppointmentLength": 1800,
            "patient": {"firstname": "Ann", "lastname": "Lee", "dob": "23-02-1990", "gender": null}
        })
    }

    fn reason_of(field: &str, value: Value) -> Unreadable {
        let mut b = booking(7);
        set(&mut b, field, value);
        let p: RequestPage<Booking> = page(json!({ "data": [b] }));
        assert!(p.items.is_empty(), "{field} should not be readable");
        p.unreadable.into_iter().next().unwrap()
    }

    fn set(b: &mut Value, field: &str, value: Value) {
        match field.split_once('.') {
            Some((outer, inner)) => {
                b[outer][inner] = value;
            }
            None => {
                b[field] = value;
            }
        }
    }

    #[test]
    fn unreadable_reasons_name_the_field_and_the_problem_never_the_value() {
        let cases = [
            (
                "patient.dob",
                json!("Zebedee"),
                "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD",
            ),
            (
                "patient.dob",
                json!(19900223),
                "patient.dob: not a date in DD-MM-YYYY or YYYY-MM-DD",
            ),
            (
                "patient.firstname",
                json!({"Zebedee": 1}),
                "patient.firstname: not text",
            ),
            (
                "pmsAppointmentTime",
                json!(null),
                "pmsAppointmentTime: is null",
            ),
            (
                "pmsAppointmentTime",
                json!("Zebedee"),
                "pmsAppointmentTime: not a date-time in YYYY-MM-DD HH24:MI:SS",
            ),
            (
                "bookedTime",
                json!("Zebedee"),
                "bookedTime: not a date-time in YYYY-MM-DD HH24:MI:SS (UTC)",
            ),
            (
                "pmsAppointmentIds",
                json!("Zebedee"),
                "pmsAppointmentIds: not a list of text",
            ),
            (
                "pmsAppointmentIds",
                json!([{"Zebedee": 1}]),
                "pmsAppointmentIds: not a list of text",
            ),
            (
                "isNewPatient",
                json!("Zebedee"),
                "isNewPatient: not true or false",
            ),
            (
                "patient",
                json!("Zebedee"),
                "patient: is text, expected struct Patient",
            ),
            (
                "pmsAppointmentLength",
                json!("Zebedee"),
                "pmsAppointmentLength: not an integer",
            ),
        ];
        for (field, value, want) in cases {
            let u = reason_of(field, value);
            assert_eq!(u.reason, want, "{field}");
            assert_eq!(u.booking_id, Some(7));
            assert!(!u.to_string().contains("Zebedee"), "{u}");
        }
        let mut b = booking(7);
        b.as_object_mut().unwrap().remove("pmsAppointmentTime");
        let p: RequestPage<Booking> = page(json!({ "data": [b] }));
        assert_eq!(p.unreadable[0].reason, "pmsAppointmentTime: missing");
        let mut b = booking(7);
        b["bookingId"] = json!("Zebedee");
        let p: RequestPage<Booking> = page(json!({ "data": [b] }));
        assert_eq!(
            p.unreadable[0],
            Unreadable {
                index: 0,
                booking_id: None,
                request_id: None,
                reason: "bookingId: not an integer".into()
            }
        );
        let p: RequestPage<Booking> = page(json!({ "data": ["Zebedee", null] }));
        assert_eq!(p.unreadable.len(), 2);
        assert_eq!(p.unreadable[1].index, 1);
        assert_eq!(p.unreadable[1].reason, "not a JSON object");
    }

    #[test]
    fn serde_messages_keep_their_kind_and_expectation_only() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            n: i64,
            list: Vec<i64>,
            e: Gender,
        }
        impl ListItem for Strict {}
        let read = |v: Value| {
            let p: RequestPage<Strict> = page(json!({ "data": [v] }));
            p.unreadable[0].reason.clone()
        };
        assert_eq!(
            read(json!({"n": "Zebedee, expected i64", "list": [], "e": "Male"})),
            "n: is text, expected i64"
        );
        assert_eq!(
            read(json!({"n": 1, "list": [1, "Zebedee"], "e": "Male"})),
            "list[1]: is text, expected i64"
        );
        assert_eq!(
            read(json!({"n": 1, "list": [], "e": "Zebedee"})),
            "e: unknown value, expected one of `Male`, `Female`, `Other`"
        );
        assert_eq!(read(json!({"n": 1, "list": []})), "e: missing");
    }

    #[test]
    fn one_bad_booking_does_not_spoil_the_page() {
        let mut bad = booking(2);
        bad["patient"]["dob"] = json!("23/02/1990");
        let p: RequestPage<Booking> = page(json!({
            "data": [booking(1), bad, booking(3)],
            "page": {"currentPage": 1, "totalPages": 1, "perPage": 10, "total": 3}
        }));
        let ids: Vec<i64> = p.items.iter().map(|b| b.booking_id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(p.unreadable.len(), 1);
        assert_eq!(p.unreadable[0].index, 1);
        assert_eq!(p.unreadable[0].booking_id, Some(2));
        assert_eq!(p.page.unwrap().total, 3);
        assert!(!p.has_more(1));
    }

    #[test]
    fn nulls_and_missing_fields_take_defaults() {
        let b = json!({
            "bookingId": 9, "pmsResourceId": null, "pmsAppointmentTypeId": null,
            "pmsAppointmentIds": null, "pmsPatientId": null, "bookedTime": null,
            "bookingStatus": null, "pmsAppointmentTime": "2026-12-02 09:30:00",
            "pmsAppointmentLength": null, "reason": null, "comments": null, "patient": null,
            "telehealthUrl": null, "isNewPatient": null, "somethingNew": {"x": [1]}
        });
        let p: RequestPage<Booking> = page(json!({ "data": [b] }));
        let b = &p.items[0];
        assert_eq!(b.booked_time, read_at());
        assert_eq!(b.booking_status, BookingStatus::Requested);
        assert_eq!(b.pms_appointment_length, 0);
        assert_eq!(b.patient, Patient::default());
        assert!(b.pms_appointment_ids.is_empty());
        let minimal: RequestPage<Booking> = page(json!({
            "data": [{"bookingId": 10, "pmsAppointmentTime": "2026-12-02 09:30:00"}]
        }));
        assert_eq!(minimal.items[0].booked_time, read_at());
        assert_eq!(minimal.items[0].pms_resource_id, None);
    }

    #[test]
    fn patient_fields_are_read_tolerantly() {
        let mut b = booking(4);
        b["patient"] = json!({
            "firstname": "Ann", "lastname": null, "dob": "1990-02-23", "phone": 412345678,
            "postcode": 2000, "gender": "nonbinary", "medicareNumber": null, "medicareIrn": 1
        });
        let p: RequestPage<Booking> = page(json!({ "data": [b] }));
        let patient = &p.items[0].patient;
        assert_eq!(patient.dob, Some(jiff::civil::date(1990, 2, 23)));
        assert_eq!(patient.phone.as_deref(), Some("412345678"));
        assert_eq!(patient.postcode.as_deref(), Some("2000"));
        assert_eq!(patient.gender, None);
        assert_eq!(patient.medicare_irn.as_deref(), Some("1"));
        // Sending keeps the spec's format.
        let sent = serde_json::to_value(&p.items[0]).unwrap();
        assert_eq!(sent["patient"]["dob"], "23-02-1990");
        for (g, want) in [
            ("female", Some(Gender::Female)),
            ("Male", Some(Gender::Male)),
        ] {
            let mut b = booking(5);
            b["patient"]["gender"] = json!(g);
            let p: RequestPage<Booking> = page(json!({ "data": [b] }));
            assert_eq!(p.items[0].patient.gender, want);
        }
    }

    #[test]
    fn the_envelope_is_read_loosely() {
        let p: RequestPage<Booking> = page(json!({ "data": [booking(1)] }));
        assert_eq!(p.page, None);
        assert!(!p.has_more(1));
        let p: RequestPage<Booking> = page(json!({ "data": [booking(1)], "page": null }));
        assert_eq!(p.page, None);
        let p: RequestPage<Booking> = page(json!({ "data": [booking(1)], "page": "two" }));
        assert_eq!(p.page, None);
        let p: RequestPage<Booking> =
            page(json!({ "data": [booking(1)], "page": {"currentPage": 1, "totalPages": 2} }));
        assert!(p.has_more(1));
        let p: RequestPage<Booking> = page(json!({ "data": null }));
        assert!(p.items.is_empty() && p.unreadable.is_empty());
        let p: RequestPage<Booking> = page(json!({}));
        assert!(p.items.is_empty());
        let p: RequestPage<Booking> = page(json!([booking(1)]));
        assert_eq!(p.items.len(), 1);
        assert!(RequestPage::<Booking>::parse(b"\"Zebedee\"", read_at()).is_err());
        assert!(RequestPage::<Booking>::parse(b"{\"data\": 3}", read_at()).is_err());
        let e = RequestPage::<Booking>::parse(b"{\"data\": [Zebedee", read_at()).unwrap_err();
        assert!(!e.contains("Zebedee"), "{e}");
    }

    /// The `market_payloads` fuzz target's crash: a client snapshot request on the date
    /// `-026-12-02` was read (year -26) and did not read back once written.
    #[test]
    fn a_date_with_a_signed_year_makes_its_item_unreadable() {
        let p: RequestPage<ClientSnapshotRequest> = page(json!({ "data": [
            {"date": "-026-12-02", "dateType": "appt_datetime"},
            {"date": "2026-12-02", "dateType": "appt_datetime"},
        ]}));
        assert_eq!(p.items.len(), 1);
        assert_eq!(
            p.unreadable[0].reason,
            "date: not a date in YYYY-MM-DD (or DD-MM-YYYY)"
        );
        let written = serde_json::to_value(&p.items[0]).unwrap();
        let again: ClientSnapshotRequest = serde_json::from_value(written).unwrap();
        assert_eq!(again, p.items[0]);
    }

    #[test]
    fn other_request_lists_are_read_tolerantly() {
        let p: RequestPage<BookingUpdate> = page(json!({ "data": [
            {"requestId": 5, "bookingId": 1, "pmsAppointmentIds": null, "updatedAt": null,
             "bookingStatus": "Rescheduled"},
            {"requestId": "6", "bookingId": 2, "bookingStatus": "cancelled"},
            {"bookingId": 3, "bookingStatus": "Cancelled"},
        ]}));
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[0].booking_status, BookingStatus::Other);
        assert_eq!(p.items[0].updated_at, read_at());
        assert_eq!(p.items[1].request_id, 6);
        assert_eq!(p.items[1].booking_status, BookingStatus::Cancelled);
        assert_eq!(p.unreadable[0].reason, "requestId: missing");
        assert_eq!(p.unreadable[0].booking_id, Some(3));

        let p: RequestPage<AvailabilityRequest> = page(json!({ "data": [
            {"day": "2026-12-02", "pmsResourceId": 1001},
            {"day": "02-12-2026", "pms_resource_id": null, "pmsResourceId": null},
            {"day": null},
        ]}));
        assert_eq!(p.items[0].resource(), Some("1001"));
        assert_eq!(p.items[1].day, jiff::civil::date(2026, 12, 2));
        assert_eq!(p.items[1].resource(), None);
        assert_eq!(p.unreadable[0].reason, "day: is null");

        let p: RequestPage<PmsAppointmentChangesRequest> = page(json!({ "data": [
            {"bookingId": 1, "pmsAppointmentIds": null, "pmsPatientId": 77},
        ]}));
        assert_eq!(p.items[0].pms_patient_id.as_deref(), Some("77"));

        let p: RequestPage<ClientSnapshotRequest> = page(json!({ "data": [
            {"date": "2026-12-02", "dateType": "appt_datetime"},
            {"date": "2026-12-02", "dateType": "next_tuesday"},
        ]}));
        assert_eq!(p.items.len(), 1);
        assert_eq!(
            p.unreadable[0].reason,
            "dateType: unknown value, expected `appt_datetime` or `appt_creation_datetime`"
        );

        let p: RequestPage<AttachDocumentRequest> = page(json!({ "data": [
            {"requestId": 1, "bookingId": null, "documentSize": "12", "createdAt": null},
        ]}));
        assert_eq!(p.items[0].document_size, Some(12));
    }

    /// A bare JSON array (the configuration lists), read item by item.
    fn list<T: ListItem>(items: Value) -> RequestPage<T> {
        page(items)
    }

    #[test]
    fn resources_and_appointment_types_are_read_tolerantly() {
        let p: RequestPage<PmsResource> = list(json!([
            {"pmsResourceId": 1001, "pmsResourceName": "Dr Ann Lee", "pmsPractitionerTitle": null,
             "pmsPractitionerFirstname": "Ann", "pmsPractitionerLastname": null, "colour": "teal"},
            {"pmsResourceId": null, "pmsResourceName": "Zebedee Quixotic"},
            {"pmsResourceId": "R3"},
            {"pmsResourceId": "R4", "pmsResourceName": "Room 4"},
        ]));
        assert_eq!(
            p.items,
            [
                PmsResource {
                    pms_resource_id: "1001".into(),
                    pms_resource_name: "Dr Ann Lee".into(),
                    pms_practitioner_title: None,
                    pms_practitioner_firstname: Some("Ann".into()),
                    pms_practitioner_lastname: None,
                },
                PmsResource {
                    pms_resource_id: "R4".into(),
                    pms_resource_name: "Room 4".into(),
                    pms_practitioner_title: None,
                    pms_practitioner_firstname: None,
                    pms_practitioner_lastname: None,
                },
            ]
        );
        let reasons: Vec<(usize, &str)> = p
            .unreadable
            .iter()
            .map(|u| (u.index, u.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, "pmsResourceId: is null"),
                (2, "pmsResourceName: missing")
            ]
        );
        assert!(!format!("{:?}", p.unreadable).contains("Zebedee"));

        let p: RequestPage<PmsAppointmentType> = list(json!([
            {"pmsAppointmentTypeId": "HE", "pmsAppointmentTypeName": "Check-up",
             "pmsAppointmentLength": "30", "pmsResourceId": 1001},
            {"pmsAppointmentTypeId": 7, "pmsAppointmentTypeName": "Clean",
             "pmsAppointmentLength": null, "pmsResourceId": null, "somethingNew": [1]},
            {"pmsAppointmentTypeId": "X", "pmsAppointmentTypeName": "Odd",
             "pmsAppointmentLength": "half an hour"},
        ]));
        assert_eq!(p.items[0].pms_appointment_length, Some(30));
        assert_eq!(p.items[0].pms_resource_id.as_deref(), Some("1001"));
        assert_eq!(p.items[1].pms_appointment_type_id, "7");
        assert_eq!(p.items[1].pms_appointment_length, None);
        assert_eq!(p.items[1].pms_resource_id, None);
        assert_eq!(
            p.unreadable[0].reason,
            "pmsAppointmentLength: not an integer"
        );
        // Sending keeps the spec's shape: absent optional fields are left out.
        let sent = serde_json::to_value(&p.items[1]).unwrap();
        assert_eq!(
            sent,
            json!({"pmsAppointmentTypeId": "7", "pmsAppointmentTypeName": "Clean"})
        );
    }

    #[test]
    fn subscriptions_are_read_tolerantly() {
        let p: RequestPage<Subscription> = list(json!([
            {"id": "6f1c", "clientId": null, "topic": "requests.*",
             "callbackUrl": "https://node.example/hooks", "startAt": null,
             "expireAt": "2027-02-01T00:00:00Z", "somethingNew": true},
            {"id": "7a2d", "topic": "requests.videoConsults", "callbackUrl": null},
            {"id": 42, "topic": null},
            {"id": "bad", "topic": "requests.bookings", "callbackUrl": "x",
             "expireAt": "next Tuesday"},
        ]));
        assert_eq!(p.items.len(), 3);
        let first = &p.items[0];
        assert_eq!(first.topic, SubscriptionTopic::All);
        assert_eq!(first.client_id, None);
        assert_eq!(first.start_at, None);
        assert_eq!(
            first.expire_at,
            Some(format::parse_utc("2027-02-01 00:00:00").unwrap())
        );
        assert_eq!(p.items[1].topic, SubscriptionTopic::Other);
        assert_eq!(p.items[1].callback_url, "");
        assert!(!SubscriptionTopic::Other.matches(RequestType::Bookings));
        assert_eq!(p.items[2].id.as_deref(), Some("42"));
        assert_eq!(p.items[2].topic, SubscriptionTopic::Other);
        assert_eq!(
            p.unreadable[0].reason,
            "expireAt: not a date-time in YYYY-MM-DD HH24:MI:SS (UTC)"
        );
        // Sending keeps the spec's names and formats.
        let sent = serde_json::to_value(first).unwrap();
        assert_eq!(sent["topic"], "requests.*");
        assert_eq!(sent["expireAt"], "2027-02-01 00:00:00");
        let known = RequestType::ALL.map(SubscriptionTopic::of);
        for t in known.into_iter().chain([SubscriptionTopic::All]) {
            let name = serde_json::to_value(t).unwrap();
            assert!(name.as_str().is_some_and(|n| n.starts_with("requests.")));
            let read: Subscription =
                serde_json::from_value(json!({"topic": name, "callbackUrl": "u"})).unwrap();
            assert_eq!(read.topic, t);
        }
    }

    #[test]
    fn the_liveness_contract_is_read_tolerantly() {
        let read = |v: Value| serde_json::from_value::<LivenessContract>(v);
        assert_eq!(read(json!({})).unwrap(), LivenessContract::default());
        assert_eq!(
            read(json!({"liveHours": null})).unwrap(),
            LivenessContract::default()
        );
        let c = read(json!({"liveHours": {
            "monday": [{"start": "08:00", "end": "17:30:00"}],
            "tuesday": null, "publicHolidays": [], "lunarNewYear": [{"start": "x"}]
        }, "contractVersion": 2}))
        .unwrap();
        let monday = c.live_hours.day(jiff::civil::Weekday::Monday);
        assert_eq!(
            monday,
            [TimeRange {
                start: jiff::civil::time(8, 0, 0, 0),
                end: jiff::civil::time(17, 30, 0, 0),
            }]
        );
        assert_eq!(c.live_hours.tuesday, None);
        assert_eq!(c.live_hours.public_holidays, Some(vec![]));
        let e = serde_path_to_error::deserialize::<_, LivenessContract>(
            json!({"liveHours": {"friday": [{"start": "noon", "end": "17:00"}]}}),
        )
        .unwrap_err();
        assert_eq!(e.path().to_string(), "liveHours.friday[0].start");
        assert_eq!(e.inner().to_string(), lenient::NOT_TIME);
        assert!(read(json!({"liveHours": {"friday": [{"start": null, "end": "17:00"}]}})).is_err());
        // Sent as HH24:MI.
        let sent = serde_json::to_value(&c).unwrap();
        assert_eq!(sent["liveHours"]["monday"][0]["end"], "17:30");
    }

    #[test]
    fn unknown_request_types_are_set_apart() {
        let p = Polled::parse(
            br#"["bookings", "telepathy", "availability", "bookings", 3, "Zebedee Quixotic", "telepathy"]"#,
        )
        .unwrap();
        assert_eq!(p.known, [RequestType::Bookings, RequestType::Availability]);
        assert_eq!(p.unknown, ["telepathy", "?"]);
        assert!(Polled::parse(br#"{"bookings": 1}"#).is_err());
    }

    proptest::proptest! {
        /// Whatever one field of one booking holds, the other bookings on the page are read, and
        /// the odd one is either read or reported with its id and a reason without the value.
        #[test]
        fn any_value_in_one_field_spoils_only_its_own_booking(
            field in proptest::sample::select(vec![
                "bookingId", "pmsResourceId", "pmsAppointmentTypeId", "pmsAppointmentIds",
                "pmsPatientId", "bookedTime", "bookingStatus", "pmsAppointmentTime",
                "pmsAppointmentLength", "reason", "comments", "patient", "telehealthUrl",
                "isNewPatient", "patient.firstname", "patient.lastname", "patient.dob",
                "patient.phone", "patient.email", "patient.address", "patient.suburb",
                "patient.state", "patient.postcode", "patient.gender", "patient.medicareNumber",
                "patient.medicareIrn", "patient.medicareExpiry", "somethingNew",
            ]),
            value in arb_json(),
            at in 0usize..3,
        ) {
            let mut odd = booking(100);
            set(&mut odd, field, value.clone());
            let mut data = vec![booking(1), booking(2)];
            data.insert(at, odd);
            let p: RequestPage<Booking> = page(json!({ "data": data }));
            let read: Vec<i64> = p.items.iter().map(|b| b.booking_id).collect();
            proptest::prop_assert!(read.contains(&1) && read.contains(&2), "{read:?}");
            proptest::prop_assert_eq!(p.items.len() + p.unreadable.len(), 3);
            for u in &p.unreadable {
                proptest::prop_assert_eq!(u.index, at);
                if field != "bookingId" {
                    proptest::prop_assert_eq!(u.booking_id, Some(100));
                }
                if let Value::String(s) = &value && s.len() > 3 {
                    proptest::prop_assert!(!u.reason.contains(s.as_str()), "{}", u.reason);
                }
            }
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-zA-Z0-9 ,:\"`-]{0,24}".prop_map(Value::String),
            Just(json!("1990-02-23")),
            Just(json!("23-02-1990")),
            Just(json!("2026-12-02 09:30:00")),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
