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

mod batch;
mod battery;
mod plan;
mod probes;
mod report;
mod sample;
mod spawn;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trama_cli::{parse_duration, parse_size, FrameArgs};
use trama_protocol::{FrameConfig, Framing};

use crate::plan::{Check, Dialect, Expect};
use crate::probes::Options;

/// Exit status when a check failed.
const EXIT_FAILED: u8 = 1;
/// Exit status when the run itself could not happen (bad flags, no server).
const EXIT_ERROR: u8 = 2;
/// The read size for the raw dialect (the notes read 4096 at a time; bigger
/// reads just gather echoes faster).
const RAW_READ: usize = 64 * 1024;

#[derive(Parser)]
#[command(
    name = "trama-check",
    version,
    about = "Check a server that speaks the course notes' protocol against the classic defects",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    single: Single,
}

#[derive(Subcommand)]
enum Command {
    /// Check every submission folder of DIR in turn; write a CSV and a JSON summary.
    #[command(args_override_self = true)]
    Batch(BatchArgs),
}

#[derive(Args)]
struct Single {
    /// The server's address (host:port). With --spawn it may be left out if
    /// the server prints `listening on ADDR`.
    #[arg(value_name = "ADDR")]
    target: Option<String>,
    /// The same as ADDR, as a flag.
    #[arg(long, value_name = "ADDR", conflicts_with = "target")]
    addr: Option<String>,
    /// Start the server with this shell command (`sh -c`), check it, then stop it
    /// and everything it started. Enables the process checks (idle-cpu, ...).
    #[arg(long, value_name = "CMD")]
    spawn: Option<String>,
    /// Print one JSON object on stdout instead of the lines.
    #[arg(long)]
    json: bool,
    /// List the checks, what each catches and the section of the notes, then exit.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    battery: BatteryArgs,
}

#[derive(Args)]
struct BatchArgs {
    /// The folder of submissions: each subfolder is one.
    dir: PathBuf,
    /// The command that starts a submission's server; `{}` is its folder
    /// (e.g. "python3 {}/servidor.py"). It runs inside that folder.
    #[arg(long, value_name = "CMD")]
    spawn: String,
    /// Where every submission listens (e.g. 127.0.0.1:8080); without it, each
    /// must print `listening on ADDR`.
    #[arg(long)]
    addr: Option<String>,
    /// Most time one submission's battery may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time_limit: Duration,
    /// Where to write the table (one row per submission, one column per check).
    #[arg(long, default_value = "trama-check.csv")]
    csv: PathBuf,
    /// Where to write the JSON summary.
    #[arg(long, default_value = "trama-check.json")]
    json: PathBuf,
    #[command(flatten)]
    battery: BatteryArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    /// A length header before every message.
    Framed,
    /// No header: a message is what one recv() returns.
    Raw,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExpectArg {
    /// The server sends each message back.
    Echo,
    /// The server answers each message with one message (the same answer for the same message).
    Reply,
}

#[derive(Args)]
struct BatteryArgs {
    /// How the server frames messages.
    #[arg(long, value_enum, default_value = "framed")]
    dialect: DialectArg,
    /// What the server sends back for each message.
    #[arg(long, value_enum, default_value = "echo")]
    expect: ExpectArg,
    /// Run only these checks (repeat the flag; names as in --list).
    #[arg(long = "check", value_name = "NAME")]
    checks: Vec<String>,
    /// How long any one answer or connection may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// How long a spawned server may take to listen.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    start_timeout: Duration,
    /// Clients connected at once by concurrent-clients.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Pause between the one-byte writes of byte-at-a-time.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    byte_gap: Duration,
    /// Wait after clients leave before the process is measured.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    settle: Duration,
    /// How long idle CPU is measured.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    idle_window: Duration,
    /// Most idle CPU allowed, in percent of one core.
    #[arg(long, default_value_t = 10.0)]
    idle_cpu_limit: f64,
    /// Most growth of peak memory allowed after a hostile header (e.g. 64MiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    memory_limit: u64,
    #[command(flatten)]
    frame: FrameArgs,
}

impl BatteryArgs {
    fn options(&self) -> Result<Options, String> {
        let dialect = match self.dialect {
            DialectArg::Framed => Dialect::Framed,
            DialectArg::Raw => Dialect::Raw,
        };
        let frame = match dialect {
            Dialect::Framed => self.frame.frame_config(true),
            Dialect::Raw => FrameConfig::builder()
                .framing(Framing::Unframed)
                .max_frame_len(self.frame.max_frame.unwrap_or(RAW_READ))
                .build(),
        }
        .map_err(|e| e.to_string())?;
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.idle_cpu_limit.is_nan() || self.idle_cpu_limit < 0.0 {
            return Err("--idle-cpu-limit must be a percentage".into());
        }
        Ok(Options {
            dialect,
            expect: match self.expect {
                ExpectArg::Echo => Expect::Echo,
                ExpectArg::Reply => Expect::Reply,
            },
            frame,
            timeout: self.timeout.max(Duration::from_millis(1)),
            clients: self.clients,
            byte_gap: self.byte_gap,
            settle: self.settle,
            idle_window: self.idle_window.max(Duration::from_millis(100)),
            idle_cpu_limit: self.idle_cpu_limit,
            memory_limit: self.memory_limit,
        })
    }

    fn checks(&self) -> Result<Vec<Check>, String> {
        if self.checks.is_empty() {
            return Ok(Check::ALL.to_vec());
        }
        self.checks
            .iter()
            .map(|n| {
                Check::from_name(n)
                    .ok_or_else(|| format!("no check called {n:?} (trama-check --list shows them)"))
            })
            .collect()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    spawn::stop_servers_on_interrupt();
    let result = match cli.command {
        Some(Command::Batch(args)) => run_batch(args),
        None => run_single(cli.single),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trama-check: {e}");
            ExitCode::from(EXIT_ERROR)
        }
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

fn run_single(args: Single) -> Result<ExitCode, String> {
    if args.list {
        print!("{}", list());
        return Ok(ExitCode::SUCCESS);
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
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(if report.count(plan::Status::Fail) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn run_batch(args: BatchArgs) -> Result<ExitCode, String> {
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
    println!(
        "{} submissions; wrote {} and {}",
        rows.len(),
        b.csv.display(),
        b.json.display()
    );
    Ok(ExitCode::SUCCESS)
}
