//! One I/O thread: a readiness loop over the non-blocking sockets it owns.
//!
//! Read it top to bottom: `run` waits for readiness, then for each ready
//! socket reads what arrived (`read`), hands whole frames to the service and
//! queues the replies (`apply`), and writes queued bytes (`flush`). Commands
//! from other threads (new connections, pushes, broadcasts) arrive on a
//! channel with a waker. Connections that must go are collected in `doomed`
//! and removed in one place (`settle`), so nothing is torn down while it is
//! still being used.
//!
//! This file does the I/O and nothing else: each connection's rules (its
//! state, when to pause reading, what to watch the socket for, which
//! deadline ends it and why) are in [`Conn`], which is told what the socket
//! did and the time, and answers; this loop carries the answers out.

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
use trama_protocol::{Action, Actions, ConnId, DisconnectReason, Event, Service};

use crate::conn::{self, Conn, Due, Limits, Offer, ReadGate};
use crate::net::{accept_error, AcceptError};
use crate::server::{Cmd, Core};
use crate::worker::Job;

pub(crate) const WAKER: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// One read's worth of bytes, shared by all connections of the thread.
const READ_BUF: usize = 64 * 1024;
/// Reads per connection per wake-up before the others get their turn.
const READ_BUDGET: usize = 8;

/// A connection as the thread holds it: its socket and TLS session beside
/// its state (see [`Conn`], which decides everything the socket does not).
struct Slot {
    stream: TcpStream,
    /// The TLS session, on a server with TLS.
    tls: Option<Box<rustls::ServerConnection>>,
    /// In `Reactor::dirty`, to be flushed at the end of the turn.
    listed: bool,
    conn: Conn,
}

pub(crate) struct Reactor<S> {
    index: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    rx: Receiver<Cmd>,
    core: Arc<Core>,
    service: Arc<Mutex<S>>,
    workers: Vec<Sender<Job>>,

