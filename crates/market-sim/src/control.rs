//! The control API under `/_market`: the practice admin's and the patient's side, and
//! inspection, as JSON (documented in docs/market-sim.md). Errors are RFC 9457 problem+json;
//! times are RFC 3339.

use crate::wire::{Patient, RequestType};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use jiff::{Timestamp, civil::Date, civil::DateTime};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    App, delivery,
    state::{BookingRec, HeType, Market, Practice, Practitioner, SimError},
};

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: String,
}

impl Problem {
    /// A problem with `status`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// A 400 about a field.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
        }
    }
}

impl From<SimError> for Problem {
    fn from(e: SimError) -> Self {
        let status = match e {
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
            SimError::NotFound(_) => StatusCode::NOT_FOUND,
            SimError::Conflict(_) => StatusCode::CONFLICT,
        };
        Self {
            status,
            detail: e.to_string(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        slotbridge_edge::Problem::new(self.status, title, self.detail).into_response()
    }
}

type R<T> = Result<T, Problem>;

/// A JSON body whose errors become a problem naming the field.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Problem;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Problem::invalid(e.to_string()))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| Problem::invalid(format!("body: {e}")))
    }
}

/// The control router (to be nested under `/_market`).
pub fn router() -> Router<App> {
    Router::new()
        .route("/consumers", post(add_consumer))
        .route("/practices", get(list_practices).post(create_practice))
        .route("/practices/{pid}", get(practice_view))
        .route("/practices/{pid}/settings", put(settings))
        .route("/practices/{pid}/consents", post(grant))
        .route(
            "/practices/{pid}/consents/{consumer}",
            axum::routing::delete(revoke),
        )
        .route("/practices/{pid}/availability", get(availability))
        .route(
            "/practices/{pid}/practitioners",
            get(practitioners).post(add_practitioner),
        )
        .route(
            "/practices/{pid}/practitioners/{prid}",
            put(edit_practitioner),
        )
        .route(
            "/practices/{pid}/practitioners/{prid}/appointment-types",
            post(create_type),
        )
        .route(
            "/practices/{pid}/practitioners/{prid}/appointment-types/{tid}",
            put(link_type),
        )
        .route(
            "/practices/{pid}/practitioners/{prid}/refresh-linked-types",
            post(refresh_types),
        )
        .route(
            "/practices/{pid}/refresh-resources",
            post(refresh_resources),
        )
        .route("/practices/{pid}/auto-link", post(auto_link))
        .route("/practices/{pid}/requests", get(requests))
        .route(
            "/practices/{pid}/requests/availability",
            post(raise_availability),
        )
        .route("/practices/{pid}/slots", get(slots))
        .route("/practices/{pid}/bookings", get(bookings).post(book))
        .route("/practices/{pid}/health", get(health))
        .route("/bookings/{id}", get(booking))
        .route("/bookings/{id}/cancel", post(patient_cancel))
        .route(
            "/bookings/{id}/request-appointment-changes",
            post(request_changes),
        )
        .route(
            "/practices/{pid}/subscriptions",
            get(practice_subscriptions),
        )
        .route("/webhooks", get(deliveries))
        .route("/stats", get(stats))
        .route("/clock", get(clock).put(set_clock))
        .route("/faults", get(faults).put(set_faults))
        .route("/faults/requests", get(noted_requests))
        .route("/clock/advance", post(advance_clock))
}

fn rfc3339(p: &Practice, dt: DateTime) -> String {
    match dt.to_zoned_datetime(p.tz.clone()) {
        Ok(z) => z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => dt.to_string(),
    }
}

#[derive(Deserialize)]
struct NewConsumer {
    name: String,
    api_key: Option<String>,
}

async fn add_consumer(
    State(app): State<App>,
    Body(b): Body<NewConsumer>,
) -> R<(StatusCode, Json<Value>)> {
    let c = app.lock().add_consumer(&b.name, b.api_key)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": c.name, "api_key": c.api_key})),
    ))
}

