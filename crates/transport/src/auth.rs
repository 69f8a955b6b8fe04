//! The shared-key handshake on real sockets: the settings every config
//! carries, and the blocking driver the client, the multi-server client, the
//! peer and the pool server use. (The readiness loop drives the same
//! sans-IO [`Handshake`] itself, without blocking.)

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use trama_protocol::auth::{AuthKey, AuthPolicy, Handshake, Role};

use crate::{Error, Result};

/// Require the shared-key handshake (Python's `multiprocessing.connection`
/// `authkey`) on every connection, before any application byte moves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The shared secret.
    pub key: AuthKey,
    /// Whether legacy HMAC-MD5 (Python 3.11 and older) is accepted.
    pub policy: AuthPolicy,
    /// The whole handshake must finish within this time, or the connection
    /// is dropped: a peer that connects and says nothing holds no slot for
    /// long. Default 5 s.
    pub timeout: Duration,
}

impl AuthConfig {
    /// Modern SHA-256 only, with the default deadline.
    pub fn new(key: AuthKey) -> AuthConfig {
        AuthConfig {
            key,
            policy: AuthPolicy::default(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The same settings with another policy (to accept Python 3.11's
    /// legacy HMAC-MD5, say).
    pub fn with_policy(mut self, policy: AuthPolicy) -> AuthConfig {
        self.policy = policy;
        self
    }

    /// The same settings with another deadline for the whole handshake.
    pub fn with_timeout(mut self, timeout: Duration) -> AuthConfig {
        self.timeout = timeout;
        self
    }
}

/// Run the key handshake on a blocking stream, for programs that use their
/// own sockets (a file sender on a raw `TcpStream`). `role` is
/// [`Role::Dialer`] for the end that connected. Within `auth.timeout` in
/// all; reads exactly the handshake's bytes, so whatever follows stays in
/// the socket for the application's reader; the stream's own timeouts are
/// put back afterwards.
pub fn authenticate(stream: &TcpStream, role: Role, auth: &AuthConfig) -> Result<()> {
    handshake(stream, role, auth)
}

pub(crate) fn handshake(stream: &TcpStream, role: Role, auth: &AuthConfig) -> Result<()> {
    handshake_over(&mut &*stream, stream, role, auth)
}

/// The handshake over any stream (`io`, a TLS session say) whose socket is
/// `sock` (for the timeouts).
pub(crate) fn handshake_over(
    io: &mut (impl Read + Write),
    sock: &TcpStream,
    role: Role,
    auth: &AuthConfig,
) -> Result<()> {
    let saved = (sock.read_timeout()?, sock.write_timeout()?);
    let result = run(io, sock, role, auth);
    sock.set_read_timeout(saved.0)?;
    sock.set_write_timeout(saved.1)?;
    result
}

fn run(
    stream: &mut (impl Read + Write),
    sock: &TcpStream,
    role: Role,
    auth: &AuthConfig,
) -> Result<()> {
    let deadline = Instant::now() + auth.timeout;
    let remaining = || {
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "block forever" to the socket API.
        (!left.is_zero())
            .then_some(left)
            .ok_or(Error::HandshakeTimeout(auth.timeout))
    };
    let mut h = Handshake::new(role, &auth.key, auth.policy)?;
    let mut buf = [0u8; trama_protocol::auth::MAX_MESSAGE + 4];
    loop {
        let out = h.take_output();
        if !out.is_empty() {
            sock.set_write_timeout(Some(remaining()?))?;
            stream
                .write_all(&out)
                .map_err(|e| timeout_or(e, auth.timeout))?;
        }
        if h.is_done() {
            return Ok(());
        }
        let want = h.needed().min(buf.len());
        sock.set_read_timeout(Some(remaining()?))?;
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(Error::Closed(
                    "the peer closed the connection during the key handshake \
                     (does it expect a key?)"
                        .into(),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(timeout_or(e, auth.timeout)),
        };
        if let Err(e) = h.feed(&buf[..n]) {
            // Tell the peer (#FAILURE#) before giving up; best effort.
            let out = h.take_output();
            if !out.is_empty() {
                let _ = stream.write_all(&out);
            }
            return Err(e.into());
        }
    }
}

fn timeout_or(e: io::Error, limit: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::HandshakeTimeout(limit),
        _ => Error::Io(e),
    }
}
