//! The simulator's data: accounts (one Cliniko account each, living on one shard), their
//! businesses, practitioners, appointment types, availabilities, blocks, patients and
//! individual appointments. Plain data, no HTTP: the API renders it (`wire`), filters it
//! (`query`) and computes available times from it (`availability`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The documented cancellation reason codes (individual appointments, "Cancel").
pub const CANCELLATION_REASONS: [u32; 7] = [10, 20, 30, 31, 40, 50, 60];

/// The online-booking settings that shape available times (settings `online_bookings`, and
/// the available-times page's "extra information").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnlineBookings {
    /// Online bookings switched on for the account.
    pub enabled: bool,
    /// At most this many available times per day segment (morning, afternoon, evening);
    /// `None` is "unlimited".
    pub max_appointments_per_day_segment: Option<u32>,
    /// A time is shown only this many hours from now or later.
    pub min_hours_advance_required_to_book: u32,
    /// How far ahead times are offered, in days (28, 84, 182 or 365). The settings resource
    /// documents no field for it, so it is not rendered there.
    pub max_days_in_advance: u32,
}

impl Default for OnlineBookings {
    fn default() -> Self {
        OnlineBookings {
            enabled: true,
            max_appointments_per_day_segment: None,
            min_hours_advance_required_to_book: 0,
            max_days_in_advance: 365,
        }
    }
}

/// One Cliniko account.
#[derive(Debug, Clone)]
pub struct Account {
    /// The simulator's own id of the account (control API only).
    pub id: u64,
    /// `settings.account.name`.
    pub name: String,
    /// The shard the account lives on (`au1`, `uk1`, ...).
    pub shard: String,
    /// The account's time zone: every date of the available times is a date here.
    pub time_zone: TimeZone,
    /// `settings.calendar.timeslot_size_in_minutes`: the step of available times.
    pub timeslot_size_in_minutes: u32,
    pub online_bookings: OnlineBookings,
    pub users: Vec<User>,
    pub businesses: Vec<Business>,
    pub practitioners: Vec<Practitioner>,
    pub appointment_types: Vec<AppointmentType>,
    pub daily_availabilities: Vec<DailyAvailability>,
    pub availability_blocks: Vec<AvailabilityBlock>,
    pub unavailable_blocks: Vec<UnavailableBlock>,
    pub patients: Vec<Patient>,
    pub appointments: Vec<Appointment>,
    next_id: u64,
    next_big_id: u64,
}

