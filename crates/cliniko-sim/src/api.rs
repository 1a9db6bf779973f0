//! The HTTP side: the gate every API request passes (shard, `User-Agent`, `Accept`, HTTP
//! Basic key, rate limit), the API's routes under `/v1`, and the control routes under `/_sim`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value as Json, json};
use tower::ServiceBuilder;

use crate::availability;
use crate::control::{self, ControlError, DeskAction, PracticeSpec, is_shard};
use crate::model::{
    Account, Appointment, AvailabilityBlock, CANCELLATION_REASONS, PhoneNumber, UnavailableBlock,
};
use crate::query::{self, ListQuery, QueryError, Record};
use crate::wire::{self, Urls};
use crate::{ClinikoSim, generate};

/// What the gate learnt about a request, for the handlers.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    account: u64,
    urls: Urls,
    /// The path after `/v1`.
    path: String,
    query: Vec<(String, String)>,
}

pub(crate) fn router(sim: ClinikoSim) -> Router {
    let api = Router::new()
        .route("/v1/businesses", get(businesses))
        .route("/v1/businesses/{id}", get(business))
        .route(
            "/v1/businesses/{id}/practitioners",
            get(business_practitioners),
        )
        .route(
            "/v1/businesses/{id}/practitioners/inactive",
            get(business_practitioners_inactive),
        )
        .route(
            "/v1/businesses/{id}/daily_availabilities",
            get(business_daily_availabilities),
        )
        .route(
            "/v1/businesses/{b}/practitioners/{p}/appointment_types/{t}/available_times",
            get(available_times),
        )
        .route(
            "/v1/businesses/{b}/practitioners/{p}/appointment_types/{t}/next_available_time",
            get(next_available_time),
        )
        .route("/v1/practitioners", get(practitioners))
        .route("/v1/practitioners/inactive", get(practitioners_inactive))
        .route("/v1/practitioners/{id}", get(practitioner))
        .route(
            "/v1/practitioners/{id}/appointment_types",
            get(practitioner_appointment_types),
        )
        .route(
            "/v1/practitioners/{id}/daily_availabilities",
            get(practitioner_daily_availabilities),
        )
        .route(
            "/v1/appointment_types",
            get(appointment_types).post(create_appointment_type),
        )
        .route(
            "/v1/appointment_types/archived",
            get(appointment_types_archived),
        )
        .route(
            "/v1/appointment_types/{id}",
            get(appointment_type)
                .put(update_appointment_type)
                .delete(delete_appointment_type),
        )
        .route(
            "/v1/appointment_types/{id}/practitioners",
            get(appointment_type_practitioners),
        )
        .route("/v1/daily_availabilities", get(daily_availabilities))
        .route("/v1/daily_availabilities/{id}", get(daily_availability))
        .route(
            "/v1/availability_blocks",
            get(availability_blocks).post(create_availability_block),
        )
        .route("/v1/availability_blocks/{id}", get(availability_block))
        .route(
            "/v1/unavailable_blocks",
            get(unavailable_blocks).post(create_unavailable_block),
        )
        .route(
            "/v1/unavailable_blocks/deleted",
            get(unavailable_blocks_deleted),
        )
        .route(
            "/v1/unavailable_blocks/{id}",
            get(unavailable_block)
                .put(update_unavailable_block)
                .delete(delete_unavailable_block),
        )
        .route(
            "/v1/unavailable_blocks/{id}/conflicts",
            get(unavailable_block_conflicts),
        )
        .route("/v1/patients", get(patients).post(create_patient))
        .route("/v1/patients/deleted", get(patients_deleted))
        .route("/v1/patients/archived", get(patients_archived))
        .route("/v1/patients/{id}", get(patient).put(update_patient))
        .route("/v1/patients/{id}/archive", post(archive_patient))
        .route("/v1/patients/{id}/unarchive", post(unarchive_patient))
        .route(
            "/v1/individual_appointments",
            get(appointments).post(create_appointment),
        )
        .route(
            "/v1/individual_appointments/deleted",
            get(appointments_deleted),
        )
        .route(
            "/v1/individual_appointments/cancelled",
            get(appointments_cancelled),
        )
        .route(
            "/v1/individual_appointments/{id}",
            get(appointment)
                .put(update_appointment)
                .delete(delete_appointment),
        )
        .route(
            "/v1/individual_appointments/{id}/conflicts",
            get(appointment_conflicts),
        )
        .route(
            "/v1/individual_appointments/{id}/cancel",
            patch(cancel_appointment),
        )
        .route("/v1/bookings", get(bookings))
        .route("/v1/bookings/{id}", get(booking))
        .route("/v1/settings", get(settings))
        .route("/v1/settings/public", get(settings_public))
        .route("/v1/user", get(current_user))
        .route("/v1/users", get(users))
        .route("/v1/users/{id}", get(user))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .with_state(sim.clone());
    let gated = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(sim.clone(), gate))
        .service(api);
    Router::new()
        .route("/_sim/practices", post(sim_seed))
        .route("/_sim/practices/generate", post(sim_generate))
        .route("/_sim/practices/{account}/desk", post(sim_desk))
        .route("/_sim/stats", get(sim_stats))
        .with_state(sim)
        .fallback_service(gated)
}

// ---- errors -----------------------------------------------------------------------------

/// An error answer of the API: JSON with a `message` (and `errors` for 422).
#[derive(Debug)]
pub(crate) enum ApiError {
    NotFound,
    BadRequest(String),
    Unprocessable(Vec<(String, String)>),
    UnsupportedMediaType,
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({ "message": text }).to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => message(StatusCode::NOT_FOUND, "Not found"),
            ApiError::BadRequest(m) => message(StatusCode::BAD_REQUEST, &m),
            ApiError::UnsupportedMediaType => message(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
            ApiError::Unprocessable(errs) => {
                let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (field, msg) in errs {
                    errors.entry(field).or_default().push(msg);
                }
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                    json!({ "message": "Validation failed", "errors": errors }).to_string(),
                )
                    .into_response()
            }
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Json) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

// ---- the gate ---------------------------------------------------------------------------

/// Whether a `User-Agent` is in the documented form `APP_VENDOR_NAME (APP_VENDOR_EMAIL)` with
/// a plausible address.
pub(crate) fn user_agent_ok(ua: &str) -> bool {
    let ua = ua.trim();
    let Some(inner) = ua.strip_suffix(')') else {
        return false;
    };
    let Some(open) = inner.rfind('(') else {
        return false;
    };
    let (name, email) = (inner[..open].trim(), inner[open + 1..].trim());
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !name.is_empty()
        && !local.is_empty()
        && !email.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
}