#[derive(Deserialize)]
struct NewPractice {
    name: String,
    #[serde(default = "default_tz")]
    timezone: String,
    consumer: Option<String>,
    #[serde(default)]
    hide_when_unhealthy: bool,
}

fn default_tz() -> String {
    "Australia/Sydney".into()
}

async fn create_practice(
    State(app): State<App>,
    Body(b): Body<NewPractice>,
) -> R<(StatusCode, Json<Value>)> {
    let mut m = app.lock();
    if let Some(c) = &b.consumer
        && !m.consumers.contains_key(c)
    {
        return Err(Problem::invalid(format!(
            "consumer: {c:?} is not a known consumer"
        )));
    }
    let id = m.add_practice(&b.name, &b.timezone, b.hide_when_unhealthy)?;
    let key = match &b.consumer {
        Some(c) => Some(m.grant_consent(id, c, app.now())?),
        None => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"practice_id": id.to_string(), "practice_key": key, "name": b.name, "timezone": b.timezone}),
        ),
    ))
}

async fn list_practices(State(app): State<App>) -> Json<Value> {
    let m = app.lock();
    Json(Value::Array(
        m.practices.values().map(|p| json!({"practice_id": p.id.to_string(), "name": p.name, "timezone": p.timezone})).collect(),
    ))
}

fn pid(s: &str) -> R<u64> {
    s.parse().map_err(|_| Problem {
        status: StatusCode::NOT_FOUND,
        detail: format!("practice {s:?} does not exist"),
    })
}

fn practitioner_json(p: &Practitioner) -> Value {
    serde_json::to_value(p).unwrap_or_default()
}

async fn practice_view(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let mut m = app.lock();
    let now = app.now();
    m.settle(now);
    let id = pid(&p)?;
    let health = m.health(id, now)?;
    let p = m.practice(id)?;
    Ok(Json(json!({
        "practice_id": p.id.to_string(),
        "name": p.name,
        "timezone": p.timezone,
        "hide_when_unhealthy": p.hide_when_unhealthy,
        "refuse_late_answers": p.refuse_late_answers,
        "consents": p.consents.values().collect::<Vec<_>>(),
        "liveness_contract": p.liveness,
        "pms_resources": p.resources,
        "pms_appointment_types": p.appointment_types,
        "availability": p.availability.values().map(|a| &a.snapshot).collect::<Vec<_>>(),
        "practitioners": p.practitioners.values().map(practitioner_json).collect::<Vec<_>>(),
        "features": p.features,
        "health": health,
        "nonconforming_requests": m
            .nonconforming
            .iter()
            .filter(|((pr, _), _)| *pr == id)
            .map(|(_, r)| r.count)
            .sum::<u64>(),
    })))
}

#[derive(Deserialize)]
struct Settings {
    hide_when_unhealthy: Option<bool>,
    refuse_late_answers: Option<bool>,
}

async fn settings(
    State(app): State<App>,
    Path(p): Path<String>,
    Body(b): Body<Settings>,
) -> R<StatusCode> {
    let mut m = app.lock();
    let practice = m.practice_mut(pid(&p)?)?;
    if let Some(on) = b.hide_when_unhealthy {
        practice.hide_when_unhealthy = on;
    }
    if let Some(on) = b.refuse_late_answers {
        practice.refuse_late_answers = on;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Grant {
    consumer: String,
}

async fn grant(
    State(app): State<App>,
    Path(p): Path<String>,
    Body(b): Body<Grant>,
) -> R<(StatusCode, Json<Value>)> {
    let id = pid(&p)?;
    let key = app.lock().grant_consent(id, &b.consumer, app.now())?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"practice_id": id.to_string(), "practice_key": key})),
    ))
}

