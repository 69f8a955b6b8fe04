//! End-to-end tests of the `trama-peer` binary: real peers, driven through
//! their stdin, finding each other in any start order, relaying every line
//! of a 5-peer line to everyone exactly once (also after the middle peer is
//! killed and started again), refusing a Hello they cannot accept from a
//! plain Rust socket that speaks the mesh's wire protocol, and speaking the
//! notes' raw P2P dialect (`--raw`) with the notes' Python peers
//! (`tests/python/notes_peer.py`).
//!
//! No port is fixed or guessed. When a peer must be told an address before
//! anything listens there, a `trama-peer` is started on `127.0.0.1:0`, its
//! address read and the process killed; the address is then free, and the
//! peers bind it with `SO_REUSEADDR`.
//!
//! Nothing here measures time. Steps are put in order by waiting for a line
//! that can only arrive after the previous step took effect; the deadlines
//! are only there so a broken build fails instead of hanging.
//!
//! Python 3 is required by the `--raw` tests: if it is missing, they fail
//! with a message saying so (set `PYTHON` to point at another interpreter).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{joined, RawLink};
use trama_backend::mesh::{self, Wire};
use trama_test_support::console::{assert_no_line, Console as Proc};

/// How long a peer keeps printing after its input ends.
const QUIET: &str = "500ms";

/// Redial quickly: peers wait for each other a lot here.
const BACKOFF: &str = "250ms";

const PEER: &str = env!("CARGO_BIN_EXE_trama-peer");

/// `trama-peer --name NAME --listen LISTEN --peer P...`, not yet waited for.
fn spawn_peer(name: &str, listen: &str, peers: &[SocketAddr]) -> Proc {
    let mut cmd = Command::new(PEER);
    cmd.args(["--name", name, "--listen", listen]);
    for p in peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    cmd.args(["--wait", QUIET, "--max-backoff", BACKOFF]);
    Proc::spawn(name, cmd)
}

/// [`spawn_peer`], once it listens.
fn peer(name: &str, listen: &str, peers: &[SocketAddr]) -> Proc {
    let mut p = spawn_peer(name, listen, peers);
    p.addr();
    p
}

/// `trama-peer --raw`, once it listens.
fn compat(listen: &str, peer: SocketAddr) -> Proc {
    let mut cmd = Command::new(PEER);
    cmd.args(["--raw", "--listen", listen, "--peer", &peer.to_string()])
        .args(["--wait", QUIET, "--max-backoff", BACKOFF]);
    let mut p = Proc::spawn("trama-peer --raw", cmd);
    p.addr();
    p
}

/// The notes' peer `role` on `port` (0 for a free one), dialing `peer`.
fn notes_peer(role: u32, port: u16, peer: SocketAddr) -> Proc {
    let mut p = Proc::python(
        &format!("notes_peer.py --role {role}"),
        "notes_peer.py",
        &[
            "--role".to_string(),
            role.to_string(),
            "--listen".to_string(),
            port.to_string(),
            "--peer".to_string(),
            peer.to_string(),
            "--wait".to_string(),
            "0.5".to_string(),
        ],
    );
    p.addr();
    p
}

/// What the notes' peer `role` answers to `text`.
fn notes_reply(role: u32, text: &str) -> String {
    format!("Acción del Cliente P2P ({role}) asociada a {text}")
}

/// An address nothing listens on, for a peer that others dial before it
/// starts (so it cannot be `:0`).
///
/// The port is outside every system's ephemeral range (Linux 32768-60999,
/// Windows and macOS 49152-65535): a port the system handed out could be
/// taken again, before the peer binds it, as the source port of any
/// outgoing connection, even one dialing it (a peer that starts first
/// dials the address over and over). Ports are handed out in turn within
/// this process, from a place its pid picks, and each is checked free.
fn reserve() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

// ---------------------------------------------------------------------------
// Two peers, every start order
// ---------------------------------------------------------------------------

/// `ana` and `bea` dial each other; `start` starts them (in some order) on
/// the two addresses given, and returns them with the lines each said
/// before the other was there. Each must see the other join once and get
/// the other's lines once.
type Started = (Proc, Proc, Vec<&'static str>, Vec<&'static str>);

