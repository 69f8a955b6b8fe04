//! A peer: a node that accepts links and dials them, with one event type for
//! both — the notes' "cliente P2P" that is server and client at once.
//!
//! Every link, accepted or dialed, is a [`LinkId`] with a reader thread that
//! turns frames into [`LinkEvent`]s on one channel. A dial can be persistent:
//! its supervisor redials with capped exponential backoff and jitter whenever
//! the link is down, so two peers find each other whichever starts first. The
//! node knows nothing of what the frames mean (hellos, relaying and
//! duplicate links are the business of `trama-backend`'s mesh rules).

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use trama_protocol::auth::Role;
use trama_protocol::{FrameConfig, FrameReader, FrameWriter, LinkId};

use crate::acceptor::{Acceptor, AcceptorHandle};
use crate::gate::Gate;
use crate::options::{backoff_setter, dial_setters, with};
use crate::stream::{Duplex, Stream, TlsRole};
use crate::{DialOptions, Error, Result, TlsAcceptor, TlsConnector};

/// What happened on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link came up.
    Up {
        /// The link.
        link: LinkId,
        /// True if we dialed it, false if we accepted it.
        dialed: bool,
        /// The address we dialed, or the remote address of an accepted link.
        addr: String,
    },
    /// A frame arrived (one read, in the unframed dialect).
    Message {
        /// The link.
        link: LinkId,
        /// The payload.
        payload: Vec<u8>,
    },
    /// A link ended.
    Down {
        /// The link.
        link: LinkId,
        /// Why.
        reason: String,
    },
    /// A dial failed; a persistent dial tries again after `retry_in`.
    DialFailed {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
        /// When the next try is, for a persistent dial.
        retry_in: Option<Duration>,
    },
}

/// A peer's TLS settings: it is the server of the links it accepts and the
/// client of the links it dials, so it needs both its own certificate and
/// the authorities it trusts for the others'.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerTls {
    /// Our certificate and key, for accepted links (its handshake timeout
    /// bounds their TLS handshake).
    pub acceptor: TlsAcceptor,
    /// What we trust in the peers we dial (the name checked is the host of
    /// the address dialed unless [`TlsConnector::server_name`] says otherwise).
    pub connector: TlsConnector,
}

impl PeerTls {
    /// Our identity for the links we accept, and what we trust in the
    /// peers we dial.
    pub fn new(acceptor: TlsAcceptor, connector: TlsConnector) -> PeerTls {
        PeerTls {
            acceptor,
            connector,
        }
    }
}

/// Settings of a [`PeerNode`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerConfig {
    /// Where to accept links; `None` to only dial.
    pub listen: Option<String>,
    /// Wire format of every link.
    pub frame: FrameConfig,
    /// How links are dialed and redialed (connect timeout default 3 s),
    /// and the key, TLS and keepalive of every link, accepted or dialed.
    /// Both handshakes run before the link's `Up` event (and so before any
    /// hello of the mesh); a dial that fails either counts as a failed
    /// dial, an accepted link that fails is logged and dropped.
    pub dial: DialOptions<PeerTls>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            listen: Some("127.0.0.1:0".into()),
            frame: FrameConfig::default(),
            dial: DialOptions::default().with_connect_timeout(Duration::from_secs(3)),
        }
    }
}

impl PeerConfig {
    with!(
        with_listen: listen: Option<String>,
        with_frame: frame: FrameConfig,
        with_dial: dial: DialOptions<PeerTls>,
    );
    dial_setters!(PeerTls, dial);
    backoff_setter!(dial);
}

struct Shared {
    config: PeerConfig,
    next: AtomicU64,
    links: Mutex<HashMap<LinkId, Arc<Mutex<FrameWriter<Stream>>>>>,
    /// Each live link's gate: closing it wakes the link's reader.
    controls: Mutex<HashMap<LinkId, Arc<Gate>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    tx: Sender<LinkEvent>,
    stop: AtomicBool,
    /// Dropped on close: wakes dial supervisors sleeping before a retry.
    wake: Mutex<Option<Sender<()>>>,
    asleep: Receiver<()>,
}

/// A node that accepts and dials links. Dropping it closes every link.
pub struct PeerNode {
    shared: Arc<Shared>,
    events: Receiver<LinkEvent>,
    local_addr: Option<SocketAddr>,
    listener: Option<(AcceptorHandle, JoinHandle<()>)>,
}

