//! # trama-guide-tests
//!
//! The guide (`docs/guide`, in English) and the guía (`docs/guia`, in
//! Spanish) are full of console sessions a student will type. This crate
//! reads them so a test can run them: a command that stops working, or whose
//! output changes, fails CI instead of confusing a student.
//!
//! ## How a console block is written
//!
//! Every fenced block whose language is a shell (`console`, `sh`, `shell`,
//! `bash`) must say after the language whether the test runs it:
//! ```` ```console run ```` or ```` ```console norun ```` (for what needs two
//! machines, a terminal of its own, or a long time). An unmarked block is an
//! error, so nobody can add a command that silently escapes the test.
//!
//! Inside a block:
//!
//! - a line starting with `$ ` is a command, run with `sh -c` from the
//!   workspace root with the workspace's binaries first on `PATH`; a line
//!   ending in `\` continues on the next one;
//! - the lines after a command, up to the next `$ `, are output the command
//!   must print (stdout or stderr), in that order; other lines may come in
//!   between, and `...` inside a line stands for any text (a port, a time);
//! - a command ending in `&` runs in the background until the block ends.
//!   It must print `listening on ADDR`; the first background server's
//!   address is then `$ADDR` (and its port `$PORT`) for the commands after
//!   it, the second's `$ADDR2` / `$PORT2`, and so on. The lines shown after
//!   a background command are waited for (up to a timeout) before the block
//!   ends and the program is stopped. A student-facing block does not need
//!   `$ADDR`: its servers listen on the apps' default addresses (or on a
//!   port written out), which the student types as shown;
//! - a command whose comment says `# in a second terminal` (or, in the
//!   guía, `# en otra terminal`) is one the student starts in a terminal of
//!   its own: a console program (`trama-peer`, `trama-chat join`,
//!   `trama-multi`) reads what is typed there, so it cannot run with `&`
//!   (an interactive shell would stop it on its first read). The test runs
//!   it like a background command whose standard input is a terminal
//!   nobody types in; it need not print `listening on` (if it does, it
//!   gets its `$ADDR` too, and the test waits for that line first). A
//!   console program shown with `&` is an error;
//! - a command must exit with status 0, unless its trailing comment says
//!   otherwise: `$ trama-check $ADDR   # exit 1: one check fails`.
//!
//! An exercise's check is a runnable block whose fence also names the
//! solution the test puts in the student's place:
//! ```` ```console run solution=tests/guide/solutions/01_cliente_json.py:cliente_json.py ````
//! copies that file (from the workspace root) into the block's scratch
//! directory as `cliente_json.py` before the first command, so the block's
//! `python3 cliente_json.py` runs the solution exactly as a student's own
//! file would run, in a folder of its own. A block may name several.
//!
//! A block that runs programs of the student kit names them on its fence
//! too: ```` ```console run files=tests/python/framed_client.py,tests/python/wire.py ````
//! copies each file into the block's directory under its own name, as the
//! student copies the kit's programs into their folder, and the block runs
//! `python3 framed_client.py`. Nothing else of the repository is there
//! (only `scripts`, for the blocks that work from a checkout): a command
//! that names `tests/...` is an error.
//!
//! A block for readers with a checkout of the repository and Rust (a
//! `cargo run` of an example, a script of `scripts/`) is an aside: the
//! paragraph just before it starts with `*From a checkout (Rust)` (in the
//! guía, `*Desde una copia del repositorio (Rust)`), so a student with the
//! tools from pip knows to skip it. Such a command anywhere else is an
//! error.
//!
//! Where Windows needs a different command, a ```` ```powershell ```` block
//! follows the console block (PowerShell is not one of the shells the test
//! runs): its commands come after a `PS> ` prompt, and the guide and the
//! guía must show the same ones.
//!
//! Each block runs in a scratch directory under `target/guide-runs`, a few
//! blocks at a time, each in a network namespace of its own (made with
//! `unshare`: root, or user namespaces allowed), so two blocks can both
//! listen on the echo server's default port; the test fails, and says
//! why, where no namespace can be made. Every program a block started is
//! stopped with its process group when the block ends. A `cargo run -p
//! PACKAGE --example NAME` (only in the asides for readers with a checkout
//! of the repository) runs the example's binary, built once before any
//! block. The blocks assume Linux (some read `/proc`) and `python3`, as CI
//! provides.
//!
//! Parsing and matching are plain functions here, tested without running
//! anything; `tests/guide.rs` runs the blocks.

use std::collections::BTreeSet;
use std::fmt;

pub mod exercises;

