//! # trama-tap
//!
//! The machinery of `trama-tap`, a proxy that sits between a client and a
//! server, shows every frame going by, and disturbs the stream on purpose
//! when asked. It is a debugging tool built on trama, not part of it:
//! `trama-protocol` (framing) and `trama-transport` (sockets) know nothing
//! of it, and a program that only sends messages never compiles it.
//!
//! ## Pieces
//!
//! - [`Observer`]: follows one direction's bytes and reports each frame,
//!   without touching them and in bounded memory (no I/O).
//! - [`render`]: a payload made readable (text, JSON, MessagePack, hex).
//! - [`fault`]: the fault plan, its flag grammar, and the [`FaultSchedule`]
//!   that turns each chunk into steps (write, sleep, close, reset; no I/O).
//! - [`Proxy`]: the sockets, a thread per direction, carrying out what the
//!   observer and the schedule say.
//! - [`Tap`] and [`replay`]: the proxy wired to printing ([`Printer`]) and
//!   recording ([`Recorder`]), what the `trama-tap` binary runs.
//! - Wireshark: a session captured as pcapng while it runs
//!   ([`Session::pcap`]) or from a recording ([`pcap_from_recording`]),
//!   and a Lua dissector for the framing ([`dissector`]).
//!
//! ## Example
//!
//! A server behind a proxy, and the frames the proxy saw both ways:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use trama_tap::{render, DecodeAs, Note, Proxy, ProxyConfig, ProxyEvent};
//!
//! // A server that reads one 8-byte frame and answers "ok".
//! let server = TcpListener::bind("127.0.0.1:0")?;
//! let upstream = server.local_addr()?.to_string();
//! std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut s, _) = server.accept()?;
//!     let mut frame = [0u8; 8];
//!     s.read_exact(&mut frame)?;
//!     s.write_all(b"\x00\x00\x00\x02ok")
//! });
//!
//! let proxy = Proxy::bind(ProxyConfig::new("127.0.0.1:0", upstream))?;
//! let addr = proxy.local_addr();
//! let handle = proxy.handle();
//! let (seen, frames) = std::sync::mpsc::channel();
//! let running = std::thread::spawn(move || {
//!     proxy.run(move |event| {
//!         if let ProxyEvent::Note { dir, note: Note::Frame(f), .. } = event {
//!             let text = render(DecodeAs::Auto, &f.head, !f.is_cut()).text;
//!             let _ = seen.send(format!("{dir} {text}"));
//!         }
//!     })
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.set_read_timeout(Some(Duration::from_secs(10)))?;
//! client.write_all(b"\x00\x00\x00\x04hola")?;
//! let mut answer = [0u8; 6];
//! client.read_exact(&mut answer)?;
//! assert_eq!(&answer, b"\x00\x00\x00\x02ok");
//!
//! let wait = Duration::from_secs(10);
//! assert_eq!(frames.recv_timeout(wait)?, "c2s hola");
//! assert_eq!(frames.recv_timeout(wait)?, "s2c ok");
//! handle.shutdown();
//! running.join().map_err(|_| "the proxy thread panicked")??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `docs/TAP.md` describes the binary, its output and the fault grammar.

mod dissector;
pub mod fault;
mod observe;
mod pcap;
mod proxy;
mod record;
mod render;
mod session;
mod show;

pub use dissector::dissector;
pub use fault::{FaultPlan, FaultSchedule};
pub use observe::{Direction, FrameNote, Note, Observer};
pub use pcap::{pcap_from_recording, Converted};
pub use proxy::{End, Proxy, ProxyConfig, ProxyEvent, ProxyHandle};
pub use record::{replay, Recorder, Replay};
pub use render::{escape_text, hex_pairs, render, DecodeAs, Rendered};
pub use session::{Session, Tap};
pub use show::{Format, Printer, StdoutError};

/// What the session's steps fail with: a message naming what and why
/// (a file that cannot be created, a recording that cannot be read).
pub type TapResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
