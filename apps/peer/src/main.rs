//! `trama-peer`: the notes' "Interacción entre clientes P2P", as one program
//! for every peer.
//!
//! Each peer listens and dials; start them in any order. In the default mode
//! peers greet each other (name and protocol version), relay every line to
//! the whole mesh exactly once, and tell newcomers where the others are.
//! `--raw` speaks the notes' own dialect instead: no greeting, raw text,
//! each side dials the other and keeps both connections.

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use trama_backend::mesh::{self, Mesh, Out};
use trama_cli::{parse_duration, QuietExit};
use trama_protocol::FrameConfig;
use trama_transport::{LinkEvent, LinkId, PeerConfig, PeerNode, PeerTls};

#[derive(Parser)]
#[command(
    name = "trama-peer",
    version,
    about = "A peer that is server and client at once"
)]
struct Cli {
    /// This peer's name (not used with --raw).
    #[arg(short, long, default_value = "peer")]
    name: String,
    /// Where to accept other peers.
    #[arg(short, long, default_value = trama_cli::ports::PEER)]
    listen: String,
    /// A peer to dial (repeat for several). Dials are retried until the peer is there.
    #[arg(short, long = "peer")]
    peers: Vec<String>,
    /// The notes' unframed dialect: no greeting, raw text; lines go out on the link we dialed.
    #[arg(short = 'r', long = "raw", alias = "compat", short_alias = 'c')]
    compat: bool,
    /// After the input ends, keep printing until nothing arrived for this long.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    wait: Duration,
    /// Longest wait between dial attempts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    max_backoff: Duration,
    /// The key handshake on every link, before the greeting.
    #[command(flatten)]
    auth: trama_cli::AuthArgs,
    /// TLS on every link: our certificate for the links we accept...
    #[command(flatten)]
    tls_server: trama_cli::TlsServerArgs,
    /// ...and the authorities we trust for the peers we dial (both, or neither).
    #[command(flatten)]
    tls_client: trama_cli::TlsClientArgs,
    #[command(flatten)]
    keepalive: trama_cli::KeepaliveArgs,
}

/// A peer is the TLS server of the links it accepts and the client of the
/// ones it dials: it needs its certificate and a CA, or neither.
fn peer_tls(cli: &Cli) -> Result<Option<PeerTls>, String> {
    match (cli.tls_server.config()?, cli.tls_client.config()?) {
        (Some(acceptor), Some(connector)) => Ok(Some(PeerTls::new(acceptor, connector))),
        (None, None) => Ok(None),
        _ => Err("TLS needs --tls-cert and --tls-key (for the links we accept) and --tls-ca (for the peers we dial)".into()),
    }
}

/// Lines held while no link can take them.
const HELD_MAX: usize = 64;

