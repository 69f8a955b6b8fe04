//! One server connection's rules, with no socket and no clock.
//!
//! The reactor owns the socket; a [`Conn`] owns everything else a
//! connection is: where it stands in its life ([`State`]), whether its input
//! is being read ([`Input`]), the frames it is decoding, the bytes queued for
//! it and its deadlines. The reactor tells it what the socket did (bytes
//! arrived, bytes were taken, the peer closed) and the time, and it answers
//! what to do next (what to watch the socket for, what to write, when to go
//! and why). Keeping the time an argument is what lets the tests below walk a
//! connection through minutes of deadlines without waiting for any of them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Interest;
use trama_protocol::auth::Handshake;
use trama_protocol::{ConnId, Decoder, DisconnectReason, FrameConfig};

use crate::ServerConfig;

/// Largest output buffer kept for reuse by the next connection that needs one.
const SPARE_MAX: usize = 256 * 1024;

/// Frames at least this long are written at once when nothing is queued
/// before them, instead of being copied into the queue first.
pub(crate) const WRITE_THROUGH: usize = 16 * 1024;

/// Queued bytes past which a connection's input is no longer read, until
/// the queue is down to half the limit (`max_outbound`): three quarters of
/// it, so a client that sends a batch and only then reads its replies is
/// paused no sooner than it was dropped before, and the last quarter is
/// room for the replies to one turn's reads (at most 8 x 64 KiB of input).
fn high_water(limit: usize) -> usize {
    (limit / 4 * 3).max(1)
}

/// The server's settings a connection's rules depend on, copied once per
/// I/O thread so that a connection holds none of them.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) idle: Option<Duration>,
    pub(crate) partial: Option<Duration>,
    pub(crate) heartbeat: Option<Duration>,
    /// How long a paused peer may take none of its replies; without it a
    /// connection is never paused (nothing would end a peer that never reads).
    pub(crate) stall: Option<Duration>,
    pub(crate) max_outbound: usize,
    pub(crate) linger: Duration,
}

impl Limits {
    pub(crate) fn of(config: &ServerConfig) -> Limits {
        Limits {
            idle: config.idle_timeout,
            partial: config.partial_frame_timeout,
            heartbeat: config.heartbeat,
            stall: config.stall_timeout(),
            max_outbound: config.max_outbound,
            linger: config.linger,
        }
    }
}

/// Where a connection stands in its life.
#[derive(Debug)]
pub(crate) enum State {
    /// The TLS and key handshakes are under way and must be over by `until`;
    /// the service does not know the connection yet.
    Setup {
        until: Option<Instant>,
        /// TLS is up (or there is none); only the key handshake is left.
        tls_up: bool,
        /// The key handshake, boxed so that an open connection holds nothing of it.
        auth: Option<Box<Handshake>>,
    },
    /// The service was told `Connected`: messages flow both ways.
    Open,
    /// Going: what is queued is still sent, until `deadline`, then the
    /// connection ends for `reason`. Nothing more is read or queued.
    Closing {
        reason: DisconnectReason,
        deadline: Instant,
        /// The service was told `Connected`, so it must hear `Disconnected`.
        announced: bool,
    },
    /// Gone: the reactor is to remove it (its reason is with the reactor).
    Doomed { announced: bool },
}

/// Whether a connection's input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    Reading,
    /// Replies are backing up (see [`high_water`]): reading stopped at
    /// `since`, or the socket last took bytes then. `waiting`: the peer has
    /// sent more that waits unread; only then is a peer that takes none of
    /// its replies dropped as stalled (one that merely reads slowly and
    /// sends nothing loses nothing by the pause).
    Paused {
        since: Instant,
        waiting: bool,
    },
}

/// What the reactor should do about a read it is about to make.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadGate {
    Read,
    /// Closing or gone: input no longer matters.
    Stop,
    /// Paused: the bytes wait (and the stall deadline runs, so the timers
    /// must be watched).
    Wait,
}

/// The answer to offering bytes for the queue.
#[derive(Debug, PartialEq)]
pub(crate) enum Offer {
    /// Take them; `write_through`: nothing is queued and they are large, so
    /// the reactor may try the socket directly before copying them.
    Take { write_through: bool },
    /// Closing or gone: the bytes are dropped.
    Refused,
    /// They would take the queue past the limit: the peer is too slow.
    TooSlow(DisconnectReason),
}

