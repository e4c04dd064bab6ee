//! The server's glue for client subscriptions (opcodes 13 and 14 received from clients,
//! `docs/PROTOCOL.md` §9.6): the table itself is [`ClientSubs`](crate::features::pubsub::ClientSubs);
//! here it is fed, acknowledged and reported as `ClientSubscribed`/`ClientUnsubscribed`.
//!
//! Bounded: at most `max_subscriptions_per_client` targets per session and
//! `max_client_subscriptions` in all; a subscription beyond either bound is not acknowledged.

use core::net::SocketAddr;

use crate::features::pubsub::{ClientSubBounds, TableFull};
use crate::id::{Counter, PeerId};

use super::super::{DropReason, Outgoing, ServerEvent};
use super::Server;

impl Server {
    /// The clients subscribed to `target` (opcode 13 from a client), with their identities:
    /// the sessions a broker forwards that target's messages to.
    pub fn client_subscribers(
        &self,
        target: &str,
    ) -> impl Iterator<Item = (SocketAddr, PeerId)> + '_ {
        self.client_subs
            .subscribers(target)
            .filter_map(|a| self.sessions.get(a).map(|s| (*a, s.peer)))
    }

    /// The targets the client at `addr` subscribes to.
    pub fn client_subscriptions(&self, addr: SocketAddr) -> impl Iterator<Item = &str> + '_ {
        self.client_subs.subscriptions(addr)
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
        let bounds = ClientSubBounds {
            per_client: self.config.max_subscriptions_per_client,
            total: self.config.max_client_subscriptions,
        };
        match self.client_subs.subscribe(bounds, from, target) {
            Err(TableFull) => return self.shared.stats.drop(DropReason::TableFull),
            Ok(true) => self.shared.events.push_back(ServerEvent::ClientSubscribed {
                addr: from,
                peer,
                target: target.into(),
            }),
            Ok(false) => {}
        }
        self.shared
            .tx
            .push_back(Outgoing::Ack { to: from, counter });
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
            self.shared
                .events
                .push_back(ServerEvent::ClientUnsubscribed {
                    addr: from,
                    peer,
                    target: target.into(),
                });
        }
        self.shared
            .tx
            .push_back(Outgoing::Ack { to: from, counter });
    }

    /// The session at `addr` ended (or another client process took the address): its
    /// subscriptions go, each reported as withdrawn.
    pub(super) fn forget_client_subs(&mut self, addr: SocketAddr, peer: PeerId) {
        for target in self.client_subs.forget(addr) {
            self.shared
                .events
                .push_back(ServerEvent::ClientUnsubscribed { addr, peer, target });
        }
    }
}
