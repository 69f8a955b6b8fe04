//! The blocking client: the notes' design, done carefully.
//!
//! One socket; [`Client::send`] from any thread, one write per frame; and
//! the reading done by whoever waits for a message (see `inbound`): the
//! caller of [`Client::recv`] or [`Client::request`] reads its own reply,
//! with no thread in between, until [`Client::events`] asks for a channel,
//! which a listener thread then feeds (bounded, so a program that stops
//! reading pushes back on the server instead of growing memory).

mod inbound;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use trama_protocol::envelope::{self, Kind};
use trama_protocol::{Codec, DisconnectReason, FrameConfig, FrameWriter};

use self::inbound::{Inbound, Wanted};
use crate::gate::Gate;
use crate::options::{dial_setters, with};
use crate::stream::{Duplex, Stream, TlsRole};
use crate::{DialOptions, Error, Result, TlsConnector};

/// How a [`Client`] connects and frames.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Wire format (default: the notes' 4-byte big-endian frames).
    pub frame: FrameConfig,
    /// Disable Nagle's algorithm. Default on.
    pub nodelay: bool,
    /// Messages that may wait in the event channel (once
    /// [`Client::events`] has started it) before the listener thread stops
    /// reading the socket. Default 1024.
    pub inbox: usize,
    /// Send an empty frame at this interval (so the server's idle timeout
    /// sees a live peer), and drop empty frames received. Default off.
    /// Framed mode only.
    pub heartbeat: Option<Duration>,
    /// Put the request envelope of [`trama_protocol::envelope`] on every
    /// message, so that [`Client::request`] gets the reply with its own id
    /// even when the server pushes messages too, or several threads ask at
    /// once. The server must speak it. Default off (the notes' bare frames).
    pub envelope: bool,
    /// The key (as the dialing side: the connect fails if the keys differ),
    /// TLS (trusting what the connector trusts), keepalive and connect
    /// timeout. A client dials once: its backoff is not used.
    pub dial: DialOptions<TlsConnector>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            frame: FrameConfig::default(),
            nodelay: true,
            inbox: 1024,
            heartbeat: None,
            envelope: false,
            dial: DialOptions::default(),
        }
    }
}

impl ClientConfig {
    with!(
        with_frame: frame: FrameConfig,
        with_nodelay: nodelay: bool,
        with_inbox: inbox: usize,
        with_heartbeat: heartbeat: Option<Duration>,
        with_envelope: envelope: bool,
        with_dial: dial: DialOptions<TlsConnector>,
    );
    dial_setters!(TlsConnector, dial);
}

/// What the event channel carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A whole message (a frame, or one read in unframed mode).
    Message(Vec<u8>),
    /// The connection ended; no more events follow.
    Closed(DisconnectReason),
}

/// A connection to a server.
///
/// ```no_run
/// use trama_transport::{Client, ClientConfig};
///
/// let client = Client::connect("127.0.0.1:8080", ClientConfig::default())?;
/// client.send(b"hola")?;
/// let reply = client.recv()?;
/// println!("{}", String::from_utf8_lossy(&reply));
/// # Ok::<(), trama_transport::Error>(())
/// ```
pub struct Client {
    writer: Arc<Mutex<FrameWriter<Stream>>>,
    /// The TLS session, to send close_notify on close.
    tls: Option<crate::tls::TlsHalf>,
    /// Closed on close: wakes the listener thread, shuts the socket.
    gate: Arc<Gate>,
    inbound: Arc<Inbound>,
    events: Receiver<ClientEvent>,
    /// The channel's sending side until the listener takes it.
    events_tx: Mutex<Option<Sender<ClientEvent>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    heartbeat: Option<(crossbeam_channel::Sender<()>, JoinHandle<()>)>,
    envelope: bool,
    /// The id of the next request (envelope mode).
    next_id: AtomicU64,
    peer: SocketAddr,
}

impl Client {
    /// Connect to `addr` (`host:port`), trying every address it resolves to.
    pub fn connect(addr: &str, config: ClientConfig) -> Result<Client> {
        let stream = crate::net::connect(addr, config.dial.connect_timeout)?;
        Client::start(stream, Some(addr), config)
    }