/// A user (API keys belong to users; the rate limit counts per user).
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Business {
    pub id: u64,
    pub business_name: String,
    pub show_in_online_bookings: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Practitioner {
    pub id: u64,
    pub user_id: u64,
    pub title: String,
    pub first_name: String,
    pub last_name: String,
    pub designation: String,
    pub active: bool,
    pub show_in_online_bookings: bool,
    /// The businesses the practitioner works at.
    pub business_ids: Vec<u64>,
    /// The appointment types the practitioner offers.
    pub appointment_type_ids: Vec<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct AppointmentType {
    pub id: u64,
    pub name: String,
    pub category: Option<String>,
    pub color: String,
    pub description: Option<String>,
    pub duration_in_minutes: u32,
    pub max_attendees: u32,
    pub show_in_online_bookings: bool,
    pub archived_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A local-time interval of a daily availability (`"09:00"`..`"13:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub starts_at: Time,
    pub ends_at: Time,
}

#[derive(Debug, Clone)]
pub struct DailyAvailability {
    pub id: u64,
    pub business_id: u64,
    pub practitioner_id: u64,
    /// ISO day of week: 1 is Monday, 7 Sunday.
    pub day_of_week: u8,
    pub availabilities: Vec<Interval>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An extra, one-off availability of a practitioner at a business.
#[derive(Debug, Clone)]
pub struct AvailabilityBlock {
    pub id: u64,
    pub business_id: u64,
    pub practitioner_id: u64,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct UnavailableBlock {
    pub id: u64,
    pub business_id: u64,
    pub practitioner_id: u64,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub notes: Option<String>,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    pub phone_type: String,
    pub number: String,
}

#[derive(Debug, Clone)]
pub struct Patient {
    pub id: u64,
    pub title: String,
    pub first_name: String,
    pub last_name: String,
    pub preferred_first_name: Option<String>,
    pub date_of_birth: Option<Date>,
    pub email: Option<String>,
    pub phone_numbers: Vec<PhoneNumber>,
    pub address_1: String,
    pub city: String,
    pub state: String,
    pub post_code: String,
    pub country: String,
    pub notes: String,
    pub appointment_notes: String,
    pub old_reference_id: String,
    pub time_zone: Option<String>,
    pub archived_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Appointment {
    pub id: u64,
    pub business_id: u64,
    pub practitioner_id: u64,
    pub appointment_type_id: u64,
    pub patient_id: u64,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub notes: Option<String>,
    pub booking_ip_address: Option<String>,
    pub cancelled_at: Option<Timestamp>,
    pub cancellation_reason: Option<u32>,
    pub cancellation_note: Option<String>,
    /// Deleted (the docs' "archived"): gone from the lists, listed under `/deleted`.
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Appointment {
    /// In the diary: neither cancelled nor deleted.
    pub fn is_live(&self) -> bool {
        self.cancelled_at.is_none() && self.deleted_at.is_none()
    }
}

/// The description of a cancellation reason code, as the API renders it.
pub fn cancellation_reason_description(code: Option<u32>) -> &'static str {
    match code {
        Some(10) => "Feeling better",
        Some(20) => "Condition worse",
        Some(30) => "Sick",
        Some(31) => "COVID-19 related",
        Some(40) => "Away",
        Some(50) => "Other",
        Some(60) => "Work",
        _ => "",
    }
}

impl Account {
    /// An empty account on `shard` in `time_zone`.
    pub fn new(id: u64, name: String, shard: String, time_zone: TimeZone) -> Self {
        Account {
            id,
            name,
            shard,
            time_zone,
            timeslot_size_in_minutes: 15,
            online_bookings: OnlineBookings::default(),
            users: Vec::new(),
            businesses: Vec::new(),
            practitioners: Vec::new(),
            appointment_types: Vec::new(),
            daily_availabilities: Vec::new(),
            availability_blocks: Vec::new(),
            unavailable_blocks: Vec::new(),
            patients: Vec::new(),
            appointments: Vec::new(),
            next_id: 1,
            // The documentation shows the ids of businesses, practitioners and appointment
            // types as large numbers in strings; the simulator gives them ids of that size.
            next_big_id: 514_810_970_000_000_000 + id * 1_000_000,
        }
    }

    /// A fresh small id (rendered as a JSON number).
    pub fn small_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A fresh large id (rendered as a JSON string).
    pub fn big_id(&mut self) -> u64 {
        let id = self.next_big_id;
        self.next_big_id += 1;
        id
    }

    pub fn business(&self, id: u64) -> Option<&Business> {
        self.businesses.iter().find(|b| b.id == id)
    }

    pub fn practitioner(&self, id: u64) -> Option<&Practitioner> {
        self.practitioners.iter().find(|p| p.id == id)
    }

    pub fn appointment_type(&self, id: u64) -> Option<&AppointmentType> {
        self.appointment_types.iter().find(|t| t.id == id)
    }

    pub fn patient(&self, id: u64) -> Option<&Patient> {
        self.patients.iter().find(|p| p.id == id)
    }

    pub fn appointment(&self, id: u64) -> Option<&Appointment> {
        self.appointments.iter().find(|a| a.id == id)
    }

    /// Whether an individual appointment overlaps another live appointment or a live
    /// unavailable block of the same practitioner (the `conflicts` resource).
    pub fn appointment_conflicts(&self, a: &Appointment) -> bool {
        let others = self.appointments.iter().any(|o| {
            o.id != a.id
                && o.is_live()
                && o.practitioner_id == a.practitioner_id
                && o.starts_at < a.ends_at
                && a.starts_at < o.ends_at
        });
        others || self.blocks_overlap(a.practitioner_id, a.starts_at, a.ends_at, None)
    }

    /// Whether an unavailable block overlaps a live appointment or another live block.
    pub fn block_conflicts(&self, b: &UnavailableBlock) -> bool {
        let appts = self.appointments.iter().any(|o| {
            o.is_live()
                && o.practitioner_id == b.practitioner_id
                && o.starts_at < b.ends_at
                && b.starts_at < o.ends_at
        });
        appts || self.blocks_overlap(b.practitioner_id, b.starts_at, b.ends_at, Some(b.id))
    }

    fn blocks_overlap(
        &self,
        practitioner: u64,
        starts: Timestamp,
        ends: Timestamp,
        except: Option<u64>,
    ) -> bool {
        self.unavailable_blocks.iter().any(|o| {
            Some(o.id) != except
                && o.deleted_at.is_none()
                && o.practitioner_id == practitioner
                && o.starts_at < ends
                && starts < o.ends_at
        })
    }

    /// The account's time zone as `settings` and `user` render it: Cliniko shows Rails-style
    /// names ("Melbourne", "Eastern Time (US & Canada)"); a zone without one is shown by its
    /// IANA name.
    pub fn time_zone_name(&self) -> String {
        let iana = self.time_zone.iana_name().unwrap_or("UTC");
        rails_zone_name(iana).map_or_else(|| iana.to_owned(), str::to_owned)
    }
}

/// Rails' names of the IANA zones the simulator is likely to meet.
const RAILS_ZONES: &[(&str, &str)] = &[
    ("Adelaide", "Australia/Adelaide"),
    ("Brisbane", "Australia/Brisbane"),
    ("Canberra", "Australia/Canberra"),
    ("Darwin", "Australia/Darwin"),
    ("Hobart", "Australia/Hobart"),
    ("Melbourne", "Australia/Melbourne"),
    ("Perth", "Australia/Perth"),
    ("Sydney", "Australia/Sydney"),
    ("Auckland", "Pacific/Auckland"),
    ("London", "Europe/London"),
    ("Dublin", "Europe/Dublin"),
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Central Time (US & Canada)", "America/Chicago"),
    ("Pacific Time (US & Canada)", "America/Los_Angeles"),
    ("UTC", "Etc/UTC"),
];

/// The Rails name of an IANA zone, if it has one here.
pub fn rails_zone_name(iana: &str) -> Option<&'static str> {
    RAILS_ZONES
        .iter()
        .find(|(_, z)| *z == iana)
        .map(|(name, _)| *name)
}

/// The IANA zone of a Rails name or an IANA name.
pub fn zone_from_name(name: &str) -> Option<TimeZone> {
    let iana = RAILS_ZONES
        .iter()
        .find(|(rails, _)| *rails == name)
        .map_or(name, |(_, z)| *z);
    TimeZone::get(iana).ok()
}

/// Every account, and which API key opens which.
#[derive(Debug, Default)]
pub struct World {
    pub accounts: BTreeMap<u64, Account>,
    /// API key without its shard suffix -> (account id, user id).
    pub keys: BTreeMap<String, (u64, u64)>,
    next_account: u64,
}

impl World {
    /// A fresh account id.
    pub fn next_account_id(&mut self) -> u64 {
        self.next_account += 1;
        self.next_account
    }
}
