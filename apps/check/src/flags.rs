//! The command line: clap's definitions and their check into the run's
//! options. Kept apart from the checks so the flags can be read (and
//! changed) in one place, and the checks can be driven without a parser.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trama_cli::{parse_duration, parse_size, AuthArgs, FrameArgs, TlsClientArgs};
use trama_protocol::{FrameConfig, Framing};

use crate::plan::{Check, Dialect, Expect};
use crate::probes::Options;
use crate::programs::{Program, ProgramCheck};

/// The read size for the raw dialect (the notes read 4096 at a time; bigger
/// reads just gather echoes faster).
const RAW_READ: usize = 64 * 1024;

/// Every flag of `trama-check`, as clap parsed them.
#[derive(Parser)]
#[command(
    name = "trama-check",
    version,
    about = "Check a server (or, with --program, any other program of the course notes) against the classic defects",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// The language of the report, hints and --list: es or en (default: the
    /// locale's, from LC_ALL, LC_MESSAGES or LANG; Spanish if it starts with
    /// "es"). JSON and CSV keys and status values stay English.
    #[arg(long, global = true, value_name = "es|en", value_parser = ["es", "en"])]
    pub(crate) lang: Option<String>,
    #[command(flatten)]
    pub(crate) single: Single,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check every submission folder of DIR; write a CSV and a JSON summary
    /// (and, if asked, Gradescope, JUnit and HTML results).
    #[command(args_override_self = true)]
    Batch(Box<BatchArgs>),
    /// Join the JSON results of `batch --shard` runs into one table, one JUnit
    /// file, one Gradescope file per submission and one HTML index.
    #[command(args_override_self = true)]
    Merge(MergeArgs),
}

/// Where the grades go, besides the report (single runs, batches and merges).
#[derive(Args)]
pub(crate) struct GradeArgs {
    /// Write Gradescope's results.json. A single run writes the file PATH; a
    /// batch or merge writes PATH/SUBMISSION/results.json for every submission.
    #[arg(long, value_name = "PATH")]
    pub(crate) gradescope: Option<PathBuf>,
    /// Points per check for --gradescope: `check = points` lines, `* = points`
    /// for the rest (default 1 each); see docs/CHECKS.md.
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    /// Write JUnit XML: a testsuite per submission, a testcase per check.
    #[arg(long, value_name = "PATH")]
    pub(crate) junit: Option<PathBuf>,
    /// Write static HTML pages into DIR: a page per submission with each
    /// check's verdict, its reason and the frames exchanged, and (batch,
    /// merge) an index.html linking them.
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<PathBuf>,
}

/// Limits on every program trama-check starts (setrlimit, Unix).
#[derive(Args, Clone, Debug)]
pub(crate) struct LimitArgs {
    /// Most CPU time a started program may use (RLIMIT_CPU), then it is killed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub(crate) limit_cpu: Duration,
    /// Most address space of each started process (RLIMIT_AS).
    #[arg(long, default_value = "4GiB", value_parser = parse_size)]
    pub(crate) limit_memory: u64,
    /// Most processes and threads of the user running it (RLIMIT_NPROC; the
    /// kernel counts all of that user's, and ignores it for root).
    #[arg(long, default_value_t = 4096)]
    pub(crate) limit_processes: u64,
    /// Most open files of each started process (RLIMIT_NOFILE).
    #[arg(long, default_value_t = 1024)]
    pub(crate) limit_files: u64,
    /// Largest file a started program may write (RLIMIT_FSIZE).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub(crate) limit_file_size: u64,
    /// Start programs without any of these limits.
    #[arg(long)]
    pub(crate) no_limits: bool,
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> Option<crate::isolate::Limits> {
        (!self.no_limits).then_some(crate::isolate::Limits {
            cpu: self.limit_cpu,
            memory: self.limit_memory,
            processes: self.limit_processes,
            files: self.limit_files,
            file_size: self.limit_file_size,
        })
    }
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// The JSON results of the shards (`batch --json`), in any order.
    #[arg(required = true, value_name = "RESULTS")]
    pub(crate) results: Vec<PathBuf>,
    /// Where to write the joined table.
    #[arg(long, default_value = "trama-check.csv")]
    pub(crate) csv: PathBuf,
    /// Where to write the joined JSON summary.
    #[arg(long, default_value = "trama-check.json")]
    pub(crate) json: PathBuf,
    #[command(flatten)]
    pub(crate) grade: GradeArgs,
}

