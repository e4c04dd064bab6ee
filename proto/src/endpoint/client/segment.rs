//! The client's glue for segmented messages (`features::segment`, `docs/PROTOCOL.md` §9.7):
//! starting transfers for messages and calls that do not fit one datagram, taking in segments
//! and ACK ranges, and turning transfer ends into the events of the message or call.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use bytes::Bytes;

use super::super::{
    fits_datagram, received_message, CallId, ClientEvent, DropReason, FailReason, Outgoing,
    ReassemblyUsage, SendError,
};
use super::Client;
use crate::endpoint::event::{progress_events, transfer_end_events};
use crate::features::rpc;
use crate::features::segment::{self, Accepted, End, Kind, Transfer};
use crate::id::{Counter, MessageId};
use crate::reliability::{InFlight, Reply};
use crate::time::Instant;
use crate::wire::noise::GROUP_OVERHEAD;
use crate::wire::segment::{AckRanges, RefusalCode, Segment, TransferId, ACK_RANGE_LEN};
use crate::wire::{self, App, RpcStatus};

/// Largest op 34 payload: the count byte and the most ranges.
const ACK_RANGES_BUF: usize = 1 + wire::segment::MAX_ACK_RANGES * ACK_RANGE_LEN;

impl Client {
    /// Whether a plaintext of `body` bytes goes in one datagram to where we send (the group
    /// overhead is larger under suite 3 multicast).
    pub(super) fn fits_one_datagram(&self, body: usize) -> bool {
        fits_datagram(body) && (!self.is_group() || body <= wire::MAX_DATAGRAM - GROUP_OVERHEAD)
    }

    /// Queues `app` (a reliable message or a call too large for a datagram) as a transfer.
    /// Returns the command id; the caller has checked names.
    pub(super) fn send_segmented(
        &mut self,
        now: Instant,
        kind: Kind,
        target: Option<String>,
        app: &App<'_>,
        deadline: Instant,
    ) -> Result<u64, SendError> {
        let len = app.buffer_len();
        if len > self.config.limits.max_message() || u32::try_from(len).is_err() {
            return Err(SendError::TooLarge);
        }
        // A call goes to the first server that answers: segments acknowledged by different
        // servers would reach none whole.
        if kind == Kind::Call && self.multicast {
            return Err(SendError::TooLarge);
        }
        if self.segments.transfers.len() + self.outbox.len() >= self.config.limits.max_queued {
            return Err(SendError::QueueFull);
        }
        let mut plaintext = alloc::vec![0u8; len];
        app.emit(&mut plaintext)
            .map_err(|_| SendError::InvalidName)?;
        let overhead = if self.is_group() {
            GROUP_OVERHEAD
        } else {
            wire::SESSION_OVERHEAD
        };
        let id = self.next_op_id;
        let wire_id = TransferId(self.rng.next_u64());
        let t = Transfer::new(
            id,
            wire_id,
            kind,
            self.config.server,
            target,
            Bytes::from(plaintext),
            segment::segment_len(overhead),
            deadline,
        );
        self.segments.transfers.start(t);
        self.next_op_id += 1;
        self.after_command(now);
        Ok(id)
    }

    /// Pushes more segments into the outbox (from `pump`).
    pub(super) fn top_up_segments(&mut self) {
        let window = self
            .config
            .limits
            .max_in_flight
            .min(segment::SEGMENT_WINDOW);
        self.segments
            .transfers
            .top_up(None, &mut self.outbox, &mut self.next_op_id, window);
    }

    /// The receivers a segment must be acknowledged by: the transfer's, fixed when its first
    /// segment first goes out (multicast: the known subscribers of the message's target).
    pub(super) fn segment_expected(&mut self, now: Instant, wire: TransferId) -> Vec<SocketAddr> {
        let target = match self.segments.transfers.get(wire) {
            Some(t) if t.expected.is_some() => return t.expected.clone().unwrap_or_default(),
            Some(t) => t.target.clone(),
            None => return Vec::new(),
        };
        let expected = match target {
            Some(target) if self.multicast && !target.is_empty() => self.subscribers(now, &target),
            _ => Vec::new(),
        };
        if let Some(t) = self.segments.transfers.get_mut(wire) {
            t.expected = Some(expected.clone());
        }
        expected
    }

