//! What every role has alike, kept once: the transmit queue, the events for the application,
//! the counters, the decryption scratch buffer and the latest time the driver told us.
//!
//! A role owns a [`Shared`] and implements [`Sealer`] (how it turns a queued [`Outgoing`] into
//! bytes); [`poll_transmit`] is then the one drain loop of every role. Nothing here parses a
//! byte, sets a timer or emits an event of its own.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::{Encoded, Outgoing, Stats, Transmit};
use crate::keylog::{SecretQueue, SessionSecret};
use crate::time::Instant;
use crate::wire;

/// The plumbing every role has: queued datagrams, pending events, counters, scratch.
#[derive(Debug)]
pub(crate) struct Shared<E> {
    /// Datagrams to send, sealed only when polled so that queued items hold no ciphertext.
    pub(crate) tx: VecDeque<Outgoing>,
    /// Events not yet polled by the application.
    pub(crate) events: VecDeque<E>,
    pub(crate) stats: Stats,
    /// Decryption scratch, allocated once: opening a datagram never allocates.
    scratch: Vec<u8>,
    /// The latest time seen; time never goes backwards, even if the driver's clock does.
    pub(crate) last_now: Instant,
    /// Session secrets for the key log (off by default, see [`crate::keylog`]).
    pub(crate) secrets: SecretQueue,
}

impl<E> Shared<E> {
    pub(crate) fn new() -> Self {
        Shared {
            tx: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            scratch: vec![0; wire::MAX_DATAGRAM],
            last_now: Instant::ZERO,
            secrets: SecretQueue::default(),
        }
    }

    /// Queues the secret `make` builds if the key log is on; with it off, `make` never runs,
    /// so logging costs one branch.
    pub(crate) fn log_secret(&mut self, make: impl FnOnce() -> SessionSecret) {
        if self.secrets.is_on() && self.secrets.push(make()) {
            self.stats.secrets_dropped += 1;
        }
    }

    /// Records the driver's time.
    pub(crate) fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.last_now, "time went backwards");
        self.last_now = self.last_now.max(now);
    }

    /// Lends the scratch buffer out: the plaintext borrows it while the role's handlers need
    /// the whole role. Give it back with [`Shared::return_scratch`].
    pub(crate) fn take_scratch(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.scratch)
    }

    /// Takes back the buffer [`Shared::take_scratch`] lent.
    pub(crate) fn return_scratch(&mut self, scratch: Vec<u8>) {
        self.scratch = scratch;
    }
}

/// How a role seals what it queued (it alone holds the keys and counters).
pub(crate) trait Sealer {
    /// The role's event type.
    type Event;

    /// The role's shared plumbing.
    fn shared(&mut self) -> &mut Shared<Self::Event>;

    /// Writes `out` into `buf`, or says why it is not sent.
    fn encode(&mut self, now: Instant, out: Outgoing, buf: &mut [u8]) -> Encoded;
}

/// The drain loop of every role's `poll_transmit`: the next queued datagram that encodes, with
/// each attempt counted.
pub(crate) fn poll_transmit<R: Sealer>(
    role: &mut R,
    now: Instant,
    buf: &mut [u8],
) -> Option<Transmit> {
    while let Some(out) = role.shared().tx.pop_front() {
        let encoded = role.encode(now, out, buf);
        if let Some(t) = role.shared().stats.account(encoded) {
            return Some(t);
        }
    }
    None
}

/// Runs `f` with the role and its scratch buffer both borrowed: a datagram's plaintext lives in
/// the scratch while the role's handlers act on it.
pub(crate) fn with_scratch<R: Sealer, T>(
    role: &mut R,
    f: impl FnOnce(&mut R, &mut [u8]) -> T,
) -> T {
    let mut scratch = role.shared().take_scratch();
    let result = f(role, &mut scratch);
    role.shared().return_scratch(scratch);
    result
}

/// The key log queue as every role uses it (`docs/DECODE.md` §2).
#[cfg(test)]
mod key_log_tests {
    use alloc::vec::Vec;

    use super::Shared;
    use crate::keylog::{self, SessionSecret};

    fn group(key_id: u32) -> SessionSecret {
        SessionSecret::Group {
            sender: 1,
            key_id,
            key: [9; 32],
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let mut shared = Shared::<()>::new();
        shared.log_secret(|| group(0));
        assert_eq!(shared.secrets.pop(), None, "off by default");
        shared.secrets.set(true);
        let extra = 6u32;
        for i in 0..keylog::MAX_QUEUED_SECRETS as u32 + extra {
            shared.log_secret(|| group(i));
        }
        assert_eq!(shared.stats.secrets_dropped, u64::from(extra));
        let mut kept = Vec::new();
        while let Some(s) = shared.secrets.pop() {
            kept.push(s);
        }
        assert_eq!(kept.len(), keylog::MAX_QUEUED_SECRETS);
        assert_eq!(kept[0], group(extra), "the oldest went first");
        assert_eq!(
            kept.last(),
            Some(&group(keylog::MAX_QUEUED_SECRETS as u32 + extra - 1))
        );
    }

    #[test]
    fn with_the_log_off_the_secret_is_never_built() {
        let mut shared = Shared::<()>::new();
        shared.log_secret(|| unreachable!("built while off"));
        shared.secrets.set(true);
        shared.secrets.set(false);
        shared.log_secret(|| unreachable!("built while off"));
    }
}
