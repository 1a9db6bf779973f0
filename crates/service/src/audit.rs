//! Operators' actions: who did what, when, on which practices (the audit log), and bulk actions
//! on the practice list's filtered set, run in the background with their progress stored.
//!
//! Every action an operator takes through the admin API or the console is recorded once it
//! succeeded: link create and update (enable, disable, keys, practice, horizon, name), resync,
//! and each bulk action (with every practice it applies to). The actor is the API token (never
//! its value) or the console session (a random label given at login, never the session id).
//!
//! A bulk action (`resync_config`, `resync_availability`, `disable`, `enable`) takes the
//! practices the list's search and filter match when it is asked, records them, and works them
//! one by one in a background task; its progress (done, failed, the first failures) is stored,
//! so any node can show it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slotbridge_store::{AuditEntry, BulkAction, BulkId, LinkId, NewAuditEntry};
use utoipa::{IntoParams, ToSchema};

use crate::admin::{self, AdminError, ListRequest, PracticesQuery, ResyncWhat, UpdateLink};
use crate::ctx::Ctx;

/// Who acts: shown in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// A caller of the admin API: with the bearer token, or (a node without a token, on
    /// loopback) anyone on this machine.
    pub fn api(token_configured: bool) -> Self {
        Actor(if token_configured {
            "api token".to_owned()
        } else {
            "api (no token, loopback)".to_owned()
        })
    }

    /// A console session, by the label it was given at login.
    pub fn console(session_label: &str) -> Self {
        Actor(format!("console session {session_label}"))
    }

    /// As recorded.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Record an action that succeeded. A failure to record is logged, not returned: the action is
/// done either way.
pub async fn record(ctx: &Ctx, actor: &Actor, action: &str, links: Vec<LinkId>, detail: String) {
    let entry = NewAuditEntry {
        actor: actor.0.clone(),
        action: action.to_owned(),
        links,
        detail,
    };
    if let Err(e) = ctx.store.record_audit(&entry, ctx.now()).await {
        tracing::error!(error = %e, action, "the audit log could not be written");
    }
}

/// A link's id as shown in a view (always a UUID), as the audit log's one practice.
pub fn one_link(id: &str) -> Vec<LinkId> {
    id.parse().into_iter().collect()
}

/// What a link update changed, in words (never a secret's value).
pub fn describe_update(u: &UpdateLink) -> String {
    let mut parts = Vec::new();
    if let Some(e) = u.enabled {
        parts.push(if e { "enabled" } else { "disabled" }.to_owned());
    }
    if let Some(p) = &u.practice_id {
        parts.push(format!("practice_id={}", p.trim()));
    }
    if u.practice_key.is_some() {
        parts.push("practice_key replaced".to_owned());
    }
    if u.pms_api_key.is_some() {
        parts.push("pms_api_key replaced".to_owned());
    }
    if let Some(h) = u.horizon_days {
        parts.push(format!("horizon_days={h}"));
    }
    if let Some(n) = &u.market_name {
        parts.push(format!("market_name={:?}", n.trim()));
    }
    if parts.is_empty() {
        "nothing changed".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One recorded action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// Its place in the log (use as `before` for the next page).
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who: `api token`, `console session <label>`.
    pub actor: String,
    /// What: `link.create`, `link.update`, `link.resync`, `bulk.disable`, …
    pub action: String,
    /// How many practices.
    pub link_count: usize,
    /// The practices (link ids); the first 100 of a larger set.
    pub links: Vec<String>,
    /// In words.
    pub detail: String,
}

/// How many link ids an audit view lists.
const AUDIT_LINKS_SHOWN: usize = 100;

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            seq: e.seq,
            at: e.at.to_string(),
            actor: e.actor,
            action: e.action,
            link_count: e.links.len(),
            links: e
                .links
                .iter()
                .take(AUDIT_LINKS_SHOWN)
                .map(LinkId::to_string)
                .collect(),
            detail: e.detail,
        }
    }
}

