//! `--program KIND`: the notes' programs that are not (only) servers.
//!
//! `echo-server` and `reply-server` are the server battery of `plan.rs`.
//! Every other kind has a short module of its own with its checks:
//! `file_receiver` (trama-check sends a file), `file_sender` (trama-check
//! receives one), `client` (trama-check is the chat or echo server) and
//! `peer` (trama-check is the other P2P peer). Their verdicts are
//! `Outcome`s of `Check::Program`, so the report, JSON and CSV have the
//! same shape as the server battery's.
//!
//! Every check of these kinds starts the program afresh (`--spawn`): the
//! notes' receiver serves one connection and exits, a client connects once,
//! and a peer dials once. In the command, `{addr}`, `{host}` and `{port}`
//! become where trama-check listens, and `{role}` the peer's role (1 or 2).
//! The wire format is the notes': a 4-byte big-endian length before each
//! message (or none, with `--raw`).

pub(crate) mod client;
pub(crate) mod file_receiver;
pub(crate) mod file_sender;
pub(crate) mod peer;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::plan::{Check, Dialect, Outcome, Status};
use crate::probes::Options;
use crate::report::Report;
use crate::sample::{Owner, Sampler};
use crate::spawn::{self, Launch, Server};

/// How often a program's output, files and exit are polled.
pub(crate) const POLL: Duration = Duration::from_millis(25);
/// How long a stopped program may take to go.
const GRACE: Duration = Duration::from_secs(2);

/// The kinds of program `--program` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// A server that echoes each message (the server battery).
    EchoServer,
    /// A server that answers each message (the server battery).
    ReplyServer,
    /// The notes' improved file receiver: trama-check sends it files.
    FileReceiver,
    /// The notes' improved file sender: trama-check receives its file.
    FileSender,
    /// The notes' chat `Client`: trama-check is its server.
    ChatClient,
    /// The notes' JSON and pickle clients: trama-check is the echo server.
    EchoClient,
    /// The notes' P2P peer: trama-check is the other peer.
    Peer,
}

impl Program {
    /// Every kind, in `--list`'s order.
    pub const ALL: [Program; 7] = [
        Program::EchoServer,
        Program::ReplyServer,
        Program::FileReceiver,
        Program::FileSender,
        Program::ChatClient,
        Program::EchoClient,
        Program::Peer,
    ];

    /// The name `--program` takes.
    pub fn name(self) -> &'static str {
        match self {
            Program::EchoServer => "echo-server",
            Program::ReplyServer => "reply-server",
            Program::FileReceiver => "file-receiver",
            Program::FileSender => "file-sender",
            Program::ChatClient => "chat-client",
            Program::EchoClient => "echo-client",
            Program::Peer => "peer",
        }
    }

    /// Whether its checks are the server battery's.
    pub fn is_server(self) -> bool {
        matches!(self, Program::EchoServer | Program::ReplyServer)
    }

    /// The checks of a kind that is not a server, in the order they run.
    pub fn checks(self) -> &'static [ProgramCheck] {
        use ProgramCheck as C;
        match self {
            Program::EchoServer | Program::ReplyServer => &[],
            Program::FileReceiver => &[
                C::SmallFile,
                C::FileByteAtATime,
                C::EmptyFile,
                C::LargeFile,
                C::ShortFile,
                C::HugeFileHeader,
            ],
            Program::FileSender => &[
                C::Sent0Bytes,
                C::Sent1Byte,
                C::Sent4096Bytes,
                C::Sent4097Bytes,
                C::Sent3Mib,
            ],
            Program::ChatClient | Program::EchoClient => &[
                C::LineSent,
                C::MessageShown,
                C::ShownByteAtATime,
                C::TwoInOneSegment,
                C::LongMessage,
                C::ServerCloses,
            ],
            Program::Peer => &[
                C::FirstPeerSends,
                C::FirstPeerReceives,
                C::SecondPeerSends,
                C::SecondPeerReceives,
            ],
        }
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One check of a kind that is not a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgramCheck {
    /// file-receiver: a 20 000-byte file is saved intact.
    SmallFile,
    /// file-receiver: header and body one byte per segment.
    FileByteAtATime,
    /// file-receiver: a 0-byte file.
    EmptyFile,
    /// file-receiver: 64 MiB saved with memory bounded.
    LargeFile,
    /// file-receiver: a header promising more than is sent.
    ShortFile,
    /// file-receiver: a 0xFFFFFFFF header.
    HugeFileHeader,
    /// file-sender: a 0-byte file.
    Sent0Bytes,
    /// file-sender: a 1-byte file.
    Sent1Byte,
    /// file-sender: one 4096-byte chunk.
    Sent4096Bytes,
    /// file-sender: one byte past a chunk.
    Sent4097Bytes,
    /// file-sender: 3 MiB.
    Sent3Mib,
    /// Clients: a typed line arrives as one message.
    LineSent,
    /// Clients: the server's message is shown.
    MessageShown,
    /// Clients: the server's message one byte per segment.
    ShownByteAtATime,
    /// Clients: two messages in one segment.
    TwoInOneSegment,
    /// Clients: a 100 KiB message, in pieces.
    LongMessage,
    /// Clients: the server closes.
    ServerCloses,
    /// Peer, role 1 started first: a typed line reaches trama-check.
    FirstPeerSends,
    /// Peer, role 1 started first: trama-check's line is shown.
    FirstPeerReceives,
    /// Peer, role 2 started second: a typed line reaches trama-check.
    SecondPeerSends,
    /// Peer, role 2 started second: trama-check's line is shown.
    SecondPeerReceives,
}

