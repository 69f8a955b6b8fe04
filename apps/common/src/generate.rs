//! Shell completions and man pages, generated from the same clap definitions
//! as `--help` so they always list the flags the program takes:
//! `trama-chat completions bash > /etc/bash_completion.d/trama-chat`,
//! `trama-chat man > trama-chat.1`.
//!
//! The two words are read before clap parses the command line (and are
//! hidden from `--help`), so apps whose flags are required, such as
//! `trama-multi --server`, answer them too.

use clap::CommandFactory;
use clap_complete::Shell;

/// What the first argument asked to generate, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// Completions for this shell.
    Completions(Shell),
    /// The man page (roff).
    Man,
}

/// The shells completions exist for, as they are named on the command line.
pub const SHELLS: &[&str] = &["bash", "elvish", "fish", "powershell", "zsh"];

/// Read `completions SHELL` or `man` from the arguments after the program's
/// name; `Err` names the shells when the shell is missing or unknown.
pub fn requested(args: &[String]) -> Result<Option<Generate>, String> {
    match args.first().map(String::as_str) {
        Some("man") if args.len() == 1 => Ok(Some(Generate::Man)),
        Some("completions") => {
            let known = SHELLS.join(", ");
            let Some(name) = args.get(1) else {
                return Err(format!("completions: name a shell ({known})"));
            };
            if args.len() > 2 {
                return Err(format!("completions takes one shell ({known})"));
            }
            name.parse::<Shell>()
                .map(|s| Some(Generate::Completions(s)))
                .map_err(|_| format!("completions: unknown shell {name:?} ({known})"))
        }
        _ => Ok(None),
    }
}

/// Write what was asked for `C` (named `bin`) into `out`.
pub fn write<C: CommandFactory>(
    what: Generate,
    bin: &'static str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut cmd = with_exit_table(C::command()).name(bin).bin_name(bin);
    match what {
        Generate::Completions(shell) => {
            clap_complete::generate(shell, &mut cmd, bin, out);
            Ok(())
        }
        Generate::Man => clap_mangen::Man::new(cmd).render(out),
    }
}

/// Every app's command-line parse: answers `completions SHELL` and `man`
/// first, then parses `C` with the exit-status table at the end of the
/// `--help` of the program and of each of its subcommands. Bad usage ends
/// the process as clap does (status 2, [`exit::USAGE`](crate::exit::USAGE)).
pub fn parse<C: CommandFactory + clap::FromArgMatches>(bin: &'static str) -> C {
    answer::<C>(bin);
    let mut matches = with_exit_table(C::command()).get_matches();
    C::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

/// `cmd` with the exit-status table closing its `--help` and its
/// subcommands' (after what they say already).
pub fn with_exit_table(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_subcommands(with_exit_table);
    match cmd.get_after_help().map(|h| h.to_string()) {
        Some(text) if text.contains(crate::exit::TABLE) => cmd,
        Some(text) => cmd.after_help(crate::exit::after_help(&text)),
        None => cmd.after_help(crate::exit::TABLE),
    }
}

/// Call first in `main`: when the arguments ask for completions or the man
/// page, print them and end the process; otherwise return to parse as usual.
pub fn answer<C: CommandFactory>(bin: &'static str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = match requested(&args) {
        Ok(Some(what)) => what,
        Ok(None) => return,
        Err(e) => {
            eprintln!("{bin}: {e}");
            std::process::exit(i32::from(crate::exit::USAGE));
        }
    };
    let mut buf = Vec::new();
    if let Err(e) = write::<C>(what, bin, &mut buf) {
        eprintln!("{bin}: {e}");
        std::process::exit(i32::from(crate::exit::FAILURE));
    }
    crate::out::bytes(&buf);
    std::process::exit(i32::from(crate::exit::OK));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn requests() {
        assert_eq!(requested(&words("man")), Ok(Some(Generate::Man)));
        assert_eq!(
            requested(&words("completions zsh")),
            Ok(Some(Generate::Completions(Shell::Zsh)))
        );
        assert_eq!(requested(&words("serve --addr x")), Ok(None));
        assert_eq!(requested(&[]), Ok(None));
        assert!(requested(&words("completions"))
            .unwrap_err()
            .contains("bash"));
        assert!(requested(&words("completions tcsh"))
            .unwrap_err()
            .contains("unknown shell"));
    }
}
