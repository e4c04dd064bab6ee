//! Endpoint configuration, with the reference's defaults where it has them.

use alloc::collections::BTreeMap;
use core::net::SocketAddr;

use crate::crypto::ecc::{self, KeyPair, PublicKey};
use crate::crypto::Psk;
use crate::features::durable::DurableLimits;
use crate::features::ordered::OrderedLimits;
use crate::id::ClientId;
use crate::reliability::rtt::RttConfig;
use crate::time::Duration;
use crate::wire::StatusBytes;

/// How a client proves who it is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientCredentials {
    /// Suite 1: a 32-byte pre-shared key known to the server under our client id.
    Psk(Psk),
    /// Suite 2: our X25519 key pair, and the server's public key.
    Ecc {
        /// Our key pair.
        keys: KeyPair,
        /// The server's public key.
        server: PublicKey,
    },
    /// Suite 3 (Noise): `IK` with `keys` and `server`, `IKpsk2` if `psk` is also set,
    /// `NNpsk0` with `psk` alone. To reach a multicast group, every server of it holds the key
    /// pair whose public half is `server` (or our PSK), as under suite 2.
    Noise {
        /// Our static key pair (IK patterns).
        keys: Option<KeyPair>,
        /// The server's static public key (IK patterns).
        server: Option<PublicKey>,
        /// A pre-shared key (IKpsk2, NNpsk0).
        psk: Option<Psk>,
    },
}

/// Capacities and timers shared by both roles. Every table a remote peer can make us grow has a
/// bound here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// RTT estimation and retransmission timeouts.
    pub rtt: RttConfig,
    /// Deadline of a reliable message whose options give none (the reference client's 5 s).
    pub default_timeout: Duration,
    /// Reliable messages queued or in flight per peer; `send_message` fails beyond it.
    pub max_queued: usize,
    /// Counters in flight (datagrams sent, unacknowledged) per peer: one per reliable message,
    /// except on suite 3, where a batch's messages share one (`docs/PROTOCOL.md` §17.3).
    /// Together with the replay window (1024 counters) this keeps a retransmission inside the
    /// receiver's window.
    pub max_in_flight: usize,
    /// First handshake retry interval; it doubles up to `handshake_retry_max`.
    pub handshake_retry: Duration,
    /// Ceiling of the handshake retry interval; the same as the RTO ceiling by default, so a
    /// handshake under heavy loss is retried as persistently as the messages waiting for it.
    pub handshake_retry_max: Duration,
    /// A peer from which nothing authenticated arrives for this long is reported down
    /// ([`ClientEvent::PeerDown`](super::ClientEvent::PeerDown),
    /// [`ServerEvent::PeerDown`](super::ServerEvent::PeerDown)).
    pub down_timeout: Duration,
    /// Largest reliable message (or call arguments, or answer) we send or accept, in bytes of
    /// its whole plaintext; one that does not fit a datagram is segmented (opcode 33,
    /// `docs/PROTOCOL.md` §9.7). Values above [`Limits::MAX_MESSAGE_CEILING`] count as it.
    pub max_message: usize,
    /// Reassembly bytes one peer may hold reserved at once (the announced totals of its partial
    /// messages); a message that would exceed it is refused with
    /// [`TransferRefusal::NoRoom`](super::TransferRefusal::NoRoom).
    pub reassembly_per_peer: usize,
    /// Reassembly bytes all peers together may hold reserved at once.
    pub reassembly_total: usize,
    /// A partial message that gets no new segment for this long is freed.
    pub reassembly_timeout: Duration,
    /// Bounds of the ordered streams (op 36) peers may open here.
    pub ordered: OrderedLimits,
    /// Bounds of durable messages (op 37): our outbox, the senders and inbox we keep.
    pub durable: DurableLimits,
    /// Suite 3: the longest we hold the ACK of a batch whose sender has more data queued
    /// (`MORE`), so that several go in one datagram (`docs/PROTOCOL.md` §17.4). The delay
    /// used is `min(max_ack_delay, srtt / 4)`, and never above 25 ms, the ceiling senders
    /// allow for. Zero acknowledges every batch at once.
    pub max_ack_delay: Duration,
    /// Suite 3: held ACKs for one peer go at once when this many are held (1 to 32).
    pub ack_eliciting_threshold: usize,
    /// Acknowledgement hand-off (`docs/PROTOCOL.md` §18): a held message not completed within
    /// this is refused, so its sender's retransmission is delivered again.
    pub handoff_timeout: Duration,
    /// Acknowledgement hand-off: messages held at once per session; one more is refused
    /// ([`DropReason::HandoffFull`](super::DropReason::HandoffFull)) and comes again.
    pub max_held_per_session: usize,
    /// Acknowledgement hand-off: messages held at once over all sessions.
    pub max_held: usize,
}

