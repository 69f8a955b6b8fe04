//! The wire formats trama-bench speaks, and a frame counter that reads
//! replies without keeping them.
//!
//! Fixed-width length headers (the notes' 4-byte big-endian one, and the
//! other widths and byte orders) are described by trama-protocol's
//! [`FrameConfig`], so trama-bench frames exactly as trama does. The one
//! format trama-protocol has no header for is message-io's `FramedTcp`: the
//! payload length as an unsigned LEB128 varint. It lives here, with its
//! tests, because only the load generator needs it (to measure the closest
//! Rust peer with the same tool).
//!
//! A load generator only needs to know where each reply ends, not what it
//! says, so [`FrameCounter`] skips payload bytes instead of collecting them:
//! a connection costs a few bytes of state however large the replies are.
//! For fixed-width headers it follows trama-protocol's `FrameBoundary`, the
//! tracker the `Decoder` is built on.

use trama_protocol::{ByteOrder, FrameBoundary, FrameConfig, HeaderWidth};

/// The longest LEB128 encoding of a `u64`: 10 bytes of 7 bits each.
pub const VARINT_MAX_BYTES: usize = 10;

/// What went wrong with a framing choice or a reply's header.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// `--framing` named no known format.
    #[error("unknown framing {0:?} (choose be32, le32, be16, le16, u8, be64, le64 or varint)")]
    UnknownFraming(String),
    /// A header announced more than the limit (a server out of step, or the wrong `--framing`).
    #[error("a frame announced {len} bytes, over the limit of {limit} (wrong --framing?)")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A varint length kept its continuation bit past the 10th byte, or overflowed 64 bits.
    #[error("a varint length header is longer than {VARINT_MAX_BYTES} bytes or overflows 64 bits")]
    BadVarint,
    /// trama-protocol refused the format or a length (its message).
    #[error("{0}")]
    Protocol(String),
}

/// How a frame's length is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// A fixed-width length header, as trama-protocol describes it.
    Prefix(FrameConfig),
    /// message-io `FramedTcp`: an unsigned LEB128 varint length (low 7 bits
    /// first, 0x80 on every byte but the last), then the payload.
    Varint {
        /// Largest payload accepted in a reply or sent.
        max_frame_len: u64,
    },
}

impl Wire {
    /// The format called `name` (`be32`, `le32`, `be16`, `le16`, `u8`,
    /// `be64`, `le64`, `varint`) with a payload limit of `max_frame_len`
    /// (lowered to what a narrow header can express).
    pub fn parse(name: &str, max_frame_len: usize) -> Result<Wire, WireError> {
        let (width, order) = match name {
            "varint" => {
                return Ok(Wire::Varint {
                    max_frame_len: max_frame_len as u64,
                })
            }
            "be32" | "u32be" => (HeaderWidth::Four, ByteOrder::Big),
            "le32" | "u32le" => (HeaderWidth::Four, ByteOrder::Little),
            "be16" | "u16be" => (HeaderWidth::Two, ByteOrder::Big),
            "le16" | "u16le" => (HeaderWidth::Two, ByteOrder::Little),
            "u8" => (HeaderWidth::One, ByteOrder::Big),
            "be64" | "u64be" => (HeaderWidth::Eight, ByteOrder::Big),
            "le64" | "u64le" => (HeaderWidth::Eight, ByteOrder::Little),
            other => return Err(WireError::UnknownFraming(other.to_string())),
        };
        let limit = usize::try_from(width.max_len())
            .unwrap_or(usize::MAX)
            .min(max_frame_len);
        let config = FrameConfig::builder()
            .width(width)
            .order(order)
            .max_frame_len(limit)
            .build()
            .map_err(|e| WireError::Protocol(e.to_string()))?;
        Ok(Wire::Prefix(config))
    }

    /// The name `parse` accepts for this format.
    pub fn name(&self) -> &'static str {
        match self {
            Wire::Varint { .. } => "varint",
            Wire::Prefix(c) => match (c.width(), c.order()) {
                (HeaderWidth::One, _) => "u8",
                (HeaderWidth::Two, ByteOrder::Big) => "be16",
                (HeaderWidth::Two, ByteOrder::Little) => "le16",
                (HeaderWidth::Four, ByteOrder::Big) => "be32",
                (HeaderWidth::Four, ByteOrder::Little) => "le32",
                (HeaderWidth::Eight, ByteOrder::Big) => "be64",
                (HeaderWidth::Eight, ByteOrder::Little) => "le64",
            },
        }
    }

    /// The payload limit.
    pub fn max_frame_len(&self) -> u64 {
        match self {
            Wire::Prefix(c) => c.max_frame_len() as u64,
            Wire::Varint { max_frame_len } => *max_frame_len,
        }
    }

    /// Append one frame (header, then `payload`) to `out`; refuses a payload
    /// over the limit before touching `out`.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        match self {
            Wire::Prefix(c) => c
                .encode(payload, out)
                .map_err(|e| WireError::Protocol(e.to_string())),
            Wire::Varint { max_frame_len } => {
                let len = payload.len() as u64;
                if len > *max_frame_len {
                    return Err(WireError::TooLarge {
                        len,
                        limit: *max_frame_len,
                    });
                }
                encode_varint(len, out);
                out.extend_from_slice(payload);
                Ok(())
            }
        }
    }

    /// One frame whose payload is `size` bytes of `b'x'`: what every request is.
    pub fn request(&self, size: usize) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(size + VARINT_MAX_BYTES);
        self.encode(&vec![b'x'; size], &mut out)?;
        Ok(out)
    }
}

