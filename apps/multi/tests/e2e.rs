//! End-to-end tests of the `trama-multi` console: the real binary, driven
//! through its stdin, connected to several servers at once, framed
//! (`trama-echo serve --framed`) and in the notes' raw dialect (the notes'
//! two Python servers, `tests/python/notes_server.py`, and `trama-echo serve`).
//!
//! Servers are killed and started again while the console runs; the console
//! must say so, hold the lines typed for a server that is down, and deliver
//! them when it is back, while the other servers keep answering.
//! With `--tls-ca`, the framed server is reached over TLS (certificates
//! made at test time with rcgen) and the raw one stays plain; a certificate
//! from another authority leaves that server down.
//!
//! Nothing here measures time. Steps are put in order by waiting for a line
//! that can only arrive after the previous step took effect; the deadlines
//! are only there so a broken build fails instead of hanging.
//!
//! `trama-echo` is looked for next to the `trama-multi` binary, and built
//! once (`cargo build -p trama-echo -p trama-chat`) if it is not there, so
//! `cargo test -p trama-multi` works on its own. Python 3 is required by some
//! tests: if it is missing, they fail with a message saying so (set `PYTHON`
//! to point at another interpreter).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use trama_test_support::console::{Console, DEADLINE};
use trama_test_support::{python3, python_script, run_command, workspace_binary, ServerProcess};

const MULTI: &str = env!("CARGO_BIN_EXE_trama-multi");

/// Unwrap a helper's result, showing its message as is.
fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Another binary of the workspace, next to this package's (built if missing).
fn sibling(name: &str) -> PathBuf {
    ok(workspace_binary(MULTI, name, &["trama-echo", "trama-chat"]))
}

/// `trama-echo serve` on `addr` (`127.0.0.1:0` for a free port), framed or
/// in the notes' raw dialect.
fn echo(addr: &str, framed: bool) -> ServerProcess {
    let mut cmd = Command::new(sibling("trama-echo"));
    cmd.args(["serve", "--addr", addr]).env_remove("RUST_LOG");
    if framed {
        cmd.arg("--framed");
    }
    ok(ServerProcess::from_command(cmd))
}

/// The notes' server number `n` (raw dialect: "Acción del servidor N asociada
/// a ..."), on `port` (0 for a free one).
fn notes_server(port: u16, n: u32) -> ServerProcess {
    let mut cmd = Command::new(ok(python3()));
    cmd.arg("-u")
        .arg(ok(python_script("notes_server.py")))
        .arg(port.to_string())
        .arg(n.to_string());
    ok(ServerProcess::from_command(cmd))
}

/// What the notes' server `n` answers to `text`.
fn notes_reply(n: u32, text: &str) -> String {
    format!("Acción del servidor {n} asociada a {text}")
}

/// Kill a server by its pid, as a crash would, and reap it: its port is
/// free again when this returns.
fn kill(mut server: ServerProcess) {
    let pid = server.pid().to_string();
    if cfg!(unix) {
        let status = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -KILL {pid}: {status}");
        ok(server.wait_exit(DEADLINE));
    } else {
        // Dropping it kills it (by its pid) and reaps it.
        drop(server);
    }
}

/// `trama-multi --server S` for each of `servers`, reconnecting quickly.
fn start<S: AsRef<str>>(servers: &[S]) -> Console {
    let mut cmd = Command::new(MULTI);
    for s in servers {
        cmd.args(["--server", s.as_ref()]);
    }
    cmd.args(["--wait", "500ms", "--max-backoff", "250ms"]);
    Console::spawn("trama-multi", cmd)
}

