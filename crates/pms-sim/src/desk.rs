//! Desk controls (what a receptionist does) under `/_desk`, and the simulator's own controls
//! under `/_sim`. Both answer on loopback only. Every desk control is a [`DeskAction`], which is
//! also what the start-up flags apply.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, RawPathParams, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use slotbridge_domain::practice::{
    Attendance, BlockKind, BookingSource, ClockTime, DiaryAppointment, DiaryBlock, PracticeSetup,
    PractitionerHours, WeeklyWindow,
};

use crate::SimState;
use crate::api::body;
use crate::faults::Faults;
use crate::practice::Practice;
use crate::problem::Problem;
use crate::wire::{ClosedDateOut, parse_instant, rfc3339};

/// A receptionist's action on one practice (or the creation of a practice).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeskAction {
    /// Book at the desk (may double-book).
    Book {
        /// Site slug.
        site: String,
        /// Practitioner id.
        practitioner: String,
        /// RFC 3339 start.
        start: String,
        /// RFC 3339 end.
        end: String,
        /// Reason id.
        #[serde(default)]
        reason: Option<String>,
        /// Patient id.
        #[serde(default)]
        patient: Option<String>,
        /// Notes.
        #[serde(default)]
        notes: String,
    },
    /// Remove an appointment (also how a cancellation is done).
    Remove {
        /// Site slug.
        site: String,
        /// Appointment id.
        id: String,
    },
    /// Mark an appointment that has started as not attended (a no-show).
    DidNotAttend {
        /// Site slug.
        site: String,
        /// Appointment id.
        id: String,
    },
    /// Add a dated block.
    Block {
        /// Site slug.
        site: String,
        /// Practitioner id; absent blocks everyone.
        #[serde(default)]
        practitioner: Option<String>,
        /// Practice-local date.
        date: Date,
        /// `HH:MM`.
        start: ClockTime,
        /// `HH:MM`.
        end: ClockTime,
        /// `meeting`, `lunch` or `holiday`.
        kind: BlockKind,
    },
    /// Switch Appointment Stacking.
    Stacking {
        /// Site slug.
        site: String,
        /// On or off.
        enabled: bool,
    },
    /// Rename a booking reason.
    RenameReason {
        /// Site slug.
        site: String,
        /// Reason id.
        reason: String,
        /// New name.
        name: String,
    },
    /// Delete a booking reason.
    DeleteReason {
        /// Site slug.
        site: String,
        /// Reason id.
        reason: String,
    },
    /// Online Booking Configuration: publish a practitioner online (with an online appointment
    /// duration) or stop publishing them. This is what adds or removes the practitioner's PMS
    /// resources on the marketplace.
    OnlineBooking {
        /// Site slug.
        site: String,
        /// Practitioner id.
        practitioner: String,
        /// Publish online or not.
        enabled: bool,
        /// The online appointment duration in minutes (kept, or 30, when missing).
        #[serde(default)]
        duration_minutes: Option<u32>,
    },
    /// Replace a practitioner's weekly sessions and breaks.
    Sessions {
        /// Site slug.
        site: String,
        /// Practitioner id.
        practitioner: String,
        /// Weekly sessions.
        sessions: Vec<WeeklyWindow>,
        /// Weekly breaks.
        #[serde(default)]
        breaks: Vec<WeeklyWindow>,
    },
    /// Close the practice on a date: online inserts on it are refused with 409 `closed-date`.
    /// Appointments already booked on it stay until the desk removes them.
    CloseDate {
        /// Site slug.
        site: String,
        /// Practice-local date.
        date: Date,
    },
    /// Open a closed date again.
    ReopenDate {
        /// Site slug.
        site: String,
        /// Practice-local date.
        date: Date,
    },
    /// Revoke an API key.
    RevokeKey {
        /// Site slug.
        site: String,
        /// The key.
        key: String,
    },
    /// Issue a new API key.
    CreateKey {
        /// Site slug.
        site: String,
    },
    /// Create a practice with an empty diary.
    CreatePractice {
        /// The setup (its `site` is the new slug).
        setup: PracticeSetup,
        /// Weekly hours.
        #[serde(default)]
        hours: Vec<PractitionerHours>,
        /// Dates the practice is closed.
        #[serde(default)]
        closed_dates: Vec<Date>,
    },
    /// Create an organisation with several sites (locations), each a practice with an empty
    /// diary, its own practitioners and its own API key. All the sites are created, or none.
    CreateOrganisation {
        /// The organisation's name.
        name: String,
        /// Its sites.
        sites: Vec<NewSite>,
    },
}

