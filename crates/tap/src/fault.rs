//! Faults on purpose: a sans-IO schedule that says how to disturb a stream.
//!
//! A program that talks TCP must survive a slow network, writes that arrive
//! one byte at a time, a connection cut in the middle of a message, a header
//! that lies. Waiting for a real network to do that is hopeless, so
//! `trama-tap` (and the project's own hardening tests) put a proxy in the
//! middle that does it on demand. This module is the proxy's brain, with no
//! socket in it: a [`FaultSchedule`] is fed each chunk of one direction's
//! bytes and answers with [`Step`]s (write these bytes, sleep, close, reset,
//! stall). The proxy only carries the steps out, so every fault is tested
//! here on byte slices.
//!
//! Faults come in two kinds:
//!
//! - **byte-level**, like toxiproxy's toxics: delay each chunk (with jitter),
//!   limit the bandwidth, split writes into pieces of N bytes with a pause,
//!   stall (stop forwarding but keep the connection open), close or reset
//!   after N bytes;
//! - **frame-level**, which need the framing: cut the connection in the
//!   middle of frame K, replace frame K's header by other bytes, drop frame
//!   K, send frame K twice, delay frame K. Frames are numbered from 1 in each
//!   direction.
//!
//! ## Syntax
//!
//! One `--fault` argument is `[DIR:]ITEM[,ITEM...]`, where `DIR` is `c2s`
//! (client to server), `s2c` (server to client) or `both` (the default), and
//! an item is one of:
//!
//! | item | effect |
//! |---|---|
//! | `delay=D` | sleep `D` before forwarding each chunk |
//! | `jitter=D` | with the `delay` before it: each delay is uniform in `D_delay ± D` |
//! | `bandwidth=RATE` | at most `RATE` bytes per second (`64KiB`, `1MiB`; `/s` optional) |
//! | `split=N` | forward in writes of at most `N` bytes |
//! | `pause=D` | with the `split` before it: sleep `D` after each piece |
//! | `stall` or `stall=N` | after `N` bytes (default 0), stop forwarding; the connection stays open |
//! | `close` or `close=N` | after `N` bytes, close the connection (both sides see the end) |
//! | `reset` or `reset=N` | after `N` bytes, reset the connection (both sides see a reset) |
//! | `cut=K` | forward frame `K`'s header and half its payload, then close the connection |
//! | `corrupt-header=K:HEX` | replace frame `K`'s header by the bytes `HEX` (e.g. `ffffffff`) |
//! | `drop=K` | do not forward frame `K` |
//! | `duplicate=K` | forward frame `K` twice |
//! | `delay-frame=K:D` | sleep `D` before forwarding frame `K` |
//!
//! Durations and byte counts are written as in every trama flag (the
//! `trama-units` grammar): `250us`, `10ms`, `2s`, `1m`, `1h`, never a bare
//! number; `100`, `64KiB`, `1MiB`, `1GiB` (`K` and `KB` mean KiB). For example `c2s:split=1,pause=1ms` sends every byte the
//! client writes in its own write, and `s2c:corrupt-header=3:ffffffff` makes
//! the server's third frame announce 4 GiB - 1 bytes.
//!
//! ```
//! use trama_protocol::FrameConfig;
//! use trama_tap::fault::{FaultPlan, FaultSchedule, Step};
//! use trama_tap::Direction;
//!
//! let mut plan = FaultPlan::default();
//! plan.add("c2s:drop=1")?;
//! let mut schedule =
//!     FaultSchedule::new(plan.faults(Direction::ClientToServer), FrameConfig::default(), 1)?;
//! let mut steps = Vec::new();
//! schedule.push(b"\x00\x00\x00\x01a\x00\x00\x00\x01b", &mut steps);
//! // Frame 1 is dropped; frame 2 (bytes 5..10) is forwarded.
//! assert_eq!(steps[1], Step::Write(5..10));
//! # Ok::<(), trama_tap::fault::FaultError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use trama_protocol::{FrameBoundary, FrameConfig, Part};

use crate::{hex_pairs, Direction};

/// Why a fault description or a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// An item of a `--fault` argument does not parse.
    #[error("bad fault {item:?}: {reason}")]
    Parse {
        /// The item as given.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two faults that each decide what happens to the same frame.
    #[error("frame {frame} has two faults that exclude each other: {first} and {second}")]
    Conflict {
        /// The frame number.
        frame: u64,
        /// The first fault.
        first: String,
        /// The second fault.
        second: String,
    },
    /// A frame-level fault on an unframed stream, which has no frames.
    #[error("{fault} needs frames, but the stream is unframed")]
    NeedsFrames {
        /// The fault.
        fault: String,
    },
}

