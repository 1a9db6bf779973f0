//! Booking look-up: find a practice's bookings by the marketplace's booking id, the PMS
//! appointment id or the patient's surname, and show one booking's whole history. Under both the
//! admin API (`GET /api/practices/{id}/bookings`, `GET /api/bookings/{id}`) and the console
//! (`crate::console::lookup`).
//!
//! Why it looks the way it does:
//! - The marketplace's request (the patient's details) is sealed at rest, so a surname search
//!   cannot be a `LIKE` over the rows. The store keeps a blind index of each booking's
//!   normalised surname ([`slotbridge_store::surname_key`], HMAC-SHA256 under a key derived from
//!   the master key) and opens only the bookings it finds.
//! - A booking's history is what the outbox recorded: its events (received, patient matched or
//!   created, written into the diary, each retry with its error, the answer to the marketplace,
//!   a desk cancellation or change reported, a late outcome), plus the row's own facts
//!   (attempts, the PMS ids, the answer's reason). [`HistoryKind`] names each event for a reader.
//! - The patient's name and date of birth are personal data: shown to authenticated operators
//!   only (every route here needs the admin token or a console session) and never logged; a
//!   purged request (docs/operations.md, "Retention") shows none.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use slotbridge_store::{Booking, BookingEvent, BookingSearch, BookingState};
use utoipa::{IntoParams, ToSchema};

use crate::admin::{self, AdminError};
use crate::ctx::Ctx;
use crate::http::{HttpState, Problem, query_problem};

/// The most bookings one look-up returns (newest first).
pub const LOOKUP_LIMIT: u32 = 50;

/// The longest id or surname a look-up takes.
const MAX_CRITERION: usize = 256;

/// Query of `GET /api/practices/{id}/bookings`: at least one criterion; every one given must
/// hold. Blank values count as not given.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// The marketplace's booking id, exactly.
    #[serde(default)]
    pub booking: Option<String>,
    /// The PMS appointment id, exactly.
    #[serde(default)]
    pub appointment: Option<String>,
    /// The patient's surname; case, accents, spaces and punctuation do not matter
    /// (`O'Brien` finds `OBRIEN`), but the whole surname is needed.
    #[serde(default)]
    pub surname: Option<String>,
}

impl LookupQuery {
    /// The store's search, with blank values left out and lengths checked.
    fn search(&self) -> Result<BookingSearch, AdminError> {
        let given =
            |field: &'static str, v: &Option<String>| -> Result<Option<String>, AdminError> {
                match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    None => Ok(None),
                    Some(v) if v.chars().count() > MAX_CRITERION => Err(AdminError::Invalid {
                        field,
                        message: format!(
                            "expected at most {MAX_CRITERION} characters, found {}",
                            v.chars().count()
                        ),
                    }),
                    Some(v) => Ok(Some(v.to_owned())),
                }
            };
        let search = BookingSearch {
            booking_id: given("booking", &self.booking)?,
            pms_appointment_id: given("appointment", &self.appointment)?,
            surname: given("surname", &self.surname)?,
        };
        if search.is_empty() {
            return Err(AdminError::Invalid {
                field: "booking",
                message: "give a booking id (booking), a PMS appointment id (appointment) or a \
                          patient's surname (surname)"
                    .into(),
            });
        }
        Ok(search)
    }
}

/// The patient as the marketplace sent them (personal data: shown to operators only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PatientView {
    /// First name.
    pub first_name: Option<String>,
    /// Surname.
    pub last_name: Option<String>,
    /// Date of birth, as the marketplace wrote it.
    pub dob: Option<String>,
}

/// What an entry of a booking's history is, for a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// The marketplace's booking request arrived.
    Request,
    /// The patient was matched to a PMS file, or one was created.
    Patient,
    /// The appointment was written into the PMS diary.
    Diary,
    /// The marketplace was answered: confirmed, rejected, or it no longer waited (gone).
    Answer,
    /// An attempt failed and the booking waits for the next (the error is in the reason).
    Retry,
    /// After the answer: a desk cancellation or change reported to the marketplace, or a late
    /// outcome for the practice to act on.
    Appointment,
}

impl HistoryKind {
    /// Classify one recorded event by the states it joins.
    pub fn of(e: &BookingEvent) -> Self {
        match (e.from, e.to) {
            (None, _) => HistoryKind::Request,
            (Some(from), to) if from != to => match to {
                BookingState::PatientResolved => HistoryKind::Patient,
                BookingState::Inserted => HistoryKind::Diary,
                _ => HistoryKind::Answer,
            },
            (Some(s), _) if s.is_terminal() => HistoryKind::Appointment,
            _ if e.reason.starts_with("retry at ") => HistoryKind::Retry,
            _ => HistoryKind::Appointment,
        }
    }

