//! Progress for one file: a bar with rate and ETA on a terminal, periodic
//! log lines otherwise, nothing with `--quiet`; and the summary line of a
//! finished file.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use trama_backend::files::human_bytes;

/// How often the plain (non-terminal) reporter logs a line.
const LOG_EVERY: Duration = Duration::from_secs(2);

/// Reports bytes moved for one file.
pub enum Progress {
    /// Nothing shown.
    Quiet,
    /// An indicatif bar on stderr.
    Bar(ProgressBar),
    /// A log line every few seconds.
    Lines {
        name: String,
        size: u64,
        start: Instant,
        last: Instant,
    },
}

impl Progress {
    /// A reporter for `name`, `size` bytes, starting at `done`.
    pub fn new(name: &str, size: u64, done: u64, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(size);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(name.to_string());
            bar.set_position(done);
            return Progress::Bar(bar);
        }
        let now = Instant::now();
        Progress::Lines {
            name: name.to_string(),
            size,
            start: now,
            last: now,
        }
    }

    /// `done` bytes of the file are now through.
    pub fn update(&mut self, done: u64) {
        match self {
            Progress::Quiet => {}
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Lines {
                name,
                size,
                start,
                last,
            } => {
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    let secs = start.elapsed().as_secs_f64();
                    let rate = done as f64 / secs.max(1e-9);
                    let eta = (*size - done.min(*size)) as f64 / rate.max(1.0);
                    log::info!(
                        "{name}: {:.0}% ({} of {}), {:.1} MB/s, ETA {:.0} s",
                        done as f64 * 100.0 / (*size).max(1) as f64,
                        human_bytes(done),
                        human_bytes(*size),
                        rate / 1e6,
                        eta
                    );
                }
            }
        }
    }

    /// The file is done (or abandoned): remove the bar.
    pub fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// One line about a finished transfer: name, size, time and rate in MB/s
/// (10^6 bytes per second, as network speeds are quoted).
pub fn format_summary(name: &str, bytes: u64, secs: f64) -> String {
    let rate = if secs.is_finite() && secs > 0.0 {
        format!("{:.1} MB/s", bytes as f64 / secs / 1e6)
    } else {
        "rate not measurable".to_string()
    };
    format!("{name}: {} in {secs:.2} s ({rate})", human_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(
            format_summary("enviar.bin", 2 << 30, 1.23),
            "enviar.bin: 2.0 GiB in 1.23 s (1745.9 MB/s)"
        );
        assert_eq!(
            format_summary("a", 10, 0.0),
            "a: 10 B in 0.00 s (rate not measurable)"
        );
    }
}
