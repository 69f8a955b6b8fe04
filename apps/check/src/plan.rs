//! The battery and its schedule, with no I/O.
//!
//! Which checks exist, what each one catches (and where in the course notes
//! that pitfall is shown), which conditions a check needs (a framed dialect,
//! a server this tool started, Linux's `/proc`), and which other check must
//! have passed first. A check whose prerequisite failed is skipped with a
//! reason, so one defect shows up as one failure: a server that serves one
//! client at a time fails `concurrent-clients`, and the checks that only make
//! sense for a concurrent server say so instead of failing too.

use std::collections::VecDeque;
use std::fmt;

/// How the server under test frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A length header before every message (the notes' chat and file format).
    Framed,
    /// No framing: a message is whatever one `recv` returned (the notes' echo and P2P programs).
    Raw,
}

/// What the server is expected to send back for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The same bytes.
    Echo,
    /// One answer per message, the same answer for the same message.
    Reply,
}

/// One check of the battery. The order of [`Check::ALL`] is the order they run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// One message is answered.
    OneMessage,
    /// A message whose header and body arrive one byte per segment.
    ByteAtATime,
    /// Ten messages in one write, answered in order.
    TenInOneWrite,
    /// A zero-length message, then a normal one.
    EmptyMessage,
    /// A 1 MiB message comes back intact.
    LargeMessage,
    /// Fifty clients connected at once are all answered.
    ConcurrentClients,
    /// One client that never reads does not stop the others being served.
    SlowReader,
    /// A client that leaves in the middle of a message does not break the server.
    MidMessageDisconnect,
    /// A header of all 0xFF bytes does not stop the others being served.
    HugeHeader,
    /// Bytes that are not a valid message do not break the server.
    Garbage,
    /// Memory stays bounded after a header of all 0xFF bytes.
    MemoryBounded,
    /// No CPU is used while idle after clients disconnect.
    IdleCpu,
    /// The threads of departed clients are released.
    ThreadsReleased,
    /// A check of a program that is not a server (`--program`; `programs/`).
    Program(crate::programs::ProgramCheck),
}

/// Why a check cannot run in this configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Needs message boundaries (framed dialect).
    Framed,
    /// Needs to compare answers between messages: framed, or raw with echo.
    Comparable,
    /// Needs the server's process (`--spawn`).
    Process,
}

impl Check {
    /// Every check, in the order they run.
    pub const ALL: [Check; 13] = [
        Check::OneMessage,
        Check::ByteAtATime,
        Check::TenInOneWrite,
        Check::EmptyMessage,
        Check::LargeMessage,
        Check::ConcurrentClients,
        Check::SlowReader,
        Check::MidMessageDisconnect,
        Check::HugeHeader,
        Check::Garbage,
        Check::MemoryBounded,
        Check::IdleCpu,
        Check::ThreadsReleased,
    ];

