//! End-to-end tests of `trama-bench`: the real binary against
//! `trama-echo serve --framed` (started on `127.0.0.1:0`, its address read
//! from the `listening on` line), and against small servers written here for
//! what trama-echo does not do (message-io's varint framing, a sink, a
//! server that hangs up).
//!
//! Every test runs with small counts and short durations and checks what
//! was counted (every request answered, the JSON keys present, the figures
//! consistent with each other), never how fast anything was.
//!
//! `trama-echo` is looked for next to the `trama-bench` binary, and built
//! once (`cargo build -p trama-echo`) if it is not there, so
//! `cargo test -p trama-bench` works on its own.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use trama_test_support::{python3, python_script, run_command, workspace_binary, ServerProcess};

const BENCH: &str = env!("CARGO_BIN_EXE_trama-bench");
/// Generous: the machine may be busy; no test waits this long when all is well.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// Unwrap a helper's result, showing its message as is.
fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Another binary of the workspace, next to this package's (built if missing).
fn sibling(name: &str) -> PathBuf {
    ok(workspace_binary(BENCH, name, &["trama-echo"]))
}

/// `trama-echo serve --framed` on a free port, with `extra` flags.
fn echo(extra: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(sibling("trama-echo"));
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn");
    ok(ServerProcess::from_command(cmd))
}

/// Run trama-bench with `args`; returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BENCH);
    cmd.args(args).env("RUST_LOG", "warn");
    let (status, out, err) = ok(run_command(cmd, RUN_DEADLINE));
    (status.success(), out, err)
}

/// Run trama-bench with `--json` and `args`; stdout must be exactly one JSON object.
fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (success, out, err) = run(&all);
    assert!(success, "trama-bench {args:?} failed:\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is not one line:\n{out}");
    let v: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(v.is_object(), "{out}");
    v
}

/// [`bench_json`] with one command line, split at spaces (no argument in
/// these tests has one).
fn bench(line: &str) -> Value {
    bench_json(&line.split_whitespace().collect::<Vec<_>>())
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not a count in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

/// The latency keys are there and in order.
fn check_latencies(v: &Value) {
    let (p50, p99, p999, max) = (
        f(v, "p50_us"),
        f(v, "p99_us"),
        f(v, "p999_us"),
        f(v, "max_us"),
    );
    assert!(p50 > 0.0, "{v}");
    assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{v}");
}

#[test]
fn pingpong_answers_every_round_trip() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let v = bench(&format!("pingpong --addr {addr} --size 64 --count 300"));
    assert_eq!(v["mode"], "pingpong");
    assert_eq!(v["framing"], "be32");
    assert_eq!(u(&v, "sent"), 300);
    assert_eq!(u(&v, "answered"), 300);
    assert_eq!(u(&v, "clients"), 1);
    assert_eq!(u(&v, "connected"), 1);
    assert_eq!(u(&v, "unexpected"), 0);
    assert!(f(&v, "msgs_per_s") > 0.0);
    check_latencies(&v);
}

#[test]
fn json_flag_is_accepted_anywhere_and_the_table_is_the_default() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    for args in [
        vec!["--json", "pingpong", "--addr", &addr, "--count", "20"],
        vec!["pingpong", "--json", "--addr", &addr, "--count", "20"],
        vec!["pingpong", "--addr", &addr, "--count", "20", "--json"],
    ] {
        let (success, out, err) = run(&args);
        assert!(success, "{args:?}: {err}");
        let v: Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert_eq!(u(&v, "answered"), 20);
    }
    let (success, out, _) = run(&["pingpong", "--addr", &addr, "--count", "20"]);
    assert!(success);
    assert!(
        out.contains("answered") && out.contains("latency p99"),
        "{out}"
    );
    assert!(
        serde_json::from_str::<Value>(out.trim()).is_err(),
        "the default is a table"
    );
}

#[test]
fn help_explains_the_figures() {
    let (success, out, _) = run(&["load", "--help"]);
    assert!(success);
    for key in [
        "p99_us",
        "msgs_per_s",
        "answered",
        "--rate",
        "--pipeline",
        "varint",
    ] {
        assert!(out.contains(key), "--help does not mention {key}:\n{out}");
    }
}

