//! `trama-files`: the notes' "Envío de muchos datos", as a tool.
//!
//! `receive` accepts any number of senders and stores each file in `--dir`;
//! `send` sends one or more files and exits 0 only when the receiver
//! confirmed every one. Files stream in constant memory, in any size, with a
//! BLAKE3 digest checked end to end, and an interrupted transfer resumes
//! where it stopped. `--raw` on both sides speaks the notes' own format:
//! a 4-byte big-endian length, the bytes, then an unframed "Gracias.".
//! `--key-file` adds the shared-key handshake; `--tls-cert`/`--tls-key` on
//! the receiver and `--tls-ca` on the sender add TLS (not with `--raw`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use trama_cli::parse_duration;

mod compat;
mod progress;
mod receive;
mod send;

#[derive(Parser)]
#[command(
    name = "trama-files",
    version,
    about = "Send files over TCP: verified, resumable, any size"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive files from any number of senders.
    Receive(ReceiveArgs),
    /// Send files to a receiver.
    Send(SendArgs),
}

/// Flags of `trama-files receive`.
#[derive(Args, Debug, Clone)]
pub struct ReceiveArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(short, long, default_value = trama_cli::ports::FILES)]
    pub addr: String,
    /// Directory to store files in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Exit after the first complete file.
    #[arg(long)]
    pub once: bool,
    /// Replace files that already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Speak the notes' format: a 4-byte length, the bytes, then an unframed "Gracias.".
    #[arg(short = 'r', long = "raw", alias = "compat", short_alias = 'c')]
    pub compat: bool,
    /// With --raw: the name to store under (default recibido.bin, numbered if taken).
    #[arg(long)]
    pub output: Option<String>,
    /// Drop a sender that sends nothing for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stall_timeout: Duration,
    /// Senders served at once (more wait in a short queue).
    #[arg(long, default_value_t = 16)]
    pub max_senders: usize,
    /// Drop a sender slower than this many bytes per second over a
    /// --rate-window of waiting for it, so a trickle cannot hold a slot
    /// (e.g. 1KiB; 0 turns it off).
    #[arg(long, default_value = "1KiB", value_parser = trama_cli::parse_size)]
    pub min_rate: u64,
    /// The window --min-rate is measured over.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub rate_window: Duration,
    /// Refuse files larger than this (e.g. 10GiB; default: no limit).
    #[arg(long, value_parser = trama_cli::parse_size)]
    pub max_size: Option<u64>,
    /// Log only errors.
    #[arg(long)]
    pub quiet: bool,
    /// The shared-key handshake (`--key-file`).
    #[command(flatten)]
    pub auth: trama_cli::AuthArgs,
    /// TLS (`--tls-cert`, `--tls-key`).
    #[command(flatten)]
    pub tls: trama_cli::TlsServerArgs,
}

/// Flags of `trama-files send`.
#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// Receiver address.
    #[arg(short, long, default_value = trama_cli::ports::FILES)]
    pub addr: String,
    /// Files to send.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Reconnect and resume this many times after a dropped connection.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Skip the end-to-end BLAKE3 digest (without TLS, lets the OS copy with sendfile).
    #[arg(long)]
    pub no_verify: bool,
    /// Speak the notes' format (one file, at most 4 GiB - 1 bytes).
    #[arg(short = 'r', long = "raw", alias = "compat", short_alias = 'c')]
    pub compat: bool,
    /// Give up on a receiver that does not answer for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// No progress bar, only the summary lines.
    #[arg(long)]
    pub quiet: bool,
    /// The shared-key handshake (`--key-file`).
    #[command(flatten)]
    pub auth: trama_cli::AuthArgs,
    /// TLS (`--tls-ca`, `--tls-server-name`).
    #[command(flatten)]
    pub tls: trama_cli::TlsClientArgs,
}

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-files");
    let quiet = match &cli.command {
        Command::Receive(a) => a.quiet,
        Command::Send(a) => a.quiet,
    };
    trama_cli::init_logging(if quiet { "error" } else { "info" });
    let result = match cli.command {
        Command::Receive(args) if args.compat => compat::receive(&args),
        Command::Receive(args) => receive::run(&args),
        Command::Send(args) if args.compat => compat::send(&args),
        Command::Send(args) => send::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => trama_cli::exit::fail("trama-files", e),
    }
}

/// The apps' error type: a message for the user.
pub type AppResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