/// One site of a new organisation: what `POST /_desk/practices` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// The setup (its `site` is the new slug).
    pub setup: PracticeSetup,
    /// Weekly hours.
    #[serde(default)]
    pub hours: Vec<PractitionerHours>,
    /// Dates the site is closed.
    #[serde(default)]
    pub closed_dates: Vec<Date>,
}

/// The most sites an organisation is created with.
pub const MAX_SITES: usize = 20;

/// A new site's slug and API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteKey {
    /// Site slug.
    pub site: String,
    /// Its first API key.
    pub api_key: String,
}

/// Check a new site and build its practice with a fresh API key. `field` prefixes the names of
/// the fields in errors (`sites[1].` for an organisation's second site).
fn new_site(site: NewSite, field: &str) -> Result<(SiteKey, Practice), Problem> {
    let NewSite {
        setup,
        hours,
        closed_dates,
    } = site;
    for e in &setup.online_booking {
        if setup.practitioner(&e.practitioner).is_none() {
            return Err(Problem::invalid(format!(
                "{field}setup.online_booking: unknown practitioner {:?}",
                e.practitioner
            )));
        }
    }
    if ![5, 10, 15].contains(&setup.interval_minutes) {
        return Err(Problem::invalid(format!(
            "{field}setup.interval_minutes: expected 5, 10 or 15"
        )));
    }
    let key = SiteKey {
        site: setup.site.to_string(),
        api_key: format!("sk_{}", uuid::Uuid::new_v4().simple()),
    };
    let mut p = Practice::new(setup, hours, vec![key.api_key.clone()]);
    p.closed.extend(closed_dates);
    p.dirty = true;
    Ok((key, p))
}

fn site_exists(field: &str, slug: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "site-exists",
        "Site exists",
        format!("{field}setup.site: {slug:?} is taken"),
    )
}

/// What a desk action produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DeskOutcome {
    /// Nothing to report.
    Done,
    /// A new appointment or block.
    Created {
        /// Its id.
        id: String,
    },
    /// A new API key.
    Key {
        /// Site slug.
        site: String,
        /// The key.
        api_key: String,
    },
    /// A new organisation and its sites' keys.
    Organisation {
        /// The organisation's id.
        organisation: String,
        /// Its name.
        name: String,
        /// Each site's slug and API key, in the order given.
        sites: Vec<SiteKey>,
    },
}

fn missing(what: &str, id: &str) -> Problem {
    Problem::not_found(format!("no {what} {id:?}"))
}

