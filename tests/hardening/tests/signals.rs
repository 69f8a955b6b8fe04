//! Processes that die or are stopped: a client killed with SIGKILL in the
//! middle of a frame, a server killed with SIGKILL in the middle of a frame,
//! and servers stopped with SIGINT or SIGTERM, which must tell their clients
//! (an orderly end of stream between frames), close every connection, and
//! exit 0.
//!
//! A `trama-files` sender killed mid-file is shown by
//! `apps/files/tests/e2e.rs` (`killed_sender_runs_again_and_resumes`), a
//! receiver killed and restarted under a sender by
//! `sender_retries_through_a_receiver_restart_and_resumes`, and
//! `trama-chat join` losing its server by
//! `apps/chat/tests/e2e.rs` (`join_exits_2_when_the_server_goes_away`).

// Everything in this file is test code: helpers panic to fail the test.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use trama_hardening::{bin, ok, scratch, serve, signal, wait_for_log, Framed, DEADLINE};
use trama_protocol::{Error, FrameConfig, FrameReader};
use trama_test_support::console::Console;
use trama_test_support::{python3, ServerProcess};

/// A Python client that joins the room, reads its welcome, sends a header
/// for 10 bytes and 5 of them, prints its address, and waits to be killed.
const HALF_A_FRAME: &str = r#"
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
(n,) = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))
s.recv(n, socket.MSG_WAITALL)
s.sendall(struct.pack(">I", 10) + b"hola ")
print("%s:%d" % s.getsockname(), flush=True)
time.sleep(120)
"#;

#[test]
fn a_client_killed_mid_frame_is_dropped_with_the_reason_and_the_room_is_told() {
    let server = serve("trama-chat", &["serve"]);
    let mut ana = Framed::connect(server.addr());
    ana.recv_until("the welcome", |l| l.starts_with("* welcome"));

    let mut child = Command::new(ok(python3()))
        .args(["-c", HALF_A_FRAME, &server.addr().port().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut local = String::new();
    out.read_line(&mut local).unwrap();
    let local = local.trim().to_string();
    assert!(!local.is_empty(), "the Python client printed no address");
    ana.recv_until("the join notice", |l| l.ends_with(" joined"));

    signal(child.id(), "-KILL");
    child.wait().unwrap();
    let reason = "protocol error: stream ended after 5 of 10 payload bytes";
    wait_for_log(&server, &format!("{local} dropped: {reason}"));
    let left = ana.recv_until("the leave notice", |l| l.contains(" left ("));
    assert!(left.ends_with(&format!("left ({reason})")), "{left}");
    // The room goes on.
    ana.send(b"/who");
    ana.recv_until("the answer to /who", |l| l.starts_with("* here (1): "));
}

/// A socket reader that kills the server (once) after `left` bytes went
/// through: the frame reader above it is then in the middle of a payload.
struct KillAfter {
    inner: TcpStream,
    left: usize,
    server: Option<ServerProcess>,
}

impl Read for KillAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            if let Some(mut server) = self.server.take() {
                signal(server.pid(), "-KILL");
                ok(server.wait_exit(DEADLINE));
            }
            return self.inner.read(buf);
        }
        let n = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..n])?;
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn a_server_killed_mid_frame_is_a_clear_error_at_the_client() {
    const LEN: usize = 8 << 20;
    let server = serve("trama-echo", &["serve", "--framed"]);
    let mut c = Framed::connect(server.addr());
    c.send(&vec![7u8; LEN]);
    // The echo's header and first mebibyte arrive; then the server dies.
    let source = KillAfter {
        inner: c.stream.try_clone().unwrap(),
        left: 4 + (1 << 20),
        server: Some(server),
    };
    let e = FrameReader::new(source, FrameConfig::default())
        .read_frame()
        .unwrap_err();
    match &e {
        // The bytes the dead server had sent, then its end of stream.
        Error::TruncatedPayload { .. } => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("stream ended after ")
                    && msg.ends_with(&format!(" of {LEN} payload bytes")),
                "{msg}"
            );
        }
        // Or the kernel's reset, when the dead server had unread bytes.
        Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{io}"),
        other => panic!("{other:?}"),
    }
}