#[test]
fn load_closed_loop_with_a_pipeline_answers_everything_it_sent() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let v = bench(&format!("load --addr {addr} --clients 24 --size 64 --duration 500ms --warmup 100ms --pipeline 4 --threads 2"));
    assert_eq!(v["mode"], "load");
    assert_eq!(u(&v, "clients"), 24);
    assert_eq!(u(&v, "connected"), 24);
    assert_eq!(u(&v, "connect_failed"), 0);
    assert_eq!(u(&v, "pipeline"), 4);
    assert_eq!(u(&v, "threads"), 2);
    assert_eq!(u(&v, "dropped"), 0);
    assert!(u(&v, "sent") > 0);
    assert_eq!(u(&v, "answered"), u(&v, "sent"), "{v}");
    assert!(f(&v, "msgs_per_s") > 0.0);
    assert!(
        v.get("behind").is_none(),
        "closed loop has no schedule: {v}"
    );
    check_latencies(&v);
}

#[test]
fn load_open_loop_sends_on_schedule() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let v = bench(&format!("load --addr {addr} --clients 8 --duration 1s --warmup 0s --rate 400 --pipeline 8 --threads 2"));
    assert_eq!(u(&v, "connected"), 8);
    assert_eq!(f(&v, "rate"), 400.0);
    // 400 requests fall due in the second; each is sent or counted behind
    // (one either way per thread for where the schedule's edges fall).
    let scheduled = u(&v, "sent") + u(&v, "behind");
    assert!((398..=402).contains(&scheduled), "{v}");
    assert_eq!(u(&v, "answered"), u(&v, "sent"), "{v}");
    check_latencies(&v);
}

#[test]
fn hold_opens_every_connection_and_each_answers() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let pid = server.pid().to_string();
    let v = bench(&format!(
        "hold --addr {addr} --clients 300 --duration 300ms --server-pid {pid}"
    ));
    assert_eq!(v["mode"], "hold");
    assert_eq!(u(&v, "clients"), 300);
    assert_eq!(u(&v, "connected"), 300);
    assert_eq!(u(&v, "sent"), 300);
    assert_eq!(u(&v, "answered"), 300);
    assert_eq!(u(&v, "dropped"), 0);
    assert!(f(&v, "answer_all_ms") >= 0.0);
    check_latencies(&v);
    if cfg!(target_os = "linux") {
        assert!(u(&v, "server_rss_held_kib") > 0, "{v}");
        assert!(u(&v, "server_rss_before_kib") > 0, "{v}");
        assert!(u(&v, "server_threads") >= 1, "{v}");
        assert!(v["server_bytes_per_conn"].is_number(), "{v}");
    }
}

#[test]
fn bulk_to_an_echo_server_counts_the_frames_back() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let v = bench(&format!("bulk --addr {addr} --bytes 2MiB --frame 64KiB"));
    assert_eq!(v["mode"], "bulk");
    assert_eq!(u(&v, "frame"), 65536);
    assert_eq!(u(&v, "sent"), 32);
    assert_eq!(u(&v, "bytes"), 2 << 20);
    assert_eq!(
        u(&v, "answered"),
        32,
        "an echo server returns every frame: {v}"
    );
    assert_eq!(v["server_closed"], true);
    assert!(f(&v, "mb_per_s") > 0.0);
}

/// A server that reads everything and closes when the client is done.
fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[test]
fn bulk_to_a_sink_waits_for_the_server_to_close() {
    let addr = sink().to_string();
    let v = bench(&format!("bulk --addr {addr} --bytes 4MiB --frame 1000"));
    assert_eq!(u(&v, "sent"), 4194);
    assert_eq!(u(&v, "bytes"), 4_194_000);
    assert_eq!(u(&v, "answered"), 0);
    assert_eq!(v["server_closed"], true);
}

/// An echo server speaking message-io's framing (varint length), written
/// here from its description: the length as unsigned LEB128, then the payload.
fn varint_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            thread::spawn(move || serve_varint(s));
        }
    });
    addr
}

