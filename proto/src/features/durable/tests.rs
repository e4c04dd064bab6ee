//! Unit tests of the durable state: every receiver rule, the sender's life cycle, the
//! journal, restore and its errors. Properties are in `props.rs`.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::*;
use crate::endpoint::{DropReason, SendError};
use crate::id::Counter;
use crate::reliability::OwnedMessage;
use crate::rng::Rng;
use crate::store::BatchId;
use crate::wire::durable::DurableMessage;
use crate::wire::Message;

/// A store: what the driver committed.
pub(super) type Model = BTreeMap<(DurableTable, Vec<u8>), Vec<u8>>;

pub(super) fn apply(model: &mut Model, batch: &DurableBatch) {
    for op in &batch.ops {
        match op {
            StoreOp::Put { table, key, value } => {
                model.insert((*table, key.clone()), value.clone());
            }
            StoreOp::Delete { table, key } => {
                model.remove(&(*table, key.clone()));
            }
        }
    }
}

pub(super) fn records(model: &Model) -> impl Iterator<Item = DurableRecord<'_>> {
    model.iter().map(|((table, key), value)| DurableRecord {
        table: *table,
        key,
        value,
    })
}

pub(super) fn ident() -> StoreIdentity {
    StoreIdentity::client(ClientId([1; 16]), None)
}

pub(super) fn limits() -> DurableLimits {
    DurableLimits {
        max_outbox: 8,
        max_senders: 2,
        max_inbox: 4,
    }
}

/// A durable state enabled on `model`'s records.
pub(super) fn open(model: &Model) -> (Durable, DurableRestored) {
    let mut d = Durable::new(limits());
    let r = d
        .enable(ident(), records(model), &mut Rng::seed_from_u64(7))
        .expect("restores");
    (d, r)
}

/// Hands out and stores every pending batch.
pub(super) fn commit(d: &mut Durable, model: &mut Model) -> Released {
    let mut last = None;
    while let Some(b) = d.poll_store() {
        apply(model, &b);
        last = Some(b.id);
    }
    last.map(|id| d.stored(id)).unwrap_or_default()
}

pub(super) fn msg(payload: &str) -> OwnedMessage {
    OwnedMessage::new("t", "n", payload.as_bytes())
}

pub(super) fn packet(origin: u64, seq: u64, floor: u64) -> DurableMessage<'static> {
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

pub(super) fn ack(counter: u64) -> PendingAck {
    PendingAck {
        to: SocketAddr::from(([10, 0, 0, 1], 9)),
        counter: Counter(counter),
    }
}

const SERVER: DurablePeer = DurablePeer::Server;
const ALICE: DurablePeer = DurablePeer::Client(crate::id::PeerId::Client(ClientId([0xa1; 16])));

#[test]
fn identities_are_blake2b_of_the_domain_and_the_endpoint() {
    let id = ClientId(core::array::from_fn(|i| i as u8));
    let hex = |i: StoreIdentity| records::hex(&i.0);
    assert_eq!(
        hex(StoreIdentity::client(id, None)),
        "cb6308c73cc7f4ac0be9551e06ce958b0cbf848f2f806ea609fba345839ae7b2"
    );
    assert_eq!(
        hex(StoreIdentity::client(id, Some(&[7; 32]))),
        "85539fc5f3b316c21cb369be77160c72903b301e2f8e8002dfd8ec5f89fa60b8"
    );
    assert_eq!(
        hex(StoreIdentity::server(None)),
        "017ff60f18b425e56fe1d501835ee85819d9ce4108d6195cc3c6ee5e9f92899d"
    );
    assert_eq!(
        hex(StoreIdentity::server(Some(&[7; 32]))),
        "ece0a090e34bdcbd82c2793bf7ed47065a7c2c08783079673767de8ac78386ad"
    );
}

