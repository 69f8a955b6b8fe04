//! Round-trip latency of `Client::request` against a bare blocking socket,
//! both talking to the same framed echo server, in interleaved rounds.
//!
//! ```text
//! trama-echo serve --framed --addr 127.0.0.1:7000 &
//! taskset -c 0 cargo run --release -p trama-transport --example client_rtt -- 127.0.0.1:7000
//! ```
//!
//! Each round sends `--count` messages of `--size` bytes one at a time
//! through each contender in turn (a raw socket doing `write_all` of header
//! and payload then two `read_exact`, then `Client::request` with the
//! default config), and prints one line per contender and round with p50,
//! p99 and p99.9 in microseconds; the `RESULT` line has the medians over
//! rounds and the ratio of the client's p50 to the raw socket's (median,
//! lowest and highest over rounds).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use trama_transport::{Client, ClientConfig};

struct Args {
    addr: String,
    size: usize,
    count: usize,
    rounds: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        addr: String::new(),
        size: 64,
        count: 20_000,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or(format!("{name} needs a value"))?
                .parse::<usize>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--size" => a.size = value("--size")?,
            "--count" => a.count = value("--count")?.max(1),
            "--rounds" => a.rounds = value("--rounds")?.max(1),
            _ if a.addr.is_empty() => a.addr = arg,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if a.addr.is_empty() {
        return Err("usage: client_rtt ADDR [--size N] [--count N] [--rounds N]".into());
    }
    Ok(a)
}

/// p50, p99, p99.9 of `samples`, in microseconds.
fn percentiles(samples: &mut [Duration]) -> [f64; 3] {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        samples[i].as_secs_f64() * 1e6
    };
    [at(0.50), at(0.99), at(0.999)]
}

fn raw_round(sock: &mut TcpStream, payload: &[u8], count: usize) -> std::io::Result<Vec<Duration>> {
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    let mut header = [0u8; 4];
    let mut reply = vec![0u8; payload.len()];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        sock.write_all(&frame)?;
        sock.read_exact(&mut header)?;
        sock.read_exact(&mut reply)?;
        times.push(t.elapsed());
    }
    Ok(times)
}

fn client_round(
    client: &Client,
    payload: &[u8],
    count: usize,
) -> trama_transport::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let reply = client.request(payload, Duration::from_secs(10))?;
        times.push(t.elapsed());
        debug_assert_eq!(reply.len(), payload.len());
    }
    Ok(times)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let payload = vec![b'x'; a.size];
    let mut raw = TcpStream::connect(&a.addr)?;
    raw.set_nodelay(true)?;
    let client = Client::connect(&a.addr, ClientConfig::default())?;
    // Warm both paths (connections, caches, the server's threads).
    raw_round(&mut raw, &payload, 1000)?;
    client_round(&client, &payload, 1000)?;
    let (mut raw_p50, mut client_p50, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        let r = percentiles(&mut raw_round(&mut raw, &payload, a.count)?);
        let c = percentiles(&mut client_round(&client, &payload, a.count)?);
        println!(
            "round {round} raw    p50={:.1} p99={:.1} p99.9={:.1}",
            r[0], r[1], r[2]
        );
        println!(
            "round {round} client p50={:.1} p99={:.1} p99.9={:.1}",
            c[0], c[1], c[2]
        );
        raw_p50.push(r[0]);
        client_p50.push(c[0]);
        ratios.push(c[0] / r[0]);
    }
    println!(
        "RESULT size={} count={} rounds={} raw_p50_us={:.1} client_p50_us={:.1} ratio_p50={:.3} ratio_min={:.3} ratio_max={:.3}",
        a.size,
        a.count,
        a.rounds,
        median(raw_p50),
        median(client_p50),
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    Ok(())
}
