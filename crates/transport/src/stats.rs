//! Counters a server keeps while it runs.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use trama_protocol::DisconnectReason;

/// Live counters, updated with relaxed atomics (cheap, eventually consistent).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
    open: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    closed_by_peer: AtomicU64,
    dropped_protocol: AtomicU64,
    dropped_timeout: AtomicU64,
    dropped_slow: AtomicU64,
    dropped_io: AtomicU64,
    closed_by_service: AtomicU64,
    closed_shutdown: AtomicU64,
    wakeups: AtomicU64,
}

/// A copy of a server's counters at one moment (see [`ServerHandle::stats`](crate::ServerHandle::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections refused (over `max_connections`).
    pub refused: u64,
    /// Connections open now.
    pub open: u64,
    /// Frames (or unframed reads) received.
    pub frames_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Connections the peer closed.
    pub closed_by_peer: u64,
    /// Connections dropped for breaking the wire format.
    pub dropped_protocol: u64,
    /// Connections dropped by the partial-frame or idle timeout.
    pub dropped_timeout: u64,
    /// Connections dropped because their outbound queue was full.
    pub dropped_slow: u64,
    /// Connections dropped on a socket error.
    pub dropped_io: u64,
    /// Connections closed at the service's request.
    pub closed_by_service: u64,
    /// Connections closed by shutdown.
    pub closed_shutdown: u64,
    /// Times the I/O threads woke up from waiting (an idle server should not).
    pub wakeups: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            accepted: self.accepted.load(Relaxed),
            refused: self.refused.load(Relaxed),
            open: self.open.load(Relaxed),
            frames_in: self.frames_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            closed_by_peer: self.closed_by_peer.load(Relaxed),
            dropped_protocol: self.dropped_protocol.load(Relaxed),
            dropped_timeout: self.dropped_timeout.load(Relaxed),
            dropped_slow: self.dropped_slow.load(Relaxed),
            dropped_io: self.dropped_io.load(Relaxed),
            closed_by_service: self.closed_by_service.load(Relaxed),
            closed_shutdown: self.closed_shutdown.load(Relaxed),
            wakeups: self.wakeups.load(Relaxed),
        }
    }

    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    pub(crate) fn received(&self, frames: u64, bytes: u64) {
        self.frames_in.fetch_add(frames, Relaxed);
        self.bytes_in.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn queued(&self, frames: u64) {
        self.frames_out.fetch_add(frames, Relaxed);
    }

    pub(crate) fn written(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn woke(&self) {
        self.wakeups.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self, reason: &DisconnectReason) {
        self.open.fetch_sub(1, Relaxed);
        let counter = match reason {
            DisconnectReason::PeerClosed => &self.closed_by_peer,
            DisconnectReason::Protocol(_) => &self.dropped_protocol,
            DisconnectReason::PartialFrameTimeout { .. } | DisconnectReason::IdleTimeout { .. } => {
                &self.dropped_timeout
            }
            DisconnectReason::SlowReader { .. }
            | DisconnectReason::Stalled { .. }
            | DisconnectReason::OverBudget { .. } => &self.dropped_slow,
            DisconnectReason::Closed(_) => &self.closed_by_service,
            DisconnectReason::Shutdown => &self.closed_shutdown,
            _ => &self.dropped_io,
        };
        counter.fetch_add(1, Relaxed);
    }
}

impl fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connections: {} accepted, {} refused, {} open; frames: {} in, {} out; bytes: {} in, {} out; \
             closed: {} by peer, {} by service, {} at shutdown; dropped: {} protocol, {} timeout, {} slow, {} i/o",
            self.accepted,
            self.refused,
            self.open,
            self.frames_in,
            self.frames_out,
            self.bytes_in,
            self.bytes_out,
            self.closed_by_peer,
            self.closed_by_service,
            self.closed_shutdown,
            self.dropped_protocol,
            self.dropped_timeout,
            self.dropped_slow,
            self.dropped_io
        )
    }
}
