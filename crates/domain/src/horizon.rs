//! The publishing horizon: how many days ahead a link publishes (1 to 90, 30 by default), and
//! which practice-local dates that covers from a given instant.
//!
//! The one home of both: the store keeps a link's [`HorizonDays`], the worker reads the diary
//! over [`Horizon::start`]`..`[`Horizon::end`], the publisher sends [`Horizon::dates`], the
//! engine's snapshot is cut at the same end (`to_snapshot(…, horizon_days.days())`).
//!
//! ```
//! use slotbridge_domain::horizon::{Horizon, HorizonDays};
//! let tz = jiff::tz::TimeZone::get("Australia/Sydney").unwrap();
//! // 14:00 UTC on 1 March is 01:00 on 2 March in Sydney.
//! let now = "2026-03-01T14:00:00Z".parse().unwrap();
//! let h = Horizon::new(&tz, now, "7".parse::<HorizonDays>().unwrap());
//! assert_eq!(h.start().to_string(), "2026-03-02");
//! assert_eq!(h.last().to_string(), "2026-03-08");
//! assert_eq!(h.end().to_string(), "2026-03-09"); // exclusive: the diary read's end
//! assert_eq!(h.dates().len(), 7);
//! ```

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// How many days ahead a link publishes availability: 1 to 90, 30 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct HorizonDays(u8);

impl HorizonDays {
    /// The field's name in forms, the API and errors.
    pub const FIELD: &'static str = "horizon_days";
    /// The smallest horizon.
    pub const MIN: i64 = 1;
    /// The largest horizon the marketplace accepts.
    pub const MAX: i64 = 90;
    /// The default horizon.
    pub const DEFAULT: HorizonDays = HorizonDays(30);

    /// A horizon of `days`, or an error naming the field and the accepted range.
    ///
    /// ```
    /// use slotbridge_domain::horizon::HorizonDays;
    /// assert_eq!(HorizonDays::new(30).unwrap().get(), 30);
    /// assert_eq!(
    ///     HorizonDays::new(91).unwrap_err().to_string(),
    ///     "horizon_days: expected 1 to 90 days, found 91"
    /// );
    /// ```
    pub fn new(days: i64) -> Result<Self, HorizonError> {
        if (Self::MIN..=Self::MAX).contains(&days) {
            u8::try_from(days)
                .map(HorizonDays)
                .map_err(|_| HorizonError::OutOfRange { found: days })
        } else {
            Err(HorizonError::OutOfRange { found: days })
        }
    }

    /// The number of days.
    pub fn get(self) -> i64 {
        i64::from(self.0)
    }

    /// The number of days, as the engine's `to_snapshot` and the PMS reads take it.
    pub fn days(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for HorizonDays {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<i64> for HorizonDays {
    type Error = HorizonError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<HorizonDays> for i64 {
    fn from(h: HorizonDays) -> i64 {
        h.get()
    }
}

impl From<HorizonDays> for u32 {
    fn from(h: HorizonDays) -> u32 {
        h.days()
    }
}

/// Parses a whole number of days, surrounding blanks ignored (`" 30 "`), as a form sends it.
impl FromStr for HorizonDays {
    type Err = HorizonError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let days: i64 = s.parse().map_err(|_| HorizonError::NotANumber {
            found: s.chars().take(40).collect(),
        })?;
        Self::new(days)
    }
}

impl fmt::Display for HorizonDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} days", self.0)
    }
}

/// A horizon that cannot be accepted. Its text starts with the field's name
/// ([`HorizonDays::FIELD`]); [`HorizonError::detail`] is the text without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HorizonError {
    /// A number of days outside 1 to 90.
    #[error("horizon_days: expected 1 to 90 days, found {found}")]
    OutOfRange {
        /// What was given.
        found: i64,
    },
    /// Not a whole number.
    #[error("horizon_days: expected a whole number of days from 1 to 90, found {found:?}")]
    NotANumber {
        /// What was given (at most 40 characters of it).
        found: String,
    },
}

impl HorizonError {
    /// The field the error is about: [`HorizonDays::FIELD`].
    pub fn field(&self) -> &'static str {
        HorizonDays::FIELD
    }

    /// The message without the field's name, for errors that carry the field apart (the
    /// store's `InvalidInput { field, message }`, the admin API's `Invalid { field, message }`).
    pub fn detail(&self) -> String {
        match self {
            HorizonError::OutOfRange { found } => format!("expected 1 to 90 days, found {found}"),
            HorizonError::NotANumber { found } => {
                format!("expected a whole number of days from 1 to 90, found {found:?}")
            }
        }
    }
}

