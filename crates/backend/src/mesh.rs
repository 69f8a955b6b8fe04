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

mod app;
mod checks;
mod rules;
#[cfg(test)]
mod tests;
mod window;
mod wire;

use trama_protocol::Codec;

pub use app::{LinkId, Out, PeerInfo, Stats};
pub use checks::{valid_addr, valid_peer_name};
pub use rules::Mesh;
pub use wire::Wire;

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