/// One fault for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Sleep before forwarding each chunk, `delay ± jitter`.
    Delay {
        /// Mean delay.
        delay: Duration,
        /// Largest deviation from the mean, either way.
        jitter: Duration,
    },
    /// At most this many bytes per second.
    Bandwidth {
        /// Bytes per second (at least 1).
        bytes_per_sec: u64,
    },
    /// Forward in writes of at most `size` bytes, sleeping `pause` after each.
    Split {
        /// Largest write (at least 1).
        size: usize,
        /// Sleep after each write.
        pause: Duration,
    },
    /// Stop forwarding after `after` bytes, keeping the connection open.
    Stall {
        /// Bytes forwarded first.
        after: u64,
    },
    /// Close the connection after `after` bytes.
    Close {
        /// Bytes forwarded first.
        after: u64,
    },
    /// Reset the connection after `after` bytes.
    Reset {
        /// Bytes forwarded first.
        after: u64,
    },
    /// Forward frame `frame`'s header and half its payload, then close.
    CutFrame {
        /// Frame number, from 1.
        frame: u64,
    },
    /// Replace frame `frame`'s header by `bytes`.
    CorruptHeader {
        /// Frame number, from 1.
        frame: u64,
        /// What goes on the wire instead of the header.
        bytes: Vec<u8>,
    },
    /// Do not forward frame `frame`.
    DropFrame {
        /// Frame number, from 1.
        frame: u64,
    },
    /// Forward frame `frame` twice.
    DuplicateFrame {
        /// Frame number, from 1.
        frame: u64,
    },
    /// Sleep before forwarding frame `frame`.
    DelayFrame {
        /// Frame number, from 1.
        frame: u64,
        /// How long.
        delay: Duration,
    },
}

impl Fault {
    /// The frame this fault is about, for frame-level faults.
    pub fn frame(&self) -> Option<u64> {
        match self {
            Fault::CutFrame { frame }
            | Fault::CorruptHeader { frame, .. }
            | Fault::DropFrame { frame }
            | Fault::DuplicateFrame { frame }
            | Fault::DelayFrame { frame, .. } => Some(*frame),
            _ => None,
        }
    }
}

/// A duration as the grammar writes it (`1s500ms`, not Debug's `1.5s`).
fn units(d: Duration) -> trama_units::Duration {
    trama_units::Duration(d)
}

impl fmt::Display for Fault {
    /// The fault in the syntax it is parsed from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Delay { delay, jitter } if jitter.is_zero() => {
                write!(f, "delay={}", units(*delay))
            }
            Fault::Delay { delay, jitter } => {
                write!(f, "delay={},jitter={}", units(*delay), units(*jitter))
            }
            Fault::Bandwidth { bytes_per_sec } => write!(f, "bandwidth={bytes_per_sec}"),
            Fault::Split { size, pause } if pause.is_zero() => write!(f, "split={size}"),
            Fault::Split { size, pause } => write!(f, "split={size},pause={}", units(*pause)),
            Fault::Stall { after } => write!(f, "stall={after}"),
            Fault::Close { after } => write!(f, "close={after}"),
            Fault::Reset { after } => write!(f, "reset={after}"),
            Fault::CutFrame { frame } => write!(f, "cut={frame}"),
            Fault::CorruptHeader { frame, bytes } => {
                write!(f, "corrupt-header={frame}:")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Fault::DropFrame { frame } => write!(f, "drop={frame}"),
            Fault::DuplicateFrame { frame } => write!(f, "duplicate={frame}"),
            Fault::DelayFrame { frame, delay } => {
                write!(f, "delay-frame={frame}:{}", units(*delay))
            }
        }
    }
}

/// The faults of both directions, built from `--fault` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    c2s: Vec<Fault>,
    s2c: Vec<Fault>,
}

impl FaultPlan {
    /// Add the faults of one `--fault` argument (see the [module docs](self)).
    pub fn add(&mut self, arg: &str) -> Result<(), FaultError> {
        let (dirs, items) = match arg.split_once(':') {
            Some(("c2s", rest)) => (&[Direction::ClientToServer][..], rest),
            Some(("s2c", rest)) => (&[Direction::ServerToClient][..], rest),
            Some(("both", rest)) => (
                &[Direction::ClientToServer, Direction::ServerToClient][..],
                rest,
            ),
            _ => (
                &[Direction::ClientToServer, Direction::ServerToClient][..],
                arg,
            ),
        };
        let faults = parse_items(items)?;
        for d in dirs {
            self.faults_mut(*d).extend(faults.iter().cloned());
        }
        Ok(())
    }

    /// Add a fault for one direction.
    pub fn push(&mut self, dir: Direction, fault: Fault) {
        self.faults_mut(dir).push(fault);
    }

    /// The faults of one direction.
    pub fn faults(&self, dir: Direction) -> &[Fault] {
        match dir {
            Direction::ClientToServer => &self.c2s,
            Direction::ServerToClient => &self.s2c,
        }
    }

    fn faults_mut(&mut self, dir: Direction) -> &mut Vec<Fault> {
        match dir {
            Direction::ClientToServer => &mut self.c2s,
            Direction::ServerToClient => &mut self.s2c,
        }
    }

    /// True when no direction has a fault: the proxy may forward untouched.
    pub fn is_empty(&self) -> bool {
        self.c2s.is_empty() && self.s2c.is_empty()
    }
}

impl std::str::FromStr for FaultPlan {
    type Err = FaultError;
    /// One `--fault` argument.
    fn from_str(s: &str) -> Result<FaultPlan, FaultError> {
        let mut plan = FaultPlan::default();
        plan.add(s)?;
        Ok(plan)
    }
}

/// The fault names, for the error that lists them.
const KNOWN: &str = "delay, jitter, bandwidth, split, pause, stall, close, reset, cut, \
                     corrupt-header, drop, duplicate, delay-frame";

