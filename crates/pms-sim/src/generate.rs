//! Deterministic, realistic practices: the demo practice Harbour Dental and `N` generated ones,
//! a fraction of which carry each misconfiguration from the seed's Troubleshooting section.
//!
//! A practice is a pure function of `(seed, index, first diary date)`, so the simulator can
//! generate it on first use and forget it again while nobody has changed it.

use std::collections::BTreeSet;

use jiff::civil::Date;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use slotbridge_domain::practice::{
    Attendance, BlockKind, BookingSource, ClockTime, DiaryAppointment, DiaryBlock, IanaZone,
    OnlineBookingEntry, PmsPractitioner, PmsReason, PracticeSetup, PractitionerHours,
    ReasonProviderRule, SiteSlug, Specialty, Weekday, WeeklyWindow,
};

use crate::practice::{Address, Medicare, Patient, Practice};

/// The demo practice's slug.
pub const DEMO_SLUG: &str = "sharbourdental";
/// The demo practice's well-known API key.
pub const DEMO_API_KEY: &str = "demo-harbour-dental-key";
/// How many days ahead generated diaries are booked.
pub const DIARY_DAYS: i64 = 90;

/// A misconfiguration from the seed's Troubleshooting section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Misconfig {
    /// Web Setup's Appointment Stacking is off.
    StackingOff,
    /// No reason is named "Healthengine" (and none is flagged marketing).
    NoHealthengineReason,
    /// The reason is spelt "Health Engine" instead of "Healthengine".
    HealthEngineMisspelt,
    /// The default reason's duration is shorter than 30 minutes.
    DefaultReasonTooShort,
    /// The default reason has no rule for some practitioner type (e.g. hygienists).
    DefaultReasonNotAllTypes,
    /// An online practitioner is missing from the default reason.
    PractitionerMissingFromReason,
    /// A practitioner's Online Booking Configuration duration differs from the default reason's.
    DurationMismatch,
}

impl Misconfig {
    /// Every misconfiguration.
    pub const ALL: [Misconfig; 7] = [
        Misconfig::StackingOff,
        Misconfig::NoHealthengineReason,
        Misconfig::HealthEngineMisspelt,
        Misconfig::DefaultReasonTooShort,
        Misconfig::DefaultReasonNotAllTypes,
        Misconfig::PractitionerMissingFromReason,
        Misconfig::DurationMismatch,
    ];
}

/// One misconfiguration of one practice, with the practitioner or reason it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestIssue {
    /// Which misconfiguration.
    pub kind: Misconfig,
    /// The practitioner concerned, if it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// The reason concerned, if it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One practice of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    /// Site slug.
    pub slug: String,
    /// API key.
    pub api_key: String,
    /// Practice name.
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// Its misconfigurations (empty: a correctly set-up practice).
    pub misconfigurations: Vec<ManifestIssue>,
}

/// Which practice has which misconfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The generation seed.
    pub seed: u64,
    /// The practices: Harbour Dental first, then the generated ones in order.
    pub practices: Vec<ManifestEntry>,
}

