//! Bookings into the diary, exactly once, or rejected with a reason within 20 seconds.
//!
//! Each booking request goes through a durable state machine in the store's outbox:
//!
//! ```text
//! Received ──(patient matched or created)──▶ PatientResolved ──(inserted in the PMS,
//!   external reference = booking id)──▶ Inserted ──(confirmInsert)──▶ Confirmed
//!      └──────────────┴───────────────────(rejectInsert with the reason)──▶ Rejected
//! ```
//!
//! Every step is idempotent, so a crash at any point followed by a restart resumes where the
//! store says the booking is: the PMS insert carries the booking id as its external reference,
//! so a retried insert returns the appointment already made instead of a second one.
//!
//! Booking updates (cancellations) are refused for a PMS that cannot cancel online, with the
//! reference system's answer: the patient must call the practice.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use slotbridge_domain::availability::compute_slots;
use slotbridge_domain::matching::{
    self, BookingPatient, CandidateQuery, MatchConfig, Outcome, PmsPatient,
};
use slotbridge_domain::practice::{PracticeSetup, to_snapshot};
use slotbridge_domain::publish::resolve_booking;
use slotbridge_market::MarketError;
use slotbridge_market::PracticeClient;
use slotbridge_market::types::{
    Booking as MarketBooking, BookingUpdate, ConfirmBookingInsert, RequestType,
};
use slotbridge_pms::{NewAppointment, NewPatient, PatientQuery, PmsConnector, PmsError};
use slotbridge_store::{BookingState, BookingTransition, Link, NewBooking};
use tracing::{info, warn};

use crate::worker::{Ctx, SyncFailure};

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
            let bookings: Vec<MarketBooking> = market.all_requests(RequestType::Bookings).await?;
            if bookings.is_empty() {
                return Ok(());
            }
            let setup = pms.read_setup().await;
            for b in bookings {
                let id = b.booking_id.to_string();
                let new = NewBooking {
                    booking_id: id.clone(),
                    link_id: link.id,
                    request: serde_json::to_value(&b).unwrap_or_default(),
                    received_at: Timestamp::now(),
                };
                ctx.store.enqueue_booking(&new).await?;
                let outcome = match &setup {
                    Ok(setup) => process(ctx, link, pms, market, setup, &b).await,
                    Err(e) => {
                        reject(
                            ctx,
                            market,
                            &b,
                            &format!("the practice's system could not be reached ({e})"),
                        )
                        .await
                    }
                };
                if let Err(e) = outcome {
                    warn!(booking = %id, error = %e, "booking step failed; it stays in the outbox");
                }
            }
            Ok(())
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
                    "This booking is not known to the practice's system.".to_owned()
                } else {
                    cancellation_refusal(&phone)
                };
                info!(
                    booking = u.booking_id,
                    request = u.request_id,
                    "booking update refused"
                );
                market
                    .reject_update(u.booking_id, u.request_id, Some(&reason))
                    .await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Called after every sync with the diary just read: the place where the booking pipeline looks
/// at the diary (desk cancellations of online bookings are reported from here).
pub async fn after_sync(
    _ctx: &Arc<Ctx>,
    _link: &Link,
    _market: &PracticeClient,
    _setup: &PracticeSetup,
    _diary: &slotbridge_domain::practice::Diary,
) -> Result<(), SyncFailure> {
    Ok(())
}

/// Called at every poll tick of a link worker, after the marketplace's requests were answered:
/// the place where the pipeline resumes bookings left unfinished (a crash, a transient failure).
pub async fn on_tick<P: PmsConnector>(
    _ctx: &Arc<Ctx>,
    _link: &Link,
    _pms: &P,
    _market: &PracticeClient,
) -> Result<(), SyncFailure> {
    Ok(())
}