fn two_peers(start: impl FnOnce(SocketAddr, SocketAddr) -> Started) {
    let (a_addr, b_addr) = (reserve(), reserve());
    let (mut ana, mut bea, mut ana_said, mut bea_said) = start(a_addr, b_addr);
    assert_eq!(ana.addr(), a_addr);
    assert_eq!(bea.addr(), b_addr);
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));
    // Lines held while alone go out once the other joins.
    for text in &ana_said {
        bea.expect(&format!("ana: {text}"));
    }
    for text in &bea_said {
        ana.expect(&format!("bea: {text}"));
    }

    ana.say("hola, soy ana");
    bea.say("hola, soy bea");
    ana_said.push("hola, soy ana");
    bea_said.push("hola, soy bea");
    bea.expect("ana: hola, soy ana");
    ana.expect("bea: hola, soy bea");
    ana.say("/peers");
    ana.expect(&format!("* bea ({b_addr})"));
    bea.say("¿qué tal, señora?");
    bea_said.push("¿qué tal, señora?");
    ana.expect("bea: ¿qué tal, señora?");

    let ana_lines = ana.finish_ok();
    let bea_lines = bea.finish_ok();
    for (lines, other, said) in [
        (&ana_lines, "bea", &bea_said),
        (&bea_lines, "ana", &ana_said),
    ] {
        let all = lines.join("\n");
        assert_eq!(count(lines, &joined(other)), 1, "{all}");
        for text in said {
            assert_eq!(count(lines, &format!("{other}: {text}")), 1, "{all}");
        }
        assert!(!lines.iter().any(|l| l.starts_with("* refused")), "{all}");
    }
}

/// Said while alone: the line is held until a peer joins.
const HELD: &str =
    "* no peer connected yet; the line is held and goes out when one joins (1 waiting)";

#[test]
fn two_peers_a_then_b() {
    two_peers(|a, b| {
        let mut ana = peer("ana", &a.to_string(), &[b]);
        ana.say("¿hay alguien?");
        ana.expect(HELD);
        let bea = peer("bea", &b.to_string(), &[a]);
        (ana, bea, vec!["¿hay alguien?"], Vec::new())
    });
}

#[test]
fn two_peers_b_then_a() {
    two_peers(|a, b| {
        let mut bea = peer("bea", &b.to_string(), &[a]);
        bea.say("¿hay alguien?");
        bea.expect(HELD);
        let ana = peer("ana", &a.to_string(), &[b]);
        (ana, bea, Vec::new(), vec!["¿hay alguien?"])
    });
}

#[test]
fn two_peers_both_at_once() {
    two_peers(|a, b| {
        let ana = spawn_peer("ana", &a.to_string(), &[b]);
        let bea = spawn_peer("bea", &b.to_string(), &[a]);
        (ana, bea, Vec::new(), Vec::new())
    });
}

// ---------------------------------------------------------------------------
// Five peers in a line
// ---------------------------------------------------------------------------

const FIVE: [&str; 5] = ["ana", "bea", "cid", "dan", "eva"];

/// Every peer says one line tagged `round`; each line must reach every
/// other peer. Returns the lines, as `(sayer, printed form)`.
fn round(peers: &mut [Proc], round: &str) -> Vec<(usize, String)> {
    let mut said = Vec::new();
    for (i, p) in peers.iter_mut().enumerate() {
        let text = format!("{round}: {} habla", FIVE[i]);
        p.say(&text);
        said.push((i, format!("{}: {text}", FIVE[i])));
    }
    for (i, p) in peers.iter_mut().enumerate() {
        let others: Vec<&str> = said
            .iter()
            .filter(|(j, _)| *j != i)
            .map(|(_, l)| l.as_str())
            .collect();
        p.expect_all(&others);
    }
    said
}

/// Each of `said` was printed exactly once by every peer but its sayer.
fn assert_once(outputs: &[Vec<String>], said: &[(usize, String)]) {
    for (i, lines) in outputs.iter().enumerate() {
        for (sayer, line) in said {
            let want = usize::from(*sayer != i);
            assert_eq!(
                count(lines, line),
                want,
                "{} printed {line:?} {} times, not {want}; it printed:\n{}",
                FIVE[i],
                count(lines, line),
                lines.join("\n")
            );
        }
    }
}

