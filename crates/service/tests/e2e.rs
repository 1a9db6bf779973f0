//! End to end over real HTTP: both simulators and one slotbridge node, SQLite in a temporary
//! directory. Named after the suggested-testing.md scenarios and the acceptance checks.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use slotbridge_market_sim::MarketSim;
use slotbridge_pms_sim::{DEMO_API_KEY, DEMO_SLUG, PmsSim};
use slotbridge_service::node::{Node, NodeConfig};
use slotbridge_store::Keyring;
use tokio::net::TcpListener;

const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

struct World {
    http: reqwest::Client,
    pms: String,
    market: String,
    node: String,
    practice_id: String,
    /// Every marketplace API call the node made, one JSON line each.
    record: std::path::PathBuf,
    _dir: tempfile::TempDir,
    first_node: Node,
    /// The first node's configuration, to start more nodes on the same database.
    config: NodeConfig,
    /// (server URL, database name) of a PostgreSQL database to drop afterwards.
    pg: Option<(String, String)>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg {
            let _ = std::process::Command::new("psql")
                .arg(base)
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

/// Where a test's database lives.
#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// A fresh PostgreSQL database for one test, or `None` (visibly skipped) when no server answers
/// and CI is unset. Under CI a missing server fails the test.
fn fresh_postgres() -> Option<(String, String, String)> {
    let base = std::env::var("SLOTBRIDGE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!(
        "slotbridge_e2e_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_microsecond()
    );
    let created = std::process::Command::new("psql")
        .arg(&base)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output();
    match created {
        Ok(out) if out.status.success() => {
            let (root, _) = base.rsplit_once('/').expect("database URL has a path");
            Some((format!("{root}/{name}"), base.clone(), name))
        }
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but PostgreSQL at {base} cannot be used: {why}"
            );
            eprintln!("SKIPPED (PostgreSQL at {base} unavailable, CI unset): {why}");
            None
        }
    }
}

async fn world() -> World {
    world_on(Db::Sqlite).await.expect("sqlite world")
}

