//! A sans-IO incremental decoder: feed bytes as they arrive, get whole frames.

use crate::{Error, FrameConfig, Result};

/// Turns a byte stream, fed in pieces of any size, into frames.
///
/// It does no I/O: the caller reads from wherever bytes come from (a socket
/// in a readiness loop, a test vector split at every byte) and passes them to
/// [`decode`](Decoder::decode). Frames that arrive whole inside one input are
/// handed out as slices of that input, with no copy and no allocation; only a
/// frame that straddles two inputs is assembled in an internal buffer, which
/// grows as its bytes arrive (never to the length a header merely announces)
/// and is freed as soon as the frame is complete. An idle decoder holds no heap
/// memory.
///
/// ```
/// use trama_protocol::{Decoder, FrameConfig};
///
/// let mut dec = Decoder::new(FrameConfig::default());
/// let mut got = Vec::new();
/// // "hola" split across two reads, then "chao" whole.
/// dec.decode(b"\x00\x00\x00\x04ho", |f| got.push(f.to_vec()))?;
/// dec.decode(b"la\x00\x00\x00\x04chao", |f| got.push(f.to_vec()))?;
/// assert_eq!(got, [b"hola".to_vec(), b"chao".to_vec()]);
/// assert!(dec.is_idle());
/// # Ok::<(), trama_protocol::Error>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    config: FrameConfig,
    header: [u8; 8],
    header_got: usize,
    /// Length of the frame whose payload is being assembled.
    body_len: Option<usize>,
    body: Vec<u8>,
    /// Set after a bad header: the stream is out of step and stays refused.
    failed: Option<(u64, u64)>,
}

impl Decoder {
    /// A decoder for the given wire format.
    pub fn new(config: FrameConfig) -> Decoder {
        Decoder {
            config,
            header: [0; 8],
            header_got: 0,
            body_len: None,
            body: Vec::new(),
            failed: None,
        }
    }

    /// The wire format.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// True when no partial frame is held: a clean place for the stream to end.
    pub fn is_idle(&self) -> bool {
        self.header_got == 0 && self.body_len.is_none()
    }

    /// Heap bytes held for a partial frame (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Decode `input`, calling `on_frame` with each complete payload in order.
    ///
    /// In unframed mode each input is one message, cut into pieces of at most
    /// `max_frame_len` bytes. On a header over the limit this returns
    /// [`Error::FrameTooLarge`] before any memory is committed to it; the
    /// stream cannot be resynchronised after that, so every later call
    /// returns the same error.
    pub fn decode(&mut self, input: &[u8], mut on_frame: impl FnMut(&[u8])) -> Result<()> {
        self.decode_pieces(input, |piece| match piece {
            Piece::Input(f) => on_frame(f),
            Piece::Assembled(f) => on_frame(&f),
        })
    }

    /// Like [`decode`](Decoder::decode), handing out each payload as an
    /// owned vector: a frame assembled across inputs is moved out rather
    /// than copied, which matters for large frames.
    pub fn decode_owned(&mut self, input: &[u8], mut on_frame: impl FnMut(Vec<u8>)) -> Result<()> {
        self.decode_pieces(input, |piece| match piece {
            Piece::Input(f) => on_frame(f.to_vec()),
            Piece::Assembled(f) => on_frame(f),
        })
    }

