//! The Healthengine PMS API v1.9.0 as the simulator serves it, under `/pms-api/v1`.
//!
//! Status codes and bodies follow the spec: 200 with an empty body for commands, 201 for a
//! created subscription, 204 for a deleted one; 400 `{"error": "..."}`; 401 with an empty body
//! for a missing or unknown `api-key`; 403 `{"error": "..."}` when the `practice-id` and
//! `practice-key` do not belong to a non-revoked consent for the caller's consumer; 404 with an
//! empty body.

//! The Healthengine PMS API v1.9.0 as the simulator serves it, under `/pms-api/v1`, with the
//! wire types of [`crate::wire`].
//!
//! Status codes and bodies follow the spec: 200 with an empty body for commands, 201 for a
//! created subscription, 204 for a deleted one; 400 `{"error": "..."}` naming the field; 401 with
//! an empty body (`UnauthorizedError`) for a missing or unknown `api-key`, an unknown
//! `practice-id` or a wrong `practice-key`; 403 `{"error": "..."}` when the practice has not
//! given the caller's consumer its consent or has revoked it; 404 with an empty body.
//!
//! Every request is checked as the real API would check it: a body where the spec requires one,
//! `Content-Type: application/json` on it, the schema (required fields, no unknown fields, enum
//! values, formats). A refusal answers 400 and is counted per practice and consumer
//! ([`crate::state::Market::refuse`], `GET /_market/stats`).

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, OriginalUri, Path, Query, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{
    App, delivery,
    state::{AuthError, FEATURES, SimError},
    wire::*,
};

/// An error in the spec's shapes.
#[derive(Debug)]
pub enum ApiError {
    /// 400 `{"error"}`.
    BadRequest(String),
    /// 401, empty body.
    Unauthorized,
    /// 403 `{"error"}`.
    Forbidden(String),
    /// 404, empty body.
    NotFound,
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Invalid(m) | SimError::Conflict(m) => Self::BadRequest(m),
            SimError::NotFound(_) => Self::NotFound,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(_) => Self::Unauthorized,
            AuthError::Forbidden(m) => Self::Forbidden(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": m })),
            )
                .into_response(),
            Self::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            Self::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": m })),
            )
                .into_response(),
            Self::NotFound => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The authenticated caller: a consumer acting for a practice that consented, and what it
/// asked (for the refusal count).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Consumer name.
    pub consumer: String,
    /// Practice id.
    pub practice_id: u64,
    /// `METHOD /path`.
    pub request: String,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Answer in the quirks mode's shapes.
    pub quirks: bool,
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (api_key, pid, pkey) = (
            header("api-key"),
            header("practice-id"),
            header("practice-key"),
        );
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map(|o| o.0.path().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let now = app.now();
        let mut m = app.lock();
        let consumer = m
            .consumer_by_key(&api_key)
            .map(|c| c.name.clone())
            .ok_or(ApiError::Unauthorized)?;
        let practice_id = m.check_consent(&consumer, &pid, &pkey)?;
        m.settle(now);
        Ok(Caller {
            consumer,
            practice_id,
            request: format!("{} {path}", parts.method),
            content_type,
            quirks: m.quirks,
        })
    }
}

impl Caller {
    /// Refuse the request as not conforming to the spec: count it, answer 400 naming the field.
    fn refuse(&self, app: &App, error: String) -> ApiError {
        app.lock()
            .refuse(self.practice_id, &self.consumer, &self.request, &error);
        ApiError::BadRequest(error)
    }