impl Limits {
    /// The largest `max_message` honoured (64 MiB): larger values are clamped to it.
    pub const MAX_MESSAGE_CEILING: usize = 64 << 20;

    /// `max_message`, clamped to [`Limits::MAX_MESSAGE_CEILING`].
    pub fn max_message(&self) -> usize {
        self.max_message.min(Self::MAX_MESSAGE_CEILING)
    }

    /// Sets `max_message` and grows the reassembly budgets, if needed, to hold one message of
    /// that size with its bookkeeping (the budgets count a fixed overhead per partial message
    /// beside its bytes), so that a limit the budgets could never meet does not refuse every
    /// large message as `NoRoom`. Budgets already larger stay.
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::endpoint::Limits;
    /// let mut limits = Limits::default();
    /// limits.set_max_message(8 << 20);
    /// assert_eq!(limits.max_message(), 8 << 20);
    /// assert!(limits.reassembly_per_peer > 8 << 20);
    /// assert!(limits.reassembly_total >= limits.reassembly_per_peer);
    /// ```
    pub fn set_max_message(&mut self, bytes: usize) {
        self.max_message = bytes;
        let need = self.max_message() + crate::features::segment::reassembly::PARTIAL_OVERHEAD;
        self.reassembly_per_peer = self.reassembly_per_peer.max(need);
        self.reassembly_total = self.reassembly_total.max(self.reassembly_per_peer);
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rtt: RttConfig::default(),
            default_timeout: Duration::from_secs(5),
            max_queued: 1024,
            max_in_flight: 64,
            handshake_retry: Duration::from_millis(250),
            handshake_retry_max: Duration::from_secs(4),
            down_timeout: Duration::from_secs(40),
            max_message: 1 << 20,
            reassembly_per_peer: 2 << 20,
            reassembly_total: 16 << 20,
            reassembly_timeout: Duration::from_secs(30),
            ordered: OrderedLimits::default(),
            durable: DurableLimits::default(),
            max_ack_delay: Duration::from_millis(2),
            ack_eliciting_threshold: 8,
            handoff_timeout: Duration::from_secs(30),
            // A pipelining client keeps up to 1,024 messages in flight (the adapters' default
            // send window): a smaller bound refuses most of them and makes it resend (measured
            // through the bridge: 1.9k msg/s at 64 against tens of thousands). An entry is about
            // 100 bytes, so the global bound keeps the table under 2 MB.
            max_held_per_session: 1024,
            max_held: 16384,
        }
    }
}

