//! A TCP proxy that watches frames go by and disturbs them on purpose: the
//! I/O half of the tap.
//!
//! Every connection accepted on the listen address is joined to a new
//! connection to the upstream address, and each direction is pumped by a
//! thread of its own: read a chunk, hand a copy to the direction's
//! [`Observer`] (which never changes the bytes), then carry out the
//! direction's [`FaultSchedule`] steps (with no faults: write the chunk as
//! is). What the observer and the schedule report goes to the caller's
//! callback as [`ProxyEvent`]s; the proxy knows nothing about printing.
//!
//! A thread per direction is the simplest correct design for a debugging
//! proxy: a direction that sleeps (a delay fault) or blocks on a slow reader
//! holds up only itself, exactly as a slow network would. Both sockets have
//! `TCP_NODELAY`, so the proxy adds no Nagle delay of its own.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trama_protocol::auth::Role;
use trama_protocol::FrameConfig;
use trama_transport::{
    Acceptor, AcceptorHandle, AuthConfig, DialOptions, Error, Gate, Result, Stream, TlsConnector,
};

mod flow;

use flow::{Closing, Flow, Forward, Sizing};

use crate::fault::{FaultPlan, FaultSchedule, Step};
use crate::{Direction, Note};

/// A direction's first read buffer (and pipe, when spliced).
const FIRST_BUFFER: usize = 64 * 1024;
/// The default largest one: Linux's default largest pipe, and where larger
/// reads stopped paying on loopback (`apps/tap/examples/tap_bench.rs`).
const MAX_BUFFER: usize = 1024 * 1024;

/// Bytes by which buffers, and separately pipes, have grown past
/// [`FIRST_BUFFER`], over the whole process: growth stops at a budget, so a
/// thousand bulk connections cannot take a GiB each way, nor the pipes use
/// up the user's pipe allowance (`fs.pipe-user-pages-soft`, 64 MiB by
/// default, shared with every other process of the user).
static GROWN_BUFFERS: AtomicUsize = AtomicUsize::new(0);
#[cfg(target_os = "linux")]
static GROWN_PIPES: AtomicUsize = AtomicUsize::new(0);
const BUFFER_BUDGET: usize = 64 * 1024 * 1024;
#[cfg(target_os = "linux")]
const PIPE_BUDGET: usize = 16 * 1024 * 1024;

/// One direction's share of a growth budget, handed back when dropped.
struct Grown {
    pool: &'static AtomicUsize,
    budget: usize,
    held: usize,
}

impl Grown {
    fn new(pool: &'static AtomicUsize, budget: usize) -> Grown {
        Grown {
            pool,
            budget,
            held: 0,
        }
    }

    /// Take `more` bytes of the budget, if there are that many left.
    fn take(&mut self, more: usize) -> bool {
        let before = self.pool.fetch_add(more, Ordering::Relaxed);
        if before + more > self.budget {
            self.pool.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.held += more;
        true
    }

    /// Hand back `less` bytes of what was taken.
    #[cfg(target_os = "linux")]
    fn untake(&mut self, less: usize) {
        let less = less.min(self.held);
        self.pool.fetch_sub(less, Ordering::Relaxed);
        self.held -= less;
    }

    /// Hand back everything taken.
    fn release(&mut self) {
        self.pool.fetch_sub(self.held, Ordering::Relaxed);
        self.held = 0;
    }
}

impl Drop for Grown {
    fn drop(&mut self) {
        self.release();
    }
}

/// Settings of a [`Proxy`].
///
/// Built with [`ProxyConfig::new`] and the `with_*` setters (or by setting
/// the public fields); new settings may come in later versions.
///
/// ```
/// use std::time::Duration;
/// use trama_tap::ProxyConfig;
///
/// let config = ProxyConfig::new("127.0.0.1:0", "127.0.0.1:8080")
///     .with_connect_timeout(Duration::from_secs(1))
///     .with_keepalive(Duration::from_secs(10))
///     .with_show(16);
/// assert_eq!(config.dial.connect_timeout, Duration::from_secs(1));
/// assert_eq!(config.dial.link.keepalive, Some(Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Where to listen. Default `127.0.0.1:0`.
    pub listen: String,
    /// Where to connect for each accepted connection.
    pub upstream: String,
    /// How the proxy connects to the server: the connect timeout (default
    /// 5 s), and the connection options every trama client shares (see
    /// [`DialOptions`]): with [`LinkOptions::tls`](trama_transport::LinkOptions::tls)
    /// the proxy speaks TLS to the server, and shows and disturbs the
    /// decrypted frames; with [`LinkOptions::auth`](trama_transport::LinkOptions::auth)
    /// it runs the shared-key handshake with the server as the client, right
    /// after connecting (inside TLS, when both are on) and before any byte
    /// of the client moves, so the client talks to the proxy with no key and
    /// no TLS: the proxy stands in for it. The keepalive applies to both
    /// sockets of each proxied connection (default 30 s). The backoff is not
    /// used: the proxy dials once per client and refuses the client if that
    /// fails.
    pub dial: DialOptions<TlsConnector>,
    /// The wire format the observer and the frame-level faults follow.
    pub frame: FrameConfig,
    /// Faults per direction (none by default: the proxy is transparent).
    pub faults: FaultPlan,
    /// Follow frames and report them (off: bytes are only forwarded). Default on.
    pub observe: bool,
    /// Payload bytes of each frame kept for the report. Default 64.
    pub show: usize,
    /// Report every chunk's bytes too ([`ProxyEvent::Data`]), for recording. Default off.
    pub data: bool,
    /// Report every write's bytes too ([`ProxyEvent::Sent`]), for a capture. Default off.
    pub sent: bool,
    /// Close a connection after this long without a byte either way. Default off.
    pub idle_timeout: Option<Duration>,
    /// A write to a peer that does not read fails after this long. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Largest read buffer of each direction. Default 1 MiB. A direction
    /// starts with 64 KiB (or this, if smaller) and doubles its buffer each
    /// time a read fills it: messages back and forth stay in 64 KiB, a bulk
    /// stream moves in large reads (much of the proxy's CPU per GiB on
    /// loopback goes to the calls and wake-ups of small ones). A small read
    /// shrinks it back; growth stops at a budget for the whole process; a
    /// direction with faults keeps its first size.
    pub buffer: usize,
    /// Most connections at once; more are closed at once. Default 1,000.
    pub max_connections: usize,
    /// Seed for the jitter of delay faults, so a run can be repeated.
    pub seed: u64,
}

