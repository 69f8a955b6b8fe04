//! Helpers for the hardening tests in `tests/`: the real server binaries
//! (`trama-echo`, `trama-chat`, `trama-files`, `trama-peer`) on loopback, raw
//! clients that misbehave on purpose, the fault schedules of
//! `trama_tap::fault` applied to a client's writes, and what `/proc`
//! says about a server's memory, threads and open files.
//!
//! Nothing here measures time: a test waits for a line in the server's log
//! or for an answer, with a deadline that only turns a hang into a failure.

// Test helpers: a failure panics with a message that says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
use trama_tap::fault::{FaultPlan, FaultSchedule, Step};
use trama_tap::Direction;
use trama_test_support::ServerProcess;

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The packages of the binaries these tests start (`trama-tap` is built
/// by `trama-tap-cli`: the `trama-tap` package is its library).
const PACKAGES: [&str; 8] = [
    "trama-echo",
    "trama-chat",
    "trama-files",
    "trama-peer",
    "trama-tap-cli",
    "trama-multi",
    "trama-check",
    "trama-bench",
];

/// Unwrap a test-support result, showing its message as is.
pub fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `<target dir>/<profile>`: where cargo put this test binary's siblings.
fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<test binary>
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

/// The path of one of the workspace's binaries, built (once per test run,
/// with the same profile and target directory as this test) so that the
/// tests always run against the current code.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(build);
    let path = out_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing after the build",
        path.display()
    );
    path
}

fn build() {
    if std::env::var_os("TRAMA_HARDENING_NO_BUILD").is_some() {
        return;
    }
    ok(trama_test_support::build_packages(&out_dir(), &PACKAGES));
}

/// Start `program args... --addr 127.0.0.1:0` with `RUST_LOG=info`, so every
/// connection's end is logged with its reason, and wait until it listens.
pub fn serve<S: AsRef<OsStr>>(program: &str, args: &[S]) -> ServerProcess {
    let mut cmd = Command::new(bin(program));
    cmd.args(args)
        .args(["--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    ok(ServerProcess::from_command(cmd))
}

/// Wait until the server's stderr contains `text`; returns the whole log.
pub fn wait_for_log(server: &ServerProcess, text: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = server.stderr_text();
        if log.contains(text) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the server's log within {DEADLINE:?}:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the server's stderr contains one of `texts`; returns it.
pub fn wait_for_any<'a>(server: &ServerProcess, texts: &[&'a str]) -> &'a str {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = server.stderr_text();
        if let Some(t) = texts.iter().find(|t| log.contains(**t)) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "none of {texts:?} in the server's log within {DEADLINE:?}:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// How many times `text` occurs in the server's log.
pub fn count_in_log(server: &ServerProcess, text: &str) -> usize {
    server.stderr_text().matches(text).count()
}

/// Wait until `count_in_log(server, text) >= n`.
pub fn wait_for_count(server: &ServerProcess, text: &str, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    while count_in_log(server, text) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} {text:?} in the server's log within {DEADLINE:?} (got {}):\n{}",
            count_in_log(server, text),
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

pub use trama_cli::procfs::open_fds;

/// One field of `/proc/PID/status` (e.g. `VmRSS` in KiB, `Threads`), on
/// Linux; `None` elsewhere or if the process is gone.
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    trama_cli::procfs::status_field(pid, field)
}

/// Resident memory of a process in KiB (Linux), `None` elsewhere.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status(pid, "VmRSS")
}

