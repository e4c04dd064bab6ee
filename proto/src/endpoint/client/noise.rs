//! Suite 3 on the client: routing and the client's tables around the Noise initiator.
//!
//! The handshake itself is `handshake::noise` (`SentInitiation`), packets are opened by
//! `session::Session::open` (by receiver index), and group keys are `features::group`; this
//! module decides when to start a handshake, which server a response or data packet belongs
//! to, and what a completed handshake changes in the client. Wire bytes routed here: types 2
//! (response), 3 (cookie reply), 4 (data), 5 (unknown index), 7 (unknown sender). Timers: the
//! rekey deadline (`rekey_due`) and the key deliveries' (`group_timeout`). Events: `PeerUp` and
//! `Connected` (through `after_established`).
//!
//! Read first: `docs/PROTOCOL.md` §12. Every initiation carries, encrypted, this process's epoch
//! and a handshake sequence number that only grows, so the server can tell a rekey of this
//! process (keep counters and window) from a new process (start afresh) and refuse a replayed
//! initiation. A new session is announced to the server by the first data packet under the new
//! keys; with nothing queued, the client sends a keepalive at once so the server learns of it.
//!
//! Multicast (§12.11): the initiation goes to the group, and every server that shares the
//! group's static key (or our PSK) answers it; each answer gives its own pairwise session. Over
//! each one we deliver our group key (op 32, reliable), and our sends to the group are sealed
//! under that key as group data packets (type 6) that every server holding it can open.

use crate::endpoint::shared;
use crate::handshake::noise_initiator::NoiseSlot;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::net::SocketAddr;

use super::{Client, RemoteServer};
use crate::crypto::noise::{NoiseError, TransportKeys};
use crate::endpoint::{refused_drop, ClientEvent, DropReason, Outgoing, SendError};
use crate::features::group::{delivery_to, DeliveryDone, GroupState};
use crate::handshake::noise::{early_bytes, Established};
use crate::handshake::noise_initiator::{initiator_keys, ClientNoise};
use crate::id::Counter;
use crate::keylog::SessionSecret;
use crate::reliability::{Due, InFlight, Payload, Reply};
use crate::session::replay::ReplayWindow;
use crate::session::{KeyUsed, NoiseRecord, Route, Session, TxKey};
use crate::time::Instant;
use crate::wire::noise::{NoisePacket, SenderId, SessionIndex, DATA_HEADER_LEN, GROUP_OVERHEAD};
use crate::wire::{self, SessionPacket};

/// The largest plaintext (`app opcode || app payload`) an initiation carries as 0-RTT data:
/// with the 138-byte IK initiation and the counter it stays under 1,200 bytes, a datagram
/// every path takes.
pub(crate) const EARLY_PLAINTEXT_MAX: usize = 1024;

impl Client {
    /// A fresh initiation to `to` (see [`ClientNoise::initiation`]), with 0-RTT data if the
    /// server said it lost us, or `None` if the credentials cannot run the pattern.
    pub(super) fn noise_initiation(
        &mut self,
        to: SocketAddr,
        cookie: [u8; 16],
    ) -> Option<Outgoing> {
        let (counter, early) = self.early_data().unzip();
        let keys = initiator_keys(&self.config.credentials)?;
        let n = self.noise.live_mut()?;
        let early = early.unwrap_or_default();
        let datagram = n.initiation(keys, self.config.client_id, cookie, &early, &mut self.rng)?;
        if counter.is_some() {
            n.early_sent = counter;
            self.shared.stats.early_data += 1;
        }
        Some(match ArrayVec::try_from(&datagram[..]) {
            Ok(datagram) => Outgoing::Sealed { to, datagram },
            Err(_) => Outgoing::Initiation { to, datagram },
        })
    }

