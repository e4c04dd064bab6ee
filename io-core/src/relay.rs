//! What both adapters' relays share: how a relay is opened, what it reports to its handle,
//! and where each emission goes. Only the loop (a `mio` thread, a `smol` task) differs.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use pavillion_proto::endpoint::{
    Emit, LocalDatagram, PeerStatus, Relay, RelayConfig, RelayEvent, RelayPeer, RelayStats, Scope,
    Stats,
};
use pavillion_proto::Instant;

use crate::plumbing::reply::Reply;
use crate::segment::{self, Emission, Interface};

/// How a relay is opened.
#[derive(Debug)]
pub struct RelayOptions {
    /// The relay itself: keys, segment name, ports, peers, limits.
    pub config: RelayConfig,
    /// The mesh socket's address.
    pub mesh_bind: SocketAddr,
    /// The segment to capture on and emit to; `None` for tests: datagrams then come from the
    /// handle's `inject` and emissions are reported as [`RelayNotice::Emitted`], so relays run
    /// on loopback without broadcasting.
    pub segment: Option<SegmentOptions>,
}

/// The relay's segment.
#[derive(Debug)]
pub struct SegmentOptions {
    /// The interface that capture and emission use.
    pub interface: Interface,
    /// Multicast groups carried besides broadcasts (joined on the interface).
    pub groups: Vec<Ipv4Addr>,
    /// With the original source or from the mesh socket.
    pub emission: Emission,
}

/// A datagram the relay emitted (reported only when it has no segment), or one to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The original sender.
    pub source: SocketAddr,
    /// Broadcast or multicast (which group).
    pub scope: Scope,
    /// The destination port.
    pub port: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

impl Emitted {
    /// The datagram as the relay takes it from its segment.
    pub fn as_local(&self) -> LocalDatagram<'_> {
        LocalDatagram {
            source: self.source,
            scope: self.scope,
            port: self.port,
            payload: &self.payload,
        }
    }
}

/// What a handle asks of its relay's loop, the same for both adapters; the answers go back
/// through [`Reply`] slots, which a blocking caller waits on and an async caller awaits.
#[derive(Debug)]
pub enum Command {
    /// A datagram as if captured on the segment.
    Inject(Emitted),
    /// One more peer relay, trusted from now on.
    AddPeer(RelayPeer),
    /// The relay's counters and its mesh endpoints' summed counters.
    Stats(Reply<(RelayStats, Stats)>),
    /// Every peer and its state.
    Peers(Reply<Vec<PeerStatus>>),
    /// A metrics snapshot: the summed mesh counters, and the peers up as sessions.
    Metrics(Reply<crate::metrics::MetricsSnapshot>),
    /// Whether we emit on our segment.
    Emitter(Reply<bool>),
    /// Close the mesh sessions and end the loop.
    Close,
}

impl Command {
    /// Carries out the command on `relay`; `false` for [`Command::Close`], which the loop
    /// carries out itself (close, send what that queued, end).
    pub fn apply(self, relay: &mut Relay, now: Instant) -> bool {
        match self {
            Command::Inject(d) => relay.handle_local(now, d.as_local()),
            Command::AddPeer(p) => relay.add_peer(now, p),
            Command::Stats(r) => r.send((relay.relay_stats().clone(), relay.stats().clone())),
            Command::Peers(r) => r.send(relay.peers()),
            Command::Metrics(r) => {
                let up = relay.peers().iter().filter(|p| p.up).count();
                r.send(crate::metrics::MetricsSnapshot::new(
                    crate::metrics::MetricsRole::Relay,
                    u64::try_from(up).unwrap_or(u64::MAX),
                    relay.stats().clone(),
                ));
            }
            Command::Emitter(r) => r.send(relay.is_emitter()),
            Command::Close => return false,
        }
        true
    }
}

/// What a relay reports to its handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayNotice {
    /// Peers up, down, joined, and the emitter election.
    Event(RelayEvent),
    /// A datagram emitted on a segment simulated by the caller.
    Emitted(Emitted),
}

/// Most notices held for a handle that does not read them; later ones are dropped (they are
/// reports, not traffic).
pub const NOTICES: usize = 1024;

/// What a driver does with one emission; [`emit_step`] decides, the driver's loop sends.
#[derive(Debug)]
pub enum EmitStep {
    /// No segment: report it to the handle.
    Report(Emitted),
    /// Already sent with the original source, with the raw send's result.
    Sent(SocketAddrV4, io::Result<()>),
    /// Send it from the mesh socket to this address (no raw socket, or an IPv6 source that
    /// cannot head an IPv4 datagram).
    FromMesh(SocketAddrV4),
    /// Not emitted by these drivers: an IPv6 group.
    Skipped,
}

/// Decides where `payload` (the datagram `emit` describes) goes on `segment`, and sends it at
/// once when it keeps its source, since the raw socket is blocking and shared by both loops.
pub fn emit_step(segment: Option<&SegmentOptions>, emit: &Emit, payload: &[u8]) -> EmitStep {
    let Some(seg) = segment else {
        return EmitStep::Report(Emitted {
            source: emit.source,
            scope: emit.scope,
            port: emit.port,
            payload: payload.to_vec(),
        });
    };
    let Some(dest) = segment::destination(&seg.interface, emit.scope, emit.port) else {
        return EmitStep::Skipped;
    };
    match (&seg.emission, emit.source) {
        (Emission::Keep(raw), SocketAddr::V4(src)) => {
            EmitStep::Sent(dest, raw.send(src, dest, payload))
        }
        (Emission::Keep(_), SocketAddr::V6(_)) | (Emission::Relay, _) => EmitStep::FromMesh(dest),
    }
}
