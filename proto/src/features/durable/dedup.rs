//! The receiver side: per sender, the floor and the window of seqs seen above it; the inbox.
//!
//! A sender is a (peer, origin) pair: the same origin reaching us from two peers (a store
//! copied to two devices) is two senders, and a peer that reboots with a fresh store is a new
//! one. Per sender we keep 8 bytes of floor and a 1024-bit window: every seq below the floor
//! is resolved at the sender (it says so in each packet), a set bit is a seq we received. The
//! inbox holds what we received and the application has not consumed; an entry not yet
//! stored is "held": it is neither acknowledged nor delivered until its batch is stored.

use alloc::collections::BTreeMap;

use super::records::{InboxKey, SenderKey};
use super::{DurableSeq, PendingAck, WINDOW};
use crate::reliability::OwnedMessage;

/// Bytes of a window's bitmap.
pub(super) const BITMAP_BYTES: usize = (WINDOW / 8) as usize;
const WORDS: usize = (WINDOW / 64) as usize;

/// One sender's floor and the seqs received in `floor..floor + WINDOW`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    floor: u64,
    /// Bit `i` (word `i / 64`, bit `i % 64`) = seq `floor + i` received.
    bits: [u64; WORDS],
}

impl Window {
    /// Nothing received; every seq below `floor` resolved.
    pub(super) fn new(floor: u64) -> Self {
        Window {
            floor,
            bits: [0; WORDS],
        }
    }

    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    /// The bit of `seq`, if it is in the window.
    fn index(&self, seq: u64) -> Option<usize> {
        let i = seq.checked_sub(self.floor)?;
        (i < WINDOW).then_some(i as usize)
    }

    /// Whether `seq` is in the window and received.
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.index(seq)
            .is_some_and(|i| self.bits[i / 64] & (1 << (i % 64)) != 0)
    }

    /// Marks `seq` received; false if it is outside the window.
    pub(super) fn set(&mut self, seq: u64) -> bool {
        let Some(i) = self.index(seq) else {
            return false;
        };
        self.bits[i / 64] |= 1 << (i % 64);
        true
    }

    /// Forgets that `seq` was received (its record was never stored).
    pub(super) fn clear(&mut self, seq: u64) {
        if let Some(i) = self.index(seq) {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Moves the floor up to `floor` (never down): the bits below it go. True if it moved.
    pub(super) fn slide(&mut self, floor: u64) -> bool {
        let Some(shift) = floor.checked_sub(self.floor).filter(|&s| s > 0) else {
            return false;
        };
        self.floor = floor;
        if shift >= WINDOW {
            self.bits = [0; WORDS];
            return true;
        }
        // shift < WINDOW, so both fit in usize.
        let (words, bits) = ((shift / 64) as usize, (shift % 64) as u32);
        let old = self.bits;
        for (w, out) in self.bits.iter_mut().enumerate() {
            let lo = old.get(w + words).copied().unwrap_or(0);
            let hi = old.get(w + words + 1).copied().unwrap_or(0);
            *out = if bits == 0 {
                lo
            } else {
                (lo >> bits) | (hi << (64 - bits))
            };
        }
        true
    }

    /// The `seen` value: floor u64 LE, then the bitmap (bit `i` in byte `i / 8`, at
    /// `1 << (i % 8)`).
    pub(super) fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec::Vec::with_capacity(super::records::SEEN_LEN);
        v.extend_from_slice(&self.floor.to_le_bytes());
        for w in self.bits {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    pub(super) fn decode(value: &[u8]) -> Option<Self> {
        let (floor, rest) = value.split_first_chunk::<8>()?;
        if rest.len() != BITMAP_BYTES {
            return None;
        }
        let mut bits = [0u64; WORDS];
        for (w, chunk) in bits.iter_mut().zip(rest.chunks_exact(8)) {
            // NOTE(unwrap): chunks_exact(8) yields 8-byte chunks.
            *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        Some(Window {
            floor: u64::from_le_bytes(*floor),
            bits,
        })
    }
}

/// A received message not yet consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InboxEntry {
    pub(super) message: OwnedMessage,
    /// Its record is stored: it may be acknowledged and delivered.
    pub(super) stored: bool,
    /// The ACK to send when it is stored (the latest copy's counter and source).
    pub(super) ack: Option<PendingAck>,
}

/// What this endpoint has received, by sender.
#[derive(Debug, Default)]
pub(super) struct Dedup {
    pub(super) senders: BTreeMap<SenderKey, Window>,
    pub(super) inbox: BTreeMap<InboxKey, InboxEntry>,
}

/// What the receiver rules (2–9) decided, before the records are queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    AckNow,
    Waiting,
    Accept,
    Invalid,
    TableFull,
    OutOfWindow,
    InboxFull,
}

impl Dedup {
    /// Rules 2–8 of a received op 37 (`docs/PROTOCOL.md` §16), applying its floor (rule 4).
    /// On `Accept` the bit is set and the sender known; the caller queues the records and
    /// the sender's `seen` row. `floor_moved` is set when the floor moved (or the sender is
    /// new), which changes the `seen` row too.
    pub(super) fn judge(
        &mut self,
        sender: SenderKey,
        seq: DurableSeq,
        floor: DurableSeq,
        limits: &super::DurableLimits,
        floor_moved: &mut bool,
    ) -> Verdict {
        let (s, f) = (seq.0, floor.0);
        // Rule 2.
        if s == 0 || s == u64::MAX || f > s + 1 {
            return Verdict::Invalid;
        }
        let known = self.senders.contains_key(&sender);
        // Rule 3.
        if !known && self.senders.len() >= limits.max_senders {
            return Verdict::TableFull;
        }
        let mut fresh = Window::new(f.max(1));
        let w = match self.senders.get_mut(&sender) {
            Some(w) => {
                // Rule 4.
                *floor_moved = w.slide(f);
                w
            }
            None => &mut fresh,
        };
        // A held copy is never acknowledged before its record is stored, even if its
        // sender has since moved the floor past it (it cancelled it).
        if self
            .inbox
            .get(&(sender.0, sender.1, seq))
            .is_some_and(|e| !e.stored)
        {
            return Verdict::Waiting;
        }
        // Rules 5 and 6 (a set bit with no held entry was stored: consumed or in the inbox).
        if s < w.floor() || w.contains(s) {
            return Verdict::AckNow;
        }
        // Rule 7.
        if s - w.floor() >= WINDOW {
            return Verdict::OutOfWindow;
        }
        // Rule 8.
        if self.inbox.len() >= limits.max_inbox {
            return Verdict::InboxFull;
        }
        // Rule 9.
        w.set(s);
        if !known {
            self.senders.insert(sender, fresh);
            *floor_moved = true;
        }
        Verdict::Accept
    }
}
