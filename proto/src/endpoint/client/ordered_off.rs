//! A build without the `ordered` feature: the hooks of `ordered.rs`, with no stream state. An
//! ordered send is refused (`SendError::Unsupported`); an op 36 packet from a server is a
//! counted drop (`DropReason::FeatureNotCompiled`), never acknowledged, so its sender's
//! deadline reports it.

use core::net::SocketAddr;

use crate::id::Counter;
use crate::reliability::{InFlight, OwnedMessage};
use crate::time::Instant;
use crate::wire::ordered::OrderedMessage;

use super::super::{DropReason, SendError};
use super::Client;

impl Client {
    pub(super) fn push_ordered(
        &mut self,
        _message: OwnedMessage,
        _deadline: Instant,
    ) -> Result<(), SendError> {
        Err(SendError::Unsupported)
    }

    pub(super) fn on_ordered_resolved(&mut self, _e: &InFlight, _abandoned: bool) {}

    pub(super) fn on_ordered(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _addr: SocketAddr,
        _counter: Counter,
        _o: &OrderedMessage<'_>,
    ) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn ordered_due(&self) -> Option<Instant> {
        None
    }

    pub(super) fn on_ordered_timer(&mut self, _now: Instant) {}
}
