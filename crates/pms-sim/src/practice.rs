//! One simulated practice: its setup, diary, patients, API keys, change log and webhooks, and
//! every rule a real PMS enforces when they change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use jiff::civil::{Date, DateTime};
use serde::{Deserialize, Serialize};
use slotbridge_domain::practice::{
    Attendance, BookingSource, ClockTime, DiaryAppointment, DiaryBlock, PracticeSetup,
    PractitionerHours, Weekday,
};

use crate::generate::{FIRST_FREE_ID, Plan};
use crate::problem::Problem;

/// How many changes a practice keeps for the change feed; older cursors get 410.
pub const CHANGE_RETENTION: usize = 10_000;

/// A patient file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// Patient id (assigned by the PMS).
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Mobile phone.
    #[serde(default)]
    pub mobile_phone: Option<String>,
    /// Home phone.
    #[serde(default)]
    pub home_phone: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
    /// Medicare card.
    #[serde(default)]
    pub medicare: Option<Medicare>,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street line.
    pub line1: String,
    /// Suburb.
    pub suburb: String,
    /// State, e.g. `NSW`.
    pub state: String,
    /// Postcode.
    pub postcode: String,
}

/// A Medicare card number and the patient's individual reference number (IRN) on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Medicare {
    /// The 10-digit card number.
    pub number: String,
    /// The IRN, 1-9.
    pub irn: u8,
}

/// Whether `number` is a well-formed Medicare card number (10 digits, valid check digit).
pub fn medicare_valid(number: &str) -> bool {
    let d: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 10 || number.len() != 10 || !(2..=6).contains(&d[0]) {
        return false;
    }
    let weights = [1, 3, 7, 9, 1, 3, 7, 9];
    let sum: u32 = d.iter().zip(weights).map(|(a, w)| a * w).sum();
    sum % 10 == d[8]
}

/// Normalise a phone number for comparison: digits only, `+61`/`61` prefix becomes `0`.
pub fn normalize_phone(s: &str) -> String {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let international = s.trim_start().starts_with('+') || digits.len() == 11;
    if international && digits.starts_with("61") {
        format!("0{}", &digits[2..])
    } else {
        digits
    }
}

/// Normalise a name for comparison: NFKD, no diacritics, lowercase, letters only.
pub fn normalize_name(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkd()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// An API key of a practice.
#[derive(Clone)]
pub struct ApiKey {
    /// The key.
    pub key: String,
    /// Revoked keys get 401 `key-revoked`.
    pub revoked: bool,
}

/// Redacted: the secret never reaches a log through `Debug`.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// A registered webhook subscription.
#[derive(Clone)]
pub struct Webhook {
    /// Subscription id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The HMAC-SHA256 signing secret.
    pub secret: String,
}

/// Redacted: the secret never reaches a log through `Debug`.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Monotonic sequence number within the practice; the feed cursor.
    pub seq: u64,
    /// The change type, e.g. `appointment.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of the changed thing.
    pub subject: String,
    /// When it happened, RFC 3339.
    pub time: String,
    /// The changed thing after the change (or what was removed).
    pub data: serde_json::Value,
}

/// A parsed online insert.
#[derive(Debug, Clone)]
pub struct OnlineInsert {
    /// Practitioner id.
    pub practitioner: String,
    /// Practice-local start.
    pub start: DateTime,
    /// Practice-local end.
    pub end: DateTime,
    /// Reason id.
    pub reason: Option<String>,
    /// Patient id.
    pub patient: String,
    /// Notes.
    pub notes: String,
    /// External reference.
    pub external_ref: String,
}

