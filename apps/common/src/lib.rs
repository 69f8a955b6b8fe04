//! # trama-cli
//!
//! The pieces every trama app shares, so each binary stays a page of flag
//! parsing and wiring: the server flags ([`ServerArgs`]), durations and
//! sizes in the one grammar of [`trama_units`] (`10s`, `500ms`, `64KiB`) plus `off`, logging setup, and running a server until
//! Ctrl-C or SIGTERM; the manners every app shares: one table of exit
//! statuses ([`exit`]), a stdout whose closing ends a program quietly
//! ([`out`], [`say!`]), completions and man pages ([`generate`]); and what
//! Linux's `/proc` says about a process ([`procfs`]).

pub mod console;
pub mod exit;
pub mod generate;
pub mod out;
pub mod ports;
pub mod procfs;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use trama_protocol::auth::{AuthKey, AuthPolicy};
use trama_protocol::{ByteOrder, FrameConfig, HeaderWidth, Service};
use trama_transport::{AuthConfig, Server, ServerConfig, ServerHandle, TlsAcceptor, TlsConnector};

/// Read a duration flag in trama's grammar (`250ms`, `10s`, `2m`, `1h`;
/// see [`trama_units`]): a bare number is refused, since a reader cannot
/// tell its unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    trama_units::parse_duration(s).map_err(|e| e.to_string())
}

/// Like [`parse_duration`], where `off` (or `0`) means no limit.
pub fn parse_optional_duration(s: &str) -> Result<Option<Duration>, String> {
    if s == "off" || s == "none" {
        return Ok(None);
    }
    let d = parse_duration(s)?;
    Ok((!d.is_zero()).then_some(d))
}

/// A duration flag that may be `off`: clap treats a bare `Option` field as
/// "flag may be absent", so this wrapper carries "present, and off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Duration>);

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Limit, String> {
        parse_optional_duration(s).map(Limit)
    }
}

/// Read a size flag in trama's grammar (`4096`, `64KiB`, `16MiB`; `K` and
/// `KB` mean KiB; see [`trama_units`]).
pub fn parse_size(s: &str) -> Result<u64, String> {
    trama_units::parse_size(s).map_err(|e| e.to_string())
}

fn parse_width(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if HeaderWidth::from_bytes(n).is_some() => Ok(n),
        _ => Err(format!("{s:?} is not a header width (1, 2, 4 or 8)")),
    }
}

fn parse_size_usize(s: &str) -> Result<usize, String> {
    let v = parse_size(s)?;
    usize::try_from(v).map_err(|_| format!("{s:?} is too large for this machine"))
}

/// The wire-format flags every app takes.
#[derive(Args, Debug, Clone)]
pub struct FrameArgs {
    /// Length header width in bytes: 1, 2, 4 (the notes' format) or 8.
    #[arg(long, default_value_t = 4, value_parser = parse_width)]
    pub header_bytes: usize,
    /// Length header byte order.
    #[arg(long, default_value = "big", value_parser = ["big", "little"])]
    pub byte_order: String,
    /// Largest frame accepted or sent (e.g. 16MiB). In unframed mode, the size of one read.
    #[arg(long, value_parser = parse_size_usize)]
    pub max_frame: Option<usize>,
}

impl FrameArgs {
    /// The wire format these flags describe, framed or not.
    pub fn frame_config(&self, framed: bool) -> Result<FrameConfig, trama_protocol::Error> {
        let mut b = FrameConfig::builder();
        if framed {
            b = b
                .width(HeaderWidth::from_bytes(self.header_bytes).unwrap_or(HeaderWidth::Four))
                .order(if self.byte_order == "little" {
                    ByteOrder::Little
                } else {
                    ByteOrder::Big
                });
        } else {
            b = b.framing(trama_protocol::Framing::Unframed);
        }
        if let Some(max) = self.max_frame {
            b = b.max_frame_len(max);
        }
        b.build()
    }
}

/// The server flags every server app takes, mapped onto [`ServerConfig`].
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Most connections at once; more are refused with a reason.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Drop a peer that starts a frame and does not finish it within this time ("off" to disable).
    #[arg(long, default_value = "10s")]
    pub frame_timeout: Limit,
    /// Drop a peer that sends nothing for this long ("off" by default).
    #[arg(long, default_value = "off")]
    pub idle_timeout: Limit,
    /// Bytes that may wait to be sent to one peer before it is dropped as too slow.
    #[arg(long, default_value = "4MiB", value_parser = parse_size_usize)]
    pub max_outbound: usize,
    /// I/O threads (default: one per core).
    #[arg(long)]
    pub io_threads: Option<usize>,
    /// Worker threads for the service (0: run it on the I/O threads).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Send an empty frame to quiet peers at this interval ("off" by default).
    #[arg(long, default_value = "off")]
    pub heartbeat: Limit,
    /// How long queued bytes may take to drain on close and shutdown.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub linger: Duration,
    /// Drop a peer whose TCP stack stops answering for about this long (TCP keepalive; a host that vanished). "off": leave it to TCP (minutes).
    #[arg(long, default_value = "30s")]
    pub keepalive: Limit,
    /// Bytes that incomplete frames may hold across the whole server; past it the connection holding the largest is dropped.
    #[arg(long, default_value = "256MiB", value_parser = parse_size_usize)]
    pub incomplete_budget: usize,
}

