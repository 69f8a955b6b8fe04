//! `trama-check`: a conformance run for any server that speaks the course
//! notes' protocol (a 4-byte big-endian length, then the message; or the
//! notes' unframed dialect).
//!
//! It runs a battery of probes against a server (one already running at
//! ADDR, or one it starts with `--spawn`), prints one line per check with
//! the reason in numbers, and exits 0 only if no check failed. `batch`
//! checks a folder of submissions one at a time. The checks, what each
//! catches and the section of the notes it comes from are in
//! `docs/CHECKS.md` (and `--list`).
//!
//! The binary only parses the flags ([`flags::Cli`]) and turns [`run`]'s
//! answer into an exit status; everything else lives here, so the checks
//! are a library the tests and other tools can drive.

mod batch;
mod battery;
pub mod flags;
mod plan;
mod probes;
mod report;
mod sample;
mod spawn;
mod verdict;

use crate::flags::{BatchArgs, Cli, Command, Single};
use crate::plan::Check;

/// How a run ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No check failed (or there was nothing to check: `--list`, `batch`).
    Passed,
    /// At least one check failed.
    Failed,
}

/// Runs what the flags ask for, printing the report on stdout. Ctrl-C and
/// SIGTERM stop any server it started before the process ends. An `Err` is
/// a run that could not happen (bad flags, no server), worded for stderr.
pub fn run(cli: Cli) -> Result<Outcome, String> {
    spawn::stop_servers_on_interrupt();
    match cli.command {
        Some(Command::Batch(args)) => run_batch(args),
        None => run_single(cli.single),
    }
}

fn list() -> String {
    let mut s = String::new();
    for c in Check::ALL {
        let needs = match c.requirement() {
            Some(plan::Requirement::Process) if c == Check::ThreadsReleased => " [--spawn, Linux]",
            Some(plan::Requirement::Process) => " [--spawn]",
            Some(plan::Requirement::Framed) if c.needs_process() => " [framed, --spawn]",
            Some(plan::Requirement::Framed) => " [framed]",
            _ => "",
        };
        s.push_str(&format!(
            "{}{needs}\n    catches: {}\n    notes: \"{}\"\n",
            c.name(),
            c.purpose(),
            c.notes_section()
        ));
    }
    s
}

fn run_single(args: Single) -> Result<Outcome, String> {
    if args.list {
        trama_cli::out::bytes(list().as_bytes());
        return Ok(Outcome::Passed);
    }
    let opts = args.battery.options()?;
    let checks = args.battery.checks()?;
    let addr_arg = args.target.or(args.addr);
    let report = match &args.spawn {
        Some(command) => {
            let launch = spawn::Launch {
                command: command.clone(),
                cwd: None,
                addr: addr_arg,
                start_timeout: args.battery.start_timeout,
            };
            let mut server = spawn::Server::start(&launch).map_err(|e| e.to_string())?;
            let addr = server.addr();
            let target = format!("{command} ({addr})");
            let report = battery::run(&target, addr, &opts, Some(&mut server), &checks, None);
            server.stop(batch::GRACE);
            report
        }
        None => {
            let Some(a) = addr_arg else {
                return Err("give the server's ADDR, or --spawn CMD to start it".into());
            };
            let addr = spawn::resolve(&a).map_err(|e| e.to_string())?;
            battery::run(&a, addr, &opts, None, &checks, None)
        }
    };
    if args.json {
        trama_cli::say!("{}", report.json());
    } else {
        trama_cli::out::bytes(report.text().as_bytes());
    }
    Ok(if report.count(plan::Status::Fail) == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

fn run_batch(args: BatchArgs) -> Result<Outcome, String> {
    let opts = args.battery.options()?;
    let checks = args.battery.checks()?;
    let b = batch::Batch {
        dir: args.dir,
        template: args.spawn,
        addr: args.addr,
        time_limit: args.time_limit,
        start_timeout: args.battery.start_timeout,
        csv: args.csv,
        json: args.json,
    };
    let rows = batch::run(&b, &opts, &checks, &mut std::io::stdout()).map_err(|e| e.to_string())?;
    trama_cli::say!(
        "{} submissions; wrote {} and {}",
        rows.len(),
        b.csv.display(),
        b.json.display()
    );
    Ok(Outcome::Passed)
}
