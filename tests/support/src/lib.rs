//! # trama-test-support
//!
//! Helpers for trama's end-to-end tests, which run the real binaries and
//! talk to them from Python programs written from the course notes:
//!
//! - [`ServerProcess`] starts a server binary, waits for the line
//!   `listening on ADDR` it prints on stderr when ready, keeps draining its
//!   stderr, and kills it when dropped;
//! - [`python3`] finds the Python interpreter (or says clearly that it is
//!   missing), and [`python_script`] locates the programs in `tests/python`;
//! - [`run_python`] and [`run_command`] run a program to completion with a
//!   timeout, returning its exit status and what it printed;
//! - [`write_private`] writes a key file only its owner may read;
//! - `pki` (feature `pki`) makes the test certificates of the TLS tests.
//!
//! Nothing here panics: every failure is an [`Error`] whose message says what
//! happened and includes whatever the child process printed.

pub mod console;
#[cfg(feature = "pki")]
pub mod pki;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long [`ServerProcess::start`] waits for `listening on ADDR`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The line prefix a server prints on stderr once it accepts connections.
pub const READY_PREFIX: &str = "listening on ";

/// What went wrong in a helper; the message is meant to be shown as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`run_command`] and [`run_python`] return: the exit status, then
/// stdout and stderr (decoded as UTF-8, invalid bytes replaced).
pub type RunOutput = (ExitStatus, String, String);

/// How a command line is shown in error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Lock the shared buffer, even if a reader thread panicked while holding it.
fn read_buffer(buffer: &Mutex<Vec<u8>>) -> String {
    let guard = match buffer.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    String::from_utf8_lossy(&guard).into_owned()
}

fn append(buffer: &Mutex<Vec<u8>>, bytes: &[u8]) {
    let mut guard = match buffer.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.extend_from_slice(bytes);
}

/// Read `source` to its end into `buffer`, on a thread of its own.
fn drain<R: Read + Send + 'static>(
    mut source: R,
    buffer: Arc<Mutex<Vec<u8>>>,
    name: &str,
) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match source.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => append(&buffer, &chunk[..n]),
                }
            }
        })
        .map_err(|e| Error::new(format!("cannot start thread {name}: {e}")))
}

/// Read stderr line by line into `buffer`; send the address of the first
/// `listening on ADDR` line on `ready`. Runs until stderr closes.
fn watch_stderr(
    stderr: ChildStderr,
    buffer: Arc<Mutex<Vec<u8>>>,
    ready: mpsc::Sender<std::result::Result<SocketAddr, String>>,
) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("server-stderr".to_string())
        .spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            let mut ready = Some(ready);
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                append(&buffer, &line);
                if let Some(tx) = &ready {
                    let text = String::from_utf8_lossy(&line);
                    if let Some(rest) = text.trim().strip_prefix(READY_PREFIX) {
                        let parsed = rest
                            .trim()
                            .parse::<SocketAddr>()
                            .map_err(|e| format!("cannot parse address {rest:?}: {e}"));
                        // The receiver may have given up already; nothing to do then.
                        let _ = tx.send(parsed);
                        ready = None;
                    }
                }
            }
            // Dropping `ready` here (if still set) tells the waiter stderr closed.
        })
        .map_err(|e| Error::new(format!("cannot start the stderr reader thread: {e}")))
}

