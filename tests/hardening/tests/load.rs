//! A chat room under a steady load: N clients each say a numbered line at a
//! fixed rate for a while, and every client must receive every other
//! client's lines, in order, none missing, none twice. Afterwards everyone
//! leaves, and the server's memory, threads and open files must come back to
//! where they were before the first client came.
//!
//! The size is set by environment variables so CI runs a modest load and a
//! long run can be made by hand (its result is in `docs/RELIABILITY.md`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAMA_LOAD_CLIENTS` | 100 | clients in the room |
//! | `TRAMA_LOAD_SECS` | 10 | how long they talk |
//! | `TRAMA_LOAD_RATE` | 1 | lines per second per client |
//!
//! The room is filled, talks and empties twice on one server. It is a soak
//! (two rounds of the full time, whatever the machine) with memory
//! thresholds, so it is left out of the plain `cargo test` and run on its own:
//!
//!     cargo test -p trama-hardening --test load -- --ignored --nocapture
//!     TRAMA_LOAD_CLIENTS=500 TRAMA_LOAD_SECS=60 \
//!         cargo test --release -p trama-hardening --test load -- --ignored --nocapture

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use trama_hardening::{
    open_fds, proc_status, rss_kib, serve, wait_at_most, wait_for_count, Framed, DEADLINE,
};
use trama_protocol::{FrameConfig, FrameReader};
use trama_test_support::ServerProcess;

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// What one client received: lines per sender, and the first problem seen.
struct Received {
    lines: u64,
    problem: Option<String>,
}

/// Read `userK: SEQ` lines until `expected` arrived (or something is wrong):
/// each sender's numbers must come as 0, 1, 2... with nothing skipped.
fn read_room(
    mut reader: FrameReader<std::net::TcpStream>,
    names: Arc<HashMap<String, usize>>,
    me: usize,
    expected: u64,
) -> Received {
    let mut next = vec![0u64; names.len()];
    let mut lines = 0;
    while lines < expected {
        let frame = match reader.read_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Received {
                    lines,
                    problem: Some(format!("closed after {lines} lines")),
                }
            }
            Err(e) => {
                return Received {
                    lines,
                    problem: Some(format!("{e} after {lines} lines")),
                }
            }
        };
        let text = String::from_utf8_lossy(&frame);
        let Some((name, seq)) = text.split_once(": ") else {
            continue; // a notice
        };
        let (Some(&from), Ok(seq)) = (names.get(name), seq.parse::<u64>()) else {
            return Received {
                lines,
                problem: Some(format!("unexpected line {text:?}")),
            };
        };
        if from == me || seq != next[from] {
            return Received {
                lines,
                problem: Some(format!("{text:?} when {name}'s next was {}", next[from])),
            };
        }
        next[from] += 1;
        lines += 1;
    }
    Received {
        lines,
        problem: None,
    }
}

