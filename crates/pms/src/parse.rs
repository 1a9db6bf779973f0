//! Parsers for every response of the Exact-style API. Each takes the raw body and never panics:
//! anything unexpected is a [`PmsError::Protocol`] naming what was wrong (where, never the value
//! found: a body may hold patients). They are public so the fuzz targets and the property tests
//! can reach them.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use slotbridge_domain::practice::{
    Attendance, BlockKind, BookingSource, ClockTime, DiaryAppointment, DiaryBlock,
    OnlineBookingEntry, PmsPractitioner, PmsReason, PractitionerHours,
};

use crate::types::{ChangeEntry, ChangePage, Patient, PracticeInfo};
use crate::{PmsError, safe};

fn json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, PmsError> {
    // The body may hold patients: the error names the path and position, never a value.
    safe::decode(bytes).map_err(|e| PmsError::protocol(format!("{what}: {e}")))
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct RawPage<T> {
    items: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

fn page<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<Page<T>, PmsError> {
    let raw: RawPage<T> = json(bytes, what)?;
    if raw.next_cursor.as_deref() == Some("") {
        return Err(PmsError::protocol(format!("{what}: empty next_cursor")));
    }
    Ok(Page {
        items: raw.items,
        next_cursor: raw.next_cursor,
    })
}

/// An RFC 9457 problem as the PMS sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ProblemBody {
    /// The type URI.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The title.
    #[serde(default)]
    pub title: String,
    /// The detail.
    #[serde(default)]
    pub detail: String,
}

impl ProblemBody {
    /// The last path segment of the type URI, e.g. `overlaps-appointment`.
    pub fn short_kind(&self) -> &str {
        self.kind.rsplit('/').next().unwrap_or("")
    }
}

/// Parse a problem+json body; a body that is not one gives an empty problem.
pub fn parse_problem(bytes: &[u8]) -> ProblemBody {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// Map an error status, its body and its `Retry-After` header to a [`PmsError`].
///
/// The problem's `title` and `detail` are not kept (they may echo the patient's details): only
/// the status, the type's short name when the API documents it, and the field the detail starts
/// with when it is one of the API's own field names.
pub fn parse_error(status: u16, body: &[u8], retry_after: Option<&str>) -> PmsError {
    let p = parse_problem(body);
    let kind = safe::problem_kind(p.short_kind());
    let field = safe::pms_field(&p.detail);
    let field = field.as_deref();
    // Variants that carry the kind show it themselves.
    let with_kind = safe::status_text(status, &kind, field);
    let without_kind = safe::status_text(status, "", field);
    match status {
        401 if kind == "key-revoked" => PmsError::KeyRevoked {
            detail: without_kind,
        },
        401 | 403 => PmsError::Unauthorized { detail: with_kind },
        404 => PmsError::NotFound { detail: with_kind },
        410 => PmsError::Invalid {
            kind: if kind.is_empty() { "gone".into() } else { kind },
            detail: without_kind,
        },
        409 => PmsError::Conflict {
            kind,
            detail: without_kind,
        },
        400 | 422 => PmsError::Invalid {
            kind,
            detail: without_kind,
        },
        429 => PmsError::RateLimited {
            retry_after: parse_retry_after(retry_after),
        },
        408 | 504 => PmsError::Timeout,
        500..=599 => PmsError::Unavailable { detail: with_kind },
        _ => PmsError::protocol(format!("unexpected {with_kind}")),
    }
}

/// `Retry-After` in seconds; an absent or unreadable value means one second.
pub fn parse_retry_after(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), |s| Duration::from_secs(s.min(3600)))
}

/// `GET …/practice`.
pub fn parse_practice(bytes: &[u8]) -> Result<PracticeInfo, PmsError> {
    let p: PracticeInfo = json(bytes, "practice")?;
    if ![5, 10, 15].contains(&p.interval_minutes) {
        return Err(PmsError::protocol(format!(
            "practice.interval_minutes: expected 5, 10 or 15, found {}",
            p.interval_minutes
        )));
    }
    Ok(p)
}

/// `GET …/practitioners`.
pub fn parse_practitioners(bytes: &[u8]) -> Result<Page<PmsPractitioner>, PmsError> {
    page(bytes, "practitioners")
}

/// `GET …/online-booking`.
pub fn parse_online_booking(bytes: &[u8]) -> Result<Page<OnlineBookingEntry>, PmsError> {
    page(bytes, "online-booking")
}

/// `GET …/web-setup`: the stacking switch and the booking reasons.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebSetup {
    /// Appointment Stacking.
    pub stacking: bool,
    /// Booking reasons.
    pub reasons: Vec<PmsReason>,
}

/// `GET …/web-setup`.
pub fn parse_web_setup(bytes: &[u8]) -> Result<WebSetup, PmsError> {
    json(bytes, "web-setup")
}

/// `GET …/sessions`.
pub fn parse_sessions(bytes: &[u8]) -> Result<Page<PractitionerHours>, PmsError> {
    page(bytes, "sessions")
}

fn civil(s: &str, tz: &TimeZone, field: &str) -> Result<DateTime, PmsError> {
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|_| PmsError::protocol(format!("{field}: expected RFC 3339 with offset")))?;
    Ok(ts.to_zoned_datetime(tz.clone()).datetime())
}

