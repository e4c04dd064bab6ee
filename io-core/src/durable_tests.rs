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
