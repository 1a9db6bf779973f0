//! A PMS practice as the connector reads it: its online-booking setup ([`PracticeSetup`]) and its
//! diary ([`Diary`]). These mirror what an Exact practice configures (Practitioners, Online Booking
//! Configuration, Web Setup with Appointment Stacking and booking reasons, per-reason "Configure
//! Providers" rules, the diary interval) and what its diary holds (sessions, breaks, blocks,
//! closed dates, appointments).
//!
//! The engine's [`Snapshot`](crate::snapshot::Snapshot) is one projection of this model:
//! [`to_snapshot`].
//!
//! ```
//! use slotbridge_domain::practice::{ClockTime, Weekday, WeeklyWindow};
//! let w = WeeklyWindow::new(vec![Weekday::Mon], "08:00".parse()?, "12:30".parse()?);
//! assert_eq!(w.start.to_string(), "08:00");
//! # Ok::<(), slotbridge_domain::practice::PracticeError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::horizon::HorizonDays;
use crate::snapshot;

/// Why a practice value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PracticeError {
    /// A site slug that does not match `^[osl][a-zA-Z0-9]{3,}$`.
    #[error(
        "site slug {found:?} is invalid: expected a letter o, s or l followed by at least 3 letters or digits"
    )]
    InvalidSlug {
        /// The rejected input.
        found: String,
    },
    /// A time of day that is not `HH:MM` between 00:00 and 24:00.
    #[error("time of day {found:?} is invalid: expected HH:MM between 00:00 and 24:00")]
    InvalidClockTime {
        /// The rejected input.
        found: String,
    },
    /// A time zone name that is not a known IANA zone.
    #[error("time zone {found:?} is not a known IANA time zone name")]
    UnknownTimeZone {
        /// The rejected input.
        found: String,
    },
}

/// A practice's site slug on the PMS: `^[osl][a-zA-Z0-9]{3,}$`, e.g. `sharbourdental`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteSlug(String);

