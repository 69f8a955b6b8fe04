//! [`Stream`]: one blocking connection, plain TCP or TLS over TCP, for the
//! programs that work on whole streams (the [`PoolServer`](crate::PoolServer)'s
//! handlers, a file sender) instead of on messages.
//!
//! It reads and writes like a [`TcpStream`], also through `&Stream`, so a
//! `FrameReader` and a `FrameWriter` can share one connection. Under TLS
//! every byte goes through rustls; a plain stream hands out its
//! [`TcpStream`] ([`Stream::as_tcp`]) so the kernel's fast paths
//! (`sendfile`, `splice` through `std::io::copy`) stay what they were.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use trama_protocol::auth::Role;

use crate::gate::Gate;
use crate::tls::TlsHalf;
use crate::{AuthConfig, Result, TlsAcceptor, TlsConnector};

/// A blocking connection, plain or TLS.
///
/// ```no_run
/// use std::io::Write;
/// use std::time::Duration;
/// use trama_transport::{Stream, TlsConnector};
///
/// let ca = TlsConnector::from_ca_file("ca.pem".as_ref())?;
/// let mut stream = Stream::connect("127.0.0.1:12345", Duration::from_secs(5), Some(&ca))?;
/// stream.write_all(b"hola")?;
/// stream.shutdown(std::net::Shutdown::Both)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Stream {
    inner: Inner,
    /// Where reads wait when another thread must be able to end them (the
    /// pool's shutdown, a client's close); without one, reads block in the
    /// kernel as a `TcpStream`'s do.
    gate: Option<Arc<Gate>>,
}

enum Inner {
    Plain(TcpStream),
    Tls(TlsHalf),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("tls", &self.is_tls())
            .field("peer", &self.socket().peer_addr().ok())
            .finish()
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream::plain(stream)
    }
}

impl Stream {
    /// A plain TCP stream, as it is.
    pub fn plain(stream: TcpStream) -> Stream {
        Stream {
            inner: Inner::Plain(stream),
            gate: None,
        }
    }

    /// Connect to `addr` (`host:port`, every address it resolves to, each
    /// within `timeout`), then, with `tls`, run the TLS handshake as the
    /// client within `timeout` too, checking the certificate against the
    /// host part of `addr` (or [`TlsConnector::server_name`]).
    pub fn connect(addr: &str, timeout: Duration, tls: Option<&TlsConnector>) -> Result<Stream> {
        let stream = crate::net::connect(addr, timeout)?;
        match tls {
            None => Ok(Stream::plain(stream)),
            Some(connector) => Stream::connect_tls(stream, connector, Some(addr), timeout),
        }
    }

    /// A TLS session already set up over its socket.
    pub(crate) fn from_tls(half: TlsHalf) -> Stream {
        Stream {
            inner: Inner::Tls(half),
            gate: None,
        }
    }

    /// Run the TLS handshake as the client on a connected stream, within
    /// `timeout`. `addr` is the address dialed (its host is the name to
    /// check); without it, the peer's IP address is checked, unless
    /// [`TlsConnector::server_name`] names the server.
    pub fn connect_tls(
        stream: TcpStream,
        connector: &TlsConnector,
        addr: Option<&str>,
        timeout: Duration,
    ) -> Result<Stream> {
        let half = crate::tls::connect(connector, stream, addr, timeout)?;
        Ok(Stream::from_tls(half))
    }

    /// Run the TLS handshake as the server on an accepted stream, within
    /// the acceptor's handshake timeout (a peer that connects and stalls
    /// is refused then).
    pub fn accept_tls(stream: TcpStream, acceptor: &TlsAcceptor) -> Result<Stream> {
        let half = crate::tls::accept(acceptor, stream)?;
        Ok(Stream::from_tls(half))
    }

    /// Run the shared-key handshake over this stream (inside TLS, when it
    /// is TLS), within `auth.timeout`. `role` is [`Role::Dialer`] for the
    /// end that connected. Reads exactly the handshake's bytes; the stream's
    /// own timeouts are put back afterwards.
    pub fn authenticate(&self, role: Role, auth: &AuthConfig) -> Result<()> {
        match &self.inner {
            Inner::Plain(s) => crate::auth::handshake(s, role, auth),
            Inner::Tls(half) => crate::auth::handshake_over(&mut &*half, half.socket(), role, auth),
        }
    }

    /// Make every read wait at `gate` (over this stream's socket), so that
    /// [`Gate::close`] from another thread ends it on every platform.
    pub(crate) fn set_gate(&mut self, gate: Arc<Gate>) {
        if let Inner::Tls(half) = &mut self.inner {
            half.set_gate(gate.clone());
        }
        self.gate = Some(gate);
    }

