//! Bookings into the diary, exactly once, or rejected with a reason within 20 seconds.
//!
//! Each booking request goes through a durable state machine in the store's outbox:
//!
//! ```text
//! Received ──(slot re-checked, patient matched or created)──▶ PatientResolved ──(slot
//!   re-checked, inserted in the PMS, external reference = HE-{booking id})──▶ Inserted
//!   ──(confirmInsert)──▶ Confirmed ──(appointment removed at the desk: cancel)──▶ (cancelled_at)
//!      └──────────────┴───────────────────(rejectInsert with the reason)──▶ Rejected
//! ```
//!
//! The marketplace's listing is only a source of new rows: every booking is worked from the
//! outbox, claimed by one worker at a time ([`Store::claim_link_bookings`]), so a booking left
//! unfinished by a crash or a transient failure is resumed at the next tick even when the
//! marketplace no longer lists it.
//!
//! A round of work reads the PMS setup once and each (practitioner, day)'s diary once, then
//! works the bookings of one (practitioner, day) in the order the patients booked, adding each
//! insert to that diary: of many bookings for one slot the first is inserted and the others are
//! rejected without another PMS call. Different practitioners and days are worked concurrently.
//!
//! Failure handling (see docs/bookings.md):
//! - a refusal (slot taken, practitioner unlinked, PMS conflict) is rejected at once;
//! - a transient failure (PMS down, timeout) is retried at the next tick while the booking can
//!   still be rejected within the marketplace's 20 s; then it is rejected with the reason, after
//!   looking for the appointment by its external reference when an insert may have gone
//!   through. A booking the marketplace already auto-confirmed keeps being retried (it may still
//!   go in) for [`GIVE_UP_AFTER`];
//! - the rejection is recorded before the marketplace is told, and a rejected booking is never
//!   inserted again;
//! - an inserted booking is never rejected: its confirmation is retried with backoff.
//!
//! Booking updates (cancellations) are refused for a PMS that cannot cancel online, with the
//! reference system's answer: the patient must call the practice. A confirmed booking whose
//! appointment disappears from the diary (removed at the desk) is reported to the marketplace
//! once, which makes the slot bookable again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use jiff::civil::{Date, DateTime};
use jiff::{SignedDuration, Timestamp};
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::matching::{
    self, BookingPatient, CandidateQuery, MatchConfig, Outcome, PmsPatient,
};
use slotbridge_domain::practice::{Diary, PracticeSetup, to_snapshot};
use slotbridge_domain::publish::{ResolvedBooking, practitioner_of, resolve_booking};
use slotbridge_market::MarketError;
use slotbridge_market::PracticeClient;
use slotbridge_market::types::{
    Booking as MarketBooking, BookingUpdate, ConfirmBookingInsert, RequestType,
};
use slotbridge_pms::{NewAppointment, NewPatient, PatientQuery, PmsConnector, PmsError};
use slotbridge_store::{
    Booking, BookingState, BookingTransition, Link, NewBooking, Store, StoreError,
};
use tracing::{debug, info, warn};

use crate::worker::{Ctx, SyncFailure, Trigger};

/// A booking that cannot go in is rejected before this much time has passed since the patient
/// booked (the marketplace confirms it by itself at 20 s); the rest is for rejectInsert.
pub const DECIDE_WITHIN: SignedDuration = SignedDuration::from_secs(15);
/// A booking the marketplace already auto-confirmed is retried this long after the patient
/// booked before it is rejected (late: the practice then cancels it by hand).
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_secs(10 * 60);
/// The longest one PMS call may take while a booking is being decided.
const PMS_CALL_LIMIT: Duration = Duration::from_secs(4);
/// The longest the look-up by external reference may take before a rejection.
const CHECK_LIMIT: Duration = Duration::from_secs(2);
/// How long a claimed booking is this worker's before another may take it over.
const CLAIM_FOR: Duration = Duration::from_secs(60);
/// Bookings claimed per round.
const BATCH: u32 = 500;
/// (practitioner, day) groups worked at once.
const PARALLEL: usize = 4;
/// Confirmed bookings younger than this are watched for desk cancellations (bookings are taken
/// at most 90 days ahead).
const STANDING_FOR: SignedDuration = SignedDuration::from_hours(24 * 92);
/// The reason given to the marketplace for a desk cancellation.
pub const DESK_CANCELLATION: &str = "The practice cancelled this appointment.";

