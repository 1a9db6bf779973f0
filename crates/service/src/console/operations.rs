//! The console's bulk actions (on the practice list's filtered set, with progress) and the
//! audit log page. Thin over [`crate::audit`].

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{ago, layout};
use super::{Authed, Console, CsrfChecked, csrf_ok, error_response, forbidden, is_htmx};
use crate::audit::{self, AuditQuery, AuditView, BulkRequest, BulkView};

#[derive(Deserialize)]
pub(super) struct BulkForm {
    #[serde(default)]
    csrf: Option<String>,
    action: String,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    attention: Option<String>,
}

/// `POST /console/bulk`: start the action on the list's filtered set, then show its progress.
pub(super) async fn start_bulk(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    checked: Option<Extension<CsrfChecked>>,
    Form(f): Form<BulkForm>,
) -> Response {
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    let req = BulkRequest {
        action: f.action,
        q: f.q,
        attention: f.attention,
    };
    match audit::start_bulk(c.ctx.clone(), &authed.actor, &req).await {
        Ok(b) => Redirect::to(&format!("/console/bulk/{}", b.id)).into_response(),
        Err(e) => super::list_with_error(&c, &authed, &e).await,
    }
}

/// `GET /console/bulk/{id}`: the bulk action's progress (htmx: the progress region alone, which
/// polls itself every second until the action is done).
pub(super) async fn bulk_page(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let b = match audit::bulk(&c.ctx, &id).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    if is_htmx(&headers) {
        return progress(&b).into_response();
    }
    layout(
        "Bulk action",
        Some(&authed.csrf),
        html! {
            h1 { "Bulk action: " (b.action.replace('_', " ")) }
            p class="muted" { "On the practices matching " code { (b.filter) } ", asked by " (b.actor) " " (ago(Some(&b.started_at))) "." }
            (progress(&b))
            p { a href="/console" { "Back to the practices" } " · " a href="/console/audit" { "Audit log" } }
        },
    )
    .into_response()
}

fn progress(b: &BulkView) -> Markup {
    let running = b.state == "running";
    html! {
        div id="bulk-progress" class="progress card" role="status" aria-live="polite"
            data-state=(b.state)
            hx-get=[running.then(|| format!("/console/bulk/{}", b.id))]
            hx-trigger=[running.then_some("every 1s")]
            hx-swap=[running.then_some("outerHTML")] {
            p {
                span class={"state state-" (b.state)} { (b.state) } ": "
                strong { (b.done) } " of " (b.total) " practice(s) done"
                @if b.failed > 0 { ", " span class="error-text" { (b.failed) " failed" } }
            }
            progress max=(b.total.max(1)) value=(if b.total == 0 { 1 } else { b.done }) aria-label="Practices done" {
                (b.done) " of " (b.total)
            }
            @if !b.practices.is_empty() {
                (practices(b))
            } @else if !b.failures.is_empty() {
                h2 { "Failures" }
                ul class="failures" {
                    @for f in &b.failures { li { (f) } }
                }
            }
        }
    }
}

/// A bulk resync's practices: each with its state and the node that works it.
fn practices(b: &BulkView) -> Markup {
    html! {
        h2 { "Practices" }
        @if b.total > b.practices.len() as u64 {
            p class="muted" { "The first " (b.practices.len()) " of " (b.total) ": those not done yet first, then the failed, then the done." }
        }
        div class="table-wrap" {
            table class="bulk-practices cards" {
                caption class="visually-hidden" { "Each practice's resync" }
                thead { tr {
                    th scope="col" { "Practice" }
                    th scope="col" { "State" }
                    th scope="col" { "Node" }
                    th scope="col" { "Detail" }
                } }
                tbody {
                    @for p in &b.practices {
                        tr data-link=(p.link) data-state=(p.state) {
                            td data-label="Practice" {
                                a href={"/console/practices/" (p.link)} {
                                    (p.name.clone().unwrap_or_else(|| format!("Practice {}", p.practice_id)))
                                }
                            }
                            td data-label="State" { span class={"state state-" (p.state)} { (p.state) } }
                            td data-label="Node" { (p.node.as_deref().unwrap_or("—")) }
                            td data-label="Detail" {
                                @if let Some(m) = &p.message { span class="error-text" { (m) } }
                                @else if let (Some(s), Some(t)) = (p.sent_days, p.total_days) {
                                    @if t > 0 { (s) " of " (t) " practitioner-days sent" }
                                }
                                @else if p.state == "queued" { "waiting for the node that holds the practice" }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct AuditPageQuery {
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    before: Option<i64>,
}

/// How many entries the audit page shows.
const AUDIT_PAGE: u32 = 100;

/// `GET /console/audit`: operators' actions, newest first (of one practice with `?link=`).
pub(super) async fn audit_page(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Query(q): Query<AuditPageQuery>,
) -> Response {
    let query = AuditQuery {
        link: q.link.clone(),
        before: q.before,
        limit: Some(AUDIT_PAGE),
    };
    let entries = match audit::audit_log(&c.ctx, &query).await {
        Ok(e) => e,
        Err(e) => return error_response(&e),
    };
    let older = (entries.len() == AUDIT_PAGE as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    layout(
        "Audit log",
        Some(&authed.csrf),
        html! {
            h1 { "Audit log" }
            p class="muted" { "Who did what, when, on which practices: every operator action through the console or the admin API." }
            (audit_table(&entries))
            @if let Some(seq) = older {
                nav class="pages" aria-label="Pages" {
                    a rel="next" href={"/console/audit?before=" (seq) (q.link.as_deref().map(|l| format!("&link={l}")).unwrap_or_default())} { "Older →" }
                }
            }
        },
    )
    .into_response()
}

fn audit_table(entries: &[AuditView]) -> Markup {
    html! {
        @if entries.is_empty() {
            p { "Nothing recorded yet." }
        } @else {
            div class="table-wrap" {
                table class="audit cards" {
                    caption class="visually-hidden" { "Operator actions, newest first" }
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Who" }
                        th scope="col" { "What" }
                        th scope="col" { "Practices" }
                        th scope="col" { "Detail" }
                    } }
                    tbody {
                        @for e in entries {
                            tr data-action=(e.action) {
                                td data-label="When" { time datetime=(e.at) { (e.at.get(..19).unwrap_or(&e.at).replace('T', " ")) } }
                                td data-label="Who" { (e.actor) }
                                td data-label="What" { code { (e.action) } }
                                td data-label="Practices" {
                                    @if e.link_count == 1 {
                                        @if let Some(l) = e.links.first() { a href={"/console/practices/" (l)} { code { (l.get(..8).unwrap_or(l)) } } }
                                    } @else {
                                        (e.link_count) " practices"
                                    }
                                }
                                td data-label="Detail" { (e.detail) }
                            }
                        }
                    }
                }
            }
        }
    }
}
