//! The JSON the API answers, written from the documentation's example responses: the field
//! names, which ids are strings (businesses, practitioners, appointment types) and which are
//! numbers (everything else), timestamps in UTC with a `Z`, and the `links` objects that point
//! at related resources.
//!
//! Also each resource's filter fields (its "Filtering" list), as [`query::Record`] impls.

use jiff::Timestamp;
use serde_json::{Value as Json, json};

use crate::model::{
    Account, Appointment, AppointmentType, AvailabilityBlock, Business, DailyAvailability, Patient,
    Practitioner, UnavailableBlock, User, cancellation_reason_description,
};
use crate::query::{Kind, Record, Value};

/// Where the links of an answer point: the API base the request came in on, with `/v1`
/// (`http://127.0.0.1:PORT/au1/v1`).
#[derive(Debug, Clone)]
pub struct Urls {
    pub base: String,
}

impl Urls {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn link(&self, path: &str) -> Json {
        json!({ "links": { "self": self.url(path) } })
    }
}

/// A timestamp as the API writes it: UTC, whole seconds, `Z`.
pub fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn opt_ts(t: Option<Timestamp>) -> Json {
    t.map_or(Json::Null, |t| Json::String(ts(t)))
}

pub fn business(u: &Urls, b: &Business) -> Json {
    let id = b.id;
    json!({
        "address_1": "20 Harbour Street",
        "address_2": null,
        "business_name": b.business_name,
        "business_registration_name": "ABN",
        "business_registration_value": "51824753556",
        "city": "Sydney",
        "contact_information": "Phone: 02 9999 9999",
        "country": "Australia",
        "country_code": "AU",
        "created_at": ts(b.created_at),
        "display_name": null,
        "email_reply_to": "reception@example.com",
        "id": id.to_string(),
        "post_code": "2000",
        "show_in_online_bookings": b.show_in_online_bookings,
        "state": "New South Wales",
        "updated_at": ts(b.updated_at),
        "website_address": "https://example.com",
        "practitioners": u.link(&format!("/businesses/{id}/practitioners")),
        "appointments": u.link(&format!("/businesses/{id}/appointments?page=1")),
        "links": { "self": u.url(&format!("/businesses/{id}")) },
    })
}

pub fn practitioner(u: &Urls, p: &Practitioner) -> Json {
    let id = p.id;
    let default_type = p
        .appointment_type_ids
        .first()
        .map_or(Json::Null, |t| u.link(&format!("/appointment_types/{t}")));
    json!({
        "created_at": ts(p.created_at),
        "designation": p.designation,
        "description": null,
        "first_name": p.first_name,
        "id": id.to_string(),
        "last_name": p.last_name,
        "show_in_online_bookings": p.show_in_online_bookings,
        "title": p.title,
        "label": format!("{} {}", p.first_name, p.last_name),
        "updated_at": ts(p.updated_at),
        "default_appointment_type": default_type,
        "practitioner_reference_numbers":
            u.link(&format!("/practitioners/{id}/practitioner_reference_numbers?page=1")),
        "user": u.link(&format!("/users/{}", p.user_id)),
        "appointments": u.link(&format!("/practitioners/{id}/appointments?page=1")),
        "invoices": u.link(&format!("/practitioners/{id}/invoices?page=1")),
        "links": { "self": u.url(&format!("/practitioners/{id}")) },
    })
}

pub fn appointment_type(u: &Urls, t: &AppointmentType) -> Json {
    let id = t.id;
    let mut v = json!({
        "id": id.to_string(),
        "category": t.category,
        "color": t.color,
        "created_at": ts(t.created_at),
        "duration_in_minutes": t.duration_in_minutes,
        "name": t.name,
        "description": t.description,
        "max_attendees": t.max_attendees,
        "show_in_online_bookings": t.show_in_online_bookings,
        "updated_at": ts(t.updated_at),
        "billable_item": u.link(&format!("/billable_items/{id}")),
        "product": u.link(&format!("/products/{id}")),
        "practitioners": u.link(&format!("/appointment_types/{id}/practitioners")),
        "treatment_note_template": u.link(&format!("/treatment_note_templates/{id}")),
        "links": { "self": u.url(&format!("/appointment_types/{id}")) },
    });
    if let Some(at) = t.archived_at {
        v["archived_at"] = Json::String(ts(at));
    }
    v
}