/// A server running as a child process, killed when dropped.
///
/// ```no_run
/// use trama_test_support::ServerProcess;
///
/// let server = ServerProcess::start("trama-echo", ["serve", "--addr", "127.0.0.1:0"])?;
/// println!("server at {}", server.addr());
/// # Ok::<(), trama_test_support::Error>(())
/// ```
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    command: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    /// Start `program` with `args` (which should make it listen on
    /// `127.0.0.1:0`, e.g. `serve --addr 127.0.0.1:0`) and wait up to
    /// [`READY_TIMEOUT`] for it to print `listening on ADDR` on stderr.
    ///
    /// If the line never comes (the program exits, or the time runs out),
    /// the child is killed and the error includes everything it wrote on
    /// stderr.
    pub fn start<I, S>(program: impl AsRef<OsStr>, args: I) -> Result<ServerProcess>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args);
        ServerProcess::from_command(cmd)
    }

    /// Like [`ServerProcess::start`], for a command already set up (extra
    /// environment, working directory...). Its stdin and stdout are
    /// discarded and its stderr is captured.
    pub fn from_command(mut cmd: Command) -> Result<ServerProcess> {
        ServerProcess::from_command_with_deadline(&mut cmd, READY_TIMEOUT)
    }

    fn from_command_with_deadline(cmd: &mut Command, wait: Duration) -> Result<ServerProcess> {
        let command = describe(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("cannot start `{command}`: {e}")))?;
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let Some(stderr) = child.stderr.take() else {
            kill_and_wait(&mut child);
            return Err(Error::new(format!("`{command}`: stderr was not captured")));
        };
        let (tx, rx) = mpsc::channel();
        if let Err(e) = watch_stderr(stderr, Arc::clone(&buffer), tx) {
            kill_and_wait(&mut child);
            return Err(e);
        }
        let failure = match rx.recv_timeout(wait) {
            Ok(Ok(addr)) => {
                return Ok(ServerProcess {
                    child,
                    addr,
                    command,
                    stderr: buffer,
                    status: None,
                })
            }
            Ok(Err(parse)) => parse,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                format!("no `{READY_PREFIX}ADDR` line within {wait:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                "stderr closed before a `listening on ADDR` line".to_string()
            }
        };
        let status = kill_and_wait(&mut child);
        // Give the reader a moment to collect the last of stderr.
        thread::sleep(Duration::from_millis(50));
        Err(Error::new(format!(
            "`{command}` did not become ready: {failure}; {}; its stderr:\n{}",
            status.map_or_else(|| "exit status unknown".to_string(), |s| s.to_string()),
            read_buffer(&buffer)
        )))
    }

    /// The address the server said it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the server has written on stderr so far.
    pub fn stderr_text(&self) -> String {
        read_buffer(&self.stderr)
    }

    /// The child's process id (to send it a signal, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait up to `timeout` for the server to exit on its own (after a
    /// signal, say) and return its exit status. On timeout the server is
    /// left running (and killed on drop) and the error includes its stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return Ok(status);
                }
                Ok(None) if Instant::now() >= deadline => {
                    return Err(Error::new(format!(
                        "`{}` (pid {}) still running after {timeout:?}; its stderr:\n{}",
                        self.command,
                        self.pid(),
                        self.stderr_text()
                    )))
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(Error::new(format!(
                        "cannot wait for `{}`: {e}",
                        self.command
                    )))
                }
            }
        }
    }
}

impl fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerProcess")
            .field("command", &self.command)
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            kill_and_wait(&mut self.child);
        }
    }
}

/// Kill `child` (by its own pid) unless it already exited, then reap it.
fn kill_and_wait(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // Fails only if the child already exited, which `wait` then reports.
    let _ = child.kill();
    child.wait().ok()
}

/// The Python interpreter to run: `$PYTHON` if set, else `python3`.
///
/// Checks that it runs (`--version`), so a missing interpreter is one clear
/// error instead of a confusing failure later.
pub fn python3() -> Result<OsString> {
    let python = std::env::var_os("PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("python3"));
    let shown = python.to_string_lossy().into_owned();
    match Command::new(&python)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(Error::new(format!(
            "the Python interpreter `{shown}` does not run (`{shown} --version` exited with {}): {}; \
             install Python 3 or set PYTHON to its path",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(Error::new(format!(
            "Python 3 is required by this test but `{shown}` cannot be started: {e}; \
             install Python 3 or set PYTHON to its path"
        ))),
    }
}

/// Write `contents` to `path`, readable by its owner only on Unix, as the
/// apps demand of a key (`--key-file`, `--tls-key`).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::new(format!("cannot restrict {}: {e}", path.display())))?;
    }
    Ok(())
}

/// The directory of the Python test programs (`tests/python` in the workspace).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("python")
}

/// The path of the Python test program `name` (e.g. `"framed_client.py"`),
/// or an error if it does not exist.
pub fn python_script(name: &str) -> Result<PathBuf> {
    let path = python_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::new(format!(
            "no Python test program {}",
            path.display()
        )))
    }
}

/// Run the Python program `script` with `args`, waiting at most `timeout`;
/// see [`run_command`].
pub fn run_python<I, S>(script: impl AsRef<Path>, args: I, timeout: Duration) -> Result<RunOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(python3()?);
    // Unbuffered, so whatever it printed before a timeout is still reported.
    cmd.arg("-u").arg(script.as_ref()).args(args);
    run_command(cmd, timeout)
}

