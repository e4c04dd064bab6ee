//! Suite 3 group keys (docs/PROTOCOL.md §12.11): a multicast client seals its sends to the
//! group under one key that it delivers to every server over that server's own session.
//!
//! - The client side is [`GroupState`]: our sender id, the key we seal with, the next key while
//!   we rotate, and the reliable deliveries of op 32 (one exchange per server and key). Sealing
//!   switches to a new key only once the round that brought it has closed and no delivery of
//!   it is outstanding, so every server holds it by then.
//! - The server side is [`GroupSenders`]: for each client that gave us a key, its two newest
//!   keys, found by the sender id of its group data packets, at most one entry per session.
//!
//! Wire bytes: none parsed here. Op 32 (`App::GroupKey`) and group data packets (type 6) are
//! parsed in `wire`; the endpoints hand the fields in. Timers: the deliveries' retransmission
//! and expiry deadlines, from their outbox ([`GroupState::deliveries`]), which the client's
//! `poll_timeout` includes. Events: none; deliveries are internal exchanges, and the client
//! reports readiness through its own events.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::noise::ChaChaKey;
use crate::endpoint::Limits;
use crate::id::PeerId;
use crate::reliability::{GroupKeyDelivery, InFlight, Outbox, Payload};
use crate::rng::Rng;
use crate::session::{GroupTx, TxKey};
use crate::time::Instant;
use crate::wire::noise::{KeyId, SenderId};

/// A multicast client's sending state (§12.11).
#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) sender: SenderId,
    /// The key our group packets are sealed with.
    pub(crate) current: (KeyId, ChaChaKey),
    /// Some server acknowledged `current`: group sends may start.
    pub(crate) ready: bool,
    /// A newer key being delivered; sealing switches to it once the round that brought it has
    /// closed and no delivery of it is outstanding, so every server holds it by then.
    pub(crate) next: Option<(KeyId, ChaChaKey)>,
    /// A rekey is due: the next round also brings a new group key.
    pub(crate) rotate: bool,
    /// Deliveries of our keys (op 32), one reliable exchange per server and key.
    pub(crate) deliveries: Outbox,
}

/// What a finished delivery of one of our keys means for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliveryDone {
    /// The first key was acknowledged: group sends may start, sealed with [`GroupState::sealer`].
    Ready,
    /// Nobody took our first key: the group must be looked for again.
    Lost,
    /// Nothing changes for the client.
    Quiet,
}

impl GroupState {
    /// A new sender id and first key, drawn from `rng`.
    pub(crate) fn new(rng: &mut Rng, limits: &Limits) -> Self {
        GroupState {
            sender: SenderId(rng.next_u64()),
            current: (KeyId(1), ChaChaKey::from_bytes(rng.array())),
            ready: false,
            next: None,
            rotate: false,
            deliveries: Outbox::new(limits.max_queued, limits.max_in_flight),
        }
    }

    /// The send key of our group packets, under the current key.
    pub(crate) fn sealer(&self) -> TxKey {
        TxKey::Group(Box::new(GroupTx {
            key: self.current.1.clone(),
            sender: self.sender,
            key_id: self.current.0,
        }))
    }

    /// Whether a delivery to `to` (of key `id`, or of any key) is queued or in flight.
    pub(crate) fn delivering(&self, to: SocketAddr, id: Option<KeyId>) -> bool {
        self.deliveries.iter().any(|e| {
            matches!(&e.payload, Payload::GroupKey(d)
                if d.to == to && id.is_none_or(|i| i == d.key_id))
        })
    }

    /// A round is about to start: if a rekey is due (and the current key is in use, and no
    /// other is on its way), makes the next key from `rng`. True if it did: every server
    /// needs it then.
    pub(crate) fn start_rotation(&mut self, rng: &mut Rng) -> bool {
        if !(self.rotate && self.ready && self.next.is_none()) {
            return false;
        }
        let id = KeyId(self.current.0 .0.wrapping_add(1));
        self.next = Some((id, ChaChaKey::from_bytes(rng.array())));
        self.rotate = false;
        true
    }

