//! The control side, for tests and the demo (not part of Cliniko's API): create an account
//! from a [`PracticeSpec`], and act at the desk ([`DeskAction`]) as a receptionist would in
//! Cliniko's own screens. Served under `/_sim` as JSON, and callable in-process.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};

use crate::model::{
    Account, Appointment, AppointmentType, AvailabilityBlock, Business, CANCELLATION_REASONS,
    DailyAvailability, Interval, OnlineBookings, Patient, PhoneNumber, Practitioner,
    UnavailableBlock, User, World, zone_from_name,
};

/// A practice to create: one account with its businesses, appointment types, practitioners
/// (with their weekly availabilities) and patients. Practitioners name businesses and types by
/// their index in these lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PracticeSpec {
    pub name: String,
    /// The shard the account lives on (default `au1`).
    #[serde(default = "default_shard")]
    pub shard: String,
    /// An IANA zone (`Australia/Sydney`) or a Rails name (`Sydney`).
    pub time_zone: String,
    /// The API key without its shard suffix; made up when absent.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub online_bookings: OnlineBookings,
    #[serde(default = "default_timeslot")]
    pub timeslot_size_in_minutes: u32,
    pub businesses: Vec<BusinessSpec>,
    pub appointment_types: Vec<AppointmentTypeSpec>,
    pub practitioners: Vec<PractitionerSpec>,
    #[serde(default)]
    pub patients: Vec<PatientSpec>,
}

fn default_shard() -> String {
    "au1".to_owned()
}
fn default_timeslot() -> u32 {
    15
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusinessSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub show_in_online_bookings: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentTypeSpec {
    pub name: String,
    pub duration_in_minutes: u32,
    #[serde(default = "yes")]
    pub show_in_online_bookings: bool,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PractitionerSpec {
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub designation: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "yes")]
    pub show_in_online_bookings: bool,
    /// Indexes into [`PracticeSpec::businesses`].
    pub businesses: Vec<usize>,
    /// Indexes into [`PracticeSpec::appointment_types`].
    pub appointment_types: Vec<usize>,
    #[serde(default)]
    pub availabilities: Vec<WeeklySpec>,
}

/// A practitioner's availability on one weekday at one business.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeeklySpec {
    /// Index into [`PracticeSpec::businesses`].
    pub business: usize,
    /// ISO weekday: 1 Monday .. 7 Sunday.
    pub day_of_week: u8,
    /// `["09:00", "13:00"]` pairs.
    pub intervals: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatientSpec {
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub date_of_birth: Option<Date>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
}

/// What [`crate::ClinikoSim::seed`] created. Ids are as the API shows them (strings for
/// businesses, practitioners and types).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededPractice {
    pub account_id: u64,
    pub shard: String,
    /// The full API key, with its shard suffix (`...-au1`).
    pub api_key: String,
    pub business_ids: Vec<String>,
    pub practitioner_ids: Vec<String>,
    pub appointment_type_ids: Vec<String>,
    pub patient_ids: Vec<u64>,
}

/// Something the desk does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DeskAction {
    /// Book an individual appointment (the desk may double-book). Without `patient_id`, a
    /// new patient "Walk In" is created. Without `ends_at`, the type's duration.
    Book {
        business_id: u64,
        practitioner_id: u64,
        appointment_type_id: u64,
        #[serde(default)]
        patient_id: Option<u64>,
        starts_at: Timestamp,
        #[serde(default)]
        ends_at: Option<Timestamp>,
        #[serde(default)]
        notes: Option<String>,
    },
    /// Cancel an appointment with one of the documented reason codes.
    Cancel {
        appointment_id: u64,
        reason: u32,
    },
    /// Delete an appointment.
    Delete {
        appointment_id: u64,
    },
    /// Move an appointment (keeping its length unless `ends_at` is given).
    Move {
        appointment_id: u64,
        starts_at: Timestamp,
        #[serde(default)]
        ends_at: Option<Timestamp>,
    },
    /// Block time: an unavailable block.
    Block {
        business_id: u64,
        practitioner_id: u64,
        starts_at: Timestamp,
        ends_at: Timestamp,
    },
    /// Delete an unavailable block.
    Unblock {
        block_id: u64,
    },
    /// Open extra time: an availability block.
    OpenTime {
        business_id: u64,
        practitioner_id: u64,
        starts_at: Timestamp,
        ends_at: Timestamp,
    },
    /// Replace a practitioner's availability on a weekday at a business (empty: none).
    SetDailyAvailability {
        business_id: u64,
        practitioner_id: u64,
        day_of_week: u8,
        intervals: Vec<(String, String)>,
    },
    SetPractitioner {
        practitioner_id: u64,
        #[serde(default)]
        active: Option<bool>,
        #[serde(default)]
        show_in_online_bookings: Option<bool>,
    },
    SetAppointmentType {
        appointment_type_id: u64,
        #[serde(default)]
        duration_in_minutes: Option<u32>,
        #[serde(default)]
        show_in_online_bookings: Option<bool>,
        #[serde(default)]
        archived: Option<bool>,
    },
    SetBusiness {
        business_id: u64,
        show_in_online_bookings: bool,
    },
    SetOnlineBookings {
        online_bookings: OnlineBookings,
    },
    /// Archive a patient (or bring one back with `archived: false`).
    ArchivePatient {
        patient_id: u64,
        archived: bool,
    },
    /// Delete a patient: gone from the lists, listed under `/patients/deleted`.
    DeletePatient {
        patient_id: u64,
    },
}

