//! The stream adapter: reads the input as a stream of frames with a
//! `StreamReader` (any bytes: garbage, a cut stream, a frame over the limit),
//! and round-trips the input through `write_stream` and back. The first input
//! byte sets how many bytes each `read` returns and the chunk size.

#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use trama_protocol::{write_stream, Decoder, FrameConfig, FrameReader, FrameWriter, StreamReader};

/// A source that returns at most `max` bytes per read, like a slow network.
struct Slow<'a> {
    data: &'a [u8],
    max: usize,
}

impl Read for Slow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.max).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a `Decoder` says the stream holds: the payload before the first
/// empty frame, and whether that marker came (or the error that came first).
fn expected(config: FrameConfig, input: &[u8]) -> (Vec<u8>, Result<(), String>) {
    let mut dec = Decoder::new(config);
    let mut data = Vec::new();
    let mut ended = false;
    let result = dec.decode(input, |f| {
        if ended {
            return;
        }
        if f.is_empty() {
            ended = true;
        } else {
            data.extend_from_slice(f);
        }
    });
    if ended {
        return (data, Ok(()));
    }
    match result {
        Err(e) => (data, Err(e.to_string())),
        Ok(()) => (data, Err(String::new())),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let max = match first % 17 {
        0 => usize::MAX,
        n => usize::from(n),
    };
    let read_size = usize::from(first / 17) + 1;
    let config = FrameConfig::builder().max_frame_len(64).build().unwrap();

    // 1. Any bytes, read as a stream of frames.
    let mut frames = FrameReader::new(Slow { data: input, max }, config);
    let mut stream = StreamReader::new(&mut frames);
    let mut got = Vec::new();
    let mut buf = vec![0u8; read_size];
    let outcome = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
        assert_eq!(stream.total(), got.len() as u64);
    };
    let (want, want_end) = expected(config, input);
    match (outcome, want_end) {
        (Ok(()), Ok(())) => {
            assert!(stream.is_done());
            assert_eq!(got, want);
            // Done stays done.
            assert_eq!(stream.read(&mut buf).unwrap(), 0);
        }
        (Err(e), Err(_)) => {
            assert!(!stream.is_done());
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ),
                "{e}"
            );
            // Everything handed out before the error is a prefix of the data.
            assert!(want.starts_with(&got), "{} vs {}", got.len(), want.len());
        }
        (o, w) => panic!("stream reader {o:?}, decoder {w:?}"),
    }

    // 2. The input as data: written as a stream and read back intact.
    let chunk = read_size.min(config.max_frame_len());
    let mut writer = FrameWriter::new(Vec::new(), config);
    let sent = write_stream(&mut writer, &mut Slow { data: input, max }, chunk).unwrap();
    assert_eq!(sent, input.len() as u64);
    let wire = writer.into_inner();
    let mut frames = FrameReader::new(Slow { data: &wire, max }, config);
    let mut back = Vec::new();
    StreamReader::new(&mut frames)
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, input);
    // Nothing after the marker.
    assert!(frames.read_frame().unwrap().is_none());
});
