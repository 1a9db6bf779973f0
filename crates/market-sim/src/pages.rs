//! Simple server-rendered pages: the practice admin's side (`/admin`) and the patient's side
//! (`/book`). They call the same model functions as the JSON control API.

use crate::wire::RequestType;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use jiff::{Timestamp, civil::Date};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::{
    App, control, delivery,
    state::{Market, SimError},
};

/// The pages' router.
pub fn router() -> Router<App> {
    Router::new()
        .route("/admin", get(admin_index))
        .route("/admin/practices/{pid}", get(admin_practice))
        .route(
            "/admin/practices/{pid}/practitioners",
            post(admin_add_practitioner),
        )
        .route(
            "/admin/practices/{pid}/practitioners/{prid}/book",
            post(admin_set_book),
        )
        .route(
            "/admin/practices/{pid}/practitioners/{prid}/types",
            post(admin_create_type),
        )
        .route(
            "/admin/practices/{pid}/practitioners/{prid}/types/{tid}/link",
            post(admin_link),
        )
        .route(
            "/admin/practices/{pid}/practitioners/{prid}/refresh",
            post(admin_refresh),
        )
        .route("/admin/practices/{pid}/consents", post(admin_grant))
        .route(
            "/admin/practices/{pid}/consents/{consumer}/revoke",
            post(admin_revoke),
        )
        .route("/book/{pid}", get(book_page).post(book_submit))
        .route("/book/bookings/{id}", get(booking_page))
        .route("/book/bookings/{id}/cancel", post(booking_cancel))
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } }
            body { h1 { (title) } (body) }
        }
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (status, page("Something is not right", html! { p role="alert" { (message) } p { a href="javascript:history.back()" { "Back" } } }))
        .into_response()
}

fn sim_error(e: SimError) -> Response {
    let status = match e {
        SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        SimError::NotFound(_) => StatusCode::NOT_FOUND,
        SimError::Conflict(_) => StatusCode::CONFLICT,
    };
    error_page(status, &e.to_string())
}

async fn admin_index(State(app): State<App>) -> Markup {
    let m = app.lock();
    page(
        "Healthengine Practice Admin (simulated)",
        html! {
            ul { @for p in m.practices.values() { li { a href={"/admin/practices/" (p.id)} { (p.name) " (" (p.id) ")" } } } }
        },
    )
}

