//! The operator console: server-rendered pages (maud) under `/console`, enhanced with htmx (served
//! from the binary; no build step). Every page and action is thin over [`crate::admin`].
//!
//! - Login with the console password or the admin token; a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, a random id held in memory) and a CSRF token on every form (htmx sends it
//!   as `X-CSRF-Token`).
//! - `/console`: the practices with their health at a glance, and a form to link one.
//! - `/console/practices/{id}`: link settings (secrets write-only), enable/disable, resync with
//!   progress, findings with fixes, the week's published availability per practitioner as a
//!   picture, the request and booking log, and the why-no-slot question.
//! - `/console/practices/{id}/bookings` and `/console/bookings/{booking_id}`: booking look-up
//!   and a booking's history ([`lookup`]).
//! - `/console/fleet`: the fleet over the last 24 hours, every node summed ([`crate::fleet`]).

mod fleet;
mod lookup;
mod operations;
mod pages;
pub mod svg;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::admin::{
    self, AdminError, CreateLink, ExplainQuery, ListRequest, PracticesQuery, ResyncWhat, UpdateLink,
};
use crate::audit::{self, Actor};
use crate::ctx::Ctx;
use crate::http::{AdminAccess, Routes, constant_time_eq};

const SESSION_COOKIE: &str = "sb_session";
const LOGIN_COOKIE: &str = "sb_login";
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const MAX_SESSIONS: usize = 10_000;

static HTMX: &str = include_str!("static/htmx.min.js");
static CSS: &str = include_str!("static/console.css");

struct Session {
    csrf: String,
    /// Names the session in the audit log (the session id is a secret, never shown).
    label: String,
    expires: Instant,
}