/// Run `cmd` to completion with stdin closed, capturing stdout and stderr.
///
/// If it is still running after `timeout`, it is killed (by its own pid)
/// and the error includes what it printed so far. A non-zero exit is not an
/// error here: the caller checks the status.
pub fn run_command(mut cmd: Command, timeout: Duration) -> Result<RunOutput> {
    let command = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot start `{command}`: {e}")))?;
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        match drain(stdout, Arc::clone(&out), "child-stdout") {
            Ok(h) => readers.push(h),
            Err(e) => {
                kill_and_wait(&mut child);
                return Err(e);
            }
        }
    }
    if let Some(stderr) = child.stderr.take() {
        match drain(stderr, Arc::clone(&err), "child-stderr") {
            Ok(h) => readers.push(h),
            Err(e) => {
                kill_and_wait(&mut child);
                return Err(e);
            }
        }
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let status = kill_and_wait(&mut child);
                thread::sleep(Duration::from_millis(50));
                return Err(Error::new(format!(
                    "`{command}` did not finish within {timeout:?} and was killed ({}); \
                     stdout:\n{}\nstderr:\n{}",
                    status.map_or_else(|| "exit status unknown".to_string(), |s| s.to_string()),
                    read_buffer(&out),
                    read_buffer(&err)
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_and_wait(&mut child);
                return Err(Error::new(format!("cannot wait for `{command}`: {e}")));
            }
        }
    };
    // The pipes close when the child exits (unless it left a grandchild
    // holding them); join the readers so nothing printed is lost.
    for r in readers {
        let _ = r.join();
    }
    Ok((status, read_buffer(&out), read_buffer(&err)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn run_command_captures_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let (status, out, err) = run_command(cmd, Duration::from_secs(20)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(out, "out\n");
        assert_eq!(err, "err\n");
    }

    #[test]
    fn run_command_kills_on_timeout() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let e = run_command(cmd, Duration::from_millis(300)).unwrap_err();
        assert!(e.message().contains("did not finish"), "{e}");
    }

    #[test]
    fn server_that_never_gets_ready_reports_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'cannot listen here' >&2; exit 1"]);
        let e = ServerProcess::from_command(cmd).unwrap_err();
        assert!(e.message().contains("cannot listen here"), "{e}");
    }

    #[test]
    fn server_ready_line_gives_the_address() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo noise >&2; echo 'listening on 127.0.0.1:4321' >&2; echo more >&2; exec sleep 30",
        ]);
        let mut server = ServerProcess::from_command(cmd).unwrap();
        assert_eq!(server.addr(), "127.0.0.1:4321".parse().unwrap());
        assert!(server.stderr_text().contains("noise"));
        assert!(server.wait_exit(Duration::from_millis(50)).is_err());
    }

    #[test]
    fn ready_timeout_kills_the_child() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo waiting >&2; exec sleep 30"]);
        let e = ServerProcess::from_command_with_deadline(&mut cmd, Duration::from_millis(300))
            .unwrap_err();
        assert!(e.message().contains("waiting"), "{e}");
    }
}

/// How long building sibling binaries may take on a busy machine.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1200);

/// The workspace binary `name`, looked for next to `anchor`, a
/// `CARGO_BIN_EXE_*` path of the calling package (Cargo names only a
/// package's own binaries to its tests), and built with `cargo build -p
/// PACKAGE...` into the same target directory and profile when it is
/// missing. In CI `cargo test --workspace` has built them all already and
/// this only finds them; run alone (`cargo test -p trama-tap`), a test gets
/// the current code. Builds are one at a time within a test process.
pub fn workspace_binary(anchor: &str, name: &str, packages: &[&str]) -> Result<PathBuf> {
    static BUILDING: Mutex<()> = Mutex::new(());
    let path = Path::new(anchor).with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        return Ok(path);
    }
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if path.is_file() {
        return Ok(path);
    }
    let out_dir = Path::new(anchor)
        .parent()
        .ok_or_else(|| Error::new(format!("{anchor}: not inside a build directory")))?;
    build_packages(out_dir, packages)?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::new(format!(
            "{} is missing, even after building {packages:?}",
            path.display()
        )))
    }
}

/// `cargo build -p PACKAGE...` into `out_dir`, a `<target dir>/<profile>`
/// directory (where a test's own binaries are): same target directory, same
/// profile.
pub fn build_packages(out_dir: &Path, packages: &[&str]) -> Result<()> {
    let missing = || Error::new(format!("{}: not <target dir>/<profile>", out_dir.display()));
    let target_dir = out_dir.parent().ok_or_else(missing)?;
    let profile = out_dir
        .file_name()
        .ok_or_else(missing)?
        .to_string_lossy()
        .into_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).arg("build");
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.arg("--target-dir").arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let (status, _, stderr) = run_command(cmd, BUILD_DEADLINE)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "building {packages:?} failed ({status}):\n{stderr}"
        )))
    }
}