    /// Queues a delivery of every key `to` should hold: the one we seal with (unless
    /// `with_current` is false) and, while we rotate, the next one, with exchange ids from
    /// `next_id` on (advanced past those used). Deliveries to `to` already queued go out again
    /// at once, under the session's newest keys.
    pub(crate) fn queue_deliveries(
        &mut self,
        now: Instant,
        deadline: Instant,
        to: SocketAddr,
        with_current: bool,
        next_id: &mut u64,
    ) {
        self.deliveries
            .retry_now_where(now, |e| delivery_to(e) == Some(to));
        let current = with_current.then(|| self.current.clone());
        let keys: Vec<(KeyId, ChaChaKey)> =
            [current, self.next.clone()].into_iter().flatten().collect();
        for (key_id, key) in keys {
            if self.delivering(to, Some(key_id)) {
                continue;
            }
            let payload = Payload::GroupKey(Box::new(GroupKeyDelivery {
                to,
                sender: self.sender,
                key_id,
                key,
            }));
            if self
                .deliveries
                .push(*next_id, payload, true, deadline)
                .is_ok()
            {
                *next_id += 1;
            }
        }
    }

    /// Whether a delivery to `from` went out and was retransmitted without an answer.
    pub(crate) fn resent_to(&self, from: SocketAddr) -> bool {
        self.deliveries
            .iter()
            .any(|e| delivery_to(e) == Some(from) && e.retransmissions > 0)
    }

    /// A delivery of key `key_id` was acknowledged (`acked`) or expired.
    pub(crate) fn on_delivery_done(&mut self, key_id: KeyId, acked: bool) -> DeliveryDone {
        if acked && key_id == self.current.0 && !self.ready {
            self.ready = true;
            DeliveryDone::Ready
        } else if !acked && !self.ready && self.deliveries.is_empty() {
            DeliveryDone::Lost
        } else {
            DeliveryDone::Quiet
        }
    }

    /// Switches sealing to the next key once its round closed (`round_open` false) and every
    /// delivery of it is acknowledged or expired. Servers keep the old key too, for packets
    /// still in flight. True if it switched.
    pub(crate) fn maybe_switch(&mut self, round_open: bool) -> bool {
        let Some((id, _)) = &self.next else {
            return false;
        };
        let id = *id;
        let outstanding = self
            .deliveries
            .iter()
            .any(|e| matches!(&e.payload, Payload::GroupKey(d) if d.key_id == id));
        if round_open || outstanding {
            return false;
        }
        match self.next.take() {
            Some(next) => {
                self.current = next;
                self.ready = true;
                true
            }
            None => false,
        }
    }
}

/// The server a delivery goes to.
pub(crate) fn delivery_to(e: &InFlight) -> Option<SocketAddr> {
    match &e.payload {
        Payload::GroupKey(d) => Some(d.to),
        _ => None,
    }
}

/// A client's multicast keys (§12.11), found by the sender id of its group data packets.
#[derive(Debug)]
struct GroupSender {
    /// The client; the server finds its session by this identity, wherever it roams.
    peer: PeerId,
    /// The two newest keys the client gave us (by key id): the one it seals with, and the
    /// one before or after it while it rotates.
    keys: [Option<(KeyId, ChaChaKey)>; 2],
}

impl GroupSender {
    fn key(&self, id: KeyId) -> Option<&ChaChaKey> {
        self.keys
            .iter()
            .flatten()
            .find(|(i, _)| *i == id)
            .map(|(_, k)| k)
    }

    /// Keeps the two newest ids, whatever order deliveries arrive in.
    fn install(&mut self, id: KeyId, key: ChaChaKey) {
        if let Some(slot) = self.keys.iter_mut().flatten().find(|(i, _)| *i == id) {
            slot.1 = key;
            return;
        }
        if let Some(slot) = self.keys.iter_mut().find(|k| k.is_none()) {
            *slot = Some((id, key));
            return;
        }
        let oldest = self
            .keys
            .iter_mut()
            .min_by_key(|k| k.as_ref().map(|(i, _)| *i));
        if let Some(slot) = oldest {
            if slot.as_ref().is_some_and(|(i, _)| *i < id) {
                *slot = Some((id, key));
            }
        }
    }
}

/// Why a client's key was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotYours;

/// The server's table of multicast senders: at most one entry per session, made only by that
/// session's authenticated client (op 32 over its own session).
#[derive(Debug, Default)]
pub(crate) struct GroupSenders {
    groups: BTreeMap<SenderId, GroupSender>,
    /// The sender id each client registered, so that a new one replaces the old.
    group_of: BTreeMap<PeerId, SenderId>,
}

