//! Suite 3 on the server: the tables by receiver index and by peer (so sessions follow a client
//! whose address changes), the bounded table of pending handshakes, and the routing between
//! them. Reading and identifying an initiation is `handshake::responder`, the handshake steps
//! `handshake::noise`, cookies and load `handshake::cookie`,
//! opening and key promotion `session::Session::open`, group keys `features::group`.
//!
//! Wire bytes routed here: types 1 (initiation), 4 (data), 6 (group data); written: 2, 3, 5,
//! 7. Timers: none of its own (the server's housekeeping expires pending handshakes and rotates
//! the cookie secret through `noise_housekeeping`). Events: `Connected` (a confirmed new
//! session), and `Disconnected` for a session that an older process of the same client held.
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

mod tables;

use crate::endpoint::shared;
use crate::keylog::SessionSecret;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;

use arrayvec::ArrayVec;

use super::{Server, ServerSession, Via, Who};
use crate::crypto::ecc::PublicKey;
use crate::crypto::noise::ChaChaKey;
use crate::crypto::static_dh::StaticDh;
use crate::endpoint::{refused_drop, CloseReason, DropReason, FailReason, Outgoing, ServerEvent};
use crate::features::group::GroupSenders;
use crate::handshake::cookie::{Admission, Cookies, LoadLimits};
use crate::handshake::noise::{dh_count, pattern_of, EarlyData, ExpectFirstData, Step};
use crate::handshake::responder::{read_initiation, InitiationRefused};
use crate::id::{Counter, PeerId};
use crate::reliability::Payload;
use crate::rng::Rng;
use crate::session::replay::ReplayWindow;
use crate::session::Route;
use crate::table::BoundedTable;
use crate::time::Instant;
use crate::wire::noise::{
    Initiation, KeyId, NoisePacket, Response, SenderId, SessionIndex, DATA_HEADER_LEN,
    GROUP_HEADER_LEN, RESPONSE_MESSAGE_LEN,
};
use crate::wire::SessionPacket;

/// The server's suite 3 tables. Everything an unauthenticated peer can make us store is in
/// `pending`, bounded by `max_half_open` and `half_open_timeout`. The multicast sender table
/// holds at most one entry per session, made only by that session's authenticated client.
#[derive(Debug)]
pub(crate) struct ServerNoise {
    /// Every index of every session (current, pending, previous).
    by_index: tables::ByIndex,
    /// The current index of every session, by its peer.
    by_peer: tables::ByPeer,
    groups: GroupSenders,
    pending: BoundedTable<SessionIndex, ExpectFirstData>,
    cookies: Cookies,
    /// `ss` with the configured clients seen so far (`crypto::static_dh`); made with our
    /// key pair on the first initiation.
    statics: Option<StaticDh>,
}

