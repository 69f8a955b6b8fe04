//! Helpers the test files of trama-tap share: each includes this module
//! with `mod common;` (a file under `tests/common/` is not a test target).

// Every test file is a crate of its own and uses only some of these
// helpers; the others would be dead code there.
#![allow(dead_code)]
// Test code: the helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;

use trama_test_support::console::{Console, DEADLINE};
use trama_test_support::{workspace_binary, ServerProcess};

pub const TAP: &str = env!("CARGO_BIN_EXE_trama-tap");

pub fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Another binary of the workspace, next to this package's (built if missing).
pub fn sibling(name: &str) -> PathBuf {
    ok(workspace_binary(TAP, name, &["trama-echo", "trama-chat"]))
}

/// `trama-echo serve` on a free port, with `extra` flags.
pub fn echo(extra: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(sibling("trama-echo"));
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .env_remove("RUST_LOG");
    ok(ServerProcess::from_command(cmd))
}

/// `trama-chat serve` on a free port.
pub fn chat_server() -> ServerProcess {
    let mut cmd = Command::new(sibling("trama-chat"));
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG");
    ok(ServerProcess::from_command(cmd))
}

/// `trama-tap --listen 127.0.0.1:0 --to TO ARGS`, once it listens.
pub fn tap(to: SocketAddr, args: &[&str]) -> (Console, SocketAddr) {
    let mut cmd = Command::new(TAP);
    cmd.args(["--listen", "127.0.0.1:0", "--to", &to.to_string()])
        .args(args);
    let mut c = Console::spawn(format!("trama-tap {}", args.join(" ")), cmd);
    let addr = c.addr();
    (c, addr)
}

/// `trama-chat join --name NAME` to `addr`, once the name is confirmed.
pub fn join(addr: SocketAddr, name: &str) -> Console {
    let mut cmd = Command::new(sibling("trama-chat"));
    cmd.args([
        "join",
        "--addr",
        &addr.to_string(),
        "--wait",
        "1s",
        "--name",
        name,
    ]);
    let mut c = Console::spawn(format!("join {name}"), cmd);
    c.expect(&format!("* you are now {name}"));
    c
}

/// A client socket to `addr` whose reads and writes give up at [`DEADLINE`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// `payload` as a trama frame: its length in 4 bytes, big-endian, then it.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}
