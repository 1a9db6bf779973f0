//! The wire formats of the Healthengine PMS API, in one place, as serde helpers.
//!
//! | what | format | module |
//! |---|---|---|
//! | instants (`bookedTime`, `updatedAt`, `startAt`, `expireAt`, webhook `timestamp`) | `YYYY-MM-DD HH24:MI:SS` in UTC | [`utc`], [`utc_opt`] |
//! | practice-local date-times (`pmsAppointmentTime`) | `YYYY-MM-DD HH24:MI:SS` in the practice's zone | [`local`] |
//! | dates (`date`, `day`) | `YYYY-MM-DD` | jiff's own serde for [`jiff::civil::Date`] |
//! | dates of birth (`Patient.dob`) | `DD-MM-YYYY` | [`dob_opt`] |
//! | range times (`start`, `end`) | `HH24:MI` in the practice's zone | [`hhmm`] |
//!
//! ```
//! use slotbridge_market::format;
//! let t = format::parse_utc("2023-12-01 01:13:55").unwrap();
//! assert_eq!(format::format_utc(t), "2023-12-01 01:13:55");
//! assert!(format::parse_utc("2023-12-01T01:13:55Z").is_err());
//! ```

use jiff::{
    Timestamp,
    civil::{Date, DateTime, Time},
    tz::TimeZone,
};

const DATETIME: &str = "%Y-%m-%d %H:%M:%S";
const DOB: &str = "%d-%m-%Y";
const HHMM: &str = "%H:%M";

/// A value did not match its wire format; the message says what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found:?}")]
pub struct FormatError {
    /// The expected format, e.g. `YYYY-MM-DD HH24:MI:SS`.
    pub expected: &'static str,
    /// The text that was found.
    pub found: String,
}

fn err(expected: &'static str, found: &str) -> FormatError {
    FormatError {
        expected,
        found: found.to_owned(),
    }
}

/// Parse `YYYY-MM-DD HH24:MI:SS` as a civil date-time (no zone).
pub fn parse_local(s: &str) -> Result<DateTime, FormatError> {
    if s.len() != 19 {
        return Err(err("YYYY-MM-DD HH24:MI:SS", s));
    }
    DateTime::strptime(DATETIME, s).map_err(|_| err("YYYY-MM-DD HH24:MI:SS", s))
}

/// Format a civil date-time as `YYYY-MM-DD HH24:MI:SS`.
pub fn format_local(dt: DateTime) -> String {
    dt.strftime(DATETIME).to_string()
}

/// Parse `YYYY-MM-DD HH24:MI:SS` as an instant in UTC.
pub fn parse_utc(s: &str) -> Result<Timestamp, FormatError> {
    let dt = parse_local(s).map_err(|_| err("YYYY-MM-DD HH24:MI:SS (UTC)", s))?;
    dt.to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| err("YYYY-MM-DD HH24:MI:SS (UTC)", s))
}

/// Format an instant as `YYYY-MM-DD HH24:MI:SS` in UTC (sub-second precision is dropped).
pub fn format_utc(t: Timestamp) -> String {
    t.strftime(DATETIME).to_string()
}

/// Parse a date of birth, `DD-MM-YYYY`.
pub fn parse_dob(s: &str) -> Result<Date, FormatError> {
    if s.len() != 10 {
        return Err(err("DD-MM-YYYY", s));
    }
    Date::strptime(DOB, s).map_err(|_| err("DD-MM-YYYY", s))
}

/// Format a date of birth as `DD-MM-YYYY`.
pub fn format_dob(d: Date) -> String {
    d.strftime(DOB).to_string()
}

/// Parse a range time, `HH24:MI`.
pub fn parse_hhmm(s: &str) -> Result<Time, FormatError> {
    if s.len() != 5 {
        return Err(err("HH24:MI", s));
    }
    Time::strptime(HHMM, s).map_err(|_| err("HH24:MI", s))
}

/// Format a range time as `HH24:MI` (seconds are dropped).
pub fn format_hhmm(t: Time) -> String {
    t.strftime(HHMM).to_string()
}

