//! Tests for the three course formats of `examples/course_formats.rs`: XOR,
//! an Adler-32 trailer and numbered chunks. Round trips, the exact wire bytes
//! of one small frame each, and the frames each one must refuse.

// The helpers below are test code too: they panic on failure like the tests.
#![allow(clippy::unwrap_used)]

#[path = "../examples/shared/course_transforms.rs"]
mod course_transforms;

use std::io::{self, Read};

use course_transforms::{adler32, Adler32Trailer, Numbered, Xor, SEQ_LEN, TRAILER_LEN};
use trama_protocol::{
    write_stream, ByteOrder, Decoder, Error, FrameConfig, FrameReader, FrameWriter, HeaderWidth,
    StreamReader, Transform,
};

/// Write `payloads` as frames with `transform`.
fn write_with(config: FrameConfig, t: impl Transform + 'static, payloads: &[&[u8]]) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new(), config).with_transform(t);
    for p in payloads {
        w.write_frame(p).unwrap();
    }
    w.into_inner()
}

/// Read every frame of `wire` with `transform`; stops at the first error.
fn read_with(
    config: FrameConfig,
    t: impl Transform + 'static,
    wire: &[u8],
) -> (Vec<Vec<u8>>, Option<Error>) {
    let mut r = FrameReader::new(wire, config).with_transform(t);
    let mut frames = Vec::new();
    loop {
        match r.read_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// The payloads of `wire` as they travel, without any transform.
fn raw_frames(config: FrameConfig, wire: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = Decoder::new(config);
    let frames = dec.decode_vec(wire).unwrap();
    dec.finish().unwrap();
    frames
}

fn some_payloads() -> Vec<Vec<u8>> {
    vec![
        b"hola".to_vec(),
        Vec::new(),
        (0..=255).collect(),
        vec![0xaa; 5000],
        "¿qué tal?".as_bytes().to_vec(),
    ]
}

// ---------- (a) XOR ----------

#[test]
fn xor_round_trips() {
    let payloads = some_payloads();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    let config = FrameConfig::default();
    let wire = write_with(config, Xor::new(b"clave").unwrap(), &refs);
    let (back, err) = read_with(config, Xor::new(b"clave").unwrap(), &wire);
    assert!(err.is_none());
    assert_eq!(back, payloads);
    // Every payload byte changed on the wire except where it equals the key byte.
    let raw = raw_frames(config, &wire);
    assert_ne!(raw[2], payloads[2]);
    assert_eq!(raw[1], b"");
}

#[test]
fn xor_exact_wire_bytes() {
    let wire = write_with(
        FrameConfig::default(),
        Xor::new(b"clave").unwrap(),
        &[b"hola"],
    );
    // 'h'^'c', 'o'^'l', 'l'^'a', 'a'^'v'
    assert_eq!(wire, b"\x00\x00\x00\x04\x0b\x03\x0d\x17");
    // The key repeats, and restarts at each frame.
    let wire = write_with(
        FrameConfig::default(),
        Xor::new(b"clave").unwrap(),
        &[b"hola, mundo", b"hola"],
    );
    assert_eq!(
        wire,
        b"\x00\x00\x00\x0b\x0b\x03\x0d\x17\x49\x43\x01\x14\x18\x01\x0c\
          \x00\x00\x00\x04\x0b\x03\x0d\x17"
    );
}

#[test]
fn xor_refuses_an_empty_key_and_a_wrong_key_garbles() {
    assert_eq!(
        Xor::new(b"").unwrap_err().to_string(),
        "invalid frame configuration: an XOR key needs at least one byte"
    );
    let config = FrameConfig::default();
    let wire = write_with(config, Xor::new(b"clave").unwrap(), &[b"hola"]);
    let (back, err) = read_with(config, Xor::new(b"otra").unwrap(), &wire);
    assert!(err.is_none());
    assert_ne!(back, [b"hola".to_vec()]);
}

// ---------- (b) Adler-32 trailer ----------

#[test]
fn adler32_known_values() {
    assert_eq!(adler32(b""), 1);
    assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    assert_eq!(adler32(b"hola"), 0x042a_01a5);
    // Long inputs cross the block size where the sums are reduced.
    assert_eq!(adler32(&[0xff; 100_000]), 0x149a_302c);
    let cycle: Vec<u8> = (0..=255u8).cycle().take(256 * 300).collect();
    assert_eq!(adler32(&cycle), 0x09f8_72bc);
}

#[test]
fn checksum_round_trips() {
    let payloads = some_payloads();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    let config = FrameConfig::default();
    let wire = write_with(config, Adler32Trailer, &refs);
    let raw = raw_frames(config, &wire);
    for (r, p) in raw.iter().zip(&payloads) {
        assert_eq!(r.len(), p.len() + TRAILER_LEN);
        assert_eq!(&r[..p.len()], &p[..]);
    }
    let (back, err) = read_with(config, Adler32Trailer, &wire);
    assert!(err.is_none());
    assert_eq!(back, payloads);
}

#[test]
fn checksum_exact_wire_bytes() {
    let wire = write_with(FrameConfig::default(), Adler32Trailer, &[b"hola", b""]);
    assert_eq!(
        wire,
        b"\x00\x00\x00\x08hola\x04\x2a\x01\xa5\
          \x00\x00\x00\x04\x00\x00\x00\x01"
    );
}

#[test]
fn checksum_refuses_a_damaged_frame_naming_both_values() {
    let config = FrameConfig::default();
    let mut wire = write_with(config, Adler32Trailer, &[b"hola"]);
    wire[5] ^= 0x01; // "hola" -> "hnla"
    let (back, err) = read_with(config, Adler32Trailer, &wire);
    assert!(back.is_empty());
    let err = err.unwrap();
    assert!(matches!(
        err,
        Error::Transform {
            name: "adler32",
            len: 8,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "transform adler32 rejected a 8-byte frame: \
         checksum mismatch: trailer says 0x042a01a5, payload sums to 0x042701a4"
    );
    assert!(err.is_peer_fault());

    // A damaged trailer is refused the same way.
    let mut wire = write_with(config, Adler32Trailer, &[b"hola"]);
    wire[11] = 0;
    let (_, err) = read_with(config, Adler32Trailer, &wire);
    assert_eq!(
        err.unwrap().to_string(),
        "transform adler32 rejected a 8-byte frame: \
         checksum mismatch: trailer says 0x042a0100, payload sums to 0x042a01a5"
    );
}

#[test]
fn checksum_refuses_a_frame_too_short_for_its_trailer() {
    let (_, err) = read_with(
        FrameConfig::default(),
        Adler32Trailer,
        b"\x00\x00\x00\x03abc",
    );
    assert_eq!(
        err.unwrap().to_string(),
        "transform adler32 rejected a 3-byte frame: too short for its 4-byte checksum trailer"
    );
}

// ---------- (c) numbered fixed-size chunks ----------

const CHUNK: usize = 8;

fn chunk_config() -> FrameConfig {
    FrameConfig::builder()
        .width(HeaderWidth::Two)
        .order(ByteOrder::Little)
        .max_frame_len(SEQ_LEN + CHUNK)
        .build()
        .unwrap()
}

fn send_stream(data: &[u8]) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new(), chunk_config()).with_transform(Numbered::new());
    assert_eq!(
        write_stream(&mut w, &mut &data[..], CHUNK).unwrap(),
        data.len() as u64
    );
    w.into_inner()
}

fn receive_stream(wire: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = FrameReader::new(wire, chunk_config()).with_transform(Numbered::new());
    let mut back = Vec::new();
    StreamReader::new(&mut r).read_to_end(&mut back)?;
    assert!(r.read_frame().unwrap().is_none());
    Ok(back)
}

#[test]
fn numbered_chunks_round_trip_in_fixed_sizes() {
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let wire = send_stream(&data);
        let raw = raw_frames(chunk_config(), &wire);
        assert_eq!(raw.len(), len.div_ceil(CHUNK) + 1, "len {len}");
        for (i, frame) in raw.iter().enumerate() {
            assert_eq!(&frame[..SEQ_LEN], (i as u32).to_le_bytes(), "len {len}");
            let body = frame.len() - SEQ_LEN;
            if i + 1 < raw.len() - 1 {
                assert_eq!(body, CHUNK, "every chunk but the last is full");
            }
        }
        assert_eq!(
            raw.last().unwrap().len(),
            SEQ_LEN,
            "the end marker is numbered"
        );
        assert_eq!(receive_stream(&wire).unwrap(), data, "len {len}");
    }
}

#[test]
fn numbered_exact_wire_bytes() {
    let wire = write_with(chunk_config(), Numbered::new(), &[b"ab", b"cd"]);
    assert_eq!(
        wire,
        b"\x06\x00\x00\x00\x00\x00ab\
          \x06\x00\x01\x00\x00\x00cd"
    );
    // A whole stream of 10 bytes: chunks 0 and 1, then the numbered end marker.
    assert_eq!(
        send_stream(b"0123456789"),
        b"\x0c\x00\x00\x00\x00\x0001234567\
          \x06\x00\x01\x00\x00\x0089\
          \x04\x00\x02\x00\x00\x00"
    );
}

/// Re-frame the raw payloads of `wire` in the order given by `order`.
fn reorder(wire: &[u8], order: &[usize]) -> Vec<u8> {
    let raw = raw_frames(chunk_config(), wire);
    let mut out = Vec::new();
    for &i in order {
        chunk_config().encode(&raw[i], &mut out).unwrap();
    }
    out
}

#[test]
fn numbered_refuses_out_of_order_repeated_and_missing_chunks() {
    let wire = send_stream(b"0123456789abcdefXYZ"); // chunks 0, 1, 2, end marker 3
    let cases: &[(&[usize], usize, &str)] = &[
        (
            &[0, 2, 1, 3],
            1,
            "chunk 2 arrived where chunk 1 was expected",
        ),
        (
            &[0, 0, 1, 2, 3],
            1,
            "chunk 0 arrived where chunk 1 was expected",
        ),
        (&[0, 1, 3], 2, "chunk 3 arrived where chunk 2 was expected"),
        (&[1, 2, 3], 0, "chunk 1 arrived where chunk 0 was expected"),
    ];
    for (order, accepted, reason) in cases {
        let (back, err) = read_with(chunk_config(), Numbered::new(), &reorder(&wire, order));
        assert_eq!(back.len(), *accepted, "{order:?}");
        let err = err.unwrap();
        assert!(
            matches!(
                err,
                Error::Transform {
                    name: "numbered",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with(reason), "{order:?}: {err}");
    }

    // Through a StreamReader, the refusal surfaces as invalid data, never as a short file.
    let e = receive_stream(&reorder(&wire, &[0, 2, 1, 3])).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        e.to_string(),
        "transform numbered rejected a 7-byte frame: chunk 2 arrived where chunk 1 was expected"
    );
    // A complete, in-order stream is accepted.
    assert_eq!(
        receive_stream(&reorder(&wire, &[0, 1, 2, 3])).unwrap(),
        b"0123456789abcdefXYZ"
    );
}

#[test]
fn numbered_refuses_a_frame_too_short_for_its_number() {
    let (_, err) = read_with(chunk_config(), Numbered::new(), b"\x03\x00abc");
    assert_eq!(
        err.unwrap().to_string(),
        "transform numbered rejected a 3-byte frame: too short for its 4-byte sequence number"
    );
}

#[test]
fn the_header_counts_the_bytes_a_transform_adds() {
    // A limit with no room for the sequence number refuses a full chunk before writing it.
    let tight = FrameConfig::builder()
        .width(HeaderWidth::Two)
        .order(ByteOrder::Little)
        .max_frame_len(CHUNK)
        .build()
        .unwrap();
    let mut w = FrameWriter::new(Vec::new(), tight).with_transform(Numbered::new());
    let e = write_stream(&mut w, &mut &[0u8; CHUNK][..], CHUNK).unwrap_err();
    assert_eq!(e.to_string(), "frame of 12 bytes exceeds the limit of 8");
    assert!(w.get_ref().is_empty());
}

#[test]
fn xor_in_the_unframed_dialect_sends_messages_longer_than_one_read() {
    // Unframed, a message is sent as given whatever its length (the limit is
    // the size of one read); a transform must not change that.
    let message: Vec<u8> = (0..5000).map(|i| (i % 256) as u8).collect();
    let config = FrameConfig::unframed();
    let wire = write_with(config, Xor::new(b"k").unwrap(), &[&message]);
    let expected: Vec<u8> = message.iter().map(|b| b ^ b'k').collect();
    assert_eq!(wire, expected);
    // Read back in read-sized pieces; a one-byte key survives any cut.
    let (pieces, err) = read_with(config, Xor::new(b"k").unwrap(), &wire);
    assert!(err.is_none());
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces.concat(), message);
}
