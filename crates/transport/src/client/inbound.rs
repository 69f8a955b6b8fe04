//! Where a client's incoming frames go: to the caller who is waiting for
//! them, read on that caller's own thread.
//!
//! A client used for request and reply has one thread that wants the next
//! frame and nothing else to do. Handing the frame over from a listener
//! thread costs a wake-up of the caller per message, as much as the rest of
//! the round trip on one CPU. So there is no listener until someone asks for
//! the event channel ([`Client::events`](super::Client::events)): a thread
//! that wants a frame becomes the *reader* if no one else is reading, reads
//! the socket itself, keeps what it came for and leaves the rest where the
//! other callers look (a leader/follower hand-off). Callers that find a
//! reader already at work wait on a condition variable for what it brings.
//!
//! Once the event channel is asked for, a listener thread becomes the reader
//! for good and frames go through the channel, as `select!` needs them to.
//! Replies to requests with an id (see [`trama_protocol::envelope`]) never
//! go through the channel: the reader, whoever it is, files them under
//! their id and wakes their caller.
//!
//! Nothing reads the socket while no one waits, so a program that stops
//! reading pushes back on the server through TCP, and an idle client holds
//! no buffer: the bytes of one read land in a buffer on the reader's stack,
//! and only a frame cut across reads is kept, by the decoder.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use trama_protocol::envelope::{self, Kind};
use trama_protocol::{Decoder, DisconnectReason, FrameConfig};

use super::ClientEvent;
use crate::gate::Gate;
use crate::stream::Stream;
use crate::{Error, Result};

/// Bytes asked of the socket per read between frames: a few small replies.
/// On the reader's stack, so an idle client holds none; small, because the
/// stack buffer is zeroed on every read (64 KiB of zeroes cost a fifth of a
/// same-CPU round trip, measured with `examples/client_rtt.rs`).
const SMALL_READ: usize = 8 * 1024;
/// Bytes asked per read while a large frame is coming (and in the unframed
/// dialect, whose messages are single reads): into a heap buffer kept only
/// until the frame is complete.
const BULK_READ: usize = 64 * 1024;

/// What the connection has delivered and who is reading it.
pub(super) struct Inbound {
    state: Mutex<State>,
    /// Signalled whenever the state changes: a read ended, a reader left.
    turn: Condvar,
    /// The socket and the decoder: only the reader locks it.
    source: Mutex<Source>,
    /// Heartbeats on: empty frames are the server's, not messages.
    skip_empty: bool,
    /// Payloads carry the request envelope.
    envelope: bool,
}

#[derive(Default)]
struct State {
    /// Someone (a caller, or the listener for good) is reading the socket.
    reading: bool,
    /// Messages read and not yet taken, in order (before the listener starts).
    queue: VecDeque<Vec<u8>>,
    /// Ids of requests waiting for their reply.
    pending: HashSet<u64>,
    /// Replies read for those requests.
    replies: HashMap<u64, Vec<u8>>,
    /// Why the connection ended, once it has.
    ended: Option<DisconnectReason>,
    /// Set when the listener takes over: messages go to the event channel.
    listening: bool,
}

struct Source {
    stream: Stream,
    decoder: Decoder,
    /// The buffer for [`BULK_READ`]s, empty unless a large frame is coming.
    bulk: Vec<u8>,
    /// The read timeout last set on the socket (`SO_RCVTIMEO`), so a caller
    /// who always waits as long pays no system call to say so.
    #[cfg(unix)]
    socket_timeout: Option<Option<Duration>>,
}

/// What one read brought.
enum Step {
    Frames(Vec<Vec<u8>>),
    TimedOut,
    Ended(DisconnectReason),
}

/// Where a wait ends.
pub(super) enum Wanted<T> {
    Got(T),
    /// The listener took over while this caller waited: the message it
    /// wants now comes through the event channel.
    UseChannel,
}