fn parse_items(items: &str) -> Result<Vec<Fault>, FaultError> {
    let mut out: Vec<Fault> = Vec::new();
    for item in items.split(',') {
        let item = item.trim();
        let bad = |reason: String| FaultError::Parse {
            item: item.to_string(),
            reason,
        };
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        let need = || value.ok_or_else(|| bad(format!("{name} needs a value ({name}=...)")));
        let after = || value.map_or(Ok(0), parse_size).map_err(&bad);
        let frame_and = |what: &str| -> Result<(u64, &str), FaultError> {
            let v = need()?;
            let (k, rest) = v
                .split_once(':')
                .ok_or_else(|| bad(format!("expected {name}=FRAME:{what}")))?;
            Ok((parse_frame(k).map_err(&bad)?, rest))
        };
        let fault = match name {
            "delay" => Fault::Delay {
                delay: parse_duration(need()?).map_err(&bad)?,
                jitter: Duration::ZERO,
            },
            "jitter" => {
                let j = parse_duration(need()?).map_err(&bad)?;
                match out.last_mut() {
                    Some(Fault::Delay { jitter, .. }) => *jitter = j,
                    _ => {
                        return Err(bad(
                            "jitter must follow a delay (delay=50ms,jitter=10ms)".into()
                        ))
                    }
                }
                continue;
            }
            "pause" => {
                let p = parse_duration(need()?).map_err(&bad)?;
                match out.last_mut() {
                    Some(Fault::Split { pause, .. }) => *pause = p,
                    _ => return Err(bad("pause must follow a split (split=1,pause=1ms)".into())),
                }
                continue;
            }
            "bandwidth" => {
                let v = need()?;
                let rate = parse_size(v.strip_suffix("/s").unwrap_or(v)).map_err(&bad)?;
                if rate == 0 {
                    return Err(bad(
                        "a bandwidth of 0 would never forward a byte (use stall)".into(),
                    ));
                }
                Fault::Bandwidth {
                    bytes_per_sec: rate,
                }
            }
            "split" => {
                let size = parse_size(need()?).map_err(&bad)?;
                if size == 0 {
                    return Err(bad("pieces must be at least 1 byte".into()));
                }
                Fault::Split {
                    size: usize::try_from(size).unwrap_or(usize::MAX),
                    pause: Duration::ZERO,
                }
            }
            "stall" => Fault::Stall { after: after()? },
            "close" => Fault::Close { after: after()? },
            "reset" => Fault::Reset { after: after()? },
            "cut" => Fault::CutFrame {
                frame: parse_frame(need()?).map_err(&bad)?,
            },
            "drop" => Fault::DropFrame {
                frame: parse_frame(need()?).map_err(&bad)?,
            },
            "duplicate" | "dup" => Fault::DuplicateFrame {
                frame: parse_frame(need()?).map_err(&bad)?,
            },
            "corrupt-header" => {
                let (frame, hex) = frame_and("HEX")?;
                let bytes = parse_hex(hex).map_err(&bad)?;
                Fault::CorruptHeader { frame, bytes }
            }
            "delay-frame" => {
                let (frame, d) = frame_and("DURATION")?;
                Fault::DelayFrame {
                    frame,
                    delay: parse_duration(d).map_err(&bad)?,
                }
            }
            "" => return Err(bad("empty fault".into())),
            other => return Err(bad(format!("unknown fault {other:?} (known: {KNOWN})"))),
        };
        out.push(fault);
    }
    Ok(out)
}

fn parse_frame(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("frames are numbered from 1".into()),
        Ok(k) => Ok(k),
        Err(_) => Err(format!("{s:?} is not a frame number")),
    }
}

/// A duration in trama's one grammar ([`trama_units`]: `250us`, `10ms`,
/// `2s`, `1m`); a bare number is refused, since a reader cannot tell its
/// unit. At most 1,000,000 s: a fault, not a hang.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = trama_units::parse_duration(s).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(1_000_000) {
        return Err(format!("{:?} is out of range (at most 1000000s)", s.trim()));
    }
    Ok(d)
}

/// A byte count in trama's one grammar ([`trama_units`]: `4096`, `64KiB`,
/// `16MiB`; `K` and `KB` mean KiB).
fn parse_size(s: &str) -> Result<u64, String> {
    trama_units::parse_size(s).map_err(|e| e.to_string())
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim().trim_start_matches("0x");
    if s.is_empty() || s.len() % 2 != 0 || s.len() > 16 {
        return Err(format!(
            "{s:?} is not 1 to 8 bytes of hex (an even number of digits, e.g. ffffffff)"
        ));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("{s:?} is not hex"))
        })
        .collect()
}

/// One thing the proxy must do, in order, for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes of the input given to [`FaultSchedule::push`].
    Write(Range<usize>),
    /// Write these bytes, which are not (or not only) in the input: a
    /// replaced header, a duplicated frame.
    Inject(Vec<u8>),
    /// Sleep before the next step.
    Sleep(Duration),
    /// Stop forwarding this direction (and stop reading it, so the sender
    /// feels the back-pressure), but keep the connection open.
    Stall,
    /// Close the connection: both peers see an orderly end of stream.
    Close,
    /// Reset the connection: both peers see a reset.
    Reset,
    /// A fault fired; the text says which and where, for the log.
    Fired(String),
}

/// What a frame-level fault does to the frame being forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Pass,
    Drop,
    /// The bytes of the frame so far, to send again at its end.
    Duplicate(Vec<u8>),
    Corrupt(Vec<u8>),
    /// Holding the header until it is complete; then cut.
    Cut,
}

/// What a limit does when reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitKind {
    Stall,
    Close,
    Reset,
}

