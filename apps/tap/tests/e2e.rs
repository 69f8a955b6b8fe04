//! End-to-end tests of `trama-tap`: the real binary between real trama
//! servers (`trama-echo`, `trama-chat`) and real clients (`trama-chat join`,
//! Rust sockets, a Python program written from the notes' framed format).
//!
//! Nothing here measures time: steps are put in order by waiting for a line
//! or a byte that can only come after the previous step took effect, and the
//! deadlines only make a broken build fail instead of hang.
//!
//! `trama-echo` and `trama-chat` are looked for next to the `trama-tap`
//! binary and built once if they are not there, so `cargo test -p trama-tap`
//! works on its own. The 1 GiB transparency run is `#[ignore]`d (about 40 s in
//! a debug build): `cargo test -p trama-tap --test e2e -- --ignored`.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::mpsc;

use common::{chat_server, connect, echo, frame, join, ok, sibling, tap, TAP};
use serde_json::Value;
use trama_test_support::console::{Console, DEADLINE};
use trama_test_support::{run_command, RunOutput, ServerProcess};

fn recv_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header)?;
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut payload)?;
    Ok(payload)
}

/// The JSON object of a `--json` line.
fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Wait for a `--json` line whose fields include all of `want`.
fn expect_json(tap: &mut Console, want: Value) -> Value {
    let fits = |line: &str| {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        want.as_object()
            .unwrap()
            .iter()
            .all(|(k, w)| v.get(k) == Some(w))
    };
    json(&tap.expect_match(&want.to_string(), fits))
}

/// `count` frames of `size` pseudo-random bytes through `addr` and back
/// (an echo server behind it), a writer thread and this thread reading at
/// once; returns the digests of what was sent and what came back.
fn pump_through(addr: SocketAddr, count: usize, size: usize) -> (u64, u64, u64) {
    let mut s = connect(addr);
    let mut w = s.try_clone().unwrap();
    // At most this many frames in flight, so the echo server's outbound
    // queue stays small whatever the speeds.
    let (ack, acks) = mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut h = DefaultHasher::new();
        let mut x: u64 = 0x1234_5678;
        let mut payload = vec![0u8; size];
        for i in 0..count {
            if i >= 4 {
                acks.recv().unwrap();
            }
            for chunk in payload.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            h.write(&payload);
            w.write_all(&frame(&payload)).unwrap();
        }
        w.shutdown(Shutdown::Write).unwrap();
        h.finish()
    });
    let mut h = DefaultHasher::new();
    let mut bytes = 0u64;
    for _ in 0..count {
        let p = recv_frame(&mut s).unwrap();
        bytes += p.len() as u64;
        h.write(&p);
        let _ = ack.send(());
    }
    assert_eq!(
        s.read(&mut [0u8; 1]).unwrap(),
        0,
        "more than was sent came back"
    );
    (writer.join().unwrap(), h.finish(), bytes)
}

fn transparency(count: usize, size: usize) {
    let server = echo(&["--framed", "--max-outbound", "64MiB"]);
    let (mut tap, addr) = tap(server.addr(), &["--json", "--show", "16"]);
    let (sent, got, bytes) = pump_through(addr, count, size);
    assert_eq!(bytes, (count * size) as u64);
    assert_eq!(sent, got, "the bytes that came back differ from those sent");
    expect_json(&mut tap, serde_json::json!({"event": "close", "conn": 1}));
    let lines = tap.kill();
    // Every stdout line is one JSON object; every frame was seen both ways.
    let values: Vec<Value> = lines.iter().map(|l| json(l)).collect();
    for dir in ["c2s", "s2c"] {
        let frames: Vec<&Value> = values
            .iter()
            .filter(|v| v["event"] == "frame" && v["dir"] == dir)
            .collect();
        assert_eq!(frames.len(), count, "{dir} frames shown");
        assert!(frames.iter().all(|f| f["len"] == size && f["shown"] == 16));
    }
}

#[test]
fn transparent_both_ways_with_decoding_on() {
    transparency(64, 1 << 20);
}