/// Query of `GET /api/audit`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only the actions on this link.
    #[serde(default)]
    pub link: Option<String>,
    /// Only entries before this `seq` (the next page).
    #[serde(default)]
    pub before: Option<i64>,
    /// At most this many, 1 to 500 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The audit log, newest first.
pub async fn audit_log(ctx: &Ctx, q: &AuditQuery) -> Result<Vec<AuditView>, AdminError> {
    let link = match q.link.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<LinkId>().map_err(|_| AdminError::Invalid {
            field: "link",
            message: format!("expected a link id (a UUID), found {l:?}"),
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AdminError::Invalid {
            field: "limit",
            message: format!("expected 1 to 500, found {limit}"),
        });
    }
    Ok(ctx
        .store
        .audit_log(link, q.before, limit)
        .await?
        .into_iter()
        .map(AuditView::from)
        .collect())
}

/// What a bulk action does to each practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkKind {
    /// Resend the configuration (this node's workers only).
    ResyncConfig,
    /// Resend every day of availability (this node's workers only).
    ResyncAvailability,
    /// Disable: nothing published, no bookings taken.
    Disable,
    /// Enable.
    Enable,
}

impl BulkKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkKind::ResyncConfig => "resync_config",
            BulkKind::ResyncAvailability => "resync_availability",
            BulkKind::Disable => "disable",
            BulkKind::Enable => "enable",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Result<Self, AdminError> {
        [
            BulkKind::ResyncConfig,
            BulkKind::ResyncAvailability,
            BulkKind::Disable,
            BulkKind::Enable,
        ]
        .into_iter()
        .find(|k| k.as_str() == s.trim())
        .ok_or_else(|| AdminError::Invalid {
            field: "action",
            message: format!(
                "expected resync_config, resync_availability, disable or enable, found {s:?}"
            ),
        })
    }
}

/// `POST /api/practices/bulk`: an action on every practice the list's search and filter match.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `resync_config`, `resync_availability`, `disable` or `enable`.
    pub action: String,
    /// The list's search (as `GET /api/practices?q=`).
    #[serde(default)]
    pub q: Option<String>,
    /// The list's filter (as `GET /api/practices?attention=`).
    #[serde(default)]
    pub attention: Option<String>,
}

/// A bulk action and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkView {
    /// Its id.
    pub id: String,
    /// What it does.
    pub action: String,
    /// The filter it applies to, in words.
    pub filter: String,
    /// Who asked.
    pub actor: String,
    /// Practices it applies to.
    pub total: u64,
    /// Practices done so far (succeeded or failed).
    pub done: u64,
    /// Of those, failed.
    pub failed: u64,
    /// The first failures: practice and why.
    pub failures: Vec<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it finished (RFC 3339).
    pub finished_at: Option<String>,
    /// `running` or `done`.
    pub state: String,
    /// Where to follow it (`GET`).
    pub progress_url: String,
}

impl From<BulkAction> for BulkView {
    fn from(b: BulkAction) -> Self {
        BulkView {
            id: b.id.to_string(),
            action: b.action,
            filter: b.filter,
            actor: b.actor,
            total: b.total,
            done: b.done,
            failed: b.failed,
            failures: b.failures,
            started_at: b.started_at.to_string(),
            state: if b.finished_at.is_some() {
                "done"
            } else {
                "running"
            }
            .to_owned(),
            finished_at: b.finished_at.map(|t| t.to_string()),
            progress_url: format!("/api/practices/bulk/{}", b.id),
        }
    }
}

