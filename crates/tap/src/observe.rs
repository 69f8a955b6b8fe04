//! Watching a stream of frames go by without touching it.
//!
//! A proxy that shows "what is actually on the wire" must never change the
//! bytes it forwards, and must keep working when the bytes are wrong. So the
//! [`Observer`] is fed a *copy* of each chunk that passed (the proxy has
//! already forwarded or is about to forward the original) and answers with
//! [`Note`]s: a frame went by, a header announced more than the limit, the
//! stream ended inside a frame. It holds at most `show` payload bytes of the
//! frame in progress plus the header (never the whole frame), so a 16 MiB
//! frame costs the same memory as a 16-byte one. After a header over the
//! limit the observer stops decoding that direction (it can no longer tell
//! where frames start) and only counts the bytes that keep flowing.
//!
//! [`render`](crate::render) turns a payload (or the first bytes of one) into something a
//! person can read: UTF-8 text, JSON, MessagePack shown as JSON, or hex.

use trama_protocol::FrameConfig;

/// Which way bytes travel through a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client that connected to the proxy, towards the server.
    ClientToServer,
    /// From the server back to the client.
    ServerToClient,
}

impl Direction {
    /// `"c2s"` or `"s2c"`: the short names the tap's flags and output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }

    /// The other way.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// An arrow for people: `->` for client to server, `<-` for the answers.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "->",
            Direction::ServerToClient => "<-",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Direction, String> {
        match s {
            "c2s" => Ok(Direction::ClientToServer),
            "s2c" => Ok(Direction::ServerToClient),
            other => Err(format!("unknown direction {other:?} (expected c2s or s2c)")),
        }
    }
}

/// One frame that went by (in unframed mode: one chunk as it arrived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameNote {
    /// 1 for the first frame of this direction, then 2, 3, ...
    pub index: u64,
    /// Stream offset of the frame's first byte (its header).
    pub offset: u64,
    /// Payload length in bytes (not counting the header).
    pub len: u64,
    /// The first `min(len, show)` payload bytes.
    pub head: Vec<u8>,
}

impl FrameNote {
    /// True when `head` is only the start of the payload.
    pub fn is_cut(&self) -> bool {
        (self.head.len() as u64) < self.len
    }
}

/// What an [`Observer`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A whole frame passed.
    Frame(FrameNote),
    /// A header announced more than the limit. The bytes still pass; this
    /// observer stops decoding the direction, since where the next frame
    /// starts is unknown from here on.
    Oversize {
        /// The frame number this header would have had.
        index: u64,
        /// Stream offset of the header.
        offset: u64,
        /// The length the header announced.
        len: u64,
        /// The limit in force.
        limit: u64,
        /// The header bytes as they arrived.
        header: Vec<u8>,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// The frame number that was cut.
        index: u64,
        /// Stream offset of the cut frame's header.
        offset: u64,
        /// True if the stream ended inside the header itself.
        in_header: bool,
        /// Bytes of the header (if `in_header`) or of the payload that arrived.
        got: u64,
        /// Bytes the header (if `in_header`) or the payload should have had.
        expected: u64,
    },
}

/// Where the observer is in the stream.
#[derive(Debug)]
enum State {
    /// Collecting header bytes (`got` of them so far).
    Header { got: usize },
    /// Inside a payload of `len` bytes, `got` of which have passed.
    Payload { len: u64, got: u64 },
    /// After a header over the limit: counting bytes only.
    Lost,
}

/// Follows one direction of a stream and reports each frame as it completes.
///
/// ```
/// use trama_protocol::FrameConfig;
/// use trama_tap::{Note, Observer};
///
/// let mut obs = Observer::new(FrameConfig::default(), 2);
/// let mut notes = Vec::new();
/// obs.feed(b"\x00\x00\x00\x04ho", &mut notes);
/// assert!(notes.is_empty());
/// obs.feed(b"la", &mut notes);
/// match &notes[0] {
///     Note::Frame(f) => assert_eq!((f.len, &f.head[..]), (4, &b"ho"[..])),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct Observer {
    config: FrameConfig,
    show: usize,
    state: State,
    header: [u8; 8],
    head: Vec<u8>,
    /// Bytes seen so far.
    offset: u64,
    /// Offset of the current frame's first byte.
    frame_start: u64,
    /// Frames started so far.
    frames: u64,
    /// Bytes that passed after decoding stopped.
    skipped: u64,
}

