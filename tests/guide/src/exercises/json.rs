//! Chapter 1 (JSON): read whole JSON messages, however the bytes arrive.
//!
//! The notes' client decodes whatever one `recv(4096)` returned. Framed, a
//! message is whole or not there yet, whatever pieces the network cuts.

use std::io::Read;

use trama_protocol::{Codec, FrameConfig, FrameReader};

/// Reads every framed JSON message from `input` until it ends cleanly.
pub fn read_json_messages<R: Read>(input: R) -> trama_protocol::Result<Vec<serde_json::Value>> {
    let mut reader = FrameReader::new(input, FrameConfig::default());
    let mut all = Vec::new();
    while let Some(value) = reader.recv(Codec::Json)? {
        all.push(value);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use trama_protocol::FrameWriter;

    /// The network at its worst: every read returns one byte.
    struct OneByteAtATime<'a>(&'a [u8]);

    impl Read for OneByteAtATime<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn two_messages_arriving_one_byte_at_a_time() {
        let mut w = FrameWriter::new(Vec::new(), FrameConfig::default());
        w.send(Codec::Json, &json!({"1": "Hola", "2": "Chao"}))
            .unwrap();
        w.send(Codec::Json, &json!([1, 2, 3])).unwrap();
        let wire = w.into_inner();
        let got = read_json_messages(OneByteAtATime(&wire)).unwrap();
        assert_eq!(got, [json!({"1": "Hola", "2": "Chao"}), json!([1, 2, 3])]);
    }
}