/// The faults of one direction, applied as its bytes go by.
///
/// Feed each chunk read from the source to [`push`](FaultSchedule::push) and
/// carry out the returned [`Step`]s in order. After a `Close`, `Reset` or
/// `Stall` step the schedule is finished and returns nothing more. Memory is
/// bounded by the frame limit (only a frame to duplicate is held).
#[derive(Debug)]
pub struct FaultSchedule {
    config: FrameConfig,
    frame_faults: BTreeMap<u64, Action>,
    frame_delays: BTreeMap<u64, Duration>,
    delay: Option<(Duration, Duration)>,
    bandwidth: Option<u64>,
    split: Option<(usize, Duration)>,
    limit: Option<(u64, LimitKind)>,
    // Frame tracking, by the decoder's own rules.
    bounds: FrameBoundary,
    frame: u64,
    payload_len: u64,
    cut_left: u64,
    action: Action,
    // Byte shaping.
    forwarded: u64,
    announced: bool,
    rng: u64,
    finished: bool,
    stage: Vec<Step>,
}

impl FaultSchedule {
    /// A schedule for `faults` on a stream in `config`'s format. `seed` makes
    /// the jitter repeatable.
    pub fn new(
        faults: &[Fault],
        config: FrameConfig,
        seed: u64,
    ) -> Result<FaultSchedule, FaultError> {
        let mut s = FaultSchedule {
            config,
            frame_faults: BTreeMap::new(),
            frame_delays: BTreeMap::new(),
            delay: None,
            bandwidth: None,
            split: None,
            limit: None,
            bounds: FrameBoundary::new(config),
            frame: 0,
            payload_len: 0,
            cut_left: 0,
            action: Action::Pass,
            forwarded: 0,
            announced: false,
            // xorshift needs a non-zero state.
            rng: seed | 1,
            finished: false,
            stage: Vec::new(),
        };
        let mut owners: BTreeMap<u64, &Fault> = BTreeMap::new();
        for fault in faults {
            if fault.frame().is_some() && config.is_unframed() {
                return Err(FaultError::NeedsFrames {
                    fault: fault.to_string(),
                });
            }
            let action = match fault {
                Fault::Delay { delay, jitter } => {
                    s.delay = Some((*delay, *jitter));
                    continue;
                }
                Fault::Bandwidth { bytes_per_sec } => {
                    s.bandwidth = Some((*bytes_per_sec).max(1));
                    continue;
                }
                Fault::Split { size, pause } => {
                    s.split = Some(((*size).max(1), *pause));
                    continue;
                }
                Fault::Stall { after } => {
                    s.set_limit(*after, LimitKind::Stall);
                    continue;
                }
                Fault::Close { after } => {
                    s.set_limit(*after, LimitKind::Close);
                    continue;
                }
                Fault::Reset { after } => {
                    s.set_limit(*after, LimitKind::Reset);
                    continue;
                }
                Fault::DelayFrame { frame, delay } => {
                    s.frame_delays.insert(*frame, *delay);
                    continue;
                }
                Fault::CutFrame { .. } => Action::Cut,
                Fault::CorruptHeader { bytes, .. } => Action::Corrupt(bytes.clone()),
                Fault::DropFrame { .. } => Action::Drop,
                Fault::DuplicateFrame { .. } => Action::Duplicate(Vec::new()),
            };
            let frame = fault.frame().unwrap_or(0);
            if let Some(first) = owners.insert(frame, fault) {
                return Err(FaultError::Conflict {
                    frame,
                    first: first.to_string(),
                    second: fault.to_string(),
                });
            }
            s.frame_faults.insert(frame, action);
        }
        Ok(s)
    }

    /// The earliest limit wins.
    fn set_limit(&mut self, after: u64, kind: LimitKind) {
        if self.limit.is_none_or(|(n, _)| after < n) {
            self.limit = Some((after, kind));
        }
    }

    /// True when the schedule changes nothing (no faults at all).
    pub fn is_passthrough(&self) -> bool {
        self.frame_faults.is_empty()
            && self.frame_delays.is_empty()
            && self.delay.is_none()
            && self.bandwidth.is_none()
            && self.split.is_none()
            && self.limit.is_none()
    }

    /// True after a `Close`, `Reset` or `Stall` step: nothing more is forwarded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes written so far (forwarded and injected).
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// The steps for the next chunk `input` of this direction, appended to `steps`.
    pub fn push(&mut self, input: &[u8], steps: &mut Vec<Step>) {
        if self.finished || input.is_empty() {
            return;
        }
        let mut stage = std::mem::take(&mut self.stage);
        stage.clear();
        if self.config.is_unframed() {
            stage.push(Step::Write(0..input.len()));
        } else {
            self.frames(input, &mut stage);
        }
        self.shape(&stage, steps);
        self.stage = stage;
    }

    /// Stage one: frame-level faults. Emits writes of input ranges, injected
    /// bytes, sleeps, notes, and a close for a cut.
    fn frames(&mut self, input: &[u8], out: &mut Vec<Step>) {
        let mut pos = 0;
        while let Some(span) = self.bounds.next(&input[pos..]) {
            let r = pos..pos + span.len;
            pos = r.end;
            if span.starts_frame {
                self.start_frame(out);
            }
            match (&mut self.action, span.part) {
                // A header to replace or to hold back (a drop, a cut) is not written.
                (Action::Drop | Action::Corrupt(_) | Action::Cut, Part::Header) => {}
                (Action::Pass | Action::Corrupt(_), _) => write(out, r.clone()),
                (Action::Drop, Part::Payload) => {}
                (Action::Duplicate(buf), _) => {
                    buf.extend_from_slice(&input[r.clone()]);
                    write(out, r.clone());
                }
                (Action::Cut, Part::Payload) => {
                    let n = usize::try_from(self.cut_left).map_or(r.len(), |c| c.min(r.len()));
                    write(out, r.start..r.start + n);
                    self.cut_left -= n as u64;
                    if self.cut_left == 0 {
                        self.cut(out);
                        return;
                    }
                }
            }
            if let Some(len) = span.announced {
                self.header_done(len, out);
                if self.finished {
                    return;
                }
            }
            if span.ends_frame {
                self.end_frame(out);
            }
        }
    }

