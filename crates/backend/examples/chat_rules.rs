//! The chat room's rules, run with no network at all.
//!
//! Run: `cargo run -p trama-backend --example chat_rules`.
//!
//! A `trama-backend` service is a value with one method, `on_event`: give
//! it what happened (a client connected, a message arrived, a client left)
//! and it lists what should be sent to whom. Here two clients, given the
//! ids 1 and 2, join, pick names and talk, and every action the room asks
//! for is printed. This is how the rules are tested, and how a student's
//! own service can be tried before any socket exists.

use trama_backend::Chat;
use trama_protocol::{Action, Actions, ConnId, DisconnectReason, Event, Service};

fn main() {
    let mut room = Chat::new();
    let mut out = Actions::new();
    let (ana, bea) = (ConnId(1), ConnId(2));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    let left = DisconnectReason::PeerClosed;

    let events = [
        Event::Connected {
            id: ana,
            peer: addr,
        },
        Event::Message {
            id: ana,
            payload: b"/nick ana",
        },
        Event::Connected {
            id: bea,
            peer: addr,
        },
        Event::Message {
            id: bea,
            payload: b"/nick bea",
        },
        Event::Message {
            id: bea,
            payload: b"hola, ana",
        },
        Event::Message {
            id: ana,
            payload: b"/msg bea chao",
        },
        Event::Disconnected {
            id: ana,
            reason: &left,
        },
    ];
    for event in events {
        out.clear();
        room.on_event(event, &mut out);
        println!("{}", describe_event(&event));
        for action in out.iter() {
            println!("    {}", describe_action(action));
        }
    }
}

fn describe_event(event: &Event<'_>) -> String {
    match event {
        Event::Connected { id, .. } => format!("{id} connects"),
        Event::Message { id, payload } => {
            format!("{id} sends {:?}", String::from_utf8_lossy(payload))
        }
        Event::Disconnected { id, reason } => format!("{id} leaves: {reason}"),
    }
}

fn describe_action(action: Action<'_>) -> String {
    match action {
        Action::Send { to, payload } => {
            format!("-> {to}: {:?}", String::from_utf8_lossy(payload))
        }
        Action::Broadcast { payload, except } => {
            let but = except.map(|id| format!(" but {id}")).unwrap_or_default();
            format!("-> everyone{but}: {:?}", String::from_utf8_lossy(payload))
        }
        Action::Close { id, reason } => format!("close {id}: {reason}"),
    }
}
