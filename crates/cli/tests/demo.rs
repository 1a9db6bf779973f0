//! `slotbridge demo` is ready within 10 s and its marketplace shows bookable slots.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slotbridge_testkit::control::practitioner_of;
use slotbridge_testkit::process::KillOnDrop;
use slotbridge_testkit::{Control, HARBOUR_TZ, today_in};

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
    for key in ["market", "pms", "console", "practice_id", "site_slug"] {
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
        2,
        "Harbour Dental and the misconfigured practice"
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
