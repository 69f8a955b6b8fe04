//! `trama-chat join` typed into through a real pseudo-terminal: a message
//! that arrives while a line is half typed prints above it, the typed text
//! is redrawn and goes out whole (the notes' client prints into the middle
//! of the line). The typing is done by `tests/python/pty_console.py`.
//!
//! Unix only: it drives a pty through Python's `pty` module, which Windows
//! does not have (the editor itself, rustyline, works on Windows consoles).

#![allow(clippy::unwrap_used)]

#[cfg(unix)]
fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(unix)]
#[test]
fn a_message_arriving_mid_line_prints_above_the_typed_text() {
    use std::process::Command;
    use trama_test_support::console::DEADLINE;
    use trama_test_support::{python3, python_script, run_command, ServerProcess};

    let chat = env!("CARGO_BIN_EXE_trama-chat");
    let mut cmd = Command::new(chat);
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG");
    let server = ok(ServerProcess::from_command(cmd));

    let mut typing = Command::new(ok(python3()));
    typing
        .arg(ok(python_script("pty_console.py")))
        .arg(chat)
        .arg(server.addr().to_string())
        .env_remove("RUST_LOG");
    let out = ok(run_command(typing, DEADLINE * 3));
    assert!(
        out.0.success() && out.1.trim_end().ends_with("ok"),
        "pty_console.py: {}\nstdout:\n{}\nstderr:\n{}",
        out.0,
        out.1,
        out.2
    );
}
