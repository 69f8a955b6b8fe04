//! # trama-backend
//!
//! The rules of trama's applications, with no I/O: each one is a
//! [`Service`](trama_protocol::Service) that turns an event into actions.
//! A transport (`trama-transport`) drives them over real sockets; tests drive
//! them with plain function calls.
//!
//! - [`Echo`]: every message goes back to its sender.
//! - [`Chat`]: a chat room with names, private messages and notices.
//! - [`files`]: the rules of file transfer (names, resume, verdicts, retries)
//!   and its wire protocol, for the `trama-files` app.
//! - [`mesh`]: the rules of the peer-to-peer mesh (Hellos, the duplicate-link
//!   tie-break, gossip, exactly-once flooding) and its wire protocol, for the
//!   `trama-peer` app.
//!
//! `cargo run -p trama-backend --example chat_rules` drives [`Chat`] with
//! events and prints the actions it returns, with no network at all: the way
//! to try a service before any socket exists. To serve your own service, see
//! the `template` example of `trama-transport`.
//!
//! ```
//! use trama_backend::Echo;
//! use trama_protocol::{Actions, ConnId, Event, Service};
//!
//! let mut echo = Echo;
//! let mut out = Actions::new();
//! echo.on_event(Event::Message { id: ConnId(1), payload: b"hola" }, &mut out);
//! assert_eq!(out.len(), 1);
//! ```

pub mod chat;
mod echo;
pub mod files;
pub mod mesh;

pub use chat::Chat;
pub use echo::Echo;
