//! The fleet view (`/console/fleet`): practices by health now, and over the last 24 hours,
//! summed over every node, bookings per hour by outcome, freshness p50/p99, requests answered
//! close to the marketplace's ten minutes, worker restarts and lease moves, as hourly charts
//! with a table of the totals.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::svg::{self, Series};
use super::{Authed, Console, error_response, pages};
use crate::fleet::{FleetFigures, FleetView};

/// The page.
pub(super) async fn page(
    State(c): State<Console>,
    Extension(authed): Extension<Authed>,
) -> Response {
    match crate::fleet::view(&c.ctx).await {
        Ok(v) => render(&authed.csrf, &v).into_response(),
        Err(e) => error_response(&e),
    }
}

fn per_hour(v: &FleetView, f: impl Fn(&FleetFigures) -> u64) -> Vec<Option<f64>> {
    v.hours.iter().map(|h| Some(f(h) as f64)).collect()
}

/// The fleet page.
pub fn render(csrf: &str, v: &FleetView) -> Markup {
    let hours: Vec<String> = v
        .hours
        .iter()
        .map(|h| h.start.get(11..16).unwrap_or(&h.start).to_owned())
        .collect();
    let t = &v.totals;
    let p = &v.practices;
    pages::layout(
        "Fleet",
        Some(csrf),
        html! {
            h1 { "Fleet" }
            p class="muted" {
                "The last 24 hours (UTC), summed over " (v.nodes_reporting) " node(s) reporting. Read at "
                (v.at) "."
            }
            section class="card" aria-labelledby="health-h" {
                h2 id="health-h" { "Practices by health" }
                dl class="facts" data-practices=(p.total) {
                    dt { "Healthy" } dd data-health="healthy" { (p.healthy) }
                    dt { "Unhealthy" } dd data-health="unhealthy" { (p.unhealthy) }
                    dt { "Disabled" } dd data-health="disabled" { (p.disabled) }
                    dt { "All" } dd { (p.total) }
                }
                @if p.unhealthy > 0 {
                    p { a href="/console" { "The practice list" } " says why each one is unhealthy." }
                }
            }
            section class="card" aria-labelledby="bookings-h" {
                h2 id="bookings-h" { "Bookings per hour" }
                p {
                    (t.confirmed) " confirmed, " (t.rejected) " rejected, "
                    strong { (t.not_in_diary) " auto-confirmed but not in the diary" } ", "
                    (t.gone) " in the diary whose confirmation the marketplace no longer took."
                }
                (svg::hourly_bars("chart-bookings", "Bookings", &hours, &[
                    Series { name: "confirmed", color: "#1a7f64", values: per_hour(v, |h| h.confirmed) },
                    Series { name: "rejected", color: "#bf8700", values: per_hour(v, |h| h.rejected) },
                    Series { name: "not in diary", color: "#cf222e", values: per_hour(v, |h| h.not_in_diary) },
                    Series { name: "gone", color: "#8c959f", values: per_hour(v, |h| h.gone) },
                ]))
            }
            section class="card" aria-labelledby="freshness-h" {
                h2 id="freshness-h" { "Freshness" }
                p {
                    "From a change in the PMS to its publish: "
                    @match (t.freshness_p50_seconds, t.freshness_p99_seconds) {
                        (Some(p50), Some(p99)) => {
                            "p50 at most " (p50) " s, p99 at most " (p99) " s over "
                            (t.publishes) " publishes."
                        }
                        _ => { "no publish of a PMS change in the last 24 hours." }
                    }
                }
                (svg::hourly_lines("chart-freshness", "Freshness", "s", &hours, &[
                    Series { name: "p50", color: "#0969da", values: v.hours.iter().map(|h| h.freshness_p50_seconds).collect() },
                    Series { name: "p99", color: "#cf222e", values: v.hours.iter().map(|h| h.freshness_p99_seconds).collect() },
                ]))
            }
            section class="card" aria-labelledby="limit-h" {
                h2 id="limit-h" { "Requests close to the 10-minute limit" }
                p {
                    (t.requests_near_limit) " of " (t.requests_answered)
                    " booking requests and updates were answered 8 minutes or more after the \
                     marketplace raised them. Past 10 minutes the marketplace marks the \
                     practice's integration unhealthy."
                }
                (svg::hourly_bars("chart-near-limit", "Requests answered after 8 minutes", &hours, &[
                    Series { name: "after 8 min", color: "#cf222e", values: per_hour(v, |h| h.requests_near_limit) },
                ]))
            }
            section class="card" aria-labelledby="workers-h" {
                h2 id="workers-h" { "Worker restarts and lease moves" }
                p {
                    (t.worker_restarts) " worker restarts; " (t.leases_taken) " leases taken over, "
                    (t.leases_lost) " lost."
                }
                (svg::hourly_bars("chart-workers", "Worker restarts and lease moves", &hours, &[
                    Series { name: "restarts", color: "#cf222e", values: per_hour(v, |h| h.worker_restarts) },
                    Series { name: "leases taken", color: "#0969da", values: per_hour(v, |h| h.leases_taken) },
                    Series { name: "leases lost", color: "#bf8700", values: per_hour(v, |h| h.leases_lost) },
                ]))
            }
            section class="card" aria-labelledby="table-h" {
                h2 id="table-h" { "Per hour" }
                div class="table-wrap" {
                    table class="fleet-hours" {
                        thead { tr {
                            th scope="col" { "Hour" }
                            th scope="col" { "Confirmed" }
                            th scope="col" { "Rejected" }
                            th scope="col" { "Not in diary" }
                            th scope="col" { "Freshness p50 / p99 (s)" }
                            th scope="col" { "After 8 min" }
                            th scope="col" { "Restarts" }
                            th scope="col" { "Leases taken / lost" }
                        } }
                        tbody {
                            @for (label, h) in hours.iter().zip(&v.hours).rev() {
                                tr data-hour=(h.start) {
                                    th scope="row" { (label) }
                                    td { (h.confirmed) }
                                    td { (h.rejected) }
                                    td { (h.not_in_diary) }
                                    td {
                                        @match (h.freshness_p50_seconds, h.freshness_p99_seconds) {
                                            (Some(a), Some(b)) => { (a) " / " (b) }
                                            _ => { "–" }
                                        }
                                    }
                                    td { (h.requests_near_limit) }
                                    td { (h.worker_restarts) }
                                    td { (h.leases_taken) " / " (h.leases_lost) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
