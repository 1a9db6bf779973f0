//! Backing off after failures, and the breaker that parks a link on a lasting failure.
//!
//! Pure types: the caller supplies the time and the jitter (a random fraction it draws), so the
//! same inputs always give the same answer and tests need neither sleeps nor a seeded RNG.
//!
//! - [`Backoff`]: 1 s, 2 s, 4 s … capped (60 s for a link), each delay shortened by up to half
//!   by the [`Jitter`] so many links failing together do not retry together. The exponential
//!   schedule itself is `backon`'s [`ExponentialBuilder`] (its builders only compute delays: no
//!   I/O, no async, no clock); the jitter stays ours, drawn by the caller, so a delay is a plain
//!   function of its inputs.
//! - [`Backoff::retries`] and [`retry_wait`]: the waits of a bounded retry loop (the PMS
//!   connector's and the marketplace client's, both driven by `backon`), with a server's
//!   `Retry-After` taking the place of the backoff.
//! - [`Breaker`]: per link. A transient failure (PMS or marketplace down, rate limited, a
//!   timeout) backs off; a lasting one ([`Lasting`]: a key rejected or revoked, the practice's
//!   consent missing) parks the link until its credentials change or an operator resyncs,
//!   with what to do. Bookings are answered by the booking pipeline whatever the breaker says
//!   about publishing.
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use slotbridge_domain::backoff::{Backoff, Breaker, FailureClass, Jitter, Lasting};
//!
//! let secs = |n: u32| Backoff::LINK.delay(n, Jitter::NONE).as_secs();
//! assert_eq!([1, 2, 3, 7, 8].map(secs), [1, 2, 4, 60, 60]);
//!
//! let t0: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
//! let mut b = Breaker::new(Backoff::LINK);
//! b.on_failure(FailureClass::Transient, t0, Jitter::NONE);
//! assert!(!b.may_try(t0));
//! assert!(b.may_try(t0 + SignedDuration::from_secs(1)));
//! b.on_failure(FailureClass::Lasting(Lasting::PmsKeyRevoked), t0, Jitter::NONE);
//! assert!(!b.may_try(t0 + SignedDuration::from_hours(24)));
//! b.credentials_changed();
//! assert!(b.may_try(t0));
//! ```

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A random fraction in `0..=1` drawn by the caller: 0 is no jitter, 1 the most. Out of range
/// values are clamped and NaN counts as 0, so any `f64` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Jitter(f64);

impl Jitter {
    /// No jitter: the nominal delays (what tests use).
    pub const NONE: Jitter = Jitter(0.0);
    /// The most jitter: half the nominal delay.
    pub const MAX: Jitter = Jitter(1.0);

    /// A jitter fraction, clamped to `0..=1` (NaN is 0).
    pub fn new(fraction: f64) -> Self {
        if fraction.is_nan() {
            Jitter(0.0)
        } else {
            Jitter(fraction.clamp(0.0, 1.0))
        }
    }

    /// The fraction, in `0..=1`.
    pub fn get(self) -> f64 {
        self.0
    }

    /// `nominal` shortened by up to half: `nominal × (1 − fraction / 2)`, to the millisecond.
    /// Never longer than `nominal`, never shorter than half of it, and monotone in `nominal`.
    pub fn apply(self, nominal: SignedDuration) -> SignedDuration {
        let ms = nominal.as_millis().max(0);
        // fraction / 2 in thousandths, so the arithmetic is exact integers.
        let per_mille = (self.0 * 500.0).round() as i128;
        let cut = ms * per_mille / 1000;
        duration_ms(ms - cut)
    }
}

/// Exponential backoff: `first`, then doubling, at most `cap`; see [`Jitter::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The delay after the first failure.
    pub first: SignedDuration,
    /// The longest delay.
    pub cap: SignedDuration,
}

impl Backoff {
    /// Link-level failures (and confirmations that keep failing): 1 s, 2 s, 4 s … 60 s.
    pub const LINK: Backoff = Backoff {
        first: SignedDuration::from_secs(1),
        cap: SignedDuration::from_secs(60),
    };

