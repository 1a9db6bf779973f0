//! The wire formats of the Healthengine PMS API, in one place, as serde helpers.
//!
//! | what | format | module |
//! |---|---|---|
//! | instants (`bookedTime`, `updatedAt`, `startAt`, `expireAt`, webhook `timestamp`) | `YYYY-MM-DD HH24:MI:SS` in UTC | [`utc`], [`utc_opt`] |
//! | practice-local date-times (`pmsAppointmentTime`) | `YYYY-MM-DD HH24:MI:SS` in the practice's zone | [`local`] |
//! | dates (`date`, `day`) | `YYYY-MM-DD` | jiff's own serde for [`jiff::civil::Date`] |
//! | dates of birth (`Patient.dob`) | `DD-MM-YYYY` sent; `DD-MM-YYYY` or `YYYY-MM-DD` read | [`dob_opt`] |
//! | range times (`start`, `end`) | `HH24:MI` in the practice's zone | [`hhmm`] |
//!
//!
//! What the client reads from the marketplace is parsed more tolerantly than what it sends, where
//! the spec is ambiguous: [`read_utc`], [`read_local`] and [`read_date`] (see
//! `docs/market-api-notes.md`). Sending always uses the formats above.
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
const ISO_DATE: &str = "%Y-%m-%d";
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

