//! The client role: one C>S key and counter for all servers, one receive session per server.

use super::shared::{self, Sealer, Shared};
use alloc::collections::VecDeque;

use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use crate::crypto::suite::{Suite, SuiteNotCompiled};
use crate::crypto::{psk, SecretBoxKey};
use crate::features::batch::MAX_RUN_FRAMES;
use crate::features::durable::Durable;
use crate::features::ordered::{OrderedReceiver, OrderedSender};
use crate::features::pubsub;
use crate::features::segment::{Kind, Segments};
use crate::features::timesync::{SyncId, TimeRequests};
use crate::handshake::noise_initiator::ClientNoise;
use crate::handshake::noise_initiator::NoiseSlot;
use crate::handshake::rounds::{Connecting, Rounds};
use crate::handshake::Initiator;
use crate::id::{Counter, FunctionId, MessageId};
use crate::reliability::rtt::RttEstimator;
use crate::reliability::{Due, InFlight, Outbox, OwnedMessage, Payload};
use crate::rng::Rng;
use crate::session::remote_server::RemoteServer;
pub use crate::session::remote_server::ServerInfo;
use crate::session::{self, TxKey};
use crate::time::{Duration, Instant};
use crate::util::VecMap;
use crate::wire::{self, App, Datagram};

use super::config::{ClientConfig, ClientCredentials};
use super::{
    check_message, check_ordered, check_size, copy_out, expired_event, owned, CallId, ClientEvent,
    CloseReason, DropReason, Encoded, FailReason, Outgoing, ReceivedMessage, Reliability,
    SendError, SendOptions, Stats, Transmit,
};

#[cfg(any(test, feature = "testing"))]
mod assumed;
mod authfail;
mod batch;
mod durable;
#[cfg(not(feature = "durable"))]
mod durable_off;
#[cfg(test)]
mod features_off_tests;
#[cfg(feature = "handoff")]
mod handoff;
#[cfg(not(feature = "handoff"))]
#[path = "client/handoff_off.rs"]
mod handoff;
mod inbound;
mod keylog;
mod noise;
#[cfg(feature = "ordered")]
mod ordered;
#[cfg(not(feature = "ordered"))]
#[path = "client/ordered_off.rs"]
mod ordered;
mod reconnect;
#[cfg(feature = "registers")]
mod registers;
#[cfg(not(feature = "registers"))]
#[path = "client/registers_off.rs"]
mod registers;
#[cfg(feature = "segment")]
mod segment;
#[cfg(not(feature = "segment"))]
#[path = "client/segment_off.rs"]
mod segment;
mod setup;
#[cfg(feature = "pubsub")]
mod subs;
#[cfg(not(feature = "pubsub"))]
#[path = "client/subs_off.rs"]
mod subs;
mod suspect;
mod timers;

/// The reference client's counter starts in `1024..=10^9`, leaving room below for nothing and
/// above for a lifetime of packets.
const COUNTER_BASE: (u64, u64) = (1024, 1_000_000_000);