    /// The stable kebab-case name used in output, CSV columns and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::OneMessage => "one-message",
            Check::ByteAtATime => "byte-at-a-time",
            Check::TenInOneWrite => "ten-in-one-write",
            Check::EmptyMessage => "empty-message",
            Check::LargeMessage => "large-message",
            Check::ConcurrentClients => "concurrent-clients",
            Check::SlowReader => "slow-reader",
            Check::MidMessageDisconnect => "mid-message-disconnect",
            Check::HugeHeader => "huge-header",
            Check::Garbage => "garbage",
            Check::MemoryBounded => "memory-bounded",
            Check::IdleCpu => "idle-cpu",
            Check::ThreadsReleased => "threads-released",
            Check::Program(p) => p.name(),
        }
    }

    /// The check called `name`, if any.
    pub fn from_name(name: &str) -> Option<Check> {
        // A server check, or one of another kind's (no two share a name).
        Check::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .or_else(|| {
                crate::programs::Program::ALL
                    .into_iter()
                    .find_map(|p| crate::programs::ProgramCheck::from_name(p, name))
                    .map(Check::Program)
            })
    }

    /// What the check catches, in one line (shown by `--list`).
    pub fn purpose(self) -> &'static str {
        match self {
            Check::OneMessage => {
                "no answer at all (wrong dialect, wrong port), or a server that ends with its first client"
            }
            Check::ByteAtATime => "a single recv() assumed to return a whole header or body",
            Check::TenInOneWrite => {
                "one recv() taken as one message, losing the messages that came with it"
            }
            Check::EmptyMessage => {
                "a zero-length message confused with a closed connection, or not answered"
            }
            Check::LargeMessage => "a message larger than one recv() is cut short",
            Check::ConcurrentClients => "a server that serves one client at a time",
            Check::SlowReader => {
                "a client that stops reading blocks the server for everyone, or (with --spawn) leaves it spinning at 100% CPU once it goes"
            }
            Check::MidMessageDisconnect => {
                "a client that leaves mid-message crashes the server or wedges it, or (with --spawn) leaves it spinning at 100% CPU"
            }
            Check::HugeHeader => "a header announcing 4 GiB stops the server serving others",
            Check::Garbage => "bytes that do not decode crash the server",
            Check::MemoryBounded => "memory committed on the word of a length header",
            Check::IdleCpu => {
                "a thread that spins at 100% CPU after its client leaves (recv returns b'')"
            }
            Check::ThreadsReleased => "threads of departed clients that never end",
            Check::Program(p) => p.purpose(),
        }
    }

    /// The section of the course notes whose pitfall the check catches.
    pub fn notes_section(self) -> &'static str {
        match self {
            Check::OneMessage => "Envío de datos con JSON",
            Check::ByteAtATime | Check::LargeMessage | Check::HugeHeader | Check::MemoryBounded => {
                "Envío de muchos datos"
            }
            Check::Garbage => "Envío de datos con pickle",
            Check::TenInOneWrite
            | Check::EmptyMessage
            | Check::ConcurrentClients
            | Check::SlowReader
            | Check::MidMessageDisconnect
            | Check::IdleCpu
            | Check::ThreadsReleased => {
                "Servidor con manejo de múltiples clientes en forma concurrente"
            }
            Check::Program(p) => p.notes_section(),
        }
    }

    /// What the check needs beyond a listening server.
    pub fn requirement(self) -> Option<Requirement> {
        match self {
            Check::EmptyMessage | Check::MidMessageDisconnect | Check::HugeHeader => {
                Some(Requirement::Framed)
            }
            Check::ByteAtATime | Check::TenInOneWrite | Check::LargeMessage => {
                Some(Requirement::Comparable)
            }
            Check::MemoryBounded => Some(Requirement::Framed),
            Check::IdleCpu | Check::ThreadsReleased => Some(Requirement::Process),
            _ => None,
        }
    }

    /// Whether the check measures the server's process (needs `--spawn`).
    pub fn needs_process(self) -> bool {
        matches!(
            self,
            Check::MemoryBounded | Check::IdleCpu | Check::ThreadsReleased
        )
    }

    /// The checks that must have passed for this one to mean anything.
    pub fn after(self) -> &'static [Check] {
        match self {
            Check::OneMessage | Check::Program(_) => &[],
            // Another client served while one misbehaves presumes concurrency.
            Check::SlowReader | Check::HugeHeader => &[Check::OneMessage, Check::ConcurrentClients],
            // Spinning threads never end: counting them again says nothing new.
            Check::ThreadsReleased => &[Check::OneMessage, Check::IdleCpu],
            _ => &[Check::OneMessage],
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed: the reason says what was seen.
    Fail,
    /// It did not run: the reason says why.
    Skip,
}

impl Status {
    /// `pass`, `fail` or `skip`, as in the JSON and CSV output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// A check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which check.
    pub check: Check,
    /// What happened.
    pub status: Status,
    /// Why, with the numbers that explain it.
    pub reason: String,
}