#[derive(Args)]
pub(crate) struct Single {
    /// The server's address (host:port). With --spawn it may be left out if
    /// the server prints `listening on ADDR`.
    #[arg(value_name = "ADDR")]
    pub(crate) target: Option<String>,
    /// The same as ADDR, as a flag. With --program file-sender, chat-client,
    /// echo-client or peer: where trama-check listens (default 127.0.0.1:0).
    #[arg(short, long, value_name = "ADDR", conflicts_with = "target")]
    pub(crate) addr: Option<String>,
    /// Start the server with this shell command (`sh -c`), check it, then stop it
    /// and everything it started. Enables the process checks (idle-cpu, ...).
    #[arg(long, value_name = "CMD")]
    pub(crate) spawn: Option<String>,
    /// Print one JSON object on stdout instead of the lines.
    #[arg(long)]
    pub(crate) json: bool,
    /// List the checks, what each catches and the section of the notes, then exit
    /// (those of --program KIND, or every kind's).
    #[arg(long)]
    pub(crate) list: bool,
    #[command(flatten)]
    pub(crate) program: ProgramArgs,
    /// Internal: exit 0 if this process can have a network namespace of its own.
    #[arg(long, hide = true)]
    pub(crate) probe_isolation: bool,
    #[command(flatten)]
    pub(crate) grade: GradeArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) battery: BatteryArgs,
}

#[derive(Args)]
pub(crate) struct BatchArgs {
    /// The folder of submissions: each subfolder is one.
    pub(crate) dir: PathBuf,
    /// The command that starts a submission's server; `{}` is its folder
    /// (e.g. "python3 {}/servidor.py"). It runs inside that folder.
    #[arg(long, value_name = "CMD")]
    pub(crate) spawn: String,
    /// Where every submission listens (e.g. 127.0.0.1:8080); without it, each
    /// must print `listening on ADDR`.
    #[arg(short, long)]
    pub(crate) addr: Option<String>,
    /// Most time one submission's battery may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) time_limit: Duration,
    /// Where to write the table (one row per submission, one column per check).
    #[arg(long, default_value = "trama-check.csv")]
    pub(crate) csv: PathBuf,
    /// Where to write the JSON summary.
    #[arg(long, default_value = "trama-check.json")]
    pub(crate) json: PathBuf,
    /// Check N submissions at once (each in a network namespace of its own on
    /// Linux, so all can use one fixed port); the results are the same as with 1.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) jobs: usize,
    /// Check only share K of N (1-based) of the submissions, sorted by name:
    /// the 1st, N+1st, ... go to share 1. Join the results with `merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub(crate) shard: Option<(usize, usize)>,
    #[command(flatten)]
    pub(crate) program: ProgramArgs,
    /// Copy each submission into a fresh folder and run it there (the
    /// default), or run it in its own folder (`--in-place`).
    #[arg(long)]
    pub(crate) in_place: bool,
    /// Internal: check only this submission and write its row to --row-out.
    #[arg(long, hide = true, requires = "row_out")]
    pub(crate) one: Option<String>,
    /// Internal: where --one writes its row.
    #[arg(long, hide = true)]
    pub(crate) row_out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) grade: GradeArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) battery: BatteryArgs,
}

/// Which of the notes' programs is checked, and what its kind needs: the
/// same flags for a single run and for `batch`.
#[derive(Args)]
pub(crate) struct ProgramArgs {
    /// Which of the notes' programs is checked (default: a server, with the
    /// server battery and `--expect echo|reply`). The other kinds are started
    /// afresh by --spawn for each check; the command may name `{addr}`,
    /// `{host}`, `{port}` (where trama-check listens) and `{role}` (peer).
    #[arg(long, value_enum, value_name = "KIND")]
    program: Option<ProgramArg>,
    /// file-receiver: the file the program writes, relative to where it runs
    /// (in `batch`, each submission's folder).
    #[arg(long, value_name = "PATH")]
    pub(crate) saved: Option<PathBuf>,
    /// file-sender: the file the program reads, relative to where it runs (in
    /// `batch`, each submission's folder); trama-check writes it before each check.
    #[arg(long, value_name = "PATH")]
    pub(crate) sent: Option<PathBuf>,
    /// peer: where the program listens (without it, it must print `listening on ADDR`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) peer: Option<String>,
}

impl ProgramArgs {
    /// `--program`'s kind, if given.
    pub(crate) fn kind(&self) -> Option<Program> {
        self.program.map(ProgramArg::program)
    }

    /// The file a kind reads or writes must be named: the flag that is missing, if one is.
    pub(crate) fn require_files(&self, program: Program) -> Result<(), String> {
        match program {
            Program::FileReceiver if self.saved.is_none() => Err(
                "--program file-receiver needs --saved PATH, the file the program writes".into(),
            ),
            Program::FileSender if self.sent.is_none() => {
                Err("--program file-sender needs --sent PATH, the file the program reads".into())
            }
            _ => Ok(()),
        }
    }
}

/// `K/N` with 1 <= K <= N.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a share K/N with 1 <= K <= N (e.g. 2/4)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    /// A length header before every message.
    Framed,
    /// No header: a message is what one recv() returns.
    Raw,
}

