//! Start an assignment here: a server whose rules are yours, in under 60 lines.
//!
//! Copy it into a project that depends on `trama-protocol` and `trama-transport`,
//! rename `Tally`, rewrite `on_event`. The transport does sockets, threads and
//! framing; `on_event` only turns an event into actions, so tests are plain calls.
//! Run: `cargo run -p trama-transport --example template -- 127.0.0.1:8080`, talk to it
//! with `trama-chat join --addr 127.0.0.1:8080`; test: `cargo test --example template`.

use trama_protocol::{Actions, Event, Service};
use trama_transport::{Server, ServerConfig};

/// The rules: add up the numbers every client sends, and tell everyone.
#[derive(Default)]
struct Tally {
    total: i64,
}

impl Service for Tally {
    fn on_event(&mut self, event: Event<'_>, out: &mut Actions) {
        let Event::Message { id, payload } = event else {
            return; // Connected, Disconnected: nothing to do in this service.
        };
        let Ok(text) = std::str::from_utf8(payload) else {
            return out.close(id, "not UTF-8");
        };
        match text.trim().parse::<i64>() {
            Ok(n) => {
                self.total = self.total.saturating_add(n);
                out.broadcast(format!("total {}", self.total).as_bytes(), None);
            }
            Err(_) => out.send(id, format!("not a number: {text:?}").as_bytes()),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let server = Server::bind(ServerConfig::new(addr), Tally::default())?;
    eprintln!("listening on {}", server.local_addr());
    Ok(server.run()?) // serves until the process is stopped (Ctrl-C)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::ConnId;

    #[test]
    fn numbers_add_up_and_everyone_hears_it() {
        let (mut tally, mut out) = (Tally::default(), Actions::new());
        for (id, payload) in [(ConnId(1), &b"5"[..]), (ConnId(2), b" 7\n")] {
            out.clear();
            tally.on_event(Event::Message { id, payload }, &mut out);
        }
        let mut expected = Actions::new();
        expected.broadcast(b"total 12", None);
        assert!(out.iter().eq(expected.iter()));
    }
}
