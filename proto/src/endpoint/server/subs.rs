//! Client subscriptions held by a server (opcodes 13 and 14 received from clients,
//! `docs/PROTOCOL.md` §9.6): which sessions want the messages of which target, so that an
//! application broker forwards a message only to its target's subscribers.
//!
//! Bounded: at most `max_subscriptions_per_client` targets per session and
//! `max_client_subscriptions` in all; a subscription beyond either bound is not acknowledged.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::id::{Counter, PeerId};

use super::super::{DropReason, Outgoing, ServerEvent};
use super::Server;

/// The subscription table, indexed both ways.
#[derive(Debug, Default)]
pub(super) struct ClientSubs {
    by_target: BTreeMap<String, BTreeSet<SocketAddr>>,
    by_client: BTreeMap<SocketAddr, BTreeSet<String>>,
    total: usize,
}

impl Server {
    /// The clients subscribed to `target` (opcode 13 from a client), with their identities:
    /// the sessions a broker forwards that target's messages to.
    pub fn client_subscribers(
        &self,
        target: &str,
    ) -> impl Iterator<Item = (SocketAddr, PeerId)> + '_ {
        self.client_subs
            .by_target
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|a| self.sessions.get(a).map(|s| (*a, s.peer)))
    }

    /// The targets the client at `addr` subscribes to.
    pub fn client_subscriptions(&self, addr: SocketAddr) -> impl Iterator<Item = &str> + '_ {
        self.client_subs
            .by_client
            .get(&addr)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Opcode 13 from the client at `from`: record it and acknowledge it, or leave it
    /// unacknowledged when a bound is reached.
    pub(super) fn on_client_subscribe(
        &mut self,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        target: &str,
    ) {
        let t = &mut self.client_subs;
        let mine = t.by_client.get(&from).map_or(0, BTreeSet::len);
        let known = t.by_client.get(&from).is_some_and(|s| s.contains(target));
        if !known {
            if mine >= self.config.max_subscriptions_per_client
                || t.total >= self.config.max_client_subscriptions
            {
                return self.stats.drop(DropReason::TableFull);
            }
            t.by_client.entry(from).or_default().insert(target.into());
            t.by_target.entry(target.into()).or_default().insert(from);
            t.total += 1;
            self.events.push_back(ServerEvent::ClientSubscribed {
                addr: from,
                peer,
                target: target.into(),
            });
        }
        self.tx.push_back(Outgoing::Ack { to: from, counter });
    }

    /// Opcode 14 from the client at `from`: forget the subscription and acknowledge.
    pub(super) fn on_client_unsubscribe(
        &mut self,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        target: &str,
    ) {
        if self.client_subs.remove(from, target) {
            self.events.push_back(ServerEvent::ClientUnsubscribed {
                addr: from,
                peer,
                target: target.into(),
            });
        }
        self.tx.push_back(Outgoing::Ack { to: from, counter });
    }

    /// The session at `addr` ended (or another client process took the address): its
    /// subscriptions go, each reported as withdrawn.
    pub(super) fn forget_client_subs(&mut self, addr: SocketAddr, peer: PeerId) {
        let targets: Vec<String> = self
            .client_subs
            .by_client
            .get(&addr)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for target in targets {
            self.client_subs.remove(addr, &target);
            self.events
                .push_back(ServerEvent::ClientUnsubscribed { addr, peer, target });
        }
    }
}

impl ClientSubs {
    /// Whether the session at `addr` subscribes to `target`.
    pub(super) fn holds(&self, addr: SocketAddr, target: &str) -> bool {
        self.by_client
            .get(&addr)
            .is_some_and(|s| s.contains(target))
    }

    fn remove(&mut self, addr: SocketAddr, target: &str) -> bool {
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
}