    fn start_frame(&mut self, out: &mut Vec<Step>) {
        self.frame += 1;
        let k = self.frame;
        if let Some(d) = self.frame_delays.get(&k) {
            out.push(Step::Fired(format!("frame {k} delayed by {d:?}")));
            out.push(Step::Sleep(*d));
        }
        self.action = self.frame_faults.remove(&k).unwrap_or(Action::Pass);
        if let Action::Corrupt(bytes) = &self.action {
            out.push(Step::Inject(bytes.clone()));
        }
    }

    fn header_done(&mut self, len: u64, out: &mut Vec<Step>) {
        let header = self.bounds.header();
        let k = self.frame;
        self.payload_len = len;
        match &self.action {
            Action::Corrupt(bytes) => out.push(Step::Fired(format!(
                "frame {k}: header {} replaced by {}",
                hex_pairs(header),
                hex_pairs(bytes)
            ))),
            Action::Drop => out.push(Step::Fired(format!("frame {k} ({len} bytes) dropped"))),
            Action::Duplicate(_) if len > self.config.max_frame_len() as u64 => {
                out.push(Step::Fired(format!(
                    "frame {k} not duplicated: its {len} bytes exceed the limit of {}",
                    self.config.max_frame_len()
                )));
                self.action = Action::Pass;
            }
            Action::Cut if len == 0 => {
                // An empty frame has no middle but its header's.
                out.push(Step::Inject(header[..header.len() / 2].to_vec()));
                self.cut(out);
            }
            Action::Cut => {
                out.push(Step::Inject(header.to_vec()));
                self.cut_left = len / 2;
                if self.cut_left == 0 {
                    self.cut(out);
                }
            }
            _ => {}
        }
    }

    fn end_frame(&mut self, out: &mut Vec<Step>) {
        let k = self.frame;
        if let Action::Duplicate(buf) = std::mem::replace(&mut self.action, Action::Pass) {
            out.push(Step::Fired(format!(
                "frame {k} ({} bytes) sent twice",
                self.payload_len
            )));
            out.push(Step::Inject(buf));
        }
    }

    fn cut(&mut self, out: &mut Vec<Step>) {
        let k = self.frame;
        let sent = self.payload_len / 2;
        out.push(Step::Fired(if self.payload_len == 0 {
            format!(
                "connection cut in the middle of frame {k} after {} of {} header bytes",
                self.config.header_len() / 2,
                self.config.header_len()
            )
        } else {
            format!(
                "connection cut in the middle of frame {k} after {sent} of {} payload bytes",
                self.payload_len
            )
        }));
        out.push(Step::Close);
        self.finished = true;
    }

    /// Stage two: byte-level faults over stage one's output.
    fn shape(&mut self, stage: &[Step], steps: &mut Vec<Step>) {
        let has_bytes = stage.iter().any(|s| {
            matches!(s, Step::Write(r) if !r.is_empty())
                || matches!(s, Step::Inject(b) if !b.is_empty())
        });
        if !self.announced {
            self.announce(steps);
        }
        if self.limit_reached(steps) {
            return;
        }
        if has_bytes {
            if let Some((d, j)) = self.delay {
                let d = self.jittered(d, j);
                sleep(steps, d);
            }
        }
        for step in stage {
            match step {
                Step::Write(r) => {
                    if !self.pieces(r.clone(), None, steps) {
                        return;
                    }
                }
                Step::Inject(bytes) => {
                    if !self.pieces(0..bytes.len(), Some(bytes), steps) {
                        return;
                    }
                }
                Step::Sleep(d) => sleep(steps, *d),
                Step::Close | Step::Reset | Step::Stall => {
                    steps.push(step.clone());
                    self.finished = true;
                    return;
                }
                Step::Fired(_) => steps.push(step.clone()),
            }
        }
    }

    /// Say once which byte-level faults are in force.
    fn announce(&mut self, steps: &mut Vec<Step>) {
        self.announced = true;
        if let Some((d, j)) = self.delay {
            steps.push(Step::Fired(format!("every chunk delayed by {d:?} ± {j:?}")));
        }
        if let Some(rate) = self.bandwidth {
            steps.push(Step::Fired(format!("bandwidth limited to {rate} bytes/s")));
        }
        if let Some((n, p)) = self.split {
            let bytes = if n == 1 { "byte" } else { "bytes" };
            steps.push(Step::Fired(format!(
                "writes split into pieces of {n} {bytes}, {p:?} apart"
            )));
        }
    }

    /// If the byte limit is reached, fire it (once) and finish.
    fn limit_reached(&mut self, steps: &mut Vec<Step>) -> bool {
        match self.limit {
            Some((n, kind)) if self.forwarded >= n => {
                let (what, step) = match kind {
                    LimitKind::Stall => ("stalled", Step::Stall),
                    LimitKind::Close => ("connection closed", Step::Close),
                    LimitKind::Reset => ("connection reset", Step::Reset),
                };
                steps.push(Step::Fired(format!("{what} after {n} bytes")));
                steps.push(step);
                self.finished = true;
                true
            }
            _ => false,
        }
    }

