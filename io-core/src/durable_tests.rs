use super::*;
use pavillion_proto::store::StoreOp;
use std::sync::mpsc;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pav-durable-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("d.redb")
}

fn batch(id: u64) -> DurableBatch {
    DurableBatch {
        id: BatchId(id),
        ops: vec![StoreOp::Put {
            table: DurableTable::Outbox,
            key: id.to_be_bytes().to_vec(),
            value: vec![0],
        }],
    }
}

#[test]
fn the_writer_stores_every_batch_in_order_and_reports_the_last_of_each_commit() {
    let path = scratch("writer");
    let store = DurableStore::open(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    let writer = StoreWriter::spawn(store, move |d| tx.send(d).unwrap()).unwrap();
    for id in 1..=50 {
        writer.submit(batch(id));
    }
    let mut last = 0;
    let mut commits = 0;
    while last < 50 {
        let done = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(done.result, Ok(()));
        assert!(done.last.0 > last, "reports go forward");
        last = done.last.0;
        commits += 1;
    }
    // Group commit: batches that queued while a commit ran share the next one.
    assert!(
        commits < 50,
        "{commits} commits for 50 batches queued at once"
    );
    drop(writer);
    let records = DurableStore::open(&path).unwrap().load().unwrap();
    assert_eq!(
        queued_seqs(&records),
        (1..=50).map(DurableSeq).collect::<Vec<_>>()
    );
}

#[test]
fn dropping_the_writer_writes_what_is_queued_and_frees_the_file() {
    let path = scratch("drop");
    let writer = StoreWriter::spawn(DurableStore::open(&path).unwrap(), |_| {}).unwrap();
    writer.submit(batch(1));
    drop(writer);
    let records = DurableStore::open(&path).unwrap().load().unwrap();
    assert_eq!(queued_seqs(&records), vec![DurableSeq(1)]);
}

#[test]
fn a_store_error_keeps_its_path_and_kind() {
    let path = scratch("kind");
    let _held = DurableStore::open(&path).unwrap();
    let e = DurableError::store(&DurableStore::open(&path).unwrap_err());
    match e {
        DurableError::Store { path: p, kind, .. } => {
            assert_eq!(p, path.display().to_string());
            assert_eq!(kind, StoreErrorKind::InUse);
        }
        other => panic!("{other:?}"),
    }
}

// ---- the router, against an endpoint stand-in (the protocol's side is proto's tests) ----

use std::collections::BTreeSet as Set;

/// The durable side of an endpoint as the router sees it: seqs from 1, an outbox of
/// `room` entries, one batch per poll of what was done since.
#[derive(Default)]
struct Stand {
    room: usize,
    next: u64,
    queued: Set<u64>,
    ops: Vec<StoreOp<DurableTable>>,
    batch: u64,
    stored: Option<BatchId>,
    failed: Option<BatchId>,
    consumed: Vec<(DurableId, Option<u64>)>,
}

const ORIGIN: OriginId = OriginId(0xfeed);

impl Stand {
    fn new(room: usize) -> Self {
        Stand {
            room,
            next: 1,
            ..Stand::default()
        }
    }
    fn op(&mut self, key: u64) {
        self.ops.push(StoreOp::Put {
            table: DurableTable::Outbox,
            key: key.to_be_bytes().to_vec(),
            value: vec![],
        });
    }
}

impl DurableEndpoint for Stand {
    fn durable_identity(&self) -> StoreIdentity {
        StoreIdentity([0; 32])
    }
    fn enable_durable<'a>(
        &mut self,
        _: Instant,
        _: impl IntoIterator<Item = DurableRecord<'a>>,
    ) -> Result<DurableRestored, DurableRestoreError> {
        Err(DurableRestoreError::AlreadyEnabled)
    }
    fn send_durable(
        &mut self,
        _: Instant,
        _: DurablePeer,
        _: &str,
        _: &str,
        _: &[u8],
        _: Option<u64>,
    ) -> Result<DurableId, proto::SendError> {
        if self.queued.len() >= self.room {
            return Err(proto::SendError::QueueFull);
        }
        let seq = self.next;
        self.next += 1;
        self.queued.insert(seq);
        self.op(seq);
        Ok(DurableId {
            origin: ORIGIN,
            seq: DurableSeq(seq),
        })
    }
    fn cancel_durable(&mut self, _: Instant, id: DurableId) -> bool {
        let was = self.queued.remove(&id.seq.0);
        if was {
            self.op(id.seq.0);
        }
        was
    }
    fn consume_durable(
        &mut self,
        _: Instant,
        _: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
    ) -> bool {
        self.consumed.push((id, mark));
        self.op(0);
        true
    }
    fn durable_queued(&self) -> usize {
        self.queued.len()
    }
    fn poll_store(&mut self) -> Option<DurableBatch> {
        if self.ops.is_empty() {
            return None;
        }
        self.batch += 1;
        Some(DurableBatch {
            id: BatchId(self.batch),
            ops: std::mem::take(&mut self.ops),
        })
    }
    fn stored(&mut self, _: Instant, batch: BatchId) {
        self.stored = Some(batch);
    }
    fn store_failed(&mut self, _: Instant, batch: BatchId) {
        self.failed = Some(batch);
    }
}

