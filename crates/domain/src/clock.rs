//! The time, as something the service is given: the system's in production, a clock the test
//! moves by hand elsewhere, so the 15 s / 20 s / 10 min booking rules are tested without
//! sleeping.
//!
//! Reading a clock is the only thing here that looks at the outside world; the rules themselves
//! ([`crate::booking_rules`], [`crate::backoff`]) take the time as an argument.
//!
//! ```
//! use jiff::SignedDuration;
//! use slotbridge_domain::clock::{Clock, ManualClock, OffsetClock};
//!
//! let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
//! let booked = clock.now();
//! clock.advance(SignedDuration::from_secs(16));
//! assert_eq!(clock.now().duration_since(booked), SignedDuration::from_secs(16));
//!
//! // A node whose clock runs 30 s ahead, for the clock-skew tests.
//! let ahead = OffsetClock::new(&clock, SignedDuration::from_secs(30));
//! assert_eq!(ahead.now().duration_since(clock.now()), SignedDuration::from_secs(30));
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::{SignedDuration, Timestamp};

use crate::backoff::plus;

/// Where the time comes from.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's clock: production.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is set or advanced: tests.
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> Self {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// Show `now` from here on (it may go backwards: a clock being corrected).
    pub fn set(&self, now: Timestamp) {
        *self.lock() = now;
    }

    /// Move the clock by `by` (negative moves it back) and return the new time.
    pub fn advance(&self, by: SignedDuration) -> Timestamp {
        let mut now = self.lock();
        *now = plus(*now, by);
        *now
    }

    fn lock(&self) -> MutexGuard<'_, Timestamp> {
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

/// Another clock shifted by a fixed offset: a node whose clock is ahead or behind, for tests of
/// clock skew.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock<C> {
    inner: C,
    offset: SignedDuration,
}

impl<C: Clock> OffsetClock<C> {
    /// `inner`'s time plus `offset`.
    pub fn new(inner: C, offset: SignedDuration) -> Self {
        OffsetClock { inner, offset }
    }
}

impl<C: Clock> Clock for OffsetClock<C> {
    fn now(&self) -> Timestamp {
        plus(self.inner.now(), self.offset)
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(t("2026-03-02T09:00:00Z"));
        assert_eq!(c.now(), c.now());
        assert_eq!(
            c.advance(SignedDuration::from_secs(20)),
            t("2026-03-02T09:00:20Z")
        );
        assert_eq!(c.now(), t("2026-03-02T09:00:20Z"));
        c.advance(SignedDuration::from_secs(-5));
        assert_eq!(c.now(), t("2026-03-02T09:00:15Z"));
        c.set(t("2026-03-02T09:10:00Z"));
        assert_eq!(c.now(), t("2026-03-02T09:10:00Z"));
        c.advance(SignedDuration::MAX);
        assert_eq!(c.now(), Timestamp::MAX, "saturates at the end of time");
    }

    #[test]
    fn clocks_are_shared_as_trait_objects_across_threads() {
        let manual = Arc::new(ManualClock::new(t("2026-03-02T09:00:00Z")));
        let clock: Arc<dyn Clock> = manual.clone();
        let behind = OffsetClock::new(clock.clone(), SignedDuration::from_secs(-30));
        let seen = std::thread::spawn(move || behind.now()).join().unwrap();
        assert_eq!(seen, t("2026-03-02T08:59:30Z"));
        manual.advance(SignedDuration::from_mins(10));
        assert_eq!(clock.now(), t("2026-03-02T09:10:00Z"));
    }

    #[test]
    fn the_system_clock_is_the_time_now() {
        let before = Timestamp::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= Timestamp::now());
    }
}
