//! Validation: from the raw [`Snapshot`] to the [`ValidSnapshot`] the engine reads.
//!
//! Everything is parsed here, once: the time zone, `now`, every date and `HH:MM` time, every
//! weekday name. Weekly hours are turned into normalized minute intervals per weekday, the
//! horizon's dates get their UTC offsets, and the diary's appointments and blocks are indexed by
//! (practitioner, date), so that the engine never parses, looks up a name or searches a list.

use std::collections::HashSet;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use super::{Snapshot, WeeklyWindow};
use crate::availability::intervals::{MINUTES_PER_DAY, MinuteInterval, normalize, subtract_into};

/// The marketplace's publishing limit, in days.
pub const MAX_HORIZON_DAYS: u32 = 90;
/// The horizon when a snapshot does not give one, in days.
pub const DEFAULT_HORIZON_DAYS: u32 = 30;
/// The largest accepted `max_per_day_segment`: a day has at most 1440 one-minute slots.
const MAX_PER_DAY_SEGMENT: u32 = 1440;

/// The largest accepted `min_notice_minutes`: 90 days, past which nothing could be published.
pub const MAX_MIN_NOTICE_MINUTES: u32 = MAX_HORIZON_DAYS * 1440;

/// A snapshot field that is not valid: where it is and what is wrong with it.
///
/// Displays as one line, e.g. `practitioners[0].sessions[1].start: expected "HH:MM", found "8am"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SnapshotError {
    /// The field's path in the snapshot's JSON, with list indexes as given in the input.
    pub path: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a snapshot field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not an `HH:MM` time of day.
    #[error("expected \"HH:MM\" (00:00 to 23:59, or 24:00 as an end time), found {0:?}")]
    ExpectedTime(String),
    /// `24:00` given as a start time.
    #[error("\"24:00\" is the end of the day and can only be an end time")]
    MidnightStart,
    /// Not a `YYYY-MM-DD` calendar date.
    #[error("expected a date \"YYYY-MM-DD\", found {0:?}")]
    ExpectedDate(String),
    /// Not one of the weekday names.
    #[error("expected a weekday (mon, tue, wed, thu, fri, sat or sun), found {0:?}")]
    ExpectedWeekday(String),
    /// Not a time zone name in the IANA time zone database.
    #[error("unknown IANA time zone {0:?} (expected a name like \"Australia/Sydney\")")]
    UnknownTimeZone(String),
    /// Not an RFC 3339 instant.
    #[error(
        "expected an RFC 3339 instant with an offset like \"2026-04-03T08:30:00+11:00\", found {0:?}"
    )]
    ExpectedInstant(String),
    /// A number out of its range.
    #[error("must be between {min} and {max}, found {found}")]
    OutOfRange {
        /// Smallest allowed value.
        min: u32,
        /// Largest allowed value.
        max: u32,
        /// The value given.
        found: u32,
    },
    /// An `interval_minutes` that does not divide the day.
    #[error("must divide 1440 (the minutes in a day) so the grid is the same every day, found {0}")]
    IntervalNotDivisor(u32),
    /// An interval whose start is not before its end.
    #[error("start {start:?} must be before end {end:?}")]
    StartNotBeforeEnd {
        /// The start given.
        start: String,
        /// The end given.
        end: String,
    },
    /// A reference to a practitioner that the snapshot does not list.
    #[error("no practitioner has id {0:?}")]
    UnknownPractitioner(String),
    /// An id given twice.
    #[error("duplicate id {0:?}")]
    DuplicateId(String),
    /// A second rule for the same practitioner in one booking reason.
    #[error("practitioner {0:?} already has a rule for this booking reason")]
    DuplicateRule(String),
    /// An empty string or list where one is required.
    #[error("must not be empty")]
    Empty,
    /// `now` too close to the ends of the representable time range for the horizon.
    #[error("the horizon from this instant is outside the supported time range")]
    OutOfTimeRange,
}

/// How civil times of one date map to instants in the practice's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayZone {
    /// One offset holds from 00:00 to 24:00 of the date (the usual case): the instant of minute
    /// `m` is `midnight_second + 60 m`.
    Uniform {
        /// The instant of the date's 00:00, in seconds since the Unix epoch.
        midnight_second: i64,
        /// The date's UTC offset.
        offset: Offset,
    },
    /// The offset changes during the date (a DST change): each civil time is resolved on its own.
    Irregular,
}

