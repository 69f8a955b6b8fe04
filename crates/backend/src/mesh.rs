//! The peer-to-peer mesh: the rules, with no sockets, clocks or threads.
//!
//! In the `trama-peer` app every peer listens for connections and dials the
//! others; a line typed at one peer reaches every other peer, hop by hop if
//! need be, exactly once. The app owns the sockets, the threads and the
//! backoff timers; a [`Mesh`] owns everything else. The app tells it what
//! happened (a link came up, a frame arrived, a link went down, the user typed
//! a line) and carries out the [`Out`] effects it returns: send a frame, close
//! a link, show a line, dial an address, print a status line. Link ids are the
//! app's ([`LinkId`]); the mesh never reads a clock or draws a random number.
//!
//! # The wire protocol (version [`PROTOCOL_VERSION`])
//!
//! A *link* is one TCP connection between two peers, whichever side dialed.
//! Each frame is the default trama frame (a 4-byte big-endian length, then
//! the payload) holding one MessagePack map with named fields ([`CODEC`],
//! i.e. `trama_protocol::Codec::MsgPack`), at most [`MAX_FRAME`] bytes. The
//! map is a [`Wire`] value, tagged by its `"type"` key:
//!
//! | `type` | fields | meaning |
//! |---|---|---|
//! | `Hello` | `version`, `name`, `listen` (string or nil), `peers` (list of strings), `session` (optional integer), `next` (optional integer: the number of the sender's next line) | the first frame each side sends on a new link |
//! | `Refuse` | `reason` | the link is refused (or retired, see below); the sender closes it |
//! | `Msg` | `origin`, `seq`, `text` | a chat line, the `seq`-th one `origin` said |
//! | `Peers` | `peers` (list of strings) | listen addresses the sender knows (gossip) |
//!
//! For example `{"type": "Msg", "origin": "ana", "seq": 3, "text": "hola"}`,
//! or `{"type": "Hello", "version": 1, "name": "ana", "listen":
//! "10.0.0.5:7000", "peers": ["10.0.0.6:7000"]}`, as Python's `msgpack` packs
//! those dicts. Unknown fields are ignored, absent `listen` and `peers` read
//! as nil and empty, and an unknown `type` is an error.
//!
//! 1. On a new link both sides send [`Wire::Hello`] at once, without waiting
//!    for the other: `listen` is the address this peer accepts links on
//!    (nil if it accepts none), `peers` the listen addresses it knows (at most
//!    [`MAX_GOSSIP`]).
//! 2. Each side checks the other's Hello and refuses the link, with a
//!    [`Wire::Refuse`] and a close, when the `version` is not
//!    [`PROTOCOL_VERSION`] ("peer speaks protocol version 2; this peer speaks
//!    version 1"), when the `name` fails [`valid_peer_name`], when the name is
//!    its own ("that is our own name": it dialed itself, or a namesake), when
//!    `listen` fails [`valid_addr`], or when the name is already linked from
//!    a different listen address (a genuine name collision). Since both sides
//!    apply the same checks to each other, both usually refuse and both report
//!    it with an [`Out::Notice`]. Anything but a Hello before the Hello, a
//!    second Hello, and a payload that is not a valid [`Wire`] map are refused
//!    too, with a reason that names the problem.
//! 3. After the Hellos, either side may send `Msg` and `Peers` at any time.
//!    A `Msg` must have a valid `origin` name, a `seq` of at least 1 and a
//!    `text` of at most [`MAX_TEXT`] bytes, or the link is refused.
//! 4. A `Refuse` after the Hello ends the link: the receiver reports it and
//!    closes; it does not dial that peer's address again by itself. The one
//!    exception is a reason that starts with [`DUPLICATE_LINK`], which
//!    retires a duplicate link (next section).
//!
//! # Duplicate links: the tie-break
//!
//! When two peers dial each other at the same moment there are two links
//! between them. Both must keep the *same* one, or each would close the link
//! the other kept. The rule uses only what both sides know, the two names and
//! who dialed each link: **keep a link dialed by the peer whose name sorts
//! first** (byte order). Between `ana` and `bea`, the link `ana` dialed
//! survives, on both sides.
//!
//! A link is not dropped the moment one side decides, because the other side
//! may still be sending on it. Instead the side that decides *retires* it: it
//! sends `Refuse { reason: "duplicate link: ..." }` on it, sends nothing more
//! on it, and keeps reading it. A side that gets that refusal on a link keeps
//! using the link until the link it should keep has said Hello there too
//! (it is on its way: the other side decided because it saw it), then retires
//! it in turn. A link is closed once both sides have retired it, so both
//! refusals have crossed and every line sent on it before them has been
//! read: the tie-break loses no line and shows no "left" or "joined".
//!
//! Two links dialed by the *same* peer (it knows the other under two
//! addresses) are decided by that peer alone: it keeps the first that said
//! Hello and retires the others; the accepting side waits for its refusals.
//! If the link a side kept goes down while links it retired are still
//! waiting for the other side, those are closed too and the peer has left.
//!
//! A peer that restarted (its host rebooted or vanished and came back) is
//! not a duplicate: the links to its earlier run lead to a program that is
//! gone. Each run puts a number of its own in its Hello (`session`, see
//! [`Mesh::with_session`]). But anyone can say a linked peer's name with a
//! new session, so that alone does not drop the real link: a Hello with a
//! linked name whose session differs from the one the link said (or is
//! absent while that one is not) is refused, and a `Peers` frame is sent on
//! the old link. If the program behind it is gone, that send fails (a
//! rebooted host answers with a reset), the peer leaves ("NAME left") and
//! its address is dialed, where the restarted peer answers and joins.
//!
//! A second link claiming a name that is already linked is taken for such a
//! duplicate when both Hellos carry the same `listen` address (or one of them
//! none), and refused as a name collision when the addresses differ. Two
//! different peers that share a name and accept no links (or advertise the
//! same address) cannot be told from one peer with two links: names must be
//! unique in a mesh, and such a pair gets its lines mixed (each one's lines
//! count against the other's sequence numbers).
//!
//! # Exactly-once delivery
//!
//! A line travels by flooding: its origin sends it on every link, and every
//! peer that sees it for the first time delivers it and sends it on to every
//! linked peer except the one it came from, its origin, and the peers the line
//! lists as already reached (`reached`: the sayer and every forwarder add
//! themselves and the peers they send it to, at most [`MAX_REACHED`] names).
//! In a full mesh the sayer reaches everyone and nobody forwards; in a mesh
//! with cycles a peer may still receive a line more than once, in any order,
//! so each peer must recognise copies.
//!
//! A set of recently seen message ids that evicts old entries (an LRU of
//! `(origin, seq)` pairs, or of hashes) cannot promise that: once an id is
//! evicted, a copy that took a slow path around a cycle looks new and is
//! delivered a second time, and nothing bounds how late a copy may be. Its
//! memory is bounded; its promise is not.
//!
//! This mesh numbers lines per origin instead: each origin numbers its own
//! lines 1, 2, 3... ([`Wire::Msg`]'s `seq`), one originator and no gaps at
//! the source. So "every line of `ana` up to 41" is a single number, and each
//! peer keeps, per origin, that *contiguous mark* plus the exact set of
//! numbers it delivered above it (lines that overtook others on a faster
//! path). A copy is a number at or below the mark or in the set, however late
//! it comes, so **no line is ever delivered twice**. The set is bounded
//! ([`WINDOW`] numbers above the mark): a number more than `WINDOW` above the
//! mark moves the mark to it and counts as a gap ([`Stats::gaps`]); the lines
//! it skipped, if they ever arrive, are dropped as copies. So memory is
//! bounded and delivery is *at most once* always, and *exactly once* to every
//! peer connected (directly or through others) when the line is said, as long
//! as no link fails while carrying it (there is no retransmission) and it is
//! not overtaken by more than `WINDOW` others. A peer that joins late sees an
//! origin's numbers start above 1; the numbers below stay open (they may
//! still come) and the set fills until a gap closes them: at most `WINDOW`
//! numbers, once per origin.
//!
//! Lines whose origin is this peer's own name are never delivered back.
//!
//! A peer that restarts must not reuse numbers it used before, or everyone
//! that remembers it drops its new lines as copies until its count passes the
//! old one. [`Mesh::with_first_seq`] lets the app start from a number it
//! took from the clock (microseconds since the Unix epoch, say): the others
//! see the jump, count a gap, and deliver. The first number seen from an
//! origin that is more than `WINDOW` above 1 sets the mark without counting a
//! gap; a line of that origin that the first one overtook is then dropped,
//! which takes a line overtaken at the very moment a peer first hears of its
//! origin.
//!
//! # A participant with no key
//!
//! Anyone who can connect may say any name and pass on lines in any
//! origin's name. What the rules still promise:
//!
//! - The lines of a peer linked to this one are judged by what that peer
//!   says itself. Its Hello says the number of its next line (`next`); a line
//!   in its name that comes through another peer is dropped
//!   ([`Stats::forged`]) if it is numbered more than [`MAX_AHEAD`] past that
//!   or past the highest the peer sent itself, or is ahead of it with a full
//!   `reached` list. One within the bound is delivered (it may be a line the
//!   peer said before it knew this one), and when the peer then sends a line
//!   with the same number itself, that line is delivered too
//!   ([`Stats::overridden`]): an honest peer never forwards a copy to a peer
//!   the sayer reached itself, so the first one was not the peer's. So a
//!   forged number cannot silence a linked peer, and a Hello forgets the
//!   numbers said in its sender's name past `next + MAX_AHEAD`.
//! - The origin table forgets the origin heard least recently (linked
//!   peers last), so no flood of made-up origins keeps a newcomer unheard.
//!   A forgotten origin's copies may be delivered again.
//! - A Hello with a linked peer's name and another session is refused (see
//!   above). The session is not a secret (a peer says it to whoever
//!   connects), so a participant that copies it is taken for a second link
//!   of that peer: then the tie-break may retire the real link.
//! - Gossip dials at most [`MAX_DIALING`] addresses at once; at most
//!   [`MAX_WAITING`] more wait, further ones are forgotten, and so is every
//!   address whose dial fails.
//!
//! What they cannot promise: that a line is really from the origin it
//! names, or that the lines of an origin not linked to this peer are not
//! forged (forged lines then take those numbers from the real ones). With
//! `--key-file` or TLS, only holders of the key (or certificate) link at
//! all; see `docs/SECURITY.md`.
//!
//! # Addresses, dialing and gossip
//!
//! Peers are dialed at their *listen* addresses, as advertised in Hellos and
//! gossiped in `Hello.peers` and `Peers`. From every Hello and `Peers` the
//! mesh asks to dial ([`Out::Dial`]) each address that is valid, not its own,
//! not the listen address of a linked peer, not already being dialed, and not
//! one it refused or was refused by. An address stays "being dialed" until a
//! peer with that listen address says Hello, or until the app gives up on it
//! with [`Mesh::dial_failed`], so the mesh never asks twice for one address
//! while a dial or a link for it exists. The mesh is not told which address
//! a dialed link was for: when one goes down before its Hello, the app
//! retries it or calls `dial_failed`.
//!
//! When a Hello or a `Peers` teaches it an address it did not know, the mesh
//! sends its own list in a `Peers` to every other linked peer. The lists are
//! bounded ([`MAX_GOSSIP`]) and only news is passed on, so gossip stops by
//! itself: a late joiner that dials one peer learns the others from that
//! peer's Hello and dials them, and they learn its address from the gossip
//! and dial it (both at once: the tie-break keeps one link per pair).
//!
//! When a peer's last link goes down the mesh reports "NAME left (reason)"
//! and, if the peer advertised a listen address, asks to dial it again; the
//! app applies the backoff and calls [`Mesh::dial_failed`] when it stops.
//!
//! ```
//! use trama_backend::mesh::{LinkId, Mesh, Out};
//!
//! let mut ana = Mesh::new("ana", Some("10.0.0.5:7000".into()));
//! let mut bea = Mesh::new("bea", Some("10.0.0.6:7000".into()));
//! // One TCP connection: ana dialed it, it is link 1 at ana and link 7 at bea.
//! let to_bea = ana.on_link_up(LinkId(1), true);
//! let to_ana = bea.on_link_up(LinkId(7), false);
//! // Carry each side's Sends to the other side (the app encodes and frames them).
//! for out in to_bea {
//!     if let Out::Send { wire, .. } = out {
//!         let got = bea.on_frame(LinkId(7), &wire.encode()?);
//!         assert_eq!(got, [Out::Notice("ana joined".into())]);
//!     }
//! }
//! for out in to_ana {
//!     if let Out::Send { wire, .. } = out {
//!         ana.on_frame(LinkId(1), &wire.encode()?);
//!     }
//! }
//! let said = ana.say("hola");
//! let [Out::Send { link: LinkId(1), wire }] = &said[..] else { panic!("{said:?}") };
//! let got = bea.on_frame(LinkId(7), &wire.encode()?);
//! assert_eq!(got, [Out::Deliver { from: "ana".into(), text: "hola".into() }]);
//! // The same line again, from another path: dropped.
//! assert!(bea.on_frame(LinkId(7), &wire.encode()?).is_empty());
//! assert_eq!(bea.stats().duplicates, 1);
//! # Ok::<(), trama_protocol::Error>(())
//! ```
//!
//! # Bounds
//!
//! | what | bound |
//! |---|---|
//! | one frame | [`MAX_FRAME`] bytes (the app sets its frame limit to it) |
//! | a name | [`MAX_NAME`] characters |
//! | a line | [`MAX_TEXT`] bytes |
//! | an address | [`MAX_ADDR`] bytes |
//! | addresses read from one Hello or `Peers`, and sent in one | [`MAX_GOSSIP`] |
//! | addresses being dialed at once; waiting for a slot | [`MAX_DIALING`]; [`MAX_WAITING`] (further ones are forgotten) |
//! | addresses refused | [`MAX_KNOWN`] |
//! | origins remembered | [`MAX_ORIGINS`]; past it the least recently heard is forgotten ([`Stats::evicted`]) |
//! | a linked origin's number, passed on by another peer | [`MAX_AHEAD`] past what it announced or sent itself |
//! | numbers remembered per origin | [`WINDOW`] |
//!
//! There is no authentication: see "A participant with no key" above.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use trama_protocol::Codec;

/// The version of the protocol described in the [module docs](self).
pub const PROTOCOL_VERSION: u32 = 1;

/// The codec of every frame between peers.
pub const CODEC: Codec = Codec::MsgPack;

/// A generous bound for one frame: the largest valid one is a Hello with
/// [`MAX_GOSSIP`] addresses of [`MAX_ADDR`] bytes, about 17 KB.
pub const MAX_FRAME: usize = 64 * 1024;

/// Longest peer name, in characters.
pub const MAX_NAME: usize = 32;

/// Longest line, in bytes of UTF-8 (the chat's [`MAX_LINE`](crate::chat::MAX_LINE)).
pub const MAX_TEXT: usize = crate::chat::MAX_LINE;

