//! `slotbridge cliniko-sim`: serve the Cliniko API simulator (see docs/cliniko-sim.md), with
//! generated practices whose API keys and business ids it prints.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use slotbridge_cliniko_sim::{ClinikoSim, generate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen. The API is under `/v1` (shard au1) and `/{shard}/v1`; the control API
    /// under `/_sim`.
    #[arg(long, default_value = "127.0.0.1:7303")]
    listen: SocketAddr,
    /// How many generated practices to seed (more can be added with `POST /_sim/practices`).
    #[arg(long, default_value_t = 1)]
    practices: u32,
    /// The generator's seed: the same seed gives the same practices.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Fill each diary this much (0 to 1) over the next two weeks.
    #[arg(long, default_value_t = 0.6)]
    fill: f64,
}

/// Serve the simulator until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.fill) {
        return Ok(super::usage_error(format!(
            "--fill: expected a number from 0 to 1, found {}",
            args.fill
        )));
    }
    super::init_tracing(false);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let sim = ClinikoSim::builder().build();
    let mut seeded = Vec::new();
    for i in 0..u64::from(args.practices) {
        let spec = generate::practice(args.seed + i, "au1");
        let today = slotbridge_testkit::today_in(&spec.time_zone);
        let name = spec.name.clone();
        let p = sim
            .seed(spec)
            .map_err(|e| anyhow::anyhow!("seeding practice {i}: {e}"))?;
        generate::fill_diary(&sim, &p, args.seed + i, today, 14, args.fill)
            .map_err(|e| anyhow::anyhow!("filling practice {i}'s diary: {e}"))?;
        seeded.push((name, p));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; choose another with --listen",
                args.listen
            )
        })?;
    let handle = slotbridge_cliniko_sim::serve(listener, sim)
        .await
        .context("starting the Cliniko simulator")?;
    println!("Cliniko simulator on {}/v1", handle.base_url());
    for (name, p) in &seeded {
        println!(
            "{name}: API key {}, business {}",
            p.api_key,
            p.business_ids.join(", ")
        );
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
