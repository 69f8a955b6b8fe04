//! How much the tap costs: throughput and round-trip latency through
//! `trama_tap::Proxy` (the proxy `trama-tap` runs) against the same
//! traffic sent directly, on loopback.
//!
//! ```text
//! cargo run --release -p trama-tap --example tap_bench -- [GIB] [ROUNDS] [BUFFER_KIB]
//! ```
//!
//! - Throughput: one client writes `GIB` GiB (default 2) in 256 KiB writes to
//!   a server that reads and discards them, then answers with the count;
//!   median of 5 interleaved runs, direct, through the proxy with the observer off (what
//!   `--quiet` runs), and with the observer on (frames decoded, not printed).
//! - Latency: `ROUNDS` (default 20000) round trips of a 64-byte frame to an
//!   echo server, one at a time; p50 and p99, direct and through the proxy.
//! - `BUFFER_KIB`: the proxy's largest read buffer per direction (default
//!   `ProxyConfig`'s, 1024, as in `trama-tap`; each direction starts at 64).
//! - CPU: the seconds the whole process (client, sink and proxy threads)
//!   spent per GiB in each case (Linux, from `/proc/self/stat`). When the
//!   machine's cores are what runs out, direct's CPU per GiB over the
//!   proxy's bounds the throughput ratio.
//! - `TAP_BENCH_OTHER`: a command line starting another proxy to measure in
//!   the same runs, `{port}` its listening port on 127.0.0.1 and `{to}` the
//!   sink, e.g. `socat -b 65536 TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork TCP:{to}`.

// A benchmark driver: failing loudly is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use trama_tap::{Proxy, ProxyConfig, ProxyHandle};

/// A server that reads and discards until the end, then writes the count.
fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = s.write_all(&n.to_be_bytes());
            });
        }
    });
    addr
}

