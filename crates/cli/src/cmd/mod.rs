//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
//! Bad input is reported as one clear line on stderr with exit status 2 (see [`usage_error`]).

use std::process::ExitCode;

pub mod bench;
pub mod cliniko_sim;
pub mod demo;
pub mod doctor;
pub mod explain;
pub mod market_sim;
pub mod matching;
pub mod pms_sim;
pub mod rotate_keys;
pub mod run;
pub mod slots;

/// Report bad input: one line naming the field and the problem, exit status 2.
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Log to stderr, as text or JSON lines; `RUST_LOG` filters (default `info`).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