    /// The word the console shows.
    pub fn label(self) -> &'static str {
        match self {
            HistoryKind::Request => "request",
            HistoryKind::Patient => "patient",
            HistoryKind::Diary => "diary insert",
            HistoryKind::Answer => "answer",
            HistoryKind::Retry => "attempt failed",
            HistoryKind::Appointment => "after the answer",
        }
    }
}

/// One entry of a booking's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntryView {
    /// When (RFC 3339).
    pub at: String,
    /// What it is.
    pub kind: HistoryKind,
    /// The state before (none for the request).
    pub from: Option<String>,
    /// The state after (the same as `from` for a retry or a note after the answer).
    pub to: String,
    /// Why, as recorded (a retry's error; the answer's reason).
    pub reason: String,
}

impl From<BookingEvent> for HistoryEntryView {
    fn from(e: BookingEvent) -> Self {
        HistoryEntryView {
            kind: HistoryKind::of(&e),
            at: e.at.to_string(),
            from: e.from.map(|s| s.as_str().to_owned()),
            to: e.to.as_str().to_owned(),
            reason: e.reason,
        }
    }
}

/// A booking with its whole history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BookingHistoryView {
    /// The marketplace's booking id.
    pub booking_id: String,
    /// The link (practice) it is for.
    pub link_id: String,
    /// The marketplace practice it came from.
    pub practice_id: Option<String>,
    /// The practice's name (the PMS's, else the marketplace's), if known.
    pub practice_name: Option<String>,
    /// `received`, `patient_resolved`, `inserted`, `confirmed`, `rejected` or `gone`.
    pub state: String,
    /// The appointment's practice-local start, as the marketplace sent it.
    pub appointment_time: Option<String>,
    /// The PMS resource (practitioner and specialty) booked.
    pub resource: Option<String>,
    /// The marketplace appointment type's name.
    pub appointment_type: Option<String>,
    /// The patient, while the request is kept (none once purged).
    pub patient: Option<PatientView>,
    /// How the patient was resolved: `match`, `new` or `ambiguous`.
    pub patient_match: Option<String>,
    /// The PMS patient, once resolved.
    pub pms_patient_id: Option<String>,
    /// The PMS appointment, once written into the diary.
    pub pms_appointment_id: Option<String>,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// The last retryable error.
    pub last_error: Option<String>,
    /// Attempts so far (claims by a worker).
    pub attempts: i64,
    /// When the next attempt is due (unfinished bookings only).
    pub next_attempt_at: Option<String>,
    /// When a desk cancellation was reported to the marketplace.
    pub cancelled_at: Option<String>,
    /// What the marketplace was last told about the appointment: `cancelled`,
    /// `did_not_attend` or `no_change`.
    pub appointment_change: Option<String>,
    /// The outcome of a late answer the marketplace refused, for the practice to act on.
    pub late_outcome: Option<String>,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Every recorded event, oldest first.
    pub history: Vec<HistoryEntryView>,
}

fn text(v: &serde_json::Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// The view of `b` with its `events`, for the practice named `practice_name`.
pub fn history_view(
    b: Booking,
    events: Vec<BookingEvent>,
    practice_name: Option<String>,
) -> BookingHistoryView {
    let r = &b.request;
    let patient = r.get("patient").map(|_| PatientView {
        first_name: text(r, "/patient/firstname"),
        last_name: text(r, "/patient/lastname"),
        dob: text(r, "/patient/dob"),
    });
    BookingHistoryView {
        appointment_time: text(r, "/pmsAppointmentTime"),
        resource: text(r, "/pmsResourceId"),
        appointment_type: text(r, "/comments"),
        patient,
        patient_match: b.match_decision.as_ref().and_then(|d| text(d, "/decision")),
        booking_id: b.booking_id,
        link_id: b.link_id.to_string(),
        practice_id: b.market_practice_id,
        practice_name,
        state: b.state.as_str().to_owned(),
        pms_patient_id: b.pms_patient_id,
        pms_appointment_id: b.pms_appointment_id,
        reject_reason: b.reject_reason,
        last_error: b.last_error,
        attempts: b.attempts,
        next_attempt_at: (!b.state.is_terminal()).then(|| b.next_attempt_at.to_string()),
        cancelled_at: b.cancelled_at.map(|t| t.to_string()),
        appointment_change: b.appointment_change,
        late_outcome: b.late_outcome,
        received_at: b.created_at.to_string(),
        updated_at: b.updated_at.to_string(),
        history: events.into_iter().map(HistoryEntryView::from).collect(),
    }
}

/// The practice's (link's) bookings matching `q`, newest first, each with its history.
pub async fn find(
    ctx: &Ctx,
    link: &str,
    q: &LookupQuery,
) -> Result<Vec<BookingHistoryView>, AdminError> {
    let link = admin::load_link(ctx, link).await?;
    let search = q.search()?;
    let mut out = Vec::new();
    for b in ctx
        .store
        .find_bookings(link.id, &search, LOOKUP_LIMIT)
        .await?
    {
        let events = ctx.store.booking_events(&b.booking_id).await?;
        out.push(history_view(
            b,
            events,
            link.display_name().map(str::to_owned),
        ));
    }
    Ok(out)
}

/// One booking with its history, by the marketplace's booking id.
pub async fn booking(ctx: &Ctx, booking_id: &str) -> Result<BookingHistoryView, AdminError> {
    let not_found = || AdminError::NotFound(format!("no booking {booking_id:?}"));
    if booking_id.is_empty() || booking_id.len() > MAX_CRITERION {
        return Err(not_found());
    }
    let b = ctx.store.booking(booking_id).await?.ok_or_else(not_found)?;
    let events = ctx.store.booking_events(&b.booking_id).await?;
    let name = ctx
        .store
        .link(b.link_id)
        .await?
        .and_then(|l| l.display_name().map(str::to_owned));
    Ok(history_view(b, events, name))
}

/// `GET /api/practices/{id}/bookings`: the practice's bookings matching every criterion given.
#[utoipa::path(get, path = "/api/practices/{id}/bookings", tag = "log",
    params(("id" = String, Path, description = "Link id"), LookupQuery),
    responses((status = 200, description = "Newest first, at most 50, each with its history", body = [BookingHistoryView]),
              (status = 404, description = "No such link"),
              (status = 422, description = "No criterion given, or one too long (the detail names it)"),
              (status = 401, description = "No or wrong bearer token")))]