impl ServerNoise {
    pub(crate) fn new(rng: &mut Rng, max_half_open: usize) -> Self {
        ServerNoise {
            by_index: tables::ByIndex::default(),
            by_peer: tables::ByPeer::default(),
            groups: GroupSenders::default(),
            pending: BoundedTable::new(max_half_open, |p| p.created),
            cookies: Cookies::new(rng),
            statics: None,
        }
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Forgets the pending handshakes of `peer` (a key no longer admitted), so that none of
    /// them can still become a session.
    pub(crate) fn forget_pending_of(&mut self, peer: PeerId) {
        self.pending.retain(|_, p| p.peer != peer);
    }

    /// Forgets the `ss` kept with `public` (a key no longer admitted).
    pub(crate) fn forget_static(&mut self, public: &PublicKey) {
        if let Some(s) = self.statics.as_mut() {
            s.forget(public);
        }
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
                shared::with_scratch(self, |role, scratch| {
                    role.on_noise_data(now, from, header, receiver, &packet, scratch)
                });
            }
            NoisePacket::GroupData {
                sender,
                key,
                packet,
            } => {
                let header = data.get(..GROUP_HEADER_LEN).unwrap_or_default();
                shared::with_scratch(self, |role, scratch| {
                    role.on_group_data(now, from, header, sender, key, &packet, scratch)
                });
            }
            _ => self.shared.stats.drop(DropReason::Unexpected),
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
            .key(sender, key_id)
            .and_then(|(key, peer)| Some((key, self.live_addr(&peer)?)));
        let Some((key, addr)) = found else {
            // A server that restarted, or missed a key: the client delivers it again or
            // handshakes.
            self.shared.stats.drop(DropReason::UnknownPeer);
            return self.reply_unknown_sender(now, from, sender, key_id);
        };
        let Some(s) = self.sessions.get_mut(&addr) else {
            return self.shared.stats.drop(DropReason::UnknownPeer);
        };
        match s.open(Route::Group(key), addr != from, packet, header, scratch) {
            Ok(opened) => self.on_opened(now, addr, packet.counter, opened.result, Via::Group),
            Err(refused) => self.shared.stats.drop(refused_drop(refused)),
        }
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
            .filter(|s| s.is_noise())
            .map(|s| s.peer)
        else {
            // Suites 1 and 2 share their client's key with the whole group already.
            return self.shared.stats.drop(DropReason::Unsupported);
        };
        self.shared.log_secret(|| SessionSecret::Group {
            sender: sender.0,
            key_id: key_id.0,
            key: *key,
        });
        let key = ChaChaKey::from_bytes(*key);
        if self
            .noise
            .groups
            .install(peer, sender, key_id, key)
            .is_err()
        {
            // Another client's sender id (a 2^-64 collision, or a member's hijack attempt).
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        self.shared
            .tx
            .push_back(Outgoing::Ack { to: addr, counter });
    }

    /// Type 7: "no such sender or key here", at most once per gap per source, from op 4's
    /// allowance (17 bytes for a group data packet of at least 42).
    fn reply_unknown_sender(&mut self, now: Instant, to: SocketAddr, sender: SenderId, key: KeyId) {
        if self.allow_unrecognized(now, to) {
            self.send_packet(to, &NoisePacket::UnknownSender { sender, key });
        }
    }

    fn on_initiation(&mut self, now: Instant, from: SocketAddr, i: &Initiation<'_>) {
        let limits = LoadLimits {
            pending: self.config.cookie_threshold,
            rate: self.config.cookie_rate,
        };
        let n = &mut self.noise;
        let admission = n
            .cookies
            .admit(now, from, &i.cookie, n.pending.len(), limits);
        if let Admission::NeedCookie(cookie) = admission {
            // Stateless: no Diffie-Hellman, nothing stored, not even in the reply budget
            // (a flood must not be able to deny a client its cookie), and 25 bytes for
            // 106 or more, so it cannot amplify.
            let reply = NoisePacket::CookieReply {
                receiver: i.sender,
                cookie,
            };
            self.shared.stats.cookie_replies += 1;
            self.send_packet(from, &reply);
            return;
        }
        // The public-key work comes before any budget: only an initiation proved authentic
        // (and, below, fresh) spends its source's replies, so forged or replayed ones from a
        // client's address cannot use up that client's budget. Under load the cookie check
        // above bounds this work (`docs/PROTOCOL.md` §8.2).
        let pattern = pattern_of(i.mode);
        if self.noise.statics.is_none() {
            self.noise.statics = self.config.keys.as_ref().map(StaticDh::new);
        }
        let creds = super::credentials(&self.config);
        let ops = &mut self.shared.stats.public_key_ops;
        let statics = self.noise.statics.as_ref();
        let message = i.message;
        let read = read_initiation(
            creds,
            &mut self.rng,
            pattern,
            i.client_id,
            message,
            ops,
            statics,
        );
        let (mut read, peer, client_id) = match read {
            Ok(identified) => identified,
            Err(InitiationRefused::Unsupported) => {
                return self.shared.stats.drop(DropReason::Unsupported)
            }
            Err(InitiationRefused::NotOurs) => {
                self.auth_failed(now, from);
                return self.shared.stats.drop(DropReason::BadHandshake);
            }
        };
        let (epoch, seq) = (read.epoch, read.seq);
        let live = self.live_addr(&peer);
        let known = live
            .and_then(|a| self.sessions.get(&a))
            .and_then(|s| s.noise_record());
        let pending = self.noise.pending.values().filter(|p| p.peer == peer);
        let Ok(continuing) = read.judge(known, pending) else {
            return self.shared.stats.drop(DropReason::BadHandshake);
        };
        if !self.allow_initiation(now, from, &i.cookie, i.sender) {
            return;
        }
        // 0-RTT data: delivered once the response is out, into the session it makes or
        // continues (`docs/PROTOCOL.md` §12.2).
        let early = read.early.take();
        let mut early_to = None;
        let computed = read.computed_static();
        let remote = read.remote_static();
        // The response names the connection: the same one for a rekey, a fresh one otherwise,
        // so the client knows whether our counters go on or start again.
        let connection = continuing.unwrap_or_else(|| self.rng.next_u64());
        let local = self.new_index();
        let mut message = [0u8; RESPONSE_MESSAGE_LEN];
        self.shared.stats.public_key_ops += dh_count(pattern, Step::Write);
        let Ok(keys) = read.respond(connection, local, i.sender, &mut message) else {
            return self.shared.stats.drop(DropReason::BadHandshake);
        };
        // A configured client's `ss`, kept for its next handshake: for the most recent
        // configured keys (guests are not kept), forgotten with the key.
        if let (PeerId::Client(_), Some((public, shared))) = (peer, computed) {
            if let Some(statics) = self.noise.statics.as_mut() {
                statics.insert(public.to_bytes(), shared);
            }
        } else if let (PeerId::Client(_), Some(public)) = (peer, remote) {
            // Found kept: kept over the peers seen less recently (`crypto::key_cache`).
            if let Some(statics) = self.noise.statics.as_mut() {
                statics.touch(&public);
            }
        }
        self.shared.log_secret(|| SessionSecret::Noise {
            to_server_index: keys.local.0,
            to_server: *keys.recv.as_bytes(),
            to_client_index: keys.remote.0,
            to_client: *keys.send.as_bytes(),
        });
        match (live, continuing.is_some()) {
            (Some(addr), true) => {
                let replaced = self
                    .sessions
                    .get_mut(&addr)
                    .and_then(|s| s.set_pending(keys, seq));
                if let Some(old) = replaced {
                    self.noise.by_index.remove(&old);
                }
                self.noise.by_index.insert(local, addr);
                early_to = Some(addr);
            }
            _ => {
                self.noise
                    .pending
                    .retain(|_, p| !(p.peer == peer && p.epoch == epoch));
                let pending = ExpectFirstData {
                    peer,
                    client_id,
                    epoch,
                    seq,
                    connection,
                    keys,
                    created: now,
                };
                if early.is_some() {
                    // The client used the keys already: its 0-RTT data authenticated under
                    // `es` and `ss`, so the session needs no first data packet to confirm it.
                    self.confirm_new_session(now, from, pending, ReplayWindow::new(Counter(0)));
                    early_to = Some(from);
                } else {
                    self.noise.pending.insert(local, pending);
                }
            }
        }
        self.shared.stats.handshake_requests += 1;
        let response = NoisePacket::Response(Response {
            sender: local,
            receiver: i.sender,
            message: &message,
        });
        self.send_packet(from, &response);
        if let (Some(early), Some(addr)) = (early, early_to) {
            self.on_early_data(now, addr, early);
        }
    }

    /// 0-RTT data from an initiation that passed every check (identity, the replay rule of
    /// epoch and sequence, the reply budget): judged by the session's window like a data
    /// packet with its counter, so it is delivered once and a copy is only re-acknowledged.
    /// Its answers follow the response, under the keys the response gives the client.
    fn on_early_data(&mut self, now: Instant, addr: SocketAddr, early: EarlyData) {
        let Some(s) = self.sessions.get_mut(&addr) else {
            return self.shared.stats.drop(DropReason::UnknownPeer);
        };
        self.shared.stats.early_data += 1;
        let opened = match s.accept_early(early.counter) {
            Ok(()) => Ok(&early.plain[..]),
            Err(e) => Err((e, Some(&early.plain[..]))),
        };
        self.on_opened(now, addr, early.counter, opened, Via::Session);
    }

    /// Charges an initiation to `from`'s budgets (`docs/PROTOCOL.md` §15.6). Past the
    /// per-source budget, an initiation with a valid cookie for `from` is charged to a second
    /// budget that only the address's real owner can spend (a spoofer never receives the
    /// cookie); one without is answered with a cookie reply instead of silence, so that a
    /// flood of spoofed initiations from an address cannot starve its owner's handshakes.
    /// The reply is stateless, costs no Diffie-Hellman and is smaller than the initiation.
    fn allow_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        offered: &[u8; 16],
        sender: SessionIndex,
    ) -> bool {
        let limit = self.config.replies_per_second;
        if self.budget(now, from).take_reply(now, limit) {
            return true;
        }
        if !self.config.cookie_when_rate_limited {
            self.shared.stats.drop(DropReason::RateLimited);
            return false;
        }
        let proven = self.noise.cookies.is_valid(from, offered);
        if proven && self.budget(now, from).take_cookied(now, limit) {
            return true;
        }
        self.shared.stats.drop(DropReason::RateLimited);
        if proven {
            // Its owner spent both budgets: there is nothing left to prove.
            return false;
        }
        let cookie = self.noise.cookies.for_source(from);
        self.shared.stats.cookie_replies += 1;
        self.send_packet(
            from,
            &NoisePacket::CookieReply {
                receiver: sender,
                cookie,
            },
        );
        false
    }

