//! The outbox: a link's due bookings claimed under its lease and worked in rounds, each one
//! moved along its state machine or decided by [`slotbridge_domain::booking_rules`] after a
//! failure (retry, reject, look up then reject, keep confirming, give up, gone).
//!
//! A round reads the PMS setup once and each (practitioner, day)'s diary once, then works the
//! bookings of one (practitioner, day) in the order the patients booked, adding each insert to
//! that diary: of many bookings for one slot the first is inserted and the others are rejected
//! without another PMS call. Different practitioners and days are worked concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use jiff::civil::{Date, DateTime};
use jiff::{SignedDuration, Timestamp};
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::backoff::Jitter;
use slotbridge_domain::booking_rules::{
    Decision, Facts, Failure, Placement, RejectReason, Rules, Stage, group,
};
use slotbridge_domain::matching::{
    self, BookingPatient, CandidateQuery, MatchConfig, Outcome, PmsPatient,
};
use slotbridge_domain::practice::{Diary, PracticeSetup, to_snapshot};
use slotbridge_domain::publish::{ResolvedBooking, practitioner_of, resolve_booking};
use slotbridge_market::types::Booking as MarketBooking;
use slotbridge_market::{MarketError, PracticeClient};
use slotbridge_pms::{NewAppointment, NewPatient, PatientQuery, PmsConnector, PmsError};
use slotbridge_store::{Booking, BookingState, BookingTransition, Lease, Link, Store, StoreError};
use tracing::{debug, info, warn};

use super::{
    Followup, LATE_CONFIRM, LATE_REJECT, answered_ok, confirm, external_ref, find_by_ref, is_gone,
    limited, since,
};
use crate::ctx::{CrashPoint, Ctx};
use crate::failure::SyncFailure;
use crate::metrics::BookingOutcome;

/// The longest one PMS call may take while a booking is being decided.
const PMS_CALL_LIMIT: Duration = Duration::from_secs(4);
/// The longest the look-up by external reference may take before a rejection.
const CHECK_LIMIT: Duration = Duration::from_secs(2);
/// How long a claimed booking is this worker's before it may be claimed again under the same
/// lease epoch (a claim made under an older epoch is taken over at once).
const CLAIM_FOR: Duration = slotbridge_domain::booking_rules::CLAIM_FOR.unsigned_abs();
/// Bookings claimed per round.
const BATCH: u32 = 100;
/// (practitioner, day) groups worked at once.
const PARALLEL: usize = 4;

/// Called at every tick of a link worker, after the marketplace's requests were answered:
/// claims the link's due bookings (left unfinished by a crash or a transient failure, or just
/// received) and works them as one round, whether or not the marketplace still lists them.
pub async fn on_tick<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
) -> Result<Followup, SyncFailure> {
    if !ctx.store.has_due_bookings(lease, ctx.now()).await? {
        return Ok(Followup::default());
    }
    let claimed = ctx
        .store
        .claim_link_bookings(lease, BATCH, CLAIM_FOR, ctx.now())
        .await?;
    if claimed.is_empty() {
        return Ok(Followup::default());
    }
    ctx.crash_point(CrashPoint::AfterClaim);
    // Retries are picked up at the worker's ticks: leave room for one tick before a deadline.
    let rules = Rules {
        attempt_takes: SignedDuration::try_from(
            ctx.settings.poll_interval + Duration::from_secs(3),
        )
        .unwrap_or(slotbridge_domain::booking_rules::ATTEMPT_TAKES),
        ..Rules::default()
    };
    let round = Round {
        ctx,
        lease,
        link,
        pms,
        market,
        rules,
        setup: None,
        patients: Mutex::new(HashMap::new()),
        rejected: Mutex::new(false),
    };
    let mut jobs = Vec::with_capacity(claimed.len());
    for row in claimed {
        if row
            .market_practice_id
            .as_deref()
            .is_some_and(|p| p != link.market_practice_id)
        {
            round.moved_away(row).await;
            continue;
        }
        match serde_json::from_value::<MarketBooking>(row.request.clone()) {
            Ok(b) => jobs.push(Job { row, b }),
            Err(e) => {
                warn!(booking = %row.booking_id, line = e.line(), column = e.column(), "the stored booking request cannot be read");
                round.unreadable(row).await;
            }
        }
    }
    let needs_pms = jobs.iter().any(|j| j.row.state != BookingState::Inserted);
    let setup = if needs_pms {
        Some(limited(PMS_CALL_LIMIT, pms.read_setup()).await)
    } else {
        None
    };
    let round = Round { setup, ..round };
    // One group per (practitioner, day), worked in booking order; confirmations on their own.
    let groups = group(jobs.into_iter().map(|job| {
        let place = Placement {
            stage: stage(job.row.state),
            practitioner: practitioner_of(job.b.pms_resource_id.as_deref().unwrap_or_default())
                .to_owned(),
            day: job.b.pms_appointment_time.date(),
            booked_at: job.b.booked_time,
            booking_id: job.b.booking_id,
        };
        (place, job)
    }));
    stream::iter(groups.into_iter().map(|(_, g)| g))
        .map(|g| round.run_group(g))
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
    Ok(Followup {
        refresh_availability: *lock(&round.rejected),
    })
}

