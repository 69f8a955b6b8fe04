//! Feeds the input to a `Decoder` in two pieces, cut where the first byte
//! says, and checks it against the same bytes fed whole: same frames, same
//! outcome, no frame over the limit, never more memory held than the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trama_protocol::{Decoder, Error, FrameConfig, HeaderWidth};

/// Frames and how the stream ended (`None`: cleanly between frames).
type Outcome = (Vec<Vec<u8>>, Option<String>);

fn run(config: FrameConfig, pieces: &[&[u8]]) -> Outcome {
    let limit = config.max_frame_len();
    let mut dec = Decoder::new(config);
    let mut frames = Vec::new();
    for piece in pieces {
        let result = dec.decode(piece, |f| {
            assert!(
                f.len() <= limit,
                "a {}-byte frame over the limit {limit}",
                f.len()
            );
            frames.push(f.to_vec());
        });
        assert!(
            dec.buffered_capacity() <= limit,
            "holds {} bytes",
            dec.buffered_capacity()
        );
        if let Err(e) = result {
            assert!(matches!(e, Error::FrameTooLarge { .. }), "{e}");
            // A refused stream stays refused.
            assert!(dec
                .decode(b"\0", |_| panic!("a frame after a refusal"))
                .is_err());
            return (frames, Some(e.to_string()));
        }
    }
    match dec.finish() {
        Ok(()) => {
            assert!(dec.is_idle());
            assert_eq!(dec.buffered_capacity(), 0);
            (frames, None)
        }
        Err(e) => (frames, Some(e.to_string())),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let cut = input.len() * usize::from(split) / 255;
    let (a, b) = input.split_at(cut);

    let small = FrameConfig::builder()
        .width(HeaderWidth::Two)
        .little_endian()
        .max_frame_len(64)
        .build()
        .unwrap();
    for config in [FrameConfig::default(), small] {
        let whole = run(config, &[input]);
        let split = run(config, &[a, b]);
        assert_eq!(whole, split, "cut at {cut}");
    }
});