    /// A backoff from `first` doubling up to `cap`, in the standard library's durations (what
    /// the adapters configure); a duration too long for a [`SignedDuration`] is its maximum.
    pub fn from_std(first: Duration, cap: Duration) -> Self {
        let signed = |d: Duration| SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
        Backoff {
            first: signed(first),
            cap: signed(cap),
        }
    }

    /// The nominal delay after `failures` failures in a row (0 counts as 1): `first × 2^(n−1)`,
    /// at most `cap`, to the millisecond. The schedule is `backon`'s exponential one (factor 2,
    /// no jitter of its own).
    pub fn nominal(&self, failures: u32) -> SignedDuration {
        let first = self.first.as_millis().max(0);
        let cap = self.cap.as_millis().max(0);
        if first >= cap {
            return duration_ms(cap);
        }
        let mut schedule = ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(std_ms(first))
            .with_max_delay(std_ms(cap))
            .without_max_times()
            .build();
        // Past 64 doublings even a 1 ms start is beyond any cap.
        let doublings = failures.saturating_sub(1).min(64);
        let mut ms = first;
        for _ in 0..=doublings {
            match schedule.next() {
                Some(d) => ms = round_ms(d),
                None => break,
            }
            if ms >= cap {
                break;
            }
        }
        duration_ms(ms.min(cap))
    }

    /// The delay after `failures` failures in a row, with `jitter`: between half the nominal
    /// delay and the nominal delay, never more than `cap`.
    pub fn delay(&self, failures: u32, jitter: Jitter) -> SignedDuration {
        jitter.apply(self.nominal(failures))
    }

    /// The waits before each of `retries` retries of a call: [`Backoff::delay`] after 1, 2, …
    /// failures, each with a jitter drawn by `jitter` (the caller's randomness). An iterator a
    /// `backon` retry loop takes as its backoff; it ends when no retry is left.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slotbridge_domain::backoff::{Backoff, Jitter};
    /// let b = Backoff::from_std(Duration::from_millis(200), Duration::from_secs(10));
    /// let waits: Vec<u128> = b.retries(4, || Jitter::NONE).map(|d| d.as_millis()).collect();
    /// assert_eq!(waits, [200, 400, 800, 1600]);
    /// ```
    pub fn retries<J: FnMut() -> Jitter>(self, retries: u32, jitter: J) -> Retries<J> {
        Retries {
            backoff: self,
            done: 0,
            retries,
            jitter,
        }
    }
}

/// The waits of a bounded retry loop: see [`Backoff::retries`].
#[derive(Debug, Clone)]
pub struct Retries<J> {
    backoff: Backoff,
    done: u32,
    retries: u32,
    jitter: J,
}

impl<J: FnMut() -> Jitter> Iterator for Retries<J> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.done >= self.retries {
            return None;
        }
        self.done += 1;
        let wait = self.backoff.delay(self.done, (self.jitter)());
        Some(wait.unsigned_abs())
    }
}

/// The wait before the next retry of a call the server refused: `scheduled` is the backoff's
/// next wait (`None`: no retry is left). A `Retry-After` the server gave takes its place; one
/// longer than `max_retry_after` is not waited for, and the call fails at once (`None`).
///
/// ```
/// use std::time::Duration;
/// use slotbridge_domain::backoff::retry_wait;
/// let s = Duration::from_secs;
/// assert_eq!(retry_wait(Some(s(1)), None, s(30)), Some(s(1)));
/// assert_eq!(retry_wait(Some(s(1)), Some(s(7)), s(30)), Some(s(7)));
/// assert_eq!(retry_wait(Some(s(1)), Some(s(60)), s(30)), None);
/// assert_eq!(retry_wait(None, Some(s(7)), s(30)), None);
/// ```
pub fn retry_wait(
    scheduled: Option<Duration>,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Option<Duration> {
    let scheduled = scheduled?;
    match retry_after {
        Some(asked) if asked > max_retry_after => None,
        Some(asked) => Some(asked),
        None => Some(scheduled),
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::LINK
    }
}

/// A failure that only an operator or the practice can cure: retrying is pointless until the
/// credentials change or an operator asks for a resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lasting {
    /// The PMS did not accept the API key (401/403).
    PmsKeyRejected,
    /// The practice revoked the PMS API key.
    PmsKeyRevoked,
    /// The marketplace did not accept the integration's credentials (401/403).
    MarketKeyRejected,
    /// The practice has not given (or withdrew) its consent on the marketplace.
    ConsentMissing,
}

