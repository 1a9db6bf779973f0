//! `slotbridge`: one binary, several subcommands. This crate is thin: it parses arguments, reads
//! files and environment, and calls the library crates. Each subcommand lives in `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// slotbridge publishes a dental practice's PMS availability to an online booking marketplace
/// and writes the marketplace's bookings into the practice diary.
#[derive(Debug, Parser)]
#[command(name = "slotbridge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo: both simulators and the integration in one process, SQLite in a temporary
    /// directory, the demo practice linked.
    Demo(cmd::demo::Args),
    /// Run one integration node (see docs/operations.md).
    Run(cmd::run::Args),
    /// Reseal every stored secret with the newest master key (see docs/operations.md,
    /// "Rotating the master key").
    RotateKeys(cmd::rotate_keys::Args),
    /// Print the findings (what is wrong, how to fix it) of the linked practices.
    Doctor(cmd::doctor::Args),
    /// Explain why there is no slot at a time for a practitioner.
    Explain(cmd::explain::Args),
    /// Compute the bookable slots of a diary snapshot (see docs/snapshot.md).
    Slots(cmd::slots::Args),
    /// Match a marketplace booking's patient against PMS patients, offline.
    Match(cmd::matching::Args),
    /// Serve the Exact-style PMS simulator (see docs/pms-api.md).
    PmsSim(Box<cmd::pms_sim::Args>),
    /// Serve the marketplace simulator (see docs/market-sim.md).
    MarketSim(cmd::market_sim::Args),
    /// Serve the Cliniko API simulator (see docs/cliniko-sim.md).
    ClinikoSim(cmd::cliniko_sim::Args),
    /// Measure one node in its own process against both simulators (see docs/performance.md).
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::RotateKeys(args) => cmd::rotate_keys::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Slots(args) => cmd::slots::run(args),
        Command::Match(args) => cmd::matching::run(args),
        Command::PmsSim(args) => cmd::pms_sim::run(*args),
        Command::MarketSim(args) => cmd::market_sim::run(args),
        Command::ClinikoSim(args) => cmd::cliniko_sim::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
