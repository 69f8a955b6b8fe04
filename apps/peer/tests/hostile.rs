//! Attacks on the `trama-peer` binary by one participant with no key (issue
//! 33): a plain socket says a Hello of its own choosing and then frames of
//! the mesh's wire format, against real peers on loopback.
//!
//! - A `Msg` in the name of a linked peer, numbered near 2^64, must not
//!   silence that peer anywhere.
//! - Lines from 1,100 made-up origins must not keep a peer that joins later
//!   from being heard.
//! - A Hello with a linked peer's name, its listen address and a new session
//!   must not drop the real link.
//! - 16 `Peers` frames of 64 addresses each must not start a thread per
//!   address, and the dials must end.
//!
//! As in `e2e.rs`, steps are ordered by waiting for a line that can only
//! come after the previous step; deadlines only stop a broken build from
//! hanging. The thread counts are read from `/proc` (Linux only; elsewhere
//! that test checks the rest).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{joined, RawLink};
use trama_backend::mesh::{self, Wire};
use trama_cli::procfs;
use trama_test_support::console::{assert_no_line, Console as Proc, DEADLINE};

const PEER: &str = env!("CARGO_BIN_EXE_trama-peer");

/// `trama-peer --name NAME` on a free port, dialing `peers`, once it listens.
fn peer(name: &str, peers: &[SocketAddr]) -> Proc {
    let mut cmd = Command::new(PEER);
    cmd.args(["--name", name, "--listen", "127.0.0.1:0"]);
    for p in peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    cmd.args(["--wait", "500ms", "--max-backoff", "250ms"]);
    let mut p = Proc::spawn(name, cmd);
    p.addr();
    p
}

impl RawLink {
    /// Connect to `addr`, read its Hello and say ours as `name`.
    fn join(addr: SocketAddr, name: &str, listen: Option<String>, session: u64) -> RawLink {
        let mut raw = RawLink::connect(addr);
        match raw.recv() {
            Some(Wire::Hello { .. }) => {}
            other => panic!("expected a Hello, got {other:?}"),
        }
        raw.send(&Wire::Hello {
            version: mesh::PROTOCOL_VERSION,
            name: name.into(),
            listen,
            peers: Vec::new(),
            session,
            next: 0,
        });
        raw
    }

    fn msg(&mut self, origin: &str, seq: u64, text: &str) {
        self.send(&Wire::Msg {
            origin: origin.into(),
            seq,
            text: text.into(),
            reached: Vec::new(),
        });
    }
}

/// Three peers linked to each other.
fn three() -> (Proc, Proc, Proc) {
    let mut ana = peer("ana", &[]);
    let a = ana.addr();
    let mut bea = peer("bea", &[a]);
    let mut cid = peer("cid", &[a]);
    ana.expect_all(&[joined("bea"), joined("cid")]);
    // Gossip links bea and cid.
    bea.expect_all(&[joined("ana"), joined("cid")]);
    cid.expect_all(&[joined("ana"), joined("bea")]);
    (ana, bea, cid)
}

#[test]
fn a_forged_line_numbered_near_2_64_silences_nobody() {
    let (mut ana, mut bea, mut cid) = three();
    let mut zed = RawLink::join(ana.addr(), "zed", None, 1);
    ana.expect(&joined("zed"));
    zed.msg("bea", u64::MAX - 1, "forged");
    // zed's own line, after the forged one on the same link.
    zed.msg("zed", 1, "sync");
    ana.expect("zed: sync");

    bea.say("real line");
    ana.expect("bea: real line");
    cid.expect("bea: real line");
    bea.say("second real line");
    ana.expect("bea: second real line");
    cid.expect("bea: second real line");

    drop(zed);
    let ana_lines = ana.finish_ok();
    let cid_lines = cid.finish_ok();
    bea.finish_ok();
    for lines in [&ana_lines, &cid_lines] {
        assert_no_line("a forged line shown", lines, |l| l.contains("forged"));
    }
}