impl SiteSlug {
    /// Parse a slug, naming the problem if it is not valid.
    ///
    /// ```
    /// use slotbridge_domain::practice::SiteSlug;
    /// assert!(SiteSlug::parse("sharbourdental").is_ok());
    /// assert!(SiteSlug::parse("xharbour").is_err());
    /// assert!(SiteSlug::parse("s12").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, PracticeError> {
        let mut chars = s.chars();
        let first_ok = matches!(chars.next(), Some('o' | 's' | 'l'));
        let rest_ok = s.len() >= 4 && chars.all(|c| c.is_ascii_alphanumeric());
        if first_ok && rest_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(PracticeError::InvalidSlug {
                found: s.to_owned(),
            })
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SiteSlug {
    type Error = PracticeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SiteSlug> for String {
    fn from(s: SiteSlug) -> Self {
        s.0
    }
}

impl FromStr for SiteSlug {
    type Err = PracticeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A known IANA time zone, e.g. `Australia/Sydney`. Keeps its name for display and serde.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IanaZone {
    name: String,
    tz: TimeZone,
}

impl IanaZone {
    /// Look a zone up by its IANA name.
    ///
    /// ```
    /// use slotbridge_domain::practice::IanaZone;
    /// assert!(IanaZone::parse("Australia/Sydney").is_ok());
    /// assert!(IanaZone::parse("Mars/Olympus").is_err());
    /// ```
    pub fn parse(name: &str) -> Result<Self, PracticeError> {
        TimeZone::get(name)
            .map(|tz| Self {
                name: name.to_owned(),
                tz,
            })
            .map_err(|_| PracticeError::UnknownTimeZone {
                found: name.to_owned(),
            })
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's rules.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }
}

impl fmt::Display for IanaZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl TryFrom<String> for IanaZone {
    type Error = PracticeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<IanaZone> for String {
    fn from(z: IanaZone) -> Self {
        z.name
    }
}

/// A day of the week, serialised `mon`..`sun` as in the snapshot format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// All seven days, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// The three-letter lowercase code (`mon`).
    pub fn code(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// The weekday of a civil date.
    pub fn of(date: Date) -> Self {
        match date.weekday() {
            jiff::civil::Weekday::Monday => Weekday::Mon,
            jiff::civil::Weekday::Tuesday => Weekday::Tue,
            jiff::civil::Weekday::Wednesday => Weekday::Wed,
            jiff::civil::Weekday::Thursday => Weekday::Thu,
            jiff::civil::Weekday::Friday => Weekday::Fri,
            jiff::civil::Weekday::Saturday => Weekday::Sat,
            jiff::civil::Weekday::Sunday => Weekday::Sun,
        }
    }
}

/// A wall-clock time of day in whole minutes since midnight, `00:00` to `24:00` inclusive
/// (`24:00` is only meaningful as the end of a window). Serialised `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(u16);

impl ClockTime {
    /// Midnight at the start of the day.
    pub const MIDNIGHT: ClockTime = ClockTime(0);
    /// Midnight at the end of the day (`24:00`).
    pub const END_OF_DAY: ClockTime = ClockTime(1440);

    /// From minutes since midnight; `None` past 24:00.
    pub fn from_minutes(minutes: u32) -> Option<Self> {
        u16::try_from(minutes)
            .ok()
            .filter(|m| *m <= 1440)
            .map(ClockTime)
    }

    /// From hour and minute; `None` if not a time of day (24:00 is allowed).
    pub fn from_hm(hour: u32, minute: u32) -> Option<Self> {
        if minute >= 60 {
            return None;
        }
        Self::from_minutes(hour.checked_mul(60)?.checked_add(minute)?)
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }

    /// The time of a civil date-time, truncated to the minute.
    pub fn of(dt: DateTime) -> Self {
        ClockTime(dt.hour() as u16 * 60 + dt.minute() as u16)
    }

    /// This time on a civil date; `24:00` is the next day's midnight.
    pub fn on(self, date: Date) -> DateTime {
        let midnight = date.to_datetime(jiff::civil::Time::midnight());
        midnight
            .checked_add(jiff::SignedDuration::from_mins(i64::from(self.0)))
            .unwrap_or(midnight)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for ClockTime {
    type Err = PracticeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PracticeError::InvalidClockTime {
            found: s.to_owned(),
        };
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u32 = h.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        ClockTime::from_hm(h, m).ok_or_else(bad)
    }
}

impl TryFrom<String> for ClockTime {
    type Error = PracticeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ClockTime> for String {
    fn from(t: ClockTime) -> Self {
        t.to_string()
    }
}

/// A weekly recurring window: on each of `days`, from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    /// The days it recurs on.
    pub days: Vec<Weekday>,
    /// Start of the window, inclusive.
    pub start: ClockTime,
    /// End of the window, exclusive.
    pub end: ClockTime,
}

impl WeeklyWindow {
    /// A window on `days` from `start` to `end`.
    pub fn new(days: Vec<Weekday>, start: ClockTime, end: ClockTime) -> Self {
        Self { days, start, end }
    }

    /// Whether the window recurs on `day`.
    pub fn on(&self, day: Weekday) -> bool {
        self.days.contains(&day)
    }

    fn to_snapshot(&self) -> snapshot::WeeklyWindow {
        snapshot::WeeklyWindow {
            days: self.days.iter().map(|d| d.code().to_owned()).collect(),
            start: self.start.to_string(),
            end: self.end.to_string(),
        }
    }
}

/// A practitioner's clinical specialty; a practitioner may have several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Specialty {
    /// Dentist.
    Dentist,
    /// Dental hygienist.
    Hygienist,
    /// Oral health therapist.
    OralHealthTherapist,
}

/// A practitioner as the PMS's Practitioners list holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmsPractitioner {
    /// The PMS's id for the practitioner.
    pub id: String,
    /// Title, e.g. `Dr`.
    #[serde(default)]
    pub title: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Specialties (at least one in a sane setup).
    #[serde(default)]
    pub specialties: Vec<Specialty>,
}

impl PmsPractitioner {
    /// Display name: `Dr Jane Smith` (the title is omitted when empty).
    pub fn display_name(&self) -> String {
        [
            self.title.as_str(),
            self.first_name.as_str(),
            self.last_name.as_str(),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// One line of the "Online Booking Configuration": a practitioner who publishes online, and the
/// online appointment duration set there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineBookingEntry {
    /// The practitioner's id.
    pub practitioner: String,
    /// The online appointment duration, in minutes.
    pub duration_minutes: u32,
}

/// "Configure Providers": one practitioner's publishing rule for a booking reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonProviderRule {
    /// The practitioner's id.
    pub practitioner: String,
    /// The appointment duration for this reason and practitioner, in minutes.
    pub duration_minutes: u32,
    /// The weekly windows in which this reason may be booked with this practitioner.
    #[serde(default)]
    pub windows: Vec<WeeklyWindow>,
}

/// A booking reason from Web Setup (an appointment type on the marketplace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmsReason {
    /// The PMS's id for the reason.
    pub id: String,
    /// Its name, e.g. `Healthengine`.
    pub name: String,
    /// The marketing flag.
    #[serde(default)]
    pub marketing: bool,
    /// Per-practitioner publishing rules.
    #[serde(default)]
    pub providers: Vec<ReasonProviderRule>,
}

impl PmsReason {
    /// The rule for `practitioner`, if the reason has one.
    pub fn rule_for(&self, practitioner: &str) -> Option<&ReasonProviderRule> {
        self.providers
            .iter()
            .find(|r| r.practitioner == practitioner)
    }
}

/// A practice's online-booking setup as the PMS holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PracticeSetup {
    /// The practice's site slug.
    pub site: SiteSlug,
    /// The practice's name.
    pub name: String,
    /// The practice's IANA time zone.
    pub timezone: IanaZone,
    /// The practice's phone number.
    #[serde(default)]
    pub phone: String,
    /// The diary interval: 5, 10 or 15 minutes.
    pub interval_minutes: u32,
    /// Web Setup's Appointment Stacking switch.
    pub stacking: bool,
    /// All practitioners in the PMS.
    #[serde(default)]
    pub practitioners: Vec<PmsPractitioner>,
    /// The Online Booking Configuration list.
    #[serde(default)]
    pub online_booking: Vec<OnlineBookingEntry>,
    /// Web Setup's booking reasons.
    #[serde(default)]
    pub reasons: Vec<PmsReason>,
    /// The PMS's own online-booking rules (notice, how far ahead, a per-day-segment limit);
    /// none for a PMS without them.
    #[serde(default)]
    pub online_rules: OnlineRules,
}

/// The rules a PMS's own online-booking settings put on what may be published, beyond its
/// diary: Cliniko's minimum advance time, how far ahead bookings are offered, and the maximum
/// number of times per day segment. [`to_snapshot`] carries them into the engine's snapshot.
///
/// ```
/// use slotbridge_domain::practice::OnlineRules;
/// let rules = OnlineRules { max_days_ahead: Some(28), ..OnlineRules::default() };
/// assert_eq!(rules.horizon_days(30), 28);
/// assert_eq!(rules.horizon_days(14), 14);
/// assert_eq!(OnlineRules::default().horizon_days(30), 30);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineRules {
    /// No slot starts sooner than this many minutes from now.
    #[serde(default)]
    pub min_notice_minutes: u32,
    /// Bookings are offered this many days ahead, today being the first; `None`: as far as the
    /// link's horizon.
    #[serde(default)]
    pub max_days_ahead: Option<u32>,
    /// At most this many slots per practitioner, reason, date and day segment (morning before
    /// 12:00, afternoon 12:00 to 17:00, evening from 17:00), the earliest; `None`: no limit.
    #[serde(default)]
    pub max_per_day_segment: Option<u32>,
}

impl OnlineRules {
    /// The days published: the link's `horizon_days`, cut to how far ahead the PMS offers
    /// bookings (at least one day).
    pub fn horizon_days(&self, horizon_days: u32) -> u32 {
        match self.max_days_ahead {
            Some(max) => horizon_days.min(max.max(1)),
            None => horizon_days,
        }
    }

    /// [`OnlineRules::horizon_days`] of a link's horizon.
    ///
    /// ```
    /// use slotbridge_domain::horizon::HorizonDays;
    /// use slotbridge_domain::practice::OnlineRules;
    /// let rules = OnlineRules { max_days_ahead: Some(28), ..OnlineRules::default() };
    /// assert_eq!(rules.horizon(HorizonDays::new(60)?).days(), 28);
    /// # Ok::<(), slotbridge_domain::horizon::HorizonError>(())
    /// ```
    pub fn horizon(&self, days: HorizonDays) -> HorizonDays {
        HorizonDays::new(i64::from(self.horizon_days(days.days()))).unwrap_or(days)
    }
}

impl PracticeSetup {
    /// The practitioner with `id`.
    pub fn practitioner(&self, id: &str) -> Option<&PmsPractitioner> {
        self.practitioners.iter().find(|p| p.id == id)
    }

    /// Whether `practitioner` is in the Online Booking Configuration.
    pub fn publishes_online(&self, practitioner: &str) -> bool {
        self.online_booking
            .iter()
            .any(|e| e.practitioner == practitioner)
    }

    /// The default booking reason (see [`default_reason`]).
    pub fn default_reason(&self) -> Option<&PmsReason> {
        default_reason(&self.reasons)
    }
}

/// The reason the integration uses by default: the reason named exactly `Healthengine`; failing
/// that, the first reason flagged marketing; failing that, the first reason.
///
/// ```
/// use slotbridge_domain::practice::{default_reason, PmsReason};
/// let r = |id: &str, name: &str, marketing| PmsReason {
///     id: id.into(), name: name.into(), marketing, providers: vec![],
/// };
/// let reasons = vec![r("1", "Check-up", false), r("2", "Promo", true), r("3", "Healthengine", false)];
/// assert_eq!(default_reason(&reasons).map(|r| r.id.as_str()), Some("3"));
/// assert_eq!(default_reason(&reasons[..2]).map(|r| r.id.as_str()), Some("2"));
/// assert_eq!(default_reason(&reasons[..1]).map(|r| r.id.as_str()), Some("1"));
/// assert!(default_reason(&[]).is_none());
/// ```
pub fn default_reason(reasons: &[PmsReason]) -> Option<&PmsReason> {
    reasons
        .iter()
        .find(|r| r.name == "Healthengine")
        .or_else(|| reasons.iter().find(|r| r.marketing))
        .or_else(|| reasons.first())
}

/// A practitioner's weekly hours in the diary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PractitionerHours {
    /// The practitioner's id.
    pub practitioner: String,
    /// Weekly sessions (working hours).
    #[serde(default)]
    pub sessions: Vec<WeeklyWindow>,
    /// Weekly breaks inside the sessions.
    #[serde(default)]
    pub breaks: Vec<WeeklyWindow>,
}

/// What a dated block is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// A meeting.
    Meeting,
    /// A lunch.
    Lunch,
    /// A holiday or leave.
    Holiday,
}

