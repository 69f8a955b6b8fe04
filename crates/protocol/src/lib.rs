//! # trama-protocol
//!
//! The bytes of trama: how messages are framed on a TCP stream, how typed
//! values become payloads, and the plain types that the transport and the
//! application logic share. There is no socket in this crate: everything here
//! works on byte slices, `Read` and `Write`, so it is tested without a network
//! and reused with any stream.
//!
//! ## The wire format
//!
//! By default a frame is a 4-byte big-endian unsigned length followed by
//! exactly that many payload bytes: the format of the course notes' chat and
//! file programs (`len(data).to_bytes(4, byteorder='big') + data` in Python).
//! [`FrameConfig`] also describes 1-, 2- and 8-byte headers, little-endian
//! lengths, a payload limit, and the notes' unframed dialect, where a message
//! is simply what one `recv(4096)` returned.
//!
//! ## Pieces
//!
//! - [`FrameWriter`] / [`FrameReader`]: blocking, over any `Write` / `Read`.
//! - [`Decoder`]: sans-IO, for readiness loops; fed bytes in any pieces.
//! - [`FrameBoundary`]: the decoder's rules for where frames begin and end,
//!   for code that follows frames without assembling them.
//! - [`FrameReader::read_body`] and [`FrameWriter::send_body`]: one header,
//!   then a body of up to the header's width streamed in constant memory.
//! - [`write_stream`] / [`StreamReader`]: any amount of data as a sequence of
//!   frames with an end marker.
//! - [`Codec`]: JSON and MessagePack for typed values; [`text()`] for UTF-8.
//! - [`Transform`]: the hook for course formats (XOR, checksums, numbering).
//! - [`Backoff`]: the one rule for waiting before a reconnection.
//! - [`Service`], [`Event`], [`Actions`], [`ConnId`]: the contract between the
//!   transport (`trama-transport`) and the logic (`trama-backend`).
//! - `auth`: the shared-key handshake of the notes' `multiprocessing`
//!   connections, behind the `key` feature (on by default). Without it
//!   (`default-features = false`) the crate is framing and codecs alone and
//!   pulls in no hash function and no OS randomness.
//!
//! ## Examples to run and copy
//!
//! `cargo run -p trama-protocol --example NAME`, with NAME one of:
//!
//! - `one_recv`: one `read` on a real socket gets a fraction of a
//!   100,000-byte message, a [`FrameReader`] gets all of it;
//! - `thread_per_client`: the course notes' multi-client server written
//!   plainly, one thread per client (the guide measures it against
//!   trama's readiness-loop server);
//! - `notes_format`: the notes' messages on the wire, byte by byte;
//! - `course_formats`: other formats a course may ask for (XOR, a checksum
//!   trailer, numbered chunks).
//!
//! The guide (`docs/guide`, in Spanish `docs/guia`) goes from each section
//! of the notes to these pieces.
//!
//! ## Example
//!
//! ```
//! use trama_protocol::{Codec, FrameConfig, FrameReader, FrameWriter};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Saludo { de: String, texto: String }
//!
//! // Write two frames into a buffer (a TcpStream works the same way).
//! let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
//! w.send_text("hola")?;
//! w.send(Codec::MsgPack, &Saludo { de: "ana".into(), texto: "chao".into() })?;
//!
//! // Read them back.
//! let wire = w.into_inner();
//! let mut r = FrameReader::new(&wire[..], FrameConfig::default());
//! assert_eq!(r.recv_text()?.as_deref(), Some("hola"));
//! let s: Saludo = r.recv(Codec::MsgPack)?.expect("a second frame");
//! assert_eq!(s.texto, "chao");
//! assert!(r.read_frame()?.is_none());
//! # Ok::<(), trama_protocol::Error>(())
//! ```

#[cfg(feature = "key")]
pub mod auth;
mod backoff;
mod boundary;
mod codec;
mod config;
mod decoder;
pub mod envelope;
mod error;
mod frame;
mod reader;
mod service;
mod stream;
mod transform;
mod writer;

pub use backoff::{Backoff, Retries};
pub use boundary::{FrameBoundary, Part, Span};
pub use codec::{text, Codec};
pub use config::{
    ByteOrder, FrameConfig, FrameConfigBuilder, Framing, HeaderWidth, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_READ_SIZE,
};
pub use decoder::Decoder;
pub use error::{Error, Result};
pub use frame::Header;
pub use reader::{Body, FrameReader};
pub use service::{Action, Actions, ConnId, DisconnectReason, Event, LinkId, Service};
pub use stream::{write_stream, StreamReader};
pub use transform::Transform;
pub use writer::{write_all_parts, FrameWriter};
