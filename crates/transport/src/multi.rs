//! A client of several servers at once: the notes' "cliente conectado a más
//! de un servidor", for any number of servers, that survives servers going away.
//!
//! Each server gets its own connection and its own supervisor thread, which
//! connects, reads frames into one shared event stream (every event names its
//! server), and, when the connection ends, reconnects in the background with
//! capped exponential backoff and jitter while the other servers keep
//! working. A message sent to a server that is down waits in a small bounded
//! queue and goes out, in order, as soon as the link is back.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use trama_protocol::{FrameConfig, FrameReader, FrameWriter};

use crate::gate::Gate;
use crate::options::{backoff_setter, dial_setters, with};
use crate::stream::{Duplex, Stream, TlsRole};
use crate::{DialOptions, Error, Result, TlsConnector};

/// One server to connect to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerSpec {
    /// A label for messages and `@NAME` addressing.
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// Framed (the default) or the notes' unframed dialect.
    pub frame: FrameConfig,
}

impl ServerSpec {
    /// The server labelled `name` at `addr` (`host:port`), in the notes'
    /// framed format.
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            addr: addr.into(),
            frame: FrameConfig::default(),
        }
    }

    with!(with_frame: frame: FrameConfig);
}

/// Settings of a [`MultiClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MultiConfig {
    /// Messages held per server while it is down. Default 64.
    pub queue: usize,
    /// How every server is dialed and redialed (connect timeout default
    /// 3 s). The key and TLS apply to every framed server only (the notes'
    /// unframed servers know neither and are left alone); a server that
    /// rejects the key or whose certificate is not trusted is reported
    /// `Down` and retried like any other failure.
    pub dial: DialOptions<TlsConnector>,
}

impl Default for MultiConfig {
    fn default() -> Self {
        MultiConfig {
            queue: 64,
            dial: DialOptions::default().with_connect_timeout(Duration::from_secs(3)),
        }
    }
}

impl MultiConfig {
    with!(
        with_queue: queue: usize,
        with_dial: dial: DialOptions<TlsConnector>,
    );
    dial_setters!(TlsConnector, dial);
    backoff_setter!(dial);
}

/// What happened on one of the connections. `server` is the index in the
/// list given to [`MultiClient::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiEvent {
    /// Connected (again), and any held messages have been sent.
    Up {
        /// Which server.
        server: usize,
        /// The address that answered.
        addr: SocketAddr,
        /// How many held messages were sent on connecting.
        flushed: usize,
    },
    /// A message arrived.
    Message {
        /// Which server.
        server: usize,
        /// The payload (a frame, or one read in the unframed dialect).
        payload: Vec<u8>,
    },
    /// The server is not reachable (the connection ended, or an attempt failed).
    Down {
        /// Which server.
        server: usize,
        /// Why.
        reason: String,
        /// When the next attempt is made.
        retry_in: Duration,
    },
}

/// The outcome of [`MultiClient::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written to the server's socket.
    Now,
    /// The server is down: held, and sent when it is back.
    Held {
        /// Messages waiting for that server, this one included.
        waiting: usize,
    },
}

struct Link {
    spec: ServerSpec,
    /// Present while connected.
    writer: Mutex<Option<FrameWriter<Stream>>>,
    /// Messages waiting for the connection. Lock order: `writer`, then `held`.
    held: Mutex<VecDeque<Vec<u8>>>,
    /// The live connection's gate, closed on close (which wakes its reader).
    control: Mutex<Option<Arc<Gate>>>,
}

