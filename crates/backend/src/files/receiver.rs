//! The receiver's decisions: where a transfer starts, whether what arrived
//! is what was sent, and how slow a sender may be.

use std::fmt;
use std::time::Duration;

use super::names::quoted;
use super::progress::human_bytes;
use super::{check_name, Answer, Offer, Verdict, DIGEST_HEX_LEN, PROTOCOL_VERSION, SHORT_DIGEST};

/// What the receiver found on disk for an offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFacts {
    /// The final file `name` already exists.
    pub final_exists: bool,
    /// The length of [`partial_name`](super::partial_name)`(name, size)`, if that file exists.
    pub partial_len: Option<u64>,
}

/// The receiver's answer to `offer`, given what is on disk; see
/// [`plan_receive_with_limit`], here with no size limit.
pub fn plan_receive(offer: &Offer, facts: &DiskFacts, overwrite: bool) -> Answer {
    plan_receive_with_limit(offer, facts, overwrite, None)
}

/// The receiver's answer to `offer`, given what is on disk, whether it may
/// replace existing files, and the largest file it takes.
///
/// Refused, in this order: another protocol version; a name that
/// [`check_name`] refuses; a file over `max_size`; an existing final file
/// without `overwrite`. Otherwise the transfer resumes at `partial_len` when
/// a temporary file of at most `size` bytes exists, and starts at 0 when
/// there is none or it is longer than the file (stale).
///
/// ```
/// use trama_backend::files::{plan_receive_with_limit, Answer, DiskFacts, Offer};
/// let offer = Offer::new("big.iso", 5_000_000_000, true);
/// let answer = plan_receive_with_limit(&offer, &DiskFacts::default(), false, Some(1 << 30));
/// assert_eq!(answer, Answer::Refused {
///     reason: "big.iso is 5000000000 bytes (4.7 GiB); this receiver takes at most \
///              1073741824 bytes (1.0 GiB)".into(),
/// });
/// ```
pub fn plan_receive_with_limit(
    offer: &Offer,
    facts: &DiskFacts,
    overwrite: bool,
    max_size: Option<u64>,
) -> Answer {
    if offer.version != PROTOCOL_VERSION {
        return Answer::refused(version_mismatch(offer.version));
    }
    let name = match check_name(&offer.name) {
        Ok(name) => name,
        Err(e) => return Answer::refused(e.to_string()),
    };
    if let Some(max) = max_size {
        if offer.size > max {
            return Answer::refused(format!(
                "{name} is {} bytes ({}); this receiver takes at most {max} bytes ({})",
                offer.size,
                human_bytes(offer.size),
                human_bytes(max)
            ));
        }
    }
    if facts.final_exists && !overwrite {
        return Answer::refused(format!(
            "{name} already exists; the receiver was not started with --overwrite"
        ));
    }
    let offset = match facts.partial_len {
        Some(len) if len <= offer.size => len,
        _ => 0,
    };
    Answer::Ready { offset }
}

pub(super) fn version_mismatch(theirs: u32) -> String {
    if theirs == 0 {
        format!(
            "the offer carries no protocol version; this receiver speaks version {PROTOCOL_VERSION}"
        )
    } else {
        format!(
            "the sender speaks protocol version {theirs}; this receiver speaks version \
             {PROTOCOL_VERSION}"
        )
    }
}

/// The receiver's verdict on a transfer.
///
/// `received` is how many bytes of the file the receiver holds at the end:
/// the resume offset plus the bytes read on this connection. `expected` is
/// the digest in [`Done`](super::Done); `actual` the one the receiver computed over bytes
/// `0..size` (`None` when it did not hash).
///
/// Failures, in this order: `received N of M bytes`; a promised digest that
/// did not come; a digest that is not 64 hex digits; no digest computed to
/// compare with; a digest mismatch (both shown, cut to 16 hex digits).
/// Without `verify` in the offer, digests are compared only when both are
/// present. Success is [`Verdict::success`] (`"Gracias."`).
///
/// ```
/// use trama_backend::files::{judge, Offer};
/// let offer = Offer::new("a.bin", 1000, false);
/// assert_eq!(judge(&offer, 999, None, None).message, "received 999 of 1000 bytes");
/// ```
pub fn judge(
    offer: &Offer,
    received: u64,
    expected_digest: Option<&str>,
    actual_digest: Option<&str>,
) -> Verdict {
    if received != offer.size {
        return Verdict::retry(format!("received {received} of {} bytes", offer.size));
    }
    let expected = match expected_digest {
        Some(d) => d,
        None if offer.verify => {
            return Verdict::failure(
                "the sender promised a BLAKE3 digest (verify) but sent none".to_string(),
            )
        }
        None => return Verdict::success(),
    };
    if !offer.verify && actual_digest.is_none() {
        return Verdict::success();
    }
    if !is_digest(expected) {
        return Verdict::failure(format!(
            "the sender's digest {} is not {DIGEST_HEX_LEN} hex digits",
            quoted(&short_digest(expected))
        ));
    }
    let Some(actual) = actual_digest else {
        return Verdict::failure("the receiver computed no digest to compare with".to_string());
    };
    if !expected.eq_ignore_ascii_case(actual) {
        return Verdict::retry(format!(
            "digest mismatch: the sender has {}, the receiver got {}",
            short_digest(expected),
            short_digest(actual)
        ));
    }
    Verdict::success()
}