impl ProgramCheck {
    /// Every check of every kind.
    pub const ALL: [ProgramCheck; 21] = [
        ProgramCheck::SmallFile,
        ProgramCheck::FileByteAtATime,
        ProgramCheck::EmptyFile,
        ProgramCheck::LargeFile,
        ProgramCheck::ShortFile,
        ProgramCheck::HugeFileHeader,
        ProgramCheck::Sent0Bytes,
        ProgramCheck::Sent1Byte,
        ProgramCheck::Sent4096Bytes,
        ProgramCheck::Sent4097Bytes,
        ProgramCheck::Sent3Mib,
        ProgramCheck::LineSent,
        ProgramCheck::MessageShown,
        ProgramCheck::ShownByteAtATime,
        ProgramCheck::TwoInOneSegment,
        ProgramCheck::LongMessage,
        ProgramCheck::ServerCloses,
        ProgramCheck::FirstPeerSends,
        ProgramCheck::FirstPeerReceives,
        ProgramCheck::SecondPeerSends,
        ProgramCheck::SecondPeerReceives,
    ];

    /// The stable kebab-case name used in output, CSV columns and JSON.
    pub fn name(self) -> &'static str {
        use ProgramCheck as C;
        match self {
            C::SmallFile => "small-file",
            C::FileByteAtATime => "file-byte-at-a-time",
            C::EmptyFile => "empty-file",
            C::LargeFile => "large-file",
            C::ShortFile => "short-file",
            C::HugeFileHeader => "huge-file-header",
            C::Sent0Bytes => "sent-0-bytes",
            C::Sent1Byte => "sent-1-byte",
            C::Sent4096Bytes => "sent-4096-bytes",
            C::Sent4097Bytes => "sent-4097-bytes",
            C::Sent3Mib => "sent-3-mib",
            C::LineSent => "line-sent",
            C::MessageShown => "message-shown",
            C::ShownByteAtATime => "shown-byte-at-a-time",
            C::TwoInOneSegment => "two-in-one-segment",
            C::LongMessage => "long-message",
            C::ServerCloses => "server-closes",
            C::FirstPeerSends => "first-peer-sends",
            C::FirstPeerReceives => "first-peer-receives",
            C::SecondPeerSends => "second-peer-sends",
            C::SecondPeerReceives => "second-peer-receives",
        }
    }

    /// The check of `program` called `name`, if any.
    pub fn from_name(program: Program, name: &str) -> Option<ProgramCheck> {
        program.checks().iter().copied().find(|c| c.name() == name)
    }

    /// What the check catches, in one line (shown by `--list`).
    pub fn purpose(self) -> &'static str {
        use ProgramCheck as C;
        match self {
            C::SmallFile => "a file cut to what one recv() returned (the notes' first receiver), or not saved",
            C::FileByteAtATime => "a single recv(4) taken as the whole header, or one recv() as a chunk's worth",
            C::EmptyFile => "a 0-byte file taken as a closed connection, or waited for forever",
            C::LargeFile => "a file held whole in memory before it is written",
            C::ShortFile => "a receive loop that spins on b'' when the sender leaves early",
            C::HugeFileHeader => "memory committed on the word of a 0xFFFFFFFF header",
            C::Sent0Bytes => "no header sent for an empty file",
            C::Sent1Byte => "a header whose width or byte order is not the notes'",
            C::Sent4096Bytes => "a file cut at one read or one send of 4096 bytes",
            C::Sent4097Bytes => "the byte after a full chunk lost (an off-by-one in the send loop)",
            C::Sent3Mib => "send() taken as sending everything, or a header that disagrees with the body",
            C::LineSent => "a typed line not sent, sent without its header, or split over messages",
            C::MessageShown => "the server's message not printed, or printed only after more input",
            C::ShownByteAtATime => "a single recv(4) taken as the whole header",
            C::TwoInOneSegment => "one recv() taken as one message, losing the one that came with it",
            C::LongMessage => "a message printed as what one recv() returned, cut short",
            C::ServerCloses => "a receive loop that spins on b'' (or a client that never ends) once the server leaves",
            C::FirstPeerSends | C::SecondPeerSends => "a typed line that never reaches the other peer",
            C::FirstPeerReceives | C::SecondPeerReceives => "the other peer's message never shown",
        }
    }

    /// The section of the course notes whose pitfall the check catches.
    pub fn notes_section(self) -> &'static str {
        use ProgramCheck as C;
        match self {
            C::SmallFile
            | C::FileByteAtATime
            | C::EmptyFile
            | C::LargeFile
            | C::ShortFile
            | C::HugeFileHeader
            | C::Sent0Bytes
            | C::Sent1Byte
            | C::Sent4096Bytes
            | C::Sent4097Bytes
            | C::Sent3Mib => "Envío de muchos datos",
            C::LongMessage => "Envío de datos con JSON",
            C::LineSent
            | C::MessageShown
            | C::ShownByteAtATime
            | C::TwoInOneSegment
            | C::ServerCloses => "Servidor con manejo de múltiples clientes en forma concurrente",
            C::FirstPeerSends
            | C::FirstPeerReceives
            | C::SecondPeerSends
            | C::SecondPeerReceives => "Interacción entre clientes Peer 2 Peer (P2P)",
        }
    }

    /// The checks that must have passed for this one to mean anything (a
    /// client that does not send what is typed, or a receiver that saves
    /// nothing where `--saved` says, fails once, not six times).
    pub fn after(self) -> &'static [ProgramCheck] {
        use ProgramCheck as C;
        match self {
            C::FileByteAtATime | C::EmptyFile | C::LargeFile => &[C::SmallFile],
            C::MessageShown
            | C::ShownByteAtATime
            | C::TwoInOneSegment
            | C::LongMessage
            | C::ServerCloses => &[C::LineSent],
            _ => &[],
        }
    }

    /// What the check needs beyond a started program, shown by `--list`.
    pub fn needs(self) -> &'static str {
        use ProgramCheck as C;
        match self {
            C::LargeFile | C::ShortFile | C::HugeFileHeader => " [--spawn]",
            C::ShownByteAtATime | C::TwoInOneSegment => " [framed]",
            _ => "",
        }
    }
}

