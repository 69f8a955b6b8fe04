//! `--spawn`: start the server under test, know when it listens, stop it and
//! everything it started.
//!
//! The command runs through `sh -c` in a process group of its own, so
//! `python3 servidor.py`, a shell script that starts two programs, or a
//! server that forks all end up in one group; stopping sends SIGTERM to the
//! group, waits a bounded time, then SIGKILL. A process that leaves the
//! group (`setsid`, a daemon's double fork) is out of its reach, so on Linux
//! the command also runs as the first process of a PID namespace of its own
//! (`unshare --pid --fork --kill-child`, with `--user --map-root-user` when
//! not root): when the group is stopped that first process dies, and the
//! kernel kills everything else in the namespace with it. Where no
//! namespace can be made (user namespaces disabled, no `unshare`, macOS,
//! Windows), trama-check says once that such processes may outlive the run. The server is ready when its
//! address accepts a connection (a fixed `--addr`, polled with a deadline),
//! or, without `--addr`, when it prints a line containing `listening on ADDR`
//! on stdout or stderr (how test servers on port 0 say which port they got).
//! Its output is drained all along (a full pipe would block it) and the last
//! few KiB are kept for error messages.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How much of the server's output is kept for error messages.
const TAIL_BYTES: usize = 4096;
/// The longest line scanned for `listening on ADDR`.
const MAX_LINE: usize = 1024;
/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(25);
/// How long one readiness connection attempt may take.
const CONNECT_PROBE: Duration = Duration::from_millis(250);

/// The groups of the servers running now, for the Ctrl-C handler: they run
/// in groups of their own, so the terminal's Ctrl-C does not reach them, and
/// a server left behind would hold its port (the next run would refuse it).
static RUNNING: Mutex<Vec<Killer>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<Killer>> {
    match RUNNING.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// On Ctrl-C or SIGTERM, kill the groups of the servers this tool started,
/// then exit with 130.
pub fn stop_servers_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        for k in running().iter() {
            k.kill();
        }
        std::process::exit(i32::from(trama_cli::exit::INTERRUPTED));
    });
    if let Err(e) = installed {
        eprintln!("trama-check: cannot install the Ctrl-C handler (servers may outlive an interrupt): {e}");
    }
}

/// Why the server could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The shell could not be started.
    #[error("cannot start `{command}`: {source}")]
    Start {
        /// The command line.
        command: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `--addr` did not resolve.
    #[error("cannot resolve the address {addr:?}: {reason}")]
    Resolve {
        /// As given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Something already accepts connections on the fixed address.
    #[error("{addr} already accepts connections before the server was started; stop whatever listens there first")]
    AddressBusy {
        /// The address.
        addr: SocketAddr,
    },
    /// The server exited before it listened.
    #[error("`{command}` exited ({status}) before it listened; its last output:\n{output}")]
    Exited {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of what it printed.
        output: String,
    },
    /// The server did not listen in time.
    #[error("`{command}` did not {what} within {} ms; its last output:\n{output}", .waited.as_millis())]
    NotReady {
        /// The command line.
        command: String,
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
        /// The end of what it printed.
        output: String,
    },
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The shell command.
    pub command: String,
    /// Its working directory (the current one if `None`).
    pub cwd: Option<PathBuf>,
    /// Where it will listen; `None` to wait for a `listening on ADDR` line.
    pub addr: Option<String>,
    /// How long it may take to listen.
    pub start_timeout: Duration,
}

/// The end of a stream, kept within [`TAIL_BYTES`].
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > TAIL_BYTES {
            let cut = self.bytes.len() - TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }
}

fn lock(tail: &Mutex<Tail>) -> std::sync::MutexGuard<'_, Tail> {
    match tail.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// How much of a program's stdout is kept for the checks that read it.
pub const CAPTURE_BYTES: usize = 1 << 20;

/// The start of a program's stdout, kept within [`CAPTURE_BYTES`].
#[derive(Debug, Default)]
struct Capture {
    bytes: Vec<u8>,
}