    /// The settings each connection's rules read, copied out of the config.
    limits: Limits,
    conns: Vec<Option<Slot>>,
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
            limits: Limits::of(&core.config),
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
                    Some(Box::new(handshake))
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
        let (authenticating, has_tls) = (auth.is_some(), tls.is_some());
        let setup = (authenticating || has_tls)
            .then(|| ((!setup.is_zero()).then(|| now + setup), !has_tls, auth));
        let conn = Conn::new(id, peer, self.core.config.frame, now, setup);
        let entry = Slot {
            stream,
            tls,
            listed: false,
            conn,
        };
        if slot == self.conns.len() {
            self.conns.push(Some(entry));
        } else {
            self.conns[slot] = Some(entry);
        }
        self.by_id.insert(id, slot);
        if has_tls {
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

    fn slot(&mut self, slot: usize) -> Option<&mut Slot> {
        self.conns.get_mut(slot).and_then(Option::as_mut)
    }

    /// TLS is up: start the key handshake, or hand the connection over.
    fn tls_established(&mut self, slot: usize) {
        let Some(s) = self.slot(slot) else {
            return;
        };
        let (id, peer) = (s.conn.id, s.conn.peer);
        let version = s
            .tls
            .as_ref()
            .and_then(|t| t.protocol_version())
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        log::debug!("{id} {peer}: TLS established ({version})");
        if s.conn.handshake().is_some() {
            self.send_handshake_output(slot);
        } else {
            self.announce(slot);
        }
    }

    /// Move what rustls has to send (handshake records, alerts) to the queue.
    fn tls_pump(&mut self, slot: usize) {
        let Reactor {
            conns,
            spare,
            dirty,
            ..
        } = self;
        let Some(s) = conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Some(tls) = s.tls.as_mut() else {
            return;
        };
        if !tls.wants_write() {
            return;
        }
        let out = s.conn.queue(spare);
        while tls.wants_write() {
            // Writing into a Vec cannot fail.
            if tls.write_tls(out).is_err() {
                break;
            }
        }
        s.conn.spoke(Instant::now());
        if !s.listed {
            s.listed = true;
            dirty.push(slot);
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
        while let Some(s) = self.slot(slot) {
            if !s.conn.is_live() {
                break;
            }
            let Some(tls) = s.tls.as_mut() else {
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
            let established = !tls.is_handshaking() && s.conn.tls_established();
            self.tls_pump(slot);
            if established {
                self.tls_established(slot);
            }
        }
        self.plain_buf = plain;
        if let Some(reason) = failed {
            // The alert that tells the peer why, then close.
            self.tls_pump(slot);
            if let Some(s) = self.slot(slot) {
                log::warn!("{} {} refused: {reason}", s.conn.id, s.conn.peer);
            }
            self.begin_close(slot, DisconnectReason::Protocol(reason));
        } else if peer_closed {
            self.begin_close(slot, DisconnectReason::PeerClosed);
        }
    }

    /// Plaintext arrived: to the key handshake while it lasts, then to the decoder.
    fn deliver(&mut self, slot: usize, data: &[u8]) {
        let Some(s) = self.slot(slot) else {
            return;
        };
        if s.conn.handshake().is_some() {
            if let Some(from) = self.authenticate(slot, data) {
                if from < data.len() {
                    self.received(slot, &data[from..]);
                }
            }
        } else if s.conn.announced() {
            self.received(slot, data);
        }
    }

    /// The connection is ready for the service: tell it.
    fn announce(&mut self, slot: usize) {
        let Some(s) = self.slot(slot) else {
            return;
        };
        s.conn.announce();
        let (id, peer) = (s.conn.id, s.conn.peer);
        log::info!("{id} {peer} connected");
        self.dispatch(Job::Connected { id, peer });
    }

    /// Queue what the handshake has to say.
    fn send_handshake_output(&mut self, slot: usize) {
        let out = match self.slot(slot).and_then(|s| s.conn.handshake()) {
            Some(h) => h.take_output(),
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
        let s = self.slot(slot)?;
        s.conn.heard(Instant::now());
        let (id, peer) = (s.conn.id, s.conn.peer);
        let handshake = s.conn.handshake()?;
        let result = handshake.feed(data);
        let done = handshake.is_done();
        let legacy = handshake.used_legacy_md5();
        // Our answer, our verdict, or the #FAILURE# that tells the peer why.
        self.send_handshake_output(slot);
        match result {
            Ok(used) if done => {
                if let Some(s) = self.slot(slot) {
                    s.conn.authenticated();
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
            let Some(s) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            match s.conn.may_read() {
                ReadGate::Read => {}
                ReadGate::Stop => return,
                ReadGate::Wait => {
                    // Called for new bytes, or to go on with a read that
                    // filled the buffer: either way input is waiting, and
                    // the stall deadline runs (the sweep must watch it).
                    self.timers_needed = true;
                    return;
                }
            }
            match s.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    // Send what is already queued (the peer may have only
                    // shut down its sending side), then close.
                    let reason = s.conn.peer_closed();
                    self.begin_close(slot, reason);
                    return;
                }
                Ok(n) => {
                    let drained = n < self.read_buf.len();
                    let tls = s.tls.is_some();
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
                    self.doom(slot, DisconnectReason::Io(e.to_string()));
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
        let Some(s) = conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let conn = &mut s.conn;
        let id = conn.id;
        let now = Instant::now();
        let skip_empty = core.config.heartbeat.is_some();
        let held_before = conn.held();
        let (frames, started, result) = if workers.is_empty() {
            let mut service = service.lock().unwrap_or_else(|e| e.into_inner());
            conn.received(now, data, |payload| {
                if !(skip_empty && payload.is_empty()) {
                    service.on_event(Event::Message { id, payload }, actions);
                }
            })
        } else {
            let worker = &workers[(id.0 % workers.len() as u64) as usize];
            conn.received(now, data, |payload| {
                if !(skip_empty && payload.is_empty()) {
                    let _ = worker.send(Job::Message {
                        id,
                        payload: payload.to_vec(),
                    });
                }
            })
        };
        core.stats.received(frames, data.len() as u64);
        let over_budget = core.hold_incomplete(held_before, conn.held());
        if started {
            self.timers_needed = true;
        }
        if let Err(e) = result {
            log::warn!("{id} {}: {e}", conn.peer);
            self.doom(slot, DisconnectReason::Protocol(e.to_string()));
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
        let holders = self
            .conns
            .iter()
            .flatten()
            .filter(|s| !s.conn.is_doomed())
            .map(|s| (s.conn.held(), s.conn.id));
        let total = self.core.incomplete.load(Ordering::Relaxed);
        for (id, reason) in conn::shed(holders, total, self.core.config.incomplete_budget) {
            if let Some(&slot) = self.by_id.get(&id) {
                self.doom(slot, reason);
            }
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
                            Some(s) => Some(s.conn.id) == except || !s.conn.is_open(),
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
                            Some(s) => Some(s.conn.id) == except || !s.conn.is_open(),
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
        let Reactor {
            conns,
            core,
            spare,
            dirty,
            limits,
            ..
        } = self;
        let Some(s) = conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let limit = limits.max_outbound;
        let add = a.len() + b.len();
        let write_through = match s.conn.offer(add, limit) {
            Offer::Take { write_through } => write_through,
            Offer::Refused => return,
            Offer::TooSlow(reason) => {
                if let DisconnectReason::SlowReader { queued, .. } = &reason {
                    log::warn!(
                        "{} {}: too slow, {queued} bytes queued (limit {limit})",
                        s.conn.id,
                        s.conn.peer,
                    );
                }
                self.doom(slot, reason);
                return;
            }
        };
        // A large frame with nothing queued before it goes straight to the
        // socket (header and payload in one vectored write), so its bytes
        // are not first copied into the queue; only what the socket does not
        // take is queued. Small frames are queued and written together at
        // the end of the turn, one write for all of them.
        let mut skip = 0;
        if write_through && s.tls.is_none() {
            match s
                .stream
                .write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
            {
                Ok(n) => {
                    core.stats.written(n as u64);
                    s.conn.spoke(Instant::now());
                    if n == add {
                        core.stats.queued(1);
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
                    self.doom(slot, DisconnectReason::Io(e.to_string()));
                    return;
                }
            }
        }
        let out = s.conn.queue(spare);
        match s.tls.as_mut() {
            None => {
                let (a, b) = if skip >= a.len() {
                    (&[][..], &b[skip - a.len()..])
                } else {
                    (&a[skip..], b)
                };
                out.extend_from_slice(a);
                out.extend_from_slice(b);
            }
            Some(tls) => {
                // Unlimited buffers (set at adopt): these writes take everything.
                let mut w = tls.writer();
                let _ = w.write_all(a).and_then(|()| w.write_all(b));
                while tls.wants_write() {
                    if tls.write_tls(out).is_err() {
                        break;
                    }
                }
            }
        }
        core.stats.queued(1);
        if !s.listed {
            s.listed = true;
            dirty.push(slot);
        }
        if s.conn.queued_at(Instant::now(), limits) {
            self.timers_needed = true;
        }
    }

    /// Write as much of a connection's queue as the socket takes.
    fn flush(&mut self, slot: usize) {
        let Reactor {
            conns,
            core,
            spare,
            limits,
            poll,
            again,
            ..
        } = self;
        let Some(s) = conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        s.listed = false;
        if s.conn.is_doomed() {
            return;
        }
        let now = Instant::now();
        let mut error = None;
        while !s.conn.unsent().is_empty() {
            match s.stream.write(s.conn.unsent()) {
                Ok(0) => {
                    error = Some("socket accepted no bytes".to_string());
                    break;
                }
                Ok(n) => {
                    s.conn.sent(n, now);
                    core.stats.written(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(e) = error {
            self.doom(slot, DisconnectReason::Io(e));
            return;
        }
        let done = s.conn.flushed(now, limits, spare);
        if done.read_again {
            again.push(slot);
        }
        if let Some(interest) = done.interest {
            if let Err(e) = poll
                .registry()
                .reregister(&mut s.stream, Token(slot), interest)
            {
                self.doom(slot, DisconnectReason::Io(e.to_string()));
                return;
            }
        }
        if done.close {
            if let Some(reason) = s.conn.closing_reason() {
                self.doom(slot, reason);
            }
        }
    }

    // ---- closing ---------------------------------------------------------

    /// Close once the queue is sent (or the linger time runs out).
    fn begin_close(&mut self, slot: usize, reason: DisconnectReason) {
        let Some(s) = self.slot(slot) else {
            return;
        };
        if !s.conn.is_live() {
            return;
        }
        if let Some(tls) = s.tls.as_mut() {
            // A clean end for the peer (not a truncation).
            tls.send_close_notify();
            self.tls_pump(slot);
        }
        let linger = self.limits.linger;
        let Some(s) = self.slot(slot) else {
            return;
        };
        if let Some(reason) = s.conn.close(Instant::now(), reason, linger) {
            self.doom(slot, reason);
            return;
        }
        self.timers_needed = true;
        let Some(s) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if !s.listed {
            s.listed = true;
            self.dirty.push(slot);
        }
    }

    /// Mark a connection for removal (at most once), for `reason`.
    fn doom(&mut self, slot: usize, reason: DisconnectReason) {
        if let Some(s) = self.slot(slot) {
            if s.conn.doom() {
                let id = s.conn.id;
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
        let Some(mut s) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.core.hold_incomplete(s.conn.held(), 0);
        let _ = self.poll.registry().deregister(&mut s.stream);
        self.core.stats.closed(&reason);
        match reason {
            DisconnectReason::PeerClosed | DisconnectReason::Shutdown => {
                log::info!("{id} {} disconnected: {reason}", s.conn.peer)
            }
            _ => log::warn!("{id} {} dropped: {reason}", s.conn.peer),
        }
        let announced = s.conn.announced();
        drop(s);
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
        let mut still_needed = false;
        let mut expired = Vec::new();
        let mut beats = Vec::new();
        for (slot, s) in self.conns.iter().enumerate() {
            let Some(s) = s.as_ref() else { continue };
            let (watch, due) = s.conn.check(now, &self.limits);
            still_needed |= watch;
            match due {
                Due::Nothing => {}
                Due::Heartbeat => beats.push(slot),
                Due::Close(reason) => expired.push((slot, reason)),
            }
        }
        self.timers_needed = still_needed;
        for (slot, reason) in expired {
            if let Some(s) = self.slot(slot) {
                log::warn!("{} {}: {reason}", s.conn.id, s.conn.peer);
            }
            self.doom(slot, reason);
        }
        let frame = self.core.config.frame;
        if let Some(header) = frame.header(0).ok().filter(|_| !frame.is_unframed()) {
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