/// Connections to several servers behind one event stream.
///
/// ```no_run
/// use trama_protocol::FrameConfig;
/// use trama_transport::{MultiClient, MultiConfig, MultiEvent, ServerSpec};
///
/// let servers = vec![
///     ServerSpec::new("1", "127.0.0.1:8080"),
///     ServerSpec::new("2", "127.0.0.1:8081").with_frame(FrameConfig::unframed()),
/// ];
/// let multi = MultiClient::start(servers, MultiConfig::default())?;
/// multi.send(0, b"hola 1")?;
/// multi.send(1, b"hola 2")?;
/// for event in multi.events().iter() {
///     if let MultiEvent::Message { server, payload } = event {
///         println!("{server}: {}", String::from_utf8_lossy(&payload));
///     }
/// }
/// # Ok::<(), trama_transport::Error>(())
/// ```
pub struct MultiClient {
    links: Vec<Arc<Link>>,
    events: Receiver<MultiEvent>,
    stop: Arc<AtomicBool>,
    /// Messages held per server while it is down.
    queue: usize,
    /// Dropped on close: wakes every supervisor sleeping before a retry.
    wake: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl MultiClient {
    /// Start connecting to every server; returns at once. Connections come
    /// up (and go down) as [`MultiEvent`]s.
    pub fn start(servers: Vec<ServerSpec>, config: MultiConfig) -> Result<MultiClient> {
        let (tx, events) = crossbeam_channel::unbounded();
        let (wake, asleep) = crossbeam_channel::bounded::<()>(0);
        let stop = Arc::new(AtomicBool::new(false));
        let mut client = MultiClient {
            links: Vec::new(),
            events,
            stop: stop.clone(),
            queue: config.queue.max(1),
            wake: Some(wake),
            threads: Vec::new(),
        };
        for (index, spec) in servers.into_iter().enumerate() {
            let link = Arc::new(Link {
                spec,
                writer: Mutex::new(None),
                held: Mutex::new(VecDeque::new()),
                control: Mutex::new(None),
            });
            client.links.push(link.clone());
            let (tx, asleep, stop, config) =
                (tx.clone(), asleep.clone(), stop.clone(), config.clone());
            let name = format!("trama-multi-{index}");
            let t = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || supervise(index, &link, &config, &tx, &asleep, &stop))
                .map_err(|source| Error::Thread { name, source })?;
            client.threads.push(t);
        }
        Ok(client)
    }

    /// The servers, in the order given.
    pub fn servers(&self) -> Vec<&ServerSpec> {
        self.links.iter().map(|l| &l.spec).collect()
    }