#[test]
fn a_flood_of_made_up_origins_does_not_keep_a_newcomer_unheard() {
    let mut ana = peer("ana", &[]);
    let a = ana.addr();
    let mut zed = RawLink::join(a, "zed", None, 1);
    ana.expect(&joined("zed"));
    for i in 0..1100 {
        zed.msg(&format!("o{i}"), 1, "flood");
    }
    // After every flood line on the same link.
    zed.msg("o0", 2, "sync");
    ana.expect("o0: sync");

    let mut bea = peer("bea", &[a]);
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));
    bea.say("¿me oyes?");
    ana.expect("bea: ¿me oyes?");
    ana.say("sí");
    bea.expect("ana: sí");
    drop(zed);
    ana.finish_ok();
    bea.finish_ok();
}

#[test]
fn a_hello_with_a_linked_name_and_a_new_session_does_not_drop_the_real_link() {
    let mut ana = peer("ana", &[]);
    let a = ana.addr();
    let mut bea = peer("bea", &[a]);
    let b = bea.addr();
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));

    let mut fake = RawLink::join(a, "bea", Some(b.to_string()), 0xdead_beef);
    // Refused (after, perhaps, a Peers frame).
    let reason = loop {
        match fake.recv() {
            Some(Wire::Refuse { reason }) => break reason,
            Some(Wire::Peers { .. }) => continue,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    assert!(reason.contains("\"bea\""), "{reason}");
    ana.expect_match("ana refusing the second bea", |l| {
        l.starts_with("* refused bea: ")
    });

    ana.say("sigo aquí");
    bea.expect("ana: sigo aquí");
    bea.say("yo también");
    ana.expect("bea: yo también");
    drop(fake);
    let ana_lines = ana.finish_ok();
    bea.finish_ok();
    let all = ana_lines.join("\n");
    assert!(
        !ana_lines.iter().any(|l| l.starts_with("* bea left")),
        "{all}"
    );
    assert_eq!(
        ana_lines.iter().filter(|l| **l == joined("bea")).count(),
        1,
        "{all}"
    );
}

/// Threads of process `pid`, from `/proc` (`None` off Linux).
fn threads(pid: u32) -> Option<u64> {
    procfs::status_field(pid, "Threads")
}

/// Names of the threads of process `pid`, for a failure message.
fn thread_names(pid: u32) -> String {
    procfs::thread_names(pid).unwrap_or_default().join(", ")
}

#[test]
fn gossip_of_1024_addresses_dials_through_a_bounded_number_of_threads() {
    let mut ana = peer("ana", &[]);
    let a = ana.addr();
    let base = threads(ana.pid());
    let mut zed = RawLink::join(a, "zed", None, 1);
    ana.expect(&joined("zed"));
    // 1,024 addresses on loopback where nothing listens: each dial is
    // refused at once.
    for frame in 0..16u32 {
        let peers = (0..64u32)
            .map(|i| format!("127.0.{}.{}:9", frame + 1, i + 1))
            .collect();
        zed.send(&Wire::Peers { peers });
    }
    zed.msg("zed", 1, "sync");
    ana.expect("zed: sync");
    // Bound: the listener, the event loop, a few of the app's own, one per
    // link (2 each), and the gossip dials allowed at once.
    let bound = |base: u64| base + 2 + 2 * mesh::MAX_DIALING as u64 + 4;
    if let Some(base) = base {
        let mut most = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            most = most.max(threads(ana.pid()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(most <= bound(base), "{most} threads, {base} before");
    }
    drop(zed);
    // Once the dials are done and zed is gone, the threads come back down.
    if let Some(base) = base {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = threads(ana.pid()).unwrap_or(0);
            if now <= base {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{now} threads, {base} before: {}",
                thread_names(ana.pid())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The peer still links and talks.
    let mut bea = peer("bea", &[a]);
    ana.expect(&joined("bea"));
    bea.expect(&joined("ana"));
    bea.say("hola");
    ana.expect("bea: hola");
    ana.finish_ok();
    bea.finish_ok();
}
