//! The rate limit of the readme: so many requests per minute per user. A user's window opens
//! with its first request and lasts 60 seconds; past the limit a request is answered `429`
//! with `X-RateLimit-Reset`, the UNIX time (whole seconds, rounded up) at which the window
//! ends. The time comes from the simulator's clock, so tests move it instead of sleeping.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

/// The window of the limit.
pub const WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// What one request was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Within the limit.
    pub allowed: bool,
    /// The limit per window.
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// When the window ends, in UNIX seconds (rounded up).
    pub reset: i64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    count: u32,
}

/// Every user's window.
#[derive(Debug, Default)]
pub struct Limiter {
    windows: HashMap<(u64, u64), Window>,
}

impl Limiter {
    /// Count a request of `user` of `account` at `now` against `limit`.
    pub fn check(&mut self, account: u64, user: u64, now: Timestamp, limit: u32) -> Verdict {
        let w = self.windows.entry((account, user)).or_insert(Window {
            start: now,
            count: 0,
        });
        let end = w.start.checked_add(WINDOW).unwrap_or(w.start);
        if now >= end || now < w.start {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        let end = w.start.checked_add(WINDOW).unwrap_or(w.start);
        let reset = end.as_second() + i64::from(end.subsec_nanosecond() > 0);
        if w.count >= limit {
            return Verdict {
                allowed: false,
                limit,
                remaining: 0,
                reset,
            };
        }
        w.count += 1;
        Verdict {
            allowed: true,
            limit,
            remaining: limit - w.count,
            reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_refuses_past_the_limit_and_opens_again_after_a_minute() {
        let mut l = Limiter::default();
        let t0: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        for i in 0..3 {
            let v = l.check(1, 1, t0, 3);
            assert!(v.allowed);
            assert_eq!(v.remaining, 2 - i);
        }
        let v = l.check(
            1,
            1,
            t0.checked_add(SignedDuration::from_secs(59)).unwrap(),
            3,
        );
        assert!(!v.allowed);
        assert_eq!(v.reset, t0.as_second() + 60);
        // Another user has a window of their own.
        assert!(l.check(1, 2, t0, 3).allowed);
        let v = l.check(
            1,
            1,
            t0.checked_add(SignedDuration::from_secs(60)).unwrap(),
            3,
        );
        assert!(v.allowed);
    }
}
