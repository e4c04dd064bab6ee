//! The server role: one session per client address, bounded tables for everyone else.
//!
//! This module routes; the protocol is elsewhere. Suites 1 and 2: `setup.rs` routes to
//! `handshake::responder` (exchanges, box keys); suite 3: `noise.rs` routes to
//! `handshake::responder::read_initiation`, `handshake::noise` and `session`. Unauthenticated
//! replies are charged to `handshake::budget` (`budget.rs`), replies to duplicates limited by
//! `duplicates.rs`; calls go through `calls.rs` to `features::rpc`. Per-client state is `peer.rs`, the
//! session table's upkeep `sessions.rs`, and sealing what was queued `encode.rs`.

use super::shared::{self, Sealer, Shared};
use super::Encoded;
use crate::features::batch::MAX_RUN_FRAMES;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use bytes::Bytes;

use arrayvec::ArrayVec;

use crate::endpoint::{classify_opened, Inbound};
use crate::features::durable::Durable;
use crate::features::ordered::{self, OrderedReceiver, OrderedSender};
use crate::features::pubsub;
use crate::features::rpc;
use crate::features::segment::{Kind, Segments};
use crate::features::status::Status;
use crate::handshake::budget::ReplyBudgets;
use crate::handshake::responder::{Credentials, SetupResponder};
use crate::id::{Counter, FunctionId, MessageId, PeerId};
use crate::reliability::{Due, Payload};
use crate::rng::Rng;
use crate::session::{self, OpenError, Route};
use crate::time::{Duration, Instant};
use crate::wire::{self, App, Datagram, RpcStatus, SessionPacket, Setup};

use super::config::ServerConfig;
use super::{
    check_message, check_ordered, expired_event, fits_datagram, open_drop, owned, received_message,
    CallHandle, CloseReason, DropReason, FailReason, Outgoing, ReceivedMessage, Reliability,
    SendError, SendOptions, ServerEvent, Stats, Transmit,
};

mod addr_map;
#[cfg(any(test, feature = "testing"))]
pub(super) mod assumed;
mod authlog;
mod batch;
mod budget;
mod calls;
mod duplicates;
mod durable;
mod encode;
mod handoff;
mod keylog;
mod noise;
mod ordered_routes;
mod peer;
mod registers;
mod segment;
mod sessions;
mod setup;
mod subs;
mod timers;

use addr_map::AddrMap;
use encode::take;
use peer::{ServerSession, Who};

/// How often the unauthenticated tables and liveness are swept.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Gap between the three join announcements.
const ANNOUNCE_GAP: Duration = Duration::from_millis(25);

