//! Relay hosts, the network segments they join, and stations that broadcast on them (issue 15).
//!
//! turmoil has no broadcast, so a [`Segment`] is modelled as one simulated group per port
//! (see [`crate::Simulation::join`]): a datagram a host of the segment sends to the segment's
//! broadcast address and a port reaches every other host of the segment bound to that port,
//! the relays' capture sockets included, and no host of another segment. A relay host runs a
//! real `proto` [`Relay`]: its mesh socket is driven through the `Endpoint` trait like every
//! role, and its segment side through `handle_local` (every datagram its capture sockets
//! hear) and `poll_emit` (emitted on its segment, counted per segment in
//! [`crate::Simulation::emitted`]).
//!
//! An emission keeps its original source ([`EmitFrom::Source`], a driver with raw sockets)
//! the way forged sources are modelled elsewhere (`spoof`): the relay is registered as a
//! spoofer and hands each member of the segment an envelope that its driver unwraps. With
//! [`EmitFrom::Mesh`] it goes out from the relay's mesh socket, as a driver without raw
//! sockets does.

use alloc::rc::Rc;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use pavillion_proto::crypto::ecc::PublicKey;
use pavillion_proto::endpoint::{Emit, LocalDatagram, Relay, RelayConfig, RelayPeer, Scope};
use pavillion_proto::{wire, Duration, Instant};
use turmoil::net::UdpSocket;

use crate::host::{next_wait, run_due, sleep_for, Ctl, HostCtx};
use crate::net::{now, Shared, Wire};
use crate::tap;
use crate::trace::ReceiveOutcome;
use crate::trace::{HostEvent, Record};

/// The mesh port relay hosts use unless their spec says otherwise (`pav relay`'s default).
pub const MESH_PORT: u16 = 7124;

/// A simulated broadcast domain, numbered. Hosts join it with
/// [`crate::Simulation::add_relay`] and [`crate::Simulation::add_station`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment(pub u8);

impl Segment {
    /// The segment's broadcast address, `10.<n>.255.255`: no simulated host has it, so a
    /// datagram sent to it can only be a broadcast.
    pub fn broadcast(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, self.0, 255, 255))
    }

    /// The group that carries the segment's broadcasts to `port`.
    pub fn group(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.broadcast(), port)
    }

    /// The segment name its relays announce, `segment-<n>`.
    pub fn name(self) -> String {
        format!("segment-{}", self.0)
    }
}

/// A datagram a station heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// When.
    pub at: Instant,
    /// Its source as the station saw it (the original sender's for an emission that kept it).
    pub from: SocketAddr,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// How a relay host puts an emission on its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitFrom {
    /// With the original sender's source ([`Emit::source`]), as a driver with raw sockets
    /// does: replies go to the sender.
    Source,
    /// From the relay's mesh socket, as a driver without raw sockets does: the source is the
    /// relay's mesh address.
    Mesh,
}

/// Another relay host of the mesh, by host name (its address is looked up when the relay
/// starts, so relays can name each other in any order).
#[derive(Clone, Debug)]
pub struct PeerHost {
    /// The host's name.
    pub host: String,
    /// Its mesh port.
    pub port: u16,
    /// Its static public key.
    pub public: PublicKey,
}

/// A relay host: the relay's configuration and where it sits.
#[derive(Clone, Debug)]
pub struct RelaySpec {
    /// The relay's configuration. Its `seed` is replaced by one derived from the simulation
    /// seed, the host name and the restart count; `peers` get those of [`RelaySpec::peers`]
    /// appended, and `advertise` is set to the host's mesh address.
    pub config: RelayConfig,
    /// The segment it captures on and emits to, on each of `config.ports`.
    pub segment: Segment,
    /// Its mesh port.
    pub mesh_port: u16,
    /// Relay hosts to connect to at start.
    pub peers: Vec<PeerHost>,
    /// How it emits.
    pub emit: EmitFrom,
}

impl RelaySpec {
    /// A relay on `segment`, on [`MESH_PORT`], emitting with the original source.
    pub fn new(config: RelayConfig, segment: Segment) -> Self {
        RelaySpec {
            config,
            segment,
            mesh_port: MESH_PORT,
            peers: Vec::new(),
            emit: EmitFrom::Source,
        }
    }

    /// Adds a relay host to connect to at start.
    pub fn with_peer(mut self, host: &str, public: PublicKey) -> Self {
        self.peers.push(PeerHost {
            host: host.into(),
            port: MESH_PORT,
            public,
        });
        self
    }
}

