//! A console program driven through its stdin in an end-to-end test.
//!
//! Chat clients, the multi-server console and peers all read lines on stdin
//! and print lines on stdout; a test types lines, waits for lines, and checks
//! how the process ended. Nothing here measures time: each wait has a
//! generous [`DEADLINE`] only so that a broken build fails instead of hanging.

// Test support: a failed expectation panics, which fails the calling test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{python3, python_script, READY_PREFIX};

/// How long any single wait may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Assert that no line of `lines` (what a console printed) is one `matches`
/// accepts; a failure says `what` went wrong and shows every line.
pub fn assert_no_line(what: &str, lines: &[String], matches: impl Fn(&str) -> bool) {
    if let Some(line) = lines.iter().find(|l| matches(l)) {
        panic!("{what}: {line:?} among\n{}", lines.join("\n"));
    }
}

/// How a finished [`Console`] ended.
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Every line it printed on stdout.
    pub lines: Vec<String>,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

/// A child process driven through its stdin: every line it prints on stdout
/// is collected, and its stderr is kept (the `listening on ADDR` line gives
/// its address). Killed when dropped.
pub struct Console {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    incoming: mpsc::Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    /// `expect` looks at lines from here on.
    cursor: usize,
    stderr: Arc<Mutex<String>>,
    ready: mpsc::Receiver<SocketAddr>,
    addr: Option<SocketAddr>,
    readers: Vec<JoinHandle<()>>,
}

impl Console {
    /// Start `cmd` (named `what` in messages) with piped stdin, stdout and stderr.
    pub fn spawn(what: impl Into<String>, mut cmd: Command) -> Console {
        let what = what.into();
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let (tx, incoming) = mpsc::channel();
        let stdout_reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready) = mpsc::channel();
        let stderr_reader = {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr_pipe);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if let Some(addr) = text.trim().strip_prefix(READY_PREFIX) {
                        if let Ok(addr) = addr.parse::<SocketAddr>() {
                            let _ = ready_tx.send(addr);
                        }
                    }
                    stderr.lock().unwrap().push_str(&text);
                }
            })
        };
        Console {
            what,
            child,
            stdin,
            incoming,
            seen: Vec::new(),
            cursor: 0,
            stderr,
            ready,
            addr: None,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    /// A Python program from `tests/python`, run with `args`.
    pub fn python<S: AsRef<OsStr>>(what: &str, script: &str, args: &[S]) -> Console {
        let python = python3().unwrap_or_else(|e| panic!("{e}"));
        let script = python_script(script).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(python);
        cmd.arg("-u").arg(script).args(args);
        Console::spawn(what, cmd)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address it printed in `listening on ADDR`, waiting for the line.
    pub fn addr(&mut self) -> SocketAddr {
        if let Some(addr) = self.addr {
            return addr;
        }
        match self.ready.recv_timeout(DEADLINE) {
            Ok(addr) => {
                self.addr = Some(addr);
                addr
            }
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "{} never said `listening on ADDR`; {}",
                    self.what,
                    self.report()
                )
            }
        }
    }

    /// Everything it wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What it printed on both streams, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "{} printed:\n{}\n--- its stderr:\n{}",
            self.what,
            self.seen.join("\n"),
            self.stderr_text()
        )
    }

    /// Type one line.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        let sent = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush());
        if let Err(e) = sent {
            panic!("cannot type {line:?}: {e}\n{}", self.report());
        }
    }

    /// Take the next stdout line, or panic (saying `what` was awaited) once
    /// `deadline` passes or the output ends.
    pub fn pull(&mut self, what: &str, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left) {
            Ok(line) => self.seen.push(line),
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line {what} within {DEADLINE:?}; {}", self.report())
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Let the stderr reader catch up before reporting.
                let _ = self.child.wait();
                thread::sleep(Duration::from_millis(50));
                panic!("{} ended with no line {what}; {}", self.what, self.report())
            }
        }
    }

    /// Wait for the next line (from the last one expected on) that `matches`,
    /// and return it.
    pub fn expect_match(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = (self.cursor..self.seen.len()).find(|&i| matches(&self.seen[i])) {
                self.cursor = i + 1;
                return self.seen[i].clone();
            }
            self.pull(what, deadline);
        }
    }

    /// Wait until some line printed so far or later (expected already or
    /// not) `matches`; where `expect` looks next does not change.
    pub fn expect_seen(&mut self, what: &str, matches: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let mut from = 0;
        loop {
            if self.seen[from..].iter().any(|l| matches(l)) {
                return;
            }
            from = self.seen.len();
            self.pull(what, deadline);
        }
    }

    /// Wait for the line `line` exactly.
    pub fn expect(&mut self, line: &str) -> String {
        self.expect_match(&format!("{line:?}"), |l| l == line)
    }

    /// Wait for every one of `lines`, in any order (each from the last line
    /// expected on); afterwards `expect` looks past the last of them.
    pub fn expect_all<S: AsRef<str>>(&mut self, lines: &[S]) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut found: Vec<usize> = Vec::new();
            for want in lines {
                let hit = (self.cursor..self.seen.len())
                    .find(|i| !found.contains(i) && self.seen[*i] == want.as_ref());
                match hit {
                    Some(i) => found.push(i),
                    None => break,
                }
            }
            if found.len() == lines.len() {
                if let Some(last) = found.iter().max() {
                    self.cursor = last + 1;
                }
                return;
            }
            let shown: Vec<&str> = lines.iter().map(AsRef::as_ref).collect();
            self.pull(&format!("among {shown:?}"), deadline);
        }
    }

    /// Wait until its stderr contains `text`.
    pub fn expect_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.stderr_text().contains(text) {
            if Instant::now() >= deadline {
                panic!(
                    "{} never wrote {text:?} on stderr within {DEADLINE:?}; {}",
                    self.what,
                    self.report()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Collect the lines it printed so far (without waiting).
    pub fn drain(&mut self) {
        self.seen.extend(self.incoming.try_iter());
    }

    /// Wait for the process to end (after its input ended or it was
    /// killed) and collect everything it printed.
    pub fn wait_exit(mut self) -> Finished {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                panic!(
                    "{} still running {DEADLINE:?} after its input ended (killed); {}",
                    self.what,
                    self.report()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.drain();
        Finished {
            status,
            lines: std::mem::take(&mut self.seen),
            stderr: self.stderr_text(),
        }
    }

    /// Close stdin (the input ends) and wait for the exit.
    pub fn finish(mut self) -> Finished {
        drop(self.stdin.take());
        self.wait_exit()
    }

    /// Close stdin without waiting: the input ends.
    pub fn close_input(&mut self) {
        drop(self.stdin.take());
    }

    /// [`finish`](Console::finish), asserting a 0 exit; returns every line printed.
    pub fn finish_ok(self) -> Vec<String> {
        let what = self.what.clone();
        let done = self.finish();
        assert!(
            done.status.success(),
            "{what} exited with {}; stdout:\n{}\nstderr:\n{}",
            done.status,
            done.lines.join("\n"),
            done.stderr
        );
        done.lines
    }

    /// Kill it by its pid, as a crash would, and reap it; returns every line
    /// it printed. Its port is free again when this returns.
    pub fn kill(mut self) -> Vec<String> {
        let pid = self.pid();
        if cfg!(unix) {
            let status = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
            assert!(status.success(), "kill -KILL {pid}: {status}");
        } else {
            self.child.kill().unwrap();
        }
        self.wait_exit().lines
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