    /// A segment was acknowledged by every receiver it waits for.
    pub(super) fn on_segment_complete(&mut self, e: InFlight) {
        if let Some(end) = self.segments.transfers.on_complete(&e) {
            self.on_transfer_end(end);
        }
    }

    /// A segment reached its deadline: its transfer ends, and its other segments go.
    pub(super) fn on_segment_expired(&mut self, wire: TransferId, e: InFlight) {
        let mut rest = self
            .outbox
            .remove_where(|x| x.payload.transfer() == Some(wire));
        rest.push(e);
        if let Some(end) = self.segments.transfers.on_expired(wire, &rest) {
            self.on_transfer_end(end);
        }
    }

    /// Transfers past their deadline (from the `Segments` timer; their segments, if any, go
    /// with them).
    pub(super) fn expire_transfers(&mut self, now: Instant) {
        for wire in self.segments.transfers.past_deadline(now) {
            let rest = self
                .outbox
                .remove_where(|x| x.payload.transfer() == Some(wire));
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
                reason: crate::endpoint::TransferRefusal::Expired,
            });
        }
    }

    fn on_transfer_end(&mut self, end: End) {
        transfer_end_events(end, &mut self.shared.events);
    }

    /// Ends a transfer whose segment failed (the client closed, the server refused us).
    pub(super) fn fail_transfer(&mut self, wire: TransferId, reason: FailReason) {
        let Some(t) = self.segments.transfers.remove(wire) else {
            return;
        };
        self.outbox
            .remove_where(|x| x.payload.transfer() == Some(wire));
        let event = match t.kind {
            Kind::Message => ClientEvent::Failed {
                id: MessageId(t.id),
                reason,
            },
            Kind::Call => ClientEvent::CallFailed {
                call: CallId(t.id),
                reason,
            },
            Kind::Answer(_) => return,
        };
        self.shared.events.push_back(event);
    }

    /// Fails every transfer (on close).
    pub(super) fn fail_all_transfers(&mut self, reason: FailReason) {
        for wire in self.segments.transfers.ids_where(|_| true) {
            self.fail_transfer(wire, reason);
        }
    }

    /// `Progress` for every message transfer whose acknowledged bytes advanced (from `pump`).
    pub(super) fn emit_progress(&mut self) {
        // Every pump asks, nearly always with no transfer under way.
        if self.segments.transfers.len() == 0 {
            return;
        }
        progress_events(&mut self.segments.transfers, &mut self.shared.events);
    }

    /// The answer to a call (op 5, in one packet or reassembled).
    pub(super) fn on_answer(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        call: Counter,
        status: RpcStatus,
        data: &[u8],
    ) {
        match self.outbox.on_reply(
            call,
            true,
            addr,
            now,
            &mut self.rtt,
            &mut self.shared.stats.rtt,
        ) {
            Reply::Complete(e) => {
                let id = match e.payload.transfer() {
                    // A segmented call: the transfer names the call, and ends with its answer.
                    Some(wire) => {
                        self.outbox
                            .remove_where(|x| x.payload.transfer() == Some(wire));
                        match self.segments.transfers.remove(wire) {
                            Some(t) => t.id,
                            None => return,
                        }
                    }
                    None => e.id,
                };
                let event = rpc::answer_event(CallId(id), addr, status, data);
                self.shared.events.push_back(event);
            }
            // Late, repeated or never asked for.
            _ => self.shared.stats.drop(DropReason::Unexpected),
        }
    }

    /// Op 33, fresh: store it, acknowledge what was accepted, refuse the rest, and dispatch a
    /// whole plaintext.
    pub(super) fn on_segment(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        seg: &Segment<'_>,
    ) {
        let accepted = self.segments.reassembly.on_segment(now, addr, counter, seg);
        self.answer_segment(from, counter, seg.transfer, &accepted);
        if let Accepted::Complete { plaintext, first } = accepted {
            self.dispatch_whole(now, from, addr, &plaintext, first);
        }
    }

    /// Op 33 under a counter already seen: acknowledged again if held, refused again if not.
    pub(super) fn on_segment_duplicate(
        &mut self,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        seg: &Segment<'_>,
    ) {
        let accepted = self.segments.reassembly.on_duplicate(addr, seg);
        self.answer_segment(from, counter, seg.transfer, &accepted);
    }

    fn answer_segment(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        transfer: TransferId,
        accepted: &Accepted,
    ) {
        match accepted {
            Accepted::Refused(reason) => {
                self.shared.stats.drop(DropReason::refused(*reason));
                self.shared.tx.push_back(Outgoing::Refuse {
                    to: from,
                    transfer,
                    reason: *reason,
                });
            }
            Accepted::Again => {
                self.shared.stats.drop(DropReason::SegmentOfDelivered);
                self.owe_segment_ack(from, counter);
            }
            Accepted::Stored | Accepted::Complete { .. } => self.owe_segment_ack(from, counter),
        }
    }

    fn owe_segment_ack(&mut self, to: SocketAddr, counter: Counter) {
        if self.segments.reassembly.owe_ack(to, counter) {
            self.shared.tx.push_back(Outgoing::AckRanges { to });
        }
    }

    /// A whole plaintext, dispatched as if it had arrived in one packet (ops 1 and 5; a
    /// client takes no calls).
    fn dispatch_whole(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        plaintext: &[u8],
        _first: Counter,
    ) {
        match App::parse(plaintext) {
            Ok(App::ReliableMessage(m)) => {
                if let Some(message) = received_message(from, &m, true) {
                    self.shared.stats.messages_received += 1;
                    self.shared.events.push_back(ClientEvent::Message(message));
                }
            }
            Ok(App::RpcResponse { call, status, data }) => {
                self.on_answer(now, addr, call, status, data)
            }
            Ok(_) => self.shared.stats.drop(DropReason::Unsupported),
            Err(e) => self.shared.stats.drop(DropReason::from_wire(e)),
        }
    }

    /// Op 34: one ACK per counter of ours in flight in the ranges.
    pub(super) fn on_ack_ranges(&mut self, now: Instant, addr: SocketAddr, r: AckRanges<'_>) {
        let mut counters = core::mem::take(&mut self.segments.acked);
        counters.clear();
        for (first, count) in r.iter() {
            self.outbox.acked_in_range(first, count, &mut counters);
        }
        // Each counter is an op 2 ACK of it: one path for both.
        for &c in &counters {
            self.on_ack(now, addr, c);
        }
        self.segments.acked = counters;
    }

    /// Op 35: the server refuses one of our transfers.
    pub(super) fn on_refused(&mut self, transfer: TransferId, reason: RefusalCode) {
        if self.segments.transfers.get(transfer).is_none() {
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        let reason = FailReason::Refused(segment::refusal(reason));
        self.fail_transfer(transfer, reason);
    }

    /// Seals op 34 with the ACKs owed to `to`, queueing another if some remain.
    pub(super) fn encode_ack_ranges(&mut self, to: SocketAddr, buf: &mut [u8]) -> super::Encoded {
        let (ranges, more) = self.segments.reassembly.take_acks(to);
        if more {
            self.shared.tx.push_back(Outgoing::AckRanges { to });
        }
        let mut raw = [0u8; ACK_RANGES_BUF];
        match AckRanges::build(&ranges, &mut raw) {
            Ok(r) => self.seal(to, &App::AckRanges(r), buf),
            Err(_) => super::Encoded::Obsolete,
        }
    }

    /// Seals op 35.
    pub(super) fn encode_refusal(
        &mut self,
        to: SocketAddr,
        transfer: TransferId,
        reason: crate::endpoint::TransferRefusal,
        buf: &mut [u8],
    ) -> super::Encoded {
        let app = App::TransferRefused {
            transfer,
            reason: segment::code(reason),
        };
        self.seal(to, &app, buf)
    }

    /// What we hold for reassembling segmented messages from servers.
    pub fn reassembly(&self) -> ReassemblyUsage {
        self.segments.reassembly.usage()
    }
}