async fn revoke(
    State(app): State<App>,
    Path((p, consumer)): Path<(String, String)>,
) -> R<StatusCode> {
    app.lock().revoke_consent(pid(&p)?, &consumer, app.now())?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct DateQuery {
    date: Option<String>,
}

fn parse_date(q: &DateQuery, required: bool) -> R<Option<Date>> {
    match q.date.as_deref() {
        None | Some("") if required => Err(Problem::invalid("date: required, YYYY-MM-DD")),
        None | Some("") => Ok(None),
        Some(d) => d
            .parse::<Date>()
            .map(Some)
            .map_err(|_| Problem::invalid(format!("date: expected YYYY-MM-DD, found {d:?}"))),
    }
}

async fn availability(
    State(app): State<App>,
    Path(p): Path<String>,
    Query(q): Query<DateQuery>,
) -> R<Json<Value>> {
    let date = parse_date(&q, false)?;
    let m = app.lock();
    let p = m.practice(pid(&p)?)?;
    Ok(Json(json!(
        p.availability
            .values()
            .filter(|a| date.is_none_or(|d| a.snapshot.date == d))
            .map(|a| json!({"snapshot": a.snapshot, "hash": a.hash, "received_at": a.received_at.to_string()}))
            .collect::<Vec<_>>()
    )))
}

async fn practitioners(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let m = app.lock();
    let p = m.practice(pid(&p)?)?;
    Ok(Json(json!(
        p.practitioners
            .values()
            .map(practitioner_json)
            .collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
struct NewPractitioner {
    name: String,
    #[serde(default = "default_specialty")]
    specialty: String,
    pms_resource_id: Option<String>,
}

fn default_specialty() -> String {
    "Dentist".into()
}

/// Create a practitioner (the admin's "add practitioner", choosing an appointment book).
pub fn add_practitioner_to(
    m: &mut Market,
    pid: u64,
    name: &str,
    specialty: &str,
    resource: Option<String>,
) -> Result<Practitioner, SimError> {
    let id = m.new_id();
    let p = m.practice_mut(pid)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(SimError::Invalid("name: must not be empty".into()));
    }
    if p.practitioners.values().any(|x| x.name == name) {
        return Err(SimError::Conflict(format!(
            "a practitioner named {name:?} exists already"
        )));
    }
    if let Some(r) = &resource
        && !p.resources.iter().any(|x| &x.pms_resource_id == r)
    {
        return Err(SimError::Invalid(format!(
            "pms_resource_id: {r:?} is not a published appointment book"
        )));
    }
    let pr = Practitioner {
        id,
        name: name.to_owned(),
        specialty: specialty.to_owned(),
        pms_resource_id: resource,
        appointment_types: Vec::new(),
    };
    p.practitioners.insert(id, pr.clone());
    Ok(pr)
}

async fn add_practitioner(
    State(app): State<App>,
    Path(p): Path<String>,
    Body(b): Body<NewPractitioner>,
) -> R<(StatusCode, Json<Value>)> {
    let pr = add_practitioner_to(
        &mut app.lock(),
        pid(&p)?,
        &b.name,
        &b.specialty,
        b.pms_resource_id,
    )?;
    Ok((StatusCode::CREATED, Json(practitioner_json(&pr))))
}

#[derive(Deserialize)]
struct EditPractitioner {
    pms_resource_id: Option<String>,
}

async fn edit_practitioner(
    State(app): State<App>,
    Path((p, prid)): Path<(String, u64)>,
    Body(b): Body<EditPractitioner>,
) -> R<Json<Value>> {
    let mut m = app.lock();
    let p = m.practice_mut(pid(&p)?)?;
    if let Some(r) = &b.pms_resource_id
        && !p.resources.iter().any(|x| &x.pms_resource_id == r)
    {
        return Err(Problem::invalid(format!(
            "pms_resource_id: {r:?} is not a published appointment book"
        )));
    }
    let pr = p
        .practitioners
        .get_mut(&prid)
        .ok_or(SimError::NotFound(format!(
            "practitioner {prid} does not exist"
        )))?;
    pr.pms_resource_id = b.pms_resource_id;
    Ok(Json(practitioner_json(pr)))
}

#[derive(Deserialize)]
struct NewType {
    name: String,
    length_minutes: Option<i64>,
    linked_pms_appointment_type_id: Option<String>,
    #[serde(default)]
    copy_to_same_specialty: bool,
}

/// Create an appointment type for a practitioner and, when asked, for every other practitioner of
/// the same specialty that does not have one of that name. Returns `(practitioner id, type)`.
pub fn create_type_for(
    m: &mut Market,
    pid: u64,
    prid: u64,
    name: &str,
    length_minutes: Option<i64>,
    linked: Option<String>,
    copy: bool,
) -> Result<Vec<(u64, HeType)>, SimError> {
    let name = name.trim().to_owned();
    if name.is_empty() {
        return Err(SimError::Invalid("name: must not be empty".into()));
    }
    if let Some(l) = length_minutes
        && l <= 0
    {
        return Err(SimError::Invalid("length_minutes: must be positive".into()));
    }
    let p = m.practice(pid)?;
    if let Some(l) = &linked
        && !p
            .appointment_types
            .iter()
            .any(|t| &t.pms_appointment_type_id == l)
    {
        return Err(SimError::Invalid(format!(
            "linked_pms_appointment_type_id: {l:?} is not a published PMS appointment type"
        )));
    }
    let pr = p
        .practitioners
        .get(&prid)
        .ok_or(SimError::NotFound(format!(
            "practitioner {prid} does not exist"
        )))?;
    if pr.appointment_types.iter().any(|t| t.name == name) {
        return Err(SimError::Conflict(format!(
            "{} already has an appointment type named {name:?}",
            pr.name
        )));
    }
    let specialty = pr.specialty.clone();
    let mut targets = vec![prid];
    if copy {
        targets.extend(
            p.practitioners
                .values()
                .filter(|o| {
                    o.id != prid
                        && o.specialty == specialty
                        && !o.appointment_types.iter().any(|t| t.name == name)
                })
                .map(|o| o.id),
        );
    }
    let mut out = Vec::new();
    for t in targets {
        let id = m.new_id();
        let ht = HeType {
            id,
            name: name.clone(),
            length_minutes,
            linked_pms_appointment_type_id: linked.clone(),
        };
        if let Some(pr) = m.practice_mut(pid)?.practitioners.get_mut(&t) {
            pr.appointment_types.push(ht.clone());
            out.push((t, ht));
        }
    }
    Ok(out)
}

async fn create_type(
    State(app): State<App>,
    Path((p, prid)): Path<(String, u64)>,
    Body(b): Body<NewType>,
) -> R<(StatusCode, Json<Value>)> {
    let created = create_type_for(
        &mut app.lock(),
        pid(&p)?,
        prid,
        &b.name,
        b.length_minutes,
        b.linked_pms_appointment_type_id,
        b.copy_to_same_specialty,
    )?;
    Ok((
        StatusCode::CREATED,
        Json(json!(
            created
                .iter()
                .map(|(pr, t)| json!({"practitioner_id": pr, "appointment_type": t}))
                .collect::<Vec<_>>()
        )),
    ))
}

#[derive(Deserialize)]
struct LinkType {
    linked_pms_appointment_type_id: Option<String>,
    length_minutes: Option<i64>,
}

async fn link_type(
    State(app): State<App>,
    Path((p, prid, tid)): Path<(String, u64, u64)>,
    Body(b): Body<LinkType>,
) -> R<Json<Value>> {
    let mut m = app.lock();
    let p = m.practice_mut(pid(&p)?)?;
    if let Some(l) = &b.linked_pms_appointment_type_id
        && !p
            .appointment_types
            .iter()
            .any(|t| &t.pms_appointment_type_id == l)
    {
        return Err(Problem::invalid(format!(
            "linked_pms_appointment_type_id: {l:?} is not a published PMS appointment type"
        )));
    }
    let pr = p
        .practitioners
        .get_mut(&prid)
        .ok_or(SimError::NotFound(format!(
            "practitioner {prid} does not exist"
        )))?;
    let t = pr
        .appointment_types
        .iter_mut()
        .find(|t| t.id == tid)
        .ok_or(SimError::NotFound(format!(
            "appointment type {tid} does not exist"
        )))?;
    t.linked_pms_appointment_type_id = b.linked_pms_appointment_type_id;
    if b.length_minutes.is_some() {
        t.length_minutes = b.length_minutes;
    }
    Ok(Json(serde_json::to_value(&*t).unwrap_or_default()))
}

async fn raise(
    app: &App,
    pid: u64,
    t: RequestType,
    day: Option<Date>,
    res: Option<String>,
    booking: Option<i64>,
) -> R<i64> {
    let (id, out) = app.lock().raise(pid, t, day, res, booking, app.now())?;
    delivery::spawn(app, out);
    Ok(id)
}

async fn refresh_types(
    State(app): State<App>,
    Path((p, prid)): Path<(String, u64)>,
) -> R<(StatusCode, Json<Value>)> {
    let id = pid(&p)?;
    app.lock()
        .practice(id)?
        .practitioners
        .get(&prid)
        .ok_or(SimError::NotFound(format!(
            "practitioner {prid} does not exist"
        )))?;
    let rid = raise(&app, id, RequestType::PmsAppointmentTypes, None, None, None).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"request_id": rid}))))
}