/// `with_*` setters for plain fields: each sets the field and hands the
/// config back, so a config is built in one expression.
macro_rules! with {
    ($($setter:ident: $field:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("The same settings with another [`", stringify!($field), "`](Self::", stringify!($field), ").")]
            pub fn $setter(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

impl ProxyConfig {
    /// A transparent proxy from `listen` to `upstream` in the notes' format.
    pub fn new(listen: impl Into<String>, upstream: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            listen: listen.into(),
            upstream: upstream.into(),
            dial: DialOptions::default(),
            frame: FrameConfig::default(),
            faults: FaultPlan::default(),
            observe: true,
            show: 64,
            data: false,
            sent: false,
            idle_timeout: None,
            write_timeout: Some(Duration::from_secs(30)),
            buffer: MAX_BUFFER,
            max_connections: 1000,
            seed: 1,
        }
    }

    with! {
        with_dial: dial: DialOptions<TlsConnector>,
        with_frame: frame: FrameConfig,
        with_faults: faults: FaultPlan,
        with_observe: observe: bool,
        with_show: show: usize,
        with_data: data: bool,
        with_sent: sent: bool,
        with_idle_timeout: idle_timeout: Option<Duration>,
        with_write_timeout: write_timeout: Option<Duration>,
        with_buffer: buffer: usize,
        with_max_connections: max_connections: usize,
        with_seed: seed: u64,
    }

    /// The same settings with the shared-key handshake toward the server on
    /// (`Some`) or off (`None`); see [`dial`](Self::dial).
    pub fn with_auth(mut self, auth: impl Into<Option<AuthConfig>>) -> Self {
        self.dial.link.auth = auth.into();
        self
    }

    /// The same settings with TLS toward the server on (`Some`) or off
    /// (`None`); see [`dial`](Self::dial).
    pub fn with_tls(mut self, tls: impl Into<Option<TlsConnector>>) -> Self {
        self.dial.link.tls = tls.into();
        self
    }

    /// The same settings with another keepalive on both sockets of each
    /// connection (`None`: leave it to TCP); see
    /// [`LinkOptions::keepalive`](trama_transport::LinkOptions::keepalive).
    pub fn with_keepalive(mut self, keepalive: impl Into<Option<Duration>>) -> Self {
        self.dial.link.keepalive = keepalive.into();
        self
    }

    /// The same settings with another timeout for connecting to the server
    /// (each address it resolves to, then the TLS handshake).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.dial.connect_timeout = timeout;
        self
    }
}

/// How one direction of a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The sender closed its side; the end was passed on.
    Eof,
    /// A fault closed the connection.
    Closed,
    /// A fault reset the connection.
    Reset,
    /// The other direction closed or reset the connection, or the proxy stopped.
    Stopped,
    /// Reading or writing failed.
    Error(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Eof => f.write_str("end of stream"),
            End::Closed => f.write_str("closed by a fault"),
            End::Reset => f.write_str("reset by a fault"),
            End::Stopped => f.write_str("connection ended"),
            End::Error(e) => f.write_str(e),
        }
    }
}

/// What the proxy reports, from its threads, as it happens.
#[derive(Debug)]
pub enum ProxyEvent<'a> {
    /// A client connected and the upstream connection is open.
    Opened {
        /// Connection number, from 1.
        conn: u64,
        /// The client's address.
        client: SocketAddr,
        /// The upstream address connected to.
        server: SocketAddr,
        /// The tap's own address on the client's connection (the one the client connected to).
        accepted_on: SocketAddr,
        /// The tap's own address on its connection to the server.
        dialed_from: SocketAddr,
    },
    /// A client was turned away (upstream unreachable, the TLS or key
    /// handshake with it failed, too many connections).
    Refused {
        /// The client's address.
        client: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The observer saw something (a frame, an oversize header, a truncation).
    Note {
        /// Connection number.
        conn: u64,
        /// Which way.
        dir: Direction,
        /// What.
        note: &'a Note,
    },
    /// A chunk as read (only with [`ProxyConfig::data`]), before it is forwarded.
    Data {
        /// Connection number.
        conn: u64,
        /// Which way.
        dir: Direction,
        /// The bytes, exactly as read from the sender.
        bytes: &'a [u8],
    },
    /// Bytes as written to the receiver (only with [`ProxyConfig::sent`]),
    /// after faults: a chunk a fault split is several of these.
    Sent {
        /// Connection number.
        conn: u64,
        /// Which way.
        dir: Direction,
        /// The bytes, exactly as written.
        bytes: &'a [u8],
    },
    /// A fault fired.
    Fault {
        /// Connection number.
        conn: u64,
        /// Which way.
        dir: Direction,
        /// What it did.
        what: &'a str,
    },
    /// One direction is done.
    Ended {
        /// Connection number.
        conn: u64,
        /// Which way.
        dir: Direction,
        /// Bytes read from the sender in this direction.
        bytes: u64,
        /// How it ended.
        end: End,
        /// The sender reset the connection (the tap passed the reset on).
        reset_seen: bool,
    },
    /// Both directions are done and both sockets closed.
    Closed {
        /// Connection number.
        conn: u64,
    },
}