impl SimState {
    /// Apply a desk action.
    pub fn desk(&self, action: DeskAction) -> Result<DeskOutcome, Problem> {
        let now = jiff::Timestamp::now();
        let site_of = |site: &str| {
            self.practice(site)
                .ok_or_else(|| Problem::not_found(format!("no site {site:?}")))
        };
        let (site, change, hooks, outcome) = match action {
            DeskAction::CreatePractice {
                setup,
                hours,
                closed_dates,
            } => {
                let site = NewSite {
                    setup,
                    hours,
                    closed_dates,
                };
                let (key, p) = new_site(site, "")?;
                if !self.insert_practice(&key.site, p) {
                    return Err(site_exists("", &key.site));
                }
                return Ok(DeskOutcome::Key {
                    site: key.site,
                    api_key: key.api_key,
                });
            }
            DeskAction::CreateOrganisation { name, sites } => {
                let name = name.trim().to_owned();
                if name.is_empty() {
                    return Err(Problem::invalid("name: must not be empty"));
                }
                if sites.is_empty() || sites.len() > MAX_SITES {
                    return Err(Problem::invalid(format!(
                        "sites: expected 1 to {MAX_SITES} sites, found {}",
                        sites.len()
                    )));
                }
                let organisation = crate::practice::Organisation {
                    id: format!("org_{}", uuid::Uuid::new_v4().simple()),
                    name,
                };
                let mut keys = Vec::with_capacity(sites.len());
                let mut practices = Vec::with_capacity(sites.len());
                for (i, site) in sites.into_iter().enumerate() {
                    let (key, mut p) = new_site(site, &format!("sites[{i}]."))?;
                    p.organisation = Some(organisation.clone());
                    practices.push((key.site.clone(), p));
                    keys.push(key);
                }
                if let Err(slug) = self.insert_practices(practices) {
                    let i = keys.iter().rposition(|k| k.site == slug).unwrap_or(0);
                    return Err(site_exists(&format!("sites[{i}]."), &slug));
                }
                return Ok(DeskOutcome::Organisation {
                    organisation: organisation.id,
                    name: organisation.name,
                    sites: keys,
                });
            }
            DeskAction::Book {
                site,
                practitioner,
                start,
                end,
                reason,
                patient,
                notes,
            } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if p.setup.practitioner(&practitioner).is_none() {
                    return Err(Problem::invalid(format!(
                        "practitioner: no practitioner {practitioner:?} at this practice"
                    )));
                }
                let start = parse_instant(&start, p.tz(), "start").map_err(Problem::invalid)?;
                let end = parse_instant(&end, p.tz(), "end").map_err(Problem::invalid)?;
                if end <= start {
                    return Err(Problem::invalid("end: must be after start"));
                }
                let id = p.put_appointment(DiaryAppointment {
                    id: String::new(),
                    practitioner,
                    start,
                    end,
                    reason,
                    patient,
                    notes,
                    source: BookingSource::Desk,
                    external_ref: None,
                    attendance: Attendance::Booked,
                });
                let tz = p.tz().clone();
                let data = p
                    .appointment(&id)
                    .map(|a| serde_json::to_value(crate::wire::AppointmentOut::new(a, &tz)))
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let c = p.record("appointment.created", &id, data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Created { id })
            }
            DeskAction::Remove { site, id } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let a = p
                    .remove_appointment(&id)
                    .ok_or_else(|| missing("appointment", &id))?;
                let data = serde_json::to_value(crate::wire::AppointmentOut::new(&a, p.tz()))
                    .unwrap_or_default();
                let c = p.record("appointment.deleted", &id, data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::DidNotAttend { site, id } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (a, changed) = p.mark_did_not_attend(&id)?;
                if !changed {
                    return Ok(DeskOutcome::Done);
                }
                let data = serde_json::to_value(crate::wire::AppointmentOut::new(&a, p.tz()))
                    .unwrap_or_default();
                let c = p.record("appointment.updated", &id, data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::Block {
                site,
                practitioner,
                date,
                start,
                end,
                kind,
            } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(pr) = &practitioner
                    && p.setup.practitioner(pr).is_none()
                {
                    return Err(Problem::invalid(format!(
                        "practitioner: no practitioner {pr:?} at this practice"
                    )));
                }
                if end <= start {
                    return Err(Problem::invalid("end: must be after start"));
                }
                let id = p.put_block(DiaryBlock {
                    id: String::new(),
                    practitioner,
                    date,
                    start,
                    end,
                    kind,
                });
                let data = p
                    .blocks
                    .iter()
                    .find(|b| b.id == id)
                    .map(|b| serde_json::to_value(crate::wire::BlockOut::new(b, p.tz())))
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let c = p.record("block.created", &id, data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Created { id })
            }
            DeskAction::Stacking { site, enabled } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                p.setup.stacking = enabled;
                let c = p.record(
                    "setup.changed",
                    "web-setup",
                    serde_json::json!({ "stacking": enabled }),
                    now,
                );
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::RenameReason { site, reason, name } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if name.trim().is_empty() {
                    return Err(Problem::invalid("name: must not be empty"));
                }
                let r = p
                    .setup
                    .reasons
                    .iter_mut()
                    .find(|r| r.id == reason)
                    .ok_or_else(|| missing("reason", &reason))?;
                r.name = name.clone();
                let c = p.record(
                    "setup.changed",
                    &reason,
                    serde_json::json!({ "reason": reason, "name": name }),
                    now,
                );
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::DeleteReason { site, reason } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let before = p.setup.reasons.len();
                p.setup.reasons.retain(|r| r.id != reason);
                if p.setup.reasons.len() == before {
                    return Err(missing("reason", &reason));
                }
                let c = p.record(
                    "setup.changed",
                    &reason,
                    serde_json::json!({ "reason": reason, "deleted": true }),
                    now,
                );
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::OnlineBooking {
                site,
                practitioner,
                enabled,
                duration_minutes,
            } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if p.setup.practitioner(&practitioner).is_none() {
                    return Err(missing("practitioner", &practitioner));
                }
                if duration_minutes.is_some_and(|d| d == 0 || d > 480) {
                    return Err(Problem::invalid(
                        "duration_minutes: expected 1 to 480 minutes",
                    ));
                }
                let kept = p
                    .setup
                    .online_booking
                    .iter()
                    .find(|e| e.practitioner == practitioner)
                    .map(|e| e.duration_minutes);
                p.setup
                    .online_booking
                    .retain(|e| e.practitioner != practitioner);
                if enabled {
                    p.setup
                        .online_booking
                        .push(slotbridge_domain::practice::OnlineBookingEntry {
                            practitioner: practitioner.clone(),
                            duration_minutes: duration_minutes.or(kept).unwrap_or(30),
                        });
                }
                let c = p.record(
                    "setup.changed",
                    "online-booking",
                    serde_json::json!({ "practitioner": practitioner, "enabled": enabled }),
                    now,
                );
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::Sessions {
                site,
                practitioner,
                sessions,
                breaks,
            } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if p.setup.practitioner(&practitioner).is_none() {
                    return Err(missing("practitioner", &practitioner));
                }
                for w in sessions.iter().chain(&breaks) {
                    if w.end <= w.start {
                        return Err(Problem::invalid(format!(
                            "sessions: window {}-{} ends before it starts",
                            w.start, w.end
                        )));
                    }
                }
                let hours = PractitionerHours {
                    practitioner: practitioner.clone(),
                    sessions,
                    breaks,
                };
                let data = serde_json::to_value(&hours).unwrap_or_default();
                p.hours.retain(|h| h.practitioner != practitioner);
                p.hours.push(hours);
                let c = p.record("sessions.changed", &practitioner, data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::CloseDate { site, date } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !p.closed.insert(date) {
                    return Err(Problem::new(
                        StatusCode::CONFLICT,
                        "already-closed",
                        "Date already closed",
                        format!("date: the practice is already closed on {date}"),
                    ));
                }
                let id = date.to_string();
                let data = serde_json::to_value(ClosedDateOut { date }).unwrap_or_default();
                let c = p.record("closed_date.created", &id, data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Created { id })
            }
            DeskAction::ReopenDate { site, date } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !p.closed.remove(&date) {
                    return Err(missing("closed date", &date.to_string()));
                }
                let data = serde_json::to_value(ClosedDateOut { date }).unwrap_or_default();
                let c = p.record("closed_date.deleted", &date.to_string(), data, now);
                (site, c, p.webhooks.clone(), DeskOutcome::Done)
            }
            DeskAction::RevokeKey { site, key } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let k = p
                    .keys
                    .iter_mut()
                    .find(|k| k.key == key)
                    .ok_or_else(|| Problem::not_found("no such key at this site"))?;
                k.revoked = true;
                p.dirty = true;
                return Ok(DeskOutcome::Done);
            }
            DeskAction::CreateKey { site } => {
                let shared = site_of(&site)?;
                let mut p = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let key = format!("sk_{}", uuid::Uuid::new_v4().simple());
                p.keys.push(crate::practice::ApiKey {
                    key: key.clone(),
                    revoked: false,
                });
                p.dirty = true;
                return Ok(DeskOutcome::Key { site, api_key: key });
            }
        };
        self.deliver(&site, &hooks, change);
        Ok(outcome)
    }
}