/// Append `n` as an unsigned LEB128 varint: 7 bits a byte, lowest first,
/// 0x80 set on every byte but the last (1 to 10 bytes).
pub fn encode_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Read an unsigned LEB128 varint from the start of `bytes`: `Some((value,
/// bytes used))`, `None` if `bytes` ends inside it, or an error if it runs
/// past 10 bytes or past 64 bits.
pub fn decode_varint(bytes: &[u8]) -> Result<Option<(u64, usize)>, WireError> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(VARINT_MAX_BYTES).enumerate() {
        let bits = u64::from(b & 0x7f);
        // The 10th byte holds bit 63 only.
        if i == VARINT_MAX_BYTES - 1 && bits > 1 {
            return Err(WireError::BadVarint);
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= VARINT_MAX_BYTES {
        return Err(WireError::BadVarint);
    }
    Ok(None)
}

/// Counts the frames in a byte stream fed in pieces of any size, keeping
/// only the header being read and how many payload bytes are still to come.
///
/// Fixed-width headers are followed by trama-protocol's [`FrameBoundary`],
/// the tracker its `Decoder` builds on, so trama-bench and trama cannot
/// disagree about where a frame ends; the varint header, which trama-protocol
/// does not speak, keeps its own few lines here.
#[derive(Debug, Clone)]
pub struct FrameCounter {
    limit: u64,
    tracker: Tracker,
    failed: Option<WireError>,
}

#[derive(Debug, Clone)]
enum Tracker {
    Prefix(FrameBoundary),
    Varint {
        header: [u8; VARINT_MAX_BYTES],
        header_got: usize,
        /// Payload bytes of the current frame still to skip; `None` between payloads.
        body_left: Option<u64>,
    },
}

impl FrameCounter {
    /// A counter for `wire`.
    pub fn new(wire: Wire) -> FrameCounter {
        let tracker = match wire {
            Wire::Prefix(config) => Tracker::Prefix(FrameBoundary::new(config)),
            Wire::Varint { .. } => Tracker::Varint {
                header: [0; VARINT_MAX_BYTES],
                header_got: 0,
                body_left: None,
            },
        };
        FrameCounter {
            limit: wire.max_frame_len(),
            tracker,
            failed: None,
        }
    }

    /// True between frames: a clean place for the stream to end.
    pub fn is_idle(&self) -> bool {
        match &self.tracker {
            Tracker::Prefix(b) => b.is_idle(),
            Tracker::Varint {
                header_got,
                body_left,
                ..
            } => *header_got == 0 && body_left.is_none(),
        }
    }

    /// Feed the next bytes of the stream; returns how many frames ended in
    /// them. After a bad header the stream is out of step, and every later
    /// call returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<u64, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let limit = self.limit;
        let counted = match &mut self.tracker {
            Tracker::Prefix(b) => count_prefix(b, input, limit),
            Tracker::Varint {
                header,
                header_got,
                body_left,
            } => count_varint(header, header_got, body_left, input, limit),
        };
        counted.inspect_err(|e| self.failed = Some(e.clone()))
    }
}

/// The frames ending in `input` by `b`'s rules; a header over `limit` is an error.
fn count_prefix(b: &mut FrameBoundary, mut input: &[u8], limit: u64) -> Result<u64, WireError> {
    let mut frames = 0;
    // Between frames with whole small replies in the input: one step each.
    while let Some(payload) = b.whole_frame(input, limit) {
        input = &input[payload.end..];
        frames += 1;
    }
    while let Some(span) = b.next(input) {
        input = &input[span.len..];
        if let Some(len) = span.announced {
            if len > limit {
                return Err(WireError::TooLarge { len, limit });
            }
        }
        if span.ends_frame {
            frames += 1;
        }
    }
    Ok(frames)
}

