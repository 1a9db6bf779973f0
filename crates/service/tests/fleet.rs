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
    // Counted from here: while the link was disabled its lease was free, and either node may
    // have taken it when it was enabled again (a move the fleet counts too).
    let taken = |scraped: &str| {
        scraped
            .lines()
            .find_map(|l| l.strip_prefix("slotbridge_lease_moves_total{direction=\"taken\"} "))
            .map_or(0, |v| v.trim().parse::<u64>().expect("a count"))
    };
    let taken_by_to = taken(&metrics(&w, to).await);
    let taken_in_fleet = view["totals"]["leases_taken"]
        .as_u64()
        .expect("leases_taken");
    w.stop_node(from).await;
    eventually(
        "the other node takes the link over",
        Duration::from_secs(20),
        || async { (holder(&w) == Some(to)).then_some(()) },
    )
    .await;
    let scraped = metrics(&w, to).await;
    assert_eq!(taken(&scraped), taken_by_to + 1, "{scraped}");
    fleet::flush(&w.node_at(to).ctx).await.expect("flush");
    let view = get(&w, to, "/api/fleet").await;
    assert_eq!(
        view["totals"]["leases_taken"].as_u64(),
        Some(taken_in_fleet + 1),
        "{view}"
    );
    assert_eq!(view["totals"]["confirmed"], 1, "{view}");
    assert_eq!(view["totals"]["worker_restarts"], 0, "{view}");
    assert_eq!(hourly_sum(&view, "leases_taken"), taken_in_fleet + 1);
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
async fn a_bulk_resync_asked_on_one_node_is_carried_out_by_the_node_that_works_the_practice_on_sqlite()
 {
    a_bulk_resync_asked_on_one_node_is_carried_out_by_the_node_that_works_the_practice(Db::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_resync_asked_on_one_node_is_carried_out_by_the_node_that_works_the_practice_on_postgres()
 {
    a_bulk_resync_asked_on_one_node_is_carried_out_by_the_node_that_works_the_practice(
        Db::Postgres,
    )
    .await;
}

async fn a_bulk_resync_asked_on_one_node_is_carried_out_by_the_node_that_works_the_practice(
    db: Db,
) {
    let Some(w) = stack(db, 2).await else {
        return;
    };
    w.linked_with_slots(Duration::from_secs(30), 1).await;
    let link = w.first_link().await;
    let working = eventually("a node works the link", Duration::from_secs(30), || async {
        holder(&w)
    })
    .await;
    let asked = 1 - working;
    let working_id = w.node_config_at(working).node_id.clone();
    let slug = w.harbour().slug.clone();
    for action in ["resync_config", "resync_availability"] {
        let reads_before = w.pms_site_requests(&slug).await;
        // Asked on the node that does not work the practice.
        let r = w
            .http
            .post(w.api_at(asked, "/api/practices/bulk"))
            .bearer_auth(TOKEN)
            .json(&json!({ "action": action }))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 202, "{action}");
        let started: Value = r.json().await.expect("json");
        assert_eq!(started["total"], 1, "{started}");
        let url = started["progress_url"].as_str().expect("url").to_owned();
        // Its progress, from the node asked: the practice done by the node that works it.
        let done = eventually("the bulk resync done", Duration::from_secs(30), || async {
            let p = get(&w, asked, &url).await;
            (p["state"] == "done").then_some(p)
        })
        .await;
        assert_eq!(
            (done["done"].as_u64(), done["failed"].as_u64()),
            (Some(1), Some(0)),
            "{done}"
        );
        let practice = &done["practices"][0];
        assert_eq!(practice["link"], link.as_str(), "{done}");
        assert_eq!(practice["state"], "done", "{done}");
        assert_eq!(practice["node"], working_id.as_str(), "{done}");
        assert_eq!(practice["name"], "Harbour Dental", "{done}");
        if action == "resync_availability" {
            let total = practice["total_days"].as_u64().expect("total days");
            assert!(total > 0, "{done}");
            assert_eq!(practice["sent_days"].as_u64(), Some(total), "{done}");
        }
        // The practice's PMS was read again for it.
        let reads_after = w.pms_site_requests(&slug).await;
        assert!(
            reads_after > reads_before,
            "{action}: the PMS was not read again ({reads_before} → {reads_after})"
        );
    }
    // A disabled practice's resync fails at once, naming why.
    w.patch_link(&link, json!({"enabled": false})).await;
    let r = w
        .http
        .post(w.api_at(asked, "/api/practices/bulk"))
        .bearer_auth(TOKEN)
        .json(&json!({ "action": "resync_config" }))
        .send()
        .await
        .expect("post");
    let failed: Value = r.json().await.expect("json");
    assert_eq!(failed["state"], "done", "{failed}");
    assert_eq!(failed["failed"], 1, "{failed}");
    assert_eq!(failed["practices"][0]["state"], "failed", "{failed}");
    // The console's progress page names the practice and its state.
    let id = failed["id"].as_str().expect("id");
    let (status, html) = w.console_page(&format!("/console/bulk/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Harbour Dental"), "{html}");
    assert!(
        html.contains(&format!("data-link=\"{link}\" data-state=\"failed\"")),
        "{html}"
    );
    assert!(html.contains("the link is disabled"), "{html}");
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

/// Put `n` practices in the store as a fleet holds them: each leased by a node that is not
/// running (so the test's node works none of them), a tenth with a last error, a twenty-fifth
/// never published, a seventh published over an hour ago (stale), the rest just published.
async fn seed_fleet(store: &slotbridge_store::Store, n: usize) {
    use secrecy::SecretString;
    use slotbridge_domain::practice::SiteSlug;
    use slotbridge_store::{HorizonDays, NewLink, SyncChanges, SyncError};
    for i in 0..n {
        store
            .create_link(NewLink {
                site_slug: SiteSlug::parse(&format!("sfleet{i}")).expect("slug"),
                pms_api_key: SecretString::from("fleet-pms-key"),
                market_practice_id: format!("fleet-{i}"),
                market_practice_key: SecretString::from("fleet-practice-key"),
                enabled: true,
                horizon_days: HorizonDays::default(),
            })
            .await
            .expect("create link");
    }
    let held = store
        .acquire_leases("seeded-node", n as u32, Duration::from_secs(3600))
        .await
        .expect("leases");
    let now = jiff::Timestamp::now();
    for (i, h) in held.iter().enumerate() {
        let published = match i {
            _ if i % 25 == 0 => None,
            _ if i % 7 == 0 => Some(now - jiff::SignedDuration::from_hours(2)),
            _ => Some(now),
        };
        store
            .update_sync_state(
                &h.lease,
                slotbridge_store::SyncChanges {
                    pms_practice_name: Some(format!("Fleet Dental {i}")),
                    last_publish_at: published,
                    last_error: (i % 10 == 0).then(|| {
                        Some(SyncError {
                            kind: "pms".into(),
                            message: "the PMS did not answer".into(),
                            at: now,
                        })
                    }),
                    ..SyncChanges::default()
                },
            )
            .await
            .expect("sync state");
    }
}

/// How long a `/metrics` scrape, the fleet view and a page of the practice list take with
/// 10,000 practices in the store (docs/performance.md, "Console at 10,000"). A measurement,
/// run by hand: `cargo test -p slotbridge-service --test fleet console_at_10000 -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (docs/performance.md), about a minute per backend"]
async fn console_at_10000_practices() {
    const PRACTICES: usize = 10_000;
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(mut w) = Stack::builder()
            .db(db)
            .nodes(0)
            .harbour(false)
            .link(false)
            .admin(TOKEN, PASSWORD)
            .start()
            .await
        else {
            continue;
        };
        let seeding = std::time::Instant::now();
        seed_fleet(&w.open_store().await, PRACTICES).await;
        eprintln!(
            "{db:?}: {PRACTICES} practices seeded in {:?}",
            seeding.elapsed()
        );
        let mut config = w.config.clone();
        config.max_links = 1;
        w.start_node_with(config).await;
        for path in ["/metrics", "/api/fleet", "/api/practices?per_page=50"] {
            let mut took = Vec::new();
            for _ in 0..7 {
                let started = std::time::Instant::now();
                let r = w
                    .http
                    .get(w.api_at(0, path))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .expect("get");
                assert!(r.status().is_success(), "{path}: {}", r.status());
                let body = r.bytes().await.expect("body");
                took.push((started.elapsed(), body.len()));
            }
            took.sort();
            let (median, bytes) = took[took.len() / 2];
            eprintln!(
                "{db:?} {path}: median {median:?}, fastest {:?}, slowest {:?}, {bytes} bytes",
                took[0].0,
                took[took.len() - 1].0
            );
        }
        let view = get(&w, 0, "/api/fleet").await;
        eprintln!("{db:?} practices: {}", view["practices"]);
    }
}