/// One date of the publishing horizon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    date: Date,
    closed: bool,
    zone: DayZone,
}

impl Day {
    /// The practice-local date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// Its weekday.
    pub fn weekday(&self) -> Weekday {
        self.date.weekday()
    }

    /// Whether it is one of the snapshot's `closed_dates`.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// How its civil times map to instants.
    pub fn zone(&self) -> DayZone {
        self.zone
    }
}

/// A practitioner's weekly hours, per weekday (index 0 is Monday), as normalized intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPractitioner {
    id: String,
    name: String,
    sessions: [Vec<MinuteInterval>; 7],
    breaks: [Vec<MinuteInterval>; 7],
    working: [Vec<MinuteInterval>; 7],
}

impl ValidPractitioner {
    /// The practitioner's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The practitioner's display name (may be empty).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The union of the weekday's sessions.
    pub fn sessions(&self, weekday: Weekday) -> &[MinuteInterval] {
        &self.sessions[weekday_index(weekday)]
    }

    /// The union of the weekday's breaks.
    pub fn breaks(&self, weekday: Weekday) -> &[MinuteInterval] {
        &self.breaks[weekday_index(weekday)]
    }

    /// The weekday's sessions minus its breaks: working time before any dated block.
    pub fn weekly_working(&self, weekday: Weekday) -> &[MinuteInterval] {
        &self.working[weekday_index(weekday)]
    }
}

/// A booking reason's id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidReason {
    id: String,
    name: String,
}

impl ValidReason {
    /// The reason's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The reason's display name (may be empty).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One practitioner's publishing rule for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRule {
    practitioner: usize,
    reason: usize,
    practitioner_id: String,
    reason_id: String,
    duration: u16,
    windows: [Vec<MinuteInterval>; 7],
}

impl ValidRule {
    /// Index of the practitioner in [`ValidSnapshot::practitioners`].
    pub fn practitioner(&self) -> usize {
        self.practitioner
    }

    /// Index of the reason in [`ValidSnapshot::reasons`].
    pub fn reason(&self) -> usize {
        self.reason
    }

    /// The practitioner's id.
    pub fn practitioner_id(&self) -> &str {
        &self.practitioner_id
    }

    /// The reason's id.
    pub fn reason_id(&self) -> &str {
        &self.reason_id
    }

    /// The appointment's length in minutes (1..=1440).
    pub fn duration_minutes(&self) -> u16 {
        self.duration
    }

    /// The union of the weekday's publishing windows.
    pub fn windows(&self, weekday: Weekday) -> &[MinuteInterval] {
        &self.windows[weekday_index(weekday)]
    }
}

/// Dated diary intervals (appointments or blocks), indexed by (practitioner, horizon day).
///
/// Built once by sorting; each (practitioner, day) has a normalized slice, found in O(1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiaryIndex {
    days: usize,
    offsets: Vec<u32>,
    intervals: Vec<MinuteInterval>,
}

impl DiaryIndex {
    fn build(practitioners: usize, days: usize, entries: Vec<(u32, u32, MinuteInterval)>) -> Self {
        // Sorting packed u64 keys (key, start, end) is several times faster than sorting tuples.
        let mut packed: Vec<u64> = entries
            .iter()
            .map(|&(p, d, iv)| {
                let key = p as u64 * days as u64 + u64::from(d);
                key << 32 | u64::from(iv.start) << 16 | u64::from(iv.end)
            })
            .collect();
        packed.sort_unstable();
        let keys = practitioners * days;
        let mut offsets = Vec::with_capacity(keys + 1);
        let mut intervals: Vec<MinuteInterval> = Vec::with_capacity(packed.len());
        let mut next = 0;
        for key in 0..keys {
            offsets.push(intervals.len() as u32);
            let first_of_key = intervals.len();
            while next < packed.len() {
                let entry = packed[next];
                if (entry >> 32) as usize != key {
                    break;
                }
                let interval = MinuteInterval {
                    start: (entry >> 16) as u16,
                    end: entry as u16,
                };
                let same_key = intervals.len() > first_of_key;
                match intervals.last_mut() {
                    Some(last) if same_key && interval.start <= last.end => {
                        last.end = last.end.max(interval.end);
                    }
                    _ => intervals.push(interval),
                }
                next += 1;
            }
        }
        offsets.push(intervals.len() as u32);
        Self {
            days,
            offsets,
            intervals,
        }
    }

