//! End-to-end tests of the `trama-chat` binary: the real server and `join`
//! processes, driven through their stdin, talking to each other, to plain
//! Rust sockets, and to Python programs written from the course notes
//! (`tests/python`).
//!
//! Nothing here measures time. Steps are put in order by waiting for a line
//! that can only arrive after the previous step took effect; the deadlines
//! are only there so a broken build fails instead of hanging.
//!
//! Python 3 is required by some tests: if it is missing, they fail with a
//! message saying so (set `PYTHON` to point at another interpreter).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;

use trama_test_support::console::{assert_no_line, Console as Peer, DEADLINE};
use trama_test_support::{python3, python_script, ServerProcess};

/// How long `join` keeps printing after its input ends.
const QUIET: &str = "1s";

const CHAT: &str = env!("CARGO_BIN_EXE_trama-chat");

/// Unwrap a helper's result, showing its message as is.
fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn serve() -> ServerProcess {
    let mut cmd = Command::new(CHAT);
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG");
    ok(ServerProcess::from_command(cmd))
}

/// The notes' threaded Python server, which answers "Acción asociada a ...".
fn notes_server() -> ServerProcess {
    let mut cmd = Command::new(ok(python3()));
    cmd.arg("-u")
        .arg(ok(python_script("notes_chat_server.py")))
        .arg("0");
    ok(ServerProcess::from_command(cmd))
}

/// `trama-chat join` to `addr`, naming itself `name` if given.
fn join(addr: SocketAddr, name: Option<&str>) -> Peer {
    let mut cmd = Command::new(CHAT);
    cmd.args(["join", "--addr", &addr.to_string(), "--wait", QUIET]);
    if let Some(name) = name {
        cmd.args(["--name", name]);
    }
    Peer::spawn(format!("join {}", name.unwrap_or("(no name)")), cmd)
}

/// `trama-chat join --name NAME`, once the server has confirmed the name.
fn named(addr: SocketAddr, name: &str) -> Peer {
    let mut peer = join(addr, Some(name));
    peer.expect(&format!("* you are now {name}"));
    peer
}

/// A Python program from `tests/python`, run with `args`.
fn python<S: AsRef<OsStr>>(script: &str, args: &[S]) -> Peer {
    Peer::python(script, script, args)
}

/// A framed client in the test process itself, stepped by hand.
struct Raw {
    stream: TcpStream,
    got: Vec<String>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Raw {
            stream,
            got: Vec::new(),
        }
    }

    fn send(&mut self, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap();
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
    }

    fn recv(&mut self) -> String {
        let mut header = [0u8; 4];
        let mut read = || -> std::io::Result<Vec<u8>> {
            self.stream.read_exact(&mut header)?;
            let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
            self.stream.read_exact(&mut payload)?;
            Ok(payload)
        };
        match read() {
            Ok(payload) => {
                let line = String::from_utf8(payload).unwrap();
                self.got.push(line.clone());
                line
            }
            Err(e) => panic!("raw client: no frame ({e}); got so far: {:?}", self.got),
        }
    }

    /// Read frames until one satisfies `matches`; return it.
    fn expect_match(&mut self, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.recv();
            if matches(&line) {
                return line;
            }
        }
    }

    /// Read the welcome and return the name the server gave us.
    fn welcome(&mut self) -> String {
        let line = self.expect_match(|l| l.starts_with("* welcome, "));
        let rest = line.strip_prefix("* welcome, ").unwrap();
        rest.split(';').next().unwrap().to_string()
    }
}