/// Longest listen address, in bytes.
pub const MAX_ADDR: usize = 255;

/// At most this many addresses are read from one Hello or `Peers`, and sent
/// in one.
pub const MAX_GOSSIP: usize = 64;

/// At most this many addresses are remembered as refused.
pub const MAX_KNOWN: usize = 1024;

/// At most this many addresses are dialed at once ([`Out::Dial`] not yet
/// answered by a Hello or [`Mesh::dial_failed`]).
pub const MAX_DIALING: usize = 8;

/// At most this many learned addresses wait for a dial slot; further ones
/// are forgotten ([`Stats::addrs_dropped`]).
pub const MAX_WAITING: usize = 64;

/// At most this many origins are remembered for duplicate detection; past
/// it, the one heard least recently that is not a linked peer is forgotten
/// ([`Stats::evicted`]).
pub const MAX_ORIGINS: usize = 1024;

/// A line of a linked peer that arrives through another peer may be numbered
/// at most this far past the highest number that peer has announced or sent
/// itself; further ones are dropped ([`Stats::forged`]).
pub const MAX_AHEAD: u64 = 64;

/// Per origin, the sequence numbers remembered above the contiguous mark.
pub const WINDOW: u64 = 4096;

/// The start of a [`Wire::Refuse`] reason that retires a duplicate link
/// instead of refusing the peer (see the [module docs](self)).
pub const DUPLICATE_LINK: &str = "duplicate link";
/// Most names a [`Wire::Msg`] lists as already reached.
pub const MAX_REACHED: usize = 64;

/// `reached` plus `more`, without repeats, at most [`MAX_REACHED`] names.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn extend_reached(reached: &[String], more: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all: Vec<String> = reached.iter().take(MAX_REACHED).cloned().collect();
    for name in more {
        if all.len() >= MAX_REACHED {
            break;
        }
        if !all.contains(&name) {
            all.push(name);
        }
    }
    all
}

/// Characters of a peer-controlled string quoted in a reason or a notice.
const QUOTED_CHARS: usize = 64;

/// Characters of a peer's refusal reason shown in a notice.
const REASON_CHARS: usize = 200;

// ---------------------------------------------------------------------------
// The wire
// ---------------------------------------------------------------------------

/// One frame between peers: a MessagePack map tagged by its `"type"` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Wire {
    /// The first frame each side sends on a new link.
    Hello {
        /// The sender's [`PROTOCOL_VERSION`].
        version: u32,
        /// The sender's name, unique in the mesh.
        name: String,
        /// The address the sender accepts links on, if any (absent: none).
        #[serde(default)]
        listen: Option<String>,
        /// Listen addresses of peers the sender knows (absent: none).
        #[serde(default)]
        peers: Vec<String>,
        /// A number the sender picked when it started (absent or 0: none).
        /// A known name saying Hello with another session has restarted:
        /// its old links lead to a program that is gone.
        #[serde(default, skip_serializing_if = "is_zero")]
        session: u64,
        /// The number the sender's next line will have (absent or 0: not
        /// said). Lines of the sender that other peers pass on may run at
        /// most [`MAX_AHEAD`] past it (or past the sender's own lines).
        #[serde(default, skip_serializing_if = "is_zero")]
        next: u64,
    },
    /// The link is refused, or retired when `reason` starts with
    /// [`DUPLICATE_LINK`]; the sender sends nothing more on it.
    Refuse {
        /// Why, in words for the person at the other end.
        reason: String,
    },
    /// A chat line.
    Msg {
        /// The name of the peer that said it.
        origin: String,
        /// Its number among the lines `origin` said: 1, 2, 3...
        seq: u64,
        /// The line.
        text: String,
        /// Peers this line has already been sent to (and the senders
        /// themselves), so a forwarder skips them: in a full mesh the sayer
        /// reaches everyone and nobody forwards. Only an optimisation: a name
        /// missing here costs a duplicate, which the sequence numbers drop.
        /// At most [`MAX_REACHED`] names.
        #[serde(default)]
        reached: Vec<String>,
    },
    /// Gossip: listen addresses the sender knows.
    Peers {
        /// The addresses (absent: none).
        #[serde(default)]
        peers: Vec<String>,
    },
}

impl Wire {
    /// The frame's payload: the value in [`CODEC`].
    pub fn encode(&self) -> trama_protocol::Result<Vec<u8>> {
        CODEC.to_vec(self)
    }

    /// Read a frame's payload; the error names the problem.
    pub fn decode(bytes: &[u8]) -> trama_protocol::Result<Wire> {
        CODEC.decode(bytes)
    }

    /// The `"type"` of this frame: `"Hello"`, `"Refuse"`, `"Msg"` or `"Peers"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Wire::Hello { .. } => "Hello",
            Wire::Refuse { .. } => "Refuse",
            Wire::Msg { .. } => "Msg",
            Wire::Peers { .. } => "Peers",
        }
    }
}

// ---------------------------------------------------------------------------
// What the app sees
// ---------------------------------------------------------------------------

/// One link (one TCP connection), named by the app (with the id the
/// transport's peer node gave it). Ids must not be reused while the mesh may
/// still hear of the old link.
pub use trama_protocol::LinkId;

/// An effect for the app to carry out, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send `wire` (encoded with [`Wire::encode`], framed) on `link`.
    Send {
        /// The link.
        link: LinkId,
        /// The frame.
        wire: Wire,
    },
    /// Close `link` once the frames already queued on it are sent. The mesh
    /// has forgotten it: telling it the link went down is harmless.
    Close {
        /// The link.
        link: LinkId,
        /// Why, for the app's log.
        reason: String,
    },
    /// Show a line to the user.
    Deliver {
        /// The name of the peer that said it.
        from: String,
        /// The line.
        text: String,
    },
    /// Connect to `addr` and report the link with [`Mesh::on_link_up`] (as
    /// dialed), or give up with [`Mesh::dial_failed`]. The app applies its
    /// backoff between attempts, and keeps trying (or gives up) when the
    /// link goes down before the peer's Hello.
    Dial {
        /// A listen address, as peers advertise it.
        addr: String,
    },
    /// A status line for the console: joined, left, refused, not sent.
    Notice(String),
    /// A line for the app's log: input that was dropped, with the numbers.
    Warn(String),
}

/// A linked peer, for `/peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its name.
    pub name: String,
    /// The address it accepts links on, if it said one.
    pub listen: Option<String>,
    /// The link lines to it are sent on.
    pub link: LinkId,
}

/// Counters since the mesh was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines this peer originated with [`Mesh::say`].
    pub said: u64,
    /// Lines of other peers delivered to the user.
    pub delivered: u64,
    /// Copies dropped: lines already delivered (or skipped by a gap), and
    /// this peer's own lines coming back.
    pub duplicates: u64,
    /// Sends of other peers' lines to further peers.
    pub forwarded: u64,
    /// Times an origin's numbers jumped more than [`WINDOW`] past its mark.
    pub gaps: u64,
    /// Origins forgotten to make room past [`MAX_ORIGINS`].
    pub evicted: u64,
    /// Lines of a linked peer, passed on by another, dropped because they
    /// were numbered past what that peer could have sent ([`MAX_AHEAD`]).
    pub forged: u64,
    /// Lines a linked peer sent itself, delivered although a line with the
    /// same number had come from another peer first (which was not its).
    pub overridden: u64,
    /// Learned addresses forgotten because [`MAX_WAITING`] were waiting.
    pub addrs_dropped: u64,
    /// Numbers taken back as unseen because their origin's Hello said it
    /// had not used them yet (someone else had, in its name, or the window
    /// jumped there): a line of the origin's still in flight with such a
    /// number may be delivered again.
    pub rewound: u64,
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Check a peer name: 1 to [`MAX_NAME`] characters, no white space, no
/// control characters.
pub fn valid_peer_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name has at least one character".into());
    }
    crate::chat::name_characters(name, MAX_NAME)
}

/// Check a listen address as the mesh stores and gossips it: 1 to
/// [`MAX_ADDR`] bytes, no white space, no control characters. Whether it
/// resolves is the app's business.
pub fn valid_addr(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("an address has at least one character".into());
    }
    if addr.len() > MAX_ADDR {
        return Err(format!(
            "an address has at most {MAX_ADDR} bytes, this one has {}",
            addr.len()
        ));
    }
    if let Some((i, c)) = addr
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "character {} of the address is not allowed (U+{:04X})",
            i + 1,
            c as u32
        ));
    }
    Ok(())
}

