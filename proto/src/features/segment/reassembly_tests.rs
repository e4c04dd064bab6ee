use super::*;
use alloc::vec::Vec;
use quickcheck::{QuickCheck, TestResult};

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], port))
}

fn budget() -> Budget {
    Budget {
        max_message: 1 << 20,
        per_peer: 64 * 1024,
        total: 96 * 1024,
        timeout: Duration::from_secs(30),
    }
}

fn seg(transfer: u64, total: usize, offset: usize, data: &[u8]) -> Segment<'_> {
    Segment {
        transfer: TransferId(transfer),
        total: total as u32,
        offset: offset as u32,
        data,
    }
}

/// Feeds `data` cut into `len`-byte segments in `order` (indices, repeats allowed).
fn feed(r: &mut Reassembly, data: &[u8], len: usize, order: &[usize]) -> Vec<Accepted> {
    let chunks: Vec<&[u8]> = data.chunks(len).collect();
    order
        .iter()
        .map(|&i| {
            let off = i * len;
            r.on_segment(
                Instant::ZERO,
                peer(1),
                Counter(100 + i as u64),
                &seg(7, data.len(), off, chunks[i]),
            )
        })
        .collect()
}

#[test]
fn segments_in_any_order_complete_once_with_the_first_counter() {
    let mut r = Reassembly::new(budget());
    let data: Vec<u8> = (0..250u8).collect();
    let got = feed(&mut r, &data, 100, &[2, 0, 0, 1, 1]);
    assert_eq!(got[0], Accepted::Stored);
    assert_eq!(
        got[2],
        Accepted::Stored,
        "a copy of held bytes is acknowledged"
    );
    assert_eq!(
        got[3],
        Accepted::Complete {
            plaintext: data.clone(),
            first: Counter(100)
        }
    );
    assert_eq!(
        got[4],
        Accepted::Again,
        "after delivery: acknowledged, not delivered"
    );
    assert_eq!(r.usage().reserved, 0);
    assert_eq!(r.usage().peak, 250 + PARTIAL_OVERHEAD);
}

#[test]
fn inconsistent_segments_are_refused_and_free_the_partial() {
    let mut r = Reassembly::new(budget());
    let now = Instant::ZERO;
    let a = [1u8; 10];
    assert_eq!(
        r.on_segment(now, peer(1), Counter(1), &seg(1, 30, 0, &a)),
        Accepted::Stored
    );
    // Another total for the same transfer.
    let refused = Accepted::Refused(TransferRefusal::Inconsistent);
    assert_eq!(
        r.on_segment(now, peer(1), Counter(2), &seg(1, 31, 10, &a)),
        refused
    );
    assert_eq!(r.usage().reserved, 0, "freed");
    assert_eq!(
        r.on_segment(now, peer(1), Counter(3), &seg(1, 30, 10, &a)),
        refused,
        "stays refused"
    );
    // Past the total, empty, or a zero total.
    assert_eq!(
        r.on_segment(now, peer(1), Counter(4), &seg(2, 15, 10, &a)),
        refused
    );
    assert_eq!(
        r.on_segment(now, peer(1), Counter(5), &seg(3, 15, 0, &[])),
        refused
    );
    assert_eq!(
        r.on_segment(now, peer(1), Counter(6), &seg(4, 0, 0, &a)),
        refused
    );
    assert_eq!(
        r.on_segment(now, peer(1), Counter(7), &seg(5, 15, u32::MAX as usize, &a)),
        refused
    );
    // Overlapping bytes that differ.
    assert_eq!(
        r.on_segment(now, peer(1), Counter(8), &seg(6, 30, 0, &a)),
        Accepted::Stored
    );
    let b = [2u8; 10];
    assert_eq!(
        r.on_segment(now, peer(1), Counter(9), &seg(6, 30, 5, &b)),
        refused
    );
    // Overlapping bytes that agree are fine.
    assert_eq!(
        r.on_segment(now, peer(1), Counter(10), &seg(8, 30, 0, &a)),
        Accepted::Stored
    );
    assert_eq!(
        r.on_segment(now, peer(1), Counter(11), &seg(8, 30, 5, &a)),
        Accepted::Stored
    );
    assert_eq!(r.usage().partials, 1);
}

#[test]
fn a_huge_announcement_holds_at_most_the_budget() {
    let mut r = Reassembly::new(Budget {
        max_message: 64 << 20,
        ..budget()
    });
    let now = Instant::ZERO;
    let d = [0u8; 100];
    assert_eq!(
        r.on_segment(now, peer(1), Counter(1), &seg(1, 64 << 20, 0, &d)),
        Accepted::Refused(TransferRefusal::NoRoom)
    );
    let mut r = Reassembly::new(budget());
    assert_eq!(
        r.on_segment(now, peer(1), Counter(1), &seg(1, 64 << 20, 0, &d)),
        Accepted::Refused(TransferRefusal::TooLarge)
    );
    // Many announcements of one peer: what fits its budget is held, the rest refused.
    let mut held = 0;
    for t in 0..100 {
        if r.on_segment(now, peer(1), Counter(10 + t), &seg(10 + t, 20_000, 0, &d))
            == Accepted::Stored
        {
            held += 1;
        }
        assert!(r.usage().reserved <= budget().per_peer);
    }
    assert_eq!(held, 3);
    // Other peers share the total budget.
    for p in 2..10 {
        for t in 0..10 {
            let _ = r.on_segment(now, peer(p), Counter(t), &seg(t, 20_000, 0, &d));
            assert!(r.usage().reserved <= budget().total);
        }
    }
    assert!(r.usage().peak <= budget().total);
}

