//! One run of the battery against one server: the schedule from `plan.rs`
//! driving the probes from `probes.rs`, with a time limit, and watching a
//! spawned server for an exit (a crash is reported on the check during
//! which it happened, and the rest are skipped).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::plan::{Check, Outcome, Schedule, Setup, Status};
use crate::probes::{Options, Probe};
use crate::report::Report;
use crate::sample;
use crate::spawn::Server;
use crate::transcript;

/// How long a failed check waits to see whether the server exited.
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// Run `checks` against `addr` (started by this tool as `server`, if so),
/// stopping at `time_limit` after the start if one is given.
pub fn run(
    target: &str,
    addr: SocketAddr,
    opts: &Options,
    server: Option<&mut Server>,
    checks: &[Check],
    time_limit: Option<Duration>,
) -> Report {
    let started = Instant::now();
    let setup = Setup {
        dialect: opts.dialect,
        expect: opts.expect,
        spawned: server.is_some(),
        measures: sample::measures(),
    };
    let mut schedule = Schedule::with_checks(setup, checks);
    let mut probe = Probe::new(addr, opts, server, setup.measures);
    let mut transcripts = BTreeMap::new();
    while let Some(check) = schedule.next() {
        if let Some(limit) = time_limit {
            if started.elapsed() >= limit {
                schedule.record(
                    check,
                    Status::Skip,
                    format!("time limit of {} s reached", limit.as_secs_f64()),
                );
                schedule.abandon(&format!("time limit of {} s reached", limit.as_secs_f64()));
                break;
            }
        }
        transcript::begin(opts.frame);
        let verdict = probe.run(check);
        transcripts.insert(check, transcript::end());
        // A failure is often the server dying: give it a moment to be seen gone.
        let wait = if verdict.status == Status::Fail {
            EXIT_GRACE
        } else {
            Duration::ZERO
        };
        let exited = probe.server().and_then(|s| {
            s.exited_within(wait)
                .map(|st| (st, s.last_output(), s.killed()))
        });
        if let Some((_, _, true)) = exited {
            let why = format!(
                "time limit of {} s reached during this check; the server was stopped",
                time_limit.unwrap_or_default().as_secs_f64()
            );
            schedule.record(check, Status::Skip, why);
            schedule.abandon("the server was stopped at the time limit");
            break;
        }
        if let Some((status, output, false)) = exited {
            let last = last_line(&output);
            schedule.record(
                check,
                Status::Fail,
                format!("{}; the server exited ({status}){last}", verdict.reason),
            );
            schedule.abandon(&format!("the server exited during {check}"));
            break;
        }
        schedule.record(check, verdict.status, verdict.reason);
    }
    let mut report = Report::new(target, schedule.finish());
    report.transcripts = transcripts;
    report
}

/// `; its last line: ...` for the last non-empty line of `output`, if any.
fn last_line(output: &str) -> String {
    match output.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => {
            let l: String = l.trim().chars().take(200).collect();
            format!("; its last line: {l}")
        }
        None => String::new(),
    }
}

/// Outcomes that say the server could not be checked at all (it did not
/// start): every check skipped with `reason`.
pub fn not_run(checks: &[Check], reason: &str) -> Vec<Outcome> {
    checks
        .iter()
        .map(|c| Outcome {
            check: *c,
            status: Status::Skip,
            reason: reason.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(
            last_line("a\nTraceback...\nMemoryError\n\n"),
            "; its last line: MemoryError"
        );
        assert_eq!(last_line(""), "");
    }

    #[test]
    fn not_run_skips_everything() {
        let out = not_run(&Check::ALL, "did not start");
        assert_eq!(out.len(), Check::ALL.len());
        assert!(out
            .iter()
            .all(|o| o.status == Status::Skip && o.reason == "did not start"));
    }
}
