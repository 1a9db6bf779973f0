//! The wire types of the Healthengine PMS API v1.9.0, written from the published `openapi.yaml`
//! (components/schemas) and nothing else, so that a misreading in our client cannot hide in a
//! type the simulator shares with it.
//!
//! Request bodies (what an integration sends) deserialize strictly: unknown fields are refused
//! (`deny_unknown_fields`), `required` fields must be present, enum values must be listed, and
//! formats are checked: dates `YYYY-MM-DD`, times `HH:MM` (`HH24:MI`), datetimes
//! `YYYY-MM-DD HH:MM:SS` (`HH24:MI:SS`). An optional field may be absent; it may be `null` only
//! where the schema says `nullable: true` (the `reason` of the reason bodies).
//!
//! Response bodies serialize in the spec's shapes. An optional field with no value is omitted,
//! except where the schema's description says it "can be null" or "may be null" (then `null`).

use jiff::{
    Timestamp,
    civil::{Date, DateTime, Time},
};
use serde::{Deserialize, Deserializer, Serialize};

/// At most this many snapshots in one `POST /availability/snapshots` ("Send up to 100
/// availability snapshots in a single call").
pub const MAX_SNAPSHOTS_PER_BATCH: usize = 100;

/// The spec's formats, checked strictly.
pub mod fmt {
    use super::*;

    fn digits_at(s: &str, shape: &str) -> bool {
        s.len() == shape.len()
            && s.bytes().zip(shape.bytes()).all(|(c, p)| match p {
                b'9' => c.is_ascii_digit(),
                _ => c == p,
            })
    }

    /// `YYYY-MM-DD`.
    pub fn parse_date(s: &str) -> Result<Date, String> {
        if !digits_at(s, "9999-99-99") {
            return Err(format!("expected a date YYYY-MM-DD, found {s:?}"));
        }
        s.parse::<Date>()
            .map_err(|_| format!("expected a date YYYY-MM-DD, found {s:?}"))
    }

    /// `HH:MM` (24 hours).
    pub fn parse_time(s: &str) -> Result<Time, String> {
        if !digits_at(s, "99:99") {
            return Err(format!("expected a time HH:MM, found {s:?}"));
        }
        Time::strptime("%H:%M", s).map_err(|_| format!("expected a time HH:MM, found {s:?}"))
    }

    /// `YYYY-MM-DD HH:MM:SS`, civil.
    pub fn parse_datetime(s: &str) -> Result<DateTime, String> {
        if !digits_at(s, "9999-99-99 99:99:99") {
            return Err(format!(
                "expected a datetime YYYY-MM-DD HH:MM:SS, found {s:?}"
            ));
        }
        DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
            .map_err(|_| format!("expected a datetime YYYY-MM-DD HH:MM:SS, found {s:?}"))
    }

    /// `YYYY-MM-DD HH:MM:SS` in UTC.
    pub fn parse_utc(s: &str) -> Result<Timestamp, String> {
        let dt = parse_datetime(s)?;
        dt.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| format!("expected a UTC datetime YYYY-MM-DD HH:MM:SS, found {s:?}"))
    }

    /// A timestamp as `YYYY-MM-DD HH:MM:SS` in UTC.
    pub fn utc_string(t: Timestamp) -> String {
        t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    fn de_str<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        String::deserialize(d)
    }

    /// `format: date`.
    pub mod date {
        use super::*;
        /// Serialize.
        pub fn serialize<S: serde::Serializer>(v: &Date, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&v.strftime("%Y-%m-%d").to_string())
        }
        /// Deserialize.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
            parse_date(&de_str(d)?).map_err(serde::de::Error::custom)
        }
    }

    /// `format: time` (`HH24:MI`).
    pub mod hhmm {
        use super::*;
        /// Serialize.
        pub fn serialize<S: serde::Serializer>(v: &Time, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&v.strftime("%H:%M").to_string())
        }
        /// Deserialize.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
            parse_time(&de_str(d)?).map_err(serde::de::Error::custom)
        }
    }

    /// `format: datetime` in UTC.
    pub mod utc {
        use super::*;
        /// Serialize.
        pub fn serialize<S: serde::Serializer>(v: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&utc_string(*v))
        }
    }

    /// An optional `format: datetime` in UTC: absent is `None`, `null` is refused.
    pub mod utc_opt {
        use super::*;
        /// Serialize (call only on `Some`, with `skip_serializing_if`).
        pub fn serialize<S: serde::Serializer>(
            v: &Option<Timestamp>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(t) => s.serialize_str(&utc_string(*t)),
                None => s.serialize_none(),
            }
        }
        /// Deserialize.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            parse_utc(&de_str(d)?)
                .map(Some)
                .map_err(serde::de::Error::custom)
        }
    }

    /// `format: datetime` in the practice's civil time.
    pub mod local {
        use super::*;
        /// Serialize.
        pub fn serialize<S: serde::Serializer>(v: &DateTime, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&v.strftime("%Y-%m-%d %H:%M:%S").to_string())
        }
    }

    /// The patient's `dob`: the schema's description says `DD-MM-YYYY`.
    pub mod dob {
        use super::*;
        /// Serialize.
        pub fn serialize<S: serde::Serializer>(v: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(d) => s.serialize_str(&d.strftime("%d-%m-%Y").to_string()),
                None => s.serialize_none(),
            }
        }
    }

    /// An optional field that the schema does not mark `nullable`: present means a value.
    pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }
}