/// The answer to a patient who tries to cancel online with a PMS that cannot (the seed).
pub fn cancellation_refusal(practice_phone: &str) -> String {
    let phone = if practice_phone.trim().is_empty() {
        String::new()
    } else {
        format!(" on {}", practice_phone.trim())
    };
    format!(
        "Online cancellations are not supported by this practice. Please call the practice{phone} \
         to cancel or reschedule your appointment."
    )
}

/// The answer to a booking update naming a booking the integration never received.
pub const UNKNOWN_BOOKING: &str = "This booking is not known to the practice's system.";

/// Answer the waiting requests of `kind` (bookings or booking updates) for one link.
pub async fn handle<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
    kind: RequestType,
) -> Result<(), SyncFailure> {
    match kind {
        RequestType::Bookings => {
            let listed: Vec<MarketBooking> = market.all_requests(RequestType::Bookings).await?;
            let now = Timestamp::now();
            for b in &listed {
                let id = b.booking_id.to_string();
                let new = NewBooking {
                    booking_id: id.clone(),
                    link_id: link.id,
                    request: serde_json::to_value(b).unwrap_or_default(),
                    received_at: now,
                };
                if ctx.store.enqueue_booking(&new).await? {
                    debug!(booking = %id, link = %link.id, "booking received");
                    continue;
                }
                // Known already. Still listed although answered: our answer was lost.
                if let Some(row) = ctx.store.booking(&id).await?
                    && row.state.is_terminal()
                {
                    answer_again(market, &row, b).await;
                }
            }
            run_due(ctx, link, pms, market).await
        }
        RequestType::BookingUpdates => {
            let updates: Vec<BookingUpdate> =
                market.all_requests(RequestType::BookingUpdates).await?;
            if updates.is_empty() {
                return Ok(());
            }
            let phone = pms.read_setup().await.map(|s| s.phone).unwrap_or_default();
            for u in updates {
                let known = ctx.store.booking(&u.booking_id.to_string()).await?;
                // No connector cancels online today (Exact cannot): every update is refused, with
                // the seed's answer for a known booking.
                let reason = if known.is_none() {
                    UNKNOWN_BOOKING.to_owned()
                } else {
                    cancellation_refusal(&phone)
                };
                info!(
                    booking = u.booking_id,
                    request = u.request_id,
                    known = known.is_some(),
                    "booking update refused"
                );
                market
                    .reject_update(u.booking_id, u.request_id, Some(&reason))
                    .await
                    .or_else(answered_ok)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Called after every sync with the diary just read: confirmed online bookings whose
/// appointment is gone from the diary were cancelled at the desk; each is reported to the
/// marketplace once (which makes its slot bookable again there).
pub async fn after_sync(
    ctx: &Arc<Ctx>,
    link: &Link,
    market: &PracticeClient,
    setup: &PracticeSetup,
    diary: &Diary,
) -> Result<(), SyncFailure> {
    let now = Timestamp::now();
    let since = now.checked_sub(STANDING_FOR).unwrap_or(Timestamp::MIN);
    let standing = ctx.store.standing_bookings(link.id, since).await?;
    if standing.is_empty() {
        return Ok(());
    }
    let horizon = u32::try_from(link.horizon_days.get()).unwrap_or(30);
    let dates = crate::publisher::horizon_dates(setup, now, horizon);
    let (Some(first), Some(last)) = (dates.first().copied(), dates.last().copied()) else {
        return Ok(());
    };
    let now_local = now
        .to_zoned_datetime(setup.timezone.time_zone().clone())
        .datetime();
    let ids: HashSet<&str> = diary.appointments.iter().map(|a| a.id.as_str()).collect();
    let refs: HashSet<&str> = diary
        .appointments
        .iter()
        .filter_map(|a| a.external_ref.as_deref())
        .collect();
    for row in standing {
        let Ok(b) = serde_json::from_value::<MarketBooking>(row.request.clone()) else {
            continue;
        };
        let start = b.pms_appointment_time;
        // Only appointments still to come inside the range just read can be judged.
        if start.date() < first || start.date() > last || start <= now_local {
            continue;
        }
        let Some(appointment) = row.pms_appointment_id.as_deref() else {
            continue;
        };
        if ids.contains(appointment) || refs.contains(external_ref(b.booking_id).as_str()) {
            continue;
        }
        let told = match market.cancel(b.booking_id, Some(DESK_CANCELLATION)).await {
            Ok(()) => "reported to the marketplace".to_owned(),
            Err(e) if e.is_transient() => {
                warn!(booking = %row.booking_id, error = %e, "reporting a desk cancellation failed; retried at the next sync");
                continue;
            }
            Err(e) => format!("the marketplace refused the cancellation ({e})"),
        };
        let reason = format!("appointment {appointment} removed at the desk; {told}");
        if ctx
            .store
            .mark_booking_cancelled(&row.booking_id, &reason, now)
            .await?
        {
            info!(booking = %row.booking_id, link = %link.id, %appointment, "desk cancellation reported");
        }
    }
    Ok(())
}

/// Called at every poll tick of a link worker, after the marketplace's requests were answered:
/// resumes the link's bookings left unfinished (a crash, a transient failure) whose retry is
/// due, whether or not the marketplace still lists them.
pub async fn on_tick<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
) -> Result<(), SyncFailure> {
    run_due(ctx, link, pms, market).await
}

/// Claim the link's due bookings and work them as one round.
async fn run_due<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
) -> Result<(), SyncFailure> {
    if !ctx
        .store
        .has_due_bookings(link.id, Timestamp::now())
        .await?
    {
        return Ok(());
    }
    let claimed = ctx
        .store
        .claim_link_bookings(
            link.id,
            &ctx.settings.node_id,
            BATCH,
            CLAIM_FOR,
            Timestamp::now(),
        )
        .await?;
    if claimed.is_empty() {
        return Ok(());
    }
    let round = Round {
        ctx,
        link,
        pms,
        market,
        setup: None,
        patients: Mutex::new(HashMap::new()),
        rejected: Mutex::new(false),
    };
    let mut jobs = Vec::with_capacity(claimed.len());
    for row in claimed {
        match serde_json::from_value::<MarketBooking>(row.request.clone()) {
            Ok(b) => jobs.push(Job { row, b }),
            Err(e) => {
                warn!(booking = %row.booking_id, error = %e, "the stored booking request cannot be read");
                round.unreadable(row).await;
            }
        }
    }
    let needs_pms = jobs.iter().any(|j| j.row.state != BookingState::Inserted);
    let setup = if needs_pms {
        Some(
            limited(PMS_CALL_LIMIT, pms.read_setup())
                .await
                .map_err(|e| e.to_string()),
        )
    } else {
        None
    };
    let round = Round { setup, ..round };
    // One group per (practitioner, day), worked in booking order; confirmations on their own.
    let mut groups: BTreeMap<(String, Option<Date>, String), Vec<Job>> = BTreeMap::new();
    for job in jobs {
        let key = if job.row.state == BookingState::Inserted {
            (String::new(), None, job.row.booking_id.clone())
        } else {
            (
                practitioner_of(job.b.pms_resource_id.as_deref().unwrap_or_default()).to_owned(),
                Some(job.b.pms_appointment_time.date()),
                String::new(),
            )
        };
        groups.entry(key).or_default().push(job);
    }
    for g in groups.values_mut() {
        g.sort_by_key(|j| (j.b.booked_time, j.b.booking_id));
    }
    stream::iter(groups.into_values())
        .map(|g| round.run_group(g))
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
    if *lock(&round.rejected) {
        // The marketplace's availability was stale: refresh it.
        ctx.trigger(link.id, Trigger::PmsChanged);
    }
    Ok(())
}

/// One claimed booking and the marketplace's request it came from.
struct Job {
    row: Booking,
    b: MarketBooking,
}

/// Why a step did not move a booking on.
enum Fail {
    /// The booking cannot go in: reject it with this reason.
    Refuse(String),
    /// The PMS or the marketplace failed in a way a retry may cure.
    Transient(String),
    /// The store failed: leave the booking claimed; the claim lapses and it is resumed.
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// A PMS failure: transient ones (and unreadable answers, after which an insert may have gone
/// through) are retried; the others refuse the booking.
fn pms_fail(e: PmsError) -> Fail {
    if e.is_transient() || matches!(e, PmsError::Protocol { .. }) {
        Fail::Transient(e.to_string())
    } else {
        Fail::Refuse(format!("the practice's system refused the booking ({e})"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A PMS call bounded by `limit` (on top of the connector's own timeout and retries).
async fn limited<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, PmsError>>,
) -> Result<T, PmsError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(PmsError::Timeout))
}

/// The state shared by one round of work on a link's bookings.
struct Round<'a, P> {
    ctx: &'a Arc<Ctx>,
    link: &'a Link,
    pms: &'a P,
    market: &'a PracticeClient,
    /// The PMS setup, read once per round when some booking needs it.
    setup: Option<Result<PracticeSetup, String>>,
    /// Patient resolution is serialised per (date of birth, last name), so two bookings of one
    /// new patient in a round create one file.
    patients: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Whether a booking was rejected (the link's availability is then refreshed).
    rejected: Mutex<bool>,
}

/// What a step did.
enum Moved {
    /// The booking moved on: the row as it is now.
    To(Box<Booking>),
    /// Nothing more to do in this round.
    Done,
}

impl<P: PmsConnector> Round<'_, P> {
    fn store(&self) -> &Store {
        &self.ctx.store
    }

    fn setup(&self) -> Result<&PracticeSetup, Fail> {
        match &self.setup {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(Fail::Transient(e.clone())),
            None => Err(Fail::Transient("the setup was not read".into())),
        }
    }

    /// The bookings of one (practitioner, day), in order, sharing that day's diary.
    async fn run_group(&self, jobs: Vec<Job>) {
        let mut diary: Option<Diary> = None;
        for job in jobs {
            self.drive(job, &mut diary).await;
        }
    }

    /// Move one booking as far as it goes now.
    async fn drive(&self, job: Job, diary: &mut Option<Diary>) {
        let Job { mut row, b } = job;
        loop {
            let result = self.step(&row, &b, diary).await;
            match result {
                Ok(Moved::To(next)) => row = *next,
                Ok(Moved::Done) => return,
                Err(Fail::Refuse(reason)) => {
                    self.reject(&row, &b, &reason).await;
                    return;
                }
                Err(Fail::Transient(why)) => match self.after_failure(&row, &b, &why).await {
                    Some(next) => row = next,
                    None => return,
                },
                Err(Fail::Store(e)) => {
                    warn!(booking = %row.booking_id, error = %e, "booking step not recorded; resumed when its claim lapses");
                    return;
                }
            }
        }
    }

    async fn step(
        &self,
        row: &Booking,
        b: &MarketBooking,
        diary: &mut Option<Diary>,
    ) -> Result<Moved, Fail> {
        let id = row.booking_id.as_str();
        match row.state {
            BookingState::Confirmed | BookingState::Rejected => Ok(Moved::Done),
            BookingState::Received => {
                let setup = self.setup()?;
                let resolved = resolve(setup, b)?;
                let day = self.diary(diary, b.pms_appointment_time.date()).await?;
                // Cheap first: a slot already taken (by the desk or an earlier booking of this
                // round) is refused before any patient file is touched.
                if !slot_free(setup, day, &resolved, b.pms_appointment_time) {
                    return Err(Fail::Refuse(TAKEN.into()));
                }
                let key = patient_key(b);
                let gate = lock(&self.patients).entry(key).or_default().clone();
                let _one_at_a_time = gate.lock().await;
                match limited(PMS_CALL_LIMIT, resolve_patient(self.pms, b)).await {
                    Ok(Ok((patient, decision, _flag))) => {
                        let next = self
                            .store()
                            .transition_booking(
                                id,
                                BookingState::Received,
                                BookingTransition::PatientResolved {
                                    pms_patient_id: patient,
                                    match_decision: decision,
                                },
                                "patient matched or created",
                                Timestamp::now(),
                            )
                            .await?;
                        Ok(Moved::To(Box::new(next)))
                    }
                    Ok(Err(why)) => Err(Fail::Refuse(why)),
                    Err(e) => Err(pms_fail(e)),
                }
            }
            BookingState::PatientResolved => {
                let setup = self.setup()?;
                let resolved = resolve(setup, b)?;
                let start = b.pms_appointment_time;
                let day = self.diary(diary, start.date()).await?;
                // An insert may have gone through before a crash or a lost answer.
                if let Some(found) = find_by_ref(day, b.booking_id) {
                    return Ok(Moved::To(Box::new(self.inserted(id, found, false).await?)));
                }
                if !slot_free(setup, day, &resolved, start) {
                    return Err(Fail::Refuse(TAKEN.into()));
                }
                let end = start
                    .checked_add(SignedDuration::from_mins(i64::from(
                        resolved.duration_minutes,
                    )))
                    .unwrap_or(start);
                let flag = row
                    .match_decision
                    .as_ref()
                    .and_then(|d| serde_json::from_value::<matching::Decision>(d.clone()).ok())
                    .and_then(|d| d.practice_flag());
                let insert = NewAppointment {
                    practitioner: resolved.practitioner.clone(),
                    start,
                    end,
                    reason: Some(resolved.reason.clone()),
                    patient: row.pms_patient_id.clone().unwrap_or_default(),
                    notes: notes(b, flag.as_deref()),
                    external_ref: external_ref(b.booking_id),
                };
                match limited(PMS_CALL_LIMIT, self.pms.insert_appointment(&insert)).await {
                    Ok(inserted) => {
                        let appointment = inserted.appointment.id.clone();
                        day.appointments.push(inserted.appointment);
                        Ok(Moved::To(Box::new(
                            self.inserted(id, appointment, inserted.created).await?,
                        )))
                    }
                    Err(PmsError::Conflict { .. }) => {
                        // The diary changed since it was read: read it again for the next one.
                        *diary = None;
                        Err(Fail::Refuse(TAKEN.into()))
                    }
                    Err(e) => Err(pms_fail(e)),
                }
            }
            BookingState::Inserted => {
                let appointment = row.pms_appointment_id.clone().unwrap_or_default();
                let patient = row.pms_patient_id.clone().unwrap_or_default();
                match confirm(self.market, b.booking_id, appointment.clone(), patient).await {
                    Ok(()) => {}
                    Err(e) if e.is_transient() => return Err(Fail::Transient(e.to_string())),
                    Err(e) => {
                        // Not waiting for an insert any more (cancelled by the patient, or
                        // answered by someone else): the appointment stays for the practice.
                        let reason = format!(
                            "the marketplace refused the confirmation ({e}); appointment \
                             {appointment} is in the diary for the practice to check"
                        );
                        warn!(booking = %id, %reason, "confirmation refused");
                        self.store()
                            .transition_booking(
                                id,
                                BookingState::Inserted,
                                BookingTransition::Rejected {
                                    reason: reason.clone(),
                                },
                                &reason,
                                Timestamp::now(),
                            )
                            .await?;
                        return Ok(Moved::Done);
                    }
                }
                self.store()
                    .transition_booking(
                        id,
                        BookingState::Inserted,
                        BookingTransition::Confirmed,
                        "confirmInsert accepted",
                        Timestamp::now(),
                    )
                    .await?;
                self.ctx.metrics.booking("confirmed", since(row.created_at));
                info!(booking = %id, link = %self.link.id, "booking confirmed");
                Ok(Moved::Done)
            }
        }
    }

    /// The group's day diary, read on first use.
    async fn diary<'d>(
        &self,
        diary: &'d mut Option<Diary>,
        day: Date,
    ) -> Result<&'d mut Diary, Fail> {
        if diary.is_none() {
            let read = limited(
                PMS_CALL_LIMIT,
                self.pms.read_diary(day, day.tomorrow().unwrap_or(day)),
            )
            .await
            .map_err(pms_fail)?;
            *diary = Some(read);
        }
        diary
            .as_mut()
            .ok_or_else(|| Fail::Transient("the diary was not read".into()))
    }

    async fn inserted(
        &self,
        id: &str,
        appointment: String,
        created: bool,
    ) -> Result<Booking, StoreError> {
        self.store()
            .transition_booking(
                id,
                BookingState::PatientResolved,
                BookingTransition::Inserted {
                    pms_appointment_id: appointment,
                },
                if created {
                    "inserted into the diary"
                } else {
                    "found in the diary by its external reference"
                },
                Timestamp::now(),
            )
            .await
    }

    /// A transient failure: retry at the next tick while the booking can still be rejected in
    /// time; otherwise look for the appointment by its external reference and reject. Returns
    /// the row when the look-up found the appointment (the booking then goes on to confirm).
    async fn after_failure(&self, row: &Booking, b: &MarketBooking, why: &str) -> Option<Booking> {
        let now = Timestamp::now();
        let id = row.booking_id.as_str();
        let retry = |at: Timestamp| async move {
            if let Err(e) = self
                .store()
                .retry_booking(id, row.state, at, why, now)
                .await
            {
                warn!(booking = %id, error = %e, "recording the retry failed");
            }
        };
        if row.state == BookingState::Inserted {
            // In the diary: never rejected; the confirmation is retried with backoff.
            let wait = backoff(row.attempts);
            debug!(booking = %id, error = %why, ?wait, "confirmation retried later");
            retry(after(now, wait)).await;
            return None;
        }
        let age = now.duration_since(b.booked_time);
        let tick = self.ctx.settings.poll_interval + Duration::from_secs(3);
        let next_try_age = age.saturating_add(SignedDuration::try_from(tick).unwrap_or_default());
        let auto_confirmed = age >= SignedDuration::from_secs(20);
        if (!auto_confirmed && next_try_age < DECIDE_WITHIN)
            || (auto_confirmed && age < GIVE_UP_AFTER)
        {
            let wait = if auto_confirmed {
                backoff(row.attempts)
            } else {
                Duration::from_millis(200)
            };
            debug!(booking = %id, error = %why, ?wait, "booking retried later");
            retry(after(now, wait)).await;
            return None;
        }
        if row.state == BookingState::PatientResolved {
            // An insert may have gone in although its answer was lost: look before rejecting.
            let day = b.pms_appointment_time.date();
            if let Ok(d) = limited(
                CHECK_LIMIT,
                self.pms.read_diary(day, day.tomorrow().unwrap_or(day)),
            )
            .await
                && let Some(found) = find_by_ref(&d, b.booking_id)
            {
                match self.inserted(id, found, false).await {
                    Ok(next) => return Some(next),
                    Err(e) => {
                        warn!(booking = %id, error = %e, "recording the insert failed");
                        return None;
                    }
                }
            }
        }
        self.reject(
            row,
            b,
            &format!("the practice's system could not be reached in time ({why})"),
        )
        .await;
        None
    }

    /// Reject: recorded first (a rejected booking is never inserted), then the marketplace is
    /// told. If telling fails, the marketplace still lists it and the next poll tells it again.
    async fn reject(&self, row: &Booking, b: &MarketBooking, reason: &str) {
        let id = row.booking_id.as_str();
        match self
            .store()
            .transition_booking(
                id,
                row.state,
                BookingTransition::Rejected {
                    reason: reason.to_owned(),
                },
                reason,
                Timestamp::now(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) => {
                warn!(booking = %id, error = %e, "recording the rejection failed; resumed later");
                return;
            }
        }
        *lock(&self.rejected) = true;
        match self
            .market
            .reject_insert(b.booking_id, Some(reason))
            .await
            .or_else(answered_ok)
        {
            Ok(()) => {
                self.ctx.metrics.booking("rejected", since(row.created_at));
                info!(booking = %id, reason, "booking rejected");
            }
            Err(e) => {
                warn!(booking = %id, error = %e, "rejectInsert failed; sent again at the next poll")
            }
        }
    }

    /// A stored request that cannot be read: reject it by its id so it does not come back.
    async fn unreadable(&self, row: Booking) {
        let reason = "the booking request could not be read";
        if let Err(e) = self
            .store()
            .transition_booking(
                &row.booking_id,
                row.state,
                BookingTransition::Rejected {
                    reason: reason.into(),
                },
                reason,
                Timestamp::now(),
            )
            .await
        {
            warn!(booking = %row.booking_id, error = %e, "recording the rejection failed");
            return;
        }
        if let Ok(n) = row.booking_id.parse::<i64>()
            && let Err(e) = self
                .market
                .reject_insert(n, Some(reason))
                .await
                .or_else(answered_ok)
        {
            warn!(booking = %row.booking_id, error = %e, "rejectInsert failed");
        }
    }
}

/// The answer for a slot that is no longer free.
const TAKEN: &str = "the time is no longer available";

fn resolve(setup: &PracticeSetup, b: &MarketBooking) -> Result<ResolvedBooking, Fail> {
    resolve_booking(
        setup,
        b.pms_resource_id.as_deref().unwrap_or_default(),
        b.pms_appointment_type_id.as_deref(),
    )
    .map_err(|e| Fail::Refuse(e.to_string()))
}

fn find_by_ref(diary: &Diary, booking_id: i64) -> Option<String> {
    let wanted = external_ref(booking_id);
    diary
        .appointments
        .iter()
        .find(|a| a.external_ref.as_deref() == Some(wanted.as_str()))
        .map(|a| a.id.clone())
}

fn patient_key(b: &MarketBooking) -> String {
    format!(
        "{}|{}",
        b.patient.dob.map(|d| d.to_string()).unwrap_or_default(),
        b.patient
            .lastname
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_lowercase()
    )
}

/// 1 s, 2 s, 4 s … at most a minute.
fn backoff(attempts: i64) -> Duration {
    let n = u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << n).min(Duration::from_secs(60))
}

fn after(now: Timestamp, wait: Duration) -> Timestamp {
    SignedDuration::try_from(wait)
        .ok()
        .and_then(|w| now.checked_add(w).ok())
        .unwrap_or(now)
}

/// Time since `t` (zero if `t` is in the future). Booking latencies are measured from the
/// request's arrival at the integration (the outbox row's creation): the marketplace's
/// `bookedTime` has whole seconds only.
fn since(t: Timestamp) -> Duration {
    Duration::try_from(Timestamp::now().duration_since(t)).unwrap_or_default()
}

/// Send an answer again for a booking the marketplace still lists although it was answered.
async fn answer_again(market: &PracticeClient, row: &Booking, b: &MarketBooking) {
    let sent = match row.state {
        BookingState::Confirmed => match (&row.pms_appointment_id, &row.pms_patient_id) {
            (Some(a), Some(p)) => confirm(market, b.booking_id, a.clone(), p.clone()).await,
            _ => Ok(()),
        },
        BookingState::Rejected => market
            .reject_insert(b.booking_id, row.reject_reason.as_deref())
            .await
            .or_else(answered_ok),
        _ => Ok(()),
    };
    if let Err(e) = sent {
        warn!(booking = %row.booking_id, error = %e, "answering a booking again failed");
    }
}

/// Whether the engine, on the live diary, still publishes a slot for this booking.
fn slot_free(
    setup: &PracticeSetup,
    diary: &Diary,
    resolved: &ResolvedBooking,
    start: DateTime,
) -> bool {
    let now = Timestamp::now();
    let today = now
        .to_zoned_datetime(setup.timezone.time_zone().clone())
        .date();
    // Up to the booking's day only: the engine need not slice the whole horizon.
    let days = today
        .until(start.date())
        .map(|s| s.get_days())
        .unwrap_or(0)
        .clamp(0, 400);
    let horizon = u32::try_from(days).unwrap_or(0) + 1;
    let Ok(snapshot) = to_snapshot(setup, diary, now, horizon).validate() else {
        return false;
    };
    compute_slots(&snapshot).iter().any(|s| {
        s.practitioner == resolved.practitioner
            && s.reason == resolved.reason
            && s.start_offset.to_datetime(s.start) == start
    })
}

/// Not found, gone, or answered already: nothing left to tell.
fn answered_ok(e: MarketError) -> Result<(), MarketError> {
    match e {
        MarketError::Gone { .. } | MarketError::NotFound { .. } => Ok(()),
        other => Err(other),
    }
}

async fn confirm(
    market: &PracticeClient,
    booking_id: i64,
    appointment: String,
    patient: String,
) -> Result<(), MarketError> {
    market
        .confirm_insert(
            booking_id,
            &ConfirmBookingInsert {
                pms_appointment_ids: vec![appointment],
                pms_patient_id: patient,
                patient_appointment_link: None,
                patient_appointment_description: None,
                practitioner_appointment_link: None,
                practitioner_appointment_description: None,
            },
        )
        .await
        .or_else(answered_ok)
}

fn booking_patient(b: &MarketBooking) -> BookingPatient {
    let p = &b.patient;
    BookingPatient {
        firstname: p.firstname.clone(),
        lastname: p.lastname.clone(),
        dob: p.dob.map(|d| d.strftime("%d-%m-%Y").to_string()),
        phone: p.phone.clone(),
        email: p.email.clone(),
        address: p.address.clone(),
        suburb: p.suburb.clone(),
        state: p.state.clone(),
        postcode: p.postcode.clone(),
        gender: None,
        medicare_number: p.medicare_number.clone(),
        medicare_irn: p.medicare_irn.clone(),
        medicare_expiry: p.medicare_expiry.clone(),
    }
}

fn pms_patient(p: &slotbridge_pms::Patient) -> PmsPatient {
    PmsPatient {
        id: p.id.clone(),
        firstname: Some(p.first_name.clone()),
        lastname: Some(p.last_name.clone()),
        dob: Some(p.date_of_birth),
        mobile: p.mobile_phone.clone(),
        phone: p.home_phone.clone(),
        email: p.email.clone(),
        address: p
            .address
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default()),
        medicare: p.medicare.as_ref().map(|m| m.number.clone()),
        irn: p.medicare.as_ref().map(|m| m.irn.to_string()),
    }
}