fn connected(label: &str, addr: SocketAddr) -> String {
    format!("* {label} connected ({addr})")
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn the_notes_two_servers_each_answer_their_own_lines() {
    let uno = notes_server(0, 1);
    let dos = notes_server(0, 2);
    let mut console = start(&[format!("raw:{}", uno.addr()), format!("raw:{}", dos.addr())]);
    console.expect_all(&[&connected("1", uno.addr()), &connected("2", dos.addr())]);

    console.say("@1 hola");
    console.expect(&format!("[1] {}", notes_reply(1, "hola")));
    console.say("@2 chao");
    console.expect(&format!("[2] {}", notes_reply(2, "chao")));
    console.say("@1 ¿qué tal, señor?");
    console.expect(&format!("[1] {}", notes_reply(1, "¿qué tal, señor?")));
    console.say("@all x");
    console.expect_all(&[
        &format!("[1] {}", notes_reply(1, "x")),
        &format!("[2] {}", notes_reply(2, "x")),
    ]);

    let lines = console.finish_ok();
    let wrong = lines
        .iter()
        .filter(|l| {
            (l.starts_with("[1]") && l.contains("chao"))
                || (l.starts_with("[2]") && (l.contains("hola") || l.contains("señor")))
                || l.contains(" is down ")
                || l.contains("held")
        })
        .collect::<Vec<_>>();
    assert!(
        wrong.is_empty(),
        "unexpected lines {wrong:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn framed_and_raw_servers_together_addressed_by_name_and_number() {
    let framed = echo("127.0.0.1:0", true);
    let raw = echo("127.0.0.1:0", false);
    let mut console = start(&[
        format!("eco={}", framed.addr()),
        format!("crudo=raw:{}", raw.addr()),
    ]);
    console.expect_all(&[
        &connected("eco", framed.addr()),
        &connected("crudo", raw.addr()),
    ]);

    console.say("@eco hola, marco");
    console.expect("[eco] hola, marco");
    console.say("@crudo hola, crudo");
    console.expect("[crudo] hola, crudo");
    console.say("@2 por número");
    console.expect("[crudo] por número");
    console.say("@1 también");
    console.expect("[eco] también");
    console.say("@all a todos");
    console.expect_all(&["[eco] a todos", "[crudo] a todos"]);
    console.finish_ok();
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn a_server_that_dies_is_reported_and_its_held_line_goes_out_when_it_is_back() {
    let uno = notes_server(0, 1);
    let addr = uno.addr();
    let dos = echo("127.0.0.1:0", true);
    let mut console = start(&[format!("raw:{addr}"), dos.addr().to_string()]);
    console.expect_all(&[&connected("1", addr), &connected("2", dos.addr())]);
    console.say("@1 antes");
    console.expect(&format!("[1] {}", notes_reply(1, "antes")));

    kill(uno);
    console.expect_match("`* 1 is down (...)`", |l| l.starts_with("* 1 is down ("));
    console.say("@1 guardado");
    console.expect_match("saying the line for 1 is held", |l| {
        l.starts_with("* 1 is not connected") && l.contains("held") && l.contains("(1 waiting)")
    });
    console.say("@2 sigo aquí");
    console.expect("[2] sigo aquí");

    // Back on the address it had; the console's input stays open and idle.
    let uno = notes_server(addr.port(), 1);
    assert_eq!(
        uno.addr(),
        addr,
        "the server did not come back on its address"
    );
    console.expect(&format!("* 1 connected ({addr}); sent 1 held line"));
    console.expect(&format!("[1] {}", notes_reply(1, "guardado")));

    console.say("@all después");
    console.expect_all(&[
        format!("[1] {}", notes_reply(1, "después")).as_str(),
        "[2] después",
    ]);
    let lines = console.finish_ok();
    let guardado = lines.iter().filter(|l| l.contains("guardado")).count();
    assert_eq!(
        guardado,
        1,
        "the held line was answered {guardado} times:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_console_started_before_its_server_connects_when_the_server_appears() {
    // An address nothing listens on any more: the one a server just had.
    let gone = echo("127.0.0.1:0", true);
    let addr = gone.addr();
    kill(gone);

    let mut console = start(&[addr.to_string()]);
    console.expect_match("`* 1 is down (...)`", |l| l.starts_with("* 1 is down ("));
    console.say("@1 temprano");
    console.expect_match("saying the line is held", |l| {
        l.starts_with("* 1 is not connected") && l.contains("held")
    });

    let server = echo(&addr.to_string(), true);
    assert_eq!(server.addr(), addr);
    console.expect(&format!("* 1 connected ({addr}); sent 1 held line"));
    console.expect("[1] temprano");
    console.say("@1 ya estás");
    console.expect("[1] ya estás");
    console.finish_ok();
}

#[test]
fn bad_lines_get_a_notice_and_the_console_goes_on() {
    let server = echo("127.0.0.1:0", false);
    let mut console = start(&[format!("eco=raw:{}", server.addr())]);
    console.expect(&connected("eco", server.addr()));

    console.say("hola sin arroba");
    console.expect("* start the line with @1, @NAME or @all (servers: eco)");
    console.say("@nadie hola");
    console.expect("* no server \"nadie\" (servers: eco)");
    console.say("@2 hola");
    console.expect("* no server \"2\" (servers: eco)");
    console.say("@0 hola");
    console.expect("* no server \"0\" (servers: eco)");
    console.say("@");
    console.expect("* no server \"\" (servers: eco)");
    console.say("   ");
    console.say("@eco sigo aquí");
    console.expect("[eco] sigo aquí");
    console.finish_ok();
}

#[test]
fn lines_held_for_a_server_that_never_comes_are_reported_and_the_exit_is_1() {
    let nobody = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut console = start(&[format!("nadie=raw:{nobody}"), format!("tampoco={nobody}")]);
    console.say("@all hola");
    console.say("@nadie otra");
    console.expect_match("the held line", |l| l.contains("is not connected"));
    let done = console.finish();
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr
            .contains("lines never sent, their server not connected: 2 for nadie, 1 for tampoco"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_bad_server_is_refused_at_start() {
    for (spec, complaint) in [
        ("all=127.0.0.1:1", "cannot label a server"),
        ("127.0.0.1", "expected HOST:PORT"),
    ] {
        let mut cmd = Command::new(MULTI);
        cmd.args(["--server", spec]).env_remove("RUST_LOG");
        let (status, _, stderr) = ok(run_command(cmd, DEADLINE));
        assert!(
            !status.success() && stderr.contains(complaint),
            "--server {spec}: exit {status}, stderr:\n{stderr}"
        );
    }
}

/// A CA and a certificate it signed for 127.0.0.1, as PEM files (`ca.pem`,
/// `cert.pem`, `key.pem` readable by its owner only) in a directory of
/// their own, removed on drop.
struct Pki(PathBuf);

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("trama-multi-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        trama_test_support::pki::Pki::new()
            .and_then(|p| p.write_to(&dir))
            .unwrap();
        Pki(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tls_to_a_framed_server_plain_to_a_raw_one_and_an_untrusted_certificate_is_down() {
    let pki = Pki::new("tls");
    let stranger = Pki::new("stranger");
    let mut cmd = Command::new(sibling("trama-echo"));
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.file("cert.pem"))
        .arg("--tls-key")
        .arg(pki.file("key.pem"))
        .env_remove("RUST_LOG");
    let secure = ok(ServerProcess::from_command(cmd));
    let raw = echo("127.0.0.1:0", false);
    let servers = [
        format!("tls={}", secure.addr()),
        format!("crudo=raw:{}", raw.addr()),
    ];
    let console_with = |ca: PathBuf| {
        let mut cmd = Command::new(MULTI);
        for s in &servers {
            cmd.args(["--server", s]);
        }
        cmd.args(["--wait", "500ms", "--max-backoff", "250ms", "--tls-ca"])
            .arg(ca);
        Console::spawn("trama-multi --tls-ca", cmd)
    };

    let mut console = console_with(pki.file("ca.pem"));
    console.expect_all(&[
        &connected("tls", secure.addr()),
        &connected("crudo", raw.addr()),
    ]);
    console.say("@tls cifrado");
    console.expect("[tls] cifrado");
    console.say("@crudo en claro");
    console.expect("[crudo] en claro");
    console.finish_ok();

    // Trusting another authority: the TLS server is down, the raw one works.
    let mut console = console_with(stranger.file("ca.pem"));
    // The two lines come in either order: look for each among all.
    let crudo = connected("crudo", raw.addr());
    console.expect_seen(&crudo, |l| l == crudo);
    console.expect_seen("the TLS server down on its certificate", |l| {
        l.starts_with("* tls is down (") && l.contains("certificate")
    });
    console.say("@crudo sigo");
    console.expect("[crudo] sigo");
    console.finish_ok();
}

#[test]
fn a_piped_line_over_the_limit_ends_the_input_and_says_the_limit() {
    let server = echo("127.0.0.1:0", true);
    let mut console = start(&[server.addr().to_string()]);
    console.expect(&connected("1", server.addr()));
    console.say("@1 hola");
    console.expect("[1] hola");
    // One byte over trama_cli::console::MAX_LINE: read no further than that.
    console.say(&"x".repeat(1024 * 1024 + 1));
    let done = console.finish();
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr.contains("longer than 1048576 bytes"),
        "{}",
        done.stderr
    );
}
