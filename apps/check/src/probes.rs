//! The probes: one function per check, each a short conversation with the
//! server over blocking sockets where every wait has a deadline.
//!
//! Framing goes through trama-protocol (`FrameWriter`, `FrameReader`, the
//! configured header width and byte order). The hostile patterns are faults
//! of trama-protocol's `fault` module (the library behind `trama-tap`)
//! applied to well-formed messages: `split=1` with a pause for
//! `byte-at-a-time`, `cut=1` for `mid-message-disconnect`,
//! `corrupt-header=1:ffffffff` for `huge-header` and `memory-bounded`. Only
//! the garbage is written as is. Probes gather what they saw and leave the judgement
//! to `verdict.rs`; a probe that cannot even talk to the server returns a
//! failure whose reason says where the conversation broke.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use trama_protocol::auth::Role;
use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
use trama_tap::fault::{Fault, FaultSchedule, Step as FaultStep};
use trama_transport::{AuthConfig, Stream, TlsConnector};

use crate::plan::{Check, Dialect, Expect, Measures};
use crate::sample::{GroupSample, Owner, Sampler};
use crate::spawn::Server;
use crate::transcript;
use crate::verdict::{self, mib, AfterLeaving, Verdict};

/// The size of the large message.
pub const LARGE: usize = 1 << 20;
/// Threads a server may keep beyond its count before the battery.
pub const THREAD_SLACK: u64 = 4;
/// Clients of the second wave of `threads-released`, when threads stayed.
const SECOND_WAVE: usize = 20;
/// How long a hostile connection is left to be read before others are tried.
const HOSTILE_PAUSE: Duration = Duration::from_millis(100);
/// Largest flood sent by the client that never reads.
const FLOOD_CAP: usize = 64 << 20;
/// How long one write of that flood may block before the flood stops.
const FLOOD_STALL: Duration = Duration::from_millis(250);
/// The receive buffer of the client that never reads, so the server's
/// writes back up quickly.
const TINY_RCVBUF: usize = 4096;
/// A resident size that moved less than this in [`POLL`] × 4 is at rest.
const QUIET_RSS: u64 = 1 << 20;
/// How often memory and threads are polled while waiting.
const POLL: Duration = Duration::from_millis(25);

/// The knobs of a run; every wait is one of these.
#[derive(Debug, Clone)]
pub struct Options {
    /// Framed or raw.
    pub dialect: Dialect,
    /// Echo or reply.
    pub expect: Expect,
    /// The wire format (unframed for the raw dialect).
    pub frame: FrameConfig,
    /// How long any one answer (or connection) may take.
    pub timeout: Duration,
    /// Clients connected at once by `concurrent-clients`.
    pub clients: usize,
    /// Pause between the single-byte writes of `byte-at-a-time`.
    pub byte_gap: Duration,
    /// Wait after clients leave before the process is measured.
    pub settle: Duration,
    /// How long idle CPU is measured.
    pub idle_window: Duration,
    /// Most idle CPU allowed, in percent of one core.
    pub idle_cpu_limit: f64,
    /// Most growth of peak memory allowed after a hostile header, in bytes.
    pub memory_limit: u64,
    /// TLS to the server (`--tls-ca`), trusting these authorities.
    pub tls: Option<TlsConnector>,
    /// The shared-key handshake with the server (`--key-file`), after TLS.
    pub auth: Option<AuthConfig>,
}

/// Why a probe stopped, as shown in its reason.
#[derive(Debug)]
pub struct Fail(pub String);

type Step<T> = Result<T, Fail>;

/// What an answer must be.
#[derive(Debug, Clone)]
enum Want {
    /// Exactly these bytes (the message itself, or the reference answer).
    Exact(Vec<u8>),
    /// Anything (raw dialect, `--expect reply`).
    Any,
}

/// The state a run's probes share.
pub struct Probe<'a> {
    addr: SocketAddr,
    opts: &'a Options,
    server: Option<&'a mut Server>,
    measures: Measures,
    sampler: Sampler,
    baseline_threads: Option<u64>,
    references: HashMap<Vec<u8>, Vec<u8>>,
    clients_used: usize,
}

