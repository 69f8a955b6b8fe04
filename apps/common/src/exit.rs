//! The exit statuses of every trama app: one table, so a script can tell
//! "it ran and the answer is no" from "it could not run" from "you typed the
//! flags wrong" the same way whatever app it calls.

use std::process::ExitCode;

/// It did what was asked. Also when the reader of stdout went away early
/// (`trama-chat join | head -1`): the reader had what it wanted, as ripgrep
/// decides.
pub const OK: u8 = 0;
/// It could not do what was asked: cannot bind or connect, the server or a
/// peer went away, a file or key could not be read, a transfer failed.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap's own status for bad usage).
pub const USAGE: u8 = 2;
/// It ran to the end and the answer is no: `trama-check` found a check
/// that failed, `trama-tap replay` saw replies that differ.
pub const VERDICT: u8 = 3;
/// Stopped by Ctrl-C while waiting on a spawned program (128 + SIGINT, as
/// shells report it).
pub const INTERRUPTED: u8 = 130;

/// The table, as every app's `--help` ends.
pub const TABLE: &str = "\
Exit status:
  0    done (also when the reader of the output went away, as in `| head`)
  1    failure: could not bind or connect, the connection was lost, a file or key could not be used
  2    bad usage: a flag or value the command does not accept
  3    verdict: it ran, and the server failed a check (trama-check) or a replay differed (trama-tap replay)
  130  interrupted by Ctrl-C";

/// `--help`'s closing text: what the app has to say, then the table.
pub fn after_help(text: &str) -> String {
    if text.is_empty() {
        TABLE.to_string()
    } else {
        format!("{text}\n\n{TABLE}")
    }
}

/// An [`ExitCode`] from the table.
pub fn code(status: u8) -> ExitCode {
    ExitCode::from(status)
}

/// Report a failure on stderr as `APP: error` and give [`FAILURE`].
pub fn fail(app: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("{app}: {error}");
    ExitCode::from(FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_status() {
        for status in [OK, FAILURE, USAGE, VERDICT, INTERRUPTED] {
            assert!(
                TABLE
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{status} "))),
                "{status} missing from the table"
            );
        }
        assert!(after_help("Console: ...").ends_with(TABLE));
        assert!(after_help("Console: ...").starts_with("Console: ..."));
    }
}
