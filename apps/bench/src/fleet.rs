//! The many-connection engine behind `load` and `hold`: a readiness loop
//! (mio) on each of a few threads, each thread owning its connections.
//!
//! Thousands of blocking client threads would measure the scheduler and the
//! tool rather than the server, so each thread drives its share of the
//! connections from one `epoll` set: it connects them (a bounded number at a
//! time, so a listen backlog is not flooded), then sends requests and counts
//! replies. Replies come back in order on a connection, so a request's send
//! time waits in a small per-connection queue until its reply's frame ends
//! ([`FrameCounter`] finds frame ends without keeping the payloads). Every
//! request is the same frame, so what a connection still has to write is a
//! count of bytes into one shared buffer of repeated requests: a connection
//! holds no buffer of its own.
//!
//! Closed loop: each connection keeps `pipeline` requests in flight and
//! sends the next when a reply arrives. Open loop (`rate`): requests are due
//! on a fixed schedule whatever the server does, and latency counts from the
//! time a request was due, not from when it could be sent, so a server that
//! stalls cannot hide the wait it causes (the "coordinated omission" of
//! closed-loop tools). A due request still waits while `pipeline` are
//! unanswered on its connection; such requests are counted as `behind` if
//! the run ends before they could be sent.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::stats::Histogram;
use crate::wire::{FrameCounter, Wire};

/// Connections one thread has in the middle of connecting at once.
const CONNECTING_PER_THREAD: usize = 128;
/// Bytes read per `read` call.
const READ_BUF: usize = 64 * 1024;
/// Longest single wait in a loop that also watches a clock.
const TICK: Duration = Duration::from_millis(100);
/// Below this a poll timeout is not precise enough (epoll counts whole
/// milliseconds): a due request is waited for by the [`alarm`] (a timerfd
/// in the same epoll set, so replies still wake the loop at once), or where
/// there is none by a short sleep.
const FINE_WAIT: Duration = Duration::from_millis(1);
/// The longest of those short sleeps (without an alarm); it bounds how late
/// a reply that arrives during one is stamped.
const NAP: Duration = Duration::from_micros(200);
/// The alarm's token: no connection has it (mio keeps `usize::MAX` for itself).
const ALARM: Token = Token(usize::MAX - 1);

/// What can stop the engine before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The readiness loop could not be created (out of file descriptors?).
    #[error("cannot create a readiness loop: {0}")]
    Poll(io::Error),
    /// A client thread could not be started.
    #[error("cannot start client thread {index}: {source}")]
    Spawn {
        /// Which thread.
        index: usize,
        /// Why.
        source: io::Error,
    },
    /// `--blocking` asked for a job it does not run.
    #[error("--blocking runs closed-loop load only (no --rate, no hold)")]
    Shape,
    /// A client thread ended without a result (a bug).
    #[error("client thread {0} stopped without a result")]
    Lost(usize),
}

/// What the threads do once connected.
#[derive(Debug, Clone, Copy)]
pub enum Job {
    /// Requests for `warmup + duration`, figures from the last `duration`;
    /// then up to `drain` to collect the replies still in flight.
    Load {
        /// Not measured: connections and caches settle.
        warmup: Duration,
        /// Measured.
        duration: Duration,
        /// Requests in flight per connection (at most, in open loop).
        pipeline: usize,
        /// Open loop: requests per second over all connections.
        rate: Option<f64>,
        /// How long to wait for the last replies.
        drain: Duration,
    },
    /// Hold every connection idle for `idle`, then send one request on each
    /// and wait up to `timeout` for the answers.
    Hold {
        /// How long the connections stay idle.
        idle: Duration,
        /// How long to wait for the answers.
        timeout: Duration,
    },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server.
    pub addr: SocketAddr,
    /// Connections, over all threads.
    pub clients: usize,
    /// Client threads (at most one per connection).
    pub threads: usize,
    /// How replies are framed.
    pub wire: Wire,
    /// One encoded request frame.
    pub request: Vec<u8>,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// What to do.
    pub job: Job,
}

/// Counters the progress line reads while the threads run.
#[derive(Debug, Default)]
pub struct Progress {
    /// Connections established so far.
    pub connected: AtomicU64,
    /// Threads done connecting.
    pub ready: AtomicU64,
    /// Replies received so far (any phase).
    pub replies: AtomicU64,
    /// Connections that ended early so far.
    pub dropped: AtomicU64,
}