impl PeerNode {
    /// Bind the listening address (if any) and start accepting.
    pub fn start(config: PeerConfig) -> Result<PeerNode> {
        let (tx, events) = crossbeam_channel::unbounded();
        let (wake, asleep) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            config: config.clone(),
            next: AtomicU64::new(1),
            links: Mutex::new(HashMap::new()),
            controls: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            tx,
            stop: AtomicBool::new(false),
            wake: Mutex::new(Some(wake)),
            asleep,
        });
        let mut node = PeerNode {
            shared: shared.clone(),
            events,
            local_addr: None,
            listener: None,
        };
        if let Some(addr) = &config.listen {
            let mut acceptor = Acceptor::bind(addr, 1024)?;
            node.local_addr = Some(acceptor.local_addr());
            let stop = acceptor.handle();
            let shared = shared.clone();
            let t = std::thread::Builder::new()
                .name("trama-peer-accept".into())
                .spawn(move || {
                    while let Some((s, peer)) = acceptor.accept() {
                        let addr = peer.to_string();
                        if shared.config.dial.link.auth.is_some()
                            || shared.config.dial.link.tls.is_some()
                        {
                            // The handshakes may take their whole deadlines:
                            // not on the thread that accepts.
                            secure_then_adopt(&shared, s, addr);
                        } else if let Err(e) = secure(&shared.config, s, Role::Listener, &addr)
                            .and_then(|ready| adopt(&shared, ready, false, addr))
                        {
                            log::warn!("cannot take an incoming link: {e}");
                        }
                    }
                })
                .map_err(|source| Error::Thread {
                    name: "trama-peer-accept".into(),
                    source,
                })?;
            node.listener = Some((stop, t));
        }
        Ok(node)
    }

    /// The address links are accepted on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The event stream of every link.
    pub fn events(&self) -> &Receiver<LinkEvent> {
        &self.events
    }

    /// Dial `addr` in the background. A persistent dial redials (with
    /// backoff) whenever its link is down, until the node closes.
    pub fn dial(&self, addr: &str, persistent: bool) -> Result<()> {
        let keep: Option<Keep> = persistent.then(|| Arc::new(|| true) as Keep);
        self.spawn_dial(addr, keep)
    }

    /// A persistent dial that only (re)dials while `wanted()` says so: when
    /// the link is down and `wanted()` is false (for example, the same peer
    /// is already reachable over a link it dialed to us), it waits and asks
    /// again instead of dialing.
    pub fn dial_while(
        &self,
        addr: &str,
        wanted: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Result<()> {
        self.spawn_dial(addr, Some(Arc::new(wanted)))
    }

    fn spawn_dial(&self, addr: &str, keep: Option<Keep>) -> Result<()> {
        let shared = self.shared.clone();
        let addr = addr.to_string();
        let t = std::thread::Builder::new()
            .name(format!("trama-peer-dial-{addr}"))
            .spawn(move || dial_loop(&shared, &addr, keep.as_ref()))
            .map_err(|source| Error::Thread {
                name: "trama-peer-dial".into(),
                source,
            })?;
        if let Ok(mut threads) = self.shared.threads.lock() {
            threads.push(t);
        }
        Ok(())
    }

    /// Send one frame on one link.
    pub fn send(&self, link: LinkId, payload: &[u8]) -> Result<()> {
        let writer = self
            .shared
            .links
            .lock()
            .ok()
            .and_then(|l| l.get(&link).cloned())
            .ok_or_else(|| Error::Closed(format!("{link} is not up")))?;
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        Ok(w.write_frame(payload)?)
    }

    /// Close one link (its `Down` event follows).
    pub fn close(&self, link: LinkId) {
        if let Some(gate) = self
            .shared
            .controls
            .lock()
            .ok()
            .and_then(|c| c.get(&link).cloned())
        {
            gate.close(Shutdown::Both);
        }
    }

    /// The links that are up now.
    pub fn links(&self) -> Vec<LinkId> {
        self.shared
            .links
            .lock()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }
}