    /// Wrap a connected stream (running the TLS and key handshakes first,
    /// if configured; TLS then checks the certificate against the peer's IP
    /// address unless [`TlsConnector::server_name`] says otherwise).
    pub fn from_stream(stream: TcpStream, config: ClientConfig) -> Result<Client> {
        Client::start(stream, None, config)
    }

    fn start(stream: TcpStream, addr: Option<&str>, config: ClientConfig) -> Result<Client> {
        if config.nodelay {
            stream.set_nodelay(true)?;
        }
        let peer = stream.peer_addr()?;
        crate::net::keepalive_or_log(
            (&stream).into(),
            config.dial.link.keepalive,
            &peer.to_string(),
        );
        let role = match &config.dial.link.tls {
            None => TlsRole::Plain,
            Some(connector) => TlsRole::Client {
                connector,
                addr,
                timeout: config.dial.connect_timeout,
            },
        };
        let auth = config
            .dial
            .link
            .auth
            .as_ref()
            .map(|a| (a, trama_protocol::auth::Role::Dialer));
        let Duplex {
            reader,
            writer,
            gate,
            tls,
        } = crate::stream::duplex(stream, role, auth)?;
        let frame = config.frame;
        let skip_empty = config.heartbeat.is_some();
        let envelope = config.envelope && !frame.is_unframed();
        let (tx, events) = crossbeam_channel::bounded(config.inbox.max(1));
        let writer = Arc::new(Mutex::new(FrameWriter::new(writer, frame)));
        let mut client = Client {
            writer,
            tls,
            gate,
            inbound: Arc::new(Inbound::new(reader, frame, skip_empty, envelope)),
            events,
            events_tx: Mutex::new(Some(tx)),
            listener: Mutex::new(None),
            heartbeat: None,
            envelope,
            next_id: AtomicU64::new(1),
            peer,
        };
        if let (Some(every), false) = (config.heartbeat, frame.is_unframed()) {
            client.heartbeat = Some(start_heartbeat(client.writer.clone(), every)?);
        }
        Ok(client)
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Our end's address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.gate.socket().local_addr()?)
    }