/// What a flush leaves the reactor to do.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Flushed {
    /// Watch the socket for this from now on (the queue just emptied, or
    /// just backed up).
    pub(crate) interest: Option<Interest>,
    /// Reading resumed: read now, as the readiness event for what waited
    /// meanwhile may have come and gone.
    pub(crate) read_again: bool,
    /// The queue is sent and the connection was closing: it ends now, for
    /// [`Conn::closing_reason`].
    pub(crate) close: bool,
}

/// What a timer check found.
#[derive(Debug, PartialEq)]
pub(crate) enum Due {
    Nothing,
    /// Send an empty frame: nothing went out for a heartbeat period.
    Heartbeat,
    /// A deadline passed.
    Close(DisconnectReason),
}

/// One connection's state, buffers and deadlines.
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    state: State,
    input: Input,
    decoder: Decoder,
    /// Bytes waiting to be written; `out[sent..]` is still to go.
    out: Vec<u8>,
    sent: usize,
    /// The socket is watched for writability (only while `out` is backed up).
    writable: bool,
    last_in: Instant,
    last_out: Instant,
    /// A frame is under way: since when (the partial-frame deadline).
    partial_since: Option<Instant>,
}

impl Conn {
    /// A connection accepted at `now`. Without a handshake it is [`State::Open`]
    /// at once, and the reactor is to tell the service; with one, it waits in
    /// [`State::Setup`] until `setup_until`.
    pub(crate) fn new(
        id: ConnId,
        peer: SocketAddr,
        frame: FrameConfig,
        now: Instant,
        setup: Option<(Option<Instant>, bool, Option<Box<Handshake>>)>,
    ) -> Conn {
        let state = match setup {
            None => State::Open,
            Some((until, tls_up, auth)) => State::Setup {
                until,
                tls_up,
                auth,
            },
        };
        Conn {
            id,
            peer,
            state,
            input: Input::Reading,
            decoder: Decoder::new(frame),
            out: Vec::new(),
            sent: 0,
            writable: false,
            last_in: now,
            last_out: now,
            partial_since: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    #[cfg(test)]
    pub(crate) fn input(&self) -> Input {
        self.input
    }

    /// Application messages may be sent to it (not during the handshakes).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Neither closing nor gone: its input still matters.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.state, State::Setup { .. } | State::Open)
    }

    pub(crate) fn is_doomed(&self) -> bool {
        matches!(self.state, State::Doomed { .. })
    }

    /// The service was told `Connected`, so it must be told `Disconnected`.
    pub(crate) fn announced(&self) -> bool {
        match self.state {
            State::Setup { .. } => false,
            State::Open => true,
            State::Closing { announced, .. } | State::Doomed { announced } => announced,
        }
    }

    /// Bytes queued and not yet taken by the socket.
    pub(crate) fn queued(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Bytes the decoder holds for an incomplete frame.
    pub(crate) fn held(&self) -> usize {
        self.decoder.buffered_capacity()
    }

    // ---- the life ---------------------------------------------------------

    /// The handshakes are over: the service is to be told `Connected`.
    pub(crate) fn announce(&mut self) {
        self.state = match std::mem::replace(&mut self.state, State::Open) {
            State::Setup { .. } | State::Open => State::Open,
            State::Closing {
                reason, deadline, ..
            } => State::Closing {
                reason,
                deadline,
                announced: true,
            },
            State::Doomed { .. } => State::Doomed { announced: true },
        };
    }

    /// TLS finished its handshake. True the first time only.
    pub(crate) fn tls_established(&mut self) -> bool {
        match &mut self.state {
            State::Setup { tls_up, .. } if !*tls_up => {
                *tls_up = true;
                true
            }
            _ => false,
        }
    }

    /// The key handshake, while it is under way.
    pub(crate) fn handshake(&mut self) -> Option<&mut Handshake> {
        match &mut self.state {
            State::Setup { auth, .. } => auth.as_deref_mut(),
            _ => None,
        }
    }

    /// The key handshake succeeded: it is dropped (and the reactor announces).
    pub(crate) fn authenticated(&mut self) {
        if let State::Setup { auth, .. } = &mut self.state {
            *auth = None;
        }
    }

    /// Go once the queue is sent, or at `now + linger`. Returns the reason
    /// when nothing is queued, so it ends at once; `None` when it is now
    /// closing, or was already closing or gone.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        reason: DisconnectReason,
        linger: Duration,
    ) -> Option<DisconnectReason> {
        if !self.is_live() {
            return None;
        }
        if self.queued() == 0 {
            return Some(reason);
        }
        let announced = self.announced();
        self.state = State::Closing {
            reason,
            deadline: now + linger,
            announced,
        };
        None
    }

    /// Why it is closing, if it is.
    pub(crate) fn closing_reason(&self) -> Option<DisconnectReason> {
        match &self.state {
            State::Closing { reason, .. } => Some(reason.clone()),
            _ => None,
        }
    }

    /// Mark it for removal. True if it was not already.
    pub(crate) fn doom(&mut self) -> bool {
        if self.is_doomed() {
            return false;
        }
        self.state = State::Doomed {
            announced: self.announced(),
        };
        true
    }

    // ---- input ------------------------------------------------------------

    /// May the socket be read now?
    pub(crate) fn may_read(&mut self) -> ReadGate {
        if !self.is_live() {
            return ReadGate::Stop;
        }
        match &mut self.input {
            Input::Reading => ReadGate::Read,
            Input::Paused { waiting, .. } => {
                *waiting = true;
                ReadGate::Wait
            }
        }
    }

    /// The key handshake took bytes at `now` (they count against idleness).
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_in = now;
    }

