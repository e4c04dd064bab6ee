//! The server role: one session per client address, bounded tables for everyone else.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::{ecc, SecretBoxKey};
use crate::handshake::{ExpectClientInfo, HandshakeError, SessionKeys};
use crate::id::{ClientId, Counter, MessageId, PeerId};
use crate::reliability::rtt::RttEstimator;
use crate::reliability::{Due, Outbox};
use crate::rng::Rng;
use crate::session::{self, OpenError, RxSession};
use crate::time::{Duration, Instant};
use crate::wire::{self, App, CipherId, Datagram, NonceRequest, SessionPacket, Setup};

use super::client::open_drop;
use super::config::ServerConfig;
use super::{
    check_message, owned, CloseReason, DropReason, Event, FailReason, Outgoing, ReceivedMessage,
    Reliability, SendError, SendOptions, Stats, Transmit,
};

/// The reference server's per-client counter base: `2^63 ..= 2^63 + 10^9`.
const COUNTER_BASE: (u64, u64) = (1 << 63, (1 << 63) + 1_000_000_000);

/// How often the unauthenticated tables are swept.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// A Pavillion server (suites 1 and 2).
///
/// It answers from the address it receives on (our server needs no second reply port; the
/// reference's client accepts either). State for unauthenticated peers lives in two bounded
/// tables: half-open handshakes, and the per-source rate limit of setup replies. No setup reply
/// is sent more than [`ServerConfig::replies_per_second`] times a second to one source, and
/// none is larger than the request that caused it, except the ECC nonce that the reference
/// format fixes at 108 bytes for a 101-byte request.
///
/// See the [module docs](super) for the driving contract.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    rng: Rng,
    sessions: BTreeMap<SocketAddr, ServerSession>,
    half_open: BTreeMap<SocketAddr, ExpectClientInfo>,
    limiter: BTreeMap<SocketAddr, ReplyBudget>,
    /// Sessions whose outbox is not empty, so that timers need not scan every session.
    busy: BTreeSet<SocketAddr>,
    tx: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    next_message_id: u64,
    next_housekeeping: Option<Instant>,
    stats: Stats,
    scratch: Vec<u8>,
    due: Vec<Due>,
    last_now: Instant,
}

/// One authenticated client.
#[derive(Debug)]
struct ServerSession {
    peer: PeerId,
    client_id: ClientId,
    /// C>S key and our window over the client's counters.
    rx: RxSession<SecretBoxKey>,
    /// S>C key and our counter under it.
    tx_key: SecretBoxKey,
    tx_counter: u64,
    session_id: [u8; 16],
    last_heard: Instant,
    rtt: RttEstimator,
    outbox: Outbox,
}

/// Setup replies sent to one source in the current one-second window.
#[derive(Debug, Clone, Copy)]
struct ReplyBudget {
    window_start: Instant,
    sent: u32,
}

impl Server {
    /// Creates a server.
    pub fn new(config: ServerConfig) -> Self {
        Server {
            rng: Rng::from_seed(config.seed),
            config,
            sessions: BTreeMap::new(),
            half_open: BTreeMap::new(),
            limiter: BTreeMap::new(),
            busy: BTreeSet::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            next_message_id: 1,
            next_housekeeping: None,
            stats: Stats::default(),
            scratch: vec![0; wire::MAX_DATAGRAM],
            due: Vec::new(),
            last_now: Instant::ZERO,
        }
    }

    /// Queues a message to the client at `to`.
    ///
    /// # Errors
    /// [`SendError::UnknownPeer`] without a session at `to`; otherwise as
    /// [`Client::send_message`](super::Client::send_message).
    pub fn send_message(
        &mut self,
        now: Instant,
        to: SocketAddr,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        self.advance(now);
        check_message(target, name, payload)?;
        let default_timeout = self.config.limits.default_timeout;
        let session = self.sessions.get_mut(&to).ok_or(SendError::UnknownPeer)?;
        let id = MessageId(self.next_message_id);
        let message = owned(target, name, payload);
        match options.reliability {
            Reliability::Reliable => {
                let deadline = now + options.timeout.unwrap_or(default_timeout);
                session
                    .outbox
                    .push(id, message, deadline)
                    .map_err(|_| SendError::QueueFull)?;
                self.busy.insert(to);
            }
            Reliability::Unreliable => self.tx.push_back(Outgoing::Unreliable { to, message }),
        }
        self.next_message_id += 1;
        self.pump(now);
        Ok(id)
    }

