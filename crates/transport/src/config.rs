//! Server settings, each with a default that is safe on a shared machine.

use std::time::Duration;

use trama_protocol::FrameConfig;

use crate::options::{link_setters, with};
use crate::{LinkOptions, TlsAcceptor};

/// How a [`Server`](crate::Server) behaves. Every field has a sane default
/// (see [`ServerConfig::default`]) and every app exposes them as flags.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen. Default `127.0.0.1:0`: loopback only, any free port.
    /// (Never "localhost": on macOS and Windows it resolves to `::1` first.)
    pub addr: String,
    /// Wire format, framed (default, the notes' 4-byte big-endian header) or unframed.
    pub frame: FrameConfig,
    /// Most connections open at once; one more is refused with a reason. Default 10,000.
    pub max_connections: usize,
    /// A frame that was started must be finished within this time, or the
    /// connection is dropped (stops a peer that sends a header and then
    /// trickles). Default 10 s.
    pub partial_frame_timeout: Option<Duration>,
    /// Drop a connection that sends nothing for this long. Default off:
    /// chat clients legitimately sit quiet for hours.
    pub idle_timeout: Option<Duration>,
    /// Bytes that may wait to be sent to one connection; past it the
    /// connection is dropped as too slow (a frame is always accepted into an
    /// empty queue). Default 4 MiB.
    pub max_outbound: usize,
    /// Threads running the readiness loop. Default: one per core.
    pub io_threads: usize,
    /// Worker threads for a service that may block. 0 (the default) runs the
    /// service inline on the I/O thread: a request becomes a reply with no
    /// thread hand-off. With workers, the frames of one connection always go
    /// to the same worker, so they are handled in order.
    pub workers: usize,
    /// Events that may wait for a worker before the I/O thread waits too.
    pub worker_queue: usize,
    /// Disable Nagle's algorithm (default on: replies leave at once).
    pub nodelay: bool,
    /// Listen backlog. Default 1024 (std uses 128, too few for a burst of connects).
    pub backlog: i32,
    /// On shutdown or close, how long queued bytes may take to drain. Default 2 s.
    pub linger: Duration,
    /// Send an empty frame to a connection that has been sent nothing for
    /// this long, and swallow empty frames received. Default off. Pair with
    /// `idle_timeout` to detect dead peers. Framed mode only.
    pub heartbeat: Option<Duration>,
    /// The key (required before a connection reaches the service, which
    /// sees `Connected` only after it), TLS (on every connection) and
    /// keepalive of every connection.
    pub link: LinkOptions<TlsAcceptor>,
    /// Bytes that incomplete frames may hold across the whole server. Each
    /// connection's own is bounded by the frame limit, but thousands of
    /// connections each halfway through a large frame would add up to GiBs;
    /// past this budget the connection holding the largest incomplete frame
    /// (on the I/O thread that saw the budget exceeded) is dropped, with the
    /// numbers. Default 256 MiB.
    pub incomplete_budget: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:0".into(),
            frame: FrameConfig::default(),
            max_connections: 10_000,
            partial_frame_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
            max_outbound: 4 * 1024 * 1024,
            io_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            workers: 0,
            worker_queue: 1024,
            nodelay: true,
            backlog: 1024,
            linger: Duration::from_secs(2),
            heartbeat: None,
            link: LinkOptions::default(),
            incomplete_budget: 256 * 1024 * 1024,
        }
    }
}

impl ServerConfig {
    /// The default settings on the given address.
    pub fn new(addr: impl Into<String>) -> Self {
        ServerConfig {
            addr: addr.into(),
            ..ServerConfig::default()
        }
    }

    with!(
        with_addr: addr: String,
        with_frame: frame: FrameConfig,
        with_max_connections: max_connections: usize,
        with_partial_frame_timeout: partial_frame_timeout: Option<Duration>,
        with_idle_timeout: idle_timeout: Option<Duration>,
        with_max_outbound: max_outbound: usize,
        with_io_threads: io_threads: usize,
        with_workers: workers: usize,
        with_worker_queue: worker_queue: usize,
        with_nodelay: nodelay: bool,
        with_backlog: backlog: i32,
        with_linger: linger: Duration,
        with_heartbeat: heartbeat: Option<Duration>,
        with_link: link: LinkOptions<TlsAcceptor>,
        with_incomplete_budget: incomplete_budget: usize,
    );
    link_setters!(TlsAcceptor, link);

    /// How long a peer whose reading is paused (its replies backing up)
    /// may take none of them while more of its input waits: the
    /// partial-frame deadline, or the idle timeout without one. `None`: no
    /// connection is paused at all.
    pub(crate) fn stall_timeout(&self) -> Option<Duration> {
        self.partial_frame_timeout.or(self.idle_timeout)
    }

    /// The shortest of the configured timeouts, which sets how often
    /// connections are checked against them.
    pub(crate) fn tick(&self) -> Duration {
        [
            self.partial_frame_timeout,
            self.idle_timeout,
            self.heartbeat,
            self.link.auth.as_ref().map(|a| a.timeout),
            self.link.tls.as_ref().map(|t| t.handshake_timeout),
            Some(self.linger),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|d| (d / 4).clamp(Duration::from_millis(5), Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1))
    }
}
