//! Request ids for trama's own messages: a 9-byte envelope in front of a
//! frame's payload, so replies find the request they answer.
//!
//! The notes' frames are bare: a reply is simply the next frame to arrive.
//! That breaks as soon as a server also pushes messages of its own (a chat
//! broadcast arrives between a question and its answer), or as soon as two
//! threads share a connection. With the envelope on, every payload starts
//! with one byte saying what the frame is and eight bytes of id (big-endian):
//!
//! | kind | byte | id |
//! |---|---|---|
//! | push (one-way, either side) | `0x00` | 0 |
//! | request | `0x01` | chosen by the asker, never 0 |
//! | reply | `0x02` | the request's id |
//!
//! Both sides must agree to use it (the notes' programs do not know it);
//! `docs/PROTOCOL.md` has the wire format with an example.
//!
//! ```
//! use trama_protocol::envelope::{self, Kind};
//!
//! let mut frame = Vec::new();
//! envelope::encode(Kind::Request, 7, b"hora?", &mut frame);
//! assert_eq!(frame[..9], [1, 0, 0, 0, 0, 0, 0, 0, 7]);
//!
//! // The server answers with the same id.
//! let asked = envelope::decode(&frame)?;
//! let mut answer = Vec::new();
//! envelope::encode(Kind::Reply, asked.id, b"12:00", &mut answer);
//!
//! let got = envelope::decode(&answer)?;
//! assert_eq!((got.kind, got.id, got.body), (Kind::Reply, 7, &b"12:00"[..]));
//! # Ok::<(), trama_protocol::Error>(())
//! ```

use crate::{Error, Result};

/// Bytes the envelope adds in front of each payload.
pub const LEN: usize = 9;

/// What a framed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A message that expects no answer (id 0).
    Push,
    /// A question; its answer is the reply with the same id.
    Request,
    /// The answer to the request with the same id.
    Reply,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Push => 0,
            Kind::Request => 1,
            Kind::Reply => 2,
        }
    }
}

/// A payload with its envelope taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// What the frame is.
    pub kind: Kind,
    /// The request id (0 for a push).
    pub id: u64,
    /// The message itself.
    pub body: &'a [u8],
}

/// Append `kind`, `id` and `body` to `out` as one payload. A push is always
/// written with id 0, whatever `id` says.
pub fn encode(kind: Kind, id: u64, body: &[u8], out: &mut Vec<u8>) {
    let id = if kind == Kind::Push { 0 } else { id };
    out.reserve(LEN + body.len());
    out.push(kind.byte());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
}

/// The envelope of a received payload. Refuses a payload shorter than the
/// envelope, an unknown kind, a request or reply with id 0 and a push with
/// any other id: a peer that sends those is not speaking the envelope.
pub fn decode(payload: &[u8]) -> Result<Envelope<'_>> {
    let bad = |reason| Error::Envelope {
        len: payload.len(),
        reason,
    };
    let Some((head, body)) = payload.split_first_chunk::<LEN>() else {
        return Err(bad("shorter than the 9-byte envelope"));
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[1..]);
    let id = u64::from_be_bytes(id);
    let kind = match head[0] {
        0 => Kind::Push,
        1 => Kind::Request,
        2 => Kind::Reply,
        _ => return Err(bad("unknown kind byte (0 push, 1 request, 2 reply)")),
    };
    match (kind, id) {
        (Kind::Push, 0) => {}
        (Kind::Push, _) => return Err(bad("a push carries id 0")),
        (_, 0) => return Err(bad("a request or reply carries a non-zero id")),
        _ => {}
    }
    Ok(Envelope { kind, id, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(kind: u8, id: u64, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn every_kind_round_trips() {
        for (kind, id) in [(Kind::Push, 0), (Kind::Request, 1), (Kind::Reply, u64::MAX)] {
            let mut out = Vec::new();
            encode(kind, id, b"cuerpo", &mut out);
            assert_eq!(out.len(), LEN + 6);
            let e = decode(&out).unwrap();
            assert_eq!((e.kind, e.id, e.body), (kind, id, &b"cuerpo"[..]));
        }
    }

    #[test]
    fn a_push_is_written_with_id_zero() {
        let mut out = Vec::new();
        encode(Kind::Push, 99, b"", &mut out);
        assert_eq!(out, [0; LEN]);
    }

    #[test]
    fn what_is_refused_and_why() {
        let table: [(Vec<u8>, &str); 5] = [
            (vec![1, 0, 0], "shorter"),
            (framed(3, 1, b"x"), "unknown kind"),
            (framed(0, 5, b""), "push carries id 0"),
            (framed(1, 0, b""), "non-zero id"),
            (framed(2, 0, b"x"), "non-zero id"),
        ];
        for (payload, says) in table {
            let e = decode(&payload).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(says), "{payload:?}: {text}");
            assert!(text.contains(&format!("{}-byte", payload.len())), "{text}");
            assert!(e.is_peer_fault());
        }
    }

    #[test]
    fn an_empty_body_is_a_message() {
        let payload = framed(2, 3, b"");
        let e = decode(&payload).unwrap();
        assert_eq!((e.kind, e.id, e.body), (Kind::Reply, 3, &b""[..]));
    }
}
