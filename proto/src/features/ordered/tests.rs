//! Unit tests of the stream state and properties of sender and receiver together.

use super::*;
use crate::wire::Message;
use alloc::format;
use quickcheck::{QuickCheck, TestResult};

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 9], port))
}

const EPOCH: StreamEpoch = StreamEpoch(7);
const T0: Instant = Instant::ZERO;

fn packet<'a>(target: &'a str, name: &'a str, seq: u64, floor: u64) -> OrderedMessage<'a> {
    OrderedMessage {
        epoch: EPOCH,
        seq: OrderedSeq(seq),
        floor: OrderedSeq(floor),
        message: Message {
            target,
            name,
            payload: b"",
        },
    }
}

/// Feeds `(seq, floor)` packets on target "t" and returns each result and the names
/// delivered, in order.
fn feed(
    rx: &mut OrderedReceiver,
    limits: &OrderedLimits,
    packets: &[(u64, u64)],
) -> (Vec<Result<Accepted, DropReason>>, Vec<String>) {
    let mut out = Vec::new();
    let mut results = Vec::new();
    for &(seq, floor) in packets {
        let name = format!("{seq}");
        results.push(rx.on_message(
            T0,
            limits,
            peer(1),
            &packet("t", &name, seq, floor),
            &mut out,
        ));
    }
    (
        results,
        out.into_iter().map(|m| String::from(m.name())).collect(),
    )
}

#[test]
fn in_order_is_delivered_at_once_and_later_ones_wait_for_the_gap() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    let (r, d) = feed(&mut rx, &l, &[(1, 1), (3, 1), (4, 1)]);
    assert_eq!(
        r,
        [
            Ok(Accepted::Delivered),
            Ok(Accepted::Held),
            Ok(Accepted::Held)
        ]
    );
    assert_eq!(d, ["1"]);
    assert_eq!(rx.held(), 2);
    let (r, d) = feed(&mut rx, &l, &[(2, 2)]);
    assert_eq!(r, [Ok(Accepted::Delivered)]);
    assert_eq!(d, ["2", "3", "4"]);
    assert_eq!(rx.held(), 0);
}

#[test]
fn duplicates_are_acknowledged_never_redelivered() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    let (_, d) = feed(&mut rx, &l, &[(1, 1), (3, 1)]);
    assert_eq!(d, ["1"]);
    let (r, d) = feed(&mut rx, &l, &[(1, 1), (3, 1)]);
    assert_eq!(r, [Ok(Accepted::Duplicate), Ok(Accepted::Duplicate)]);
    assert!(d.is_empty());
}

#[test]
fn a_floor_past_a_gap_skips_it_and_releases_what_was_held() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    feed(&mut rx, &l, &[(1, 1), (3, 1), (5, 1)]);
    // 2 was abandoned: 4's retransmission says everything below 4 is resolved.
    let (r, d) = feed(&mut rx, &l, &[(4, 4)]);
    assert_eq!(r, [Ok(Accepted::Delivered)]);
    assert_eq!(d, ["3", "4", "5"]);
    // A late 2 is a duplicate now.
    let (r, d) = feed(&mut rx, &l, &[(2, 1)]);
    assert_eq!(r, [Ok(Accepted::Duplicate)]);
    assert!(d.is_empty());
}

#[test]
fn an_announcement_releases_the_tail_and_is_not_delivered() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    feed(&mut rx, &l, &[(1, 1), (3, 1)]);
    let (r, d) = feed(&mut rx, &l, &[(3, 4)]);
    assert_eq!(r, [Ok(Accepted::Announcement)]);
    assert_eq!(d, ["3"]);
    assert_eq!(rx.held(), 0);
}

#[test]
fn bad_seq_and_floor_are_typed_drops() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    let (r, d) = feed(&mut rx, &l, &[(0, 0), (0, 1), (5, 7), (u64::MAX, 3)]);
    assert_eq!(r[0], Err(DropReason::OrderedInvalid));
    assert_eq!(r[1], Err(DropReason::OrderedInvalid));
    assert_eq!(r[2], Err(DropReason::OrderedInvalid));
    assert_eq!(
        r[3],
        Err(DropReason::OrderedInvalid),
        "u64::MAX has no seq + 1 for a floor"
    );
    assert!(d.is_empty());
}

