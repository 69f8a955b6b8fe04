//! Per-origin duplicate detection: which of an origin's numbers were
//! delivered, in a bounded window above a contiguous mark.

use std::collections::BTreeSet;

use super::{MAX_AHEAD, WINDOW};

/// What one origin's numbers say about a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Not seen: deliver.
    New,
    /// Not seen, and more than [`WINDOW`] past the mark: deliver, count a gap.
    Gap,
    /// Seen (or skipped): drop.
    Old,
}

/// One origin's delivered numbers: all of `1..=mark`, plus `above`, which
/// holds numbers in `mark + 2 ..= mark + WINDOW`.
#[derive(Debug, Default)]
pub(super) struct Window {
    pub(super) mark: u64,
    pub(super) above: BTreeSet<u64>,
}

impl Window {
    /// The origin says its next number is `next`: lines it said since
    /// may be on their way by other paths, but none past `next + MAX_AHEAD`.
    /// Numbers above that were said by someone else: forget them. If they
    /// moved the mark, the mark goes back to `next - 1` (a line of the few
    /// in flight may then be delivered twice: the price of a forgery).
    ///
    /// Returns how many delivered numbers it forgot.
    pub(super) fn clamp(&mut self, next: u64) -> u64 {
        let top = next.saturating_sub(1).saturating_add(MAX_AHEAD);
        let before = self.above.len() as u64;
        if self.mark > top {
            let back = next.saturating_sub(1);
            let forgotten = (self.mark - back).saturating_add(before);
            self.mark = back;
            self.above.clear();
            forgotten
        } else {
            self.above.retain(|&n| n <= top);
            before - self.above.len() as u64
        }
    }

    pub(super) fn accept(&mut self, seq: u64) -> Seen {
        if seq <= self.mark || self.above.contains(&seq) {
            return Seen::Old;
        }
        if seq - self.mark > WINDOW {
            let fresh = self.mark == 0 && self.above.is_empty();
            self.mark = seq;
            self.above.clear();
            return if fresh { Seen::New } else { Seen::Gap };
        }
        self.above.insert(seq);
        while let Some(next) = self.mark.checked_add(1) {
            if !self.above.remove(&next) {
                break;
            }
            self.mark = next;
        }
        Seen::New
    }
}
