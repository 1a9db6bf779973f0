//! The wire types of the Healthengine PMS API v1.9.0: one definition of each, shared by the
//! client (`crate::client`) and the simulator (`slotbridge-market-sim`).
//!
//! Field names follow the spec exactly (camelCase); times use the helpers in [`crate::format`].
//! Optional fields are `Option`; a `None` is sent as `null` only where the spec says the field
//! "can be null", and omitted otherwise.
//!
//! What the client reads from the marketplace (bookings, booking updates, the other requests,
//! error logs, features, webhook payloads) is read tolerantly (the spec marks nothing on them as
//! required): `null` or a missing field takes a default, a number is taken where text is
//! expected, an enum value the client does not know becomes `None` or `Other`, and unknown
//! fields are ignored (see `crate::lenient`). Only the fields a request cannot be answered
//! without (ids, the appointment's time, a requested day) make it unreadable. The answers that
//! echo what the integration sends (PMS resources, appointment types, subscriptions, the
//! liveness contract) are read the same way: `null` where the spec allows a value to be absent,
//! numbers as text, unknown fields ignored, an unknown subscription topic as
//! [`SubscriptionTopic::Other`]; only a resource's or type's id and name are needed. Sending is
//! unchanged: what the integration sends keeps the spec's strict shape. The simulator has its
//! own wire types (`slotbridge-market-sim`), so its strictness does not depend on these.

use jiff::{
    Timestamp,
    civil::{Date, DateTime, Time},
};
use serde::{Deserialize, Serialize};

use crate::{format, lenient};

/// A request type, as listed by the poll (`GET /requests`) and named in webhook payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestType {
    /// Bookings waiting to be inserted into the PMS (`/requests/bookings`).
    Bookings,
    /// Changes to bookings, mostly cancellations (`/requests/bookingUpdates`).
    BookingUpdates,
    /// Days whose availability the marketplace wants refreshed (`/requests/availability`).
    Availability,
    /// Bookings whose PMS appointment state is wanted (`/requests/pmsAppointmentChanges`).
    PmsAppointmentChanges,
    /// A PMS resources snapshot is wanted (answered by `POST /config/pmsResources/snapshot`).
    PmsResources,
    /// A PMS appointment types snapshot is wanted (answered by `POST /config/pmsAppointmentTypes/snapshot`).
    PmsAppointmentTypes,
    /// Extra feature `documents`: available documents are wanted.
    AvailableDocuments,
    /// Extra feature `documents`: documents to upload.
    UploadDocuments,
    /// Extra feature `clientSnapshots`: client snapshots are wanted.
    ClientSnapshots,
    /// Extra feature `attachDocuments`: documents to attach to patients.
    AttachDocuments,
}

impl RequestType {
    /// Every request type, in the spec's order.
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

    /// The wire name, e.g. `bookingUpdates`.
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

    /// The endpoint that lists requests of this type, or `None` for the two refresh requests
    /// (`pmsResources`, `pmsAppointmentTypes`), which are answered by sending a snapshot.
    pub fn target(self) -> Option<&'static str> {
        match self {
            Self::PmsResources | Self::PmsAppointmentTypes => None,
            Self::Bookings => Some("/requests/bookings"),
            Self::BookingUpdates => Some("/requests/bookingUpdates"),
            Self::Availability => Some("/requests/availability"),
            Self::PmsAppointmentChanges => Some("/requests/pmsAppointmentChanges"),
            Self::AvailableDocuments => Some("/requests/availableDocuments"),
            Self::UploadDocuments => Some("/requests/uploadDocuments"),
            Self::ClientSnapshots => Some("/requests/clientSnapshots"),
            Self::AttachDocuments => Some("/requests/attachDocuments"),
        }
    }

    /// Processing priority (lower first). Bookings come before everything that depends on a
    /// booking existing (updates, appointment changes, documents), as suggested-testing.md asks.
    pub fn priority(self) -> u8 {
        match self {
            Self::Bookings => 0,
            Self::BookingUpdates => 1,
            Self::Availability => 2,
            Self::PmsAppointmentChanges => 3,
            Self::PmsResources => 4,
            Self::PmsAppointmentTypes => 5,
            Self::AvailableDocuments => 6,
            Self::UploadDocuments => 7,
            Self::AttachDocuments => 8,
            Self::ClientSnapshots => 9,
        }
    }

    /// Whether the marketplace counts an unanswered request of this type against the
    /// integration's health (bookings, booking updates and availability requests).
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            Self::Bookings | Self::BookingUpdates | Self::Availability
        )
    }

    /// Sort request types by [`RequestType::priority`].
    pub fn by_priority(mut types: Vec<RequestType>) -> Vec<RequestType> {
        types.sort_by_key(|t| t.priority());
        types.dedup();
        types
    }
}

