//! Three course formats built on trama without forking it: a `FrameConfig`
//! for the header, a `Transform` for the payload.
//!
//! Run with `cargo run -p trama-protocol --example course_formats`.
//!
//! - XOR every payload byte with a key.
//! - An Adler-32 checksum trailer, checked and stripped on the way in.
//! - Data sent as numbered fixed-size chunks behind a 2-byte little-endian header.
//!
//! The transforms live in `shared/course_transforms.rs`, which the tests include too.

#[path = "shared/course_transforms.rs"]
mod course_transforms;
#[path = "shared/hex.rs"]
mod hex;

use std::io::Read;

use course_transforms::{adler32, Adler32Trailer, Numbered, Xor, SEQ_LEN, TRAILER_LEN};
use hex::hex;
use trama_protocol::{
    write_stream, ByteOrder, Decoder, FrameConfig, FrameReader, FrameWriter, HeaderWidth,
    StreamReader,
};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Payload bytes per numbered chunk (the sequence number comes on top).
const CHUNK: usize = 8;

fn main() -> Res {
    xor()?;
    checksum()?;
    numbered_chunks()
}

fn xor() -> Res {
    println!("(a) XOR with the key \"clave\", 4-byte big-endian header");
    let config = FrameConfig::default();
    let mut w = FrameWriter::new(Vec::new(), config).with_transform(Xor::new(b"clave")?);
    w.send_text("hola")?;
    let wire = w.into_inner();
    println!("  wire: {}", hex(&wire));
    let mut r = FrameReader::new(&wire[..], config).with_transform(Xor::new(b"clave")?);
    println!("  read back: {:?}", r.recv_text()?.ok_or("no frame")?);
    let mut r = FrameReader::new(&wire[..], config).with_transform(Xor::new(b"otra")?);
    let wrong = r.read_frame()?.ok_or("no frame")?;
    println!(
        "  with the wrong key: {}\n",
        String::from_utf8_lossy(&wrong)
    );
    Ok(())
}

fn checksum() -> Res {
    println!("(b) Adler-32 trailer ({TRAILER_LEN} bytes, big-endian) after the payload");
    let config = FrameConfig::default();
    let mut w = FrameWriter::new(Vec::new(), config).with_transform(Adler32Trailer);
    w.send_text("hola")?;
    let mut wire = w.into_inner();
    println!(
        "  wire: {}  (adler32(\"hola\") = {:#010x})",
        hex(&wire),
        adler32(b"hola")
    );
    let mut r = FrameReader::new(&wire[..], config).with_transform(Adler32Trailer);
    println!("  read back: {:?}", r.recv_text()?.ok_or("no frame")?);

    // Flip one bit of the payload, as a bad link would.
    wire[5] ^= 0x01;
    println!("  damaged:   {}", hex(&wire));
    let mut r = FrameReader::new(&wire[..], config).with_transform(Adler32Trailer);
    match r.read_frame() {
        Err(e) => println!("  refused: {e}\n"),
        Ok(_) => return Err("a damaged frame was accepted".into()),
    }
    Ok(())
}

fn numbered_chunks() -> Res {
    println!("(c) numbered chunks of {CHUNK} bytes: 2-byte little-endian header, {SEQ_LEN}-byte sequence number");
    let config = FrameConfig::builder()
        .width(HeaderWidth::Two)
        .order(ByteOrder::Little)
        .max_frame_len(SEQ_LEN + CHUNK)
        .build()?;
    let data = b"Hola, esto llega en trozos numerados.";
    let mut w = FrameWriter::new(Vec::new(), config).with_transform(Numbered::new());
    write_stream(&mut w, &mut &data[..], CHUNK)?;
    let wire = w.into_inner();

    // The raw frames, without the transform: header, number, data.
    let frames = Decoder::new(config).decode_vec(&wire)?;
    for frame in &frames {
        let (seq, chunk) = frame.split_at(SEQ_LEN);
        println!(
            "  {} | {} | {:?}",
            hex(config.header(frame.len())?.as_bytes()),
            hex(seq),
            String::from_utf8_lossy(chunk)
        );
    }

    let mut r = FrameReader::new(&wire[..], config).with_transform(Numbered::new());
    let mut back = Vec::new();
    StreamReader::new(&mut r).read_to_end(&mut back)?;
    println!("  read back: {:?}", String::from_utf8_lossy(&back));

    // Swap chunks 1 and 2, as if they had come out of order.
    let mut swapped = Vec::new();
    for i in [0, 2, 1] {
        config.encode(&frames[i], &mut swapped)?;
    }
    let mut r = FrameReader::new(&swapped[..], config).with_transform(Numbered::new());
    loop {
        match r.read_frame() {
            Ok(Some(chunk)) => println!("  accepted {:?}", String::from_utf8_lossy(&chunk)),
            Ok(None) => break,
            Err(e) => {
                println!("  refused: {e}");
                return Ok(());
            }
        }
    }
    Err("out-of-order chunks were accepted".into())
}
