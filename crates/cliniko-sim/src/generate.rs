//! A realistic dental practice on Cliniko, from a seed: one business, two to four
//! practitioners (dentists and a hygienist) working weekdays with a lunch break, some Saturday
//! mornings, the usual appointment types, and a list of patients. Book its diary with
//! [`crate::DeskAction::Book`] (or [`fill_diary`]) once seeded.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::control::{
    AppointmentTypeSpec, BusinessSpec, DeskAction, PatientSpec, PracticeSpec, PractitionerSpec,
    SeededPractice, WeeklySpec,
};
use crate::{ClinikoSim, ControlError};

const SUBURBS: [&str; 8] = [
    "Harbour",
    "Northside",
    "Bayview",
    "Parkside",
    "Riverbend",
    "Hillcrest",
    "Seaside",
    "Elm Street",
];
const FIRST: [&str; 12] = [
    "Olivia",
    "Liam",
    "Charlotte",
    "Noah",
    "Amelia",
    "Jack",
    "Isla",
    "William",
    "Mia",
    "Oliver",
    "Ava",
    "Henry",
];
const LAST: [&str; 12] = [
    "Smith", "Nguyen", "Williams", "Brown", "Jones", "Patel", "Taylor", "Wilson", "Chen", "Martin",
    "Kelly", "Singh",
];

/// The practice of `seed`, on `shard`, in Sydney's zone.
pub fn practice(seed: u64, shard: &str) -> PracticeSpec {
    let mut r = StdRng::seed_from_u64(seed);
    let suburb = SUBURBS[r.random_range(0..SUBURBS.len())];
    let types = vec![
        ty("Check-up and clean", 45, true),
        ty("New patient consultation", 30, true),
        ty("Emergency appointment", 30, true),
        ty("Teeth whitening", 60, true),
        ty("Root canal treatment", 90, false),
    ];
    let dentists = r.random_range(1..=3);
    let mut practitioners = Vec::new();
    for i in 0..=dentists {
        let hygienist = i == dentists;
        let first = FIRST[r.random_range(0..FIRST.len())].to_owned();
        let last = LAST[r.random_range(0..LAST.len())].to_owned();
        let mut availabilities = Vec::new();
        for day in 1..=5u8 {
            if r.random_bool(0.15) {
                continue; // a day off
            }
            let (start, end) = if r.random_bool(0.5) {
                ("08:00", "17:00")
            } else {
                ("09:00", "18:00")
            };
            let lunch = if start == "08:00" {
                ("12:30", "13:30")
            } else {
                ("13:00", "14:00")
            };
            availabilities.push(WeeklySpec {
                business: 0,
                day_of_week: day,
                intervals: vec![
                    (start.to_owned(), lunch.0.to_owned()),
                    (lunch.1.to_owned(), end.to_owned()),
                ],
            });
        }
        if r.random_bool(0.4) {
            availabilities.push(WeeklySpec {
                business: 0,
                day_of_week: 6,
                intervals: vec![("08:30".to_owned(), "12:30".to_owned())],
            });
        }
        practitioners.push(PractitionerSpec {
            first_name: first,
            last_name: last,
            title: if hygienist {
                String::new()
            } else {
                "Dr".to_owned()
            },
            designation: if hygienist {
                "Dental Hygienist"
            } else {
                "Dentist"
            }
            .to_owned(),
            active: true,
            show_in_online_bookings: true,
            businesses: vec![0],
            appointment_types: if hygienist {
                vec![0]
            } else {
                vec![0, 1, 2, 3, 4]
            },
            availabilities,
        });
    }
    let patients = (0..40)
        .map(|i| PatientSpec {
            first_name: FIRST[r.random_range(0..FIRST.len())].to_owned(),
            last_name: LAST[r.random_range(0..LAST.len())].to_owned(),
            date_of_birth: Date::new(r.random_range(1940..2020), r.random_range(1..=12), 1).ok(),
            email: Some(format!("patient{i}.{seed}@example.com")),
            mobile: Some(format!("04{:08}", r.random_range(0..100_000_000u32))),
        })
        .collect();
    PracticeSpec {
        name: format!("{suburb} Dental"),
        shard: shard.to_owned(),
        time_zone: "Australia/Sydney".to_owned(),
        api_key: None,
        online_bookings: crate::OnlineBookings {
            enabled: true,
            max_appointments_per_day_segment: None,
            min_hours_advance_required_to_book: 2,
            max_days_in_advance: 182,
        },
        timeslot_size_in_minutes: 15,
        businesses: vec![BusinessSpec {
            name: format!("{suburb} Dental"),
            show_in_online_bookings: true,
        }],
        appointment_types: types,
        practitioners,
        patients,
    }
}

