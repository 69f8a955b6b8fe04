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

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::fleet::{Outcome, Plan, Progress};
use crate::wire::FrameCounter;

/// Bytes read per `read` call.
const READ_BUF: usize = 64 * 1024;

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
    plan: &Plan,
    progress: &Progress,
    barrier: &Barrier,
    window: impl FnOnce() -> Window,
) -> Outcome {
    let mut out = Outcome::default();
    let began = Instant::now();
    let stream = TcpStream::connect_timeout(&plan.addr, plan.connect_timeout)
        .and_then(|s| s.set_nodelay(true).map(|()| s));
    out.connect_time = began.elapsed();
    match &stream {
        Ok(_) => {
            out.connected = 1;
            progress.connected.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            out.connect_failed = 1;
            out.first_error = Some(format!("connect to {}: {e}", plan.addr));
        }
    }
    // Every thread reaches the barrier exactly once, whatever happened.
    progress.ready.fetch_add(1, Ordering::Relaxed);
    barrier.wait();
    let w = window();
    if let Ok(stream) = stream {
        if let Err(e) = requests(plan, progress, &w, stream, &mut out) {
            out.dropped = 1;
            progress.dropped.fetch_add(1, Ordering::Relaxed);
            out.note_error(e);
        }
    }
    out
}

/// The closed loop on one connection; an error ends the connection early.
fn requests(
    plan: &Plan,
    progress: &Progress,
    w: &Window,
    mut stream: TcpStream,
    out: &mut Outcome,
) -> Result<(), String> {
    let pipeline = w.pipeline.max(1);
    // Reads wake now and then so a server that stops answering ends the
    // run at `until + drain` instead of holding the thread.
    stream
        .set_read_timeout(Some(
            w.drain
                .clamp(Duration::from_millis(10), Duration::from_millis(100)),
        ))
        .map_err(|e| format!("set a read timeout: {e}"))?;
    let mut counter = FrameCounter::new(plan.wire);
    let mut buf = vec![0u8; READ_BUF];
    // Send times of the requests in flight, oldest first.
    let mut inflight = std::collections::VecDeque::with_capacity(pipeline);
    let send = |stream: &mut TcpStream,
                inflight: &mut std::collections::VecDeque<Instant>,
                out: &mut Outcome| {
        let t = Instant::now();
        stream
            .write_all(&plan.request)
            .map_err(|e| format!("write: {e}"))?;
        if t >= w.from && t < w.until {
            out.sent += 1;
        }
        inflight.push_back(t);
        Ok::<(), String>(())
    };
    for _ in 0..pipeline {
        send(&mut stream, &mut inflight, out)?;
    }
    while !inflight.is_empty() {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                return Err(if counter.is_idle() {
                    "the server closed a connection".into()
                } else {
                    "the server closed a connection in the middle of a frame".into()
                })
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= w.until + w.drain {
                    return Err(format!(
                        "{} replies still missing {:?} after the end",
                        inflight.len(),
                        w.drain
                    ));
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        let now = Instant::now();
        let frames = counter.feed(&buf[..n]).map_err(|e| e.to_string())?;
        progress.replies.fetch_add(frames, Ordering::Relaxed);
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
                send(&mut stream, &mut inflight, out)?;
            }
        }
    }
    Ok(())
}
