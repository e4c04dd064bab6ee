//! The client's durable messages (`features::durable`, `docs/PROTOCOL.md` §16): the commands,
//! the store hand-off, and the routing of op 37 and of its ACKs.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::Client;
use crate::endpoint::durable::{self as route, check_durable};
use crate::endpoint::{owned, ClientCredentials, ClientEvent, FailReason, SendError};
use crate::features::durable::{
    DurableBatch, DurableFailure, DurableId, DurablePeer, DurableRecord, DurableRestoreError,
    DurableRestored, DurableSeq, PendingAck, Receive, Released, StoreIdentity,
};
use crate::features::segment::Kind;
use crate::id::Counter;
use crate::reliability::{InFlight, Payload};
use crate::store::BatchId;
use crate::time::Instant;
use crate::wire::durable::DurableMessage;

impl Client {
    /// Cancels a reliable or ordered message (one sent
    /// [`SendOptions::without_deadline`](crate::endpoint::SendOptions::without_deadline), or
    /// any other): it is no longer retried, and its outcome is
    /// [`ClientEvent::Failed`](crate::endpoint::ClientEvent::Failed) with
    /// [`FailReason::Cancelled`](crate::endpoint::FailReason::Cancelled). It may still have
    /// been delivered (once). False if it already has its outcome, or is unknown.
    pub fn cancel(&mut self, now: Instant, id: crate::id::MessageId) -> bool {
        self.advance(now);
        if self.closed {
            return false;
        }
        let transfer = self
            .segments
            .transfers
            .ids_where(|t| t.id == id.0 && t.kind == Kind::Message);
        if let Some(&wire) = transfer.first() {
            // Its segments leave the outbox with it; one `Failed`, from `fail_transfer`.
            self.fail_transfer(wire, FailReason::Cancelled);
            self.pump(now);
            return true;
        }
        let cancellable = |e: &InFlight| {
            e.id == id.0
                && !e.internal
                && matches!(e.payload, Payload::Message(_) | Payload::Ordered(_))
        };
        let Some(e) = self.outbox.remove_where(cancellable).pop() else {
            return false;
        };
        // `fail` resolves an ordered seq as abandoned, so the receiver is told to skip it.
        self.fail(e, FailReason::Cancelled);
        self.pump(now);
        true
    }

    /// The identity a durable store of this client belongs to: its client id and, for suites
    /// 2 and 3, its static public key.
    #[cfg(feature = "durable")]
    pub fn durable_identity(&self) -> StoreIdentity {
        let public = match &self.config.credentials {
            ClientCredentials::Psk(_) => None,
            ClientCredentials::Ecc { keys, .. } => Some(keys.public().as_bytes()),
            ClientCredentials::Noise { keys, .. } => keys.as_ref().map(|k| k.public().as_bytes()),
        };
        StoreIdentity::client(self.config.client_id, public)
    }

