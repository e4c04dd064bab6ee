//! Properties of the durable state under any interleaving of operations, store confirmations,
//! store failures and crashes. A crash rebuilds the state from the model store, which holds
//! exactly the batches the driver confirmed (and, after a failure, any prefix of the failed
//! ones: a store may have kept some before it broke).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::vec::Vec;

use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::dedup::Window;
use super::records;
use super::tests::{ack, apply, ident, limits, msg, records as rows, Model};
use super::*;
use crate::reliability::OwnedMessage;
use crate::rng::Rng;
use crate::wire::durable::DurableMessage;
use crate::wire::Message;

/// A durable state, its store, and the batches handed out and not yet confirmed.
struct Harness {
    d: Durable,
    model: Model,
    handed: VecDeque<DurableBatch>,
    seed: u64,
}

impl Harness {
    fn new() -> Self {
        let mut h = Harness {
            d: Durable::new(limits()),
            model: Model::new(),
            handed: VecDeque::new(),
            seed: 0,
        };
        h.restart();
        h
    }

    /// Rebuilds from the store: what a reboot does.
    fn restart(&mut self) -> DurableRestored {
        self.seed += 1;
        self.handed.clear();
        self.d = Durable::new(limits());
        self.d
            .enable(
                ident(),
                rows(&self.model),
                &mut Rng::seed_from_u64(self.seed),
            )
            .expect("a store we wrote restores")
    }

    fn poll(&mut self) {
        if let Some(b) = self.d.poll_store() {
            self.handed.push_back(b);
        }
    }

    /// The driver stores the first `k` handed-out batches and confirms the last.
    fn store(&mut self, k: usize) -> Released {
        let k = k.min(self.handed.len());
        let mut last = None;
        for b in self.handed.drain(..k) {
            apply(&mut self.model, &b);
            last = Some(b.id);
        }
        last.map(|id| self.d.stored(id)).unwrap_or_default()
    }

    /// The store breaks after keeping the first `kept` handed-out batches (a transaction may
    /// have committed before the driver saw the error); the driver reports the failure and
    /// writes none of the batches it still holds (the contract of `Durable::store_failed`).
    fn fail(&mut self, kept: usize) -> Released {
        let kept = kept.min(self.handed.len());
        let mut batches: Vec<DurableBatch> = self.handed.drain(..).collect();
        for b in batches.drain(..kept) {
            apply(&mut self.model, &b);
        }
        batches
            .last()
            .map(|b| self.d.store_failed(b.id))
            .unwrap_or_default()
    }
}

/// One step of a run.
#[derive(Clone, Debug)]
enum Step {
    /// A send to one of two destinations.
    Send(bool),
    /// Ready sends go out (into flight).
    Transmit,
    /// The receiver acknowledges the `n`-th in-flight send.
    Ack(u8),
    /// The application cancels the `n`-th queued send.
    Cancel(u8),
    /// The session ends: in-flight sends are ready again.
    Requeue,
    /// A copy of (sender, seq) arrives with this floor offset below seq.
    Receive {
        sender: bool,
        seq: u8,
        back: u8,
    },
    /// The application consumes the `n`-th delivered message.
    Consume(u8),
    Poll,
    Store(u8),
    Fail(u8),
    Crash,
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 20 {
            0..=2 => Step::Send(bool::arbitrary(g)),
            3 => Step::Transmit,
            4 => Step::Ack(u8::arbitrary(g)),
            5 => Step::Cancel(u8::arbitrary(g)),
            6 => Step::Requeue,
            7..=10 => Step::Receive {
                sender: bool::arbitrary(g),
                seq: u8::arbitrary(g) % 24 + 1,
                back: u8::arbitrary(g) % 6,
            },
            11 | 12 => Step::Consume(u8::arbitrary(g)),
            13 | 14 => Step::Poll,
            15 | 16 => Step::Store(u8::arbitrary(g) % 4),
            17 => Step::Fail(u8::arbitrary(g) % 3),
            _ => Step::Crash,
        }
    }
}

const TO: [DurablePeer; 2] = [
    DurablePeer::Server,
    DurablePeer::Client(crate::id::PeerId::Guest([3; 32])),
];

fn packet(origin: u64, seq: u64, floor: u64) -> DurableMessage<'static> {
    DurableMessage {
        origin: OriginId(origin),
        seq: DurableSeq(seq),
        floor: DurableSeq(floor),
        message: Message {
            target: "t",
            name: "n",
            payload: b"p",
        },
    }
}

