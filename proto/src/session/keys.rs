//! The receive keys of one session: the key the peer seals with now, the one before it (for
//! packets sealed before the peer switched), and, on a suite 3 responder, the pending one from
//! a handshake the peer has not used yet.
//!
//! Suites 1 and 2 name no key in the header, so a packet is tried under the current key and,
//! only if that fails, under the replaced session's key (a client whose client-info was lost
//! still gets packets sealed under the old key). Suite 3 names the key by the receiver index
//! the header carries, so each packet is tried under exactly one key.
//!
//! Parses no wire bytes (the receiver index arrives parsed from `wire::noise`), sets no
//! timers, emits no events: [`super::Session::open`] is where these keys are used.

use alloc::boxed::Box;

use crate::crypto::noise::ChaChaKey;
use crate::crypto::{CryptoError, SecretBoxKey, SessionCipher, TAG_LEN};
use crate::id::Counter;
use crate::wire::noise::SessionIndex;

use super::replay::ReplayWindow;
use super::RxSession;

/// A receive key of any suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RxKey {
    /// Suites 1 and 2.
    Reference(SecretBoxKey),
    /// Suite 3.
    Noise(ChaChaKey),
}

impl SessionCipher for RxKey {
    fn seal_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        plaintext: &mut [u8],
    ) -> [u8; TAG_LEN] {
        match self {
            RxKey::Reference(k) => k.seal_in_place(counter, header, plaintext),
            RxKey::Noise(k) => k.seal_in_place(counter, header, plaintext),
        }
    }

    fn open_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        tag: &[u8; TAG_LEN],
        ciphertext: &mut [u8],
    ) -> Result<(), CryptoError> {
        match self {
            RxKey::Reference(k) => k.open_in_place(counter, header, tag, ciphertext),
            RxKey::Noise(k) => k.open_in_place(counter, header, tag, ciphertext),
        }
    }
}

/// Which of a session's keys opened a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyUsed {
    /// The key the peer seals with now.
    Current,
    /// The key before the last rotation or re-handshake: the packet says nothing of the new
    /// key, so it does not confirm it.
    Previous,
    /// Suite 3 responder: the key of the handshake the peer has just started using.
    Pending,
}

/// Suite 3 responder: keys from a handshake whose first data packet has not arrived yet.
#[derive(Debug)]
pub(crate) struct PendingKeys {
    /// The index the peer puts on packets under these keys.
    pub(crate) local: SessionIndex,
    /// The index we put on packets to the peer under these keys.
    pub(crate) remote: SessionIndex,
    /// Seals our packets.
    pub(crate) send: ChaChaKey,
    /// Opens the peer's packets.
    pub(crate) recv: ChaChaKey,
}

/// The key before the current one.
#[derive(Debug)]
pub(crate) enum Previous {
    /// Suites 1 and 2: the session a re-handshake replaced. Boxed again: only a client holds
    /// one, and a suite 3 session should not pay its size.
    Replaced(Box<Replaced>),
    /// Suite 3: the receive key before the last rotation, and the index that names it.
    Noise(SessionIndex, ChaChaKey),
}

/// Suites 1 and 2 (client): what is left of the session a re-handshake replaced.
#[derive(Debug)]
pub(crate) struct Replaced {
    /// Its key and window, kept until the new key authenticates a packet: if our client-info
    /// was lost, the server still seals under the old key.
    pub(crate) session: Option<RxSession<RxKey>>,
    /// Its window, kept after that. Our server keeps its counter across a re-handshake and
    /// reseals unacknowledged messages under the new key, so a counter seen here is a copy of
    /// something already delivered.
    pub(crate) seen: ReplayWindow,
}

/// Suite 3: what names the connection, beside its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoiseRecord {
    /// The index the peer puts on packets under the current key.
    pub(crate) local: SessionIndex,
    /// The responder's name for the connection: it changes exactly when the responder's
    /// counters start again, so the initiator knows when to reset its window.
    pub(crate) connection: u64,
    /// Responder only: the initiator's process, and the highest handshake sequence number
    /// seen from it (a recorded initiation must not be accepted again).
    pub(crate) peer_epoch: u64,
    pub(crate) last_seq: u64,
}

impl Default for NoiseRecord {
    fn default() -> Self {
        NoiseRecord {
            local: SessionIndex(0),
            connection: 0,
            peer_epoch: 0,
            last_seq: 0,
        }
    }
}

/// Everything a session holds beyond its current key. Boxed in the session: a suite 1 or 2
/// server session holds none of it, and every session pays for the inline size.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    /// Suite 3 only (zeros otherwise).
    pub(crate) noise: NoiseRecord,
    pub(crate) previous: Option<Box<Previous>>,
    pub(crate) pending: Option<Box<PendingKeys>>,
}

impl Rotation {
    /// The indices that name this session's keys (current, pending, previous), suite 3.
    pub(crate) fn indices(&self) -> [Option<SessionIndex>; 3] {
        let previous = match self.previous.as_deref() {
            Some(Previous::Noise(i, _)) => Some(*i),
            _ => None,
        };
        [
            Some(self.noise.local),
            self.pending.as_ref().map(|p| p.local),
            previous,
        ]
    }

    /// The key the packets naming `index` are sealed with, suite 3.
    pub(crate) fn select(&self, current: &RxKey, index: SessionIndex) -> Option<(RxKey, KeyUsed)> {
        if self.noise.local == index {
            return Some((current.clone(), KeyUsed::Current));
        }
        if let Some(p) = self.pending.as_ref().filter(|p| p.local == index) {
            return Some((RxKey::Noise(p.recv.clone()), KeyUsed::Pending));
        }
        match self.previous.as_deref() {
            Some(Previous::Noise(i, k)) if *i == index => {
                Some((RxKey::Noise(k.clone()), KeyUsed::Previous))
            }
            _ => None,
        }
    }

    /// The window of the replaced session, suites 1 and 2.
    pub(crate) fn seen_before(&self) -> Option<&ReplayWindow> {
        match self.previous.as_deref() {
            Some(Previous::Replaced(r)) => Some(&r.seen),
            _ => None,
        }
    }

    /// Makes `counter` unseen in the replaced session's windows, suites 1 and 2 (nothing
    /// otherwise): see `Session::forget`.
    pub(crate) fn forget_replaced(&mut self, counter: Counter) {
        if let Some(Previous::Replaced(r)) = self.previous.as_deref_mut() {
            r.seen.forget(counter);
            if let Some(old) = r.session.as_mut() {
                old.replay.forget(counter);
            }
        }
    }

    /// The replaced session still open to packets, suites 1 and 2.
    pub(crate) fn replaced_mut(&mut self) -> Option<&mut RxSession<RxKey>> {
        match self.previous.as_deref_mut() {
            Some(Previous::Replaced(r)) => r.session.as_mut(),
            _ => None,
        }
    }
}
