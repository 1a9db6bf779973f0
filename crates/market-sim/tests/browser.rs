//! The simulator's pages in headless Chromium (Debian's `chromium`): the admin page and the
//! patient's booking page render, with their forms, as a browser sees them; the patient page
//! groups a day by practitioner, then appointment type, and reads at 375 px (driven by
//! playwright-core, tests/browser/patient.mjs; screenshots under target/market-sim-screenshots).
//!
//! Chromium is found as `$CHROMIUM` or `chromium` on the PATH, Node.js as `node`. Without them
//! the tests say so and skip; under CI (`CI` set) they fail unless `SLOTBRIDGE_SKIP_BROWSER` is
//! set.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::json;
use slotbridge_market_sim::MarketSim;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    })
}

async fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("chromium finishes within 2 minutes")
        .expect("chromium output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Skip visibly on a developer machine; under CI a missing browser or Node fails the test.
fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none() || std::env::var_os("SLOTBRIDGE_SKIP_BROWSER").is_some(),
        "CI is set but {what} (set SLOTBRIDGE_SKIP_BROWSER to skip on purpose)"
    );
    eprintln!("SKIPPED browser test: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_and_booking_pages_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return missing("chromium is not installed (set CHROMIUM)");
    };
    let sim = MarketSim::builder()
        .consumer("slotbridge", "k")
        .build()
        .unwrap();
    let (pid, key) = sim
        .create_practice("Harbour Dental", "Australia/Sydney", "slotbridge")
        .unwrap();
    let h = sim
        .serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let api = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", h.api_url()))
            .header("api-key", "k")
            .header("practice-id", &pid)
            .header("practice-key", &key)
            .json(&body)
            .send()
    };
    api(
        "/config/pmsResources/snapshot",
        json!([{"pmsResourceId": "R1", "pmsResourceName": "Dr Do Good"}]),
    )
    .await
    .unwrap();
    api(
        "/config/pmsAppointmentTypes/snapshot",
        json!([{"pmsAppointmentTypeId": "HE", "pmsAppointmentTypeName": "Healthengine", "pmsAppointmentLength": 30}]),
    )
    .await
    .unwrap();
    http.post(format!(
        "{}/_market/practices/{pid}/auto-link",
        h.base_url()
    ))
    .send()
    .await
    .unwrap();
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap();
    api(
        "/availability/snapshot",
        json!({"date": day.to_string(), "pmsResourceId": "R1", "availability": [{"start": "09:00", "end": "10:00", "slotLength": 1800}]}),
    )
    .await
    .unwrap();

    let admin = dump_dom(&browser, &format!("{}/admin/practices/{pid}", h.base_url())).await;
    for needle in [
        "Grant new consent",
        "Dr Do Good",
        "Linked PMS Appointment",
        "Refresh linked PMS appointment types",
        "Create new type",
    ] {
        assert!(
            admin.contains(needle),
            "the admin page lacks {needle:?}:\n{admin}"
        );
    }
    let book = dump_dom(&browser, &format!("{}/book/{pid}?date={day}", h.base_url())).await;
    assert!(
        book.contains("09:00") && book.contains("09:30"),
        "the booking page lists the slots:\n{book}"
    );
    assert!(
        book.contains("<form") && book.contains("Book"),
        "with a form to book:\n{book}"
    );
}