#[test]
fn huge_gaps_and_a_full_buffer_are_refused_unacknowledged() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits {
        max_held_per_peer: 2,
        max_gap: 10,
        ..OrderedLimits::default()
    };
    let (r, _) = feed(&mut rx, &l, &[(12, 1), (11, 1), (3, 1), (4, 1), (5, 1)]);
    assert_eq!(
        r,
        [
            Err(DropReason::OrderedGap),
            Ok(Accepted::Held),
            Ok(Accepted::Held),
            Err(DropReason::OrderedBufferFull),
            Err(DropReason::OrderedBufferFull),
        ]
    );
    // Once the gap fills, the buffer drains and the refused ones are taken on retry.
    let (r, d) = feed(&mut rx, &l, &[(1, 1), (2, 1), (4, 1)]);
    assert_eq!(r, [Ok(Accepted::Delivered); 3]);
    assert_eq!(d, ["1", "2", "3", "4"]);
    assert_eq!(rx.held(), 1, "11 still waits");
}

#[test]
fn the_total_buffer_is_shared_by_every_peer() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits {
        max_held: 3,
        ..OrderedLimits::default()
    };
    let mut out = Vec::new();
    for port in 1..=4u16 {
        let r = rx.on_message(T0, &l, peer(port), &packet("t", "x", 2, 1), &mut out);
        let expected = if port <= 3 {
            Ok(Accepted::Held)
        } else {
            Err(DropReason::OrderedBufferFull)
        };
        assert_eq!(r, expected, "peer {port}");
    }
}

#[test]
fn streams_per_peer_and_in_total_are_bounded() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits {
        max_streams_per_peer: 2,
        max_streams: 3,
        ..OrderedLimits::default()
    };
    let mut out = Vec::new();
    let mut open = |p: u16, t: &str| rx.on_message(T0, &l, peer(p), &packet(t, "", 1, 1), &mut out);
    assert!(open(1, "a").is_ok());
    assert!(open(1, "b").is_ok());
    assert_eq!(open(1, "c"), Err(DropReason::TableFull));
    assert!(open(2, "a").is_ok());
    assert_eq!(open(3, "a"), Err(DropReason::TableFull));
    assert!(open(1, "a").is_ok(), "an open stream is not refused");
    assert_eq!(rx.stream_count(), 3);
}

#[test]
fn idle_streams_expire_and_release_what_they_held() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    feed(&mut rx, &l, &[(1, 1), (3, 1)]);
    assert_eq!(rx.next_expiry(&l), Some(T0 + l.idle));
    let mut out = Vec::new();
    rx.expire(T0 + (l.idle - Duration::from_micros(1)), &l, &mut out);
    assert_eq!(rx.stream_count(), 1);
    rx.expire(T0 + l.idle, &l, &mut out);
    assert_eq!(rx.stream_count(), 0);
    assert_eq!(rx.held(), 0);
    assert_eq!(out.len(), 1);
    assert_eq!(rx.next_expiry(&l), None);
}

#[test]
fn a_new_epoch_resets_the_stream_after_releasing_the_old_one() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    feed(&mut rx, &l, &[(1, 1), (2, 1), (4, 1)]);
    let mut out = Vec::new();
    let mut fresh = packet("t", "new-1", 1, 1);
    fresh.epoch = StreamEpoch(8);
    let r = rx.on_message(T0, &l, peer(1), &fresh, &mut out);
    assert_eq!(
        r,
        Ok(Accepted::Delivered),
        "seq 1 of a new epoch is no duplicate"
    );
    let names: Vec<String> = out.into_iter().map(|m| String::from(m.name())).collect();
    assert_eq!(names, ["4", "new-1"]);
    assert_eq!(rx.held(), 0);
}

#[test]
fn targets_are_independent_streams() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    let mut out = Vec::new();
    // "a" waits for its seq 1; "b" is delivered regardless (no head-of-line blocking).
    let r = rx.on_message(T0, &l, peer(1), &packet("a", "a2", 2, 1), &mut out);
    assert_eq!(r, Ok(Accepted::Held));
    let r = rx.on_message(T0, &l, peer(1), &packet("b", "b1", 1, 1), &mut out);
    assert_eq!(r, Ok(Accepted::Delivered));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name(), "b1");
}

