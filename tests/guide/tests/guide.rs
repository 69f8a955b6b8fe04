//! Runs the console blocks of the guide (`docs/guide`) and the guía
//! (`docs/guia`); see the crate docs of `trama-guide-tests` for how a block
//! is written and marked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use trama_guide_tests::{
    console_blocks, exercise_blocks, powershell_commands, problems, shows_verbatim, Block, Marker,
    Solution,
};

/// Where the solutions of the Python exercises live, out of the student's
/// way: the guide never names them in its text, only on the fence of the
/// block that checks them.
const SOLUTIONS: &str = "tests/guide/solutions";

// What running the guide's commands needs (unix only: see guide_and_guia_commands_run).
#[cfg(target_os = "linux")]
use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};
#[cfg(target_os = "linux")]
use trama_guide_tests::{cargo_examples, direct_examples, file_name, trama_programs, Step};
#[cfg(target_os = "linux")]
use trama_test_support::READY_PREFIX;

/// Blocks run at once.
#[cfg(target_os = "linux")]
const PARALLEL_BLOCKS: usize = 4;
/// A foreground command that takes longer than this is killed and fails.
#[cfg(target_os = "linux")]
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a background server may take to print `listening on ADDR`, and
/// a background program to print the lines the guide shows after it.
#[cfg(target_os = "linux")]
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
fn guide_and_guia_have_the_same_chapters() {
    let names = |dir: &str| -> BTreeSet<String> {
        guide_files()
            .iter()
            .filter(|p| p.parent().is_some_and(|d| d.ends_with(dir)))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let (english, spanish) = (names("docs/guide"), names("docs/guia"));
    assert_eq!(english, spanish, "each chapter needs both languages");
    // Same blocks too, so a command fixed in one language is fixed in both.
    for name in &english {
        type Marked = (Option<Marker>, Vec<Solution>, Vec<String>, Vec<String>);
        let marked = |dir: &str| -> Vec<Marked> {
            blocks_of(&workspace().join(dir).join(name))
                .into_iter()
                .map(|b| {
                    let commands = b.steps.into_iter().map(|s| s.command).collect();
                    (b.marker, b.solutions, b.files, commands)
                })
                .collect()
        };
        assert_eq!(
            marked("docs/guide"),
            marked("docs/guia"),
            "{name}: the console blocks differ between docs/guide and docs/guia"
        );
        let powershell = |dir: &str| -> Vec<Vec<String>> {
            powershell_commands(&fs::read_to_string(workspace().join(dir).join(name)).unwrap())
                .into_iter()
                .map(|(_, commands)| commands)
                .collect()
        };
        assert_eq!(
            powershell("docs/guide"),
            powershell("docs/guia"),
            "{name}: the PowerShell blocks differ between docs/guide and docs/guia"
        );
    }
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

/// Every chapter, in both languages, has an exercise in Python checked by
/// a block that runs its solution; every solution exists, and every file
/// in the solutions folder is run by some block (none is left unchecked).
#[test]
fn every_chapter_has_a_python_exercise_run_against_its_solution() {
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    for path in guide_files() {
        let chapter = path.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(|c: char| c.is_ascii_digit())
        });
        let blocks = blocks_of(&path);
        let solutions: Vec<&Solution> = blocks.iter().flat_map(|b| &b.solutions).collect();
        if chapter && solutions.is_empty() {
            failures.push(format!(
                "{}: no block runs a Python exercise's solution (```console run solution=PATH:NAME)",
                shown_path(&path)
            ));
        }
        for solution in solutions {
            if !solution.path.starts_with(&format!("{SOLUTIONS}/")) {
                failures.push(format!(
                    "{}: {} is not in {SOLUTIONS}",
                    shown_path(&path),
                    solution.path
                ));
            }
            if !workspace().join(&solution.path).is_file() {
                failures.push(format!(
                    "{}: {} does not exist",
                    shown_path(&path),
                    solution.path
                ));
            }
            used.insert(solution.path.clone());
        }
    }
    for entry in fs::read_dir(workspace().join(SOLUTIONS)).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = format!("{SOLUTIONS}/{name}");
        if !used.contains(&path) {
            failures.push(format!("{path} is run by no block of the guide"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// The console blocks are POSIX shell sessions (sh -c, python3, kill, process
// groups), the guide's commands on Linux and macOS alike; the test runs them on
// Linux only, because each block gets a network namespace of its own (unshare,
// nsenter, ip), so that blocks on the apps' fixed ports can run side by side.
#[cfg(target_os = "linux")]
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
    let examples: BTreeSet<(String, String)> = runnable
        .iter()
        .flat_map(|(_, b)| b.steps.iter())
        .flat_map(|s| cargo_examples(&s.command))
        .collect();
    let namespaces = Namespaces::probe();
    let bin_dir = build(&programs, &examples);
    let runs = workspace().join("target").join("guide-runs");
    // Leftovers of an earlier run; absent on a fresh checkout.
    let _ = fs::remove_dir_all(&runs);

    // Blocks are independent (their own directory, servers on port 0), and
    // mostly wait on servers and timeouts: run a few at a time.
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..PARALLEL_BLOCKS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((path, block)) = runnable.get(i) else {
                    break;
                };
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
                let started = Instant::now();
                let result = run_block(block, &bin_dir, &runs.join(name), namespaces);
                // Shown with --nocapture: which blocks make the test slow.
                eprintln!(
                    "{}:{}: {:.1} s",
                    shown_path(path),
                    block.line,
                    started.elapsed().as_secs_f64()
                );
                if let Err(e) = result {
                    let failure = format!("{}:{}: {e}", shown_path(path), block.line);
                    failures.lock().unwrap().push(failure);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Builds the packages of the programs the guide runs (each app's package
/// is named like its binary) and the examples it runs with `cargo run`, and
/// returns the directory holding the binaries.
#[cfg(target_os = "linux")]
fn build(programs: &BTreeSet<String>, examples: &BTreeSet<(String, String)>) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/<profile>
    let bin_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let release = bin_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // One cargo call: each call waits for the build directory's lock.
    let mut args = vec![
        "build".to_string(),
        "--quiet".to_string(),
        "--bins".to_string(),
    ];
    let packages: BTreeSet<&str> = programs
        .iter()
        .map(|program| package_of(program))
        .chain(examples.iter().map(|(p, _)| p.as_str()))
        .collect();
    for package in packages {
        args.extend(["-p".to_string(), package.to_string()]);
    }
    for (_, example) in examples {
        args.extend(["--example".to_string(), example.clone()]);
    }
    if release {
        args.push("--release".to_string());
    }
    let status = Command::new(&cargo)
        .current_dir(workspace())
        .args(&args)
        .status()
        .unwrap();
    assert!(status.success(), "cargo {args:?} failed: {status}");
    for program in programs {
        assert!(
            bin_dir.join(program).is_file(),
            "{program} is not in {}",
            bin_dir.display()
        );
    }
    bin_dir
}

/// The package that builds a program: the app's package is named like its
/// binary, except the tap's (`trama-tap` is the tap's library crate).
#[cfg(target_os = "linux")]
fn package_of(program: &str) -> &str {
    match program {
        "trama-tap" => "trama-tap-cli",
        other => other,
    }
}

/// A shell command running in a process group of its own, its stdout
/// (where the command's stderr is also sent) read line by line.
#[cfg(target_os = "linux")]
struct Spawned {
    child: Child,
    /// For a background program: kept open and never written, like a
    /// terminal nobody types in, so a console program keeps running instead
    /// of seeing the end of its input.
    _stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
}

#[cfg(target_os = "linux")]
impl Spawned {
    fn start(mut cmd: Command, background: bool) -> std::io::Result<Spawned> {
        cmd.stdin(if background {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own group, so a timeout or the end of the block stops what
        // the command started too (a pipeline, a server it spawned).
        .process_group(0);
        let mut child = cmd.spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stdout.take().map(|out| {
            let sink = Arc::clone(&lines);
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    match line {
                        Ok(line) => sink.lock().unwrap().push(line),
                        Err(_) => break,
                    }
                }
            })
        });
        Ok(Spawned {
            _stdin: child.stdin.take(),
            child,
            lines,
            reader,
        })
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for the command to exit, at most `timeout`; then for the rest
    /// of its output (a process it left behind holding the pipe is killed
    /// with its group).
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break None,
            }
        };
        let drained = Instant::now() + Duration::from_secs(5);
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) && Instant::now() < drained {
            thread::sleep(Duration::from_millis(10));
        }
        self.kill_group();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    fn kill_group(&mut self) {
        // The group may be gone already; that is fine.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(target_os = "linux")]
impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// How a block gets a network namespace of its own: as root, `unshare
/// --net`; otherwise in a user namespace too, where this user is root.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespaces {
    Net,
    UserAndNet,
}

#[cfg(target_os = "linux")]
impl Namespaces {
    /// Which kind can be made here (with a loopback interface brought up);
    /// fails the test, saying why, when none can.
    fn probe() -> Namespaces {
        let mut errors = Vec::new();
        for kind in [Namespaces::Net, Namespaces::UserAndNet] {
            let out = Command::new("unshare")
                .args(kind.unshare_args())
                .args(["sh", "-c", "ip link set lo up"])
                .output();
            match out {
                Ok(out) if out.status.success() => return kind,
                Ok(out) => errors.push(format!(
                    "unshare {}: {}",
                    kind.unshare_args().join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => errors.push(format!("unshare: {e}")),
            }
        }
        panic!(
            "the guide's blocks run each in a network namespace of its own (their servers \
             listen on the apps' fixed default ports, several blocks at once), made with \
             `unshare` and `ip` from util-linux and iproute2, as root or with user namespaces \
             allowed; here none could be made:\n{}",
            errors.join("\n")
        );
    }

    fn unshare_args(self) -> &'static [&'static str] {
        match self {
            Namespaces::Net => &["--net"],
            Namespaces::UserAndNet => &["--user", "--map-root-user", "--net"],
        }
    }

    fn nsenter_args(self, pid: u32) -> Vec<String> {
        let mut args = vec!["--target".to_string(), pid.to_string()];
        if self == Namespaces::UserAndNet {
            // Entering the user namespace as a user who is not root may
            // not drop its groups (setgroups): keep its own credentials.
            args.extend(["--user".to_string(), "--preserve-credentials".to_string()]);
        }
        args.push("--net".to_string());
        args
    }

    /// A process holding a fresh namespace, its loopback up, for the
    /// block's commands to enter (`nsenter`); stopped with the block.
    fn holder(self) -> Result<Spawned, String> {
        let mut cmd = Command::new("unshare");
        cmd.args(self.unshare_args()).args([
            "sh",
            "-c",
            "ip link set lo up 2>&1 && echo ready && exec cat",
        ]);
        let holder = Spawned::start(cmd, true).map_err(|e| format!("cannot start unshare: {e}"))?;
        let deadline = Instant::now() + BACKGROUND_TIMEOUT;
        loop {
            let lines = holder.lines();
            if lines.iter().any(|l| l == "ready") {
                return Ok(holder);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no network namespace for the block; unshare printed:\n{}",
                    lines.join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A program started with `&`, with the step that started it.
#[cfg(target_os = "linux")]
struct Background {
    step: Step,
    spawned: Spawned,
}

#[cfg(target_os = "linux")]
fn run_block(
    block: &Block,
    bin_dir: &Path,
    dir: &Path,
    namespaces: Namespaces,
) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Only the asides for readers with a checkout name `scripts/...`; the
    // student kit's programs are copied in (files=), as a student does.
    std::os::unix::fs::symlink(workspace().join("scripts"), dir.join("scripts"))
        .map_err(|e| e.to_string())?;
    for path in &block.files {
        let name = file_name(path).ok_or_else(|| format!("files={path}: not a file"))?;
        fs::copy(workspace().join(path), dir.join(name))
            .map_err(|e| format!("cannot copy {path} to the block: {e}"))?;
    }
    // The block's own network: its servers' fixed ports are free, whatever
    // the other blocks running at the same time listen on.
    let holder = namespaces.holder()?;
    let enter = namespaces.nsenter_args(holder.child.id());
    // An exercise's check runs its solution under the name the student
    // gives their own file, in the student's folder.
    for solution in &block.solutions {
        fs::copy(workspace().join(&solution.path), dir.join(&solution.name))
            .map_err(|e| format!("cannot copy {} to the block: {e}", solution.path))?;
    }
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .map_err(|e| e.to_string())?;
    let examples = bin_dir.join("examples").to_string_lossy().into_owned();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut background: Vec<Background> = Vec::new();
    for step in &block.steps {
        let command = direct_examples(&step.command, &examples);
        let mut cmd = Command::new("nsenter");
        cmd.args(&enter).arg("sh");
        cmd.current_dir(dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            // The guide shows the English report: no locale chooses Spanish.
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env_remove("LANG")
            .envs(vars.iter().map(|(k, v)| (k, v)));
        let cannot =
            |e: std::io::Error| format!("line {}: cannot start `{command}`: {e}", step.line);
        if step.background || step.terminal {
            cmd.arg("-c").arg(format!("exec {command} 2>&1"));
            let started = Background {
                step: step.clone(),
                spawned: Spawned::start(cmd, true).map_err(cannot)?,
            };
            // A server started with `&` must say where it listens; a
            // program in a terminal of its own only when the guide shows it.
            let listens = step.background
                || step
                    .expect
                    .iter()
                    .any(|l| l.trim_start().starts_with(READY_PREFIX));
            if listens {
                let addr = wait_ready(&started)?;
                let n = vars.len() / 2 + 1;
                let suffix = if n == 1 { String::new() } else { n.to_string() };
                let port = addr.rsplit(':').next().unwrap_or_default().to_string();
                vars.push((format!("ADDR{suffix}"), addr));
                vars.push((format!("PORT{suffix}"), port));
            }
            background.push(started);
        } else {
            cmd.arg("-c").arg(format!("{{\n{command}\n}} 2>&1"));
            let mut run = Spawned::start(cmd, false).map_err(cannot)?;
            let status = run.wait(COMMAND_TIMEOUT);
            let lines = run.lines();
            let found = step.matched(&lines);
            let code = status.and_then(|s| s.code());
            if code != Some(step.exit) || found < step.expect.len() {
                let ended = match status {
                    Some(status) => format!("exited with {status} (expected {})", step.exit),
                    None => format!("did not finish within {COMMAND_TIMEOUT:?}"),
                };
                return Err(format!(
                    "line {}: `{}` {ended}{}; it printed:\n{}",
                    step.line,
                    step.command,
                    step.expect
                        .get(found)
                        .map(|l| format!(" and never printed {l:?}"))
                        .unwrap_or_default(),
                    lines.join("\n")
                ));
            }
        }
    }
    for bg in &background {
        let deadline = Instant::now() + BACKGROUND_TIMEOUT;
        loop {
            let lines = bg.spawned.lines();
            let found = bg.step.matched(&lines);
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
    // The programs first, then the namespace's holder.
    drop(background);
    drop(holder);
    Ok(())
}

/// Waits for the background program's `listening on ADDR` line.
#[cfg(target_os = "linux")]
fn wait_ready(bg: &Background) -> Result<String, String> {
    let deadline = Instant::now() + BACKGROUND_TIMEOUT;
    loop {
        let lines = bg.spawned.lines();
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
