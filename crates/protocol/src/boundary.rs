//! Where frames begin and end in a byte stream that arrives in pieces.
//!
//! Every program that follows frames needs the same few rules: a header of
//! `header_len` bytes, possibly split across reads, announces a payload
//! length; that many bytes follow, possibly split too; an empty payload ends
//! its frame with its header. The [`Decoder`](crate::Decoder) assembles
//! frames on these rules, and tools that only watch or disturb a stream (an
//! observer that keeps the first bytes of each frame, a fault schedule that
//! drops frame 3) follow them without assembling anything. They all use this
//! one type, so they cannot disagree about where a frame ends.

use crate::FrameConfig;

/// Which part of a frame a [`Span`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Length header bytes.
    Header,
    /// Payload bytes (in unframed mode: a piece of a message).
    Payload,
}

/// A run of input bytes inside one part of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// How many bytes of the input, from its start, the span covers.
    pub len: usize,
    /// Header or payload.
    pub part: Part,
    /// These are the first bytes of a frame.
    pub starts_frame: bool,
    /// These bytes complete the frame (its payload, or the header of an
    /// empty one).
    pub ends_frame: bool,
    /// On the span that completes a header: the payload length it
    /// announces. No limit is applied; the caller decides what is too large.
    pub announced: Option<u64>,
}

/// Where the tracker is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `got` header bytes of the next frame have arrived.
    Header { got: usize },
    /// Inside a payload of `len` bytes, `got` of which have arrived.
    Payload { len: u64, got: u64 },
}

/// Follows frame boundaries through a stream fed in pieces of any size,
/// holding no payload and doing no I/O: 8 header bytes and two counters.
///
/// Each call to [`next`](FrameBoundary::next) says how much of the input
/// lies in the current part of the current frame; the caller takes those
/// bytes and asks again with the rest.
///
/// ```
/// use trama_protocol::{FrameBoundary, FrameConfig, Part};
///
/// let mut b = FrameBoundary::new(FrameConfig::default());
/// let input = b"\x00\x00\x00\x02hi\x00\x00";
/// let header = b.next(input).unwrap();
/// assert_eq!((header.part, header.len, header.announced), (Part::Header, 4, Some(2)));
/// let payload = b.next(&input[4..]).unwrap();
/// assert_eq!((payload.part, payload.len, payload.ends_frame), (Part::Payload, 2, true));
/// let half = b.next(&input[6..]).unwrap();
/// assert!(half.starts_frame && half.announced.is_none());
/// assert!(b.next(&[]).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct FrameBoundary {
    config: FrameConfig,
    state: State,
    /// The header in progress, or the last complete one.
    header: [u8; 8],
}

impl FrameBoundary {
    /// A tracker for streams in `config`'s format.
    pub fn new(config: FrameConfig) -> FrameBoundary {
        FrameBoundary {
            config,
            state: State::Header { got: 0 },
            header: [0; 8],
        }
    }

    /// The wire format followed.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// The next span of `input`; `None` only for an empty input.
    ///
    /// In unframed mode each input is a message, handed out in pieces of at
    /// most `max_frame_len` bytes, each a whole frame (as a receiver reading
    /// that much at a time would see it).
    #[inline]
    pub fn next(&mut self, input: &[u8]) -> Option<Span> {
        if input.is_empty() {
            return None;
        }
        if self.config.is_unframed() {
            return Some(Span {
                len: input.len().min(self.config.max_frame_len().max(1)),
                part: Part::Payload,
                starts_frame: true,
                ends_frame: true,
                announced: None,
            });
        }
        let hl = self.config.header_len();
        Some(match self.state {
            State::Header { got } => {
                let take = (hl - got).min(input.len());
                self.header[got..got + take].copy_from_slice(&input[..take]);
                let got_now = got + take;
                let mut span = Span {
                    len: take,
                    part: Part::Header,
                    starts_frame: got == 0,
                    ends_frame: false,
                    announced: None,
                };
                if got_now < hl {
                    self.state = State::Header { got: got_now };
                } else {
                    let len = self.config.parse_header(&self.header[..hl]);
                    span.announced = Some(len);
                    span.ends_frame = len == 0;
                    self.state = if len == 0 {
                        State::Header { got: 0 }
                    } else {
                        State::Payload { len, got: 0 }
                    };
                }
                span
            }
            State::Payload { len, got } => {
                let left = len - got;
                let take = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                let got = got + take as u64;
                let ends = got == len;
                self.state = if ends {
                    State::Header { got: 0 }
                } else {
                    State::Payload { len, got }
                };
                Span {
                    len: take,
                    part: Part::Payload,
                    starts_frame: false,
                    ends_frame: ends,
                    announced: None,
                }
            }
        })
    }

    /// Between frames, when `input` starts with a whole frame whose header
    /// announces at most `limit` bytes: the payload's place in `input`, the
    /// frame stepped over in one call (the tracker stays between frames).
    /// `None`, with nothing consumed, in every other case, which
    /// [`next`](FrameBoundary::next) then takes part by part.
    ///
    /// This is a readiness loop's common case, many small frames in one
    /// read; one call per frame instead of one per part keeps it as cheap
    /// as a decoder with no tracker at all.
    #[inline]
    pub fn whole_frame(&self, input: &[u8], limit: u64) -> Option<std::ops::Range<usize>> {
        let hl = self.config.header_len();
        if hl == 0 || self.state != (State::Header { got: 0 }) || input.len() < hl {
            return None;
        }
        let len = self.config.parse_header(&input[..hl]);
        if len > limit || len > (input.len() - hl) as u64 {
            return None;
        }
        // len <= input.len(), a usize.
        Some(hl..hl + len as usize)
    }

