//! `trama-bench`'s entry: parse the flags, run, and say how it went in the
//! exit status of every trama app (the load generator itself is the
//! `trama_bench` library).

use std::process::ExitCode;

use trama_bench::flags::Cli;

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-bench");
    match trama_bench::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => trama_cli::exit::fail("trama-bench", e),
    }
}
