//! `slotbridge pms-sim`: the command-line arguments and the server loop.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{DeskAction, Faults, PmsSim, RateLimit};

/// Serve the Exact-style PMS simulator.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7300", env = "PMS_SIM_LISTEN")]
    pub listen: SocketAddr,
    /// How many practices to generate besides the demo practice Harbour Dental.
    #[arg(long, default_value_t = 10)]
    pub practices: u32,
    /// Generation seed: the same seed gives the same practices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the misconfiguration manifest (JSON) to this file.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Per-key rate limit in requests per second (0 turns it off).
    #[arg(long, default_value_t = 50.0)]
    pub rate_limit: f64,
    /// Per-key burst allowance.
    #[arg(long, default_value_t = 200.0)]
    pub rate_burst: f64,
    /// Unchanged generated practices kept in memory at most.
    #[arg(long, default_value_t = crate::DEFAULT_RESIDENT_CAP)]
    pub resident_cap: usize,
    /// Weight budget of the generated practices in memory: a practice weighs 1, each diary day
    /// read 1, its patient files 8 (about 16 KB a unit); unchanged ones are dropped beyond it.
    #[arg(long, default_value_t = crate::DEFAULT_RESIDENT_BUDGET)]
    pub resident_budget: usize,
    /// Faults in force from the start, as the JSON of `PUT /_sim/faults`.
    #[arg(long, value_name = "JSON")]
    pub faults: Option<String>,
    /// Book at the desk: `{"site","practitioner","start","end"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub book: Vec<String>,
    /// Remove an appointment: `{"site","id"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub remove: Vec<String>,
    /// Mark an appointment that has started as not attended: `{"site","id"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub did_not_attend: Vec<String>,
    /// Add a block: `{"site","practitioner"?,"date","start","end","kind"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub block: Vec<String>,
    /// Switch stacking: `{"site","enabled"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub stacking: Vec<String>,
    /// Rename a booking reason: `{"site","reason","name"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub rename_reason: Vec<String>,
    /// Delete a booking reason: `{"site","reason"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub delete_reason: Vec<String>,
    /// Replace a practitioner's sessions: `{"site","practitioner","sessions","breaks"}`.
    #[arg(long, value_name = "JSON")]
    pub sessions: Vec<String>,
    /// Publish a practitioner online or stop (Online Booking Configuration):
    /// `{"site","practitioner","enabled","duration_minutes"?}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub online_booking: Vec<String>,
    /// Close the practice on a date: `{"site","date"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub close_date: Vec<String>,
    /// Open a closed date again: `{"site","date"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub reopen_date: Vec<String>,
    /// Revoke an API key: `{"site","key"}` (repeatable).
    #[arg(long, value_name = "JSON")]
    pub revoke_key: Vec<String>,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A flag's value is malformed.
    #[error("--{flag}: {detail}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A desk flag could not be applied.
    #[error("--{flag}: {detail}")]
    Desk {
        /// The flag.
        flag: &'static str,
        /// The problem's detail.
        detail: String,
    },
    /// I/O (binding, writing the manifest).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Args {
    /// The desk actions of the flags, in the order: book, remove, did not attend, block,
    /// stacking, rename, delete reason, sessions, online booking, close date, reopen date, revoke
    /// key.
    pub fn desk_actions(&self) -> Result<Vec<(&'static str, DeskAction)>, StartError> {
        let groups: [(&'static str, &'static str, &Vec<String>); 12] = [
            ("book", "book", &self.book),
            ("remove", "remove", &self.remove),
            ("did-not-attend", "did_not_attend", &self.did_not_attend),
            ("block", "block", &self.block),
            ("stacking", "stacking", &self.stacking),
            ("rename-reason", "rename_reason", &self.rename_reason),
            ("delete-reason", "delete_reason", &self.delete_reason),
            ("sessions", "sessions", &self.sessions),
            ("online-booking", "online_booking", &self.online_booking),
            ("close-date", "close_date", &self.close_date),
            ("reopen-date", "reopen_date", &self.reopen_date),
            ("revoke-key", "revoke_key", &self.revoke_key),
        ];
        let mut out = Vec::new();
        for (flag, tag, values) in groups {
            for raw in values {
                let mut v: serde_json::Value =
                    serde_json::from_str(raw).map_err(|e| StartError::Flag {
                        flag,
                        detail: format!("expected a JSON object: {e}"),
                    })?;
                let obj = v.as_object_mut().ok_or_else(|| StartError::Flag {
                    flag,
                    detail: "expected a JSON object".into(),
                })?;
                obj.insert("action".into(), tag.into());
                let action = serde_json::from_value(v).map_err(|e| StartError::Flag {
                    flag,
                    detail: e.to_string(),
                })?;
                out.push((flag, action));
            }
        }
        Ok(out)
    }

    /// Build the simulator these arguments describe and apply the desk flags.
    pub fn build(&self) -> Result<PmsSim, StartError> {
        let faults: Faults = match &self.faults {
            None => Faults::default(),
            Some(raw) => {
                let f: Faults = serde_json::from_str(raw).map_err(|e| StartError::Flag {
                    flag: "faults",
                    detail: e.to_string(),
                })?;
                f.validate().map_err(|detail| StartError::Flag {
                    flag: "faults",
                    detail,
                })?;
                f
            }
        };
        let rate = (self.rate_limit > 0.0).then_some(RateLimit {
            per_second: self.rate_limit,
            burst: self.rate_burst.max(1.0),
        });
        let sim = PmsSim::builder()
            .practices(self.practices)
            .seed(self.seed)
            .rate_limit(rate)
            .resident_cap(self.resident_cap)
            .resident_budget(self.resident_budget)
            .faults(faults)
            .build();
        for (flag, action) in self.desk_actions()? {
            sim.desk(action).map_err(|p| StartError::Desk {
                flag,
                detail: p.detail,
            })?;
        }
        Ok(sim)
    }
}

