//! The service's HTTP face: health, metrics, the two webhook receivers (PMS CloudEvents and
//! marketplace payloads) and the admin API for links.
//!
//! Errors are RFC 9457 problem+json. Secrets are write-only: no response carries an API key or
//! a practice key.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use slotbridge_domain::practice::SiteSlug;
use slotbridge_store::{HorizonDays, Link, LinkChanges, LinkId, NewLink, StoreError};
use tokio::sync::mpsc;

use crate::worker::{Ctx, Trigger};

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

/// The router: `/healthz`, `/readyz`, `/metrics`, `/webhooks/pms`, `/webhooks/market` and
/// `/api/links…`.
pub fn router(ctx: Arc<Ctx>, pms_webhook_secret: Option<SecretString>) -> Router {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(market_payloads(ctx.clone(), rx));
    let market_hooks = slotbridge_market::WebhookReceiver::new(tx)
        .handoff_timeout(Duration::from_secs(2))
        .router();
    let state = HttpState {
        ctx,
        pms_webhook_secret,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/pms", post(pms_webhook))
        .route("/api/links", get(list_links).post(create_link))
        .route("/api/links/{id}", get(get_link).patch(update_link))
        .route("/api/links/{id}/resync", post(resync))
        .route("/api/links/{id}/findings", get(findings))
        .route("/api/links/{id}/explain", get(explain))
        .with_state(state)
        .nest("/webhooks/market", market_hooks)
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

async fn metrics(State(s): State<HttpState>) -> Result<Response, Problem> {
    let out = crate::metrics::render(&s.ctx).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
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
    let woken = s.ctx.trigger_site(&event.siteslug, Trigger::PmsChanged);
    tracing::debug!(site = %event.siteslug, kind = %event.kind, woken, "PMS event");
    Ok(StatusCode::NO_CONTENT)
}

/// A link as the admin API shows it: never with its secrets.
#[derive(Debug, Serialize, Deserialize)]
pub struct LinkView {
    /// Link id.
    pub id: String,
    /// PMS site slug.
    pub site_slug: String,
    /// Marketplace practice id.
    pub practice_id: String,
    /// Whether it publishes and takes bookings.
    pub enabled: bool,
    /// Publishing horizon in days.
    pub horizon_days: i64,
    /// Bumped when the practice id changes.
    pub generation: i64,
    /// Whether a PMS API key and a practice key are set (they are write-only).
    pub secrets_set: bool,
}

impl From<&Link> for LinkView {
    fn from(l: &Link) -> Self {
        LinkView {
            id: l.id.to_string(),
            site_slug: l.site_slug.as_str().to_owned(),
            practice_id: l.market_practice_id.clone(),
            enabled: l.enabled,
            horizon_days: l.horizon_days.get(),
            generation: l.generation,
            secrets_set: true,
        }
    }
}

/// `POST /api/links`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    /// PMS site slug.
    pub site_slug: String,
    /// PMS API key (write-only).
    pub pms_api_key: String,
    /// Marketplace practice id.
    pub practice_id: String,
    /// Marketplace practice key (write-only).
    pub practice_key: String,
    /// Publishing horizon, 1..=90 (default 30).
    #[serde(default)]
    pub horizon_days: Option<i64>,
    /// Start enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
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

fn link_id(id: &str) -> Result<LinkId, Problem> {
    id.parse()
        .map_err(|e: StoreError| Problem::new(StatusCode::NOT_FOUND, "Not found", e.to_string()))
}

async fn create_link(
    State(s): State<HttpState>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<LinkView>), Problem> {
    let req: CreateLink = json_body(&body)?;
    let site_slug = SiteSlug::parse(&req.site_slug).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input",
            format!("site_slug: {e}"),
        )
    })?;
    let horizon_days = match req.horizon_days {
        Some(d) => HorizonDays::new(d)?,
        None => HorizonDays::DEFAULT,
    };
    for (field, v) in [
        ("pms_api_key", &req.pms_api_key),
        ("practice_id", &req.practice_id),
        ("practice_key", &req.practice_key),
    ] {
        if v.trim().is_empty() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid input",
                format!("{field}: must not be empty"),
            ));
        }
    }
    let link = s
        .ctx
        .store
        .create_link(NewLink {
            site_slug,
            pms_api_key: SecretString::from(req.pms_api_key),
            market_practice_id: req.practice_id,
            market_practice_key: SecretString::from(req.practice_key),
            enabled: req.enabled.unwrap_or(true),
            horizon_days,
        })
        .await?;
    s.ctx.links_changed();
    Ok((StatusCode::CREATED, axum::Json(LinkView::from(&link))))
}