/// The languages whose fenced blocks are console sessions and must be marked.
pub const SHELL_LANGUAGES: [&str; 5] = ["console", "sh", "shell", "bash", "shell-session"];

/// How the paragraph just before a block starts when the block is for
/// readers with a checkout of the repository and a Rust toolchain: only
/// there may a command run `cargo` or the repository's `scripts/`.
pub const CHECKOUT_ASIDES: [&str; 2] = [
    "*From a checkout (Rust)",
    "*Desde una copia del repositorio (Rust)",
];

/// Whether the test runs a console block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// ```` ```console run ````: the test runs every command and checks its output.
    Run,
    /// ```` ```console norun ````: shown only (two machines, an interactive terminal...).
    NoRun,
}

/// A solution a block runs in the student's place: `solution=PATH:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    /// The solution file, relative to the workspace root.
    pub path: String,
    /// The file name the exercise asks the student for, which the block's
    /// commands run (a plain name, in the block's directory).
    pub name: String,
}

/// One command of a console block and what it must print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Line of the `$ ` (1-based), for error messages.
    pub line: usize,
    /// The shell command, without the `$ `, the trailing `&` and the comment.
    pub command: String,
    /// Ends in `&`: started in the background and stopped when the block ends.
    pub background: bool,
    /// Its comment says `in a second terminal` (`en otra terminal`): the
    /// student runs it in a terminal of its own; the test runs it in the
    /// background, its input a terminal nobody types in.
    pub terminal: bool,
    /// The exit status it must end with (0 unless its comment says `exit N`).
    pub exit: i32,
    /// Lines the command must print, in order (`...` matches any text).
    pub expect: Vec<String>,
    /// Its comment says `any order`: the lines may come in any order (the
    /// replies of several servers, say).
    pub any_order: bool,
}

/// A fenced console block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Line of the opening fence (1-based).
    pub line: usize,
    /// The language word of the fence (`console`, `sh`, ...).
    pub language: String,
    /// `run` / `norun`, or `None` when the fence says neither.
    pub marker: Option<Marker>,
    /// The solutions copied in before the commands run (`solution=PATH:NAME`).
    pub solutions: Vec<Solution>,
    /// The paragraph just before it marks it as an aside for readers with a
    /// checkout of the repository and Rust (see [`CHECKOUT_ASIDES`]).
    pub aside: bool,
    /// Files of the student kit copied in, each under its own name, before
    /// the commands run (`files=PATH,PATH`), paths from the workspace root.
    pub files: Vec<String>,
    /// The commands, in order.
    pub steps: Vec<Step>,
    /// What is wrong with the block's text (output before any command,
    /// a fence left open), if anything.
    pub problem: Option<String>,
}

/// A problem with a block, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line of the block's opening fence.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every console block of a Markdown text (blocks in other languages are skipped).
pub fn console_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    // The last line with text before the current one: an aside's mark.
    let mut previous_text = "";
    while let Some((index, line)) = lines.next() {
        let Some((fence, info)) = opening_fence(line) else {
            if !line.trim().is_empty() {
                previous_text = line;
            }
            continue;
        };
        let aside = CHECKOUT_ASIDES
            .iter()
            .any(|mark| previous_text.trim_start().starts_with(mark));
        previous_text = "";
        let mut words = info.split_whitespace();
        let language = words.next().unwrap_or("").to_string();
        let marker = match words.next() {
            Some("run") => Some(Marker::Run),
            Some("norun") => Some(Marker::NoRun),
            _ => None,
        };
        let mut solutions = Vec::new();
        let mut files = Vec::new();
        let mut bad_solution = None;
        for word in words {
            if let Some(value) = word.strip_prefix("files=") {
                for path in value.split(',') {
                    if file_name(path).is_some() {
                        files.push(path.to_string());
                    } else {
                        bad_solution = Some(format!(
                            "`{word}`: write files=PATH,PATH, each PATH a file from the workspace root"
                        ));
                    }
                }
                continue;
            }
            let Some(value) = word.strip_prefix("solution=") else {
                continue;
            };
            match solution(value) {
                Some(found) => solutions.push(found),
                None => {
                    bad_solution = Some(format!(
                        "`{word}`: write solution=PATH:NAME, NAME a plain file name"
                    ))
                }
            }
        }
        let mut body = Vec::new();
        let mut closed = false;
        for (body_index, body_line) in lines.by_ref() {
            if body_line.trim_start().starts_with(&fence) && body_line.trim() == fence {
                closed = true;
                break;
            }
            body.push((body_index + 1, body_line));
        }
        if !SHELL_LANGUAGES.contains(&language.as_str()) {
            continue;
        }
        let (steps, mut problem) = parse_steps(&body);
        if problem.is_none() {
            problem = bad_solution;
        }
        if !closed {
            problem = Some("the block's fence is never closed".to_string());
        }
        blocks.push(Block {
            line: index + 1,
            language,
            marker,
            solutions,
            files,
            aside,
            steps,
            problem,
        });
    }
    blocks
}