/// Sessions held in memory: a restart logs everyone out.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Whether the request's session cookie names a live session.
    pub(crate) fn logged_in(&self, headers: &HeaderMap) -> bool {
        cookie(headers, SESSION_COOKIE).is_some_and(|id| self.csrf_of(&id).is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        if all.len() >= MAX_SESSIONS {
            // Drop the session closest to expiry to stay bounded.
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                label: random_token()[..8].to_owned(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    fn csrf_of(&self, id: &str) -> Option<String> {
        self.session_of(id).map(|(csrf, _)| csrf)
    }

    /// A live session's CSRF token and label.
    fn session_of(&self, id: &str) -> Option<(String, String)> {
        let all = self.lock();
        all.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| (s.csrf.clone(), s.label.clone()))
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// 32 random bytes from the OS-seeded CSPRNG, hex.
fn random_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
struct Console {
    ctx: Arc<Ctx>,
    access: Arc<AdminAccess>,
    sessions: Arc<Sessions>,
    secure_cookies: bool,
}

/// A logged-in request: its session's CSRF token, and who it is for the audit log.
#[derive(Clone)]
struct Authed {
    csrf: String,
    actor: Actor,
}

/// The console's routes under `/console`, with the node's console sessions.
pub(crate) fn router(ctx: Arc<Ctx>, access: AdminAccess, sessions: Arc<Sessions>) -> Router {
    let secure_cookies = ctx
        .settings
        .webhooks
        .as_ref()
        .is_some_and(|w| w.public_url.scheme() == "https");
    let state = Console {
        ctx,
        access: Arc::new(access),
        sessions,
        secure_cookies,
    };
    let (authed, _) = authed_routes().into_parts();
    let (open, _) = open_routes().into_parts();
    let authed = authed.route_layer(middleware::from_fn_with_state(
        state.clone(),
        require_session,
    ));
    open.merge(authed)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The console's pages and actions that need a session.
fn authed_routes() -> Routes<Console> {
    Routes::new()
        .get("/console", practices_page)
        .get("/console/fleet", fleet::page)
        .post("/console/links", create_link)
        .post("/console/logout", logout)
        .get("/console/practices/{id}", practice_page)
        .post("/console/practices/{id}/settings", update_settings)
        .post("/console/practices/{id}/enabled", set_enabled)
        .get("/console/practices/{id}/resync", resync_progress)
        .post("/console/practices/{id}/resync", resync)
        .get("/console/practices/{id}/explain", explain)
        .get("/console/practices/{id}/log", log_fragment)
        .post("/console/bulk", operations::start_bulk)
        .get("/console/bulk/{id}", operations::bulk_page)
        .get("/console/audit", operations::audit_page)
        .get("/console/practices/{id}/bookings", lookup::search)
        .post("/console/practices/{id}/bookings", lookup::find)
        .get("/console/bookings/{id}", lookup::booking)
}

/// The login page and the static assets.
fn open_routes() -> Routes<Console> {
    Routes::new()
        .get("/console/login", login_page)
        .post("/console/login", login)
        .get("/console/static/htmx.min.js", htmx_js)
        .get("/console/static/console.css", console_css)
}

/// Every console route, as (method, route).
pub(crate) fn route_table() -> Vec<(axum::http::Method, String)> {
    let mut t = open_routes().table();
    t.extend(authed_routes().table());
    t
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn htmx_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX,
    )
        .into_response()
}

async fn console_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Every page but the login needs a session; every POST needs its CSRF token (a form field
/// `csrf`, checked by the handler, or the `X-CSRF-Token` header, checked here).
async fn require_session(State(c): State<Console>, mut req: Request, next: Next) -> Response {
    let session = cookie(req.headers(), SESSION_COOKIE).and_then(|id| c.sessions.session_of(&id));
    let Some((csrf, label)) = session else {
        return to_login(req.headers());
    };
    if req.method() == axum::http::Method::POST
        && let Some(given) = req.headers().get("x-csrf-token")
    {
        if !constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
            return forbidden();
        }
        req.extensions_mut().insert(CsrfChecked);
    }
    req.extensions_mut().insert(Authed {
        csrf,
        actor: Actor::console(&label),
    });
    next.run(req).await
}

/// Where a request without a session goes: the login page (htmx: 401 with `HX-Redirect`).
pub(crate) fn to_login(headers: &HeaderMap) -> Response {
    if is_htmx(headers) {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert("hx-redirect", HeaderValue::from_static("/console/login"));
        return r;
    }
    Redirect::to("/console/login").into_response()
}

#[derive(Clone, Copy)]
struct CsrfChecked;

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::message_page(
            "Forbidden",
            "The form's security token is missing or stale. Go back, reload the page and try again.",
        ),
    )
        .into_response()
}

/// The CSRF check of a POST: the header (already checked) or the form's `csrf` field.
fn csrf_ok(header: &Option<Extension<CsrfChecked>>, authed: &Authed, field: Option<&str>) -> bool {
    header.is_some()
        || field.is_some_and(|f| constant_time_eq(f.as_bytes(), authed.csrf.as_bytes()))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login_page(State(c): State<Console>) -> Response {
    let pre = random_token();
    let configured = c.access.token.is_some() || c.access.console_password.is_some();
    let mut r = pages::login(&pre, None, configured).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &pre, 1800, c.secure_cookies),
    );
    r
}

async fn login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    // Login CSRF: the form's token must match the cookie set with the form (double submit).
    let pre = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if pre.is_empty() || !constant_time_eq(pre.as_bytes(), f.csrf.as_bytes()) {
        return forbidden();
    }
    let configured = c.access.token.is_some() || c.access.console_password.is_some();
    if !c.access.console_login(&f.password) {
        // Slow down guessing.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut r = (
            StatusCode::UNAUTHORIZED,
            pages::login(
                &pre,
                Some(if configured {
                    "That password or token is not right."
                } else {
                    "Login is not configured: set console_password or admin_token."
                }),
                configured,
            ),
        )
            .into_response();
        r.headers_mut().insert(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &pre, 1800, c.secure_cookies),
        );
        return r;
    }
    let (id, _csrf) = c.sessions.create();
    tracing::info!("console login");
    let mut r = Redirect::to("/console").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs(), c.secure_cookies),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", 0, c.secure_cookies),
    );
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

async fn logout(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    checked: Option<Extension<CsrfChecked>>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        c.sessions.remove(&id);
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, c.secure_cookies),
    );
    r
}