async fn list_links(State(s): State<HttpState>) -> Result<axum::Json<Vec<LinkView>>, Problem> {
    let links = s.ctx.store.list_links().await?;
    Ok(axum::Json(links.iter().map(LinkView::from).collect()))
}

async fn get_link(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<axum::Json<LinkView>, Problem> {
    let id = link_id(&id)?;
    let link =
        s.ctx.store.link(id).await?.ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, "Not found", format!("no link {id}"))
        })?;
    Ok(axum::Json(LinkView::from(&link)))
}

/// `PATCH /api/links/{id}`: any of the fields; secrets are write-only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateLink {
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New marketplace practice id (publishing moves to it).
    pub practice_id: Option<String>,
    /// New marketplace practice key.
    pub practice_key: Option<String>,
    /// New PMS API key.
    pub pms_api_key: Option<String>,
    /// New horizon.
    pub horizon_days: Option<i64>,
}

async fn update_link(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<LinkView>, Problem> {
    let id = link_id(&id)?;
    let req: UpdateLink = json_body(&body)?;
    let changes = LinkChanges {
        enabled: req.enabled,
        market_practice_id: req.practice_id,
        market_practice_key: req.practice_key.map(SecretString::from),
        pms_api_key: req.pms_api_key.map(SecretString::from),
        horizon_days: req.horizon_days.map(HorizonDays::new).transpose()?,
        site_slug: None,
    };
    let link = s.ctx.store.update_link(id, changes).await?;
    // The worker picks up the change: a new practice or a re-enable restarts it with a full
    // configuration send.
    s.ctx.restart(id);
    Ok(axum::Json(LinkView::from(&link)))
}

/// `POST /api/links/{id}/resync`: `{"what": "config" | "availability"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    /// What to resend.
    pub what: String,
}

async fn resync(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let id = link_id(&id)?;
    let req: ResyncRequest = json_body(&body)?;
    let trigger = match req.what.as_str() {
        "config" => Trigger::ResyncConfig,
        "availability" => Trigger::ResyncAvailability,
        other => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid input",
                format!("what: expected \"config\" or \"availability\", found {other:?}"),
            ));
        }
    };
    if s.ctx.trigger(id, trigger) {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(Problem::new(
            StatusCode::CONFLICT,
            "Not running here",
            "the link is disabled or worked by another node; resync there",
        ))
    }
}

async fn load_link(s: &HttpState, id: &str) -> Result<Link, Problem> {
    let id = link_id(id)?;
    s.ctx
        .store
        .link(id)
        .await?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "Not found", format!("no link {id}")))
}

fn pms_problem(e: slotbridge_pms::PmsError) -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "PMS unavailable",
        format!("the PMS could not be read: {e}"),
    )
}

