//! Interval arithmetic on minutes since local midnight.
//!
//! Every set of times in the engine is a sorted vector of disjoint, non-touching half-open
//! intervals ([`MinuteInterval`]); the operations here take such sets and write their result into
//! a caller-owned buffer, so the engine's hot path reuses its buffers instead of allocating. No
//! operation ever scans minute by minute: each is a linear merge of its inputs.

use std::fmt;

/// Minutes in a civil day; `1440` is "24:00", the end of the day.
pub const MINUTES_PER_DAY: u16 = 1440;

/// A half-open interval `[start, end)` of minutes since local midnight, with
/// `start < end <= 1440`.
///
/// ```
/// use slotbridge_domain::availability::MinuteInterval;
/// let morning = MinuteInterval::new(9 * 60, 12 * 60).unwrap();
/// assert_eq!(morning.to_string(), "09:00-12:00");
/// assert_eq!(morning.len(), 180);
/// assert!(MinuteInterval::new(600, 600).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MinuteInterval {
    /// First minute inside the interval.
    pub start: u16,
    /// First minute after the interval.
    pub end: u16,
}

impl MinuteInterval {
    /// The interval `[start, end)`, or `None` unless `start < end <= 1440`.
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start < end && end <= MINUTES_PER_DAY).then_some(Self { start, end })
    }

    /// Its length in minutes.
    pub fn len(self) -> u16 {
        self.end - self.start
    }

    /// Always false: a `MinuteInterval` is never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(self) -> bool {
        self.start >= self.end
    }

    /// Whether `[start, start + len)` lies wholly inside this interval.
    pub fn contains_span(self, start: u16, len: u16) -> bool {
        start >= self.start && u32::from(start) + u32::from(len) <= u32::from(self.end)
    }

    /// Whether the two intervals share at least one minute (touching is not overlapping).
    pub fn overlaps(self, other: MinuteInterval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for MinuteInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Sorts `set` and merges overlapping or touching intervals, making it a normalized set.
pub fn normalize(set: &mut Vec<MinuteInterval>) {
    if set.len() < 2 {
        return;
    }
    set.sort_unstable();
    let mut kept = 0;
    for i in 1..set.len() {
        let next = set[i];
        if next.start <= set[kept].end {
            set[kept].end = set[kept].end.max(next.end);
        } else {
            kept += 1;
            set[kept] = next;
        }
    }
    set.truncate(kept + 1);
}

/// Writes `a` minus `b` into `out` (cleared first). Both inputs must be normalized; so is the
/// result.
pub fn subtract_into(a: &[MinuteInterval], b: &[MinuteInterval], out: &mut Vec<MinuteInterval>) {
    out.clear();
    let mut j = 0;
    for &piece in a {
        let mut start = piece.start;
        // Skip the subtrahends that end before this piece starts.
        while j < b.len() && b[j].end <= start {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].start < piece.end {
            if b[k].start > start {
                out.push(MinuteInterval {
                    start,
                    end: b[k].start,
                });
            }
            start = start.max(b[k].end);
            if start >= piece.end {
                break;
            }
            k += 1;
        }
        if start < piece.end {
            out.push(MinuteInterval {
                start,
                end: piece.end,
            });
        }
    }
}

/// Writes the intersection of `a` and `b` into `out` (cleared first). Both inputs must be
/// normalized; so is the result.
pub fn intersect_into(a: &[MinuteInterval], b: &[MinuteInterval], out: &mut Vec<MinuteInterval>) {
    out.clear();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(MinuteInterval { start, end });
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
}

/// The grid starts `s` inside `free` at which a slot of `duration` minutes fits:
/// `s % interval == 0` and `[s, s + duration)` lies inside `free`. Ascending.
///
/// ```
/// use slotbridge_domain::availability::{MinuteInterval, grid_starts};
/// let free = MinuteInterval::new(9 * 60 + 5, 10 * 60).unwrap();
/// let starts: Vec<u16> = grid_starts(free, 30, 15).collect();
/// assert_eq!(starts, [9 * 60 + 15, 9 * 60 + 30]);
/// ```
pub fn grid_starts(
    free: MinuteInterval,
    duration: u16,
    interval: u16,
) -> impl Iterator<Item = u16> + Clone {
    let interval = interval.max(1);
    let first = free.start.div_ceil(interval) * interval;
    let last = free.end.checked_sub(duration);
    let (first, last) = match last {
        Some(last) if first <= last => (first, last),
        _ => (1, 0),
    };
    (first..=last).step_by(usize::from(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start: u16, end: u16) -> MinuteInterval {
        MinuteInterval::new(start, end).expect("valid test interval")
    }

    #[test]
    fn normalize_merges_overlapping_and_touching() {
        let mut set = vec![
            iv(60, 120),
            iv(0, 30),
            iv(30, 45),
            iv(100, 200),
            iv(300, 400),
        ];
        normalize(&mut set);
        assert_eq!(set, [iv(0, 45), iv(60, 200), iv(300, 400)]);
    }

    #[test]
    fn subtract_cuts_holes_and_edges() {
        let mut out = Vec::new();
        subtract_into(
            &[iv(0, 100), iv(200, 300)],
            &[iv(10, 20), iv(90, 210), iv(250, 260)],
            &mut out,
        );
        assert_eq!(out, [iv(0, 10), iv(20, 90), iv(210, 250), iv(260, 300)]);
        subtract_into(&[iv(0, 100)], &[iv(0, 100)], &mut out);
        assert!(out.is_empty());
        subtract_into(&[iv(0, 100)], &[], &mut out);
        assert_eq!(out, [iv(0, 100)]);
        // One subtrahend spanning several pieces.
        subtract_into(&[iv(0, 10), iv(20, 30), iv(40, 50)], &[iv(5, 45)], &mut out);
        assert_eq!(out, [iv(0, 5), iv(45, 50)]);
    }

    #[test]
    fn intersect_keeps_common_parts() {
        let mut out = Vec::new();
        intersect_into(&[iv(0, 100), iv(200, 300)], &[iv(50, 250)], &mut out);
        assert_eq!(out, [iv(50, 100), iv(200, 250)]);
        intersect_into(&[iv(0, 100)], &[iv(100, 200)], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn grid_starts_respects_grid_and_end() {
        let starts: Vec<u16> = grid_starts(iv(0, 60), 30, 15).collect();
        assert_eq!(starts, [0, 15, 30]);
        assert_eq!(grid_starts(iv(0, 20), 30, 15).count(), 0);
        assert_eq!(grid_starts(iv(1, 31), 30, 15).count(), 0);
        assert_eq!(grid_starts(iv(0, 1440), 1440, 60).collect::<Vec<_>>(), [0]);
    }
}
