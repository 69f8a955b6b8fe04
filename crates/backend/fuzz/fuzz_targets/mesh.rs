//! The peer mesh's wire and rules: any bytes as a frame on a link (decoded
//! and re-encoded unchanged when they decode at all), and a peer driven by a
//! sequence of links coming up and going down, Hellos, lines, gossip and
//! refusals built from the input. Checks that a peer sends only on links that
//! are up, never sends a frame over the limit, delivers each line at most
//! once (twice only after a forgery, as `Stats::overridden` and
//! `Stats::rewound` count), and ignores frames on links it has closed.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use trama_backend::mesh::{
    LinkId, Mesh, Out, Wire, DUPLICATE_LINK, MAX_FRAME, MAX_TEXT, PROTOCOL_VERSION,
};

const NAMES: &[&str] = &["ana", "bea", "cai", "me", "", "a b", "x\u{7}"];
const ADDRS: &[&str] = &["127.0.0.1:1", "127.0.0.1:2", "h:3", "", "a\nb"];

fn name(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        return u.arbitrary();
    }
    Ok((*u.choose(NAMES)?).to_string())
}

fn addr(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    if u.ratio(1, 4)? {
        return Ok(None);
    }
    if u.ratio(1, 8)? {
        return u.arbitrary();
    }
    Ok(Some((*u.choose(ADDRS)?).to_string()))
}

fn addrs(u: &mut Unstructured<'_>) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=3)?;
    (0..n).filter_map(|_| addr(u).transpose()).collect()
}

struct App {
    mesh: Mesh,
    up: BTreeSet<u64>,
    /// Every (origin, seq) fed as a line: no more lines can be delivered.
    lines: BTreeSet<(String, u64)>,
}

impl App {
    /// Check the effects, and carry out the closes as the app would.
    fn apply(&mut self, outs: Vec<Out>) {
        let mut closed = Vec::new();
        for out in outs {
            match out {
                Out::Send { link, wire } => {
                    assert!(self.up.contains(&link.0), "send on {link}, not up");
                    let bytes = wire.encode().unwrap();
                    assert!(bytes.len() <= MAX_FRAME, "{}-byte frame", bytes.len());
                    assert_eq!(Wire::decode(&bytes).unwrap(), wire);
                }
                Out::Close { link, reason } => {
                    assert!(!reason.is_empty());
                    closed.push(link);
                }
                Out::Deliver { from, text } => {
                    assert!(text.len() <= MAX_TEXT);
                    assert_ne!(from, self.mesh.name());
                }
                Out::Dial { addr } => assert!(!addr.is_empty()),
                Out::Notice(_) | Out::Warn(_) => {}
            }
        }
        for link in closed {
            if self.up.remove(&link.0) {
                let outs = self.mesh.on_link_down(link, "closed");
                self.apply(outs);
            }
        }
        // A number is delivered twice only after a forgery: a linked peer's
        // own line whose number a forged copy took first (overridden), or a
        // line whose number its origin's Hello said was not used yet
        // (rewound). The honest line is never the one lost.
        let stats = self.mesh.stats();
        assert!(
            u128::from(stats.delivered)
                <= self.lines.len() as u128
                    + u128::from(stats.overridden)
                    + u128::from(stats.rewound),
            "{stats:?}, {} lines",
            self.lines.len()
        );
        assert!(self.mesh.peers().len() <= self.up.len());
    }

    fn frame(&mut self, link: u64, wire: &Wire) {
        if let Wire::Msg { origin, seq, .. } = wire {
            self.lines.insert((origin.clone(), *seq));
        }
        let bytes = wire.encode().unwrap();
        self.raw(link, &bytes);
    }

    fn raw(&mut self, link: u64, bytes: &[u8]) {
        let outs = self.mesh.on_frame(LinkId(link), bytes);
        if !self.up.contains(&link) {
            assert!(outs.is_empty(), "output for a frame on a closed link");
        }
        self.apply(outs);
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut app = App {
        mesh: Mesh::new("me", Some("127.0.0.1:9".to_string())),
        up: BTreeSet::new(),
        lines: BTreeSet::new(),
    };
    let mut next = 0u64;
    while !u.is_empty() {
        let link = u.int_in_range(0..=next)?;
        match u.int_in_range(0..=9)? {
            0 => {
                let outs = app.mesh.on_link_up(LinkId(next), u.arbitrary()?);
                app.up.insert(next);
                next += 1;
                app.apply(outs);
            }
            1 => {
                let bytes: &[u8] = u.arbitrary()?;
                if let Ok(wire) = Wire::decode(bytes) {
                    let again = Wire::decode(&wire.encode().unwrap()).unwrap();
                    assert_eq!(again, wire);
                    app.frame(link, &wire);
                } else {
                    app.raw(link, bytes);
                }
            }
            2 | 3 => {
                let wire = Wire::Hello {
                    version: if u.ratio(7, 8)? {
                        PROTOCOL_VERSION
                    } else {
                        u.arbitrary()?
                    },
                    name: name(u)?,
                    listen: addr(u)?,
                    peers: addrs(u)?,
                    session: u.arbitrary()?,
                    next: u.arbitrary()?,
                };
                app.frame(link, &wire);
            }
            4 | 5 => {
                let n = u.int_in_range(0..=4)?;
                let wire = Wire::Msg {
                    origin: name(u)?,
                    seq: if u.ratio(1, 8)? {
                        u.arbitrary()?
                    } else {
                        u.int_in_range(0..=6)?
                    },
                    text: u.arbitrary()?,
                    reached: (0..n).map(|_| name(u)).collect::<Result<_>>()?,
                };
                app.frame(link, &wire);
            }
            6 => {
                let wire = Wire::Peers { peers: addrs(u)? };
                app.frame(link, &wire);
            }
            7 => {
                let reason: String = u.arbitrary()?;
                let reason = if u.arbitrary()? {
                    format!("{DUPLICATE_LINK}: {reason}")
                } else {
                    reason
                };
                app.frame(link, &Wire::Refuse { reason });
            }
            8 => {
                if app.up.remove(&link) {
                    let outs = app.mesh.on_link_down(LinkId(link), "reset");
                    app.apply(outs);
                }
            }
            _ => {
                let text: String = u.arbitrary()?;
                let outs = app.mesh.say(&text);
                app.apply(outs);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