    /// The request body, which the spec requires: `Content-Type: application/json` and the
    /// schema of `T` (required fields, no unknown fields, enum values, formats).
    fn body<T: DeserializeOwned>(&self, app: &App, body: &Bytes) -> ApiResult<T> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(self.refuse(app, "body: required (a JSON body)".into()));
        }
        let json = self.content_type.as_deref().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(self.refuse(
                app,
                format!(
                    "Content-Type: expected application/json, found {:?}",
                    self.content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        crate::parse_json(body).map_err(|e| self.refuse(app, e))
    }

    /// A path parameter of `format: int64`.
    fn int(&self, app: &App, name: &str, s: &str) -> ApiResult<i64> {
        s.parse()
            .map_err(|_| self.refuse(app, format!("{name}: {s:?} is not an integer")))
    }

    /// The `page` query parameter (`format: int64`, from 1).
    fn page(&self, app: &App, page: Option<&str>) -> ApiResult<u64> {
        match page {
            None => Ok(1),
            Some(p) => {
                p.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    self.refuse(app, format!("page: {p:?} is not a positive integer"))
                })
            }
        }
    }
}

/// What quirks mode adds to every object it answers: a field no version of the spec has.
pub const QUIRK_FIELD: &str = "simUnknownField";

/// Add [`QUIRK_FIELD`] to every object in `v`, however deep.
pub fn add_unknown_fields(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for x in o.values_mut() {
                add_unknown_fields(x);
            }
            o.insert(
                QUIRK_FIELD.into(),
                Value::String("a field this client does not know".into()),
            );
        }
        Value::Array(a) => a.iter_mut().for_each(add_unknown_fields),
        _ => {}
    }
}

/// Put `null` for each of `keys` an object lacks.
fn fill_nulls(v: &mut Value, keys: &[&str]) {
    if let Value::Object(o) = v {
        for k in keys {
            o.entry(*k).or_insert(Value::Null);
        }
    }
}

/// Quirks for one booking: `null` for every property without a value, the patient's `dob` as
/// `YYYY-MM-DD`.
fn quirk_booking(b: &mut Value) {
    fill_nulls(b, &BOOKING_PROPERTIES);
    if let Some(p) = b.get_mut("patient") {
        fill_nulls(p, &PATIENT_PROPERTIES);
        if let Some(dob) = p.get("dob").and_then(Value::as_str)
            && let Ok(d) = jiff::civil::Date::strptime("%d-%m-%Y", dob)
        {
            p["dob"] = Value::String(d.strftime("%Y-%m-%d").to_string());
        }
    }
}

/// Serialize an answer; in quirks mode with `null` for the objects' optional `keys` lacking a
/// value and an unknown field on every object.
fn answer<T: Serialize>(quirks: bool, body: &T, keys: &[&str]) -> Response {
    let mut v = serde_json::to_value(body).unwrap_or(Value::Null);
    if quirks {
        match &mut v {
            Value::Array(items) => items.iter_mut().for_each(|i| fill_nulls(i, keys)),
            one => fill_nulls(one, keys),
        }
        add_unknown_fields(&mut v);
    }
    Json(v).into_response()
}

/// A page of a list; in quirks mode `page` is left out when everything fits on one page (the
/// schema does not require it), item optional `keys` are `null` and every object has an unknown
/// field.
fn answer_page<T: Serialize>(
    quirks: bool,
    page: Page<T>,
    keys: &[&str],
    each: fn(&mut Value),
) -> Response {
    let mut v = serde_json::to_value(&page).unwrap_or(Value::Null);
    if quirks {
        if let Some(Value::Array(items)) = v.get_mut("data") {
            for i in items.iter_mut() {
                fill_nulls(i, keys);
                each(i);
            }
        }
        if page.page.total_pages == 1
            && let Value::Object(o) = &mut v
        {
            o.remove("page");
        }
        add_unknown_fields(&mut v);
    }
    Json(v).into_response()
}

fn no_quirk(_: &mut Value) {}