impl std::fmt::Display for RequestType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pagination information of a request list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paginated {
    /// The page returned, from 1.
    pub current_page: u64,
    /// How many pages there are.
    pub total_pages: u64,
    /// Items per page.
    pub per_page: u64,
    /// Items in all pages.
    pub total: u64,
}

/// One page of a request list: `{"data": [...], "page": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Where this page is.
    pub page: Paginated,
}

/// A booking's status on the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BookingStatus {
    /// Waiting for the PMS to confirm the insert (or for the 20 s auto-confirm).
    Requested,
    /// Confirmed, by the PMS or by the auto-confirm.
    Confirmed,
    /// Cancelled.
    Cancelled,
    /// A status this client does not know (or none, on a booking update).
    #[serde(other)]
    Other,
}

impl BookingStatus {
    /// The wire name, e.g. `Requested`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "Requested",
            Self::Confirmed => "Confirmed",
            Self::Cancelled => "Cancelled",
            Self::Other => "Other",
        }
    }
}

/// A patient's gender as the marketplace records it. A value outside the spec's three is read
/// as no gender (`None`), not guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
}

impl Gender {
    /// The wire name, e.g. `Female`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Male => "Male",
            Self::Female => "Female",
            Self::Other => "Other",
        }
    }
}

/// The patient of a booking, as entered on the marketplace.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    /// First name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub firstname: Option<String>,
    /// Last name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub lastname: Option<String>,
    /// Date of birth, `DD-MM-YYYY` on the wire (read in `YYYY-MM-DD` too).
    #[serde(
        default,
        serialize_with = "format::dob_opt::serialize",
        deserialize_with = "lenient::dob_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub dob: Option<Date>,
    /// Phone number as entered.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone: Option<String>,
    /// Email address as entered.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
    /// Street address.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub address: Option<String>,
    /// Suburb.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub suburb: Option<String>,
    /// State.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<String>,
    /// Postcode.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub postcode: Option<String>,
    /// Gender (can be null; a value outside the spec's is read as `None`).
    #[serde(default, deserialize_with = "lenient::gender")]
    pub gender: Option<Gender>,
    /// Medicare card number (can be null).
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub medicare_number: Option<String>,
    /// Medicare individual reference number (can be null).
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub medicare_irn: Option<String>,
    /// Medicare card expiry, `m/Y` (can be null).
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub medicare_expiry: Option<String>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient").finish_non_exhaustive()
    }
}