fn restored() -> DurableRestored {
    DurableRestored {
        origin: ORIGIN,
        fresh: true,
        queued: 0,
        inbox: 0,
        send_mark: None,
        consume_mark: None,
    }
}

/// A router with a real writer on a scratch store; its reports come out of the receiver.
fn router(name: &str) -> (DurableRouter, mpsc::Receiver<StoreDone>) {
    let (tx, rx) = mpsc::channel();
    let writer = StoreWriter::spawn(DurableStore::open(&scratch(name)).unwrap(), move |d| {
        let _ = tx.send(d);
    })
    .unwrap();
    (DurableRouter::enabled(writer, restored(), []), rx)
}

const T0: Instant = Instant::from_micros(1_000_000);

fn send(
    r: &mut DurableRouter,
    ep: &mut Stand,
    wait: Option<Duration>,
) -> Pending<Result<DurableId, DurableError>> {
    let (cmd, pending) = DurableCommand::send(DurablePeer::Server, "t", "n", b"p", None, wait);
    r.on_command(ep, T0, cmd);
    pending
}

fn seq(n: u64) -> DurableId {
    DurableId {
        origin: ORIGIN,
        seq: DurableSeq(n),
    }
}

#[test]
fn a_send_is_answered_when_its_batch_is_stored_not_before() {
    let (mut r, done) = router("router-stored");
    let mut ep = Stand::new(10);
    let a = send(&mut r, &mut ep, None);
    let b = send(&mut r, &mut ep, None);
    assert!(!a.is_settled() && !b.is_settled());
    r.pump(&mut ep, T0);
    assert!(!a.is_settled(), "answered before the store said so");
    let report = done.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        report,
        StoreDone {
            last: BatchId(1),
            result: Ok(())
        }
    );
    r.on_command(&mut ep, T0, DurableCommand::done(report));
    assert_eq!(ep.stored, Some(BatchId(1)));
    assert_eq!(a.wait(Duration::ZERO), Ok(Ok(seq(1))));
    assert_eq!(b.wait(Duration::ZERO), Ok(Ok(seq(2))));
}

#[test]
fn a_failed_commit_fails_its_sends_with_the_store_error_and_tells_the_endpoint() {
    let (mut r, _done) = router("router-failed");
    let mut ep = Stand::new(10);
    let a = send(&mut r, &mut ep, None);
    r.pump(&mut ep, T0);
    let later = send(&mut r, &mut ep, None);
    r.pump(&mut ep, T0);
    let e = DurableError::Store {
        path: "x.redb".into(),
        kind: StoreErrorKind::Io,
        cause: "read-only".into(),
    };
    let failed = StoreDone {
        last: BatchId(1),
        result: Err(e.clone()),
    };
    r.on_command(&mut ep, T0, DurableCommand::done(failed));
    assert_eq!(ep.failed, Some(BatchId(1)));
    assert_eq!(a.wait(Duration::ZERO), Ok(Err(e)));
    assert!(!later.is_settled(), "batch 2 is not in that commit");
}

#[test]
fn a_full_outbox_holds_sends_back_in_order_until_room_or_their_wait_ends() {
    let (mut r, _done) = router("router-backlog");
    let mut ep = Stand::new(1);
    let _a = send(&mut r, &mut ep, None);
    let bounded = send(&mut r, &mut ep, Some(Duration::from_secs(1)));
    let patient = send(&mut r, &mut ep, None);
    r.pump(&mut ep, T0);
    assert_eq!(ep.next, 2, "only the first fitted");
    assert_eq!(r.waiter_deadline(), Some(T0 + Duration::from_secs(1)));
    let late = T0 + Duration::from_secs(2);
    r.expire(late);
    assert_eq!(
        bounded.wait(Duration::ZERO),
        Ok(Err(DurableError::QueueFull))
    );
    assert!(!patient.is_settled());
    // The receiver acknowledged the first: room again, and the patient one is queued.
    ep.queued.clear();
    r.on_client_event(ClientEvent::DurableDelivered { id: seq(1) });
    r.pump(&mut ep, late);
    assert_eq!(ep.next, 3);
}