/// A Pavillion server (suites 1 and 2).
///
/// It answers from the address it receives on (our server needs no second reply port; the
/// reference's client accepts either). State for unauthenticated peers lives in two bounded
/// tables: half-open handshakes, and the per-source rate limit of setup replies. No setup reply
/// is sent more than [`ServerConfig::replies_per_second`] times a second to one source, and
/// none is larger than the request that caused it, except the ECC nonce that the reference
/// format fixes at 108 bytes for a 101-byte request.
///
/// RPC: calls to functions registered with [`Server::register_function`] come out as
/// [`ServerEvent::RpcRequest`]; answer them with [`Server::respond`], at once or later. Each
/// call runs at most once: a retry carries the same counter, and is answered from a bounded
/// cache.
///
/// See the [module docs](super) for the driving contract.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// Transmit queue, events, counters and scratch, as every role has them.
    shared: Shared<ServerEvent>,
    rng: Rng,
    /// Boxed: a B-tree leaf holds eleven entries and is often half full, so an inline session
    /// would leave its empty slots' worth of bytes unused per entry (measured: 1046 B per idle
    /// session inline, see the `compare` memory rows). IPv4 keys in 6 bytes (`addr_map`).
    sessions: AddrMap<Box<ServerSession>>,
    /// Suite 1 and 2 exchanges: half-open and just completed, and the box keys.
    setup: SetupResponder,
    /// Unauthenticated replies per source; a fixed table that evicts (see `handshake::budget`).
    limiter: ReplyBudgets,
    /// Sessions whose outbox is not empty, so that timers need not scan every session.
    busy: BTreeSet<SocketAddr>,
    /// Reused by `pump`, so the per-datagram path does not allocate.
    busy_scratch: Vec<SocketAddr>,
    /// Suite 3: the open run of messages sharing a counter (`features::batch`).
    run: crate::features::batch::Run,
    /// Suite 3: ACKs held for bursts (`features::ack_delay`), sent by `pump` when due.
    delayed_acks: crate::features::ack_delay::DelayedAcks,
    /// Registered RPC functions and their names (for standard call 1).
    functions: rpc::Functions,
    /// Targets we take messages for; announced to every client with opcode 13.
    targets: BTreeSet<String>,
    /// Which sessions subscribe to which targets (opcode 13 from clients).
    client_subs: pubsub::ClientSubs,
    /// Failed authentications per source, for rate-limited reports.
    auth_log: authlog::AuthLog,
    /// Declared registers and their observers (opcodes 6 to 10).
    registers: registers::ServerRegisters,
    /// Suite 3 tables (indices, pending handshakes, cookie secrets).
    noise: noise::ServerNoise,
    next_op_id: u64,
    next_generation: u64,
    next_housekeeping: Option<Instant>,
    announce_left: u8,
    next_announce: Option<Instant>,
    due: Vec<Due>,
    /// Segmented messages: our transfers, and the clients' partial messages.
    segments: Segments,
    /// Our ordered streams (op 36) to each client session, made at its first ordered send
    /// and dropped with the session.
    ordered_tx: BTreeMap<SocketAddr, OrderedSender>,
    /// Clients' ordered streams to us, and their reorder buffers (kept across a client's
    /// sessions: its epoch says when its streams start afresh).
    ordered_rx: OrderedReceiver,
    /// Reused for the messages an op 36 packet releases.
    ordered_out: Vec<ReceivedMessage>,
    /// Durable messages (op 37), off until `enable_durable`.
    durable: Durable,
    /// Acknowledgement hand-off: marked targets and held messages (`features::handoff`).
    handoffs: crate::features::handoff::Handoffs,
}

/// How an opened session packet reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// Over the client's own session (suites 1 and 2, suite 3 data packets).
    Session,
    /// As a suite 3 group data packet, sealed under the client's group key.
    Group,
}

impl Server {
    /// Creates a server. If `config.announce` is set, the join announcement goes out at once:
    /// drain `poll_transmit`.
    pub fn new(config: ServerConfig) -> Self {
        let mut rng = Rng::from_seed(config.seed);
        let noise = noise::ServerNoise::new(&mut rng.fork(), config.half_open_capacity());
        let limiter = ReplyBudgets::new(
            config.max_rate_limited_sources,
            [rng.next_u64(), rng.next_u64()],
        );
        let mut server = Server {
            shared: Shared::new(),
            noise,
            rng,
            sessions: AddrMap::default(),
            setup: SetupResponder::new(config.half_open_capacity()),
            limiter,
            busy: BTreeSet::new(),
            busy_scratch: Vec::new(),
            run: Default::default(),
            delayed_acks: Default::default(),
            functions: rpc::Functions::default(),
            targets: BTreeSet::new(),
            client_subs: pubsub::ClientSubs::default(),
            auth_log: authlog::AuthLog::new(),
            registers: registers::ServerRegisters::default(),
            next_op_id: 1,
            next_generation: 1,
            next_housekeeping: None,
            announce_left: 0,
            next_announce: None,
            due: Vec::new(),
            segments: Segments::new(&config.limits),
            ordered_tx: BTreeMap::new(),
            ordered_rx: OrderedReceiver::default(),
            ordered_out: Vec::new(),
            durable: Durable::new(config.limits.durable),
            handoffs: Default::default(),
            config,
        };
        if let Some(to) = server.config.announce {
            server.shared.tx.push_back(Outgoing::Setup {
                to,
                packet: Setup::NewServerJoin,
            });
            server.announce_left = 2;
        }
        server
    }

