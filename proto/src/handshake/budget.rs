//! The per-source budget of unauthenticated replies: a fixed table that evicts, never refuses.
//!
//! Every reply a server sends before a peer has proved anything (op 2, 6, 11, op 4, suite 3
//! responses, unknown-index and unknown-sender notices) is charged to its source address here.
//! The table has a fixed number of slots, allocated when the server is created. A source
//! hashes (with a per-server secret) to two candidate slots; a new source takes a free or
//! expired one of the two, or else evicts the one whose window started earlier.
//!
//! Why evict rather than refuse: a refusing table is a switch an off-path attacker can turn off.
//! Spoofed junk from as many new addresses as the table has slots, once a second, used to deny
//! every new client its handshake reply. With eviction a flood only makes the table forget; a
//! forgotten source starts again with a fresh budget. What that costs is the precision of the
//! per-source limit under a flood, never the reply a real client needs. The limits that matter
//! for reflection hold per datagram whatever the table remembers: no unauthenticated reply is
//! larger than the request that caused it (suite 3), or than 1.07 times it (suites 1 and 2).
//!
//! Budgets are per address, not per prefix: Pavillion runs on LANs where every client shares
//! one prefix, so a per-prefix budget would let a spoofer exhaust the budget of the very prefix
//! the real clients are in.

use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use crate::time::{Duration, Instant};

/// How long a budget's window lasts: `replies_per_second` are allowed in each.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// Least time between two "you have no session" replies (op 4, suite 3 types 5 and 7) to one
/// source.
pub(crate) const UNRECOGNIZED_GAP: Duration = Duration::from_millis(200);

/// What one source may still be sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyBudget {
    window_start: Instant,
    sent: u32,
    /// Suite 3 initiations served in this window past `sent`'s limit because they carried a
    /// valid cookie for this address: only the address's real owner receives its cookie, so
    /// a spoofer that spends `sent` cannot spend this one (`docs/PROTOCOL.md` §15.6).
    cookied: u32,
    /// The last "unrecognized client" (op 4). Op 4 has its own allowance, so that a burst of
    /// retransmissions from a client we lost cannot use up the budget its handshake needs.
    last_unrecognized: Option<Instant>,
}

impl ReplyBudget {
    fn fresh(now: Instant) -> Self {
        ReplyBudget {
            window_start: now,
            sent: 0,
            cookied: 0,
            last_unrecognized: None,
        }
    }

    /// Takes one handshake reply if fewer than `limit` went out in the current window.
    pub(crate) fn take_reply(&mut self, now: Instant, limit: u32) -> bool {
        self.roll(now);
        if self.sent < limit {
            self.sent += 1;
            true
        } else {
            false
        }
    }

    /// Takes one reply from the second allowance, that of initiations carrying a valid
    /// cookie for this source, if fewer than `limit` went out in the current window.
    pub(crate) fn take_cookied(&mut self, now: Instant, limit: u32) -> bool {
        self.roll(now);
        if self.cookied < limit {
            self.cookied += 1;
            true
        } else {
            false
        }
    }

    /// Starts a new window if the current one is over.
    fn roll(&mut self, now: Instant) {
        if now - self.window_start >= WINDOW {
            self.window_start = now;
            self.sent = 0;
            self.cookied = 0;
        }
    }

    /// Takes the "no session" allowance: once per [`UNRECOGNIZED_GAP`].
    pub(crate) fn take_unrecognized(&mut self, now: Instant) -> bool {
        if self
            .last_unrecognized
            .is_none_or(|t| now - t >= UNRECOGNIZED_GAP)
        {
            self.last_unrecognized = Some(now);
            true
        } else {
            false
        }
    }

    /// Whether this entry still limits anything.
    fn is_live(&self, now: Instant) -> bool {
        now - self.window_start < WINDOW
            || self
                .last_unrecognized
                .is_some_and(|t| now - t < UNRECOGNIZED_GAP)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    addr: SocketAddr,
    budget: ReplyBudget,
}

/// The budgets of the sources heard from lately; see the [module docs](self).
///
/// # Invariants
/// `slots.len()` is a power of two, fixed at creation; `occupied` counts the `Some` slots.
#[derive(Debug)]
pub(crate) struct ReplyBudgets {
    slots: Vec<Option<Slot>>,
    /// Keys the slot hash, so that nobody outside can tell which addresses share slots.
    key: [u64; 2],
    occupied: usize,
}

/// What [`ReplyBudgets::entry`] had to do to find a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// The source had a budget.
    Known,
    /// A new budget in a free or expired slot.
    New,
    /// A new budget that replaced a live one.
    Evicted,
}

impl ReplyBudgets {
    /// A table of at least `capacity` slots (rounded up to a power of two, at least 2).
    pub(crate) fn new(capacity: usize, key: [u64; 2]) -> Self {
        let n = capacity
            .max(2)
            .checked_next_power_of_two()
            .unwrap_or(1 << 20);
        ReplyBudgets {
            slots: vec![None; n],
            key,
            occupied: 0,
        }
    }

