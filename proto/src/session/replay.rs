//! The sliding replay window over received packet counters.
//!
//! The reference accepts a session packet only if its counter is strictly greater than the last
//! one accepted (docs/PROTOCOL.md §10 item 11), so one reordered datagram on the path throws away
//! every packet that overtook it. We keep the newest accepted counter plus a bitmap of the
//! [`WINDOW`] counters at and below it, as IPsec (RFC 4303 §3.4.3) and WireGuard do: a counter
//! is accepted at most once, in any order, as long as it is not more than `WINDOW - 1` below the
//! newest accepted one.
//!
//! The check is split in two because the counter is in the cleartext header:
//! [`ReplayWindow::check`] runs before decryption, so obvious replays cost no crypto, and
//! [`ReplayWindow::commit`] runs only after the packet authenticated, so a forged packet can never
//! move the window.

use alloc::boxed::Box;
use core::fmt;

use crate::id::Counter;

/// How many counters the window covers: the newest accepted one and the `WINDOW - 1` below it.
///
/// A counter `WINDOW` or more below the newest accepted counter is [`Replay::TooOld`].
pub const WINDOW: u64 = 1024;

/// Which counters of one receive direction have been seen.
///
/// Most windows never see a counter out of order, or only within the last 64: then every
/// counter of the window below the top 64 was seen, except perhaps a run just above the floor
/// that was skipped before the first commit (a suite 3 initiator starts its counters at a
/// random value, so the first counter a server sees is far above its floor of 0). Then the
/// window is 32 bytes without any heap (a server holds one per idle session: `compare`'s
/// memory rows). The first time any other gap would fall below the top 64, the window moves
/// to a boxed ring of [`WINDOW`] bits and stays there; the verdicts are the same either way
/// (`tests::prop_matches_model`).
///
/// # Invariants
/// - `floor <= newest`; `newest == floor` exactly while nothing was committed.
/// - Every counter `c` with `max(floor, newest - WINDOW) < c <= newest` was committed if and
///   only if `Bits` says so: in `Bits::Dense { recent, skipped }`, bit `newest - c` of
///   `recent` for `c > newest - 64`, and for every lower `c`: "not committed" if
///   `c <= floor + skipped` (the run skipped before the first commit; it may reach into the
///   top 64, where the bits decide), "committed" otherwise; in `Bits::Ring`, the bit at
///   position `c % WINDOW`. Bits of counters outside that range mean nothing and are cleared
///   as the window slides over them.
/// - `floor + skipped` does not overflow: it is below the first counter committed.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Every counter at or below this is refused, whatever the bits say.
    ///
    /// Kept even though a fully set bitmap could refuse the `WINDOW` counters below it: with an
    /// explicit floor those get the accurate verdict [`Replay::TooOld`], and counter 0 (setup
    /// packets) needs no special case since every floor is at least 0. The first commit raises
    /// it to the window's bottom (`first`), which changes no verdict.
    floor: u64,
    /// The highest counter committed so far, or `floor` if none was.
    newest: u64,
    bits: Bits,
}

/// Which counters of the window were seen; see [`ReplayWindow`]'s invariants.
#[derive(Clone, Debug)]
enum Bits {
    /// Bit `i` of `recent` is counter `newest - i`; every counter of the window below those 64
    /// was seen, except the `skipped` counters just above the floor (passed over before the
    /// first commit; fewer than `WINDOW`, so a `u16`, which keeps the window at 32 bytes).
    Dense { recent: u64, skipped: u16 },
    /// A ring of `WINDOW` bits indexed by `counter % WINDOW`, once a gap fell below the top 64.
    Ring(Box<[u64; WORDS]>),
}

/// Why a counter was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// The counter is inside the window and was already accepted: a replay or a network
    /// duplicate.
    Duplicate,
    /// The counter is at or below the floor, or at least [`WINDOW`] below the newest accepted
    /// counter, so the window can no longer tell whether it was seen.
    TooOld,
}

impl ReplayWindow {
    /// Makes a window that refuses every counter at or below `floor`.
    ///
    /// After a handshake the reference accepts only counters above the one the client info
    /// carried; pass that value here. `Counter(0)` gives a window that accepts every session
    /// counter, since counter 0 belongs to setup packets and is refused regardless.
    pub const fn new(floor: Counter) -> Self {
        ReplayWindow {
            floor: floor.0,
            newest: floor.0,
            bits: Bits::Dense {
                recent: 0,
                skipped: 0,
            },
        }
    }

