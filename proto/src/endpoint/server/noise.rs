//! Suite 3 on the server: the Noise responder, sessions found by index (so they follow a client
//! whose address changes), key rotation, and stateless cookies under load.
//!
//! Read first: `docs/PROTOCOL.md` §12, and WireGuard's paper §5.3–5.4 (the responder only
//! trusts new keys once the initiator uses them; cookies before any state under load).
//!
//! Lifecycle of a handshake on this side:
//! ```text
//! initiation ──(cookie needed? reply 25-byte cookie, keep nothing)──> dropped
//!     │ verified, not a replay (same client epoch needs a higher sequence number)
//!     ▼
//! response sent; keys PENDING  (a new client process: in the bounded pending table;
//!                               the same process: attached to its live session)
//!     │ first data packet that opens under the pending keys
//!     ▼
//! keys CURRENT; the old receive key stays PREVIOUS for packets still in flight
//! ```
//! Counters and the replay window belong to the connection, not to a key: a client process
//! (one epoch) keeps one counter sequence across rekeys, so a message resealed under new keys
//! with its old counter is still recognised as a duplicate.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::SocketAddr;

use arrayvec::ArrayVec;

use super::{Server, ServerSession, Via, COUNTER_BASE};
use crate::crypto::ecc;
use crate::crypto::noise::{cookie, ChaChaKey, NoiseResponder, Pattern};
use crate::endpoint::{CloseReason, DropReason, Event, FailReason, Outgoing};
use crate::id::{ClientId, Counter, PeerId};
use crate::reliability::rtt::RttEstimator;
use crate::reliability::{Outbox, Payload};
use crate::rng::Rng;
use crate::session::replay::ReplayWindow;
use crate::session::{open_with, OpenError, RxKey, RxSession, TxKey};
use crate::time::{Duration, Instant};
use crate::wire::noise::{
    Initiation, KeyId, Mode, NoisePacket, Response, SenderId, SessionIndex, DATA_HEADER_LEN,
    GROUP_HEADER_LEN, INITIATION_PAYLOAD_LEN, RESPONSE_MESSAGE_LEN,
};
use crate::wire::SessionPacket;

/// How often the cookie secret changes; a cookie is good for one or two periods.
const COOKIE_ROTATION: Duration = Duration::from_secs(120);

/// Suite 3 state of one session.
#[derive(Debug)]
pub(crate) struct NoiseSession {
    /// The index the client puts on packets to us under the current keys.
    local: SessionIndex,
    /// The client process, and the highest handshake sequence number seen from it.
    epoch: u64,
    last_seq: u64,
    /// Our name for this connection, sent in every response: it changes exactly when our
    /// counters start again (a new session), so the client knows when to reset its window.
    connection: u64,
    /// The receive key before the last rotation, for packets still in flight. Boxed, like
    /// `pending`, because an idle session rarely holds one and every session pays for the
    /// inline size (see the `compare` memory rows).
    previous: Option<Box<(SessionIndex, ChaChaKey)>>,
    /// Keys from a handshake whose first data packet has not arrived yet.
    pending: Option<Box<PendingKeys>>,
}

#[derive(Debug)]
struct PendingKeys {
    local: SessionIndex,
    remote: SessionIndex,
    send: ChaChaKey,
    recv: ChaChaKey,
}

/// A handshake from a new client process, answered but not yet confirmed.
#[derive(Debug)]
struct PendingSession {
    peer: PeerId,
    client_id: ClientId,
    epoch: u64,
    seq: u64,
    connection: u64,
    keys: PendingKeys,
    created: Instant,
}