/// `Request`: a request type, as listed by `GET /requests` and named in webhook payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestType {
    /// `bookings`.
    Bookings,
    /// `bookingUpdates`.
    BookingUpdates,
    /// `availability`.
    Availability,
    /// `pmsAppointmentChanges`.
    PmsAppointmentChanges,
    /// `pmsResources`.
    PmsResources,
    /// `pmsAppointmentTypes`.
    PmsAppointmentTypes,
    /// `availableDocuments`.
    AvailableDocuments,
    /// `uploadDocuments`.
    UploadDocuments,
    /// `clientSnapshots`.
    ClientSnapshots,
    /// `attachDocuments`.
    AttachDocuments,
}

impl RequestType {
    /// The enum's values, in the spec's order.
    pub const ALL: [RequestType; 10] = [
        Self::Bookings,
        Self::BookingUpdates,
        Self::Availability,
        Self::PmsAppointmentChanges,
        Self::PmsResources,
        Self::PmsAppointmentTypes,
        Self::AvailableDocuments,
        Self::UploadDocuments,
        Self::ClientSnapshots,
        Self::AttachDocuments,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bookings => "bookings",
            Self::BookingUpdates => "bookingUpdates",
            Self::Availability => "availability",
            Self::PmsAppointmentChanges => "pmsAppointmentChanges",
            Self::PmsResources => "pmsResources",
            Self::PmsAppointmentTypes => "pmsAppointmentTypes",
            Self::AvailableDocuments => "availableDocuments",
            Self::UploadDocuments => "uploadDocuments",
            Self::ClientSnapshots => "clientSnapshots",
            Self::AttachDocuments => "attachDocuments",
        }
    }

    /// The webhook's `data.target`: the `/requests/...` list of this type; none for the two
    /// refresh requests, which have no list (they are answered by a snapshot).
    pub fn target(self) -> Option<String> {
        match self {
            Self::PmsResources | Self::PmsAppointmentTypes => None,
            t => Some(format!("/requests/{}", t.as_str())),
        }
    }

    /// Counted against the integration's health when left unanswered (suggested-testing.md,
    /// "critical requests": bookings, booking updates, availability).
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            Self::Bookings | Self::BookingUpdates | Self::Availability
        )
    }
}

impl std::fmt::Display for RequestType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SubscriptionTopic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriptionTopic {
    /// `requests.*`: every request type.
    #[serde(rename = "requests.*")]
    All,
    /// `requests.bookings`.
    #[serde(rename = "requests.bookings")]
    Bookings,
    /// `requests.bookingUpdates`.
    #[serde(rename = "requests.bookingUpdates")]
    BookingUpdates,
    /// `requests.availability`.
    #[serde(rename = "requests.availability")]
    Availability,
    /// `requests.pmsAppointmentChanges`.
    #[serde(rename = "requests.pmsAppointmentChanges")]
    PmsAppointmentChanges,
    /// `requests.pmsResources`.
    #[serde(rename = "requests.pmsResources")]
    PmsResources,
    /// `requests.pmsAppointmentTypes`.
    #[serde(rename = "requests.pmsAppointmentTypes")]
    PmsAppointmentTypes,
    /// `requests.availableDocuments`.
    #[serde(rename = "requests.availableDocuments")]
    AvailableDocuments,
    /// `requests.uploadDocuments`.
    #[serde(rename = "requests.uploadDocuments")]
    UploadDocuments,
    /// `requests.clientSnapshots`.
    #[serde(rename = "requests.clientSnapshots")]
    ClientSnapshots,
    /// `requests.attachDocuments`.
    #[serde(rename = "requests.attachDocuments")]
    AttachDocuments,
}

