//! The diary snapshot: a practice's online-booking setup and diary, as the availability engine
//! reads it. The JSON shape is the contract documented in `docs/snapshot.md`; unknown fields are
//! ignored so that producers may add more.

use serde::{Deserialize, Serialize};

/// A practice's setup and diary at one instant (`now`), in the practice's civil time.
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
    #[serde(default)]
    pub practitioners: Vec<Practitioner>,
    #[serde(default)]
    pub booking_reasons: Vec<BookingReason>,
    #[serde(default)]
    pub appointments: Vec<Appointment>,
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// Practice-local dates (`YYYY-MM-DD`) on which the practice is shut.
    #[serde(default)]
    pub closed_dates: Vec<String>,
}

/// A practitioner's weekly hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Practitioner {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sessions: Vec<WeeklyWindow>,
    #[serde(default)]
    pub breaks: Vec<WeeklyWindow>,
}

/// A weekly recurring window: on each of `days` (`mon`..`sun`), from `start` to `end` (`HH:MM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

/// A booking reason (an appointment type on the marketplace) and its per-practitioner rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingReason {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub providers: Vec<ProviderRule>,
}

/// "Configure Providers": one practitioner's publishing rule for a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRule {
    pub practitioner: String,
    pub duration_minutes: u32,
    #[serde(default)]
    pub windows: Vec<WeeklyWindow>,
}

/// An appointment in the diary, on a practice-local date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    pub practitioner: String,
    pub date: String,
    pub start: String,
    pub end: String,
}

/// A dated block (meeting, lunch, holiday). Without `practitioner` it applies to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    pub date: String,
    pub start: String,
    pub end: String,
}
