//! Captures in pcapng (`trama-tap --pcap FILE`, `trama-tap pcap`): what
//! crossed the tap, as Wireshark would have seen it on the wire.
//!
//! Each proxied connection is two TCP conversations with their real
//! addresses: the *front* one, client to tap, and the *back* one, tap to
//! server. The bytes read from a sender are data on the leg they came in
//! on; the bytes the tap wrote (after faults: a split shows as the pieces
//! it made, a delay as the gap) are data on the other leg. The handshakes,
//! acknowledgements and sequence numbers are made up to agree with the
//! data; the closes are the FINs and RSTs the tap saw and sent.
//!
//! - [`block`]: the pcapng blocks.
//! - [`packet`]: IPv4/IPv6 and TCP headers with their checksums.
//! - [`tcp`]: one conversation's sequence numbers, handshake and close.
//! - [`convert`]: a `--record` recording turned into a capture.
//!
//! No I/O here but the [`Write`] sink the capture goes to.

mod block;
mod convert;
mod packet;
mod tcp;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use convert::{pcap_from_recording, Converted};

use crate::{Direction, End, ProxyEvent, TapResult};
use packet::{Segment, MAX_HEADER};
use tcp::{Conversation, Side};

/// One proxied connection's conversations.
struct Legs {
    /// Client (opener) to the tap.
    front: Conversation,
    /// The tap (opener) to the server; `None` when the capture has one
    /// conversation per connection, client to server (a recording).
    back: Option<Conversation>,
}

/// A capture being written: the conversations open now, and the file.
pub(crate) struct Capture<W: Write> {
    out: block::Writer<W>,
    conns: HashMap<u64, Legs>,
}