#[test]
fn a_fresh_store_draws_an_origin_and_stores_the_meta_rows() {
    let mut model = Model::new();
    let (mut d, r) = open(&model);
    assert!(r.fresh);
    assert_eq!(
        r.origin,
        OriginId(Rng::seed_from_u64(7).next_u64()),
        "the origin is the RNG's first draw"
    );
    assert_eq!(
        (r.queued, r.inbox, r.send_mark, r.consume_mark),
        (0, 0, None, None)
    );
    let b = d.poll_store().expect("the meta rows");
    assert_eq!(b.id, BatchId(1));
    apply(&mut model, &b);
    assert_eq!(d.poll_store(), None, "nothing more");
    let meta = |k: &[u8]| model.get(&(DurableTable::Meta, k.to_vec())).cloned();
    assert_eq!(meta(keys::IDENTITY), Some(ident().0.to_vec()));
    assert_eq!(meta(keys::ORIGIN), Some(r.origin.0.to_le_bytes().to_vec()));
    assert_eq!(meta(keys::NEXT_SEQ), Some(1u64.to_le_bytes().to_vec()));
    // Restored: same origin, not fresh, and the RNG is not drawn from.
    let mut again = Durable::new(limits());
    let mut rng = Rng::seed_from_u64(99);
    let r2 = again.enable(ident(), records(&model), &mut rng).unwrap();
    assert_eq!((r2.origin, r2.fresh), (r.origin, false));
    assert_eq!(rng.next_u64(), Rng::seed_from_u64(99).next_u64());
    assert_eq!(again.poll_store(), None, "a restore writes nothing");
}

#[test]
fn restore_errors_are_typed_and_change_nothing() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    d.queue(SERVER, msg("a"), None).unwrap();
    commit(&mut d, &mut model);
    let refused = |m: &Model, id: StoreIdentity| {
        let mut d = Durable::new(limits());
        let err = d
            .enable(id, records(m), &mut Rng::seed_from_u64(1))
            .unwrap_err();
        assert!(!d.is_enabled());
        assert_eq!(d.poll_store(), None);
        err
    };
    assert_eq!(
        refused(&model, StoreIdentity::server(None)),
        DurableRestoreError::ForeignIdentity
    );
    // Each table's bad rows name the table and the key.
    let cases: [(DurableTable, &[u8], &[u8]); 8] = [
        (DurableTable::Meta, keys::NEXT_SEQ, &[1, 2, 3]),
        (DurableTable::Meta, keys::NEXT_SEQ, &[0; 8]),
        (DurableTable::Meta, keys::IDENTITY, &[0; 31]),
        (DurableTable::Outbox, &[0; 8], b"\x00t\nn\n"),
        (
            DurableTable::Outbox,
            &[0, 0, 0, 0, 0, 0, 0, 9],
            b"\x05t\nn\n",
        ),
        (DurableTable::Seen, &[0, 1], &[0; records::SEEN_LEN]),
        (DurableTable::Seen, &[0, 0, 0, 0, 0, 0, 0, 0, 1], &[0; 9]),
        (DurableTable::Inbox, &[0; 17], b"t\nn\n"),
    ];
    for (table, key, value) in cases {
        let mut bad = model.clone();
        bad.insert((table, key.to_vec()), value.to_vec());
        assert_eq!(
            refused(&bad, ident()),
            DurableRestoreError::BadRecord {
                table,
                key: records::hex(key)
            },
            "{table:?} {key:?}"
        );
    }
    let mut bad = model.clone();
    let inbox_key = records::inbox_key((SERVER, OriginId(1), DurableSeq(1)));
    bad.insert(
        (DurableTable::Inbox, inbox_key.clone()),
        b"no newline".to_vec(),
    );
    assert!(matches!(
        refused(&bad, ident()),
        DurableRestoreError::BadRecord {
            table: DurableTable::Inbox,
            ..
        }
    ));
    let mut missing = model.clone();
    missing.remove(&(DurableTable::Meta, keys::ORIGIN.to_vec()));
    assert_eq!(refused(&missing, ident()), DurableRestoreError::MissingMeta);
    let only_rows: Model = model
        .iter()
        .filter(|((t, _), _)| *t != DurableTable::Meta)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        refused(&only_rows, ident()),
        DurableRestoreError::MissingMeta
    );
    let mut ahead = model.clone();
    ahead.insert(
        (DurableTable::Meta, keys::NEXT_SEQ.to_vec()),
        1u64.to_le_bytes().to_vec(),
    );
    assert_eq!(refused(&ahead, ident()), DurableRestoreError::SeqAhead);
    // Twice on one endpoint.
    assert_eq!(
        d.enable(ident(), records(&model), &mut Rng::seed_from_u64(1)),
        Err(DurableRestoreError::AlreadyEnabled)
    );
    // The adapter's own meta rows are not ours to judge.
    let mut own = model.clone();
    own.insert((DurableTable::Meta, b"adapter".to_vec()), vec![1, 2, 3]);
    assert!(Durable::new(limits())
        .enable(ident(), records(&own), &mut Rng::seed_from_u64(1))
        .is_ok());
    let mut only_own = Model::new();
    only_own.insert((DurableTable::Meta, b"adapter".to_vec()), vec![1]);
    let r = Durable::new(limits())
        .enable(ident(), records(&only_own), &mut Rng::seed_from_u64(1))
        .unwrap();
    assert!(r.fresh);
}