/// A Pavillion client (suites 1, 2 and 3) talking to one server address, or to every server of
/// a multicast group or broadcast address.
///
/// Messages and calls made before a session exists wait for it and then go out: none is
/// acknowledged and then dropped (the reference's bug 9). A reliable exchange keeps its counter
/// across retransmissions and re-handshakes; the client announces a counter floor just below the
/// oldest unanswered one, so a rebooted server still accepts it, and a server answers a retried
/// call from its cache instead of running it twice.
///
/// In multicast mode every server of the group that answers the handshake gets its own
/// session. A reliable message to a target is expected to be acknowledged by every server known
/// to subscribe to that target (learned from opcode 13 and from ACKs), or by any one server when
/// none is known. Under suite 3 the servers of a group share one static key pair (or our PSK);
/// one initiation to the group reaches them all, each gets our group key over its own session,
/// and our sends to the group are sealed under that key (`docs/PROTOCOL.md` §12.11).
///
/// See the [module docs](super) for the driving contract, and the crate docs for an example.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// Transmit queue, events, counters and scratch, as every role has them.
    shared: Shared<ClientEvent>,
    rng: Rng,
    /// Suites 1 and 2: the C>S key, fixed for the life of the process (PSK: `H(PSK; cn)`;
    /// ECC: random), shared by all servers so that one multicast ciphertext reaches them all.
    cs_key: SecretBoxKey,
    /// What seals our packets: the C>S key (suites 1, 2), or the current Noise key and the
    /// server's index (suite 3; `None` until the first handshake).
    sealer: Option<TxKey>,
    /// Suite 3 handshake state; `None` for suites 1 and 2.
    noise: Option<ClientNoise>,
    /// PSK only: the client nonce the C>S key derives from.
    client_nonce: [u8; 32],
    /// The next counter to send. Never reused, never zero; it runs on across suite 3 rekeys.
    next_counter: u64,
    initiator: Initiator,
    /// Handshake rounds: retries, rate limit, confirmation.
    rounds: Rounds,
    /// An unauthenticated claim that a server lost our session, not believed yet; and until
    /// when claims are ignored after one proved false (see `suspect`).
    suspicion: Option<suspect::Suspicion>,
    claims_ignored_until: Instant,
    /// Whether `config.server` is a group or broadcast address.
    multicast: bool,
    /// Sessions, keyed by the address the server answers from (the reference answers from a
    /// second port).
    servers: VecMap<SocketAddr, RemoteServer>,
    /// Which servers take which targets (see [`pubsub`]).
    subscribers: pubsub::SubscriberTable,
    outbox: Outbox,
    /// Our subscriptions at servers (opcodes 13 and 14 sent by us).
    subs: pubsub::Subscriptions,
    /// Our register operations and observations (opcodes 6 to 10).
    registers: registers::ClientRegisters,
    /// Looking for a server we lost.
    reconnect: reconnect::Reconnect,
    /// Handshake replies of this round that did not authenticate.
    auth: authfail::AuthFailures,
    /// Unreliable messages waiting for a session, bounded by `limits.max_queued`.
    waiting_unreliable: VecDeque<OwnedMessage>,
    rtt: RttEstimator,
    next_op_id: u64,
    /// When we last sent something that the server answers (a reliable exchange or a time
    /// request); keepalives count from it, so unreliable traffic alone still gets keepalives.
    last_sent: Instant,
    /// Periodic time requests and the one [`Client::sync_time`] waits for (see
    /// [`features::timesync`](crate::features::timesync)).
    time: TimeRequests,
    closed: bool,
    due: Vec<Due>,
    /// Suite 3: the open run of messages sharing a counter (`features::batch`).
    run: crate::features::batch::Run,
    /// Suite 3: ACKs held for bursts (`features::ack_delay`), sent by `pump` when due.
    delayed_acks: crate::features::ack_delay::DelayedAcks,
    /// Segmented messages: our transfers, and the servers' partial messages.
    segments: Segments,
    /// Our ordered streams (op 36), one table for every server; made at the first ordered
    /// send (see [`features::ordered`](crate::features::ordered)).
    ordered_tx: Option<OrderedSender>,
    /// The servers' ordered streams to us, and their reorder buffers.
    ordered_rx: OrderedReceiver,
    /// Reused for the messages an op 36 packet releases.
    ordered_out: Vec<ReceivedMessage>,
    /// Durable messages (op 37), off until `enable_durable`.
    durable: Durable,
    /// Acknowledgement hand-off: marked targets and held messages (`features::handoff`).
    #[cfg(feature = "handoff")]
    handoffs: handoff::ClientHandoffs,
}

