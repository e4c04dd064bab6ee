//! A map with a fixed capacity that makes room by evicting its oldest entry.
//!
//! Everything an unauthenticated peer can make an endpoint store (half-open handshakes of every
//! suite, exchanges just completed) lives in such a table: a flood can only push out the oldest
//! entries, never grow memory. The age of an entry is whatever the table was built to read
//! from it (for handshakes, when they started), so one type serves every table.
//!
//! Parses no wire bytes, sets no timers, emits no events: expiry by age is the owner's
//! housekeeping, through [`BoundedTable::retain`].

use alloc::collections::BTreeMap;
use core::ops::Deref;

use crate::time::Instant;

/// A `BTreeMap` of at most `capacity` entries; inserting a new key into a full table evicts
/// the entry with the smallest age first.
///
/// Reads go through `Deref` to the map; writes only through the methods here, so nothing can
/// insert past the bound.
#[derive(Debug)]
pub(crate) struct BoundedTable<K, V> {
    map: BTreeMap<K, V>,
    capacity: usize,
    /// Reads the instant an entry is ranked by: the smallest goes first.
    age: fn(&V) -> Instant,
}

impl<K: Ord + Copy, V> BoundedTable<K, V> {
    /// An empty table of at most `capacity` entries (at least one), ranked by `age`.
    pub(crate) fn new(capacity: usize, age: fn(&V) -> Instant) -> Self {
        BoundedTable {
            map: BTreeMap::new(),
            capacity: capacity.max(1),
            age,
        }
    }

    /// Inserts `value` at `key`, replacing any value there. If `key` is new and the table is
    /// full, the oldest entry makes room first; it is returned.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let evicted = if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            oldest_by(&self.map, self.age).and_then(|k| self.map.remove_entry(&k))
        } else {
            None
        };
        self.map.insert(key, value);
        evicted
    }

    /// Removes the entry at `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// Keeps only the entries for which `keep` is true (expiry, or entries made obsolete).
    pub(crate) fn retain(&mut self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(keep);
    }
}

impl<K, V> Deref for BoundedTable<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

/// The key of the entry of `map` (a `BTreeMap` or a `VecMap`, in ascending key order) with the
/// smallest `age`; of equal ages, the smallest key.
///
/// For tables whose owner decides what an eviction entails (a session that ends must tell
/// the application), so they cannot be a [`BoundedTable`].
pub(crate) fn oldest_by<'a, K: Copy + 'a, V: 'a, A: Ord>(
    map: impl IntoIterator<Item = (&'a K, &'a V)>,
    age: impl Fn(&V) -> A,
) -> Option<K> {
    map.into_iter().min_by_key(|(_, v)| age(v)).map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use alloc::vec::Vec;
    use quickcheck::quickcheck;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn table(capacity: usize) -> BoundedTable<u8, Instant> {
        BoundedTable::new(capacity, |v| *v)
    }

    #[test]
    fn a_full_table_evicts_the_oldest_for_a_new_key() {
        let mut t = table(2);
        assert_eq!(t.insert(1, at(20)), None);
        assert_eq!(t.insert(2, at(10)), None);
        assert_eq!(
            t.insert(3, at(30)),
            Some((2, at(10))),
            "the oldest, not the first"
        );
        assert_eq!(t.keys().copied().collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn replacing_a_key_evicts_nothing() {
        let mut t = table(2);
        t.insert(1, at(20));
        t.insert(2, at(10));
        assert_eq!(t.insert(2, at(40)), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&2), Some(&at(40)));
    }

    #[test]
    fn ties_go_to_the_smallest_key() {
        let mut t = table(2);
        t.insert(7, at(5));
        t.insert(3, at(5));
        assert_eq!(t.insert(9, at(6)), Some((3, at(5))));
    }

    quickcheck! {
        /// Whatever is inserted, the table never holds more than its capacity, always holds
        /// what was inserted last, and only ever evicts an entry no younger than any other.
        fn bounded_and_evicts_only_the_oldest(capacity: u8, ops: Vec<(u8, u16)>) -> bool {
            let capacity = usize::from(capacity % 8) + 1;
            let mut t = table(capacity);
            ops.into_iter().all(|(k, ms)| {
                let before: Vec<Instant> = t.values().copied().collect();
                let evicted = t.insert(k, at(u64::from(ms)));
                let evicted_oldest = evicted.is_none_or(|(_, v)| before.iter().all(|b| v <= *b));
                t.len() <= capacity && t.get(&k) == Some(&at(u64::from(ms))) && evicted_oldest
            })
        }
    }
}