    /// The normalized intervals of practitioner `practitioner` on horizon day `day`.
    pub fn get(&self, practitioner: usize, day: usize) -> &[MinuteInterval] {
        let key = practitioner * self.days + day;
        match (self.offsets.get(key), self.offsets.get(key + 1)) {
            (Some(&from), Some(&to)) => &self.intervals[from as usize..to as usize],
            _ => &[],
        }
    }

    /// How many intervals the index holds, after merging.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Whether the index holds no interval.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }
}

/// A snapshot whose every field has been checked and parsed: the availability engine's input.
///
/// Practitioners, reasons and rules are sorted by id, so the engine's output order (rule 7)
/// follows from index order.
#[derive(Debug, Clone)]
pub struct ValidSnapshot {
    timezone_name: String,
    timezone: TimeZone,
    now: Timestamp,
    earliest_start: Timestamp,
    min_notice_minutes: u32,
    max_per_day_segment: Option<u32>,
    interval: u16,
    stacking: bool,
    days: Vec<Day>,
    practitioners: Vec<ValidPractitioner>,
    reasons: Vec<ValidReason>,
    rules: Vec<ValidRule>,
    rules_by_practitioner: Vec<(u32, u32)>,
    appointments: DiaryIndex,
    blocks: DiaryIndex,
}

impl ValidSnapshot {
    /// The practice's IANA time zone name.
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    /// The practice's time zone.
    pub fn timezone(&self) -> &TimeZone {
        &self.timezone
    }

    /// The instant the snapshot was taken.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The minimum notice, in minutes (rule 4).
    pub fn min_notice_minutes(&self) -> u32 {
        self.min_notice_minutes
    }

    /// At most this many slots per rule, date and day segment (rule 6); `None`: no limit.
    pub fn max_per_day_segment(&self) -> Option<u32> {
        self.max_per_day_segment
    }

    /// The same snapshot without the per-day-segment limit: what the engine would publish were
    /// it lifted (to say where the limit removed slots).
    pub fn without_segment_limit(&self) -> ValidSnapshot {
        ValidSnapshot {
            max_per_day_segment: None,
            ..self.clone()
        }
    }

    /// `now + min_notice_minutes`: no slot starts before this (rule 4).
    pub fn earliest_start(&self) -> Timestamp {
        self.earliest_start
    }

    /// The diary grid, in minutes.
    pub fn interval_minutes(&self) -> u16 {
        self.interval
    }

    /// The Appointment Stacking switch.
    pub fn stacking(&self) -> bool {
        self.stacking
    }

    /// The horizon's dates, from the practice-local date of `now` (rule 1).
    pub fn days(&self) -> &[Day] {
        &self.days
    }

    /// The practitioners, sorted by id.
    pub fn practitioners(&self) -> &[ValidPractitioner] {
        &self.practitioners
    }

    /// The booking reasons, sorted by id.
    pub fn reasons(&self) -> &[ValidReason] {
        &self.reasons
    }

    /// Every publishing rule, sorted by practitioner id then reason id.
    pub fn rules(&self) -> &[ValidRule] {
        &self.rules
    }

    /// The publishing rules of practitioner `practitioner` (an index), sorted by reason id.
    pub fn rules_of(&self, practitioner: usize) -> &[ValidRule] {
        match self.rules_by_practitioner.get(practitioner) {
            Some(&(from, to)) => &self.rules[from as usize..to as usize],
            None => &[],
        }
    }

    /// Appointments inside the horizon, by (practitioner, day).
    pub fn appointments(&self) -> &DiaryIndex {
        &self.appointments
    }

    /// Blocks inside the horizon (practice-wide ones copied to everyone), by (practitioner, day).
    pub fn blocks(&self) -> &DiaryIndex {
        &self.blocks
    }