/// What the threads found, added up.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Connections established.
    pub connected: u64,
    /// Connections that could not be established.
    pub connect_failed: u64,
    /// Requests sent in the measured period.
    pub sent: u64,
    /// Replies to those.
    pub answered: u64,
    /// Replies received inside the measured period (for the rate).
    pub replies_in_window: u64,
    /// Open loop: due requests never sent.
    pub behind: u64,
    /// Connections that ended early.
    pub dropped: u64,
    /// Frames that answered no request.
    pub unexpected: u64,
    /// Latency of each answered request, nanoseconds.
    pub hist: Histogram,
    /// Longest time a thread took to connect its share.
    pub connect_time: Duration,
    /// Hold: longest time from the pings to a thread's last answer.
    pub answer_all: Option<Duration>,
    /// The first error any connection met.
    pub first_error: Option<String>,
}

impl Outcome {
    fn merge(&mut self, o: Outcome) {
        self.connected += o.connected;
        self.connect_failed += o.connect_failed;
        self.sent += o.sent;
        self.answered += o.answered;
        self.replies_in_window += o.replies_in_window;
        self.behind += o.behind;
        self.dropped += o.dropped;
        self.unexpected += o.unexpected;
        self.hist.merge(&o.hist);
        self.connect_time = self.connect_time.max(o.connect_time);
        self.answer_all = match (self.answer_all, o.answer_all) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    pub(crate) fn note_error(&mut self, e: String) {
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

/// A running set of client threads.
pub struct Fleet {
    handles: Vec<JoinHandle<Result<Outcome, FleetError>>>,
    /// `--blocking`: the thread that ends connections left waiting.
    reaper: Option<JoinHandle<()>>,
    progress: Arc<Progress>,
    threads: usize,
}

impl Fleet {
    /// Start the threads; they connect, wait for each other, then run the job.
    pub fn start(plan: Plan) -> Result<Fleet, FleetError> {
        let threads = plan.threads.clamp(1, plan.clients.max(1));
        let progress = Arc::new(Progress::default());
        let barrier = Arc::new(Barrier::new(threads));
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let share = plan.clients / threads + usize::from(index < plan.clients % threads);
            let (plan, progress, barrier) = (plan.clone(), progress.clone(), barrier.clone());
            let h = thread::Builder::new()
                .name(format!("bench-{index}"))
                .spawn(move || run_thread(plan, share, progress, barrier))
                .map_err(|source| FleetError::Spawn { index, source })?;
            handles.push(h);
        }
        Ok(Fleet {
            handles,
            reaper: None,
            progress,
            threads,
        })
    }

    /// Start a thread per connection with a blocking socket instead (see
    /// [`crate::blocking`]); only the closed-loop `Load` job runs this way.
    pub fn start_blocking(plan: Plan) -> Result<Fleet, FleetError> {
        let Job::Load {
            warmup,
            duration,
            pipeline,
            rate: None,
            drain,
        } = plan.job
        else {
            return Err(FleetError::Shape);
        };
        let threads = plan.clients.max(1);
        let progress = Arc::new(Progress::default());
        // The reaper thread meets the client threads at the barrier too.
        let barrier = Arc::new(Barrier::new(threads + 1));
        let reaper = Arc::new(crate::blocking::Reaper::new(threads));
        // Set by the first thread past the barrier: one window for all.
        let window = Arc::new(std::sync::OnceLock::new());
        let window_of = move |cell: &std::sync::OnceLock<crate::blocking::Window>| {
            *cell.get_or_init(|| {
                let from = Instant::now() + warmup;
                crate::blocking::Window {
                    from,
                    until: from + duration,
                    drain,
                    pipeline,
                }
            })
        };
        let (b, r, w) = (barrier.clone(), reaper.clone(), window.clone());
        let reaper_handle = thread::Builder::new()
            .name("bench-reaper".into())
            .spawn(move || {
                b.wait();
                let w = window_of(&w);
                r.wait(w.until + w.drain);
            })
            .map_err(|source| FleetError::Spawn {
                index: threads,
                source,
            })?;
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let (plan, progress, barrier, window, reaper) = (
                plan.clone(),
                progress.clone(),
                barrier.clone(),
                window.clone(),
                reaper.clone(),
            );
            let spawned = thread::Builder::new()
                .name(format!("bench-{index}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    Ok(crate::blocking::run(
                        index,
                        &plan,
                        &progress,
                        &reaper,
                        &barrier,
                        || window_of(&window),
                    ))
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(source) => {
                    // The threads already started wait at the barrier for
                    // ones that will never come: fail the run instead.
                    return Err(FleetError::Spawn { index, source });
                }
            }
        }
        Ok(Fleet {
            handles,
            reaper: Some(reaper_handle),
            progress,
            threads,
        })
    }

