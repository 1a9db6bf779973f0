//! Available times, computed from the account's own data as the available-times section
//! describes them:
//!
//! - the practitioner's daily availabilities at the business for the day's ISO weekday, plus
//!   the availability blocks that fall on the day, read as local times of the account's zone;
//! - minus the practitioner's live individual appointments and unavailable blocks (at any
//!   business: a practitioner is in one place at a time);
//! - a start every `timeslot_size_in_minutes` from the start of each availability window (the
//!   documentation does not say how times step; see docs/cliniko-sim.md), whose whole
//!   appointment (the type's duration) fits in the window and touches nothing busy;
//! - no time earlier than now plus `min_hours_advance_required_to_book`, none on a day
//!   `max_days_in_advance` or more days after today;
//! - at most `max_appointments_per_day_segment` times per day segment (morning before 12:00,
//!   afternoon 12:00 to 17:00, evening from 17:00), the earliest ones;
//! - nothing at all for a business, practitioner or appointment type not shown in online
//!   bookings, an archived type, an inactive practitioner, a practitioner who does not work at
//!   the business or offer the type, or an account with online bookings switched off.

use jiff::civil::{Date, DateTime, Time};
use jiff::{SignedDuration, Timestamp};

use crate::model::Account;

/// The available starts on the local days `from..=to`, in order.
pub fn available_times(
    acct: &Account,
    business_id: u64,
    practitioner_id: u64,
    appointment_type_id: u64,
    from: Date,
    to: Date,
    now: Timestamp,
) -> Vec<Timestamp> {
    let Some(duration) = bookable(acct, business_id, practitioner_id, appointment_type_id) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        out.extend(day_times(
            acct,
            business_id,
            practitioner_id,
            duration,
            day,
            now,
        ));
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    out
}

/// The first available start from today on, within `max_days_in_advance`.
pub fn next_available_time(
    acct: &Account,
    business_id: u64,
    practitioner_id: u64,
    appointment_type_id: u64,
    now: Timestamp,
) -> Option<Timestamp> {
    let duration = bookable(acct, business_id, practitioner_id, appointment_type_id)?;
    let mut day = today(acct, now);
    for _ in 0..acct.online_bookings.max_days_in_advance {
        if let Some(t) = day_times(acct, business_id, practitioner_id, duration, day, now)
            .into_iter()
            .next()
        {
            return Some(t);
        }
        day = day.tomorrow().ok()?;
    }
    None
}

/// The account's date now.
pub fn today(acct: &Account, now: Timestamp) -> Date {
    acct.time_zone.to_datetime(now).date()
}

/// The appointment type's duration when everything involved is shown in online bookings.
fn bookable(acct: &Account, business: u64, practitioner: u64, kind: u64) -> Option<SignedDuration> {
    let b = acct.business(business)?;
    let p = acct.practitioner(practitioner)?;
    let t = acct.appointment_type(kind)?;
    let ok = acct.online_bookings.enabled
        && b.show_in_online_bookings
        && p.active
        && p.show_in_online_bookings
        && p.business_ids.contains(&business)
        && p.appointment_type_ids.contains(&kind)
        && t.show_in_online_bookings
        && t.archived_at.is_none()
        && t.duration_in_minutes > 0;
    ok.then(|| SignedDuration::from_mins(i64::from(t.duration_in_minutes)))
}

fn local(acct: &Account, dt: DateTime) -> Option<Timestamp> {
    acct.time_zone.to_timestamp(dt).ok()
}

/// The available starts of one local day.
fn day_times(
    acct: &Account,
    business: u64,
    practitioner: u64,
    duration: SignedDuration,
    day: Date,
    now: Timestamp,
) -> Vec<Timestamp> {
    let ob = &acct.online_bookings;
    let today = today(acct, now);
    let days_ahead = (day - today).get_days();
    if day < today || days_ahead >= i32::try_from(ob.max_days_in_advance).unwrap_or(i32::MAX) {
        return Vec::new();
    }
    let (Some(day_start), Some(day_end)) = (
        local(acct, day.to_datetime(Time::midnight())),
        day.tomorrow()
            .ok()
            .and_then(|d| local(acct, d.to_datetime(Time::midnight()))),
    ) else {
        return Vec::new();
    };
    let weekday = day.weekday().to_monday_one_offset();
    let mut windows: Vec<(Timestamp, Timestamp)> = Vec::new();
    for da in acct.daily_availabilities.iter().filter(|d| {
        d.practitioner_id == practitioner
            && d.business_id == business
            && i8::try_from(d.day_of_week).is_ok_and(|w| w == weekday)
    }) {
        for i in &da.availabilities {
            if let (Some(s), Some(e)) = (
                local(acct, day.to_datetime(i.starts_at)),
                local(acct, day.to_datetime(i.ends_at)),
            ) {
                windows.push((s, e));
            }
        }
    }
    for b in acct
        .availability_blocks
        .iter()
        .filter(|b| b.practitioner_id == practitioner && b.business_id == business)
    {
        let (s, e) = (b.starts_at.max(day_start), b.ends_at.min(day_end));
        if s < e {
            windows.push((s, e));
        }
    }
    windows.retain(|(s, e)| s < e);
    windows.sort();
    let mut merged: Vec<(Timestamp, Timestamp)> = Vec::new();
    for (s, e) in windows {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let busy: Vec<(Timestamp, Timestamp)> = acct
        .appointments
        .iter()
        .filter(|a| a.practitioner_id == practitioner && a.is_live())
        .map(|a| (a.starts_at, a.ends_at))
        .chain(
            acct.unavailable_blocks
                .iter()
                .filter(|b| b.practitioner_id == practitioner && b.deleted_at.is_none())
                .map(|b| (b.starts_at, b.ends_at)),
        )
        .collect();
    let earliest = now
        .checked_add(SignedDuration::from_hours(i64::from(
            ob.min_hours_advance_required_to_book,
        )))
        .unwrap_or(now);
    let step = SignedDuration::from_mins(i64::from(acct.timeslot_size_in_minutes.max(1)));
    let mut times = Vec::new();
    for (ws, we) in merged {
        let mut t = ws;
        while let Ok(end) = t.checked_add(duration) {
            if end > we {
                break;
            }
            if t >= earliest && !busy.iter().any(|(bs, be)| *bs < end && t < *be) {
                times.push(t);
            }
            match t.checked_add(step) {
                Ok(n) => t = n,
                Err(_) => break,
            }
        }
    }
    if let Some(max) = ob.max_appointments_per_day_segment {
        let mut counts = [0u32; 3];
        times.retain(|t| {
            let hour = acct.time_zone.to_datetime(*t).hour();
            let seg = match hour {
                0..12 => 0,
                12..17 => 1,
                _ => 2,
            };
            counts[seg] += 1;
            counts[seg] <= max
        });
    }
    times
}
