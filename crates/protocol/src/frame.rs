//! Frame headers and whole frames as bytes.

use crate::{ByteOrder, Error, FrameConfig, Result};

/// An encoded length header: up to 8 bytes, stored inline (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; 8],
    len: usize,
}

impl Header {
    /// The header bytes to put on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl FrameConfig {
    /// Encode the header for a payload of `len` bytes, checking the limit.
    ///
    /// In unframed mode the header is empty.
    pub fn header(&self, len: usize) -> Result<Header> {
        self.check_len(len as u64)?;
        Ok(self.header_unchecked(len as u64))
    }

    /// Encode a header for a body of `len` bytes that is streamed rather than
    /// held in memory: only the header width limits it, not `max_frame_len`.
    /// This is how the notes' file format sends up to 4 GiB - 1 with a 4-byte header.
    pub fn body_header(&self, len: u64) -> Result<Header> {
        let width_max = self.width().max_len();
        if len > width_max {
            return Err(Error::FrameTooLarge {
                len,
                limit: width_max,
            });
        }
        Ok(self.header_unchecked(len))
    }

    /// `len` must fit the header width (callers check). A whole-word shift, not
    /// a variable-length slice copy: that copy was a `memcpy` call and made up
    /// most of the cost of framing a small message (see `benches/framing.rs`).
    fn header_unchecked(&self, len: u64) -> Header {
        let n = self.header_len();
        let bytes = match self.order() {
            // Move the low n bytes to the top, so they come first. n == 0
            // (unframed) shifts by 64, which checked_shl refuses: no header.
            ByteOrder::Big => len
                .checked_shl(64 - 8 * n as u32)
                .unwrap_or(0)
                .to_be_bytes(),
            ByteOrder::Little => len.to_le_bytes(),
        };
        Header { bytes, len: n }
    }

    /// Read a length from exactly [`header_len`](FrameConfig::header_len) bytes.
    /// No limit is applied here; callers check it.
    pub fn parse_header(&self, header: &[u8]) -> u64 {
        let n = self.header_len().min(header.len());
        let header = &header[..n];
        // The default 4-byte header, without a loop.
        if let Ok(word) = <[u8; 4]>::try_from(header) {
            return u64::from(match self.order() {
                ByteOrder::Big => u32::from_be_bytes(word),
                ByteOrder::Little => u32::from_le_bytes(word),
            });
        }
        let byte = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        match self.order() {
            ByteOrder::Big => header.iter().fold(0, byte),
            ByteOrder::Little => header.iter().rev().fold(0, byte),
        }
    }

    /// Append one whole frame (header, then payload) to `out`.
    ///
    /// Refuses an over-limit payload before touching `out`. In unframed mode
    /// the payload is appended as given, whatever its length: the limit there
    /// is a read size, not a message size.
    ///
    /// ```
    /// use trama_protocol::FrameConfig;
    ///
    /// let mut wire = Vec::new();
    /// FrameConfig::default().encode(b"hola", &mut wire)?;
    /// assert_eq!(wire, b"\x00\x00\x00\x04hola");
    /// # Ok::<(), trama_protocol::Error>(())
    /// ```
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.is_unframed() {
            out.extend_from_slice(payload);
            return Ok(());
        }
        let header = self.header(payload.len())?;
        out.reserve(header.len + payload.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{ByteOrder, FrameConfig, HeaderWidth};

    fn cfg(width: HeaderWidth, order: ByteOrder) -> FrameConfig {
        FrameConfig::builder()
            .width(width)
            .order(order)
            .max_frame_len(255)
            .build()
            .unwrap()
    }

    #[test]
    fn exact_wire_bytes_for_every_width_and_order() {
        use ByteOrder::*;
        use HeaderWidth::*;
        let cases: &[(HeaderWidth, ByteOrder, &[u8])] = &[
            (One, Big, b"\x03"),
            (One, Little, b"\x03"),
            (Two, Big, b"\x00\x03"),
            (Two, Little, b"\x03\x00"),
            (Four, Big, b"\x00\x00\x00\x03"),
            (Four, Little, b"\x03\x00\x00\x00"),
            (Eight, Big, b"\x00\x00\x00\x00\x00\x00\x00\x03"),
            (Eight, Little, b"\x03\x00\x00\x00\x00\x00\x00\x00"),
        ];
        for (w, o, header) in cases {
            let c = cfg(*w, *o);
            let mut out = Vec::new();
            c.encode(b"abc", &mut out).unwrap();
            let mut expected = header.to_vec();
            expected.extend_from_slice(b"abc");
            assert_eq!(out, expected, "{w:?} {o:?}");
            assert_eq!(c.parse_header(header), 3);
        }
    }

    #[test]
    fn notes_format_for_a_known_length() {
        // 300 bytes is 0x012C: the notes' int.to_bytes(4, 'big') gives 00 00 01 2C.
        let c = FrameConfig::default();
        assert_eq!(c.header(300).unwrap().as_bytes(), b"\x00\x00\x01\x2c");
        assert_eq!(c.parse_header(b"\xff\xff\xff\xff"), u32::MAX as u64);
    }

    #[test]
    fn over_limit_payload_is_refused_before_writing() {
        let c = FrameConfig::builder().max_frame_len(4).build().unwrap();
        let mut out = b"keep".to_vec();
        let e = c.encode(b"12345", &mut out).unwrap_err();
        assert_eq!(e.to_string(), "frame of 5 bytes exceeds the limit of 4");
        assert_eq!(out, b"keep");
    }

    #[test]
    fn body_header_is_limited_by_width_only() {
        let c = FrameConfig::default();
        assert_eq!(
            c.body_header(u32::MAX as u64).unwrap().as_bytes(),
            b"\xff\xff\xff\xff"
        );
        assert_eq!(
            c.body_header(1 << 32).unwrap_err().to_string(),
            "frame of 4294967296 bytes exceeds the limit of 4294967295"
        );
    }

    #[test]
    fn unframed_has_no_header() {
        let c = FrameConfig::unframed();
        let mut out = Vec::new();
        c.encode(&[7u8; 5000], &mut out).unwrap();
        assert_eq!(out.len(), 5000);
    }
}