/// An initial sequence number that differs per connection, leg and side,
/// and is the same from run to run.
fn isn(conn: u64, leg: u64, side: u64) -> u32 {
    let mut z = conn
        .wrapping_mul(4)
        .wrapping_add(leg * 2 + side)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

impl<W: Write> Capture<W> {
    /// Start a capture on `out` (the section and interface blocks are written now).
    pub(crate) fn new(out: W) -> io::Result<Capture<W>> {
        Ok(Capture {
            out: block::Writer::new(out, "trama-tap")?,
            conns: HashMap::new(),
        })
    }

    /// Run `f` on connection `conn`'s legs with a sink writing packets at `micros`.
    fn with(
        &mut self,
        conn: u64,
        micros: u64,
        f: impl FnOnce(&mut Legs, &mut tcp::Sink<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(legs) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let out = &mut self.out;
        let mut head = [0u8; MAX_HEADER];
        let mut sink = |seg: &Segment, payload: &[u8]| {
            let n = packet::header(seg, payload, &mut head);
            out.packet(micros, &head[..n], payload)
        };
        f(legs, &mut sink)
    }

    /// Connection `conn` opened at `micros`: `client` connected to the tap
    /// at `accepted_on`, and the tap from `dialed_from` to `server`. With
    /// no tap addresses, the capture shows client and server talking directly.
    pub(crate) fn open(
        &mut self,
        micros: u64,
        conn: u64,
        (client, accepted_on): (SocketAddr, SocketAddr),
        back: Option<(SocketAddr, SocketAddr)>,
    ) -> io::Result<()> {
        let mut head = [0u8; MAX_HEADER];
        let out = &mut self.out;
        let mut sink = |seg: &Segment, payload: &[u8]| {
            let n = packet::header(seg, payload, &mut head);
            out.packet(micros, &head[..n], payload)
        };
        let front = Conversation::open(
            client,
            accepted_on,
            [isn(conn, 0, 0), isn(conn, 0, 1)],
            &mut sink,
        )?;
        let back = match back {
            Some((from, server)) => Some(Conversation::open(
                from,
                server,
                [isn(conn, 1, 0), isn(conn, 1, 1)],
                &mut sink,
            )?),
            None => None,
        };
        self.conns.insert(conn, Legs { front, back });
        Ok(())
    }

    /// `bytes` read from the sender of `dir` (data on the leg it came in on).
    pub(crate) fn read(
        &mut self,
        micros: u64,
        conn: u64,
        dir: Direction,
        bytes: &[u8],
    ) -> io::Result<()> {
        self.with(conn, micros, |legs, out| match (dir, &mut legs.back) {
            (Direction::ClientToServer, _) => legs.front.data(Side::Opener, bytes, out),
            (Direction::ServerToClient, Some(back)) => back.data(Side::Accepter, bytes, out),
            (Direction::ServerToClient, None) => legs.front.data(Side::Accepter, bytes, out),
        })
    }

    /// `bytes` the tap wrote to the receiver of `dir` (data on the other leg).
    pub(crate) fn wrote(
        &mut self,
        micros: u64,
        conn: u64,
        dir: Direction,
        bytes: &[u8],
    ) -> io::Result<()> {
        self.with(conn, micros, |legs, out| match (dir, &mut legs.back) {
            (_, None) => Ok(()),
            (Direction::ClientToServer, Some(back)) => back.data(Side::Opener, bytes, out),
            (Direction::ServerToClient, Some(_)) => legs.front.data(Side::Accepter, bytes, out),
        })
    }

    /// Direction `dir` ended with `end`; `reset_seen`: its sender reset the
    /// connection. What the tap did then is what the proxy does (see
    /// `proxy::flow::ending`): an end of stream is passed on as a FIN, a
    /// fault's close is a FIN to both peers, a reset (a fault's, or the
    /// sender's passed on) a RST to both, a failure a FIN to both.
    pub(crate) fn ended(
        &mut self,
        micros: u64,
        conn: u64,
        dir: Direction,
        end: &End,
        reset_seen: bool,
    ) -> io::Result<()> {
        self.with(conn, micros, |legs, out| {
            let Some(back) = legs.back.as_mut() else {
                // Client and server directly: the sender's FIN.
                return match dir {
                    Direction::ClientToServer => legs.front.fin(Side::Opener, out),
                    Direction::ServerToClient => legs.front.fin(Side::Accepter, out),
                };
            };
            let front = &mut legs.front;
            // The leg the sender is on, and its side there.
            let (incoming, sender) = match dir {
                Direction::ClientToServer => (&mut *front, Side::Opener),
                Direction::ServerToClient => (&mut *back, Side::Accepter),
            };
            match end {
                End::Eof => {
                    incoming.fin(sender, out)?;
                    match dir {
                        Direction::ClientToServer => back.fin(Side::Opener, out),
                        Direction::ServerToClient => front.fin(Side::Accepter, out),
                    }
                }
                End::Error(_) if reset_seen => {
                    incoming.reset(sender, out)?;
                    front.reset(Side::Accepter, out)?;
                    back.reset(Side::Opener, out)
                }
                End::Reset => {
                    front.reset(Side::Accepter, out)?;
                    back.reset(Side::Opener, out)
                }
                End::Closed | End::Error(_) => {
                    front.fin(Side::Accepter, out)?;
                    back.fin(Side::Opener, out)
                }
                End::Stopped => Ok(()),
            }
        })
    }

    /// Connection `conn` is over: the tap closed both sockets, so a side
    /// of the tap not yet ended sends its FIN now (the proxy stopping).
    pub(crate) fn closed(&mut self, micros: u64, conn: u64) -> io::Result<()> {
        self.with(conn, micros, |legs, out| {
            if let Some(back) = legs.back.as_mut() {
                legs.front.fin(Side::Accepter, out)?;
                back.fin(Side::Opener, out)?;
            }
            Ok(())
        })?;
        self.conns.remove(&conn);
        Ok(())
    }

    /// Write what the proxy reports at `micros` (since the Unix epoch).
    pub(crate) fn event(&mut self, micros: u64, event: &ProxyEvent<'_>) -> io::Result<()> {
        match event {
            ProxyEvent::Opened {
                conn,
                client,
                server,
                accepted_on,
                dialed_from,
            } => self.open(
                micros,
                *conn,
                (*client, *accepted_on),
                Some((*dialed_from, *server)),
            ),
            ProxyEvent::Data { conn, dir, bytes } => self.read(micros, *conn, *dir, bytes),
            ProxyEvent::Sent { conn, dir, bytes } => self.wrote(micros, *conn, *dir, bytes),
            ProxyEvent::Ended {
                conn,
                dir,
                end,
                reset_seen,
                ..
            } => self.ended(micros, *conn, *dir, end, *reset_seen),
            ProxyEvent::Closed { conn } => self.closed(micros, *conn),
            _ => Ok(()),
        }
    }

    /// Flush the file.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The sink back.
    #[cfg(test)]
    fn into_inner(self) -> W {
        self.out.into_inner()
    }
}

/// A capture written while the tap runs (`--pcap FILE`).
///
/// Every connection's threads write to it under one mutex (the session's):
/// packets land in the file in the order the tap saw them, each stamped
/// under the lock so times only go forward. It holds a 256 KiB buffer, no
/// more however fast the bytes go (a full buffer is written out while the
/// lock is held, which slows the proxy to the disk's pace rather than let
/// memory grow); it is flushed when a connection closes, at least every
/// second while bytes move, and at the end, so the file opens in Wireshark
/// at any time and is complete once the tap stops.
pub(crate) struct LiveCapture {
    capture: Capture<BufWriter<File>>,
    /// The start, as Unix time in microseconds, and as an instant.
    started: (u64, Instant),
    flushed: Instant,
    failed: bool,
}

impl LiveCapture {
    /// Create the file at `path`.
    pub(crate) fn create(path: &Path) -> TapResult<LiveCapture> {
        let file = File::create(path)
            .map_err(|e| format!("cannot create the capture {}: {e}", path.display()))?;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let now = Instant::now();
        Ok(LiveCapture {
            capture: Capture::new(BufWriter::with_capacity(256 * 1024, file))?,
            started: (unix, now),
            flushed: now,
            failed: false,
        })
    }

    /// Write what `event` put on the wire, stamped now. A failure to write
    /// is logged once and ends the capture (the proxy goes on).
    pub(crate) fn event(&mut self, event: &ProxyEvent<'_>) {
        if self.failed {
            return;
        }
        let now = Instant::now();
        let micros = self.started.0 + now.duration_since(self.started.1).as_micros() as u64;
        let mut written = self.capture.event(micros, event);
        let closed = matches!(event, ProxyEvent::Closed { .. });
        if written.is_ok() && (closed || now.duration_since(self.flushed) >= FLUSH_EVERY) {
            self.flushed = now;
            written = self.capture.flush();
        }
        if let Err(e) = written {
            log::error!("cannot write the capture: {e}; capturing stops here");
            self.failed = true;
        }
    }

    /// Flush what is buffered.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.capture.flush()
    }
}

/// Longest a packet waits in the buffer while bytes move.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use packet::{ACK, FIN, PSH, RST, SYN};

    const C2S: Direction = Direction::ClientToServer;
    const S2C: Direction = Direction::ServerToClient;

    /// The packets of a capture file as (src port, dst port, flags, payload).
    fn packets(file: &[u8]) -> Vec<(u16, u16, u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut b = file;
        while !b.is_empty() {
            let kind = u32::from_le_bytes(b[0..4].try_into().unwrap());
            let total = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
            if kind == 6 {
                let len = u32::from_le_bytes(b[20..24].try_into().unwrap()) as usize;
                let p = &b[28..28 + len];
                let ip = if p[0] >> 4 == 4 { 20 } else { 40 };
                let tcp = &p[ip..];
                let off = usize::from(tcp[12] >> 4) * 4;
                out.push((
                    u16::from_be_bytes([tcp[0], tcp[1]]),
                    u16::from_be_bytes([tcp[2], tcp[3]]),
                    tcp[13],
                    tcp[off..].to_vec(),
                ));
            }
            b = &b[total..];
        }
        out
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Client :1000 to the tap's :2000; the tap from :3000 to the server's :4000.
    fn opened() -> Capture<Vec<u8>> {
        let mut c = Capture::new(Vec::new()).unwrap();
        let front = (a("127.0.0.1:1000"), a("127.0.0.1:2000"));
        let back = (a("127.0.0.1:3000"), a("127.0.0.1:4000"));
        c.open(1, 7, front, Some(back)).unwrap();
        c
    }

    /// Only the segments with a payload or a FIN or RST.
    fn interesting(file: &[u8]) -> Vec<(u16, u16, u8, Vec<u8>)> {
        packets(file)
            .into_iter()
            .filter(|p| !p.3.is_empty() || p.2 & (FIN | RST) != 0)
            .collect()
    }

    #[test]
    fn both_legs_open_and_carry_what_was_read_and_written() {
        let mut c = opened();
        c.read(2, 7, C2S, b"\x00\x00\x00\x02hi").unwrap();
        // A split fault: written in two pieces.
        c.wrote(3, 7, C2S, b"\x00\x00").unwrap();
        c.wrote(4, 7, C2S, b"\x00\x02hi").unwrap();
        c.read(5, 7, S2C, b"ok").unwrap();
        c.wrote(6, 7, S2C, b"ok").unwrap();
        c.ended(7, 7, C2S, &End::Eof, false).unwrap();
        c.ended(8, 7, S2C, &End::Eof, false).unwrap();
        c.closed(9, 7).unwrap();
        let file = c.into_inner();
        let all = packets(&file);
        let syns: Vec<_> = all
            .iter()
            .filter(|p| p.2 & SYN != 0)
            .map(|p| (p.0, p.2))
            .collect();
        assert_eq!(
            syns,
            vec![
                (1000, SYN),
                (2000, SYN | ACK),
                (3000, SYN),
                (4000, SYN | ACK)
            ]
        );
        assert_eq!(
            interesting(&file),
            vec![
                (1000, 2000, PSH | ACK, b"\x00\x00\x00\x02hi".to_vec()),
                (3000, 4000, PSH | ACK, b"\x00\x00".to_vec()),
                (3000, 4000, PSH | ACK, b"\x00\x02hi".to_vec()),
                (4000, 3000, PSH | ACK, b"ok".to_vec()),
                (2000, 1000, PSH | ACK, b"ok".to_vec()),
                (1000, 2000, FIN | ACK, vec![]),
                (3000, 4000, FIN | ACK, vec![]),
                (4000, 3000, FIN | ACK, vec![]),
                (2000, 1000, FIN | ACK, vec![]),
            ]
        );
    }

    #[test]
    fn a_reset_fault_resets_both_legs_and_nothing_follows() {
        let mut c = opened();
        c.ended(2, 7, C2S, &End::Reset, false).unwrap();
        c.ended(3, 7, S2C, &End::Stopped, false).unwrap();
        c.closed(4, 7).unwrap();
        assert_eq!(
            interesting(&c.into_inner()),
            vec![
                (2000, 1000, RST | ACK, vec![]),
                (3000, 4000, RST | ACK, vec![])
            ]
        );
    }

    #[test]
    fn a_reset_by_the_server_is_passed_on_to_the_client() {
        let mut c = opened();
        c.ended(2, 7, S2C, &End::Error("read failed".into()), true)
            .unwrap();
        c.closed(4, 7).unwrap();
        assert_eq!(
            interesting(&c.into_inner()),
            vec![
                (4000, 3000, RST | ACK, vec![]),
                (2000, 1000, RST | ACK, vec![])
            ]
        );
    }

    #[test]
    fn a_close_fault_or_a_stop_sends_fins_both_ways() {
        let mut c = opened();
        c.ended(2, 7, S2C, &End::Closed, false).unwrap();
        c.closed(3, 7).unwrap();
        assert_eq!(
            interesting(&c.into_inner()),
            vec![
                (2000, 1000, FIN | ACK, vec![]),
                (3000, 4000, FIN | ACK, vec![])
            ]
        );
        // The proxy stopped: both pumps stopped, then the close.
        let mut c = opened();
        c.ended(2, 7, C2S, &End::Stopped, false).unwrap();
        c.closed(3, 7).unwrap();
        assert_eq!(
            interesting(&c.into_inner()),
            vec![
                (2000, 1000, FIN | ACK, vec![]),
                (3000, 4000, FIN | ACK, vec![])
            ]
        );
    }

    #[test]
    fn events_for_unknown_connections_write_nothing() {
        let mut c = Capture::new(Vec::new()).unwrap();
        c.read(1, 9, C2S, b"x").unwrap();
        c.closed(1, 9).unwrap();
        assert!(packets(&c.into_inner()).is_empty());
    }

    #[test]
    fn without_the_tap_client_and_server_talk_directly() {
        let mut c = Capture::new(Vec::new()).unwrap();
        c.open(1, 1, (a("[::1]:1000"), a("[::1]:4000")), None)
            .unwrap();
        c.read(2, 1, C2S, b"a").unwrap();
        c.wrote(2, 1, C2S, b"ignored").unwrap();
        c.read(3, 1, S2C, b"b").unwrap();
        c.ended(4, 1, C2S, &End::Eof, false).unwrap();
        assert_eq!(
            interesting(&c.into_inner()),
            vec![
                (1000, 4000, PSH | ACK, b"a".to_vec()),
                (4000, 1000, PSH | ACK, b"b".to_vec()),
                (1000, 4000, FIN | ACK, vec![]),
            ]
        );
    }
}
