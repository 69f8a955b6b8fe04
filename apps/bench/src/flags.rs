//! The command line: clap's definitions, kept apart from the runs so the
//! flags can be read (and changed) in one place and the runs driven without
//! a parser.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use trama_cli::{parse_duration, parse_size};

use crate::wire::{Wire, WireError};

/// What each figure means; shown by `--help` and in docs/PERFORMANCE.md.
const FIGURES: &str = "\
Figures, by their JSON keys (the table names them in words):
  p50_us, p99_us, p999_us, max_us, min_us, mean_us
      Latency in microseconds: from writing a request (open loop: from the time
      it was due) to reading the end of its reply frame. p50 is the median, p99
      the value 99% of requests beat, p999 the 99.9th percentile. Kept in a
      histogram accurate to 0.8%; max and mean are exact.
  msgs_per_s   Replies per second over the measured period.
  mb_per_s     bulk: payload megabytes (10^6 bytes) per second, from the first
               frame to the server closing its side after the last one.
  clients      Connections asked for.   connected   Connections established.
  connect_failed  Connections refused or not established within --timeout.
  connect_ms   hold: time to open every connection.
  sent         Requests sent in the measured period (after --warmup).
  answered     Replies to those. A healthy run has answered == sent.
  behind       --rate: requests that fell due but were never sent because
               --pipeline requests were still unanswered on their connection.
  dropped      Connections that ended early (closed or reset by the server, or
               a reply header over --max-frame), or whose replies were still
               missing --timeout after the end.
  unexpected   Frames that answered no request.
  answer_all_ms  hold: from the pings to the last answer.
  server_rss_*, server_bytes_per_conn, server_threads
               With --server-pid (Linux): the server's resident memory before
               and with every connection open, the difference per connection,
               and its thread count.

Framing (--framing): be32 (the notes' 4-byte big-endian length; also
tokio-util's LengthDelimitedCodec), le32, be16, le16, u8, be64, le64, and varint
(message-io FramedTcp's unsigned LEB128 length).";

/// Every flag of `trama-bench`, as clap parsed them.
#[derive(Parser)]
#[command(
    name = "trama-bench",
    version,
    about = "Load generator for servers that answer each length-prefixed frame with one frame",
    after_help = FIGURES
)]
pub struct Cli {
    /// Print one JSON object on stdout and nothing else (progress stays on stderr).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// No progress line on stderr.
    #[arg(long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Sequential round trips on one connection: the latency floor.
    #[command(after_help = FIGURES)]
    Pingpong(PingpongArgs),
    /// Many connections at once, closed loop (--pipeline) or open loop (--rate).
    #[command(after_help = FIGURES)]
    Load(LoadArgs),
    /// One-way throughput: frames back to back on one connection.
    #[command(after_help = FIGURES)]
    Bulk(BulkArgs),
    /// Open many connections, hold them idle, then send one request on each.
    #[command(after_help = FIGURES)]
    Hold(HoldArgs),
}

#[derive(Args, Clone)]
pub(crate) struct Target {
    /// Server address (by default the echo server's, `trama-echo serve --framed`).
    #[arg(short, long, default_value = trama_cli::ports::ECHO)]
    pub(crate) addr: String,
    /// Length header: be32, le32, be16, le16, u8, be64, le64, varint.
    #[arg(long, default_value = "be32")]
    pub(crate) framing: String,
    /// Largest reply accepted; a larger header drops the connection.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub(crate) max_frame: u64,
    /// Longest wait for a connection, a reply, or the last replies after a run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// The shared-key handshake with the server (pingpong and bulk).
    #[command(flatten)]
    pub(crate) auth: trama_cli::AuthArgs,
    /// TLS to the server (pingpong and bulk).
    #[command(flatten)]
    pub(crate) tls: trama_cli::TlsClientArgs,
}

impl Target {
    /// TLS and the shared key, as the flags ask.
    pub(crate) fn link(&self) -> Result<crate::single::Link, String> {
        Ok(crate::single::Link {
            tls: self.tls.config()?,
            auth: self.auth.config()?,
        })
    }

    /// Refuse TLS and the key where the run drives plain sockets (the
    /// event-loop fleet of load and hold, and load --blocking).
    pub(crate) fn plain_only(&self, mode: &str) -> Result<(), String> {
        if self.link()?.is_secured() {
            return Err(format!(
                "{mode} drives its connections as plain TCP; --tls-ca and --key-file work with pingpong and bulk"
            ));
        }
        Ok(())
    }

    pub(crate) fn wire(&self) -> Result<Wire, WireError> {
        let max = usize::try_from(self.max_frame).unwrap_or(usize::MAX);
        Wire::parse(&self.framing, max)
    }
}

#[derive(Args)]
pub(crate) struct PingpongArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Request payload (e.g. 64, 4KiB).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub(crate) size: u64,
    /// Round trips measured.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) count: u64,
    /// Round trips before measuring (default: a tenth of --count).
    #[arg(long)]
    pub(crate) warmup: Option<u64>,
}

#[derive(Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    pub(crate) clients: usize,
    /// Request payload (e.g. 64, 4KiB).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub(crate) size: u64,
    /// Measured period.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Unmeasured period before it, once every connection is open.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Requests in flight per connection (open loop: at most).
    #[arg(long, default_value_t = 1)]
    pub(crate) pipeline: usize,
    /// Open loop: requests per second over all connections, sent on schedule
    /// whatever the server does; latency counts from when each was due.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Client threads, each with its own readiness loop (default: one per core).
    #[arg(long, conflicts_with = "blocking")]
    pub(crate) threads: Option<usize>,
    /// A thread per connection with a blocking socket instead of readiness
    /// loops: how a thread-per-client program (and `loadgen`) loads a server.
    /// Closed loop only.
    #[arg(long, conflicts_with = "rate")]
    pub(crate) blocking: bool,
    /// Read this server process's memory and threads from /proc while loaded.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
}

#[derive(Args)]
pub(crate) struct BulkArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Payload bytes to send in all (e.g. 4GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub(crate) bytes: u64,
    /// Payload bytes per frame.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub(crate) frame: u64,
}

#[derive(Args)]
pub(crate) struct HoldArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) clients: usize,
    /// How long to hold them idle before the pings.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Payload of the one request per connection.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub(crate) size: u64,
    /// Client threads, each with its own readiness loop (default: one per core).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Read this server process's memory and threads from /proc, before the
    /// connections and once they are all open.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
}
