//! Socket setup shared by the server, the client and the peer.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::error::resolve;
use crate::{Error, Result};

/// Bind a non-blocking listener with a real backlog (std's `TcpListener`
/// uses 128, too few for a burst of thousands of connects), with address
/// reuse as every trama server has it: for a program that runs its own
/// accept loop (`trama-tap`'s proxy) and should bind like the rest.
pub fn listen(addr: &str, backlog: i32) -> Result<mio::net::TcpListener> {
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

/// How long a silent or vanished peer may go unnoticed by default: TCP
/// keepalive probes (and, on Linux, `TCP_USER_TIMEOUT` for unacknowledged
/// data) give up on it after about this long. Long enough that a cable out
/// for a few seconds costs nothing (TCP retransmits), short enough that a
/// host that vanished is noticed in under a minute instead of TCP's ~15.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// Ask the kernel to declare the peer dead after about `dead_after` without
/// an answer: keepalive probes start after half of it idle, five probes at a
/// tenth of it apart; on Linux unacknowledged data also gives up after it.
/// A blocked read or write then fails ("connection timed out") instead of
/// waiting for a peer whose host has gone. The peer needs no cooperation:
/// this works against the notes' servers, which know nothing of heartbeats.
pub fn set_keepalive(socket: SockRef<'_>, dead_after: Duration) -> std::io::Result<()> {
    let second = Duration::from_secs(1);
    let (time, interval) = ((dead_after / 2).max(second), (dead_after / 10).max(second));
    let keepalive = TcpKeepalive::new().with_time(time);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "windows"
    ))]
    let keepalive = keepalive.with_interval(interval).with_retries(5);
    let set = socket.set_tcp_keepalive(&keepalive);
    // TCP_KEEPCNT (the probe count) exists from Windows 10 version 1703 on
    // (Microsoft's "IPPROTO_TCP socket options"); older Windows, and wine,
    // refuse it with WSAENOPROTOOPT. The time and interval are then set
    // alone, and Windows' own count applies (10 probes).
    #[cfg(windows)]
    let set = set.or_else(|_| {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(time).with_interval(interval))
    });
    set?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(dead_after.max(second)))?;
    Ok(())
}

/// [`set_keepalive`] if configured, logging (not failing) where the OS
/// refuses: dead-peer detection is a safety net, not a reason to refuse a
/// connection.
pub(crate) fn keepalive_or_log(socket: SockRef<'_>, dead_after: Option<Duration>, peer: &str) {
    if let Some(d) = dead_after {
        if let Err(e) = set_keepalive(socket, d) {
            log::debug!("{peer}: cannot set TCP keepalive: {e}");
        }
    }
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
                failures.push((a, "nothing listens there (connected to itself)".to_string()))
            }
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                failures.push((a, format!("no answer within {timeout:?}")))
            }
            Err(e) => failures.push((a, e.to_string())),
        }
    }
    // Each resolved address is named, unless the one address is what was asked for
    // (the error already says it once).
    let failures: Vec<String> = match failures.as_slice() {
        [(a, why)] if a.to_string() == addr => vec![why.clone()],
        _ => failures
            .iter()
            .map(|(a, why)| format!("{a}: {why}"))
            .collect(),
    };
    Err(Error::Connect {
        addr: addr.to_string(),
        reason: failures.join("; "),
    })
}

/// What an `accept` error means for the accept loop: one classification,
/// so every loop of the project survives running out of descriptors alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// No more pending connections: wait for readiness.
    Drained,
    /// One connection failed (aborted, reset, interrupted): try the next.
    Skip,
    /// The process is out of something (file descriptors, memory): pause
    /// accepting for a while, since retrying at once would spin.
    Pause,
}

/// Classify an error of a non-blocking `accept`.
pub fn accept_error(e: &std::io::Error) -> AcceptError {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock => AcceptError::Drained,
        Interrupted | ConnectionAborted | ConnectionReset => AcceptError::Skip,
        _ => AcceptError::Pause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_settings_follow_the_dead_after_duration() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let socket = SockRef::from(&stream);
        assert!(!socket.keepalive().unwrap());

        set_keepalive(SockRef::from(&stream), Duration::from_secs(30)).unwrap();
        assert!(socket.keepalive().unwrap());
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
        {
            assert_eq!(
                socket.tcp_keepalive_time().unwrap(),
                Duration::from_secs(15)
            );
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(3)
            );
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), 5);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(30))
        );

        // Very short durations are raised to whole seconds, never zero.
        set_keepalive(SockRef::from(&stream), Duration::from_millis(10)).unwrap();
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
        assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(1));
    }
}
