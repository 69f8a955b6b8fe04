//! The one-connection modes: `pingpong` (sequential round trips, the
//! latency floor) and `bulk` (one-way throughput), on a blocking socket
//! (plain, or TLS and the shared key), since one connection needs no
//! readiness loop.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use trama_protocol::auth::Role;
use trama_transport::{AuthConfig, Stream, TlsConnector};

use crate::report::{round, Report, Ticker};
use crate::stats::Histogram;
use crate::wire::{FrameCounter, Wire, WireError};

/// Bytes read per `read` call.
const READ_BUF: usize = 256 * 1024;
/// How often the bulk reader looks at the clock while no bytes come.
const READ_POLL: Duration = Duration::from_millis(200);

/// What stops a one-connection run.
#[derive(Debug, thiserror::Error)]
pub enum SingleError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        /// As given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No resolved address accepted the connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// As given.
        addr: String,
        /// What each address answered.
        reason: String,
    },
    /// The server closed the connection before the run was over.
    #[error("the server closed the connection after {done} of {total} {what}")]
    Closed {
        /// Round trips or frames completed.
        done: u64,
        /// Asked for.
        total: u64,
        /// "round trips" or "frames".
        what: &'static str,
    },
    /// No reply came in time.
    #[error("no reply within {timeout:?} (after {done} round trips)")]
    Timeout {
        /// `--timeout`.
        timeout: Duration,
        /// Round trips completed.
        done: u64,
    },
    /// A socket call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A frame could not be encoded or a reply's header was bad.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A helper thread ended without a result (a bug).
    #[error("the reader thread stopped without a result")]
    Lost,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SingleError {
    let what = what.into();
    move |source| SingleError::Io { what, source }
}

/// Resolve `addr` to its first socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, SingleError> {
    let resolve_err = |reason: String| SingleError::Resolve {
        addr: addr.to_string(),
        reason,
    };
    addr.to_socket_addrs()
        .map_err(|e| resolve_err(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_err("no address".to_string()))
}

/// What secures a connection to the server: TLS, then the shared key.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// TLS, trusting these authorities (`--tls-ca`).
    pub tls: Option<TlsConnector>,
    /// The shared-key handshake (`--key-file`), after TLS.
    pub auth: Option<AuthConfig>,
}

impl Link {
    /// True when the connection is more than plain TCP.
    pub fn is_secured(&self) -> bool {
        self.tls.is_some() || self.auth.is_some()
    }
}

/// A blocking connection with Nagle off (each request goes out at once),
/// through TLS and the key handshake when `link` asks for them.
fn connect(addr: &str, timeout: Duration, link: &Link) -> Result<Stream, SingleError> {
    let a = resolve(addr)?;
    let connect_err = |reason: String| SingleError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let s = TcpStream::connect_timeout(&a, timeout).map_err(|e| connect_err(e.to_string()))?;
    // A connect to a local port nobody listens on can reach itself.
    if s.local_addr().ok() == Some(a) {
        return Err(connect_err(
            "nothing listens there (connected to itself)".into(),
        ));
    }
    s.set_nodelay(true).map_err(io_err("set TCP_NODELAY"))?;
    let s = match &link.tls {
        Some(connector) => Stream::connect_tls(s, connector, Some(addr), timeout)
            .map_err(|e| connect_err(format!("TLS: {e}")))?,
        None => Stream::plain(s),
    };
    if let Some(auth) = &link.auth {
        s.authenticate(Role::Dialer, auth)
            .map_err(|e| connect_err(format!("the key handshake: {e}")))?;
    }
    Ok(s)
}

/// `pingpong`: what to run.
#[derive(Debug, Clone)]
pub struct PingPong {
    /// The server.
    pub addr: String,
    /// Wire format.
    pub wire: Wire,
    /// Request payload bytes.
    pub size: usize,
    /// Measured round trips.
    pub count: u64,
    /// Round trips before measuring.
    pub warmup: u64,
    /// Longest wait for the connection and for each reply.
    pub timeout: Duration,
    /// TLS and the shared key.
    pub link: Link,
}

