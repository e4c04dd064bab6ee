//! Small helpers chosen for code size (issue 20: a one-suite client in 64 KB of `.text`).
//!
//! `core`'s `sort_unstable` is a pattern-defeating quicksort of about 4 KB per element type
//! and comparator on a Cortex-M4; the client path sorted two short lists of counters with it
//! (8.4 KB). [`sort`] is a heapsort: a few hundred bytes, `O(n log n)` in the worst case like
//! the quicksort, and for element types whose equal values are indistinguishable (counters,
//! integers) its result is the same slice, so the bytes on the wire do not change.
//!
//! [`VecMap`] is an ordered map as a sorted `Vec`, for the client's small tables: one
//! `BTreeMap` instantiation is 1 to 3 KB of node code per key and value type.

mod vec_map;

pub(crate) use vec_map::VecMap;

/// The words of the 16-word state each of a double round's eight quarter rounds mixes: four
/// columns, then four diagonals. ChaCha20 (RFC 8439 §2.3) and BLAKE2b's `G` (RFC 7693 §3.2)
/// share the pattern; the compact forms of both (`rng.rs`, `crypto/blake2b.rs`) read it here.
pub(crate) const COLUMNS_THEN_DIAGONALS: [[u8; 4]; 8] = [
    [0, 4, 8, 12],
    [1, 5, 9, 13],
    [2, 6, 10, 14],
    [3, 7, 11, 15],
    [0, 5, 10, 15],
    [1, 6, 11, 12],
    [2, 7, 8, 13],
    [3, 4, 9, 14],
];

/// Sorts `v` in ascending order (heapsort: unstable, no allocation, `O(n log n)`).
///
/// Use it where equal elements cannot be told apart; where they can, their order may differ
/// from `sort_unstable`'s.
pub(crate) fn sort<T: Ord>(v: &mut [T]) {
    let len = v.len();
    // Build a max-heap, then move its root to the end, one element at a time.
    for start in (0..len / 2).rev() {
        sift_down(v, start, len);
    }
    for end in (1..len).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Restores the heap property below `root` in `v[..end]`.
fn sift_down<T: Ord>(v: &mut [T], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && v[child] < v[child + 1] {
            child += 1;
        }
        if v[root] >= v[child] {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;
    use quickcheck::quickcheck;

    quickcheck! {
        /// The same slice as `sort_unstable` for integers (equal values are indistinguishable).
        fn sorts_like_sort_unstable(v: Vec<u64>, small: Vec<u8>) -> bool {
            let (mut a, mut b) = (v.clone(), v);
            super::sort(&mut a);
            b.sort_unstable();
            // Many repeats: a list of few distinct values.
            let (mut c, mut d) = (small.clone(), small);
            super::sort(&mut c);
            d.sort_unstable();
            a == b && c == d
        }
    }

    #[test]
    fn sorts_descending_and_ascending_runs() {
        let mut v: Vec<u64> = (0..300).rev().collect();
        super::sort(&mut v);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(v.len(), 300);
        let mut one = [7u64];
        super::sort(&mut one);
        assert_eq!(one, [7]);
        let mut none: [u64; 0] = [];
        super::sort(&mut none);
    }
}
