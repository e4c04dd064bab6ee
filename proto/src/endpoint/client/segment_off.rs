//! A build without the `segment` feature: the hooks of `segment.rs`, with no transfers. A
//! message or call that does not fit one datagram is refused (`SendError::TooLarge`); a
//! segment, ACK ranges or a refusal from a server is a counted drop
//! (`DropReason::FeatureNotCompiled`), never acknowledged, so a server's segmented message
//! (or a call's segmented answer) ends at its deadline.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::super::{fits_datagram, DropReason, Encoded, FailReason, SendError};
use super::Client;
use crate::features::rpc;
use crate::features::segment::Kind;
use crate::id::Counter;
use crate::reliability::{InFlight, Reply};
use crate::time::Instant;
use crate::wire::noise::GROUP_OVERHEAD;
use crate::wire::segment::{AckRanges, RefusalCode, Segment, TransferId};
use crate::wire::{self, App, RpcStatus};

impl Client {
    pub(super) fn fits_one_datagram(&self, body: usize) -> bool {
        fits_datagram(body) && (!self.is_group() || body <= wire::MAX_DATAGRAM - GROUP_OVERHEAD)
    }

    pub(super) fn send_segmented(
        &mut self,
        _now: Instant,
        _kind: Kind,
        _target: Option<String>,
        _app: &App<'_>,
        _deadline: Instant,
    ) -> Result<u64, SendError> {
        Err(SendError::TooLarge)
    }

    pub(super) fn top_up_segments(&mut self) {}

    pub(super) fn segment_expected(&mut self, _now: Instant, _wire: TransferId) -> Vec<SocketAddr> {
        Vec::new()
    }

    pub(super) fn on_segment_complete(&mut self, _e: InFlight) {}

    pub(super) fn on_segment_expired(&mut self, _wire: TransferId, _e: InFlight) {}

    pub(super) fn expire_transfers(&mut self, _now: Instant) {}

    pub(super) fn expire_partials(&mut self, _now: Instant) {}

    pub(super) fn fail_transfer(&mut self, _wire: TransferId, _reason: FailReason) {}

    pub(super) fn fail_all_transfers(&mut self, _reason: FailReason) {}

    pub(super) fn emit_progress(&mut self) {}

    /// The answer to a call (op 5, in one packet: nothing is reassembled here).
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
                let event = rpc::answer_event(super::CallId(e.id), addr, status, data);
                self.shared.events.push_back(event);
            }
            // Late, repeated or never asked for.
            _ => self.shared.stats.drop(DropReason::Unexpected),
        }
    }

    pub(super) fn on_segment(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _addr: SocketAddr,
        _counter: Counter,
        _seg: &Segment<'_>,
    ) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn on_segment_duplicate(
        &mut self,
        _from: SocketAddr,
        _addr: SocketAddr,
        _counter: Counter,
        _seg: &Segment<'_>,
    ) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn on_ack_ranges(&mut self, _now: Instant, _addr: SocketAddr, _r: AckRanges<'_>) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn on_refused(&mut self, _transfer: TransferId, _reason: RefusalCode) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn encode_ack_ranges(&mut self, _to: SocketAddr, _buf: &mut [u8]) -> Encoded {
        Encoded::Obsolete
    }

    pub(super) fn encode_refusal(
        &mut self,
        _to: SocketAddr,
        _transfer: TransferId,
        _reason: crate::endpoint::TransferRefusal,
        _buf: &mut [u8],
    ) -> Encoded {
        Encoded::Obsolete
    }
}
