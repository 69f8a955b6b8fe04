//! Command-line manners, the same in every app: a reader that stops reading
//! ends a console quietly with status 0 (never a panic), the exit statuses
//! of the shared table, `--raw` for the notes' dialect, and completions and
//! man pages generated for every app.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use trama_hardening::{bin, serve, DEADLINE};

/// Every app, by the name of its program.
const APPS: [&str; 8] = [
    "trama-echo",
    "trama-chat",
    "trama-files",
    "trama-multi",
    "trama-peer",
    "trama-tap",
    "trama-check",
    "trama-bench",
];

/// How a console ended once its reader went away.
struct Ended {
    status: ExitStatus,
    stderr: String,
    first_line: Option<String>,
}

/// Run `cmd`; a reader takes at most `read_lines` lines of its stdout (0:
/// none) and closes the pipe; meanwhile `input` is typed again and again
/// until the program ends. A program that never ends fails the test at
/// [`DEADLINE`].
fn close_stdout_early(what: &str, mut cmd: Command, read_lines: usize, input: &str) -> Ended {
    cmd.env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child: Child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        for _ in 0..read_lines {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let _ = line_tx.send(line);
        }
        // `stdout` drops here: the reading end of the pipe closes.
    });
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let mut stdin = child.stdin.take();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} still running {DEADLINE:?} after its reader left; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
        if let Some(pipe) = stdin.as_mut() {
            if pipe.write_all(format!("{input}\n").as_bytes()).is_err() {
                stdin = None;
            }
        }
        thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    Ended {
        status,
        stderr: stderr.join().unwrap(),
        first_line: line_rx.try_iter().next(),
    }
}

/// Status 0 and nothing on stderr about the pipe: no panic, no backtrace.
fn assert_quiet(what: &str, end: &Ended) {
    assert_eq!(
        end.status.code(),
        Some(0),
        "{what} exited with {}; stderr:\n{}",
        end.status,
        end.stderr
    );
    let lower = end.stderr.to_lowercase();
    for word in ["panicked", "broken pipe", "backtrace", "failed printing"] {
        assert!(
            !lower.contains(word),
            "{what} said {word:?}:\n{}",
            end.stderr
        );
    }
}

#[test]
fn chat_join_ends_quietly_when_its_reader_leaves() {
    let server = serve("trama-chat", &["serve"]);
    let mut cmd = Command::new(bin("trama-chat"));
    cmd.args(["join", "-a", &server.addr().to_string(), "-n", "ana"]);
    // `trama-chat join | head -1`, then the room keeps talking to ana.
    let end = close_stdout_early("trama-chat join", cmd, 1, "/who");
    assert!(
        end.first_line
            .as_deref()
            .is_some_and(|l| l.starts_with("* ")),
        "{:?}",
        end.first_line
    );
    assert_quiet("trama-chat join", &end);
}

#[test]
fn multi_ends_quietly_when_its_reader_leaves() {
    let server = serve("trama-echo", &["serve", "--framed"]);
    let mut cmd = Command::new(bin("trama-multi"));
    cmd.args(["-s", &server.addr().to_string()]);
    let end = close_stdout_early("trama-multi", cmd, 1, "@1 hola");
    assert!(end.first_line.is_some(), "trama-multi printed nothing");
    assert_quiet("trama-multi", &end);
}

#[test]
fn peer_ends_quietly_when_its_reader_leaves() {
    let mut cmd = Command::new(bin("trama-peer"));
    cmd.args(["-n", "ana", "-l", "127.0.0.1:0"]);
    // Alone, each typed line gets "* no peers connected" on stdout.
    let end = close_stdout_early("trama-peer", cmd, 1, "hola");
    assert!(end.first_line.is_some(), "trama-peer printed nothing");
    assert_quiet("trama-peer", &end);
}

#[test]
fn echo_send_ends_quietly_into_a_closed_stdout() {
    let server = serve("trama-echo", &["serve", "--framed"]);
    let mut cmd = Command::new(bin("trama-echo"));
    cmd.args(["send", "-a", &server.addr().to_string(), "--text", "hola"]);
    let end = close_stdout_early("trama-echo send", cmd, 0, "");
    assert_quiet("trama-echo send", &end);
}

#[test]
fn tap_ends_quietly_when_its_reader_leaves() {
    // `trama-tap -l ... -t SERVER | head -1` while a client keeps sending frames.
    let server = serve("trama-echo", &["serve", "--framed"]);
    let mut child = Command::new(bin("trama-tap"))
        .args(["-l", "127.0.0.1:0", "-t", &server.addr().to_string()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start trama-tap: {e}"));
    // stderr: the address the tap listens on first, all of it in the end.
    let stderr_pipe = child.stderr.take().unwrap();
    let (addr_tx, addr_rx) = mpsc::channel();
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = addr_tx.send(addr.trim().to_string());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let Ok(addr) = addr_rx.recv_timeout(DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("trama-tap never listened:\n{}", stderr.join().unwrap());
    };
    // The reader takes the first line (the connection opening) and leaves.
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut line = String::new();
        if BufReader::new(stdout).read_line(&mut line).unwrap_or(0) > 0 {
            let _ = line_tx.send(line);
        }
    });
    let mut client = TcpStream::connect(&addr).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "trama-tap still running {DEADLINE:?} after its reader left; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
        // A frame for the tap to print; once it has ended the writes fail.
        let _ = client.write_all(b"\x00\x00\x00\x04hola");
        thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    let end = Ended {
        status,
        stderr: stderr.join().unwrap(),
        first_line: line_rx.try_iter().next(),
    };
    assert!(
        end.first_line
            .as_deref()
            .is_some_and(|l| l.contains("#1 open")),
        "{:?}",
        end.first_line
    );
    assert_quiet("trama-tap", &end);
}

