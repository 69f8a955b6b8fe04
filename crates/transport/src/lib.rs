//! # trama-transport
//!
//! Sockets and threads for trama: a [`Server`] that serves thousands of
//! connections on a few threads, and a [`Client`] that keeps the course
//! notes' design (one socket, send from anywhere) but reads each reply on
//! the caller's own thread, with request ids when both sides want them. The
//! API blocks; there is no async runtime.
//!
//! The server drives a [`Service`](trama_protocol::Service) from
//! `trama-protocol`: it turns what happens on connections into events, hands
//! them to the service, and carries out the actions the service returns. It
//! knows nothing about what the messages mean.
//!
//! ## Inside the server
//!
//! Each I/O thread (one per core by default) runs a readiness loop (`mio`:
//! epoll, kqueue or IOCP) over non-blocking sockets. The thread holding the
//! listener accepts and deals connections out round-robin. Whole frames go to
//! the service inline, on the I/O thread, so a request becomes a reply
//! without a thread hand-off; a service that may block runs on a worker pool
//! instead ([`ServerConfig::workers`]), where each connection's frames always
//! go to the same worker and stay in order. Replies from one read are
//! written together. Each connection's queue of outbound bytes is bounded;
//! a peer that does not read is dropped, not allowed to grow memory. An idle
//! connection holds no buffer at all.
//!
//! For work that is one long stream rather than many messages (a file of
//! many GiB moved with `sendfile`), [`PoolServer`] hands each connection,
//! a blocking [`Stream`] (plain TCP, or TLS over it), to a handler on a
//! fixed pool of threads, with timeouts on every read and write. Its accept
//! loop, an [`Acceptor`] that another thread stops on every platform, is
//! public for servers of your own.
//!
//! ## Example
//!
//! ```
//! use trama_protocol::{Actions, Event};
//! use trama_transport::{Client, ClientConfig, Server, ServerConfig};
//!
//! // Upper-cases every frame it gets.
//! let service = |event: Event<'_>, out: &mut Actions| {
//!     if let Event::Message { id, payload } = event {
//!         out.send(id, &payload.to_ascii_uppercase());
//!     }
//! };
//! let server = Server::bind(ServerConfig::default(), service)?.spawn()?;
//!
//! let client = Client::connect(&server.local_addr().to_string(), ClientConfig::default())?;
//! client.send(b"hola")?;
//! assert_eq!(client.recv()?, b"HOLA");
//! server.stop();
//! # Ok::<(), trama_transport::Error>(())
//! ```

mod acceptor;
mod auth;
mod client;
mod config;
mod conn;
mod error;
mod gate;
mod multi;
mod net;
mod options;
mod peer;
mod pool;
mod reactor;
mod server;
mod stats;
mod stream;
mod tls;
mod worker;

pub use acceptor::{Acceptor, AcceptorHandle};
pub use auth::{authenticate, AuthConfig};
pub use client::{Client, ClientConfig, ClientEvent};
pub use config::ServerConfig;
pub use error::{Error, Result};
pub use gate::Gate;
pub use multi::{MultiClient, MultiConfig, MultiEvent, Sent, ServerSpec};
pub use net::{accept_error, connect, listen, set_keepalive, AcceptError, DEFAULT_KEEPALIVE};
pub use options::{DialOptions, LinkOptions};
pub use peer::{LinkEvent, PeerConfig, PeerNode, PeerTls};
pub use pool::{PoolConfig, PoolHandle, PoolServer};
pub use server::{RunningServer, Server, ServerHandle};
pub use stats::StatsSnapshot;
pub use stream::Stream;
pub use tls::{TlsAcceptor, TlsConnector};
/// The id of a peer node's link, shared with the mesh rules of `trama-backend`.
pub use trama_protocol::LinkId;
