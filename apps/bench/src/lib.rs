//! `trama-bench`: a load generator for any server that answers each
//! length-prefixed frame with one frame: `trama-echo serve --framed`, a
//! student's Python server, the reference servers the figures in
//! docs/PERFORMANCE.md are compared with.
//!
//! - `pingpong`: sequential round trips on one connection (latency floor);
//! - `load`: many connections at once, closed loop or at a fixed `--rate`;
//! - `bulk`: one-way throughput on one connection;
//! - `hold`: many idle connections, then one request on each.
//!
//! The result is a table, or with `--json` one JSON object on stdout (the
//! progress line always goes to stderr). `--help` says what each figure is.
//!
//! The binary only parses the flags ([`flags::Cli`]) and turns [`run`]'s
//! answer into an exit status; the readiness loops, the framing and the
//! figures live here.

mod blocking;
pub mod flags;
mod fleet;
mod report;
mod single;
mod stats;
mod wire;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use trama_cli::procfs;

use flags::{BulkArgs, Cli, Command, HoldArgs, LoadArgs, PingpongArgs, Target};
use fleet::{Fleet, FleetError, Job, Outcome, Plan};
use report::{round, Report, Ticker};
use single::{Bulk, PingPong, SingleError};
use wire::{Wire, WireError};

/// Why a run produced no figures, worded for stderr.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] BenchError);

/// Why a run produced no figures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Single(#[from] SingleError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("{0}")]
    Usage(String),
    #[error("no connection to {addr} could be established ({clients} tried): {why}")]
    NoConnection {
        addr: String,
        clients: usize,
        why: String,
    },
}

/// Runs what the flags ask for: progress on stderr (unless `--quiet`), the
/// figures on stdout as a table or one JSON object.
pub fn run(cli: Cli) -> Result<(), Error> {
    trama_cli::init_logging("warn");
    trama_cli::raise_open_file_limit();
    let mut ticker = Ticker::new(cli.quiet);
    let result = match cli.command {
        Command::Pingpong(a) => pingpong(a, &mut ticker),
        Command::Load(a) => load(a, &mut ticker),
        Command::Bulk(a) => bulk(a, &mut ticker),
        Command::Hold(a) => hold(a, &mut ticker),
    };
    ticker.finish();
    let report = result?;
    if cli.json {
        trama_cli::say!("{}", report.json());
    } else {
        trama_cli::out::bytes(report.table().as_bytes());
    }
    Ok(())
}

fn size(s: u64) -> Result<usize, BenchError> {
    usize::try_from(s).map_err(|_| BenchError::Usage(format!("size {s} is too large")))
}

fn pingpong(a: PingpongArgs, ticker: &mut Ticker) -> Result<Report, BenchError> {
    if a.count == 0 {
        return Err(BenchError::Usage("--count must be at least 1".into()));
    }
    let p = PingPong {
        addr: a.target.addr.clone(),
        wire: a.target.wire()?,
        size: size(a.size)?,
        count: a.count,
        warmup: a.warmup.unwrap_or(a.count / 10),
        timeout: a.target.timeout,
        link: a.target.link().map_err(BenchError::Usage)?,
    };
    Ok(single::pingpong(&p, ticker)?)
}

fn bulk(a: BulkArgs, ticker: &mut Ticker) -> Result<Report, BenchError> {
    if a.frame == 0 {
        return Err(BenchError::Usage("--frame must be at least 1 byte".into()));
    }
    let b = Bulk {
        addr: a.target.addr.clone(),
        wire: a.target.wire()?,
        bytes: a.bytes,
        frame: size(a.frame)?,
        timeout: a.target.timeout,
        link: a.target.link().map_err(BenchError::Usage)?,
    };
    Ok(single::bulk(&b, ticker)?)
}

/// What the fleet does for `load` and `hold`: `clients` connections to
/// `target` on `threads` readiness loops, each request `request_size` bytes.
fn fleet_plan(
    target: &Target,
    clients: usize,
    threads: Option<usize>,
    request_size: u64,
    job: Job,
) -> Result<Plan, BenchError> {
    let wire = target.wire()?;
    Ok(Plan {
        addr: single::resolve(&target.addr)?,
        clients,
        threads: default_threads(threads),
        wire,
        request: wire.request(size(request_size)?)?,
        connect_timeout: target.timeout,
        job,
    })
}

