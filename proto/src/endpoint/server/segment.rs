//! The server's glue for segmented messages (`features::segment`, `docs/PROTOCOL.md` §9.7):
//! transfers of messages and answers too large for one datagram, segments and ACK ranges
//! from clients, and the events of transfer ends.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use bytes::Bytes;

use super::{Server, Via};
use crate::endpoint::event::{progress_events, transfer_end_events};
use crate::endpoint::{
    delivered_event, expired_event, fits_datagram, received_message, DropReason, Encoded,
    FailReason, Outgoing, ReassemblyUsage, SendError, ServerEvent, TransferRefusal,
};
use crate::features::segment::{self, Accepted, End, Kind, Transfer};
use crate::id::{Counter, MessageId};
use crate::reliability::{InFlight, Reply};
use crate::session;
use crate::time::Instant;
use crate::wire::segment::{
    AckRanges, RefusalCode, Segment, TransferId, ACK_RANGE_LEN, MAX_ACK_RANGES,
};
use crate::wire::{self, opcode, App};

/// Largest op 34 payload: the count byte and the most ranges.
const ACK_RANGES_BUF: usize = 1 + MAX_ACK_RANGES * ACK_RANGE_LEN;

impl Server {
    /// Queues `app` (a reliable message, or an answer, too large for a datagram) to `to` as a
    /// transfer, and returns its command id.
    pub(super) fn send_segmented(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: Kind,
        app: &App<'_>,
        deadline: Instant,
    ) -> Result<u64, SendError> {
        let len = app.buffer_len();
        if len > self.config.limits.max_message() || u32::try_from(len).is_err() {
            return Err(SendError::TooLarge);
        }
        let Some(s) = self.sessions.get(&to) else {
            return Err(SendError::UnknownPeer);
        };
        let queued = self.segments.transfers.count_to(to);
        if queued + s.outbox.len() >= self.config.limits.max_queued {
            return Err(SendError::QueueFull);
        }
        let mut plaintext = alloc::vec![0u8; len];
        app.emit(&mut plaintext)
            .map_err(|_| SendError::InvalidName)?;
        let id = self.next_op_id;
        self.next_op_id += 1;
        let wire_id = TransferId(self.rng.next_u64());
        let target = None::<String>;
        let t = Transfer::new(
            id,
            wire_id,
            kind,
            to,
            target,
            Bytes::from(plaintext),
            segment::segment_len(wire::SESSION_OVERHEAD),
            deadline,
        );
        self.segments.transfers.start(t);
        self.busy.insert(to);
        self.pump(now);
        Ok(id)
    }

    /// Whether the cached answer to `call` at `to` is too large for one datagram; then it goes
    /// as a transfer, started here unless one is under way.
    pub(super) fn answer_segmented(&mut self, now: Instant, to: SocketAddr, call: Counter) -> bool {
        let Some(a) = self.sessions.get(&to).and_then(|s| s.calls.answer(call)) else {
            return false;
        };
        if fits_datagram(11 + a.data.len()) {
            return false;
        }
        let under_way = self
            .segments
            .transfers
            .ids_where(|t| t.to == to && t.kind == Kind::Answer(call));
        if under_way.is_empty() {
            let data = a.data.clone();
            let app = App::RpcResponse {
                call,
                status: a.status,
                data: &data,
            };
            let deadline = now + self.config.rpc_cache_ttl;
            // Refused (queue full, or larger than we send): the caller times out.
            let _ = self.send_segmented(now, to, Kind::Answer(call), &app, deadline);
        }
        true
    }

    /// A segment of a busy session reached its deadline: its transfer ends with its other
    /// segments.
    pub(super) fn on_segment_expired(&mut self, to: SocketAddr, wire: TransferId, e: InFlight) {
        let mut rest = match self.sessions.get_mut(&to) {
            Some(s) => s
                .outbox
                .remove_where(|x| x.payload.transfer() == Some(wire)),
            None => Vec::new(),
        };
        rest.push(e);
        if let Some(end) = self.segments.transfers.on_expired(wire, &rest) {
            self.on_transfer_end(end);
        }
    }

    /// Transfers past their deadline (from the `Segments` timer).
    pub(super) fn expire_transfers(&mut self, now: Instant) {
        for wire in self.segments.transfers.past_deadline(now) {
            let to = self.segments.transfers.get(wire).map(|t| t.to);
            let rest = match to.and_then(|a| self.sessions.get_mut(&a)) {
                Some(s) => s
                    .outbox
                    .remove_where(|x| x.payload.transfer() == Some(wire)),
                None => Vec::new(),
            };
            if let Some(end) = self.segments.transfers.on_expired(wire, &rest) {
                self.on_transfer_end(end);
            }
        }
    }

