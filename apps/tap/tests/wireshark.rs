//! `trama-tap` into Wireshark: captures made with `--pcap` (and from a
//! recording), read by the real `tshark` with the dissector `trama-tap
//! dissector` prints. What tshark lists is compared with what the tap saw
//! and what the programs sent.
//!
//! tshark is Debian's package `tshark` (`.ci/run` installs it); these
//! tests fail, never skip, when it is missing. They run where .ci/run
//! installs it, on Linux; elsewhere they are ignored with that reason. The
//! 64 MiB capture takes about 10 s in a debug build (and 130 MB of the
//! temporary directory, removed after).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{chat_server, connect, echo, frame, join, ok, tap, TAP};
use serde_json::Value;
use trama_test_support::console::{Console, DEADLINE};
use trama_test_support::run_command;

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trama-wireshark-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `tshark`, or a failure that says how to get it.
fn tshark() -> &'static str {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tshark is not installed: these tests read the captures with it \
         (Debian: apt-get install tshark; .ci/run installs it)"
    );
    "tshark"
}

/// Stop the tap as Ctrl-C does and wait for it: it must exit 0, leaving
/// a complete capture. Returns what it printed.
#[cfg(unix)]
fn interrupt(tap: Console) -> Vec<String> {
    let status = Command::new("kill")
        .args(["-INT", &tap.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT: {status}");
    let done = tap.wait_exit();
    assert!(
        done.status.success(),
        "trama-tap exited with {} after Ctrl-C; stderr:\n{}",
        done.status,
        done.stderr
    );
    done.lines
}

#[cfg(not(unix))]
fn interrupt(_tap: Console) -> Vec<String> {
    unreachable!("the tests that stop a tap with Ctrl-C run on Linux")
}

/// `trama-tap dissector ARGS` saved in `dir`: its path.
fn dissector(dir: &Path, args: &[&str]) -> PathBuf {
    let (status, lua, stderr) = ok(run_command(
        {
            let mut c = Command::new(TAP);
            c.arg("dissector").args(args);
            c
        },
        DEADLINE,
    ));
    assert!(status.success(), "trama-tap dissector: {stderr}");
    let path = dir.join("trama.lua");
    std::fs::write(&path, lua).unwrap();
    path
}

/// One trama frame tshark shows: its TCP ports, length and text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shown {
    src: u16,
    dst: u16,
    len: u64,
    text: Option<String>,
}

/// Run tshark on `capture` with the dissector at `lua`, keeping the
/// packets `filter` selects: each trama frame it shows, in order.
fn frames(capture: &Path, lua: &Path, filter: &str) -> Vec<Shown> {
    let mut cmd = Command::new(tshark());
    cmd.arg("-X")
        .arg(format!("lua_script:{}", lua.display()))
        .arg("-r")
        .arg(capture)
        .args(["-Y", filter, "-T", "json"])
        .args(["-e", "tcp.srcport", "-e", "tcp.dstport"])
        .args(["-e", "trama.len", "-e", "trama.text"]);
    let (status, out, err) = ok(run_command(cmd, Duration::from_secs(600)));
    assert!(status.success(), "tshark failed: {err}");
    let packets: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .unwrap_or_else(|e| panic!("tshark's JSON does not parse ({e}): {out}"));
    let mut shown = Vec::new();
    for p in packets.as_array().unwrap() {
        let layers = &p["_source"]["layers"];
        let one = |name: &str| -> u16 { layers[name][0].as_str().unwrap().parse().unwrap() };
        let many = |name: &str| -> Vec<String> {
            layers[name]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let lens = many("trama.len");
        let texts = many("trama.text");
        for (i, len) in lens.iter().enumerate() {
            shown.push(Shown {
                src: one("tcp.srcport"),
                dst: one("tcp.dstport"),
                len: len.parse().unwrap(),
                // Text fields are only there when every frame has text.
                text: (texts.len() == lens.len()).then(|| texts[i].clone()),
            });
        }
    }
    shown
}

/// The packets of `capture` that `filter` selects, as tshark's one-line summaries.
fn summaries(capture: &Path, lua: &Path, filter: &str) -> Vec<String> {
    let mut cmd = Command::new(tshark());
    cmd.arg("-X")
        .arg(format!("lua_script:{}", lua.display()))
        .arg("-r")
        .arg(capture)
        .args(["-Y", filter]);
    let (status, out, err) = ok(run_command(cmd, Duration::from_secs(600)));
    assert!(status.success(), "tshark failed: {err}");
    out.lines().map(str::to_string).collect()
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs tshark, which .ci/run installs on Linux"
)]
fn a_chat_session_lists_exactly_the_frames_the_chat_sent() {
    let dir = scratch("chat");
    let capture = dir.join("chat.pcapng");
    let server = chat_server();
    let (mut tap, addr) = tap(
        server.addr(),
        &[
            "--json",
            "--show",
            "4096",
            "--pcap",
            capture.to_str().unwrap(),
        ],
    );
    let mut ana = join(addr, "ana");
    let mut bea = join(addr, "bea");
    ana.say("hola, ¿me ves en Wireshark?");
    bea.expect("ana: hola, ¿me ves en Wireshark?");
    bea.say("sí: 4 bytes de longitud y el texto");
    ana.expect("bea: sí: 4 bytes de longitud y el texto");
    bea.finish_ok();
    ana.finish_ok();
    for conn in [1, 2] {
        tap.expect_seen(&format!("connection {conn} closed"), |l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["event"] == "close" && v["conn"] == conn)
        });
    }
    let lines = interrupt(tap);

    // What the tap saw: each connection's client port, and its frames each way.
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut client_port = BTreeMap::new();
    for v in events.iter().filter(|v| v["event"] == "open") {
        let client: SocketAddr = v["client"].as_str().unwrap().parse().unwrap();
        client_port.insert(v["conn"].as_u64().unwrap(), client.port());
    }
    assert_eq!(client_port.len(), 2, "{lines:?}");
    let (tap_port, server_port) = (addr.port().to_string(), server.addr().port().to_string());
    let lua = dissector(&dir, &["--port", &tap_port, "--port", &server_port]);
    let front = frames(
        &capture,
        &lua,
        &format!("trama.len && tcp.port == {}", addr.port()),
    );
    for (conn, port) in &client_port {
        for (dir, src, dst) in [("c2s", *port, addr.port()), ("s2c", addr.port(), *port)] {
            let saw: Vec<(u64, Option<String>)> = events
                .iter()
                .filter(|v| v["event"] == "frame" && v["conn"] == *conn && v["dir"] == dir)
                .map(|v| {
                    (
                        v["len"].as_u64().unwrap(),
                        Some(v["payload"].as_str().unwrap().to_string()),
                    )
                })
                .collect();
            let listed: Vec<(u64, Option<String>)> = front
                .iter()
                .filter(|f| f.src == src && f.dst == dst)
                .map(|f| (f.len, f.text.clone()))
                .collect();
            assert!(!saw.is_empty(), "connection {conn} {dir}: no frames seen");
            assert_eq!(
                listed, saw,
                "connection {conn} {dir}: tshark's frames and the tap's"
            );
        }
    }
    let said = |text: &str| {
        front
            .iter()
            .any(|f| f.text.as_deref() == Some(text) && f.len == text.len() as u64)
    };
    assert!(said("hola, ¿me ves en Wireshark?"), "{front:#?}");
    assert!(said("ana: hola, ¿me ves en Wireshark?"), "{front:#?}");
    assert!(said("sí: 4 bytes de longitud y el texto"), "{front:#?}");

    // The tap's side toward the server carries the same frames, in the same order.
    let back = frames(
        &capture,
        &lua,
        &format!("trama.len && tcp.port == {}", server.addr().port()),
    );
    let count = |v: &[Shown]| v.len();
    assert_eq!(count(&back), count(&front), "{back:#?}");
    // Wireshark finds nothing wrong with the synthesized TCP: every IP and
    // TCP checksum verified good (checking is off by default), no analysis flag.
    let mut cmd = Command::new(tshark());
    cmd.arg("-r").arg(&capture).args([
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        "tcp.checksum.status != 1 || ip.checksum.status != 1 || tcp.analysis.flags",
    ]);
    let (status, flagged, err) = ok(run_command(cmd, DEADLINE));
    assert!(status.success(), "tshark failed: {err}");
    assert!(flagged.trim().is_empty(), "{flagged}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs tshark, which .ci/run installs on Linux"
)]
fn a_split_fault_shows_its_pieces_and_each_frame_reassembled_once() {
    let dir = scratch("split");
    let capture = dir.join("split.pcapng");
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(
        server.addr(),
        &[
            "--json",
            "--fault",
            "c2s:split=1",
            "--pcap",
            capture.to_str().unwrap(),
        ],
    );
    let sent: [&[u8]; 3] = [b"uno", b"{\"dos\": 2}", "tres, ¿llegó entero?".as_bytes()];
    let mut c = connect(addr);
    for payload in sent {
        c.write_all(&frame(payload)).unwrap();
        let mut back = vec![0u8; payload.len() + 4];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, frame(payload));
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
    tap.expect_match("the close", |l| l.contains("\"event\":\"close\""));
    interrupt(tap);

    let port = server.addr().port().to_string();
    let lua = dissector(&dir, &["--port", &port]);
    // Toward the server every write was one byte.
    let pieces = summaries(
        &capture,
        &lua,
        &format!("tcp.dstport == {port} && tcp.len > 0"),
    );
    let total: usize = sent.iter().map(|p| p.len() + 4).sum();
    assert_eq!(pieces.len(), total, "{pieces:#?}");
    // And each frame is shown once, whole.
    let shown = frames(
        &capture,
        &lua,
        &format!("trama.len && tcp.dstport == {port}"),
    );
    let want: Vec<(u64, Option<String>)> = sent
        .iter()
        .map(|p| (p.len() as u64, Some(String::from_utf8(p.to_vec()).unwrap())))
        .collect();
    let got: Vec<(u64, Option<String>)> = shown.iter().map(|f| (f.len, f.text.clone())).collect();
    assert_eq!(got, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs tshark, which .ci/run installs on Linux"
)]
fn a_length_over_the_limit_and_a_cut_frame_are_expert_info() {
    let dir = scratch("expert");
    let capture = dir.join("expert.pcapng");
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(
        server.addr(),
        &["--json", "--pcap", capture.to_str().unwrap()],
    );
    // A frame, then a header of 0xFFFFFFFF.
    let mut c = connect(addr);
    c.write_all(&frame(b"ok")).unwrap();
    let mut back = [0u8; 6];
    c.read_exact(&mut back).unwrap();
    c.write_all(b"\xff\xff\xff\xffabc").unwrap();
    tap.expect_match("the oversize header", |l| {
        l.contains("\"event\":\"oversize\"")
    });
    drop(c);
    // Another connection ends 4 bytes into a 10-byte payload.
    let mut c = connect(addr);
    c.write_all(b"\x00\x00\x00\x0ahalf").unwrap();
    drop(c);
    tap.expect_seen("the truncated frame", |l| {
        l.contains("\"event\":\"truncated\"")
    });
    for conn in [1, 2] {
        tap.expect_seen(&format!("connection {conn} closed"), |l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["event"] == "close" && v["conn"] == conn)
        });
    }
    interrupt(tap);

    let lua = dissector(&dir, &["--port", &addr.port().to_string()]);
    let tap_port = addr.port();
    let over = summaries(
        &capture,
        &lua,
        &format!("trama.over_limit && tcp.dstport == {tap_port}"),
    );
    assert_eq!(over.len(), 1, "{over:#?}");
    assert!(over[0].contains("BAD LENGTH 4294967295"), "{over:#?}");
    let cut = summaries(&capture, &lua, "trama.cut");
    assert!(!cut.is_empty(), "no cut flagged");
    let mut cmd = Command::new(tshark());
    cmd.arg("-X")
        .arg(format!("lua_script:{}", lua.display()))
        .arg("-r")
        .arg(&capture)
        .args([
            "-Y",
            "trama.cut",
            "-T",
            "fields",
            "-e",
            "_ws.expert.message",
        ]);
    let (_, messages, _) = ok(run_command(cmd, DEADLINE));
    assert!(
        messages.contains("Stream ended 8 bytes into a frame of 14 bytes"),
        "{messages}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs tshark, which .ci/run installs on Linux"
)]
fn a_recording_becomes_a_capture_tshark_reads() {
    let dir = scratch("record");
    let recording = dir.join("session.jsonl");
    let server = echo(&["--framed"]);
    let (mut tap, addr) = tap(
        server.addr(),
        &["--json", "--record", recording.to_str().unwrap()],
    );
    let mut c = connect(addr);
    for payload in [&b"hola"[..], b"adios"] {
        c.write_all(&frame(payload)).unwrap();
        let mut back = vec![0u8; payload.len() + 4];
        c.read_exact(&mut back).unwrap();
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
    tap.expect_match("the close", |l| l.contains("\"event\":\"close\""));
    interrupt(tap);

    let capture = dir.join("session.pcapng");
    let (status, _, stderr) = ok(run_command(
        {
            let mut c = Command::new(TAP);
            c.arg("pcap").arg(&recording).arg("-o").arg(&capture);
            c
        },
        DEADLINE,
    ));
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 connection(s)"), "{stderr}");
    let lua = dissector(&dir, &["--port", &server.addr().port().to_string()]);
    let shown: Vec<(u64, Option<String>)> = frames(&capture, &lua, "trama.len")
        .into_iter()
        .map(|f| (f.len, f.text))
        .collect();
    let t = |s: &str| Some(s.to_string());
    assert_eq!(
        shown,
        vec![
            (4, t("hola")),
            (4, t("hola")),
            (5, t("adios")),
            (5, t("adios"))
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server that reads everything and answers nothing; returns its address
/// and a thread that returns how many bytes it read.
fn sink() -> (SocketAddr, std::thread::JoinHandle<u64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => return total,
                n => total += n as u64,
            }
        }
    });
    (addr, t)
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs tshark, which .ci/run installs on Linux"
)]
fn sixty_four_mib_of_random_frames_are_all_counted() {
    let dir = scratch("bulk");
    let capture = dir.join("bulk.pcapng");
    let (server, read) = sink();
    let (tap, addr) = tap(server, &["--quiet", "--pcap", capture.to_str().unwrap()]);
    // Frames of pseudo-random sizes (0 to 1 MiB) and bytes, 64 MiB in all.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut c = connect(addr);
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut lens = Vec::new();
    while bytes < 64 << 20 {
        let len = (next() % (1 << 20)) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        c.write_all(&frame(&payload)).unwrap();
        count += 1;
        bytes += 4 + len as u64;
        lens.push(len as u64);
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read.join().unwrap(), bytes);
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
    drop(c);
    interrupt(tap);

    let lua = dissector(&dir, &["--port", &server.port().to_string()]);
    let shown = frames(
        &capture,
        &lua,
        &format!("trama.len && tcp.dstport == {}", server.port()),
    );
    let got: Vec<u64> = shown.iter().map(|f| f.len).collect();
    assert_eq!(got.len() as u64, count, "frames counted");
    assert_eq!(got, lens);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs tshark, which .ci/run installs on Linux"
)]
fn ctrl_c_with_a_connection_open_leaves_a_complete_capture() {
    let dir = scratch("ctrl-c");
    let capture = dir.join("open.pcapng");
    let server = echo(&["--framed"]);
    let (tap, addr) = tap(
        server.addr(),
        &["--quiet", "--pcap", capture.to_str().unwrap()],
    );
    let mut c = connect(addr);
    c.write_all(&frame(b"sigo conectado")).unwrap();
    let mut back = vec![0u8; 18];
    c.read_exact(&mut back).unwrap();
    // The connection is still open when the tap is stopped.
    interrupt(tap);
    assert_eq!(c.read(&mut [0u8; 1]).unwrap_or(0), 0);

    let lua = dissector(&dir, &["--port", &addr.port().to_string()]);
    let shown: Vec<(u64, Option<String>)> = frames(&capture, &lua, "trama.len")
        .into_iter()
        .map(|f| (f.len, f.text))
        .collect();
    let t = Some("sigo conectado".to_string());
    // The dissector is on the tap's port: the client's side, both ways.
    assert_eq!(shown, vec![(14, t.clone()), (14, t)]);
    // Stopping, the tap closed both of its connections: a FIN to the
    // client and one to the server.
    let fins = summaries(&capture, &lua, "tcp.flags.fin == 1");
    assert_eq!(fins.len(), 2, "{fins:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
