//! The admin API and the operator console over real HTTP: both simulators and one node with an
//! admin token and a console password, Harbour Dental and a misconfigured generated practice
//! linked. The last test drives the console in headless Chromium (tests/browser/console.mjs).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use slotbridge_pms_sim::{DEMO_API_KEY, PmsSim};
use slotbridge_testkit::{Stack, booking_body, eventually, finding_code, patient};

const TOKEN: &str = "test-admin-token-0123456789";
const PASSWORD: &str = "test console password";

/// The stack (one node with the admin token and the console password, twelve generated PMS
/// practices), and what the tests look at.
struct World {
    stack: Stack,
    /// Link ids: Harbour Dental, the misconfigured practice.
    harbour_link: String,
    misconfigured_link: String,
    /// The misconfigured practice's planted misconfigurations (simulator manifest kinds).
    planted: Vec<String>,
}

impl std::ops::Deref for World {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

async fn world() -> World {
    let pms_sim = PmsSim::builder().practices(12).build();
    let manifest = serde_json::to_value(pms_sim.manifest()).expect("manifest");
    let mis = manifest["practices"]
        .as_array()
        .expect("practices")
        .iter()
        .skip(1)
        .max_by_key(|p| p["misconfigurations"].as_array().map(Vec::len).unwrap_or(0))
        .expect("a generated practice")
        .clone();
    let planted: Vec<String> = mis["misconfigurations"]
        .as_array()
        .expect("misconfigurations")
        .iter()
        .map(|m| m["kind"].as_str().expect("kind").to_owned())
        .collect();
    assert!(
        !planted.is_empty(),
        "no generated practice is misconfigured"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let stack = Stack::builder()
        .pms(pms_sim)
        .node_id("console-test")
        .admin(TOKEN, PASSWORD)
        .http(http)
        .link(false)
        .start()
        .await
        .expect("sqlite stack");
    let misconfigured = stack
        .create_practice(
            mis["name"].as_str().expect("name"),
            mis["timezone"].as_str().expect("tz"),
            mis["slug"].as_str().expect("slug"),
            mis["api_key"].as_str().expect("key"),
        )
        .expect("second practice");
    let w = World {
        harbour_link: stack.link(stack.harbour()).await,
        misconfigured_link: stack.link(&misconfigured).await,
        stack,
        planted,
    };
    // Step 2 on the marketplace for Harbour Dental, then wait for its first availability.
    w.configured_then_auto_linked(
        &w.harbour().practice_id,
        Duration::from_secs(30),
        &String::new,
    )
    .await;
    eventually("first publish", Duration::from_secs(30), || async {
        let p = w.api_get("/api/practices").await;
        p["items"]
            .as_array()?
            .iter()
            .any(|p| p["link"]["id"] == w.harbour_link.as_str() && p["last_publish_at"].is_string())
            .then_some(())
    })
    .await;
    w
}

/// Every admin operation the console and the CLI rely on.
const ADMIN_ROUTES: [(&str, &str); 18] = [
    ("get", "/api/links"),
    ("post", "/api/links"),
    ("get", "/api/links/{id}"),
    ("patch", "/api/links/{id}"),
    ("post", "/api/links/{id}/resync"),
    ("get", "/api/links/{id}/resync"),
    ("get", "/api/links/{id}/findings"),
    ("get", "/api/links/{id}/explain"),
    ("get", "/api/links/{id}/week"),
    ("get", "/api/links/{id}/log"),
    ("get", "/api/practices"),
    ("get", "/api/practices/{id}"),
    ("get", "/api/fleet"),
    ("post", "/api/practices/bulk"),
    ("get", "/api/practices/bulk/{id}"),
    ("get", "/api/audit"),
    ("get", "/api/practices/{id}/bookings"),
    ("get", "/api/bookings/{id}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_is_in_the_openapi_31_document_and_needs_the_bearer_token() {
    let w = world().await;
    // The document needs the token, like every route but the public ones (tests/edges.rs), and
    // is OpenAPI 3.1.
    let anonymous = w
        .http
        .get(w.api("/openapi.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);
    let doc: Value = w
        .http
        .get(w.api("/openapi.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected, "documented vs admin routes");
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("ops") {
            assert!(
                op["responses"]["200"].is_object()
                    || op["responses"]["201"].is_object()
                    || op["responses"]["202"].is_object(),
                "{method} {path} documents no success response"
            );
        }
    }
    // Each documented route is served, and only with the token.
    let unknown = "0191f3f0-0000-7000-8000-000000000000";
    for (method, path) in ADMIN_ROUTES {
        let url = w.api(&path.replace("{id}", unknown));
        let m: reqwest::Method = method.to_uppercase().parse().expect("method");
        let req = |token: Option<&str>| {
            let mut r = w
                .http
                .request(m.clone(), &url)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        for token in [None, Some("wrong-token")] {
            let r = req(token).await.expect("send");
            assert_eq!(r.status(), 401, "{method} {path} with {token:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer", "{method} {path}");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
        let r = req(Some(TOKEN)).await.expect("send");
        let status = r.status().as_u16();
        assert!(
            matches!(status, 200 | 404 | 422),
            "{method} {path} with the token: {status}"
        );
        if status != 200 {
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "{method} {path}: a served route answers problem+json, not the router's 404"
            );
        }
    }
    // Liveness and readiness stay open; the metrics need the token.
    for open in ["/healthz", "/readyz"] {
        let r = w.http.get(w.api(open)).send().await.expect("get");
        assert_eq!(r.status(), 200, "{open}");
    }
    let r = w.http.get(w.api("/metrics")).send().await.expect("get");
    assert_eq!(r.status(), 401, "/metrics without the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practice_list_shows_health_and_the_misconfigured_practice_has_findings_with_fixes() {
    let w = world().await;
    let page = w.api_get("/api/practices").await;
    assert_eq!(page["total"], 2, "{page}");
    let list = page["items"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    let harbour = list
        .iter()
        .find(|p| p["link"]["id"] == w.harbour_link.as_str())
        .expect("harbour");
    assert!(harbour["lag_seconds"].as_i64().is_some_and(|l| l >= 0));
    assert!(harbour["last_pms_read_at"].is_string());
    assert_eq!(harbour["consent"], "granted");
    assert!(harbour["running_here"].as_bool().expect("running_here"));
    assert!(
        harbour["link"].get("pms_api_key").is_none() && harbour["link"]["secrets_set"] == true,
        "secrets are write-only: {harbour}"
    );
    let findings = w
        .api_get(&format!("/api/links/{}/findings", w.misconfigured_link))
        .await;
    let codes: BTreeSet<&str> = findings
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code"))
        .collect();
    for kind in &w.planted {
        assert!(
            codes.contains(finding_code(kind)),
            "planted {kind} not among the findings {codes:?}"
        );
    }
    for f in findings.as_array().expect("findings") {
        assert!(
            f["fix"].as_str().is_some_and(|s| s.len() > 10),
            "a finding without a fix: {f}"
        );
    }
    let one = w
        .api_get(&format!("/api/practices/{}", w.misconfigured_link))
        .await;
    assert_eq!(one["link"]["id"], w.misconfigured_link.as_str());
}

/// The misconfigured practice's row once its setup was read: the list counts its setup findings.
async fn misconfigured_row(w: &World) -> Value {
    eventually(
        "the setup findings in the list",
        Duration::from_secs(30),
        || async {
            let p = w.api_get("/api/practices").await;
            p["items"]
                .as_array()?
                .iter()
                .find(|p| {
                    p["link"]["id"] == w.misconfigured_link.as_str()
                        && p["setup_finding_codes"]
                            .as_array()
                            .is_some_and(|c| !c.is_empty())
                })
                .cloned()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_names_counts_setup_findings_searches_filters_and_pages() {
    let w = world().await;
    let row = misconfigured_row(&w).await;
    // Names: the PMS's, stored at the worker's read, on the practice and its link.
    assert!(row["name"].as_str().is_some_and(|n| !n.is_empty()), "{row}");
    assert_eq!(row["name"], row["link"]["name"]);
    let links = w.api_get("/api/links").await;
    let harbour_link = links
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["id"] == w.harbour_link.as_str())
        .expect("harbour's link")
        .clone();
    assert_eq!(harbour_link["name"], "Harbour Dental", "{harbour_link}");
    // The setup findings of the last PMS read are counted in the row, without a PMS read.
    let codes: BTreeSet<&str> = row["setup_finding_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code"))
        .collect();
    for kind in &w.planted {
        assert!(
            codes.contains(finding_code(kind)),
            "{kind} not in {codes:?}"
        );
    }
    let counted = row["setup_findings"]["error"].as_u64().expect("errors")
        + row["setup_findings"]["warning"].as_u64().expect("warnings");
    assert!(counted > 0, "{row}");
    // Sorted by attention: the misconfigured practice first.
    let page = w.api_get("/api/practices").await;
    assert_eq!(
        page["items"][0]["link"]["id"],
        w.misconfigured_link.as_str(),
        "{page}"
    );
    // Search by name, site slug and marketplace practice id, case-insensitively.
    for q in [
        "harbour dental",
        "HARBOUR",
        w.harbour().practice_id.as_str(),
    ] {
        let found = w
            .api_get(&format!("/api/practices?q={}", urlencode(q)))
            .await;
        assert_eq!(found["total"], 1, "q={q}: {found}");
        assert_eq!(found["items"][0]["link"]["id"], w.harbour_link.as_str());
    }
    let none = w.api_get("/api/practices?q=no-such-practice").await;
    assert_eq!(none["total"], 0);
    // Filters: a finding code, needs attention, disabled, parked.
    let code = finding_code(&w.planted[0]);
    let by_code = w.api_get(&format!("/api/practices?attention={code}")).await;
    assert_eq!(by_code["total"], 1, "{by_code}");
    assert_eq!(
        by_code["items"][0]["link"]["id"],
        w.misconfigured_link.as_str()
    );
    let needs = w.api_get("/api/practices?attention=needs_attention").await;
    assert!(
        needs["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|p| p["link"]["id"] == w.misconfigured_link.as_str()),
        "{needs}"
    );
    assert_eq!(
        w.api_get("/api/practices?attention=disabled").await["total"],
        0
    );
    // Pages: one practice each, every practice exactly once.
    let mut seen = BTreeSet::new();
    for n in 1..=3 {
        let p = w
            .api_get(&format!("/api/practices?per_page=1&page={n}"))
            .await;
        assert_eq!(p["total"], 2);
        for item in p["items"].as_array().expect("items") {
            assert!(seen.insert(item["link"]["id"].as_str().expect("id").to_owned()));
        }
    }
    assert_eq!(seen.len(), 2);
    // Bad queries name the field.
    for (q, field) in [
        ("attention=everything%25", "attention"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
    ] {
        let r = w
            .http
            .get(w.api(&format!("/api/practices?{q}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 422, "{q}");
        let body: Value = r.json().await.expect("problem");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(field)),
            "{q}: {body}"
        );
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_action_on_a_filtered_set_reports_progress_and_every_action_is_audited() {
    let w = world().await;
    let row = misconfigured_row(&w).await;
    let slug = row["link"]["site_slug"].as_str().expect("slug").to_owned();
    // A single action, then a bulk one on the search's set (the misconfigured practice only).
    let r = w
        .http
        .patch(w.api(&format!("/api/links/{}", w.harbour_link)))
        .bearer_auth(TOKEN)
        .json(&json!({"market_name": "Harbour Dental (marketplace)"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    let named: Value = r.json().await.expect("json");
    assert_eq!(named["market_name"], "Harbour Dental (marketplace)");
    let bad = w
        .http
        .post(w.api("/api/practices/bulk"))
        .bearer_auth(TOKEN)
        .json(&json!({"action": "delete", "q": slug}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 422);
    for (action, enabled) in [("disable", false), ("enable", true)] {
        let r = w
            .http
            .post(w.api("/api/practices/bulk"))
            .bearer_auth(TOKEN)
            .json(&json!({"action": action, "q": slug}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 202);
        let started: Value = r.json().await.expect("json");
        assert_eq!(started["total"], 1, "{started}");
        let url = started["progress_url"].as_str().expect("url").to_owned();
        let done = eventually("bulk done", Duration::from_secs(30), || async {
            let p = w.api_get(&url).await;
            (p["state"] == "done").then_some(p)
        })
        .await;
        assert_eq!(
            (done["done"].as_u64(), done["failed"].as_u64()),
            (Some(1), Some(0)),
            "{done}"
        );
        let link = w
            .api_get(&format!("/api/links/{}", w.misconfigured_link))
            .await;
        assert_eq!(link["enabled"], enabled, "after {action}");
        let harbour = w.api_get(&format!("/api/links/{}", w.harbour_link)).await;
        assert_eq!(
            harbour["enabled"], true,
            "{action} touched only the filtered set"
        );
    }
    let audit = w.api_get("/api/audit").await;
    let entries = audit.as_array().expect("entries");
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions[..3],
        ["bulk.enable", "bulk.disable", "link.update"],
        "newest first: {audit}"
    );
    for e in &entries[..3] {
        assert_eq!(e["actor"], "api token");
        assert_eq!(e["link_count"], 1, "{e}");
    }
    assert_eq!(entries[2]["links"][0], w.harbour_link.as_str());
    assert_eq!(entries[0]["links"][0], w.misconfigured_link.as_str());
    let of_harbour = w
        .api_get(&format!("/api/audit?link={}", w.harbour_link))
        .await;
    assert!(
        of_harbour
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["links"]
                .as_array()
                .is_some_and(|l| l.contains(&Value::from(w.harbour_link.as_str())))),
        "{of_harbour}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_reports_its_progress_until_it_is_done() {
    let w = world().await;
    let none = w
        .http
        .get(w.api(&format!("/api/links/{}/resync", w.harbour_link)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(none.status(), 404, "no resync asked yet");
    let bad = w
        .http
        .post(w.api(&format!("/api/links/{}/resync", w.harbour_link)))
        .bearer_auth(TOKEN)
        .json(&json!({"what": "everything"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 422);
    for what in ["config", "availability"] {
        let r = w
            .http
            .post(w.api(&format!("/api/links/{}/resync", w.harbour_link)))
            .bearer_auth(TOKEN)
            .json(&json!({ "what": what }))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 202);
        let accepted: Value = r.json().await.expect("json");
        assert_eq!(accepted["what"], what);
        let url = accepted["progress_url"].as_str().expect("url").to_owned();
        let done = eventually("resync done", Duration::from_secs(30), || async {
            let p = w.api_get(&url).await;
            assert_ne!(p["state"], "failed", "{p}");
            (p["state"] == "done").then_some(p)
        })
        .await;
        assert_eq!(done["what"], what);
        let requested: jiff::Timestamp = done["requested_at"]
            .as_str()
            .expect("at")
            .parse()
            .expect("ts");
        let finished: jiff::Timestamp = done["finished_at"]
            .as_str()
            .expect("at")
            .parse()
            .expect("ts");
        assert!(finished >= requested, "{done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_week_view_and_explain_agree_with_the_published_availability() {
    let w = world().await;
    let week = w
        .api_get(&format!("/api/links/{}/week", w.harbour_link))
        .await;
    assert_eq!(week["dates"].as_array().expect("dates").len(), 7);
    let practitioners = week["practitioners"].as_array().expect("practitioners");
    assert!(!practitioners.is_empty());
    // Days with published slots in the week view; the marketplace offers slots on no other day.
    let mut view_days = BTreeSet::new();
    let mut published = None;
    for p in practitioners {
        for d in p["days"].as_array().expect("days") {
            if let Some(s) = d["slots"].as_array().and_then(|s| s.first()) {
                view_days.insert(d["date"].as_str().expect("date").to_owned());
                published.get_or_insert((
                    p["id"].as_str().expect("id").to_owned(),
                    format!(
                        "{}T{}",
                        d["date"].as_str().expect("date"),
                        s["start"].as_str().expect("start")
                    ),
                ));
            }
        }
    }
    assert!(!view_days.is_empty(), "no slot in the week: {week}");
    for date in week["dates"].as_array().expect("dates") {
        let date = date.as_str().expect("date");
        let slots = Value::from(w.slots(&w.harbour().practice_id, date).await);
        if slots.as_array().is_some_and(|s| !s.is_empty()) {
            assert!(
                view_days.contains(date),
                "the marketplace offers slots on {date}, the week view shows none"
            );
        }
    }
    let bad = w
        .http
        .get(w.api(&format!("/api/links/{}/week?start=tuesday", w.harbour_link)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(bad.status(), 422);
    // A published slot is explained as published; 03:00 the same day is outside the sessions.
    let (practitioner, at) = published.expect("a published slot");
    let yes = w
        .api_get(&format!(
            "/api/links/{}/explain?practitioner={practitioner}&at={at}",
            w.harbour_link
        ))
        .await;
    assert_eq!(yes["published"], true, "{yes}");
    let night = format!("{}T03:00", &at[..10]);
    let no = w
        .api_get(&format!(
            "/api/links/{}/explain?practitioner={practitioner}&at={night}",
            w.harbour_link
        ))
        .await;
    assert_eq!(no["published"], false, "{no}");
    assert!(
        matches!(
            no["cause"].as_str(),
            Some("outside_sessions" | "closed_date")
        ),
        "{no}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_shows_in_the_log_with_every_transition() {
    let w = world().await;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    let mut slot = None;
    for n in 1..14 {
        let date = today + jiff::Span::new().days(n);
        let slots = Value::from(w.slots(&w.harbour().practice_id, date).await);
        if let Some(s) = slots.as_array().and_then(|s| s.first()) {
            slot = Some(s.clone());
            break;
        }
    }
    let slot = slot.expect("a bookable slot within two weeks");
    let grace = patient(
        "Grace",
        "Hopper",
        "1976-12-09",
        "0400 111 222",
        "grace@example.com",
    );
    let booking_id = w
        .book(&w.harbour().practice_id, &booking_body(&slot, grace))
        .await
        .to_string();
    let b = eventually("the booking answered", Duration::from_secs(40), || async {
        let log = w
            .api_get(&format!("/api/links/{}/log", w.harbour_link))
            .await;
        log["bookings"]
            .as_array()?
            .iter()
            .find(|b| b["booking_id"] == booking_id.as_str())
            .filter(|b| matches!(b["state"].as_str(), Some("confirmed" | "rejected")))
            .cloned()
    })
    .await;
    let transitions = b["transitions"].as_array().expect("transitions");
    assert!(transitions.len() >= 2, "{b}");
    assert_eq!(transitions.last().expect("last")["to"], b["state"], "{b}");
    assert!(
        transitions
            .iter()
            .all(|t| t["reason"].is_string() && t["at"].is_string())
    );
    if b["state"] == "rejected" {
        assert!(
            b["reject_reason"].is_string(),
            "a rejection has its reason: {b}"
        );
    }
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_needs_a_login_and_a_csrf_token_on_every_form_and_never_shows_a_secret() {
    let w = world().await;
    let r = w.http.get(w.api("/console")).send().await.expect("get");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");
    let root = w.http.get(w.api("/")).send().await.expect("get");
    assert_eq!(root.headers()["location"], "/console");
    let login = w
        .http
        .get(w.api("/console/login"))
        .send()
        .await
        .expect("get");
    assert!(
        login.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("script-src 'self'")
    );
    let pre_cookie = set_cookies(&login)
        .into_iter()
        .find(|c| c.starts_with("sb_login="))
        .expect("login cookie");
    let pre = pre_cookie["sb_login=".len()..]
        .split(';')
        .next()
        .expect("value")
        .to_owned();
    let page = login.text().await.expect("html");
    assert_eq!(hidden_csrf(&page), pre);
    let post_login = |password: &str, csrf: &str, cookie: Option<&str>| {
        let mut r = w
            .http
            .post(w.api("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("password", password), ("csrf", csrf)]));
        if let Some(c) = cookie {
            r = r.header("cookie", format!("sb_login={c}"));
        }
        r.send()
    };
    // Without the login form's token: refused.
    assert_eq!(
        post_login(PASSWORD, &pre, None)
            .await
            .expect("post")
            .status(),
        403
    );
    assert_eq!(
        post_login(PASSWORD, "forged", Some(&pre))
            .await
            .expect("post")
            .status(),
        403
    );
    // A wrong password: refused.
    assert_eq!(
        post_login("guess", &pre, Some(&pre))
            .await
            .expect("post")
            .status(),
        401
    );
    // The password, and the admin token, log in.
    for secret in [PASSWORD, TOKEN] {
        let ok = post_login(secret, &pre, Some(&pre)).await.expect("post");
        assert_eq!(ok.status(), 303);
        let session = set_cookies(&ok)
            .into_iter()
            .find(|c| c.starts_with("sb_session="))
            .expect("session cookie");
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Strict"),
            "{session}"
        );
    }
    let ok = post_login(PASSWORD, &pre, Some(&pre)).await.expect("post");
    let session = set_cookies(&ok)
        .into_iter()
        .find(|c| c.starts_with("sb_session="))
        .expect("session")
        .split(';')
        .next()
        .expect("kv")
        .to_owned();
    let get = |path: String| {
        w.http
            .get(w.api(&path))
            .header("cookie", session.clone())
            .send()
    };
    let list = get("/console".into()).await.expect("list");
    assert_eq!(list.status(), 200);
    let list = list.text().await.expect("html");
    assert!(
        list.contains(&w.harbour().practice_id),
        "the list names Harbour's practice"
    );
    assert!(list.contains("Healthy") || list.contains("Unhealthy"));
    let csrf = hidden_csrf(&list);
    let practice = get(format!("/console/practices/{}", w.misconfigured_link))
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    for kind in &w.planted {
        assert!(
            practice.contains(&format!("data-code=\"{}\"", finding_code(kind))),
            "the page shows the finding for {kind}"
        );
    }
    let harbour = get(format!("/console/practices/{}", w.harbour_link))
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        harbour.contains("<svg class=\"week-grid\""),
        "the week grid is a picture"
    );
    for secret in [DEMO_API_KEY, "test-api-key", TOKEN, PASSWORD] {
        assert!(!harbour.contains(secret), "the page shows a secret");
    }
    // Every form carries the session's CSRF token; a POST without it is refused.
    let forms = harbour.matches("<form method=\"post\"").count();
    let tokens = harbour
        .matches(&format!("name=\"csrf\" value=\"{csrf}\""))
        .count();
    assert!(
        forms >= 4 && tokens >= forms,
        "{forms} forms, {tokens} tokens"
    );
    let resync = format!("/console/practices/{}/resync", w.harbour_link);
    let refused = w
        .http
        .post(w.api(&resync))
        .header("cookie", session.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("what", "availability")]))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);
    let forged = w
        .http
        .post(w.api(&resync))
        .header("cookie", session.clone())
        .header("x-csrf-token", "forged")
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("what", "availability")]))
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);
    let accepted = w
        .http
        .post(w.api(&resync))
        .header("cookie", session.clone())
        .header("x-csrf-token", &csrf)
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("what", "availability")]))
        .send()
        .await
        .expect("post");
    assert_eq!(accepted.status(), 200);
    let fragment = accepted.text().await.expect("html");
    assert!(fragment.contains("id=\"resync-progress\""), "{fragment}");
    // Settings: blank secrets keep the stored ones; the horizon changes.
    let saved = w
        .http
        .post(w.api(&format!("/console/practices/{}/settings", w.harbour_link)))
        .header("cookie", session.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", csrf.as_str()),
            ("practice_id", w.harbour().practice_id.as_str()),
            ("horizon_days", "21"),
            ("pms_api_key", ""),
            ("practice_key", ""),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(saved.status(), 303);
    let link = w.api_get(&format!("/api/links/{}", w.harbour_link)).await;
    assert_eq!(link["horizon_days"], 21);
    eventually(
        "published again with the kept keys",
        Duration::from_secs(30),
        || async {
            let p = w
                .api_get(&format!("/api/practices/{}", w.harbour_link))
                .await;
            (p["last_error"].is_null() && p["running_here"] == true).then_some(())
        },
    )
    .await;
    // Logging out ends the session.
    let out = w
        .http
        .post(w.api("/console/logout"))
        .header("cookie", session.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303);
    let after = get("/console".into()).await.expect("get");
    assert_eq!(after.status(), 303, "the session is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium_logs_in_shows_findings_resyncs_explains_and_logs_a_booking()
 {
    let Some(browser) = slotbridge_testkit::browser::ready("console") else {
        return;
    };
    let w = world().await;
    // A day with bookable slots on the marketplace, and a time to explain (03:00 that day).
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    let mut book_date = None;
    for n in 1..14 {
        let date = today + jiff::Span::new().days(n);
        let slots = Value::from(w.slots(&w.harbour().practice_id, date).await);
        if slots.as_array().is_some_and(|s| !s.is_empty()) {
            book_date = Some(date);
            break;
        }
    }
    let book_date = book_date.expect("a day with slots");
    let shots = slotbridge_testkit::browser::workspace_root().join("target/console-screenshots");
    browser
        .run(
            "console.mjs",
            &[
                ("NODE_URL", w.node().url().to_string()),
                ("CONSOLE_PASSWORD", PASSWORD.to_string()),
                ("MARKET_URL", w.market_url.to_string()),
                ("PRACTICE_ID", w.harbour().practice_id.to_string()),
                ("PRACTICE_LINK", w.harbour_link.to_string()),
                ("MISCONFIGURED_LINK", w.misconfigured_link.to_string()),
                ("BOOK_DATE", book_date.to_string().to_string()),
                ("EXPLAIN_AT", format!("{book_date}T03:00").to_string()),
            ],
            &shots,
            Duration::from_secs(300),
        )
        .await;
    for shot in [
        "01-login",
        "02-practices",
        "04-findings",
        "05-resync-done",
        "07-explain",
        "09-booking-log",
    ] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_change_is_published_and_its_freshness_is_shown() {
    let w = world().await;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
        .date();
    let (date, slot) = {
        let mut found = None;
        for n in 1..14 {
            let date = today + jiff::Span::new().days(n);
            if let Some(s) = w.slots(&w.harbour().practice_id, date).await.first() {
                found = Some((date, s.clone()));
                break;
            }
        }
        found.expect("a day with slots")
    };
    w.desk_book(&w.harbour().slug, &slot).await;
    let harbour = eventually(
        "the desk change published",
        Duration::from_secs(30),
        || async {
            let p = w
                .api_get(&format!("/api/practices/{}", w.harbour_link))
                .await;
            (p["freshness"]["changes_24h"].as_u64() >= Some(1)
                && p["freshness"]["up_to_date"] == true)
                .then_some(p)
        },
    )
    .await;
    let f = &harbour["freshness"];
    let last = f["last_seconds"].as_f64().expect("last");
    let p99 = f["p99_seconds"].as_f64().expect("p99");
    assert!((0.0..30.0).contains(&last), "{f}");
    assert!(p99 >= last || f["changes_24h"].as_u64() > Some(1), "{f}");
    assert!(f["waiting_since"].is_null(), "{f}");
    // The slot is gone from the marketplace: the change was published.
    let left = w.slots(&w.harbour().practice_id, date).await;
    assert!(
        !left.contains(&slot),
        "the desk-booked slot is still offered"
    );
    let metrics = w
        .http
        .get(w.api("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let count: Option<f64> = metrics.lines().find_map(|l| {
        let rest = l.strip_prefix("slotbridge_freshness_seconds_count")?;
        rest.trim_start_matches("{}").trim().parse().ok()
    });
    assert!(count >= Some(1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium_lists_searches_pages_acts_in_bulk_and_audits() {
    let Some(browser) = slotbridge_testkit::browser::ready("console") else {
        return;
    };
    let w = world().await;
    let row = misconfigured_row(&w).await;
    let slug = row["link"]["site_slug"].as_str().expect("slug").to_owned();
    let shots = slotbridge_testkit::browser::workspace_root().join("target/console-screenshots");
    browser
        .run(
            "operations.mjs",
            &[
                ("NODE_URL", w.node().url().to_string()),
                ("CONSOLE_PASSWORD", PASSWORD.to_string()),
                ("PRACTICE_LINK", w.harbour_link.to_string()),
                ("MISCONFIGURED_LINK", w.misconfigured_link.to_string()),
                ("MISCONFIGURED_SLUG", slug.to_string()),
                ("FINDING_CODE", finding_code(&w.planted[0]).to_string()),
            ],
            &shots,
            Duration::from_secs(300),
        )
        .await;
    for shot in [
        "10-list-attention",
        "11-list-search",
        "12-list-pages",
        "13-bulk-done",
        "14-audit-log",
        "15-practice-freshness",
        "16-bulk-resync",
    ] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
    // The console's actions are in the audit log with the session that took them.
    let audit = w.api_get("/api/audit").await;
    let disable = audit
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "bulk.disable")
        .expect("the bulk disable is audited");
    assert!(
        disable["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("console session ")),
        "{disable}"
    );
    assert_eq!(disable["links"][0], w.misconfigured_link.as_str());
}