    /// Write `range` (of the input, or of `owned`) in pieces, honouring split,
    /// bandwidth and the byte limit. False once the limit finished the schedule.
    fn pieces(
        &mut self,
        range: Range<usize>,
        owned: Option<&Vec<u8>>,
        steps: &mut Vec<Step>,
    ) -> bool {
        let mut at = range.start;
        while at < range.end {
            let mut n = range.end - at;
            if let Some((limit, _)) = self.limit {
                let room = limit.saturating_sub(self.forwarded);
                n = usize::try_from(room).map_or(n, |r| r.min(n));
            }
            if let Some((size, _)) = self.split {
                n = n.min(size);
            }
            if let Some(rate) = self.bandwidth {
                // Pieces of a twentieth of a second keep the rate smooth.
                n = n.min(usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1));
            }
            match owned {
                Some(bytes) => steps.push(Step::Inject(bytes[at..at + n].to_vec())),
                // Pieces of a split are writes of their own even with no
                // pause between them (merged, the split would not happen).
                None if self.split.is_some() => steps.push(Step::Write(at..at + n)),
                None => write(steps, at..at + n),
            }
            at += n;
            self.forwarded += n as u64;
            if let Some((_, pause)) = self.split {
                sleep(steps, pause);
            }
            if let Some(rate) = self.bandwidth {
                let nanos = (n as u128 * 1_000_000_000 / u128::from(rate)).min(u64::MAX as u128);
                sleep(steps, Duration::from_nanos(nanos as u64));
            }
            if self.limit_reached(steps) {
                return false;
            }
        }
        true
    }

    /// `d ± j`, uniformly, never below zero.
    fn jittered(&mut self, d: Duration, j: Duration) -> Duration {
        if j.is_zero() {
            return d;
        }
        // xorshift64: repeatable from the seed, good enough for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = j.as_nanos().saturating_mul(2).saturating_add(1);
        let offset = u128::from(self.rng) % span;
        let base = d.as_nanos() + offset;
        let nanos = base.saturating_sub(j.as_nanos()).min(u64::MAX as u128);
        Duration::from_nanos(nanos as u64)
    }
}

/// Append a write of `r`, merging it with a write of the bytes just before.
fn write(steps: &mut Vec<Step>, r: Range<usize>) {
    if r.is_empty() {
        return;
    }
    if let Some(Step::Write(last)) = steps.last_mut() {
        if last.end == r.start {
            last.end = r.end;
            return;
        }
    }
    steps.push(Step::Write(r));
}

/// Append a sleep, merging it with a sleep just before.
fn sleep(steps: &mut Vec<Step>, d: Duration) {
    if d.is_zero() {
        return;
    }
    if let Some(Step::Sleep(last)) = steps.last_mut() {
        *last += d;
        return;
    }
    steps.push(Step::Sleep(d));
}

