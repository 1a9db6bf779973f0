//! The `slotbridge slots` input: a diary snapshot read (`Snapshot::from_json`), validated and
//! turned into slots (`compute_slots`).
//!
//! Properties, beyond "never panics", each a rule of docs/snapshot.md checked against the raw
//! snapshot (not the engine's own indexes):
//! - a slot is for a published (reason, practitioner) pair and lasts its duration (rule 3, 6);
//! - it starts on the grid, on an open date within the horizon, not before `now` plus the
//!   notice (rules 1, 3, 4);
//! - on its date's civil clock it lies inside the practitioner's sessions less breaks and
//!   blocks, inside the reason's windows, and overlaps none of the practitioner's appointments
//!   (rule 3);
//! - slots are sorted by start, practitioner, reason (rule 7).
#![no_main]

use std::collections::HashMap;

use jiff::civil::{Date, Weekday};
use libfuzzer_sys::fuzz_target;
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::snapshot::{Snapshot, WeeklyWindow};

/// `HH:MM` (validated) as minutes of the day; `24:00` is 1440.
fn minute(hhmm: &str) -> usize {
    let (h, m) = hhmm.split_once(':').expect("validated HH:MM");
    h.parse::<usize>().expect("hours") * 60 + m.parse::<usize>().expect("minutes")
}

fn day_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

/// The minutes of the day covered by the windows of weekday `w`.
fn cover(windows: &[WeeklyWindow], w: Weekday) -> Vec<bool> {
    let mut minutes = vec![false; 1440];
    for win in windows
        .iter()
        .filter(|win| win.days.iter().any(|d| d == day_name(w)))
    {
        // An empty or reversed window covers nothing (`get_mut` is `None` when start > end).
        if let Some(covered) = minutes.get_mut(minute(&win.start)..minute(&win.end).min(1440)) {
            covered.fill(true);
        }
    }
    minutes
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = Snapshot::from_json(text) else {
        return;
    };
    let Ok(valid) = raw.validate() else {
        return;
    };
    let slots = compute_slots(&valid);
    let tz = valid.timezone();
    let first_day = tz.to_datetime(valid.now()).date();
    let horizon = raw.horizon_days.unwrap_or(30) as i64;
    let closed: Vec<Date> = raw
        .closed_dates
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect();
    let mut working: HashMap<(&str, Weekday), Vec<bool>> = HashMap::new();
    let mut windows: HashMap<(&str, &str, Weekday), Vec<bool>> = HashMap::new();

    for pair in slots.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            (a.start, a.practitioner, a.reason) <= (b.start, b.practitioner, b.reason),
            "slots out of order"
        );
    }
    for s in &slots {
        let practitioner = raw
            .practitioners
            .iter()
            .find(|p| p.id == s.practitioner)
            .expect("a slot of a known practitioner");
        let reason = raw
            .booking_reasons
            .iter()
            .find(|r| r.id == s.reason)
            .expect("a slot of a known reason");
        let rule = reason
            .providers
            .iter()
            .find(|r| r.practitioner == s.practitioner)
            .expect("a slot of a published pair");
        let duration = rule.duration_minutes as usize;
        assert_eq!(
            (s.end - s.start).as_secs(),
            duration as i64 * 60,
            "the slot lasts the rule's duration"
        );
        assert!(
            s.start >= valid.earliest_start(),
            "a slot before the notice"
        );

        let local = s.start_offset.to_datetime(s.start);
        let date = local.date();
        let start = local.hour() as usize * 60 + local.minute() as usize;
        let end = start + duration;
        let days_in = (date - first_day).get_days() as i64;
        assert!(
            (0..horizon).contains(&days_in),
            "a slot outside the horizon: {date}"
        );
        assert!(!closed.contains(&date), "a slot on a closed date: {date}");
        assert_eq!(local.second(), 0, "a slot off the minute");
        assert_eq!(
            start % valid.interval_minutes() as usize,
            0,
            "a slot off the grid"
        );
        assert!(end <= 1440, "a slot past midnight");

        let weekday = date.weekday();
        let work = working.entry((s.practitioner, weekday)).or_insert_with(|| {
            let mut minutes = cover(&practitioner.sessions, weekday);
            for (m, on_break) in cover(&practitioner.breaks, weekday).into_iter().enumerate() {
                minutes[m] &= !on_break;
            }
            minutes
        });
        assert!(
            work[start..end].iter().all(|m| *m),
            "a slot outside working time"
        );
        let open = windows
            .entry((s.practitioner, s.reason, weekday))
            .or_insert_with(|| cover(&rule.windows, weekday));
        assert!(
            open[start..end].iter().all(|m| *m),
            "a slot outside the reason's windows"
        );

        let on_date = |d: &str| d.parse::<Date>().ok() == Some(date);
        for a in raw
            .appointments
            .iter()
            .filter(|a| a.practitioner == s.practitioner)
        {
            if on_date(&a.date) {
                let booked = (minute(&a.start), minute(&a.end));
                assert!(
                    !overlaps((start, end), booked),
                    "a slot over an appointment"
                );
            }
        }
        for b in &raw.blocks {
            let theirs = b
                .practitioner
                .as_deref()
                .is_none_or(|p| p == s.practitioner);
            if theirs && on_date(&b.date) {
                let blocked = (minute(&b.start), minute(&b.end));
                assert!(!overlaps((start, end), blocked), "a slot over a block");
            }
        }
    }
});