/// A client's multicast keys (§12.11), found by the sender id of its group data packets.
#[derive(Debug)]
struct GroupSender {
    /// The client; its session is `by_peer[peer]`, wherever it roams.
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

/// The server's suite 3 tables. Everything an unauthenticated peer can make us store is in
/// `pending`, bounded by `max_half_open` and `half_open_timeout`. The multicast sender table
/// holds at most one entry per session, made only by that session's authenticated client.
#[derive(Debug)]
pub(crate) struct ServerNoise {
    by_index: BTreeMap<SessionIndex, SocketAddr>,
    by_peer: BTreeMap<PeerId, SocketAddr>,
    groups: BTreeMap<SenderId, GroupSender>,
    /// The sender id each client registered, so that a new one replaces the old.
    group_of: BTreeMap<PeerId, SenderId>,
    pending: BTreeMap<SessionIndex, PendingSession>,
    cookie_secret: [u8; 32],
    previous_secret: [u8; 32],
    rotated: Option<Instant>,
    rate_window: Instant,
    rate_count: u32,
}

impl ServerNoise {
    pub(crate) fn new(rng: &mut Rng) -> Self {
        ServerNoise {
            by_index: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_of: BTreeMap::new(),
            pending: BTreeMap::new(),
            cookie_secret: rng.array(),
            previous_secret: rng.array(),
            rotated: None,
            rate_window: Instant::ZERO,
            rate_count: 0,
        }
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }
}

impl Server {
    pub(super) fn on_noise(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        packet: NoisePacket<'_>,
    ) {
        match packet {
            NoisePacket::Initiation(i) => self.on_initiation(now, from, &i),
            NoisePacket::Data { receiver, packet } => {
                let header = data.get(..DATA_HEADER_LEN).unwrap_or_default();
                let mut scratch = core::mem::take(&mut self.scratch);
                self.on_noise_data(now, from, header, receiver, &packet, &mut scratch);
                self.scratch = scratch;
            }
            NoisePacket::GroupData {
                sender,
                key,
                packet,
            } => {
                let header = data.get(..GROUP_HEADER_LEN).unwrap_or_default();
                let mut scratch = core::mem::take(&mut self.scratch);
                self.on_group_data(now, from, header, sender, key, &packet, &mut scratch);
                self.scratch = scratch;
            }
            _ => self.stats.drop(DropReason::Unexpected),
        }
    }

    /// A client's send to its group: opened under its group key, de-duplicated with its
    /// session's window, and answered over that session. It never moves the session: any
    /// member of the group could have sealed it.
    #[allow(clippy::too_many_arguments)]
    fn on_group_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        sender: SenderId,
        key_id: KeyId,
        packet: &SessionPacket<'_>,
        scratch: &mut [u8],
    ) {
        let found = self
            .noise
            .groups
            .get(&sender)
            .and_then(|g| Some((g.key(key_id)?, self.noise.by_peer.get(&g.peer).copied()?)));
        let Some((key, addr)) = found else {
            // A server that restarted, or missed a key: the client delivers it again or
            // handshakes.
            self.stats.drop(DropReason::UnknownPeer);
            return self.reply_unknown_sender(now, from, sender, key_id);
        };
        let Some(s) = self.sessions.get_mut(&addr) else {
            return self.stats.drop(DropReason::UnknownPeer);
        };
        let opened = open_with(key, &mut s.rx.replay, packet, header, scratch);
        if let Err((OpenError::Forged, _)) = opened {
            return self.stats.drop(DropReason::Forged);
        }
        if is_replay_from_elsewhere(&opened, addr, from) {
            return self.stats.drop(DropReason::Duplicate);
        }
        self.on_opened(now, addr, packet.counter, opened, Via::Group);
    }

    /// Op 32 over the client's own session: records its group key and acknowledges it.
    pub(super) fn on_group_key(
        &mut self,
        addr: SocketAddr,
        counter: Counter,
        sender: SenderId,
        key_id: KeyId,
        key: &[u8; 32],
    ) {
        let Some(peer) = self
            .sessions
            .get(&addr)
            .filter(|s| s.noise.is_some())
            .map(|s| s.peer)
        else {
            // Suites 1 and 2 share their client's key with the whole group already.
            return self.stats.drop(DropReason::Unsupported);
        };
        let n = &mut self.noise;
        if n.groups.get(&sender).is_some_and(|g| g.peer != peer) {
            // Another client's sender id (a 2^-64 collision, or a member's hijack attempt).
            return self.stats.drop(DropReason::Unexpected);
        }
        if let Some(old) = n.group_of.insert(peer, sender).filter(|o| *o != sender) {
            n.groups.remove(&old);
        }
        n.groups
            .entry(sender)
            .or_insert(GroupSender {
                peer,
                keys: [None, None],
            })
            .install(key_id, ChaChaKey::from_bytes(*key));
        self.tx.push_back(Outgoing::Ack { to: addr, counter });
    }

    /// Type 7: "no such sender or key here", at most once per gap per source, from op 4's
    /// allowance (17 bytes for a group data packet of at least 42).
    fn reply_unknown_sender(&mut self, now: Instant, to: SocketAddr, sender: SenderId, key: KeyId) {
        if self.allow_unrecognized(now, to) {
            self.send_packet(to, &NoisePacket::UnknownSender { sender, key });
        }
    }

