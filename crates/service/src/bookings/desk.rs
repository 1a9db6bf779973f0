//! Changes at the desk, pushed to the marketplace as soon as the diary shows them:
//! - a confirmed online booking whose appointment is gone from the diary was cancelled at the
//!   practice's desk; the marketplace is told once (`cancel`), which makes the slot bookable
//!   again there;
//! - a patient marked as not attending (`didNotAttend`), told once.
//!
//! Only what the diary read shows can be pushed: from the practice's today on. A patient marked
//! as not attending an appointment of an earlier day is told when the marketplace asks
//! (pmsAppointmentChanges, see [`super::changes`]).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use slotbridge_domain::horizon::Horizon;
use slotbridge_domain::practice::{Attendance, Diary, PracticeSetup};
use slotbridge_market::PracticeClient;
use slotbridge_market::types::Booking as MarketBooking;
use slotbridge_store::{AppointmentChange, Booking, Lease, Link};
use tracing::{info, warn};

use super::{DESK_CANCELLATION, external_ref};
use crate::ctx::Ctx;
use crate::failure::SyncFailure;

/// Confirmed bookings younger than this are watched for desk cancellations (bookings are taken
/// at most 90 days ahead).
const STANDING_FOR: SignedDuration = SignedDuration::from_hours(24 * 92);

/// Called after every sync with the diary just read (the whole horizon, or the days `read`,
/// inclusive, of a day-scoped sync): confirmed online bookings whose
/// appointment is gone from the diary were cancelled at the desk; each is reported to the
/// marketplace once (which makes its slot bookable again there).
pub async fn after_sync(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    link: &Link,
    market: &PracticeClient,
    setup: &PracticeSetup,
    diary: &Diary,
    read: Option<(Date, Date)>,
) -> Result<(), SyncFailure> {
    let now = ctx.now();
    let since = now.checked_sub(STANDING_FOR).unwrap_or(Timestamp::MIN);
    let standing = ctx.store.standing_bookings(link.id, since).await?;
    if standing.is_empty() {
        return Ok(());
    }
    let horizon = Horizon::new(setup.timezone.time_zone(), now, link.horizon_days);
    // The days the diary was read for: the horizon, or the days of a day-scoped sync.
    let (first, last) = match read {
        Some((from, to)) => (horizon.start().max(from), horizon.last().min(to)),
        None => (horizon.start(), horizon.last()),
    };
    let now_local = now
        .to_zoned_datetime(setup.timezone.time_zone().clone())
        .datetime();
    let ids: HashSet<&str> = diary.appointments.iter().map(|a| a.id.as_str()).collect();
    let missed: HashSet<&str> = diary
        .appointments
        .iter()
        .filter(|a| a.attendance == Attendance::DidNotAttend)
        .map(|a| a.id.as_str())
        .collect();
    let refs: HashSet<&str> = diary
        .appointments
        .iter()
        .filter_map(|a| a.external_ref.as_deref())
        .collect();
    for row in standing {
        let Ok(b) = serde_json::from_value::<MarketBooking>(row.request.clone()) else {
            continue;
        };
        if let Some(appointment) = row.pms_appointment_id.as_deref()
            && missed.contains(appointment)
            && row.appointment_change.as_deref() != Some(AppointmentChange::DidNotAttend.as_str())
        {
            did_not_attend(ctx, lease, market, &row, b.booking_id, appointment).await?;
            continue;
        }
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
            Err(e) => format!("the marketplace refused the cancellation ({})", e.kind()),
        };
        let reason = format!("appointment {appointment} removed at the desk; {told}");
        if ctx
            .store
            .mark_booking_cancelled(lease, &row.booking_id, &reason, now)
            .await?
        {
            info!(booking = %row.booking_id, link = %link.id, %appointment, "desk cancellation reported");
        }
    }
    Ok(())
}

/// Tell the marketplace, once, that the patient did not attend.
async fn did_not_attend(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    market: &PracticeClient,
    row: &Booking,
    booking_id: i64,
    appointment: &str,
) -> Result<(), SyncFailure> {
    let told = match market.did_not_attend(booking_id, None).await {
        Ok(()) => "reported to the marketplace".to_owned(),
        Err(e) if e.is_transient() => {
            warn!(booking = %row.booking_id, error = %e, "reporting a patient who did not attend failed; retried at the next sync");
            return Ok(());
        }
        Err(e) => format!("the marketplace refused it ({})", e.kind()),
    };
    let reason = format!("the patient did not attend appointment {appointment}; {told}");
    if ctx
        .store
        .record_appointment_change(
            lease,
            &row.booking_id,
            AppointmentChange::DidNotAttend,
            &reason,
            ctx.now(),
        )
        .await?
    {
        info!(booking = %row.booking_id, %appointment, "did not attend reported");
    }
    Ok(())
}
