//! The server: a blocking API over a readiness loop and an optional worker pool.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};
use trama_protocol::{Action, Actions, ConnId, Service};

use crate::reactor::{Reactor, WAKER};
use crate::stats::{Stats, StatsSnapshot};
use crate::worker::{self, Job};
use crate::{Error, Result, ServerConfig};

/// A request for an I/O thread, posted from another thread.
pub(crate) enum Cmd {
    /// Take over a freshly accepted connection.
    Adopt {
        stream: mio::net::TcpStream,
        peer: SocketAddr,
        id: ConnId,
    },
    /// Queue an encoded frame for one connection.
    Send { to: ConnId, frame: Vec<u8> },
    /// Queue an encoded frame for every connection but one.
    Broadcast {
        frame: Arc<[u8]>,
        except: Option<ConnId>,
    },
    /// Close a connection after its queue drains.
    Close { id: ConnId, reason: String },
}

/// How to reach one I/O thread.
pub(crate) struct Link {
    tx: Sender<Cmd>,
    waker: Waker,
}

/// What every thread of a server shares, whatever the service.
pub(crate) struct Core {
    pub(crate) config: ServerConfig,
    pub(crate) stats: Stats,
    pub(crate) shutdown: AtomicBool,
    pub(crate) local_addr: SocketAddr,
    /// Bytes held by incomplete frames, over every I/O thread.
    pub(crate) incomplete: AtomicUsize,
    links: Vec<Link>,
}

impl Core {
    /// A connection's incomplete frame went from holding `before` bytes to
    /// `after`: true if incomplete frames now hold more than the budget.
    pub(crate) fn hold_incomplete(&self, before: usize, after: usize) -> bool {
        let total = if after >= before {
            self.incomplete.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            self.incomplete
                .fetch_sub(before - after, Ordering::Relaxed)
                .saturating_sub(before - after)
        };
        total > self.config.incomplete_budget
    }

    /// Which I/O thread owns a connection: ids are dealt out round-robin.
    pub(crate) fn owner(&self, id: ConnId) -> usize {
        (id.0 % self.links.len() as u64) as usize
    }

    pub(crate) fn threads(&self) -> usize {
        self.links.len()
    }

    pub(crate) fn post(&self, thread: usize, cmd: Cmd) {
        if let Some(link) = self.links.get(thread) {
            if link.tx.send(cmd).is_ok() {
                if let Err(e) = link.waker.wake() {
                    log::warn!("cannot wake I/O thread {thread}: {e}");
                }
            }
        }
    }

    fn encode(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut frame = Vec::with_capacity(self.config.frame.header_len() + payload.len());
        self.config.frame.encode(payload, &mut frame)?;
        Ok(frame)
    }

    pub(crate) fn send(&self, to: ConnId, payload: &[u8]) -> Result<()> {
        let frame = self.encode(payload)?;
        self.post(self.owner(to), Cmd::Send { to, frame });
        Ok(())
    }

    /// Broadcast to the connections of every I/O thread except `skip_thread`.
    pub(crate) fn broadcast(
        &self,
        payload: &[u8],
        except: Option<ConnId>,
        skip_thread: Option<usize>,
    ) -> Result<()> {
        let frame: Arc<[u8]> = self.encode(payload)?.into();
        for thread in 0..self.links.len() {
            if Some(thread) != skip_thread {
                self.post(
                    thread,
                    Cmd::Broadcast {
                        frame: frame.clone(),
                        except,
                    },
                );
            }
        }
        Ok(())
    }

    pub(crate) fn close(&self, id: ConnId, reason: &str) {
        self.post(
            self.owner(id),
            Cmd::Close {
                id,
                reason: reason.to_string(),
            },
        );
    }

    /// Carry out actions that were produced away from the I/O threads.
    pub(crate) fn apply(&self, actions: &Actions) {
        for action in actions.iter() {
            let result = match action {
                Action::Send { to, payload } => self.send(to, payload),
                Action::Broadcast { payload, except } => self.broadcast(payload, except, None),
                Action::Close { id, reason } => {
                    self.close(id, reason);
                    Ok(())
                }
            };
            if let Err(e) = result {
                log::warn!("service action dropped: {e}");
            }
        }
    }

    fn wake_all(&self) {
        for link in &self.links {
            let _ = link.waker.wake();
        }
    }
}

/// A handle to a running server, usable from any thread: push, broadcast,
/// close, read counters, shut down. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    core: Arc<Core>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when bound to `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.core.local_addr
    }

    /// Queue a message for one connection. Unknown or closed ids are ignored.
    pub fn send(&self, to: ConnId, payload: &[u8]) -> Result<()> {
        self.check_running()?;
        self.core.send(to, payload)
    }

    /// Queue a message for every connection except `except`.
    pub fn broadcast(&self, payload: &[u8], except: Option<ConnId>) -> Result<()> {
        self.check_running()?;
        self.core.broadcast(payload, except, None)
    }

    /// Close a connection once what is queued for it is sent.
    pub fn close(&self, id: ConnId, reason: &str) {
        self.core.close(id, reason)
    }

    /// The server's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats.snapshot()
    }

    /// Ask the server to stop: it stops accepting, tells the service every
    /// connection is closing, flushes queued bytes within the linger time,
    /// closes, and `run` returns. Returns at once; idempotent.
    pub fn shutdown(&self) {
        if !self.core.shutdown.swap(true, Ordering::SeqCst) {
            log::info!("shutting down");
        }
        self.core.wake_all();
    }

    /// True once [`shutdown`](ServerHandle::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.core.shutdown.load(Ordering::SeqCst)
    }

    fn check_running(&self) -> Result<()> {
        if self.is_shut_down() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }
}

