//! The Exact-style API under `/api/v1/sites/{slug}/` (see `docs/pms-api.md`).

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use axum::extract::{FromRequestParts, Query, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use bytes::Bytes;
use jiff::civil::{Date, DateTime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::SimState;
use crate::practice::{
    Address, Change, Medicare, OnlineInsert, Patient, Practice, Webhook, medicare_valid,
    normalize_name, normalize_phone,
};
use crate::problem::Problem;
use crate::registry::Shared;
use crate::wire::{
    AppointmentOut, BlockOut, ClosedDateOut, InsertIn, Page, PracticeOut, WebSetupOut,
    parse_instant,
};

/// The API routes.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/api/v1/sites/{slug}/practice", get(practice))
        .route("/api/v1/sites/{slug}/practitioners", get(practitioners))
        .route("/api/v1/sites/{slug}/online-booking", get(online_booking))
        .route("/api/v1/sites/{slug}/web-setup", get(web_setup))
        .route("/api/v1/sites/{slug}/sessions", get(sessions))
        .route("/api/v1/sites/{slug}/blocks", get(blocks))
        .route("/api/v1/sites/{slug}/closed-dates", get(closed_dates))
        .route(
            "/api/v1/sites/{slug}/appointments",
            get(appointments).post(insert_appointment),
        )
        .route("/api/v1/sites/{slug}/appointments/{id}", get(appointment))
        .route("/api/v1/sites/{slug}/changes", get(changes))
        .route(
            "/api/v1/sites/{slug}/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route("/api/v1/sites/{slug}/webhooks/{id}", delete(delete_webhook))
        .route(
            "/api/v1/sites/{slug}/patients",
            get(search_patients).post(create_patient),
        )
        .route("/api/v1/sites/{slug}/patients/{id}", get(patient))
}

/// An authenticated site: the slug exists, the `X-API-KEY` is one of its live keys, and the key
/// is within its rate limit. Every API handler takes one, so none can forget the checks.
pub struct Site {
    /// The site slug.
    pub slug: String,
    practice: Shared,
}

impl Site {
    fn lock(&self) -> MutexGuard<'_, Practice> {
        self.practice
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FromRequestParts<Arc<SimState>> for Site {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<SimState>,
    ) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found("no site in the path"))?;
        let slug = params
            .iter()
            .find(|(k, _)| *k == "slug")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| Problem::not_found("no site in the path"))?;
        state.count_site_request(&slug);
        let practice = state
            .practice(&slug)
            .ok_or_else(|| Problem::not_found(format!("no site {slug:?}")))?;
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(key) = key else {
            return Err(unauthorized("the X-API-KEY header is missing"));
        };
        let revoked = {
            let p = practice
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match p.keys.iter().find(|k| k.key == key) {
                None => return Err(unauthorized("the X-API-KEY is not a key of this site")),
                Some(k) => k.revoked,
            }
        };
        if revoked {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "key-revoked",
                "API key revoked",
                "the X-API-KEY was revoked by the practice; ask the practice for a new key",
            ));
        }
        state.check_rate(&key)?;
        Ok(Site { slug, practice })
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        detail,
    )
}

type Q = Query<HashMap<String, String>>;

/// Parse a JSON body into `T`, as a 422 naming the problem if it does not fit.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|e| Problem::invalid(format!("body: {e}")))
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

fn limit(q: &HashMap<String, String>) -> Result<usize, Problem> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::invalid(format!("limit: expected 1..={MAX_LIMIT}, found {s:?}"))
            }),
    }
}

/// Offset pagination for small, stable lists; the cursor is opaque to clients.
fn paginate<T: Serialize + Clone>(
    items: &[T],
    q: &HashMap<String, String>,
) -> Result<Page<T>, Problem> {
    let limit = limit(q)?;
    let offset = match q.get("cursor") {
        None => 0,
        Some(c) => c
            .strip_prefix("o")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                Problem::invalid(format!("cursor: {c:?} is not a cursor of this list"))
            })?,
    };
    let end = (offset + limit).min(items.len());
    Ok(Page {
        items: items[offset..end].to_vec(),
        next_cursor: (end < items.len()).then(|| format!("o{end}")),
    })
}

async fn practice(site: Site) -> Json<PracticeOut> {
    let p = site.lock();
    Json(PracticeOut {
        slug: site.slug.clone(),
        name: p.setup.name.clone(),
        timezone: p.setup.timezone.name().to_owned(),
        phone: p.setup.phone.clone(),
        interval_minutes: p.setup.interval_minutes,
        organisation: p.organisation.clone(),
    })
}