fn practice_markup(m: &Market, pid: u64) -> Result<Markup, SimError> {
    let p = m.practice(pid)?;
    Ok(page(
        &format!("{} — Practice Admin", p.name),
        html! {
            p { "Practice ID " strong { (p.id) } " · time zone " (p.timezone) }
            h2 { "API Consumer Consent" }
            table {
                tr { th { "Consumer" } th { "Granted" } th { "State" } th {} }
                @for c in p.consents.values() {
                    tr {
                        td { (c.consumer) } td { (c.granted_at) }
                        td { @if c.revoked_at.is_some() { "revoked" } @else { "active" } }
                        td { @if c.revoked_at.is_none() {
                            form method="post" action={"/admin/practices/" (pid) "/consents/" (c.consumer) "/revoke"} { button { "Revoke" } }
                        } }
                    }
                }
            }
            form method="post" action={"/admin/practices/" (pid) "/consents"} {
                label { "Consumer " select name="consumer" { @for c in m.consumers.keys() { option value=(c) { (c) } } } }
                button { "Grant new consent" }
            }
            h2 { "Manage Practitioners" }
            @for pr in p.practitioners.values() {
                section {
                    h3 { (pr.name) " · " (pr.specialty) }
                    form method="post" action={"/admin/practices/" (pid) "/practitioners/" (pr.id) "/book"} {
                        label { "Appointment book " select name="pms_resource_id" {
                            option value="" { "(none)" }
                            @for r in &p.resources {
                                option value=(r.pms_resource_id) selected[pr.pms_resource_id.as_deref() == Some(r.pms_resource_id.as_str())] { (r.pms_resource_name) }
                            }
                        } }
                        button { "Save appointment book" }
                    }
                    h4 { "Appointment types" }
                    table {
                        tr { th { "Name" } th { "Length" } th { "Linked PMS Appointment" } }
                        @for t in &pr.appointment_types {
                            tr {
                                td { (t.name) }
                                td { @match t.length_minutes { Some(l) => { (l) " min" }, None => { "from the PMS" } } }
                                td { form method="post" action={"/admin/practices/" (pid) "/practitioners/" (pr.id) "/types/" (t.id) "/link"} {
                                    select name="linked" {
                                        option value="" { "(not linked)" }
                                        @for pt in p.appointment_types.iter().filter(|pt| pt.pms_resource_id.is_none() || pt.pms_resource_id == pr.pms_resource_id) {
                                            option value=(pt.pms_appointment_type_id) selected[t.linked_pms_appointment_type_id.as_deref() == Some(pt.pms_appointment_type_id.as_str())] { (pt.pms_appointment_type_name) }
                                        }
                                    }
                                    button { "Link" }
                                } }
                            }
                        }
                    }
                    form method="post" action={"/admin/practices/" (pid) "/practitioners/" (pr.id) "/refresh"} { button { "Refresh linked PMS appointment types" } }
                    form method="post" action={"/admin/practices/" (pid) "/practitioners/" (pr.id) "/types"} {
                        label { "Name " input name="name" required; }
                        label { " Linked PMS Appointment " select name="linked" {
                            option value="" { "(not linked)" }
                            @for pt in &p.appointment_types { option value=(pt.pms_appointment_type_id) { (pt.pms_appointment_type_name) } }
                        } }
                        label { input type="checkbox" name="copy" value="on"; " Give it to the other " (pr.specialty) " practitioners too" }
                        button { "Create new type" }
                    }
                }
            }
            h3 { "Add a practitioner" }
            form method="post" action={"/admin/practices/" (pid) "/practitioners"} {
                label { "Name " input name="name" required; }
                label { " Specialty " input name="specialty" value="Dentist"; }
                label { " Appointment book " select name="pms_resource_id" {
                    option value="" { "(none)" }
                    @for r in &p.resources { option value=(r.pms_resource_id) { (r.pms_resource_name) } }
                } }
                button { "Add practitioner" }
            }
        },
    ))
}

async fn admin_practice(State(app): State<App>, Path(pid): Path<u64>) -> Response {
    practice_markup(&app.lock(), pid)
        .map(IntoResponse::into_response)
        .unwrap_or_else(sim_error)
}

fn back(pid: u64) -> Response {
    Redirect::to(&format!("/admin/practices/{pid}")).into_response()
}

