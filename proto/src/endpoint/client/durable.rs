//! The client's durable messages (`features::durable`, `docs/PROTOCOL.md` §16): the commands,
//! the store hand-off, and the routing of op 37 and of its ACKs.

use super::Client;
use crate::endpoint::SendError;
use crate::features::durable::{
    DurableBatch, DurableId, DurableRecord, DurableRestoreError, DurableRestored, StoreIdentity,
};
use crate::store::BatchId;
use crate::time::Instant;

impl Client {
    /// Cancels a reliable or ordered message (one sent
    /// [`SendOptions::without_deadline`](crate::endpoint::SendOptions::without_deadline), or
    /// any other): it is no longer retried, and its outcome is
    /// [`ClientEvent::Failed`](crate::endpoint::ClientEvent::Failed) with
    /// [`FailReason::Cancelled`](crate::endpoint::FailReason::Cancelled). It may still have
    /// been delivered (once). False if it already has its outcome, or is unknown.
    pub fn cancel(&mut self, now: Instant, id: crate::id::MessageId) -> bool {
        todo!("core-b")
    }

    /// The identity a durable store of this client belongs to: its client id and, for suites
    /// 2 and 3, its static public key.
    pub fn durable_identity(&self) -> StoreIdentity {
        todo!("core-b")
    }

    /// Turns durable messages on, restoring them from `records` (nothing for a first start).
    /// Queued messages are sent again once a session exists; inbox messages are delivered
    /// again as [`ClientEvent::DurableMessage`](crate::endpoint::ClientEvent::DurableMessage)
    /// with `redelivered` set. From now on, drain [`Client::poll_store`] as well.
    ///
    /// # Errors
    /// [`DurableRestoreError`] when the records do not decode, belong to another identity, or
    /// durability is already on. Nothing is changed then.
    pub fn enable_durable<'a>(
        &mut self,
        now: Instant,
        records: impl IntoIterator<Item = DurableRecord<'a>>,
    ) -> Result<DurableRestored, DurableRestoreError> {
        todo!("core-b")
    }

    /// Sends a durable message to the server: it is stored, then retried with no deadline,
    /// across outages, re-handshakes and reboots of either side, until the server
    /// acknowledges it ([`ClientEvent::DurableDelivered`](crate::endpoint::ClientEvent::DurableDelivered)) or
    /// [`Client::cancel_durable`]. `mark`, if given, is stored with it, and read back by
    /// [`Client::enable_durable`] after a restart (how far the application's own input got).
    ///
    /// # Errors
    /// [`SendError::NotDurable`] before `enable_durable`; [`SendError::InvalidName`];
    /// [`SendError::TooLarge`] if it does not fit one datagram with its 24-byte prefix;
    /// [`SendError::QueueFull`] at `DurableLimits::max_outbox`; [`SendError::Unsupported`]
    /// in multicast mode; [`SendError::Closed`].
    pub fn send_durable(
        &mut self,
        now: Instant,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<DurableId, SendError> {
        todo!("core-b")
    }

    /// Stops retrying a durable message. It may still have been delivered (once); no event
    /// follows. False if it is not queued (already acknowledged, or unknown).
    pub fn cancel_durable(&mut self, now: Instant, id: DurableId) -> bool {
        todo!("core-b")
    }

    /// The application is done with a delivered durable message from the server: it leaves
    /// the inbox and will not be delivered again after a restart. `mark`, if given, is stored
    /// with it (how far the application's own output got). False if it is not in the inbox.
    pub fn consume_durable(&mut self, now: Instant, id: DurableId, mark: Option<u64>) -> bool {
        todo!("core-b")
    }

    /// Durable messages queued and not yet acknowledged or cancelled.
    pub fn durable_queued(&self) -> usize {
        todo!("core-b")
    }

    /// The next batch of durable state to store: write it in one transaction (consecutive
    /// batches may share one), then confirm with [`Client::stored`] or
    /// [`Client::store_failed`]. Operations made between two calls land in one batch.
    pub fn poll_store(&mut self) -> Option<DurableBatch> {
        todo!("core-b")
    }

    /// Every batch up to `batch` is stored: acknowledgements, deliveries and first
    /// transmissions waiting on them go ahead.
    pub fn stored(&mut self, now: Instant, batch: BatchId) {
        todo!("core-b")
    }

    /// The batches handed out up to `batch` could not be stored: their sends fail with
    /// [`ClientEvent::DurableFailed`](crate::endpoint::ClientEvent::DurableFailed), their
    /// received messages are not acknowledged (the sender retries).
    pub fn store_failed(&mut self, now: Instant, batch: BatchId) {
        todo!("core-b")
    }
}
