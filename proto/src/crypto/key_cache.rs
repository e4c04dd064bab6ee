//! A bounded cache of key material derived per peer (suite 2's box keys, suite 3's
//! static–static results), keeping the most recently used.
//!
//! Both were kept for every configured client that ever connected, which cost a server about
//! 90 bytes per idle session (`compare`'s memory rows) for a value that only the next
//! handshake of the same peer reads. Bounded, they cost a constant, and what they are for
//! stays: a peer that handshakes again soon (a reconnect, a rekey, a flood naming a known
//! client) finds its value; one that comes back after [`RECENT_PEERS`] other peers computed
//! theirs pays the one Diffie–Hellman again. Nothing on the wire depends on it.
//!
//! Parses no wire bytes, sets no timers, emits no events.

use alloc::collections::BTreeMap;

/// How many peers' values a cache keeps: enough for every peer that reconnects within a burst
/// of handshakes on most servers, a few tens of kilobytes at most.
pub const RECENT_PEERS: usize = 256;

/// At most `capacity` values by key; inserting into a full cache drops the least recently
/// used one (values are wiped by their own `Drop`, as `Zeroizing` does).
#[derive(Clone, Debug)]
pub(crate) struct RecentKeys<K, V> {
    /// The value and the tick of its last use.
    entries: BTreeMap<K, (V, u64)>,
    /// Counts uses, so that the least recently used entry has the smallest tick.
    tick: u64,
    capacity: usize,
}

impl<K: Ord + Clone, V> RecentKeys<K, V> {
    /// An empty cache of at most `capacity` values (at least one).
    pub(crate) const fn new(capacity: usize) -> Self {
        RecentKeys {
            entries: BTreeMap::new(),
            tick: 0,
            capacity: if capacity == 0 { 1 } else { capacity },
        }
    }

    /// The value of `key`, marked as used now.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = tick;
            &*v
        })
    }

    /// The value of `key`, without marking it used.
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Keeps `value` for `key`, dropping the least recently used value if the cache is full.
    /// The scan for it is linear, but bounded by the capacity and paid only by a handshake
    /// that did the Diffie–Hellman this cache saves.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key, (value, self.tick));
    }

    /// Forgets `key`'s value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(v, _)| v)
    }

    /// Whether `key` has a value.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// How many values are kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_value_goes_first() {
        let mut c = RecentKeys::new(2);
        c.insert(1, "a");
        c.insert(2, "b");
        assert_eq!(c.get(&1), Some(&"a"));
        c.insert(3, "c");
        assert!(c.contains(&1) && c.contains(&3));
        assert!(!c.contains(&2), "2 was used least recently");
        assert_eq!(c.len(), 2);
        // Replacing a kept key drops nothing else.
        c.insert(3, "d");
        assert_eq!((c.peek(&1), c.peek(&3)), (Some(&"a"), Some(&"d")));
        assert_eq!(c.remove(&1), Some("a"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_cache_stays_at_its_capacity() {
        let mut c = RecentKeys::new(RECENT_PEERS);
        for i in 0..3 * RECENT_PEERS {
            c.insert(i, i);
            assert!(c.len() <= RECENT_PEERS);
        }
        assert_eq!(c.len(), RECENT_PEERS);
        assert!(c.contains(&(3 * RECENT_PEERS - 1)) && !c.contains(&0));
    }
}