impl Lasting {
    /// A short, stable name for metrics, logs and the console.
    pub fn kind(self) -> &'static str {
        match self {
            Lasting::PmsKeyRejected => "pms_unauthorized",
            Lasting::PmsKeyRevoked => "pms_key_revoked",
            Lasting::MarketKeyRejected => "market_unauthorized",
            Lasting::ConsentMissing => "consent_missing",
        }
    }

    /// What the operator or the practice must do before the link works again.
    pub fn what_to_do(self) -> &'static str {
        match self {
            Lasting::PmsKeyRejected => {
                "The practice's system does not accept the API key: enter a valid key for the link."
            }
            Lasting::PmsKeyRevoked => {
                "The practice revoked the API key: ask the practice for a new key and enter it for \
                 the link."
            }
            Lasting::MarketKeyRejected => {
                "The marketplace refused the link's credentials (401): the practice may not have \
                 given its consent, or the practice id or key is wrong. Ask the practice to check \
                 Practice Admin → API Consumer Consent (Grant new consent if none is there) and \
                 enter the practice id and key shown there for the link. If every practice fails \
                 at once, check the integration's marketplace api key."
            }
            Lasting::ConsentMissing => {
                "The practice has not given its consent on the marketplace: ask the practice to \
                 give it, then resync the link."
            }
        }
    }
}

impl fmt::Display for Lasting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// How a link-level failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A retry later may cure it (down, rate limited, timeout, an unreadable answer, a store
    /// failure): back off with jitter.
    Transient,
    /// Retrying cannot cure it: park the link.
    Lasting(Lasting),
}

/// A link's breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Working normally.
    Closed,
    /// `failures` transient failures in a row; the next try is due at `until`.
    BackingOff {
        /// Transient failures in a row.
        failures: u32,
        /// When the next try is due.
        until: Timestamp,
    },
    /// Parked by a lasting failure until the credentials change or an operator resyncs.
    Parked {
        /// What failed.
        why: Lasting,
        /// Since when.
        since: Timestamp,
    },
}

/// One link's breaker: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    backoff: Backoff,
    state: BreakerState,
}

impl Breaker {
    /// A closed breaker backing off with `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        Breaker {
            backoff,
            state: BreakerState::Closed,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether the link may be worked (read, published) at `now`.
    pub fn may_try(&self, now: Timestamp) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::BackingOff { until, .. } => now >= until,
            BreakerState::Parked { .. } => false,
        }
    }

    /// When the link may be worked next: `None` when parked (only a credentials change or a
    /// resync reopens it), `Some(now)`-or-earlier when it may be worked at once.
    pub fn next_try(&self) -> Option<Timestamp> {
        match self.state {
            BreakerState::Closed => Some(Timestamp::MIN),
            BreakerState::BackingOff { until, .. } => Some(until),
            BreakerState::Parked { .. } => None,
        }
    }

    /// What to show for a parked link.
    pub fn what_to_do(&self) -> Option<&'static str> {
        match self.state {
            BreakerState::Parked { why, .. } => Some(why.what_to_do()),
            _ => None,
        }
    }

    /// A success: closed again.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed;
    }

    /// A failure at `now`: a transient one backs off (one more failure in a row); a lasting one
    /// parks the link. A parked link stays parked (with its first reason) whatever else fails.
    pub fn on_failure(
        &mut self,
        class: FailureClass,
        now: Timestamp,
        jitter: Jitter,
    ) -> BreakerState {
        self.state = match (self.state, class) {
            (parked @ BreakerState::Parked { .. }, _) => parked,
            (_, FailureClass::Lasting(why)) => BreakerState::Parked { why, since: now },
            (BreakerState::Closed, FailureClass::Transient) => BreakerState::BackingOff {
                failures: 1,
                until: plus(now, self.backoff.delay(1, jitter)),
            },
            (BreakerState::BackingOff { failures, .. }, FailureClass::Transient) => {
                let failures = failures.saturating_add(1);
                BreakerState::BackingOff {
                    failures,
                    until: plus(now, self.backoff.delay(failures, jitter)),
                }
            }
        };
        self.state
    }

    /// The link's credentials changed: closed again, whatever the state.
    pub fn credentials_changed(&mut self) {
        self.state = BreakerState::Closed;
    }

    /// An operator asked for a resync: closed again, whatever the state.
    pub fn resync(&mut self) {
        self.state = BreakerState::Closed;
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new(Backoff::LINK)
    }
}

