//! The chat room: the notes' multi-client server, with real rules.
//!
//! Every line a client sends is either a command (it starts with `/`) or a
//! message for everyone else, sent on with the sender's name. Every command
//! gets an answer, to its sender only: a line starting with `* ` when it
//! worked, or `error: ` and what was wrong. Nothing is dropped silently.
//!
//! | line | effect |
//! |---|---|
//! | `text` | everyone else gets `NAME: text` |
//! | `/nick NAME` | take a name (unique, 1–32 characters, no spaces or control characters) |
//! | `/who` | who is here |
//! | `/msg NAME text` | only NAME gets `[private] YOU: text` |
//! | `/quit` | leave (the server closes the connection) |
//! | `/help` | the commands |
//! | `//text` | send a line that starts with `/` |
//!
//! Join and leave notices stop in rooms larger than [`DEFAULT_NOTICE_LIMIT`].
//!
//! Text travels as UTF-8 in the notes' frames, so the notes' own Python
//! client joins unchanged. A client gets the name `userN` until it picks one.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use trama_protocol::{text, Actions, ConnId, DisconnectReason, Event, Service};

/// Longest chat line accepted, in bytes.
pub const MAX_LINE: usize = 4096;

/// The frame limit a chat server should read with: a line up to this long
/// gets the line-limit error as an answer (someone pasted too much); a
/// longer frame is no chat line at all, and is refused at its header rather
/// than held in memory while it arrives (the transport's default limit is
/// 16 MiB, which thousands of connections could each half-fill).
pub const MAX_FRAME: usize = 16 * MAX_LINE;
/// Longest name, in characters.
pub const MAX_NAME: usize = 32;
/// `/who` names at most this many people.
pub const WHO_LIMIT: usize = 100;
/// Join and leave notices go to everyone while the room has at most this many
/// people. Each notice is one send per member, so a burst of N joins costs
/// N²/2 sends: 50 million at 10,000 people. Past the limit the room stays
/// quiet about arrivals and departures; `/who` still lists everyone.
pub const DEFAULT_NOTICE_LIMIT: usize = 1000;

const HELP: &str = "* commands: /nick NAME, /who, /msg NAME text, /quit, /help; \
                    other lines go to everyone (start a line with // to send one that begins with /)";

/// The state of one chat room. All of it lives here, in one place: the
/// transport calls [`Service::on_event`] with the service locked only for the
/// duration of the call, and carries out the returned actions after
/// releasing it, so no lock is ever held across I/O.
#[derive(Debug)]
pub struct Chat {
    names: HashMap<ConnId, String>,
    /// Lowercased name -> connection, for uniqueness and `/msg`.
    by_name: BTreeMap<String, ConnId>,
    notice_limit: usize,
}

impl Default for Chat {
    fn default() -> Self {
        Chat {
            names: HashMap::new(),
            by_name: BTreeMap::new(),
            notice_limit: DEFAULT_NOTICE_LIMIT,
        }
    }
}

impl Chat {
    /// An empty room.
    pub fn new() -> Chat {
        Chat::default()
    }

    /// Announce joins and leaves only while the room has at most `limit`
    /// people (see [`DEFAULT_NOTICE_LIMIT`]).
    pub fn with_notice_limit(mut self, limit: usize) -> Chat {
        self.notice_limit = limit;
        self
    }

    /// Number of people in the room.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name a connection goes by.
    pub fn name_of(&self, id: ConnId) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    fn join(&mut self, id: ConnId, out: &mut Actions) {
        let mut name = format!("user{}", id.0);
        // A user may have taken "userN" by /nick; add a suffix until it is free.
        let mut n = 1;
        while self.by_name.contains_key(&name.to_lowercase()) {
            name = format!("user{}-{n}", id.0);
            n += 1;
        }
        self.by_name.insert(name.to_lowercase(), id);
        out.send_with(id, |b| {
            let _ = write!(
                b,
                "* welcome, {name}; {} here; /help lists the commands",
                self.names.len() + 1
            );
        });
        if self.names.len() < self.notice_limit {
            out.broadcast_with(Some(id), |b| {
                let _ = write!(b, "* {name} joined");
            });
        }
        self.names.insert(id, name);
    }

    fn leave(&mut self, id: ConnId, why: &str, out: &mut Actions) {
        if let Some(name) = self.names.remove(&id) {
            self.by_name.remove(&name.to_lowercase());
            if self.names.len() < self.notice_limit {
                out.broadcast_with(Some(id), |b| {
                    let _ = write!(b, "* {name} left ({why})");
                });
            }
        }
    }

