//! `slotbridge market-sim`: arguments and the serve loop.

use std::{net::SocketAddr, path::PathBuf};

use crate::MarketSim;

/// Serve the marketplace simulator.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:7300",
        env = "SLOTBRIDGE_MARKET_SIM_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Multiply every window (auto-confirm 20 s, health 10 min, webhook timeout 5 s and retries
    /// 10/100/1000 s) by this factor, e.g. 0.01 for tests.
    #[arg(long, default_value_t = 1.0)]
    pub time_factor: f64,
    /// Items per page of the request lists.
    #[arg(long, default_value_t = 100)]
    pub per_page: u64,
    /// A consumer as NAME=API_KEY (repeatable). Default: slotbridge=dev-api-key.
    #[arg(long = "consumer", value_name = "NAME=API_KEY")]
    pub consumers: Vec<String>,
    /// Create a practice with this name, with consent for the first consumer, and print its id
    /// and key (repeatable).
    #[arg(long = "practice", value_name = "NAME")]
    pub practices: Vec<String>,
    /// IANA time zone of the practices created with --practice.
    #[arg(long, default_value = "Australia/Sydney")]
    pub timezone: String,
    /// Write every PMS API call received to FILE, one JSON line each.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Answer with data the spec allows but shaped differently (dob as YYYY-MM-DD, null for
    /// optional fields, unknown fields, an unknown request type, no `page` on one-page lists).
    #[arg(long)]
    pub quirks: bool,
}

/// Build the simulator from the arguments, serve until Ctrl-C.
///
/// # Errors
/// Bad arguments (the message names the flag) or the address cannot be bound.
pub async fn run(args: Args) -> std::io::Result<()> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let mut builder = MarketSim::builder()
        .time_factor(args.time_factor)
        .per_page(args.per_page)
        .quirks(args.quirks);
    let consumers = if args.consumers.is_empty() {
        vec!["slotbridge=dev-api-key".to_owned()]
    } else {
        args.consumers.clone()
    };
    let mut first = None;
    for c in &consumers {
        let (name, key) = c
            .split_once('=')
            .ok_or_else(|| invalid(format!("--consumer: expected NAME=API_KEY, found {c:?}")))?;
        first.get_or_insert(name.to_owned());
        builder = builder.consumer(name, key);
    }
    if let Some(path) = &args.record {
        builder = builder.record(path);
    }
    let sim = builder.build()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "market-sim: PMS API at http://{addr}/pms-api/v1, control API at http://{addr}/_market, admin at http://{addr}/admin"
    );
    for name in &args.practices {
        let consumer = first.as_deref().unwrap_or("slotbridge");
        let (id, key) = sim
            .create_practice(name, &args.timezone, consumer)
            .map_err(|e| invalid(format!("--practice {name:?}: {e}")))?;
        println!("practice {name:?}: practice-id {id} practice-key {key} (consent for {consumer})");
    }
    let handle = sim.serve(listener).await?;
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_flags_parse() {
        let w = Wrapper::try_parse_from([
            "market-sim",
            "--listen",
            "127.0.0.1:0",
            "--time-factor",
            "0.01",
            "--consumer",
            "slotbridge=k1",
            "--consumer",
            "other=k2",
            "--practice",
            "Harbour Dental",
            "--record",
            "calls.jsonl",
            "--quirks",
        ])
        .unwrap();
        assert!(w.args.quirks);
        assert_eq!(w.args.time_factor, 0.01);
        assert_eq!(w.args.consumers, ["slotbridge=k1", "other=k2"]);
        assert_eq!(
            w.args.record.as_deref(),
            Some(std::path::Path::new("calls.jsonl"))
        );
        assert!(Wrapper::try_parse_from(["market-sim", "--time-factor", "fast"]).is_err());
    }

    #[tokio::test]
    async fn bad_arguments_are_named() {
        let mut args = Wrapper::try_parse_from(["market-sim", "--listen", "127.0.0.1:0"])
            .unwrap()
            .args;
        args.consumers = vec!["no-equals-sign".into()];
        let e = run(args.clone()).await.unwrap_err();
        assert!(e.to_string().starts_with("--consumer:"), "{e}");
        args.consumers = vec![];
        args.time_factor = 0.0;
        let e = run(args).await.unwrap_err();
        assert!(e.to_string().contains("time factor"), "{e}");
    }
}