async fn refresh_resources(
    State(app): State<App>,
    Path(p): Path<String>,
) -> R<(StatusCode, Json<Value>)> {
    let rid = raise(&app, pid(&p)?, RequestType::PmsResources, None, None, None).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"request_id": rid}))))
}

/// What a practice admin does by hand after the first sync, in one step: a practitioner per
/// appointment book that has none (named after the book), and for every practitioner an
/// appointment type per applicable PMS type it lacks (same name, linked, no own length).
pub fn auto_link_practice(m: &mut Market, pid: u64) -> Result<(), SimError> {
    let p = m.practice(pid)?.clone();
    for r in &p.resources {
        if !p
            .practitioners
            .values()
            .any(|x| x.pms_resource_id.as_deref() == Some(r.pms_resource_id.as_str()))
        {
            add_practitioner_to(
                m,
                pid,
                &r.pms_resource_name,
                "Dentist",
                Some(r.pms_resource_id.clone()),
            )?;
        }
    }
    let p = m.practice(pid)?.clone();
    for pr in p.practitioners.values() {
        let Some(res) = &pr.pms_resource_id else {
            continue;
        };
        for t in p
            .appointment_types
            .iter()
            .filter(|t| t.pms_resource_id.as_ref().is_none_or(|r| r == res))
        {
            let linked_already = pr.appointment_types.iter().any(|h| {
                h.linked_pms_appointment_type_id.as_deref()
                    == Some(t.pms_appointment_type_id.as_str())
                    || h.name == t.pms_appointment_type_name
            });
            if !linked_already {
                create_type_for(
                    m,
                    pid,
                    pr.id,
                    &t.pms_appointment_type_name,
                    None,
                    Some(t.pms_appointment_type_id.clone()),
                    false,
                )?;
            }
        }
    }
    Ok(())
}

