//! Cliniko's online-booking settings applied to the engine's slots.
//!
//! The engine ([`slotbridge_domain::availability`]) already knows the notice
//! (`min_notice_minutes`) and the horizon. Cliniko adds one rule of its own: at most
//! `max_appointments_per_day_segment` times per practitioner, appointment type and day segment
//! (morning before 12:00, afternoon 12:00 to 17:00, evening from 17:00, practice-local), the
//! earliest ones. [`BookingRules::shape`] sets the first two on a snapshot;
//! [`limit_per_day_segment`] applies the third to the engine's output.

use std::collections::HashMap;

use slotbridge_domain::availability::Slot;
use slotbridge_domain::snapshot::Snapshot;

use super::BookingRules;

/// The day segment of a practice-local hour: 0 morning (before 12), 1 afternoon (12 to 17),
/// 2 evening (from 17).
///
/// ```
/// use slotbridge_pms::cliniko::day_segment;
/// assert_eq!(day_segment(11), 0);
/// assert_eq!(day_segment(12), 1);
/// assert_eq!(day_segment(16), 1);
/// assert_eq!(day_segment(17), 2);
/// ```
pub fn day_segment(hour: i8) -> u8 {
    match hour {
        ..12 => 0,
        12..17 => 1,
        _ => 2,
    }
}

impl BookingRules {
    /// Set the notice and cap the horizon of `snapshot` to these rules. With online bookings
    /// off, the horizon becomes empty.
    pub fn shape(&self, snapshot: &mut Snapshot) {
        snapshot.min_notice_minutes = Some(self.min_notice_minutes);
        if let (Some(h), Some(max)) = (snapshot.horizon_days, self.max_days_ahead) {
            snapshot.horizon_days = Some(h.min(max.max(1)));
        }
        if !self.enabled {
            snapshot.practitioners.clear();
        }
    }
}

/// Keep at most `max` slots per practitioner, reason, practice-local date and day segment: the
/// earliest. `None` keeps everything. The slots keep their order.
pub fn limit_per_day_segment<'a>(slots: Vec<Slot<'a>>, max: Option<u32>) -> Vec<Slot<'a>> {
    let Some(max) = max else {
        return slots;
    };
    let mut sorted = slots;
    sorted.sort_by_key(|s| s.start);
    let mut counts: HashMap<(&str, &str, jiff::civil::Date, u8), u32> = HashMap::new();
    sorted.retain(|s| {
        let local = s.start_offset.to_datetime(s.start);
        let n = counts
            .entry((
                s.practitioner,
                s.reason,
                local.date(),
                day_segment(local.hour()),
            ))
            .or_default();
        *n += 1;
        *n <= max
    });
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::Offset;

    fn slot(p: &'static str, r: &'static str, at: &str) -> Slot<'static> {
        let start: jiff::Timestamp = at.parse().expect("instant");
        let off = Offset::constant(11);
        Slot {
            practitioner: p,
            reason: r,
            start,
            start_offset: off,
            end: start,
            end_offset: off,
        }
    }

    #[test]
    fn the_earliest_slots_of_each_segment_are_kept() {
        // Sydney +11: 08:00, 09:00, 10:00 are morning; 13:00 afternoon; 18:00 evening.
        let slots = vec![
            slot("p", "r", "2026-12-01T21:00:00Z"),
            slot("p", "r", "2026-12-01T22:00:00Z"),
            slot("p", "r", "2026-12-01T23:00:00Z"),
            slot("p", "s", "2026-12-01T21:00:00Z"),
            slot("p", "r", "2026-12-02T02:00:00Z"),
            slot("p", "r", "2026-12-02T07:00:00Z"),
            slot("p", "r", "2026-12-02T21:00:00Z"),
        ];
        let kept = limit_per_day_segment(slots, Some(2));
        let got: Vec<_> = kept
            .iter()
            .map(|s| (s.reason, s.start_offset.to_datetime(s.start).to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("r", "2026-12-02T08:00:00".to_owned()),
                ("s", "2026-12-02T08:00:00".to_owned()),
                ("r", "2026-12-02T09:00:00".to_owned()),
                ("r", "2026-12-02T13:00:00".to_owned()),
                ("r", "2026-12-02T18:00:00".to_owned()),
                ("r", "2026-12-03T08:00:00".to_owned()),
            ]
        );
        assert_eq!(limit_per_day_segment(kept.clone(), None), kept);
    }
}
