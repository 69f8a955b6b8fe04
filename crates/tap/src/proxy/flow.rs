//! One direction of a proxied connection as a state with no I/O.
//!
//! The pump thread reads, writes and sleeps; everything it decides (what a
//! chunk becomes, when a stall starts, how the direction ended and what that
//! does to the sockets, how large the next read may be, whether the idle
//! timeout passed) is decided here, from the bytes and the time it is handed,
//! so each rule is tested without a socket and without waiting.

use std::time::Duration;

use super::{End, ProxyConfig};
use crate::fault::{FaultSchedule, Step};
use crate::{Direction, Note, Observer};

/// What the pump does with the chunk it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forward {
    /// Write it as it is.
    Whole,
    /// Carry out [`Flow::steps`] over it, in order.
    Steps,
    /// Nothing: the direction is stalled (it reads on, to see the sender leave).
    Hold,
}

/// What a direction's end does to the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// Pass the sender's end on (shut the receiver's write side); the other
    /// direction may go on.
    PassEnd,
    /// End the whole connection, with a reset (`true`) or an orderly end.
    Connection { reset: bool },
    /// Nothing: someone else already ended it.
    Nothing,
}

/// The state of one direction: its observer, its fault schedule, whether it
/// is stalled, and the bytes it carried.
#[derive(Debug)]
pub(super) struct Flow {
    observer: Option<Observer>,
    schedule: Option<FaultSchedule>,
    stalled: bool,
    bytes: u64,
    notes: Vec<Note>,
    steps: Vec<Step>,
}

impl Flow {
    /// Direction `dir` of connection `id` under `config`. A schedule that
    /// changes nothing is left out, so the chunk is written whole.
    pub(super) fn new(dir: Direction, id: u64, config: &ProxyConfig) -> Flow {
        let seed = config
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(id * 2 + dir as u64);
        Flow {
            observer: config
                .observe
                .then(|| Observer::new(config.frame, config.show)),
            // Checked in `Proxy::bind`; an error cannot come here.
            schedule: FaultSchedule::new(config.faults.faults(dir), config.frame, seed)
                .ok()
                .filter(|s| !s.is_passthrough()),
            stalled: false,
            bytes: 0,
            notes: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// True when nothing looks at or changes the bytes: they may move
    /// without passing through the process at all.
    // Only Linux has a way to move them so (splice).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) fn is_transparent(&self) -> bool {
        self.observer.is_none() && self.schedule.is_none()
    }

    /// True when a fault schedule shapes the bytes.
    pub(super) fn has_faults(&self) -> bool {
        self.schedule.is_some()
    }

    /// `bytes` more moved without passing through the process (spliced).
    #[cfg(target_os = "linux")]
    pub(super) fn spliced(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// Bytes read from the sender so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Take `chunk`, the next bytes read: what the observer saw is in
    /// [`notes`](Flow::notes), and the answer says what to write.
    pub(super) fn read(&mut self, chunk: &[u8]) -> Forward {
        self.bytes += chunk.len() as u64;
        self.notes.clear();
        if let Some(obs) = self.observer.as_mut() {
            obs.feed(chunk, &mut self.notes);
        }
        if self.stalled {
            return Forward::Hold;
        }
        let Some(schedule) = self.schedule.as_mut() else {
            return Forward::Whole;
        };
        self.steps.clear();
        schedule.push(chunk, &mut self.steps);
        Forward::Steps
    }

    /// What the observer reported for the last chunk.
    pub(super) fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The steps for the last chunk, when [`read`](Flow::read) said [`Forward::Steps`].
    pub(super) fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The steps ended with `step` (a stall, close or reset): the end it
    /// means, or `None` for a stall, after which chunks are held.
    pub(super) fn stopped_by(&mut self, step: &Step) -> Option<End> {
        match step {
            Step::Close => Some(End::Closed),
            Step::Reset => Some(End::Reset),
            _ => {
                self.stalled = true;
                None
            }
        }
    }

    /// The stream ended: a note if it ended inside a frame.
    pub(super) fn finish(&self) -> Option<Note> {
        self.observer.as_ref().and_then(|o| o.finish())
    }
}

/// How a direction that ended with `end` is reported, and what it does to
/// the sockets. `over`: the connection was already ended (by the other
/// direction, or the proxy stopped), so an end of stream or a failure here
/// is only its echo. `reset_seen`: the sender reset the connection.
pub(super) fn ending(end: End, over: bool, reset_seen: bool) -> (End, Closing) {
    let end = match end {
        End::Eof | End::Error(_) if over => End::Stopped,
        other => other,
    };
    let closing = match &end {
        End::Eof => Closing::PassEnd,
        End::Closed => Closing::Connection { reset: false },
        End::Reset => Closing::Connection { reset: true },
        // A failure on either socket ends the connection both ways; a reset
        // from one peer is passed on as a reset to the other.
        End::Error(_) => Closing::Connection { reset: reset_seen },
        End::Stopped => Closing::Nothing,
    };
    (end, closing)
}

/// A read woke without bytes at `now` (since the connection began), the
/// last byte either way having moved at `last`: the end, if the connection
/// is over or the proxy stopped (`over`), or the idle timeout passed.
pub(super) fn idle_end(
    over: bool,
    idle_timeout: Option<Duration>,
    now: Duration,
    last: Duration,
) -> Option<End> {
    if over {
        return Some(End::Stopped);
    }
    let limit = idle_timeout?;
    (now.saturating_sub(last) >= limit).then(|| End::Error(format!("idle for {limit:?}")))
}

/// How large a direction's reads are: a first size, doubled each time a
/// read fills the buffer (more is coming than one read holds) up to `most`,
/// and back to the first size after a small read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizing {
    first: usize,
    most: usize,
    filled: bool,
}

impl Sizing {
    /// Reads start at `first` (at most `buffer`) and grow to `buffer`; a
    /// direction with faults keeps its first size, since its delays and
    /// bandwidth limits work on what one read brings.
    pub(super) fn new(first: usize, buffer: usize, faults: bool) -> Sizing {
        let first = first.min(buffer.max(1));
        Sizing {
            first,
            most: if faults { first } else { buffer.max(1) },
            filled: false,
        }
    }