/// The desk and simulator routes.
pub fn router(state: Arc<SimState>) -> Router<Arc<SimState>> {
    Router::new()
        .route("/_desk/sites/{slug}/appointments", get(list_day).post(book))
        .route("/_desk/sites/{slug}/appointments/{id}", delete(remove))
        .route(
            "/_desk/sites/{slug}/appointments/{id}/did-not-attend",
            post(did_not_attend),
        )
        .route("/_desk/sites/{slug}/stacking", put(stacking))
        .route("/_desk/sites/{slug}/blocks", post(block))
        .route("/_desk/sites/{slug}/closed-dates", post(close_date))
        .route(
            "/_desk/sites/{slug}/closed-dates/{date}",
            delete(reopen_date),
        )
        .route(
            "/_desk/sites/{slug}/reasons/{id}",
            patch(rename_reason).delete(delete_reason),
        )
        .route(
            "/_desk/sites/{slug}/practitioners/{id}/hours",
            put(set_hours),
        )
        .route(
            "/_desk/sites/{slug}/practitioners/{id}/online-booking",
            put(set_online_booking),
        )
        .route("/_desk/sites/{slug}/keys", post(create_key))
        .route("/_desk/sites/{slug}/keys/{id}", delete(revoke_key))
        .route("/_desk/practices", post(create_practice))
        .route("/_desk/organisations", post(create_organisation))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/manifest", get(manifest))
        .route("/_sim/stats", get(stats))
        .layer(axum::middleware::from_fn_with_state(state, loopback_only))
}