impl fmt::Display for ProgramCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the checks of a program kind are given.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The run's knobs (timeouts, CPU and memory limits, dialect).
    pub opts: &'a Options,
    /// The command that starts the program (`--spawn`).
    pub spawn: Option<String>,
    /// file-receiver: where it listens; the others: where trama-check listens.
    pub addr: Option<String>,
    /// peer: where the program listens (else its `listening on ADDR` line).
    pub peer: Option<String>,
    /// file-receiver: the file the program writes (`--saved`).
    pub saved: Option<PathBuf>,
    /// file-sender: the file the program reads (`--sent`).
    pub sent: Option<PathBuf>,
    /// How long the program may take to start listening or connect.
    pub start_timeout: Duration,
    /// Where the program runs (a batch: the submission's folder); `None`:
    /// here. `--saved` and `--sent` are relative to it.
    pub cwd: Option<PathBuf>,
}

/// Why a check stopped, as shown in its reason.
pub(crate) type Step<T> = Result<T, String>;

/// A check's verdict: pass, fail or skip with a reason.
pub(crate) struct Found {
    status: Status,
    reason: String,
}

impl Found {
    pub(crate) fn pass(reason: impl Into<String>) -> Found {
        Found {
            status: Status::Pass,
            reason: reason.into(),
        }
    }