impl Inbound {
    pub(super) fn new(
        stream: Stream,
        frame: FrameConfig,
        skip_empty: bool,
        envelope: bool,
    ) -> Self {
        Inbound {
            state: Mutex::new(State::default()),
            turn: Condvar::new(),
            source: Mutex::new(Source {
                stream,
                decoder: Decoder::new(frame),
                bulk: Vec::new(),
                #[cfg(unix)]
                socket_timeout: None,
            }),
            skip_empty,
            envelope,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next message (a push, in envelope mode), waiting at most
    /// `timeout`; `UseChannel` once the listener has taken over.
    pub(super) fn next_message(
        &self,
        gate: &Gate,
        timeout: Option<Duration>,
    ) -> Result<Wanted<Vec<u8>>> {
        self.wait(gate, timeout, |st| {
            if let Some(m) = st.queue.pop_front() {
                return Some(Ok(Wanted::Got(m)));
            }
            if st.listening {
                return Some(Ok(Wanted::UseChannel));
            }
            st.ended.as_ref().map(|r| Err(Error::Closed(r.to_string())))
        })
    }

    /// Note that a request with `id` is about to be sent, so its reply is
    /// kept when it comes.
    pub(super) fn expect_reply(&self, id: u64) {
        self.lock().pending.insert(id);
    }

    /// Stop waiting for the reply to `id` (sent or not).
    pub(super) fn forget_reply(&self, id: u64) {
        let mut st = self.lock();
        st.pending.remove(&id);
        st.replies.remove(&id);
    }

    /// The reply to request `id`, waiting at most `timeout`.
    pub(super) fn reply(&self, gate: &Gate, id: u64, timeout: Duration) -> Result<Vec<u8>> {
        let got = self.wait(gate, Some(timeout), |st| {
            if let Some(r) = st.replies.remove(&id) {
                st.pending.remove(&id);
                return Some(Ok(Wanted::Got(r)));
            }
            st.ended.as_ref().map(|r| Err(Error::Closed(r.to_string())))
        });
        match got {
            Ok(Wanted::Got(r)) => Ok(r),
            // `reply` never asks for the channel.
            Ok(Wanted::UseChannel) => Err(Error::Closed("connection already ended".into())),
            Err(e) => {
                self.forget_reply(id);
                Err(e)
            }
        }
    }

    /// Wait until `pick` finds what the caller wants in the state, reading
    /// the socket meanwhile if no one else is.
    fn wait<T>(
        &self,
        gate: &Gate,
        timeout: Option<Duration>,
        mut pick: impl FnMut(&mut State) -> Option<Result<Wanted<T>>>,
    ) -> Result<Wanted<T>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let timed_out = || Error::Timeout(timeout.unwrap_or_default());
        let mut st = self.lock();
        let mut first_read = true;
        loop {
            if let Some(answer) = pick(&mut st) {
                return answer;
            }
            if !st.reading {
                // The first read waits the whole timeout (the same value
                // call after call, so the socket is told once); a read after
                // it waits what is left.
                let wait = match (first_read, deadline) {
                    (true, _) | (_, None) => timeout,
                    (false, Some(d)) => match d.checked_duration_since(Instant::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => return Err(timed_out()),
                    },
                };
                first_read = false;
                st.reading = true;
                drop(st);
                let step = self.read_step(gate, wait, true);
                st = self.lock();
                st.reading = false;
                let out_of_time = matches!(step, Step::TimedOut);
                // Direct reading happens only before the listener starts,
                // so every message lands in the queue.
                let pushes = self.absorb(&mut st, gate, step);
                st.queue.extend(pushes);
                self.turn.notify_all();
                if out_of_time {
                    return match pick(&mut st) {
                        Some(answer) => answer,
                        None => Err(timed_out()),
                    };
                }
                continue;
            }
            // Someone else is reading: wait for what it brings.
            st = match deadline {
                None => self.turn.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => {
                        self.turn
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    _ => {
                        return match pick(&mut st) {
                            Some(answer) => answer,
                            None => Err(timed_out()),
                        }
                    }
                },
            };
        }
    }

    /// File what a read brought: replies under their id, the end of the
    /// connection in `ended`; the messages for `recv` are returned in order.
    fn absorb(&self, st: &mut State, gate: &Gate, step: Step) -> Vec<Vec<u8>> {
        let frames = match step {
            Step::Frames(frames) => frames,
            Step::TimedOut => return Vec::new(),
            Step::Ended(reason) => {
                st.ended.get_or_insert(reason);
                return Vec::new();
            }
        };
        let mut messages = Vec::with_capacity(frames.len());
        for frame in frames {
            if self.skip_empty && frame.is_empty() {
                continue;
            }
            if !self.envelope {
                messages.push(frame);
                continue;
            }
            match envelope::decode(&frame) {
                Ok(e) if e.kind == Kind::Push => messages.push(e.body.to_vec()),
                Ok(e) if e.kind == Kind::Reply => {
                    if st.pending.contains(&e.id) {
                        st.replies.insert(e.id, e.body.to_vec());
                    } else {
                        // Its caller gave up (timed out) before it came.
                        log::debug!("reply to request {} came after its caller left", e.id);
                    }
                }
                Ok(e) => {
                    self.end(
                        st,
                        gate,
                        format!(
                            "the server sent a request (id {}), which a client does not answer",
                            e.id
                        ),
                    );
                    break;
                }
                Err(e) => {
                    self.end(st, gate, e.to_string());
                    break;
                }
            }
        }
        messages
    }

    /// The server broke the envelope: the stream cannot be trusted further.
    fn end(&self, st: &mut State, gate: &Gate, why: String) {
        st.ended.get_or_insert(DisconnectReason::Protocol(why));
        gate.close(std::net::Shutdown::Both);
    }

    /// Read once (the reader only), waiting at most `wait`, and decode.
    /// `direct`: a caller's own read, which may bypass the gate.
    fn read_step(&self, gate: &Gate, wait: Option<Duration>, direct: bool) -> Step {
        let mut src = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let config = *src.decoder.config();
        let unframed = config.is_unframed();
        let want = if unframed {
            config.max_frame_len().clamp(1, BULK_READ)
        } else {
            BULK_READ
        };
        let mut small = [0u8; SMALL_READ];
        let mut bulk = std::mem::take(&mut src.bulk);
        let buf: &mut [u8] = if want > SMALL_READ && (unframed || !src.decoder.is_idle()) {
            if bulk.len() < want {
                bulk = vec![0; want];
            }
            &mut bulk[..want]
        } else {
            &mut small[..want.min(SMALL_READ)]
        };
        let n = loop {
            match src.read(gate, buf, wait, direct) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Step::TimedOut,
                Err(e) => return Step::Ended(DisconnectReason::Io(e.to_string())),
            }
        };
        if n == 0 {
            return Step::Ended(match src.decoder.finish() {
                Ok(()) => DisconnectReason::PeerClosed,
                Err(e) => DisconnectReason::Protocol(e.to_string()),
            });
        }
        let mut frames = Vec::new();
        let decoded = src.decoder.decode_owned(&buf[..n], |f| frames.push(f));
        if unframed || !src.decoder.is_idle() {
            src.bulk = bulk;
        }
        match decoded {
            Ok(()) => Step::Frames(frames),
            // Frames before the bad header are delivered; then the end.
            Err(e) if frames.is_empty() => Step::Ended(DisconnectReason::Protocol(e.to_string())),
            Err(e) => {
                let mut st = self.lock();
                st.ended = Some(DisconnectReason::Protocol(e.to_string()));
                Step::Frames(frames)
            }
        }
    }