async fn auto_link(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let id = pid(&p)?;
    let mut m = app.lock();
    auto_link_practice(&mut m, id)?;
    let p = m.practice(id)?;
    Ok(Json(json!(
        p.practitioners
            .values()
            .map(practitioner_json)
            .collect::<Vec<_>>()
    )))
}

async fn requests(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let mut m = app.lock();
    m.settle(app.now());
    let id = pid(&p)?;
    let pr = m.practice(id)?;
    let bookings: Vec<i64> = m
        .bookings
        .values()
        .filter(|b| b.practice_id == id && b.insert_pending)
        .map(|b| b.id)
        .collect();
    let updates: Vec<Value> =
        m.pending_updates(id).map(|(b, u)| json!({"request_id": u.request_id, "booking_id": b.id, "created_at": u.created_at.to_string()})).collect();
    let others: Vec<Value> = pr
        .requests
        .iter()
        .map(|r| {
            json!({"request_id": r.request_id, "request_type": r.request_type, "day": r.day, "pms_resource_id": r.pms_resource_id,
                   "booking_id": r.booking_id, "created_at": r.created_at.to_string()})
        })
        .collect();
    Ok(Json(
        json!({"bookings": bookings, "booking_updates": updates, "other": others}),
    ))
}

#[derive(Deserialize)]
struct RaiseAvailability {
    day: String,
    pms_resource_id: Option<String>,
}

