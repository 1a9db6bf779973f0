//! The service's HTTP face: health, metrics, the two webhook receivers (PMS CloudEvents and
//! marketplace payloads), the admin API under `/api` with its OpenAPI 3.1 document at
//! `/openapi.json`, and the operator console under `/console`.
//!
//! The admin API's handlers are thin over [`crate::admin`]. Every route but the
//! [`PUBLIC_ROUTES`] needs the bearer token (when one is configured) or, for the console's pages,
//! a console session: one middleware over the whole router checks it, so a route added later is
//! protected by default, and [`route_table`] lists every route for the test that walks them.
//! Errors are RFC 9457 problem+json. Secrets are write-only: no response carries an API key or a
//! practice key. The listener's limits (body size, header-read and request timeouts) are
//! [`limits`], applied by `slotbridge_edge::serve`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use slotbridge_store::{LinkId, StoreError};
use tokio::sync::mpsc;
use tower::ServiceExt as _;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::{
    self, AdminError, CreateLink, ExplainQuery, ExplanationView, FindingView, LinkLog, LinkView,
    PracticePage, PracticeSummary, PracticesQuery, ResyncAccepted, ResyncRequest, ResyncWhat,
    UpdateLink, WeekQuery, WeekView,
};
use crate::audit::{self as audit_log, Actor, AuditQuery, AuditView, BulkRequest, BulkView};
use crate::ctx::{Ctx, Trigger};

/// Who may use the admin API and the console.
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// The bearer token `/api/*` requires (it also logs in to the console). `None`: the API is
    /// open, which a node allows only on a loopback address.
    pub token: Option<SecretString>,
    /// The console password (the token works too). Without both, the console cannot be logged
    /// in to.
    pub console_password: Option<SecretString>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.as_ref().map(|_| "[set]"))
            .field(
                "console_password",
                &self.console_password.as_ref().map(|_| "[set]"),
            )
            .finish()
    }
}

/// Compare two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AdminAccess {
    /// Whether `given` is the admin token.
    pub fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(t.expose_secret().as_bytes(), given.as_bytes()))
    }

    /// Whether `given` logs in to the console: the console password or the admin token.
    pub fn console_login(&self, given: &str) -> bool {
        let password = self
            .console_password
            .as_ref()
            .is_some_and(|p| constant_time_eq(p.expose_secret().as_bytes(), given.as_bytes()));
        // Evaluate both, so the time does not tell which one matched.
        let token = self.token_matches(given);
        !given.is_empty() && (password | token)
    }
}

/// What the HTTP layer needs.
#[derive(Clone)]
pub struct HttpState {
    pub(crate) ctx: Arc<Ctx>,
    pms_webhook_secret: Option<SecretString>,
    /// The marketplace's payload receiver, behind the per-link token check.
    market_hooks: Router,
    /// Who the audit log names for the admin API's actions.
    actor: Actor,
}

/// A problem+json response of the admin API: the shared [`slotbridge_edge::Problem`], with the
/// mapping of this crate's errors onto it.
#[derive(Debug)]
pub struct Problem(slotbridge_edge::Problem);

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Problem(slotbridge_edge::Problem::new(status, title, detail))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidInput { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid input",
                e.to_string(),
            ),
            StoreError::PracticeAlreadyLinked { .. } => {
                Problem::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            StoreError::LinkNotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, "Not found", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "the store failed; see the service log",
                )
            }
        }
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "Not found", m),
            AdminError::Invalid { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid input",
                e.to_string(),
            ),
            AdminError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "Conflict", m),
            // The PMS refusing the link's key is the link's state, which the caller can fix by
            // replacing the key: not a failure of the gateway.
            AdminError::Pms(
                slotbridge_pms::PmsError::Unauthorized { .. }
                | slotbridge_pms::PmsError::KeyRevoked { .. },
            ) => Problem::new(
                StatusCode::CONFLICT,
                "PMS key refused",
                format!("{e}; replace the link's pms_api_key"),
            ),
            AdminError::Pms(_) => {
                Problem::new(StatusCode::BAD_GATEWAY, "PMS unavailable", e.to_string())
            }
            AdminError::PmsData(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid PMS data",
                e.to_string(),
            ),
            AdminError::Store(s) => Problem::from(s),
        }
    }
}