impl<'a> Probe<'a> {
    /// Probes against `addr`; `server` if this tool started it, measured
    /// as far as `measures` allow.
    pub fn new(
        addr: SocketAddr,
        opts: &'a Options,
        server: Option<&'a mut Server>,
        measures: Measures,
    ) -> Probe<'a> {
        let mut p = Probe {
            addr,
            opts,
            server,
            measures,
            sampler: Sampler::new(),
            baseline_threads: None,
            references: HashMap::new(),
            clients_used: 0,
        };
        if measures.threads {
            p.baseline_threads = p.sample().ok().and_then(|s| s.threads);
        }
        p
    }

    /// The server this tool started, if any.
    pub fn server(&mut self) -> Option<&mut Server> {
        self.server.as_deref_mut()
    }

    /// Run one check.
    pub fn run(&mut self, check: Check) -> Verdict {
        let result = match check {
            Check::OneMessage => self.one_message(),
            Check::ByteAtATime => self.byte_at_a_time(),
            Check::TenInOneWrite => self.ten_in_one_write(),
            Check::EmptyMessage => self.empty_message(),
            Check::LargeMessage => self.large_message(),
            Check::ConcurrentClients => return self.concurrent_clients(),
            // A client leaves mid-conversation: the verdict weighs the CPU after it too.
            Check::SlowReader => return judged(self.slow_reader()),
            Check::MidMessageDisconnect => return judged(self.mid_message_disconnect()),
            Check::HugeHeader => self.huge_header(),
            Check::Garbage => self.garbage(),
            Check::MemoryBounded => return self.memory_bounded(),
            Check::IdleCpu => return self.idle_cpu(),
            Check::ThreadsReleased => return self.threads_released(),
            // Run by `programs/`, never by the server battery.
            Check::Program(c) => return Verdict::fail(format!("{c} is not a server check")),
        };
        match result {
            Ok(reason) => Verdict::pass(reason),
            Err(Fail(reason)) => Verdict::fail(reason),
        }
    }

    fn framed(&self) -> bool {
        self.opts.dialect == Dialect::Framed
    }

    fn open(&mut self, who: &str) -> Step<Conn> {
        self.clients_used += 1;
        Conn::open(self.addr, self.opts, who)
    }

    /// The bytes of `payloads` as they go on the wire, back to back.
    fn wire(&self, payloads: &[&[u8]]) -> Step<Vec<u8>> {
        let mut w = FrameWriter::new(Vec::new(), self.opts.frame);
        for p in payloads {
            w.write_frame(p)
                .map_err(|e| Fail(format!("cannot frame a {}-byte message: {e}", p.len())))?;
        }
        Ok(w.into_inner())
    }

    /// What the answers to `payloads` must be. With `--expect reply` in the
    /// framed dialect, each is first sent whole, one at a time, on a
    /// separate reference connection, and its answer is the reference.
    fn wants(&mut self, payloads: &[Vec<u8>]) -> Step<Vec<Want>> {
        match (self.opts.expect, self.opts.dialect) {
            (Expect::Echo, _) => Ok(payloads.iter().map(|p| Want::Exact(p.clone())).collect()),
            (Expect::Reply, Dialect::Raw) => Ok(payloads.iter().map(|_| Want::Any).collect()),
            (Expect::Reply, Dialect::Framed) => {
                let missing: Vec<&Vec<u8>> = payloads
                    .iter()
                    .filter(|p| !self.references.contains_key(*p))
                    .collect();
                if !missing.is_empty() {
                    let mut c = self.open("the reference client")?;
                    for p in missing {
                        c.send(p)?;
                        let deadline = Instant::now() + self.opts.timeout;
                        let answer = c.recv(deadline).map_err(|Fail(e)| {
                            Fail(format!(
                                "the reference answer to a {}-byte message sent whole: {e}",
                                p.len()
                            ))
                        })?;
                        self.references.insert(p.clone(), answer);
                    }
                }
                Ok(payloads
                    .iter()
                    .map(|p| Want::Exact(self.references.get(p).cloned().unwrap_or_default()))
                    .collect())
            }
        }
    }

    fn want(&mut self, payload: &[u8]) -> Step<Want> {
        let mut w = self.wants(&[payload.to_vec()])?;
        Ok(w.pop().unwrap_or(Want::Any))
    }

    /// A fresh client sends one message and must get its answer.
    fn fresh_client_answered(&mut self, who: &str) -> Step<()> {
        let msg = b"are you still there?".to_vec();
        let want = self.want(&msg)?;
        let mut c = self.open(who)?;
        c.send(&msg)?;
        c.expect(&want, Instant::now() + self.opts.timeout, "its answer")
    }

    /// The first frame's header replaced by all 0xFF bytes: the largest
    /// length the header can announce (4 GiB - 1 for the notes' 4 bytes).
    fn huge_header_fault(&self) -> Fault {
        Fault::CorruptHeader {
            frame: 1,
            bytes: vec![0xFF; self.opts.frame.header_len()],
        }
    }

    /// A sample once the resident size has stopped moving (what earlier
    /// checks' connections held is being released), waiting at most `--settle`.
    fn quiet_sample(&mut self) -> Step<GroupSample> {
        let deadline = Instant::now() + self.opts.settle;
        let mut last = self.sample()?;
        while Instant::now() < deadline {
            thread::sleep(POLL * 4);
            let now = self.sample()?;
            let moved = now.rss.abs_diff(last.rss);
            last = now;
            if moved < QUIET_RSS {
                break;
            }
        }
        Ok(last)
    }

    /// The CPU milliseconds the server's processes use over `--idle-window`
    /// from now, and the window's length in milliseconds (two samples); a
    /// failure when no process of the first sample is left in the second.
    fn cpu_over_window(&mut self) -> Step<(u64, u64)> {
        let first = self.sample()?;
        let t0 = Instant::now();
        thread::sleep(self.opts.idle_window);
        let second = self.sample()?;
        let window_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Processes gone by either sample have no CPU to compare: their 0 ms
        // would read as a quiet server.
        if second
            .cpu_ms
            .keys()
            .all(|pid| !first.cpu_ms.contains_key(pid))
        {
            return Err(Fail("the server's processes are gone".into()));
        }
        Ok((second.cpu_ms_since(&first), window_ms))
    }

    /// What the server's CPU does right after a client left mid-conversation:
    /// measured over `--idle-window` when this tool watches the server's
    /// process, else why not.
    fn cpu_after_leaving(&mut self) -> AfterLeaving {
        if self.server.is_none() {
            return AfterLeaving::NotMeasured("run with --spawn".into());
        }
        if !self.measures.cpu_and_memory {
            return AfterLeaving::NotMeasured("cannot read the processes of this system".into());
        }
        match self.cpu_over_window() {
            Ok((cpu_ms, window_ms)) => AfterLeaving::Used { cpu_ms, window_ms },
            Err(Fail(e)) => AfterLeaving::NotMeasured(e),
        }
    }

    fn sample(&mut self) -> Step<GroupSample> {
        let Some(server) = self.server.as_deref() else {
            return Err(Fail(
                "the server was not started by this tool (--spawn)".into(),
            ));
        };
        self.sampler
            .sample(Owner::server(server.pgid()))
            .map_err(|e| Fail(format!("cannot read the server's processes: {e}")))
    }

    // ---- the checks ----

    fn one_message(&mut self) -> Step<String> {
        let msg = b"hola, trama-check".to_vec();
        let want = self.want(&msg)?;
        let mut c = self.open("the client")?;
        let t0 = Instant::now();
        c.send(&msg)?;
        c.expect(&want, t0 + self.opts.timeout, "the answer")?;
        let took = t0.elapsed().as_secs_f64() * 1000.0;
        drop(c);
        // The notes' first server ends with its first client.
        let mut second = self.open("a second client, after the first left")?;
        second.send(&msg)?;
        second.expect(
            &want,
            Instant::now() + self.opts.timeout,
            "a second client, after the first left",
        )?;
        Ok(format!(
            "a {}-byte message was answered in {took:.1} ms, and again for a second client after the first left",
            msg.len()
        ))
    }

    fn byte_at_a_time(&mut self) -> Step<String> {
        let msg = b"one byte per segment".to_vec();
        let want = self.want(&msg)?;
        let wire = self.wire(&[&msg])?;
        let mut c = self.open("the client")?;
        let split = Fault::Split {
            size: 1,
            pause: self.opts.byte_gap,
        };
        c.write_faulted(&wire, &[split])?;
        c.expect(&want, Instant::now() + self.opts.timeout, "the answer")?;
        Ok(format!(
            "{} bytes sent one per segment, {} ms apart, were answered as one message",
            wire.len(),
            self.opts.byte_gap.as_millis()
        ))
    }

    fn ten_in_one_write(&mut self) -> Step<String> {
        let msgs: Vec<Vec<u8>> = (1..=10)
            .map(|i| format!("message {i} of 10").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let wire = self.wire(&refs)?;
        let wants = if self.framed() {
            self.wants(&msgs)?
        } else {
            // No boundaries: the echo is the ten messages back to back.
            vec![Want::Exact(msgs.concat())]
        };
        let mut c = self.open("the client")?;
        c.write_raw(&wire)?;
        let deadline = Instant::now() + self.opts.timeout;
        for (i, want) in wants.iter().enumerate() {
            c.expect(
                want,
                deadline,
                &format!("answer {} of {}", i + 1, wants.len()),
            )?;
        }
        Ok(format!(
            "10 messages ({} bytes) in one write were answered in order",
            wire.len()
        ))
    }

    fn empty_message(&mut self) -> Step<String> {
        let next = b"the one after the empty one".to_vec();
        let wire = self.wire(&[b"", &next])?;
        let mut c = self.open("the client")?;
        let deadline = Instant::now() + self.opts.timeout;
        match self.opts.expect {
            Expect::Echo => {
                c.write_raw(&wire)?;
                c.expect(
                    &Want::Exact(Vec::new()),
                    deadline,
                    "the echo of the empty message",
                )?;
                c.expect(
                    &Want::Exact(next),
                    deadline,
                    "the echo of the message after it",
                )?;
                Ok("an empty message came back empty, and the next message was echoed".into())
            }
            Expect::Reply => {
                let Want::Exact(reference) = self.want(&next)? else {
                    return Err(Fail("no reference answer".into()));
                };
                c.write_raw(&wire)?;
                let first = c
                    .recv(deadline)
                    .map_err(|Fail(e)| Fail(format!("after an empty message: {e}")))?;
                if first == reference {
                    return Ok(
                        "the empty message got no answer, and the next one was answered".into(),
                    );
                }
                let second = c.recv(deadline).map_err(|Fail(e)| {
                    Fail(format!(
                        "the answer to the message after the empty one: {e}"
                    ))
                })?;
                match verdict::mismatch(&reference, &second) {
                    None => Ok(format!(
                        "the empty message got a {}-byte answer, and the next one was answered",
                        first.len()
                    )),
                    Some(m) => Err(Fail(format!(
                        "the answer to the message after the empty one: {m}"
                    ))),
                }
            }
        }
    }

    fn large_message(&mut self) -> Step<String> {
        let msg = pattern(LARGE);
        let wire = self.wire(&[&msg])?;
        let c = self.open("the client")?;
        let t0 = Instant::now();
        let deadline = t0 + self.opts.timeout;
        let writer = Arc::clone(&c.stream);
        let mut c = c;
        let want = match self.opts.expect {
            Expect::Echo => Want::Exact(msg.clone()),
            Expect::Reply => Want::Any,
        };
        // Write on another thread: a raw echo server answers while the
        // message is still arriving, and nobody would read that answer.
        let read = thread::scope(|s| {
            let conn = c.id;
            let w = s.spawn(move || {
                Tapped {
                    stream: &writer,
                    conn,
                }
                .write_all(&wire)
            });
            let read = c.expect(&want, deadline, "the answer to the 1 MiB message");
            if read.is_err() {
                // Unblock the writer at once.
                let _ = c.stream.shutdown(Shutdown::Both);
            }
            let wrote = w.join();
            (read, wrote)
        });
        let (read, wrote) = read;
        read?;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Fail(format!("sending the 1 MiB message failed: {e}"))),
            Err(_) => return Err(Fail("the thread sending the 1 MiB message panicked".into())),
        }
        let took = t0.elapsed().as_secs_f64() * 1000.0;
        if self.opts.expect == Expect::Reply {
            let ping = b"ping".to_vec();
            let want = self.want(&ping)?;
            c.send(&ping)?;
            c.expect(
                &want,
                Instant::now() + self.opts.timeout,
                "the answer to a message after it",
            )?;
            return Ok(format!(
                "a {LARGE}-byte message was answered in {took:.1} ms, and the next message too"
            ));
        }
        Ok(format!(
            "a {LARGE}-byte message came back intact in {took:.1} ms"
        ))
    }

    fn concurrent_clients(&mut self) -> Verdict {
        match self.concurrent_inner() {
            Ok(v) => v,
            Err(Fail(reason)) => Verdict::fail(reason),
        }
    }

    fn concurrent_inner(&mut self) -> Step<Verdict> {
        let n = self.opts.clients;
        let msgs: Vec<Vec<u8>> = (1..=n)
            .map(|i| format!("client {i} of {n}").into_bytes())
            .collect();
        let wants = self.wants(&msgs)?;
        let mut conns = Vec::with_capacity(n);
        for i in 1..=n {
            conns.push(self.open(&format!("client {i} of {n}"))?);
        }
        for (c, m) in conns.iter_mut().zip(&msgs) {
            c.send(m)?;
        }
        let deadline = Instant::now() + self.opts.timeout;
        let mut answered = 0;
        let mut first_missing = None;
        for (i, (c, want)) in conns.iter_mut().zip(&wants).enumerate() {
            match c.expect(want, deadline, "its answer") {
                Ok(()) => answered += 1,
                Err(Fail(e)) => {
                    if first_missing.is_none() {
                        first_missing = Some(format!("client {}: {e}", i + 1));
                    }
                }
            }
        }
        Ok(verdict::concurrency(answered, n, first_missing))
    }

    fn slow_reader(&mut self) -> Step<Verdict> {
        // The reference (reply mode) is taken before anything misbehaves.
        let msg = b"are you still there?".to_vec();
        let _ = self.want(&msg)?;
        self.clients_used += 1;
        let sleeper = connect_tiny(self.addr, self.opts.timeout)
            .map_err(|e| Fail(format!("the client that never reads cannot connect: {e}")))?;
        let sleeper = secure(sleeper, self.opts)
            .map_err(|e| Fail(format!("the client that never reads: {e}")))?;
        let chunk = self.wire(&[&pattern(64 * 1024)])?;
        let (sent, ended) = flood(&sleeper, &chunk);
        let served = self.fresh_client_answered("another client");
        // It leaves with the server's answers unread: a reset, mid-message.
        drop(sleeper);
        match served {
            Ok(()) => {
                let seen = format!(
                    "another client was answered while one that never reads had sent {} ({ended})",
                    mib(sent)
                );
                let cpu = self.cpu_after_leaving();
                Ok(verdict::after_leaving(
                    &seen,
                    "after the client that never reads left",
                    &cpu,
                    self.opts.idle_cpu_limit,
                ))
            }
            Err(Fail(e)) => Err(Fail(format!(
                "while a client that never reads had sent {} ({ended}), another client: {e}",
                mib(sent)
            ))),
        }
    }

    fn mid_message_disconnect(&mut self) -> Step<Verdict> {
        let wire = self.wire(&[&pattern(1000)])?;
        let mut quitter = self.open("the client that leaves")?;
        let sent = quitter.write_faulted(&wire, &[Fault::CutFrame { frame: 1 }])?;
        thread::sleep(HOSTILE_PAUSE);
        drop(quitter);
        // Right after it left, before the next client comes (and goes).
        let cpu = self.cpu_after_leaving();
        self.fresh_client_answered("the next client")?;
        let header = self.opts.frame.header_len() as u64;
        let seen = format!(
            "a client left {} bytes into a 1000-byte message; the next client was answered",
            sent.saturating_sub(header)
        );
        Ok(verdict::after_leaving(
            &seen,
            "after the client left mid-message",
            &cpu,
            self.opts.idle_cpu_limit,
        ))
    }

    fn huge_header(&mut self) -> Step<String> {
        let announced = self.opts.frame.width().max_len();
        let msg = b"are you still there?".to_vec();
        let _ = self.want(&msg)?;
        let mut hostile = self.open("the hostile client")?;
        hostile.write_faulted(&self.wire(&[&msg])?, &[self.huge_header_fault()])?;
        thread::sleep(HOSTILE_PAUSE);
        self.fresh_client_answered("another client")
            .map_err(|Fail(e)| {
                Fail(format!(
                "after a header announcing {announced} bytes on one connection, another client: {e}"
            ))
            })?;
        let fate = hostile.fate();
        Ok(format!(
            "after a header announcing {announced} bytes, another client was answered; the hostile connection was {fate}"
        ))
    }

    fn garbage(&mut self) -> Step<String> {
        // Not UTF-8 (so `decode()` raises), then bytes from a fixed-seed generator.
        let bad = [0xFFu8, 0xFE, 0xC3, 0x28, 0x80, 0x00, 0xA0, 0xA1];
        let mut bytes = if self.framed() {
            self.wire(&[&bad])?
        } else {
            bad.to_vec()
        };
        bytes.extend(noise(64));
        let mut g = self.open("the client sending garbage")?;
        g.write_raw(&bytes)?;
        thread::sleep(HOSTILE_PAUSE);
        drop(g);
        self.fresh_client_answered("the next client")
            .map_err(|Fail(e)| {
                Fail(format!(
                    "after {} bytes of garbage, the next client: {e}",
                    bytes.len()
                ))
            })?;
        Ok(format!(
            "after {} bytes that are not a valid message (starting with invalid UTF-8), the next client was answered",
            bytes.len()
        ))
    }

    fn memory_bounded(&mut self) -> Verdict {
        let announced = self.opts.frame.width().max_len();
        // Both the resident size (an allocation held while the body is
        // awaited) and its high-water mark (one already freed, or one above
        // every earlier peak) are watched.
        let before = match self.quiet_sample() {
            Ok(s) => s,
            Err(Fail(e)) => return Verdict::fail(e),
        };
        let wire = match self.wire(&[b"are you still there?"]) {
            Ok(w) => w,
            Err(Fail(e)) => return Verdict::fail(e),
        };
        let mut hostile = match self.open("the hostile client") {
            Ok(c) => c,
            Err(Fail(e)) => return Verdict::fail(e),
        };
        if let Err(Fail(e)) = hostile.write_faulted(&wire, &[self.huge_header_fault()]) {
            return Verdict::fail(e);
        }
        let deadline = Instant::now() + self.opts.settle;
        let mut growth = 0;
        loop {
            if let Ok(s) = self.sample() {
                let peak = match (s.peak_rss, before.peak_rss) {
                    (Some(now), Some(then)) => now.saturating_sub(then),
                    _ => 0,
                };
                growth = growth.max(peak).max(s.rss.saturating_sub(before.rss));
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        drop(hostile);
        let watched = if self.measures.peak_memory {
            verdict::MemoryWatch::Peak
        } else {
            verdict::MemoryWatch::Sampled { every: POLL }
        };
        verdict::memory(growth, self.opts.memory_limit, announced, watched)
    }

    fn idle_cpu(&mut self) -> Verdict {
        // A few more clients come and go, so there are departures to spin on.
        for i in 1..=3 {
            if let Err(Fail(e)) = self.fresh_client_answered(&format!("departing client {i}")) {
                return Verdict::fail(format!("before measuring: {e}"));
            }
        }
        thread::sleep(self.opts.settle);
        let (cpu_ms, window_ms) = match self.cpu_over_window() {
            Ok(used) => used,
            Err(Fail(e)) => return Verdict::fail(e),
        };
        let percent = verdict::cpu_percent(cpu_ms, window_ms);
        verdict::idle_cpu(
            percent,
            self.opts.idle_cpu_limit,
            window_ms,
            self.clients_used,
        )
    }

    fn threads_released(&mut self) -> Verdict {
        let Some(before) = self.baseline_threads else {
            return Verdict::fail("the thread count before the battery could not be read");
        };
        let clients = self.clients_used;
        let after = match self.threads_settled(before + THREAD_SLACK) {
            Ok(n) => n,
            Err(Fail(e)) => return Verdict::fail(e),
        };
        if after <= before + THREAD_SLACK {
            return verdict::threads(before, after, None, THREAD_SLACK, clients);
        }
        // Threads stayed: a leak grows with every client, a pool does not.
        // A wave cut short by an unanswered client is judged on those that came.
        let mut came = 0;
        for i in 1..=SECOND_WAVE {
            if self
                .fresh_client_answered(&format!("second-wave client {i}"))
                .is_err()
            {
                break;
            }
            came += 1;
        }
        if came == 0 {
            return verdict::threads(before, after, None, THREAD_SLACK, clients);
        }
        let again = match self.threads_settled(after + THREAD_SLACK) {
            Ok(n) => n,
            Err(Fail(e)) => return Verdict::fail(e),
        };
        let wave = verdict::SecondWave {
            clients: came,
            threads: again,
        };
        verdict::threads(before, after, Some(wave), THREAD_SLACK, clients)
    }

    /// The group's thread count once it is at most `target`, or when
    /// `--settle` has passed.
    fn threads_settled(&mut self, target: u64) -> Step<u64> {
        let deadline = Instant::now() + self.opts.settle;
        loop {
            let Some(n) = self.sample()?.threads else {
                return Err(Fail("this system gives no thread count".into()));
            };
            if n <= target || Instant::now() >= deadline {
                return Ok(n);
            }
            thread::sleep(POLL);
        }
    }
}

/// The verdict a probe reached, or its failure to talk to the server.
fn judged(result: Step<Verdict>) -> Verdict {
    result.unwrap_or_else(|Fail(reason)| Verdict::fail(reason))
}

/// A deterministic byte pattern of `len` bytes (not all alike, so a shifted
/// or truncated echo shows).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// `len` bytes from a fixed-seed xorshift generator.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Connect with a tiny receive buffer, set before the handshake so the
/// advertised window stays small.
fn connect_tiny(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_recv_buffer_size(TINY_RCVBUF)?;
    s.connect_timeout(&addr.into(), timeout)?;
    let s: TcpStream = s.into();
    s.set_write_timeout(Some(FLOOD_STALL))?;
    Ok(s)
}

/// TLS and the shared-key handshake over a connected socket, as `opts` ask
/// (the server's certificate is checked against its IP address unless
/// `--tls-server-name` names it); a plain stream otherwise.
fn secure(tcp: TcpStream, opts: &Options) -> Result<Stream, String> {
    let stream = match &opts.tls {
        Some(connector) => Stream::connect_tls(tcp, connector, None, opts.timeout)
            .map_err(|e| format!("TLS: {e}"))?,
        None => Stream::plain(tcp),
    };
    if let Some(auth) = &opts.auth {
        stream
            .authenticate(Role::Dialer, auth)
            .map_err(|e| format!("the key handshake: {e}"))?;
    }
    Ok(stream)
}

/// Write `chunk` again and again until a write stalls, the server drops the
/// connection, or [`FLOOD_CAP`] bytes went out. Returns the bytes sent and how it ended.
fn flood(mut s: &Stream, chunk: &[u8]) -> (u64, String) {
    let mut sent: u64 = 0;
    let mut at = 0;
    loop {
        if sent >= FLOOD_CAP as u64 {
            return (sent, "the server kept reading".into());
        }
        match s.write(&chunk[at..]) {
            Ok(0) => return (sent, "the server closed it".into()),
            Ok(n) => {
                sent += n as u64;
                at = (at + n) % chunk.len();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (sent, "then its writes blocked".into())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (sent, format!("then the server dropped it: {e}")),
        }
    }
}

/// A `Read` over a socket that gives up at a deadline: every read gets the
/// time that is left (at least a millisecond, so data already there is read).
struct DeadlineRead<'a> {
    stream: &'a Stream,
    deadline: Instant,
    /// The connection's number in the check's transcript.
    conn: u32,
}

impl Read for DeadlineRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        let n = s.read(buf)?;
        transcript::received(self.conn, buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// A `Write` that shows what it writes in the check's transcript.
struct Tapped<'a> {
    stream: &'a Stream,
    conn: u32,
}

impl Write for Tapped<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.stream).write(buf)?;
        transcript::sent(self.conn, buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.stream).flush()
    }
}

