//! End-to-end tests of the `trama-echo` binary: the real process, talking to
//! Python programs written from the course notes (`tests/python`) and to
//! plain Rust sockets.
//!
//! Python 3 is required: if it is missing, the tests that need it fail with a
//! message saying so (set `PYTHON` to point at another interpreter).

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use trama_test_support::{python_script, run_command, run_python, RunOutput, ServerProcess};

/// Generous: CI machines are slow and busy; no test measures time.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

const ECHO: &str = env!("CARGO_BIN_EXE_trama-echo");

/// Unwrap a helper's result, showing its message as is.
fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn serve(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    ok(ServerProcess::start(ECHO, args))
}

fn run_echo(args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(ECHO);
    cmd.args(args).env_remove("RUST_LOG");
    ok(run_command(cmd, RUN_TIMEOUT))
}

/// Assert the run succeeded and return its stdout.
fn success(what: &str, (status, stdout, stderr): RunOutput, server: &ServerProcess) -> String {
    assert!(
        status.success(),
        "{what} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver stderr:\n{}",
        server.stderr_text()
    );
    stdout
}

fn python(script: &str, server: &ServerProcess, messages: &[&str]) -> String {
    let addr = server.addr();
    let mut args = vec![addr.ip().to_string(), addr.port().to_string()];
    args.extend(messages.iter().map(|m| m.to_string()));
    let out = ok(run_python(ok(python_script(script)), &args, RUN_TIMEOUT));
    success(script, out, server)
}