impl Observer {
    /// Observe a stream in `config`'s format, keeping at most `show` payload
    /// bytes of each frame.
    pub fn new(config: FrameConfig, show: usize) -> Observer {
        Observer {
            config,
            show,
            state: State::Header { got: 0 },
            header: [0; 8],
            head: Vec::new(),
            offset: 0,
            frame_start: 0,
            frames: 0,
            skipped: 0,
        }
    }

    /// The wire format being followed.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes that went by after a header over the limit, undecoded.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// True once a header over the limit stopped the decoding.
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Heap bytes held for the frame in progress (at most `show`).
    pub fn buffered_capacity(&self) -> usize {
        self.head.capacity()
    }

    /// Follow `input`, the next bytes of the stream, appending what completed to `notes`.
    ///
    /// In unframed mode each input is one message (cut into pieces of at most
    /// the configured read size, as a receiver reading that much at a time
    /// would see it).
    pub fn feed(&mut self, mut input: &[u8], notes: &mut Vec<Note>) {
        if self.config.is_unframed() {
            for chunk in input.chunks(self.config.max_frame_len().max(1)) {
                self.frames += 1;
                let keep = chunk.len().min(self.show);
                notes.push(Note::Frame(FrameNote {
                    index: self.frames,
                    offset: self.offset,
                    len: chunk.len() as u64,
                    head: chunk[..keep].to_vec(),
                }));
                self.offset += chunk.len() as u64;
            }
            return;
        }
        let hl = self.config.header_len();
        while !input.is_empty() {
            match self.state {
                State::Lost => {
                    self.skipped += input.len() as u64;
                    self.offset += input.len() as u64;
                    return;
                }
                State::Header { got } => {
                    if got == 0 {
                        self.frame_start = self.offset;
                        self.frames += 1;
                    }
                    let take = (hl - got).min(input.len());
                    self.header[got..got + take].copy_from_slice(&input[..take]);
                    input = &input[take..];
                    self.offset += take as u64;
                    if got + take < hl {
                        self.state = State::Header { got: got + take };
                        continue;
                    }
                    let len = self.config.parse_header(&self.header[..hl]);
                    let limit = self.config.max_frame_len() as u64;
                    if len > limit {
                        notes.push(Note::Oversize {
                            index: self.frames,
                            offset: self.frame_start,
                            len,
                            limit,
                            header: self.header[..hl].to_vec(),
                        });
                        self.state = State::Lost;
                        continue;
                    }
                    self.state = State::Payload { len, got: 0 };
                    self.complete_if_done(notes);
                }
                State::Payload { len, got } => {
                    let want = len - got;
                    let take = usize::try_from(want).map_or(input.len(), |w| w.min(input.len()));
                    let room = self.show.saturating_sub(self.head.len()).min(take);
                    if room > 0 {
                        // Reserve once, to what this frame can show at most.
                        if self.head.capacity() == 0 {
                            let cap = usize::try_from(len).map_or(self.show, |l| l.min(self.show));
                            self.head.reserve_exact(cap);
                        }
                        self.head.extend_from_slice(&input[..room]);
                    }
                    input = &input[take..];
                    self.offset += take as u64;
                    self.state = State::Payload {
                        len,
                        got: got + take as u64,
                    };
                    self.complete_if_done(notes);
                }
            }
        }
    }

    fn complete_if_done(&mut self, notes: &mut Vec<Note>) {
        if let State::Payload { len, got } = self.state {
            if got == len {
                notes.push(Note::Frame(FrameNote {
                    index: self.frames,
                    offset: self.frame_start,
                    len,
                    head: std::mem::take(&mut self.head),
                }));
                self.state = State::Header { got: 0 };
            }
        }
    }

