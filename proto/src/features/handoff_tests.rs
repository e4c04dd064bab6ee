//! The hand-off table alone: bounds, batch counts, refusal of a whole counter, expiry order,
//! and its invariants under any sequence of operations (quickcheck).

use super::*;
use crate::time::Duration;
use alloc::vec::Vec;
use quickcheck::quickcheck;

const BOUNDS: Bounds = Bounds {
    per_session: 3,
    total: 5,
};

fn held(generation: u64, counter: u64, at_ms: u64) -> Held {
    Held {
        addr: SocketAddr::from(([127, 0, 0, 1], 9000 + generation as u16)),
        generation,
        counter: Counter(counter),
        deadline: Instant::from_millis(at_ms) + Duration::from_secs(30),
    }
}

#[test]
fn targets_are_marked_exactly_or_all() {
    let mut h = Handoffs::default();
    assert!(h.is_off() && !h.marks("a"));
    h.mark(HandoffTarget::Exact("a".into()));
    assert!(h.marks("a") && !h.marks("b"));
    h.mark(HandoffTarget::All);
    assert!(h.marks("b"));
    h.unmark(&HandoffTarget::All);
    assert!(h.marks("a") && !h.marks("b"));
    h.unmark(&HandoffTarget::Exact("a".into()));
    assert!(h.is_off());
}

#[test]
fn the_bounds_hold_per_session_and_in_total() {
    let mut h = Handoffs::default();
    for c in 1..=3 {
        assert!(h.hold(held(1, c, 0), BOUNDS).is_ok());
    }
    assert_eq!(h.hold(held(1, 4, 0), BOUNDS), Err(Full));
    assert!(h.hold(held(2, 1, 0), BOUNDS).is_ok());
    assert!(h.hold(held(2, 2, 0), BOUNDS).is_ok());
    assert_eq!(h.hold(held(3, 1, 0), BOUNDS), Err(Full));
    assert_eq!(h.len(), 5);
}

#[test]
fn a_batch_is_acknowledged_after_its_last_held_frame() {
    let mut h = Handoffs::default();
    let a = h.hold(held(1, 7, 0), BOUNDS).unwrap();
    let b = h.hold(held(1, 7, 0), BOUNDS).unwrap();
    assert!(h.holds(1, Counter(7)));
    assert!(!h.complete(a).unwrap().ack_now);
    assert!(h.holds(1, Counter(7)));
    assert!(h.complete(b).unwrap().ack_now);
    assert!(!h.holds(1, Counter(7)));
    assert_eq!(h.complete(b), None, "ids are not reused");
}

#[test]
fn refusing_one_frame_releases_its_batch_mates() {
    let mut h = Handoffs::default();
    let a = h.hold(held(1, 7, 0), BOUNDS).unwrap();
    let b = h.hold(held(1, 7, 0), BOUNDS).unwrap();
    let other = h.hold(held(1, 8, 0), BOUNDS).unwrap();
    assert_eq!(h.refuse(a).map(|x| x.counter), Some(Counter(7)));
    assert_eq!(h.get(b), None);
    assert!(!h.holds(1, Counter(7)));
    assert!(h.get(other).is_some());
    assert_eq!(h.len(), 1);
}

#[test]
fn the_oldest_expires_first_and_only_when_due() {
    let mut h = Handoffs::default();
    h.hold(held(1, 1, 0), BOUNDS).unwrap();
    h.hold(held(1, 2, 10), BOUNDS).unwrap();
    let due = h.next_due().unwrap();
    assert_eq!(h.expire(Instant::from_millis(30_000 - 1)), None);
    assert_eq!(h.expire(due).map(|x| x.counter), Some(Counter(1)));
    assert_eq!(h.expire(due), None);
    assert_eq!(h.next_due(), Some(due + Duration::from_millis(10)));
}

#[test]
fn an_ended_session_frees_the_bounds_and_its_ids_answer_until_their_deadline() {
    let mut h = Handoffs::default();
    let a = h.hold(held(1, 1, 0), BOUNDS).unwrap();
    let b = h.hold(held(1, 2, 0), BOUNDS).unwrap();
    let c = h.hold(held(2, 1, 10), BOUNDS).unwrap();
    assert_eq!(h.end_session(3, BOUNDS), 0, "a session that held nothing");
    assert_eq!(h.end_session(1, BOUNDS), 2);
    assert_eq!((h.len(), h.get(a), h.get(b)), (1, None, None));
    assert!(!h.holds(1, Counter(1)));
    assert!(
        h.has_room(1, 3, BOUNDS),
        "its share of the bounds is free again"
    );
    // The timer stays on the oldest deadline: the gone ids' until they are pruned, then the
    // entry still held.
    let first = held(1, 1, 0).deadline;
    assert_eq!(h.next_due(), Some(first));
    assert!(h.take_gone(a));
    assert!(!h.take_gone(a), "answered once, as a completion would be");
    assert!(!h.take_gone(c), "still held, not gone");
    h.prune_gone(Instant::from_millis(30_000 - 1));
    assert_eq!(h.next_due(), Some(first));
    h.prune_gone(first);
    assert!(
        !h.take_gone(b),
        "past its deadline: unknown, as if it had expired"
    );
    assert_eq!(h.next_due(), h.get(c).map(|x| x.deadline));
    assert_eq!(h.end_session(2, BOUNDS), 1);
    assert_eq!((h.len(), h.next_due().is_some()), (0, true));
    h.prune_gone(Instant::from_millis(10) + Duration::from_secs(30));
    assert_eq!(h.next_due(), None, "nothing left to wake up for");
}