#[test]
fn two_clients_see_each_others_lines_and_comings_and_goings() {
    let server = serve();
    let mut ana = join(server.addr(), Some("ana"));
    ana.expect_match("welcome", |l| {
        l.starts_with("* welcome, user") && l.contains("; 1 here;")
    });
    ana.expect("* you are now ana");

    let mut bea = join(server.addr(), Some("bea"));
    bea.expect_match("welcome", |l| l.contains("; 2 here;"));
    bea.expect("* you are now bea");
    ana.expect_match("`* userN joined`", |l| {
        l.starts_with("* user") && l.ends_with(" joined")
    });
    ana.expect_match("`* userN is now bea`", |l| {
        l.starts_with("* user") && l.ends_with(" is now bea")
    });

    ana.say("hola");
    bea.expect("ana: hola");
    bea.say("hola, ana ¿qué tal?");
    ana.expect("bea: hola, ana ¿qué tal?");
    // Anything bea's line caused for bea would have come before this.
    ana.say("bien");
    bea.expect("ana: bien");
    let bea_lines = bea.finish_ok();
    assert_no_line("bea got her own line back", &bea_lines, |l| {
        l.starts_with("bea: ")
    });

    ana.expect("* bea left (peer closed the connection)");
    ana.finish_ok();
}

#[test]
fn a_private_message_reaches_only_its_target() {
    let server = serve();
    let mut ana = named(server.addr(), "ana");
    let mut bea = named(server.addr(), "bea");
    let mut cho = named(server.addr(), "cho");

    ana.say("/msg Bea nos vemos a las 5");
    ana.expect("* sent to bea");
    bea.expect("[private] ana: nos vemos a las 5");
    // cho would get the private line before this broadcast, which ana sends
    // after the server handled the /msg.
    ana.say("fin");
    cho.expect("ana: fin");
    bea.expect("ana: fin");

    let cho_lines = cho.finish_ok();
    assert_no_line("cho saw the private message", &cho_lines, |l| {
        l.contains("nos vemos")
    });
    bea.finish_ok();
    ana.finish_ok();
}

