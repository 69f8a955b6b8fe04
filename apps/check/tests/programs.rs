//! End-to-end tests of `trama-check --program KIND` for the notes' programs
//! that are not servers: the real binary against Python programs written
//! from the notes' wire formats (`tests/python/programs`), each correct or
//! with exactly one classic defect. A correct program passes every check
//! of its kind; each defect fails exactly its own. Runs take turns (a
//! spinning program would eat the CPU another run measures), each in a
//! folder of its own (the files the programs read and write).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{check_command, ok, parse_report, python, python_command, set, turn, with};
use serde_json::Value;
use trama_test_support::{python_script, run_command};

/// One kind's checks with the windows below stay well under this.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// Short windows; the timeout only costs time when a program fails.
const FAST: [&str; 6] = [
    "--timeout",
    "5s",
    "--idle-window",
    "1s",
    "--settle",
    "300ms",
];

/// `python3 -u programs/NAME.py` as a shell command, then `args`.
fn program(name: &str, args: &str) -> String {
    python_command(&format!("programs/{name}.py"), args)
}

/// A fresh folder for one run.
fn folder() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trama-check-programs-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `trama-check FAST ARGS --json` in a fresh folder.
fn check_json(args: &[&str]) -> (i32, Value, String) {
    let _turn = turn();
    let dir = folder();
    let mut cmd = check_command();
    cmd.current_dir(&dir).args(FAST).args(args).arg("--json");
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    let _ = std::fs::remove_dir_all(&dir);
    let report = parse_report(&stdout, &stderr);
    let shown = serde_json::to_string_pretty(&report).unwrap();
    (status.code().unwrap(), report, shown)
}

/// Run and check which checks failed and which were skipped.
fn expect(args: &[&str], failed: &[&str], skipped: &[&str]) -> Value {
    let (code, report, shown) = check_json(args);
    assert_eq!(with(&report, "fail"), set(failed), "{shown}");
    assert_eq!(with(&report, "skip"), set(skipped), "{shown}");
    assert_eq!(code, if failed.is_empty() { 0 } else { 3 }, "{shown}");
    report
}

