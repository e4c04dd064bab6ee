//! The server's routing for ordered delivery (op 36): one stream table per client session
//! (a client's new session starts a new epoch, since the old session's outbox failed with it),
//! resolution of ordered exchanges, and the receive path for op 36 packets from clients; the
//! rules are [`features::ordered`](crate::features::ordered)'s.

use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::features::ordered;
use crate::id::{Counter, PeerId};
use crate::reliability::{InFlight, OwnedMessage};
use crate::time::Instant;
use crate::wire::ordered::OrderedMessage;

use super::super::{ReceivedMessage, SendError, ServerEvent};
use super::{Outgoing, Server};

impl Server {
    /// Queues an ordered message to the client at `to` as exchange `id`.
    pub(super) fn push_ordered(
        &mut self,
        to: SocketAddr,
        id: u64,
        message: OwnedMessage,
        deadline: Instant,
    ) -> Result<(), SendError> {
        let s = self.sessions.get_mut(&to).ok_or(SendError::UnknownPeer)?;
        let rng = &mut self.rng;
        let tx = self
            .ordered_tx
            .entry(to)
            .or_insert_with(|| ordered::new_sender(rng));
        let payload = ordered::message_payload(tx, message);
        s.outbox
            .push(id, payload, false, deadline)
            .map_err(|refused| {
                ordered::refused(tx, &refused);
                SendError::QueueFull
            })?;
        self.busy.insert(to);
        Ok(())
    }

    /// An exchange of the session at `to` left its outbox: acknowledged, or `abandoned` at its
    /// deadline. Queues the floor announcement its stream may need.
    pub(super) fn on_ordered_resolved(&mut self, to: SocketAddr, e: &InFlight, abandoned: bool) {
        let tx = self.ordered_tx.get_mut(&to);
        let Some(announce) = ordered::resolve(tx, e, abandoned) else {
            return;
        };
        let deadline = self.shared.last_now + self.config.limits.default_timeout;
        if let Some(s) = self.sessions.get_mut(&to) {
            if s.outbox
                .push(self.next_op_id, announce, true, deadline)
                .is_ok()
            {
                self.next_op_id += 1;
                self.busy.insert(to);
            }
        }
    }

    /// An op 36 packet from the client at `from`, fresh or a duplicate. Returns whether to
    /// acknowledge it (the caller sends or, for a duplicate, rations the ACK); a refused one
    /// is counted here.
    pub(super) fn on_ordered(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer: PeerId,
        o: &OrderedMessage<'_>,
    ) -> bool {
        let mut out = core::mem::take(&mut self.ordered_out);
        let limits = &self.config.limits.ordered;
        let ack = match self.ordered_rx.on_message(now, limits, from, o, &mut out) {
            Ok(_) => true,
            Err(reason) => {
                self.shared.stats.drop(reason);
                false
            }
        };
        self.deliver_ordered(peer, &mut out);
        self.ordered_out = out;
        ack
    }

    /// A fresh op 36 packet: handled, and acknowledged unless refused.
    pub(super) fn on_fresh_ordered(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        o: &OrderedMessage<'_>,
    ) {
        if self.on_ordered(now, from, peer, o) {
            self.shared
                .tx
                .push_back(Outgoing::Ack { to: from, counter });
        }
    }

    /// When an ordered stream goes idle.
    pub(super) fn ordered_due(&self) -> Option<Instant> {
        self.ordered_rx.next_expiry(&self.config.limits.ordered)
    }

    /// Forgets idle streams, delivering what they held (to the application, under the
    /// identity of the session still at that address, if any).
    pub(super) fn on_ordered_timer(&mut self, now: Instant) {
        let mut out = core::mem::take(&mut self.ordered_out);
        self.ordered_rx
            .expire(now, &self.config.limits.ordered, &mut out);
        for m in out.drain(..) {
            // A client that is gone has nobody to attribute its messages to.
            if let Some(peer) = self.sessions.get(&m.from).map(|s| s.peer) {
                self.shared.stats.messages_received += 1;
                self.shared
                    .events
                    .push_back(ServerEvent::Message { peer, message: m });
            }
        }
        self.ordered_out = out;
    }

    fn deliver_ordered(&mut self, peer: PeerId, out: &mut Vec<ReceivedMessage>) {
        for message in out.drain(..) {
            self.shared.stats.messages_received += 1;
            self.shared
                .events
                .push_back(ServerEvent::Message { peer, message });
        }
    }
}