/// A bound server that has not started yet; [`run`](Server::run) it on the
/// current thread or [`spawn`](Server::spawn) it in the background.
///
/// ```no_run
/// use trama_protocol::{Actions, Event};
/// use trama_transport::{Server, ServerConfig};
///
/// // An echo server on 127.0.0.1:8080, speaking the notes' 4-byte frames.
/// let echo = |event: Event<'_>, out: &mut Actions| {
///     if let Event::Message { id, payload } = event {
///         out.send(id, payload);
///     }
/// };
/// let server = Server::bind(ServerConfig::new("127.0.0.1:8080"), echo)?;
/// eprintln!("listening on {}", server.local_addr());
/// server.run()?; // blocks until a handle calls shutdown()
/// # Ok::<(), trama_transport::Error>(())
/// ```
pub struct Server<S> {
    core: Arc<Core>,
    reactors: Vec<Reactor<S>>,
    workers: Vec<Receiver<Job>>,
    service: Arc<Mutex<S>>,
}

impl<S: Service + 'static> Server<S> {
    /// Bind the listening socket and prepare the I/O threads.
    pub fn bind(config: ServerConfig, service: S) -> Result<Server<S>> {
        let listener = crate::net::listen(&config.addr, config.backlog)?;
        let local_addr = listener.local_addr()?;
        let threads = config.io_threads.max(1);

        let mut links = Vec::with_capacity(threads);
        let mut parts = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (tx, rx) = crossbeam_channel::unbounded();
            links.push(Link { tx, waker });
            parts.push((poll, rx));
        }

        let mut worker_tx = Vec::new();
        let mut worker_rx = Vec::new();
        for _ in 0..config.workers {
            let (tx, rx) = crossbeam_channel::bounded(config.worker_queue.max(1));
            worker_tx.push(tx);
            worker_rx.push(rx);
        }

        let core = Arc::new(Core {
            config,
            stats: Stats::default(),
            shutdown: AtomicBool::new(false),
            local_addr,
            incomplete: AtomicUsize::new(0),
            links,
        });
        let service = Arc::new(Mutex::new(service));
        let mut listener = Some(listener);
        let mut reactors = Vec::with_capacity(threads);
        for (index, (poll, rx)) in parts.into_iter().enumerate() {
            reactors.push(Reactor::new(
                index,
                poll,
                if index == 0 { listener.take() } else { None },
                rx,
                core.clone(),
                service.clone(),
                worker_tx.clone(),
            )?);
        }
        Ok(Server {
            core,
            reactors,
            workers: worker_rx,
            service,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.core.local_addr
    }

    /// A handle for pushing, broadcasting and shutting down from other threads.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            core: self.core.clone(),
        }
    }

    /// Serve on the current thread (plus the other I/O and worker threads)
    /// until [`ServerHandle::shutdown`] is called; returns once every thread
    /// has been joined.
    pub fn run(self) -> Result<()> {
        self.run_after_start(|| {})
    }

    /// [`run`](Server::run), calling `started` once every other thread is
    /// running (the place to say "listening": a test that counts the
    /// server's threads then finds them all).
    pub fn run_after_start(self, started: impl FnOnce()) -> Result<()> {
        let mut reactors = self.reactors;
        let first = reactors.remove(0);
        let mut threads = spawn_all(reactors, self.workers, &self.service, &self.core)?;
        started();
        first.run();
        join(&mut threads);
        Ok(())
    }

    /// Serve in the background. The returned [`RunningServer`] derefs to a
    /// [`ServerHandle`]; dropping it shuts the server down and joins its threads.
    pub fn spawn(self) -> Result<RunningServer> {
        let handle = self.handle();
        let threads = spawn_all(self.reactors, self.workers, &self.service, &self.core)?;
        Ok(RunningServer { handle, threads })
    }
}

fn spawn_all<S: Service + 'static>(
    reactors: Vec<Reactor<S>>,
    workers: Vec<Receiver<Job>>,
    service: &Arc<Mutex<S>>,
    core: &Arc<Core>,
) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    let mut start = |name: String, f: Box<dyn FnOnce() + Send>| -> Result<()> {
        let t = std::thread::Builder::new()
            .name(name.clone())
            .spawn(f)
            .map_err(|source| Error::Thread { name, source })?;
        threads.push(t);
        Ok(())
    };
    let mut result = Ok(());
    for (i, rx) in workers.into_iter().enumerate() {
        let (service, core) = (service.clone(), core.clone());
        result = result.and_then(|()| {
            start(
                format!("trama-worker-{i}"),
                Box::new(move || worker::run(rx, service, core)),
            )
        });
    }
    for reactor in reactors {
        let name = format!("trama-io-{}", reactor.index());
        result = result.and_then(|()| start(name, Box::new(move || reactor.run())));
    }
    if let Err(e) = result {
        // Stop what did start, then report.
        core.shutdown.store(true, Ordering::SeqCst);
        core.wake_all();
        join(&mut threads);
        return Err(e);
    }
    Ok(threads)
}

fn join(threads: &mut Vec<JoinHandle<()>>) {
    for t in threads.drain(..) {
        let name = t.thread().name().unwrap_or("?").to_string();
        if t.join().is_err() {
            log::error!("thread {name} panicked");
        }
    }
}

/// A server running in the background (see [`Server::spawn`]).
pub struct RunningServer {
    handle: ServerHandle,
    threads: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Shut down and wait until every thread has finished.
    pub fn stop(mut self) {
        self.handle.shutdown();
        join(&mut self.threads);
    }

    /// A handle that outlives this value.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}

impl Deref for RunningServer {
    type Target = ServerHandle;
    fn deref(&self) -> &ServerHandle {
        &self.handle
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        join(&mut self.threads);
    }
}
