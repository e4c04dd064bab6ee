//! The server's side of suite 3 batching (`docs/PROTOCOL.md` §17): runs of messages sharing a
//! counter when first sent, batches and op 39 received, and ACKs and unreliable messages
//! coalesced when a datagram is sealed. Suites 1 and 2 never get here.

use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use arrayvec::ArrayVec;

use super::{take, Server, ServerSession, Via};
use crate::endpoint::batch as coalesce;
use crate::endpoint::{DropReason, Encoded, Outgoing, Stats};
use crate::features::ack_delay::{ack_delay, MAX_ACK_DELAY_CEILING};
use crate::features::batch::{frame_len, Run};
use crate::id::Counter;
use crate::id::PeerId;
use crate::session::TxKey;
use crate::time::Instant;
use crate::wire::batch::{Acks, Batch, Frame};
use crate::wire::App;

/// Whether a session batches: suite 3 pairwise sessions only.
pub(super) fn batches(s: &ServerSession) -> bool {
    matches!(s.tx_key, TxKey::Noise { .. })
}

/// Records a due transmission of `id` on `s`: a first one takes a counter, or shares the open
/// run's; a retransmission is backed off. Returns whether to queue the datagram (a run's
/// later entries, and the other entries of a run being retransmitted, go with the first).
pub(super) fn on_due(
    s: &mut ServerSession,
    run: &mut Run,
    stats: &mut Stats,
    addr: SocketAddr,
    id: u64,
    now: Instant,
) -> bool {
    let Some(e) = s.outbox.get(id) else {
        return false;
    };
    if let Some(c) = e.counter {
        s.outbox.on_retransmit(id, now, &s.rtt);
        if run.retransmitted(c) {
            return false;
        }
        stats.retransmissions += 1;
        return true;
    }
    let len = frame_len(&e.payload).filter(|_| batches(s));
    if let Some(c) = len.and_then(|l| run.join(l)) {
        s.outbox.on_first_transmit(id, c, vec![addr], now, &s.rtt);
        return false;
    }
    if batches(s)
        && (!s.outbox.may_take_counter() || s.outbox.counter_budget(Counter(s.tx_counter)) == 0)
    {
        // Handed out for a run that closed, and every counter is in flight: it waits, and
        // so does every later one (the run stays closed).
        run.close();
        return false;
    }
    let c = take(&mut s.tx_counter);
    run.start(c, len);
    s.outbox.on_first_transmit(id, c, vec![addr], now, &s.rtt);
    true
}

impl Server {
    /// Handles a suite 3 batch (op 38) or op 39 received over the suite 3 session of `peer`
    /// at `from` (the caller checked both); `false` if `plain` is neither, for the caller to
    /// parse as before.
    pub(super) fn on_batched(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        plain: &[u8],
    ) -> bool {
        if !coalesce::is_batch_opcode(plain) {
            return false;
        }
        if let Ok(acks) = Acks::parse(plain) {
            self.on_acks(now, from, &acks);
            return true;
        }
        // Parsed once, whole, before any frame acts: a bad batch has no effect.
        let mut frames = ArrayVec::new();
        let more = match Batch::parse_into(plain, &mut frames) {
            Ok(more) => more,
            Err(e) => {
                self.shared.stats.drop(DropReason::from_wire(e));
                return true;
            }
        };
        if !self.batch_fits_handoff(from, counter, crate::wire::batch::frame_plaintexts(plain)) {
            return true;
        }
        let queued = self.shared.tx.len();
        for &frame in &frames {
            // Each frame acts as the packet it would be alone, under the batch's counter. No
            // batchable frame ends the session, so it is still there for the next one.
            match frame {
                Frame::Acks(acks) => self.on_acks(now, from, &acks),
                Frame::App(app) => self.on_app(now, from, peer, counter, app, Via::Session),
            }
        }
        coalesce::dedup_acks(&mut self.shared.tx, queued, from, counter);
        self.hold_batch_ack(queued, from, counter);
        if let Some(s) = self.sessions.get(&from).filter(|_| more) {
            let hold = coalesce::Hold {
                delayed: &mut self.delayed_acks,
                delay: ack_delay(self.config.limits.max_ack_delay, &s.rtt),
                threshold: self.config.limits.ack_eliciting_threshold,
            };
            let stats = &mut self.shared.stats;
            coalesce::hold_ack(hold, &mut self.shared.tx, queued, from, counter, now, stats);
        }
        true
    }

