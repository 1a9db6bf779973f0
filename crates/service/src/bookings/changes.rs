//! The marketplace's pmsAppointmentChanges requests, answered from what the diary says: an
//! appointment removed at the desk is `cancel`, a patient who did not attend is `didNotAttend`,
//! anything else `noPmsAppointmentChange`. Every request is answered (the quick-start guide
//! requires each request type not tied to an optional feature), and what was told is recorded
//! on the booking.
//!
//! The same changes are also pushed as soon as the diary shows them, without waiting to be
//! asked: a desk cancellation and a patient who did not attend (see [`super::desk`]).

use std::sync::Arc;

use slotbridge_domain::practice::Attendance;
use slotbridge_market::PracticeClient;
use slotbridge_market::types::{PmsAppointmentChangesRequest, RequestType};
use slotbridge_pms::PmsConnector;
use slotbridge_store::{AppointmentChange, Booking, BookingState, Lease, Link};
use tracing::{info, warn};

use super::DESK_CANCELLATION;
use crate::ctx::Ctx;
use crate::failure::SyncFailure;

/// What one round of answers did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    /// Requests answered `cancel`.
    pub cancelled: usize,
    /// Requests answered `didNotAttend`.
    pub did_not_attend: usize,
    /// Requests answered `noPmsAppointmentChange`.
    pub no_change: usize,
    /// Requests the marketplace had closed by the time the answer arrived.
    pub closed: usize,
}

impl Answered {
    fn count(&mut self, change: AppointmentChange) {
        match change {
            AppointmentChange::Cancelled => self.cancelled += 1,
            AppointmentChange::DidNotAttend => self.did_not_attend += 1,
            AppointmentChange::NoChange => self.no_change += 1,
        }
    }
}

/// Answer every waiting pmsAppointmentChanges request of the link.
pub async fn answer<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
) -> Result<Answered, SyncFailure> {
    let asked = market
        .all_requests::<PmsAppointmentChangesRequest>(RequestType::PmsAppointmentChanges)
        .await?;
    // A request that cannot be read is still answered when its booking id can be: the diary
    // is what decides, not the request's other fields.
    let mut wanted: Vec<(i64, Vec<String>)> = asked
        .items
        .into_iter()
        .map(|r| (r.booking_id, r.pms_appointment_ids))
        .collect();
    for u in &asked.unreadable {
        match u.booking_id {
            Some(id) => wanted.push((id, Vec::new())),
            None => {
                warn!(link = %link.id, item = %u, "pmsAppointmentChanges request without a readable bookingId: cannot be answered")
            }
        }
    }
    let mut answered = Answered::default();
    for (booking_id, named) in wanted {
        let id = booking_id.to_string();
        let row = ctx.store.booking(&id).await?;
        // A booking of another link is not this worker's to judge (its practice's diary is
        // elsewhere): it is answered by that link's worker.
        if row.as_ref().is_some_and(|r| r.link_id != link.id) {
            continue;
        }
        let change = what_changed(pms, row.as_ref(), &named).await?;
        let sent = match change {
            AppointmentChange::Cancelled => {
                market.cancel(booking_id, Some(DESK_CANCELLATION)).await
            }
            AppointmentChange::DidNotAttend => market.did_not_attend(booking_id, None).await,
            AppointmentChange::NoChange => market.no_pms_appointment_change(booking_id).await,
        };
        match sent {
            Ok(()) => answered.count(change),
            Err(e) if e.is_refused_answer() => {
                warn!(booking = %id, error = %e, "the marketplace closed the appointment-change request before our answer");
                answered.closed += 1;
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(row) = row.as_ref().filter(|r| r.state == BookingState::Confirmed) {
            let reason = format!(
                "asked for the appointment's state; answered {}",
                told(change)
            );
            ctx.store
                .record_appointment_change(lease, &row.booking_id, change, &reason, ctx.now())
                .await?;
        }
        info!(booking = %id, link = %link.id, change = change.as_str(), "appointment change answered");
    }
    Ok(answered)
}

/// What the diary says happened to the booking's appointment.
async fn what_changed<P: PmsConnector>(
    pms: &P,
    row: Option<&Booking>,
    named: &[String],
) -> Result<AppointmentChange, SyncFailure> {
    if row.is_some_and(|r| r.cancelled_at.is_some()) {
        return Ok(AppointmentChange::Cancelled);
    }
    // The appointment we inserted, else the one the marketplace names.
    let appointment = row
        .and_then(|r| r.pms_appointment_id.clone())
        .or_else(|| named.first().cloned());
    let Some(appointment) = appointment else {
        // Never in the diary (rejected, or not ours): nothing changed there.
        return Ok(AppointmentChange::NoChange);
    };
    Ok(match pms.read_appointment(&appointment).await? {
        None => AppointmentChange::Cancelled,
        Some(a) if a.attendance == Attendance::DidNotAttend => AppointmentChange::DidNotAttend,
        Some(_) => AppointmentChange::NoChange,
    })
}

/// The answer's name in the API.
pub fn told(change: AppointmentChange) -> &'static str {
    match change {
        AppointmentChange::Cancelled => "cancel (removed at the desk)",
        AppointmentChange::DidNotAttend => "didNotAttend",
        AppointmentChange::NoChange => "noPmsAppointmentChange",
    }
}