/// The practice-local dates a horizon covers from an instant: `start` (today where the practice
/// is) up to, not including, `end` = `start + days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Horizon {
    start: Date,
    end: Date,
    days: HorizonDays,
}

impl Horizon {
    /// The horizon of `days` from `now`, in the practice's time zone `tz` (for a
    /// `PracticeSetup`, `setup.timezone.time_zone()`).
    pub fn new(tz: &TimeZone, now: Timestamp, days: HorizonDays) -> Self {
        let start = today(tz, now);
        let end = start
            .checked_add(jiff::Span::new().days(days.get()))
            .unwrap_or(Date::MAX);
        Horizon { start, end, days }
    }

    /// The first date: today where the practice is.
    pub fn start(&self) -> Date {
        self.start
    }

    /// The last date in the horizon.
    pub fn last(&self) -> Date {
        self.end.yesterday().unwrap_or(self.start).max(self.start)
    }

    /// The first date after the horizon (the exclusive end a diary read takes).
    pub fn end(&self) -> Date {
        self.end
    }

    /// The number of days.
    pub fn days(&self) -> HorizonDays {
        self.days
    }

    /// Whether `date` is in the horizon.
    pub fn contains(&self, date: Date) -> bool {
        date >= self.start && date < self.end
    }

    /// Every date of the horizon, in order.
    pub fn dates(&self) -> Vec<Date> {
        (0..self.days.get())
            .filter_map(|n| self.start.checked_add(jiff::Span::new().days(n)).ok())
            .collect()
    }
}

/// Today's date where the practice is.
pub fn today(tz: &TimeZone, now: Timestamp) -> Date {
    now.to_zoned_datetime(tz.clone()).date()
}