/// Run the simulator until Ctrl-C.
pub async fn run(args: Args) -> Result<(), StartError> {
    let sim = args.build()?;
    if let Some(path) = &args.manifest {
        let json = serde_json::to_vec_pretty(&sim.manifest()).unwrap_or_default();
        std::fs::write(path, json).map_err(|source| StartError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| StartError::Io {
            what: format!("binding {}", args.listen),
            source,
        })?;
    let handle = sim.serve(listener).await.map_err(|source| StartError::Io {
        what: "serving".into(),
        source,
    })?;
    println!("pms-sim listening on {}", handle.base_url());
    println!(
        "demo practice: Harbour Dental, slug {} , API key {}",
        crate::DEMO_SLUG,
        crate::DEMO_API_KEY
    );
    println!(
        "generated practices: {} (seed {}); manifest at {}/_sim/manifest",
        args.practices,
        args.seed,
        handle.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        let mut full = vec!["pms-sim"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).expect("arguments").args
    }

    #[tokio::test]
    async fn desk_flags_apply_at_start() {
        let args = parse(&[
            "--practices",
            "0",
            "--stacking",
            r#"{"site":"sharbourdental","enabled":false}"#,
            "--rename-reason",
            r#"{"site":"sharbourdental","reason":"R1","name":"Health Engine"}"#,
            "--delete-reason",
            r#"{"site":"sharbourdental","reason":"R5"}"#,
            "--book",
            r#"{"site":"sharbourdental","practitioner":"1001","start":"2030-01-07T09:00:00+11:00","end":"2030-01-07T09:30:00+11:00"}"#,
            "--book",
            r#"{"site":"sharbourdental","practitioner":"1002","start":"2030-01-07T10:00:00+11:00","end":"2030-01-07T10:30:00+11:00"}"#,
            "--book",
            r#"{"site":"sharbourdental","practitioner":"1001","start":"2020-01-06T09:00:00+11:00","end":"2020-01-06T09:30:00+11:00"}"#,
            "--remove",
            r#"{"site":"sharbourdental","id":"A91001"}"#,
            "--did-not-attend",
            r#"{"site":"sharbourdental","id":"A91002"}"#,
            "--block",
            r#"{"site":"sharbourdental","date":"2030-01-08","start":"08:00","end":"09:00","kind":"meeting"}"#,
            "--sessions",
            r#"{"site":"sharbourdental","practitioner":"1004","sessions":[{"days":["tue"],"start":"09:00","end":"15:00"}]}"#,
            "--close-date",
            r#"{"site":"sharbourdental","date":"2030-01-09"}"#,
            "--close-date",
            r#"{"site":"sharbourdental","date":"2030-01-10"}"#,
            "--reopen-date",
            r#"{"site":"sharbourdental","date":"2030-01-10"}"#,
            "--revoke-key",
            r#"{"site":"sharbourdental","key":"demo-harbour-dental-key"}"#,
        ]);
        assert_eq!(args.desk_actions().expect("actions").len(), 14);
        let sim = args.build().expect("build");
        let Ok(crate::DeskOutcome::Key { api_key, .. }) = sim.desk(DeskAction::CreateKey {
            site: "sharbourdental".into(),
        }) else {
            panic!("a new key");
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let handle = sim.serve(listener).await.expect("serve");
        let http = reqwest::Client::new();
        let get = |path: String, key: &str| {
            http.get(format!("{}{path}", handle.base_url()))
                .header("x-api-key", key)
                .send()
        };
        let web: serde_json::Value = get("/api/v1/sites/sharbourdental/web-setup".into(), &api_key)
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(web["stacking"], false);
        let names: Vec<&str> = web["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(
            names.contains(&"Health Engine") && !names.contains(&"Scale & Clean"),
            "{names:?}"
        );
        let day: serde_json::Value = get(
            "/_desk/sites/sharbourdental/appointments?date=2030-01-07".into(),
            "",
        )
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        // The second booking (A91001: new ids count up from A91000, after the generated ones) was removed.
        assert_eq!(day.as_array().map(Vec::len), Some(1), "{day}");
        assert_eq!(day[0]["practitioner"], "1001", "{day}");
        let missed: serde_json::Value = get(
            "/api/v1/sites/sharbourdental/appointments/A91002".into(),
            &api_key,
        )
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        assert_eq!(missed["status"], "did_not_attend", "{missed}");
        let closed: serde_json::Value = get(
            "/api/v1/sites/sharbourdental/closed-dates?limit=500".into(),
            &api_key,
        )
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        let dates: Vec<&str> = closed["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|d| d["date"].as_str())
            .collect();
        assert!(
            dates.contains(&"2030-01-09") && !dates.contains(&"2030-01-10"),
            "{dates:?}"
        );
        let changes: serde_json::Value = get(
            "/api/v1/sites/sharbourdental/changes?limit=500".into(),
            &api_key,
        )
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        let kinds: Vec<(&str, &str)> = changes["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|c| Some((c["type"].as_str()?, c["subject"].as_str()?)))
            .collect();
        assert!(
            kinds.contains(&("closed_date.created", "2030-01-09"))
                && kinds.contains(&("closed_date.deleted", "2030-01-10")),
            "{kinds:?}"
        );
        let revoked = get(
            "/api/v1/sites/sharbourdental/practice".into(),
            crate::DEMO_API_KEY,
        )
        .await
        .expect("get");
        assert_eq!(revoked.status(), 401);
        handle.shutdown().await;
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let args = parse(&["--stacking", "{not json"]);
        let err = args.build().expect_err("bad json").to_string();
        assert!(err.starts_with("--stacking:"), "{err}");
        let args = parse(&["--remove", r#"{"site":"snowhere1","id":"A1"}"#]);
        let err = args.build().expect_err("unknown site").to_string();
        assert!(
            err.starts_with("--remove:") && err.contains("snowhere1"),
            "{err}"
        );
        let args = parse(&[
            "--reopen-date",
            r#"{"site":"sharbourdental","date":"2030-01-11"}"#,
        ]);
        let err = args.build().expect_err("not closed").to_string();
        assert!(
            err.starts_with("--reopen-date:") && err.contains("2030-01-11"),
            "{err}"
        );
        let args = parse(&[
            "--close-date",
            r#"{"site":"sharbourdental","date":"2030-02-30"}"#,
        ]);
        let err = args.build().expect_err("bad date").to_string();
        assert!(err.starts_with("--close-date:"), "{err}");
        let args = parse(&[
            "--did-not-attend",
            r#"{"site":"sharbourdental","id":"A91999"}"#,
        ]);
        let err = args.build().expect_err("no such appointment").to_string();
        assert!(
            err.starts_with("--did-not-attend:") && err.contains("A91999"),
            "{err}"
        );
        let args = parse(&["--faults", r#"{"error_rate":2}"#]);
        let err = args.build().expect_err("bad faults").to_string();
        assert!(err.contains("error_rate"), "{err}");
    }
}
