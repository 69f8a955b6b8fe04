//! The verdict rules, with no I/O: what the probes saw in, pass or fail
//! (with the numbers) out. The probes in `probes.rs` only gather numbers and
//! bytes; every threshold lives here, where it is unit-tested.

use std::time::Duration;

use crate::plan::Status;

/// A verdict: the status and the reason, in numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Pass or fail (probes never skip; the schedule does).
    pub status: Status,
    /// What was seen.
    pub reason: String,
}

impl Verdict {
    /// A pass, with what was seen.
    pub fn pass(reason: impl Into<String>) -> Verdict {
        Verdict {
            status: Status::Pass,
            reason: reason.into(),
        }
    }

    /// A failure, with what was seen.
    pub fn fail(reason: impl Into<String>) -> Verdict {
        Verdict {
            status: Status::Fail,
            reason: reason.into(),
        }
    }
}

/// How a received answer differs from the expected one, or `None` if it is
/// the same. Large payloads are not printed: the first differing byte is.
pub fn mismatch(expected: &[u8], got: &[u8]) -> Option<String> {
    if expected == got {
        return None;
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.len().min(got.len()));
    if got.len() != expected.len() {
        return Some(format!(
            "got {} bytes instead of {} (first difference at byte {first})",
            got.len(),
            expected.len()
        ));
    }
    Some(format!(
        "got {} bytes that differ from the {} expected, first at byte {first} ({:#04x} instead of {:#04x})",
        got.len(),
        expected.len(),
        got.get(first).copied().unwrap_or(0),
        expected.get(first).copied().unwrap_or(0)
    ))
}

/// `answered` of `total` clients got their answer.
pub fn concurrency(answered: usize, total: usize, first_missing: Option<String>) -> Verdict {
    if answered == total {
        return Verdict::pass(format!(
            "all {total} clients connected at once were answered"
        ));
    }
    let mut reason = format!("{answered} of {total} clients connected at once were answered");
    if let Some(m) = first_missing {
        reason.push_str(&format!("; the first one left waiting: {m}"));
    }
    if answered <= 1 {
        reason.push_str(" (the server seems to serve one client at a time)");
    }
    Verdict::fail(reason)
}

/// Share of one core, in percent, from the CPU milliseconds used over a window.
pub fn cpu_percent(cpu_ms: u64, window_ms: u64) -> f64 {
    if window_ms == 0 {
        return 0.0;
    }
    // Both are small integers (milliseconds of a short window); f64 holds them exactly.
    cpu_ms as f64 * 100.0 / window_ms as f64
}

/// Idle CPU: `percent` of one core over `window_ms` after `clients` left.
pub fn idle_cpu(percent: f64, limit: f64, window_ms: u64, clients: usize) -> Verdict {
    let what = format!(
        "{percent:.1}% of one core over {window_ms} ms while idle after {clients} clients left (limit {limit}%)"
    );
    if percent <= limit {
        Verdict::pass(what)
    } else {
        Verdict::fail(format!(
            "{what}: something spins, most likely a loop that keeps calling recv() after it returned b''"
        ))
    }
}

/// What the server's CPU did right after a client of a check left in the
/// middle of a conversation (`mid-message-disconnect`, `slow-reader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterLeaving {
    /// Measured: `cpu_ms` of CPU over `window_ms`, from two samples of the
    /// server's processes (`idle-cpu`'s sampling).
    Used {
        /// CPU milliseconds the server's processes used in the window.
        cpu_ms: u64,
        /// How long the window was, in milliseconds.
        window_ms: u64,
    },
    /// Not measured, and why (no process to watch, or none readable).
    NotMeasured(String),
}

/// What a check whose client left mid-conversation saw: `seen` (what its
/// conversation showed, already a pass), and then the CPU `after` (a phrase
/// such as "after the client left mid-message"), judged as `idle-cpu` judges:
/// at most `limit` percent of one core. A spin fails the check, with the numbers.
pub fn after_leaving(seen: &str, after: &str, cpu: &AfterLeaving, limit: f64) -> Verdict {
    match *cpu {
        AfterLeaving::NotMeasured(ref why) => Verdict::pass(format!(
            "{seen}; the server's CPU was not measured {after} ({why})"
        )),
        AfterLeaving::Used { cpu_ms, window_ms } => {
            let percent = cpu_percent(cpu_ms, window_ms);
            let used = format!(
                "{after} the server used {cpu_ms} ms of CPU in {window_ms} ms ({percent:.1}% of one core, limit {limit}%)"
            );
            if percent <= limit {
                Verdict::pass(format!("{seen}; {used}"))
            } else {
                Verdict::fail(format!(
                    "{seen}, but {used}: something spins, most likely a loop that keeps calling recv() after it returned b''"
                ))
            }
        }
    }
}

