//! `trama-check`'s entry: parse the flags, run, and say how it went in the
//! exit status of every trama app (the checks themselves are the
//! `trama_check` library).

use std::process::ExitCode;

use trama_check::{flags::Cli, Outcome};
use trama_cli::exit;

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-check");
    match trama_check::run(cli) {
        Ok(Outcome::Passed) => exit::code(exit::OK),
        // The run finished and the server is wrong: a verdict, not a failure to run.
        Ok(Outcome::Failed) => exit::code(exit::VERDICT),
        Err(e) => exit::fail("trama-check", e),
    }
}
