//! How fast a line crosses a `trama-peer` mesh, and that it arrives once.
//!
//! Builds N peers in this process, each one a `trama_transport::PeerNode`
//! listening on `127.0.0.1:0` and a `trama_backend::mesh::Mesh`, driven the
//! way the `trama-peer` app drives them: one thread per peer takes link
//! events, hands them to the mesh under a lock, and carries out the
//! returned effects (send, close, deliver, dial, notice); dials are
//! persistent `dial_while` dials that stop while the peer is linked.
//!
//! Topologies: `line` (peer i dials peer i-1) and `random` (peer i dials
//! `--degree` distinct random earlier peers, from a fixed `--seed`). As in
//! the app, peers advertise their listen address and gossip the ones they
//! know, so any topology grows into a full mesh before the measurement;
//! `--no-gossip` advertises no address, and the mesh stays as built (lines
//! then travel hop by hop).
//!
//! Once every link is up, every Hello is done and no duplicate link is left
//! (stable for 200 ms), each peer says `--lines` lines. With `--pacing one`
//! (the default) one line is said at a time, round robin over the peers,
//! the next once the previous one reached everyone: the pure propagation
//! time. With `--pacing burst` every peer says its line of a round at once.
//! For every (line, receiving peer) the time from the moment the line is
//! said (before the sayer's mesh lock is taken, as the app's input thread
//! does) to its delivery (`Out::Deliver`) is recorded.
//!
//! ```text
//! cargo run --release -p trama-peer --example mesh_bench -- --topology line --peers 5
//! cargo run --release -p trama-peer --example mesh_bench -- --topology random --peers 20
//! ```
//!
//! Prints `RESULT topology=... peers=N lines=... deliveries=... expected=...
//! duplicates=... p50_us=... p99_us=... max_us=...` and then extra fields:
//! how many deliveries never came (`missing`), the links kept, the copies
//! the peers recognised and dropped, and the setup time.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use trama_backend::mesh::{self, Mesh, Out};
use trama_protocol::FrameConfig;
use trama_transport::{LinkEvent, PeerConfig, PeerNode};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Topology {
    /// Peer i dials peer i-1.
    Line,
    /// Peer i dials `--degree` distinct random earlier peers.
    Random,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Pacing {
    /// One line at a time; the next once the previous reached everyone.
    One,
    /// Every peer says its line of a round at once.
    Burst,
}

#[derive(Parser)]
#[command(about = "Propagation latency and exactly-once delivery in a trama-peer mesh")]
struct Args {
    #[arg(long, value_enum, default_value = "line")]
    topology: Topology,
    /// Number of peers.
    #[arg(long, default_value_t = 5)]
    peers: usize,
    /// Lines each peer says.
    #[arg(long, default_value_t = 20)]
    lines: usize,
    /// Earlier peers each peer dials, in the random topology.
    #[arg(long, default_value_t = 2)]
    degree: usize,
    /// Seed of the random topology.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Advertise no listen address: no gossip, the mesh stays as built.
    #[arg(long)]
    no_gossip: bool,
    #[arg(long, value_enum, default_value = "one")]
    pacing: Pacing,
}

/// How long to wait for the mesh to form, or for one line or round to arrive.
const PATIENCE: Duration = Duration::from_secs(30);

/// The mesh must look settled for this long before the lines start.
const SETTLED_FOR: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One peer: the node, its mesh, and the deliveries it recorded.
struct Peer {
    node: PeerNode,
    mesh: Mutex<Mesh>,
    /// Addresses this peer has a dial running for (as the app keeps them).
    dialed: Mutex<HashSet<String>>,
    /// `(line id, when it was delivered)`.
    got: Mutex<Vec<(usize, Instant)>>,
}

/// What every peer's thread shares.
struct Bench {
    peers: Vec<Arc<Peer>>,
    /// Deliveries so far, over all peers.
    delivered: AtomicUsize,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The text of line `id`, and back.
fn line_text(id: usize) -> String {
    format!("bench {id}")
}

fn line_id(text: &str) -> Option<usize> {
    text.strip_prefix("bench ")?.parse().ok()
}

/// A small fixed-seed generator (xorshift64*), so runs build the same mesh.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// `(dialer, dialed)` pairs of the topology.
fn edges(args: &Args) -> Vec<(usize, usize)> {
    match args.topology {
        Topology::Line => (1..args.peers).map(|i| (i, i - 1)).collect(),
        Topology::Random => {
            let mut rng = Rng(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut out = Vec::new();
            for i in 1..args.peers {
                let mut picked = HashSet::new();
                while picked.len() < args.degree.min(i) {
                    picked.insert(rng.below(i));
                }
                let mut picked: Vec<usize> = picked.into_iter().collect();
                picked.sort_unstable();
                out.extend(picked.into_iter().map(|j| (i, j)));
            }
            out
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.peers < 2 {
        return Err("--peers must be at least 2".into());
    }
    let frame = FrameConfig::builder()
        .max_frame_len(mesh::MAX_FRAME)
        .build()?;
    let mut peers = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..args.peers {
        let node = PeerNode::start(
            PeerConfig::default()
                .with_listen(Some("127.0.0.1:0".into()))
                .with_frame(frame)
                .with_backoff(
                    trama_protocol::Backoff::default().with_max(Duration::from_millis(250)),
                ),
        )?;
        let addr = node
            .local_addr()
            .ok_or("a peer has no listen address")?
            .to_string();
        let listen = (!args.no_gossip).then(|| addr.clone());
        peers.push(Arc::new(Peer {
            node,
            mesh: Mutex::new(Mesh::new(format!("p{i}"), listen)),
            dialed: Mutex::new(HashSet::new()),
            got: Mutex::new(Vec::new()),
        }));
        addrs.push(addr);
    }
    let bench = Arc::new(Bench {
        peers,
        delivered: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let threads: Vec<JoinHandle<()>> = (0..args.peers)
        .map(|i| {
            let bench = bench.clone();
            std::thread::spawn(move || event_loop(&bench, i))
        })
        .collect();

    // Build the topology and wait for it to settle.
    let setup = Instant::now();
    let edges = edges(args);
    for &(from, to) in &edges {
        dial(&bench, from, &addrs[to]);
    }
    let mut degree = vec![0usize; args.peers];
    for &(a, b) in &edges {
        degree[a] += 1;
        degree[b] += 1;
    }
    let want: Vec<usize> = if args.no_gossip {
        degree
    } else {
        vec![args.peers - 1; args.peers]
    };
    wait_settled(&bench, &want)?;
    let setup_ms = setup.elapsed().as_millis();
    let links: usize = bench
        .peers
        .iter()
        .map(|p| p.node.links().len())
        .sum::<usize>()
        / 2;
    let copies_before: u64 = bench
        .peers
        .iter()
        .map(|p| lock(&p.mesh).stats().duplicates)
        .sum();

    // Say the lines.
    let n = args.peers;
    let total = n * args.lines;
    let mut said_at: Vec<Option<Instant>> = vec![None; total];
    let per_line = n - 1;
    for k in 0..args.lines {
        for i in 0..n {
            let id = k * n + i;
            said_at[id] = Some(say(&bench, i, id));
            if let Pacing::One = args.pacing {
                wait_delivered(&bench, (id + 1) * per_line)?;
            }
        }
        if let Pacing::Burst = args.pacing {
            wait_delivered(&bench, (k + 1) * n * per_line)?;
        }
    }
    // Late copies, if any, would show up as duplicates now.
    std::thread::sleep(Duration::from_millis(200));

    let expected = total * per_line;
    let mut deliveries = 0usize;
    let mut duplicates = 0usize;
    let mut latencies = Vec::with_capacity(expected);
    for (r, peer) in bench.peers.iter().enumerate() {
        let got = lock(&peer.got);
        deliveries += got.len();
        let mut first: HashMap<usize, Instant> = HashMap::new();
        for &(id, at) in got.iter() {
            if id % n == r {
                return Err(format!("p{r} got its own line {id}").into());
            }
            if first.insert(id, at).is_some() {
                duplicates += 1;
            }
        }
        for (id, at) in first {
            let said = said_at
                .get(id)
                .copied()
                .flatten()
                .ok_or("a line nobody said")?;
            latencies.push(at.saturating_duration_since(said));
        }
    }
    let missing = expected.saturating_sub(latencies.len());
    latencies.sort_unstable();
    let copies: u64 = bench
        .peers
        .iter()
        .map(|p| lock(&p.mesh).stats().duplicates)
        .sum::<u64>()
        - copies_before;
    let forwarded: u64 = bench
        .peers
        .iter()
        .map(|p| lock(&p.mesh).stats().forwarded)
        .sum();
    println!(
        "RESULT topology={topology} peers={n} lines={total} deliveries={deliveries} \
         expected={expected} duplicates={duplicates} p50_us={p50} p99_us={p99} max_us={max} \
         missing={missing} gossip={gossip} pacing={pacing} links={links} forwarded={forwarded} \
         copies_dropped={copies} setup_ms={setup_ms}",
        topology = format!("{:?}", args.topology).to_lowercase(),
        p50 = percentile(&latencies, 50.0),
        p99 = percentile(&latencies, 99.0),
        max = latencies.last().map_or(0, Duration::as_micros),
        gossip = if args.no_gossip { "off" } else { "on" },
        pacing = format!("{:?}", args.pacing).to_lowercase(),
    );

    bench.stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    if duplicates > 0 || missing > 0 {
        return Err(format!("{duplicates} duplicate and {missing} missing deliveries").into());
    }
    Ok(())
}

/// Nearest-rank percentile, in microseconds.
fn percentile(sorted: &[Duration], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_micros()
}

/// Peer `i` says line `id`; returns when it was said.
fn say(bench: &Arc<Bench>, i: usize, id: usize) -> Instant {
    let peer = &bench.peers[i];
    let at = Instant::now();
    let mut mesh = lock(&peer.mesh);
    let outs = mesh.say(&line_text(id));
    apply(bench, i, outs);
    drop(mesh);
    at
}

fn wait_delivered(bench: &Bench, count: usize) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    while bench.delivered.load(Ordering::SeqCst) < count {
        if Instant::now() >= deadline {
            return Err(format!(
                "only {} of {count} deliveries after {PATIENCE:?}",
                bench.delivered.load(Ordering::SeqCst)
            ));
        }
        // Sleep, not spin: the peers need both cores. The latency is taken
        // at delivery, so polling late only delays the next line.
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Wait until every peer `i` has `want[i]` linked peers and exactly as many
/// links (no Hello pending, no duplicate link left), for [`SETTLED_FOR`].
fn wait_settled(bench: &Bench, want: &[usize]) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let mut since: Option<Instant> = None;
    loop {
        let settled = bench
            .peers
            .iter()
            .zip(want)
            .all(|(p, &w)| lock(&p.mesh).peers().len() == w && p.node.links().len() == w);
        match (settled, since) {
            (true, Some(t)) if t.elapsed() >= SETTLED_FOR => return Ok(()),
            (true, None) => since = Some(Instant::now()),
            (true, Some(_)) => {}
            (false, _) => since = None,
        }
        if Instant::now() >= deadline {
            let state: Vec<String> = bench
                .peers
                .iter()
                .zip(want)
                .map(|(p, w)| {
                    format!(
                        "{}/{}/{w}",
                        lock(&p.mesh).peers().len(),
                        p.node.links().len()
                    )
                })
                .collect();
            return Err(format!(
                "the mesh did not settle in {PATIENCE:?} (peers/links/wanted: {state:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The app's event loop, for peer `i`.
fn event_loop(bench: &Arc<Bench>, i: usize) {
    let peer = &bench.peers[i];
    while !bench.stop.load(Ordering::SeqCst) {
        let Ok(event) = peer.node.events().recv_timeout(Duration::from_millis(20)) else {
            continue;
        };
        let mut m = lock(&peer.mesh);
        let outs = match event {
            LinkEvent::Up { link, dialed, .. } => m.on_link_up(link, dialed),
            LinkEvent::Message { link, payload } => m.on_frame(link, &payload),
            LinkEvent::Down { link, reason } => m.on_link_down(link, &reason),
            LinkEvent::DialFailed { addr, .. } => m.dial_failed(&addr),
        };
        apply(bench, i, outs);
        drop(m);
    }
}

/// Carry out the mesh's effects for peer `i` (its mesh lock held, as in the app).
fn apply(bench: &Arc<Bench>, i: usize, outs: Vec<Out>) {
    let peer = &bench.peers[i];
    for out in outs {
        match out {
            Out::Send { link, wire } => {
                if let Ok(bytes) = wire.encode() {
                    let _ = peer.node.send(link, &bytes);
                }
            }
            Out::Close { link, .. } => peer.node.close(link),
            Out::Deliver { text, .. } => {
                let at = Instant::now();
                if let Some(id) = line_id(&text) {
                    lock(&peer.got).push((id, at));
                    bench.delivered.fetch_add(1, Ordering::SeqCst);
                }
            }
            Out::Dial { addr } => dial(bench, i, &addr),
            Out::Notice(text) => log::debug!("p{i}: {text}"),
            Out::Warn(text) => log::warn!("p{i}: {text}"),
        }
    }
}

/// The app's dial: persistent, paused while the peer there is linked (or refused).
fn dial(bench: &Arc<Bench>, i: usize, addr: &str) {
    let peer = &bench.peers[i];
    if !lock(&peer.dialed).insert(addr.to_string()) {
        return;
    }
    let (bench2, target) = (Arc::clone(bench), addr.to_string());
    let wanted = move || {
        let m = lock(&bench2.peers[i].mesh);
        !m.refused(&target)
            && !m
                .peers()
                .iter()
                .any(|p| p.listen.as_deref() == Some(target.as_str()))
    };
    if let Err(e) = peer.node.dial_while(addr, wanted) {
        eprintln!("p{i}: cannot dial {addr}: {e}");
    }
}
