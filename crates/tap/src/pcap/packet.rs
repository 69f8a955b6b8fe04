//! IPv4 and IPv6 packets carrying one TCP segment, with correct IP header
//! and TCP checksums, built as a header to put before the payload (the
//! payload itself is only read, for the checksum).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Most payload in one packet: an IPv4 packet's total length is 16 bits
/// and its headers (IP and TCP, no options) take 40 bytes. (IPv6 could
/// carry 20 bytes more; one limit for both keeps segmentation the same.)
pub(crate) const MAX_PAYLOAD: usize = 65_535 - 40;

/// TCP flags.
pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

/// The window every segment advertises (scaled by [`WINDOW_SHIFT`] after
/// the handshake): 8 MiB, more than the tap ever has in flight, so no
/// synthesized segment looks like it overran its receiver.
const WINDOW: u16 = 65_535;
const WINDOW_SHIFT: u8 = 7;

/// One TCP segment's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
}

/// Largest header [`header`] builds: IPv6 (40) and TCP with options (28).
pub(crate) const MAX_HEADER: usize = 68;

/// The two addresses in one family: both IPv4, or both IPv6 (an IPv4
/// address beside an IPv6 one is written IPv4-mapped).
fn family(src: IpAddr, dst: IpAddr) -> Result<(u32, u32), (Ipv6Addr, Ipv6Addr)> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok((u32::from(s), u32::from(d))),
        (s, d) => Err((v6(s), v6(d))),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// One's-complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte padded with zero), added to `sum`.
