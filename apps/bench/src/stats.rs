//! A latency histogram of fixed size: log buckets, each split linearly.
//!
//! A load generator records millions of latencies per second for minutes, so
//! it cannot keep them (loadgen keeps one sample in eight, in a vector that
//! grows with the run). This histogram is the scheme of HdrHistogram: values
//! below 128 ns have a bucket each; above, every power of two is split into 64
//! equal buckets, so any value is known to within 1/64 of itself (the figures
//! are bucket midpoints: within 0.8 %). It covers all of `u64` nanoseconds in
//! 3,776 counters (30 KiB), whatever the run's length, and histograms of
//! several threads add up exactly.

/// Values below this have a bucket each.
const LINEAR: u64 = 128;
/// Buckets per power of two above `LINEAR` (the top 7 significant bits).
const SUB: usize = 64;
/// log2(LINEAR): the first power of two that is split.
const FIRST_EXP: u32 = 7;
/// Number of buckets: the linear ones, then 64 for each exponent 7..=63.
const BUCKETS: usize = LINEAR as usize + (64 - FIRST_EXP as usize) * SUB;

/// Latencies in nanoseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= FIRST_EXP
    let sub = (v >> (exp - 6)) as usize & (SUB - 1);
    LINEAR as usize + (exp - FIRST_EXP) as usize * SUB + sub
}

/// The smallest and largest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, i as u64);
    }
    let k = i - LINEAR as usize;
    let exp = (k / SUB) as u32 + FIRST_EXP;
    let sub = (k % SUB) as u64;
    let width = 1u64 << (exp - 6);
    let low = (SUB as u64 + sub) << (exp - 6);
    (low, low + (width - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Record one value (nanoseconds).
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value (exact), 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The mean (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.5 for the median, 0.999 for p99.9): the
    /// midpoint of the bucket holding the `ceil(q * count)`-th smallest
    /// value, kept within the exact minimum and maximum; the largest value
    /// is the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                let mid = lo + (hi - lo) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_whole_range() {
        // Consecutive buckets start where the previous one ended.
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert!(hi >= lo);
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            next = hi.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in [3, 3, 5, 100, 127] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.0), 3);
        assert_eq!(h.quantile(0.5), 5);
        assert_eq!(h.quantile(0.8), 100);
        assert_eq!(h.quantile(1.0), 127);
        assert_eq!(h.min(), 3);
        assert_eq!(h.max(), 127);
        assert_eq!(h.count(), 5);
        assert!((h.mean() - 47.6).abs() < 1e-9);
    }

    #[test]
    fn quantiles_of_a_uniform_run_are_within_one_percent() {
        let mut h = Histogram::new();
        for v in 1..=1_000_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [
            (0.5, 500_000_000.0),
            (0.99, 990_000_000.0),
            (0.999, 999_000_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q {q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 1_000_000_000);
        assert_eq!(h.quantile(1.0), 1_000_000_000);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in 0..10_000u64 {
            let x = v * v % 977_777;
            if v % 3 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        for q in [0.1, 0.5, 0.9, 0.99, 0.999] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
        assert_eq!(a.max(), all.max());
        assert_eq!(a.min(), all.min());
    }

    #[test]
    fn empty_and_extreme_values() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.max(), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.mean(), 0.0);
        let mut h = Histogram::new();
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.quantile(1.0), u64::MAX);
        assert_eq!(h.quantile(0.5), 0);
    }

    #[test]
    fn memory_is_fixed() {
        let mut h = Histogram::new();
        let before = h.counts.len();
        for v in 0..100_000u64 {
            h.record(v.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        assert_eq!(h.counts.len(), before);
        assert_eq!(before, 3776);
    }
}