/// How the memory of `memory-bounded` was watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryWatch {
    /// The resident size and the peak the system keeps (Linux): nothing is missed.
    Peak,
    /// The resident size alone, sampled `every` so often (no peak on this
    /// system): an allocation freed between two samples is missed.
    Sampled {
        /// Time between samples.
        every: Duration,
    },
}

/// Memory: the resident size grew by `growth` bytes (at its peak) after a
/// header announcing `announced` bytes.
pub fn memory(growth: u64, limit: u64, announced: u64, watched: MemoryWatch) -> Verdict {
    let grew = match watched {
        MemoryWatch::Peak => format!("peak memory grew by {}", mib(growth)),
        MemoryWatch::Sampled { every } => format!(
            "resident memory, sampled every {} ms (this system keeps no peak), grew by {}",
            every.as_millis(),
            mib(growth)
        ),
    };
    let what = format!(
        "{grew} after a header announcing {announced} bytes (limit {})",
        mib(limit)
    );
    if growth <= limit {
        Verdict::pass(what)
    } else {
        Verdict::fail(format!(
            "{what}: the server allocates what a header says before the bytes arrive"
        ))
    }
}

/// What the thread count did after a second wave of clients: how many
/// came and went, and the count once they had left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondWave {
    /// Clients in the wave.
    pub clients: usize,
    /// Threads after they left.
    pub threads: u64,
}

