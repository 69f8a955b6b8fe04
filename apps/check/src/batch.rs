//! `trama-check batch DIR`: every submission folder, each in a job of its own.
//!
//! Each subfolder of DIR is a submission. A job (this program again, with
//! `--one NAME`) copies it into a fresh folder (or runs it in place), starts
//! its server with the `--spawn` template (`{}` becomes that folder's path,
//! quoted for the shell; the command runs inside it), checks it with a time
//! limit, stops it with everything it started, and hands its row back in a
//! file. On Linux the job lives in a network namespace of its own
//! (isolate.rs), so `--jobs N` can check N submissions that all listen on
//! the same fixed port at once. A server that does not start is a row with
//! the reason instead of verdicts. The rows come back in the order of the
//! names; they go to a CSV (one row per submission, one column per check)
//! and a JSON summary. `--shard K/N` takes a share of the names.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
    /// Submissions checked at once.
    pub jobs: usize,
    /// Check only share K of N (1-based).
    pub shard: Option<(usize, usize)>,
    /// Run each submission in its own folder instead of a fresh copy.
    pub in_place: bool,
    /// A program kind other than a server (`--program`): its checks instead
    /// of the server battery.
    pub program: Option<crate::programs::Program>,
    /// file-receiver: the file each program writes, relative to its folder.
    pub saved: Option<PathBuf>,
    /// file-sender: the file each program reads, relative to its folder.
    pub sent: Option<PathBuf>,
    /// peer: where each program listens.
    pub peer: Option<String>,
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

/// Share `k` of `n` of `subs` (sorted): the 1st, n+1st, ... go to share 1.
pub fn shard<T: Clone>(subs: &[T], k: usize, n: usize) -> Vec<T> {
    subs.iter()
        .enumerate()
        .filter(|(i, _)| n > 0 && i % n == k.wrapping_sub(1))
        .map(|(_, s)| s.clone())
        .collect()
}

