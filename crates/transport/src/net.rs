//! Socket setup shared by the server, the client and the peer.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::resolve;
use crate::{Error, Result};

/// Bind a non-blocking listener with a real backlog (std's `TcpListener`
/// uses 128, too few for a burst of thousands of connects).
pub(crate) fn listen(addr: &str, backlog: i32) -> Result<mio::net::TcpListener> {
    let addrs = resolve(addr).map_err(|e| Error::bind(addr, std::io::Error::other(e)))?;
    let mut last = None;
    for a in addrs {
        match listen_one(a, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(Error::bind(a, e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::NoAddress(addr.to_string())))
}

/// Bind a blocking std listener (for the peer's accept thread), with the same
/// backlog and address reuse as the server's.
pub(crate) fn listen_blocking(addr: &str) -> Result<std::net::TcpListener> {
    let listener = listen(addr, 1024)?;
    let std_listener = std::net::TcpListener::from(listener);
    std_listener.set_nonblocking(false)?;
    Ok(std_listener)
}

fn listen_one(addr: SocketAddr, backlog: i32) -> std::io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // On Unix, SO_REUSEADDR lets a restarted server bind while old
    // connections sit in TIME_WAIT. On Windows it would let two servers share
    // a port, so it stays off there.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Connect to the first of `addr`'s resolved addresses that answers, each
/// tried with `timeout`. The error lists what every address said.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let mut failures = Vec::new();
    for a in resolve(addr)? {
        match TcpStream::connect_timeout(&a, timeout) {
            // Dialing a local port nobody listens on can pick that very port
            // as the source and "connect" to itself (TCP simultaneous open);
            // that is no server, and it would keep the port taken.
            Ok(s) if s.local_addr().ok() == Some(a) => {
                failures.push(format!("{a}: nothing listens there (connected to itself)"))
            }
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                failures.push(format!("{a}: no answer within {timeout:?}"))
            }
            Err(e) => failures.push(format!("{a}: {e}")),
        }
    }
    Err(Error::Connect {
        addr: addr.to_string(),
        reason: failures.join("; "),
    })
}

/// What an `accept` error means for the accept loop.
pub(crate) enum AcceptError {
    /// No more pending connections: wait for readiness.
    Drained,
    /// One connection failed (aborted, reset, interrupted): try the next.
    Skip,
    /// The process is out of something (file descriptors, memory): pause
    /// accepting for a while, since retrying at once would spin.
    Pause,
}

pub(crate) fn accept_error(e: &std::io::Error) -> AcceptError {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock => AcceptError::Drained,
        Interrupted | ConnectionAborted | ConnectionReset => AcceptError::Skip,
        _ => AcceptError::Pause,
    }
}