    /// From now on messages go through the event channel: callers stop
    /// becoming the reader (the listener takes over once the current reader,
    /// if any, is done), so no caller can keep the listener waiting.
    pub(super) fn hand_over_to_listener(&self) {
        let mut st = self.lock();
        st.listening = true;
        self.turn.notify_all();
    }

    /// The listener thread's work: take over as the reader for good, send
    /// messages down `events`, and say how the connection ended.
    pub(super) fn listen(&self, gate: &Gate, events: Sender<ClientEvent>) {
        let backlog = {
            let mut st = self.lock();
            while st.reading {
                st = self.turn.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.reading = true;
            st.listening = true;
            std::mem::take(&mut st.queue)
        };
        for m in backlog {
            if events.send(ClientEvent::Message(m)).is_err() {
                return;
            }
        }
        loop {
            let ended = self.lock().ended.clone();
            if let Some(reason) = ended {
                let _ = events.send(ClientEvent::Closed(reason));
                return;
            }
            // Through the gate, so closing the client ends this read on every system.
            let step = self.read_step(gate, None, false);
            let messages = {
                let mut st = self.lock();
                let m = self.absorb(&mut st, gate, step);
                self.turn.notify_all();
                m
            };
            // Outside the lock: a full channel holds the listener here (so it
            // stops reading the socket) without holding the callers.
            for m in messages {
                if events.send(ClientEvent::Message(m)).is_err() {
                    return; // the client is gone
                }
            }
        }
    }
}

impl Source {
    /// One read from the socket, waiting at most `wait` (`None`: until
    /// there is something).
    fn read(
        &mut self,
        gate: &Gate,
        buf: &mut [u8],
        wait: Option<Duration>,
        direct: bool,
    ) -> io::Result<usize> {
        // Plain TCP on Unix: a blocking read with the socket's own timeout,
        // the same two system calls per round trip as a bare socket. The
        // gate is not needed to end this read: only a caller's thread reads
        // here, and the client cannot be closed while a caller borrows it
        // (Unix's shutdown would wake it anyway).
        #[cfg(unix)]
        if let (true, Some(mut tcp)) = (direct, self.stream.as_tcp()) {
            if self.socket_timeout != Some(wait) {
                tcp.set_read_timeout(wait)?;
                self.socket_timeout = Some(wait);
            }
            return tcp.read(buf);
        }
        // TLS, and Windows (where a read that timed out on SO_RCVTIMEO
        // leaves the socket in an undefined state): wait at the gate, which
        // carries the timeout, then read.
        #[cfg(not(unix))]
        let _ = direct;
        gate.set_timeout(wait);
        (&self.stream).read(buf)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