/// The OpenAPI document's frame; the paths come from the handlers registered in [`api`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "slotbridge admin API",
        description = "Links between PMS sites and marketplace practices, their health, \
                       resyncs, findings, why-no-slot explanations, published availability and \
                       the request and booking log. Every operation needs \
                       `Authorization: Bearer <admin token>` when the node has one configured.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "links", description = "Links: create, read, update, enable and disable"),
        (name = "health", description = "Practices at a glance, findings and explanations"),
        (name = "log", description = "Requests and bookings"),
        (name = "operations", description = "Bulk actions and the audit log of operators' actions"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin API's routes with their OpenAPI description (the two are built together, so no
/// route is served undocumented).
fn api() -> OpenApiRouter<HttpState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_links, create_link))
        .routes(routes!(get_link, update_link))
        .routes(routes!(resync, resync_progress))
        .routes(routes!(findings))
        .routes(routes!(explain))
        .routes(routes!(week))
        .routes(routes!(link_log))
        .routes(routes!(list_practices))
        .routes(routes!(get_practice))
        .routes(routes!(fleet))
        .routes(routes!(start_bulk))
        .routes(routes!(bulk_progress))
        .routes(routes!(audit))
        .routes(routes!(crate::lookup::practice_bookings))
        .routes(routes!(crate::lookup::get_booking))
}

/// The OpenAPI 3.1 document of the admin API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// A router that keeps the table of what it serves: each route is added with its method, so the
/// table cannot miss a route the router has. [`route_table`] is the node's whole table; the test
/// that every route needs authentication walks it.
pub(crate) struct Routes<S> {
    router: Router<S>,
    table: Vec<(Method, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub(crate) fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Serve `GET path` (and `HEAD`) with `handler`.
    pub(crate) fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, S>,
        T: 'static,
    {
        self.on(Method::GET, path, get(handler))
    }

    /// Serve `POST path` with `handler`.
    pub(crate) fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, S>,
        T: 'static,
    {
        self.on(Method::POST, path, post(handler))
    }

    fn on(mut self, method: Method, path: &'static str, route: MethodRouter<S>) -> Self {
        self.table.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    /// The routes, as (method, route).
    pub(crate) fn table(&self) -> Vec<(Method, String)> {
        self.table
            .iter()
            .map(|(m, p)| (m.clone(), (*p).to_owned()))
            .collect()
    }

    /// The router, and the table.
    pub(crate) fn into_parts(self) -> (Router<S>, Vec<(Method, String)>) {
        let table = self.table();
        (self.router, table)
    }
}

/// Every route the node serves, as (method, route template): the node's own, the console's and
/// the admin API's (from its OpenAPI document, which is built with its routes).
pub fn route_table() -> Vec<(Method, String)> {
    let mut table = node_routes().table();
    table.extend(crate::console::route_table());
    for (path, item) in openapi().paths.paths {
        let ops = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::DELETE, item.delete.is_some()),
        ];
        table.extend(
            ops.into_iter()
                .filter(|(_, has)| *has)
                .map(|(m, _)| (m, path.clone())),
        );
    }
    table
}

/// The node's routes besides the admin API's and the console's.
fn node_routes() -> Routes<HttpState> {
    Routes::new()
        .get("/healthz", || async { "ok" })
        .get("/readyz", readyz)
        .get("/metrics", metrics)
        .post("/webhooks/pms", pms_webhook)
        .post("/webhooks/market/{token}", market_webhook)
        .get("/openapi.json", openapi_json)
        .get("/", || async { Redirect::to("/console") })
}

/// The node's routes anyone may call, as (method, route). Every other route of the node needs the
/// admin token (`/api/*`, `/openapi.json`, `/metrics`) or a console session (the console's
/// pages and actions): [`router`] enforces it for every route it serves, so a route added later
/// is protected unless it is listed here. docs/console.md lists them with why each is public.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/"),
    ("POST", "/webhooks/pms"),
    ("POST", "/webhooks/market/{token}"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/static/htmx.min.js"),
    ("GET", "/console/static/console.css"),
];

/// Whether `method` on the route `path` (the route's template, e.g. `/webhooks/market/{token}`)
/// is public. `HEAD` is public where `GET` is.
pub fn is_public(method: &Method, path: &str) -> bool {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    PUBLIC_ROUTES
        .iter()
        .any(|(m, p)| *m == method && *p == path)
}