fn unauthorized() -> Response {
    let mut r = message(StatusCode::UNAUTHORIZED, "HTTP Basic: Access denied.");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Cliniko API\""),
    );
    r
}

/// The API key in an `Authorization: Basic` header (the user name; the password is ignored).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let user = s.split_once(':').map_or(s.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_owned())
}

async fn gate(State(sim): State<ClinikoSim>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let (shard, prefix, rest) = match split_shard(&path, &sim.inner.default_shard) {
        Some(x) => x,
        None => return ApiError::NotFound.into_response(),
    };
    let headers = req.headers();
    if !headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(user_agent_ok)
    {
        return message(
            StatusCode::FORBIDDEN,
            "A User-Agent naming your application and a contact email is required: \
             APP_VENDOR_NAME (APP_VENDOR_EMAIL)",
        );
    }
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
        && !accept.split(',').any(|a| {
            let a = a.split(';').next().unwrap_or("").trim();
            a == "application/json" || a == "application/*" || a == "*/*"
        })
    {
        return message(
            StatusCode::NOT_ACCEPTABLE,
            "Only application/json is served",
        );
    }
    let Some(user) = basic_user(headers) else {
        return unauthorized();
    };
    let (key, suffix) = match user.rsplit_once('-') {
        Some((k, s)) if is_shard(s) => (k.to_owned(), Some(s.to_owned())),
        _ => (user.clone(), None),
    };
    let now = sim.now();
    let found = {
        let world = sim.world();
        world.keys.get(&key).copied().and_then(|(acct, usr)| {
            let a = world.accounts.get(&acct)?;
            let suffix_ok = suffix.as_deref().is_none_or(|s| s == a.shard);
            (a.shard == shard && suffix_ok).then_some((acct, usr))
        })
    };
    let Some((account, user_id)) = found else {
        return unauthorized();
    };
    let verdict = sim.inner.rate_limit.map(|limit| {
        sim.inner
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(account, user_id, now, limit)
    });
    sim.count_request(account, verdict.is_none_or(|v| v.allowed));
    if let Some(v) = verdict
        && !v.allowed
    {
        let mut r = message(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        rate_headers(r.headers_mut(), v);
        let wait = (v.reset - now.as_second()).max(1);
        if let Ok(h) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, h);
        }
        return r;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let new_uri = match req.uri().query() {
        Some(q) => format!("/v1{rest}?{q}"),
        None => format!("/v1{rest}"),
    };
    if let Ok(u) = new_uri.parse::<Uri>() {
        *req.uri_mut() = u;
    }
    req.extensions_mut().insert(Ctx {
        account,
        urls: Urls {
            base: format!("http://{host}{prefix}/v1"),
        },
        path: rest.to_owned(),
        query,
    });
    let mut resp = next.run(req).await;
    if let Some(v) = verdict {
        rate_headers(resp.headers_mut(), v);
    }
    resp
}

/// `/v1/x` is the default shard's; `/{shard}/v1/x` that shard's. Returns the shard, the
/// prefix before `/v1`, and the path after it.
fn split_shard<'a>(path: &'a str, default: &str) -> Option<(String, String, &'a str)> {
    let after_v1 = |p: &'a str| -> Option<&'a str> {
        let rest = p.strip_prefix("/v1")?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    };
    if let Some(rest) = after_v1(path) {
        return Some((default.to_owned(), String::new(), rest));
    }
    let trimmed = path.strip_prefix('/')?;
    let (shard, _) = trimmed.split_once('/')?;
    if !is_shard(shard) {
        return None;
    }
    let rest = after_v1(&path[shard.len() + 1..])?;
    Some((shard.to_ascii_lowercase(), format!("/{shard}"), rest))
}

fn rate_headers(h: &mut HeaderMap, v: crate::rate::Verdict) {
    for (name, value) in [
        ("x-ratelimit-limit", v.limit.to_string()),
        ("x-ratelimit-remaining", v.remaining.to_string()),
        ("x-ratelimit-reset", v.reset.to_string()),
    ] {
        if let Ok(val) = HeaderValue::from_str(&value) {
            h.insert(name, val);
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

fn read<R>(sim: &ClinikoSim, ctx: &Ctx, f: impl FnOnce(&Account) -> R) -> R {
    let world = sim.world();
    let acct = world
        .accounts
        .get(&ctx.account)
        .expect("the gate checked the account");
    f(acct)
}

fn write<R>(sim: &ClinikoSim, ctx: &Ctx, f: impl FnOnce(&mut Account) -> R) -> R {
    let mut world = sim.world();
    let acct = world
        .accounts
        .get_mut(&ctx.account)
        .expect("the gate checked the account");
    f(acct)
}

fn id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound)
}

/// The page links of a list: `self`, and `next` / `previous` when there are such pages.
fn links(ctx: &Ctx, page: u64, per_page: u64, total: u64) -> Json {
    let url = |p: u64| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("page", &p.to_string());
        for (k, v) in ctx.query.iter().filter(|(k, _)| k != "page") {
            s.append_pair(k, v);
        }
        format!("{}?{}", ctx.urls.url(&ctx.path), s.finish())
    };
    let mut l = Map::new();
    l.insert("self".into(), Json::String(url(page)));
    if page.saturating_mul(per_page) < total {
        l.insert("next".into(), Json::String(url(page + 1)));
    }
    if page > 1 {
        l.insert("previous".into(), Json::String(url(page - 1)));
    }
    Json::Object(l)
}

fn list<'a, T: Record + 'a>(
    ctx: &Ctx,
    key: &str,
    fields: &[(&str, query::Kind)],
    items: impl IntoIterator<Item = &'a T>,
    render: impl Fn(&T) -> Json,
) -> ApiResult {
    let q = ListQuery::parse(&ctx.query, fields)?;
    let (rows, total) = q.apply(items);
    let rows: Vec<Json> = rows.into_iter().map(render).collect();
    let mut body = Map::new();
    body.insert(key.to_owned(), Json::Array(rows));
    body.insert("total_entries".into(), json!(total));
    body.insert("links".into(), links(ctx, q.page, q.per_page, total));
    ok(Json::Object(body))
}

