//! The client role: one C>S key and counter for all servers, one receive session per server.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::{ecc, psk, SecretBoxKey};
use crate::handshake::{client as hs, HandshakeError, Initiator};
use crate::id::{Counter, MessageId};
use crate::reliability::rtt::RttEstimator;
use crate::reliability::{Due, Outbox, OwnedMessage};
use crate::rng::Rng;
use crate::session::{self, OpenError, RxSession};
use crate::time::{Duration, Instant};
use crate::wire::{self, App, CipherId, Datagram, SessionPacket, Setup};

use super::config::{ClientConfig, ClientCredentials};
use super::{
    check_message, owned, CloseReason, DropReason, Event, FailReason, Outgoing, ReceivedMessage,
    Reliability, SendError, SendOptions, Stats, Transmit,
};

/// The reference client's counter starts in `1024..=10^9`, leaving room below for nothing and
/// above for a lifetime of packets.
const COUNTER_BASE: (u64, u64) = (1024, 1_000_000_000);

/// A Pavillion client (suites 1 and 2) talking to one server address.
///
/// Messages sent before a session exists wait for it and then go out: none is acknowledged and
/// then dropped (the reference's bug 9). A reliable message keeps its counter across
/// retransmissions and re-handshakes; the client announces a counter floor just below the
/// oldest unacknowledged one, so a rebooted server still accepts it.
///
/// See the [module docs](super) for the driving contract, and the crate docs for an example.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    rng: Rng,
    /// C>S key: fixed for the life of the process (PSK: `H(PSK; cn)`; ECC: random), shared by
    /// all servers so that one multicast ciphertext reaches them all.
    tx_key: SecretBoxKey,
    /// PSK only: the client nonce the C>S key derives from.
    client_nonce: [u8; 32],
    /// The next counter to send under `tx_key`. Never reused, never zero.
    next_counter: u64,
    initiator: Initiator,
    connecting: Connecting,
    /// Earliest start of the next handshake round triggered by an unauthenticated packet.
    next_round_allowed: Instant,
    /// Sessions, keyed by the address the server answers from (the reference answers from a
    /// second port).
    servers: BTreeMap<SocketAddr, RemoteServer>,
    outbox: Outbox,
    /// Unreliable messages waiting for a session, bounded by `limits.max_queued`.
    waiting_unreliable: VecDeque<OwnedMessage>,
    rtt: RttEstimator,
    tx: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    next_message_id: u64,
    stats: Stats,
    closed: bool,
    /// Decryption scratch, allocated once.
    scratch: Vec<u8>,
    due: Vec<Due>,
    last_now: Instant,
    /// A retry delay computed before the driver told us the time (in `new`); armed by the
    /// first input, so a clock that does not start at zero does not fire it at once.
    unarmed_retry: Option<Duration>,
}

#[derive(Debug)]
struct RemoteServer {
    rx: RxSession<SecretBoxKey>,
    session_id: [u8; 16],
    /// The server confirmed the session (opcode 7, 16 or any authenticated packet).
    confirmed: bool,
    last_heard: Instant,
}

/// Handshake progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connecting {
    /// No round in progress.
    Idle,
    /// A round is open: op 1 was (or is about to be) sent, and is resent at `next_retry`.
    Requesting {
        attempt: u32,
        next_retry: Option<Instant>,
    },
    /// The server said it does not know us; no automatic retries until a new command.
    Rejected,
}

impl Client {
    /// Creates a client. It starts its first handshake at once: drain `poll_transmit`.
    pub fn new(config: ClientConfig) -> Self {
        let mut rng = Rng::from_seed(config.seed);
        let client_nonce: [u8; 32] = rng.array();
        let tx_key = match &config.credentials {
            ClientCredentials::Psk(key) => psk::client_to_server_key(key, &client_nonce),
            ClientCredentials::Ecc { .. } => SecretBoxKey::from_bytes(rng.array()),
        };
        let next_counter = rng.range_inclusive(COUNTER_BASE.0, COUNTER_BASE.1);
        let initiator = Initiator::new(&mut rng);
        let limits = &config.limits;
        let mut client = Client {
            outbox: Outbox::new(limits.max_queued, limits.max_in_flight),
            rtt: RttEstimator::new(limits.rtt),
            rng,
            tx_key,
            client_nonce,
            next_counter,
            initiator,
            connecting: Connecting::Idle,
            next_round_allowed: Instant::ZERO,
            servers: BTreeMap::new(),
            waiting_unreliable: VecDeque::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            next_message_id: 1,
            stats: Stats::default(),
            closed: false,
            scratch: vec![0; wire::MAX_DATAGRAM],
            due: Vec::new(),
            last_now: Instant::ZERO,
            unarmed_retry: None,
            config,
        };
        client.start_round(Instant::ZERO);
        if let Connecting::Requesting { next_retry, .. } = &mut client.connecting {
            client.unarmed_retry = next_retry.take().map(|t| t - Instant::ZERO);
        }
        client
    }