    /// The live counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// True once every thread finished connecting its share.
    pub fn all_connected(&self) -> bool {
        self.progress.ready.load(Ordering::Relaxed) >= self.threads as u64
    }

    /// True once every thread is done.
    pub fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Number of client threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Wait for the threads and add up what they found.
    pub fn join(self) -> Result<Outcome, FleetError> {
        let mut total = Outcome::default();
        for (i, h) in self.handles.into_iter().enumerate() {
            let o = h.join().map_err(|_| FleetError::Lost(i))??;
            total.merge(o);
        }
        if let Some(r) = self.reaper {
            // Every client thread released its socket by now, so it returns.
            r.join().map_err(|_| FleetError::Lost(self.threads))?;
        }
        Ok(total)
    }
}

/// One thread: connect `share` connections, meet the others, run the job.
fn run_thread(
    plan: Plan,
    share: usize,
    progress: Arc<Progress>,
    barrier: Arc<Barrier>,
) -> Result<Outcome, FleetError> {
    // Every thread reaches the barrier exactly once, whatever happens, so
    // no other thread waits forever.
    let prepared = Engine::new(&plan, progress.clone()).map(|mut e| {
        e.connect_all(plan.addr, share, plan.connect_timeout);
        e
    });
    progress.ready.fetch_add(1, Ordering::Relaxed);
    barrier.wait();
    let mut engine = prepared?;
    if engine.open_conns().is_empty() {
        // Nothing to measure on this thread.
        return Ok(engine.out);
    }
    match plan.job {
        Job::Load {
            warmup,
            duration,
            pipeline,
            rate,
            drain,
        } => {
            let per_conn = rate.map(|r| r / plan.clients.max(1) as f64);
            engine.load(warmup, duration, pipeline.max(1), per_conn, drain);
        }
        Job::Hold { idle, timeout } => engine.hold(idle, timeout),
    }
    Ok(engine.out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    Closed,
}

/// One connection's state; no buffers of its own.
struct Conn {
    stream: Option<TcpStream>,
    state: State,
    started: Instant,
    counter: FrameCounter,
    /// Send (or due) times of the requests awaiting replies, oldest first.
    inflight: VecDeque<Instant>,
    /// Bytes of queued requests not yet written.
    unsent: usize,
    /// Where in the request frame the next byte to write is.
    offset: usize,
    /// Open loop: requests due but not yet sent, and the schedule index of the oldest.
    owed: u64,
    owed_k: u64,
}

/// A one-shot timer in the epoll set: `timerfd` on Linux.
#[cfg(target_os = "linux")]
mod alarm {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Duration;

    use mio::unix::SourceFd;
    use mio::{Interest, Registry, Token};
    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

    /// Readable once the time set has passed; setting it again re-arms it
    /// (and clears the expiry, so it is never read).
    pub struct Alarm(TimerFd);

    impl Alarm {
        pub fn new(registry: &Registry, token: Token) -> io::Result<Alarm> {
            let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)
                .map_err(io::Error::from)?;
            let raw = fd.as_fd().as_raw_fd();
            registry.register(&mut SourceFd(&raw), token, Interest::READABLE)?;
            Ok(Alarm(fd))
        }

        /// Fire once, `after` from now (at least a microsecond: zero would disarm it).
        pub fn set(&self, after: Duration) -> io::Result<()> {
            let after = after.max(Duration::from_micros(1));
            self.0
                .set(
                    Expiration::OneShot(TimeSpec::from_duration(after)),
                    TimerSetTimeFlags::empty(),
                )
                .map_err(io::Error::from)
        }
    }
}

/// Elsewhere there is no alarm, and fine waits are short naps.
#[cfg(not(target_os = "linux"))]
mod alarm {
    use std::io;
    use std::time::Duration;

    use mio::{Registry, Token};

    /// Never created.
    pub struct Alarm;