/// The bytes `steps` write for `input`: what the receiving side would get.
/// For tests and for callers that apply a schedule to a buffer.
pub fn written(input: &[u8], steps: &[Step], out: &mut Vec<u8>) {
    for s in steps {
        match s {
            Step::Write(r) => out.extend_from_slice(&input[r.clone()]),
            Step::Inject(b) => out.extend_from_slice(b),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C2S: Direction = Direction::ClientToServer;

    fn wire(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            FrameConfig::default().encode(f, &mut out).unwrap();
        }
        out
    }

    fn schedule(arg: &str) -> FaultSchedule {
        let plan: FaultPlan = arg.parse().unwrap();
        FaultSchedule::new(plan.faults(C2S), FrameConfig::default(), 7).unwrap()
    }

    /// Feed `input` cut at `cut`, return (bytes out, all steps).
    fn run(s: &mut FaultSchedule, input: &[u8], cut: usize) -> (Vec<u8>, Vec<Step>) {
        let mut out = Vec::new();
        let mut all = Vec::new();
        for part in [&input[..cut], &input[cut..]] {
            let mut steps = Vec::new();
            s.push(part, &mut steps);
            written(part, &steps, &mut out);
            all.extend(steps);
        }
        (out, all)
    }

    fn fired(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Fired(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parse_the_documented_examples() {
        let plan: FaultPlan = "c2s:split=1,pause=1ms".parse().unwrap();
        assert_eq!(
            plan.faults(C2S),
            [Fault::Split {
                size: 1,
                pause: Duration::from_millis(1)
            }]
        );
        assert!(plan.faults(Direction::ServerToClient).is_empty());
        let plan: FaultPlan = "s2c:corrupt-header=3:ffffffff".parse().unwrap();
        assert_eq!(
            plan.faults(Direction::ServerToClient),
            [Fault::CorruptHeader {
                frame: 3,
                bytes: vec![0xff; 4]
            }]
        );
        let plan: FaultPlan = "delay=50ms,jitter=10ms,bandwidth=64KiB/s,reset=100"
            .parse()
            .unwrap();
        for dir in [C2S, Direction::ServerToClient] {
            assert_eq!(
                plan.faults(dir),
                [
                    Fault::Delay {
                        delay: Duration::from_millis(50),
                        jitter: Duration::from_millis(10)
                    },
                    Fault::Bandwidth {
                        bytes_per_sec: 65536
                    },
                    Fault::Reset { after: 100 }
                ]
            );
        }
        let plan: FaultPlan = "both:stall,close=1KiB,drop=2,dup=3,cut=4,delay-frame=5:2s"
            .parse()
            .unwrap();
        assert_eq!(plan.faults(C2S).len(), 6);
        // Display gives back the syntax.
        let shown: Vec<String> = plan.faults(C2S).iter().map(|f| f.to_string()).collect();
        assert_eq!(
            shown,
            [
                "stall=0",
                "close=1024",
                "drop=2",
                "duplicate=3",
                "cut=4",
                "delay-frame=5:2s"
            ]
        );
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let e = |s: &str| s.parse::<FaultPlan>().unwrap_err().to_string();
        assert_eq!(
            e("c2s:jitter=1ms"),
            "bad fault \"jitter=1ms\": jitter must follow a delay (delay=50ms,jitter=10ms)"
        );
        assert!(e("drop=0").contains("numbered from 1"));
        assert!(e("corrupt-header=2:fff").contains("hex"));
        assert!(e("corrupt-header=2").contains("FRAME:HEX"));
        assert!(e("delay=5y").contains("unknown unit"));
        // One grammar with every flag: a bare number has no unit to guess.
        assert!(
            e("delay=5").contains("needs a unit (5s, 5ms)"),
            "{}",
            e("delay=5")
        );
        assert!(e("c2s:split=1,pause=2").contains("needs a unit"));
        assert!(e("split=0").contains("at least 1 byte"));
        assert!(e("wobble").contains("unknown fault"));
        assert!(e("c2s:").contains("empty"));
        let plan: FaultPlan = "drop=2,duplicate=2".parse().unwrap();
        assert_eq!(
            FaultSchedule::new(plan.faults(C2S), FrameConfig::default(), 1)
                .unwrap_err()
                .to_string(),
            "frame 2 has two faults that exclude each other: drop=2 and duplicate=2"
        );
        let plan: FaultPlan = "cut=1".parse().unwrap();
        assert!(FaultSchedule::new(plan.faults(C2S), FrameConfig::unframed(), 1).is_err());
    }

    #[test]
    fn no_faults_forwards_every_byte_at_every_split() {
        let input = wire(&[b"hola", b"", &[9; 300]]);
        for cut in 0..=input.len() {
            let mut s = FaultSchedule::new(&[], FrameConfig::default(), 1).unwrap();
            assert!(s.is_passthrough());
            let (out, steps) = run(&mut s, &input, cut);
            assert_eq!(out, input);
            assert!(steps.iter().all(|s| matches!(s, Step::Write(_))));
        }
    }

    #[test]
    fn split_without_a_pause_is_still_one_write_per_piece() {
        let input = wire(&[b"hola"]);
        let mut s = schedule("split=3");
        let (out, steps) = run(&mut s, &input, input.len());
        assert_eq!(out, input);
        let writes: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Write(r) => Some(r.len()),
                _ => None,
            })
            .collect();
        assert_eq!(writes, vec![3, 3, 2]);
    }

    #[test]
    fn split_every_byte_with_a_pause() {
        let input = wire(&[b"hola"]);
        let mut s = schedule("split=1,pause=1ms");
        let (out, steps) = run(&mut s, &input, 3);
        assert_eq!(out, input);
        let writes: Vec<_> = steps
            .iter()
            .filter(|s| matches!(s, Step::Write(_)))
            .collect();
        assert_eq!(writes.len(), input.len());
        let sleeps = steps
            .iter()
            .filter(|s| **s == Step::Sleep(Duration::from_millis(1)))
            .count();
        assert_eq!(sleeps, input.len());
        assert_eq!(fired(&steps).len(), 1);
    }

    #[test]
    fn frame_faults_at_every_split_point() {
        let input = wire(&[b"uno", b"dos!", b"", b"cuatro"]);
        let cases: &[(&str, Vec<u8>, Option<Step>)] = &[
            ("drop=2", wire(&[b"uno", b"", b"cuatro"]), None),
            ("drop=3", wire(&[b"uno", b"dos!", b"cuatro"]), None),
            (
                "duplicate=2",
                wire(&[b"uno", b"dos!", b"dos!", b"", b"cuatro"]),
                None,
            ),
            (
                "duplicate=3",
                wire(&[b"uno", b"dos!", b"", b"", b"cuatro"]),
                None,
            ),
            ("delay-frame=2:5ms", input.clone(), None),
            (
                "corrupt-header=2:ffffffff",
                {
                    let mut w = wire(&[b"uno"]);
                    w.extend_from_slice(b"\xff\xff\xff\xffdos!");
                    w.extend(wire(&[b"", b"cuatro"]));
                    w
                },
                None,
            ),
            (
                "cut=2",
                {
                    let mut w = wire(&[b"uno"]);
                    w.extend_from_slice(b"\x00\x00\x00\x04do");
                    w
                },
                Some(Step::Close),
            ),
            (
                "cut=3",
                {
                    let mut w = wire(&[b"uno", b"dos!"]);
                    w.extend_from_slice(b"\x00\x00");
                    w
                },
                Some(Step::Close),
            ),
        ];
        for (arg, expected, last) in cases {
            for cut in 0..=input.len() {
                let mut s = schedule(arg);
                let (out, steps) = run(&mut s, &input, cut);
                assert_eq!(&out, expected, "{arg} cut at {cut}");
                assert_eq!(fired(&steps).len(), 1, "{arg} cut at {cut}: {steps:?}");
                if let Some(last) = last {
                    assert_eq!(steps.last(), Some(last), "{arg} cut at {cut}");
                    assert!(s.is_finished());
                }
            }
        }
    }

    #[test]
    fn delay_frame_sleeps_before_that_frame_only() {
        let input = wire(&[b"a", b"b"]);
        let mut s = schedule("delay-frame=2:5ms");
        let mut steps = Vec::new();
        s.push(&input, &mut steps);
        assert_eq!(
            steps,
            [
                Step::Write(0..5),
                Step::Fired("frame 2 delayed by 5ms".into()),
                Step::Sleep(Duration::from_millis(5)),
                Step::Write(5..10),
            ]
        );
    }

    #[test]
    fn limits_close_reset_and_stall_after_exactly_n_bytes() {
        let input = wire(&[b"hola", b"chao"]);
        for (arg, step) in [
            ("close=6", Step::Close),
            ("reset=6", Step::Reset),
            ("stall=6", Step::Stall),
        ] {
            for cut in 0..=input.len() {
                let mut s = schedule(arg);
                let (out, steps) = run(&mut s, &input, cut);
                assert_eq!(out, &input[..6], "{arg} cut at {cut}");
                assert_eq!(steps.last(), Some(&step));
                assert!(s.is_finished());
                let mut more = Vec::new();
                s.push(b"xyz", &mut more);
                assert!(more.is_empty());
            }
        }
        // At 0, nothing passes.
        let mut s = schedule("reset");
        let (out, steps) = run(&mut s, &input, 2);
        assert!(out.is_empty());
        assert_eq!(steps.last(), Some(&Step::Reset));
        // The earliest limit wins.
        let mut s = schedule("close=8,reset=3");
        let (out, _) = run(&mut s, &input, 0);
        assert_eq!(out, &input[..3]);
    }

    #[test]
    fn bandwidth_paces_the_bytes() {
        let mut s = schedule("bandwidth=100");
        let input = [1u8; 50];
        let mut steps = Vec::new();
        s.push(&input, &mut steps);
        let mut out = Vec::new();
        written(&input, &steps, &mut out);
        assert_eq!(out, input);
        let slept: Duration = steps
            .iter()
            .filter_map(|s| match s {
                Step::Sleep(d) => Some(*d),
                _ => None,
            })
            .sum();
        // 50 bytes at 100 bytes/s: half a second of sleeping, in pieces of 5.
        assert_eq!(slept, Duration::from_millis(500));
        assert_eq!(
            steps.iter().filter(|s| matches!(s, Step::Write(_))).count(),
            10
        );
    }

    #[test]
    fn delay_with_jitter_stays_in_range_and_repeats_with_the_seed() {
        let plan: FaultPlan = "delay=10ms,jitter=4ms".parse().unwrap();
        let delays = |seed| {
            let mut s =
                FaultSchedule::new(plan.faults(C2S), FrameConfig::unframed(), seed).unwrap();
            (0..200)
                .map(|_| {
                    let mut steps = Vec::new();
                    s.push(b"x", &mut steps);
                    steps
                        .iter()
                        .find_map(|s| match s {
                            Step::Sleep(d) => Some(*d),
                            _ => None,
                        })
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let a = delays(42);
        assert_eq!(a, delays(42));
        assert!(a
            .iter()
            .all(|d| (Duration::from_millis(6)..=Duration::from_millis(14)).contains(d)));
        assert!(a.iter().any(|d| *d < Duration::from_millis(9)));
        assert!(a.iter().any(|d| *d > Duration::from_millis(11)));
    }

    #[test]
    fn an_oversize_frame_is_not_held_for_duplication() {
        let config = FrameConfig::builder().max_frame_len(4).build().unwrap();
        let plan: FaultPlan = "duplicate=1".parse().unwrap();
        let mut s = FaultSchedule::new(plan.faults(C2S), config, 1).unwrap();
        let input = b"\x00\x00\x00\x08abcdefgh";
        let mut steps = Vec::new();
        s.push(input, &mut steps);
        let mut out = Vec::new();
        written(input, &steps, &mut out);
        assert_eq!(out, input);
        assert_eq!(
            fired(&steps),
            ["frame 1 not duplicated: its 8 bytes exceed the limit of 4"]
        );
    }

    #[test]
    fn faults_combine_frame_then_bytes() {
        let input = wire(&[b"ab", b"cd"]);
        let mut s = schedule("drop=1,split=2,close=4");
        let (out, steps) = run(&mut s, &input, 1);
        // Frame 1 dropped; frame 2's first 4 bytes (its header) in 2-byte writes; then close.
        assert_eq!(out, b"\x00\x00\x00\x02");
        assert_eq!(steps.last(), Some(&Step::Close));
    }

    #[test]
    fn any_bytes_and_any_faults_never_panic() {
        let mut x: u64 = 99;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let args = [
            "cut=1",
            "cut=2",
            "drop=1,duplicate=2",
            "corrupt-header=1:ff",
            "split=3,close=50",
            "duplicate=1,reset=30",
        ];
        for _ in 0..300 {
            let len = (next() % 64) as usize;
            let input: Vec<u8> = (0..len).map(|_| (next() % 12) as u8).collect();
            for arg in args {
                let cut = (next() as usize) % (len + 1);
                let mut s = schedule(arg);
                let _ = run(&mut s, &input, cut);
            }
        }
    }
}
