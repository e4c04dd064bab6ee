//! The outbox's timer minimums, kept exact on every change so that a deadline query
//! ([`Outbox::next_timeout`]) is O(1) and `poll_due` walks the entries only when something is
//! due. Before, every query scanned up to a window of entries, once per driver pass.
//!
//! Both sequences (every entry's deadline; the sent prefix's retries) are usually sorted from
//! front to back: one timeout for every message, retries armed in send order under a steady
//! RTO. While one is, its minimum is the front's, and removing any entry costs nothing. A
//! change that breaks the order of the deadlines clears a flag; removing the minimum then
//! rescans, and the rescan restores the flag once the order holds again. The retries change
//! far more often (every suite 3 run is moved later right after it is armed), so for them the
//! outbox counts the neighbouring pairs out of order, kept exact on every change: a disorder
//! that is undone costs nothing.

use super::{is_internal_message, InFlight, Outbox};
use crate::time::Instant;

impl Outbox {
    /// The sent prefix's length.
    pub(super) fn sent(&self) -> usize {
        self.sent as usize
    }

    /// The retry of entry `i`, as the timer minimum sees it (`Instant::MAX` for none).
    pub(super) fn retry_at(&self, i: usize) -> Instant {
        self.entries.get(i).map_or(Instant::MAX, |e| e.next_retry)
    }

    /// Whether the retries of the sent prefix never decrease from front to back.
    pub(super) fn retries_sorted(&self) -> bool {
        self.retry_inversions == 0
    }

    /// Whether entry `i` and the next are both sent and the next retries earlier.
    fn inverted(&self, i: usize) -> bool {
        i + 1 < self.sent() && self.retry_at(i) > self.retry_at(i + 1)
    }