pub(crate) async fn practice_bookings(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    q: Result<Query<LookupQuery>, QueryRejection>,
) -> Result<axum::Json<Vec<BookingHistoryView>>, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    Ok(axum::Json(find(&s.ctx, &id, &q).await?))
}

/// `GET /api/bookings/{id}`: one booking with its whole history.
#[utoipa::path(get, path = "/api/bookings/{id}", tag = "log",
    params(("id" = String, Path, description = "The marketplace's booking id")),
    responses((status = 200, description = "The booking with every recorded event", body = BookingHistoryView),
              (status = 404, description = "No such booking"),
              (status = 401, description = "No or wrong bearer token")))]
pub(crate) async fn get_booking(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<axum::Json<BookingHistoryView>, Problem> {
    Ok(axum::Json(booking(&s.ctx, &id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn event(from: Option<BookingState>, to: BookingState, reason: &str) -> BookingEvent {
        BookingEvent {
            seq: 1,
            booking_id: "1".into(),
            from,
            to,
            reason: reason.into(),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn each_recorded_event_has_its_kind() {
        use BookingState::*;
        let table = [
            (
                None,
                Received,
                "received from the marketplace",
                HistoryKind::Request,
            ),
            (
                Some(Received),
                PatientResolved,
                "patient matched or created",
                HistoryKind::Patient,
            ),
            (
                Some(PatientResolved),
                Inserted,
                "appointment A1",
                HistoryKind::Diary,
            ),
            (Some(Inserted), Confirmed, "confirmed", HistoryKind::Answer),
            (Some(Received), Rejected, "slot gone", HistoryKind::Answer),
            (
                Some(Inserted),
                Gone,
                "the marketplace no longer waited",
                HistoryKind::Answer,
            ),
            (
                Some(Received),
                Received,
                "retry at 2026-12-01T00:00:10Z: PMS 503",
                HistoryKind::Retry,
            ),
            (
                Some(Inserted),
                Inserted,
                "retry at 2026-12-01T00:00:10Z: 503",
                HistoryKind::Retry,
            ),
            (
                Some(Confirmed),
                Confirmed,
                "appointment removed at the desk",
                HistoryKind::Appointment,
            ),
            (
                Some(Rejected),
                Rejected,
                "auto-confirmed but not in the diary",
                HistoryKind::Appointment,
            ),
            (
                Some(Received),
                Received,
                "late outcome: call the patient",
                HistoryKind::Appointment,
            ),
        ];
        for (from, to, reason, kind) in table {
            assert_eq!(HistoryKind::of(&event(from, to, reason)), kind, "{reason}");
        }
    }

    #[test]
    fn a_lookup_needs_a_criterion_and_ignores_blank_ones() {
        let blank = LookupQuery {
            booking: Some("  ".into()),
            appointment: Some(String::new()),
            surname: None,
        };
        assert!(matches!(
            blank.search(),
            Err(AdminError::Invalid {
                field: "booking",
                ..
            })
        ));
        let q = LookupQuery {
            surname: Some(" Smith ".into()),
            appointment: Some("".into()),
            ..LookupQuery::default()
        };
        assert_eq!(
            q.search().unwrap(),
            BookingSearch {
                surname: Some("Smith".into()),
                ..BookingSearch::default()
            }
        );
        let long = LookupQuery {
            surname: Some("x".repeat(300)),
            ..LookupQuery::default()
        };
        assert!(matches!(
            long.search(),
            Err(AdminError::Invalid {
                field: "surname",
                ..
            })
        ));
    }
}