/// The handle a relay host's script gets.
pub type RelayCtl<'a> = Ctl<'a, Relay>;

/// The relay's configuration for one incarnation: peers resolved, address advertised.
pub(crate) fn resolve(spec: &RelaySpec, node: &str, seed: [u8; 32]) -> RelayConfig {
    let mut config = spec.config.clone();
    config.seed = seed;
    for p in &spec.peers {
        config.peers.push(RelayPeer {
            addr: SocketAddr::new(turmoil::lookup(p.host.as_str()), p.port),
            public: p.public,
        });
    }
    config.advertise = Some(SocketAddr::new(turmoil::lookup(node), spec.mesh_port));
    config
}

/// The datagrams of one received datagram: its forged contents if a spoofer sent an
/// envelope, else itself.
pub(crate) fn unwrap_from<'a>(
    world: &Shared,
    from: SocketAddr,
    data: &'a [u8],
) -> Vec<(SocketAddr, &'a [u8])> {
    let spoofer = world.borrow().spoofers.contains(&from.ip());
    match crate::spoof::unwrap(data).filter(|_| spoofer) {
        Some(batch) => batch,
        None => vec![(from, data)],
    }
}

/// Runs one incarnation of a relay host until it is crashed.
pub(crate) async fn drive_relay(
    mut relay: Relay,
    ctx: HostCtx<Relay>,
    spec: Rc<RelaySpec>,
) -> turmoil::Result {
    let ip = turmoil::lookup(&*ctx.node);
    let mesh = Rc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, spec.mesh_port)).await?);
    let local = SocketAddr::new(ip, spec.mesh_port);
    // Every capture socket feeds one queue, so that the loop below waits on one thing.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(SocketAddr, u16, Vec<u8>)>();
    for &port in &spec.config.ports {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).await?;
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let data = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send((from, port, data)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut out = Out {
        wire: Wire::new(ctx.host.clone(), ctx.incarnation, ctx.world.clone()),
        mesh: mesh.clone(),
        local,
        spec: spec.clone(),
    };
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let mut rbuf = vec![0u8; wire::MAX_DATAGRAM + 1];

    let start = now();
    ctx.world
        .borrow_mut()
        .note(start, &ctx.host, format!("start {}", ctx.incarnation));
    if crate::tap::key_log(&ctx.world) {
        relay.set_key_log(true);
    }
    {
        let mut run = ctx.script.borrow_mut();
        while run.next_at().is_some_and(|t| t < start) {
            run.next += 1;
        }
        if let Some(f) = run.script.on_start_mut() {
            f(&mut Ctl {
                now: start,
                host: &ctx.host,
                endpoint: &mut relay,
                world: &ctx.world,
                later: Some(&ctx.later),
            });
        }
    }

    let mut spins = 0u32;
    loop {
        run_due(&mut relay, &ctx);
        pump(&mut relay, &ctx, &mut out, &mut buf);
        {
            let mut w = ctx.world.borrow_mut();
            w.set_stats(&ctx.host, ctx.incarnation, relay.stats());
            let all = w.relay_stats.entry(ctx.host.clone()).or_default();
            let i = ctx.incarnation as usize;
            if all.len() <= i {
                all.resize(i + 1, Default::default());
            }
            if let Some(slot) = all.get_mut(i) {
                slot.clone_from(relay.relay_stats());
            }
        }

        let wait = next_wait([relay.poll_timeout(), ctx.app_next_at()], &mut spins);
        tokio::select! {
            biased;
            r = mesh.recv_from(&mut rbuf) => {
                if let Ok((n, from)) = r {
                    let data = rbuf.get(..n).unwrap_or_default();
                    for (source, bytes) in unwrap_from(&ctx.world, from, data) {
                        let counters = |r: &Relay| tap::relay_drops(r.stats(), r.relay_stats());
                        let before = tap::before(&ctx.world, || counters(&relay));
                        relay.handle_datagram(now(), source, bytes);
                        let after = || counters(&relay);
                        tap::received(&ctx.world, &ctx.host, source, local, bytes, before, after);
                    }
                }
            }
            Some((from, port, data)) = rx.recv() => {
                for (source, payload) in unwrap_from(&ctx.world, from, &data) {
                    let counters = |r: &Relay| tap::relay_drops(r.stats(), r.relay_stats());
                    let before = tap::before(&ctx.world, || counters(&relay));
                    let datagram = LocalDatagram { source, scope: Scope::Broadcast, port, payload };
                    relay.handle_local(now(), datagram);
                    let after = || counters(&relay);
                    let at = SocketAddr::new(ip, port);
                    tap::received(&ctx.world, &ctx.host, source, at, payload, before, after);
                }
            }
            _ = sleep_for(wait) => relay.handle_timeout(now()),
        }
    }
}

