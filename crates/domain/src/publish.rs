//! What the marketplace is told: the PMS setup and the engine's slots, mapped onto the
//! marketplace's configuration (resources and appointment types) and availability snapshots.
//!
//! The mapping follows the reference system:
//!
//! - **Resources** (appointment books): one per practitioner × specialty, for the practitioners in
//!   the Online Booking Configuration. A practitioner with one specialty is resource `{id}`; one
//!   with several is `{id}:{specialty}` for each (`1002:hygienist`). The PMS practitioner is
//!   always the part before any `:`.
//! - **Appointment types**: the PMS booking reasons, with the PMS's duration. A reason whose
//!   rules all have one duration is one type, id `{reason}`, for every resource. A reason whose
//!   durations differ between practitioners becomes one type per resource, id
//!   `{reason}:{resource}`, each with that practitioner's duration.
//! - **Availability**: per resource and practice-local date, the exact slots the engine
//!   published, as ranges `[start, end)` with `slotLength` = the slot's duration and the type ids
//!   it may be booked as. Every date of the horizon is sent, empty ones too, because the
//!   marketplace's snapshots replace what it had.
//!
//! [`DayAvailability`] is plain, sorted data: the same content always serialises to the same
//! JSON, so the service can hash it to re-send only the (resource, date) pairs that changed.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::availability::Slot;
use crate::practice::{ClockTime, PmsReason, PracticeSetup, PractitionerHours, Specialty, Weekday};

/// A marketplace resource (appointment book) for one practitioner and specialty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `pmsResourceId`: `{practitioner}` or `{practitioner}:{specialty}`.
    pub id: String,
    /// `pmsResourceName`, unique within the practice.
    pub name: String,
    /// The practitioner's title.
    pub title: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The PMS practitioner id.
    pub practitioner: String,
    /// The specialty when the practitioner has several.
    pub specialty: Option<Specialty>,
}

/// A marketplace appointment type made from a PMS booking reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentType {
    /// `pmsAppointmentTypeId`: `{reason}` or `{reason}:{resource}`.
    pub id: String,
    /// `pmsAppointmentTypeName`, unique within the practice.
    pub name: String,
    /// `pmsAppointmentLength`, in minutes; the PMS's duration.
    pub length_minutes: u32,
    /// `pmsResourceId` when the type is for one resource only.
    pub resource: Option<String>,
    /// The PMS reason id.
    pub reason: String,
}

/// One availability range: bookable slots of `slot_length_secs` from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Range {
    /// Practice-local start, `HH:MM`.
    pub start: ClockTime,
    /// Practice-local end, `HH:MM`.
    pub end: ClockTime,
    /// Slot length in seconds (the marketplace's `slotLength`).
    pub slot_length_secs: u32,
    /// The appointment type ids the range may be booked as, sorted.
    pub type_ids: Vec<String>,
}

/// The availability of one resource on one practice-local date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayAvailability {
    /// `pmsResourceId`.
    pub resource: String,
    /// Practice-local date.
    pub date: Date,
    /// The ranges, sorted by start, end and types.
    pub ranges: Vec<Range>,
}

fn specialty_code(s: Specialty) -> &'static str {
    match s {
        Specialty::Dentist => "dentist",
        Specialty::Hygienist => "hygienist",
        Specialty::OralHealthTherapist => "oht",
    }
}

fn specialty_label(s: Specialty) -> &'static str {
    match s {
        Specialty::Dentist => "Dentist",
        Specialty::Hygienist => "Hygienist",
        Specialty::OralHealthTherapist => "Oral Health Therapist",
    }
}

/// The PMS practitioner id of a resource id: the part before any `:`.
///
/// ```
/// use slotbridge_domain::publish::practitioner_of;
/// assert_eq!(practitioner_of("1002:hygienist"), "1002");
/// assert_eq!(practitioner_of("1001"), "1001");
/// ```
pub fn practitioner_of(resource_id: &str) -> &str {
    resource_id.split(':').next().unwrap_or(resource_id)
}