    /// Makes calls to `function` reach the application as [`ServerEvent::RpcRequest`]. `name`
    /// is what standard call 1 returns for it.
    pub fn register_function(&mut self, function: FunctionId, name: &str) {
        self.functions.register(function, name);
    }

    /// Stops delivering calls to `function`; they get status 2 (nonexistent function).
    pub fn unregister_function(&mut self, function: FunctionId) {
        self.functions.unregister(function);
    }

    /// Admits a suite 3 client key from now on (a relay trusting a peer added at run time).
    pub(crate) fn admit_ecc_client(
        &mut self,
        id: crate::id::ClientId,
        public: crate::crypto::ecc::PublicKey,
    ) {
        self.config.ecc_clients.insert(id, public);
    }

    /// Answers a call. `status` 0 means success; see [`RpcStatus`] for the others.
    ///
    /// # Errors
    /// [`SendError::UnknownCall`] if the call was answered already or its session is gone,
    /// [`SendError::TooLarge`] if the answer is larger than `Limits::max_message` (an answer
    /// too large for one datagram is sent in segments).
    pub fn respond(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: RpcStatus,
        data: &[u8],
    ) -> Result<(), SendError> {
        // Checked before the copy, so that an answer refused costs no allocation.
        self.advance(now);
        self.check_answer(data.len())?;
        self.respond_bytes(now, call, status, Bytes::copy_from_slice(data))
    }

    /// As [`respond`](Self::respond), keeping `data` itself (no copy) in the session's answer
    /// cache, which resends it to a retried call. The cache counts `data.len()` against
    /// `rpc_cache_bytes`: a slice of a larger buffer keeps that whole buffer alive until the
    /// answer leaves the cache, so pass a buffer of the answer's own size.
    ///
    /// # Errors
    /// As [`respond`](Self::respond).
    pub fn respond_bytes(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: RpcStatus,
        data: Bytes,
    ) -> Result<(), SendError> {
        self.advance(now);
        self.check_answer(data.len())?;
        let s = self
            .sessions
            .get_mut(&call.addr)
            .filter(|s| s.generation == call.generation)
            .ok_or(SendError::UnknownCall)?;
        if !s.calls.take_pending(call.counter) {
            return Err(SendError::UnknownCall);
        }
        let gap = duplicates::resend_gap(s, self.config.limits.rtt.min_rto);
        let answer = rpc::Answer::new(call.counter, status, data, now, gap);
        s.calls
            .remember(calls::cache_bounds(&self.config), answer, now);
        self.shared.tx.push_back(Outgoing::RpcResponse {
            to: call.addr,
            call: call.counter,
        });
        Ok(())
    }

    /// Refuses an answer of `len` bytes larger than `Limits::max_message` (at least 4 KiB).
    fn check_answer(&self, len: usize) -> Result<(), SendError> {
        if 11 + len > self.config.limits.max_message().max(4096) {
            return Err(SendError::TooLarge);
        }
        Ok(())
    }

