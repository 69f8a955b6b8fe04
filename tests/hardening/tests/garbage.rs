//! Garbage against the real servers on loopback: random bytes on every
//! server, names with control characters, and file-transfer metadata that
//! lies. Each gets a clear error (an answer, or a close with a reason in the
//! log), never a crash, and the server goes on serving.
//!
//! Invalid UTF-8 and unknown chat commands are shown by
//! `apps/chat/tests/e2e.rs` (`bad_input_gets_an_error_line`), a frame that is
//! not MessagePack on a peer link by `apps/peer/tests/e2e.rs`
//! (`a_hello_the_peer_cannot_accept_is_refused_and_the_mesh_goes_on`), and
//! file names that leave the directory by `apps/files/tests/e2e.rs`.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;

use trama_backend::files::{Answer, Done, Offer, Verdict, CODEC, MAX_CONTROL_FRAME};
use trama_backend::mesh::{self, Wire};
use trama_hardening::{
    bin, count_in_log, none_starting_with, scratch, serve, wait_for_count, wait_for_log, Framed,
    Rng,
};
use trama_test_support::console::Console;
use trama_test_support::ServerProcess;

/// Connections of random bytes per server.
const ROUNDS: u64 = 20;

/// `ROUNDS` connections that each send 4 KiB of random bytes and close;
/// each must be closed by the server (not left hanging).
fn spray(addr: SocketAddr, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..ROUNDS {
        let mut c = Framed::connect(addr);
        let bytes = rng.bytes(4096);
        // The server may close as soon as the header is read: a failed
        // write is fine, a hang is not.
        let _ = c.stream.write_all(&bytes);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        assert!(c.wait_closed(), "random bytes left the connection open");
    }
}

fn welcome_name(c: &mut Framed) -> String {
    let welcome = c.recv_until("the welcome", |l| l.starts_with("* welcome, "));
    welcome["* welcome, ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn random_bytes_on_the_echo_and_chat_servers_end_in_a_logged_protocol_error() {
    for (program, args) in [
        ("trama-echo", &["serve", "--framed"][..]),
        ("trama-chat", &["serve"][..]),
    ] {
        let server = serve(program, args);
        let mut good = Framed::connect(server.addr());
        spray(server.addr(), 18);
        wait_for_count(&server, "dropped: protocol error: ", ROUNDS as usize);
        good.send(b"/who");
        // The echo server echoes it; the room answers it (after the notices
        // of the sprayers' comings and goings).
        good.recv_until("an answer to /who", |l| {
            l == "/who" || l.starts_with("* here (")
        });
    }
}

#[test]
fn random_bytes_on_a_file_receiver_are_a_bad_offer_and_nothing_is_written() {
    let dir = scratch("random-files");
    let server = serve(
        "trama-files",
        &[
            "receive",
            "--dir",
            dir.to_str().unwrap(),
            "--stall-timeout",
            "60s",
        ],
    );
    spray(server.addr(), 19);
    wait_for_count(&server, "bad offer: ", ROUNDS as usize);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // A real offer is still answered.
    let mut c = Framed::connect(server.addr());
    c.send(&CODEC.to_vec(&Offer::new("ok.bin", 0, false)).unwrap());
    let answer: Answer = CODEC.decode(&c.recv().unwrap().unwrap()).unwrap();
    assert_eq!(answer, Answer::Ready { offset: 0 });
}

/// `trama-peer --name ana` listening on a free port.
fn peer() -> (Console, SocketAddr) {
    let mut cmd = Command::new(bin("trama-peer"));
    cmd.args([
        "--name",
        "ana",
        "--listen",
        "127.0.0.1:0",
        "--wait",
        "200ms",
    ]);
    let mut ana = Console::spawn("trama-peer ana", cmd);
    let addr = ana.addr();
    (ana, addr)
}

/// A raw link to a peer, past its Hello.
fn link(addr: SocketAddr) -> Framed {
    let mut c = Framed::connect(addr);
    let hello = Wire::decode(&c.recv().unwrap().unwrap()).unwrap();
    assert_eq!(hello.kind(), "Hello");
    c
}

#[test]
fn random_bytes_on_a_peer_link_are_refused_and_the_peer_goes_on() {
    let (ana, addr) = peer();
    spray(addr, 20);
    // A well-behaved peer is still greeted and accepted.
    let mut bea = link(addr);
    let hello = Wire::Hello {
        version: mesh::PROTOCOL_VERSION,
        name: "bea".into(),
        listen: None,
        peers: Vec::new(),
        session: 0,
        next: 0,
    };
    bea.send(&hello.encode().unwrap());
    let line = Wire::Msg {
        origin: "bea".into(),
        seq: 1,
        text: "hola después de la basura".into(),
        reached: Vec::new(),
    };
    bea.send(&line.encode().unwrap());
    let mut ana = ana;
    ana.expect_seen("bea's line", |l| l.contains("hola después de la basura"));
    ana.kill();
}

#[test]
fn names_with_control_characters_are_refused_with_the_character() {
    let server = serve("trama-chat", &["serve"]);
    let mut c = Framed::connect(server.addr());
    let name = welcome_name(&mut c);
    for (bad, why) in [
        ("a\u{7}b", "character 2 of the name is not allowed (U+0007)"),
        (
            "\u{1b}[31mrojo",
            "character 1 of the name is not allowed (U+001B)",
        ),
        (
            "tab\tname",
            "character 4 of the name is not allowed (U+0009)",
        ),
        (
            "n\u{85}el",
            "character 2 of the name is not allowed (U+0085)",
        ),
        ("*admin", "a name cannot start with / or *"),
    ] {
        c.send(format!("/nick {bad}").as_bytes());
        assert_eq!(c.recv_text(), format!("error: {why}"), "for {bad:?}");
    }
    // A line break inside the command is part of the name, and refused.
    c.send(b"/nick ana\nroot");
    assert_eq!(
        c.recv_text(),
        "error: character 4 of the name is not allowed (U+000A)"
    );
    // Still in the room under the old name.
    c.send(b"/who");
    assert_eq!(c.recv_text(), format!("* here (1): {name}"));
}

/// A raw sender on the file protocol.
fn offer(c: &mut Framed, offer: &Offer) -> Answer {
    c.send(&CODEC.to_vec(offer).unwrap());
    CODEC.decode(&c.recv().unwrap().unwrap()).unwrap()
}

fn receiver(dir: &std::path::Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "receive",
        "--dir",
        dir.to_str().unwrap(),
        "--stall-timeout",
        "60s",
    ];
    args.extend_from_slice(extra);
    serve("trama-files", &args)
}