    /// The stream ended: a [`Note::Truncated`] if it ended inside a frame.
    pub fn finish(&self) -> Option<Note> {
        match self.state {
            State::Header { got } if got > 0 => Some(Note::Truncated {
                index: self.frames,
                offset: self.frame_start,
                in_header: true,
                got: got as u64,
                expected: self.config.header_len() as u64,
            }),
            State::Payload { len, got } => Some(Note::Truncated {
                index: self.frames,
                offset: self.frame_start,
                in_header: false,
                got,
                expected: len,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::HeaderWidth;

    fn wire(config: FrameConfig, frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            config.encode(f, &mut out).unwrap();
        }
        out
    }

    fn frames(notes: &[Note]) -> Vec<(u64, u64, u64, Vec<u8>)> {
        notes
            .iter()
            .map(|n| match n {
                Note::Frame(f) => (f.index, f.offset, f.len, f.head.clone()),
                other => panic!("not a frame: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_split_point_gives_the_same_notes() {
        let config = FrameConfig::default();
        let bytes = wire(config, &[b"hola", b"", &[7u8; 300], b"chao"]);
        let expected = vec![
            (1, 0, 4, b"hola".to_vec()),
            (2, 8, 0, vec![]),
            (3, 12, 300, vec![7u8; 10]),
            (4, 316, 4, b"chao".to_vec()),
        ];
        for cut in 0..=bytes.len() {
            let mut obs = Observer::new(config, 10);
            let mut notes = Vec::new();
            obs.feed(&bytes[..cut], &mut notes);
            obs.feed(&bytes[cut..], &mut notes);
            assert_eq!(frames(&notes), expected, "cut at {cut}");
            assert_eq!(obs.finish(), None);
            assert_eq!(obs.offset(), bytes.len() as u64);
        }
        // And one byte at a time.
        let mut obs = Observer::new(config, 10);
        let mut notes = Vec::new();
        for b in &bytes {
            obs.feed(std::slice::from_ref(b), &mut notes);
        }
        assert_eq!(frames(&notes), expected);
    }

    #[test]
    fn a_large_frame_costs_only_the_shown_bytes() {
        let mut obs = Observer::new(FrameConfig::default(), 16);
        let mut notes = Vec::new();
        obs.feed(b"\x01\x00\x00\x00", &mut notes);
        for _ in 0..256 {
            obs.feed(&[b'x'; 65536], &mut notes);
            assert!(obs.buffered_capacity() <= 16);
        }
        let f = frames(&notes);
        assert_eq!(f, vec![(1, 0, 16 << 20, vec![b'x'; 16])]);
        match &notes[0] {
            Note::Frame(n) => assert!(n.is_cut()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_header_over_the_limit_is_reported_then_bytes_are_counted() {
        let mut obs = Observer::new(FrameConfig::default(), 8);
        let mut notes = Vec::new();
        obs.feed(b"\x00\x00\x00\x01a\xff\xff\xff\xffxyz", &mut notes);
        obs.feed(b"more", &mut notes);
        assert_eq!(notes.len(), 2);
        assert_eq!(
            notes[1],
            Note::Oversize {
                index: 2,
                offset: 5,
                len: u32::MAX as u64,
                limit: 16 << 20,
                header: vec![0xff; 4],
            }
        );
        assert!(obs.is_lost());
        assert_eq!(obs.skipped(), 7);
        assert_eq!(obs.offset(), 16);
        assert_eq!(obs.buffered_capacity(), 0);
        assert_eq!(obs.finish(), None);
    }

    #[test]
    fn truncation_says_where_and_how_much() {
        let config = FrameConfig::default();
        let mut obs = Observer::new(config, 8);
        let mut notes = Vec::new();
        obs.feed(b"\x00\x00\x00\x01a\x00\x00", &mut notes);
        assert_eq!(
            obs.finish(),
            Some(Note::Truncated {
                index: 2,
                offset: 5,
                in_header: true,
                got: 2,
                expected: 4
            })
        );
        obs.feed(b"\x00\x09abc", &mut notes);
        assert_eq!(
            obs.finish(),
            Some(Note::Truncated {
                index: 2,
                offset: 5,
                in_header: false,
                got: 3,
                expected: 9
            })
        );
    }

    #[test]
    fn every_width_and_order() {
        for width in [
            HeaderWidth::One,
            HeaderWidth::Two,
            HeaderWidth::Four,
            HeaderWidth::Eight,
        ] {
            for little in [false, true] {
                let mut b = FrameConfig::builder().width(width).max_frame_len(200);
                if little {
                    b = b.little_endian();
                }
                let config = b.build().unwrap();
                let bytes = wire(config, &[b"abc", &[1u8; 200]]);
                let mut obs = Observer::new(config, 3);
                let mut notes = Vec::new();
                obs.feed(&bytes, &mut notes);
                let hl = width.bytes() as u64;
                assert_eq!(
                    frames(&notes),
                    vec![(1, 0, 3, b"abc".to_vec()), (2, hl + 3, 200, vec![1u8; 3])],
                    "{width:?} little={little}"
                );
            }
        }
    }

    #[test]
    fn unframed_chunks_are_notes() {
        let mut obs = Observer::new(FrameConfig::unframed(), 4);
        let mut notes = Vec::new();
        obs.feed(b"hola", &mut notes);
        obs.feed(&[b'z'; 5000], &mut notes);
        assert_eq!(
            frames(&notes),
            vec![
                (1, 0, 4, b"hola".to_vec()),
                (2, 4, 4096, b"zzzz".to_vec()),
                (3, 4100, 904, b"zzzz".to_vec())
            ]
        );
        assert_eq!(obs.finish(), None);
    }
}
