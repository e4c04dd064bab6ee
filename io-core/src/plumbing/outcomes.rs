//! The outcomes of a client's pipelined sends, by send number: one board per window instead
//! of one reply slot per message.
//!
//! A pipelined client sends one message per handle, and nearly every outcome is the same: the
//! message was delivered, in order, to the one server. A reply slot per message (an allocation,
//! a lock on each side, a map entry on the driver) costs the driver's thread more than the
//! rest of its per-message work outside the endpoint. So outcomes are kept by [`SendId`]:
//!
//! - `done_below`: every send numbered below it has its outcome. The driver advances it once
//!   per batch of outcomes; a waiter whose number is below it and finds nothing kept knows its
//!   message was delivered to the one server that acknowledges them, without taking the lock.
//! - `early`: the numbers above `done_below` that have their outcome (acknowledged out of
//!   order, or a sender thread that took a later number queued first), as disjoint runs.
//!   Between two runs waits at least one message still without its outcome, and at most a
//!   window's worth are, so there are at most a window's worth of runs plus one.
//! - `kept`: every outcome other than a plain delivery (failures, a delivery to another
//!   server or with receivers missing), until its handle takes it or is dropped; `gone`: the
//!   numbers whose handles were dropped before their outcome, which is then not kept. Both are
//!   bounded by the handles the application holds and the window.
//!
//! Once the client closes (`closed`), a number without its outcome is [`SendError::Closed`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::window::SendId;
use super::Delivery;
use crate::error::SendError;

/// One pipelined message's outcome, as its handle gives it.
pub type Outcome = Result<Delivery, SendError>;

/// The outcomes of one window's sends; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Board {
    /// `State::done_below`, readable without the lock (stored after everything it covers).
    done_below: AtomicU64,
    /// `State::kept.len()`, readable without the lock.
    kept: AtomicUsize,
    /// The server of a plain delivery: the first that acknowledged a message alone. Set before
    /// `done_below` first covers a plain delivery, never changed.
    peer: OnceLock<SocketAddr>,
    state: Mutex<State>,
    /// Signalled when outcomes arrive while a thread waits.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    done_below: u64,
    /// Sorted, disjoint, non-adjacent runs `[start, end)` above `done_below`, none starting at
    /// it (that run is merged into `done_below`).
    early: Vec<(u64, u64)>,
    kept: HashMap<u64, Outcome, crate::plumbing::client::IdBuild>,
    gone: HashSet<u64, crate::plumbing::client::IdBuild>,
    closed: bool,
    /// Threads blocked on `changed`.
    blocked: usize,
    /// Tasks waiting for the outcome of a number.
    wakers: Vec<(u64, Waker)>,
}

impl State {
    fn is_done(&self, id: u64) -> bool {
        id < self.done_below || self.in_early(id)
    }

    fn in_early(&self, id: u64) -> bool {
        // The last run is the usual answer: a later number completed early.
        let i = self.early.partition_point(|&(_, end)| end <= id);
        self.early.get(i).is_some_and(|&(start, _)| start <= id)
    }

    /// Records that `id` has its outcome. A number that already has one (which the driver
    /// never reports twice) changes nothing.
    fn mark(&mut self, id: u64) {
        if id < self.done_below {
            return;
        }
        if id == self.done_below {
            self.done_below += 1;
            if let Some(&(start, end)) = self.early.first() {
                if start == self.done_below {
                    self.done_below = end;
                    self.early.remove(0);
                }
            }
            return;
        }
        // The first run that ends at or after `id`: it holds `id`, ends right before it, or
        // lies wholly after it.
        let i = self.early.partition_point(|&(_, end)| end < id);
        let Some(&(start, end)) = self.early.get(i) else {
            self.early.push((id, id + 1));
            return;
        };
        if start <= id && id < end {
            return;
        }
        if end == id {
            let next = self.early.get(i + 1).copied();
            let merged = match next {
                Some((s, e)) if s == id + 1 => {
                    self.early.remove(i + 1);
                    e
                }
                _ => id + 1,
            };
            if let Some(r) = self.early.get_mut(i) {
                r.1 = merged;
            }
        } else if start == id + 1 {
            if let Some(r) = self.early.get_mut(i) {
                r.0 = id;
            }
        } else {
            self.early.insert(i, (id, id + 1));
        }
    }
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent between statements that can panic (none
        // runs application code), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a batch of outcomes under one lock: `None` is a plain delivery to `peer`. Then
    /// wakes whoever waits.
    pub(crate) fn complete(
        &self,
        peer: Option<SocketAddr>,
        batch: &mut Vec<(SendId, Option<Outcome>)>,
    ) {
        if batch.is_empty() {
            return;
        }
        if let Some(peer) = peer {
            let _ = self.peer.set(peer);
        }
        let mut state = self.lock();
        for (SendId(id), outcome) in batch.drain(..) {
            let gone = !state.gone.is_empty() && state.gone.remove(&id);
            if let Some(outcome) = outcome.filter(|_| !gone) {
                state.kept.insert(id, outcome);
            }
            state.mark(id);
        }
        self.publish(state);
    }

    /// Marks the client closed: every number without its outcome now has
    /// [`SendError::Closed`].
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.gone.clear();
        self.publish(state);
    }

