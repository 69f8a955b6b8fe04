//! `trama-tap`: a proxy between a client and a server that shows every frame
//! going by, decoded, and disturbs the stream on purpose when asked.
//!
//! `trama-tap --listen A --to B` forwards every connection made to `A` to
//! `B`, byte for byte, and prints each frame in both directions as it passes
//! (`--json` for one JSON object per line). `--fault` slows, splits, cuts or
//! corrupts the stream (see docs/TAP.md). `--record FILE` writes the session,
//! and `trama-tap replay FILE --to B` plays the client's side of it against
//! another server and says where the answers differ. `--pcap FILE` writes
//! a capture for Wireshark (`trama-tap pcap` makes one from a recording),
//! and `trama-tap dissector` prints the Lua dissector that reads it.
//!
//! This file only knows flags and the exit statuses every trama app shares
//! (`trama_cli::exit`): what the flags mean is in the `trama-tap` library
//! (crates/tap).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use trama_cli::{exit, parse_duration, FrameArgs, Limit};
use trama_protocol::FrameConfig;
use trama_tap::{
    DecodeAs, Direction, FaultPlan, FaultSchedule, Format, ProxyConfig, Replay, Session,
    StdoutError, Tap, TapResult,
};

#[derive(Parser)]
#[command(
    name = "trama-tap",
    version,
    about = "See every frame between a client and a server, and disturb them on purpose",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    proxy: ProxyArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Play the client side of a recorded session against a server and compare the answers.
    Replay(ReplayArgs),
    /// Turn a `--record` recording into a pcapng capture for Wireshark.
    Pcap(PcapArgs),
    /// Print a Wireshark Lua dissector for the framing (save it as trama.lua).
    Dissector(DissectorArgs),
}

#[derive(Args)]
struct ProxyArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(short, long, default_value = trama_cli::ports::TAP)]
    listen: String,
    /// The server to forward every connection to.
    #[arg(short, long, required = true)]
    to: Option<String>,
    /// The notes' unframed dialect: each chunk is shown as it arrives.
    #[arg(short, long)]
    raw: bool,
    #[command(flatten)]
    frame: FrameArgs,
    /// How payloads are shown: auto, text, json, msgpack or hex.
    #[arg(long, default_value = "auto")]
    decode: DecodeAs,
    /// Show at most this many payload bytes of each frame.
    #[arg(long, default_value_t = 64)]
    show: usize,
    /// One JSON object per line on stdout (frames, faults, opens, ends), nothing else there.
    #[arg(long)]
    json: bool,
    /// Show nothing per frame (only forward, apply faults and record).
    #[arg(long, conflicts_with = "json")]
    quiet: bool,
    /// Write the session (every chunk, both ways) to FILE, for `replay`.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Write what crosses the tap to FILE as a pcapng capture, for Wireshark
    /// (`trama-tap dissector` makes the dissector to read it with).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// A fault: [c2s:|s2c:|both:]ITEM[,ITEM...], e.g. c2s:split=1,pause=1ms or
    /// s2c:corrupt-header=3:ffffffff (see docs/TAP.md). May be repeated.
    #[arg(long, value_name = "SPEC", value_parser = parse_fault)]
    fault: Vec<String>,
    /// Seed for the jitter of delay faults, to repeat a run exactly.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long connecting to the server may take (then the TLS handshake, as long).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// The shared-key handshake with the server (`--key-file`): the tap runs
    /// it for each client, which connects to the tap without a key.
    #[command(flatten)]
    auth: trama_cli::AuthArgs,
    /// TLS to the server (`--tls-ca`, `--tls-server-name`): the tap shows
    /// the decrypted frames; its clients connect to it in plain TCP.
    #[command(flatten)]
    tls: trama_cli::TlsClientArgs,
    /// TCP keepalive on both sockets of each connection (`--keepalive`).
    #[command(flatten)]
    keepalive: trama_cli::KeepaliveArgs,
    /// Close a connection with no bytes either way for this long ("off" by default).
    #[arg(long, default_value = "off")]
    idle_timeout: Limit,
    /// Drop a connection whose receiver has not taken a write for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    write_timeout: Duration,
    /// Most connections at once; more are closed at once.
    #[arg(long, default_value_t = 1000)]
    max_connections: usize,
}

#[derive(Args)]
struct ReplayArgs {
    /// A file written by `trama-tap --record`.
    file: PathBuf,
    /// The server to play it against.
    #[arg(short, long)]
    to: String,
    /// Replay only this connection of the recording (default: all, one after another).
    #[arg(long)]
    conn: Option<u64>,
    /// How long to wait for each expected answer, and for connecting.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// How differing payloads are shown: auto, text, json, msgpack or hex.
    #[arg(long, default_value = "auto")]
    decode: DecodeAs,
    /// Show at most this many bytes of a differing payload.
    #[arg(long, default_value_t = 64)]
    show: usize,
}