/// Whether the store knows `key` was received: its inbox row, or its sender's stored window
/// (below the floor or a set bit).
fn stored_knows(model: &Model, (from, origin, seq): records::InboxKey) -> bool {
    let inbox = records::inbox_key((from, origin, seq));
    if model.contains_key(&(DurableTable::Inbox, inbox)) {
        return true;
    }
    model
        .get(&(DurableTable::Seen, records::seen_key((from, origin))))
        .and_then(|v| Window::decode(v))
        .is_some_and(|w| seq.0 < w.floor() || w.contains(seq.0))
}

/// (b) Whatever arrives, with duplicates, any floors, confirmations, failures and crashes: an
/// ACK only ever quotes a message whose record is stored, and the application's output
/// (kept exactly once by the consume mark, as `pav serve --output` does) never holds a
/// message twice.
#[test]
fn prop_receiver_never_delivers_twice_nor_acks_unstored() {
    QuickCheck::new()
        .tests(RECEIVER_CASES)
        .quickcheck(receiver_prop as fn(Vec<Step>) -> Result<(), alloc::string::String>);
}

/// Found by the property: a message received, its batch failed, received again, and the
/// re-asserted rows of a second failed batch deleted the new inbox row after its put, so the
/// message was acknowledged and lost.
#[test]
fn a_reception_after_two_failed_batches_is_not_deleted_by_their_reassertion() {
    let steps = alloc::vec![
        Step::Receive {
            sender: false,
            seq: 20,
            back: 3
        },
        Step::Poll,
        Step::Fail(0),
        Step::Poll,
        Step::Receive {
            sender: false,
            seq: 20,
            back: 2
        },
        Step::Fail(0),
        Step::Poll,
        Step::Store(3),
    ];
    assert_eq!(receiver_prop(steps), Ok(()));
}

fn receiver_prop(steps: Vec<Step>) -> Result<(), alloc::string::String> {
    {
        let mut h = Harness::new();
        // The application's output log (outside the store), truncated at restart to the
        // stored consume mark; and the deliveries it has not consumed yet.
        let mut output: Vec<DurableId> = Vec::new();
        let mut unconsumed: Vec<(DurablePeer, DurableId)> = Vec::new();
        let mut counter = 0u64;
        // The highest floor each sender announced: it says everything below is resolved, so
        // an ACK of a copy below it tells the sender nothing it does not know.
        let mut announced: BTreeMap<(DurablePeer, u64), u64> = BTreeMap::new();
        // Every message we acknowledged (its sender forgets it): the application must get it.
        let mut acked: BTreeSet<records::InboxKey> = BTreeSet::new();
        let check_acks = |model: &Model, rel: &Released| -> Result<(), alloc::string::String> {
            for x in &rel.deliveries {
                if !stored_knows(model, (x.from, x.id.origin, x.id.seq)) {
                    return Err(format!("delivered {} before it was stored", x.id));
                }
            }
            Ok(())
        };
        for step in steps {
            match step {
                Step::Receive { sender, seq, back } => {
                    counter += 1;
                    let (from, origin) = (TO[usize::from(sender)], 40 + u64::from(sender));
                    let seq = u64::from(seq);
                    let floor = seq.saturating_sub(u64::from(back)).max(1);
                    let top = announced.entry((from, origin)).or_default();
                    *top = floor.max(*top);
                    let resolved = seq < *top;
                    let r = h.d.receive(from, &packet(origin, seq, floor), ack(counter));
                    let key = (from, OriginId(origin), DurableSeq(seq));
                    if r == Receive::AckNow && !resolved {
                        if !stored_knows(&h.model, key) {
                            return Err(format!("acked {key:?} before it was stored"));
                        }
                        acked.insert(key);
                    }
                }
                Step::Consume(n) if !unconsumed.is_empty() => {
                    let (from, id) = unconsumed.remove(usize::from(n) % unconsumed.len());
                    output.push(id);
                    if !h.d.consume(from, id, Some(output.len() as u64)) {
                        return Err(format!("delivered {id} not in the inbox"));
                    }
                }
                Step::Poll => h.poll(),
                Step::Store(k) => {
                    let rel = h.store(usize::from(k));
                    check_acks(&h.model, &rel)?;
                    acked.extend(
                        rel.deliveries
                            .iter()
                            .map(|x| (x.from, x.id.origin, x.id.seq)),
                    );
                    unconsumed.extend(rel.deliveries.iter().map(|x| (x.from, x.id)));
                }
                Step::Fail(k) => {
                    let rel = h.fail(usize::from(k));
                    if !rel.deliveries.is_empty() {
                        return Err("a failure delivered".into());
                    }
                }
                Step::Crash => {
                    let r = h.restart();
                    output.truncate(r.consume_mark.unwrap_or(0) as usize);
                    unconsumed =
                        h.d.take_redeliveries()
                            .into_iter()
                            .map(|x| (x.from, x.id))
                            .collect();
                }
                _ => {}
            }
            let distinct: BTreeSet<_> = output.iter().collect();
            if distinct.len() != output.len() {
                return Err(format!("delivered twice: {output:?}"));
            }
        }
        // Nothing acknowledged is lost: after a last reboot, it is in the output or comes
        // back from the inbox.
        let r = h.restart();
        output.truncate(r.consume_mark.unwrap_or(0) as usize);
        let mut got: BTreeSet<records::InboxKey> =
            h.d.take_redeliveries()
                .into_iter()
                .map(|x| (x.from, x.id.origin, x.id.seq))
                .collect();
        for (from, id) in unconsumed_before(&output, &acked) {
            got.insert((from, id.origin, id.seq));
        }
        match acked.difference(&got).next() {
            Some(lost) => Err(format!("acked and lost: {lost:?}")),
            None => Ok(()),
        }
    }
}