/// A practice of `practitioners` (each its own appointment book) and `types` (each linked for
/// every practitioner), with a morning of half-hour slots the day after tomorrow: the
/// simulator's base URL, the practice id and the day.
async fn practice_with_a_morning(
    practitioners: &[&str],
    types: &[&str],
) -> (slotbridge_market_sim::SimHandle, String, jiff::civil::Date) {
    let sim = MarketSim::builder()
        .consumer("slotbridge", "k")
        .build()
        .unwrap();
    let (pid, key) = sim
        .create_practice("Harbour Dental", "Australia/Sydney", "slotbridge")
        .unwrap();
    let h = sim
        .serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let api = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", h.api_url()))
            .header("api-key", "k")
            .header("practice-id", &pid)
            .header("practice-key", &key)
            .json(&body)
            .send()
    };
    let resources: Vec<_> = practitioners
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"pmsResourceId": format!("R{i}"), "pmsResourceName": name}))
        .collect();
    api("/config/pmsResources/snapshot", json!(resources))
        .await
        .unwrap();
    let kinds: Vec<_> = types
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"pmsAppointmentTypeId": format!("T{i}"), "pmsAppointmentTypeName": name, "pmsAppointmentLength": 30}))
        .collect();
    api("/config/pmsAppointmentTypes/snapshot", json!(kinds))
        .await
        .unwrap();
    http.post(format!(
        "{}/_market/practices/{pid}/auto-link",
        h.base_url()
    ))
    .send()
    .await
    .unwrap();
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap();
    for i in 0..practitioners.len() {
        api(
            "/availability/snapshot",
            json!({"date": day.to_string(), "pmsResourceId": format!("R{i}"), "availability": [{"start": "08:00", "end": "12:30", "slotLength": 1800}]}),
        )
        .await
        .unwrap();
    }
    (h, pid, day)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_page_groups_a_day_by_practitioner_then_type_and_reads_at_375_px() {
    let Some(browser) = chromium() else {
        return missing("chromium is not installed (set CHROMIUM)");
    };
    let practitioners = ["Dr Ana Lee", "Dr Ben Ode", "Hyg Cleo Park"];
    let types = ["Check-up", "Clean", "Emergency"];
    let (h, pid, day) = practice_with_a_morning(&practitioners, &types).await;
    let url = format!("{}/book/{pid}?date={day}", h.base_url());

    // As a browser sees it: one section per practitioner, one heading per type in each, nine
    // half-hour times per type (08:00 to 12:00), each a form to book.
    let dom = dump_dom(&browser, &url).await;
    assert_eq!(
        dom.matches("<section class=\"practitioner\"").count(),
        practitioners.len(),
        "{dom}"
    );
    for p in practitioners {
        assert!(
            dom.contains(&format!(">{p}</h2>")),
            "no heading for {p}:\n{dom}"
        );
    }
    assert_eq!(
        dom.matches("<h3 ").count(),
        practitioners.len() * types.len(),
        "{dom}"
    );
    assert_eq!(
        dom.matches("<summary>").count(),
        practitioners.len() * types.len() * 9,
        "{dom}"
    );
    let first = &dom[dom.find("<section class=\"practitioner\"").unwrap()..];
    let first = &first[..first.find("</section>").unwrap()];
    assert!(
        first.contains("Dr Ana Lee") && !first.contains("Dr Ben Ode</h2>"),
        "a section holds one practitioner"
    );
    let order: Vec<usize> = types
        .iter()
        .map(|t| first.find(&format!(">{t}</h3>")).unwrap())
        .collect();
    assert!(order.is_sorted(), "types in their order: {order:?}");
    let morning: Vec<usize> = ["08:00", "08:30", "12:00"]
        .iter()
        .map(|t| first.find(&format!("<summary>{t}</summary>")).unwrap())
        .collect();
    assert!(morning.is_sorted(), "times in order");

    // At 375 px: nothing wider than the screen, times as tap targets, a form across the width.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("tests/browser");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        return missing("Node.js is not installed");
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        let ci = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output();
        if !ci.as_ref().is_ok_and(|o| o.status.success()) {
            return missing("`npm ci` in tests/browser failed");
        }
    }
    let shots = root.join("target/market-sim-screenshots");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("node")
            .arg("patient.mjs")
            .current_dir(&dir)
            .env("CHROMIUM", &browser)
            .env("PAGE_URL", &url)
            .env("SCREENSHOTS", &shots)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test finishes within 3 minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("browser: all steps passed"),
        "the patient page test failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    for shot in ["patient-375px", "patient-375px-open"] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
}