/// The problems that make a file's blocks unusable: unmarked blocks,
/// malformed ones, and runnable blocks with no command.
pub fn problems(blocks: &[Block]) -> Vec<Problem> {
    let mut found = Vec::new();
    for block in blocks {
        if block.marker.is_none() {
            found.push(Problem {
                line: block.line,
                message: format!(
                    "console block not marked: write ```{} run or ```{} norun",
                    block.language, block.language
                ),
            });
        }
        if let Some(message) = &block.problem {
            found.push(Problem {
                line: block.line,
                message: message.clone(),
            });
        }
        if block.marker == Some(Marker::Run) && block.steps.is_empty() {
            found.push(Problem {
                line: block.line,
                message: "a runnable block with no `$ ` command".to_string(),
            });
        }
        if !block.solutions.is_empty() && block.marker != Some(Marker::Run) {
            found.push(Problem {
                line: block.line,
                message: "a block with a solution must be `run`: nothing would check it"
                    .to_string(),
            });
        }
        if !block.files.is_empty() && block.marker != Some(Marker::Run) {
            found.push(Problem {
                line: block.line,
                message: "a block with files= must be `run`: nothing would use them".to_string(),
            });
        }
        for step in &block.steps {
            let words: Vec<&str> = step
                .command
                .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                .collect();
            let checkout_only = words.windows(2).any(|w| w == ["cargo", "run"])
                || words.iter().any(|w| w.starts_with("scripts/"));
            if checkout_only && !block.aside {
                found.push(Problem {
                    line: block.line,
                    message: format!(
                        "line {}: `{}` needs a checkout of the repository and Rust: start the \
                         paragraph before the block with `{}`",
                        step.line, step.command, CHECKOUT_ASIDES[0]
                    ),
                });
            }
            if words.iter().any(|w| w.starts_with("tests/")) {
                found.push(Problem {
                    line: block.line,
                    message: format!(
                        "line {}: `{}` names a file of the repository; the student copies the \
                         kit's file into their folder: name it with files=PATH on the fence",
                        step.line, step.command
                    ),
                });
            }
            if step.background && step.terminal {
                found.push(Problem {
                    line: block.line,
                    message: format!(
                        "line {}: `&` or `# in a second terminal`, not both",
                        step.line
                    ),
                });
            } else if step.background && reads_terminal(&step.command) {
                found.push(Problem {
                    line: block.line,
                    message: format!(
                        "line {}: `{}` reads what is typed in its terminal; a shell stops it \
                         when it runs with `&`: show it `# in a second terminal`",
                        step.line, step.command
                    ),
                });
            }
        }
        for solution in &block.solutions {
            let used = block.steps.iter().any(|s| {
                s.command
                    .split([' ', '"', '\''])
                    .any(|w| w == solution.name)
            });
            if !used {
                found.push(Problem {
                    line: block.line,
                    message: format!(
                        "no command runs {}, the file {} is copied to",
                        solution.name, solution.path
                    ),
                });
            }
        }
    }
    found
}

/// Whether a command starts a console program that reads the terminal it
/// runs in (`trama-peer`, `trama-multi`, `trama-chat join`), with nothing
/// piped into it.
pub fn reads_terminal(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["trama-peer", ..] | ["trama-multi", ..] => !command.contains('<'),
        ["trama-chat", "join", ..] => !command.contains('<'),
        _ => false,
    }
}

/// The name a `files=` path is copied under: its last component, when it
/// is a plain file name.
pub fn file_name(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('\\');
    (plain && !path.starts_with('/')).then_some(name)
}

/// `PATH:NAME` of a `solution=` word; `None` unless both are there and
/// NAME is a plain file name.
fn solution(value: &str) -> Option<Solution> {
    let (path, name) = value.rsplit_once(':')?;
    let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
    (plain && !path.is_empty()).then(|| Solution {
        path: path.to_string(),
        name: name.to_string(),
    })
}

/// A fence opening: its backticks and its info string.
fn opening_fence(line: &str) -> Option<(String, &str)> {
    let trimmed = line.trim_start();
    let ticks = trimmed.bytes().take_while(|&b| b == b'`').count();
    if ticks < 3 {
        return None;
    }
    Some((trimmed[..ticks].to_string(), trimmed[ticks..].trim()))
}