fn sum(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Fold a sum to 16 bits and complement it.
fn finish(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Write the IP and TCP headers of `seg` carrying `payload` (at most
/// [`MAX_PAYLOAD`] bytes) into `out`: the length written. A SYN carries
/// the MSS and window-scale options.
pub(crate) fn header(seg: &Segment, payload: &[u8], out: &mut [u8; MAX_HEADER]) -> usize {
    let mut tcp = [0u8; 28];
    let tcp_len = if seg.flags & SYN != 0 { 28 } else { 20 };
    tcp[0..2].copy_from_slice(&seg.src.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&seg.dst.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&seg.seq.to_be_bytes());
    let ack = if seg.flags & ACK != 0 { seg.ack } else { 0 };
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = ((tcp_len / 4) as u8) << 4;
    tcp[13] = seg.flags;
    tcp[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    if tcp_len == 28 {
        // MSS (kind 2), a no-op, window scale (kind 3).
        tcp[20..24].copy_from_slice(&[2, 4, 0, 0]);
        tcp[22..24].copy_from_slice(&(MAX_PAYLOAD as u16).to_be_bytes());
        tcp[24..28].copy_from_slice(&[1, 3, 3, WINDOW_SHIFT]);
    }
    let tcp = &mut tcp[..tcp_len];
    let seg_len = tcp_len + payload.len();
    let ip_len = match family(seg.src.ip(), seg.dst.ip()) {
        Ok((s, d)) => {
            let ip = &mut out[..20];
            ip.fill(0);
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + seg_len) as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64; // TTL
            ip[9] = 6; // TCP
            ip[12..16].copy_from_slice(&s.to_be_bytes());
            ip[16..20].copy_from_slice(&d.to_be_bytes());
            let check = finish(sum(0, ip));
            ip[10..12].copy_from_slice(&check.to_be_bytes());
            // Pseudo-header: addresses, protocol, TCP length.
            let pseudo = sum(0, &ip[12..20]) + 6 + seg_len as u64;
            let check = finish(sum(sum(pseudo, tcp), payload));
            tcp[16..18].copy_from_slice(&check.to_be_bytes());
            20
        }
        Err((s, d)) => {
            let ip = &mut out[..40];
            ip.fill(0);
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
            ip[6] = 6; // TCP
            ip[7] = 64; // hop limit
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            let pseudo = sum(0, &ip[8..40]) + 6 + seg_len as u64;
            let check = finish(sum(sum(pseudo, tcp), payload));
            tcp[16..18].copy_from_slice(&check.to_be_bytes());
            40
        }
    };
    out[ip_len..ip_len + tcp_len].copy_from_slice(tcp);
    ip_len + tcp_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, dst: &str, flags: u8) -> Segment {
        Segment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: 1000,
            ack: 2000,
            flags,
        }
    }

    /// A checksum over data that includes its checksum sums to zero.
    fn verifies(acc: u64) -> bool {
        finish(acc) == 0
    }

    #[test]
    fn the_checksum_is_rfc_1071s() {
        // RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2 (complement 220d).
        assert_eq!(
            finish(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0x220d
        );
        // An odd byte is padded on the right.
        assert_eq!(finish(sum(0, &[0x01])), !0x0100);
    }

    #[test]
    fn an_ipv4_segment_has_valid_checksums_and_lengths() {
        let mut out = [0u8; MAX_HEADER];
        let payload = b"\x00\x00\x00\x05hello";
        let n = header(
            &seg("127.0.0.1:40000", "10.0.0.2:7000", PSH | ACK),
            payload,
            &mut out,
        );
        assert_eq!(n, 40);
        let (ip, tcp) = out[..n].split_at(20);
        assert_eq!(ip[0], 0x45);
        assert_eq!(
            u16::from_be_bytes([ip[2], ip[3]]) as usize,
            40 + payload.len()
        );
        assert!(verifies(sum(0, ip)), "IP header checksum");
        let pseudo = sum(0, &ip[12..20]) + 6 + (20 + payload.len()) as u64;
        assert!(verifies(sum(sum(pseudo, tcp), payload)), "TCP checksum");
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 40000);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 7000);
        assert_eq!(u32::from_be_bytes(tcp[4..8].try_into().unwrap()), 1000);
        assert_eq!(u32::from_be_bytes(tcp[8..12].try_into().unwrap()), 2000);
        assert_eq!((tcp[12], tcp[13]), (0x50, PSH | ACK));
    }

    #[test]
    fn a_syn_carries_mss_and_window_scale_and_no_ack_number() {
        let mut out = [0u8; MAX_HEADER];
        let n = header(&seg("127.0.0.1:1", "127.0.0.1:2", SYN), &[], &mut out);
        assert_eq!(n, 48);
        let (ip, tcp) = out[..n].split_at(20);
        assert!(verifies(sum(0, ip)));
        assert_eq!(tcp[12], 0x70);
        assert_eq!(&tcp[8..12], &[0, 0, 0, 0]);
        assert_eq!(&tcp[20..28], &[2, 4, 0xff, 0xd7, 1, 3, 3, 7]);
        let pseudo = sum(0, &ip[12..20]) + 6 + 28;
        assert!(verifies(sum(pseudo, tcp)));
    }

    #[test]
    fn an_ipv6_segment_has_a_valid_tcp_checksum() {
        let mut out = [0u8; MAX_HEADER];
        let payload = b"odd";
        let n = header(
            &seg("[::1]:5000", "[2001:db8::2]:6000", ACK),
            payload,
            &mut out,
        );
        assert_eq!(n, 60);
        let (ip, tcp) = out[..n].split_at(40);
        assert_eq!(ip[0], 0x60);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 23);
        assert_eq!((ip[6], ip[7]), (6, 64));
        let pseudo = sum(0, &ip[8..40]) + 6 + 23;
        assert!(verifies(sum(sum(pseudo, tcp), payload)));
    }

    #[test]
    fn ipv4_beside_ipv6_is_written_mapped() {
        let mut out = [0u8; MAX_HEADER];
        let n = header(&seg("127.0.0.1:1", "[::1]:2", ACK), &[], &mut out);
        assert_eq!(n, 60);
        assert_eq!(
            &out[8..24],
            &"::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets()
        );
    }
}
