//! Publish/subscribe (opcodes 13 and 14, `docs/PROTOCOL.md` §9.6): who takes the messages of
//! which target. Three tables, one per direction of the exchange:
//!
//! - [`SubscriberTable`] (client): target → server → when it last confirmed it takes the
//!   target. Learned from a server's opcode 13 and from its ACK of a message to the target;
//!   a server's opcode 14 removes it. A multicast client expects a reliable message to a
//!   target to be acknowledged by every subscriber it knows.
//! - [`Subscriptions`] (client): the targets the application subscribed to, the one server
//!   (the *home*) they are placed at, and the opcode 13/14 exchanges that place them. The
//!   rules for moving the home live with the client's glue, `endpoint/client/subs.rs`, which
//!   drives these exchanges through their own outbox.
//! - [`ClientSubs`] (server): which sessions subscribe to which targets (opcode 13 from
//!   clients), indexed both ways and bounded, so a broker forwards a message only to its
//!   target's subscribers. The server's glue is `endpoint/server/subs.rs`; the targets a
//!   server takes itself (announced with opcode 13 to every client) are `Server::subscribe`'s.
//!
//! What the endpoints hand in and get back: they parse opcodes 13 and 14 (and ACKs) and call
//! `learn`/`forget`/`subscribe`/`unsubscribe` here; the tables set no timers of their own (the
//! exchanges' retries are their outbox's, the client's `Subscriptions` timer); what is sent is
//! an ACK for every opcode 13/14 accepted, and the client's exchanges. Events (emitted by the
//! server's glue): `ClientSubscribed` and `ClientUnsubscribed`.
//!
//! Every table is bounded; a subscription beyond a bound is refused with
//! [`TableFull`] and left unacknowledged, so the peer retries or gives up.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::reliability::{Outbox, OwnedMessage};
use crate::time::{Duration, Instant};
use crate::util::VecMap;

/// A table is at its bound: the entry was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableFull;

/// The bounds of a client's [`SubscriberTable`] (from `ClientConfig`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubscriberBounds {
    /// Most targets known.
    pub(crate) max_targets: usize,
    /// Most servers known per target.
    pub(crate) max_servers: usize,
    /// How long a confirmation counts without a live session.
    pub(crate) ttl: Duration,
}

/// A client's knowledge of which servers take which targets.
#[derive(Clone, Debug, Default)]
pub(crate) struct SubscriberTable {
    /// Target -> server -> when it last confirmed the subscription. Bounded by
    /// `max_targets` x `max_servers`.
    /// (`VecMap`s: a client knows a few targets and servers, and issue 20 counts its bytes.)
    by_target: VecMap<Target, VecMap<SocketAddr, Instant>>,
}

/// A target as the subscriber table keys it, looked up by its bytes: an acknowledged
/// message's target needs no UTF-8 check to be found, and one lookup in the image serves
/// every caller. The order of `str` is that of its bytes, so the table stays sorted.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target(String);

impl core::borrow::Borrow<[u8]> for Target {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Printed as the `String` it wraps, as the table printed before it had its own key type.
impl core::fmt::Debug for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl SubscriberTable {
    /// The server at `addr` takes `target` (its opcode 13, or its ACK of a message to the
    /// target), confirmed at `now`. A new target beyond the bound first makes room by
    /// forgetting confirmations older than the TTL; a new server beyond the per-target bound
    /// is not recorded.
    pub(crate) fn learn(
        &mut self,
        bounds: SubscriberBounds,
        now: Instant,
        target: &str,
        addr: SocketAddr,
    ) -> Result<(), TableFull> {
        if self.refresh(bounds, now, target.as_bytes(), addr) {
            return Ok(());
        }
        if self.by_target.len() >= bounds.max_targets {
            self.by_target.retain(|_, m| {
                m.retain(|_, t| now - *t < bounds.ttl);
                !m.is_empty()
            });
            if self.by_target.len() >= bounds.max_targets {
                return Err(TableFull);
            }
        }
        Self::confirm(
            self.by_target
                .get_or_insert_with(Target(target.into()), VecMap::new),
            bounds,
            now,
            addr,
        );
        Ok(())
    }

    /// [`learn`](Self::learn) for the target of a message that `addr` acknowledged (once per
    /// acknowledged message, issue 19): a known target is found by its bytes, so only a new
    /// one is read as a `&str`.
    pub(crate) fn learn_message(
        &mut self,
        bounds: SubscriberBounds,
        now: Instant,
        message: &OwnedMessage,
        addr: SocketAddr,
    ) -> Result<(), TableFull> {
        if self.refresh(bounds, now, message.target_bytes(), addr) {
            return Ok(());
        }
        self.learn(bounds, now, message.target(), addr)
    }