impl Client {
    /// Creates a client. It starts its first handshake at once: drain `poll_transmit`.
    pub fn new(config: ClientConfig) -> Self {
        let mut rng = Rng::from_seed(config.seed);
        let client_nonce: [u8; 32] = rng.array();
        let cs_key = match &config.credentials {
            ClientCredentials::Psk(key) => psk::client_to_server_key(key, &client_nonce),
            _ => SecretBoxKey::from_bytes(rng.array()),
        };
        let multicast = match config.server.ip() {
            IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        let limits = &config.limits;
        #[cfg(feature = "suite-noise")]
        let mut noise = ClientNoise::new(&config.credentials, multicast, limits, &mut rng);
        // Without suite 3 nothing can start a Noise state; the draw keeps every build's
        // RNG stream the same as the full build's.
        #[cfg(not(feature = "suite-noise"))]
        let mut noise: Option<ClientNoise> = {
            let _ = rng.next_u64();
            None
        };
        if let Some(n) = noise.as_mut() {
            n.index_prefix = config.index_prefix;
        }
        let sealer = noise.is_none().then(|| TxKey::Reference(cs_key.clone()));
        let next_counter = rng.range_inclusive(COUNTER_BASE.0, COUNTER_BASE.1);
        let initiator = Initiator::new(&mut rng);
        let mut client = Client {
            shared: Shared::new(),
            outbox: Outbox::new(limits.max_queued, limits.max_in_flight),
            subs: pubsub::Subscriptions::new(limits.max_queued, limits.max_in_flight),
            registers: registers::ClientRegisters::new(limits.max_queued, limits.max_in_flight),
            reconnect: reconnect::Reconnect::default(),
            auth: authfail::AuthFailures::default(),
            rtt: RttEstimator::new(limits.rtt),
            rng,
            cs_key,
            sealer,
            noise,
            client_nonce,
            next_counter,
            initiator,
            rounds: Rounds::new(),
            suspicion: None,
            claims_ignored_until: Instant::ZERO,
            multicast,
            servers: VecMap::new(),
            subscribers: pubsub::SubscriberTable::default(),
            waiting_unreliable: VecDeque::new(),
            next_op_id: 1,
            last_sent: Instant::ZERO,
            time: TimeRequests::default(),
            closed: false,
            due: Vec::new(),
            run: Default::default(),
            delayed_acks: Default::default(),
            segments: Segments::new(limits),
            ordered_tx: None,
            ordered_rx: OrderedReceiver::default(),
            ordered_out: Vec::new(),
            durable: Durable::new(limits.durable),
            #[cfg(feature = "handoff")]
            handoffs: Default::default(),
            config,
        };
        if !Suite::of_credentials(&client.config.credentials).is_compiled() {
            // A suite this build leaves out: a closed client that never handshakes and
            // refuses every command with `SendError::Closed` (`try_new` says why).
            client.closed = true;
            return client;
        }
        client.start_round(Instant::ZERO);
        client.rounds.disarm_first_retry();
        client
    }

    /// Creates a client like [`Client::new`], first checking that this build carries the
    /// suite of `config`'s credentials.
    ///
    /// # Errors
    /// [`SuiteNotCompiled`] when the build leaves that suite out (its `suite-*` feature is
    /// off); [`Client::new`] would return a closed client.
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::crypto::Psk;
    /// use pavillion_proto::endpoint::{Client, ClientConfig};
    /// use pavillion_proto::ClientId;
    ///
    /// let config = ClientConfig::psk(
    ///     ClientId(*b"sensor-000000001"),
    ///     Psk::from_bytes([7; 32]),
    ///     "127.0.0.1:1783".parse().unwrap(),
    ///     [2; 32],
    /// );
    /// // The default build carries every suite.
    /// assert!(Client::try_new(config).is_ok());
    /// ```
    pub fn try_new(config: ClientConfig) -> Result<Self, SuiteNotCompiled> {
        Suite::of_credentials(&config.credentials).check()?;
        Ok(Self::new(config))
    }

    /// Queues a message to `target`/`name` for the server (or the group).
    ///
    /// Returns its id at once. A reliable message's outcome arrives later as
    /// [`ClientEvent::Delivered`], [`ClientEvent::Failed`] or [`ClientEvent::TimedOut`] with
    /// that id; an unreliable one has no outcome event. A reliable message too large for one
    /// datagram is sent in segments (`docs/PROTOCOL.md` §9.7), with [`ClientEvent::Progress`]
    /// as they are acknowledged.
    ///
    /// # Errors
    /// [`SendError::InvalidName`] for a newline in `target` or `name`, [`SendError::TooLarge`]
    /// if a reliable message is larger than `Limits::max_message` or an ordered or unreliable
    /// one does not fit one datagram, [`SendError::QueueFull`] when the bounded queue is full,
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
        let body = 3 + target.len() + name.len() + payload.len();
        if options.reliability == Reliability::Reliable && !self.fits_one_datagram(body) {
            let m = wire::Message {
                target,
                name,
                payload,
            };
            check_message(target, name, b"")?;
            let deadline = now
                + options
                    .timeout
                    .unwrap_or(self.config.limits.default_timeout);
            let app = App::ReliableMessage(m);
            let id =
                self.send_segmented(now, Kind::Message, Some(target.into()), &app, deadline)?;
            return Ok(MessageId(id));
        }
        let ordered = options.reliability == Reliability::Ordered;
        if ordered {
            check_ordered(target, name, payload)?;
        } else {
            check_message(target, name, payload)?;
        }
        let prefix = if ordered {
            wire::ordered::PREFIX_LEN
        } else {
            0
        };
        self.check_group_size(3 + prefix + target.len() + name.len() + payload.len())?;
        let reliable = options.reliability != Reliability::Unreliable;
        if reliable && target.is_empty() && name.is_empty() && payload.is_empty() {
            // That is the keepalive's form: receivers acknowledge it but do not deliver it.
            return Err(SendError::InvalidName);
        }
        let message = owned(target, name, payload);
        let id = self.next_op_id;
        match options.reliability {
            Reliability::Reliable => {
                let timeout = options
                    .timeout
                    .unwrap_or(self.config.limits.default_timeout);
                self.push(Payload::Message(message), false, now + timeout)?;
            }
            Reliability::Ordered => {
                let timeout = options
                    .timeout
                    .unwrap_or(self.config.limits.default_timeout);
                self.push_ordered(message, now + timeout)?;
            }
            Reliability::Unreliable => {
                if self.is_connected() {
                    self.shared.tx.push_back(Outgoing::Unreliable {
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
        self.next_op_id += 1;
        self.after_command(now);
        Ok(MessageId(id))
    }

    /// Calls function `function` with `args` on the server (the first server to answer, in
    /// multicast mode).
    ///
    /// The outcome arrives as [`ClientEvent::Answered`], [`ClientEvent::RemoteError`],
    /// [`ClientEvent::CallTimedOut`] or [`ClientEvent::CallFailed`] with the returned id.
    /// Retries reuse the call's counter, so a server of ours runs the handler at most once and
    /// answers a retry from its cache.
    ///
    /// # Errors
    /// As [`Client::send_message`].
    pub fn call(
        &mut self,
        now: Instant,
        function: FunctionId,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> Result<CallId, SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        let deadline = now + timeout.unwrap_or(self.config.call_timeout);
        if !self.fits_one_datagram(3 + args.len()) {
            let app = App::RpcCall { function, args };
            return self
                .send_segmented(now, Kind::Call, None, &app, deadline)
                .map(CallId);
        }
        check_size(3 + args.len())?;
        self.check_group_size(3 + args.len())?;
        let id = self.next_op_id;
        let payload = Payload::Call {
            function,
            args: Bytes::copy_from_slice(args),
        };
        self.push(payload, false, deadline)?;
        self.next_op_id += 1;
        self.after_command(now);
        Ok(CallId(id))
    }

    /// Standard call 0: the server returns `data`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn echo(&mut self, now: Instant, data: &[u8]) -> Result<CallId, SendError> {
        self.call(now, FunctionId::ECHO, data, None)
    }

    /// Standard call 1: the server returns the name of `function` (empty if it has none).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn function_name(
        &mut self,
        now: Instant,
        function: FunctionId,
    ) -> Result<CallId, SendError> {
        self.call(now, FunctionId::NAME, &function.0.to_le_bytes(), None)
    }

    /// Asks the server (every server, in multicast mode) for its clock (opcode 20). The answer
    /// updates [`ServerInfo::clock`].
    ///
    /// Returns the sync's id at once. Each server's answer arrives as [`ClientEvent::ClockUpdated`]
    /// with that id; the first one ends the retries. With no answer by
    /// `timeout` (default `Limits::default_timeout`), [`ClientEvent::TimeSyncTimedOut`] ends it
    /// instead (or [`ClientEvent::TimeSyncFailed`] on `close`). Asking again while a sync is open
    /// sends a new request for the same sync, with the new deadline, and returns its id.
    ///
    /// # Errors
    /// [`SendError::UnknownPeer`] without a session, [`SendError::Closed`] after `close`.
    pub fn sync_time(
        &mut self,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<SyncId, SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        if !self.is_connected() {
            return Err(SendError::UnknownPeer);
        }
        self.shared.tx.push_back(Outgoing::TimeRequest {
            to: self.config.server,
        });
        self.last_sent = now;
        let fresh = SyncId(self.next_op_id);
        let first_retry = self.rtt.backoff(0);
        let timeout = timeout.unwrap_or(self.config.limits.default_timeout);
        let sync = self.time.ask(fresh, now, first_retry, timeout);
        if sync == fresh {
            self.next_op_id += 1;
        }
        Ok(sync)
    }

    /// Ends the session: sends quit (opcode 12) to the server and fails every pending message
    /// and call with [`FailReason::Closed`]. Later commands return [`SendError::Closed`].
    pub fn close(&mut self, now: Instant) {
        self.advance(now);
        if self.closed {
            return;
        }
        self.closed = true;
        if self.is_connected() {
            self.shared.tx.push_back(Outgoing::Quit {
                to: self.config.server,
            });
        }
        let pending: Vec<InFlight> = self.outbox.drain().collect();
        for e in pending {
            self.fail(e, FailReason::Closed);
        }
        self.fail_all_transfers(FailReason::Closed);
        if let Some(sync) = self.time.close() {
            self.shared.events.push_back(ClientEvent::TimeSyncFailed {
                sync,
                reason: FailReason::Closed,
            });
        }
        self.drop_group_deliveries();
        self.drop_subs();
        self.drop_registers();
        self.waiting_unreliable.clear();
        let addrs: Vec<SocketAddr> = self.servers.keys().copied().collect();
        self.servers.clear();
        for addr in addrs {
            self.shared.events.push_back(ClientEvent::Disconnected {
                addr,
                reason: CloseReason::LocallyClosed,
            });
        }
        self.rounds.connecting = Connecting::Idle;
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.shared.stats.datagrams_received += 1;
        if self.closed {
            return;
        }
        match Datagram::parse(data) {
            Err(e) => self.shared.stats.drop(DropReason::from_wire(e)),
            Ok(Datagram::Setup(setup)) => self.on_setup(now, from, setup),
            Ok(Datagram::Session(packet)) => {
                let header = data.get(..wire::HEADER_LEN).unwrap_or_default();
                self.on_session(now, from, header, &packet);
            }
            #[cfg(feature = "suite-noise")]
            Ok(Datagram::Noise(packet)) => self.on_noise(now, from, data, packet),
            #[cfg(not(feature = "suite-noise"))]
            Ok(Datagram::Noise(_)) => self.shared.stats.drop(DropReason::SuiteNotCompiled),
        }
        self.pump(now);
    }

    /// Runs the timers that are due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.closed {
            return;
        }
        self.run_timers(now);
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
        shared::poll_transmit(self, now, buf)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.shared.events.pop_front()
    }

    /// When `handle_timeout` next has work, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.timers().next_timeout()
    }