fn send(server: &ServerProcess, args: &[&str]) -> String {
    let addr = server.addr().to_string();
    let mut all = vec!["send", "--addr", &addr, "--timeout", "20s"];
    all.extend_from_slice(args);
    success(&all.join(" "), run_echo(&all), server)
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn unframed_server_answers_the_notes_json_client() {
    let server = serve(&[]);
    let out = python("echo_json_client.py", &server, &[]);
    assert_eq!(out, "{\"1\": \"Hola\", \"2\": \"Chao\"}\n");
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn unframed_server_answers_the_notes_pickle_client() {
    let server = serve(&[]);
    let out = python("echo_pickle_client.py", &server, &[]);
    assert_eq!(out, "Ana\n");
}

const MESSAGES: [&str; 5] = ["hola", "", "chao", "¿qué tal? ñandú", "último"];

fn expected_lines() -> String {
    MESSAGES.iter().map(|m| format!("{m}\n")).collect()
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn framed_server_answers_a_python_framed_client() {
    let server = serve(&["--framed"]);
    let out = python("framed_client.py", &server, &MESSAGES);
    assert_eq!(out, expected_lines());
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn framed_server_answers_multiprocessing_connection() {
    let server = serve(&["--framed"]);
    let out = python("mp_client.py", &server, &MESSAGES);
    assert_eq!(out, expected_lines());
}

#[test]
fn send_json_text_and_persona_to_a_framed_server() {
    let server = serve(&["--framed"]);
    assert_eq!(
        send(&server, &["--json", r#"{"1": "Hola", "2": "Chao"}"#]),
        "{\"1\":\"Hola\",\"2\":\"Chao\"}\n"
    );
    assert_eq!(send(&server, &["--text", "hola mundo"]), "hola mundo\n");
    assert_eq!(
        send(&server, &["--persona", "Ana", "ana@example.com"]),
        // As a person reads it, not Rust's Debug output.
        "Ana <ana@example.com>\n"
    );
}

#[test]
fn send_raw_json_to_an_unframed_server() {
    let server = serve(&[]);
    assert_eq!(
        send(
            &server,
            &["--raw", "--json", r#"{"1": "Hola", "2": "Chao"}"#]
        ),
        "{\"1\":\"Hola\",\"2\":\"Chao\"}\n"
    );
}

fn notes_server(extra: &[&str]) -> ServerProcess {
    let python = ok(trama_test_support::python3());
    let script = ok(python_script("notes_echo_server.py"));
    let mut cmd = Command::new(python);
    cmd.arg("-u").arg(script).arg("0").args(extra);
    ok(ServerProcess::from_command(cmd))
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn send_raw_text_to_the_notes_python_server() {
    let server = notes_server(&[]);
    assert_eq!(send(&server, &["--raw", "--text", "hola"]), "hola\n");
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn send_framed_text_to_the_notes_python_framed_server() {
    let server = notes_server(&["--framed"]);
    assert_eq!(send(&server, &["--text", "hola"]), "hola\n");
}

/// An address on which nothing listens, held so no other test's server can
/// be given it meanwhile: the local port of a connected client socket. Keep
/// the returned sockets alive while using the address.
fn closed_addr() -> (SocketAddr, [TcpStream; 2]) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (client.local_addr().unwrap(), [client, accepted])
}

fn non_empty_lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn send_to_a_closed_port_fails_with_one_clear_line() {
    let (addr, _hold) = closed_addr();
    let addr = addr.to_string();
    let (status, stdout, stderr) = run_echo(&["send", "--addr", &addr, "--text", "hola"]);
    assert!(!status.success(), "send succeeded? stdout: {stdout}");
    let lines = non_empty_lines(&stderr);
    assert_eq!(lines.len(), 1, "want one line on stderr, got:\n{stderr}");
    assert!(
        lines[0].contains(&addr),
        "stderr does not name {addr}:\n{stderr}"
    );
    assert!(lines[0].contains("connect"), "stderr:\n{stderr}");
}

#[test]
fn serve_on_a_busy_address_says_it_cannot_listen() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, stderr) = run_echo(&["serve", "--addr", &addr]);
    assert!(
        !status.success(),
        "serve on a busy address exited 0:\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("cannot listen") && l.contains(&addr)),
        "no `cannot listen on {addr}` line on stderr:\n{stderr}"
    );
    drop(taken);
}

/// Send `signal` to the server (by its own pid) and check it exits 0.
#[cfg(unix)]
fn stops_cleanly_on(signal: &str, with_client: bool) {
    let mut server = serve(&["--framed"]);
    let client = with_client.then(|| {
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        assert_eq!(round_trip(&mut c, b"hola"), b"hola");
        c
    });
    let pid = server.pid().to_string();
    let status = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid} failed: {status}");
    let exit = ok(server.wait_exit(RUN_TIMEOUT));
    assert!(
        exit.success(),
        "serve exited with {exit} after {signal}; stderr:\n{}",
        server.stderr_text()
    );
    drop(client);
}

#[cfg(unix)]
#[test]
fn serve_exits_0_on_sigint() {
    stops_cleanly_on("-INT", false);
}

#[cfg(unix)]
#[test]
fn serve_exits_0_on_sigterm_with_a_client_connected() {
    stops_cleanly_on("-TERM", true);
}

fn write_frame(stream: &mut TcpStream, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap();
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).unwrap();
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).unwrap();
    payload
}

fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    write_frame(stream, payload);
    read_frame(stream)
}

#[test]
fn fifty_concurrent_framed_clients_all_get_their_echoes() {
    const CLIENTS: usize = 50;
    let server = serve(&["--framed"]);
    let addr = server.addr();
    let start = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                // Everyone connects at once; nothing can panic before the barrier.
                start.wait();
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                let messages: Vec<Vec<u8>> = vec![
                    format!("cliente {i}").into_bytes(),
                    Vec::new(),
                    // Larger than one read, so frames arrive in pieces.
                    (0..100_000u32)
                        .map(|b| (b as usize * 31 + i) as u8)
                        .collect(),
                    format!("adiós {i}").into_bytes(),
                ];
                for m in &messages {
                    assert_eq!(&round_trip(&mut stream, m), m, "client {i}");
                }
                // Pipelined: all out first, then all back, in order.
                for m in &messages {
                    write_frame(&mut stream, m);
                }
                for m in &messages {
                    assert_eq!(&read_frame(&mut stream), m, "client {i}, pipelined");
                }
            })
        })
        .collect();
    let failures: Vec<usize> = threads
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| t.join().is_err().then_some(i))
        .collect();
    assert!(
        failures.is_empty(),
        "clients {failures:?} failed; server stderr:\n{}",
        server.stderr_text()
    );
}
