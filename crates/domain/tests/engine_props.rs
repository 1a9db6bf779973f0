//! Property tests of the availability engine on random snapshots.
//!
//! The engine is checked against an independent oracle written here: a brute-force checker on a
//! minute grid (one bool per minute of the day), which resolves civil times through jiff's zoned
//! API rather than the engine's per-date offsets. Random snapshots lean on the DST changes of
//! the Australian zones and New York, and on night sessions, so gaps and folds come up often.

mod engine_support;

use std::collections::{BTreeMap, HashMap};

use engine_support::Row;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use slotbridge_domain::availability::{DaySegment, compute_slots};
use slotbridge_domain::snapshot::{
    Appointment, Block, BookingReason, Practitioner, ProviderRule, Snapshot, WeeklyWindow,
};

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ZONES: [&str; 7] = [
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Australia/Brisbane",
    "Australia/Perth",
    "America/New_York",
    "UTC",
];
/// Local dates a few days before a DST change somewhere, and one ordinary date.
const BASE_DATES: [&str; 5] = [
    "2026-04-02",
    "2026-10-01",
    "2030-03-08",
    "2030-11-01",
    "2026-06-15",
];

fn hm(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn parse_hm(text: &str) -> usize {
    let (h, m) = text.split_once(':').expect("HH:MM");
    h.parse::<usize>().expect("hours") * 60 + m.parse::<usize>().expect("minutes")
}

/// An interval of the day on a 5-minute grid, possibly ending at 24:00.
fn interval() -> impl Strategy<Value = (u32, u32)> {
    (0u32..288, 1u32..=96).prop_map(|(start, len)| {
        let start = start * 5;
        (start, (start + len * 5).min(1440))
    })
}

fn days() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(WEEKDAYS.to_vec(), 1..=7)
        .prop_map(|d| d.into_iter().map(str::to_owned).collect())
}

fn weekly(max: usize) -> impl Strategy<Value = Vec<WeeklyWindow>> {
    proptest::collection::vec(
        (days(), interval()).prop_map(|(days, (s, e))| WeeklyWindow {
            days,
            start: hm(s),
            end: hm(e),
        }),
        0..=max,
    )
}

prop_compose! {
    fn snapshot()(
        zone in proptest::sample::select(ZONES.to_vec()),
        base in proptest::sample::select(BASE_DATES.to_vec()),
        now_minutes in 0i64..(3 * 1440),
        horizon in 1u32..=6,
        interval in proptest::sample::select(vec![5u32, 10, 15, 20, 30, 60]),
        stacking in any::<bool>(),
        notice in proptest::option::of(0u32..=600),
        per_segment in proptest::option::of(1u32..=3),
        practitioners in proptest::collection::vec((weekly(3), weekly(2)), 1..=3),
        rules in proptest::collection::vec(
            proptest::collection::vec((0usize..3, 5u32..=120, weekly(2)), 0..=3), 1..=3),
        appointments in proptest::collection::vec((0usize..3, 0i64..7, interval()), 0..=12),
        blocks in proptest::collection::vec((proptest::option::of(0usize..3), 0i64..7, interval()), 0..=3),
        closed in proptest::collection::vec(0i64..7, 0..=2),
    ) -> Snapshot {
        let tz = TimeZone::get(zone).expect("zone");
        let base: Date = base.parse().expect("date");
        let local_midnight = base.to_datetime(jiff::civil::Time::midnight());
        let now = tz.to_ambiguous_timestamp(local_midnight).compatible().expect("instant")
            + SignedDuration::from_mins(now_minutes);
        let date = |offset: i64| (base + jiff::Span::new().days(offset)).to_string();
        let pid = |i: usize| format!("p{i}");
        let count = practitioners.len();
        Snapshot {
            timezone: zone.to_owned(),
            now: now.to_string(),
            horizon_days: Some(horizon),
            interval_minutes: interval,
            stacking,
            min_notice_minutes: notice,
            max_per_day_segment: per_segment,
            practitioners: practitioners.into_iter().enumerate().map(|(i, (sessions, breaks))| Practitioner {
                id: pid(i), name: String::new(), sessions, breaks,
            }).collect(),
            booking_reasons: rules.into_iter().enumerate().map(|(i, providers)| {
                let mut seen = Vec::new();
                BookingReason {
                    id: format!("r{i}"),
                    name: String::new(),
                    providers: providers.into_iter().filter_map(|(p, duration, windows)| {
                        let p = p % count;
                        if seen.contains(&p) { return None; }
                        seen.push(p);
                        Some(ProviderRule { practitioner: pid(p), duration_minutes: duration, windows })
                    }).collect(),
                }
            }).collect(),
            appointments: appointments.into_iter().map(|(p, d, (s, e))| Appointment {
                practitioner: pid(p % count), date: date(d), start: hm(s), end: hm(e),
            }).collect(),
            blocks: blocks.into_iter().map(|(p, d, (s, e))| Block {
                practitioner: p.map(|p| pid(p % count)), date: date(d), start: hm(s), end: hm(e),
            }).collect(),
            closed_dates: closed.into_iter().map(date).collect(),
        }
    }
}

