//! pcapng blocks: the Section Header Block, one Interface Description
//! Block (raw IP, microsecond timestamps) and Enhanced Packet Blocks,
//! written little-endian to any [`Write`] sink.
//!
//! The format is the IETF draft "PCAP Now Generic" (pcapng): a file is a
//! section header, then interfaces, then packets, each block framed by its
//! total length at both ends and padded to 4 bytes. A file cut after any
//! whole block is complete, so a capture stopped at any point opens.

use std::io::{self, Write};

/// LINKTYPE_RAW: each packet is an IPv4 or IPv6 packet, told apart by its
/// version nibble, so one interface carries both.
pub(crate) const LINKTYPE_RAW: u16 = 101;
/// Largest packet the interface says it captures (IP's own largest).
const SNAPLEN: u32 = 65_535;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// Writes a pcapng section with one raw-IP interface.
#[derive(Debug)]
pub(crate) struct Writer<W: Write> {
    out: W,
}

/// Bytes to pad `len` to a multiple of 4.
fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// One option: code, length, value, padding.
fn option(block: &mut Vec<u8>, code: u16, value: &[u8]) {
    block.extend_from_slice(&code.to_le_bytes());
    block.extend_from_slice(&(value.len() as u16).to_le_bytes());
    block.extend_from_slice(value);
    block.resize(block.len() + pad(value.len()), 0);
}

/// Frame `body` as a block of type `kind`: type, total length, body, total length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

impl<W: Write> Writer<W> {
    /// Start a section on `out`: the section header (naming `app`) and the
    /// interface every packet is on.
    pub(crate) fn new(mut out: W, app: &str) -> io::Result<Writer<W>> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // major
        shb.extend_from_slice(&0u16.to_le_bytes()); // minor
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
        option(&mut shb, SHB_USERAPPL, app.as_bytes());
        option(&mut shb, OPT_END, &[]);
        out.write_all(&block(SHB, &shb))?;

        let mut idb = Vec::new();
        idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes()); // reserved
        idb.extend_from_slice(&SNAPLEN.to_le_bytes());
        option(&mut idb, IF_NAME, app.as_bytes());
        option(&mut idb, IF_TSRESOL, &[6]); // microseconds (also the default)
        option(&mut idb, OPT_END, &[]);
        out.write_all(&block(IDB, &idb))?;
        Ok(Writer { out })
    }

    /// One packet seen at `micros` (since the Unix epoch): `head` then
    /// `body`, as one packet (so a payload is never copied to be framed).
    pub(crate) fn packet(&mut self, micros: u64, head: &[u8], body: &[u8]) -> io::Result<()> {
        let len = head.len() + body.len();
        let total = (32 + len + pad(len)) as u32;
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&EPB.to_le_bytes());
        h[4..8].copy_from_slice(&total.to_le_bytes());
        // h[8..12]: interface 0.
        h[12..16].copy_from_slice(&((micros >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(micros as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(len as u32).to_le_bytes());
        h[24..28].copy_from_slice(&(len as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(head)?;
        self.out.write_all(body)?;
        self.out.write_all(&[0u8; 3][..pad(len)])?;
        self.out.write_all(&total.to_le_bytes())
    }

    /// Flush the sink.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The sink back.
    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The blocks of a file: (type, body), checking both length fields.
    pub(crate) fn blocks(mut b: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (kind, total) = (u32_at(b, 0), u32_at(b, 4) as usize);
            assert_eq!(total % 4, 0, "block length {total} is not a multiple of 4");
            assert_eq!(u32_at(b, total - 4) as usize, total, "trailing length");
            out.push((kind, b[8..total - 4].to_vec()));
            b = &b[total..];
        }
        out
    }

    #[test]
    fn a_section_has_a_header_an_interface_and_packets_padded_to_four() {
        let mut w = Writer::new(Vec::new(), "trama-tap").unwrap();
        w.packet(0x1_0000_0002, b"\x45\x00", b"abc").unwrap();
        let file = w.into_inner();
        let b = blocks(&file);
        assert_eq!(b.len(), 3);
        let (kind, shb) = &b[0];
        assert_eq!(*kind, SHB);
        assert_eq!(u32_at(shb, 0), BYTE_ORDER_MAGIC);
        assert_eq!(&shb[4..8], &[1, 0, 0, 0]);
        assert_eq!(&shb[8..16], &[0xff; 8]);
        // shb_userappl "trama-tap" (9 bytes, padded to 12), then the end.
        assert_eq!(&shb[16..20], &[4, 0, 9, 0]);
        assert_eq!(&shb[20..29], b"trama-tap");
        assert_eq!(&shb[32..36], &[0, 0, 0, 0]);
        let (kind, idb) = &b[1];
        assert_eq!(*kind, IDB);
        assert_eq!(&idb[0..4], &[101, 0, 0, 0]);
        assert_eq!(u32_at(idb, 4), 65_535);
        let (kind, epb) = &b[2];
        assert_eq!(*kind, EPB);
        assert_eq!(u32_at(epb, 0), 0, "interface");
        assert_eq!(
            (u32_at(epb, 4), u32_at(epb, 8)),
            (1, 2),
            "timestamp high, low"
        );
        assert_eq!((u32_at(epb, 12), u32_at(epb, 16)), (5, 5));
        assert_eq!(&epb[20..], b"\x45\x00abc\x00\x00\x00");
    }
}
