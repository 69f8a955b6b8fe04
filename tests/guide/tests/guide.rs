//! Runs the console blocks of the guide (`docs/guide`) and the guía
//! (`docs/guia`); see the crate docs of `trama-guide-tests` for how a block
//! is written and marked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use trama_guide_tests::{
    console_blocks, exercise_blocks, matched_in_order, problems, shows_verbatim, trama_programs,
    Block, Marker, Step,
};
use trama_test_support::{run_command, READY_PREFIX};

/// A foreground command that takes longer than this is killed and fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a background server may take to print `listening on ADDR`, and
/// a background program to print the lines the guide shows after it.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(20);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every Markdown file of the guide and the guía, sorted; both must exist.
fn guide_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["docs/guide", "docs/guia"] {
        let path = workspace().join(dir);
        let mut here: Vec<PathBuf> = fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        assert!(
            here.len() > 1,
            "{dir} should hold an index and chapters, found {here:?}"
        );
        here.sort();
        files.extend(here);
    }
    files
}

fn shown_path(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn blocks_of(path: &Path) -> Vec<Block> {
    console_blocks(&fs::read_to_string(path).unwrap())
}

#[test]
fn guide_and_guia_console_blocks_are_all_marked() {
    let mut failures = Vec::new();
    let mut runnable = 0;
    for path in guide_files() {
        let blocks = blocks_of(&path);
        runnable += blocks
            .iter()
            .filter(|b| b.marker == Some(Marker::Run))
            .count();
        for problem in problems(&blocks) {
            failures.push(format!("{}: {problem}", shown_path(&path)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(runnable > 0, "the guide has no runnable console block");
}

#[test]
fn guide_and_guia_exercise_tests_match_their_solutions() {
    let mut failures = Vec::new();
    let mut shown = 0;
    for path in guide_files() {
        for block in exercise_blocks(&fs::read_to_string(&path).unwrap()) {
            shown += 1;
            let solution = workspace().join(&block.path);
            match fs::read_to_string(&solution) {
                Ok(source) if shows_verbatim(&source, &block.code) => {}
                Ok(_) => failures.push(format!(
                    "{}:{}: the code differs from {}",
                    shown_path(&path),
                    block.line,
                    block.path
                )),
                Err(e) => failures.push(format!(
                    "{}:{}: cannot read {}: {e}",
                    shown_path(&path),
                    block.line,
                    block.path
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(shown > 0, "the guide shows no exercise test");
}

#[test]
fn guide_and_guia_commands_run() {
    let files = guide_files();
    let mut runnable = Vec::new();
    for path in &files {
        for block in blocks_of(path) {
            if block.marker == Some(Marker::Run) && block.problem.is_none() {
                runnable.push((path.clone(), block));
            }
        }
    }
    assert!(
        !runnable.is_empty(),
        "the guide has no runnable console block"
    );
    let programs: BTreeSet<String> = runnable
        .iter()
        .flat_map(|(_, b)| b.steps.iter())
        .flat_map(|s| trama_programs(&s.command))
        .collect();
    let bin_dir = build(&programs);
    let runs = workspace().join("target").join("guide-runs");
    // Leftovers of an earlier run; absent on a fresh checkout.
    let _ = fs::remove_dir_all(&runs);

    let mut failures = Vec::new();
    for (path, block) in &runnable {
        let name = format!(
            "{}-{}-{}",
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            path.file_stem().unwrap().to_string_lossy(),
            block.line
        );
        let dir = runs.join(name);
        if let Err(e) = run_block(block, &bin_dir, &dir) {
            failures.push(format!("{}:{}: {e}", shown_path(path), block.line));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Builds the packages of the programs the guide runs (each app's package
/// is named like its binary) and returns the directory holding them.
fn build(programs: &BTreeSet<String>) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/<profile>
    let bin_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args(["build", "--quiet", "--bins"]);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    for program in programs {
        cmd.args(["-p", program]);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "building {programs:?} failed: {status}");
    for program in programs {
        assert!(
            bin_dir.join(program).is_file(),
            "{program} is not in {}",
            bin_dir.display()
        );
    }
    bin_dir
}

/// A program started with `&`: its output, merged, read line by line.
struct Background {
    step: Step,
    child: Child,
    /// Kept open and never written, like a terminal nobody types in: a
    /// console program in the background keeps running instead of seeing
    /// the end of its input.
    _stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Background {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // It may have exited already (a server that serves one client).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_block(block: &Block, bin_dir: &Path, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Commands name the Python programs as `tests/python/...`, from the
    // workspace root; cargo finds the workspace from this directory too.
    std::os::unix::fs::symlink(workspace().join("tests"), dir.join("tests"))
        .map_err(|e| e.to_string())?;
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .map_err(|e| e.to_string())?;
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut background = Vec::new();
    for step in &block.steps {
        let mut cmd = Command::new("sh");
        cmd.current_dir(dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .envs(vars.iter().map(|(k, v)| (k, v)));
        if step.background {
            cmd.arg("-c").arg(format!("exec {} 2>&1", step.command));
            let started = start_background(cmd, step)?;
            let addr = wait_ready(&started)?;
            let n = vars.len() / 2 + 1;
            let suffix = if n == 1 { String::new() } else { n.to_string() };
            let port = addr.rsplit(':').next().unwrap_or_default().to_string();
            vars.push((format!("ADDR{suffix}"), addr));
            vars.push((format!("PORT{suffix}"), port));
            background.push(started);
        } else {
            cmd.arg("-c").arg(format!("{{\n{}\n}} 2>&1", step.command));
            let (status, stdout, _) = run_command(cmd, COMMAND_TIMEOUT)
                .map_err(|e| format!("line {}: {}", step.line, e.message()))?;
            let lines: Vec<&str> = stdout.lines().collect();
            let found = matched_in_order(&step.expect, &lines);
            if status.code() != Some(step.exit) || found < step.expect.len() {
                return Err(format!(
                    "line {}: `{}` exited with {status} (expected {}){}; it printed:\n{stdout}",
                    step.line,
                    step.command,
                    step.exit,
                    step.expect
                        .get(found)
                        .map(|l| format!(" and never printed {l:?}"))
                        .unwrap_or_default(),
                ));
            }
        }
    }
    for bg in &background {
        let deadline = Instant::now() + BACKGROUND_TIMEOUT;
        loop {
            let lines = bg.lines();
            let found = matched_in_order(&bg.step.expect, &lines);
            if found == bg.step.expect.len() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "line {}: `{}` never printed {:?}; it printed:\n{}",
                    bg.step.line,
                    bg.step.command,
                    bg.step.expect[found],
                    lines.join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn start_background(mut cmd: Command, step: &Step) -> Result<Background, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("line {}: cannot start `{}`: {e}", step.line, step.command))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().ok_or("stdout not captured")?;
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            match line {
                Ok(line) => sink.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    });
    Ok(Background {
        step: step.clone(),
        _stdin: child.stdin.take(),
        child,
        lines,
    })
}

/// Waits for the background program's `listening on ADDR` line.
fn wait_ready(bg: &Background) -> Result<String, String> {
    let deadline = Instant::now() + BACKGROUND_TIMEOUT;
    loop {
        let lines = bg.lines();
        for line in &lines {
            if let Some(addr) = line.trim().strip_prefix(READY_PREFIX) {
                return Ok(addr.trim().to_string());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "line {}: `{}` did not print `{READY_PREFIX}ADDR` within {BACKGROUND_TIMEOUT:?}; \
                 it printed:\n{}",
                bg.step.line,
                bg.step.command,
                lines.join("\n")
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}
