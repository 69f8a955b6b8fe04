//! [`Gate`]: where a thread that reads a blocking socket waits for bytes, so
//! that another thread can send it home.
//!
//! The blocking parts of trama (the pool's handlers, the client's listener
//! thread, the multi-server client's and the peer node's link readers, the
//! pumps of `trama-tap`'s proxy) each have a thread sitting in `read` on a socket. To stop
//! them, the obvious move is `shutdown` from another thread: on Linux and
//! macOS that wakes the reader with an end of stream, but on Windows it
//! does not, and the reader sleeps until the peer happens to send or close.
//!
//! So these readers never sleep in `read`. They wait here first: a
//! readiness poller (epoll, kqueue or IOCP, through the `polling` crate)
//! watching the one socket, which [`Gate::close`] can wake from any thread.
//! Once the gate says there is something to read (bytes, an end of stream
//! or an error), the socket's own blocking `read` returns at once. The
//! socket stays blocking, so `sendfile`, `splice` and rustls work on it as
//! they did, and the wait carries the read timeout itself (no
//! `SO_RCVTIMEO`, which on Windows leaves a timed-out socket in an
//! undefined state).
//!
//! The cost is one readiness call before each read that may block: a
//! reader that is fed without a pause pays a system call it did not pay
//! before, an idle one pays nothing.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};

/// The one key of the one socket a gate watches.
const KEY: usize = 0;
/// Stored for "no timeout".
const NO_TIMEOUT: u64 = u64::MAX;

/// A socket's read side, waited on in a way any thread can end.
///
/// One thread reads through a gate at a time (a socket has one reader);
/// any number of threads may [`close`](Gate::close) it.
pub struct Gate {
    poller: Poller,
    /// Level-triggered where the platform has it (a socket with unread
    /// bytes stays ready); otherwise one-shot, re-armed before each wait.
    level: bool,
    /// The watched socket (a handle of its own, deregistered before it is
    /// dropped): also what `close` shuts.
    sock: TcpStream,
    closed: AtomicBool,
    /// The read timeout in nanoseconds, [`NO_TIMEOUT`] for none.
    timeout: AtomicU64,
    /// Reused by every wait (a poller fills it; one event fits).
    events: Mutex<Events>,
}

impl Gate {
    /// A gate over `sock`, which stays blocking; the read timeout starts
    /// as the socket's own (`SO_RCVTIMEO`), which the gate then enforces.
    pub fn new(sock: &TcpStream) -> io::Result<Gate> {
        let poller = Poller::new()?;
        let sock = sock.try_clone()?;
        let level = poller.supports_level();
        let mode = if level {
            PollMode::Level
        } else {
            PollMode::Oneshot
        };
        // SAFETY (polling's contract for `add`): the registered socket must
        // be deleted from the poller before it is closed. `sock` is owned by
        // this gate, never handed out by value, and `Drop` deletes it first.
        #[allow(unsafe_code)]
        unsafe {
            poller.add_with_mode(&sock, Event::readable(KEY), mode)?;
        }
        let gate = Gate {
            poller,
            level,
            timeout: AtomicU64::new(NO_TIMEOUT),
            closed: AtomicBool::new(false),
            events: Mutex::new(Events::with_capacity(NonZeroUsize::MIN)),
            sock,
        };
        gate.set_timeout(gate.sock.read_timeout()?);
        Ok(gate)
    }

    /// A wait that finds nothing to read for this long fails with
    /// [`io::ErrorKind::TimedOut`] (`None`: wait until there is).
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        let nanos = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.timeout.store(nanos, Ordering::Relaxed);
    }

    /// The read timeout the gate enforces.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The socket the gate watches.
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// End every wait at this gate, now and later, with
    /// [`io::ErrorKind::ConnectionAborted`], and shut the socket `how`
    /// (which the peer sees, and which also ends a blocked write on Unix).
    /// From any thread; more than once is harmless.
    pub fn close(&self, how: Shutdown) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.poller.notify();
        let _ = self.sock.shutdown(how);
    }

    /// True once [`close`](Gate::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Wait until a read on the socket will not block, for at most the
    /// read timeout.
    pub fn wait(&self) -> io::Result<()> {
        let timeout = self.timeout();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_closed() {
                return Err(closed());
            }
            if !self.level {
                self.poller.modify(&self.sock, Event::readable(KEY))?;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => Some(left),
                    None => return Err(timed_out(timeout)),
                },
                None => None,
            };
            events.clear();
            match self.poller.wait(&mut events, left) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.is_closed() {
                return Err(closed());
            }
            if events.iter().any(|e| e.key == KEY) {
                return Ok(());
            }
            // Woken with no event: the timeout ran out (checked at the top
            // of the loop), or a spurious wake-up.
        }
    }

    /// Wait at the gate, then read once from `sock` (the gate's socket,
    /// or a handle to the same one).
    pub fn read(&self, mut sock: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait()?;
        sock.read(buf)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.poller.delete(&self.sock);
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("closed", &self.is_closed())
            .field("timeout", &self.timeout())
            .finish()
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed locally",
    )
}

fn timed_out(timeout: Option<Duration>) -> io::Error {
    let after = timeout.unwrap_or_default();
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("nothing to read within {after:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::Arc;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn close_wakes_a_reader_that_no_byte_would_wake() {
        let (a, _b) = pair();
        let gate = Arc::new(Gate::new(&a).unwrap());
        let g = gate.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            g.read(&a, &mut buf)
        });
        // Whether close comes before or during the wait, the read ends.
        gate.close(Shutdown::Both);
        let got = reader.join().unwrap();
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }

    #[test]
    fn bytes_left_unread_keep_the_gate_open() {
        let (a, mut b) = pair();
        let gate = Gate::new(&a).unwrap();
        b.write_all(b"hola mundo").unwrap();
        let mut two = [0u8; 2];
        let mut rest = Vec::new();
        // Reads of two bytes: each wait must see the bytes still there.
        while rest.len() < 10 {
            let n = gate.read(&a, &mut two).unwrap();
            rest.extend_from_slice(&two[..n]);
        }
        assert_eq!(rest, b"hola mundo");
    }

    #[test]
    fn an_end_of_stream_passes_the_gate() {
        let (a, b) = pair();
        let gate = Gate::new(&a).unwrap();
        drop(b);
        let mut buf = [0u8; 4];
        assert_eq!(gate.read(&a, &mut buf).unwrap(), 0);
    }

    #[test]
    fn the_timeout_is_the_gates_and_says_how_long() {
        let (a, _b) = pair();
        let gate = Gate::new(&a).unwrap();
        gate.set_timeout(Some(Duration::from_millis(1)));
        assert_eq!(gate.timeout(), Some(Duration::from_millis(1)));
        let e = gate.read(&a, &mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("1ms"), "{e}");
        gate.set_timeout(None);
        assert_eq!(gate.timeout(), None);
    }

    #[test]
    fn the_sockets_own_timeout_is_taken_over() {
        let (a, _b) = pair();
        a.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
        let gate = Gate::new(&a).unwrap();
        assert_eq!(gate.timeout(), Some(Duration::from_secs(7)));
    }
}
