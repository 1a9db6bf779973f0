//! The diary snapshot: a practice's online-booking setup and diary, as the availability engine
//! reads it. The JSON shape is the contract documented in `docs/snapshot.md`; unknown fields are
//! ignored so that producers may add more.

use serde::{Deserialize, Serialize};

mod json;
mod validate;

pub use json::JsonError;
pub use validate::{
    Day, DayZone, DiaryIndex, Problem, SnapshotError, ValidPractitioner, ValidReason, ValidRule,
    ValidSnapshot,
};

/// A practice's setup and diary at one instant (`now`), in the practice's civil time.
///
/// This is the raw, deserialized form. [`Snapshot::validate`] checks every field and gives the
/// [`ValidSnapshot`] that the availability engine reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// IANA time zone name of the practice, e.g. `Australia/Sydney`.
    pub timezone: String,
    /// The instant the snapshot was taken, RFC 3339 with an offset.
    pub now: String,
    /// Days to publish from the practice-local date of `now`: 1..=90, default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_days: Option<u32>,
    /// The diary grid in minutes: 1..=60 and dividing 1440.
    pub interval_minutes: u32,
    /// The PMS's Appointment Stacking switch.
    pub stacking: bool,
    /// Minimum notice before a slot may start, in minutes; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_notice_minutes: Option<u32>,
    /// At most this many slots per practitioner, reason, practice-local date and day segment
    /// (morning before 12:00, afternoon 12:00 to 17:00, evening from 17:00): the earliest ones.
    /// Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day_segment: Option<u32>,
    /// The practitioners and their weekly hours.
    #[serde(default)]
    pub practitioners: Vec<Practitioner>,
    /// The booking reasons published online, each with its per-practitioner rules.
    #[serde(default)]
    pub booking_reasons: Vec<BookingReason>,
    /// The diary's appointments.
    #[serde(default)]
    pub appointments: Vec<Appointment>,
    /// The diary's dated blocks.
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// Practice-local dates (`YYYY-MM-DD`) on which the practice is shut.
    #[serde(default)]
    pub closed_dates: Vec<String>,
}

/// A practitioner's weekly hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Practitioner {
    /// The PMS's practitioner id, unique in the snapshot.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Weekly working sessions; overlapping sessions are joined.
    #[serde(default)]
    pub sessions: Vec<WeeklyWindow>,
    /// Weekly breaks, taken out of the sessions.
    #[serde(default)]
    pub breaks: Vec<WeeklyWindow>,
}

/// A weekly recurring window: on each of `days` (`mon`..`sun`), from `start` to `end` (`HH:MM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    /// Weekdays: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    pub days: Vec<String>,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Local end time, `HH:MM`; `24:00` is the end of the day.
    pub end: String,
}

/// A booking reason (an appointment type on the marketplace) and its per-practitioner rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingReason {
    /// The PMS's reason id, unique in the snapshot.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Which practitioners publish this reason, and how.
    #[serde(default)]
    pub providers: Vec<ProviderRule>,
}

/// "Configure Providers": one practitioner's publishing rule for a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRule {
    /// The practitioner's id.
    pub practitioner: String,
    /// The appointment's length for this practitioner, in minutes.
    pub duration_minutes: u32,
    /// Weekly publishing windows: a slot lies wholly inside their union for its weekday.
    #[serde(default)]
    pub windows: Vec<WeeklyWindow>,
}

/// An appointment in the diary, on a practice-local date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// The practitioner's id.
    pub practitioner: String,
    /// Practice-local date, `YYYY-MM-DD`.
    pub date: String,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Local end time, `HH:MM`; `24:00` is the end of the day.
    pub end: String,
}

/// A dated block (meeting, lunch, holiday). Without `practitioner` it applies to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The practitioner's id; `None` blocks every practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// Practice-local date, `YYYY-MM-DD`.
    pub date: String,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Local end time, `HH:MM`; `24:00` is the end of the day.
    pub end: String,
}
