//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
//! Bad input is reported as one clear line on stderr with exit status 2 (see [`usage_error`]).

use std::process::ExitCode;

pub mod market_sim;
pub mod matching;
pub mod pms_sim;
pub mod slots;

/// Report bad input: one line naming the field and the problem, exit status 2.
#[allow(dead_code)] // used by the input-reading subcommands as they land
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
