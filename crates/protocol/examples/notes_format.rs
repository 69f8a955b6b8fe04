//! What the course notes' messages look like on the wire.
//!
//! Run with `cargo run --release -p trama-protocol --example notes_format`.
//! Each message becomes one frame: a 4-byte big-endian length (the notes'
//! `len(data).to_bytes(4, byteorder='big')`), then the payload. The example
//! prints every frame in hex with the header set apart, reads them all back
//! with a `FrameReader`, and shows a hostile header being refused.

#[path = "shared/hex.rs"]
mod hex;

use std::collections::BTreeMap;

use hex::hex;
use serde::{Deserialize, Serialize};
use trama_protocol::{Codec, FrameConfig, FrameReader, FrameWriter};

/// The notes' pickle example, sent with MessagePack instead.
#[derive(Serialize, Deserialize, Debug)]
struct Persona {
    nombre: String,
    correo: String,
}

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res {
    let config = FrameConfig::default();
    let hl = config.header_len();
    println!("Wire format of the notes: a {hl}-byte big-endian length, then that many bytes.\n");

    let dict: BTreeMap<u32, &str> = [(1, "Hola"), (2, "Chao")].into();
    let persona = Persona {
        nombre: "Juan Pérez".into(),
        correo: "jp@ejemplo.com".into(),
    };

    // Each message on its own, to show its frame; then all of them in one stream.
    let frames = [
        ("text \"hola\"", frame(config, |w| w.send_text("hola"))?),
        ("an empty frame", frame(config, |w| w.write_frame(b""))?),
        (
            "JSON {1: \"Hola\", 2: \"Chao\"}",
            frame(config, |w| w.send(Codec::Json, &dict))?,
        ),
        (
            "MessagePack Persona",
            frame(config, |w| w.send(Codec::MsgPack, &persona))?,
        ),
    ];

    let mut wire = Vec::new();
    for (label, frame) in &frames {
        let (header, payload) = frame.split_at(hl);
        println!("{label}: {} bytes on the wire", frame.len());
        println!("  header  {}  = {}", hex(header), payload.len());
        print_payload(payload);
        println!();
        wire.extend_from_slice(frame);
    }
    println!("(Python's json.dumps adds a space after ':' and ','; both parse the same.)\n");

    println!("Reading the {} bytes back with a FrameReader:", wire.len());
    let mut reader = FrameReader::new(&wire[..], config);
    let text = reader.recv_text()?.ok_or("missing the text frame")?;
    println!("  text:        {text:?}");
    let empty = reader.read_frame()?.ok_or("missing the empty frame")?;
    println!("  empty:       {} bytes", empty.len());
    let dict: BTreeMap<u32, String> = reader.recv(Codec::Json)?.ok_or("missing the JSON frame")?;
    println!("  JSON:        {dict:?}");
    let persona: Persona = reader
        .recv(Codec::MsgPack)?
        .ok_or("missing the MessagePack frame")?;
    println!("  MessagePack: {persona:?}");
    if reader.read_frame()?.is_some() {
        return Err("unexpected extra frame".into());
    }
    println!("  then a clean end of stream");

    println!("\nA hostile header, ff ff ff ff (a 4 GiB - 1 frame), followed by 3 bytes:");
    let hostile: &[u8] = b"\xff\xff\xff\xffabc";
    let mut reader = FrameReader::new(hostile, config);
    match reader.read_frame() {
        Err(e) => println!("  refused before allocating anything: {e}"),
        Ok(_) => return Err("the hostile header was accepted".into()),
    }
    Ok(())
}

/// The bytes that `send` puts on the wire, written with a `FrameWriter`.
fn frame(
    config: FrameConfig,
    send: impl FnOnce(&mut FrameWriter<Vec<u8>>) -> trama_protocol::Result<()>,
) -> Res<Vec<u8>> {
    let mut writer = FrameWriter::new(Vec::new(), config);
    send(&mut writer)?;
    Ok(writer.into_inner())
}

/// The payload as hex, 16 bytes a line, with the printable ASCII beside it.
fn print_payload(payload: &[u8]) {
    if payload.is_empty() {
        println!("  payload (none)");
    }
    for (i, line) in payload.chunks(16).enumerate() {
        let label = if i == 0 { "payload" } else { "       " };
        let ascii: String = line
            .iter()
            .map(|&b| match b {
                b' '..=b'~' => b as char,
                _ => '.',
            })
            .collect();
        println!("  {label} {:<47}  {ascii}", hex(line));
    }
}