#[test]
fn a_line_of_five_delivers_every_line_once_and_heals_when_the_middle_restarts() {
    // Each peer knows only its left neighbour.
    let mut peers: Vec<Proc> = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for name in FIVE {
        let left: Vec<SocketAddr> = addrs.last().copied().into_iter().collect();
        let mut p = peer(name, "127.0.0.1:0", &left);
        addrs.push(p.addr());
        peers.push(p);
    }
    // Linked to its neighbours: every peer reaches every other, hop by hop.
    for (i, p) in peers.iter_mut().enumerate() {
        let neighbours: Vec<String> = [i.wrapping_sub(1), i + 1]
            .into_iter()
            .filter(|&j| j < FIVE.len())
            .map(|j| joined(FIVE[j]))
            .collect();
        p.expect_all(&neighbours);
    }
    // The first round goes out while gossip may still be adding links.
    let mut said = round(&mut peers, "uno");

    // Gossip makes it a full mesh: everyone is linked to everyone.
    for (i, p) in peers.iter_mut().enumerate() {
        let others: Vec<String> = (0..5)
            .filter(|&j| j != i)
            .map(|j| joined(FIVE[j]))
            .collect();
        for line in &others {
            p.expect_seen(line, |l| l == line);
        }
    }
    said.extend(round(&mut peers, "dos"));

    // The middle peer crashes; the others see it go, and keep talking.
    let cid_addr = addrs[2];
    let cid = peers.remove(2);
    let first_life = cid.kill();
    for p in peers.iter_mut() {
        p.expect_match("`* cid left (...)`", |l| l.starts_with("* cid left ("));
    }
    // It comes back on its address, knowing only bea; everyone links to it again.
    let mut cid = peer("cid", &cid_addr.to_string(), &[addrs[1]]);
    assert_eq!(cid.addr(), cid_addr);
    let others: Vec<String> = [0, 1, 3, 4].iter().map(|&j| joined(FIVE[j])).collect();
    cid.expect_all(&others);
    for p in peers.iter_mut() {
        p.expect(&joined("cid"));
    }
    peers.insert(2, cid);
    let tres = round(&mut peers, "tres");

    let mut outputs: Vec<Vec<String>> = peers.into_iter().map(Proc::finish_ok).collect();
    // The rounds before the crash: cid's first life; after: its second.
    let second_life = std::mem::replace(&mut outputs[2], first_life);
    assert_once(&outputs, &said);
    outputs[2] = second_life;
    assert_once(&outputs, &tres);
    for (i, lines) in outputs.iter().enumerate() {
        assert_no_line(FIVE[i], lines, |l| l.starts_with("* refused"));
    }
}

// ---------------------------------------------------------------------------
// Refusals, from a plain socket speaking the wire protocol
// ---------------------------------------------------------------------------

impl RawLink {
    /// The peer's Hello, which it sends first on every link.
    fn expect_hello(&mut self, name: &str) {
        match self.recv() {
            Some(Wire::Hello {
                name: n, version, ..
            }) => {
                assert_eq!(n, name);
                assert_eq!(version, mesh::PROTOCOL_VERSION);
            }
            other => panic!("expected the Hello of {name}, got {other:?}"),
        }
    }

    /// The peer's refusal, then the end of the link; returns the reason.
    fn expect_refusal(&mut self) -> String {
        let reason = match self.recv() {
            Some(Wire::Refuse { reason }) => reason,
            other => panic!("expected a Refuse, got {other:?}"),
        };
        self.expect_closed();
        reason
    }

    fn expect_closed(&mut self) {
        if let Some(w) = self.recv() {
            panic!("expected the link to close, got {w:?}");
        }
    }
}

fn hello(version: u32, name: &str, listen: Option<&str>) -> Wire {
    Wire::Hello {
        version,
        name: name.into(),
        listen: listen.map(Into::into),
        peers: Vec::new(),
        session: 0,
        next: 0,
    }
}