    /// The first size.
    pub(super) fn first(&self) -> usize {
        self.first
    }

    /// Before a read into a buffer of `len` bytes: the size to grow it to.
    pub(super) fn grow(&self, len: usize) -> Option<usize> {
        (self.filled && len < self.most).then(|| (len * 2).min(self.most))
    }

    /// After a read of `n` bytes into a buffer of `len`: true when the
    /// buffer should go back to the first size (small messages again).
    pub(super) fn read(&mut self, n: usize, len: usize) -> bool {
        self.filled = n == len;
        len > self.first && n <= self.first / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::FrameConfig;

    /// A proxy's settings with `faults` (none if empty) on `frame`.
    fn config(faults: &str, frame: FrameConfig) -> ProxyConfig {
        let mut c = ProxyConfig::new("127.0.0.1:0", "127.0.0.1:1");
        c.frame = frame;
        if !faults.is_empty() {
            c.faults = faults.parse().unwrap();
        }
        c
    }

    const C2S: Direction = Direction::ClientToServer;

    #[test]
    fn without_faults_a_chunk_is_written_whole_and_its_frames_noted() {
        let mut flow = Flow::new(C2S, 1, &config("", FrameConfig::default()));
        assert!(!flow.is_transparent());
        assert_eq!(flow.read(b"\x00\x00\x00\x02hi\x00"), Forward::Whole);
        assert_eq!(flow.notes().len(), 1);
        assert_eq!(flow.read(b"\x00"), Forward::Whole);
        assert!(flow.notes().is_empty());
        assert_eq!(flow.bytes(), 8);
        match flow.finish() {
            Some(Note::Truncated { in_header, got, .. }) => assert_eq!((in_header, got), (true, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unobserved_and_unfaulted_is_transparent() {
        let mut c = config("", FrameConfig::default());
        c.observe = false;
        let mut flow = Flow::new(C2S, 1, &c);
        assert!(flow.is_transparent());
        assert_eq!(flow.read(b"anything"), Forward::Whole);
        assert!(flow.notes().is_empty());
    }

    #[test]
    fn a_stall_holds_every_later_chunk_but_still_observes_it() {
        let mut flow = Flow::new(C2S, 1, &config("c2s:stall=2", FrameConfig::default()));
        assert!(flow.has_faults());
        assert_eq!(flow.read(b"\x00\x00\x00\x01a"), Forward::Steps);
        let last = flow.steps().last().cloned();
        assert_eq!(last, Some(Step::Stall));
        assert_eq!(flow.stopped_by(&Step::Stall), None);
        assert_eq!(flow.read(b"\x00\x00\x00\x01b"), Forward::Hold);
        // The observer saw both frames although none was forwarded after the stall.
        assert_eq!(flow.notes().len(), 1);
        assert_eq!(flow.bytes(), 10);
    }

    #[test]
    fn close_and_reset_steps_end_the_direction() {
        let mut flow = Flow::new(C2S, 1, &config("c2s:close=1", FrameConfig::default()));
        assert_eq!(flow.stopped_by(&Step::Close), Some(End::Closed));
        assert_eq!(flow.stopped_by(&Step::Reset), Some(End::Reset));
    }

    #[test]
    fn the_other_direction_only_applies_its_own_faults() {
        let flow = Flow::new(
            Direction::ServerToClient,
            1,
            &config("c2s:split=1", FrameConfig::default()),
        );
        assert!(!flow.has_faults());
    }

    #[test]
    fn endings_pass_on_the_end_or_end_the_connection() {
        assert_eq!(ending(End::Eof, false, false), (End::Eof, Closing::PassEnd));
        assert_eq!(
            ending(End::Closed, false, false),
            (End::Closed, Closing::Connection { reset: false })
        );
        assert_eq!(
            ending(End::Reset, false, false),
            (End::Reset, Closing::Connection { reset: true })
        );
        let failed = End::Error("read failed".into());
        assert_eq!(
            ending(failed.clone(), false, true),
            (failed, Closing::Connection { reset: true })
        );
        // Once the connection is over, an end or a failure is only its echo.
        assert_eq!(
            ending(End::Eof, true, false),
            (End::Stopped, Closing::Nothing)
        );
        assert_eq!(
            ending(End::Error("x".into()), true, true),
            (End::Stopped, Closing::Nothing)
        );
        // A fault's own close is still carried out.
        assert_eq!(
            ending(End::Closed, true, false),
            (End::Closed, Closing::Connection { reset: false })
        );
    }

    #[test]
    fn idle_ends_only_after_the_timeout_and_over_ends_at_once() {
        let s = Duration::from_secs;
        assert_eq!(idle_end(false, None, s(100), s(0)), None);
        assert_eq!(idle_end(false, Some(s(5)), s(104), s(100)), None);
        assert_eq!(
            idle_end(false, Some(s(5)), s(105), s(100)),
            Some(End::Error("idle for 5s".into()))
        );
        assert_eq!(idle_end(true, Some(s(5)), s(0), s(0)), Some(End::Stopped));
    }

    #[test]
    fn reads_grow_when_full_up_to_the_most_and_shrink_after_a_small_one() {
        let mut s = Sizing::new(64, 1024, false);
        assert_eq!(s.first(), 64);
        assert_eq!(s.grow(64), None);
        assert!(!s.read(64, 64));
        assert_eq!(s.grow(64), Some(128));
        assert!(!s.read(128, 128));
        assert_eq!(s.grow(512), Some(1024));
        assert!(!s.read(1024, 1024));
        assert_eq!(s.grow(1024), None);
        // A small read after growing: back to the first size.
        assert!(s.read(32, 1024));
        assert_eq!(s.grow(64), None);
        // With faults the first size is the most.
        let mut s = Sizing::new(64, 1024, true);
        s.read(64, 64);
        assert_eq!(s.grow(64), None);
        // A buffer setting below the first size wins.
        assert_eq!(Sizing::new(64, 16, false).first(), 16);
    }
}
