//! Cliniko's JSON, read leniently and without ever quoting a value in an error.
//!
//! Written from the published documentation (`sections/*.md` of `redguava/cliniko-api`): ids
//! come as numbers in some examples and as strings in others, so both are read; related records
//! are links (`{"practitioner": {"links": {"self": ".../practitioners/1"}}}`), whose last path
//! segment is the id; lists carry `links.next` when there is a further page.

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use crate::{PmsError, safe};

pub(crate) fn json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, PmsError> {
    safe::decode(bytes).map_err(|e| PmsError::protocol(format!("{what}: {e}")))
}

/// An id given as a JSON number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Id(n.to_string())),
            Raw::S(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(Id(s)),
            Raw::S(_) => Err(serde::de::Error::custom("an id of letters and digits")),
        }
    }
}

/// `{"links": {"self": "..."}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LinkRef {
    /// The links.
    #[serde(default)]
    pub links: Links,
}

impl LinkRef {
    /// The id at the end of the `self` link (`.../practitioners/12` gives `12`).
    pub fn id(&self) -> Option<String> {
        let url = self.links.self_.as_deref()?;
        let path = url.split(['?', '#']).next()?;
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        (!last.is_empty() && last.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| last.to_owned())
    }
}

/// A `links` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Links {
    /// `self`.
    #[serde(rename = "self", default)]
    pub self_: Option<String>,
    /// `next`, on every page but the last.
    #[serde(default)]
    pub next: Option<String>,
}

/// One page of a list: the items under `key`, and the next page's link.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// `links.next`.
    pub next: Option<String>,
}

/// Parse a list page whose items are under `key` (`practitioners`, `individual_appointments`…).
pub fn page<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<Page<T>, PmsError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        links: Links,
    }
    let raw: Raw = json(bytes, key)?;
    let value: serde_json::Map<String, serde_json::Value> = json(bytes, key)?;
    let items = match value.get(key) {
        Some(v) => safe::decode::<Vec<T>>(v.to_string().as_bytes())
            .map_err(|e| PmsError::protocol(format!("{key}: {e}")))?,
        None => return Err(PmsError::protocol(format!("{key}: missing list `{key}`"))),
    };
    Ok(Page {
        items,
        next: raw.links.next.filter(|n| !n.is_empty()),
    })
}

/// `GET /businesses/:id`.
#[derive(Debug, Clone, Deserialize)]
pub struct Business {
    /// Id.
    pub id: Id,
    /// Name.
    #[serde(default)]
    pub business_name: Option<String>,
    /// Display name (preferred when set).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Contact text, often the phone.
    #[serde(default)]
    pub contact_information: Option<String>,
    /// Whether online bookings show this business.
    #[serde(default)]
    pub show_in_online_bookings: Option<bool>,
}

/// `GET /settings/public` (the parts that shape availability).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Account.
    pub account: Account,
    /// Calendar.
    #[serde(default)]
    pub calendar: Option<Calendar>,
    /// Online bookings.
    #[serde(default)]
    pub online_bookings: Option<OnlineBookings>,
}

/// `settings.account`.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    /// The account's time zone: a Rails name (`Eastern Time (US & Canada)`) or an IANA one.
    pub time_zone: String,
}

/// `settings.calendar`.
#[derive(Debug, Clone, Deserialize)]
pub struct Calendar {
    /// The diary's time slot, minutes.
    #[serde(default)]
    pub timeslot_size_in_minutes: Option<u32>,
}

/// `settings.online_bookings`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OnlineBookings {
    /// Whether online bookings are on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// At most this many times per day segment (morning, afternoon, evening); `null`: unlimited.
    #[serde(default)]
    pub max_appointments_per_day_segment: Option<u32>,
    /// The minimum notice, hours.
    #[serde(default)]
    pub min_hours_advance_required_to_book: Option<u32>,
    /// How far ahead times are offered, days: not in the published settings, read if present
    /// (otherwise learnt from the available times, see `rules`).
    #[serde(default)]
    pub max_days_in_advance: Option<u32>,
}