#[derive(Deserialize)]
struct RawBlock {
    id: String,
    #[serde(default)]
    practitioner: Option<String>,
    kind: BlockKind,
    date: Date,
    start: String,
    end: String,
}

/// `GET …/blocks`, with times turned into the practice's civil time `tz`.
pub fn parse_blocks(bytes: &[u8], tz: &TimeZone) -> Result<Page<DiaryBlock>, PmsError> {
    let raw: Page<RawBlock> = page(bytes, "blocks")?;
    let mut items = Vec::with_capacity(raw.items.len());
    for b in raw.items {
        let start = civil(&b.start, tz, "blocks.start")?;
        let end = civil(&b.end, tz, "blocks.end")?;
        let clock = |dt: DateTime| {
            if dt.date() == b.date {
                Ok(ClockTime::of(dt))
            } else if dt == ClockTime::END_OF_DAY.on(b.date) {
                Ok(ClockTime::END_OF_DAY)
            } else {
                Err(PmsError::protocol(format!(
                    "blocks: block {} runs outside its date {}",
                    b.id, b.date
                )))
            }
        };
        items.push(DiaryBlock {
            start: clock(start)?,
            end: clock(end)?,
            id: b.id,
            practitioner: b.practitioner,
            date: b.date,
            kind: b.kind,
        });
    }
    Ok(Page {
        items,
        next_cursor: raw.next_cursor,
    })
}

#[derive(Deserialize)]
struct RawClosed {
    date: Date,
}

/// `GET …/closed-dates`.
pub fn parse_closed_dates(bytes: &[u8]) -> Result<Page<Date>, PmsError> {
    let raw: Page<RawClosed> = page(bytes, "closed-dates")?;
    Ok(Page {
        items: raw.items.into_iter().map(|c| c.date).collect(),
        next_cursor: raw.next_cursor,
    })
}

#[derive(Deserialize)]
struct RawAppointment {
    id: String,
    practitioner: String,
    start: String,
    end: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    patient: Option<String>,
    #[serde(default)]
    notes: String,
    source: BookingSource,
    #[serde(default)]
    external_ref: Option<String>,
    /// `booked` or `did_not_attend`; a PMS that sends none is read as booked.
    #[serde(default)]
    status: Attendance,
}

impl RawAppointment {
    fn civil(self, tz: &TimeZone) -> Result<DiaryAppointment, PmsError> {
        let start = civil(&self.start, tz, "appointment.start")?;
        let end = civil(&self.end, tz, "appointment.end")?;
        if end <= start {
            return Err(PmsError::protocol(format!(
                "appointment {}: ends before it starts",
                self.id
            )));
        }
        Ok(DiaryAppointment {
            id: self.id,
            practitioner: self.practitioner,
            start,
            end,
            reason: self.reason,
            patient: self.patient,
            notes: self.notes,
            source: self.source,
            external_ref: self.external_ref,
            attendance: self.status,
        })
    }
}

/// `GET …/appointments`, with times in the practice's civil time `tz`.
pub fn parse_appointments(bytes: &[u8], tz: &TimeZone) -> Result<Page<DiaryAppointment>, PmsError> {
    let raw: Page<RawAppointment> = page(bytes, "appointments")?;
    let items = raw
        .items
        .into_iter()
        .map(|a| a.civil(tz))
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        next_cursor: raw.next_cursor,
    })
}

/// One appointment (`GET …/appointments/{id}`, `POST …/appointments`).
pub fn parse_appointment(bytes: &[u8], tz: &TimeZone) -> Result<DiaryAppointment, PmsError> {
    json::<RawAppointment>(bytes, "appointment")?.civil(tz)
}

#[derive(Deserialize)]
struct RawChanges {
    items: Vec<ChangeEntry>,
    next_cursor: String,
}

/// `GET …/changes`.
pub fn parse_changes(bytes: &[u8]) -> Result<ChangePage, PmsError> {
    let raw: RawChanges = json(bytes, "changes")?;
    if raw.next_cursor.parse::<u64>().is_err() {
        return Err(PmsError::protocol(
            "changes.next_cursor: not a cursor (expected digits)",
        ));
    }
    Ok(ChangePage {
        changes: raw.items,
        next_cursor: raw.next_cursor,
    })
}

/// One patient.
pub fn parse_patient(bytes: &[u8]) -> Result<Patient, PmsError> {
    json(bytes, "patient")
}

/// A page of patients.
pub fn parse_patients(bytes: &[u8]) -> Result<Page<Patient>, PmsError> {
    page(bytes, "patients")
}

#[derive(Deserialize)]
struct RawWebhook {
    id: String,
}

/// A registered webhook (`GET …/webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredWebhook {
    /// Its id.
    pub id: String,
    /// Where it delivers.
    pub url: String,
}

/// `GET …/webhooks`: the site's webhooks.
pub fn parse_webhooks(bytes: &[u8]) -> Result<Vec<RegisteredWebhook>, PmsError> {
    Ok(page::<RegisteredWebhook>(bytes, "webhooks")?.items)
}

/// `POST …/webhooks`: the new subscription's id.
pub fn parse_webhook_id(bytes: &[u8]) -> Result<String, PmsError> {
    Ok(json::<RawWebhook>(bytes, "webhook")?.id)
}
