//! Chapter 3 (a lot of data): a file as one header and a streamed body.
//!
//! Memory stays constant whatever the size, and a header announcing more
//! than the receiver accepts is refused before a single byte is stored.

use std::io::{Read, Write};

use trama_protocol::{FrameConfig, FrameReader, FrameWriter};

/// Sends `len` bytes from `file` to `out`: a 4-byte length, then the bytes.
pub fn send_file<W: Write>(out: W, file: &mut impl Read, len: u64) -> trama_protocol::Result<u64> {
    FrameWriter::new(out, FrameConfig::default()).send_body(len, file)
}

/// Receives one file from `input` into `file`, refusing more than `limit`
/// bytes; returns its length, or `None` if the sender sent nothing at all.
pub fn receive_file<R: Read>(
    input: R,
    file: &mut impl Write,
    limit: u64,
) -> trama_protocol::Result<Option<u64>> {
    let mut reader = FrameReader::new(input, FrameConfig::default());
    match reader.read_body(limit)? {
        None => Ok(None),
        Some(mut body) => body.copy_to(file).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mebibyte_arrives_whole_and_a_huge_header_is_refused() {
        let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        send_file(&mut wire, &mut &data[..], data.len() as u64).unwrap();
        let mut got = Vec::new();
        assert_eq!(
            receive_file(&wire[..], &mut got, 1 << 30).unwrap(),
            Some(1 << 20)
        );
        assert_eq!(got, data);

        // 0xFFFFFFFF announced, nothing stored.
        let hostile = [0xff, 0xff, 0xff, 0xff, b'x'];
        let mut stored = Vec::new();
        assert!(receive_file(&hostile[..], &mut stored, 1 << 30).is_err());
        assert!(stored.is_empty());
    }
}
