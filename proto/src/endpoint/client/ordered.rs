//! The client's routing for ordered delivery (op 36): queueing ordered sends under its one
//! stream table, resolving them as they are acknowledged or abandoned, and feeding received
//! op 36 packets (fresh or duplicate) to the receiver; the rules are
//! [`features::ordered`](crate::features::ordered)'s.

use core::net::SocketAddr;

use crate::features::ordered;
use crate::id::Counter;
use crate::reliability::{InFlight, OwnedMessage};
use crate::time::Instant;
use crate::wire::ordered::OrderedMessage;

use super::super::{ClientEvent, SendError};
use super::Client;

impl Client {
    /// Queues an ordered message; its seq is the next of its target's stream.
    pub(super) fn push_ordered(
        &mut self,
        message: OwnedMessage,
        deadline: Instant,
    ) -> Result<(), SendError> {
        let rng = &mut self.rng;
        let tx = self
            .ordered_tx
            .get_or_insert_with(|| ordered::new_sender(rng));
        let payload = ordered::message_payload(tx, message);
        self.outbox
            .push(self.next_op_id, payload, false, deadline)
            .map_err(|refused| {
                ordered::refused(tx, &refused);
                SendError::QueueFull
            })
    }

    /// An exchange left the outbox: acknowledged, or `abandoned` (deadline, failure). Queues
    /// the floor announcement its stream may need.
    pub(super) fn on_ordered_resolved(&mut self, e: &InFlight, abandoned: bool) {
        if self.closed {
            // Nothing more goes out: `close` fails everything in the outbox.
            return;
        }
        let Some(announce) = ordered::resolve(self.ordered_tx.as_mut(), e, abandoned) else {
            return;
        };
        let deadline = self.shared.last_now + self.config.limits.default_timeout;
        if self
            .outbox
            .push(self.next_op_id, announce, true, deadline)
            .is_ok()
        {
            self.next_op_id += 1;
        }
    }

    /// An op 36 packet from the server at `addr` (`from` is where it came from), fresh or a
    /// duplicate: acknowledged unless the receiver refuses to hold it.
    pub(super) fn on_ordered(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        o: &OrderedMessage<'_>,
    ) {
        let mut out = core::mem::take(&mut self.ordered_out);
        let limits = &self.config.limits.ordered;
        match self.ordered_rx.on_message(now, limits, addr, o, &mut out) {
            Ok(_) => self.ack(from, counter),
            Err(reason) => self.shared.stats.drop(reason),
        }
        self.deliver_ordered(&mut out);
        self.ordered_out = out;
    }

    /// When an ordered stream goes idle.
    pub(super) fn ordered_due(&self) -> Option<Instant> {
        self.ordered_rx.next_expiry(&self.config.limits.ordered)
    }

    /// Forgets idle streams, delivering what they held.
    pub(super) fn on_ordered_timer(&mut self, now: Instant) {
        let mut out = core::mem::take(&mut self.ordered_out);
        self.ordered_rx
            .expire(now, &self.config.limits.ordered, &mut out);
        self.deliver_ordered(&mut out);
        self.ordered_out = out;
    }

    fn deliver_ordered(&mut self, out: &mut alloc::vec::Vec<super::super::ReceivedMessage>) {
        for m in out.drain(..) {
            self.shared.stats.messages_received += 1;
            self.shared.events.push_back(ClientEvent::Message(m));
        }
    }
}