    /// The 0-RTT data for an initiation, if the server said it lost our session (type 5):
    /// the oldest exchange in flight that was sent under a counter of its own, as the data
    /// packet that carried it (`docs/PROTOCOL.md` §12.2). The server then has it half a
    /// round trip after the initiation instead of one and a half. Not for ordered
    /// (stamped when sealed) or stored exchanges, nor for counters shared by a batch (the
    /// server's window would take the counter for the whole batch).
    fn early_data(&self) -> Option<(Counter, Vec<u8>)> {
        let n = self.noise.live()?;
        if !n.early_armed || n.group.is_some() {
            return None;
        }
        let e = self
            .outbox
            .iter()
            .filter(|e| e.counter.is_some())
            .min_by_key(|e| e.counter)?;
        let counter = e.counter?;
        if self.outbox.run(counter).count() != 1 {
            return None;
        }
        let app = e.payload.as_app()?;
        if matches!(app, wire::App::OrderedMessage(_)) || app.buffer_len() > EARLY_PLAINTEXT_MAX {
            return None;
        }
        let mut plain = vec![0u8; app.buffer_len()];
        let len = app.emit(&mut plain).ok()?;
        plain.truncate(len);
        Some((counter, early_bytes(counter, &plain)))
    }

    /// The cookie our initiations carry (zeros unless a server under load gave us one).
    pub(super) fn noise_cookie(&self) -> [u8; 16] {
        self.noise.live().map_or([0; 16], |n| n.cookie)
    }