#[test]
fn a_send_is_transmitted_only_once_its_batch_is_stored() {
    let mut model = Model::new();
    let (mut d, r) = open(&model);
    let id = d.queue(SERVER, msg("a"), Some(41)).unwrap();
    assert_eq!(
        id,
        DurableId {
            origin: r.origin,
            seq: DurableSeq(1)
        }
    );
    let mut out = Vec::new();
    d.take_ready(SERVER, usize::MAX, &mut out);
    assert!(out.is_empty(), "unstored");
    let mut peers = Vec::new();
    d.ready_peers(&mut peers);
    assert!(peers.is_empty());
    assert_eq!(
        d.floor(SERVER),
        DurableSeq(1),
        "an unstored send holds the floor"
    );
    let b = d.poll_store().unwrap();
    apply(&mut model, &b);
    d.take_ready(SERVER, usize::MAX, &mut out);
    assert!(out.is_empty(), "handed out is not stored");
    let rel = d.stored(b.id);
    assert!(rel.sendable && rel.deliveries.is_empty() && rel.failed.is_empty());
    d.ready_peers(&mut peers);
    assert_eq!(peers, [SERVER]);
    d.take_ready(SERVER, usize::MAX, &mut out);
    assert_eq!(out, [DurableSeq(1)]);
    assert_eq!(d.message(DurableSeq(1)), Some(&msg("a")));
    d.take_ready(SERVER, usize::MAX, &mut out);
    assert_eq!(out.len(), 1, "in flight is not ready");
    // A session ends: ready again.
    d.requeue(DurableSeq(1));
    d.take_ready(SERVER, usize::MAX, &mut out);
    assert_eq!(out, [DurableSeq(1), DurableSeq(1)]);
    assert_eq!(
        model.get(&(DurableTable::Meta, keys::SEND_MARK.to_vec())),
        Some(&41u64.to_le_bytes().to_vec())
    );
    assert_eq!(
        model.get(&(DurableTable::Meta, keys::NEXT_SEQ.to_vec())),
        Some(&2u64.to_le_bytes().to_vec())
    );
    // Acknowledged: resolved, the row deleted, the floor moves to the next seq.
    assert_eq!(d.acked(DurableSeq(1)), Some((SERVER, id)));
    assert_eq!(d.acked(DurableSeq(1)), None, "once");
    assert_eq!(d.floor(SERVER), DurableSeq(2));
    assert_eq!(d.queued(), 0);
    commit(&mut d, &mut model);
    assert!(!model.contains_key(&(DurableTable::Outbox, records::outbox_key(DurableSeq(1)))));
}

#[test]
fn floors_are_per_destination_and_cancel_resolves() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    for to in [SERVER, ALICE, SERVER, ALICE] {
        d.queue(to, msg("x"), None).unwrap();
    }
    commit(&mut d, &mut model);
    assert_eq!(d.floor(SERVER), DurableSeq(1));
    assert_eq!(d.floor(ALICE), DurableSeq(2));
    let mut out = Vec::new();
    d.take_ready(ALICE, usize::MAX, &mut out);
    assert_eq!(out, [DurableSeq(2), DurableSeq(4)]);
    assert_eq!(d.cancel(DurableSeq(2)), Some((ALICE, true)));
    assert_eq!(d.cancel(DurableSeq(1)), Some((SERVER, false)));
    assert_eq!(d.cancel(DurableSeq(1)), None);
    assert_eq!(d.floor(ALICE), DurableSeq(4));
    assert_eq!(d.floor(SERVER), DurableSeq(3));
    assert_eq!(d.message(DurableSeq(2)), None);
    commit(&mut d, &mut model);
    let (d2, r) = open(&model);
    assert_eq!(r.queued, 2);
    assert_eq!(d2.floor(ALICE), DurableSeq(4));
}

