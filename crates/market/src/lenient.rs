//! Tolerant readers for the fields of what the marketplace sends (bookings, booking updates and
//! the other requests; the PMS resources, appointment types, subscriptions and liveness contract
//! it answers with), as serde `deserialize_with` helpers.
//!
//! The spec marks nothing on a booking as required and says of several fields only that they
//! "can be null". The client therefore reads every field so that:
//! - `null` or a missing field takes a default (empty text, an empty list, `None`);
//! - a number is taken where text is expected (ids, a postcode, a phone number);
//! - an enum value the client does not know becomes `None` or an `Other` variant;
//! - anything else that cannot be read fails the item, and the error names the problem with one
//!   of the fixed texts of [`PROBLEMS`], never the value (it may be a patient's).
//!
//! Sending is unchanged: these helpers only deserialize; the types serialize as before.

use jiff::{
    Timestamp,
    civil::{Date, DateTime, Time},
};
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

use crate::{
    format,
    types::{BookingStatus, Gender, SubscriptionTopic},
};

/// `null` where a value is needed.
pub(crate) const IS_NULL: &str = "is null";
/// Not text (nor a number).
pub(crate) const NOT_TEXT: &str = "not text";
/// Not a list of texts.
pub(crate) const NOT_TEXT_LIST: &str = "not a list of text";
/// Not an integer id.
pub(crate) const NOT_ID: &str = "not an integer";
/// Not `true` or `false`.
pub(crate) const NOT_BOOL: &str = "not true or false";
/// Not a date of birth.
pub(crate) const NOT_DOB: &str = "not a date in DD-MM-YYYY or YYYY-MM-DD";
/// Not a date.
pub(crate) const NOT_DATE: &str = "not a date in YYYY-MM-DD (or DD-MM-YYYY)";
/// Not an instant.
pub(crate) const NOT_UTC: &str = "not a date-time in YYYY-MM-DD HH24:MI:SS (UTC)";
/// Not a practice-local date-time.
pub(crate) const NOT_LOCAL: &str = "not a date-time in YYYY-MM-DD HH24:MI:SS";
/// Not a time of day.
pub(crate) const NOT_TIME: &str = "not a time in HH24:MI";

/// Every problem these readers report: the only error texts of theirs that an item's reason
/// repeats (see [`crate::read`]).
pub(crate) const PROBLEMS: &[&str] = &[
    IS_NULL,
    NOT_TEXT,
    NOT_TEXT_LIST,
    NOT_ID,
    NOT_BOOL,
    NOT_DOB,
    NOT_DATE,
    NOT_UTC,
    NOT_LOCAL,
    NOT_TIME,
];

fn fail<E: serde::de::Error, T>(problem: &'static str) -> Result<T, E> {
    Err(E::custom(problem))
}

/// An integer id from a JSON integer or a string of digits.
pub(crate) fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s)
            if (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A required integer id (`bookingId`, `requestId`): an integer, or a string of digits.
pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => fail(IS_NULL),
        v => id_of(&v).map_or_else(|| fail(NOT_ID), Ok),
    }
}

/// An optional integer id: `null` is `None`.
pub(crate) fn id_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => id_of(&v).map_or_else(|| fail(NOT_ID), |n| Ok(Some(n))),
    }
}

/// An optional integer (a length, a size): `null` is `None`; a string of digits is read too.
pub(crate) fn int_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    id_opt(d)
}

/// An integer where `null` (or a missing field) means 0.
pub(crate) fn int_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    int_opt(d).map(Option::unwrap_or_default)
}

fn text_of(v: Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(NOT_TEXT),
    }
}

/// Optional text: `null` is `None`; a number is taken as its text.
pub(crate) fn text_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    text_of(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// Required text (`pmsResourceId`, `pmsResourceName`): `null` is [`IS_NULL`]; a number is taken
/// as its text. A missing field is left to serde (`missing`).
pub(crate) fn text_required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => fail(IS_NULL),
        v => text_of(v)
            .map(Option::unwrap_or_default)
            .map_err(D::Error::custom),
    }
}

/// Text where `null` (or a missing field) is empty.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text_opt(d).map(Option::unwrap_or_default)
}

/// A list of texts (`pmsAppointmentIds`): `null` is empty; numbers are taken as their text.
pub(crate) fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| text_of(v).map_err(|_| NOT_TEXT_LIST).transpose())
            .collect::<Result<_, _>>()
            .map_err(D::Error::custom),
        _ => fail(NOT_TEXT_LIST),
    }
}