#[test]
fn the_ids_of_ended_sessions_are_bounded() {
    let mut h = Handoffs::default();
    let mut ids = Vec::new();
    for round in 0..4u64 {
        for c in 0..3 {
            ids.push(h.hold(held(round, c, round), BOUNDS).unwrap());
        }
        h.end_session(round, BOUNDS);
    }
    assert_eq!(h.gone.len(), BOUNDS.total);
    assert!(!h.take_gone(ids[0]), "the oldest is forgotten first");
    assert!(h.take_gone(ids[11]));
}

#[test]
fn a_keepalive_is_never_held_even_with_every_target_marked() {
    let mut h = Handoffs::default();
    h.mark(HandoffTarget::All);
    let m = |target, name, payload| Message {
        target,
        name,
        payload,
    };
    assert!(!h.holds_message(&m("", "", b"")), "a keepalive");
    assert!(h.holds_message(&m("", "", b"x")));
    assert!(h.holds_message(&m("", "n", b"")));
    assert!(h.holds_message(&m("t", "", b"")));
    h.unmark(&HandoffTarget::All);
    h.mark(HandoffTarget::Exact("t".into()));
    assert!(h.holds_message(&m("t", "n", b"x")));
    assert!(!h.holds_message(&m("u", "n", b"x")));
}

#[test]
fn the_counters_of_a_session_are_listed_once_each() {
    let mut h = Handoffs::default();
    h.hold(held(1, 7, 0), BOUNDS).unwrap();
    h.hold(held(1, 7, 0), BOUNDS).unwrap();
    h.hold(held(1, 9, 0), BOUNDS).unwrap();
    h.hold(held(2, 8, 0), BOUNDS).unwrap();
    assert_eq!(
        h.counters_of(1).collect::<Vec<_>>(),
        [Counter(7), Counter(9)]
    );
    assert_eq!(h.counters_of(2).collect::<Vec<_>>(), [Counter(8)]);
    assert_eq!(h.counters_of(3).count(), 0);
}

/// One operation on the table, from quickcheck's numbers.
fn apply(h: &mut Handoffs, ids: &mut Vec<HandoffId>, op: (u8, u8, u8), now: &mut u64) {
    let (kind, a, b) = op;
    *now += u64::from(b);
    match kind % 4 {
        0 | 1 => {
            if let Ok(id) = h.hold(held(u64::from(a % 3), u64::from(b % 4), *now), BOUNDS) {
                ids.push(id);
            }
        }
        2 => {
            if let Some(&id) = ids.get(usize::from(a) % ids.len().max(1)) {
                h.complete(id);
            }
        }
        3 if b % 2 == 0 => {
            if let Some(&id) = ids.get(usize::from(a) % ids.len().max(1)) {
                h.refuse(id);
            }
            h.expire(Instant::from_millis(*now));
            h.prune_gone(Instant::from_millis(*now));
        }
        _ => {
            h.end_session(u64::from(a % 3), BOUNDS);
        }
    }
}

/// The counts match the entries, no count is zero, and the bounds hold.
fn consistent(h: &Handoffs) -> bool {
    let mut counters: BTreeMap<(u64, Counter), u16> = BTreeMap::new();
    let mut sessions: BTreeMap<u64, usize> = BTreeMap::new();
    for e in h.held.values() {
        *counters.entry((e.generation, e.counter)).or_default() += 1;
        *sessions.entry(e.generation).or_default() += 1;
    }
    counters == h.counters
        && sessions == h.sessions
        && h.held.len() <= BOUNDS.total
        && sessions.values().all(|n| *n <= BOUNDS.per_session)
        && h.held
            .values()
            .zip(h.held.values().skip(1))
            .all(|(x, y)| x.deadline <= y.deadline)
        && h.gone.len() <= BOUNDS.total
        && h.gone.keys().all(|id| !h.held.contains_key(id))
        && h.gone
            .values()
            .zip(h.gone.values().skip(1))
            .all(|(x, y)| x <= y)
        && h.next_due()
            == h.held
                .values()
                .map(|e| e.deadline)
                .chain(h.gone.values().copied())
                .min()
        && (0..3).all(|g| {
            // A session's listed counters are exactly those it holds.
            let listed: Vec<Counter> = h.counters_of(g).collect();
            let held: Vec<Counter> = counters.keys().filter(|k| k.0 == g).map(|k| k.1).collect();
            listed == held && listed.iter().all(|&c| h.holds(g, c))
        })
}

quickcheck! {
    fn prop_table_stays_consistent(ops: Vec<(u8, u8, u8)>) -> bool {
        let mut h = Handoffs::default();
        let mut ids = Vec::new();
        let mut now = 0;
        ops.into_iter().all(|op| {
            apply(&mut h, &mut ids, op, &mut now);
            consistent(&h)
        })
    }
}
