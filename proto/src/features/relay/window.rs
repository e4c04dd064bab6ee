//! Per-origin sequence windows: which (instance, seq) of each origin relay were taken, so a
//! copy arriving by a second path, or replayed, is dropped. A new instance (the origin
//! restarted) resets its window.

use alloc::collections::BTreeMap;

use crate::endpoint::RelayId;
use crate::time::Instant;

/// Sequence numbers this far below the highest seen are too old to judge and are refused.
pub const WINDOW: u64 = 64;

#[derive(Clone, Debug)]
struct Window {
    instance: u32,
    /// Highest seq taken.
    top: u64,
    /// Bit `i` set: `top - i` was taken.
    bits: u64,
    used: Instant,
}

/// What [`SeqWindows::accept`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First time: take it.
    New,
    /// Taken before, or too old to tell.
    Seen,
}

/// The windows of at most `cap` origins; the least recently used is forgotten for a new one.
#[derive(Clone, Debug)]
pub struct SeqWindows {
    cap: usize,
    windows: BTreeMap<RelayId, Window>,
}

impl SeqWindows {
    /// No origin yet.
    pub fn new(cap: usize) -> Self {
        SeqWindows {
            cap: cap.max(1),
            windows: BTreeMap::new(),
        }
    }

    /// Judges `(origin, instance, seq)` and records it if new.
    pub fn accept(&mut self, now: Instant, origin: RelayId, instance: u32, seq: u64) -> Verdict {
        if !self.windows.contains_key(&origin) && self.windows.len() >= self.cap {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.windows.remove(&k);
            }
        }
        let w = self.windows.entry(origin).or_insert(Window {
            instance,
            top: 0,
            bits: 0,
            used: now,
        });
        w.used = now;
        if w.instance != instance {
            *w = Window {
                instance,
                top: 0,
                bits: 0,
                used: now,
            };
        }
        if seq > w.top {
            let shift = seq - w.top;
            w.bits = if shift >= WINDOW { 0 } else { w.bits << shift };
            w.bits |= 1;
            w.top = seq;
            return Verdict::New;
        }
        let back = w.top - seq;
        if back >= WINDOW || w.bits & (1 << back) != 0 {
            return Verdict::Seen;
        }
        w.bits |= 1 << back;
        Verdict::New
    }

    /// Origins tracked now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no origin is tracked.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ClientId;
    use quickcheck::QuickCheck;

    fn id(b: u8) -> RelayId {
        RelayId(ClientId([b; 16]))
    }

    #[test]
    fn replays_and_resets() {
        let t = Instant::from_millis(1);
        let mut w = SeqWindows::new(2);
        assert_eq!(w.accept(t, id(1), 7, 1), Verdict::New);
        assert_eq!(w.accept(t, id(1), 7, 1), Verdict::Seen);
        assert_eq!(w.accept(t, id(1), 7, 3), Verdict::New);
        assert_eq!(w.accept(t, id(1), 7, 2), Verdict::New);
        assert_eq!(w.accept(t, id(1), 7, 2), Verdict::Seen);
        assert_eq!(w.accept(t, id(1), 7, 200), Verdict::New);
        assert_eq!(w.accept(t, id(1), 7, 100), Verdict::Seen);
        // A restarted origin starts again at 1.
        assert_eq!(w.accept(t, id(1), 8, 1), Verdict::New);
        // Bounded: a third origin evicts the least recently used.
        let t2 = Instant::from_millis(2);
        assert_eq!(w.accept(t2, id(2), 1, 1), Verdict::New);
        assert_eq!(w.accept(t2, id(3), 1, 1), Verdict::New);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn each_seq_is_new_once() {
        fn prop(seqs: alloc::vec::Vec<u8>) -> bool {
            let t = Instant::from_millis(1);
            let mut w = SeqWindows::new(4);
            let mut seen = alloc::collections::BTreeSet::new();
            seqs.iter().all(|s| {
                let s = u64::from(*s) + 1;
                let v = w.accept(t, id(1), 1, s);
                // Never new twice; new whenever unseen within the window.
                let first = seen.insert(s);
                (v == Verdict::New) <= first
            })
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(alloc::vec::Vec<u8>) -> bool);
    }
}