/// Why a booking step failed in a way that may succeed on a retry.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] slotbridge_store::StoreError),
    /// The marketplace failed.
    #[error("marketplace: {0}")]
    Market(#[from] MarketError),
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

/// Whether the engine, on the live diary, still publishes a slot for this booking.
fn slot_still_free(
    setup: &PracticeSetup,
    diary: &slotbridge_domain::practice::Diary,
    practitioner: &str,
    reason: &str,
    start: jiff::civil::DateTime,
    now: Timestamp,
) -> bool {
    let Ok(snapshot) = to_snapshot(setup, diary, now, 90).validate() else {
        return false;
    };
    compute_slots(&snapshot).iter().any(|s| {
        s.practitioner == practitioner
            && s.reason == reason
            && s.start_offset.to_datetime(s.start) == start
    })
}

async fn process<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
    setup: &PracticeSetup,
    b: &MarketBooking,
) -> Result<(), StepError> {
    let id = b.booking_id.to_string();
    let store = &ctx.store;
    let Some(mut row) = store.booking(&id).await? else {
        return Ok(());
    };
    let now = Timestamp::now;
    loop {
        match row.state {
            BookingState::Confirmed => {
                // Still listed as a request: our confirmation may not have reached it.
                if let (Some(appt), Some(patient)) =
                    (row.pms_appointment_id.clone(), row.pms_patient_id.clone())
                {
                    confirm(market, b.booking_id, appt, patient).await?;
                }
                return Ok(());
            }
            BookingState::Rejected => {
                let reason = row.reject_reason.clone().unwrap_or_default();
                market
                    .reject_insert(b.booking_id, Some(&reason))
                    .await
                    .or_else(gone_ok)?;
                return Ok(());
            }
            BookingState::Received => {
                // Fail fast on a practitioner or type the practice no longer has.
                if let Err(e) = resolve_booking(
                    setup,
                    b.pms_resource_id.as_deref().unwrap_or_default(),
                    b.pms_appointment_type_id.as_deref(),
                ) {
                    return reject(ctx, market, b, &e.to_string()).await;
                }
                match resolve_patient(pms, b).await {
                    Ok(Ok((patient, decision, _flag))) => {
                        row = store
                            .transition_booking(
                                &id,
                                BookingState::Received,
                                BookingTransition::PatientResolved {
                                    pms_patient_id: patient,
                                    match_decision: decision,
                                },
                                "patient matched or created",
                                now(),
                            )
                            .await?;
                    }
                    Ok(Err(why)) => return reject(ctx, market, b, &why).await,
                    Err(e) => {
                        return reject(
                            ctx,
                            market,
                            b,
                            &format!("the practice's system could not be reached ({e})"),
                        )
                        .await;
                    }
                }
            }
            BookingState::PatientResolved => {
                let resolved = match resolve_booking(
                    setup,
                    b.pms_resource_id.as_deref().unwrap_or_default(),
                    b.pms_appointment_type_id.as_deref(),
                ) {
                    Ok(r) => r,
                    Err(e) => return reject(ctx, market, b, &e.to_string()).await,
                };
                let start = b.pms_appointment_time;
                let end = start
                    .checked_add(SignedDuration::from_mins(i64::from(
                        resolved.duration_minutes,
                    )))
                    .unwrap_or(start);
                let day = start.date();
                let diary = match pms.read_diary(day, day.tomorrow().unwrap_or(day)).await {
                    Ok(d) => d,
                    Err(e) => {
                        return reject(
                            ctx,
                            market,
                            b,
                            &format!("the practice's system could not be reached ({e})"),
                        )
                        .await;
                    }
                };
                if !slot_still_free(
                    setup,
                    &diary,
                    &resolved.practitioner,
                    &resolved.reason,
                    start,
                    now(),
                ) {
                    return reject(ctx, market, b, "the time is no longer available").await;
                }
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
                match pms.insert_appointment(&insert).await {
                    Ok(inserted) => {
                        row = store
                            .transition_booking(
                                &id,
                                BookingState::PatientResolved,
                                BookingTransition::Inserted {
                                    pms_appointment_id: inserted.appointment.id,
                                },
                                if inserted.created {
                                    "inserted into the diary"
                                } else {
                                    "found in the diary by its external reference"
                                },
                                now(),
                            )
                            .await?;
                    }
                    Err(PmsError::Conflict { .. }) | Err(PmsError::Invalid { .. }) => {
                        return reject(ctx, market, b, "the time is no longer available").await;
                    }
                    Err(e) => {
                        return reject(
                            ctx,
                            market,
                            b,
                            &format!("the practice's system could not take the booking ({e})"),
                        )
                        .await;
                    }
                }
            }
            BookingState::Inserted => {
                let appt = row.pms_appointment_id.clone().unwrap_or_default();
                let patient = row.pms_patient_id.clone().unwrap_or_default();
                confirm(market, b.booking_id, appt, patient).await?;
                store
                    .transition_booking(
                        &id,
                        BookingState::Inserted,
                        BookingTransition::Confirmed,
                        "confirmInsert accepted",
                        now(),
                    )
                    .await?;
                info!(booking = %id, link = %link.id, "booking confirmed");
                return Ok(());
            }
        }
    }
}

fn gone_ok(e: MarketError) -> Result<(), MarketError> {
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
        .or_else(gone_ok)
}

/// Reject a booking with its reason, record it, and have the link refresh its availability.
async fn reject(
    ctx: &Arc<Ctx>,
    market: &PracticeClient,
    b: &MarketBooking,
    reason: &str,
) -> Result<(), StepError> {
    let id = b.booking_id.to_string();
    market
        .reject_insert(b.booking_id, Some(reason))
        .await
        .or_else(gone_ok)?;
    if let Some(row) = ctx.store.booking(&id).await? {
        if !row.state.is_terminal() {
            ctx.store
                .transition_booking(
                    &id,
                    row.state,
                    BookingTransition::Rejected {
                        reason: reason.to_owned(),
                    },
                    reason,
                    Timestamp::now(),
                )
                .await?;
        }
        ctx.trigger(row.link_id, crate::worker::Trigger::PmsChanged);
    }
    info!(booking = %id, reason, "booking rejected");
    Ok(())
}