/// A booking waiting to be inserted into the PMS (`GET /requests/bookings`).
///
/// Read tolerantly: only `bookingId` and `pmsAppointmentTime` are needed (a booking without them
/// is reported unreadable, see [`crate::read`]); a missing `bookedTime` is taken as the time the
/// list was read, a missing `bookingStatus` as `Requested`, a missing `pmsAppointmentLength` as 0
/// (unknown: the PMS appointment type's length applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    /// The marketplace's booking id.
    #[serde(deserialize_with = "lenient::id")]
    pub booking_id: i64,
    /// The PMS resource booked; null when the resource was removed since: reject such a booking.
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub pms_resource_id: Option<String>,
    /// The PMS appointment type linked to the booked marketplace type (can be null).
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub pms_appointment_type_id: Option<String>,
    /// PMS appointment ids already known (can be empty).
    #[serde(default, deserialize_with = "lenient::text_list")]
    pub pms_appointment_ids: Vec<String>,
    /// PMS patient id already known (can be null).
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub pms_patient_id: Option<String>,
    /// When the patient booked, UTC.
    #[serde(
        serialize_with = "format::utc::serialize",
        deserialize_with = "lenient::utc"
    )]
    pub booked_time: Timestamp,
    /// The booking's status.
    #[serde(
        default = "lenient::requested",
        deserialize_with = "lenient::booking_status"
    )]
    pub booking_status: BookingStatus,
    /// The appointment's start, in the practice's civil time.
    #[serde(
        serialize_with = "format::local::serialize",
        deserialize_with = "lenient::local"
    )]
    pub pms_appointment_time: DateTime,
    /// The appointment's length in seconds (0 when the marketplace did not say).
    #[serde(default, deserialize_with = "lenient::int_or_zero")]
    pub pms_appointment_length: i64,
    /// What the patient wrote, if the booking form asked.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// The marketplace appointment type's name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub comments: Option<String>,
    /// The patient (empty when the marketplace sent none).
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub patient: Patient,
    /// A telehealth URL for the practitioner, when the marketplace provides one.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub telehealth_url: Option<String>,
    /// Whether the patient says they are new to the practice.
    #[serde(
        default,
        deserialize_with = "lenient::bool_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_new_patient: Option<bool>,
}

/// A change to a booking, almost always a cancellation (`GET /requests/bookingUpdates`).
///
/// Read tolerantly: `requestId` and `bookingId` are needed to answer it; a missing `updatedAt`
/// is taken as the time the list was read, a missing or unknown `bookingStatus` as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingUpdate {
    /// The request's id; sequential.
    #[serde(deserialize_with = "lenient::id")]
    pub request_id: i64,
    /// The booking to change.
    #[serde(deserialize_with = "lenient::id")]
    pub booking_id: i64,
    /// The PMS appointment ids given when the insert was confirmed.
    #[serde(default, deserialize_with = "lenient::text_list")]
    pub pms_appointment_ids: Vec<String>,
    /// The PMS patient id given when the insert was confirmed.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_patient_id: Option<String>,
    /// When the change was asked for, UTC.
    #[serde(
        serialize_with = "format::utc::serialize",
        deserialize_with = "lenient::utc"
    )]
    pub updated_at: Timestamp,
    /// The status the booking is asked to take.
    #[serde(
        default = "lenient::other",
        deserialize_with = "lenient::update_status"
    )]
    pub booking_status: BookingStatus,
}

/// A day (and optionally one resource) whose availability the marketplace wants refreshed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityRequest {
    /// The practice-local day to send a snapshot for (needed).
    #[serde(deserialize_with = "lenient::date")]
    pub day: Date,
    /// Deprecated duplicate of `pmsResourceId`.
    #[serde(
        rename = "pms_resource_id",
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_resource_id_deprecated: Option<String>,
    /// The resource to send a snapshot for; all resources when absent.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_resource_id: Option<String>,
}

impl AvailabilityRequest {
    /// The resource asked for, from `pmsResourceId` or else the deprecated `pms_resource_id`.
    pub fn resource(&self) -> Option<&str> {
        self.pms_resource_id
            .as_deref()
            .or(self.pms_resource_id_deprecated.as_deref())
    }
}

/// A booking whose PMS appointment state is wanted (`GET /requests/pmsAppointmentChanges`);
/// answered by `cancel`, `didNotAttend` or `noPmsAppointmentChange`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PmsAppointmentChangesRequest {
    /// The booking.
    #[serde(deserialize_with = "lenient::id")]
    pub booking_id: i64,
    /// Its PMS appointment ids.
    #[serde(default, deserialize_with = "lenient::text_list")]
    pub pms_appointment_ids: Vec<String>,
    /// Its PMS patient id.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_patient_id: Option<String>,
}