impl SubscriptionTopic {
    /// Whether an event of request type `t` goes to a subscription of this topic.
    pub fn matches(self, t: RequestType) -> bool {
        let own = match self {
            Self::All => return true,
            Self::Bookings => RequestType::Bookings,
            Self::BookingUpdates => RequestType::BookingUpdates,
            Self::Availability => RequestType::Availability,
            Self::PmsAppointmentChanges => RequestType::PmsAppointmentChanges,
            Self::PmsResources => RequestType::PmsResources,
            Self::PmsAppointmentTypes => RequestType::PmsAppointmentTypes,
            Self::AvailableDocuments => RequestType::AvailableDocuments,
            Self::UploadDocuments => RequestType::UploadDocuments,
            Self::ClientSnapshots => RequestType::ClientSnapshots,
            Self::AttachDocuments => RequestType::AttachDocuments,
        };
        own == t
    }
}

/// `Paginated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paginated {
    /// `currentPage`.
    pub current_page: u64,
    /// `totalPages`.
    pub total_pages: u64,
    /// `perPage`.
    pub per_page: u64,
    /// `total`.
    pub total: u64,
}

/// A page of a list: `{data, page}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// `data`.
    pub data: Vec<T>,
    /// `page`.
    pub page: Paginated,
}

/// `BookingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum BookingStatus {
    /// `Requested`.
    Requested,
    /// `Confirmed`.
    Confirmed,
    /// `Cancelled`.
    Cancelled,
}

/// `Patient.gender`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Gender {
    /// `Male`.
    Male,
    /// `Female`.
    Female,
    /// `Other`.
    Other,
}

/// `Patient`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    /// `firstname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    /// `lastname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    /// `dob`, `DD-MM-YYYY` as the description says.
    #[serde(with = "fmt::dob", skip_serializing_if = "Option::is_none")]
    pub dob: Option<Date>,
    /// `phone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `suburb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suburb: Option<String>,
    /// `state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `postcode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// `gender` ("can be null").
    pub gender: Option<Gender>,
    /// `medicareNumber` ("can be null").
    pub medicare_number: Option<String>,
    /// `medicareIrn` ("can be null").
    pub medicare_irn: Option<String>,
    /// `medicareExpiry`, `m/Y` ("can be null").
    pub medicare_expiry: Option<String>,
}

/// The optional properties of `Patient` (none is required).
pub const PATIENT_PROPERTIES: [&str; 13] = [
    "firstname",
    "lastname",
    "dob",
    "phone",
    "email",
    "address",
    "suburb",
    "state",
    "postcode",
    "gender",
    "medicareNumber",
    "medicareIrn",
    "medicareExpiry",
];

/// `Booking` (`GET /requests/bookings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    /// `bookingId`.
    pub booking_id: i64,
    /// `pmsResourceId` ("may be null" when the resource was removed).
    pub pms_resource_id: Option<String>,
    /// `pmsAppointmentTypeId` ("can be null").
    pub pms_appointment_type_id: Option<String>,
    /// `pmsAppointmentIds` ("can be empty array").
    pub pms_appointment_ids: Vec<String>,
    /// `pmsPatientId` ("can be null").
    pub pms_patient_id: Option<String>,
    /// `bookedTime`, UTC.
    #[serde(with = "fmt::utc")]
    pub booked_time: Timestamp,
    /// `bookingStatus`.
    pub booking_status: BookingStatus,
    /// `pmsAppointmentTime`, practice time.
    #[serde(with = "fmt::local")]
    pub pms_appointment_time: DateTime,
    /// `pmsAppointmentLength`, seconds.
    pub pms_appointment_length: i64,
    /// `reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `comments`: the marketplace appointment type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    /// `patient`.
    pub patient: Patient,
    /// `telehealthUrl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telehealth_url: Option<String>,
    /// `isNewPatient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_new_patient: Option<bool>,
}

/// The properties of `Booking` (the schema requires none of them).
pub const BOOKING_PROPERTIES: [&str; 14] = [
    "bookingId",
    "pmsResourceId",
    "pmsAppointmentTypeId",
    "pmsAppointmentIds",
    "pmsPatientId",
    "bookedTime",
    "bookingStatus",
    "pmsAppointmentTime",
    "pmsAppointmentLength",
    "reason",
    "comments",
    "patient",
    "telehealthUrl",
    "isNewPatient",
];

