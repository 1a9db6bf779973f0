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
//! The marketplace's listing is only a source of new rows ([`intake`]): every booking is worked
//! from the outbox ([`outbox`]), claimed by the link's lease holder at its epoch
//! ([`slotbridge_store::Store::claim_link_bookings`]), so a booking left
//! unfinished by a crash or a transient failure is resumed at the next tick even when the
//! marketplace no longer lists it.
//!
//! A round of work reads the PMS setup once and each (practitioner, day)'s diary once, then
//! works the bookings of one (practitioner, day) in the order the patients booked, adding each
//! insert to that diary: of many bookings for one slot the first is inserted and the others are
//! rejected without another PMS call. Different practitioners and days are worked concurrently.
//!
//! What to do after a failure is decided by the pure rules of
//! [`slotbridge_domain::booking_rules`], on this node's clock (see docs/bookings.md):
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
//! A booking the marketplace no longer waits for when it is confirmed (404/410) ends `Gone`,
//! its appointment left in the diary for the practice to check. Reject reasons sent to the
//! marketplace are fixed texts ([`RejectReason`]), never an error's text.
//!
//! Booking updates (cancellations) are refused for a PMS that cannot cancel online, with the
//! reference system's answer: the patient must call the practice. A confirmed booking whose
//! appointment disappears from the diary (removed at the desk) is reported to the marketplace
//! once, which makes the slot bookable again ([`desk`]).

pub mod changes;
pub mod desk;
pub mod intake;
pub mod outbox;

use std::time::Duration;

use jiff::Timestamp;
use slotbridge_domain::practice::Diary;
use slotbridge_market::MarketError;
use slotbridge_market::PracticeClient;
use slotbridge_market::types::ConfirmBookingInsert;
use slotbridge_pms::PmsError;

pub use desk::after_sync;
pub use intake::handle;
pub use outbox::on_tick;
pub use slotbridge_domain::booking_rules::RejectReason;

/// The reason given to the marketplace for a desk cancellation.
pub const DESK_CANCELLATION: &str = "The practice cancelled this appointment.";

/// The answer to a booking update naming a booking the integration never received.
pub const UNKNOWN_BOOKING: &str = "This booking is not known to the practice's system.";

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

/// The external reference an online insert carries: a retry finds it instead of inserting twice.
pub fn external_ref(booking_id: i64) -> String {
    format!("HE-{booking_id}")
}

/// What the link's worker should do after the booking pipeline ran (the pipeline does not call
/// back into the worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Followup {
    /// A booking was refused against a stale slot: publish the availability again.
    pub refresh_availability: bool,
}

/// The appointment carrying the booking's external reference, if the diary has it.
fn find_by_ref(diary: &Diary, booking_id: i64) -> Option<String> {
    let wanted = external_ref(booking_id);
    diary
        .appointments
        .iter()
        .find(|a| a.external_ref.as_deref() == Some(wanted.as_str()))
        .map(|a| a.id.clone())
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

/// Time from `t` to `now` (zero if `t` is later). Booking latencies are measured from the
/// request's arrival at the integration (the outbox row's creation): the marketplace's
/// `bookedTime` has whole seconds only.
fn since(t: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(t)).unwrap_or_default()
}

/// For a rejection: refused for good (400/404/409/410/422: not found, gone, or answered or
/// auto-confirmed already) means nothing is left to tell; sending it again cannot succeed.
fn answered_ok(e: MarketError) -> Result<(), MarketError> {
    if e.is_refused_answer() {
        tracing::debug!(error = %e, "the marketplace refused the answer for good: not sent again");
        Ok(())
    } else {
        Err(e)
    }
}

/// The outcome recorded when the marketplace refuses a late rejection: the patient may believe
/// they are booked while nothing is in the diary.
pub const LATE_REJECT: &str = "the marketplace refused our rejection, sent after its 20-second \
     window: it may have confirmed the booking itself, and nothing is in the diary. Call the \
     patient to rebook or tell them the time is not available";

/// The outcome recorded when the marketplace refuses a late confirmation: the appointment is in
/// the diary, but the marketplace may show the booking as not made.
pub const LATE_CONFIRM: &str = "the marketplace refused our confirmation, sent late: the \
     appointment is in the diary, but the patient may have been told the booking failed. Call \
     the patient to check they will come";

/// Whether the marketplace no longer waits for the booking (404/409/410).
fn is_gone(e: &MarketError) -> bool {
    e.is_refused_answer() && !matches!(e, MarketError::Invalid { .. })
}

/// confirmInsert with the appointment and the patient.
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
}