/// A JSON object body: `415` unless the content type is JSON, `400` unless it parses.
fn body(headers: &HeaderMap, bytes: &Bytes) -> Result<Map<String, Json>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::BadRequest(
            "The request body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!(
            "The request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// Field readers collecting 422 errors.
struct Fields<'a> {
    m: &'a Map<String, Json>,
    errors: Vec<(String, String)>,
}

impl<'a> Fields<'a> {
    fn new(m: &'a Map<String, Json>) -> Self {
        Fields {
            m,
            errors: Vec::new(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.m.contains_key(name)
    }

    fn is_null(&self, name: &str) -> bool {
        matches!(self.m.get(name), Some(Json::Null))
    }

    fn fail(&mut self, name: &str, msg: &str) {
        self.errors.push((name.to_owned(), msg.to_owned()));
    }

    /// An id given as a string of digits or a number.
    fn id(&mut self, name: &str, required: bool) -> Option<u64> {
        match self.m.get(name) {
            None | Some(Json::Null) => {
                if required {
                    self.fail(name, "can't be blank");
                }
                None
            }
            Some(Json::String(s)) if s.trim().is_empty() && required => {
                self.fail(name, "can't be blank");
                None
            }
            Some(Json::String(s)) => s.trim().parse().ok().or_else(|| {
                self.fail(name, "is invalid");
                None
            }),
            Some(Json::Number(n)) => n.as_u64().or_else(|| {
                self.fail(name, "is invalid");
                None
            }),
            Some(_) => {
                self.fail(name, "is invalid");
                None
            }
        }
    }

    /// A UTC time (`2016-07-21T03:45:00Z`).
    fn time(&mut self, name: &str, required: bool) -> Option<Timestamp> {
        match self.m.get(name) {
            None | Some(Json::Null) => {
                if required {
                    self.fail(name, "can't be blank");
                }
                None
            }
            Some(Json::String(s)) if s.ends_with('Z') => s.parse().ok().or_else(|| {
                self.fail(name, "is not a valid UTC time (e.g. 2016-07-21T03:45:00Z)");
                None
            }),
            Some(_) => {
                self.fail(name, "is not a valid UTC time (e.g. 2016-07-21T03:45:00Z)");
                None
            }
        }
    }

    fn text(&mut self, name: &str, required: bool) -> Option<String> {
        match self.m.get(name) {
            None | Some(Json::Null) => {
                if required {
                    self.fail(name, "can't be blank");
                }
                None
            }
            Some(Json::String(s)) => {
                if required && s.trim().is_empty() {
                    self.fail(name, "can't be blank");
                    return None;
                }
                Some(s.clone())
            }
            Some(_) => {
                self.fail(name, "must be a string");
                None
            }
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(self.errors))
        }
    }
}

fn created(location: String, v: Json) -> ApiResult {
    let mut r = (StatusCode::CREATED, axum::Json(v)).into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    Ok(r)
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- businesses, practitioners, types, availabilities -------------------------------------

async fn businesses(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    read(&sim, &ctx, |a| {
        list(
            &ctx,
            "businesses",
            wire::BUSINESS_FIELDS,
            &a.businesses,
            |b| wire::business(&ctx.urls, b),
        )
    })
}

async fn business(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| {
        let b = a.business(bid).ok_or(ApiError::NotFound)?;
        ok(wire::business(&ctx.urls, b))
    })
}

fn practitioner_list(
    sim: &ClinikoSim,
    ctx: &Ctx,
    active: bool,
    keep: impl Fn(&Account, &crate::model::Practitioner) -> bool,
) -> ApiResult {
    read(sim, ctx, |a| {
        let items = a
            .practitioners
            .iter()
            .filter(|p| p.active == active && keep(a, p));
        list(
            ctx,
            "practitioners",
            wire::PRACTITIONER_FIELDS,
            items,
            |p| wire::practitioner(&ctx.urls, p),
        )
    })
}

async fn practitioners(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    practitioner_list(&sim, &ctx, true, |_, _| true)
}

async fn practitioners_inactive(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    practitioner_list(&sim, &ctx, false, |_, _| true)
}

async fn business_practitioners(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| a.business(bid).map(|_| ())).ok_or(ApiError::NotFound)?;
    practitioner_list(&sim, &ctx, true, |_, p| p.business_ids.contains(&bid))
}

async fn business_practitioners_inactive(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| a.business(bid).map(|_| ())).ok_or(ApiError::NotFound)?;
    practitioner_list(&sim, &ctx, false, |_, p| p.business_ids.contains(&bid))
}

async fn appointment_type_practitioners(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(tid): Path<String>,
) -> ApiResult {
    let tid = id(&tid)?;
    read(&sim, &ctx, |a| a.appointment_type(tid).map(|_| ())).ok_or(ApiError::NotFound)?;
    practitioner_list(&sim, &ctx, true, |_, p| {
        p.appointment_type_ids.contains(&tid)
    })
}

async fn practitioner(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
) -> ApiResult {
    let pid = id(&pid)?;
    read(&sim, &ctx, |a| {
        let p = a.practitioner(pid).ok_or(ApiError::NotFound)?;
        ok(wire::practitioner(&ctx.urls, p))
    })
}

async fn appointment_types(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a
            .appointment_types
            .iter()
            .filter(|t| t.archived_at.is_none());
        list(
            &ctx,
            "appointment_types",
            wire::APPOINTMENT_TYPE_FIELDS,
            items,
            |t| wire::appointment_type(&ctx.urls, t),
        )
    })
}

async fn appointment_types_archived(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a
            .appointment_types
            .iter()
            .filter(|t| t.archived_at.is_some());
        list(
            &ctx,
            "appointment_types",
            wire::APPOINTMENT_TYPE_FIELDS,
            items,
            |t| wire::appointment_type(&ctx.urls, t),
        )
    })
}

async fn practitioner_appointment_types(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
) -> ApiResult {
    let pid = id(&pid)?;
    read(&sim, &ctx, |a| {
        let p = a.practitioner(pid).ok_or(ApiError::NotFound)?;
        let items = a
            .appointment_types
            .iter()
            .filter(|t| t.archived_at.is_none() && p.appointment_type_ids.contains(&t.id));
        list(
            &ctx,
            "appointment_types",
            wire::APPOINTMENT_TYPE_FIELDS,
            items,
            |t| wire::appointment_type(&ctx.urls, t),
        )
    })
}

async fn appointment_type(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(tid): Path<String>,
) -> ApiResult {
    let tid = id(&tid)?;
    read(&sim, &ctx, |a| {
        let t = a.appointment_type(tid).ok_or(ApiError::NotFound)?;
        ok(wire::appointment_type(&ctx.urls, t))
    })
}