/// `BookingUpdate` (`GET /requests/bookingUpdates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingUpdate {
    /// `requestId`.
    pub request_id: i64,
    /// `bookingId`.
    pub booking_id: i64,
    /// `pmsAppointmentIds`.
    pub pms_appointment_ids: Vec<String>,
    /// `pmsPatientId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pms_patient_id: Option<String>,
    /// `updatedAt`, UTC.
    #[serde(with = "fmt::utc")]
    pub updated_at: Timestamp,
    /// `bookingStatus`.
    pub booking_status: BookingStatus,
}

/// The optional properties of `BookingUpdate` that can be absent.
pub const BOOKING_UPDATE_OPTIONAL: [&str; 1] = ["pmsPatientId"];

/// `AvailabilityRequest` (`GET /requests/availability`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityRequest {
    /// `day`.
    #[serde(with = "fmt::date")]
    pub day: Date,
    /// `pms_resource_id` (deprecated duplicate).
    #[serde(rename = "pms_resource_id", skip_serializing_if = "Option::is_none")]
    pub pms_resource_id_deprecated: Option<String>,
    /// `pmsResourceId` (all resources when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pms_resource_id: Option<String>,
}

/// The optional properties of `AvailabilityRequest` that can be absent.
pub const AVAILABILITY_REQUEST_OPTIONAL: [&str; 2] = ["pms_resource_id", "pmsResourceId"];

/// `PmsAppointmentChangesRequest` (`GET /requests/pmsAppointmentChanges`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PmsAppointmentChangesRequest {
    /// `bookingId`.
    pub booking_id: i64,
    /// `pmsAppointmentIds`.
    pub pms_appointment_ids: Vec<String>,
    /// `pmsPatientId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pms_patient_id: Option<String>,
}

/// The optional properties of `PmsAppointmentChangesRequest` that can be absent.
pub const APPOINTMENT_CHANGES_OPTIONAL: [&str; 1] = ["pmsPatientId"];

/// `ConfirmBookingInsert` (request body; `pmsAppointmentIds` and `pmsPatientId` required).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmBookingInsert {
    /// `pmsAppointmentIds`.
    pub pms_appointment_ids: Vec<String>,
    /// `pmsPatientId`.
    pub pms_patient_id: String,
    /// `patientAppointmentLink`.
    #[serde(default, deserialize_with = "fmt::present")]
    pub patient_appointment_link: Option<String>,
    /// `patientAppointmentDescription`.
    #[serde(default, deserialize_with = "fmt::present")]
    pub patient_appointment_description: Option<String>,
    /// `practitionerAppointmentLink`.
    #[serde(default, deserialize_with = "fmt::present")]
    pub practitioner_appointment_link: Option<String>,
    /// `practitionerAppointmentDescription`.
    #[serde(default, deserialize_with = "fmt::present")]
    pub practitioner_appointment_description: Option<String>,
}

/// `RejectBookingInsert`, `RejectBookingUpdate`, `CancelBooking`, `DidNotAttendBooking`: one
/// optional, nullable `reason` (request body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// `reason` (`nullable: true`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// One range of an `AvailabilitySnapshot` (`start`, `end`, `slotLength` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityRange {
    /// `start`, `HH24:MI` practice time.
    #[serde(with = "fmt::hhmm")]
    pub start: Time,
    /// `end`, `HH24:MI` practice time.
    #[serde(with = "fmt::hhmm")]
    pub end: Time,
    /// `slotLength`, seconds.
    pub slot_length: i64,
    /// `pmsAppointmentTypeIds`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_appointment_type_ids: Option<Vec<String>>,
}

/// `AvailabilitySnapshot` (`date`, `pmsResourceId`, `availability` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilitySnapshot {
    /// `id`, for reference in a batch's errors.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// `date`, practice time.
    #[serde(with = "fmt::date")]
    pub date: Date,
    /// `pmsResourceId`.
    pub pms_resource_id: String,
    /// `availability`.
    pub availability: Vec<AvailabilityRange>,
}

/// One entry of the batch answer's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotError {
    /// `snapshot`: its id, or its index from 0.
    pub snapshot: String,
    /// `error`.
    pub error: String,
}