#[test]
fn a_hello_the_peer_cannot_accept_is_refused_and_the_mesh_goes_on() {
    let mut ana = peer("ana", "127.0.0.1:0", &[]);
    let a = ana.addr();
    let mut bea = peer("bea", "127.0.0.1:0", &[a]);
    let b = bea.addr();
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));

    // A newer protocol version.
    let mut raw = RawLink::connect(a);
    raw.expect_hello("ana");
    raw.send(&hello(2, "zoe", None));
    let reason = raw.expect_refusal();
    assert!(
        reason.contains("version 2")
            && reason.contains(&format!("version {}", mesh::PROTOCOL_VERSION)),
        "{reason}"
    );
    ana.expect_match("ana refusing zoe", |l| {
        l.starts_with("* refused zoe: ") && l.contains("version 2")
    });

    // A name already linked from another address.
    let mut raw = RawLink::connect(a);
    raw.expect_hello("ana");
    raw.send(&hello(mesh::PROTOCOL_VERSION, "bea", Some("127.0.0.1:1")));
    let reason = raw.expect_refusal();
    assert!(
        reason.contains("\"bea\" is already used") && reason.contains(&b.to_string()),
        "{reason}"
    );
    ana.expect_match("ana refusing the second bea", |l| {
        l.starts_with("* refused bea: ") && l.contains("already used")
    });

    // Its own name.
    let mut raw = RawLink::connect(b);
    raw.expect_hello("bea");
    raw.send(&hello(mesh::PROTOCOL_VERSION, "bea", None));
    let reason = raw.expect_refusal();
    assert!(reason.contains("our own name"), "{reason}");

    // A frame that is not a Wire map.
    let mut raw = RawLink::connect(a);
    raw.expect_hello("ana");
    raw.send_payload(b"\xc1 esto no es MessagePack \xff");
    let reason = raw.expect_refusal();
    assert!(!reason.is_empty());

    // A line before the Hello.
    let mut raw = RawLink::connect(a);
    raw.expect_hello("ana");
    raw.send(&Wire::Msg {
        origin: "zoe".into(),
        seq: 1,
        text: "colada".into(),
        reached: vec![],
    });
    let reason = raw.expect_refusal();
    assert!(reason.contains("expected Hello first"), "{reason}");

    // Bytes that are not even a frame (a length far past the limit).
    let mut raw = RawLink::connect(a);
    raw.expect_hello("ana");
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.expect_closed();

    // The real peers never noticed.
    ana.say("sigo aquí");
    bea.expect("ana: sigo aquí");
    bea.say("yo también");
    ana.expect("bea: yo también");
    ana.say("/peers");
    ana.expect(&format!("* bea ({b})"));

    let ana_lines = ana.finish_ok();
    let bea_lines = bea.finish_ok();
    for (lines, other) in [(&ana_lines, "bea"), (&bea_lines, "ana")] {
        let all = lines.join("\n");
        let joins: Vec<&String> = lines.iter().filter(|l| l.ends_with(" joined")).collect();
        assert_eq!(joins, [&joined(other)], "{all}");
        assert!(!lines.iter().any(|l| l.contains("colada")), "{all}");
    }
}

#[test]
fn a_peer_told_to_dial_itself_says_so_and_goes_on() {
    let a = reserve();
    let mut ana = peer("ana", &a.to_string(), &[a]);
    ana.expect(&format!(
        "* --peer {a} is this peer's own address; not dialed"
    ));
    let mut bea = peer("bea", "127.0.0.1:0", &[a]);
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));
    ana.say("hola");
    bea.expect("ana: hola");
    let lines = ana.finish_ok();
    bea.finish_ok();
    assert_no_line("ana", &lines, |l| l.starts_with("* refused"));
}

#[test]
fn lines_held_for_a_peer_that_never_answers_are_reported_and_the_exit_is_1() {
    // A reserved port nobody listens on: every dial is refused.
    let nobody = reserve();
    for raw in [false, true] {
        let mut cmd = Command::new(PEER);
        if raw {
            cmd.arg("--raw");
        } else {
            cmd.args(["--name", "sola"]);
        }
        cmd.args(["--listen", "127.0.0.1:0", "--peer", &nobody.to_string()])
            .args(["--wait", QUIET, "--max-backoff", BACKOFF]);
        let mut p = Proc::spawn("trama-peer with nobody to talk to", cmd);
        p.addr();
        // The failing dial is said once, with the address once.
        let said = p.expect_match("the failed dial", |l| l.contains("trying again"));
        assert_eq!(said.matches(&nobody.to_string()).count(), 1, "{said}");
        p.say("hola");
        p.say("¿hay alguien?");
        let done = p.finish();
        assert_eq!(done.status.code(), Some(1), "raw {raw}: {}", done.stderr);
        assert!(
            done.stderr.contains("2 typed lines never sent"),
            "raw {raw}: {}",
            done.stderr
        );
        assert_eq!(count(&done.lines, &said), 1, "{:?}", done.lines);
    }
}

#[test]
fn a_second_peer_with_a_taken_name_is_refused() {
    let mut ana = peer("ana", "127.0.0.1:0", &[]);
    let a = ana.addr();
    let mut bea = peer("bea", "127.0.0.1:0", &[a]);
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));

    let mut impostor = peer("bea", "127.0.0.1:0", &[a]);
    impostor.expect_match("the impostor being refused", |l| {
        l.starts_with("* ") && l.contains("refused") && l.contains("already used")
    });
    ana.expect_match("ana refusing the impostor", |l| {
        l.starts_with("* refused bea: ") && l.contains("already used")
    });
    ana.say("¿quién es bea?");
    bea.expect("ana: ¿quién es bea?");

    let impostor_lines = impostor.finish_ok();
    let ana_lines = ana.finish_ok();
    bea.finish_ok();
    assert_eq!(
        count(&ana_lines, &joined("bea")),
        1,
        "{}",
        ana_lines.join("\n")
    );
    assert_no_line("the impostor", &impostor_lines, |l| l.contains("quién"));
}