macro_rules! serde_pair {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $parse:path, $format:path) => {
        $(#[$doc])*
        pub mod $name {
            use serde::{Deserialize, Deserializer, Serializer};

            /// Serialize in this module's wire format.
            pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&$format(*v))
            }

            /// Deserialize from this module's wire format.
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! serde_opt {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $parse:path, $format:path) => {
        $(#[$doc])*
        pub mod $name {
            use serde::{Deserialize, Deserializer, Serializer};

            /// Serialize in this module's wire format, `None` as `null`.
            pub fn serialize<S: Serializer>(v: &Option<$ty>, s: S) -> Result<S::Ok, S::Error> {
                match v {
                    Some(v) => s.serialize_str(&$format(*v)),
                    None => s.serialize_none(),
                }
            }

            /// Deserialize from this module's wire format; `null` and `""` are `None`.
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
                match Option::<String>::deserialize(d)? {
                    None => Ok(None),
                    Some(s) if s.is_empty() => Ok(None),
                    Some(s) => $parse(&s).map(Some).map_err(serde::de::Error::custom),
                }
            }
        }
    };
}

serde_pair!(
    /// `YYYY-MM-DD HH24:MI:SS` in UTC, for [`jiff::Timestamp`] fields.
    utc, jiff::Timestamp, super::parse_utc, super::format_utc
);
serde_opt!(
    /// `YYYY-MM-DD HH24:MI:SS` in UTC, for optional [`jiff::Timestamp`] fields.
    utc_opt, jiff::Timestamp, super::parse_utc, super::format_utc
);
serde_pair!(
    /// `YYYY-MM-DD HH24:MI:SS` in the practice's zone, for [`jiff::civil::DateTime`] fields.
    local, jiff::civil::DateTime, super::parse_local, super::format_local
);
serde_opt!(
    /// `DD-MM-YYYY`, for optional date-of-birth fields.
    dob_opt, jiff::civil::Date, super::parse_dob, super::format_dob
);
serde_pair!(
    /// `HH24:MI` in the practice's zone, for [`jiff::civil::Time`] fields.
    hhmm, jiff::civil::Time, super::parse_hhmm, super::format_hhmm
);

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn utc_round_trips_and_rejects_other_formats() {
        let t = parse_utc("2024-12-01 00:00:00").unwrap();
        assert_eq!(t.as_second(), 1_733_011_200);
        assert_eq!(format_utc(t), "2024-12-01 00:00:00");
        for bad in [
            "2024-12-01T00:00:00",
            "2024-12-01 0:00:00",
            "01-12-2024 00:00:00",
            "",
        ] {
            let e = parse_utc(bad).unwrap_err();
            assert!(e.to_string().contains("YYYY-MM-DD HH24:MI:SS"), "{e}");
        }
    }

    #[test]
    fn dob_is_day_month_year() {
        assert_eq!(parse_dob("23-02-2022").unwrap(), date(2022, 2, 23));
        assert_eq!(format_dob(date(1980, 7, 4)), "04-07-1980");
        assert!(parse_dob("2022-02-23").is_err());
        assert!(parse_dob("31-02-2022").is_err());
    }

    #[test]
    fn hhmm_is_hours_and_minutes() {
        let t = parse_hhmm("08:30").unwrap();
        assert_eq!(format_hhmm(t), "08:30");
        assert!(parse_hhmm("8:30").is_err());
        assert!(parse_hhmm("24:00").is_err());
        assert_eq!(format_hhmm(parse_hhmm("23:59").unwrap()), "23:59");
    }

    #[test]
    fn local_keeps_the_wall_clock() {
        let dt = parse_local("2026-04-05 02:30:00").unwrap();
        assert_eq!(dt, date(2026, 4, 5).at(2, 30, 0, 0));
        assert_eq!(format_local(dt), "2026-04-05 02:30:00");
    }

    proptest::proptest! {
        #[test]
        fn utc_format_round_trips(secs in 0i64..4_000_000_000) {
            let t = Timestamp::from_second(secs).unwrap();
            proptest::prop_assert_eq!(parse_utc(&format_utc(t)).unwrap(), t);
        }
    }
}
