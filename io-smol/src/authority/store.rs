//! The authority's durable state in one redb file: a table per [`StoreTable`], each batch the
//! role hands us written in one transaction (redb commits copy-on-write, so a batch survives
//! `kill -9` and power loss whole or not at all).
//!
//! Interim: the shared store of both adapters belongs in `pavillion_io::authority`; this one
//! goes when that lands (same file layout: a table per `StoreTable::name`, raw bytes).

use std::fmt;
use std::path::Path;

use pavillion_proto::endpoint::{StoreBatch, StoreOp, StoreTable, StoredRecord};
use redb::{Database, ReadableTable, TableDefinition};

/// Why the store could not be opened, read or written.
#[derive(Debug)]
pub struct StoreError(Box<redb::Error>);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError(Box::new(e.into()))
    }
}

fn table(t: StoreTable) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(t.name())
}

/// One record read back at start.
#[derive(Debug)]
pub(crate) struct Record {
    table: StoreTable,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Record {
    pub(crate) fn as_record(&self) -> StoredRecord<'_> {
        StoredRecord {
            table: self.table,
            key: &self.key,
            value: &self.value,
        }
    }
}

/// An open store.
#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the file and reads every record.
    pub(crate) fn open(path: &Path) -> Result<(Store, Vec<Record>), StoreError> {
        let db = Database::create(path)?;
        // Every table exists from the first open on, so reading never meets a missing one.
        let w = db.begin_write()?;
        for t in StoreTable::ALL {
            w.open_table(table(t))?;
        }
        w.commit()?;
        let r = db.begin_read()?;
        let mut records = Vec::new();
        for t in StoreTable::ALL {
            for row in r.open_table(table(t))?.iter()? {
                let (k, v) = row?;
                records.push(Record {
                    table: t,
                    key: k.value().to_vec(),
                    value: v.value().to_vec(),
                });
            }
        }
        Ok((Store { db }, records))
    }

    /// Writes `batch` in one transaction.
    pub(crate) fn write(&self, batch: &StoreBatch) -> Result<(), StoreError> {
        let w = self.db.begin_write()?;
        for op in &batch.ops {
            match op {
                StoreOp::Put {
                    table: t,
                    key,
                    value,
                } => {
                    w.open_table(table(*t))?
                        .insert(key.as_slice(), value.as_slice())?;
                }
                StoreOp::Delete { table: t, key } => {
                    w.open_table(table(*t))?.remove(key.as_slice())?;
                }
            }
        }
        w.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pavillion_proto::endpoint::BatchId;

    fn put(table: StoreTable, key: &[u8], value: &[u8]) -> StoreOp {
        StoreOp::Put {
            table,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    fn rows(records: &[Record]) -> Vec<(StoreTable, Vec<u8>, Vec<u8>)> {
        records
            .iter()
            .map(|r| (r.table, r.key.clone(), r.value.clone()))
            .collect()
    }

    #[test]
    fn batches_are_read_back_after_reopening_in_their_tables() {
        let path =
            std::env::temp_dir().join(format!("pavillion-smol-store-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (store, records) = Store::open(&path).unwrap();
        assert!(records.is_empty(), "a new store is empty");
        let first = StoreBatch {
            id: BatchId(1),
            ops: vec![
                put(StoreTable::Meta, b"epoch", &7u64.to_le_bytes()),
                put(StoreTable::Members, b"m1", b"entry 1"),
                put(StoreTable::Members, b"m2", b"entry 2"),
                put(StoreTable::Lockouts, b"k", b"lock"),
            ],
        };
        store.write(&first).unwrap();
        let second = StoreBatch {
            id: BatchId(2),
            ops: vec![
                StoreOp::Delete {
                    table: StoreTable::Members,
                    key: b"m2".to_vec(),
                },
                put(StoreTable::Revoked, b"m2 key", b""),
                // A key of one table is not a key of another.
                StoreOp::Delete {
                    table: StoreTable::Meta,
                    key: b"k".to_vec(),
                },
                put(StoreTable::Members, b"m1", b"entry 1, moved"),
            ],
        };
        store.write(&second).unwrap();
        drop(store);

        let (_store, records) = Store::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            rows(&records),
            vec![
                (
                    StoreTable::Meta,
                    b"epoch".to_vec(),
                    7u64.to_le_bytes().to_vec()
                ),
                (
                    StoreTable::Members,
                    b"m1".to_vec(),
                    b"entry 1, moved".to_vec()
                ),
                (StoreTable::Revoked, b"m2 key".to_vec(), Vec::new()),
                (StoreTable::Lockouts, b"k".to_vec(), b"lock".to_vec()),
            ]
        );
        let r = records[1].as_record();
        assert_eq!(
            (r.table, r.key, r.value),
            (StoreTable::Members, &b"m1"[..], &b"entry 1, moved"[..])
        );
    }

    #[test]
    fn a_file_that_is_not_a_store_is_an_error_not_a_panic() {
        let path = std::env::temp_dir().join(format!(
            "pavillion-smol-not-a-store-{}.redb",
            std::process::id()
        ));
        std::fs::write(&path, b"not a redb file at all, just text").unwrap();
        let opened = Store::open(&path);
        let _ = std::fs::remove_file(&path);
        assert!(opened.is_err());
    }
}