fn duration_ms(ms: i128) -> SignedDuration {
    SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Whole milliseconds (non-negative) as a standard duration.
fn std_ms(ms: i128) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A standard duration to the nearest millisecond (`backon` multiplies in `f32`, so a doubled
/// 200 ms comes back a few nanoseconds off).
fn round_ms(d: Duration) -> i128 {
    ((d.as_nanos() + 500_000) / 1_000_000) as i128
}

/// `t + d`, saturating at the ends of time.
pub(crate) fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(secs: i64) -> SignedDuration {
        SignedDuration::from_secs(secs)
    }

    fn ms(millis: i64) -> SignedDuration {
        SignedDuration::from_millis(millis)
    }

    fn t0() -> Timestamp {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn link_backoff_table() {
        // (case, failures, jitter, expected delay)
        let rows: &[(&str, u32, f64, SignedDuration)] = &[
            ("no failure yet counts as the first: 1 s", 0, 0.0, s(1)),
            ("first failure: 1 s", 1, 0.0, s(1)),
            ("second: 2 s", 2, 0.0, s(2)),
            ("third: 4 s", 3, 0.0, s(4)),
            ("sixth: 32 s", 6, 0.0, s(32)),
            ("seventh: capped at 60 s", 7, 0.0, s(60)),
            ("hundredth: still 60 s", 100, 0.0, s(60)),
            ("u32::MAX failures: still 60 s", u32::MAX, 0.0, s(60)),
            ("first, full jitter: half, 500 ms", 1, 1.0, ms(500)),
            ("third, half jitter: 4 s less a quarter, 3 s", 3, 0.5, s(3)),
            ("capped, full jitter: 30 s", 9, 1.0, s(30)),
            ("jitter above 1 is clamped: 30 s", 9, 7.0, s(30)),
            ("negative jitter is clamped to none: 60 s", 9, -1.0, s(60)),
            ("NaN jitter is none: 2 s", 2, f64::NAN, s(2)),
        ];
        for (case, failures, jitter, want) in rows {
            assert_eq!(
                Backoff::LINK.delay(*failures, Jitter::new(*jitter)),
                *want,
                "{case}"
            );
        }
    }

    #[test]
    fn breaker_table() {
        use BreakerState::*;
        use FailureClass::*;
        let revoked = Lasting(super::Lasting::PmsKeyRevoked);
        let consent = Lasting(super::Lasting::ConsentMissing);
        // (case, failures in order (class, seconds after t0), expected state)
        type Row = (&'static str, Vec<(FailureClass, i64)>, BreakerState);
        let rows: Vec<Row> = vec![
            ("nothing failed: closed", vec![], Closed),
            (
                "one transient at 0 s: back off until 1 s",
                vec![(Transient, 0)],
                BackingOff {
                    failures: 1,
                    until: plus(t0(), s(1)),
                },
            ),
            (
                "three transients: the third waits 4 s",
                vec![(Transient, 0), (Transient, 1), (Transient, 3)],
                BackingOff {
                    failures: 3,
                    until: plus(t0(), s(7)),
                },
            ),
            (
                "ten transients: waits are capped at 60 s",
                (0..10).map(|i| (Transient, i * 100)).collect(),
                BackingOff {
                    failures: 10,
                    until: plus(t0(), s(960)),
                },
            ),
            (
                "revoked key: parked",
                vec![(revoked, 5)],
                Parked {
                    why: super::Lasting::PmsKeyRevoked,
                    since: plus(t0(), s(5)),
                },
            ),
            (
                "transient then consent missing: parked",
                vec![(Transient, 0), (consent, 2)],
                Parked {
                    why: super::Lasting::ConsentMissing,
                    since: plus(t0(), s(2)),
                },
            ),
            (
                "parked stays parked with its first reason through later failures",
                vec![(revoked, 0), (Transient, 10), (consent, 20)],
                Parked {
                    why: super::Lasting::PmsKeyRevoked,
                    since: t0(),
                },
            ),
        ];
        for (case, failures, want) in rows {
            let mut b = Breaker::default();
            for (class, at) in failures {
                b.on_failure(class, plus(t0(), s(at)), Jitter::NONE);
            }
            assert_eq!(b.state(), want, "{case}");
        }
    }

    #[test]
    fn breaker_reopens_on_success_credentials_or_resync() {
        let mut b = Breaker::default();
        b.on_failure(FailureClass::Transient, t0(), Jitter::NONE);
        assert!(!b.may_try(t0()), "backing off: not at once");
        assert!(b.may_try(plus(t0(), s(1))), "backing off: due after 1 s");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);

        for reopen in [Breaker::credentials_changed, Breaker::resync] {
            let mut b = Breaker::default();
            b.on_failure(
                FailureClass::Lasting(Lasting::MarketKeyRejected),
                t0(),
                Jitter::NONE,
            );
            assert!(
                !b.may_try(plus(t0(), s(86_400))),
                "parked: not even a day later"
            );
            assert_eq!(b.next_try(), None);
            assert!(b.what_to_do().unwrap().contains("practice id or key"));
            reopen(&mut b);
            assert!(b.may_try(t0()));
            assert_eq!(b.what_to_do(), None);
        }
    }

    #[test]
    fn every_lasting_failure_says_what_to_do() {
        for l in [
            Lasting::PmsKeyRejected,
            Lasting::PmsKeyRevoked,
            Lasting::MarketKeyRejected,
            Lasting::ConsentMissing,
        ] {
            assert!(l.what_to_do().ends_with('.'), "{l}");
            assert!(!l.kind().is_empty());
        }
    }

    #[test]
    fn the_adapters_schedules_table() {
        let std_ms = Duration::from_millis;
        // (case, first, cap, jitter, expected waits of 6 retries)
        type Row = (&'static str, u64, u64, f64, [u64; 6]);
        let rows: &[Row] = &[
            (
                "PMS connector: 200 ms doubling, capped at 10 s",
                200,
                10_000,
                0.0,
                [200, 400, 800, 1600, 3200, 6400],
            ),
            (
                "marketplace client: 250 ms doubling, capped at 30 s",
                250,
                30_000,
                0.0,
                [250, 500, 1000, 2000, 4000, 8000],
            ),
            (
                "a short cap is reached and kept",
                10,
                35,
                0.0,
                [10, 20, 35, 35, 35, 35],
            ),
            (
                "full jitter: each wait halved",
                200,
                10_000,
                1.0,
                [100, 200, 400, 800, 1600, 3200],
            ),
            (
                "a first wait above the cap is the cap",
                5_000,
                1_000,
                0.0,
                [1000, 1000, 1000, 1000, 1000, 1000],
            ),
            ("no wait at all", 0, 0, 0.0, [0, 0, 0, 0, 0, 0]),
        ];
        for (case, first, cap, jitter, want) in rows {
            let b = Backoff::from_std(std_ms(*first), std_ms(*cap));
            let got: Vec<u64> = b
                .retries(6, || Jitter::new(*jitter))
                .map(|d| d.as_millis() as u64)
                .collect();
            assert_eq!(got, want, "{case}");
        }
        assert_eq!(Backoff::LINK.retries(0, || Jitter::NONE).count(), 0);
        let mut draws = [0.0, 1.0, 0.5].into_iter();
        let waits: Vec<Duration> = Backoff::LINK
            .retries(3, || Jitter::new(draws.next().unwrap_or(0.0)))
            .collect();
        assert_eq!(
            waits,
            [std_ms(1000), std_ms(1000), std_ms(3000)],
            "each wait takes the next jitter drawn"
        );
    }

    #[test]
    fn retry_after_table() {
        let secs = Duration::from_secs;
        // (case, scheduled, Retry-After, expected wait)
        type Row = (
            &'static str,
            Option<Duration>,
            Option<Duration>,
            Option<Duration>,
        );
        let rows: &[Row] = &[
            (
                "no Retry-After: the backoff",
                Some(secs(2)),
                None,
                Some(secs(2)),
            ),
            (
                "Retry-After replaces the backoff, longer",
                Some(secs(2)),
                Some(secs(9)),
                Some(secs(9)),
            ),
            (
                "Retry-After replaces the backoff, shorter",
                Some(secs(2)),
                Some(secs(0)),
                Some(secs(0)),
            ),
            (
                "Retry-After at the limit is waited for",
                Some(secs(2)),
                Some(secs(30)),
                Some(secs(30)),
            ),
            (
                "Retry-After past the limit: fail now",
                Some(secs(2)),
                Some(secs(31)),
                None,
            ),
            ("no retry left: fail", None, None, None),
            (
                "no retry left, whatever the Retry-After",
                None,
                Some(secs(1)),
                None,
            ),
        ];
        for (case, scheduled, asked, want) in rows {
            assert_eq!(retry_wait(*scheduled, *asked, secs(30)), *want, "{case}");
        }
    }

    proptest! {
        /// backon's schedule (computed in `f32`) matches `first × 2^(n−1)` capped, to the
        /// millisecond for waits of up to a minute and within a millionth beyond.
        #[test]
        fn the_schedule_is_first_doubling_up_to_the_cap(
            first in 1u64..=10_000,
            cap in 1u64..=86_400_000,
            failures in 0u32..80,
        ) {
            let b = Backoff::from_std(Duration::from_millis(first), Duration::from_millis(cap));
            let exact = (0..failures.saturating_sub(1))
                .fold(first as u128, |ms, _| (ms * 2).min(cap as u128))
                .min(cap as u128) as i128;
            let got = b.nominal(failures).as_millis();
            if exact <= 60_000 {
                prop_assert_eq!(got, exact);
            } else {
                prop_assert!((got - exact).abs() * 1_000_000 <= exact, "{} vs {}", got, exact);
            }
        }

        #[test]
        fn backoff_is_monotone_up_to_the_cap(n in 0u32..200, j in 0.0f64..=1.0) {
            let j = Jitter::new(j);
            let (a, b) = (Backoff::LINK.delay(n, j), Backoff::LINK.delay(n + 1, j));
            prop_assert!(a <= b, "{a:?} > {b:?}");
            prop_assert!(Backoff::LINK.nominal(n) <= Backoff::LINK.nominal(n + 1));
        }

        #[test]
        fn jitter_keeps_the_delay_within_half_and_the_nominal(
            n in 0u32..200,
            j in proptest::num::f64::ANY,
        ) {
            let nominal = Backoff::LINK.nominal(n);
            let d = Backoff::LINK.delay(n, Jitter::new(j));
            prop_assert!(d <= nominal && d <= Backoff::LINK.cap);
            prop_assert!(d.as_millis() * 2 >= nominal.as_millis());
            prop_assert!(d >= SignedDuration::from_millis(500));
        }

        #[test]
        fn jitter_is_monotone_in_the_nominal(a in 0i64..10_000_000, b in 0i64..10_000_000, j in 0.0f64..=1.0) {
            let (lo, hi) = (a.min(b), a.max(b));
            let j = Jitter::new(j);
            prop_assert!(j.apply(ms(lo)) <= j.apply(ms(hi)));
        }

        #[test]
        fn a_backing_off_breaker_waits_at_most_the_cap(
            failures in 1usize..30,
            j in 0.0f64..=1.0,
        ) {
            let mut b = Breaker::default();
            let mut state = BreakerState::Closed;
            for _ in 0..failures {
                state = b.on_failure(FailureClass::Transient, t0(), Jitter::new(j));
            }
            let BreakerState::BackingOff { failures: n, until } = state else {
                return Err(TestCaseError::fail("not backing off"));
            };
            prop_assert_eq!(n as usize, failures);
            prop_assert!(until > t0() && until <= plus(t0(), s(60)));
        }
    }
}
