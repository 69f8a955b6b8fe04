//! `trama-check`'s entry: parse the flags, run, and say how it went in the
//! exit status (the checks themselves are the `trama_check` library).

use std::process::ExitCode;

use clap::Parser;
use trama_check::{flags::Cli, Outcome};

/// Exit status when a check failed.
const EXIT_FAILED: u8 = 1;
/// Exit status when the run itself could not happen (bad flags, no server).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    match trama_check::run(Cli::parse()) {
        Ok(Outcome::Passed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("trama-check: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