async fn practitioners(site: Site, Query(q): Q) -> Response {
    let p = site.lock();
    paginate(&p.setup.practitioners, &q)
        .map(Json)
        .into_response()
}

async fn online_booking(site: Site, Query(q): Q) -> Response {
    let p = site.lock();
    paginate(&p.setup.online_booking, &q)
        .map(Json)
        .into_response()
}

async fn web_setup(site: Site) -> Response {
    let p = site.lock();
    Json(WebSetupOut {
        stacking: p.setup.stacking,
        reasons: &p.setup.reasons,
    })
    .into_response()
}

async fn sessions(site: Site, Query(q): Q) -> Response {
    let p = site.lock();
    paginate(&p.hours, &q).map(Json).into_response()
}

fn date_param(q: &HashMap<String, String>, name: &str) -> Result<Date, Problem> {
    let s = q
        .get(name)
        .ok_or_else(|| Problem::invalid(format!("{name}: required (YYYY-MM-DD)")))?;
    s.parse()
        .map_err(|_| Problem::invalid(format!("{name}: expected YYYY-MM-DD, found {s:?}")))
}

/// A `from`/`to` range: RFC 3339 instants, or practice-local dates (`to` exclusive).
fn range(q: &HashMap<String, String>, p: &Practice) -> Result<(DateTime, DateTime), Problem> {
    let one = |name: &str| -> Result<DateTime, Problem> {
        let s = q.get(name).ok_or_else(|| {
            Problem::invalid(format!(
                "{name}: required (YYYY-MM-DD or an RFC 3339 date-time with offset)"
            ))
        })?;
        if let Ok(d) = s.parse::<Date>()
            && s.len() == 10
        {
            return Ok(d.to_datetime(jiff::civil::Time::midnight()));
        }
        parse_instant(s, p.tz(), name).map_err(Problem::invalid)
    };
    let (from, to) = (one("from")?, one("to")?);
    if to <= from {
        return Err(Problem::invalid("to: must be after from"));
    }
    if from.duration_until(to).as_hours() > 24 * 92 {
        return Err(Problem::invalid("to: the range may span at most 92 days"));
    }
    Ok((from, to))
}

async fn blocks(site: Site, Query(q): Q) -> Response {
    let p = site.lock();
    let result = (|| {
        let (from, to) = range(&q, &p)?;
        let items: Vec<BlockOut> = p
            .blocks
            .iter()
            .filter(|b| {
                let d = b.date.to_datetime(jiff::civil::Time::midnight());
                d >= from.date().to_datetime(jiff::civil::Time::midnight()) && d < to
            })
            .map(|b| BlockOut::new(b, p.tz()))
            .collect();
        paginate(&items, &q)
    })();
    result.map(Json).into_response()
}

async fn closed_dates(site: Site, Query(q): Q) -> Response {
    let p = site.lock();
    let items: Vec<ClosedDateOut> = p
        .closed
        .iter()
        .map(|d| ClosedDateOut { date: *d })
        .collect();
    paginate(&items, &q).map(Json).into_response()
}

fn appt_cursor(key: (DateTime, u64)) -> String {
    hex::encode(format!("{}|{}", key.0, key.1))
}

fn parse_appt_cursor(s: &str) -> Option<(DateTime, u64)> {
    let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
    let (dt, n) = raw.split_once('|')?;
    Some((dt.parse().ok()?, n.parse().ok()?))
}

async fn appointments(site: Site, Query(q): Q) -> Response {
    let mut p = site.lock();
    let tz = p.tz().clone();
    let result = (|| {
        let (from, to) = range(&q, &p)?;
        let limit = limit(&q)?;
        let after = match q.get("cursor") {
            None => None,
            Some(c) => Some(parse_appt_cursor(c).ok_or_else(|| {
                Problem::invalid(format!("cursor: {c:?} is not a cursor of this list"))
            })?),
        };
        let mut items: Vec<AppointmentOut> = Vec::new();
        let mut last = None;
        let mut more = false;
        for a in p.appointments_between(from, to, after) {
            if items.len() == limit {
                more = true;
                break;
            }
            last = Practice::appointment_key(a);
            items.push(AppointmentOut::new(a, &tz));
        }
        Ok::<_, Problem>(Page {
            items,
            next_cursor: if more { last.map(appt_cursor) } else { None },
        })
    })();
    result.map(Json).into_response()
}

async fn appointment(site: Site, params: RawPathParams) -> Response {
    let mut p = site.lock();
    let tz = p.tz().clone();
    let id = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    match p.appointment(&id) {
        Some(a) => Json(AppointmentOut::new(a, &tz)).into_response(),
        None => Problem::not_found(format!("no appointment {id:?}")).into_response(),
    }
}

