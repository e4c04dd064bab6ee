//! One `redb` file holding the stored state of a role, generic over the role's tables
//! ([`pavillion_proto::store::Table`]): the authority's roster and the durable messages of a
//! client or server use the same store.
//!
//! Why `redb`: it is pure Rust (no C toolchain on a device's build host), keeps everything in
//! one file, and commits copy-on-write with checksums: a write transaction committed with
//! [`redb::Durability::Immediate`] is wholly on disk when [`RedbStore::apply`] returns, and
//! a crash at any point (`kill -9`, a power cut) leaves either it or the previous commit, never
//! a mix. A torn or corrupt file is detected when it is opened, not read silently.
//!
//! A store is never emptied behind its owner's back: [`RedbStore::open`] creates a file only
//! where none exists (initialised under a temporary name and renamed into place, so a crash
//! while creating it leaves no half-made store at `path`), and a file that exists but is not a
//! sound store is an error naming the path. The store writes one row of its own, its format
//! version, in a table of its own ([`FORMAT_TABLE`]).

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use pavillion_proto::store::{StoreBatch, StoreOp, StoredRecord, Table};
use redb::{ReadableTable, TableDefinition};

/// The table holding the store's own rows (its format version), apart from the role's.
pub const FORMAT_TABLE: &str = "pavillion_store";
/// The key of the format version in [`FORMAT_TABLE`].
pub const FORMAT_KEY: &[u8] = b"format";
/// The format version this code writes: u32 LE. A store of a later version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Why the store failed, naming its file.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {source}")]
pub struct StoreError {
    /// The store's file.
    pub path: String,
    /// What `redb` said (boxed: `redb`'s error is large, and this travels in every
    /// `Result` of the store).
    #[source]
    pub source: Box<redb::Error>,
}

/// What kind of failure a [`StoreError`] is, for an application or `pav` to say what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Another process (or another handle in this one) has the file open.
    InUse,
    /// The file is not a sound store: truncated, overwritten, of a later format, or its
    /// checksums do not match. It is left as it is.
    Corrupt,
    /// Reading or writing the file failed (permissions, a full or read-only disk).
    Io,
    /// Anything else `redb` reports.
    Other,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::InUse => "in use",
            StoreErrorKind::Corrupt => "corrupt",
            StoreErrorKind::Io => "i/o",
            StoreErrorKind::Other => "other",
        })
    }
}

impl StoreError {
    fn new(path: &Path, e: impl Into<redb::Error>) -> Self {
        StoreError {
            path: path.display().to_string(),
            source: Box::new(e.into()),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        match &*self.source {
            redb::Error::DatabaseAlreadyOpen => StoreErrorKind::InUse,
            redb::Error::Corrupted(_)
            | redb::Error::UpgradeRequired(_)
            | redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. } => StoreErrorKind::Corrupt,
            redb::Error::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                ) =>
            {
                StoreErrorKind::Corrupt
            }
            redb::Error::Io(_) | redb::Error::PreviousIo => StoreErrorKind::Io,
            _ => StoreErrorKind::Other,
        }
    }
}

/// Every stored record of a role, owned (what [`RedbStore::load`] reads and the role's
/// restore takes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records<T>(pub Vec<(T, Vec<u8>, Vec<u8>)>);

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records(Vec::new())
    }
}

impl<T: Table> Records<T> {
    /// The records as a role's restore takes them.
    pub fn iter(&self) -> impl Iterator<Item = StoredRecord<'_, T>> {
        self.0.iter().map(|(table, key, value)| StoredRecord {
            table: *table,
            key,
            value,
        })
    }

    /// The value of `key` in `table`, if stored.
    pub fn get(&self, table: T, key: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(t, k, _)| *t == table && k == key)
            .map(|(_, _, v)| v.as_slice())
    }
}