    /// Whether the handshake load calls for cookies: too many half-open handshakes, or too
    /// many initiations this second.
    fn under_load(&mut self, now: Instant) -> bool {
        let n = &mut self.noise;
        if now - n.rate_window >= Duration::from_secs(1) {
            n.rate_window = now;
            n.rate_count = 0;
        }
        n.rate_count = n.rate_count.saturating_add(1);
        n.pending.len() >= self.config.cookie_threshold || n.rate_count > self.config.cookie_rate
    }

    fn on_initiation(&mut self, now: Instant, from: SocketAddr, i: &Initiation<'_>) {
        if self.under_load(now) {
            let n = &self.noise;
            let valid = [n.cookie_secret, n.previous_secret]
                .iter()
                .any(|s| crate::crypto::ct_eq(&cookie(s, from), &i.cookie));
            if !valid {
                // Stateless: no Diffie-Hellman, nothing stored, not even in the reply budget
                // (a flood must not be able to deny a client its cookie), and 25 bytes for
                // 106 or more, so it cannot amplify.
                let reply = NoisePacket::CookieReply {
                    receiver: i.sender,
                    cookie: cookie(&self.noise.cookie_secret, from),
                };
                self.stats.cookie_replies += 1;
                self.send_packet(from, &reply);
                return;
            }
        }
        // Every Diffie-Hellman below is paid for by the reply budget.
        if !self.allow_reply(now, from) {
            return;
        }
        let pattern = match i.mode {
            Mode::Ik => Pattern::Ik,
            Mode::IkPsk2 => Pattern::IkPsk2,
            _ => Pattern::NnPsk0,
        };
        let nn_psk = match i.client_id {
            Some(id) => match self.config.psk_clients.get(&id) {
                Some(psk) => Some(psk.clone()),
                None => {
                    self.auth_failed(now, from);
                    return self.stats.drop(DropReason::BadHandshake);
                }
            },
            None => None,
        };
        self.stats.public_key_ops += dh_count(pattern, Step::Start);
        let Ok(mut responder) = NoiseResponder::new(
            pattern,
            &mut self.rng,
            self.config.keys.as_ref(),
            nn_psk.as_ref(),
        ) else {
            return self.stats.drop(DropReason::Unsupported);
        };
        let mut payload = [0u8; INITIATION_PAYLOAD_LEN];
        self.stats.public_key_ops += dh_count(pattern, Step::Read);
        if !matches!(
            responder.read_initiation(i.message, &mut payload),
            Ok(INITIATION_PAYLOAD_LEN)
        ) {
            // Sealed to another static key, or under another PSK.
            self.auth_failed(now, from);
            return self.stats.drop(DropReason::BadHandshake);
        }
        let Some((peer, client_id)) = self.identify(pattern, i.client_id, &mut responder) else {
            // A static key we do not know, and no guests.
            self.auth_failed(now, from);
            return self.stats.drop(DropReason::BadHandshake);
        };
        let (epoch_bytes, seq_bytes) = payload.split_at(8);
        let epoch = u64::from_le_bytes(epoch_bytes.try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(seq_bytes.try_into().unwrap_or_default());
        // Same process: the sequence must grow, so a recorded initiation is refused.
        let live = self.noise.by_peer.get(&peer).copied();
        let known = live
            .and_then(|a| self.sessions.get(&a))
            .and_then(|s| s.noise.as_deref())
            .map(|n| (n.epoch, n.last_seq, n.connection));
        if known.is_some_and(|(e, last, _)| e == epoch && seq <= last) {
            return self.stats.drop(DropReason::BadHandshake);
        }
        // Nor may a replayed older initiation displace a newer one still pending.
        let newer_pending = self
            .noise
            .pending
            .values()
            .any(|p| p.peer == peer && p.epoch == epoch && seq <= p.seq);
        if newer_pending {
            return self.stats.drop(DropReason::BadHandshake);
        }
        let continuing = known.filter(|(e, ..)| *e == epoch).map(|(.., c)| c);
        // The response names the connection: the same one for a rekey, a fresh one otherwise,
        // so the client knows whether our counters go on or start again.
        let connection = continuing.unwrap_or_else(|| self.rng.next_u64());
        let local = self.new_index();
        let mut message = [0u8; RESPONSE_MESSAGE_LEN];
        self.stats.public_key_ops += dh_count(pattern, Step::Write);
        let Ok((_, keys)) = responder.write_response(&connection.to_le_bytes(), &mut message)
        else {
            return self.stats.drop(DropReason::BadHandshake);
        };
        let keys = PendingKeys {
            local,
            remote: i.sender,
            send: keys.send,
            recv: keys.recv,
        };
        match (live, continuing.is_some()) {
            (Some(addr), true) => {
                if let Some(n) = self
                    .sessions
                    .get_mut(&addr)
                    .and_then(|s| s.noise.as_deref_mut())
                {
                    n.last_seq = seq;
                    if let Some(old) = n.pending.replace(Box::new(keys)) {
                        self.noise.by_index.remove(&old.local);
                    }
                }
                self.noise.by_index.insert(local, addr);
            }
            _ => {
                self.noise
                    .pending
                    .retain(|_, p| !(p.peer == peer && p.epoch == epoch));
                if self.noise.pending.len() >= self.config.max_half_open {
                    let oldest = self
                        .noise
                        .pending
                        .iter()
                        .min_by_key(|(_, p)| p.created)
                        .map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.noise.pending.remove(&k);
                    }
                }
                let pending = PendingSession {
                    peer,
                    client_id,
                    epoch,
                    seq,
                    connection,
                    keys,
                    created: now,
                };
                self.noise.pending.insert(local, pending);
            }
        }
        self.stats.handshake_requests += 1;
        let response = NoisePacket::Response(Response {
            sender: local,
            receiver: i.sender,
            message: &message,
        });
        self.send_packet(from, &response);
    }