impl GroupSenders {
    /// Records key `key_id` of `peer`, which sends as `sender`.
    ///
    /// # Errors
    /// [`NotYours`] if another client registered `sender` (a 2^-64 collision, or a member's
    /// hijack attempt).
    pub(crate) fn install(
        &mut self,
        peer: PeerId,
        sender: SenderId,
        key_id: KeyId,
        key: ChaChaKey,
    ) -> Result<(), NotYours> {
        if self.groups.get(&sender).is_some_and(|g| g.peer != peer) {
            return Err(NotYours);
        }
        if let Some(old) = self.group_of.insert(peer, sender).filter(|o| *o != sender) {
            self.groups.remove(&old);
        }
        self.groups
            .entry(sender)
            .or_insert(GroupSender {
                peer,
                keys: [None, None],
            })
            .install(key_id, key);
        Ok(())
    }

    /// The key a group packet names, and the client it belongs to.
    pub(crate) fn key(&self, sender: SenderId, key_id: KeyId) -> Option<(&ChaChaKey, PeerId)> {
        let g = self.groups.get(&sender)?;
        Some((g.key(key_id)?, g.peer))
    }

    /// Forgets the keys of `peer`, whose session ended.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        if let Some(sender) = self.group_of.remove(&peer) {
            self.groups.remove(&sender);
        }
    }

    /// Senders whose keys we hold.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ClientId;

    fn ids(g: &GroupSender) -> Vec<u32> {
        let mut v: Vec<u32> = g.keys.iter().flatten().map(|(i, _)| i.0).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_sender_keeps_its_two_newest_keys_whatever_the_delivery_order() {
        let mut g = GroupSender {
            peer: PeerId::Client(ClientId([1; 16])),
            keys: [None, None],
        };
        let k = |b: u8| ChaChaKey::from_bytes([b; 32]);
        g.install(KeyId(2), k(2));
        g.install(KeyId(1), k(1));
        assert_eq!(ids(&g), [1, 2]);
        g.install(KeyId(3), k(3));
        assert_eq!(ids(&g), [2, 3], "the oldest goes");
        g.install(KeyId(1), k(1));
        assert_eq!(
            ids(&g),
            [2, 3],
            "a late delivery of an old key changes nothing"
        );
        g.install(KeyId(3), k(33));
        assert_eq!(g.key(KeyId(3)), Some(&k(33)), "a repeat replaces in place");
        assert_eq!(g.key(KeyId(1)), None);
    }

    #[test]
    fn a_sender_id_belongs_to_the_client_that_registered_it_and_a_new_one_replaces_it() {
        let (a, b) = (
            PeerId::Client(ClientId([1; 16])),
            PeerId::Client(ClientId([2; 16])),
        );
        let k = |x: u8| ChaChaKey::from_bytes([x; 32]);
        let mut t = GroupSenders::default();
        assert_eq!(t.install(a, SenderId(5), KeyId(1), k(1)), Ok(()));
        assert_eq!(t.install(b, SenderId(5), KeyId(2), k(2)), Err(NotYours));
        assert_eq!(t.key(SenderId(5), KeyId(1)).map(|(_, p)| p), Some(a));
        assert_eq!(t.install(a, SenderId(6), KeyId(1), k(3)), Ok(()));
        assert!(
            t.key(SenderId(5), KeyId(1)).is_none(),
            "the old sender id is gone"
        );
        assert_eq!(t.len(), 1);
        t.forget(a);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn sealing_switches_only_after_the_round_and_the_deliveries() {
        let limits = Limits::default();
        let mut rng = Rng::from_seed([3; 32]);
        let mut g = GroupState::new(&mut rng, &limits);
        g.rotate = true;
        assert!(
            !g.start_rotation(&mut rng),
            "no rotation before the first key is in use"
        );
        let to = SocketAddr::from(([10, 0, 0, 1], 1783));
        let now = Instant::ZERO;
        let mut id = 1;
        g.queue_deliveries(now, now, to, true, &mut id);
        assert_eq!(g.on_delivery_done(KeyId(1), true), DeliveryDone::Ready);
        assert!(g.start_rotation(&mut rng));
        g.queue_deliveries(now, now, to, false, &mut id);
        assert!(g.delivering(to, Some(KeyId(2))));
        assert!(
            !g.maybe_switch(false),
            "a delivery of the next key is outstanding"
        );
        g.deliveries.drain().for_each(drop);
        assert!(!g.maybe_switch(true), "the round is still open");
        assert!(g.maybe_switch(false));
        assert_eq!(g.current.0, KeyId(2));
    }
}