#[derive(Args)]
struct PcapArgs {
    /// A file written by `trama-tap --record`.
    recording: PathBuf,
    /// The capture to write (pcapng).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Args)]
struct DissectorArgs {
    /// The notes' unframed dialect: each segment is shown as an unframed chunk.
    #[arg(short, long)]
    raw: bool,
    #[command(flatten)]
    frame: FrameArgs,
    /// A TCP port the dissector decodes (may be repeated; any other port: Decode As).
    #[arg(long, value_name = "N")]
    port: Vec<u16>,
}

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-tap");
    match cli.command {
        Some(Command::Replay(args)) => {
            trama_cli::init_logging("warn");
            let replay = Replay {
                file: args.file,
                to: args.to,
                conn: args.conn,
                timeout: args.timeout,
                decode: args.decode,
                show: args.show,
            };
            match trama_tap::replay(&replay) {
                Ok(true) => exit::code(exit::OK),
                // The replay ran to the end and the answers differ: a
                // verdict, as a failed check is for trama-check.
                Ok(false) => exit::code(exit::VERDICT),
                Err(e) => failed(e),
            }
        }
        Some(Command::Pcap(args)) => {
            trama_cli::init_logging("warn");
            match trama_tap::pcap_from_recording(&args.recording, &args.output) {
                Ok(done) => {
                    eprintln!(
                        "wrote {}: {} connection(s), {} chunk(s)",
                        args.output.display(),
                        done.connections,
                        done.chunks
                    );
                    exit::code(exit::OK)
                }
                Err(e) => failed(e),
            }
        }
        Some(Command::Dissector(args)) => {
            trama_cli::init_logging("warn");
            let frame = match frame_config(args.raw, &args.frame) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("trama-tap: {e}");
                    return exit::code(exit::USAGE);
                }
            };
            let lua = trama_tap::dissector(frame, &args.port);
            trama_cli::out::bytes(lua.as_bytes());
            exit::code(exit::OK)
        }
        None => {
            trama_cli::init_logging("info");
            if let Err(e) = check_faults(&cli.proxy) {
                eprintln!("trama-tap: {e}");
                return exit::code(exit::USAGE);
            }
            match proxy(cli.proxy) {
                Ok(()) => exit::code(exit::OK),
                Err(e) => failed(e),
            }
        }
    }
}

/// How a session that could not go on ends: quietly when the reader of
/// stdout went away (`trama-tap ... | head -1`), with status 1 and the
/// error otherwise.
fn failed(e: Box<dyn std::error::Error>) -> ExitCode {
    match e.downcast_ref::<StdoutError>() {
        Some(StdoutError(io)) => trama_cli::out::end_on_write_error(io),
        None => exit::fail("trama-tap", e),
    }
}

/// A `--fault` argument, checked as the command line is read so a typo is
/// bad usage (status 2), as clap reports any other bad value.
fn parse_fault(spec: &str) -> Result<String, String> {
    spec.parse::<FaultPlan>()
        .map(|_| spec.to_string())
        .map_err(|e| e.to_string())
}

/// Faults the framing cannot carry out (a frame fault with `--raw`) or that
/// exclude each other ask the impossible of the command line: bad usage,
/// found before listening. (A framing the flags cannot describe is left to
/// [`proxy`] to report.)
fn check_faults(args: &ProxyArgs) -> Result<(), String> {
    let Ok(frame) = frame_config(args.raw, &args.frame) else {
        return Ok(());
    };
    let mut faults = FaultPlan::default();
    for spec in &args.fault {
        faults.add(spec).map_err(|e| e.to_string())?;
    }
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        FaultSchedule::new(faults.faults(dir), frame, 0).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The wire format the flags describe. In raw mode without `--max-frame`,
/// a chunk is shown whole up to the proxy's read size.
fn frame_config(raw: bool, frame: &FrameArgs) -> TapResult<FrameConfig> {
    if raw && frame.max_frame.is_none() {
        return Ok(FrameConfig::builder()
            .framing(trama_protocol::Framing::Unframed)
            .max_frame_len(64 * 1024)
            .build()?);
    }
    Ok(frame.frame_config(!raw)?)
}

fn proxy(args: ProxyArgs) -> TapResult {
    let upstream = args.to.clone().ok_or("--to is required")?;
    let mut faults = FaultPlan::default();
    for spec in &args.fault {
        faults.add(spec)?;
    }
    let config = ProxyConfig::new(args.listen.clone(), upstream)
        .with_frame(frame_config(args.raw, &args.frame)?)
        .with_faults(faults)
        .with_show(args.show)
        .with_connect_timeout(args.connect_timeout)
        .with_auth(args.auth.config()?)
        .with_tls(args.tls.config()?)
        .with_keepalive(args.keepalive.keepalive.0)
        .with_idle_timeout(args.idle_timeout.0)
        .with_write_timeout(Some(args.write_timeout))
        .with_max_connections(args.max_connections)
        .with_seed(args.seed);
    let session = Session {
        format: if args.json {
            Format::Json
        } else if args.quiet {
            Format::Off
        } else {
            Format::Text
        },
        decode: args.decode,
        record: args.record,
        pcap: args.pcap,
    };

    trama_cli::raise_open_file_limit();
    let tap = Tap::bind(config, session)?;
    let stopper = tap.handle();
    if let Err(e) = ctrlc::set_handler(move || stopper.shutdown()) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    eprintln!("listening on {}", tap.local_addr());
    tap.run()
}