    /// Turns durable messages on, restoring them from `records` (nothing for a first start).
    /// Queued messages are sent again once a session exists; inbox messages are delivered
    /// again as [`ClientEvent::DurableMessage`](crate::endpoint::ClientEvent::DurableMessage)
    /// with `redelivered` set. From now on, drain [`Client::poll_store`] as well.
    ///
    /// # Errors
    /// [`DurableRestoreError`] when the records do not decode, belong to another identity, or
    /// durability is already on. Nothing is changed then.
    #[cfg(feature = "durable")]
    pub fn enable_durable<'a>(
        &mut self,
        now: Instant,
        records: impl IntoIterator<Item = DurableRecord<'a>>,
    ) -> Result<DurableRestored, DurableRestoreError> {
        self.advance(now);
        let identity = self.durable_identity();
        let restored = self.durable.enable(identity, records, &mut self.rng)?;
        for d in self.durable.take_redeliveries() {
            self.deliver_durable(&d);
        }
        self.fill_durable();
        if restored.queued > 0 {
            self.after_command(now);
        }
        Ok(restored)
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
    #[cfg(feature = "durable")]
    pub fn send_durable(
        &mut self,
        now: Instant,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<DurableId, SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        if !self.durable.is_enabled() {
            return Err(SendError::NotDurable);
        }
        if self.multicast {
            return Err(SendError::Unsupported);
        }
        check_durable(target, name, payload)?;
        // Not sent before its batch is stored (`stored`): a crash could reuse its seq.
        self.durable
            .queue(DurablePeer::Server, owned(target, name, payload), mark)
    }

    /// Stops retrying a durable message. It may still have been delivered (once); no event
    /// follows. False if it is not queued (already acknowledged, or unknown).
    #[cfg(feature = "durable")]
    pub fn cancel_durable(&mut self, now: Instant, id: DurableId) -> bool {
        self.advance(now);
        let Some((_, in_flight)) = self.durable.cancel(id.seq) else {
            return false;
        };
        if in_flight {
            let seq = id.seq;
            self.outbox
                .remove_where(|e| e.payload.durable() == Some(seq));
            self.fill_durable();
            self.pump(now);
        }
        true
    }

    /// The application is done with a delivered durable message from the server: it leaves
    /// the inbox and will not be delivered again after a restart. `mark`, if given, is stored
    /// with it (how far the application's own output got). False if it is not in the inbox.
    #[cfg(feature = "durable")]
    pub fn consume_durable(&mut self, now: Instant, id: DurableId, mark: Option<u64>) -> bool {
        self.advance(now);
        self.durable.consume(DurablePeer::Server, id, mark)
    }

    /// Durable messages queued and not yet acknowledged or cancelled.
    #[cfg(feature = "durable")]
    pub fn durable_queued(&self) -> usize {
        self.durable.queued()
    }

    /// The next batch of durable state to store: write it in one transaction (consecutive
    /// batches may share one), then confirm with [`Client::stored`] or
    /// [`Client::store_failed`]. Operations made between two calls land in one batch.
    #[cfg(feature = "durable")]
    pub fn poll_store(&mut self) -> Option<DurableBatch> {
        self.durable.poll_store()
    }

    /// Every batch up to `batch` is stored: acknowledgements, deliveries and first
    /// transmissions waiting on them go ahead.
    #[cfg(feature = "durable")]
    pub fn stored(&mut self, now: Instant, batch: BatchId) {
        self.advance(now);
        let released = self.durable.stored(batch);
        self.on_released(now, released);
    }

    /// The batches handed out up to `batch` could not be stored: their sends fail with
    /// [`ClientEvent::DurableFailed`](crate::endpoint::ClientEvent::DurableFailed), their
    /// received messages are not acknowledged (the sender retries).
    #[cfg(feature = "durable")]
    pub fn store_failed(&mut self, now: Instant, batch: BatchId) {
        self.advance(now);
        let released = self.durable.store_failed(batch);
        self.on_released(now, released);
    }

    // ---- routing (from the receive path, the encoder and the outbox) ----

    /// An op 37 from the server, fresh or a duplicate of a counter seen: the durable state
    /// decides, not the replay window. Acknowledged now only if its record is stored already.
    #[cfg(feature = "durable")]
    pub(super) fn on_durable(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        d: &DurableMessage<'_>,
    ) {
        let ack = PendingAck { to: from, counter };
        match self.durable.receive(DurablePeer::Server, d, ack) {
            Receive::AckNow => self.ack(from, counter),
            Receive::Held | Receive::Waiting => {}
            Receive::Drop(reason) => self.shared.stats.drop(reason),
        }
    }

    /// The server acknowledged our durable message `seq` (its record is stored there).
    #[cfg(feature = "durable")]
    pub(super) fn on_durable_acked(&mut self, seq: DurableSeq) {
        if let Some((_, id)) = self.durable.acked(seq) {
            self.shared
                .events
                .push_back(ClientEvent::DurableDelivered { id });
        }
        // A slot in the outbox is free: the next stored message may take it.
        self.fill_durable();
    }

    /// The op 37 packet of the outbox entry `seq`, sealed under counter `c` for `to`.
    #[cfg(feature = "durable")]
    pub(super) fn encode_durable(
        &self,
        to: SocketAddr,
        c: Counter,
        seq: Option<DurableSeq>,
        buf: &mut [u8],
    ) -> crate::endpoint::Encoded {
        use crate::endpoint::Encoded;
        let app = seq.and_then(|seq| route::packet(&self.durable, DurablePeer::Server, seq));
        match (app, self.tx_key_for(to)) {
            (Some(app), Some(tx)) => Encoded::from(to, crate::session::seal(tx, c, &app, buf)),
            _ => Encoded::Obsolete,
        }
    }

    /// Moves stored messages into the outbox (with no deadline), as far as it has room; the
    /// rest stay ready for the next call.
    #[cfg(feature = "durable")]
    fn fill_durable(&mut self) {
        if !self.durable.is_enabled() {
            return;
        }
        let room = self
            .config
            .limits
            .max_queued
            .saturating_sub(self.outbox.len());
        if room == 0 {
            return;
        }
        let mut ready = Vec::new();
        self.durable
            .take_ready(DurablePeer::Server, room, &mut ready);
        for seq in ready {
            let id = self.next_op_id;
            // Internal: no generic outcome event; the durable ones come from `Durable`.
            if self
                .outbox
                .push(id, Payload::Durable(seq), true, crate::time::Instant::MAX)
                .is_ok()
            {
                self.next_op_id += 1;
            } else {
                self.durable.requeue(seq);
            }
        }
    }

    /// Acts on what a stored (or failed) batch released: ACKs, then deliveries; failed sends;
    /// first transmissions.
    #[cfg(feature = "durable")]
    fn on_released(&mut self, now: Instant, released: Released) {
        for d in &released.deliveries {
            if let Some(ack) = d.ack {
                self.ack(ack.to, ack.counter);
            }
            self.deliver_durable(d);
        }
        for (_, id) in released.failed {
            self.shared.events.push_back(ClientEvent::DurableFailed {
                id,
                reason: DurableFailure::Store,
            });
        }
        if released.sendable {
            self.fill_durable();
            self.after_command(now);
        } else if !released.deliveries.is_empty() {
            self.pump(now);
        }
    }

    #[cfg(feature = "durable")]
    fn deliver_durable(&mut self, d: &crate::features::durable::Delivery) {
        if !d.redelivered {
            self.shared.stats.messages_received += 1;
        }
        self.shared.events.push_back(ClientEvent::DurableMessage {
            id: d.id,
            message: route::received(d),
            redelivered: d.redelivered,
        });
    }
}
