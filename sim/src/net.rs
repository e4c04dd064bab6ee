//! State shared by every host of one simulation, and the sending half of every driver.
//!
//! turmoil runs all hosts on one thread, so the shared state is an `Rc<RefCell<_>>`. No
//! borrow of it is held across an `.await` or a call into application code.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use core::cell::RefCell;
use core::net::{IpAddr, SocketAddr};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use pavillion_proto::endpoint::{RelayStats, Stats};
use pavillion_proto::rng::Rng;
use pavillion_proto::{Duration, Instant};
use turmoil::net::UdpSocket;

use crate::config::LinkFaults;
use crate::relay::{Heard, Segment};
use crate::trace::{DatagramKind, DatagramRecord, Fate, Record, Trace};

/// Everything the hosts of one simulation share.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) trace: Trace,
    pub(crate) default_link: LinkFaults,
    /// Directional overrides of `default_link`: (sender ip, recipient ip).
    pub(crate) links: BTreeMap<(IpAddr, IpAddr), LinkFaults>,
    /// Group address to member addresses; ordered so that copies go out in a fixed order.
    pub(crate) groups: BTreeMap<SocketAddr, BTreeSet<SocketAddr>>,
    /// Middlebox ip to the ips of the hosts behind it.
    pub(crate) private: BTreeMap<IpAddr, BTreeSet<IpAddr>>,
    /// The latest stats of each endpoint host, one entry per incarnation: a crash takes the
    /// endpoint away, and with it the only other copy of what it counted.
    pub(crate) stats: BTreeMap<Rc<str>, Vec<Stats>>,
    /// Hosts allowed to hand others datagrams with forged sources (see `spoof`).
    pub(crate) spoofers: BTreeSet<IpAddr>,
    /// The relay counters of each relay host, one entry per incarnation (as `stats`).
    pub(crate) relay_stats: BTreeMap<Rc<str>, Vec<RelayStats>>,
    /// Datagrams relays emitted, by segment.
    pub(crate) emitted: BTreeMap<Segment, u64>,
    /// The segment of each host placed on one ([`crate::Simulation::place_on`]).
    pub(crate) segment_of: BTreeMap<IpAddr, Segment>,
    /// Groups scoped to one segment: only its hosts' datagrams reach the members.
    pub(crate) segment_groups: BTreeMap<(Segment, SocketAddr), BTreeSet<SocketAddr>>,
    /// The first [`MESH_LOG`] mesh datagrams relays sent: source, destination, bytes.
    pub(crate) mesh_log: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// What each station heard: when, from whom, the payload.
    pub(crate) heard: BTreeMap<Rc<str>, Vec<Heard>>,
    /// The counters of authority and member hosts (see `authority`).
    pub(crate) fleet: crate::authority::FleetCounters,
    /// The stores of durable hosts (see `durable`).
    pub(crate) durable: crate::durable::Stores,
    /// Whether a decoded trace is being kept ([`crate::SimConfig::decoded_trace`]).
    pub(crate) decoding: bool,
    /// Sent copies not yet received, to number receive records (decoded traces only).
    pub(crate) in_flight: crate::tap::InFlight,
}

pub(crate) type Shared = Rc<RefCell<World>>;

/// Most mesh datagrams kept for [`crate::Simulation::mesh_packets`].
pub(crate) const MESH_LOG: usize = 4096;

impl World {
    pub(crate) fn new(seed: u64, default_link: LinkFaults) -> Self {
        World {
            seed,
            trace: Trace::default(),
            default_link,
            links: BTreeMap::new(),
            groups: BTreeMap::new(),
            private: BTreeMap::new(),
            stats: BTreeMap::new(),
            spoofers: BTreeSet::new(),
            relay_stats: BTreeMap::new(),
            emitted: BTreeMap::new(),
            heard: BTreeMap::new(),
            mesh_log: Vec::new(),
            segment_of: BTreeMap::new(),
            segment_groups: BTreeMap::new(),
            fleet: crate::authority::FleetCounters::default(),
            durable: crate::durable::Stores::default(),
            decoding: false,
            in_flight: crate::tap::InFlight::default(),
        }
    }