/// The organisation a site belongs to: one PMS account with several locations (sites), each
/// with its own practitioners, diary, patients and API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organisation {
    /// The organisation's id (`org_…`).
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A practice held by the simulator.
///
/// A generated practice carries the [`Plan`] its diary was generated from and builds each day's
/// appointments, and its patient files, on first use: every method that reads or changes
/// appointments or patients builds what it needs first, so callers never see a day half built.
#[derive(Debug)]
pub struct Practice {
    /// The online-booking setup.
    pub setup: PracticeSetup,
    /// Weekly sessions and breaks.
    pub hours: Vec<PractitionerHours>,
    /// Dated blocks.
    pub blocks: Vec<DiaryBlock>,
    /// Closed dates.
    pub closed: BTreeSet<Date>,
    appts: BTreeMap<(DateTime, u64), DiaryAppointment>,
    appt_keys: HashMap<u64, DateTime>,
    by_ref: HashMap<String, u64>,
    next_appt: u64,
    next_block: u64,
    plan: Option<Arc<Plan>>,
    /// Bit `d` is set once day `d` of the plan is in `appts`.
    built_days: u128,
    patients: Vec<Patient>,
    /// `false` while a plan's patient files are not built yet.
    patients_built: bool,
    next_patient: u64,
    /// API keys.
    pub keys: Vec<ApiKey>,
    /// The organisation this site is a location of, if it was created as one.
    pub organisation: Option<Organisation>,
    changes: VecDeque<Change>,
    next_seq: u64,
    /// Webhook subscriptions.
    pub webhooks: Vec<Webhook>,
    /// Set on the first change: a changed practice is never evicted and regenerated.
    pub dirty: bool,
    /// What this practice weighs in memory, in [`WEIGHT_PER_DAY`] units: 1 for the practice,
    /// 1 per built diary day, [`WEIGHT_OF_PATIENTS`] once its patient files are built.
    weight: usize,
    /// The registry's total weight, kept up to date with ours while we are in it.
    meter: Option<Arc<AtomicUsize>>,
}

/// A built diary day of a generated practice (about 30 appointments) is the weight unit.
pub const WEIGHT_PER_DAY: usize = 1;
/// A generated practice's patient files weigh as much as this many built days.
pub const WEIGHT_OF_PATIENTS: usize = 8;

impl Drop for Practice {
    fn drop(&mut self) {
        if let Some(m) = &self.meter {
            m.fetch_sub(self.weight, Ordering::Relaxed);
        }
    }
}

