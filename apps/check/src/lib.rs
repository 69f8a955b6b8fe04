//! `trama-check`: a conformance run for any server that speaks the course
//! notes' protocol (a 4-byte big-endian length, then the message; or the
//! notes' unframed dialect).
//!
//! It runs a battery of probes against a server (one already running at
//! ADDR, or one it starts with `--spawn`), prints one line per check with
//! the reason in numbers, and exits 0 only if no check failed. `batch`
//! checks a folder of submissions (`--jobs N` at once, `--shard K/N` of
//! them; `merge` joins shards) and grades them for Gradescope, JUnit and
//! a TA's browser (docs/CHECKS.md, "Grading a course"). The checks, what each
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
mod grading;
mod hints;
mod html;
mod isolate;
mod lang;
mod plan;
mod probes;
pub mod programs;
mod report;
mod sample;
mod spawn;
mod transcript;
mod verdict;

use std::path::Path;

use crate::flags::{BatchArgs, Cli, Command, GradeArgs, MergeArgs, Single};
use crate::plan::Check;
use crate::report::Row;

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
    cli.lang
        .as_deref()
        .and_then(lang::Lang::parse)
        .unwrap_or_else(lang::Lang::from_env)
        .set();
    if cli.single.probe_isolation {
        return isolate::enter_network_namespace().map(|()| Outcome::Passed);
    }
    // A network namespace of its own, before any thread starts (a user
    // namespace needs a single-threaded process): a batch's job, or a
    // single run that starts its server.
    let isolated = match &cli.command {
        Some(Command::Batch(args)) => args.one.is_some(),
        Some(Command::Merge(_)) => false,
        None => cli.single.spawn.is_some(),
    };
    if isolated {
        if let Err(why) = isolate::enter_network_namespace() {
            isolate::missing(&format!(
                "the started program shares this machine's network: {why}"
            ));
        }
    }
    spawn::stop_servers_on_interrupt();
    match cli.command {
        Some(Command::Batch(args)) => run_batch(args),
        Some(Command::Merge(args)) => run_merge(args),
        None => run_single(cli.single),
    }
}

/// Write what `grade` asks for: Gradescope, JUnit and HTML. `single`: one
/// run (Gradescope and HTML for that run alone); else a batch or merge
/// (`pages`: whether to write the submissions' pages or only the index).
fn write_grades(grade: &GradeArgs, rows: &[Row], single: bool, pages: bool) -> Result<(), String> {
    let weights = match &grade.weights {
        Some(path) => grading::Weights::load(path)?,
        None => grading::Weights::default(),
    };
    let write = |path: &Path, text: String| -> Result<(), String> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &grade.gradescope {
        if single {
            for r in rows {
                write(path, format!("{:#}\n", grading::gradescope(r, &weights)))?;
            }
        } else {
            for r in rows {
                let file = path.join(&r.submission).join("results.json");
                write(&file, format!("{:#}\n", grading::gradescope(r, &weights)))?;
            }
        }
    }
    if let Some(path) = &grade.junit {
        write(path, grading::junit(rows))?;
    }
    if let Some(dir) = &grade.html {
        match (single, rows.first()) {
            (true, Some(r)) => html::write_single(dir, r)?,
            _ => html::write_batch(dir, rows, pages)?,
        }
    }
    Ok(())
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
    let lang = lang::Lang::current();
    let (catches, notes) = lang.list_labels();
    let mut s = String::new();
    for c in program.checks() {
        s.push_str(&format!(
            "{}{}\n    {catches}: {}\n    {notes}: \"{}\"\n",
            c.name(),
            c.needs(),
            lang.purpose(c.name(), c.purpose()),
            c.notes_section()
        ));
    }
    s
}

fn server_list() -> String {
    let lang = lang::Lang::current();
    let (catches, notes) = lang.list_labels();
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
            "{}{needs}\n    {catches}: {}\n    {notes}: \"{}\"\n",
            c.name(),
            lang.purpose(c.name(), c.purpose()),
            c.notes_section()
        ));
    }
    s
}

fn run_single(args: Single) -> Result<Outcome, String> {
    let program = args.program.kind();
    if args.list {
        trama_cli::out::bytes(list(program).as_bytes());
        return Ok(Outcome::Passed);
    }
    let opts = args.battery.options_for(program)?;
    isolate::set_limits(args.limits.limits());
    // A typo in the weights fails before the run, not after it.
    if let Some(w) = &args.grade.weights {
        grading::Weights::load(w)?;
    }
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
    conclude(&args.grade, args.json, report)
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
    args.program.require_files(program)?;
    let ctx = programs::Context {
        opts,
        spawn: args.spawn.clone(),
        addr,
        peer: args.program.peer.clone(),
        saved: args.program.saved.clone(),
        sent: args.program.sent.clone(),
        start_timeout: args.battery.start_timeout,
        cwd: None,
    };
    let report = programs::run(program, &ctx, &checks);
    conclude(&args.grade, args.json, report)
}