#[test]
fn sender_floor_follows_resolution_and_announces_after_an_abandonment() {
    let mut tx = OrderedSender::new(EPOCH);
    assert_eq!(tx.floor("t"), OrderedSeq(1));
    let s: Vec<OrderedSeq> = (0..3).map(|_| tx.issue("t")).collect();
    assert_eq!(s, [OrderedSeq(1), OrderedSeq(2), OrderedSeq(3)]);
    assert_eq!(tx.on_acked("t", OrderedSeq(2)), AfterResolve::Nothing);
    assert_eq!(tx.floor("t"), OrderedSeq(1));
    // 1 abandoned while 3 is outstanding: 3's retransmissions carry the floor.
    assert_eq!(tx.on_abandoned("t", OrderedSeq(1)), AfterResolve::Nothing);
    assert_eq!(tx.floor("t"), OrderedSeq(3));
    // When 3 resolves, nothing else will carry the floor: announce it.
    assert_eq!(
        tx.on_acked("t", OrderedSeq(3)),
        AfterResolve::Announce {
            seq: OrderedSeq(3),
            floor: OrderedSeq(4)
        }
    );
    assert_eq!(tx.on_acked("t", OrderedSeq(3)), AfterResolve::Nothing);
    // A refused send gives its seq back.
    let s4 = tx.issue("t");
    tx.unissue("t", s4);
    assert_eq!(tx.issue("t"), s4);
}

#[test]
fn stamping_never_lets_a_floor_pass_its_own_seq() {
    let mut tx = OrderedSender::new(EPOCH);
    for _ in 0..3 {
        tx.issue("t");
    }
    tx.on_acked("t", OrderedSeq(1));
    let mut p = packet("t", "", 2, 1);
    tx.stamp(&mut p);
    assert_eq!(p.floor, OrderedSeq(2));
    tx.on_acked("t", OrderedSeq(2));
    tx.on_abandoned("t", OrderedSeq(3));
    let mut a = packet("t", "", 2, 3);
    tx.stamp(&mut a);
    assert_eq!((a.seq, a.floor), (OrderedSeq(3), OrderedSeq(4)));
    let mut other = packet("t", "", 2, 1);
    other.epoch = StreamEpoch(99);
    tx.stamp(&mut other);
    assert_eq!(
        other.floor,
        OrderedSeq(1),
        "another table's packet is left alone"
    );
}

/// One step of a run of sender, network and receiver (see [`run`]).
#[derive(Clone, Copy, Debug)]
struct Op(u8, u8, u8);

impl quickcheck::Arbitrary for Op {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        Op(
            quickcheck::Arbitrary::arbitrary(g),
            quickcheck::Arbitrary::arbitrary(g),
            quickcheck::Arbitrary::arbitrary(g),
        )
    }
}

/// What a run delivered and resolved.
struct Run {
    delivered: Vec<u64>,
    acked: Vec<u64>,
    abandoned: Vec<u64>,
}

/// An exchange the sender still retries: a message, or a floor announcement.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pending {
    Message(u64),
    Announcement(u64, u64),
}

/// The sender, the receiver and what the sender retries.
struct World {
    tx: OrderedSender,
    rx: OrderedReceiver,
    limits: OrderedLimits,
    pending: Vec<Pending>,
    out: Vec<ReceivedMessage>,
    acked: Vec<u64>,
}

impl World {
    /// The packet `p` as sealed now.
    fn seal(&self, p: Pending) -> (u64, u64) {
        let (seq, floor) = match p {
            Pending::Message(s) => (s, 1),
            Pending::Announcement(s, f) => (s, f),
        };
        let mut o = packet("t", "", seq, floor);
        self.tx.stamp(&mut o);
        (o.seq.0, o.floor.0)
    }

    /// The receiver takes `(seq, floor)`; unless the ACK is lost, the sender resolves it.
    fn arrive(&mut self, (seq, floor): (u64, u64), ack_lost: bool) -> bool {
        let name = format!("{seq}");
        let p = packet("t", &name, seq, floor);
        let accepted = self
            .rx
            .on_message(T0, &self.limits, peer(1), &p, &mut self.out);
        if accepted.is_err() || ack_lost {
            return false;
        }
        let announcement = p.is_announcement();
        let Some(i) = self.pending.iter().position(|q| match *q {
            Pending::Message(s) => !announcement && s == seq,
            Pending::Announcement(..) => announcement,
        }) else {
            return false;
        };
        if let Pending::Message(s) = self.pending.remove(i) {
            self.acked.push(s);
            let after = self.tx.on_acked("t", OrderedSeq(s));
            self.announce(after);
        }
        true
    }

    fn announce(&mut self, after: AfterResolve) {
        if let AfterResolve::Announce { seq, floor } = after {
            self.pending.push(Pending::Announcement(seq.0, floor.0));
        }
    }
}

