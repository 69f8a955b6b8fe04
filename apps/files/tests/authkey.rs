//! `trama-files` with a shared key: a sender with the key delivers (in the
//! verified format and the notes' format), one with the wrong key is
//! refused at once (no retries: a wrong key stays wrong) and nothing is
//! written.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trama_test_support::{run_command, RunOutput, ServerProcess};

const FILES: &str = env!("CARGO_BIN_EXE_trama-files");
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("trama-files-key-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("inbox")).unwrap();
    Dir(d)
}

fn key_file(dir: &Path, name: &str, key: &str) -> PathBuf {
    let path = dir.join(name);
    ok(trama_test_support::write_private(
        &path,
        &format!("{key}\n"),
    ));
    path
}

fn receiver(d: &Path, key: &Path, extra: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(FILES);
    cmd.args(["receive", "--addr", "127.0.0.1:0", "--dir"])
        .arg(d.join("inbox"))
        .arg("--key-file")
        .arg(key)
        .args(extra)
        .env_remove("RUST_LOG");
    ok(ServerProcess::from_command(cmd))
}

fn send(server: &ServerProcess, file: &Path, key: &Path, extra: &[&str]) -> RunOutput {
    let mut cmd = Command::new(FILES);
    cmd.args([
        "send",
        "--addr",
        &server.addr().to_string(),
        "--timeout",
        "20s",
    ])
    .arg("--key-file")
    .arg(key)
    .args(extra)
    .arg(file)
    .env_remove("RUST_LOG");
    ok(run_command(cmd, RUN_TIMEOUT))
}

#[test]
fn files_move_only_with_the_key() {
    for compat in [false, true] {
        let d = dir(if compat { "compat" } else { "verified" });
        let key = key_file(&d.0, "key", "clave de prueba");
        let wrong = key_file(&d.0, "wrong", "otra clave");
        let file = d.0.join("datos.bin");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let extra: &[&str] = if compat { &["--raw"] } else { &[] };
        let server = receiver(&d.0, &key, extra);

        let refused = send(&server, &file, &wrong, extra);
        assert!(!refused.0.success(), "{refused:?}");
        assert!(refused.2.contains("key handshake failed"), "{refused:?}");
        let inbox: Vec<_> = std::fs::read_dir(d.0.join("inbox")).unwrap().collect();
        assert!(inbox.is_empty(), "a refused sender left {inbox:?}");

        let delivered = send(&server, &file, &key, extra);
        assert!(
            delivered.0.success(),
            "{delivered:?}\n{}",
            server.stderr_text()
        );
        let stored = if compat { "recibido.bin" } else { "datos.bin" };
        assert_eq!(
            std::fs::read(d.0.join("inbox").join(stored)).unwrap(),
            bytes
        );
        assert!(
            server.stderr_text().contains("refused"),
            "{}",
            server.stderr_text()
        );
    }
}