pub fn daily_availability(u: &Urls, d: &DailyAvailability) -> Json {
    let windows: Vec<Json> = d
        .availabilities
        .iter()
        .map(|i| {
            json!({
                "starts_at": i.starts_at.strftime("%H:%M").to_string(),
                "ends_at": i.ends_at.strftime("%H:%M").to_string(),
            })
        })
        .collect();
    json!({
        "id": d.id,
        "created_at": ts(d.created_at),
        "updated_at": ts(d.updated_at),
        "availabilities": windows,
        "day_of_week": d.day_of_week,
        "business": u.link(&format!("/businesses/{}", d.business_id)),
        "practitioner": u.link(&format!("/practitioners/{}", d.practitioner_id)),
        "links": { "self": u.url(&format!("/daily_availabilities/{}", d.id)) },
    })
}

pub fn availability_block(u: &Urls, b: &AvailabilityBlock) -> Json {
    json!({
        "id": b.id,
        "created_at": ts(b.created_at),
        "updated_at": ts(b.updated_at),
        "repeat_rule": {},
        "starts_at": ts(b.starts_at),
        "ends_at": ts(b.ends_at),
        "business": u.link(&format!("/businesses/{}", b.business_id)),
        "practitioner": u.link(&format!("/practitioners/{}", b.practitioner_id)),
        "links": { "self": u.url(&format!("/availability_blocks/{}", b.id)) },
    })
}

/// An unavailable block; `self_path` is `/unavailable_blocks/ID` or `/bookings/ID`.
pub fn unavailable_block(u: &Urls, b: &UnavailableBlock, self_path: &str) -> Json {
    json!({
        "id": b.id,
        "created_at": ts(b.created_at),
        "updated_at": ts(b.updated_at),
        "conflicts": u.link(&format!("/unavailable_blocks/{}/conflicts", b.id)),
        "notes": b.notes,
        "repeat_rule": {},
        "repeats": null,
        "deleted_at": opt_ts(b.deleted_at),
        "starts_at": ts(b.starts_at),
        "ends_at": ts(b.ends_at),
        "business": u.link(&format!("/businesses/{}", b.business_id)),
        "practitioner": u.link(&format!("/practitioners/{}", b.practitioner_id)),
        "links": { "self": u.url(self_path) },
    })
}

/// An individual appointment; `self_path` is `/individual_appointments/ID` or `/bookings/ID`.
pub fn appointment(u: &Urls, acct: &Account, a: &Appointment, self_path: &str) -> Json {
    let id = a.id;
    let patient_name = acct
        .patient(a.patient_id)
        .map(|p| format!("{} {}", p.first_name, p.last_name))
        .unwrap_or_default();
    json!({
        "id": id,
        "created_at": ts(a.created_at),
        "updated_at": ts(a.updated_at),
        "booking_ip_address": a.booking_ip_address,
        "cancellation_note": a.cancellation_note,
        "cancellation_reason": a.cancellation_reason,
        "cancellation_reason_description": cancellation_reason_description(a.cancellation_reason),
        "conflicts": u.link(&format!("/individual_appointments/{id}/conflicts")),
        "did_not_arrive": false,
        "email_reminder_sent": false,
        "invoice_status": null,
        "notes": a.notes,
        "online_booking_policy_accepted": null,
        "patient_arrived": false,
        "patient_name": patient_name,
        "repeat_rule": {},
        "repeats": null,
        "sms_reminder_sent": false,
        "treatment_note_status": null,
        "deleted_at": opt_ts(a.deleted_at),
        "starts_at": ts(a.starts_at),
        "ends_at": ts(a.ends_at),
        "cancelled_at": opt_ts(a.cancelled_at),
        "appointment_type": u.link(&format!("/appointment_types/{}", a.appointment_type_id)),
        "business": u.link(&format!("/businesses/{}", a.business_id)),
        "practitioner": u.link(&format!("/practitioners/{}", a.practitioner_id)),
        "patient": u.link(&format!("/patients/{}", a.patient_id)),
        "attendees": u.link(&format!("/individual_appointments/{id}/attendees")),
        "links": { "self": u.url(self_path) },
    })
}