async fn insert_appointment(
    State(state): State<Arc<SimState>>,
    site: Site,
    bytes: Bytes,
) -> Response {
    let result = (|| {
        let req: InsertIn = body(&bytes)?;
        if req.external_ref.trim().is_empty() {
            return Err(Problem::invalid("external_ref: must not be empty"));
        }
        let mut p = site.lock();
        let ins = OnlineInsert {
            start: parse_instant(&req.start, p.tz(), "start").map_err(Problem::invalid)?,
            end: parse_instant(&req.end, p.tz(), "end").map_err(Problem::invalid)?,
            practitioner: req.practitioner,
            reason: req.reason,
            patient: req.patient,
            notes: req.notes,
            external_ref: req.external_ref,
        };
        let now = jiff::Timestamp::now();
        let (a, created) = p.insert_online(ins, now)?;
        let out = AppointmentOut::new(&a, p.tz());
        let change = created.then(|| {
            p.record(
                "appointment.created",
                &a.id,
                serde_json::to_value(&out).unwrap_or_default(),
                now,
            )
        });
        Ok((out, created, change, p.webhooks.clone()))
    })();
    match result {
        Ok((out, created, change, hooks)) => {
            if let Some(c) = change {
                state.deliver(&site.slug, &hooks, c);
            }
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

async fn changes(site: Site, Query(q): Q) -> Response {
    let p = site.lock();
    let result = (|| {
        let limit = limit(&q)?;
        let since = match q.get("since") {
            None => 0,
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| Problem::invalid(format!("since: {s:?} is not a cursor")))?,
        };
        let (items, next) = p.changes_since(since, limit)?;
        Ok::<_, Problem>(ChangesOut {
            items,
            next_cursor: next.to_string(),
        })
    })();
    result.map(Json).into_response()
}

/// A page of the change feed. `next_cursor` is always present: poll again with it.
#[derive(Debug, Serialize)]
struct ChangesOut {
    items: Vec<Change>,
    next_cursor: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookIn {
    url: String,
    secret: String,
}

#[derive(Debug, Clone, Serialize)]
struct WebhookOut {
    id: String,
    url: String,
}

async fn create_webhook(site: Site, bytes: Bytes) -> Response {
    let result = (|| {
        let req: WebhookIn = body(&bytes)?;
        let url = reqwest::Url::parse(&req.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Problem::invalid(format!("url: expected an http(s) URL, found {:?}", req.url))
            })?;
        if req.secret.len() < 16 {
            return Err(Problem::invalid("secret: must be at least 16 characters"));
        }
        let mut p = site.lock();
        if p.webhooks.len() >= 10 {
            return Err(Problem::invalid("url: at most 10 webhooks per site"));
        }
        let hook = Webhook {
            id: format!("W{}", uuid::Uuid::new_v4().simple()),
            url: url.to_string(),
            secret: req.secret,
        };
        p.webhooks.push(hook.clone());
        p.dirty = true;
        Ok(WebhookOut {
            id: hook.id,
            url: hook.url,
        })
    })();
    match result {
        Ok(out) => (StatusCode::CREATED, Json(out)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_webhooks(site: Site) -> Response {
    let p = site.lock();
    let items: Vec<WebhookOut> = p
        .webhooks
        .iter()
        .map(|w| WebhookOut {
            id: w.id.clone(),
            url: w.url.clone(),
        })
        .collect();
    Json(Page {
        items,
        next_cursor: None,
    })
    .into_response()
}

async fn delete_webhook(site: Site, params: RawPathParams) -> Response {
    let id = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let mut p = site.lock();
    let before = p.webhooks.len();
    p.webhooks.retain(|w| w.id != id);
    if p.webhooks.len() == before {
        Problem::not_found(format!("no webhook {id:?}")).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// The body of `POST …/patients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientIn {
    first_name: String,
    last_name: String,
    date_of_birth: String,
    #[serde(default)]
    mobile_phone: Option<String>,
    #[serde(default)]
    home_phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    address: Option<Address>,
    #[serde(default)]
    medicare: Option<Medicare>,
}

fn validate_patient(req: PatientIn, today: Date) -> Result<Patient, Problem> {
    if req.first_name.trim().is_empty() {
        return Err(Problem::invalid("first_name: must not be empty"));
    }
    if req.last_name.trim().is_empty() {
        return Err(Problem::invalid("last_name: must not be empty"));
    }
    let dob: Date = req.date_of_birth.parse().map_err(|_| {
        Problem::invalid(format!(
            "date_of_birth: expected YYYY-MM-DD, found {:?}",
            req.date_of_birth
        ))
    })?;
    if dob > today || dob.year() < 1900 {
        return Err(Problem::invalid(format!(
            "date_of_birth: {dob} is not a plausible date of birth"
        )));
    }
    for (field, phone) in [
        ("mobile_phone", &req.mobile_phone),
        ("home_phone", &req.home_phone),
    ] {
        if let Some(ph) = phone {
            let n = normalize_phone(ph);
            let allowed = ph
                .chars()
                .all(|c| c.is_ascii_digit() || " +()-".contains(c));
            if !allowed || !(8..=10).contains(&n.len()) {
                return Err(Problem::invalid(format!(
                    "{field}: {ph:?} is not an Australian phone number"
                )));
            }
        }
    }
    if let Some(e) = &req.email {
        let ok = e.split_once('@').is_some_and(|(a, b)| {
            !a.is_empty() && b.contains('.') && !e.contains(char::is_whitespace)
        });
        if !ok {
            return Err(Problem::invalid(format!(
                "email: {e:?} is not an email address"
            )));
        }
    }
    if let Some(m) = &req.medicare {
        if !medicare_valid(&m.number) {
            return Err(Problem::invalid(format!(
                "medicare.number: {:?} is not a valid Medicare card number",
                m.number
            )));
        }
        if !(1..=9).contains(&m.irn) {
            return Err(Problem::invalid("medicare.irn: expected 1..=9"));
        }
    }
    Ok(Patient {
        id: String::new(),
        first_name: req.first_name.trim().to_owned(),
        last_name: req.last_name.trim().to_owned(),
        date_of_birth: dob,
        mobile_phone: req.mobile_phone,
        home_phone: req.home_phone,
        email: req.email,
        address: req.address,
        medicare: req.medicare,
    })
}

async fn create_patient(State(state): State<Arc<SimState>>, site: Site, bytes: Bytes) -> Response {
    let result = (|| {
        let req: PatientIn = body(&bytes)?;
        let mut p = site.lock();
        let now = jiff::Timestamp::now();
        let today = now.to_zoned_datetime(p.tz().clone()).date();
        let patient = p.put_patient(validate_patient(req, today)?);
        let change = p.record(
            "patient.created",
            &patient.id,
            serde_json::json!({ "id": patient.id }),
            now,
        );
        Ok::<_, Problem>((patient, change, p.webhooks.clone()))
    })();
    match result {
        Ok((patient, change, hooks)) => {
            state.deliver(&site.slug, &hooks, change);
            (StatusCode::CREATED, Json(patient)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn search_patients(site: Site, Query(q): Q) -> Response {
    let mut p = site.lock();
    let result = (|| {
        let first = q.get("first_name").map(|s| normalize_name(s));
        let last = q.get("last_name").map(|s| normalize_name(s));
        let dob = match q.get("date_of_birth") {
            None => None,
            Some(_) => Some(date_param(&q, "date_of_birth")?),
        };
        let phone = q.get("phone").map(|s| normalize_phone(s));
        let email = q.get("email").map(|s| s.trim().to_lowercase());
        if first.is_none() && last.is_none() && dob.is_none() && phone.is_none() && email.is_none()
        {
            return Err(Problem::invalid(
                "query: give at least one of first_name, last_name, date_of_birth, phone, email",
            ));
        }
        if phone.as_ref().is_some_and(|s| s.len() < 8) {
            return Err(Problem::invalid("phone: too short to search by"));
        }
        let matches: Vec<Patient> = p
            .patients()
            .iter()
            .filter(|x| {
                first
                    .as_ref()
                    .is_none_or(|f| normalize_name(&x.first_name) == *f)
            })
            .filter(|x| {
                last.as_ref()
                    .is_none_or(|l| normalize_name(&x.last_name) == *l)
            })
            .filter(|x| dob.is_none_or(|d| x.date_of_birth == d))
            .filter(|x| {
                phone.as_ref().is_none_or(|ph| {
                    [&x.mobile_phone, &x.home_phone]
                        .iter()
                        .any(|o| o.as_deref().is_some_and(|v| normalize_phone(v) == *ph))
                })
            })
            .filter(|x| {
                email.as_ref().is_none_or(|e| {
                    x.email
                        .as_deref()
                        .is_some_and(|v| v.trim().to_lowercase() == *e)
                })
            })
            .cloned()
            .collect();
        paginate(&matches, &q)
    })();
    result.map(Json).into_response()
}

async fn patient(site: Site, params: RawPathParams) -> Response {
    let mut p = site.lock();
    let id = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    match p.patients().iter().find(|x| x.id == id) {
        Some(x) => Json(x.clone()).into_response(),
        None => Problem::not_found(format!("no patient {id:?}")).into_response(),
    }
}