    fn decode_pieces(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(Piece<'_>),
    ) -> Result<()> {
        if let Some((len, limit)) = self.failed {
            return Err(Error::FrameTooLarge { len, limit });
        }
        if self.config.is_unframed() {
            for chunk in input.chunks(self.config.max_frame_len()) {
                on_frame(Piece::Input(chunk));
            }
            return Ok(());
        }
        let hl = self.config.header_len();
        while !input.is_empty() {
            let len = match self.body_len {
                Some(len) => len,
                None if self.header_got == 0 && input.len() >= hl => {
                    // Fast path: the whole header is in this input.
                    let len = self.check(self.config.parse_header(&input[..hl]))?;
                    input = &input[hl..];
                    if input.len() >= len {
                        on_frame(Piece::Input(&input[..len]));
                        input = &input[len..];
                        continue;
                    }
                    self.body_len = Some(len);
                    len
                }
                None => {
                    let take = (hl - self.header_got).min(input.len());
                    self.header[self.header_got..self.header_got + take]
                        .copy_from_slice(&input[..take]);
                    self.header_got += take;
                    input = &input[take..];
                    if self.header_got < hl {
                        return Ok(());
                    }
                    self.header_got = 0;
                    let len = self.check(self.config.parse_header(&self.header[..hl]))?;
                    self.body_len = Some(len);
                    len
                }
            };
            let take = (len - self.body.len()).min(input.len());
            self.grow(len, take);
            self.body.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.body.len() == len {
                self.body_len = None;
                on_frame(Piece::Assembled(std::mem::take(&mut self.body)));
            }
        }
        Ok(())
    }

    /// Like [`decode`](Decoder::decode), collecting the frames into owned vectors.
    pub fn decode_vec(&mut self, input: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut frames = Vec::new();
        self.decode_owned(input, |f| frames.push(f))?;
        Ok(frames)
    }

    /// Call at end of stream: `Ok` if it ended between frames, otherwise the
    /// error that says how much of the last frame was missing.
    pub fn finish(&self) -> Result<()> {
        if self.header_got > 0 {
            return Err(Error::TruncatedHeader {
                got: self.header_got,
                expected: self.config.header_len(),
            });
        }
        if let Some(len) = self.body_len {
            return Err(Error::TruncatedPayload {
                got: self.body.len() as u64,
                expected: len as u64,
            });
        }
        Ok(())
    }

    fn check(&mut self, len: u64) -> Result<usize> {
        let limit = self.config.max_frame_len() as u64;
        if len > limit {
            self.failed = Some((len, limit));
            return Err(Error::FrameTooLarge { len, limit });
        }
        // len <= max_frame_len, which is a usize.
        Ok(len as usize)
    }

    /// Make room for `take` more bytes of a `len`-byte frame: geometric growth
    /// so small pieces stay cheap, capped at `len` so a header's word alone
    /// never commits memory. Room for twice what has arrived is taken at
    /// once: a frame that comes in two reads (a 64 KiB frame behind its
    /// header, the common case of a large message) is then assembled with
    /// one allocation instead of an allocation and a copying `realloc`,
    /// while what is held stays within twice the bytes actually received.
    fn grow(&mut self, len: usize, take: usize) {
        let need = self.body.len() + take;
        if need > self.body.capacity() {
            let target = need
                .saturating_mul(2)
                .max(self.body.capacity() * 2)
                .min(len);
            self.body.reserve_exact(target - self.body.len());
        }
    }
}

/// A complete payload: a slice of the input, or assembled across inputs.
enum Piece<'a> {
    Input(&'a [u8]),
    Assembled(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderWidth;

    fn wire(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            FrameConfig::default().encode(f, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let frames: &[&[u8]] = &[b"hola", b"", b"chao", &[0xff; 300]];
        let bytes = wire(frames);
        for cut in 0..=bytes.len() {
            let mut dec = Decoder::new(FrameConfig::default());
            let mut got = dec.decode_vec(&bytes[..cut]).unwrap();
            got.extend(dec.decode_vec(&bytes[cut..]).unwrap());
            assert_eq!(got, frames, "cut at {cut}");
            assert!(dec.is_idle());
            assert_eq!(dec.buffered_capacity(), 0);
            dec.finish().unwrap();
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let frames: &[&[u8]] = &[b"a", b"", b"bcd"];
        let mut dec = Decoder::new(FrameConfig::default());
        let mut got = Vec::new();
        for b in wire(frames) {
            got.extend(dec.decode_vec(&[b]).unwrap());
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn hostile_header_is_refused_before_allocating() {
        let mut dec = Decoder::new(FrameConfig::default());
        let e = dec.decode_vec(b"\xff\xff\xff\xffxyz").unwrap_err();
        assert_eq!(
            e.to_string(),
            "frame of 4294967295 bytes exceeds the limit of 16777216"
        );
        assert_eq!(dec.buffered_capacity(), 0);
        // The stream stays refused.
        assert!(dec.decode_vec(b"\x00\x00\x00\x00").is_err());
    }

    #[test]
    fn header_split_then_oversize() {
        let mut dec = Decoder::new(FrameConfig::default());
        assert!(dec.decode_vec(b"\x7f\xff").unwrap().is_empty());
        assert!(dec.decode_vec(b"\xff\xff").is_err());
    }

    #[test]
    fn a_frame_read_in_two_pieces_needs_one_allocation_and_holds_at_most_twice_what_came() {
        let payload = vec![9u8; 65536];
        let bytes = wire(&[&payload]);
        // The first read brings the header and most of the payload.
        let first = 60_000;
        let mut dec = Decoder::new(FrameConfig::default());
        assert!(dec.decode_vec(&bytes[..first]).unwrap().is_empty());
        let held = dec.buffered_capacity();
        assert!(held >= payload.len(), "room for the rest up front: {held}");
        assert!(held <= 2 * (first - 4), "{held}");
        let got = dec.decode_vec(&bytes[first..]).unwrap();
        assert_eq!(got, [payload]);
        assert_eq!(dec.buffered_capacity(), 0);
        // A trickle still commits at most twice what arrived.
        let mut dec = Decoder::new(FrameConfig::default());
        dec.decode_vec(&bytes[..4]).unwrap();
        for (i, b) in bytes[4..5000].iter().enumerate() {
            dec.decode_vec(std::slice::from_ref(b)).unwrap();
            assert!(
                dec.buffered_capacity() <= 2 * (i + 1).max(1) + 8,
                "after {i}"
            );
        }
    }

    #[test]
    fn large_announced_frame_grows_only_with_what_arrived() {
        let mut dec = Decoder::new(FrameConfig::default());
        // Announce 16 MiB, deliver 10 bytes.
        dec.decode_vec(b"\x01\x00\x00\x00").unwrap();
        dec.decode_vec(&[1u8; 10]).unwrap();
        assert!(dec.buffered_capacity() < 1024);
        assert_eq!(
            dec.finish().unwrap_err().to_string(),
            "stream ended after 10 of 16777216 payload bytes"
        );
    }

    #[test]
    fn truncated_header_at_eof() {
        let mut dec = Decoder::new(FrameConfig::default());
        dec.decode_vec(b"\x00\x00\x00").unwrap();
        assert_eq!(
            dec.finish().unwrap_err().to_string(),
            "stream ended after 3 of 4 header bytes"
        );
    }

    #[test]
    fn unframed_hands_out_each_input_in_read_sized_pieces() {
        let mut dec = Decoder::new(FrameConfig::unframed());
        let got = dec.decode_vec(&[9u8; 5000]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), 4096);
        assert_eq!(got[1].len(), 904);
        assert!(dec.decode_vec(b"").unwrap().is_empty());
    }

    #[test]
    fn one_byte_headers() {
        let c = FrameConfig::builder()
            .width(HeaderWidth::One)
            .build()
            .unwrap();
        let mut dec = Decoder::new(c);
        assert_eq!(
            dec.decode_vec(b"\x02hi\x00\x01!").unwrap(),
            [b"hi".to_vec(), vec![], b"!".to_vec()]
        );
    }
}