/// The slowest a sender may be: at least `min_bytes_per_sec` over every
/// `window` of time the receiver spends waiting for it.
///
/// A stall timeout alone lets a sender hold a receiver's slot for ever by
/// sending a byte just before each timeout; with a fixed number of slots,
/// a few such senders lock everyone else out. The floor counts only the time
/// spent waiting for the sender (the caller measures each read), so a
/// receiver slowed by its own disk does not blame the sender.
///
/// ```
/// use std::time::Duration;
/// use trama_backend::files::RateFloor;
///
/// let mut floor = RateFloor::new(1024, Duration::from_secs(10));
/// // 20 KiB in the first 10 s of waiting: fast enough, a new window starts.
/// assert!(floor.record(20 * 1024, Duration::from_secs(10)).is_ok());
/// // Then a byte every 5 s.
/// assert!(floor.record(1, Duration::from_secs(5)).is_ok());
/// let slow = floor.record(1, Duration::from_secs(5)).unwrap_err();
/// assert_eq!(
///     slow.to_string(),
///     "the sender sent 2 bytes in 10.0 s of waiting (0 B/s), under the floor of 1024 B/s"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateFloor {
    min_bytes_per_sec: u64,
    window: Duration,
    /// Waiting time and bytes in the current window.
    waited: Duration,
    bytes: u64,
}

/// A sender under its [`RateFloor`], with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes in the window.
    pub bytes: u64,
    /// Waiting time in the window.
    pub waited: Duration,
    /// The floor, in bytes per second.
    pub min: u64,
}

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the sender sent {} bytes in {:.1} s of waiting ({} B/s), under the floor of {} B/s",
            self.bytes,
            self.waited.as_secs_f64(),
            per_second(self.bytes, self.waited),
            self.min
        )
    }
}

impl std::error::Error for TooSlow {}

pub(super) fn per_second(bytes: u64, waited: Duration) -> u64 {
    let secs = waited.as_secs_f64();
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        bytes
    }
}

impl RateFloor {
    /// At least `min_bytes_per_sec` over each `window` of waiting (a zero
    /// window is taken as one second).
    pub fn new(min_bytes_per_sec: u64, window: Duration) -> RateFloor {
        RateFloor {
            min_bytes_per_sec,
            window: if window.is_zero() {
                Duration::from_secs(1)
            } else {
                window
            },
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// How long the next wait may last before the window closes: the
    /// caller's read timeout should be no longer, so a silent sender is
    /// judged when its window ends.
    pub fn wait_limit(&self) -> Duration {
        self.window.saturating_sub(self.waited)
    }

    /// `n` bytes arrived (0 for a wait that timed out) after waiting
    /// `waited`. Once a whole window of waiting has gone by, it is judged:
    /// under the floor is an error, else a new window starts.
    pub fn record(&mut self, n: u64, waited: Duration) -> Result<(), TooSlow> {
        self.bytes = self.bytes.saturating_add(n);
        self.waited = self.waited.saturating_add(waited);
        if self.waited < self.window {
            return Ok(());
        }
        let need = u128::from(self.min_bytes_per_sec) * self.waited.as_millis() / 1000;
        let (bytes, waited) = (self.bytes, self.waited);
        self.bytes = 0;
        self.waited = Duration::ZERO;
        if u128::from(bytes) < need {
            return Err(TooSlow {
                bytes,
                waited,
                min: self.min_bytes_per_sec,
            });
        }
        Ok(())
    }
}

/// True for a hex BLAKE3 digest: [`DIGEST_HEX_LEN`] hex digits (any case).
pub fn is_digest(s: &str) -> bool {
    s.len() == DIGEST_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first 16 characters of a digest and `...`, for messages.
pub(super) fn short_digest(d: &str) -> String {
    let mut chars = d.chars();
    let mut out: String = chars.by_ref().take(SHORT_DIGEST).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}