    /// Queues a message to `target`/`name` for the server.
    ///
    /// Returns its id at once. A reliable message's outcome arrives later as
    /// [`Event::Delivered`], [`Event::Failed`] or [`Event::TimedOut`] with that id; an
    /// unreliable one has no outcome event.
    ///
    /// # Errors
    /// [`SendError::InvalidName`] for a newline in `target` or `name`, [`SendError::TooLarge`]
    /// if it cannot fit one datagram, [`SendError::QueueFull`] when the bounded queue is full,
    /// [`SendError::Closed`] after [`Client::close`].
    pub fn send_message(
        &mut self,
        now: Instant,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        check_message(target, name, payload)?;
        let message = owned(target, name, payload);
        let id = MessageId(self.next_message_id);
        match options.reliability {
            Reliability::Reliable => {
                let timeout = options
                    .timeout
                    .unwrap_or(self.config.limits.default_timeout);
                self.outbox
                    .push(id, message, now + timeout)
                    .map_err(|_| SendError::QueueFull)?;
            }
            Reliability::Unreliable => {
                if self.is_connected() {
                    self.tx.push_back(Outgoing::Unreliable {
                        to: self.config.server,
                        message,
                    });
                } else if self.waiting_unreliable.len() < self.config.limits.max_queued {
                    self.waiting_unreliable.push_back(message);
                } else {
                    return Err(SendError::QueueFull);
                }
            }
        }
        self.next_message_id += 1;
        if !self.is_connected()
            && matches!(self.connecting, Connecting::Idle | Connecting::Rejected)
        {
            self.start_round(now);
        }
        self.pump(now);
        Ok(id)
    }

    /// Ends the session: sends quit (opcode 12) to the server and fails every pending message
    /// with [`FailReason::Closed`]. Later commands return [`SendError::Closed`].
    pub fn close(&mut self, now: Instant) {
        self.advance(now);
        if self.closed {
            return;
        }
        self.closed = true;
        if self.is_connected() {
            self.tx.push_back(Outgoing::Quit {
                to: self.config.server,
            });
        }
        for e in self.outbox.drain() {
            self.events.push_back(Event::Failed {
                id: e.id,
                reason: FailReason::Closed,
            });
        }
        self.waiting_unreliable.clear();
        let addrs: Vec<SocketAddr> = self.servers.keys().copied().collect();
        self.servers.clear();
        for addr in addrs {
            self.events.push_back(Event::Disconnected {
                addr,
                reason: CloseReason::LocallyClosed,
            });
        }
        self.connecting = Connecting::Idle;
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.stats.datagrams_received += 1;
        if self.closed {
            return;
        }
        match Datagram::parse(data) {
            Err(e) => self.stats.drop(DropReason::from_wire(e)),
            Ok(Datagram::Setup(setup)) => self.on_setup(now, from, setup),
            Ok(Datagram::Session(packet)) => {
                let header = data.get(..wire::HEADER_LEN).unwrap_or_default();
                self.on_session(now, from, header, &packet);
            }
        }
        self.pump(now);
    }

