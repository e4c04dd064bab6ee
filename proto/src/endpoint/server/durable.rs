//! The server's durable messages (`features::durable`, `docs/PROTOCOL.md` §16): the commands,
//! the store hand-off, and the routing of op 37 and of its ACKs, by client identity across
//! that client's sessions.

use super::Server;
use crate::endpoint::SendError;
use crate::features::durable::{
    DurableBatch, DurableId, DurableRecord, DurableRestoreError, DurableRestored, StoreIdentity,
};
use crate::id::PeerId;
use crate::store::BatchId;
use crate::time::Instant;

impl Server {
    /// Cancels a reliable or ordered message (one sent
    /// [`SendOptions::without_deadline`](crate::endpoint::SendOptions::without_deadline), or
    /// any other): it is no longer retried, and its outcome is
    /// [`ServerEvent::Failed`](crate::endpoint::ServerEvent::Failed) with
    /// [`FailReason::Cancelled`](crate::endpoint::FailReason::Cancelled). It may still have
    /// been delivered (once). False if it already has its outcome, or is unknown.
    pub fn cancel(&mut self, now: Instant, id: crate::id::MessageId) -> bool {
        todo!("core-b")
    }

    /// The identity a durable store of this server belongs to: its static public key (every
    /// PSK-only server has the same identity).
    pub fn durable_identity(&self) -> StoreIdentity {
        todo!("core-b")
    }

    /// As [`Client::enable_durable`](crate::endpoint::Client::enable_durable).
    ///
    /// # Errors
    /// As the client's.
    pub fn enable_durable<'a>(
        &mut self,
        now: Instant,
        records: impl IntoIterator<Item = DurableRecord<'a>>,
    ) -> Result<DurableRestored, DurableRestoreError> {
        todo!("core-b")
    }

    /// Sends a durable message to the client `to`, by identity: it waits for a session with
    /// that client (whatever its address), and is retried with no deadline across its
    /// sessions and our reboots until acknowledged
    /// ([`ServerEvent::DurableDelivered`](crate::endpoint::ServerEvent::DurableDelivered)) or
    /// cancelled.
    ///
    /// # Errors
    /// As [`Client::send_durable`](crate::endpoint::Client::send_durable).
    pub fn send_durable(
        &mut self,
        now: Instant,
        to: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<DurableId, SendError> {
        todo!("core-b")
    }

    /// As [`Client::cancel_durable`](crate::endpoint::Client::cancel_durable).
    pub fn cancel_durable(&mut self, now: Instant, id: DurableId) -> bool {
        todo!("core-b")
    }

    /// As [`Client::consume_durable`](crate::endpoint::Client::consume_durable), for a message
    /// from client `from`.
    pub fn consume_durable(
        &mut self,
        now: Instant,
        from: PeerId,
        id: DurableId,
        mark: Option<u64>,
    ) -> bool {
        todo!("core-b")
    }

    /// Forgets what we received from `peer` (a client gone for good), freeing its slot of
    /// `DurableLimits::max_senders`. A message it sends later that we had already received
    /// would be delivered again.
    pub fn forget_durable_peer(&mut self, now: Instant, peer: PeerId) {
        todo!("core-b")
    }

    /// Durable messages queued and not yet acknowledged or cancelled (all clients).
    pub fn durable_queued(&self) -> usize {
        todo!("core-b")
    }

    /// As [`Client::poll_store`](crate::endpoint::Client::poll_store).
    pub fn poll_store(&mut self) -> Option<DurableBatch> {
        todo!("core-b")
    }

    /// As [`Client::stored`](crate::endpoint::Client::stored).
    pub fn stored(&mut self, now: Instant, batch: BatchId) {
        todo!("core-b")
    }

    /// As [`Client::store_failed`](crate::endpoint::Client::store_failed).
    pub fn store_failed(&mut self, now: Instant, batch: BatchId) {
        todo!("core-b")
    }
}
