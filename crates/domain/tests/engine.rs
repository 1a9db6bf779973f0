//! The availability engine's contract, rule by rule (docs/snapshot.md, "Rules"), and the seed's
//! examples. Each test fails if its rule breaks.

mod engine_support;

use engine_support::{invalid, practice, rows, starts, valid};
use serde_json::json;
use slotbridge_domain::availability::compute_slots;

fn t(date: &str, hm: &str, offset: &str) -> String {
    format!("{date}T{hm}:00{offset}")
}

// ---- Rule 1: dates ----

#[test]
fn rule1_dates_run_from_the_practice_local_date_of_now() {
    // 14:00 UTC on Thursday 2 April is 01:00 on Friday 3 April in Sydney: Friday is day one.
    let out = rows(practice(json!({
        "now": "2026-04-02T14:00:00Z",
        "horizon_days": 3,
        "practitioners": [{"id": "lee", "sessions": [
            {"days": ["thu","fri","sat","sun"], "start": "09:00", "end": "09:30"}]}],
    })));
    let dates: Vec<&str> = out.iter().map(|r| &r.2[..10]).collect();
    assert_eq!(dates, ["2026-04-03", "2026-04-04", "2026-04-05"]);
}

#[test]
fn rule1_horizon_defaults_to_30_days() {
    let v = valid(practice(json!({"horizon_days": null})));
    assert_eq!(v.days().len(), 30);
    assert_eq!(v.days()[0].date().to_string(), "2026-04-03");
    assert_eq!(v.days()[29].date().to_string(), "2026-05-02");
}

#[test]
fn rule1_nothing_is_published_on_a_closed_date() {
    let open = rows(practice(json!({"horizon_days": 7})));
    assert!(open.iter().any(|r| r.2.starts_with("2026-04-06")));
    let closed = rows(practice(
        json!({"horizon_days": 7, "closed_dates": ["2026-04-06"]}),
    ));
    assert!(!closed.iter().any(|r| r.2.starts_with("2026-04-06")));
    assert_eq!(
        closed.len(),
        open.len()
            - open
                .iter()
                .filter(|r| r.2.starts_with("2026-04-06"))
                .count()
    );
}

// ---- Rule 2: working time and segments ----

#[test]
fn rule2_sessions_are_joined_and_breaks_removed() {
    // Two overlapping sessions make 09:00-11:00; the break takes out 10:00-10:15.
    let out = starts(practice(json!({
        "interval_minutes": 30,
        "practitioners": [{"id": "lee",
            "sessions": [{"days": ["fri"], "start": "09:00", "end": "10:30"},
                         {"days": ["fri"], "start": "10:00", "end": "11:00"}],
            "breaks": [{"days": ["fri"], "start": "10:00", "end": "10:15"}]}],
    })));
    let d = "2026-04-03";
    assert_eq!(
        out,
        [
            t(d, "09:00", "+11:00"),
            t(d, "09:30", "+11:00"),
            t(d, "10:30", "+11:00")
        ]
    );
}

#[test]
fn rule2_blocks_remove_time_for_their_practitioner_or_everyone() {
    let two = json!([
        {"id": "lee", "sessions": [{"days": ["fri"], "start": "09:00", "end": "10:00"}]},
        {"id": "ng", "sessions": [{"days": ["fri"], "start": "09:00", "end": "10:00"}]}
    ]);
    let reasons = json!([{"id": "checkup", "providers": [
        {"practitioner": "lee", "duration_minutes": 30, "windows": [{"days": ["fri"], "start": "00:00", "end": "24:00"}]},
        {"practitioner": "ng", "duration_minutes": 30, "windows": [{"days": ["fri"], "start": "00:00", "end": "24:00"}]}]}]);
    let lee_only = rows(practice(json!({
        "interval_minutes": 30, "practitioners": two, "booking_reasons": reasons,
        "blocks": [{"practitioner": "lee", "date": "2026-04-03", "start": "09:00", "end": "09:30"}],
    })));
    let who: Vec<(&str, &str)> = lee_only.iter().map(|r| (&r.0[..], &r.2[11..16])).collect();
    assert_eq!(who, [("ng", "09:00"), ("lee", "09:30"), ("ng", "09:30")]);

    let everyone = rows(practice(json!({
        "interval_minutes": 30, "practitioners": two, "booking_reasons": reasons,
        "blocks": [{"date": "2026-04-03", "start": "09:00", "end": "09:30"}],
    })));
    let who: Vec<(&str, &str)> = everyone.iter().map(|r| (&r.0[..], &r.2[11..16])).collect();
    assert_eq!(who, [("lee", "09:30"), ("ng", "09:30")]);
}