fn main() -> ExitCode {
    let cli: Cli = trama_cli::generate::parse("trama-peer");
    trama_cli::init_logging("warn");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => trama_cli::exit::fail("trama-peer", e),
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    if !cli.compat {
        mesh::valid_peer_name(&cli.name).map_err(|e| format!("--name: {e}"))?;
    }
    let frame = if cli.compat {
        FrameConfig::unframed()
    } else {
        FrameConfig::builder()
            .max_frame_len(mesh::MAX_FRAME)
            .build()?
    };
    let node = Arc::new(PeerNode::start(
        PeerConfig::default()
            .with_listen(Some(cli.listen.clone()))
            .with_frame(frame)
            .with_auth(cli.auth.config()?)
            .with_keepalive(cli.keepalive.keepalive.0)
            .with_tls(peer_tls(&cli)?)
            .with_backoff(trama_protocol::Backoff::default().with_max(cli.max_backoff)),
    )?);
    let local = node
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| cli.listen.clone());
    if let Err(e) = ctrlc::set_handler(|| {
        // A signal from outside (SIGTERM, SIGHUP) may come while the editor
        // has the terminal raw: give it back as it was found.
        trama_cli::console::restore_terminal();
        std::process::exit(0)
    }) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    let state = Arc::new(Mutex::new(if cli.compat {
        State::Compat(Compat::default())
    } else {
        // Number lines from the clock, so a restarted peer never reuses the
        // sequence numbers its earlier life already used.
        let first_seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        State::Mesh(
            Box::new(
                Mesh::new(cli.name.clone(), Some(local.clone()))
                    .with_first_seq(first_seq)
                    // Another number each run, so peers see a restart.
                    .with_session(
                        (first_seq ^ u64::from(std::process::id()).rotate_left(40)).max(1),
                    ),
            ),
            VecDeque::new(),
        )
    }));
    let ctx = Ctx {
        state: state.clone(),
        dialed: Arc::new(Mutex::new(HashSet::new())),
        once: Arc::new(Mutex::new(Once::default())),
        failing: Arc::new(Mutex::new(HashMap::new())),
    };
    for addr in &cli.peers {
        // A mesh peer refuses a link to itself; dialing it again and again
        // would only print refusals.
        if !cli.compat && *addr == local {
            trama_cli::say!("* --peer {addr} is this peer's own address; not dialed");
            continue;
        }
        dial(&node, &ctx, addr);
    }

    let (quiet, input_done) = QuietExit::new(cli.wait);
    let events = {
        let (node, ctx) = (node.clone(), ctx.clone());
        std::thread::spawn(move || event_loop(&node, &ctx, quiet))
    };
    // Said once every thread of an idle peer runs, so whoever waits for this
    // line (tests, scripts) sees the peer as it will stay.
    eprintln!("listening on {local}");
    // Typed lines; what arrives meanwhile prints above the one being typed.
    let mut console = trama_cli::console::Console::new();
    while let Some(line) = console.next_line() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut state = state.lock().map_err(|_| "state poisoned")?;
        match &mut *state {
            State::Mesh(m, _) if line.trim() == "/peers" => print_peers(m),
            State::Mesh(m, held) => say_or_hold(&node, &ctx, m, held, line),
            State::Compat(c) => c.send_or_hold(&node, line.into_bytes()),
        }
    }
    input_done.store(true, Ordering::SeqCst);
    let _ = events.join();
    // Lines still held (no peer ever connected) are lost when the peer ends:
    // say so, and exit non-zero.
    let held = match &*state.lock().map_err(|_| "state poisoned")? {
        State::Mesh(_, held) => held.len(),
        State::Compat(c) => c.held.len(),
    };
    if held > 0 {
        let lines = if held == 1 { "line" } else { "lines" };
        return Err(format!("{held} typed {lines} never sent: no peer was connected").into());
    }
    Ok(())
}

enum State {
    /// The mesh rules, and lines typed while no peer was connected.
    Mesh(Box<Mesh>, VecDeque<String>),
    Compat(Compat),
}

/// Say a typed line to the mesh, or hold it while no peer is connected.
fn say_or_hold(
    node: &PeerNode,
    ctx: &Ctx,
    m: &mut Mesh,
    held: &mut VecDeque<String>,
    line: String,
) {
    if !m.peers().is_empty() {
        let outs = m.say(&line);
        apply(node, ctx, m, outs);
        return;
    }
    if held.len() >= HELD_MAX {
        trama_cli::say!("* no peer connected and {HELD_MAX} lines already wait; line dropped");
        return;
    }
    held.push_back(line);
    trama_cli::say!(
        "* no peer connected yet; the line is held and goes out when one joins ({} waiting)",
        held.len()
    );
}

/// The notes' dialect: lines go out on the link we dialed; anything that
/// arrives on any link is printed.
#[derive(Default)]
struct Compat {
    dialed: Option<LinkId>,
    held: VecDeque<Vec<u8>>,
}

impl Compat {
    fn send_or_hold(&mut self, node: &PeerNode, line: Vec<u8>) {
        if let Some(link) = self.dialed {
            if node.send(link, &line).is_ok() {
                return;
            }
        }
        if self.held.len() >= HELD_MAX {
            trama_cli::say!(
                "* the other peer is not connected and {HELD_MAX} lines already wait; line dropped"
            );
            return;
        }
        self.held.push_back(line);
        trama_cli::say!(
            "* the other peer is not connected yet; the line is held ({} waiting)",
            self.held.len()
        );
    }

    fn link_up(&mut self, node: &PeerNode, link: LinkId) {
        self.dialed = Some(link);
        while let Some(line) = self.held.pop_front() {
            if node.send(link, &line).is_err() {
                self.held.push_front(line);
                return;
            }
        }
    }
}