    /// Every counter an op 39 frame acknowledges.
    fn on_acks(&mut self, now: Instant, from: SocketAddr, acks: &Acks) {
        for c in coalesce::acked_counters(acks) {
            self.on_acked_quietly(now, from, c);
        }
    }

    /// An ACK carried in op 39: as op 2, but a counter that is no longer ours to wait for
    /// (a range spans what was acknowledged before) is not a drop.
    fn on_acked_quietly(&mut self, now: Instant, from: SocketAddr, c: Counter) {
        let known = self
            .sessions
            .get(&from)
            .is_some_and(|s| s.outbox.find_counter(c).is_some());
        if known {
            self.on_acked(now, from, c);
        }
    }

    /// A duplicate batch: acknowledged again if it carried a reliable frame, within the
    /// session's allowance for replies to duplicates. `false` if `plain` is not a batch.
    pub(super) fn on_duplicate_batch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        plain: &[u8],
    ) -> bool {
        let Some(s) = self.sessions.get_mut(&from).filter(|s| batches(s)) else {
            return false;
        };
        if !coalesce::is_batch_opcode(plain) {
            return false;
        }
        if coalesce::needs_ack(plain) {
            if s.duplicates.take(now, crate::wire::SESSION_OVERHEAD + 9) {
                self.shared
                    .tx
                    .push_back(Outgoing::Ack { to: from, counter });
            } else {
                self.shared.stats.duplicate_replies_withheld += 1;
            }
        }
        true
    }

    /// Seals `out` with what may ride along, if its session batches and anything does;
    /// `None` leaves `out` to the one-packet encoder.
    pub(super) fn encode_coalesced(&mut self, out: &Outgoing, buf: &mut [u8]) -> Option<Encoded> {
        let to = match out {
            Outgoing::Ack { to, .. }
            | Outgoing::Unreliable { to, .. }
            | Outgoing::Reliable { to, .. } => *to,
            _ => return None,
        };
        let s = self.sessions.get_mut(&to).filter(|s| batches(s))?;
        let (riders, more_queued) = coalesce::peek(&self.shared.tx, to);
        let riders = riders || self.delayed_acks.holds(to);
        let status = self.config.status;
        let mut lead: Vec<App<'_>> = Vec::new();
        let mut lead_ack = None;
        let counter = match out {
            Outgoing::Reliable { id, .. } => {
                let c = s.outbox.get(*id).and_then(|e| e.counter)?;
                self.run.sealed(c);
                let run = s.outbox.run(c);
                // Only a run of plain messages batches; a lone one without riders is as before.
                lead.extend(
                    run.filter(|e| frame_len(&e.payload).is_some())
                        .filter_map(|e| e.payload.as_app()),
                );
                if lead.is_empty() || (lead.len() == 1 && !riders) {
                    return None;
                }
                c
            }
            _ if !riders => return None,
            Outgoing::Ack { counter, .. } => {
                lead_ack = Some(*counter);
                take(&mut s.tx_counter)
            }
            Outgoing::Unreliable { message, .. } => {
                lead.push(message.as_app(false));
                take(&mut s.tx_counter)
            }
            _ => return None,
        };
        let lead_len = lead.iter().map(App::buffer_len).sum();
        let (room, frames) = coalesce::room_after(lead_len, lead.len());
        let mut taken = coalesce::take_riders(&mut self.shared.tx, to, room, frames);
        taken.push_ack(lead_ack);
        taken.push_held(self.delayed_acks.take(to));
        let more = s.outbox.has_unsent() || more_queued;
        let sealed = coalesce::seal(
            &s.tx_key,
            counter,
            more,
            &lead,
            taken,
            status,
            &mut self.shared.tx,
            to,
            &mut self.shared.stats,
            buf,
        );
        if more && matches!(out, Outgoing::Reliable { .. }) {
            // The receiver may hold its ACK: the retry allows for it (§17.4).
            s.outbox.delay_retries(counter, MAX_ACK_DELAY_CEILING);
        }
        Some(Encoded::from(to, sealed))
    }
}
