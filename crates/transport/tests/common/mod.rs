//! Helpers shared by the transport's integration tests: a recording service,
//! raw-socket framing, deadline waits and a watchdog.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Test code: it panics on failure like the tests.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use trama_protocol::{Actions, ConnId, DisconnectReason, Event, Service};
use trama_transport::{RunningServer, Server, ServerConfig};

/// How long any wait may take before the test fails. Generous: the tests
/// must pass on a loaded 2-core machine, and a passing test never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Poll `done` until it returns true, or fail after [`DEADLINE`] saying `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Run `f` on another thread and fail if it does not finish within [`DEADLINE`].
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {DEADLINE:?}"),
    }
}

/// One event as the service saw it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A connection arrived.
    Connected(ConnId, SocketAddr),
    /// A message arrived.
    Message(ConnId, Vec<u8>),
    /// A connection ended.
    Disconnected(ConnId, DisconnectReason),
}

/// Everything a service was told, shared with the test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    /// A new, empty log.
    pub fn new() -> Log {
        Log::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Seen>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A service that records every event, then lets `inner` answer it.
    pub fn service(
        &self,
        mut inner: impl FnMut(Event<'_>, &mut Actions) + Send + 'static,
    ) -> impl Service + 'static {
        let log = self.clone();
        move |event: Event<'_>, out: &mut Actions| {
            let seen = match event {
                Event::Connected { id, peer } => Seen::Connected(id, peer),
                Event::Message { id, payload } => Seen::Message(id, payload.to_vec()),
                Event::Disconnected { id, reason } => Seen::Disconnected(id, reason.clone()),
            };
            log.lock().push(seen);
            inner(event, out);
        }
    }

    /// A copy of what was seen so far.
    pub fn events(&self) -> Vec<Seen> {
        self.lock().clone()
    }

    /// The id of the connection whose remote end is `peer`, once connected.
    pub fn id_of(&self, peer: SocketAddr) -> ConnId {
        let mut found = None;
        wait_until(&format!("the service to see {peer} connect"), || {
            found = self.lock().iter().find_map(|s| match s {
                Seen::Connected(id, p) if *p == peer => Some(*id),
                _ => None,
            });
            found.is_some()
        });
        found.unwrap_or_else(|| unreachable!())
    }

    /// Why `id` ended, if it has.
    pub fn reason(&self, id: ConnId) -> Option<DisconnectReason> {
        self.lock().iter().find_map(|s| match s {
            Seen::Disconnected(i, r) if *i == id => Some(r.clone()),
            _ => None,
        })
    }

    /// Wait until `id` ends and say why.
    pub fn wait_reason(&self, id: ConnId) -> DisconnectReason {
        let mut found = None;
        wait_until(&format!("{id} to be disconnected"), || {
            found = self.reason(id);
            found.is_some()
        });
        found.unwrap_or_else(|| unreachable!())
    }

    /// How many `Connected` events were seen.
    pub fn connects(&self) -> usize {
        self.lock()
            .iter()
            .filter(|s| matches!(s, Seen::Connected(..)))
            .count()
    }

    /// How many `Disconnected` events were seen.
    pub fn disconnects(&self) -> usize {
        self.lock()
            .iter()
            .filter(|s| matches!(s, Seen::Disconnected(..)))
            .count()
    }

    /// The messages `id` sent, in order.
    pub fn messages_from(&self, id: ConnId) -> Vec<Vec<u8>> {
        self.lock()
            .iter()
            .filter_map(|s| match s {
                Seen::Message(i, m) if *i == id => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A readiness-loop server for `service`, serving in the background.
pub fn spawn<S: Service + 'static>(config: ServerConfig, service: S) -> RunningServer {
    Server::bind(config, service).unwrap().spawn().unwrap()
}

/// Sends every message back to its sender.
pub fn echo(event: Event<'_>, out: &mut Actions) {
    if let Event::Message { id, payload } = event {
        out.send(id, payload);
    }
}

/// Answers nothing.
pub fn ignore(_: Event<'_>, _: &mut Actions) {}

/// Connect a raw socket, with reads that give up after [`DEADLINE`].
pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// The notes' frame: 4-byte big-endian length, then the payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Write one notes-format frame.
pub fn write_frame(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&frame(payload)).unwrap();
}

/// Read one notes-format frame (fails on end of stream or after [`DEADLINE`]).
pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut payload).unwrap();
    payload
}

/// Wait until the server closes `s`: a read returns end of stream or a
/// reset, after skipping anything still in flight. Fails after [`DEADLINE`].
pub fn expect_closed(s: &mut TcpStream) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return
            }
            Err(e) => panic!("expected the server to close the socket, got {e}"),
        }
        assert!(start.elapsed() < DEADLINE, "socket not closed in time");
    }
}
