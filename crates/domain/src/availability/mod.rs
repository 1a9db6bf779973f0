//! The availability engine: which slots of a practice's diary may be published online.
//!
//! [`compute_slots`] applies the rules of `docs/snapshot.md` to a [`ValidSnapshot`]:
//!
//! 1. dates run from the practice-local date of `now` for `horizon_days` days, skipping closed
//!    dates;
//! 2. a practitioner's working time on a date is the union of the weekday's sessions, minus its
//!    breaks and the date's blocks ([`working_segments`]); its connected pieces are segments;
//! 3. a slot starts on the grid, lasts the rule's duration, lies inside one segment and inside
//!    the union of the rule's windows ([`bookable_pieces`]), and overlaps no appointment
//!    ([`free_intervals`], [`grid_starts`]);
//! 4. no slot starts before `now + min_notice_minutes`;
//! 5. stacking off keeps only the first slot of each segment;
//! 6. civil times become instants for their own date: a start in a DST gap is skipped, an
//!    ambiguous one takes the earlier instant, and `end = start + duration`;
//! 7. the output is sorted by start instant, practitioner id, then reason id;
//! 8. with `max_per_day_segment`, at most that many slots per practitioner, reason, date and
//!    [`DaySegment`] (morning, afternoon, evening, by the start's local time): the earliest.
//!
//! The work is linear in days × practitioners × rules plus the slots produced: every step is a
//! merge of sorted interval vectors, the diary is indexed by (practitioner, date) at validation,
//! and buffers are reused from one date to the next.

pub mod intervals;

use jiff::Timestamp;
use jiff::tz::Offset;
use serde::ser::{Serialize, SerializeStruct, Serializer};

pub use intervals::{
    MINUTES_PER_DAY, MinuteInterval, grid_starts, intersect_into, normalize, subtract_into,
};

use crate::snapshot::{Day, DayZone, ValidSnapshot};

/// One publishable slot: an alternative the marketplace may offer a patient.
///
/// Serializes as `{"practitioner", "reason", "start", "end"}` with RFC 3339 instants in the
/// practice's local offset, e.g. `2026-04-03T09:00:00+11:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<'a> {
    /// The practitioner's id.
    pub practitioner: &'a str,
    /// The booking reason's id.
    pub reason: &'a str,
    /// The start instant.
    pub start: Timestamp,
    /// The practice's UTC offset at `start`.
    pub start_offset: Offset,
    /// The end instant: `start` plus the rule's duration.
    pub end: Timestamp,
    /// The practice's UTC offset at `end` (differs from `start_offset` across a DST change).
    pub end_offset: Offset,
}

impl Slot<'_> {
    /// The start as RFC 3339 with the local offset, e.g. `2026-04-03T09:00:00+11:00`.
    pub fn start_rfc3339(&self) -> String {
        self.start
            .display_with_offset(self.start_offset)
            .to_string()
    }

    /// The end as RFC 3339 with the local offset.
    pub fn end_rfc3339(&self) -> String {
        self.end.display_with_offset(self.end_offset).to_string()
    }
}

impl Serialize for Slot<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Slot", 4)?;
        s.serialize_field("practitioner", self.practitioner)?;
        s.serialize_field("reason", self.reason)?;
        s.serialize_field("start", &self.start_rfc3339())?;
        s.serialize_field("end", &self.end_rfc3339())?;
        s.end()
    }
}

/// Rule 2: a practitioner's working segments on a date, written into `out`: the weekday's
/// working time (sessions minus breaks, see
/// [`ValidPractitioner::weekly_working`](crate::snapshot::ValidPractitioner::weekly_working))
/// minus the date's blocks. Each interval of the result is one segment.
pub fn working_segments(
    weekly_working: &[MinuteInterval],
    blocks: &[MinuteInterval],
    out: &mut Vec<MinuteInterval>,
) {
    subtract_into(weekly_working, blocks, out);
}

/// Rule 3, windows: the parts of `segment` that lie inside the union of the rule's `windows`,
/// written into `out`. A slot inside the segment and inside the windows lies inside one of them.
pub fn bookable_pieces(
    segment: MinuteInterval,
    windows: &[MinuteInterval],
    out: &mut Vec<MinuteInterval>,
) {
    intersect_into(std::slice::from_ref(&segment), windows, out);
}

/// Rule 3, appointments: `pieces` minus the practitioner's `appointments` of the date, written
/// into `out`. Half-open, so a slot may end when an appointment starts.
pub fn free_intervals(
    pieces: &[MinuteInterval],
    appointments: &[MinuteInterval],
    out: &mut Vec<MinuteInterval>,
) {
    subtract_into(pieces, appointments, out);
}