/// One client connection.
struct Conn {
    /// Shared with the writer thread of `large-message` (reads and writes go
    /// through `&Stream`, plain or TLS).
    stream: Arc<Stream>,
    frame: FrameConfig,
    timeout: Duration,
    who: String,
    /// Its number in the check's transcript.
    id: u32,
}

impl Conn {
    fn open(addr: SocketAddr, opts: &Options, who: &str) -> Step<Conn> {
        let tcp = TcpStream::connect_timeout(&addr, opts.timeout)
            .map_err(|e| Fail(format!("{who} cannot connect to {addr}: {e}")))?;
        let setup = tcp
            .set_nodelay(true)
            .and_then(|()| tcp.set_write_timeout(Some(opts.timeout)));
        setup.map_err(|e| Fail(format!("{who}: cannot set up the socket: {e}")))?;
        let stream = secure(tcp, opts).map_err(|e| Fail(format!("{who} at {addr}: {e}")))?;
        Ok(Conn {
            stream: Arc::new(stream),
            frame: opts.frame,
            timeout: opts.timeout,
            who: who.to_string(),
            id: transcript::open(),
        })
    }

    /// Send one message in the run's format.
    fn send(&mut self, payload: &[u8]) -> Step<()> {
        let tapped = Tapped {
            stream: &self.stream,
            conn: self.id,
        };
        let mut w = FrameWriter::new(tapped, self.frame);
        w.write_frame(payload).map_err(|e| {
            Fail(format!(
                "{}: sending a {}-byte message failed: {e}",
                self.who,
                payload.len()
            ))
        })
    }