/// The booking's stage in the rules' terms.
fn stage(s: BookingState) -> Stage {
    match s {
        BookingState::Received => Stage::Received,
        BookingState::PatientResolved => Stage::PatientResolved,
        BookingState::Inserted => Stage::Inserted,
        BookingState::Confirmed => Stage::Confirmed,
        BookingState::Rejected | BookingState::Gone => Stage::Rejected,
    }
}

/// One claimed booking and the marketplace's request it came from.
struct Job {
    row: Booking,
    b: MarketBooking,
}

/// Why a step did not move a booking on.
enum Fail {
    /// The booking cannot go in (or, inserted, its confirmation was refused).
    Refuse(RejectReason),
    /// A retry may cure it; nothing was written. The text is an error kind, never a value.
    Transient(String),
    /// A write's answer was lost: it may have gone through.
    LostAnswer(String),
    /// The marketplace no longer waits for the booking (404/410 on confirm).
    Gone,
    /// The store failed, or this worker no longer holds the link or the booking: leave it;
    /// its claim lapses (or the new holder's epoch takes it over) and it is resumed.
    Leave(String),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Leave(e.to_string())
    }
}

impl Fail {
    /// The rules' failure.
    fn failure(&self) -> Failure {
        match self {
            Fail::Refuse(r) => Failure::Refused(*r),
            Fail::Transient(_) => Failure::Transient,
            Fail::LostAnswer(_) => Failure::LostAnswer,
            Fail::Gone => Failure::Gone,
            Fail::Leave(_) => Failure::Store,
        }
    }

    fn why(&self) -> &str {
        match self {
            Fail::Refuse(r) => r.text(),
            Fail::Transient(w) | Fail::LostAnswer(w) | Fail::Leave(w) => w,
            Fail::Gone => "the marketplace no longer waits for this booking",
        }
    }
}

/// A PMS failure on a read: transient ones are retried, the others refuse the booking.
fn pms_fail(e: PmsError) -> Fail {
    match e {
        PmsError::Fenced => Fail::Leave("this node no longer holds the link".into()),
        PmsError::Conflict { .. } => Fail::Refuse(RejectReason::SlotTaken),
        e if e.is_transient() || matches!(e, PmsError::Protocol { .. }) => {
            Fail::Transient(format!("PMS {}", e.kind()))
        }
        _ => Fail::Refuse(RejectReason::PmsRefused),
    }
}

/// A PMS failure on a write (patient create, insert): an answer that was lost or unreadable
/// may hide a write that went through.
fn pms_write_fail(e: PmsError) -> Fail {
    match e {
        PmsError::Timeout | PmsError::Protocol { .. } => {
            Fail::LostAnswer(format!("PMS {}", e.kind()))
        }
        e => pms_fail(e),
    }
}