    fn new_index(&mut self) -> SessionIndex {
        loop {
            let i = SessionIndex(self.rng.next_u64() as u32).with_prefix(self.config.index_prefix);
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
            self.shared.tx.push_back(Outgoing::Sealed { to, datagram });
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
            let first = match p.open(packet, header, scratch) {
                Ok(first) => first,
                Err(e) => return self.shared.stats.drop(super::open_drop(e)),
            };
            if let Some(p) = self.noise.pending.remove(&receiver) {
                self.confirm_new_session(now, from, p, first.window);
            }
            return self.on_opened(now, from, packet.counter, Ok(first.plain), Via::Session);
        }
        let Some(addr) = self.noise.by_index.get(&receiver) else {
            self.shared.stats.drop(DropReason::UnknownPeer);
            return self.reply_unknown_index(now, from, receiver);
        };
        let Some(s) = self.sessions.get_mut(&addr) else {
            self.noise.by_index.remove(&receiver);
            return self.shared.stats.drop(DropReason::UnknownPeer);
        };
        let opened = match s.open(
            Route::Index(receiver),
            addr != from,
            packet,
            header,
            scratch,
        ) {
            Ok(o) => o,
            Err(refused) => return self.shared.stats.drop(refused_drop(refused)),
        };
        if let Some(p) = opened.promoted {
            // The client uses the new keys: we seal with them too, and the key before the
            // previous one is gone.
            s.tx_key = p.send;
            if let Some(stale) = p.retired {
                self.noise.by_index.remove(&stale);
            }
            // The peer's table follows the current index (the previous one retires next).
            if let [Some(current), _, Some(previous)] = s.indices() {
                self.noise.by_peer.remove(&s.peer, previous);
                self.noise.by_peer.insert(&s.peer, current);
            }
        }
        let at = if addr != from && opened.result.is_ok() {
            // Authenticated from a new address: the client moved (NAT rebinding, new port).
            self.roam(addr, from);
            from
        } else {
            addr
        };
        self.on_opened(now, at, packet.counter, opened.result, Via::Session);
    }

