//! # trama-units
//!
//! The one way every trama flag and every trama-tap fault item writes a
//! length of time or a number of bytes, so that `5s` and `64KiB` mean the same
//! thing wherever a user types them.
//!
//! ## Durations
//!
//! A duration is one or more `NUMBER UNIT` parts, largest unit first:
//! `100us`, `250ms`, `1.5s`, `2m`, `1h`, `1m30s`. The units are `ns`, `us`
//! (or `µs`), `ms`, `s`, `m` and `h`. A number without a unit is refused
//! (is `5` five seconds or five milliseconds? a reader cannot tell), except
//! `0`, which is zero in every unit.
//!
//! ## Sizes
//!
//! A size is a whole number of bytes with an optional unit: `512`, `512B`,
//! `64KiB`, `16MiB`, `1GiB`, `1TiB`. **Every multiplier is a power of 1024**:
//! `K`, `KB` and `KiB` all mean 1024 bytes (likewise `M`/`MB`/`MiB`,
//! `G`/`GB`/`GiB`, `T`/`TB`/`TiB`), as ripgrep reads them. Unit letters are
//! not case-sensitive. Sizes are byte counts for buffers and frames, where
//! a power of two is what a reader means; there is no decimal (1000) form.
//!
//! ## Printing
//!
//! [`Duration`]'s and [`Size`]'s `Display` print values in the same grammar,
//! exactly: `parse(display(x)) == x` for every value.
//!
//! ```
//! use trama_units::{parse_duration, parse_size, Duration, Size};
//!
//! assert_eq!(parse_duration("1m30s")?, std::time::Duration::from_secs(90));
//! assert_eq!(parse_size("64KiB")?, 65_536);
//! assert_eq!(Duration::from(std::time::Duration::from_millis(1500)).to_string(), "1s500ms");
//! assert_eq!(Size(16 << 20).to_string(), "16MiB");
//! assert!(parse_duration("5").unwrap_err().to_string().contains("needs a unit"));
//! # Ok::<(), trama_units::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// Why a duration or a size could not be read; its text says what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: String) -> Error {
        Error { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

const NANOS_PER_UNIT: [(&str, u128); 7] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
];

/// Read a duration: `100us`, `250ms`, `1.5s`, `2m`, `1h`, `1m30s`, or `0`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, Error> {
    let s = text.trim();
    if s.is_empty() {
        return Err(Error::new(
            "an empty duration: write one such as 5s, 250ms or 1m".into(),
        ));
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        if s.bytes().all(|b| b == b'0') {
            return Ok(std::time::Duration::ZERO);
        }
        return Err(Error::new(format!(
            "{s}: a duration needs a unit ({s}s, {s}ms)"
        )));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_end);
        if number.is_empty() {
            return Err(Error::new(format!(
                "{s:?} is not a duration: expected a number at {rest:?} (write 5s, 250ms, 1m30s)"
            )));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit = unit.trim();
        if unit.is_empty() {
            let what = if number == s { "a duration" } else { number };
            return Err(Error::new(format!(
                "{s}: {what} needs a unit ({number}s, {number}ms)"
            )));
        }
        let Some(rank) = NANOS_PER_UNIT.iter().position(|(u, _)| *u == unit) else {
            return Err(Error::new(format!(
                "unknown unit {unit:?} in {s:?} (use h, m, s, ms, us or ns)"
            )));
        };
        // µs and us share a scale: treat them as one rank.
        let scale_rank = if rank == 5 { 4 } else { rank };
        if last_rank != usize::MAX && scale_rank <= last_rank {
            return Err(Error::new(format!(
                "{s:?}: write each unit once, largest first (e.g. 1m30s)"
            )));
        }
        last_rank = scale_rank;
        let nanos = scaled(number, NANOS_PER_UNIT[rank].1).ok_or_else(|| {
            Error::new(format!(
                "{s:?}: {number}{unit} is not a number this many {unit} can be (too long, too precise or two dots)"
            ))
        })?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| Error::new(format!("{s:?} is too long a duration")))?;
        rest = next.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| Error::new(format!("{s:?} is too long a duration")))?;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(std::time::Duration::new(secs, nanos))
}

/// `number` (digits, at most one dot) times `scale` nanoseconds, exactly;
/// `None` if it does not fit, has a fraction finer than a nanosecond, or is
/// not a number.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    if whole.len() > 30 || frac.len() > 30 {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole_value.checked_mul(scale)?;
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().ok()?;
        let denominator = 10u128.checked_pow(frac.len() as u32)?;
        let numerator = frac_value.checked_mul(scale)?;
        if numerator % denominator != 0 {
            return None;
        }
        value = value.checked_add(numerator / denominator)?;
    }
    Some(value)
}

const BYTES_PER_UNIT: [(&str, u64); 5] = [
    ("", 1),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
    ("t", 1 << 40),
];

