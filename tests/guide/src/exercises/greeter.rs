//! Chapter 4 (many clients): state per client without a thread per client.
//!
//! In the notes each client's thread keeps that client's state in local
//! variables. A service keeps it in a map keyed by connection, and the
//! transport serves thousands of clients on a few threads.

use std::collections::HashMap;

use trama_protocol::{Actions, ConnId, Event, Service};

/// Asks each client its name, then greets it by name and counts its lines.
#[derive(Debug, Default)]
pub struct Greeter {
    clients: HashMap<ConnId, (String, u64)>,
}

impl Greeter {
    /// Clients connected now.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl Service for Greeter {
    fn on_event(&mut self, event: Event<'_>, out: &mut Actions) {
        match event {
            Event::Connected { id, .. } => {
                self.clients.insert(id, (String::new(), 0));
                out.send(id, b"name?");
            }
            Event::Message { id, payload } => {
                let Some((name, lines)) = self.clients.get_mut(&id) else {
                    return;
                };
                let text = String::from_utf8_lossy(payload);
                if name.is_empty() {
                    *name = text.trim().to_string();
                    out.send(id, format!("hola, {name}").as_bytes());
                } else {
                    *lines += 1;
                    out.send(id, format!("{name}, line {lines}: {text}").as_bytes());
                }
            }
            Event::Disconnected { id, .. } => {
                self.clients.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::{Action, DisconnectReason};

    fn said(out: &Actions) -> Vec<String> {
        out.iter()
            .map(|a| match a {
                Action::Send { to, payload } => {
                    format!("{to} {}", String::from_utf8_lossy(payload))
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn each_client_keeps_its_own_name_and_count() {
        let (mut g, mut out) = (Greeter::default(), Actions::new());
        let peer = "127.0.0.1:40000".parse().unwrap();
        let (ana, bea) = (ConnId(1), ConnId(2));
        for event in [
            Event::Connected { id: ana, peer },
            Event::Connected { id: bea, peer },
            Event::Message {
                id: bea,
                payload: b"bea",
            },
            Event::Message {
                id: ana,
                payload: b"ana",
            },
            Event::Message {
                id: bea,
                payload: b"hi",
            },
        ] {
            g.on_event(event, &mut out);
        }
        assert_eq!(
            said(&out),
            [
                "#1 name?",
                "#2 name?",
                "#2 hola, bea",
                "#1 hola, ana",
                "#2 bea, line 1: hi"
            ]
        );
        let gone = DisconnectReason::PeerClosed;
        g.on_event(
            Event::Disconnected {
                id: ana,
                reason: &gone,
            },
            &mut out,
        );
        assert_eq!(g.len(), 1);
    }
}