async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if peer.ip().is_loopback() {
        next.run(req).await
    } else {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "desk and simulator controls answer on loopback only",
        )
        .into_response()
    }
}

fn param(params: &RawPathParams, name: &str) -> String {
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn respond(result: Result<DeskOutcome, Problem>, created: bool) -> Response {
    match result {
        Ok(DeskOutcome::Done) => StatusCode::NO_CONTENT.into_response(),
        Ok(out) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(out)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// One row of the desk's day view.
#[derive(Debug, Serialize)]
struct DeskRow {
    id: String,
    practitioner: String,
    start: String,
    end: String,
    source: BookingSource,
    external_ref: Option<String>,
    notes: String,
    reason: Option<String>,
    patient: Option<String>,
    status: Attendance,
}

async fn list_day(
    State(state): State<Arc<SimState>>,
    params: RawPathParams,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let slug = param(&params, "slug");
    let Some(shared) = state.practice(&slug) else {
        return Problem::not_found(format!("no site {slug:?}")).into_response();
    };
    let Some(date) = q.get("date").and_then(|d| d.parse::<Date>().ok()) else {
        return Problem::invalid("date: required, YYYY-MM-DD").into_response();
    };
    let mut p = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tz = p.tz().clone();
    let from = date.to_datetime(jiff::civil::Time::midnight());
    let to = ClockTime::END_OF_DAY.on(date);
    let rows: Vec<DeskRow> = p
        .appointments_between(from, to, None)
        .map(|a| DeskRow {
            id: a.id.clone(),
            practitioner: a.practitioner.clone(),
            start: rfc3339(a.start, &tz),
            end: rfc3339(a.end, &tz),
            source: a.source,
            external_ref: a.external_ref.clone(),
            notes: a.notes.clone(),
            reason: a.reason.clone(),
            patient: a.patient.clone(),
            status: a.attendance,
        })
        .collect();
    Json(rows).into_response()
}

/// Parse a desk body, adding the action tag and the site from the path.
fn action(
    bytes: &[u8],
    tag: &str,
    site: &str,
    extra: &[(&str, String)],
) -> Result<DeskAction, Problem> {
    let mut v: serde_json::Value = if bytes.is_empty() {
        serde_json::json!({})
    } else {
        body(bytes)?
    };
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Problem::invalid("body: expected a JSON object"))?;
    obj.insert("action".into(), tag.into());
    obj.insert("site".into(), site.into());
    for (k, val) in extra {
        obj.insert((*k).into(), val.clone().into());
    }
    serde_json::from_value(v).map_err(|e| Problem::invalid(format!("body: {e}")))
}

async fn book(State(s): State<Arc<SimState>>, params: RawPathParams, bytes: Bytes) -> Response {
    let r = action(&bytes, "book", &param(&params, "slug"), &[]).and_then(|a| s.desk(a));
    respond(r, true)
}

async fn remove(State(s): State<Arc<SimState>>, params: RawPathParams) -> Response {
    let r = s.desk(DeskAction::Remove {
        site: param(&params, "slug"),
        id: param(&params, "id"),
    });
    respond(r, false)
}

async fn did_not_attend(State(s): State<Arc<SimState>>, params: RawPathParams) -> Response {
    let r = s.desk(DeskAction::DidNotAttend {
        site: param(&params, "slug"),
        id: param(&params, "id"),
    });
    respond(r, false)
}

async fn stacking(State(s): State<Arc<SimState>>, params: RawPathParams, bytes: Bytes) -> Response {
    let r = action(&bytes, "stacking", &param(&params, "slug"), &[]).and_then(|a| s.desk(a));
    respond(r, false)
}

async fn block(State(s): State<Arc<SimState>>, params: RawPathParams, bytes: Bytes) -> Response {
    let r = action(&bytes, "block", &param(&params, "slug"), &[]).and_then(|a| s.desk(a));
    respond(r, true)
}

async fn close_date(
    State(s): State<Arc<SimState>>,
    params: RawPathParams,
    bytes: Bytes,
) -> Response {
    let r = action(&bytes, "close_date", &param(&params, "slug"), &[]).and_then(|a| s.desk(a));
    respond(r, true)
}

async fn reopen_date(State(s): State<Arc<SimState>>, params: RawPathParams) -> Response {
    let raw = param(&params, "date");
    let r = raw
        .parse::<Date>()
        .map_err(|_| Problem::invalid(format!("date: expected YYYY-MM-DD, found {raw:?}")))
        .and_then(|date| {
            s.desk(DeskAction::ReopenDate {
                site: param(&params, "slug"),
                date,
            })
        });
    respond(r, false)
}

async fn rename_reason(
    State(s): State<Arc<SimState>>,
    params: RawPathParams,
    bytes: Bytes,
) -> Response {
    let extra = [("reason", param(&params, "id"))];
    let r =
        action(&bytes, "rename_reason", &param(&params, "slug"), &extra).and_then(|a| s.desk(a));
    respond(r, false)
}

async fn delete_reason(State(s): State<Arc<SimState>>, params: RawPathParams) -> Response {
    let r = s.desk(DeskAction::DeleteReason {
        site: param(&params, "slug"),
        reason: param(&params, "id"),
    });
    respond(r, false)
}

async fn set_online_booking(
    State(s): State<Arc<SimState>>,
    params: RawPathParams,
    bytes: Bytes,
) -> Response {
    let extra = [("practitioner", param(&params, "id"))];
    let r =
        action(&bytes, "online_booking", &param(&params, "slug"), &extra).and_then(|a| s.desk(a));
    respond(r, false)
}

async fn set_hours(
    State(s): State<Arc<SimState>>,
    params: RawPathParams,
    bytes: Bytes,
) -> Response {
    let extra = [("practitioner", param(&params, "id"))];
    let r = action(&bytes, "sessions", &param(&params, "slug"), &extra).and_then(|a| s.desk(a));
    respond(r, false)
}

async fn create_key(State(s): State<Arc<SimState>>, params: RawPathParams) -> Response {
    let r = s.desk(DeskAction::CreateKey {
        site: param(&params, "slug"),
    });
    respond(r, true)
}

async fn revoke_key(State(s): State<Arc<SimState>>, params: RawPathParams) -> Response {
    let r = s.desk(DeskAction::RevokeKey {
        site: param(&params, "slug"),
        key: param(&params, "id"),
    });
    respond(r, false)
}

/// A desk body that names no site: `{…}` plus the action tag.
fn create(s: &SimState, bytes: &[u8], tag: &str) -> Result<DeskOutcome, Problem> {
    let mut v: serde_json::Value = body(bytes)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Problem::invalid("body: expected a JSON object"))?;
    obj.insert("action".into(), tag.into());
    let action = serde_json::from_value::<DeskAction>(v)
        .map_err(|e| Problem::invalid(format!("body: {e}")))?;
    s.desk(action)
}

async fn create_practice(State(s): State<Arc<SimState>>, bytes: Bytes) -> Response {
    respond(create(&s, &bytes, "create_practice"), true)
}

async fn create_organisation(State(s): State<Arc<SimState>>, bytes: Bytes) -> Response {
    respond(create(&s, &bytes, "create_organisation"), true)
}

async fn get_faults(State(s): State<Arc<SimState>>) -> Json<Faults> {
    Json(s.faults())
}

async fn put_faults(State(s): State<Arc<SimState>>, bytes: Bytes) -> Response {
    match body::<Faults>(&bytes).and_then(|f| {
        f.validate().map_err(Problem::invalid)?;
        Ok(f)
    }) {
        Ok(f) => {
            s.set_faults(f.clone());
            Json(f).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn manifest(State(s): State<Arc<SimState>>) -> Response {
    Json(s.manifest()).into_response()
}

async fn stats(State(s): State<Arc<SimState>>) -> Response {
    Json(serde_json::json!({
        "resident_practices": s.resident(),
        "resident_weight": s.resident_weight(),
        "site_requests": s.all_site_requests(),
    }))
    .into_response()
}