/// An admin failure shown on a page: status and a sentence.
fn failure(e: &AdminError) -> (StatusCode, String) {
    let status = match e {
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Invalid { .. } | AdminError::PmsData(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Pms(_) => StatusCode::BAD_GATEWAY,
        AdminError::Store(s) => {
            tracing::error!(error = %s, "store failure");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let text = match e {
        AdminError::Store(_) => "The store failed; see the service log.".to_owned(),
        other => other.to_string(),
    };
    (status, text)
}

fn error_response(e: &AdminError) -> Response {
    let (status, text) = failure(e);
    (status, pages::message_page("Something went wrong", &text)).into_response()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    attention: Option<String>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    per_page: Option<String>,
}

impl ListQuery {
    /// The list's query; a page or length that is not a number is the field's error.
    fn request(&self) -> Result<ListRequest, AdminError> {
        let number = |field: &'static str, v: &Option<String>| -> Result<Option<u32>, AdminError> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| AdminError::Invalid {
                    field,
                    message: format!("expected a whole number, found {v:?}"),
                }),
            }
        };
        ListRequest::parse(&PracticesQuery {
            q: self.q.clone(),
            attention: self.attention.clone(),
            page: number("page", &self.page)?,
            per_page: number("per_page", &self.per_page)?,
        })
    }
}

/// The list page for `query`, with a flash or an error above it.
async fn list_page(
    c: &Console,
    authed: &Authed,
    query: Result<ListRequest, AdminError>,
    flash: Option<&str>,
    error: Option<(StatusCode, &str)>,
) -> Response {
    let (query, error) = match query {
        Ok(q) => (q, error.map(|(s, t)| (s, t.to_owned()))),
        // A bad query shows the whole list, saying what was wrong.
        Err(e) => (
            ListRequest::parse(&PracticesQuery::default()).expect("the default query is valid"),
            Some(failure(&e)),
        ),
    };
    match admin::practices_page(&c.ctx, &query).await {
        Ok(page) => {
            let view = pages::ListView {
                page: &page,
                query: &query,
            };
            let (status, text) = match &error {
                Some((s, t)) => (*s, Some(t.as_str())),
                None => (StatusCode::OK, None),
            };
            (status, pages::practices(&authed.csrf, &view, flash, text)).into_response()
        }
        Err(e) => error_response(&e),
    }
}

async fn practices_page(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Query(q): Query<ListQuery>,
) -> Response {
    let flash = q.msg.as_deref().and_then(flash);
    list_page(&c, &authed, q.request(), flash, None).await
}

/// Fixed messages after a redirect (never reflect text from the query).
fn flash(key: &str) -> Option<&'static str> {
    Some(match key {
        "linked" => "Linked. The first publish starts within seconds.",
        "saved" => "Settings saved. The link restarts with a full configuration send.",
        "enabled" => "Enabled. Publishing starts within seconds.",
        "disabled" => "Disabled. Nothing is published and no bookings are taken for it.",
        "resync" => "Resync asked.",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct NewLinkForm {
    #[serde(default)]
    csrf: Option<String>,
    /// `exact` (default) or `cliniko`.
    #[serde(default)]
    pms_kind: Option<String>,
    #[serde(default)]
    site_slug: String,
    /// The Cliniko business id (Cliniko links).
    #[serde(default)]
    business_id: Option<String>,
    pms_api_key: String,
    practice_id: String,
    practice_key: String,
    #[serde(default)]
    horizon_days: Option<String>,
    #[serde(default)]
    market_name: Option<String>,
}

async fn create_link(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    checked: Option<Extension<CsrfChecked>>,
    Form(f): Form<NewLinkForm>,
) -> Response {
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    let horizon_days = match parse_horizon(f.horizon_days.as_deref()) {
        Ok(h) => h,
        Err(e) => return list_with_error(&c, &authed, &e).await,
    };
    let created = admin::create_link(
        &c.ctx,
        CreateLink {
            pms_kind: if f.pms_kind.as_deref() == Some("cliniko") {
                admin::PmsKind::Cliniko
            } else {
                admin::PmsKind::Exact
            },
            site_slug: f.site_slug,
            business_id: f.business_id.filter(|b| !b.trim().is_empty()),
            pms_api_key: f.pms_api_key,
            practice_id: f.practice_id,
            practice_key: f.practice_key,
            horizon_days,
            enabled: Some(true),
            market_name: f.market_name,
        },
    )
    .await;
    match created {
        Ok(link) => {
            audit::record(
                &c.ctx,
                &authed.actor,
                "link.create",
                audit::one_link(&link.id),
                format!("site {} to practice {}", link.site_slug, link.practice_id),
            )
            .await;
            Redirect::to(&format!("/console/practices/{}?msg=linked", link.id)).into_response()
        }
        Err(e) => list_with_error(&c, &authed, &e).await,
    }
}

async fn list_with_error(c: &Console, authed: &Authed, e: &AdminError) -> Response {
    let (status, text) = failure(e);
    let query = ListRequest::parse(&PracticesQuery::default());
    list_page(c, authed, query, None, Some((status, &text))).await
}

fn parse_horizon(v: Option<&str>) -> Result<Option<i64>, AdminError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| AdminError::Invalid {
            field: "horizon_days",
            message: format!("expected a whole number of days from 1 to 90, found {v:?}"),
        }),
    }
}

