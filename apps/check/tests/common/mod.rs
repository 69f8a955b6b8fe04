//! Helpers the test files of trama-check share: each includes this module
//! with `mod common;` (a file under `tests/common/` is not a test target).

// Every test file is a crate of its own and uses only some of these
// helpers; the others would be dead code there.
#![allow(dead_code)]
// Test code: the helpers panic to fail the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use trama_test_support::{python3, python_script, workspace_binary};

pub const CHECK: &str = env!("CARGO_BIN_EXE_trama-check");

/// One battery with the short windows below stays well under this.
pub const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Short windows so a battery takes seconds. The timeout only costs time
/// when a server does not answer; it is generous for a machine under load.
pub const FAST: [&str; 8] = [
    "--timeout",
    "5s",
    "--idle-window",
    "1s",
    "--settle",
    "1s",
    "--byte-gap",
    "20ms",
];

/// One run at a time: a spinning server would otherwise eat the CPU
/// another run is measuring.
pub fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn ok<T>(r: trama_test_support::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `s` as one word for `sh`.
pub fn quote(s: &Path) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"))
}

/// `python3`, quoted for `sh`.
pub fn python() -> String {
    quote(Path::new(&ok(python3())))
}

/// The shell command `python3 -u tests/python/SCRIPT ARGS`.
pub fn python_command(script: &str, args: &str) -> String {
    let script = ok(python_script(script));
    format!("{} -u {} {args}", python(), quote(&script))
}

/// The shell command that starts the Python server `name` on a free port.
pub fn defect(name: &str) -> String {
    python_command(&format!("defects/{name}.py"), "--port 0")
}

/// The `--spawn` template of a batch: each submission's `servidor.py` on `port`.
pub fn servidor_template(port: u16) -> String {
    format!("{} -u {{}}/servidor.py --port {port}", python())
}

/// A submission in `folder`: the defect server `server` (from
/// `tests/python/defects`) as `servidor.py`, with the `common.py` it imports.
pub fn submission(folder: &Path, server: &str) {
    let defects = ok(python_script("defects/common.py"));
    let defects = defects.parent().unwrap();
    std::fs::create_dir_all(folder).unwrap();
    std::fs::copy(defects.join("common.py"), folder.join("common.py")).unwrap();
    std::fs::copy(
        defects.join(format!("{server}.py")),
        folder.join("servidor.py"),
    )
    .unwrap();
}

/// `trama-echo`, next to `trama-check` (built if missing).
pub fn trama_echo() -> PathBuf {
    ok(workspace_binary(CHECK, "trama-echo", &["trama-echo"]))
}

/// `trama-check` speaking English, whatever the locale: the tests read the
/// English report.
pub fn check_command() -> Command {
    let mut cmd = Command::new(CHECK);
    cmd.env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANG");
    cmd
}

/// A report's JSON, or a failure that shows what the run printed.
pub fn parse_report(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"))
}

/// The JSON file at `path`.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The names of the checks with `status`.
pub fn with(report: &Value, status: &str) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The reason the check `name` gives.
pub fn reason<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["reason"].as_str())
        .unwrap()
}