fn parse_steps(body: &[(usize, &str)]) -> (Vec<Step>, Option<String>) {
    let mut steps: Vec<Step> = Vec::new();
    let mut problem = None;
    let mut pending: Option<(usize, String)> = None;
    for &(line_no, line) in body {
        if let Some((start, mut text)) = pending.take() {
            // A continuation of the previous command line.
            let (piece, more) = continued(line);
            text.push(' ');
            text.push_str(piece.trim());
            if more {
                pending = Some((start, text));
            } else {
                steps.push(step(start, &text));
            }
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            let (piece, more) = continued(command);
            if more {
                pending = Some((line_no, piece.trim().to_string()));
            } else {
                steps.push(step(line_no, piece));
            }
        } else if line.trim().is_empty() {
            continue;
        } else if let Some(last) = steps.last_mut() {
            last.expect.push(line.trim_end().to_string());
        } else if problem.is_none() {
            problem = Some(format!(
                "line {line_no}: output before any `$ ` command: {line:?}"
            ));
        }
    }
    if let Some((start, text)) = pending {
        steps.push(step(start, &text));
    }
    (steps, problem)
}

/// Strips a trailing `\`; says whether the command continues.
fn continued(line: &str) -> (&str, bool) {
    let trimmed = line.trim_end();
    match trimmed.strip_suffix('\\') {
        Some(rest) => (rest, true),
        None => (trimmed, false),
    }
}

fn step(line: usize, text: &str) -> Step {
    let (code, comment) = split_comment(text);
    let mut command = code.trim().to_string();
    let mut background = false;
    if command.ends_with('&') && !command.ends_with("&&") {
        command.pop();
        command = command.trim_end().to_string();
        background = true;
    }
    let exit = comment
        .and_then(|c| c.trim().strip_prefix("exit "))
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0);
    let terminal = comment.is_some_and(|c| {
        let c = c.to_lowercase();
        c.contains("in a second terminal") || c.contains("en otra terminal")
    });
    Step {
        line,
        command,
        background,
        terminal,
        exit,
        expect: Vec::new(),
        any_order: comment.is_some_and(|c| c.contains("any order")),
    }
}

/// Splits a shell line at its comment: a `#` outside quotes, at the start or
/// after whitespace.
fn split_comment(text: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => {
                return (&text[..i], Some(&text[i + 1..]));
            }
            None => {}
        }
        previous = c;
    }
    (text, None)
}

