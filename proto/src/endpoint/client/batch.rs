//! The client's side of suite 3 batching (`docs/PROTOCOL.md` §17): runs of messages sharing a
//! counter when first sent, batches and op 39 received, and ACKs and unreliable messages
//! coalesced when a datagram is sealed. Suites 1 and 2 and multicast never get here.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::Client;
use crate::endpoint::batch as coalesce;
use crate::endpoint::{DropReason, Encoded, Outgoing};
use crate::features::ack_delay::{ack_delay, MAX_ACK_DELAY_CEILING};
use crate::features::batch::{frame_len, Run};
use crate::handshake::noise_initiator::NoiseSlot;
use crate::id::Counter;
use crate::session::TxKey;
use crate::time::Instant;
use crate::wire::batch::Acks;
use crate::wire::App;

impl Client {
    /// Whether this client batches what it sends: suite 3, one server (group sends never
    /// batch).
    pub(super) fn batches(&self) -> bool {
        !self.multicast && matches!(self.sealer, Some(TxKey::Noise { .. }))
    }

    /// Whether this client parses ops 38 and 39: any suite 3 client, since every suite 3
    /// server batches what it sends over a pairwise session, a group member's included.
    fn reads_batches(&self) -> bool {
        self.noise.live().is_some()
    }

    /// Records a due transmission of `id`: a first one takes a counter, or shares the open
    /// run's; a retransmission is backed off. Returns whether to queue the datagram (a run's
    /// later entries, and the other entries of a run being retransmitted, go with the first).
    pub(super) fn on_due(&mut self, now: Instant, run: &mut Run, id: u64) -> bool {
        let unsent = self.outbox.get(id).filter(|e| e.counter.is_none());
        let len = unsent
            .and_then(|e| frame_len(&e.payload))
            .filter(|_| self.batches());
        let expected = match unsent.map(|e| e.payload.transfer()) {
            Some(Some(wire)) => Some(self.segment_expected(now, wire)),
            Some(None) => unsent.map(|e| self.expected_for(now, &e.payload)),
            None => None,
        };
        let Some(expected) = expected else {
            self.outbox.on_retransmit(id, now, &self.rtt);
            let c = self.outbox.get(id).and_then(|e| e.counter);
            if c.is_some_and(|c| run.retransmitted(c)) {
                return false;
            }
            self.shared.stats.retransmissions += 1;
            return true;
        };
        if let Some(c) = len.and_then(|l| run.join(l)) {
            self.outbox
                .on_first_transmit(id, c, expected, now, &self.rtt);
            return false;
        }
        if self.batches() && (!self.outbox.may_take_counter() || self.counter_budget() == 0) {
            // Handed out for a run that closed, and every counter is in flight: it waits,
            // and so does every later one (the run stays closed).
            run.close();
            return false;
        }
        let c = self.take_counter();
        run.start(c, len);
        self.outbox
            .on_first_transmit(id, c, expected, now, &self.rtt);
        true
    }

    /// Handles a suite 3 batch (op 38) or op 39; `false` if `plain` is neither (or this client
    /// does not batch), for the caller to parse as before.
    pub(super) fn on_batched(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        plain: &[u8],
    ) -> bool {
        if !self.reads_batches() || !coalesce::is_batch_opcode(plain) {
            return false;
        }
        if let Ok(acks) = Acks::parse(plain) {
            for c in coalesce::acked_counters(&acks) {
                if self.outbox.find_counter(c).is_some() {
                    self.on_ack(now, addr, c);
                } else if !self.on_group_ack(now, addr, c) {
                    // Not ours to wait for any more (a range spans what was acknowledged
                    // before): not a drop.
                    self.on_sub_ack(now, addr, c);
                }
            }
            return true;
        }
        let (more, frames) = match coalesce::frames(plain) {
            Ok(f) => f,
            Err(e) => {
                self.shared.stats.drop(DropReason::from_wire(e));
                return true;
            }
        };
        let plaintexts = crate::wire::batch::frame_plaintexts(plain);
        if !self.batch_fits_handoff(addr, counter, plaintexts) {
            return true;
        }
        let queued = self.shared.tx.len();
        for frame in frames {
            // Each frame acts as the packet it would be alone, under the batch's counter.
            self.on_opened(now, from, addr, counter, Ok(frame), false);
        }
        coalesce::dedup_acks(&mut self.shared.tx, queued, from, counter);
        self.hold_batch_ack(queued, from, addr, counter);
        if more && self.batches() {
            let hold = coalesce::Hold {
                delayed: &mut self.delayed_acks,
                delay: ack_delay(self.config.limits.max_ack_delay, &self.rtt),
                threshold: self.config.limits.ack_eliciting_threshold,
            };
            let stats = &mut self.shared.stats;
            coalesce::hold_ack(hold, &mut self.shared.tx, queued, from, counter, now, stats);
        }
        true
    }