fn ty(name: &str, minutes: u32, online: bool) -> AppointmentTypeSpec {
    AppointmentTypeSpec {
        name: name.to_owned(),
        duration_in_minutes: minutes,
        show_in_online_bookings: online,
        category: Some("Dental".to_owned()),
    }
}

/// One weekly availability: business, practitioner, weekday, windows, offered types.
type PlanRow = (
    u64,
    u64,
    u8,
    Vec<(jiff::civil::Time, jiff::civil::Time)>,
    Vec<u64>,
);

/// Book about `fill` (0..1) of each practitioner's working hours over the `days` days from
/// `from`, on the quarter hours of their availability, without overlaps: a diary as a desk
/// fills it. Returns the number of appointments booked.
///
/// # Errors
/// [`ControlError`] when the practice does not exist.
pub fn fill_diary(
    sim: &ClinikoSim,
    practice: &SeededPractice,
    seed: u64,
    from: Date,
    days: u32,
    fill: f64,
) -> Result<usize, ControlError> {
    let mut r = StdRng::seed_from_u64(seed ^ 0xd1a7);
    let (tz, plan) = {
        let world = sim.world();
        let acct = world
            .accounts
            .get(&practice.account_id)
            .ok_or(ControlError::NoAccount(practice.account_id))?;
        let plan: Vec<PlanRow> = acct
            .daily_availabilities
            .iter()
            .filter_map(|d| {
                let p = acct.practitioner(d.practitioner_id)?;
                Some((
                    d.business_id,
                    d.practitioner_id,
                    d.day_of_week,
                    d.availabilities
                        .iter()
                        .map(|i| (i.starts_at, i.ends_at))
                        .collect(),
                    p.appointment_type_ids.clone(),
                ))
            })
            .collect();
        (acct.time_zone.clone(), plan)
    };
    let durations: std::collections::HashMap<u64, u32> = {
        let world = sim.world();
        world
            .accounts
            .get(&practice.account_id)
            .map(|a| {
                a.appointment_types
                    .iter()
                    .map(|t| (t.id, t.duration_in_minutes))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut booked = 0;
    let mut day = from;
    for _ in 0..days {
        let weekday = day.weekday().to_monday_one_offset();
        for (business, practitioner, dow, windows, types) in &plan {
            if i8::try_from(*dow).ok() != Some(weekday) || types.is_empty() {
                continue;
            }
            for (ws, we) in windows {
                let (Ok(mut t), Ok(end)) = (
                    tz.to_timestamp(day.to_datetime(*ws)),
                    tz.to_timestamp(day.to_datetime(*we)),
                ) else {
                    continue;
                };
                while t < end {
                    let kind = types[r.random_range(0..types.len())];
                    let len = SignedDuration::from_mins(i64::from(
                        durations.get(&kind).copied().unwrap_or(30),
                    ));
                    let Ok(stop) = t.checked_add(len) else { break };
                    if stop > end {
                        break;
                    }
                    if r.random_bool(fill.clamp(0.0, 1.0)) {
                        sim.desk(
                            practice.account_id,
                            DeskAction::Book {
                                business_id: *business,
                                practitioner_id: *practitioner,
                                appointment_type_id: kind,
                                patient_id: practice
                                    .patient_ids
                                    .get(r.random_range(0..practice.patient_ids.len().max(1)))
                                    .copied(),
                                starts_at: t,
                                ends_at: None,
                                notes: None,
                            },
                        )?;
                        booked += 1;
                        t = stop;
                    } else {
                        t = next_quarter(t);
                    }
                }
            }
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    Ok(booked)
}

fn next_quarter(t: Timestamp) -> Timestamp {
    t.checked_add(SignedDuration::from_mins(15)).unwrap_or(t)
}