/// Threads: `before` the battery, `after` its `clients` left, and, if that
/// was more than `slack` above `before`, after a `second` wave of clients.
/// Threads that stay but do not grow with more clients are a bounded pool,
/// not a leak.
pub fn threads(
    before: u64,
    after: u64,
    second: Option<SecondWave>,
    slack: u64,
    clients: usize,
) -> Verdict {
    let what =
        format!("{before} threads before the battery, {after} after its {clients} clients left");
    if after <= before + slack {
        return Verdict::pass(format!("{what} (allowed {})", before + slack));
    }
    match second {
        Some(w) if w.threads <= after + slack => Verdict::pass(format!(
            "{what}, {} after {} more clients came and went: a bounded set of threads, not one per client",
            w.threads, w.clients
        )),
        Some(w) => Verdict::fail(format!(
            "{what}, {} after {} more clients came and went: threads of departed clients never end",
            w.threads, w.clients
        )),
        None => Verdict::fail(format!("{what}: threads of departed clients never end")),
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    // Display only; the precision of f64 is plenty.
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_names_the_first_difference() {
        assert_eq!(mismatch(b"hola", b"hola"), None);
        assert_eq!(
            mismatch(b"hola", b"ho").as_deref(),
            Some("got 2 bytes instead of 4 (first difference at byte 2)")
        );
        assert_eq!(
            mismatch(b"hola", b"hoLa").as_deref(),
            Some("got 4 bytes that differ from the 4 expected, first at byte 2 (0x4c instead of 0x6c)")
        );
        assert_eq!(
            mismatch(b"", b"x").as_deref(),
            Some("got 1 bytes instead of 0 (first difference at byte 0)")
        );
    }

    #[test]
    fn concurrency_needs_every_client() {
        assert_eq!(concurrency(50, 50, None).status, Status::Pass);
        let v = concurrency(1, 50, Some("client 2: no answer within 2s".into()));
        assert_eq!(v.status, Status::Fail);
        assert!(v.reason.starts_with("1 of 50 clients"), "{}", v.reason);
        assert!(v.reason.contains("one client at a time"), "{}", v.reason);
        let v = concurrency(49, 50, None);
        assert_eq!(v.status, Status::Fail);
        assert!(!v.reason.contains("one client at a time"));
    }

    #[test]
    fn cpu_percent_from_milliseconds() {
        assert_eq!(cpu_percent(1000, 1000), 100.0);
        assert_eq!(cpu_percent(500, 2000), 25.0);
        assert_eq!(cpu_percent(0, 2000), 0.0);
        assert_eq!(cpu_percent(100, 0), 0.0);
        // Two cores spinning.
        assert_eq!(cpu_percent(2000, 1000), 200.0);
        // Linux counts 10 ms ticks: 7 ticks over 1038 ms, as ticks * 100 / (100 Hz * 1.038 s).
        assert_eq!(cpu_percent(70, 1038), 7.0 * 100_000.0 / (100.0 * 1038.0));
    }

    #[test]
    fn idle_cpu_limit_is_inclusive() {
        assert_eq!(idle_cpu(0.0, 10.0, 1000, 3).status, Status::Pass);
        assert_eq!(idle_cpu(10.0, 10.0, 1000, 3).status, Status::Pass);
        let v = idle_cpu(97.0, 10.0, 1000, 3);
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.reason.starts_with("97.0% of one core over 1000 ms"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn a_spin_after_a_client_left_fails_with_the_numbers() {
        let seen = "the next client was answered";
        let after = "after the client left mid-message";
        let spin = AfterLeaving::Used {
            cpu_ms: 480,
            window_ms: 500,
        };
        let v = after_leaving(seen, after, &spin, 10.0);
        assert_eq!(v.status, Status::Fail);
        assert_eq!(
            v.reason,
            "the next client was answered, but after the client left mid-message the server used \
             480 ms of CPU in 500 ms (96.0% of one core, limit 10%): something spins, most likely \
             a loop that keeps calling recv() after it returned b''"
        );
        let idle = AfterLeaving::Used {
            cpu_ms: 10,
            window_ms: 1000,
        };
        let v = after_leaving(seen, after, &idle, 10.0);
        assert_eq!(v.status, Status::Pass);
        assert_eq!(
            v.reason,
            "the next client was answered; after the client left mid-message the server used \
             10 ms of CPU in 1000 ms (1.0% of one core, limit 10%)"
        );
        // The limit is inclusive, as idle-cpu's.
        let at = AfterLeaving::Used {
            cpu_ms: 100,
            window_ms: 1000,
        };
        assert_eq!(after_leaving(seen, after, &at, 10.0).status, Status::Pass);
        let over = AfterLeaving::Used {
            cpu_ms: 101,
            window_ms: 1000,
        };
        assert_eq!(after_leaving(seen, after, &over, 10.0).status, Status::Fail);
        // A window of no time used no CPU worth judging.
        let none = AfterLeaving::Used {
            cpu_ms: 0,
            window_ms: 0,
        };
        assert_eq!(after_leaving(seen, after, &none, 0.0).status, Status::Pass);
    }

    #[test]
    fn without_a_process_the_spin_is_said_to_be_unmeasured() {
        let v = after_leaving(
            "the next client was answered",
            "after the client left mid-message",
            &AfterLeaving::NotMeasured("run with --spawn".into()),
            10.0,
        );
        assert_eq!(v.status, Status::Pass);
        assert_eq!(
            v.reason,
            "the next client was answered; the server's CPU was not measured after the client \
             left mid-message (run with --spawn)"
        );
    }

    #[test]
    fn memory_growth_against_the_limit() {
        let limit = 64 << 20;
        let peak = MemoryWatch::Peak;
        assert_eq!(memory(0, limit, u32::MAX.into(), peak).status, Status::Pass);
        assert_eq!(
            memory(limit, limit, u32::MAX.into(), peak).status,
            Status::Pass
        );
        let v = memory(128 << 20, limit, u32::MAX.into(), peak);
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.reason
                .starts_with("peak memory grew by 128.0 MiB after a header announcing 4294967295 bytes (limit 64.0 MiB)"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn memory_without_a_peak_says_it_was_sampled() {
        let every = Duration::from_millis(25);
        let v = memory(1 << 20, 64 << 20, 4, MemoryWatch::Sampled { every });
        assert_eq!(v.status, Status::Pass);
        assert_eq!(
            v.reason,
            "resident memory, sampled every 25 ms (this system keeps no peak), grew by 1.0 MiB \
             after a header announcing 4 bytes (limit 64.0 MiB)"
        );
    }

    #[test]
    fn threads_with_slack() {
        assert_eq!(threads(2, 2, None, 4, 70).status, Status::Pass);
        assert_eq!(threads(2, 6, None, 4, 70).status, Status::Pass);
        assert_eq!(threads(2, 1, None, 4, 70).status, Status::Pass);
        let v = threads(2, 72, None, 4, 70);
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.reason.contains("2 threads before the battery, 72 after"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn threads_that_do_not_grow_again_are_a_pool() {
        let pool = SecondWave {
            clients: 20,
            threads: 66,
        };
        let v = threads(2, 66, Some(pool), 4, 70);
        assert_eq!(v.status, Status::Pass, "{}", v.reason);
        assert!(
            v.reason.contains("66 after 20 more clients"),
            "{}",
            v.reason
        );
        let leak = SecondWave {
            clients: 20,
            threads: 92,
        };
        let v = threads(2, 72, Some(leak), 4, 70);
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.reason.ends_with("threads of departed clients never end"),
            "{}",
            v.reason
        );
    }
}