/// Wait until `probe()` is at most `bound` (or unknown, off Linux); panics
/// with the last value otherwise. For counts that fall once the server has
/// processed closes it has not seen yet.
pub fn wait_at_most(what: &str, bound: u64, probe: impl Fn() -> Option<u64>) -> Option<u64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let v = probe()?;
        if v <= bound {
            return Some(v);
        }
        assert!(
            Instant::now() < deadline,
            "{what} is {v}, more than {bound}, after {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A small deterministic random generator (xorshift64*): garbage that is the
/// same on every run, so a failure can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// A connection that speaks the default frames (4-byte big-endian length),
/// with read and write timeouts so no test hangs on it.
pub struct Framed {
    /// The socket, for raw writes, shutdowns and options.
    pub stream: TcpStream,
    reader: FrameReader<TcpStream>,
    writer: FrameWriter<TcpStream>,
}

impl Framed {
    /// Connect to `addr`.
    pub fn connect(addr: SocketAddr) -> Framed {
        Framed::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wrap a connected socket.
    pub fn from_stream(stream: TcpStream) -> Framed {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Framed {
            reader: FrameReader::new(stream.try_clone().unwrap(), FrameConfig::default()),
            writer: FrameWriter::new(stream.try_clone().unwrap(), FrameConfig::default()),
            stream,
        }
    }

    /// Send one frame.
    pub fn send(&mut self, payload: &[u8]) {
        self.writer.write_frame(payload).expect("send a frame");
    }

    /// The next frame, `None` at a clean end of stream between frames.
    pub fn recv(&mut self) -> trama_protocol::Result<Option<Vec<u8>>> {
        self.reader.read_frame()
    }

    /// The next frame as text; panics at the end of the stream.
    pub fn recv_text(&mut self) -> String {
        let frame = self
            .recv()
            .expect("a frame")
            .expect("a frame, not the end of the stream");
        String::from_utf8(frame).expect("UTF-8")
    }

    /// Read frames until one satisfies `want`; returns it.
    pub fn recv_until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        loop {
            match self.recv() {
                Ok(Some(f)) => {
                    let line = String::from_utf8_lossy(&f).into_owned();
                    if want(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("the stream ended while waiting for {what}"),
                Err(e) => panic!("{e} while waiting for {what}"),
            }
        }
    }

    /// Send `bytes` through the client-to-server faults of `plan` (the
    /// syntax of `trama_tap::fault`, e.g. `c2s:split=1`). Returns the
    /// last step that ended the schedule (`Close`, `Reset`, `Stall`), if any,
    /// or the error of a write the server refused (it closed the connection).
    pub fn send_faulty(&mut self, plan: &str, bytes: &[u8]) -> io::Result<Option<Step>> {
        // Each piece of a split is a write of its own: sent at once, as the
        // tap sends them, not held back by Nagle until the previous is acknowledged.
        self.stream.set_nodelay(true)?;
        let plan: FaultPlan = plan.parse().expect("a fault plan");
        let mut schedule = FaultSchedule::new(
            plan.faults(Direction::ClientToServer),
            FrameConfig::default(),
            7,
        )
        .expect("a fault schedule");
        let mut steps = Vec::new();
        schedule.push(bytes, &mut steps);
        for step in steps {
            match step {
                Step::Write(range) => self.stream.write_all(&bytes[range])?,
                Step::Inject(extra) => self.stream.write_all(&extra)?,
                Step::Sleep(d) => thread::sleep(d),
                Step::Fired(_) => {}
                Step::Close => {
                    let _ = self.stream.shutdown(Shutdown::Write);
                    return Ok(Some(Step::Close));
                }
                Step::Reset => {
                    reset(&self.stream);
                    return Ok(Some(Step::Reset));
                }
                Step::Stall => return Ok(Some(Step::Stall)),
            }
        }
        Ok(None)
    }

    /// True once the server has closed this connection: a read returns the
    /// end of the stream or a reset (anything it still sends is skipped).
    pub fn wait_closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Close `stream` with a reset (RST) instead of an orderly FIN.
pub fn reset(stream: &TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = sock.shutdown(Shutdown::Both);
}

/// A connection whose receive buffer is as small as the OS allows, so a
/// client that never reads stops absorbing a server's sends early.
pub fn connect_small_rcvbuf(addr: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    sock.into()
}

/// The default frame for `payload`: its 4-byte big-endian length, then it.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameConfig::default().encode(payload, &mut out).unwrap();
    out
}

/// Send a signal to a process we started, by its pid (Unix `kill`).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

/// A file path inside this package's scratch directory (under the target
/// directory, removed and created fresh).
pub fn scratch(name: &str) -> PathBuf {
    let dir = out_dir().join("hardening-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True if `path` holds no file whose name starts with `prefix`.
pub fn none_starting_with(path: &Path, prefix: &str) -> bool {
    std::fs::read_dir(path)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with(prefix))
}