fn mix(seed: u64, index: u32, stream: u64) -> u64 {
    // splitmix64 over the combined inputs.
    let mut z = seed
        ^ (u64::from(index)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng(seed: u64, index: u32, stream: u64) -> StdRng {
    StdRng::seed_from_u64(mix(seed, index, stream))
}

fn pick<'a, T>(r: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[r.random_range(0..xs.len())]
}

const PLACES: &[(&str, &str, &str, &str)] = &[
    ("Bondi", "Australia/Sydney", "02", "NSW"),
    ("Parramatta", "Australia/Sydney", "02", "NSW"),
    ("Newtown", "Australia/Sydney", "02", "NSW"),
    ("Chatswood", "Australia/Sydney", "02", "NSW"),
    ("Manly", "Australia/Sydney", "02", "NSW"),
    ("Fitzroy", "Australia/Melbourne", "03", "VIC"),
    ("Brunswick", "Australia/Melbourne", "03", "VIC"),
    ("St Kilda", "Australia/Melbourne", "03", "VIC"),
    ("Geelong", "Australia/Melbourne", "03", "VIC"),
    ("Paddington", "Australia/Brisbane", "07", "QLD"),
    ("Toowong", "Australia/Brisbane", "07", "QLD"),
    ("Southport", "Australia/Brisbane", "07", "QLD"),
    ("Glenelg", "Australia/Adelaide", "08", "SA"),
    ("Norwood", "Australia/Adelaide", "08", "SA"),
    ("Subiaco", "Australia/Perth", "08", "WA"),
    ("Fremantle", "Australia/Perth", "08", "WA"),
    ("Sandy Bay", "Australia/Hobart", "03", "TAS"),
    ("Nightcliff", "Australia/Darwin", "08", "NT"),
    ("Braddon", "Australia/Sydney", "02", "ACT"),
];
const SUFFIXES: &[&str] = &[
    "Dental",
    "Dental Care",
    "Family Dental",
    "Smiles",
    "Dental Studio",
    "Dental Centre",
];
const FIRST: &[&str] = &[
    "Sarah", "James", "Emma", "Liam", "Olivia", "Noah", "Mia", "Lucas", "Chloe", "Ethan", "Priya",
    "Wei", "Aisha", "Mateo", "Hannah", "Tom", "Grace", "Jack", "Zoe", "Arjun", "Lily", "Sam",
    "Ruby", "Daniel", "Isla", "Henry", "Ava", "Oscar", "Mei", "Josh",
];
const LAST: &[&str] = &[
    "Chen",
    "Patel",
    "Wilson",
    "Nguyen",
    "Smith",
    "Brown",
    "Taylor",
    "Singh",
    "Kelly",
    "Murphy",
    "O'Brien",
    "Jones",
    "Williams",
    "Tran",
    "Lee",
    "Martin",
    "White",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Khan",
    "Costa",
    "Rossi",
    "Müller",
    "Papadopoulos",
];
const STREETS: &[&str] = &[
    "George St",
    "King St",
    "High St",
    "Victoria Rd",
    "Church St",
    "Beach Rd",
    "Park Ave",
];

/// The cheap identity of generated practice `index` (1-based): slug, name, key, zone, place.
struct Identity {
    slug: String,
    name: String,
    key: String,
    place: Place,
}

fn identity(seed: u64, index: u32) -> Identity {
    let mut r = rng(seed, index, 1);
    let place = *pick(&mut r, PLACES);
    let suffix = pick(&mut r, SUFFIXES);
    let name = format!("{} {}", place.0, suffix);
    let letter = *pick(&mut r, &['s', 's', 's', 'o', 'l']);
    let compact: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect();
    let slug = format!("{letter}{compact}{index}");
    let key = format!(
        "sk_{:016x}{:016x}",
        mix(seed, index, 7),
        mix(seed, index, 8)
    );
    Identity {
        slug,
        name,
        key,
        place,
    }
}

/// The index of the generated practice with `slug`, if it is one (`1..=count`).
pub fn index_of(seed: u64, count: u32, slug: &str) -> Option<u32> {
    let digits = slug.len() - slug.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let index: u32 = slug[slug.len() - digits..].parse().ok()?;
    ((1..=count).contains(&index) && identity(seed, index).slug == slug).then_some(index)
}

/// The API key of generated practice `index`.
pub fn api_key(seed: u64, index: u32) -> String {
    identity(seed, index).key
}

/// The slug of generated practice `index`.
pub fn slug(seed: u64, index: u32) -> String {
    identity(seed, index).slug
}

fn t(h: u32, m: u32) -> ClockTime {
    ClockTime::from_hm(h, m).unwrap_or(ClockTime::MIDNIGHT)
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

/// Weekly hours of one of several typical patterns.
fn hours_pattern(r: &mut StdRng, practitioner: &str) -> PractitionerHours {
    use Weekday::*;
    let lunch = |days: Vec<Weekday>| WeeklyWindow::new(days, t(12, 30), t(13, 30));
    let (sessions, breaks) = match r.random_range(0..10) {
        // Standard full-time week.
        0..=3 => (
            vec![WeeklyWindow::new(WEEKDAYS.to_vec(), t(8, 0), t(17, 30))],
            vec![lunch(WEEKDAYS.to_vec())],
        ),
        // A late night on Thursday.
        4 | 5 => (
            vec![
                WeeklyWindow::new(vec![Mon, Tue, Wed, Fri], t(8, 0), t(17, 30)),
                WeeklyWindow::new(vec![Thu], t(10, 0), t(20, 0)),
            ],
            vec![
                lunch(vec![Mon, Tue, Wed, Fri]),
                WeeklyWindow::new(vec![Thu], t(14, 0), t(14, 30)),
            ],
        ),
        // Saturdays.
        6 | 7 => (
            vec![
                WeeklyWindow::new(vec![Tue, Wed, Thu, Fri], t(8, 0), t(17, 30)),
                WeeklyWindow::new(vec![Sat], t(8, 30), t(13, 0)),
            ],
            vec![lunch(vec![Tue, Wed, Thu, Fri])],
        ),
        // Part-time.
        _ => (
            vec![WeeklyWindow::new(vec![Mon, Wed, Fri], t(8, 30), t(17, 0))],
            vec![WeeklyWindow::new(vec![Mon, Wed, Fri], t(12, 0), t(13, 0))],
        ),
    };
    PractitionerHours {
        practitioner: practitioner.to_owned(),
        sessions,
        breaks,
    }
}

fn rule(p: &str, duration: u32, windows: &[WeeklyWindow]) -> ReasonProviderRule {
    ReasonProviderRule {
        practitioner: p.to_owned(),
        duration_minutes: duration,
        windows: windows.to_vec(),
    }
}

fn is_dentist(p: &PmsPractitioner) -> bool {
    p.specialties.contains(&Specialty::Dentist)
}

fn misconfigs_for(seed: u64, index: u32) -> Vec<Misconfig> {
    let mut r = rng(seed, index, 3);
    let slot = (index - 1) % 9;
    let mut out = Vec::new();
    if let Some(m) = Misconfig::ALL.get(slot as usize) {
        out.push(*m);
    }
    if r.random_bool(0.2) {
        let extra = *pick(
            &mut r,
            &[Misconfig::StackingOff, Misconfig::DurationMismatch],
        );
        if !out.contains(&extra) {
            out.push(extra);
        }
    }
    out
}

/// The setup, weekly hours and misconfigurations of generated practice `index`.
fn generated_setup(
    seed: u64,
    index: u32,
) -> (PracticeSetup, Vec<PractitionerHours>, Vec<ManifestIssue>) {
    let id = identity(seed, index);
    let mut r = rng(seed, index, 2);
    let misconfigs = misconfigs_for(seed, index);
    let has = |m| misconfigs.contains(&m);
    let interval = *pick(&mut r, &[5, 10, 10, 15, 15, 15]);
    let count = r.random_range(2..=10usize);
    let mut practitioners = Vec::with_capacity(count);
    for n in 0..count {
        let first = pick(&mut r, FIRST);
        let last = pick(&mut r, LAST);
        let specialties = if n == 0 || (n == 1 && has(Misconfig::PractitionerMissingFromReason)) {
            vec![Specialty::Dentist]
        } else if n == count - 1 && has(Misconfig::DefaultReasonNotAllTypes) {
            vec![Specialty::Hygienist]
        } else {
            match r.random_range(0..20) {
                0..=11 => vec![Specialty::Dentist],
                12..=16 => vec![Specialty::Hygienist],
                _ => vec![Specialty::OralHealthTherapist, Specialty::Hygienist],
            }
        };
        let dentist = specialties.contains(&Specialty::Dentist);
        practitioners.push(PmsPractitioner {
            id: format!("{}", 1001 + n),
            title: if dentist {
                "Dr".into()
            } else {
                (*pick(&mut r, &["Ms", "Mr", ""])).into()
            },
            first_name: (*first).into(),
            last_name: (*last).into(),
            specialties,
        });
    }
    let hours: Vec<PractitionerHours> = practitioners
        .iter()
        .map(|p| hours_pattern(&mut r, &p.id))
        .collect();
    // Almost everyone publishes online; now and then a practitioner beyond the second does not.
    let online: Vec<usize> = (0..count)
        .filter(|&n| n < 2 || n == count - 1 || !r.random_bool(0.1))
        .collect();
    let long = if interval == 10 { 40 } else { 45 };
    let short = if interval == 10 { 20 } else { 15 };
    let default_duration = |p: &PmsPractitioner, r: &mut StdRng| {
        if has(Misconfig::DefaultReasonTooShort) {
            short
        } else if is_dentist(p) {
            *pick(r, &[30, 30, 60])
        } else {
            *pick(r, &[long, 60])
        }
    };
    let mut online_booking = Vec::new();
    let mut he_rules = Vec::new();
    let mut other_rules = Vec::new();
    let mut checkup_rules = Vec::new();
    let mut emergency_rules = Vec::new();
    let mut scale_rules = Vec::new();
    let mut issues = Vec::new();
    let mut mismatch_done = false;
    let mut missing_done = false;
    for &n in &online {
        let p = &practitioners[n];
        let windows = &hours[n].sessions;
        let d = default_duration(p, &mut r);
        let mut obc = d;
        if has(Misconfig::DurationMismatch) && !mismatch_done {
            obc = d + 15;
            mismatch_done = true;
            issues.push(ManifestIssue {
                kind: Misconfig::DurationMismatch,
                practitioner: Some(p.id.clone()),
                reason: Some("Healthengine".into()),
            });
        }
        online_booking.push(OnlineBookingEntry {
            practitioner: p.id.clone(),
            duration_minutes: obc,
        });
        other_rules.push(rule(&p.id, d.max(30), windows));
        let skip_for_type = has(Misconfig::DefaultReasonNotAllTypes) && !is_dentist(p);
        let skip_missing = has(Misconfig::PractitionerMissingFromReason) && !missing_done && n == 1;
        if skip_missing {
            missing_done = true;
            issues.push(ManifestIssue {
                kind: Misconfig::PractitionerMissingFromReason,
                practitioner: Some(p.id.clone()),
                reason: Some("Healthengine".into()),
            });
        }
        if !skip_for_type && !skip_missing {
            he_rules.push(rule(&p.id, d, windows));
        }
        if is_dentist(p) {
            checkup_rules.push(rule(&p.id, 30, windows));
            let mornings: Vec<WeeklyWindow> = windows
                .iter()
                .map(|w| WeeklyWindow::new(w.days.clone(), w.start, t(12, 0).max(w.start)))
                .filter(|w| w.end > w.start)
                .collect();
            emergency_rules.push(rule(&p.id, 30, &mornings));
        } else {
            scale_rules.push(rule(&p.id, 60, windows));
        }
    }
    let reason = |id: &str, name: &str, marketing: bool, providers| PmsReason {
        id: id.into(),
        name: name.into(),
        marketing,
        providers,
    };
    let mut reasons = vec![
        reason("R1", "Other", false, other_rules),
        reason("R2", "Check-up", false, checkup_rules),
        reason("R3", "Emergency", false, emergency_rules),
        reason("R4", "Scale & Clean", false, scale_rules),
    ];
    if has(Misconfig::NoHealthengineReason) {
        issues.push(ManifestIssue {
            kind: Misconfig::NoHealthengineReason,
            practitioner: None,
            reason: None,
        });
    } else if has(Misconfig::HealthEngineMisspelt) {
        reasons.push(reason("R5", "Health Engine", false, he_rules));
        issues.push(ManifestIssue {
            kind: Misconfig::HealthEngineMisspelt,
            practitioner: None,
            reason: Some("Health Engine".into()),
        });
    } else {
        reasons.push(reason("R5", "Healthengine", true, he_rules));
    }
    if has(Misconfig::StackingOff) {
        issues.push(ManifestIssue {
            kind: Misconfig::StackingOff,
            practitioner: None,
            reason: None,
        });
    }
    if has(Misconfig::DefaultReasonTooShort) {
        issues.push(ManifestIssue {
            kind: Misconfig::DefaultReasonTooShort,
            practitioner: None,
            reason: Some("Healthengine".into()),
        });
    }
    if has(Misconfig::DefaultReasonNotAllTypes) {
        issues.push(ManifestIssue {
            kind: Misconfig::DefaultReasonNotAllTypes,
            practitioner: None,
            reason: Some("Healthengine".into()),
        });
    }
    let setup = PracticeSetup {
        site: SiteSlug::parse(&id.slug).unwrap_or_else(|_| fallback_slug()),
        name: id.name,
        timezone: IanaZone::parse(id.place.1).unwrap_or_else(|_| sydney()),
        phone: format!(
            "({}) {} {:04}",
            id.place.2,
            r.random_range(8000..9999),
            r.random_range(0..10000)
        ),
        interval_minutes: interval,
        stacking: !has(Misconfig::StackingOff),
        practitioners,
        online_booking,
        reasons,
        online_rules: Default::default(),
    };
    let default_name = setup.default_reason().map(|r| r.name.clone());
    for issue in &mut issues {
        if issue.reason.as_deref() == Some("Healthengine") {
            issue.reason.clone_from(&default_name);
        }
    }
    issues.sort_by_key(|i| Misconfig::ALL.iter().position(|m| *m == i.kind));
    (setup, hours, issues)
}

fn fallback_slug() -> SiteSlug {
    SiteSlug::parse(DEMO_SLUG).unwrap_or_else(|_| unreachable!("the demo slug is valid"))
}

fn sydney() -> IanaZone {
    IanaZone::parse("Australia/Sydney").unwrap_or_else(|_| unreachable!("bundled tzdb"))
}

/// The demo practice's setup and weekly hours.
fn harbour_setup() -> (PracticeSetup, Vec<PractitionerHours>) {
    use Weekday::*;
    let p = |id: &str, title: &str, first: &str, last: &str, s: Vec<Specialty>| PmsPractitioner {
        id: id.into(),
        title: title.into(),
        first_name: first.into(),
        last_name: last.into(),
        specialties: s,
    };
    let practitioners = vec![
        p("1001", "Dr", "Sarah", "Chen", vec![Specialty::Dentist]),
        p("1002", "Dr", "James", "Patel", vec![Specialty::Dentist]),
        p("1003", "Ms", "Emma", "Wilson", vec![Specialty::Hygienist]),
        p(
            "1004",
            "Mr",
            "Liam",
            "Nguyen",
            vec![Specialty::OralHealthTherapist, Specialty::Hygienist],
        ),
    ];
    let lunch = |days: Vec<Weekday>| WeeklyWindow::new(days, t(12, 30), t(13, 30));
    let hours = vec![
        PractitionerHours {
            practitioner: "1001".into(),
            sessions: vec![WeeklyWindow::new(WEEKDAYS.to_vec(), t(8, 0), t(17, 30))],
            breaks: vec![lunch(WEEKDAYS.to_vec())],
        },
        PractitionerHours {
            practitioner: "1002".into(),
            sessions: vec![
                WeeklyWindow::new(vec![Mon, Tue, Wed, Fri], t(8, 0), t(17, 30)),
                WeeklyWindow::new(vec![Thu], t(10, 0), t(20, 0)),
                WeeklyWindow::new(vec![Sat], t(8, 30), t(13, 0)),
            ],
            breaks: vec![
                lunch(vec![Mon, Tue, Wed, Fri]),
                WeeklyWindow::new(vec![Thu], t(14, 0), t(14, 30)),
            ],
        },
        PractitionerHours {
            practitioner: "1003".into(),
            sessions: vec![WeeklyWindow::new(WEEKDAYS.to_vec(), t(8, 0), t(17, 30))],
            breaks: vec![lunch(WEEKDAYS.to_vec())],
        },
        PractitionerHours {
            practitioner: "1004".into(),
            sessions: vec![WeeklyWindow::new(vec![Mon, Wed, Fri], t(8, 30), t(17, 0))],
            breaks: vec![WeeklyWindow::new(vec![Mon, Wed, Fri], t(12, 0), t(13, 0))],
        },
    ];
    let sessions_of = |id: &str| {
        hours
            .iter()
            .find(|h| h.practitioner == id)
            .map(|h| h.sessions.clone())
            .unwrap_or_default()
    };
    let durations = [("1001", 30), ("1002", 30), ("1003", 45), ("1004", 45)];
    let all = |f: &dyn Fn(&str, u32) -> Option<u32>| -> Vec<ReasonProviderRule> {
        durations
            .iter()
            .filter_map(|(id, d)| f(id, *d).map(|d| rule(id, d, &sessions_of(id))))
            .collect()
    };
    let dentists = ["1001", "1002"];
    let reasons = vec![
        PmsReason {
            id: "R1".into(),
            name: "Healthengine".into(),
            marketing: true,
            providers: all(&|_, d| Some(d)),
        },
        PmsReason {
            id: "R2".into(),
            name: "Check-up & Clean".into(),
            marketing: false,
            providers: all(&|_, _| Some(60)),
        },
        PmsReason {
            id: "R3".into(),
            name: "Emergency".into(),
            marketing: false,
            providers: all(&|id, _| dentists.contains(&id).then_some(30)),
        },
        PmsReason {
            id: "R4".into(),
            name: "New Patient Exam".into(),
            marketing: false,
            providers: all(&|id, _| dentists.contains(&id).then_some(60)),
        },
        PmsReason {
            id: "R5".into(),
            name: "Scale & Clean".into(),
            marketing: false,
            providers: all(&|id, _| (!dentists.contains(&id)).then_some(45)),
        },
    ];
    let setup = PracticeSetup {
        site: fallback_slug(),
        name: "Harbour Dental".into(),
        timezone: sydney(),
        phone: "(02) 9251 4410".into(),
        interval_minutes: 15,
        stacking: true,
        practitioners,
        online_booking: durations
            .iter()
            .map(|(id, d)| OnlineBookingEntry {
                practitioner: (*id).into(),
                duration_minutes: *d,
            })
            .collect(),
        reasons,
        online_rules: Default::default(),
    };
    (setup, hours)
}

fn make_patients(r: &mut StdRng, n: usize, place: Place) -> Vec<Patient> {
    (0..n)
        .map(|i| {
            let first = *pick(r, FIRST);
            let last = *pick(r, LAST);
            let year = r.random_range(1940..2022);
            let dob = Date::new(year, r.random_range(1..=12), r.random_range(1..=28))
                .unwrap_or(Date::constant(1980, 1, 1));
            let mut medicare: Vec<u32> = vec![r.random_range(2..=6)];
            medicare.extend((0..7).map(|_| r.random_range(0..10)));
            let weights = [1, 3, 7, 9, 1, 3, 7, 9];
            let check: u32 = medicare
                .iter()
                .zip(weights)
                .map(|(a, w)| a * w)
                .sum::<u32>()
                % 10;
            medicare.push(check);
            medicare.push(r.random_range(1..10));
            let number: String = medicare
                .iter()
                .map(|d| char::from(b'0' + *d as u8))
                .collect();
            let email_name: String = format!("{first}.{last}{i}")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
                .flat_map(char::to_lowercase)
                .collect();
            Patient {
                id: String::new(),
                first_name: first.into(),
                last_name: last.into(),
                date_of_birth: dob,
                mobile_phone: r.random_bool(0.9).then(|| {
                    format!(
                        "04{:02} {:03} {:03}",
                        r.random_range(0..100),
                        r.random_range(0..1000),
                        r.random_range(0..1000)
                    )
                }),
                home_phone: r.random_bool(0.3).then(|| {
                    format!(
                        "({}) {:04} {:04}",
                        place.2,
                        r.random_range(2000..10000),
                        r.random_range(0..10000)
                    )
                }),
                email: r
                    .random_bool(0.8)
                    .then(|| format!("{email_name}@example.com")),
                address: Some(Address {
                    line1: format!("{} {}", r.random_range(1..300), pick(r, STREETS)),
                    suburb: place.0.into(),
                    state: place.3.into(),
                    postcode: format!("{}", r.random_range(2000..8000)),
                }),
                medicare: r.random_bool(0.85).then(|| Medicare {
                    number: number[..10].to_owned(),
                    irn: medicare[9] as u8,
                }),
            }
        })
        .collect()
}

/// Where a practice is: suburb, IANA time zone, phone area code, state.
pub type Place = (&'static str, &'static str, &'static str, &'static str);

const SYDNEY: Place = ("Sydney", "Australia/Sydney", "02", "NSW");

/// Appointment numbers per generated day: day `d` of the diary (0-based from its first date)
/// numbers its booked appointments from `DAY_IDS * (d + 1)`, so an id says which day it is on.
pub const DAY_IDS: u64 = 1000;

/// The first appointment number after the generated ones: new bookings count up from here.
pub const FIRST_FREE_ID: u64 = DAY_IDS * (DIARY_DAYS as u64 + 1);

const _: () = assert!(DIARY_DAYS <= 128, "built days are kept as a 128-bit set");

/// What a generated practice's diary and patient files are made from, fixed when the practice
/// is generated: the weekly hours, blocks and closed dates as generated, the booking reasons,
/// the occupancy and the number of patient files.
///
/// Each day's appointments and the patient files come from their own random stream, so they
/// are built on first use ([`Practice::appointments_between`] and friends), in any order, and
/// always come out the same; later desk changes (new hours, blocks, closed dates, reasons) do
/// not change what was booked before them.
#[derive(Debug)]
pub struct Plan {
    seed: u64,
    index: u32,
    first: Date,
    hours: Vec<PractitionerHours>,
    blocks: Vec<DiaryBlock>,
    closed: BTreeSet<Date>,
    durations: Vec<u32>,
    interval: u32,
    reasons: Vec<String>,
    occupancy: f64,
    patients: usize,
    place: Place,
}

impl Plan {
    /// The first diary date (the practice-local date the simulator started on).
    pub fn first_date(&self) -> Date {
        self.first
    }

    /// Weekly hours as generated.
    pub fn hours(&self) -> &[PractitionerHours] {
        &self.hours
    }

    /// Blocks as generated, with their ids (`B1`, `B2`, …).
    pub fn blocks(&self) -> &[DiaryBlock] {
        &self.blocks
    }

    /// Closed dates as generated.
    pub fn closed(&self) -> &BTreeSet<Date> {
        &self.closed
    }

    /// How many patient files the practice starts with.
    pub fn patient_count(&self) -> usize {
        self.patients
    }

    /// The diary days (0-based) from `first` to `last` inclusive, within the generated diary.
    pub fn days_between(&self, first: Date, last: Date) -> std::ops::Range<u32> {
        let offset = |d: Date| {
            self.first
                .until(d)
                .map_or(i64::MIN, |s| i64::from(s.get_days()))
        };
        let lo = offset(first).clamp(0, DIARY_DAYS);
        let hi = offset(last).saturating_add(1).clamp(lo, DIARY_DAYS);
        // Both are within 0..=DIARY_DAYS (≤ 128).
        (lo as u32)..(hi as u32)
    }

    /// The day a generated appointment number belongs to (see [`DAY_IDS`]).
    pub fn day_of_number(n: u64) -> Option<u32> {
        (DAY_IDS..FIRST_FREE_ID)
            .contains(&n)
            .then(|| (n / DAY_IDS - 1) as u32)
    }

    /// The day a generated online booking's external reference (`he-YYYYMMDD-k`) is on.
    pub fn day_of_ref(&self, external_ref: &str) -> Option<u32> {
        let digits = external_ref.strip_prefix("he-")?.get(..8)?;
        let date = Date::strptime("%Y%m%d", digits).ok()?;
        let days = self.days_between(date, date);
        (!days.is_empty()).then_some(days.start)
    }

    /// The appointments booked on diary day `day` (0-based), with their numbers.
    pub fn day(&self, day: u32) -> Vec<(u64, DiaryAppointment)> {
        let mut out = Vec::new();
        let Ok(date) = self
            .first
            .checked_add(jiff::Span::new().days(i64::from(day)))
        else {
            return out;
        };
        if i64::from(day) >= DIARY_DAYS || self.closed.contains(&date) || self.durations.is_empty()
        {
            return out;
        }
        let r = &mut rng(self.seed, self.index, 1000 + u64::from(day));
        let weekday = Weekday::of(date);
        let mut number = DAY_IDS * (u64::from(day) + 1);
        let mut online_ref = 0u32;
        let ref_date = date.strftime("%Y%m%d").to_string();
        for h in &self.hours {
            let busy: Vec<(u32, u32)> = h
                .breaks
                .iter()
                .filter(|w| w.on(weekday))
                .map(|w| (w.start.minutes(), w.end.minutes()))
                .chain(
                    self.blocks
                        .iter()
                        .filter(|b| {
                            b.date == date
                                && b.practitioner.as_ref().is_none_or(|x| *x == h.practitioner)
                        })
                        .map(|b| (b.start.minutes(), b.end.minutes())),
                )
                .collect();
            for s in h.sessions.iter().filter(|w| w.on(weekday)) {
                let mut at = s.start.minutes();
                while at < s.end.minutes() {
                    let d = *pick(r, &self.durations);
                    let span = (at, at + d);
                    if span.1 > s.end.minutes() {
                        break;
                    }
                    if let Some(b) = busy.iter().find(|b| b.0 < span.1 && span.0 < b.1) {
                        at = b.1.max(at + self.interval);
                        continue;
                    }
                    if r.random_bool(self.occupancy) {
                        let online = r.random_bool(0.1);
                        let external_ref = online.then(|| {
                            online_ref += 1;
                            format!("he-{ref_date}-{online_ref}")
                        });
                        let at_minute =
                            |m: u32| ClockTime::from_minutes(m).unwrap_or(ClockTime::MIDNIGHT);
                        let patient = (self.patients > 0)
                            .then(|| format!("P{}", r.random_range(1..=self.patients)));
                        let reason =
                            (!self.reasons.is_empty()).then(|| pick(r, &self.reasons).clone());
                        let notes = if r.random_bool(0.1) {
                            (*pick(
                                r,
                                &[
                                    "Sensitive upper left",
                                    "Prefers mornings",
                                    "Bring x-rays",
                                    "Anxious patient",
                                ],
                            ))
                            .into()
                        } else {
                            String::new()
                        };
                        out.push((
                            number,
                            DiaryAppointment {
                                id: format!("A{number}"),
                                practitioner: h.practitioner.clone(),
                                start: at_minute(span.0).on(date),
                                end: at_minute(span.1).on(date),
                                reason,
                                patient,
                                notes,
                                source: if online {
                                    BookingSource::Online
                                } else {
                                    BookingSource::Desk
                                },
                                external_ref,
                                attendance: Attendance::Booked,
                            },
                        ));
                        number += 1;
                    }
                    at = span.1;
                }
            }
        }
        debug_assert!(number < DAY_IDS * (u64::from(day) + 2), "too many in a day");
        out
    }

    /// The patient files in id order (`P1`, `P2`, …), ids not yet set.
    pub fn patients(&self) -> Vec<Patient> {
        make_patients(
            &mut rng(self.seed, self.index, 5),
            self.patients,
            self.place,
        )
    }
}

/// Plan a practice's diary from `today` for [`DIARY_DAYS`] days: closed dates and blocks now,
/// appointments booking roughly `occupancy` of the open time later, one day at a time.
#[allow(clippy::too_many_arguments)]
fn plan(
    (seed, index): (u64, u32),
    setup: &PracticeSetup,
    hours: Vec<PractitionerHours>,
    today: Date,
    occupancy: f64,
    patients: usize,
    place: Place,
    r: &mut StdRng,
) -> Plan {
    let end = today
        .checked_add(jiff::Span::new().days(DIARY_DAYS))
        .unwrap_or(today);
    let mut closed = BTreeSet::new();
    // Public holidays and the odd closure.
    for (m, d) in [(12, 25), (12, 26), (1, 1), (1, 26), (4, 25)] {
        for year in [today.year(), today.year() + 1] {
            if let Ok(date) = Date::new(year, m, d)
                && date >= today
                && date < end
            {
                closed.insert(date);
            }
        }
    }
    if r.random_bool(0.3) {
        let off = r.random_range(7..DIARY_DAYS);
        if let Ok(d) = today.checked_add(jiff::Span::new().days(off)) {
            closed.insert(d);
        }
    }
    let ids: Vec<String> = setup.practitioners.iter().map(|x| x.id.clone()).collect();
    let mut blocks = Vec::new();
    let mut block = |practitioner: Option<String>, date, start, end, kind| {
        blocks.push(DiaryBlock {
            id: format!("B{}", blocks.len() + 1),
            practitioner,
            date,
            start,
            end,
            kind,
        });
    };
    // Blocks: a monthly staff meeting for everyone, a holiday, a dated lunch.
    let mut date = today;
    while date < end {
        if date.day() <= 7 && Weekday::of(date) == Weekday::Mon {
            block(None, date, t(8, 0), t(9, 0), BlockKind::Meeting);
        }
        date = date.tomorrow().unwrap_or(end);
    }
    if r.random_bool(0.4) && !ids.is_empty() {
        let who = pick(r, &ids).clone();
        let first = r.random_range(10..DIARY_DAYS - 7);
        for k in 0..5 {
            if let Ok(d) = today.checked_add(jiff::Span::new().days(first + k)) {
                block(
                    Some(who.clone()),
                    d,
                    ClockTime::MIDNIGHT,
                    ClockTime::END_OF_DAY,
                    BlockKind::Holiday,
                );
            }
        }
    }
    if !ids.is_empty() {
        let who = pick(r, &ids).clone();
        if let Ok(d) = today.checked_add(jiff::Span::new().days(r.random_range(1..DIARY_DAYS))) {
            block(Some(who), d, t(13, 30), t(14, 0), BlockKind::Lunch);
        }
    }
    let interval = setup.interval_minutes;
    Plan {
        seed,
        index,
        first: today,
        hours,
        blocks,
        closed,
        durations: [30, 45, 60, 40, 20]
            .into_iter()
            .filter(|d| d % interval == 0)
            .collect(),
        interval,
        reasons: setup.reasons.iter().map(|x| x.id.clone()).collect(),
        occupancy,
        patients,
        place,
    }
}

/// The practice-local date at `now` in `zone`.
fn local_today(zone: &IanaZone, now: jiff::Timestamp) -> Date {
    now.to_zoned_datetime(zone.time_zone().clone()).date()
}

/// Build the demo practice, Harbour Dental, with its diary from the local date of `now`.
/// Its appointments and patient files are built on first use (see [`Plan`]).
pub fn harbour_dental(seed: u64, now: jiff::Timestamp) -> Practice {
    let (setup, hours) = harbour_setup();
    let today = local_today(&setup.timezone, now);
    let mut r = rng(seed, 0, 4);
    let plan = plan((seed, 0), &setup, hours, today, 0.65, 400, SYDNEY, &mut r);
    Practice::from_plan(setup, vec![DEMO_API_KEY.to_owned()], plan)
}

/// Build generated practice `index` (1-based) with its diary from the local date of `now`.
/// Its appointments and patient files are built on first use (see [`Plan`]).
pub fn generated(seed: u64, index: u32, now: jiff::Timestamp) -> Practice {
    let id = identity(seed, index);
    let (setup, hours, _) = generated_setup(seed, index);
    let today = local_today(&setup.timezone, now);
    let patients = 150 + 50 * setup.practitioners.len();
    let mut r = rng(seed, index, 4);
    let occupancy = r.random_range(0.60..0.85);
    let plan = plan(
        (seed, index),
        &setup,
        hours,
        today,
        occupancy,
        patients,
        id.place,
        &mut r,
    );
    Practice::from_plan(setup, vec![id.key], plan)
}

/// The manifest of Harbour Dental and `count` generated practices.
pub fn manifest(seed: u64, count: u32) -> Manifest {
    let mut practices = Vec::with_capacity(count as usize + 1);
    practices.push(ManifestEntry {
        slug: DEMO_SLUG.into(),
        api_key: DEMO_API_KEY.into(),
        name: "Harbour Dental".into(),
        timezone: "Australia/Sydney".into(),
        misconfigurations: Vec::new(),
    });
    for index in 1..=count {
        let (setup, _, issues) = generated_setup(seed, index);
        practices.push(ManifestEntry {
            slug: setup.site.to_string(),
            api_key: api_key(seed, index),
            name: setup.name,
            timezone: setup.timezone.name().to_owned(),
            misconfigurations: issues,
        });
    }
    Manifest { seed, practices }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;
    use slotbridge_domain::practice::default_reason;

    #[test]
    fn slugs_are_valid_unique_and_found_again() {
        let mut seen = std::collections::HashSet::new();
        for i in 1..=500 {
            let s = slug(42, i);
            assert!(SiteSlug::parse(&s).is_ok(), "{s}");
            assert!(seen.insert(s.clone()), "duplicate {s}");
            assert_eq!(index_of(42, 500, &s), Some(i));
        }
        assert_eq!(index_of(42, 10, &slug(42, 11)), None);
        assert_eq!(index_of(42, 500, "sbondidental1x"), None);
        assert_eq!(index_of(42, 500, DEMO_SLUG), None);
    }

    #[test]
    fn generation_is_deterministic() {
        let now: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().expect("ts");
        let mut a = generated(7, 3, now);
        let mut b = generated(7, 3, now);
        assert_eq!(a.setup, b.setup);
        assert_eq!(a.appointment_count(), 0, "days are built on first use");
        // Built all at once, or day by day from the last to the first: the same diary.
        a.materialize_all();
        let first = local_today(&b.setup.timezone, now);
        for back in (0..DIARY_DAYS).rev() {
            let d = first
                .checked_add(jiff::Span::new().days(back))
                .expect("date");
            let from = d.to_datetime(jiff::civil::Time::midnight());
            let to = d
                .tomorrow()
                .expect("date")
                .to_datetime(jiff::civil::Time::midnight());
            b.appointments_between(from, to, None).count();
        }
        assert!(a.appointment_count() > 500, "{}", a.appointment_count());
        assert_eq!(a.appointment_count(), b.appointment_count());
        let far = DateTime::constant(2100, 1, 1, 0, 0, 0, 0);
        let start = first.to_datetime(jiff::civil::Time::midnight());
        let all_a: Vec<_> = a.appointments_between(start, far, None).cloned().collect();
        let all_b: Vec<_> = b.appointments_between(start, far, None).cloned().collect();
        assert_eq!(all_a, all_b);
        assert_eq!(a.patients(), b.patients());
        assert_eq!(a.patients().len(), 150 + 50 * a.setup.practitioners.len());
        assert_eq!(manifest(7, 20), manifest(7, 20));
        assert_ne!(manifest(7, 20), manifest(8, 20));
    }

    #[test]
    fn every_misconfiguration_appears_and_is_real() {
        let m = manifest(1, 30);
        for kind in Misconfig::ALL {
            assert!(
                m.practices
                    .iter()
                    .any(|p| p.misconfigurations.iter().any(|i| i.kind == kind)),
                "{kind:?} missing"
            );
        }
        for index in 1..=30 {
            let (setup, _, issues) = generated_setup(1, index);
            let has = |k| issues.iter().any(|i| i.kind == k);
            assert_eq!(!setup.stacking, has(Misconfig::StackingOff));
            let he = setup.reasons.iter().find(|r| r.name == "Healthengine");
            assert_eq!(
                he.is_none(),
                has(Misconfig::NoHealthengineReason) || has(Misconfig::HealthEngineMisspelt)
            );
            let def = default_reason(&setup.reasons).expect("a reason");
            if has(Misconfig::DefaultReasonTooShort) {
                assert!(def.providers.iter().all(|r| r.duration_minutes < 30));
            } else {
                assert!(def.providers.iter().all(|r| r.duration_minutes >= 30));
            }
            let missing: Vec<_> = setup
                .online_booking
                .iter()
                .filter(|e| def.rule_for(&e.practitioner).is_none())
                .collect();
            assert_eq!(
                !missing.is_empty(),
                has(Misconfig::PractitionerMissingFromReason)
                    || has(Misconfig::DefaultReasonNotAllTypes),
                "practice {index}: {issues:?}"
            );
            let mismatched = setup.online_booking.iter().any(|e| {
                def.rule_for(&e.practitioner)
                    .is_some_and(|r| r.duration_minutes != e.duration_minutes)
            });
            assert_eq!(
                mismatched,
                has(Misconfig::DurationMismatch),
                "practice {index}"
            );
        }
    }

    #[test]
    fn diaries_are_60_to_85_percent_booked_and_respect_hours() {
        let now: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().expect("ts");
        for index in 1..=4 {
            let mut p = generated(3, index, now);
            let mut open = 0u32;
            let today = local_today(&p.setup.timezone, now);
            let mut date = today;
            for _ in 0..DIARY_DAYS {
                if !p.closed.contains(&date) {
                    for h in &p.hours {
                        let wd = Weekday::of(date);
                        let s: u32 = h
                            .sessions
                            .iter()
                            .filter(|w| w.on(wd))
                            .map(|w| w.end.minutes() - w.start.minutes())
                            .sum();
                        let b: u32 = h
                            .breaks
                            .iter()
                            .filter(|w| w.on(wd))
                            .map(|w| w.end.minutes() - w.start.minutes())
                            .sum();
                        open += s - b;
                    }
                }
                date = date.tomorrow().expect("date");
            }
            let far = DateTime::constant(2100, 1, 1, 0, 0, 0, 0);
            let booked: i64 = p
                .appointments_between(today.to_datetime(jiff::civil::Time::midnight()), far, None)
                .map(|a| a.start.duration_until(a.end).as_mins())
                .sum();
            let ratio = booked as f64 / f64::from(open);
            assert!((0.5..=0.9).contains(&ratio), "practice {index}: {ratio}");
        }
    }
}