#[test]
fn the_outbox_is_bounded() {
    let (mut d, _) = open(&Model::new());
    for _ in 0..limits().max_outbox {
        d.queue(SERVER, msg("x"), None).unwrap();
    }
    assert_eq!(d.queue(SERVER, msg("x"), None), Err(SendError::QueueFull));
    let mut off = Durable::new(limits());
    assert_eq!(
        off.queue(SERVER, msg("x"), None),
        Err(SendError::NotDurable)
    );
    assert_eq!(
        off.receive(SERVER, &packet(1, 1, 1), ack(1)),
        Receive::Drop(DropReason::DurableDisabled)
    );
}

#[test]
fn a_message_is_acked_and_delivered_once_its_record_is_stored() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    commit(&mut d, &mut model);
    assert_eq!(d.receive(SERVER, &packet(5, 1, 1), ack(10)), Receive::Held);
    // Rule 6: a copy while unstored gets nothing; its counter is the one acked later.
    assert_eq!(
        d.receive(SERVER, &packet(5, 1, 1), ack(11)),
        Receive::Waiting
    );
    let b = d.poll_store().unwrap();
    assert_eq!(
        d.receive(SERVER, &packet(5, 1, 1), ack(12)),
        Receive::Waiting
    );
    apply(&mut model, &b);
    let rel = d.stored(b.id);
    let id = DurableId {
        origin: OriginId(5),
        seq: DurableSeq(1),
    };
    assert_eq!(
        rel.deliveries,
        [Delivery {
            from: SERVER,
            id,
            message: msg("p"),
            redelivered: false,
            ack: Some(ack(12)),
        }]
    );
    // Rule 5: stored, so acknowledged again at once and never delivered again.
    assert_eq!(
        d.receive(SERVER, &packet(5, 1, 1), ack(13)),
        Receive::AckNow
    );
    assert!(d.stored(b.id).deliveries.is_empty());
    // Consumed: still a duplicate.
    assert!(d.consume(SERVER, id, Some(77)));
    assert!(!d.consume(SERVER, id, None), "once");
    assert_eq!(
        d.receive(SERVER, &packet(5, 1, 1), ack(14)),
        Receive::AckNow
    );
    commit(&mut d, &mut model);
    let (mut d2, r) = open(&model);
    assert_eq!((r.inbox, r.consume_mark), (0, Some(77)));
    assert_eq!(
        d2.receive(SERVER, &packet(5, 1, 1), ack(15)),
        Receive::AckNow
    );
}

#[test]
fn the_inbox_is_redelivered_after_a_restart_until_consumed() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    d.receive(ALICE, &packet(5, 2, 1), ack(1));
    d.receive(ALICE, &packet(5, 1, 1), ack(2));
    commit(&mut d, &mut model);
    let (mut d2, r) = open(&model);
    assert_eq!(r.inbox, 2);
    let again = d2.take_redeliveries();
    let ids: Vec<u64> = again.iter().map(|x| x.id.seq.0).collect();
    assert_eq!(ids, [1, 2]);
    assert!(again
        .iter()
        .all(|x| x.redelivered && x.ack.is_none() && x.from == ALICE));
    assert!(d2.take_redeliveries().is_empty(), "handed out once");
    assert_eq!(d2.receive(ALICE, &packet(5, 1, 1), ack(3)), Receive::AckNow);
    assert!(d2.consume(ALICE, again[0].id, None));
    assert!(!d2.consume(SERVER, again[1].id, None), "by sender");
    commit(&mut d2, &mut model);
    let (_, r) = open(&model);
    assert_eq!(r.inbox, 1);
}

