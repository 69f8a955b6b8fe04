//! A blocking server for whole-stream work: each connection, a blocking
//! [`Stream`] (plain TCP or TLS), is handed to a handler on a fixed pool of
//! threads.
//!
//! The readiness-loop [`Server`](crate::Server) is for messages: many
//! connections, small frames, a service that never blocks. Some work is one
//! long stream instead (a file of many GiB moved with `sendfile`/`splice`),
//! where a thread that blocks in the kernel's copy is the simplest and the
//! fastest design. [`PoolServer`] does that safely: a bounded number of
//! threads, a bounded queue, read and write timeouts on every stream so a
//! stalled peer cannot hold a thread forever, accept errors that back off,
//! and a shutdown that wakes every handler blocked reading (its reads wait
//! at a gate that shutdown closes, on every platform).
//!
//! TLS and the shared key run on the pool thread, in the order the other
//! servers use (TLS first, then the key inside it), before the handler is
//! called: a peer that fails either is logged and closed, and the handler
//! never sees it. A plain stream keeps its `TcpStream` reachable
//! ([`Stream::as_tcp`]) for `sendfile`; a TLS one moves every byte through
//! rustls.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::acceptor::{Acceptor, AcceptorHandle};
use crate::gate::Gate;
use crate::options::{link_setters, with};
use crate::{AuthConfig, Error, LinkOptions, Result, Stream, TlsAcceptor};

/// Settings of a [`PoolServer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Where to listen. Default `127.0.0.1:0`.
    pub addr: String,
    /// Handler threads: at most this many connections are served at once. Default 16.
    pub threads: usize,
    /// Connections that may wait for a free thread; more are closed at once. Default 64.
    pub queue: usize,
    /// A read that waits longer than this fails (a stalled peer). Default 30 s.
    pub read_timeout: Option<Duration>,
    /// A write that waits longer than this fails (a peer that stopped reading). Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Disable Nagle's algorithm. Default on.
    pub nodelay: bool,
    /// Listen backlog. Default 1024.
    pub backlog: i32,
    /// The key (as the listening side) and TLS, both run on the pool
    /// thread before the handler gets the stream (TLS within the acceptor's
    /// handshake timeout, then the key inside it); a peer that fails either
    /// is closed and logged, and the handler never sees it. Keepalive is
    /// off by default here: the read and write timeouts already free a
    /// thread whose peer vanished.
    pub link: LinkOptions<TlsAcceptor>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            addr: "127.0.0.1:0".into(),
            threads: 16,
            queue: 64,
            read_timeout: Some(Duration::from_secs(30)),
            write_timeout: Some(Duration::from_secs(30)),
            nodelay: true,
            backlog: 1024,
            link: LinkOptions::default().with_keepalive(None),
        }
    }
}

impl PoolConfig {
    /// The default settings on the given address.
    pub fn new(addr: impl Into<String>) -> Self {
        PoolConfig {
            addr: addr.into(),
            ..PoolConfig::default()
        }
    }

    with!(
        with_addr: addr: String,
        with_threads: threads: usize,
        with_queue: queue: usize,
        with_read_timeout: read_timeout: Option<Duration>,
        with_write_timeout: write_timeout: Option<Duration>,
        with_nodelay: nodelay: bool,
        with_backlog: backlog: i32,
        with_link: link: LinkOptions<TlsAcceptor>,
    );
    link_setters!(TlsAcceptor, link);
}

/// Stops a running [`PoolServer`] from any thread.
#[derive(Clone)]
pub struct PoolHandle {
    acceptor: AcceptorHandle,
    /// The gate of every connection accepted and not yet finished.
    active: Arc<Mutex<HashMap<u64, Arc<Gate>>>>,
}

impl PoolHandle {
    /// Stop accepting, wake every handler blocked on its socket (its reads
    /// and writes fail), and let `run` return once they have finished.
    pub fn shutdown(&self) {
        self.acceptor.stop();
        if let Ok(active) = self.active.lock() {
            for gate in active.values() {
                gate.close(Shutdown::Both);
            }
        }
    }

    /// True once shutdown was asked for.
    pub fn is_shut_down(&self) -> bool {
        self.acceptor.is_stopped()
    }
}

/// A bound pool server; [`run`](PoolServer::run) serves until shutdown.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use trama_transport::{PoolConfig, PoolServer};
///
/// let server = PoolServer::bind(PoolConfig::default())?;
/// eprintln!("listening on {}", server.local_addr());
/// server.run(|mut stream, peer| {
///     let mut buf = [0u8; 4096];
///     while let Ok(n) = stream.read(&mut buf) {
///         if n == 0 || stream.write_all(&buf[..n]).is_err() {
///             break;
///         }
///     }
///     eprintln!("{peer} done");
/// })?;
/// # Ok::<(), trama_transport::Error>(())
/// ```
pub struct PoolServer {
    acceptor: Acceptor,
    config: PoolConfig,
    handle: PoolHandle,
}