type Callback = Arc<dyn Fn(&ProxyEvent<'_>) + Send + Sync>;

/// The gates of one connection's two sockets, for ending it from any
/// thread: closing a gate wakes the pump reading that socket.
struct Pair {
    client: Arc<Gate>,
    server: Arc<Gate>,
}

/// Shared by the two pumps of one connection.
struct Conn {
    id: u64,
    /// Set when a fault closed or reset the connection, or the proxy stopped:
    /// the other pump must not pass on an end of its own.
    over: AtomicBool,
    /// Last time a byte moved either way, as ms since `born`.
    last: AtomicU64,
    born: Instant,
    /// Report each write ([`ProxyConfig::sent`]).
    sent: bool,
}

/// Stops a running [`Proxy`] from any thread.
#[derive(Clone)]
pub struct ProxyHandle {
    acceptor: AcceptorHandle,
    active: Arc<Mutex<HashMap<u64, Pair>>>,
}

impl ProxyHandle {
    /// Stop accepting, close every connection's gates (which wakes their
    /// threads and shuts their sockets), and let `run` return once they
    /// have finished.
    pub fn shutdown(&self) {
        self.acceptor.stop();
        if let Ok(active) = self.active.lock() {
            for p in active.values() {
                p.client.close(Shutdown::Both);
                p.server.close(Shutdown::Both);
            }
        }
    }

    /// True once shutdown was asked for.
    pub fn is_shut_down(&self) -> bool {
        self.acceptor.is_stopped()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.active.lock().map_or(0, |a| a.len())
    }
}

/// A bound proxy; [`run`](Proxy::run) serves until shutdown.
///
/// ```no_run
/// use trama_tap::{Proxy, ProxyConfig, ProxyEvent};
///
/// let proxy = Proxy::bind(ProxyConfig::new("127.0.0.1:0", "127.0.0.1:8080"))?;
/// eprintln!("listening on {}", proxy.local_addr());
/// proxy.run(|event| {
///     if let ProxyEvent::Note { conn, dir, note } = event {
///         println!("{conn} {dir} {note:?}");
///     }
/// })?;
/// # Ok::<(), trama_transport::Error>(())
/// ```
pub struct Proxy {
    acceptor: Acceptor,
    config: ProxyConfig,
    handle: ProxyHandle,
}

impl Proxy {
    /// Bind the listener. The upstream is connected to per client, not now.
    pub fn bind(config: ProxyConfig) -> Result<Proxy> {
        // Check the faults against the framing once, not per connection.
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            FaultSchedule::new(config.faults.faults(dir), config.frame, 0)
                .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        }
        let acceptor = Acceptor::bind(&config.listen, 1024)?;
        let handle = ProxyHandle {
            acceptor: acceptor.handle(),
            active: Arc::new(Mutex::new(HashMap::new())),
        };
        Ok(Proxy {
            acceptor,
            config,
            handle,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// A handle to stop it from another thread.
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }

    /// Serve until [`ProxyHandle::shutdown`], calling `on_event` (from the
    /// connections' threads) with everything that happens. Returns after
    /// every connection thread has finished.
    pub fn run<F>(mut self, on_event: F) -> Result<()>
    where
        F: Fn(&ProxyEvent<'_>) + Send + Sync + 'static,
    {
        let on_event: Callback = Arc::new(on_event);
        let config = Arc::new(self.config.clone());
        let next_id = AtomicU64::new(1);
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        while let Some((stream, client)) = self.acceptor.accept() {
            threads.retain(|t| !t.is_finished());
            if self.handle.connections() >= config.max_connections {
                on_event(&ProxyEvent::Refused {
                    client,
                    reason: format!("already {} connections (the limit)", config.max_connections),
                });
                continue;
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let (config, on_event, handle) =
                (config.clone(), on_event.clone(), self.handle.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("trama-proxy-{id}"))
                .spawn(move || connection(id, stream, client, &config, &on_event, &handle));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => log::warn!("{client}: cannot start a thread: {e}"),
            }
        }
        self.handle.shutdown();
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    }
}

/// A connection's two streams and their gates, and the server's address,
/// the tap's address the client reached, the tap's address toward the server.
type Setup = (Arc<Stream>, Arc<Stream>, Pair, [SocketAddr; 3]);

/// One connection: connect upstream, pump both ways, report the end.
fn connection(
    id: u64,
    client: TcpStream,
    client_addr: SocketAddr,
    config: &ProxyConfig,
    on_event: &Callback,
    handle: &ProxyHandle,
) {
    let refuse = |reason: String| {
        on_event(&ProxyEvent::Refused {
            client: client_addr,
            reason,
        })
    };
    let server = match dial(config) {
        Ok(s) => s,
        Err(e) => return refuse(e.to_string()),
    };
    let setup = (|| -> io::Result<Setup> {
        client.set_nodelay(true)?;
        keepalive(&client, config.dial.link.keepalive, "client");
        let mut client = Stream::plain(client);
        let mut server = server;
        for s in [&client, &server] {
            s.set_write_timeout(config.write_timeout)?;
        }
        let pair = Pair {
            client: client.gate()?,
            server: server.gate()?,
        };
        // Reads wake up now and then to check the idle timeout.
        let tick = config
            .idle_timeout
            .map(|d| (d / 4).max(Duration::from_millis(10)));
        pair.client.set_timeout(tick);
        pair.server.set_timeout(tick);
        let addrs = [
            server.peer_addr()?,
            client.local_addr()?,
            server.local_addr()?,
        ];
        Ok((Arc::new(client), Arc::new(server), pair, addrs))
    })();
    let (client, server, pair, [server_addr, accepted_on, dialed_from]) = match setup {
        Ok(s) => s,
        Err(e) => return refuse(format!("cannot set up the sockets: {e}")),
    };
    let (client_gate, server_gate) = (pair.client.clone(), pair.server.clone());
    match handle.active.lock() {
        Ok(mut active) => {
            active.insert(id, pair);
        }
        Err(_) => return refuse("cannot register the connection".into()),
    }
    // Shutdown may have come between accept and registration.
    if handle.is_shut_down() {
        client_gate.close(Shutdown::Both);
        server_gate.close(Shutdown::Both);
    }
    on_event(&ProxyEvent::Opened {
        conn: id,
        client: client_addr,
        server: server_addr,
        accepted_on,
        dialed_from,
    });
    let conn = Arc::new(Conn {
        id,
        over: AtomicBool::new(false),
        last: AtomicU64::new(0),
        born: Instant::now(),
        sent: config.sent,
    });
    let back = {
        let (conn, config, on_event, handle, gate) = (
            conn.clone(),
            config.clone(),
            on_event.clone(),
            handle.clone(),
            server_gate.clone(),
        );
        let (src, dst) = (server.clone(), client.clone());
        std::thread::Builder::new()
            .name(format!("trama-proxy-{id}-s2c"))
            .spawn(move || {
                pump(
                    Direction::ServerToClient,
                    (&src, &gate),
                    &dst,
                    &conn,
                    &config,
                    &on_event,
                    &handle,
                )
            })
    };
    match back {
        Ok(t) => {
            pump(
                Direction::ClientToServer,
                (&client, &client_gate),
                &server,
                &conn,
                config,
                on_event,
                handle,
            );
            let _ = t.join();
        }
        Err(e) => {
            log::warn!("connection {id}: cannot start a thread: {e}");
            client_gate.close(Shutdown::Both);
            server_gate.close(Shutdown::Both);
        }
    }
    if let Ok(mut active) = handle.active.lock() {
        active.remove(&id);
    }
    on_event(&ProxyEvent::Closed { conn: id });
}

/// Connect to the server as [`ProxyConfig::dial`] says: TCP within the
/// connect timeout, the keepalive, TLS (within the connect timeout too),
/// then the key handshake as the client, inside TLS when both are on.
fn dial(config: &ProxyConfig) -> Result<Stream> {
    let options = &config.dial;
    let tcp = trama_transport::connect(&config.upstream, options.connect_timeout)?;
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    keepalive(&tcp, options.link.keepalive, "server");
    let server = match &options.link.tls {
        None => Stream::plain(tcp),
        Some(tls) => {
            Stream::connect_tls(tcp, tls, Some(&config.upstream), options.connect_timeout)?
        }
    };
    if let Some(auth) = &options.link.auth {
        server.authenticate(Role::Dialer, auth)?;
    }
    Ok(server)
}

/// Turn on the keepalive of one socket of a connection; a failure only
/// costs the early notice of a vanished peer, so it is logged, not fatal.
fn keepalive(socket: &TcpStream, dead_after: Option<Duration>, whose: &str) {
    let Some(dead_after) = dead_after else { return };
    if let Err(e) = trama_transport::set_keepalive(socket2::SockRef::from(socket), dead_after) {
        log::warn!("cannot set the keepalive of the {whose}'s socket: {e}");
    }
}

/// Pump one direction from `src` (read through its gate) to `dst` until it
/// ends: move the bytes, report what the direction's [`Flow`] saw, carry
/// out the end it decides.
fn pump(
    dir: Direction,
    (src, gate): (&Stream, &Gate),
    dst: &Stream,
    conn: &Conn,
    config: &ProxyConfig,
    on_event: &Callback,
    handle: &ProxyHandle,
) {
    let id = conn.id;
    let mut flow = Flow::new(dir, id, config);
    let (end, reset_seen) = move_bytes(
        dir,
        (src, gate),
        dst,
        &mut flow,
        conn,
        config,
        on_event,
        handle,
    );
    if let Some(note) = flow.finish() {
        on_event(&ProxyEvent::Note {
            conn: id,
            dir,
            note: &note,
        });
    }
    let (end, closing) = flow::ending(end, conn.over.load(Ordering::SeqCst), reset_seen);
    match closing {
        // Under TLS this says goodbye (close_notify) first.
        Closing::PassEnd => {
            let _ = dst.shutdown(Shutdown::Write);
        }
        Closing::Connection { reset } => close(conn, handle, reset),
        Closing::Nothing => {}
    }
    on_event(&ProxyEvent::Ended {
        conn: id,
        dir,
        bytes: flow.bytes(),
        end,
        reset_seen,
    });
}

/// Move bytes until the direction ends: the end, and whether the sender
/// reset the connection.
#[allow(clippy::too_many_arguments)]
fn move_bytes(
    dir: Direction,
    (src, gate): (&Stream, &Gate),
    dst: &Stream,
    flow: &mut Flow,
    conn: &Conn,
    config: &ProxyConfig,
    on_event: &Callback,
    handle: &ProxyHandle,
) -> (End, bool) {
    // Nothing to look at, record or change, and no TLS: on Linux the kernel
    // moves the bytes (splice through a pipe) without copying them into
    // this process and back, which is most of a proxy's cost. (Under TLS
    // every byte goes through rustls, so there is nothing to splice.)
    #[cfg(target_os = "linux")]
    if let (true, Some(src), Some(dst)) = (
        flow.is_transparent() && !config.data && !config.sent,
        src.as_tcp(),
        dst.as_tcp(),
    ) {
        if let Some((end, bytes, reset_seen)) = splice::pump((src, gate), dst, conn, config, handle)
        {
            flow.spliced(bytes);
            return (end, reset_seen);
        }
    }
    // Elsewhere only the zero-copy path waits at the gate itself; the reads
    // below wait at it through the stream.
    #[cfg(not(target_os = "linux"))]
    let _ = gate;
    let mut sizing = Sizing::new(FIRST_BUFFER, config.buffer, flow.has_faults());
    let mut buf = vec![0u8; sizing.first()];
    let mut grown = Grown::new(&GROWN_BUFFERS, BUFFER_BUDGET);
    loop {
        if let Some(to) = sizing.grow(buf.len()) {
            if grown.take(to - buf.len()) {
                buf.resize(to, 0);
            }
        }
        // The read waits at `gate` (set on the stream), plain or TLS.
        let n = match (&mut &*src).read(&mut buf) {
            Ok(0) => return (End::Eof, false),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                match woke(conn, config, handle) {
                    Some(end) => return (end, false),
                    None => continue,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let reset = e.kind() == io::ErrorKind::ConnectionReset;
                return (End::Error(format!("read failed: {e}")), reset);
            }
        };
        if sizing.read(n, buf.len()) {
            // Back to small messages: give the memory back.
            let mut small = vec![0u8; sizing.first()];
            small[..n].copy_from_slice(&buf[..n]);
            buf = small;
            grown.release();
        }
        conn.last
            .store(conn.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        let chunk = &buf[..n];
        if config.data {
            on_event(&ProxyEvent::Data {
                conn: conn.id,
                dir,
                bytes: chunk,
            });
        }
        let forward = flow.read(chunk);
        for note in flow.notes() {
            on_event(&ProxyEvent::Note {
                conn: conn.id,
                dir,
                note,
            });
        }
        let written = match forward {
            Forward::Hold => continue,
            Forward::Whole => write(dst, chunk, conn, dir, on_event).map(|()| None),
            Forward::Steps => carry_out(flow.steps(), chunk, dst, conn, dir, on_event, handle),
        };
        match written {
            Ok(None) => {}
            Ok(Some(step)) => {
                let step = step.clone();
                if let Some(end) = flow.stopped_by(&step) {
                    return (end, false);
                }
            }
            Err(e) => return (End::Error(format!("write failed: {e}")), false),
        }
    }
}

/// A read woke without bytes: the end, if the connection is over, the
/// proxy stopped or the idle timeout passed ([`flow::idle_end`] decides).
fn woke(conn: &Conn, config: &ProxyConfig, handle: &ProxyHandle) -> Option<End> {
    flow::idle_end(
        conn.over.load(Ordering::SeqCst) || handle.is_shut_down(),
        config.idle_timeout,
        conn.born.elapsed(),
        Duration::from_millis(conn.last.load(Ordering::Relaxed)),
    )
}

/// Zero-copy forwarding for a direction nobody watches (Linux only).
#[cfg(target_os = "linux")]
mod splice {
    use std::io;
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;

    use nix::errno::Errno;
    use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

    use super::{woke, Conn, End, Gate, Grown, FIRST_BUFFER, GROWN_PIPES, PIPE_BUDGET};
    use crate::{ProxyConfig, ProxyHandle};

    /// Move `src` to `dst` through a pipe until the stream ends: the end,
    /// the bytes moved, and whether the sender reset the connection. `None`
    /// if no pipe could be made (the caller copies instead).
    pub(super) fn pump(
        (src, gate): (&TcpStream, &Gate),
        dst: &TcpStream,
        conn: &Conn,
        config: &ProxyConfig,
        handle: &ProxyHandle,
    ) -> Option<(End, u64, bool)> {
        let (pipe_r, pipe_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
        // A pipe holds 64 KiB unless asked for more (up to a system limit,
        // 1 MiB by default); it grows like the copying path's buffer, each
        // time a splice fills it, since more per call means fewer calls.
        let most = config.buffer.max(FIRST_BUFFER);
        let mut room = FIRST_BUFFER;
        let mut grown = Grown::new(&GROWN_PIPES, PIPE_BUDGET);
        // Set after the system refused to grow a pipe: not asked again.
        let mut refused = false;
        // A small chunk after a grown pipe: shrink it once it is empty.
        let mut shrink = false;
        let flags = SpliceFFlags::SPLICE_F_MOVE;
        let mut bytes = 0u64;
        loop {
            // The splice below blocks in the kernel: wait at the gate first,
            // so the idle check and a close can reach this thread.
            if let Err(e) = gate.wait() {
                if e.kind() == io::ErrorKind::TimedOut {
                    match woke(conn, config, handle) {
                        Some(end) => return Some((end, bytes, false)),
                        None => continue,
                    }
                }
                return Some((End::Error(format!("read failed: {e}")), bytes, false));
            }
            let n = match splice(src, None, &pipe_w, None, room, flags) {
                Ok(0) => return Some((End::Eof, bytes, false)),
                Ok(n) if n == room && room < most && !refused => {
                    // Grow it (a pipe may grow with bytes in it; a
                    // refusal keeps the size it has).
                    let to = (room * 2).min(most);
                    if grown.take(to - room) {
                        let want = i32::try_from(to).unwrap_or(i32::MAX);
                        match fcntl(&pipe_w, FcntlArg::F_SETPIPE_SZ(want)) {
                            Ok(got) => room = usize::try_from(got).unwrap_or(room).max(room),
                            Err(_) => {
                                refused = true;
                                grown.untake(to - room);
                            }
                        }
                    }
                    n
                }
                Ok(n) => {
                    shrink = room > FIRST_BUFFER && n <= FIRST_BUFFER / 2;
                    n
                }
                // Not expected once the gate said readable; treated as a tick.
                Err(Errno::EAGAIN) => match woke(conn, config, handle) {
                    Some(end) => return Some((end, bytes, false)),
                    None => continue,
                },
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    let e = io::Error::from(e);
                    let reset = e.kind() == io::ErrorKind::ConnectionReset;
                    return Some((End::Error(format!("read failed: {e}")), bytes, reset));
                }
            };
            conn.last
                .store(conn.born.elapsed().as_millis() as u64, Ordering::Relaxed);
            bytes += n as u64;
            let mut left = n;
            while left > 0 {
                match splice(&pipe_r, None, dst, None, left, flags) {
                    Ok(0) => {
                        return Some((
                            End::Error("write failed: nothing taken".into()),
                            bytes,
                            false,
                        ))
                    }
                    Ok(k) => left -= k,
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        // EAGAIN here is the write timeout.
                        let e = io::Error::from(e);
                        return Some((End::Error(format!("write failed: {e}")), bytes, false));
                    }
                }
            }
            if shrink {
                // Back to small messages, and the pipe is empty: give its
                // pages back (a refusal keeps the size it has).
                shrink = false;
                let want = i32::try_from(FIRST_BUFFER).unwrap_or(i32::MAX);
                if let Ok(got) = fcntl(&pipe_w, FcntlArg::F_SETPIPE_SZ(want)) {
                    room = usize::try_from(got).unwrap_or(FIRST_BUFFER);
                    grown.release();
                }
            }
        }
    }
}

/// Carry out a schedule's steps over `chunk`: the stall, close or reset
/// step that ended them, if one did.
fn carry_out<'s>(
    steps: &'s [Step],
    chunk: &[u8],
    dst: &Stream,
    conn: &Conn,
    dir: Direction,
    on_event: &Callback,
    handle: &ProxyHandle,
) -> io::Result<Option<&'s Step>> {
    for step in steps {
        match step {
            Step::Write(r) => write(dst, &chunk[r.clone()], conn, dir, on_event)?,
            Step::Inject(b) => write(dst, b, conn, dir, on_event)?,
            Step::Sleep(d) => sleep(*d, conn, handle),
            Step::Fired(what) => on_event(&ProxyEvent::Fault {
                conn: conn.id,
                dir,
                what,
            }),
            Step::Stall | Step::Close | Step::Reset => return Ok(Some(step)),
        }
    }
    Ok(None)
}

/// Write `bytes` whole to `dst`, reporting them first when the connection
/// reports writes (a capture is being made).
fn write(
    mut dst: &Stream,
    bytes: &[u8],
    conn: &Conn,
    dir: Direction,
    on_event: &Callback,
) -> io::Result<()> {
    // Reported before the write: once written, the receiver may answer,
    // and a capture must show the question before the answer.
    if conn.sent {
        on_event(&ProxyEvent::Sent {
            conn: conn.id,
            dir,
            bytes,
        });
    }
    dst.write_all(bytes)
}

/// Sleep `d`, waking early if the connection or the proxy ends.
fn sleep(d: Duration, conn: &Conn, handle: &ProxyHandle) {
    let until = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= until || conn.over.load(Ordering::SeqCst) || handle.is_shut_down() {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// End the whole connection: both peers see an end of stream, or with
/// `reset` a reset. The other pump is woken and passes on nothing.
fn close(conn: &Conn, handle: &ProxyHandle, reset: bool) {
    conn.over.store(true, Ordering::SeqCst);
    let pair = handle
        .active
        .lock()
        .ok()
        .and_then(|mut a| a.remove(&conn.id));
    let Some(pair) = pair else { return };
    for gate in [&pair.client, &pair.server] {
        if reset {
            // With a zero linger, closing the last handle sends a reset
            // instead of an orderly end. Only reading is shut (not writing,
            // which would send an end first); the closed gate wakes the
            // other pump, whose handles close as it returns.
            let _ = socket2::SockRef::from(gate.socket()).set_linger(Some(Duration::ZERO));
            gate.close(Shutdown::Read);
        } else {
            gate.close(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// An echo server on a thread; returns its address.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Frame(Direction, u64, Vec<u8>),
        Fault(Direction, String),
        Ended(Direction, End),
        Sent(Direction, Vec<u8>),
        Closed,
    }

    fn start(
        config: ProxyConfig,
    ) -> (
        SocketAddr,
        ProxyHandle,
        mpsc::Receiver<Seen>,
        JoinHandle<()>,
    ) {
        let proxy = Proxy::bind(config).unwrap();
        let (addr, handle) = (proxy.local_addr(), proxy.handle());
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let t = std::thread::spawn(move || {
            proxy
                .run(move |e| {
                    let seen = match e {
                        ProxyEvent::Note {
                            dir,
                            note: Note::Frame(f),
                            ..
                        } => Seen::Frame(*dir, f.len, f.head.clone()),
                        ProxyEvent::Fault { dir, what, .. } => Seen::Fault(*dir, what.to_string()),
                        ProxyEvent::Ended { dir, end, .. } => Seen::Ended(*dir, end.clone()),
                        ProxyEvent::Sent { dir, bytes, .. } => Seen::Sent(*dir, bytes.to_vec()),
                        ProxyEvent::Closed { .. } => Seen::Closed,
                        _ => return,
                    };
                    let _ = tx.lock().unwrap().send(seen);
                })
                .unwrap()
        });
        (addr, handle, rx, t)
    }

    fn until(rx: &mpsc::Receiver<Seen>, want: &Seen) -> Vec<Seen> {
        let mut seen = Vec::new();
        loop {
            let s = rx.recv_timeout(Duration::from_secs(20)).unwrap();
            seen.push(s.clone());
            if &s == want {
                return seen;
            }
        }
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FrameConfig::default().encode(payload, &mut out).unwrap();
        out
    }

    #[test]
    fn forwards_both_ways_and_reports_frames() {
        let (addr, handle, rx, t) =
            start(ProxyConfig::new("127.0.0.1:0", echo_server().to_string()));
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent = [frame(b"hola"), frame(&[7u8; 100_000])].concat();
        c.write_all(&sent).unwrap();
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, sent);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
        let seen = until(&rx, &Seen::Closed);
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            assert!(
                seen.contains(&Seen::Frame(dir, 4, b"hola".to_vec())),
                "{seen:?}"
            );
            assert!(
                seen.contains(&Seen::Frame(dir, 100_000, vec![7u8; 64])),
                "{seen:?}"
            );
            assert!(seen.contains(&Seen::Ended(dir, End::Eof)), "{seen:?}");
        }
        handle.shutdown();
        t.join().unwrap();
    }

    #[test]
    fn writes_are_reported_as_made_after_faults_when_asked() {
        let mut config = ProxyConfig::new("127.0.0.1:0", echo_server().to_string())
            .with_sent(true)
            .with_faults("c2s:split=3".parse().unwrap());
        config.observe = false;
        let (addr, handle, rx, t) = start(config);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent = frame(b"hola");
        c.write_all(&sent).unwrap();
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
        let seen = until(&rx, &Seen::Closed);
        let writes = |dir: Direction| -> Vec<Vec<u8>> {
            seen.iter()
                .filter_map(|s| match s {
                    Seen::Sent(d, b) if *d == dir => Some(b.clone()),
                    _ => None,
                })
                .collect()
        };
        // Toward the server, the pieces of the split; back, whatever the
        // echo wrote, which adds up to the frame.
        assert_eq!(
            writes(Direction::ClientToServer),
            vec![b"\x00\x00\x00".to_vec(), b"\x04ho".to_vec(), b"la".to_vec()]
        );
        assert_eq!(writes(Direction::ServerToClient).concat(), sent);
        handle.shutdown();
        t.join().unwrap();
    }

    #[test]
    fn unwatched_directions_forward_and_stop() {
        // No observer, no faults, no recording: the zero-copy path on Linux.
        let mut config = ProxyConfig::new("127.0.0.1:0", echo_server().to_string());
        config.observe = false;
        let (addr, handle, rx, t) = start(config);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = c.try_clone().unwrap();
        let to_send = sent.clone();
        let writer = std::thread::spawn(move || w.write_all(&to_send).unwrap());
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == sent, "the bytes changed on the way");
        // A second connection stays idle; shutdown must end both.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
        let seen = until(&rx, &Seen::Closed);
        assert!(
            seen.contains(&Seen::Ended(Direction::ClientToServer, End::Eof)),
            "{seen:?}"
        );
        assert!(
            !seen.iter().any(|s| matches!(s, Seen::Frame(..))),
            "{seen:?}"
        );
        handle.shutdown();
        t.join().unwrap();
        assert_eq!(idle.read(&mut [0u8; 1]).unwrap_or(0), 0);
    }

    #[test]
    fn cut_mid_frame_closes_both_sides_and_says_so() {
        let mut config = ProxyConfig::new("127.0.0.1:0", echo_server().to_string());
        config.faults = "s2c:cut=2".parse().unwrap();
        let (addr, handle, rx, t) = start(config);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(&frame(b"uno")).unwrap();
        let mut got = vec![0u8; 7];
        c.read_exact(&mut got).unwrap();
        c.write_all(&frame(b"dos!")).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        // Frame 2's header and half its payload, then the end.
        assert_eq!(rest, b"\x00\x00\x00\x04do");
        let seen = until(&rx, &Seen::Closed);
        assert!(seen.contains(&Seen::Fault(
            Direction::ServerToClient,
            "connection cut in the middle of frame 2 after 2 of 4 payload bytes".into()
        )));
        assert!(seen.contains(&Seen::Ended(Direction::ServerToClient, End::Closed)));
        handle.shutdown();
        t.join().unwrap();
    }

    #[test]
    fn reset_is_a_reset() {
        let mut config = ProxyConfig::new("127.0.0.1:0", echo_server().to_string());
        config.faults = "c2s:reset=4".parse().unwrap();
        let (addr, handle, rx, t) = start(config);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(&frame(b"hola")).unwrap();
        let mut buf = [0u8; 16];
        let mut total = 0;
        let err = loop {
            match c.read(&mut buf) {
                Ok(0) => panic!("an orderly end, not a reset"),
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert!(total <= 4);
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        until(&rx, &Seen::Closed);
        handle.shutdown();
        t.join().unwrap();
    }

    #[test]
    fn shutdown_ends_idle_connections() {
        let (addr, handle, rx, t) =
            start(ProxyConfig::new("127.0.0.1:0", echo_server().to_string()));
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(&frame(b"x")).unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        handle.shutdown();
        t.join().unwrap();
        assert!(until(&rx, &Seen::Closed).contains(&Seen::Closed));
        assert_eq!(c.read(&mut got).unwrap_or(0), 0);
    }

    #[test]
    fn an_unreachable_upstream_refuses_the_client() {
        // A port that was free a moment ago.
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let reason = refusal(ProxyConfig::new("127.0.0.1:0", dead.to_string()));
        assert!(reason.contains("cannot connect"), "{reason}");
    }

    /// Why the proxy with `config` refused a client: the client is
    /// closed, and the reason is the one the proxy reported.
    fn refusal(config: ProxyConfig) -> String {
        let proxy = Proxy::bind(config).unwrap();
        let (addr, handle) = (proxy.local_addr(), proxy.handle());
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let t = std::thread::spawn(move || {
            proxy
                .run(move |e| {
                    if let ProxyEvent::Refused { reason, .. } = e {
                        let _ = tx.lock().unwrap().send(reason.clone());
                    }
                })
                .unwrap()
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reason = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap_or(0), 0, "{reason}");
        handle.shutdown();
        t.join().unwrap();
        reason
    }

    /// A trama echo server (the readiness loop) with `config`'s key and TLS.
    fn trama_echo(config: trama_transport::ServerConfig) -> trama_transport::RunningServer {
        use trama_protocol::{Actions, Event};
        let echo = |event: Event<'_>, out: &mut Actions| {
            if let Event::Message { id, payload } = event {
                out.send(id, payload);
            }
        };
        trama_transport::Server::bind(config, echo)
            .unwrap()
            .spawn()
            .unwrap()
    }

    fn key(bytes: &[u8]) -> AuthConfig {
        AuthConfig::new(trama_protocol::auth::AuthKey::new(bytes.to_vec()).unwrap())
    }

    /// A plain client with no key, through the proxy at `addr`: its frame
    /// comes back, and the proxy saw it both ways.
    fn plain_client_gets_its_echo(addr: SocketAddr, rx: &mpsc::Receiver<Seen>) {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent = [frame(b"hola"), frame(&[9u8; 70_000])].concat();
        c.write_all(&sent).unwrap();
        let mut got = vec![0u8; sent.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, sent);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap_or(0), 0);
        let seen = until(rx, &Seen::Closed);
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            assert!(
                seen.contains(&Seen::Frame(dir, 4, b"hola".to_vec())),
                "{seen:?}"
            );
            assert!(
                seen.contains(&Seen::Frame(dir, 70_000, vec![9u8; 64])),
                "{seen:?}"
            );
        }
    }

    #[test]
    fn the_proxy_runs_the_key_handshake_for_a_client_without_a_key() {
        let server =
            trama_echo(trama_transport::ServerConfig::default().with_auth(key(b"secreto")));
        let config = ProxyConfig::new("127.0.0.1:0", server.local_addr().to_string())
            .with_auth(key(b"secreto"))
            .with_keepalive(Duration::from_secs(10));
        let (addr, handle, rx, t) = start(config);
        plain_client_gets_its_echo(addr, &rx);
        handle.shutdown();
        t.join().unwrap();
        server.stop();
    }

    #[test]
    fn a_wrong_key_refuses_the_client() {
        let server =
            trama_echo(trama_transport::ServerConfig::default().with_auth(key(b"secreto")));
        let config = ProxyConfig::new("127.0.0.1:0", server.local_addr().to_string())
            .with_auth(key(b"otra cosa"));
        let reason = refusal(config);
        assert!(reason.contains("key"), "{reason}");
        server.stop();
    }

    #[test]
    fn the_proxy_speaks_tls_and_the_key_to_the_server_and_shows_the_frames() {
        let pki = trama_test_support::pki::Pki::new().unwrap();
        let acceptor =
            trama_transport::TlsAcceptor::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
                .unwrap();
        let connector = TlsConnector::from_ca_pem(pki.ca_pem.as_bytes()).unwrap();
        let server = trama_echo(
            trama_transport::ServerConfig::default()
                .with_tls(acceptor)
                .with_auth(key(b"secreto")),
        );
        let config = ProxyConfig::new("127.0.0.1:0", server.local_addr().to_string())
            .with_tls(connector)
            .with_auth(key(b"secreto"));
        let (addr, handle, rx, t) = start(config);
        plain_client_gets_its_echo(addr, &rx);
        handle.shutdown();
        t.join().unwrap();
        server.stop();
    }

    #[test]
    fn unwatched_tls_upstream_forwards_without_splicing() {
        let pki = trama_test_support::pki::Pki::new().unwrap();
        let acceptor =
            trama_transport::TlsAcceptor::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
                .unwrap();
        let connector = TlsConnector::from_ca_pem(pki.ca_pem.as_bytes()).unwrap();
        let server = trama_echo(trama_transport::ServerConfig::default().with_tls(acceptor));
        let config = ProxyConfig::new("127.0.0.1:0", server.local_addr().to_string())
            .with_tls(connector)
            .with_observe(false);
        let (addr, handle, rx, t) = start(config);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent: Vec<u8> = (0..20u8).flat_map(|i| frame(&[i; 50_000])).collect();
        let mut w = c.try_clone().unwrap();
        let to_send = sent.clone();
        let writer = std::thread::spawn(move || w.write_all(&to_send).unwrap());
        let mut got = vec![0u8; sent.len()];
        if let Err(e) = c.read_exact(&mut got) {
            panic!("{e}: {:?}", until(&rx, &Seen::Closed));
        }
        writer.join().unwrap();
        assert!(got == sent, "the bytes changed on the way");
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).unwrap_or(0), 0);
        until(&rx, &Seen::Closed);
        handle.shutdown();
        t.join().unwrap();
        server.stop();
    }

    #[test]
    fn a_tls_server_the_proxy_does_not_trust_refuses_the_client() {
        let pki = trama_test_support::pki::Pki::new().unwrap();
        let other = trama_test_support::pki::Pki::new().unwrap();
        let acceptor =
            trama_transport::TlsAcceptor::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
                .unwrap();
        let server = trama_echo(trama_transport::ServerConfig::default().with_tls(acceptor));
        let config = ProxyConfig::new("127.0.0.1:0", server.local_addr().to_string())
            .with_tls(TlsConnector::from_ca_pem(other.ca_pem.as_bytes()).unwrap());
        let reason = refusal(config);
        assert!(!reason.is_empty());
        server.stop();
    }

    #[test]
    fn a_fault_that_needs_frames_is_refused_when_unframed() {
        let mut config = ProxyConfig::new("127.0.0.1:0", "127.0.0.1:1");
        config.frame = FrameConfig::unframed();
        config.faults = "drop=1".parse().unwrap();
        assert!(Proxy::bind(config).is_err());
    }
}