    /// The instant and offset of minute `minute` of horizon day `day`: `None` if that civil time
    /// does not exist (a DST gap); the earlier instant if it happens twice (rule 6).
    pub fn resolve(&self, day: &Day, minute: u16) -> Option<(Timestamp, Offset)> {
        match day.zone {
            DayZone::Uniform {
                midnight_second,
                offset,
            } => Timestamp::from_second(midnight_second + 60 * i64::from(minute))
                .ok()
                .map(|ts| (ts, offset)),
            DayZone::Irregular => {
                let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
                let dt = day.date.to_datetime(time);
                let offset = match self.timezone.to_ambiguous_timestamp(dt).offset() {
                    AmbiguousOffset::Unambiguous { offset } => offset,
                    AmbiguousOffset::Gap { .. } => return None,
                    AmbiguousOffset::Fold { before, .. } => before,
                };
                offset.to_timestamp(dt).ok().map(|ts| (ts, offset))
            }
        }
    }

    /// Index of practitioner `id`, if listed.
    pub fn practitioner_index(&self, id: &str) -> Option<usize> {
        self.practitioners
            .binary_search_by(|p| p.id.as_str().cmp(id))
            .ok()
    }

    /// Index of reason `id`, if listed.
    pub fn reason_index(&self, id: &str) -> Option<usize> {
        self.reasons
            .binary_search_by(|r| r.id.as_str().cmp(id))
            .ok()
    }

    /// Index of `date` among the horizon's days, if inside the horizon.
    pub fn day_index(&self, date: Date) -> Option<usize> {
        self.days.binary_search_by_key(&date, |d| d.date).ok()
    }
}

