//! The JSON shapes of the simulator's API, as documented in `docs/pms-api.md`.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use slotbridge_domain::practice::{
    Attendance, BlockKind, BookingSource, DiaryAppointment, DiaryBlock,
};

/// A page of a list: the items and the cursor of the next page (`null` on the last page).
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` when there is none.
    pub next_cursor: Option<String>,
}

/// `GET …/practice`.
#[derive(Debug, Clone, Serialize)]
pub struct PracticeOut {
    /// Site slug.
    pub slug: String,
    /// Practice name.
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// Phone number.
    pub phone: String,
    /// Diary interval in minutes (5, 10 or 15).
    pub interval_minutes: u32,
    /// The organisation this site is a location of (`null` for a practice on its own).
    pub organisation: Option<crate::practice::Organisation>,
}

/// `GET …/web-setup`.
#[derive(Debug, Clone, Serialize)]
pub struct WebSetupOut<'a> {
    /// The Appointment Stacking switch.
    pub stacking: bool,
    /// Booking reasons with their providers.
    pub reasons: &'a [slotbridge_domain::practice::PmsReason],
}

/// An appointment as the API shows it: instants with the practice's offset on that date.
#[derive(Debug, Clone, Serialize)]
pub struct AppointmentOut {
    /// Appointment id.
    pub id: String,
    /// Practitioner id.
    pub practitioner: String,
    /// Start, RFC 3339 with offset.
    pub start: String,
    /// End, RFC 3339 with offset.
    pub end: String,
    /// Booking reason id.
    pub reason: Option<String>,
    /// Patient id.
    pub patient: Option<String>,
    /// Notes.
    pub notes: String,
    /// `desk` or `online`.
    pub source: BookingSource,
    /// External reference of an online insert.
    pub external_ref: Option<String>,
    /// `booked` or `did_not_attend` (marked at the desk once the appointment has started).
    pub status: Attendance,
}

impl AppointmentOut {
    /// Render a diary appointment in time zone `tz`.
    pub fn new(a: &DiaryAppointment, tz: &TimeZone) -> Self {
        Self {
            id: a.id.clone(),
            practitioner: a.practitioner.clone(),
            start: rfc3339(a.start, tz),
            end: rfc3339(a.end, tz),
            reason: a.reason.clone(),
            patient: a.patient.clone(),
            notes: a.notes.clone(),
            source: a.source,
            external_ref: a.external_ref.clone(),
            status: a.attendance,
        }
    }
}

/// A dated block as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockOut {
    /// Block id.
    pub id: String,
    /// Practitioner id, or `null` for everyone.
    pub practitioner: Option<String>,
    /// `meeting`, `lunch` or `holiday`.
    pub kind: BlockKind,
    /// Practice-local date.
    pub date: Date,
    /// Start, RFC 3339 with offset.
    pub start: String,
    /// End, RFC 3339 with offset.
    pub end: String,
}

impl BlockOut {
    /// Render a block in time zone `tz`.
    pub fn new(b: &DiaryBlock, tz: &TimeZone) -> Self {
        Self {
            id: b.id.clone(),
            practitioner: b.practitioner.clone(),
            kind: b.kind,
            date: b.date,
            start: rfc3339(b.start.on(b.date), tz),
            end: rfc3339(b.end.on(b.date), tz),
        }
    }
}

/// A closed date.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedDateOut {
    /// Practice-local date.
    pub date: Date,
}

/// A civil date-time in `tz`, as RFC 3339 with the offset in force at that instant.
pub fn rfc3339(dt: DateTime, tz: &TimeZone) -> String {
    match dt.to_zoned_datetime(tz.clone()) {
        Ok(z) => z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => format!("{}Z", dt.strftime("%Y-%m-%dT%H:%M:%S")),
    }
}

/// Parse an RFC 3339 instant with offset into civil time in `tz`. `field` names it in errors.
pub fn parse_instant(s: &str, tz: &TimeZone, field: &str) -> Result<DateTime, String> {
    let ts: jiff::Timestamp = s.parse().map_err(|_| {
        format!("{field}: expected an RFC 3339 date-time with an offset, found {s:?}")
    })?;
    Ok(ts.to_zoned_datetime(tz.clone()).datetime())
}

/// The body of an online insert (`POST …/appointments`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertIn {
    /// Practitioner id.
    pub practitioner: String,
    /// Start, RFC 3339 with offset.
    pub start: String,
    /// End, RFC 3339 with offset.
    pub end: String,
    /// Booking reason id (optional; without one the Online Booking Configuration duration applies).
    #[serde(default)]
    pub reason: Option<String>,
    /// Patient id (required).
    pub patient: String,
    /// Notes.
    #[serde(default)]
    pub notes: String,
    /// The booker's reference; the insert is idempotent on it.
    pub external_ref: String,
}