/// The largest request body the node reads (admin API, console forms, webhook payloads).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The node's listener limits: [`MAX_BODY_BYTES`], 10 s for a request head, 30 s per request.
pub fn limits() -> slotbridge_edge::Limits {
    slotbridge_edge::Limits::default().with_max_body(MAX_BODY_BYTES)
}

/// The router: `/healthz`, `/readyz`, `/metrics`, `/webhooks/pms`, `/webhooks/market/{token}`,
/// the admin API under `/api`, `/openapi.json`, and the console under `/console` (`/` leads
/// there). Every route but the [`PUBLIC_ROUTES`] needs the admin token or a console session.
pub fn router(
    ctx: Arc<Ctx>,
    pms_webhook_secret: Option<SecretString>,
    access: AdminAccess,
) -> Router {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(market_payloads(ctx.clone(), rx));
    let market_hooks = slotbridge_market::WebhookReceiver::new(tx)
        .handoff_timeout(Duration::from_secs(2))
        .router();
    let state = HttpState {
        ctx: ctx.clone(),
        pms_webhook_secret,
        market_hooks,
        actor: Actor::api(access.token.is_some()),
    };
    let (api, _) = api().split_for_parts();
    let sessions = Arc::new(crate::console::Sessions::default());
    let gate = Gate {
        access: Arc::new(access.clone()),
        sessions: sessions.clone(),
    };
    let (node, _) = node_routes().into_parts();
    node.merge(api)
        .with_state(state)
        .merge(crate::console::router(ctx, access, sessions))
        .route_layer(middleware::from_fn_with_state(gate, require_access))
}

/// What [`require_access`] checks against.
#[derive(Clone)]
struct Gate {
    access: Arc<AdminAccess>,
    sessions: Arc<crate::console::Sessions>,
}

/// Every route but the [`PUBLIC_ROUTES`]: the console's need a session (else the login page),
/// the others `Authorization: Bearer <token>` when a token is configured.
async fn require_access(
    State(gate): State<Gate>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched
        .as_ref()
        .map_or(req.uri().path(), MatchedPath::as_str)
        .to_owned();
    if is_public(req.method(), &route) {
        return next.run(req).await;
    }
    if route == "/console" || route.starts_with("/console/") {
        if gate.sessions.logged_in(req.headers()) {
            return next.run(req).await;
        }
        return crate::console::to_login(req.headers());
    }
    if gate.access.token.is_some() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !gate.access.token_matches(given.trim()) {
            let mut r = Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "this needs `Authorization: Bearer <admin token>` (config admin_token, env \
                 SLOTBRIDGE_ADMIN_TOKEN)",
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid body",
            format!("the request body is not valid: {e}"),
        )
    })
}

type Json<T> = axum::Json<T>;

pub(crate) fn query_problem(e: QueryRejection) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid query",
        format!("the query string is not valid: {}", e.body_text()),
    )
}

/// List the links.
#[utoipa::path(get, path = "/api/links", tag = "links",
    responses((status = 200, description = "Every link (without secrets)", body = [LinkView]),
              (status = 401, description = "No or wrong bearer token")))]
async fn list_links(State(s): State<HttpState>) -> Result<Json<Vec<LinkView>>, Problem> {
    Ok(axum::Json(admin::list_links(&s.ctx).await?))
}

/// Link a PMS site to a marketplace practice.
#[utoipa::path(post, path = "/api/links", tag = "links", request_body = CreateLink,
    responses((status = 201, description = "Linked", body = LinkView),
              (status = 409, description = "The practice is already linked by an enabled link"),
              (status = 422, description = "Invalid input (the detail names the field)"),
              (status = 401, description = "No or wrong bearer token")))]
async fn create_link(
    State(s): State<HttpState>,
    body: Bytes,
) -> Result<(StatusCode, Json<LinkView>), Problem> {
    let req: CreateLink = json_body(&body)?;
    let link = admin::create_link(&s.ctx, req).await?;
    audit_log::record(
        &s.ctx,
        &s.actor,
        "link.create",
        audit_log::one_link(&link.id),
        format!("site {} to practice {}", link.site_slug, link.practice_id),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(link)))
}

/// One link.
#[utoipa::path(get, path = "/api/links/{id}", tag = "links",
    params(("id" = String, Path, description = "Link id")),
    responses((status = 200, description = "The link (without secrets)", body = LinkView),
              (status = 404, description = "No such link"),
              (status = 401, description = "No or wrong bearer token")))]
