//! `load --blocking`: a thread per connection with a blocking socket, the
//! shape of most hand-written clients (and of `../shared/bench`'s `loadgen`).
//!
//! Each thread writes its requests (one `write` each), then reads until the
//! replies' frames end (one `read` per reply when replies come one at a
//! time, as through a buffered reader), stamps them, and sends the next.
//! The same [`Outcome`] as the readiness-loop engine comes out, so the
//! figures are reported the same way. The point of this shape is not speed:
//! it is to load a server the way a thread-per-client program does, and so
//! to check the tool's measurements against another tool of that shape.
//!
//! So the loop does per reply no more than such a program: a `read`, a
//! `write`, two clock reads. Its sockets have no read timeout (with one,
//! every `read` that blocks arms and cancels a kernel timer); instead a
//! [`Reaper`] thread shuts down the connections still open when the run's
//! last wait is over, which wakes their blocked reads. The shared progress
//! counter is added to once per [`TALLY_BATCH`] replies, not per reply.
//!
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Barrier, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::fleet::{Outcome, Plan, Progress};
use crate::wire::FrameCounter;

/// Bytes read per `read` call.
const READ_BUF: usize = 64 * 1024;

/// Replies counted locally before they are added to [`Progress::replies`].
pub const TALLY_BATCH: u64 = 64;

/// The measured phases, shared by every thread of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Replies are counted, and requests measured, from here...
    pub from: Instant,
    /// ... to here; no request is sent after it.
    pub until: Instant,
    /// How long to wait for the replies still in flight at `until`.
    pub drain: Duration,
    /// Requests in flight per connection.
    pub pipeline: usize,
}

/// One connection's thread: connect, meet the others at `barrier`, then
/// run closed-loop until the window ends. `window` is called after the
/// barrier, so every thread measures the same period.
pub fn run(
    index: usize,
    plan: &Plan,
    progress: &Progress,
    reaper: &Reaper,
    barrier: &Barrier,
    window: impl FnOnce() -> Window,
) -> Outcome {
    let mut out = Outcome::default();
    let began = Instant::now();
    let stream = TcpStream::connect_timeout(&plan.addr, plan.connect_timeout)
        .and_then(|s| s.set_nodelay(true).map(|()| s))
        .map(|s| {
            // One descriptor, shared with the reaper (which only shuts it
            // down); it closes when both are done with it.
            let s = Arc::new(s);
            reaper.register(index, &s);
            s
        })
        .map_err(|e| format!("connect to {}: {e}", plan.addr));
    out.connect_time = began.elapsed();
    match &stream {
        Ok(_) => {
            out.connected = 1;
            progress.connected.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            out.connect_failed = 1;
            out.first_error = Some(e.clone());
        }
    }
    // Every thread reaches the barrier exactly once, whatever happened.
    progress.ready.fetch_add(1, Ordering::Relaxed);
    barrier.wait();
    let w = window();
    if let Ok(stream) = stream {
        let mut tally = Tally {
            shared: &progress.replies,
            local: 0,
        };
        if let Err(e) = requests(plan, &mut tally, reaper, &w, stream, &mut out) {
            out.dropped = 1;
            progress.dropped.fetch_add(1, Ordering::Relaxed);
            out.note_error(e);
        }
    }
    reaper.release(index);
    out
}

/// Replies counted on one thread, added to the shared counter in batches
/// (a shared counter bumped by every thread on every reply is one more
/// contended cache line per message, which `loadgen` does not have).
struct Tally<'a> {
    shared: &'a AtomicU64,
    local: u64,
}

impl Tally<'_> {
    fn add(&mut self, n: u64) {
        self.local += n;
        if self.local >= TALLY_BATCH {
            self.shared.fetch_add(self.local, Ordering::Relaxed);
            self.local = 0;
        }
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.shared.fetch_add(self.local, Ordering::Relaxed);
    }
}

