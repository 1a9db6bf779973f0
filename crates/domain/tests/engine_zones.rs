//! Rule 6 zone by zone: table tests over the April and October DST changes in Sydney, Adelaide,
//! Lord Howe (a 30-minute shift), and Brisbane and Perth (no DST). Offsets come from jiff's
//! bundled tzdb, so these do not depend on the host.

mod engine_support;

use engine_support::{practice, rows};
use serde_json::json;

const ALL_DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Works 00:00-04:00 and 09:00-09:30 every day; a 30-minute reason on a 30-minute grid.
fn zone_practice(timezone: &str, now: &str, horizon: u32) -> serde_json::Value {
    practice(json!({
        "timezone": timezone, "now": now, "horizon_days": horizon, "interval_minutes": 30,
        "practitioners": [{"id": "lee", "sessions": [
            {"days": ALL_DAYS, "start": "00:00", "end": "04:00"},
            {"days": ALL_DAYS, "start": "09:00", "end": "09:30"}]}],
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 30,
            "windows": [{"days": ALL_DAYS, "start": "00:00", "end": "24:00"}]}]}],
    }))
}

/// The `HH:MM±hh:mm` starts published on `date`.
fn starts_on(value: serde_json::Value, date: &str) -> Vec<String> {
    rows(value)
        .into_iter()
        .filter(|r| r.2.starts_with(date))
        .map(|r| format!("{}{}", &r.2[11..16], &r.2[19..]))
        .collect()
}

struct Change {
    zone: &'static str,
    /// An instant a few days before the change.
    now: &'static str,
    date: &'static str,
    before: &'static str,
    after: &'static str,
    /// Starts published between 00:00 and 04:00 on the change date.
    night: &'static [&'static str],
}

const CHANGES: &[Change] = &[
    Change {
        zone: "Australia/Sydney",
        now: "2026-04-02T06:00:00+11:00",
        date: "2026-04-05",
        before: "+11:00",
        after: "+10:00",
        // 02:00-03:00 happens twice: the earlier instant is taken.
        night: &[
            "00:00+11:00",
            "00:30+11:00",
            "01:00+11:00",
            "01:30+11:00",
            "02:00+11:00",
            "02:30+11:00",
            "03:00+10:00",
            "03:30+10:00",
        ],
    },
    Change {
        zone: "Australia/Sydney",
        now: "2026-10-01T06:00:00+10:00",
        date: "2026-10-04",
        before: "+10:00",
        after: "+11:00",
        // 02:00-03:00 does not exist: skipped.
        night: &[
            "00:00+10:00",
            "00:30+10:00",
            "01:00+10:00",
            "01:30+10:00",
            "03:00+11:00",
            "03:30+11:00",
        ],
    },
    Change {
        zone: "Australia/Adelaide",
        now: "2026-04-02T06:00:00+10:30",
        date: "2026-04-05",
        before: "+10:30",
        after: "+09:30",
        night: &[
            "00:00+10:30",
            "00:30+10:30",
            "01:00+10:30",
            "01:30+10:30",
            "02:00+10:30",
            "02:30+10:30",
            "03:00+09:30",
            "03:30+09:30",
        ],
    },
    Change {
        zone: "Australia/Adelaide",
        now: "2026-10-01T06:00:00+09:30",
        date: "2026-10-04",
        before: "+09:30",
        after: "+10:30",
        night: &[
            "00:00+09:30",
            "00:30+09:30",
            "01:00+09:30",
            "01:30+09:30",
            "03:00+10:30",
            "03:30+10:30",
        ],
    },
    Change {
        zone: "Australia/Lord_Howe",
        now: "2026-04-02T06:00:00+11:00",
        date: "2026-04-05",
        before: "+11:00",
        after: "+10:30",
        // At 02:00 the clock goes back to 01:30: only 01:30-02:00 happens twice.
        night: &[
            "00:00+11:00",
            "00:30+11:00",
            "01:00+11:00",
            "01:30+11:00",
            "02:00+10:30",
            "02:30+10:30",
            "03:00+10:30",
            "03:30+10:30",
        ],
    },
    Change {
        zone: "Australia/Lord_Howe",
        now: "2026-10-01T06:00:00+10:30",
        date: "2026-10-04",
        before: "+10:30",
        after: "+11:00",
        // At 02:00 the clock jumps to 02:30: only 02:00 is skipped.
        night: &[
            "00:00+10:30",
            "00:30+10:30",
            "01:00+10:30",
            "01:30+10:30",
            "02:30+11:00",
            "03:00+11:00",
            "03:30+11:00",
        ],
    },
    Change {
        zone: "Australia/Brisbane",
        now: "2026-04-02T06:00:00+10:00",
        date: "2026-04-05",
        before: "+10:00",
        after: "+10:00",
        night: &[
            "00:00+10:00",
            "00:30+10:00",
            "01:00+10:00",
            "01:30+10:00",
            "02:00+10:00",
            "02:30+10:00",
            "03:00+10:00",
            "03:30+10:00",
        ],
    },
    Change {
        zone: "Australia/Brisbane",
        now: "2026-10-01T06:00:00+10:00",
        date: "2026-10-04",
        before: "+10:00",
        after: "+10:00",
        night: &[
            "00:00+10:00",
            "00:30+10:00",
            "01:00+10:00",
            "01:30+10:00",
            "02:00+10:00",
            "02:30+10:00",
            "03:00+10:00",
            "03:30+10:00",
        ],
    },
    Change {
        zone: "Australia/Perth",
        now: "2026-04-02T06:00:00+08:00",
        date: "2026-04-05",
        before: "+08:00",
        after: "+08:00",
        night: &[
            "00:00+08:00",
            "00:30+08:00",
            "01:00+08:00",
            "01:30+08:00",
            "02:00+08:00",
            "02:30+08:00",
            "03:00+08:00",
            "03:30+08:00",
        ],
    },
    Change {
        zone: "Australia/Perth",
        now: "2026-10-01T06:00:00+08:00",
        date: "2026-10-04",
        before: "+08:00",
        after: "+08:00",
        night: &[
            "00:00+08:00",
            "00:30+08:00",
            "01:00+08:00",
            "01:30+08:00",
            "02:00+08:00",
            "02:30+08:00",
            "03:00+08:00",
            "03:30+08:00",
        ],
    },
];

