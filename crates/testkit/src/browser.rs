//! Browser tests in headless Chromium: find the browser and Node, install the scripts'
//! packages (`tests/browser`, once at a time), and run one script, which prints
//! `browser: all steps passed` when every step did.
//!
//! On a developer machine a missing browser or Node skips the test visibly; under CI it fails,
//! unless `SLOTBRIDGE_SKIP_BROWSER` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a browser test needs: Chromium and the scripts' folder, its packages installed.
#[derive(Debug, Clone)]
pub struct Browser {
    /// The Chromium executable (`CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`).
    pub chromium: PathBuf,
    /// `tests/browser` of the workspace.
    pub scripts: PathBuf,
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Chromium: `CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    })
}

/// Skip the `suite`'s browser test visibly on a developer machine; under CI fail it.
pub fn skipped(suite: &str, what: &str) {
    assert!(
        std::env::var_os("CI").is_none() || std::env::var_os("SLOTBRIDGE_SKIP_BROWSER").is_some(),
        "CI is set but {what} (set SLOTBRIDGE_SKIP_BROWSER to skip on purpose)"
    );
    eprintln!("SKIPPED {suite} browser test: {what}");
}

/// Chromium, Node and the scripts' packages; `None` (the test skipped, or failed under CI)
/// when one is missing.
pub fn ready(suite: &str) -> Option<Browser> {
    let Some(chromium) = chromium() else {
        skipped(
            suite,
            "chromium is not installed (scripts/ensure-chromium installs it)",
        );
        return None;
    };
    let scripts = workspace_root().join("tests/browser");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        skipped(suite, "Node.js is not installed");
        return None;
    }
    // The browser tests run in parallel: one `npm ci` at a time, and only when still needed.
    static NPM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = NPM.lock().unwrap_or_else(|p| p.into_inner());
    if !scripts
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        let ci = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&scripts)
            .output();
        match ci {
            Ok(o) if o.status.success() => {}
            other => {
                skipped(
                    suite,
                    &format!(
                        "`npm ci` in tests/browser failed: {}",
                        other
                            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                            .unwrap_or_else(|e| e.to_string())
                    ),
                );
                return None;
            }
        }
    }
    Some(Browser { chromium, scripts })
}

impl Browser {
    /// Run `node {script}` with `CHROMIUM`, `SCREENSHOTS` (`shots`) and `env` set, and assert it
    /// ends well within `within`, printing `browser: all steps passed`.
    pub async fn run(&self, script: &str, env: &[(&str, String)], shots: &Path, within: Duration) {
        let out = tokio::time::timeout(
            within,
            tokio::process::Command::new("node")
                .arg(script)
                .current_dir(&self.scripts)
                .env("CHROMIUM", &self.chromium)
                .env("SCREENSHOTS", shots)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{script} finishes within {within:?}"))
        .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stdout}");
        assert!(
            out.status.success() && stdout.contains("browser: all steps passed"),
            "the browser test {script} failed (screenshots in {}):\n{stdout}\n{stderr}",
            shots.display()
        );
    }
}