    /// Records `c` as seen and slides the window forward if `c` is the newest so far.
    ///
    /// Call this only after the packet carrying `c` authenticated; otherwise a forged counter
    /// could push the window past every genuine packet still in flight.
    ///
    /// # Errors
    /// The same verdict as [`check`](Self::check); on `Err` nothing changes.
    pub fn commit(&mut self, c: Counter) -> Result<(), Replay> {
        self.check(c)?;
        let c = c.0;
        if let Bits::Dense { recent, skipped } = self.bits {
            if c <= self.newest {
                // Below the top 64 `check` passed only counters of the skipped run. Its top
                // counter shortens the run (packets reordered just before the first one); any
                // other counter of it below the top 64 needs the ring.
                let run_top = c == self.floor + u64::from(skipped);
                let skipped = if run_top { skipped - 1 } else { skipped };
                let back = self.newest - c;
                if back < 64 {
                    self.bits = Bits::Dense {
                        recent: recent | 1 << back,
                        skipped,
                    };
                    return Ok(());
                }
                if run_top {
                    self.bits = Bits::Dense { recent, skipped };
                    return Ok(());
                }
            } else if self.newest == self.floor {
                self.first(c);
                return Ok(());
            } else if self.stays_dense(recent, skipped, c) {
                let advance = c - self.newest;
                let shifted = if advance >= 64 { 0 } else { recent << advance };
                self.bits = Bits::Dense {
                    recent: shifted | 1,
                    skipped,
                };
                self.newest = c;
                return Ok(());
            }
            self.bits = Bits::Ring(Box::new(self.ring()));
        }
        let Bits::Ring(bitmap) = &mut self.bits else {
            return Ok(());
        };
        if c > self.newest {
            let advance = c - self.newest;
            if advance >= WINDOW {
                // Every counter the window covered is now too old, so no bit survives.
                **bitmap = [0; WORDS];
            } else {
                // The bits of newest+1..=c still describe counters WINDOW lower, which just fell
                // out of the window; they must read "unseen" for the new counters.
                // No overflow: c > newest, so newest < u64::MAX.
                clear(bitmap, self.newest + 1, advance);
            }
            self.newest = c;
        }
        let (word, bit) = position(c);
        bitmap[word] |= 1 << bit;
        Ok(())
    }