/// The writable fields of an appointment type, checked.
fn type_fields(f: &mut Fields<'_>, t: &mut crate::model::AppointmentType) {
    let m = f.m;
    if let Some(n) = f.text("name", false) {
        if n.trim().is_empty() {
            f.fail("name", "can't be blank");
        }
        t.name = n;
    }
    if f.has("category") {
        t.category = f.text("category", false);
    }
    if f.has("description") {
        t.description = f.text("description", false);
    }
    if let Some(c) = f.text("color", false) {
        let ok =
            c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            f.fail("color", "must be a colour like #FF0000");
        }
        t.color = c;
    }
    for (name, slot) in [
        ("duration_in_minutes", &mut t.duration_in_minutes),
        ("max_attendees", &mut t.max_attendees),
    ] {
        if let Some(v) = m.get(name) {
            match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => *slot = n,
                _ => f.fail(name, "must be a whole number greater than 0"),
            }
        }
    }
    if let Some(v) = m.get("show_in_online_bookings") {
        match v.as_bool() {
            Some(b) => t.show_in_online_bookings = b,
            None => f.fail("show_in_online_bookings", "must be true or false"),
        }
    }
}

async fn create_appointment_type(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let mut f = Fields::new(&m);
        let _ = f.text("name", true);
        if !f.has("duration_in_minutes") {
            f.fail("duration_in_minutes", "can't be blank");
        }
        let mut t = crate::model::AppointmentType {
            id: 0,
            name: String::new(),
            category: None,
            color: "#3AA0FF".to_owned(),
            description: None,
            duration_in_minutes: 1,
            max_attendees: 1,
            show_in_online_bookings: false,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        type_fields(&mut f, &mut t);
        f.finish()?;
        t.id = a.big_id();
        let id = t.id;
        let v = wire::appointment_type(&ctx.urls, &t);
        a.appointment_types.push(t);
        created(ctx.urls.url(&format!("/appointment_types/{id}")), v)
    })
}

async fn update_appointment_type(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(tid): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let tid = id(&tid)?;
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let idx = a
            .appointment_types
            .iter()
            .position(|t| t.id == tid && t.archived_at.is_none())
            .ok_or(ApiError::NotFound)?;
        let mut t = a.appointment_types[idx].clone();
        let mut f = Fields::new(&m);
        type_fields(&mut f, &mut t);
        f.finish()?;
        t.updated_at = now;
        let v = wire::appointment_type(&ctx.urls, &t);
        a.appointment_types[idx] = t;
        ok(v)
    })
}

/// Deleting a type archives it: it moves to `/appointment_types/archived`.
async fn delete_appointment_type(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(tid): Path<String>,
) -> ApiResult {
    let tid = id(&tid)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let t = a
            .appointment_types
            .iter_mut()
            .find(|t| t.id == tid && t.archived_at.is_none())
            .ok_or(ApiError::NotFound)?;
        t.archived_at = Some(now);
        t.updated_at = now;
        no_content()
    })
}

fn daily_list(
    sim: &ClinikoSim,
    ctx: &Ctx,
    keep: impl Fn(&crate::model::DailyAvailability) -> bool,
) -> ApiResult {
    read(sim, ctx, |a| {
        let items = a.daily_availabilities.iter().filter(|d| keep(d));
        list(
            ctx,
            "daily_availabilities",
            wire::DAILY_AVAILABILITY_FIELDS,
            items,
            |d| wire::daily_availability(&ctx.urls, d),
        )
    })
}

async fn daily_availabilities(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    daily_list(&sim, &ctx, |_| true)
}

async fn business_daily_availabilities(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| a.business(bid).map(|_| ())).ok_or(ApiError::NotFound)?;
    daily_list(&sim, &ctx, |d| d.business_id == bid)
}

async fn practitioner_daily_availabilities(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
) -> ApiResult {
    let pid = id(&pid)?;
    read(&sim, &ctx, |a| a.practitioner(pid).map(|_| ())).ok_or(ApiError::NotFound)?;
    daily_list(&sim, &ctx, |d| d.practitioner_id == pid)
}

async fn daily_availability(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(did): Path<String>,
) -> ApiResult {
    let did = id(&did)?;
    read(&sim, &ctx, |a| {
        let d = a
            .daily_availabilities
            .iter()
            .find(|d| d.id == did)
            .ok_or(ApiError::NotFound)?;
        ok(wire::daily_availability(&ctx.urls, d))
    })
}

// ---- blocks ----------------------------------------------------------------------------

async fn availability_blocks(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        list(
            &ctx,
            "availability_blocks",
            wire::AVAILABILITY_BLOCK_FIELDS,
            &a.availability_blocks,
            |b| wire::availability_block(&ctx.urls, b),
        )
    })
}

async fn availability_block(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| {
        let b = a
            .availability_blocks
            .iter()
            .find(|b| b.id == bid)
            .ok_or(ApiError::NotFound)?;
        ok(wire::availability_block(&ctx.urls, b))
    })
}

/// Check that the practitioner and the business named exist.
fn check_refs(a: &Account, f: &mut Fields<'_>, practitioner: Option<u64>, business: Option<u64>) {
    if practitioner.is_some_and(|p| a.practitioner(p).is_none()) {
        f.fail("practitioner_id", "does not exist");
    }
    if business.is_some_and(|b| a.business(b).is_none()) {
        f.fail("business_id", "does not exist");
    }
}

async fn create_availability_block(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let mut f = Fields::new(&m);
        let starts_at = f.time("starts_at", true);
        let ends_at = f.time("ends_at", true);
        let practitioner_id = f.id("practitioner_id", true);
        let business_id = f.id("business_id", true);
        check_refs(a, &mut f, practitioner_id, business_id);
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && e <= s
        {
            f.fail("ends_at", "must be after starts_at");
        }
        f.finish()?;
        let id = a.small_id();
        let b = AvailabilityBlock {
            id,
            business_id: business_id.unwrap_or_default(),
            practitioner_id: practitioner_id.unwrap_or_default(),
            starts_at: starts_at.unwrap_or(now),
            ends_at: ends_at.unwrap_or(now),
            created_at: now,
            updated_at: now,
        };
        let v = wire::availability_block(&ctx.urls, &b);
        a.availability_blocks.push(b);
        created(ctx.urls.url(&format!("/availability_blocks/{id}")), v)
    })
}

