//! Property tests for the framing: the writer, the sans-IO decoder, the
//! blocking reader, streams of frames and the codecs must agree with each
//! other on any input, and never panic or over-allocate on hostile input.

// The helpers below are test code too: they panic on failure like the tests.
#![allow(clippy::unwrap_used)]

use std::io::{self, Read};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};
use trama_protocol::{
    write_stream, ByteOrder, Codec, Decoder, Error, FrameBoundary, FrameConfig, FrameReader,
    FrameWriter, HeaderWidth, Part, StreamReader,
};

/// A source that returns one byte per read, like the slowest network.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// How a sequence of reads ended, comparable across the reader and the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Clean end of stream, between frames.
    Clean,
    TooLarge {
        len: u64,
        limit: u64,
    },
    TruncatedHeader {
        got: usize,
        expected: usize,
    },
    TruncatedPayload {
        got: u64,
        expected: u64,
    },
    Other(String),
}

impl From<Error> for End {
    fn from(e: Error) -> End {
        match e {
            Error::FrameTooLarge { len, limit } => End::TooLarge { len, limit },
            Error::TruncatedHeader { got, expected } => End::TruncatedHeader { got, expected },
            Error::TruncatedPayload { got, expected } => End::TruncatedPayload { got, expected },
            other => End::Other(other.to_string()),
        }
    }
}

fn width_strategy() -> impl Strategy<Value = HeaderWidth> {
    prop_oneof![
        Just(HeaderWidth::One),
        Just(HeaderWidth::Two),
        Just(HeaderWidth::Four),
        Just(HeaderWidth::Eight),
    ]
}

fn order_strategy() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::Big), Just(ByteOrder::Little)]
}

/// Any header width and order; the limit is the largest the width allows (capped at the default).
fn config_strategy() -> impl Strategy<Value = FrameConfig> {
    (width_strategy(), order_strategy()).prop_map(|(width, order)| {
        FrameConfig::builder()
            .width(width)
            .order(order)
            .build()
            .unwrap()
    })
}

/// A config and 0..20 payloads of 0..2000 bytes, cut to what its header can express.
fn frames_strategy(min_frames: usize) -> impl Strategy<Value = (FrameConfig, Vec<Vec<u8>>)> {
    (
        config_strategy(),
        vec(vec(any::<u8>(), 0..2000), min_frames..20),
    )
        .prop_map(|(config, mut payloads)| {
            for p in &mut payloads {
                p.truncate(config.max_frame_len());
            }
            (config, payloads)
        })
}

/// Encode `payloads` with a `FrameWriter`.
fn encode(config: FrameConfig, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new(), config);
    for p in payloads {
        w.write_frame(p).unwrap();
    }
    w.into_inner()
}

/// Cut positions (sorted, within `0..=len`) from random indices.
fn cut_points(cuts: &[Index], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    points.sort_unstable();
    points
}

/// Feed `bytes` to a new decoder in the pieces given by `cuts`, then finish.
fn run_decoder(config: FrameConfig, bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, End, Decoder) {
    let mut dec = Decoder::new(config);
    let mut frames = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        if let Err(e) = dec.decode(&bytes[start..end], |f| frames.push(f.to_vec())) {
            return (frames, e.into(), dec);
        }
        start = end;
    }
    let end = match dec.finish() {
        Ok(()) => End::Clean,
        Err(e) => e.into(),
    };
    (frames, end, dec)
}