    /// A new [`Gate`] over this stream's socket, set on it (every read,
    /// plain or TLS, then waits there), and returned for the thread that
    /// will end the reads with [`Gate::close`]: how a program that reads a
    /// `Stream` on one thread (a proxy's pump) stops it from another on
    /// every platform. The gate enforces the read timeout from then on.
    pub fn gate(&mut self) -> io::Result<Arc<Gate>> {
        let gate = Arc::new(Gate::new(self.socket())?);
        self.set_gate(gate.clone());
        Ok(gate)
    }

    /// True when the bytes go through TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// The socket itself when there is no TLS, for `std::io::copy`'s
    /// `sendfile`/`splice` and the like; `None` under TLS, where bytes
    /// written to the socket directly would break the session.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.inner {
            Inner::Plain(s) => Some(s),
            Inner::Tls(_) => None,
        }
    }

    fn socket(&self) -> &TcpStream {
        match &self.inner {
            Inner::Plain(s) => s,
            Inner::Tls(half) => half.socket(),
        }
    }

    /// Shut down one or both directions. Under TLS, shutting the writing
    /// direction first says goodbye (close_notify), so the other end reads
    /// a clean end rather than a cut one.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let (Inner::Tls(half), Shutdown::Write | Shutdown::Both) = (&self.inner, how) {
            half.close_notify();
        }
        self.socket().shutdown(how)
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket().peer_addr()
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    /// A read that waits longer than this fails (`None`: wait forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.set_timeout(timeout);
        }
        self.socket().set_read_timeout(timeout)
    }

    /// A write that waits longer than this fails (`None`: wait forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_write_timeout(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        match &self.gate {
            Some(gate) => Ok(gate.timeout()),
            None => self.socket().read_timeout(),
        }
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.socket().write_timeout()
    }

    /// Disable (or enable) Nagle's algorithm.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket().set_nodelay(nodelay)
    }
}

/// How a new connection speaks TLS, if at all.
pub(crate) enum TlsRole<'a> {
    /// Plain TCP.
    Plain,
    /// As the client: check the server's certificate against the host of
    /// `addr` (the address dialed), or its IP address without one.
    Client {
        connector: &'a TlsConnector,
        addr: Option<&'a str>,
        timeout: Duration,
    },
    /// As the server.
    Server(&'a TlsAcceptor),
}

/// A connection set up for one reader thread and writers on any thread:
/// what the client, the multi-server client and the peer node each hold of
/// a live connection.
pub(crate) struct Duplex {
    /// Read by one thread; its reads wait at `gate`.
    pub(crate) reader: Stream,
    /// Written from any thread (a TLS session locks itself).
    pub(crate) writer: Stream,
    /// Closing it ends the reader's wait and shuts the socket.
    pub(crate) gate: Arc<Gate>,
    /// The TLS session, to say goodbye (close_notify) before closing.
    pub(crate) tls: Option<TlsHalf>,
}

/// Run the handshakes a new connection needs (TLS in `role`, then the
/// shared key inside it, as `auth`'s side) and split it into a gated reader
/// and a writer.
pub(crate) fn duplex(
    stream: TcpStream,
    role: TlsRole<'_>,
    auth: Option<(&AuthConfig, Role)>,
) -> Result<Duplex> {
    let (mut reader, writer, tls) = match role {
        TlsRole::Plain => (
            Stream::plain(stream.try_clone()?),
            Stream::plain(stream),
            None,
        ),
        TlsRole::Client {
            connector,
            addr,
            timeout,
        } => {
            let half = crate::tls::connect(connector, stream, addr, timeout)?;
            (
                Stream::from_tls(half.clone()),
                Stream::from_tls(half.clone()),
                Some(half),
            )
        }
        TlsRole::Server(acceptor) => {
            let half = crate::tls::accept(acceptor, stream)?;
            (
                Stream::from_tls(half.clone()),
                Stream::from_tls(half.clone()),
                Some(half),
            )
        }
    };
    if let Some((auth, side)) = auth {
        reader.authenticate(side, auth)?;
    }
    let gate = reader.gate()?;
    Ok(Duplex {
        reader,
        writer,
        gate,
        tls,
    })
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (&self.inner, &self.gate) {
            (Inner::Plain(s), Some(gate)) => gate.read(s, buf),
            (Inner::Plain(s), None) => (&*s).read(buf),
            // A TLS half waits at the same gate (set with it) for wire bytes.
            (Inner::Tls(t), _) => (&*t).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Plain(s) => (&*s).write(buf),
            Inner::Tls(t) => (&*t).write(buf),
        }
    }

    /// A frame's header and payload in one write (one TLS record).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &self.inner {
            Inner::Plain(s) => (&*s).write_vectored(bufs),
            Inner::Tls(t) => (&*t).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.inner {
            Inner::Plain(s) => (&*s).flush(),
            Inner::Tls(t) => (&*t).flush(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}