/// A part of the practice-local day, for the per-day-segment limit (rule 8): morning before
/// 12:00, afternoon from 12:00 to 17:00, evening from 17:00 (Cliniko's day parts).
///
/// ```
/// use slotbridge_domain::availability::DaySegment;
/// assert_eq!(DaySegment::of_minute(11 * 60 + 59), DaySegment::Morning);
/// assert_eq!(DaySegment::of_minute(12 * 60), DaySegment::Afternoon);
/// assert_eq!(DaySegment::of_minute(17 * 60), DaySegment::Evening);
/// assert_eq!(DaySegment::Afternoon.name(), "afternoon");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DaySegment {
    /// Before 12:00.
    Morning,
    /// 12:00 to 17:00.
    Afternoon,
    /// From 17:00.
    Evening,
}

impl DaySegment {
    /// The segment of a local start, in minutes since midnight.
    pub fn of_minute(minute: u16) -> DaySegment {
        match minute {
            ..720 => DaySegment::Morning,
            720..1020 => DaySegment::Afternoon,
            _ => DaySegment::Evening,
        }
    }

    /// `morning`, `afternoon` or `evening`.
    pub fn name(self) -> &'static str {
        match self {
            DaySegment::Morning => "morning",
            DaySegment::Afternoon => "afternoon",
            DaySegment::Evening => "evening",
        }
    }
}

/// The buffers one computation reuses from date to date.
#[derive(Default)]
struct Buffers {
    segments: Vec<MinuteInterval>,
    pieces: Vec<MinuteInterval>,
    free: Vec<MinuteInterval>,
    /// The date's candidates as (minute, rule index), in rule order, each rule's ascending.
    candidates: Vec<(u16, u16)>,
    sorted: Vec<(u16, u16)>,
    counts: Vec<u32>,
}

/// Computes every publishable slot of the snapshot (rules 1-8 of `docs/snapshot.md`).
///
/// ```
/// use slotbridge_domain::{availability::compute_slots, snapshot::Snapshot};
/// let snapshot: Snapshot = serde_json::from_str(r#"{
///     "timezone": "Australia/Sydney", "now": "2026-04-03T07:00:00+11:00",
///     "horizon_days": 1, "interval_minutes": 30, "stacking": false,
///     "practitioners": [{"id": "lee", "sessions": [
///         {"days": ["fri"], "start": "09:00", "end": "12:00"},
///         {"days": ["fri"], "start": "13:00", "end": "17:00"}]}],
///     "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee",
///         "duration_minutes": 30,
///         "windows": [{"days": ["fri"], "start": "00:00", "end": "24:00"}]}]}],
///     "appointments": [{"practitioner": "lee", "date": "2026-04-03",
///         "start": "09:00", "end": "10:00"}]
/// }"#).unwrap();
/// let valid = snapshot.validate().unwrap();
/// let slots = compute_slots(&valid);
/// let starts: Vec<String> = slots.iter().map(|s| s.start_rfc3339()).collect();
/// assert_eq!(starts, ["2026-04-03T10:00:00+11:00", "2026-04-03T13:00:00+11:00"]);
/// ```
pub fn compute_slots(snapshot: &ValidSnapshot) -> Vec<Slot<'_>> {
    let mut out = Vec::new();
    compute_slots_into(snapshot, &mut out);
    out
}

/// [`compute_slots`] into a caller-owned vector (cleared first), to reuse its allocation.
pub fn compute_slots_into<'a>(snapshot: &'a ValidSnapshot, out: &mut Vec<Slot<'a>>) {
    out.clear();
    let mut buffers = Buffers::default();
    for (day_index, day) in snapshot.days().iter().enumerate() {
        if day.is_closed() {
            continue;
        }
        day_candidates(snapshot, day_index, day, &mut buffers);
        emit_day(snapshot, day, &mut buffers, out);
    }
}

/// Rules 2-6 and 8 for one date: fills `buffers.candidates` with (minute, rule index) pairs,
/// grouped by rule in rule order and ascending within a rule.
fn day_candidates(snapshot: &ValidSnapshot, day_index: usize, day: &Day, buffers: &mut Buffers) {
    let Buffers {
        segments,
        pieces,
        free,
        candidates,
        ..
    } = buffers;
    candidates.clear();
    let weekday = day.weekday();
    let interval = snapshot.interval_minutes();
    let stacking = snapshot.stacking();
    let limit = snapshot.max_per_day_segment();
    let notice = Notice::for_day(snapshot, day);
    if notice == Notice::Nothing {
        return;
    }
    let mut rule_index = 0usize;
    for (p, practitioner) in snapshot.practitioners().iter().enumerate() {
        let rules = snapshot.rules_of(p);
        let first_rule = rule_index;
        rule_index += rules.len();
        if rules.is_empty() {
            continue;
        }
        let weekly = practitioner.weekly_working(weekday);
        if weekly.is_empty() {
            continue;
        }
        let blocks = snapshot.blocks().get(p, day_index);
        let day_segments: &[MinuteInterval] = if blocks.is_empty() {
            weekly
        } else {
            working_segments(weekly, blocks, segments);
            segments
        };
        let appointments = snapshot.appointments().get(p, day_index);
        for (r, rule) in rules.iter().enumerate() {
            let windows = rule.windows(weekday);
            if windows.is_empty() {
                continue;
            }
            let duration = rule.duration_minutes();
            let tag = (first_rule + r) as u16;
            // Rule 8: slots kept per day segment so far; a rule's starts come in ascending
            // order, so the earliest are kept.
            let mut kept = [0u32; 3];
            for &segment in day_segments {
                if segment.len() < duration {
                    continue;
                }
                bookable_pieces(segment, windows, pieces);
                free_intervals(pieces, appointments, free);
                'segment: for &f in free.iter() {
                    for minute in grid_starts(f, duration, interval) {
                        if !notice.allows(snapshot, day, minute) {
                            continue;
                        }
                        let n = &mut kept[DaySegment::of_minute(minute) as usize];
                        if limit.is_none_or(|max| *n < max) {
                            *n += 1;
                            candidates.push((minute, tag));
                        }
                        if !stacking {
                            // Rule 5: only the segment's first slot.
                            break 'segment;
                        }
                    }
                }
            }
        }
    }
}