/// Read a size in bytes: `512`, `512B`, `64KiB`, `16MiB`, `1GiB`; `K`, `KB`
/// and `KiB` all mean 1024.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(Error::new(format!(
            "{s:?} is not a size (write 4096, 64KiB or 16MiB)"
        )));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| Error::new(format!("{s:?} is too large a size")))?;
    let unit = unit.trim().to_ascii_lowercase();
    let prefix = unit
        .strip_suffix("ib")
        .filter(|p| !p.is_empty())
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let Some((_, mult)) = BYTES_PER_UNIT.iter().find(|(p, _)| *p == prefix) else {
        return Err(Error::new(format!(
            "unknown unit {:?} in {s:?} (use B, KiB, MiB, GiB or TiB; K and KB mean KiB)",
            unit
        )));
    };
    value
        .checked_mul(*mult)
        .ok_or_else(|| Error::new(format!("{s:?} is too large a size")))
}

/// A duration that prints in trama's grammar (`1m30s`, `250ms`, `0s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Duration {
        Duration(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> std::time::Duration {
        d.0
    }
}

impl FromStr for Duration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Duration, Error> {
        parse_duration(s).map(Duration)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in NANOS_PER_UNIT {
            if unit == "µs" {
                continue;
            }
            let count = nanos / scale;
            if count > 0 {
                write!(f, "{count}{unit}")?;
                nanos %= scale;
            }
        }
        Ok(())
    }
}

/// A byte count that prints in trama's grammar: the largest binary unit
/// that divides it exactly (`64KiB`, `16MiB`, `1000B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = Error;
    fn from_str(s: &str) -> Result<Size, Error> {
        parse_size(s).map(Size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= scale && self.0 % scale == 0 {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as StdDuration;

    #[test]
    fn durations_read() {
        let table: &[(&str, StdDuration)] = &[
            ("100us", StdDuration::from_micros(100)),
            ("100µs", StdDuration::from_micros(100)),
            ("7ns", StdDuration::from_nanos(7)),
            ("250ms", StdDuration::from_millis(250)),
            ("5s", StdDuration::from_secs(5)),
            ("1.5s", StdDuration::from_millis(1500)),
            (".5s", StdDuration::from_millis(500)),
            ("2m", StdDuration::from_secs(120)),
            ("1h", StdDuration::from_secs(3600)),
            ("1m30s", StdDuration::from_secs(90)),
            ("1h 2m 3s", StdDuration::from_secs(3723)),
            ("1s500ms", StdDuration::from_millis(1500)),
            ("0", StdDuration::ZERO),
            ("0s", StdDuration::ZERO),
            (" 10s ", StdDuration::from_secs(10)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn durations_refused_with_what_to_write() {
        let table: &[(&str, &str)] = &[
            ("5", "5: a duration needs a unit (5s, 5ms)"),
            ("1.5", "needs a unit"),
            ("1m30", "30 needs a unit"),
            ("", "empty"),
            ("soon", "expected a number"),
            ("5y", "unknown unit \"y\""),
            ("5S", "unknown unit"),
            ("30s1m", "largest first"),
            ("1s1s", "largest first"),
            ("1.2.3s", "not a number"),
            ("0.5ns", "too precise"),
            ("99999999999999999999999h", "too long"),
        ];
        for (text, want) in table {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn sizes_read() {
        let table: &[(&str, u64)] = &[
            ("512", 512),
            ("512B", 512),
            ("0", 0),
            ("1K", 1024),
            ("1k", 1024),
            ("1KB", 1024),
            ("64KiB", 64 << 10),
            ("64kib", 64 << 10),
            ("16M", 16 << 20),
            ("16MB", 16 << 20),
            ("16MiB", 16 << 20),
            ("1GiB", 1 << 30),
            ("4G", 4 << 30),
            ("2TiB", 2 << 40),
            (" 8 KiB ", 8 << 10),
        ];
        for (text, want) in table {
            assert_eq!(parse_size(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn sizes_refused_with_what_to_write() {
        let table: &[(&str, &str)] = &[
            ("lots", "write 4096, 64KiB or 16MiB"),
            ("", "not a size"),
            ("1.5MiB", "unknown unit"),
            ("5PB", "unknown unit \"pb\""),
            ("99999999999999999999", "too large"),
            ("99999999999GiB", "too large"),
            ("1iB", "unknown unit"),
        ];
        for (text, want) in table {
            let e = parse_size(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn display_prints_the_grammar() {
        let table: &[(StdDuration, &str)] = &[
            (StdDuration::ZERO, "0s"),
            (StdDuration::from_micros(100), "100us"),
            (StdDuration::from_millis(250), "250ms"),
            (StdDuration::from_secs(5), "5s"),
            (StdDuration::from_secs(90), "1m30s"),
            (StdDuration::from_secs(7200), "2h"),
            (StdDuration::new(1, 1), "1s1ns"),
        ];
        for (d, want) in table {
            assert_eq!(Duration(*d).to_string(), *want);
        }
        let sizes: &[(u64, &str)] = &[
            (0, "0B"),
            (512, "512B"),
            (1000, "1000B"),
            (1024, "1KiB"),
            (1536, "1536B"),
            (16 << 20, "16MiB"),
            (3 << 30, "3GiB"),
            (5 << 40, "5TiB"),
        ];
        for (n, want) in sizes {
            assert_eq!(Size(*n).to_string(), *want);
        }
    }
}