// ---------------------------------------------------------------------------
// --raw with the notes' Python peers
// ---------------------------------------------------------------------------

/// `trama` dialed `py` and `py` dialed `trama`: lines typed at each reach
/// the other, and the notes' peer answers trama's on the same connection.
/// trama's two lines: the notes' peer `role` answers each.
fn trama_talks(trama: &mut Proc, py: &mut Proc, role: u32) {
    trama.say("hola desde trama");
    py.expect("hola desde trama");
    trama.expect(&notes_reply(role, "hola desde trama"));
    trama.say("¿qué tal, señor?");
    trama.expect(&notes_reply(role, "¿qué tal, señor?"));
}

/// trama's two lines, then one of the notes' peer `role`.
fn talk(trama: &mut Proc, py: &mut Proc, role: u32) {
    trama_talks(trama, py, role);
    py.say("hola desde python");
    trama.expect("hola desde python");
}

/// A line typed before the other peer is there: trama holds it.
fn say_early(trama: &mut Proc) {
    trama.say("temprano");
    trama.expect("* the other peer is not connected yet; the line is held (1 waiting)");
}

/// The held line goes out once connected, and the notes' peer `role` answers it.
fn early_line_answered(trama: &mut Proc, py: &mut Proc, role: u32) {
    py.expect("temprano");
    trama.expect(&notes_reply(role, "temprano"));
}

/// The notes' cliente_1 dials back right after accepting (before or after
/// its answer to a held line), and reaches trama at `t`.
fn cliente_1_dials_back(trama: &mut Proc, py: &mut Proc, t: SocketAddr) {
    trama.expect_seen("cliente_1 dialing back", |l| {
        l.ends_with(" connected to us")
    });
    py.expect_stderr(&format!("connected to {t}"));
}

fn finish_compat(trama: Proc, py: Proc, role: u32) {
    let py_lines = py.finish_ok();
    let trama_lines = trama.finish_ok();
    for text in ["hola desde trama", "¿qué tal, señor?"] {
        assert_eq!(count(&py_lines, text), 1, "{}", py_lines.join("\n"));
        assert_eq!(
            count(&trama_lines, &notes_reply(role, text)),
            1,
            "{}",
            trama_lines.join("\n")
        );
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn compat_as_cliente_2_after_the_notes_cliente_1() {
    let t = reserve();
    let mut py = notes_peer(1, 0, t);
    let p = py.addr();
    let mut trama = compat(&t.to_string(), p);
    trama.expect(&format!("* connected to {p}"));
    cliente_1_dials_back(&mut trama, &mut py, t);
    talk(&mut trama, &mut py, 1);
    finish_compat(trama, py, 1);
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn compat_as_cliente_2_before_the_notes_cliente_1() {
    let (t, p) = (reserve(), reserve());
    let mut trama = compat(&t.to_string(), p);
    say_early(&mut trama);
    let mut py = notes_peer(1, p.port(), t);
    assert_eq!(py.addr(), p);
    trama.expect(&format!("* connected to {p}"));
    early_line_answered(&mut trama, &mut py, 1);
    cliente_1_dials_back(&mut trama, &mut py, t);
    talk(&mut trama, &mut py, 1);
    finish_compat(trama, py, 1);
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn compat_as_cliente_1_before_the_notes_cliente_2() {
    let p = reserve();
    let mut trama = compat("127.0.0.1:0", p);
    let t = trama.addr();
    say_early(&mut trama);
    let mut py = notes_peer(2, p.port(), t);
    assert_eq!(py.addr(), p);
    // cliente_2 dials at once; trama's own dial finds it on its next try.
    py.expect_stderr(&format!("connected to {t}"));
    trama.expect_all(&[format!("* connected to {p}")]);
    early_line_answered(&mut trama, &mut py, 2);
    talk(&mut trama, &mut py, 2);
    finish_compat(trama, py, 2);
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn compat_as_cliente_1_after_the_notes_cliente_2_answers_half_of_the_talk() {
    // The notes' order is cliente_1 first: cliente_2 dials once, and finds
    // nobody. trama still dials it, so trama's lines are answered; the
    // notes' peer has no connection to type on.
    let t = reserve();
    let mut py = notes_peer(2, 0, t);
    let p = py.addr();
    py.expect_stderr(&format!("cannot connect to {t}"));
    let mut trama = compat(&t.to_string(), p);
    trama.expect(&format!("* connected to {p}"));
    trama_talks(&mut trama, &mut py, 2);
    py.say("nadie me oye");
    py.expect_stderr("line dropped");
    finish_compat(trama, py, 2);
}