impl Capture {
    fn push(&mut self, chunk: &[u8]) {
        let room = CAPTURE_BYTES.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

fn lock_capture(c: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    match c.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The address in a line like `listening on 127.0.0.1:4321`, if any.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find("listening on ")?;
    let token = line[at + "listening on ".len()..]
        .split_whitespace()
        .next()?;
    token.trim_end_matches(['.', ',', ';', ')']).parse().ok()
}

/// Scans a byte stream line by line for `listening on ADDR`, in bounded memory.
#[derive(Debug, Default)]
struct LineScanner {
    line: Vec<u8>,
    overlong: bool,
}

impl LineScanner {
    /// Feed bytes; returns the first address announced in a completed line.
    fn feed(&mut self, bytes: &[u8]) -> Option<SocketAddr> {
        let mut found = None;
        for &b in bytes {
            if b == b'\n' {
                if !self.overlong && found.is_none() {
                    found = listening_addr(&String::from_utf8_lossy(&self.line));
                }
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.overlong = true;
            }
        }
        found
    }
}

/// Drain `source` into `tail` on a thread of its own, reporting the first
/// `listening on ADDR` line on `ready`.
fn drain(
    mut source: impl Read + Send + 'static,
    tail: Arc<Mutex<Tail>>,
    ready: mpsc::Sender<SocketAddr>,
    capture: Option<Arc<Mutex<Capture>>>,
) {
    let spawned = thread::Builder::new()
        .name("server-output".to_string())
        .spawn(move || {
            let mut scanner = LineScanner::default();
            let mut ready = Some(ready);
            let mut chunk = [0u8; 4096];
            loop {
                match source.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        lock(&tail).push(&chunk[..n]);
                        if let Some(c) = &capture {
                            lock_capture(c).push(&chunk[..n]);
                        }
                        if let Some(addr) = scanner.feed(&chunk[..n]) {
                            if let Some(tx) = ready.take() {
                                // The waiter may have given up; nothing to do then.
                                let _ = tx.send(addr);
                            }
                        }
                    }
                }
            }
        });
    // Without the thread the pipe is not drained; the server may then block
    // on a full pipe, which the probes report as unanswered messages.
    if let Err(e) = spawned {
        eprintln!("trama-check: cannot start a thread to read the server's output: {e}");
    }
}

/// Resolve `addr` to its first socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, SpawnError> {
    match addr.to_socket_addrs() {
        Ok(mut it) => it.next().ok_or_else(|| SpawnError::Resolve {
            addr: addr.to_string(),
            reason: "no address".to_string(),
        }),
        Err(e) => Err(SpawnError::Resolve {
            addr: addr.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Whether `addr` accepts a TCP connection right now (a connection to itself,
/// which loopback allows when nobody listens, does not count).
pub fn accepts(addr: SocketAddr, timeout: Duration) -> bool {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s.local_addr().ok() != Some(addr),
        Err(_) => false,
    }
}

/// The command prefix that runs a server in a PID namespace of its own,
/// if this machine can make one (tried once; see the module docs). Says
/// once on stderr when it cannot.
fn contained() -> Option<&'static [&'static str]> {
    static PREFIX: std::sync::OnceLock<Result<&'static [&'static str], String>> =
        std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let found = pid_namespace();
        if let Err(why) = &found {
            eprintln!(
                "trama-check: processes that leave the server's process group (setsid, \
                 daemons) may outlive this run: {why}"
            );
        }
        found
    });
    prefix.as_ref().ok().copied()
}

/// `unshare` with a new PID namespace, as root or in a user namespace of
/// our own, if either starts `true` here.
#[cfg(target_os = "linux")]
fn pid_namespace() -> Result<&'static [&'static str], String> {
    const AS_ROOT: &[&str] = &["unshare", "--pid", "--fork", "--kill-child"];
    const AS_USER: &[&str] = &[
        "unshare",
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--kill-child",
    ];
    let mut why = String::new();
    for prefix in [AS_ROOT, AS_USER] {
        let tried = Command::new(prefix[0])
            .args(&prefix[1..])
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match tried {
            Ok(out) if out.status.success() => return Ok(prefix),
            Ok(out) => why = String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => why = format!("cannot run unshare: {e}"),
        }
    }
    Err(format!("no PID namespace can be made here ({why})"))
}

#[cfg(not(target_os = "linux"))]
fn pid_namespace() -> Result<&'static [&'static str], String> {
    Err("PID namespaces exist on Linux only".into())
}

/// A server this tool started; stopped (with its whole group) when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    command: String,
    addr: SocketAddr,
    output: Arc<Mutex<Tail>>,
    status: Option<ExitStatus>,
    stopped: bool,
    /// Set when a [`Killer`] fired (the batch time limit).
    killed: Arc<AtomicBool>,
    /// Its stdin, for a program started by [`Server::start_program`].
    stdin: Option<std::process::ChildStdin>,
    /// What it printed on stdout, for a program started so.
    capture: Option<Arc<Mutex<Capture>>>,
}

impl Server {
    /// Start the server and wait until it listens.
    pub fn start(launch: &Launch) -> Result<Server, SpawnError> {
        Server::start_with(launch, false, true)
    }