/// Follow `bytes` with a bare `FrameBoundary` fed in the pieces given by
/// `cuts`: the frames its spans delimit, and how the stream ended, judged as
/// a decoder judges (a header over the limit stops it).
fn run_boundary(config: FrameConfig, bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, End) {
    let mut b = FrameBoundary::new(config);
    let limit = config.max_frame_len() as u64;
    let (mut frames, mut payload) = (Vec::new(), Vec::new());
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let mut piece = &bytes[start..end];
        while let Some(span) = b.next(piece) {
            assert!(span.len > 0 && span.len <= piece.len(), "{span:?}");
            if let Some(len) = span.announced.filter(|&len| len > limit) {
                return (frames, End::TooLarge { len, limit });
            }
            if span.part == Part::Payload {
                payload.extend_from_slice(&piece[..span.len]);
            }
            if span.ends_frame {
                frames.push(std::mem::take(&mut payload));
            }
            piece = &piece[span.len..];
        }
        start = end;
    }
    let end = match (b.header_got(), b.payload()) {
        (0, None) => End::Clean,
        (got, None) => End::TruncatedHeader {
            got,
            expected: config.header_len(),
        },
        (_, Some((got, expected))) => End::TruncatedPayload { got, expected },
    };
    (frames, end)
}

/// Read frames with a `FrameReader` until the end or an error.
fn run_reader<R: Read>(mut reader: FrameReader<R>) -> (Vec<Vec<u8>>, End) {
    let mut frames = Vec::new();
    loop {
        match reader.read_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, End::Clean),
            Err(e) => return (frames, e.into()),
        }
    }
}

