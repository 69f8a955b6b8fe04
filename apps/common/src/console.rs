//! A console that keeps what you type: the lines a person types, read with a
//! line editor when stdin and stdout are a terminal, so that messages which
//! arrive meanwhile are printed *above* the line being typed and the line is
//! redrawn below them (the notes' chat client prints into the middle of it).
//!
//! While a [`Console`] edits, [`say!`](crate::say) goes through the editor's
//! printer, so every app that prints with it gets this for nothing. Piped
//! input (scripts, tests, `printf ... |`) is read line by line as before,
//! with no editor and no prompt, and no line longer than [`MAX_LINE`].

use std::io::{self, BufRead, IsTerminal, Read};
use std::sync::Mutex;

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

/// Prints above the line being edited; `None` while no editor reads.
type Above = Box<dyn FnMut(String) -> io::Result<()> + Send>;
static ABOVE: Mutex<Option<Above>> = Mutex::new(None);

/// Print `line` above the line being edited, if a console is editing one.
/// `None` when none is: the caller writes to stdout itself.
pub(crate) fn print_above(line: String) -> Option<io::Result<()>> {
    let mut above = ABOVE.lock().unwrap_or_else(|e| e.into_inner());
    above.as_mut().map(|print| print(line))
}

fn stop_printing_above() {
    *ABOVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The longest line read from piped input, in bytes (without its line end):
/// a line is held whole before it is sent, so a file piped in with no line
/// ends cannot take the memory. Longer than any frame the notes' servers take.
pub const MAX_LINE: usize = 1024 * 1024;

/// Where typed lines come from.
pub struct Console {
    source: Source,
}

enum Source {
    Editor(Box<DefaultEditor>),
    Plain(io::StdinLock<'static>),
    Done,
}

impl Console {
    /// A line editor if stdin and stdout are both a terminal (and the
    /// editor starts), otherwise plain lines from stdin.
    pub fn new() -> Console {
        let terminal = io::stdin().is_terminal() && io::stdout().is_terminal();
        if terminal {
            match editor() {
                Ok(source) => {
                    terminal_mode::save();
                    return Console { source };
                }
                Err(e) => log::debug!("no line editor ({e}); reading plain lines"),
            }
        }
        Console {
            source: Source::Plain(io::stdin().lock()),
        }
    }

    /// True when typed lines are edited (a terminal).
    pub fn is_editing(&self) -> bool {
        matches!(self.source, Source::Editor(_))
    }

    /// The next typed line, without its line end; `None` at the end of the
    /// input (Ctrl-D, or Ctrl-C while editing).
    pub fn next_line(&mut self) -> Option<io::Result<String>> {
        let got = match &mut self.source {
            Source::Done => return None,
            Source::Plain(input) => return read_line(input, MAX_LINE),
            Source::Editor(editor) => editor.readline(""),
        };
        match got {
            Ok(line) => {
                if let Source::Editor(editor) = &mut self.source {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                }
                Some(Ok(line))
            }
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => {
                self.finish();
                None
            }
            Err(e) => {
                self.finish();
                Some(Err(io::Error::other(e)))
            }
        }
    }

    /// No more lines: from now on output goes straight to stdout (nothing
    /// would show it above a line that is no longer being edited).
    fn finish(&mut self) {
        stop_printing_above();
        self.source = Source::Done;
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.is_editing() {
            stop_printing_above();
        }
    }
}

/// The next line of `input` (without `\n` or `\r\n`), never more than
/// `max` bytes of it: a longer line is an error that says so, and the input
/// ends there.
fn read_line<R: BufRead>(input: &mut R, max: usize) -> Option<io::Result<String>> {
    let mut buf = Vec::new();
    // `max` bytes, a `\r\n`, and one byte more to tell a longer line apart.
    let limit = max as u64 + 2;
    match input.by_ref().take(limit).read_until(b'\n', &mut buf) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) => return Some(Err(e)),
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > max {
        return Some(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an input line is longer than {max} bytes (the most one line may be)"),
        )));
    }
    Some(String::from_utf8(buf).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an input line is not UTF-8 text: {}", e.utf8_error()),
        )
    }))
}

fn editor() -> rustyline::Result<Source> {
    let mut editor = DefaultEditor::new()?;
    let mut printer = editor.create_external_printer()?;
    *ABOVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(move |mut line: String| {
        line.push('\n');
        printer.print(line).map_err(io::Error::other)
    }));
    Ok(Source::Editor(Box::new(editor)))
}

/// Put the terminal back as it was before the editor took it, for a
/// program that ends from another thread while a line is being edited (the
/// editor restores it itself when its read returns). Does nothing when no
/// console edits, and nothing on Windows, whose console modes end with the
/// process that set them.
pub fn restore_terminal() {
    let was_editing = ABOVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .is_some();
    if was_editing {
        // The editor draws printed lines from its own thread when it next
        // wakes; the last ones (a server's `* bye`) would be lost if the
        // process ended at once. A moment lets it draw them first.
        std::thread::sleep(DRAW_GRACE);
    }
    terminal_mode::restore();
}

/// How long [`restore_terminal`] leaves the editor to draw what was printed.
const DRAW_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

#[cfg(unix)]
mod terminal_mode {
    use std::sync::Mutex;

    static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

    pub(super) fn save() {
        // SAFETY: tcgetattr writes a termios into the zeroed struct we own.
        #[allow(unsafe_code)]
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0).then_some(t)
        };
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = saved;
    }

    pub(super) fn restore() {
        if let Some(t) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // SAFETY: the termios was filled by tcgetattr for this descriptor.
            #[allow(unsafe_code)]
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, t);
            }
        }
    }
}

#[cfg(not(unix))]
mod terminal_mode {
    pub(super) fn save() {}
    pub(super) fn restore() {}
}

#[cfg(test)]
mod tests {
    use super::read_line;
    use std::io::Cursor;

    fn all(input: &[u8], max: usize) -> Vec<Result<String, String>> {
        let mut input = Cursor::new(input.to_vec());
        let mut out = Vec::new();
        while let Some(line) = read_line(&mut input, max) {
            let failed = line.is_err();
            out.push(line.map_err(|e| e.to_string()));
            if failed {
                break;
            }
        }
        out
    }

    #[test]
    fn lines_come_without_their_ends() {
        let got = all(b"hola\r\nmundo\n\nfin", 16);
        let want: Vec<Result<String, String>> = ["hola", "mundo", "", "fin"]
            .iter()
            .map(|s| Ok(s.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_read() {
        assert_eq!(
            all(b"abcd\nef\n", 4),
            vec![Ok("abcd".into()), Ok("ef".into())]
        );
        assert_eq!(all(b"abcd\r\n", 4), vec![Ok("abcd".into())]);
        assert_eq!(all(b"abcd", 4), vec![Ok("abcd".into())]);
    }

    #[test]
    fn a_longer_line_is_an_error_with_the_limit() {
        for input in [&b"abcde\n"[..], b"abcde", b"abcdefghijklmnop\nok\n"] {
            let got = all(input, 4);
            assert_eq!(got.len(), 1, "{got:?}");
            let err = got[0].clone().unwrap_err();
            assert!(err.contains("longer than 4 bytes"), "{err}");
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_an_error() {
        let got = all(b"ok\n\xff\xfe\n", 16);
        assert_eq!(got[0], Ok("ok".into()));
        assert!(got[1].clone().unwrap_err().contains("not UTF-8"), "{got:?}");
    }
}