async fn unavailable_blocks(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a
            .unavailable_blocks
            .iter()
            .filter(|b| b.deleted_at.is_none());
        list(
            &ctx,
            "unavailable_blocks",
            wire::UNAVAILABLE_BLOCK_FIELDS,
            items,
            |b| wire::unavailable_block(&ctx.urls, b, &format!("/unavailable_blocks/{}", b.id)),
        )
    })
}

async fn unavailable_blocks_deleted(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a
            .unavailable_blocks
            .iter()
            .filter(|b| b.deleted_at.is_some());
        list(
            &ctx,
            "unavailable_blocks",
            wire::UNAVAILABLE_BLOCK_FIELDS,
            items,
            |b| wire::unavailable_block(&ctx.urls, b, &format!("/unavailable_blocks/{}", b.id)),
        )
    })
}

async fn unavailable_block(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| {
        let b = a
            .unavailable_blocks
            .iter()
            .find(|b| b.id == bid)
            .ok_or(ApiError::NotFound)?;
        ok(wire::unavailable_block(
            &ctx.urls,
            b,
            &format!("/unavailable_blocks/{bid}"),
        ))
    })
}

async fn unavailable_block_conflicts(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| {
        let b = a
            .unavailable_blocks
            .iter()
            .find(|b| b.id == bid)
            .ok_or(ApiError::NotFound)?;
        ok(json!({ "conflicts": { "exist": a.block_conflicts(b) } }))
    })
}

async fn create_unavailable_block(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let mut f = Fields::new(&m);
        let starts_at = f.time("starts_at", true);
        let ends_at = f.time("ends_at", false);
        let practitioner_id = f.id("practitioner_id", true);
        let business_id = f.id("business_id", true);
        let notes = f.text("notes", false);
        check_refs(a, &mut f, practitioner_id, business_id);
        // Without `ends_at` the block lasts one calendar timeslot.
        let slot = SignedDuration::from_mins(i64::from(a.timeslot_size_in_minutes));
        let ends_at = ends_at.or_else(|| starts_at.and_then(|s| s.checked_add(slot).ok()));
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && e <= s
        {
            f.fail("ends_at", "must be after starts_at");
        }
        f.finish()?;
        let id = a.small_id();
        let b = UnavailableBlock {
            id,
            business_id: business_id.unwrap_or_default(),
            practitioner_id: practitioner_id.unwrap_or_default(),
            starts_at: starts_at.unwrap_or(now),
            ends_at: ends_at.unwrap_or(now),
            notes,
            deleted_at: None,
            created_at: now,
            updated_at: now,
        };
        let v = wire::unavailable_block(&ctx.urls, &b, &format!("/unavailable_blocks/{id}"));
        a.unavailable_blocks.push(b);
        created(ctx.urls.url(&format!("/unavailable_blocks/{id}")), v)
    })
}

async fn update_unavailable_block(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let bid = id(&bid)?;
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let idx = a
            .unavailable_blocks
            .iter()
            .position(|b| b.id == bid && b.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        let mut f = Fields::new(&m);
        let starts_at = f.time("starts_at", false);
        let ends_at = f.time("ends_at", false);
        let notes = f.text("notes", false);
        let b = &a.unavailable_blocks[idx];
        let (s, e) = (
            starts_at.unwrap_or(b.starts_at),
            ends_at.unwrap_or(b.ends_at),
        );
        if e <= s {
            f.fail("ends_at", "must be after starts_at");
        }
        f.finish()?;
        let b = &mut a.unavailable_blocks[idx];
        b.starts_at = s;
        b.ends_at = e;
        if m.contains_key("notes") {
            b.notes = notes;
        }
        b.updated_at = now;
        ok(wire::unavailable_block(
            &ctx.urls,
            b,
            &format!("/unavailable_blocks/{bid}"),
        ))
    })
}

async fn delete_unavailable_block(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let b = a
            .unavailable_blocks
            .iter_mut()
            .find(|b| b.id == bid && b.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        b.deleted_at = Some(now);
        b.updated_at = now;
        no_content()
    })
}

// ---- patients ---------------------------------------------------------------------------

async fn patients(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a
            .patients
            .iter()
            .filter(|p| p.archived_at.is_none() && p.deleted_at.is_none());
        list(&ctx, "patients", wire::PATIENT_FIELDS, items, |p| {
            wire::patient(&ctx.urls, p)
        })
    })
}

async fn patients_deleted(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a.patients.iter().filter(|p| p.deleted_at.is_some());
        list(&ctx, "patients", wire::PATIENT_FIELDS, items, |p| {
            wire::deleted_patient(&ctx.urls, p)
        })
    })
}

async fn patients_archived(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| {
        let items = a
            .patients
            .iter()
            .filter(|p| p.archived_at.is_some() && p.deleted_at.is_none());
        list(&ctx, "patients", wire::PATIENT_FIELDS, items, |p| {
            wire::patient(&ctx.urls, p)
        })
    })
}

async fn patient(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
) -> ApiResult {
    let pid = id(&pid)?;
    read(&sim, &ctx, |a| {
        let p = a
            .patient(pid)
            .filter(|p| p.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        ok(wire::patient(&ctx.urls, p))
    })
}

/// Apply the optional patient fields of a create or update body.
fn patient_fields(f: &mut Fields<'_>, p: &mut crate::model::Patient) {
    let m = f.m;
    for (name, slot) in [
        ("title", &mut p.title),
        ("address_1", &mut p.address_1),
        ("city", &mut p.city),
        ("state", &mut p.state),
        ("post_code", &mut p.post_code),
        ("country", &mut p.country),
        ("notes", &mut p.notes),
        ("appointment_notes", &mut p.appointment_notes),
        ("old_reference_id", &mut p.old_reference_id),
    ] {
        if let Some(v) = f.text(name, false) {
            *slot = v;
        }
    }
    if f.has("email") {
        p.email = f.text("email", false).filter(|e| !e.is_empty());
    }
    if f.has("preferred_first_name") {
        p.preferred_first_name = f.text("preferred_first_name", false);
    }
    if f.has("date_of_birth") {
        if f.is_null("date_of_birth") {
            p.date_of_birth = None;
        } else {
            match m
                .get("date_of_birth")
                .and_then(Json::as_str)
                .and_then(query::strict_date)
            {
                Some(d) => p.date_of_birth = Some(d),
                None => f.fail("date_of_birth", "is not a date (YYYY-MM-DD)"),
            }
        }
    }
    if f.has("time_zone") {
        match m.get("time_zone") {
            Some(Json::Null) => p.time_zone = None,
            Some(Json::String(z)) if jiff::tz::TimeZone::get(z).is_ok() => {
                p.time_zone = Some(z.clone());
            }
            _ => f.fail("time_zone", "is not an IANA time zone"),
        }
    }
    if let Some(v) = m.get("patient_phone_numbers") {
        match serde_json::from_value::<Vec<PhoneNumber>>(v.clone()) {
            Ok(list) => p.phone_numbers = list,
            Err(_) => f.fail(
                "patient_phone_numbers",
                "must be a list of {phone_type, number}",
            ),
        }
    }
}

async fn create_patient(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let mut f = Fields::new(&m);
        let first = f.text("first_name", true);
        let last = f.text("last_name", true);
        let pid = control::new_patient(
            a,
            &control::PatientSpec {
                first_name: first.unwrap_or_default(),
                last_name: last.unwrap_or_default(),
                date_of_birth: None,
                email: None,
                mobile: None,
            },
            now,
        );
        let idx = a.patients.len() - 1;
        patient_fields(&mut f, &mut a.patients[idx]);
        if let Err(e) = f.finish() {
            a.patients.pop();
            return Err(e);
        }
        let v = wire::patient(&ctx.urls, &a.patients[idx]);
        created(ctx.urls.url(&format!("/patients/{pid}")), v)
    })
}