/// A published slot as the oracle sees it, with the segment it lies in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OracleSlot {
    start: Timestamp,
    practitioner: String,
    reason: String,
    start_text: String,
    end_text: String,
    date: Date,
    segment: usize,
}

/// Marks `[start, end)` of `day` with `value`.
fn paint(day: &mut [bool; 1440], start: &str, end: &str, value: bool) {
    for minute in &mut day[parse_hm(start)..parse_hm(end)] {
        *minute = value;
    }
}

/// The brute-force oracle: rules 1-8 minute by minute.
fn oracle(s: &Snapshot) -> Vec<OracleSlot> {
    let tz = TimeZone::get(&s.timezone).expect("zone");
    let now: Timestamp = s.now.parse().expect("now");
    let cutoff = now + SignedDuration::from_mins(i64::from(s.min_notice_minutes.unwrap_or(0)));
    let first = now.to_zoned_datetime(tz.clone()).date();
    let interval = s.interval_minutes as usize;
    let mut out = Vec::new();
    for offset in 0..i64::from(s.horizon_days.unwrap_or(30)) {
        let date = first + jiff::Span::new().days(offset);
        let ds = date.to_string();
        if s.closed_dates.contains(&ds) {
            continue;
        }
        let weekday = WEEKDAYS[date.weekday().to_monday_zero_offset() as usize];
        for p in &s.practitioners {
            let mut working = [false; 1440];
            for w in p
                .sessions
                .iter()
                .filter(|w| w.days.iter().any(|d| d == weekday))
            {
                paint(&mut working, &w.start, &w.end, true);
            }
            for w in p
                .breaks
                .iter()
                .filter(|w| w.days.iter().any(|d| d == weekday))
            {
                paint(&mut working, &w.start, &w.end, false);
            }
            for b in s.blocks.iter().filter(|b| b.date == ds) {
                if b.practitioner.as_ref().is_none_or(|id| *id == p.id) {
                    paint(&mut working, &b.start, &b.end, false);
                }
            }
            // Segment number of each working minute: connected runs.
            let mut segment = [usize::MAX; 1440];
            let mut count = 0;
            for m in 0..1440 {
                if working[m] {
                    if m == 0 || !working[m - 1] {
                        count += 1;
                    }
                    segment[m] = count;
                }
            }
            let mut booked = [false; 1440];
            for a in s
                .appointments
                .iter()
                .filter(|a| a.date == ds && a.practitioner == p.id)
            {
                paint(&mut booked, &a.start, &a.end, true);
            }
            for r in &s.booking_reasons {
                for rule in r.providers.iter().filter(|rule| rule.practitioner == p.id) {
                    let mut window = [false; 1440];
                    for w in rule
                        .windows
                        .iter()
                        .filter(|w| w.days.iter().any(|d| d == weekday))
                    {
                        paint(&mut window, &w.start, &w.end, true);
                    }
                    let duration = rule.duration_minutes as usize;
                    let mut taken_segments = Vec::new();
                    // Rule 8: per day part, by the start's local hour.
                    let mut per_part = [0u32; 3];
                    for start in (0..1440).step_by(interval) {
                        if start + duration > 1440 {
                            break;
                        }
                        let span = start..start + duration;
                        let fits = span.clone().all(|m| {
                            working[m] && segment[m] == segment[start] && window[m] && !booked[m]
                        });
                        if !fits {
                            continue;
                        }
                        let dt: DateTime = date.at((start / 60) as i8, (start % 60) as i8, 0, 0);
                        let ambiguous = tz.to_ambiguous_zoned_datetime(dt);
                        if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
                            continue;
                        }
                        let zoned = ambiguous.earlier().expect("earlier");
                        if zoned.timestamp() < cutoff {
                            continue;
                        }
                        if !s.stacking {
                            if taken_segments.contains(&segment[start]) {
                                continue;
                            }
                            taken_segments.push(segment[start]);
                        }
                        let part = match start / 60 {
                            ..12 => 0,
                            12..17 => 1,
                            _ => 2,
                        };
                        if s.max_per_day_segment
                            .is_some_and(|max| per_part[part] >= max)
                        {
                            continue;
                        }
                        per_part[part] += 1;
                        let end = zoned.timestamp() + SignedDuration::from_mins(duration as i64);
                        let end_zoned = end.to_zoned_datetime(tz.clone());
                        out.push(OracleSlot {
                            start: zoned.timestamp(),
                            practitioner: p.id.clone(),
                            reason: r.id.clone(),
                            start_text: zoned
                                .timestamp()
                                .display_with_offset(zoned.offset())
                                .to_string(),
                            end_text: end.display_with_offset(end_zoned.offset()).to_string(),
                            date,
                            segment: segment[start],
                        });
                    }
                }
            }
        }
    }
    out.sort();
    out
}

