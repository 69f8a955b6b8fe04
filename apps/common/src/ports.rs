//! Where each role listens unless told otherwise, so two apps started with
//! their defaults on one machine do not fight over a port, and a client's
//! default finds its own server's.

/// The echo server (`trama-echo serve`), its client, and what
/// `trama-bench` measures by default (an echo server).
pub const ECHO: &str = "127.0.0.1:12345";
/// The file receiver (`trama-files receive`) and its sender.
pub const FILES: &str = "127.0.0.1:12346";
/// The chat server (`trama-chat serve`) and its console client; the notes'
/// servers listen here too, so `trama-check` and `trama-multi` examples use it.
pub const CHAT: &str = "127.0.0.1:8080";
/// A peer (`trama-peer`); the second peer of an example takes the next port.
pub const PEER: &str = "127.0.0.1:9000";
/// The tap (`trama-tap`), in front of a server of any of the roles above.
pub const TAP: &str = "127.0.0.1:9090";