/// The sending side of a relay host.
struct Out {
    wire: Wire,
    mesh: Rc<UdpSocket>,
    local: SocketAddr,
    spec: Rc<RelaySpec>,
}

impl Out {
    /// Puts one emission on the segment, counts it and traces it.
    fn emit(&mut self, t: Instant, e: Emit, payload: &[u8]) {
        let segment = self.spec.segment;
        let group = match e.scope {
            Scope::Broadcast => segment.group(e.port),
            Scope::Multicast(g) => SocketAddr::new(g, e.port),
        };
        {
            let mut w = self.wire.world.borrow_mut();
            *w.emitted.entry(segment).or_default() += 1;
            let text = format!("emit {} bytes to {group} from {}", e.len, e.source);
            w.note(t, &self.wire.host, text);
        }
        match self.spec.emit {
            EmitFrom::Mesh => self.wire.send(&self.mesh, self.local, t, group, payload),
            EmitFrom::Source => {
                // Every member of the segment but our own capture socket, as a raw-socket
                // broadcast with a forged source.
                let me = SocketAddr::new(self.local.ip(), e.port);
                let members: Vec<SocketAddr> = self
                    .wire
                    .world
                    .borrow()
                    .groups
                    .get(&group)
                    .map(|m| m.iter().copied().filter(|a| *a != me).collect())
                    .unwrap_or_default();
                let batch = [(e.source, payload.to_vec())];
                for m in members {
                    self.wire.send_spoofed(&self.mesh, t, m, &batch);
                }
            }
        }
    }
}

/// Drains transmits, emissions and events until the relay has nothing more to say.
fn pump(relay: &mut Relay, ctx: &HostCtx<Relay>, out: &mut Out, buf: &mut [u8]) {
    loop {
        let t = now();
        let mut busy = false;
        tap::secrets(&ctx.world, || relay.poll_secret());
        while let Some(tx) = relay.poll_transmit(t, buf) {
            busy = true;
            if let Some(bytes) = buf.get(..tx.len) {
                let mut w = out.wire.world.borrow_mut();
                if w.mesh_log.len() < crate::net::MESH_LOG {
                    w.mesh_log.push((out.local, tx.destination, bytes.to_vec()));
                }
                drop(w);
                out.wire
                    .send(&out.mesh, out.local, t, tx.destination, bytes);
            }
        }
        while let Some(e) = relay.poll_emit(buf) {
            busy = true;
            if let Some(bytes) = buf.get(..e.len) {
                out.emit(t, e, bytes);
            }
        }
        while let Some(event) = relay.poll_event() {
            busy = true;
            ctx.world.borrow_mut().trace.push(Record::Event {
                at: t,
                host: ctx.host.clone(),
                event: HostEvent::Relay(event.clone()),
            });
            let mut run = ctx.script.borrow_mut();
            if let Some(f) = run.script.on_event_mut() {
                f(
                    &mut Ctl {
                        now: t,
                        host: &ctx.host,
                        endpoint: relay,
                        world: &ctx.world,
                        later: Some(&ctx.later),
                    },
                    event,
                );
            }
        }
        if !busy {
            return;
        }
    }
}

/// What a station broadcasts: its payloads, each at its time from the start of the run.
pub(crate) type Sends = Rc<Vec<(Duration, Vec<u8>)>>;