    pub(crate) fn skip(reason: impl Into<String>) -> Found {
        Found {
            status: Status::Skip,
            reason: reason.into(),
        }
    }
}

/// Runs `checks` (those of `program`, in its order) and reports them as the
/// server battery does. `target` names what was checked.
pub fn run(program: Program, ctx: &Context<'_>, checks: &[ProgramCheck]) -> Report {
    let mut outcomes = Vec::new();
    for &check in program.checks() {
        if !checks.contains(&check) {
            continue;
        }
        let needs_frames = matches!(
            check,
            ProgramCheck::ShownByteAtATime | ProgramCheck::TwoInOneSegment
        );
        let unmet = if needs_frames && ctx.opts.dialect != Dialect::Framed {
            Some("needs message boundaries (framed dialect)".to_string())
        } else {
            None
        };
        let unmet = unmet.or_else(|| {
            check.after().iter().find_map(|pre| {
                outcomes
                    .iter()
                    .find(|o: &&Outcome| {
                        o.check == Check::Program(*pre) && o.status != Status::Pass
                    })
                    .map(|o| format!("needs {pre}, which did not pass ({})", o.status.as_str()))
            })
        });
        if let Some(why) = unmet {
            outcomes.push(Outcome {
                check: Check::Program(check),
                status: Status::Skip,
                reason: why,
            });
            continue;
        }
        let found = match program {
            Program::FileReceiver => file_receiver::run(check, ctx),
            Program::FileSender => file_sender::run(check, ctx),
            Program::ChatClient | Program::EchoClient => client::run(program, check, ctx),
            Program::Peer => peer::run(check, ctx),
            Program::EchoServer | Program::ReplyServer => Ok(Found::skip("a server check")),
        };
        let (status, reason) = match found {
            Ok(f) => (f.status, f.reason),
            Err(reason) => (Status::Fail, reason),
        };
        outcomes.push(Outcome {
            check: Check::Program(check),
            status,
            reason,
        });
    }
    let target = match &ctx.spawn {
        Some(cmd) => format!("{program} {cmd}"),
        None => format!("{program} {}", ctx.addr.as_deref().unwrap_or("")),
    };
    Report::new(target, outcomes)
}

/// `command` with `{addr}`, `{host}`, `{port}` (where trama-check listens)
/// and `{role}` filled in.
pub fn substitute(command: &str, listener: Option<SocketAddr>, role: Option<u8>) -> String {
    let mut s = command.to_string();
    if let Some(a) = listener {
        s = s
            .replace("{addr}", &a.to_string())
            .replace("{host}", &a.ip().to_string())
            .replace("{port}", &a.port().to_string());
    }
    if let Some(r) = role {
        s = s.replace("{role}", &r.to_string());
    }
    s
}

/// Start the program (`listens`: wait for it to listen, on `addr` or by
/// its `listening on ADDR` line).
pub(crate) fn start(
    ctx: &Context<'_>,
    command: String,
    addr: Option<String>,
    listens: bool,
) -> Step<Server> {
    let launch = Launch {
        command,
        cwd: ctx.cwd.clone(),
        addr,
        start_timeout: ctx.start_timeout,
    };
    Server::start_program(&launch, listens).map_err(|e| e.to_string())
}

/// A listener for the program to connect to (`--addr`, or a free port) and
/// the address it listens on, for the program's command.
pub(crate) fn listener(ctx: &Context<'_>) -> Step<(TcpListener, SocketAddr)> {
    let want = ctx.addr.as_deref().unwrap_or("127.0.0.1:0");
    let addr = spawn::resolve(want).map_err(|e| e.to_string())?;
    let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {want}: {e}"))?;
    let at = l
        .local_addr()
        .map_err(|e| format!("cannot read the listener's address: {e}"))?;
    Ok((l, at))
}