pub fn patient(u: &Urls, p: &Patient) -> Json {
    let mut v = patient_fields(u, p);
    // Archived patients carry what they were merged into (nothing, here: the simulator does
    // not merge patients), as the archived example shows.
    if p.archived_at.is_some() {
        v["merged_at"] = Json::Null;
        v["merged_with_patient"] = Json::Null;
    }
    v
}

fn patient_fields(u: &Urls, p: &Patient) -> Json {
    let id = p.id;
    json!({
        "accepted_privacy_policy": null,
        "accepted_email_marketing": false,
        "accepted_sms_marketing": false,
        "address_1": p.address_1,
        "address_2": "",
        "address_3": "",
        "archived_at": opt_ts(p.archived_at),
        "city": p.city,
        "country": p.country,
        "created_at": ts(p.created_at),
        "custom_fields": null,
        "date_of_birth": p.date_of_birth.map(|d| d.to_string()),
        "deleted_at": opt_ts(p.deleted_at),
        "dva_card_number": "",
        "email": p.email,
        "emergency_contact": "",
        "first_name": p.first_name,
        "invoice_default_to": "",
        "invoice_email": "",
        "invoice_extra_information": "",
        "gender": null,
        "gender_identity": null,
        "id": id,
        "last_name": p.last_name,
        "medicare": "",
        "medicare_reference_number": "",
        "notes": p.notes,
        "appointment_notes": p.appointment_notes,
        "occupation": "",
        "old_reference_id": p.old_reference_id,
        "patient_phone_numbers": p.phone_numbers,
        "post_code": p.post_code,
        "preferred_first_name": p.preferred_first_name,
        "pronouns": null,
        "receives_confirmation_emails": true,
        "referral_source": "",
        "reminder_type": "SMS & Email",
        "sex": null,
        "state": p.state,
        "title": p.title,
        "time_zone": p.time_zone,
        "updated_at": ts(p.updated_at),
        "concession_type": null,
        "referring_doctor": null,
        "medical_alerts": u.link(&format!("/patients/{id}/medical_alerts?page=1")),
        "invoices": u.link(&format!("/patients/{id}/invoices?page=1")),
        "appointments": u.link(&format!("/patients/{id}/appointments?page=1")),
        "links": { "self": u.url(&format!("/patients/{id}")) },
    })
}

/// A deleted patient: only its deletion time and link (as `/patients/deleted` shows it).
pub fn deleted_patient(u: &Urls, p: &Patient) -> Json {
    json!({
        "deleted_at": opt_ts(p.deleted_at),
        "links": { "self": u.url(&format!("/patients/{}", p.id)) },
    })
}

pub fn user(u: &Urls, acct: &Account, usr: &User) -> Json {
    json!({
        "id": usr.id,
        "title": "",
        "first_name": usr.first_name,
        "last_name": usr.last_name,
        "email": usr.email,
        "role": "administrator",
        "time_zone": acct.time_zone_name(),
        "user_active": true,
        "created_at": ts(usr.created_at),
        "updated_at": ts(usr.updated_at),
        "links": { "self": u.url(&format!("/users/{}", usr.id)) },
    })
}

