//! The server's durable messages (`features::durable`, `docs/PROTOCOL.md` §16): the commands,
//! the store hand-off, and the routing of op 37 and of its ACKs, by client identity across
//! that client's sessions.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Server, Via};
use crate::endpoint::durable::{self as route, check_durable};
use crate::endpoint::{owned, DropReason, FailReason, Outgoing, SendError, ServerEvent};
use crate::features::durable::{
    Delivery, DurableBatch, DurableFailure, DurableId, DurablePeer, DurableRecord,
    DurableRestoreError, DurableRestored, DurableSeq, PendingAck, Receive, Released, StoreIdentity,
};
use crate::features::segment::Kind;
use crate::id::PeerId;
use crate::id::{Counter, MessageId};
use crate::reliability::{InFlight, Payload};
use crate::store::BatchId;
use crate::time::Instant;
use crate::wire::durable::DurableMessage;

impl Server {
    /// Cancels a reliable or ordered message (one sent
    /// [`SendOptions::without_deadline`](crate::endpoint::SendOptions::without_deadline), or
    /// any other): it is no longer retried, and its outcome is
    /// [`ServerEvent::Failed`](crate::endpoint::ServerEvent::Failed) with
    /// [`FailReason::Cancelled`](crate::endpoint::FailReason::Cancelled). It may still have
    /// been delivered (once). False if it already has its outcome, or is unknown.
    pub fn cancel(&mut self, now: Instant, id: crate::id::MessageId) -> bool {
        self.advance(now);
        let transfer = self
            .segments
            .transfers
            .ids_where(|t| t.id == id.0 && t.kind == Kind::Message);
        if let Some(&wire) = transfer.first() {
            self.fail_transfer(wire, FailReason::Cancelled);
            self.pump(now);
            return true;
        }
        let cancellable = |e: &InFlight| {
            e.id == id.0
                && !e.internal
                && matches!(e.payload, Payload::Message(_) | Payload::Ordered(_))
        };
        let Some(addr) = self
            .sessions
            .iter()
            .find(|(_, s)| s.outbox.get(id.0).is_some_and(cancellable))
            .map(|(a, _)| a)
        else {
            return false;
        };
        let Some(e) = self
            .sessions
            .get_mut(&addr)
            .and_then(|s| s.outbox.remove_where(cancellable).pop())
        else {
            return false;
        };
        // An ordered seq is abandoned: its stream's floor moves past it, announced if need be.
        self.on_ordered_resolved(addr, &e, true);
        self.shared.events.push_back(ServerEvent::Failed {
            id: MessageId(e.id),
            reason: FailReason::Cancelled,
        });
        self.pump(now);
        true
    }

    /// The identity a durable store of this server belongs to: its static public key (every
    /// PSK-only server has the same identity).
    pub fn durable_identity(&self) -> StoreIdentity {
        let public = self.config.keys.as_ref().map(|k| k.public().as_bytes());
        StoreIdentity::server(public)
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
        self.advance(now);
        let identity = self.durable_identity();
        let restored = self.durable.enable(identity, records, &mut self.rng)?;
        for d in self.durable.take_redeliveries() {
            self.deliver_durable(&d);
        }
        self.fill_durable();
        Ok(restored)
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
        self.advance(now);
        if !self.durable.is_enabled() {
            return Err(SendError::NotDurable);
        }
        check_durable(target, name, payload)?;
        // Not sent before its batch is stored (`stored`): a crash could reuse its seq.
        self.durable
            .queue(DurablePeer::Client(to), owned(target, name, payload), mark)
    }

    /// As [`Client::cancel_durable`](crate::endpoint::Client::cancel_durable).
    pub fn cancel_durable(&mut self, now: Instant, id: DurableId) -> bool {
        self.advance(now);
        let Some((to, in_flight)) = self.durable.cancel(id.seq) else {
            return false;
        };
        if let (true, DurablePeer::Client(peer)) = (in_flight, to) {
            let seq = id.seq;
            for s in self.sessions.values_mut().filter(|s| s.peer == peer) {
                s.outbox.remove_where(|e| e.payload.durable() == Some(seq));
            }
            self.fill_durable();
            self.pump(now);
        }
        true
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
        self.advance(now);
        self.durable.consume(DurablePeer::Client(from), id, mark)
    }

    /// Forgets what we received from `peer` (a client gone for good), freeing its slot of
    /// `DurableLimits::max_senders`. A message it sends later that we had already received
    /// would be delivered again.
    pub fn forget_durable_peer(&mut self, now: Instant, peer: PeerId) {
        self.advance(now);
        self.durable.forget(DurablePeer::Client(peer));
    }

    /// Durable messages queued and not yet acknowledged or cancelled (all clients).
    pub fn durable_queued(&self) -> usize {
        self.durable.queued()
    }

    /// As [`Client::poll_store`](crate::endpoint::Client::poll_store).
    pub fn poll_store(&mut self) -> Option<DurableBatch> {
        self.durable.poll_store()
    }

    /// As [`Client::stored`](crate::endpoint::Client::stored).
    pub fn stored(&mut self, now: Instant, batch: BatchId) {
        self.advance(now);
        let released = self.durable.stored(batch);
        self.on_released(now, released);
    }

