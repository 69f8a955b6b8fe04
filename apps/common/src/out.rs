//! Writing to stdout the way a command-line tool should: when the reader
//! goes away (`trama-chat join | head -1`), the program ends quietly with
//! status 0 instead of panicking in `println!`, as ripgrep does.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe returns a broken-pipe
//! error (on Windows too: ERROR_NO_DATA maps to it); `println!` turns that
//! error into a panic, [`say!`](crate::say) into a quiet exit.

use std::io::Write;

/// Write `args` and a newline to stdout, flushed; on a closed stdout end the
/// process with [`exit::OK`](crate::exit::OK), on any other write error end
/// it with [`exit::FAILURE`](crate::exit::FAILURE) and a line on stderr.
pub fn line(args: std::fmt::Arguments<'_>) {
    // Above the line being typed, if a console is editing one.
    if let Some(printed) = crate::console::print_above(args.to_string()) {
        if let Err(e) = printed {
            end_on_write_error(&e);
        }
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        out.write_all(b"\n")?;
        out.flush()
    });
    if let Err(e) = written {
        drop(out);
        end_on_write_error(&e);
    }
}

/// Write raw bytes to stdout, flushed, with the same endings as [`line()`].
pub fn bytes(data: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(data).and_then(|()| out.flush()) {
        drop(out);
        end_on_write_error(&e);
    }
}

/// End the process for a failed write to stdout: quietly when its reader
/// left, with the error otherwise.
pub fn end_on_write_error(e: &std::io::Error) -> ! {
    if is_closed_pipe(e) {
        std::process::exit(i32::from(crate::exit::OK));
    }
    eprintln!("cannot write to stdout: {e}");
    std::process::exit(i32::from(crate::exit::FAILURE));
}

/// True for the error a write gets once the reading end of a pipe closed.
pub fn is_closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// `println!` for trama's consoles: ends the program quietly (status 0) when
/// stdout's reader has gone away, instead of panicking.
#[macro_export]
macro_rules! say {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