    impl Alarm {
        pub fn new(_registry: &Registry, _token: Token) -> io::Result<Alarm> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub fn set(&self, _after: Duration) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }
}

/// An event as (connection index, read it, write to it). An error is both:
/// a read reports it, and a connect in progress learns of it on either.
fn flags(e: &mio::event::Event) -> (usize, bool, bool) {
    (
        e.token().0,
        e.is_readable() || e.is_read_closed() || e.is_error(),
        e.is_writable() || e.is_error(),
    )
}

/// When the `k`-th request of a schedule is due; `None` past the clock's range.
fn due_at(start: Instant, interval: Duration, k: u64) -> Option<Instant> {
    let offset = Duration::try_from_secs_f64(interval.as_secs_f64() * k as f64).ok()?;
    start.checked_add(offset)
}

/// How replies lead to new requests.
#[derive(Debug, Clone, Copy)]
enum Refill {
    /// No new requests (hold).
    None,
    /// Keep `pipeline` in flight until the window ends.
    Closed { pipeline: usize },
    /// Send owed requests while fewer than `pipeline` are in flight; the
    /// `k`-th request of this thread is due at `start + k * interval` and
    /// goes to open connection `k % n`.
    Open {
        pipeline: usize,
        start: Instant,
        interval: Duration,
        n: u64,
    },
}

/// A thread's readiness loop and its connections.
struct Engine {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    wire: Wire,
    req_len: usize,
    /// The request frame repeated, so any run of queued requests is one write.
    batch: Vec<u8>,
    buf: Vec<u8>,
    out: Outcome,
    progress: Arc<Progress>,
    /// Requests sent at or after `from` and before `until` are measured.
    from: Instant,
    until: Instant,
    refill: Refill,
    inflight_total: usize,
    last_reply: Option<Instant>,
    /// Events of the current turn (reused).
    ready: Vec<(usize, bool, bool)>,
    /// Wakes the loop between milliseconds, where the OS has a timerfd.
    alarm: Option<alarm::Alarm>,
    /// Replies not yet added to the shared progress counter.
    unpublished: u64,
}

impl Engine {
    fn new(plan: &Plan, progress: Arc<Progress>) -> Result<Engine, FleetError> {
        let poll = Poll::new().map_err(FleetError::Poll)?;
        // Without one, open-loop waits fall back to short naps.
        let alarm = alarm::Alarm::new(poll.registry(), ALARM).ok();
        let req_len = plan.request.len().max(1);
        let pipeline = match plan.job {
            Job::Load { pipeline, .. } => pipeline.max(1),
            Job::Hold { .. } => 1,
        };
        // Enough copies for a whole pipeline in one write, within reason.
        let copies = (pipeline + 1).min((256 * 1024 / req_len).max(2)).max(2);
        let batch = plan.request.repeat(copies);
        let now = Instant::now();
        Ok(Engine {
            poll,
            events: Events::with_capacity(1024),
            conns: Vec::new(),
            wire: plan.wire,
            req_len,
            batch,
            buf: vec![0; READ_BUF],
            out: Outcome::default(),
            progress,
            from: now,
            until: now,
            refill: Refill::None,
            inflight_total: 0,
            last_reply: None,
            ready: Vec::with_capacity(1024),
            alarm,
            unpublished: 0,
        })
    }

    /// Open `n` connections, at most [`CONNECTING_PER_THREAD`] at a time.
    fn connect_all(&mut self, addr: SocketAddr, n: usize, timeout: Duration) {
        let t0 = Instant::now();
        self.conns.reserve(n);
        let mut started = 0;
        let mut connecting = 0usize;
        let mut last_scan = Instant::now();
        while started < n || connecting > 0 {
            while started < n && connecting < CONNECTING_PER_THREAD {
                started += 1;
                match self.open(addr) {
                    Ok(()) => connecting += 1,
                    Err(e) => {
                        self.out.connect_failed += 1;
                        self.out.note_error(format!("connect to {addr}: {e}"));
                    }
                }
            }
            if connecting == 0 {
                continue;
            }
            if let Err(e) = self.poll.poll(&mut self.events, Some(TICK)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.out.note_error(format!("poll: {e}"));
                    return;
                }
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            ready.extend(self.events.iter().map(flags));
            for &(i, readable, writable) in &ready {
                match self.conns.get(i).map(|c| c.state) {
                    Some(State::Connecting) if readable || writable => {
                        match self.check_connected(i, addr) {
                            Ok(false) => {}
                            Ok(true) => connecting -= 1,
                            Err(e) => {
                                connecting -= 1;
                                self.fail_connect(i, format!("connect to {addr}: {e}"));
                            }
                        }
                    }
                    Some(State::Open) => self.on_event(i, readable, writable),
                    _ => {}
                }
            }
            self.ready = ready;
            if last_scan.elapsed() >= TICK {
                last_scan = Instant::now();
                for i in 0..self.conns.len() {
                    let c = &self.conns[i];
                    if c.state == State::Connecting && c.started.elapsed() >= timeout {
                        connecting -= 1;
                        self.fail_connect(
                            i,
                            format!("connect to {addr}: no answer within {timeout:?}"),
                        );
                    }
                }
            }
        }
        self.out.connect_time = t0.elapsed();
    }

