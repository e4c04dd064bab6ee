//! The shape of durable state that a role hands its driver: batches of table operations the
//! driver writes atomically, and the records it reads back at start.
//!
//! `proto` never touches storage. A role that keeps durable state (the durable messages of
//! `features::durable`, and the authority) queues [`StoreOp`]s; the driver takes them as
//! [`StoreBatch`]es, writes each batch in one transaction of its store (in order: it may merge
//! consecutive batches into one transaction), and confirms the last one written. Confirming
//! batch `n` confirms every batch before it. What depends on a record (an acknowledgement, a
//! transmission) waits for that confirmation, so a crash at any point leaves the store
//! consistent with what peers were told.
//!
//! The table type names the role's tables: a driver's store creates one table per
//! [`Table::ALL`] entry, named by [`Table::name`].

use alloc::vec::Vec;
use core::fmt::Debug;

/// The tables of one role's stored state.
pub trait Table: Copy + Debug + Eq + Ord + 'static {
    /// Every table, in a fixed order.
    const ALL: &'static [Self];
    /// The table's name in a store: stable, lower case, never reused for another meaning.
    fn name(self) -> &'static str;
}

/// Identifies a [`StoreBatch`]; they count up from 1 within one run of a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

/// One change to the stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp<T> {
    /// Insert or replace.
    Put {
        /// Which table.
        table: T,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove (nothing if absent).
    Delete {
        /// Which table.
        table: T,
        /// Key bytes.
        key: Vec<u8>,
    },
}

/// Changes the driver must write in one atomic transaction, then confirm. Nothing that
/// depends on them is acted on before that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreBatch<T> {
    /// Which batch.
    pub id: BatchId,
    /// Its changes, in order.
    pub ops: Vec<StoreOp<T>>,
}

/// A record read back from the store at start.
#[derive(Clone, Copy, Debug)]
pub struct StoredRecord<'a, T> {
    /// Which table.
    pub table: T,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
}