    fn confirm_new_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        p: ExpectFirstData,
        window: ReplayWindow,
    ) {
        // The same identity elsewhere is an older process of this client: it is gone.
        if let Some(old) = self.live_addr(&p.peer) {
            self.end_session(old, CloseReason::PeerClosed, FailReason::PeerClosed);
        }
        if self.sessions.contains_key(&from) {
            self.end_session(from, CloseReason::PeerClosed, FailReason::PeerClosed);
        }
        if !self.make_room(now) {
            return self.shared.stats.drop(DropReason::TableFull);
        }
        let (peer, local) = (p.peer, p.keys.local);
        let who = Who {
            peer,
            client_id: p.client_id,
            session_id: [0; 16],
        };
        let (session, tx_key) = p.confirm(window, now);
        let session = ServerSession::new(self, now, session, who, tx_key);
        self.sessions.insert(from, Box::new(session));
        self.noise.by_index.insert(local, from);
        self.noise.by_peer.insert(&peer, local);
        self.shared.stats.handshakes += 1;
        self.shared
            .events
            .push_back(ServerEvent::Connected { addr: from, peer });
        self.fill_durable();
        let targets: Vec<_> = self.targets.iter().cloned().collect();
        for t in targets {
            self.push_internal(now, from, Payload::Subscribe(t));
        }
    }

    /// The address of `peer`'s session: through the fingerprint table, checked against the
    /// session each candidate index leads to.
    fn live_addr(&self, peer: &PeerId) -> Option<SocketAddr> {
        self.noise.by_peer.candidates(peer).find_map(|i| {
            let addr = self.noise.by_index.get(&i)?;
            self.sessions
                .get(&addr)
                .filter(|s| s.peer == *peer)
                .map(|_| addr)
        })
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
        // The peer's table names an index, so it needs no change.
        for i in s.indices().into_iter().flatten() {
            self.noise.by_index.move_if(i, old, new);
        }
        if self.busy.remove(&old) {
            self.busy.insert(new);
        }
        // Ordered streams follow the session both ways (their seqs continue).
        if let Some(tx) = self.ordered_tx.remove(&old) {
            self.ordered_tx.insert(new, tx);
        }
        self.ordered_rx.move_peer(old, new);
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
        if s.is_noise() {
            self.noise.by_index.forget_addr(addr);
            if let Some(current) = s.indices()[0] {
                if self.noise.by_peer.remove(&s.peer, current) {
                    self.noise.groups.forget(s.peer);
                }
            }
        }
    }

    /// Expires pending handshakes and rotates the cookie secret.
    pub(super) fn noise_housekeeping(&mut self, now: Instant) {
        let timeout = self.config.half_open_timeout;
        self.noise.pending.retain(|_, p| now - p.created < timeout);
        self.noise.cookies.rotate(now, &mut self.rng);
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
        let pending = ExpectFirstData {
            peer: s.peer,
            client_id: s.client_id,
            epoch: s.epoch,
            seq: 1,
            connection: self.rng.next_u64(),
            keys: crate::session::PendingKeys {
                local: s.local,
                remote: s.remote,
                send: s.send,
                recv: s.recv,
            },
            created: now,
        };
        let window = ReplayWindow::new(Counter(0));
        self.confirm_new_session(now, from, pending, window);
    }
}
