//! The service's HTTP face: health, metrics, the two webhook receivers (PMS CloudEvents and
//! marketplace payloads), the admin API under `/api` with its OpenAPI 3.1 document at
//! `/openapi.json`, and the operator console under `/console`.
//!
//! The admin API's handlers are thin over [`crate::admin`]; they need the bearer token when one is
//! configured. Errors are RFC 9457 problem+json. Secrets are write-only: no response carries an
//! API key or a practice key.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use slotbridge_store::StoreError;
use tokio::sync::mpsc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::{
    self, AdminError, CreateLink, ExplainQuery, ExplanationView, FindingView, LinkLog, LinkView,
    PracticeSummary, ResyncAccepted, ResyncRequest, ResyncWhat, UpdateLink, WeekQuery, WeekView,
};
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
    ctx: Arc<Ctx>,
    pms_webhook_secret: Option<SecretString>,
}

/// A problem+json response.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
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
}

/// The OpenAPI 3.1 document of the admin API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The router: `/healthz`, `/readyz`, `/metrics`, `/webhooks/pms`, `/webhooks/market`, the admin
/// API under `/api` (behind the bearer token when `access` has one), `/openapi.json`, and the
/// console under `/console` (`/` leads there).
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
    };
    let (api, doc) = api().split_for_parts();
    let doc = Arc::new(doc.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialise");
        "{}".to_owned()
    }));
    let api = api.route_layer(middleware::from_fn_with_state(
        Arc::new(access.clone()),
        require_token,
    ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/pms", post(pms_webhook))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .merge(api)
        .with_state(state)
        .nest("/webhooks/market", market_hooks)
        .route("/", get(|| async { Redirect::to("/console") }))
        .merge(crate::console::router(ctx, access))
}

/// `/api/*` needs `Authorization: Bearer <token>` when a token is configured.
async fn require_token(
    State(access): State<Arc<AdminAccess>>,
    req: Request,
    next: Next,
) -> Response {
    if access.token.is_some() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !access.token_matches(given.trim()) {
            let mut r = Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the admin API needs `Authorization: Bearer <admin token>` (config admin_token, \
                 env SLOTBRIDGE_ADMIN_TOKEN)",
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

fn query_problem(e: QueryRejection) -> Problem {
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
    Ok((
        StatusCode::CREATED,
        axum::Json(admin::create_link(&s.ctx, req).await?),
    ))
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
    Ok(axum::Json(admin::update_link(&s.ctx, &id, req).await?))
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
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(admin::resync(&s.ctx, &id, what).await?),
    ))
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

/// Every practice with its health at a glance (from the stored state; no PMS read).
#[utoipa::path(get, path = "/api/practices", tag = "health",
    responses((status = 200, description = "One entry per link", body = [PracticeSummary]),
              (status = 401, description = "No or wrong bearer token")))]
async fn list_practices(State(s): State<HttpState>) -> Result<Json<Vec<PracticeSummary>>, Problem> {
    Ok(axum::Json(admin::practices(&s.ctx).await?))
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

async fn market_payloads(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<slotbridge_market::types::WebhookPayload>,
) {
    while let Some(p) = rx.recv().await {
        ctx.market_payload(&p);
    }
}

async fn readyz(State(s): State<HttpState>) -> Result<&'static str, Problem> {
    s.ctx.store.list_links().await?;
    Ok("ready")
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