/// A server that echoes each 68-byte frame (4-byte header + 64 bytes).
fn pong() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            s.set_nodelay(true).unwrap();
            thread::spawn(move || {
                let mut f = [0u8; 68];
                while s.read_exact(&mut f).is_ok() {
                    if s.write_all(&f).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn proxy(to: SocketAddr, observe: bool, buffer: Option<usize>) -> (SocketAddr, ProxyHandle) {
    let mut config = ProxyConfig::new("127.0.0.1:0", to.to_string());
    config.observe = observe;
    if let Some(b) = buffer {
        config.buffer = b;
    }
    let p = Proxy::bind(config).unwrap();
    let (addr, handle) = (p.local_addr(), p.handle());
    thread::spawn(move || p.run(|_| {}).unwrap());
    (addr, handle)
}

/// CPU time this process has used (every thread: client, sink, proxy), from
/// `/proc/self/stat`; `None` where there is no such file.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// GiB/s for sending `total` bytes to `addr` (a sink, or a proxy to one),
/// and the CPU seconds the whole process spent per GiB meanwhile.
fn throughput(addr: SocketAddr, total: u64) -> (f64, Option<f64>) {
    let cpu0 = cpu_secs();
    let mut s = TcpStream::connect(addr).unwrap();
    // Frames of 256 KiB - 4: the observer has headers to follow.
    let mut chunk = vec![7u8; 256 * 1024];
    chunk[..4].copy_from_slice(&((256 * 1024 - 4) as u32).to_be_bytes());
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        s.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut n = [0u8; 8];
    s.read_exact(&mut n).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(u64::from_be_bytes(n), sent);
    let gib = sent as f64 / (1u64 << 30) as f64;
    let cpu = cpu0.zip(cpu_secs()).map(|(a, b)| (b - a) / gib);
    (gib / secs, cpu)
}

/// Sorted round-trip times of `rounds` 64-byte frames to `addr`.
fn round_trips(addr: SocketAddr, rounds: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut f = [1u8; 68];
    f[..4].copy_from_slice(&64u32.to_be_bytes());
    let mut back = [0u8; 68];
    // Warm up the path first.
    for _ in 0..1000 {
        s.write_all(&f).unwrap();
        s.read_exact(&mut back).unwrap();
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&f).unwrap();
        s.read_exact(&mut back).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn pct(times: &[Duration], p: f64) -> Duration {
    times[((times.len() as f64 * p) as usize).min(times.len() - 1)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args
        .next()
        .map_or(2.0, |a| a.parse().expect("GIB is a number"));
    let rounds: usize = args
        .next()
        .map_or(20_000, |a| a.parse().expect("ROUNDS is a number"));
    let buffer: Option<usize> = args
        .next()
        .map(|a| a.parse::<usize>().expect("BUFFER_KIB is a number") * 1024);
    let total = (gib * (1u64 << 30) as f64) as u64;

    let s = sink();
    let (quiet, h1) = proxy(s, false, buffer);
    let (watching, h2) = proxy(s, true, buffer);
    let mut targets = vec![s, quiet, watching];
    let mut names = vec![
        "direct                    ",
        "through the proxy (quiet) ",
        "through the proxy (frames)",
    ];
    // Another proxy for comparison, same run (see `other_proxy`).
    let other = std::env::var("TAP_BENCH_OTHER")
        .ok()
        .map(|cmd| other_proxy(&cmd, s));
    if let Some(o) = &other {
        targets.push(o.addr);
        names.push("through the other proxy   ");
    }
    // Interleaved, so a busy moment on the machine hits all cases alike;
    // medians compared, since single runs on a shared machine vary a lot.
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for _ in 0..5 {
        for (i, &addr) in targets.iter().enumerate() {
            let (rate, per_gib) = throughput(addr, total);
            runs[i].push(rate);
            // Another process's CPU is not this process's: not counted.
            if i < 3 {
                cpu[i].extend(per_gib);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let shown = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("throughput, {gib} GiB one way, median of 5 interleaved runs (GiB/s):");
    let mut direct = 0.0;
    for (i, name) in names.iter().enumerate() {
        let runs_shown = shown(&runs[i]);
        let m = median(&mut runs[i]);
        if i == 0 {
            direct = m;
        }
        println!(
            "  {name} {m:6.2}  ({:.2}x direct)  runs: {runs_shown}",
            m / direct
        );
    }
    // What the ratio is bounded by when the machine's cores are the limit:
    // CPU seconds of the whole process (client, sink and proxy) per GiB.
    if cpu[..3].iter().all(|c| !c.is_empty()) {
        println!("CPU seconds per GiB, all threads (median):");
        let mut direct_cpu = 0.0;
        for (i, name) in names.iter().enumerate().take(3) {
            let m = median(&mut cpu[i]);
            if i == 0 {
                direct_cpu = m;
            }
            println!(
                "  {name} {m:6.2}  ({:.2}x direct; on N busy cores the proxy can reach at most {:.2}x of direct's GiB/s)",
                m / direct_cpu,
                direct_cpu / m
            );
        }
    }

    let p = pong();
    let (via, h3) = proxy(p, false, buffer);
    let d = round_trips(p, rounds);
    let v = round_trips(via, rounds);
    println!("round trips of a 64-byte frame, {rounds} one at a time:");
    println!(
        "  direct             p50 {:>7.1?}  p99 {:>7.1?}",
        pct(&d, 0.5),
        pct(&d, 0.99)
    );
    println!(
        "  through the proxy  p50 {:>7.1?}  p99 {:>7.1?}",
        pct(&v, 0.5),
        pct(&v, 0.99)
    );
    println!(
        "  added per round trip (p50): {:.1?}",
        pct(&v, 0.5).saturating_sub(pct(&d, 0.5))
    );
    for h in [h1, h2, h3] {
        h.shutdown();
    }
    drop(other);
}

/// A proxy started from a command line in `TAP_BENCH_OTHER`, with `{port}`
/// replaced by a port to listen on (127.0.0.1) and `{to}` by the sink's
/// address, for example
/// `socat -b 65536 TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork TCP:{to}`.
/// Killed when dropped.
struct Other {
    addr: SocketAddr,
    child: std::process::Child,
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn other_proxy(cmd: &str, to: SocketAddr) -> Other {
    // A port the system just handed out and let go: a benchmark driver's
    // shortcut (tests never guess ports; they read the server's own line).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line = cmd
        .replace("{port}", &port.to_string())
        .replace("{to}", &to.to_string());
    let child = std::process::Command::new("sh")
        .args(["-c", &format!("exec {line}")])
        .spawn()
        .expect("start the other proxy");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Up once a connection goes through to the sink and back (the sink
    // answers an empty stream with a count of 0).
    loop {
        if let Ok(mut c) = TcpStream::connect(addr) {
            c.shutdown(Shutdown::Write).unwrap();
            let mut n = [0u8; 8];
            if c.read_exact(&mut n).is_ok() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the other proxy never came up: {line}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    eprintln!("other proxy: {line}");
    Other { addr, child }
}