async fn update_patient(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let pid = id(&pid)?;
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let idx = a
            .patients
            .iter()
            .position(|p| p.id == pid && p.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        let mut f = Fields::new(&m);
        let mut p = a.patients[idx].clone();
        if f.has("first_name") {
            p.first_name = f.text("first_name", true).unwrap_or_default();
        }
        if f.has("last_name") {
            p.last_name = f.text("last_name", true).unwrap_or_default();
        }
        patient_fields(&mut f, &mut p);
        f.finish()?;
        p.updated_at = now;
        let v = wire::patient(&ctx.urls, &p);
        a.patients[idx] = p;
        ok(v)
    })
}

async fn archive_patient(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
) -> ApiResult {
    let pid = id(&pid)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let p = a
            .patients
            .iter_mut()
            .find(|p| p.id == pid && p.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        p.archived_at = Some(now);
        p.updated_at = now;
        no_content()
    })
}

async fn unarchive_patient(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(pid): Path<String>,
) -> ApiResult {
    let pid = id(&pid)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let p = a
            .patients
            .iter_mut()
            .find(|p| p.id == pid && p.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        p.archived_at = None;
        p.updated_at = now;
        ok(wire::patient(&ctx.urls, p))
    })
}

// ---- individual appointments -----------------------------------------------------------

fn appointment_list(sim: &ClinikoSim, ctx: &Ctx, keep: impl Fn(&Appointment) -> bool) -> ApiResult {
    read(sim, ctx, |a| {
        let items = a.appointments.iter().filter(|x| keep(x));
        list(
            ctx,
            "individual_appointments",
            wire::APPOINTMENT_FIELDS,
            items,
            |x| {
                wire::appointment(
                    &ctx.urls,
                    a,
                    x,
                    &format!("/individual_appointments/{}", x.id),
                )
            },
        )
    })
}

/// The list holds cancelled appointments too (with `cancelled_at`), not deleted ones.
async fn appointments(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    appointment_list(&sim, &ctx, |x| x.deleted_at.is_none())
}

async fn appointments_deleted(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    appointment_list(&sim, &ctx, |x| x.deleted_at.is_some())
}

async fn appointments_cancelled(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    appointment_list(&sim, &ctx, |x| {
        x.cancelled_at.is_some() && x.deleted_at.is_none()
    })
}

async fn appointment(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(aid): Path<String>,
) -> ApiResult {
    let aid = id(&aid)?;
    read(&sim, &ctx, |a| {
        let x = a.appointment(aid).ok_or(ApiError::NotFound)?;
        ok(wire::appointment(
            &ctx.urls,
            a,
            x,
            &format!("/individual_appointments/{aid}"),
        ))
    })
}

async fn appointment_conflicts(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(aid): Path<String>,
) -> ApiResult {
    let aid = id(&aid)?;
    read(&sim, &ctx, |a| {
        let x = a.appointment(aid).ok_or(ApiError::NotFound)?;
        ok(json!({ "conflicts": { "exist": a.appointment_conflicts(x) } }))
    })
}

fn type_duration(a: &Account, type_id: u64) -> Option<SignedDuration> {
    a.appointment_type(type_id)
        .map(|t| SignedDuration::from_mins(i64::from(t.duration_in_minutes)))
}

async fn create_appointment(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let mut f = Fields::new(&m);
        let starts_at = f.time("starts_at", true);
        let ends_at = f.time("ends_at", false);
        let patient_id = f.id("patient_id", true);
        let practitioner_id = f.id("practitioner_id", true);
        let appointment_type_id = f.id("appointment_type_id", true);
        let business_id = f.id("business_id", true);
        let notes = f.text("notes", false);
        check_refs(a, &mut f, practitioner_id, business_id);
        if patient_id.is_some_and(|p| a.patient(p).is_none_or(|p| p.deleted_at.is_some())) {
            f.fail("patient_id", "does not exist");
        }
        let duration = appointment_type_id.and_then(|t| type_duration(a, t));
        if appointment_type_id.is_some() && duration.is_none() {
            f.fail("appointment_type_id", "does not exist");
        }
        let ends_at = ends_at.or_else(|| {
            starts_at
                .zip(duration)
                .and_then(|(s, d)| s.checked_add(d).ok())
        });
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && e <= s
        {
            f.fail("ends_at", "must be after starts_at");
        }
        f.finish()?;
        let id = a.small_id();
        let x = Appointment {
            id,
            business_id: business_id.unwrap_or_default(),
            practitioner_id: practitioner_id.unwrap_or_default(),
            appointment_type_id: appointment_type_id.unwrap_or_default(),
            patient_id: patient_id.unwrap_or_default(),
            starts_at: starts_at.unwrap_or(now),
            ends_at: ends_at.unwrap_or(now),
            notes,
            booking_ip_address: None,
            cancelled_at: None,
            cancellation_reason: None,
            cancellation_note: None,
            deleted_at: None,
            created_at: now,
            updated_at: now,
        };
        let path = format!("/individual_appointments/{id}");
        let v = wire::appointment(&ctx.urls, a, &x, &path);
        a.appointments.push(x);
        created(ctx.urls.url(&path), v)
    })
}