proptest! {
    #[test]
    fn the_boundary_tracker_and_the_decoder_agree_at_any_split(
        (base, payloads) in frames_strategy(0),
        noise in vec(any::<u8>(), 0..64),
        flips in vec((any::<Index>(), any::<u8>()), 0..3),
        cuts in vec(any::<Index>(), 0..12),
        limit in 0usize..3000,
        unframed in any::<bool>(),
    ) {
        // Well-formed frames, then maybe damage and trailing noise, under a
        // limit that damaged headers often pass: any stream, any split.
        let framing = if unframed {
            trama_protocol::Framing::Unframed
        } else {
            trama_protocol::Framing::LengthPrefixed
        };
        let config = FrameConfig::builder()
            .framing(framing)
            .width(base.width())
            .order(base.order())
            .max_frame_len(limit.clamp(1, base.max_frame_len()))
            .build()
            .unwrap();
        let mut wire = encode(base, &payloads);
        for (at, byte) in &flips {
            if !wire.is_empty() {
                let i = at.index(wire.len());
                wire[i] = *byte;
            }
        }
        wire.extend_from_slice(&noise);
        let cuts = cut_points(&cuts, wire.len());
        let (tracked, tracked_end) = run_boundary(config, &wire, &cuts);
        let (decoded, decoded_end, _) = run_decoder(config, &wire, &cuts);
        prop_assert_eq!(tracked, decoded);
        prop_assert_eq!(tracked_end, decoded_end);
    }

    #[test]
    fn decoder_round_trips_at_any_split(
        (config, payloads) in frames_strategy(0),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        let wire = encode(config, &payloads);
        let cuts = cut_points(&cuts, wire.len());
        let (frames, end, dec) = run_decoder(config, &wire, &cuts);
        prop_assert_eq!(&frames, &payloads);
        prop_assert_eq!(end, End::Clean);
        prop_assert!(dec.is_idle());
        prop_assert_eq!(dec.buffered_capacity(), 0);
        prop_assert!(dec.finish().is_ok());
    }

    #[test]
    fn trickling_reader_agrees_with_the_decoder(
        (config, payloads) in frames_strategy(0),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        let wire = encode(config, &payloads);
        let (read, read_end) = run_reader(FrameReader::new(Trickle(&wire), config));
        let (decoded, dec_end, _) = run_decoder(config, &wire, &cut_points(&cuts, wire.len()));
        prop_assert_eq!(&read, &decoded);
        prop_assert_eq!(&read_end, &dec_end);
        prop_assert_eq!(&read, &payloads);
        prop_assert_eq!(read_end, End::Clean);
    }

    #[test]
    fn reader_and_decoder_agree_on_corrupted_streams(
        (config, payloads) in frames_strategy(1),
        flips in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in any::<Index>(),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        // Damage a few bytes (often a header) and maybe cut the end, with a
        // limit small enough that damaged headers are often over it.
        let limit = 1000.min(config.max_frame_len());
        let config = FrameConfig::builder()
            .width(config.width())
            .order(config.order())
            .max_frame_len(limit)
            .build()
            .unwrap();
        let mut wire = Vec::new();
        for p in &payloads {
            let p = &p[..p.len().min(limit)];
            config.encode(p, &mut wire).unwrap();
        }
        for (at, byte) in flips {
            let at = at.index(wire.len());
            wire[at] = byte;
        }
        wire.truncate(cut.index(wire.len() + 1));
        let (read, read_end) = run_reader(FrameReader::new(Trickle(&wire), config));
        let (decoded, dec_end, dec) = run_decoder(config, &wire, &cut_points(&cuts, wire.len()));
        prop_assert_eq!(read, decoded);
        prop_assert_eq!(read_end, dec_end);
        prop_assert!(dec.buffered_capacity() <= limit);
    }

    #[test]
    fn truncation_is_reported_alike_by_reader_and_decoder(
        (config, payloads) in frames_strategy(1),
        in_header in any::<bool>(),
        cut in any::<Index>(),
        cuts in vec(any::<Index>(), 0..12),
    ) {
        let hl = config.header_len();
        // Where each frame starts, and the cut points inside a header or a payload
        // (half the cases cut a header, which is small next to the payloads).
        let mut starts = Vec::new();
        let mut in_headers = Vec::new();
        let mut in_payloads = Vec::new();
        let mut pos = 0;
        for p in &payloads {
            starts.push(pos);
            in_headers.extend(pos + 1..pos + hl);
            in_payloads.extend(pos + hl..pos + hl + p.len());
            pos += hl + p.len();
        }
        let inside = match (in_header, in_headers.is_empty(), in_payloads.is_empty()) {
            (_, true, true) => Vec::new(),
            (true, false, _) | (false, _, true) => in_headers,
            _ => in_payloads,
        };
        prop_assume!(!inside.is_empty());
        let cut = inside[cut.index(inside.len())];
        let frame = starts.iter().rposition(|&s| s < cut).unwrap();
        let offset = cut - starts[frame];
        let expected = if offset < hl {
            End::TruncatedHeader { got: offset, expected: hl }
        } else {
            End::TruncatedPayload {
                got: (offset - hl) as u64,
                expected: payloads[frame].len() as u64,
            }
        };

        let wire = encode(config, &payloads);
        let wire = &wire[..cut];
        let (read, read_end) = run_reader(FrameReader::new(wire, config));
        let (decoded, dec_end, dec) = run_decoder(config, wire, &cut_points(&cuts, wire.len()));
        prop_assert_eq!(&read, &payloads[..frame]);
        prop_assert_eq!(&decoded, &payloads[..frame]);
        prop_assert_eq!(&read_end, &expected);
        prop_assert_eq!(&dec_end, &expected);
        prop_assert!(!dec.is_idle());
    }

    #[test]
    fn random_bytes_never_panic_nor_overallocate(
        bytes in vec(any::<u8>(), 0..3000),
        cuts in vec(any::<Index>(), 0..12),
        small_header in any::<bool>(),
    ) {
        let width = if small_header { HeaderWidth::One } else { HeaderWidth::Four };
        let small = FrameConfig::builder().width(width).max_frame_len(100).build().unwrap();
        let cuts = cut_points(&cuts, bytes.len());
        for config in [FrameConfig::default(), small] {
            let limit = config.max_frame_len();
            let mut dec = Decoder::new(config);
            let mut start = 0;
            let mut failed = false;
            for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
                let mut longest = 0;
                let result = dec.decode(&bytes[start..end], |f| longest = longest.max(f.len()));
                prop_assert!(longest <= limit);
                prop_assert!(dec.buffered_capacity() <= limit);
                match result {
                    Ok(()) => prop_assert!(!failed, "a refused stream must stay refused"),
                    Err(Error::FrameTooLarge { len, limit: l }) => {
                        prop_assert!(len > l);
                        prop_assert_eq!(l, limit as u64);
                        failed = true;
                    }
                    Err(e) => prop_assert!(false, "unexpected error {}", e),
                }
                start = end;
            }
            let _ = dec.finish();
        }
    }

    #[test]
    fn write_stream_round_trips(
        data in vec(any::<u8>(), 0..50_000),
        chunk in 1usize..5000,
        read_size in 1usize..10_000,
    ) {
        let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
        prop_assert_eq!(write_stream(&mut w, &mut &data[..], chunk).unwrap(), data.len() as u64);
        let wire = w.into_inner();
        let frames = data.len().div_ceil(chunk) + 1;
        prop_assert_eq!(wire.len(), data.len() + 4 * frames);

        let mut r = FrameReader::new(&wire[..], FrameConfig::default());
        let mut stream = StreamReader::new(&mut r);
        let mut back = Vec::new();
        let mut buf = vec![0u8; read_size];
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        prop_assert!(stream.is_done());
        prop_assert_eq!(stream.total(), data.len() as u64);
        prop_assert!(back == data, "stream came back different");
        prop_assert!(r.read_frame().unwrap().is_none());
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Registro {
    nombre: String,
    datos: Vec<u8>,
    edad: Option<i64>,
    etiquetas: Vec<Vec<String>>,
}

fn registro_strategy() -> impl Strategy<Value = Registro> {
    (
        any::<String>(),
        vec(any::<u8>(), 0..64),
        any::<Option<i64>>(),
        vec(vec(any::<String>(), 0..4), 0..4),
    )
        .prop_map(|(nombre, datos, edad, etiquetas)| Registro {
            nombre,
            datos,
            edad,
            etiquetas,
        })
}

fn codec_strategy() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Json), Just(Codec::MsgPack)]
}

