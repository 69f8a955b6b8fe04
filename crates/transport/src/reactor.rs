//! One I/O thread: a readiness loop over the non-blocking sockets it owns.
//!
//! Read it top to bottom: `run` waits for readiness, then for each ready
//! socket reads what arrived (`read`), hands whole frames to the service and
//! queues the replies (`apply`), and writes queued bytes (`flush`). Commands
//! from other threads (new connections, pushes, broadcasts) arrive on a
//! channel with a waker. Connections that must go are collected in `doomed`
//! and removed in one place (`settle`), so nothing is torn down while it is
//! still being used.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use trama_protocol::auth::Handshake;
use trama_protocol::{Action, Actions, ConnId, Decoder, DisconnectReason, Event, Service};

use crate::net::{accept_error, AcceptError};
use crate::server::{Cmd, Core};
use crate::worker::Job;

pub(crate) const WAKER: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// One read's worth of bytes, shared by all connections of the thread.
const READ_BUF: usize = 64 * 1024;
/// Reads per connection per wake-up before the others get their turn.
const READ_BUDGET: usize = 8;
/// Largest output buffer kept for reuse by the next connection that needs one.
const SPARE_MAX: usize = 256 * 1024;
/// Queued bytes past which a connection's input is no longer read, until
/// the queue is down to half the limit (`max_outbound`): three quarters of
/// it, so a client that sends a batch and only then reads its replies is
/// paused no sooner than it was dropped before, and the last quarter is
/// room for the replies to one turn's reads (at most 8 x 64 KiB of input).
fn high_water(limit: usize) -> usize {
    (limit / 4 * 3).max(1)
}

/// Frames at least this long are written at once when nothing is queued
/// before them, instead of being copied into the queue first.
const WRITE_THROUGH: usize = 16 * 1024;

struct Conn {
    id: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    decoder: Decoder,
    /// Bytes waiting to be written; `out[sent..]` is still to go.
    out: Vec<u8>,
    sent: usize,
    /// Writable interest is registered (only while `out` is backed up).
    want_write: bool,
    /// Listed in `Reactor::dirty` for a flush.
    dirty: bool,
    /// Doomed: no more reads, removal pending.
    dead: bool,
    last_in: Instant,
    last_out: Instant,
    partial_since: Option<Instant>,
    /// Reading is paused because replies are backing up (see
    /// [`high_water`]): since when, or since the socket last took bytes.
    paused: Option<Instant>,
    /// While paused, the peer has sent more that waits unread: only then
    /// is a peer that takes none of its replies dropped as stalled (one
    /// that merely reads slowly and sends nothing loses nothing by the pause).
    input_waiting: bool,
    /// Closing gracefully: why, and the deadline for the queue to drain.
    closing: Option<(DisconnectReason, Instant)>,
    /// The key handshake still under way (boxed, and gone once it is over,
    /// so an idle connection still holds no buffer).
    auth: Option<Box<PendingAuth>>,
    /// The TLS session, on a server with TLS.
    tls: Option<Box<rustls::ServerConnection>>,
    /// The TLS handshake has finished.
    tls_up: bool,
    /// The TLS and key handshakes must be over by then.
    setup_until: Option<Instant>,
    /// The service was told `Connected` (only after the handshakes), so it
    /// must be told `Disconnected`.
    announced: bool,
}

/// A connection's key handshake.
struct PendingAuth {
    handshake: Handshake,
}

impl Conn {
    fn queued(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Application messages may be sent to it (not during the handshakes).
    fn is_open(&self) -> bool {
        self.announced
    }
}

pub(crate) struct Reactor<S> {
    index: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    rx: Receiver<Cmd>,
    core: Arc<Core>,
    service: Arc<Mutex<S>>,
    workers: Vec<Sender<Job>>,

    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_id: HashMap<ConnId, usize>,
    /// Next connection id (only the thread with the listener hands them out).
    next_id: u64,

    read_buf: Vec<u8>,
    /// Decrypted bytes of one TLS read (allocated on the first TLS read).
    plain_buf: Vec<u8>,
    actions: Actions,
    spare: Vec<u8>,
    dirty: Vec<usize>,
    doomed: Vec<(ConnId, DisconnectReason)>,
    again: Vec<usize>,