async fn update_appointment(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(aid): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let aid = id(&aid)?;
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let idx = a
            .appointments
            .iter()
            .position(|x| x.id == aid && x.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        let mut x = a.appointments[idx].clone();
        let mut f = Fields::new(&m);
        if let Some(s) = f.time("starts_at", false) {
            x.starts_at = s;
        }
        let practitioner_id = f.id("practitioner_id", false);
        let business_id = f.id("business_id", false);
        check_refs(a, &mut f, practitioner_id, business_id);
        x.practitioner_id = practitioner_id.unwrap_or(x.practitioner_id);
        x.business_id = business_id.unwrap_or(x.business_id);
        if let Some(p) = f.id("patient_id", false) {
            if a.patient(p).is_none() {
                f.fail("patient_id", "does not exist");
            }
            x.patient_id = p;
        }
        if let Some(t) = f.id("appointment_type_id", false) {
            if a.appointment_type(t).is_none() {
                f.fail("appointment_type_id", "does not exist");
            }
            x.appointment_type_id = t;
        }
        if f.has("notes") {
            x.notes = f.text("notes", false);
        }
        if f.is_null("ends_at") {
            // "If ends_at is specified and its value is null, it is automatically set".
            if let Some(e) = type_duration(a, x.appointment_type_id)
                .and_then(|d| x.starts_at.checked_add(d).ok())
            {
                x.ends_at = e;
            }
        } else if let Some(e) = f.time("ends_at", false) {
            x.ends_at = e;
        }
        if x.ends_at <= x.starts_at {
            f.fail("ends_at", "must be after starts_at");
        }
        f.finish()?;
        x.updated_at = now;
        let v = wire::appointment(&ctx.urls, a, &x, &format!("/individual_appointments/{aid}"));
        a.appointments[idx] = x;
        ok(v)
    })
}

async fn delete_appointment(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(aid): Path<String>,
) -> ApiResult {
    let aid = id(&aid)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let x = a
            .appointments
            .iter_mut()
            .find(|x| x.id == aid && x.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        x.deleted_at = Some(now);
        x.updated_at = now;
        no_content()
    })
}

async fn cancel_appointment(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(aid): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let aid = id(&aid)?;
    let m = body(&headers, &bytes)?;
    let now = sim.now();
    write(&sim, &ctx, |a| {
        let x = a
            .appointments
            .iter_mut()
            .find(|x| x.id == aid && x.deleted_at.is_none())
            .ok_or(ApiError::NotFound)?;
        let mut f = Fields::new(&m);
        let reason = match m.get("cancellation_reason") {
            None | Some(Json::Null) => {
                f.fail("cancellation_reason", "can't be blank");
                None
            }
            Some(v) => {
                let code = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .and_then(|c| u32::try_from(c).ok())
                    .filter(|c| CANCELLATION_REASONS.contains(c));
                if code.is_none() {
                    f.fail("cancellation_reason", "is not included in the list");
                }
                code
            }
        };
        let note = f.text("cancellation_note", false);
        f.finish()?;
        if x.cancelled_at.is_none() {
            x.cancelled_at = Some(now);
        }
        x.cancellation_reason = reason;
        x.cancellation_note = note;
        x.updated_at = now;
        no_content()
    })
}

// ---- bookings ---------------------------------------------------------------------------

/// A booking: an individual appointment or an unavailable block.
enum Booking<'a> {
    Appt(&'a Appointment),
    Block(&'a UnavailableBlock),
}

impl Record for Booking<'_> {
    fn value(&self, field: &str) -> query::Value {
        match self {
            Booking::Appt(a) => a.value(field),
            Booking::Block(b) => b.value(field),
        }
    }
}

fn render_booking(u: &Urls, acct: &Account, b: &Booking<'_>) -> Json {
    match b {
        Booking::Appt(a) => wire::appointment(u, acct, a, &format!("/bookings/{}", a.id)),
        Booking::Block(x) => wire::unavailable_block(u, x, &format!("/bookings/{}", x.id)),
    }
}

async fn bookings(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    read(&sim, &ctx, |a| {
        let all: Vec<Booking<'_>> = a
            .appointments
            .iter()
            .filter(|x| x.deleted_at.is_none())
            .map(Booking::Appt)
            .chain(
                a.unavailable_blocks
                    .iter()
                    .filter(|b| b.deleted_at.is_none())
                    .map(Booking::Block),
            )
            .collect();
        list(&ctx, "bookings", wire::BOOKING_FIELDS, &all, |b| {
            render_booking(&ctx.urls, a, b)
        })
    })
}

async fn booking(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(bid): Path<String>,
) -> ApiResult {
    let bid = id(&bid)?;
    read(&sim, &ctx, |a| {
        let b = a
            .appointment(bid)
            .map(Booking::Appt)
            .or_else(|| {
                a.unavailable_blocks
                    .iter()
                    .find(|b| b.id == bid)
                    .map(Booking::Block)
            })
            .ok_or(ApiError::NotFound)?;
        ok(render_booking(&ctx.urls, a, &b))
    })
}

// ---- settings, users --------------------------------------------------------------------

async fn settings(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    read(&sim, &ctx, |a| ok(wire::settings(&ctx.urls, a, false)))
}

