//! `trama-check batch DIR`: every submission folder in turn, one at a time.
//!
//! Each subfolder of DIR is a submission. Its server is started with the
//! `--spawn` template (`{}` becomes the folder's path, quoted for the shell;
//! the command runs inside the folder), checked with a time limit, and
//! stopped with everything it started before the next one begins, so a fixed
//! port like the notes' 8080 is free again. A server that does not start is
//! a row with the reason instead of verdicts. The results go to a CSV (one
//! row per submission, one column per check) and a JSON summary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::battery;
use crate::plan::Check;
use crate::probes::Options;
use crate::report::{self, Report, Row};
use crate::spawn::{Launch, Server};

/// How long a stopped server gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// Why a batch could not run or save its results.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// DIR could not be listed.
    #[error("cannot list the submissions in {}: {source}", .dir.display())]
    List {
        /// The folder.
        dir: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// DIR has no subfolders.
    #[error("{} has no submission folders", .dir.display())]
    Empty {
        /// The folder.
        dir: PathBuf,
    },
    /// A result file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A batch to run.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The folder of submission folders.
    pub dir: PathBuf,
    /// The command, with `{}` for a submission's folder.
    pub template: String,
    /// The fixed address every submission listens on, or `None` to read
    /// each one's `listening on ADDR` line.
    pub addr: Option<String>,
    /// How long one submission's battery may take.
    pub time_limit: Duration,
    /// How long one submission may take to listen.
    pub start_timeout: Duration,
    /// Where the CSV goes.
    pub csv: PathBuf,
    /// Where the JSON summary goes.
    pub json: PathBuf,
}

/// `s` as one word for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The command for the submission in `folder`.
pub fn command_for(template: &str, folder: &Path) -> String {
    template.replace("{}", &shell_quote(&folder.to_string_lossy()))
}

/// The submission folders of `dir`, sorted by name (hidden ones left out).
pub fn submissions(dir: &Path) -> Result<Vec<PathBuf>, BatchError> {
    let list = |source| BatchError::List {
        dir: dir.to_path_buf(),
        source,
    };
    let mut subs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list)? {
        let entry = entry.map_err(list)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_dir() {
            subs.push(entry.path());
        }
    }
    subs.sort();
    if subs.is_empty() {
        return Err(BatchError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    Ok(subs)
}

/// Run the batch, printing a line per submission on `out` as it finishes,
/// and write the CSV and JSON files.
pub fn run(
    batch: &Batch,
    opts: &Options,
    checks: &[Check],
    out: &mut dyn Write,
) -> Result<Vec<Row>, BatchError> {
    let dir = batch
        .dir
        .canonicalize()
        .map_err(|source| BatchError::List {
            dir: batch.dir.clone(),
            source,
        })?;
    let mut rows = Vec::new();
    for folder in submissions(&dir)? {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let row = one(batch, opts, checks, &folder, &name);
        let line = match &row.error {
            Some(e) => format!("{name}: not checked: {}", first_line(e)),
            None => format!("{name}: {}", row.report.summary()),
        };
        // The results still go to the files if the terminal is gone.
        let _ = writeln!(out, "{line}");
        rows.push(row);
    }
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| BatchError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&batch.csv, report::csv(&rows, checks))?;
    let summary = report::batch_json(&dir.to_string_lossy(), &batch.template, &rows);
    write(&batch.json, format!("{summary:#}\n"))?;
    Ok(rows)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Start, check and stop one submission.
fn one(batch: &Batch, opts: &Options, checks: &[Check], folder: &Path, name: &str) -> Row {
    let launch = Launch {
        command: command_for(&batch.template, folder),
        cwd: Some(folder.to_path_buf()),
        addr: batch.addr.clone(),
        start_timeout: batch.start_timeout,
    };
    let mut server = match Server::start(&launch) {
        Ok(s) => s,
        Err(e) => {
            return Row {
                submission: name.to_string(),
                error: Some(e.to_string()),
                report: Report::new(name, battery::not_run(checks, "the server did not start")),
            }
        }
    };
    // The watchdog: past the limit (and a grace period for the check under
    // way), the whole group is killed, which ends any probe still waiting.
    let killer = server.killer();
    let (done, stop_watch) = mpsc::channel::<()>();
    let hard_limit = batch.time_limit + GRACE;
    let watchdog = thread::Builder::new()
        .name("batch-watchdog".into())
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stop_watch.recv_timeout(hard_limit) {
                killer.kill();
            }
        });
    let addr = server.addr();
    let report = battery::run(
        name,
        addr,
        opts,
        Some(&mut server),
        checks,
        Some(batch.time_limit),
    );
    // The watchdog must be done before the group is reaped and its id can be reused.
    let _ = done.send(());
    if let Ok(w) = watchdog {
        let _ = w.join();
    }
    server.stop(GRACE);
    Row {
        submission: name.to_string(),
        error: None,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(
            command_for(
                "python3 {}/servidor.py --port 0",
                Path::new("/subs/ana maría")
            ),
            "python3 '/subs/ana maría'/servidor.py --port 0"
        );
    }

    #[test]
    fn submissions_are_sorted_folders_only() {
        let dir = std::env::temp_dir().join(format!("trama-check-subs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bea", "ana", ".git"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let subs = submissions(&dir).unwrap();
        let names: Vec<_> = subs
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["ana", "bea"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(submissions(&dir), Err(BatchError::List { .. })));
    }
}
