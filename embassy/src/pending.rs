//! The fixed table of operations awaiting an outcome (calls, reliable sends), and how a
//! handle's future waits on its slot.
//!
//! A slot is taken in the same lock as the proto command that starts the operation, so an
//! outcome can never arrive before its slot exists. A future that is dropped early frees its
//! slot; an outcome for a freed slot is ignored (proto still finishes the operation).

use core::future::poll_fn;
use core::task::Poll;

use bytes::Bytes;
use embassy_sync::waitqueue::WakerRegistration;
use pavillion_proto::endpoint::CallId;
use pavillion_proto::MessageId;

use crate::{Core, Error, Shared};

/// Operations of one endpoint that may await their outcome at once; one more is refused
/// with [`Error::Busy`]. Each slot costs a few dozen bytes of [`crate::Resources`].
pub const MAX_PENDING: usize = 8;

/// What a slot waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Call(CallId),
    Message(MessageId),
}

/// How an operation ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A call's answer (status 0).
    Answered(Bytes),
    /// A reliable message acknowledged.
    Delivered,
    Error(Error),
}

struct Slot {
    op: Option<Op>,
    outcome: Option<Outcome>,
    waker: WakerRegistration,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            op: None,
            outcome: None,
            waker: WakerRegistration::new(),
        }
    }
}

/// The slots.
pub(crate) struct Pending {
    slots: [Slot; MAX_PENDING],
}

impl Pending {
    pub(crate) const fn new() -> Self {
        Pending {
            slots: [const { Slot::new() }; MAX_PENDING],
        }
    }

    /// A free slot's index, or `Busy`. Check before starting the operation, then `insert`.
    pub(crate) fn free_slot(&self) -> Result<usize, Error> {
        self.slots
            .iter()
            .position(|s| s.op.is_none())
            .ok_or(Error::Busy)
    }

    /// Takes slot `i` (from `free_slot`, in the same lock) for `op`.
    pub(crate) fn insert(&mut self, i: usize, op: Op) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.op = Some(op);
            slot.outcome = None;
        }
    }

    /// Records how `op` ended and wakes its waiter; nothing if nobody waits for it any more.
    pub(crate) fn complete(&mut self, op: Op, outcome: Outcome) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.op == Some(op)) {
            slot.outcome = Some(outcome);
            slot.waker.wake();
        }
    }

    /// Frees slot `i`.
    pub(crate) fn free(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.op = None;
            slot.outcome = None;
        }
    }

    /// Slots in use.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.slots.iter().filter(|s| s.op.is_some()).count()
    }

    fn poll(&mut self, i: usize, waker: &core::task::Waker) -> Poll<Outcome> {
        let Some(slot) = self.slots.get_mut(i) else {
            return Poll::Ready(Outcome::Error(Error::Busy));
        };
        match slot.outcome.take() {
            Some(outcome) => {
                slot.op = None;
                Poll::Ready(outcome)
            }
            None => {
                slot.waker.register(waker);
                Poll::Pending
            }
        }
    }
}

/// Frees the slot if the waiting future is dropped before the outcome.
struct Guard<'a> {
    shared: &'a Shared,
    slot: usize,
    pick: fn(&mut Core) -> Option<&mut Pending>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let (slot, pick) = (self.slot, self.pick);
        self.shared.with(|core| {
            if let Some(p) = pick(core) {
                p.free(slot);
            }
        });
    }
}

/// Waits for the outcome of the operation in `slot` of the table `pick` finds.
pub(crate) async fn wait(
    shared: &Shared,
    slot: usize,
    pick: fn(&mut Core) -> Option<&mut Pending>,
) -> Outcome {
    let guard = Guard { shared, slot, pick };
    let outcome = poll_fn(|cx| {
        shared.with(|core| match pick(core) {
            Some(p) => p.poll(slot, cx.waker()),
            None => Poll::Ready(Outcome::Error(Error::Busy)),
        })
    })
    .await;
    // Already freed by `poll`; freeing twice is harmless, but skip the lock.
    core::mem::forget(guard);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_refuses_the_one_past_its_capacity_and_frees_slots() {
        let mut p = Pending::new();
        for n in 0..MAX_PENDING {
            let i = p.free_slot().unwrap();
            p.insert(i, Op::Call(CallId(n as u64)));
        }
        assert_eq!(p.in_use(), MAX_PENDING);
        assert_eq!(p.free_slot(), Err(Error::Busy));
        p.free(3);
        assert_eq!(p.free_slot(), Ok(3));
    }

    #[test]
    fn an_outcome_reaches_only_its_own_slot_and_frees_it() {
        let mut p = Pending::new();
        p.insert(0, Op::Call(CallId(1)));
        p.insert(1, Op::Message(MessageId(1)));
        p.complete(Op::Message(MessageId(1)), Outcome::Delivered);
        let waker = core::task::Waker::noop();
        assert!(p.poll(0, waker).is_pending());
        assert!(matches!(p.poll(1, waker), Poll::Ready(Outcome::Delivered)));
        assert_eq!(p.in_use(), 1);
        // An outcome nobody waits for is dropped, not stored.
        p.complete(Op::Call(CallId(9)), Outcome::Error(Error::TimedOut));
        assert!(p.poll(0, waker).is_pending());
    }
}
