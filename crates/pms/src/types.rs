//! Values the connector reads and writes besides the domain's setup and diary.

use jiff::civil::{Date, DateTime};
use serde::{Deserialize, Serialize};
use slotbridge_domain::practice::DiaryAppointment;

/// The practice record (`GET …/practice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PracticeInfo {
    /// Site slug.
    pub slug: String,
    /// Name.
    pub name: String,
    /// IANA time zone name.
    pub timezone: String,
    /// Phone.
    #[serde(default)]
    pub phone: String,
    /// Diary interval, minutes.
    pub interval_minutes: u32,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street line.
    pub line1: String,
    /// Suburb.
    pub suburb: String,
    /// State.
    pub state: String,
    /// Postcode.
    pub postcode: String,
}

/// A Medicare card number and IRN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Medicare {
    /// 10 digits.
    pub number: String,
    /// Individual reference number, 1-9.
    pub irn: u8,
}

/// A patient file in the PMS.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// The PMS's id.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Mobile phone.
    #[serde(default)]
    pub mobile_phone: Option<String>,
    /// Home phone.
    #[serde(default)]
    pub home_phone: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<Address>,
    /// Medicare.
    #[serde(default)]
    pub medicare: Option<Medicare>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A new patient file to create.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct NewPatient {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Mobile phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// Home phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_phone: Option<String>,
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Medicare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medicare: Option<Medicare>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for NewPatient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPatient").finish_non_exhaustive()
    }
}

/// Patient search criteria; at least one must be set. Compared normalised by the PMS.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PatientQuery {
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<Date>,
    /// A phone number (mobile or home).
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
}

/// Redacted: personal data or secrets never reach a log through `Debug`.
impl std::fmt::Debug for PatientQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientQuery").finish_non_exhaustive()
    }
}

impl PatientQuery {
    /// The query string pairs.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = &self.first_name {
            out.push(("first_name", v.clone()));
        }
        if let Some(v) = &self.last_name {
            out.push(("last_name", v.clone()));
        }
        if let Some(v) = &self.date_of_birth {
            out.push(("date_of_birth", v.to_string()));
        }
        if let Some(v) = &self.phone {
            out.push(("phone", v.clone()));
        }
        if let Some(v) = &self.email {
            out.push(("email", v.clone()));
        }
        out
    }
}

/// An online booking to insert. Times are civil, in the practice's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAppointment {
    /// Practitioner id.
    pub practitioner: String,
    /// Practice-local start.
    pub start: DateTime,
    /// Practice-local end (start + the PMS's duration for the reason).
    pub end: DateTime,
    /// Booking reason id.
    pub reason: Option<String>,
    /// Patient id.
    pub patient: String,
    /// Notes.
    pub notes: String,
    /// The booking's reference: the insert is idempotent on it.
    pub external_ref: String,
}

/// The result of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The appointment in the diary.
    pub appointment: DiaryAppointment,
    /// `false` when the external reference was already booked and this is the existing one.
    pub created: bool,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// Sequence number.
    pub seq: u64,
    /// Change type, e.g. `appointment.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The changed thing's id.
    pub subject: String,
    /// When.
    pub time: String,
    /// The changed thing.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl ChangeEntry {
    /// The one practice-local day an appointment made or removed occupies (see
    /// [`appointment_day`]); the feed's `data` is the appointment, as a webhook's `data.object`.
    ///
    /// ```
    /// use slotbridge_pms::ChangeEntry;
    /// let made: ChangeEntry = serde_json::from_value(serde_json::json!({
    ///     "seq": 2, "type": "appointment.created", "subject": "A1",
    ///     "time": "2026-12-01T10:00:00+11:00",
    ///     "data": {"id": "A1", "start": "2026-12-03T09:00:00+11:00",
    ///              "end": "2026-12-03T09:30:00+11:00"}})).unwrap();
    /// assert_eq!(made.appointment_day(), Some(jiff::civil::date(2026, 12, 3)));
    /// ```
    pub fn appointment_day(&self) -> Option<jiff::civil::Date> {
        appointment_day(&self.kind, &self.data)
    }
}