    /// Tells whether `c` would be accepted, without recording it.
    ///
    /// Meant to run before decryption, to skip the crypto for obvious replays; a packet that
    /// passes must still be [`commit`](Self::commit)ted after it authenticates.
    ///
    /// # Errors
    /// [`Replay::TooOld`] for counter 0, for counters at or below the floor and for counters
    /// [`WINDOW`] or more below [`newest`](Self::newest); [`Replay::Duplicate`] for a counter
    /// already committed.
    pub fn check(&self, c: Counter) -> Result<(), Replay> {
        let c = c.0;
        if c <= self.floor {
            return Err(Replay::TooOld);
        }
        if c > self.newest {
            return Ok(());
        }
        // Written as a difference because `c + WINDOW` can overflow near u64::MAX.
        if self.newest - c >= WINDOW {
            return Err(Replay::TooOld);
        }
        if self.seen(c) {
            Err(Replay::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Makes `c` unseen again, so that the next packet carrying it is accepted as fresh: the
    /// acknowledgement hand-off (`features::handoff`) refuses a held message this way, and the
    /// sender's retransmission is delivered again instead of being a duplicate.
    ///
    /// Every invariant stays: the window does not move, and a counter the window can no
    /// longer judge (at or below the floor, or [`WINDOW`] or more below the newest) cannot be
    /// forgotten, since its verdict is [`Replay::TooOld`] whatever the bits say.
    ///
    /// Returns whether `c` is now accepted ([`check`](Self::check) says `Ok`): `true` for a
    /// counter above the newest too, which was never seen; `false` for one too old.
    pub fn forget(&mut self, c: Counter) -> bool {
        let c = c.0;
        if c <= self.floor || (c <= self.newest && self.newest - c >= WINDOW) {
            return false;
        }
        if c > self.newest || !self.seen(c) {
            return true;
        }
        if let Bits::Dense { recent, skipped } = self.bits {
            let back = self.newest - c;
            if back < 64 {
                self.bits = Bits::Dense {
                    recent: recent & !(1 << back),
                    skipped,
                };
                return true;
            }
            // Below the top 64 and above the skipped run the dense form says "seen" for
            // every counter: a gap there needs the ring.
            self.bits = Bits::Ring(Box::new(self.ring()));
        }
        if let Bits::Ring(bitmap) = &mut self.bits {
            let (word, bit) = position(c);
            bitmap[word] &= !(1 << bit);
        }
        true
    }

    /// The highest counter accepted so far, or the floor if none was.
    pub const fn newest(&self) -> Counter {
        Counter(self.newest)
    }

    /// Whether `c`, inside the window (above the floor, less than `WINDOW` below the newest),
    /// was committed.
    fn seen(&self, c: u64) -> bool {
        match &self.bits {
            Bits::Dense { recent, skipped } => {
                let back = self.newest - c;
                if back < 64 {
                    recent & 1 << back != 0
                } else {
                    c > self.floor + u64::from(*skipped)
                }
            }
            Bits::Ring(bitmap) => {
                let (word, bit) = position(c);
                bitmap[word] & 1 << bit != 0
            }
        }
    }

    /// The first commit, of `c` above the floor: the counters passed over below it stay
    /// unseen, as the dense form's skipped run above the floor. The floor rises to the
    /// window's bottom, which changes no verdict (a counter `WINDOW` or more below the newest
    /// is too old either way) and bounds the run by `WINDOW - 1`.
    fn first(&mut self, c: u64) {
        self.floor = self.floor.max(c.saturating_sub(WINDOW));
        // No underflow: c > floor, as `check` passed.
        let skipped = c - 1 - self.floor;
        self.newest = c;
        self.bits = Bits::Dense {
            recent: 1,
            // NOTE(cast): `skipped < WINDOW <= u16::MAX`, since the floor is now at least
            // `c - WINDOW`.
            skipped: skipped as u16,
        };
    }

    /// Dense form: whether, once `c` (above the newest) is committed, the counters that fall
    /// below the top 64 still read right without their bits: those of the skipped run must be
    /// unseen, every other one seen. They are the old top's oldest (as their bits say) and any
    /// passed over by `c` (never seen); those at or below the new window's bottom do not
    /// matter.
    fn stays_dense(&self, recent: u64, skipped: u16, c: u64) -> bool {
        let bottom = self.floor.max(c.saturating_sub(WINDOW));
        // The counters that fall out of the top 64: (low, top_out].
        let Some(top_out) = c.checked_sub(64) else {
            return true;
        };
        let low = bottom.max(self.newest.saturating_sub(64));
        if top_out <= low {
            return true;
        }
        if top_out > self.newest {
            // A counter passed over, above `low` and above the run (which ends below the
            // first commit), falls below the top 64 unseen.
            return false;
        }
        // No overflow: see the invariants.
        let run_top = self.floor + u64::from(skipped);
        let split = run_top.clamp(low, top_out);
        let (unseen, seen) = (self.bits_of(low, split), self.bits_of(split, top_out));
        recent & unseen == 0 && recent & seen == seen
    }

    /// The mask of the dense bits of counters `lo + 1 ..= hi`, all within the top 64
    /// (`newest - 64 <= lo`, `hi <= newest`).
    fn bits_of(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return 0;
        }
        // Bits newest - hi ..= newest - (lo + 1): at most 64 of them.
        let (from, to) = (self.newest - hi, self.newest - (lo + 1));
        let width = to - from + 1;
        if width >= 64 {
            u64::MAX
        } else {
            ((1u64 << width) - 1) << from
        }
    }

    /// The ring form of a dense window, for when a gap is about to fall below the top 64.
    fn ring(&self) -> [u64; WORDS] {
        let mut bitmap = [0; WORDS];
        let bottom = self.floor.max(self.newest.saturating_sub(WINDOW));
        // No overflow: the range is within (floor, newest], at most WINDOW counters.
        let mut c = self.newest;
        while c > bottom {
            if self.seen(c) {
                let (word, bit) = position(c);
                bitmap[word] |= 1 << bit;
            }
            c -= 1;
        }
        bitmap
    }
}

/// Two windows are equal when they give every counter the same verdict, whatever their form.
impl PartialEq for ReplayWindow {
    fn eq(&self, other: &Self) -> bool {
        // The floors themselves may differ: the first commit raises the floor to the
        // window's bottom, which changes no verdict.
        let bottom = self.floor.max(self.newest.saturating_sub(WINDOW));
        let other_bottom = other.floor.max(other.newest.saturating_sub(WINDOW));
        if (bottom, self.newest) != (other_bottom, other.newest) {
            return false;
        }
        let mut c = self.newest;
        while c > bottom {
            if self.seen(c) != other.seen(c) {
                return false;
            }
            c -= 1;
        }
        true
    }
}

impl Eq for ReplayWindow {}

/// Clears the ring bits of the `count` counters starting at `from`, with `count < WINDOW`.
fn clear(bitmap: &mut [u64; WORDS], from: u64, count: u64) {
    debug_assert!(count < WINDOW);
    // Word-sized steps: a jump of most of the window costs about WORDS iterations, not
    // WINDOW.
    let mut pos = from % WINDOW;
    let mut left = count;
    while left > 0 {
        let bit = pos % 64;
        let n = left.min(64 - bit);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << bit
        };
        // The index is below WORDS because pos < WINDOW.
        bitmap[(pos / 64) as usize] &= !mask;
        pos = (pos + n) % WINDOW;
        left -= n;
    }
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Replay::Duplicate => "packet counter already accepted",
            Replay::TooOld => "packet counter below the replay window",
        })
    }
}

