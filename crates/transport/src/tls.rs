//! TLS with rustls (ring provider, no OpenSSL): the settings a server and a
//! client carry, and the blocking stream halves the clients and the peers
//! read and write through (a peer's accepted links are the server side of
//! a blocking session). (The readiness loop drives rustls's sans-IO
//! `ServerConnection` itself.)

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, Connection, RootCertStore, ServerConnection};

use crate::gate::Gate;
use crate::{Error, Result};

/// A server's TLS identity: its certificate chain and private key.
#[derive(Clone)]
pub struct TlsAcceptor {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// The TLS handshake must finish within this time (a peer that connects
    /// and stalls is dropped). Default 10 s.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("TlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// From PEM files: the certificate chain (leaf first) and its private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
        let chain = read_pem(cert)?;
        let key_pem = read_pem(key)?;
        TlsAcceptor::from_pem(&chain, &key_pem)
    }

    /// From PEM text: the certificate chain (leaf first) and its private key.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<TlsAcceptor> {
        let certs = CertificateDer::pem_slice_iter(chain)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(tls_error("no certificate in the certificate PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| tls_error(format!("private key PEM: {e}")))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error(format!("certificate and key: {e}")))?;
        Ok(TlsAcceptor {
            config: Arc::new(config),
            handshake_timeout: Duration::from_secs(10),
        })
    }
}

/// What a client trusts, and the name it expects the server to have.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry. `None`: the host part
    /// of the address dialed (or the peer's IP address for a stream handed
    /// in).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Trust the certificate authorities in a PEM file (and nothing else:
    /// trama dials its own servers, not the web).
    pub fn from_ca_file(ca: &Path) -> Result<TlsConnector> {
        TlsConnector::from_ca_pem(&read_pem(ca)?)
    }

    /// Trust the certificate authorities in PEM text.
    pub fn from_ca_pem(pem: &[u8]) -> Result<TlsConnector> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| tls_error(format!("CA PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(tls_error("no certificate in the CA PEM"));
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnector {
            config: Arc::new(config),
            server_name: None,
        })
    }

    /// The name to verify for a connection to `addr` (`host:port`).
    fn name_for(&self, addr: Option<&str>, peer: IpAddr) -> Result<ServerName<'static>> {
        let host = match (&self.server_name, addr) {
            (Some(name), _) => name.clone(),
            (None, Some(addr)) => host_of(addr).to_string(),
            (None, None) => peer.to_string(),
        };
        ServerName::try_from(host.clone())
            .map_err(|e| tls_error(format!("{host:?} is not a server name: {e}")))
    }
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(message: impl Into<String>) -> Error {
    Error::Tls(message.into())
}

/// Read a PEM file with a size cap (certificates and keys are small).
fn read_pem(path: &Path) -> Result<Vec<u8>> {
    const MAX_PEM: u64 = 1 << 20;
    let file =
        std::fs::File::open(path).map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM)
        .read_to_end(&mut bytes)
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    Ok(bytes)
}

/// A blocking TLS session (the client's or the server's side), shared by
/// its reading and writing halves. The lock is held only to move bytes in
/// or out of rustls, never while waiting on the socket for reading.
#[derive(Clone)]
pub(crate) struct TlsHalf {
    conn: Arc<Mutex<Connection>>,
    sock: Arc<TcpStream>,
    /// Where the reading half waits for wire bytes, when it has one.
    gate: Option<Arc<Gate>>,
}

/// Run the TLS handshake as a client on a blocking stream, within `limit`.
pub(crate) fn connect(
    connector: &TlsConnector,
    stream: TcpStream,
    addr: Option<&str>,
    limit: Duration,
) -> Result<TlsHalf> {
    let name = connector.name_for(addr, stream.peer_addr()?.ip())?;
    let conn = ClientConnection::new(connector.config.clone(), name)
        .map_err(|e| tls_error(e.to_string()))?;
    handshake(Connection::Client(conn), stream, limit, "the server")
}

/// Run the TLS handshake as a server on a blocking stream, within the
/// acceptor's handshake timeout (a peer that connects and stalls is
/// refused then).
pub(crate) fn accept(acceptor: &TlsAcceptor, stream: TcpStream) -> Result<TlsHalf> {
    let conn =
        ServerConnection::new(acceptor.config.clone()).map_err(|e| tls_error(e.to_string()))?;
    handshake(
        Connection::Server(conn),
        stream,
        acceptor.handshake_timeout,
        "the client",
    )
}