/// A dated block in the diary, for one practitioner or (without one) for all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiaryBlock {
    /// The PMS's id for the block.
    pub id: String,
    /// The practitioner it blocks; `None` blocks everyone.
    #[serde(default)]
    pub practitioner: Option<String>,
    /// Practice-local date.
    pub date: Date,
    /// Start, inclusive.
    pub start: ClockTime,
    /// End, exclusive.
    pub end: ClockTime,
    /// What it is for.
    pub kind: BlockKind,
}

/// Who booked an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingSource {
    /// Booked at the practice's desk.
    Desk,
    /// Booked online through the API.
    Online,
}

/// Whether the patient came to an appointment, as the PMS records it. A PMS marks a missed
/// appointment only once it has started; until then (and when the PMS says nothing) it is
/// [`Attendance::Booked`].
///
/// ```
/// use slotbridge_domain::practice::Attendance;
/// assert_eq!(Attendance::default(), Attendance::Booked);
/// let dna: Attendance = serde_json::from_str("\"did_not_attend\"").expect("attendance");
/// assert_eq!(dna, Attendance::DidNotAttend);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attendance {
    /// Booked: the patient is expected, came, or the PMS has not said otherwise.
    #[default]
    Booked,
    /// The practice marked the patient as not having attended.
    DidNotAttend,
}

