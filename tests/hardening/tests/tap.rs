//! The server-to-client direction disturbed by `trama-tap` (the fault
//! schedules of `trama_tap::fault` in a proxy between a real client and
//! a real server): a client that gets a lying header or a frame cut in the
//! middle reports it with the numbers and exits, instead of waiting for
//! 4 GiB or taking half a frame for a whole one.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;

use trama_hardening::{bin, ok, serve, wait_for_any, Framed};
use trama_test_support::console::Console;
use trama_test_support::ServerProcess;

/// `trama-tap` in front of `to`, applying `fault`.
fn tap(to: SocketAddr, fault: &str) -> ServerProcess {
    let mut cmd = Command::new(bin("trama-tap"));
    cmd.args(["--listen", "127.0.0.1:0", "--to", &to.to_string()])
        .args(["--fault", fault, "--quiet"]);
    ok(ServerProcess::from_command(cmd))
}

#[test]
fn a_client_told_of_a_4_gib_frame_says_so_and_exits() {
    let server = serve("trama-chat", &["serve"]);
    // The server's second frame to the client ("* you are now ana")
    // announces 4 GiB - 1 bytes.
    let tap = tap(server.addr(), "s2c:corrupt-header=2:ffffffff");
    let mut cmd = Command::new(bin("trama-chat"));
    cmd.args(["join", "--addr", &tap.addr().to_string(), "--name", "ana"]);
    let mut ana = Console::spawn("join ana", cmd);
    ana.expect_seen("the welcome", |l| l.starts_with("* welcome"));
    let end = ana.wait_exit();
    assert_eq!(end.status.code(), Some(1), "{}", end.stderr);
    assert!(
        end.stderr
            .contains("frame of 4294967295 bytes exceeds the limit of 16777216"),
        "{}",
        end.stderr
    );
    // The server saw the client leave (a FIN, or a reset when the client
    // exited with bytes unread); the room goes on.
    wait_for_any(
        &server,
        &[
            "disconnected: peer closed the connection",
            "dropped: i/o error: Connection reset",
        ],
    );
    let mut bea = Framed::connect(server.addr());
    bea.recv_until("the welcome", |l| l.starts_with("* welcome"));
}

#[test]
fn a_frame_cut_on_its_way_to_the_client_is_an_error_with_the_numbers() {
    let server = serve("trama-echo", &["serve", "--framed"]);
    // The second frame from the server: its header and half its payload,
    // then the tap closes both sides.
    let tap = tap(server.addr(), "s2c:cut=2");
    let mut c = Framed::connect(tap.addr());
    c.send(b"uno");
    assert_eq!(c.recv_text(), "uno");
    c.send(b"0123456789");
    let e = c.recv().unwrap_err();
    assert_eq!(e.to_string(), "stream ended after 5 of 10 payload bytes");
}