    /// Runs the timers that are due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.closed {
            return;
        }
        if let Connecting::Requesting {
            attempt,
            next_retry: Some(t),
        } = self.connecting
        {
            if t <= now {
                self.send_request(attempt.saturating_add(1));
            }
        }
        self.pump(now);
    }

    /// Writes the next datagram into `buf` and says where it goes, or `None` when there is
    /// nothing to send.
    ///
    /// `buf` should hold [`wire::MAX_DATAGRAM`] bytes; a datagram that does not fit is dropped
    /// and counted in [`Stats::send_errors`].
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.advance(now);
        while let Some(out) = self.tx.pop_front() {
            match self.encode(now, out, buf) {
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
        if self.closed {
            return None;
        }
        let retry = match self.connecting {
            Connecting::Requesting { next_retry, .. } => next_retry,
            _ => None,
        };
        let outbox = self.outbox.next_timeout(self.is_connected());
        match (retry, outbox) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether at least one server session is up.
    pub fn is_connected(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The addresses of the servers we hold sessions with.
    pub fn servers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.servers.keys().copied()
    }

    /// Counters of what this endpoint did.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The current RTT estimate.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Reliable messages queued or in flight.
    pub fn pending_messages(&self) -> usize {
        self.outbox.len()
    }

    fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.last_now, "time went backwards");
        self.last_now = self.last_now.max(now);
        if let Some(delay) = self.unarmed_retry.take() {
            if let Connecting::Requesting { next_retry, .. } = &mut self.connecting {
                *next_retry = Some(self.last_now + delay);
            }
        }
    }

    /// Opens a new handshake round: a fresh challenge, and op 1 at once.
    fn start_round(&mut self, now: Instant) {
        self.initiator.new_round(&mut self.rng);
        self.unarmed_retry = None;
        self.next_round_allowed = now + self.config.min_round_interval;
        self.send_request(0);
    }

    /// Sends op 1 for the current round and schedules its retry.
    fn send_request(&mut self, attempt: u32) {
        let (cipher, public) = match &self.config.credentials {
            ClientCredentials::Psk(_) => (CipherId::Psk, [0; 32]),
            // Only ever the public key (the reference leaks the secret here: bug 1).
            ClientCredentials::Ecc { keys, .. } => (CipherId::Ecc, keys.public().to_bytes()),
        };
        let packet = self
            .initiator
            .request(cipher, self.config.client_id, public);
        self.tx.push_back(Outgoing::Setup {
            to: self.config.server,
            packet,
        });
        self.stats.handshake_requests += 1;
        let limits = &self.config.limits;
        let base = limits
            .handshake_retry
            .saturating_mul(1u32 << attempt.min(16))
            .min(limits.handshake_retry_max);
        // Up to 1/8 of jitter, so that many clients rebooted together do not retry in step.
        let jitter = self.rng.range_inclusive(0, (base.as_micros() / 8) as u64);
        let delay = base + Duration::from_micros(jitter);
        self.connecting = Connecting::Requesting {
            attempt,
            next_retry: Some(self.last_now + delay),
        };
    }

    /// A handshake triggered by an unauthenticated packet (op 4, op 5): rate limited.
    fn request_handshake(&mut self, now: Instant) {
        if matches!(self.connecting, Connecting::Requesting { .. }) || now < self.next_round_allowed
        {
            return;
        }
        self.start_round(now);
    }

    /// Whether `from` may speak for our server: a known reply address, or the configured host.
    fn is_our_server(&self, from: SocketAddr) -> bool {
        self.servers.contains_key(&from) || from.ip() == self.config.server.ip()
    }

    fn on_setup(&mut self, now: Instant, from: SocketAddr, setup: Setup) {
        match setup {
            Setup::PskNonce(p) => {
                let ClientCredentials::Psk(key) = &self.config.credentials else {
                    return self.stats.drop(DropReason::Unexpected);
                };
                match self.initiator.on_psk_nonce(key, &p) {
                    Ok(server_nonce) => {
                        let rx = psk::server_to_client_key(key, &self.client_nonce, &server_nonce);
                        let session_id = psk::session_id(key, &self.tx_key);
                        let info = hs::psk_client_info(
                            key,
                            self.config.client_id,
                            self.client_nonce,
                            server_nonce,
                            self.counter_floor(),
                        );
                        self.tx.push_back(Outgoing::Setup {
                            to: from,
                            packet: info,
                        });
                        self.on_established(now, from, rx, session_id);
                    }
                    Err(_) => self.stats.drop(DropReason::BadHandshake),
                }
            }
            Setup::EccNonce(p) => {
                let ClientCredentials::Ecc { keys, server } = &self.config.credentials else {
                    return self.stats.drop(DropReason::Unexpected);
                };
                match self.initiator.on_ecc_nonce(keys, server, &p) {
                    Ok(server_nonce) => {
                        // The client picks the S>C key, fresh for each server and handshake.
                        let rx = SecretBoxKey::from_bytes(self.rng.array());
                        let info = hs::ecc_client_info(
                            keys,
                            server,
                            self.config.client_id,
                            self.rng.array(),
                            server_nonce,
                            &self.tx_key,
                            &rx,
                            self.counter_floor(),
                        );
                        let session_id = ecc::session_id(keys.public(), &self.tx_key);
                        self.tx.push_back(Outgoing::Setup {
                            to: from,
                            packet: info,
                        });
                        self.on_established(now, from, rx, session_id);
                    }
                    Err(_) => self.stats.drop(DropReason::BadHandshake),
                }
            }
            Setup::UnrecognizedClient | Setup::NewServerJoin => {
                if self.is_our_server(from) {
                    self.request_handshake(now);
                } else {
                    self.stats.drop(DropReason::Unexpected);
                }
            }
            Setup::InvalidClientId { challenge } => {
                if !self.initiator.is_current(&challenge) || !self.is_our_server(from) {
                    return self.stats.drop(DropReason::BadHandshake);
                }
                self.on_rejected(from);
            }
            Setup::SessionEstablished { session_id } => match self.servers.get_mut(&from) {
                Some(s) if crate::crypto::ct_eq(&s.session_id, &session_id) => s.confirmed = true,
                _ => self.stats.drop(DropReason::Unexpected),
            },
            _ => self.stats.drop(DropReason::Unexpected),
        }
    }

    /// The server does not know our id. Queued messages that never left fail now; retries stop
    /// until the application sends again.
    fn on_rejected(&mut self, from: SocketAddr) {
        self.events.push_back(Event::HandshakeFailed {
            addr: from,
            reason: HandshakeError::UnknownClient,
        });
        self.connecting = Connecting::Rejected;
        if self.servers.is_empty() {
            for e in self.outbox.drain() {
                self.events.push_back(Event::Failed {
                    id: e.id,
                    reason: FailReason::Rejected,
                });
            }
            self.waiting_unreliable.clear();
        }
    }

    /// The floor announced in client-info: just below the oldest unacknowledged counter, so a
    /// fresh server session accepts every message still awaiting an ACK, and below every
    /// counter not yet used.
    fn counter_floor(&self) -> Counter {
        let oldest = self
            .outbox
            .oldest_counter()
            .map_or(self.next_counter, |c| c.0);
        Counter(oldest.min(self.next_counter) - 1)
    }

    fn on_established(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rx: SecretBoxKey,
        session_id: [u8; 16],
    ) {
        if !self.servers.contains_key(&from) && self.servers.len() >= self.config.max_servers {
            let stalest = self
                .servers
                .iter()
                .min_by_key(|(_, s)| s.last_heard)
                .map(|(a, _)| *a);
            if let Some(addr) = stalest {
                self.servers.remove(&addr);
            }
        }
        self.servers.insert(
            from,
            RemoteServer {
                // The server's counters start fresh under a fresh S>C key.
                rx: RxSession::new(rx, Counter(0)),
                session_id,
                confirmed: false,
                last_heard: now,
            },
        );
        self.connecting = Connecting::Idle;
        // Close the round: an answer to a replayed old request now carries a stale challenge
        // and is refused, instead of starting a handshake nobody asked for.
        self.initiator.new_round(&mut self.rng);
        self.stats.handshakes += 1;
        self.events.push_back(Event::Connected {
            addr: from,
            peer: None,
        });
        for message in core::mem::take(&mut self.waiting_unreliable) {
            self.tx.push_back(Outgoing::Unreliable {
                to: self.config.server,
                message,
            });
        }
    }

    /// Finds the session of a packet: by address, or else any session with the same host that
    /// authenticates it (the reference may answer from another port of that host).
    fn on_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
    ) {
        let addr = if self.servers.contains_key(&from) {
            from
        } else {
            let candidates: Vec<SocketAddr> = self
                .servers
                .keys()
                .filter(|a| a.ip() == from.ip())
                .copied()
                .collect();
            let found = candidates.into_iter().find(|a| {
                self.servers.get(a).is_some_and(|s| {
                    let mut probe = s.rx.clone();
                    probe.open(packet, header, &mut self.scratch).is_ok()
                })
            });
            match found {
                Some(a) => a,
                None => return self.stats.drop(DropReason::UnknownPeer),
            }
        };
        let Some(server) = self.servers.get_mut(&addr) else {
            return self.stats.drop(DropReason::UnknownPeer);
        };
        let plain = match server.rx.open(packet, header, &mut self.scratch) {
            Ok(p) => p,
            Err((OpenError::Duplicate, Some(p))) => {
                self.stats.drop(DropReason::Duplicate);
                // A copy of a reliable message whose ACK was lost: acknowledge it again.
                if let Ok(App::ReliableMessage(_)) = App::parse(p) {
                    self.tx.push_back(Outgoing::Ack {
                        to: from,
                        counter: packet.counter,
                    });
                }
                return;
            }
            Err((e, _)) => return self.stats.drop(open_drop(e)),
        };
        server.last_heard = now;
        server.confirmed = true;
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
                    peer: None,
                    target: m.target.into(),
                    name: m.name.into(),
                    payload: bytes::Bytes::copy_from_slice(m.payload),
                    reliable,
                }));
            }
            App::Ack { counter, .. } => {
                if let Some(id) = self.outbox.on_ack(counter, now, &mut self.rtt) {
                    self.events.push_back(Event::Delivered { id });
                }
            }
            App::ClientAccept { .. } => {}
            App::Quit { .. } => {
                self.servers.remove(&addr);
                self.events.push_back(Event::Disconnected {
                    addr,
                    reason: CloseReason::PeerClosed,
                });
            }
            _ => self.stats.drop(DropReason::Unsupported),
        }
    }

    /// Moves due reliable messages into the transmit queue and reports timeouts.
    fn pump(&mut self, now: Instant) {
        let connected = self.is_connected() && !self.closed;
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        self.outbox.poll_due(now, connected, &mut due);
        for d in due.drain(..) {
            match d {
                Due::TimedOut(id) => self.events.push_back(Event::TimedOut { id }),
                Due::Transmit(id) => {
                    let first = self.outbox.get(id).is_some_and(|e| e.counter.is_none());
                    if first {
                        let c = self.take_counter();
                        self.outbox.on_first_transmit(id, c, now, &self.rtt);
                    } else {
                        self.outbox.on_retransmit(id, now, &self.rtt);
                        self.stats.retransmissions += 1;
                    }
                    self.tx.push_back(Outgoing::Reliable {
                        to: self.config.server,
                        id,
                    });
                }
            }
        }
        self.due = due;
    }

    fn take_counter(&mut self) -> Counter {
        let c = Counter(self.next_counter);
        self.next_counter += 1;
        c
    }

    fn encode(&mut self, _now: Instant, out: Outgoing, buf: &mut [u8]) -> Option<Transmit> {
        let (to, len) = match out {
            Outgoing::Setup { to, packet } => (to, packet.emit(buf).ok()?),
            Outgoing::Ack { to, counter } => {
                let c = self.take_counter();
                let app = App::Ack {
                    counter,
                    status: None,
                };
                (to, session::seal(&self.tx_key, c, &app, buf).ok()?)
            }
            Outgoing::Unreliable { to, message } => {
                let c = self.take_counter();
                (
                    to,
                    session::seal(&self.tx_key, c, &message.as_app(false), buf).ok()?,
                )
            }
            Outgoing::Reliable { to, id } => {
                let entry = self.outbox.get(id)?;
                let c = entry.counter?;
                (
                    to,
                    session::seal(&self.tx_key, c, &entry.message.as_app(true), buf).ok()?,
                )
            }
            Outgoing::Quit { to } => {
                let c = self.take_counter();
                (
                    to,
                    session::seal(&self.tx_key, c, &App::Quit { reason: None }, buf).ok()?,
                )
            }
        };
        Some(Transmit {
            destination: to,
            len,
        })
    }
}

pub(super) fn open_drop(e: OpenError) -> DropReason {
    match e {
        OpenError::Duplicate => DropReason::Duplicate,
        OpenError::TooOld => DropReason::TooOld,
        OpenError::Forged => DropReason::Forged,
        OpenError::Oversized => DropReason::Oversized,
    }
}