/// An appointment in the diary. Times are civil, in the practice's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiaryAppointment {
    /// The PMS's id for the appointment.
    pub id: String,
    /// The practitioner's id.
    pub practitioner: String,
    /// Practice-local start.
    pub start: DateTime,
    /// Practice-local end.
    pub end: DateTime,
    /// The booking reason's id, if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// The patient's id, if any.
    #[serde(default)]
    pub patient: Option<String>,
    /// Free-text notes.
    #[serde(default)]
    pub notes: String,
    /// Desk or online.
    pub source: BookingSource,
    /// The online booker's reference (idempotency key of the insert), if any.
    #[serde(default)]
    pub external_ref: Option<String>,
    /// Whether the patient attended (booked unless the practice marked a no-show).
    #[serde(default)]
    pub attendance: Attendance,
}

/// A practice's diary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diary {
    /// Weekly sessions and breaks per practitioner.
    #[serde(default)]
    pub hours: Vec<PractitionerHours>,
    /// Dated blocks.
    #[serde(default)]
    pub blocks: Vec<DiaryBlock>,
    /// Practice-local dates on which the practice is shut.
    #[serde(default)]
    pub closed_dates: Vec<Date>,
    /// Appointments.
    #[serde(default)]
    pub appointments: Vec<DiaryAppointment>,
}