/// A marketplace failure on confirmInsert. Only a 400/422 refuses the confirmation for good
/// (the booking no longer waits for an insert); an answer we could not read, refused
/// credentials or missing consent are kept confirming (the link's breaker deals with the
/// credentials), since the appointment is in the diary.
fn market_fail(e: MarketError) -> Fail {
    match e {
        MarketError::Fenced => Fail::Leave("this node no longer holds the link".into()),
        e if is_gone(&e) => Fail::Gone,
        MarketError::Invalid { .. } => Fail::Refuse(RejectReason::PmsRefused),
        e => Fail::Transient(format!("marketplace {}", e.kind())),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The state shared by one round of work on a link's bookings.
struct Round<'a, P> {
    ctx: &'a Arc<Ctx>,
    lease: &'a Lease,
    link: &'a Link,
    pms: &'a P,
    market: &'a PracticeClient,
    rules: Rules,
    /// The PMS setup, read once per round when some booking needs it.
    setup: Option<Result<PracticeSetup, PmsError>>,
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

    fn now(&self) -> Timestamp {
        self.ctx.now()
    }

    fn setup(&self) -> Result<&PracticeSetup, Fail> {
        match &self.setup {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(pms_fail(e.clone())),
            None => Err(Fail::Transient("the setup was not read".into())),
        }
    }

    async fn transition(
        &self,
        row: &Booking,
        transition: BookingTransition,
        reason: &str,
    ) -> Result<Booking, StoreError> {
        self.store()
            .transition_booking(
                self.lease,
                &row.booking_id,
                row.state,
                transition,
                reason,
                self.now(),
            )
            .await
    }

    /// The bookings of one (practitioner, day), in order, sharing that day's diary.
    async fn run_group(&self, jobs: Vec<Job>) {
        let mut diary: Option<Diary> = None;
        for job in jobs {
            self.drive(job, &mut diary).await;
        }
    }

    /// Move one booking as far as it goes now; after a failure, do what the rules decide.
    async fn drive(&self, job: Job, diary: &mut Option<Diary>) {
        let Job { mut row, b } = job;
        loop {
            let fail = match self.step(&row, &b, diary).await {
                Ok(Moved::To(next)) => {
                    row = *next;
                    continue;
                }
                Ok(Moved::Done) => return,
                Err(fail) => fail,
            };
            let failure = fail.failure();
            if failure.invalidates_diary() {
                *diary = None;
            }
            let facts = self.facts(&row, &b);
            let decision =
                self.rules
                    .decide(&facts, Some(&failure), Jitter::new(rand::random::<f64>()));
            debug!(booking = %row.booking_id, why = fail.why(), ?decision, "booking step failed");
            match decision {
                Decision::Proceed | Decision::Done => return,
                Decision::LeaveClaimed => {
                    warn!(booking = %row.booking_id, why = fail.why(), "booking step not recorded; resumed later");
                    return;
                }
                Decision::RetryAt(at) | Decision::KeepConfirming { at } => {
                    if let Err(e) = self
                        .store()
                        .retry_booking(
                            self.lease,
                            &row.booking_id,
                            row.state,
                            at,
                            fail.why(),
                            self.now(),
                        )
                        .await
                    {
                        warn!(booking = %row.booking_id, error = %e, "recording the retry failed");
                    }
                    return;
                }
                Decision::Reject(reason)
                | Decision::GiveUp {
                    reason,
                    check_first: false,
                } => {
                    self.reject(&row, &b, reason).await;
                    return;
                }
                Decision::CheckThenReject(reason)
                | Decision::GiveUp {
                    reason,
                    check_first: true,
                } => match self.look_up(&row, &b).await {
                    Some(next) => row = next,
                    None => {
                        self.reject(&row, &b, reason).await;
                        return;
                    }
                },
                Decision::ConfirmRefused => {
                    let reason = format!(
                        "the marketplace refused the confirmation; appointment {} is in the \
                         diary for the practice to check",
                        row.pms_appointment_id.as_deref().unwrap_or("?")
                    );
                    warn!(booking = %row.booking_id, "confirmation refused");
                    self.ctx.metrics.booking_outcome(BookingOutcome::Gone);
                    self.refused_untold(&row, reason).await;
                    self.late(&row, LATE_CONFIRM).await;
                    return;
                }
                Decision::Gone => {
                    let reason = format!(
                        "the marketplace no longer waited for this booking (404/410 on \
                         confirmInsert); appointment {} is in the diary for the practice to check \
                         with the patient",
                        row.pms_appointment_id.as_deref().unwrap_or("?")
                    );
                    warn!(booking = %row.booking_id, "booking gone from the marketplace");
                    match self
                        .transition(&row, BookingTransition::Gone, &reason)
                        .await
                    {
                        Ok(_) => {
                            self.ctx
                                .metrics
                                .booking("gone", since(row.created_at, self.now()));
                            self.ctx.metrics.booking_outcome(BookingOutcome::Gone);
                            self.late(&row, LATE_CONFIRM).await;
                        }
                        Err(e) => {
                            warn!(booking = %row.booking_id, error = %e, "recording the gone booking failed")
                        }
                    }
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
            BookingState::Confirmed | BookingState::Rejected | BookingState::Gone => {
                Ok(Moved::Done)
            }
            BookingState::Received => {
                let setup = self.setup()?;
                let resolved = resolve(setup, b)?;
                let day = self.diary(diary, b.pms_appointment_time.date()).await?;
                // Cheap first: a slot already taken (by the desk or an earlier booking of this
                // round) is refused before any patient file is touched.
                if !slot_free(self.now(), setup, day, &resolved, b.pms_appointment_time) {
                    return Err(Fail::Refuse(RejectReason::SlotTaken));
                }
                let key = patient_key(b);
                let gate = lock(&self.patients).entry(key).or_default().clone();
                let _one_at_a_time = gate.lock().await;
                match limited(PMS_CALL_LIMIT, resolve_patient(self.pms, b)).await {
                    Ok(Ok((patient, decision))) => {
                        let next = self
                            .transition(
                                row,
                                BookingTransition::PatientResolved {
                                    pms_patient_id: patient,
                                    match_decision: decision,
                                },
                                "patient matched or created",
                            )
                            .await?;
                        self.ctx.crash_point(CrashPoint::AfterPatient);
                        Ok(Moved::To(Box::new(next)))
                    }
                    Ok(Err(why)) => Err(Fail::Refuse(why)),
                    Err(e) => Err(pms_write_fail(e)),
                }
            }
            BookingState::PatientResolved => {
                let setup = self.setup()?;
                let resolved = resolve(setup, b)?;
                let start = b.pms_appointment_time;
                let day = self.diary(diary, start.date()).await?;
                // An insert may have gone through before a crash or a lost answer.
                if let Some(found) = find_by_ref(day, b.booking_id) {
                    return Ok(Moved::To(Box::new(self.inserted(row, found, false).await?)));
                }
                if !slot_free(self.now(), setup, day, &resolved, start) {
                    return Err(Fail::Refuse(RejectReason::SlotTaken));
                }
                let end = start
                    .checked_add(SignedDuration::from_mins(i64::from(
                        resolved.duration_minutes,
                    )))
                    .unwrap_or(start);
                let flag = row
                    .match_decision
                    .as_ref()
                    .and_then(|d| d[PRACTICE_FLAG].as_str())
                    .map(str::to_owned);
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
                        self.ctx.crash_point(CrashPoint::AfterInsert);
                        let appointment = inserted.appointment.id.clone();
                        day.appointments.push(inserted.appointment);
                        Ok(Moved::To(Box::new(
                            self.inserted(row, appointment, inserted.created).await?,
                        )))
                    }
                    Err(PmsError::Conflict { .. }) => {
                        // The diary changed since it was read: read it again for the next one.
                        *diary = None;
                        Err(Fail::Refuse(RejectReason::SlotTaken))
                    }
                    Err(e) => Err(pms_write_fail(e)),
                }
            }
            BookingState::Inserted => {
                let appointment = row.pms_appointment_id.clone().unwrap_or_default();
                let patient = row.pms_patient_id.clone().unwrap_or_default();
                self.ctx.crash_point(CrashPoint::BeforeConfirm);
                confirm(self.market, b.booking_id, appointment, patient)
                    .await
                    .map_err(market_fail)?;
                self.transition(row, BookingTransition::Confirmed, "confirmInsert accepted")
                    .await?;
                self.ctx
                    .metrics
                    .booking("confirmed", since(row.created_at, self.now()));
                self.answered(b, BookingOutcome::Confirmed);
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
        row: &Booking,
        appointment: String,
        created: bool,
    ) -> Result<Booking, StoreError> {
        self.transition(
            row,
            BookingTransition::Inserted {
                pms_appointment_id: appointment,
            },
            if created {
                "inserted into the diary"
            } else {
                "found in the diary by its external reference"
            },
        )
        .await
    }

    /// Before rejecting a booking whose insert may have gone in although its answer was lost:
    /// look for the appointment by its external reference. Returns the row, inserted, when
    /// found (the booking then goes on to confirm).
    async fn look_up(&self, row: &Booking, b: &MarketBooking) -> Option<Booking> {
        if row.state != BookingState::PatientResolved {
            return None;
        }
        let day = b.pms_appointment_time.date();
        let d = limited(
            CHECK_LIMIT,
            self.pms.read_diary(day, day.tomorrow().unwrap_or(day)),
        )
        .await
        .ok()?;
        let found = find_by_ref(&d, b.booking_id)?;
        match self.inserted(row, found, false).await {
            Ok(next) => Some(next),
            Err(e) => {
                warn!(booking = %row.booking_id, error = %e, "recording the insert failed");
                None
            }
        }
    }

    /// Reject: recorded first (a rejected booking is never inserted), then the marketplace is
    /// told with the reason's fixed text. If telling fails, the marketplace still lists it and
    /// the next poll tells it again.
    async fn reject(&self, row: &Booking, b: &MarketBooking, reason: RejectReason) {
        let id = row.booking_id.as_str();
        let text = reason.text();
        if let Err(e) = self
            .transition(
                row,
                BookingTransition::Rejected {
                    reason: text.to_owned(),
                },
                text,
            )
            .await
        {
            warn!(booking = %id, error = %e, "recording the rejection failed; resumed later");
            return;
        }
        *lock(&self.rejected) = true;
        // After the marketplace's auto-confirm the patient holds a booking the diary lacks.
        let outcome = if self.rules.auto_confirmed(&self.facts(row, b)) {
            BookingOutcome::NotInDiary
        } else {
            BookingOutcome::Rejected
        };
        match self.market.reject_insert(b.booking_id, Some(text)).await {
            Ok(()) => {
                self.ctx
                    .metrics
                    .booking("rejected", since(row.created_at, self.now()));
                self.answered(b, outcome);
                info!(booking = %id, reason = reason.code(), "booking rejected");
            }
            Err(e) if e.is_refused_answer() => {
                warn!(booking = %id, error = %e, "the marketplace refused the late rejection");
                self.answered(b, BookingOutcome::NotInDiary);
                self.late(row, LATE_REJECT).await;
            }
            Err(e) => {
                warn!(booking = %id, error = %e, "rejectInsert failed; sent again at the next poll")
            }
        }
    }

    /// The booking's facts now, for the rules.
    fn facts(&self, row: &Booking, b: &MarketBooking) -> Facts {
        Facts {
            stage: stage(row.state),
            booked_at: b.booked_time,
            received_at: row.created_at,
            now: self.now(),
            attempts: Facts::attempts_from(row.attempts),
        }
    }

    /// Count a booking answered with `outcome`, and its request's age (from when the patient
    /// booked) against the marketplace's ten minutes.
    fn answered(&self, b: &MarketBooking, outcome: BookingOutcome) {
        let metrics = &self.ctx.metrics;
        metrics.booking_outcome(outcome);
        metrics.request_answered("bookings", since(b.booked_time, self.now()));
    }

    /// Record the outcome of a late answer the marketplace refused: shown to the practice as an
    /// error, and the answer is never sent again.
    async fn late(&self, row: &Booking, outcome: &str) {
        self.ctx
            .metrics
            .booking("late_refused", since(row.created_at, self.now()));
        if let Err(e) = self
            .store()
            .record_late_outcome(self.lease, &row.booking_id, outcome, self.now())
            .await
        {
            warn!(booking = %row.booking_id, error = %e, "recording the late outcome failed");
        }
    }

    /// A stored request that cannot be read: reject it by its id so it does not come back.
    async fn unreadable(&self, row: Booking) {
        let reason = RejectReason::Unreadable.text();
        if let Err(e) = self
            .transition(
                &row,
                BookingTransition::Rejected {
                    reason: reason.into(),
                },
                reason,
            )
            .await
        {
            warn!(booking = %row.booking_id, error = %e, "recording the rejection failed");
            return;
        }
        self.ctx.metrics.booking_outcome(BookingOutcome::Rejected);
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

    /// A booking from the marketplace practice the link published to before it moved: this
    /// worker holds the new practice's credentials only and must not answer it with them. The
    /// worker that worked the old practice finishes its bookings before the move; one left
    /// by a crash is recorded rejected here, untold, for the practice to check.
    async fn moved_away(&self, row: Booking) {
        let reason = format!(
            "the link moved from marketplace practice {} to {} before this booking was answered; \
             nothing was written to the diary",
            row.market_practice_id.as_deref().unwrap_or("?"),
            self.link.market_practice_id
        );
        warn!(booking = %row.booking_id, "booking of the link's previous marketplace practice");
        self.refused_untold(&row, reason).await;
    }

    /// Record a booking as rejected for `reason` without telling the marketplace (it is not
    /// ours to answer, or no longer waits for an answer).
    async fn refused_untold(&self, row: &Booking, reason: String) {
        if let Err(e) = self
            .transition(
                row,
                BookingTransition::Rejected {
                    reason: reason.clone(),
                },
                &reason,
            )
            .await
        {
            warn!(booking = %row.booking_id, error = %e, "recording the rejection failed");
        }
    }
}

fn resolve(setup: &PracticeSetup, b: &MarketBooking) -> Result<ResolvedBooking, Fail> {
    resolve_booking(
        setup,
        b.pms_resource_id.as_deref().unwrap_or_default(),
        b.pms_appointment_type_id.as_deref(),
    )
    .map_err(|e| Fail::Refuse(RejectReason::from(&e)))
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

/// Whether the engine, on the live diary, still publishes a slot for this booking.
fn slot_free(
    now: Timestamp,
    setup: &PracticeSetup,
    diary: &Diary,
    resolved: &ResolvedBooking,
    start: DateTime,
) -> bool {
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

/// Where the stored decision keeps the practice's flag for the appointment's notes.
const PRACTICE_FLAG: &str = "practiceFlag";

/// The decision as the outbox keeps it (`bookings.match_decision`): the outcome, each
/// candidate's id, score and status, and the practice's flag (value-free: it names files and
/// what conflicts, not the values), but not the values each field compared, the conflicts'
/// values, nor a note quoting a field that did not parse: those repeat the patient's details and
/// the candidates' (other patients' files), which the store must not keep anywhere but in the
/// marketplace's request.
fn stored_decision(d: &matching::Decision) -> serde_json::Value {
    let flag = d.practice_flag();
    let mut d = d.clone();
    for c in &mut d.candidates {
        for f in &mut c.fields {
            f.detail.clear();
        }
        c.conflicts.clear();
    }
    for n in &mut d.notes {
        n.problem.clear();
    }
    let mut json = serde_json::to_value(&d).unwrap_or_default();
    if let (Some(flag), Some(o)) = (flag, json.as_object_mut()) {
        o.insert(PRACTICE_FLAG.into(), serde_json::Value::String(flag));
    }
    json
}

/// Find the patient's file or create one. Returns the patient id and the decision's JSON.
async fn resolve_patient<P: PmsConnector>(
    pms: &P,
    b: &MarketBooking,
) -> Result<Result<(String, serde_json::Value), RejectReason>, PmsError> {
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
    let json = stored_decision(&decision);
    match &decision.outcome {
        Outcome::Match { patient_id } => Ok(Ok((patient_id.clone(), json))),
        Outcome::Ambiguous {
            action: matching::AmbiguityPolicy::RejectBooking,
            ..
        } => Ok(Err(RejectReason::PatientAmbiguous)),
        Outcome::New | Outcome::Ambiguous { .. } => {
            let Some(dob) = b.patient.dob else {
                return Ok(Err(RejectReason::DateOfBirthMissing));
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
            Ok(Ok((created.id, json)))
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