    /// Application bytes arrived at `now`: decode them, handing each whole
    /// frame to `on_frame`. Returns how many frames completed, and whether
    /// a frame deadline started that was not running (the reactor's timers
    /// must then be watched); an error is the peer breaking the format.
    pub(crate) fn received(
        &mut self,
        now: Instant,
        data: &[u8],
        mut on_frame: impl FnMut(&[u8]),
    ) -> (u64, bool, trama_protocol::Result<()>) {
        self.last_in = now;
        let mut frames = 0u64;
        let result = self.decoder.decode(data, |payload| {
            frames += 1;
            on_frame(payload);
        });
        let mut started = false;
        self.partial_since = match (self.decoder.is_idle(), self.partial_since) {
            (true, _) => None,
            // The frame that was pending is still pending.
            (false, Some(t)) if frames == 0 => Some(t),
            // A frame completed and the next one began in this read: its
            // deadline starts now, not when the stream's first partial began.
            (false, Some(_)) => Some(now),
            (false, None) => {
                started = true;
                Some(now)
            }
        };
        (frames, started, result)
    }

    /// The peer closed its side: why, given what was left undecoded.
    pub(crate) fn peer_closed(&self) -> DisconnectReason {
        match self.decoder.finish() {
            Ok(()) => DisconnectReason::PeerClosed,
            Err(e) => DisconnectReason::Protocol(e.to_string()),
        }
    }

    // ---- output -----------------------------------------------------------

    /// May `len` more bytes be queued, with `limit` the most it may hold?
    pub(crate) fn offer(&self, len: usize, limit: usize) -> Offer {
        if !self.is_live() {
            return Offer::Refused;
        }
        let queued = self.queued();
        if queued > 0 && queued + len > limit {
            return Offer::TooSlow(DisconnectReason::SlowReader {
                queued: queued + len,
                limit,
            });
        }
        Offer::Take {
            write_through: queued == 0 && len >= WRITE_THROUGH,
        }
    }

    /// The queue, to append to (taking `spare`'s buffer if it has none).
    pub(crate) fn queue(&mut self, spare: &mut Vec<u8>) -> &mut Vec<u8> {
        if self.out.capacity() == 0 {
            self.out = std::mem::take(spare);
        }
        &mut self.out
    }

    /// Bytes went to the socket (or the queue) at `now`.
    pub(crate) fn spoke(&mut self, now: Instant) {
        self.last_out = now;
    }

    /// Bytes were appended to the queue at `now`. True when this paused
    /// reading (the stall deadline must then be watched).
    pub(crate) fn queued_at(&mut self, now: Instant, limits: &Limits) -> bool {
        self.last_out = now;
        if self.input == Input::Reading
            && limits.stall.is_some()
            && self.queued() >= high_water(limits.max_outbound)
        {
            // Replies are backing up: stop reading the peer until it has
            // taken them, as a blocked writer would, instead of queueing on
            // until the limit drops it. (Without any deadline to end a peer
            // that then never reads, the queue grows to the limit as before.)
            self.input = Input::Paused {
                since: now,
                waiting: false,
            };
            return true;
        }
        false
    }