    /// How many of the pairs `(i, i + 1)` for `i` in `lo..hi` are out of order.
    fn inversions_in(&self, lo: usize, hi: usize) -> u16 {
        let n = (lo..hi).filter(|&i| self.inverted(i)).count();
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    /// Counts `n` more pairs out of order (saturating: a saturated count stays "unsorted").
    pub(super) fn add_inversions(&mut self, n: u16) {
        self.retry_inversions = self.retry_inversions.saturating_add(n);
    }

    /// Replaces `before` pairs out of order by `after`, after a change to some of them; a
    /// saturated count is left to the next rescan.
    fn replace_inversions(&mut self, before: u16, after: u16) {
        if self.retry_inversions != u16::MAX {
            self.retry_inversions = self.retry_inversions.saturating_sub(before);
            self.add_inversions(after);
        }
    }

    /// Recomputes both minimums and whether each sequence is sorted: after a change that a
    /// cheaper rule does not cover.
    pub(super) fn rescan(&mut self) {
        #[cfg(test)]
        rescans::count();
        let (mut deadline, mut retry) = (Instant::MAX, Instant::MAX);
        let (mut d_sorted, mut r_inversions) = (true, 0u16);
        let (mut d_prev, mut r_prev) = (Instant::ZERO, Instant::ZERO);
        let mut internal_messages = 0u8;
        let sent = self.sent();
        for (i, e) in self.entries.iter().enumerate() {
            internal_messages = internal_messages.saturating_add(u8::from(is_internal_message(e)));
            d_sorted &= d_prev <= e.deadline;
            d_prev = e.deadline;
            deadline = deadline.min(e.deadline);
            if i < sent {
                let r = e.next_retry;
                if r_prev > r {
                    r_inversions = r_inversions.saturating_add(1);
                }
                r_prev = r;
                retry = retry.min(r);
            }
        }
        self.earliest_deadline = deadline;
        self.earliest_retry = retry;
        self.deadlines_sorted = d_sorted;
        self.retry_inversions = r_inversions;
        self.internal_messages = internal_messages;
    }

    /// Counts `n` internal messages fewer (`Outbox::internal_messages`), unless the count
    /// saturated: then it waits for a rescan.
    pub(super) fn forget_internal_messages(&mut self, n: usize) {
        if self.internal_messages != u8::MAX {
            let n = u8::try_from(n).unwrap_or(u8::MAX);
            self.internal_messages = self.internal_messages.saturating_sub(n);
        }
    }

    /// Removes entry `i`, keeping `sent` and `counters` exact; the minimums are the caller's
    /// ([`Outbox::remove_at`] fixes them, a pass over every entry rescans once at its end).
    pub(super) fn remove_raw(&mut self, i: usize) -> Option<InFlight> {
        if self.entries.get(i).is_some_and(is_internal_message) {
            self.forget_internal_messages(1);
        }
        if i >= self.sent() {
            return self.entries.remove(i);
        }
        let c = self.entries[i].counter;
        let shared = (i > 0 && self.entries[i - 1].counter == c)
            || self.entries.get(i + 1).is_some_and(|n| n.counter == c);
        if !shared {
            self.counters -= 1;
        }
        // The pairs around `i` become one pair of its neighbours.
        let before = self.inversions_in(i.saturating_sub(1), i + 1);
        self.sent -= 1;
        let e = self.entries.remove(i);
        let after = if i > 0 {
            self.inversions_in(i - 1, i)
        } else {
            0
        };
        self.replace_inversions(before, after);
        e
    }

    /// Keeps the counts and minimums exact for the removal of the `n` entries from `start`,
    /// which are sent and share one counter (a whole run, `Outbox::complete_run`);
    /// `held_deadline` and `held_retry` say whether one of them held a minimum. Called before
    /// the entries leave: what stays is `..start` and `start + n..`.
    pub(super) fn forget_run(
        &mut self,
        start: usize,
        n: usize,
        held_deadline: bool,
        held_retry: bool,
    ) {
        let (sent, end) = (self.sent(), start + n);
        // The pairs inside the run and the two joining it to its neighbours go; the
        // neighbours form one.
        let before = self.inversions_in(start.saturating_sub(1), end);
        let joined = start > 0 && end < sent && self.retry_at(start - 1) > self.retry_at(end);
        self.replace_inversions(before, u16::from(joined));
        self.sent -= u32::try_from(n).unwrap_or(u32::MAX);
        self.counters -= 1;
        // Removing entries leaves a sorted sequence sorted: its new front holds the minimum.
        let front = if start == 0 { n } else { 0 };
        if held_deadline {
            self.earliest_deadline = if self.deadlines_sorted {
                self.entries.get(front).map_or(Instant::MAX, |e| e.deadline)
            } else {
                let rest = self.entries.range(..start).chain(self.entries.range(end..));
                rest.map(|e| e.deadline).min().unwrap_or(Instant::MAX)
            };
        }
        if held_retry {
            self.earliest_retry = if self.retries_sorted() {
                if front < sent {
                    self.retry_at(front)
                } else {
                    Instant::MAX
                }
            } else {
                let rest = (0..start).chain(end..sent).map(|i| self.retry_at(i));
                rest.min().unwrap_or(Instant::MAX)
            };
        }
        if self.entries.len() == n {
            self.deadlines_sorted = true;
        }
        if self.sent == 0 {
            self.retry_inversions = 0;
        }
    }

    /// Whether an entry next to a removed entry `i` (now at `i - 1` or `i`), among the first
    /// `limit`, satisfies `f`.
    fn neighbour_holds(&self, i: usize, limit: usize, f: impl Fn(&InFlight) -> bool) -> bool {
        i.checked_sub(1)
            .into_iter()
            .chain([i])
            .any(|j| j < limit && self.entries.get(j).is_some_and(&f))
    }

    /// Removes entry `i` and restores the timer minimums: the front's value when the sequence
    /// is sorted, a rescan otherwise (only when the removed entry held a minimum).
    pub(super) fn remove_at(&mut self, i: usize) -> Option<InFlight> {
        let was_sent = i < self.sent();
        let e = self.remove_raw(i)?;
        let mut rescan = false;
        // A neighbour with the same value still holds the minimum: the messages of one burst
        // share their deadline and the entries of one run their retry, so only the last of
        // them to go can move the minimum (and, out of order, rescan).
        let all = self.entries.len();
        if e.deadline == self.earliest_deadline
            && !self.neighbour_holds(i, all, |n| n.deadline == e.deadline)
        {
            if self.deadlines_sorted {
                self.earliest_deadline = self.entries.front().map_or(Instant::MAX, |f| f.deadline);
            } else {
                rescan = true;
            }
        }
        let retry = e.next_retry;
        if was_sent
            && retry == self.earliest_retry
            && !self.neighbour_holds(i, self.sent(), |n| n.next_retry == retry)
        {
            if self.retries_sorted() {
                self.earliest_retry = if self.sent > 0 {
                    self.retry_at(0)
                } else {
                    Instant::MAX
                };
            } else {
                rescan = true;
            }
        }
        if self.entries.is_empty() {
            self.deadlines_sorted = true;
        }
        if self.sent == 0 {
            self.retry_inversions = 0;
        }
        if rescan {
            self.rescan();
        }
        Some(e)
    }

    /// Entry `i` of the sent prefix now retries at `retry`: keeps the retry minimum exact.
    pub(super) fn set_retry(&mut self, i: usize, retry: Instant) {
        let old = self.retry_at(i);
        let lo = i.saturating_sub(1);
        let before = self.inversions_in(lo, i + 1);
        if let Some(e) = self.entries.get_mut(i) {
            e.next_retry = retry;
        }
        let after = self.inversions_in(lo, i + 1);
        self.replace_inversions(before, after);
        // A neighbour still due at `old` keeps the minimum where it was. The entries of a run
        // share their retry and are re-armed one by one when the run is resent, so only the
        // last of them can move the minimum: without this, resending a run of 64 out of
        // order rescanned the whole outbox 64 times.
        let neighbour_at_old = || {
            i.checked_sub(1)
                .into_iter()
                .chain([i + 1])
                .any(|j| j < self.sent() && self.retry_at(j) == old)
        };
        if old == self.earliest_retry && retry > old && !neighbour_at_old() {
            if self.retries_sorted() {
                self.earliest_retry = self.retry_at(0);
            } else {
                self.rescan();
            }
        } else {
            self.earliest_retry = self.earliest_retry.min(retry);
        }
    }

    /// Moves the retries of the run sent under `counter` later by `by` (never past their
    /// deadlines): the batch went with `MORE`, so its receiver may hold the ACK that long
    /// (`features::ack_delay`).
    pub(crate) fn delay_retries(&mut self, counter: crate::id::Counter, by: crate::time::Duration) {
        let Some(start) = self.position_of(counter) else {
            return;
        };
        // A retry only grows, so the minimum can only grow. The pairs out of order are
        // counted again over the run and its two edges (a deadline can cap a retry, so even
        // the order inside the run may change), in the pass that moves the retries: three
        // indexed walks of a 64-entry run cost a tenth of suite 3's per-message core work
        // outside the cipher (issue 19).
        let sent = self.sent();
        let earliest = self.earliest_retry;
        // The retry of the pair's first entry, before and after the move; the entry before
        // the run keeps its retry.
        let mut prev = start.checked_sub(1).map(|p| {
            let r = self.retry_at(p);
            (r, r)
        });
        let (mut before, mut after, mut end) = (0usize, 0usize, start);
        let mut held_min = false;
        for e in self.entries.range_mut(start..sent) {
            if e.counter != Some(counter) {
                break;
            }
            let old = e.next_retry;
            // `Instant::MAX` is no retry armed: it stays so.
            if old != Instant::MAX {
                held_min |= old == earliest;
                e.next_retry = (old + by).min(e.deadline);
            }
            if let Some((p_old, p_new)) = prev {
                before += usize::from(p_old > old);
                after += usize::from(p_new > e.next_retry);
            }
            prev = Some((old, e.next_retry));
            end += 1;
        }
        // The run's last entry and the one after it, which keeps its retry.
        if let Some((p_old, p_new)) = prev.filter(|_| start < end && end < sent) {
            let next = self.retry_at(end);
            before += usize::from(p_old > next);
            after += usize::from(p_new > next);
        }
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        self.replace_inversions(count(before), count(after));
        if held_min {
            if self.retries_sorted() {
                self.earliest_retry = self.retry_at(0);
            } else {
                self.rescan();
            }
        }
    }
}

/// How many rescans this thread made: the tests' measure of what a change costs in walks
/// over the window (a count, not a time, so that it cannot flake).
#[cfg(test)]
pub(super) mod rescans {
    extern crate std;
    use core::cell::Cell;

    std::thread_local! {
        static RESCANS: Cell<u64> = const { Cell::new(0) };
    }

    pub(in crate::reliability) fn count() {
        RESCANS.with(|r| r.set(r.get() + 1));
    }

    /// The rescans made so far on this thread.
    pub(in crate::reliability) fn so_far() -> u64 {
        RESCANS.with(Cell::get)
    }
}
