//! The simulator's model: consumers, practices, consents, published configuration and
//! availability, practitioners, bookings, requests and subscriptions. Everything here is
//! synchronous and runs under one mutex; time is passed in, so the rules are testable.

use std::collections::BTreeMap;

use crate::wire::*;
use jiff::{SignedDuration, Timestamp, civil::Date, civil::DateTime, tz::TimeZone};
use serde::Serialize;

use crate::slots::{self, Slot};

/// A consumer (an integration vendor) and its api key.
#[derive(Clone)]
pub struct Consumer {
    /// Name shown to practice admins.
    pub name: String,
    /// The api key.
    pub api_key: String,
}

/// Redacted: the secret never reaches a log through `Debug`.
impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A practice's consent for one consumer.
#[derive(Clone, Serialize)]
pub struct Consent {
    /// The consumer's name.
    pub consumer: String,
    /// The practice key handed out on grant (never shown again).
    #[serde(skip)]
    pub practice_key: String,
    /// When it was granted.
    pub granted_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// Redacted: the secret never reaches a log through `Debug`.
impl std::fmt::Debug for Consent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent")
            .field("consumer", &self.consumer)
            .field("granted_at", &self.granted_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A marketplace appointment type of a practitioner.
#[derive(Debug, Clone, Serialize)]
pub struct HeType {
    /// Id, unique in the simulator.
    pub id: u64,
    /// Name shown to patients.
    pub name: String,
    /// Length configured on the marketplace, if any (minutes).
    pub length_minutes: Option<i64>,
    /// The linked PMS appointment type ("Linked PMS Appointment").
    pub linked_pms_appointment_type_id: Option<String>,
}

/// A marketplace practitioner.
#[derive(Debug, Clone, Serialize)]
pub struct Practitioner {
    /// Id, unique in the simulator.
    pub id: u64,
    /// Name, unique in the practice.
    pub name: String,
    /// Specialty, e.g. `Dentist`, `Hygienist`.
    pub specialty: String,
    /// The appointment book (PMS resource) this practitioner is connected to.
    pub pms_resource_id: Option<String>,
    /// The appointment types.
    pub appointment_types: Vec<HeType>,
}

/// A published availability snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// The snapshot as received (without its `id`).
    pub snapshot: AvailabilitySnapshot,
    /// SHA-256 of its canonical JSON.
    pub hash: String,
    /// When it was last created (not when it was last seen unchanged).
    pub received_at: Timestamp,
}

/// An outstanding request to the integration (other than bookings and booking updates).
#[derive(Debug, Clone, Serialize)]
pub struct PendingRequest {
    /// Sequential id.
    pub request_id: i64,
    /// The type.
    pub request_type: RequestType,
    /// For availability: the day.
    pub day: Option<Date>,
    /// For availability: the resource (all when none).
    pub pms_resource_id: Option<String>,
    /// For pmsAppointmentChanges: the booking.
    pub booking_id: Option<i64>,
    /// When it was raised.
    pub created_at: Timestamp,
}

/// Status of a booking as the patient sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PatientStatus {
    /// Waiting for the PMS (at most 20 s, then auto-confirmed).
    Requested,
    /// Confirmed.
    Confirmed,
    /// Cancelled.
    Cancelled,
    /// Rejected by the PMS within 20 s; the patient must choose another time.
    Rejected,
}

/// How a booking update was resolved.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateRec {
    /// The request id.
    pub request_id: i64,
    /// The status asked for.
    pub requested_status: BookingStatus,
    /// When it was asked.
    pub created_at: Timestamp,
    /// `confirmed` / `rejected` once answered.
    pub resolution: Option<String>,
    /// The reason given on rejection.
    pub reject_reason: Option<String>,
}

/// A booking.
#[derive(Debug, Clone, Serialize)]
pub struct BookingRec {
    /// The booking id.
    pub id: i64,
    /// The practice.
    pub practice_id: u64,
    /// Practitioner id and name.
    pub practitioner_id: u64,
    /// Practitioner name.
    pub practitioner: String,
    /// Marketplace type id.
    pub appointment_type_id: u64,
    /// Marketplace type name.
    pub appointment_type: String,
    /// The resource booked.
    pub pms_resource_id: String,
    /// The linked PMS type.
    pub pms_appointment_type_id: Option<String>,
    /// Start, practice civil time.
    pub start: DateTime,
    /// Length in seconds.
    pub length_secs: i64,
    /// When the patient booked.
    pub booked_at: Timestamp,
    /// The patient.
    pub patient: Patient,
    /// What the patient wrote.
    pub reason: Option<String>,
    /// Whether the patient says they are new.
    pub is_new_patient: Option<bool>,
    /// The status.
    pub status: PatientStatus,
    /// Still in `/requests/bookings` (not yet confirmInsert/rejectInsert).
    pub insert_pending: bool,
    /// Confirmed by the 20 s rule rather than by the PMS.
    pub auto_confirmed: bool,
    /// From confirmInsert.
    pub pms_appointment_ids: Vec<String>,
    /// From confirmInsert.
    pub pms_patient_id: Option<String>,
    /// From rejectInsert.
    pub reject_reason: Option<String>,
    /// A rejectInsert that came after the auto-confirm: the practice must cancel by hand.
    pub late_reject: bool,
    /// From cancel.
    pub cancel_reason: Option<String>,
    /// From didNotAttend.
    pub did_not_attend: bool,
    /// Booking updates (cancellation attempts).
    pub updates: Vec<UpdateRec>,
    /// How the integration answered the last pmsAppointmentChanges request (none until then).
    pub appointment_change: Option<AppointmentChange>,
}

/// The answer to a pmsAppointmentChanges request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentChange {
    /// `noPmsAppointmentChange`.
    NoChange,
    /// `cancel`.
    Cancelled,
    /// `didNotAttend`.
    DidNotAttend,
}

impl BookingRec {
    fn end(&self) -> DateTime {
        self.start + SignedDuration::from_secs(self.length_secs)
    }

    /// Whether it still occupies its time.
    pub fn is_active(&self) -> bool {
        matches!(
            self.status,
            PatientStatus::Requested | PatientStatus::Confirmed
        )
    }

    /// Whether it overlaps `[start, end)` on `resource`.
    pub fn blocks(&self, resource: &str, start: DateTime, end: DateTime) -> bool {
        self.is_active()
            && self.pms_resource_id == resource
            && self.start < end
            && start < self.end()
    }
}