async fn raise_availability(
    State(app): State<App>,
    Path(p): Path<String>,
    Body(b): Body<RaiseAvailability>,
) -> R<(StatusCode, Json<Value>)> {
    let day: Date = b
        .day
        .parse()
        .map_err(|_| Problem::invalid(format!("day: expected YYYY-MM-DD, found {:?}", b.day)))?;
    let rid = raise(
        &app,
        pid(&p)?,
        RequestType::Availability,
        Some(day),
        b.pms_resource_id,
        None,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"request_id": rid}))))
}

async fn slots(
    State(app): State<App>,
    Path(p): Path<String>,
    Query(q): Query<DateQuery>,
) -> R<Json<Value>> {
    let date = parse_date(&q, true)?.ok_or_else(|| Problem::invalid("date: required"))?;
    let mut m = app.lock();
    let now = app.now();
    m.settle(now);
    let id = pid(&p)?;
    let slots = m.slots(id, date, now)?;
    let p = m.practice(id)?;
    Ok(Json(json!(
        slots
            .iter()
            .map(|s| json!({
                "practitioner": s.practitioner,
                "pms_resource_id": s.pms_resource_id,
                "appointment_type": s.appointment_type,
                "pms_appointment_type_id": s.pms_appointment_type_id,
                "start": rfc3339(p, s.start),
                "end": rfc3339(p, s.end),
            }))
            .collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
struct NewPatient {
    firstname: String,
    lastname: String,
    dob: String,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    suburb: Option<String>,
    state: Option<String>,
    postcode: Option<String>,
}

#[derive(Deserialize)]
struct NewBooking {
    practitioner: String,
    appointment_type: String,
    start: String,
    patient: NewPatient,
    reason: Option<String>,
    is_new_patient: Option<bool>,
    /// Book from a stale page: accepted even when other bookings already hold the slot.
    #[serde(default)]
    stale: bool,
    /// The practice unlinks the booked marketplace type from its PMS appointment type right
    /// after the patient booked, before the integration processes the booking: the booking
    /// reaches it with a null `pmsAppointmentTypeId`.
    #[serde(default)]
    unlink_type: bool,
}

/// Turn the control API's patient into the wire patient, naming the bad field.
pub fn patient_from(
    firstname: &str,
    lastname: &str,
    dob: &str,
    phone: Option<String>,
    email: Option<String>,
) -> Result<Patient, Problem> {
    if firstname.trim().is_empty() {
        return Err(Problem::invalid("patient.firstname: must not be empty"));
    }
    if lastname.trim().is_empty() {
        return Err(Problem::invalid("patient.lastname: must not be empty"));
    }
    let dob: Date = dob.parse().map_err(|_| {
        Problem::invalid(format!("patient.dob: expected YYYY-MM-DD, found {dob:?}"))
    })?;
    Ok(Patient {
        firstname: Some(firstname.trim().to_owned()),
        lastname: Some(lastname.trim().to_owned()),
        dob: Some(dob),
        phone,
        email,
        ..Patient::default()
    })
}

async fn book(
    State(app): State<App>,
    Path(p): Path<String>,
    Body(b): Body<NewBooking>,
) -> R<(StatusCode, Json<Value>)> {
    let start: Timestamp = b.start.parse().map_err(|_| {
        Problem::invalid(format!(
            "start: expected an RFC 3339 time with offset, found {:?}",
            b.start
        ))
    })?;
    let mut patient = patient_from(
        &b.patient.firstname,
        &b.patient.lastname,
        &b.patient.dob,
        b.patient.phone,
        b.patient.email,
    )?;
    patient.address = b.patient.address;
    patient.suburb = b.patient.suburb;
    patient.state = b.patient.state;
    patient.postcode = b.patient.postcode;
    let (id, out) = {
        // One lock: no poll sees the booking before its type is unlinked.
        let mut m = app.lock();
        let booked = m.book_from(
            pid(&p)?,
            &b.practitioner,
            &b.appointment_type,
            start,
            patient,
            b.reason,
            b.is_new_patient,
            app.now(),
            b.stale,
        )?;
        if b.unlink_type {
            m.unlink_booked_type(booked.0)?;
        }
        booked
    };
    delivery::spawn(&app, out);
    Ok((StatusCode::CREATED, Json(json!({"booking_id": id}))))
}

/// The control API's view of a booking.
pub fn booking_json(m: &Market, b: &BookingRec) -> Value {
    let p = m.practices.get(&b.practice_id);
    let t = |dt: DateTime| p.map(|p| rfc3339(p, dt)).unwrap_or_else(|| dt.to_string());
    json!({
        "booking_id": b.id,
        "status": b.status,
        "pms_appointment_ids": b.pms_appointment_ids,
        "pms_patient_id": b.pms_patient_id,
        "reject_reason": b.reject_reason,
        "practice_id": b.practice_id.to_string(),
        "practitioner": b.practitioner,
        "appointment_type": b.appointment_type,
        "pms_resource_id": b.pms_resource_id,
        "pms_appointment_type_id": b.pms_appointment_type_id,
        "start": t(b.start),
        "end": t(b.start + jiff::SignedDuration::from_secs(b.length_secs)),
        "booked_at": b.booked_at.to_string(),
        "insert_pending": b.insert_pending,
        "auto_confirmed": b.auto_confirmed,
        "late_reject": b.late_reject,
        "cancel_reason": b.cancel_reason,
        "did_not_attend": b.did_not_attend,
        "updates": b.updates,
        "appointment_change": b.appointment_change,
    })
}

async fn bookings(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let mut m = app.lock();
    m.settle(app.now());
    let id = pid(&p)?;
    m.practice(id)?;
    Ok(Json(json!(
        m.bookings
            .values()
            .filter(|b| b.practice_id == id)
            .map(|b| booking_json(&m, b))
            .collect::<Vec<_>>()
    )))
}

async fn booking(State(app): State<App>, Path(id): Path<i64>) -> R<Json<Value>> {
    let mut m = app.lock();
    m.settle(app.now());
    let b = m
        .bookings
        .get(&id)
        .ok_or(SimError::NotFound(format!("booking {id} does not exist")))?;
    Ok(Json(booking_json(&m, b)))
}

async fn patient_cancel(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> R<(StatusCode, Json<Value>)> {
    let (_, rid, out) = app.lock().patient_cancel(id, app.now())?;
    delivery::spawn(&app, out);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"booking_id": id, "request_id": rid})),
    ))
}