proptest! {
    #[test]
    fn codecs_round_trip_structs(value in registro_strategy(), codec in codec_strategy()) {
        let bytes = codec.to_vec(&value).unwrap();
        prop_assert_eq!(codec.decode::<Registro>(&bytes).unwrap(), value.clone());

        // And framed, through the writer and reader.
        let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
        w.send(codec, &value).unwrap();
        let wire = w.into_inner();
        let mut r = FrameReader::new(&wire[..], FrameConfig::default());
        prop_assert_eq!(r.recv::<Registro>(codec).unwrap(), Some(value));
        prop_assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn codecs_never_panic_on_random_bytes(
        bytes in vec(any::<u8>(), 0..512),
        codec in codec_strategy(),
    ) {
        let _ = codec.decode::<Registro>(&bytes);
        let _ = codec.decode::<Vec<String>>(&bytes);
        let _ = codec.decode::<Option<i64>>(&bytes);
    }

    #[test]
    fn codecs_never_panic_on_damaged_encodings(
        value in registro_strategy(),
        codec in codec_strategy(),
        flips in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in any::<Index>(),
    ) {
        let mut bytes = codec.to_vec(&value).unwrap();
        for (at, byte) in flips {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Err(e) = codec.decode::<Registro>(&bytes) {
            let is_decode_error = matches!(e, Error::Decode { .. });
            prop_assert!(is_decode_error, "{}", e);
        }
    }
}

proptest! {
    #[test]
    fn envelopes_round_trip(
        kind in prop_oneof![
            Just(trama_protocol::envelope::Kind::Request),
            Just(trama_protocol::envelope::Kind::Reply),
        ],
        id in 1..=u64::MAX,
        body in vec(any::<u8>(), 0..256),
    ) {
        let mut out = Vec::new();
        trama_protocol::envelope::encode(kind, id, &body, &mut out);
        let e = trama_protocol::envelope::decode(&out).unwrap();
        prop_assert_eq!((e.kind, e.id, e.body), (kind, id, &body[..]));
    }

    #[test]
    fn envelopes_never_panic_on_random_bytes(bytes in vec(any::<u8>(), 0..64)) {
        match trama_protocol::envelope::decode(&bytes) {
            Ok(e) => prop_assert_eq!(e.body.len() + trama_protocol::envelope::LEN, bytes.len()),
            Err(e) => prop_assert!(matches!(e, Error::Envelope { .. }), "{}", e),
        }
    }
}