/// The one practice-local day an appointment made or removed occupies, read from the
/// appointment (`start` and `end` in RFC 3339 with the practice's offset): only that day's
/// availability can have changed. `None` for every other change (a moved or updated
/// appointment may also have left another day), and for an appointment across midnight.
/// `kind` is a change-feed type (`appointment.created`) or a webhook's CloudEvent type
/// (`dev.slotbridge.pms.appointment.created`).
pub fn appointment_day(kind: &str, appointment: &serde_json::Value) -> Option<jiff::civil::Date> {
    let kind = kind.rsplit_once("pms.").map_or(kind, |(_, k)| k);
    if kind != "appointment.created" && kind != "appointment.deleted" {
        return None;
    }
    let day = |field: &str| -> Option<jiff::civil::Date> {
        let text = appointment.get(field)?.as_str()?;
        // Checked as an instant with its offset; the date is the one written, which is the
        // practice's own.
        text.parse::<jiff::Timestamp>().ok()?;
        text.get(..10)?.parse().ok()
    };
    let (start, end) = (day("start")?, day("end")?);
    (start == end).then_some(start)
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// The changes, oldest first.
    pub changes: Vec<ChangeEntry>,
    /// Pass as `since` next time.
    pub next_cursor: String,
}

/// The result of reading the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Changes after the cursor.
    Page(ChangePage),
    /// The cursor is too old: read the setup and diary again, then use [`Changes::Page`]'s
    /// cursor from a fresh read with `since = None`.
    CursorExpired,
}

/// What a connector can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Whether online bookings can be cancelled through the API. Exact: no; patients must call
    /// the practice, and the desk removes the appointment.
    pub can_cancel_online: bool,
    /// Whether patients can be searched.
    pub can_search_patients: bool,
    /// Whether the PMS pushes webhooks.
    pub webhooks: bool,
    /// Whether the PMS has a change feed.
    pub change_feed: bool,
    /// The furthest ahead the integration may publish, in days.
    pub max_horizon_days: u32,
}

/// What a change in the PMS can affect, from its type: the online-booking setup, the diary only,
/// or nothing the integration publishes (a patient file). Ordered: `Setup` covers `Diary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeScope {
    /// Nothing published depends on it (`patient.created`).
    Nothing,
    /// The diary: appointments (created, updated: a patient marked as not attending, deleted),
    /// blocks, closed dates, sessions.
    Diary,
    /// The setup (`setup.changed`), or a type this client does not know.
    Setup,
}

impl ChangeScope {
    /// The scope of a change or event type: `appointment.created` as in the change feed, or
    /// `dev.slotbridge.pms.appointment.created` as in a webhook's CloudEvent.
    ///
    /// ```
    /// use slotbridge_pms::ChangeScope;
    /// assert_eq!(ChangeScope::of("patient.created"), ChangeScope::Nothing);
    /// assert_eq!(ChangeScope::of("dev.slotbridge.pms.appointment.created"), ChangeScope::Diary);
    /// // A desk marking a patient who did not attend.
    /// assert_eq!(ChangeScope::of("appointment.updated"), ChangeScope::Diary);
    /// assert_eq!(ChangeScope::of("dev.slotbridge.pms.appointment.updated"), ChangeScope::Diary);
    /// assert_eq!(ChangeScope::of("setup.changed"), ChangeScope::Setup);
    /// assert_eq!(ChangeScope::of("something.new"), ChangeScope::Setup);
    /// ```
    pub fn of(kind: &str) -> ChangeScope {
        let thing = kind.rsplit('.').nth(1).unwrap_or(kind);
        match thing {
            "patient" => ChangeScope::Nothing,
            "appointment" | "block" | "closed_date" | "sessions" => ChangeScope::Diary,
            _ => ChangeScope::Setup,
        }
    }
}