/// `/settings` (`public` leaves out what only settings viewers may see).
pub fn settings(u: &Urls, acct: &Account, public: bool) -> Json {
    let ob = &acct.online_bookings;
    let admin = acct.users.first();
    let mut account = json!({
        "id": acct.id,
        "name": acct.name,
        "country": "Australia",
        "time_zone": acct.time_zone_name(),
        "currency_symbol": "$",
        "subdomain": format!("account{}", acct.id),
    });
    let practitioner_order: Vec<u64> = acct.practitioners.iter().map(|p| p.id).collect();
    let mut online = json!({
        "calendar_info": null,
        "enabled": ob.enabled,
        "logo_url": null,
        "max_appointments_per_day_segment": ob.max_appointments_per_day_segment,
        "min_hours_advance_required_to_book": ob.min_hours_advance_required_to_book,
        "min_hours_notice_for_patient_cancellation": 0,
        "notify_practitioner_by_email": false,
        "notify_practitioner_by_sms": false,
        "policy": null,
        "practitioner_order": practitioner_order,
        "require_patient_address": false,
        "show_appointment_duration": true,
        "show_prices": false,
    });
    if !public {
        account["email_from"] = json!("admin@example.com");
        account["admin"] = json!({
            "email": admin.map_or("admin@example.com", |a| a.email.as_str()),
            "first_name": admin.map_or("Admin", |a| a.first_name.as_str()),
            "last_name": admin.map_or("User", |a| a.last_name.as_str()),
        });
        online["adroll"] = json!({ "advertiser_id": null, "pixel_id": null });
        online["google_analytics"] = json!({ "tracking_id": null });
    }
    json!({
        "terminology": { "patient": "patient" },
        "account": account,
        "calendar": {
            "start_hour": 0,
            "end_hour": 24,
            "timeslot_height_in_pixels": 15,
            "timeslot_size_in_minutes": acct.timeslot_size_in_minutes,
            "show_current_time_indicator": true,
            "multiple_appointments_gap": false,
        },
        "online_bookings": online,
        "patient_custom_fields_definition": { "sections": [] },
        "reminders": { "default_reminder_type": "SMS & Email" },
        "links": { "self": u.url("/settings/public") },
    })
}

// ---- filter fields ----------------------------------------------------------------------

const BASIC: &[(&str, Kind)] = &[
    ("created_at", Kind::DateTime),
    ("id", Kind::String),
    ("updated_at", Kind::DateTime),
];

pub const BUSINESS_FIELDS: &[(&str, Kind)] = BASIC;
pub const APPOINTMENT_TYPE_FIELDS: &[(&str, Kind)] = BASIC;
pub const PRACTITIONER_FIELDS: &[(&str, Kind)] = &[
    ("created_at", Kind::DateTime),
    ("id", Kind::String),
    ("updated_at", Kind::DateTime),
    ("user_id", Kind::Integer),
];
pub const DAILY_AVAILABILITY_FIELDS: &[(&str, Kind)] = &[
    ("created_at", Kind::DateTime),
    ("business_id", Kind::Integer),
    ("id", Kind::Integer),
    ("practitioner_id", Kind::Integer),
    ("updated_at", Kind::DateTime),
];
pub const AVAILABILITY_BLOCK_FIELDS: &[(&str, Kind)] = &[
    ("business_id", Kind::Integer),
    ("created_at", Kind::DateTime),
    ("id", Kind::Integer),
    ("practitioner_id", Kind::Integer),
    ("starts_at", Kind::DateTime),
    ("updated_at", Kind::DateTime),
];
pub const UNAVAILABLE_BLOCK_FIELDS: &[(&str, Kind)] = &[
    ("archived_at", Kind::DateTime),
    ("business_id", Kind::Integer),
    ("created_at", Kind::DateTime),
    ("ends_at", Kind::DateTime),
    ("id", Kind::Integer),
    ("practitioner_id", Kind::Integer),
    ("repeated_from_id", Kind::Integer),
    ("starts_at", Kind::DateTime),
    ("updated_at", Kind::DateTime),
];
pub const APPOINTMENT_FIELDS: &[(&str, Kind)] = &[
    ("appointment_type_id", Kind::Integer),
    ("archived_at", Kind::DateTime),
    ("business_id", Kind::Integer),
    ("cancelled_at", Kind::DateTime),
    ("created_at", Kind::DateTime),
    ("ends_at", Kind::DateTime),
    ("id", Kind::Integer),
    ("patient_id", Kind::Integer),
    ("practitioner_id", Kind::Integer),
    ("repeated_from_id", Kind::Integer),
    ("starts_at", Kind::DateTime),
    ("updated_at", Kind::DateTime),
];
pub const BOOKING_FIELDS: &[(&str, Kind)] = &[
    ("archived_at", Kind::DateTime),
    ("business_id", Kind::Integer),
    ("cancelled_at", Kind::DateTime),
    ("created_at", Kind::DateTime),
    ("ends_at", Kind::DateTime),
    ("id", Kind::Integer),
    ("patient_ids", Kind::IntegerArray),
    ("practitioner_id", Kind::Integer),
    ("starts_at", Kind::DateTime),
    ("updated_at", Kind::DateTime),
];
pub const PATIENT_FIELDS: &[(&str, Kind)] = &[
    ("created_at", Kind::DateTime),
    ("date_of_birth", Kind::Date),
    ("email", Kind::String),
    ("first_name", Kind::String),
    ("id", Kind::Integer),
    ("last_name", Kind::String),
    ("old_reference_id", Kind::String),
    ("updated_at", Kind::DateTime),
];
pub const USER_FIELDS: &[(&str, Kind)] = &[
    ("created_at", Kind::DateTime),
    ("id", Kind::Integer),
    ("updated_at", Kind::DateTime),
];

