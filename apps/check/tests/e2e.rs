//! End-to-end tests of `trama-check`: the real binary against trama's own
//! echo server and against Python servers that each reproduce one classic
//! defect (`tests/python/defects`). Every run uses short windows (flags), and
//! the runs take turns: a spinning server would otherwise eat the CPU
//! another run is measuring.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{
    check_command, defect, ok, parse_report, python_command, quote, read_json, reason,
    servidor_template, set, submission, trama_echo, turn, with, FAST, RUN_DEADLINE,
};
use serde_json::Value;
use trama_test_support::{run_command, ServerProcess};

/// Thread counts are read on Linux only: elsewhere `threads-released` is
/// skipped, whatever the server does (docs/CHECKS.md).
const COUNTS_THREADS: bool = cfg!(target_os = "linux");

/// Run `trama-check ARGS --json` and return its exit code and report.
fn check_json(args: &[&str]) -> (i32, Value) {
    let mut cmd = check_command();
    cmd.args(FAST).args(args).arg("--json");
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    (status.code().unwrap(), parse_report(&stdout, &stderr))
}

/// Spawn `command`, run the whole battery, and check the failed and skipped sets.
fn expect_spawned(command: &str, failed: &[&str], skipped: &[&str]) -> Value {
    expect_spawned_with(command, &[], failed, skipped)
}