impl Snapshot {
    /// Checks every field and parses the snapshot into the engine's input.
    ///
    /// The first invalid field is reported, with its path.
    ///
    /// ```
    /// use slotbridge_domain::snapshot::Snapshot;
    /// let json = r#"{"timezone": "Australia/Sydney", "now": "2026-04-03T08:00:00+11:00",
    ///     "interval_minutes": 7, "stacking": true}"#;
    /// let snapshot: Snapshot = serde_json::from_str(json).unwrap();
    /// let err = snapshot.validate().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "interval_minutes: must divide 1440 (the minutes in a day) so the grid is the same every day, found 7"
    /// );
    /// ```
    pub fn validate(&self) -> Result<ValidSnapshot, SnapshotError> {
        let timezone = TimeZone::get(&self.timezone)
            .map_err(|_| err("timezone", Problem::UnknownTimeZone(self.timezone.clone())))?;
        let now: Timestamp = self
            .now
            .parse()
            .map_err(|_| err("now", Problem::ExpectedInstant(self.now.clone())))?;
        let horizon = self.horizon_days.unwrap_or(DEFAULT_HORIZON_DAYS);
        in_range("horizon_days", horizon, 1, MAX_HORIZON_DAYS)?;
        in_range("interval_minutes", self.interval_minutes, 1, 60)?;
        if 1440 % self.interval_minutes != 0 {
            return Err(err(
                "interval_minutes",
                Problem::IntervalNotDivisor(self.interval_minutes),
            ));
        }
        let notice = self.min_notice_minutes.unwrap_or(0);
        in_range("min_notice_minutes", notice, 0, MAX_MIN_NOTICE_MINUTES)?;
        let earliest_start = now
            .checked_add(jiff::SignedDuration::from_mins(i64::from(notice)))
            .map_err(|_| err("now", Problem::OutOfTimeRange))?;
        if let Some(max) = self.max_per_day_segment {
            in_range("max_per_day_segment", max, 1, MAX_PER_DAY_SEGMENT)?;
        }

        // Practitioners, sorted by id.
        let mut practitioners = Vec::with_capacity(self.practitioners.len());
        let mut seen = HashSet::new();
        for (i, p) in self.practitioners.iter().enumerate() {
            let path = format!("practitioners[{i}]");
            if p.id.is_empty() {
                return Err(err(format!("{path}.id"), Problem::Empty));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(err(
                    format!("{path}.id"),
                    Problem::DuplicateId(p.id.clone()),
                ));
            }
            let sessions = weekly_set(&p.sessions, &format!("{path}.sessions"))?;
            let breaks = weekly_set(&p.breaks, &format!("{path}.breaks"))?;
            let mut working: [Vec<MinuteInterval>; 7] = Default::default();
            for wd in 0..7 {
                subtract_into(&sessions[wd], &breaks[wd], &mut working[wd]);
            }
            practitioners.push(ValidPractitioner {
                id: p.id.clone(),
                name: p.name.clone(),
                sessions,
                breaks,
                working,
            });
        }
        practitioners.sort_by(|a, b| a.id.cmp(&b.id));
        // Ids are sorted: a binary search is cheaper than hashing each reference.
        let practitioner_index = |id: &str| {
            practitioners
                .binary_search_by(|p| p.id.as_str().cmp(id))
                .ok()
        };
        let find_practitioner = |id: &str, path: String| {
            practitioner_index(id)
                .ok_or_else(|| err(path, Problem::UnknownPractitioner(id.to_owned())))
        };

        // Reasons sorted by id, and their rules.
        let mut order: Vec<usize> = (0..self.booking_reasons.len()).collect();
        order.sort_by(|&a, &b| self.booking_reasons[a].id.cmp(&self.booking_reasons[b].id));
        let mut reasons = Vec::with_capacity(order.len());
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for (i, r) in self.booking_reasons.iter().enumerate() {
            if r.id.is_empty() {
                return Err(err(format!("booking_reasons[{i}].id"), Problem::Empty));
            }
            if !seen.insert(r.id.as_str()) {
                return Err(err(
                    format!("booking_reasons[{i}].id"),
                    Problem::DuplicateId(r.id.clone()),
                ));
            }
        }
        for (reason_index, &i) in order.iter().enumerate() {
            let r = &self.booking_reasons[i];
            reasons.push(ValidReason {
                id: r.id.clone(),
                name: r.name.clone(),
            });
            let mut seen = HashSet::new();
            for (j, rule) in r.providers.iter().enumerate() {
                let path = format!("booking_reasons[{i}].providers[{j}]");
                let practitioner =
                    find_practitioner(&rule.practitioner, format!("{path}.practitioner"))?;
                if !seen.insert(practitioner) {
                    return Err(err(
                        format!("{path}.practitioner"),
                        Problem::DuplicateRule(rule.practitioner.clone()),
                    ));
                }
                in_range(
                    &format!("{path}.duration_minutes"),
                    rule.duration_minutes,
                    1,
                    1440,
                )?;
                rules.push(ValidRule {
                    practitioner,
                    reason: reason_index,
                    practitioner_id: practitioners[practitioner].id.clone(),
                    reason_id: r.id.clone(),
                    duration: rule.duration_minutes as u16,
                    windows: weekly_set(&rule.windows, &format!("{path}.windows"))?,
                });
            }
        }
        rules.sort_by_key(|r| (r.practitioner, r.reason));
        let mut rules_by_practitioner = vec![(0u32, 0u32); practitioners.len()];
        for (i, rule) in rules.iter().enumerate() {
            let range = &mut rules_by_practitioner[rule.practitioner];
            if range.1 == 0 {
                range.0 = i as u32;
            }
            range.1 = i as u32 + 1;
        }

        // Dates.
        let mut closed = HashSet::new();
        for (i, text) in self.closed_dates.iter().enumerate() {
            closed.insert(parse_date(text).map_err(|e| err(format!("closed_dates[{i}]"), e))?);
        }
        let first_date = timezone.to_datetime(now).date();
        // The zone's transitions around the horizon, found once (usually none or one).
        let margin = jiff::SignedDuration::from_hours(24 * (i64::from(horizon) + 3));
        let (from, to) = match (now.checked_sub(margin), now.checked_add(margin)) {
            (Ok(from), Ok(to)) => (from, to),
            _ => return Err(err("now", Problem::OutOfTimeRange)),
        };
        let transitions: Vec<i64> = timezone
            .following(from)
            .map(|t| t.timestamp())
            .take_while(|&t| t <= to)
            .map(Timestamp::as_second)
            .collect();
        let mut days = Vec::with_capacity(horizon as usize);
        let mut date = first_date;
        for i in 0..horizon {
            if i > 0 {
                date = date
                    .tomorrow()
                    .map_err(|_| err("now", Problem::OutOfTimeRange))?;
            }
            days.push(Day {
                date,
                closed: closed.contains(&date),
                zone: day_zone(&timezone, &transitions, date)
                    .ok_or_else(|| err("now", Problem::OutOfTimeRange))?,
            });
        }
        let day_of = |date: Date| days.binary_search_by_key(&date, |d| d.date).ok();

        // The diary, indexed by (practitioner, day). Paths are only formatted for an error.
        let lookup = |id: &str| {
            practitioner_index(id).ok_or_else(|| Problem::UnknownPractitioner(id.to_owned()))
        };
        let mut entries = Vec::with_capacity(self.appointments.len());
        for (i, a) in self.appointments.iter().enumerate() {
            let at = |field: &str, problem| err(format!("appointments[{i}]{field}"), problem);
            let p = lookup(&a.practitioner).map_err(|e| at(".practitioner", e))?;
            let date = parse_date(&a.date).map_err(|e| at(".date", e))?;
            let interval = parse_interval(&a.start, &a.end).map_err(|(f, e)| at(f, e))?;
            if let Some(d) = day_of(date) {
                entries.push((p as u32, d as u32, interval));
            }
        }
        let appointments = DiaryIndex::build(practitioners.len(), days.len(), entries);
        let mut entries = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let at = |field: &str, problem| err(format!("blocks[{i}]{field}"), problem);
            let who = match &b.practitioner {
                Some(id) => Some(lookup(id).map_err(|e| at(".practitioner", e))?),
                None => None,
            };
            let date = parse_date(&b.date).map_err(|e| at(".date", e))?;
            let interval = parse_interval(&b.start, &b.end).map_err(|(f, e)| at(f, e))?;
            if let Some(d) = day_of(date) {
                match who {
                    Some(p) => entries.push((p as u32, d as u32, interval)),
                    None => entries
                        .extend((0..practitioners.len()).map(|p| (p as u32, d as u32, interval))),
                }
            }
        }
        let blocks = DiaryIndex::build(practitioners.len(), days.len(), entries);

