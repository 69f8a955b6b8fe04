//! `trama-check`: a conformance run for any server that speaks the course
//! notes' protocol (a 4-byte big-endian length, then the message; or the
//! notes' unframed dialect).
//!
//! It runs a battery of probes against a server (one already running at
//! ADDR, or one it starts with `--spawn`), prints one line per check with
//! the reason in numbers, and exits 0 only if no check failed. `batch`
//! checks a folder of submissions one at a time. The checks, what each
//! catches and the section of the notes it comes from are in
//! `docs/CHECKS.md` (and `--list`). `--program KIND` checks the notes'
//! other programs (file sender and receiver, chat and echo clients, P2P
//! peer) with trama-check on the other side ([`programs`]).
//!
//! The binary only parses the flags ([`flags::Cli`]) and turns [`run`]'s
//! answer into an exit status; everything else lives here, so the checks
//! are a library the tests and other tools can drive.

mod batch;
mod battery;
pub mod flags;
mod plan;
mod probes;
pub mod programs;
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

/// `--list`: the checks of `program`, or of every kind, each kind named.
fn list(program: Option<programs::Program>) -> String {
    use programs::Program;
    match program {
        Some(p) if p.is_server() => server_list(),
        Some(p) => program_list(p),
        None => {
            let mut s = String::from("echo-server, reply-server (the default):\n");
            s.push_str(&indent(&server_list()));
            for p in Program::ALL.into_iter().filter(|p| !p.is_server()) {
                s.push_str(&format!("{p}:\n"));
                s.push_str(&indent(&program_list(p)));
            }
            s
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

fn program_list(program: programs::Program) -> String {
    let mut s = String::new();
    for c in program.checks() {
        s.push_str(&format!(
            "{}{}\n    catches: {}\n    notes: \"{}\"\n",
            c.name(),
            c.needs(),
            c.purpose(),
            c.notes_section()
        ));
    }
    s
}

fn server_list() -> String {
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
    let program = args.program.map(flags::ProgramArg::program);
    if args.list {
        trama_cli::out::bytes(list(program).as_bytes());
        return Ok(Outcome::Passed);
    }
    let opts = args.battery.options_for(program)?;
    if let Some(p) = program.filter(|p| !p.is_server()) {
        return run_program(p, &args, &opts);
    }
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

/// A program kind that is not a server: its own checks, the same report.
fn run_program(
    program: programs::Program,
    args: &Single,
    opts: &probes::Options,
) -> Result<Outcome, String> {
    use programs::Program;
    let checks = args.battery.program_checks(program)?;
    let addr = args.target.clone().or(args.addr.clone());
    if args.spawn.is_none() && !(program == Program::FileReceiver && addr.is_some()) {
        return Err(format!(
            "--program {program} starts the program for each check: give --spawn CMD"
        ));
    }
    if program == Program::FileReceiver && args.saved.is_none() {
        return Err(
            "--program file-receiver needs --saved PATH, the file the program writes".into(),
        );
    }
    if program == Program::FileSender && args.sent.is_none() {
        return Err("--program file-sender needs --sent PATH, the file the program reads".into());
    }
    let ctx = programs::Context {
        opts,
        spawn: args.spawn.clone(),
        addr,
        peer: args.peer.clone(),
        saved: args.saved.clone(),
        sent: args.sent.clone(),
        start_timeout: args.battery.start_timeout,
    };
    let report = programs::run(program, &ctx, &checks);
    print_report(&report, args.json);
    Ok(if report.count(plan::Status::Fail) == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

fn print_report(report: &report::Report, json: bool) {
    if json {
        trama_cli::say!("{}", report.json());
    } else {
        trama_cli::out::bytes(report.text().as_bytes());
    }
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