    /// Who the initiation is from: the static key of an IK pattern mapped to a configured id
    /// (or a guest), or the clear client id of NNpsk0.
    fn identify(
        &mut self,
        pattern: Pattern,
        id: Option<ClientId>,
        responder: &mut NoiseResponder,
    ) -> Option<(PeerId, ClientId)> {
        if pattern == Pattern::NnPsk0 {
            let id = id?;
            return Some((PeerId::Client(id), id));
        }
        let public = responder.remote_static()?;
        let known = self
            .config
            .ecc_clients
            .iter()
            .find(|(_, k)| **k == public)
            .map(|(id, _)| *id);
        let (peer, id) = match known {
            Some(id) => (PeerId::Client(id), id),
            None if self.config.allow_guest => {
                let keys = self.config.keys.as_ref()?;
                self.stats.public_key_ops += 1;
                // A low-order key would make the guest's keys predictable.
                if !keys.secret().diffie_hellman(&public).was_contributory() {
                    return None;
                }
                (
                    PeerId::Guest(ecc::guest_id(&public)),
                    ecc::default_client_id(&public),
                )
            }
            None => return None,
        };
        if pattern == Pattern::IkPsk2 {
            let psk = self.config.psk_clients.get(&id)?;
            responder.set_psk(psk).ok()?;
        }
        Some((peer, id))
    }

    fn new_index(&mut self) -> SessionIndex {
        loop {
            let i = SessionIndex(self.rng.next_u64() as u32);
            if !self.noise.by_index.contains_key(&i) && !self.noise.pending.contains_key(&i) {
                return i;
            }
        }
    }

    fn send_packet(&mut self, to: SocketAddr, packet: &NoisePacket<'_>) {
        let mut buf = [0u8; 160];
        let emitted = packet.emit(&mut buf);
        if let Some(datagram) = emitted
            .ok()
            .and_then(|n| ArrayVec::try_from(&buf[..n]).ok())
        {
            self.tx.push_back(Outgoing::Sealed { to, datagram });
        }
    }