    /// Write bytes exactly as given.
    fn write_raw(&mut self, bytes: &[u8]) -> Step<()> {
        let mut tapped = Tapped {
            stream: &self.stream,
            conn: self.id,
        };
        tapped.write_all(bytes).map_err(|e| {
            Fail(format!(
                "{}: writing {} bytes failed: {e}",
                self.who,
                bytes.len()
            ))
        })
    }

    /// Write `wire` disturbed by `faults` (trama-protocol's fault schedule,
    /// the one `trama-tap` applies), carrying out its steps on this socket.
    /// Returns the bytes written; a `Close` step shuts the socket down.
    fn write_faulted(&mut self, wire: &[u8], faults: &[Fault]) -> Step<u64> {
        let mut schedule = FaultSchedule::new(faults, self.frame, 1)
            .map_err(|e| Fail(format!("{}: cannot apply the fault: {e}", self.who)))?;
        let mut steps = Vec::new();
        schedule.push(wire, &mut steps);
        let mut sent = 0u64;
        for step in steps {
            match step {
                FaultStep::Write(range) => {
                    let bytes = wire.get(range).unwrap_or_default();
                    self.write_raw(bytes)?;
                    sent += bytes.len() as u64;
                }
                FaultStep::Inject(bytes) => {
                    self.write_raw(&bytes)?;
                    sent += bytes.len() as u64;
                }
                FaultStep::Sleep(d) => thread::sleep(d),
                FaultStep::Close | FaultStep::Reset => {
                    // Already closed by the server is as good.
                    let _ = self.stream.shutdown(Shutdown::Both);
                    break;
                }
                FaultStep::Stall => break,
                FaultStep::Fired(_) => {}
            }
        }
        Ok(sent)
    }