    fn message(&mut self, id: ConnId, payload: &[u8], out: &mut Actions) {
        let Some(name) = self.names.get(&id).cloned() else {
            return;
        };
        if payload.len() > MAX_LINE {
            out.send_with(id, |b| {
                let _ = write!(
                    b,
                    "error: line of {} bytes exceeds the limit of {MAX_LINE}",
                    payload.len()
                );
            });
            return;
        }
        let line = match text(payload) {
            Ok(line) => line.trim_end_matches(['\r', '\n']),
            Err(e) => {
                out.send_with(id, |b| {
                    let _ = write!(b, "error: {e}");
                });
                return;
            }
        };
        if line.is_empty() {
            // The notes' server ignores empty messages; heartbeats are empty too.
            return;
        }
        if let Some(escaped) = line.strip_prefix("//") {
            return self.say(id, &name, &format!("/{escaped}"), out);
        }
        let Some(command) = line.strip_prefix('/') else {
            return self.say(id, &name, line, out);
        };
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim();
        match verb {
            "nick" => self.nick(id, &name, rest, out),
            "who" => self.who(id, out),
            "msg" => self.private(id, &name, rest, out),
            "quit" => {
                out.send(id, b"* bye");
                out.close(id, "quit");
            }
            "help" => out.send(id, HELP.as_bytes()),
            _ => out.send_with(id, |b| {
                let shown: String = verb.chars().take(MAX_NAME).collect();
                let _ = write!(
                    b,
                    "error: unknown command /{shown}; /help lists the commands"
                );
            }),
        }
    }

    /// List the room in name order (`by_name` is already sorted), at most
    /// [`WHO_LIMIT`] names so the answer stays small in a crowded room.
    fn who(&self, id: ConnId, out: &mut Actions) {
        out.send_with(id, |b| {
            let _ = write!(b, "* here ({}): ", self.names.len());
            for (i, member) in self.by_name.values().take(WHO_LIMIT).enumerate() {
                if i > 0 {
                    b.extend_from_slice(b", ");
                }
                if let Some(name) = self.names.get(member) {
                    b.extend_from_slice(name.as_bytes());
                }
            }
            if self.names.len() > WHO_LIMIT {
                let _ = write!(b, " and {} more", self.names.len() - WHO_LIMIT);
            }
        });
    }

    fn say(&self, id: ConnId, name: &str, line: &str, out: &mut Actions) {
        out.broadcast_with(Some(id), |b| {
            let _ = write!(b, "{name}: {line}");
        });
    }

    fn nick(&mut self, id: ConnId, old: &str, new: &str, out: &mut Actions) {
        if let Err(why) = valid_name(new) {
            out.send_with(id, |b| {
                let _ = write!(b, "error: {why}");
            });
            return;
        }
        let key = new.to_lowercase();
        match self.by_name.get(&key) {
            Some(&owner) if owner == id && new == old => {
                out.send_with(id, |b| {
                    let _ = write!(b, "* you are already {new}");
                });
                return;
            }
            // One's own name in another case: a rename.
            Some(&owner) if owner == id => {}
            Some(_) => {
                out.send_with(id, |b| {
                    let _ = write!(b, "error: the name {new} is taken");
                });
                return;
            }
            None => {}
        }
        self.by_name.remove(&old.to_lowercase());
        self.by_name.insert(key, id);
        self.names.insert(id, new.to_string());
        out.send_with(id, |b| {
            let _ = write!(b, "* you are now {new}");
        });
        out.broadcast_with(Some(id), |b| {
            let _ = write!(b, "* {old} is now {new}");
        });
    }

    fn private(&self, id: ConnId, from: &str, rest: &str, out: &mut Actions) {
        let (to, body) = rest.split_once(' ').unwrap_or((rest, ""));
        let body = body.trim();
        if to.is_empty() || body.is_empty() {
            out.send(id, b"error: usage: /msg NAME text");
            return;
        }
        match self.by_name.get(&to.to_lowercase()) {
            Some(&target) => {
                out.send_with(target, |b| {
                    let _ = write!(b, "[private] {from}: {body}");
                });
                let to_name = self.names.get(&target).map_or(to, String::as_str);
                out.send_with(id, |b| {
                    let _ = write!(b, "* sent to {to_name}");
                });
            }
            None => {
                let shown: String = to.chars().take(MAX_NAME).collect();
                out.send_with(id, |b| {
                    let _ = write!(b, "error: nobody here is called {shown}");
                });
            }
        }
    }
}

/// Check a name: 1 to 32 characters, no white space, no control characters,
/// and not starting with `/` or `*` (which would look like a command or a
/// server notice).
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("usage: /nick NAME".into());
    }
    name_characters(name, MAX_NAME)?;
    if name.starts_with(['/', '*']) {
        return Err("a name cannot start with / or *".into());
    }
    Ok(())
}

