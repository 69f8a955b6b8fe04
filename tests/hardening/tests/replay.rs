//! A recorded key handshake played again (issue 19): `trama-tap --record`
//! in front of `trama-echo serve --framed --key-file K` records a real
//! client that has the key; `trama-tap replay` then plays that client's
//! bytes, answers and message included, straight at the server. The
//! server's challenge is fresh each time, so the recorded answer is wrong
//! for it: it answers `#FAILURE#` where the recording had `#WELCOME#`,
//! closes, logs the refusal, and its echo service never gets the replayed
//! message (its counters at SIGTERM show one message in: the real client's).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[cfg(unix)]
use trama_hardening::signal;
use trama_hardening::{bin, ok, scratch, serve, wait_for_log, DEADLINE};
use trama_test_support::{run_command, ServerProcess};

/// A key file only its owner may read (trama refuses others on Unix).
fn key_file(path: &Path, key: &str) {
    std::fs::write(path, format!("{key}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Wait until the recording holds `text` (the tap flushes every line).
fn wait_for_recording(path: &Path, text: &str, tap: &ServerProcess) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rec = std::fs::read_to_string(path).unwrap_or_default();
        if rec.contains(text) {
            return rec;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the recording after {DEADLINE:?}:\n{rec}\ntap stderr:\n{}",
            tap.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_recorded_key_handshake_replayed_at_the_server_is_refused() {
    let dir = scratch(&format!("replay-{}", std::process::id()));
    let key = dir.join("key");
    key_file(&key, "clave compartida");
    let key = key.to_str().unwrap();
    let server = serve("trama-echo", &["serve", "--framed", "--key-file", key]);

    // The real client, with the key, through the recording tap.
    let recording = dir.join("session.jsonl");
    let mut cmd = Command::new(bin("trama-tap"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--to",
        &server.addr().to_string(),
    ])
    .arg("--record")
    .arg(&recording)
    .arg("--quiet");
    let tap = ok(ServerProcess::from_command(cmd));
    let mut cmd = Command::new(bin("trama-echo"));
    cmd.args(["send", "--addr", &tap.addr().to_string(), "--key-file", key])
        .args(["--text", "mensaje secreto"]);
    let (status, stdout, stderr) = ok(run_command(cmd, DEADLINE));
    assert!(status.success(), "the real client failed: {stderr}");
    assert_eq!(stdout.trim(), "mensaje secreto");
    // The whole session is on file once the tap has seen it close.
    let rec = wait_for_recording(&recording, r#""event":"close""#, &tap);
    // The recording holds the handshake in the clear (the key alone does
    // not encrypt), the welcome and the message.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for text in ["#CHALLENGE#", "#WELCOME#", "mensaje secreto"] {
        assert!(
            rec.contains(&hex(text)),
            "no {text} in the recording:\n{rec}"
        );
    }

    // The same client bytes again, straight at the server.
    let mut cmd = Command::new(bin("trama-tap"));
    cmd.arg("replay")
        .arg(&recording)
        .args(["--to", &server.addr().to_string(), "--timeout", "5s"]);
    let (status, report, stderr) = ok(run_command(cmd, DEADLINE));
    // Differences are the replay's verdict (status 3), not a failure to run.
    assert_eq!(
        status.code(),
        Some(3),
        "the replay should report differences\n{report}\n{stderr}"
    );
    // The recorded answer to an old challenge: refused, not welcomed.
    assert!(
        report.contains("differs") && report.contains("#FAILURE#"),
        "{report}"
    );
    // The rest of the recorded answers never came: the report says they
    // are missing, or, when the server had closed before the replay's next
    // chunk, that it stopped taking them (the replay stops there). Either
    // way the proof that the message did not get through is the server's
    // counters below, not the report.
    assert!(
        report.contains("missing") || report.contains("the server stopped taking requests"),
        "{report}"
    );
    assert!(report.contains("1 with differences"), "{report}");
    wait_for_log(&server, "refused: key handshake failed");

    // The service saw one message: the real client's, not the replay's. The
    // counters come with a graceful stop, asked for with SIGTERM: Unix only
    // (on Windows it would take GenerateConsoleCtrlEvent: FFI, and a console
    // shared with the server).
    #[cfg(unix)]
    {
        let mut server = server;
        signal(server.pid(), "-TERM");
        ok(server.wait_exit(DEADLINE));
        let log = server.stderr_text();
        let stats = log
            .lines()
            .find(|l| l.contains("stopped; "))
            .unwrap_or_else(|| panic!("no counters at exit:\n{log}"));
        assert!(stats.contains("frames: 1 in"), "{stats}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
