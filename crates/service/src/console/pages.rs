//! The console's pages and fragments (maud). Plain HTML forms that work without JavaScript;
//! htmx (when loaded) makes resync progress, the why-no-slot answer and the log refresh in place.

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};

use slotbridge_domain::diagnostics::Code;

use crate::admin::{
    ExplanationView, FindingView, LinkLog, ListRequest, PracticePage, PracticeSummary,
    ResyncProgressView, WeekView,
};

use super::svg;

/// What the practice page shows.
pub struct PracticeView {
    pub summary: PracticeSummary,
    pub findings: Vec<FindingView>,
    pub week: Result<WeekView, String>,
    pub explanation: Option<Result<ExplanationView, String>>,
    pub log: LinkLog,
    pub progress: Option<ResyncProgressView>,
    /// The why-no-slot form's last input: practitioner, at, reason.
    pub explain_input: (Option<String>, Option<String>, Option<String>),
}

pub(super) fn layout(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles": false, "allowEval": false}"#;
                title { (title) " — slotbridge console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/htmx.min.js" defer {}
            }
            body hx-headers=[csrf.map(|t| format!(r#"{{"X-CSRF-Token": "{t}"}}"#))] {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console" { "slotbridge" }
                    @if let Some(t) = csrf {
                        nav aria-label="Main" {
                            a href="/console" { "Practices" }
                            a href="/console/fleet" { "Fleet" }
                            a href="/console/audit" { "Audit log" }
                            form method="post" action="/console/logout" class="inline" {
                                input type="hidden" name="csrf" value=(t);
                                button type="submit" class="link" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// A page with one message.
pub fn message_page(title: &str, message: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p role="alert" { (message) }
            p { a href="/console" { "Back to the practices" } }
        },
    )
}

/// The login page.
pub fn login(pre_csrf: &str, error: Option<&str>, configured: bool) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            h1 { "Log in to the console" }
            @if let Some(e) = error {
                p class="notice error" role="alert" { (e) }
            }
            @if !configured {
                p class="notice warning" {
                    "No console password or admin token is configured on this node. Set "
                    code { "console_password" } " or " code { "admin_token" }
                    " (or SLOTBRIDGE_CONSOLE_PASSWORD / SLOTBRIDGE_ADMIN_TOKEN) and restart."
                }
            }
            form method="post" action="/console/login" class="card narrow" {
                input type="hidden" name="csrf" value=(pre_csrf);
                label for="password" { "Password or admin token" }
                input id="password" name="password" type="password" required
                    autocomplete="current-password" autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

pub(super) fn ago(rfc3339: Option<&str>) -> String {
    let Some(t) = rfc3339.and_then(|t| t.parse::<Timestamp>().ok()) else {
        return "never".into();
    };
    let secs = Timestamp::now().duration_since(t).as_secs().max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn health_badge(p: &PracticeSummary) -> Markup {
    html! {
        @if p.unhealthy.is_empty() {
            span class="badge ok" { "Healthy" }
        } @else {
            span class="badge bad" { "Unhealthy" }
            ul class="flags" aria-label="Why" {
                @for f in &p.unhealthy { li { (f.replace('_', " ")) } }
            }
        }
    }
}

/// What the practice list shows: the page, and the query that made it.
pub struct ListView<'a> {
    /// The page.
    pub page: &'a PracticePage,
    /// Its query.
    pub query: &'a ListRequest,
}

/// The setup finding codes the list can filter by.
const SETUP_CODES: [Code; 11] = [
    Code::StackingOff,
    Code::NoBookingReasons,
    Code::HealthengineReasonMissing,
    Code::HealthengineReasonMisspelt,
    Code::DefaultReasonTooShort,
    Code::DefaultReasonNotAllTypes,
    Code::PractitionerMissingFromReason,
    Code::PractitionerInNoReason,
    Code::DurationMismatch,
    Code::NoSessionsInHorizon,
    Code::NoWindowsInHorizon,
];

/// The list's URL for a page of this query.
fn list_url(q: &ListRequest, page: u32) -> String {
    let enc = |v: &str| -> String { url::form_urlencoded::byte_serialize(v.as_bytes()).collect() };
    let mut out = format!("/console?page={page}&per_page={}", q.per_page);
    if !q.q.is_empty() {
        out.push_str(&format!("&q={}", enc(&q.q)));
    }
    if q.attention != "all" {
        out.push_str(&format!("&attention={}", enc(&q.attention)));
    }
    out
}

/// The practice's name, or its marketplace id while it has none.
fn display_name(p: &PracticeSummary) -> String {
    p.name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("Practice {}", p.link.practice_id))
}

/// Freshness in words: up to date, or how long a change has waited.
fn freshness_text(p: &PracticeSummary) -> Markup {
    let f = &p.freshness;
    html! {
        @if let Some(w) = f.waiting_seconds {
            span class="error-text" data-freshness="waiting" { "Change waiting " (duration_text(w)) }
        } @else if f.up_to_date {
            span data-freshness="up-to-date" { "Up to date" }
        } @else {
            span class="muted" data-freshness="never" { "Never published" }
        }
        @if let Some(l) = f.last_seconds {
            br; span class="muted" { "last change published in " (seconds_text(l)) }
        }
    }
}

fn duration_text(secs: i64) -> String {
    match secs {
        ..=59 => format!("{} s", secs.max(0)),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

fn seconds_text(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else {
        duration_text(secs.round() as i64)
    }
}

/// The practice list: search, filter, pages, and bulk actions on the filtered set.
pub fn practices(csrf: &str, v: &ListView<'_>, flash: Option<&str>, error: Option<&str>) -> Markup {
    let (page, q) = (v.page, v.query);
    let pages = page.total.div_ceil(u64::from(q.per_page)).max(1);
    let filters: [(&str, &str); 4] = [
        ("all", "All practices"),
        ("needs_attention", "Needs attention"),
        ("parked", "Parked"),
        ("disabled", "Disabled"),
    ];
    layout(
        "Practices",
        Some(csrf),
        html! {
            h1 { "Practices" }
            @if let Some(f) = flash { p class="notice ok" role="status" { (f) } }
            @if let Some(e) = error { p class="notice error" role="alert" { (e) } }
            @let unserved = page.items.iter().filter(|p| p.unhealthy.iter().any(|u| u == "not_served")).count();
            @if unserved > 0 {
                p class="notice error" role="alert" data-finding="not-served" {
                    (unserved) " practice(s) are served by no node: nothing is published for them \
                     and their bookings are not written into the diary. Every node is at its \
                     capacity (max_links) or none is running: start another node or raise \
                     max_links."
                }
            }
            form method="get" action="/console" class="search card" role="search" {
                label for="list-q" { "Search" }
                input id="list-q" name="q" type="search" value=(q.q)
                    placeholder="Name, PMS site or marketplace practice id" autocomplete="off";
                label for="list-attention" { "Show" }
                select id="list-attention" name="attention" {
                    @for (value, label) in filters {
                        option value=(value) selected[q.attention == value] { (label) }
                    }
                    optgroup label="With the setup finding" {
                        @for c in SETUP_CODES {
                            option value=(c.as_str()) selected[q.attention == c.as_str()] { (c.as_str()) }
                        }
                    }
                }
                input type="hidden" name="per_page" value=(q.per_page);
                button type="submit" { "Search" }
            }
            p id="list-total" role="status" {
                strong { (page.total) } " practice(s) match"
                @if page.total > 0 { ", sorted by attention: errors, then warnings, then the oldest change not yet published" }
                "."
            }
            @if page.items.is_empty() {
                @if page.total == 0 && q.q.is_empty() && q.attention == "all" {
                    p { "No practice is linked yet. Link one below." }
                } @else {
                    p { "No practice on this page." }
                }
            } @else {
                div class="table-wrap" {
                    table class="practices cards" {
                        caption class="visually-hidden" { "Linked practices and their health" }
                        thead { tr {
                            th scope="col" { "Practice" }
                            th scope="col" { "Health" }
                            th scope="col" { "Findings" }
                            th scope="col" { "Freshness" }
                            th scope="col" { "Last PMS read" }
                            th scope="col" { "Last error" }
                            th scope="col" { "Bookings" }
                        } }
                        tbody {
                            @for p in &page.items {
                                @let errors = p.setup_findings.error + p.health_findings.error;
                                @let warnings = p.setup_findings.warning + p.health_findings.warning;
                                tr data-practice=(p.link.practice_id) data-link=(p.link.id) {
                                    td data-label="Practice" {
                                        a href={"/console/practices/" (p.link.id)} { (display_name(p)) }
                                        br;
                                        span class="muted" { "Marketplace " (p.link.practice_id) " · PMS site " (p.link.site_slug) }
                                        @if !p.link.enabled { " " span class="badge off" { "Disabled" } }
                                    }
                                    td data-label="Health" {
                                        @if !p.unhealthy.is_empty() {
                                            (health_badge(p))
                                        } @else if errors + warnings > 0 {
                                            span class="badge warn" { "Needs attention" }
                                        } @else {
                                            span class="badge ok" { "Healthy" }
                                        }
                                    }
                                    td data-label="Findings" data-errors=(errors) data-warnings=(warnings) {
                                        (errors) " errors, " (warnings) " warnings"
                                        @if !p.setup_finding_codes.is_empty() {
                                            ul class="flags" aria-label="Setup findings" {
                                                @for c in &p.setup_finding_codes { li { code { (c) } } }
                                            }
                                        }
                                    }
                                    td data-label="Freshness" { (freshness_text(p)) }
                                    td data-label="Last PMS read" { (ago(p.last_pms_read_at.as_deref())) }
                                    td data-label="Last error" {
                                        @match &p.last_error {
                                            Some(e) => { span class="error-text" { (e.kind) } ": " (e.message) }
                                            None => { "none" }
                                        }
                                    }
                                    td data-label="Bookings" {
                                        (p.bookings.confirmed) " confirmed, " (p.bookings.rejected) " rejected, "
                                        (p.bookings.in_progress) " in progress"
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav class="pages" aria-label="Pages" {
                    @if q.page > 1 { a rel="prev" href=(list_url(q, q.page - 1)) { "← Previous" } }
                    span { "Page " (q.page) " of " (pages) }
                    @if u64::from(q.page) < pages { a rel="next" href=(list_url(q, q.page + 1)) { "Next →" } }
                }
            }
            @if page.total > 0 {
                section aria-labelledby="bulk-h" class="card" {
                    h2 id="bulk-h" { "Act on these " (page.total) " practice(s)" }
                    p class="muted" { "Applies to every practice the search and filter above match (all pages). Recorded in the audit log." }
                    form method="post" action="/console/bulk" class="inline" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="q" value=(q.q);
                        input type="hidden" name="attention" value=(q.attention);
                        label for="bulk-action" { "Action" }
                        select id="bulk-action" name="action" {
                            option value="resync_config" { "Resync configuration" }
                            option value="resync_availability" { "Resync availability" }
                            option value="disable" { "Disable" }
                            option value="enable" { "Enable" }
                        }
                        button type="submit" { "Apply to " (page.total) " practice(s)" }
                    }
                }
            }
            section aria-labelledby="link-h" class="card" {
                h2 id="link-h" { "Link a practice" }
                form method="post" action="/console/links" class="grid-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="new-kind" { "PMS" }
                    select id="new-kind" name="pms_kind" {
                        option value="exact" selected { "Exact-style: site slug and API key" }
                        option value="cliniko" { "Cliniko: API key and business id" }
                    }
                    label for="new-site" { "PMS site slug (Exact-style)" }
                    input id="new-site" name="site_slug" autocomplete="off";
                    label for="new-business" { "Cliniko business id (Cliniko)" }
                    input id="new-business" name="business_id" inputmode="numeric" autocomplete="off";
                    label for="new-pms-key" { "PMS API key" }
                    input id="new-pms-key" name="pms_api_key" type="password" required autocomplete="off";
                    label for="new-practice" { "Marketplace practice id" }
                    input id="new-practice" name="practice_id" required autocomplete="off";
                    label for="new-market-name" { "Marketplace practice name (optional)" }
                    input id="new-market-name" name="market_name" autocomplete="off";
                    label for="new-practice-key" { "Marketplace practice key" }
                    input id="new-practice-key" name="practice_key" type="password" required autocomplete="off";
                    label for="new-horizon" { "Horizon (days, 1–90)" }
                    input id="new-horizon" name="horizon_days" type="number" min="1" max="90" value="30";
                    button type="submit" { "Link" }
                }
            }
        },
    )
}

fn severity_class(s: &str) -> &'static str {
    match s {
        "error" => "sev-error",
        "warning" => "sev-warning",
        _ => "sev-info",
    }
}

/// The findings section's list.
fn findings(list: &[FindingView]) -> Markup {
    html! {
        @if list.is_empty() {
            p class="notice ok" { "No findings: everything the diagnostics check is in order." }
        } @else {
            ul class="findings" {
                @for f in list {
                    li class={"finding " (severity_class(&f.severity))} data-code=(f.code) {
                        p class="finding-head" {
                            span class={"badge " (severity_class(&f.severity))} { (f.severity.to_uppercase()) }
                            " " code { (f.code) }
                            @if let Some(p) = &f.practitioner { " · practitioner " (p) }
                            @if let Some(r) = &f.reason { " · reason " (r) }
                        }
                        p { (f.explanation) }
                        p class="fix" { strong { "Fix: " } (f.fix) }
                    }
                }
            }
        }
    }
}

/// The resync progress region; polls itself every second while the resync runs.
pub fn resync_progress(
    id: &str,
    progress: Option<&ResyncProgressView>,
    error: Option<&str>,
) -> Markup {
    let polling = progress.is_some_and(|p| !p.finished());
    html! {
        div id="resync-progress" class="progress" role="status" aria-live="polite"
            hx-get=[polling.then(|| format!("/console/practices/{id}/resync"))]
            hx-trigger=[polling.then_some("every 1s")]
            hx-swap=[polling.then_some("outerHTML")]
            data-state=[progress.map(|p| p.state.as_str())] {
            @if let Some(e) = error {
                p class="notice error" role="alert" { (e) }
            }
            @match progress {
                None => { @if error.is_none() { p class="muted" { "No resync asked yet." } } }
                Some(p) => {
                    p {
                        "Resync of " strong { (p.what.as_str()) } ": "
                        span class={"state state-" (p.state)} { (p.state) }
                        " (asked " (ago(Some(&p.requested_at))) ")"
                        @if let (Some(s), Some(t)) = (p.sent_days, p.total_days) {
                            " — " (s) " of " (t) " practitioner-days sent"
                        }
                    }
                    @if let (Some(s), Some(t)) = (p.sent_days, p.total_days) {
                        progress max=(t) value=(s) aria-label="Practitioner-days sent" { (s) " of " (t) }
                    } @else if !p.finished() {
                        progress aria-label="Resync in progress" {}
                    }
                    @if let Some(m) = &p.message { p class="error-text" { (m) } }
                }
            }
        }
    }
}

/// The why-no-slot answer.
pub fn explanation(answer: &Result<ExplanationView, String>) -> Markup {
    html! {
        div id="explain-result" role="status" aria-live="polite" {
            @match answer {
                Err(e) => { p class="notice error" { (e) } }
                Ok(x) => {
                    p class={"answer " (if x.published { "published" } else { "unpublished" })}
                        data-cause=[x.cause.as_deref()] {
                        strong { (x.summary) }
                    }
                    @if !x.reasons.is_empty() {
                        table class="reasons" {
                            caption { "Per booking reason" }
                            thead { tr { th scope="col" { "Reason" } th scope="col" { "Published" } th scope="col" { "Rule" } th scope="col" { "Why" } } }
                            tbody {
                                @for r in &x.reasons {
                                    tr {
                                        td { (r.reason_name) }
                                        td { (if r.published { "yes" } else { "no" }) }
                                        td { (r.cause.as_deref().unwrap_or("—")) }
                                        td { (r.detail) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The request and booking log.
pub fn log(id: &str, log: &LinkLog) -> Markup {
    html! {
        div id="log" {
            button type="button" class="secondary" hx-get={"/console/practices/" (id) "/log"}
                hx-target="#log" hx-swap="outerHTML" { "Refresh the log" }
            h3 { "Bookings" }
            @if log.bookings.is_empty() {
                p class="muted" { "No bookings yet." }
            } @else {
                ul class="bookings" {
                    @for b in &log.bookings {
                        li class={"booking state-" (b.state)} data-booking=(b.booking_id) {
                            p class="booking-head" {
                                a href={"/console/bookings/" (b.booking_id)} { "Booking " strong { (b.booking_id) } } " — "
                                span class={"state state-" (b.state)} { (b.state.replace('_', " ")) }
                                @if let Some(t) = &b.appointment_time { " · " (t) }
                                @if let Some(r) = &b.resource { " · " (r) }
                                @if let Some(t) = &b.appointment_type { " · " (t) }
                            }
                            @if let Some(r) = &b.reject_reason {
                                p class="error-text" { strong { "Rejected: " } (r) }
                            }
                            @if let Some(a) = &b.pms_appointment_id {
                                p class="muted" { "PMS appointment " (a) }
                            }
                            @if let Some(e) = &b.last_error {
                                p class="muted" { "Last error: " (e) }
                            }
                            ol class="transitions" aria-label="Transitions" {
                                @for t in &b.transitions {
                                    li {
                                        time datetime=(t.at) { (t.at.get(11..19).unwrap_or(&t.at)) }
                                        " "
                                        @if let Some(f) = &t.from { (f.replace('_', " ")) " → " }
                                        strong { (t.to.replace('_', " ")) }
                                        ": " (t.reason)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Marketplace requests" }
            @if log.requests.is_empty() {
                p class="muted" { "No requests logged." }
            } @else {
                div class="table-wrap" {
                    table {
                        thead { tr { th scope="col" { "Request" } th scope="col" { "Kind" } th scope="col" { "State" } th scope="col" { "Outcome" } th scope="col" { "Received" } } }
                        tbody {
                            @for r in &log.requests {
                                tr {
                                    td { (r.request_id) }
                                    td { (r.kind) }
                                    td { (r.state) }
                                    td { (r.outcome.as_deref().unwrap_or("—")) @if let Some(d) = &r.detail { ": " (d) } }
                                    td { (ago(Some(&r.received_at))) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn week_section(id: &str, week: &Result<WeekView, String>) -> Markup {
    html! {
        @match week {
            Err(e) => { p class="notice error" { (e) } }
            Ok(w) => {
                @let hours = svg::hour_range(&w.practitioners);
                @let prev = w.start.parse::<jiff::civil::Date>().ok().and_then(|d| d.checked_sub(jiff::Span::new().days(7)).ok());
                @let next = w.start.parse::<jiff::civil::Date>().ok().and_then(|d| d.checked_add(jiff::Span::new().days(7)).ok());
                nav class="week-nav" aria-label="Weeks" {
                    @if let Some(p) = prev { a href={"/console/practices/" (id) "?week=" (p) "#week"} { "← Previous week" } }
                    span { "From " (w.start) " (" (w.timezone) "); published up to " (w.horizon_end) }
                    @if let Some(n) = next { a href={"/console/practices/" (id) "?week=" (n) "#week"} { "Next week →" } }
                }
                @if w.practitioners.is_empty() {
                    p class="muted" { "No practitioner publishes online." }
                }
                div class="grids" {
                    @for p in &w.practitioners {
                        figure class="grid" data-practitioner=(p.id) {
                            figcaption { (p.name) " " span class="muted" { "(" (p.id) ")" } }
                            (svg::week_grid(p, hours, &w.today))
                            @let noted: Vec<_> = p.days.iter().filter(|d| !d.notes.is_empty()).collect();
                            @if !noted.is_empty() {
                                ul class="week-notes" aria-label="Why slots are absent" {
                                    @for d in noted {
                                        @for n in &d.notes { li data-date=(d.date) { (d.date) ": " (n) } }
                                    }
                                }
                            }
                            details {
                                summary { "As text" }
                                ul {
                                    @for d in &p.days {
                                        li {
                                            (d.date) ": "
                                            @if d.closed { "closed" }
                                            @else if d.slots.is_empty() { "no slots" }
                                            @else {
                                                (d.slots.len()) " slots, "
                                                (svg::stretches(d).iter().map(|(a, b, _)| format!("{:02}:{:02}–{:02}:{:02}", a / 60, a % 60, b / 60, b % 60)).collect::<Vec<_>>().join(", "))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The practice page.
pub fn practice(csrf: &str, v: &PracticeView, flash: Option<&str>, error: Option<&str>) -> Markup {
    let s = &v.summary;
    let id = s.link.id.as_str();
    let name = v
        .week
        .as_ref()
        .ok()
        .map(|w| w.practice_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| display_name(s));
    let (ex_practitioner, ex_at, ex_reason) = &v.explain_input;
    layout(
        &name,
        Some(csrf),
        html! {
            h1 { (name) }
            p class="muted" {
                "Marketplace practice " strong { (s.link.practice_id) }
                @if let Some(m) = &s.link.market_name { " (" (m) ")" }
                " · PMS site " strong { (s.link.site_slug) }
                " · link " code { (id) }
            }
            @if let Some(f) = flash { p class="notice ok" role="status" { (f) } }
            @if let Some(e) = error { p class="notice error" role="alert" { (e) } }

            section aria-labelledby="health-h" class="card" {
                h2 id="health-h" { "Health" }
                (health_badge(s))
                dl class="facts" {
                    dt { "Status" } dd { (if s.link.enabled { "Enabled" } else { "Disabled" }) @if s.running_here { " · worked by this node" } }
                    dt { "Last PMS read" } dd { (ago(s.last_pms_read_at.as_deref())) }
                    dt { "Freshness" } dd id="freshness" {
                        (freshness_text(s))
                        @if let Some(p99) = s.freshness.p99_seconds {
                            br; span class="muted" { "p99 over 24 h: " (seconds_text(p99)) " (" (s.freshness.changes_24h) " changes published)" }
                        }
                    }
                    dt { "Last publish" } dd { (ago(s.last_publish_at.as_deref())) }
                    dt { "Last marketplace poll" } dd { (ago(s.last_poll_at.as_deref())) }
                    dt { "Consent" } dd { (s.consent) }
                    dt { "Last error" } dd { @match &s.last_error { Some(e) => { (e.kind) ": " (e.message) " (" (ago(Some(&e.at))) ")" } None => { "none" } } }
                }
                form method="post" action={"/console/practices/" (id) "/enabled"} class="inline" {
                    input type="hidden" name="csrf" value=(csrf);
                    @if s.link.enabled {
                        input type="hidden" name="enabled" value="false";
                        button type="submit" class="danger" { "Disable" }
                    } @else {
                        input type="hidden" name="enabled" value="true";
                        button type="submit" { "Enable" }
                    }
                }
            }

            section id="resync" aria-labelledby="resync-h" class="card" {
                h2 id="resync-h" { "Resync" }
                p class="muted" { "Resend the configuration (practitioners, appointment types) or every day of availability to the marketplace." }
                div class="buttons" {
                    @for (what, label) in [("config", "Resync configuration"), ("availability", "Resync availability")] {
                        form method="post" action={"/console/practices/" (id) "/resync"} class="inline"
                            hx-post={"/console/practices/" (id) "/resync"} hx-target="#resync-progress" hx-swap="outerHTML" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="what" value=(what);
                            button type="submit" { (label) }
                        }
                    }
                }
                (resync_progress(id, v.progress.as_ref(), None))
            }

            section aria-labelledby="findings-h" class="card" {
                h2 id="findings-h" {
                    "Findings "
                    span class="muted" { "(" (v.findings.len()) ")" }
                }
                (findings(&v.findings))
            }

            section id="week" aria-labelledby="week-h" class="card" {
                h2 id="week-h" { "Published availability" }
                (week_section(id, &v.week))
            }

            section id="explain" aria-labelledby="explain-h" class="card" {
                h2 id="explain-h" { "Why is there no slot?" }
                form method="get" action={"/console/practices/" (id) "/explain"} class="grid-form"
                    hx-get={"/console/practices/" (id) "/explain"} hx-target="#explain-result" hx-swap="outerHTML" {
                    label for="ex-practitioner" { "Practitioner" }
                    @match &v.week {
                        Ok(w) if !w.practitioners.is_empty() => {
                            select id="ex-practitioner" name="practitioner" required {
                                @for p in &w.practitioners {
                                    option value=(p.id) selected[ex_practitioner.as_deref() == Some(p.id.as_str())] { (p.name) " (" (p.id) ")" }
                                }
                            }
                        }
                        _ => { input id="ex-practitioner" name="practitioner" required value=[ex_practitioner.as_deref()]; }
                    }
                    label for="ex-at" { "Practice-local start" }
                    input id="ex-at" name="at" type="datetime-local" required value=[ex_at.as_deref()];
                    label for="ex-reason" { "Booking reason" }
                    select id="ex-reason" name="reason" {
                        option value="" { "Every reason" }
                        @if let Ok(w) = &v.week {
                            @for r in &w.reasons {
                                option value=(r.id) selected[ex_reason.as_deref() == Some(r.id.as_str())] { (r.name) }
                            }
                        }
                    }
                    button type="submit" { "Explain" }
                }
                @match &v.explanation {
                    Some(a) => { (explanation(a)) }
                    None => { div id="explain-result" role="status" aria-live="polite" {} }
                }
            }

            section id="lookup" aria-labelledby="lookup-h" class="card" {
                h2 id="lookup-h" { "Find a booking" }
                (super::lookup::search_form(id, csrf, &crate::lookup::LookupQuery::default()))
            }

            section id="log-section" aria-labelledby="log-h" class="card" {
                h2 id="log-h" { "Requests and bookings" }
                (log(id, &v.log))
            }

            section aria-labelledby="settings-h" class="card" {
                h2 id="settings-h" { "Link settings" }
                form method="post" action={"/console/practices/" (id) "/settings"} class="grid-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="set-practice" { "Marketplace practice id" }
                    input id="set-practice" name="practice_id" required value=(s.link.practice_id) autocomplete="off";
                    label for="set-market-name" { "Marketplace practice name" }
                    input id="set-market-name" name="market_name" value=[s.link.market_name.as_deref()] autocomplete="off";
                    label for="set-horizon" { "Horizon (days, 1–90)" }
                    input id="set-horizon" name="horizon_days" type="number" min="1" max="90" value=(s.link.horizon_days);
                    label for="set-pms-key" { "PMS API key" }
                    input id="set-pms-key" name="pms_api_key" type="password" autocomplete="new-password"
                        placeholder="set — type a new one to replace it" aria-describedby="secrets-note";
                    label for="set-practice-key" { "Marketplace practice key" }
                    input id="set-practice-key" name="practice_key" type="password" autocomplete="new-password"
                        placeholder="set — type a new one to replace it" aria-describedby="secrets-note";
                    p id="secrets-note" class="muted full" { "Keys are write-only: they are never shown. Leave a key blank to keep it." }
                    button type="submit" { "Save settings" }
                }
            }
        },
    )
}
