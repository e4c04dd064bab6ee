//! A build without the `handoff` feature: the hooks of `handoff.rs`, with nothing ever held.
//! `set_handoff` and its companions do not exist, and every reliable message is acknowledged
//! on arrival.

use core::net::SocketAddr;

use crate::id::Counter;
use crate::time::Instant;
use crate::wire;

use super::Client;

impl Client {
    pub(super) fn holds_message(&self, _m: &wire::Message<'_>) -> bool {
        false
    }

    pub(super) fn on_held_message(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _addr: SocketAddr,
        _counter: Counter,
        _m: &wire::Message<'_>,
    ) {
    }

    pub(super) fn swallow_held_duplicate(&mut self, _addr: SocketAddr, _counter: Counter) -> bool {
        false
    }

    pub(super) fn batch_fits_handoff<'p>(
        &mut self,
        _addr: SocketAddr,
        _counter: Counter,
        _frames: impl Iterator<Item = &'p [u8]>,
    ) -> bool {
        true
    }

    pub(super) fn hold_batch_ack(
        &mut self,
        _queued: usize,
        _from: SocketAddr,
        _addr: SocketAddr,
        _counter: Counter,
    ) {
    }

    pub(super) fn expire_handoffs(&mut self, _now: Instant) {}

    pub(super) fn handoff_due(&self) -> Option<Instant> {
        None
    }

    pub(super) fn handoff_generation(&self, _addr: SocketAddr) -> Option<u64> {
        None
    }

    pub(super) fn handoff_on_session(&mut self, _addr: SocketAddr, _replaced: Option<u64>) {}
}
