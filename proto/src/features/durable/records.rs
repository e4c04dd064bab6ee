//! Encoding of the durable tables' keys and values, and the journal of operations on their
//! way to the store.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::DurableOp;
use crate::store::BatchId;

/// The `meta` table's keys.
pub mod keys {
    /// [`StoreIdentity`](super::super::StoreIdentity), 32 bytes.
    pub const IDENTITY: &[u8] = b"identity";
    /// Our [`OriginId`](super::super::OriginId), u64 LE.
    pub const ORIGIN: &[u8] = b"origin";
    /// The next seq to assign, u64 LE.
    pub const NEXT_SEQ: &[u8] = b"next_seq";
    /// The application's mark stored with its last send, u64 LE.
    pub const SEND_MARK: &[u8] = b"send_mark";
    /// The application's mark stored with its last consume, u64 LE.
    pub const CONSUME_MARK: &[u8] = b"consume_mark";
}

/// Operations not yet in a batch, and batches handed out and not yet confirmed.
#[derive(Debug, Default)]
pub(super) struct Journal {
    pub(super) pending: Vec<DurableOp>,
    pub(super) in_flight: VecDeque<BatchId>,
    pub(super) next: u64,
}