async fn world_on(db: Db) -> Option<World> {
    let pms_sim = PmsSim::builder().build();
    let pms = pms_sim
        .serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("pms sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("market-calls.jsonl");
    let market_sim = MarketSim::builder()
        .consumer("slotbridge", "test-api-key")
        .record(record.clone())
        .build()
        .expect("market sim");
    let (practice_id, practice_key) = market_sim
        .create_practice("Harbour Dental", "Australia/Sydney", "slotbridge")
        .expect("practice");
    let market = market_sim
        .serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
        .await
        .expect("serve market");
    let (database_url, pg) = match db {
        Db::Sqlite => (
            format!("sqlite://{}/slotbridge.db?mode=rwc", dir.path().display()),
            None,
        ),
        Db::Postgres => {
            let (url, base, name) = fresh_postgres()?;
            (url, Some((base, name)))
        }
    };
    let config = NodeConfig {
        database_url,
        market_url: market.api_url(),
        market_api_key: SecretString::from("test-api-key"),
        user_agent: "slotbridge (test@slotbridge.example) DEV".into(),
        pms_url: pms.base_url().parse().expect("url"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        node_id: "test-node".into(),
        poll_interval: Duration::from_millis(500),
        lease_ttl: Duration::from_secs(4),
        pms_webhook_secret: None,
        public_url: None,
        clock_offset: jiff::SignedDuration::ZERO,
    };
    let node = Node::start(config.clone(), Keyring::parse(KEY).expect("key"))
        .await
        .expect("node");
    let w = World {
        http: reqwest::Client::new(),
        pms: pms.base_url(),
        market: market.base_url(),
        node: node.url(),
        practice_id: practice_id.clone(),
        record,
        _dir: dir,
        first_node: node,
        config,
        pg,
    };
    // The sims must outlive the test: keep their handles alive by leaking them into tasks.
    std::mem::forget(pms);
    std::mem::forget(market);
    let r = w
        .http
        .post(format!("{}/api/links", w.node))
        .json(&json!({
            "site_slug": DEMO_SLUG,
            "pms_api_key": DEMO_API_KEY,
            "practice_id": practice_id,
            "practice_key": practice_key,
        }))
        .send()
        .await
        .expect("create link");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    Some(w)
}

async fn get(w: &World, url: String) -> Value {
    w.http
        .get(url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes config, links every practitioner on the marketplace, and returns the slots of the
/// first day that has any.
async fn linked_with_slots(w: &World) -> (String, Vec<Value>) {
    let practice = format!("{}/_market/practices/{}", w.market, w.practice_id);
    eventually(
        "configuration published",
        Duration::from_secs(20),
        || async {
            let p = get(w, practice.clone()).await;
            let resources = p["pms_resources"].as_array().map(Vec::len).unwrap_or(0);
            let types = p["pms_appointment_types"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            (resources > 0 && types > 0).then_some(p)
        },
    )
    .await;
    let r = w
        .http
        .post(format!("{practice}/auto-link"))
        .send()
        .await
        .expect("auto-link");
    assert!(r.status().is_success());
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    eventually("bookable slots", Duration::from_secs(20), || async {
        for n in 1..10 {
            let day = today + jiff::Span::new().days(n);
            let slots = get(w, format!("{practice}/slots?date={day}")).await;
            if let Some(a) = slots.as_array().filter(|a| a.len() > 2) {
                return Some(json!([day.to_string(), a]));
            }
        }
        None
    })
    .await
    .as_array()
    .map(|v| {
        (
            v[0].as_str().unwrap_or_default().to_owned(),
            v[1].as_array().cloned().unwrap_or_default(),
        )
    })
    .expect("slots")
}

async fn linking_the_pms_account_with_a_practice_publishes_configuration_and_availability(
    w: World,
) {
    let (_day, slots) = linked_with_slots(&w).await;
    assert!(
        slots
            .iter()
            .all(|s| s["start"].as_str().is_some_and(|t| t.contains('+')))
    );
    let p = get(
        &w,
        format!("{}/_market/practices/{}", w.market, w.practice_id),
    )
    .await;
    assert!(p["liveness_contract"].is_object(), "{p}");
}

async fn a_desk_booking_disappears_from_the_marketplace_within_5_seconds(w: World) {
    let (day, slots) = linked_with_slots(&w).await;
    let slot = &slots[0];
    let resource = slot["pms_resource_id"].as_str().expect("resource");
    let practitioner = resource.split(':').next().expect("practitioner");
    let r = w
        .http
        .post(format!("{}/_desk/sites/{DEMO_SLUG}/appointments", w.pms))
        .json(&json!({"practitioner": practitioner, "start": slot["start"], "end": slot["end"]}))
        .send()
        .await
        .expect("desk");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let url = format!(
        "{}/_market/practices/{}/slots?date={day}",
        w.market, w.practice_id
    );
    eventually(
        "the desk booking's slot is gone",
        Duration::from_secs(5),
        || async {
            let now = get(&w, url.clone()).await;
            let still = now.as_array().is_some_and(|a| {
                a.iter().any(|s| {
                    s["pms_resource_id"] == slot["pms_resource_id"] && s["start"] == slot["start"]
                })
            });
            (!still).then_some(now)
        },
    )
    .await;
}

async fn a_marketplace_booking_ends_confirmed_and_is_in_the_diary_exactly_once(w: World) {
    let (day, slots) = linked_with_slots(&w).await;
    let slot = slots.last().expect("slot");
    let id = book(&w, &w.practice_id, slot, "Ada").await;
    let status = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = get(&w, format!("{}/_market/bookings/{id}", w.market)).await;
        (b["status"] != "Requested").then_some(b)
    })
    .await;
    assert_eq!(status["status"], "Confirmed", "{status}");
    assert_eq!(
        status["auto_confirmed"], false,
        "confirmed by the integration: {status}"
    );
    let diary = get(
        &w,
        format!("{}/_desk/sites/{DEMO_SLUG}/appointments?date={day}", w.pms),
    )
    .await;
    let mine: Vec<&Value> = diary
        .as_array()
        .expect("diary")
        .iter()
        .filter(|a| a["external_ref"] == format!("HE-{id}"))
        .collect();
    assert_eq!(mine.len(), 1, "{diary}");
    assert!(mine[0]["notes"].as_str().is_some_and(|n| n.contains(&id)));
}

async fn a_patients_online_cancellation_is_refused_with_the_call_the_practice_answer(w: World) {
    let (_day, slots) = linked_with_slots(&w).await;
    let id = book(&w, &w.practice_id, &slots[1], "Grace").await;
    eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = get(&w, format!("{}/_market/bookings/{id}", w.market)).await;
        (b["status"] == "Confirmed").then_some(b)
    })
    .await;
    let r = w
        .http
        .post(format!("{}/_market/bookings/{id}/cancel", w.market))
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let b = eventually("cancellation answered", Duration::from_secs(20), || async {
        let b = get(&w, format!("{}/_market/bookings/{id}", w.market)).await;
        let answered = b["updates"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| !u["resolution"].is_null()));
        answered.then_some(b)
    })
    .await;
    assert_eq!(b["status"], "Confirmed", "the appointment stays: {b}");
    assert!(b.to_string().contains("call the practice"), "{b}");
}