    /// The budget of `addr`: its own, or a fresh one in a free slot, or a fresh one that
    /// replaces the candidate slot whose window started earlier. Never fails.
    pub(crate) fn entry(&mut self, now: Instant, addr: SocketAddr) -> (&mut ReplyBudget, Found) {
        let h = self.hash(&addr);
        let mask = self.slots.len() - 1;
        // NOTE(cast): the mask keeps both indices below `slots.len()`, a usize.
        let (a, b) = ((h as usize) & mask, ((h >> 32) as usize) & mask);
        let holds = |s: &Option<Slot>| s.as_ref().is_some_and(|s| s.addr == addr);
        let free = |s: &Option<Slot>| s.as_ref().is_none_or(|s| !s.budget.is_live(now));
        let start = |s: &Option<Slot>| s.as_ref().map(|s| s.budget.window_start);
        let (i, found) = if self.slots.get(a).is_some_and(holds) {
            (a, Found::Known)
        } else if self.slots.get(b).is_some_and(holds) {
            (b, Found::Known)
        } else if self.slots.get(a).is_some_and(free) {
            (a, Found::New)
        } else if self.slots.get(b).is_some_and(free) {
            (b, Found::New)
        } else if self.slots.get(a).and_then(start) <= self.slots.get(b).and_then(start) {
            (a, Found::Evicted)
        } else {
            (b, Found::Evicted)
        };
        // NOTE(index): `i` is masked to the table's length (see above), so this never fails;
        // `get_mut` keeps the per-datagram path free of panics all the same.
        let slot = match self.slots.get_mut(i) {
            Some(s) => s,
            None => unreachable_slot(),
        };
        if found != Found::Known {
            if slot.is_none() {
                self.occupied += 1;
            }
            *slot = Some(Slot {
                addr,
                budget: ReplyBudget::fresh(now),
            });
        }
        match slot {
            Some(s) => (&mut s.budget, found),
            None => unreachable_slot(),
        }
    }

    /// Frees the slots whose budgets no longer limit anything.
    pub(crate) fn expire(&mut self, now: Instant) {
        for s in self.slots.iter_mut() {
            if s.as_ref().is_some_and(|s| !s.budget.is_live(now)) {
                *s = None;
                self.occupied -= 1;
            }
        }
    }

    /// Whether no slot holds a budget.
    pub(crate) fn is_empty(&self) -> bool {
        self.occupied == 0
    }

    /// Number of slots, the most sources remembered at once.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// A keyed mix of the address (not a cryptographic hash: whoever can aim collisions only
    /// makes the table forget sooner, which a flood of new addresses does anyway).
    fn hash(&self, addr: &SocketAddr) -> u64 {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => u128::from(u32::from_be_bytes(v4.octets())),
            IpAddr::V6(v6) => u128::from_be_bytes(v6.octets()),
        };
        // NOTE(cast): the two halves of a u128, truncation intended.
        let words = [ip as u64, (ip >> 64) as u64, u64::from(addr.port())];
        let mut h = self.key[0];
        for w in words {
            h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
            h = h.wrapping_add(self.key[1]);
        }
        h ^ (h >> 32).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }
}

/// The table's indices are masked to its length, so no slot lookup can miss.
#[cold]
fn unreachable_slot() -> ! {
    unreachable!("slot index masked to the table length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4((0x0a00_0000 + i).into()), 40000)
    }

    /// The table is allocated whole when the server is created: 64 KiB at the default 1024
    /// slots.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_stays_small() {
        assert!(core::mem::size_of::<Option<Slot>>() <= 64);
    }

    /// The cookie budget is apart from the first: spending one leaves the other whole, and
    /// both start again with the window.
    #[test]
    fn the_cookie_budget_is_spent_apart_from_the_reply_budget() {
        let mut t = ReplyBudgets::new(64, [1, 2]);
        let now = Instant::from_millis(1000);
        let b = t.entry(now, addr(1)).0;
        assert!(b.take_reply(now, 1));
        assert!(!b.take_reply(now, 1));
        assert!(b.take_cookied(now, 1));
        assert!(!b.take_cookied(now, 1));
        let later = now + WINDOW;
        assert!(b.take_cookied(later, 1) && b.take_reply(later, 1));
    }

    #[test]
    fn a_known_source_keeps_its_budget_until_it_expires() {
        let mut t = ReplyBudgets::new(64, [1, 2]);
        let now = Instant::from_millis(1000);
        let (b, found) = t.entry(now, addr(1));
        assert_eq!(found, Found::New);
        assert!(b.take_reply(now, 2) && b.take_reply(now, 2));
        let (b, found) = t.entry(now, addr(1));
        assert_eq!(found, Found::Known);
        assert!(
            !b.take_reply(now, 2),
            "the third reply in one window is refused"
        );
        let later = now + WINDOW;
        assert!(t.entry(later, addr(1)).0.take_reply(later, 2));
        t.expire(later + WINDOW);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_evicts_instead_of_refusing() {
        let mut t = ReplyBudgets::new(16, [3, 4]);
        let now = Instant::from_millis(1000);
        let mut evicted = 0;
        for i in 0..10_000 {
            let (b, found) = t.entry(now, addr(i));
            assert_ne!(found, Found::Known);
            assert!(b.take_reply(now, 1), "source {i} got no reply");
            evicted += u32::from(found == Found::Evicted);
        }
        assert!(evicted > 9_900, "{evicted}");
        assert_eq!(t.capacity(), 16);
        assert!(t.occupied <= 16);
    }
}
