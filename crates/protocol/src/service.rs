//! The contract between the transport and application logic.
//!
//! The transport owns sockets and threads; a [`Service`] owns the rules. The
//! transport turns what happens on connections into [`Event`]s and hands each
//! one to the service, which answers by pushing [`Action`]s into an
//! [`Actions`] list. Neither side knows how the other works, so a service is
//! tested with plain function calls and no socket:
//!
//! ```
//! use trama_protocol::{Action, Actions, ConnId, Event, Service};
//!
//! /// Sends every message back to whoever sent it.
//! struct Echo;
//! impl Service for Echo {
//!     fn on_event(&mut self, event: Event<'_>, out: &mut Actions) {
//!         if let Event::Message { id, payload } = event {
//!             out.send(id, payload);
//!         }
//!     }
//! }
//!
//! let mut actions = Actions::new();
//! Echo.on_event(Event::Message { id: ConnId(7), payload: b"hola" }, &mut actions);
//! assert_eq!(
//!     actions.iter().collect::<Vec<_>>(),
//!     [Action::Send { to: ConnId(7), payload: b"hola" }]
//! );
//! ```

use std::fmt;
use std::net::SocketAddr;

/// Identifies one connection for as long as the server runs; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Identifies one link of a peer node (one TCP connection, accepted or
/// dialed) for the life of the node; never reused.
///
/// The node in `trama-transport` hands the ids out and the mesh rules in
/// `trama-backend` key their state by them, so both use this one type and an
/// app passes an id from one to the other as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link {}", self.0)
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection between frames.
    PeerClosed,
    /// The service asked for the close, with its reason.
    Closed(String),
    /// The peer broke the wire format: an over-limit header, a truncated frame.
    Protocol(String),
    /// The socket failed (reset, broken pipe, ...).
    Io(String),
    /// A frame was started but not finished within the partial-frame deadline.
    PartialFrameTimeout {
        /// The deadline in milliseconds.
        millis: u64,
    },
    /// Nothing arrived within the idle timeout.
    IdleTimeout {
        /// The timeout in milliseconds.
        millis: u64,
    },
    /// The peer did not read fast enough: its outbound queue hit the limit.
    SlowReader {
        /// Bytes queued when the limit was hit.
        queued: usize,
        /// The limit.
        limit: usize,
    },
    /// Reading from the peer was paused because its replies were backing
    /// up, and it then took none of them within the partial-frame deadline.
    Stalled {
        /// Bytes queued for it.
        queued: usize,
        /// How long it took nothing, in milliseconds.
        millis: u64,
    },
    /// Incomplete frames across the server held more than the server's
    /// budget for them, and this connection held the largest one.
    OverBudget {
        /// Bytes this connection held of its incomplete frame.
        held: usize,
        /// Bytes held in incomplete frames across the server.
        total: usize,
        /// The budget.
        budget: usize,
    },
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::PeerClosed => write!(f, "peer closed the connection"),
            DisconnectReason::Closed(why) => write!(f, "closed by the service: {why}"),
            DisconnectReason::Protocol(why) => write!(f, "protocol error: {why}"),
            DisconnectReason::Io(why) => write!(f, "i/o error: {why}"),
            DisconnectReason::PartialFrameTimeout { millis } => {
                write!(f, "frame not completed within {millis} ms")
            }
            DisconnectReason::IdleTimeout { millis } => {
                write!(f, "nothing received for {millis} ms")
            }
            DisconnectReason::SlowReader { queued, limit } => write!(
                f,
                "peer too slow: {queued} bytes queued for it, limit {limit}"
            ),
            DisconnectReason::Stalled { queued, millis } => write!(
                f,
                "peer stopped reading: {queued} bytes queued for it, none taken in {millis} ms"
            ),
            DisconnectReason::OverBudget {
                held,
                total,
                budget,
            } => write!(
                f,
                "holding {held} bytes of an incomplete frame, the largest while incomplete \
                 frames held {total} bytes across the server, over its budget of {budget}"
            ),
            DisconnectReason::Shutdown => write!(f, "server shutting down"),
        }
    }
}

/// Something that happened on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A connection was accepted (or established).
    Connected {
        /// The new connection.
        id: ConnId,
        /// The remote address.
        peer: SocketAddr,
    },
    /// A whole message arrived (one frame, or one read in unframed mode).
    Message {
        /// Where it came from.
        id: ConnId,
        /// Its payload; borrowed, copy what you keep.
        payload: &'a [u8],
    },
    /// The connection is gone; sends to it are dropped from now on.
    Disconnected {
        /// The connection.
        id: ConnId,
        /// Why it ended.
        reason: &'a DisconnectReason,
    },
}

/// What a service asks the transport to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Send one message to one connection.
    Send {
        /// The target.
        to: ConnId,
        /// The payload (the transport frames it).
        payload: &'a [u8],
    },
    /// Send one message to every connection, except one if given.
    Broadcast {
        /// The payload.
        payload: &'a [u8],
        /// A connection to skip, usually the sender.
        except: Option<ConnId>,
    },
    /// Close a connection after what is already queued for it has been sent.
    Close {
        /// The connection.
        id: ConnId,
        /// Why, for the log and the `Disconnected` event.
        reason: &'a str,
    },
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Send(ConnId),
    Broadcast(Option<ConnId>),
    Close(ConnId),
}

