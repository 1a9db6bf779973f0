//! The console's booking look-up: a search form on the practice page and its own page
//! (`/console/practices/{id}/bookings`), and a booking's page with its history as a timeline
//! (`/console/bookings/{booking_id}`). Thin over [`crate::lookup`].
//!
//! The search is a POST with the session's CSRF token: a patient's surname stays out of URLs
//! (browser history, proxies' access logs). The results and the booking page show the patient's
//! name and date of birth to the logged-in operator; nothing here logs them.

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{ago, layout};
use super::{Authed, Console, CsrfChecked, csrf_ok, error_response, failure, forbidden};
use crate::admin::{self, AdminError};
use crate::lookup::{self, BookingHistoryView, LookupQuery};

/// The search form (on the practice page and the search page), filled with `q`.
pub(super) fn search_form(link: &str, csrf: &str, q: &LookupQuery) -> Markup {
    html! {
        form method="post" action={"/console/practices/" (link) "/bookings"} class="grid-form lookup-form"
            aria-describedby="lookup-note" {
            input type="hidden" name="csrf" value=(csrf);
            label for="lk-booking" { "Marketplace booking id" }
            input id="lk-booking" name="booking" inputmode="numeric" autocomplete="off" value=[q.booking.as_deref()];
            label for="lk-appointment" { "PMS appointment id" }
            input id="lk-appointment" name="appointment" autocomplete="off" value=[q.appointment.as_deref()];
            label for="lk-surname" { "Patient surname" }
            input id="lk-surname" name="surname" autocomplete="off" value=[q.surname.as_deref()];
            p id="lookup-note" class="muted full" {
                "Fill in one or more. A surname is matched whole, whatever its case, accents or punctuation."
            }
            button type="submit" { "Find bookings" }
        }
    }
}

/// An RFC 3339 instant to the second, for reading: `2026-12-01 05:17:06 UTC`.
fn short_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

fn state_badge(state: &str) -> Markup {
    html! { span class={"state state-" (state)} { (state.replace('_', " ")) } }
}

