//! `slotbridge doctor`: the findings for every linked practice (or one), from the admin API of a
//! running node; a table for people or JSON. Exit status 1 when any finding is an error.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's base URL.
    #[arg(long, env = "SLOTBRIDGE_URL", default_value = "http://127.0.0.1:7400")]
    url: String,
    /// The node's admin token (sent as `Authorization: Bearer`).
    #[arg(long, env = "SLOTBRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Only the link of this marketplace practice id.
    #[arg(long)]
    practice: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(doctor(args))
}

/// An HTTP client for the admin API: every request carries the bearer token when one is given.
pub fn admin_client(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .context("--token: not a valid header value")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// GET a JSON document from the admin API, turning problem+json into one clear line.
pub async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach slotbridge at {url}"))?;
    let status = r.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        anyhow::bail!(
            "{url}: the admin API wants a token: pass --token or set SLOTBRIDGE_ADMIN_TOKEN"
        );
    }
    let body: Value = r.json().await.with_context(|| format!("{url}: not JSON"))?;
    if !status.is_success() {
        anyhow::bail!(
            "{url}: {} ({})",
            body["detail"].as_str().unwrap_or("failed"),
            status
        );
    }
    Ok(body)
}

/// A practice's heading: its name (when the node knows it), marketplace id and PMS site.
fn heading(r: &Value) -> String {
    let id = r["practice_id"].as_str().unwrap_or_default();
    let site = r["site_slug"].as_str().unwrap_or_default();
    match r["name"].as_str().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("{name}: practice {id} (PMS site {site})"),
        None => format!("practice {id} (PMS site {site})"),
    }
}

async fn doctor(args: Args) -> anyhow::Result<ExitCode> {
    let http = admin_client(args.token.as_deref())?;
    let base = args.url.trim_end_matches('/');
    let links = get_json(&http, &format!("{base}/api/links")).await?;
    let links: Vec<&Value> = links
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let chosen: Vec<&Value> = links
        .into_iter()
        .filter(|l| {
            args.practice
                .as_deref()
                .is_none_or(|p| l["practice_id"].as_str() == Some(p))
        })
        .collect();
    if let Some(p) = &args.practice
        && chosen.is_empty()
    {
        return Ok(super::usage_error(format!(
            "--practice: no link for marketplace practice {p}"
        )));
    }
    let mut report = Vec::new();
    let mut errors = false;
    for link in chosen {
        let id = link["id"].as_str().unwrap_or_default();
        let findings = get_json(&http, &format!("{base}/api/links/{id}/findings")).await?;
        errors |= findings
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["severity"] == "error"));
        report.push(serde_json::json!({
            "name": link["name"],
            "practice_id": link["practice_id"],
            "site_slug": link["site_slug"],
            "link": id,
            "findings": findings,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for r in &report {
            println!("{}", heading(r));
            let findings = r["findings"].as_array().cloned().unwrap_or_default();
            if findings.is_empty() {
                println!("  no findings: everything the diagnostics check is in order\n");
                continue;
            }
            for f in findings {
                let about = [f["practitioner"].as_str(), f["reason"].as_str()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "  {:<8} {}{}",
                    f["severity"].as_str().unwrap_or_default().to_uppercase(),
                    f["code"].as_str().unwrap_or_default(),
                    if about.is_empty() {
                        String::new()
                    } else {
                        format!(" ({about})")
                    }
                );
                println!(
                    "           {}",
                    f["explanation"].as_str().unwrap_or_default()
                );
                println!("           fix: {}", f["fix"].as_str().unwrap_or_default());
            }
            println!();
        }
    }
    Ok(if errors {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_practice_is_headed_by_its_name_when_known() {
        let named = serde_json::json!({"name": "Harbour Dental", "practice_id": "1000001", "site_slug": "sharbourdental"});
        assert_eq!(
            heading(&named),
            "Harbour Dental: practice 1000001 (PMS site sharbourdental)"
        );
        let unnamed = serde_json::json!({"name": null, "practice_id": "1000001", "site_slug": "sharbourdental"});
        assert_eq!(
            heading(&unnamed),
            "practice 1000001 (PMS site sharbourdental)"
        );
    }
}
