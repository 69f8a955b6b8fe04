//! The mesh's rules, one event at a time; the in-memory network (and a
//! hostile participant) are in `tests/network.rs`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::window::{Seen, Window};
use super::*;

mod network;

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
        (
            "",
            "peer name \"\" is not valid: a name has at least one character",
        ),
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
