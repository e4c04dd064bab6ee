//! [`VecMap`]: an ordered map kept as a sorted `Vec` of pairs.
//!
//! Chosen for code size (issue 20). Every `BTreeMap<K, V>` instantiation brings its own node
//! code (search, insert with splits, remove with merges and steals): 1 to 3 KB of `.text` per
//! key and value type on a Cortex-M4. A sorted `Vec` needs a binary search and `Vec`'s own
//! insert and remove. The tables it replaces hold a handful of entries (the servers a client
//! talks to, the servers known to take a target), where shifting a few pairs costs less than
//! walking B-tree nodes.
//!
//! Iteration is in ascending key order, like `BTreeMap`'s, so that swapping one for the other
//! changes no observable order (events, packets, digests). Bounds are the owner's, as with
//! `BTreeMap`.

use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;

/// An ordered map as a `Vec` of `(key, value)` sorted by key, keys unique.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct VecMap<K, V> {
    /// Sorted by key, strictly ascending.
    entries: Vec<(K, V)>,
}

impl<K, V> VecMap<K, V> {
    /// An empty map; allocates nothing until the first insert.
    pub(crate) const fn new() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }

    /// How many entries the map holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries in ascending key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries in ascending key order, values mutable.
    pub(crate) fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys in ascending order.
    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in ascending key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in ascending key order, mutable.
    pub(crate) fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Keeps only the entries for which `keep` is true, visiting them in ascending key order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// Where `key` is (`Ok`), or where it would go (`Err`).
    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value at `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value at `key`, mutable.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Whether the map holds `key`.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Puts `value` at `key`; returns the value it replaces. A replaced entry keeps its key
    /// (as `BTreeMap::insert` does).
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value at `key`, first made by `make` if the map has none.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Removes the entry at `key` and returns its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Printed as `BTreeMap` prints: `{k: v, ...}`.
impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter =
        core::iter::Map<core::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use quickcheck::{quickcheck, Arbitrary, Gen};

    /// One operation on a map, keys from a small range so that operations meet.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u16),
        Remove(u8),
        Get(u8),
        GetMut(u8, u16),
        GetOrInsert(u8, u16),
        /// Keeps the entries whose value is not divisible by the number (0: keeps all).
        Retain(u16),
        Clear,
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Self {
            let key = u8::arbitrary(g) % 16;
            let value = u16::arbitrary(g);
            match u8::arbitrary(g) % 20 {
                0..=5 => Op::Insert(key, value),
                6..=9 => Op::Remove(key),
                10..=12 => Op::Get(key),
                13..=14 => Op::GetMut(key, value),
                15..=16 => Op::GetOrInsert(key, value),
                17..=18 => Op::Retain(value % 5),
                _ => Op::Clear,
            }
        }
    }

    /// Applies `op` to both maps; whether they answered alike.
    fn apply(map: &mut VecMap<u8, u16>, model: &mut BTreeMap<u8, u16>, op: &Op) -> bool {
        match *op {
            Op::Insert(k, v) => map.insert(k, v) == model.insert(k, v),
            Op::Remove(k) => map.remove(&k) == model.remove(&k),
            Op::Get(k) => {
                map.get(&k) == model.get(&k) && map.contains_key(&k) == model.contains_key(&k)
            }
            Op::GetMut(k, v) => {
                let (a, b) = (map.get_mut(&k), model.get_mut(&k));
                let same = a.as_deref() == b.as_deref();
                if let (Some(a), Some(b)) = (a, b) {
                    *a = v;
                    *b = v;
                }
                same
            }
            Op::GetOrInsert(k, v) => {
                let a = *map.get_or_insert_with(k, || v);
                a == *model.entry(k).or_insert(v)
            }
            Op::Retain(d) => {
                let keep = |_: &u8, v: &mut u16| d == 0 || *v % d != 0;
                let mut seen_a = Vec::new();
                let mut seen_b = Vec::new();
                map.retain(|k, v| {
                    seen_a.push(*k);
                    keep(k, v)
                });
                model.retain(|k, v| {
                    seen_b.push(*k);
                    keep(k, v)
                });
                seen_a == seen_b
            }
            Op::Clear => {
                map.clear();
                model.clear();
                true
            }
        }
    }

    /// Whether the maps hold the same entries, in the same order, by every way of reading.
    fn same(map: &VecMap<u8, u16>, model: &BTreeMap<u8, u16>) -> bool {
        map.len() == model.len()
            && map.is_empty() == model.is_empty()
            && map.iter().eq(model.iter())
            && map.iter().rev().eq(model.iter().rev())
            && map.keys().eq(model.keys())
            && map.values().eq(model.values())
            && map.into_iter().eq(model)
            && alloc::format!("{map:?}") == alloc::format!("{model:?}")
    }

    quickcheck! {
        /// Any sequence of operations answers as `BTreeMap` answers and leaves the same
        /// entries in the same order.
        fn behaves_like_btreemap(ops: Vec<Op>) -> bool {
            let (mut map, mut model) = (VecMap::new(), BTreeMap::new());
            ops.iter().all(|op| apply(&mut map, &mut model, op) && same(&map, &model))
        }

        /// Mutating through `iter_mut` and `values_mut` changes the same entries.
        fn mutable_iteration_like_btreemap(ops: Vec<Op>, add: u16) -> bool {
            let (mut map, mut model) = (VecMap::new(), BTreeMap::new());
            for op in &ops {
                apply(&mut map, &mut model, op);
            }
            for (_, v) in map.iter_mut() {
                *v = v.wrapping_add(add);
            }
            for v in model.values_mut() {
                *v = v.wrapping_add(add);
            }
            for v in map.values_mut() {
                *v ^= 1;
            }
            for (_, v) in model.iter_mut() {
                *v ^= 1;
            }
            same(&map, &model)
        }
    }
}