    /// Start one non-blocking connect.
    fn open(&mut self, addr: SocketAddr) -> io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let token = Token(self.conns.len());
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns.push(Conn {
            stream: Some(stream),
            state: State::Connecting,
            started: Instant::now(),
            counter: FrameCounter::new(self.wire),
            inflight: VecDeque::new(),
            unsent: 0,
            offset: 0,
            owed: 0,
            owed_k: 0,
        });
        Ok(())
    }

    /// After a writable event on a connecting socket: connected, still
    /// connecting (a spurious wake-up), or failed.
    fn check_connected(&mut self, i: usize, addr: SocketAddr) -> io::Result<bool> {
        let Some(stream) = self.conns[i].stream.as_ref() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(e),
        }
        // A connect to a local port nobody listens on can pick that very
        // port as its source and reach itself: that is no server.
        if stream.local_addr().ok() == Some(addr) {
            return Err(io::Error::other(
                "nothing listens there (connected to itself)",
            ));
        }
        stream.set_nodelay(true)?;
        self.conns[i].state = State::Open;
        self.out.connected += 1;
        self.progress.connected.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    fn fail_connect(&mut self, i: usize, e: String) {
        let c = &mut self.conns[i];
        c.state = State::Closed;
        c.stream = None;
        self.out.connect_failed += 1;
        self.out.note_error(e);
    }

    /// A connection ended during the run.
    fn drop_conn(&mut self, i: usize, why: String) {
        let c = &mut self.conns[i];
        if c.state != State::Open {
            return;
        }
        c.state = State::Closed;
        c.stream = None;
        self.inflight_total -= c.inflight.len();
        c.inflight.clear();
        c.unsent = 0;
        self.out.dropped += 1;
        self.progress.dropped.fetch_add(1, Ordering::Relaxed);
        self.out.note_error(why);
    }

    /// Wait for events up to `wait`, then handle them. epoll counts whole
    /// milliseconds: a longer wait polls for whole milliseconds, one fewer
    /// than asked (epoll rounds up, and must not wake us late); what is left
    /// below a millisecond is waited on the alarm, or without one by a
    /// non-blocking poll and a short nap.
    fn turn(&mut self, wait: Duration) {
        let alarm_set = wait < FINE_WAIT
            && !wait.is_zero()
            && self.alarm.as_ref().is_some_and(|a| a.set(wait).is_ok());
        let timeout = if alarm_set {
            // The alarm wakes us; this is only a backstop.
            FINE_WAIT
        } else if wait < FINE_WAIT {
            Duration::ZERO
        } else {
            Duration::from_millis((wait.as_millis() as u64).saturating_sub(1))
        };
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.out.note_error(format!("poll: {e}"));
                thread::sleep(NAP);
            }
            return;
        }
        if self.events.is_empty() {
            if timeout.is_zero() && !wait.is_zero() {
                thread::sleep(wait.min(NAP));
            }
            return;
        }
        // The events borrow the poll's buffer; copy them out (into a reused
        // vector) so the handlers may use the engine.
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(flags));
        for &(i, readable, writable) in &ready {
            self.on_event(i, readable, writable);
        }
        self.ready = ready;
        // One shared update per turn, not one per read.
        if self.unpublished > 0 {
            self.progress
                .replies
                .fetch_add(self.unpublished, Ordering::Relaxed);
            self.unpublished = 0;
        }
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        if self.conns.get(i).map(|c| c.state) != Some(State::Open) {
            return;
        }
        if readable {
            self.read(i);
        }
        if writable {
            self.flush(i);
        }
    }

    /// Read until the socket is drained, count the replies, send more.
    fn read(&mut self, i: usize) {
        loop {
            let Some(stream) = self.conns[i].stream.as_mut() else {
                return;
            };
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    let why = if self.conns[i].counter.is_idle() {
                        "the server closed a connection"
                    } else {
                        "the server closed a connection in the middle of a frame"
                    };
                    self.drop_conn(i, why.to_string());
                    return;
                }
                Ok(n) => {
                    let now = Instant::now();
                    match self.conns[i].counter.feed(&self.buf[..n]) {
                        Ok(frames) => self.on_replies(i, frames, now),
                        Err(e) => {
                            self.drop_conn(i, e.to_string());
                            return;
                        }
                    }
                    // A short read drained the socket: on epoll and kqueue
                    // the next read would only say "would block", and new
                    // bytes raise a new event. mio on Windows re-arms only
                    // after WouldBlock, so there we read until it.
                    if cfg!(unix) && n < self.buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_conn(i, format!("read: {e}"));
                    return;
                }
            }
        }
        self.flush(i);
    }

    fn on_replies(&mut self, i: usize, frames: u64, now: Instant) {
        if frames == 0 {
            return;
        }
        self.unpublished += frames;
        let in_window = now >= self.from && now < self.until;
        for _ in 0..frames {
            let Some(t) = self.conns[i].inflight.pop_front() else {
                self.out.unexpected += 1;
                continue;
            };
            self.inflight_total -= 1;
            self.last_reply = Some(now);
            if t >= self.from && t < self.until {
                self.out.answered += 1;
                self.out
                    .hist
                    .record(now.saturating_duration_since(t).as_nanos() as u64);
            }
            if in_window {
                self.out.replies_in_window += 1;
            }
        }
        match self.refill {
            Refill::None => {}
            Refill::Closed { pipeline } => {
                if now < self.until {
                    while self.conns[i].inflight.len() < pipeline {
                        self.enqueue(i, now);
                    }
                }
            }
            Refill::Open { .. } => self.send_owed(i),
        }
    }

    /// Queue one request whose latency counts from `t`.
    fn enqueue(&mut self, i: usize, t: Instant) {
        let c = &mut self.conns[i];
        c.inflight.push_back(t);
        c.unsent += self.req_len;
        self.inflight_total += 1;
        if t >= self.from && t < self.until {
            self.out.sent += 1;
        }
    }

    /// Open loop: queue owed requests while the pipeline has room.
    fn send_owed(&mut self, i: usize) {
        let Refill::Open {
            pipeline,
            start,
            interval,
            n,
        } = self.refill
        else {
            return;
        };
        while self.conns[i].owed > 0 && self.conns[i].inflight.len() < pipeline {
            let c = &mut self.conns[i];
            let Some(due) = due_at(start, interval, c.owed_k) else {
                return;
            };
            c.owed -= 1;
            c.owed_k += n;
            self.enqueue(i, due);
        }
    }

    /// Write what is queued, until done or the socket is full.
    fn flush(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.unsent == 0 {
                return;
            }
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            let len = c.unsent.min(self.batch.len() - c.offset);
            match stream.write(&self.batch[c.offset..c.offset + len]) {
                Ok(0) => {
                    self.drop_conn(i, "the socket accepted no bytes".to_string());
                    return;
                }
                Ok(n) => {
                    c.unsent -= n;
                    c.offset = (c.offset + n) % self.req_len;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_conn(i, format!("write: {e}"));
                    return;
                }
            }
        }
    }

    fn open_conns(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&i| self.conns[i].state == State::Open)
            .collect()
    }

    /// The load job; `per_conn` is the open-loop rate of one connection.
    fn load(
        &mut self,
        warmup: Duration,
        duration: Duration,
        pipeline: usize,
        per_conn: Option<f64>,
        drain: Duration,
    ) {
        let start = Instant::now();
        self.from = start + warmup;
        self.until = self.from + duration;
        let open = self.open_conns();
        let mut next_k = 0u64;
        match per_conn {
            Some(rate) if rate > 0.0 && !open.is_empty() => {
                let thread_rate = rate * open.len() as f64;
                self.refill = Refill::Open {
                    pipeline,
                    start,
                    interval: Duration::try_from_secs_f64(1.0 / thread_rate)
                        .unwrap_or(Duration::MAX),
                    n: open.len() as u64,
                };
            }
            _ => {
                self.refill = Refill::Closed { pipeline };
                for &i in &open {
                    for _ in 0..pipeline {
                        self.enqueue(i, start);
                    }
                    self.flush(i);
                }
            }
        }
        loop {
            let now = Instant::now();
            let mut wait = self.until.saturating_duration_since(now);
            if let Refill::Open {
                start, interval, n, ..
            } = self.refill
            {
                // Hand out every request due by now (and before the end),
                // even on the last turn, so each is either sent or `behind`.
                loop {
                    let due = due_at(start, interval, next_k).unwrap_or(self.until);
                    if due > now || due >= self.until {
                        wait = wait.min(due.saturating_duration_since(now));
                        break;
                    }
                    let i = open[(next_k % n) as usize];
                    let c = &mut self.conns[i];
                    if c.owed == 0 {
                        c.owed_k = next_k;
                    }
                    c.owed += 1;
                    next_k += 1;
                    if c.state == State::Open {
                        self.send_owed(i);
                        self.flush(i);
                    }
                }
            }
            if now >= self.until {
                break;
            }
            self.turn(wait);
        }
        // Collect the replies still in flight.
        let deadline = self.until + drain;
        while self.inflight_total > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.turn((deadline - now).min(TICK));
        }
        // Connections whose replies never came are dropped, as in `--blocking`.
        for i in 0..self.conns.len() {
            let missing = self.conns[i].inflight.len();
            if missing > 0 {
                self.drop_conn(
                    i,
                    format!("{missing} replies still missing {drain:?} after the end"),
                );
            }
        }
        self.out.behind = self.conns.iter().map(|c| c.owed).sum();
    }

    /// The hold job.
    fn hold(&mut self, idle: Duration, timeout: Duration) {
        let start = Instant::now();
        // Nothing is measured while idle; only closes and stray frames are seen.
        self.from = start + idle + Duration::from_secs(3600);
        self.until = self.from;
        let idle_until = start + idle;
        loop {
            let now = Instant::now();
            if now >= idle_until {
                break;
            }
            self.turn((idle_until - now).min(TICK));
        }
        let ping = Instant::now();
        self.from = ping;
        self.until = ping + timeout;
        // Each request is stamped when it is written, and replies are
        // collected between batches of writes, so the latencies are the
        // server's and not the time this thread takes to write them all.
        for (n, i) in self.open_conns().into_iter().enumerate() {
            self.enqueue(i, Instant::now());
            self.flush(i);
            if n % 64 == 63 {
                self.turn(Duration::ZERO);
            }
        }
        while self.inflight_total > 0 {
            let now = Instant::now();
            if now >= self.until {
                break;
            }
            self.turn((self.until - now).min(TICK));
        }
        if self.out.answered > 0 {
            self.out.answer_all = self.last_reply.map(|t| t.saturating_duration_since(ping));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_times() {
        let start = Instant::now();
        let step = Duration::from_millis(5);
        assert_eq!(due_at(start, step, 0), Some(start));
        assert_eq!(
            due_at(start, step, 3),
            Some(start + Duration::from_millis(15))
        );
        // Past what a Duration holds: never due, instead of a panic.
        assert_eq!(due_at(start, Duration::MAX, 2), None);
    }

    #[test]
    fn outcomes_add_up() {
        let mut a = Outcome {
            connected: 2,
            sent: 10,
            answered: 9,
            answer_all: Some(Duration::from_millis(5)),
            ..Outcome::default()
        };
        a.hist.record(1000);
        let mut b = Outcome {
            connected: 3,
            sent: 1,
            answered: 1,
            answer_all: Some(Duration::from_millis(7)),
            first_error: Some("reset".into()),
            ..Outcome::default()
        };
        b.hist.record(3000);
        a.merge(b);
        assert_eq!((a.connected, a.sent, a.answered), (5, 11, 10));
        assert_eq!(a.answer_all, Some(Duration::from_millis(7)));
        assert_eq!(a.first_error.as_deref(), Some("reset"));
        assert_eq!(a.hist.count(), 2);
        assert_eq!(a.hist.max(), 3000);
    }
}