/// The program's connection to `listener`, within `wait`; fails early if
/// the program exits first.
pub(crate) fn accept(
    listener: &TcpListener,
    program: &mut Server,
    wait: Duration,
) -> Step<TcpStream> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot poll the listener: {e}"))?;
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)
                    .map_err(|e| format!("cannot use the program's connection: {e}"))?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("cannot accept the program's connection: {e}")),
        }
        if let Some(status) = program.exited() {
            return Err(format!(
                "the program exited ({status}) without connecting{}",
                last_words(program)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the program did not connect within {} ms",
                wait.as_millis()
            ));
        }
        thread::sleep(POLL);
    }
}

/// `; its last line: ...` from what the program printed, if anything.
pub(crate) fn last_words(program: &Server) -> String {
    let out = program.last_output();
    match out.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => format!(
            "; its last line: {}",
            l.trim().chars().take(200).collect::<String>()
        ),
        None => String::new(),
    }
}

/// The notes' header: 4 bytes, big-endian.
pub(crate) fn header(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// `payload` as it goes on the wire in `dialect`.
pub(crate) fn frame(dialect: Dialect, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 4);
    if dialect == Dialect::Framed {
        v.extend_from_slice(&header(payload.len()));
    }
    v.extend_from_slice(payload);
    v
}

/// `len` bytes of a pattern that does not repeat every 4096 bytes (so a
/// chunk lost or repeated shows), from `seed`.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut p = Pattern::new(seed);
    let mut v = vec![0u8; len];
    p.fill(&mut v);
    v
}

/// The pattern as a stream (for files too large to hold).
pub(crate) struct Pattern(u64);