/// `--program`'s kinds (the notes' programs).
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProgramArg {
    /// A server that sends each message back (the server battery).
    EchoServer,
    /// A server that answers each message (the server battery).
    ReplyServer,
    /// The improved file receiver of "Envío de muchos datos" (trama-check sends).
    FileReceiver,
    /// The improved file sender of "Envío de muchos datos" (trama-check receives).
    FileSender,
    /// The notes' chat `Client` (trama-check is the server).
    ChatClient,
    /// The notes' JSON and pickle clients (trama-check is the echo server).
    EchoClient,
    /// The notes' P2P peer (trama-check is the other peer).
    Peer,
}

impl ProgramArg {
    pub(crate) fn program(self) -> Program {
        match self {
            ProgramArg::EchoServer => Program::EchoServer,
            ProgramArg::ReplyServer => Program::ReplyServer,
            ProgramArg::FileReceiver => Program::FileReceiver,
            ProgramArg::FileSender => Program::FileSender,
            ProgramArg::ChatClient => Program::ChatClient,
            ProgramArg::EchoClient => Program::EchoClient,
            ProgramArg::Peer => Program::Peer,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExpectArg {
    /// The server sends each message back.
    Echo,
    /// The server answers each message with one message (the same answer for the same message).
    Reply,
}

#[derive(Args)]
pub(crate) struct BatteryArgs {
    /// The notes' unframed dialect: no header, a message is what one recv()
    /// returns (without it: a length header before every message).
    #[arg(short, long, conflicts_with = "dialect")]
    raw: bool,
    /// The older spelling of --raw: `--dialect raw` or `--dialect framed`.
    #[arg(long, value_enum, default_value = "framed", hide = true)]
    dialect: DialectArg,
    /// What the server sends back for each message (the same as --program
    /// echo-server or reply-server; default echo).
    #[arg(long, value_enum)]
    expect: Option<ExpectArg>,
    /// Run only these checks (repeat the flag; names as in --list).
    #[arg(long = "check", value_name = "NAME")]
    pub(crate) checks: Vec<String>,
    /// How long any one answer or connection may take.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// How long a spawned server may take to listen.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) start_timeout: Duration,
    /// Clients connected at once by concurrent-clients.
    #[arg(long, default_value_t = 50)]
    pub(crate) clients: usize,
    /// Pause between the one-byte writes of byte-at-a-time.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub(crate) byte_gap: Duration,
    /// Wait after clients leave before the process is measured.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub(crate) settle: Duration,
    /// How long idle CPU is measured.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) idle_window: Duration,
    /// Most idle CPU allowed, in percent of one core.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) idle_cpu_limit: f64,
    /// Most growth of peak memory allowed after a hostile header (e.g. 64MiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub(crate) memory_limit: u64,
    #[command(flatten)]
    pub(crate) frame: FrameArgs,
    /// The shared-key handshake on every probe's connection (`--key-file`).
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    /// TLS on every probe's connection (`--tls-ca`, `--tls-server-name`).
    #[command(flatten)]
    pub(crate) tls: TlsClientArgs,
}

impl BatteryArgs {
    pub(crate) fn options(&self) -> Result<Options, String> {
        let dialect = match (self.raw, self.dialect) {
            (true, _) | (false, DialectArg::Raw) => Dialect::Raw,
            (false, DialectArg::Framed) => Dialect::Framed,
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
                Some(ExpectArg::Echo) | None => Expect::Echo,
                Some(ExpectArg::Reply) => Expect::Reply,
            },
            frame,
            timeout: self.timeout.max(Duration::from_millis(1)),
            clients: self.clients,
            byte_gap: self.byte_gap,
            settle: self.settle,
            idle_window: self.idle_window.max(Duration::from_millis(100)),
            idle_cpu_limit: self.idle_cpu_limit,
            memory_limit: self.memory_limit,
            tls: self.tls.config()?,
            auth: self.auth.config()?,
        })
    }

    /// The server battery's options for `program` (`--program echo-server`
    /// is `--expect echo`; the two must agree when both are given).
    pub(crate) fn options_for(&self, program: Option<Program>) -> Result<Options, String> {
        let mut opts = self.options()?;
        let want = match program {
            Some(Program::EchoServer) => Some((ExpectArg::Echo, Expect::Echo)),
            Some(Program::ReplyServer) => Some((ExpectArg::Reply, Expect::Reply)),
            _ => None,
        };
        if let Some((arg, expect)) = want {
            if self.expect.is_some_and(|e| e != arg) {
                return Err(
                    "--expect and --program disagree about what the server sends back".into(),
                );
            }
            opts.expect = expect;
        }
        Ok(opts)
    }

    /// The checks of a program kind that is not a server (`--check`, or all of its own).
    pub(crate) fn program_checks(&self, program: Program) -> Result<Vec<ProgramCheck>, String> {
        if self.checks.is_empty() {
            return Ok(program.checks().to_vec());
        }
        self.checks
            .iter()
            .map(|n| {
                ProgramCheck::from_name(program, n).ok_or_else(|| {
                    format!("{program} has no check called {n:?} (trama-check --program {program} --list shows them)")
                })
            })
            .collect()
    }

    pub(crate) fn checks(&self) -> Result<Vec<Check>, String> {
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
