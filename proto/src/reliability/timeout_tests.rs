//! The cached timer minimums (`earliest.rs`) against the scan they replace.

use super::*;
use crate::time::Duration;
use histogram::RttHistogram;
use rtt::RttConfig;

fn msg() -> Payload {
    Payload::Message(OwnedMessage::new("t", "n", b"p"))
}

/// What `next_timeout` answered when it walked every entry (the code before the cache), from
/// the entries alone; in flight are distinct counters (entries of a run share one).
fn scan(o: &Outbox, can_send: bool, new_budget: usize) -> Option<Instant> {
    let mut in_flight = 0;
    let mut earliest: Option<Instant> = None;
    let mut previous = None;
    for e in o.iter() {
        let mut t = e.deadline;
        if e.counter.is_some() {
            if e.counter != previous {
                in_flight += 1;
            }
            previous = e.counter;
            if let Some(r) = e.retry().filter(|_| can_send) {
                t = t.min(r);
            }
        } else if can_send && in_flight < usize::from(o.max_in_flight) && new_budget > 0 {
            in_flight += 1;
            t = Instant::ZERO;
        }
        if t < Instant::MAX {
            earliest = Some(earliest.map_or(t, |x| x.min(t)));
        }
    }
    earliest
}

/// The neighbouring pairs of the sent prefix whose retries decrease, counted from the
/// entries alone.
fn inversions(o: &Outbox) -> usize {
    let retries: Vec<Instant> = o
        .iter()
        .take(o.sent())
        .map(|e| e.retry().unwrap_or(Instant::MAX))
        .collect();
    retries.windows(2).filter(|w| w[0] > w[1]).count()
}

/// An internal message: the form of the client's keepalive.
fn keepalive() -> Payload {
    Payload::Message(OwnedMessage::new("", "", &[]))
}

/// Whether every query the endpoints make agrees with the scan, the count of retries out
/// of order (which decides when a removal rescans) is exact, and so is the count of internal
/// messages that spares the keepalive query its scan (the outboxes here stay below its
/// saturation).
fn agrees(o: &Outbox) -> bool {
    let internal = o
        .iter()
        .filter(|e| e.internal && matches!(e.payload, Payload::Message(_)));
    let scanned = |p: &Payload| o.iter().any(|e| e.internal && e.payload == *p);
    // Every id, present or not, is found where the binary search over every entry finds it.
    let ids = o
        .iter()
        .flat_map(|e| [e.id.saturating_sub(1), e.id, e.id + 1]);
    let searched = |id| o.entries.binary_search_by_key(&id, |e| e.id).ok();
    ids.chain([0, u64::MAX])
        .all(|id| o.index_of(id) == searched(id))
        && usize::from(o.internal_messages) == internal.count()
        && [keepalive(), msg()]
            .iter()
            .all(|p| o.has_internal(p) == scanned(p))
        && usize::from(o.retry_inversions) == inversions(o)
        && [
            (true, usize::MAX),
            (true, 0),
            (false, usize::MAX),
            (false, 0),
        ]
        .iter()
        .all(|&(can_send, budget)| o.next_timeout(can_send, budget) == scan(o, can_send, budget))
}

quickcheck::quickcheck! {
    /// Over arbitrary pushes (with and without deadlines, out of order), first transmissions
    /// (several sharing a counter), retransmissions, answers (one by one, or a whole run at
    /// once), forced retries, expiries and removals, under an RTO that moves with RTT
    /// samples, the cached `next_timeout` always equals the scan over every entry.
    fn prop_cached_next_timeout_equals_the_scan(ops: Vec<(u8, u16, bool)>) -> bool {
        let mut rtt = RttEstimator::new(RttConfig::default());
        let mut hist = RttHistogram::default();
        let mut o = Outbox::new(24, 6);
        let (mut now, mut next_id, mut next_counter) = (Instant::ZERO, 1u64, 100u64);
        for (op, arg, flag) in ops {
            match op % 10 {
                0 | 1 => {
                    let deadline = if flag && arg % 5 == 0 {
                        Instant::MAX
                    } else {
                        now + Duration::from_millis(u64::from(arg % 3000) + 1)
                    };
                    // Now and then an internal message: a keepalive, or another.
                    let (payload, internal) = match arg % 7 {
                        1 => (keepalive(), true),
                        2 => (msg(), true),
                        _ => (msg(), false),
                    };
                    if o.push(next_id, payload, internal, deadline).is_ok() {
                        // Now and then an id taken by something else: not dense.
                        next_id += 1 + u64::from(arg % 11 == 3) * u64::from(arg % 5);
                    }
                }
                2 | 3 => {
                    now += Duration::from_millis(u64::from(arg % 400));
                    let mut due = Vec::new();
                    let per_counter = usize::from(arg % 3) + 1;
                    o.poll_due_runs(now, flag, usize::from(arg % 9), per_counter, &mut due);
                    // New sends share a counter by up to `per_counter`, as a suite 3 run
                    // does, and stop where no counter is free.
                    let (mut shared, mut stopped) = (0, false);
                    for d in due {
                        let Due::Transmit(id) = d else { continue };
                        if o.get(id).is_some_and(|e| e.counter.is_none()) {
                            if shared == 0 && !o.may_take_counter() {
                                stopped = true;
                            }
                            if stopped {
                                continue;
                            }
                            if shared == 0 {
                                next_counter += 1;
                            }
                            shared = (shared + 1) % per_counter;
                            o.on_first_transmit(id, Counter(next_counter), Vec::new(), now, &rtt);
                        } else {
                            o.on_retransmit(id, now, &rtt);
                        }
                    }
                    if o.counters > o.max_in_flight {
                        return false;
                    }
                }
                4 | 5 => {
                    let from = SocketAddr::from(([10, 0, 0, 1], 1));
                    // A run completed as one block: the oldest (an ACK taken in order), or
                    // any other (one that overtook an older run's held ACK).
                    let block = match arg % 4 {
                        0 => o.oldest_counter(),
                        2 => o.iter().nth(usize::from(arg / 4 % 8)).and_then(|e| e.counter),
                        _ => None,
                    };
                    if let Some(c) = block.filter(|_| flag) {
                        let _ = o.complete_run(c, from, now, &mut rtt, &mut hist, |_| true).map(Iterator::count);
                    } else {
                        let c = Counter(100 + u64::from(arg % 40));
                        let _ = o.on_reply(c, false, from, now, &mut rtt, &mut hist);
                    }
                }
                6 => {
                    // An RTT sample that moves the RTO, so retries stop being in send order.
                    rtt.on_sample(Duration::from_millis(u64::from(arg % 900)));
                    let id = o.iter().nth(usize::from(arg % 8)).map(|e| e.id);
                    if let Some(id) = id {
                        o.on_retransmit(id, now, &rtt);
                    }
                }
                7 => {
                    if flag {
                        o.retry_all_now(now);
                    } else {
                        o.retry_now_where(now, |e| e.id % 2 == u64::from(arg % 2));
                    }
                }
                8 => {
                    if flag {
                        let _ = o.remove_where(|e| e.id % 3 == u64::from(arg % 3));
                    } else {
                        let _ = o.drain_unsent();
                    }
                }
                _ => {
                    if flag && arg % 7 == 0 {
                        let _ = o.drain().count();
                    } else {
                        // A run sent with `MORE`: its retries move later (`ack_delay`).
                        let c = Counter(100 + u64::from(arg % 40));
                        o.delay_retries(c, Duration::from_millis(u64::from(arg % 50)));
                    }
                }
            }
            if !agrees(&o) {
                return false;
            }
        }
        true
    }
}

