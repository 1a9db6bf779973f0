//! Operators' actions: who did what, when, on which practices (the audit log), and bulk actions
//! on the practice list's filtered set, run in the background with their progress stored.
//!
//! Every action an operator takes through the admin API or the console is recorded once it
//! succeeded: link create and update (enable, disable, keys, practice, horizon, name), resync,
//! and each bulk action (with every practice it applies to). The actor is the API token (never
//! its value) or the console session (a random label given at login, never the session id).
//!
//! A bulk action (`resync_config`, `resync_availability`, `disable`, `enable`) takes the
//! practices the list's search and filter match when it is asked and records them; its
//! progress (done, failed, the first failures) is stored, so any node can show it.
//!
//! - **Disable and enable** are worked one by one in a background task on the node asked: a
//!   link change reaches the node that works the link through its revision.
//! - **A resync** must wake the worker, which runs on whichever node holds the practice's
//!   lease. The request is stored, one row per practice ([`Store::request_resyncs`]); at each
//!   lease round every node takes the open requests of the links it holds
//!   ([`work_resyncs`]), wakes those workers, and records each practice's end from the
//!   worker's progress, which brings the bulk action's progress up to date. A practice whose
//!   lease moves is taken again by its new node; a practice no node serves waits, shown as
//!   queued.
//!
//! [`Store::request_resyncs`]: slotbridge_store::Store::request_resyncs

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use slotbridge_store::{
    AuditEntry, BulkAction, BulkId, LinkId, NewAuditEntry, PracticeResync, ResyncEnd, StoreError,
};
use utoipa::{IntoParams, ToSchema};

use crate::admin::{self, AdminError, ListRequest, PracticesQuery, ResyncWhat, UpdateLink};
use crate::ctx::{Ctx, ResyncState, Trigger};

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
    /// Resend the configuration (by whichever node works each practice).
    ResyncConfig,
    /// Resend every day of availability (by whichever node works each practice).
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
    /// A resync's practices, each with where it is: the open ones first, then the failed,
    /// then the done; at most 100 (none for disable and enable).
    pub practices: Vec<BulkPracticeView>,
}

/// One practice of a bulk resync.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkPracticeView {
    /// The link id.
    pub link: String,
    /// The practice's name, if known.
    pub name: Option<String>,
    /// The marketplace practice id.
    pub practice_id: String,
    /// `queued` (no node has taken it yet: none holds the practice, or its round is due),
    /// `running` (the node holding it woke its worker), `done` or `failed`.
    pub state: String,
    /// The node that took it.
    pub node: Option<String>,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// Why it failed.
    pub message: Option<String>,
    /// (resource, date) pairs of availability sent, once done.
    pub sent_days: Option<u64>,
    /// (resource, date) pairs in the horizon, once done.
    pub total_days: Option<u64>,
}

impl From<PracticeResync> for BulkPracticeView {
    fn from(r: PracticeResync) -> Self {
        let state = match (&r.finished_at, &r.error, &r.node_id) {
            (Some(_), Some(_), _) => "failed",
            (Some(_), None, _) => "done",
            (None, _, Some(_)) => "running",
            (None, _, None) => "queued",
        };
        BulkPracticeView {
            link: r.link_id.to_string(),
            name: r.name,
            practice_id: r.practice_id,
            state: state.to_owned(),
            node: r.node_id,
            finished_at: r.finished_at.map(|t| t.to_string()),
            message: r.error,
            sent_days: r.sent_days,
            total_days: r.total_days,
        }
    }
}

/// How many practices a bulk resync's view lists.
const BULK_PRACTICES_SHOWN: u32 = 100;

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
            practices: Vec::new(),
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
    let what = match kind {
        BulkKind::ResyncConfig => ResyncWhat::Config,
        BulkKind::ResyncAvailability => ResyncWhat::Availability,
        BulkKind::Disable | BulkKind::Enable => {
            tokio::spawn(run_bulk(ctx, id, kind, links));
            return Ok(BulkView::from(started));
        }
    };
    // Every node takes its practices' requests at its next lease round; this one's runs now.
    ctx.store
        .request_resyncs(id, what.as_str(), &links, ctx.now())
        .await?;
    ctx.links_changed();
    bulk(&ctx, &id.to_string()).await
}