#[test]
fn check_ends_quietly_into_a_closed_stdout() {
    // `trama-check -a SERVER | head -0`: the report has nowhere to go.
    let server = serve("trama-echo", &["serve", "--framed"]);
    let mut cmd = Command::new(bin("trama-check"));
    let addr = server.addr().to_string();
    cmd.args([
        "-a",
        &addr,
        "--check",
        "one-message",
        "--check",
        "ten-in-one-write",
    ]);
    let end = close_stdout_early("trama-check", cmd, 0, "");
    assert_quiet("trama-check", &end);
}

#[test]
fn bench_ends_quietly_into_a_closed_stdout() {
    let server = serve("trama-echo", &["serve", "--framed"]);
    let mut cmd = Command::new(bin("trama-bench"));
    let addr = server.addr().to_string();
    cmd.args(["pingpong", "-a", &addr, "--count", "200", "--quiet"]);
    let end = close_stdout_early("trama-bench pingpong", cmd, 0, "");
    assert_quiet("trama-bench pingpong", &end);
}

#[test]
fn files_send_ends_quietly_into_a_closed_stdout() {
    let dir = std::env::temp_dir().join(format!("trama-manners-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let file = dir.join("hola.txt");
    std::fs::write(&file, b"hola desde un pipe cerrado\n").unwrap();
    let inbox = dir.join("in");
    let receiver = serve(
        "trama-files",
        &["receive".as_ref(), "--dir".as_ref(), inbox.as_os_str()],
    );
    let mut cmd = Command::new(bin("trama-files"));
    cmd.args(["send", "-a", &receiver.addr().to_string(), "--quiet"])
        .arg(&file);
    let end = close_stdout_early("trama-files send", cmd, 0, "");
    assert_quiet("trama-files send", &end);
    // The file went through all the same: only the summary line had nowhere to go.
    assert_eq!(
        std::fs::read(inbox.join("hola.txt")).unwrap(),
        b"hola desde un pipe cerrado\n"
    );
    drop(receiver);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `app args...`, its status and output.
fn run(app: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin(app))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {app}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_help_ends_with_the_exit_table_and_bad_usage_is_2() {
    for app in APPS {
        let (code, help, _) = run(app, &["--help"]);
        assert_eq!(code, Some(0), "{app} --help");
        for line in [
            "Exit status:",
            "  1    failure",
            "  2    bad usage",
            "  3    verdict",
        ] {
            assert!(help.contains(line), "{app} --help lacks {line:?}:\n{help}");
        }
        let (code, _, stderr) = run(app, &["--no-such-flag"]);
        assert_eq!(code, Some(2), "{app} --no-such-flag: {stderr}");
    }
    for (app, sub) in [
        ("trama-echo", "send"),
        ("trama-chat", "join"),
        ("trama-files", "receive"),
        ("trama-tap", "replay"),
    ] {
        let (_, help, _) = run(app, &[sub, "--help"]);
        assert!(help.contains("Exit status:"), "{app} {sub} --help:\n{help}");
    }
}

#[test]
fn completions_and_man_pages_for_every_app() {
    for app in APPS {
        for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
            let (code, script, stderr) = run(app, &["completions", shell]);
            assert_eq!(code, Some(0), "{app} completions {shell}: {stderr}");
            assert!(
                script.contains(app) && script.contains("help"),
                "{app} completions {shell} names neither the app nor its flags:\n{script}"
            );
        }
        let (code, page, stderr) = run(app, &["man"]);
        assert_eq!(code, Some(0), "{app} man: {stderr}");
        assert!(page.contains(&format!(".TH {app} 1")), "{app} man:\n{page}");
        assert!(
            page.contains("Exit status"),
            "{app} man lacks the exit table"
        );
        let (code, _, stderr) = run(app, &["completions", "tcsh"]);
        assert_eq!(code, Some(2), "{app} completions tcsh");
        assert!(stderr.contains("bash"), "{app}: {stderr}");
    }
}

#[test]
fn raw_is_the_notes_dialect_everywhere() {
    // trama-echo serve speaks it by default; --raw says so, and refuses --framed.
    let server = serve("trama-echo", &["serve", "--raw"]);
    let (code, out, stderr) = run(
        "trama-echo",
        &[
            "send",
            "-r",
            "-a",
            &server.addr().to_string(),
            "--text",
            "hola",
        ],
    );
    assert_eq!((code, out.as_str()), (Some(0), "hola\n"), "{stderr}");
    let (code, _, stderr) = run("trama-echo", &["serve", "--raw", "--framed"]);
    assert_eq!(code, Some(2), "{stderr}");
    // The old spellings stay, hidden.
    // One short spelling too, -r, in every app that has --raw (-c stays a hidden alias).
    for (app, args) in [
        ("trama-peer", &["-r", "--help"][..]),
        ("trama-peer", &["-c", "--help"]),
        ("trama-files", &["send", "-r", "--help"]),
        ("trama-files", &["receive", "-c", "--help"]),
    ] {
        let (code, help, stderr) = run(app, args);
        assert_eq!(code, Some(0), "{app} {args:?}: {stderr}");
        assert!(help.contains("-r, --raw"), "{app} {args:?}:\n{help}");
    }
    for (app, args) in [
        ("trama-peer", &["--raw", "--help"][..]),
        ("trama-peer", &["--compat", "--help"]),
        ("trama-files", &["receive", "--compat", "--help"]),
    ] {
        let (code, help, stderr) = run(app, args);
        assert_eq!(code, Some(0), "{app} {args:?}: {stderr}");
        assert!(
            help.contains("--raw") && !help.contains("--compat"),
            "{help}"
        );
    }
}