    pub(crate) fn set_stats(&mut self, host: &Rc<str>, incarnation: u32, stats: &Stats) {
        let all = self.stats.entry(host.clone()).or_default();
        let i = incarnation as usize;
        if all.len() <= i {
            all.resize(i + 1, Stats::default());
        }
        if let Some(slot) = all.get_mut(i) {
            slot.clone_from(stats);
        }
    }

    fn link(&self, from: IpAddr, to: IpAddr) -> LinkFaults {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// The members of group `to` other than the sender, or `to` itself if it is no group.
    /// A sender placed on a segment reaches the members of that segment's group `to` first.
    fn recipients(&self, from: SocketAddr, to: SocketAddr) -> Vec<SocketAddr> {
        let scoped = self
            .segment_of
            .get(&from.ip())
            .and_then(|s| self.segment_groups.get(&(*s, to)));
        if let Some(members) = scoped {
            return members.iter().copied().filter(|m| *m != from).collect();
        }
        match self.groups.get(&to) {
            Some(members) => members.iter().copied().filter(|m| *m != from).collect(),
            None => vec![to],
        }
    }

    pub(crate) fn note(&mut self, at: Instant, host: &Rc<str>, text: String) {
        self.trace.push(Record::Note {
            at,
            host: host.clone(),
            text,
        });
    }
}

/// Simulated time as the endpoints see it: microseconds since the simulation started.
///
/// turmoil's per-host tokio clocks restart with each bounce, so the simulation's own elapsed
/// time is used instead; it is the same for every host and never goes backwards.
pub(crate) fn now() -> Instant {
    let elapsed = turmoil::sim_elapsed().unwrap_or_default();
    Instant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
}

/// A 32-byte seed for one purpose of one incarnation of one host, so that what a host draws
/// never depends on how turmoil interleaves hosts.
pub(crate) fn derive_seed(base: u64, host: &str, incarnation: u32, purpose: &str) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(b"pavillion-sim seed\0");
    h.update(base.to_le_bytes());
    h.update(host.as_bytes());
    h.update([0]);
    h.update(incarnation.to_le_bytes());
    h.update(purpose.as_bytes());
    h.finalize().into()
}

/// The sending half of a host: applies link faults and group expansion, and traces each copy.
pub(crate) struct Wire {
    pub(crate) host: Rc<str>,
    pub(crate) rng: Rng,
    pub(crate) world: Shared,
}

impl Wire {
    pub(crate) fn new(host: Rc<str>, incarnation: u32, world: Shared) -> Self {
        let seed = world.borrow().seed;
        Wire {
            rng: Rng::from_seed(derive_seed(seed, &host, incarnation, "link")),
            host,
            world,
        }
    }

    /// Sends `bytes` from `sock` (bound at `from`) to `to`, one copy per group member, each
    /// subject to the link's faults.
    pub(crate) fn send(
        &mut self,
        sock: &Rc<UdpSocket>,
        from: SocketAddr,
        now: Instant,
        to: SocketAddr,
        bytes: &[u8],
    ) {
        let recipients = self.world.borrow().recipients(from, to);
        let kind = DatagramKind::classify(bytes);
        for recipient in recipients {
            if crate::spoof::is_spoofed(&recipient) {
                // Nobody lives at a forged source: the reply is traced, and goes nowhere.
                self.record(now, from, recipient, bytes, kind, Fate::Sent, 0);
                continue;
            }
            let link = self.world.borrow().link(from.ip(), recipient.ip());
            if self.chance(link.loss) {
                self.record(now, from, recipient, bytes, kind, Fate::Lost, 0);
                continue;
            }
            let mut data = bytes.to_vec();
            let mut fate = Fate::Sent;
            if self.chance(link.corrupt) && !data.is_empty() {
                flip_bit(&mut self.rng, &mut data);
                fate = Fate::Corrupted;
            }
            let copies = if self.chance(link.duplicate) { 2 } else { 1 };
            for copy in 0..copies {
                let fate = if copy == 0 { fate } else { Fate::Duplicate };
                let jitter = u64::try_from(link.reorder_jitter.as_micros()).unwrap_or(u64::MAX);
                let delay = self.rng.range_inclusive(0, jitter);
                self.record(now, from, recipient, &data, kind, fate, delay);
                transmit(sock, recipient, data.clone(), Duration::from_micros(delay));
            }
        }
    }

