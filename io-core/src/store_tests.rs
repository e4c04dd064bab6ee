use super::*;
use pavillion_proto::features::durable::DurableTable;
use pavillion_proto::store::BatchId;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pav-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(table: DurableTable, key: &[u8], value: &[u8]) -> StoreOp<DurableTable> {
    StoreOp::Put {
        table,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn batch(id: u64, ops: Vec<StoreOp<DurableTable>>) -> StoreBatch<DurableTable> {
    StoreBatch {
        id: BatchId(id),
        ops,
    }
}

fn some_rows(path: &Path) {
    let store = RedbStore::<DurableTable>::open(path).unwrap();
    store
        .apply(&batch(
            1,
            vec![
                put(DurableTable::Meta, b"origin", &[7; 8]),
                put(DurableTable::Outbox, &1u64.to_be_bytes(), b"\0t\nn\np"),
            ],
        ))
        .unwrap();
}

#[test]
fn batches_round_trip_in_one_transaction_and_survive_reopening() {
    let path = scratch("round-trip").join("s.redb");
    {
        let store = RedbStore::<DurableTable>::open(&path).unwrap();
        store
            .apply_all(&[
                batch(1, vec![put(DurableTable::Meta, b"next_seq", &[2])]),
                batch(
                    2,
                    vec![
                        put(DurableTable::Inbox, b"k", b"v"),
                        put(DurableTable::Meta, b"next_seq", &[3]),
                        StoreOp::Delete {
                            table: DurableTable::Inbox,
                            key: b"k".to_vec(),
                        },
                    ],
                ),
            ])
            .unwrap();
    }
    let records = RedbStore::<DurableTable>::open(&path)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(
        records.0,
        vec![(DurableTable::Meta, b"next_seq".to_vec(), vec![3])]
    );
    assert_eq!(records.get(DurableTable::Meta, b"next_seq"), Some(&[3][..]));
}

#[test]
fn a_new_store_leaves_no_temporary_file_and_holds_its_format_row_apart() {
    let dir = scratch("fresh");
    let path = dir.join("s.redb");
    let store = RedbStore::<DurableTable>::open(&path).unwrap();
    assert!(store.load().unwrap().0.is_empty());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("s.redb")]);
}

#[test]
fn a_second_handle_on_an_open_store_is_refused_as_in_use() {
    let path = scratch("locked").join("s.redb");
    let _first = RedbStore::<DurableTable>::open(&path).unwrap();
    let err = RedbStore::<DurableTable>::open(&path).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InUse);
    assert!(err.to_string().contains("s.redb"), "{err}");
}

/// Opening a damaged file fails, names the file, and leaves every byte as it was.
fn refused_untouched(path: &Path) {
    let before = std::fs::read(path).unwrap();
    let err = RedbStore::<DurableTable>::open(path).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(path).unwrap(), before, "the file was changed");
}

#[test]
fn a_truncated_store_is_an_error_at_open_and_is_left_untouched() {
    let dir = scratch("truncated");
    let path = dir.join("s.redb");
    some_rows(&path);
    let full = std::fs::read(&path).unwrap();
    for keep in [0, 100, full.len() / 2] {
        std::fs::write(&path, &full[..keep]).unwrap();
        refused_untouched(&path);
    }
}

#[test]
fn a_corrupt_store_is_an_error_at_open_and_is_left_untouched() {
    let dir = scratch("corrupt");
    let path = dir.join("s.redb");
    some_rows(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    // The header (magic, god byte, both commit slots): garbage there is no store at all.
    for b in bytes.iter_mut().take(512) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    refused_untouched(&path);
    std::fs::write(&path, b"not a store, just text\n").unwrap();
    refused_untouched(&path);
}

#[test]
fn a_store_of_a_later_format_is_refused() {
    let path = scratch("format").join("s.redb");
    drop(RedbStore::<DurableTable>::open(&path).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(definition(FORMAT_TABLE)).unwrap();
            t.insert(FORMAT_KEY, (FORMAT_VERSION + 1).to_le_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = RedbStore::<DurableTable>::open(&path).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
}