fn default_threads(asked: Option<usize>) -> usize {
    asked
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn load(a: LoadArgs, ticker: &mut Ticker) -> Result<Report, BenchError> {
    if a.clients == 0 {
        return Err(BenchError::Usage("--clients must be at least 1".into()));
    }
    if a.duration.is_zero() {
        return Err(BenchError::Usage("--duration must be more than 0".into()));
    }
    a.target.plain_only("load").map_err(BenchError::Usage)?;
    if let Some(r) = a.rate {
        if !(r >= 0.001 && r.is_finite()) {
            return Err(BenchError::Usage(format!(
                "--rate must be at least 0.001 requests per second (got {r})"
            )));
        }
    }
    let job = Job::Load {
        warmup: a.warmup,
        duration: a.duration,
        pipeline: a.pipeline.max(1),
        rate: a.rate,
        drain: a.target.timeout,
    };
    let plan = fleet_plan(&a.target, a.clients, a.threads, a.size, job)?;
    let wire = plan.wire;
    let watched = watch(
        plan,
        a.blocking,
        a.server_pid,
        Duration::from_millis(500),
        ticker,
        "load",
    )?;
    let o = &watched.outcome;
    let mut r = base_report("load", &a.target, wire, a.clients, &watched);
    r.size = Some(a.size);
    r.pipeline = Some(a.pipeline.max(1) as u64);
    r.rate = a.rate;
    r.duration_s = Some(round(a.duration.as_secs_f64(), 3));
    r.behind = a.rate.map(|_| o.behind);
    r.msgs_per_s = Some(round(
        o.replies_in_window as f64 / a.duration.as_secs_f64().max(1e-9),
        0,
    ));
    Ok(r)
}

fn hold(a: HoldArgs, ticker: &mut Ticker) -> Result<Report, BenchError> {
    if a.clients == 0 {
        return Err(BenchError::Usage("--clients must be at least 1".into()));
    }
    a.target.plain_only("hold").map_err(BenchError::Usage)?;
    let job = Job::Hold {
        idle: a.duration,
        timeout: a.target.timeout,
    };
    let plan = fleet_plan(&a.target, a.clients, a.threads, a.size, job)?;
    let wire = plan.wire;
    // Memory is read once the connections had a moment to settle, while
    // they are still idle.
    let settle = (a.duration / 2).min(Duration::from_secs(1));
    let watched = watch(plan, false, a.server_pid, settle, ticker, "hold")?;
    let o = &watched.outcome;
    let mut r = base_report("hold", &a.target, wire, a.clients, &watched);
    r.size = Some(a.size);
    r.duration_s = Some(round(a.duration.as_secs_f64(), 3));
    r.connect_ms = Some(round(o.connect_time.as_secs_f64() * 1000.0, 1));
    r.answer_all_ms = o.answer_all.map(|d| round(d.as_secs_f64() * 1000.0, 1));
    Ok(r)
}

/// A finished fleet run and what `/proc` said about the server meanwhile.
struct Watched {
    outcome: Outcome,
    threads: usize,
    rss_before: Option<u64>,
    rss_held: Option<u64>,
    server_threads: Option<u64>,
}

/// Run the fleet (`blocking`: a thread per connection), printing progress; with `server_pid`, read the server's
/// memory before and `settle` after every connection is open.
fn watch(
    plan: Plan,
    blocking: bool,
    server_pid: Option<u32>,
    settle: Duration,
    ticker: &mut Ticker,
    mode: &str,
) -> Result<Watched, BenchError> {
    let (addr, clients) = (plan.addr, plan.clients);
    let rss_before = server_pid.and_then(|pid| procfs::status_field(pid, "VmRSS"));
    let fleet = if blocking {
        Fleet::start_blocking(plan)?
    } else {
        Fleet::start(plan)?
    };
    let mut connected_at: Option<Instant> = None;
    let (mut rss_held, mut server_threads) = (None, None);
    let mut last = (Instant::now(), 0u64);
    while !fleet.finished() {
        std::thread::sleep(Duration::from_millis(20));
        if connected_at.is_none() && fleet.all_connected() {
            connected_at = Some(Instant::now());
        }
        if let (Some(pid), Some(t), None) = (server_pid, connected_at, rss_held) {
            if t.elapsed() >= settle {
                rss_held = procfs::status_field(pid, "VmRSS");
                server_threads = procfs::status_field(pid, "Threads");
            }
        }
        let p = fleet.progress();
        ticker.maybe(|| {
            let replies = p.replies.load(Ordering::Relaxed);
            let (t, before) = last;
            let rate = (replies - before.min(replies)) as f64 / t.elapsed().as_secs_f64().max(1e-9);
            last = (Instant::now(), replies);
            format!(
                "{mode}: {} of {clients} connected, {} replies ({rate:.0}/s), {} dropped",
                p.connected.load(Ordering::Relaxed),
                replies,
                p.dropped.load(Ordering::Relaxed)
            )
        });
    }
    let threads = fleet.threads();
    let outcome = fleet.join()?;
    if outcome.connected == 0 {
        return Err(BenchError::NoConnection {
            addr: addr.to_string(),
            clients,
            why: outcome
                .first_error
                .unwrap_or_else(|| "no reason given".into()),
        });
    }
    Ok(Watched {
        outcome,
        threads,
        rss_before,
        rss_held,
        server_threads,
    })
}

/// The figures `load` and `hold` share.
fn base_report(mode: &str, t: &Target, wire: Wire, clients: usize, w: &Watched) -> Report {
    let o = &w.outcome;
    let mut r = Report {
        mode: mode.into(),
        addr: t.addr.clone(),
        framing: wire.name().into(),
        clients: Some(clients as u64),
        connected: Some(o.connected),
        connect_failed: Some(o.connect_failed),
        threads: Some(w.threads as u64),
        sent: Some(o.sent),
        answered: Some(o.answered),
        dropped: Some(o.dropped),
        unexpected: Some(o.unexpected),
        first_error: o.first_error.clone(),
        server_rss_before_kib: w.rss_before,
        server_rss_held_kib: w.rss_held,
        server_threads: w.server_threads,
        ..Report::default()
    };
    if let (Some(before), Some(held)) = (w.rss_before, w.rss_held) {
        let per = (held as f64 - before as f64) * 1024.0 / o.connected.max(1) as f64;
        r.server_bytes_per_conn = Some(round(per, 0));
    }
    r.latencies(&o.hist);
    r
}