#[test]
fn rule2_a_block_on_another_date_changes_nothing() {
    let plain = rows(practice(json!({})));
    let other_day = rows(practice(json!({
        "blocks": [{"date": "2026-04-04", "start": "09:00", "end": "17:00"}]})));
    assert_eq!(plain, other_day);
}

// ---- Rule 3: grid, duration, segment, windows, appointments ----

#[test]
fn rule3_starts_are_on_the_diary_grid() {
    let out = starts(practice(json!({
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "09:10", "end": "10:00"}]}],
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 15,
            "windows": [{"days": ["fri"], "start": "00:00", "end": "24:00"}]}]}],
    })));
    let d = "2026-04-03";
    assert_eq!(
        out,
        [
            t(d, "09:15", "+11:00"),
            t(d, "09:30", "+11:00"),
            t(d, "09:45", "+11:00")
        ]
    );
}

#[test]
fn rule3_slots_last_the_rules_duration_for_that_practitioner() {
    let out = rows(practice(json!({
        "practitioners": [
            {"id": "lee", "sessions": [{"days": ["fri"], "start": "09:00", "end": "09:45"}]},
            {"id": "ng", "sessions": [{"days": ["fri"], "start": "09:00", "end": "09:45"}]}],
        "booking_reasons": [{"id": "checkup", "providers": [
            {"practitioner": "lee", "duration_minutes": 45, "windows": [{"days": ["fri"], "start": "09:00", "end": "10:00"}]},
            {"practitioner": "ng", "duration_minutes": 20, "windows": [{"days": ["fri"], "start": "09:00", "end": "10:00"}]}]}],
    })));
    let d = "2026-04-03";
    let got: Vec<(&str, &str, &str)> = out.iter().map(|r| (&r.0[..], &r.2[..], &r.3[..])).collect();
    assert_eq!(
        got,
        [
            (
                "lee",
                &t(d, "09:00", "+11:00")[..],
                &t(d, "09:45", "+11:00")[..]
            ),
            (
                "ng",
                &t(d, "09:00", "+11:00")[..],
                &t(d, "09:20", "+11:00")[..]
            ),
            (
                "ng",
                &t(d, "09:15", "+11:00")[..],
                &t(d, "09:35", "+11:00")[..]
            ),
        ]
    );
}

#[test]
fn rule3_a_slot_never_spans_a_break_even_inside_its_window() {
    let out = starts(practice(json!({
        "interval_minutes": 30,
        "practitioners": [{"id": "lee",
            "sessions": [{"days": ["fri"], "start": "09:00", "end": "11:00"}],
            "breaks": [{"days": ["fri"], "start": "10:00", "end": "10:30"}]}],
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 60,
            "windows": [{"days": ["fri"], "start": "09:00", "end": "11:00"}]}]}],
    })));
    assert_eq!(out, [t("2026-04-03", "09:00", "+11:00")]);
}

#[test]
fn rule3_slots_lie_wholly_inside_the_union_of_windows() {
    // Touching windows are one: a slot may straddle 10:00. A slot may not leave the windows.
    let out = starts(practice(json!({
        "interval_minutes": 30,
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 60,
            "windows": [{"days": ["fri"], "start": "09:00", "end": "10:00"},
                        {"days": ["fri"], "start": "10:00", "end": "11:00"},
                        {"days": ["mon"], "start": "14:00", "end": "17:00"}]}]}],
    })));
    let d = "2026-04-03";
    assert_eq!(
        out,
        [
            t(d, "09:00", "+11:00"),
            t(d, "09:30", "+11:00"),
            t(d, "10:00", "+11:00")
        ]
    );
}