/// The dead-server flag of the client apps.
#[derive(Args, Debug, Clone)]
pub struct KeepaliveArgs {
    /// Declare a server (or peer) gone when its TCP stack stops answering for about this long (TCP keepalive probes; works with any server). "off": leave it to TCP (minutes).
    #[arg(long, default_value = "30s")]
    pub keepalive: Limit,
}

impl ServerArgs {
    /// The server configuration for `addr` and `frame`.
    pub fn config(&self, addr: &str, frame: FrameConfig) -> ServerConfig {
        let c = ServerConfig::new(addr)
            .with_frame(frame)
            .with_max_connections(self.max_connections)
            .with_partial_frame_timeout(self.frame_timeout.0)
            .with_idle_timeout(self.idle_timeout.0)
            .with_max_outbound(self.max_outbound)
            .with_workers(self.workers)
            .with_heartbeat(self.heartbeat.0)
            .with_linger(self.linger)
            .with_keepalive(self.keepalive.0)
            .with_incomplete_budget(self.incomplete_budget);
        match self.io_threads {
            Some(n) => c.with_io_threads(n.max(1)),
            None => c,
        }
    }
}

/// The environment variable that names a key file when `--key-file` is absent.
pub const KEY_FILE_ENV: &str = "TRAMA_KEY_FILE";

/// Largest key file read: a key is a secret of some bytes, not a document,
/// and a wrong path (a log, a disk image) should fail fast.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The shared-key flags every app takes (servers, clients and peers alike).
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// Require the shared-key handshake of Python's multiprocessing.connection
    /// (authkey): the key is this file's bytes, less one trailing newline.
    /// The file must not be readable by every user. Also from $TRAMA_KEY_FILE.
    #[arg(short = 'k', long, value_name = "PATH")]
    pub key_file: Option<std::path::PathBuf>,
    /// Accept the legacy HMAC-MD5 handshake of Python 3.11 and older (off:
    /// only HMAC-SHA256, as Python 3.12+ speaks).
    #[arg(long)]
    pub allow_legacy_md5: bool,
    /// The whole key handshake must finish within this time.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
}

impl Default for AuthArgs {
    fn default() -> Self {
        AuthArgs {
            key_file: None,
            allow_legacy_md5: false,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

impl AuthArgs {
    /// The handshake settings, or `None` when no key file is named (by flag
    /// or by $TRAMA_KEY_FILE). Fails with a message for the user if the
    /// file cannot be read, is empty, or is readable by everyone.
    pub fn config(&self) -> Result<Option<AuthConfig>, String> {
        let path = match (&self.key_file, std::env::var_os(KEY_FILE_ENV)) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) if !p.is_empty() => std::path::PathBuf::from(p),
            (None, _) => return Ok(None),
        };
        let key = read_key_file(&path)?;
        let config = AuthConfig::new(key)
            .with_policy(AuthPolicy::default().with_legacy_md5(self.allow_legacy_md5))
            .with_timeout(self.handshake_timeout);
        if self.allow_legacy_md5 {
            log::warn!("legacy HMAC-MD5 handshakes are allowed (--allow-legacy-md5)");
        }
        Ok(Some(config))
    }
}

/// The TLS flags of a server (the readiness-loop servers: echo, chat).
#[derive(Args, Debug, Clone, Default)]
pub struct TlsServerArgs {
    /// Speak TLS with this certificate chain (PEM, the server's certificate first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The TLS handshake must finish within this time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
}

impl TlsServerArgs {
    /// The TLS identity, or `None` without `--tls-cert`.
    pub fn config(&self) -> Result<Option<TlsAcceptor>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        #[cfg(unix)]
        refuse_world_readable(key, "TLS key")?;
        let mut acceptor = TlsAcceptor::from_pem_files(cert, key).map_err(|e| e.to_string())?;
        acceptor.handshake_timeout = self.tls_handshake_timeout;
        Ok(Some(acceptor))
    }
}