fn opt(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

#[derive(Deserialize)]
struct PractitionerForm {
    name: String,
    #[serde(default)]
    specialty: String,
    #[serde(default)]
    pms_resource_id: String,
}

async fn admin_add_practitioner(
    State(app): State<App>,
    Path(pid): Path<u64>,
    Form(f): Form<PractitionerForm>,
) -> Response {
    let specialty = if f.specialty.trim().is_empty() {
        "Dentist".to_owned()
    } else {
        f.specialty.trim().to_owned()
    };
    match control::add_practitioner_to(
        &mut app.lock(),
        pid,
        &f.name,
        &specialty,
        opt(f.pms_resource_id),
    ) {
        Ok(_) => back(pid),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct BookForm {
    #[serde(default)]
    pms_resource_id: String,
}

async fn admin_set_book(
    State(app): State<App>,
    Path((pid, prid)): Path<(u64, u64)>,
    Form(f): Form<BookForm>,
) -> Response {
    let mut m = app.lock();
    let res = opt(f.pms_resource_id);
    let r = m.practice_mut(pid).and_then(|p| {
        if let Some(r) = &res
            && !p.resources.iter().any(|x| &x.pms_resource_id == r)
        {
            return Err(SimError::Invalid(format!(
                "appointment book {r:?} is not published"
            )));
        }
        let pr = p
            .practitioners
            .get_mut(&prid)
            .ok_or(SimError::NotFound(format!(
                "practitioner {prid} does not exist"
            )))?;
        pr.pms_resource_id = res;
        Ok(())
    });
    r.map(|_| back(pid)).unwrap_or_else(sim_error)
}

#[derive(Deserialize)]
struct TypeForm {
    name: String,
    #[serde(default)]
    linked: String,
    copy: Option<String>,
}

async fn admin_create_type(
    State(app): State<App>,
    Path((pid, prid)): Path<(u64, u64)>,
    Form(f): Form<TypeForm>,
) -> Response {
    match control::create_type_for(
        &mut app.lock(),
        pid,
        prid,
        &f.name,
        None,
        opt(f.linked),
        f.copy.is_some(),
    ) {
        Ok(_) => back(pid),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    linked: String,
}

async fn admin_link(
    State(app): State<App>,
    Path((pid, prid, tid)): Path<(u64, u64, u64)>,
    Form(f): Form<LinkForm>,
) -> Response {
    let mut m = app.lock();
    let linked = opt(f.linked);
    let r = m.practice_mut(pid).and_then(|p| {
        if let Some(l) = &linked
            && !p
                .appointment_types
                .iter()
                .any(|t| &t.pms_appointment_type_id == l)
        {
            return Err(SimError::Invalid(format!(
                "PMS appointment type {l:?} is not published"
            )));
        }
        let pr = p
            .practitioners
            .get_mut(&prid)
            .ok_or(SimError::NotFound(format!(
                "practitioner {prid} does not exist"
            )))?;
        let t = pr
            .appointment_types
            .iter_mut()
            .find(|t| t.id == tid)
            .ok_or(SimError::NotFound(format!("type {tid} does not exist")))?;
        t.linked_pms_appointment_type_id = linked;
        Ok(())
    });
    r.map(|_| back(pid)).unwrap_or_else(sim_error)
}

async fn admin_refresh(State(app): State<App>, Path((pid, _prid)): Path<(u64, u64)>) -> Response {
    let r = app.lock().raise(
        pid,
        RequestType::PmsAppointmentTypes,
        None,
        None,
        None,
        app.now(),
    );
    match r {
        Ok((_, out)) => {
            delivery::spawn(&app, out);
            back(pid)
        }
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    consumer: String,
}

async fn admin_grant(
    State(app): State<App>,
    Path(pid): Path<u64>,
    Form(f): Form<ConsentForm>,
) -> Response {
    match app.lock().grant_consent(pid, &f.consumer, app.now()) {
        Ok(key) => page(
            "Consent granted",
            html! {
                p { "Give these to " (f.consumer) ". The practice key is shown only once." }
                dl { dt { "Practice ID" } dd { (pid) } dt { "Practice key" } dd { code { (key) } } }
                a href={"/admin/practices/" (pid)} { "Back to the practice" }
            },
        )
        .into_response(),
        Err(e) => sim_error(e),
    }
}

async fn admin_revoke(
    State(app): State<App>,
    Path((pid, consumer)): Path<(u64, String)>,
) -> Response {
    match app.lock().revoke_consent(pid, &consumer, app.now()) {
        Ok(()) => back(pid),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct DateQ {
    date: Option<String>,
}

async fn book_page(
    State(app): State<App>,
    Path(pid): Path<u64>,
    Query(q): Query<DateQ>,
) -> Response {
    let mut m = app.lock();
    let now = app.now();
    m.settle(now);
    let Ok(p) = m.practice(pid) else {
        return error_page(StatusCode::NOT_FOUND, "No such practice");
    };
    let today = now.to_zoned_datetime(p.tz.clone()).date();
    let date = match q.date.as_deref().filter(|d| !d.is_empty()) {
        None => today,
        Some(d) => match d.parse::<Date>() {
            Ok(d) => d,
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!("date: expected YYYY-MM-DD, found {d:?}"),
                );
            }
        },
    };
    let name = p.name.clone();
    let tz = p.tz.clone();
    let slots = match m.slots(pid, date, now) {
        Ok(s) => s,
        Err(e) => return sim_error(e),
    };
    patient_day(pid, &name, &tz, today, date, &slots).into_response()
}

/// The patient page's own frame: readable on a phone (375 px), no script.
fn patient_frame(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (maud::PreEscaped(PATIENT_CSS)) }
            }
            body { main { h1 { (title) } (body) } }
        }
    }
}

/// The patient page's style: one column, tap targets of 44 px, times as a wrapping row of
/// buttons; an open time's form takes the whole row.
const PATIENT_CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;background:#f6f8fa}\
main{max-width:40rem;margin:0 auto;padding:.75rem}\
h1{font-size:1.4rem;margin:.25rem 0 .5rem;overflow-wrap:anywhere}\
h2{font-size:1.15rem;margin:0 0 .25rem}\
h3{font-size:.95rem;margin:.6rem 0 .3rem;color:#59636e;font-weight:600}\
.day{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:.5rem}\
.day label{flex:1 1 10rem}\
.day input{display:block;width:100%}\
.day a{padding:.6rem .2rem}\
input,button{font:inherit;min-height:44px}\
input{padding:.35rem .5rem;border:1px solid #8c959f;border-radius:6px;background:#fff}\
button{padding:.4rem 1rem;border:1px solid #0a58ca;border-radius:6px;background:#0a58ca;color:#fff}\
.practitioner{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.75rem;margin:.75rem 0}\
.times{display:flex;flex-wrap:wrap;gap:.4rem;margin:0;padding:0;list-style:none}\
.times>li{flex:0 0 auto}\
.times>li:has(details[open]){flex-basis:100%}\
details>summary{list-style:none;display:inline-block;min-width:4.5rem;min-height:44px;line-height:44px;text-align:center;border:1px solid #0a58ca;border-radius:6px;color:#0a58ca;background:#fff;cursor:pointer;font-variant-numeric:tabular-nums}\
details>summary::-webkit-details-marker{display:none}\
details[open]>summary{background:#0a58ca;color:#fff}\
details form{display:grid;gap:.4rem;margin:.5rem 0;padding:.6rem;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa}\
details label{display:grid;gap:.15rem;font-weight:600}\
details label input{width:100%}\
.muted{color:#59636e}";

/// A day of a practice's slots for a patient: by practitioner, then appointment type, each
/// type's times as a row of buttons that open the booking form.
fn patient_day(
    pid: u64,
    name: &str,
    tz: &jiff::tz::TimeZone,
    today: Date,
    date: Date,
    slots: &[crate::slots::Slot],
) -> Markup {
    use std::collections::BTreeMap;
    /// An id and a name: practitioners and types sort by id (the admin's order).
    type Named<'a> = (u64, &'a str);
    type Types<'a> = BTreeMap<Named<'a>, Vec<&'a crate::slots::Slot>>;
    // Practitioner → type → slots, in time order.
    let mut days: BTreeMap<Named<'_>, Types<'_>> = BTreeMap::new();
    for s in slots {
        days.entry((s.practitioner_id, s.practitioner.as_str()))
            .or_default()
            .entry((s.appointment_type_id, s.appointment_type.as_str()))
            .or_default()
            .push(s);
    }
    for types in days.values_mut() {
        for times in types.values_mut() {
            times.sort_by_key(|s| s.start);
        }
    }
    let step = |days: i8| date.checked_add(jiff::Span::new().days(days)).ok();
    patient_frame(
        &format!("Book at {name}"),
        html! {
            form method="get" class="day" {
                label { "Date " input type="date" name="date" value=(date); }
                button { "Show" }
                @if let Some(prev) = step(-1).filter(|d| *d >= today) {
                    a href={"?date=" (prev)} { "← " (prev.strftime("%a %-d %b")) }
                }
                @if let Some(next) = step(1) {
                    a href={"?date=" (next)} { (next.strftime("%a %-d %b")) " →" }
                }
            }
            @if slots.is_empty() {
                p { "No times available on " (date) "." }
            } @else {
                p class="muted" { (slots.len()) " times on " (date.strftime("%A %-d %B %Y")) " with " (days.len()) " practitioner" @if days.len() != 1 { "s" } "." }
            }
            @for ((prid, practitioner), types) in &days {
                section class="practitioner" data-practitioner=(prid) aria-labelledby={"pr-" (prid)} {
                    h2 id={"pr-" (prid)} { (practitioner) }
                    @for ((tid, appointment_type), times) in types {
                        h3 id={"pr-" (prid) "-t-" (tid)} { (appointment_type) }
                        ul class="times" aria-labelledby={"pr-" (prid) " pr-" (prid) "-t-" (tid)} {
                            @for s in times {
                                @let start = s.start.to_zoned_datetime(tz.clone()).map(|z| z.timestamp().to_string()).unwrap_or_default();
                                li {
                                    details {
                                        summary { (s.start.time().strftime("%H:%M")) }
                                        form method="post" action={"/book/" (pid)} {
                                            input type="hidden" name="practitioner" value=(s.practitioner);
                                            input type="hidden" name="appointment_type" value=(s.appointment_type);
                                            input type="hidden" name="start" value=(start);
                                            p class="muted" { (s.start.time().strftime("%H:%M")) " · " (practitioner) " · " (appointment_type) }
                                            label { "First name" input name="firstname" autocomplete="given-name" required; }
                                            label { "Last name" input name="lastname" autocomplete="family-name" required; }
                                            label { "Date of birth" input type="date" name="dob" autocomplete="bday" required; }
                                            label { "Phone" input type="tel" name="phone" autocomplete="tel"; }
                                            label { "Email" input type="email" name="email" autocomplete="email"; }
                                            button { "Book" }
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

#[derive(Deserialize)]
struct PatientForm {
    practitioner: String,
    appointment_type: String,
    start: String,
    firstname: String,
    lastname: String,
    dob: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
}

async fn book_submit(
    State(app): State<App>,
    Path(pid): Path<u64>,
    Form(f): Form<PatientForm>,
) -> Response {
    let Ok(start) = f.start.parse::<Timestamp>() else {
        return error_page(StatusCode::BAD_REQUEST, "start: not a time");
    };
    let patient = match control::patient_from(
        &f.firstname,
        &f.lastname,
        &f.dob,
        opt(f.phone),
        opt(f.email),
    ) {
        Ok(p) => p,
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Please give a first name, a last name and a date of birth",
            );
        }
    };
    let r = app.lock().book(
        pid,
        &f.practitioner,
        &f.appointment_type,
        start,
        patient,
        None,
        None,
        app.now(),
    );
    match r {
        Ok((id, out)) => {
            delivery::spawn(&app, out);
            Redirect::to(&format!("/book/bookings/{id}")).into_response()
        }
        Err(e) => sim_error(e),
    }
}

async fn booking_page(State(app): State<App>, Path(id): Path<i64>) -> Response {
    let mut m = app.lock();
    m.settle(app.now());
    let Some(b) = m.bookings.get(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such booking");
    };
    let v = control::booking_json(&m, b);
    page(
        &format!("Booking {id}"),
        html! {
            p { "Status: " strong { (v["status"].as_str().unwrap_or("")) } }
            p { (v["practitioner"].as_str().unwrap_or("")) " · " (v["appointment_type"].as_str().unwrap_or("")) " · " (v["start"].as_str().unwrap_or("")) }
            @if b.is_active() {
                form method="post" action={"/book/bookings/" (id) "/cancel"} { button { "Ask to cancel" } }
            }
        },
    )
    .into_response()
}

async fn booking_cancel(State(app): State<App>, Path(id): Path<i64>) -> Response {
    let r = app.lock().patient_cancel(id, app.now());
    match r {
        Ok((_, _, out)) => {
            delivery::spawn(&app, out);
            Redirect::to(&format!("/book/bookings/{id}")).into_response()
        }
        Err(e) => sim_error(e),
    }
}