/// The rules every name shares (chat nicknames, peer names): at most `max`
/// characters, none of them white space or control characters.
pub(crate) fn name_characters(name: &str, max: usize) -> Result<(), String> {
    let count = name.chars().count();
    if count > max {
        return Err(format!(
            "a name has at most {max} characters, this one has {count}"
        ));
    }
    if let Some((i, c)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "character {} of the name is not allowed (U+{:04X})",
            i + 1,
            c as u32
        ));
    }
    Ok(())
}

impl Service for Chat {
    fn on_event(&mut self, event: Event<'_>, out: &mut Actions) {
        match event {
            Event::Connected { id, .. } => self.join(id, out),
            Event::Message { id, payload } => self.message(id, payload, out),
            Event::Disconnected { id, reason } => {
                let why = match reason {
                    DisconnectReason::Closed(r) if r == "quit" => "quit".to_string(),
                    other => other.to_string(),
                };
                self.leave(id, &why, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trama_protocol::Action;

    /// A room driven by plain calls; `said` collects (to, line) pairs, with
    /// broadcasts expanded to every member but the excepted one.
    struct Room {
        chat: Chat,
        out: Actions,
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        To(u64, String),
        All(Option<u64>, String),
        Close(u64, String),
    }

    impl Room {
        fn new() -> Room {
            Room {
                chat: Chat::new(),
                out: Actions::new(),
            }
        }
        fn run(&mut self, event: Event<'_>) -> Vec<Got> {
            self.out.clear();
            self.chat.on_event(event, &mut self.out);
            self.out
                .iter()
                .map(|a| match a {
                    Action::Send { to, payload } => {
                        Got::To(to.0, String::from_utf8(payload.to_vec()).unwrap())
                    }
                    Action::Broadcast { payload, except } => Got::All(
                        except.map(|c| c.0),
                        String::from_utf8(payload.to_vec()).unwrap(),
                    ),
                    Action::Close { id, reason } => Got::Close(id.0, reason.to_string()),
                })
                .collect()
        }
        fn connect(&mut self, id: u64) -> Vec<Got> {
            self.run(Event::Connected {
                id: ConnId(id),
                peer: "127.0.0.1:1".parse().unwrap(),
            })
        }
        fn say(&mut self, id: u64, line: &str) -> Vec<Got> {
            self.run(Event::Message {
                id: ConnId(id),
                payload: line.as_bytes(),
            })
        }
    }

    fn to(id: u64, s: &str) -> Got {
        Got::To(id, s.into())
    }

    #[test]
    fn join_greets_and_announces() {
        let mut r = Room::new();
        assert_eq!(
            r.connect(1),
            [
                to(1, "* welcome, user1; 1 here; /help lists the commands"),
                Got::All(Some(1), "* user1 joined".into())
            ]
        );
        assert_eq!(r.chat.len(), 1);
    }

    #[test]
    fn lines_go_to_the_others_with_the_name() {
        let mut r = Room::new();
        r.connect(1);
        r.connect(2);
        assert_eq!(
            r.say(1, "hola a todos\r\n"),
            [Got::All(Some(1), "user1: hola a todos".into())]
        );
        assert_eq!(r.say(1, "//etc"), [Got::All(Some(1), "user1: /etc".into())]);
        assert!(r.say(1, "").is_empty());
    }

    #[test]
    fn nick_rules() {
        let mut r = Room::new();
        r.connect(1);
        r.connect(2);
        assert_eq!(
            r.say(1, "/nick ana"),
            [
                to(1, "* you are now ana"),
                Got::All(Some(1), "* user1 is now ana".into())
            ]
        );
        assert_eq!(
            r.say(2, "/nick ANA"),
            [to(2, "error: the name ANA is taken")]
        );
        assert_eq!(r.say(1, "/nick ana"), [to(1, "* you are already ana")]);
        assert_eq!(r.say(2, "/nick"), [to(2, "error: usage: /nick NAME")]);
        let long = "x".repeat(33);
        assert_eq!(
            r.say(2, &format!("/nick {long}")),
            [to(
                2,
                "error: a name has at most 32 characters, this one has 33"
            )]
        );
        assert_eq!(
            r.say(2, "/nick a\u{7}b"),
            [to(
                2,
                "error: character 2 of the name is not allowed (U+0007)"
            )]
        );
        assert_eq!(
            r.say(2, "/nick *root"),
            [to(2, "error: a name cannot start with / or *")]
        );
        // Case change of one's own name is allowed.
        assert_eq!(r.say(1, "/nick Ana")[0], to(1, "* you are now Ana"));
        assert_eq!(r.chat.name_of(ConnId(1)), Some("Ana"));
    }

    #[test]
    fn who_lists_everyone_sorted() {
        let mut r = Room::new();
        r.connect(1);
        r.connect(2);
        r.say(2, "/nick bea");
        r.say(1, "/nick Ana");
        assert_eq!(r.say(2, "/who"), [to(2, "* here (2): Ana, bea")]);
    }

    #[test]
    fn private_messages_reach_only_their_target() {
        let mut r = Room::new();
        r.connect(1);
        r.connect(2);
        r.connect(3);
        r.say(2, "/nick bea");
        assert_eq!(
            r.say(1, "/msg Bea nos vemos a las 5"),
            [
                to(2, "[private] user1: nos vemos a las 5"),
                to(1, "* sent to bea")
            ]
        );
        assert_eq!(
            r.say(1, "/msg nadie hola"),
            [to(1, "error: nobody here is called nadie")]
        );
        assert_eq!(
            r.say(1, "/msg bea"),
            [to(1, "error: usage: /msg NAME text")]
        );
    }

    #[test]
    fn quit_says_bye_and_closes() {
        let mut r = Room::new();
        r.connect(1);
        assert_eq!(
            r.say(1, "/quit"),
            [to(1, "* bye"), Got::Close(1, "quit".into())]
        );
    }

    #[test]
    fn leaving_is_announced_and_frees_the_name() {
        let mut r = Room::new();
        r.connect(1);
        r.connect(2);
        r.say(1, "/nick ana");
        let reason = DisconnectReason::PeerClosed;
        assert_eq!(
            r.run(Event::Disconnected {
                id: ConnId(1),
                reason: &reason
            }),
            [Got::All(
                Some(1),
                "* ana left (peer closed the connection)".into()
            )]
        );
        assert_eq!(r.say(2, "/nick ana")[0], to(2, "* you are now ana"));
        // A second disconnect of the same id is ignored.
        assert!(r
            .run(Event::Disconnected {
                id: ConnId(1),
                reason: &reason
            })
            .is_empty());
    }

    #[test]
    fn bad_input_gets_an_error_line() {
        let mut r = Room::new();
        r.connect(1);
        assert_eq!(
            r.run(Event::Message {
                id: ConnId(1),
                payload: b"ok\xffno"
            }),
            [to(1, "error: payload is not valid UTF-8 at byte 2")]
        );
        assert_eq!(
            r.say(1, "/dance"),
            [to(
                1,
                "error: unknown command /dance; /help lists the commands"
            )]
        );
        let big = "x".repeat(MAX_LINE + 1);
        assert_eq!(
            r.say(1, &big),
            [to(1, "error: line of 4097 bytes exceeds the limit of 4096")]
        );
        assert_eq!(r.say(1, "/help"), [to(1, HELP)]);
    }

    #[test]
    fn default_name_taken_by_nick_gets_a_suffix() {
        let mut r = Room::new();
        r.connect(1);
        r.say(1, "/nick user2");
        let got = r.connect(2);
        assert_eq!(
            got[0],
            to(2, "* welcome, user2-1; 2 here; /help lists the commands")
        );
    }

    #[test]
    fn who_is_capped_in_a_crowd() {
        let mut r = Room::new();
        for id in 1..=(WHO_LIMIT as u64 + 2) {
            r.connect(id);
        }
        let got = r.say(1, "/who");
        let Got::To(1, line) = &got[0] else {
            panic!("{got:?}")
        };
        assert!(line.starts_with("* here (102): user1, user10, user100, user101, user102, user11"));
        assert!(line.ends_with(" and 2 more"), "{line}");
    }

    #[test]
    fn big_rooms_stop_announcing_joins_and_leaves() {
        let mut r = Room::new();
        r.chat = Chat::new().with_notice_limit(2);
        assert_eq!(r.connect(1).len(), 2);
        assert_eq!(r.connect(2).len(), 2);
        // The third person joins a room of 2: welcome only.
        assert_eq!(
            r.connect(3),
            [to(3, "* welcome, user3; 3 here; /help lists the commands")]
        );
        let reason = DisconnectReason::PeerClosed;
        // Leaving a room of 3 (2 remain, not under the limit): quiet.
        assert!(r
            .run(Event::Disconnected {
                id: ConnId(3),
                reason: &reason
            })
            .is_empty());
        // Leaving a room of 2 (1 remains): announced.
        assert_eq!(
            r.run(Event::Disconnected {
                id: ConnId(2),
                reason: &reason
            })
            .len(),
            1
        );
    }

    #[test]
    fn messages_from_unknown_connections_are_ignored() {
        let mut r = Room::new();
        assert!(r.say(9, "hola").is_empty());
    }
}