async fn get_link(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<LinkView>, Problem> {
    Ok(axum::Json(admin::get_link(&s.ctx, &id).await?))
}

/// Change a link: enable or disable it, move it to another practice, replace its keys
/// (write-only) or its horizon.
#[utoipa::path(patch, path = "/api/links/{id}", tag = "links", request_body = UpdateLink,
    params(("id" = String, Path, description = "Link id")),
    responses((status = 200, description = "The link as changed", body = LinkView),
              (status = 404, description = "No such link"),
              (status = 409, description = "The new practice is already linked"),
              (status = 422, description = "Invalid input"),
              (status = 401, description = "No or wrong bearer token")))]
async fn update_link(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<LinkView>, Problem> {
    let req: UpdateLink = json_body(&body)?;
    let detail = audit_log::describe_update(&req);
    let link = admin::update_link(&s.ctx, &id, req).await?;
    audit_log::record(
        &s.ctx,
        &s.actor,
        "link.update",
        audit_log::one_link(&link.id),
        detail,
    )
    .await;
    Ok(axum::Json(link))
}

/// Resend the configuration or every day of availability.
#[utoipa::path(post, path = "/api/links/{id}/resync", tag = "links", request_body = ResyncRequest,
    params(("id" = String, Path, description = "Link id")),
    responses((status = 202, description = "Queued; follow it with GET", body = ResyncAccepted),
              (status = 404, description = "No such link"),
              (status = 409, description = "Disabled, or worked by another node"),
              (status = 422, description = "`what` is not config or availability"),
              (status = 401, description = "No or wrong bearer token")))]
async fn resync(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ResyncAccepted>), Problem> {
    let req: ResyncRequest = json_body(&body)?;
    let what = ResyncWhat::parse(&req.what)?;
    let accepted = admin::resync(&s.ctx, &id, what).await?;
    audit_log::record(
        &s.ctx,
        &s.actor,
        "link.resync",
        audit_log::one_link(&accepted.link),
        format!("resync {}", what.as_str()),
    )
    .await;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)))
}

/// The progress of the link's last resync on this node.
#[utoipa::path(get, path = "/api/links/{id}/resync", tag = "links",
    params(("id" = String, Path, description = "Link id")),
    responses((status = 200, description = "The last resync", body = admin::ResyncProgressView),
              (status = 404, description = "No such link, or no resync asked on this node"),
              (status = 401, description = "No or wrong bearer token")))]
async fn resync_progress(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<admin::ResyncProgressView>, Problem> {
    Ok(axum::Json(admin::resync_progress(&s.ctx, &id).await?))
}

/// The findings: what is wrong with the practice's setup or the integration, and how to fix
/// each, from a fresh read of the PMS.
#[utoipa::path(get, path = "/api/links/{id}/findings", tag = "health",
    params(("id" = String, Path, description = "Link id")),
    responses((status = 200, description = "Findings, errors first", body = [FindingView]),
              (status = 404, description = "No such link"),
              (status = 401, description = "No or wrong bearer token")))]
async fn findings(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<FindingView>>, Problem> {
    Ok(axum::Json(admin::findings(&s.ctx, &id).await?))
}

/// Why there is (no) slot at a time for a practitioner.
#[utoipa::path(get, path = "/api/links/{id}/explain", tag = "health",
    params(("id" = String, Path, description = "Link id"), ExplainQuery),
    responses((status = 200, description = "The answer, with the rule that removed the slot", body = ExplanationView),
              (status = 404, description = "No such link, practitioner or reason"),
              (status = 409, description = "The PMS refuses the link's API key"),
              (status = 422, description = "`at` is not a practice-local time"),
              (status = 502, description = "The PMS could not be read"),
              (status = 401, description = "No or wrong bearer token")))]
async fn explain(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    q: Result<Query<ExplainQuery>, QueryRejection>,
) -> Result<Json<ExplanationView>, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    Ok(axum::Json(admin::explain(&s.ctx, &id, &q).await?))
}

/// The published availability of a week, per practitioner.
#[utoipa::path(get, path = "/api/links/{id}/week", tag = "health",
    params(("id" = String, Path, description = "Link id"), WeekQuery),
    responses((status = 200, description = "Seven days of slots per practitioner", body = WeekView),
              (status = 404, description = "No such link"),
              (status = 409, description = "The PMS refuses the link's API key"),
              (status = 422, description = "`start` is not a date"),
              (status = 502, description = "The PMS could not be read"),
              (status = 401, description = "No or wrong bearer token")))]