/// Progress is stored at least this often (and at the end).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Start a bulk action over the practices the search and filter match now; it runs in the
/// background (follow it with [`bulk`]).
pub async fn start_bulk(
    ctx: Arc<Ctx>,
    actor: &Actor,
    req: &BulkRequest,
) -> Result<BulkView, AdminError> {
    let kind = BulkKind::parse(&req.action)?;
    let list = ListRequest::parse(&PracticesQuery {
        q: req.q.clone(),
        attention: req.attention.clone(),
        page: None,
        per_page: None,
    })?;
    let links = admin::matching_links(&ctx, &list).await?;
    let filter = list.describe();
    let started = ctx
        .store
        .create_bulk(
            kind.as_str(),
            &filter,
            actor.as_str(),
            links.len() as u64,
            ctx.now(),
        )
        .await?;
    record(
        &ctx,
        actor,
        &format!("bulk.{}", kind.as_str()),
        links.clone(),
        format!("bulk {} ({filter}): {} practices", started.id, links.len()),
    )
    .await;
    tracing::info!(bulk = %started.id, action = kind.as_str(), practices = links.len(), "bulk action started");
    let id = started.id;
    tokio::spawn(run_bulk(ctx, id, kind, links));
    Ok(BulkView::from(started))
}

async fn run_bulk(ctx: Arc<Ctx>, id: BulkId, kind: BulkKind, links: Vec<LinkId>) {
    let (mut done, mut failed) = (0u64, 0u64);
    let mut failures = Vec::new();
    let mut stored = Instant::now();
    for link in links {
        let lid = link.to_string();
        let result = match kind {
            BulkKind::ResyncConfig => admin::resync(&ctx, &lid, ResyncWhat::Config)
                .await
                .map(drop),
            BulkKind::ResyncAvailability => admin::resync(&ctx, &lid, ResyncWhat::Availability)
                .await
                .map(drop),
            BulkKind::Disable | BulkKind::Enable => admin::update_link(
                &ctx,
                &lid,
                UpdateLink {
                    enabled: Some(kind == BulkKind::Enable),
                    ..UpdateLink::default()
                },
            )
            .await
            .map(drop),
        };
        done += 1;
        if let Err(e) = result {
            failed += 1;
            if failures.len() < slotbridge_store::BULK_FAILURES_KEPT {
                failures.push(format!("{lid}: {e}"));
            }
        }
        if stored.elapsed() >= PROGRESS_EVERY {
            stored = Instant::now();
            if let Err(e) = ctx
                .store
                .update_bulk(id, done, failed, &failures, None)
                .await
            {
                tracing::warn!(bulk = %id, error = %e, "bulk progress not stored");
            }
        }
    }
    if let Err(e) = ctx
        .store
        .update_bulk(id, done, failed, &failures, Some(ctx.now()))
        .await
    {
        tracing::error!(bulk = %id, error = %e, "bulk action's end not stored");
    }
    tracing::info!(bulk = %id, done, failed, "bulk action finished");
}

/// A bulk action and where it is.
pub async fn bulk(ctx: &Ctx, id: &str) -> Result<BulkView, AdminError> {
    let bid: BulkId = id
        .parse()
        .map_err(|_| AdminError::NotFound(format!("no bulk action {id:?}")))?;
    ctx.store
        .bulk(bid)
        .await?
        .map(BulkView::from)
        .ok_or_else(|| AdminError::NotFound(format!("no bulk action {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_kinds_read_back_and_others_are_refused_by_name() {
        for k in [
            BulkKind::ResyncConfig,
            BulkKind::ResyncAvailability,
            BulkKind::Disable,
            BulkKind::Enable,
        ] {
            assert_eq!(BulkKind::parse(k.as_str()).expect("known"), k);
        }
        let e = BulkKind::parse("delete").expect_err("unknown");
        assert!(e.to_string().starts_with("action: "), "{e}");
    }

    #[test]
    fn an_update_is_described_without_its_secrets() {
        let d = describe_update(&UpdateLink {
            enabled: Some(false),
            pms_api_key: Some("very-secret-key".into()),
            horizon_days: Some(14),
            ..UpdateLink::default()
        });
        assert_eq!(d, "disabled, pms_api_key replaced, horizon_days=14");
        assert!(!d.contains("very-secret-key"));
    }
}
