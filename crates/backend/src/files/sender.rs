//! The sender's decisions: how much to send after a resume, and how long
//! to wait before trying again.

use std::fmt;
use std::time::Duration;

use super::Offer;

/// A [`Answer::Ready`](super::Answer::Ready) offset past the end of the offered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOffset {
    /// The offset the receiver asked for.
    pub offset: u64,
    /// The size of the file offered.
    pub size: u64,
}

impl fmt::Display for BadOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the receiver asked to resume at byte {} of a {}-byte file",
            self.offset, self.size
        )
    }
}

impl std::error::Error for BadOffset {}

/// How many bytes the sender sends after [`Answer::Ready`](super::Answer::Ready)`{ offset }`:
/// `size - offset`, or an error when the offset is past the end.
///
/// ```
/// use trama_backend::files::{bytes_to_send, Offer};
/// let offer = Offer::new("a.bin", 1000, true);
/// assert_eq!(bytes_to_send(&offer, 400), Ok(600));
/// assert!(bytes_to_send(&offer, 1001).is_err());
/// ```
pub fn bytes_to_send(offer: &Offer, offset: u64) -> Result<u64, BadOffset> {
    offer.size.checked_sub(offset).ok_or(BadOffset {
        offset,
        size: offer.size,
    })
}

/// Capped exponential backoff between reconnection attempts.
///
/// The delay before attempt `n` (from 0) is `base_ms * 2^n` plus the
/// caller's jitter, never more than `max_ms`. The backend has no clock and no
/// random numbers, so the caller draws the jitter (uniform in `0..=base_ms`;
/// larger values are cut to `base_ms`) and sleeps.
///
/// ```
/// use std::time::Duration;
/// use trama_backend::files::Backoff;
/// let mut b = Backoff::new(100, 1000);
/// let delays: Vec<_> = (0..6).map(|_| b.next_delay(0).as_millis()).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
/// b.reset();
/// assert_eq!(b.next_delay(50), Duration::from_millis(150));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, in milliseconds.
    pub base_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
    /// Delays handed out since the last [`reset`](Backoff::reset).
    pub attempt: u32,
}

impl Backoff {
    /// Start at `base_ms`, double each time, stop growing at `max_ms`.
    pub fn new(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            base_ms,
            max_ms,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, with `jitter` milliseconds added
    /// (at most `base_ms`) and the result capped at `max_ms`.
    pub fn next_delay(&mut self, jitter: u64) -> Duration {
        let exponential = 1u64
            .checked_shl(self.attempt)
            .and_then(|factor| self.base_ms.checked_mul(factor))
            .unwrap_or(u64::MAX);
        let ms = exponential
            .saturating_add(jitter.min(self.base_ms))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(ms)
    }

    /// Start over from `base_ms` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}