#[test]
fn partials_expire_without_progress() {
    let mut r = Reassembly::new(budget());
    let t0 = Instant::ZERO;
    let d = [0u8; 10];
    let _ = r.on_segment(t0, peer(1), Counter(1), &seg(1, 30, 0, &d));
    let later = t0 + Duration::from_secs(20);
    let _ = r.on_segment(later, peer(1), Counter(2), &seg(1, 30, 10, &d));
    assert_eq!(r.next_expiry(), Some(later + Duration::from_secs(30)));
    assert!(
        r.expire(later + Duration::from_secs(29)).is_empty(),
        "progress counts"
    );
    assert_eq!(
        r.expire(later + Duration::from_secs(30)),
        [(peer(1), TransferId(1))]
    );
    assert_eq!(r.usage().reserved, 0);
    assert_eq!(
        r.on_duplicate(peer(1), &seg(1, 30, 0, &d)),
        Accepted::Refused(TransferRefusal::Expired)
    );
}

#[test]
fn owed_acks_coalesce_into_ranges() {
    let mut r = Reassembly::new(budget());
    assert!(r.owe_ack(peer(1), Counter(5)));
    for c in [7, 6, 9, 5] {
        assert!(!r.owe_ack(peer(1), Counter(c)));
    }
    assert_eq!(
        r.take_acks(peer(1)),
        (alloc::vec![(Counter(5), 3), (Counter(9), 1)], false)
    );
    assert_eq!(r.take_acks(peer(1)), (Vec::new(), false));
    // More ranges than one packet holds: the rest stay owed.
    for c in 0..600u64 {
        r.owe_ack(peer(1), Counter(c * 2));
    }
    let (ranges, more) = r.take_acks(peer(1));
    assert_eq!(ranges.len(), MAX_ACK_RANGES);
    assert!(more);
    let (rest, more) = r.take_acks(peer(1));
    assert_eq!(rest.len(), MAX_ACK_RANGES);
    assert!(more);
}

/// Any payload, any segment size, any pattern of loss, duplication and reordering, with
/// retransmissions cut differently from the first sends: the reassembly yields exactly the
/// payload once if every byte arrived, and nothing otherwise; never other bytes, never a panic.
#[test]
fn prop_any_segmentation_reassembles_the_same_bytes_or_nothing() {
    fn prop(data: Vec<u8>, len1: u8, len2: u8, order: Vec<(u16, bool)>) -> TestResult {
        if data.is_empty() {
            return TestResult::discard();
        }
        let cuts = [usize::from(len1.max(1)), usize::from(len2.max(1))];
        let mut r = Reassembly::new(Budget {
            max_message: 1 << 20,
            per_peer: 1 << 20,
            total: 1 << 20,
            timeout: Duration::from_secs(30),
        });
        let mut covered = alloc::vec![false; data.len()];
        let mut completions = 0;
        for (k, (pick, second)) in order.iter().enumerate() {
            let len = cuts[usize::from(*second)];
            let n = data.len().div_ceil(len);
            let i = usize::from(*pick) % n;
            let (off, end) = (i * len, ((i + 1) * len).min(data.len()));
            let was_complete = completions > 0;
            match r.on_segment(
                Instant::ZERO,
                peer(1),
                Counter(k as u64 + 1),
                &seg(1, data.len(), off, &data[off..end]),
            ) {
                Accepted::Complete { plaintext, .. } => {
                    completions += 1;
                    if plaintext != data || was_complete {
                        return TestResult::failed();
                    }
                }
                Accepted::Stored if was_complete => return TestResult::failed(),
                Accepted::Again if !was_complete => return TestResult::failed(),
                Accepted::Refused(_) => return TestResult::failed(),
                _ => {}
            }
            covered[off..end].iter_mut().for_each(|c| *c = true);
            let whole = covered.iter().all(|c| *c);
            if whole != (completions == 1) {
                return TestResult::failed();
            }
        }
        TestResult::from_bool(r.usage().reserved == 0 || completions == 0)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>, u8, u8, Vec<(u16, bool)>) -> TestResult);
}

/// Whatever segments a peer sends (any totals, offsets and lengths), the reservation never
/// exceeds the budgets and nothing panics.
#[test]
fn prop_hostile_segments_stay_within_the_budget() {
    fn prop(segments: Vec<(u8, u8, u32, u32, u16)>) -> bool {
        let b = budget();
        let mut r = Reassembly::new(b);
        let data = [0x5a; 512];
        for (i, (p, t, total, offset, len)) in segments.into_iter().enumerate() {
            let len = usize::from(len) % data.len();
            let s = Segment {
                transfer: TransferId(u64::from(t % 8)),
                total: total % (256 * 1024),
                offset: offset % (256 * 1024),
                data: &data[..len],
            };
            let _ = r.on_segment(Instant::ZERO, peer(u16::from(p % 4)), Counter(i as u64), &s);
            let u = r.usage();
            if u.reserved > b.total || u.partials > b.total / PARTIAL_OVERHEAD {
                return false;
            }
        }
        true
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<(u8, u8, u32, u32, u16)>) -> bool);
}