/// What the run can do, decided before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// The server's dialect.
    pub dialect: Dialect,
    /// What the server sends back.
    pub expect: Expect,
    /// This tool started the server (`--spawn`), so its process can be measured.
    pub spawned: bool,
    /// What this system lets the process checks measure.
    pub measures: Measures,
}

/// What this system lets the process checks measure (`sample.rs` finds out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measures {
    /// CPU time and resident memory of a process (sysinfo: Linux, macOS, Windows).
    pub cpu_and_memory: bool,
    /// Peak resident memory (Linux's `/proc`); without it, `memory-bounded`
    /// watches the resident size alone.
    pub peak_memory: bool,
    /// Thread counts (Linux's `/proc`), which `threads-released` needs.
    pub threads: bool,
}

impl Setup {
    /// Why `check` cannot run here, or `None` if it can.
    pub fn unmet(&self, check: Check) -> Option<String> {
        let framed = self.dialect == Dialect::Framed;
        if let Some(req) = check.requirement() {
            match req {
                Requirement::Framed if !framed => {
                    return Some("needs message boundaries (framed dialect)".to_string())
                }
                Requirement::Comparable if !framed && self.expect == Expect::Reply => {
                    return Some(
                        "raw dialect with --expect reply: a split or merged message has no answer to compare"
                            .to_string(),
                    )
                }
                _ => {}
            }
        }
        if check.needs_process() {
            if !self.spawned {
                return Some("measures the server's process: run with --spawn".to_string());
            }
            if !self.measures.cpu_and_memory {
                return Some(
                    "cannot read the processes of this system (sysinfo does not support it)"
                        .to_string(),
                );
            }
            if check == Check::ThreadsReleased && !self.measures.threads {
                return Some(format!(
                    "counts threads, which trama-check reads from Linux's /proc only (sysinfo gives no thread count on {})",
                    std::env::consts::OS
                ));
            }
        }
        None
    }
}

/// The order of a run, and the skips that follow from results so far.
///
/// Call [`Schedule::next`] for the next check to run, run it, and give its
/// verdict to [`Schedule::record`]. Checks that cannot run are recorded as
/// skipped on the way, with their reason.
#[derive(Debug)]
pub struct Schedule {
    setup: Setup,
    queue: VecDeque<Check>,
    done: Vec<Outcome>,
}

impl Schedule {
    /// Only `checks` (in the battery's order), for `setup`.
    pub fn with_checks(setup: Setup, checks: &[Check]) -> Schedule {
        let mut queue: Vec<Check> = checks.to_vec();
        queue.sort();
        queue.dedup();
        Schedule {
            setup,
            queue: queue.into(),
            done: Vec::new(),
        }
    }

    /// The next check to run, recording skips for those that cannot.
    pub fn next(&mut self) -> Option<Check> {
        while let Some(check) = self.queue.pop_front() {
            if let Some(why) = self.setup.unmet(check) {
                self.skip(check, why);
                continue;
            }
            if let Some(why) = self.blocked(check) {
                self.skip(check, why);
                continue;
            }
            return Some(check);
        }
        None
    }

    /// Why a prerequisite of `check` keeps it from meaning anything.
    fn blocked(&self, check: Check) -> Option<String> {
        for pre in check.after() {
            match self.done.iter().find(|o| o.check == *pre) {
                Some(o) if o.status == Status::Pass => {}
                Some(o) => {
                    return Some(format!(
                        "needs {pre}, which did not pass ({})",
                        o.status.as_str()
                    ))
                }
                // Not in this run (filtered out): nothing to go by, so run.
                None => {}
            }
        }
        None
    }

    /// Record the verdict of a check [`Schedule::next`] returned.
    pub fn record(&mut self, check: Check, status: Status, reason: impl Into<String>) {
        self.done.push(Outcome {
            check,
            status,
            reason: reason.into(),
        });
    }

