//! The outbox's timer minimums, kept exact on every change so that a deadline query
//! ([`Outbox::next_timeout`]) is O(1) and `poll_due` walks the entries only when something is
//! due. Before, every query scanned up to a window of entries, once per driver pass.
//!
//! Both sequences (every entry's deadline; the sent prefix's retries) are usually sorted from
//! front to back: one timeout for every message, retries armed in send order under a steady
//! RTO. While one is, its minimum is the front's, and removing any entry costs nothing. A
//! change that breaks the order clears the flag; removing the minimum then rescans, and the
//! rescan restores the flag once the order holds again.

use super::{InFlight, Outbox};
use crate::time::Instant;

impl Outbox {
    /// The sent prefix's length.
    pub(super) fn sent(&self) -> usize {
        self.sent as usize
    }

    /// The retry of entry `i`, as the timer minimum sees it (`Instant::MAX` for none).
    pub(super) fn retry_at(&self, i: usize) -> Instant {
        self.entries
            .get(i)
            .and_then(|e| e.next_retry)
            .unwrap_or(Instant::MAX)
    }

    /// Recomputes both minimums and whether each sequence is sorted: after a change that a
    /// cheaper rule does not cover.
    pub(super) fn rescan(&mut self) {
        let (mut deadline, mut retry) = (Instant::MAX, Instant::MAX);
        let (mut d_sorted, mut r_sorted) = (true, true);
        let (mut d_prev, mut r_prev) = (Instant::ZERO, Instant::ZERO);
        let sent = self.sent();
        for (i, e) in self.entries.iter().enumerate() {
            d_sorted &= d_prev <= e.deadline;
            d_prev = e.deadline;
            deadline = deadline.min(e.deadline);
            if i < sent {
                let r = e.next_retry.unwrap_or(Instant::MAX);
                r_sorted &= r_prev <= r;
                r_prev = r;
                retry = retry.min(r);
            }
        }
        self.earliest_deadline = deadline;
        self.earliest_retry = retry;
        self.deadlines_sorted = d_sorted;
        self.retries_sorted = r_sorted;
    }

    /// Removes entry `i`, keeping `sent` and `counters` exact; the minimums are the caller's
    /// ([`Outbox::remove_at`] fixes them, a pass over every entry rescans once at its end).
    pub(super) fn remove_raw(&mut self, i: usize) -> Option<InFlight> {
        if i < self.sent() {
            let c = self.entries[i].counter;
            let shared = (i > 0 && self.entries[i - 1].counter == c)
                || self.entries.get(i + 1).is_some_and(|n| n.counter == c);
            if !shared {
                self.counters -= 1;
            }
            self.sent -= 1;
        }
        self.entries.remove(i)
    }

    /// Removes entry `i` and restores the timer minimums: the front's value when the sequence
    /// is sorted, a rescan otherwise (only when the removed entry held a minimum).
    pub(super) fn remove_at(&mut self, i: usize) -> Option<InFlight> {
        let was_sent = i < self.sent();
        let e = self.remove_raw(i)?;
        let mut rescan = false;
        if e.deadline == self.earliest_deadline {
            if self.deadlines_sorted {
                self.earliest_deadline = self.entries.front().map_or(Instant::MAX, |f| f.deadline);
            } else {
                rescan = true;
            }
        }
        if was_sent && e.next_retry.unwrap_or(Instant::MAX) == self.earliest_retry {
            if self.retries_sorted {
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
            self.retries_sorted = true;
        }
        if rescan {
            self.rescan();
        }
        Some(e)
    }

    /// Entry `i` of the sent prefix now retries at `retry`: keeps the retry minimum exact.
    pub(super) fn set_retry(&mut self, i: usize, retry: Instant) {
        let old = self.retry_at(i);
        if let Some(e) = self.entries.get_mut(i) {
            e.next_retry = Some(retry);
        }
        let prev = i.checked_sub(1).map_or(Instant::ZERO, |p| self.retry_at(p));
        let next = if i + 1 < self.sent() {
            self.retry_at(i + 1)
        } else {
            Instant::MAX
        };
        self.retries_sorted &= prev <= retry && retry <= next;
        if old == self.earliest_retry && retry > old {
            if self.retries_sorted {
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
        // Every retry of the run moves by the same amount: the order inside it holds, so
        // only its edges are checked; a retry only grows, so the minimum can only grow.
        let sent = self.sent();
        let mut prev = start
            .checked_sub(1)
            .map_or(Instant::ZERO, |p| self.retry_at(p));
        let (mut sorted, mut held_min) = (self.retries_sorted, false);
        let mut i = start;
        while i < sent && self.entries[i].counter == Some(counter) {
            let e = &mut self.entries[i];
            if let Some(r) = e.next_retry {
                held_min |= r == self.earliest_retry;
                let later = (r + by).min(e.deadline);
                e.next_retry = Some(later);
                sorted &= prev <= later;
                prev = later;
            }
            i += 1;
        }
        let next = if i < sent {
            self.retry_at(i)
        } else {
            Instant::MAX
        };
        self.retries_sorted = sorted && prev <= next;
        if held_min {
            if self.retries_sorted {
                self.earliest_retry = self.retry_at(0);
            } else {
                self.rescan();
            }
        }
    }
}