#[test]
fn rule3_a_rule_without_windows_for_the_weekday_publishes_nothing() {
    let out = rows(practice(json!({
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 30,
            "windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}]}]}],
    })));
    assert!(out.is_empty());
}

#[test]
fn rule3_appointments_are_half_open_so_back_to_back_fits() {
    let out = starts(practice(json!({
        "interval_minutes": 30,
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "09:00", "end": "11:00"}]}],
        "appointments": [{"practitioner": "lee", "date": "2026-04-03", "start": "09:30", "end": "10:00"}],
    })));
    let d = "2026-04-03";
    assert_eq!(
        out,
        [
            t(d, "09:00", "+11:00"),
            t(d, "10:00", "+11:00"),
            t(d, "10:30", "+11:00")
        ]
    );
}

#[test]
fn rule3_seed_example_a_reason_longer_than_a_gap_does_not_fit_it() {
    // A 20-minute gap between two appointments: a 30-minute reason does not fit; a 15-minute one
    // does.
    let diary = json!([
        {"practitioner": "lee", "date": "2026-04-03", "start": "09:00", "end": "10:00"},
        {"practitioner": "lee", "date": "2026-04-03", "start": "10:20", "end": "11:00"}]);
    let sessions =
        json!([{"id": "lee", "sessions": [{"days": ["fri"], "start": "09:00", "end": "11:00"}]}]);
    let long = rows(practice(
        json!({"interval_minutes": 5, "practitioners": sessions, "appointments": diary}),
    ));
    assert!(long.is_empty(), "{long:?}");
    let short = starts(practice(json!({
        "interval_minutes": 5, "practitioners": sessions, "appointments": diary,
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 15,
            "windows": [{"days": ["fri"], "start": "00:00", "end": "24:00"}]}]}],
    })));
    let d = "2026-04-03";
    assert_eq!(short, [t(d, "10:00", "+11:00"), t(d, "10:05", "+11:00")]);
}

#[test]
fn rule3_appointments_of_other_practitioners_and_dates_do_not_count() {
    let plain = rows(practice(json!({"horizon_days": 2})));
    let with = rows(practice(json!({
        "horizon_days": 2,
        "practitioners": [
            {"id": "lee", "sessions": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}],
             "breaks": [{"days": ["mon","tue","wed","thu","fri"], "start": "12:30", "end": "13:30"}]},
            {"id": "ng"}],
        "appointments": [
            {"practitioner": "ng", "date": "2026-04-03", "start": "09:00", "end": "17:00"},
            {"practitioner": "lee", "date": "2026-04-01", "start": "09:00", "end": "17:00"}],
    })));
    assert_eq!(plain, with);
}

// ---- Rule 4: minimum notice ----

#[test]
fn rule4_no_slot_starts_before_now_plus_min_notice() {
    // now is 10:05; with 60 minutes' notice the first start is 11:15 (11:05 is off the grid).
    let out = starts(practice(json!({
        "now": "2026-04-03T10:05:00+11:00", "min_notice_minutes": 60,
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "09:00", "end": "12:00"}]}],
    })));
    let d = "2026-04-03";
    assert_eq!(out, [t(d, "11:15", "+11:00"), t(d, "11:30", "+11:00")]);
}

#[test]
fn rule4_a_slot_may_start_exactly_at_the_cutoff_but_not_a_second_before() {
    let at = starts(practice(json!({"now": "2026-04-03T11:00:00+11:00",
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "11:00", "end": "11:30"}]}]})));
    assert_eq!(at, [t("2026-04-03", "11:00", "+11:00")]);
    let after = starts(practice(json!({"now": "2026-04-03T11:00:00.001+11:00",
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "11:00", "end": "11:30"}]}]})));
    assert!(after.is_empty());
}