/// What a desk action did: the id of what it created, if anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskOutcome {
    pub id: Option<u64>,
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no account {0}")]
    NoAccount(u64),
    #[error("no {kind} {id} in this account")]
    NotFound { kind: &'static str, id: u64 },
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ControlError {
    ControlError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Whether `s` is a shard the way the readme says to validate one: `\w{2}\d{1,2}`.
pub fn is_shard(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=4).contains(&b.len())
        && b[..2].iter().all(|c| c.is_ascii_alphabetic())
        && b[2..].iter().all(u8::is_ascii_digit)
}

fn hhmm(field: &str, s: &str) -> Result<Time, ControlError> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return Err(invalid(field, format!("expected HH:MM, found {s:?}")));
    }
    Time::strptime("%H:%M", s).map_err(|_| invalid(field, format!("expected HH:MM, found {s:?}")))
}

fn intervals(field: &str, pairs: &[(String, String)]) -> Result<Vec<Interval>, ControlError> {
    pairs
        .iter()
        .map(|(s, e)| {
            let (starts_at, ends_at) = (hhmm(field, s)?, hhmm(field, e)?);
            if ends_at <= starts_at {
                return Err(invalid(field, format!("{s}..{e} ends before it starts")));
            }
            Ok(Interval { starts_at, ends_at })
        })
        .collect()
}

fn weekday(field: &str, d: u8) -> Result<u8, ControlError> {
    if (1..=7).contains(&d) {
        Ok(d)
    } else {
        Err(invalid(
            field,
            format!("expected 1 (Monday) to 7, found {d}"),
        ))
    }
}