/// Extra feature `documents`: a booking whose available documents are wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableDocumentsRequest {
    /// The booking.
    #[serde(deserialize_with = "lenient::id")]
    pub booking_id: i64,
    /// Its PMS appointment ids.
    #[serde(default, deserialize_with = "lenient::text_list")]
    pub pms_appointment_ids: Vec<String>,
    /// Its PMS patient id.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_patient_id: Option<String>,
}

/// Extra feature `documents`: a document to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadDocumentsRequest {
    /// The booking.
    #[serde(deserialize_with = "lenient::id")]
    pub booking_id: i64,
    /// Its PMS appointment ids.
    #[serde(default, deserialize_with = "lenient::text_list")]
    pub pms_appointment_ids: Vec<String>,
    /// Its PMS patient id.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_patient_id: Option<String>,
    /// The PMS document to upload.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_document_id: Option<String>,
}

/// Which date a client snapshot is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSnapshotDateType {
    /// Appointments on the date.
    ApptDatetime,
    /// Appointments created on the date.
    ApptCreationDatetime,
}

/// Extra feature `clientSnapshots`: a date to send a client snapshot for. Both fields are
/// needed: a request without them, or with a `dateType` the client does not know, is unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSnapshotRequest {
    /// The practice-local date.
    #[serde(deserialize_with = "lenient::date")]
    pub date: Date,
    /// What the date selects.
    pub date_type: ClientSnapshotDateType,
}

/// Extra feature `attachDocuments`: a document from the marketplace to attach to a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachDocumentRequest {
    /// The request's id.
    #[serde(deserialize_with = "lenient::id")]
    pub request_id: i64,
    /// The PMS patient.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_patient_id: Option<String>,
    /// The PMS appointment, when the document relates to one.
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub pms_appointment_id: Option<String>,
    /// The marketplace booking, when the document relates to one.
    #[serde(default, deserialize_with = "lenient::id_opt")]
    pub booking_id: Option<i64>,
    /// The marketplace's document id.
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub document_id: Option<String>,
    /// Category, e.g. `NEW PATIENT FORM`.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_type: Option<String>,
    /// Name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_name: Option<String>,
    /// Description.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_description: Option<String>,
    /// MIME type.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_format: Option<String>,
    /// Size in bytes.
    #[serde(
        default,
        deserialize_with = "lenient::int_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_size: Option<i64>,
    /// SHA-1 of the content.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_hash: Option<String>,
    /// When the document was created, UTC.
    #[serde(
        default,
        serialize_with = "format::utc_opt::serialize",
        deserialize_with = "lenient::utc_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<Timestamp>,
}

/// Body of `POST /bookings/{bookingId}/confirmInsert`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmBookingInsert {
    /// The PMS appointments created for the booking.
    pub pms_appointment_ids: Vec<String>,
    /// The PMS patient the booking was matched to or created as.
    pub pms_patient_id: String,
    /// Telehealth link for the patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_appointment_link: Option<String>,
    /// Instructions to go with the patient's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_appointment_description: Option<String>,
    /// Telehealth link for the practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner_appointment_link: Option<String>,
    /// Instructions to go with the practitioner's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner_appointment_description: Option<String>,
}

/// Body of `rejectInsert`, `rejectUpdate`, `cancel` and `didNotAttend`: an optional reason, for
/// the marketplace's support staff only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReasonBody {
    /// The reason (nullable).
    #[serde(default)]
    pub reason: Option<String>,
}

impl ReasonBody {
    /// A body with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
        }
    }
}

/// One availability range of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityRange {
    /// Start, `HH24:MI` practice time.
    #[serde(with = "format::hhmm")]
    pub start: Time,
    /// End, `HH24:MI` practice time.
    #[serde(with = "format::hhmm")]
    pub end: Time,
    /// Slot length in seconds; below 60 the marketplace's configured appointment length is used.
    pub slot_length: i64,
    /// The PMS appointment types this range is for; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pms_appointment_type_ids: Option<Vec<String>>,
}

