//! The Healthengine PMS API v1.9.0 as the simulator serves it, under `/pms-api/v1`.
//!
//! Status codes and bodies follow the spec: 200 with an empty body for commands, 201 for a
//! created subscription, 204 for a deleted one; 400 `{"error": "..."}`; 401 with an empty body
//! for a missing or unknown `api-key`; 403 `{"error": "..."}` when the `practice-id` and
//! `practice-key` do not belong to a non-revoked consent for the caller's consumer; 404 with an
//! empty body.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequestParts, Path, Query, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use serde::{Deserialize, de::DeserializeOwned};
use slotbridge_market::{format, types::*};

use crate::{App, delivery, state::FEATURES, state::SimError};

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

/// The authenticated caller: a consumer acting for a practice that consented.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Consumer name.
    pub consumer: String,
    /// Practice id.
    pub practice_id: u64,
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
        let mut m = app.lock();
        let consumer = m
            .consumer_by_key(&api_key)
            .map(|c| c.name.clone())
            .ok_or(ApiError::Unauthorized)?;
        let practice_id = m
            .check_consent(&consumer, &pid, &pkey)
            .map_err(ApiError::Forbidden)?;
        m.settle(Timestamp::now());
        Ok(Caller {
            consumer,
            practice_id,
        })
    }
}

fn json<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    crate::parse_json(body).map_err(ApiError::BadRequest)
}

/// A body that may be empty (`{}` assumed).
fn json_or_default<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json(body)
    }
}

fn booking_id(s: &str) -> ApiResult<i64> {
    s.parse()
        .map_err(|_| ApiError::BadRequest(format!("bookingId: {s:?} is not an integer")))
}

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

async fn poll(State(app): State<App>, c: Caller) -> ApiResult<Json<Vec<RequestType>>> {
    Ok(Json(app.lock().poll(c.practice_id, Timestamp::now())?))
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

fn page_number(q: &PageQuery) -> ApiResult<u64> {
    match q.page.as_deref() {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("page: {p:?} is not a positive integer"))),
    }
}

async fn request_list(
    State(app): State<App>,
    c: Caller,
    Path(kind): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = page_number(&q)?;
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
            serde_json::to_value(m.page(items, page))
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
            serde_json::to_value(m.page(items, page))
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
            serde_json::to_value(m.page(items, page))
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
            serde_json::to_value(m.page(items, page))
        }
        // The simulator raises no extra-feature requests: these lists are always empty.
        "availableDocuments" => {
            serde_json::to_value(m.page(Vec::<AvailableDocumentsRequest>::new(), page))
        }
        "uploadDocuments" => {
            serde_json::to_value(m.page(Vec::<UploadDocumentsRequest>::new(), page))
        }
        "clientSnapshots" => {
            serde_json::to_value(m.page(Vec::<ClientSnapshotRequest>::new(), page))
        }
        "attachDocuments" => {
            serde_json::to_value(m.page(Vec::<AttachDocumentRequest>::new(), page))
        }
        _ => return Err(ApiError::NotFound),
    };
    let body = body.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(body).into_response())
}

async fn confirm_insert(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: ConfirmBookingInsert = json(&body)?;
    app.lock()
        .confirm_insert(c.practice_id, booking_id(&id)?, body)?;
    Ok(StatusCode::OK)
}

async fn reject_insert(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: ReasonBody = json_or_default(&body)?;
    let out = app.lock().reject_insert(
        c.practice_id,
        booking_id(&id)?,
        body.reason,
        Timestamp::now(),
    )?;
    delivery::spawn(&app, out);
    Ok(StatusCode::OK)
}