impl core::error::Error for Replay {}

/// The word and bit of counter `c` in the bitmap ring.
fn position(c: u64) -> (usize, u64) {
    let pos = c % WINDOW;
    // pos < WINDOW, so pos / 64 < WORDS and fits any usize.
    ((pos / 64) as usize, pos % 64)
}

/// The bitmap's length in u64 words.
const WORDS: usize = (WINDOW / 64) as usize;

// The ring indexing assumes whole words, and the protocol asks for a window of at least 64.
const _: () = assert!(WINDOW >= 64 && WINDOW % 64 == 0);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;
    use quickcheck::quickcheck;

    /// A fresh window as after a handshake whose client info carried counter 0.
    fn window_fresh() -> ReplayWindow {
        ReplayWindow::new(Counter(0))
    }

    /// A window that has accepted 1..=n in order.
    fn window_after(n: u64) -> ReplayWindow {
        let mut w = window_fresh();
        for c in 1..=n {
            assert_eq!(w.commit(Counter(c)), Ok(()));
        }
        w
    }

    /// Checks and then commits, asserting both give the same verdict and check mutated nothing.
    fn accept(w: &mut ReplayWindow, c: u64) -> Result<(), Replay> {
        let before = w.clone();
        let checked = w.check(Counter(c));
        assert_eq!(*w, before, "check mutated the window");
        let committed = w.commit(Counter(c));
        assert_eq!(checked, committed, "check and commit disagree on {c}");
        if committed.is_err() {
            assert_eq!(*w, before, "a refused commit changed the window");
        }
        committed
    }

    #[test]
    fn in_order_counters_are_accepted() {
        let mut w = window_fresh();
        for c in 1..=3 * WINDOW {
            assert_eq!(accept(&mut w, c), Ok(()));
            assert_eq!(w.newest(), Counter(c));
        }
    }

    #[test]
    fn reordered_counter_is_accepted_once() {
        let mut w = window_fresh();
        assert_eq!(accept(&mut w, 5), Ok(()));
        assert_eq!(accept(&mut w, 3), Ok(()));
        assert_eq!(accept(&mut w, 4), Ok(()));
        assert_eq!(accept(&mut w, 3), Err(Replay::Duplicate));
        assert_eq!(accept(&mut w, 4), Err(Replay::Duplicate));
        assert_eq!(w.newest(), Counter(5));
        assert_eq!(accept(&mut w, 1), Ok(()));
        assert_eq!(accept(&mut w, 2), Ok(()));
    }

    #[test]
    fn duplicate_of_newest_is_refused() {
        let mut w = window_after(10);
        assert_eq!(accept(&mut w, 10), Err(Replay::Duplicate));
        assert_eq!(accept(&mut w, 7), Err(Replay::Duplicate));
    }

    #[test]
    fn window_edge_is_exact() {
        let mut w = window_fresh();
        let newest = 5 * WINDOW + 17;
        assert_eq!(accept(&mut w, newest), Ok(()));
        // WINDOW - 1 below the newest is the oldest counter still in the window.
        assert_eq!(accept(&mut w, newest - (WINDOW - 1)), Ok(()));
        assert_eq!(accept(&mut w, newest - WINDOW), Err(Replay::TooOld));
        assert_eq!(accept(&mut w, 1), Err(Replay::TooOld));
    }

    #[test]
    fn counters_sharing_a_bit_are_told_apart() {
        // c and c + WINDOW use the same bit; sliding to c + WINDOW must not make c look fresh or
        // c + WINDOW look seen.
        let mut w = window_fresh();
        assert_eq!(accept(&mut w, 100), Ok(()));
        assert_eq!(accept(&mut w, 100 + WINDOW), Ok(()));
        assert_eq!(accept(&mut w, 100), Err(Replay::TooOld));
        assert_eq!(accept(&mut w, 100 + WINDOW), Err(Replay::Duplicate));
    }

    #[test]
    fn slide_within_window_clears_only_the_new_counters() {
        let mut w = window_fresh();
        for c in 1..=WINDOW {
            assert_eq!(accept(&mut w, c), Ok(()));
        }
        // Advance by less than the window: the counters skipped over must be fresh, while the
        // ones still inside keep their marks.
        let jump = WINDOW + 700;
        assert_eq!(accept(&mut w, jump), Ok(()));
        for c in jump - WINDOW + 1..=WINDOW {
            assert_eq!(accept(&mut w, c), Err(Replay::Duplicate), "{c}");
        }
        for c in WINDOW + 1..jump {
            assert_eq!(accept(&mut w, c), Ok(()), "{c}");
        }
    }

    #[test]
    fn huge_jump_clears_the_bitmap() {
        let mut w = window_after(WINDOW);
        let far = 1_000_000 * WINDOW + 3;
        assert_eq!(accept(&mut w, far), Ok(()));
        assert_eq!(w.newest(), Counter(far));
        for c in far - (WINDOW - 1)..far {
            assert_eq!(
                accept(&mut w, c),
                Ok(()),
                "{c} was left marked by the old window"
            );
        }
        assert_eq!(accept(&mut w, WINDOW), Err(Replay::TooOld));
    }

    #[test]
    fn jump_of_exactly_window_clears_the_bitmap() {
        let mut w = window_after(10);
        assert_eq!(accept(&mut w, 10 + WINDOW), Ok(()));
        assert_eq!(accept(&mut w, 10), Err(Replay::TooOld));
        for c in 11..10 + WINDOW {
            assert_eq!(accept(&mut w, c), Ok(()), "{c}");
        }
    }

    #[test]
    fn floor_and_below_are_refused() {
        let floor = 10 * WINDOW;
        let mut w = ReplayWindow::new(Counter(floor));
        assert_eq!(w.newest(), Counter(floor));
        assert_eq!(accept(&mut w, floor), Err(Replay::TooOld));
        for c in floor - WINDOW..floor {
            assert!(
                accept(&mut w, c).is_err(),
                "{c} below the floor was accepted"
            );
        }
        assert_eq!(accept(&mut w, 1), Err(Replay::TooOld));
        assert_eq!(accept(&mut w, floor + 2), Ok(()));
        assert_eq!(accept(&mut w, floor + 1), Ok(()));
        // Still refused once the newest counter is far from the floor again.
        assert_eq!(accept(&mut w, floor), Err(Replay::TooOld));
    }

    #[test]
    fn counter_zero_is_never_valid() {
        assert_eq!(window_fresh().check(Counter::SETUP), Err(Replay::TooOld));
        assert_eq!(window_after(5).check(Counter::SETUP), Err(Replay::TooOld));
        let mut w = window_fresh();
        assert_eq!(accept(&mut w, 0), Err(Replay::TooOld));
        assert_eq!(w.newest(), Counter(0));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut w = ReplayWindow::new(Counter(u64::MAX - 3));
        assert_eq!(accept(&mut w, u64::MAX - 3), Err(Replay::TooOld));
        assert_eq!(accept(&mut w, u64::MAX), Ok(()));
        assert_eq!(accept(&mut w, u64::MAX - 1), Ok(()));
        assert_eq!(accept(&mut w, u64::MAX), Err(Replay::Duplicate));
        assert_eq!(accept(&mut w, u64::MAX - 1), Err(Replay::Duplicate));
        assert_eq!(accept(&mut w, u64::MAX - 2), Ok(()));

        let mut w = ReplayWindow::new(Counter(u64::MAX));
        assert_eq!(accept(&mut w, u64::MAX), Err(Replay::TooOld));
        assert_eq!(accept(&mut w, 1), Err(Replay::TooOld));

        let mut w = window_after(3);
        assert_eq!(accept(&mut w, u64::MAX), Ok(()));
        assert_eq!(accept(&mut w, u64::MAX - (WINDOW - 1)), Ok(()));
        assert_eq!(accept(&mut w, u64::MAX - WINDOW), Err(Replay::TooOld));
        assert_eq!(accept(&mut w, 4), Err(Replay::TooOld));
    }

    #[test]
    fn check_never_mutates() {
        let w = window_after(50);
        let before = w.clone();
        for c in [0, 1, 25, 50, 51, 5_000, u64::MAX] {
            let _ = w.check(Counter(c));
        }
        assert_eq!(w, before);
        // A check that says Ok does not reserve the counter.
        assert_eq!(w.check(Counter(51)), Ok(()));
        assert_eq!(w.check(Counter(51)), Ok(()));
    }

    #[test]
    fn a_forgotten_counter_is_accepted_once_more() {
        // In the dense top 64, below it (the ring takes over), and the newest itself.
        let mut w = window_after(200);
        for c in [199, 100, 200] {
            assert!(w.forget(Counter(c)));
            assert_eq!(accept(&mut w, c), Ok(()), "{c}");
            assert_eq!(accept(&mut w, c), Err(Replay::Duplicate), "{c}");
        }
        assert_eq!(w.newest(), Counter(200));
        // Too old to judge: cannot be forgotten, stays refused.
        let mut w = window_after(WINDOW + 10);
        assert!(!w.forget(Counter(5)));
        assert_eq!(accept(&mut w, 5), Err(Replay::TooOld));
        // Not seen yet: nothing to forget, and it is accepted.
        assert!(w.forget(Counter(WINDOW + 11)));
        assert_eq!(accept(&mut w, WINDOW + 11), Ok(()));
    }

    #[test]
    fn errors_display() {
        use alloc::string::ToString;
        assert_eq!(
            Replay::Duplicate.to_string(),
            "packet counter already accepted"
        );
        assert_eq!(
            Replay::TooOld.to_string(),
            "packet counter below the replay window"
        );
    }

    /// The obvious, heap-backed statement of the rule the window implements.
    struct Model {
        floor: u64,
        newest: u64,
        seen: BTreeSet<u64>,
    }

    impl Model {
        fn new(floor: u64) -> Self {
            Model {
                floor,
                newest: floor,
                seen: BTreeSet::new(),
            }
        }

        fn commit(&mut self, c: u64) -> Result<(), Replay> {
            if c <= self.floor || u128::from(c) + u128::from(WINDOW) <= u128::from(self.newest) {
                return Err(Replay::TooOld);
            }
            if !self.seen.insert(c) {
                return Err(Replay::Duplicate);
            }
            self.newest = self.newest.max(c);
            Ok(())
        }

        /// A counter the window can still judge becomes unseen; the window does not move.
        fn forget(&mut self, c: u64) -> bool {
            if c <= self.floor || u128::from(c) + u128::from(WINDOW) <= u128::from(self.newest) {
                return false;
            }
            self.seen.remove(&c);
            true
        }
    }

    /// Turns quickcheck offsets into counters within `spread` of `floor`.
    ///
    /// quickcheck draws integers from their whole range, so raw u64 counters would almost never
    /// repeat or land in the same window; clustering them exercises duplicates, reordering and
    /// sliding. A dense spread makes many duplicates, a wide one many slides.
    fn counters(floor: u64, offsets: &[i16], spread: i16) -> Vec<u64> {
        offsets
            .iter()
            .map(|&o| floor.saturating_add_signed(i64::from(o % spread)))
            .collect()
    }

    /// Dense, about one window, and many windows wide.
    const SPREADS: [i16; 3] = [64, 1500, i16::MAX];

    /// Floors at the bottom, in the middle and at the top of the counter space.
    fn floors(seed: u64) -> [u64; 3] {
        [seed % 4, seed, u64::MAX - seed % 3000]
    }

    fn run_model(floor: u64, cs: &[u64]) -> bool {
        let mut w = ReplayWindow::new(Counter(floor));
        let mut model = Model::new(floor);
        cs.iter().all(|&c| {
            let expected = model.commit(c);
            let got = accept(&mut w, c);
            got == expected && w.newest() == Counter(model.newest)
        })
    }

    /// Counters as a sender's mostly increasing sequence: each step goes 1 to 3 up, or back
    /// a little (a reordered or duplicated packet), or skips ahead (lost packets), so that the
    /// window's dense form meets gaps entering and leaving its top 64.
    fn mostly_in_order(floor: u64, steps: &[u8]) -> Vec<u64> {
        let mut c = floor;
        steps
            .iter()
            .map(|&s| {
                c = match s % 16 {
                    0 => c.saturating_sub(u64::from(s / 16)),
                    1 => c.saturating_add(u64::from(s) * 8),
                    2 => c.saturating_sub(u64::from(s) * 4),
                    3 => c.saturating_add(WINDOW + u64::from(s / 16)),
                    k => c.saturating_add(u64::from(k % 3 + 1)),
                };
                c
            })
            .collect()
    }

    /// Counters one by one (now and then one skipped), with late packets up to 63 below
    /// the newest in between: the dense form's paths, which `mostly_in_order` (gaps of one
    /// or two at most steps) leaves for the ring early. From far above the floor, the late
    /// ones reach into the run passed over before the first counter.
    fn one_by_one_with_late(first: u64, steps: &[u8]) -> Vec<u64> {
        let mut c = first;
        steps
            .iter()
            .map(|&s| {
                if s % 4 == 0 {
                    return c.saturating_sub(u64::from(s / 4));
                }
                c = c.saturating_add(if s % 32 == 1 { 2 } else { 1 });
                c
            })
            .collect()
    }

    #[test]
    fn in_order_and_near_reordering_stay_inline() {
        let mut w = window_fresh();
        for c in 1..=3 * WINDOW {
            // Pairs swapped: 2, 1, 4, 3, ...
            let c = if c % 2 == 0 { c - 1 } else { c + 1 };
            assert_eq!(accept(&mut w, c), Ok(()));
        }
        assert!(
            matches!(w.bits, Bits::Dense { .. }),
            "no gap left the top 64"
        );
        // A counter never seen falls below the top 64: the ring takes over, same verdicts.
        assert_eq!(accept(&mut w, 3 * WINDOW + 70), Ok(()));
        assert!(matches!(w.bits, Bits::Ring(_)));
        assert_eq!(accept(&mut w, 3 * WINDOW + 2), Ok(()));
        assert_eq!(accept(&mut w, 3 * WINDOW), Err(Replay::Duplicate));
    }

    #[test]
    fn a_first_counter_far_above_the_floor_stays_inline() {
        // A suite 3 responder's window starts at 0 and the initiator's counters at a random
        // value: the counters passed over below the first one must not cost the ring.
        let mut w = window_fresh();
        let start = 123_456;
        for c in start..start + 3 * WINDOW {
            assert_eq!(accept(&mut w, c), Ok(()));
        }
        assert!(matches!(w.bits, Bits::Dense { .. }), "in order from far up");
        assert_eq!(accept(&mut w, start), Err(Replay::TooOld));
        assert_eq!(
            accept(&mut w, start + 2 * WINDOW + 1),
            Err(Replay::Duplicate)
        );

        // Late counters from the skipped run: its top shortens it, others need the ring.
        let mut w = window_fresh();
        assert_eq!(accept(&mut w, start), Ok(()));
        assert_eq!(accept(&mut w, start + 1), Ok(()));
        assert_eq!(accept(&mut w, start - 1), Ok(()));
        assert_eq!(accept(&mut w, start - 2), Ok(()));
        assert!(matches!(w.bits, Bits::Dense { .. }), "the run's top");
        assert_eq!(accept(&mut w, start - 1), Err(Replay::Duplicate));
        for c in start + 2..start + 200 {
            assert_eq!(accept(&mut w, c), Ok(()));
        }
        assert!(
            matches!(w.bits, Bits::Dense { .. }),
            "the shortened run slid out of the top 64"
        );
        assert_eq!(accept(&mut w, start - 2), Err(Replay::Duplicate));
        assert_eq!(accept(&mut w, start - 500), Ok(()));
        assert!(matches!(w.bits, Bits::Ring(_)), "inside the run");
        assert_eq!(accept(&mut w, start - 500), Err(Replay::Duplicate));
        assert_eq!(accept(&mut w, start - 499), Ok(()));
        assert_eq!(accept(&mut w, start + 199 - WINDOW), Err(Replay::TooOld));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn window_is_small() {
        // Every idle session holds one (compare's memory rows).
        assert_eq!(core::mem::size_of::<ReplayWindow>(), 32);
    }

    quickcheck! {
        fn prop_matches_model_in_order(seed: u64, steps: Vec<u8>) -> bool {
            floors(seed)
                .iter()
                .all(|&f| run_model(f, &mostly_in_order(f, &steps)))
        }

        fn prop_matches_model_from_far_above_the_floor(
            seed: u64,
            start: u32,
            steps: Vec<u8>
        ) -> bool {
            // The first counter up to about four million above the floor, then a sender's
            // mostly increasing counters, some reaching back into the run passed over; then
            // all of them again, so that every verdict the window keeps is asked once more.
            floors(seed).iter().all(|&f| {
                let first = f.saturating_add(u64::from(start % (1 << 22)));
                let mut cs = alloc::vec![first];
                cs.extend(mostly_in_order(first, &steps));
                cs.extend_from_within(..);
                let mut late = alloc::vec![first];
                late.extend(one_by_one_with_late(first, &steps));
                late.extend_from_within(..);
                run_model(f, &cs) && run_model(f, &late)
            })
        }

        fn prop_in_order_from_anywhere_stays_inline(seed: u64, start: u32, n: u16) -> bool {
            // The point of the skipped run: a sender that starts anywhere above the floor and
            // never reorders costs no heap.
            floors(seed).iter().all(|&f| {
                let first = f.saturating_add(1 + u64::from(start));
                let mut w = ReplayWindow::new(Counter(f));
                let mut model = Model::new(f);
                (0..u64::from(n % 2100)).all(|i| {
                    let c = first.saturating_add(i);
                    accept(&mut w, c) == model.commit(c)
                }) && matches!(w.bits, Bits::Dense { .. })
            })
        }

        fn prop_matches_model(seed: u64, offsets: Vec<i16>) -> bool {
            floors(seed).iter().all(|&f| {
                SPREADS.iter().all(|&s| run_model(f, &counters(f, &offsets, s)))
            })
        }

        fn prop_matches_model_on_arbitrary_counters(floor: u64, cs: Vec<u64>) -> bool {
            run_model(floor % 8, &cs) && run_model(floor, &cs)
        }

        fn prop_accepted_at_most_once(seed: u64, offsets: Vec<i16>) -> bool {
            floors(seed).iter().all(|&f| {
                SPREADS.iter().all(|&s| {
                    let mut w = ReplayWindow::new(Counter(f));
                    let mut accepted = BTreeSet::new();
                    counters(f, &offsets, s)
                        .into_iter()
                        .all(|c| accept(&mut w, c).is_err() || accepted.insert(c))
                })
            })
        }

        fn prop_accepted_counters_are_inside_the_window(seed: u64, offsets: Vec<i16>) -> bool {
            floors(seed).iter().all(|&f| {
                SPREADS.iter().all(|&s| {
                    let mut w = ReplayWindow::new(Counter(f));
                    counters(f, &offsets, s).into_iter().all(|c| {
                        let newest = w.newest().0;
                        let ok = accept(&mut w, c).is_ok();
                        !ok || (c > f && u128::from(c) + u128::from(WINDOW) > u128::from(newest))
                    })
                })
            })
        }

        fn prop_forget_matches_model(seed: u64, ops: Vec<(bool, i16)>) -> bool {
            // Commits and forgets interleaved (`true` forgets), near the floor, in the middle
            // and at the top of the counter space, over dense and wide spreads.
            floors(seed).iter().all(|&f| {
                SPREADS.iter().all(|&s| {
                    let mut w = ReplayWindow::new(Counter(f));
                    let mut model = Model::new(f);
                    ops.iter().all(|&(forget, o)| {
                        let c = f.saturating_add_signed(i64::from(o % s));
                        if forget {
                            let got = w.forget(Counter(c));
                            got == model.forget(c) && (!got || w.check(Counter(c)).is_ok())
                        } else {
                            accept(&mut w, c) == model.commit(c)
                        }
                    }) && w.newest() == Counter(model.newest)
                })
            })
        }

        fn prop_forget_matches_model_in_order(seed: u64, steps: Vec<u8>, back: Vec<u16>) -> bool {
            // A sender's mostly increasing counters with forgets of recent ones in between,
            // so that forgets meet the dense form (in and below its top 64) as well as the ring.
            floors(seed).iter().all(|&f| {
                let mut w = ReplayWindow::new(Counter(f));
                let mut model = Model::new(f);
                let cs = mostly_in_order(f, &steps);
                cs.iter().zip(back.iter().cycle()).all(|(&c, &b)| {
                    let committed = accept(&mut w, c) == model.commit(c);
                    let target = model.newest.saturating_sub(u64::from(b % 1100));
                    let got = w.forget(Counter(target));
                    committed
                        && got == model.forget(target)
                        && (!got || w.check(Counter(target)).is_ok())
                        && w.newest() == Counter(model.newest)
                })
            })
        }

        fn prop_forget_matches_model_from_far_above_the_floor(
            seed: u64,
            start: u32,
            steps: Vec<u8>,
            back: Vec<u16>
        ) -> bool {
            // As above, with forgets meeting the skipped run, in and below the top 64.
            floors(seed).iter().all(|&f| {
                let first = f.saturating_add(u64::from(start % (1 << 22)));
                let mut w = ReplayWindow::new(Counter(f));
                let mut model = Model::new(f);
                let mut cs = alloc::vec![first];
                cs.extend(mostly_in_order(first, &steps));
                cs.iter().zip(back.iter().cycle()).all(|(&c, &b)| {
                    let committed = accept(&mut w, c) == model.commit(c);
                    let target = model.newest.saturating_sub(u64::from(b % 1100));
                    let got = w.forget(Counter(target));
                    committed
                        && got == model.forget(target)
                        && (!got || w.check(Counter(target)).is_ok())
                        && w.newest() == Counter(model.newest)
                })
            })
        }

        fn prop_check_does_not_mutate(seed: u64, offsets: Vec<i16>, probe: i16) -> bool {
            let f = seed % (1 << 40);
            let mut w = ReplayWindow::new(Counter(f));
            for c in counters(f, &offsets, 1500) {
                let _ = w.commit(Counter(c));
            }
            let before = w.clone();
            let _ = w.check(Counter(f.saturating_add_signed(i64::from(probe % 1500))));
            w == before
        }
    }
}