    /// The index of the server labelled `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.links.iter().position(|l| l.spec.name == name)
    }

    /// True while the server's connection is up.
    pub fn is_up(&self, server: usize) -> bool {
        self.links
            .get(server)
            .and_then(|l| l.writer.lock().ok().map(|w| w.is_some()))
            .unwrap_or(false)
    }

    /// Send one message to one server, or hold it until the server is back
    /// (at most [`MultiConfig::queue`] per server; past that the send fails).
    pub fn send(&self, server: usize, payload: &[u8]) -> Result<Sent> {
        let link = self
            .links
            .get(server)
            .ok_or_else(|| Error::Closed(format!("there is no server {}", server + 1)))?;
        let mut writer = link.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = writer.as_mut() {
            match w.write_frame(payload) {
                Ok(()) => return Ok(Sent::Now),
                Err(trama_protocol::Error::Io(e)) => {
                    // The supervisor will see the broken socket too; hold the message.
                    log::debug!("{}: send failed ({e}); holding the message", link.spec.name);
                    *writer = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut held = link.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= self.queue {
            return Err(Error::Closed(format!(
                "{} is not connected and {} messages already wait for it",
                link.spec.name,
                held.len()
            )));
        }
        held.push_back(payload.to_vec());
        Ok(Sent::Held {
            waiting: held.len(),
        })
    }

    /// How many messages wait for `server` to be connected (0 for a
    /// server that does not exist): what would be lost by closing now.
    pub fn held(&self, server: usize) -> usize {
        self.links.get(server).map_or(0, |l| {
            l.held.lock().unwrap_or_else(|e| e.into_inner()).len()
        })
    }

    /// The event stream of all servers.
    pub fn events(&self) -> &Receiver<MultiEvent> {
        &self.events
    }

    /// Close every connection and stop reconnecting; waits for the threads.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake = None;
        for link in &self.links {
            if let Some(gate) = link.control.lock().ok().and_then(|c| c.clone()) {
                gate.close(Shutdown::Both);
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MultiClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One server's supervisor: connect, read until the connection ends, wait, repeat.
fn supervise(
    index: usize,
    link: &Link,
    config: &MultiConfig,
    tx: &Sender<MultiEvent>,
    asleep: &Receiver<()>,
    stop: &AtomicBool,
) {
    // A seed of its own, so dialers that fail together retry apart.
    let mut retries = config.dial.backoff.retries(fastrand::u64(..));
    let mut reported_down = false;
    while !stop.load(Ordering::SeqCst) {
        let reason = match crate::net::connect(&link.spec.addr, config.dial.connect_timeout) {
            Ok(stream) => match serve(index, link, stream, config, tx, stop) {
                Ok(reason) => {
                    retries.reset();
                    reported_down = false;
                    reason
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let wait = retries.next_delay();
        if !reported_down {
            reported_down = true;
            let _ = tx.send(MultiEvent::Down {
                server: index,
                reason,
                retry_in: wait,
            });
        } else {
            log::debug!(
                "{}: still down ({reason}); next try in {wait:?}",
                link.spec.name
            );
        }
        match asleep.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            // The client is closing.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Run one connection: flush held messages, announce it, read until it ends.
/// Returns why it ended.
fn serve(
    index: usize,
    link: &Link,
    stream: TcpStream,
    config: &MultiConfig,
    tx: &Sender<MultiEvent>,
    stop: &AtomicBool,
) -> Result<String> {
    stream.set_nodelay(true)?;
    let addr = stream.peer_addr()?;
    crate::net::keepalive_or_log(
        (&stream).into(),
        config.dial.link.keepalive,
        &addr.to_string(),
    );
    // With nothing listening on a loopback port, a connect can pick that
    // same port as its source and connect to itself (TCP simultaneous open);
    // it would then read back its own messages and keep the port taken.
    if stream.local_addr()? == addr {
        return Err(Error::Connect {
            addr: link.spec.addr.clone(),
            reason: format!("{addr}: connected to itself (nothing listens there)"),
        });
    }
    let framed = !link.spec.frame.is_unframed();
    // The notes' unframed servers speak neither TLS nor the key.
    let role = match config.dial.link.tls.as_ref().filter(|_| framed) {
        None => TlsRole::Plain,
        Some(connector) => TlsRole::Client {
            connector,
            addr: Some(&link.spec.addr),
            timeout: config.dial.connect_timeout,
        },
    };
    let auth = config
        .dial
        .link
        .auth
        .as_ref()
        .filter(|_| framed)
        .map(|a| (a, trama_protocol::auth::Role::Dialer));
    let Duplex {
        reader,
        writer: sink,
        gate,
        tls,
    } = crate::stream::duplex(stream, role, auth)?;
    *link.control.lock().unwrap_or_else(|e| e.into_inner()) = Some(gate);
    // `close` sets `stop` and then closes the registered gates: if it ran
    // before the line above, it missed this one, and the read below would
    // block it forever.
    if stop.load(Ordering::SeqCst) {
        *link.control.lock().unwrap_or_else(|e| e.into_inner()) = None;
        return Ok("client closed".to_string());
    }
    let frame = link.spec.frame;
    let flushed = {
        let mut writer = link.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut held = link.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = FrameWriter::new(sink, frame);
        let mut flushed = 0;
        while let Some(m) = held.front() {
            w.write_frame(m)?;
            held.pop_front();
            flushed += 1;
        }
        *writer = Some(w);
        flushed
    };
    let _ = tx.send(MultiEvent::Up {
        server: index,
        addr,
        flushed,
    });
    let mut reader = FrameReader::new(reader, frame);
    let reason = loop {
        let mut buf = Vec::new();
        match reader.read_frame_into(&mut buf) {
            Ok(true) => {
                if tx
                    .send(MultiEvent::Message {
                        server: index,
                        payload: buf,
                    })
                    .is_err()
                {
                    break "client closed".to_string();
                }
            }
            Ok(false) => break "the server closed the connection".to_string(),
            Err(e) if stop.load(Ordering::SeqCst) => break e.to_string(),
            Err(e) => break e.to_string(),
        }
    };
    *link.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
    *link.control.lock().unwrap_or_else(|e| e.into_inner()) = None;
    if let Some(half) = tls {
        // Best effort: a server still there reads a clean close.
        half.close_notify();
    }
    Ok(reason)
}