    /// True between frames: a clean place for the stream to end.
    pub fn is_idle(&self) -> bool {
        self.state == State::Header { got: 0 }
    }

    /// Header bytes of the next frame that have arrived (0 inside a payload).
    pub fn header_got(&self) -> usize {
        match self.state {
            State::Header { got } => got,
            State::Payload { .. } => 0,
        }
    }

    /// Inside a payload: `(got, len)`, the bytes that arrived and the length
    /// announced.
    pub fn payload(&self) -> Option<(u64, u64)> {
        match self.state {
            State::Payload { len, got } => Some((got, len)),
            State::Header { .. } => None,
        }
    }

    /// The header in progress, or once complete the last whole header (for
    /// a caller that shows or replaces it).
    pub fn header(&self) -> &[u8] {
        match self.state {
            State::Header { got } if got > 0 => &self.header[..got],
            _ => &self.header[..self.config.header_len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderWidth;

    /// A span with its bytes: (part, bytes, starts, ends, announced).
    type Seen = (Part, Vec<u8>, bool, bool, Option<u64>);

    /// The spans of `input` fed in pieces cut at `cuts`.
    fn spans(b: &mut FrameBoundary, input: &[u8], cuts: &[usize]) -> Vec<Seen> {
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([&input.len()]) {
            let mut piece = &input[from..to];
            while let Some(s) = b.next(piece) {
                out.push((
                    s.part,
                    piece[..s.len].to_vec(),
                    s.starts_frame,
                    s.ends_frame,
                    s.announced,
                ));
                piece = &piece[s.len..];
            }
            from = to;
        }
        out
    }

    #[test]
    fn header_then_payload_then_an_empty_frame() {
        let mut b = FrameBoundary::new(FrameConfig::default());
        let got = spans(&mut b, b"\x00\x00\x00\x02hi\x00\x00\x00\x00", &[]);
        assert_eq!(
            got,
            [
                (
                    Part::Header,
                    b"\x00\x00\x00\x02".to_vec(),
                    true,
                    false,
                    Some(2)
                ),
                (Part::Payload, b"hi".to_vec(), false, true, None),
                (
                    Part::Header,
                    b"\x00\x00\x00\x00".to_vec(),
                    true,
                    true,
                    Some(0)
                ),
            ]
        );
        assert!(b.is_idle());
        assert_eq!(b.header(), b"\x00\x00\x00\x00");
    }

    #[test]
    fn a_split_header_is_held_and_shown_as_it_grows() {
        let mut b = FrameBoundary::new(FrameConfig::default());
        let got = spans(&mut b, b"\x00\x00\x00\x03abc", &[1, 3, 5]);
        let parts: Vec<_> = got.iter().map(|g| (g.0, g.1.len(), g.2, g.3)).collect();
        assert_eq!(
            parts,
            [
                (Part::Header, 1, true, false),
                (Part::Header, 2, false, false),
                (Part::Header, 1, false, false),
                (Part::Payload, 1, false, false),
                (Part::Payload, 2, false, true),
            ]
        );
        let mut b = FrameBoundary::new(FrameConfig::default());
        b.next(b"\x00\x00");
        assert_eq!(
            (b.header(), b.header_got(), b.is_idle()),
            (&b"\x00\x00"[..], 2, false)
        );
        assert_eq!(b.next(b"\x00\x09abc").map(|s| s.len), Some(2));
        assert_eq!(b.next(b"abc").map(|s| s.len), Some(3));
        assert_eq!(b.payload(), Some((3, 9)));
        assert_eq!(b.header(), b"\x00\x00\x00\x09");
    }

    #[test]
    fn a_huge_announcement_is_followed_not_judged() {
        let c = FrameConfig::builder()
            .width(HeaderWidth::Eight)
            .build()
            .unwrap();
        let mut b = FrameBoundary::new(c);
        let s = b.next(&[0xff; 12]).unwrap();
        assert_eq!(s.announced, Some(u64::MAX));
        let s = b.next(&[0; 4]).unwrap();
        assert_eq!((s.len, s.ends_frame), (4, false));
        assert_eq!(b.payload(), Some((4, u64::MAX)));
    }

    #[test]
    fn a_whole_frame_is_stepped_over_only_when_all_of_it_is_there() {
        let mut b = FrameBoundary::new(FrameConfig::default());
        assert_eq!(b.whole_frame(b"\x00\x00\x00\x02hi!", 16), Some(4..6));
        assert_eq!(b.whole_frame(b"\x00\x00\x00\x00", 16), Some(4..4));
        // Not all of it, over the limit, or not between frames: part by part.
        assert_eq!(b.whole_frame(b"\x00\x00\x00\x02h", 16), None);
        assert_eq!(b.whole_frame(b"\x00\x00\x00\x02hi", 1), None);
        b.next(b"\x00");
        assert_eq!(b.whole_frame(b"\x00\x00\x00\x02hi", 16), None);
        let b = FrameBoundary::new(FrameConfig::unframed());
        assert_eq!(b.whole_frame(b"hi", 16), None);
    }

    #[test]
    fn unframed_pieces_are_whole_frames_of_at_most_the_read_size() {
        let mut b = FrameBoundary::new(FrameConfig::unframed());
        let s = b.next(&[1; 5000]).unwrap();
        assert_eq!((s.len, s.starts_frame, s.ends_frame), (4096, true, true));
        assert!(b.is_idle());
    }
}