/// Past `u8::MAX` internal messages the count saturates and means only "some, perhaps":
/// removals that do not rescan (a run completed as one block) leave it there, so the
/// query still finds the one left by its scan, and a rescan counts exactly again.
#[test]
fn a_saturated_count_of_internal_messages_falls_back_to_the_scan() {
    let mut rtt = RttEstimator::new(RttConfig::default());
    let mut hist = RttHistogram::default();
    let mut o = Outbox::new(400, 400);
    let t0 = Instant::ZERO;
    let far = t0 + Duration::from_secs(60);
    let from = SocketAddr::from(([10, 0, 0, 1], 1));
    for id in 1..=300 {
        o.push(id, keepalive(), true, far).unwrap();
        o.on_first_transmit(id, Counter(id), Vec::new(), t0, &rtt);
    }
    assert_eq!(o.internal_messages, u8::MAX);
    for c in 1..300 {
        let run = o.complete_run(Counter(c), from, t0, &mut rtt, &mut hist, |_| true);
        assert_eq!(run.map(Iterator::count), Some(1));
    }
    assert_eq!(o.len(), 1);
    assert!(
        o.has_internal(&keepalive()),
        "the last keepalive is still queued"
    );
    // A rescan (here, after a removal of nothing) counts again: exact, and then nothing.
    o.rescan();
    assert_eq!(o.internal_messages, 1);
    let _ = o.complete_run(Counter(300), from, t0, &mut rtt, &mut hist, |_| true);
    assert_eq!(o.internal_messages, 0);
    assert!(!o.has_internal(&keepalive()));
}

/// Resending a full window of runs re-arms its entries one by one, each later than its
/// neighbour for a moment. While a neighbour still retries at the old minimum, the minimum
/// has not moved, so the resend walks the window at most once a run, not once an entry
/// (issue 19: under loss, each retransmission cost a walk over up to 1,024 entries).
#[test]
fn resending_runs_walks_the_window_at_most_once_a_run() {
    const RUNS: u64 = 16;
    const RUN: u64 = 64;
    let rtt = RttEstimator::new(RttConfig::default());
    let n = usize::try_from(RUNS * RUN).unwrap();
    let mut o = Outbox::new(n, n);
    let t0 = Instant::ZERO;
    let far = t0 + Duration::from_secs(600);
    for id in 1..=RUNS * RUN {
        o.push(id, msg(), false, far).unwrap();
        o.on_first_transmit(id, Counter(1 + (id - 1) / RUN), Vec::new(), t0, &rtt);
    }
    let retry = o.next_timeout(true, 0).expect("every entry retries");
    let mut due = Vec::new();
    o.poll_due_runs(retry, true, 0, usize::try_from(RUN).unwrap(), &mut due);
    assert_eq!(due.len(), n, "the whole window is due");
    let before = super::earliest::rescans::so_far();
    for d in due {
        let Due::Transmit(id) = d else {
            panic!("nothing expires before its deadline")
        };
        o.on_retransmit(id, retry, &rtt);
    }
    let walks = super::earliest::rescans::so_far() - before;
    assert!(
        walks <= RUNS,
        "{walks} walks over the window for {RUNS} runs"
    );
    assert!(agrees(&o), "the cached minimums are still exact");
}