impl PoolServer {
    /// Bind the listener.
    pub fn bind(config: PoolConfig) -> Result<PoolServer> {
        let acceptor = Acceptor::bind(&config.addr, config.backlog)?;
        let handle = PoolHandle {
            acceptor: acceptor.handle(),
            active: Arc::new(Mutex::new(HashMap::new())),
        };
        Ok(PoolServer {
            acceptor,
            config,
            handle,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// A handle to stop it from another thread.
    pub fn handle(&self) -> PoolHandle {
        self.handle.clone()
    }

    /// Serve until [`PoolHandle::shutdown`]: each accepted connection, with
    /// its timeouts set and in blocking mode, goes to `handler` on a pool
    /// thread once its TLS and key handshakes (if configured) are done.
    /// Returns after every pool thread has finished.
    pub fn run<F>(mut self, handler: F) -> Result<()>
    where
        F: Fn(Stream, SocketAddr) + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        let (tx, rx) = crossbeam_channel::bounded::<(u64, TcpStream, Arc<Gate>, SocketAddr)>(
            self.config.queue,
        );
        let mut threads = Vec::new();
        for i in 0..self.config.threads.max(1) {
            let (rx, handler, active) = (rx.clone(), handler.clone(), self.handle.active.clone());
            let (auth, tls) = (self.config.link.auth.clone(), self.config.link.tls.clone());
            let stop = self.handle.acceptor.clone();
            let t = std::thread::Builder::new()
                .name(format!("trama-pool-{i}"))
                .spawn(move || {
                    for (id, stream, gate, peer) in rx {
                        let mut stream = match secure(stream, tls.as_ref(), auth.as_ref()) {
                            Ok(stream) => stream,
                            Err(e) => {
                                // At shutdown the socket was shut under the
                                // handshake: not the peer's fault.
                                if stop.is_stopped() {
                                    log::debug!("{peer}: handshake cut by shutdown: {e}");
                                } else {
                                    log::warn!("{peer} refused: {e}");
                                }
                                if let Ok(mut a) = active.lock() {
                                    a.remove(&id);
                                }
                                continue;
                            }
                        };
                        stream.set_gate(gate);
                        // A handler that panics loses its connection, not the thread.
                        let run = std::panic::AssertUnwindSafe(|| handler(stream, peer));
                        if std::panic::catch_unwind(run).is_err() {
                            log::error!("handler for {peer} panicked");
                        }
                        if let Ok(mut a) = active.lock() {
                            a.remove(&id);
                        }
                    }
                })
                .map_err(|source| Error::Thread {
                    name: format!("trama-pool-{i}"),
                    source,
                });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    drop(tx);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        let next_id = AtomicU64::new(0);
        while let Some((stream, peer)) = self.acceptor.accept() {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let (stream, gate) = match self.prepare(stream) {
                Ok(prepared) => prepared,
                Err(e) => {
                    log::warn!("{peer}: cannot set up the socket: {e}");
                    continue;
                }
            };
            if let Ok(mut a) = self.handle.active.lock() {
                // A shutdown that came between accept and here has already
                // closed the gates it saw (under this lock): close this one.
                if self.handle.is_shut_down() {
                    gate.close(Shutdown::Both);
                }
                a.insert(id, gate.clone());
            }
            if tx.try_send((id, stream, gate, peer)).is_err() {
                log::warn!(
                    "{peer} refused: all {} threads busy and {} waiting",
                    self.config.threads,
                    self.config.queue
                );
                if let Ok(mut a) = self.handle.active.lock() {
                    a.remove(&id);
                }
            }
        }
        drop(tx);
        self.handle.shutdown();
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    }

    /// A blocking socket with the configured options, and the gate its
    /// handler's reads will wait at (which shutdown closes).
    fn prepare(&self, stream: TcpStream) -> io::Result<(TcpStream, Arc<Gate>)> {
        if self.config.nodelay {
            stream.set_nodelay(true)?;
        }
        stream.set_read_timeout(self.config.read_timeout)?;
        stream.set_write_timeout(self.config.write_timeout)?;
        if let Some(keepalive) = self.config.link.keepalive {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            crate::net::keepalive_or_log((&stream).into(), Some(keepalive), &peer);
        }
        let gate = Arc::new(Gate::new(&stream)?);
        Ok((stream, gate))
    }
}

/// The handshakes a pool connection goes through before its handler: TLS
/// (as the server), then the shared key inside it, the order every trama
/// server uses. Each has its own deadline.
fn secure(
    stream: TcpStream,
    tls: Option<&TlsAcceptor>,
    auth: Option<&AuthConfig>,
) -> Result<Stream> {
    let stream = match tls {
        None => Stream::plain(stream),
        Some(acceptor) => Stream::accept_tls(stream, acceptor)?,
    };
    if let Some(auth) = auth {
        stream.authenticate(trama_protocol::auth::Role::Listener, auth)?;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::thread::JoinHandle;

    /// A pool server running `handler` on a thread of its own.
    fn start(
        config: PoolConfig,
        handler: impl Fn(Stream, SocketAddr) + Send + Sync + 'static,
    ) -> (SocketAddr, PoolHandle, JoinHandle<()>) {
        let server = PoolServer::bind(config).unwrap();
        let (addr, handle) = (server.local_addr(), server.handle());
        (
            addr,
            handle,
            std::thread::spawn(move || server.run(handler).unwrap()),
        )
    }

    #[test]
    fn serves_and_shuts_down_with_a_handler_blocked_in_read() {
        let config = PoolConfig {
            threads: 2,
            read_timeout: None,
            ..PoolConfig::default()
        };
        let (addr, handle, t) = start(config, |mut s, _| {
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"hola").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hola");
        // The handler is now blocked in read with no timeout; shutdown must wake it.
        handle.shutdown();
        t.join().unwrap();
    }

    #[test]
    fn a_panicking_handler_does_not_kill_the_pool() {
        let config = PoolConfig {
            threads: 1,
            ..PoolConfig::default()
        };
        let (addr, handle, t) = start(config, |mut s, _| {
            let mut b = [0u8; 1];
            if s.read(&mut b).unwrap_or(0) == 1 && b[0] == b'!' {
                panic!("boom");
            }
            let _ = s.write_all(b"ok");
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"!").unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ok");
        handle.shutdown();
        t.join().unwrap();
    }
}
