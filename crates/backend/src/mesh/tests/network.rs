//! Meshes joined by simulated connections: every schedule of events must
//! end in one link per pair and every line delivered once.

use super::*;

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