/// One round: `clients` join, talk for `secs` at `rate`, all lines are
/// checked, and everyone leaves. Returns the server's peak VmRSS (KiB) and
/// a summary line.
fn round(
    server: &ServerProcess,
    clients: usize,
    secs: u64,
    rate: u64,
    left_before: usize,
) -> (Option<u64>, String) {
    let pid = server.pid();
    let mut writers = Vec::with_capacity(clients);
    let mut readers = Vec::with_capacity(clients);
    let mut names = HashMap::new();
    for i in 0..clients {
        let mut c = Framed::connect(server.addr());
        let welcome = c.recv_until("the welcome", |l| l.starts_with("* welcome, "));
        let name = welcome["* welcome, ".len()..]
            .split(';')
            .next()
            .unwrap()
            .to_string();
        names.insert(name, i);
        let stream = c.stream.try_clone().unwrap();
        // The wait below may be longer than one read timeout.
        stream
            .set_read_timeout(Some(DEADLINE + Duration::from_secs(secs)))
            .unwrap();
        readers.push(FrameReader::new(stream, FrameConfig::default()));
        writers.push(c);
    }
    let names = Arc::new(names);
    let ticks = secs * rate;
    let expected = ticks * (clients as u64 - 1);
    let handles: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(me, reader)| {
            let names = Arc::clone(&names);
            thread::spawn(move || read_room(reader, names, me, expected))
        })
        .collect();

    // Every 1/rate seconds, every client says its next number.
    let start = Instant::now();
    let mut peak = rss_kib(pid);
    let mut late_ticks = 0;
    for t in 0..ticks {
        let due = start + Duration::from_secs_f64(t as f64 / rate as f64);
        match due.checked_duration_since(Instant::now()) {
            Some(wait) => thread::sleep(wait),
            // More than a tenth of a second behind: the test's own sender
            // could not keep the rate.
            None if due.elapsed() > Duration::from_millis(100) => late_ticks += 1,
            None => {}
        }
        for w in &mut writers {
            w.send(t.to_string().as_bytes());
        }
        peak = peak.max(rss_kib(pid));
    }
    let mut problems = Vec::new();
    let mut delivered = 0;
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        delivered += r.lines;
        if let Some(p) = r.problem {
            problems.push(format!("client {i}: {p}"));
        }
    }
    let talked = start.elapsed();
    assert!(
        problems.is_empty(),
        "{} clients saw problems: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    assert_eq!(delivered, expected * clients as u64);

    // Everyone leaves.
    drop(writers);
    wait_for_count(
        server,
        "disconnected: peer closed the connection",
        left_before + clients,
    );
    let summary = format!(
        "{} lines said, {delivered} delivered, none lost; {late_ticks} of {ticks} ticks sent late; \
         talked for {:.1} s",
        ticks * clients as u64,
        talked.as_secs_f64()
    );
    (peak, summary)
}

#[test]
#[ignore = "a 2 x 10 s soak: cargo test -p trama-hardening --test load -- --ignored"]
fn clients_at_a_fixed_rate_lose_no_line_and_memory_returns_to_its_baseline() {
    let clients = env_or("TRAMA_LOAD_CLIENTS", 100) as usize;
    let secs = env_or("TRAMA_LOAD_SECS", 10);
    let rate = env_or("TRAMA_LOAD_RATE", 1).max(1);
    assert!(clients >= 2, "TRAMA_LOAD_CLIENTS must be at least 2");
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    // No join/leave notices: the lines are the whole traffic.
    let server = serve("trama-chat", &["serve", "--notice-limit", "0"]);
    let pid = server.pid();
    let (rss0, fds0, threads0) = (rss_kib(pid), open_fds(pid), proc_status(pid, "Threads"));

    // Two rounds on one server: after the first, memory must be back near
    // the baseline (the allocator may keep some pages); after the second,
    // no higher than after the first (nothing accumulates per round).
    let mut ends = Vec::new();
    for r in 0..2 {
        let (peak, summary) = round(&server, clients, secs, rate, r * clients);
        if let Some(fds0) = fds0 {
            wait_at_most("the server's open files", fds0 as u64, || {
                open_fds(pid).map(|n| n as u64)
            });
        }
        assert_eq!(proc_status(pid, "Threads"), threads0, "threads changed");
        let end = rss_kib(pid);
        eprintln!(
            "load round {}: {clients} clients x {rate} line/s x {secs} s: {summary}; \
             server VmRSS {} -> peak {} -> end {} KiB",
            r + 1,
            rss0.unwrap_or(0),
            peak.unwrap_or(0),
            end.unwrap_or(0)
        );
        ends.push(end);
    }
    if let (Some(r0), Some(e1), Some(e2)) = (rss0, ends[0], ends[1]) {
        assert!(
            e1 < r0 + 32 * 1024,
            "VmRSS {r0} KiB before, {e1} KiB after everyone left"
        );
        assert!(
            e2 <= e1 + 2 * 1024,
            "VmRSS {e1} KiB after the first round, {e2} KiB after the second"
        );
    }
}
