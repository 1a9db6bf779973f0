//! The per-key rate limit: `governor`'s keyed GCRA limiter, which behaves as a token bucket of
//! `burst` requests refilled at `per_second`. A refused request is a 429 problem with the whole
//! seconds until the key may send again as `Retry-After` (at least 1).

use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::problem::Problem;

/// A per-key rate limit: a token bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

impl RateLimit {
    /// The limit as a `governor` quota: one request every `1 / per_second` seconds (at least a
    /// nanosecond apart), bursts of `burst` rounded (at least 1). `None` when `per_second` is not
    /// a positive number: no limit.
    fn quota(self) -> Option<Quota> {
        if !(self.per_second > 0.0 && self.per_second.is_finite()) {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / self.per_second)
            .unwrap_or(Duration::MAX)
            .max(Duration::from_nanos(1));
        let burst = if self.burst.is_nan() {
            1.0
        } else {
            self.burst.round().clamp(1.0, f64::from(u32::MAX))
        };
        let burst = NonZeroU32::new(burst as u32).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

/// Every key's bucket.
pub(crate) struct Limiter {
    limit: RateLimit,
    keys: RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Limiter {
    /// A limiter for `limit`; `None` when the limit does not limit (see [`RateLimit::quota`]).
    pub(crate) fn new(limit: RateLimit) -> Option<Self> {
        let quota = limit.quota()?;
        let clock = DefaultClock::default();
        Some(Self {
            limit,
            keys: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
        })
    }

    /// Take a token from `key`'s bucket, or a 429 with the seconds until one is back.
    pub(crate) fn check(&self, key: &str) -> Result<(), Problem> {
        let key = key.to_owned();
        self.keys.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!(
                    "this API key is limited to {} requests per second",
                    self.limit.per_second
                ),
            )
            .with_retry_after(retry_after_secs(wait))
        })
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(p: &Problem) -> u64 {
        assert_eq!(p.status, 429);
        p.retry_after.expect("Retry-After")
    }

    #[test]
    fn a_key_gets_its_burst_then_429_with_the_seconds_until_the_next_token() {
        // One token every 1000 s: nothing refills while the test runs.
        let l = Limiter::new(RateLimit {
            per_second: 0.001,
            burst: 3.0,
        })
        .unwrap();
        for _ in 0..3 {
            l.check("k1").unwrap();
        }
        let refused = l.check("k1").unwrap_err();
        let secs = retry_after(&refused);
        assert!((990..=1000).contains(&secs), "{secs}");
        // Another key has its own bucket.
        l.check("k2").unwrap();
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        for (wait_ms, secs) in [
            (0, 1),
            (1, 1),
            (999, 1),
            (1000, 1),
            (1001, 2),
            (1500, 2),
            (3000, 3),
        ] {
            assert_eq!(
                retry_after_secs(Duration::from_millis(wait_ms)),
                secs,
                "{wait_ms} ms"
            );
        }
    }

    #[test]
    fn limits_that_do_not_limit_are_no_limiter() {
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                Limiter::new(RateLimit {
                    per_second,
                    burst: 10.0
                })
                .is_none(),
                "{per_second}"
            );
        }
        // A burst below one is one.
        let l = Limiter::new(RateLimit {
            per_second: 0.001,
            burst: 0.2,
        })
        .unwrap();
        l.check("k").unwrap();
        assert!(l.check("k").is_err());
    }
}