#[test]
fn receiver_rules_refuse_in_order() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    let drop = |r| Receive::Drop(r);
    // Rule 2.
    for (seq, floor) in [(0, 0), (u64::MAX, 1), (3, 5)] {
        assert_eq!(
            d.receive(SERVER, &packet(1, seq, floor), ack(1)),
            drop(DropReason::DurableInvalid)
        );
    }
    // A floor one past the seq: resolved at the sender, so acknowledged, not delivered.
    assert_eq!(d.receive(SERVER, &packet(1, 3, 4), ack(1)), Receive::AckNow);
    // Rule 7: the window is WINDOW seqs from the floor.
    assert_eq!(
        d.receive(SERVER, &packet(1, 1 + WINDOW, 1), ack(1)),
        drop(DropReason::DurableWindow)
    );
    assert_eq!(
        d.receive(SERVER, &packet(1, WINDOW, 1), ack(1)),
        Receive::Held
    );
    // Rule 3: two senders known (limit 2), a third refused; a known one still served.
    assert_eq!(d.receive(SERVER, &packet(2, 1, 1), ack(1)), Receive::Held);
    assert_eq!(
        d.receive(SERVER, &packet(3, 1, 1), ack(1)),
        drop(DropReason::DurableTableFull)
    );
    assert_eq!(
        d.receive(ALICE, &packet(1, 1, 1), ack(1)),
        drop(DropReason::DurableTableFull),
        "a sender is a (peer, origin) pair"
    );
    // Rule 8: the inbox holds 4.
    assert_eq!(d.receive(SERVER, &packet(1, 2, 1), ack(1)), Receive::Held);
    assert_eq!(d.receive(SERVER, &packet(1, 3, 1), ack(1)), Receive::Held);
    assert_eq!(
        d.receive(SERVER, &packet(1, 4, 1), ack(1)),
        drop(DropReason::DurableInboxFull)
    );
    // Rule 4 then 5: a floor past a seq makes it a duplicate.
    commit(&mut d, &mut model);
    assert_eq!(
        d.receive(SERVER, &packet(1, 4, 4), ack(1)),
        drop(DropReason::DurableInboxFull)
    );
    assert_eq!(d.receive(SERVER, &packet(1, 2, 1), ack(1)), Receive::AckNow);
    // Forgetting a peer frees its slots.
    d.forget(SERVER);
    assert_eq!(
        d.receive(ALICE, &packet(1, 1, 1), ack(1)),
        drop(DropReason::DurableInboxFull)
    );
    commit(&mut d, &mut model);
    assert!(!model.keys().any(|(t, _)| *t == DurableTable::Seen));
}

#[test]
fn a_floor_slides_the_window() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    assert_eq!(d.receive(SERVER, &packet(1, 10, 1), ack(1)), Receive::Held);
    commit(&mut d, &mut model);
    // The sender resolved everything below 500 (here: cancelled): 1100 now fits.
    assert_eq!(
        d.receive(SERVER, &packet(1, 1100, 1), ack(1)),
        Receive::Drop(DropReason::DurableWindow)
    );
    assert_eq!(
        d.receive(SERVER, &packet(1, 1100, 500), ack(1)),
        Receive::Held
    );
    assert_eq!(
        d.receive(SERVER, &packet(1, 10, 1), ack(1)),
        Receive::AckNow
    );
    assert_eq!(
        d.receive(SERVER, &packet(1, 499, 1), ack(1)),
        Receive::AckNow
    );
    commit(&mut d, &mut model);
    let (mut d2, _) = open(&model);
    assert_eq!(
        d2.receive(SERVER, &packet(1, 1100, 1), ack(1)),
        Receive::AckNow
    );
    assert_eq!(
        d2.receive(SERVER, &packet(1, 499, 1), ack(1)),
        Receive::AckNow
    );
    assert_eq!(
        d2.receive(SERVER, &packet(1, 500, 1), ack(1)),
        Receive::Held
    );
}

#[test]
fn a_held_copy_is_never_acked_even_below_a_new_floor() {
    let (mut d, _) = open(&Model::new());
    assert_eq!(d.receive(SERVER, &packet(1, 3, 1), ack(1)), Receive::Held);
    assert_eq!(
        d.receive(SERVER, &packet(1, 3, 4), ack(2)),
        Receive::Waiting
    );
}