    /// Stores what waiters read without the lock, and wakes those whose wait is over.
    fn publish(&self, mut state: MutexGuard<'_, State>) {
        self.kept.store(state.kept.len(), Ordering::SeqCst);
        self.done_below.store(state.done_below, Ordering::SeqCst);
        let notify = state.blocked > 0;
        let mut woken = Vec::new();
        if !state.wakers.is_empty() {
            let closed = state.closed;
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.wakers)
                .into_iter()
                .partition(|(id, _)| closed || state.is_done(*id));
            state.wakers = waiting;
            woken = done;
        }
        drop(state);
        if notify {
            self.changed.notify_all();
        }
        for (_, w) in woken {
            w.wake();
        }
    }

    /// Whether `id` has its outcome (or the client closed).
    pub(crate) fn is_settled(&self, id: SendId) -> bool {
        if id.0 < self.done_below.load(Ordering::SeqCst) {
            return true;
        }
        let state = self.lock();
        state.closed || state.is_done(id.0)
    }

    /// The outcome of `id`, taken, if it has one (or the client closed).
    pub(crate) fn take(&self, id: SendId) -> Option<Outcome> {
        if id.0 < self.done_below.load(Ordering::SeqCst) && self.kept.load(Ordering::SeqCst) == 0 {
            return Some(self.plain());
        }
        let mut state = self.lock();
        self.take_locked(&mut state, id.0)
    }

    fn take_locked(&self, state: &mut State, id: u64) -> Option<Outcome> {
        if state.is_done(id) {
            let kept = state.kept.remove(&id);
            self.kept.store(state.kept.len(), Ordering::SeqCst);
            return Some(kept.unwrap_or_else(|| self.plain()));
        }
        state.closed.then_some(Err(SendError::Closed))
    }

    fn plain(&self) -> Outcome {
        Ok(Delivery {
            acked: self.peer.get().copied().into_iter().collect(),
            missing: Vec::new(),
        })
    }

    /// Blocks until `id` has its outcome, at most `limit`, and takes it; `None` at the limit.
    pub(crate) fn wait(&self, id: SendId, limit: Duration) -> Option<Outcome> {
        if let Some(o) = self.take(id) {
            return Some(o);
        }
        let deadline = Instant::now().checked_add(limit);
        let mut state = self.lock();
        loop {
            if let Some(o) = self.take_locked(&mut state, id.0) {
                return Some(o);
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return None,
                },
                None => Duration::from_secs(3600),
            };
            // Counted under the lock, which `complete` takes: it sees the count and notifies,
            // or ran before and the outcome was found above.
            state.blocked += 1;
            state = self
                .changed
                .wait_timeout(state, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            state.blocked -= 1;
        }
    }

    /// Takes `id`'s outcome, or registers `waker` for it.
    pub(crate) fn poll(&self, id: SendId, waker: &Waker) -> Option<Outcome> {
        if let Some(o) = self.take(id) {
            return Some(o);
        }
        let mut state = self.lock();
        if let Some(o) = self.take_locked(&mut state, id.0) {
            return Some(o);
        }
        match state.wakers.iter_mut().find(|(i, _)| *i == id.0) {
            Some((_, w)) if w.will_wake(waker) => {}
            Some((_, w)) => *w = waker.clone(),
            None => state.wakers.push((id.0, waker.clone())),
        }
        None
    }

    /// The handle of `id` is gone without taking its outcome: nothing of it is kept.
    pub(crate) fn forget(&self, id: SendId) {
        if id.0 < self.done_below.load(Ordering::SeqCst) && self.kept.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut state = self.lock();
        state.wakers.retain(|(i, _)| *i != id.0);
        if state.is_done(id.0) {
            if state.kept.remove(&id.0).is_some() {
                self.kept.store(state.kept.len(), Ordering::SeqCst);
            }
        } else if !state.closed {
            state.gone.insert(id.0);
        }
    }
}

#[cfg(test)]
#[path = "outcomes_tests.rs"]
mod tests;
