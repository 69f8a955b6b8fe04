//! A stream of frames: payloads larger than any one frame, in constant memory.
//!
//! [`write_stream`] cuts a [`Read`] into frames of a fixed size and ends with
//! an empty frame, the end marker. [`StreamReader`] reads such a sequence back
//! as one [`Read`]. Each side holds one chunk at a time, whatever the total.
//!
//! Because the empty frame ends the stream, nothing else (such as an empty
//! heartbeat frame) may be sent on the same connection while a stream is in
//! flight.

use std::io::{self, Read, Write};

use crate::{Error, FrameReader, FrameWriter, Result};

/// Send everything `source` yields as frames of `chunk` bytes (the last one
/// shorter), then the empty end marker. Returns the number of payload bytes.
///
/// `chunk` must be between 1 and the writer's `max_frame_len`.
///
/// ```
/// use trama_protocol::{write_stream, FrameConfig, FrameReader, FrameWriter, StreamReader};
/// use std::io::Read;
///
/// let data = vec![7u8; 10_000];
/// let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
/// assert_eq!(write_stream(&mut w, &mut &data[..], 4096)?, 10_000);
///
/// let wire = w.into_inner();
/// let mut r = FrameReader::new(&wire[..], FrameConfig::default());
/// let mut back = Vec::new();
/// StreamReader::new(&mut r).read_to_end(&mut back)?;
/// assert_eq!(back, data);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_stream<R: Read + ?Sized, W: Write>(
    writer: &mut FrameWriter<W>,
    source: &mut R,
    chunk: usize,
) -> Result<u64> {
    let max = writer.config().max_frame_len();
    if chunk == 0 || chunk > max {
        return Err(Error::Config(format!(
            "stream chunk of {chunk} bytes must be between 1 and the frame limit of {max}"
        )));
    }
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    loop {
        let n = fill(source, &mut buf)?;
        if n == 0 {
            break;
        }
        writer.write_frame(&buf[..n])?;
        total += n as u64;
    }
    writer.write_frame(&[])?;
    Ok(total)
}

/// Read until `buf` is full or the source ends; returns how much was read.
fn fill<R: Read + ?Sized>(source: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match source.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads a stream of frames (see [`write_stream`]) back as one byte stream.
///
/// Returns end of file at the empty end marker. If the underlying stream ends
/// before the marker, the read fails with `UnexpectedEof` and says how many
/// bytes had arrived: a cut connection never looks like a complete stream.
pub struct StreamReader<'a, R> {
    frames: &'a mut FrameReader<R>,
    chunk: Vec<u8>,
    pos: usize,
    total: u64,
    done: bool,
}

impl<'a, R: Read> StreamReader<'a, R> {
    /// Read the stream that starts at the reader's next frame.
    pub fn new(frames: &'a mut FrameReader<R>) -> Self {
        StreamReader {
            frames,
            chunk: Vec::new(),
            pos: 0,
            total: 0,
            done: false,
        }
    }

    /// Payload bytes handed out so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// True once the end marker was read.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl<R: Read> Read for StreamReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.pos = 0;
            if !self.frames.read_frame_into(&mut self.chunk)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    Error::UnterminatedStream { got: self.total },
                ));
            }
            if self.chunk.is_empty() {
                self.done = true;
                self.chunk = Vec::new();
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        self.total += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameConfig;

    #[test]
    fn chunks_are_fixed_size_and_end_with_an_empty_frame() {
        let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
        write_stream(&mut w, &mut &[1u8; 10][..], 4).unwrap();
        let wire = w.into_inner();
        let mut r = FrameReader::new(&wire[..], FrameConfig::default());
        let lens: Vec<usize> = std::iter::from_fn(|| r.read_frame().unwrap())
            .map(|f| f.len())
            .collect();
        assert_eq!(lens, [4, 4, 2, 0]);
    }

    #[test]
    fn empty_source_is_just_the_marker() {
        let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
        assert_eq!(write_stream(&mut w, &mut &b""[..], 4).unwrap(), 0);
        assert_eq!(w.get_ref(), b"\x00\x00\x00\x00");
    }

    #[test]
    fn missing_marker_is_an_error() {
        let wire = b"\x00\x00\x00\x02ab";
        let mut r = FrameReader::new(&wire[..], FrameConfig::default());
        let e = StreamReader::new(&mut r)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            e.to_string(),
            "stream of frames ended after 2 bytes without its end marker"
        );
    }

    #[test]
    fn chunk_size_is_checked() {
        let c = FrameConfig::builder().max_frame_len(8).build().unwrap();
        let mut w = FrameWriter::new(Vec::new(), c);
        assert!(write_stream(&mut w, &mut &b"x"[..], 9).is_err());
        assert!(write_stream(&mut w, &mut &b"x"[..], 0).is_err());
    }
}
