//! Blocking frame reader over any [`Read`].

use std::io::{self, Read};

use crate::{codec, Codec, Error, FrameConfig, Result, Transform};

/// Reads one frame at a time from a blocking source (a `TcpStream`, a file, a pipe).
///
/// Reads are exact: a `read` that returns fewer bytes than asked for (the
/// notes' pitfall with a single `recv`) is followed by more reads until the
/// header and then the payload are complete. The payload buffer grows as bytes
/// arrive: before they do, at most 64 KiB is committed, never the announced
/// length of a larger frame.
///
/// ```
/// use trama_protocol::{FrameConfig, FrameReader};
///
/// let wire: &[u8] = b"\x00\x00\x00\x04hola\x00\x00\x00\x00";
/// let mut reader = FrameReader::new(wire, FrameConfig::default());
/// assert_eq!(reader.read_frame()?.as_deref(), Some(&b"hola"[..]));
/// assert_eq!(reader.read_frame()?.as_deref(), Some(&b""[..]));
/// assert_eq!(reader.read_frame()?, None); // clean end of stream
/// # Ok::<(), trama_protocol::Error>(())
/// ```
pub struct FrameReader<R> {
    inner: R,
    config: FrameConfig,
    transform: Option<Box<dyn Transform>>,
}

/// How much payload to ask the source for at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Payloads up to this size are read into a buffer sized up front (see
/// `read_payload_exact`); larger ones grow with `read_to_end` as bytes arrive.
/// Measured with `benches/framing.rs`: the two cost the same at about 1 KiB.
const EXACT_READ_MAX: usize = 1024;

impl<R: Read> FrameReader<R> {
    /// Wrap a reader.
    pub fn new(inner: R, config: FrameConfig) -> Self {
        FrameReader {
            inner,
            config,
            transform: None,
        }
    }

    /// Undo a [`Transform`] on every frame read from now on.
    pub fn with_transform(mut self, transform: impl Transform + 'static) -> Self {
        self.transform = Some(Box::new(transform));
        self
    }

    /// The wire format.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, mutably (reading from it directly desynchronises the frames).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Give back the wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Read the next frame into a new vector; `None` at a clean end of stream.
    pub fn read_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.read_frame_into(&mut buf)?.then_some(buf))
    }

    /// Read the next frame into `buf` (cleared first), reusing its capacity.
    /// Returns `false` at a clean end of stream (between frames).
    ///
    /// In unframed mode this is one `read` of at most `max_frame_len` bytes.
    pub fn read_frame_into(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        if self.config.is_unframed() {
            if !self.read_once(buf)? {
                return Ok(false);
            }
        } else {
            let len = match self.read_header()? {
                None => return Ok(false),
                Some(len) => len,
            };
            self.config.check_len(len)?;
            // Limit checked: len fits in usize.
            self.read_payload(buf, len as usize)?;
        }
        if let Some(t) = self.transform.as_mut() {
            t.inbound(buf)?;
        }
        Ok(true)
    }

    /// Read the next frame and decode it with `codec`.
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self, codec: Codec) -> Result<Option<T>> {
        match self.read_frame()? {
            None => Ok(None),
            Some(bytes) => codec.decode(&bytes).map(Some),
        }
    }

    /// Read the next frame as UTF-8 text.
    pub fn recv_text(&mut self) -> Result<Option<String>> {
        match self.read_frame()? {
            None => Ok(None),
            Some(bytes) => {
                codec::text(&bytes)?;
                // Checked just above; this never takes the lossy path.
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
        }
    }

    /// Read one header and hand out its body as a reader of exactly that many
    /// bytes, in constant memory. `limit` replaces `max_frame_len` for this
    /// one body (the header width still applies): this is how the notes' file
    /// format, one 4-byte header and up to 4 GiB of data, is received without
    /// raising the frame limit. `None` at a clean end of stream.
    ///
    /// ```
    /// use std::io::Read;
    /// use trama_protocol::{FrameConfig, FrameReader};
    ///
    /// let wire: &[u8] = b"\x00\x00\x00\x05hello";
    /// let mut reader = FrameReader::new(wire, FrameConfig::default());
    /// let mut body = reader.read_body(1 << 32)?.expect("a body");
    /// assert_eq!(body.len(), 5);
    /// let mut out = Vec::new();
    /// body.read_to_end(&mut out)?;
    /// assert_eq!(out, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_body(&mut self, limit: u64) -> Result<Option<Body<'_, R>>> {
        let len = match self.read_header()? {
            None => return Ok(None),
            Some(len) => len,
        };
        if len > limit {
            return Err(Error::FrameTooLarge { len, limit });
        }
        Ok(Some(Body {
            inner: &mut self.inner,
            len,
            remaining: len,
        }))
    }

    /// Read exactly one header; `None` if the stream ended before its first byte.
    fn read_header(&mut self) -> Result<Option<u64>> {
        let hl = self.config.header_len();
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < hl {
            match self.inner.read(&mut header[got..hl]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(Error::TruncatedHeader { got, expected: hl }),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(self.config.parse_header(&header[..hl])))
    }

    fn read_payload(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        if len <= EXACT_READ_MAX {
            return self.read_payload_exact(buf, len);
        }
        // Commit at most one chunk before bytes arrive; read_to_end grows from there.
        buf.reserve(len.min(READ_CHUNK));
        let got = (&mut self.inner).take(len as u64).read_to_end(buf)?;
        if got < len {
            return Err(Error::TruncatedPayload {
                got: got as u64,
                expected: len as u64,
            });
        }
        Ok(())
    }

    /// A small payload: size `buf` once and read straight into it. For small
    /// frames this is much cheaper than `read_to_end`, whose growth steps and
    /// end-of-input probe cost more than zeroing up to 1 KiB.
    fn read_payload_exact(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        buf.resize(len, 0);
        let mut got = 0;
        while got < len {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    buf.truncate(got);
                    return Err(Error::TruncatedPayload {
                        got: got as u64,
                        expected: len as u64,
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(got);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn read_once(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        let max = self.config.max_frame_len();
        buf.resize(max, 0);
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.clear();
                    return Err(e.into());
                }
            }
        }
    }
}

/// Exactly one frame's body, read in constant memory (see [`FrameReader::read_body`]).
///
/// Reading past the end returns 0; a source that ends early gives an
/// `UnexpectedEof` error that says how many of how many bytes came.
pub struct Body<'a, R> {
    inner: &'a mut R,
    len: u64,
    remaining: u64,
}

