//! Blocking frame writer over any [`Write`].

use std::io::{self, IoSlice, Read, Write};

use crate::{Codec, Error, FrameConfig, Result, Transform};

/// Writes one frame at a time to a blocking sink.
///
/// Header and payload leave in one vectored write (`writev`), so a small frame
/// is one system call and one TCP segment: writing them separately lets Nagle's
/// algorithm hold the payload until the peer's delayed ACK, about 40 ms. An
/// over-limit payload is refused before a single byte is written.
///
/// ```
/// use trama_protocol::{FrameConfig, FrameWriter};
///
/// let mut writer = FrameWriter::new(Vec::new(), FrameConfig::default());
/// writer.write_frame(b"hola")?;
/// assert_eq!(writer.get_ref(), b"\x00\x00\x00\x04hola");
/// # Ok::<(), trama_protocol::Error>(())
/// ```
pub struct FrameWriter<W> {
    inner: W,
    config: FrameConfig,
    transform: Option<Box<dyn Transform>>,
    /// Reused for typed messages and transforms, so steady traffic allocates nothing.
    scratch: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    /// Wrap a writer.
    pub fn new(inner: W, config: FrameConfig) -> Self {
        FrameWriter {
            inner,
            config,
            transform: None,
            scratch: Vec::new(),
        }
    }

    /// Apply a [`Transform`] to every frame written from now on.
    pub fn with_transform(mut self, transform: impl Transform + 'static) -> Self {
        self.transform = Some(Box::new(transform));
        self
    }

    /// The wire format.
    pub fn config(&self) -> &FrameConfig {
        &self.config
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer, mutably (writing to it directly desynchronises the frames).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Give back the wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Write one frame: header and payload together. In unframed mode, the
    /// payload as given.
    pub fn write_frame(&mut self, payload: &[u8]) -> Result<()> {
        if let Some(t) = self.transform.as_mut() {
            self.scratch.clear();
            self.scratch.extend_from_slice(payload);
            t.outbound(&mut self.scratch)?;
            if self.config.is_unframed() {
                // As below: no header, and no limit (it is a read size here).
                return Ok(self.inner.write_all(&self.scratch)?);
            }
            let header = self.config.header(self.scratch.len())?;
            return Ok(write_all_parts(
                &mut self.inner,
                header.as_bytes(),
                &self.scratch,
            )?);
        }
        if self.config.is_unframed() {
            return Ok(self.inner.write_all(payload)?);
        }
        let header = self.config.header(payload.len())?;
        Ok(write_all_parts(
            &mut self.inner,
            header.as_bytes(),
            payload,
        )?)
    }

    /// Encode `value` with `codec` and write it as one frame.
    pub fn send<T: serde::Serialize + ?Sized>(&mut self, codec: Codec, value: &T) -> Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let result = codec
            .encode(value, &mut buf)
            .and_then(|()| self.write_frame(&buf));
        if self.scratch.capacity() < buf.capacity() {
            self.scratch = buf;
        }
        result
    }

    /// Write UTF-8 text as one frame.
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.write_frame(text.as_bytes())
    }

    /// Write a header announcing a body of `len` bytes that the caller then
    /// writes straight to [`get_mut`](FrameWriter::get_mut). Only the header
    /// width limits `len` (see [`FrameConfig::body_header`]).
    pub fn write_body_header(&mut self, len: u64) -> Result<()> {
        let header = self.config.body_header(len)?;
        Ok(self.inner.write_all(header.as_bytes())?)
    }

    /// Write a header for `len` bytes, then copy exactly `len` bytes from
    /// `body` with `std::io::copy` (`sendfile` from a `File` into a
    /// `TcpStream` on Linux). Fails if `body` ends early.
    pub fn send_body<B: Read + ?Sized>(&mut self, len: u64, body: &mut B) -> Result<u64> {
        self.write_body_header(len)?;
        let copied = io::copy(&mut body.take(len), &mut self.inner)?;
        if copied < len {
            return Err(Error::TruncatedPayload {
                got: copied,
                expected: len,
            });
        }
        Ok(copied)
    }

    /// Flush the wrapped writer.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self.inner.flush()?)
    }
}

/// Write `a` then `b` completely, with as few system calls as the sink allows
/// (one `writev` for a small frame on a socket).
pub fn write_all_parts<W: Write + ?Sized>(w: &mut W, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() {
        match w.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n < a.len() => a = &a[n..],
            Ok(n) => {
                b = &b[n - a.len()..];
                a = &[];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    w.write_all(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts write calls and accepts at most `max` bytes per call.
    struct Meter {
        out: Vec<u8>,
        calls: usize,
        max: usize,
    }
    impl Write for Meter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn small_frame_is_one_write_call() {
        let meter = Meter {
            out: vec![],
            calls: 0,
            max: usize::MAX,
        };
        let mut w = FrameWriter::new(meter, FrameConfig::default());
        w.write_frame(b"hola").unwrap();
        assert_eq!(w.get_ref().calls, 1);
        assert_eq!(w.get_ref().out, b"\x00\x00\x00\x04hola");
    }

    #[test]
    fn partial_writes_still_deliver_everything() {
        for max in 1..8 {
            let meter = Meter {
                out: vec![],
                calls: 0,
                max,
            };
            let mut w = FrameWriter::new(meter, FrameConfig::default());
            w.write_frame(b"abcdef").unwrap();
            assert_eq!(w.get_ref().out, b"\x00\x00\x00\x06abcdef", "max {max}");
        }
    }

    #[test]
    fn over_limit_is_refused_before_writing() {
        let c = FrameConfig::builder().max_frame_len(3).build().unwrap();
        let mut w = FrameWriter::new(Vec::new(), c);
        assert_eq!(
            w.write_frame(b"abcd").unwrap_err().to_string(),
            "frame of 4 bytes exceeds the limit of 3"
        );
        assert!(w.get_ref().is_empty());
    }

    #[test]
    fn send_body_checks_the_source_length() {
        let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
        assert_eq!(w.send_body(3, &mut &b"abcdef"[..]).unwrap(), 3);
        assert_eq!(w.get_ref(), b"\x00\x00\x00\x03abc");
        let e = w.send_body(10, &mut &b"ab"[..]).unwrap_err();
        assert_eq!(e.to_string(), "stream ended after 2 of 10 payload bytes");
    }
}
