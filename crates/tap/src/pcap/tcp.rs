//! One TCP conversation as the segments a capture shows: the handshake,
//! data with sequence and acknowledgement numbers that add up, and the
//! close (FIN or RST). No I/O: each segment goes to the caller's sink.
//!
//! Each data write is followed by the receiver's acknowledgement of it, as
//! the receiving kernel would send, so Wireshark's TCP analysis sees every
//! byte acknowledged and finds nothing to flag.

use std::io;
use std::net::SocketAddr;

use super::packet::{Segment, ACK, FIN, MAX_PAYLOAD, PSH, RST, SYN};

/// Which end of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The end that connected (sent the SYN).
    Opener = 0,
    /// The end that accepted.
    Accepter = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Opener => Side::Accepter,
            Side::Accepter => Side::Opener,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct End {
    addr: SocketAddr,
    /// The sequence number of its next byte.
    next: u32,
    /// It sent its FIN (or the conversation was reset).
    done: bool,
}

/// The sequence state of one conversation.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    ends: [End; 2],
    reset: bool,
}

/// Where segments go: a segment and its payload.
pub(crate) type Sink<'a> = dyn FnMut(&Segment, &[u8]) -> io::Result<()> + 'a;

impl Conversation {
    /// The handshake from `opener` to `accepter` (initial sequence numbers
    /// `isn`, one per side), sent to `out`.
    pub(crate) fn open(
        opener: SocketAddr,
        accepter: SocketAddr,
        isn: [u32; 2],
        out: &mut Sink<'_>,
    ) -> io::Result<Conversation> {
        let mut c = Conversation {
            ends: [
                End {
                    addr: opener,
                    next: isn[0],
                    done: false,
                },
                End {
                    addr: accepter,
                    next: isn[1],
                    done: false,
                },
            ],
            reset: false,
        };
        c.send(Side::Opener, SYN, &[], out)?;
        c.send(Side::Accepter, SYN | ACK, &[], out)?;
        c.send(Side::Opener, ACK, &[], out)?;
        Ok(c)
    }

    /// One segment from `from`, advancing its sequence number by what the
    /// segment occupies (payload, and one for a SYN or a FIN).
    fn send(
        &mut self,
        from: Side,
        flags: u8,
        payload: &[u8],
        out: &mut Sink<'_>,
    ) -> io::Result<()> {
        let (me, peer) = (self.ends[from as usize], self.ends[from.other() as usize]);
        let seg = Segment {
            src: me.addr,
            dst: peer.addr,
            seq: me.next,
            ack: if flags & ACK != 0 { peer.next } else { 0 },
            flags,
        };
        out(&seg, payload)?;
        let used = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.ends[from as usize].next = me.next.wrapping_add(used);
        Ok(())
    }

    /// `bytes` written by `from` in one write: segments of at most
    /// [`MAX_PAYLOAD`] bytes (the last with PSH), then the receiver's ACK.
    /// Nothing once `from` has closed or the conversation was reset.
    pub(crate) fn data(&mut self, from: Side, bytes: &[u8], out: &mut Sink<'_>) -> io::Result<()> {
        if bytes.is_empty() || self.ends[from as usize].done {
            return Ok(());
        }
        let mut pieces = bytes.chunks(MAX_PAYLOAD).peekable();
        while let Some(piece) = pieces.next() {
            let flags = if pieces.peek().is_none() {
                PSH | ACK
            } else {
                ACK
            };
            self.send(from, flags, piece, out)?;
        }
        self.ack(from.other(), out)
    }

    /// A bare ACK from `from`, unless the conversation was reset.
    fn ack(&mut self, from: Side, out: &mut Sink<'_>) -> io::Result<()> {
        if self.reset {
            return Ok(());
        }
        self.send(from, ACK, &[], out)
    }

    /// `from` ends its side (FIN), and the other acknowledges it. Once only.
    pub(crate) fn fin(&mut self, from: Side, out: &mut Sink<'_>) -> io::Result<()> {
        if self.ends[from as usize].done {
            return Ok(());
        }
        self.send(from, FIN | ACK, &[], out)?;
        self.ends[from as usize].done = true;
        self.ack(from.other(), out)
    }

