//! A listening socket whose blocking accept another thread can stop.
//!
//! A thread blocked in `accept` is as hard to wake as one blocked in `read`:
//! closing the listener from another thread does not wake it on every
//! platform. [`Acceptor`] waits for connections with mio (epoll, kqueue,
//! IOCP) beside a waker, so [`AcceptorHandle::stop`] ends the wait at once
//! everywhere. It also keeps the rules every accept loop needs: a connection
//! that failed between the SYN and `accept` is skipped, and running out of
//! file descriptors or memory pauses accepting (10 ms, doubling up to 1 s)
//! instead of spinning on the error.
//!
//! [`PoolServer`](crate::PoolServer) and trama-tap's proxy are built on it;
//! the readiness-loop [`Server`](crate::Server) accepts inside its own loop.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token, Waker};

use crate::net::{accept_error, AcceptError};
use crate::Result;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// A bound listener; [`accept`](Acceptor::accept) blocks until a connection
/// arrives or [`AcceptorHandle::stop`] is called.
///
/// ```
/// use std::net::TcpStream;
/// use trama_transport::Acceptor;
///
/// let mut acceptor = Acceptor::bind("127.0.0.1:0", 128)?;
/// let _client = TcpStream::connect(acceptor.local_addr())?;
/// let (stream, peer) = acceptor.accept().expect("not stopped");
/// assert_eq!(stream.local_addr()?, acceptor.local_addr());
/// assert_eq!(peer, _client.local_addr()?);
///
/// let stop = acceptor.handle();
/// std::thread::spawn(move || stop.stop());
/// assert!(acceptor.accept().is_none());
/// # Ok::<(), trama_transport::Error>(())
/// ```
pub struct Acceptor {
    listener: mio::net::TcpListener,
    poll: Poll,
    events: Events,
    handle: AcceptorHandle,
    local_addr: SocketAddr,
    pause: Duration,
}

/// Stops an [`Acceptor`] from any thread.
#[derive(Clone, Debug)]
pub struct AcceptorHandle {
    stopped: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl AcceptorHandle {
    /// Make the acceptor's current and every later `accept` return `None`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the accepting thread: {e}");
        }
    }

    /// True once [`stop`](AcceptorHandle::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl Acceptor {
    /// Listen on `addr` ([`listen`](crate::listen): `SO_REUSEADDR` on Unix,
    /// the given backlog).
    pub fn bind(addr: &str, backlog: i32) -> Result<Acceptor> {
        let mut listener = crate::net::listen(addr, backlog)?;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Acceptor {
            listener,
            poll,
            events: Events::with_capacity(4),
            handle: AcceptorHandle {
                stopped: Arc::new(AtomicBool::new(false)),
                waker,
            },
            local_addr,
            pause: FIRST_PAUSE,
        })
    }

    /// The address it listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops it from another thread.
    pub fn handle(&self) -> AcceptorHandle {
        self.handle.clone()
    }

    /// The next connection, as a blocking `TcpStream` with no other option
    /// set. `None` once stopped, or if waiting itself failed (the poller is
    /// broken, logged as an error): no connection can come after a `None`.
    pub fn accept(&mut self) -> Option<(TcpStream, SocketAddr)> {
        let mut wait = None;
        loop {
            if self.handle.is_stopped() {
                return None;
            }
            if let Some(timeout) = wait.take() {
                match self.poll.poll(&mut self.events, timeout) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::error!("cannot wait for connections on {}: {e}", self.local_addr);
                        self.handle.stop();
                        return None;
                    }
                }
                continue;
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    self.pause = FIRST_PAUSE;
                    // mio hands out non-blocking sockets.
                    let stream = TcpStream::from(stream);
                    match stream.set_nonblocking(false) {
                        Ok(()) => return Some((stream, peer)),
                        Err(e) => log::warn!("{peer}: cannot make the socket blocking: {e}"),
                    }
                }
                Err(e) => match accept_error(&e) {
                    AcceptError::Drained => wait = Some(None),
                    AcceptError::Skip => {}
                    AcceptError::Pause => {
                        log::warn!(
                            "accept failed: {e}; pausing for {} ms",
                            self.pause.as_millis()
                        );
                        wait = Some(Some(self.pause));
                        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn accepted_streams_block_and_carry_bytes() {
        let mut acceptor = Acceptor::bind("127.0.0.1:0", 16).unwrap();
        let mut client = TcpStream::connect(acceptor.local_addr()).unwrap();
        let (mut stream, peer) = acceptor.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        client.write_all(b"hola").unwrap();
        // A non-blocking socket could say WouldBlock here; this one waits.
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hola");
    }

    #[test]
    fn stop_wakes_a_thread_blocked_in_accept() {
        let mut acceptor = Acceptor::bind("127.0.0.1:0", 16).unwrap();
        let handle = acceptor.handle();
        let waiter = std::thread::spawn(move || acceptor.accept().is_none());
        // Whether the stop lands before or during the wait, accept ends
        // with None; the join would hang (and the test time out) otherwise.
        std::thread::sleep(Duration::from_millis(20));
        handle.stop();
        assert!(handle.is_stopped());
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_stopped_acceptor_takes_no_more_connections() {
        let mut acceptor = Acceptor::bind("127.0.0.1:0", 16).unwrap();
        let _client = TcpStream::connect(acceptor.local_addr()).unwrap();
        acceptor.handle().stop();
        // A connection is waiting, and still none is handed out.
        assert!(acceptor.accept().is_none());
        assert!(acceptor.accept().is_none());
    }

    #[test]
    fn connections_are_taken_in_order_of_arrival() {
        let mut acceptor = Acceptor::bind("127.0.0.1:0", 16).unwrap();
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(acceptor.local_addr()).unwrap())
            .collect();
        for c in &clients {
            let (_, peer) = acceptor.accept().unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
        }
    }
}
