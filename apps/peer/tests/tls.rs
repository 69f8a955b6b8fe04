//! `trama-peer` over TLS: two peers with certificates from one authority
//! find each other and talk; a plain peer dialing them is refused (the
//! refusal is logged, it never joins); half the TLS flags are an error at
//! start. Certificates are made at test time (rcgen) in a directory of
//! their own, removed at the end.

// Everything in this file is test code: helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use trama_test_support::console::Console as Proc;

const PEER: &str = env!("CARGO_BIN_EXE_trama-peer");

/// A CA and a certificate it signed for 127.0.0.1, as PEM files in a
/// directory removed on drop.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("trama-peer-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = trama_test_support::pki::Pki::new()
            .and_then(|p| p.write_to(&dir))
            .unwrap();
        Pki {
            ca: files.ca,
            cert: files.cert,
            key: files.key,
            dir,
        }
    }

    fn flags(&self, cmd: &mut Command) {
        cmd.arg("--tls-cert").arg(&self.cert);
        cmd.arg("--tls-key").arg(&self.key);
        cmd.arg("--tls-ca").arg(&self.ca);
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `trama-peer --name NAME` on a free port dialing `peers`, once it listens.
fn peer(name: &str, pki: Option<&Pki>, peers: &[SocketAddr]) -> Proc {
    let mut cmd = Command::new(PEER);
    cmd.args(["--name", name, "--listen", "127.0.0.1:0"]);
    cmd.args(["--wait", "500ms", "--max-backoff", "250ms"]);
    for p in peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    if let Some(pki) = pki {
        pki.flags(&mut cmd);
    }
    let mut p = Proc::spawn(name, cmd);
    p.addr();
    p
}

#[test]
fn two_tls_peers_talk_and_a_plain_one_never_joins() {
    let pki = Pki::new("talk");
    let mut ana = peer("ana", Some(&pki), &[]);
    let a_addr = ana.addr();
    let mut bea = peer("bea", Some(&pki), &[a_addr]);
    ana.expect("* bea joined");
    bea.expect("* ana joined");
    ana.say("hola por tls");
    bea.expect("ana: hola por tls");
    bea.say("recibido");
    ana.expect("bea: recibido");

    // A peer without TLS dials ana: ana refuses it (and says so on stderr).
    let carla = peer("carla", None, &[a_addr]);
    ana.expect_stderr("refused");
    let carla_lines = carla.kill();
    assert!(
        !carla_lines.iter().any(|l| l == "* ana joined"),
        "{carla_lines:?}"
    );
    let ana_lines = ana.finish_ok();
    let bea_lines = bea.finish_ok();
    for lines in [&ana_lines, &bea_lines] {
        assert!(!lines.iter().any(|l| l.contains("carla")), "{lines:?}");
    }
}

#[test]
fn half_the_tls_flags_is_an_error_at_start() {
    let pki = Pki::new("half");
    let mut cmd = Command::new(PEER);
    cmd.args(["--name", "ana", "--listen", "127.0.0.1:0"]);
    cmd.arg("--tls-cert").arg(&pki.cert);
    cmd.arg("--tls-key").arg(&pki.key);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-ca"), "{err}");
}
