//! `slotbridge market-sim`: a thin wrapper over `slotbridge_market_sim::cli`.

use std::process::ExitCode;

use anyhow::Context as _;

pub use slotbridge_market_sim::cli::Args;

/// Serve the marketplace simulator until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime
        .block_on(slotbridge_market_sim::cli::run(args))
        .context("market-sim")?;
    Ok(ExitCode::SUCCESS)
}