    fn on_noise_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        receiver: SessionIndex,
        packet: &SessionPacket<'_>,
        scratch: &mut [u8],
    ) {
        if let Some(p) = self.noise.pending.get(&receiver) {
            // The first packet of a new client process: its keys are now proven.
            let mut window = ReplayWindow::new(Counter(0));
            let key = RxKey::Noise(p.keys.recv.clone());
            let opened = open_with(&key, &mut window, packet, header, scratch);
            if let Err((e, _)) = opened {
                return self.stats.drop(super::open_drop(e));
            }
            if let Some(p) = self.noise.pending.remove(&receiver) {
                self.confirm_new_session(now, from, receiver, p, window);
            }
            return self.on_opened(now, from, packet.counter, opened, Via::Session);
        }
        let Some(addr) = self.noise.by_index.get(&receiver).copied() else {
            self.stats.drop(DropReason::UnknownPeer);
            return self.reply_unknown_index(now, from, receiver);
        };
        let Some(s) = self.sessions.get_mut(&addr) else {
            self.noise.by_index.remove(&receiver);
            return self.stats.drop(DropReason::UnknownPeer);
        };
        let Some(n) = s.noise.as_deref_mut() else {
            return self.stats.drop(DropReason::Unexpected);
        };
        let (key, promote) = if n.local == receiver {
            (s.rx.key.clone(), false)
        } else if let Some(p) = n.pending.as_ref().filter(|p| p.local == receiver) {
            (RxKey::Noise(p.recv.clone()), true)
        } else if let Some((_, k)) = n.previous.as_deref().filter(|(i, _)| *i == receiver) {
            (RxKey::Noise(k.clone()), false)
        } else {
            return self.stats.drop(DropReason::UnknownPeer);
        };
        let opened = open_with(&key, &mut s.rx.replay, packet, header, scratch);
        if let Err((OpenError::Forged, _)) = opened {
            return self.stats.drop(DropReason::Forged);
        }
        if is_replay_from_elsewhere(&opened, addr, from) {
            return self.stats.drop(DropReason::Duplicate);
        }
        if promote && !matches!(opened, Err((OpenError::TooOld, _))) {
            if let Some(p) = n.pending.take().map(|p| *p) {
                // The client uses the new keys: switch, and keep the old receive key for
                // packets sealed before it switched.
                let old_local = core::mem::replace(&mut n.local, p.local);
                let old_key = core::mem::replace(&mut s.rx.key, RxKey::Noise(p.recv));
                if let Some((stale, _)) = n.previous.take().map(|p| *p) {
                    self.noise.by_index.remove(&stale);
                }
                if let RxKey::Noise(k) = old_key {
                    n.previous = Some(Box::new((old_local, k)));
                }
                s.tx_key = TxKey::Noise {
                    key: p.send,
                    receiver: p.remote,
                };
            }
        }
        let at = if addr != from && opened.is_ok() {
            // Authenticated from a new address: the client moved (NAT rebinding, new port).
            self.roam(addr, from);
            from
        } else {
            addr
        };
        self.on_opened(now, at, packet.counter, opened, Via::Session);
    }

    fn confirm_new_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: SessionIndex,
        p: PendingSession,
        window: ReplayWindow,
    ) {
        // The same identity elsewhere is an older process of this client: it is gone.
        if let Some(old) = self.noise.by_peer.get(&p.peer).copied() {
            self.end_session(old, CloseReason::PeerClosed, FailReason::PeerClosed);
        }
        if self.sessions.contains_key(&from) {
            self.end_session(from, CloseReason::PeerClosed, FailReason::PeerClosed);
        }
        if !self.make_room(now) {
            return self.stats.drop(DropReason::TableFull);
        }
        let limits = &self.config.limits;
        let session = ServerSession {
            peer: p.peer,
            client_id: p.client_id,
            generation: self.next_generation,
            rx: RxSession {
                key: RxKey::Noise(p.keys.recv),
                replay: window,
            },
            tx_key: TxKey::Noise {
                key: p.keys.send,
                receiver: p.keys.remote,
            },
            tx_counter: self.rng.range_inclusive(COUNTER_BASE.0, COUNTER_BASE.1),
            session_id: [0; 16],
            last_heard: now,
            up: true,
            rtt: RttEstimator::new(limits.rtt),
            outbox: Outbox::new(limits.max_queued, limits.max_in_flight),
            calls: Default::default(),
            duplicates: super::duplicates::Allowance::new(now),
            noise: Some(Box::new(NoiseSession {
                local,
                epoch: p.epoch,
                last_seq: p.seq,
                connection: p.connection,
                previous: None,
                pending: None,
            })),
        };
        self.next_generation += 1;
        self.sessions.insert(from, Box::new(session));
        self.noise.by_index.insert(local, from);
        self.noise.by_peer.insert(p.peer, from);
        self.stats.handshakes += 1;
        self.events.push_back(Event::Connected {
            addr: from,
            peer: Some(p.peer),
        });
        let targets: Vec<_> = self.targets.iter().cloned().collect();
        for t in targets {
            self.push_internal(now, from, Payload::Subscribe(t));
        }
    }

    /// Moves a session to the address its client now sends from.
    fn roam(&mut self, old: SocketAddr, new: SocketAddr) {
        if self.sessions.contains_key(&new) {
            self.end_session(new, CloseReason::PeerClosed, FailReason::PeerClosed);
        }
        let Some(s) = self.sessions.remove(&old) else {
            return;
        };
        // The session's own indices (current, pending, previous) are all that point at it, so
        // a roaming client costs three lookups, not a walk over every session's index.
        if let Some(n) = s.noise.as_deref() {
            let indices = [
                Some(n.local),
                n.pending.as_ref().map(|p| p.local),
                n.previous.as_ref().map(|p| p.0),
            ];
            for i in indices.into_iter().flatten() {
                if let Some(a) = self.noise.by_index.get_mut(&i).filter(|a| **a == old) {
                    *a = new;
                }
            }
        }
        if let Some(a) = self.noise.by_peer.get_mut(&s.peer) {
            *a = new;
        }
        if self.busy.remove(&old) {
            self.busy.insert(new);
        }
        self.sessions.insert(new, s);
    }

    /// Type 5: "no session has this index", at most once per gap per source (9 bytes for a
    /// data packet of at least 34).
    fn reply_unknown_index(&mut self, now: Instant, to: SocketAddr, receiver: SessionIndex) {
        if self.allow_unrecognized(now, to) {
            self.send_packet(to, &NoisePacket::UnknownIndex { receiver });
        }
    }

    /// Removes a closed session's suite 3 indices.
    pub(super) fn forget_noise(&mut self, addr: SocketAddr, s: &ServerSession) {
        if s.noise.is_some() {
            self.noise.by_index.retain(|_, a| *a != addr);
            if self.noise.by_peer.get(&s.peer) == Some(&addr) {
                self.noise.by_peer.remove(&s.peer);
                if let Some(sender) = self.noise.group_of.remove(&s.peer) {
                    self.noise.groups.remove(&sender);
                }
            }
        }
    }

    /// Expires pending handshakes and rotates the cookie secret.
    pub(super) fn noise_housekeeping(&mut self, now: Instant) {
        let timeout = self.config.half_open_timeout;
        self.noise.pending.retain(|_, p| now - p.created < timeout);
        match self.noise.rotated {
            Some(t) if now - t < COOKIE_ROTATION => {}
            _ => {
                self.noise.previous_secret = self.noise.cookie_secret;
                self.noise.cookie_secret = self.rng.array();
                self.noise.rotated = Some(now);
            }
        }
    }

    /// Establishes a suite 3 session with the client at `from` as its handshake and first data
    /// packet would have: testing only (see `super::assumed`).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn danger_assume_noise_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        s: super::assumed::AssumedNoise,
    ) {
        self.advance(now);
        let pending = PendingSession {
            peer: s.peer,
            client_id: s.client_id,
            epoch: s.epoch,
            seq: 1,
            connection: self.rng.next_u64(),
            keys: PendingKeys {
                local: s.local,
                remote: s.remote,
                send: s.send,
                recv: s.recv,
            },
            created: now,
        };
        let window = ReplayWindow::new(Counter(0));
        self.confirm_new_session(now, from, s.local, pending, window);
    }
}