fn serve_varint(mut s: TcpStream) {
    s.set_nodelay(true).unwrap();
    loop {
        let mut len = 0u64;
        let mut shift = 0;
        loop {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_err() {
                return;
            }
            len |= u64::from(b[0] & 0x7f) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut payload = vec![0u8; len as usize];
        if s.read_exact(&mut payload).is_err() {
            return;
        }
        let mut frame = Vec::new();
        let mut n = len;
        while n >= 0x80 {
            frame.push(n as u8 | 0x80);
            n >>= 7;
        }
        frame.push(n as u8);
        frame.extend_from_slice(&payload);
        if s.write_all(&frame).is_err() {
            return;
        }
    }
}

#[test]
fn varint_framing_talks_to_a_message_io_style_server() {
    let addr = varint_echo().to_string();
    // 300 bytes needs a two-byte varint.
    let v = bench(&format!(
        "pingpong --addr {addr} --framing varint --size 300 --count 100"
    ));
    assert_eq!(v["framing"], "varint");
    assert_eq!(u(&v, "answered"), 100);
    let v = bench(&format!(
        "load --addr {addr} --framing varint --clients 4 --duration 300ms --warmup 0s"
    ));
    assert_eq!(u(&v, "connected"), 4);
    assert_eq!(u(&v, "answered"), u(&v, "sent"));
    assert_eq!(u(&v, "dropped"), 0);
}

#[test]
fn other_header_widths_and_orders() {
    let server = echo(&["--header-bytes", "2", "--byte-order", "little"]);
    let addr = server.addr().to_string();
    let v = bench(&format!("pingpong --addr {addr} --framing le16 --count 50"));
    assert_eq!(v["framing"], "le16");
    assert_eq!(u(&v, "answered"), 50);
    let v = bench(&format!(
        "hold --addr {addr} --framing le16 --clients 20 --duration 0s"
    ));
    assert_eq!(u(&v, "answered"), 20);
}

/// What a student would point trama-bench at: a Python server in the
/// notes' style (a thread per client, 4-byte big-endian frames), whose
/// replies are longer than the requests.
#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn a_python_server_in_the_notes_style() {
    let mut cmd = Command::new(ok(python3()));
    cmd.arg("-u")
        .arg(ok(python_script("notes_chat_server.py")))
        .arg("0");
    let server = ok(ServerProcess::from_command(cmd));
    let addr = server.addr().to_string();
    let v = bench(&format!("pingpong --addr {addr} --count 100"));
    assert_eq!(u(&v, "answered"), 100);
    assert_eq!(u(&v, "unexpected"), 0);
    let v = bench(&format!(
        "load --addr {addr} --clients 8 --duration 500ms --warmup 100ms"
    ));
    assert_eq!(u(&v, "connected"), 8);
    assert!(u(&v, "sent") > 0);
    assert_eq!(u(&v, "answered"), u(&v, "sent"), "{v}");
    assert_eq!(u(&v, "dropped"), 0);
}

/// A server that accepts and hangs up at once.
fn hang_up() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    addr
}

#[test]
fn connections_the_server_closes_are_counted_as_dropped() {
    let addr = hang_up().to_string();
    let v = bench(&format!(
        "load --addr {addr} --clients 5 --duration 300ms --warmup 0s --timeout 2s"
    ));
    assert_eq!(u(&v, "connected"), 5);
    assert_eq!(u(&v, "dropped"), 5);
    assert_eq!(u(&v, "answered"), 0);
    // "closed", or a reset if the server's close raced our request.
    assert!(!v["first_error"].as_str().unwrap().is_empty(), "{v}");
}

#[test]
fn nothing_listening_is_an_error_without_figures() {
    // A port that was free a moment ago.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for mode in ["pingpong", "load", "hold", "bulk"] {
        let (success, out, err) = run(&["--json", mode, "--addr", &addr, "--timeout", "2s"]);
        assert!(!success, "{mode} succeeded against nothing");
        assert!(out.is_empty(), "{mode} printed on stdout: {out}");
        assert!(err.contains(&addr), "{mode}: {err}");
    }
}

#[test]
fn load_blocking_runs_a_thread_per_connection_and_answers_everything_it_sent() {
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let v = bench(&format!(
        "load --addr {addr} --clients 12 --duration 500ms --warmup 100ms --pipeline 2 --blocking"
    ));
    assert_eq!(u(&v, "connected"), 12);
    assert_eq!(u(&v, "threads"), 12, "one thread per connection: {v}");
    assert_eq!(u(&v, "dropped"), 0);
    assert!(u(&v, "sent") > 0);
    assert_eq!(u(&v, "answered"), u(&v, "sent"), "{v}");
    assert!(f(&v, "msgs_per_s") > 0.0);
    check_latencies(&v);
    // The server hanging up is reported the same way as in the other shape.
    let gone = hang_up().to_string();
    let v = bench(&format!(
        "load --addr {gone} --clients 3 --duration 300ms --warmup 0s --timeout 2s --blocking"
    ));
    assert_eq!(u(&v, "connected"), 3);
    assert_eq!(u(&v, "dropped"), 3);
    assert_eq!(u(&v, "answered"), 0);
}