    /// What the socket is to be offered next (empty when all is sent).
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// The socket took `n` bytes at `now`.
    pub(crate) fn sent(&mut self, n: usize, now: Instant) {
        self.sent += n;
        if let Input::Paused { since, .. } = &mut self.input {
            *since = now;
        }
    }

    /// The socket took what it would (all of it, or until it would block) at
    /// `now`: tidy the queue, resume reading if it is down to half the limit,
    /// and say what to watch and whether the connection ends.
    pub(crate) fn flushed(
        &mut self,
        now: Instant,
        limits: &Limits,
        spare: &mut Vec<u8>,
    ) -> Flushed {
        let mut done = Flushed::default();
        if matches!(self.input, Input::Paused { .. }) && self.queued() <= limits.max_outbound / 2 {
            // Caught up. The wait was ours, so a frame in progress gets
            // its full deadline again.
            self.input = Input::Reading;
            if self.partial_since.is_some() {
                self.partial_since = Some(now);
            }
            done.read_again = true;
        }
        let drained = self.sent == self.out.len();
        if drained {
            self.sent = 0;
            self.out.clear();
            // An idle connection keeps no buffer: hand it to the next one.
            let buf = std::mem::take(&mut self.out);
            if spare.capacity() == 0 && buf.capacity() <= SPARE_MAX {
                *spare = buf;
            }
        } else if self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        if drained == self.writable {
            // Watch for writability only while bytes are backed up.
            self.writable = !drained;
            done.interest = Some(if drained {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            });
        }
        // The queue is sent: a closing connection ends now (the reactor
        // dooms it once the interest change is made).
        done.close = drained && matches!(self.state, State::Closing { .. });
        done
    }

    // ---- time -------------------------------------------------------------

    /// Check the deadlines at `now`. Also returns whether this connection
    /// needs the timers watched beyond the configured idle and heartbeat
    /// periods (a handshake, a frame or a close under way, or a stall).
    pub(crate) fn check(&self, now: Instant, limits: &Limits) -> (bool, Due) {
        let millis = |d: Duration| d.as_millis() as u64;
        match &self.state {
            State::Doomed { .. } => return (false, Due::Nothing),
            State::Closing {
                reason, deadline, ..
            } => {
                let due = if now >= *deadline {
                    Due::Close(reason.clone())
                } else {
                    Due::Nothing
                };
                return (true, due);
            }
            State::Setup {
                until: Some(until),
                tls_up,
                ..
            } => {
                if now < *until {
                    return (true, Due::Nothing);
                }
                let what = if !*tls_up {
                    "TLS handshake"
                } else {
                    "key handshake"
                };
                return (
                    true,
                    Due::Close(DisconnectReason::Protocol(format!(
                        "{what} not finished in time"
                    ))),
                );
            }
            State::Setup { until: None, .. } | State::Open => {}
        }
        if let Input::Paused {
            since,
            waiting: true,
        } = self.input
        {
            // Its input waits on us: the frame and idle deadlines wait
            // too; the peer must take some of its replies within the
            // frame deadline (or the idle timeout, without one).
            if let Some(limit) = limits.stall.filter(|&l| now.duration_since(since) >= l) {
                return (
                    true,
                    Due::Close(DisconnectReason::Stalled {
                        queued: self.queued(),
                        millis: millis(limit),
                    }),
                );
            }
            return (true, Due::Nothing);
        }
        let mut watch = false;
        if let (Some(since), Some(limit)) = (self.partial_since, limits.partial) {
            watch = true;
            if now.duration_since(since) >= limit {
                return (
                    true,
                    Due::Close(DisconnectReason::PartialFrameTimeout {
                        millis: millis(limit),
                    }),
                );
            }
        }
        if let Some(limit) = limits.idle {
            if now.duration_since(self.last_in) >= limit {
                return (
                    watch,
                    Due::Close(DisconnectReason::IdleTimeout {
                        millis: millis(limit),
                    }),
                );
            }
        }
        if let Some(every) = limits.heartbeat {
            if now.duration_since(self.last_out) >= every {
                return (watch, Due::Heartbeat);
            }
        }
        (watch, Due::Nothing)
    }
}