    /// Hands `to` the datagrams of `batch` as if each came from its forged source: each is
    /// traced from that source, and they travel together in one envelope (`spoof`), with no
    /// link fault applied.
    pub(crate) fn send_spoofed(
        &mut self,
        sock: &Rc<UdpSocket>,
        now: Instant,
        to: SocketAddr,
        batch: &[(SocketAddr, Vec<u8>)],
    ) {
        for (from, bytes) in batch {
            let kind = DatagramKind::classify(bytes);
            self.record(now, *from, to, bytes, kind, Fate::Sent, 0);
        }
        // Each envelope fits the receiver's buffer (one byte more than any valid datagram).
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            let mut size = crate::spoof::OVERHEAD;
            while let Some((_, bytes)) = batch.get(end) {
                let more = crate::spoof::ENTRY_OVERHEAD + bytes.len();
                if end > start && size + more > pavillion_proto::wire::MAX_DATAGRAM {
                    break;
                }
                size += more;
                end += 1;
            }
            let chunk = batch.get(start..end).unwrap_or_default();
            transmit(sock, to, crate::spoof::wrap(chunk), Duration::ZERO);
            start = end;
        }
    }

    /// Records a datagram the host decided not to send (a middlebox's block).
    pub(crate) fn blocked(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let kind = DatagramKind::classify(bytes);
        self.record(now, from, to, bytes, kind, Fate::Blocked, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        at: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
        kind: DatagramKind,
        fate: Fate,
        delay_us: u64,
    ) {
        let mut w = self.world.borrow_mut();
        // A decoded trace keeps the bytes, and remembers each copy that travels so that its
        // arrival can name it (a reply to a forged source goes nowhere).
        let bytes_kept: Option<Rc<[u8]>> = w.decoding.then(|| Rc::from(bytes));
        if let Some(b) = &bytes_kept {
            if crate::tap::travels(fate) && !crate::spoof::is_spoofed(&to) {
                let id = w.trace.datagram_id();
                let due = at + Duration::from_micros(delay_us);
                w.in_flight.sent(id, from, to, due, b.clone());
            }
        }
        w.trace.push(Record::Datagram(DatagramRecord {
            at,
            host: self.host.clone(),
            from,
            to,
            len: bytes.len(),
            kind,
            fate,
            delay_us,
            bytes: bytes_kept,
        }));
    }

    /// True with probability `p`; draws nothing for `p == 0`, so a fault that is off does not
    /// shift the draws of the others.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64) < p * (u64::MAX as f64)
    }
}

/// Flips one random bit of a non-empty buffer.
pub(crate) fn flip_bit(rng: &mut Rng, data: &mut [u8]) {
    let bits = (data.len() as u64).saturating_mul(8);
    let bit = rng.range_inclusive(0, bits.saturating_sub(1));
    if let Some(b) = data.get_mut((bit / 8) as usize) {
        *b ^= 1 << (bit % 8);
    }
}

/// Hands a datagram to turmoil now, or after `delay` from a task of its own so that later
/// sends can overtake it.
fn transmit(sock: &Rc<UdpSocket>, to: SocketAddr, data: Vec<u8>, delay: Duration) {
    if delay.is_zero() {
        // An unreachable host (no such address) is the network's loss, not the sender's error.
        let _ = sock.try_send_to(&data, to);
        return;
    }
    let sock = sock.clone();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(delay).await;
        let _ = sock.try_send_to(&data, to);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_host_incarnation_and_purpose() {
        let a = derive_seed(1, "a", 0, "link");
        assert_eq!(a, derive_seed(1, "a", 0, "link"));
        assert_ne!(a, derive_seed(2, "a", 0, "link"));
        assert_ne!(a, derive_seed(1, "b", 0, "link"));
        assert_ne!(a, derive_seed(1, "a", 1, "link"));
        assert_ne!(a, derive_seed(1, "a", 0, "endpoint"));
    }

    #[test]
    fn flip_bit_changes_exactly_one_bit() {
        let mut rng = Rng::seed_from_u64(3);
        for len in 1..20 {
            let mut d = vec![0u8; len];
            flip_bit(&mut rng, &mut d);
            assert_eq!(d.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        }
    }
}