/// Drive a handshake on a blocking stream until it is done, within `limit`;
/// `other` names the other end in errors.
fn handshake(
    mut conn: Connection,
    stream: TcpStream,
    limit: Duration,
    other: &str,
) -> Result<TlsHalf> {
    let saved = (stream.read_timeout()?, stream.write_timeout()?);
    let deadline = Instant::now() + limit;
    let mut sock = &stream;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(tls_error(format!(
                "handshake not finished within {limit:?}"
            )));
        }
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(left))?;
        match conn.complete_io(&mut sock) {
            Ok((_, 0)) if conn.is_handshaking() && !conn.wants_write() => {
                return Err(tls_error(format!(
                    "{other} closed the connection during the handshake"
                )))
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(tls_error(format!(
                    "handshake not finished within {limit:?}"
                )))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                return Err(tls_error(format!(
                    "{other} closed the connection during the TLS handshake (does it speak TLS?)"
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // rustls's verdict (a certificate it does not trust, or
                // bytes that are not TLS); the alert is already written.
                return Err(Error::TlsRejected(e.to_string()));
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
    stream.set_read_timeout(saved.0)?;
    stream.set_write_timeout(saved.1)?;
    Ok(TlsHalf {
        conn: Arc::new(Mutex::new(conn)),
        sock: Arc::new(stream),
        gate: None,
    })
}

impl TlsHalf {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write whatever rustls has to send.
    fn push(conn: &mut Connection, mut sock: &TcpStream) -> io::Result<()> {
        while conn.wants_write() {
            conn.write_tls(&mut sock)?;
        }
        Ok(())
    }

    /// Say goodbye properly (close_notify), best effort.
    pub(crate) fn close_notify(&self) {
        let mut conn = self.lock();
        conn.send_close_notify();
        let _ = TlsHalf::push(&mut conn, &self.sock);
    }

    /// Wait for wire bytes at `gate` (over this session's socket).
    pub(crate) fn set_gate(&mut self, gate: Arc<Gate>) {
        self.gate = Some(gate);
    }

    /// The socket under the session (for timeouts and shutdown).
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

impl Read for TlsHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

/// Through a shared reference, as [`TcpStream`] allows: the session locks
/// itself. One reader at a time: two threads reading the same session would
/// each take wire bytes from the socket and could feed them out of order.
impl Read for &TlsHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut conn = self.lock();
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            // Wait for wire bytes without holding the lock, so writers go
            // on, and without taking them: rustls reads them itself below,
            // only as many as it has room for. (Bytes read here first would
            // have to be fed in whole, and rustls refuses more once a burst
            // of records has filled its plaintext buffer: they would be lost.)
            match &self.gate {
                Some(gate) => gate.wait()?,
                None => {
                    self.sock.peek(&mut [0u8; 1])?;
                }
            }
            let mut conn = self.lock();
            // One read of the socket, which will not block now.
            let n = conn.read_tls(&mut &*self.sock)?;
            if let Err(e) = conn.process_new_packets() {
                let _ = TlsHalf::push(&mut conn, &self.sock);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if n == 0 {
                // The end of the stream (or close_notify, after which rustls
                // reads nothing more): what is left, then the end, or an
                // error if the peer cut the session without close_notify.
                return match conn.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) => Err(e),
                };
            }
            TlsHalf::push(&mut conn, &self.sock)?;
        }
    }
}

impl Write for TlsHalf {
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

/// Through a shared reference: each write holds the session's lock while it
/// encrypts and sends, so writers from several threads never interleave
/// inside a record.
impl Write for &TlsHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut conn = self.lock();
        let n = conn.writer().write(buf)?;
        TlsHalf::push(&mut conn, &self.sock)?;
        Ok(n)
    }

    /// Header and payload in one TLS record, not two.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = self.lock();
        let mut total = 0;
        for b in bufs {
            let n = conn.writer().write(b)?;
            total += n;
            if n < b.len() {
                break;
            }
        }
        TlsHalf::push(&mut conn, &self.sock)?;
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut conn = self.lock();
        conn.writer().flush()?;
        TlsHalf::push(&mut conn, &self.sock)
    }
}
