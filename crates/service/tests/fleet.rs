//! The fleet view over real HTTP: bookings confirmed and rejected, a lease moved between two
//! nodes sharing one database, each node's counters flushed to the store, and `GET /api/fleet`
//! and `/console/fleet` showing the sums (SQLite and PostgreSQL). Every metric the Grafana
//! dashboard and the alert rules name is one a node exports. The last test opens the fleet page
//! in headless Chromium (tests/browser/fleet.mjs).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use slotbridge_service::fleet;
use slotbridge_testkit::control::apart;
use slotbridge_testkit::{Db, Stack, booking_body, eventually, patient};

const TOKEN: &str = "fleet-test-admin-token-0123456789";
const PASSWORD: &str = "fleet test console password";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn stack(db: Db, nodes: usize) -> Option<Stack> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Stack::builder()
        .db(db)
        .nodes(nodes)
        .node_id("fleet")
        .lease_ttl(Duration::from_secs(2))
        .admin(TOKEN, PASSWORD)
        .http(http)
        .start()
        .await
}

async fn get(w: &Stack, node: usize, path: &str) -> Value {
    let r = w
        .http
        .get(w.api_at(node, path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("json")
}

async fn metrics(w: &Stack, node: usize) -> String {
    let r = w
        .http
        .get(w.api_at(node, "/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get /metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("text")
}

fn book_as(first: &str, slot: &Value) -> Value {
    booking_body(
        slot,
        patient(
            first,
            "Fleet",
            "1980-03-04",
            "0411 222 333",
            &format!("{first}@example.com"),
        ),
    )
}

/// The index of the node working Harbour Dental's link now.
fn holder(w: &Stack) -> Option<usize> {
    w.running()
        .into_iter()
        .find(|(_, links)| !links.is_empty())
        .map(|(i, _)| i)
}

/// The sum of one figure over the view's 24 hours.
fn hourly_sum(view: &Value, field: &str) -> u64 {
    view["hours"]
        .as_array()
        .expect("hours")
        .iter()
        .map(|h| h[field].as_u64().expect(field))
        .sum()
}

async fn bookings_and_a_lease_move_on_two_nodes_reach_the_fleet_view(db: Db) {
    let Some(mut w) = stack(db, 2).await else {
        return;
    };
    let (_day, slots) = w.linked_with_slots(Duration::from_secs(30), 6).await;
    let slots = apart(&slots, 3);
    assert_eq!(slots.len(), 3, "three slots apart");
    let link = w.first_link().await;
    let practice = w.harbour().practice_id.clone();

    // One booking confirmed.
    let first = &slots[0];
    let id = w.book(&practice, &book_as("Ada", first)).await;
    let b = w.answered(id, Duration::from_secs(30)).await;
    assert_eq!(b["status"], "Confirmed", "{b}");

    // One rejected: the slot is taken at the desk while the link is disabled, the patient books
    // it from the stale listing, and the link is enabled again at once.
    let second = &slots[1];
    w.patch_link(&link, json!({"enabled": false})).await;
    w.desk_book(&w.harbour().slug, second).await;
    let id = w.book(&practice, &book_as("Grace", second)).await;
    w.patch_link(&link, json!({"enabled": true})).await;
    let b = w.answered(id, Duration::from_secs(30)).await;
    assert_eq!(b["status"], "Rejected", "{b}");

    // One auto-confirmed but not in the diary: the same, but the marketplace's clock passes its
    // 20 s before the link is enabled again, and it refuses the late rejection.
    let r = w
        .http
        .put(format!(
            "{}/_market/practices/{practice}/settings",
            w.market_url
        ))
        .json(&json!({"refuse_late_answers": true}))
        .send()
        .await
        .expect("settings");
    assert_eq!(r.status(), 204);
    let third = &slots[2];
    w.patch_link(&link, json!({"enabled": false})).await;
    w.desk_book(&w.harbour().slug, third).await;
    let id = w.book(&practice, &book_as("Late", third)).await;
    let r = w
        .http
        .post(format!("{}/_market/clock/advance", w.market_url))
        .json(&json!({"seconds": 25}))
        .send()
        .await
        .expect("clock");
    assert!(r.status().is_success());
    assert_eq!(w.booking(id).await["auto_confirmed"], true);
    w.patch_link(&link, json!({"enabled": true})).await;
    eventually(
        "the late rejection counted as not in the diary",
        Duration::from_secs(30),
        || async {
            let mut all = String::new();
            for i in [0, 1] {
                all.push_str(&metrics(&w, i).await);
            }
            all.contains("slotbridge_bookings_total{outcome=\"not_in_diary\"} 1\n")
                .then_some(())
        },
    )
    .await;

    let from = eventually("a node works the link", Duration::from_secs(20), || async {
        holder(&w)
    })
    .await;
    let to = 1 - from;
    for i in [0, 1] {
        fleet::flush(&w.node_at(i).ctx).await.expect("flush");
    }
    let view = get(&w, to, "/api/fleet").await;
    assert_eq!(view["hours"].as_array().map(Vec::len), Some(24), "{view}");
    assert_eq!(view["totals"]["confirmed"], 1, "{view}");
    assert_eq!(view["totals"]["rejected"], 1, "{view}");
    assert_eq!(view["totals"]["not_in_diary"], 1, "{view}");
    assert_eq!(view["totals"]["requests_near_limit"], 0, "{view}");
    assert!(
        view["totals"]["requests_answered"].as_u64() >= Some(3),
        "{view}"
    );
    assert_eq!(
        hourly_sum(&view, "confirmed"),
        1,
        "the hours add up to the totals"
    );
    assert_eq!(view["practices"]["total"], 1, "{view}");
    // The node that answered the bookings reported them; the other node reads them.
    assert!(view["nodes_reporting"].as_u64() >= Some(1), "{view}");
    // Flushing again adds nothing: each increase is counted once.
    fleet::flush(&w.node_at(from).ctx).await.expect("flush");
    assert_eq!(get(&w, to, "/api/fleet").await["totals"]["confirmed"], 1);

    // The working node stops (its last flush on the way out); the other takes the lease over.
    w.stop_node(from).await;
    eventually(
        "the other node takes the link over",
        Duration::from_secs(20),
        || async { (holder(&w) == Some(to)).then_some(()) },
    )
    .await;
    let scraped = metrics(&w, to).await;
    assert!(
        scraped.contains("slotbridge_lease_moves_total{direction=\"taken\"} 1\n"),
        "{scraped}"
    );
    fleet::flush(&w.node_at(to).ctx).await.expect("flush");
    let view = get(&w, to, "/api/fleet").await;
    assert_eq!(view["totals"]["leases_taken"], 1, "{view}");
    assert_eq!(view["totals"]["confirmed"], 1, "{view}");
    assert_eq!(view["totals"]["worker_restarts"], 0, "{view}");
    assert_eq!(hourly_sum(&view, "leases_taken"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_and_a_lease_move_on_two_nodes_reach_the_fleet_view_on_sqlite() {
    bookings_and_a_lease_move_on_two_nodes_reach_the_fleet_view(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_and_a_lease_move_on_two_nodes_reach_the_fleet_view_on_postgres() {
    bookings_and_a_lease_move_on_two_nodes_reach_the_fleet_view(Db::Postgres).await;
}

/// `slotbridge_…` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("slotbridge_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every name a `/metrics` answer exports, by its `# TYPE` lines: a histogram `h` as
/// `h_bucket`, `h_sum` and `h_count`.
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .flat_map(|(name, kind)| {
            if kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect()
            } else {
                vec![name.to_owned()]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alert_rules_name_is_one_a_node_exports() {
    let Some(w) = stack(Db::Sqlite, 1).await else {
        return;
    };
    let scrape = metrics(&w, 0).await;
    let exported = exported(&scrape);
    assert!(
        exported.contains("slotbridge_bookings_total")
            && exported.contains("slotbridge_request_age_at_answer_seconds_bucket"),
        "{scrape}"
    );
    let dashboard_text =
        std::fs::read_to_string(root().join("deploy/grafana/slotbridge.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 10, "the dashboard's queries: {exprs:?}");
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/slotbridge-rules.yml"))
        .expect("rules");
    for (what, names) in [
        ("the dashboard", metric_names(&exprs.join("\n"))),
        ("the alert rules", metric_names(&rules)),
    ] {
        assert!(!names.is_empty(), "{what} names no metric");
        let unknown: Vec<_> = names.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{what} names metrics no node exports: {unknown:?}\nexported: {exported:?}"
        );
    }
    // The practice-unhealthy alert's gauge: a link whose PMS key is refused is reported by the
    // node, and the fleet view counts it unhealthy.
    let link = w.first_link().await;
    let line = format!("slotbridge_link_unhealthy{{link=\"{link}\"}} 1\n");
    w.linked_with_slots(Duration::from_secs(30), 1).await;
    eventually(
        "the link healthy once published",
        Duration::from_secs(30),
        || async {
            let healthy = get(&w, 0, "/api/fleet").await["practices"]["healthy"] == 1;
            (healthy && !metrics(&w, 0).await.contains(&line)).then_some(())
        },
    )
    .await;
    w.patch_link(&link, json!({"pms_api_key": "not-the-key"}))
        .await;
    eventually(
        "the link reported unhealthy",
        Duration::from_secs(30),
        || async { metrics(&w, 0).await.contains(&line).then_some(()) },
    )
    .await;
    let view = get(&w, 0, "/api/fleet").await;
    assert_eq!(view["practices"]["unhealthy"], 1, "{view}");
    assert_eq!(view["practices"]["healthy"], 0, "{view}");
    // The alert rules cover what the fleet needs.
    for alert in [
        "SlotbridgePracticeUnhealthy",
        "SlotbridgeBookingRejectRatioHigh",
        "SlotbridgeRequestsNearLimit",
        "SlotbridgeWorkersRestarting",
        "SlotbridgeLeasesMovingOften",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_in_headless_chromium_shows_health_and_the_hourly_charts() {
    let Some(browser) = slotbridge_testkit::browser::ready("fleet") else {
        return;
    };
    let Some(w) = stack(Db::Sqlite, 1).await else {
        return;
    };
    let (_day, slots) = w.linked_with_slots(Duration::from_secs(30), 1).await;
    let id = w
        .book(&w.harbour().practice_id, &book_as("Ada", &slots[0]))
        .await;
    let b = w.answered(id, Duration::from_secs(30)).await;
    assert_eq!(b["status"], "Confirmed", "{b}");
    fleet::flush(&w.node().ctx).await.expect("flush");
    // Without a browser first: the page as served.
    let (status, html) = w.console_page("/console/fleet").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 4, "{html}");
    assert!(html.contains("1 confirmed, 0 rejected"), "{html}");
    let shots = root().join("target/fleet-screenshots");
    browser
        .run(
            "fleet.mjs",
            &[
                ("NODE_URL", w.node().url().to_string()),
                ("CONSOLE_PASSWORD", PASSWORD.to_string()),
            ],
            &shots,
            Duration::from_secs(180),
        )
        .await;
    for shot in ["01-fleet", "02-fleet-375px"] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
}