/// The availability of one PMS resource for one practice-local day. Replace semantics: it
/// replaces whatever was published for that resource and day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilitySnapshot {
    /// Optional id, echoed in batch results instead of the array index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The practice-local day.
    pub date: Date,
    /// The resource.
    pub pms_resource_id: String,
    /// The free ranges; empty means nothing is bookable that day.
    pub availability: Vec<AvailabilityRange>,
}

/// Response of `POST /availability/snapshots`. Each entry is the snapshot's `id` when it had
/// one, else its index in the request array (from 0) as a string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotsResult {
    /// Accepted and queued.
    #[serde(default)]
    pub created: Vec<String>,
    /// Ignored: identical (same hash) to what was sent before.
    #[serde(default)]
    pub existing: Vec<String>,
    /// Failed validation; see `errors`.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Why each failed one failed (present only when one failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SnapshotError>,
}

/// Why a snapshot in a batch failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotError {
    /// The snapshot's id or index.
    pub snapshot: String,
    /// The reason.
    pub error: String,
}

/// A PMS resource: an appointment book (practitioner, or practitioner and specialty, or room).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PmsResource {
    /// Unique id.
    #[serde(deserialize_with = "lenient::text_required")]
    pub pms_resource_id: String,
    /// Unique name.
    #[serde(deserialize_with = "lenient::text_required")]
    pub pms_resource_name: String,
    /// Title, e.g. `Dr`.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_practitioner_title: Option<String>,
    /// First name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_practitioner_firstname: Option<String>,
    /// Last name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_practitioner_lastname: Option<String>,
}

/// A PMS appointment type (booking reason), for all resources or for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PmsAppointmentType {
    /// Unique id.
    #[serde(deserialize_with = "lenient::text_required")]
    pub pms_appointment_type_id: String,
    /// Unique name.
    #[serde(deserialize_with = "lenient::text_required")]
    pub pms_appointment_type_name: String,
    /// Length in minutes.
    #[serde(
        default,
        deserialize_with = "lenient::int_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_appointment_length: Option<i64>,
    /// The one resource this type is for; all resources when absent.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pms_resource_id: Option<String>,
}

/// A range of practice-local time, `HH24:MI` to `HH24:MI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    /// Start (read with or without seconds).
    #[serde(
        serialize_with = "format::hhmm::serialize",
        deserialize_with = "lenient::hhmm"
    )]
    pub start: Time,
    /// End (read with or without seconds).
    #[serde(
        serialize_with = "format::hhmm::serialize",
        deserialize_with = "lenient::hhmm"
    )]
    pub end: Time,
}

impl TimeRange {
    /// Whether `t` is within `[start, end)`; an end of `23:59` includes the last minute.
    pub fn contains(&self, t: Time) -> bool {
        let end_inclusive = self.end.hour() == 23 && self.end.minute() == 59;
        t >= self.start
            && (t < self.end || (end_inclusive && t <= jiff::civil::time(23, 59, 59, 999_999_999)))
    }
}

/// The hours of each weekday (and public holidays) in practice-local time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Mondays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monday: Option<Vec<TimeRange>>,
    /// Tuesdays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuesday: Option<Vec<TimeRange>>,
    /// Wednesdays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wednesday: Option<Vec<TimeRange>>,
    /// Thursdays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thursday: Option<Vec<TimeRange>>,
    /// Fridays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friday: Option<Vec<TimeRange>>,
    /// Saturdays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturday: Option<Vec<TimeRange>>,
    /// Sundays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunday: Option<Vec<TimeRange>>,
    /// Public holidays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_holidays: Option<Vec<TimeRange>>,
}