/// The practice-local dates of the horizon of `days` starting at `now`, in order: what
/// `publisher::horizon_dates(setup, now, days)` returned, with the zone
/// `setup.timezone.time_zone()`.
pub fn horizon_dates(tz: &TimeZone, now: Timestamp, days: HorizonDays) -> Vec<Date> {
    Horizon::new(tz, now, days).dates()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn sydney() -> TimeZone {
        TimeZone::get("Australia/Sydney").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn horizon_days_parse_table() {
        // (case, input, expected days or the error's text)
        let rows: &[(&str, &str, Result<i64, &str>)] = &[
            ("one day", "1", Ok(1)),
            ("the default", "30", Ok(30)),
            ("the marketplace's most", "90", Ok(90)),
            ("blanks around are ignored", " 14 ", Ok(14)),
            ("a leading plus", "+7", Ok(7)),
            (
                "zero",
                "0",
                Err("horizon_days: expected 1 to 90 days, found 0"),
            ),
            (
                "one too many",
                "91",
                Err("horizon_days: expected 1 to 90 days, found 91"),
            ),
            (
                "negative",
                "-3",
                Err("horizon_days: expected 1 to 90 days, found -3"),
            ),
            (
                "a fraction",
                "7.5",
                Err("horizon_days: expected a whole number of days from 1 to 90, found \"7.5\""),
            ),
            (
                "words",
                "a month",
                Err(
                    "horizon_days: expected a whole number of days from 1 to 90, found \"a month\"",
                ),
            ),
            (
                "empty",
                "",
                Err("horizon_days: expected a whole number of days from 1 to 90, found \"\""),
            ),
            (
                "beyond i64",
                "99999999999999999999",
                Err(
                    "horizon_days: expected a whole number of days from 1 to 90, found \
                     \"99999999999999999999\"",
                ),
            ),
        ];
        for (case, input, want) in rows {
            let got = input
                .parse::<HorizonDays>()
                .map(HorizonDays::get)
                .map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{case}");
        }
    }

    #[test]
    fn horizon_errors_name_the_field_and_carry_a_detail_without_it() {
        let e = HorizonDays::new(0).unwrap_err();
        assert_eq!(e.field(), "horizon_days");
        assert_eq!(e.detail(), "expected 1 to 90 days, found 0");
        assert_eq!(e.to_string(), format!("{}: {}", e.field(), e.detail()));
        let e = "x".parse::<HorizonDays>().unwrap_err();
        assert_eq!(e.to_string(), format!("{}: {}", e.field(), e.detail()));
    }

    #[test]
    fn horizon_days_default_display_and_serde() {
        assert_eq!(HorizonDays::default().get(), 30);
        assert_eq!(HorizonDays::DEFAULT.to_string(), "30 days");
        assert_eq!(
            serde_json::to_string(&HorizonDays::new(45).unwrap()).unwrap(),
            "45"
        );
        assert_eq!(
            serde_json::from_str::<HorizonDays>("45").unwrap(),
            HorizonDays::new(45).unwrap()
        );
        let e = serde_json::from_str::<HorizonDays>("120").unwrap_err();
        assert!(e.to_string().contains("horizon_days"), "{e}");
        assert_eq!(u32::from(HorizonDays::new(90).unwrap()), 90);
        assert_eq!(i64::from(HorizonDays::new(1).unwrap()), 1);
    }

    #[test]
    fn horizon_dates_table() {
        // (case, now, zone, days, first, last, exclusive end)
        let rows: &[(&str, &str, &str, i64, Date, Date, Date)] = &[
            (
                "morning in Sydney: today is the UTC date",
                "2026-03-02T00:00:00Z",
                "Australia/Sydney",
                30,
                date(2026, 3, 2),
                date(2026, 3, 31),
                date(2026, 4, 1),
            ),
            (
                "14:00 UTC is already tomorrow in Sydney",
                "2026-03-01T14:00:00Z",
                "Australia/Sydney",
                7,
                date(2026, 3, 2),
                date(2026, 3, 8),
                date(2026, 3, 9),
            ),
            (
                "one day: today only",
                "2026-03-02T00:00:00Z",
                "Australia/Sydney",
                1,
                date(2026, 3, 2),
                date(2026, 3, 2),
                date(2026, 3, 3),
            ),
            (
                "over the end of daylight saving (5 April 2026) every date once",
                "2026-04-03T22:00:00Z",
                "Australia/Sydney",
                5,
                date(2026, 4, 4),
                date(2026, 4, 8),
                date(2026, 4, 9),
            ),
            (
                "90 days over a year's end",
                "2026-12-01T12:00:00Z",
                "UTC",
                90,
                date(2026, 12, 1),
                date(2027, 2, 28),
                date(2027, 3, 1),
            ),
        ];
        for (case, now, zone, days, first, last, end) in rows {
            let tz = TimeZone::get(zone).unwrap();
            let h = Horizon::new(&tz, ts(now), HorizonDays::new(*days).unwrap());
            let dates = h.dates();
            assert_eq!(dates, horizon_dates(&tz, ts(now), h.days()), "{case}");
            assert_eq!(
                (h.start(), h.last(), h.end()),
                (*first, *last, *end),
                "{case}"
            );
            assert_eq!(dates.len() as i64, *days, "{case}");
            assert_eq!(
                (dates.first(), dates.last()),
                (Some(first), Some(last)),
                "{case}"
            );
            assert!(
                dates.windows(2).all(|w| w[0].tomorrow().unwrap() == w[1]),
                "{case}"
            );
            assert!(h.contains(*first) && h.contains(*last), "{case}");
            assert!(
                !h.contains(*end) && !h.contains(first.yesterday().unwrap()),
                "{case}"
            );
        }
    }

    #[test]
    fn the_horizon_ends_where_the_engine_cuts_the_snapshot() {
        // to_snapshot publishes dates d with today <= d < today + horizon_days.
        let now = ts("2026-03-01T14:00:00Z");
        let h = Horizon::new(&sydney(), now, HorizonDays::new(7).unwrap());
        assert_eq!(h.start(), today(&sydney(), now));
        assert_eq!(
            h.end(),
            h.start().checked_add(jiff::Span::new().days(7)).unwrap()
        );
    }

    proptest! {
        #[test]
        fn every_valid_horizon_has_that_many_consecutive_dates(
            days in 1i64..=90,
            secs in 0i64..4_000_000_000,
        ) {
            let now = Timestamp::from_second(secs).unwrap();
            let h = Horizon::new(&sydney(), now, HorizonDays::new(days).unwrap());
            let dates = h.dates();
            prop_assert_eq!(dates.len() as i64, days);
            prop_assert_eq!(dates[0], h.start());
            prop_assert_eq!(*dates.last().unwrap(), h.last());
            prop_assert_eq!(h.last().tomorrow().unwrap(), h.end());
        }

        #[test]
        fn horizon_days_accept_exactly_1_to_90(days in proptest::num::i64::ANY) {
            prop_assert_eq!(HorizonDays::new(days).is_ok(), (1..=90).contains(&days));
            prop_assert_eq!(days.to_string().parse::<HorizonDays>().is_ok(), (1..=90).contains(&days));
        }
    }
}