fn common(field: &str, id: u64, created: Timestamp, updated: Timestamp) -> Option<Value> {
    Some(match field {
        "id" => Value::Int(id),
        "created_at" => Value::Time(created),
        "updated_at" => Value::Time(updated),
        _ => return None,
    })
}

/// `id` typed String in the docs (businesses, practitioners, types) compares as text.
fn string_id(field: &str, id: u64, created: Timestamp, updated: Timestamp) -> Option<Value> {
    if field == "id" {
        return Some(Value::Str(id.to_string()));
    }
    common(field, id, created, updated)
}

fn opt(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, Value::Time)
}

impl Record for Business {
    fn value(&self, field: &str) -> Value {
        string_id(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null)
    }
}

impl Record for AppointmentType {
    fn value(&self, field: &str) -> Value {
        string_id(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null)
    }
}

impl Record for Practitioner {
    fn value(&self, field: &str) -> Value {
        if field == "user_id" {
            return Value::Int(self.user_id);
        }
        string_id(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null)
    }
}

impl Record for User {
    fn value(&self, field: &str) -> Value {
        common(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null)
    }
}

impl Record for DailyAvailability {
    fn value(&self, field: &str) -> Value {
        match field {
            "business_id" => Value::Int(self.business_id),
            "practitioner_id" => Value::Int(self.practitioner_id),
            _ => common(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null),
        }
    }
}

impl Record for AvailabilityBlock {
    fn value(&self, field: &str) -> Value {
        match field {
            "business_id" => Value::Int(self.business_id),
            "practitioner_id" => Value::Int(self.practitioner_id),
            "starts_at" => Value::Time(self.starts_at),
            _ => common(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null),
        }
    }
}

impl Record for UnavailableBlock {
    fn value(&self, field: &str) -> Value {
        match field {
            "business_id" => Value::Int(self.business_id),
            "practitioner_id" => Value::Int(self.practitioner_id),
            "starts_at" => Value::Time(self.starts_at),
            "ends_at" => Value::Time(self.ends_at),
            "archived_at" => opt(self.deleted_at),
            "cancelled_at" | "repeated_from_id" => Value::Null,
            "patient_ids" => Value::Ints(Vec::new()),
            _ => common(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null),
        }
    }
}

impl Record for Appointment {
    fn value(&self, field: &str) -> Value {
        match field {
            "appointment_type_id" => Value::Int(self.appointment_type_id),
            "business_id" => Value::Int(self.business_id),
            "practitioner_id" => Value::Int(self.practitioner_id),
            "patient_id" => Value::Int(self.patient_id),
            "patient_ids" => Value::Ints(vec![self.patient_id]),
            "starts_at" => Value::Time(self.starts_at),
            "ends_at" => Value::Time(self.ends_at),
            "cancelled_at" => opt(self.cancelled_at),
            "archived_at" => opt(self.deleted_at),
            "repeated_from_id" => Value::Null,
            _ => common(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null),
        }
    }
}

impl Record for Patient {
    fn value(&self, field: &str) -> Value {
        let s = |v: &str| Value::Str(v.to_owned());
        match field {
            "date_of_birth" => self.date_of_birth.map_or(Value::Null, Value::Date),
            "email" => self.email.as_deref().map_or(Value::Null, s),
            "first_name" => s(&self.first_name),
            "last_name" => s(&self.last_name),
            "old_reference_id" => s(&self.old_reference_id),
            _ => common(field, self.id, self.created_at, self.updated_at).unwrap_or(Value::Null),
        }
    }
}