async fn the_admin_api_explains_findings_and_missing_slots(w: World) {
    let (day, slots) = linked_with_slots(&w).await;
    let links = get(&w, format!("{}/api/links", w.node)).await;
    let link = links[0]["id"].as_str().expect("link id").to_owned();
    assert!(
        !links.to_string().contains(DEMO_API_KEY),
        "secrets are write-only"
    );
    let findings = get(&w, format!("{}/api/links/{link}/findings", w.node)).await;
    let findings = findings.as_array().expect("findings");
    assert!(
        findings.iter().all(|f| f["severity"] != "error"),
        "the demo practice is healthy: {findings:?}"
    );
    // A published slot is explained as published.
    let slot = &slots[0];
    let practitioner = slot["pms_resource_id"]
        .as_str()
        .and_then(|r| r.split(':').next())
        .expect("practitioner")
        .to_owned();
    let local = slot["start"].as_str().expect("start")[..16].to_owned();
    let e = get(
        &w,
        format!(
            "{}/api/links/{link}/explain?practitioner={practitioner}&at={local}",
            w.node
        ),
    )
    .await;
    assert_eq!(e["published"], true, "{e}");
    // 03:00 is outside anyone's sessions.
    let e = get(
        &w,
        format!(
            "{}/api/links/{link}/explain?practitioner={practitioner}&at={day}T03:00",
            w.node
        ),
    )
    .await;
    assert_eq!(e["published"], false, "{e}");
    assert_eq!(e["cause"], "outside_sessions", "{e}");
    // Bad input names the field.
    let r = w
        .http
        .get(format!(
            "{}/api/links/{link}/explain?practitioner=x&at=tuesday",
            w.node
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap_or_default().contains("at:"));
}

// ---- suggested-testing.md: linking, configuration and availability ---------------------------

/// A new marketplace practice with consent for our consumer: `(practice_id, practice_key)`.
async fn market_practice(w: &World, name: &str) -> (String, String) {
    let r = w
        .http
        .post(format!("{}/_market/practices", w.market))
        .json(&json!({"name": name, "timezone": "Australia/Sydney", "consumer": "slotbridge"}))
        .send()
        .await
        .expect("create practice");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    (
        v["practice_id"].as_str().expect("id").to_owned(),
        v["practice_key"].as_str().expect("key").to_owned(),
    )
}

async fn create_link(w: &World, practice_id: &str, practice_key: &str) -> String {
    let r = w
        .http
        .post(format!("{}/api/links", w.node))
        .json(&json!({
            "site_slug": DEMO_SLUG,
            "pms_api_key": DEMO_API_KEY,
            "practice_id": practice_id,
            "practice_key": practice_key,
        }))
        .send()
        .await
        .expect("create link");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("link id").to_owned()
}

async fn first_link(w: &World) -> String {
    get(w, format!("{}/api/links", w.node)).await[0]["id"]
        .as_str()
        .expect("link id")
        .to_owned()
}

async fn patch_link(w: &World, link: &str, body: Value) {
    let r = w
        .http
        .patch(format!("{}/api/links/{link}", w.node))
        .json(&body)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn practice_view(w: &World, practice_id: &str) -> Value {
    get(w, format!("{}/_market/practices/{practice_id}", w.market)).await
}

/// The marketplace API calls recorded so far for one practice: `(method path, body)`.
fn recorded_calls(w: &World, practice_id: &str) -> Vec<(String, Value)> {
    std::fs::read_to_string(&w.record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| {
            let h = &c["headers"];
            h["practice-id"] == practice_id
                || h.as_object().is_some_and(|o| {
                    o.iter()
                        .any(|(k, v)| k.eq_ignore_ascii_case("practice-id") && v == practice_id)
                })
        })
        .map(|c| {
            (
                format!(
                    "{} {}",
                    c["method"].as_str().unwrap_or_default(),
                    c["path"].as_str().unwrap_or_default()
                ),
                c["body"].clone(),
            )
        })
        .collect()
}

fn count_calls(w: &World, practice_id: &str, what: &str) -> usize {
    recorded_calls(w, practice_id)
        .iter()
        .filter(|(c, _)| c.ends_with(what))
        .count()
}

async fn book(w: &World, practice_id: &str, slot: &Value, first: &str) -> String {
    let r = w
        .http
        .post(format!(
            "{}/_market/practices/{practice_id}/bookings",
            w.market
        ))
        .json(&json!({
            "practitioner": slot["practitioner"],
            "appointment_type": slot["appointment_type"],
            "start": slot["start"],
            "patient": {"firstname": first, "lastname": "Scenario", "dob": "1980-03-04",
                        "phone": "0411 222 333", "email": format!("{first}@example.com")}
        }))
        .send()
        .await
        .expect("book");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.expect("json");
    match &v["booking_id"] {
        Value::Number(n) => n.to_string(),
        other => other.as_str().expect("booking id").to_owned(),
    }
}

async fn slots_on(w: &World, practice_id: &str, day: &str) -> Vec<Value> {
    get(
        w,
        format!(
            "{}/_market/practices/{practice_id}/slots?date={day}",
            w.market
        ),
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

async fn desk_book(w: &World, slot: &Value) {
    let practitioner = slot["pms_resource_id"]
        .as_str()
        .and_then(|r| r.split(':').next())
        .expect("practitioner");
    let r = w
        .http
        .post(format!("{}/_desk/sites/{DEMO_SLUG}/appointments", w.pms))
        .json(&json!({"practitioner": practitioner, "start": slot["start"], "end": slot["end"]}))
        .send()
        .await
        .expect("desk");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

fn offers(slots: &[Value], slot: &Value) -> bool {
    slots
        .iter()
        .any(|s| s["pms_resource_id"] == slot["pms_resource_id"] && s["start"] == slot["start"])
}

async fn initial_configuration_synchronisation_sends_liveness_resources_and_types_before_availability(
    w: World,
) {
    linked_with_slots(&w).await;
    // A call is recorded once answered: wait for the availability's record line.
    eventually(
        "the availability recorded",
        Duration::from_secs(10),
        || async {
            (count_calls(&w, &w.practice_id, "/availability/snapshots") > 0).then_some(json!(1))
        },
    )
    .await;
    let calls: Vec<String> = recorded_calls(&w, &w.practice_id)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let at = |what: &str| {
        calls
            .iter()
            .position(|c| c.ends_with(what))
            .unwrap_or_else(|| panic!("{what} was never sent: {calls:?}"))
    };
    let liveness = at("/config/livenessContract");
    let resources = at("/config/pmsResources/snapshot");
    let types = at("/config/pmsAppointmentTypes/snapshot");
    let availability = at("/availability/snapshots");
    assert!(
        liveness < resources && resources < types && types < availability,
        "{calls:?}"
    );
}

async fn managing_pms_practitioners_with_multiple_specialties_sends_a_resource_per_specialty(
    w: World,
) {
    linked_with_slots(&w).await;
    let p = practice_view(&w, &w.practice_id).await;
    let ids: Vec<&str> = p["pms_resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["pmsResourceId"].as_str())
        .collect();
    // Harbour Dental's 1004 is both an oral health therapist and a hygienist.
    let of_1004: Vec<&&str> = ids.iter().filter(|i| i.starts_with("1004")).collect();
    assert!(ids.len() >= 5, "{p}");
    assert_eq!(of_1004.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&"1004:oht") && ids.contains(&"1004:hygienist"),
        "{ids:?}"
    );
}

async fn practice_provides_id_and_key_without_consent_and_is_guided_to_establish_it(w: World) {
    let (pid, key) = market_practice(&w, "Revoked Dental").await;
    let r = w
        .http
        .delete(format!(
            "{}/_market/practices/{pid}/consents/slotbridge",
            w.market
        ))
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success(), "{}", r.status());
    let link = create_link(&w, &pid, &key).await;
    let findings = eventually(
        "a consent finding with the fix",
        Duration::from_secs(20),
        || async {
            let f = get(&w, format!("{}/api/links/{link}/findings", w.node)).await;
            f.as_array()
                .is_some_and(|a| a.iter().any(|f| f["code"] == "consent-missing"))
                .then_some(f)
        },
    )
    .await;
    let consent = findings
        .as_array()
        .and_then(|a| a.iter().find(|f| f["code"] == "consent-missing"))
        .expect("finding");
    assert_eq!(consent["severity"], "error", "{consent}");
    assert!(
        consent.to_string().contains("Grant new consent"),
        "the fix names the portal's steps: {consent}"
    );
}

async fn integration_of_pms_account_with_multi_location_support_publishes_to_each_practice(
    w: World,
) {
    linked_with_slots(&w).await;
    let (second, key) = market_practice(&w, "Harbour Dental North").await;
    create_link(&w, &second, &key).await;
    let p = eventually(
        "the second practice configured",
        Duration::from_secs(20),
        || async {
            let p = practice_view(&w, &second).await;
            (p["pms_resources"].as_array().is_some_and(|a| !a.is_empty())
                && p["pms_appointment_types"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()))
            .then_some(p)
        },
    )
    .await;
    let first = practice_view(&w, &w.practice_id).await;
    assert_eq!(p["pms_resources"], first["pms_resources"]);
    eventually(
        "the second practice's availability",
        Duration::from_secs(20),
        || async {
            let a = get(
                &w,
                format!("{}/_market/practices/{second}/availability", w.market),
            )
            .await;
            a.as_array().is_some_and(|a| !a.is_empty()).then_some(a)
        },
    )
    .await;
}

async fn updating_a_healthengine_practice_id_moves_publishing_to_the_new_practice(w: World) {
    let (day, slots) = linked_with_slots(&w).await;
    let link = first_link(&w).await;
    let (new_id, new_key) = market_practice(&w, "Harbour Dental (new listing)").await;
    patch_link(
        &w,
        &link,
        json!({"practice_id": new_id, "practice_key": new_key}),
    )
    .await;
    eventually(
        "configuration and availability at the new practice",
        Duration::from_secs(20),
        || async {
            let p = practice_view(&w, &new_id).await;
            let a = get(
                &w,
                format!("{}/_market/practices/{new_id}/availability", w.market),
            )
            .await;
            (p["pms_resources"].as_array().is_some_and(|a| !a.is_empty())
                && a.as_array().is_some_and(|a| !a.is_empty()))
            .then_some(p)
        },
    )
    .await;
    // Nothing more goes to the old practice: its calls stop growing, even after a PMS change.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_calls = recorded_calls(&w, &w.practice_id).len();
    let new_calls = count_calls(&w, &new_id, "/availability/snapshots");
    desk_book(&w, &slots[0]).await;
    eventually(
        "the new practice follows the PMS",
        Duration::from_secs(10),
        || async {
            (count_calls(&w, &new_id, "/availability/snapshots") > new_calls).then_some(json!(1))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recorded_calls(&w, &w.practice_id).len(),
        old_calls,
        "no transmission to the previous practice after the id changed"
    );
    let _ = day;
}

async fn sending_configuration_availability_and_outstanding_requests_after_being_temporarily_disabled(
    w: World,
) {
    let (day, slots) = linked_with_slots(&w).await;
    let link = first_link(&w).await;
    patch_link(&w, &link, json!({"enabled": false})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let config_sends = count_calls(&w, &w.practice_id, "/config/pmsResources/snapshot");
    // While disabled: a desk booking is not published, and a patient's booking waits.
    desk_book(&w, &slots[0]).await;
    let booking = book(&w, &w.practice_id, &slots[2], "Disabled").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        offers(&slots_on(&w, &w.practice_id, &day).await, &slots[0]),
        "nothing is sent while the link is disabled"
    );
    patch_link(&w, &link, json!({"enabled": true})).await;
    // Re-enabled: configuration is sent again, availability follows the PMS, and the waiting
    // booking (an outstanding request) is handled by the integration, not auto-confirmed.
    eventually(
        "configuration sent after re-enabling",
        Duration::from_secs(10),
        || async {
            (count_calls(&w, &w.practice_id, "/config/pmsResources/snapshot") > config_sends)
                .then_some(json!(1))
        },
    )
    .await;
    eventually(
        "the desk booking's slot is gone after re-enabling",
        Duration::from_secs(10),
        || async {
            (!offers(&slots_on(&w, &w.practice_id, &day).await, &slots[0])).then_some(json!(1))
        },
    )
    .await;
    let b = eventually(
        "the outstanding booking handled",
        Duration::from_secs(15),
        || async {
            let b = get(&w, format!("{}/_market/bookings/{booking}", w.market)).await;
            (b["status"] != "Requested").then_some(b)
        },
    )
    .await;
    assert_eq!(b["status"], "Confirmed", "{b}");
    assert_eq!(b["auto_confirmed"], false, "{b}");
}

async fn manual_configuration_and_availability_resync_actions_by_pms_user(w: World) {
    linked_with_slots(&w).await;
    let link = first_link(&w).await;
    for (what, call) in [
        ("config", "/config/pmsAppointmentTypes/snapshot"),
        ("availability", "/availability/snapshots"),
    ] {
        let before = count_calls(&w, &w.practice_id, call);
        let r = w
            .http
            .post(format!("{}/api/links/{link}/resync", w.node))
            .json(&json!({"what": what}))
            .send()
            .await
            .expect("resync");
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        eventually(
            &format!("{what} resent"),
            Duration::from_secs(10),
            || async { (count_calls(&w, &w.practice_id, call) > before).then_some(json!(1)) },
        )
        .await;
    }
    // The availability resync sends every (resource, date) of the horizon, unchanged or not.
    let last: usize = recorded_calls(&w, &w.practice_id)
        .iter()
        .filter(|(c, _)| c.ends_with("/availability/snapshots"))
        .map(|(_, b)| b.as_array().map(Vec::len).unwrap_or(0))
        .sum();
    assert!(last >= 30, "a full horizon was sent: {last} snapshots");
}

async fn changes_detected_in_pms_appointment_type_snapshot_reach_the_marketplace_within_5_seconds(
    w: World,
) {
    linked_with_slots(&w).await;
    let names = |p: &Value| -> Vec<String> {
        p["pms_appointment_types"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["pmsAppointmentTypeName"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Rename R2 ("Check-up & Clean") at the desk.
    let r = w
        .http
        .patch(format!("{}/_desk/sites/{DEMO_SLUG}/reasons/R2", w.pms))
        .json(&json!({"name": "Check-up and Clean"}))
        .send()
        .await
        .expect("rename");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    eventually("the renamed type", Duration::from_secs(5), || async {
        let n = names(&practice_view(&w, &w.practice_id).await);
        (n.iter().any(|n| n.contains("Check-up and Clean"))
            && !n.iter().any(|n| n.contains("Check-up & Clean")))
        .then_some(json!(n))
    })
    .await;
    // Delete R3 ("Emergency").
    let r = w
        .http
        .delete(format!("{}/_desk/sites/{DEMO_SLUG}/reasons/R3", w.pms))
        .send()
        .await
        .expect("delete");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    eventually("the deleted type gone", Duration::from_secs(5), || async {
        let n = names(&practice_view(&w, &w.practice_id).await);
        (!n.iter().any(|n| n.contains("Emergency"))).then_some(json!(n))
    })
    .await;
}

async fn turning_stacking_off_leaves_at_most_one_slot_per_practitioner_type_and_segment_within_5_s(
    w: World,
) {
    let (day, before) = linked_with_slots(&w).await;
    let r = w
        .http
        .put(format!("{}/_desk/sites/{DEMO_SLUG}/stacking", w.pms))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("stacking");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    let after = eventually("stacking off published", Duration::from_secs(5), || async {
        let now = slots_on(&w, &w.practice_id, &day).await;
        (now.len() < before.len()).then_some(json!(now))
    })
    .await;
    let after = after.as_array().expect("slots");
    // Only the first free slot after each break: per practitioner and type, no two slots of one
    // free segment, so consecutive slots never touch or overlap.
    let mut by: std::collections::BTreeMap<(String, String), Vec<(String, String)>> =
        Default::default();
    for s in after {
        by.entry((
            s["pms_resource_id"].as_str().unwrap_or_default().to_owned(),
            s["appointment_type"].to_string(),
        ))
        .or_default()
        .push((
            s["start"].as_str().unwrap_or_default().to_owned(),
            s["end"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    for (key, mut v) in by {
        v.sort();
        for pair in v.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{key:?}: {pair:?} are in one segment (stacking is off)"
            );
        }
        assert!(v.len() <= 4, "{key:?}: {v:?}");
    }
}

async fn outstanding_requests_during_initial_configuration_synchronisation_are_answered(w: World) {
    linked_with_slots(&w).await;
    // A second listing whose marketplace already holds a request before we link it.
    let (pid, key) = market_practice(&w, "Harbour Dental (previous integration)").await;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    let day = today + jiff::Span::new().days(3);
    let r = w
        .http
        .post(format!(
            "{}/_market/practices/{pid}/requests/availability",
            w.market
        ))
        .json(&json!({"day": day.to_string()}))
        .send()
        .await
        .expect("raise");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    create_link(&w, &pid, &key).await;
    eventually(
        "the outstanding request answered",
        Duration::from_secs(20),
        || async {
            let open = get(&w, format!("{}/_market/practices/{pid}/requests", w.market)).await;
            let waiting = open["other"]
                .as_array()
                .is_some_and(|o| o.iter().any(|r| r["request_type"] == "availability"));
            (!waiting
                && recorded_calls(&w, &pid)
                    .iter()
                    .any(|(c, _)| c == "GET /pms-api/v1/requests"))
            .then_some(open)
        },
    )
    .await;
}

async fn the_node_registers_its_webhooks_once_and_is_woken_by_them(w: World) {
    linked_with_slots(&w).await;
    // The PMS site has exactly one webhook to us, even after the worker restarts.
    let link = first_link(&w).await;
    patch_link(&w, &link, json!({"enabled": false})).await;
    patch_link(&w, &link, json!({"enabled": true})).await;
    let hooks = eventually(
        "PMS webhook registered",
        Duration::from_secs(10),
        || async {
            let v: Value = w
                .http
                .get(format!("{}/api/v1/sites/{DEMO_SLUG}/webhooks", w.pms))
                .header("x-api-key", DEMO_API_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let ours = v["items"].as_array().map(|a| {
                a.iter()
                    .filter(|h| h["url"] == format!("{}/webhooks/pms", w.node))
                    .count()
            });
            (ours == Some(1)).then_some(v)
        },
    )
    .await;
    assert_eq!(hooks["items"].as_array().map(Vec::len), Some(1), "{hooks}");
    // The marketplace holds a subscription to every request type, answered at once.
    let calls = recorded_calls(&w, &w.practice_id);
    assert!(
        calls
            .iter()
            .any(|(c, b)| c.ends_with("POST /pms-api/v1/subscription")
                && b["topic"] == "requests.*"
                && b["callbackUrl"] == format!("{}/webhooks/market", w.node)),
        "{calls:?}"
    );
    let (_day, slots) = linked_with_slots(&w).await;
    let booking = book(&w, &w.practice_id, &slots[1], "Webhook").await;
    let b = eventually("booking confirmed", Duration::from_secs(20), || async {
        let b = get(&w, format!("{}/_market/bookings/{booking}", w.market)).await;
        (b["status"] == "Confirmed").then_some(b)
    })
    .await;
    assert_eq!(b["auto_confirmed"], false, "{b}");
    let deliveries = eventually(
        "the marketplace's webhooks acknowledged at the first attempt",
        Duration::from_secs(10),
        || async {
            let d = get(
                &w,
                format!(
                    "{}/_market/webhooks?practice_id={}",
                    w.market, w.practice_id
                ),
            )
            .await;
            let all = d.as_array()?;
            (!all.is_empty()
                && all
                    .iter()
                    .all(|d| d["delivered"] == true && d["attempts"] == 1))
            .then_some(d)
        },
    )
    .await;
    assert!(
        deliveries.to_string().contains("bookings"),
        "the booking was pushed: {deliveries}"
    );
}

async fn two_nodes_share_the_practices_evenly_and_never_work_one_at_the_same_time(w: World) {
    linked_with_slots(&w).await;
    for n in 0..3 {
        let (pid, key) = market_practice(&w, &format!("Harbour Dental {n}")).await;
        create_link(&w, &pid, &key).await;
    }
    let mut config = w.config.clone();
    config.node_id = "test-node-2".into();
    let second = Node::start(config, Keyring::parse(KEY).expect("key"))
        .await
        .expect("second node");
    let first = &w.first_node;
    let split = eventually(
        "the links split 2 and 2",
        Duration::from_secs(30),
        || async {
            let a = first.ctx.running();
            let b = second.ctx.running();
            (a.len() == 2 && b.len() == 2).then(|| json!([a.len(), b.len()]))
        },
    )
    .await;
    // Sampled for a while: no link is ever worked by both nodes.
    for _ in 0..20 {
        let a = first.ctx.running();
        let b = second.ctx.running();
        assert!(
            a.iter().all(|id| !b.contains(id)),
            "{a:?} and {b:?} overlap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The second node stops: the first takes all four back.
    second.shutdown().await;
    eventually(
        "all links back on one node",
        Duration::from_secs(30),
        || async { (first.ctx.running().len() == 4).then_some(json!(4)) },
    )
    .await;
    let _ = split;
}

async fn a_hundred_patients_booking_one_slot_at_once_end_with_one_confirmed_and_99_rejected_within_20_s(
    w: World,
) {
    let (day, slots) = linked_with_slots(&w).await;
    let slot = slots[slots.len() / 2].clone();
    // Each patient books from a page loaded before the others booked ("stale"), all at once.
    let started = Instant::now();
    let ids = futures::future::join_all((0..100).map(|n| {
        let w = &w;
        let slot = slot.clone();
        async move {
            let r = w
                .http
                .post(format!(
                    "{}/_market/practices/{}/bookings",
                    w.market, w.practice_id
                ))
                .json(&json!({
                    "practitioner": slot["practitioner"],
                    "appointment_type": slot["appointment_type"],
                    "start": slot["start"],
                    "stale": true,
                    "patient": {"firstname": format!("Patient{n}"), "lastname": "Crowd",
                                "dob": "1990-05-06", "phone": format!("04{n:08}"),
                                "email": format!("crowd{n}@example.com")}
                }))
                .send()
                .await
                .expect("book");
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
            let v: Value = r.json().await.expect("json");
            v["booking_id"].to_string()
        }
    }))
    .await;
    let mut confirmed = Vec::new();
    let mut rejected = 0;
    for id in &ids {
        let b = eventually(
            "every booking answered",
            Duration::from_secs(40),
            || async {
                let b = get(&w, format!("{}/_market/bookings/{id}", w.market)).await;
                (b["status"] != "Requested").then_some(b)
            },
        )
        .await;
        match b["status"].as_str() {
            Some("Confirmed") => {
                assert_eq!(
                    b["auto_confirmed"], false,
                    "confirmed by the integration: {b}"
                );
                confirmed.push(id.clone());
            }
            Some("Rejected") => {
                assert_eq!(b["late_reject"], false, "rejected within 20 s: {b}");
                assert!(
                    b["reject_reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "{b}"
                );
                rejected += 1;
            }
            other => panic!("unexpected {other:?}: {b}"),
        }
    }
    assert_eq!((confirmed.len(), rejected), (1, 99));
    let diary = get(
        &w,
        format!("{}/_desk/sites/{DEMO_SLUG}/appointments?date={day}", w.pms),
    )
    .await;
    let online: Vec<&Value> = diary
        .as_array()
        .expect("diary")
        .iter()
        .filter(|a| {
            a["external_ref"]
                .as_str()
                .is_some_and(|r| r.starts_with("HE-"))
        })
        .collect();
    assert_eq!(online.len(), 1, "{diary}");
    assert_eq!(online[0]["external_ref"], format!("HE-{}", confirmed[0]));
    eprintln!(
        "100 bookings of one slot answered in {:?}",
        started.elapsed()
    );
}

async fn changes_detected_in_pms_resource_snapshot_reach_the_marketplace_within_5_seconds(
    w: World,
) {
    linked_with_slots(&w).await;
    let resources = |p: &Value| -> Vec<String> {
        p["pms_resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["pmsResourceId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(resources(&practice_view(&w, &w.practice_id).await).contains(&"1003".to_owned()));
    let online = |enabled: bool| {
        let w = &w;
        async move {
            let r = w
                .http
                .put(format!(
                    "{}/_desk/sites/{DEMO_SLUG}/practitioners/1003/online-booking",
                    w.pms
                ))
                .json(&json!({"enabled": enabled}))
                .send()
                .await
                .expect("desk");
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
        }
    };
    // Ms Wilson stops publishing online: her resource leaves the snapshot.
    online(false).await;
    eventually("the resource removed", Duration::from_secs(5), || async {
        let r = resources(&practice_view(&w, &w.practice_id).await);
        (!r.contains(&"1003".to_owned())).then_some(json!(r))
    })
    .await;
    // And back.
    online(true).await;
    eventually("the resource back", Duration::from_secs(5), || async {
        let r = resources(&practice_view(&w, &w.practice_id).await);
        r.contains(&"1003".to_owned()).then_some(json!(r))
    })
    .await;
}

/// A scenario runs twice, as `<scenario>::on_sqlite` and `<scenario>::on_postgres`: the same
/// suite on both backends (PostgreSQL: a fresh database per test, dropped afterwards).
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$name(super::world().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(w) = super::world_on(super::Db::Postgres).await {
                    super::$name(w).await;
                }
            }
        }
    )*};
}

scenarios!(
    changes_detected_in_pms_resource_snapshot_reach_the_marketplace_within_5_seconds,
    a_hundred_patients_booking_one_slot_at_once_end_with_one_confirmed_and_99_rejected_within_20_s,
    two_nodes_share_the_practices_evenly_and_never_work_one_at_the_same_time,
    linking_the_pms_account_with_a_practice_publishes_configuration_and_availability,
    a_marketplace_booking_ends_confirmed_and_is_in_the_diary_exactly_once,
    a_desk_booking_disappears_from_the_marketplace_within_5_seconds,
    a_patients_online_cancellation_is_refused_with_the_call_the_practice_answer,
    the_admin_api_explains_findings_and_missing_slots,
    initial_configuration_synchronisation_sends_liveness_resources_and_types_before_availability,
    managing_pms_practitioners_with_multiple_specialties_sends_a_resource_per_specialty,
    practice_provides_id_and_key_without_consent_and_is_guided_to_establish_it,
    integration_of_pms_account_with_multi_location_support_publishes_to_each_practice,
    updating_a_healthengine_practice_id_moves_publishing_to_the_new_practice,
    sending_configuration_availability_and_outstanding_requests_after_being_temporarily_disabled,
    manual_configuration_and_availability_resync_actions_by_pms_user,
    changes_detected_in_pms_appointment_type_snapshot_reach_the_marketplace_within_5_seconds,
    turning_stacking_off_leaves_at_most_one_slot_per_practitioner_type_and_segment_within_5_s,
    outstanding_requests_during_initial_configuration_synchronisation_are_answered,
    the_node_registers_its_webhooks_once_and_is_woken_by_them,
);