/// A role's stored state: one `redb` file, a table per entry of `T::ALL`.
pub struct RedbStore<T> {
    db: redb::Database,
    path: PathBuf,
    tables: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for RedbStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn definition(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

impl<T: Table> RedbStore<T> {
    /// Opens the store at `path`, creating it if no file is there.
    ///
    /// # Errors
    /// [`StoreError`] naming the path: the file is held by another process
    /// ([`StoreErrorKind::InUse`]), is not a sound store ([`StoreErrorKind::Corrupt`]: it is
    /// left untouched, never recreated), or cannot be read or written.
    ///
    /// # Examples
    /// ```
    /// use pavillion_io::store::RedbStore;
    /// use pavillion_proto::features::durable::DurableTable;
    ///
    /// let path = std::env::temp_dir().join(format!("pav-doc-redb-{}.redb", std::process::id()));
    /// let store = RedbStore::<DurableTable>::open(&path).unwrap();
    /// assert!(store.load().unwrap().0.is_empty());
    /// # drop(store); let _ = std::fs::remove_file(&path);
    /// ```
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = match std::fs::symlink_metadata(path) {
            Ok(_) => Self::open_existing(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create_new(path)?,
            Err(e) => return Err(StoreError::new(path, e)),
        };
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
            tables: PhantomData,
        };
        store.check_format()?;
        Ok(store)
    }

    /// An existing file: `redb` refuses one that is not a store (an empty file too, which it
    /// would otherwise initialise).
    fn open_existing(path: &Path) -> Result<redb::Database, StoreError> {
        let len = std::fs::metadata(path)
            .map_err(|e| StoreError::new(path, e))?
            .len();
        if len == 0 {
            // `redb` would make a new store in it: an empty file where a store should be is
            // a truncated store, not a fresh start.
            return Err(StoreError::new(
                path,
                redb::StorageError::Corrupted("the file is empty (truncated?)".into()),
            ));
        }
        // `redb` asserts (panics) on a file shorter than its header says, before it writes
        // anything: that is a truncated store, reported like any other corruption.
        let opened = std::panic::catch_unwind(|| redb::Database::open(path));
        match opened {
            Ok(db) => db.map_err(|e| StoreError::new(path, e)),
            Err(_) => Err(StoreError::new(
                path,
                redb::StorageError::Corrupted(
                    "the file is shorter than its header says (truncated?)".into(),
                ),
            )),
        }
    }

    /// A new store, made under a temporary name beside `path` and renamed into place.
    fn create_new(path: &Path) -> Result<redb::Database, StoreError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".creating-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let made = redb::Database::create(&tmp).map_err(|e| StoreError::new(path, e))?;
        let init = Self::init_format(&made, path);
        drop(made);
        let placed =
            init.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| StoreError::new(path, e)));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself must survive a crash; a directory that cannot be synced
            // (some filesystems) only weakens that, it does not lose data.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        redb::Database::open(path).map_err(|e| StoreError::new(path, e))
    }

    /// Writes the format row into a new store.
    fn init_format(db: &redb::Database, path: &Path) -> Result<(), StoreError> {
        let e = |e: redb::Error| StoreError::new(path, e);
        let txn = db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut t = txn
                .open_table(definition(FORMAT_TABLE))
                .map_err(|x| e(x.into()))?;
            t.insert(FORMAT_KEY, FORMAT_VERSION.to_le_bytes().as_slice())
                .map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Refuses a store written by a later format (an older file without the row is taken as
    /// version 1: the authority's stores predate it).
    fn check_format(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(definition(FORMAT_TABLE)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        let version = table
            .get(FORMAT_KEY)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec());
        match version.as_deref().map(<[u8; 4]>::try_from) {
            None => Ok(()),
            Some(Ok(v)) if u32::from_le_bytes(v) <= FORMAT_VERSION => Ok(()),
            Some(_) => Err(self.err(redb::StorageError::Corrupted(format!(
                "store format {version:?} is not one this version reads (up to {FORMAT_VERSION})"
            )))),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::new(&self.path, e)
    }

    /// Every record of every table of `T` (empty for a new store).
    ///
    /// # Errors
    /// [`StoreError`] if the file cannot be read.
    pub fn load(&self) -> Result<Records<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for &t in T::ALL {
            let tab = match txn.open_table(definition(t.name())) {
                Ok(tab) => tab,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(self.err(e)),
            };
            for row in tab.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                out.push((t, k.value().to_vec(), v.value().to_vec()));
            }
        }
        Ok(Records(out))
    }

    /// Writes `batch` in one write transaction and commits it durably before returning:
    /// after a crash the store holds all of it or none of it.
    ///
    /// # Errors
    /// [`StoreError`]; nothing of the batch is then stored.
    pub fn apply(&self, batch: &StoreBatch<T>) -> Result<(), StoreError> {
        self.write(&batch.ops)
    }

    /// Writes `batches`, in order, in **one** write transaction (group commit: one sync for
    /// everything that queued up while the previous one ran).
    ///
    /// # Errors
    /// [`StoreError`]; none of the batches is then stored.
    pub fn apply_all(&self, batches: &[StoreBatch<T>]) -> Result<(), StoreError> {
        let txn = self.begin()?;
        for b in batches {
            self.stage(&txn, &b.ops)?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Writes `ops` in one transaction (for rows of the adapter's own, outside any batch).
    ///
    /// # Errors
    /// [`StoreError`]; nothing is then stored.
    pub fn write(&self, ops: &[StoreOp<T>]) -> Result<(), StoreError> {
        let txn = self.begin()?;
        self.stage(&txn, ops)?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// A write transaction that syncs at commit (`redb`'s default, stated: the promise of
    /// [`RedbStore::apply`] rests on it).
    fn begin(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate);
        Ok(txn)
    }

    fn stage(&self, txn: &redb::WriteTransaction, ops: &[StoreOp<T>]) -> Result<(), StoreError> {
        for op in ops {
            match op {
                StoreOp::Put { table, key, value } => {
                    let mut tab = txn
                        .open_table(definition(table.name()))
                        .map_err(|e| self.err(e))?;
                    tab.insert(key.as_slice(), value.as_slice())
                        .map_err(|e| self.err(e))?;
                }
                StoreOp::Delete { table, key } => {
                    let mut tab = txn
                        .open_table(definition(table.name()))
                        .map_err(|e| self.err(e))?;
                    tab.remove(key.as_slice()).map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