impl Pattern {
    pub(crate) fn new(seed: u64) -> Pattern {
        Pattern(seed | 1)
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            // xorshift64
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// Read until `n` bytes or `deadline`: what came, and whether the peer closed.
pub(crate) fn read_upto(s: &mut TcpStream, n: usize, deadline: Instant) -> (Vec<u8>, bool) {
    let mut got = Vec::with_capacity(n.min(1 << 20));
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return (got, false);
        }
        let want = (n - got.len()).min(buf.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => return (got, true),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// Write `bytes` one byte per segment, `gap` apart.
pub(crate) fn write_bytewise(s: &mut TcpStream, bytes: &[u8], gap: Duration) -> io::Result<()> {
    // Each byte its own segment.
    let _ = s.set_nodelay(true);
    for b in bytes {
        s.write_all(&[*b])?;
        s.flush()?;
        thread::sleep(gap);
    }
    Ok(())
}

/// Wait until the program printed `needle` on stdout, or `deadline`.
pub(crate) fn shown(program: &Server, needle: &[u8], deadline: Instant) -> bool {
    loop {
        if contains(&program.stdout(), needle) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Whether `hay` contains `needle`.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The last bytes of what the program printed, quoted, for a reason.
pub(crate) fn printed(program: &Server) -> String {
    let out = program.stdout();
    let from = out.len().saturating_sub(120);
    format!("{:?}", String::from_utf8_lossy(&out[from..]))
}

/// CPU the program's processes used over `window`, in percent of one core.
pub(crate) fn cpu_percent(program: &Server, window: Duration) -> Step<f64> {
    let owner = Owner::server(program.pgid());
    let mut sampler = Sampler::new();
    let before = sampler
        .sample(owner)
        .map_err(|e| format!("cannot read the program's processes: {e}"))?;
    let t0 = Instant::now();
    thread::sleep(window);
    let after = sampler
        .sample(owner)
        .map_err(|e| format!("cannot read the program's processes: {e}"))?;
    let ms = after.cpu_ms_since(&before) as f64;
    Ok(ms * 100.0 / (t0.elapsed().as_secs_f64() * 1000.0).max(1.0))
}

/// The program's memory now: peak resident size where the system gives
/// it (Linux), else the resident size.
pub(crate) fn memory(program: &Server, sampler: &mut Sampler) -> Step<u64> {
    let s = sampler
        .sample(Owner::server(program.pgid()))
        .map_err(|e| format!("cannot read the program's processes: {e}"))?;
    Ok(s.peak_rss.unwrap_or(s.rss))
}

/// Stop the program and everything it started.
pub(crate) fn stop(mut program: Server) {
    program.stop(GRACE);
}

/// After the other side left: the program must end, or at least sit idle.
/// `Ok(reason)` if it ended or idles under the limit (when `idle_ok`), an
/// `Err` with the numbers if it spins or (without `idle_ok`) keeps running.
pub(crate) fn ends_or_idles(
    program: &mut Server,
    ctx: &Context<'_>,
    idle_ok: bool,
) -> Step<String> {
    if let Some(status) = program.exited_within(ctx.opts.timeout) {
        return Ok(format!("it ended ({status})"));
    }
    let cpu = cpu_percent(program, ctx.opts.idle_window)?;
    let window = ctx.opts.idle_window.as_millis();
    if cpu > ctx.opts.idle_cpu_limit {
        return Err(format!(
            "it spins: {cpu:.0}% CPU over {window} ms (limit {:.0}%), still running {} ms after",
            ctx.opts.idle_cpu_limit,
            ctx.opts.timeout.as_millis()
        ));
    }
    if idle_ok {
        Ok(format!(
            "it kept running, idle ({cpu:.1}% CPU over {window} ms)"
        ))
    } else {
        Err(format!(
            "it did not end within {} ms ({cpu:.1}% CPU over {window} ms)",
            ctx.opts.timeout.as_millis()
        ))
    }
}

/// `n` bytes as KiB or MiB for reasons.
pub(crate) fn size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// Where the first difference between `want` and `got` is, if any.
pub(crate) fn differ(want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let at = want.iter().zip(got).position(|(a, b)| a != b);
    Some(match at {
        Some(i) => format!(
            "{} bytes where {} were sent, the first difference at byte {i}",
            got.len(),
            want.len()
        ),
        None => format!("{} bytes where {} were sent", got.len(), want.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_the_listener_and_role() {
        let at: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            substitute(
                "p {addr} {host} {port} cliente_{role}.py",
                Some(at),
                Some(2)
            ),
            "p 127.0.0.1:4321 127.0.0.1 4321 cliente_2.py"
        );
        assert_eq!(substitute("p {addr}", None, None), "p {addr}");
    }

    #[test]
    fn the_pattern_is_a_stream_and_does_not_repeat_every_chunk() {
        let whole = pattern(7, 10_000);
        let mut p = Pattern::new(7);
        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 10_000 - 4096]);
        p.fill(&mut a);
        p.fill(&mut b);
        assert_eq!([a, b].concat(), whole);
        assert_ne!(whole[..4096], whole[4096..8192]);
        assert_ne!(pattern(1, 64), pattern(2, 64));
    }

    #[test]
    fn differences_say_where() {
        assert_eq!(differ(b"abc", b"abc"), None);
        assert_eq!(
            differ(b"abc", b"abd").as_deref(),
            Some("3 bytes where 3 were sent, the first difference at byte 2")
        );
        assert_eq!(
            differ(b"abc", b"ab").as_deref(),
            Some("2 bytes where 3 were sent")
        );
    }

    #[test]
    fn every_kind_names_its_checks_once() {
        let mut seen = std::collections::HashSet::new();
        for p in Program::ALL {
            assert_eq!(p.is_server(), p.checks().is_empty(), "{p}");
            for c in p.checks() {
                assert_eq!(ProgramCheck::from_name(p, c.name()), Some(*c));
                assert!(!c.purpose().is_empty() && !c.notes_section().is_empty());
                // Chat and echo clients share theirs.
                if p != Program::EchoClient {
                    assert!(seen.insert(*c), "{c} twice");
                }
            }
        }
        assert_eq!(seen.len(), ProgramCheck::ALL.len());
        // Prerequisites run first, in the same kind.
        for p in Program::ALL {
            for (i, c) in p.checks().iter().enumerate() {
                for pre in c.after() {
                    assert!(p.checks()[..i].contains(pre), "{pre} before {c}");
                }
            }
        }
        // No name of a server check is reused, so a name alone says which
        // check it is (a batch's rows are read back by name).
        for c in ProgramCheck::ALL {
            assert!(!Check::ALL.iter().any(|s| s.name() == c.name()), "{c}");
            assert_eq!(Check::from_name(c.name()), Some(Check::Program(c)));
        }
    }

    #[test]
    fn headers_are_the_notes() {
        assert_eq!(header(4097), [0, 0, 0x10, 0x01]);
        assert_eq!(frame(Dialect::Framed, b"hi"), [0, 0, 0, 2, b'h', b'i']);
        assert_eq!(frame(Dialect::Raw, b"hi"), b"hi");
    }
}