    /// Whether at least one server session is up. A suite 3 client in multicast mode counts as
    /// connected once a server has acknowledged its group key, since only then can the group
    /// read what it sends.
    pub fn is_connected(&self) -> bool {
        !self.servers.is_empty() && self.sealer.is_some()
    }

    /// The addresses of the servers we hold sessions with.
    pub fn servers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.servers.keys().copied()
    }

    /// What we know of the server answering from `addr`.
    pub fn server(&self, addr: SocketAddr) -> Option<ServerInfo<'_>> {
        self.servers
            .get(&addr)
            .map(|server| ServerInfo::new(addr, server))
    }

    /// What we know of every server we hold a session with.
    pub fn server_infos(&self) -> impl Iterator<Item = ServerInfo<'_>> + '_ {
        self.servers
            .iter()
            .map(|(addr, server)| ServerInfo::new(*addr, server))
    }

    /// The servers known to subscribe to `target`: confirmed within the subscriber TTL, or
    /// holding a live session with us (a subscription lasts as long as the server process,
    /// which re-announces it to every new session).
    pub fn subscribers(&self, now: Instant, target: &str) -> Vec<SocketAddr> {
        let live = |a: &SocketAddr| self.servers.get(a).is_some_and(|s| s.up && s.confirmed);
        self.subscribers
            .subscribers(now, self.config.subscriber_ttl, target, live)
    }

    /// Counters of what this endpoint did.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The current RTT estimate.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Reliable messages and calls queued or in flight (keepalives included).
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    fn advance(&mut self, now: Instant) {
        self.shared.advance(now);
        self.rounds.arm(self.shared.last_now);
    }

    fn push(
        &mut self,
        payload: Payload,
        internal: bool,
        deadline: Instant,
    ) -> Result<(), SendError> {
        self.outbox
            .push(self.next_op_id, payload, internal, deadline)
            .map_err(|_| SendError::QueueFull)
    }

    fn after_command(&mut self, now: Instant) {
        if !self.is_connected() && !self.group_starting() && self.rounds.may_start() {
            self.start_round(now);
        }
        self.pump(now);
    }

    fn keepalive_due(&self) -> Option<Instant> {
        let k = self.config.keepalive?;
        (self.is_connected() && !self.outbox.has_internal(&keepalive())).then(|| self.last_sent + k)
    }

    /// An empty reliable message, as the reference sends: it is acknowledged, so it both keeps
    /// NAT and firewall state alive and proves the server is still there.
    fn send_keepalive(&mut self, now: Instant) {
        let deadline = now
            + self
                .config
                .keepalive
                .unwrap_or(self.config.limits.default_timeout);
        let id = self.next_op_id;
        if self.outbox.push(id, keepalive(), true, deadline).is_ok() {
            self.next_op_id += 1;
        }
        // Even when the queue is full, a keepalive is not due again for a whole interval.
        self.last_sent = now;
    }

    fn fail(&mut self, e: InFlight, reason: FailReason) {
        #[cfg(feature = "durable")]
        if let Some(seq) = e.payload.durable() {
            // Stored, so not failed: ready again (sent by a later session or run).
            return self.durable.requeue(seq);
        }
        if let Some(wire) = e.payload.transfer() {
            return self.fail_transfer(wire, reason);
        }
        self.on_ordered_resolved(&e, true);
        if e.internal {
            return;
        }
        self.shared.events.push_back(match e.payload {
            Payload::Call { .. } => ClientEvent::CallFailed {
                call: CallId(e.id),
                reason,
            },
            _ => ClientEvent::Failed {
                id: MessageId(e.id),
                reason,
            },
        });
    }

    fn release_unreliable(&mut self) {
        for message in core::mem::take(&mut self.waiting_unreliable) {
            self.shared.tx.push_back(Outgoing::Unreliable {
                to: self.config.server,
                message,
            });
        }
    }

    /// The receivers a reliable exchange must be answered by: in multicast mode, the known
    /// subscribers of a message's target; otherwise (or with none known) any one server.
    fn expected_for(&self, now: Instant, payload: &Payload) -> Vec<SocketAddr> {
        match payload {
            Payload::Message(m) if self.multicast && !m.target().is_empty() => {
                self.subscribers(now, m.target())
            }
            Payload::Ordered(o) if self.multicast && !o.message.target().is_empty() => {
                self.subscribers(now, o.message.target())
            }
            _ => Vec::new(),
        }
    }

    /// Moves due exchanges into the transmit queue and reports the expired.
    fn pump(&mut self, now: Instant) {
        super::batch::flush_due_acks(&mut self.delayed_acks, now, &mut self.shared.tx);
        self.expire_handoffs(now);
        // Key deliveries first: a server should hold our group key before group packets come.
        self.pump_group(now);
        self.pump_subs(now);
        self.pump_registers(now);
        let connected = self.is_connected() && !self.closed && self.session_ready();
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        let budget = self.counter_budget();
        self.top_up_segments();
        let per_counter = if self.batches() { MAX_RUN_FRAMES } else { 1 };
        self.outbox
            .poll_due_runs(now, connected, budget, per_counter, &mut due);
        let mut run = core::mem::take(&mut self.run);
        run.pump(self.config.server);
        for d in due.drain(..) {
            match d {
                Due::Expired(e) => {
                    self.reconnect_on_expired(now, &e);
                    self.on_expired(e);
                }
                Due::Transmit(id) => {
                    if self.on_due(now, &mut run, id) {
                        self.shared.tx.push_back(Outgoing::Reliable {
                            to: self.config.server,
                            id,
                        });
                    }
                    self.last_sent = now;
                }
            }
        }
        self.due = due;
        self.run = run;
        self.emit_progress();
    }

    /// How many exchanges may take a new counter, so that the oldest one still unanswered
    /// (a message, call or key delivery) stays inside the receivers' windows.
    fn counter_budget(&self) -> usize {
        self.outbox
            .counter_budget(Counter(self.next_counter))
            .min(self.group_counter_budget())
    }

    fn on_expired(&mut self, e: InFlight) {
        if let Some(wire) = e.payload.transfer() {
            return self.on_segment_expired(wire, e);
        }
        self.on_ordered_resolved(&e, true);
        if let Some(event) = expired_event(e) {
            self.shared.events.push_back(event);
        }
    }

    fn take_counter(&mut self) -> Counter {
        let c = Counter(self.next_counter);
        self.next_counter += 1;
        if let Some(n) = self.noise.live_mut() {
            n.sent_under_key += 1;
        }
        c
    }

    fn seal(&mut self, to: SocketAddr, app: &App<'_>, buf: &mut [u8]) -> Encoded {
        if self.tx_key_for(to).is_none() {
            return Encoded::Obsolete;
        }
        let c = self.take_counter();
        match self.tx_key_for(to) {
            Some(tx) => Encoded::from(to, session::seal(tx, c, app, buf)),
            None => Encoded::Obsolete,
        }
    }

    fn encode(&mut self, now: Instant, out: Outgoing, buf: &mut [u8]) -> Encoded {
        if let Some(encoded) = self.encode_coalesced(&out, buf) {
            return encoded;
        }
        match out {
            Outgoing::Setup { to, packet } => Encoded::from(to, packet.emit(buf)),
            Outgoing::Ack { to, counter } => self.seal(
                to,
                &App::Ack {
                    counter,
                    status: None,
                },
                buf,
            ),
            Outgoing::Unreliable { to, message } => self.seal(to, &message.as_app(false), buf),
            Outgoing::Reliable { to, id } => {
                // Acknowledged between the timer and now: nothing to send.
                let Some(e) = self
                    .outbox
                    .get(id)
                    .or_else(|| self.group_delivery(id))
                    .or_else(|| self.sub_exchange(id))
                    .or_else(|| self.register_exchange(id))
                else {
                    return Encoded::Obsolete;
                };
                let Some(c) = e.counter else {
                    return Encoded::Obsolete;
                };
                let Some(tx) = self.tx_key_for(to) else {
                    return Encoded::Obsolete;
                };
                let Some(mut app) = e.payload.as_app() else {
                    let seq = e.payload.durable();
                    return self.encode_durable(to, c, seq, buf);
                };
                if let (App::OrderedMessage(o), Some(streams)) = (&mut app, &self.ordered_tx) {
                    streams.stamp(o);
                }
                Encoded::from(to, session::seal(tx, c, &app, buf))
            }
            Outgoing::TimeRequest { to } => {
                let c = Counter(self.next_counter);
                for s in self.servers.values_mut() {
                    s.clock.on_request(c, now);
                }
                self.time.on_sent(c);
                self.seal(to, &App::TimeSyncRequest, buf)
            }
            Outgoing::TimeResponse { to, request } => {
                let app = App::TimeSyncResponse {
                    request,
                    monotonic_us: now.as_micros(),
                    unix_us: None,
                };
                self.seal(to, &app, buf)
            }
            Outgoing::Quit { to } => self.seal(to, &App::Quit { reason: None }, buf),
            Outgoing::RpcResponse { .. } => Encoded::Obsolete,
            Outgoing::AckRanges { to } => self.encode_ack_ranges(to, buf),
            Outgoing::Refuse {
                to,
                transfer,
                reason,
            } => self.encode_refusal(to, transfer, reason, buf),
            Outgoing::Register { to, reply } => self.seal(to, &reply.as_app(), buf),
            Outgoing::Sealed { to, datagram } => copy_out(to, &datagram, buf),
            Outgoing::Initiation { to, datagram } => copy_out(to, &datagram, buf),
        }
    }
}

fn keepalive() -> Payload {
    Payload::Message(OwnedMessage::new("", "", &[]))
}

impl Sealer for Client {
    type Event = ClientEvent;

    fn shared(&mut self) -> &mut Shared<ClientEvent> {
        &mut self.shared
    }

    fn encode(&mut self, now: Instant, out: Outgoing, buf: &mut [u8]) -> Encoded {
        Client::encode(self, now, out, buf)
    }
}