/// Cases of the receiver property per run.
const RECEIVER_CASES: u64 = 3000;

/// The acknowledged messages the output holds.
fn unconsumed_before(
    output: &[DurableId],
    acked: &BTreeSet<records::InboxKey>,
) -> Vec<(DurablePeer, DurableId)> {
    acked
        .iter()
        .filter(|(_, origin, seq)| {
            output.contains(&DurableId {
                origin: *origin,
                seq: *seq,
            })
        })
        .map(|&(from, origin, seq)| (from, DurableId { origin, seq }))
        .collect()
}

/// (c) Seqs are never reused: a seq that went out (or is stored) is never given to another
/// message, whatever crashes and failures happen.
#[test]
fn prop_seqs_are_never_reused_across_crashes() {
    fn prop(steps: Vec<Step>) -> Result<(), alloc::string::String> {
        let mut h = Harness::new();
        // Every seq that was transmitted, with the message it carried.
        let mut sent: BTreeMap<u64, OwnedMessage> = BTreeMap::new();
        let mut in_flight: Vec<DurableSeq> = Vec::new();
        let mut n = 0u64;
        for step in steps {
            match step {
                Step::Send(to) => {
                    n += 1;
                    let m = msg(&format!("{n}"));
                    let Ok(id) = h.d.queue(TO[usize::from(to)], m.clone(), Some(n)) else {
                        continue;
                    };
                    if sent.get(&id.seq.0).is_some_and(|old| *old != m) {
                        return Err(format!("seq {} reused", id.seq.0));
                    }
                }
                Step::Transmit => {
                    for to in TO {
                        let mut out = Vec::new();
                        h.d.take_ready(to, usize::MAX, &mut out);
                        for seq in out {
                            let m = h.d.message(seq).ok_or("no message in flight")?.clone();
                            if h.d.floor(to) > seq {
                                return Err(format!("floor above unresolved {}", seq.0));
                            }
                            if sent.insert(seq.0, m.clone()).is_some_and(|old| old != m) {
                                return Err(format!("seq {} carried two messages", seq.0));
                            }
                            in_flight.push(seq);
                        }
                    }
                }
                Step::Ack(i) if !in_flight.is_empty() => {
                    let seq = in_flight.remove(usize::from(i) % in_flight.len());
                    h.d.acked(seq);
                }
                Step::Cancel(i) if !in_flight.is_empty() => {
                    let seq = in_flight.remove(usize::from(i) % in_flight.len());
                    h.d.cancel(seq);
                }
                Step::Requeue => {
                    for seq in in_flight.drain(..) {
                        h.d.requeue(seq);
                    }
                }
                Step::Poll => h.poll(),
                Step::Store(k) => {
                    h.store(usize::from(k));
                }
                Step::Fail(k) => {
                    let rel = h.fail(usize::from(k));
                    if rel
                        .failed
                        .iter()
                        .any(|(_, id)| sent.contains_key(&id.seq.0))
                    {
                        return Err("a transmitted send failed".into());
                    }
                }
                Step::Crash => {
                    h.restart();
                    in_flight.clear();
                    // What comes back is what was queued under that seq.
                    let e = h.d.inner.as_ref().ok_or("enabled")?;
                    for (seq, entry) in &e.sender.entries {
                        if sent.get(&seq.0).is_some_and(|m| *m != entry.message) {
                            return Err(format!("seq {} restored another message", seq.0));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<Step>) -> Result<(), alloc::string::String>);
}

/// The state worth comparing after a restore.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    origin: OriginId,
    next_seq: u64,
    outbox: BTreeMap<DurableSeq, (DurablePeer, OwnedMessage)>,
    senders: BTreeMap<records::SenderKey, Window>,
    inbox: BTreeMap<records::InboxKey, OwnedMessage>,
    send_mark: Option<u64>,
    consume_mark: Option<u64>,
}

fn snapshot(d: &Durable) -> Snapshot {
    let e = d.inner.as_ref().expect("enabled");
    Snapshot {
        origin: e.origin,
        next_seq: e.sender.next_seq,
        outbox: e
            .sender
            .entries
            .iter()
            .map(|(s, x)| (*s, (x.to, x.message.clone())))
            .collect(),
        senders: e.dedup.senders.clone(),
        inbox: e
            .dedup
            .inbox
            .iter()
            .map(|(k, x)| (*k, x.message.clone()))
            .collect(),
        send_mark: e.send_mark,
        consume_mark: e.consume_mark,
    }
}

/// (a) Any state, once every batch is stored, restores to the same outbox, windows, inbox,
/// seq and marks, even after failures (whatever the store kept of the failed batches).
#[test]
fn prop_records_round_trip() {
    fn prop(steps: Vec<Step>) -> Result<(), alloc::string::String> {
        let mut h = Harness::new();
        let mut in_flight: Vec<DurableSeq> = Vec::new();
        let mut delivered: Vec<(DurablePeer, DurableId)> = Vec::new();
        let mut n = 0u64;
        for step in steps {
            match step {
                Step::Send(to) => {
                    n += 1;
                    let _ =
                        h.d.queue(TO[usize::from(to)], msg(&format!("{n}")), Some(n));
                }
                Step::Transmit => {
                    for to in TO {
                        h.d.take_ready(to, usize::MAX, &mut in_flight);
                    }
                }
                Step::Ack(i) if !in_flight.is_empty() => {
                    h.d.acked(in_flight.remove(usize::from(i) % in_flight.len()));
                }
                Step::Cancel(i) if !in_flight.is_empty() => {
                    h.d.cancel(in_flight.remove(usize::from(i) % in_flight.len()));
                }
                Step::Requeue => {
                    for seq in in_flight.drain(..) {
                        h.d.requeue(seq);
                    }
                }
                Step::Receive { sender, seq, back } => {
                    let (from, origin) = (TO[usize::from(sender)], 40 + u64::from(sender));
                    let seq = u64::from(seq);
                    let floor = seq.saturating_sub(u64::from(back)).max(1);
                    h.d.receive(from, &packet(origin, seq, floor), ack(1));
                }
                Step::Consume(i) if !delivered.is_empty() => {
                    let (from, id) = delivered.remove(usize::from(i) % delivered.len());
                    h.d.consume(from, id, Some(u64::from(i)));
                }
                Step::Poll => h.poll(),
                Step::Store(k) => {
                    let rel = h.store(usize::from(k));
                    delivered.extend(rel.deliveries.iter().map(|x| (x.from, x.id)));
                }
                Step::Fail(k) => {
                    h.fail(usize::from(k));
                }
                Step::Crash => {
                    h.restart();
                    in_flight.clear();
                    delivered =
                        h.d.take_redeliveries()
                            .into_iter()
                            .map(|x| (x.from, x.id))
                            .collect();
                }
                _ => {}
            }
        }
        h.poll();
        let rel = h.store(usize::MAX);
        drop(rel);
        let before = snapshot(&h.d);
        h.restart();
        let after = snapshot(&h.d);
        if before == after {
            Ok(())
        } else {
            Err(format!("before {before:?}\nafter {after:?}"))
        }
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<Step>) -> Result<(), alloc::string::String>);
}

/// The window's slide, set and codec agree with a set of seqs.
#[test]
fn prop_window_is_a_set_above_the_floor() {
    fn prop(start: u16, ops: Vec<(bool, u16)>) -> bool {
        let mut w = Window::new(u64::from(start) + 1);
        let mut floor = u64::from(start) + 1;
        let mut set: BTreeSet<u64> = BTreeSet::new();
        for (slide, x) in ops {
            if slide {
                let to = floor + u64::from(x % 1500);
                w.slide(to);
                floor = floor.max(to);
                set.retain(|&s| s >= floor);
            } else {
                let seq = floor + u64::from(x % 1100);
                if w.set(seq) != (seq < floor + WINDOW) {
                    return false;
                }
                if seq < floor + WINDOW {
                    set.insert(seq);
                }
            }
            let again = Window::decode(&w.encode());
            if again != Some(w) || w.floor() != floor {
                return false;
            }
            if (floor.saturating_sub(2)..floor + WINDOW + 2)
                .any(|s| w.contains(s) != set.contains(&s))
            {
                return false;
            }
        }
        true
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(u16, Vec<(bool, u16)>) -> bool);
}