    /// A duplicate batch: acknowledged again if it carried a reliable frame. `false` if
    /// `plain` is not a batch.
    pub(super) fn on_duplicate_batch(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        plain: &[u8],
    ) -> bool {
        if !self.reads_batches() || !coalesce::is_batch_opcode(plain) {
            return false;
        }
        if coalesce::needs_ack(plain) {
            self.ack(from, counter);
        }
        true
    }

    /// Seals `out` with what may ride along, if this client batches and anything does; `None`
    /// leaves `out` to the one-packet encoder.
    pub(super) fn encode_coalesced(&mut self, out: &Outgoing, buf: &mut [u8]) -> Option<Encoded> {
        if !self.batches() {
            return None;
        }
        let to = match out {
            Outgoing::Ack { to, .. }
            | Outgoing::Unreliable { to, .. }
            | Outgoing::Reliable { to, .. } => *to,
            _ => return None,
        };
        let (riders, more_queued) = coalesce::peek(&self.shared.tx, to);
        let riders = riders || self.delayed_acks.holds(to);
        let mut lead_ack = None;
        let counter = match out {
            Outgoing::Reliable { id, .. } => {
                let c = self.outbox.get(*id).and_then(|e| e.counter)?;
                self.run.sealed(c);
                let run = self.outbox.run(c);
                let n = run.filter(|e| frame_len(&e.payload).is_some()).count();
                if n == 0 || (n == 1 && !riders) {
                    return None;
                }
                c
            }
            _ if !riders => return None,
            Outgoing::Ack { counter, .. } => {
                lead_ack = Some(*counter);
                self.take_counter()
            }
            Outgoing::Unreliable { .. } => self.take_counter(),
            _ => return None,
        };
        let mut lead: Vec<App<'_>> = Vec::new();
        if let Outgoing::Unreliable { message, .. } = out {
            lead.push(message.as_app(false));
        }
        if matches!(out, Outgoing::Reliable { .. }) {
            lead.extend(
                self.outbox
                    .run(counter)
                    .filter(|e| frame_len(&e.payload).is_some())
                    .filter_map(|e| e.payload.as_app()),
            );
        }
        let lead_len = lead.iter().map(App::buffer_len).sum();
        let (room, frames) = coalesce::room_after(lead_len, lead.len());
        let mut taken = coalesce::take_riders(&mut self.shared.tx, to, room, frames);
        taken.push_ack(lead_ack);
        taken.push_held(self.delayed_acks.take(to));
        let more = self.outbox.has_unsent() || more_queued;
        let key = self.sealer.as_ref()?;
        let sealed = coalesce::seal(
            key,
            counter,
            more,
            &lead,
            taken,
            None,
            &mut self.shared.tx,
            to,
            &mut self.shared.stats,
            buf,
        );
        if more && matches!(out, Outgoing::Reliable { .. }) {
            // The receiver may hold its ACK: the retry allows for it (§17.4).
            self.outbox.delay_retries(counter, MAX_ACK_DELAY_CEILING);
        }
        Some(Encoded::from(to, sealed))
    }
}