/// The answer of `POST /availability/snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SnapshotsResult {
    /// `created`.
    pub created: Vec<String>,
    /// `existing`.
    pub existing: Vec<String>,
    /// `failed`.
    pub failed: Vec<String>,
    /// `errors` ("only set when there is at least one failure").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SnapshotError>,
}

/// `PmsResource` (`pmsResourceId`, `pmsResourceName` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PmsResource {
    /// `pmsResourceId`.
    pub pms_resource_id: String,
    /// `pmsResourceName`.
    pub pms_resource_name: String,
    /// `pmsPractitionerTitle`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_practitioner_title: Option<String>,
    /// `pmsPractitionerFirstname`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_practitioner_firstname: Option<String>,
    /// `pmsPractitionerLastname`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_practitioner_lastname: Option<String>,
}

/// The optional properties of `PmsResource`.
pub const PMS_RESOURCE_OPTIONAL: [&str; 3] = [
    "pmsPractitionerTitle",
    "pmsPractitionerFirstname",
    "pmsPractitionerLastname",
];

/// `PmsAppointmentType` (`pmsAppointmentTypeId`, `pmsAppointmentTypeName` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PmsAppointmentType {
    /// `pmsAppointmentTypeId`.
    pub pms_appointment_type_id: String,
    /// `pmsAppointmentTypeName`.
    pub pms_appointment_type_name: String,
    /// `pmsAppointmentLength`, minutes (an integer).
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_appointment_length: Option<i64>,
    /// `pmsResourceId`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_resource_id: Option<String>,
}

/// The optional properties of `PmsAppointmentType`.
pub const PMS_APPOINTMENT_TYPE_OPTIONAL: [&str; 2] = ["pmsAppointmentLength", "pmsResourceId"];

/// `Range`, `HH24:MI` practice time. The schema lists `start` and `end` without marking them
/// required; a range without either bound means nothing, so the simulator requires both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// `start`.
    #[serde(with = "fmt::hhmm")]
    pub start: Time,
    /// `end` (`23:59` runs to midnight).
    #[serde(with = "fmt::hhmm")]
    pub end: Time,
}

impl Range {
    /// Whether a practice-local time falls in `[start, end)`; an `end` of 23:59 includes the
    /// rest of the day.
    pub fn contains(&self, t: Time) -> bool {
        let to_midnight = self.end.hour() == 23 && self.end.minute() == 59;
        t >= self.start && (t < self.end || to_midnight)
    }
}

/// `Schedule`: a `RangeSet` per weekday and `publicHolidays`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// `monday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub monday: Option<Vec<Range>>,
    /// `tuesday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub tuesday: Option<Vec<Range>>,
    /// `wednesday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub wednesday: Option<Vec<Range>>,
    /// `thursday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub thursday: Option<Vec<Range>>,
    /// `friday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub friday: Option<Vec<Range>>,
    /// `saturday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub saturday: Option<Vec<Range>>,
    /// `sunday`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub sunday: Option<Vec<Range>>,
    /// `publicHolidays` (kept and shown; the simulator knows no holidays, see the docs).
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_holidays: Option<Vec<Range>>,
}

impl Schedule {
    /// The ranges of a weekday.
    pub fn day(&self, weekday: jiff::civil::Weekday) -> &[Range] {
        use jiff::civil::Weekday::*;
        let d = match weekday {
            Monday => &self.monday,
            Tuesday => &self.tuesday,
            Wednesday => &self.wednesday,
            Thursday => &self.thursday,
            Friday => &self.friday,
            Saturday => &self.saturday,
            Sunday => &self.sunday,
        };
        d.as_deref().unwrap_or(&[])
    }

    /// Whether a practice-local date-time is inside the schedule (weekday hours only).
    pub fn contains(&self, dt: DateTime) -> bool {
        self.day(dt.weekday()).iter().any(|r| r.contains(dt.time()))
    }

    /// Every set of ranges with its property name.
    pub fn named(&self) -> [(&'static str, &Option<Vec<Range>>); 8] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
            ("publicHolidays", &self.public_holidays),
        ]
    }
}

/// `LivenessContract`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LivenessContract {
    /// `liveHours`.
    #[serde(
        default,
        deserialize_with = "fmt::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub live_hours: Option<Schedule>,
}

/// `Feature` (`id` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feature {
    /// `id`.
    pub id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `enabled`.
    pub enabled: bool,
}