    accept_paused_until: Option<Instant>,
    accept_backoff: Duration,
    timers_needed: bool,
    last_sweep: Instant,
    draining_until: Option<Instant>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl<S: Service> Reactor<S> {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        mut listener: Option<TcpListener>,
        rx: Receiver<Cmd>,
        core: Arc<Core>,
        service: Arc<Mutex<S>>,
        workers: Vec<Sender<Job>>,
    ) -> io::Result<Self> {
        if let Some(l) = listener.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        Ok(Reactor {
            index,
            poll,
            listener,
            rx,
            core,
            service,
            workers,
            conns: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            next_id: 1,
            read_buf: vec![0; READ_BUF],
            plain_buf: Vec::new(),
            actions: Actions::new(),
            spare: Vec::new(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            again: Vec::new(),
            accept_paused_until: None,
            accept_backoff: MIN_BACKOFF,
            timers_needed: false,
            last_sweep: Instant::now(),
            draining_until: None,
        })
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The loop. Returns when shutdown was asked for and every connection is gone.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if self.core.shutdown.load(Ordering::SeqCst) && self.draining_until.is_none() {
                self.begin_drain();
            }
            if let Some(until) = self.draining_until {
                if self.by_id.is_empty() || Instant::now() >= until {
                    break;
                }
            }
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("I/O thread {} cannot wait for events: {e}", self.index);
                break;
            }
            self.core.stats.woke();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(slot) => {
                        if ev.is_writable() {
                            self.flush(slot);
                        }
                        if ev.is_read_closed() || ev.is_error() {
                            self.read(slot, true);
                        } else if ev.is_readable() {
                            self.read(slot, false);
                        }
                    }
                }
            }
            self.drain_commands();
            for slot in std::mem::take(&mut self.again) {
                self.read(slot, true);
            }
            if self
                .accept_paused_until
                .is_some_and(|t| Instant::now() >= t)
            {
                self.accept_paused_until = None;
                self.accept();
            }
            self.sweep_if_due();
            self.settle();
        }
        self.close_all();
    }

    fn next_timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut timeout: Option<Duration> = None;
        let mut consider = |d: Duration| {
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        };
        if let Some(t) = self.accept_paused_until {
            consider(t.saturating_duration_since(now));
        }
        if !self.by_id.is_empty() && self.needs_timers() {
            let due = self.last_sweep + self.core.config.tick();
            consider(due.saturating_duration_since(now));
        }
        if let Some(t) = self.draining_until {
            consider(t.saturating_duration_since(now));
        }
        timeout
    }

    fn needs_timers(&self) -> bool {
        let c = &self.core.config;
        self.timers_needed
            || c.idle_timeout.is_some()
            || c.heartbeat.is_some()
            || self.draining_until.is_some()
    }

    // ---- accepting -------------------------------------------------------

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() || self.draining_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.accept_backoff = MIN_BACKOFF;
                    self.admit(stream, peer);
                }
                Err(e) => match accept_error(&e) {
                    AcceptError::Drained => return,
                    AcceptError::Skip => {}
                    AcceptError::Pause => {
                        log::warn!(
                            "accept failed: {e}; pausing accepts for {} ms",
                            self.accept_backoff.as_millis()
                        );
                        self.accept_paused_until = Some(Instant::now() + self.accept_backoff);
                        self.accept_backoff = (self.accept_backoff * 2).min(MAX_BACKOFF);
                        return;
                    }
                },
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let max = self.core.config.max_connections;
        if self.core.stats.open() >= max as u64 {
            self.core.stats.refused();
            log::warn!("{peer} refused: server full ({max} connections)");
            let reason = format!("server full: {max} connections in use");
            let mut frame = Vec::new();
            if self.core.config.link.tls.is_none()
                && self
                    .core
                    .config
                    .frame
                    .encode(reason.as_bytes(), &mut frame)
                    .is_ok()
            {
                // Best effort: a fresh socket's send buffer is empty.
                let _ = stream.write(&frame);
            }
            return;
        }
        if self.core.config.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("{peer}: cannot set TCP_NODELAY: {e}");
            }
        }
        crate::net::keepalive_or_log(
            (&stream).into(),
            self.core.config.link.keepalive,
            &peer.to_string(),
        );
        self.core.stats.accepted();
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let owner = self.core.owner(id);
        if owner == self.index {
            self.adopt(stream, peer, id);
        } else {
            self.core.post(owner, Cmd::Adopt { stream, peer, id });
        }
    }

    fn adopt(&mut self, mut stream: TcpStream, peer: SocketAddr, id: ConnId) {
        if self.draining_until.is_some() {
            self.core.stats.closed(&DisconnectReason::Shutdown);
            return;
        }
        let slot = self.free.pop().unwrap_or(self.conns.len());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(slot), Interest::READABLE)
        {
            log::warn!("{id} {peer}: cannot watch the socket: {e}");
            self.free.push(slot);
            self.core.stats.closed(&DisconnectReason::Io(e.to_string()));
            return;
        }
        let now = Instant::now();
        let mut setup = Duration::ZERO;
        let auth = match &self.core.config.link.auth {
            None => None,
            Some(a) => match Handshake::listener(&a.key, a.policy) {
                Ok(handshake) => {
                    setup += a.timeout;
                    Some(Box::new(PendingAuth { handshake }))
                }
                Err(e) => {
                    log::error!("{id} {peer}: cannot start the key handshake: {e}");
                    let _ = self.poll.registry().deregister(&mut stream);
                    self.free.push(slot);
                    self.core.stats.closed(&DisconnectReason::Io(e.to_string()));
                    return;
                }
            },
        };
        let tls = match &self.core.config.link.tls {
            None => None,
            Some(acceptor) => match rustls::ServerConnection::new(acceptor.config.clone()) {
                Ok(mut tls) => {
                    // Our own limit (max_outbound) bounds what is queued.
                    tls.set_buffer_limit(None);
                    setup += acceptor.handshake_timeout;
                    Some(Box::new(tls))
                }
                Err(e) => {
                    log::error!("{id} {peer}: cannot start TLS: {e}");
                    let _ = self.poll.registry().deregister(&mut stream);
                    self.free.push(slot);
                    self.core.stats.closed(&DisconnectReason::Io(e.to_string()));
                    return;
                }
            },
        };
        let conn = Conn {
            id,
            stream,
            peer,
            decoder: Decoder::new(self.core.config.frame),
            out: Vec::new(),
            sent: 0,
            want_write: false,
            dirty: false,
            dead: false,
            last_in: now,
            last_out: now,
            partial_since: None,
            paused: None,
            input_waiting: false,
            closing: None,
            auth,
            tls,
            tls_up: false,
            setup_until: (!setup.is_zero()).then(|| now + setup),
            announced: false,
        };
        let (authenticating, tls) = (conn.auth.is_some(), conn.tls.is_some());
        if slot == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[slot] = Some(conn);
        }
        self.by_id.insert(id, slot);
        if tls {
            // The client speaks first; the key handshake follows TLS.
            log::info!("{id} {peer} connected; TLS handshake");
            self.timers_needed = true;
        } else if authenticating {
            log::info!("{id} {peer} connected; key handshake");
            self.timers_needed = true;
            self.send_handshake_output(slot);
        } else {
            self.announce(slot);
        }
    }

    /// TLS is up: start the key handshake, or hand the connection over.
    fn tls_established(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (id, peer) = (conn.id, conn.peer);
        let version = conn
            .tls
            .as_ref()
            .and_then(|t| t.protocol_version())
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        log::debug!("{id} {peer}: TLS established ({version})");
        if conn.auth.is_some() {
            self.send_handshake_output(slot);
        } else {
            self.announce(slot);
        }
    }

    /// Move what rustls has to send (handshake records, alerts) to the queue.
    fn tls_pump(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Some(tls) = conn.tls.as_mut() else {
            return;
        };
        if !tls.wants_write() {
            return;
        }
        if conn.out.capacity() == 0 {
            conn.out = std::mem::take(&mut self.spare);
        }
        while tls.wants_write() {
            // Writing into a Vec cannot fail.
            if tls.write_tls(&mut conn.out).is_err() {
                break;
            }
        }
        conn.last_out = Instant::now();
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Wire bytes arrived on a TLS connection: decrypt, pass the plaintext
    /// on, queue rustls's answers.
    fn tls_received(&mut self, slot: usize, wire: &[u8]) {
        let mut plain = std::mem::take(&mut self.plain_buf);
        if plain.is_empty() {
            plain = vec![0; READ_BUF];
        }
        let mut rest = wire;
        let mut failed = None;
        let mut peer_closed = false;
        // Drain decrypted bytes before taking more wire bytes: rustls
        // refuses input while its plaintext buffer is full.
        while let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if conn.dead || conn.closing.is_some() {
                break;
            }
            let Some(tls) = conn.tls.as_mut() else {
                break;
            };
            match tls.reader().read(&mut plain) {
                // close_notify, and nothing left to read.
                Ok(0) => {
                    peer_closed = true;
                    break;
                }
                Ok(k) => {
                    self.deliver(slot, &plain[..k]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    failed = Some(format!("tls: {e}"));
                    break;
                }
            }
            if rest.is_empty() {
                break;
            }
            if let Err(e) = tls.read_tls(&mut rest) {
                failed = Some(format!("tls: {e}"));
                break;
            }
            if let Err(e) = tls.process_new_packets() {
                failed = Some(format!("tls: {e}"));
                break;
            }
            let established = !tls.is_handshaking() && !conn.tls_up;
            if established {
                conn.tls_up = true;
            }
            self.tls_pump(slot);
            if established {
                self.tls_established(slot);
            }
        }
        self.plain_buf = plain;
        if let Some(reason) = failed {
            // The alert that tells the peer why, then close.
            self.tls_pump(slot);
            if let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) {
                log::warn!("{} {} refused: {reason}", conn.id, conn.peer);
            }
            self.begin_close(slot, DisconnectReason::Protocol(reason));
        } else if peer_closed {
            self.begin_close(slot, DisconnectReason::PeerClosed);
        }
    }

    /// Plaintext arrived: to the key handshake while it lasts, then to the decoder.
    fn deliver(&mut self, slot: usize, data: &[u8]) {
        let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) else {
            return;
        };
        if conn.auth.is_some() {
            if let Some(from) = self.authenticate(slot, data) {
                if from < data.len() {
                    self.received(slot, &data[from..]);
                }
            }
        } else if conn.announced {
            self.received(slot, data);
        }
    }

    /// The connection is ready for the service: tell it.
    fn announce(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        conn.announced = true;
        conn.setup_until = None;
        let (id, peer) = (conn.id, conn.peer);
        log::info!("{id} {peer} connected");
        self.dispatch(Job::Connected { id, peer });
    }

    /// Queue what the handshake has to say.
    fn send_handshake_output(&mut self, slot: usize) {
        let out = match self
            .conns
            .get_mut(slot)
            .and_then(Option::as_mut)
            .and_then(|c| c.auth.as_mut())
        {
            Some(a) => a.handshake.take_output(),
            None => return,
        };
        if !out.is_empty() {
            self.enqueue(slot, &[], &out);
        }
    }

    /// Feed `data` to the connection's key handshake. Returns where the
    /// application's bytes begin when the handshake finished in this read,
    /// `None` while it goes on or after it failed.
    fn authenticate(&mut self, slot: usize, data: &[u8]) -> Option<usize> {
        let conn = self.conns.get_mut(slot).and_then(Option::as_mut)?;
        let auth = conn.auth.as_mut()?;
        conn.last_in = Instant::now();
        let result = auth.handshake.feed(data);
        let done = auth.handshake.is_done();
        let legacy = auth.handshake.used_legacy_md5();
        let (id, peer) = (conn.id, conn.peer);
        // Our answer, our verdict, or the #FAILURE# that tells the peer why.
        self.send_handshake_output(slot);
        match result {
            Ok(used) if done => {
                if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                    conn.auth = None;
                }
                if legacy {
                    log::info!("{id} {peer}: authenticated (legacy HMAC-MD5)");
                } else {
                    log::debug!("{id} {peer}: authenticated");
                }
                self.announce(slot);
                Some(used)
            }
            Ok(_) => None,
            Err(e) => {
                log::warn!("{id} {peer} refused: key handshake failed: {e}");
                self.begin_close(
                    slot,
                    DisconnectReason::Protocol(format!("key handshake failed: {e}")),
                );
                None
            }
        }
    }

    // ---- reading ---------------------------------------------------------

    /// Read what a connection has. `to_the_end`: keep reading until the
    /// socket says WouldBlock or EOF, even after a short read (needed when the
    /// peer's FIN is already known to be queued behind the data).
    fn read(&mut self, slot: usize, to_the_end: bool) {
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if conn.dead || conn.closing.is_some() {
                return;
            }
            if conn.paused.is_some() {
                // Called for new bytes, or to go on with a read that filled
                // the buffer: either way input is waiting, and the stall
                // deadline runs (the sweep must watch it).
                conn.input_waiting = true;
                self.timers_needed = true;
                return;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    let reason = match conn.decoder.finish() {
                        Ok(()) => DisconnectReason::PeerClosed,
                        Err(e) => DisconnectReason::Protocol(e.to_string()),
                    };
                    // Send what is already queued (the peer may have only
                    // shut down its sending side), then close.
                    self.begin_close(slot, reason);
                    return;
                }
                Ok(n) => {
                    let drained = n < self.read_buf.len();
                    let tls = conn.tls.is_some();
                    let buf = std::mem::take(&mut self.read_buf);
                    if tls {
                        self.tls_received(slot, &buf[..n]);
                    } else {
                        self.deliver(slot, &buf[..n]);
                    }
                    self.read_buf = buf;
                    // A short read took everything the socket held. On epoll
                    // and kqueue any later byte raises a new event, so skip the
                    // read that would only say WouldBlock (one system call per
                    // message saved). mio on Windows re-arms only after
                    // WouldBlock, so there we read until it.
                    if cfg!(unix) && drained && !to_the_end {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let id = conn.id;
                    self.doom(id, DisconnectReason::Io(e.to_string()));
                    return;
                }
            }
        }
        self.again.push(slot);
    }

    /// Application bytes arrived for the connection in `slot`.
    fn received(&mut self, slot: usize, data: &[u8]) {
        let Reactor {
            conns,
            actions,
            service,
            workers,
            core,
            ..
        } = self;
        let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let id = conn.id;
        let now = Instant::now();
        conn.last_in = now;
        let skip_empty = core.config.heartbeat.is_some();
        let held_before = conn.decoder.buffered_capacity();
        let mut frames = 0u64;
        let result = if workers.is_empty() {
            let mut service = service.lock().unwrap_or_else(|e| e.into_inner());
            conn.decoder.decode(data, |payload| {
                frames += 1;
                if !(skip_empty && payload.is_empty()) {
                    service.on_event(Event::Message { id, payload }, actions);
                }
            })
        } else {
            let worker = &workers[(id.0 % workers.len() as u64) as usize];
            conn.decoder.decode(data, |payload| {
                frames += 1;
                if !(skip_empty && payload.is_empty()) {
                    let _ = worker.send(Job::Message {
                        id,
                        payload: payload.to_vec(),
                    });
                }
            })
        };
        core.stats.received(frames, data.len() as u64);
        conn.partial_since = match (conn.decoder.is_idle(), conn.partial_since) {
            (true, _) => None,
            // The frame that was pending is still pending.
            (false, Some(t)) if frames == 0 => Some(t),
            // A frame completed and the next one began in this read: its
            // deadline starts now, not when the stream's first partial began.
            (false, Some(_)) => Some(now),
            (false, None) => {
                self.timers_needed = true;
                Some(now)
            }
        };
        let over_budget = core.hold_incomplete(held_before, conn.decoder.buffered_capacity());
        if let Err(e) = result {
            log::warn!("{id} {}: {e}", conn.peer);
            self.doom(id, DisconnectReason::Protocol(e.to_string()));
        }
        if over_budget {
            self.shed_incomplete();
        }
        self.apply();
    }

    /// Incomplete frames hold more than the server's budget: drop this
    /// thread's largest holders until the total is back under it (or this
    /// thread holds nothing more to drop). Rare, so a scan is fine.
    fn shed_incomplete(&mut self) {
        let budget = self.core.config.incomplete_budget;
        let mut total = self.core.incomplete.load(Ordering::Relaxed);
        while total > budget {
            let largest = self
                .conns
                .iter()
                .flatten()
                .filter(|c| !c.dead)
                .map(|c| (c.decoder.buffered_capacity(), c.id))
                .filter(|&(held, _)| held > 0)
                .max();
            let Some((held, id)) = largest else { return };
            self.doom(
                id,
                DisconnectReason::OverBudget {
                    held,
                    total,
                    budget,
                },
            );
            // Given back when the connection is removed.
            total = total.saturating_sub(held);
        }
    }

    // ---- the service and its actions -------------------------------------

    /// Hand a connect or disconnect to the service.
    fn dispatch(&mut self, job: Job) {
        if self.workers.is_empty() {
            {
                let mut service = self.service.lock().unwrap_or_else(|e| e.into_inner());
                let event = match &job {
                    Job::Connected { id, peer } => Event::Connected {
                        id: *id,
                        peer: *peer,
                    },
                    Job::Message { id, payload } => Event::Message { id: *id, payload },
                    Job::Disconnected { id, reason } => Event::Disconnected { id: *id, reason },
                };
                service.on_event(event, &mut self.actions);
            }
            self.apply();
        } else {
            let id = match &job {
                Job::Connected { id, .. }
                | Job::Message { id, .. }
                | Job::Disconnected { id, .. } => *id,
            };
            let worker = &self.workers[(id.0 % self.workers.len() as u64) as usize];
            let _ = worker.send(job);
        }
    }

    /// Carry out the actions the service queued (the service lock is not held).
    fn apply(&mut self) {
        if self.actions.is_empty() {
            return;
        }
        let actions = std::mem::take(&mut self.actions);
        for action in actions.iter() {
            match action {
                Action::Send { to, payload } => {
                    if self.core.owner(to) != self.index {
                        if let Err(e) = self.core.send(to, payload) {
                            log::warn!("reply to {to} dropped: {e}");
                        }
                    } else if let Some(&slot) = self.by_id.get(&to) {
                        self.enqueue_payload(slot, payload);
                    }
                }
                Action::Broadcast { payload, except } => {
                    if self.core.threads() > 1 {
                        if let Err(e) = self.core.broadcast(payload, except, Some(self.index)) {
                            log::warn!("broadcast dropped: {e}");
                            continue;
                        }
                    }
                    for slot in 0..self.conns.len() {
                        let skip = match &self.conns[slot] {
                            Some(c) => Some(c.id) == except || !c.is_open(),
                            None => true,
                        };
                        if !skip {
                            self.enqueue_payload(slot, payload);
                        }
                    }
                }
                Action::Close { id, reason } => {
                    if self.core.owner(id) != self.index {
                        self.core.close(id, reason);
                    } else if let Some(&slot) = self.by_id.get(&id) {
                        self.begin_close(slot, DisconnectReason::Closed(reason.to_string()));
                    }
                }
            }
        }
        self.actions = actions;
        self.actions.clear();
    }

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Adopt { stream, peer, id } => self.adopt(stream, peer, id),
                Cmd::Send { to, frame } => {
                    if let Some(&slot) = self.by_id.get(&to) {
                        self.enqueue(slot, &[], &frame);
                    }
                }
                Cmd::Broadcast { frame, except } => {
                    for slot in 0..self.conns.len() {
                        let skip = match &self.conns[slot] {
                            Some(c) => Some(c.id) == except || !c.is_open(),
                            None => true,
                        };
                        if !skip {
                            self.enqueue(slot, &[], &frame);
                        }
                    }
                }
                Cmd::Close { id, reason } => {
                    if let Some(&slot) = self.by_id.get(&id) {
                        self.begin_close(slot, DisconnectReason::Closed(reason));
                    }
                }
            }
        }
    }

    // ---- writing ---------------------------------------------------------

    fn enqueue_payload(&mut self, slot: usize, payload: &[u8]) {
        let frame = self.core.config.frame;
        if frame.is_unframed() {
            self.enqueue(slot, &[], payload);
            return;
        }
        match frame.header(payload.len()) {
            Ok(header) => self.enqueue(slot, header.as_bytes(), payload),
            Err(e) => log::warn!("message dropped: {e}"),
        }
    }

    /// Queue `a` then `b` (header and payload, or one encoded frame) for a connection.
    fn enqueue(&mut self, slot: usize, a: &[u8], b: &[u8]) {
        let limit = self.core.config.max_outbound;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.dead || conn.closing.is_some() {
            return;
        }
        let queued = conn.queued();
        let add = a.len() + b.len();
        if queued > 0 && queued + add > limit {
            let id = conn.id;
            log::warn!(
                "{id} {}: too slow, {} bytes queued (limit {limit})",
                conn.peer,
                queued + add
            );
            self.doom(
                id,
                DisconnectReason::SlowReader {
                    queued: queued + add,
                    limit,
                },
            );
            return;
        }
        // A large frame with nothing queued before it goes straight to the
        // socket (header and payload in one vectored write), so its bytes
        // are not first copied into the queue; only what the socket does not
        // take is queued. Small frames are queued and written together at
        // the end of the turn, one write for all of them.
        let mut skip = 0;
        if queued == 0 && add >= WRITE_THROUGH && conn.tls.is_none() {
            match conn
                .stream
                .write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
            {
                Ok(n) => {
                    self.core.stats.written(n as u64);
                    conn.last_out = Instant::now();
                    if n == add {
                        self.core.stats.queued(1);
                        return;
                    }
                    skip = n;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    let id = conn.id;
                    self.doom(id, DisconnectReason::Io(e.to_string()));
                    return;
                }
            }
        }
        if conn.out.capacity() == 0 {
            conn.out = std::mem::take(&mut self.spare);
        }
        match conn.tls.as_mut() {
            None => {
                let (a, b) = if skip >= a.len() {
                    (&[][..], &b[skip - a.len()..])
                } else {
                    (&a[skip..], b)
                };
                conn.out.extend_from_slice(a);
                conn.out.extend_from_slice(b);
            }
            Some(tls) => {
                // Unlimited buffers (set at adopt): these writes take everything.
                let mut w = tls.writer();
                let _ = w.write_all(a).and_then(|()| w.write_all(b));
                while tls.wants_write() {
                    if tls.write_tls(&mut conn.out).is_err() {
                        break;
                    }
                }
            }
        }
        conn.last_out = Instant::now();
        self.core.stats.queued(1);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
        let can_pause = self.core.config.stall_timeout().is_some();
        if conn.paused.is_none() && can_pause && conn.queued() >= high_water(limit) {
            // Replies are backing up: stop reading the peer until it has
            // taken them, as a blocked writer would, instead of queueing on
            // until the limit drops it. (Without any deadline to end a peer
            // that then never reads, the queue grows to the limit as before.)
            conn.paused = Some(conn.last_out);
            self.timers_needed = true;
        }
    }

    /// Write as much of a connection's queue as the socket takes.
    fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        conn.dirty = false;
        if conn.dead {
            return;
        }
        let mut error = None;
        while conn.sent < conn.out.len() {
            match conn.stream.write(&conn.out[conn.sent..]) {
                Ok(0) => {
                    error = Some("socket accepted no bytes".to_string());
                    break;
                }
                Ok(n) => {
                    conn.sent += n;
                    self.core.stats.written(n as u64);
                    if conn.paused.is_some() {
                        conn.paused = Some(Instant::now());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let id = conn.id;
        if let Some(e) = error {
            self.doom(id, DisconnectReason::Io(e));
            return;
        }
        if conn.paused.is_some() && conn.queued() <= self.core.config.max_outbound / 2 {
            // Caught up: read again, starting with what waited meanwhile
            // (its readiness event may have come and gone). The wait was
            // ours, so a frame in progress gets its full deadline again.
            conn.paused = None;
            conn.input_waiting = false;
            if conn.partial_since.is_some() {
                conn.partial_since = Some(Instant::now());
            }
            self.again.push(slot);
        }
        let drained = conn.sent == conn.out.len();
        if drained {
            conn.sent = 0;
            conn.out.clear();
            // An idle connection keeps no buffer: hand it to the next one.
            let buf = std::mem::take(&mut conn.out);
            if self.spare.capacity() == 0 && buf.capacity() <= SPARE_MAX {
                self.spare = buf;
            }
        } else if conn.sent > conn.out.len() / 2 {
            conn.out.drain(..conn.sent);
            conn.sent = 0;
        }
        if drained == conn.want_write {
            // Watch for writability only while bytes are backed up.
            let interest = if drained {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            conn.want_write = !drained;
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(slot), interest)
            {
                self.doom(id, DisconnectReason::Io(e.to_string()));
                return;
            }
        }
        if drained {
            if let Some((reason, _)) = conn.closing.take() {
                self.doom(id, reason);
            }
        }
    }

    // ---- closing ---------------------------------------------------------

    /// Close once the queue is sent (or the linger time runs out).
    fn begin_close(&mut self, slot: usize, reason: DisconnectReason) {
        let linger = self.core.config.linger;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.dead || conn.closing.is_some() {
            return;
        }
        if let Some(tls) = conn.tls.as_mut() {
            // A clean end for the peer (not a truncation).
            tls.send_close_notify();
            self.tls_pump(slot);
        }
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.queued() == 0 {
            let id = conn.id;
            self.doom(id, reason);
            return;
        }
        conn.closing = Some((reason, Instant::now() + linger));
        self.timers_needed = true;
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    fn doom(&mut self, id: ConnId, reason: DisconnectReason) {
        if let Some(conn) = self
            .by_id
            .get(&id)
            .and_then(|&slot| self.conns.get_mut(slot))
            .and_then(Option::as_mut)
        {
            if !conn.dead {
                conn.dead = true;
                self.doomed.push((id, reason));
            }
        }
    }

    /// Flush what was queued and remove what was doomed, until both are done
    /// (removing a connection tells the service, which may queue more).
    fn settle(&mut self) {
        loop {
            for slot in std::mem::take(&mut self.dirty) {
                self.flush(slot);
            }
            if self.doomed.is_empty() {
                break;
            }
            for (id, reason) in std::mem::take(&mut self.doomed) {
                self.remove(id, reason);
            }
        }
    }

    fn remove(&mut self, id: ConnId, reason: DisconnectReason) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.core
            .hold_incomplete(conn.decoder.buffered_capacity(), 0);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.core.stats.closed(&reason);
        match reason {
            DisconnectReason::PeerClosed | DisconnectReason::Shutdown => {
                log::info!("{id} {} disconnected: {reason}", conn.peer)
            }
            _ => log::warn!("{id} {} dropped: {reason}", conn.peer),
        }
        let announced = conn.announced;
        drop(conn);
        if announced {
            self.dispatch(Job::Disconnected { id, reason });
        }
    }

    // ---- timers ----------------------------------------------------------

    fn sweep_if_due(&mut self) {
        if !self.needs_timers() || self.by_id.is_empty() {
            return;
        }
        let now = Instant::now();
        if now < self.last_sweep + self.core.config.tick() {
            return;
        }
        self.last_sweep = now;
        let config = &self.core.config;
        let (partial, idle, heartbeat) = (
            config.partial_frame_timeout,
            config.idle_timeout,
            config.heartbeat,
        );
        let header = config.frame.header(0).ok();
        let mut still_needed = false;
        let mut expired = Vec::new();
        let mut beats = Vec::new();
        for (slot, conn) in self.conns.iter_mut().enumerate() {
            let Some(conn) = conn.as_mut() else { continue };
            if conn.dead {
                continue;
            }
            if let Some((reason, deadline)) = &conn.closing {
                still_needed = true;
                if now >= *deadline {
                    expired.push((conn.id, reason.clone()));
                }
                continue;
            }
            if let Some(until) = conn.setup_until {
                still_needed = true;
                if now >= until {
                    let what = if conn.tls.is_some() && !conn.tls_up {
                        "TLS handshake"
                    } else {
                        "key handshake"
                    };
                    expired.push((
                        conn.id,
                        DisconnectReason::Protocol(format!("{what} not finished in time")),
                    ));
                }
                continue;
            }
            if let Some(since) = conn.paused.filter(|_| conn.input_waiting) {
                // Its input waits on us: the frame and idle deadlines wait
                // too; the peer must take some of its replies within the
                // frame deadline (or the idle timeout, without one).
                still_needed = true;
                let stall = config.stall_timeout();
                if let Some(limit) = stall.filter(|&l| now.duration_since(since) >= l) {
                    expired.push((
                        conn.id,
                        DisconnectReason::Stalled {
                            queued: conn.queued(),
                            millis: limit.as_millis() as u64,
                        },
                    ));
                }
                continue;
            }
            if let (Some(since), Some(limit)) = (conn.partial_since, partial) {
                still_needed = true;
                if now.duration_since(since) >= limit {
                    expired.push((
                        conn.id,
                        DisconnectReason::PartialFrameTimeout {
                            millis: limit.as_millis() as u64,
                        },
                    ));
                    continue;
                }
            }
            if let Some(limit) = idle {
                if now.duration_since(conn.last_in) >= limit {
                    expired.push((
                        conn.id,
                        DisconnectReason::IdleTimeout {
                            millis: limit.as_millis() as u64,
                        },
                    ));
                    continue;
                }
            }
            if let Some(every) = heartbeat {
                if now.duration_since(conn.last_out) >= every {
                    beats.push(slot);
                }
            }
        }
        self.timers_needed = still_needed;
        for (id, reason) in expired {
            if let Some(conn) = self.by_id.get(&id).and_then(|&s| self.conns[s].as_ref()) {
                log::warn!("{id} {}: {reason}", conn.peer);
            }
            self.doom(id, reason);
        }
        if let Some(header) = header.filter(|_| !self.core.config.frame.is_unframed()) {
            for slot in beats {
                self.enqueue(slot, header.as_bytes(), &[]);
            }
        }
    }

    // ---- shutdown --------------------------------------------------------

    fn begin_drain(&mut self) {
        self.listener = None;
        self.draining_until = Some(Instant::now() + self.core.config.linger);
        let slots: Vec<usize> = self.by_id.values().copied().collect();
        for slot in slots {
            self.begin_close(slot, DisconnectReason::Shutdown);
        }
        self.settle();
    }

    fn close_all(&mut self) {
        let ids: Vec<ConnId> = self.by_id.keys().copied().collect();
        for id in ids {
            self.remove(id, DisconnectReason::Shutdown);
        }
        self.settle();
        let ids: Vec<ConnId> = self.by_id.keys().copied().collect();
        for id in ids {
            self.remove(id, DisconnectReason::Shutdown);
        }
    }
}