#[test]
fn night_starts_on_each_change_date() {
    for c in CHANGES {
        let night: Vec<String> = starts_on(zone_practice(c.zone, c.now, 7), c.date)
            .into_iter()
            .filter(|s| s.as_str() < "09:00")
            .collect();
        assert_eq!(night, c.night, "{} on {}", c.zone, c.date);
    }
}

#[test]
fn daytime_offsets_switch_on_the_change_date() {
    for c in CHANGES {
        let out = rows(zone_practice(c.zone, c.now, 7));
        let nine: Vec<(String, String)> = out
            .iter()
            .filter(|r| &r.2[11..16] == "09:00")
            .map(|r| (r.2[..10].to_owned(), r.2[19..].to_owned()))
            .collect();
        assert_eq!(nine.len(), 7, "{}: one 09:00 slot a day", c.zone);
        for (date, offset) in &nine {
            let expected = if date.as_str() < c.date {
                c.before
            } else {
                c.after
            };
            assert_eq!(offset, expected, "{} on {date}", c.zone);
        }
    }
}

#[test]
fn a_90_day_horizon_across_both_changes_keeps_each_date_offset() {
    // From 1 August to 29 October: the October change only; from 15 February, April's.
    let table = [
        (
            "Australia/Sydney",
            "2026-08-01T06:00:00+10:00",
            "2026-10-04",
            "+10:00",
            "+11:00",
        ),
        (
            "Australia/Adelaide",
            "2026-08-01T06:00:00+09:30",
            "2026-10-04",
            "+09:30",
            "+10:30",
        ),
        (
            "Australia/Lord_Howe",
            "2026-08-01T06:00:00+10:30",
            "2026-10-04",
            "+10:30",
            "+11:00",
        ),
        (
            "Australia/Brisbane",
            "2026-08-01T06:00:00+10:00",
            "2026-10-04",
            "+10:00",
            "+10:00",
        ),
        (
            "Australia/Perth",
            "2026-08-01T06:00:00+08:00",
            "2026-10-04",
            "+08:00",
            "+08:00",
        ),
        (
            "Australia/Sydney",
            "2026-02-15T06:00:00+11:00",
            "2026-04-05",
            "+11:00",
            "+10:00",
        ),
        (
            "Australia/Lord_Howe",
            "2026-02-15T06:00:00+11:00",
            "2026-04-05",
            "+11:00",
            "+10:30",
        ),
    ];
    for (zone, now, change, before, after) in table {
        let out = rows(zone_practice(zone, now, 90));
        let nine: Vec<&(String, String, String, String)> =
            out.iter().filter(|r| &r.2[11..16] == "09:00").collect();
        assert_eq!(nine.len(), 90, "{zone}");
        for r in nine {
            let expected = if &r.2[..10] < change { before } else { after };
            assert_eq!(&r.2[19..], expected, "{zone}: {}", r.2);
            assert_eq!(&r.3[19..], expected, "{zone}: {}", r.3);
        }
    }
}