#[test]
fn a_failed_batch_fails_its_sends_and_forgets_its_receptions() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    commit(&mut d, &mut model);
    let sent = d.queue(SERVER, msg("a"), Some(5)).unwrap();
    assert_eq!(d.receive(SERVER, &packet(9, 1, 1), ack(1)), Receive::Held);
    let b1 = d.poll_store().unwrap();
    // A later batch, handed out before the failure, fails with it.
    let later = d.queue(SERVER, msg("b"), None).unwrap();
    let b2 = d.poll_store().unwrap();
    let rel = d.store_failed(b1.id);
    assert_eq!(rel.failed, [(SERVER, sent), (SERVER, later)]);
    assert!(rel.deliveries.is_empty() && !rel.sendable);
    assert_eq!(d.queued(), 0);
    // Confirming them afterwards releases nothing.
    let rel = d.stored(b2.id);
    assert!(rel.deliveries.is_empty() && !rel.sendable);
    // The reception is forgotten: the sender's retry is new again.
    assert_eq!(d.receive(SERVER, &packet(9, 1, 1), ack(2)), Receive::Held);
    // Seqs are not reused.
    let next = d.queue(SERVER, msg("c"), None).unwrap();
    assert_eq!(next.seq, DurableSeq(3));
    // Suppose the store kept b1 and b2 after all: the catch-up batch makes it agree.
    apply(&mut model, &b1);
    apply(&mut model, &b2);
    commit(&mut d, &mut model);
    let (_, r) = open(&model);
    assert_eq!((r.queued, r.inbox, r.send_mark), (1, 1, Some(5)));
    assert_eq!(
        model.get(&(DurableTable::Meta, keys::NEXT_SEQ.to_vec())),
        Some(&4u64.to_le_bytes().to_vec())
    );
    assert!(!model.contains_key(&(DurableTable::Outbox, records::outbox_key(DurableSeq(1)))));
}

#[test]
fn a_failed_consume_is_written_again() {
    let mut model = Model::new();
    let (mut d, _) = open(&model);
    d.receive(SERVER, &packet(9, 1, 1), ack(1));
    commit(&mut d, &mut model);
    let id = DurableId {
        origin: OriginId(9),
        seq: DurableSeq(1),
    };
    assert!(d.consume(SERVER, id, Some(3)));
    let b = d.poll_store().unwrap();
    assert!(d.store_failed(b.id).failed.is_empty());
    commit(&mut d, &mut model);
    let (_, r) = open(&model);
    assert_eq!((r.inbox, r.consume_mark), (0, Some(3)));
}

#[test]
fn many_sends_write_meta_once_per_batch() {
    let (mut d, _) = open(&Model::new());
    for _ in 0..5 {
        d.queue(SERVER, msg("x"), Some(1)).unwrap();
    }
    let b = d.poll_store().unwrap();
    let meta = b
        .ops
        .iter()
        .filter(|op| {
            matches!(
                op,
                StoreOp::Put {
                    table: DurableTable::Meta,
                    ..
                }
            )
        })
        .count();
    // identity, origin, next_seq, send_mark.
    assert_eq!(meta, 4);
}

#[test]
fn stored_rows_have_the_documented_bytes() {
    let mut model = Model::new();
    let (mut d, r) = open(&model);
    d.queue(ALICE, msg("hi"), None).unwrap();
    d.receive(
        DurablePeer::Client(crate::id::PeerId::Guest([2; 32])),
        &packet(0x0102, 3, 2),
        ack(1),
    );
    commit(&mut d, &mut model);
    let mut outbox = vec![1u8];
    outbox.extend_from_slice(&[0xa1; 16]);
    outbox.extend_from_slice(b"t\nn\nhi");
    assert_eq!(
        model.get(&(
            DurableTable::Outbox,
            hex::decode("0000000000000001").unwrap()
        )),
        Some(&outbox)
    );
    let mut sender = vec![2u8];
    sender.extend_from_slice(&[2; 32]);
    sender.extend_from_slice(&hex::decode("0000000000000102").unwrap());
    let mut seen = hex::decode("0200000000000000").unwrap();
    seen.push(0b10); // seq 3 = floor + 1
    seen.resize(records::SEEN_LEN, 0);
    assert_eq!(
        model.get(&(DurableTable::Seen, sender.clone())),
        Some(&seen)
    );
    let mut inbox_key = sender;
    inbox_key.extend_from_slice(&hex::decode("0000000000000003").unwrap());
    assert_eq!(
        model.get(&(DurableTable::Inbox, inbox_key)),
        Some(&b"t\nn\np".to_vec())
    );
    assert_eq!(r.origin, d.origin().unwrap());
}