/// The actions a service returns for one event, in order.
///
/// Payloads are stored back to back in one buffer that is reused from event
/// to event, so answering a message allocates nothing once traffic is steady.
#[derive(Debug, Default)]
pub struct Actions {
    data: Vec<u8>,
    items: Vec<(Kind, usize, usize)>,
}

impl Actions {
    /// An empty list.
    pub fn new() -> Actions {
        Actions::default()
    }

    /// Queue a message for one connection.
    pub fn send(&mut self, to: ConnId, payload: &[u8]) {
        self.push(Kind::Send(to), payload);
    }

    /// Queue a message for one connection, written in place by `write`
    /// (e.g. with `write!`), with no intermediate `String`.
    pub fn send_with(&mut self, to: ConnId, write: impl FnOnce(&mut Vec<u8>)) {
        self.push_with(Kind::Send(to), write);
    }

    /// Queue a message for every connection except `except`.
    pub fn broadcast(&mut self, payload: &[u8], except: Option<ConnId>) {
        self.push(Kind::Broadcast(except), payload);
    }

    /// Like [`broadcast`](Actions::broadcast), written in place.
    pub fn broadcast_with(&mut self, except: Option<ConnId>, write: impl FnOnce(&mut Vec<u8>)) {
        self.push_with(Kind::Broadcast(except), write);
    }

    /// Close a connection once what is queued for it is sent.
    pub fn close(&mut self, id: ConnId, reason: &str) {
        self.push(Kind::Close(id), reason.as_bytes());
    }

    /// The actions in the order they were queued.
    pub fn iter(&self) -> impl Iterator<Item = Action<'_>> + '_ {
        self.items.iter().map(move |&(kind, start, end)| {
            let bytes = &self.data[start..end];
            match kind {
                Kind::Send(to) => Action::Send { to, payload: bytes },
                Kind::Broadcast(except) => Action::Broadcast {
                    payload: bytes,
                    except,
                },
                // Close reasons are pushed from a &str, so they are UTF-8.
                Kind::Close(id) => Action::Close {
                    id,
                    reason: std::str::from_utf8(bytes).unwrap_or("closed"),
                },
            }
        })
    }

    /// Number of queued actions.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Forget all actions, keeping the buffers for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }

    fn push(&mut self, kind: Kind, payload: &[u8]) {
        self.push_with(kind, |buf| buf.extend_from_slice(payload));
    }

    fn push_with(&mut self, kind: Kind, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        write(&mut self.data);
        self.items.push((kind, start, self.data.len()));
    }
}

/// Application logic, driven by a transport: state + event → actions.
///
/// A service does no I/O and should not block: the transport may call it on
/// an I/O thread. Closures work too:
///
/// ```
/// use trama_protocol::{Actions, Event, Service};
///
/// let mut upper = |event: Event<'_>, out: &mut Actions| {
///     if let Event::Message { id, payload } = event {
///         out.send(id, &payload.to_ascii_uppercase());
///     }
/// };
/// let mut actions = Actions::new();
/// upper.on_event(Event::Message { id: trama_protocol::ConnId(1), payload: b"hi" }, &mut actions);
/// assert_eq!(actions.len(), 1);
/// ```
pub trait Service: Send {
    /// React to one event by queueing actions in `out`.
    fn on_event(&mut self, event: Event<'_>, out: &mut Actions);
}

impl<F> Service for F
where
    F: FnMut(Event<'_>, &mut Actions) + Send,
{
    fn on_event(&mut self, event: Event<'_>, out: &mut Actions) {
        self(event, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn actions_keep_order_and_payloads() {
        let mut a = Actions::new();
        a.send(ConnId(1), b"one");
        a.broadcast(b"all", Some(ConnId(1)));
        a.send_with(ConnId(2), |buf| write!(buf, "n={}", 5).unwrap());
        a.close(ConnId(3), "bye");
        let got: Vec<_> = a.iter().collect();
        assert_eq!(
            got,
            [
                Action::Send {
                    to: ConnId(1),
                    payload: b"one"
                },
                Action::Broadcast {
                    payload: b"all",
                    except: Some(ConnId(1))
                },
                Action::Send {
                    to: ConnId(2),
                    payload: b"n=5"
                },
                Action::Close {
                    id: ConnId(3),
                    reason: "bye"
                },
            ]
        );
        let cap = a.data.capacity();
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.data.capacity(), cap);
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            DisconnectReason::SlowReader {
                queued: 1048600,
                limit: 1048576
            }
            .to_string(),
            "peer too slow: 1048600 bytes queued for it, limit 1048576"
        );
        assert_eq!(
            DisconnectReason::Stalled {
                queued: 2_000_000,
                millis: 10_000
            }
            .to_string(),
            "peer stopped reading: 2000000 bytes queued for it, none taken in 10000 ms"
        );
        assert_eq!(
            DisconnectReason::OverBudget {
                held: 1_048_576,
                total: 9_000_000,
                budget: 8_388_608
            }
            .to_string(),
            "holding 1048576 bytes of an incomplete frame, the largest while incomplete frames \
             held 9000000 bytes across the server, over its budget of 8388608"
        );
        assert_eq!(ConnId(4).to_string(), "#4");
    }
}
