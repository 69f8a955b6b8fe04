//! What the peer's test files share: the line a peer prints when another
//! joins, and a link to a real peer made by the test itself, speaking the
//! mesh's wire format from a plain socket.

// Each test file uses a different part of this.
#![allow(dead_code)]
// Test code: a helper panics to fail the test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use trama_backend::mesh::{self, Wire};
use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
use trama_test_support::console::DEADLINE;

/// What a peer prints when `name` joins the mesh.
pub fn joined(name: &str) -> String {
    format!("* {name} joined")
}

/// One link to a real peer, from the test itself.
pub struct RawLink {
    writer: FrameWriter<TcpStream>,
    reader: FrameReader<TcpStream>,
}

impl RawLink {
    /// Connect to `addr`; nothing is said yet.
    pub fn connect(addr: SocketAddr) -> RawLink {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let config = FrameConfig::builder()
            .max_frame_len(mesh::MAX_FRAME)
            .build()
            .unwrap();
        RawLink {
            writer: FrameWriter::new(stream.try_clone().unwrap(), config),
            reader: FrameReader::new(stream, config),
        }
    }

    pub fn send(&mut self, wire: &Wire) {
        self.send_payload(&wire.encode().unwrap());
    }

    pub fn send_payload(&mut self, payload: &[u8]) {
        self.writer.write_frame(payload).unwrap();
        self.writer.flush().unwrap();
    }

    /// Bytes that need not be a frame at all, straight onto the socket.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.get_mut().write_all(bytes).unwrap();
    }

    /// The next frame, or `None` once the peer closed (or reset) the link.
    pub fn recv(&mut self) -> Option<Wire> {
        match self.reader.read_frame() {
            Ok(Some(payload)) => Some(Wire::decode(&payload).unwrap()),
            Ok(None) => None,
            Err(e) if e.to_string().to_lowercase().contains("reset") => None,
            Err(e) => panic!("raw link: {e}"),
        }
    }
}