/// Rules 4 and 6 for the starts of one date, decided once per date where possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// Every start of the date is after `now + min_notice`: only minutes before `from` are not.
    From(u16),
    /// The whole date is before `now + min_notice`.
    Nothing,
    /// A DST change date: each start is resolved and compared on its own.
    EachStart(i64),
}

impl Notice {
    fn for_day(snapshot: &ValidSnapshot, day: &Day) -> Notice {
        let earliest = snapshot.earliest_start();
        // Rounded up to whole seconds: starts are whole minutes.
        let earliest = earliest.as_second() + i64::from(earliest.subsec_nanosecond() > 0);
        match day.zone() {
            DayZone::Uniform {
                midnight_second, ..
            } => {
                let wait = earliest - midnight_second;
                if wait <= 0 {
                    Notice::From(0)
                } else if wait > i64::from(MINUTES_PER_DAY) * 60 {
                    Notice::Nothing
                } else {
                    // The first whole minute at or after `earliest`.
                    Notice::From(((wait + 59) / 60) as u16)
                }
            }
            DayZone::Irregular => Notice::EachStart(earliest),
        }
    }

    /// Whether a start at `minute` exists and is not before `now + min_notice`.
    fn allows(self, snapshot: &ValidSnapshot, day: &Day, minute: u16) -> bool {
        match self {
            Notice::From(from) => minute >= from,
            Notice::Nothing => false,
            Notice::EachStart(earliest) => snapshot
                .resolve(day, minute)
                .is_some_and(|(ts, _)| ts.as_second() >= earliest),
        }
    }
}

/// Rule 7 for one date: sorts the date's candidates by minute (a stable counting sort, which
/// keeps rule order for equal minutes), turns them into slots and appends them to `out`.
///
/// Within a date, later civil minutes are later instants (gaps are skipped, folds take the
/// earlier instant), and every instant of a date precedes the next date's, so sorting each date
/// by minute sorts the whole output.
fn emit_day<'a>(
    snapshot: &'a ValidSnapshot,
    day: &Day,
    buffers: &mut Buffers,
    out: &mut Vec<Slot<'a>>,
) {
    let Buffers {
        candidates,
        sorted,
        counts,
        ..
    } = buffers;
    let ordered: &[(u16, u16)] = if candidates.is_sorted() {
        candidates
    } else {
        let interval = usize::from(snapshot.interval_minutes());
        counts.clear();
        counts.resize(1440 / interval + 1, 0);
        for &(minute, _) in candidates.iter() {
            counts[usize::from(minute) / interval + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        sorted.clear();
        sorted.resize(candidates.len(), (0, 0));
        for &candidate in candidates.iter() {
            let bucket = &mut counts[usize::from(candidate.0) / interval];
            sorted[*bucket as usize] = candidate;
            *bucket += 1;
        }
        sorted
    };
    let rules = snapshot.rules();
    out.reserve(ordered.len());
    for &(minute, tag) in ordered {
        let rule = &rules[usize::from(tag)];
        let slot = match day.zone() {
            // Uniform means no transition until after the date's 24:00, and a slot ends by then.
            DayZone::Uniform {
                midnight_second,
                offset,
            } => {
                let start_second = midnight_second + 60 * i64::from(minute);
                let end_second = start_second + 60 * i64::from(rule.duration_minutes());
                match (
                    Timestamp::from_second(start_second),
                    Timestamp::from_second(end_second),
                ) {
                    (Ok(start), Ok(end)) => (start, offset, end, offset),
                    _ => continue,
                }
            }
            DayZone::Irregular => {
                let Some((start, start_offset)) = snapshot.resolve(day, minute) else {
                    continue;
                };
                let end_second = start.as_second() + 60 * i64::from(rule.duration_minutes());
                let Ok(end) = Timestamp::from_second(end_second) else {
                    continue;
                };
                (start, start_offset, end, snapshot.timezone().to_offset(end))
            }
        };
        out.push(Slot {
            practitioner: rule.practitioner_id(),
            reason: rule.reason_id(),
            start: slot.0,
            start_offset: slot.1,
            end: slot.2,
            end_offset: slot.3,
        });
    }
}
