//! `slotbridge demo` is ready within 10 s and its marketplace shows bookable slots.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_is_ready_within_10_seconds_and_its_marketplace_shows_bookable_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready.json");
    let record = dir.path().join("record.jsonl");
    let started = Instant::now();
    let _child = Kill(
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
    let slots = rt.block_on(async {
        let today = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::get("Australia/Sydney").expect("tz"))
            .date();
        let http = reqwest::Client::new();
        let mut total = 0;
        for n in 0..7 {
            let day = today + jiff::Span::new().days(n);
            let url = format!(
                "{}/_market/practices/{}/slots?date={day}",
                info["market"].as_str().expect("market"),
                info["practice_id"].as_str().expect("id")
            );
            let v: serde_json::Value = http
                .get(url)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            total += v.as_array().map(Vec::len).unwrap_or(0);
        }
        total
    });
    assert!(slots > 0, "no bookable slots in the next week");
    // --record: every call the integration made, with secrets masked.
    let recorded = std::fs::read_to_string(&record).expect("record file");
    assert!(recorded.lines().count() > 3, "{recorded}");
    assert!(recorded.contains("\"***\""), "secrets are masked");
}
