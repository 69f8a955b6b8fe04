//! Chat fan-out load: many clients in one room, each sending a line at a
//! fixed interval, all reading. Reports lost lines and delivery latency.
//!
//! ```text
//! trama-chat serve --addr 127.0.0.1:0          # note the printed address
//! cargo run --release -p trama-chat --example fanout -- \
//!     --addr 127.0.0.1:PORT --clients 500 --interval 5 --duration 60
//! ```
//!
//! Every client sends `c<index> <seq> <micros>` where `micros` is the send
//! time on a clock shared by all clients of this process; every other client
//! must receive it as `NAME: c<index> <seq> <micros>`. Lines are counted per
//! receiver, so a lost or duplicated line anywhere shows up. Each client runs
//! the transport's blocking `Client` (one listener thread each), which is
//! plenty at this message rate.
//!
//! With `--hold`, it only connects `--clients` clients, asks each `/who`,
//! and counts how many answered: the "how many chat clients does one server
//! hold" figure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trama_transport::{Client, ClientConfig, Error};

struct Args {
    addr: String,
    clients: usize,
    interval: f64,
    duration: f64,
    hold: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:8080".into(),
        clients: 500,
        interval: 5.0,
        duration: 60.0,
        hold: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--hold" {
            a.hold = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--addr" => a.addr = value.clone(),
            "--clients" => a.clients = value.parse().map_err(bad)?,
            "--interval" => a.interval = value.parse().map_err(|_| format!("bad {flag}"))?,
            "--duration" => a.duration = value.parse().map_err(|_| format!("bad {flag}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[derive(Default)]
struct Tally {
    received: u64,
    /// (sender, seq) -> times seen, to find duplicates.
    seen: HashMap<(u32, u32), u32>,
    latencies_us: Vec<u64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    trama_cli::raise_open_file_limit();
    let config = ClientConfig::default()
        .with_connect_timeout(Duration::from_secs(20))
        .with_inbox(4096);
    if args.hold {
        return hold(&args.addr, args.clients);
    }
    let t_connect = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Arc::new(Client::connect(&args.addr, config.clone())?));
    }
    let connect_ms = t_connect.elapsed().as_millis();

    // Each client's welcome line tells us it is in the room.
    for c in &clients {
        c.recv_timeout(Duration::from_secs(30))?;
    }
    let epoch = Instant::now();
    let tallies: Vec<Arc<Mutex<Tally>>> = (0..clients.len())
        .map(|_| Arc::new(Mutex::new(Tally::default())))
        .collect();
    let stop_at = Arc::new(AtomicU64::new(u64::MAX));
    let mut readers = Vec::new();
    for (c, tally) in clients.iter().zip(&tallies) {
        let (c, tally, stop_at) = (c.clone(), tally.clone(), stop_at.clone());
        readers.push(std::thread::spawn(move || {
            read_lines(&c, &tally, epoch, &stop_at)
        }));
    }

    // One scheduler thread sends every client's lines, staggered evenly.
    let n = clients.len();
    let period = Duration::from_secs_f64(args.interval);
    let rounds = (args.duration / args.interval).floor().max(1.0) as u32;
    let mut sent = 0u64;
    for round in 0..rounds {
        for (i, c) in clients.iter().enumerate() {
            let due = period * round + period.mul_f64(i as f64 / n as f64);
            if let Some(wait) = due.checked_sub(epoch.elapsed()) {
                std::thread::sleep(wait);
            }
            let now_us = epoch.elapsed().as_micros();
            c.send(format!("c{i} {round} {now_us}").as_bytes())?;
            sent += 1;
        }
    }
    // Let the last lines arrive: stop when nothing new came for 2 s.
    let expected = sent * (n as u64 - 1);
    let mut last_total = 0;
    let mut quiet_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let total: u64 = tallies
            .iter()
            .map(|t| t.lock().map(|t| t.received).unwrap_or(0))
            .sum();
        if total != last_total {
            last_total = total;
            quiet_since = Instant::now();
        }
        if total >= expected || quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    stop_at.store(0, Ordering::SeqCst);
    for r in readers {
        let _ = r.join();
    }
    let mut all = Vec::new();
    let (mut received, mut dups) = (0u64, 0u64);
    for t in &tallies {
        let t = t.lock().map_err(|_| "tally poisoned")?;
        received += t.received;
        dups += t
            .seen
            .values()
            .filter(|&&k| k > 1)
            .map(|&k| u64::from(k - 1))
            .sum::<u64>();
        all.extend_from_slice(&t.latencies_us);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "RESULT mode=fanout clients={n} sent={sent} expected={expected} received={received} lost={} duplicates={dups} \
         p50_us={} p99_us={} max_us={} connect_ms={connect_ms}",
        expected.saturating_sub(received - dups),
        pct(0.5),
        pct(0.99),
        all.last().copied().unwrap_or(0),
    );
    Ok(())
}

fn read_lines(c: &Client, tally: &Mutex<Tally>, epoch: Instant, stop_at: &AtomicU64) {
    loop {
        if stop_at.load(Ordering::SeqCst) == 0 {
            return;
        }
        let line = match c.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => l,
            Err(Error::Timeout(_)) => continue,
            Err(_) => return,
        };
        let now_us = epoch.elapsed().as_micros() as u64;
        let text = String::from_utf8_lossy(&line);
        // "userN: c<i> <seq> <micros>"; notices start with "* ".
        let Some((_, body)) = text.split_once(": c") else {
            continue;
        };
        let mut parts = body.split(' ');
        let (Some(i), Some(seq), Some(sent)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(i), Ok(seq), Ok(sent)) =
            (i.parse::<u32>(), seq.parse::<u32>(), sent.parse::<u64>())
        else {
            continue;
        };
        if let Ok(mut t) = tally.lock() {
            t.received += 1;
            *t.seen.entry((i, seq)).or_default() += 1;
            t.latencies_us.push(now_us.saturating_sub(sent));
        }
    }
}

/// Connect `n` plain sockets (one file descriptor and no thread each), ask
/// each `/who`, and count the answers.
fn hold(addr: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use trama_protocol::{FrameConfig, FrameReader, FrameWriter};
    let t0 = Instant::now();
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = trama_transport::connect(addr, Duration::from_secs(20))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        socks.push(s);
    }
    let connect_ms = t0.elapsed().as_millis();
    let t1 = Instant::now();
    for s in &socks {
        FrameWriter::new(s, FrameConfig::default()).write_frame(b"/who")?;
    }
    let mut answered = 0;
    for s in &socks {
        let mut r = FrameReader::new(s, FrameConfig::default());
        // Skip the welcome and any join notices until the /who answer.
        while let Ok(Some(line)) = r.read_frame() {
            if line.starts_with(b"* here (") {
                answered += 1;
                break;
            }
        }
    }
    println!(
        "RESULT mode=chat-hold clients={n} answered={answered} connect_ms={connect_ms} answer_all_ms={}",
        t1.elapsed().as_millis()
    );
    Ok(())
}
