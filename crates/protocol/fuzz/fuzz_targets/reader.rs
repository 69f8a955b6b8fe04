//! Reads the input with a blocking `FrameReader`: first frame by frame
//! (`read_frame`) until the end or an error, checked against a `Decoder`;
//! then body by body (`read_body` with a limit), reading each body to its
//! end. The first input byte sets how many bytes each `read` may return.

#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use trama_protocol::{Decoder, FrameConfig, FrameReader, HeaderWidth};

/// Limit for one body, far above the input sizes the fuzzer tries.
const BODY_LIMIT: u64 = 1 << 20;

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

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    // 0 means "as much as asked for".
    let max = match first % 17 {
        0 => usize::MAX,
        n => usize::from(n),
    };
    let slow = || Slow { data: input, max };

    let small = FrameConfig::builder()
        .width(HeaderWidth::One)
        .max_frame_len(100)
        .build()
        .unwrap();
    for config in [FrameConfig::default(), small] {
        let limit = config.max_frame_len();

        // Frame by frame, checked against the decoder.
        let mut reader = FrameReader::new(slow(), config);
        let mut frames = Vec::new();
        let read_end = loop {
            match reader.read_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= limit);
                    frames.push(f);
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        let mut dec = Decoder::new(config);
        let mut decoded = Vec::new();
        let dec_end = match dec.decode(input, |f| decoded.push(f.to_vec())) {
            Err(e) => Some(e.to_string()),
            Ok(()) => dec.finish().err().map(|e| e.to_string()),
        };
        assert_eq!(frames, decoded);
        assert_eq!(read_end, dec_end);

        // Body by body, each read to its end.
        let mut reader = FrameReader::new(slow(), config);
        while let Ok(Some(mut body)) = reader.read_body(BODY_LIMIT) {
            let len = body.len();
            assert!(len <= BODY_LIMIT);
            let mut out = Vec::new();
            match body.read_to_end(&mut out) {
                Ok(n) => {
                    assert_eq!(n as u64, len);
                    assert_eq!(body.remaining(), 0);
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                    assert!((out.len() as u64) < len);
                    assert_eq!(body.remaining(), len - out.len() as u64);
                    break;
                }
            }
        }
    }
});