/// The API router (to be nested under `/pms-api/v1`).
pub fn router() -> Router<App> {
    Router::new()
        .route("/requests", get(poll))
        .route("/requests/{kind}", get(request_list))
        .route("/bookings/{id}/confirmInsert", post(confirm_insert))
        .route("/bookings/{id}/rejectInsert", post(reject_insert))
        .route(
            "/bookings/{id}/confirmUpdate/{request_id}",
            post(confirm_update),
        )
        .route(
            "/bookings/{id}/rejectUpdate/{request_id}",
            post(reject_update),
        )
        .route("/bookings/{id}/cancel", post(cancel))
        .route("/bookings/{id}/didNotAttend", post(did_not_attend))
        .route("/bookings/{id}/noPmsAppointmentChange", post(no_change))
        .route("/availability/snapshot", post(snapshot))
        .route("/availability/snapshots", post(snapshots))
        .route("/config/pmsResources", get(resources))
        .route("/config/pmsResources/findById", get(resource_by_id))
        .route("/config/pmsResources/snapshot", post(put_resources))
        .route("/config/pmsAppointmentTypes", get(types))
        .route("/config/pmsAppointmentTypes/findById", get(type_by_id))
        .route("/config/pmsAppointmentTypes/snapshot", post(put_types))
        .route(
            "/config/livenessContract",
            get(get_liveness).post(put_liveness),
        )
        .route("/features", get(features))
        .route("/features/{id}", get(feature))
        .route("/features/{id}/enable", post(enable_feature))
        .route("/features/{id}/disable", post(disable_feature))
        .route("/subscription", get(subscriptions).post(subscribe))
        .route("/subscription/{id}", get(subscription).delete(unsubscribe))
        .route("/subscriptionErrorLog", get(error_log))
}