/// A practitioner.
#[derive(Debug, Clone, Deserialize)]
pub struct Practitioner {
    /// Id.
    pub id: Id,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Free-text designation, e.g. `Dentist`.
    #[serde(default)]
    pub designation: Option<String>,
    /// Shown in online bookings.
    #[serde(default)]
    pub show_in_online_bookings: Option<bool>,
}

/// An appointment type.
#[derive(Debug, Clone, Deserialize)]
pub struct AppointmentType {
    /// Id.
    pub id: Id,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Duration, minutes.
    pub duration_in_minutes: u32,
    /// Shown in online bookings.
    #[serde(default)]
    pub show_in_online_bookings: Option<bool>,
    /// More than one attendee: a group type.
    #[serde(default)]
    pub max_attendees: Option<u32>,
}

/// One `starts_at`–`ends_at` pair of a daily availability (`HH:MM`).
#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    /// Start.
    pub starts_at: String,
    /// End.
    pub ends_at: String,
}

/// A daily availability: a practitioner's regular hours at a business on one weekday.
#[derive(Debug, Clone, Deserialize)]
pub struct DailyAvailability {
    /// Id.
    pub id: Id,
    /// ISO weekday, 1 Monday … 7 Sunday.
    pub day_of_week: u8,
    /// The hours.
    #[serde(default)]
    pub availabilities: Vec<Span>,
    /// The practitioner.
    #[serde(default)]
    pub practitioner: LinkRef,
    /// The business.
    #[serde(default)]
    pub business: LinkRef,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

/// An unavailable block.
#[derive(Debug, Clone, Deserialize)]
pub struct UnavailableBlock {
    /// Id.
    pub id: Id,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Deleted.
    #[serde(default)]
    pub deleted_at: Option<Timestamp>,
    /// The practitioner.
    #[serde(default)]
    pub practitioner: LinkRef,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

/// An individual appointment.
#[derive(Debug, Clone, Deserialize)]
pub struct IndividualAppointment {
    /// Id.
    pub id: Id,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Notes: where the booking's reference is kept.
    #[serde(default)]
    pub notes: Option<String>,
    /// Cancelled.
    #[serde(default)]
    pub cancelled_at: Option<Timestamp>,
    /// Deleted.
    #[serde(default)]
    pub deleted_at: Option<Timestamp>,
    /// The patient did not arrive.
    #[serde(default)]
    pub did_not_arrive: Option<bool>,
    /// Created.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// Type.
    #[serde(default)]
    pub appointment_type: LinkRef,
    /// Business.
    #[serde(default)]
    pub business: LinkRef,
    /// Practitioner.
    #[serde(default)]
    pub practitioner: LinkRef,
    /// Patient.
    #[serde(default)]
    pub patient: LinkRef,
}

impl IndividualAppointment {
    /// Neither cancelled nor deleted.
    pub fn is_live(&self) -> bool {
        self.cancelled_at.is_none() && self.deleted_at.is_none()
    }
}

/// A phone number of a patient.
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneNumber {
    /// `Mobile`, `Home`…
    #[serde(default)]
    pub phone_type: Option<String>,
    /// The number.
    #[serde(default)]
    pub number: Option<String>,
}

/// A patient.
#[derive(Clone, Deserialize)]
pub struct Patient {
    /// Id.
    pub id: Id,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Date of birth.
    #[serde(default, deserialize_with = "lenient_date")]
    pub date_of_birth: Option<jiff::civil::Date>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Phones.
    #[serde(default)]
    pub patient_phone_numbers: Option<Vec<PhoneNumber>>,
    /// Street.
    #[serde(default)]
    pub address_1: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<String>,
    /// Post code.
    #[serde(default)]
    pub post_code: Option<String>,
    /// Medicare number.
    #[serde(default)]
    pub medicare: Option<String>,
    /// Medicare IRN.
    #[serde(default)]
    pub medicare_reference_number: Option<String>,
}

/// Redacted.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An empty string (as Cliniko writes a missing date) reads as none.
fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::civil::Date>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("a date YYYY-MM-DD")),
    }
}

/// `GET /individual_appointments/:id/conflicts`.
#[derive(Debug, Clone, Deserialize)]
pub struct Conflicts {
    /// The answer.
    pub conflicts: ConflictsInner,
}

