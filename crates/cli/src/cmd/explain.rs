//! `slotbridge explain`: "why is there no slot at this time for this practitioner?", answered by
//! a running node's admin API from a fresh read of the PMS.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's base URL.
    #[arg(long, env = "SLOTBRIDGE_URL", default_value = "http://127.0.0.1:7400")]
    url: String,
    /// The node's admin token (sent as `Authorization: Bearer`).
    #[arg(long, env = "SLOTBRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The marketplace practice id.
    #[arg(long)]
    practice: String,
    /// The PMS practitioner id.
    #[arg(long)]
    practitioner: String,
    /// The practice-local start time, e.g. 2026-04-07T10:00.
    #[arg(long)]
    at: String,
    /// Only this booking reason id.
    #[arg(long)]
    reason: Option<String>,
    /// Print JSON instead of sentences.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.at.parse::<jiff::civil::DateTime>().is_err() {
        return Ok(super::usage_error(format!(
            "--at: expected a practice-local time like 2026-04-07T10:00, found {:?}",
            args.at
        )));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let http = super::doctor::admin_client(args.token.as_deref())?;
        let base = args.url.trim_end_matches('/');
        let links = super::doctor::get_json(&http, &format!("{base}/api/links")).await?;
        let Some(link) = links.as_array().and_then(|a| {
            a.iter()
                .find(|l| l["practice_id"].as_str() == Some(args.practice.as_str()))
        }) else {
            return Ok(super::usage_error(format!(
                "--practice: no link for marketplace practice {}",
                args.practice
            )));
        };
        let mut url = format!(
            "{base}/api/links/{}/explain?practitioner={}&at={}",
            link["id"].as_str().unwrap_or_default(),
            args.practitioner,
            args.at
        );
        if let Some(r) = &args.reason {
            url.push_str(&format!("&reason={r}"));
        }
        let e = super::doctor::get_json(&http, &url).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&e)?);
        } else {
            println!("{}", e["summary"].as_str().unwrap_or_default());
            for r in e["reasons"].as_array().cloned().unwrap_or_default() {
                println!(
                    "  {:<24} {}",
                    r["reason_name"].as_str().unwrap_or_default(),
                    r["detail"].as_str().unwrap_or_default()
                );
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