#[test]
fn rule4_notice_reaches_into_the_next_days() {
    // 3 days' notice from Friday morning: nothing before Monday 07:00.
    let out = rows(practice(
        json!({"horizon_days": 5, "min_notice_minutes": 3 * 1440}),
    ));
    assert!(
        out.iter()
            .all(|r| r.2.as_str() >= "2026-04-06T09:00:00+10:00")
    );
    assert!(out.iter().any(|r| r.2.starts_with("2026-04-06")));
}

// ---- Rule 5: stacking ----

#[test]
fn rule5_seed_example_stacking_off_gives_one_morning_and_one_afternoon_slot() {
    let out = starts(practice(json!({"stacking": false})));
    let d = "2026-04-03";
    assert_eq!(out, [t(d, "09:00", "+11:00"), t(d, "13:30", "+11:00")]);
}

#[test]
fn rule5_stacking_on_publishes_every_overlapping_alternative() {
    let out = starts(practice(json!({})));
    // 09:00..12:00 and 13:30..16:30 every 15 minutes, 30-minute slots overlapping.
    assert_eq!(out.len(), 13 + 13);
    assert_eq!(out[0], t("2026-04-03", "09:00", "+11:00"));
    assert_eq!(out[1], t("2026-04-03", "09:15", "+11:00"));
}

#[test]
fn rule5_stacking_off_takes_the_first_free_slot_of_each_segment() {
    // The morning's first hour is booked; notice rules out the afternoon's first slot; a block
    // splits the afternoon into two segments.
    let out = starts(practice(json!({
        "stacking": false,
        "now": "2026-04-03T13:20:00+11:00",
        "appointments": [{"practitioner": "lee", "date": "2026-04-03", "start": "09:00", "end": "10:00"}],
        "blocks": [{"date": "2026-04-03", "start": "15:00", "end": "15:10"}],
    })));
    let d = "2026-04-03";
    assert_eq!(out, [t(d, "13:30", "+11:00"), t(d, "15:15", "+11:00")]);
    let morning = starts(practice(json!({
        "stacking": false,
        "appointments": [{"practitioner": "lee", "date": "2026-04-03", "start": "09:00", "end": "10:00"}],
    })));
    assert_eq!(morning, [t(d, "10:00", "+11:00"), t(d, "13:30", "+11:00")]);
}

#[test]
fn rule5_stacking_off_is_per_practitioner_reason_and_date() {
    let out = rows(practice(json!({
        "stacking": false, "horizon_days": 4,
        "booking_reasons": [
            {"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 30,
                "windows": [{"days": ["mon","fri"], "start": "00:00", "end": "24:00"}]}]},
            {"id": "clean", "providers": [{"practitioner": "lee", "duration_minutes": 60,
                "windows": [{"days": ["mon","fri"], "start": "10:00", "end": "24:00"}]}]}],
    })));
    let got: Vec<(&str, &str)> = out.iter().map(|r| (&r.1[..], &r.2[..16])).collect();
    assert_eq!(
        got,
        [
            ("checkup", "2026-04-03T09:00"),
            ("clean", "2026-04-03T10:00"),
            ("checkup", "2026-04-03T13:30"),
            ("clean", "2026-04-03T13:30"),
            ("checkup", "2026-04-06T09:00"),
            ("clean", "2026-04-06T10:00"),
            ("checkup", "2026-04-06T13:30"),
            ("clean", "2026-04-06T13:30"),
        ]
    );
}

// ---- Rule 6: civil times to instants ----

#[test]
fn rule6_offsets_are_those_of_each_date_not_of_now() {
    // now is in daylight time (+11); Monday 6 April is in standard time (+10).
    let out = starts(practice(json!({"horizon_days": 4, "stacking": false})));
    assert_eq!(
        out,
        [
            t("2026-04-03", "09:00", "+11:00"),
            t("2026-04-03", "13:30", "+11:00"),
            t("2026-04-06", "09:00", "+10:00"),
            t("2026-04-06", "13:30", "+10:00"),
        ]
    );
}