/// Dial `addr` once, for the mesh (an address it learned, or a peer that
/// left): one thread while it connects and, if it does, while its link
/// lasts. The mesh asks for at most [`mesh::MAX_DIALING`] at once and is
/// told when each ends ([`Mesh::dial_failed`]), so their threads are bounded
/// and an address that never answers is forgotten.
fn dial_once(node: &PeerNode, ctx: &Ctx, m: &mut Mesh, addr: &str) -> Vec<Out> {
    let fresh = ctx
        .dialed
        .lock()
        .map(|d| !d.contains(addr))
        .unwrap_or(false);
    let Ok(mut once) = ctx.once.lock() else {
        return Vec::new();
    };
    if !fresh || once.addrs.contains(addr) {
        // Dialed already (by --peer, or once and not yet ended): nothing
        // more to dial; the mesh may use the slot for another address.
        log::debug!("{addr}: already being dialed");
        return m.dial_failed(addr);
    }
    if let Err(e) = node.dial(addr, false) {
        trama_cli::say!("* cannot dial {addr}: {e}");
        return m.dial_failed(addr);
    }
    once.addrs.insert(addr.to_string());
    Vec::new()
}

/// Dials made with [`dial_once`] that have not ended.
#[derive(Default)]
struct Once {
    /// Their addresses.
    addrs: HashSet<String>,
    /// The links they made, and the address each was for.
    links: HashMap<LinkId, String>,
}

/// Dial `addr` for as long as the peer there is not reachable some other way:
/// when two peers dial each other, the mesh keeps one of the two links, and
/// the dial whose link was dropped must not redial while the other stands.
/// Nor does it redial an address the mesh refused or was refused by.
fn dial(node: &PeerNode, ctx: &Ctx, addr: &str) {
    let fresh = ctx
        .dialed
        .lock()
        .map(|mut d| d.insert(addr.to_string()))
        .unwrap_or(false);
    if !fresh {
        return;
    }
    let (state, target) = (ctx.state.clone(), addr.to_string());
    let wanted = move || match state.lock().as_deref() {
        Ok(State::Mesh(m, _)) => {
            !m.refused(&target)
                && !m
                    .peers()
                    .iter()
                    .any(|p| p.listen.as_deref() == Some(target.as_str()))
        }
        _ => true,
    };
    if let Err(e) = node.dial_while(addr, wanted) {
        trama_cli::say!("* cannot dial {addr}: {e}");
    }
}

/// What the dialing and event code share.
#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<State>>,
    /// Addresses given with --peer, dialed for as long as the peer runs.
    dialed: Arc<Mutex<HashSet<String>>>,
    once: Arc<Mutex<Once>>,
    /// `--peer` addresses whose last dial failed, with the reason said.
    failing: Arc<Mutex<HashMap<String, String>>>,
}

/// A dial made by [`dial_once`] ended (it failed, or its link went down):
/// forget it and tell the mesh.
fn once_ended(ctx: &Ctx, m: &mut Mesh, addr: &str) -> Vec<Out> {
    let mine = ctx
        .once
        .lock()
        .map(|mut o| o.addrs.remove(addr))
        .unwrap_or(false);
    if mine {
        m.dial_failed(addr)
    } else {
        Vec::new()
    }
}

