//! How long to wait before trying a connection again: [`Backoff`] (the
//! policy a config carries) and [`Retries`] (one dialer's count of failed
//! attempts and its random source).
//!
//! Every part of trama that reconnects (the multi-server client, a peer's
//! persistent dials, the file sender) uses this one rule, so the waits a
//! user reads in one program's messages are the waits of every other.
//! There is no clock and no sleep here: the caller asks for the next delay
//! and sleeps it itself, and the tests drive the rule with a seed.

use std::time::Duration;

/// Capped exponential backoff with jitter.
///
/// The wait before retry `n` (from 0) is `min * 2^n`, capped at `max`, plus
/// a jitter of up to half of that, the total again capped at `max`. The
/// jitter is a share of the wait rather than a fixed amount so that clients
/// that failed together (a server restart drops them all at once) spread
/// their retries wider the longer they wait, instead of coming back in the
/// same burst. Waits only grow from `min`: the first retry never comes
/// sooner than `min` after a failure.
///
/// ```
/// use std::time::Duration;
/// use trama_protocol::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// // With the lowest draw of the random source, the plain doubling:
/// let plain: Vec<_> = (0..6).map(|n| b.delay(n, 0.0).as_millis()).collect();
/// assert_eq!(plain, [100, 200, 400, 800, 1000, 1000]);
/// // A draw of 0.5 adds a quarter of the wait, still capped at `max`.
/// assert_eq!(b.delay(1, 0.5), Duration::from_millis(250));
/// assert_eq!(b.delay(3, 0.5), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The wait before the first retry (before its jitter). Default 100 ms.
    pub min: Duration,
    /// The longest wait between attempts, jitter included. Default 5 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// Start at `min`, double after each failure, never wait more than `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max }
    }

    /// The same policy with another first wait.
    pub fn with_min(mut self, min: Duration) -> Backoff {
        self.min = min;
        self
    }

    /// The same policy with another longest wait.
    pub fn with_max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// The wait before retry `attempt` (0 for the first), given `draw`, a
    /// number in `[0, 1)` from a random source (values outside are clamped,
    /// NaN counts as 0). The one rule; [`Retries`] feeds it.
    pub fn delay(&self, attempt: u32, draw: f64) -> Duration {
        let base = 2u32
            .checked_pow(attempt)
            .and_then(|factor| self.min.checked_mul(factor))
            .unwrap_or(Duration::MAX)
            .min(self.max);
        let draw = if draw.is_nan() {
            0.0
        } else {
            draw.clamp(0.0, 1.0)
        };
        // At most half of `base`: the product cannot overflow.
        let jitter = base.mul_f64(draw * 0.5);
        base.saturating_add(jitter).min(self.max)
    }

    /// A count of failures that starts at zero, with a random source seeded
    /// by `seed` (a fixed seed repeats the same waits; give each dialer its
    /// own, or they retry in step).
    pub fn retries(&self, seed: u64) -> Retries {
        Retries {
            backoff: *self,
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

/// One dialer's failures since its last success: each call to
/// [`next_delay`](Retries::next_delay) counts one more and says how long to
/// wait before the next attempt.
#[derive(Debug, Clone)]
pub struct Retries {
    backoff: Backoff,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Retries {
    /// The wait before the next attempt; counts one failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.backoff.delay(self.attempt, self.rng.f64());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Start over from the first wait (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures counted since the last [`reset`](Retries::reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The policy these retries follow.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_min_and_stops_at_max() {
        let b = Backoff::new(ms(250), ms(5000));
        let got: Vec<u128> = (0..8).map(|n| b.delay(n, 0.0).as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn jitter_adds_up_to_half_the_wait_and_never_passes_max() {
        let b = Backoff::new(ms(100), ms(1000));
        assert_eq!(b.delay(0, 0.0), ms(100));
        assert_eq!(b.delay(0, 0.5), ms(125));
        // Just below 1: just below half again.
        assert!(b.delay(0, 0.999_999) < ms(150));
        assert!(b.delay(0, 0.999_999) > ms(149));
        assert!(b.delay(2, 0.999_999) > ms(599) && b.delay(2, 0.999_999) < ms(600));
        assert_eq!(b.delay(3, 0.5), ms(1000));
        assert_eq!(b.delay(3, 0.0), ms(800));
    }

    #[test]
    fn draws_out_of_range_are_clamped() {
        let b = Backoff::new(ms(100), ms(1000));
        assert_eq!(b.delay(0, -3.0), ms(100));
        assert_eq!(b.delay(0, f64::NAN), ms(100));
        assert_eq!(b.delay(0, 7.0), ms(150));
        assert_eq!(b.delay(0, f64::INFINITY), ms(150));
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let b = Backoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(b.delay(0, 0.0), Duration::MAX / 2);
        assert_eq!(b.delay(1, 0.0), (Duration::MAX / 2) * 2);
        assert_eq!(b.delay(2, 0.0), Duration::MAX);
        assert_eq!(b.delay(u32::MAX, 0.9), Duration::MAX);
        assert_eq!(Backoff::new(ms(0), ms(1000)).delay(5, 0.9), ms(0));
        // A `min` above `max`: `max` wins.
        assert_eq!(Backoff::new(ms(500), ms(100)).delay(0, 0.0), ms(100));
    }

    #[test]
    fn retries_count_reset_and_repeat_with_a_seed() {
        let b = Backoff::new(ms(100), ms(1000));
        let mut r = b.retries(7);
        let first: Vec<Duration> = (0..6).map(|_| r.next_delay()).collect();
        assert_eq!(r.attempt(), 6);
        for (n, d) in first.iter().enumerate() {
            let base = b.delay(n as u32, 0.0);
            assert!(
                *d >= base && *d <= (base + base / 2).min(ms(1000)),
                "{n}: {d:?}"
            );
        }
        // The same seed, the same waits.
        let mut again = b.retries(7);
        let second: Vec<Duration> = (0..6).map(|_| again.next_delay()).collect();
        assert_eq!(first, second);
        r.reset();
        assert_eq!(r.attempt(), 0);
        assert!(r.next_delay() < ms(150));
        // Another seed, other jitter (the two sequences differ somewhere).
        let mut other = b.retries(8);
        let third: Vec<Duration> = (0..6).map(|_| other.next_delay()).collect();
        assert_ne!(first, third);
    }
}