#[test]
fn quiet_mode_is_transparent_too() {
    // --quiet watches nothing, so on Linux the kernel moves the bytes.
    let server = echo(&["--framed", "--max-outbound", "64MiB"]);
    // A fault on the answers: c2s is spliced, s2c copied and disturbed.
    let (mut tap, addr) = tap(
        server.addr(),
        &["--quiet", "--fault", "s2c:delay-frame=3:1ms"],
    );
    let (sent, got, bytes) = pump_through(addr, 16, 1 << 20);
    assert_eq!(bytes, 16 << 20);
    assert_eq!(sent, got);
    // The fault is still logged, on stderr.
    tap.expect_stderr("s2c <- FAULT frame 3 delayed by 1ms");
    tap.close_input();
    assert!(tap.kill().is_empty(), "--quiet printed on stdout");
}

#[test]
#[ignore = "1 GiB each way: about 40 s in a debug build; run with -- --ignored"]
fn transparent_for_a_gibibyte_both_ways() {
    transparency(1024, 1 << 20);
}

#[test]
fn frames_are_printed_decoded_as_they_pass() {
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(server.addr(), &[]);
    let mut s = connect(addr);
    s.write_all(&frame(br#"{"1": "Hola", "2": "Chao"}"#))
        .unwrap();
    recv_frame(&mut s).unwrap();
    // A line is printed while the connection is still open.
    tap.expect_match("the JSON frame, decoded", |l| {
        // As sent: the payload's own spacing and key order.
        l.contains("#1 s2c <- frame 1 26 bytes json: {\"1\": \"Hola\", \"2\": \"Chao\"}")
    });
    s.write_all(&frame(&[0u8, 1, 2, 0xff])).unwrap();
    recv_frame(&mut s).unwrap();
    tap.expect_match("the binary frame, in hex", |l| {
        l.contains("#1 c2s -> frame 2 4 bytes hex: 00 01 02 ff")
    });
    s.write_all(&frame(&[b'a'; 100])).unwrap();
    recv_frame(&mut s).unwrap();
    tap.expect_match("a long frame, cut", |l| {
        l.contains("#1 c2s -> frame 3 100 bytes (first 64 shown) text: aaaa")
    });
    tap.kill();
}

#[test]
fn an_oversize_header_is_reported_and_its_bytes_still_pass() {
    // The notes' unframed echo server returns the bytes as they are.
    let server = echo(&[]);
    let (mut tap, addr) = tap(server.addr(), &["--json"]);
    let mut s = connect(addr);
    let mut sent = frame(b"ok");
    sent.extend_from_slice(b"\xff\xff\xff\xffgarbage after a lying header");
    s.write_all(&sent).unwrap();
    let mut back = vec![0u8; sent.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, sent);
    for dir in ["c2s", "s2c"] {
        expect_json(
            &mut tap,
            serde_json::json!({"event": "oversize", "dir": dir, "frame": 2,
                               "len": 4294967295u64, "limit": 16777216, "header": "ff ff ff ff"}),
        );
    }
    tap.kill();
}

#[test]
fn raw_mode_shows_chunks_and_refuses_frame_faults() {
    let server = echo(&[]);
    let (mut tap, addr) = tap(server.addr(), &["--raw"]);
    let mut cmd = Command::new(sibling("trama-echo"));
    cmd.args([
        "send",
        "--raw",
        "--addr",
        &addr.to_string(),
        "--json",
        r#"{"1": "Hola"}"#,
    ]);
    let (status, stdout, stderr) = ok(run_command(cmd, DEADLINE));
    assert!(status.success(), "{stdout}{stderr}");
    tap.expect_match("the raw chunk, as JSON", |l| {
        l.contains("c2s -> chunk 1 12 bytes json: {\"1\":\"Hola\"}")
    });
    tap.kill();

    let mut cmd = Command::new(TAP);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--to",
        &server.addr().to_string(),
        "--raw",
    ])
    .args(["--fault", "c2s:drop=1"]);
    let (status, _, stderr) = ok(run_command(cmd, DEADLINE));
    // A command line asking the impossible is bad usage, refused before listening.
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("drop=1 needs frames, but the stream is unframed"),
        "{stderr}"
    );
}

/// `trama-tap ARGS...`, its status and stderr.
fn status_of(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(TAP);
    cmd.args(args).env_remove("RUST_LOG");
    let (status, _, stderr) = ok(run_command(cmd, DEADLINE));
    (status.code(), stderr)
}