/// Find the patient's file or create one. Returns the patient id and the decision's JSON.
async fn resolve_patient<P: PmsConnector>(
    pms: &P,
    b: &MarketBooking,
) -> Result<Result<(String, serde_json::Value, Option<String>), String>, PmsError> {
    let probe = booking_patient(b);
    let mut found = Vec::new();
    for q in matching::search_queries(&probe) {
        let query = match q {
            CandidateQuery::Dob { dob } => PatientQuery {
                date_of_birth: Some(dob),
                ..PatientQuery::default()
            },
            CandidateQuery::Phone { phone } => PatientQuery {
                phone: Some(phone),
                ..PatientQuery::default()
            },
            CandidateQuery::Email { email } => PatientQuery {
                email: Some(email),
                ..PatientQuery::default()
            },
            CandidateQuery::Name { first, last } => PatientQuery {
                first_name: Some(first),
                last_name: Some(last),
                ..PatientQuery::default()
            },
        };
        found.push(
            pms.search_patients(&query)
                .await?
                .iter()
                .map(pms_patient)
                .collect(),
        );
    }
    let candidates = matching::union_candidates(found);
    let decision = matching::match_patient(&probe, &candidates, &MatchConfig::default());
    let json = serde_json::to_value(&decision).unwrap_or_default();
    let flag = decision.practice_flag();
    match &decision.outcome {
        Outcome::Match { patient_id } => Ok(Ok((patient_id.clone(), json, None))),
        Outcome::Ambiguous {
            action: matching::AmbiguityPolicy::RejectBooking,
            ..
        } => Ok(Err(
            "the patient's details match more than one file; please call the practice".into(),
        )),
        Outcome::New | Outcome::Ambiguous { .. } => {
            let Some(dob) = b.patient.dob else {
                return Ok(Err("the patient's date of birth is missing".into()));
            };
            let created = pms
                .create_patient(&NewPatient {
                    first_name: b.patient.firstname.clone().unwrap_or_default(),
                    last_name: b.patient.lastname.clone().unwrap_or_default(),
                    date_of_birth: dob,
                    mobile_phone: b.patient.phone.clone(),
                    home_phone: None,
                    email: b.patient.email.clone(),
                    address: None,
                    medicare: None,
                })
                .await?;
            Ok(Ok((created.id, json, flag)))
        }
    }
}

/// The appointment notes: the booking id, the marketplace's type name and the patient's answers.
fn notes(b: &MarketBooking, flag: Option<&str>) -> String {
    let mut lines = vec![format!("Healthengine booking {}", b.booking_id)];
    if let Some(c) = b.comments.as_deref().filter(|c| !c.trim().is_empty()) {
        lines.push(format!("Type: {}", c.trim()));
    }
    if let Some(r) = b.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        lines.push(format!("Patient's answers: {}", r.trim()));
    }
    if let Some(f) = flag {
        lines.push(f.to_owned());
    }
    lines.join("\n")
}

/// The external reference an online insert carries: a retry finds it instead of inserting twice.
pub fn external_ref(booking_id: i64) -> String {
    format!("HE-{booking_id}")
}