    /// Confirms a known target, found by its bytes; `false` if it is new. A known target
    /// (every ACK of a message to it) is refreshed without allocating its key again: this
    /// runs once per acknowledged message (issue 19).
    fn refresh(
        &mut self,
        bounds: SubscriberBounds,
        now: Instant,
        target: &[u8],
        addr: SocketAddr,
    ) -> bool {
        let Some(entry) = self.by_target.get_mut(target) else {
            return false;
        };
        Self::confirm(entry, bounds, now, addr);
        true
    }

    /// Records that `addr` confirmed a target at `now`, within the per-target bound.
    fn confirm(
        servers: &mut VecMap<SocketAddr, Instant>,
        bounds: SubscriberBounds,
        now: Instant,
        addr: SocketAddr,
    ) {
        if servers.len() < bounds.max_servers || servers.contains_key(&addr) {
            servers.insert(addr, now);
        }
    }

    /// The server at `addr` no longer takes `target` (its opcode 14).
    pub(crate) fn forget(&mut self, target: &str, addr: SocketAddr) {
        if let Some(m) = self.by_target.get_mut(target.as_bytes()) {
            m.remove(&addr);
            if m.is_empty() {
                self.by_target.remove(target.as_bytes());
            }
        }
    }

    /// The servers known to take `target`: confirmed within `ttl`, or `live` (holding a live
    /// session with us: a subscription lasts as long as the server process, which
    /// re-announces it to every new session).
    pub(crate) fn subscribers(
        &self,
        now: Instant,
        ttl: Duration,
        target: &str,
        live: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        self.by_target
            .get(target.as_bytes())
            .map(|m| {
                m.iter()
                    .filter(|(a, seen)| now - **seen < ttl || live(a))
                    .map(|(a, _)| *a)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A client's own subscriptions at servers (opcodes 13 and 14 sent by it).
#[derive(Debug)]
pub(crate) struct Subscriptions {
    /// Targets the application subscribed to.
    pub(crate) wanted: BTreeSet<String>,
    /// The server every target is placed at, if any session exists.
    pub(crate) home: Option<SocketAddr>,
    /// Targets the home acknowledged since it became home (or since its last new session).
    pub(crate) placed: BTreeSet<String>,
    /// Subscribe and unsubscribe exchanges in flight, each to one server.
    pub(crate) exchanges: Outbox,
    /// Where each exchange goes, by its id.
    pub(crate) dest: BTreeMap<u64, SocketAddr>,
}

impl Subscriptions {
    /// No subscriptions; exchanges bounded as the client's outbox is.
    pub(crate) fn new(max_queued: usize, max_in_flight: usize) -> Self {
        Subscriptions {
            wanted: BTreeSet::new(),
            home: None,
            placed: BTreeSet::new(),
            exchanges: Outbox::new(max_queued, max_in_flight),
            dest: BTreeMap::new(),
        }
    }
}

/// The bounds of a server's [`ClientSubs`] (from `ServerConfig`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientSubBounds {
    /// Most targets one session subscribes to.
    pub(crate) per_client: usize,
    /// Most subscriptions over all sessions.
    pub(crate) total: usize,
}

/// A server's table of its clients' subscriptions, indexed both ways.
#[derive(Debug, Default)]
pub(crate) struct ClientSubs {
    by_target: BTreeMap<String, BTreeSet<SocketAddr>>,
    by_client: BTreeMap<SocketAddr, BTreeSet<String>>,
    total: usize,
}

impl ClientSubs {
    /// The session at `addr` subscribes to `target`. `Ok(true)` for a new subscription,
    /// `Ok(false)` for one already held (a retry whose ACK was lost).
    pub(crate) fn subscribe(
        &mut self,
        bounds: ClientSubBounds,
        addr: SocketAddr,
        target: &str,
    ) -> Result<bool, TableFull> {
        if self.holds(addr, target) {
            return Ok(false);
        }
        let mine = self.by_client.get(&addr).map_or(0, BTreeSet::len);
        if mine >= bounds.per_client || self.total >= bounds.total {
            return Err(TableFull);
        }
        self.by_client
            .entry(addr)
            .or_default()
            .insert(target.into());
        self.by_target
            .entry(target.into())
            .or_default()
            .insert(addr);
        self.total += 1;
        Ok(true)
    }

    /// Whether the session at `addr` subscribes to `target`.
    pub(crate) fn holds(&self, addr: SocketAddr, target: &str) -> bool {
        self.by_client
            .get(&addr)
            .is_some_and(|s| s.contains(target))
    }

    /// The sessions subscribed to `target`.
    pub(crate) fn subscribers(&self, target: &str) -> impl Iterator<Item = &SocketAddr> + '_ {
        self.by_target.get(target).into_iter().flatten()
    }

    /// The targets the session at `addr` subscribes to.
    pub(crate) fn subscriptions(&self, addr: SocketAddr) -> impl Iterator<Item = &str> + '_ {
        self.by_client
            .get(&addr)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The session at `addr` withdraws `target`; false if it did not hold it.
    pub(crate) fn remove(&mut self, addr: SocketAddr, target: &str) -> bool {
        let removed = self
            .by_client
            .get_mut(&addr)
            .is_some_and(|s| s.remove(target));
        if !removed {
            return false;
        }
        if self.by_client.get(&addr).is_some_and(BTreeSet::is_empty) {
            self.by_client.remove(&addr);
        }
        if let Some(s) = self.by_target.get_mut(target) {
            s.remove(&addr);
            if s.is_empty() {
                self.by_target.remove(target);
            }
        }
        self.total -= 1;
        true
    }

    /// The session at `addr` ended: forgets its subscriptions and returns them.
    pub(crate) fn forget(&mut self, addr: SocketAddr) -> Vec<String> {
        let targets: Vec<String> = self.subscriptions(addr).map(String::from).collect();
        for target in &targets {
            self.remove(addr, target);
        }
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_subscriber_table_is_bounded_and_makes_room_from_stale_entries() {
        let b = SubscriberBounds {
            max_targets: 2,
            max_servers: 1,
            ttl: ms(100),
        };
        let mut t = SubscriberTable::default();
        let t0 = Instant::from_millis(1000);
        assert_eq!(t.learn(b, t0, "a", addr(1)), Ok(()));
        assert_eq!(t.learn(b, t0, "b", addr(1)), Ok(()));
        assert_eq!(t.learn(b, t0, "c", addr(1)), Err(TableFull));
        // A second server for a target is beyond its bound: not recorded.
        t.learn(b, t0, "a", addr(2)).unwrap();
        assert_eq!(t.subscribers(t0, b.ttl, "a", |_| false), [addr(1)]);
        // Once the old confirmations are stale, a new target takes their room.
        assert_eq!(t.learn(b, t0 + ms(100), "c", addr(1)), Ok(()));
        assert!(t
            .subscribers(t0 + ms(100), b.ttl, "a", |_| false)
            .is_empty());
    }

    #[test]
    fn a_subscriber_counts_while_confirmed_or_live() {
        let b = SubscriberBounds {
            max_targets: 8,
            max_servers: 8,
            ttl: ms(100),
        };
        let mut t = SubscriberTable::default();
        let t0 = Instant::from_millis(1000);
        t.learn(b, t0, "a", addr(1)).unwrap();
        t.learn(b, t0, "a", addr(2)).unwrap();
        let later = t0 + ms(100);
        assert!(t.subscribers(later, b.ttl, "a", |_| false).is_empty());
        assert_eq!(
            t.subscribers(later, b.ttl, "a", |a| *a == addr(2)),
            [addr(2)]
        );
        t.forget("a", addr(2));
        assert_eq!(t.subscribers(t0, b.ttl, "a", |_| true), [addr(1)]);
    }

    #[test]
    fn a_known_target_is_refreshed_while_the_table_is_full() {
        let b = SubscriberBounds {
            max_targets: 2,
            max_servers: 1,
            ttl: ms(100),
        };
        let mut t = SubscriberTable::default();
        let t0 = Instant::from_millis(1000);
        t.learn(b, t0, "a", addr(1)).unwrap();
        t.learn(b, t0, "b", addr(1)).unwrap();
        // The table is full, but "a" is known: its confirmation moves on.
        assert_eq!(t.learn(b, t0 + ms(60), "a", addr(1)), Ok(()));
        let later = t0 + ms(120);
        assert_eq!(t.subscribers(later, b.ttl, "a", |_| false), [addr(1)]);
        // "b" went stale, so a new target takes its room and "a" stays.
        assert_eq!(t.learn(b, later, "c", addr(1)), Ok(()));
        assert_eq!(t.subscribers(later, b.ttl, "a", |_| false), [addr(1)]);
        assert!(t.subscribers(later, b.ttl, "b", |_| true).is_empty());
    }

    /// The table as it was before a known target stopped allocating its key on every
    /// confirmation: the model `learn` must match, step for step.
    fn learn_model(
        t: &mut BTreeMap<String, BTreeMap<SocketAddr, Instant>>,
        b: SubscriberBounds,
        now: Instant,
        target: &str,
        addr: SocketAddr,
    ) -> Result<(), TableFull> {
        if !t.contains_key(target) && t.len() >= b.max_targets {
            t.retain(|_, m| {
                m.retain(|_, s| now - *s < b.ttl);
                !m.is_empty()
            });
            if t.len() >= b.max_targets {
                return Err(TableFull);
            }
        }
        let entry = t.entry(target.into()).or_default();
        if entry.len() < b.max_servers || entry.contains_key(&addr) {
            entry.insert(addr, now);
        }
        Ok(())
    }

    quickcheck::quickcheck! {
        /// Random confirmations of a few targets by a few servers, over time: the table
        /// answers and holds exactly what the model does.
        fn learn_matches_the_model(steps: Vec<(u8, u8, u8)>, max_targets: u8, max_servers: u8) -> bool {
            let b = SubscriberBounds {
                max_targets: usize::from(max_targets % 4) + 1,
                max_servers: usize::from(max_servers % 3) + 1,
                ttl: ms(100),
            };
            let (mut t, mut model) = (SubscriberTable::default(), BTreeMap::new());
            let mut now = Instant::from_millis(1000);
            steps.iter().all(|&(target, server, dt)| {
                now += ms(u64::from(dt % 64));
                let target = ["a", "b", "c", "d", "e"][usize::from(target % 5)];
                let server = addr(u16::from(server % 4));
                t.learn(b, now, target, server) == learn_model(&mut model, b, now, target, server)
                    && t.by_target.len() == model.len()
                    && t.by_target.iter().zip(&model).all(|((k, m), (mk, mm))| {
                        k.0 == *mk && m.iter().eq(mm.iter())
                    })
            })
        }
    }

    quickcheck::quickcheck! {
        /// Random confirmations, each both as a target and as a message to it: the lookup by
        /// bytes answers and updates exactly as the lookup by `&str`, whatever the targets
        /// (prefixes of one another, multi-byte characters, any order of arrival).
        fn learning_a_message_is_learning_its_target(steps: Vec<(u8, u8, u8)>, max_targets: u8) -> bool {
            let b = SubscriberBounds {
                max_targets: usize::from(max_targets % 4) + 1,
                max_servers: 2,
                ttl: ms(100),
            };
            let targets = ["a", "ab", "b", "é", "éa", "\u{1F600}", "z"];
            let (mut by_str, mut by_message) = (SubscriberTable::default(), SubscriberTable::default());
            let mut now = Instant::from_millis(1000);
            steps.iter().all(|&(target, server, dt)| {
                now += ms(u64::from(dt % 64));
                let target = targets[usize::from(target) % targets.len()];
                let server = addr(u16::from(server % 3));
                let message = OwnedMessage::new(target, "n", b"p");
                by_str.learn(b, now, target, server)
                    == by_message.learn_message(b, now, &message, server)
                    && by_str.by_target == by_message.by_target
            })
        }
    }

    #[test]
    fn client_subscriptions_are_bounded_per_client_and_in_all() {
        let b = ClientSubBounds {
            per_client: 2,
            total: 3,
        };
        let mut s = ClientSubs::default();
        assert_eq!(s.subscribe(b, addr(1), "a"), Ok(true));
        assert_eq!(s.subscribe(b, addr(1), "a"), Ok(false));
        assert_eq!(s.subscribe(b, addr(1), "b"), Ok(true));
        assert_eq!(s.subscribe(b, addr(1), "c"), Err(TableFull));
        assert_eq!(s.subscribe(b, addr(2), "a"), Ok(true));
        assert_eq!(s.subscribe(b, addr(3), "a"), Err(TableFull));
        assert_eq!(s.subscribers("a").count(), 2);
        assert_eq!(s.forget(addr(1)), ["a", "b"]);
        assert!(!s.holds(addr(1), "a"));
        assert_eq!(s.subscribers("a").copied().collect::<Vec<_>>(), [addr(2)]);
        assert_eq!(s.subscribe(b, addr(3), "a"), Ok(true));
    }
}
