//! What the shared key and TLS cost, measured in one run on loopback:
//! connection setup (connect until the first echo) for plain, key, TLS and
//! TLS + key; ping-pong round trips; and one-way bulk throughput, TLS
//! against plain. Certificates are made at run time (rcgen).
//!
//!     cargo run --release -p trama-transport --example secure_bench -- [ROUNDS] [BULK_MIB]
//!
//! Defaults: 200 connections per setup mode, 20,000 round trips, 256 MiB.
//! Prints one line per measure; no assertion (an example, not a test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trama_protocol::auth::AuthKey;
use trama_protocol::{Actions, Event};
use trama_transport::{
    AuthConfig, Client, ClientConfig, RunningServer, Server, ServerConfig, TlsAcceptor,
    TlsConnector,
};

struct Pki {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

fn pki() -> Pki {
    let p = trama_test_support::pki::Pki::new().unwrap();
    Pki {
        acceptor: TlsAcceptor::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap(),
        connector: TlsConnector::from_ca_pem(p.ca_pem.as_bytes()).unwrap(),
    }
}

/// Echoes every frame, except that frames starting with `B` are counted
/// (bulk) and `E` answers with the count.
fn service(bulk: Arc<AtomicU64>) -> impl FnMut(Event<'_>, &mut Actions) + Send + 'static {
    move |event: Event<'_>, out: &mut Actions| {
        if let Event::Message { id, payload } = event {
            match payload.first() {
                Some(b'B') => {
                    bulk.fetch_add(payload.len() as u64, Ordering::Relaxed);
                }
                Some(b'E') => {
                    let n = bulk.swap(0, Ordering::Relaxed);
                    out.send(id, n.to_string().as_bytes());
                }
                _ => out.send(id, payload),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Key,
    Tls,
    TlsKey,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Key => "key",
            Mode::Tls => "tls",
            Mode::TlsKey => "tls+key",
        }
    }
    fn tls(self) -> bool {
        matches!(self, Mode::Tls | Mode::TlsKey)
    }
    fn key(self) -> bool {
        matches!(self, Mode::Key | Mode::TlsKey)
    }
}

fn start(mode: Mode, pki: &Pki) -> RunningServer {
    let auth = AuthConfig::new(AuthKey::new(b"a bench key of some length".to_vec()).unwrap());
    let config = ServerConfig::default()
        .with_tls(mode.tls().then(|| pki.acceptor.clone()))
        .with_auth(mode.key().then_some(auth))
        .with_io_threads(1)
        .with_max_outbound(64 << 20);
    Server::bind(config, service(Arc::new(AtomicU64::new(0))))
        .unwrap()
        .spawn()
        .unwrap()
}

fn client(mode: Mode, pki: &Pki, server: &RunningServer) -> Client {
    let auth = AuthConfig::new(AuthKey::new(b"a bench key of some length".to_vec()).unwrap());
    let config = ClientConfig::default()
        .with_tls(mode.tls().then(|| pki.connector.clone()))
        .with_auth(mode.key().then_some(auth));
    Client::connect(&server.local_addr().to_string(), config).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let bulk_mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(256);
    let pki = pki();
    let timeout = Duration::from_secs(10);

    for mode in [Mode::Plain, Mode::Key, Mode::Tls, Mode::TlsKey] {
        let server = start(mode, &pki);
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let c = client(mode, &pki, &server);
            c.request(b"x", timeout).unwrap();
            times.push(t.elapsed());
            c.close();
        }
        times.sort();
        println!(
            "setup {:8} connect..first echo: median {:>7.1} us, p99 {:>7.1} us ({} connections)",
            mode.name(),
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
            times.len()
        );
        server.stop();
    }

    for mode in [Mode::Plain, Mode::Tls] {
        let server = start(mode, &pki);
        let c = client(mode, &pki, &server);
        let msg = [b'p'; 64];
        let mut times = Vec::with_capacity(rounds);
        let all = Instant::now();
        for _ in 0..rounds {
            let t = Instant::now();
            c.request(&msg, timeout).unwrap();
            times.push(t.elapsed());
        }
        let total = all.elapsed();
        times.sort();
        println!(
            "pingpong {:5} 64 B: {:>8.0} round trips/s, median {:>6.1} us, p99 {:>6.1} us ({rounds} rounds)",
            mode.name(),
            rounds as f64 / total.as_secs_f64(),
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
        );
        c.close();
        server.stop();
    }

    for mode in [Mode::Plain, Mode::Tls] {
        let server = start(mode, &pki);
        let c = client(mode, &pki, &server);
        let mut frame = vec![0u8; 64 * 1024];
        frame[0] = b'B';
        let frames = bulk_mib * 16;
        let t = Instant::now();
        for _ in 0..frames {
            c.send(&frame).unwrap();
        }
        c.send(b"E").unwrap();
        let counted: u64 = String::from_utf8(c.recv_timeout(Duration::from_secs(120)).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(counted, (frames * frame.len()) as u64);
        println!(
            "bulk {:5} 64 KiB frames: {:>7.0} MiB/s ({bulk_mib} MiB in {secs:.2} s)",
            mode.name(),
            counted as f64 / (1 << 20) as f64 / secs
        );
        c.close();
        server.stop();
    }
}