fn names(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Run `cmd` as a file receiver that saves got.bin: the checks in `failed`
/// fail, the others pass.
fn expect_receiver(cmd: &str, failed: &[&str]) -> Value {
    expect(
        &[
            "--program",
            "file-receiver",
            "--spawn",
            cmd,
            "--saved",
            "got.bin",
        ],
        failed,
        &[],
    )
}

fn receiver(defect: &str) -> Value {
    let cmd = program("file_receiver", &format!("0 got.bin {defect}"));
    let failed: &[&str] = match defect {
        "--defect single-recv" => &["file-byte-at-a-time"],
        "--defect spin" => &["short-file"],
        "--defect whole" => &["large-file"],
        _ => &[],
    };
    expect_receiver(&cmd, failed)
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_correct_file_receiver_passes_every_check() {
    let report = receiver("");
    assert_eq!(
        names(&report),
        [
            "small-file",
            "file-byte-at-a-time",
            "empty-file",
            "large-file",
            "short-file",
            "huge-file-header"
        ]
    );
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_receiver_that_reads_the_header_with_one_recv_fails_byte_at_a_time() {
    receiver("--defect single-recv");
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_receiver_that_spins_on_an_empty_recv_fails_short_file() {
    let report = receiver("--defect spin");
    let why = report["checks"][4]["reason"].as_str().unwrap();
    assert!(why.contains("spins"), "{why}");
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_receiver_that_holds_the_file_whole_fails_large_file() {
    receiver("--defect whole");
}

/// Run `cmd` as a file sender that reads sent.bin: the checks in `failed`
/// fail, the others pass.
fn expect_sender(cmd: &str, failed: &[&str]) -> Value {
    expect(
        &[
            "--program",
            "file-sender",
            "--spawn",
            cmd,
            "--sent",
            "sent.bin",
        ],
        failed,
        &[],
    )
}

fn sender(defect: &str, failed: &[&str]) -> Value {
    let cmd = program("file_sender", &format!("{{addr}} sent.bin {defect}"));
    expect_sender(&cmd, failed)
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_correct_file_sender_passes_every_check() {
    let report = sender("", &[]);
    assert_eq!(
        names(&report),
        [
            "sent-0-bytes",
            "sent-1-byte",
            "sent-4096-bytes",
            "sent-4097-bytes",
            "sent-3-mib"
        ]
    );
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_sender_that_skips_an_empty_file_fails_sent_0_bytes() {
    sender("--defect empty", &["sent-0-bytes"]);
}

fn chat(defect: &str, failed: &[&str]) -> Value {
    let cmd = program("client", &format!("{{addr}} {defect}"));
    expect(&["--program", "chat-client", "--spawn", &cmd], failed, &[])
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_correct_chat_client_passes_every_check() {
    let report = chat("", &[]);
    assert_eq!(
        names(&report),
        [
            "line-sent",
            "message-shown",
            "shown-byte-at-a-time",
            "two-in-one-segment",
            "long-message",
            "server-closes"
        ]
    );
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_client_that_reads_the_header_with_one_recv_fails_byte_at_a_time() {
    chat("--defect single-recv", &["shown-byte-at-a-time"]);
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_client_that_spins_when_the_server_closes_fails_server_closes() {
    let report = chat("--defect spin", &["server-closes"]);
    let why = report["checks"][5]["reason"].as_str().unwrap();
    assert!(why.contains("spins"), "{why}");
}

fn echo(defect: &str, failed: &[&str]) -> Value {
    let cmd = program("client", &format!("{{addr}} --raw --json {defect}"));
    expect(
        &["--program", "echo-client", "--raw", "--spawn", &cmd],
        failed,
        // No boundaries in the raw dialect.
        &["shown-byte-at-a-time", "two-in-one-segment"],
    )
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_correct_json_echo_client_passes_every_raw_check() {
    echo("", &[]);
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_client_that_prints_what_one_recv_returned_fails_long_message() {
    echo("--defect one-recv", &["long-message"]);
}

fn peer(flags: &[&str], args: &str, failed: &[&str]) -> Value {
    let cmd = program("peer", &format!("--role {{role}} --other {{addr}} {args}"));
    let mut all = vec!["--program", "peer", "--spawn", &cmd];
    all.extend_from_slice(flags);
    expect(&all, failed, &[])
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_correct_peer_passes_in_both_roles_and_dialects() {
    let report = peer(&["--raw"], "", &[]);
    assert_eq!(
        names(&report),
        [
            "first-peer-sends",
            "first-peer-receives",
            "second-peer-sends",
            "second-peer-receives"
        ]
    );
    peer(&[], "--framed", &[]);
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_first_peer_that_never_dials_back_fails_first_peer_sends() {
    let report = peer(&["--raw"], "--defect no-dial-back", &["first-peer-sends"]);
    let why = report["checks"][0]["reason"].as_str().unwrap();
    assert!(why.contains("never dialed"), "{why}");
}

fn list(args: &[&str]) -> String {
    let mut cmd = check_command();
    cmd.args(args).arg("--list");
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    assert!(status.success(), "{stderr}");
    stdout
}

#[test]
fn list_shows_one_kind_or_every_kind_named() {
    let one = list(&["--program", "file-receiver"]);
    assert!(one.starts_with("small-file\n"), "{one}");
    assert!(one.contains("notes: \"Envío de muchos datos\""), "{one}");
    assert!(!one.contains("one-message"), "{one}");
    // The server kinds are today's battery, as without --program.
    assert_eq!(
        list(&["--program", "echo-server"]),
        list(&["--program", "reply-server"])
    );
    assert!(list(&["--program", "echo-server"]).starts_with("one-message"));
    let all = list(&[]);
    for kind in [
        "echo-server, reply-server",
        "\nfile-receiver:\n",
        "\nfile-sender:\n",
        "\nchat-client:\n",
        "\necho-client:\n",
        "\npeer:\n",
    ] {
        assert!(all.contains(kind), "{kind} in {all}");
    }
    assert!(all.contains("  first-peer-sends\n"), "{all}");
}

#[test]
fn what_a_kind_needs_is_asked_for() {
    let run = |args: &[&str]| {
        let mut cmd = check_command();
        cmd.args(args);
        let (status, _, stderr) = ok(run_command(cmd, RUN_DEADLINE));
        (status.code().unwrap(), stderr)
    };
    let asks: [(&[&str], &str); 4] = [
        (
            &["--program", "file-receiver", "--spawn", "true"],
            "--saved",
        ),
        (&["--program", "chat-client"], "--spawn"),
        (
            &[
                "--program",
                "echo-server",
                "--expect",
                "reply",
                "127.0.0.1:1",
            ],
            "disagree",
        ),
        (
            &[
                "--program",
                "peer",
                "--spawn",
                "true",
                "--check",
                "one-message",
            ],
            "no check called",
        ),
    ];
    for (args, asked) in asks {
        let (code, err) = run(args);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(asked), "{err}");
    }
}

/// A script of `tests/python` (the notes as written) as a shell command.
fn notes(name: &str, args: &str) -> String {
    python_command(name, args)
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_client_that_ignores_what_is_typed_fails_once() {
    // The notes' JSON client sends its own dictionary, whatever is typed.
    let cmd = notes("echo_json_client.py", "{host} {port}");
    let report = expect(
        &["--program", "echo-client", "--raw", "--spawn", &cmd],
        &["line-sent"],
        &[
            "message-shown",
            "shown-byte-at-a-time",
            "two-in-one-segment",
            "long-message",
            "server-closes",
        ],
    );
    let why = report["checks"][1]["reason"].as_str().unwrap();
    assert_eq!(why, "needs line-sent, which did not pass (fail)");
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn the_notes_improved_file_programs_pass() {
    let cmd = notes("notes_file_receiver.py", "0 got.bin");
    expect_receiver(&cmd, &[]);
    let cmd = notes("notes_file_sender.py", "{host} {port} sent.bin");
    expect_sender(&cmd, &[]);
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn a_batch_of_file_receivers_is_graded_with_their_own_checks() {
    let _turn = turn();
    let dir = folder();
    let subs = dir.join("entregas");
    let script = ok(python_script("programs/file_receiver.py"));
    for (name, flags) in [("ana", ""), ("beto", "--defect single-recv")] {
        let sub = subs.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::copy(&script, sub.join("receptor.py")).unwrap();
        std::fs::write(sub.join("flags"), flags).unwrap();
    }
    // Each runs in (a copy of) its own folder: got.bin is relative to it.
    let spawn = format!(
        "{} -u {{}}/receptor.py 0 got.bin $(cat {{}}/flags)",
        python()
    );
    let (csv, json) = (dir.join("notas.csv"), dir.join("notas.json"));
    let mut cmd = check_command();
    cmd.arg("batch")
        .arg(&subs)
        .args(["--program", "file-receiver", "--saved", "got.bin"])
        .args(["--spawn", &spawn])
        .args(["--check", "small-file", "--check", "file-byte-at-a-time"])
        .args(["--check", "empty-file"])
        .arg("--csv")
        .arg(&csv)
        .arg("--json")
        .arg(&json)
        .args(FAST);
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let table = std::fs::read_to_string(&csv).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    let (ana, beto) = (&rows[0], &rows[1]);
    assert!(
        ana[0].contains("ana") && beto[0].contains("beto"),
        "{table}"
    );
    for check in ["small-file", "file-byte-at-a-time", "empty-file"] {
        assert_eq!(ana[column(check)], "pass", "ana {check}:\n{table}");
    }
    assert_eq!(beto[column("file-byte-at-a-time")], "fail", "{table}");
    assert_eq!(beto[column("small-file")], "pass", "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}