/// `GET /api/links/{id}/findings`: the diagnostics for the link's practice, from a fresh read of
/// the PMS and the link's sync state. When the PMS cannot be read, that is the finding.
async fn findings(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<slotbridge_domain::diagnostics::Finding>>, Problem> {
    use slotbridge_domain::diagnostics::{Consent, HealthView, Input, PmsAuth, diagnose};
    let link = load_link(&s, &id).await?;
    let state = s.ctx.store.sync_state(link.id).await?;
    let now = Timestamp::now();
    let error_kind = state.last_error.as_ref().map(|e| e.kind.as_str());
    let mut health = HealthView {
        pms_auth: match error_kind {
            Some("pms_unauthorized") => PmsAuth::Rejected,
            Some("pms_key_revoked") => PmsAuth::Revoked,
            _ => PmsAuth::Ok,
        },
        pms_reachable: error_kind != Some("pms"),
        pms_error: state
            .last_error
            .as_ref()
            .filter(|_| error_kind == Some("pms"))
            .map(|e| e.message.clone()),
        consent: match state.consent {
            slotbridge_store::ConsentStatus::Granted => Consent::Granted,
            slotbridge_store::ConsentStatus::Withdrawn => Consent::Missing,
            slotbridge_store::ConsentStatus::Unknown => Consent::Unknown,
        },
        market_reachable: error_kind != Some("market"),
        market_error: state
            .last_error
            .as_ref()
            .filter(|_| error_kind == Some("market"))
            .map(|e| e.message.clone()),
        oldest_open_critical_request: None,
        availability_age: state
            .last_publish_at
            .map(|at| jiff::SignedDuration::from_secs(now.duration_since(at).as_secs())),
        availability_stale_after: jiff::SignedDuration::from_mins(30),
        rejected_bookings: Vec::new(),
    };
    for b in s.ctx.store.bookings_for_link(link.id, 50).await? {
        if let Some(reason) = b.reject_reason {
            health
                .rejected_bookings
                .push(slotbridge_domain::diagnostics::RejectedBooking {
                    booking_id: b.booking_id,
                    reason,
                });
        }
    }
    let pms = s.ctx.pms_connector(&link);
    let read = async {
        let setup = slotbridge_pms::PmsConnector::read_setup(&pms).await?;
        let horizon = u32::try_from(link.horizon_days.get()).unwrap_or(30);
        let dates = crate::publisher::horizon_dates(&setup, now, horizon);
        let today = dates
            .first()
            .copied()
            .unwrap_or(jiff::civil::date(2000, 1, 1));
        let end = dates
            .last()
            .and_then(|d| d.tomorrow().ok())
            .unwrap_or(today);
        let diary = slotbridge_pms::PmsConnector::read_diary(&pms, today, end).await?;
        Ok::<_, slotbridge_pms::PmsError>((setup, diary, today, horizon))
    };
    match read.await {
        Ok((setup, diary, today, horizon)) => Ok(axum::Json(diagnose(
            &Input::new(&setup, &diary, today, horizon).with_health(&health),
        ))),
        Err(e) => {
            health.pms_auth = match e {
                slotbridge_pms::PmsError::Unauthorized { .. } => PmsAuth::Rejected,
                slotbridge_pms::PmsError::KeyRevoked { .. } => PmsAuth::Revoked,
                _ => health.pms_auth,
            };
            if health.pms_auth == PmsAuth::Ok {
                health.pms_reachable = false;
                health.pms_error = Some(e.to_string());
            }
            // Without the setup only the health can be judged.
            Ok(axum::Json(slotbridge_domain::diagnostics::diagnose_health(
                &health,
            )))
        }
    }
}

/// Query of `GET /api/links/{id}/explain`.
#[derive(Debug, Deserialize)]
pub struct ExplainQuery {
    /// PMS practitioner id.
    pub practitioner: String,
    /// Practice-local start, `YYYY-MM-DDTHH:MM`.
    pub at: String,
    /// Booking reason id (all reasons when missing).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /api/links/{id}/explain?practitioner=&at=&reason=`: why there is (no) slot then.
async fn explain(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ExplainQuery>,
) -> Result<axum::Json<slotbridge_domain::explain::Explanation>, Problem> {
    let link = load_link(&s, &id).await?;
    let at: jiff::civil::DateTime = q.at.parse().map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input",
            format!(
                "at: expected a practice-local time like 2026-04-07T10:00, found {:?} ({e})",
                q.at
            ),
        )
    })?;
    let pms = s.ctx.pms_connector(&link);
    let horizon = u32::try_from(link.horizon_days.get()).unwrap_or(30);
    let snapshot = slotbridge_pms::read_snapshot(&pms, Timestamp::now(), horizon)
        .await
        .map_err(pms_problem)?;
    let valid = snapshot.validate().map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid PMS data",
            e.to_string(),
        )
    })?;
    slotbridge_domain::explain::explain(&valid, &q.practitioner, at, q.reason.as_deref())
        .map(axum::Json)
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "Not found", e.to_string()))
}