/// Ends the run for connections whose replies never come: at the deadline
/// it shuts down every socket still registered, which wakes a `read`
/// blocked on it. A thread registers its socket once connected and
/// releases it when it is done; [`Reaper::wait`] returns as soon as all
/// are released, or after shutting down the rest at the deadline.
pub struct Reaper {
    /// Each thread's socket, shared with it, by thread index; `None`
    /// once released (or never connected).
    slots: Mutex<Vec<Option<Arc<TcpStream>>>>,
    /// Threads not yet released.
    live: Mutex<usize>,
    changed: Condvar,
    /// Set before the sockets are shut down, so their threads can tell an
    /// end of the run from a server that closed.
    fired: AtomicBool,
}

impl Reaper {
    /// For `threads` threads, none registered yet.
    pub fn new(threads: usize) -> Reaper {
        Reaper {
            slots: Mutex::new((0..threads).map(|_| None).collect()),
            live: Mutex::new(threads),
            changed: Condvar::new(),
            fired: AtomicBool::new(false),
        }
    }

    fn register(&self, index: usize, stream: &Arc<TcpStream>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(index) {
            *slot = Some(stream.clone());
        }
    }

    fn release(&self, index: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(index) {
            *slot = None;
        }
        drop(slots);
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        *live = live.saturating_sub(1);
        self.changed.notify_all();
    }

    /// True once the deadline passed and the sockets were shut down.
    fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Wait until every thread released its socket or `deadline` passed;
    /// at the deadline, shut down the sockets still registered.
    pub fn wait(&self, deadline: Instant) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        while *live > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = self
                .changed
                .wait_timeout(live, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if *live == 0 {
            return;
        }
        drop(live);
        self.fired.store(true, Ordering::Release);
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for s in slots.iter().flatten() {
            // The thread may be closing it at the same moment: nothing to do then.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The closed loop on one connection; an error ends the connection early.
fn requests(
    plan: &Plan,
    tally: &mut Tally<'_>,
    reaper: &Reaper,
    w: &Window,
    stream: Arc<TcpStream>,
    out: &mut Outcome,
) -> Result<(), String> {
    // Reads and writes go through `&TcpStream`, which is `Read + Write`.
    let stream: &TcpStream = &stream;
    let mut reader = stream;
    let pipeline = w.pipeline.max(1);
    let missing = |inflight: usize| {
        format!(
            "{inflight} replies still missing {:?} after the end",
            w.drain
        )
    };
    let mut counter = FrameCounter::new(plan.wire);
    let mut buf = vec![0u8; READ_BUF];
    // Send times of the requests in flight, oldest first.
    let mut inflight = std::collections::VecDeque::with_capacity(pipeline);
    let send = |mut stream: &TcpStream,
                inflight: &mut std::collections::VecDeque<Instant>,
                out: &mut Outcome| {
        let t = Instant::now();
        stream.write_all(&plan.request).map_err(|e| {
            // A write blocked at the end (the server stopped reading) is
            // woken by the reaper's shutdown: say why the run ended it.
            if reaper.fired() {
                missing(inflight.len())
            } else {
                format!("write: {e}")
            }
        })?;
        if t >= w.from && t < w.until {
            out.sent += 1;
        }
        inflight.push_back(t);
        Ok::<(), String>(())
    };
    for _ in 0..pipeline {
        send(stream, &mut inflight, out)?;
    }
    while !inflight.is_empty() {
        let n = match reader.read(&mut buf) {
            Ok(0) if reaper.fired() => return Err(missing(inflight.len())),
            Ok(0) => {
                return Err(if counter.is_idle() {
                    "the server closed a connection".into()
                } else {
                    "the server closed a connection in the middle of a frame".into()
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if reaper.fired() => return Err(missing(inflight.len())),
            Err(e) => return Err(format!("read: {e}")),
        };
        let now = Instant::now();
        let frames = counter.feed(&buf[..n]).map_err(|e| e.to_string())?;
        tally.add(frames);
        for _ in 0..frames {
            let Some(t) = inflight.pop_front() else {
                out.unexpected += 1;
                continue;
            };
            if t >= w.from && t < w.until {
                out.answered += 1;
                out.hist
                    .record(now.saturating_duration_since(t).as_nanos() as u64);
            }
            if now >= w.from && now < w.until {
                out.replies_in_window += 1;
            }
            if now < w.until {
                send(stream, &mut inflight, out)?;
            }
        }
    }
    Ok(())
}
