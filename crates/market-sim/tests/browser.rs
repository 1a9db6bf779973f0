//! The simulator's pages in headless Chromium (Debian's `chromium`): the admin page and the
//! patient's booking page render, with their forms, as a browser sees them.
//!
//! Chromium is found as `$CHROMIUM` or `chromium` on the PATH. Without it the test says so and
//! skips; under CI (`CI` set) it fails unless `SLOTBRIDGE_SKIP_BROWSER` is set.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_and_booking_pages_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CI").is_some() && std::env::var_os("SLOTBRIDGE_SKIP_BROWSER").is_none()
        {
            panic!("chromium is not installed (set CHROMIUM or SLOTBRIDGE_SKIP_BROWSER)");
        }
        eprintln!("SKIPPED browser test: chromium not found (set CHROMIUM)");
        return;
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
