//! `trama-files` over TLS, the real binaries: a few MiB verified and
//! unverified (where a plain connection would use sendfile, TLS goes
//! through rustls), a resumed transfer, TLS with the shared key, a sender
//! that does not trust the receiver's authority (fails at once, no file),
//! plain and TLS ends that do not match, and `--raw` refusing the TLS
//! flags. Certificates are made at test time (rcgen) in a directory of
//! their own, removed at the end; nothing here measures time.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trama_backend::files;
use trama_test_support::pki::Pki;
use trama_test_support::{run_command, RunOutput, ServerProcess};

const FILES: &str = env!("CARGO_BIN_EXE_trama-files");
/// Generous: only turns a hang into a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;

/// A scratch directory with an inbox, and a CA with a certificate it
/// signed for 127.0.0.1 as PEM files; removed on drop.
struct Setup {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir =
            std::env::temp_dir().join(format!("trama-files-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inbox")).unwrap();
        let files = ok(ok(Pki::new()).write_to(&dir));
        Setup {
            ca: files.ca,
            cert: files.cert,
            key: files.key,
            dir,
        }
    }

    fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    /// `trama-files receive` with this setup's certificate, once it listens.
    fn receiver(&self, extra: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(FILES);
        cmd.args(["receive", "--addr", "127.0.0.1:0", "--dir"])
            .arg(self.inbox())
            .arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .args(extra)
            .env_remove("RUST_LOG");
        ok(ServerProcess::from_command(cmd))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Write a file only its owner may read (keys must be, on Unix).
fn private(path: &Path, contents: &str) {
    ok(trama_test_support::write_private(path, contents));
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut v);
    v
}