/// A practice.
#[derive(Debug, Clone)]
pub struct Practice {
    /// The practice id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// IANA zone.
    pub timezone: String,
    /// The zone.
    pub tz: TimeZone,
    /// Consents by consumer name.
    pub consents: BTreeMap<String, Consent>,
    /// The liveness contract.
    pub liveness: Option<LivenessContract>,
    /// Published PMS resources.
    pub resources: Vec<PmsResource>,
    /// Published PMS appointment types.
    pub appointment_types: Vec<PmsAppointmentType>,
    /// Published availability by resource and day.
    pub availability: BTreeMap<(String, Date), Published>,
    /// Practitioners by id.
    pub practitioners: BTreeMap<u64, Practitioner>,
    /// Outstanding availability, pmsAppointmentChanges, pmsResources and pmsAppointmentTypes requests.
    pub requests: Vec<PendingRequest>,
    /// Enabled extra features.
    pub features: BTreeMap<String, bool>,
    /// Last poll of `/requests`.
    pub last_poll: Option<Timestamp>,
    /// When the first consent was granted (the polling clock starts then).
    pub integrated_since: Option<Timestamp>,
    /// Hide slots while the integration is unhealthy.
    pub hide_when_unhealthy: bool,
    /// Refuse (400) a `rejectInsert` that arrives after the booking was auto-confirmed, as the
    /// real API may; off by default (the late rejection is then kept as `late_reject`).
    pub refuse_late_answers: bool,
}

/// The integration health of a practice.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Healthy or not.
    pub healthy: bool,
    /// Whether now is within the liveness contract's hours (always when there is none).
    pub live_now: bool,
    /// Why not.
    pub reasons: Vec<String>,
    /// Last poll.
    #[serde(with = "opt_rfc3339")]
    pub last_poll: Option<Timestamp>,
}

mod opt_rfc3339 {
    pub fn serialize<S: serde::Serializer>(
        v: &Option<jiff::Timestamp>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&t.to_string()),
            None => s.serialize_none(),
        }
    }
}

/// Known extra features.
pub const FEATURES: [(&str, &str, &str); 3] = [
    (
        "documents",
        "Documents",
        "Send documents (scripts, referrals) related to bookings",
    ),
    (
        "clientSnapshots",
        "Client snapshots",
        "Send appointments and patients for reminders, feedback and check-ins",
    ),
    (
        "attachDocuments",
        "Attach documents",
        "Insert documents provided by patients into the PMS",
    ),
];

/// Timing rules, scaled by the time factor.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Multiplies every window (1.0 = real time).
    pub time_factor: f64,
}

impl Timing {
    /// `secs` seconds scaled.
    pub fn scaled(&self, secs: f64) -> SignedDuration {
        SignedDuration::from_secs_f64(secs * self.time_factor)
    }
    /// The auto-confirm window (20 s).
    pub fn auto_confirm(&self) -> SignedDuration {
        self.scaled(20.0)
    }
    /// The health window (10 min).
    pub fn health_window(&self) -> SignedDuration {
        self.scaled(600.0)
    }
}

/// An error of the simulator's model, mapped to HTTP by the layers above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// 400.
    #[error("{0}")]
    Invalid(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
}

/// A webhook to send: the caller spawns the delivery once the lock is released.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The subscription.
    pub subscription_id: String,
    /// Where to.
    pub callback_url: String,
    /// What.
    pub payload: WebhookPayload,
}

/// A subscription and its owner.
#[derive(Debug, Clone)]
pub struct SubRec {
    /// The practice.
    pub practice_id: u64,
    /// The consumer name.
    pub consumer: String,
    /// The subscription as answered.
    pub sub: Subscription,
}

/// A failed webhook attempt, with its owner and time.
#[derive(Debug, Clone)]
pub struct ErrorLogRec {
    /// The practice.
    pub practice_id: u64,
    /// The consumer name.
    pub consumer: String,
    /// When the attempt failed.
    pub at: Timestamp,
    /// The entry as listed.
    pub entry: SubscriptionErrorLog,
}

/// Requests refused as not conforming to the spec, of one consumer for one practice.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Refusals {
    /// How many.
    pub count: u64,
    /// The last refusal's message (names the field).
    pub last_error: String,
    /// The last refused request's method and path.
    pub last_request: String,
}

/// Why the credentials of a call were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: an api-key, practice-id or practice-key that is missing, unknown or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the consumer has no consent of this practice, or it was revoked.
    #[error("{0}")]
    Forbidden(String),
}

/// One webhook delivery and its attempts, for inspection.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRec {
    /// The practice.
    pub practice_id: u64,
    /// The subscription.
    pub subscription_id: String,
    /// What was sent.
    pub payload: serde_json::Value,
    /// Attempts made so far.
    pub attempts: u32,
    /// Acknowledged with a 2xx.
    pub delivered: bool,
    /// Gave up after the last retry.
    pub gave_up: bool,
}

/// The whole simulated marketplace.
#[derive(Debug)]
pub struct Market {
    /// Timing rules.
    pub timing: Timing,
    /// Items per page of request lists.
    pub per_page: u64,
    /// Consumers by name.
    pub consumers: BTreeMap<String, Consumer>,
    /// Practices by id.
    pub practices: BTreeMap<u64, Practice>,
    /// Bookings by id.
    pub bookings: BTreeMap<i64, BookingRec>,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, SubRec>,
    /// Failed webhook attempts.
    pub error_log: Vec<ErrorLogRec>,
    /// Refused (non-conforming) requests by practice and consumer.
    pub nonconforming: BTreeMap<(u64, String), Refusals>,
    /// Answer in the quirks mode's shapes (see docs/market-sim.md).
    pub quirks: bool,
    /// Webhook deliveries.
    pub deliveries: Vec<DeliveryRec>,
    next_practice: u64,
    next_booking: i64,
    next_request: i64,
    next_id: u64,
}

