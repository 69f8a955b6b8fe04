//! The blocking client: the notes' design, done carefully.
//!
//! One socket; one listener thread that turns incoming frames into
//! [`ClientEvent`]s on a bounded channel (so a program that stops reading
//! pushes back on the server instead of growing memory); [`Client::send`]
//! from any thread, one write per frame.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use trama_protocol::{Codec, DisconnectReason, FrameConfig, FrameReader, FrameWriter};

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
    /// Messages that may wait in the inbox before the listener thread stops
    /// reading the socket. Default 1024.
    pub inbox: usize,
    /// Send an empty frame at this interval (so the server's idle timeout
    /// sees a live peer), and drop empty frames received. Default off.
    /// Framed mode only.
    pub heartbeat: Option<Duration>,
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
        with_dial: dial: DialOptions<TlsConnector>,
    );
    dial_setters!(TlsConnector, dial);
}

/// What the listener thread reports.
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
    events: Receiver<ClientEvent>,
    listener: Option<JoinHandle<()>>,
    heartbeat: Option<(crossbeam_channel::Sender<()>, JoinHandle<()>)>,
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
        let (tx, events) = crossbeam_channel::bounded(config.inbox.max(1));
        let frame = config.frame;
        let skip_empty = config.heartbeat.is_some();
        let listener = std::thread::Builder::new()
            .name(format!("trama-client-{peer}"))
            .spawn(move || listen(FrameReader::new(reader, frame), tx, skip_empty))
            .map_err(|source| Error::Thread {
                name: "trama-client".into(),
                source,
            })?;
        let writer = Arc::new(Mutex::new(FrameWriter::new(writer, frame)));
        let mut client = Client {
            writer,
            tls,
            gate,
            events,
            listener: Some(listener),
            heartbeat: None,
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

    /// Send one message (one write of header and payload). Safe from any thread.
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_frame(payload).map_err(closed_if_broken)
    }

    /// Encode `value` with `codec` and send it as one message.
    pub fn send_value<T: serde::Serialize + ?Sized>(&self, codec: Codec, value: &T) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.send(codec, value).map_err(closed_if_broken)
    }

    /// Wait for the next message. At the end of the connection, returns
    /// [`Error::Closed`] with the reason.
    pub fn recv(&self) -> Result<Vec<u8>> {
        match self.events.recv() {
            Ok(ClientEvent::Message(m)) => Ok(m),
            Ok(ClientEvent::Closed(reason)) => Err(Error::Closed(reason.to_string())),
            Err(_) => Err(Error::Closed("connection already ended".into())),
        }
    }

    /// Like [`recv`](Client::recv), giving up after `timeout` with [`Error::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        match self.events.recv_timeout(timeout) {
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

    /// Send `payload` and wait up to `timeout` for the reply.
    ///
    /// With the notes' bare frames there is no request id: the reply is
    /// simply the next message to arrive. If the server also pushes messages
    /// on its own (a chat broadcast), one of those may be taken for the
    /// reply; protocols that mix both should carry an id in the payload and
    /// read [`events`](Client::events) instead.
    pub fn request(&self, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        self.send(payload)?;
        self.recv_timeout(timeout)
    }

    /// The event channel, for `select!` with other channels.
    pub fn events(&self) -> &Receiver<ClientEvent> {
        &self.events
    }

    /// Close the connection and wait for the listener thread.
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
        if let Some(t) = self.listener.take() {
            // The listener may be blocked handing an event to a full inbox;
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

/// The listener thread: frames in, events out, until the socket ends.
fn listen(
    mut reader: FrameReader<Stream>,
    tx: crossbeam_channel::Sender<ClientEvent>,
    skip_empty: bool,
) {
    loop {
        let mut buf = Vec::new();
        let reason = match reader.read_frame_into(&mut buf) {
            Ok(true) => {
                if skip_empty && buf.is_empty() {
                    continue;
                }
                if tx.send(ClientEvent::Message(buf)).is_err() {
                    return; // the client is gone
                }
                continue;
            }
            Ok(false) => DisconnectReason::PeerClosed,
            Err(trama_protocol::Error::Io(e)) => DisconnectReason::Io(e.to_string()),
            Err(e) => DisconnectReason::Protocol(e.to_string()),
        };
        let _ = tx.send(ClientEvent::Closed(reason));
        return;
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