/// Sequential round trips on one connection: write a request, read until
/// one reply frame has ended, again.
pub fn pingpong(p: &PingPong, ticker: &mut Ticker) -> Result<Report, SingleError> {
    let mut s = connect(&p.addr, p.timeout, &p.link)?;
    s.set_read_timeout(Some(p.timeout))
        .map_err(io_err("set the read timeout"))?;
    let request = p.wire.request(p.size)?;
    let mut counter = FrameCounter::new(p.wire);
    let mut buf = vec![0u8; READ_BUF];
    let mut unexpected = 0u64;
    let total = p.warmup + p.count;
    let mut done = 0u64;
    let mut round_trip = |s: &mut Stream, done: u64| -> Result<(), SingleError> {
        s.write_all(&request).map_err(io_err("write"))?;
        let mut frames = 0;
        while frames == 0 {
            let n = match s.read(&mut buf) {
                Ok(0) => {
                    return Err(SingleError::Closed {
                        done,
                        total,
                        what: "round trips",
                    })
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(SingleError::Timeout {
                        timeout: p.timeout,
                        done,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read")(e)),
            };
            frames += counter.feed(&buf[..n])?;
        }
        unexpected += frames - 1;
        Ok(())
    };
    for _ in 0..p.warmup {
        round_trip(&mut s, done)?;
        done += 1;
    }
    let mut hist = Histogram::new();
    let t0 = Instant::now();
    for i in 0..p.count {
        let t = Instant::now();
        round_trip(&mut s, done)?;
        hist.record(t.elapsed().as_nanos() as u64);
        done += 1;
        if i % 1024 == 0 {
            ticker.maybe(|| {
                let el = t0.elapsed().as_secs_f64().max(1e-9);
                format!(
                    "pingpong: {} of {} round trips, {:.0}/s",
                    i,
                    p.count,
                    i as f64 / el
                )
            });
        }
    }
    let elapsed = t0.elapsed().as_secs_f64().max(1e-9);
    let mut r = Report {
        mode: "pingpong".into(),
        addr: p.addr.clone(),
        framing: p.wire.name().into(),
        size: Some(p.size as u64),
        clients: Some(1),
        connected: Some(1),
        sent: Some(p.count),
        answered: Some(p.count),
        unexpected: Some(unexpected),
        duration_s: Some(round(elapsed, 3)),
        msgs_per_s: Some(round(p.count as f64 / elapsed, 0)),
        ..Report::default()
    };
    r.latencies(&hist);
    Ok(r)
}

/// `bulk`: what to run.
#[derive(Debug, Clone)]
pub struct Bulk {
    /// The server.
    pub addr: String,
    /// Wire format.
    pub wire: Wire,
    /// Payload bytes in all.
    pub bytes: u64,
    /// Payload bytes per frame.
    pub frame: usize,
    /// Longest wait for the connection, and for the server to close after the last frame.
    pub timeout: Duration,
    /// TLS and the shared key.
    pub link: Link,
}

/// What the reader thread of `bulk` saw.
struct Readback {
    frames: u64,
    /// When the server closed its side, if it did in time.
    closed_at: Option<Instant>,
    error: Option<String>,
}

/// One-way throughput: frames written back to back on one connection, then
/// our side shut down, and the clock stops when the server closes its side
/// (so it has read everything). Whatever the server sends back (an echo
/// server returns every frame) is read and counted on a second thread, so
/// an echo server is never blocked by a full socket.
pub fn bulk(b: &Bulk, ticker: &mut Ticker) -> Result<Report, SingleError> {
    // Written here and read on the reader thread, both through `&Stream`.
    let s = Arc::new(connect(&b.addr, b.timeout, &b.link)?);
    let frame = b.wire.request(b.frame)?;
    let frames = (b.bytes / b.frame.max(1) as u64).max(1);
    let reader = Arc::clone(&s);
    reader
        .set_read_timeout(Some(READ_POLL))
        .map_err(io_err("set the read timeout"))?;
    let done_writing = Arc::new(AtomicBool::new(false));
    let done = done_writing.clone();
    let (wire, timeout) = (b.wire, b.timeout);
    let handle = thread::Builder::new()
        .name("bulk-reader".into())
        .spawn(move || read_back(reader, wire, timeout, &done))
        .map_err(io_err("start the reader thread"))?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut write_error = None;
    for _ in 0..frames {
        if let Err(e) = (&*s).write_all(&frame) {
            write_error = Some(e);
            break;
        }
        sent += 1;
        if sent.is_multiple_of(256) {
            ticker.maybe(|| {
                let el = t0.elapsed().as_secs_f64().max(1e-9);
                format!(
                    "bulk: {} of {} frames, {:.0} MB/s",
                    sent,
                    frames,
                    (sent * b.frame as u64) as f64 / 1e6 / el
                )
            });
        }
    }
    let written = Instant::now();
    // Ends the stream: a sink or an echo server closes once it read it all.
    let _ = s.shutdown(Shutdown::Write);
    done_writing.store(true, Ordering::SeqCst);
    let back = handle.join().map_err(|_| SingleError::Lost)?;
    if write_error.is_some() || sent < frames {
        return Err(SingleError::Closed {
            done: sent,
            total: frames,
            what: "frames",
        });
    }
    let end = back.closed_at.unwrap_or(written);
    let elapsed = end.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    let payload = sent * b.frame as u64;
    Ok(Report {
        mode: "bulk".into(),
        addr: b.addr.clone(),
        framing: b.wire.name().into(),
        frame: Some(b.frame as u64),
        clients: Some(1),
        connected: Some(1),
        sent: Some(sent),
        answered: Some(back.frames),
        bytes: Some(payload),
        duration_s: Some(round(elapsed, 3)),
        mb_per_s: Some(round(payload as f64 / 1e6 / elapsed, 1)),
        msgs_per_s: Some(round(sent as f64 / elapsed, 0)),
        server_closed: Some(back.closed_at.is_some()),
        first_error: back.error,
        ..Report::default()
    })
}

/// Read and count what comes back until the server closes, or until
/// `timeout` after the writer is done.
fn read_back(s: Arc<Stream>, wire: Wire, timeout: Duration, done: &AtomicBool) -> Readback {
    let mut counter = FrameCounter::new(wire);
    let mut buf = vec![0u8; READ_BUF];
    let mut frames = 0;
    let mut done_at: Option<Instant> = None;
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => {
                return Readback {
                    frames,
                    closed_at: Some(Instant::now()),
                    error: None,
                }
            }
            Ok(n) => match counter.feed(&buf[..n]) {
                Ok(f) => frames += f,
                Err(e) => {
                    return Readback {
                        frames,
                        closed_at: None,
                        error: Some(e.to_string()),
                    }
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                return Readback {
                    frames,
                    closed_at: None,
                    error: Some(format!("read: {e}")),
                }
            }
        }
        if done.load(Ordering::SeqCst) {
            let since = *done_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= timeout {
                return Readback {
                    frames,
                    closed_at: None,
                    error: Some(format!(
                        "the server did not close within {timeout:?} after the last frame"
                    )),
                };
            }
        }
    }
}