/// `trama-chat join --name NAME` against `addr`.
fn join(addr: std::net::SocketAddr, name: &str) -> Console {
    let mut cmd = Command::new(bin("trama-chat"));
    cmd.args(["join", "--addr", &addr.to_string(), "--name", name]);
    let mut c = Console::spawn(format!("join {name}"), cmd);
    c.expect(&format!("* you are now {name}"));
    c
}

fn chat_stops_cleanly_on(sig: &str) {
    let mut server = serve("trama-chat", &["serve"]);
    let mut ana = join(server.addr(), "ana");
    let bea = join(server.addr(), "bea");
    ana.expect("* user2 is now bea");
    let mut raw = Framed::connect(server.addr());
    raw.recv_until("the welcome", |l| l.starts_with("* welcome"));

    signal(server.pid(), sig);
    let status = ok(server.wait_exit(DEADLINE));
    assert!(status.success(), "serve exited with {status} after {sig}");
    let log = server.stderr_text();
    assert_eq!(
        log.matches("disconnected: server shutting down").count(),
        3,
        "{log}"
    );
    assert!(log.contains("stopped; "), "{log}");

    // Told: an orderly end of stream between frames, not a reset or a cut.
    loop {
        match raw.recv() {
            Ok(Some(_)) => {} // a notice sent before the shutdown
            Ok(None) => break,
            Err(e) => panic!("the raw client saw {e}, not an orderly end"),
        }
    }
    for console in [ana, bea] {
        let end = console.wait_exit();
        assert_eq!(end.status.code(), Some(1), "{}", end.stderr);
        assert!(
            end.stderr.contains("the server closed the connection"),
            "{}",
            end.stderr
        );
    }
}

#[test]
fn chat_serve_stops_cleanly_on_sigterm_and_its_clients_are_told() {
    chat_stops_cleanly_on("-TERM");
}

#[test]
fn chat_serve_stops_cleanly_on_sigint_and_its_clients_are_told() {
    chat_stops_cleanly_on("-INT");
}

#[test]
fn files_receive_stops_cleanly_on_sigterm_mid_transfer_and_keeps_the_partial_file() {
    use trama_backend::files::{Answer, Offer, CODEC};
    let dir = scratch("sigterm-files");
    let mut server = serve("trama-files", &["receive", "--dir", dir.to_str().unwrap()]);
    let mut c = Framed::connect(server.addr());
    c.send(&CODEC.to_vec(&Offer::new("mitad.bin", 1000, false)).unwrap());
    let answer: Answer = CODEC.decode(&c.recv().unwrap().unwrap()).unwrap();
    assert_eq!(answer, Answer::Ready { offset: 0 });
    std::io::Write::write_all(&mut c.stream, &[1u8; 400]).unwrap();
    wait_for_log(&server, "receiving mitad.bin");

    signal(server.pid(), "-TERM");
    let status = ok(server.wait_exit(DEADLINE));
    assert!(status.success(), "receive exited with {status}");
    wait_for_log(
        &server,
        "mitad.bin: connection lost after 400 of 1000 bytes",
    );
    // The sender is told: its connection ends.
    assert!(c.wait_closed());
    // What arrived is kept for a resume; nothing is stored as complete.
    assert!(!dir.join("mitad.bin").exists());
    let part = dir.join(trama_backend::files::partial_name("mitad.bin", 1000));
    assert_eq!(std::fs::metadata(part).unwrap().len(), 400);
}

#[test]
fn a_peer_stopped_with_sigterm_exits_0_and_the_mesh_is_told() {
    let mut cmd = Command::new(bin("trama-peer"));
    cmd.args(["--name", "ana", "--listen", "127.0.0.1:0"]);
    let mut ana = Console::spawn("peer ana", cmd);
    let a = ana.addr();
    let mut cmd = Command::new(bin("trama-peer"));
    cmd.args([
        "--name",
        "bea",
        "--listen",
        "127.0.0.1:0",
        "--peer",
        &a.to_string(),
    ]);
    let mut bea = Console::spawn("peer bea", cmd);
    bea.addr();
    ana.expect_seen("bea joined", |l| l.contains("bea joined"));
    bea.expect_seen("ana joined", |l| l.contains("ana joined"));

    signal(ana.pid(), "-TERM");
    let end = ana.wait_exit();
    assert!(
        end.status.success(),
        "ana exited with {}: {}",
        end.status,
        end.stderr
    );
    bea.expect_seen("ana left", |l| l.contains("ana left"));
    bea.kill();
}