#[test]
fn a_relay_that_does_not_fit_leaves_nothing_sent_and_nothing_consumed() {
    let (mut r, _done) = router("router-relay");
    let mut ep = Stand::new(1);
    let d = DurableDelivery {
        id: DurableId {
            origin: OriginId(7),
            seq: DurableSeq(3),
        },
        from: DurablePeer::Client(pavillion_proto::PeerId::Client(pavillion_proto::ClientId(
            [1; 16],
        ))),
        message: ReceivedMessage::at_client(proto::ReceivedMessage::new(
            "0.0.0.0:0".parse().unwrap(),
            "t",
            "n",
            b"p",
            true,
        )),
        redelivered: false,
    };
    let peers = |n: u8| {
        (0..n)
            .map(|i| {
                DurablePeer::Client(pavillion_proto::PeerId::Client(pavillion_proto::ClientId(
                    [i; 16],
                )))
            })
            .collect::<Vec<_>>()
    };
    let (cmd, full) = DurableCommand::relay(&d, peers(2), Some(9));
    r.on_command(&mut ep, T0, cmd);
    assert_eq!(full.wait(Duration::ZERO), Ok(Err(DurableError::QueueFull)));
    assert!(ep.queued.is_empty() && ep.consumed.is_empty());
    let (cmd, fits) = DurableCommand::relay(&d, peers(1), Some(9));
    r.on_command(&mut ep, T0, cmd);
    assert_eq!(fits.wait(Duration::ZERO).unwrap().unwrap().len(), 1);
    assert_eq!(ep.consumed, vec![(d.id, Some(9))]);
}

#[test]
fn received_messages_wait_for_a_reader_and_a_reader_for_them() {
    let (mut r, _done) = router("router-recv");
    let mut ep = Stand::new(1);
    let message = |p: &'static [u8]| {
        proto::ReceivedMessage::new("127.0.0.1:1".parse().unwrap(), "t", "n", p, true)
    };
    let event = |p, n| ClientEvent::DurableMessage {
        id: seq(n),
        message: message(p),
        redelivered: false,
    };
    assert!(r.on_client_event(event(b"first", 1)).is_none());
    let (cmd, got) = DurableCommand::recv(Some(Duration::ZERO));
    r.on_command(&mut ep, T0, cmd);
    let got = got.wait(Duration::ZERO).unwrap().unwrap();
    assert_eq!(
        (got.from, got.message.payload()),
        (DurablePeer::Server, &b"first"[..])
    );
    let (cmd, waiting) = DurableCommand::recv(Some(Duration::from_secs(1)));
    r.on_command(&mut ep, T0, cmd);
    assert!(!waiting.is_settled());
    r.on_client_event(event(b"second", 2));
    assert_eq!(waiting.wait(Duration::ZERO).unwrap().unwrap().id, seq(2));
    let (cmd, nothing) = DurableCommand::recv(Some(Duration::from_secs(1)));
    r.on_command(&mut ep, T0, cmd);
    r.expire(T0 + Duration::from_secs(1));
    assert_eq!(nothing.wait(Duration::ZERO), Ok(None));
    // Other events pass through untouched.
    assert!(r
        .on_client_event(ClientEvent::PeerDown {
            addr: "127.0.0.1:1".parse().unwrap()
        })
        .is_some());
}

#[test]
fn a_wait_for_delivery_ends_with_the_ack_or_its_deadline() {
    let (mut r, _done) = router("router-delivered");
    let mut ep = Stand::new(10);
    let _a = send(&mut r, &mut ep, None);
    let _b = send(&mut r, &mut ep, None);
    let (cmd, first) = DurableCommand::wait_delivered(seq(1), Some(Duration::from_secs(1)));
    r.on_command(&mut ep, T0, cmd);
    let (cmd, second) = DurableCommand::wait_delivered(seq(2), Some(Duration::from_secs(1)));
    r.on_command(&mut ep, T0, cmd);
    assert!(!first.is_settled());
    r.on_client_event(ClientEvent::DurableDelivered { id: seq(1) });
    assert_eq!(first.wait(Duration::ZERO), Ok(Ok(())));
    r.expire(T0 + Duration::from_secs(1));
    assert_eq!(second.wait(Duration::ZERO), Ok(Err(DurableError::TimedOut)));
    // One not queued (acknowledged before, or never ours) is answered at once.
    let (cmd, done) = DurableCommand::wait_delivered(seq(1), Some(Duration::from_secs(1)));
    r.on_command(&mut ep, T0, cmd);
    assert_eq!(done.wait(Duration::ZERO), Ok(Ok(())));
}
