//! "Why is there no slot on Tuesday at 10:00 for Dr X?": the rule that removed a slot.
//!
//! [`explain`] looks at one practitioner and one practice-local start time, and for each of the
//! practitioner's booking reasons says whether a slot starting then is published and, if not,
//! which rule of the engine (see `docs/snapshot.md`) removed it: the horizon, a closed date, the
//! working sessions, a break, a block, an appointment, the reason's windows, the diary grid, the
//! minimum notice, a DST gap, stacking, or the per-day-segment limit. It re-uses the engine's own computation, so the answer
//! cannot disagree with what is published.
//!
//! ```
//! use slotbridge_domain::{explain::{explain, Cause}, snapshot::Snapshot};
//! let snapshot: Snapshot = serde_json::from_str(r#"{
//!     "timezone": "Australia/Sydney", "now": "2026-04-03T07:00:00+11:00",
//!     "horizon_days": 7, "interval_minutes": 15, "stacking": true,
//!     "practitioners": [{"id": "lee", "name": "Dr Lee",
//!         "sessions": [{"days": ["fri"], "start": "09:00", "end": "17:00"}],
//!         "breaks": [{"days": ["fri"], "start": "12:30", "end": "13:30"}]}],
//!     "booking_reasons": [{"id": "r1", "name": "Check-up", "providers": [{"practitioner": "lee",
//!         "duration_minutes": 30,
//!         "windows": [{"days": ["fri"], "start": "09:00", "end": "17:00"}]}]}]
//! }"#).unwrap();
//! let valid = snapshot.validate().unwrap();
//! let at = jiff::civil::date(2026, 4, 3).at(12, 45, 0, 0);
//! let e = explain(&valid, "lee", at, None).unwrap();
//! assert_eq!(e.cause, Some(Cause::Break));
//! ```

use jiff::civil::{Date, DateTime};
use serde::{Deserialize, Serialize};

use crate::availability::intervals::MinuteInterval;
use crate::availability::{DaySegment, Slot, compute_slots};
use crate::snapshot::{ValidRule, ValidSnapshot};

/// The rule that removed a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The date is before today or beyond the publishing horizon.
    Horizon,
    /// The practice is closed that date.
    ClosedDate,
    /// The time is outside the practitioner's sessions, or the slot runs past the session's end.
    OutsideSessions,
    /// The slot falls in, or runs into, a weekly break.
    Break,
    /// The slot falls in, or runs into, a dated block (meeting, lunch, holiday).
    Block,
    /// The slot overlaps an appointment.
    Appointment,
    /// The slot is outside the reason's publishing windows for that weekday.
    Window,
    /// The time is not on the diary grid.
    Grid,
    /// The slot starts before now plus the minimum notice.
    Notice,
    /// The local time does not exist that day (a DST gap).
    DstGap,
    /// Stacking is off: only the first free slot of the segment is published.
    Stacking,
    /// The practitioner has no publishing rule for the reason.
    NoRule,
    /// The day segment (morning, afternoon, evening) already offers as many times of the reason
    /// as the PMS's online-booking settings allow.
    SegmentLimit,
}

impl Cause {
    /// A short name: `break`, `block`, `appointment`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Horizon => "horizon",
            Cause::ClosedDate => "closed_date",
            Cause::OutsideSessions => "outside_sessions",
            Cause::Break => "break",
            Cause::Block => "block",
            Cause::Appointment => "appointment",
            Cause::Window => "window",
            Cause::Grid => "grid",
            Cause::Notice => "notice",
            Cause::DstGap => "dst_gap",
            Cause::Stacking => "stacking",
            Cause::NoRule => "no_rule",
            Cause::SegmentLimit => "segment_limit",
        }
    }
}

/// The answer for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonAnswer {
    /// The reason id.
    pub reason: String,
    /// The reason name.
    pub reason_name: String,
    /// Whether a slot of this reason starting at the time is published.
    pub published: bool,
    /// Why not, when not published.
    pub cause: Option<Cause>,
    /// The explanation in words.
    pub detail: String,
}