async fn confirm_update(
    State(app): State<App>,
    c: Caller,
    Path((id, rid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.lock()
        .confirm_update(c.practice_id, booking_id(&id)?, booking_id(&rid)?)?;
    Ok(StatusCode::OK)
}

async fn reject_update(
    State(app): State<App>,
    c: Caller,
    Path((id, rid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: ReasonBody = json_or_default(&body)?;
    app.lock().reject_update(
        c.practice_id,
        booking_id(&id)?,
        booking_id(&rid)?,
        body.reason,
    )?;
    Ok(StatusCode::OK)
}

async fn cancel(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let body: ReasonBody = json_or_default(&body)?;
    app.lock()
        .cancel(c.practice_id, booking_id(&id)?, body.reason)?;
    Ok(StatusCode::OK)
}

async fn did_not_attend(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let _: ReasonBody = json_or_default(&body)?;
    app.lock().did_not_attend(c.practice_id, booking_id(&id)?)?;
    Ok(StatusCode::OK)
}

async fn no_change(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.lock().no_change(c.practice_id, booking_id(&id)?)?;
    Ok(StatusCode::OK)
}

async fn snapshot(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let s: AvailabilitySnapshot = json(&body)?;
    app.lock()
        .put_availability(c.practice_id, &s, Timestamp::now())?;
    Ok(StatusCode::OK)
}

async fn snapshots(
    State(app): State<App>,
    c: Caller,
    body: Bytes,
) -> ApiResult<Json<SnapshotsResult>> {
    let items: Vec<serde_json::Value> = json(&body)?;
    if items.len() > slotbridge_market::MAX_SNAPSHOTS_PER_BATCH {
        return Err(ApiError::BadRequest(format!(
            "body: {} snapshots; at most 100 per call",
            items.len()
        )));
    }
    let now = Timestamp::now();
    let mut m = app.lock();
    let mut r = SnapshotsResult::default();
    for (i, item) in items.into_iter().enumerate() {
        let label = item
            .get("id")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| i.to_string());
        let outcome = serde_json::from_value::<AvailabilitySnapshot>(item)
            .map_err(|e| e.to_string())
            .and_then(|s| {
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
    Ok(Json(r))
}

#[derive(Deserialize)]
struct IdQuery {
    id: Option<String>,
}

async fn resources(State(app): State<App>, c: Caller) -> ApiResult<Json<Vec<PmsResource>>> {
    Ok(Json(app.lock().practice(c.practice_id)?.resources.clone()))
}

async fn resource_by_id(
    State(app): State<App>,
    c: Caller,
    Query(q): Query<IdQuery>,
) -> ApiResult<Json<Vec<PmsResource>>> {
    let id =
        q.id.ok_or_else(|| ApiError::BadRequest("id: required".into()))?;
    let m = app.lock();
    Ok(Json(
        m.practice(c.practice_id)?
            .resources
            .iter()
            .filter(|r| r.pms_resource_id == id)
            .cloned()
            .collect(),
    ))
}

async fn put_resources(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let items: Vec<PmsResource> = json(&body)?;
    app.lock().put_resources(c.practice_id, items)?;
    Ok(StatusCode::OK)
}

async fn types(State(app): State<App>, c: Caller) -> ApiResult<Json<Vec<PmsAppointmentType>>> {
    Ok(Json(
        app.lock()
            .practice(c.practice_id)?
            .appointment_types
            .clone(),
    ))
}

async fn type_by_id(
    State(app): State<App>,
    c: Caller,
    Query(q): Query<IdQuery>,
) -> ApiResult<Json<Vec<PmsAppointmentType>>> {
    let id =
        q.id.ok_or_else(|| ApiError::BadRequest("id: required".into()))?;
    let m = app.lock();
    Ok(Json(
        m.practice(c.practice_id)?
            .appointment_types
            .iter()
            .filter(|t| t.pms_appointment_type_id == id)
            .cloned()
            .collect(),
    ))
}

async fn put_types(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let items: Vec<PmsAppointmentType> = json(&body)?;
    app.lock().put_types(c.practice_id, items)?;
    Ok(StatusCode::OK)
}

async fn get_liveness(State(app): State<App>, c: Caller) -> ApiResult<Json<LivenessContract>> {
    Ok(Json(
        app.lock()
            .practice(c.practice_id)?
            .liveness
            .clone()
            .unwrap_or_default(),
    ))
}

async fn put_liveness(State(app): State<App>, c: Caller, body: Bytes) -> ApiResult<StatusCode> {
    let contract: LivenessContract = json(&body)?;
    for (day, ranges) in [
        ("monday", &contract.live_hours.monday),
        ("tuesday", &contract.live_hours.tuesday),
        ("wednesday", &contract.live_hours.wednesday),
        ("thursday", &contract.live_hours.thursday),
        ("friday", &contract.live_hours.friday),
        ("saturday", &contract.live_hours.saturday),
        ("sunday", &contract.live_hours.sunday),
        ("publicHolidays", &contract.live_hours.public_holidays),
    ] {
        for (i, r) in ranges.iter().flatten().enumerate() {
            if r.start >= r.end {
                return Err(ApiError::BadRequest(format!(
                    "liveHours.{day}[{i}]: start is not before end"
                )));
            }
        }
    }
    app.lock().practice_mut(c.practice_id)?.liveness = Some(contract);
    Ok(StatusCode::OK)
}

fn feature_of(id: &str, enabled: bool) -> Option<Feature> {
    FEATURES.iter().find(|f| f.0 == id).map(|f| Feature {
        id: f.0.to_owned(),
        name: Some(f.1.to_owned()),
        description: Some(f.2.to_owned()),
        enabled: Some(enabled),
    })
}

async fn features(State(app): State<App>, c: Caller) -> ApiResult<Json<Vec<Feature>>> {
    let m = app.lock();
    let p = m.practice(c.practice_id)?;
    Ok(Json(
        FEATURES
            .iter()
            .filter_map(|f| feature_of(f.0, p.features.get(f.0).copied().unwrap_or(false)))
            .collect(),
    ))
}

async fn feature(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Feature>> {
    let m = app.lock();
    let p = m.practice(c.practice_id)?;
    feature_of(&id, p.features.get(&id).copied().unwrap_or(false))
        .map(Json)
        .ok_or(ApiError::NotFound)
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

async fn subscriptions(State(app): State<App>, c: Caller) -> ApiResult<Json<Vec<Subscription>>> {
    let m = app.lock();
    Ok(Json(
        m.subscriptions
            .values()
            .filter(|r| r.practice_id == c.practice_id && r.consumer == c.consumer)
            .map(|r| r.sub.clone())
            .collect(),
    ))
}

async fn subscribe(
    State(app): State<App>,
    c: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let sub: Subscription = json(&body)?;
    let sub = app
        .lock()
        .subscribe(c.practice_id, &c.consumer, sub, Timestamp::now())?;
    Ok((StatusCode::CREATED, Json(sub)))
}

async fn subscription(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Subscription>> {
    let m = app.lock();
    m.subscriptions
        .get(&id)
        .filter(|r| r.practice_id == c.practice_id && r.consumer == c.consumer)
        .map(|r| Json(r.sub.clone()))
        .ok_or(ApiError::NotFound)
}

async fn unsubscribe(
    State(app): State<App>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut m = app.lock();
    let owned = m
        .subscriptions
        .get(&id)
        .is_some_and(|r| r.practice_id == c.practice_id && r.consumer == c.consumer);
    if !owned {
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
) -> ApiResult<Json<Page<SubscriptionErrorLog>>> {
    let parse = |name: &str, v: &Option<String>| -> ApiResult<Option<Timestamp>> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| format::parse_utc(s).map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))))
            .transpose()
    };
    let (from, to) = (parse("from", &q.from)?, parse("to", &q.to)?);
    let page = page_number(&PageQuery { page: q.page })?;
    let m = app.lock();
    if let Some(id) = &q.subscription_id
        && !m
            .subscriptions
            .get(id)
            .is_some_and(|r| r.practice_id == c.practice_id && r.consumer == c.consumer)
        && !m.error_log.iter().any(|(p, cons, e)| {
            *p == c.practice_id && *cons == c.consumer && &e.subscription_id == id
        })
    {
        return Err(ApiError::NotFound);
    }
    let items: Vec<SubscriptionErrorLog> = m
        .error_log
        .iter()
        .filter(|(p, cons, _)| *p == c.practice_id && *cons == c.consumer)
        .map(|(_, _, e)| e)
        .filter(|e| {
            q.subscription_id
                .as_ref()
                .is_none_or(|id| &e.subscription_id == id)
        })
        .filter(|e| from.is_none_or(|f| e.timestamp.is_some_and(|t| t >= f)))
        .filter(|e| to.is_none_or(|f| e.timestamp.is_some_and(|t| t <= f)))
        .cloned()
        .collect();
    Ok(Json(m.page(items, page)))
}