#[derive(Deserialize, Default)]
struct PracticeQuery {
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    week: Option<String>,
    #[serde(default)]
    practitioner: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Everything the practice page shows, from one PMS read.
async fn practice_view(
    c: &Console,
    id: &str,
    q: &PracticeQuery,
) -> Result<pages::PracticeView, AdminError> {
    let summary = admin::practice(&c.ctx, id).await?;
    let link = admin::load_link(&c.ctx, id).await?;
    let read = admin::read_pms(&c.ctx, &link).await;
    let findings = admin::findings_from(&c.ctx, &link, read.as_ref()).await?;
    let week = match &read {
        Ok(r) => admin::week_from(r, q.week.as_deref()).map_err(|e| e.to_string()),
        Err(e) => Err(format!("The PMS could not be read: {e}")),
    };
    let explanation = match (&read, &q.practitioner, &q.at) {
        (Ok(r), Some(p), Some(at)) => Some(
            admin::explain_from(
                r,
                &ExplainQuery {
                    practitioner: p.clone(),
                    at: at.clone(),
                    reason: q.reason.clone(),
                },
            )
            .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    let log = admin::log(&c.ctx, id).await?;
    let progress = admin::resync_progress(&c.ctx, id).await.ok();
    Ok(pages::PracticeView {
        summary,
        findings,
        week,
        explanation,
        log,
        progress,
        explain_input: (q.practitioner.clone(), q.at.clone(), q.reason.clone()),
    })
}

async fn practice_page(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
    Query(q): Query<PracticeQuery>,
) -> Response {
    match practice_view(&c, &id, &q).await {
        Ok(v) => pages::practice(&authed.csrf, &v, q.msg.as_deref().and_then(flash), None)
            .into_response(),
        Err(e) => error_response(&e),
    }
}

async fn practice_with_error(c: &Console, authed: &Authed, id: &str, e: &AdminError) -> Response {
    let (status, text) = failure(e);
    match practice_view(c, id, &PracticeQuery::default()).await {
        Ok(v) => (status, pages::practice(&authed.csrf, &v, None, Some(&text))).into_response(),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    practice_id: Option<String>,
    #[serde(default)]
    horizon_days: Option<String>,
    #[serde(default)]
    pms_api_key: Option<String>,
    #[serde(default)]
    practice_key: Option<String>,
    #[serde(default)]
    market_name: Option<String>,
}

async fn update_settings(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
    checked: Option<Extension<CsrfChecked>>,
    Form(f): Form<SettingsForm>,
) -> Response {
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    let horizon_days = match parse_horizon(f.horizon_days.as_deref()) {
        Ok(h) => h,
        Err(e) => return practice_with_error(&c, &authed, &id, &e).await,
    };
    let current = match admin::get_link(&c.ctx, &id).await {
        Ok(l) => l,
        Err(e) => return error_response(&e),
    };
    // Blank secret fields keep the stored secret (they are write-only: never shown).
    let keep_blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let practice_id = keep_blank(f.practice_id).filter(|p| p.trim() != current.practice_id);
    let horizon_days = horizon_days.filter(|h| *h != current.horizon_days);
    // A name changed (blank forgets it); the same name is no change.
    let market_name = f
        .market_name
        .map(|n| n.trim().to_owned())
        .filter(|n| Some(n.as_str()) != current.market_name.as_deref().or(Some("")));
    let changes = UpdateLink {
        enabled: None,
        practice_id,
        practice_key: keep_blank(f.practice_key),
        pms_api_key: keep_blank(f.pms_api_key),
        horizon_days,
        market_name,
    };
    let detail = audit::describe_update(&changes);
    match admin::update_link(&c.ctx, &id, changes).await {
        Ok(link) => {
            audit::record(
                &c.ctx,
                &authed.actor,
                "link.update",
                audit::one_link(&link.id),
                detail,
            )
            .await;
            Redirect::to(&format!("/console/practices/{id}?msg=saved")).into_response()
        }
        Err(e) => practice_with_error(&c, &authed, &id, &e).await,
    }
}

#[derive(Deserialize)]
struct EnabledForm {
    #[serde(default)]
    csrf: Option<String>,
    enabled: String,
}

async fn set_enabled(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
    checked: Option<Extension<CsrfChecked>>,
    Form(f): Form<EnabledForm>,
) -> Response {
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    let enabled = f.enabled == "true";
    let changes = UpdateLink {
        enabled: Some(enabled),
        ..UpdateLink::default()
    };
    let detail = audit::describe_update(&changes);
    match admin::update_link(&c.ctx, &id, changes).await {
        Ok(link) => {
            audit::record(
                &c.ctx,
                &authed.actor,
                "link.update",
                audit::one_link(&link.id),
                detail,
            )
            .await;
            Redirect::to(&format!(
                "/console/practices/{id}?msg={}",
                if enabled { "enabled" } else { "disabled" }
            ))
            .into_response()
        }
        Err(e) => practice_with_error(&c, &authed, &id, &e).await,
    }
}

#[derive(Deserialize)]
struct ResyncForm {
    #[serde(default)]
    csrf: Option<String>,
    what: String,
}

async fn resync(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
    checked: Option<Extension<CsrfChecked>>,
    headers: HeaderMap,
    Form(f): Form<ResyncForm>,
) -> Response {
    let htmx = is_htmx(&headers);
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    let asked = match ResyncWhat::parse(&f.what) {
        Ok(what) => admin::resync(&c.ctx, &id, what).await,
        Err(e) => Err(e),
    };
    if let Ok(a) = &asked {
        let detail = format!("resync {}", a.what.as_str());
        audit::record(
            &c.ctx,
            &authed.actor,
            "link.resync",
            audit::one_link(&a.link),
            detail,
        )
        .await;
    }
    match (asked, htmx) {
        (Ok(_), true) => match admin::resync_progress(&c.ctx, &id).await {
            Ok(p) => pages::resync_progress(&id, Some(&p), None).into_response(),
            Err(e) => pages::resync_progress(&id, None, Some(&e.to_string())).into_response(),
        },
        (Ok(_), false) => {
            Redirect::to(&format!("/console/practices/{id}?msg=resync#resync")).into_response()
        }
        (Err(e), true) => {
            let (status, text) = failure(&e);
            (status, pages::resync_progress(&id, None, Some(&text))).into_response()
        }
        (Err(e), false) => practice_with_error(&c, &authed, &id, &e).await,
    }
}

async fn resync_progress(State(c): State<Console>, Path(id): Path<String>) -> Response {
    match admin::resync_progress(&c.ctx, &id).await {
        Ok(p) => pages::resync_progress(&id, Some(&p), None).into_response(),
        Err(AdminError::NotFound(_)) => pages::resync_progress(&id, None, None).into_response(),
        Err(e) => {
            let (status, text) = failure(&e);
            (status, pages::resync_progress(&id, None, Some(&text))).into_response()
        }
    }
}

async fn explain(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PracticeQuery>,
) -> Response {
    if !is_htmx(&headers) {
        // Without htmx the answer is part of the whole page.
        return match practice_view(&c, &id, &q).await {
            Ok(v) => pages::practice(&authed.csrf, &v, None, None).into_response(),
            Err(e) => error_response(&e),
        };
    }
    let answer = admin::explain(
        &c.ctx,
        &id,
        &ExplainQuery {
            practitioner: q.practitioner.unwrap_or_default(),
            at: q.at.unwrap_or_default(),
            reason: q.reason,
        },
    )
    .await
    .map_err(|e| e.to_string());
    pages::explanation(&answer).into_response()
}

async fn log_fragment(State(c): State<Console>, Path(id): Path<String>) -> Response {
    match admin::log(&c.ctx, &id).await {
        Ok(log) => pages::log(&id, &log).into_response(),
        Err(e) => error_response(&e),
    }
}