/// The answer to "why is there no slot at this time for this practitioner?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The practitioner id.
    pub practitioner: String,
    /// The practice-local start time asked about.
    pub at: DateTime,
    /// Whether a slot of any (or the asked) reason is published then.
    pub published: bool,
    /// The cause for the asked reason, or the first cause among the reasons when none is
    /// published; `None` when published.
    pub cause: Option<Cause>,
    /// One sentence for people.
    pub summary: String,
    /// Per reason.
    pub reasons: Vec<ReasonAnswer>,
}

/// Why [`explain`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The practitioner is not in the snapshot (not publishing online).
    #[error("practitioner {0:?} does not publish online (not in the Online Booking Configuration)")]
    UnknownPractitioner(String),
    /// The reason is not in the snapshot.
    #[error("booking reason {0:?} is unknown")]
    UnknownReason(String),
}

fn fmt_min(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn first_hit(set: &[MinuteInterval], span: MinuteInterval) -> Option<MinuteInterval> {
    set.iter().copied().find(|i| i.overlaps(span))
}

/// Explain whether a slot starting at `at` (practice-local) is published for `practitioner`,
/// for `reason` or, without one, for each of the practitioner's reasons.
pub fn explain(
    snapshot: &ValidSnapshot,
    practitioner: &str,
    at: DateTime,
    reason: Option<&str>,
) -> Result<Explanation, ExplainError> {
    let p = snapshot
        .practitioner_index(practitioner)
        .ok_or_else(|| ExplainError::UnknownPractitioner(practitioner.to_owned()))?;
    if let Some(r) = reason {
        snapshot
            .reason_index(r)
            .ok_or_else(|| ExplainError::UnknownReason(r.to_owned()))?;
    }
    let name = snapshot.practitioners()[p].name().to_owned();
    let who = if name.is_empty() {
        practitioner.to_owned()
    } else {
        name
    };
    let date: Date = at.date();
    let minute = minute_of(at);
    let when = format!("{} at {}", date.strftime("%A %-d %B %Y"), fmt_min(minute));

    // Reasons to answer for.
    let rules: Vec<_> = snapshot
        .rules_of(p)
        .iter()
        .filter(|rule| reason.is_none_or(|r| snapshot.reasons()[rule.reason()].id() == r))
        .collect();

    // Day-level causes, the same for every reason.
    let day_cause: Option<(Cause, String)> = match snapshot.day_index(date) {
        None => Some((
            Cause::Horizon,
            format!(
                "{when} is outside the publishing horizon ({} to {}).",
                snapshot
                    .days()
                    .first()
                    .map(|d| d.date().to_string())
                    .unwrap_or_default(),
                snapshot
                    .days()
                    .last()
                    .map(|d| d.date().to_string())
                    .unwrap_or_default()
            ),
        )),
        Some(i) if snapshot.days()[i].is_closed() => Some((
            Cause::ClosedDate,
            format!("The practice is closed on {}.", date),
        )),
        Some(_) => None,
    };

    let mut answers = Vec::new();
    if rules.is_empty() {
        let (cause, detail) = day_cause.clone().unwrap_or((
            Cause::NoRule,
            format!(
                "{who} has no publishing rule for {}; in Exact, add them with Configure Providers.",
                reason.unwrap_or("any booking reason")
            ),
        ));
        return Ok(Explanation {
            practitioner: practitioner.to_owned(),
            at,
            published: false,
            cause: Some(cause),
            summary: format!("No slot for {who} on {when}: {detail}"),
            reasons: answers,
        });
    }

    let slots = compute_slots(snapshot);
    for rule in rules {
        let reason_v = &snapshot.reasons()[rule.reason()];
        let d = rule.duration_minutes();
        let published = slots.iter().any(|s| {
            s.practitioner == practitioner
                && s.reason == reason_v.id()
                && s.start_offset.to_datetime(s.start) == at
        });
        let (cause, detail) = if published {
            (
                None,
                format!("A {d}-minute slot starts then and is published."),
            )
        } else if let Some((c, text)) = day_cause.clone() {
            (Some(c), text)
        } else {
            let (c, text) = slot_cause(snapshot, &slots, p, rule, date, minute, d);
            (Some(c), text)
        };
        answers.push(ReasonAnswer {
            reason: reason_v.id().to_owned(),
            reason_name: reason_v.name().to_owned(),
            published,
            cause,
            detail,
        });
    }
    let published = answers.iter().any(|a| a.published);
    let cause = if published {
        None
    } else {
        answers.first().and_then(|a| a.cause)
    };
    let summary = if published {
        let names: Vec<&str> = answers
            .iter()
            .filter(|a| a.published)
            .map(|a| a.reason_name.as_str())
            .collect();
        format!(
            "{who} has a published slot on {when} for {}.",
            names.join(", ")
        )
    } else {
        format!(
            "No slot for {who} on {when}: {}",
            answers
                .first()
                .map(|a| a.detail.as_str())
                .unwrap_or_default()
        )
    };
    Ok(Explanation {
        practitioner: practitioner.to_owned(),
        at,
        published,
        cause,
        summary,
        reasons: answers,
    })
}

/// The cause for one rule on a date inside the horizon that is open.
fn slot_cause(
    snapshot: &ValidSnapshot,
    slots: &[Slot<'_>],
    p: usize,
    rule: &ValidRule,
    date: Date,
    minute: u16,
    duration: u16,
) -> (Cause, String) {
    let Some(day_index) = snapshot.day_index(date) else {
        return (Cause::Horizon, "The date is outside the horizon.".into());
    };
    let day = &snapshot.days()[day_index];
    let practitioner = &snapshot.practitioners()[p];
    let weekday = day.weekday();
    let windows = rule.windows(weekday);
    let end = (u32::from(minute) + u32::from(duration)).min(1440) as u16;
    let span = MinuteInterval {
        start: minute,
        end: end.max(minute + 1),
    };
    let sessions = practitioner.sessions(weekday);
    let breaks = practitioner.breaks(weekday);
    let blocks = snapshot.blocks().get(p, day_index);
    let appointments = snapshot.appointments().get(p, day_index);
    let point = MinuteInterval {
        start: minute,
        end: minute + 1,
    };

    // The start itself.
    if !sessions.iter().any(|s| s.overlaps(point)) {
        let hours: Vec<String> = sessions
            .iter()
            .map(|s| format!("{}-{}", fmt_min(s.start), fmt_min(s.end)))
            .collect();
        let text = if hours.is_empty() {
            "they have no session that day.".to_owned()
        } else {
            format!(
                "it is outside their sessions that day ({}).",
                hours.join(", ")
            )
        };
        return (Cause::OutsideSessions, capitalise(&text));
    }
    if let Some(b) = first_hit(breaks, point) {
        return (
            Cause::Break,
            format!(
                "It falls in the break {}-{}.",
                fmt_min(b.start),
                fmt_min(b.end)
            ),
        );
    }
    if let Some(b) = first_hit(blocks, point) {
        return (
            Cause::Block,
            format!(
                "It falls in a block {}-{}.",
                fmt_min(b.start),
                fmt_min(b.end)
            ),
        );
    }
    let interval = snapshot.interval_minutes();
    if !minute.is_multiple_of(interval) {
        let before = minute - minute % interval;
        return (
            Cause::Grid,
            format!(
                "{} is not on the {interval}-minute diary grid; slots may start at {} or {}.",
                fmt_min(minute),
                fmt_min(before),
                fmt_min(before + interval)
            ),
        );
    }
    // The whole slot.
    let in_session = sessions.iter().any(|s| s.contains_span(minute, duration));
    if let Some(b) = first_hit(breaks, span) {
        return (
            Cause::Break,
            format!(
                "A {duration}-minute slot from {} would run into the break at {}.",
                fmt_min(minute),
                fmt_min(b.start)
            ),
        );
    }
    if let Some(b) = first_hit(blocks, span) {
        return (
            Cause::Block,
            format!(
                "A {duration}-minute slot from {} would run into a block at {}.",
                fmt_min(minute),
                fmt_min(b.start)
            ),
        );
    }
    if !in_session || u32::from(minute) + u32::from(duration) > 1440 {
        return (
            Cause::OutsideSessions,
            format!(
                "A {duration}-minute slot from {} would run past the end of the session.",
                fmt_min(minute)
            ),
        );
    }
    if !windows.iter().any(|w| w.contains_span(minute, duration)) {
        let text: Vec<String> = windows
            .iter()
            .map(|w| format!("{}-{}", fmt_min(w.start), fmt_min(w.end)))
            .collect();
        return (
            Cause::Window,
            if text.is_empty() {
                "The reason is not published for them on that weekday (no window).".to_owned()
            } else {
                format!(
                    "A {duration}-minute slot from {} is outside the reason's publishing windows \
                     that day ({}).",
                    fmt_min(minute),
                    text.join(", ")
                )
            },
        );
    }
    if let Some(a) = first_hit(appointments, span) {
        return (
            Cause::Appointment,
            format!(
                "A {duration}-minute slot from {} would overlap the appointment {}-{}.",
                fmt_min(minute),
                fmt_min(a.start),
                fmt_min(a.end)
            ),
        );
    }
    match snapshot.resolve(day, minute) {
        None => {
            return (
                Cause::DstGap,
                format!(
                    "{} does not exist on {date}: the clocks skip it for daylight saving.",
                    fmt_min(minute)
                ),
            );
        }
        Some((ts, _)) if ts < snapshot.earliest_start() => {
            return (Cause::Notice, notice_text(snapshot));
        }
        Some(_) => {}
    }
    if let Some(max) = snapshot.max_per_day_segment() {
        let segment = DaySegment::of_minute(minute);
        let offered: Vec<String> = slots
            .iter()
            .filter(|s| s.practitioner == rule.practitioner_id() && s.reason == rule.reason_id())
            .map(|s| s.start_offset.to_datetime(s.start))
            .filter(|t| t.date() == date && DaySegment::of_minute(minute_of(*t)) == segment)
            .map(|t| fmt_min(minute_of(t)))
            .collect();
        if offered.len() >= max as usize {
            let name = segment.name();
            return (
                Cause::SegmentLimit,
                format!(
                    "The {name}'s online-booking limit is reached: the practice offers at most \
                     {max} times of this type per {name}, the earliest ({}).",
                    offered.join(", ")
                ),
            );
        }
    }
    if !snapshot.stacking() {
        return (
            Cause::Stacking,
            "Appointment Stacking is off, so only the first free slot after each break is \
             published; tick Appointment Stacking in Exact's Web Setup to publish it."
                .into(),
        );
    }
    (Cause::Window, "No slot of this reason starts then.".into())
}

/// Why a day shows fewer slots than its diary has room for, by the PMS's online-booking rules:
/// the notice (on the days it reaches into) and the per-day-segment limit (on the day segments it
/// cut), one sentence each. The engine's own output, with and without the limit, so the notes
/// cannot disagree with what is published.
///
/// ```
/// use slotbridge_domain::{explain::RuleNotes, snapshot::Snapshot};
/// let snapshot: Snapshot = serde_json::from_str(r#"{
///     "timezone": "Australia/Sydney", "now": "2026-04-03T07:00:00+11:00",
///     "horizon_days": 2, "interval_minutes": 30, "stacking": true,
///     "min_notice_minutes": 120, "max_per_day_segment": 1,
///     "practitioners": [{"id": "lee", "sessions": [
///         {"days": ["fri", "sat"], "start": "08:00", "end": "12:00"}]}],
///     "booking_reasons": [{"id": "r1", "providers": [{"practitioner": "lee",
///         "duration_minutes": 30,
///         "windows": [{"days": ["fri", "sat"], "start": "00:00", "end": "24:00"}]}]}]
/// }"#).unwrap();
/// let valid = snapshot.validate().unwrap();
/// let notes = RuleNotes::new(&valid);
/// let friday = notes.for_day("lee", jiff::civil::date(2026, 4, 3));
/// assert_eq!(friday[0], "Slots before 09:00 are within the practice's 2-hour online-booking notice.");
/// assert_eq!(friday[1], "The morning's online-booking limit is reached (1 time of a type per morning).");
/// let saturday = notes.for_day("lee", jiff::civil::date(2026, 4, 4));
/// assert_eq!(saturday.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct RuleNotes {
    notice: Option<(DateTime, String)>,
    limit: Option<u32>,
    /// (practitioner, date, segment) where the limit removed slots.
    cut: std::collections::BTreeSet<(String, Date, DaySegment)>,
}

impl RuleNotes {
    /// The notes of a snapshot.
    pub fn new(snapshot: &ValidSnapshot) -> RuleNotes {
        let notice = (snapshot.min_notice_minutes() > 0).then(|| {
            let at = snapshot
                .earliest_start()
                .to_zoned_datetime(snapshot.timezone().clone())
                .datetime();
            (at, notice_length(snapshot.min_notice_minutes()))
        });
        let mut cut = std::collections::BTreeSet::new();
        let limit = snapshot.max_per_day_segment();
        if limit.is_some() {
            let unlimited = snapshot.without_segment_limit();
            let count = |slots: Vec<Slot<'_>>| {
                let mut n: std::collections::BTreeMap<(String, String, Date, DaySegment), usize> =
                    std::collections::BTreeMap::new();
                for s in slots {
                    let t = s.start_offset.to_datetime(s.start);
                    *n.entry((
                        s.practitioner.to_owned(),
                        s.reason.to_owned(),
                        t.date(),
                        DaySegment::of_minute(minute_of(t)),
                    ))
                    .or_default() += 1;
                }
                n
            };
            let kept = count(compute_slots(snapshot));
            for ((p, r, date, segment), n) in count(compute_slots(&unlimited)) {
                if kept
                    .get(&(p.clone(), r, date, segment))
                    .copied()
                    .unwrap_or(0)
                    < n
                {
                    cut.insert((p, date, segment));
                }
            }
        }
        RuleNotes { notice, limit, cut }
    }

    /// The notes for one practitioner's day.
    pub fn for_day(&self, practitioner: &str, date: Date) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((at, length)) = &self.notice {
            if date < at.date() {
                out.push(format!(
                    "The whole day is within the practice's {length} online-booking notice."
                ));
            } else if date == at.date() && minute_of(*at) > 0 {
                out.push(format!(
                    "Slots before {} are within the practice's {length} online-booking notice.",
                    fmt_min(minute_of(*at))
                ));
            }
        }
        if let Some(max) = self.limit {
            for segment in [
                DaySegment::Morning,
                DaySegment::Afternoon,
                DaySegment::Evening,
            ] {
                if self.cut.contains(&(practitioner.to_owned(), date, segment)) {
                    let name = segment.name();
                    let times = if max == 1 { "time" } else { "times" };
                    out.push(format!(
                        "The {name}'s online-booking limit is reached ({max} {times} of a type \
                         per {name})."
                    ));
                }
            }
        }
        out
    }
}

