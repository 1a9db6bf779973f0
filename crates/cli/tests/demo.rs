//! `slotbridge demo` is ready within 10 s and its marketplace shows bookable slots.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slotbridge_testkit::control::practitioner_of;
use slotbridge_testkit::process::KillOnDrop;
use slotbridge_testkit::{Control, HARBOUR_TZ, booking_body, eventually, patient, today_in};

#[test]
fn the_demo_is_ready_within_10_seconds_and_its_marketplace_shows_bookable_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready.json");
    let record = dir.path().join("record.jsonl");
    let started = Instant::now();
    let _child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_slotbridge"))
            .args([
                "demo",
                "--pms-listen",
                "127.0.0.1:0",
                "--market-listen",
                "127.0.0.1:0",
                "--cliniko-listen",
                "127.0.0.1:0",
            ])
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--record")
            .arg(&record)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo"),
    );
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the demo was not ready within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ready).expect("read")).expect("json");
    for key in [
        "market",
        "pms",
        "console",
        "practice_id",
        "site_slug",
        "cliniko",
        "cliniko_api_key",
        "cliniko_business_id",
        "cliniko_practice_id",
    ] {
        assert!(!info[key].is_null(), "{key} missing from {info}");
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (slots, practitioner, day) = rt.block_on(async {
        let today = today_in(HARBOUR_TZ);
        let control = Control::new(
            info["market"].as_str().expect("market"),
            info["pms"].as_str().expect("pms"),
        );
        let practice_id = info["practice_id"].as_str().expect("id");
        let mut total = 0;
        let mut practitioner = String::new();
        let mut first_day = String::new();
        for n in 0..7 {
            let day = today + jiff::Span::new().days(n);
            let v = control.slots(practice_id, day).await;
            if let Some(s) = v.first()
                && practitioner.is_empty()
            {
                practitioner = practitioner_of(s);
                first_day = day.to_string();
            }
            total += v.len();
        }
        (total, practitioner, first_day)
    });
    assert!(slots > 0, "no bookable slots in the next week");
    // The Cliniko practice: a booking on its marketplace practice ends Confirmed with exactly
    // one individual appointment in the Cliniko simulator (before doctor reads every practice).
    rt.block_on(cliniko_booking(&info));
    // doctor and explain, through the node's admin API, with the demo's admin token.
    let url = info["url"].as_str().expect("url");
    let token = info["admin_token"].as_str().expect("admin token");
    assert!(
        info["console"]
            .as_str()
            .expect("console")
            .ends_with("/console"),
        "{info}"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .args(["doctor", "--url", url, "--json"])
        .env_remove("SLOTBRIDGE_ADMIN_TOKEN")
        .output()
        .expect("doctor");
    assert_ne!(
        refused.status.code(),
        Some(0),
        "the admin API wants the token"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let doctor = Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .args(["doctor", "--url", url, "--json", "--token", token])
        .output()
        .expect("doctor");
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor json ({e}): {}",
            String::from_utf8_lossy(&doctor.stderr)
        )
    });
    let entries = report.as_array().expect("report");
    assert_eq!(
        entries.len(),
        3,
        "Harbour Dental, the misconfigured practice and the Cliniko practice"
    );
    assert!(
        entries.iter().any(|e| e["name"] == "Harbour Dental"),
        "doctor names the practices: {report}"
    );
    let errors = entries.iter().any(|e| {
        e["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["severity"] == "error"))
    });
    assert_eq!(doctor.status.code(), Some(if errors { 1 } else { 0 }));
    let misconfigured = entries
        .iter()
        .find(|e| e["practice_id"] == info["misconfigured_practice_id"])
        .expect("the misconfigured practice is linked");
    assert!(
        misconfigured["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the misconfigured practice has findings: {misconfigured}"
    );
    let harbour = Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .args(["doctor", "--url", url, "--json", "--practice"])
        .arg(info["practice_id"].as_str().expect("id"))
        .env("SLOTBRIDGE_ADMIN_TOKEN", token)
        .output()
        .expect("doctor");
    assert_eq!(
        harbour.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&harbour.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&harbour.stdout).expect("doctor json");
    assert_eq!(report[0]["practice_id"], info["practice_id"]);
    let explain = Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .args(["explain", "--url", url, "--token", token, "--practice"])
        .arg(info["practice_id"].as_str().expect("id"))
        .args([
            "--practitioner",
            &practitioner,
            "--at",
            &format!("{day}T03:00"),
        ])
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&explain.stdout);
    assert_eq!(
        explain.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    assert!(
        text.contains("No slot") && text.contains("outside their sessions"),
        "{text}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_slotbridge"))
        .args([
            "explain",
            "--url",
            url,
            "--practice",
            "1",
            "--practitioner",
            "x",
        ])
        .args(["--at", "tuesday"])
        .output()
        .expect("explain");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--at"));
    // --record: every call the integration made, with secrets masked.
    let recorded = std::fs::read_to_string(&record).expect("record file");
    assert!(recorded.lines().count() > 3, "{recorded}");
    assert!(recorded.contains("\"***\""), "secrets are masked");
}

/// Book the first slot of the demo's Cliniko practice on the marketplace; it ends Confirmed with
/// exactly one individual appointment, as `GET {cliniko}/v1/individual_appointments` shows.
async fn cliniko_booking(info: &serde_json::Value) {
    let control = Control::new(
        info["market"].as_str().expect("market"),
        info["pms"].as_str().expect("pms"),
    );
    let pid = info["cliniko_practice_id"]
        .as_str()
        .expect("cliniko practice");
    let today = today_in("Australia/Sydney");
    let slot = eventually(
        "a bookable slot of the Cliniko practice",
        Duration::from_secs(30),
        || async {
            for n in 0..14 {
                let day = today + jiff::Span::new().days(n);
                if let Some(s) = control.slots(pid, day).await.last().cloned() {
                    return Some(s);
                }
            }
            None
        },
    )
    .await;
    let body = booking_body(
        &slot,
        patient(
            "Demo",
            "Cliniko",
            "1980-03-04",
            "0411 222 333",
            "demo.cliniko@example.com",
        ),
    );
    let id = control.book(pid, &body).await;
    let booking = eventually(
        "the Cliniko booking answered",
        Duration::from_secs(20),
        || async {
            let b = control.booking(&id).await;
            (b["status"] != "Requested").then_some(b)
        },
    )
    .await;
    assert_eq!(booking["status"], "Confirmed", "{booking}");
    let cliniko = info["cliniko"].as_str().expect("cliniko");
    let key = info["cliniko_api_key"].as_str().expect("key");
    let reference = format!("slotbridge-ref: HE-{id}");
    let mut url = Some(format!("{cliniko}/v1/individual_appointments?per_page=100"));
    let mut ours = 0;
    while let Some(u) = url.take() {
        let page: serde_json::Value = control
            .http
            .get(&u)
            .basic_auth(key, Some(""))
            .header(
                "User-Agent",
                "slotbridge demo test (test@slotbridge.example)",
            )
            .header("Accept", "application/json")
            .send()
            .await
            .expect("Cliniko")
            .json()
            .await
            .expect("a page of appointments");
        ours += page["individual_appointments"]
            .as_array()
            .expect("appointments")
            .iter()
            .filter(|a| a["notes"].as_str().is_some_and(|n| n.contains(&reference)))
            .count();
        url = page["links"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(ours, 1, "exactly one appointment carries {reference}");
}
