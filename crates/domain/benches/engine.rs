//! Availability engine benchmarks (results and machine in docs/performance.md).
//!
//! - `engine/single_provider`: 1 practitioner in America/New_York, 90 days from Monday
//!   2030-02-04 (across the March DST change), Mon-Fri 09:00-17:00 with a 12:30-13:30 break,
//!   200 appointments of 30 minutes, 15-minute grid, one 30-minute reason.
//! - `engine/large_practice`: 10 practitioners with 3 reasons each, 90 days, 5-minute grid,
//!   stacking on, 10,000 appointments.
//! - `scaling_*`: the large practice with days, practitioners or appointments doubled
//!   (appointments with stacking off, so the output does not shrink as the diary fills).
//! - `validate/*`: parsing and indexing the snapshot, which `compute_slots` does not include.
//!
//! Throughput is reported in slots, so criterion prints slots per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use slotbridge_domain::availability::{compute_slots, compute_slots_into};
use slotbridge_domain::snapshot::{
    Appointment, BookingReason, Practitioner, ProviderRule, Snapshot, WeeklyWindow,
};

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

fn window(days: &[&str], start: &str, end: &str) -> WeeklyWindow {
    WeeklyWindow {
        days: days.iter().map(|d| (*d).to_owned()).collect(),
        start: start.to_owned(),
        end: end.to_owned(),
    }
}

fn hm(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A small deterministic generator (xorshift64*), so every run benchmarks the same diary.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
    }
}

/// The weekdays (Mon-Fri) of the `days` dates from `first`.
fn working_dates(first: jiff::civil::Date, days: u32) -> Vec<String> {
    (0..days)
        .map(|i| first + jiff::Span::new().days(i64::from(i)))
        .filter(|d| d.weekday().to_monday_zero_offset() < 5)
        .map(|d| d.to_string())
        .collect()
}

/// 30-minute appointments on the grid inside 09:00-12:30 or 13:30-17:00 of weekdays.
fn appointments(
    rng: &mut Rng,
    count: usize,
    practitioners: &[String],
    dates: &[String],
    grid: u32,
) -> Vec<Appointment> {
    // Grid starts in the working day at which a 30-minute appointment fits.
    let starts: Vec<u32> = (9 * 60..17 * 60)
        .step_by(grid as usize)
        .filter(|&s| s + 30 <= 12 * 60 + 30 || s >= 13 * 60 + 30)
        .filter(|&s| s + 30 <= 17 * 60)
        .collect();
    (0..count)
        .map(|_| {
            let start = starts[rng.below(starts.len() as u64) as usize];
            Appointment {
                practitioner: practitioners[rng.below(practitioners.len() as u64) as usize].clone(),
                date: dates[rng.below(dates.len() as u64) as usize].clone(),
                start: hm(start),
                end: hm(start + 30),
            }
        })
        .collect()
}

fn practitioner(id: &str) -> Practitioner {
    Practitioner {
        id: id.to_owned(),
        name: String::new(),
        sessions: vec![window(&WEEKDAYS, "09:00", "17:00")],
        breaks: vec![window(&WEEKDAYS, "12:30", "13:30")],
    }
}

/// The single-provider workload.
fn single_provider() -> Snapshot {
    let first = jiff::civil::date(2030, 2, 4);
    let ids = vec!["smith".to_owned()];
    let dates = working_dates(first, 90);
    // 200 distinct 30-minute appointments: no two in the same place.
    let mut rng = Rng(0x5107_b41d);
    let mut taken = std::collections::HashSet::new();
    let mut diary = Vec::new();
    while diary.len() < 200 {
        let a = appointments(&mut rng, 1, &ids, &dates, 30).remove(0);
        if taken.insert((a.date.clone(), a.start.clone())) {
            diary.push(a);
        }
    }
    Snapshot {
        timezone: "America/New_York".to_owned(),
        now: "2030-02-04T07:30:00-05:00".to_owned(),
        horizon_days: Some(90),
        interval_minutes: 15,
        stacking: true,
        min_notice_minutes: None,
        max_per_day_segment: None,
        practitioners: vec![practitioner("smith")],
        booking_reasons: vec![BookingReason {
            id: "consult".to_owned(),
            name: String::new(),
            providers: vec![ProviderRule {
                practitioner: "smith".to_owned(),
                duration_minutes: 30,
                windows: vec![window(&WEEKDAYS, "09:00", "17:00")],
            }],
        }],
        appointments: diary,
        blocks: Vec::new(),
        closed_dates: Vec::new(),
    }
}