fn night_shift(now: &str, day: &str, timezone: &str, interval: u32) -> serde_json::Value {
    practice(json!({
        "timezone": timezone, "now": now, "interval_minutes": interval, "horizon_days": 2,
        "practitioners": [{"id": "lee", "sessions": [{"days": [day], "start": "00:00", "end": "05:00"}]}],
        "booking_reasons": [{"id": "checkup", "providers": [{"practitioner": "lee", "duration_minutes": 30,
            "windows": [{"days": [day], "start": "00:00", "end": "24:00"}]}]}],
    }))
}

#[test]
fn rule6_a_start_in_a_dst_gap_is_skipped_not_shifted() {
    // New York, Sunday 2030-03-10: 02:00-03:00 does not exist.
    let out = rows(night_shift(
        "2030-03-09T23:00:00-05:00",
        "sun",
        "America/New_York",
        30,
    ));
    let got: Vec<(&str, &str)> = out.iter().map(|r| (&r.2[..], &r.3[..])).collect();
    assert_eq!(
        got,
        [
            ("2030-03-10T00:00:00-05:00", "2030-03-10T00:30:00-05:00"),
            ("2030-03-10T00:30:00-05:00", "2030-03-10T01:00:00-05:00"),
            ("2030-03-10T01:00:00-05:00", "2030-03-10T01:30:00-05:00"),
            // 01:30 + 30 minutes is 03:00 EDT: end = start + duration.
            ("2030-03-10T01:30:00-05:00", "2030-03-10T03:00:00-04:00"),
            ("2030-03-10T03:00:00-04:00", "2030-03-10T03:30:00-04:00"),
            ("2030-03-10T03:30:00-04:00", "2030-03-10T04:00:00-04:00"),
            ("2030-03-10T04:00:00-04:00", "2030-03-10T04:30:00-04:00"),
            ("2030-03-10T04:30:00-04:00", "2030-03-10T05:00:00-04:00"),
        ]
    );
}

#[test]
fn rule6_an_ambiguous_start_takes_the_earlier_instant_and_end_is_start_plus_duration() {
    // Sydney, Sunday 2026-04-05: 02:00-03:00 happens twice (+11 then +10).
    let out = rows(night_shift(
        "2026-04-04T23:00:00+11:00",
        "sun",
        "Australia/Sydney",
        60,
    ));
    let got: Vec<(&str, &str)> = out.iter().map(|r| (&r.2[..], &r.3[..])).collect();
    assert_eq!(
        got,
        [
            ("2026-04-05T00:00:00+11:00", "2026-04-05T00:30:00+11:00"),
            ("2026-04-05T01:00:00+11:00", "2026-04-05T01:30:00+11:00"),
            ("2026-04-05T02:00:00+11:00", "2026-04-05T02:30:00+11:00"),
            ("2026-04-05T03:00:00+10:00", "2026-04-05T03:30:00+10:00"),
            ("2026-04-05T04:00:00+10:00", "2026-04-05T04:30:00+10:00"),
        ]
    );
    // A 02:30 start (earlier instant, +11) ends 30 real minutes later: 02:00 in standard time.
    let half = rows(night_shift(
        "2026-04-04T23:00:00+11:00",
        "sun",
        "Australia/Sydney",
        30,
    ));
    let at_0230 = half
        .iter()
        .find(|r| r.2 == "2026-04-05T02:30:00+11:00")
        .expect("02:30 published once, at its earlier instant");
    assert_eq!(at_0230.3, "2026-04-05T02:00:00+10:00");
    assert!(!half.iter().any(|r| r.2 == "2026-04-05T02:30:00+10:00"));
}

// ---- Rule 7: order ----