/// Whether `opened` is a duplicate that came from an address other than its session's. The
/// session is found by index, so anyone who recorded a packet can send it again from
/// anywhere; a client that moved sends new packets, not old ones. Such a duplicate is never
/// answered (PROTOCOL §12.6), so a replay cannot aim the session's replies at its client.
fn is_replay_from_elsewhere(
    opened: &Result<&[u8], (OpenError, Option<&[u8]>)>,
    session: SocketAddr,
    from: SocketAddr,
) -> bool {
    session != from && matches!(opened, Err((OpenError::Duplicate, _)))
}

/// The steps of the responder's side of a handshake, for counting their X25519 work.
#[derive(Clone, Copy)]
enum Step {
    /// Building the state (IK: our static public key from the secret).
    Start,
    /// Reading the initiation (IK: `es`, `ss`).
    Read,
    /// Writing the response (our ephemeral key, `ee`; IK: `se`).
    Write,
}

/// X25519 operations (Diffie-Hellman or key generation) a responder step does.
fn dh_count(pattern: Pattern, step: Step) -> u64 {
    let ik = pattern != Pattern::NnPsk0;
    match step {
        Step::Start => u64::from(ik),
        Step::Read => 2 * u64::from(ik),
        Step::Write => 2 + u64::from(ik),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