impl Diary {
    /// The weekly hours of `practitioner`, if the diary has them.
    pub fn hours_of(&self, practitioner: &str) -> Option<&PractitionerHours> {
        self.hours.iter().find(|h| h.practitioner == practitioner)
    }
}

/// Project a practice's setup and diary onto the engine's [`Snapshot`](snapshot::Snapshot) at
/// instant `now`, publishing `horizon_days` days from the practice-local date of `now` (fewer
/// when the PMS offers bookings less far ahead: [`OnlineRules::horizon_days`]), with the PMS's
/// notice and per-day-segment limit.
///
/// Only practitioners in the Online Booking Configuration appear, and only their reason rules,
/// appointments and blocks. Blocks without a practitioner apply to everyone and are kept.
/// Appointments, blocks and closed dates outside the horizon are left out. An appointment that
/// runs past midnight is cut at `24:00` of its start date.
pub fn to_snapshot(
    setup: &PracticeSetup,
    diary: &Diary,
    now: jiff::Timestamp,
    horizon_days: u32,
) -> snapshot::Snapshot {
    let horizon_days = setup.online_rules.horizon_days(horizon_days);
    let tz = setup.timezone.time_zone();
    let now_zoned = now.to_zoned_datetime(tz.clone());
    let today = now_zoned.date();
    let last = today
        .checked_add(jiff::Span::new().days(i64::from(horizon_days)))
        .unwrap_or(Date::MAX);
    let in_horizon = |d: Date| d >= today && d < last;
    let online = |id: &str| setup.publishes_online(id);

    let practitioners = setup
        .online_booking
        .iter()
        .map(|entry| {
            let hours = diary.hours_of(&entry.practitioner);
            snapshot::Practitioner {
                id: entry.practitioner.clone(),
                name: setup
                    .practitioner(&entry.practitioner)
                    .map(PmsPractitioner::display_name)
                    .unwrap_or_default(),
                sessions: hours
                    .map(|h| h.sessions.iter().map(WeeklyWindow::to_snapshot).collect())
                    .unwrap_or_default(),
                breaks: hours
                    .map(|h| h.breaks.iter().map(WeeklyWindow::to_snapshot).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();

    let booking_reasons = setup
        .reasons
        .iter()
        .map(|r| snapshot::BookingReason {
            id: r.id.clone(),
            name: r.name.clone(),
            providers: r
                .providers
                .iter()
                .filter(|p| online(&p.practitioner))
                .map(|p| snapshot::ProviderRule {
                    practitioner: p.practitioner.clone(),
                    duration_minutes: p.duration_minutes,
                    windows: p.windows.iter().map(WeeklyWindow::to_snapshot).collect(),
                })
                .collect(),
        })
        .collect();

    let appointments = diary
        .appointments
        .iter()
        .filter(|a| online(&a.practitioner) && in_horizon(a.start.date()))
        .map(|a| {
            let end = if a.end.date() > a.start.date() {
                ClockTime::END_OF_DAY
            } else {
                ClockTime::of(a.end)
            };
            snapshot::Appointment {
                practitioner: a.practitioner.clone(),
                date: a.start.date().to_string(),
                start: ClockTime::of(a.start).to_string(),
                end: end.to_string(),
            }
        })
        .collect();

    let blocks = diary
        .blocks
        .iter()
        .filter(|b| in_horizon(b.date) && b.practitioner.as_deref().is_none_or(online))
        .map(|b| snapshot::Block {
            practitioner: b.practitioner.clone(),
            date: b.date.to_string(),
            start: b.start.to_string(),
            end: b.end.to_string(),
        })
        .collect();

    let closed_dates = diary
        .closed_dates
        .iter()
        .filter(|d| in_horizon(**d))
        .map(|d| d.to_string())
        .collect();

    snapshot::Snapshot {
        timezone: setup.timezone.name().to_owned(),
        now: now_zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        horizon_days: Some(horizon_days),
        interval_minutes: setup.interval_minutes,
        stacking: setup.stacking,
        min_notice_minutes: Some(setup.online_rules.min_notice_minutes).filter(|n| *n > 0),
        max_per_day_segment: setup.online_rules.max_per_day_segment,
        practitioners,
        booking_reasons,
        appointments,
        blocks,
        closed_dates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn t(s: &str) -> ClockTime {
        s.parse().expect("valid time")
    }

    fn setup() -> PracticeSetup {
        let p = |id: &str, first: &str, s: Specialty| PmsPractitioner {
            id: id.into(),
            title: "Dr".into(),
            first_name: first.into(),
            last_name: "Lee".into(),
            specialties: vec![s],
        };
        let weekdays = vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ];
        PracticeSetup {
            site: SiteSlug::parse("sharbourdental").expect("slug"),
            name: "Harbour Dental".into(),
            timezone: IanaZone::parse("Australia/Sydney").expect("zone"),
            phone: "02 9000 0000".into(),
            interval_minutes: 15,
            stacking: true,
            practitioners: vec![
                p("p1", "Ann", Specialty::Dentist),
                p("p2", "Bob", Specialty::Hygienist),
                p("p3", "Cat", Specialty::Dentist),
            ],
            online_booking: vec![
                OnlineBookingEntry {
                    practitioner: "p1".into(),
                    duration_minutes: 30,
                },
                OnlineBookingEntry {
                    practitioner: "p2".into(),
                    duration_minutes: 45,
                },
            ],
            reasons: vec![PmsReason {
                id: "r1".into(),
                name: "Healthengine".into(),
                marketing: true,
                providers: ["p1", "p2", "p3"]
                    .iter()
                    .map(|p| ReasonProviderRule {
                        practitioner: (*p).into(),
                        duration_minutes: 30,
                        windows: vec![WeeklyWindow::new(weekdays.clone(), t("08:00"), t("17:00"))],
                    })
                    .collect(),
            }],
            online_rules: Default::default(),
        }
    }

    fn diary() -> Diary {
        let appt = |id: &str, p: &str, d: Date, s: &str, e: &str| DiaryAppointment {
            id: id.into(),
            practitioner: p.into(),
            start: t(s).on(d),
            end: t(e).on(d),
            reason: None,
            patient: None,
            notes: String::new(),
            source: BookingSource::Desk,
            external_ref: None,
            attendance: Attendance::Booked,
        };
        Diary {
            hours: vec![PractitionerHours {
                practitioner: "p1".into(),
                sessions: vec![WeeklyWindow::new(
                    vec![Weekday::Mon],
                    t("08:00"),
                    t("17:30"),
                )],
                breaks: vec![WeeklyWindow::new(
                    vec![Weekday::Mon],
                    t("12:30"),
                    t("13:30"),
                )],
            }],
            blocks: vec![
                DiaryBlock {
                    id: "b1".into(),
                    practitioner: None,
                    date: date(2026, 11, 26),
                    start: t("09:00"),
                    end: t("10:00"),
                    kind: BlockKind::Meeting,
                },
                DiaryBlock {
                    id: "b2".into(),
                    practitioner: Some("p3".into()),
                    date: date(2026, 11, 26),
                    start: t("09:00"),
                    end: t("10:00"),
                    kind: BlockKind::Holiday,
                },
            ],
            closed_dates: vec![date(2026, 12, 24), date(2026, 12, 25), date(2027, 6, 1)],
            appointments: vec![
                appt("a1", "p1", date(2026, 11, 26), "09:00", "09:30"),
                appt("a2", "p3", date(2026, 11, 26), "09:00", "09:30"),
                appt("a3", "p1", date(2026, 11, 20), "09:00", "09:30"),
                appt("a4", "p2", date(2027, 3, 1), "09:00", "09:30"),
                DiaryAppointment {
                    end: t("01:00").on(date(2026, 11, 28)),
                    ..appt("a5", "p2", date(2026, 11, 27), "23:00", "23:30")
                },
            ],
        }
    }

    fn now() -> jiff::Timestamp {
        // 2026-11-25 10:00 in Sydney (AEDT, +11:00).
        "2026-11-24T23:00:00Z".parse().expect("timestamp")
    }

    #[test]
    fn snapshot_keeps_only_online_practitioners() {
        let s = to_snapshot(&setup(), &diary(), now(), 30);
        let ids: Vec<_> = s.practitioners.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert_eq!(s.practitioners[0].name, "Dr Ann Lee");
        assert_eq!(s.practitioners[0].sessions[0].days, ["mon"]);
        assert_eq!(s.practitioners[0].breaks[0].start, "12:30");
        assert!(s.practitioners[1].sessions.is_empty());
        let rule_ids: Vec<_> = s.booking_reasons[0]
            .providers
            .iter()
            .map(|p| p.practitioner.as_str())
            .collect();
        assert_eq!(rule_ids, ["p1", "p2"]);
    }

    #[test]
    fn snapshot_filters_diary_by_practitioner_and_horizon() {
        let s = to_snapshot(&setup(), &diary(), now(), 30);
        let appts: Vec<_> = s
            .appointments
            .iter()
            .map(|a| {
                (
                    a.practitioner.as_str(),
                    a.date.as_str(),
                    a.start.as_str(),
                    a.end.as_str(),
                )
            })
            .collect();
        assert_eq!(
            appts,
            [
                ("p1", "2026-11-26", "09:00", "09:30"),
                ("p2", "2026-11-27", "23:00", "24:00"),
            ]
        );
        assert_eq!(s.blocks.len(), 1);
        assert_eq!(s.blocks[0].practitioner, None);
        assert_eq!(
            s.closed_dates,
            ["2026-12-24"],
            "30 days from 25 Nov end on 24 Dec"
        );
    }

    #[test]
    fn snapshot_header_uses_practice_zone_and_offset_for_now() {
        let s = to_snapshot(&setup(), &diary(), now(), 30);
        assert_eq!(s.timezone, "Australia/Sydney");
        assert_eq!(s.now, "2026-11-25T10:00:00+11:00");
        assert_eq!(s.horizon_days, Some(30));
        assert_eq!(s.interval_minutes, 15);
        assert!(s.stacking);
        // Winter: the offset is the one for that date, +10:00.
        let winter = to_snapshot(
            &setup(),
            &diary(),
            "2026-06-30T23:00:00Z".parse().expect("ts"),
            30,
        );
        assert_eq!(winter.now, "2026-07-01T09:00:00+10:00");
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let s = to_snapshot(&setup(), &diary(), now(), 90);
        let json = serde_json::to_string(&s).expect("serialise");
        let back: snapshot::Snapshot = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, s);
    }

    #[test]
    fn default_reason_prefers_exact_healthengine_name() {
        let r = |id: &str, name: &str, marketing| PmsReason {
            id: id.into(),
            name: name.into(),
            marketing,
            providers: vec![],
        };
        // "Health Engine" and "healthengine" are not the exact name.
        let reasons = vec![
            r("1", "Health Engine", false),
            r("2", "healthengine", false),
            r("3", "Marketing", true),
        ];
        assert_eq!(default_reason(&reasons).map(|r| r.id.as_str()), Some("3"));
        let reasons = vec![r("1", "Check-up", true), r("2", "Healthengine", false)];
        assert_eq!(default_reason(&reasons).map(|r| r.id.as_str()), Some("2"));
        assert_eq!(
            setup().default_reason().map(|r| r.name.as_str()),
            Some("Healthengine")
        );
    }

    #[test]
    fn setup_and_diary_round_trip_through_json() {
        let s = setup();
        let json = serde_json::to_value(&s).expect("serialise");
        assert_eq!(json["timezone"], "Australia/Sydney");
        assert_eq!(json["practitioners"][1]["specialties"][0], "hygienist");
        assert_eq!(
            json["reasons"][0]["providers"][0]["windows"][0]["start"],
            "08:00"
        );
        let back: PracticeSetup = serde_json::from_value(json).expect("parse");
        assert_eq!(back, s);
        let d = diary();
        let back: Diary =
            serde_json::from_str(&serde_json::to_string(&d).expect("ser")).expect("parse");
        assert_eq!(back, d);
    }

    #[test]
    fn bad_values_name_the_problem() {
        let err = serde_json::from_str::<ClockTime>("\"25:00\"").expect_err("invalid");
        assert!(err.to_string().contains("25:00"), "{err}");
        assert!("24:01".parse::<ClockTime>().is_err());
        assert!("8:00".parse::<ClockTime>().is_err());
        assert_eq!("24:00".parse::<ClockTime>(), Ok(ClockTime::END_OF_DAY));
        let err = serde_json::from_str::<IanaZone>("\"Nowhere/Land\"").expect_err("invalid");
        assert!(err.to_string().contains("Nowhere/Land"), "{err}");
        for bad in ["", "abcd", "s12", "s-abc", "sab\u{e9}c"] {
            assert!(SiteSlug::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["sabc", "o123", "lHarbour9"] {
            assert!(SiteSlug::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn clock_time_on_date_handles_end_of_day() {
        let d = date(2026, 11, 25);
        assert_eq!(
            ClockTime::END_OF_DAY.on(d),
            date(2026, 11, 26).at(0, 0, 0, 0)
        );
        assert_eq!(t("08:15").on(d), d.at(8, 15, 0, 0));
        assert_eq!(ClockTime::of(d.at(8, 15, 59, 0)), t("08:15"));
    }
}