async fn week(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    q: Result<Query<WeekQuery>, QueryRejection>,
) -> Result<Json<WeekView>, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    Ok(axum::Json(
        admin::week(&s.ctx, &id, q.start.as_deref()).await?,
    ))
}

/// The request and booking log: each booking with every state transition and the reason for a
/// rejection.
#[utoipa::path(get, path = "/api/links/{id}/log", tag = "log",
    params(("id" = String, Path, description = "Link id")),
    responses((status = 200, description = "Newest first", body = LinkLog),
              (status = 404, description = "No such link"),
              (status = 401, description = "No or wrong bearer token")))]
async fn link_log(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<LinkLog>, Problem> {
    Ok(axum::Json(admin::log(&s.ctx, &id).await?))
}

/// The practices with their health at a glance (from the stored state; no PMS read): one page,
/// searched and filtered, sorted by attention (errors, then warnings, then the oldest change not
/// yet published), with the total.
#[utoipa::path(get, path = "/api/practices", tag = "health", params(PracticesQuery),
    responses((status = 200, description = "One page of practices, and how many match", body = PracticePage),
              (status = 422, description = "An unknown filter, or a page out of range"),
              (status = 401, description = "No or wrong bearer token")))]
async fn list_practices(
    State(s): State<HttpState>,
    q: Result<Query<PracticesQuery>, QueryRejection>,
) -> Result<Json<PracticePage>, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let list = admin::ListRequest::parse(&q)?;
    Ok(axum::Json(admin::practices_page(&s.ctx, &list).await?))
}

/// Apply an action to every practice the list's search and filter match: resync the
/// configuration or the availability, disable, enable. It runs in the background; follow it at
/// `progress_url`.
#[utoipa::path(post, path = "/api/practices/bulk", tag = "operations", request_body = BulkRequest,
    responses((status = 202, description = "Started", body = BulkView),
              (status = 422, description = "An unknown action or filter"),
              (status = 401, description = "No or wrong bearer token")))]
async fn start_bulk(
    State(s): State<HttpState>,
    body: Bytes,
) -> Result<(StatusCode, Json<BulkView>), Problem> {
    let req: BulkRequest = json_body(&body)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(audit_log::start_bulk(s.ctx.clone(), &s.actor, &req).await?),
    ))
}

/// A bulk action's progress.
#[utoipa::path(get, path = "/api/practices/bulk/{id}", tag = "operations",
    params(("id" = String, Path, description = "Bulk action id")),
    responses((status = 200, description = "Where it is", body = BulkView),
              (status = 404, description = "No such bulk action"),
              (status = 401, description = "No or wrong bearer token")))]
async fn bulk_progress(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<BulkView>, Problem> {
    Ok(axum::Json(audit_log::bulk(&s.ctx, &id).await?))
}

/// The audit log: operators' actions (who, what, when, on which practices), newest first.
#[utoipa::path(get, path = "/api/audit", tag = "operations", params(AuditQuery),
    responses((status = 200, description = "Newest first", body = [AuditView]),
              (status = 422, description = "`link` is not a link id, or `limit` out of range"),
              (status = 401, description = "No or wrong bearer token")))]
async fn audit(
    State(s): State<HttpState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditView>>, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    Ok(axum::Json(audit_log::audit_log(&s.ctx, &q).await?))
}

/// One practice with its health at a glance.
#[utoipa::path(get, path = "/api/practices/{id}", tag = "health",
    params(("id" = String, Path, description = "Link id")),
    responses((status = 200, description = "The practice", body = PracticeSummary),
              (status = 404, description = "No such link"),
              (status = 401, description = "No or wrong bearer token")))]
async fn get_practice(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<PracticeSummary>, Problem> {
    Ok(axum::Json(admin::practice(&s.ctx, &id).await?))
}

/// The fleet over the last 24 hours, summed over every node that shares the database: practices
/// by health, and per hour bookings by outcome, freshness p50/p99, requests answered close to the
/// marketplace's ten minutes, worker restarts and lease moves.
#[utoipa::path(get, path = "/api/fleet", tag = "health",
    responses((status = 200, description = "The fleet's figures", body = crate::fleet::FleetView),
              (status = 401, description = "No or wrong bearer token")))]