/// Whether an output line matches a line shown in the guide, where `...`
/// stands for any text and trailing spaces do not count.
pub fn line_matches(pattern: &str, line: &str) -> bool {
    let pattern = pattern.trim_end();
    let line = line.trim_end();
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = line.strip_prefix(first) else {
        return false;
    };
    let last = rest.len() - 1;
    for (i, part) in rest.iter().enumerate() {
        if i == last {
            return remaining.len() >= part.len() && remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// How many of `expected` are found, in order, among `lines` (other lines
/// may come in between). All of them means the output is as shown.
pub fn matched_in_order<S: AsRef<str>>(expected: &[String], lines: &[S]) -> usize {
    let mut found = 0;
    for line in lines {
        if found == expected.len() {
            break;
        }
        if line_matches(&expected[found], line.as_ref()) {
            found += 1;
        }
    }
    found
}

/// How many of `expected` are found among `lines` when order does not
/// matter, each on a line of its own; on a shortfall, the first one missing
/// is `expected[result]`.
pub fn matched_any_order<S: AsRef<str>>(expected: &[String], lines: &[S]) -> usize {
    let mut used = vec![false; lines.len()];
    for (found, pattern) in expected.iter().enumerate() {
        let free = lines
            .iter()
            .enumerate()
            .find(|(i, line)| !used[*i] && line_matches(pattern, line.as_ref()));
        match free {
            Some((i, _)) => used[i] = true,
            None => return found,
        }
    }
    expected.len()
}

impl Step {
    /// How many of the lines this step shows are found in `lines`, in
    /// order unless the step says `any order`.
    pub fn matched<S: AsRef<str>>(&self, lines: &[S]) -> usize {
        if self.any_order {
            matched_any_order(&self.expect, lines)
        } else {
            matched_in_order(&self.expect, lines)
        }
    }
}

/// The programs a command starts: the first word of each piece of the
/// command split at `|`, `;`, `&`, `(` and quotes (so a program inside
/// `--spawn "..."` counts too), keeping those named `trama-...`.
pub fn trama_programs(command: &str) -> BTreeSet<String> {
    command
        .split(['|', ';', '&', '(', '"', '\''])
        .filter_map(|piece| piece.split_whitespace().next())
        .filter(|word| {
            word.strip_prefix("trama-").is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
        })
        .map(str::to_string)
        .collect()
}

/// The commands of every ```` ```powershell ```` block (the Windows way,
/// shown next to a console block where the command differs; the test does
/// not run them): for each block, its line and its lines typed after a
/// `PS> ` prompt, each without its comment. Both languages must show the
/// same ones.
pub fn powershell_commands(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some((fence, info)) = opening_fence(line) else {
            continue;
        };
        let powershell = info.split_whitespace().next() == Some("powershell");
        let mut commands = Vec::new();
        for (_, body_line) in lines.by_ref() {
            if body_line.trim() == fence {
                break;
            }
            let typed = body_line.trim_start().strip_prefix("PS> ");
            if let Some(typed) = typed {
                let (code, _) = split_comment(typed);
                commands.push(code.trim().to_string());
            }
        }
        if powershell {
            found.push((index + 1, commands));
        }
    }
    found
}

/// A Rust block that shows an exercise's test: ```` ```rust exercise=PATH ````,
/// where PATH (from the workspace root) is the solution file holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExerciseBlock {
    /// Line of the opening fence (1-based).
    pub line: usize,
    /// The solution file, relative to the workspace root.
    pub path: String,
    /// The code shown.
    pub code: String,
}

/// Every exercise block of a Markdown text.
pub fn exercise_blocks(markdown: &str) -> Vec<ExerciseBlock> {
    let mut found = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some((fence, info)) = opening_fence(line) else {
            continue;
        };
        let path = info
            .split_whitespace()
            .find_map(|word| word.strip_prefix("exercise="))
            .map(str::to_string);
        let mut code = String::new();
        for (_, body_line) in lines.by_ref() {
            if body_line.trim() == fence {
                break;
            }
            code.push_str(body_line);
            code.push('\n');
        }
        if let Some(path) = path {
            found.push(ExerciseBlock {
                line: index + 1,
                path,
                code,
            });
        }
    }
    found
}

/// Whether `shown` appears in `source`, ignoring whitespace, line breaks
/// and trailing commas (rustfmt may wrap a line the guide keeps whole): the
/// guide shows the test exactly as the solution file has it.
pub fn shows_verbatim(source: &str, shown: &str) -> bool {
    let shown = squeeze(shown);
    !shown.is_empty() && squeeze(source).contains(&shown)
}

/// The text without whitespace, and without a comma before a closing bracket.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if matches!(c, '}' | ']' | ')') && out.ends_with(',') {
            out.pop();
        }
        out.push(c);
    }
    out
}

/// The examples a command runs with `cargo run ... -p PACKAGE --example
/// NAME`, as `(package, example)` pairs, so the test can build them before
/// any block runs (a server must not spend its start-up time compiling).
pub fn cargo_examples(command: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for piece in command.split(['|', ';', '&', '"', '\'']) {
        let words: Vec<&str> = piece.split_whitespace().collect();
        if words.len() < 2 || words[0] != "cargo" || words[1] != "run" {
            continue;
        }
        let after = |flag: &str| {
            words
                .iter()
                .take_while(|w| **w != "--")
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
                .map(|w| w.to_string())
        };
        if let (Some(package), Some(example)) = (after("-p"), after("--example")) {
            found.push((package, example));
        }
    }
    found
}