    fn skip(&mut self, check: Check, reason: String) {
        self.record(check, Status::Skip, reason);
    }

    /// Skip every check not run yet, for `reason` (time limit, server gone).
    pub fn abandon(&mut self, reason: &str) {
        while let Some(check) = self.queue.pop_front() {
            self.skip(check, reason.to_string());
        }
    }

    /// The verdicts, in the battery's order.
    pub fn finish(mut self) -> Vec<Outcome> {
        self.abandon("not run");
        self.done.sort_by_key(|o| o.check);
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dialect: Dialect, expect: Expect, spawned: bool) -> Setup {
        Setup {
            dialect,
            expect,
            spawned,
            // Linux: everything.
            measures: Measures {
                cpu_and_memory: true,
                peak_memory: true,
                threads: true,
            },
        }
    }

    /// Run a schedule where the checks in `failing` fail and the rest pass.
    fn run(setup: Setup, failing: &[Check]) -> Vec<Outcome> {
        let mut s = Schedule::with_checks(setup, &Check::ALL);
        while let Some(c) = s.next() {
            let status = if failing.contains(&c) {
                Status::Fail
            } else {
                Status::Pass
            };
            s.record(c, status, "test");
        }
        s.finish()
    }

    fn with(outcomes: &[Outcome], status: Status) -> Vec<&'static str> {
        outcomes
            .iter()
            .filter(|o| o.status == status)
            .map(|o| o.check.name())
            .collect()
    }

    #[test]
    fn names_are_unique_kebab_case_and_round_trip() {
        let mut names: Vec<_> = Check::ALL.iter().map(|c| c.name()).collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{n}");
            assert_eq!(Check::from_name(n).map(Check::name), Some(*n));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
        assert!(names.contains(&"idle-cpu"));
    }

    #[test]
    fn all_is_in_order_and_prerequisites_come_first() {
        for w in Check::ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for c in Check::ALL {
            for pre in c.after() {
                assert!(pre < &c, "{pre} must run before {c}");
            }
        }
    }

    #[test]
    fn spawned_framed_echo_runs_everything() {
        let out = run(setup(Dialect::Framed, Expect::Echo, true), &[]);
        assert_eq!(out.len(), Check::ALL.len());
        assert_eq!(with(&out, Status::Pass).len(), Check::ALL.len());
    }

    #[test]
    fn without_spawn_the_process_checks_are_skipped() {
        let out = run(setup(Dialect::Framed, Expect::Echo, false), &[]);
        assert_eq!(
            with(&out, Status::Skip),
            ["memory-bounded", "idle-cpu", "threads-released"]
        );
        let idle = out.iter().find(|o| o.check == Check::IdleCpu).unwrap();
        assert!(idle.reason.contains("--spawn"), "{}", idle.reason);
    }

    #[test]
    fn without_thread_counts_only_threads_released_is_skipped() {
        // macOS and Windows: CPU time and memory, but no thread count.
        let mut s = setup(Dialect::Framed, Expect::Echo, true);
        s.measures = Measures {
            cpu_and_memory: true,
            peak_memory: false,
            threads: false,
        };
        let out = run(s, &[]);
        assert_eq!(with(&out, Status::Skip), ["threads-released"]);
        let threads = out
            .iter()
            .find(|o| o.check == Check::ThreadsReleased)
            .unwrap();
        assert!(threads.reason.contains("Linux"), "{}", threads.reason);
        assert!(
            threads.reason.contains(std::env::consts::OS),
            "{}",
            threads.reason
        );
    }

    #[test]
    fn without_process_readings_the_process_checks_are_skipped() {
        let mut s = setup(Dialect::Framed, Expect::Echo, true);
        s.measures = Measures {
            cpu_and_memory: false,
            peak_memory: false,
            threads: false,
        };
        let out = run(s, &[]);
        assert_eq!(
            with(&out, Status::Skip),
            ["memory-bounded", "idle-cpu", "threads-released"]
        );
        assert!(out
            .iter()
            .filter(|o| o.status == Status::Skip)
            .all(|o| o.reason.contains("cannot read the processes")));
    }

    #[test]
    fn raw_dialect_skips_what_needs_boundaries() {
        let out = run(setup(Dialect::Raw, Expect::Echo, true), &[]);
        assert_eq!(
            with(&out, Status::Skip),
            [
                "empty-message",
                "mid-message-disconnect",
                "huge-header",
                "memory-bounded"
            ]
        );
        let out = run(setup(Dialect::Raw, Expect::Reply, true), &[]);
        assert_eq!(
            with(&out, Status::Pass),
            [
                "one-message",
                "concurrent-clients",
                "slow-reader",
                "garbage",
                "idle-cpu",
                "threads-released"
            ]
        );
    }

    #[test]
    fn a_serial_server_fails_once() {
        let out = run(
            setup(Dialect::Framed, Expect::Echo, true),
            &[
                Check::ConcurrentClients,
                Check::SlowReader,
                Check::HugeHeader,
            ],
        );
        assert_eq!(with(&out, Status::Fail), ["concurrent-clients"]);
        assert_eq!(with(&out, Status::Skip), ["slow-reader", "huge-header"]);
        let slow = out.iter().find(|o| o.check == Check::SlowReader).unwrap();
        assert_eq!(
            slow.reason,
            "needs concurrent-clients, which did not pass (fail)"
        );
    }

    #[test]
    fn a_spinning_server_fails_idle_cpu_and_skips_threads() {
        let out = run(
            setup(Dialect::Framed, Expect::Echo, true),
            &[Check::IdleCpu],
        );
        assert_eq!(with(&out, Status::Fail), ["idle-cpu"]);
        assert_eq!(with(&out, Status::Skip), ["threads-released"]);
    }

    #[test]
    fn no_answer_at_all_is_one_failure() {
        let out = run(
            setup(Dialect::Framed, Expect::Echo, true),
            &[Check::OneMessage],
        );
        assert_eq!(with(&out, Status::Fail), ["one-message"]);
        assert_eq!(with(&out, Status::Skip).len(), Check::ALL.len() - 1);
    }

    #[test]
    fn abandon_skips_the_rest_with_the_reason() {
        let mut s = Schedule::with_checks(setup(Dialect::Framed, Expect::Echo, true), &Check::ALL);
        let first = s.next().unwrap();
        s.record(first, Status::Pass, "ok");
        let second = s.next().unwrap();
        s.record(second, Status::Fail, "the server exited");
        s.abandon("time limit of 1s reached");
        let out = s.finish();
        assert_eq!(out.len(), Check::ALL.len());
        assert!(out[2..]
            .iter()
            .all(|o| o.status == Status::Skip && o.reason == "time limit of 1s reached"));
    }

    #[test]
    fn a_subset_runs_without_its_missing_prerequisites() {
        let mut s = Schedule::with_checks(
            setup(Dialect::Framed, Expect::Echo, true),
            &[Check::SlowReader, Check::OneMessage, Check::SlowReader],
        );
        assert_eq!(s.next(), Some(Check::OneMessage));
        s.record(Check::OneMessage, Status::Pass, "ok");
        assert_eq!(s.next(), Some(Check::SlowReader));
        s.record(Check::SlowReader, Status::Pass, "ok");
        assert_eq!(s.next(), None);
        assert_eq!(s.finish().len(), 2);
    }

    #[test]
    fn every_check_names_a_section_of_the_notes() {
        let sections = [
            "Envío de datos con JSON",
            "Envío de datos con pickle",
            "Envío de muchos datos",
            "Servidor con manejo de múltiples clientes en forma concurrente",
        ];
        for c in Check::ALL {
            assert!(sections.contains(&c.notes_section()), "{c}");
            assert!(!c.purpose().is_empty());
        }
    }
}