    /// Start a program that is not (only) a server (`--program`): its stdin
    /// is a pipe ([`Server::type_line`]) and what it prints on stdout is kept
    /// ([`Server::stdout`]). With `listens`, wait as [`Server::start`] does;
    /// without, return as soon as it started ([`Server::addr`] is then
    /// 127.0.0.1:0).
    pub fn start_program(launch: &Launch, listens: bool) -> Result<Server, SpawnError> {
        Server::start_with(launch, true, listens)
    }

    fn start_with(launch: &Launch, program: bool, listens: bool) -> Result<Server, SpawnError> {
        let fixed = match launch.addr.as_ref().filter(|_| listens) {
            Some(a) => {
                let addr = resolve(a)?;
                if accepts(addr, CONNECT_PROBE) {
                    return Err(SpawnError::AddressBusy { addr });
                }
                Some(addr)
            }
            None => None,
        };
        let mut cmd = match contained() {
            Some(prefix) => {
                let mut cmd = Command::new(prefix[0]);
                cmd.args(&prefix[1..]).arg("sh");
                cmd
            }
            None => Command::new("sh"),
        };
        cmd.arg("-c")
            .arg(&launch.command)
            .stdin(if program {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &launch.cwd {
            cmd.current_dir(dir);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|source| SpawnError::Start {
            command: launch.command.clone(),
            source,
        })?;
        let output = Arc::new(Mutex::new(Tail::default()));
        let capture = program.then(|| Arc::new(Mutex::new(Capture::default())));
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, Arc::clone(&output), tx.clone(), capture.clone());
        }
        if let Some(err) = child.stderr.take() {
            drain(err, Arc::clone(&output), tx, None);
        }
        let mut server = Server {
            child,
            command: launch.command.clone(),
            // Replaced below once known.
            addr: fixed.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            output,
            status: None,
            stopped: false,
            killed: Arc::new(AtomicBool::new(false)),
            stdin,
            capture,
        };
        running().push(server.killer());
        if !listens {
            return Ok(server);
        }
        let deadline = Instant::now() + launch.start_timeout;
        loop {
            if let Some(addr) = fixed {
                if accepts(addr, CONNECT_PROBE) {
                    return Ok(server);
                }
            } else {
                match rx.recv_timeout(POLL) {
                    Ok(addr) => {
                        server.addr = addr;
                        return Ok(server);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // Both streams closed without the line: the exit check below reports it.
                    Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(POLL),
                }
            }
            if let Some(status) = server.exited() {
                // Let the readers collect the last words.
                thread::sleep(Duration::from_millis(50));
                return Err(SpawnError::Exited {
                    command: server.command.clone(),
                    status,
                    output: server.last_output(),
                });
            }
            if Instant::now() >= deadline {
                let what = match fixed {
                    Some(a) => format!("accept connections on {a}"),
                    None => "print `listening on ADDR`".to_string(),
                };
                return Err(SpawnError::NotReady {
                    command: server.command.clone(),
                    what,
                    waited: launch.start_timeout,
                    output: server.last_output(),
                });
            }
            if fixed.is_some() {
                thread::sleep(POLL);
            }
        }
    }

    /// Type `line` and a newline on the program's stdin (a program started
    /// by [`Server::start_program`]).
    pub fn type_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the program's stdin is closed",
            ));
        };
        stdin.write_all(format!("{line}\n").as_bytes())?;
        stdin.flush()
    }

    /// Everything the program printed on stdout so far (up to
    /// [`CAPTURE_BYTES`]; a program started by [`Server::start_program`]).
    pub fn stdout(&self) -> Vec<u8> {
        match &self.capture {
            Some(c) => lock_capture(c).bytes.clone(),
            None => Vec::new(),
        }
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process group of the server and everything it started.
    pub fn pgid(&self) -> i64 {
        i64::from(self.child.id())
    }

    /// How the server ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status
    }

    /// How the server ended, waiting up to `wait` for it to end.
    pub fn exited_within(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// The last few KiB the server printed (stdout and stderr interleaved).
    pub fn last_output(&self) -> String {
        let tail = lock(&self.output);
        String::from_utf8_lossy(&tail.bytes).into_owned()
    }

    /// Something that can kill the whole group from another thread (the
    /// batch time limit). Use it only while this `Server` is alive.
    pub fn killer(&self) -> Killer {
        Killer {
            pgid: self.pgid(),
            fired: Arc::clone(&self.killed),
        }
    }

    /// Whether a [`Killer`] killed the group (so an exit is not the server's doing).
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Stop the group: SIGTERM, up to `grace` for it to go, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.stop_group(grace);
        // Reaped: the group id may be reused from now on.
        let pgid = self.pgid();
        running().retain(|k| k.pgid != pgid);
    }

    fn stop_group(&mut self, grace: Duration) {
        #[cfg(unix)]
        {
            let group = self.killer();
            group.signal(Some(nix::sys::signal::Signal::SIGTERM));
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                let leader_gone = self.exited().is_some();
                if leader_gone && !group.signal(None) {
                    return;
                }
                thread::sleep(POLL);
            }
            group.signal(Some(nix::sys::signal::Signal::SIGKILL));
        }
        #[cfg(not(unix))]
        {
            let _ = grace;
            // Fails only if it already exited.
            let _ = self.child.kill();
        }
        // SIGKILL cannot be ignored: the wait is short.
        if self.status.is_none() {
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// Kills a server's process group (see [`Server::killer`]).
#[derive(Debug, Clone)]
pub struct Killer {
    pgid: i64,
    fired: Arc<AtomicBool>,
}

impl Killer {
    /// Send `signal` to the group (`None` only asks whether anyone is left);
    /// true if the group exists.
    #[cfg(unix)]
    fn signal(&self, signal: Option<nix::sys::signal::Signal>) -> bool {
        let Ok(pgid) = i32::try_from(self.pgid) else {
            return false;
        };
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal).is_ok()
    }

    /// SIGKILL the whole group.
    pub fn kill(&self) {
        self.fired.store(true, Ordering::SeqCst);
        #[cfg(unix)]
        self.signal(Some(nix::sys::signal::Signal::SIGKILL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        let a: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(listening_addr("listening on 127.0.0.1:4321"), Some(a));
        assert_eq!(
            listening_addr("[INFO] server listening on 127.0.0.1:4321."),
            Some(a)
        );
        assert_eq!(
            listening_addr("listening on [::1]:80 (ipv6)"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            listening_addr("Servidor escuchando en localhost:8080..."),
            None
        );
        assert_eq!(listening_addr("listening on soon"), None);
    }

    #[test]
    fn scanner_handles_split_and_overlong_lines() {
        let mut s = LineScanner::default();
        assert_eq!(s.feed(b"noise\nlisten"), None);
        assert_eq!(
            s.feed(b"ing on 127.0.0.1:9\nmore"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        let mut long = vec![b'x'; MAX_LINE * 2];
        long.extend_from_slice(b" listening on 127.0.0.1:9\n");
        assert_eq!(s.feed(&long), None, "an overlong line is ignored");
        assert_eq!(
            s.feed(b"listening on 127.0.0.1:10\n"),
            Some("127.0.0.1:10".parse().unwrap())
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; TAIL_BYTES]);
        t.push(b"end");
        assert_eq!(t.bytes.len(), TAIL_BYTES);
        assert!(t.bytes.ends_with(b"aend"));
    }

    #[cfg(unix)]
    #[test]
    fn start_reads_the_line_and_stop_ends_the_group() {
        let launch = Launch {
            command: "sleep 30 & echo 'listening on 127.0.0.1:4321' >&2; wait".to_string(),
            cwd: None,
            addr: None,
            start_timeout: Duration::from_secs(10),
        };
        let mut s = Server::start(&launch).unwrap();
        assert_eq!(s.addr(), "127.0.0.1:4321".parse().unwrap());
        let group = s.killer();
        assert!(group.signal(None));
        s.stop(Duration::from_secs(5));
        assert!(s.exited().is_some());
        assert!(!group.signal(None), "the background sleep was stopped too");
    }

    #[cfg(unix)]
    #[test]
    fn start_reports_an_early_exit_with_its_output() {
        let launch = Launch {
            command: "echo 'Address already in use' >&2; exit 3".to_string(),
            cwd: None,
            addr: None,
            start_timeout: Duration::from_secs(10),
        };
        let e = Server::start(&launch).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SpawnError::Exited { .. }), "{text}");
        assert!(text.contains("Address already in use"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn start_gives_up_after_the_timeout() {
        let launch = Launch {
            command: "echo starting; exec sleep 30".to_string(),
            cwd: None,
            addr: None,
            start_timeout: Duration::from_millis(300),
        };
        let e = Server::start(&launch).unwrap_err();
        assert!(matches!(e, SpawnError::NotReady { .. }), "{e}");
        assert!(e.to_string().contains("starting"), "{e}");
    }

    #[test]
    fn a_busy_fixed_address_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let launch = Launch {
            command: "exit 0".to_string(),
            cwd: None,
            addr: Some(l.local_addr().unwrap().to_string()),
            start_timeout: Duration::from_secs(1),
        };
        let e = Server::start(&launch).unwrap_err();
        assert!(matches!(e, SpawnError::AddressBusy { .. }), "{e}");
    }
}