        Ok(ValidSnapshot {
            timezone_name: self.timezone.clone(),
            timezone,
            now,
            earliest_start,
            min_notice_minutes: notice,
            max_per_day_segment: self.max_per_day_segment,
            interval: self.interval_minutes as u16,
            stacking: self.stacking,
            days,
            practitioners,
            reasons,
            rules,
            rules_by_practitioner,
            appointments,
            blocks,
        })
    }
}

impl TryFrom<&Snapshot> for ValidSnapshot {
    type Error = SnapshotError;

    fn try_from(snapshot: &Snapshot) -> Result<Self, Self::Error> {
        snapshot.validate()
    }
}

fn err(path: impl Into<String>, problem: Problem) -> SnapshotError {
    SnapshotError {
        path: path.into(),
        problem,
    }
}

fn in_range(path: &str, found: u32, min: u32, max: u32) -> Result<(), SnapshotError> {
    if (min..=max).contains(&found) {
        Ok(())
    } else {
        Err(err(path, Problem::OutOfRange { min, max, found }))
    }
}

/// Monday is 0.
fn weekday_index(weekday: Weekday) -> usize {
    weekday.to_monday_zero_offset() as usize
}

fn parse_weekday(text: &str) -> Option<usize> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    NAMES.iter().position(|&name| name == text)
}

/// Parses `HH:MM` into minutes since midnight; `24:00` (1440) only if `end`.
fn parse_time(text: &str, end: bool) -> Result<u16, Problem> {
    let bytes = text.as_bytes();
    let digit = |i: usize| match bytes.get(i) {
        Some(b) if b.is_ascii_digit() => Some(u16::from(b - b'0')),
        _ => None,
    };
    let expected = || Problem::ExpectedTime(text.to_owned());
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(expected());
    }
    let (h1, h2, m1, m2) = match (digit(0), digit(1), digit(3), digit(4)) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => return Err(expected()),
    };
    let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
    match (hours, minutes) {
        (24, 0) if end => Ok(MINUTES_PER_DAY),
        (24, 0) => Err(Problem::MidnightStart),
        (0..=23, 0..=59) => Ok(hours * 60 + minutes),
        _ => Err(expected()),
    }
}

/// Parses a strict `YYYY-MM-DD` calendar date.
fn parse_date(text: &str) -> Result<Date, Problem> {
    let expected = || Problem::ExpectedDate(text.to_owned());
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return Err(expected());
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i16>().ok();
    match (number(0..4), number(5..7), number(8..10)) {
        (Some(y), Some(m), Some(d)) => Date::new(y, m as i8, d as i8).map_err(|_| expected()),
        _ => Err(expected()),
    }
}