#[test]
fn a_taken_name_is_refused() {
    let server = serve();
    let mut ana = named(server.addr(), "ana");
    let mut other = join(server.addr(), None);
    let welcome = other.expect_match("welcome", |l| l.starts_with("* welcome, "));
    let default_name = welcome["* welcome, ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();

    other.say("/nick ana");
    other.expect("error: the name ana is taken");
    other.say("/nick ANA");
    other.expect("error: the name ANA is taken");
    other.say("/who");
    other.expect(&format!("* here (2): ana, {default_name}"));
    // ana kept her name: a line from her still carries it.
    ana.say("sigo siendo ana");
    other.expect("ana: sigo siendo ana");

    other.finish_ok();
    ana.finish_ok();
}

#[test]
fn quit_says_bye_and_join_exits_0_with_its_input_still_open() {
    let server = serve();
    let mut ana = named(server.addr(), "ana");
    let mut bea = named(server.addr(), "bea");

    ana.say("/quit");
    ana.expect("* bye");
    // stdin stays open: the bye alone must end the session.
    let done = ana.wait_exit();
    assert!(
        done.status.success(),
        "join exited with {} after /quit; stderr:\n{}",
        done.status,
        done.stderr
    );
    bea.expect("* ana left (quit)");
    bea.finish_ok();
}

#[test]
fn a_client_that_vanishes_mid_frame_leaves_and_the_room_goes_on() {
    let server = serve();
    let mut ana = named(server.addr(), "ana");

    let mut raw = Raw::connect(server.addr());
    let name = raw.welcome();
    ana.expect(&format!("* {name} joined"));
    // A header announcing 10 bytes, then only 5 of them, then gone.
    raw.stream.write_all(&10u32.to_be_bytes()).unwrap();
    raw.stream.write_all(b"hola ").unwrap();
    raw.stream.shutdown(Shutdown::Both).unwrap();
    drop(raw);
    let left = format!("* {name} left (");
    ana.expect_match(&format!("`{left}...)`"), |l| l.starts_with(&left));

    // The server still serves: a newcomer and ana talk.
    let mut bea = named(server.addr(), "bea");
    ana.say("/who");
    ana.expect("* here (2): ana, bea");
    ana.say("seguimos");
    bea.expect("ana: seguimos");
    bea.finish_ok();
    ana.finish_ok();
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn python_clients_and_join_talk_both_ways() {
    let server = serve();
    let (host, port) = (
        server.addr().ip().to_string(),
        server.addr().port().to_string(),
    );
    let mut ana = named(server.addr(), "ana");

    // The notes' console client, framed by hand.
    let mut py = python("chat_client.py", &[&host, &port]);
    py.expect_match("welcome", |l| l.starts_with("* welcome, "));
    py.say("/nick py");
    py.expect("* you are now py");
    ana.expect_match("`* userN is now py`", |l| l.ends_with(" is now py"));
    ana.say("hola python");
    py.expect("ana: hola python");
    py.say("hola rust, ¿qué tal?");
    ana.expect("py: hola rust, ¿qué tal?");

    // multiprocessing.connection: says its lines, then listens until the
    // line ana sends last has come.
    let mp = python(
        "chat_mp_client.py",
        &[
            "--wait-for",
            "ana: hola mp",
            &host,
            &port,
            "/nick mp",
            "hola desde mp",
        ],
    );
    ana.expect("mp: hola desde mp");
    py.expect("mp: hola desde mp");
    py.say("hola mp, soy py");
    ana.expect("py: hola mp, soy py");
    ana.say("hola mp");
    py.expect("ana: hola mp");
    let mp_lines = mp.finish_ok();
    let mp_got = |line: &str| mp_lines.iter().any(|l| l == line);
    for line in ["* you are now mp", "py: hola mp, soy py", "ana: hola mp"] {
        assert!(
            mp_got(line),
            "chat_mp_client.py did not print {line:?}:\n{}",
            mp_lines.join("\n")
        );
    }
    py.expect("* mp left (peer closed the connection)");
    ana.expect("* mp left (peer closed the connection)");

    py.finish_ok();
    ana.expect("* py left (peer closed the connection)");
    ana.finish_ok();
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn join_talks_to_the_notes_python_server_and_exits_after_its_input() {
    let server = notes_server();
    // No --name: the notes' server knows no commands.
    let mut join = join(server.addr(), None);
    join.say("hola");
    join.expect("Acción asociada a hola");
    // An empty line is an empty frame, which that server ignores.
    join.say("");
    join.say("¿qué tal?");
    // That server never closes the connection; join ends on its own once
    // its input is over and the replies have stopped.
    let lines = join.finish_ok();
    assert_eq!(
        lines,
        ["Acción asociada a hola", "Acción asociada a ¿qué tal?"],
        "server stderr:\n{}",
        server.stderr_text()
    );
}

#[test]
fn join_exits_1_when_the_server_goes_away() {
    let server = serve();
    let ana = named(server.addr(), "ana");
    // Killed (SIGKILL) and reaped.
    drop(server);
    // stdin stays open: the lost connection alone must end the session.
    let done = ana.wait_exit();
    // 1, a runtime failure in every app's table; 2 is clap's bad usage.
    assert_eq!(
        done.status.code(),
        Some(1),
        "join exited with {}; stderr:\n{}",
        done.status,
        done.stderr
    );
    let complaints: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| {
            !l.trim().is_empty() && !l.starts_with("connected to ") && !l.starts_with("sent /nick ")
        })
        .collect();
    assert_eq!(
        complaints.len(),
        1,
        "want one line about the lost connection, stderr:\n{}",
        done.stderr
    );
    assert!(
        complaints[0].contains("closed the connection"),
        "stderr:\n{}",
        done.stderr
    );
}

#[test]
fn bad_input_gets_an_error_line() {
    let server = serve();
    let mut raw = Raw::connect(server.addr());
    raw.welcome();
    raw.send(b"ok\xffno");
    assert_eq!(raw.recv(), "error: payload is not valid UTF-8 at byte 2");
    raw.send(b"/dance");
    assert_eq!(
        raw.recv(),
        "error: unknown command /dance; /help lists the commands"
    );
    // Still in the room.
    raw.send(b"/nick raw");
    assert_eq!(raw.recv(), "* you are now raw");

    // And typed into join.
    let mut ana = named(server.addr(), "ana");
    ana.say("/bailar ahora");
    ana.expect("error: unknown command /bailar; /help lists the commands");
    ana.say("//bailar");
    assert_eq!(raw.expect_match(|l| l.starts_with("ana: ")), "ana: /bailar");
    ana.finish_ok();
}