async fn request_changes(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> R<(StatusCode, Json<Value>)> {
    let practice = app
        .lock()
        .bookings
        .get(&id)
        .map(|b| b.practice_id)
        .ok_or(SimError::NotFound(format!("booking {id} does not exist")))?;
    let rid = raise(
        &app,
        practice,
        RequestType::PmsAppointmentChanges,
        None,
        None,
        Some(id),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"request_id": rid}))))
}

async fn health(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let mut m = app.lock();
    let now = app.now();
    m.settle(now);
    Ok(Json(
        serde_json::to_value(m.health(pid(&p)?, now)?).unwrap_or_default(),
    ))
}

#[derive(Deserialize)]
struct WebhookQuery {
    practice_id: Option<u64>,
}

async fn deliveries(State(app): State<App>, Query(q): Query<WebhookQuery>) -> Json<Value> {
    let m = app.lock();
    Json(json!(
        m.deliveries
            .iter()
            .filter(|d| q.practice_id.is_none_or(|p| p == d.practice_id))
            .collect::<Vec<_>>()
    ))
}

async fn practice_subscriptions(State(app): State<App>, Path(p): Path<String>) -> R<Json<Value>> {
    let m = app.lock();
    let id = pid(&p)?;
    m.practice(id)?;
    Ok(Json(json!(
        m.subscriptions_of(id)
            .map(|r| json!({
                "id": r.sub.id,
                "consumer": r.consumer,
                "topic": r.sub.topic,
                "callback_url": r.sub.callback_url,
                "client_id": r.sub.client_id,
                "start_at": r.sub.start_at.to_string(),
                "expire_at": r.sub.expire_at.map(|t| t.to_string()),
            }))
            .collect::<Vec<_>>()
    )))
}