    /// One answer: a frame, or in the raw dialect what one read returns.
    fn recv(&mut self, deadline: Instant) -> Step<Vec<u8>> {
        let source = DeadlineRead {
            stream: &self.stream,
            deadline,
            conn: self.id,
        };
        let mut r = FrameReader::new(source, self.frame);
        match r.read_frame() {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(Fail(
                "the server closed the connection without answering".into(),
            )),
            Err(e) => Err(Fail(self.describe(e))),
        }
    }

    fn describe(&self, e: trama_protocol::Error) -> String {
        if let trama_protocol::Error::Io(io) = &e {
            if matches!(
                io.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                return format!("no answer within {} ms", self.timeout.as_millis());
            }
            return format!("the connection failed: {io}");
        }
        format!("the answer is not a valid frame: {e}")
    }

    /// Receive what `want` says, labelling failures with `what`.
    fn expect(&mut self, want: &Want, deadline: Instant, what: &str) -> Step<()> {
        let fail = |e: String| Fail(format!("{what}: {e}"));
        match want {
            Want::Any => self.recv(deadline).map(|_| ()).map_err(|Fail(e)| fail(e)),
            Want::Exact(expected) if !self.frame.is_unframed() => {
                let got = self.recv(deadline).map_err(|Fail(e)| fail(e))?;
                match verdict::mismatch(expected, &got) {
                    None => Ok(()),
                    Some(m) => Err(fail(m)),
                }
            }
            Want::Exact(expected) => {
                // No boundaries: gather bytes until there are as many as expected.
                let mut got = Vec::with_capacity(expected.len());
                while got.len() < expected.len() {
                    let part = self.recv(deadline).map_err(|Fail(e)| {
                        fail(format!(
                            "after {} of {} bytes, {e}",
                            got.len(),
                            expected.len()
                        ))
                    })?;
                    got.extend_from_slice(&part);
                    if !expected.starts_with(&got[..got.len().min(expected.len())]) {
                        break;
                    }
                }
                match verdict::mismatch(expected, &got) {
                    None => Ok(()),
                    Some(m) => Err(fail(m)),
                }
            }
        }
    }