/// The frames ending in `input` with varint headers, `header[..header_got]`
/// being the header in progress and `body_left` the payload still to skip.
fn count_varint(
    header: &mut [u8; VARINT_MAX_BYTES],
    header_got: &mut usize,
    body_left: &mut Option<u64>,
    mut input: &[u8],
    limit: u64,
) -> Result<u64, WireError> {
    let mut frames = 0;
    while !input.is_empty() {
        if let Some(left) = *body_left {
            let take = left.min(input.len() as u64);
            input = &input[take as usize..];
            if take == left {
                *body_left = None;
                frames += 1;
            } else {
                *body_left = Some(left - take);
            }
            continue;
        }
        let before = *header_got;
        let take = (VARINT_MAX_BYTES - before).min(input.len());
        header[before..before + take].copy_from_slice(&input[..take]);
        *header_got += take;
        let Some((len, used)) = decode_varint(&header[..*header_got])? else {
            input = &input[take..];
            continue;
        };
        input = &input[used - before..];
        *header_got = 0;
        if len > limit {
            return Err(WireError::TooLarge { len, limit });
        }
        if len == 0 {
            frames += 1;
        } else {
            *body_left = Some(len);
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&str; 8] = [
        "be32", "le32", "be16", "le16", "u8", "be64", "le64", "varint",
    ];

    #[test]
    fn varint_known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, b"\x00"),
            (1, b"\x01"),
            (127, b"\x7f"),
            (128, b"\x80\x01"),
            (300, b"\xac\x02"),
            (16_384, b"\x80\x80\x01"),
            (u64::MAX, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
        ];
        for (n, bytes) in cases {
            let mut out = Vec::new();
            encode_varint(*n, &mut out);
            assert_eq!(out, *bytes, "{n}");
            assert_eq!(decode_varint(bytes).unwrap(), Some((*n, bytes.len())));
            // Every proper prefix is incomplete, not an error.
            for cut in 0..bytes.len() {
                assert_eq!(decode_varint(&bytes[..cut]).unwrap(), None, "{n} cut {cut}");
            }
        }
    }

    #[test]
    fn varint_too_long_or_overflowing_is_refused() {
        assert_eq!(decode_varint(&[0x80; 11]), Err(WireError::BadVarint));
        assert_eq!(decode_varint(&[0x80; 10]), Err(WireError::BadVarint));
        // 10th byte with more than bit 63.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(decode_varint(&over), Err(WireError::BadVarint));
    }

    #[test]
    fn every_framing_round_trips_through_the_counter_at_every_split() {
        for name in ALL {
            let wire = Wire::parse(name, 1 << 20).unwrap();
            let sizes = [0usize, 1, 5, 127, 128, 200, 255];
            let mut stream = Vec::new();
            for s in sizes {
                wire.encode(&vec![7u8; s], &mut stream).unwrap();
            }
            assert_eq!(wire.name(), name);
            for cut in 0..=stream.len() {
                let mut c = FrameCounter::new(wire);
                let n = c.feed(&stream[..cut]).unwrap() + c.feed(&stream[cut..]).unwrap();
                assert_eq!(n, sizes.len() as u64, "{name} cut at {cut}");
                assert!(c.is_idle());
            }
            let mut c = FrameCounter::new(wire);
            let n: u64 = stream.iter().map(|b| c.feed(&[*b]).unwrap()).sum();
            assert_eq!(n, sizes.len() as u64, "{name} byte by byte");
        }
    }

    #[test]
    fn fixed_headers_match_trama_protocol() {
        let wire = Wire::parse("be32", 1 << 20).unwrap();
        assert_eq!(wire.request(3).unwrap(), b"\x00\x00\x00\x03xxx");
        let wire = Wire::parse("le16", 1 << 20).unwrap();
        assert_eq!(wire.request(2).unwrap(), b"\x02\x00xx");
        let wire = Wire::parse("varint", 1 << 20).unwrap();
        assert_eq!(wire.request(200).unwrap()[..2], *b"\xc8\x01");
    }

    #[test]
    fn narrow_headers_lower_the_limit() {
        let wire = Wire::parse("u8", 1 << 20).unwrap();
        assert_eq!(wire.max_frame_len(), 255);
        assert!(wire.request(256).is_err());
    }

    #[test]
    fn oversize_reply_is_an_error_that_sticks() {
        let wire = Wire::parse("be32", 1000).unwrap();
        let mut c = FrameCounter::new(wire);
        let e = c.feed(b"\x00\x00\x10\x00").unwrap_err();
        assert_eq!(
            e,
            WireError::TooLarge {
                len: 4096,
                limit: 1000
            }
        );
        assert!(c.feed(b"\x00\x00\x00\x00").is_err());
        let wire = Wire::parse("varint", 1000).unwrap();
        let mut c = FrameCounter::new(wire);
        assert_eq!(c.feed(&[0x80; 4]).unwrap(), 0);
        assert_eq!(c.feed(&[0x80; 7]), Err(WireError::BadVarint));
    }

    #[test]
    fn unknown_framing_names_the_choices() {
        let e = Wire::parse("be24", 100).unwrap_err();
        assert!(e.to_string().contains("varint"), "{e}");
    }
}