/// `conflicts.exist`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConflictsInner {
    /// Whether the appointment overlaps another booking.
    pub exist: bool,
}

/// A record with only the fields change polling needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Touched {
    /// Id.
    pub id: Id,
    /// Last change.
    pub updated_at: Timestamp,
}

/// The Cliniko fields an error may name (from a 422's `errors` object).
const KNOWN_FIELDS: &[&str] = &[
    "appointment_type",
    "appointment_type_id",
    "business",
    "business_id",
    "cancellation_reason",
    "date_of_birth",
    "email",
    "ends_at",
    "first_name",
    "from",
    "last_name",
    "notes",
    "patient",
    "patient_id",
    "practitioner",
    "practitioner_id",
    "q",
    "starts_at",
    "to",
];

/// Map an error answer to a [`PmsError`]. The body is read only for the names of the fields a
/// 422's `errors` object lists, kept when they are Cliniko's own; its messages are never kept.
/// `reset_wait` is how long `X-RateLimit-Reset` asks a 429 to wait.
pub fn error(status: u16, body: &[u8], reset_wait: Option<std::time::Duration>) -> PmsError {
    let field = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errors").and_then(|e| e.as_object()).and_then(|o| {
                o.keys()
                    .find(|k| KNOWN_FIELDS.contains(&k.as_str()))
                    .cloned()
            })
        });
    let text = safe::status_text(status, "", field.as_deref());
    match status {
        401 | 403 => PmsError::Unauthorized { detail: text },
        404 => PmsError::NotFound { detail: text },
        409 => PmsError::Conflict {
            kind: String::new(),
            detail: text,
        },
        400 | 422 => PmsError::Invalid {
            kind: String::new(),
            detail: text,
        },
        429 => PmsError::RateLimited {
            retry_after: reset_wait.unwrap_or(std::time::Duration::from_secs(1)),
        },
        408 | 504 => PmsError::Timeout,
        500..=599 => PmsError::Unavailable { detail: text },
        _ => PmsError::protocol(format!("unexpected {text}")),
    }
}

/// How long to wait for a 429's `X-RateLimit-Reset` (UNIX seconds, UTC) at `now`: until then,
/// at least one second and at most an hour. `None` when the header is absent or unreadable.
///
/// ```
/// use slotbridge_pms::cliniko::reset_wait;
/// let now: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
/// let reset = (now.as_second() + 42).to_string();
/// assert_eq!(reset_wait(Some(&reset), now), Some(std::time::Duration::from_secs(42)));
/// assert_eq!(reset_wait(Some("0"), now), Some(std::time::Duration::from_secs(1)));
/// assert_eq!(reset_wait(Some("soon"), now), None);
/// ```
pub fn reset_wait(header: Option<&str>, now: Timestamp) -> Option<std::time::Duration> {
    let reset: i64 = header?.trim().parse().ok()?;
    let secs = reset.saturating_sub(now.as_second()).clamp(1, 3600);
    Some(std::time::Duration::from_secs(secs.unsigned_abs()))
}

/// What change polling reads of an appointment or a block.
#[derive(Debug, Clone, Deserialize)]
pub struct IndividualAppointmentOrBlock {
    /// Id.
    pub id: Id,
    /// Last change.
    pub updated_at: Timestamp,
    /// Created.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Cancelled (appointments).
    #[serde(default)]
    pub cancelled_at: Option<Timestamp>,
    /// Deleted.
    #[serde(default)]
    pub deleted_at: Option<Timestamp>,
    /// Start.
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    /// End.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// The patient did not arrive (appointments).
    #[serde(default)]
    pub did_not_arrive: Option<bool>,
}

impl IndividualAppointmentOrBlock {
    /// A short, stable digest of what the diary depends on: two changes of one record within
    /// one second (Cliniko's `updated_at` has seconds) differ here when it matters.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}",
            self.starts_at, self.ends_at, self.cancelled_at, self.deleted_at, self.did_not_arrive
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..4])
    }
}

/// One of `available_times`.
#[derive(Debug, Clone, Deserialize)]
pub struct AvailableTime {
    /// When the time starts (UTC).
    pub appointment_start: Timestamp,
}