/// Create the account of `spec`.
pub(crate) fn seed(
    world: &mut World,
    spec: PracticeSpec,
    now: Timestamp,
) -> Result<SeededPractice, ControlError> {
    if !is_shard(&spec.shard) {
        return Err(invalid(
            "shard",
            "expected two letters and one or two digits",
        ));
    }
    let tz = zone_from_name(&spec.time_zone)
        .ok_or_else(|| invalid("time_zone", format!("unknown zone {:?}", spec.time_zone)))?;
    if spec.timeslot_size_in_minutes == 0 {
        return Err(invalid("timeslot_size_in_minutes", "must be positive"));
    }
    let account_id = world.next_account_id();
    let key = match spec.api_key {
        Some(k) => {
            if k.is_empty() || k.contains(['-', ':']) {
                return Err(invalid("api_key", "must be non-empty without '-' or ':'"));
            }
            k
        }
        None => format!(
            "MS0{account_id:04}{:016x}",
            now.as_nanosecond() as u64 ^ 0x5eed
        ),
    };
    if world.keys.contains_key(&key) {
        return Err(invalid("api_key", "already in use"));
    }
    let mut acct = Account::new(account_id, spec.name.clone(), spec.shard.clone(), tz);
    acct.online_bookings = spec.online_bookings;
    acct.timeslot_size_in_minutes = spec.timeslot_size_in_minutes;
    let user_id = acct.small_id();
    acct.users.push(User {
        id: user_id,
        first_name: "Practice".to_owned(),
        last_name: "Manager".to_owned(),
        email: format!("manager{account_id}@example.com"),
        created_at: now,
        updated_at: now,
    });
    let business_ids: Vec<u64> = spec
        .businesses
        .iter()
        .map(|b| {
            let id = acct.big_id();
            acct.businesses.push(Business {
                id,
                business_name: b.name.clone(),
                show_in_online_bookings: b.show_in_online_bookings,
                created_at: now,
                updated_at: now,
            });
            id
        })
        .collect();
    let mut type_ids = Vec::new();
    for (i, t) in spec.appointment_types.iter().enumerate() {
        if t.duration_in_minutes == 0 {
            return Err(invalid(
                format!("appointment_types[{i}].duration_in_minutes"),
                "must be positive",
            ));
        }
        let id = acct.big_id();
        acct.appointment_types.push(AppointmentType {
            id,
            name: t.name.clone(),
            category: t.category.clone(),
            color: "#3AA0FF".to_owned(),
            description: None,
            duration_in_minutes: t.duration_in_minutes,
            max_attendees: 1,
            show_in_online_bookings: t.show_in_online_bookings,
            archived_at: None,
            created_at: now,
            updated_at: now,
        });
        type_ids.push(id);
    }
    let mut practitioner_ids = Vec::new();
    for (i, p) in spec.practitioners.iter().enumerate() {
        let pick = |list: &[usize], ids: &[u64], what: &str| -> Result<Vec<u64>, ControlError> {
            list.iter()
                .map(|&j| {
                    ids.get(j).copied().ok_or_else(|| {
                        invalid(
                            format!("practitioners[{i}].{what}"),
                            format!("no index {j}"),
                        )
                    })
                })
                .collect()
        };
        let businesses = pick(&p.businesses, &business_ids, "businesses")?;
        let types = pick(&p.appointment_types, &type_ids, "appointment_types")?;
        let id = acct.big_id();
        let puser = acct.small_id();
        acct.users.push(User {
            id: puser,
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            email: format!("user{puser}.{account_id}@example.com"),
            created_at: now,
            updated_at: now,
        });
        acct.practitioners.push(Practitioner {
            id,
            user_id: puser,
            title: p.title.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            designation: p.designation.clone(),
            active: p.active,
            show_in_online_bookings: p.show_in_online_bookings,
            business_ids: businesses,
            appointment_type_ids: types,
            created_at: now,
            updated_at: now,
        });
        for (k, w) in p.availabilities.iter().enumerate() {
            let field = format!("practitioners[{i}].availabilities[{k}]");
            let business = *business_ids
                .get(w.business)
                .ok_or_else(|| invalid(&field, format!("no business index {}", w.business)))?;
            let day_of_week = weekday(&field, w.day_of_week)?;
            let availabilities = intervals(&field, &w.intervals)?;
            let da_id = acct.small_id();
            acct.daily_availabilities.push(DailyAvailability {
                id: da_id,
                business_id: business,
                practitioner_id: id,
                day_of_week,
                availabilities,
                created_at: now,
                updated_at: now,
            });
        }
        practitioner_ids.push(id);
    }
    let mut patient_ids = Vec::new();
    for p in &spec.patients {
        let id = new_patient(&mut acct, p, now);
        patient_ids.push(id);
    }
    let shard = spec.shard.clone();
    world.keys.insert(key.clone(), (account_id, user_id));
    world.accounts.insert(account_id, acct);
    Ok(SeededPractice {
        account_id,
        api_key: format!("{key}-{shard}"),
        shard,
        business_ids: business_ids.iter().map(u64::to_string).collect(),
        practitioner_ids: practitioner_ids.iter().map(u64::to_string).collect(),
        appointment_type_ids: type_ids.iter().map(u64::to_string).collect(),
        patient_ids,
    })
}

pub(crate) fn new_patient(acct: &mut Account, p: &PatientSpec, now: Timestamp) -> u64 {
    let id = acct.small_id();
    acct.patients.push(Patient {
        id,
        title: String::new(),
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        preferred_first_name: None,
        date_of_birth: p.date_of_birth,
        email: p.email.clone(),
        phone_numbers: p
            .mobile
            .iter()
            .map(|n| PhoneNumber {
                phone_type: "Mobile".to_owned(),
                number: n.clone(),
            })
            .collect(),
        address_1: String::new(),
        city: String::new(),
        state: String::new(),
        post_code: String::new(),
        country: String::new(),
        notes: String::new(),
        appointment_notes: String::new(),
        old_reference_id: String::new(),
        time_zone: None,
        archived_at: None,
        deleted_at: None,
        created_at: now,
        updated_at: now,
    });
    id
}

