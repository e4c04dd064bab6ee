//! A build without the `pubsub` feature: the hooks of `subs.rs`, with no subscriptions of
//! ours. `subscribe` and `unsubscribe` do not exist. (The servers' own announcements, op 13
//! and 14 sent to us, are still acknowledged and learnt: they route our multicast sends.)
//! `subscribe` exists and is refused, because the member role (`endpoint::member`) calls it
//! to follow its authority's roster: a fleet member needs the `pubsub` feature.

use core::net::SocketAddr;

use crate::id::Counter;
use crate::reliability::InFlight;
use crate::time::Instant;

use super::super::SendError;
use super::Client;

impl Client {
    /// Refused: this build leaves subscriptions out (the `pubsub` feature).
    ///
    /// # Errors
    /// Always [`SendError::Unsupported`].
    pub fn subscribe(&mut self, _now: Instant, _target: &str) -> Result<(), SendError> {
        Err(SendError::Unsupported)
    }

    pub(super) fn subs_on_session(&mut self, _now: Instant, _addr: SocketAddr) {}

    pub(super) fn subs_on_lost(&mut self, _now: Instant, _addr: SocketAddr) {}

    pub(super) fn pump_subs(&mut self, _now: Instant) {}

    pub(super) fn on_sub_ack(
        &mut self,
        _now: Instant,
        _addr: SocketAddr,
        _counter: Counter,
    ) -> bool {
        false
    }

    pub(super) fn sub_exchange(&self, _id: u64) -> Option<&InFlight> {
        None
    }

    pub(super) fn subs_timeout(&self) -> Option<Instant> {
        None
    }

    pub(super) fn drop_subs(&mut self) {}
}