fn patient_name(b: &BookingHistoryView) -> Option<String> {
    let p = b.patient.as_ref()?;
    let name = [p.first_name.as_deref(), p.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

fn search_page(
    csrf: &str,
    summary: &admin::PracticeSummary,
    q: &LookupQuery,
    found: Option<&Result<Vec<BookingHistoryView>, String>>,
) -> Markup {
    let link = summary.link.id.as_str();
    let practice = summary
        .name
        .clone()
        .unwrap_or_else(|| format!("Practice {}", summary.link.practice_id));
    layout(
        &format!("Find a booking — {practice}"),
        Some(csrf),
        html! {
            p { a href={"/console/practices/" (link)} { "← " (practice) } }
            h1 { "Find a booking" }
            section aria-labelledby="lookup-h" class="card" {
                h2 id="lookup-h" class="visually-hidden" { "Search" }
                (search_form(link, csrf, q))
            }
            @match found {
                None => {}
                Some(Err(e)) => { p class="notice error" role="alert" { (e) } }
                Some(Ok(list)) => {
                    section aria-labelledby="found-h" class="card" id="lookup-results" {
                        h2 id="found-h" { "Bookings found " span class="muted" { "(" (list.len()) ")" } }
                        @if list.is_empty() {
                            p class="muted" { "No booking of this practice matches." }
                        } @else {
                            ul class="bookings" {
                                @for b in list {
                                    li class={"booking state-" (b.state)} data-booking=(b.booking_id) {
                                        p class="booking-head" {
                                            a href={"/console/bookings/" (b.booking_id)} { "Booking " strong { (b.booking_id) } }
                                            " — " (state_badge(&b.state))
                                            @if let Some(t) = &b.appointment_time { " · " (t) }
                                        }
                                        p class="muted" {
                                            @if let Some(n) = patient_name(b) { (n) " · " }
                                            @if let Some(a) = &b.pms_appointment_id { "PMS appointment " (a) " · " }
                                            "received " (ago(Some(&b.received_at)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The booking's practice as the console names it: its name, else "Practice {marketplace id}".
fn practice_label(b: &BookingHistoryView) -> String {
    b.practice_name.clone().unwrap_or_else(|| {
        format!(
            "Practice {}",
            b.practice_id.as_deref().unwrap_or(&b.link_id)
        )
    })
}

fn booking_page(csrf: &str, b: &BookingHistoryView) -> Markup {
    let title = format!("Booking {} — {}", b.booking_id, practice_label(b));
    layout(
        &title,
        Some(csrf),
        html! {
            p { a href={"/console/practices/" (b.link_id)} { "← " (practice_label(b)) } }
            h1 { (title) " " (state_badge(&b.state)) }
            section aria-labelledby="booking-h" class="card" data-booking=(b.booking_id) {
                h2 id="booking-h" { "The booking" }
                dl class="facts booking-facts" {
                    dt { "Appointment" } dd { (b.appointment_time.as_deref().unwrap_or("—")) }
                    dt { "PMS resource" } dd { (b.resource.as_deref().unwrap_or("—")) }
                    dt { "Type" } dd { (b.appointment_type.as_deref().unwrap_or("—")) }
                    dt { "Patient" } dd {
                        @match (patient_name(b), &b.patient) {
                            (Some(n), Some(p)) => { (n) @if let Some(d) = &p.dob { " · born " (d) } }
                            _ => { span class="muted" { "not kept (the request was purged after the retention period)" } }
                        }
                    }
                    dt { "Patient file" } dd {
                        @match &b.pms_patient_id {
                            Some(p) => { (p) @if let Some(m) = &b.patient_match { " (" (m) ")" } }
                            None => { "—" }
                        }
                    }
                    dt { "PMS appointment" } dd { (b.pms_appointment_id.as_deref().unwrap_or("not in the diary")) }
                    dt { "Attempts" } dd {
                        (b.attempts)
                        @if let Some(n) = &b.next_attempt_at { " · next " time datetime=(n) { (short_time(n)) } }
                    }
                    @if let Some(r) = &b.reject_reason { dt { "Rejected" } dd class="error-text" { (r) } }
                    @if let Some(e) = &b.last_error { dt { "Last error" } dd { (e) } }
                    @if let Some(c) = &b.appointment_change { dt { "Marketplace told" } dd { (c.replace('_', " ")) } }
                    @if let Some(c) = &b.cancelled_at { dt { "Cancellation reported" } dd { (ago(Some(c))) } }
                    @if let Some(o) = &b.late_outcome { dt { "Late outcome" } dd class="error-text" { (o) } }
                    dt { "Received" } dd { time datetime=(b.received_at) { (short_time(&b.received_at)) } }
                    dt { "Practice" } dd class="practice-name" { (practice_label(b)) }
                    dt { "Marketplace practice" } dd { (b.practice_id.as_deref().unwrap_or("—")) }
                }
            }
            section aria-labelledby="history-h" class="card" {
                h2 id="history-h" { "History" }
                ol class="timeline" {
                    @for e in &b.history {
                        li class={"kind-" (serde_plain(&e.kind))} data-kind=(serde_plain(&e.kind)) {
                            time datetime=(e.at) { (short_time(&e.at)) }
                            " "
                            strong { (e.kind.label()) }
                            " · "
                            @if let Some(f) = &e.from { @if f != &e.to { (f.replace('_', " ")) " → " } }
                            (e.to.replace('_', " "))
                            p { (e.reason) }
                        }
                    }
                }
            }
        },
    )
}

/// The kind's JSON name (`request`, `diary`, …), for classes and data attributes.
fn serde_plain(kind: &lookup::HistoryKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET /console/practices/{id}/bookings`: the search form.
pub(super) async fn search(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
) -> Response {
    match admin::practice(&c.ctx, &id).await {
        Ok(s) => search_page(&authed.csrf, &s, &LookupQuery::default(), None).into_response(),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    booking: Option<String>,
    #[serde(default)]
    appointment: Option<String>,
    #[serde(default)]
    surname: Option<String>,
}

/// `POST /console/practices/{id}/bookings`: the bookings found, under the form.
pub(super) async fn find(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
    checked: Option<Extension<CsrfChecked>>,
    Form(f): Form<SearchForm>,
) -> Response {
    if !csrf_ok(&checked, &authed, f.csrf.as_deref()) {
        return forbidden();
    }
    let summary = match admin::practice(&c.ctx, &id).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let q = LookupQuery {
        booking: f.booking,
        appointment: f.appointment,
        surname: f.surname,
    };
    match lookup::find(&c.ctx, &id, &q).await {
        Ok(list) => search_page(&authed.csrf, &summary, &q, Some(&Ok(list))).into_response(),
        Err(e @ (AdminError::Invalid { .. } | AdminError::NotFound(_))) => {
            let (status, text) = failure(&e);
            (
                status,
                search_page(&authed.csrf, &summary, &q, Some(&Err(text))),
            )
                .into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `GET /console/bookings/{booking_id}`: one booking and its history.
pub(super) async fn booking(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
    Path(id): Path<String>,
) -> Response {
    match lookup::booking(&c.ctx, &id).await {
        Ok(b) => booking_page(&authed.csrf, &b).into_response(),
        Err(e) => {
            let (status, text) = failure(&e);
            if status == StatusCode::NOT_FOUND {
                return (status, super::pages::message_page("No such booking", &text))
                    .into_response();
            }
            error_response(&e)
        }
    }
}
