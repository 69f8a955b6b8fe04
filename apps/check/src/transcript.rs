//! The frames a check exchanged, for the HTML report: the probes' socket
//! I/O passes what it writes and reads to [`sent`] and [`received`], and the
//! battery wraps each check in [`begin`] / [`end`]. The bytes are decoded by
//! trama-tap's [`Observer`] and shown with its [`render`], so a line reads
//! as `trama-tap` prints it.
//!
//! Bounded: at most [`MAX_LINES`] lines per check (the rest are counted),
//! the first [`SHOW`] bytes of each payload, and the observers keep no more
//! than that per direction. One check records at a time, per process (a
//! batch checks each submission in a process of its own).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};
use trama_protocol::FrameConfig;
use trama_tap::{hex_pairs, render, DecodeAs, Direction, Note, Observer};

/// Most lines kept for one check.
pub const MAX_LINES: usize = 200;
/// Payload bytes shown per frame.
pub const SHOW: usize = 64;

/// What one check exchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// One per frame (or, in the raw dialect, per chunk), as trama-tap shows them.
    pub lines: Vec<String>,
    /// Lines left out past [`MAX_LINES`].
    pub dropped: u64,
}

impl Transcript {
    /// `{"lines": [...], "dropped": N}`.
    pub fn json(&self) -> Value {
        json!({"lines": self.lines, "dropped": self.dropped})
    }

    /// Back from [`Transcript::json`].
    pub fn from_json(v: &Value) -> Transcript {
        Transcript {
            lines: v["lines"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            dropped: v["dropped"].as_u64().unwrap_or(0),
        }
    }
}

struct Recording {
    frame: FrameConfig,
    observers: BTreeMap<(u32, bool), Observer>,
    out: Transcript,
}

impl Recording {
    fn push(&mut self, line: String) {
        if self.out.lines.len() < MAX_LINES {
            self.out.lines.push(line);
        } else {
            self.out.dropped += 1;
        }
    }
}

static NOW: Mutex<Option<Recording>> = Mutex::new(None);
static NEXT_CONN: AtomicU32 = AtomicU32::new(1);

fn now() -> std::sync::MutexGuard<'static, Option<Recording>> {
    match NOW.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Start recording a check's frames, decoded with `frame`.
pub fn begin(frame: FrameConfig) {
    *now() = Some(Recording {
        frame,
        observers: BTreeMap::new(),
        out: Transcript::default(),
    });
}

/// Stop recording and give what was seen (streams that ended inside a
/// frame say so).
pub fn end() -> Transcript {
    let Some(mut rec) = now().take() else {
        return Transcript::default();
    };
    let observers = std::mem::take(&mut rec.observers);
    for ((conn, out), obs) in observers {
        if let Some(note) = obs.finish() {
            let line = describe(conn, direction(out), &note);
            rec.push(line);
        }
    }
    rec.out
}

/// A number for a new connection (`#N` in the lines).
pub fn open() -> u32 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

fn direction(out: bool) -> Direction {
    if out {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

fn feed(conn: u32, out: bool, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut guard = now();
    let Some(rec) = guard.as_mut() else { return };
    let frame = rec.frame;
    let obs = rec
        .observers
        .entry((conn, out))
        .or_insert_with(|| Observer::new(frame, SHOW));
    let mut notes = Vec::new();
    obs.feed(bytes, &mut notes);
    for note in notes {
        let line = describe(conn, direction(out), &note);
        rec.push(line);
    }
}

/// Bytes trama-check wrote on connection `conn`.
pub fn sent(conn: u32, bytes: &[u8]) {
    feed(conn, true, bytes);
}

/// Bytes trama-check read on connection `conn`.
pub fn received(conn: u32, bytes: &[u8]) {
    feed(conn, false, bytes);
}

/// One note as trama-tap's text output shows it (without the time).
fn describe(conn: u32, dir: Direction, note: &Note) -> String {
    let d = format!("{} {}", dir.as_str(), dir.arrow());
    match note {
        Note::Frame(f) => {
            let r = render(DecodeAs::Auto, &f.head, !f.is_cut());
            let cut = if f.is_cut() {
                format!(" (first {} shown)", f.head.len())
            } else {
                String::new()
            };
            format!(
                "#{conn} {d} frame {} {} bytes{cut} {}: {}",
                f.index, f.len, r.kind, r.text
            )
        }
        Note::Oversize {
            index,
            len,
            limit,
            header,
            ..
        } => format!(
            "#{conn} {d} frame {index} OVERSIZE: header {} announces {len} bytes, over the limit \
             of {limit}; no longer decoding {}",
            hex_pairs(header),
            dir.as_str()
        ),
        Note::Truncated {
            index,
            in_header,
            got,
            expected,
            ..
        } => {
            let part = if *in_header { "header" } else { "payload" };
            format!(
                "#{conn} {d} frame {index} TRUNCATED: stream ended after {got} of {expected} \
                 {part} bytes"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_decoded_and_bounded() {
        begin(FrameConfig::default());
        let c = open();
        sent(c, b"\x00\x00\x00\x04ho");
        sent(c, b"la");
        received(c, b"\x00\x00\x00\x04hola\x00\x00");
        for _ in 0..MAX_LINES + 5 {
            sent(c, b"\x00\x00\x00\x00");
        }
        let t = end();
        assert_eq!(t.lines.len(), MAX_LINES);
        assert!(t.lines[0].ends_with("frame 1 4 bytes text: hola"), "{t:?}");
        assert!(t.lines[0].starts_with(&format!("#{c} c2s")), "{t:?}");
        assert!(t.lines[1].contains("s2c"), "{t:?}");
        // 207 frames and the cut header of the answer: 8 past the limit.
        assert_eq!(t.dropped, 8, "{t:?}");
        assert_eq!(Transcript::from_json(&t.json()), t);
        // Nothing is recorded between checks.
        sent(c, b"\x00\x00\x00\x01x");
        assert_eq!(end(), Transcript::default());
    }
}