fn engine_rows(s: &Snapshot) -> Vec<Row> {
    let valid = s.validate().expect("generated snapshots are valid");
    compute_slots(&valid)
        .iter()
        .map(|slot| {
            (
                slot.practitioner.to_owned(),
                slot.reason.to_owned(),
                slot.start_rfc3339(),
                slot.end_rfc3339(),
            )
        })
        .collect()
}

/// A deterministic shuffle (xorshift), so a failing case replays exactly.
fn shuffle<T>(items: &mut [T], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        items.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every published slot obeys rules 1-7, and every slot the rules allow is published.
    #[test]
    fn engine_matches_the_brute_force_oracle(s in snapshot()) {
        let expected: Vec<Row> = oracle(&s)
            .into_iter()
            .map(|o| (o.practitioner, o.reason, o.start_text, o.end_text))
            .collect();
        prop_assert_eq!(engine_rows(&s), expected);
    }

    /// Stacking off publishes a subset of stacking on, at most one slot per segment.
    #[test]
    fn stacking_off_is_a_subset_with_one_slot_per_segment(mut s in snapshot()) {
        // The per-day-segment limit may drop a working segment's first slot when stacking is on
        // (the day part's quota went to its earlier slots) and keep it when off.
        s.max_per_day_segment = None;
        let mut on = s.clone();
        on.stacking = true;
        let mut off = s;
        off.stacking = false;
        let on_rows = engine_rows(&on);
        let off_rows = engine_rows(&off);
        for row in &off_rows {
            prop_assert!(on_rows.contains(row), "{row:?} is not published with stacking on");
        }
        let mut per_segment: HashMap<(String, String, Date, usize), usize> = HashMap::new();
        for o in oracle(&off) {
            *per_segment.entry((o.practitioner, o.reason, o.date, o.segment)).or_default() += 1;
        }
        prop_assert!(per_segment.values().all(|&n| n == 1));
        prop_assert_eq!(per_segment.len(), off_rows.len());
        // Each stacking-off slot is the first stacking-on slot of its segment.
        let mut first_on: BTreeMap<(String, String, Date, usize), String> = BTreeMap::new();
        for o in oracle(&on) {
            first_on.entry((o.practitioner, o.reason, o.date, o.segment)).or_insert(o.start_text);
        }
        let mut firsts: Vec<String> = first_on.into_values().collect();
        let mut off_starts: Vec<String> = off_rows.into_iter().map(|r| r.2).collect();
        firsts.sort();
        off_starts.sort();
        prop_assert_eq!(off_starts, firsts);
    }

    /// The per-day-segment limit keeps, of what the engine publishes without it, the earliest
    /// slots of each practitioner, reason, date and day part, as many as the limit: no more, and
    /// none later than one it drops.
    #[test]
    fn the_segment_limit_keeps_the_earliest_of_each_day_part(s in snapshot(), max in 1u32..=3) {
        let mut free = s.clone();
        free.max_per_day_segment = None;
        let mut limited = s;
        limited.max_per_day_segment = Some(max);
        let valid = free.validate().expect("valid");
        let tz = valid.timezone().clone();
        let mut seen: HashMap<(String, String, Date, DaySegment), u32> = HashMap::new();
        let mut expected: Vec<Row> = Vec::new();
        for slot in compute_slots(&valid) {
            let local = slot.start.to_zoned_datetime(tz.clone());
            let minute = (local.hour() as u16) * 60 + local.minute() as u16;
            let n = seen
                .entry((slot.practitioner.to_owned(), slot.reason.to_owned(), local.date(),
                    DaySegment::of_minute(minute)))
                .or_default();
            *n += 1;
            if *n <= max {
                expected.push((
                    slot.practitioner.to_owned(),
                    slot.reason.to_owned(),
                    slot.start_rfc3339(),
                    slot.end_rfc3339(),
                ));
            }
        }
        prop_assert_eq!(engine_rows(&limited), expected);
    }

    /// The output does not depend on the order of any input list.
    #[test]
    fn output_does_not_change_when_input_lists_are_shuffled(s in snapshot(), mut seed in 1u64..) {
        let expected = engine_rows(&s);
        let mut shuffled = s;
        shuffle(&mut shuffled.practitioners, &mut seed);
        for p in &mut shuffled.practitioners {
            shuffle(&mut p.sessions, &mut seed);
            shuffle(&mut p.breaks, &mut seed);
        }
        shuffle(&mut shuffled.booking_reasons, &mut seed);
        for r in &mut shuffled.booking_reasons {
            shuffle(&mut r.providers, &mut seed);
            for rule in &mut r.providers {
                shuffle(&mut rule.windows, &mut seed);
            }
        }
        shuffle(&mut shuffled.appointments, &mut seed);
        shuffle(&mut shuffled.blocks, &mut seed);
        shuffle(&mut shuffled.closed_dates, &mut seed);
        prop_assert_eq!(engine_rows(&shuffled), expected);
    }
}
