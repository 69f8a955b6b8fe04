//! The notes' first pitfall, on a real socket: one `recv` is not one message.
//!
//! Run: `cargo run -p trama-protocol --example one_recv`.
//!
//! A sender on another thread writes 100,000 bytes with one `write_all`
//! (Python's `sendall`), twice: first raw, as the notes' file sender does,
//! then as one frame. The receiver first does what the notes' first file
//! receiver does, a single `read` of up to 4096 bytes, and counts what it
//! got; then it reads the frame with a `FrameReader`, which loops until the
//! length in the header has arrived.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use trama_protocol::{FrameConfig, FrameReader, FrameWriter};

const SIZE: usize = 100_000;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let sender = thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        stream.write_all(&sent)?;
        let mut writer = FrameWriter::new(stream, FrameConfig::default());
        writer.write_frame(&sent).map_err(std::io::Error::other)
    });

    let (mut stream, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf)?;
    println!("one read of up to 4096 bytes: got {n} of {SIZE}; the rest is still in the socket");
    // Skip the rest of the raw copy, so the frame starts where we read next.
    let mut rest = vec![0u8; SIZE - n];
    stream.read_exact(&mut rest)?;

    let mut reader = FrameReader::new(stream, FrameConfig::default());
    let frame = reader
        .read_frame()?
        .ok_or("the sender closed before its frame")?;
    let intact = if frame == data { "intact" } else { "DAMAGED" };
    println!("FrameReader: got {} of {SIZE} bytes, {intact}", frame.len());
    sender.join().map_err(|_| "the sender thread panicked")??;
    Ok(())
}