#[test]
fn file_metadata_that_lies_gets_a_clear_error_and_no_file() {
    let dir = scratch("lying-files");
    let server = receiver(&dir, &["--max-size", "1MiB"]);

    // A size far past the limit.
    let mut c = Framed::connect(server.addr());
    let answer = offer(&mut c, &Offer::new("enorme.bin", u64::MAX, true));
    match answer {
        Answer::Refused { reason } => assert!(
            reason.contains("18446744073709551615 bytes") && reason.contains("at most 1048576"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }

    // 1000 bytes promised, 10 sent, then gone: kept for a resume, not stored.
    assert_eq!(
        offer(&mut c, &Offer::new("corto.bin", 1000, false)),
        Answer::Ready { offset: 0 }
    );
    c.stream.write_all(b"0123456789").unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    wait_for_log(&server, "corto.bin: connection lost after 10 of 1000 bytes");
    assert!(!dir.join("corto.bin").exists());

    // 10 bytes promised, 30 sent: the extra bytes are read as the end
    // message, whose "header" (`abcd`) is refused.
    let mut c = Framed::connect(server.addr());
    assert_eq!(
        offer(&mut c, &Offer::new("largo.bin", 10, false)),
        Answer::Ready { offset: 0 }
    );
    c.stream
        .write_all(b"0123456789abcdefghijklmnopqrst")
        .unwrap();
    wait_for_log(
        &server,
        "largo.bin: bad end of file message: frame of 1633837924 bytes",
    );
    assert!(c.wait_closed());
    assert!(!dir.join("largo.bin").exists());

    // A digest promised, and something else sent.
    let mut c = Framed::connect(server.addr());
    assert_eq!(
        offer(&mut c, &Offer::new("firmado.bin", 3, true)),
        Answer::Ready { offset: 0 }
    );
    c.stream.write_all(b"abc").unwrap();
    c.send(
        &CODEC
            .to_vec(&Done {
                digest: Some("zz".into()),
            })
            .unwrap(),
    );
    let verdict: Verdict = CODEC.decode(&c.recv().unwrap().unwrap()).unwrap();
    assert!(!verdict.ok);
    assert_eq!(
        verdict.message,
        "the sender's digest \"zz\" is not 64 hex digits"
    );
    assert!(!dir.join("firmado.bin").exists());
    assert!(none_starting_with(&dir, ".trama-firmado"));

    // An offer that is not an offer: MessagePack of the wrong shape, and
    // bytes that are not MessagePack at all.
    for (payload, why) in [
        (
            &b"\x81\xa4name\xa3a.b"[..],
            "bad offer: msgpack decode failed on a 10-byte payload",
        ),
        (
            &b"\xc1\xc1\xc1"[..],
            "bad offer: msgpack decode failed on a 3-byte payload",
        ),
    ] {
        let mut c = Framed::connect(server.addr());
        c.send(payload);
        assert!(c.wait_closed());
        wait_for_log(&server, why);
    }
    assert!(!dir.join("a.b").exists());
}

#[test]
fn an_offer_larger_than_a_control_message_is_refused_at_its_header() {
    // The receiver would otherwise wait for (and hold) up to 16 MiB per
    // sender for one offer; a control message is at most 64 KiB.
    let dir = scratch("big-offer");
    let server = receiver(&dir, &[]);
    let mut c = Framed::connect(server.addr());
    let announced = MAX_CONTROL_FRAME as u32 + 1;
    c.stream.write_all(&announced.to_be_bytes()).unwrap();
    assert!(
        c.wait_closed(),
        "the receiver waited for a {announced}-byte offer"
    );
    wait_for_log(
        &server,
        &format!("bad offer: frame of {announced} bytes exceeds the limit of {MAX_CONTROL_FRAME}"),
    );
    assert_eq!(count_in_log(&server, "bad offer"), 1);
}