#[test]
fn rule7_sorted_by_start_then_practitioner_then_reason() {
    // Listed in reverse order on purpose.
    let windows = json!([{"days": ["fri"], "start": "00:00", "end": "24:00"}]);
    let out = rows(practice(json!({
        "interval_minutes": 30,
        "practitioners": [
            {"id": "zed", "sessions": [{"days": ["fri"], "start": "09:00", "end": "10:00"}]},
            {"id": "amy", "sessions": [{"days": ["fri"], "start": "09:30", "end": "10:00"}]}],
        "booking_reasons": [
            {"id": "xray", "providers": [{"practitioner": "zed", "duration_minutes": 30, "windows": windows},
                                        {"practitioner": "amy", "duration_minutes": 30, "windows": windows}]},
            {"id": "check", "providers": [{"practitioner": "zed", "duration_minutes": 30, "windows": windows}]}],
    })));
    let got: Vec<(&str, &str, &str)> = out
        .iter()
        .map(|r| (&r.2[11..16], &r.0[..], &r.1[..]))
        .collect();
    assert_eq!(
        got,
        [
            ("09:00", "zed", "check"),
            ("09:00", "zed", "xray"),
            ("09:30", "amy", "xray"),
            ("09:30", "zed", "check"),
            ("09:30", "zed", "xray"),
        ]
    );
}

// ---- Output format ----

#[test]
fn slots_serialize_with_rfc3339_local_offsets() {
    let valid = valid(practice(json!({"stacking": false})));
    let json = serde_json::to_value(compute_slots(&valid)).expect("serializes");
    assert_eq!(
        json,
        json!([
            {"practitioner": "lee", "reason": "checkup", "start": "2026-04-03T09:00:00+11:00", "end": "2026-04-03T09:30:00+11:00"},
            {"practitioner": "lee", "reason": "checkup", "start": "2026-04-03T13:30:00+11:00", "end": "2026-04-03T14:00:00+11:00"}
        ])
    );
}

// ---- Validation ----

