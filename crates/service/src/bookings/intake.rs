//! Intake: the marketplace's booking requests into the outbox (each once), answers sent again
//! for bookings the marketplace still lists although answered, and booking updates refused
//! with the seed's answer (Exact cannot cancel online: the patient must call the practice).

use std::sync::Arc;

use slotbridge_market::types::{Booking as MarketBooking, BookingUpdate, RequestType};
use slotbridge_market::{PracticeClient, Unreadable};
use slotbridge_pms::PmsConnector;
use slotbridge_store::{Booking, BookingState, Lease, Link, NewBooking};
use tracing::{debug, info, warn};

use super::{
    Followup, LATE_REJECT, RejectReason, UNKNOWN_BOOKING, answered_ok, cancellation_refusal,
    confirm, is_gone, on_tick,
};
use crate::ctx::Ctx;
use crate::failure::SyncFailure;

/// Answer the waiting requests of `kind` (bookings or booking updates) for one link.
pub async fn handle<P: PmsConnector>(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    link: &Link,
    pms: &P,
    market: &PracticeClient,
    kind: RequestType,
) -> Result<Followup, SyncFailure> {
    match kind {
        RequestType::Bookings => {
            let listed = market
                .all_requests::<MarketBooking>(RequestType::Bookings)
                .await?;
            let now = ctx.now();
            for u in &listed.unreadable {
                take_unreadable(ctx, lease, link, market, u, now).await?;
            }
            for b in &listed.items {
                let id = b.booking_id.to_string();
                let new = NewBooking {
                    booking_id: id.clone(),
                    link_id: link.id,
                    market_practice_id: link.market_practice_id.clone(),
                    request: serde_json::to_value(b).unwrap_or_default(),
                    received_at: now,
                };
                if ctx.store.enqueue_booking(lease, &new).await? {
                    debug!(booking = %id, link = %link.id, "booking received");
                    continue;
                }
                // Known already. Still listed although answered: our answer was lost.
                if let Some(row) = ctx.store.booking(&id).await?
                    && row.state.is_terminal()
                    && row.late_outcome.is_none()
                {
                    answer_again(ctx, lease, market, &row, b.booking_id).await;
                }
            }
            on_tick(ctx, lease, link, pms, market).await
        }
        RequestType::BookingUpdates => {
            let listed = market
                .all_requests::<BookingUpdate>(RequestType::BookingUpdates)
                .await?;
            for u in &listed.unreadable {
                // Without its requestId an update cannot be answered; nothing to cancel anyway.
                warn!(link = %link.id, item = %u, "booking update request unreadable: left alone");
            }
            let updates = listed.items;
            if updates.is_empty() {
                return Ok(Followup::default());
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
                ctx.metrics
                    .request_answered("bookingUpdates", super::since(u.updated_at, ctx.now()));
            }
            Ok(Followup::default())
        }
        _ => Ok(Followup::default()),
    }
}

/// A listed booking the client could not read. One with a `bookingId` goes into the outbox
/// with what is known, `{"bookingId", "unreadable"}`: that is not a readable booking request,
/// so the outbox rejects it with [`RejectReason::Unreadable`] (fenced, recorded, answered once)
/// instead of letting the marketplace auto-confirm a booking that is not in the diary. One
/// without an id cannot be answered and is only logged.
async fn take_unreadable(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    link: &Link,
    market: &PracticeClient,
    u: &Unreadable,
    now: jiff::Timestamp,
) -> Result<(), SyncFailure> {
    let Some(booking_id) = u.booking_id else {
        warn!(link = %link.id, item = %u, "booking request without a readable bookingId: cannot be answered");
        return Ok(());
    };
    let id = booking_id.to_string();
    let new = NewBooking {
        booking_id: id.clone(),
        link_id: link.id,
        market_practice_id: link.market_practice_id.clone(),
        request: serde_json::json!({ "bookingId": booking_id, "unreadable": u.reason }),
        received_at: now,
    };
    if ctx.store.enqueue_booking(lease, &new).await? {
        warn!(booking = %id, link = %link.id, reason = %u.reason, "booking request unreadable: it is rejected");
    } else if let Some(row) = ctx.store.booking(&id).await?
        && row.state.is_terminal()
        && row.late_outcome.is_none()
    {
        answer_again(ctx, lease, market, &row, booking_id).await;
    }
    Ok(())
}

/// Send an answer again for a booking the marketplace still lists although it was answered. A
/// late rejection the marketplace refuses for good is recorded, once, and never sent again.
async fn answer_again(
    ctx: &Arc<Ctx>,
    lease: &Lease,
    market: &PracticeClient,
    row: &Booking,
    booking_id: i64,
) {
    let sent = match row.state {
        BookingState::Confirmed => match (&row.pms_appointment_id, &row.pms_patient_id) {
            (Some(a), Some(p)) => confirm(market, booking_id, a.clone(), p.clone())
                .await
                .or_else(|e| if is_gone(&e) { Ok(()) } else { Err(e) }),
            _ => Ok(()),
        },
        // Only the fixed reasons are ever sent; a row refused for another cause (its
        // confirmation refused, a previous practice's booking) is not ours to answer again.
        BookingState::Rejected => match row
            .reject_reason
            .as_deref()
            .and_then(RejectReason::from_text)
        {
            Some(reason) => match market.reject_insert(booking_id, Some(reason.text())).await {
                Err(e) if e.is_refused_answer() => {
                    warn!(booking = %row.booking_id, error = %e, "the marketplace refused the late rejection");
                    if let Err(e) = ctx
                        .store
                        .record_late_outcome(lease, &row.booking_id, LATE_REJECT, ctx.now())
                        .await
                    {
                        warn!(booking = %row.booking_id, error = %e, "recording the late outcome failed");
                    }
                    Ok(())
                }
                other => other,
            },
            None => Ok(()),
        },
        _ => Ok(()),
    };
    if let Err(e) = sent {
        warn!(booking = %row.booking_id, error = %e, "answering a booking again failed");
    }
}