/// Configuration of a [`Client`](super::Client).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Our 16-byte id.
    pub client_id: ClientId,
    /// Our credentials.
    pub credentials: ClientCredentials,
    /// The server's address (its listening port, 1783 by default).
    pub server: SocketAddr,
    /// Seed of the endpoint's RNG. Use fresh OS randomness in deployments.
    pub seed: [u8; 32],
    /// Capacities and timers.
    pub limits: Limits,
    /// Most servers (reply addresses) we keep sessions with.
    pub max_servers: usize,
    /// Least time between two handshake rounds started by an unauthenticated trigger (opcodes
    /// 4 and 5), so that spoofed triggers cannot make us flood a server.
    pub min_round_interval: Duration,
    /// In multicast mode, how long a handshake round stays open for more servers to answer.
    /// Under suite 3 a new group key takes over only after that, once every server holds it.
    pub round_grace: Duration,
    /// Send a keepalive (an empty reliable message, as the reference does) after this long
    /// without sending anything; `None` turns keepalives off.
    pub keepalive: Option<Duration>,
    /// Deadline of a call whose options give none (the reference client's 2 s).
    pub call_timeout: Duration,
    /// A server that has not confirmed a subscription for this long stops being expected to
    /// acknowledge messages to that target (the reference's 240 s).
    pub subscriber_ttl: Duration,
    /// Most targets whose subscribers are tracked.
    pub max_targets: usize,
    /// Send a time sync request (opcode 20) this often; `None` only syncs on
    /// [`Client::sync_time`](super::Client::sync_time).
    pub time_sync: Option<Duration>,
    /// Suite 3: agree new keys after this long (WireGuard's 120 s).
    pub rekey_after: Duration,
    /// Suite 3: agree new keys after this many packets under one key.
    pub rekey_after_messages: u64,
    /// Ceiling of the retry interval while the client looks for a server it lost (it quit,
    /// went silent or restarted): short, so that a client is back soon after its server
    /// (`docs/PROTOCOL.md` §6.7). Just under 1 s by default, so a LAN client is back within
    /// 1 s of its server's return even when nothing announces it.
    pub reconnect_retry_max: Duration,
    /// Suite 3: the top byte of every session index we draw, so that a relay can route the
    /// packets of several endpoints sharing one socket by index (`None`: all random).
    pub(crate) index_prefix: Option<u8>,
}

impl ClientConfig {
    /// A suite 1 (PSK) client.
    pub fn psk(client_id: ClientId, psk: Psk, server: SocketAddr, seed: [u8; 32]) -> Self {
        Self::new(client_id, ClientCredentials::Psk(psk), server, seed)
    }