/// The end of a single run, of a server or another kind of program: the
/// grade files of its report, the report printed, and the outcome.
fn conclude(grade: &GradeArgs, json: bool, report: report::Report) -> Result<Outcome, String> {
    let row = Row {
        submission: report.target.clone(),
        error: None,
        report,
    };
    write_grades(grade, std::slice::from_ref(&row), true, true)?;
    let report = row.report;
    print_report(&report, json);
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

fn run_batch(args: Box<BatchArgs>) -> Result<Outcome, String> {
    let args = *args;
    let program = args.program.kind();
    let opts = args.battery.options_for(program)?;
    let checks = match program.filter(|p| !p.is_server()) {
        Some(p) => {
            args.program.require_files(p)?;
            args.battery
                .program_checks(p)?
                .into_iter()
                .map(Check::Program)
                .collect()
        }
        None => args.battery.checks()?,
    };
    isolate::set_limits(args.limits.limits());
    if args.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let b = batch::Batch {
        dir: args.dir,
        template: args.spawn,
        addr: args.addr,
        time_limit: args.time_limit,
        start_timeout: args.battery.start_timeout,
        csv: args.csv,
        json: args.json,
        jobs: args.jobs,
        shard: args.shard,
        in_place: args.in_place,
        program: program.filter(|p| !p.is_server()),
        saved: args.program.saved,
        sent: args.program.sent,
        peer: args.program.peer,
    };
    if let (Some(name), Some(row_out)) = (&args.one, &args.row_out) {
        batch::run_one(&b, &opts, &checks, name, row_out)?;
        return Ok(Outcome::Passed);
    }
    // Weights are read before hours of checking, so a typo fails at once.
    if let Some(w) = &args.grade.weights {
        grading::Weights::load(w)?;
    }
    let job = batch::Job {
        exe: std::env::current_exe()
            .map_err(|e| format!("cannot find this program to start the batch's jobs: {e}"))?,
        args: std::env::args_os().skip(1).collect(),
    };
    let rows = batch::run(&b, &job, &checks, &mut std::io::stdout()).map_err(|e| e.to_string())?;
    write_grades(&args.grade, &rows, false, true)?;
    trama_cli::say!(
        "{} submissions; wrote {} and {}",
        rows.len(),
        b.csv.display(),
        b.json.display()
    );
    Ok(Outcome::Passed)
}

fn run_merge(args: MergeArgs) -> Result<Outcome, String> {
    let mut rows: Vec<Row> = Vec::new();
    let (mut dirs, mut commands) = (Vec::<String>::new(), Vec::<String>::new());
    for path in &args.results {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        for (key, list) in [("dir", &mut dirs), ("command", &mut commands)] {
            let s = v[key].as_str().unwrap_or("").to_string();
            if !list.contains(&s) {
                list.push(s);
            }
        }
        let subs = v["submissions"].as_array().ok_or_else(|| {
            format!(
                "{}: no \"submissions\" list (not a batch's --json)",
                path.display()
            )
        })?;
        for s in subs {
            let row = Row::from_json(s).map_err(|e| format!("{}: {e}", path.display()))?;
            if rows.iter().any(|r| r.submission == row.submission) {
                return Err(format!(
                    "{}: submission {:?} is in more than one of the results",
                    path.display(),
                    row.submission
                ));
            }
            rows.push(row);
        }
    }
    // The order of a whole batch: by name.
    rows.sort_by(|a, b| a.submission.cmp(&b.submission));
    let checks: Vec<Check> = rows
        .first()
        .map(|r| r.report.outcomes.iter().map(|o| o.check).collect())
        .unwrap_or_default();
    batch::write_tables(
        &args.csv,
        &args.json,
        &dirs.join(", "),
        &commands.join(", "),
        &rows,
        &checks,
    )
    .map_err(|e| e.to_string())?;
    write_grades(&args.grade, &rows, false, false)?;
    trama_cli::say!(
        "{} submissions from {} results; wrote {} and {}",
        rows.len(),
        args.results.len(),
        args.csv.display(),
        args.json.display()
    );
    Ok(Outcome::Passed)
}
