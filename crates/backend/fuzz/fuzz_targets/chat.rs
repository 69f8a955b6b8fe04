//! Drives a chat room with a sequence of joins, lines and leaves taken from
//! the input: any bytes as a line (commands, invalid UTF-8, control
//! characters, over-long lines). Checks that every line that is not empty
//! gets an answer or goes somewhere, every payload the room sends is UTF-8
//! and bounded, closes only hit the sender, and the room counts its members.

#![no_main]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use trama_backend::chat::{valid_name, MAX_LINE, MAX_NAME, WHO_LIMIT};
use trama_backend::Chat;
use trama_protocol::{Action, Actions, ConnId, DisconnectReason, Event, Service};

/// The longest payload the room may send: a `/who` of `WHO_LIMIT` names of
/// `MAX_NAME` four-byte characters, or a line of `MAX_LINE` with its name.
const MAX_OUT: usize = MAX_LINE + WHO_LIMIT * (MAX_NAME * 4 + 2) + 256;

/// Line starts that the room treats specially.
const PREFIXES: &[&str] = &[
    "",
    "",
    "/nick ",
    "/msg ",
    "/who",
    "/quit",
    "/help",
    "//",
    "/",
    "/msg user0 ",
];

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut room = Chat::new().with_notice_limit(u.int_in_range(0..=4)?);
    let mut members: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    let peer: SocketAddr = ([127, 0, 0, 1], 9).into();
    let mut out = Actions::new();
    while !u.is_empty() {
        out.clear();
        match u.int_in_range(0..=9)? {
            0 => {
                let id = ConnId(next);
                next += 1;
                room.on_event(Event::Connected { id, peer }, &mut out);
                members.insert(id.0);
                // A welcome, to the newcomer.
                assert!(out
                    .iter()
                    .any(|a| matches!(a, Action::Send { to, .. } if to == id)));
            }
            1 => {
                let Some(&id) = pick(u, &members)? else {
                    continue;
                };
                let reason = DisconnectReason::Closed("quit".into());
                room.on_event(
                    Event::Disconnected {
                        id: ConnId(id),
                        reason: &reason,
                    },
                    &mut out,
                );
                members.remove(&id);
            }
            _ => {
                let Some(&id) = pick(u, &members)? else {
                    continue;
                };
                let payload: Vec<u8> = if u.ratio(1, 50)? {
                    // Over the line limit.
                    vec![b'x'; MAX_LINE + 1]
                } else {
                    // A command word up front, so the fuzzer reaches the
                    // commands' arguments without guessing their names.
                    let prefix = *u.choose(PREFIXES)?;
                    let rest: &[u8] = u.arbitrary()?;
                    [prefix.as_bytes(), rest].concat()
                };
                let payload = &payload[..];
                room.on_event(
                    Event::Message {
                        id: ConnId(id),
                        payload,
                    },
                    &mut out,
                );
                // Nothing is dropped silently: only an empty line (or one of
                // line ends) gets no answer.
                if out.is_empty() {
                    assert!(payload.iter().all(|b| *b == b'\r' || *b == b'\n'));
                }
                let name = room.name_of(ConnId(id)).unwrap_or_default().to_string();
                if !name.starts_with("user") {
                    valid_name(&name).unwrap();
                }
            }
        }
        for action in out.iter() {
            match action {
                Action::Send { payload, .. } | Action::Broadcast { payload, .. } => {
                    assert!(payload.len() <= MAX_OUT, "{} bytes", payload.len());
                    std::str::from_utf8(payload).unwrap();
                }
                Action::Close { id, .. } => {
                    // Only the sender of /quit is closed; it leaves then.
                    assert!(members.contains(&id.0));
                }
            }
        }
        assert_eq!(room.len(), members.len());
    }
    Ok(())
}

fn pick<'a>(u: &mut Unstructured<'_>, set: &'a BTreeSet<u64>) -> Result<Option<&'a u64>> {
    if set.is_empty() {
        return Ok(None);
    }
    let i = u.choose_index(set.len())?;
    Ok(set.iter().nth(i))
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