async fn fleet(State(s): State<HttpState>) -> Result<Json<crate::fleet::FleetView>, Problem> {
    Ok(axum::Json(crate::fleet::view(&s.ctx).await?))
}

/// Wake the link each marketplace payload names (the token check made sure it is the link whose
/// callback URL was called), at most once per [`crate::callback::WAKE_INTERVAL`]. A link this node
/// does not work is not woken here.
async fn market_payloads(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<slotbridge_market::types::WebhookPayload>,
) {
    use crate::callback::{Wake, WakeLimiter};
    let limiter = Arc::new(std::sync::Mutex::new(WakeLimiter::default()));
    while let Some(p) = rx.recv().await {
        let Some(link) = p
            .client_id
            .as_deref()
            .and_then(|c| c.parse::<LinkId>().ok())
        else {
            continue;
        };
        let wake = limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(link, Instant::now());
        tracing::debug!(topic = ?p.topic, %link, ?wake, "marketplace webhook");
        match wake {
            Wake::Now => {
                ctx.trigger(link, Trigger::MarketRequests);
            }
            Wake::After(after) => {
                let (ctx, limiter) = (ctx.clone(), limiter.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    limiter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .woken(link, Instant::now());
                    ctx.trigger(link, Trigger::MarketRequests);
                });
            }
            Wake::Folded => {}
        }
    }
}

/// `POST /webhooks/market/{token}`: a token that is not a link's ([`crate::callback`]) is 404 and
/// wakes nothing; a payload naming another link than the token's is refused the same way. The
/// payload then goes to the marketplace receiver (parse, deduplicate, hand off).
async fn market_webhook(
    State(s): State<HttpState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "no such callback (see the subscription's callbackUrl)",
        )
        .into_response()
    };
    let Some(hooks) = &s.ctx.settings.webhooks else {
        return not_found();
    };
    let Some(link) = crate::callback::link_of(&hooks.pms_secret, &token) else {
        return not_found();
    };
    // Bind the payload to the token's link: its clientId is the link (set when missing).
    let body = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut payload)) => {
            match payload.get("clientId").and_then(serde_json::Value::as_str) {
                Some(named) if named != link.to_string() => return not_found(),
                Some(_) => body,
                None => {
                    payload.insert("clientId".into(), link.to_string().into());
                    Bytes::from(serde_json::Value::Object(payload).to_string())
                }
            }
        }
        // Not an object: the receiver answers why.
        _ => body,
    };
    let forwarded = Request::post("/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body));
    match forwarded {
        Ok(req) => match s.market_hooks.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        Err(_) => not_found(),
    }
}

/// `GET /openapi.json`: the admin API's OpenAPI 3.1 document.
async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        openapi().to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            "{}".to_owned()
        })
    });
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}

async fn readyz(State(s): State<HttpState>) -> Result<&'static str, Problem> {
    match s.ctx.store.ping().await {
        Ok(()) => Ok("ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready",
                "the database does not answer",
            ))
        }
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let out = crate::metrics::render(&s.ctx).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn pms_webhook(
    State(s): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let event = match &s.pms_webhook_secret {
        Some(secret) => {
            let h = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            slotbridge_pms::webhook::verify_webhook(
                secret,
                &h("x-signature-timestamp"),
                &h("x-signature"),
                &body,
                Timestamp::now(),
                Duration::from_secs(300),
            )
            .map_err(|e| Problem::new(StatusCode::UNAUTHORIZED, "Bad webhook", e.to_string()))?
        }
        None => slotbridge_pms::webhook::parse_event(&body)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Bad webhook", e.to_string()))?,
    };
    // A patient file changes nothing published; a diary change leaves the setup as read.
    let woken = match slotbridge_pms::ChangeScope::of(&event.kind) {
        slotbridge_pms::ChangeScope::Nothing => 0,
        slotbridge_pms::ChangeScope::Diary => s.ctx.trigger_site(
            &event.siteslug,
            event
                .appointment_day()
                .map_or(Trigger::DiaryChanged, Trigger::DiaryDay),
        ),
        slotbridge_pms::ChangeScope::Setup => {
            s.ctx.trigger_site(&event.siteslug, Trigger::PmsChanged)
        }
    };
    tracing::debug!(site = %event.siteslug, kind = %event.kind, woken, "PMS event");
    Ok(StatusCode::NO_CONTENT)
}