#[test]
fn validation_names_the_field_and_the_problem() {
    let cases = [
        (
            json!({"practitioners": [{"id": "lee", "sessions": [
                {"days": ["fri"], "start": "09:00", "end": "12:00"},
                {"days": ["fri"], "start": "8am", "end": "12:00"}]}]}),
            r#"practitioners[0].sessions[1].start: expected "HH:MM" (00:00 to 23:59, or 24:00 as an end time), found "8am""#,
        ),
        (
            json!({"timezone": "Australia/Sidney"}),
            r#"timezone: unknown IANA time zone "Australia/Sidney" (expected a name like "Australia/Sydney")"#,
        ),
        (
            json!({"now": "2026-04-03 9am"}),
            r#"now: expected an RFC 3339 instant with an offset like "2026-04-03T08:30:00+11:00", found "2026-04-03 9am""#,
        ),
        (
            json!({"horizon_days": 0}),
            "horizon_days: must be between 1 and 90, found 0",
        ),
        (
            json!({"horizon_days": 91}),
            "horizon_days: must be between 1 and 90, found 91",
        ),
        (
            json!({"interval_minutes": 0}),
            "interval_minutes: must be between 1 and 60, found 0",
        ),
        (
            json!({"interval_minutes": 90}),
            "interval_minutes: must be between 1 and 60, found 90",
        ),
        (
            json!({"interval_minutes": 7}),
            "interval_minutes: must divide 1440 (the minutes in a day) so the grid is the same every day, found 7",
        ),
        (
            json!({"min_notice_minutes": 200000}),
            "min_notice_minutes: must be between 0 and 129600, found 200000",
        ),
        (
            json!({"practitioners": [{"id": "lee", "breaks": [{"days": ["fri"], "start": "13:00", "end": "12:00"}]}]}),
            r#"practitioners[0].breaks[0]: start "13:00" must be before end "12:00""#,
        ),
        (
            json!({"practitioners": [{"id": "lee", "sessions": [{"days": ["fri", "friday"], "start": "09:00", "end": "12:00"}]}]}),
            r#"practitioners[0].sessions[0].days[1]: expected a weekday (mon, tue, wed, thu, fri, sat or sun), found "friday""#,
        ),
        (
            json!({"practitioners": [{"id": "lee", "sessions": [{"days": [], "start": "09:00", "end": "12:00"}]}]}),
            "practitioners[0].sessions[0].days: must not be empty",
        ),
        (
            json!({"practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "24:00", "end": "24:00"}]}]}),
            r#"practitioners[0].sessions[0].start: "24:00" is the end of the day and can only be an end time"#,
        ),
        (
            json!({"practitioners": [{"id": "lee"}, {"id": "lee"}]}),
            r#"practitioners[1].id: duplicate id "lee""#,
        ),
        (
            json!({"practitioners": [{"id": ""}]}),
            "practitioners[0].id: must not be empty",
        ),
        (
            json!({"booking_reasons": [{"id": "a", "providers": []}, {"id": "b", "providers": [{"practitioner": "ghost", "duration_minutes": 30}]}]}),
            r#"booking_reasons[1].providers[0].practitioner: no practitioner has id "ghost""#,
        ),
        (
            json!({"booking_reasons": [{"id": "a", "providers": [
                {"practitioner": "lee", "duration_minutes": 30}, {"practitioner": "lee", "duration_minutes": 45}]}]}),
            r#"booking_reasons[0].providers[1].practitioner: practitioner "lee" already has a rule for this booking reason"#,
        ),
        (
            json!({"booking_reasons": [{"id": "a", "providers": [{"practitioner": "lee", "duration_minutes": 0}]}]}),
            "booking_reasons[0].providers[0].duration_minutes: must be between 1 and 1440, found 0",
        ),
        (
            json!({"booking_reasons": [{"id": "a"}, {"id": "a"}]}),
            r#"booking_reasons[1].id: duplicate id "a""#,
        ),
        (
            json!({"booking_reasons": [{"id": "a", "providers": [{"practitioner": "lee", "duration_minutes": 30,
                "windows": [{"days": ["fri"], "start": "09:00", "end": "9:30"}]}]}]}),
            r#"booking_reasons[0].providers[0].windows[0].end: expected "HH:MM" (00:00 to 23:59, or 24:00 as an end time), found "9:30""#,
        ),
        (
            json!({"appointments": [{"practitioner": "ghost", "date": "2026-04-03", "start": "09:00", "end": "09:30"}]}),
            r#"appointments[0].practitioner: no practitioner has id "ghost""#,
        ),
        (
            json!({"appointments": [{"practitioner": "lee", "date": "2026-02-30", "start": "09:00", "end": "09:30"}]}),
            r#"appointments[0].date: expected a date "YYYY-MM-DD", found "2026-02-30""#,
        ),
        (
            json!({"appointments": [{"practitioner": "lee", "date": "2026-04-03", "start": "09:30", "end": "09:30"}]}),
            r#"appointments[0]: start "09:30" must be before end "09:30""#,
        ),
        (
            json!({"blocks": [{"practitioner": "ghost", "date": "2026-04-03", "start": "09:00", "end": "09:30"}]}),
            r#"blocks[0].practitioner: no practitioner has id "ghost""#,
        ),
        (
            json!({"blocks": [{"date": "3/4/2026", "start": "09:00", "end": "09:30"}]}),
            r#"blocks[0].date: expected a date "YYYY-MM-DD", found "3/4/2026""#,
        ),
        (
            json!({"closed_dates": ["2026-04-03", "Easter"]}),
            r#"closed_dates[1]: expected a date "YYYY-MM-DD", found "Easter""#,
        ),
    ];
    for (overrides, expected) in cases {
        assert_eq!(invalid(practice(overrides)), expected);
    }
}

#[test]
fn validation_accepts_24_00_as_the_end_of_the_day() {
    let out = starts(practice(json!({
        "interval_minutes": 30,
        "practitioners": [{"id": "lee", "sessions": [{"days": ["fri"], "start": "23:00", "end": "24:00"}]}],
        "appointments": [{"practitioner": "lee", "date": "2026-04-03", "start": "23:30", "end": "24:00"}],
    })));
    assert_eq!(out, [t("2026-04-03", "23:00", "+11:00")]);
}

#[test]
fn appointments_outside_the_horizon_are_checked_but_ignored() {
    let plain = rows(practice(json!({})));
    let far = rows(practice(json!({"appointments": [
        {"practitioner": "lee", "date": "2027-01-01", "start": "09:00", "end": "17:00"}]})));
    assert_eq!(plain, far);
}