    /// `from` resets the conversation: nothing follows it either way.
    pub(crate) fn reset(&mut self, from: Side, out: &mut Sink<'_>) -> io::Result<()> {
        if self.ends.iter().all(|e| e.done) {
            return Ok(());
        }
        self.send(from, RST | ACK, &[], out)?;
        self.reset = true;
        for e in &mut self.ends {
            e.done = true;
        }
        Ok(())
    }

    /// True once `side` sent its FIN, or the conversation was reset.
    #[cfg(test)]
    pub(crate) fn is_done(&self, side: Side) -> bool {
        self.ends[side as usize].done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (src port, flags, seq, ack, payload length) of each segment.
    type Seen = Vec<(u16, u8, u32, u32, usize)>;

    fn recorder(seen: &mut Seen) -> impl FnMut(&Segment, &[u8]) -> io::Result<()> + '_ {
        move |s, p| {
            seen.push((s.src.port(), s.flags, s.seq, s.ack, p.len()));
            Ok(())
        }
    }

    fn open(seen: &mut Seen) -> Conversation {
        let (a, b) = (
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        );
        Conversation::open(a, b, [100, 5000], &mut recorder(seen)).unwrap()
    }

    #[test]
    fn the_handshake_and_data_add_up() {
        let mut seen = Seen::new();
        let mut c = open(&mut seen);
        c.data(Side::Opener, b"hola", &mut recorder(&mut seen))
            .unwrap();
        c.data(Side::Accepter, b"ok", &mut recorder(&mut seen))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (4000, SYN, 100, 0, 0),
                (80, SYN | ACK, 5000, 101, 0),
                (4000, ACK, 101, 5001, 0),
                (4000, PSH | ACK, 101, 5001, 4),
                (80, ACK, 5001, 105, 0),
                (80, PSH | ACK, 5001, 105, 2),
                (4000, ACK, 105, 5003, 0),
            ]
        );
    }

    #[test]
    fn a_write_over_the_largest_payload_is_several_segments() {
        let mut seen = Seen::new();
        let mut c = open(&mut seen);
        seen.clear();
        let big = vec![0u8; MAX_PAYLOAD * 2 + 10];
        c.data(Side::Opener, &big, &mut recorder(&mut seen))
            .unwrap();
        let m = MAX_PAYLOAD as u32;
        assert_eq!(
            seen,
            vec![
                (4000, ACK, 101, 5001, MAX_PAYLOAD),
                (4000, ACK, 101 + m, 5001, MAX_PAYLOAD),
                (4000, PSH | ACK, 101 + 2 * m, 5001, 10),
                (80, ACK, 5001, 101 + 2 * m + 10, 0),
            ]
        );
    }

    #[test]
    fn fins_take_a_sequence_number_and_are_acknowledged_once() {
        let mut seen = Seen::new();
        let mut c = open(&mut seen);
        seen.clear();
        c.fin(Side::Opener, &mut recorder(&mut seen)).unwrap();
        c.fin(Side::Opener, &mut recorder(&mut seen)).unwrap();
        assert!(c.is_done(Side::Opener) && !c.is_done(Side::Accepter));
        c.data(Side::Accepter, b"late", &mut recorder(&mut seen))
            .unwrap();
        c.fin(Side::Accepter, &mut recorder(&mut seen)).unwrap();
        assert_eq!(
            seen,
            vec![
                (4000, FIN | ACK, 101, 5001, 0),
                (80, ACK, 5001, 102, 0),
                (80, PSH | ACK, 5001, 102, 4),
                (4000, ACK, 102, 5005, 0),
                (80, FIN | ACK, 5005, 102, 0),
                (4000, ACK, 102, 5006, 0),
            ]
        );
    }

    #[test]
    fn after_a_reset_nothing_more_is_sent() {
        let mut seen = Seen::new();
        let mut c = open(&mut seen);
        seen.clear();
        c.reset(Side::Accepter, &mut recorder(&mut seen)).unwrap();
        c.data(Side::Opener, b"x", &mut recorder(&mut seen))
            .unwrap();
        c.fin(Side::Opener, &mut recorder(&mut seen)).unwrap();
        c.reset(Side::Opener, &mut recorder(&mut seen)).unwrap();
        assert_eq!(seen, vec![(80, RST | ACK, 5001, 101, 0)]);
        assert!(c.is_done(Side::Opener) && c.is_done(Side::Accepter));
    }
}