#[test]
fn exit_statuses_follow_the_table_of_every_app() {
    // Bad usage: a fault that does not parse, a flag that does not exist.
    let (code, stderr) = status_of(&[
        "-l",
        "127.0.0.1:0",
        "-t",
        "127.0.0.1:9",
        "--fault",
        "c2s:bogus=1",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown fault"), "{stderr}");
    assert_eq!(status_of(&["--no-such-flag"]).0, Some(2));
    // Failure: it could not do what was asked (a recording that is not there).
    let missing = std::env::temp_dir().join(format!("trama-tap-e2e-none-{}", std::process::id()));
    let (code, stderr) = status_of(&["replay", missing.to_str().unwrap(), "-t", "127.0.0.1:9"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("trama-tap: "), "{stderr}");
}

#[test]
fn split_at_every_byte_chat_still_works() {
    let server = chat_server();
    let (mut tap, addr) = tap(server.addr(), &["--fault", "both:split=1,pause=1ms"]);
    let mut ana = join(addr, "ana");
    let mut bea = join(addr, "bea");
    ana.say("hola, ¿me lees byte a byte?");
    bea.expect("ana: hola, ¿me lees byte a byte?");
    bea.say("sí, todo llega");
    ana.expect("bea: sí, todo llega");
    tap.expect_match("the split fault logged", |l| {
        l.contains("FAULT writes split into pieces of 1 byte")
    });
    bea.finish_ok();
    ana.finish_ok();
    tap.kill();
}

/// A chat server with a tap in front of it that injects `fault`; ana joins
/// through the tap, bea straight to the server, and bea has seen ana named.
fn ana_through_a_tap(fault: &str) -> (ServerProcess, Console, Console, Console) {
    let server = chat_server();
    let (tap, addr) = tap(server.addr(), &["--fault", fault]);
    let mut bea = join(server.addr(), "bea");
    let ana = join(addr, "ana");
    bea.expect_match("ana named", |l| l.ends_with(" is now ana"));
    (server, tap, ana, bea)
}

#[test]
fn a_cut_mid_frame_from_the_client_is_reported_by_both_sides() {
    // ana's frame 1 is "/nick ana"; frame 2 is cut after 6 of its 12 bytes.
    let (_server, mut tap, mut ana, mut bea) = ana_through_a_tap("c2s:cut=2");
    ana.say("hola a todos");
    tap.expect_match("the cut logged", |l| {
        l.contains(
            "c2s -> FAULT connection cut in the middle of frame 2 after 6 of 12 payload bytes",
        )
    });
    // The server names the truncated frame; the room goes on.
    let left = bea.expect_match("ana left, with the reason", |l| {
        l.starts_with("* ana left (")
    });
    assert!(left.contains("6 of 12 payload bytes"), "{left}");
    let done = ana.wait_exit();
    assert_eq!(done.status.code(), Some(1), "join: {}", done.stderr);
    assert!(
        done.stderr.contains("closed the connection"),
        "{}",
        done.stderr
    );
    bea.finish_ok();
    tap.kill();
}

/// `trama-echo send --text TEXT --timeout TIMEOUT` to `addr`: its status,
/// stdout and stderr.
fn echo_send(addr: SocketAddr, text: &str, timeout: &str) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(sibling("trama-echo"));
    cmd.args([
        "send",
        "--addr",
        &addr.to_string(),
        "--text",
        text,
        "--timeout",
        timeout,
    ]);
    ok(run_command(cmd, DEADLINE))
}

#[test]
fn a_cut_mid_frame_from_the_server_is_reported_by_the_client() {
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(server.addr(), &["--fault", "s2c:cut=1"]);
    let (status, stdout, stderr) = echo_send(addr, "hola mundo", "20s");
    assert!(!status.success(), "{stdout}");
    assert!(stderr.contains("5 of 10 payload bytes"), "{stderr}");
    tap.expect_match("the cut logged", |l| {
        l.contains(
            "s2c <- FAULT connection cut in the middle of frame 1 after 5 of 10 payload bytes",
        )
    });
    tap.kill();
}

#[test]
fn a_corrupt_header_gets_that_client_dropped_and_the_server_serves_others() {
    let (server, mut tap, mut ana, mut bea) = ana_through_a_tap("c2s:corrupt-header=2:ffffffff");
    ana.say("esto no llega");
    tap.expect_match("the corruption logged", |l| {
        l.contains("c2s -> FAULT frame 2: header 00 00 00 0d replaced by ff ff ff ff")
    });
    let left = bea.expect_match("ana dropped", |l| l.starts_with("* ana left ("));
    assert!(left.contains("4294967295"), "{left}");
    let done = ana.wait_exit();
    assert_eq!(done.status.code(), Some(1), "join: {}", done.stderr);
    // Others are still served.
    let mut cid = join(server.addr(), "cid");
    bea.expect_match("cid named", |l| l.ends_with(" is now cid"));
    cid.say("sigo aquí");
    bea.expect("cid: sigo aquí");
    cid.finish_ok();
    bea.finish_ok();
    tap.kill();
}

#[test]
fn drop_and_duplicate_frames() {
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(
        server.addr(),
        &["--json", "--fault", "c2s:drop=2,duplicate=3"],
    );
    let mut s = connect(addr);
    for p in [&b"uno"[..], b"dos", b"tres", b"cuatro"] {
        s.write_all(&frame(p)).unwrap();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    while let Ok(p) = recv_frame(&mut s) {
        got.push(String::from_utf8(p).unwrap());
    }
    assert_eq!(got, ["uno", "tres", "tres", "cuatro"]);
    expect_json(
        &mut tap,
        serde_json::json!({"event": "fault", "dir": "c2s",
                                             "what": "frame 2 (3 bytes) dropped"}),
    );
    expect_json(
        &mut tap,
        serde_json::json!({"event": "fault", "dir": "c2s",
                                             "what": "frame 3 (4 bytes) sent twice"}),
    );
    tap.kill();
}

#[test]
fn delay_jitter_bandwidth_and_delayed_frames_keep_the_bytes_intact() {
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(
        server.addr(),
        &[
            "--fault",
            "c2s:delay=5ms,jitter=3ms,split=7",
            "--fault",
            "s2c:bandwidth=256KiB,delay-frame=2:20ms",
        ],
    );
    let (sent, got, bytes) = pump_through(addr, 8, 10_000);
    assert_eq!(bytes, 80_000);
    assert_eq!(sent, got);
    for fault in [
        "c2s -> FAULT every chunk delayed by 5ms ± 3ms",
        "s2c <- FAULT bandwidth limited to 262144 bytes/s",
        "s2c <- FAULT frame 2 delayed by 20ms",
    ] {
        tap.expect_seen(fault, |l| l.contains(fault));
    }
    tap.kill();
}

#[test]
fn close_and_reset_after_n_bytes() {
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(server.addr(), &["--fault", "s2c:close=6"]);
    let mut s = connect(addr);
    s.write_all(&frame(b"hola")).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"\x00\x00\x00\x04ho");
    tap.expect_match("close logged", |l| {
        l.contains("s2c <- FAULT connection closed after 6 bytes")
    });
    tap.kill();

    let (mut tap, addr) = tap_reset(server.addr());
    let mut s = connect(addr);
    s.write_all(&frame(b"hola")).unwrap();
    let mut buf = [0u8; 16];
    let err = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("an orderly end instead of a reset"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    tap.expect_match("reset logged", |l| {
        l.contains("c2s -> FAULT connection reset after 0 bytes")
    });
    tap.kill();
}

fn tap_reset(to: SocketAddr) -> (Console, SocketAddr) {
    tap(to, &["--fault", "c2s:reset"])
}

#[test]
fn a_stall_keeps_the_connection_open_and_the_client_times_out() {
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(server.addr(), &["--fault", "s2c:stall"]);
    let (status, stdout, stderr) = echo_send(addr, "¿hola?", "1s");
    assert!(
        !status.success(),
        "an answer came through a stall: {stdout}"
    );
    assert!(stderr.contains("timed out"), "{stderr}");
    tap.expect_match("stall logged", |l| {
        l.contains("s2c <- FAULT stalled after 0 bytes")
    });
    // The tap saw the answer the server sent, though it forwarded none of it.
    tap.expect_seen("the answer seen", |l| {
        l.contains("s2c <- frame 1 7 bytes text: ¿hola?")
    });
    tap.kill();
}

fn replay(file: &Path, to: SocketAddr) -> RunOutput {
    let mut cmd = Command::new(TAP);
    cmd.arg("replay")
        .arg(file)
        .args(["--to", &to.to_string(), "--timeout", "5s"])
        .env_remove("RUST_LOG");
    ok(run_command(cmd, DEADLINE))
}

#[test]
fn record_then_replay_against_the_echo_server() {
    let dir = std::env::temp_dir().join(format!("trama-tap-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("session.jsonl");
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(server.addr(), &["--record", file.to_str().unwrap()]);
    let mut s = connect(addr);
    for p in [&b"uno"[..], b"{\"n\": 2}", &[0xffu8; 3000]] {
        s.write_all(&frame(p)).unwrap();
        assert_eq!(recv_frame(&mut s).unwrap(), p);
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
    tap.expect_match("the connection closed", |l| l.contains("#1 closed"));
    tap.kill();

    // Against another echo server: the same answers.
    let other = echo(&["--framed"]);
    let (status, stdout, stderr) = replay(&file, other.addr());
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("connection 1: 3 answer frame(s), all as recorded"),
        "{stdout}"
    );
    assert!(stdout.contains("all answers match"), "{stdout}");

    // Against a chat server: different answers, the verdict status 3 (it
    // ran, and the answer is no), and where.
    let chat = chat_server();
    let (status, stdout, stderr) = replay(&file, chat.addr());
    assert_eq!(status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains("connection 1: answer frame 1 differs: expected 3 bytes, text `uno`; got"),
        "{stdout}"
    );
    assert!(stdout.contains("1 with differences"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn a_python_client_through_the_tap_to_chat_with_its_frames_shown() {
    let server = chat_server();
    let (mut tap, addr) = tap(server.addr(), &["--json"]);
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let mut py = Console::python("chat_client.py", "chat_client.py", &[&host, &port]);
    py.expect_match("welcome", |l| l.starts_with("* welcome, "));
    py.say("/nick py");
    py.expect("* you are now py");
    py.say("hola, soy python");
    let mut ana = join(server.addr(), "ana");
    py.say("¿y tú?");
    ana.expect("py: ¿y tú?");
    for (dir, payload) in [
        ("c2s", "/nick py"),
        ("s2c", "* you are now py"),
        ("c2s", "hola, soy python"),
        ("c2s", "¿y tú?"),
    ] {
        let v = expect_json(
            &mut tap,
            serde_json::json!({"event": "frame", "dir": dir, "kind": "text", "payload": payload}),
        );
        assert_eq!(v["len"], payload.len());
    }
    py.finish_ok();
    ana.finish_ok();
    tap.kill();
}

#[test]
fn the_tap_speaks_tls_and_the_key_to_the_server_for_a_plain_client() {
    let dir = std::env::temp_dir().join(format!("trama-tap-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = ok(ok(trama_test_support::pki::Pki::new()).write_to(&dir));
    let key_file = dir.join("authkey");
    std::fs::write(&key_file, "secreto\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (cert, key, ca, authkey) = (
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        pki.ca.to_str().unwrap(),
        key_file.to_str().unwrap(),
    );
    let server = echo(&[
        "--framed",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--key-file",
        authkey,
    ]);
    let (mut tap, addr) = tap(
        server.addr(),
        &[
            "--json",
            "--tls-ca",
            ca,
            "-k",
            authkey,
            "--keepalive",
            "10s",
        ],
    );
    // The client speaks neither TLS nor the key: the tap does, for it.
    let mut s = connect(addr);
    s.write_all(&frame(b"hola")).unwrap();
    assert_eq!(recv_frame(&mut s).unwrap(), b"hola");
    // The frames shown are the decrypted ones.
    for dir in ["c2s", "s2c"] {
        expect_json(
            &mut tap,
            serde_json::json!({"event": "frame", "dir": dir, "payload": "hola"}),
        );
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(s.read(&mut [0u8; 1]).unwrap_or(0), 0);
    tap.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