    /// As [`Client::store_failed`](crate::endpoint::Client::store_failed).
    pub fn store_failed(&mut self, now: Instant, batch: BatchId) {
        self.advance(now);
        let released = self.durable.store_failed(batch);
        self.on_released(now, released);
    }

    // ---- routing (from the receive path, the session table and the outbox) ----

    /// An op 37 from the client at `from`, fresh or a duplicate of a counter seen: the
    /// durable state decides, not the replay window. Returns whether to acknowledge it now
    /// (its record is stored already); the caller sends the ACK (rationed, for a duplicate).
    pub(super) fn on_durable(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        d: &DurableMessage<'_>,
        via: Via,
    ) -> bool {
        // A group packet may be sealed by any member holding the key: not an identity to
        // de-duplicate on (and durable messages are never multicast).
        let Some(peer) = self.sessions.get(&from).map(|s| s.peer) else {
            return false;
        };
        if via == Via::Group {
            self.shared.stats.drop(DropReason::Unexpected);
            return false;
        }
        let ack = PendingAck { to: from, counter };
        match self.durable.receive(DurablePeer::Client(peer), d, ack) {
            Receive::AckNow => true,
            Receive::Held | Receive::Waiting => false,
            Receive::Drop(reason) => {
                self.shared.stats.drop(reason);
                false
            }
        }
    }

    /// A fresh op 37: acknowledged at once only if already stored (a copy under a new counter,
    /// after a re-handshake or our restart).
    pub(super) fn on_fresh_durable(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        d: &DurableMessage<'_>,
        via: Via,
    ) {
        if self.on_durable(from, counter, d, via) {
            self.shared
                .tx
                .push_back(Outgoing::Ack { to: from, counter });
        }
    }

    /// The client acknowledged our durable message `seq` (its record is stored there).
    pub(super) fn on_durable_acked(&mut self, seq: DurableSeq) {
        if let Some((DurablePeer::Client(peer), id)) = self.durable.acked(seq) {
            self.shared
                .events
                .push_back(ServerEvent::DurableDelivered { id, peer });
        }
        // A slot in the outbox is free: the next stored message may take it.
        self.fill_durable();
    }

    /// A session with a client came up, or one ended (its durable messages went back to
    /// ready): moves every stored message to a client with a session into that session's
    /// outbox, with no deadline, as far as it has room.
    pub(super) fn fill_durable(&mut self) {
        if !self.durable.is_enabled() {
            return;
        }
        let mut peers = Vec::new();
        self.durable.ready_peers(&mut peers);
        let mut ready = Vec::new();
        for to in peers {
            let DurablePeer::Client(peer) = to else {
                continue;
            };
            // The newest session of that client, if it has several (a restart on a new port
            // while the old session lingers).
            let Some(addr) = self
                .sessions
                .iter()
                .filter(|(_, s)| s.peer == peer)
                .max_by_key(|(_, s)| s.generation)
                .map(|(a, _)| a)
            else {
                continue;
            };
            let max = self.config.limits.max_queued;
            let Some(s) = self.sessions.get_mut(&addr) else {
                continue;
            };
            let room = max.saturating_sub(s.outbox.len());
            if room == 0 {
                continue;
            }
            ready.clear();
            self.durable.take_ready(to, room, &mut ready);
            for &seq in &ready {
                let id = self.next_op_id;
                // Internal: no generic outcome event; the durable ones come from `Durable`.
                let pushed = s
                    .outbox
                    .push(id, Payload::Durable(seq), true, Instant::MAX)
                    .is_ok();
                if pushed {
                    self.next_op_id += 1;
                } else {
                    self.durable.requeue(seq);
                }
            }
            self.busy.insert(addr);
        }
    }

    /// A session ended: its durable messages are ready again for the client's next session
    /// (no `Failed` event: they are stored, and outlive sessions). Returns whether it was one.
    pub(super) fn requeue_durable(&mut self, e: &InFlight) -> bool {
        match e.payload.durable() {
            Some(seq) => {
                self.durable.requeue(seq);
                true
            }
            None => false,
        }
    }

    /// Acts on what a stored (or failed) batch released: ACKs, then deliveries; failed sends;
    /// first transmissions.
    fn on_released(&mut self, now: Instant, released: Released) {
        for d in &released.deliveries {
            if let Some(ack) = d.ack {
                self.shared.tx.push_back(Outgoing::Ack {
                    to: ack.to,
                    counter: ack.counter,
                });
            }
            self.deliver_durable(d);
        }
        for (_, id) in released.failed {
            self.shared.events.push_back(ServerEvent::DurableFailed {
                id,
                reason: DurableFailure::Store,
            });
        }
        if released.sendable {
            self.fill_durable();
        }
        self.pump(now);
    }

    fn deliver_durable(&mut self, d: &Delivery) {
        let DurablePeer::Client(peer) = d.from else {
            return;
        };
        if !d.redelivered {
            self.shared.stats.messages_received += 1;
        }
        self.shared.events.push_back(ServerEvent::DurableMessage {
            peer,
            id: d.id,
            message: route::received(d),
            redelivered: d.redelivered,
        });
    }
}