#[test]
fn a_server_that_never_answers_ends_the_run_after_the_timeout() {
    // The sink reads everything and never answers.
    let addr = sink().to_string();
    for blocking in [false, true] {
        let mut args = vec![
            "load",
            "--addr",
            &addr,
            "--clients",
            "4",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
            "--timeout",
            "500ms",
        ];
        if blocking {
            args.push("--blocking");
        }
        // Returns at all: with --blocking, each thread is blocked in a read
        // no reply will end, and only the end of the run's wait wakes it.
        let v = bench_json(&args);
        assert_eq!(u(&v, "connected"), 4, "{v}");
        assert_eq!(u(&v, "dropped"), 4, "blocking {blocking}: {v}");
        assert_eq!(u(&v, "answered"), 0);
        let why = v["first_error"].as_str().unwrap_or_default();
        assert!(why.contains("still missing"), "blocking {blocking}: {why}");
    }
}

#[test]
fn load_blocking_refuses_an_open_loop() {
    let (ok, _, err) = run(&[
        "load",
        "--addr",
        "127.0.0.1:9",
        "--blocking",
        "--rate",
        "100",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--blocking") && err.contains("--rate"),
        "{err}"
    );
}

#[test]
fn bulk_echo_far_past_the_outbound_limit_is_slowed_not_dropped() {
    // 64 MiB of echo through a server with its default 4 MiB outbound limit:
    // the replies back up whenever the reading side lags, and the server
    // then stops reading instead of dropping the client.
    let server = echo(&[]);
    let addr = server.addr().to_string();
    let v = bench(&format!("bulk --addr {addr} --bytes 64MiB --frame 64KiB"));
    assert_eq!(u(&v, "sent"), 1024);
    assert_eq!(u(&v, "answered"), 1024, "{v}");
    assert_eq!(v["server_closed"], true);
}

#[test]
fn pingpong_and_bulk_speak_tls_and_the_shared_key() {
    let dir = std::env::temp_dir().join(format!("trama-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = ok(ok(trama_test_support::pki::Pki::new()).write_to(&dir));
    let key_file = dir.join("authkey");
    ok(trama_test_support::write_private(&key_file, "secreto\n"));
    let (cert, key, ca, authkey) = (
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        pki.ca.to_str().unwrap(),
        key_file.to_str().unwrap(),
    );
    let server = echo(&["--tls-cert", cert, "--tls-key", key, "--key-file", authkey]);
    let addr = server.addr().to_string();
    let secured = ["--tls-ca", ca, "--key-file", authkey];
    // Plain, the server refuses the connection.
    let (success, _, err) = run(&["pingpong", "-a", &addr, "--count", "10", "--timeout", "2s"]);
    assert!(!success, "a plain pingpong passed a TLS server: {err}");
    let mut args = vec!["pingpong", "-a", &addr, "--count", "300"];
    args.extend_from_slice(&secured);
    let v = bench_json(&args);
    assert_eq!(u(&v, "answered"), 300, "{v}");
    // bulk over TLS with the key: every frame echoed back through the
    // records of both directions at once (16 frames of 64 KiB).
    let mut args = vec!["bulk", "-a", &addr, "--bytes", "1MiB", "--frame", "64KiB"];
    args.extend_from_slice(&secured);
    let v = bench_json(&args);
    assert_eq!(u(&v, "sent"), 16, "{v}");
    assert_eq!(u(&v, "answered"), 16, "{v}");
    // bulk with the key alone.
    let keyed = echo(&["--key-file", authkey]);
    let keyed_addr = keyed.addr().to_string();
    let v = bench_json(&[
        "bulk",
        "-a",
        &keyed_addr,
        "--bytes",
        "1MiB",
        "--frame",
        "64KiB",
        "-k",
        authkey,
    ]);
    assert_eq!(u(&v, "answered"), 16, "{v}");
    // The event-loop modes say they speak plain TCP only.
    let mut args = vec!["load", "-a", &addr, "--duration", "1s"];
    args.extend_from_slice(&secured);
    let (success, _, err) = run(&args);
    assert!(!success && err.contains("plain TCP"), "{err}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