/// Whether `s` has the shape of `pattern`: `9` is a digit, anything else itself. The wire
/// formats have a four-digit year; jiff's parsers would also take a sign (`-026-12-02`), giving
/// a date that is then written in another shape and does not read back.
fn shaped(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| {
            if p == b'9' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

/// A year the wire formats can write (`YYYY`): not before year 0.
fn writable(dt: DateTime) -> bool {
    dt.year() >= 0
}

/// Parse `YYYY-MM-DD HH24:MI:SS` as a civil date-time (no zone).
pub fn parse_local(s: &str) -> Result<DateTime, FormatError> {
    if !shaped(s, "9999-99-99 99:99:99") {
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

/// Parse a date of birth: `DD-MM-YYYY`, as the spec describes and exemplifies `dob`, or
/// `YYYY-MM-DD`, as its header says every date is. The two cannot be confused: the year's four
/// digits come first or last.
///
/// ```
/// use slotbridge_market::format::parse_dob;
/// assert_eq!(parse_dob("23-02-1990"), parse_dob("1990-02-23"));
/// assert!(parse_dob("02/23/1990").is_err());
/// ```
pub fn parse_dob(s: &str) -> Result<Date, FormatError> {
    parse_either(s).ok_or_else(|| err(DATE_EITHER, s))
}

/// What [`parse_dob`] and [`read_date`] accept.
const DATE_EITHER: &str = "a date in DD-MM-YYYY or YYYY-MM-DD";

fn parse_either(s: &str) -> Option<Date> {
    let fmt = if shaped(s, "9999-99-99") {
        ISO_DATE
    } else if shaped(s, "99-99-9999") {
        DOB
    } else {
        return None;
    };
    Date::strptime(fmt, s).ok()
}

/// Read a date the marketplace sent (`day`, `date`): `YYYY-MM-DD` as the spec says, or the
/// `DD-MM-YYYY` its `dob` uses.
pub fn read_date(s: &str) -> Result<Date, FormatError> {
    parse_either(s).ok_or_else(|| err(DATE_EITHER, s))
}

/// Read an instant the marketplace sent (`bookedTime`, `updatedAt`...): `YYYY-MM-DD HH24:MI:SS`
/// in UTC as the spec describes it, or the RFC 3339 its `format: datetime` suggests
/// (`2023-12-01T01:13:55Z`, with an offset, or without one, meaning UTC).
pub fn read_utc(s: &str) -> Result<Timestamp, FormatError> {
    const EXPECTED: &str = "a date-time in YYYY-MM-DD HH24:MI:SS (UTC)";
    parse_utc(s)
        .or_else(|_| s.parse::<Timestamp>())
        .or_else(|_| {
            s.parse::<DateTime>()
                .and_then(|dt| dt.to_zoned_datetime(TimeZone::UTC))
                .map(|z| z.timestamp())
        })
        .ok()
        .filter(|t| writable(TimeZone::UTC.to_datetime(*t)))
        .ok_or_else(|| err(EXPECTED, s))
}

/// Read a practice-local date-time the marketplace sent (`pmsAppointmentTime`):
/// `YYYY-MM-DD HH24:MI:SS`, or ISO 8601 with a `T` (`2023-12-02T09:30:00`).
pub fn read_local(s: &str) -> Result<DateTime, FormatError> {
    const EXPECTED: &str = "a date-time in YYYY-MM-DD HH24:MI:SS";
    parse_local(s)
        .or_else(|_| s.parse::<DateTime>())
        .ok()
        .filter(|dt| writable(*dt))
        .ok_or_else(|| err(EXPECTED, s))
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

/// Read a range time the marketplace sent: `HH24:MI`, or `HH24:MI:SS`.
pub fn read_hhmm(s: &str) -> Result<Time, FormatError> {
    parse_hhmm(s).or_else(|_| {
        if s.len() == 8 {
            Time::strptime("%H:%M:%S", s).map_err(|_| err("HH24:MI", s))
        } else {
            Err(err("HH24:MI", s))
        }
    })
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
    /// `DD-MM-YYYY` (and `YYYY-MM-DD` when read), for optional date-of-birth fields.
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

    /// Found by the `market_payloads` fuzz target: `-026-12-02` has ten characters and a dash
    /// at the fifth, and jiff read it as the year -26, written back as `-000026-12-02`, which
    /// did not read again. Every reader now takes only what its format can write.
    #[test]
    fn a_signed_or_negative_year_is_not_a_date() {
        for bad in ["-026-12-02", "+026-12-02", "02-12--026", "02-12-+026"] {
            assert!(read_date(bad).is_err(), "{bad}");
            assert!(parse_dob(bad).is_err(), "{bad}");
        }
        for bad in ["-026-12-02 09:30:00", "-000026-12-02T09:30:00"] {
            assert!(read_local(bad).is_err(), "{bad}");
        }
        for bad in ["-026-12-02 09:30:00", "-000026-12-02T09:30:00Z"] {
            assert!(read_utc(bad).is_err(), "{bad}");
        }
        // Dates at the edges of YYYY still read and write back unchanged.
        for good in ["0000-01-01", "9999-12-31"] {
            let d = read_date(good).unwrap();
            assert_eq!(d.strftime(ISO_DATE).to_string(), good);
        }
        let t = read_utc("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(read_utc(&format_utc(t)).unwrap(), t);
    }

    #[test]
    fn dob_is_read_in_both_formats_and_sent_day_month_year() {
        assert_eq!(parse_dob("23-02-2022").unwrap(), date(2022, 2, 23));
        assert_eq!(parse_dob("2022-02-23").unwrap(), date(2022, 2, 23));
        assert_eq!(format_dob(date(1980, 7, 4)), "04-07-1980");
        for bad in [
            "31-02-2022",
            "2022-02-31",
            "23/02/2022",
            "2022-2-23",
            "23-02-22",
            "",
            "23-02-2022 ",
            "２３-02-2022",
        ] {
            let e = parse_dob(bad).unwrap_err();
            assert_eq!(e.expected, "a date in DD-MM-YYYY or YYYY-MM-DD", "{bad:?}");
        }
    }

    #[test]
    fn reads_accept_the_spec_format_and_rfc_3339() {
        let t = parse_utc("2023-12-01 01:13:55").unwrap();
        for s in [
            "2023-12-01 01:13:55",
            "2023-12-01T01:13:55Z",
            "2023-12-01T01:13:55",
            "2023-12-01T11:13:55+10:00",
        ] {
            assert_eq!(read_utc(s).unwrap(), t, "{s}");
        }
        assert!(read_utc("01-12-2023 01:13:55").is_err());
        let dt = date(2023, 12, 2).at(9, 30, 0, 0);
        assert_eq!(read_local("2023-12-02 09:30:00").unwrap(), dt);
        assert_eq!(read_local("2023-12-02T09:30:00").unwrap(), dt);
        assert!(read_local("tomorrow").is_err());
        assert_eq!(read_date("2023-12-02").unwrap(), date(2023, 12, 2));
        assert_eq!(read_date("02-12-2023").unwrap(), date(2023, 12, 2));
        assert!(read_date("2023-12-02 00:00:00").is_err());
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