fn event_loop(node: &PeerNode, ctx: &Ctx, mut quiet: QuietExit) {
    loop {
        if quiet.should_exit() {
            return;
        }
        let Ok(event) = node.events().recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        // A failed redial prints nothing and recurs every backoff: it must
        // not keep a peer whose input ended from going quiet.
        if !matches!(event, LinkEvent::DialFailed { .. }) {
            quiet.activity();
        }
        let Ok(mut state) = ctx.state.lock() else {
            return;
        };
        match &mut *state {
            State::Compat(c) => match event {
                LinkEvent::Up {
                    link,
                    dialed: true,
                    addr,
                } => {
                    trama_cli::say!("* connected to {addr}");
                    forget_failure(ctx, &addr);
                    c.link_up(node, link);
                }
                LinkEvent::Up { addr, .. } => trama_cli::say!("* {addr} connected to us"),
                LinkEvent::Message { payload, .. } => {
                    trama_cli::say!("{}", String::from_utf8_lossy(&payload))
                }
                LinkEvent::Down { link, reason } => {
                    if c.dialed == Some(link) {
                        c.dialed = None;
                    }
                    trama_cli::say!("* a link closed: {reason}");
                }
                LinkEvent::DialFailed {
                    addr,
                    reason,
                    retry_in,
                } => say_dial_failed(ctx, &addr, &reason, retry_in),
            },
            State::Mesh(m, held) => {
                let outs = match event {
                    LinkEvent::Up { link, dialed, addr } => {
                        if dialed {
                            forget_failure(ctx, &addr);
                            if let Ok(mut once) = ctx.once.lock() {
                                if once.addrs.contains(&addr) {
                                    once.links.insert(link, addr);
                                }
                            }
                        }
                        m.on_link_up(link, dialed)
                    }
                    LinkEvent::Message { link, payload } => m.on_frame(link, &payload),
                    LinkEvent::Down { link, reason } => {
                        let mut outs = m.on_link_down(link, &reason);
                        let addr = ctx.once.lock().ok().and_then(|mut o| o.links.remove(&link));
                        if let Some(addr) = addr {
                            outs.extend(once_ended(ctx, m, &addr));
                        }
                        outs
                    }
                    LinkEvent::DialFailed {
                        addr,
                        reason,
                        retry_in,
                    } => {
                        say_dial_failed(ctx, &addr, &reason, retry_in);
                        once_ended(ctx, m, &addr)
                    }
                };
                apply(node, ctx, m, outs);
                // A peer is here now: the held lines go out, in order.
                if !held.is_empty() && !m.peers().is_empty() {
                    for line in std::mem::take(held) {
                        let outs = m.say(&line);
                        apply(node, ctx, m, outs);
                    }
                }
            }
        }
    }
}

/// A dial to a `--peer` address failed and will be tried again: said the
/// first time and whenever the reason changes (each retry is logged), so a
/// peer that is never reached is never silent, nor repeated every backoff.
/// A one-off dial (an address learned from the mesh) is only logged: the
/// mesh forgets an address that does not answer.
fn say_dial_failed(ctx: &Ctx, addr: &str, reason: &str, retry_in: Option<Duration>) {
    let Some(wait) = retry_in else {
        log::info!("{addr}: dial failed: {reason}");
        return;
    };
    log::info!("{addr}: dial failed: {reason}; retrying in {wait:?}");
    let new = ctx
        .failing
        .lock()
        .map(|mut f| f.insert(addr.to_string(), reason.to_string()).as_deref() != Some(reason))
        .unwrap_or(true);
    if new && reason.contains(addr) {
        trama_cli::say!("* {reason}; trying again until it answers");
    } else if new {
        trama_cli::say!("* cannot reach {addr}: {reason}; trying again until it answers");
    }
}

/// A dial reached `addr`: a later failure is said again.
fn forget_failure(ctx: &Ctx, addr: &str) {
    if let Ok(mut f) = ctx.failing.lock() {
        f.remove(addr);
    }
}

/// Carry out what the mesh rules asked for.
fn apply(node: &PeerNode, ctx: &Ctx, m: &mut Mesh, outs: Vec<Out>) {
    let mut outs = VecDeque::from(outs);
    while let Some(out) = outs.pop_front() {
        match out {
            Out::Send { link, wire } => match wire.encode() {
                Ok(bytes) => {
                    if let Err(e) = node.send(link, &bytes) {
                        log::debug!("send on {link} failed: {e}");
                    }
                }
                Err(e) => log::warn!("cannot encode: {e}"),
            },
            Out::Close { link, reason } => {
                log::info!("closing {link}: {reason}");
                node.close(link);
            }
            Out::Deliver { from, text } => trama_cli::say!("{from}: {text}"),
            Out::Dial { addr } => {
                outs.extend(dial_once(node, ctx, m, &addr));
            }
            Out::Notice(text) => trama_cli::say!("* {text}"),
            Out::Warn(text) => log::warn!("{text}"),
        }
    }
}

fn print_peers(mesh: &Mesh) {
    let peers = mesh.peers();
    if peers.is_empty() {
        trama_cli::say!("* no peers connected");
        return;
    }
    for p in peers {
        trama_cli::say!(
            "* {} ({})",
            p.name,
            p.listen.as_deref().unwrap_or("does not accept links")
        );
    }
}