fn appt_num(id: &str) -> Option<u64> {
    id.strip_prefix('A')?.parse().ok()
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn conflict(name: &str, detail: String) -> Problem {
    Problem::new(StatusCode::CONFLICT, name, "Slot not available", detail)
}

impl Practice {
    /// A practice with an empty diary.
    pub fn new(setup: PracticeSetup, hours: Vec<PractitionerHours>, keys: Vec<String>) -> Self {
        Self {
            setup,
            hours,
            blocks: Vec::new(),
            closed: BTreeSet::new(),
            appts: BTreeMap::new(),
            appt_keys: HashMap::new(),
            by_ref: HashMap::new(),
            next_appt: 1,
            next_block: 1,
            plan: None,
            built_days: 0,
            patients: Vec::new(),
            patients_built: true,
            next_patient: 1,
            keys: keys
                .into_iter()
                .map(|key| ApiKey {
                    key,
                    revoked: false,
                })
                .collect(),
            organisation: None,
            changes: VecDeque::new(),
            next_seq: 1,
            webhooks: Vec::new(),
            dirty: false,
            weight: WEIGHT_PER_DAY,
            meter: None,
        }
    }

    /// Count this practice's weight, now and as it grows, in `meter`.
    pub fn attach_meter(&mut self, meter: Arc<AtomicUsize>) {
        meter.fetch_add(self.weight, Ordering::Relaxed);
        if let Some(old) = self.meter.replace(meter) {
            old.fetch_sub(self.weight, Ordering::Relaxed);
        }
    }

    /// What this practice weighs in memory (see [`WEIGHT_PER_DAY`]).
    pub fn weight(&self) -> usize {
        self.weight
    }

    fn add_weight(&mut self, w: usize) {
        self.weight += w;
        if let Some(m) = &self.meter {
            m.fetch_add(w, Ordering::Relaxed);
        }
    }

    /// A generated practice: hours, blocks and closed dates from `plan`; its appointments and
    /// patient files are built from it on first use.
    pub fn from_plan(setup: PracticeSetup, keys: Vec<String>, plan: Plan) -> Self {
        let mut p = Self::new(setup, plan.hours().to_vec(), keys);
        p.blocks = plan.blocks().to_vec();
        p.next_block = p.blocks.len() as u64 + 1;
        p.closed = plan.closed().clone();
        p.next_appt = FIRST_FREE_ID;
        p.next_patient = plan.patient_count() as u64 + 1;
        p.patients_built = false;
        p.plan = Some(Arc::new(plan));
        p
    }

    /// The practice's time zone.
    pub fn tz(&self) -> &jiff::tz::TimeZone {
        self.setup.timezone.time_zone()
    }

    /// Build the planned appointments of diary day `day` unless they are built already.
    fn build_day(&mut self, plan: &Plan, day: u32) {
        let bit = 1u128 << day;
        if self.built_days & bit != 0 {
            return;
        }
        self.built_days |= bit;
        self.add_weight(WEIGHT_PER_DAY);
        for (n, a) in plan.day(day) {
            if let Some(r) = &a.external_ref {
                self.by_ref.insert(r.clone(), n);
            }
            self.appt_keys.insert(n, a.start);
            self.appts.insert((a.start, n), a);
        }
    }

    /// Build the planned appointments of the dates `first..=last` not built yet.
    fn build_dates(&mut self, first: Date, last: Date) {
        if let Some(plan) = self.plan.clone() {
            for day in plan.days_between(first, last) {
                self.build_day(&plan, day);
            }
        }
    }

    /// Build the planned day that appointment number `n` is on.
    fn build_day_of_number(&mut self, n: u64) {
        if let Some(plan) = self.plan.clone()
            && let Some(day) = Plan::day_of_number(n)
        {
            self.build_day(&plan, day);
        }
    }

    /// Build the planned day that a generated online booking's reference is on.
    fn build_day_of_ref(&mut self, external_ref: &str) {
        if let Some(plan) = self.plan.clone()
            && let Some(day) = plan.day_of_ref(external_ref)
        {
            self.build_day(&plan, day);
        }
    }

    /// Build the whole planned diary and the patient files now.
    pub fn materialize_all(&mut self) {
        if let Some(plan) = self.plan.clone() {
            for day in plan.days_between(plan.first_date(), jiff::civil::Date::MAX) {
                self.build_day(&plan, day);
            }
        }
        self.build_patients();
    }

    fn build_patients(&mut self) {
        if self.patients_built {
            return;
        }
        self.patients_built = true;
        if self.plan.is_some() {
            self.add_weight(WEIGHT_OF_PATIENTS);
        }
        if let Some(plan) = &self.plan {
            let mut files = plan.patients();
            for (i, p) in files.iter_mut().enumerate() {
                p.id = format!("P{}", i + 1);
            }
            files.append(&mut self.patients);
            self.patients = files;
        }
    }

    /// The patient files.
    pub fn patients(&mut self) -> &[Patient] {
        self.build_patients();
        &self.patients
    }

    /// Add an appointment as loaded or booked, without any check; returns its id.
    pub fn put_appointment(&mut self, mut a: DiaryAppointment) -> String {
        let n = self.next_appt;
        self.next_appt += 1;
        a.id = format!("A{n}");
        if let Some(r) = &a.external_ref {
            self.by_ref.insert(r.clone(), n);
        }
        self.appt_keys.insert(n, a.start);
        let id = a.id.clone();
        self.appts.insert((a.start, n), a);
        id
    }

    /// Add a block without any check; returns its id.
    pub fn put_block(&mut self, mut b: DiaryBlock) -> String {
        b.id = format!("B{}", self.next_block);
        self.next_block += 1;
        let id = b.id.clone();
        self.blocks.push(b);
        id
    }

    /// Add a patient file; returns it with its new id.
    pub fn put_patient(&mut self, mut p: Patient) -> Patient {
        self.build_patients();
        p.id = format!("P{}", self.next_patient);
        self.next_patient += 1;
        self.patients.push(p.clone());
        p
    }

    /// The appointment with `id`.
    pub fn appointment(&mut self, id: &str) -> Option<&DiaryAppointment> {
        let n = appt_num(id)?;
        self.build_day_of_number(n);
        self.built_appointment(n)
    }

    fn built_appointment(&self, n: u64) -> Option<&DiaryAppointment> {
        let start = self.appt_keys.get(&n)?;
        self.appts.get(&(*start, n))
    }

    /// Appointments starting in `[from, to)`, after the `(start, number)` key `after`.
    pub fn appointments_between(
        &mut self,
        from: DateTime,
        to: DateTime,
        after: Option<(DateTime, u64)>,
    ) -> impl Iterator<Item = &DiaryAppointment> {
        let last = if to.time() == jiff::civil::Time::midnight() {
            to.date().yesterday().unwrap_or(to.date())
        } else {
            to.date()
        };
        self.build_dates(from.date(), last);
        self.built_between(from, to, after)
    }

    fn built_between(
        &self,
        from: DateTime,
        to: DateTime,
        after: Option<(DateTime, u64)>,
    ) -> impl Iterator<Item = &DiaryAppointment> {
        let lower = match after {
            Some(k) => std::ops::Bound::Excluded(k),
            None => std::ops::Bound::Included((from, 0)),
        };
        self.appts
            .range((lower, std::ops::Bound::Excluded((to, 0))))
            .map(|(_, a)| a)
    }

    /// The pagination key of an appointment.
    pub fn appointment_key(a: &DiaryAppointment) -> Option<(DateTime, u64)> {
        appt_num(&a.id).map(|n| (a.start, n))
    }

    /// Number of appointments in memory (a generated diary's days count once built).
    pub fn appointment_count(&self) -> usize {
        self.appts.len()
    }

    /// Remove an appointment (a desk action); returns it.
    pub fn remove_appointment(&mut self, id: &str) -> Option<DiaryAppointment> {
        let n = appt_num(id)?;
        self.build_day_of_number(n);
        let start = self.appt_keys.remove(&n)?;
        let a = self.appts.remove(&(start, n))?;
        if let Some(r) = &a.external_ref {
            self.by_ref.remove(r);
        }
        Some(a)
    }

    /// Mark an appointment as not attended (a desk action): 404 if there is no such
    /// appointment. Any appointment may be marked, one still to come too: the desk decides (and
    /// a reviewer driving the simulator can mark a booking just made). Returns the appointment
    /// and whether it changed (`false`: it was marked already).
    pub fn mark_did_not_attend(&mut self, id: &str) -> Result<(DiaryAppointment, bool), Problem> {
        let missing = || Problem::not_found(format!("no appointment {id:?}"));
        let n = appt_num(id).ok_or_else(missing)?;
        self.build_day_of_number(n);
        let start = *self.appt_keys.get(&n).ok_or_else(missing)?;
        let a = self.appts.get_mut(&(start, n)).ok_or_else(missing)?;
        let changed = a.attendance != Attendance::DidNotAttend;
        a.attendance = Attendance::DidNotAttend;
        let a = a.clone();
        if changed {
            self.dirty = true;
        }
        Ok((a, changed))
    }

    /// Record a change in the feed and return it (for webhook delivery).
    pub fn record(
        &mut self,
        kind: &str,
        subject: &str,
        data: serde_json::Value,
        now: jiff::Timestamp,
    ) -> Change {
        self.dirty = true;
        let change = Change {
            seq: self.next_seq,
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            time: now
                .to_zoned_datetime(self.tz().clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            data,
        };
        self.next_seq += 1;
        self.changes.push_back(change.clone());
        while self.changes.len() > CHANGE_RETENTION {
            self.changes.pop_front();
        }
        change
    }

    /// Changes after cursor `since`. `Err` if changes after `since` were already discarded.
    pub fn changes_since(&self, since: u64, limit: usize) -> Result<(Vec<Change>, u64), Problem> {
        let oldest = self.changes.front().map_or(self.next_seq, |c| c.seq);
        if since >= self.next_seq {
            return Err(Problem::invalid(format!(
                "since: cursor {since} is ahead of the feed (latest is {})",
                self.next_seq - 1
            )));
        }
        if since + 1 < oldest {
            return Err(Problem::new(
                StatusCode::GONE,
                "cursor-expired",
                "Cursor expired",
                format!(
                    "since: changes after {since} are no longer kept (oldest kept is {oldest}); read the diary again and continue from the latest cursor"
                ),
            ));
        }
        let items: Vec<Change> = self
            .changes
            .iter()
            .filter(|c| c.seq > since)
            .take(limit)
            .cloned()
            .collect();
        let next = items.last().map_or(since, |c| c.seq);
        Ok((items, next))
    }

    /// The latest cursor of the change feed.
    pub fn latest_cursor(&self) -> u64 {
        self.next_seq - 1
    }

    fn hours_of(&self, practitioner: &str) -> Option<&PractitionerHours> {
        self.hours.iter().find(|h| h.practitioner == practitioner)
    }

    /// Validate and insert an online booking. Returns the appointment and whether it was created
    /// (`false`: the external reference was already booked and the existing one is returned).
    pub fn insert_online(
        &mut self,
        ins: OnlineInsert,
        now: jiff::Timestamp,
    ) -> Result<(DiaryAppointment, bool), Problem> {
        self.build_day_of_ref(&ins.external_ref);
        if let Some(n) = self.by_ref.get(&ins.external_ref)
            && let Some(start) = self.appt_keys.get(n)
            && let Some(a) = self.appts.get(&(*start, *n))
        {
            return Ok((a.clone(), false));
        }
        self.build_dates(ins.start.date(), ins.start.date());
        self.build_patients();
        self.check_online(&ins, now)?;
        let a = DiaryAppointment {
            id: String::new(),
            practitioner: ins.practitioner,
            start: ins.start,
            end: ins.end,
            reason: ins.reason,
            patient: Some(ins.patient),
            notes: ins.notes,
            source: BookingSource::Online,
            external_ref: Some(ins.external_ref),
            attendance: Attendance::Booked,
        };
        let id = self.put_appointment(a);
        let a = self.appointment(&id).cloned().ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the appointment vanished",
            )
        })?;
        Ok((a, true))
    }

    fn check_online(&self, ins: &OnlineInsert, now: jiff::Timestamp) -> Result<(), Problem> {
        let setup = &self.setup;
        let interval = setup.interval_minutes;
        let p = &ins.practitioner;
        if setup.practitioner(p).is_none() {
            return Err(Problem::invalid(format!(
                "practitioner: no practitioner {p:?} at this practice"
            )));
        }
        let Some(entry) = setup.online_booking.iter().find(|e| &e.practitioner == p) else {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not-online",
                "Practitioner does not publish online",
                format!("practitioner: {p:?} is not in the Online Booking Configuration"),
            ));
        };
        if !self.patients.iter().any(|x| x.id == ins.patient) {
            return Err(Problem::invalid(format!(
                "patient: no patient {:?} at this practice",
                ins.patient
            )));
        }
        if ins.end <= ins.start {
            return Err(Problem::invalid("end: must be after start"));
        }
        let date = ins.start.date();
        let start = ClockTime::of(ins.start);
        let end_same_day = ins.end.date() == date;
        let end = if end_same_day {
            ClockTime::of(ins.end)
        } else if ins.end == ClockTime::END_OF_DAY.on(date) {
            ClockTime::END_OF_DAY
        } else {
            return Err(Problem::invalid("end: must be on the same day as start"));
        };
        let on_grid = |dt: DateTime, t: ClockTime| {
            dt.second() == 0 && dt.subsec_nanosecond() == 0 && t.minutes().is_multiple_of(interval)
        };
        if !on_grid(ins.start, start) || !on_grid(ins.end, end) {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "off-grid",
                "Off the diary grid",
                format!("start/end: {start}-{end} is not on the diary's {interval}-minute grid"),
            ));
        }
        let duration = end.minutes() - start.minutes();
        let expected = match &ins.reason {
            Some(r) => {
                let Some(reason) = setup.reasons.iter().find(|x| &x.id == r) else {
                    return Err(Problem::invalid(format!(
                        "reason: no booking reason {r:?} at this practice"
                    )));
                };
                let Some(rule) = reason.rule_for(p) else {
                    return Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "reason-not-offered",
                        "Reason not offered by practitioner",
                        format!(
                            "reason: {:?} has no publishing rule for practitioner {p:?}",
                            reason.name
                        ),
                    ));
                };
                let weekday = Weekday::of(date);
                let in_window = rule
                    .windows
                    .iter()
                    .any(|w| w.on(weekday) && w.start <= start && end <= w.end);
                if !in_window {
                    return Err(conflict(
                        "outside-reason-window",
                        format!(
                            "start: {date} {start}-{end} is outside the publishing windows of reason {:?} for practitioner {p:?}",
                            reason.name
                        ),
                    ));
                }
                rule.duration_minutes
            }
            None => entry.duration_minutes,
        };
        if duration != expected {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong-duration",
                "Wrong duration",
                format!(
                    "end: the appointment lasts {duration} minutes; the PMS's duration is {expected} minutes"
                ),
            ));
        }
        if ins
            .start
            .to_zoned_datetime(self.tz().clone())
            .map(|z| z.timestamp())
            .unwrap_or(now)
            < now
        {
            return Err(Problem::invalid("start: is in the past"));
        }
        if self.closed.contains(&date) {
            return Err(conflict(
                "closed-date",
                format!("start: the practice is closed on {date}"),
            ));
        }
        let weekday = Weekday::of(date);
        let span = (start.minutes(), end.minutes());
        let hours = self.hours_of(p);
        let in_session = hours.is_some_and(|h| {
            h.sessions
                .iter()
                .any(|w| w.on(weekday) && w.start <= start && end <= w.end)
        });
        if !in_session {
            return Err(conflict(
                "outside-session",
                format!("start: {date} {start}-{end} is outside practitioner {p:?}'s sessions"),
            ));
        }
        if let Some(b) = hours.and_then(|h| {
            h.breaks
                .iter()
                .find(|w| w.on(weekday) && overlaps(span, (w.start.minutes(), w.end.minutes())))
        }) {
            return Err(conflict(
                "overlaps-break",
                format!(
                    "start: {date} {start}-{end} overlaps practitioner {p:?}'s break {}-{}",
                    b.start, b.end
                ),
            ));
        }
        if let Some(b) = self.blocks.iter().find(|b| {
            b.date == date
                && b.practitioner.as_ref().is_none_or(|x| x == p)
                && overlaps(span, (b.start.minutes(), b.end.minutes()))
        }) {
            return Err(conflict(
                "overlaps-block",
                format!(
                    "start: {date} {start}-{end} overlaps block {} ({:?}, {}-{})",
                    b.id, b.kind, b.start, b.end
                ),
            ));
        }
        let day_start = date.to_datetime(jiff::civil::Time::midnight());
        if let Some(a) = self
            .built_between(day_start, ins.end, None)
            .find(|a| &a.practitioner == p && a.start < ins.end && ins.start < a.end)
        {
            return Err(conflict(
                "overlaps-appointment",
                format!(
                    "start: {date} {start}-{end} overlaps appointment {} ({}-{})",
                    a.id,
                    ClockTime::of(a.start),
                    ClockTime::of(a.end)
                ),
            ));
        }
        Ok(())
    }
}
