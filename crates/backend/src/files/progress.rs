//! How far one file's transfer is, in numbers, and byte counts in words
//! (for the reasons the rules give as much as for the app's lines).

/// How far one file's transfer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The file's size in bytes.
    pub size: u64,
    /// Bytes of the file through so far, including a resume offset.
    pub done: u64,
}

impl Progress {
    /// A file of `size` bytes with `done` of them through.
    pub fn new(size: u64, done: u64) -> Progress {
        Progress { size, done }
    }

    /// Count `n` more bytes (never past `size`).
    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n).min(self.size);
    }

    /// Bytes still to go.
    pub fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.done)
    }

    /// True when every byte is through.
    pub fn is_complete(&self) -> bool {
        self.done >= self.size
    }

    /// Percent done, 0.0 to 100.0 (an empty file is 100% done).
    pub fn percent(&self) -> f64 {
        if self.size == 0 {
            return 100.0;
        }
        (self.done.min(self.size) as f64 * 100.0) / self.size as f64
    }

    /// The rate of a transfer that moved `moved` bytes in `elapsed_secs`
    /// (count only this connection's bytes, not a resume offset), in bytes
    /// per second, and the seconds left at that rate. The rate is 0 when no
    /// time has passed; the ETA is `None` when the rate is 0 and bytes
    /// remain, and `Some(0.0)` when none do.
    ///
    /// ```
    /// use trama_backend::files::Progress;
    /// let p = Progress::new(1000, 600); // resumed at 400, 200 moved in 2 s
    /// assert_eq!(p.rate_and_eta(200, 2.0), (100.0, Some(4.0)));
    /// ```
    pub fn rate_and_eta(&self, moved: u64, elapsed_secs: f64) -> (f64, Option<f64>) {
        let rate = if elapsed_secs.is_finite() && elapsed_secs > 0.0 {
            moved as f64 / elapsed_secs
        } else {
            0.0
        };
        let remaining = self.remaining();
        let eta = if remaining == 0 {
            Some(0.0)
        } else if rate > 0.0 {
            Some(remaining as f64 / rate)
        } else {
            None
        };
        (rate, eta)
    }
}

/// A byte count in binary units with one decimal: `"512 B"`, `"1.5 KiB"`,
/// `"2.0 GiB"`.
///
/// ```
/// use trama_backend::files::human_bytes;
/// assert_eq!(human_bytes(1023), "1023 B");
/// assert_eq!(human_bytes(3 << 29), "1.5 GiB");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // 1023.95 would print as "1024.0"; move up a unit instead.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