/// Do `action` at the desk of `account`.
pub(crate) fn desk(
    world: &mut World,
    account: u64,
    action: DeskAction,
    now: Timestamp,
) -> Result<DeskOutcome, ControlError> {
    let acct = world
        .accounts
        .get_mut(&account)
        .ok_or(ControlError::NoAccount(account))?;
    let nf = |kind, id| ControlError::NotFound { kind, id };
    let none = DeskOutcome { id: None };
    match action {
        DeskAction::Book {
            business_id,
            practitioner_id,
            appointment_type_id,
            patient_id,
            starts_at,
            ends_at,
            notes,
        } => {
            acct.business(business_id)
                .ok_or(nf("business", business_id))?;
            acct.practitioner(practitioner_id)
                .ok_or(nf("practitioner", practitioner_id))?;
            let t = acct
                .appointment_type(appointment_type_id)
                .ok_or(nf("appointment type", appointment_type_id))?;
            let ends_at = match ends_at {
                Some(e) => e,
                None => starts_at
                    .checked_add(jiff::SignedDuration::from_mins(i64::from(
                        t.duration_in_minutes,
                    )))
                    .map_err(|_| invalid("starts_at", "out of range"))?,
            };
            if ends_at <= starts_at {
                return Err(invalid("ends_at", "must be after starts_at"));
            }
            let patient_id = match patient_id {
                Some(p) => {
                    acct.patient(p).ok_or(nf("patient", p))?;
                    p
                }
                None => new_patient(
                    acct,
                    &PatientSpec {
                        first_name: "Walk".to_owned(),
                        last_name: "In".to_owned(),
                        date_of_birth: None,
                        email: None,
                        mobile: None,
                    },
                    now,
                ),
            };
            let id = acct.small_id();
            acct.appointments.push(Appointment {
                id,
                business_id,
                practitioner_id,
                appointment_type_id,
                patient_id,
                starts_at,
                ends_at,
                notes,
                booking_ip_address: None,
                cancelled_at: None,
                cancellation_reason: None,
                cancellation_note: None,
                deleted_at: None,
                created_at: now,
                updated_at: now,
            });
            Ok(DeskOutcome { id: Some(id) })
        }
        DeskAction::Cancel {
            appointment_id,
            reason,
        } => {
            if !CANCELLATION_REASONS.contains(&reason) {
                return Err(invalid("reason", format!("{reason} is not a reason code")));
            }
            let a = acct
                .appointments
                .iter_mut()
                .find(|a| a.id == appointment_id)
                .ok_or(nf("appointment", appointment_id))?;
            a.cancelled_at = Some(now);
            a.cancellation_reason = Some(reason);
            a.updated_at = now;
            Ok(none)
        }
        DeskAction::Delete { appointment_id } => {
            let a = acct
                .appointments
                .iter_mut()
                .find(|a| a.id == appointment_id)
                .ok_or(nf("appointment", appointment_id))?;
            a.deleted_at = Some(now);
            a.updated_at = now;
            Ok(none)
        }
        DeskAction::Move {
            appointment_id,
            starts_at,
            ends_at,
        } => {
            let a = acct
                .appointments
                .iter_mut()
                .find(|a| a.id == appointment_id)
                .ok_or(nf("appointment", appointment_id))?;
            let len = a.ends_at.duration_since(a.starts_at);
            let ends_at = match ends_at {
                Some(e) => e,
                None => starts_at
                    .checked_add(len)
                    .map_err(|_| invalid("starts_at", "out of range"))?,
            };
            if ends_at <= starts_at {
                return Err(invalid("ends_at", "must be after starts_at"));
            }
            a.starts_at = starts_at;
            a.ends_at = ends_at;
            a.updated_at = now;
            Ok(none)
        }
        DeskAction::Block {
            business_id,
            practitioner_id,
            starts_at,
            ends_at,
        } => {
            acct.business(business_id)
                .ok_or(nf("business", business_id))?;
            acct.practitioner(practitioner_id)
                .ok_or(nf("practitioner", practitioner_id))?;
            if ends_at <= starts_at {
                return Err(invalid("ends_at", "must be after starts_at"));
            }
            let id = acct.small_id();
            acct.unavailable_blocks.push(UnavailableBlock {
                id,
                business_id,
                practitioner_id,
                starts_at,
                ends_at,
                notes: None,
                deleted_at: None,
                created_at: now,
                updated_at: now,
            });
            Ok(DeskOutcome { id: Some(id) })
        }
        DeskAction::Unblock { block_id } => {
            let b = acct
                .unavailable_blocks
                .iter_mut()
                .find(|b| b.id == block_id)
                .ok_or(nf("unavailable block", block_id))?;
            b.deleted_at = Some(now);
            b.updated_at = now;
            Ok(none)
        }
        DeskAction::OpenTime {
            business_id,
            practitioner_id,
            starts_at,
            ends_at,
        } => {
            acct.business(business_id)
                .ok_or(nf("business", business_id))?;
            acct.practitioner(practitioner_id)
                .ok_or(nf("practitioner", practitioner_id))?;
            if ends_at <= starts_at {
                return Err(invalid("ends_at", "must be after starts_at"));
            }
            let id = acct.small_id();
            acct.availability_blocks.push(AvailabilityBlock {
                id,
                business_id,
                practitioner_id,
                starts_at,
                ends_at,
                created_at: now,
                updated_at: now,
            });
            Ok(DeskOutcome { id: Some(id) })
        }
        DeskAction::SetDailyAvailability {
            business_id,
            practitioner_id,
            day_of_week,
            intervals: pairs,
        } => {
            acct.business(business_id)
                .ok_or(nf("business", business_id))?;
            acct.practitioner(practitioner_id)
                .ok_or(nf("practitioner", practitioner_id))?;
            let day_of_week = weekday("day_of_week", day_of_week)?;
            let availabilities = intervals("intervals", &pairs)?;
            let existing = acct.daily_availabilities.iter_mut().find(|d| {
                d.business_id == business_id
                    && d.practitioner_id == practitioner_id
                    && d.day_of_week == day_of_week
            });
            match (existing, availabilities.is_empty()) {
                (Some(d), false) => {
                    d.availabilities = availabilities;
                    d.updated_at = now;
                    Ok(DeskOutcome { id: Some(d.id) })
                }
                (Some(d), true) => {
                    let gone = d.id;
                    acct.daily_availabilities.retain(|d| d.id != gone);
                    Ok(none)
                }
                (None, false) => {
                    let id = acct.small_id();
                    acct.daily_availabilities.push(DailyAvailability {
                        id,
                        business_id,
                        practitioner_id,
                        day_of_week,
                        availabilities,
                        created_at: now,
                        updated_at: now,
                    });
                    Ok(DeskOutcome { id: Some(id) })
                }
                (None, true) => Ok(none),
            }
        }
        DeskAction::SetPractitioner {
            practitioner_id,
            active,
            show_in_online_bookings,
        } => {
            let p = acct
                .practitioners
                .iter_mut()
                .find(|p| p.id == practitioner_id)
                .ok_or(nf("practitioner", practitioner_id))?;
            if let Some(a) = active {
                p.active = a;
            }
            if let Some(s) = show_in_online_bookings {
                p.show_in_online_bookings = s;
            }
            p.updated_at = now;
            Ok(none)
        }
        DeskAction::SetAppointmentType {
            appointment_type_id,
            duration_in_minutes,
            show_in_online_bookings,
            archived,
        } => {
            let t = acct
                .appointment_types
                .iter_mut()
                .find(|t| t.id == appointment_type_id)
                .ok_or(nf("appointment type", appointment_type_id))?;
            if let Some(d) = duration_in_minutes {
                if d == 0 {
                    return Err(invalid("duration_in_minutes", "must be positive"));
                }
                t.duration_in_minutes = d;
            }
            if let Some(s) = show_in_online_bookings {
                t.show_in_online_bookings = s;
            }
            if let Some(a) = archived {
                t.archived_at = a.then_some(now);
            }
            t.updated_at = now;
            Ok(none)
        }
        DeskAction::SetBusiness {
            business_id,
            show_in_online_bookings,
        } => {
            let b = acct
                .businesses
                .iter_mut()
                .find(|b| b.id == business_id)
                .ok_or(nf("business", business_id))?;
            b.show_in_online_bookings = show_in_online_bookings;
            b.updated_at = now;
            Ok(none)
        }
        DeskAction::SetOnlineBookings { online_bookings } => {
            acct.online_bookings = online_bookings;
            Ok(none)
        }
        DeskAction::ArchivePatient {
            patient_id,
            archived,
        } => {
            let p = acct
                .patients
                .iter_mut()
                .find(|p| p.id == patient_id)
                .ok_or(nf("patient", patient_id))?;
            p.archived_at = archived.then_some(now);
            p.updated_at = now;
            Ok(none)
        }
        DeskAction::DeletePatient { patient_id } => {
            let p = acct
                .patients
                .iter_mut()
                .find(|p| p.id == patient_id)
                .ok_or(nf("patient", patient_id))?;
            p.deleted_at = Some(now);
            p.updated_at = now;
            Ok(none)
        }
    }
}