/// The practice's opening hours per weekday (Monday first), for the marketplace's liveness
/// contract: the union of the weekly sessions of the practitioners published online (of every
/// practitioner when none of those has a session), overlapping and touching windows merged,
/// sorted. A weekday with no session is closed (empty). When no practitioner has any session the
/// practice has no hours to go by, and every day is open all day.
pub fn opening_hours(
    setup: &PracticeSetup,
    hours: &[PractitionerHours],
) -> [Vec<(ClockTime, ClockTime)>; 7] {
    let online: Vec<&PractitionerHours> = hours
        .iter()
        .filter(|h| {
            setup
                .online_booking
                .iter()
                .any(|e| e.practitioner == h.practitioner)
        })
        .collect();
    let has_sessions = |hs: &[&PractitionerHours]| hs.iter().any(|h| !h.sessions.is_empty());
    let chosen: Vec<&PractitionerHours> = if has_sessions(&online) {
        online
    } else {
        hours.iter().collect()
    };
    if !has_sessions(&chosen) {
        return std::array::from_fn(|_| vec![(ClockTime::MIDNIGHT, ClockTime::END_OF_DAY)]);
    }
    std::array::from_fn(|i| {
        let day = Weekday::ALL[i];
        let mut windows: Vec<(ClockTime, ClockTime)> = chosen
            .iter()
            .flat_map(|h| h.sessions.iter())
            .filter(|w| w.on(day) && w.start < w.end)
            .map(|w| (w.start, w.end))
            .collect();
        windows.sort();
        let mut merged: Vec<(ClockTime, ClockTime)> = Vec::new();
        for (start, end) in windows {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    })
}

/// The resources of a practice: one per online practitioner × specialty, with unique names.
pub fn resources(setup: &PracticeSetup) -> Vec<Resource> {
    let mut out: Vec<Resource> = Vec::new();
    for entry in &setup.online_booking {
        let Some(p) = setup.practitioner(&entry.practitioner) else {
            continue;
        };
        let base = p.display_name();
        if p.specialties.len() <= 1 {
            out.push(Resource {
                id: p.id.clone(),
                name: base,
                title: p.title.clone(),
                first_name: p.first_name.clone(),
                last_name: p.last_name.clone(),
                practitioner: p.id.clone(),
                specialty: None,
            });
        } else {
            for s in &p.specialties {
                out.push(Resource {
                    id: format!("{}:{}", p.id, specialty_code(*s)),
                    name: format!("{base} ({})", specialty_label(*s)),
                    title: p.title.clone(),
                    first_name: p.first_name.clone(),
                    last_name: p.last_name.clone(),
                    practitioner: p.id.clone(),
                    specialty: Some(*s),
                });
            }
        }
    }
    // Names must be unique on the marketplace: two "Dr John Smith" get their ids appended.
    let names: Vec<String> = out.iter().map(|r| r.name.clone()).collect();
    for r in &mut out {
        if names.iter().filter(|n| **n == r.name).count() > 1 {
            r.name = format!("{} [{}]", r.name, r.id);
        }
    }
    out
}

/// Whether a reason's rules for online practitioners all share one duration.
fn single_duration(setup: &PracticeSetup, reason: &PmsReason) -> Option<u32> {
    let mut durations = reason
        .providers
        .iter()
        .filter(|p| setup.publishes_online(&p.practitioner))
        .map(|p| p.duration_minutes);
    let first = durations.next()?;
    durations.all(|d| d == first).then_some(first)
}

/// The appointment types of a practice, from its booking reasons (see the module docs).
/// Reasons without any online practitioner are left out: nothing could be booked as them.
pub fn appointment_types(setup: &PracticeSetup, resources: &[Resource]) -> Vec<AppointmentType> {
    let mut out = Vec::new();
    for reason in &setup.reasons {
        let online_rules = reason
            .providers
            .iter()
            .filter(|p| setup.publishes_online(&p.practitioner))
            .count();
        if online_rules == 0 {
            continue;
        }
        match single_duration(setup, reason) {
            Some(minutes) => out.push(AppointmentType {
                id: reason.id.clone(),
                name: reason.name.clone(),
                length_minutes: minutes,
                resource: None,
                reason: reason.id.clone(),
            }),
            None => {
                for res in resources {
                    if let Some(rule) = reason.rule_for(&res.practitioner) {
                        out.push(AppointmentType {
                            id: format!("{}:{}", reason.id, res.id),
                            name: format!("{} - {}", reason.name, res.name),
                            length_minutes: rule.duration_minutes,
                            resource: Some(res.id.clone()),
                            reason: reason.id.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The appointment type id a slot of `reason` with `resource` is published as.
fn type_id_for(types: &[AppointmentType], reason: &str, resource: &str) -> Option<String> {
    types
        .iter()
        .find(|t| t.reason == reason && t.resource.as_deref().is_none_or(|r| r == resource))
        .map(|t| t.id.clone())
}

/// The availability of every resource on every date of `dates`, from the engine's slots.
///
/// Dates with no slot give an empty [`DayAvailability`]: sending it clears what the marketplace
/// had. A slot that ends after 23:59 on its start date cannot be written as an `HH:MM` range and
/// is left out.
pub fn availability(
    resources: &[Resource],
    types: &[AppointmentType],
    slots: &[Slot<'_>],
    dates: &[Date],
) -> Vec<DayAvailability> {
    // (practitioner, date) -> (start, end, secs) -> reasons
    type Ranges<'r> = BTreeMap<(ClockTime, ClockTime, u32), Vec<&'r str>>;
    let mut by_day: BTreeMap<(&str, Date), Ranges<'_>> = BTreeMap::new();
    for slot in slots {
        let start = slot.start_offset.to_datetime(slot.start);
        let end = slot.end_offset.to_datetime(slot.end);
        if end.date() != start.date() {
            continue;
        }
        let secs = u32::try_from(slot.end.as_second() - slot.start.as_second()).unwrap_or(0);
        by_day
            .entry((slot.practitioner, start.date()))
            .or_default()
            .entry((ClockTime::of(start), ClockTime::of(end), secs))
            .or_default()
            .push(slot.reason);
    }
    let mut out = Vec::with_capacity(resources.len() * dates.len());
    for res in resources {
        for &date in dates {
            let mut ranges = Vec::new();
            if let Some(day) = by_day.get(&(res.practitioner.as_str(), date)) {
                for (&(start, end, secs), reasons) in day {
                    let mut type_ids: Vec<String> = reasons
                        .iter()
                        .filter_map(|r| type_id_for(types, r, &res.id))
                        .collect();
                    type_ids.sort();
                    type_ids.dedup();
                    if type_ids.is_empty() {
                        continue;
                    }
                    ranges.push(Range {
                        start,
                        end,
                        slot_length_secs: secs,
                        type_ids,
                    });
                }
            }
            ranges.sort();
            out.push(DayAvailability {
                resource: res.id.clone(),
                date,
                ranges,
            });
        }
    }
    out
}

/// The PMS practitioner, reason and duration a marketplace booking resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedBooking {
    /// The PMS practitioner id.
    pub practitioner: String,
    /// The PMS reason id.
    pub reason: String,
    /// The PMS rule's duration for that practitioner and reason, in minutes.
    pub duration_minutes: u32,
    /// Whether the default reason was used because the booking named no known type.
    pub used_default: bool,
}

/// Why a booking cannot be resolved to a practitioner and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ResolveError {
    /// The resource is not (or no longer) one of the practice's online practitioners.
    #[error("PMS resource {0:?} is not an online practitioner of this practice")]
    UnknownResource(String),
    /// The reason has no publishing rule for the practitioner.
    #[error("booking reason {reason:?} has no publishing rule for practitioner {practitioner:?}")]
    NoRule {
        /// The reason id.
        reason: String,
        /// The practitioner id.
        practitioner: String,
    },
    /// The practice has no booking reason at all.
    #[error("the practice has no booking reasons")]
    NoReasons,
}

/// Resolve a booking's `pmsResourceId` and `pmsAppointmentTypeId` to the PMS practitioner, reason
/// and the PMS rule's duration: the length the appointment is inserted with, whatever length the
/// marketplace sent. A missing or unknown type uses the default reason (the seed: the
/// "Healthengine" reason, else the marketing one, else the first).
///
/// ```
/// # use slotbridge_domain::publish::*;
/// # use slotbridge_domain::practice::*;
/// # let setup: PracticeSetup = serde_json::from_str(r#"{"site":"sdemo","name":"D",
/// #   "timezone":"Australia/Sydney","interval_minutes":15,"stacking":true,
/// #   "practitioners":[{"id":"1","first_name":"A","last_name":"B","specialties":["dentist"]}],
/// #   "online_booking":[{"practitioner":"1","duration_minutes":30}],
/// #   "reasons":[{"id":"R5","name":"Healthengine","marketing":true,
/// #     "providers":[{"practitioner":"1","duration_minutes":45}]}]}"#).unwrap();
/// let b = resolve_booking(&setup, "1", Some("R5")).unwrap();
/// assert_eq!((b.reason.as_str(), b.duration_minutes), ("R5", 45));
/// let d = resolve_booking(&setup, "1", None).unwrap();
/// assert!(d.used_default);
/// ```
pub fn resolve_booking(
    setup: &PracticeSetup,
    resource_id: &str,
    type_id: Option<&str>,
) -> Result<ResolvedBooking, ResolveError> {
    let practitioner = practitioner_of(resource_id);
    if !setup.publishes_online(practitioner) || setup.practitioner(practitioner).is_none() {
        return Err(ResolveError::UnknownResource(resource_id.to_owned()));
    }
    let named = type_id
        .map(|t| t.split(':').next().unwrap_or(t))
        .and_then(|reason_id| setup.reasons.iter().find(|r| r.id == reason_id));
    let (reason, used_default) = match named {
        Some(r) => (r, false),
        None => (setup.default_reason().ok_or(ResolveError::NoReasons)?, true),
    };
    let rule = reason
        .rule_for(practitioner)
        .ok_or_else(|| ResolveError::NoRule {
            reason: reason.id.clone(),
            practitioner: practitioner.to_owned(),
        })?;
    Ok(ResolvedBooking {
        practitioner: practitioner.to_owned(),
        reason: reason.id.clone(),
        duration_minutes: rule.duration_minutes,
        used_default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::compute_slots;
    use crate::practice::{
        Diary, IanaZone, OnlineBookingEntry, PmsPractitioner, PractitionerHours,
        ReasonProviderRule, SiteSlug, Weekday, WeeklyWindow, to_snapshot,
    };
    use jiff::civil::date;

    fn t(s: &str) -> ClockTime {
        s.parse().expect("time")
    }

    fn weekdays(start: &str, end: &str) -> WeeklyWindow {
        use Weekday::*;
        WeeklyWindow::new(vec![Mon, Tue, Wed, Thu, Fri], t(start), t(end))
    }

    #[test]
    fn opening_hours_are_the_merged_sessions_of_the_online_practitioners() {
        use Weekday::*;
        let mut setup = sample_setup_for_hours();
        let hours = vec![
            PractitionerHours {
                practitioner: "1001".into(),
                sessions: vec![
                    weekdays("08:00", "12:00"),
                    WeeklyWindow::new(vec![Mon], t("13:00"), t("17:00")),
                ],
                breaks: vec![],
            },
            PractitionerHours {
                practitioner: "1002".into(),
                sessions: vec![WeeklyWindow::new(vec![Mon, Sat], t("11:00"), t("13:00"))],
                breaks: vec![],
            },
            // Not online: not counted while an online practitioner has sessions.
            PractitionerHours {
                practitioner: "9".into(),
                sessions: vec![WeeklyWindow::new(vec![Sun], t("09:00"), t("10:00"))],
                breaks: vec![],
            },
        ];
        let open = opening_hours(&setup, &hours);
        assert_eq!(open[0], vec![(t("08:00"), t("17:00"))], "Monday merged");
        assert_eq!(open[1], vec![(t("08:00"), t("12:00"))]);
        assert_eq!(open[5], vec![(t("11:00"), t("13:00"))], "Saturday");
        assert!(open[6].is_empty(), "Sunday closed");

        // No online practitioner has a session: every practitioner's sessions count.
        setup.online_booking.clear();
        let open = opening_hours(&setup, &hours[2..]);
        assert_eq!(open[6], vec![(t("09:00"), t("10:00"))]);
        assert!(open[0].is_empty());

        // No session anywhere: open all day, every day.
        let open = opening_hours(&setup, &[]);
        assert!(
            open.iter()
                .all(|d| *d == vec![(ClockTime::MIDNIGHT, ClockTime::END_OF_DAY)])
        );
    }

    fn sample_setup_for_hours() -> PracticeSetup {
        PracticeSetup {
            site: SiteSlug::parse("sharbour").expect("slug"),
            name: "S".into(),
            timezone: IanaZone::parse("Australia/Sydney").expect("zone"),
            phone: String::new(),
            interval_minutes: 15,
            stacking: true,
            practitioners: vec![],
            online_booking: ["1001", "1002"]
                .iter()
                .map(|p| OnlineBookingEntry {
                    practitioner: (*p).into(),
                    duration_minutes: 30,
                })
                .collect(),
            reasons: vec![],
            online_rules: Default::default(),
        }
    }

    fn rule(p: &str, d: u32) -> ReasonProviderRule {
        ReasonProviderRule {
            practitioner: p.into(),
            duration_minutes: d,
            windows: vec![weekdays("08:00", "17:00")],
        }
    }

    fn setup() -> PracticeSetup {
        let p = |id: &str, first: &str, s: Vec<Specialty>| PmsPractitioner {
            id: id.into(),
            title: "Dr".into(),
            first_name: first.into(),
            last_name: "Chen".into(),
            specialties: s,
        };
        PracticeSetup {
            site: SiteSlug::parse("sharbour").expect("slug"),
            name: "Harbour".into(),
            timezone: IanaZone::parse("Australia/Sydney").expect("zone"),
            phone: String::new(),
            interval_minutes: 15,
            stacking: true,
            practitioners: vec![
                p("1001", "Mia", vec![Specialty::Dentist]),
                p(
                    "1002",
                    "Sam",
                    vec![Specialty::Hygienist, Specialty::OralHealthTherapist],
                ),
                p("1003", "Mia", vec![Specialty::Dentist]),
                p("1004", "Off", vec![Specialty::Dentist]),
            ],
            online_booking: ["1001", "1002", "1003"]
                .iter()
                .map(|id| OnlineBookingEntry {
                    practitioner: (*id).into(),
                    duration_minutes: 30,
                })
                .collect(),
            reasons: vec![
                PmsReason {
                    id: "R1".into(),
                    name: "Check-up".into(),
                    marketing: false,
                    providers: vec![rule("1001", 30), rule("1003", 30), rule("1004", 15)],
                },
                PmsReason {
                    id: "R5".into(),
                    name: "Healthengine".into(),
                    marketing: true,
                    providers: vec![rule("1001", 30), rule("1002", 60), rule("1003", 30)],
                },
                PmsReason {
                    id: "R9".into(),
                    name: "Offline only".into(),
                    marketing: false,
                    providers: vec![rule("1004", 30)],
                },
            ],
            online_rules: Default::default(),
        }
    }

    #[test]
    fn one_resource_per_practitioner_and_specialty_with_unique_names() {
        let r = resources(&setup());
        let ids: Vec<&str> = r.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1001", "1002:hygienist", "1002:oht", "1003"]);
        assert_eq!(r[1].name, "Dr Sam Chen (Hygienist)");
        assert_eq!(r[0].name, "Dr Mia Chen [1001]");
        assert_eq!(r[3].name, "Dr Mia Chen [1003]");
        let mut names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), r.len());
        assert!(r.iter().all(|r| practitioner_of(&r.id) == r.practitioner));
    }

    #[test]
    fn reasons_become_types_per_resource_only_where_durations_differ() {
        let s = setup();
        let res = resources(&s);
        let types = appointment_types(&s, &res);
        let ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
        // R1: online rules all 30 (1004 is not online) -> one shared type.
        // R5: 30 and 60 -> one per resource. R9: no online practitioner -> none.
        assert_eq!(
            ids,
            [
                "R1",
                "R5:1001",
                "R5:1002:hygienist",
                "R5:1002:oht",
                "R5:1003"
            ]
        );
        assert_eq!(types[0].resource, None);
        assert_eq!(types[0].length_minutes, 30);
        assert_eq!(types[2].length_minutes, 60);
        assert_eq!(types[2].resource.as_deref(), Some("1002:hygienist"));
        assert_eq!(types[2].name, "Healthengine - Dr Sam Chen (Hygienist)");
    }

    fn diary() -> Diary {
        Diary {
            hours: ["1001", "1002", "1003"]
                .iter()
                .map(|id| PractitionerHours {
                    practitioner: (*id).into(),
                    sessions: vec![weekdays("08:00", "17:00")],
                    breaks: vec![weekdays("12:30", "13:30")],
                })
                .collect(),
            ..Diary::default()
        }
    }

    #[test]
    fn availability_carries_exactly_the_engine_slots_and_empty_days() {
        let s = setup();
        let res = resources(&s);
        let types = appointment_types(&s, &res);
        // Thursday 2026-04-02 08:10 Sydney (+11:00), two days: Thu and Fri; plus Saturday (empty).
        let now: jiff::Timestamp = "2026-04-01T21:10:00Z".parse().expect("ts");
        let snap = to_snapshot(&s, &diary(), now, 3).validate().expect("valid");
        let slots = compute_slots(&snap);
        let dates = [date(2026, 4, 2), date(2026, 4, 3), date(2026, 4, 4)];
        let days = availability(&res, &types, &slots, &dates);
        assert_eq!(days.len(), res.len() * dates.len());
        let saturday = days
            .iter()
            .find(|d| d.resource == "1001" && d.date == dates[2])
            .expect("sat");
        assert!(saturday.ranges.is_empty(), "an empty day is still sent");

        let thu = days
            .iter()
            .find(|d| d.resource == "1001" && d.date == dates[0])
            .expect("thu");
        // First slot after now (08:10) on the 15-minute grid: 08:15.
        assert_eq!(thu.ranges[0].start, t("08:15"));
        assert_eq!(thu.ranges[0].end, t("08:45"));
        assert_eq!(thu.ranges[0].slot_length_secs, 1800);
        assert_eq!(thu.ranges[0].type_ids, ["R1", "R5:1001"]);
        // No range overlaps lunch.
        assert!(
            thu.ranges
                .iter()
                .all(|r| r.end <= t("12:30") || r.start >= t("13:30"))
        );
        // Every engine slot for 1001 appears once as a range.
        let n_1001 = slots
            .iter()
            .filter(|sl| sl.practitioner == "1001" && sl.reason == "R1")
            .count();
        let n_ranges: usize = days
            .iter()
            .filter(|d| d.resource == "1001")
            .map(|d| d.ranges.len())
            .sum();
        assert_eq!(n_1001, n_ranges);

        // Both resources of the two-specialty practitioner get the 60-minute slots.
        let hyg = days
            .iter()
            .find(|d| d.resource == "1002:hygienist" && d.date == dates[1])
            .expect("hyg");
        assert!(hyg.ranges.iter().all(|r| r.slot_length_secs == 3600));
        assert!(
            hyg.ranges
                .iter()
                .all(|r| r.type_ids == ["R5:1002:hygienist"])
        );
    }

    #[test]
    fn a_desk_booking_changes_only_its_resource_and_date() {
        let s = setup();
        let res = resources(&s);
        let types = appointment_types(&s, &res);
        let now: jiff::Timestamp = "2026-04-01T21:10:00Z".parse().expect("ts");
        let mut d = diary();
        let snap = to_snapshot(&s, &d, now, 2).validate().expect("valid");
        let dates = [date(2026, 4, 2), date(2026, 4, 3)];
        let before = availability(&res, &types, &compute_slots(&snap), &dates);
        let again = availability(&res, &types, &compute_slots(&snap), &dates);
        assert_eq!(before, again);
        // A desk booking on Friday for 1001 changes exactly that (resource, date).
        d.appointments.push(crate::practice::DiaryAppointment {
            id: "a1".into(),
            practitioner: "1001".into(),
            start: date(2026, 4, 3).at(9, 0, 0, 0),
            end: date(2026, 4, 3).at(9, 30, 0, 0),
            reason: None,
            patient: None,
            notes: String::new(),
            source: crate::practice::BookingSource::Desk,
            external_ref: None,
            attendance: crate::practice::Attendance::Booked,
        });
        let snap = to_snapshot(&s, &d, now, 2).validate().expect("valid");
        let after = availability(&res, &types, &compute_slots(&snap), &dates);
        let changed: Vec<(&str, Date)> = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| a != b)
            .map(|(_, b)| (b.resource.as_str(), b.date))
            .collect();
        assert_eq!(changed, [("1001", date(2026, 4, 3))]);
    }

    #[test]
    fn bookings_resolve_to_the_pms_rule_duration_and_default_reason() {
        let s = setup();
        let b = resolve_booking(&s, "1002:hygienist", Some("R5:1002:hygienist")).expect("ok");
        assert_eq!(b.practitioner, "1002");
        assert_eq!(b.reason, "R5");
        assert_eq!(b.duration_minutes, 60);
        assert!(!b.used_default);
        let d = resolve_booking(&s, "1003", Some("gone")).expect("default");
        assert_eq!((d.reason.as_str(), d.used_default), ("R5", true));
        assert_eq!(
            resolve_booking(&s, "1004", Some("R1")),
            Err(ResolveError::UnknownResource("1004".into()))
        );
        assert!(matches!(
            resolve_booking(&s, "1002:oht", Some("R1")),
            Err(ResolveError::NoRule { .. })
        ));
    }
}
