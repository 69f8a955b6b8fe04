//! The echo service: every message goes back to its sender, unchanged.

use trama_protocol::{Actions, Event, Service};

/// Sends every message back to the connection it came from.
///
/// In the unframed dialect a "message" is one read, so the bytes come back in
/// the same order, possibly cut differently: exactly what the notes' echo
/// server does with `recv(4096)` and `sendall`.
///
/// ```
/// use trama_backend::Echo;
/// use trama_protocol::{Action, Actions, ConnId, Event, Service};
///
/// let mut out = Actions::new();
/// Echo.on_event(Event::Message { id: ConnId(3), payload: b"hola" }, &mut out);
/// assert_eq!(out.iter().next(), Some(Action::Send { to: ConnId(3), payload: b"hola" }));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Service for Echo {
    fn on_event(&mut self, event: Event<'_>, out: &mut Actions) {
        if let Event::Message { id, payload } = event {
            out.send(id, payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::{Action, ConnId, DisconnectReason};

    #[test]
    fn echoes_messages_including_empty_ones() {
        let mut out = Actions::new();
        for payload in [&b"x"[..], b""] {
            out.clear();
            Echo.on_event(
                Event::Message {
                    id: ConnId(1),
                    payload,
                },
                &mut out,
            );
            assert_eq!(
                out.iter().collect::<Vec<_>>(),
                [Action::Send {
                    to: ConnId(1),
                    payload
                }]
            );
        }
    }

    #[test]
    fn ignores_connects_and_disconnects() {
        let mut out = Actions::new();
        Echo.on_event(
            Event::Connected {
                id: ConnId(1),
                peer: "127.0.0.1:9".parse().unwrap(),
            },
            &mut out,
        );
        Echo.on_event(
            Event::Disconnected {
                id: ConnId(1),
                reason: &DisconnectReason::PeerClosed,
            },
            &mut out,
        );
        assert!(out.is_empty());
    }
}