async fn poll(State(app): State<App>, c: Caller) -> ApiResult<Response> {
    let now = app.now();
    let types = app.lock().poll(c.practice_id, now)?;
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    if c.quirks {
        names.push("futureRequestType");
    }
    Ok(Json(names).into_response())
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

async fn request_list(
    State(app): State<App>,
    c: Caller,
    Path(kind): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = c.page(&app, q.page.as_deref())?;
    let m = app.lock();
    let pid = c.practice_id;
    let p = m.practice(pid)?;
    let reqs = |t: RequestType| p.requests.iter().filter(move |r| r.request_type == t);
    let body = match kind.as_str() {
        "bookings" => {
            let items: Vec<Booking> = m
                .bookings
                .values()
                .filter(|b| b.practice_id == pid && b.insert_pending)
                .map(|b| m.wire_booking(b))
                .collect();
            answer_page(c.quirks, m.page(items, page), &[], quirk_booking)
        }
        "bookingUpdates" => {
            let items: Vec<BookingUpdate> = m
                .pending_updates(pid)
                .map(|(b, u)| BookingUpdate {
                    request_id: u.request_id,
                    booking_id: b.id,
                    pms_appointment_ids: b.pms_appointment_ids.clone(),
                    pms_patient_id: b.pms_patient_id.clone(),
                    updated_at: u.created_at,
                    booking_status: u.requested_status,
                })
                .collect();
            answer_page(
                c.quirks,
                m.page(items, page),
                &BOOKING_UPDATE_OPTIONAL,
                no_quirk,
            )
        }
        "availability" => {
            let items: Vec<AvailabilityRequest> = reqs(RequestType::Availability)
                .filter_map(|r| {
                    Some(AvailabilityRequest {
                        day: r.day?,
                        pms_resource_id_deprecated: r.pms_resource_id.clone(),
                        pms_resource_id: r.pms_resource_id.clone(),
                    })
                })
                .collect();
            answer_page(
                c.quirks,
                m.page(items, page),
                &AVAILABILITY_REQUEST_OPTIONAL,
                no_quirk,
            )
        }
        "pmsAppointmentChanges" => {
            let items: Vec<PmsAppointmentChangesRequest> = reqs(RequestType::PmsAppointmentChanges)
                .filter_map(|r| {
                    let b = m.bookings.get(&r.booking_id?)?;
                    Some(PmsAppointmentChangesRequest {
                        booking_id: b.id,
                        pms_appointment_ids: b.pms_appointment_ids.clone(),
                        pms_patient_id: b.pms_patient_id.clone(),
                    })
                })
                .collect();
            answer_page(
                c.quirks,
                m.page(items, page),
                &APPOINTMENT_CHANGES_OPTIONAL,
                no_quirk,
            )
        }
        // The simulator raises no extra-feature requests: these lists are always empty.
        "availableDocuments" | "uploadDocuments" | "clientSnapshots" | "attachDocuments" => {
            answer_page(c.quirks, m.page(Vec::<Value>::new(), page), &[], no_quirk)
        }
        _ => return Err(ApiError::NotFound),
    };
    Ok(body)
}

async fn confirm_insert(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    let body: ConfirmBookingInsert = c.body(&app, &body)?;
    app.lock().confirm_insert(c.practice_id, id, body)?;
    Ok(StatusCode::OK)
}

async fn reject_insert(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    let body: ReasonBody = c.body(&app, &body)?;
    let now = app.now();
    let out = app
        .lock()
        .reject_insert(c.practice_id, id, body.reason, now)?;
    delivery::spawn(&app, out);
    Ok(StatusCode::OK)
}

async fn confirm_update(
    State(app): State<App>,
    c: Caller,
    Path((id, rid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    let rid = c.int(&app, "requestId", &rid)?;
    app.lock().confirm_update(c.practice_id, id, rid)?;
    Ok(StatusCode::OK)
}

async fn reject_update(
    State(app): State<App>,
    c: Caller,
    Path((id, rid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    let rid = c.int(&app, "requestId", &rid)?;
    let body: ReasonBody = c.body(&app, &body)?;
    app.lock()
        .reject_update(c.practice_id, id, rid, body.reason)?;
    Ok(StatusCode::OK)
}

async fn cancel(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    let body: ReasonBody = c.body(&app, &body)?;
    app.lock().cancel(c.practice_id, id, body.reason)?;
    Ok(StatusCode::OK)
}

async fn did_not_attend(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    let _: ReasonBody = c.body(&app, &body)?;
    app.lock().did_not_attend(c.practice_id, id)?;
    Ok(StatusCode::OK)
}

async fn no_change(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = c.int(&app, "bookingId", &id)?;
    app.lock().no_change(c.practice_id, id)?;
    Ok(StatusCode::OK)
}

async fn snapshot(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let s: AvailabilitySnapshot = c.body(&app, &body)?;
    let now = app.now();
    app.lock().put_availability(c.practice_id, &s, now)?;
    Ok(StatusCode::OK)
}

async fn snapshots(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<Response> {
    let items: Vec<Value> = c.body(&app, &body)?;
    if items.len() > MAX_SNAPSHOTS_PER_BATCH {
        return Err(c.refuse(
            &app,
            format!(
                "body: {} snapshots; at most {MAX_SNAPSHOTS_PER_BATCH} per call",
                items.len()
            ),
        ));
    }
    let now = app.now();
    let mut r = SnapshotsResult::default();
    let mut nonconforming = None;
    {
        let mut m = app.lock();
        for (i, item) in items.into_iter().enumerate() {
            let label = item
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| i.to_string());
            let parsed = crate::parse_json::<AvailabilitySnapshot>(item.to_string().as_bytes())
                .map_err(|e| {
                    let e = format!(
                        "[{i}]{}",
                        e.strip_prefix("body").unwrap_or(&format!(".{e}"))
                    );
                    nonconforming.get_or_insert(e.clone());
                    e
                });
            let outcome = parsed.and_then(|s| {
                m.put_availability(c.practice_id, &s, now)
                    .map_err(|e| e.to_string())
            });
            match outcome {
                Ok(true) => r.created.push(label),
                Ok(false) => r.existing.push(label),
                Err(error) => {
                    r.failed.push(label.clone());
                    r.errors.push(SnapshotError {
                        snapshot: label,
                        error,
                    });
                }
            }
        }
    }
    if let Some(e) = nonconforming {
        app.lock()
            .refuse(c.practice_id, &c.consumer, &c.request, &e);
    }
    Ok(answer(c.quirks, &r, &[]))
}

#[derive(Deserialize)]
struct IdQuery {
    id: Option<String>,
}

async fn resources(State(app): State<App>, c: Caller) -> ApiResult<Response> {
    let items = app.lock().practice(c.practice_id)?.resources.clone();
    Ok(answer(c.quirks, &items, &PMS_RESOURCE_OPTIONAL))
}

async fn resource_by_id(
    State(app): State<App>,
    c: Caller,
    Query(q): Query<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id.ok_or_else(|| c.refuse(&app, "id: required".into()))?;
    let items: Vec<PmsResource> = app
        .lock()
        .practice(c.practice_id)?
        .resources
        .iter()
        .filter(|r| r.pms_resource_id == id)
        .cloned()
        .collect();
    Ok(answer(c.quirks, &items, &PMS_RESOURCE_OPTIONAL))
}

async fn put_resources(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let items: Vec<PmsResource> = c.body(&app, &body)?;
    app.lock().put_resources(c.practice_id, items)?;
    Ok(StatusCode::OK)
}

async fn types(State(app): State<App>, c: Caller) -> ApiResult<Response> {
    let items = app
        .lock()
        .practice(c.practice_id)?
        .appointment_types
        .clone();
    Ok(answer(c.quirks, &items, &PMS_APPOINTMENT_TYPE_OPTIONAL))
}

async fn type_by_id(
    State(app): State<App>,
    c: Caller,
    Query(q): Query<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id.ok_or_else(|| c.refuse(&app, "id: required".into()))?;
    let items: Vec<PmsAppointmentType> = app
        .lock()
        .practice(c.practice_id)?
        .appointment_types
        .iter()
        .filter(|t| t.pms_appointment_type_id == id)
        .cloned()
        .collect();
    Ok(answer(c.quirks, &items, &PMS_APPOINTMENT_TYPE_OPTIONAL))
}

async fn put_types(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let items: Vec<PmsAppointmentType> = c.body(&app, &body)?;
    app.lock().put_types(c.practice_id, items)?;
    Ok(StatusCode::OK)
}

async fn get_liveness(State(app): State<App>, c: Caller) -> ApiResult<Response> {
    let contract = app
        .lock()
        .practice(c.practice_id)?
        .liveness
        .clone()
        .unwrap_or_default();
    Ok(answer(c.quirks, &contract, &["liveHours"]))
}

async fn put_liveness(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let contract: LivenessContract = c.body(&app, &body)?;
    if let Some(hours) = &contract.live_hours {
        for (day, ranges) in hours.named() {
            for (i, r) in ranges.iter().flatten().enumerate() {
                if r.start >= r.end {
                    return Err(ApiError::BadRequest(format!(
                        "liveHours.{day}[{i}]: start is not before end"
                    )));
                }
            }
        }
    }
    app.lock().practice_mut(c.practice_id)?.liveness = Some(contract);
    Ok(StatusCode::OK)
}

fn feature_of(id: &str, enabled: bool) -> Option<Feature> {
    FEATURES.iter().find(|f| f.0 == id).map(|f| Feature {
        id: f.0.to_owned(),
        name: f.1.to_owned(),
        description: f.2.to_owned(),
        enabled,
    })
}

async fn features(State(app): State<App>, c: Caller) -> ApiResult<Response> {
    let items: Vec<Feature> = {
        let m = app.lock();
        let p = m.practice(c.practice_id)?;
        FEATURES
            .iter()
            .filter_map(|f| feature_of(f.0, p.features.get(f.0).copied().unwrap_or(false)))
            .collect()
    };
    Ok(answer(c.quirks, &items, &[]))
}

async fn feature(State(app): State<App>, c: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let f = {
        let m = app.lock();
        let p = m.practice(c.practice_id)?;
        feature_of(&id, p.features.get(&id).copied().unwrap_or(false)).ok_or(ApiError::NotFound)?
    };
    Ok(answer(c.quirks, &f, &[]))
}

async fn set_feature(app: App, c: Caller, id: String, on: bool) -> ApiResult<StatusCode> {
    let mut m = app.lock();
    let p = m.practice_mut(c.practice_id)?;
    let f = p.features.get_mut(&id).ok_or(ApiError::NotFound)?;
    *f = on;
    Ok(StatusCode::OK)
}

async fn enable_feature(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    set_feature(app, c, id, true).await
}

async fn disable_feature(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    set_feature(app, c, id, false).await
}

fn owned<'a>(
    m: &'a crate::state::Market,
    c: &Caller,
    id: &str,
) -> Option<&'a crate::state::SubRec> {
    m.subscriptions
        .get(id)
        .filter(|r| r.practice_id == c.practice_id && r.consumer == c.consumer)
}

async fn subscriptions(State(app): State<App>, c: Caller) -> ApiResult<Response> {
    let items: Vec<Subscription> = app
        .lock()
        .subscriptions
        .values()
        .filter(|r| r.practice_id == c.practice_id && r.consumer == c.consumer)
        .map(|r| r.sub.clone())
        .collect();
    Ok(answer(c.quirks, &items, &SUBSCRIPTION_OPTIONAL))
}

async fn subscribe(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<Response> {
    let sub: SubscriptionIn = c.body(&app, &body)?;
    let now = app.now();
    let sub = app.lock().subscribe(c.practice_id, &c.consumer, sub, now)?;
    let mut r = answer(c.quirks, &sub, &SUBSCRIPTION_OPTIONAL);
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

async fn subscription(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let sub = owned(&app.lock(), &c, &id)
        .map(|r| r.sub.clone())
        .ok_or(ApiError::NotFound)?;
    Ok(answer(c.quirks, &sub, &SUBSCRIPTION_OPTIONAL))
}

async fn unsubscribe(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut m = app.lock();
    if owned(&m, &c, &id).is_none() {
        return Err(ApiError::NotFound);
    }
    m.subscriptions.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    subscription_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<String>,
}

async fn error_log(
    State(app): State<App>,
    c: Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let parse = |name: &str, v: &Option<String>| -> ApiResult<Option<jiff::Timestamp>> {
        v.as_deref()
            .map(|s| fmt::parse_utc(s).map_err(|e| c.refuse(&app, format!("{name}: {e}"))))
            .transpose()
    };
    let (from, to) = (parse("from", &q.from)?, parse("to", &q.to)?);
    let page = c.page(&app, q.page.as_deref())?;
    let m = app.lock();
    let mine =
        |r: &&crate::state::ErrorLogRec| r.practice_id == c.practice_id && r.consumer == c.consumer;
    if let Some(id) = &q.subscription_id
        && owned(&m, &c, id).is_none()
        && !m
            .error_log
            .iter()
            .filter(mine)
            .any(|r| &r.entry.subscription_id == id)
    {
        return Err(ApiError::NotFound);
    }
    let items: Vec<SubscriptionErrorLog> = m
        .error_log
        .iter()
        .filter(mine)
        .filter(|r| {
            q.subscription_id
                .as_ref()
                .is_none_or(|id| &r.entry.subscription_id == id)
        })
        .filter(|r| from.is_none_or(|f| r.at >= f))
        .filter(|r| to.is_none_or(|t| r.at <= t))
        .map(|r| r.entry.clone())
        .collect();
    Ok(answer_page(
        c.quirks,
        m.page(items, page),
        &["clientId"],
        no_quirk,
    ))
}