/// Runs one incarnation of a station: a plain UDP host of a segment that broadcasts its
/// payloads on `port` and records everything it hears there.
pub(crate) async fn drive_station(
    host: Rc<str>,
    incarnation: u32,
    world: Shared,
    segment: Segment,
    port: u16,
    sends: Sends,
) -> turmoil::Result {
    let sock = Rc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).await?);
    let local = SocketAddr::new(turmoil::lookup(&*host), port);
    let mut wire = Wire::new(host.clone(), incarnation, world.clone());
    let mut rbuf = vec![0u8; wire::MAX_DATAGRAM + 1];
    let start = now();
    // As a script: what fell due while the station was down is not sent.
    let mut next = sends
        .iter()
        .position(|(at, _)| Instant::ZERO + *at >= start)
        .unwrap_or(sends.len());
    loop {
        let t = now();
        while let Some((at, payload)) = sends.get(next) {
            if Instant::ZERO + *at > t {
                break;
            }
            wire.send(&sock, local, t, segment.group(port), payload);
            next += 1;
        }
        let wait = sends
            .get(next)
            .map(|(at, _)| (Instant::ZERO + *at).saturating_duration_since(t));
        tokio::select! {
            biased;
            r = sock.recv_from(&mut rbuf) => {
                if let Ok((n, from)) = r {
                    let data = rbuf.get(..n).unwrap_or_default();
                    for (source, b) in unwrap_from(&world, from, data) {
                        tap::heard(&world, &host, source, local, b, ReceiveOutcome::Accepted);
                    }
                    let heard: Vec<_> = unwrap_from(&world, from, data)
                        .into_iter()
                        .map(|(from, b)| Heard { at: now(), from, payload: b.to_vec() })
                        .collect();
                    world.borrow_mut().heard.entry(host.clone()).or_default().extend(heard);
                }
            }
            _ = sleep_for(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use pavillion_proto::crypto::ecc::KeyPair;

    use super::*;
    use crate::{SimConfig, Simulation};

    /// Two segments with one relay each, a broadcaster on the first and a listener on the
    /// second: the listener hears each broadcast once, from the original sender with
    /// `Source`, from the far relay's mesh socket with `Mesh`; the broadcaster hears nothing
    /// back; each emission is counted on the second segment.
    fn two_segments(emit: EmitFrom) -> (Simulation, SocketAddr, SocketAddr) {
        let mut sim =
            Simulation::new(SimConfig::new(7).with_duration(Duration::from_secs(5))).unwrap();
        let (ka, kb) = (
            KeyPair::from_secret_bytes([0x11; 32]),
            KeyPair::from_secret_bytes([0x22; 32]),
        );
        let (pa, pb) = (*ka.public(), *kb.public());
        for (name, keys, seg, peer, public) in [
            ("ra", ka, Segment(1), "rb", pb),
            ("rb", kb, Segment(2), "ra", pa),
        ] {
            let config = RelayConfig::new(keys, &seg.name(), &[5076], [0; 32]);
            let mut spec = RelaySpec::new(config, seg).with_peer(peer, public);
            spec.emit = emit;
            sim.add_relay(name, spec, crate::Script::new()).unwrap();
        }
        let sends = (0..3u8)
            .map(|i| {
                (
                    Duration::from_secs(3) + Duration::from_millis(100) * u32::from(i),
                    vec![i],
                )
            })
            .collect();
        let talker = sim.add_station("talker", Segment(1), 5076, sends).unwrap();
        sim.add_station("listener", Segment(2), 5076, Vec::new())
            .unwrap();
        sim.run().unwrap();
        let rb = SocketAddr::new(sim.ip("rb").unwrap(), MESH_PORT);
        (sim, talker, rb)
    }

    #[test]
    fn a_broadcast_reaches_the_other_segment_once_with_its_source() {
        let (sim, talker, _) = two_segments(EmitFrom::Source);
        let heard = sim.heard("listener");
        let payloads: Vec<_> = heard.iter().map(|h| h.payload.clone()).collect();
        assert_eq!(payloads, vec![vec![0], vec![1], vec![2]]);
        assert!(heard.iter().all(|h| h.from == talker));
        assert!(sim.heard("talker").is_empty());
        assert_eq!(sim.emitted(Segment(2)), 3);
        assert_eq!(sim.emitted(Segment(1)), 0);
        assert_eq!(sim.relay_stats("ra")[0].carried, 3);
    }

    #[test]
    fn an_emission_from_the_mesh_socket_has_the_relays_source() {
        let (sim, _, rb) = two_segments(EmitFrom::Mesh);
        let heard = sim.heard("listener");
        assert_eq!(heard.len(), 3);
        assert!(heard.iter().all(|h| h.from == rb));
        // The relay hears its own emission on its capture socket and knows it as an echo.
        let echo = sim.relay_stats("rb")[0].dropped(pavillion_proto::endpoint::RelayDrop::Echo);
        assert_eq!(echo, 3);
    }
}