fn random_key(len: usize) -> String {
    use rand::Rng as _;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

impl Market {
    /// An empty marketplace.
    pub fn new(timing: Timing, per_page: u64) -> Self {
        Self {
            timing,
            per_page: per_page.max(1),
            consumers: BTreeMap::new(),
            practices: BTreeMap::new(),
            bookings: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            error_log: Vec::new(),
            nonconforming: BTreeMap::new(),
            quirks: false,
            deliveries: Vec::new(),
            next_practice: 1_000_001,
            next_booking: 5_001,
            next_request: 301,
            next_id: 1,
        }
    }

    /// A fresh id for practitioners and appointment types.
    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn request_id(&mut self) -> i64 {
        self.next_request += 1;
        self.next_request - 1
    }

    /// Register a consumer; a key is generated when none is given.
    pub fn add_consumer(
        &mut self,
        name: &str,
        api_key: Option<String>,
    ) -> Result<Consumer, SimError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(SimError::Invalid("name: must not be empty".into()));
        }
        if self.consumers.contains_key(name) {
            return Err(SimError::Conflict(format!(
                "consumer {name:?} exists already"
            )));
        }
        let api_key = api_key.unwrap_or_else(|| random_key(40));
        if self.consumers.values().any(|c| c.api_key == api_key) {
            return Err(SimError::Conflict(
                "api_key: already used by another consumer".into(),
            ));
        }
        let c = Consumer {
            name: name.to_owned(),
            api_key,
        };
        self.consumers.insert(c.name.clone(), c.clone());
        Ok(c)
    }

    /// Create a practice.
    pub fn add_practice(
        &mut self,
        name: &str,
        timezone: &str,
        hide_when_unhealthy: bool,
    ) -> Result<u64, SimError> {
        let tz = TimeZone::get(timezone).map_err(|_| {
            SimError::Invalid(format!("timezone: {timezone:?} is not an IANA time zone"))
        })?;
        if name.trim().is_empty() {
            return Err(SimError::Invalid("name: must not be empty".into()));
        }
        let id = self.next_practice;
        self.next_practice += 1;
        self.practices.insert(
            id,
            Practice {
                id,
                name: name.trim().to_owned(),
                timezone: timezone.to_owned(),
                tz,
                consents: BTreeMap::new(),
                liveness: None,
                resources: Vec::new(),
                appointment_types: Vec::new(),
                availability: BTreeMap::new(),
                practitioners: BTreeMap::new(),
                requests: Vec::new(),
                features: FEATURES.iter().map(|f| (f.0.to_owned(), false)).collect(),
                last_poll: None,
                integrated_since: None,
                hide_when_unhealthy,
                refuse_late_answers: false,
            },
        );
        Ok(id)
    }

    /// A practice or 404.
    pub fn practice(&self, id: u64) -> Result<&Practice, SimError> {
        self.practices
            .get(&id)
            .ok_or_else(|| SimError::NotFound(format!("practice {id} does not exist")))
    }

    /// A practice, mutable, or 404.
    pub fn practice_mut(&mut self, id: u64) -> Result<&mut Practice, SimError> {
        self.practices
            .get_mut(&id)
            .ok_or_else(|| SimError::NotFound(format!("practice {id} does not exist")))
    }

    /// Grant (new) consent for a consumer: a fresh practice key replaces any earlier one.
    pub fn grant_consent(
        &mut self,
        practice_id: u64,
        consumer: &str,
        now: Timestamp,
    ) -> Result<String, SimError> {
        if !self.consumers.contains_key(consumer) {
            return Err(SimError::NotFound(format!(
                "consumer {consumer:?} does not exist"
            )));
        }
        let key = random_key(32);
        let p = self.practice_mut(practice_id)?;
        p.consents.insert(
            consumer.to_owned(),
            Consent {
                consumer: consumer.to_owned(),
                practice_key: key.clone(),
                granted_at: now,
                revoked_at: None,
            },
        );
        p.integrated_since.get_or_insert(now);
        Ok(key)
    }

    /// Revoke a consumer's consent.
    pub fn revoke_consent(
        &mut self,
        practice_id: u64,
        consumer: &str,
        now: Timestamp,
    ) -> Result<(), SimError> {
        let p = self.practice_mut(practice_id)?;
        let c = p.consents.get_mut(consumer).ok_or_else(|| {
            SimError::NotFound(format!(
                "consumer {consumer:?} has no consent for practice {practice_id}"
            ))
        })?;
        c.revoked_at.get_or_insert(now);
        Ok(())
    }

    /// The consumer owning an api key.
    pub fn consumer_by_key(&self, api_key: &str) -> Option<&Consumer> {
        self.consumers
            .values()
            .find(|c| constant_time_eq(c.api_key.as_bytes(), api_key.as_bytes()))
    }

    /// Check a practice id and key against the consumer's consent: 401 (`Unauthorized`) for an
    /// unknown practice id or a wrong practice key, 403 (`Forbidden`) when the consumer has no
    /// consent of the practice or it was revoked.
    pub fn check_consent(
        &self,
        consumer: &str,
        practice_id: &str,
        practice_key: &str,
    ) -> Result<u64, AuthError> {
        let bad = || AuthError::Unauthorized("practice-id or practice-key is wrong".into());
        let id: u64 = practice_id.trim().parse().map_err(|_| bad())?;
        let p = self.practices.get(&id).ok_or_else(bad)?;
        let c = p.consents.get(consumer).ok_or_else(|| {
            AuthError::Forbidden("the practice has not given this consumer its consent".into())
        })?;
        if c.revoked_at.is_some() {
            return Err(AuthError::Forbidden(
                "the practice has revoked its consent for this consumer".into(),
            ));
        }
        if !constant_time_eq(c.practice_key.as_bytes(), practice_key.as_bytes()) {
            return Err(bad());
        }
        Ok(id)
    }

    /// Count a refused (non-conforming) request of a consumer for a practice.
    pub fn refuse(&mut self, pid: u64, consumer: &str, request: &str, error: &str) {
        let r = self
            .nonconforming
            .entry((pid, consumer.to_owned()))
            .or_default();
        r.count += 1;
        r.last_error = error.to_owned();
        r.last_request = request.to_owned();
    }

    /// Apply the rules that depend on time: bookings not rejected within 20 s are confirmed.
    pub fn settle(&mut self, now: Timestamp) {
        let window = self.timing.auto_confirm();
        for b in self.bookings.values_mut() {
            if b.status == PatientStatus::Requested
                && b.insert_pending
                && now.duration_since(b.booked_at) >= window
            {
                b.status = PatientStatus::Confirmed;
                b.auto_confirmed = true;
            }
        }
    }

    // ---- configuration -----------------------------------------------------------------------

    /// Replace the PMS resources. Availability of removed resources is dropped.
    pub fn put_resources(&mut self, pid: u64, resources: Vec<PmsResource>) -> Result<(), SimError> {
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, r) in resources.iter().enumerate() {
            if r.pms_resource_id.trim().is_empty() {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsResourceId: must not be empty"
                )));
            }
            if r.pms_resource_name.trim().is_empty() {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsResourceName: must not be empty"
                )));
            }
            if !ids.insert(r.pms_resource_id.clone()) {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsResourceId: {:?} is not unique",
                    r.pms_resource_id
                )));
            }
            if !names.insert(r.pms_resource_name.clone()) {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsResourceName: {:?} is not unique",
                    r.pms_resource_name
                )));
            }
        }
        let p = self.practice_mut(pid)?;
        p.availability.retain(|(r, _), _| ids.contains(r));
        p.resources = resources;
        p.requests
            .retain(|r| r.request_type != RequestType::PmsResources);
        Ok(())
    }

    /// Replace the PMS appointment types.
    pub fn put_types(&mut self, pid: u64, types: Vec<PmsAppointmentType>) -> Result<(), SimError> {
        let p = self.practice_mut(pid)?;
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, t) in types.iter().enumerate() {
            if t.pms_appointment_type_id.trim().is_empty() {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsAppointmentTypeId: must not be empty"
                )));
            }
            if t.pms_appointment_type_name.trim().is_empty() {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsAppointmentTypeName: must not be empty"
                )));
            }
            if !ids.insert(t.pms_appointment_type_id.clone()) {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsAppointmentTypeId: {:?} is not unique",
                    t.pms_appointment_type_id
                )));
            }
            if !names.insert(t.pms_appointment_type_name.clone()) {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsAppointmentTypeName: {:?} is not unique",
                    t.pms_appointment_type_name
                )));
            }
            if let Some(len) = t.pms_appointment_length
                && len <= 0
            {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsAppointmentLength: must be positive minutes, found {len}"
                )));
            }
            if let Some(r) = &t.pms_resource_id
                && !p.resources.iter().any(|x| &x.pms_resource_id == r)
            {
                return Err(SimError::Invalid(format!(
                    "[{i}].pmsResourceId: {r:?} is not a known PMS resource"
                )));
            }
        }
        p.appointment_types = types;
        p.requests
            .retain(|r| r.request_type != RequestType::PmsAppointmentTypes);
        Ok(())
    }

    /// Validate one availability snapshot against the practice's configuration.
    pub fn validate_snapshot(p: &Practice, s: &AvailabilitySnapshot) -> Result<(), String> {
        if !p
            .resources
            .iter()
            .any(|r| r.pms_resource_id == s.pms_resource_id)
        {
            return Err(format!(
                "pmsResourceId: {:?} is not a known PMS resource",
                s.pms_resource_id
            ));
        }
        for (i, r) in s.availability.iter().enumerate() {
            if r.start >= r.end {
                return Err(format!(
                    "availability[{i}]: start {} is not before end {}",
                    r.start, r.end
                ));
            }
            if r.slot_length < 0 {
                return Err(format!(
                    "availability[{i}].slotLength: must not be negative, found {}",
                    r.slot_length
                ));
            }
            for t in r.pms_appointment_type_ids.iter().flatten() {
                if !p
                    .appointment_types
                    .iter()
                    .any(|x| &x.pms_appointment_type_id == t)
                {
                    return Err(format!(
                        "availability[{i}].pmsAppointmentTypeIds: {t:?} is not a known PMS appointment type"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Store one snapshot (replace semantics). `Ok(true)` when created, `Ok(false)` when the
    /// same hash was stored already. Answers matching availability requests.
    pub fn put_availability(
        &mut self,
        pid: u64,
        snapshot: &AvailabilitySnapshot,
        now: Timestamp,
    ) -> Result<bool, SimError> {
        let p = self.practice_mut(pid)?;
        Self::validate_snapshot(p, snapshot).map_err(SimError::Invalid)?;
        let mut s = snapshot.clone();
        s.id = None;
        let hash = snapshot_hash(&s);
        let key = (s.pms_resource_id.clone(), s.date);
        p.requests.retain(|r| {
            !(r.request_type == RequestType::Availability
                && r.day == Some(s.date)
                && r.pms_resource_id
                    .as_ref()
                    .is_none_or(|x| *x == s.pms_resource_id))
        });
        if p.availability.get(&key).is_some_and(|old| old.hash == hash) {
            return Ok(false);
        }
        p.availability.insert(
            key,
            Published {
                snapshot: s,
                hash,
                received_at: now,
            },
        );
        Ok(true)
    }

    // ---- requests ----------------------------------------------------------------------------

    /// Raise a request (availability, pmsAppointmentChanges, pmsResources, pmsAppointmentTypes)
    /// and return the webhooks to send. Refresh requests are not duplicated while one is open.
    pub fn raise(
        &mut self,
        pid: u64,
        request_type: RequestType,
        day: Option<Date>,
        pms_resource_id: Option<String>,
        booking_id: Option<i64>,
        now: Timestamp,
    ) -> Result<(i64, Vec<Outgoing>), SimError> {
        let p = self.practice(pid)?;
        let existing = p.requests.iter().find(|r| {
            r.request_type == request_type
                && r.day == day
                && r.pms_resource_id == pms_resource_id
                && r.booking_id == booking_id
        });
        if let Some(r) = existing {
            return Ok((r.request_id, Vec::new()));
        }
        let request_id = self.request_id();
        self.practice_mut(pid)?.requests.push(PendingRequest {
            request_id,
            request_type,
            day,
            pms_resource_id,
            booking_id,
            created_at: now,
        });
        let out = self.events(pid, request_type, booking_id, Some(request_id), now);
        Ok((request_id, out))
    }

    /// Record a poll and list what is outstanding, in the spec's order.
    pub fn poll(&mut self, pid: u64, now: Timestamp) -> Result<Vec<RequestType>, SimError> {
        self.practice_mut(pid)?.last_poll = Some(now);
        let p = self.practice(pid)?;
        let mut out = Vec::new();
        if self
            .bookings
            .values()
            .any(|b| b.practice_id == pid && b.insert_pending)
        {
            out.push(RequestType::Bookings);
        }
        if self.pending_updates(pid).next().is_some() {
            out.push(RequestType::BookingUpdates);
        }
        for t in [
            RequestType::Availability,
            RequestType::PmsAppointmentChanges,
            RequestType::PmsResources,
            RequestType::PmsAppointmentTypes,
        ] {
            if p.requests.iter().any(|r| r.request_type == t) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Booking updates not yet answered, as (booking, update).
    pub fn pending_updates(&self, pid: u64) -> impl Iterator<Item = (&BookingRec, &UpdateRec)> {
        self.bookings
            .values()
            .filter(move |b| b.practice_id == pid)
            .flat_map(|b| {
                b.updates
                    .iter()
                    .filter(|u| u.resolution.is_none())
                    .map(move |u| (b, u))
            })
    }

    /// The marketplace appointment type a booking was made for.
    fn booked_type(&self, b: &BookingRec) -> Option<&HeType> {
        self.practices
            .get(&b.practice_id)?
            .practitioners
            .get(&b.practitioner_id)?
            .appointment_types
            .iter()
            .find(|t| t.id == b.appointment_type_id)
    }

    /// The practice removes the link between a booking's marketplace appointment type and its
    /// PMS appointment type (the patient booked it while it was linked): until the booking is
    /// processed, its `pmsAppointmentTypeId` is null.
    pub fn unlink_booked_type(&mut self, id: i64) -> Result<(), SimError> {
        let b = self
            .bookings
            .get(&id)
            .ok_or_else(|| SimError::NotFound(format!("booking {id} does not exist")))?;
        let (pid, prid, tid) = (b.practice_id, b.practitioner_id, b.appointment_type_id);
        let t = self
            .practice_mut(pid)?
            .practitioners
            .get_mut(&prid)
            .and_then(|pr| pr.appointment_types.iter_mut().find(|t| t.id == tid))
            .ok_or_else(|| SimError::NotFound(format!("appointment type {tid} does not exist")))?;
        t.linked_pms_appointment_type_id = None;
        Ok(())
    }

    /// The wire form of a booking. Like `pmsResourceId` for a resource removed before the
    /// booking is processed, `pmsAppointmentTypeId` is null when the booked marketplace type is
    /// no longer linked to that PMS appointment type ("can be null", openapi.yaml).
    pub fn wire_booking(&self, b: &BookingRec) -> Booking {
        let resource_exists = self.practices.get(&b.practice_id).is_some_and(|p| {
            p.resources
                .iter()
                .any(|r| r.pms_resource_id == b.pms_resource_id)
        });
        let type_linked = self
            .booked_type(b)
            .is_some_and(|t| t.linked_pms_appointment_type_id == b.pms_appointment_type_id);
        Booking {
            booking_id: b.id,
            pms_resource_id: resource_exists.then(|| b.pms_resource_id.clone()),
            pms_appointment_type_id: b.pms_appointment_type_id.clone().filter(|_| type_linked),
            pms_appointment_ids: b.pms_appointment_ids.clone(),
            pms_patient_id: b.pms_patient_id.clone(),
            booked_time: b.booked_at,
            booking_status: match b.status {
                PatientStatus::Requested => BookingStatus::Requested,
                PatientStatus::Cancelled => BookingStatus::Cancelled,
                PatientStatus::Confirmed | PatientStatus::Rejected => BookingStatus::Confirmed,
            },
            pms_appointment_time: b.start,
            pms_appointment_length: b.length_secs,
            reason: b.reason.clone(),
            comments: Some(b.appointment_type.clone()),
            patient: b.patient.clone(),
            telehealth_url: None,
            is_new_patient: b.is_new_patient,
        }
    }

    /// Paginate.
    pub fn page<T>(&self, items: Vec<T>, page: u64) -> Page<T> {
        let per = self.per_page;
        let total = items.len() as u64;
        let total_pages = total.div_ceil(per).max(1);
        let page = page.max(1);
        let data = items
            .into_iter()
            .skip(((page - 1) * per) as usize)
            .take(per as usize)
            .collect();
        Page {
            data,
            page: Paginated {
                current_page: page,
                total_pages,
                per_page: per,
                total,
            },
        }
    }

    // ---- bookings (PMS side) -----------------------------------------------------------------

    fn booking_of(&mut self, pid: u64, id: i64) -> Result<&mut BookingRec, SimError> {
        self.bookings
            .get_mut(&id)
            .filter(|b| b.practice_id == pid)
            .ok_or_else(|| {
                SimError::NotFound(format!("booking {id} does not exist for this practice"))
            })
    }

    /// `confirmInsert`.
    pub fn confirm_insert(
        &mut self,
        pid: u64,
        id: i64,
        body: ConfirmBookingInsert,
    ) -> Result<(), SimError> {
        if body.pms_patient_id.trim().is_empty() {
            return Err(SimError::Invalid("pmsPatientId: must not be empty".into()));
        }
        let b = self.booking_of(pid, id)?;
        if !b.insert_pending {
            if b.status == PatientStatus::Confirmed
                && !b.auto_confirmed
                && b.pms_appointment_ids == body.pms_appointment_ids
            {
                return Ok(()); // the same confirmation again
            }
            return Err(SimError::Invalid(format!(
                "booking {id} is not waiting for an insert"
            )));
        }
        if b.status == PatientStatus::Cancelled {
            return Err(SimError::Invalid(format!("booking {id} is cancelled")));
        }
        b.insert_pending = false;
        b.status = PatientStatus::Confirmed;
        b.pms_appointment_ids = body.pms_appointment_ids;
        b.pms_patient_id = Some(body.pms_patient_id);
        Ok(())
    }

    /// `rejectInsert`. Within 20 s the booking is rejected and the patient rebooks; later it stays
    /// confirmed (auto-confirmed) and the practice must cancel it by hand. Either way the
    /// marketplace asks for the day's availability again.
    pub fn reject_insert(
        &mut self,
        pid: u64,
        id: i64,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Vec<Outgoing>, SimError> {
        let refuse_late = self
            .practices
            .get(&pid)
            .is_some_and(|p| p.refuse_late_answers);
        let b = self.booking_of(pid, id)?;
        if !b.insert_pending {
            return Err(SimError::Invalid(format!(
                "booking {id} is not waiting for an insert"
            )));
        }
        if refuse_late && b.status != PatientStatus::Requested {
            return Err(SimError::Invalid(format!(
                "booking {id} was confirmed by the marketplace after its 20-second window: a \
                 late rejection is refused"
            )));
        }
        b.insert_pending = false;
        b.reject_reason = reason;
        if b.status == PatientStatus::Requested {
            b.status = PatientStatus::Rejected;
        } else {
            b.late_reject = true;
        }
        let (day, resource) = (b.start.date(), b.pms_resource_id.clone());
        let (_, out) = self.raise(
            pid,
            RequestType::Availability,
            Some(day),
            Some(resource),
            None,
            now,
        )?;
        Ok(out)
    }

    fn update_of(
        &mut self,
        pid: u64,
        id: i64,
        request_id: i64,
    ) -> Result<(&mut BookingRec, usize), SimError> {
        let b = self.booking_of(pid, id)?;
        let i = b
            .updates
            .iter()
            .position(|u| u.request_id == request_id)
            .ok_or_else(|| {
                SimError::NotFound(format!("booking {id} has no update request {request_id}"))
            })?;
        if b.updates[i].resolution.is_some() {
            return Err(SimError::Invalid(format!(
                "update request {request_id} was answered already"
            )));
        }
        Ok((b, i))
    }

    /// `confirmUpdate`: apply the requested status.
    pub fn confirm_update(&mut self, pid: u64, id: i64, request_id: i64) -> Result<(), SimError> {
        let (b, i) = self.update_of(pid, id, request_id)?;
        b.updates[i].resolution = Some("confirmed".into());
        if b.updates[i].requested_status == BookingStatus::Cancelled {
            b.status = PatientStatus::Cancelled;
        }
        Ok(())
    }

    /// `rejectUpdate`: the booking stays as it is.
    pub fn reject_update(
        &mut self,
        pid: u64,
        id: i64,
        request_id: i64,
        reason: Option<String>,
    ) -> Result<(), SimError> {
        let (b, i) = self.update_of(pid, id, request_id)?;
        b.updates[i].resolution = Some("rejected".into());
        b.updates[i].reject_reason = reason;
        Ok(())
    }

    /// Answer the booking's open pmsAppointmentChanges request, if any, with `answer`.
    fn resolve_changes(&mut self, pid: u64, id: i64, answer: AppointmentChange) -> bool {
        let Some(p) = self.practices.get_mut(&pid) else {
            return false;
        };
        let before = p.requests.len();
        p.requests.retain(|r| {
            !(r.request_type == RequestType::PmsAppointmentChanges && r.booking_id == Some(id))
        });
        let answered = before != p.requests.len();
        if answered && let Some(b) = self.bookings.get_mut(&id) {
            b.appointment_change = Some(answer);
        }
        answered
    }

    /// `cancel`: the PMS cancelled the appointment.
    pub fn cancel(&mut self, pid: u64, id: i64, reason: Option<String>) -> Result<(), SimError> {
        let b = self.booking_of(pid, id)?;
        match b.status {
            PatientStatus::Cancelled => {}
            PatientStatus::Rejected => {
                return Err(SimError::Invalid(format!(
                    "booking {id} was rejected, not booked"
                )));
            }
            _ => {
                b.status = PatientStatus::Cancelled;
                b.cancel_reason = reason;
                b.insert_pending = false;
            }
        }
        self.resolve_changes(pid, id, AppointmentChange::Cancelled);
        Ok(())
    }

    /// `didNotAttend`.
    pub fn did_not_attend(&mut self, pid: u64, id: i64) -> Result<(), SimError> {
        let b = self.booking_of(pid, id)?;
        if b.status != PatientStatus::Confirmed {
            return Err(SimError::Invalid(format!("booking {id} is not confirmed")));
        }
        b.did_not_attend = true;
        self.resolve_changes(pid, id, AppointmentChange::DidNotAttend);
        Ok(())
    }

    /// `noPmsAppointmentChange`.
    pub fn no_change(&mut self, pid: u64, id: i64) -> Result<(), SimError> {
        self.booking_of(pid, id)?;
        if !self.resolve_changes(pid, id, AppointmentChange::NoChange) {
            return Err(SimError::Invalid(format!(
                "booking {id} has no pmsAppointmentChanges request"
            )));
        }
        Ok(())
    }

    // ---- patient side ------------------------------------------------------------------------

    /// Bookable slots of a practice on a day.
    pub fn slots(&self, pid: u64, date: Date, now: Timestamp) -> Result<Vec<Slot>, SimError> {
        self.offered(pid, date, now, true)
    }

    /// The slots of a day; with `skip_taken` false, also those other bookings already hold
    /// (what a patient looking at a page loaded before those bookings still sees).
    fn offered(
        &self,
        pid: u64,
        date: Date,
        now: Timestamp,
        skip_taken: bool,
    ) -> Result<Vec<Slot>, SimError> {
        let p = self.practice(pid)?;
        if p.hide_when_unhealthy && !self.health(pid, now)?.healthy {
            return Ok(Vec::new());
        }
        let now_local = now.to_zoned_datetime(p.tz.clone()).datetime();
        let taken: Vec<&BookingRec> = self
            .bookings
            .values()
            .filter(|b| b.practice_id == pid && b.is_active())
            .collect();
        Ok(slots::slice(p, date)
            .into_iter()
            .filter(|s| {
                s.start > now_local
                    && !(skip_taken
                        && taken
                            .iter()
                            .any(|b| b.blocks(&s.pms_resource_id, s.start, s.end)))
            })
            .collect())
    }

    /// A patient books. `practitioner` and `appointment_type` are names or ids.
    #[allow(clippy::too_many_arguments)]
    pub fn book(
        &mut self,
        pid: u64,
        practitioner: &str,
        appointment_type: &str,
        start: Timestamp,
        patient: Patient,
        reason: Option<String>,
        is_new_patient: Option<bool>,
        now: Timestamp,
    ) -> Result<(i64, Vec<Outgoing>), SimError> {
        self.book_from(
            pid,
            practitioner,
            appointment_type,
            start,
            patient,
            reason,
            is_new_patient,
            now,
            false,
        )
    }

    /// [`Market::book`], and with `stale` a booking from a page loaded before other patients
    /// took the slot: the marketplace accepts it and leaves it to the PMS integration to refuse
    /// (how several patients end up booking one slot at once).
    #[allow(clippy::too_many_arguments)]
    pub fn book_from(
        &mut self,
        pid: u64,
        practitioner: &str,
        appointment_type: &str,
        start: Timestamp,
        patient: Patient,
        reason: Option<String>,
        is_new_patient: Option<bool>,
        now: Timestamp,
        stale: bool,
    ) -> Result<(i64, Vec<Outgoing>), SimError> {
        self.settle(now);
        let p = self.practice(pid)?;
        let local = start.to_zoned_datetime(p.tz.clone()).datetime();
        let slots = self.offered(pid, local.date(), now, !stale)?;
        let slot = slots
            .into_iter()
            .find(|s| {
                (s.practitioner == practitioner || s.practitioner_id.to_string() == practitioner)
                    && (s.appointment_type == appointment_type || s.appointment_type_id.to_string() == appointment_type)
                    && s.start == local
            })
            .ok_or_else(|| {
                SimError::Conflict(format!(
                    "no bookable slot for practitioner {practitioner:?}, appointment type {appointment_type:?} at {start}"
                ))
            })?;
        let id = self.next_booking;
        self.next_booking += 1;
        self.bookings.insert(
            id,
            BookingRec {
                id,
                practice_id: pid,
                practitioner_id: slot.practitioner_id,
                practitioner: slot.practitioner.clone(),
                appointment_type_id: slot.appointment_type_id,
                appointment_type: slot.appointment_type.clone(),
                pms_resource_id: slot.pms_resource_id.clone(),
                pms_appointment_type_id: Some(slot.pms_appointment_type_id.clone()),
                start: slot.start,
                length_secs: slot.end.duration_since(slot.start).as_secs(),
                booked_at: now,
                patient,
                reason,
                is_new_patient,
                status: PatientStatus::Requested,
                insert_pending: true,
                auto_confirmed: false,
                pms_appointment_ids: Vec::new(),
                pms_patient_id: None,
                reject_reason: None,
                late_reject: false,
                cancel_reason: None,
                did_not_attend: false,
                updates: Vec::new(),
                appointment_change: None,
            },
        );
        let out = self.events(pid, RequestType::Bookings, Some(id), None, now);
        Ok((id, out))
    }

    /// A patient asks to cancel online: a bookingUpdate request.
    pub fn patient_cancel(
        &mut self,
        id: i64,
        now: Timestamp,
    ) -> Result<(u64, i64, Vec<Outgoing>), SimError> {
        self.settle(now);
        let request_id = self.next_request;
        let b = self
            .bookings
            .get_mut(&id)
            .ok_or_else(|| SimError::NotFound(format!("booking {id} does not exist")))?;
        if !b.is_active() {
            return Err(SimError::Conflict(format!(
                "booking {id} is {:?}; it cannot be cancelled",
                b.status
            )));
        }
        if b.updates.iter().any(|u| u.resolution.is_none()) {
            return Err(SimError::Conflict(format!(
                "booking {id} already has a cancellation waiting for the practice"
            )));
        }
        b.updates.push(UpdateRec {
            request_id,
            requested_status: BookingStatus::Cancelled,
            created_at: now,
            resolution: None,
            reject_reason: None,
        });
        let pid = b.practice_id;
        self.next_request += 1;
        let out = self.events(
            pid,
            RequestType::BookingUpdates,
            Some(id),
            Some(request_id),
            now,
        );
        Ok((pid, request_id, out))
    }

    // ---- health ------------------------------------------------------------------------------

    /// The integration's health, as the quick-start guide defines it: unhealthy when, within the
    /// live hours, a critical request has waited longer than 10 minutes or the last poll is older
    /// than 10 minutes (both scaled by the time factor).
    pub fn health(&self, pid: u64, now: Timestamp) -> Result<Health, SimError> {
        let p = self.practice(pid)?;
        let window = self.timing.health_window();
        let local = now.to_zoned_datetime(p.tz.clone()).datetime();
        let live_now = live_hours(p).is_none_or(|h| h.contains(local));
        let live = |since: Timestamp| live_time(p, since, now);
        let mut reasons = Vec::new();
        if let Some(since) = p.last_poll.or(p.integrated_since)
            && live(since) > window
        {
            reasons.push(format!(
                "no poll of /requests for {} s of live hours (limit {} s)",
                live(since).as_secs(),
                window.as_secs()
            ));
        }
        let late = |t: Timestamp| live(t) > window;
        for b in self.bookings.values().filter(|b| b.practice_id == pid) {
            if b.insert_pending && late(b.booked_at) {
                reasons.push(format!(
                    "booking {} unanswered for more than {} s of live hours",
                    b.id,
                    window.as_secs()
                ));
            }
            for u in b
                .updates
                .iter()
                .filter(|u| u.resolution.is_none() && late(u.created_at))
            {
                reasons.push(format!(
                    "booking update {} unanswered for more than {} s of live hours",
                    u.request_id,
                    window.as_secs()
                ));
            }
        }
        for r in p
            .requests
            .iter()
            .filter(|r| r.request_type.is_critical() && late(r.created_at))
        {
            reasons.push(format!(
                "{} request {} unanswered for more than {} s of live hours",
                r.request_type,
                r.request_id,
                window.as_secs()
            ));
        }
        Ok(Health {
            healthy: reasons.is_empty(),
            live_now,
            reasons,
            last_poll: p.last_poll,
        })
    }

    // ---- subscriptions -----------------------------------------------------------------------

    /// `POST /subscription`: without an `id`, a new subscription every time; with an `id`, an
    /// update of that subscription of the same practice and consumer (404 when there is none).
    pub fn subscribe(
        &mut self,
        pid: u64,
        consumer: &str,
        sub: SubscriptionIn,
        now: Timestamp,
    ) -> Result<Subscription, SimError> {
        let url = url::Url::parse(&sub.callback_url).map_err(|e| {
            SimError::Invalid(format!(
                "callbackUrl: {:?} is not a URL: {e}",
                sub.callback_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SimError::Invalid(
                "callbackUrl: must be http or https".into(),
            ));
        }
        let start_at = sub.start_at.unwrap_or(now);
        if let Some(e) = sub.expire_at
            && e <= start_at
        {
            return Err(SimError::Invalid("expireAt: must be after startAt".into()));
        }
        let id = match sub.id {
            Some(id) => {
                let owned = self
                    .subscriptions
                    .get(&id)
                    .is_some_and(|r| r.practice_id == pid && r.consumer == consumer);
                if !owned {
                    return Err(SimError::NotFound(format!(
                        "subscription {id} does not exist"
                    )));
                }
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let out = Subscription {
            id: id.clone(),
            client_id: sub.client_id,
            topic: sub.topic,
            callback_url: sub.callback_url,
            start_at,
            expire_at: sub.expire_at,
        };
        self.subscriptions.insert(
            id,
            SubRec {
                practice_id: pid,
                consumer: consumer.to_owned(),
                sub: out.clone(),
            },
        );
        Ok(out)
    }

    /// The subscriptions of a practice, of every consumer.
    pub fn subscriptions_of(&self, pid: u64) -> impl Iterator<Item = &SubRec> {
        self.subscriptions
            .values()
            .filter(move |r| r.practice_id == pid)
    }

    /// The webhooks for an event.
    pub fn events(
        &self,
        pid: u64,
        t: RequestType,
        booking_id: Option<i64>,
        request_id: Option<i64>,
        now: Timestamp,
    ) -> Vec<Outgoing> {
        let Some(p) = self.practices.get(&pid) else {
            return Vec::new();
        };
        self.subscriptions
            .values()
            .filter(|r| r.practice_id == pid && r.sub.topic.matches(t))
            .filter(|r| {
                p.consents
                    .get(&r.consumer)
                    .is_some_and(|c| c.revoked_at.is_none())
            })
            .filter(|r| r.sub.start_at <= now && r.sub.expire_at.is_none_or(|e| e > now))
            .map(|r| Outgoing {
                subscription_id: r.sub.id.clone(),
                callback_url: r.sub.callback_url.clone(),
                payload: WebhookPayload {
                    timestamp: now,
                    id: r.sub.id.clone(),
                    client_id: r.sub.client_id.clone(),
                    topic: r.sub.topic,
                    data: WebhookData {
                        target: t.target(),
                        request_type: t,
                        booking_id,
                        request_id,
                    },
                },
            })
            .collect()
    }
}

/// SHA-256 of a snapshot's JSON (fields in declaration order, so it is canonical).
pub fn snapshot_hash(s: &AvailabilitySnapshot) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(s).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&json))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The live hours of the practice's liveness contract; none (around the clock) without a
/// contract or when the contract has no `liveHours`.
pub fn live_hours(p: &Practice) -> Option<&Schedule> {
    p.liveness.as_ref().and_then(|c| c.live_hours.as_ref())
}

/// How much of `[from, to)` lies within the practice's live hours (all of it without a liveness
/// contract). Ranges are practice-local; a range ending at 23:59 runs to midnight. Public holidays
/// are not known, so the weekday's hours apply. At most 400 days are examined.
pub fn live_time(p: &Practice, from: Timestamp, to: Timestamp) -> SignedDuration {
    if to <= from {
        return SignedDuration::ZERO;
    }
    let Some(hours) = live_hours(p) else {
        return to.duration_since(from);
    };
    let (start, end) = (
        from.to_zoned_datetime(p.tz.clone()).date(),
        to.to_zoned_datetime(p.tz.clone()).date(),
    );
    let mut total = SignedDuration::ZERO;
    let mut day = start;
    for _ in 0..400 {
        for r in hours.day(day.weekday()) {
            let open = day.to_datetime(r.start).to_zoned_datetime(p.tz.clone());
            let close_civil = if r.end.hour() == 23 && r.end.minute() == 59 {
                day.tomorrow()
                    .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
                    .ok()
            } else {
                Some(day.to_datetime(r.end))
            };
            let close = close_civil.and_then(|c| c.to_zoned_datetime(p.tz.clone()).ok());
            if let (Ok(open), Some(close)) = (open, close) {
                let (a, b) = (open.timestamp().max(from), close.timestamp().min(to));
                if a < b {
                    total += b.duration_since(a);
                }
            }
        }
        if day >= end {
            break;
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn practice(contract: Option<serde_json::Value>) -> Practice {
        let mut m = Market::new(Timing { time_factor: 1.0 }, 10);
        let id = m.add_practice("P", "Australia/Sydney", false).unwrap();
        let mut p = m.practices.remove(&id).unwrap();
        p.liveness = contract.map(|c| serde_json::from_value(c).unwrap());
        p
    }

    fn at(s: &str) -> Timestamp {
        jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", s)
            .unwrap()
            .to_zoned_datetime(TimeZone::get("Australia/Sydney").unwrap())
            .unwrap()
            .timestamp()
    }

    #[test]
    fn live_time_counts_only_the_contract_hours() {
        // 2026-11-23 is a Monday.
        let p = practice(Some(
            serde_json::json!({"liveHours": {"monday": [{"start": "08:00", "end": "17:00"}],
                                                              "tuesday": [{"start": "08:00", "end": "23:59"}]}}),
        ));
        assert_eq!(
            live_time(&p, at("2026-11-23 16:55"), at("2026-11-23 18:00")).as_secs(),
            300
        );
        // Overnight Monday 16:55 to Tuesday 08:07: 5 + 7 minutes.
        assert_eq!(
            live_time(&p, at("2026-11-23 16:55"), at("2026-11-24 08:07")).as_secs(),
            720
        );
        // 23:59 runs to midnight.
        assert_eq!(
            live_time(&p, at("2026-11-24 23:50"), at("2026-11-25 01:00")).as_secs(),
            600
        );
        let always = practice(None);
        assert_eq!(
            live_time(&always, at("2026-11-23 16:55"), at("2026-11-23 18:00")).as_secs(),
            3900
        );
    }

    #[test]
    fn a_request_outside_live_hours_does_not_make_the_integration_unhealthy() {
        let mut m = Market::new(Timing { time_factor: 1.0 }, 10);
        let id = m.add_practice("P", "Australia/Sydney", false).unwrap();
        m.add_consumer("c", Some("k".into())).unwrap();
        m.grant_consent(id, "c", at("2026-11-23 17:30")).unwrap();
        m.practice_mut(id).unwrap().liveness = Some(
            serde_json::from_value(
                serde_json::json!({"liveHours": {"tuesday": [{"start": "08:00", "end": "17:00"}]}}),
            )
            .unwrap(),
        );
        m.raise(
            id,
            RequestType::Availability,
            Some(jiff::civil::date(2026, 11, 30)),
            None,
            None,
            at("2026-11-23 18:00"),
        )
        .unwrap();
        assert!(
            m.health(id, at("2026-11-24 08:05")).unwrap().healthy,
            "5 live minutes only"
        );
        let h = m.health(id, at("2026-11-24 08:15")).unwrap();
        assert!(!h.healthy);
        assert_eq!(h.reasons.len(), 2, "{:?}", h.reasons);
    }
}