    /// What the server did with this connection: closed, reset, answered, or kept it open.
    fn fate(&mut self) -> String {
        let mut buf = [0u8; 256];
        let _ = self.stream.set_read_timeout(Some(HOSTILE_PAUSE));
        match (&*self.stream).read(&mut buf) {
            Ok(0) => "closed by the server".into(),
            Ok(n) => {
                transcript::received(self.id, buf.get(..n).unwrap_or_default());
                format!("answered with {n} bytes")
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                "kept open".into()
            }
            Err(e) => format!("ended by the server ({e})"),
        }
    }
}

impl Drop for Conn {
    /// If the server has already closed its side, end with a reset: a server
    /// that closes first would otherwise keep its port in TIME_WAIT, and in a
    /// batch the next submission (on the same fixed port, without
    /// SO_REUSEADDR) could not bind it for a minute. A connection the server
    /// still holds open is closed normally, so it sees the end it must handle.
    fn drop(&mut self) {
        // Under TLS a byte read from the socket itself would be a record's:
        // the connection is closed normally there.
        let Some(tcp) = self.stream.as_tcp() else {
            return;
        };
        if tcp.set_nonblocking(true).is_err() {
            return;
        }
        let mut byte = [0u8; 1];
        if let Ok(0) = (&*tcp).read(&mut byte) {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_and_noise_are_fixed() {
        let p = pattern(300);
        assert_eq!(&p[..3], &[7, 38, 69]);
        assert_eq!(p[251], p[0]);
        assert_eq!(noise(8), noise(8));
        assert_ne!(noise(8), vec![0; 8]);
    }
}