/// The requests refused as not conforming to the spec, in all and per practice and consumer.
async fn stats(State(app): State<App>) -> Json<Value> {
    let m = app.lock();
    let total: u64 = m.nonconforming.values().map(|r| r.count).sum();
    Json(json!({
        "nonconforming_requests": total,
        "nonconforming_by_practice": m
            .nonconforming
            .iter()
            .map(|((p, c), r)| json!({
                "practice_id": p.to_string(),
                "consumer": c,
                "count": r.count,
                "last_error": r.last_error,
                "last_request": r.last_request,
            }))
            .collect::<Vec<_>>(),
        "practices": m.practices.len(),
        "practices_configured": m
            .practices
            .values()
            .filter(|p| !p.appointment_types.is_empty())
            .count(),
        "practices_published": m
            .practices
            .values()
            .filter(|p| !p.availability.is_empty())
            .count(),
        "bookings": m.bookings.len(),
        "subscriptions": m.subscriptions.len(),
        "webhook_deliveries": m.deliveries.len(),
    }))
}

fn clock_json(app: &App) -> Json<Value> {
    let now = app.now();
    Json(
        json!({"now": now.to_string(), "offset_seconds": now.duration_since(Timestamp::now()).as_secs()}),
    )
}

async fn clock(State(app): State<App>) -> Json<Value> {
    clock_json(&app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    now: String,
}

/// Set the simulator's time (RFC 3339 with an offset); it runs on from there in real time.
async fn set_clock(State(app): State<App>, Body(b): Body<SetClock>) -> R<Json<Value>> {
    let at: Timestamp = b.now.parse().map_err(|_| {
        Problem::invalid(format!(
            "now: expected an RFC 3339 time with offset, found {:?}",
            b.now
        ))
    })?;
    app.set_now(at);
    app.lock().settle(at);
    Ok(clock_json(&app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

/// Move the simulator's time forward (or back, with a negative number) by `seconds`.
async fn advance_clock(State(app): State<App>, Body(b): Body<Advance>) -> R<Json<Value>> {
    app.advance(jiff::SignedDuration::from_secs(b.seconds));
    let now = app.now();
    app.lock().settle(now);
    Ok(clock_json(&app))
}

async fn faults(State(app): State<App>) -> Json<Value> {
    Json(serde_json::to_value(&app.faults().faults).unwrap_or_default())
}

/// Replace the faults in force (see `crate::faults::Faults`); the answer is what is in force.
async fn set_faults(
    State(app): State<App>,
    Body(b): Body<crate::faults::Faults>,
) -> R<Json<Value>> {
    b.validate().map_err(Problem::invalid)?;
    app.faults().faults = b;
    Ok(faults(State(app)).await)
}

#[derive(Deserialize)]
struct NotedQuery {
    practice_id: Option<String>,
}

/// The API requests noted, oldest first (optionally of one practice).
async fn noted_requests(State(app): State<App>, Query(q): Query<NotedQuery>) -> Json<Value> {
    let f = app.faults();
    Json(json!(
        f.requests
            .iter()
            .filter(|r| q.practice_id.as_ref().is_none_or(|p| *p == r.practice_id))
            .collect::<Vec<_>>()
    ))
}