/// How long a woken worker may leave a bulk resync queued before it is woken again (its wake-up
/// may have been lost with a worker that stopped and was started again).
const REQUEUE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Work the open bulk resync requests of the links this node holds: wake each worker (one
/// request per link at a time, the oldest first) and record each end the worker reported.
/// Run after every lease round; what it takes and what ended are written in one transaction
/// each, so a round that wakes thousands of workers costs two writes.
pub async fn work_resyncs(ctx: &Ctx) -> Result<(), StoreError> {
    let node = ctx.settings.node_id.as_str();
    let open = ctx.store.open_resyncs(node).await?;
    if open.is_empty() {
        return Ok(());
    }
    let now = ctx.now();
    let mut handled = std::collections::HashSet::new();
    let (mut taken, mut ended) = (Vec::new(), Vec::new());
    // Those this node took first: a link's next request waits until its current one ended.
    let (mine, others): (Vec<_>, Vec<_>) = open
        .into_iter()
        .partition(|r| r.node_id.as_deref() == Some(node) && r.taken_at.is_some());
    for r in mine.into_iter().chain(others) {
        if !handled.insert(r.link_id) {
            continue;
        }
        let end = |error: Option<String>, days: Option<(u64, u64)>| ResyncEnd {
            bulk: r.bulk_id,
            link: r.link_id,
            error,
            days,
        };
        if !r.enabled {
            ended.push(end(Some(slotbridge_store::RESYNC_DISABLED.into()), None));
            continue;
        }
        if let Some(taken_at) = r.taken_at.filter(|_| r.node_id.as_deref() == Some(node)) {
            match ctx.resync_progress(r.link_id) {
                // The worker's progress of this node's wake-up (or a later one of the same kind).
                Some(p) if p.what == r.what && p.requested_at >= taken_at => match p.state {
                    ResyncState::Done => {
                        ended.push(end(None, Some((p.sent_days as u64, p.total_days as u64))));
                        continue;
                    }
                    ResyncState::Failed => {
                        let why = p.error.unwrap_or_else(|| "the resync failed".into());
                        ended.push(end(Some(why), None));
                        continue;
                    }
                    ResyncState::Running => continue,
                    ResyncState::Queued if now.duration_since(taken_at) < REQUEUE_AFTER => {
                        continue;
                    }
                    ResyncState::Queued => {}
                },
                // Another resync asked since, or none known here: wake the worker again.
                _ => {}
            }
        }
        let trigger = if r.what == "config" {
            Trigger::ResyncConfig
        } else {
            Trigger::ResyncAvailability
        };
        // No worker yet (starting, or in its restart backoff): the next round tries again.
        if ctx.trigger(r.link_id, trigger) {
            let at: Timestamp = ctx
                .resync_progress(r.link_id)
                .map_or(now, |p| p.requested_at);
            tracing::info!(bulk = %r.bulk_id, link = %r.link_id, what = %r.what, "bulk resync: worker woken");
            taken.push((r.bulk_id, r.link_id, at));
        }
    }
    ctx.store.take_resyncs(node, &taken).await?;
    ctx.store.finish_resyncs(now, &ended).await?;
    Ok(())
}

/// Disable or enable `links` one by one, storing the progress.
async fn run_bulk(ctx: Arc<Ctx>, id: BulkId, kind: BulkKind, links: Vec<LinkId>) {
    let (mut done, mut failed) = (0u64, 0u64);
    let mut failures = Vec::new();
    let mut stored = Instant::now();
    for link in links {
        let lid = link.to_string();
        let result = admin::update_link(
            &ctx,
            &lid,
            UpdateLink {
                enabled: Some(kind == BulkKind::Enable),
                ..UpdateLink::default()
            },
        )
        .await
        .map(drop);
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
    let mut view = ctx
        .store
        .bulk(bid)
        .await?
        .map(BulkView::from)
        .ok_or_else(|| AdminError::NotFound(format!("no bulk action {id}")))?;
    if view.action.starts_with("resync_") {
        view.practices = ctx
            .store
            .bulk_resyncs(bid, BULK_PRACTICES_SHOWN)
            .await?
            .into_iter()
            .map(BulkPracticeView::from)
            .collect();
    }
    Ok(view)
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