async fn settings_public(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult {
    read(&sim, &ctx, |a| ok(wire::settings(&ctx.urls, a, true)))
}

async fn current_user(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    read(&sim, &ctx, |a| {
        let u = a.users.first().ok_or(ApiError::NotFound)?;
        ok(wire::user(&ctx.urls, a, u))
    })
}

async fn users(State(sim): State<ClinikoSim>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    read(&sim, &ctx, |a| {
        list(&ctx, "users", wire::USER_FIELDS, &a.users, |u| {
            wire::user(&ctx.urls, a, u)
        })
    })
}

async fn user(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path(uid): Path<String>,
) -> ApiResult {
    let uid = id(&uid)?;
    read(&sim, &ctx, |a| {
        let u = a
            .users
            .iter()
            .find(|u| u.id == uid)
            .ok_or(ApiError::NotFound)?;
        ok(wire::user(&ctx.urls, a, u))
    })
}

// ---- available times --------------------------------------------------------------------

/// The 400 message of the available-times section.
pub const INVALID_TIME_FRAME: &str =
    "Invalid time frame definition. Please check from/to param limitations.";

/// The longest `to - from`, in days: the request covers at most 7 days, both ends included.
pub const MAX_SPAN_DAYS: i32 = 6;

fn ids3(b: &str, p: &str, t: &str) -> Result<(u64, u64, u64), ApiError> {
    Ok((id(b)?, id(p)?, id(t)?))
}

fn exists3(a: &Account, b: u64, p: u64, t: u64) -> Result<(), ApiError> {
    if a.business(b).is_none() || a.practitioner(p).is_none() || a.appointment_type(t).is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

async fn available_times(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path((b, p, t)): Path<(String, String, String)>,
) -> ApiResult {
    let (b, p, t) = ids3(&b, &p, &t)?;
    let now = sim.now();
    let param = |name: &str| {
        ctx.query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| query::strict_date(v))
    };
    let (from, to) = (param("from"), param("to"));
    // Paging only: these times cannot be filtered or ordered.
    let q = ListQuery::parse(&ctx.query, &[])?;
    read(&sim, &ctx, |a| {
        exists3(a, b, p, t)?;
        let today = availability::today(a, now);
        let (Some(from), Some(to)) = (from, to) else {
            return Err(ApiError::BadRequest(INVALID_TIME_FRAME.into()));
        };
        if from < today || to < from || (to - from).get_days() > MAX_SPAN_DAYS {
            return Err(ApiError::BadRequest(INVALID_TIME_FRAME.into()));
        }
        let times = availability::available_times(a, b, p, t, from, to, now);
        let total = times.len() as u64;
        let start = usize::try_from((q.page - 1).saturating_mul(q.per_page)).unwrap_or(usize::MAX);
        let rows: Vec<Json> = times
            .iter()
            .skip(start)
            .take(usize::try_from(q.per_page).unwrap_or(usize::MAX))
            .map(|t| json!({ "appointment_start": wire::ts(*t) }))
            .collect();
        ok(json!({
            "available_times": rows,
            "total_entries": total,
            "links": links(&ctx, q.page, q.per_page, total),
        }))
    })
}

async fn next_available_time(
    State(sim): State<ClinikoSim>,
    Extension(ctx): Extension<Ctx>,
    Path((b, p, t)): Path<(String, String, String)>,
) -> ApiResult {
    let (b, p, t) = ids3(&b, &p, &t)?;
    let now = sim.now();
    read(&sim, &ctx, |a| {
        exists3(a, b, p, t)?;
        let next = availability::next_available_time(a, b, p, t, now);
        ok(json!({
            "appointment_start": next.map(wire::ts),
            "links": { "self": ctx.urls.url(&ctx.path) },
        }))
    })
}

// ---- control ----------------------------------------------------------------------------

fn control_error(e: &ControlError) -> Response {
    let status = match e {
        ControlError::NoAccount(_) | ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
        ControlError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    slotbridge_edge::Problem::new(status, "Control request refused", e.to_string()).into_response()
}

fn control_body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        slotbridge_edge::Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid control request",
            e.to_string(),
        )
        .into_response()
        .into()
    })
}

async fn sim_seed(State(sim): State<ClinikoSim>, bytes: Bytes) -> Response {
    let spec: PracticeSpec = match control_body(&bytes) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match sim.seed(spec) {
        Ok(p) => (StatusCode::CREATED, axum::Json(p)).into_response(),
        Err(e) => control_error(&e),
    }
}

#[derive(serde::Deserialize)]
struct GenerateRequest {
    seed: u64,
    #[serde(default = "au1")]
    shard: String,
    /// Book this share of working time over the next `days` days (default none).
    #[serde(default)]
    fill: f64,
    #[serde(default = "fourteen")]
    days: u32,
}

fn au1() -> String {
    "au1".into()
}
fn fourteen() -> u32 {
    14
}

async fn sim_generate(State(sim): State<ClinikoSim>, bytes: Bytes) -> Response {
    let req: GenerateRequest = match control_body(&bytes) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let seeded = match sim.seed(generate::practice(req.seed, &req.shard)) {
        Ok(p) => p,
        Err(e) => return control_error(&e),
    };
    if req.fill > 0.0 {
        let tz = jiff::tz::TimeZone::get("Australia/Sydney").unwrap_or(jiff::tz::TimeZone::UTC);
        let today = tz.to_datetime(sim.now()).date();
        if let Err(e) = generate::fill_diary(&sim, &seeded, req.seed, today, req.days, req.fill) {
            return control_error(&e);
        }
    }
    (StatusCode::CREATED, axum::Json(seeded)).into_response()
}

/// `GET /_sim/stats`: `{"accounts": {"<account id>": {"requests", "rate_limited"}}}`.
async fn sim_stats(State(sim): State<ClinikoSim>) -> Response {
    let accounts: Map<String, Json> = sim
        .request_counts()
        .into_iter()
        .map(|(id, r)| (id.to_string(), json!(r)))
        .collect();
    axum::Json(json!({ "accounts": accounts })).into_response()
}

async fn sim_desk(
    State(sim): State<ClinikoSim>,
    Path(account): Path<u64>,
    bytes: Bytes,
) -> Response {
    let action: DeskAction = match control_body(&bytes) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match sim.desk(account, action) {
        Ok(o) => axum::Json(o).into_response(),
        Err(e) => control_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_must_name_the_app_and_an_email() {
        assert!(user_agent_ok("Really helpful app (devs@helpfulapp.com)"));
        assert!(user_agent_ok("slotbridge (ops@slotbridge.example)"));
        assert!(!user_agent_ok("APP_VENDOR_NAME (APP_VENDOR_EMAIL)"));
        assert!(!user_agent_ok("curl/8.5.0"));
        assert!(!user_agent_ok("(devs@helpfulapp.com)"));
        assert!(!user_agent_ok("app (devs@localhost)"));
        assert!(!user_agent_ok(""));
    }

    #[test]
    fn the_shard_comes_from_the_path() {
        assert_eq!(
            split_shard("/v1/patients", "au1"),
            Some(("au1".into(), String::new(), "/patients"))
        );
        assert_eq!(
            split_shard("/uk1/v1/patients", "au1"),
            Some(("uk1".into(), "/uk1".into(), "/patients"))
        );
        assert_eq!(split_shard("/xx/v1/patients", "au1"), None);
        assert_eq!(split_shard("/v2/patients", "au1"), None);
        assert_eq!(split_shard("/v1patients", "au1"), None);
    }
}
