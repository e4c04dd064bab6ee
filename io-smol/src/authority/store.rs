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