impl Schedule {
    /// The ranges of a weekday (empty when none are given).
    pub fn day(&self, weekday: jiff::civil::Weekday) -> &[TimeRange] {
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

    /// Whether the practice-local date-time falls in this schedule (public holidays are not
    /// known here, so the weekday's hours apply).
    pub fn contains(&self, dt: DateTime) -> bool {
        self.day(dt.weekday()).iter().any(|r| r.contains(dt.time()))
    }
}

/// The hours in which the integration promises to answer requests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LivenessContract {
    /// The live hours (none when the answer has `null`).
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub live_hours: Schedule,
}

/// An extra feature (documents, clientSnapshots, attachDocuments, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Feature id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: String,
    /// Name.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// Description.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// Whether it is enabled (false by default).
    #[serde(
        default,
        deserialize_with = "lenient::bool_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
}

/// A webhook subscription topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriptionTopic {
    /// Every request type.
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
    /// A topic this client does not know (a newer API's), as read; it matches no request type
    /// and is never sent (the client refuses to).
    #[serde(other)]
    Other,
}

impl SubscriptionTopic {
    /// The topic of one request type.
    pub fn of(t: RequestType) -> Self {
        match t {
            RequestType::Bookings => Self::Bookings,
            RequestType::BookingUpdates => Self::BookingUpdates,
            RequestType::Availability => Self::Availability,
            RequestType::PmsAppointmentChanges => Self::PmsAppointmentChanges,
            RequestType::PmsResources => Self::PmsResources,
            RequestType::PmsAppointmentTypes => Self::PmsAppointmentTypes,
            RequestType::AvailableDocuments => Self::AvailableDocuments,
            RequestType::UploadDocuments => Self::UploadDocuments,
            RequestType::ClientSnapshots => Self::ClientSnapshots,
            RequestType::AttachDocuments => Self::AttachDocuments,
        }
    }

    /// Whether an event of request type `t` is delivered to a subscription on this topic.
    pub fn matches(self, t: RequestType) -> bool {
        self == Self::All || self == Self::of(t)
    }
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The marketplace's id (UUID); ignored when creating.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// The caller's own id, echoed in every event.
    #[serde(
        default,
        deserialize_with = "lenient::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id: Option<String>,
    /// The topic (read as [`SubscriptionTopic::Other`] when missing or unknown).
    #[serde(default = "lenient::other_topic", deserialize_with = "lenient::topic")]
    pub topic: SubscriptionTopic,
    /// Where events are POSTed (empty when the answer has none).
    #[serde(default, deserialize_with = "lenient::text")]
    pub callback_url: String,
    /// From when, UTC (now when absent).
    #[serde(
        default,
        serialize_with = "format::utc_opt::serialize",
        deserialize_with = "lenient::utc_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_at: Option<Timestamp>,
    /// Until when, UTC (no expiry when absent).
    #[serde(
        default,
        serialize_with = "format::utc_opt::serialize",
        deserialize_with = "lenient::utc_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expire_at: Option<Timestamp>,
}

/// The `data` of a webhook payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookData {
    /// The endpoint to call; null for the refresh requests.
    #[serde(default)]
    pub target: Option<String>,
    /// The request type, e.g. `bookings`.
    pub request_type: RequestType,
    /// The booking that triggered the event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
    /// The request that triggered the event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<i64>,
}

/// The skinny payload POSTed to a subscription's callback URL. It carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// When the event was first sent, UTC (the same on every retry).
    #[serde(with = "format::utc")]
    pub timestamp: Timestamp,
    /// The subscription's id (per the spec; it is not unique per event).
    pub id: String,
    /// The subscription's `clientId`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The subscription's topic.
    pub topic: SubscriptionTopic,
    /// What happened.
    pub data: WebhookData,
}