/// The TLS flags of a client.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsClientArgs {
    /// Speak TLS, trusting only the certificate authorities in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry (default: the host part of the address dialed).
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl TlsClientArgs {
    /// What to trust, or `None` without `--tls-ca`.
    pub fn config(&self) -> Result<Option<TlsConnector>, String> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let mut connector = TlsConnector::from_ca_file(ca).map_err(|e| e.to_string())?;
        connector.server_name = self.tls_server_name.clone();
        Ok(Some(connector))
    }
}

#[cfg(unix)]
fn refuse_world_readable(path: &std::path::Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "{what} {shown} is readable by every user (mode {mode:03o}); \
             make it private with: chmod 600 {shown}"
        ));
    }
    Ok(())
}

/// Read a key file: its bytes less one trailing newline. On Unix a file
/// that every user may read is refused (the key would not be a secret).
/// Errors name the path, never the contents.
pub fn read_key_file(path: &std::path::Path) -> Result<AuthKey, String> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("key file {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("key file {shown} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            return Err(format!(
                "key file {shown} is readable by every user (mode {mode:03o}); \
                 make it private with: chmod 600 {shown}"
            ));
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "key file {shown} has {} bytes; a key file holds at most {MAX_KEY_FILE}",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("key file {shown}: {e}"))?;
    AuthKey::from_file_contents(bytes).map_err(|e| format!("key file {shown}: {e}"))
}

/// Log to stderr; `RUST_LOG` overrides `default` (e.g. `"info"`).
pub fn init_logging(default: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

/// Bind, print `listening on ADDR` on stderr, serve until Ctrl-C or SIGTERM,
/// then log the counters. The line is what tests and scripts wait for.
pub fn serve<S: Service + 'static>(
    config: ServerConfig,
    service: S,
    on_start: impl FnOnce(&ServerHandle),
) -> Result<(), trama_transport::Error> {
    raise_open_file_limit();
    let server = Server::bind(config, service)?;
    let handle = server.handle();
    let stopper = handle.clone();
    if let Err(e) = ctrlc::set_handler(move || stopper.shutdown()) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    let addr = server.local_addr();
    // Said once every thread runs, so what a test measures then is final.
    server.run_after_start(|| {
        eprintln!("listening on {addr}");
        on_start(&handle);
    })?;
    log::info!("stopped; {}", handle.stats());
    Ok(())
}

/// When a console whose input has ended may exit: once nothing has arrived
/// for `wait`. Scripts pipe a few lines into a client and expect it to print
/// the replies and stop, even against a server that never closes (the
/// notes' servers never do).
#[derive(Debug)]
pub struct QuietExit {
    wait: Duration,
    input_done: Arc<AtomicBool>,
    last: Instant,
    saw_done: bool,
}

impl QuietExit {
    /// A timer that waits `wait` after the input ends; the returned flag is
    /// set by whoever reads the input when it ends.
    pub fn new(wait: Duration) -> (QuietExit, Arc<AtomicBool>) {
        let input_done = Arc::new(AtomicBool::new(false));
        let q = QuietExit {
            wait,
            input_done: input_done.clone(),
            last: Instant::now(),
            saw_done: false,
        };
        (q, input_done)
    }

    /// Something arrived: the quiet period starts again.
    pub fn activity(&mut self) {
        self.last = Instant::now();
    }

    /// True once the input has ended and nothing arrived for `wait` since.
    pub fn should_exit(&mut self) -> bool {
        if !self.input_done.load(Ordering::SeqCst) {
            return false;
        }
        if !self.saw_done {
            self.saw_done = true;
            self.last = Instant::now();
        }
        self.last.elapsed() >= self.wait
    }
}

/// Each connection is a file descriptor; many systems start with a soft
/// limit of 256 or 1024. Raise it to the hard limit where the OS allows.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => log::debug!("open-file limit: {n}"),
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10")
            .unwrap_err()
            .contains("needs a unit (10s, 10ms)"));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_optional_duration("off").unwrap(), None);
        assert_eq!(parse_optional_duration("0").unwrap(), None);
        assert_eq!(parse_optional_duration("0s").unwrap(), None);
    }

    #[test]
    fn key_files() {
        let dir = std::env::temp_dir().join(format!("trama-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, b"secret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_key_file(&path).unwrap_err();
            assert!(
                e.contains("readable by every user") && e.contains("chmod 600"),
                "{e}"
            );
            assert!(!e.contains("secret\n") && !e.contains("secret "), "{e}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let key = read_key_file(&path).unwrap();
        assert_eq!(key, AuthKey::new(b"secret".to_vec()).unwrap());
        std::fs::write(&path, b"\n").unwrap();
        assert!(read_key_file(&path).unwrap_err().contains("empty"));
        assert!(read_key_file(&dir.join("missing")).is_err());
        assert!(read_key_file(&dir).is_err());
        let args = AuthArgs {
            key_file: Some(dir.join("missing")),
            ..AuthArgs::default()
        };
        assert!(args.config().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