fn name_of(folder: &Path) -> String {
    folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether a batch job can have a network namespace here (asked of a
/// process of its own, since a user namespace needs a fresh process).
fn jobs_get_a_network(job: &Job) -> Result<(), String> {
    let out = Command::new(&job.exe)
        .arg("--probe-isolation")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", job.exe.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// How the batch starts a job: this program again, with the batch's own
/// arguments and `--one NAME --row-out FILE`.
#[derive(Debug, Clone)]
pub struct Job {
    /// This program.
    pub exe: PathBuf,
    /// The batch's arguments (after the program name).
    pub args: Vec<OsString>,
}

/// Run the batch, printing a line per submission on `out` (in the order of
/// the names, whatever order the jobs end in), and write the CSV and JSON
/// files. Each submission is checked by a process of its own (`job`), in a
/// network namespace of its own where there can be one.
pub fn run(
    batch: &Batch,
    job: &Job,
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
    let mut subs = submissions(&dir)?;
    if let Some((k, n)) = batch.shard {
        subs = shard(&subs, k, n);
    }
    let mut jobs = batch.jobs.max(1).min(subs.len().max(1));
    if jobs > 1 && batch.addr.is_some() {
        if let Err(why) = jobs_get_a_network(job) {
            crate::isolate::missing(&format!(
                "each submission's own network ({why}); with a fixed --addr they all need the \
                 same port, so they are checked one at a time (--jobs 1)"
            ));
            jobs = 1;
        }
    }
    let scratch = std::env::temp_dir().join(format!("trama-check-batch-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|source| BatchError::Write {
        path: scratch.clone(),
        source,
    })?;
    let next = AtomicUsize::new(0);
    let seen = Mutex::new(BTreeSet::new());
    let (tx, rx) = mpsc::channel::<(usize, Row)>();
    let mut rows: Vec<Option<Row>> = vec![None; subs.len()];
    thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (subs, next, seen, scratch) = (&subs, &next, &seen, &scratch);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(folder) = subs.get(i) else { break };
                let row = run_job(batch, job, checks, folder, scratch, i, seen);
                if tx.send((i, row)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut printed = 0;
        for (i, row) in rx {
            rows[i] = Some(row);
            while let Some(Some(row)) = rows.get(printed) {
                let line = match &row.error {
                    Some(e) => format!("{}: not checked: {}", row.submission, first_line(e)),
                    None => format!("{}: {}", row.submission, row.report.summary()),
                };
                // The results still go to the files if the terminal is gone.
                let _ = writeln!(out, "{line}");
                printed += 1;
            }
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let rows: Vec<Row> = rows.into_iter().flatten().collect();
    write_tables(
        &batch.csv,
        &batch.json,
        &dir.to_string_lossy(),
        &batch.template,
        &rows,
        checks,
    )?;
    Ok(rows)
}

/// Write the CSV and the JSON summary of `rows`.
pub fn write_tables(
    csv: &Path,
    json: &Path,
    dir: &str,
    command: &str,
    rows: &[Row],
    checks: &[Check],
) -> Result<(), BatchError> {
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| BatchError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(csv, report::csv(rows, checks))?;
    let summary = report::batch_json(dir, command, rows);
    write(json, format!("{summary:#}\n"))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The longest a job may take before the batch stops it: every wait it
/// has, and a minute for everything else.
fn job_deadline(batch: &Batch) -> Duration {
    batch.start_timeout + batch.time_limit + 3 * GRACE + Duration::from_secs(60)
}

/// Check one submission in a process of its own and read its row back.
fn run_job(
    batch: &Batch,
    job: &Job,
    checks: &[Check],
    folder: &Path,
    scratch: &Path,
    index: usize,
    seen: &Mutex<BTreeSet<String>>,
) -> Row {
    let name = name_of(folder);
    let row_file = scratch.join(format!("{index}.row.json"));
    let err_file = scratch.join(format!("{index}.stderr"));
    let failed = |why: String| Row {
        submission: name.clone(),
        error: Some(why.clone()),
        report: Report::new(&name, battery::not_run(checks, &why)),
    };
    let stderr = match std::fs::File::create(&err_file) {
        Ok(f) => f,
        Err(e) => return failed(format!("cannot create {}: {e}", err_file.display())),
    };
    let started = Command::new(&job.exe)
        .args(&job.args)
        .arg("--one")
        .arg(&name)
        .arg("--row-out")
        .arg(&row_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn();
    let mut child = match started {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start the job that checks it: {e}")),
    };
    let deadline = Instant::now() + job_deadline(batch);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                stop_job(&mut child);
                break None;
            }
        }
    };
    // What the job said on stderr: each line once for the whole batch.
    let said = std::fs::read_to_string(&err_file).unwrap_or_default();
    {
        let mut seen = match seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for line in said.lines().filter(|l| !l.trim().is_empty()) {
            if seen.insert(line.to_string()) {
                eprintln!("{line}");
            }
        }
    }
    let row = std::fs::read_to_string(&row_file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| Row::from_json(&v).ok());
    let _ = std::fs::remove_file(&row_file);
    let _ = std::fs::remove_file(&err_file);
    match (row, status) {
        (Some(row), _) => row,
        (None, None) => failed(format!(
            "its job did not end within {} s and was stopped",
            job_deadline(batch).as_secs()
        )),
        (None, Some(st)) => failed(format!(
            "its job ended ({st}) without a result: {}",
            first_line(said.trim())
        )),
    }
}

/// Stop a job that overran: SIGTERM first, so its Ctrl-C handler stops the
/// server it started, then SIGKILL if it is still there after [`GRACE`].
fn stop_job(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let until = Instant::now() + GRACE;
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Copy `from` into `to` (folders and regular files; symbolic links are
/// left out, so a link cannot reach outside the submission).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// The job's side: check the submission `name` of the batch (in a fresh
/// copy unless `in_place`) and write its row, transcripts included, to `row_out`.
pub fn run_one(
    batch: &Batch,
    opts: &Options,
    checks: &[Check],
    name: &str,
    row_out: &Path,
) -> Result<(), String> {
    let folder = batch.dir.join(name);
    let copy = std::env::temp_dir().join(format!("trama-check-job-{}", std::process::id()));
    let workdir = if batch.in_place {
        folder
            .canonicalize()
            .map_err(|e| format!("{}: {e}", folder.display()))?
    } else {
        let _ = std::fs::remove_dir_all(&copy);
        let dest = copy.join(name);
        copy_tree(&folder, &dest).map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                folder.display(),
                dest.display()
            )
        })?;
        dest
    };
    let mut row = one(batch, opts, checks, &workdir, name);
    if !batch.in_place {
        let _ = std::fs::remove_dir_all(&copy);
        // What the program said names the copy; the TA knows the original
        // (and a run is then the same text whatever copy it had).
        let original = folder.canonicalize().unwrap_or(folder);
        let (from, to) = (
            workdir.to_string_lossy().into_owned(),
            original.to_string_lossy().into_owned(),
        );
        if let Some(e) = &mut row.error {
            *e = e.replace(&from, &to);
        }
        for o in &mut row.report.outcomes {
            o.reason = o.reason.replace(&from, &to);
        }
    }
    std::fs::write(row_out, format!("{}\n", row.json(true)))
        .map_err(|e| format!("cannot write {}: {e}", row_out.display()))
}

/// Start, check and stop one submission.
fn one(batch: &Batch, opts: &Options, checks: &[Check], folder: &Path, name: &str) -> Row {
    if let Some(program) = batch.program {
        return one_program(batch, program, opts, checks, folder, name);
    }
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

/// Check one submission of a program kind other than a server: each check
/// starts it afresh in its folder (the job's deadline bounds the whole).
fn one_program(
    batch: &Batch,
    program: crate::programs::Program,
    opts: &Options,
    checks: &[Check],
    folder: &Path,
    name: &str,
) -> Row {
    let ctx = crate::programs::Context {
        opts,
        spawn: Some(command_for(&batch.template, folder)),
        addr: batch.addr.clone(),
        peer: batch.peer.clone(),
        // Relative to the program's folder, where it runs (an absolute path stays).
        saved: batch.saved.as_ref().map(|p| folder.join(p)),
        sent: batch.sent.as_ref().map(|p| folder.join(p)),
        start_timeout: batch.start_timeout,
        cwd: Some(folder.to_path_buf()),
    };
    let wanted: Vec<_> = checks
        .iter()
        .filter_map(|c| match c {
            Check::Program(p) => Some(*p),
            _ => None,
        })
        .collect();
    let mut report = crate::programs::run(program, &ctx, &wanted);
    report.target = name.to_string();
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
    fn shards_split_the_sorted_list_and_cover_it() {
        let all: Vec<u32> = (0..10).collect();
        assert_eq!(shard(&all, 1, 3), [0, 3, 6, 9]);
        assert_eq!(shard(&all, 3, 3), [2, 5, 8]);
        let mut joined: Vec<u32> = (1..=4).flat_map(|k| shard(&all, k, 4)).collect();
        joined.sort();
        assert_eq!(joined, all);
        assert_eq!(shard(&all, 1, 1), all);
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