/// Incomplete frames hold `total` bytes, more than `budget`: which of
/// `holders` (bytes held, connection) to drop, largest first, until the
/// total is back under it or nobody holds anything more.
pub(crate) fn shed(
    holders: impl Iterator<Item = (usize, ConnId)>,
    mut total: usize,
    budget: usize,
) -> Vec<(ConnId, DisconnectReason)> {
    let mut holders: Vec<(usize, ConnId)> = holders.filter(|&(held, _)| held > 0).collect();
    // Largest last, ties to the higher id (as a max over (held, id) would).
    holders.sort_unstable();
    let mut dropped = Vec::new();
    while total > budget {
        let Some((held, id)) = holders.pop() else {
            break;
        };
        dropped.push((
            id,
            DisconnectReason::OverBudget {
                held,
                total,
                budget,
            },
        ));
        // Given back when the connection is removed.
        total = total.saturating_sub(held);
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn limits() -> Limits {
        Limits {
            idle: None,
            partial: None,
            heartbeat: None,
            stall: None,
            max_outbound: 1000,
            linger: SEC,
        }
    }

    fn open(now: Instant) -> Conn {
        let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
        Conn::new(ConnId(7), peer, FrameConfig::default(), now, None)
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FrameConfig::default().encode(payload, &mut out).unwrap();
        out
    }

    /// Decode `data` at `now`, returning the payloads and whether a frame
    /// deadline started.
    fn feed(conn: &mut Conn, now: Instant, data: &[u8]) -> (Vec<Vec<u8>>, bool) {
        let mut got = Vec::new();
        let (frames, started, result) = conn.received(now, data, |p| got.push(p.to_vec()));
        result.unwrap();
        assert_eq!(frames as usize, got.len());
        (got, started)
    }

    /// Queue `n` bytes at `now` as the reactor does; true if reading paused.
    fn push(conn: &mut Conn, now: Instant, n: usize, limits: &Limits) -> bool {
        assert!(matches!(
            conn.offer(n, limits.max_outbound),
            Offer::Take { .. }
        ));
        conn.queue(&mut Vec::new())
            .extend(std::iter::repeat_n(b'x', n));
        conn.queued_at(now, limits)
    }

    #[test]
    fn a_frame_split_over_reads_arrives_whole_and_its_deadline_runs_from_the_first_byte() {
        let t0 = Instant::now();
        let limits = Limits {
            partial: Some(SEC),
            ..limits()
        };
        let mut conn = open(t0);
        let wire = [frame(b"hola"), frame(b"adios")].concat();

        // Two header bytes: nothing whole yet, the frame deadline starts.
        assert_eq!(feed(&mut conn, t0, &wire[..2]), (vec![], true));
        // More of it later: still the same deadline.
        assert_eq!(feed(&mut conn, t0 + SEC / 2, &wire[2..6]), (vec![], false));
        assert_eq!(conn.check(t0 + SEC / 2, &limits), (true, Due::Nothing));
        // The first frame ends and the second begins in one read: the
        // second's deadline starts at this read.
        let (got, _) = feed(&mut conn, t0 + SEC * 9 / 10, &wire[6..10]);
        assert_eq!(got, [b"hola".to_vec()]);
        assert_eq!(conn.check(t0 + SEC * 3 / 2, &limits), (true, Due::Nothing));
        assert_eq!(
            conn.check(t0 + SEC * 19 / 10, &limits),
            (
                true,
                Due::Close(DisconnectReason::PartialFrameTimeout { millis: 1000 })
            )
        );
        // The rest completes it, and no deadline is left.
        let (got, _) = feed(&mut conn, t0 + SEC, &wire[10..]);
        assert_eq!(got, [b"adios".to_vec()]);
        assert_eq!(conn.check(t0 + SEC * 60, &limits), (false, Due::Nothing));
        assert_eq!(conn.peer_closed(), DisconnectReason::PeerClosed);
    }

    #[test]
    fn the_peer_breaking_the_format_or_closing_mid_frame_is_a_protocol_error() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let half = &frame(b"cut short")[..6];
        feed(&mut conn, t0, half);
        assert!(matches!(conn.peer_closed(), DisconnectReason::Protocol(_)));

        let mut conn = open(t0);
        // A header announcing 4 GiB, past the 16 MiB limit.
        let (frames, _, result) = conn.received(t0, &[0xff, 0xff, 0xff, 0xff], |_| {});
        assert_eq!(frames, 0);
        let e = result.unwrap_err().to_string();
        assert!(e.contains("16777216"), "{e}");
    }

    #[test]
    fn idleness_and_heartbeats_follow_the_time_given() {
        let t0 = Instant::now();
        let limits = Limits {
            idle: Some(SEC * 5),
            heartbeat: Some(SEC * 2),
            ..limits()
        };
        let mut conn = open(t0);
        assert_eq!(conn.check(t0 + SEC, &limits), (false, Due::Nothing));
        assert_eq!(conn.check(t0 + SEC * 2, &limits), (false, Due::Heartbeat));
        conn.spoke(t0 + SEC * 2);
        assert_eq!(conn.check(t0 + SEC * 3, &limits), (false, Due::Nothing));
        // Hearing from the peer puts the idle deadline off, even an empty
        // frame (its heartbeat, which the service never sees).
        let (got, _) = feed(&mut conn, t0 + SEC * 4, &frame(b""));
        assert_eq!(got, [Vec::<u8>::new()]);
        conn.spoke(t0 + SEC * 8);
        assert_eq!(conn.check(t0 + SEC * 8, &limits), (false, Due::Nothing));
        assert_eq!(
            conn.check(t0 + SEC * 9, &limits),
            (
                false,
                Due::Close(DisconnectReason::IdleTimeout { millis: 5000 })
            )
        );
    }

    #[test]
    fn replies_backing_up_pause_reading_until_half_are_taken() {
        let t0 = Instant::now();
        let limits = Limits {
            stall: Some(SEC),
            max_outbound: 1000,
            ..limits()
        };
        let mut conn = open(t0);
        assert!(!push(&mut conn, t0, 700, &limits));
        assert_eq!(conn.may_read(), ReadGate::Read);
        // Past three quarters of the limit: reading stops.
        assert!(push(&mut conn, t0, 100, &limits));
        assert_eq!(
            conn.input(),
            Input::Paused {
                since: t0,
                waiting: false
            }
        );
        // A peer that sends nothing more is not stalled, however long it takes.
        assert_eq!(conn.check(t0 + SEC * 10, &limits), (false, Due::Nothing));
        // One that sends more is, if it takes none of its replies in time.
        assert_eq!(conn.may_read(), ReadGate::Wait);
        assert_eq!(conn.check(t0 + SEC / 2, &limits), (true, Due::Nothing));
        assert_eq!(
            conn.check(t0 + SEC, &limits),
            (
                true,
                Due::Close(DisconnectReason::Stalled {
                    queued: 800,
                    millis: 1000
                })
            )
        );

        // The socket takes some at t0 + 0.9 s: the stall clock restarts, and
        // with 600 still queued (over half the limit) reading stays paused.
        let mut spare = Vec::new();
        let t1 = t0 + SEC * 9 / 10;
        conn.sent(200, t1);
        let done = conn.flushed(t1, &limits, &mut spare);
        assert!(!done.read_again);
        assert_eq!(done.interest, Some(Interest::READABLE | Interest::WRITABLE));
        assert_eq!(conn.check(t0 + SEC * 3 / 2, &limits), (true, Due::Nothing));
        // Down to half: reading resumes, and is to start at once.
        conn.sent(100, t1);
        let done = conn.flushed(t1, &limits, &mut spare);
        assert_eq!(
            done,
            Flushed {
                interest: None,
                read_again: true,
                close: false
            }
        );
        assert_eq!(conn.may_read(), ReadGate::Read);
        assert_eq!(conn.unsent().len(), 500);
        // All sent: stop watching for writability, keep no buffer.
        conn.sent(500, t1);
        let done = conn.flushed(t1, &limits, &mut spare);
        assert_eq!(done.interest, Some(Interest::READABLE));
        assert_eq!(conn.queued(), 0);
        assert!(spare.capacity() > 0);
    }

    #[test]
    fn without_a_stall_deadline_the_queue_grows_to_the_limit_and_then_drops_the_peer() {
        let t0 = Instant::now();
        let limits = limits();
        let mut conn = open(t0);
        assert!(!push(&mut conn, t0, 900, &limits));
        assert_eq!(conn.may_read(), ReadGate::Read);
        assert_eq!(
            conn.offer(101, 1000),
            Offer::TooSlow(DisconnectReason::SlowReader {
                queued: 1001,
                limit: 1000
            })
        );
        // With nothing queued, even a frame over the limit is taken (and
        // offered to the socket directly, being large).
        let empty = open(t0);
        assert_eq!(
            empty.offer(WRITE_THROUGH, 1000),
            Offer::Take {
                write_through: true
            }
        );
        assert_eq!(
            empty.offer(10, 1000),
            Offer::Take {
                write_through: false
            }
        );
    }

    #[test]
    fn a_close_with_output_pending_sends_it_first_then_ends() {
        let t0 = Instant::now();
        let limits = limits();
        let bye = DisconnectReason::Closed("bye".into());
        let mut conn = open(t0);
        push(&mut conn, t0, 10, &limits);
        assert_eq!(conn.close(t0, bye.clone(), limits.linger), None);
        assert!(matches!(conn.state(), State::Closing { .. }));
        assert!(conn.announced());
        // Nothing more is read or queued, and a second close changes nothing.
        assert_eq!(conn.may_read(), ReadGate::Stop);
        assert_eq!(conn.offer(1, 1000), Offer::Refused);
        assert_eq!(conn.close(t0, DisconnectReason::PeerClosed, SEC), None);
        // Half sent: not yet.
        let mut spare = Vec::new();
        conn.sent(5, t0);
        assert!(!conn.flushed(t0, &limits, &mut spare).close);
        assert_eq!(conn.check(t0 + SEC / 2, &limits), (true, Due::Nothing));
        // All sent: it ends, for the reason given.
        conn.sent(5, t0);
        assert!(conn.flushed(t0, &limits, &mut spare).close);
        assert_eq!(conn.closing_reason(), Some(bye.clone()));
        assert!(conn.doom());
        assert!(!conn.doom());
        assert_eq!(conn.check(t0 + SEC * 9, &limits), (false, Due::Nothing));
        assert!(conn.announced());

        // A peer that never takes the rest is ended at the linger deadline.
        let mut stuck = open(t0);
        push(&mut stuck, t0, 10, &limits);
        stuck.close(t0, bye.clone(), limits.linger);
        assert_eq!(
            stuck.check(t0 + SEC, &limits),
            (true, Due::Close(bye.clone()))
        );
        // With nothing queued, a close is immediate.
        assert_eq!(open(t0).close(t0, bye.clone(), SEC), Some(bye));
    }

    #[test]
    fn handshakes_must_finish_by_the_setup_deadline() {
        let t0 = Instant::now();
        let limits = Limits {
            idle: Some(SEC / 10),
            ..limits()
        };
        let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
        let mut conn = Conn::new(
            ConnId(1),
            peer,
            FrameConfig::default(),
            t0,
            Some((Some(t0 + SEC), false, None)),
        );
        assert!(!conn.is_open() && !conn.announced());
        // The setup deadline replaces the idle one.
        assert_eq!(conn.check(t0 + SEC / 2, &limits), (true, Due::Nothing));
        let late = |what: &str| {
            Due::Close(DisconnectReason::Protocol(format!(
                "{what} not finished in time"
            )))
        };
        assert_eq!(conn.check(t0 + SEC, &limits), (true, late("TLS handshake")));
        assert!(conn.tls_established());
        assert!(!conn.tls_established());
        assert_eq!(conn.check(t0 + SEC, &limits), (true, late("key handshake")));
        conn.announce();
        assert!(conn.is_open() && conn.announced());
        assert!(matches!(conn.state(), State::Open));
    }

    #[test]
    fn over_budget_drops_the_largest_holders_until_under_it() {
        let ids = |dropped: Vec<(ConnId, DisconnectReason)>| -> Vec<u64> {
            dropped.into_iter().map(|(id, _)| id.0).collect()
        };
        let holders = [
            (10, ConnId(1)),
            (50, ConnId(2)),
            (0, ConnId(3)),
            (30, ConnId(4)),
        ];
        let dropped = shed(holders.into_iter(), 90, 40);
        assert_eq!(
            dropped,
            [(
                ConnId(2),
                DisconnectReason::OverBudget {
                    held: 50,
                    total: 90,
                    budget: 40
                }
            )]
        );
        assert_eq!(ids(shed(holders.into_iter(), 90, 5)), [2, 4, 1]);
        assert_eq!(ids(shed(holders.into_iter(), 90, 90)), Vec::<u64>::new());
    }
}