    /// Frees partial messages without progress, telling their senders (op 35, `Expired`).
    pub(super) fn expire_partials(&mut self, now: Instant) {
        for (to, transfer) in self.segments.reassembly.expire(now) {
            self.shared.tx.push_back(Outgoing::Refuse {
                to,
                transfer,
                reason: TransferRefusal::Expired,
            });
        }
    }

    fn on_transfer_end(&mut self, end: End) {
        transfer_end_events(end, &mut self.shared.events);
    }

    /// Ends a transfer with a failure (refused, or its session ended).
    pub(super) fn fail_transfer(&mut self, wire: TransferId, reason: FailReason) {
        let Some(t) = self.segments.transfers.remove(wire) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&t.to) {
            s.outbox
                .remove_where(|x| x.payload.transfer() == Some(wire));
        }
        if t.kind == Kind::Message {
            self.shared.events.push_back(ServerEvent::Failed {
                id: MessageId(t.id),
                reason,
            });
        }
    }

    /// The session at `addr` ended: its transfers fail, its partial messages are freed.
    pub(super) fn end_segments(&mut self, addr: SocketAddr, reason: FailReason) {
        for wire in self.segments.transfers.ids_where(|t| t.to == addr) {
            self.fail_transfer(wire, reason);
        }
        self.segments.reassembly.forget_peer(addr);
    }

    /// `Progress` for every message transfer whose acknowledged bytes advanced (from `pump`).
    pub(super) fn emit_progress(&mut self) {
        progress_events(&mut self.segments.transfers, &mut self.shared.events);
    }

    /// An ACK (op 2, or one counter of op 34) from the client at `from`.
    /// An ACK of `acked`: completes every exchange sent under it (one, or a suite 3 batch's
    /// run, `features::batch`).
    pub(super) fn on_acked(&mut self, now: Instant, from: SocketAddr, acked: Counter) {
        while self.on_acked_one(now, from, acked)
            && self
                .sessions
                .get(&from)
                .is_some_and(|s| s.outbox.find_counter(acked).is_some())
        {}
    }

    /// Completes the first exchange sent under `acked`; `true` if it was completed.
    fn on_acked_one(&mut self, now: Instant, from: SocketAddr, acked: Counter) -> bool {
        let Some(s) = self.sessions.get_mut(&from) else {
            return false;
        };
        match s.outbox.on_reply(
            acked,
            false,
            from,
            now,
            &mut s.rtt,
            &mut self.shared.stats.rtt,
        ) {
            Reply::Complete(e) => {
                let more = self.segments.transfers.count_to(from);
                if s.outbox.is_empty() && more == 0 {
                    self.busy.remove(&from);
                }
                if let Some(seq) = e.payload.durable() {
                    self.on_durable_acked(seq);
                } else if e.payload.transfer().is_some() {
                    if let Some(end) = self.segments.transfers.on_complete(&e) {
                        self.on_transfer_end(end);
                    }
                } else {
                    self.on_ordered_resolved(from, &e, false);
                    if !e.internal {
                        self.shared.events.push_back(delivered_event(e));
                    }
                }
            }
            Reply::Partial => return false,
            Reply::Unknown => {
                self.shared.stats.drop(DropReason::Unexpected);
                return false;
            }
        }
        true
    }

    /// Op 34: one ACK per counter of ours in flight in the ranges.
    pub(super) fn on_ack_ranges(&mut self, now: Instant, from: SocketAddr, r: AckRanges<'_>) {
        let mut counters = core::mem::take(&mut self.segments.acked);
        counters.clear();
        if let Some(s) = self.sessions.get(&from) {
            for (first, count) in r.iter() {
                s.outbox.acked_in_range(first, count, &mut counters);
            }
        }
        for &c in &counters {
            self.on_acked(now, from, c);
        }
        self.segments.acked = counters;
    }

    /// Op 35: the client refuses one of our transfers.
    pub(super) fn on_refused(&mut self, from: SocketAddr, transfer: TransferId, code: RefusalCode) {
        if self
            .segments
            .transfers
            .get(transfer)
            .is_none_or(|t| t.to != from)
        {
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        self.fail_transfer(transfer, FailReason::Refused(segment::refusal(code)));
    }

    /// Op 33, fresh: store it, acknowledge what was accepted, refuse the rest, and dispatch a
    /// whole plaintext.
    pub(super) fn on_segment(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        seg: &Segment<'_>,
        via: Via,
    ) {
        let accepted = self.segments.reassembly.on_segment(now, from, counter, seg);
        match &accepted {
            Accepted::Refused(reason) => {
                self.shared.stats.drop(DropReason::refused(*reason));
                self.refuse_transfer(from, seg.transfer, *reason);
            }
            Accepted::Again => {
                self.shared.stats.drop(DropReason::SegmentOfDelivered);
                self.owe_segment_ack(from, counter);
            }
            Accepted::Stored | Accepted::Complete { .. } => self.owe_segment_ack(from, counter),
        }
        if let Accepted::Complete { plaintext, first } = accepted {
            self.dispatch_whole(now, from, first, &plaintext, via);
        }
    }

    /// Op 33 under a counter already seen: acknowledged again if held (and, for a call's first
    /// segment, its answer resent as for a retried call), refused again if not; paid from the
    /// session's allowance for replies to duplicates.
    pub(super) fn on_segment_duplicate(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        seg: &Segment<'_>,
        via: Via,
    ) {
        let accepted = self.segments.reassembly.on_duplicate(from, seg);
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        if !s.duplicates.take(now, wire::SESSION_OVERHEAD + 11) {
            self.shared.stats.duplicate_replies_withheld += 1;
            return;
        }
        match accepted {
            Accepted::Refused(reason) => self.refuse_transfer(from, seg.transfer, reason),
            _ => {
                self.owe_segment_ack(from, counter);
                let is_call = seg.offset == 0 && seg.data.first() == Some(&opcode::RPC_CALL);
                if is_call && accepted == Accepted::Again {
                    // A retried segmented call: as a retried one-datagram call (the function
                    // and arguments do not matter there, only the counter).
                    self.on_duplicate(now, from, counter, &[opcode::RPC_CALL, 0, 0], via);
                }
            }
        }
    }

    fn refuse_transfer(&mut self, to: SocketAddr, transfer: TransferId, reason: TransferRefusal) {
        self.shared.tx.push_back(Outgoing::Refuse {
            to,
            transfer,
            reason,
        });
    }

    fn owe_segment_ack(&mut self, to: SocketAddr, counter: Counter) {
        if self.segments.reassembly.owe_ack(to, counter) {
            self.shared.tx.push_back(Outgoing::AckRanges { to });
        }
    }

    /// A whole plaintext from the client at `from`, dispatched as if it had arrived in one
    /// packet under `first` (the counter of its segment at offset 0): ops 1 and 4.
    fn dispatch_whole(
        &mut self,
        now: Instant,
        from: SocketAddr,
        first: Counter,
        plaintext: &[u8],
        _via: Via,
    ) {
        let Some(peer) = self.sessions.get(&from).map(|s| s.peer) else {
            return;
        };
        match App::parse(plaintext) {
            Ok(App::ReliableMessage(m)) => {
                if let Some(message) = received_message(from, &m, true) {
                    self.shared.stats.messages_received += 1;
                    self.shared
                        .events
                        .push_back(ServerEvent::Message { peer, message });
                }
            }
            Ok(App::RpcCall { function, args }) => self.on_call(now, from, first, function, args),
            Ok(_) => self.shared.stats.drop(DropReason::Unsupported),
            Err(e) => self.shared.stats.drop(DropReason::from_wire(e)),
        }
    }

    /// Seals op 34 (every ACK owed to `to`) or op 35; `None` for anything else.
    pub(super) fn encode_segments(&mut self, out: &Outgoing, buf: &mut [u8]) -> Option<Encoded> {
        let (to, app_refusal) = match out {
            Outgoing::AckRanges { to } => (*to, None),
            Outgoing::Refuse {
                to,
                transfer,
                reason,
            } => (*to, Some((*transfer, *reason))),
            _ => return None,
        };
        if !self.sessions.contains_key(&to) {
            return Some(Encoded::Obsolete);
        }
        let mut raw = [0u8; ACK_RANGES_BUF];
        let app = match app_refusal {
            Some((transfer, reason)) => App::TransferRefused {
                transfer,
                reason: segment::code(reason),
            },
            None => {
                let (ranges, more) = self.segments.reassembly.take_acks(to);
                if more {
                    self.shared.tx.push_back(Outgoing::AckRanges { to });
                }
                match AckRanges::build(&ranges, &mut raw) {
                    Ok(r) => App::AckRanges(r),
                    // Nothing owed any more: an earlier datagram took it all.
                    Err(_) => return Some(Encoded::Obsolete),
                }
            }
        };
        let s = self.sessions.get_mut(&to)?;
        let c = super::take(&mut s.tx_counter);
        Some(Encoded::from(to, session::seal(&s.tx_key, c, &app, buf)))
    }

    /// What we hold for reassembling segmented messages from clients.
    pub fn reassembly(&self) -> ReassemblyUsage {
        self.segments.reassembly.usage()
    }

    /// The expiry of an exchange of the session at `to`: a segment's ends its transfer.
    pub(super) fn on_exchange_expired(&mut self, to: SocketAddr, e: InFlight) {
        match e.payload.transfer() {
            Some(wire) => self.on_segment_expired(to, wire, e),
            None => self.shared.events.extend(expired_event(e)),
        }
    }
}
