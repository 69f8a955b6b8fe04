//! The one error type of `trama-transport`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What can go wrong while binding, connecting, sending or receiving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },

    /// The address did not resolve to anything.
    #[error("address {0} resolves to nothing")]
    NoAddress(String),

    /// No resolved address accepted the connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address asked for.
        addr: String,
        /// What each resolved address answered.
        reason: String,
    },

    /// A wait ran out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// The connection is closed (by the peer or by us).
    #[error("connection closed: {0}")]
    Closed(String),

    /// A thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// The thread's name.
        name: String,
        /// Why.
        source: io::Error,
    },

    /// The server was already shut down.
    #[error("server is shut down")]
    ShutDown,

    /// The shared-key handshake failed (wrong key, no key, legacy refused).
    #[error("key handshake failed: {0}")]
    Auth(#[from] trama_protocol::auth::AuthError),

    /// The shared-key handshake did not finish in time.
    #[error("the key handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),

    /// TLS could not be set up (certificate, key, or the handshake itself:
    /// cut short by the other end, or not finished in time).
    #[error("tls: {0}")]
    Tls(String),

    /// The TLS handshake was refused on its merits: the other end's
    /// certificate is not trusted or not for the name dialed, the other end
    /// refused ours (an alert), or it sent bytes that are not TLS. Kept
    /// apart from [`Error::Tls`] so a program that retries (a file sender)
    /// can tell a verdict that another try would meet again from a
    /// connection cut short.
    #[error("tls: {0}")]
    TlsRejected(String),

    /// Framing or decoding failed.
    #[error(transparent)]
    Protocol(#[from] trama_protocol::Error),

    /// A socket operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    pub(crate) fn bind(addr: impl std::fmt::Display, source: io::Error) -> Error {
        Error::Bind {
            addr: addr.to_string(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Resolve `addr` to every address it names, or say it names none.
pub(crate) fn resolve(addr: &str) -> Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::Connect {
            addr: addr.to_string(),
            reason: format!("cannot resolve: {e}"),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::NoAddress(addr.to_string()));
    }
    Ok(addrs)
}