/// One failed webhook attempt (`GET /subscriptionErrorLog`). Read tolerantly (missing texts are
/// empty); an entry whose topic or payload cannot be read is reported unreadable on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionErrorLog {
    /// When the attempt failed, UTC.
    #[serde(
        default,
        serialize_with = "format::utc_opt::serialize",
        deserialize_with = "lenient::utc_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<Timestamp>,
    /// The log entry's id.
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: String,
    /// The subscription.
    #[serde(default, deserialize_with = "lenient::text")]
    pub subscription_id: String,
    /// Its topic.
    pub subscription_topic: SubscriptionTopic,
    /// Its client id.
    #[serde(default, deserialize_with = "lenient::text_opt")]
    pub client_id: Option<String>,
    /// The URL called.
    #[serde(default, deserialize_with = "lenient::text")]
    pub callback_url: String,
    /// What was sent.
    pub payload: WebhookPayload,
    /// Which attempt (1 to 4).
    #[serde(default, deserialize_with = "lenient::int_or_zero")]
    pub attempt: i64,
    /// The kind of error.
    #[serde(default, deserialize_with = "lenient::text")]
    pub error_type: String,
    /// What went wrong.
    #[serde(default, deserialize_with = "lenient::text")]
    pub error_message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booking_reads_the_spec_shape() {
        let b: Booking = serde_json::from_value(json!({
            "bookingId": 154, "pmsResourceId": null, "pmsAppointmentTypeId": "G1",
            "pmsAppointmentIds": [], "pmsPatientId": null,
            "bookedTime": "2023-12-01 01:13:55", "bookingStatus": "Requested",
            "pmsAppointmentTime": "2023-12-02 09:30:00", "pmsAppointmentLength": 1800,
            "patient": {"firstname": "Ann", "lastname": "Lee", "dob": "23-02-1990", "gender": null}
        }))
        .unwrap();
        assert_eq!(b.pms_resource_id, None);
        assert_eq!(b.patient.dob, Some(jiff::civil::date(1990, 2, 23)));
        assert_eq!(
            b.pms_appointment_time,
            jiff::civil::date(2023, 12, 2).at(9, 30, 0, 0)
        );
        let back = serde_json::to_value(&b).unwrap();
        assert_eq!(back["bookedTime"], "2023-12-01 01:13:55");
        assert_eq!(back["patient"]["dob"], "23-02-1990");
        assert_eq!(back["pmsResourceId"], serde_json::Value::Null);
    }

    #[test]
    fn snapshot_ranges_are_hours_and_minutes_with_slot_length_in_seconds() {
        let s: AvailabilitySnapshot = serde_json::from_value(json!({
            "date": "2023-10-01", "pmsResourceId": "12345",
            "availability": [{"start": "09:00", "end": "12:00", "slotLength": 1800}]
        }))
        .unwrap();
        assert_eq!(s.availability[0].slot_length, 1800);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["availability"][0]["start"], "09:00");
        assert!(v.get("id").is_none());
    }

    #[test]
    fn topics_and_request_types_use_the_spec_names() {
        assert_eq!(
            serde_json::to_value(SubscriptionTopic::All).unwrap(),
            "requests.*"
        );
        for t in RequestType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert!(SubscriptionTopic::All.matches(t));
            assert!(SubscriptionTopic::of(t).matches(t));
        }
        let sorted = RequestType::by_priority(vec![
            RequestType::PmsAppointmentChanges,
            RequestType::BookingUpdates,
            RequestType::Bookings,
        ]);
        assert_eq!(sorted[0], RequestType::Bookings);
    }

    #[test]
    fn liveness_contract_contains_checks_the_weekday() {
        let c: LivenessContract = serde_json::from_value(json!({
            "liveHours": {"monday": [{"start": "08:00", "end": "17:00"}],
                          "friday": [{"start": "12:00", "end": "23:59"}]}
        }))
        .unwrap();
        // 2026-11-23 is a Monday.
        assert!(
            c.live_hours
                .contains(jiff::civil::date(2026, 11, 23).at(8, 0, 0, 0))
        );
        assert!(
            !c.live_hours
                .contains(jiff::civil::date(2026, 11, 23).at(17, 0, 0, 0))
        );
        assert!(
            !c.live_hours
                .contains(jiff::civil::date(2026, 11, 24).at(9, 0, 0, 0))
        );
        assert!(
            c.live_hours
                .contains(jiff::civil::date(2026, 11, 27).at(23, 59, 30, 0))
        );
    }
}