/// `2-hour`, `90-minute`.
fn notice_length(minutes: u32) -> String {
    if minutes > 0 && minutes.is_multiple_of(60) {
        format!("{}-hour", minutes / 60)
    } else {
        format!("{minutes}-minute")
    }
}

/// The notice in words: "It is within the practice's 2-hour online-booking notice …".
fn notice_text(snapshot: &ValidSnapshot) -> String {
    let length = notice_length(snapshot.min_notice_minutes());
    let from = snapshot
        .earliest_start()
        .to_zoned_datetime(snapshot.timezone().clone())
        .strftime("%A %-d %B %H:%M");
    format!(
        "It is within the practice's {length} online-booking notice: slots start from {from}, \
         so it can no longer be booked online."
    )
}

fn minute_of(t: DateTime) -> u16 {
    u16::try_from(i32::from(t.hour()) * 60 + i32::from(t.minute())).unwrap_or(0)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use jiff::civil::date;

    /// Friday 2026-04-03 in Sydney; now is 08:10 that morning.
    fn snapshot(stacking: bool) -> ValidSnapshot {
        raw(stacking).validate().expect("valid")
    }

    fn raw(stacking: bool) -> Snapshot {
        serde_json::from_value(serde_json::json!({
            "timezone": "Australia/Sydney",
            "now": "2026-04-03T08:10:00+11:00",
            "horizon_days": 14,
            "interval_minutes": 15,
            "stacking": stacking,
            "min_notice_minutes": 60,
            "practitioners": [{"id": "p1", "name": "Dr Mia Chen",
                "sessions": [{"days": ["mon","tue","wed","thu","fri"], "start": "08:00", "end": "17:00"}],
                "breaks": [{"days": ["mon","tue","wed","thu","fri"], "start": "12:30", "end": "13:30"}]}],
            "booking_reasons": [
                {"id": "r1", "name": "Check-up", "providers": [{"practitioner": "p1",
                    "duration_minutes": 30,
                    "windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "08:00", "end": "17:00"}]}]},
                {"id": "r2", "name": "Whitening", "providers": [{"practitioner": "p1",
                    "duration_minutes": 60,
                    "windows": [{"days": ["tue"], "start": "13:30", "end": "17:00"}]}]}
            ],
            "appointments": [{"practitioner": "p1", "date": "2026-04-07", "start": "10:00", "end": "10:45"}],
            "blocks": [{"practitioner": "p1", "date": "2026-04-08", "start": "14:00", "end": "15:00"}],
            "closed_dates": ["2026-04-06"]
        }))
        .expect("snapshot")
    }

    fn cause(s: &ValidSnapshot, y: i16, m: i8, d: i8, h: i8, min: i8, r: &str) -> Option<Cause> {
        explain(s, "p1", date(y, m, d).at(h, min, 0, 0), Some(r))
            .expect("explain")
            .cause
    }

    #[test]
    fn each_rule_that_removes_a_slot_is_named() {
        let s = snapshot(true);
        // Tuesday 2026-04-07.
        assert_eq!(cause(&s, 2026, 4, 7, 9, 0, "r1"), None, "published");
        assert_eq!(
            cause(&s, 2026, 4, 7, 10, 15, "r1"),
            Some(Cause::Appointment)
        );
        assert_eq!(cause(&s, 2026, 4, 7, 9, 45, "r1"), Some(Cause::Appointment));
        assert_eq!(cause(&s, 2026, 4, 7, 12, 45, "r1"), Some(Cause::Break));
        assert_eq!(cause(&s, 2026, 4, 7, 12, 15, "r1"), Some(Cause::Break));
        assert_eq!(
            cause(&s, 2026, 4, 7, 7, 0, "r1"),
            Some(Cause::OutsideSessions)
        );
        assert_eq!(
            cause(&s, 2026, 4, 7, 16, 45, "r2"),
            Some(Cause::OutsideSessions)
        );
        assert_eq!(cause(&s, 2026, 4, 7, 9, 10, "r1"), Some(Cause::Grid));
        assert_eq!(cause(&s, 2026, 4, 7, 9, 0, "r2"), Some(Cause::Window));
        assert_eq!(cause(&s, 2026, 4, 8, 14, 30, "r1"), Some(Cause::Block));
        assert_eq!(cause(&s, 2026, 4, 6, 9, 0, "r1"), Some(Cause::ClosedDate));
        assert_eq!(cause(&s, 2026, 4, 30, 9, 0, "r1"), Some(Cause::Horizon));
        assert_eq!(cause(&s, 2026, 4, 3, 8, 30, "r1"), Some(Cause::Notice));
        assert_eq!(
            cause(&s, 2026, 4, 4, 9, 0, "r1"),
            Some(Cause::OutsideSessions)
        );
    }

    #[test]
    fn the_notice_is_named_with_its_length() {
        let s = snapshot(true);
        let e = explain(&s, "p1", date(2026, 4, 3).at(8, 30, 0, 0), Some("r1")).expect("explain");
        assert_eq!(e.cause, Some(Cause::Notice));
        assert!(
            e.summary
                .contains("within the practice's 1-hour online-booking notice"),
            "{}",
            e.summary
        );
        assert!(e.summary.contains("09:10"), "{}", e.summary);
    }

    #[test]
    fn a_full_day_segment_is_named_with_the_times_it_offers() {
        let mut raw = raw(true);
        raw.max_per_day_segment = Some(2);
        let s = raw.validate().expect("valid");
        // Tuesday 2026-04-07: the morning offers 08:00 and 08:15; 09:00 is free but past the
        // limit, as is everything after the 10:00 appointment until noon.
        assert_eq!(cause(&s, 2026, 4, 7, 8, 0, "r1"), None);
        assert_eq!(cause(&s, 2026, 4, 7, 8, 15, "r1"), None);
        let e = explain(&s, "p1", date(2026, 4, 7).at(9, 0, 0, 0), Some("r1")).expect("explain");
        assert_eq!(e.cause, Some(Cause::SegmentLimit));
        assert!(
            e.summary
                .contains("The morning's online-booking limit is reached"),
            "{}",
            e.summary
        );
        assert!(e.summary.contains("(08:00, 08:15)"), "{}", e.summary);
        assert_eq!(
            cause(&s, 2026, 4, 7, 11, 0, "r1"),
            Some(Cause::SegmentLimit)
        );
        // Other causes come first, and the afternoon (12:00, then 13:30 after the break) has its
        // own quota.
        assert_eq!(
            cause(&s, 2026, 4, 7, 10, 15, "r1"),
            Some(Cause::Appointment)
        );
        assert_eq!(cause(&s, 2026, 4, 7, 12, 0, "r1"), None);
        assert_eq!(cause(&s, 2026, 4, 7, 13, 30, "r1"), None);
        assert_eq!(
            cause(&s, 2026, 4, 7, 13, 45, "r1"),
            Some(Cause::SegmentLimit)
        );
    }

    #[test]
    fn stacking_off_is_named_for_the_second_slot_of_a_segment() {
        let s = snapshot(false);
        assert_eq!(cause(&s, 2026, 4, 7, 8, 0, "r1"), None);
        assert_eq!(cause(&s, 2026, 4, 7, 8, 30, "r1"), Some(Cause::Stacking));
        assert_eq!(
            cause(&s, 2026, 4, 7, 13, 30, "r1"),
            None,
            "first after lunch"
        );
    }

    #[test]
    fn without_a_reason_every_rule_is_answered_and_the_summary_names_the_practitioner() {
        let s = snapshot(true);
        let e = explain(&s, "p1", date(2026, 4, 7).at(12, 45, 0, 0), None).expect("explain");
        assert_eq!(e.reasons.len(), 2);
        assert!(!e.published);
        assert_eq!(e.cause, Some(Cause::Break));
        assert!(e.summary.contains("Dr Mia Chen"), "{}", e.summary);
        assert!(e.summary.contains("break 12:30-13:30"), "{}", e.summary);
        let ok = explain(&s, "p1", date(2026, 4, 7).at(14, 0, 0, 0), None).expect("explain");
        assert!(ok.published);
        assert!(ok.summary.contains("Check-up"));
    }

    #[test]
    fn a_dst_gap_is_named() {
        // Sydney's clocks go forward at 02:00 on Sunday 2026-10-04.
        let s: Snapshot = serde_json::from_value(serde_json::json!({
            "timezone": "Australia/Sydney", "now": "2026-10-01T08:00:00+10:00",
            "horizon_days": 7, "interval_minutes": 30, "stacking": true,
            "practitioners": [{"id": "p1", "sessions": [{"days": ["sun"], "start": "00:00", "end": "06:00"}]}],
            "booking_reasons": [{"id": "r1", "providers": [{"practitioner": "p1", "duration_minutes": 30,
                "windows": [{"days": ["sun"], "start": "00:00", "end": "06:00"}]}]}]
        }))
        .expect("snapshot");
        let s = s.validate().expect("valid");
        assert_eq!(cause(&s, 2026, 10, 4, 2, 30, "r1"), Some(Cause::DstGap));
        assert_eq!(cause(&s, 2026, 10, 4, 3, 0, "r1"), None);
    }

    #[test]
    fn unknown_practitioners_and_reasons_are_errors() {
        let s = snapshot(true);
        let at = date(2026, 4, 7).at(9, 0, 0, 0);
        assert!(matches!(
            explain(&s, "nobody", at, None),
            Err(ExplainError::UnknownPractitioner(_))
        ));
        assert!(matches!(
            explain(&s, "p1", at, Some("zzz")),
            Err(ExplainError::UnknownReason(_))
        ));
    }
}