    /// Send one message (one write of header and payload; in envelope
    /// mode, as a push). Safe from any thread.
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        if self.envelope {
            return self.send_enveloped(Kind::Push, 0, payload);
        }
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_frame(payload).map_err(closed_if_broken)
    }

    /// Encode `value` with `codec` and send it as one message.
    pub fn send_value<T: serde::Serialize + ?Sized>(&self, codec: Codec, value: &T) -> Result<()> {
        if self.envelope {
            let body = codec.to_vec(value)?;
            return self.send_enveloped(Kind::Push, 0, &body);
        }
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.send(codec, value).map_err(closed_if_broken)
    }

    fn send_enveloped(&self, kind: Kind, id: u64, body: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(envelope::LEN + body.len());
        envelope::encode(kind, id, body, &mut payload);
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_frame(&payload).map_err(closed_if_broken)
    }

    /// Wait for the next message (in envelope mode, the next push). At the
    /// end of the connection, returns [`Error::Closed`] with the reason.
    pub fn recv(&self) -> Result<Vec<u8>> {
        if !self.listening() {
            match self.inbound.next_message(&self.gate, None)? {
                Wanted::Got(m) => return Ok(m),
                Wanted::UseChannel => {}
            }
        }
        match self.events.recv() {
            Ok(ClientEvent::Message(m)) => Ok(m),
            Ok(ClientEvent::Closed(reason)) => Err(Error::Closed(reason.to_string())),
            Err(_) => Err(Error::Closed("connection already ended".into())),
        }
    }

    /// Like [`recv`](Client::recv), giving up after `timeout` with [`Error::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        let start = Instant::now();
        if !self.listening() {
            match self.inbound.next_message(&self.gate, Some(timeout))? {
                Wanted::Got(m) => return Ok(m),
                Wanted::UseChannel => {}
            }
        }
        let left = timeout.saturating_sub(start.elapsed());
        match self.events.recv_timeout(left) {
            Ok(ClientEvent::Message(m)) => Ok(m),
            Ok(ClientEvent::Closed(reason)) => Err(Error::Closed(reason.to_string())),
            Err(RecvTimeoutError::Timeout) => Err(Error::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(Error::Closed("connection already ended".into()))
            }
        }
    }

    /// Wait for the next message and decode it with `codec`.
    pub fn recv_value<T: serde::de::DeserializeOwned>(
        &self,
        codec: Codec,
        timeout: Duration,
    ) -> Result<T> {
        let bytes = self.recv_timeout(timeout)?;
        Ok(codec.decode(&bytes)?)
    }

    /// Send `payload` and wait up to `timeout` for the reply. The caller
    /// reads the reply from the socket itself when no other thread is
    /// reading (no hand-off between threads).
    ///
    /// With the notes' bare frames there is no request id: the reply is
    /// simply the next message to arrive, so a message the server pushes on
    /// its own (a chat broadcast) may be taken for it, and concurrent
    /// requests from several threads may get each other's replies. With
    /// [`ClientConfig::envelope`] each request carries an id and gets the
    /// reply with the same id, whatever else arrives and whoever else asks.
    pub fn request(&self, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        if !self.envelope {
            self.send(payload)?;
            return self.recv_timeout(timeout);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).max(1);
        self.inbound.expect_reply(id);
        if let Err(e) = self.send_enveloped(Kind::Request, id, payload) {
            self.inbound.forget_reply(id);
            return Err(e);
        }
        self.inbound.reply(&self.gate, id, timeout)
    }

    /// Encode `value` with `codec`, send it as a request and decode the
    /// reply with the same codec.
    pub fn request_value<Q, R>(&self, codec: Codec, value: &Q, timeout: Duration) -> Result<R>
    where
        Q: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        let body = codec.to_vec(value)?;
        let reply = self.request(&body, timeout)?;
        Ok(codec.decode(&reply)?)
    }

    /// The event channel, for `select!` with other channels. The first
    /// call starts a listener thread that reads the socket from then on;
    /// [`recv`](Client::recv) then reads this channel too, and replies to
    /// enveloped requests still go straight to their caller.
    pub fn events(&self) -> &Receiver<ClientEvent> {
        let tx = self
            .events_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(tx) = tx {
            self.inbound.hand_over_to_listener();
            let (inbound, gate) = (self.inbound.clone(), self.gate.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("trama-client-{}", self.peer))
                .spawn(move || inbound.listen(&gate, tx));
            match spawned {
                Ok(t) => *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(t),
                // The sender went with the failed closure: the channel reports
                // itself disconnected, which `recv` turns into Closed.
                Err(e) => log::error!("cannot start the client's listener thread: {e}"),
            }
        }
        &self.events
    }

    fn listening(&self) -> bool {
        self.events_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Close the connection (and wait for the listener thread, if any).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tls) = self.tls.take() {
            tls.close_notify();
        }
        self.gate.close(Shutdown::Both);
        if let Some((stop, t)) = self.heartbeat.take() {
            drop(stop);
            let _ = t.join();
        }
        let listener = self
            .listener
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = listener {
            // The listener may be blocked handing an event to a full channel;
            // empty it so the thread can see the socket is gone.
            while !t.is_finished() {
                let _ = self.events.recv_timeout(Duration::from_millis(10));
            }
            let _ = t.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn closed_if_broken(e: trama_protocol::Error) -> Error {
    match e {
        trama_protocol::Error::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
            ) =>
        {
            Error::Closed(io.to_string())
        }
        other => Error::Protocol(other),
    }
}

fn start_heartbeat(
    writer: Arc<Mutex<FrameWriter<Stream>>>,
    every: Duration,
) -> Result<(crossbeam_channel::Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let t = std::thread::Builder::new()
        .name("trama-heartbeat".into())
        .spawn(move || {
            // The stop sender is dropped on close, which ends this wait.
            while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                if w.write_frame(&[]).is_err() {
                    return;
                }
            }
        })
        .map_err(|source| Error::Thread {
            name: "trama-heartbeat".into(),
            source,
        })?;
    Ok((stop_tx, t))
}