/// `n` messages on one target through a sender and a receiver, with a network that loses,
/// duplicates and reorders packets and ACKs as `ops` say; the sender abandons messages only
/// if `abandon`. At the end the network turns clean and the sender retries until every
/// message (and announcement) is resolved, as a sender before its deadlines would.
fn run(n: u64, ops: &[Op], abandon: bool, held: usize) -> Run {
    let mut tx = OrderedSender::new(EPOCH);
    let pending = (0..n).map(|_| Pending::Message(tx.issue("t").0)).collect();
    let mut w = World {
        tx,
        rx: OrderedReceiver::default(),
        limits: OrderedLimits {
            max_held_per_peer: held,
            ..OrderedLimits::default()
        },
        pending,
        out: Vec::new(),
        acked: Vec::new(),
    };
    let mut bag: Vec<(u64, u64)> = Vec::new();
    let mut abandoned = Vec::new();
    for &Op(kind, a, b) in ops {
        match kind % 5 {
            // Transmit (or retransmit) an outstanding one, stamped now.
            0 | 1 if !w.pending.is_empty() => {
                let p = w.pending[usize::from(a) % w.pending.len()];
                bag.push(w.seal(p));
            }
            // Deliver one from the network, in any order; keep a copy (duplication) or not,
            // and lose its ACK or not.
            2 | 3 if !bag.is_empty() => {
                let i = usize::from(a) % bag.len();
                let p = if b % 3 == 0 {
                    bag[i]
                } else {
                    bag.swap_remove(i)
                };
                w.arrive(p, b % 5 == 1);
            }
            // Abandon an outstanding message (its deadline passed).
            4 if abandon && b % 2 == 0 && !w.pending.is_empty() => {
                let i = usize::from(a) % w.pending.len();
                if let Pending::Message(s) = w.pending[i] {
                    w.pending.remove(i);
                    abandoned.push(s);
                    let after = w.tx.on_abandoned("t", OrderedSeq(s));
                    w.announce(after);
                }
            }
            // Lose one in flight.
            4 if !bag.is_empty() => {
                let i = usize::from(a) % bag.len();
                bag.swap_remove(i);
            }
            _ => {}
        }
    }
    // A clean network: retransmit what is outstanding until none is left.
    let mut rounds = 0;
    while !w.pending.is_empty() && rounds < 10_000 {
        rounds += 1;
        let p = w.seal(w.pending[0]);
        if !w.arrive(p, false) {
            // Refused (buffer full): the others first.
            w.pending.rotate_left(1);
        }
    }
    assert!(w.pending.is_empty(), "the run never settled");
    Run {
        delivered: w.out.iter().map(|m| m.name().parse().unwrap()).collect(),
        acked: w.acked,
        abandoned,
    }
}

#[test]
fn prop_without_abandonment_everything_arrives_once_in_order() {
    fn prop(n: u8, ops: Vec<Op>, held: u8) -> TestResult {
        let n = u64::from(n % 40) + 1;
        let r = run(n, &ops, false, usize::from(held % 8) + 1);
        let expected: Vec<u64> = (1..=n).collect();
        TestResult::from_bool(r.delivered == expected && r.abandoned.is_empty())
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(u8, Vec<Op>, u8) -> TestResult);
}

#[test]
fn prop_with_abandonment_delivery_is_an_increasing_subsequence_holding_every_ack() {
    fn prop(n: u8, ops: Vec<Op>, held: u8) -> TestResult {
        let n = u64::from(n % 40) + 1;
        let r = run(n, &ops, true, usize::from(held % 8) + 1);
        let increasing = r.delivered.windows(2).all(|w| w[0] < w[1]);
        let every_ack = r.acked.iter().all(|s| r.delivered.contains(s));
        TestResult::from_bool(increasing && every_ack)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(u8, Vec<Op>, u8) -> TestResult);
}

#[test]
fn a_roaming_peer_keeps_its_streams() {
    let mut rx = OrderedReceiver::default();
    let l = OrderedLimits::default();
    feed(&mut rx, &l, &[(1, 1), (3, 1)]);
    let mut out = Vec::new();
    // Another (gone) peer's stream at the new address is forgotten.
    rx.on_message(T0, &l, peer(2), &packet("t", "x", 5, 1), &mut out)
        .unwrap();
    rx.move_peer(peer(1), peer(2));
    assert_eq!(rx.stream_count(), 1);
    assert_eq!(rx.held(), 1);
    let r = rx.on_message(T0, &l, peer(2), &packet("t", "1", 1, 1), &mut out);
    assert_eq!(
        r,
        Ok(Accepted::Duplicate),
        "seq 1 was delivered before the move"
    );
    let r = rx.on_message(T0, &l, peer(2), &packet("t", "2", 2, 1), &mut out);
    assert_eq!(r, Ok(Accepted::Delivered));
    let names: Vec<String> = out.into_iter().map(|m| String::from(m.name())).collect();
    assert_eq!(names, ["2", "3"]);
}