/// An optional boolean: `null` is `None`; `"true"` and `"false"` are read too.
pub(crate) fn bool_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        _ => fail(NOT_BOOL),
    }
}

/// A value where `null` (or a missing field) is its default.
pub(crate) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A required value parsed from text: `null` is [`IS_NULL`]; anything that does not parse is
/// `problem`.
fn parsed<'de, D, T>(
    d: D,
    parse: fn(&str) -> Result<T, format::FormatError>,
    problem: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(d)? {
        Value::Null => fail(IS_NULL),
        Value::String(s) => parse(s.trim()).or_else(|_| fail(problem)),
        _ => fail(problem),
    }
}

/// An optional value parsed from text: `null` and blank text are `None`; anything that does not
/// parse is `problem`.
fn parsed_opt<'de, D, T>(
    d: D,
    parse: fn(&str) -> Result<T, format::FormatError>,
    problem: &'static str,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => parse(s.trim()).map(Some).or_else(|_| fail(problem)),
        _ => fail(problem),
    }
}

/// A date of birth in either format; `null` and `""` are `None`.
pub(crate) fn dob_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    parsed_opt(d, format::parse_dob, NOT_DOB)
}

/// A required date (`day`, `date`).
pub(crate) fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    parsed(d, format::read_date, NOT_DATE)
}

/// A required instant. A missing or `null` one is filled in before the item is read (see
/// [`crate::read::ListItem::fill_in`]), so `null` here is an error.
pub(crate) fn utc<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    parsed(d, format::read_utc, NOT_UTC)
}

/// An optional instant: `null` and `""` are `None`.
pub(crate) fn utc_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    parsed_opt(d, format::read_utc, NOT_UTC)
}

/// A required practice-local date-time (`pmsAppointmentTime`).
pub(crate) fn local<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
    parsed(d, format::read_local, NOT_LOCAL)
}

/// A time of day (a liveness range's `start`, `end`): `HH24:MI` as the spec says, or with seconds.
pub(crate) fn hhmm<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    parsed(d, format::read_hhmm, NOT_TIME)
}

/// A subscription topic: one of the spec's; `null`, a missing field or any other value is
/// [`SubscriptionTopic::Other`] (a topic of a newer API, never sent).
pub(crate) fn topic<'de, D: Deserializer<'de>>(d: D) -> Result<SubscriptionTopic, D::Error> {
    // The type's own reading takes any other text as `Other`; anything but text is `Other` too.
    Ok(SubscriptionTopic::deserialize(Value::deserialize(d)?).unwrap_or(SubscriptionTopic::Other))
}

/// A gender: one of the spec's (in any case) or `None` (`null`, or a value the spec does not
/// list: it is not ours to guess).
pub(crate) fn gender<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Gender>, D::Error> {
    let v = Value::deserialize(d)?;
    let s = v.as_str().map(str::trim).unwrap_or_default();
    Ok([Gender::Male, Gender::Female, Gender::Other]
        .into_iter()
        .find(|g| g.as_str().eq_ignore_ascii_case(s)))
}

/// A booking status: one of the spec's (in any case); `null` or a missing field is `Requested`
/// (a booking is listed because it waits for an answer); any other value is `Other`.
pub(crate) fn booking_status<'de, D: Deserializer<'de>>(d: D) -> Result<BookingStatus, D::Error> {
    Ok(status_of(Value::deserialize(d)?).unwrap_or(BookingStatus::Requested))
}

/// The status a booking update asks for: one of the spec's (in any case); `null`, a missing
/// field or any other value is `Other`.
pub(crate) fn update_status<'de, D: Deserializer<'de>>(d: D) -> Result<BookingStatus, D::Error> {
    Ok(status_of(Value::deserialize(d)?).unwrap_or(BookingStatus::Other))
}

fn status_of(v: Value) -> Option<BookingStatus> {
    let s = v.as_str()?.trim();
    Some(
        [
            BookingStatus::Requested,
            BookingStatus::Confirmed,
            BookingStatus::Cancelled,
        ]
        .into_iter()
        .find(|b| b.as_str().eq_ignore_ascii_case(s))
        .unwrap_or(BookingStatus::Other),
    )
}

pub(crate) fn requested() -> BookingStatus {
    BookingStatus::Requested
}

pub(crate) fn other() -> BookingStatus {
    BookingStatus::Other
}

pub(crate) fn other_topic() -> SubscriptionTopic {
    SubscriptionTopic::Other
}