/// Parses a `start`/`end` pair into an interval; an error comes with the field's path suffix
/// (`.start`, `.end`, or empty for the pair).
fn parse_interval(start: &str, end: &str) -> Result<MinuteInterval, (&'static str, Problem)> {
    let s = parse_time(start, false).map_err(|p| (".start", p))?;
    let e = parse_time(end, true).map_err(|p| (".end", p))?;
    MinuteInterval::new(s, e).ok_or_else(|| {
        (
            "",
            Problem::StartNotBeforeEnd {
                start: start.to_owned(),
                end: end.to_owned(),
            },
        )
    })
}

/// Parses weekly windows at `path` into one normalized set per weekday (Monday first).
fn weekly_set(
    windows: &[WeeklyWindow],
    path: &str,
) -> Result<[Vec<MinuteInterval>; 7], SnapshotError> {
    let mut set: [Vec<MinuteInterval>; 7] = Default::default();
    for (i, window) in windows.iter().enumerate() {
        let path = format!("{path}[{i}]");
        if window.days.is_empty() {
            return Err(err(format!("{path}.days"), Problem::Empty));
        }
        let interval = parse_interval(&window.start, &window.end)
            .map_err(|(field, p)| err(format!("{path}{field}"), p))?;
        for (j, day) in window.days.iter().enumerate() {
            let wd = parse_weekday(day).ok_or_else(|| {
                err(
                    format!("{path}.days[{j}]"),
                    Problem::ExpectedWeekday(day.clone()),
                )
            })?;
            set[wd].push(interval);
        }
    }
    for day in &mut set {
        normalize(day);
    }
    Ok(set)
}

/// The offset rule of `date` in `tz`, given the zone's `transitions` (epoch seconds) around it;
/// `None` if the date is outside jiff's range.
fn day_zone(tz: &TimeZone, transitions: &[i64], date: Date) -> Option<DayZone> {
    let midnight = date.to_datetime(Time::midnight());
    // The next day's midnight must be representable too, for slot ends at 24:00.
    date.tomorrow().ok()?;
    match tz.to_ambiguous_timestamp(midnight).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            let start = offset.to_timestamp(midnight).ok()?;
            let day_end = start.as_second() + i64::from(MINUTES_PER_DAY) * 60;
            Timestamp::from_second(day_end + 2 * 86_400).ok()?;
            let start_second = start.as_second();
            let uniform = !transitions
                .iter()
                .any(|&t| t > start_second && t <= day_end);
            Some(if uniform {
                DayZone::Uniform {
                    midnight_second: start.as_second(),
                    offset,
                }
            } else {
                DayZone::Irregular
            })
        }
        _ => Some(DayZone::Irregular),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_strict_hh_mm() {
        assert_eq!(parse_time("08:30", false), Ok(510));
        assert_eq!(parse_time("00:00", false), Ok(0));
        assert_eq!(parse_time("23:59", false), Ok(1439));
        assert_eq!(parse_time("24:00", true), Ok(1440));
        assert_eq!(parse_time("24:00", false), Err(Problem::MidnightStart));
        for bad in [
            "8:30", "8am", "24:01", "12:60", "25:00", "", "12:3", "12-30", "１2:30",
        ] {
            assert_eq!(
                parse_time(bad, true),
                Err(Problem::ExpectedTime(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_are_strict_calendar_dates() {
        assert_eq!(parse_date("2026-04-03"), Ok(jiff::civil::date(2026, 4, 3)));
        for bad in [
            "2026-02-30",
            "2026-4-3",
            "20260403",
            "2026/04/03",
            "+02026-04-03",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn diary_index_merges_per_practitioner_and_day() {
        let iv = |s, e| MinuteInterval::new(s, e).expect("valid");
        let index = DiaryIndex::build(
            2,
            3,
            vec![
                (1, 2, iv(60, 90)),
                (0, 0, iv(10, 20)),
                (1, 2, iv(30, 60)),
                (1, 2, iv(100, 120)),
                (0, 0, iv(15, 40)),
            ],
        );
        assert_eq!(index.get(0, 0), [iv(10, 40)]);
        assert_eq!(index.get(1, 2), [iv(30, 90), iv(100, 120)]);
        assert!(index.get(0, 1).is_empty());
        assert!(index.get(1, 0).is_empty());
        assert!(index.get(5, 5).is_empty());
    }
}