/// `Subscription` as sent by an integration (`topic`, `callbackUrl` required; `id` names the
/// subscription to update).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionIn {
    /// `id`.
    #[serde(default, deserialize_with = "fmt::present")]
    pub id: Option<String>,
    /// `clientId`.
    #[serde(default, deserialize_with = "fmt::present")]
    pub client_id: Option<String>,
    /// `topic`.
    pub topic: SubscriptionTopic,
    /// `callbackUrl`.
    pub callback_url: String,
    /// `startAt`, UTC.
    #[serde(default, with = "fmt::utc_opt")]
    pub start_at: Option<Timestamp>,
    /// `expireAt`, UTC.
    #[serde(default, with = "fmt::utc_opt")]
    pub expire_at: Option<Timestamp>,
}

/// `Subscription` as the marketplace answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `id` (a UUID).
    pub id: String,
    /// `clientId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `topic`.
    pub topic: SubscriptionTopic,
    /// `callbackUrl`.
    pub callback_url: String,
    /// `startAt`, UTC.
    #[serde(with = "fmt::utc")]
    pub start_at: Timestamp,
    /// `expireAt`, UTC (no expiry when absent).
    #[serde(with = "fmt::utc_opt", skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<Timestamp>,
}

/// The optional properties of `Subscription` that can be absent in an answer.
pub const SUBSCRIPTION_OPTIONAL: [&str; 2] = ["clientId", "expireAt"];

/// `SubscriptionPayloadData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookData {
    /// `target`: the list to read (null for the refresh requests, which have none).
    pub target: Option<String>,
    /// `requestType`.
    pub request_type: RequestType,
    /// `bookingId`, if applicable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
    /// `requestId`, if applicable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<i64>,
}

/// The callback body (`SubscriptionErrorLogPayload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// `timestamp`, UTC, of the first attempt.
    #[serde(with = "fmt::utc")]
    pub timestamp: Timestamp,
    /// `id`: the subscription's id.
    pub id: String,
    /// `clientId` (nullable in the callback's schema).
    pub client_id: Option<String>,
    /// `topic`: the subscription's.
    pub topic: SubscriptionTopic,
    /// `data`.
    pub data: WebhookData,
}

/// `SubscriptionErrorLog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionErrorLog {
    /// `id` of this entry.
    pub id: String,
    /// `subscriptionId`.
    pub subscription_id: String,
    /// `subscriptionTopic`.
    pub subscription_topic: SubscriptionTopic,
    /// `clientId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `callbackUrl`.
    pub callback_url: String,
    /// `payload`.
    pub payload: WebhookPayload,
    /// `attempt`, from 1.
    pub attempt: i64,
    /// `errorType`.
    pub error_type: String,
    /// `errorMessage`.
    pub error_message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_strict() {
        assert!(fmt::parse_date("2026-11-30").is_ok());
        for bad in ["30-11-2026", "2026-1-30", "2026-11-30T00:00", "2026-02-30"] {
            assert!(fmt::parse_date(bad).is_err(), "{bad}");
        }
        assert!(fmt::parse_time("08:30").is_ok());
        for bad in ["8:30", "08:30:00", "24:00", "08h30"] {
            assert!(fmt::parse_time(bad).is_err(), "{bad}");
        }
        assert!(fmt::parse_utc("2026-11-30 23:59:59").is_ok());
        for bad in ["2026-11-30T23:59:59Z", "2026-11-30 23:59", "2026-11-30"] {
            assert!(fmt::parse_utc(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_nulls_and_enum_values_are_refused() {
        let ok: Result<SubscriptionIn, _> = serde_json::from_str(
            r#"{"topic": "requests.*", "callbackUrl": "http://x/y", "expireAt": "2030-01-01 00:00:00"}"#,
        );
        assert!(ok.is_ok(), "{ok:?}");
        for bad in [
            r#"{"topic": "requests.all", "callbackUrl": "http://x"}"#,
            r#"{"topic": "requests.*", "callbackUrl": "http://x", "secret": "s"}"#,
            r#"{"topic": "requests.*", "callbackUrl": "http://x", "clientId": null}"#,
            r#"{"topic": "requests.*"}"#,
        ] {
            assert!(
                serde_json::from_str::<SubscriptionIn>(bad).is_err(),
                "{bad}"
            );
        }
        let r: ReasonBody = serde_json::from_str(r#"{"reason": null}"#).unwrap();
        assert_eq!(r.reason, None, "reason is nullable");
    }
}