impl<R: Read> Body<'_, R> {
    /// The length the header announced.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Copy the rest of the body into `out` and check it all came. Uses
    /// `std::io::copy` on the underlying reader, so the standard library's
    /// fast paths apply (e.g. `copy_file_range`/`splice` on Linux where one
    /// side allows it) and constant memory is used either way.
    pub fn copy_to<W: io::Write + ?Sized>(&mut self, out: &mut W) -> Result<u64> {
        let copied = io::copy(&mut (&mut *self.inner).take(self.remaining), out)?;
        self.remaining -= copied;
        if self.remaining > 0 {
            return Err(self.truncated());
        }
        Ok(copied)
    }

    fn truncated(&self) -> Error {
        Error::TruncatedPayload {
            got: self.len - self.remaining,
            expected: self.len,
        }
    }
}

impl<R: Read> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(self.truncated().into());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that returns one byte per read, like a slow network.
    pub(crate) struct Trickle<'a>(pub &'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn exact_reads_over_a_trickle() {
        let wire = b"\x00\x00\x00\x03abc\x00\x00\x00\x01z";
        let mut r = FrameReader::new(Trickle(wire), FrameConfig::default());
        assert_eq!(r.read_frame().unwrap().unwrap(), b"abc");
        assert_eq!(r.read_frame().unwrap().unwrap(), b"z");
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn truncation_errors_name_the_numbers() {
        let mut r = FrameReader::new(&b"\x00\x00"[..], FrameConfig::default());
        assert_eq!(
            r.read_frame().unwrap_err().to_string(),
            "stream ended after 2 of 4 header bytes"
        );
        let mut r = FrameReader::new(&b"\x00\x00\x00\x04ab"[..], FrameConfig::default());
        assert_eq!(
            r.read_frame().unwrap_err().to_string(),
            "stream ended after 2 of 4 payload bytes"
        );
    }

    #[test]
    fn hostile_header_allocates_nothing() {
        let mut r = FrameReader::new(&b"\xff\xff\xff\xff"[..], FrameConfig::default());
        let mut buf = Vec::new();
        assert!(matches!(
            r.read_frame_into(&mut buf),
            Err(Error::FrameTooLarge { .. })
        ));
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn unframed_returns_what_one_read_gives() {
        let mut r = FrameReader::new(&[5u8; 5000][..], FrameConfig::unframed());
        assert_eq!(r.read_frame().unwrap().unwrap().len(), 4096);
        assert_eq!(r.read_frame().unwrap().unwrap().len(), 904);
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn body_reader_stops_at_the_frame_and_reports_truncation() {
        let wire = b"\x00\x00\x00\x03abcNEXT";
        let mut r = FrameReader::new(&wire[..], FrameConfig::default());
        let mut body = r.read_body(10).unwrap().unwrap();
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
        let mut rest = Vec::new();
        r.get_mut().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"NEXT");

        let mut r = FrameReader::new(&b"\x00\x00\x00\x09abc"[..], FrameConfig::default());
        let mut body = r.read_body(10).unwrap().unwrap();
        let e = body.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(e.to_string(), "stream ended after 3 of 9 payload bytes");

        let mut r = FrameReader::new(&b"\x00\x00\x00\x09abc"[..], FrameConfig::default());
        let mut body = r.read_body(10).unwrap().unwrap();
        assert_eq!(
            body.copy_to(&mut Vec::new()).unwrap_err().to_string(),
            "stream ended after 3 of 9 payload bytes"
        );
    }

    #[test]
    fn body_over_its_own_limit_is_refused() {
        let mut r = FrameReader::new(&b"\x00\x00\x10\x00"[..], FrameConfig::default());
        assert_eq!(
            r.read_body(100).err().unwrap().to_string(),
            "frame of 4096 bytes exceeds the limit of 100"
        );
    }

    #[test]
    fn bad_text_is_reported_with_its_offset() {
        let mut r = FrameReader::new(&b"\x00\x00\x00\x03ab\xff"[..], FrameConfig::default());
        assert_eq!(
            r.recv_text().unwrap_err().to_string(),
            "payload is not valid UTF-8 at byte 2"
        );
    }
}