    /// Queues a message to the client at `to`. A reliable message too large for one datagram
    /// is sent in segments (`docs/PROTOCOL.md` §9.7), with [`ServerEvent::Progress`].
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
        if options.reliability == Reliability::Ordered {
            check_ordered(target, name, payload)?;
        }
        let default_timeout = self.config.limits.default_timeout;
        if options.reliability == Reliability::Reliable
            && !fits_datagram(3 + target.len() + name.len() + payload.len())
        {
            check_message(target, name, b"")?;
            let m = wire::Message {
                target,
                name,
                payload,
            };
            let deadline = now + options.timeout.unwrap_or(default_timeout);
            let app = App::ReliableMessage(m);
            return self
                .send_segmented(now, to, Kind::Message, &app, deadline)
                .map(MessageId);
        }
        check_message(target, name, payload)?;
        let session = self.sessions.get_mut(&to).ok_or(SendError::UnknownPeer)?;
        let id = self.next_op_id;
        let message = owned(target, name, payload);
        match options.reliability {
            Reliability::Reliable => {
                let deadline = now + options.timeout.unwrap_or(default_timeout);
                session
                    .outbox
                    .push(id, Payload::Message(message), false, deadline)
                    .map_err(|_| SendError::QueueFull)?;
                self.busy.insert(to);
            }
            Reliability::Ordered => {
                let deadline = now + options.timeout.unwrap_or(default_timeout);
                self.push_ordered(to, id, message, deadline)?;
            }
            Reliability::Unreliable => self
                .shared
                .tx
                .push_back(Outgoing::Unreliable { to, message }),
        }
        self.next_op_id += 1;
        self.pump(now);
        Ok(MessageId(id))
    }

    /// Sends a message to every client for which `filter(address, identity)` is true (use
    /// `|_, _| true` for all). Each client gets its own message id and outcome event.
    ///
    /// # Errors
    /// [`SendError::InvalidName`] or [`SendError::TooLarge`] for a message that cannot be sent
    /// at all; per client, the error of [`Server::send_message`].
    #[allow(clippy::type_complexity)]
    pub fn send_to_all(
        &mut self,
        now: Instant,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
        filter: impl Fn(SocketAddr, PeerId) -> bool,
    ) -> Result<Vec<(SocketAddr, Result<MessageId, SendError>)>, SendError> {
        let reliable = options.reliability == Reliability::Reliable;
        if reliable
            && 3 + target.len() + name.len() + payload.len() > self.config.limits.max_message()
        {
            return Err(SendError::TooLarge);
        }
        check_message(target, name, if reliable { b"" } else { payload })?;
        let chosen: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(a, s)| filter(*a, s.peer))
            .map(|(a, _)| a)
            .collect();
        Ok(chosen
            .into_iter()
            .map(|a| (a, self.send_message(now, a, target, name, payload, options)))
            .collect())
    }

    /// Takes messages for `target`: tells every client now and every client that connects
    /// later (opcode 13, acknowledged by our clients and retried), so that their multicast
    /// sends to it expect our ACK.
    pub fn subscribe(&mut self, now: Instant, target: &str) {
        self.advance(now);
        if self.targets.insert(target.into()) {
            let addrs: Vec<SocketAddr> = self.sessions.keys().collect();
            for a in addrs {
                self.push_internal(now, a, Payload::Subscribe(target.into()));
            }
            self.pump(now);
        }
    }

    /// Stops taking messages for `target`, and tells every client (opcode 14).
    pub fn unsubscribe(&mut self, now: Instant, target: &str) {
        self.advance(now);
        if self.targets.remove(target) {
            let addrs: Vec<SocketAddr> = self.sessions.keys().collect();
            for a in addrs {
                self.push_internal(now, a, Payload::Unsubscribe(target.into()));
            }
            self.pump(now);
        }
    }

    /// Sets the status appended to our ACKs (11-byte ACKs), or `None` for the plain 8-byte
    /// ACKs a Python peer needs.
    pub fn set_status(&mut self, status: Option<Status>) {
        self.config.status = status.map(|s| s.to_bytes());
    }

    /// Ends every session: each client is sent quit (opcode 12) and pending messages fail with
    /// [`FailReason::Closed`]. The server stays usable: clients may connect again.
    pub fn close(&mut self, now: Instant) {
        let addrs: Vec<SocketAddr> = self.sessions.keys().collect();
        for a in addrs {
            self.disconnect(now, a);
        }
    }

    /// Ends the session with `to`: sends quit (opcode 12) and fails its pending messages.
    pub fn disconnect(&mut self, now: Instant, to: SocketAddr) {
        self.advance(now);
        if let Some(s) = self.sessions.get_mut(&to) {
            // Sealed now: the key goes with the session.
            let c = take(&mut s.tx_counter);
            let mut buf = [0u8; wire::SESSION_OVERHEAD + 1];
            let sealed = session::seal(&s.tx_key, c, &App::Quit { reason: None }, &mut buf);
            if let Some(datagram) = sealed.ok().and_then(|n| ArrayVec::try_from(&buf[..n]).ok()) {
                self.shared.tx.push_back(Outgoing::Sealed { to, datagram });
            }
            self.end_session(to, CloseReason::LocallyClosed, FailReason::Closed);
        }
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.shared.stats.datagrams_received += 1;
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
        self.arm_housekeeping(now);
    }

    /// Runs the timers that are due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.run_timers(now);
        self.pump(now);
        self.arm_housekeeping(now);
    }

    /// Writes the next datagram into `buf` and says where it goes, or `None` when there is
    /// nothing to send. `buf` should hold [`wire::MAX_DATAGRAM`] bytes.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.advance(now);
        shared::poll_transmit(self, now, buf)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.shared.events.pop_front()
    }

    /// When `handle_timeout` next has work, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers().next_timeout()
    }

    /// Counters of what this endpoint did.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Number of established sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of handshakes in progress (unauthenticated state), all suites.
    pub fn half_open_count(&self) -> usize {
        self.setup.half_open_len() + self.noise.pending_count()
    }

    /// Addresses and identities of the connected clients.
    pub fn clients(&self) -> impl Iterator<Item = (SocketAddr, PeerId)> + '_ {
        self.sessions.iter().map(|(a, s)| (a, s.peer))
    }

    /// Suite 3 multicast senders whose group keys we hold: at most one per session.
    pub fn group_senders(&self) -> usize {
        self.noise.group_count()
    }

    /// Calls awaiting an answer from the application, over all sessions.
    pub fn pending_calls(&self) -> usize {
        self.sessions.values().map(|s| s.calls.pending_len()).sum()
    }

    fn advance(&mut self, now: Instant) {
        self.shared.advance(now);
        if self.announce_left > 0 && self.next_announce.is_none() {
            self.next_announce = Some(self.shared.last_now + ANNOUNCE_GAP);
        }
    }

    fn arm_housekeeping(&mut self, now: Instant) {
        let idle = self.setup.is_idle()
            && self.limiter.is_empty()
            && self.auth_log.is_empty()
            && self.sessions.is_empty()
            && self.noise.pending_count() == 0;
        if self.next_housekeeping.is_none() && !idle {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
    }

    /// Expires unauthenticated state and reports clients that went quiet.
    fn housekeeping(&mut self, now: Instant) {
        self.noise_housekeeping(now);
        let timeout = self.config.half_open_timeout;
        self.setup.expire(now, timeout);
        self.limiter.expire(now);
        self.expire_auth_log(now);
        let down = self.config.limits.down_timeout;
        let ttl = self.config.rpc_cache_ttl;
        for (addr, s) in self.sessions.iter_mut() {
            s.calls.expire(ttl, now);
            if s.up && now - s.last_heard >= down {
                s.up = false;
                self.shared.events.push_back(ServerEvent::PeerDown { addr });
            }
        }
    }

    fn on_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
    ) {
        // The plaintext borrows the scratch buffer while handlers need `self`: lend it out.
        shared::with_scratch(self, |role, scratch| {
            role.on_session_in(now, from, header, packet, scratch)
        });
    }

    fn on_session_in(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
        scratch: &mut [u8],
    ) {
        let Some(s) = self.sessions.get_mut(&from) else {
            // Probably a client whose session we lost (we rebooted): tell it to handshake.
            self.shared.stats.drop(DropReason::UnknownPeer);
            return self.reply_unrecognized(now, from);
        };
        let Ok(opened) = s.open(Route::Address, false, packet, header, scratch) else {
            self.shared.stats.drop(DropReason::Forged);
            // A client that rebooted onto the same port has a new key: tell it to handshake,
            // unless the session is evidently alive.
            if now - s.last_heard > Duration::from_secs(1) {
                self.reply_unrecognized(now, from);
            }
            return;
        };
        self.on_opened(now, from, packet.counter, opened.result, Via::Session);
    }

    /// Acts on a session packet that was opened (or refused) under the session at `from`,
    /// whatever its suite. `via` says whether it came over that session or as a suite 3 group
    /// packet, which any holder of the client's group key could have sealed.
    fn on_opened(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        opened: Result<&[u8], (OpenError, Option<&[u8]>)>,
        via: Via,
    ) {
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        let plain = match classify_opened(&mut self.shared.stats, opened) {
            Some(Inbound::Fresh(p)) => p,
            Some(Inbound::Duplicate(p)) => return self.on_duplicate(now, from, counter, p, via),
            None => return,
        };
        s.last_heard = now;
        if !s.up {
            s.up = true;
            self.shared
                .events
                .push_back(ServerEvent::PeerUp { addr: from });
        }
        let peer = s.peer;
        // Only a suite 3 session's own packets batch; checked on the session in hand, since
        // every lookup walks the session table.
        if via == Via::Session
            && batch::batches(s)
            && self.on_batched(now, from, peer, counter, plain)
        {
            return;
        }
        match App::parse(plain) {
            Ok(app) => self.on_app(now, from, peer, counter, app, via),
            Err(e) => self.shared.stats.drop(DropReason::from_wire(e)),
        }
    }

    /// Acts on one fresh application packet (or one frame of a batch) from the session at
    /// `from`, sealed under `counter`.
    fn on_app(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        app: App<'_>,
        via: Via,
    ) {
        match app {
            App::ReliableMessage(m) | App::UnreliableMessage(m) => {
                let reliable = matches!(app, App::ReliableMessage(_));
                if reliable && self.handoffs.holds_message(&m) {
                    return self.on_held_message(now, from, peer, counter, &m);
                }
                if reliable {
                    crate::endpoint::batch::queue_ack(&mut self.shared.tx, from, counter);
                }
                self.on_tag_message(now, from, &m);
                if let Some(message) = received_message(from, &m, reliable) {
                    self.shared.stats.messages_received += 1;
                    self.shared
                        .events
                        .push_back(ServerEvent::Message { peer, message });
                }
            }
            App::Ack { counter: acked, .. } => self.on_acked(now, from, acked),
            App::Segment(seg) => self.on_segment(now, from, counter, &seg, via),
            App::AckRanges(ranges) => self.on_ack_ranges(now, from, ranges),
            App::TransferRefused { transfer, reason } => self.on_refused(from, transfer, reason),
            App::RpcCall { function, args } => self.on_call(now, from, counter, function, args),
            App::OrderedMessage(o) => self.on_fresh_ordered(now, from, peer, counter, &o),
            App::DurableMessage(d) => self.on_fresh_durable(from, counter, &d, via),
            // Registers (§9.8): an observation names its session, as a subscription does.
            App::RegisterRead(p) => self.on_register_read(from, counter, p),
            App::RegisterValue(p) if p.answers == Counter(0) => {
                self.on_register_write(now, from, counter, p, true)
            }
            App::Observe(p) if via == Via::Session => self.on_observe(now, from, counter, p),
            App::RegisterInfoRequest(p) => self.on_register_info(from, counter, p),
            App::TimeSyncRequest => self.shared.tx.push_back(Outgoing::TimeResponse {
                to: from,
                request: counter,
            }),
            App::Quit { .. } => {
                self.end_session(from, CloseReason::PeerClosed, FailReason::PeerClosed)
            }
            // A subscription names its session: only that session's own key may carry it,
            // not a group packet any member could have sealed.
            App::Subscribe { target } if via == Via::Session => {
                self.on_client_subscribe(from, peer, counter, target)
            }
            App::Unsubscribe { target } if via == Via::Session => {
                self.on_client_unsubscribe(from, peer, counter, target)
            }
            App::Subscribe { .. } | App::Unsubscribe { .. } => {
                self.shared.stats.drop(DropReason::Unexpected)
            }
            // Only the client itself may name its group key: a group packet could come from
            // any member holding the current one.
            App::GroupKey { .. } if via == Via::Group => {
                self.shared.stats.drop(DropReason::Unexpected)
            }
            App::GroupKey {
                sender,
                key_id,
                key,
            } => self.on_group_key(from, counter, sender, key_id, key),
            _ => self.shared.stats.drop(DropReason::Unsupported),
        }
    }

    /// Moves due exchanges of busy sessions into the transmit queue.
    fn pump(&mut self, now: Instant) {
        super::batch::flush_due_acks(&mut self.delayed_acks, now, &mut self.shared.tx);
        self.expire_handoffs(now);
        self.pump_registers(now);
        // A transfer with segments still to feed keeps its session busy.
        self.busy.extend(self.segments.transfers.destinations());
        if self.busy.is_empty() {
            // Nothing in flight anywhere (a server that only receives): no per-session pass.
            return self.emit_progress();
        }
        let mut due = core::mem::take(&mut self.due);
        let mut busy = core::mem::take(&mut self.busy_scratch);
        let mut segments_expired = Vec::new();
        busy.clear();
        busy.extend(self.busy.iter().copied());
        for &addr in &busy {
            let Some(s) = self.sessions.get_mut(&addr) else {
                self.busy.remove(&addr);
                continue;
            };
            due.clear();
            let window = self
                .config
                .limits
                .max_in_flight
                .min(crate::features::segment::SEGMENT_WINDOW);
            let next_id = &mut self.next_op_id;
            self.segments
                .transfers
                .top_up(Some(addr), &mut s.outbox, next_id, window);
            let budget = s.outbox.counter_budget(Counter(s.tx_counter));
            let per_counter = if batch::batches(s) { MAX_RUN_FRAMES } else { 1 };
            s.outbox
                .poll_due_runs(now, true, budget, per_counter, &mut due);
            let run = &mut self.run;
            run.pump(addr);
            for d in due.drain(..) {
                match d {
                    Due::Expired(e) if e.payload.transfer().is_some() => {
                        segments_expired.push((addr, e))
                    }
                    Due::Expired(e) => {
                        let tx = self.ordered_tx.get_mut(&addr);
                        if let Some(p) = ordered::resolve(tx, &e, true) {
                            let deadline = now + self.config.limits.default_timeout;
                            if s.outbox.push(self.next_op_id, p, true, deadline).is_ok() {
                                self.next_op_id += 1;
                            }
                        }
                        self.shared.events.extend(expired_event(e))
                    }
                    Due::Transmit(id) => {
                        if batch::on_due(s, run, &mut self.shared.stats, addr, id, now) {
                            self.shared
                                .tx
                                .push_back(Outgoing::Reliable { to: addr, id });
                        }
                    }
                }
            }
            if s.outbox.is_empty() {
                self.busy.remove(&addr);
            }
        }
        self.busy_scratch = busy;
        self.due = due;
        for (addr, e) in segments_expired {
            self.on_exchange_expired(addr, e);
        }
        self.emit_progress();
    }
}

/// The configuration's clients and keys, as the handshakes of every suite judge them.
fn credentials(config: &ServerConfig) -> Credentials<'_> {
    Credentials {
        psk_clients: &config.psk_clients,
        ecc_clients: &config.ecc_clients,
        allow_guest: config.allow_guest,
        keys: config.keys.as_ref(),
    }
}

impl Sealer for Server {
    type Event = ServerEvent;

    fn shared(&mut self) -> &mut Shared<ServerEvent> {
        &mut self.shared
    }

    fn encode(&mut self, now: Instant, out: Outgoing, buf: &mut [u8]) -> Encoded {
        Server::encode(self, now, out, buf)
    }
}
