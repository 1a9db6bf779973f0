//! `slotbridge pms-sim`: serve the Exact-style PMS simulator (see docs/pms-api.md).

use std::process::ExitCode;

pub use slotbridge_pms_sim::cli::Args;

/// Run the simulator until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    let runtime = tokio::runtime::Runtime::new()?;
    match runtime.block_on(slotbridge_pms_sim::cli::run(args)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ slotbridge_pms_sim::cli::StartError::Flag { .. }) => Ok(super::usage_error(e)),
        Err(e) => Err(e.into()),
    }
}