/// `trama-files send --addr ADDR EXTRA... FILE`, run to its end.
fn send(addr: &str, file: &Path, extra: &[&str]) -> RunOutput {
    let mut cmd = Command::new(FILES);
    cmd.args(["send", "--addr", addr, "--timeout", "20s", "--quiet"])
        .args(extra)
        .arg(file)
        .env_remove("RUST_LOG");
    ok(run_command(cmd, RUN_TIMEOUT))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_delivered(what: &str, out: &RunOutput, receiver: &ServerProcess) {
    assert!(
        out.0.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}\nreceiver:\n{}",
        out.1,
        out.2,
        receiver.stderr_text()
    );
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn files_move_over_tls_verified_unverified_and_resumed() {
    let s = Setup::new("move");
    let receiver = s.receiver(&[]);
    let addr = receiver.addr().to_string();
    let ca = ["--tls-ca", path_str(&s.ca)];

    // A few MiB, verified: every byte through rustls and BLAKE3.
    let verified = data(4 * MIB + 123, 1);
    let path = s.dir.join("cifrado.bin");
    std::fs::write(&path, &verified).unwrap();
    let out = send(&addr, &path, &ca);
    assert_delivered("the verified send", &out, &receiver);
    assert!(out.1.contains(", verified;"), "{}", out.1);
    assert!(std::fs::read(s.inbox().join("cifrado.bin")).unwrap() == verified);

    // Unverified: on a plain connection this is sendfile; over TLS the
    // bytes must still come out whole.
    let unverified = data(3 * MIB + 7, 2);
    let path = s.dir.join("sin-digest.bin");
    std::fs::write(&path, &unverified).unwrap();
    let out = send(&addr, &path, &[&ca[..], &["--no-verify"]].concat());
    assert_delivered("the unverified send", &out, &receiver);
    assert!(out.1.contains(", not verified;"), "{}", out.1);
    assert!(std::fs::read(s.inbox().join("sin-digest.bin")).unwrap() == unverified);

    // A resume: the receiver holds the first part of a file from an
    // earlier try; the sender goes on from there, and the digest covers
    // the whole file.
    let whole = data(2 * MIB + 5, 3);
    let kept = MIB + 17;
    let part = s
        .inbox()
        .join(files::partial_name("reanudado.bin", whole.len() as u64));
    std::fs::write(&part, &whole[..kept]).unwrap();
    let path = s.dir.join("reanudado.bin");
    std::fs::write(&path, &whole).unwrap();
    let out = send(&addr, &path, &ca);
    assert_delivered("the resumed send", &out, &receiver);
    assert!(
        out.1.contains(&format!("resumed at byte {kept}, verified")),
        "{}",
        out.1
    );
    assert!(std::fs::read(s.inbox().join("reanudado.bin")).unwrap() == whole);
    assert_eq!(
        names_in(&s.inbox()),
        ["cifrado.bin", "reanudado.bin", "sin-digest.bin"]
    );
    // Each sender said goodbye inside TLS (close_notify): the receiver saw
    // clean ends, not cut connections.
    let log = receiver.stderr_text();
    assert!(
        !log.contains("bad offer") && !log.contains("refused"),
        "{log}"
    );
}

#[test]
fn tls_and_the_shared_key_combine_for_files() {
    let s = Setup::new("key");
    let key = s.dir.join("key");
    private(&key, "clave de prueba\n");
    let wrong = s.dir.join("wrong");
    private(&wrong, "otra clave\n");
    let receiver = s.receiver(&["--key-file", path_str(&key)]);
    let addr = receiver.addr().to_string();
    let path = s.dir.join("datos.bin");
    let bytes = data(MIB, 4);
    std::fs::write(&path, &bytes).unwrap();
    let ca = ["--tls-ca", path_str(&s.ca)];

    let refused = send(
        &addr,
        &path,
        &[&ca[..], &["--key-file", path_str(&wrong)]].concat(),
    );
    assert!(!refused.0.success(), "{refused:?}");
    assert!(refused.2.contains("key handshake failed"), "{refused:?}");
    assert!(!refused.2.contains("trying again"), "{refused:?}");
    assert!(names_in(&s.inbox()).is_empty());

    let out = send(
        &addr,
        &path,
        &[&ca[..], &["--key-file", path_str(&key)]].concat(),
    );
    assert_delivered("the send with the key", &out, &receiver);
    assert!(std::fs::read(s.inbox().join("datos.bin")).unwrap() == bytes);
}

#[test]
fn a_sender_that_does_not_trust_the_receiver_fails_at_once_and_writes_nothing() {
    let s = Setup::new("untrusted");
    let stranger = Setup::new("stranger");
    let receiver = s.receiver(&[]);
    let addr = receiver.addr().to_string();
    let path = s.dir.join("secreto.bin");
    std::fs::write(&path, data(64 * 1024, 5)).unwrap();

    // Another authority: a verdict, not a glitch, so no retries.
    let out = send(&addr, &path, &["--tls-ca", path_str(&stranger.ca)]);
    assert!(!out.0.success(), "{out:?}");
    assert!(
        out.2.contains("tls: ") && out.2.contains("certificate"),
        "{}",
        out.2
    );
    assert!(!out.2.contains("trying again"), "{}", out.2);
    // The wrong name, from the right authority.
    let out = send(
        &addr,
        &path,
        &[
            "--tls-ca",
            path_str(&s.ca),
            "--tls-server-name",
            "elsewhere.example",
        ],
    );
    assert!(!out.0.success(), "{out:?}");
    assert!(out.2.contains("certificate"), "{}", out.2);

    // A plain sender at the TLS receiver: refused with the fix, at once,
    // and nothing written.
    let out = send(&addr, &path, &[]);
    assert!(!out.0.success(), "{out:?}");
    assert!(out.2.contains("it speaks TLS; give --tls-ca"), "{}", out.2);
    assert!(!out.2.contains("trying again"), "{}", out.2);
    assert!(
        names_in(&s.inbox()).is_empty(),
        "{:?}",
        names_in(&s.inbox())
    );

    // The receiver logged each refusal and goes on serving.
    let log = receiver.stderr_text();
    assert!(log.contains("refused: tls: "), "{log}");
    let out = send(&addr, &path, &["--tls-ca", path_str(&s.ca)]);
    assert_delivered("the trusting send", &out, &receiver);
}

#[test]
fn a_tls_sender_at_a_plain_receiver_says_so() {
    let s = Setup::new("plain-receiver");
    let mut cmd = Command::new(FILES);
    cmd.args(["receive", "--addr", "127.0.0.1:0", "--dir"])
        .arg(s.inbox())
        .env_remove("RUST_LOG");
    let receiver = ok(ServerProcess::from_command(cmd));
    let path = s.dir.join("datos.bin");
    std::fs::write(&path, data(1024, 6)).unwrap();
    let out = send(
        &receiver.addr().to_string(),
        &path,
        &["--tls-ca", path_str(&s.ca), "--retries", "0"],
    );
    assert!(!out.0.success(), "{out:?}");
    assert!(out.2.contains("tls: "), "{}", out.2);
    assert!(names_in(&s.inbox()).is_empty());
}

#[test]
fn compat_refuses_the_tls_flags_on_both_sides() {
    let s = Setup::new("compat");
    let mut cmd = Command::new(FILES);
    cmd.args(["receive", "--raw", "--addr", "127.0.0.1:0", "--dir"])
        .arg(s.inbox())
        .arg("--tls-cert")
        .arg(&s.cert)
        .arg("--tls-key")
        .arg(&s.key);
    let out = ok(run_command(cmd, RUN_TIMEOUT));
    assert!(!out.0.success(), "{out:?}");
    assert!(out.2.contains("has no TLS"), "{}", out.2);

    let path = s.dir.join("datos.bin");
    std::fs::write(&path, b"hola").unwrap();
    // Refused before any connection: the address is never dialed.
    let out = send(
        "127.0.0.1:9",
        &path,
        &["--raw", "--tls-ca", path_str(&s.ca)],
    );
    assert!(!out.0.success(), "{out:?}");
    assert!(out.2.contains("has no TLS"), "{}", out.2);
}