    /// Ends the session with `to`: sends quit (opcode 12) and fails its pending messages.
    pub fn disconnect(&mut self, now: Instant, to: SocketAddr) {
        self.advance(now);
        if self.sessions.contains_key(&to) {
            self.tx.push_back(Outgoing::Quit { to });
            self.end_session(to, CloseReason::LocallyClosed, FailReason::Closed);
        }
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.stats.datagrams_received += 1;
        match Datagram::parse(data) {
            Err(e) => self.stats.drop(DropReason::from_wire(e)),
            Ok(Datagram::Setup(setup)) => self.on_setup(now, from, setup),
            Ok(Datagram::Session(packet)) => {
                let header = data.get(..wire::HEADER_LEN).unwrap_or_default();
                self.on_session(now, from, header, &packet);
            }
        }
        self.pump(now);
        self.arm_housekeeping(now);
    }

    /// Runs the timers that are due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.next_housekeeping.is_some_and(|t| t <= now) {
            self.next_housekeeping = None;
            self.housekeeping(now);
            self.arm_housekeeping(now);
        }
        self.pump(now);
    }

    /// Writes the next datagram into `buf` and says where it goes, or `None` when there is
    /// nothing to send. `buf` should hold [`wire::MAX_DATAGRAM`] bytes.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.advance(now);
        while let Some(out) = self.tx.pop_front() {
            match self.encode(out, buf) {
                Some(t) => {
                    self.stats.datagrams_sent += 1;
                    return Some(t);
                }
                None => self.stats.send_errors += 1,
            }
        }
        None
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` next has work, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let outboxes = self
            .busy
            .iter()
            .filter_map(|a| self.sessions.get(a))
            .filter_map(|s| s.outbox.next_timeout(true));
        outboxes.chain(self.next_housekeeping).min()
    }

    /// Counters of what this endpoint did.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of established sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of handshakes in progress (unauthenticated state).
    pub fn half_open_count(&self) -> usize {
        self.half_open.len()
    }

    /// Addresses and identities of the connected clients.
    pub fn clients(&self) -> impl Iterator<Item = (SocketAddr, PeerId)> + '_ {
        self.sessions.iter().map(|(a, s)| (*a, s.peer))
    }

    fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.last_now, "time went backwards");
        self.last_now = self.last_now.max(now);
    }

    fn arm_housekeeping(&mut self, now: Instant) {
        if self.next_housekeeping.is_none()
            && !(self.half_open.is_empty() && self.limiter.is_empty())
        {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let timeout = self.config.half_open_timeout;
        self.half_open.retain(|_, h| now - h.created < timeout);
        self.limiter
            .retain(|_, b| now - b.window_start < HOUSEKEEPING);
    }

    /// Takes one setup reply from `to`'s budget. Bounded: when the table is full of live
    /// entries, new sources get no reply until entries expire.
    fn allow_reply(&mut self, now: Instant, to: SocketAddr) -> bool {
        if !self.limiter.contains_key(&to)
            && self.limiter.len() >= self.config.max_rate_limited_sources
        {
            self.limiter
                .retain(|_, b| now - b.window_start < HOUSEKEEPING);
            if self.limiter.len() >= self.config.max_rate_limited_sources {
                self.stats.drop(DropReason::TableFull);
                return false;
            }
        }
        let b = self.limiter.entry(to).or_insert(ReplyBudget {
            window_start: now,
            sent: 0,
        });
        if now - b.window_start >= HOUSEKEEPING {
            *b = ReplyBudget {
                window_start: now,
                sent: 0,
            };
        }
        if b.sent >= self.config.replies_per_second {
            self.stats.drop(DropReason::RateLimited);
            return false;
        }
        b.sent += 1;
        true
    }

    fn reply_setup(&mut self, now: Instant, to: SocketAddr, packet: Setup) {
        if self.allow_reply(now, to) {
            self.tx.push_back(Outgoing::Setup { to, packet });
        }
    }

    fn on_setup(&mut self, now: Instant, from: SocketAddr, setup: Setup) {
        match setup {
            Setup::NonceRequest(req) => self.on_nonce_request(now, from, req),
            Setup::PskClientInfo(info) => {
                let verdict = match self.half_open.get(&from) {
                    Some(half) => half.on_psk_info(&info),
                    None => return self.stats.drop(DropReason::Unexpected),
                };
                self.on_client_info(now, from, info.client_id, verdict);
            }
            Setup::EccClientInfo(info) => {
                let verdict = match (self.half_open.get(&from), self.config.keys.as_ref()) {
                    (Some(half), Some(keys)) => half.on_ecc_info(&info, keys),
                    _ => return self.stats.drop(DropReason::Unexpected),
                };
                self.on_client_info(now, from, info.client_id, verdict);
            }
            _ => self.stats.drop(DropReason::Unexpected),
        }
    }

    fn on_client_info(
        &mut self,
        now: Instant,
        from: SocketAddr,
        client_id: ClientId,
        verdict: Result<SessionKeys, HandshakeError>,
    ) {
        match verdict {
            Ok(keys) => {
                self.half_open.remove(&from);
                self.establish(now, from, client_id, keys);
            }
            Err(_) => self.stats.drop(DropReason::BadHandshake),
        }
    }

    fn on_nonce_request(&mut self, now: Instant, from: SocketAddr, req: NonceRequest) {
        if self
            .sessions
            .get(&from)
            .is_some_and(|s| crate::crypto::ct_eq(&s.session_id, &req.session_hint))
        {
            // The reference's "already connected" shortcut.
            return self.stats.drop(DropReason::Unexpected);
        }
        // A retried request gets the identical answer, at no new state.
        if let Some(half) = self.half_open.get(&from) {
            if half.answers(req.client_id, &req.challenge) {
                if let Ok(reply) = half.reply(self.config.keys.as_ref()) {
                    self.reply_setup(now, from, reply);
                }
                return;
            }
        }
        let half = match req.cipher {
            CipherId::Psk => match self.config.psk_clients.get(&req.client_id) {
                Some(key) => ExpectClientInfo::psk(
                    now,
                    req.client_id,
                    key.clone(),
                    self.rng.array(),
                    req.challenge,
                ),
                None => return self.refuse(now, from, req.challenge),
            },
            CipherId::Ecc => {
                if self.config.keys.is_none() {
                    return self.stats.drop(DropReason::Unsupported);
                }
                let (public, guest) = match self.config.ecc_clients.get(&req.client_id) {
                    Some(k) => (*k, false),
                    None if self.config.allow_guest => (ecc::PublicKey::from(req.public_key), true),
                    None => return self.refuse(now, from, req.challenge),
                };
                let (nonce, box_nonce) = (self.rng.array(), self.rng.array());
                ExpectClientInfo::ecc(
                    now,
                    req.client_id,
                    public,
                    guest,
                    nonce,
                    box_nonce,
                    req.challenge,
                )
            }
        };
        let Ok(reply) = half.reply(self.config.keys.as_ref()) else {
            return self.stats.drop(DropReason::Unsupported);
        };
        if !self.allow_reply(now, from) {
            return;
        }
        if !self.half_open.contains_key(&from) && self.half_open.len() >= self.config.max_half_open
        {
            let oldest = self
                .half_open
                .iter()
                .min_by_key(|(_, h)| h.created)
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.half_open.remove(&a);
            }
        }
        self.half_open.insert(from, half);
        self.stats.handshake_requests += 1;
        self.tx.push_back(Outgoing::Setup {
            to: from,
            packet: reply,
        });
    }

    /// Opcode 6: the client id is unknown. 36 bytes for a 101-byte request.
    fn refuse(&mut self, now: Instant, to: SocketAddr, challenge: [u8; 16]) {
        self.stats.drop(DropReason::BadHandshake);
        self.reply_setup(now, to, Setup::InvalidClientId { challenge });
    }

    fn establish(
        &mut self,
        now: Instant,
        from: SocketAddr,
        client_id: ClientId,
        keys: SessionKeys,
    ) {
        let fresh_counter = self.rng.range_inclusive(COUNTER_BASE.0, COUNTER_BASE.1);
        let session_id = keys.session_id;
        match self.sessions.get_mut(&from) {
            // The same client process (same C>S key) handshaking again, for example after a
            // spoofed op 4: keep the replay window, so that nothing it already sent can be
            // replayed, and keep the outbox and counter.
            Some(s) if s.rx.key == keys.client_to_server && s.client_id == client_id => {
                s.tx_key = keys.server_to_client;
                s.session_id = session_id;
                s.last_heard = now;
            }
            existing => {
                if existing.is_none() && !self.make_room(now) {
                    return self.stats.drop(DropReason::TableFull);
                }
                let limits = &self.config.limits;
                let session = ServerSession {
                    peer: keys.peer,
                    client_id,
                    rx: RxSession::new(keys.client_to_server, keys.client_counter),
                    tx_key: keys.server_to_client,
                    tx_counter: fresh_counter,
                    session_id,
                    last_heard: now,
                    rtt: RttEstimator::new(limits.rtt),
                    outbox: Outbox::new(limits.max_queued, limits.max_in_flight),
                };
                if let Some(old) = self.sessions.insert(from, session) {
                    // A different client process took over the address: its messages are
                    // not for this one.
                    self.fail_outbox(old.outbox, FailReason::PeerClosed);
                }
                self.busy.remove(&from);
            }
        }
        self.stats.handshakes += 1;
        self.tx.push_back(Outgoing::Setup {
            to: from,
            packet: Setup::SessionEstablished { session_id },
        });
        let peer = self.sessions.get(&from).map(|s| s.peer);
        self.events.push_back(Event::Connected { addr: from, peer });
    }

    /// Makes room for one more session, replacing the longest-idle one if it is idle enough.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.sessions.len() < self.config.max_sessions {
            return true;
        }
        let idle = self.config.session_idle;
        let victim = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_heard)
            .filter(|(_, s)| now - s.last_heard >= idle)
            .map(|(a, _)| *a);
        match victim {
            Some(a) => {
                self.end_session(a, CloseReason::LocallyClosed, FailReason::Closed);
                true
            }
            None => false,
        }
    }

    fn end_session(&mut self, addr: SocketAddr, reason: CloseReason, fail: FailReason) {
        if let Some(s) = self.sessions.remove(&addr) {
            self.busy.remove(&addr);
            self.fail_outbox(s.outbox, fail);
            self.events.push_back(Event::Disconnected { addr, reason });
        }
    }

    fn fail_outbox(&mut self, mut outbox: Outbox, reason: FailReason) {
        for e in outbox.drain() {
            self.events.push_back(Event::Failed { id: e.id, reason });
        }
    }

    fn on_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
    ) {
        let Some(s) = self.sessions.get_mut(&from) else {
            // Probably a client whose session we lost (we rebooted): tell it to handshake.
            self.stats.drop(DropReason::UnknownPeer);
            return self.reply_setup(now, from, Setup::UnrecognizedClient);
        };
        let plain = match s.rx.open(packet, header, &mut self.scratch) {
            Ok(p) => p,
            Err((OpenError::Duplicate, Some(p))) => {
                self.stats.drop(DropReason::Duplicate);
                // Re-acknowledge: the first ACK may have been lost (the reference never does,
                // so its clients report false failures: wire notes §10 bug 10).
                if let Ok(App::ReliableMessage(_)) = App::parse(p) {
                    self.tx.push_back(Outgoing::Ack {
                        to: from,
                        counter: packet.counter,
                    });
                }
                return;
            }
            Err((OpenError::Forged, _)) => {
                self.stats.drop(DropReason::Forged);
                // A client that rebooted onto the same port has a new key: tell it to
                // handshake, unless the session is evidently alive.
                if now - s.last_heard > Duration::from_secs(1) {
                    self.reply_setup(now, from, Setup::UnrecognizedClient);
                }
                return;
            }
            Err((e, _)) => return self.stats.drop(open_drop(e)),
        };
        s.last_heard = now;
        let peer = s.peer;
        let app = match App::parse(plain) {
            Ok(a) => a,
            Err(e) => return self.stats.drop(DropReason::from_wire(e)),
        };
        match app {
            App::ReliableMessage(m) | App::UnreliableMessage(m) => {
                let reliable = matches!(app, App::ReliableMessage(_));
                if reliable {
                    self.tx.push_back(Outgoing::Ack {
                        to: from,
                        counter: packet.counter,
                    });
                }
                self.stats.messages_received += 1;
                self.events.push_back(Event::Message(ReceivedMessage {
                    from,
                    peer: Some(peer),
                    target: m.target.into(),
                    name: m.name.into(),
                    payload: bytes::Bytes::copy_from_slice(m.payload),
                    reliable,
                }));
            }
            App::Ack { counter, .. } => {
                if let Some(id) = s.outbox.on_ack(counter, now, &mut s.rtt) {
                    self.events.push_back(Event::Delivered { id });
                    if s.outbox.is_empty() {
                        self.busy.remove(&from);
                    }
                }
            }
            App::Quit { .. } => {
                self.end_session(from, CloseReason::PeerClosed, FailReason::PeerClosed)
            }
            _ => self.stats.drop(DropReason::Unsupported),
        }
    }

    /// Moves due reliable messages of busy sessions into the transmit queue.
    fn pump(&mut self, now: Instant) {
        let mut due = core::mem::take(&mut self.due);
        let busy: Vec<SocketAddr> = self.busy.iter().copied().collect();
        for addr in busy {
            let Some(s) = self.sessions.get_mut(&addr) else {
                self.busy.remove(&addr);
                continue;
            };
            due.clear();
            s.outbox.poll_due(now, true, &mut due);
            for d in due.drain(..) {
                match d {
                    Due::TimedOut(id) => self.events.push_back(Event::TimedOut { id }),
                    Due::Transmit(id) => {
                        if s.outbox.get(id).is_some_and(|e| e.counter.is_none()) {
                            let c = Counter(s.tx_counter);
                            s.tx_counter += 1;
                            s.outbox.on_first_transmit(id, c, now, &s.rtt);
                        } else {
                            s.outbox.on_retransmit(id, now, &s.rtt);
                            self.stats.retransmissions += 1;
                        }
                        self.tx.push_back(Outgoing::Reliable { to: addr, id });
                    }
                }
            }
            if s.outbox.is_empty() {
                self.busy.remove(&addr);
            }
        }
        self.due = due;
    }

    fn encode(&mut self, out: Outgoing, buf: &mut [u8]) -> Option<Transmit> {
        let (to, len) = match out {
            Outgoing::Setup { to, packet } => (to, packet.emit(buf).ok()?),
            Outgoing::Ack { to, counter } => {
                let s = self.sessions.get_mut(&to)?;
                let c = take(&mut s.tx_counter);
                let app = App::Ack {
                    counter,
                    status: self.config.status,
                };
                (to, session::seal(&s.tx_key, c, &app, buf).ok()?)
            }
            Outgoing::Unreliable { to, message } => {
                let s = self.sessions.get_mut(&to)?;
                let c = take(&mut s.tx_counter);
                (
                    to,
                    session::seal(&s.tx_key, c, &message.as_app(false), buf).ok()?,
                )
            }
            Outgoing::Reliable { to, id } => {
                let s = self.sessions.get(&to)?;
                let e = s.outbox.get(id)?;
                (
                    to,
                    session::seal(&s.tx_key, e.counter?, &e.message.as_app(true), buf).ok()?,
                )
            }
            Outgoing::Quit { to } => {
                // The session is gone by now; quit is sealed under a key we no longer hold, so
                // it is sent only while the session exists (see `disconnect`).
                let s = self.sessions.get_mut(&to)?;
                let c = take(&mut s.tx_counter);
                (
                    to,
                    session::seal(&s.tx_key, c, &App::Quit { reason: None }, buf).ok()?,
                )
            }
        };
        Some(Transmit {
            destination: to,
            len,
        })
    }
}

fn take(counter: &mut u64) -> Counter {
    let c = Counter(*counter);
    *counter += 1;
    c
}