impl Drop for PeerNode {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some((stop, t)) = self.listener.take() {
            stop.stop();
            let _ = t.join();
        }
        if let Ok(mut w) = self.shared.wake.lock() {
            *w = None;
        }
        if let Ok(controls) = self.shared.controls.lock() {
            for gate in controls.values() {
                gate.close(Shutdown::Both);
            }
        }
        let threads: Vec<_> = self
            .shared
            .threads
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Run the TLS and key handshakes on an accepted stream on a thread of its
/// own, then adopt it; a peer that fails is logged with its address and
/// dropped.
fn secure_then_adopt(shared: &Arc<Shared>, stream: TcpStream, addr: String) {
    let shared2 = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("trama-peer-handshake".into())
        .spawn(
            move || match secure(&shared2.config, stream, Role::Listener, &addr) {
                Ok(ready) => {
                    if let Err(e) = adopt(&shared2, ready, false, addr) {
                        log::warn!("cannot take an incoming link: {e}");
                    }
                }
                Err(e) => log::warn!("{addr} refused: {e}"),
            },
        );
    match spawned {
        Ok(t) => {
            if let Ok(mut threads) = shared.threads.lock() {
                threads.push(t);
            }
        }
        Err(e) => log::warn!("cannot start a handshake thread: {e}"),
    }
}

/// Connect to `addr` and run the configured handshakes as the dialer.
fn dial_once(config: &PeerConfig, addr: &str) -> Result<Duplex> {
    let stream = crate::net::connect(addr, config.dial.connect_timeout)?;
    secure(config, stream, Role::Dialer, addr)
}

/// Run the configured handshakes on a new stream: TLS (as the client of a
/// link we dialed, the server of one we accepted), then the shared key
/// inside it. `addr` is the address dialed (the name TLS checks).
fn secure(config: &PeerConfig, stream: TcpStream, role: Role, addr: &str) -> Result<Duplex> {
    stream.set_nodelay(true)?;
    crate::net::keepalive_or_log((&stream).into(), config.dial.link.keepalive, addr);
    let tls = match (&config.dial.link.tls, role) {
        (None, _) => TlsRole::Plain,
        (Some(tls), Role::Dialer) => TlsRole::Client {
            connector: &tls.connector,
            addr: Some(addr),
            timeout: config.dial.connect_timeout,
        },
        (Some(tls), Role::Listener) => TlsRole::Server(&tls.acceptor),
    };
    crate::stream::duplex(
        stream,
        tls,
        config.dial.link.auth.as_ref().map(|a| (a, role)),
    )
}

/// Register a connected stream as a link and start its reader thread.
/// Returns the reader thread's handle (joined by the node on drop).
fn adopt(shared: &Arc<Shared>, ready: Duplex, dialed: bool, addr: String) -> Result<LinkId> {
    let t = start_link(shared, ready, dialed, addr)?;
    let id = t.0;
    if let Ok(mut threads) = shared.threads.lock() {
        threads.push(t.1);
    }
    Ok(id)
}

fn start_link(
    shared: &Arc<Shared>,
    ready: Duplex,
    dialed: bool,
    addr: String,
) -> Result<(LinkId, JoinHandle<()>)> {
    let Duplex {
        reader,
        writer,
        gate,
        tls: _,
    } = ready;
    let link = LinkId(shared.next.fetch_add(1, Ordering::Relaxed));
    let frame = shared.config.frame;
    if let Ok(mut l) = shared.links.lock() {
        l.insert(link, Arc::new(Mutex::new(FrameWriter::new(writer, frame))));
    }
    if let Ok(mut c) = shared.controls.lock() {
        // A link that comes up while the node is being dropped (a handshake
        // or a dial that finished late) is closed at once: drop's pass over
        // the gates, under this lock, may already be over.
        if shared.stop.load(Ordering::SeqCst) {
            gate.close(Shutdown::Both);
        }
        c.insert(link, gate);
    }
    let _ = shared.tx.send(LinkEvent::Up { link, dialed, addr });
    let shared2 = shared.clone();
    let t = std::thread::Builder::new()
        .name(format!("trama-peer-{}", link.0))
        .spawn(move || read_link(&shared2, link, reader))
        .map_err(|source| Error::Thread {
            name: "trama-peer-link".into(),
            source,
        })?;
    Ok((link, t))
}

fn read_link(shared: &Shared, link: LinkId, stream: Stream) {
    let mut reader = FrameReader::new(stream, shared.config.frame);
    let reason = loop {
        let mut buf = Vec::new();
        match reader.read_frame_into(&mut buf) {
            Ok(true) => {
                if shared
                    .tx
                    .send(LinkEvent::Message { link, payload: buf })
                    .is_err()
                {
                    break "node closed".to_string();
                }
            }
            Ok(false) => break "the peer closed the link".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    if let Ok(mut l) = shared.links.lock() {
        l.remove(&link);
    }
    if let Ok(mut c) = shared.controls.lock() {
        c.remove(&link);
    }
    let _ = shared.tx.send(LinkEvent::Down { link, reason });
}

/// Whether a persistent dial should dial now.
type Keep = Arc<dyn Fn() -> bool + Send + Sync>;

fn dial_loop(shared: &Arc<Shared>, addr: &str, keep: Option<&Keep>) {
    let config = &shared.config;
    let persistent = keep.is_some();
    // A seed of its own, so dialers that fail together retry apart.
    let mut retries = config.dial.backoff.retries(fastrand::u64(..));
    while !shared.stop.load(Ordering::SeqCst) {
        if keep.is_some_and(|k| !k()) {
            match shared.asleep.recv_timeout(config.dial.backoff.max) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        match dial_once(config, addr) {
            Ok(ready) => {
                retries.reset();
                match start_link(shared, ready, true, addr.to_string()) {
                    // Stay with the link until it ends, then (if persistent) redial.
                    Ok((_, reader)) => {
                        let _ = reader.join();
                    }
                    Err(e) => log::warn!("{addr}: cannot start the link: {e}"),
                }
                if !persistent {
                    return;
                }
            }
            Err(e) => {
                let wait = retries.next_delay();
                let _ = shared.tx.send(LinkEvent::DialFailed {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                    retry_in: persistent.then_some(wait),
                });
                if !persistent {
                    return;
                }
                match shared.asleep.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Brief pause before redialing a link that just ended.
        match shared.asleep.recv_timeout(config.dial.backoff.min) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
