//! `trama-bench`'s entry: parse the flags, run, and say how it went in the
//! exit status (the load generator itself is the `trama_bench` library).

use std::process::ExitCode;

use clap::Parser;
use trama_bench::flags::Cli;

fn main() -> ExitCode {
    match trama_bench::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trama-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