/// The command with every `cargo run [-q] -p PACKAGE --example NAME [--]`
/// replaced by `EXAMPLES_DIR/NAME`: the test builds the examples first and
/// runs their binaries, so no second cargo waits for the build lock while
/// the test runs (the guide keeps the `cargo run` a student types).
pub fn direct_examples(command: &str, examples_dir: &str) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find("cargo run ") {
        out.push_str(&rest[..at]);
        let mut cursor = at + "cargo run ".len();
        let mut name: Option<&str> = None;
        let mut expect_value = false;
        loop {
            let tail = &rest[cursor..];
            let skipped = tail.len() - tail.trim_start().len();
            let word_len = tail
                .trim_start()
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                .unwrap_or(tail.trim_start().len());
            let word = &tail[skipped..skipped + word_len];
            if word.is_empty() {
                break;
            }
            if expect_value {
                expect_value = false;
            } else if word == "-p" || word == "--package" {
                expect_value = true;
            } else if word == "--example" {
                expect_value = true;
                let value = tail[skipped + word_len..].trim_start();
                let len = value
                    .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                    .unwrap_or(value.len());
                name = Some(&value[..len]);
            } else if word == "--" {
                cursor += skipped + word_len;
                break;
            } else if !word.starts_with('-') {
                break;
            }
            cursor += skipped + word_len;
        }
        match name {
            Some(name) => {
                out.push_str(examples_dir);
                out.push('/');
                out.push_str(name);
            }
            None => out.push_str(&rest[at..cursor]),
        }
        rest = &rest[cursor..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_blocks_and_their_steps() {
        let text = "intro\n\n```console run\n$ trama-echo serve --addr 127.0.0.1:0 &\nlistening on 127.0.0.1:...\n$ trama-echo send --addr $ADDR --text hola\nhola\n```\n\n```rust\nfn main() {}\n```\n\n```console norun\n$ ssh otra\n```\n";
        let blocks = console_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].line, 3);
        assert_eq!(blocks[0].marker, Some(Marker::Run));
        assert_eq!(blocks[0].steps.len(), 2);
        let serve = &blocks[0].steps[0];
        assert!(serve.background);
        assert_eq!(serve.command, "trama-echo serve --addr 127.0.0.1:0");
        assert_eq!(serve.expect, ["listening on 127.0.0.1:..."]);
        assert_eq!(serve.line, 4);
        let send = &blocks[0].steps[1];
        assert!(!send.background);
        assert_eq!(send.expect, ["hola"]);
        assert_eq!(blocks[1].marker, Some(Marker::NoRun));
        assert!(problems(&blocks).is_empty());
    }

    #[test]
    fn unmarked_and_malformed_blocks_are_problems() {
        let text = "```console\n$ ls\n```\n```sh run\noutput first\n$ ls\n```\n```bash run\n```\n";
        let blocks = console_blocks(text);
        let found = problems(&blocks);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].line, 1);
        assert!(found[0].message.contains("not marked"));
        assert_eq!(found[1].line, 4);
        assert!(found[1].message.contains("output before"));
        assert_eq!(found[2].line, 8);
        assert!(found[2].message.contains("no `$ ` command"));
    }

    #[test]
    fn solutions_are_named_on_the_fence() {
        let text = "```console run solution=tests/s/01_c.py:c.py solution=x/y.py:y.py\n$ python3 c.py 1 && python3 y.py\nok\n```\n```console run\n$ ls\n```\n";
        let blocks = console_blocks(text);
        assert_eq!(blocks[0].marker, Some(Marker::Run));
        assert_eq!(
            blocks[0].solutions,
            [
                Solution {
                    path: "tests/s/01_c.py".into(),
                    name: "c.py".into()
                },
                Solution {
                    path: "x/y.py".into(),
                    name: "y.py".into()
                }
            ]
        );
        assert_eq!(blocks[0].steps[0].expect, ["ok"]);
        assert!(blocks[1].solutions.is_empty());
        assert!(problems(&blocks).is_empty());
    }

    #[test]
    fn a_solution_must_be_well_formed_run_and_used() {
        for bad in [
            "solution=x.py",
            "solution=x.py:",
            "solution=:c.py",
            "solution=x.py:a/c.py",
        ] {
            let text = format!("```console run {bad}\n$ python3 c.py\n```\n");
            let found = problems(&console_blocks(&text));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(found[0].message.contains("PATH:NAME"), "{found:?}");
        }
        let norun = console_blocks("```console norun solution=s.py:c.py\n$ python3 c.py\n```\n");
        assert!(problems(&norun)[0].message.contains("must be `run`"));
        let unused = console_blocks(
            "```console run solution=s.py:c.py\n$ python3 cliente.py \"c.py.bak\"\n```\n",
        );
        let found = problems(&unused);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("no command runs c.py"));
        let quoted = console_blocks(
            "```console run solution=s.py:c.py\n$ trama-check --spawn \"python3 c.py {port}\"\n```\n",
        );
        assert!(problems(&quoted).is_empty());
    }

    #[test]
    fn an_unclosed_fence_is_a_problem() {
        let blocks = console_blocks("```console run\n$ ls\n");
        assert_eq!(problems(&blocks).len(), 1);
        assert!(problems(&blocks)[0].message.contains("never closed"));
    }

    #[test]
    fn continuations_comments_and_exit_codes() {
        let text = "```console run\n$ trama-check $ADDR \\\n    --json   # exit 1: the one-recv check fails\n$ echo 'a # b' && echo x # a note\n```\n";
        let blocks = console_blocks(text);
        let steps = &blocks[0].steps;
        assert_eq!(steps[0].command, "trama-check $ADDR --json");
        assert_eq!(steps[0].exit, 1);
        assert_eq!(steps[1].command, "echo 'a # b' && echo x");
        assert_eq!(steps[1].exit, 0);
        assert!(!steps[1].background);
    }

    #[test]
    fn exercise_blocks_name_their_solution() {
        let text =
            "```rust exercise=tests/x.rs\n#[test]\nfn t() {}\n```\n```rust\nfn f() {}\n```\n";
        let found = exercise_blocks(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "tests/x.rs");
        assert_eq!(found[0].line, 1);
        assert!(shows_verbatim(
            "mod t {\n    #[test]\n\n    fn t() {}\n}\n",
            &found[0].code
        ));
        assert!(!shows_verbatim("#[test]\nfn other() {}\n", &found[0].code));
        assert!(!shows_verbatim("anything", ""));
        assert!(shows_verbatim("f(\n    a,\n    b,\n);", "f(a, b);"));
    }

    #[test]
    fn dots_stand_for_any_text() {
        assert!(line_matches(
            "listening on 127.0.0.1:...",
            "listening on 127.0.0.1:4242"
        ));
        assert!(line_matches("a ... b ... c", "a 1 b 2 c"));
        assert!(line_matches("...", "anything"));
        assert!(line_matches("exact", "exact  "));
        assert!(!line_matches("exact", "not exact"));
        assert!(!line_matches("a...b", "ab-"));
        assert!(!line_matches("ab...ba", "aba"));
        assert!(!line_matches("x ... y", "x y"));
    }

    #[test]
    fn any_order_needs_each_line_once() {
        let expect = vec![
            "[1] ...".to_string(),
            "[2] x".to_string(),
            "[1] ...".to_string(),
        ];
        assert_eq!(matched_any_order(&expect, &["[2] x", "[1] a", "[1] b"]), 3);
        assert_eq!(matched_any_order(&expect, &["[2] x", "[1] a"]), 2);
        let step = &console_blocks("```console run\n$ x   # replies in any order\nb\na\n```\n")[0]
            .steps[0];
        assert!(step.any_order);
        assert_eq!(step.matched(&["a", "b"]), 2);
    }

    #[test]
    fn expected_lines_must_come_in_order() {
        let expect = vec!["one".to_string(), "t...".to_string()];
        assert_eq!(matched_in_order(&expect, &["zero", "one", "x", "two"]), 2);
        assert_eq!(matched_in_order(&expect, &["two", "one"]), 1);
        assert_eq!(matched_in_order(&expect, &["zero"]), 0);
    }

    #[test]
    fn cargo_examples_are_found_even_inside_quotes() {
        assert_eq!(
            cargo_examples("trama-check --spawn \"cargo run -q -p trama-protocol --example thread_per_client -- 127.0.0.1:0\""),
            [("trama-protocol".to_string(), "thread_per_client".to_string())]
        );
        assert!(cargo_examples("cargo run -p trama-chat -- serve -p x --example y").is_empty());
        assert!(cargo_examples("cargo build -p a --example b").is_empty());
    }

    #[test]
    fn cargo_run_of_an_example_becomes_its_binary() {
        assert_eq!(
            direct_examples("cargo run -q -p trama-protocol --example one_recv", "/x"),
            "/x/one_recv"
        );
        assert_eq!(
            direct_examples(
                "python3 s.py -- cargo run -q -p a --example t -- 127.0.0.1:0 && echo ok",
                "/x"
            ),
            "python3 s.py -- /x/t 127.0.0.1:0 && echo ok"
        );
        assert_eq!(
            direct_examples(
                "trama-check --spawn \"cargo run -p a --example t -- 1\"",
                "/x"
            ),
            "trama-check --spawn \"/x/t 1\""
        );
        assert_eq!(
            direct_examples("cargo run -p trama-chat -- serve", "/x"),
            "cargo run -p trama-chat -- serve"
        );
        assert_eq!(direct_examples("echo hi", "/x"), "echo hi");
    }

    #[test]
    fn programs_are_found_at_command_positions() {
        let found = trama_programs(
            "printf 'x\\n' | trama-chat join --addr $ADDR && trama-check --spawn \"trama-echo serve\" -p trama-protocol",
        );
        let expected: BTreeSet<String> = ["trama-chat", "trama-check", "trama-echo"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(found, expected);
        assert!(trama_programs("cargo run -p trama-protocol --example x").is_empty());
    }

    #[test]
    fn a_second_terminal_is_said_in_a_comment() {
        let text = "```console run\n$ trama-peer --name ana   # in a second terminal\nlistening on ...\n$ trama-chat join -n bea   # en otra terminal\n$ trama-echo serve &\n$ trama-echo send --text hola # a terminal note\n```\n";
        let blocks = console_blocks(text);
        let steps = &blocks[0].steps;
        assert!(steps[0].terminal && !steps[0].background);
        assert_eq!(steps[0].command, "trama-peer --name ana");
        assert_eq!(steps[0].expect, ["listening on ..."]);
        assert!(steps[1].terminal);
        assert!(!steps[2].terminal && steps[2].background);
        assert!(!steps[3].terminal && !steps[3].background);
        assert!(problems(&blocks).is_empty(), "{:?}", problems(&blocks));
    }

    #[test]
    fn a_console_program_is_not_shown_with_an_ampersand() {
        for bad in [
            "trama-peer --name ana &",
            "trama-chat join -a 127.0.0.1:8080 &",
            "trama-multi -s raw:127.0.0.1:8080 &",
        ] {
            let found = problems(&console_blocks(&format!("```console run\n$ {bad}\n```\n")));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(found[0].message.contains("second terminal"), "{found:?}");
        }
        for fine in [
            "trama-chat serve &",
            "trama-peer --raw < /dev/null &",
            "printf 'hola\\n' | trama-peer --name bea",
        ] {
            let found = problems(&console_blocks(&format!("```console run\n$ {fine}\n```\n")));
            assert!(found.is_empty(), "{fine}: {found:?}");
        }
        let both =
            console_blocks("```console run\n$ trama-echo serve &   # in a second terminal\n```\n");
        assert!(problems(&both)[0].message.contains("not both"));
    }

    #[test]
    fn kit_files_are_named_on_the_fence() {
        let text = "```console run files=tests/python/framed_client.py,tests/python/wire.py\n$ python3 framed_client.py 127.0.0.1 12345 hola\n```\n";
        let blocks = console_blocks(text);
        assert_eq!(
            blocks[0].files,
            ["tests/python/framed_client.py", "tests/python/wire.py"]
        );
        assert!(problems(&blocks).is_empty());
        assert_eq!(file_name("tests/python/defects/spin.py"), Some("spin.py"));
        for bad in [
            "files=",
            "files=tests/",
            "files=/abs/x.py",
            "files=a.py,,b.py",
        ] {
            let found = problems(&console_blocks(&format!(
                "```console run {bad}\n$ ls\n```\n"
            )));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(found[0].message.contains("files=PATH"), "{found:?}");
        }
        let norun = console_blocks("```console norun files=tests/python/wire.py\n$ ls\n```\n");
        assert!(problems(&norun)[0].message.contains("must be `run`"));
    }

    #[test]
    fn powershell_commands_without_their_comments() {
        let text = "```powershell\nPS> trama-files receive   # in a second window\nlistening on x\nPS> (Get-FileHash a).Hash\nTrue\n```\n```console norun\n$ ls\n```\n```powershell\n\"hola\" | trama-chat join\n```\n";
        let found = powershell_commands(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, 1);
        assert_eq!(found[0].1, ["trama-files receive", "(Get-FileHash a).Hash"]);
        assert!(found[1].1.is_empty());
    }

    #[test]
    fn cargo_and_scripts_only_in_an_aside_and_no_repository_paths() {
        let bare = console_blocks("```console run\n$ cargo run -q -p a --example b\n```\n");
        assert!(!bare[0].aside);
        let build = console_blocks("```console norun\n$ cargo build --release\n```\n");
        assert!(problems(&build).is_empty());
        assert!(problems(&bare)[0].message.contains("checkout"));
        let text = "*From a checkout (Rust): skip it with pip.*\n\n```console run\n$ python3 scripts/x.py -- cargo run -p a --example b\n```\n\n```console run\n$ python3 scripts/x.py\n```\n";
        let blocks = console_blocks(text);
        assert!(blocks[0].aside && !blocks[1].aside);
        let found = problems(&blocks);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 7);
        let spanish = console_blocks(
            "*Desde una copia del repositorio (Rust): sáltalo.*\n```console run\n$ cargo run -p a --example b\n```\n",
        );
        assert!(problems(&spanish).is_empty());
        let repo = console_blocks(
            "```console run\n$ trama-check --spawn \"python3 tests/python/x.py 0\"\n```\n",
        );
        assert!(problems(&repo)[0].message.contains("files=PATH"));
    }
}