/// [`expect_spawned`] with more flags.
fn expect_spawned_with(command: &str, flags: &[&str], failed: &[&str], skipped: &[&str]) -> Value {
    let _turn = turn();
    let mut args = vec!["--spawn", command];
    args.extend_from_slice(flags);
    let (code, report) = check_json(&args);
    let shown = serde_json::to_string_pretty(&report).unwrap();
    let (mut failed, mut skipped) = (failed.to_vec(), skipped.to_vec());
    if !COUNTS_THREADS {
        failed.retain(|c| *c != "threads-released");
        skipped.retain(|c| *c != "threads-released");
        skipped.push("threads-released");
    }
    assert_eq!(with(&report, "fail"), set(&failed), "{shown}");
    assert_eq!(with(&report, "skip"), set(&skipped), "{shown}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 13, "{shown}");
    assert_eq!(report["failed"], failed.len(), "{shown}");
    assert_eq!(report["skipped"], skipped.len(), "{shown}");
    assert_eq!(
        report["passed"],
        13 - failed.len() - skipped.len(),
        "{shown}"
    );
    // 3: a verdict (the table of every app); 1 would mean the run failed.
    assert_eq!(code, if failed.is_empty() { 0 } else { 3 }, "{shown}");
    report
}

#[test]
#[cfg_attr(windows, ignore = "--spawn needs sh; no Windows support yet")]
fn trama_echo_framed_passes_everything() {
    let command = format!("{} serve --framed --addr 127.0.0.1:0", quote(&trama_echo()));
    let report = expect_spawned(&command, &[], &[]);
    assert!(
        reason(&report, "idle-cpu").contains("% of one core"),
        "{report}"
    );
    assert_cpu_measured_after_leaving(&report);
}

/// The checks whose client leaves mid-conversation measured the server's
/// CPU after it left (and it passed: the caller asserts the statuses).
fn assert_cpu_measured_after_leaving(report: &Value) {
    for (check, after) in [
        (
            "slow-reader",
            "after the client that never reads left the server used ",
        ),
        (
            "mid-message-disconnect",
            "after the client left mid-message the server used ",
        ),
    ] {
        let why = reason(report, check);
        assert!(
            why.contains(after) && why.contains(" ms of CPU in "),
            "{check}: {report}"
        );
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn the_correct_python_server_passes_everything() {
    let report = expect_spawned(&defect("correct"), &[], &[]);
    assert_cpu_measured_after_leaving(&report);
}

/// The framed server the notes' readers are told to copy
/// (`tests/python/framed_server.py`) does not spin once a client left, with
/// a reset or in the middle of a message.
#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn the_framed_server_to_copy_idles_after_a_client_left_mid_conversation() {
    let _turn = turn();
    let command = python_command("framed_server.py", "0");
    let (code, report) = check_json(&[
        "--spawn",
        &command,
        "--check",
        "one-message",
        "--check",
        "concurrent-clients",
        "--check",
        "slow-reader",
        "--check",
        "mid-message-disconnect",
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["passed"], 4, "{report}");
    assert_cpu_measured_after_leaving(&report);
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn a_single_recv_fails_the_split_and_the_large_message() {
    let report = expect_spawned(
        &defect("single_recv"),
        &["byte-at-a-time", "large-message"],
        &[],
    );
    // The server answers a short read, then takes body bytes for the next
    // header and closes with bytes unread: a reset, which can overtake the
    // short answer. Either way the reason says what went wrong.
    let why = reason(&report, "large-message");
    assert!(
        why.contains("instead of 1048576") || why.contains("reset"),
        "{report}"
    );
}

/// A server that starts a helper in a session of its own (`setsid`): the
/// helper is out of the server's process group, and must still be gone when
/// trama-check ends (on Linux, through the server's PID namespace).
#[cfg(target_os = "linux")]
#[test]
fn a_helper_that_left_the_process_group_is_stopped_with_the_server() {
    let pid_file = std::env::temp_dir().join(format!("trama-check-daemon-{}", std::process::id()));
    let _ = std::fs::remove_file(&pid_file);
    let command = format!("{} --pid-file {}", defect("daemon"), quote(&pid_file));
    expect_spawned(&command, &[], &[]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let _ = std::fs::remove_file(&pid_file);
    assert!(pid.trim().parse::<u32>().is_ok(), "pid file: {pid:?}");
    // The pid written is the helper's in trama-check's PID namespace (when it
    // could make one), not this one's: the helper is found by the pid file's
    // path, which it carries among its arguments. A killed process lingers as
    // a zombie until reaped: it counts as gone.
    let marker = pid_file.to_string_lossy().into_owned();
    let alive = || helpers_carrying(&marker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !alive().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left = alive();
    if !left.is_empty() {
        // Ours to end (the test started it), so the machine is left clean.
        for pid in &left {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        panic!("the setsid helper (pids {left:?} here) outlived trama-check");
    }
}

/// The live (not zombie) processes whose command line holds `marker`.
#[cfg(target_os = "linux")]
fn helpers_carrying(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|pid| trama_cli::procfs::stat(*pid).is_some_and(|s| !s.is_zombie()))
        .collect()
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn a_spin_on_disconnect_fails_where_a_client_left_and_idle_cpu() {
    // Its threads spin from the first client that leaves: each check whose
    // client leaves mid-conversation sees the CPU burn, and idle-cpu too.
    let report = expect_spawned(
        &defect("spin"),
        &["slow-reader", "mid-message-disconnect", "idle-cpu"],
        &["threads-released"],
    );
    assert!(reason(&report, "idle-cpu").contains("spins"), "{report}");
    let why = reason(&report, "mid-message-disconnect");
    assert!(
        why.contains(
            "the next client was answered, but after the client left mid-message the server used "
        ) && why.contains(" ms of CPU in ")
            && why.contains("something spins"),
        "{report}"
    );
    let why = reason(&report, "slow-reader");
    assert!(
        why.contains("after the client that never reads left the server used ")
            && why.contains(" ms of CPU in "),
        "{report}"
    );
    for check in ["slow-reader", "mid-message-disconnect"] {
        let hint = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check)
            .and_then(|c| c["hint"].as_str())
            .unwrap_or_default();
        assert!(
            hint.contains("when recv returns b''") && hint.contains("Servidor con manejo"),
            "{check}: {report}"
        );
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn one_client_at_a_time_fails_concurrency() {
    let report = expect_spawned(
        &defect("serial"),
        &["concurrent-clients"],
        &["slow-reader", "huge-header"],
    );
    assert!(
        reason(&report, "concurrent-clients").starts_with("1 of 50 clients"),
        "{report}"
    );
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn trusting_the_header_fails_memory() {
    // The later of two equal flags wins (after FAST): a longer watch, for a loaded machine.
    let report = expect_spawned_with(
        &defect("trusting"),
        &["--settle", "3s"],
        &["memory-bounded"],
        &[],
    );
    assert!(
        reason(&report, "memory-bounded").contains("4294967295"),
        "{report}"
    );
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn threads_that_outlive_their_clients_fail_threads_released() {
    let report = expect_spawned(&defect("leak"), &["threads-released"], &[]);
    let why = reason(&report, "threads-released");
    if COUNTS_THREADS {
        assert!(
            why.ends_with("threads of departed clients never end"),
            "{report}"
        );
    } else {
        assert!(why.contains("Linux"), "{report}");
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn a_bounded_pool_of_threads_is_not_a_leak() {
    let _turn = turn();
    let (code, report) = check_json(&[
        "--spawn",
        &defect("pool"),
        "--check",
        "one-message",
        "--check",
        "concurrent-clients",
        "--check",
        "idle-cpu",
        "--check",
        "threads-released",
    ]);
    assert_eq!(code, 0, "{report}");
    if !COUNTS_THREADS {
        assert_eq!(report["passed"], 3, "{report}");
        return;
    }
    assert_eq!(report["passed"], 4, "{report}");
    // The pool's workers stay, so the second wave was needed to tell.
    assert!(
        reason(&report, "threads-released").contains("more clients came and went"),
        "{report}"
    );
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn the_notes_echo_server_ends_with_its_first_client() {
    let _turn = turn();
    let command = python_command("notes_echo_server.py", "0");
    let (code, report) = check_json(&["--spawn", &command, "--dialect", "raw"]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(with(&report, "fail"), set(&["one-message"]), "{report}");
    assert!(
        reason(&report, "one-message").contains("the server exited"),
        "{report}"
    );
    assert_eq!(report["skipped"], 12, "{report}");
}

#[test]
fn without_spawn_the_process_checks_are_skipped() {
    let _turn = turn();
    let mut cmd = Command::new(trama_echo());
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG");
    let server = ok(ServerProcess::from_command(cmd));
    let addr = server.addr().to_string();
    let (code, report) = check_json(&[&addr]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["target"], addr.as_str());
    assert_eq!(
        with(&report, "skip"),
        set(&["memory-bounded", "idle-cpu", "threads-released"]),
        "{report}"
    );
    assert!(reason(&report, "idle-cpu").contains("--spawn"), "{report}");
    // The disconnect checks pass on their conversation, and say what they did not measure.
    assert!(
        reason(&report, "mid-message-disconnect").ends_with(
            "; the server's CPU was not measured after the client left mid-message (run with --spawn)"
        ),
        "{report}"
    );
    assert!(
        reason(&report, "slow-reader").contains("not measured"),
        "{report}"
    );
    // The human form: a line per check and the summary.
    let mut cmd = check_command();
    cmd.arg(&addr)
        .args(FAST)
        .args(["--check", "one-message", "--check", "garbage"]);
    let (status, stdout, _) = ok(run_command(cmd, RUN_DEADLINE));
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("  pass  one-message  "), "{stdout}");
    assert!(
        stdout.ends_with("2 passed, 0 failed, 0 skipped\n"),
        "{stdout}"
    );
}

#[test]
fn a_server_that_never_listens_is_an_error() {
    let mut cmd = check_command();
    cmd.args([
        "--spawn",
        "echo 'Traceback: SyntaxError' >&2; exit 1",
        "--start-timeout",
        "5s",
    ]);
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    // A run that could not happen is a failure (1), as in every app; 2 is bad usage.
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("SyntaxError"), "{stderr}");
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn batch_gives_the_expected_table() {
    let _turn = turn();
    let dir = std::env::temp_dir().join(format!("trama-check-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let subs = dir.join("subs");
    for (student, server) in [
        ("ana", Some("correct")),
        ("bea", Some("single_recv")),
        ("cris", Some("serial")),
        ("dani", None),
    ] {
        let folder = subs.join(student);
        match server {
            Some(server) => submission(&folder, server),
            None => std::fs::create_dir_all(&folder).unwrap(),
        }
    }
    let template = servidor_template(0);
    let csv = dir.join("out.csv");
    let json = dir.join("out.json");
    let mut cmd = check_command();
    cmd.arg("batch")
        .arg(&subs)
        .args([
            "--spawn",
            &template,
            "--time-limit",
            "60s",
            "--start-timeout",
            "5s",
        ])
        .args(FAST)
        .arg("--csv")
        .arg(&csv)
        .arg("--json")
        .arg(&json);
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE * 4));
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("dani: not checked: "), "{stdout}");

    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0].join(","),
        "submission,passed,failed,skipped,error,one-message,byte-at-a-time,ten-in-one-write,\
         empty-message,large-message,concurrent-clients,slow-reader,mid-message-disconnect,\
         huge-header,garbage,memory-bounded,idle-cpu,threads-released"
    );
    assert_eq!(rows.len(), 5, "{table}");
    let p = "pass";
    assert_eq!(
        rows[1],
        ["ana", "13", "0", "0", "", p, p, p, p, p, p, p, p, p, p, p, p, p],
        "{table}"
    );
    assert_eq!(
        rows[2],
        ["bea", "11", "2", "0", "", p, "fail", p, p, "fail", p, p, p, p, p, p, p, p],
        "{table}"
    );
    assert_eq!(
        rows[3],
        ["cris", "10", "1", "2", "", p, p, p, p, p, "fail", "skip", p, "skip", p, p, p, p],
        "{table}"
    );
    // dani has no servidor.py: an error, and every check skipped.
    assert!(rows[4].join(",").starts_with("dani,0,0,13,"), "{table}");
    assert!(rows[4].join(",").ends_with(&",skip".repeat(13)), "{table}");
    assert!(rows[4][4].contains("servidor.py"), "{table}");

    let summary = read_json(&json);
    let subs_json = summary["submissions"].as_array().unwrap();
    assert_eq!(subs_json.len(), 4);
    assert_eq!(subs_json[1]["submission"], "bea");
    assert_eq!(subs_json[1]["failed"], 2);
    assert!(
        subs_json[3]["error"].as_str().unwrap().contains("exited"),
        "{summary}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn batch_stops_a_submission_at_its_time_limit() {
    let _turn = turn();
    let dir = std::env::temp_dir().join(format!("trama-check-limit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    submission(&dir.join("subs").join("slow"), "serial");
    let template = servidor_template(0);
    let json = dir.join("out.json");
    let mut cmd = check_command();
    cmd.arg("batch")
        .arg(dir.join("subs"))
        .args(["--spawn", &template, "--time-limit", "1s"])
        .args(FAST)
        .arg("--csv")
        .arg(dir.join("out.csv"))
        .arg("--json")
        .arg(&json);
    let (status, stdout, stderr) = ok(run_command(cmd, RUN_DEADLINE));
    assert!(status.success(), "{stdout}\n{stderr}");
    let summary = read_json(&json);
    let report = &summary["submissions"][0];
    // The serial server makes concurrent-clients wait out its 5 s timeout,
    // which is past the 1 s limit: the checks after it do not run.
    assert_eq!(report["checks"][0]["status"], "pass", "{report}");
    assert!(
        reason(report, "threads-released").contains("time limit"),
        "{report}"
    );
    assert!(reason(report, "garbage").contains("time limit"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn reply_mode_compares_with_the_answer_to_the_whole_message() {
    let _turn = turn();
    // The notes' chat server answers "Acción asociada a ..." to every non-empty message.
    let command = python_command("notes_chat_server.py", "0");
    let (code, report) = check_json(&[
        "--spawn",
        &command,
        "--expect",
        "reply",
        "--check",
        "one-message",
        "--check",
        "byte-at-a-time",
        "--check",
        "ten-in-one-write",
        "--check",
        "empty-message",
        "--check",
        "large-message",
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["passed"], 5, "{report}");
    assert_eq!(
        reason(&report, "empty-message"),
        "the empty message got no answer, and the next one was answered"
    );
    // The same server judged as an echo server fails at once, with the bytes it sent.
    let (code, report) = check_json(&["--spawn", &command, "--check", "one-message"]);
    assert_eq!(code, 3, "{report}");
    assert!(reason(&report, "one-message").contains("bytes"), "{report}");
}

#[test]
fn tls_and_the_shared_key_reach_a_server_that_wants_them() {
    let _turn = turn();
    let dir = std::env::temp_dir().join(format!("trama-check-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = ok(ok(trama_test_support::pki::Pki::new()).write_to(&dir));
    let key_file = dir.join("authkey");
    ok(trama_test_support::write_private(&key_file, "secreto\n"));
    let mut cmd = Command::new(trama_echo());
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .arg("--key-file")
        .arg(&key_file);
    let server = ok(ServerProcess::from_command(cmd));
    let addr = server.addr().to_string();
    let checks = [
        "--check",
        "one-message",
        "--check",
        "byte-at-a-time",
        "--check",
        "large-message",
    ];
    // Plain, the server refuses every probe: the checks fail (a verdict).
    let mut plain = vec![addr.as_str()];
    plain.extend_from_slice(&checks);
    let (code, report) = check_json(&plain);
    assert_eq!(code, 3, "{report}");
    // With TLS and the key, as every other app spells them, they pass.
    let (ca, key) = (
        pki.ca.to_str().unwrap().to_string(),
        key_file.to_str().unwrap().to_string(),
    );
    let mut secured = vec![addr.as_str(), "--tls-ca", &ca, "-k", &key];
    secured.extend_from_slice(&checks);
    let (code, report) = check_json(&secured);
    assert_eq!(code, 0, "{report}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
