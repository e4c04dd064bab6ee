//! A build without the `registers` feature: the receive path's hooks of `registers.rs`, with
//! no register state. The commands (`read_register`, `observe`, ...) do not exist; a register
//! packet from a server is a counted drop (`DropReason::FeatureNotCompiled`), never
//! acknowledged, as a packet of a left-out suite is.

use core::net::SocketAddr;

use crate::id::Counter;
use crate::reliability::InFlight;
use crate::time::Instant;
use crate::wire::register::{RegisterInfoPacket, RegisterValuePacket};
use crate::wire::Message;

use super::super::DropReason;
use super::Client;

/// No register state: nothing is observed or asked.
#[derive(Debug)]
pub(super) struct ClientRegisters;

impl ClientRegisters {
    pub(super) fn new(_max_queued: usize, _max_in_flight: usize) -> Self {
        ClientRegisters
    }
}

impl Client {
    pub(super) fn pump_registers(&mut self, _now: Instant) {}

    pub(super) fn register_exchange(&self, _id: u64) -> Option<&InFlight> {
        None
    }

    pub(super) fn registers_timeout(&self) -> Option<Instant> {
        None
    }

    pub(super) fn drop_registers(&mut self) {}

    pub(super) fn registers_on_session(&mut self, _now: Instant, _addr: SocketAddr) {}

    pub(super) fn on_register_value(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _addr: SocketAddr,
        _counter: Counter,
        _p: RegisterValuePacket<'_>,
    ) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn on_register_info_packet(
        &mut self,
        _now: Instant,
        _addr: SocketAddr,
        _p: RegisterInfoPacket<'_>,
    ) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    /// The reference's `core.tag` messages are plain messages too: delivered as such.
    pub(super) fn on_tag_message(&mut self, _addr: SocketAddr, _m: &Message<'_>) {}
}
