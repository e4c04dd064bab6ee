//! Which of a site's bridges publishes (`docs/BRIDGE.md`, "Several bridges"): the leader is
//! the online bridge with the smallest id, as each bridge sees it through the broker's
//! retained presence topics (`{prefix}/{site}/bridges/{bridge}`: `online` while connected,
//! the last will `offline` after).
//!
//! There is no vote and no message between bridges: each computes the same function of the
//! same retained state, so bridges that saw the same states agree (quickcheck below). While
//! their views differ (a state still on its way), two bridges can both publish a message;
//! the `pav-id` of [`super::dedupe`] lets consumers drop the second, and a standby never
//! drops a message it was not shown published ([`super::dedupe::Standby`]).

use std::collections::BTreeSet;
use std::fmt;

/// A bridge's id within its site (`bridge_id` in the configuration). Ids order as byte
/// strings; the smallest online one leads.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BridgeId(pub String);

impl fmt::Display for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A retained presence state of a bridge.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Presence {
    /// `online`: the bridge is connected to the broker.
    Online,
    /// `offline` (its last will, or its clean exit), an empty (cleared) retained message, or
    /// anything else: only an exact `online` makes a leader.
    Offline,
}

impl Presence {
    /// The payload published for this state.
    pub const fn payload(self) -> &'static [u8] {
        match self {
            Presence::Online => b"online",
            Presence::Offline => b"offline",
        }
    }

    /// The state a retained payload announces.
    pub fn of_payload(payload: &[u8]) -> Self {
        if payload == b"online" {
            Presence::Online
        } else {
            Presence::Offline
        }
    }
}

/// This bridge's part, as far as it knows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Role {
    /// Not connected to the broker: it can publish nothing and leads nothing.
    Disconnected,
    /// It publishes every message at once.
    Leader,
    /// `leader` publishes; this bridge holds each message until it sees that publish.
    Standby {
        /// The bridge it waits for.
        leader: BridgeId,
    },
}

/// One bridge's view of the site's bridges, fed by the retained states it sees and by its own
/// connection.
///
/// Only online bridges are kept, and at most `max_bridges` of them (the broker's clients can
/// publish any number of presence topics; more than a site's real bridges is a
/// misconfiguration, and an ignored one is counted in [`Election::ignored`]).
#[derive(Clone, Debug)]
pub struct Election {
    me: BridgeId,
    connected: bool,
    /// Other bridges last seen `online`; never holds `me`, whose state is its connection.
    online: BTreeSet<BridgeId>,
    max_bridges: usize,
    ignored: u64,
}

impl Election {
    /// The view of bridge `me`, not yet connected, keeping at most `max_bridges` other
    /// online bridges.
    pub fn new(me: BridgeId, max_bridges: usize) -> Self {
        Election {
            me,
            connected: false,
            online: BTreeSet::new(),
            max_bridges,
            ignored: 0,
        }
    }

    /// Our own connection to the broker is up (we published our `online`). Returns the new
    /// role if it changed.
    pub fn on_connected(&mut self) -> Option<Role> {
        self.change(|e| e.connected = true)
    }

    /// Our own connection is lost. The other bridges' states are kept: on reconnect the
    /// broker re-sends what changed (a persistent session, or the retained states of a new
    /// subscription), and a stale view only risks a second publish, never a lost one.
    pub fn on_lost(&mut self) -> Option<Role> {
        self.change(|e| e.connected = false)
    }

    /// A retained state of `bridge` was seen. Our own topic is ignored: what the broker
    /// holds for us can be our last will from a previous connection, while our connection
    /// is what counts.
    pub fn on_state(&mut self, bridge: BridgeId, state: Presence) -> Option<Role> {
        if bridge == self.me {
            return None;
        }
        self.change(|e| match state {
            Presence::Online => {
                if e.online.len() < e.max_bridges || e.online.contains(&bridge) {
                    e.online.insert(bridge);
                } else {
                    e.ignored += 1;
                }
            }
            Presence::Offline => {
                e.online.remove(&bridge);
            }
        })
    }

    /// Our role now.
    pub fn role(&self) -> Role {
        match self.leader() {
            None => Role::Disconnected,
            Some(l) if *l == self.me => Role::Leader,
            Some(l) => Role::Standby { leader: l.clone() },
        }
    }

    /// The leader as we see it: the smallest online id, ourselves included while connected;
    /// none while we are disconnected (we cannot know, and cannot publish anyway).
    pub fn leader(&self) -> Option<&BridgeId> {
        if !self.connected {
            return None;
        }
        match self.online.first() {
            Some(other) if *other < self.me => Some(other),
            _ => Some(&self.me),
        }
    }

    /// Whether we lead.
    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    /// Our id.
    pub fn me(&self) -> &BridgeId {
        &self.me
    }

    /// How many `online` states were ignored because `max_bridges` were already online.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    fn change(&mut self, f: impl FnOnce(&mut Self)) -> Option<Role> {
        let before = self.role();
        f(self);
        let after = self.role();
        (after != before).then_some(after)
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
