//! Three course formats as [`Transform`]s, shared by the `course_formats`
//! example and its tests (both include this file with `#[path]`).
//!
//! Header width, byte order and the limit are [`FrameConfig`] settings; what
//! changes the payload itself lives here, outside the crate, without forking it.
//!
//! [`FrameConfig`]: trama_protocol::FrameConfig

use trama_protocol::{Error, Result, Transform};

/// XOR every payload byte with a repeating key (restarted at each frame).
///
/// XOR is its own inverse, so both directions do the same thing. It hides
/// nothing from anyone who wants to look: it is a course exercise, not encryption.
#[derive(Debug, Clone)]
pub struct Xor {
    key: Vec<u8>,
}

impl Xor {
    /// A transform with `key`, which must not be empty.
    pub fn new(key: &[u8]) -> Result<Xor> {
        if key.is_empty() {
            return Err(Error::Config("an XOR key needs at least one byte".into()));
        }
        Ok(Xor { key: key.to_vec() })
    }

    fn apply(&self, payload: &mut [u8]) {
        for (b, k) in payload.iter_mut().zip(self.key.iter().cycle()) {
            *b ^= k;
        }
    }
}

impl Transform for Xor {
    fn name(&self) -> &'static str {
        "xor"
    }

    fn outbound(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        self.apply(payload);
        Ok(())
    }

    fn inbound(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        self.apply(payload);
        Ok(())
    }
}

/// Adler-32 of `data` (RFC 1950): two running sums modulo 65521.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before `b` could overflow a u32.
    for block in data.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Appends a 4-byte big-endian Adler-32 of the payload; checks and strips it on the way in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Adler32Trailer;

/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 4;

impl Transform for Adler32Trailer {
    fn name(&self) -> &'static str {
        "adler32"
    }

    fn outbound(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        let sum = adler32(payload);
        payload.extend_from_slice(&sum.to_be_bytes());
        Ok(())
    }

    fn inbound(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        let len = payload.len();
        let refuse = |reason: String| Error::Transform {
            name: "adler32",
            len,
            reason,
        };
        let Some(body_len) = len.checked_sub(TRAILER_LEN) else {
            return Err(refuse(format!(
                "too short for its {TRAILER_LEN}-byte checksum trailer"
            )));
        };
        let mut trailer = [0u8; TRAILER_LEN];
        trailer.copy_from_slice(&payload[body_len..]);
        let sent = u32::from_be_bytes(trailer);
        let computed = adler32(&payload[..body_len]);
        if sent != computed {
            return Err(refuse(format!(
                "checksum mismatch: trailer says {sent:#010x}, payload sums to {computed:#010x}"
            )));
        }
        payload.truncate(body_len);
        Ok(())
    }
}

/// Bytes of the sequence number in front of each chunk.
pub const SEQ_LEN: usize = 4;

/// Prefixes each payload with a 4-byte little-endian sequence number (0, 1,
/// 2, ...); on the way in, checks that the numbers come in order and strips them.
///
/// One instance numbers one direction of one stream. Used with a 2-byte
/// little-endian header and [`write_stream`](trama_protocol::write_stream),
/// it sends data as numbered fixed-size chunks; the end marker is numbered too.
#[derive(Debug, Clone, Default)]
pub struct Numbered {
    next: u32,
}

impl Numbered {
    /// Numbering from 0.
    pub fn new() -> Numbered {
        Numbered::default()
    }
}

impl Transform for Numbered {
    fn name(&self) -> &'static str {
        "numbered"
    }

    fn outbound(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        payload.splice(0..0, self.next.to_le_bytes());
        self.next = self.next.wrapping_add(1);
        Ok(())
    }

    fn inbound(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        let len = payload.len();
        let refuse = |reason: String| Error::Transform {
            name: "numbered",
            len,
            reason,
        };
        let Some(seq) = payload.get(..SEQ_LEN) else {
            return Err(refuse(format!(
                "too short for its {SEQ_LEN}-byte sequence number"
            )));
        };
        let mut number = [0u8; SEQ_LEN];
        number.copy_from_slice(seq);
        let seq = u32::from_le_bytes(number);
        if seq != self.next {
            return Err(refuse(format!(
                "chunk {seq} arrived where chunk {} was expected",
                self.next
            )));
        }
        payload.drain(..SEQ_LEN);
        self.next = self.next.wrapping_add(1);
        Ok(())
    }
}
