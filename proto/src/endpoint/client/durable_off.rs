//! A build without the `durable` feature: the routing hooks of `durable.rs`. The durable
//! commands (`enable_durable`, `send_durable`, ...) do not exist, so no durable payload is
//! ever queued; an op 37 packet from a server is a counted drop
//! (`DropReason::FeatureNotCompiled`), never acknowledged, so its sender keeps it.

use core::net::SocketAddr;

use crate::endpoint::Encoded;
use crate::features::durable::DurableSeq;
use crate::id::Counter;
use crate::wire::durable::DurableMessage;

use super::super::DropReason;
use super::Client;

impl Client {
    pub(super) fn on_durable(
        &mut self,
        _from: SocketAddr,
        _counter: Counter,
        _d: &DurableMessage<'_>,
    ) {
        self.shared.stats.drop(DropReason::FeatureNotCompiled);
    }

    pub(super) fn on_durable_acked(&mut self, _seq: DurableSeq) {}

    pub(super) fn encode_durable(
        &self,
        _to: SocketAddr,
        _c: Counter,
        _seq: Option<DurableSeq>,
        _buf: &mut [u8],
    ) -> Encoded {
        Encoded::Obsolete
    }
}