    /// A suite 2 (ECC) client with a configured id.
    pub fn ecc(
        client_id: ClientId,
        keys: KeyPair,
        server_public: PublicKey,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> Self {
        let credentials = ClientCredentials::Ecc {
            keys,
            server: server_public,
        };
        Self::new(client_id, credentials, server, seed)
    }

    /// A suite 2 guest: the client id defaults to the first 16 bytes of the unkeyed
    /// BLAKE2b-256 of our public key, as the reference does.
    pub fn guest(
        keys: KeyPair,
        server_public: PublicKey,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> Self {
        let id = ecc::default_client_id(keys.public());
        Self::ecc(id, keys, server_public, server, seed)
    }

    /// A suite 3 client with a static key pair, which knows the server's public key (Noise
    /// `IK`; add a PSK with [`ClientConfig::with_noise_psk`] for `IKpsk2`).
    pub fn noise_ik(
        client_id: ClientId,
        keys: KeyPair,
        server_public: PublicKey,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> Self {
        let credentials = ClientCredentials::Noise {
            keys: Some(keys),
            server: Some(server_public),
            psk: None,
        };
        Self::new(client_id, credentials, server, seed)
    }

    /// A suite 3 guest: `IK` with a key the server does not know; the id defaults as for
    /// suite 2.
    pub fn noise_guest(
        keys: KeyPair,
        server_public: PublicKey,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> Self {
        let id = ecc::default_client_id(keys.public());
        Self::noise_ik(id, keys, server_public, server, seed)
    }

    /// A suite 3 client that holds only a pre-shared key (Noise `NNpsk0`).
    pub fn noise_psk(client_id: ClientId, psk: Psk, server: SocketAddr, seed: [u8; 32]) -> Self {
        let credentials = ClientCredentials::Noise {
            keys: None,
            server: None,
            psk: Some(psk),
        };
        Self::new(client_id, credentials, server, seed)
    }

    /// Adds a pre-shared key to a suite 3 `IK` client, making it `IKpsk2`.
    pub fn with_noise_psk(mut self, key: Psk) -> Self {
        if let ClientCredentials::Noise { psk, .. } = &mut self.credentials {
            *psk = Some(key);
        }
        self
    }

    /// A client with any credentials (the other constructors are shorthands for this).
    pub fn with_credentials(
        client_id: ClientId,
        credentials: ClientCredentials,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> Self {
        Self::new(client_id, credentials, server, seed)
    }

    fn new(
        client_id: ClientId,
        credentials: ClientCredentials,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> Self {
        ClientConfig {
            client_id,
            credentials,
            server,
            seed,
            limits: Limits::default(),
            max_servers: 128,
            min_round_interval: Duration::from_secs(1),
            round_grace: Duration::from_secs(2),
            keepalive: Some(Duration::from_secs(30)),
            call_timeout: Duration::from_secs(2),
            subscriber_ttl: Duration::from_secs(240),
            max_targets: 256,
            time_sync: None,
            rekey_after: Duration::from_secs(120),
            rekey_after_messages: 1 << 48,
            reconnect_retry_max: Duration::from_millis(900),
            index_prefix: None,
        }
    }
}

/// Configuration of a [`Server`](super::Server).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Seed of the endpoint's RNG. Use fresh OS randomness in deployments.
    pub seed: [u8; 32],
    /// Suite 1 clients: id to pre-shared key.
    pub psk_clients: BTreeMap<ClientId, Psk>,
    /// Our X25519 key pair; suite 2 is refused without one.
    pub keys: Option<KeyPair>,
    /// Suite 2 clients: id to public key.
    pub ecc_clients: BTreeMap<ClientId, PublicKey>,
    /// Admit suite 2 clients whose key we do not know, identified by the hash of their key.
    pub allow_guest: bool,
    /// Status bytes to append to ACKs (opcode 2 becomes 11 bytes). `None` keeps ACKs at the
    /// 8 bytes a Python client or server needs.
    pub status: Option<StatusBytes>,
    /// Capacities and timers.
    pub limits: Limits,
    /// Most established sessions. A new client beyond it replaces the longest-idle session if
    /// that one has been idle for `session_idle`, and is refused otherwise.
    pub max_sessions: usize,
    /// Idle time after which a session may be replaced (the reference's 300 s).
    pub session_idle: Duration,
    /// Most handshakes in progress (unauthenticated state); the oldest is dropped beyond it.
    /// The server raises it to the number of configured clients (see
    /// [`ServerConfig::half_open_capacity`]).
    pub max_half_open: usize,
    /// How long a handshake may stay half-open.
    pub half_open_timeout: Duration,
    /// Setup replies (opcodes 2, 4, 6, 11) per source address per second.
    pub replies_per_second: u32,
    /// Most source addresses tracked by the reply rate limit.
    pub max_rate_limited_sources: usize,
    /// Where to announce ourselves (opcode 5, three times) when created, for example the
    /// multicast group the clients listen on. `None` announces nothing.
    pub announce: Option<SocketAddr>,
    /// Answer the standard calls 0 (echo) and 1 (function name) without the application.
    pub builtin_calls: bool,
    /// Calls awaiting the application's answer, per session; more are refused with status 1
    /// (`Busy`). A call unanswered for `rpc_cache_ttl` is forgotten.
    pub max_pending_calls: usize,
    /// Most answered calls remembered per session, so that a retried call is answered again
    /// without running the handler again. A retry whose answer was forgotten gets status 1
    /// with the text `AnswerExpired`.
    pub rpc_cache_entries: usize,
    /// Bytes of remembered answers per session, counting a fixed overhead per answer.
    pub rpc_cache_bytes: usize,
    /// How long an answer is remembered; longer than any caller keeps retrying.
    pub rpc_cache_ttl: Duration,
    /// Suite 3: with this many handshakes pending, initiations must carry a valid cookie.
    pub cookie_threshold: usize,
    /// Suite 3: past this many initiations in one second, they must carry a valid cookie.
    pub cookie_rate: u32,
    /// Suite 3: an initiation whose source spent its `replies_per_second` is answered with a
    /// cookie reply instead of silence, and one carrying a valid cookie for its source is
    /// served from a second budget of `replies_per_second` that only the address's owner can
    /// spend (`docs/PROTOCOL.md` §15.6): a spoofer flooding initiations from a client's
    /// address cannot starve that client's handshakes. Off by default (the roles that admit
    /// by key, the authority and the member, turn it on); see `docs/PROTOCOL.md` §15.6 for
    /// why the default stays off for now.
    pub cookie_when_rate_limited: bool,
    /// Most client subscriptions (opcode 13 from clients, `docs/PROTOCOL.md` §9.6) held over
    /// all sessions; a subscription beyond it is not acknowledged.
    pub max_client_subscriptions: usize,
    /// Most subscriptions one session may hold.
    pub max_subscriptions_per_client: usize,
    /// Failed authentications from one source are reported
    /// ([`ServerEvent::AuthenticationFailed`](super::ServerEvent::AuthenticationFailed)) at most
    /// once per this interval; the table of sources shares `max_rate_limited_sources`.
    pub auth_report_interval: Duration,
    /// Most registers the application may declare (`docs/PROTOCOL.md` §9.8).
    pub max_registers: usize,
    /// Most observations (op 8) held over all sessions; one beyond it is answered with
    /// status `TOO_MANY_OBSERVERS`.
    pub max_observers: usize,
    /// Most observations one session may hold.
    pub max_observers_per_client: usize,
    /// Suite 3: the top byte of every session index we draw (see the client's).
    pub(crate) index_prefix: Option<u8>,
}

impl ServerConfig {
    /// A server with no clients yet; add them with the `with_*` builders.
    pub fn new(seed: [u8; 32]) -> Self {
        ServerConfig {
            seed,
            psk_clients: BTreeMap::new(),
            keys: None,
            ecc_clients: BTreeMap::new(),
            allow_guest: false,
            status: None,
            limits: Limits::default(),
            max_sessions: 4096,
            session_idle: Duration::from_secs(300),
            max_half_open: 256,
            half_open_timeout: Duration::from_secs(10),
            replies_per_second: 10,
            max_rate_limited_sources: 1024,
            announce: None,
            builtin_calls: true,
            max_pending_calls: 64,
            rpc_cache_entries: 1024,
            rpc_cache_bytes: 64 * 1024,
            rpc_cache_ttl: Duration::from_secs(30),
            cookie_threshold: 64,
            cookie_rate: 200,
            cookie_when_rate_limited: false,
            max_client_subscriptions: 16 * 1024,
            max_subscriptions_per_client: 64,
            auth_report_interval: Duration::from_secs(10),
            max_registers: 1024,
            max_observers: 4096,
            max_observers_per_client: 32,
            index_prefix: None,
        }
        .with_down_timeout(Duration::from_secs(75))
    }

    /// Sets how long a client may stay silent before it is reported down. The default (75 s)
    /// leaves room for a lost keepalive at the clients' 30 s interval.
    pub fn with_down_timeout(mut self, timeout: Duration) -> Self {
        self.limits.down_timeout = timeout;
        self
    }

    /// Adds a suite 1 client.
    pub fn with_psk_client(mut self, id: ClientId, psk: Psk) -> Self {
        self.psk_clients.insert(id, psk);
        self
    }

    /// Sets our suite 2 key pair.
    pub fn with_keys(mut self, keys: KeyPair) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Adds a suite 2 client.
    pub fn with_ecc_client(mut self, id: ClientId, public: PublicKey) -> Self {
        self.ecc_clients.insert(id, public);
        self
    }

    /// How many handshakes the server holds in progress: `max_half_open`, or the number of
    /// configured clients if that is larger.
    ///
    /// Why: every configured client may handshake at the same moment (power returns to a
    /// building, a switch reboots), and a table smaller than the crowd evicts the oldest
    /// exchanges before their client-info or first data packet arrives; those clients retry
    /// a second later and evict others in turn (`clients-1000` took 2.8 s at p99 and
    /// retransmitted thousands of times on a clean link). What a flood can make us store is
    /// still bounded by the configuration, not by the attacker.
    pub fn half_open_capacity(&self) -> usize {
        let configured = self
            .psk_clients
            .len()
            .saturating_add(self.ecc_clients.len());
        self.max_half_open.max(configured)
    }

    /// Admits suite 2 guests.
    pub fn allow_guests(mut self, allow: bool) -> Self {
        self.allow_guest = allow;
        self
    }
}