/// `s` cut to `max` characters, control characters escaped.
fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` in quotes, cut and escaped.
fn quote(s: &str) -> String {
    format!("\"{}\"", printable(s, QUOTED_CHARS))
}

// ---------------------------------------------------------------------------
// Per-origin duplicate detection
// ---------------------------------------------------------------------------

/// What one origin's numbers say about a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not seen: deliver.
    New,
    /// Not seen, and more than [`WINDOW`] past the mark: deliver, count a gap.
    Gap,
    /// Seen (or skipped): drop.
    Old,
}

/// One origin's delivered numbers: all of `1..=mark`, plus `above`, which
/// holds numbers in `mark + 2 ..= mark + WINDOW`.
#[derive(Debug, Default)]
struct Window {
    mark: u64,
    above: BTreeSet<u64>,
}

impl Window {
    /// The origin says its next number is `next`: lines it said since
    /// may be on their way by other paths, but none past `next + MAX_AHEAD`.
    /// Numbers above that were said by someone else: forget them. If they
    /// moved the mark, the mark goes back to `next - 1` (a line of the few
    /// in flight may then be delivered twice: the price of a forgery).
    ///
    /// Returns how many delivered numbers it forgot.
    fn clamp(&mut self, next: u64) -> u64 {
        let top = next.saturating_sub(1).saturating_add(MAX_AHEAD);
        let before = self.above.len() as u64;
        if self.mark > top {
            let back = next.saturating_sub(1);
            let forgotten = (self.mark - back).saturating_add(before);
            self.mark = back;
            self.above.clear();
            forgotten
        } else {
            self.above.retain(|&n| n <= top);
            before - self.above.len() as u64
        }
    }

    fn accept(&mut self, seq: u64) -> Seen {
        if seq <= self.mark || self.above.contains(&seq) {
            return Seen::Old;
        }
        if seq - self.mark > WINDOW {
            let fresh = self.mark == 0 && self.above.is_empty();
            self.mark = seq;
            self.above.clear();
            return if fresh { Seen::New } else { Seen::Gap };
        }
        self.above.insert(seq);
        while let Some(next) = self.mark.checked_add(1) {
            if !self.above.remove(&next) {
                break;
            }
            self.mark = next;
        }
        Seen::New
    }
}

// ---------------------------------------------------------------------------
// The mesh
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Link {
    dialed: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Waiting for the peer's Hello.
    Pending,
    /// The peer said Hello.
    Up(Up),
}

#[derive(Debug)]
struct Up {
    name: String,
    /// We sent a duplicate-link refusal: nothing more is sent on the link.
    we_retired: bool,
    /// The peer sent one.
    they_retired: bool,
}

impl Link {
    /// Said Hello and not retired by us: lines may be sent on it.
    fn live(&self) -> bool {
        matches!(&self.state, State::Up(up) if !up.we_retired)
    }

    fn up(&self) -> Option<&Up> {
        match &self.state {
            State::Up(up) => Some(up),
            State::Pending => None,
        }
    }
}

#[derive(Debug)]
struct Peer {
    listen: Option<String>,
    /// Its links that said Hello, oldest Hello first.
    links: Vec<LinkId>,
    /// The session its Hello carried (0: none).
    session: u64,
    /// The highest number it could have used: its Hello's `next` less one,
    /// or the highest of the lines it sent us itself.
    heard: u64,
    /// Numbers of its lines above `heard` that came through other peers:
    /// if the peer itself then sends a line with one of them, that one is
    /// its own and is delivered too.
    unconfirmed: BTreeSet<u64>,
}

/// One origin's numbers, and when it was last heard (the mesh's own count
/// of lines received: no clock).
#[derive(Debug, Default)]
struct Origin {
    window: Window,
    heard_at: u64,
}

/// The state of one peer of the mesh: its links, the peers behind them, the
/// addresses it is dialing and the lines it has delivered. See the
/// [module docs](self) for the rules.
#[derive(Debug)]
pub struct Mesh {
    name: String,
    listen: Option<String>,
    next_seq: u64,
    links: BTreeMap<LinkId, Link>,
    peers: BTreeMap<String, Peer>,
    dialing: BTreeSet<String>,
    /// Learned addresses waiting for a dial slot, oldest first.
    waiting: std::collections::VecDeque<String>,
    refused: BTreeSet<String>,
    origins: BTreeMap<String, Origin>,
    /// Lines received so far: the "clock" of [`Origin::heard_at`].
    ticks: u64,
    stats: Stats,
    session: u64,
}

impl Mesh {
    /// A peer called `name` (which should pass [`valid_peer_name`]: peers
    /// refuse one that does not) that accepts links at `listen`, if any. Its
    /// first line is number 1.
    pub fn new(name: impl Into<String>, listen: Option<String>) -> Mesh {
        Mesh {
            name: name.into(),
            listen,
            next_seq: 1,
            links: BTreeMap::new(),
            peers: BTreeMap::new(),
            dialing: BTreeSet::new(),
            waiting: std::collections::VecDeque::new(),
            refused: BTreeSet::new(),
            origins: BTreeMap::new(),
            ticks: 0,
            stats: Stats::default(),
            session: 0,
        }
    }

    /// Say `session` in every Hello: a number that differs each time the
    /// program starts (the clock, the process id), so that peers recognise
    /// a restart of this name and drop their links to the earlier run at
    /// once instead of sending into them. 0 (the default) says none.
    pub fn with_session(mut self, session: u64) -> Mesh {
        self.session = session;
        self
    }

    /// Number this peer's first line `seq` (at least 1) instead of 1, so that
    /// a restarted peer does not reuse numbers (see the [module docs](self)).
    pub fn with_first_seq(mut self, seq: u64) -> Mesh {
        self.next_seq = seq.max(1);
        self
    }

    /// This peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address this peer accepts links on.
    pub fn listen(&self) -> Option<&str> {
        self.listen.as_deref()
    }

    /// A new link: `dialed` when this peer dialed it, false when it accepted
    /// it. Returns the Hello to send. An id already in use is ignored.
    pub fn on_link_up(&mut self, link: LinkId, dialed: bool) -> Vec<Out> {
        if self.links.contains_key(&link) {
            return Vec::new();
        }
        self.links.insert(
            link,
            Link {
                dialed,
                state: State::Pending,
            },
        );
        vec![Out::Send {
            link,
            wire: self.hello(),
        }]
    }

    /// A frame's payload arrived on `link`. Frames on links the mesh does not
    /// know (closed, refused) are ignored.
    pub fn on_frame(&mut self, link: LinkId, bytes: &[u8]) -> Vec<Out> {
        let mut out = Vec::new();
        if !self.links.contains_key(&link) {
            return out;
        }
        match Wire::decode(bytes) {
            Ok(wire) => self.on_wire(link, wire, &mut out),
            Err(e) => self.refuse(link, None, e.to_string(), &mut out),
        }
        out
    }

    /// Originate a line: number it and send it on a link to every linked
    /// peer. A line longer than [`MAX_TEXT`] bytes is not sent; a notice
    /// says why.
    pub fn say(&mut self, text: &str) -> Vec<Out> {
        if text.len() > MAX_TEXT {
            return vec![Out::Notice(format!(
                "not sent: a line has at most {MAX_TEXT} bytes, this one has {}",
                text.len()
            ))];
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        self.stats.said += 1;
        let links = self.active_links();
        let reached = extend_reached(
            std::slice::from_ref(&self.name),
            links.iter().map(|(name, _)| name.clone()),
        );
        let wire = Wire::Msg {
            origin: self.name.clone(),
            seq,
            text: text.to_string(),
            reached,
        };
        links
            .into_iter()
            .map(|(_, link)| Out::Send {
                link,
                wire: wire.clone(),
            })
            .collect()
    }

    /// `link` is gone (closed by either side, or failed) for `reason`. When
    /// it was a peer's last link: "NAME left (reason)", and a [`Out::Dial`]
    /// of its listen address if it has one.
    pub fn on_link_down(&mut self, link: LinkId, reason: &str) -> Vec<Out> {
        let mut out = Vec::new();
        self.forget(link, Some(reason), &mut out);
        out
    }

    /// The dial of `addr` ended without a Hello from a peer listening
    /// there (it failed, or its link went down first): the mesh forgets the
    /// address (it may ask for it again when it learns it anew) and may ask
    /// to dial a waiting one in its place.
    pub fn dial_failed(&mut self, addr: &str) -> Vec<Out> {
        let mut out = Vec::new();
        if self.dialing.remove(addr) {
            self.dial_waiting(&mut out);
        }
        out
    }

    /// True if a link with the peer at `addr` was refused, by either side:
    /// the mesh does not ask to dial it again, and the app should not redial
    /// it by itself either, until a peer with that listen address says Hello.
    pub fn refused(&self, addr: &str) -> bool {
        self.refused.contains(addr)
    }

    /// The linked peers, by name.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .filter_map(|(name, peer)| {
                Some(PeerInfo {
                    name: name.clone(),
                    listen: peer.listen.clone(),
                    link: self.active(peer)?,
                })
            })
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // --- links and peers ---------------------------------------------------

    fn hello(&self) -> Wire {
        Wire::Hello {
            version: PROTOCOL_VERSION,
            name: self.name.clone(),
            listen: self.listen.clone(),
            peers: self.known_addrs(),
            session: self.session,
            next: self.next_seq,
        }
    }

    /// Listen addresses of linked peers and addresses being dialed.
    fn known_addrs(&self) -> Vec<String> {
        let linked = self.peers.values().filter_map(|p| p.listen.as_ref());
        linked
            .chain(&self.dialing)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(MAX_GOSSIP)
            .cloned()
            .collect()
    }

    /// The link lines to `peer` go on: one it has not retired if any, the
    /// oldest first.
    fn active(&self, peer: &Peer) -> Option<LinkId> {
        peer.links
            .iter()
            .filter_map(|id| {
                let link = self.links.get(id).filter(|l| l.live())?;
                Some((link.up()?.they_retired, *id))
            })
            .min_by_key(|(they_retired, _)| *they_retired)
            .map(|(_, id)| id)
    }

    /// One link per linked peer: `(name, link)`.
    fn active_links(&self) -> Vec<(String, LinkId)> {
        self.peers
            .iter()
            .filter_map(|(name, peer)| Some((name.clone(), self.active(peer)?)))
            .collect()
    }

    fn linked(&self, addr: &str) -> bool {
        self.peers
            .values()
            .any(|p| p.listen.as_deref() == Some(addr))
    }

    fn may_dial(&self, addr: &str) -> bool {
        valid_addr(addr).is_ok()
            && self.listen.as_deref() != Some(addr)
            && !self.dialing.contains(addr)
            && !self.refused.contains(addr)
            && !self.linked(addr)
    }

    /// Dial `addr` if a slot is free, or keep it waiting for one; true if
    /// it was news. At most [`MAX_DIALING`] dials at once and
    /// [`MAX_WAITING`] addresses waiting: past that, it is forgotten.
    fn want_dial(&mut self, addr: &str, out: &mut Vec<Out>) -> bool {
        if !self.may_dial(addr) || self.waiting.iter().any(|a| a == addr) {
            return false;
        }
        if self.dialing.len() < MAX_DIALING {
            self.dialing.insert(addr.to_string());
            out.push(Out::Dial { addr: addr.into() });
        } else if self.waiting.len() < MAX_WAITING {
            self.waiting.push_back(addr.to_string());
        } else {
            self.stats.addrs_dropped += 1;
            if self.stats.addrs_dropped.is_power_of_two() {
                out.push(Out::Warn(format!(
                    "address {} forgotten: {MAX_DIALING} being dialed and {MAX_WAITING} waiting ({} forgotten so far)",
                    quote(addr),
                    self.stats.addrs_dropped
                )));
            }
            return false;
        }
        true
    }

    /// Fill free dial slots from the waiting addresses.
    fn dial_waiting(&mut self, out: &mut Vec<Out>) {
        while self.dialing.len() < MAX_DIALING {
            let Some(addr) = self.waiting.pop_front() else {
                return;
            };
            if self.may_dial(&addr) {
                self.dialing.insert(addr.clone());
                out.push(Out::Dial { addr });
            }
        }
    }

    /// Never dial `addr` again by ourselves.
    fn refuse_addr(&mut self, addr: Option<&str>) {
        let Some(addr) = addr else { return };
        self.dialing.remove(addr);
        if valid_addr(addr).is_ok()
            && self.listen.as_deref() != Some(addr)
            && self.refused.len() < MAX_KNOWN
        {
            self.refused.insert(addr.to_string());
        }
    }

    /// Refuse `link`: notice, Refuse, Close, forget. `who` names the peer
    /// when it is known.
    fn refuse(&mut self, link: LinkId, who: Option<String>, reason: String, out: &mut Vec<Out>) {
        let who = who
            .or_else(|| Some(self.links.get(&link)?.up()?.name.clone()))
            .unwrap_or_else(|| link.to_string());
        out.push(Out::Notice(format!("refused {who}: {reason}")));
        out.push(Out::Send {
            link,
            wire: Wire::Refuse {
                reason: reason.clone(),
            },
        });
        out.push(Out::Close { link, reason });
        self.forget(link, None, out);
    }

    /// Drop `link` from the state. When it was its peer's last live link the
    /// peer is gone: links waiting to be retired are closed and, if the link
    /// went down (`departure`), "NAME left" and a redial.
    fn forget(&mut self, link: LinkId, departure: Option<&str>, out: &mut Vec<Out>) {
        let Some(gone) = self.links.remove(&link) else {
            return;
        };
        let State::Up(up) = gone.state else { return };
        let name = up.name;
        let Some(peer) = self.peers.get_mut(&name) else {
            return;
        };
        peer.links.retain(|l| *l != link);
        let links = &self.links;
        if peer
            .links
            .iter()
            .any(|l| links.get(l).is_some_and(Link::live))
        {
            self.settle(&name, out);
            return;
        }
        let rest = std::mem::take(&mut peer.links);
        let listen = peer.listen.clone();
        self.peers.remove(&name);
        for l in rest {
            self.links.remove(&l);
            out.push(Out::Close {
                link: l,
                reason: format!("{DUPLICATE_LINK} to {name}, whose other link is gone"),
            });
        }
        if let Some(reason) = departure {
            out.push(Out::Notice(format!("{name} left ({reason})")));
            if let Some(addr) = listen {
                self.want_dial(&addr, out);
            }
        }
    }

    fn on_wire(&mut self, link: LinkId, wire: Wire, out: &mut Vec<Out>) {
        let Some(state) = self.links.get(&link) else {
            return;
        };
        let name = state.up().map(|up| up.name.clone());
        match (name, wire) {
            (
                None,
                Wire::Hello {
                    version,
                    name,
                    listen,
                    peers,
                    session,
                    next,
                },
            ) => self.on_hello(link, version, (name, session, next), listen, &peers, out),
            (None, Wire::Refuse { reason }) => {
                out.push(Out::Notice(format!(
                    "{link} refused: {}",
                    printable(&reason, REASON_CHARS)
                )));
                out.push(Out::Close {
                    link,
                    reason: format!("refused before its Hello: {reason}"),
                });
                self.forget(link, None, out);
            }
            (None, other) => self.refuse(
                link,
                None,
                format!("expected Hello first, got {}", other.kind()),
                out,
            ),
            (Some(name), Wire::Hello { .. }) => {
                self.refuse(link, Some(name), "a second Hello on one link".into(), out)
            }
            (Some(name), Wire::Refuse { reason }) => self.on_refused(link, name, reason, out),
            (
                Some(name),
                Wire::Msg {
                    origin,
                    seq,
                    text,
                    reached,
                },
            ) => self.on_msg(link, name, origin, seq, text, &reached, out),
            (Some(name), Wire::Peers { peers }) => {
                if self.learn(&peers, out) {
                    self.gossip(&name, out);
                }
            }
        }
    }

    fn on_hello(
        &mut self,
        link: LinkId,
        version: u32,
        (name, session, next): (String, u64, u64),
        listen: Option<String>,
        peers: &[String],
        out: &mut Vec<Out>,
    ) {
        let named = valid_peer_name(&name).is_ok().then(|| name.clone());
        if version != PROTOCOL_VERSION {
            self.refuse_addr(listen.as_deref());
            let reason = format!(
                "peer speaks protocol version {version}; this peer speaks version {PROTOCOL_VERSION}"
            );
            return self.refuse(link, named, reason, out);
        }
        if let Err(e) = valid_peer_name(&name) {
            let reason = format!("peer name {} is not valid: {e}", quote(&name));
            return self.refuse(link, None, reason, out);
        }
        if name == self.name {
            self.refuse_addr(listen.as_deref());
            let reason = format!("peer name {}: that is our own name", quote(&name));
            return self.refuse(link, named, reason, out);
        }
        if let Some(addr) = &listen {
            if let Err(e) = valid_addr(addr) {
                let reason = format!("listen address {} is not valid: {e}", quote(addr));
                return self.refuse(link, named, reason, out);
            }
        }
        // A peer that claims our address is not reachable there.
        let listen = listen.filter(|a| self.listen.as_ref() != Some(a));
        if let Some(peer) = self.peers.get(&name) {
            if let (Some(old), Some(new)) = (&peer.listen, &listen) {
                if old != new {
                    let reason = format!(
                        "the name {} is already used by the peer at {old}",
                        quote(&name)
                    );
                    self.refuse_addr(Some(new));
                    return self.refuse(link, named, reason, out);
                }
            }
        }

        if let Some(peer) = self.peers.get(&name) {
            // A linked name from another session: the peer restarted, or
            // someone else claims its name. Nothing proves which, so the
            // link it has stays; the link's other end is asked something
            // (gossip): if it is gone, that fails, "NAME left" follows and
            // the mesh dials NAME's address, where a restarted NAME answers.
            if peer.session != 0 && peer.session != session {
                let reason = format!(
                    "the name {} is linked here already, from another session; \
                     a restarted peer is let in once its old link is gone",
                    quote(&name)
                );
                if let Some(old) = self.active(peer) {
                    out.push(Out::Send {
                        link: old,
                        wire: Wire::Peers {
                            peers: self.known_addrs(),
                        },
                    });
                }
                return self.refuse(link, named, reason, out);
            }
        }

        let mut news = false;
        if let Some(addr) = &listen {
            let was_dialing = self.dialing.remove(addr);
            let known = was_dialing || self.linked(addr);
            self.refused.remove(addr);
            news = !known;
            if was_dialing {
                self.dial_waiting(out);
            }
        }
        // It has used no number from `next` on: anything above that was
        // said in its name by someone else.
        let heard = next.saturating_sub(1);
        if next != 0 {
            if let Some(origin) = self.origins.get_mut(&name) {
                let forgotten = origin.window.clamp(next);
                self.stats.rewound = self.stats.rewound.saturating_add(forgotten);
            }
        }
        if let Some(state) = self.links.get_mut(&link) {
            state.state = State::Up(Up {
                name: name.clone(),
                we_retired: false,
                they_retired: false,
            });
        }
        let duplicate = match self.peers.get_mut(&name) {
            Some(peer) => {
                peer.links.push(link);
                if peer.listen.is_none() {
                    peer.listen = listen;
                }
                if peer.session == 0 {
                    peer.session = session;
                }
                peer.heard = peer.heard.max(heard);
                true
            }
            None => {
                self.peers.insert(
                    name.clone(),
                    Peer {
                        listen,
                        links: vec![link],
                        session,
                        heard,
                        unconfirmed: BTreeSet::new(),
                    },
                );
                out.push(Out::Notice(format!("{name} joined")));
                false
            }
        };
        news |= self.learn(peers, out);
        if duplicate {
            self.settle(&name, out);
        }
        if news {
            self.gossip(&name, out);
        }
    }

    /// Ask to dial the new addresses in `addrs` (or keep them waiting);
    /// true if there was one.
    fn learn(&mut self, addrs: &[String], out: &mut Vec<Out>) -> bool {
        let mut news = false;
        for addr in addrs.iter().take(MAX_GOSSIP) {
            news |= self.want_dial(addr, out);
        }
        news
    }

    /// Tell every linked peer but `except` the addresses we know.
    fn gossip(&mut self, except: &str, out: &mut Vec<Out>) {
        let peers = self.known_addrs();
        if peers.is_empty() {
            return;
        }
        for (name, link) in self.active_links() {
            if name != except {
                out.push(Out::Send {
                    link,
                    wire: Wire::Peers {
                        peers: peers.clone(),
                    },
                });
            }
        }
    }

    /// The tie-break: when `name` has more than one live link, retire the
    /// ones both sides agree to drop (see the [module docs](self)).
    fn settle(&mut self, name: &str, out: &mut Vec<Out>) {
        let Some(peer) = self.peers.get(name) else {
            return;
        };
        // (link, dialed by us, retired by the peer), oldest Hello first.
        let live: Vec<(LinkId, bool, bool)> = peer
            .links
            .iter()
            .filter_map(|id| {
                let link = self.links.get(id).filter(|l| l.live())?;
                Some((*id, link.dialed, link.up()?.they_retired))
            })
            .collect();
        if live.len() < 2 {
            return;
        }
        // Links dialed by the peer whose name sorts first win.
        let preferred = self.name.as_str() < name;
        let keep_dialed = if live.iter().any(|&(_, dialed, _)| dialed == preferred) {
            preferred
        } else {
            !preferred
        };
        let mut retire: Vec<LinkId> = live
            .iter()
            .filter(|&&(_, dialed, _)| dialed != keep_dialed)
            .map(|&(id, _, _)| id)
            .collect();
        let same: Vec<(LinkId, bool)> = live
            .iter()
            .filter(|&&(_, dialed, _)| dialed == keep_dialed)
            .map(|&(id, _, they)| (id, they))
            .collect();
        if keep_dialed {
            // We dialed them all: we choose, the oldest the peer has not retired.
            let keep = same.iter().min_by_key(|(_, they)| *they).map(|(id, _)| *id);
            retire.extend(
                same.iter()
                    .map(|(id, _)| *id)
                    .filter(|id| Some(*id) != keep),
            );
        } else if same.iter().any(|(_, they)| !they) {
            // The peer dialed them and chooses: follow its refusals.
            retire.extend(same.iter().filter(|(_, they)| *they).map(|(id, _)| *id));
        }
        for id in retire {
            self.retire(id, name, out);
        }
    }

    /// Send the duplicate-link refusal on `link`; close it if the peer sent
    /// its own already.
    fn retire(&mut self, link: LinkId, name: &str, out: &mut Vec<Out>) {
        let Some(State::Up(up)) = self.links.get_mut(&link).map(|l| &mut l.state) else {
            return;
        };
        if up.we_retired {
            return;
        }
        up.we_retired = true;
        let they_retired = up.they_retired;
        out.push(Out::Send {
            link,
            wire: Wire::Refuse {
                reason: format!(
                    "{DUPLICATE_LINK}: {} keeps another link to {name}",
                    self.name
                ),
            },
        });
        if they_retired {
            self.close_retired(link, out);
        }
    }

    fn close_retired(&mut self, link: LinkId, out: &mut Vec<Out>) {
        out.push(Out::Close {
            link,
            reason: format!("{DUPLICATE_LINK}, retired by both sides"),
        });
        self.forget(link, None, out);
    }

    /// A Refuse on a link that said Hello.
    fn on_refused(&mut self, link: LinkId, name: String, reason: String, out: &mut Vec<Out>) {
        if reason.starts_with(DUPLICATE_LINK) {
            let Some(State::Up(up)) = self.links.get_mut(&link).map(|l| &mut l.state) else {
                return;
            };
            up.they_retired = true;
            if up.we_retired {
                self.close_retired(link, out);
            } else {
                self.settle(&name, out);
            }
            return;
        }
        out.push(Out::Notice(format!(
            "{name} refused the link: {}",
            printable(&reason, REASON_CHARS)
        )));
        let listen = self.peers.get(&name).and_then(|p| p.listen.clone());
        self.refuse_addr(listen.as_deref());
        out.push(Out::Close {
            link,
            reason: format!("refused by {name}: {reason}"),
        });
        self.forget(link, None, out);
    }

    /// Check `seq` against `origin`'s numbers, making room for a new origin
    /// by forgetting the one heard least recently, linked peers last.
    fn accept(&mut self, origin: &str, seq: u64, out: &mut Vec<Out>) -> Seen {
        self.ticks += 1;
        if !self.origins.contains_key(origin) && self.origins.len() >= MAX_ORIGINS {
            let peers = &self.peers;
            let oldest = self
                .origins
                .iter()
                .min_by_key(|(name, o)| (peers.contains_key(*name), o.heard_at))
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                self.origins.remove(&name);
                self.stats.evicted += 1;
                if self.stats.evicted.is_power_of_two() {
                    out.push(Out::Warn(format!(
                        "forgot the numbers of origin {} to make room for {} ({MAX_ORIGINS} remembered, {} forgotten so far)",
                        quote(&name),
                        quote(origin),
                        self.stats.evicted
                    )));
                }
            }
        }
        // A linked origin's numbers start near what it announced: a line
        // passed on ahead of it must not close the numbers below.
        let base = self
            .peers
            .get(origin)
            .map_or(0, |p| p.heard.saturating_sub(WINDOW / 2));
        let entry = self
            .origins
            .entry(origin.to_string())
            .or_insert_with(|| Origin {
                window: Window {
                    mark: base,
                    above: BTreeSet::new(),
                },
                heard_at: 0,
            });
        entry.heard_at = self.ticks;
        entry.window.accept(seq)
    }

    /// A line arrived on `link`, from the peer `from`.
    #[allow(clippy::too_many_arguments)]
    fn on_msg(
        &mut self,
        link: LinkId,
        from: String,
        origin: String,
        seq: u64,
        text: String,
        reached: &[String],
        out: &mut Vec<Out>,
    ) {
        let problem = if let Err(e) = valid_peer_name(&origin) {
            Some(format!("Msg origin {} is not valid: {e}", quote(&origin)))
        } else if seq == 0 {
            Some(format!("Msg from {origin} numbered 0; numbers start at 1"))
        } else if text.len() > MAX_TEXT {
            Some(format!(
                "Msg of {} bytes exceeds the limit of {MAX_TEXT}",
                text.len()
            ))
        } else {
            None
        };
        if let Some(reason) = problem {
            return self.refuse(link, Some(from), reason, out);
        }
        if origin == self.name {
            self.stats.duplicates += 1;
            return;
        }
        let first_hand = origin == from;
        // A line of a linked peer that another peer passes on: it may not
        // run past what that peer could have sent.
        if !first_hand {
            if let Some(peer) = self.peers.get(&origin) {
                let ahead = seq.saturating_sub(peer.heard);
                let problem = if ahead > MAX_AHEAD {
                    Some(format!(
                        "{ahead} past the highest it could have used ({}), limit {MAX_AHEAD}",
                        peer.heard
                    ))
                } else if ahead > 0 && peer.unconfirmed.len() as u64 >= MAX_AHEAD {
                    Some(format!(
                        "{MAX_AHEAD} of its lines already came through others ahead of it"
                    ))
                } else if ahead > 0 && reached.len() >= MAX_REACHED {
                    Some(format!(
                        "ahead of it, with a full list of {MAX_REACHED} peers reached"
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    self.stats.forged += 1;
                    if self.stats.forged.is_power_of_two() {
                        out.push(Out::Warn(format!(
                            "dropped a line of {origin} numbered {seq} passed on by {from}: {problem} ({} such lines so far)",
                            self.stats.forged
                        )));
                    }
                    return;
                }
            }
        }
        let seen = self.accept(&origin, seq, out);
        let seen = match (first_hand, seen, self.peers.get_mut(&origin)) {
            (true, seen, Some(peer)) => {
                peer.heard = peer.heard.max(seq);
                let floor = peer.heard.saturating_sub(MAX_AHEAD);
                let own = peer.unconfirmed.remove(&seq);
                peer.unconfirmed.retain(|&n| n > floor);
                if seen == Seen::Old && own {
                    // The copy that came first through another peer was not
                    // this one: it never sends a number twice, and a peer
                    // that forwards skips those the sayer reached itself.
                    self.stats.overridden += 1;
                    Seen::New
                } else {
                    seen
                }
            }
            (false, seen @ (Seen::New | Seen::Gap), Some(peer)) => {
                if seq > peer.heard {
                    peer.unconfirmed.insert(seq);
                }
                seen
            }
            (_, seen, _) => seen,
        };
        match seen {
            Seen::Old => {
                self.stats.duplicates += 1;
                return;
            }
            Seen::Gap => self.stats.gaps += 1,
            Seen::New => {}
        }
        self.stats.delivered += 1;
        out.push(Out::Deliver {
            from: origin.clone(),
            text: text.clone(),
        });
        // Forward to the peers this line has not been sent to yet.
        let targets: Vec<(String, LinkId)> = self
            .active_links()
            .into_iter()
            .filter(|(name, _)| *name != from && *name != origin && !reached.contains(name))
            .collect();
        if targets.is_empty() {
            return;
        }
        let wire = Wire::Msg {
            origin,
            seq,
            text,
            reached: extend_reached(
                reached,
                std::iter::once(self.name.clone()).chain(targets.iter().map(|(n, _)| n.clone())),
            ),
        };
        for (_, to) in targets {
            out.push(Out::Send {
                link: to,
                wire: wire.clone(),
            });
            self.stats.forwarded += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    // --- helpers ---------------------------------------------------------

    fn hello(name: &str, listen: Option<&str>, peers: &[&str]) -> Vec<u8> {
        Wire::Hello {
            version: PROTOCOL_VERSION,
            name: name.into(),
            listen: listen.map(Into::into),
            peers: peers.iter().map(|s| s.to_string()).collect(),
            session: 0,
            next: 0,
        }
        .encode()
        .unwrap()
    }

    fn msg(origin: &str, seq: u64, text: &str) -> Vec<u8> {
        Wire::Msg {
            origin: origin.into(),
            seq,
            text: text.into(),
            reached: vec![],
        }
        .encode()
        .unwrap()
    }

    fn peers_frame(peers: &[&str]) -> Vec<u8> {
        Wire::Peers {
            peers: peers.iter().map(|s| s.to_string()).collect(),
        }
        .encode()
        .unwrap()
    }

    fn refuse_frame(reason: &str) -> Vec<u8> {
        Wire::Refuse {
            reason: reason.into(),
        }
        .encode()
        .unwrap()
    }

    fn duplicate_refusal(from: &str) -> Vec<u8> {
        refuse_frame(&format!("{DUPLICATE_LINK}: {from} keeps another link"))
    }

    fn notices(outs: &[Out]) -> Vec<&str> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Notice(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    fn dials(outs: &[Out]) -> Vec<&str> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Dial { addr } => Some(addr.as_str()),
                _ => None,
            })
            .collect()
    }

    fn sends(outs: &[Out]) -> Vec<(LinkId, &Wire)> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Send { link, wire } => Some((*link, wire)),
                _ => None,
            })
            .collect()
    }

    fn closes(outs: &[Out]) -> Vec<LinkId> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Close { link, .. } => Some(*link),
                _ => None,
            })
            .collect()
    }

    fn delivered(outs: &[Out]) -> Vec<(&str, &str)> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Deliver { from, text } => Some((from.as_str(), text.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The refusal `outs` sent on `link`: notice, Refuse, Close, in that order.
    fn refusal(outs: &[Out], link: LinkId) -> String {
        let [Out::Notice(notice), Out::Send {
            link: sent_on,
            wire: Wire::Refuse { reason },
        }, Out::Close { link: closed, .. }] = outs
        else {
            panic!("not a refusal: {outs:?}")
        };
        assert_eq!((*sent_on, *closed), (link, link));
        assert!(notice.starts_with("refused "), "{notice}");
        assert!(notice.ends_with(reason.as_str()), "{notice}");
        reason.clone()
    }

    /// `me`, with each of `others` (name, listen) linked on links 1, 2, ...
    /// (dialed by `me`).
    fn linked(me: &str, listen: Option<&str>, others: &[(&str, Option<&str>)]) -> Mesh {
        let mut m = Mesh::new(me, listen.map(Into::into));
        for (i, (name, addr)) in others.iter().enumerate() {
            let link = LinkId(i as u64 + 1);
            m.on_link_up(link, true);
            let outs = m.on_frame(link, &hello(name, *addr, &[]));
            assert!(notices(&outs).contains(&format!("{name} joined").as_str()));
        }
        m
    }

    // --- the wire ----------------------------------------------------------

    /// Just the tag of an encoded frame.
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        kind: String,
    }

    fn hello_session(name: &str, listen: &str, session: u64) -> Vec<u8> {
        Wire::Hello {
            version: PROTOCOL_VERSION,
            name: name.into(),
            listen: Some(listen.into()),
            peers: vec![],
            session,
            next: 0,
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn a_linked_name_from_another_session_is_refused_and_the_old_link_asked() {
        let mut ana = Mesh::new("ana", Some("a:1".into())).with_session(1);
        // Its Hello carries the session.
        let outs = ana.on_link_up(LinkId(1), false);
        assert!(matches!(sends(&outs)[0].1, Wire::Hello { session: 1, .. }));
        ana.on_frame(LinkId(1), &hello_session("bea", "b:1", 7));

        // bea restarted (or someone claims to be bea): nothing proves which.
        for (link, claim) in [(2, 8), (3, 0)] {
            ana.on_link_up(LinkId(link), false);
            let outs = ana.on_frame(LinkId(link), &hello_session("bea", "b:1", claim));
            // The old link is asked something, the new one refused.
            assert!(matches!(
                sends(&outs)[..],
                [(LinkId(1), Wire::Peers { .. }), (l, Wire::Refuse { .. })] if l == LinkId(link)
            ));
            assert_eq!(closes(&outs), [LinkId(link)]);
            assert!(
                notices(&outs)[0].contains("from another session"),
                "{outs:?}"
            );
            assert!(!ana.refused("b:1"));
        }
        // The real link is untouched.
        assert_eq!(ana.peers()[0].link, LinkId(1));
        let outs = ana.say("hola");
        assert_eq!(sends(&outs)[0].0, LinkId(1));

        // The old link fails (bea's host did restart): bea left, its address
        // is dialed, and the new bea joins.
        let outs = ana.on_link_down(LinkId(1), "connection reset");
        assert_eq!(notices(&outs), ["bea left (connection reset)"]);
        assert_eq!(dials(&outs), ["b:1"]);
        ana.on_link_up(LinkId(4), true);
        let outs = ana.on_frame(LinkId(4), &hello_session("bea", "b:1", 8));
        assert_eq!(notices(&outs), ["bea joined"]);
    }

    #[test]
    fn the_same_session_twice_is_a_duplicate_link_not_a_restart() {
        let mut ana = Mesh::new("ana", Some("a:1".into())).with_session(1);
        ana.on_link_up(LinkId(1), true);
        ana.on_frame(LinkId(1), &hello_session("bea", "b:1", 7));
        ana.on_link_up(LinkId(2), false);
        let outs = ana.on_frame(LinkId(2), &hello_session("bea", "b:1", 7));
        // The tie-break, not a restart: no close, no notice; ana retires the
        // link bea dialed ("ana" sorts first, so ana's dial is kept).
        assert!(closes(&outs).is_empty(), "{outs:?}");
        assert!(notices(&outs).is_empty(), "{outs:?}");
        assert!(matches!(
            sends(&outs)[..],
            [(LinkId(2), Wire::Refuse { .. })]
        ));
        // A peer that says no session (0) is never taken for a restart.
        let mut cai = Mesh::new("cai", Some("c:1".into()));
        cai.on_link_up(LinkId(1), true);
        cai.on_frame(LinkId(1), &hello_session("bea", "b:1", 0));
        cai.on_link_up(LinkId(2), false);
        let outs = cai.on_frame(LinkId(2), &hello_session("bea", "b:1", 9));
        assert!(closes(&outs).is_empty(), "{outs:?}");
    }

    #[test]
    fn frames_are_maps_tagged_by_type() {
        let frames = [
            Wire::Hello {
                version: 1,
                name: "ana".into(),
                listen: Some("10.0.0.5:7000".into()),
                peers: vec!["10.0.0.6:7000".into()],
                session: 0,
                next: 0,
            },
            Wire::Hello {
                version: 1,
                name: "ana".into(),
                listen: None,
                peers: vec![],
                session: 0,
                next: 0,
            },
            Wire::Refuse {
                reason: "no".into(),
            },
            Wire::Msg {
                origin: "ana".into(),
                seq: u64::MAX,
                text: "hola, ¿qué tal?".into(),
                reached: vec!["ana".into(), "bea".into()],
            },
            Wire::Peers { peers: vec![] },
        ];
        for wire in frames {
            let bytes = wire.encode().unwrap();
            assert_eq!(bytes[0] & 0xf0, 0x80, "a fixmap: {wire:?}");
            assert_eq!(CODEC.decode::<Tag>(&bytes).unwrap().kind, wire.kind());
            assert_eq!(Wire::decode(&bytes).unwrap(), wire);
        }
        let hello = Wire::decode(&hello("ana", None, &[]))
            .unwrap()
            .encode()
            .unwrap();
        assert_eq!(hello[0], 0x85, "type + four fields");
    }

    #[test]
    fn python_shaped_frames_decode() {
        // Key order does not matter, unknown keys are ignored.
        #[derive(Serialize)]
        struct Python<'a> {
            text: &'a str,
            extra: bool,
            seq: u8,
            origin: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
        }
        let bytes = CODEC
            .to_vec(&Python {
                text: "hola",
                extra: true,
                seq: 3,
                origin: "ana",
                kind: "Msg",
            })
            .unwrap();
        assert_eq!(
            Wire::decode(&bytes).unwrap(),
            Wire::Msg {
                origin: "ana".into(),
                seq: 3,
                text: "hola".into(),
                reached: vec![],
            }
        );
        // A Hello with only what is required.
        #[derive(Serialize)]
        struct Bare<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            version: u32,
            name: &'a str,
        }
        let bare = CODEC
            .to_vec(&Bare {
                kind: "Hello",
                version: 1,
                name: "py",
            })
            .unwrap();
        assert_eq!(
            Wire::decode(&bare).unwrap(),
            Wire::Hello {
                version: 1,
                name: "py".into(),
                listen: None,
                peers: vec![],
                session: 0,
                next: 0,
            }
        );
        // An unknown type is an error, not a guess.
        let mut unknown = vec![0x81, 0xa4];
        unknown.extend_from_slice(b"type");
        unknown.push(0xa3);
        unknown.extend_from_slice(b"Bye");
        assert!(Wire::decode(&unknown).is_err());
    }

    // --- names and addresses -----------------------------------------------

    #[test]
    fn peer_names() {
        assert!(valid_peer_name("ana").is_ok());
        assert!(valid_peer_name("año-2").is_ok());
        assert!(valid_peer_name(&"ñ".repeat(32)).is_ok());
        assert_eq!(
            valid_peer_name("").unwrap_err(),
            "a name has at least one character"
        );
        assert_eq!(
            valid_peer_name(&"a".repeat(33)).unwrap_err(),
            "a name has at most 32 characters, this one has 33"
        );
        assert_eq!(
            valid_peer_name("a b").unwrap_err(),
            "character 2 of the name is not allowed (U+0020)"
        );
        assert!(valid_peer_name("a\u{1b}[31m").is_err());
        assert!(valid_peer_name("a\u{a0}").is_err(), "no-break space");
    }

    #[test]
    fn addresses() {
        assert!(valid_addr("10.0.0.5:7000").is_ok());
        assert!(valid_addr("[::1]:7000").is_ok());
        assert!(valid_addr("peer.example:7000").is_ok());
        assert!(valid_addr("").is_err());
        assert!(valid_addr(&"a".repeat(256)).is_err());
        assert!(valid_addr("a b:1").is_err());
        assert!(valid_addr("a\n:1").is_err());
    }

    // --- Hellos and refusals -----------------------------------------------

    #[test]
    fn link_up_sends_hello_with_known_addresses() {
        let mut m = linked("ana", Some("a:1"), &[("bea", Some("b:1")), ("cid", None)]);
        let outs = m.on_link_up(LinkId(9), false);
        assert_eq!(
            outs,
            [Out::Send {
                link: LinkId(9),
                wire: Wire::Hello {
                    version: 1,
                    name: "ana".into(),
                    listen: Some("a:1".into()),
                    peers: vec!["b:1".into()],
                    session: 0,
                    next: 1,
                }
            }]
        );
        // A link id already in use is ignored.
        assert!(m.on_link_up(LinkId(9), true).is_empty());
        assert!(m.on_link_up(LinkId(1), true).is_empty());
    }

    #[test]
    fn hello_exchange_both_directions() {
        for ana_dials in [true, false] {
            let mut ana = Mesh::new("ana", Some("a:1".into()));
            let mut bea = Mesh::new("bea", Some("b:1".into()));
            let (la, lb) = (LinkId(1), LinkId(2));
            let to_bea = ana.on_link_up(la, ana_dials);
            let to_ana = bea.on_link_up(lb, !ana_dials);
            let [(_, hello_a)] = sends(&to_bea)[..] else {
                panic!("{to_bea:?}")
            };
            let [(_, hello_b)] = sends(&to_ana)[..] else {
                panic!("{to_ana:?}")
            };
            assert!(ana.peers().is_empty(), "not before the Hello");

            let at_bea = bea.on_frame(lb, &hello_a.encode().unwrap());
            assert_eq!(at_bea, [Out::Notice("ana joined".into())]);
            let at_ana = ana.on_frame(la, &hello_b.encode().unwrap());
            assert_eq!(at_ana, [Out::Notice("bea joined".into())]);

            assert_eq!(
                ana.peers(),
                [PeerInfo {
                    name: "bea".into(),
                    listen: Some("b:1".into()),
                    link: la
                }]
            );
            assert_eq!(
                bea.peers(),
                [PeerInfo {
                    name: "ana".into(),
                    listen: Some("a:1".into()),
                    link: lb
                }]
            );
        }
    }

    #[test]
    fn wrong_version_is_refused_and_both_sides_report() {
        let mut ana = Mesh::new("ana", Some("a:1".into()));
        ana.on_link_up(LinkId(1), true);
        let v2 = Wire::Hello {
            version: 2,
            name: "bea".into(),
            listen: Some("b:1".into()),
            peers: vec![],
            session: 0,
            next: 0,
        };
        let outs = ana.on_frame(LinkId(1), &v2.encode().unwrap());
        let reason = refusal(&outs, LinkId(1));
        assert_eq!(
            reason,
            "peer speaks protocol version 2; this peer speaks version 1"
        );
        assert_eq!(
            notices(&outs),
            ["refused bea: peer speaks protocol version 2; this peer speaks version 1"]
        );
        assert!(ana.peers().is_empty());
        // Its address is not dialed again, even when gossip mentions it.
        let mut ana = linked("ana", Some("a:1"), &[("cid", None)]);
        ana.on_link_up(LinkId(5), true);
        ana.on_frame(LinkId(5), &v2.encode().unwrap());
        assert!(dials(&ana.on_frame(LinkId(1), &peers_frame(&["b:1"]))).is_empty());

        // The other side (which refuses too, for its own reasons) reports
        // the refusal it receives.
        let mut bea = Mesh::new("bea", Some("b:1".into()));
        bea.on_link_up(LinkId(7), false);
        bea.on_frame(LinkId(7), &hello("ana", Some("a:1"), &[]));
        let outs = bea.on_frame(LinkId(7), &refuse_frame(&reason));
        assert_eq!(
            notices(&outs),
            ["ana refused the link: peer speaks protocol version 2; this peer speaks version 1"]
        );
        assert_eq!(closes(&outs), [LinkId(7)]);
        assert!(bea.peers().is_empty());
        assert!(
            dials(&bea.on_link_down(LinkId(7), "closed")).is_empty(),
            "a refused link is not redialed"
        );
        // A refusal before any Hello is reported too.
        bea.on_link_up(LinkId(8), true);
        let outs = bea.on_frame(LinkId(8), &refuse_frame("too many peers"));
        assert_eq!(notices(&outs), ["link 8 refused: too many peers"]);
        assert_eq!(closes(&outs), [LinkId(8)]);
    }

    #[test]
    fn bad_names_are_refused_with_reasons() {
        for (name, expected) in [
            ("", "peer name \"\" is not valid: a name has at least one character"),
            (
                "a b",
                "peer name \"a b\" is not valid: character 2 of the name is not allowed (U+0020)",
            ),
            (
                "x\u{7}",
                "peer name \"x\\u{7}\" is not valid: character 2 of the name is not allowed (U+0007)",
            ),
        ] {
            let mut m = Mesh::new("ana", None);
            m.on_link_up(LinkId(1), false);
            let outs = m.on_frame(LinkId(1), &hello(name, None, &[]));
            assert_eq!(refusal(&outs, LinkId(1)), expected);
            assert_eq!(notices(&outs), [format!("refused link 1: {expected}")]);
        }
        let mut m = Mesh::new("ana", None);
        m.on_link_up(LinkId(1), false);
        let long = "n".repeat(100);
        let reason = refusal(&m.on_frame(LinkId(1), &hello(&long, None, &[])), LinkId(1));
        assert!(reason.contains("this one has 100"), "{reason}");
        assert!(reason.len() < 200, "the name is cut: {reason}");

        let mut m = Mesh::new("ana", None);
        m.on_link_up(LinkId(1), false);
        let outs = m.on_frame(LinkId(1), &hello("bea", Some("b 1"), &[]));
        assert!(refusal(&outs, LinkId(1)).starts_with("listen address \"b 1\" is not valid"));
    }

    #[test]
    fn our_own_name_is_refused() {
        // ana dialed her own address: both ends of the connection are hers.
        let mut ana = Mesh::new("ana", Some("a:1".into()));
        let mut to_self = ana.on_link_up(LinkId(1), true);
        to_self.extend(ana.on_link_up(LinkId(2), false));
        let [(_, hello1), (_, hello2)] = sends(&to_self)[..] else {
            panic!()
        };
        let (hello1, hello2) = (hello1.encode().unwrap(), hello2.encode().unwrap());
        for (link, frame) in [(LinkId(2), hello1), (LinkId(1), hello2)] {
            let outs = ana.on_frame(link, &frame);
            assert_eq!(
                refusal(&outs, link),
                "peer name \"ana\": that is our own name"
            );
        }
        assert!(ana.peers().is_empty());
        assert!(ana.links.is_empty());
        // An address that turned out to be a namesake is not dialed again.
        let mut ana = linked("ana", None, &[("bea", None)]);
        ana.on_link_up(LinkId(5), true);
        ana.on_frame(LinkId(5), &hello("ana", Some("x:1"), &[]));
        assert!(dials(&ana.on_frame(LinkId(1), &peers_frame(&["x:1"]))).is_empty());
    }

    #[test]
    fn frames_out_of_place_are_refused() {
        let mut m = Mesh::new("ana", None);
        m.on_link_up(LinkId(1), false);
        let outs = m.on_frame(LinkId(1), &msg("bea", 1, "hola"));
        assert_eq!(refusal(&outs, LinkId(1)), "expected Hello first, got Msg");

        m.on_link_up(LinkId(2), false);
        let outs = m.on_frame(LinkId(2), &peers_frame(&[]));
        assert_eq!(refusal(&outs, LinkId(2)), "expected Hello first, got Peers");

        let mut m = linked("ana", None, &[("bea", None)]);
        let outs = m.on_frame(LinkId(1), &hello("bea", None, &[]));
        assert_eq!(refusal(&outs, LinkId(1)), "a second Hello on one link");
        assert_eq!(notices(&outs), ["refused bea: a second Hello on one link"]);
        assert!(m.peers().is_empty());
        // Frames on a link the mesh forgot are ignored.
        assert!(m.on_frame(LinkId(1), &msg("bea", 1, "x")).is_empty());
        assert!(m.on_frame(LinkId(99), &[0xc1]).is_empty());
        assert!(m.on_link_down(LinkId(1), "closed").is_empty());
    }

    #[test]
    fn bad_messagepack_is_refused() {
        let mut m = Mesh::new("ana", None);
        m.on_link_up(LinkId(1), false);
        let outs = m.on_frame(LinkId(1), &[0xc1]);
        let reason = refusal(&outs, LinkId(1));
        assert!(
            reason.starts_with("msgpack decode failed on a 1-byte payload"),
            "{reason}"
        );
        assert!(notices(&outs)[0].starts_with("refused link 1: msgpack decode failed"));

        // After the Hello too, and the notice names the peer.
        let mut m = linked("ana", None, &[("bea", None)]);
        let outs = m.on_frame(LinkId(1), b"hola");
        assert!(refusal(&outs, LinkId(1)).starts_with("msgpack decode failed"));
        assert!(notices(&outs)[0].starts_with("refused bea: msgpack"));
        assert!(m.peers().is_empty());
        // A map that is not a frame (no type) is refused the same way.
        let mut m = linked("ana", None, &[("bea", None)]);
        let outs = m.on_frame(
            LinkId(1),
            &CODEC.to_vec(&Wire::Peers { peers: vec![] }).unwrap()[..1],
        );
        assert!(refusal(&outs, LinkId(1)).starts_with("msgpack decode failed"));
    }

    #[test]
    fn bad_msgs_are_refused() {
        for (frame, expected) in [
            (msg("a b", 1, "x"), "Msg origin \"a b\" is not valid"),
            (
                msg("cid", 0, "x"),
                "Msg from cid numbered 0; numbers start at 1",
            ),
            (
                msg("cid", 1, &"x".repeat(MAX_TEXT + 1)),
                "Msg of 4097 bytes exceeds the limit of 4096",
            ),
        ] {
            let mut m = linked("ana", None, &[("bea", None)]);
            let reason = refusal(&m.on_frame(LinkId(1), &frame), LinkId(1));
            assert!(reason.starts_with(expected), "{reason}");
        }
        let mut m = linked("ana", None, &[("bea", None)]);
        let outs = m.on_frame(LinkId(1), &msg("cid", 1, &"x".repeat(MAX_TEXT)));
        assert_eq!(delivered(&outs).len(), 1, "exactly the limit is fine");
    }

    #[test]
    fn a_name_taken_from_another_address_is_refused() {
        let mut m = linked("ana", None, &[("bea", Some("b:1"))]);
        m.on_link_up(LinkId(2), false);
        let outs = m.on_frame(LinkId(2), &hello("bea", Some("b:2"), &[]));
        assert_eq!(
            refusal(&outs, LinkId(2)),
            "the name \"bea\" is already used by the peer at b:1"
        );
        assert_eq!(m.peers().len(), 1);
        assert_eq!(m.peers()[0].link, LinkId(1));
        assert!(
            dials(&m.on_frame(LinkId(1), &peers_frame(&["b:2"]))).is_empty(),
            "the impostor's address is not dialed"
        );
    }

    // --- the tie-break -------------------------------------------------------

    /// `me` has two links to `them`: link 1 dialed, link 2 accepted. Hellos
    /// arrive on the dialed link first or not; returns the link `me` keeps
    /// once the refusals have crossed.
    fn keeps(me: &str, them: &str, dialed_first: bool) -> LinkId {
        let mut m = Mesh::new(me, None);
        m.on_link_up(LinkId(1), true);
        m.on_link_up(LinkId(2), false);
        let (first, second) = if dialed_first {
            (LinkId(1), LinkId(2))
        } else {
            (LinkId(2), LinkId(1))
        };
        let outs = m.on_frame(first, &hello(them, None, &[]));
        assert_eq!(outs, [Out::Notice(format!("{them} joined"))]);
        let outs = m.on_frame(second, &hello(them, None, &[]));
        // One duplicate-link refusal on the loser; nothing closed yet, no notice.
        let [Out::Send {
            link: loser,
            wire: Wire::Refuse { reason },
        }] = &outs[..]
        else {
            panic!("{outs:?}")
        };
        assert!(reason.starts_with(DUPLICATE_LINK), "{reason}");
        let kept = m.peers()[0].link;
        assert_ne!(kept, *loser);
        // Lines still arriving on the loser are read.
        let outs = m.on_frame(*loser, &msg(them, 1, "late"));
        assert_eq!(delivered(&outs), [(them, "late")]);
        // The other side's refusal crosses ours: now the loser closes.
        let outs = m.on_frame(*loser, &duplicate_refusal(them));
        assert_eq!(closes(&outs), [*loser]);
        assert_eq!(outs.len(), 1);
        assert!(m.on_link_down(*loser, "closed").is_empty(), "no 'left'");
        assert_eq!(m.peers().len(), 1);
        assert_eq!(m.peers()[0].link, kept);
        assert_eq!(m.links.len(), 1);
        kept
    }

    #[test]
    fn simultaneous_dials_keep_the_same_connection_on_both_sides() {
        // Two physical connections between a and b: P, dialed by a (link 1 at
        // a, link 2 at b), and Q, dialed by b (link 2 at a, link 1 at b).
        fn connection(at_a: bool, link: LinkId) -> char {
            match (at_a, link) {
                (true, LinkId(1)) | (false, LinkId(2)) => 'P',
                _ => 'Q',
            }
        }
        for (a, b) in [("ana", "bea"), ("zoe", "bea")] {
            let expected = if a < b { 'P' } else { 'Q' };
            for a_dialed_first in [true, false] {
                for b_dialed_first in [true, false] {
                    let at_a = connection(true, keeps(a, b, a_dialed_first));
                    let at_b = connection(false, keeps(b, a, b_dialed_first));
                    assert_eq!((at_a, at_b), (expected, expected), "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn a_refusal_that_comes_before_our_decision_waits_for_the_kept_link() {
        // bea < zoe: the link bea dialed (accepted at zoe, link 2) is kept.
        let mut zoe = Mesh::new("zoe", None);
        zoe.on_link_up(LinkId(1), true);
        zoe.on_link_up(LinkId(2), false);
        zoe.on_frame(LinkId(1), &hello("bea", None, &[]));
        // bea retired link 1 before zoe saw the Hello on link 2: zoe keeps
        // using link 1 meanwhile.
        assert!(zoe
            .on_frame(LinkId(1), &duplicate_refusal("bea"))
            .is_empty());
        assert_eq!(zoe.peers()[0].link, LinkId(1));
        let said = zoe.say("still here");
        assert_eq!(sends(&said)[0].0, LinkId(1));
        // The kept link says Hello: zoe retires link 1 and closes it at once.
        let outs = zoe.on_frame(LinkId(2), &hello("bea", None, &[]));
        assert!(
            matches!(
                &outs[..],
                [
                    Out::Send {
                        link: LinkId(1),
                        wire: Wire::Refuse { .. }
                    },
                    Out::Close {
                        link: LinkId(1),
                        ..
                    }
                ]
            ),
            "{outs:?}"
        );
        assert_eq!(zoe.peers()[0].link, LinkId(2));
        assert_eq!(sends(&zoe.say("now here"))[0].0, LinkId(2));
    }

    #[test]
    fn when_the_kept_link_dies_the_retired_ones_close_and_the_peer_left() {
        let mut ana = Mesh::new("ana", None);
        ana.on_link_up(LinkId(1), true);
        ana.on_link_up(LinkId(2), false);
        ana.on_frame(LinkId(1), &hello("bea", Some("b:1"), &[]));
        let outs = ana.on_frame(LinkId(2), &hello("bea", Some("b:1"), &[]));
        assert_eq!(sends(&outs)[0].0, LinkId(2), "link 2 is retired");
        let outs = ana.on_link_down(LinkId(1), "connection reset");
        assert_eq!(
            outs,
            [
                Out::Close {
                    link: LinkId(2),
                    reason: "duplicate link to bea, whose other link is gone".into()
                },
                Out::Notice("bea left (connection reset)".into()),
                Out::Dial { addr: "b:1".into() },
            ]
        );
        assert!(ana.peers().is_empty());
        assert!(ana.links.is_empty());
    }

    // --- delivery ------------------------------------------------------------

    #[test]
    fn window_rules() {
        let mut w = Window::default();
        assert_eq!(w.accept(1), Seen::New);
        assert_eq!(w.accept(1), Seen::Old);
        assert_eq!(w.accept(3), Seen::New);
        assert_eq!((w.mark, w.above.len()), (1, 1));
        assert_eq!(w.accept(3), Seen::Old);
        assert_eq!(w.accept(2), Seen::New);
        assert_eq!((w.mark, w.above.len()), (3, 0), "the hole filled");

        // Far ahead: the mark jumps, the skipped numbers count as seen.
        assert_eq!(w.accept(3 + WINDOW), Seen::New, "just inside");
        assert_eq!(w.accept(4 + WINDOW + WINDOW), Seen::Gap);
        assert_eq!((w.mark, w.above.len()), (4 + 2 * WINDOW, 0));
        assert_eq!(w.accept(10), Seen::Old);
        assert_eq!(w.accept(3 + WINDOW), Seen::Old);

        // The set never holds more than WINDOW numbers.
        let mut w = Window::default();
        for seq in (2..=WINDOW).rev() {
            assert_eq!(w.accept(seq), Seen::New);
        }
        assert_eq!(w.above.len() as u64, WINDOW - 1);
        assert_eq!(w.accept(WINDOW + 1), Seen::Gap, "1 never came");
        assert!(w.above.is_empty());
        assert_eq!(w.accept(1), Seen::Old);

        // A first number far above 1 (a clock-numbered origin) is no gap.
        let mut w = Window::default();
        assert_eq!(w.accept(1_700_000_000_000_000), Seen::New);
        assert_eq!(w.accept(1_700_000_000_000_002), Seen::New);
        assert_eq!(w.accept(1_700_000_000_000_001), Seen::New);
        assert_eq!(w.mark, 1_700_000_000_000_002);

        // The top of the range.
        let mut w = Window::default();
        assert_eq!(w.accept(u64::MAX), Seen::New);
        assert_eq!(w.accept(u64::MAX), Seen::Old);
        assert_eq!(w.accept(u64::MAX - 1), Seen::Old);
    }

    #[test]
    fn out_of_order_copies_through_a_triangle_are_delivered_once() {
        // cid is linked to dan (link 1) and bea (link 2), not to ana; ana
        // says 1, 2, 3 and both forward them, so each arrives twice, in no
        // particular order. (A linked origin's own lines come from it, and
        // no honest peer forwards a copy to a peer the sayer reached.)
        let mut cid = linked("cid", None, &[("dan", None), ("bea", None)]);
        let arrivals = [
            (LinkId(2), 3),
            (LinkId(1), 1),
            (LinkId(2), 1),
            (LinkId(1), 3),
            (LinkId(1), 2),
            (LinkId(2), 2),
        ];
        let mut got = Vec::new();
        let mut forwards = Vec::new();
        for (link, seq) in arrivals {
            let outs = cid.on_frame(link, &msg("ana", seq, &format!("line {seq}")));
            got.extend(
                delivered(&outs)
                    .into_iter()
                    .map(|(f, t)| (f.to_string(), t.to_string())),
            );
            forwards.extend(sends(&outs).into_iter().map(|(l, w)| (l, w.clone())));
        }
        assert_eq!(
            got,
            [
                ("ana".to_string(), "line 3".to_string()),
                ("ana".into(), "line 1".into()),
                ("ana".into(), "line 2".into())
            ]
        );
        // Forwarded only when first seen, never back to where it came from:
        // line 3 came first from bea, so dan gets it; 1 and 2 go to bea.
        let forwarded: Vec<(LinkId, u64)> = forwards
            .iter()
            .map(|(l, w)| match w {
                Wire::Msg { seq, .. } => (*l, *seq),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(forwarded, [(LinkId(1), 3), (LinkId(2), 1), (LinkId(2), 2)]);
        let stats = cid.stats();
        assert_eq!(
            (
                stats.delivered,
                stats.duplicates,
                stats.forwarded,
                stats.gaps
            ),
            (3, 3, 3, 0)
        );
    }

    #[test]
    fn a_line_is_not_forwarded_to_peers_it_already_reached() {
        // ana is linked to bea and cid, who are linked to each other too.
        let mut bea = linked("bea", None, &[("ana", None), ("cid", None)]);
        let full = Wire::Msg {
            origin: "ana".into(),
            seq: 1,
            text: "hola".into(),
            reached: vec!["ana".into(), "bea".into(), "cid".into()],
        }
        .encode()
        .unwrap();
        let outs = bea.on_frame(LinkId(1), &full);
        assert!(sends(&outs).is_empty(), "{outs:?}");
        assert_eq!(bea.stats().delivered, 1);
        // The same line from a sayer that did not reach cid: bea forwards it,
        // adding itself and cid to the list.
        let partial = Wire::Msg {
            origin: "ana".into(),
            seq: 2,
            text: "chao".into(),
            reached: vec!["ana".into(), "bea".into()],
        }
        .encode()
        .unwrap();
        let outs = bea.on_frame(LinkId(1), &partial);
        assert_eq!(
            sends(&outs),
            [(
                LinkId(2),
                &Wire::Msg {
                    origin: "ana".into(),
                    seq: 2,
                    text: "chao".into(),
                    reached: vec!["ana".into(), "bea".into(), "cid".into()],
                }
            )]
        );
    }

    #[test]
    fn say_numbers_lines_and_sends_one_copy_per_peer() {
        let mut m = linked("ana", None, &[("bea", None), ("cid", None)]);
        let outs = m.say("hola");
        assert_eq!(
            sends(&outs),
            [
                (
                    LinkId(1),
                    &Wire::Msg {
                        origin: "ana".into(),
                        seq: 1,
                        text: "hola".into(),
                        reached: vec!["ana".into(), "bea".into(), "cid".into()],
                    }
                ),
                (
                    LinkId(2),
                    &Wire::Msg {
                        origin: "ana".into(),
                        seq: 1,
                        text: "hola".into(),
                        reached: vec!["ana".into(), "bea".into(), "cid".into()],
                    }
                ),
            ]
        );
        let outs = m.say("chao");
        assert!(matches!(sends(&outs)[0].1, Wire::Msg { seq: 2, .. }));
        let outs = m.say(&"x".repeat(MAX_TEXT + 1));
        assert_eq!(
            outs,
            [Out::Notice(
                "not sent: a line has at most 4096 bytes, this one has 4097".into()
            )]
        );
        assert_eq!(m.stats().said, 2);
        // Our own lines coming back are dropped.
        assert!(m.on_frame(LinkId(1), &msg("ana", 1, "hola")).is_empty());
        assert_eq!(m.stats().duplicates, 1);
        // Alone, a line goes nowhere.
        assert!(Mesh::new("eva", None).say("¿hay alguien?").is_empty());
    }

    #[test]
    fn a_restarted_peer_needs_fresh_numbers() {
        let mut bea = linked("bea", None, &[("ana", None)]);
        for seq in 1..=5 {
            assert_eq!(
                delivered(&bea.on_frame(LinkId(1), &msg("ana", seq, "x"))).len(),
                1
            );
        }
        // ana restarts numbering from 1: her new lines look like copies.
        assert!(delivered(&bea.on_frame(LinkId(1), &msg("ana", 1, "new"))).is_empty());
        // ana restarts from the clock instead: delivered, one gap counted.
        let mut ana = Mesh::new("ana", None).with_first_seq(1_700_000_000_000_000);
        ana.on_link_up(LinkId(3), true);
        ana.on_frame(LinkId(3), &hello("bea", None, &[]));
        let outs = ana.say("back");
        let (_, wire) = sends(&outs)[0];
        let got = bea.on_frame(LinkId(1), &wire.encode().unwrap());
        assert_eq!(delivered(&got), [("ana", "back")]);
        assert_eq!(bea.stats().gaps, 1);
        assert!(matches!(
            sends(&ana.say("again"))[0].1,
            Wire::Msg {
                seq: 1_700_000_000_000_001,
                ..
            }
        ));
        assert!(matches!(
            sends(&Mesh::new("x", None).with_first_seq(0).tap_link().say("a"))[0].1,
            Wire::Msg { seq: 1, .. }
        ));
    }

    impl Mesh {
        /// This mesh with one peer linked, for one-liners.
        fn tap_link(mut self) -> Mesh {
            self.on_link_up(LinkId(1), true);
            self.on_frame(LinkId(1), &hello("tap", None, &[]));
            self
        }
    }

    #[test]
    fn origins_are_bounded_and_the_least_recently_heard_is_forgotten() {
        let mut m = linked("ana", None, &[("bea", None), ("cid", None)]);
        // cid is linked and heard first: its numbers are kept however many
        // origins come after it.
        m.on_frame(LinkId(2), &msg("cid", 1, "x"));
        for i in 0..MAX_ORIGINS + 10 {
            m.on_frame(LinkId(1), &msg(&format!("o{i}"), 1, "x"));
        }
        assert_eq!(m.origins.len(), MAX_ORIGINS);
        assert_eq!(m.stats().evicted, 11);
        assert_eq!(m.stats().delivered, MAX_ORIGINS as u64 + 11);
        // A newcomer is heard.
        let late = m.on_frame(LinkId(1), &msg("late", 1, "x"));
        assert_eq!(delivered(&late), [("late", "x")]);
        // cid is remembered: its line 1 again is a copy.
        assert!(delivered(&m.on_frame(LinkId(2), &msg("cid", 1, "x"))).is_empty());
        // Recently heard origins too.
        let o = format!("o{}", MAX_ORIGINS + 9);
        assert!(delivered(&m.on_frame(LinkId(1), &msg(&o, 1, "x"))).is_empty());
        // The price: o0, forgotten, is new again.
        assert_eq!(
            delivered(&m.on_frame(LinkId(1), &msg("o0", 1, "x"))).len(),
            1
        );
    }

    fn hello_next(name: &str, listen: Option<&str>, next: u64) -> Vec<u8> {
        Wire::Hello {
            version: PROTOCOL_VERSION,
            name: name.into(),
            listen: listen.map(Into::into),
            peers: vec![],
            session: 0,
            next,
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn a_line_passed_on_in_a_linked_peers_name_may_not_run_past_it() {
        // ana is linked to bea (next line 1000) and to zed.
        let mut ana = Mesh::new("ana", None);
        ana.on_link_up(LinkId(1), true);
        ana.on_frame(LinkId(1), &hello_next("bea", None, 1000));
        ana.on_link_up(LinkId(2), true);
        ana.on_frame(LinkId(2), &hello_next("zed", None, 1));
        // zed passes on a "line of bea" numbered near 2^64: dropped.
        let outs = ana.on_frame(LinkId(2), &msg("bea", u64::MAX - 1, "forged"));
        assert!(delivered(&outs).is_empty());
        assert_eq!(ana.stats().forged, 1);
        assert!(
            matches!(&outs[..], [Out::Warn(w)] if w.contains("limit 64")),
            "{outs:?}"
        );
        // ... and one just past the limit.
        let outs = ana.on_frame(LinkId(2), &msg("bea", 999 + MAX_AHEAD + 1, "forged"));
        assert!(delivered(&outs).is_empty());
        // Within it, it is taken (bea may have said it before it knew ana)...
        let outs = ana.on_frame(LinkId(2), &msg("bea", 1000, "forged"));
        assert_eq!(delivered(&outs), [("bea", "forged")]);
        // ... but bea's own line 1000, from bea, is delivered all the same.
        let outs = ana.on_frame(LinkId(1), &msg("bea", 1000, "real"));
        assert_eq!(delivered(&outs), [("bea", "real")]);
        assert_eq!(ana.stats().overridden, 1);
        // Once only.
        assert!(delivered(&ana.on_frame(LinkId(1), &msg("bea", 1000, "real"))).is_empty());
        assert!(delivered(&ana.on_frame(LinkId(2), &msg("bea", 1000, "x"))).is_empty());
        // bea's next lines, and its earlier ones passed on, get through.
        assert_eq!(
            delivered(&ana.on_frame(LinkId(1), &msg("bea", 1001, "a"))).len(),
            1
        );
        assert_eq!(
            delivered(&ana.on_frame(LinkId(2), &msg("bea", 998, "b"))).len(),
            1
        );
        // A full list of peers reached, ahead of bea: dropped.
        let full: Vec<String> = (0..MAX_REACHED).map(|i| format!("p{i}")).collect();
        let wire = Wire::Msg {
            origin: "bea".into(),
            seq: 1002,
            text: "x".into(),
            reached: full,
        };
        assert!(delivered(&ana.on_frame(LinkId(2), &wire.encode().unwrap())).is_empty());
        // Origins that are not linked are taken as they come.
        assert_eq!(
            delivered(&ana.on_frame(LinkId(2), &msg("eva", u64::MAX, "e"))).len(),
            1
        );
    }

    #[test]
    fn a_hello_forgets_numbers_its_sender_has_not_used() {
        let mut ana = linked("ana", None, &[("zed", None)]);
        // Before bea links, zed passes on lines in its name, one near 2^64.
        for seq in [5, 6, u64::MAX - 1] {
            ana.on_frame(LinkId(1), &msg("bea", seq, "x"));
        }
        // bea links saying its next line is 7: 5 and 6 stay seen, the rest is forgotten.
        ana.on_link_up(LinkId(2), true);
        ana.on_frame(LinkId(2), &hello_next("bea", None, 7));
        // Every number from 7 up to the forged one is taken back as unseen.
        assert_eq!(ana.stats().rewound, u64::MAX - 1 - 6);
        assert!(delivered(&ana.on_frame(LinkId(2), &msg("bea", 6, "x"))).is_empty());
        assert_eq!(
            delivered(&ana.on_frame(LinkId(2), &msg("bea", 7, "real"))),
            [("bea", "real")]
        );
    }

    #[test]
    fn gossip_dials_a_bounded_number_of_addresses() {
        let mut ana = linked("ana", None, &[("zed", None)]);
        let mut asked = Vec::new();
        for frame in 0..16 {
            let addrs: Vec<String> = (0..MAX_GOSSIP).map(|i| format!("h{frame}:{i}")).collect();
            let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
            let outs = ana.on_frame(LinkId(1), &peers_frame(&addrs));
            asked.extend(dials(&outs).into_iter().map(String::from));
        }
        assert_eq!(asked.len(), MAX_DIALING);
        assert_eq!(ana.waiting.len(), MAX_WAITING);
        assert_eq!(
            ana.stats().addrs_dropped,
            (16 * MAX_GOSSIP - MAX_DIALING - MAX_WAITING) as u64
        );
        // Each failure forgets its address and dials a waiting one.
        let mut total = asked.len();
        while let Some(addr) = asked.pop() {
            let outs = ana.dial_failed(&addr);
            asked.extend(dials(&outs).into_iter().map(String::from));
            total += dials(&outs).len();
            assert!(ana.dialing.len() <= MAX_DIALING);
        }
        assert_eq!(total, MAX_DIALING + MAX_WAITING);
        assert!(ana.dialing.is_empty() && ana.waiting.is_empty());
        // Forgotten: learned again, dialed again.
        assert_eq!(
            dials(&ana.on_frame(LinkId(1), &peers_frame(&["h0:0"]))),
            ["h0:0"]
        );
    }

    // --- addresses, gossip, departures -------------------------------------

    #[test]
    fn a_late_joiner_dials_the_others_and_they_hear_of_it() {
        // dan dials ana, who knows bea and cid.
        let mut dan = Mesh::new("dan", Some("d:1".into()));
        dan.on_link_up(LinkId(1), true);
        let outs = dan.on_frame(
            LinkId(1),
            &hello("ana", Some("a:1"), &["b:1", "c:1", "d:1"]),
        );
        assert_eq!(notices(&outs), ["ana joined"]);
        assert_eq!(dials(&outs), ["b:1", "c:1"], "not itself, not ana");
        assert!(sends(&outs).is_empty(), "no one else to tell");

        // ana's side: the newcomer's address is news for bea and cid.
        let mut ana = linked(
            "ana",
            Some("a:1"),
            &[("bea", Some("b:1")), ("cid", Some("c:1"))],
        );
        ana.on_link_up(LinkId(3), false);
        let outs = ana.on_frame(LinkId(3), &hello("dan", Some("d:1"), &[]));
        assert_eq!(notices(&outs), ["dan joined"]);
        assert!(dials(&outs).is_empty());
        let gossip = Wire::Peers {
            peers: vec!["b:1".into(), "c:1".into(), "d:1".into()],
        };
        assert_eq!(sends(&outs), [(LinkId(1), &gossip), (LinkId(2), &gossip)]);

        // bea hears it from ana: dials dan, passes the news to cid only.
        let mut bea = linked(
            "bea",
            Some("b:1"),
            &[("ana", Some("a:1")), ("cid", Some("c:1"))],
        );
        let outs = bea.on_frame(LinkId(1), &gossip.encode().unwrap());
        assert_eq!(dials(&outs), ["d:1"]);
        let onward: Vec<LinkId> = sends(&outs).iter().map(|(l, _)| *l).collect();
        assert_eq!(onward, [LinkId(2)]);
        // The same news again is no news: no dial, no gossip.
        assert!(bea
            .on_frame(LinkId(2), &gossip.encode().unwrap())
            .is_empty());
        // When the dial fails for good, the address may be learned again.
        bea.dial_failed("d:1");
        assert_eq!(
            dials(&bea.on_frame(LinkId(2), &gossip.encode().unwrap())),
            ["d:1"]
        );
        // Bad or surplus addresses in gossip are skipped.
        let mut many: Vec<String> = vec!["bad addr".into(), String::new()];
        many.extend((0..100).map(|i| format!("x:{i}")));
        let outs = bea.on_frame(LinkId(1), &Wire::Peers { peers: many }.encode().unwrap());
        // At most MAX_DIALING at once (d:1 is one); the rest wait.
        assert_eq!(dials(&outs).len(), MAX_DIALING - 1);
        assert_eq!(bea.waiting.len(), MAX_GOSSIP - 2 - (MAX_DIALING - 1));
        for (_, wire) in sends(&outs) {
            let Wire::Peers { peers } = wire else {
                panic!()
            };
            // Linked peers and the addresses being dialed.
            assert_eq!(peers.len(), 2 + MAX_DIALING);
        }
    }

    #[test]
    fn link_down_redials_a_known_address() {
        let mut ana = linked("ana", Some("a:1"), &[("bea", Some("b:1")), ("cid", None)]);
        let outs = ana.on_link_down(LinkId(1), "connection reset");
        assert_eq!(
            outs,
            [
                Out::Notice("bea left (connection reset)".into()),
                Out::Dial { addr: "b:1".into() }
            ]
        );
        // While that dial is pending, gossip does not ask for it again.
        assert!(dials(&ana.on_frame(LinkId(2), &peers_frame(&["b:1"]))).is_empty());
        // No address, no redial.
        assert_eq!(
            ana.on_link_down(LinkId(2), "idle"),
            [Out::Notice("cid left (idle)".into())]
        );
        // A link that never said Hello leaves quietly.
        ana.on_link_up(LinkId(3), true);
        assert!(ana.on_link_down(LinkId(3), "refused").is_empty());
        // The redial succeeds: bea is back, the address is no longer pending.
        ana.on_link_up(LinkId(4), true);
        let outs = ana.on_frame(LinkId(4), &hello("bea", Some("b:1"), &[]));
        assert_eq!(notices(&outs), ["bea joined"]);
        assert!(ana.dialing.is_empty());
        assert_eq!(
            ana.on_link_down(LinkId(4), "bye"),
            [
                Out::Notice("bea left (bye)".into()),
                Out::Dial { addr: "b:1".into() }
            ]
        );
    }

    // --- an in-memory network ------------------------------------------------

    #[derive(Debug)]
    enum Ev {
        Connect {
            from: usize,
            addr: String,
        },
        Frame {
            conn: usize,
            to: usize,
            bytes: Vec<u8>,
        },
        Eof {
            conn: usize,
            to: usize,
        },
    }

    struct Conn {
        /// (node, its link id) at each end; end 0 dialed.
        ends: [(usize, LinkId); 2],
        /// Closed by that end's node (or seen closed by it).
        closed: [bool; 2],
    }

    /// Meshes joined by simulated TCP connections: each direction is a FIFO;
    /// with seed 0 all events happen in the order they were queued, otherwise
    /// a seeded generator picks which connection moves next.
    struct Net {
        nodes: Vec<Mesh>,
        next_link: Vec<u64>,
        conns: Vec<Conn>,
        ends: HashMap<(usize, LinkId), (usize, usize)>,
        pending: Vec<Ev>,
        got: Vec<Vec<(String, String)>>,
        notices: Vec<Vec<String>>,
        rng: u64,
    }

    impl Net {
        fn new(specs: &[(&str, Option<&str>)], seed: u64) -> Net {
            Net {
                nodes: specs
                    .iter()
                    .map(|(n, l)| Mesh::new(*n, l.map(Into::into)))
                    .collect(),
                next_link: vec![0; specs.len()],
                conns: Vec::new(),
                ends: HashMap::new(),
                pending: Vec::new(),
                got: vec![Vec::new(); specs.len()],
                notices: vec![Vec::new(); specs.len()],
                rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            }
        }

        fn index(&self, name: &str) -> usize {
            self.nodes.iter().position(|m| m.name() == name).unwrap()
        }

        /// Connect now: both ends are up before any frame moves.
        fn connect(&mut self, from: usize, to: usize) -> usize {
            let conn = self.conns.len();
            // Link ids differ between nodes, so a mix-up cannot pass unseen.
            let mut fresh = |node: usize| {
                self.next_link[node] += 1;
                LinkId(1000 * (node as u64 + 1) + self.next_link[node])
            };
            let (a, b) = (fresh(from), fresh(to));
            self.conns.push(Conn {
                ends: [(from, a), (to, b)],
                closed: [false; 2],
            });
            self.ends.insert((from, a), (conn, 0));
            self.ends.insert((to, b), (conn, 1));
            let outs = self.nodes[from].on_link_up(a, true);
            self.handle(from, outs);
            let outs = self.nodes[to].on_link_up(b, false);
            self.handle(to, outs);
            conn
        }

        /// Dial later, as a queued event.
        fn dial(&mut self, from: usize, addr: &str) {
            self.pending.push(Ev::Connect {
                from,
                addr: addr.into(),
            });
        }

        /// `node` says `text`; returns the names it was linked to then.
        fn say(&mut self, node: usize, text: &str) -> Vec<String> {
            let linked = self.nodes[node]
                .peers()
                .into_iter()
                .map(|p| p.name)
                .collect();
            let outs = self.nodes[node].say(text);
            self.handle(node, outs);
            linked
        }

        fn random(&mut self) -> u64 {
            let mut x = self.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng = x;
            x
        }

        fn step(&mut self) -> bool {
            if self.pending.is_empty() {
                return false;
            }
            let at = if self.rng == 0 {
                0
            } else {
                // The first pending event of each connection direction.
                let mut seen = HashSet::new();
                let heads: Vec<usize> = (0..self.pending.len())
                    .filter(|&i| {
                        seen.insert(match &self.pending[i] {
                            Ev::Connect { .. } => (usize::MAX, i),
                            Ev::Frame { conn, to, .. } | Ev::Eof { conn, to } => (*conn, *to),
                        })
                    })
                    .collect();
                heads[(self.random() % heads.len() as u64) as usize]
            };
            match self.pending.remove(at) {
                Ev::Connect { from, addr } => {
                    match self.nodes.iter().position(|m| m.listen() == Some(&addr)) {
                        Some(to) => {
                            self.connect(from, to);
                        }
                        None => {
                            let outs = self.nodes[from].dial_failed(&addr);
                            self.handle(from, outs);
                        }
                    }
                }
                Ev::Frame { conn, to, bytes } => {
                    if !self.conns[conn].closed[to] {
                        let (node, link) = self.conns[conn].ends[to];
                        assert!(bytes.len() <= MAX_FRAME);
                        let outs = self.nodes[node].on_frame(link, &bytes);
                        self.handle(node, outs);
                    }
                }
                Ev::Eof { conn, to } => {
                    if !self.conns[conn].closed[to] {
                        self.conns[conn].closed[to] = true;
                        let (node, link) = self.conns[conn].ends[to];
                        let outs = self.nodes[node].on_link_down(link, "closed by peer");
                        self.handle(node, outs);
                    }
                }
            }
            true
        }

        fn run(&mut self) {
            let mut steps = 0;
            while self.step() {
                steps += 1;
                assert!(steps < 1_000_000, "the network never settles");
            }
        }

        fn handle(&mut self, node: usize, outs: Vec<Out>) {
            for out in outs {
                match out {
                    Out::Send { link, wire } => {
                        let (conn, end) = self.ends[&(node, link)];
                        assert!(
                            !self.conns[conn].closed[end],
                            "{} sent {wire:?} on closed {link}",
                            self.nodes[node].name()
                        );
                        self.pending.push(Ev::Frame {
                            conn,
                            to: 1 - end,
                            bytes: wire.encode().unwrap(),
                        });
                    }
                    Out::Close { link, .. } => {
                        let (conn, end) = self.ends[&(node, link)];
                        assert!(!self.conns[conn].closed[end], "closed twice");
                        self.conns[conn].closed[end] = true;
                        // Frames already queued still arrive, then the end of file.
                        self.pending.push(Ev::Eof { conn, to: 1 - end });
                        let outs = self.nodes[node].on_link_down(link, "closed here");
                        assert!(outs.is_empty(), "{outs:?}");
                    }
                    Out::Deliver { from, text } => self.got[node].push((from, text)),
                    Out::Dial { addr } => self.dial(node, &addr),
                    Out::Notice(s) => self.notices[node].push(s),
                    Out::Warn(_) => {}
                }
            }
        }

        /// Open connections between nodes `a` and `b`.
        fn open_between(&self, a: usize, b: usize) -> Vec<usize> {
            (0..self.conns.len())
                .filter(|&c| {
                    let conn = &self.conns[c];
                    let nodes = [conn.ends[0].0, conn.ends[1].0];
                    (nodes == [a, b] || nodes == [b, a]) && !conn.closed[0] && !conn.closed[1]
                })
                .collect()
        }

        /// After a run: one open connection per linked pair, the same one at
        /// both ends, and no link left over.
        fn assert_settled(&self) {
            assert!(self.pending.is_empty());
            for conn in &self.conns {
                assert_eq!(conn.closed[0], conn.closed[1], "half-open connection");
            }
            for (i, node) in self.nodes.iter().enumerate() {
                let peers = node.peers();
                assert_eq!(
                    node.links.len(),
                    peers.len(),
                    "{}: stray links",
                    node.name()
                );
                for p in peers {
                    let j = self.index(&p.name);
                    let (conn, end) = self.ends[&(i, p.link)];
                    let (other, their_link) = self.conns[conn].ends[1 - end];
                    assert_eq!(other, j);
                    let back = self.nodes[j]
                        .peers()
                        .into_iter()
                        .find(|q| q.name == node.name())
                        .unwrap();
                    assert_eq!(back.link, their_link, "both keep the same connection");
                    assert_eq!(self.open_between(i, j), [conn]);
                }
            }
        }

        /// No node got a line twice or its own line; every line reached at
        /// least the peers its sayer was linked to; `everyone` lines reached
        /// every other node.
        fn assert_once(&self, lines: &[(usize, String, Vec<String>)], everyone: &[String]) {
            for (i, got) in self.got.iter().enumerate() {
                let mut unique = HashSet::new();
                for (from, text) in got {
                    assert!(
                        unique.insert(text),
                        "{} got {text} twice",
                        self.nodes[i].name()
                    );
                    assert_ne!(from, self.nodes[i].name());
                }
            }
            for (sayer, text, linked) in lines {
                let from = self.nodes[*sayer].name().to_string();
                for (i, node) in self.nodes.iter().enumerate() {
                    let count = self.got[i]
                        .iter()
                        .filter(|(f, t)| *f == from && t == text)
                        .count();
                    let must = i != *sayer
                        && (everyone.contains(text) || linked.iter().any(|n| n == node.name()));
                    if must {
                        assert_eq!(count, 1, "{} should get {text}", node.name());
                    }
                    assert!(count <= 1);
                }
            }
        }
    }

    #[test]
    fn the_network_tie_break_keeps_one_connection_for_any_schedule() {
        for (a, b) in [("ana", "bea"), ("zoe", "bea")] {
            for seed in 0..200 {
                let mut net = Net::new(&[(a, Some("a:1")), (b, Some("b:1"))], seed);
                net.dial(0, "b:1");
                net.dial(1, "a:1");
                let mut lines = Vec::new();
                for k in 0..6 {
                    for _ in 0..(seed % 5) {
                        net.step();
                    }
                    let text = format!("line {k}");
                    lines.push((k % 2, text.clone(), net.say(k % 2, &text)));
                }
                net.run();
                net.assert_settled();
                let open = net.open_between(0, 1);
                assert_eq!(open.len(), 1, "seed {seed}");
                let dialer = net.conns[open[0]].ends[0].0;
                assert_eq!(net.nodes[dialer].name(), a.min(b), "seed {seed}");
                assert_eq!(net.notices[0], [format!("{b} joined")], "seed {seed}");
                assert_eq!(net.notices[1], [format!("{a} joined")], "seed {seed}");
                net.assert_once(&lines, &[]);
            }
        }
    }

    #[test]
    fn two_links_dialed_by_one_side_are_decided_by_it() {
        for seed in 0..100 {
            let mut net = Net::new(&[("ana", Some("a:1")), ("bea", Some("b:1"))], seed);
            for _ in 0..3 {
                net.dial(1, "a:1");
            }
            net.run();
            net.assert_settled();
            assert_eq!(net.open_between(0, 1).len(), 1);
            assert_eq!(net.notices[0], ["bea joined"]);
            assert_eq!(net.notices[1], ["ana joined"]);
        }
    }

    #[test]
    fn a_line_of_five_delivers_every_line_once_in_order() {
        let names = ["ana", "bea", "cid", "dan", "eva"];
        for seed in 0..40 {
            // No listen addresses: nobody learns anyone to dial; the line stays a line.
            let specs: Vec<(&str, Option<&str>)> = names.iter().map(|n| (*n, None)).collect();
            let mut net = Net::new(&specs, seed);
            for i in 0..4 {
                net.connect(i, i + 1);
            }
            net.run();
            net.assert_settled();
            let mut lines = Vec::new();
            for k in 0..3 {
                for (i, name) in names.iter().enumerate() {
                    let text = format!("{name} #{k}");
                    lines.push((i, text.clone(), net.say(i, &text)));
                    net.step();
                }
            }
            net.run();
            let everyone: Vec<String> = lines.iter().map(|l| l.1.clone()).collect();
            net.assert_once(&lines, &everyone);
            for (i, got) in net.got.iter().enumerate() {
                assert_eq!(got.len(), 12, "{}", names[i]);
                // One path between any two peers, FIFO links: each origin's
                // lines arrive in order.
                for origin in names {
                    let order: Vec<&str> = got
                        .iter()
                        .filter(|(f, _)| f == origin)
                        .map(|(_, t)| t.as_str())
                        .collect();
                    let mut sorted = order.clone();
                    sorted.sort();
                    assert_eq!(order, sorted);
                }
            }
            // The ends forward nothing; cid passes 6 lines each way.
            assert_eq!(net.nodes[0].stats().forwarded, 0);
            assert_eq!(net.nodes[2].stats().forwarded, 6 + 6);
            assert!(net.nodes.iter().all(|m| m.stats().duplicates == 0));
        }
    }

    #[test]
    fn gossip_builds_a_full_mesh_that_delivers_every_line_once() {
        let names = ["n0", "n1", "n2", "n3", "n4"];
        let addrs = ["n0:1", "n1:1", "n2:1", "n3:1", "n4:1"];
        let mut retired = 0;
        for seed in 0..60 {
            let specs: Vec<(&str, Option<&str>)> = names
                .iter()
                .zip(addrs)
                .map(|(n, a)| (*n, Some(a)))
                .collect();
            let mut net = Net::new(&specs, seed);
            // Everyone knows only n0; n4 also knows n2.
            for i in 1..5 {
                net.dial(i, "n0:1");
            }
            net.dial(4, "n2:1");
            // Lines said while the mesh forms.
            let mut lines = Vec::new();
            for k in 0..10 {
                for _ in 0..(seed % 7 + 2) {
                    net.step();
                }
                let text = format!("early {k}");
                lines.push((k % 5, text.clone(), net.say(k % 5, &text)));
            }
            net.run();
            net.assert_settled();
            for (i, node) in net.nodes.iter().enumerate() {
                assert_eq!(
                    node.peers().len(),
                    4,
                    "seed {seed}: {} is not linked to all",
                    names[i]
                );
                for n in &net.notices[i] {
                    assert!(n.ends_with(" joined"), "seed {seed}: {n}");
                }
                assert_eq!(net.notices[i].len(), 4, "{:?}", net.notices[i]);
            }
            let mut everyone = Vec::new();
            for k in 0..3 {
                for (i, name) in names.iter().enumerate() {
                    let text = format!("{name} #{k}");
                    lines.push((i, text.clone(), net.say(i, &text)));
                    everyone.push(text);
                    net.step();
                }
            }
            net.run();
            net.assert_once(&lines, &everyone);
            // Lines said while gossip is still adding links may reach a peer
            // twice; the sequence numbers drop the copy (assert_once above).
            // 10 pairs, 10 connections kept: the rest were duplicates.
            retired += net.conns.len() - 10;
        }
        assert!(retired > 60, "tie-breaks happened: {retired}");
    }

    #[test]
    fn an_address_refused_by_its_peer_stays_refused_until_it_says_hello() {
        let mut ana = Mesh::new("ana", Some("a:1".into()));
        ana.on_link_up(LinkId(1), true);
        ana.on_frame(LinkId(1), &hello("bea", Some("b:1"), &[]));
        assert!(!ana.refused("b:1"));
        ana.on_frame(LinkId(1), &refuse_frame("the name \"ana\" is already used"));
        assert!(ana.refused("b:1"));
        // The peer at that address dials in and says Hello: no longer refused.
        ana.on_link_up(LinkId(2), false);
        ana.on_frame(LinkId(2), &hello("bea", Some("b:1"), &[]));
        assert!(!ana.refused("b:1"));
    }

    #[test]
    fn a_peer_that_dials_itself_refuses_both_ends() {
        let mut net = Net::new(&[("ana", Some("a:1"))], 0);
        net.dial(0, "a:1");
        net.run();
        assert_eq!(net.notices[0].len(), 2);
        for n in &net.notices[0] {
            assert!(n.ends_with("that is our own name"), "{n}");
        }
        assert!(net.nodes[0].links.is_empty());
        // A dial to nobody is given back.
        net.nodes[0].dialing.insert("z:1".into());
        net.dial(0, "z:1");
        net.run();
        assert!(net.nodes[0].dialing.is_empty());
    }

    // --- a hostile participant ---------------------------------------------

    use proptest::prelude::*;

    /// One frame zed sends ana: what, in whose name, which number (relative
    /// to where that origin's numbers start), how many peers listed.
    #[derive(Debug, Clone)]
    enum Forge {
        Msg {
            origin: usize,
            seq: i64,
            top: bool,
            reached: usize,
        },
        Peers(u8),
        Refuse(bool),
        Hello,
    }

    fn forge() -> impl Strategy<Value = Forge> {
        prop_oneof![
            8 => (0..6usize, -3..80i64, any::<bool>(), 0..=MAX_REACHED).prop_map(
                |(origin, seq, top, reached)| Forge::Msg { origin, seq, top, reached }
            ),
            1 => any::<u8>().prop_map(Forge::Peers),
            1 => any::<bool>().prop_map(Forge::Refuse),
            1 => Just(Forge::Hello),
        ]
    }

    /// Honest peer `who` says a line, or zed sends a forged frame, or the
    /// network moves `n` events.
    #[derive(Debug, Clone)]
    enum Step {
        Say(usize),
        Forge(Forge),
        Run(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (0..3usize).prop_map(Step::Say),
            4 => forge().prop_map(Step::Forge),
            2 => any::<u8>().prop_map(Step::Run),
        ]
    }

    const HONEST: [&str; 3] = ["ana", "bea", "cid"];
    /// Where each origin's numbers start: the honest ones from the clock,
    /// as the app does; then zed, and made-up origins.
    const FIRST: [u64; 6] = [3_000_000, 1_000_000, 2_000_000, 1, 1, 7];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// With any frames from one link, every line of every honest peer
        /// reaches every other honest peer exactly once.
        #[test]
        fn forged_frames_from_one_link_cost_no_honest_line(
            steps in proptest::collection::vec(step(), 1..60),
            seed in any::<u64>(),
        ) {
            let names = ["ana", "bea", "cid", "zed"];
            let specs: Vec<(&str, Option<&str>)> = names.iter().map(|n| (*n, None)).collect();
            let mut net = Net::new(&specs, seed | 1);
            for i in 0..4 {
                net.nodes[i] = Mesh::new(names[i], None)
                    .with_first_seq(FIRST[i])
                    .with_session(i as u64 + 1);
            }
            net.connect(0, 1);
            net.connect(0, 2);
            net.connect(1, 2);
            let zed = net.connect(3, 0);
            net.run();
            let origins = ["ana", "bea", "cid", "zed", "o1", "o2"];
            let mut lines = Vec::new();
            for (k, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Say(who) => {
                        let text = format!("{} #{k}", HONEST[who]);
                        let linked = net.say(who, &text);
                        lines.push((who, text, linked));
                    }
                    Step::Run(n) => {
                        for _ in 0..n % 16 {
                            net.step();
                        }
                    }
                    Step::Forge(f) => {
                        // zed's end of its link; nothing once it is closed.
                        if net.conns[zed].closed[0] || net.conns[zed].closed[1] {
                            continue;
                        }
                        let wire = match f {
                            Forge::Msg { origin, seq, top, reached } => Wire::Msg {
                                origin: origins[origin].into(),
                                seq: if top {
                                    u64::MAX - (seq.unsigned_abs() % 3)
                                } else {
                                    FIRST[origin].saturating_add_signed(seq).max(1)
                                },
                                text: "forged".into(),
                                reached: names.iter().cycle().take(reached).map(|n| n.to_string()).collect(),
                            },
                            Forge::Peers(n) => Wire::Peers {
                                peers: (0..n % 70).map(|i| format!("x{i}:1")).collect(),
                            },
                            Forge::Refuse(dup) => Wire::Refuse {
                                reason: if dup { format!("{DUPLICATE_LINK}: zed") } else { "no".into() },
                            },
                            Forge::Hello => Wire::Hello {
                                version: PROTOCOL_VERSION,
                                name: "bea".into(),
                                listen: None,
                                peers: vec![],
                                session: 99,
                                next: 1,
                            },
                        };
                        net.pending.push(Ev::Frame { conn: zed, to: 1, bytes: wire.encode().unwrap() });
                    }
                }
            }
            net.run();
            // Every honest line, at every other honest peer, exactly once.
            for (sayer, text, _) in &lines {
                for (i, got) in net.got.iter().enumerate().take(3) {
                    let n = got.iter().filter(|(f, t)| f == HONEST[*sayer] && t == text).count();
                    let want = usize::from(i != *sayer);
                    prop_assert_eq!(n, want, "{} got {:?} {} times", HONEST[i], text, n);
                }
            }
            // The honest links all stand.
            for (i, me) in HONEST.iter().enumerate() {
                let peers: Vec<String> = net.nodes[i].peers().into_iter().map(|p| p.name).collect();
                for name in HONEST.iter().filter(|n| *n != me) {
                    prop_assert!(peers.contains(&name.to_string()), "{} lost {}", me, name);
                }
            }
        }
    }
}