/// The large-practice workload, scaled: `practitioners` with 3 reasons each over `days`, with
/// `appointment_count` appointments.
fn large_practice(practitioners: usize, days: u32, appointment_count: usize) -> Snapshot {
    let first = jiff::civil::date(2026, 3, 2);
    let ids: Vec<String> = (0..practitioners).map(|i| format!("dr{i:02}")).collect();
    let dates = working_dates(first, days);
    let mut rng = Rng(0x1a29_e9ac);
    let reasons = [("checkup", 15u32), ("clean", 30), ("exam", 60)];
    Snapshot {
        timezone: "Australia/Sydney".to_owned(),
        now: "2026-03-02T07:00:00+11:00".to_owned(),
        horizon_days: Some(days),
        interval_minutes: 5,
        stacking: true,
        min_notice_minutes: Some(60),
        max_per_day_segment: None,
        practitioners: ids.iter().map(|id| practitioner(id)).collect(),
        booking_reasons: reasons
            .iter()
            .map(|(id, duration)| BookingReason {
                id: (*id).to_owned(),
                name: String::new(),
                providers: ids
                    .iter()
                    .map(|p| ProviderRule {
                        practitioner: p.clone(),
                        duration_minutes: *duration,
                        windows: vec![window(&WEEKDAYS, "08:00", "18:00")],
                    })
                    .collect(),
            })
            .collect(),
        appointments: appointments(&mut rng, appointment_count, &ids, &dates, 5),
        blocks: Vec::new(),
        closed_dates: Vec::new(),
    }
}

fn bench_compute(c: &mut Criterion, group: &str, name: &str, snapshot: &Snapshot) {
    let valid = snapshot.validate().expect("benchmark snapshot is valid");
    let slots = compute_slots(&valid).len();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(slots as u64));
    let mut out = Vec::new();
    g.bench_function(BenchmarkId::new(name, format!("{slots}_slots")), |b| {
        b.iter(|| {
            compute_slots_into(black_box(&valid), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn engine(c: &mut Criterion) {
    bench_compute(c, "engine", "single_provider", &single_provider());
    bench_compute(
        c,
        "engine",
        "large_practice",
        &large_practice(10, 90, 10_000),
    );
}

fn scaling(c: &mut Criterion) {
    for days in [22, 45, 90] {
        bench_compute(
            c,
            "scaling_days",
            &format!("{days}d"),
            &large_practice(10, days, 10_000 * days as usize / 90),
        );
    }
    for practitioners in [5, 10, 20, 40] {
        bench_compute(
            c,
            "scaling_practitioners",
            &format!("{practitioners}p"),
            &large_practice(practitioners, 90, 1_000 * practitioners),
        );
    }
    // With stacking on, more appointments mean fewer slots, and the cost follows the slots.
    // With stacking off the output stays small (one slot per segment) and the cost of the
    // appointments themselves shows.
    for count in [2_500, 5_000, 10_000, 20_000, 40_000] {
        let mut snapshot = large_practice(10, 90, count);
        snapshot.stacking = false;
        bench_compute(c, "scaling_appointments", &format!("{count}a"), &snapshot);
    }
}

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate");
    for (name, snapshot) in [
        ("single_provider", single_provider()),
        ("large_practice", large_practice(10, 90, 10_000)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(&snapshot).validate().map(|v| v.days().len()))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the machine is shared with other builds (see docs/performance.md).
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = engine, scaling, validate
}
criterion_main!(benches);