    pub(super) fn on_noise(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        packet: NoisePacket<'_>,
    ) {
        if self.noise.live().is_none() {
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        match packet {
            NoisePacket::Response(r) => {
                let Some(read) = self.read_response(from, r.receiver, r.message) else {
                    return self.shared.stats.drop(DropReason::Unexpected);
                };
                match read {
                    Ok((local, Established { keys, connection })) => {
                        if let Some(n) = self.noise.live_mut() {
                            n.established(now);
                        }
                        self.on_noise_established(now, from, local, r.sender, keys, connection);
                    }
                    // A forged or stale response; the retry timer starts a new handshake.
                    _ => self.shared.stats.drop(DropReason::BadHandshake),
                }
            }
            NoisePacket::CookieReply { receiver, cookie } => self.on_cookie(from, receiver, cookie),
            NoisePacket::Data { receiver, packet } => {
                let header = data.get(..DATA_HEADER_LEN).unwrap_or_default();
                shared::with_scratch(self, |role, scratch| {
                    role.on_noise_data(now, from, header, receiver, &packet, scratch)
                });
            }
            NoisePacket::UnknownIndex { receiver } => {
                // It names the index our packet carried: the server's index for us.
                let ours = self.servers.contains_key(&from)
                    && matches!(self.tx_key_for(from), Some(TxKey::Noise { receiver: r, .. }) if *r == receiver);
                if ours {
                    // The server lost our session (it restarted): handshake again. Unlike op 4,
                    // this names the index our packets carry, which an off-path attacker cannot
                    // know, so it is believed at once (PROTOCOL §12.6); and the initiations of
                    // this round carry our oldest exchange as 0-RTT data (§12.2).
                    if let Some(n) = self.noise.live_mut() {
                        n.early_armed = true;
                    }
                    self.request_handshake(now);
                } else {
                    self.shared.stats.drop(DropReason::Unexpected);
                }
            }
            NoisePacket::UnknownSender { sender, .. } => self.on_unknown_sender(now, from, sender),
            _ => self.shared.stats.drop(DropReason::Unexpected),
        }
    }

    /// Reads a response to the initiation it names (see [`ClientNoise::read_response`]).
    fn read_response(
        &mut self,
        from: SocketAddr,
        receiver: SessionIndex,
        message: &[u8],
    ) -> Option<Result<(SessionIndex, Established), NoiseError>> {
        let keys = initiator_keys(&self.config.credentials)?;
        let n = self.noise.live_mut()?;
        n.read_response(keys, self.config.max_servers, from, receiver, message)
    }

    fn on_cookie(&mut self, from: SocketAddr, receiver: SessionIndex, cookie: [u8; 16]) {
        let Some(n) = self.noise.live_mut() else {
            return;
        };
        if !n.on_cookie(receiver, cookie) {
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        // The server is under load: prove our address and ask again at once. A group's
        // cookie is good at the one server that gave it, so that one is asked alone.
        let to = if self.is_group() {
            from
        } else {
            self.config.server
        };
        if let Some(out) = self.noise_initiation(to, cookie) {
            self.shared.tx.push_back(out);
        }
    }

    /// A handshake gave keys for the server at `from` (our index `local`, its `remote`) on
    /// its connection `epoch`: a rekey of that connection, or a new session.
    fn on_noise_established(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: SessionIndex,
        remote: SessionIndex,
        keys: TransportKeys,
        epoch: u64,
    ) {
        let TransportKeys { send, recv } = keys;
        self.shared.log_secret(|| SessionSecret::Noise {
            to_server_index: remote.0,
            to_server: *send.as_bytes(),
            to_client_index: local.0,
            to_client: *recv.as_bytes(),
        });
        let send = TxKey::Noise {
            key: send,
            receiver: remote,
        };
        let multicast = self.is_group();
        let pairwise = if multicast {
            Some(Box::new(send))
        } else {
            self.sealer = Some(send);
            None
        };
        let rekey = self
            .servers
            .get(&from)
            .and_then(|s| s.noise_record())
            .is_some_and(|r| r.connection == epoch);
        match self.servers.get_mut(&from) {
            // The same connection: a rekey. Counters and window go on; the old key is kept for
            // packets sealed before the server switched.
            Some(s) if rekey => {
                s.rekey(local, recv);
                if pairwise.is_some() {
                    s.send = pairwise;
                }
                s.last_heard = now;
            }
            _ => {
                if self.servers.get(&from).is_some_and(|s| !s.up) {
                    // The server we reported down answered again (as a new process).
                    self.shared
                        .events
                        .push_back(ClientEvent::PeerUp { addr: from });
                }
                self.make_room_for(from);
                let replaced = self.handoff_generation(from);
                let record = NoiseRecord {
                    local,
                    connection: epoch,
                    ..NoiseRecord::default()
                };
                let session = Session::noise(recv, ReplayWindow::new(Counter(0)), record, now);
                // The response authenticated the server: nothing left to confirm.
                let server = RemoteServer::new(session, [0; 16], true, pairwise, None);
                self.servers.insert(from, server);
                self.handoff_on_session(from, replaced);
            }
        }
        self.after_established(now, from, !rekey);
        if multicast {
            // Our group key, over the new keys: the server learns both from it.
            self.deliver_group_keys(now, from, true);
        } else if self.outbox.is_empty() {
            // The server trusts the new keys only once we use them.
            self.send_keepalive(now);
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
        let Some(s) = self.servers.get_mut(&from) else {
            return self.shared.stats.drop(DropReason::UnknownPeer);
        };
        let opened = match s.open(Route::Index(receiver), false, packet, header, scratch) {
            Ok(o) => o,
            Err(refused) => return self.shared.stats.drop(refused_drop(refused)),
        };
        let by_previous = opened.by == KeyUsed::Previous;
        self.on_opened(now, from, from, packet.counter, opened.result, by_previous);
    }

    /// Establishes a suite 3 session with the server at `from` as an accepted response would
    /// have (the handshake in flight is dropped): testing only, see `super::assumed`.
    #[cfg(any(test, feature = "testing"))]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn danger_assume_noise_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: SessionIndex,
        remote: SessionIndex,
        send: crate::crypto::noise::ChaChaKey,
        recv: crate::crypto::noise::ChaChaKey,
        epoch: u64,
    ) {
        self.advance(now);
        if let Some(n) = self.noise.live_mut() {
            n.pending = None;
            n.established(now);
        }
        let keys = TransportKeys { send, recv };
        self.on_noise_established(now, from, local, remote, keys, epoch);
    }

    /// When the current suite 3 keys must be replaced (age), if they are in use.
    pub(super) fn rekey_due(&self) -> Option<Instant> {
        let n = self.noise.live()?;
        // A round already running or waiting for its turn covers it.
        if self.rounds.deferred.is_some()
            || !matches!(self.rounds.connecting, super::Connecting::Idle)
        {
            return None;
        }
        let (after, messages) = (self.config.rekey_after, self.config.rekey_after_messages);
        n.rekey_due(after, messages, self.shared.last_now)
    }
}

impl Client {
    /// Whether this is a suite 3 client in multicast mode (§12.11).
    pub(super) fn is_group(&self) -> bool {
        self.noise.live().is_some_and(|n| n.group.is_some())
    }

    fn group(&self) -> Option<&GroupState> {
        self.noise.live()?.group.as_deref()
    }

    fn group_mut(&mut self) -> Option<&mut GroupState> {
        self.noise.live_mut()?.group.as_deref_mut()
    }

    /// The key a packet to `to` is sealed with: in multicast mode, the group key for the group
    /// address and the server's pairwise key for one server; otherwise the one send key.
    pub(super) fn tx_key_for(&self, to: SocketAddr) -> Option<&TxKey> {
        if self.is_group() && to != self.config.server {
            return self.servers.get(&to)?.send.as_deref();
        }
        self.sealer.as_ref()
    }

    /// Refuses a plaintext of `body` bytes that would not fit a group data packet, which has
    /// 6 bytes more overhead than a suite 1 or 2 session packet.
    pub(super) fn check_group_size(&self, body: usize) -> Result<(), SendError> {
        if self.is_group() && body > wire::MAX_DATAGRAM - GROUP_OVERHEAD {
            return Err(SendError::TooLarge);
        }
        Ok(())
    }

    /// Multicast: a round is about to start. If a rekey is due, it brings a new group key.
    pub(super) fn group_round_started(&mut self, now: Instant) {
        let rng = &mut self.rng;
        let started = self
            .noise
            .live_mut()
            .and_then(|n| n.group.as_deref_mut())
            .is_some_and(|g| g.start_rotation(rng));
        if !started {
            return;
        }
        self.log_group_keys();
        // Every server we hold a session with gets it now, over the keys it has: one whose
        // answer to this round is lost must hold it too before we seal with it.
        let all: Vec<SocketAddr> = self.servers.keys().copied().collect();
        for to in all {
            self.deliver_group_keys(now, to, false);
        }
    }

    /// Multicast: queues our group keys (the one we seal with, and the next while we rotate)
    /// for the key log.
    pub(super) fn log_group_keys(&mut self) {
        let Some(g) = self.noise.live().and_then(|n| n.group.as_deref()) else {
            return;
        };
        let sender = g.sender.0;
        for (id, key) in core::iter::once(&g.current).chain(g.next.as_ref()) {
            self.shared.log_secret(|| SessionSecret::Group {
                sender,
                key_id: id.0,
                key: *key.as_bytes(),
            });
        }
    }

    /// Multicast: a rekey is due; the round it starts rotates the group key too.
    pub(super) fn group_rotate_on_next_round(&mut self) {
        if let Some(g) = self.group_mut() {
            g.rotate = true;
        }
    }

    /// Multicast: the round closed. No server answers its initiations any more, so a new key
    /// whose deliveries are done can take over.
    pub(super) fn group_round_closed(&mut self) {
        if let Some(n) = self.noise.live_mut() {
            n.close_round();
        }
        self.maybe_switch_group_key();
    }

    /// Queues a delivery of every key `to` should hold: the one we seal with (unless
    /// `with_current` is false) and, while we rotate, the next one. Deliveries to `to` already
    /// queued go out again at once, under the session's newest keys.
    fn deliver_group_keys(&mut self, now: Instant, to: SocketAddr, with_current: bool) {
        let deadline = now + self.config.limits.default_timeout;
        let mut id = self.next_op_id;
        if let Some(g) = self.group_mut() {
            g.queue_deliveries(now, deadline, to, with_current, &mut id);
        }
        self.next_op_id = id;
    }

    /// Type 7: a server holds no key of ours under that id. One we hold a session with gets
    /// our keys again (at most one delivery of each in flight); one we do not, or one that
    /// does not acknowledge them, restarted or joined unseen, so we run a round (at most one
    /// per interval).
    fn on_unknown_sender(&mut self, now: Instant, from: SocketAddr, sender: SenderId) {
        let Some(g) = self.group() else {
            return self.shared.stats.drop(DropReason::Unexpected);
        };
        if g.sender != sender {
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        let resent = g.resent_to(from);
        if !self.servers.contains_key(&from) {
            self.request_handshake(now);
        } else if !g.delivering(from, None) {
            self.deliver_group_keys(now, from, true);
        } else if resent {
            // Our keys went out and were not acknowledged within a timeout: the session
            // itself is stale (the server restarted), and only a handshake helps.
            self.request_handshake(now);
        }
        // Otherwise the hint crossed a delivery still on its way.
    }

    /// Moves due key deliveries into the transmit queue, and settles the expired ones.
    ///
    /// Only their own oldest counter limits them, not the messages': a message waiting for
    /// the ACK of a server that lacks our key must not hold back the key that lets it ACK.
    /// They are few (two per server and round at most), like the ACKs the span leaves room for.
    pub(super) fn pump_group(&mut self, now: Instant) {
        let budget = self.group_counter_budget();
        let can_send = !self.closed;
        let mut due = Vec::new();
        match self.group_mut() {
            Some(g) => g.deliveries.poll_due(now, can_send, budget, &mut due),
            None => return,
        }
        for d in due {
            match d {
                Due::Expired(e) => self.on_delivery_done(now, e, false),
                Due::Transmit(id) => {
                    let first = self
                        .group()
                        .and_then(|g| g.deliveries.get(id))
                        .map(|e| (e.counter.is_none(), delivery_to(e)));
                    let Some((first, Some(to))) = first else {
                        continue;
                    };
                    let c = first.then(|| self.take_counter());
                    let rtt = &self.rtt;
                    let Some(g) = self.noise.live_mut().and_then(|n| n.group.as_deref_mut()) else {
                        return;
                    };
                    match c {
                        Some(c) => g.deliveries.on_first_transmit(id, c, vec![to], now, rtt),
                        None => g.deliveries.on_retransmit(id, now, rtt),
                    }
                    if c.is_none() {
                        self.shared.stats.retransmissions += 1;
                    }
                    self.shared.tx.push_back(Outgoing::Reliable { to, id });
                }
            }
        }
    }

    /// An ACK that answers no message or call: perhaps a key delivery.
    pub(super) fn on_group_ack(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        counter: Counter,
    ) -> bool {
        let reply = match self.noise.live_mut().and_then(|n| n.group.as_deref_mut()) {
            Some(g) => g.deliveries.on_reply(
                counter,
                false,
                addr,
                now,
                &mut self.rtt,
                &mut self.shared.stats.rtt,
            ),
            None => return false,
        };
        match reply {
            Reply::Complete(e) => {
                self.on_delivery_done(now, e, true);
                true
            }
            Reply::Partial => true,
            Reply::Unknown => false,
        }
    }

    fn on_delivery_done(&mut self, now: Instant, e: InFlight, acked: bool) {
        let Payload::GroupKey(d) = e.payload else {
            return;
        };
        let key_id = d.key_id;
        let Some(g) = self.group_mut() else { return };
        match g.on_delivery_done(key_id, acked) {
            DeliveryDone::Ready => {
                // A server can open our group packets: they may start.
                self.sealer = self.group().map(GroupState::sealer);
                self.on_group_ready(now);
            }
            DeliveryDone::Lost => self.request_handshake(now),
            DeliveryDone::Quiet => {}
        }
        self.maybe_switch_group_key();
    }

    /// Switches sealing to the next key once its round closed and every delivery of it is
    /// acknowledged or expired. Servers keep the old key too, for packets still in flight.
    fn maybe_switch_group_key(&mut self) {
        let open = self.noise.live().is_some_and(ClientNoise::has_open);
        if self.group_mut().is_some_and(|g| g.maybe_switch(open)) {
            self.sealer = self.group().map(GroupState::sealer);
        }
    }

    /// The earliest deadline or retry among key deliveries.
    pub(super) fn group_timeout(&self) -> Option<Instant> {
        self.group()?
            .deliveries
            .next_timeout(!self.closed, self.group_counter_budget())
    }

    /// The span of counters key deliveries still need inside the servers' windows.
    pub(super) fn group_counter_budget(&self) -> usize {
        self.group().map_or(usize::MAX, |g| {
            g.deliveries.counter_budget(Counter(self.next_counter))
        })
    }

    /// A key delivery in the transmit queue, by its exchange id.
    pub(super) fn group_delivery(&self, id: u64) -> Option<&InFlight> {
        self.group()?.deliveries.get(id)
    }

    /// Whether a round is pointless: sessions exist and our first key is on its way.
    pub(super) fn group_starting(&self) -> bool {
        self.group()
            .is_some_and(|g| !g.ready && !g.deliveries.is_empty() && !self.servers.is_empty())
    }

    /// Forgets every key delivery (the client is closing).
    pub(super) fn drop_group_deliveries(&mut self) {
        if let Some(g) = self.group_mut() {
            g.deliveries.drain().for_each(drop);
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::net::SocketAddr;

    use crate::crypto::ecc::KeyPair;
    use crate::endpoint::{ClientConfig, DropReason, SendOptions, ServerConfig, ServerEvent};
    use crate::id::{ClientId, Counter};
    use crate::session::{self, GroupTx, TxKey};
    use crate::testing::{Link, Network};
    use crate::time::Duration;
    use crate::wire::{App, Message};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The trust model of §12.11, pinned: a member holding a client's group key can seal group
    /// packets in that client's name to the other members (as the shared C>S key allows in
    /// suites 1 and 2), but it cannot replace the client's key at them: op 32 counts only over
    /// the client's own pairwise session.
    #[test]
    fn a_member_can_forge_group_messages_but_not_replace_the_key() {
        let id = ClientId(*b"group-member-key");
        let server_keys = KeyPair::from_secret_bytes([0x22; 32]);
        let client_keys = KeyPair::from_secret_bytes([0x11; 32]);
        let group = addr("239.1.1.1:1783");
        let client = addr("10.0.0.9:40000");
        let members: Vec<SocketAddr> = (1..=2)
            .map(|i| addr(&alloc::format!("10.0.0.{i}:1783")))
            .collect();
        let mut net = Network::new(3, Link::clean());
        for (i, m) in members.iter().enumerate() {
            let cfg = ServerConfig::new([i as u8; 32])
                .with_keys(server_keys.clone())
                .with_ecc_client(id, *client_keys.public());
            net.add_server(*m, cfg);
            net.join(*m, group);
        }
        let cfg = ClientConfig::noise_ik(id, client_keys, *server_keys.public(), group, [7; 32]);
        net.add_client(client, cfg);
        net.run_for(Duration::from_millis(100));
        assert!(net.client(client).is_connected());
        let (insider, victim) = (members[0], members[1]);
        // What the insider holds after a delivery: the client's sender id and current key.
        let c = net.client(client);
        let next = c.next_counter;
        let g = c.noise.as_ref().and_then(|n| n.group.as_deref()).unwrap();
        let held = TxKey::Group(Box::new(GroupTx {
            key: g.current.1.clone(),
            sender: g.sender,
            key_id: g.current.0,
        }));
        let (sender, key_id) = (g.sender, g.current.0);
        let mut buf = [0u8; 256];
        let unexpected = net.server(victim).stats().dropped(DropReason::Unexpected);
        let takeover = App::GroupKey {
            sender,
            key_id: crate::wire::noise::KeyId(key_id.0 + 1),
            key: &[9; 32],
        };
        let n = session::seal(&held, Counter(next + 10), &takeover, &mut buf).unwrap();
        net.inject(insider, victim, &buf[..n]);
        let forged = App::ReliableMessage(Message {
            target: "t",
            name: "n",
            payload: b"forged",
        });
        let n = session::seal(&held, Counter(next + 11), &forged, &mut buf).unwrap();
        net.inject(insider, victim, &buf[..n]);
        net.run_for(Duration::from_millis(10));
        assert_eq!(
            net.server(victim).stats().dropped(DropReason::Unexpected),
            unexpected + 1,
            "the key change is refused"
        );
        let from_client = |e: &ServerEvent| match e {
            ServerEvent::Message { message: m, .. } if m.from == client => {
                Some(m.payload().to_vec())
            }
            _ => None,
        };
        let got: Vec<_> = net
            .server_events(victim)
            .iter()
            .filter_map(from_client)
            .collect();
        assert_eq!(
            got,
            [b"forged".to_vec()],
            "the forgery passes as the client's"
        );
        // The client's own key still works at the victim.
        let now = net.now();
        net.client(client)
            .send_message(now, "t", "n", b"genuine", SendOptions::reliable())
            .unwrap();
        net.run_for(Duration::from_millis(10));
        let got: Vec<_> = net
            .server_events(victim)
            .iter()
            .filter_map(from_client)
            .collect();
        assert_eq!(got, [b"genuine".to_vec()]);
    }
}
