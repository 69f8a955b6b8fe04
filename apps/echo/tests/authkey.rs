//! The shared key against Python's own `multiprocessing.connection`
//! (`Listener` and `Client` with `authkey`), in both directions, for every
//! Python this machine has: the default `python3` (or `$PYTHON`) and each
//! `~/.pyenv/versions/*/bin/python`. Python 3.12 and later speak the modern
//! HMAC-SHA256 handshake; older ones the legacy HMAC-MD5, which trama
//! accepts only with `--allow-legacy-md5`. Also the app-level rules: a
//! world-readable key file is refused, and the key never reaches the logs.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trama_test_support::{python3, python_script, run_command, RunOutput, ServerProcess};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const ECHO: &str = env!("CARGO_BIN_EXE_trama-echo");
const KEY: &str = "correct horse battery staple";

fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A private directory with a key file (mode 600) holding `key` plus a newline.
struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    fn new(tag: &str) -> KeyDir {
        let dir = std::env::temp_dir().join(format!("trama-authkey-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        KeyDir { dir }
    }

    fn key(&self, name: &str, key: &str, mode: u32) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, format!("{key}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One interpreter and the `(major, minor)` it reports.
struct Python {
    path: PathBuf,
    version: (u32, u32),
}

impl Python {
    fn legacy(&self) -> bool {
        self.version < (3, 12)
    }

    fn shown(&self) -> String {
        format!(
            "{}.{} ({})",
            self.version.0,
            self.version.1,
            self.path.display()
        )
    }
}

fn version_of(path: &Path) -> Option<(u32, u32)> {
    let out = Command::new(path)
        .args([
            "-c",
            "import sys; from multiprocessing.connection import Client, Listener; \
             sys.stdout.write('%d %d' % sys.version_info[:2])",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Every Python here whose multiprocessing has Listener/Client; the default
/// one must be among them.
fn pythons() -> Vec<Python> {
    let default = PathBuf::from(ok(python3()));
    let mut found = vec![Python {
        version: version_of(&default)
            .unwrap_or_else(|| panic!("{} has no multiprocessing.connection", default.display())),
        path: default,
    }];
    if let Some(home) = std::env::var_os("HOME") {
        let versions = Path::new(&home).join(".pyenv").join("versions");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&versions)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        dirs.sort();
        for dir in dirs {
            let path = dir.join("bin").join("python");
            if path.is_file() {
                match version_of(&path) {
                    Some(version) => found.push(Python { path, version }),
                    None => println!("skipped {}: no multiprocessing.connection", path.display()),
                }
            }
        }
    }
    found
}

fn python_client(py: &Python, addr: &str, key: &Path, message: &str) -> RunOutput {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut cmd = Command::new(&py.path);
    cmd.arg("-u")
        .arg(ok(python_script("authkey_peer.py")))
        .args(["client", host, port])
        .arg(key)
        .arg(message);
    ok(run_command(cmd, RUN_TIMEOUT))
}

fn python_listener(py: &Python, key: &Path) -> ServerProcess {
    let mut cmd = Command::new(&py.path);
    cmd.arg("-u")
        .arg(ok(python_script("authkey_peer.py")))
        .arg("listen")
        .arg(key);
    ok(ServerProcess::from_command(cmd))
}

fn trama_server(key: &Path, legacy: bool) -> ServerProcess {
    let mut cmd = Command::new(ECHO);
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0", "--key-file"])
        .arg(key)
        .env("RUST_LOG", "info");
    if legacy {
        cmd.arg("--allow-legacy-md5");
    }
    ok(ServerProcess::from_command(cmd))
}

fn trama_send(addr: &str, key: &Path, legacy: bool, text: &str) -> RunOutput {
    let mut cmd = Command::new(ECHO);
    cmd.args(["send", "--addr", addr, "--text", text, "--key-file"])
        .arg(key)
        .env_remove("RUST_LOG");
    if legacy {
        cmd.arg("--allow-legacy-md5");
    }
    ok(run_command(cmd, RUN_TIMEOUT))
}

#[test]
#[cfg_attr(windows, ignore = "needs python3; under wine a test cannot start it")]
fn python_clients_and_listeners_with_authkey_against_trama_for_every_python() {
    let dir = KeyDir::new("py");
    let key = dir.key("key", KEY, 0o600);
    let wrong = dir.key("wrong", "not the key", 0o600);
    let strict = trama_server(&key, false);
    let lenient = trama_server(&key, true);
    let (strict_addr, lenient_addr) = (strict.addr().to_string(), lenient.addr().to_string());
    let mut ran = Vec::new();
    for py in pythons() {
        let who = py.shown();
        // Python's Client -> trama's server, with the right key.
        let server = if py.legacy() {
            &lenient_addr
        } else {
            &strict_addr
        };
        let out = python_client(&py, server, &key, "hola desde python");
        assert!(out.0.success(), "{who}: {out:?}");
        assert_eq!(out.1.trim(), "hola desde python", "{who}");
        // With the wrong key: Python's AuthenticationError, not a bare EOF.
        let out = python_client(&py, server, &wrong, "x");
        assert_eq!(out.0.code(), Some(2), "{who}: {out:?}");
        assert!(out.1.contains("AuthenticationError"), "{who}: {out:?}");
        if py.legacy() {
            // Legacy MD5 is refused unless allowed.
            let out = python_client(&py, &strict_addr, &key, "x");
            assert_eq!(out.0.code(), Some(2), "{who}: {out:?}");
            assert!(out.1.contains("AuthenticationError"), "{who}: {out:?}");
        }

        // trama's client -> Python's Listener.
        let listener = python_listener(&py, &key);
        let out = trama_send(
            &listener.addr().to_string(),
            &key,
            py.legacy(),
            "hola desde trama",
        );
        assert!(out.0.success(), "{who}: {out:?}");
        assert_eq!(out.1.trim(), "hola desde trama", "{who}");
        drop(listener);
        let listener = python_listener(&py, &wrong);
        let out = trama_send(&listener.addr().to_string(), &key, py.legacy(), "x");
        assert!(!out.0.success(), "{who}: {out:?}");
        assert!(out.2.contains("key handshake failed"), "{who}: {out:?}");
        drop(listener);
        if py.legacy() {
            let listener = python_listener(&py, &key);
            let out = trama_send(&listener.addr().to_string(), &key, false, "x");
            assert!(!out.0.success(), "{who}: {out:?}");
            assert!(out.2.contains("--allow-legacy-md5"), "{who}: {out:?}");
        }
        ran.push(who);
    }
    // Which interpreters ran (shown with --nocapture, and in CI logs on failure).
    println!("authkey interop ran with: {}", ran.join(", "));
    assert!(!ran.is_empty());
    // The refusals were logged with the address, and the key never was.
    let log = format!("{}{}", strict.stderr_text(), lenient.stderr_text());
    assert!(log.contains("refused: key handshake failed"), "{log}");
    assert!(log.contains("127.0.0.1:"), "{log}");
    assert!(!log.contains(KEY), "the key reached the log: {log}");
}

#[test]
fn a_world_readable_key_file_is_refused() {
    let dir = KeyDir::new("mode");
    #[cfg(unix)]
    {
        let open = dir.key("open", KEY, 0o644);
        let mut cmd = Command::new(ECHO);
        cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0", "--key-file"])
            .arg(&open);
        let out = ok(run_command(cmd, RUN_TIMEOUT));
        assert!(!out.0.success(), "{out:?}");
        assert!(out.2.contains("readable by every user"), "{out:?}");
        assert!(out.2.contains("chmod 600"), "{out:?}");
        assert!(!out.2.contains(KEY), "{out:?}");
    }
    // The variable names the file when the flag is absent.
    let key = dir.key("key", KEY, 0o600);
    let mut cmd = Command::new(ECHO);
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0"])
        .env("TRAMA_KEY_FILE", &key);
    let server = ok(ServerProcess::from_command(cmd));
    let addr = server.addr().to_string();
    let mut plain = Command::new(ECHO);
    plain
        .args([
            "send",
            "--addr",
            &addr,
            "--text",
            "sin clave",
            "--timeout",
            "2s",
        ])
        .env_remove("TRAMA_KEY_FILE");
    let out = ok(run_command(plain, RUN_TIMEOUT));
    assert!(!out.0.success(), "no key got in: {out:?}");
    let mut keyed = Command::new(ECHO);
    keyed
        .args(["send", "--addr", &addr, "--text", "con clave"])
        .env("TRAMA_KEY_FILE", &key);
    let out = ok(run_command(keyed, RUN_TIMEOUT));
    assert!(out.0.success(), "{out:?}");
    assert_eq!(out.1.trim(), "con clave");
}

/// A CA and a certificate it signed for 127.0.0.1, written as PEM files in
/// a directory of their own under `dir`: (CA, certificate, key).
fn make_pki(dir: &KeyDir, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let sub = dir.dir.join(tag);
    std::fs::create_dir_all(&sub).unwrap();
    let files = trama_test_support::pki::Pki::new()
        .and_then(|p| p.write_to(&sub))
        .unwrap();
    (files.ca, files.cert, files.key)
}

#[test]
fn echo_over_tls_with_a_key_and_an_untrusted_certificate() {
    let dir = KeyDir::new("tls");
    let (ca, cert, tls_key) = make_pki(&dir, "good");
    let (other_ca, _, _) = make_pki(&dir, "other");
    let key = dir.key("key", KEY, 0o600);
    let mut cmd = Command::new(ECHO);
    cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&tls_key)
        .arg("--key-file")
        .arg(&key)
        .env("RUST_LOG", "info");
    let server = ok(ServerProcess::from_command(cmd));
    let addr = server.addr().to_string();
    let send = |ca: &Path, text: &str| {
        let mut cmd = Command::new(ECHO);
        cmd.args(["send", "--addr", &addr, "--text", text, "--tls-ca"])
            .arg(ca)
            .arg("--key-file")
            .arg(&key);
        ok(run_command(cmd, RUN_TIMEOUT))
    };
    let out = send(&ca, "hola cifrado");
    assert!(out.0.success(), "{out:?}");
    assert_eq!(out.1.trim(), "hola cifrado");
    let out = send(&other_ca, "x");
    assert!(!out.0.success(), "{out:?}");
    assert!(out.2.contains("certificate"), "{out:?}");
    assert!(!server.stderr_text().contains(KEY));
    // A TLS key every user may read is refused like a shared key.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tls_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cmd = Command::new(ECHO);
        cmd.args(["serve", "--framed", "--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&tls_key);
        let out = ok(run_command(cmd, RUN_TIMEOUT));
        assert!(!out.0.success(), "{out:?}");
        assert!(out.2.contains("readable by every user"), "{out:?}");
    }
}
