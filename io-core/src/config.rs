//! Configuration builders of clients and servers, shared by the blocking adapter here and the
//! async one in `pavillion-smol` (which re-exports them).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pavillion_proto::crypto::ecc::{self, KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{self as proto, ClientCredentials, Limits};
use pavillion_proto::features::status::Status;
use pavillion_proto::ClientId;

/// How many messages a message stream of the async adapter holds unread by default.
pub const DEFAULT_MESSAGE_BUFFER: usize = 64;

/// How many pipelined messages a client may have awaiting their outcomes by default.
pub const DEFAULT_SEND_WINDOW: usize = 1024;

/// The largest send window honoured: the memory a window holds is bounded by it.
pub const MAX_SEND_WINDOW: usize = 1 << 16;

/// Entries of the endpoint's queue kept beside a full send window, for what is not pipelined
/// (keepalives, blocking sends, calls): the endpoint's `max_queued` is at least the window
/// plus this.
pub const SEND_WINDOW_RESERVE: usize = 64;

/// The receive buffer the adapters ask the kernel for on each socket by default (4 MiB; the
/// kernel grants at most its `net.core.rmem_max`). A large message arrives as a window of
/// segments at once; the system default (about 200 KB on Linux) overflows before the driver
/// has opened them, and every datagram dropped there is a retransmission.
pub const DEFAULT_RECV_BUFFER: usize = 4 << 20;

/// Configuration of a client, with the reference client's defaults.
///
/// | setting | default |
/// |---|---|
/// | local address | `0.0.0.0:0` (or `[::]:0` for an IPv6 server) |
/// | call timeout | 2 s |
/// | reliable message timeout | 5 s |
/// | keepalive | 30 s |
/// | time sync | off (ask with the server handle's `sync_time`) |
/// | multicast TTL | 1 (the local link) |
/// | message stream buffer (async adapter) | [`DEFAULT_MESSAGE_BUFFER`] |
/// | largest reliable message ([`ClientConfig::max_message`]) | 1 MiB, sent in segments |
/// | socket receive buffer ([`ClientConfig::recv_buffer`]) | [`DEFAULT_RECV_BUFFER`] |
/// | send window of pipelined messages ([`ClientConfig::send_window`]) | [`DEFAULT_SEND_WINDOW`] |
///
/// A client given a multicast group as its server address also joins that group on a second
/// socket bound to the group's port, so that it hears servers announce themselves (setup
/// opcode 5) and sets up sessions with servers that start after it.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use pavillion_io::keys::parse_psk;
/// use pavillion_io::ClientConfig;
/// use pavillion_proto::ClientId;
///
/// let psk = parse_psk(&"07".repeat(32)).unwrap();
/// let config = ClientConfig::psk(ClientId(*b"cid2cid2cid2cid2"), psk)
///     .call_timeout(Duration::from_secs(1));
/// assert_eq!(config.client_id().0, *b"cid2cid2cid2cid2");
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) client_id: ClientId,
    pub(crate) credentials: ClientCredentials,
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) call_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) time_sync: Option<Duration>,
    pub(crate) limits: Limits,
    pub(crate) multicast_ttl: u32,
    pub(crate) message_buffer: usize,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) reconnect_retry_max: Option<Duration>,
    pub(crate) durable: Option<PathBuf>,
    pub(crate) send_window: usize,
}

impl ClientConfig {
    /// A suite 1 (PSK) client with id `client_id`.
    pub fn psk(client_id: ClientId, psk: Psk) -> Self {
        Self::with_credentials(client_id, ClientCredentials::Psk(psk))
    }

    /// A suite 2 (ECC) client with id `client_id`, our key pair and the server's public key.
    pub fn ecc(client_id: ClientId, keys: KeyPair, server: PublicKey) -> Self {
        Self::with_credentials(client_id, ClientCredentials::Ecc { keys, server })
    }

    /// A suite 2 client whose id derives from its public key, as the reference's keypair
    /// clients (and guests) do.
    pub fn guest(keys: KeyPair, server: PublicKey) -> Self {
        let id = ecc::default_client_id(keys.public());
        Self::ecc(id, keys, server)
    }

    /// A suite 3 (Noise `IK`) client with id `client_id`, our static key pair and the
    /// server's public key.
    pub fn noise_ik(client_id: ClientId, keys: KeyPair, server: PublicKey) -> Self {
        let credentials = ClientCredentials::Noise {
            keys: Some(keys),
            server: Some(server),
            psk: None,
        };
        Self::with_credentials(client_id, credentials)
    }

    /// A client with any credentials the endpoint supports (suite 3 `IKpsk2` and `NNpsk0`
    /// too); the other constructors are shorthands for this.
    pub fn with_credentials(client_id: ClientId, credentials: ClientCredentials) -> Self {
        ClientConfig {
            client_id,
            credentials,
            bind: None,
            call_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(30)),
            time_sync: None,
            limits: Limits::default(),
            multicast_ttl: 1,
            message_buffer: DEFAULT_MESSAGE_BUFFER,
            recv_buffer: Some(DEFAULT_RECV_BUFFER),
            reconnect_retry_max: None,
            durable: None,
            send_window: DEFAULT_SEND_WINDOW,
        }
    }

    /// Sets how many pipelined messages (the adapters' `send_pipelined`) may await their
    /// outcomes at once ([`DEFAULT_SEND_WINDOW`]); a send beyond it waits for room, or fails
    /// with `WouldBlock` (`try_send_pipelined`). At least 1, at most [`MAX_SEND_WINDOW`]: see
    /// [`ClientConfig::send_window_size`]. The endpoint's queue (`Limits::max_queued`) grows
    /// if needed to hold a full window beside [`SEND_WINDOW_RESERVE`] other entries
    /// (keepalives, blocking sends, calls), so that a full window never meets a refusal.
    pub fn send_window(mut self, messages: usize) -> Self {
        self.send_window = messages;
        self
    }

    /// The send window in effect: [`ClientConfig::send_window`] within 1 and
    /// [`MAX_SEND_WINDOW`].
    ///
    /// # Examples
    /// ```
    /// use pavillion_io::keys::parse_psk;
    /// use pavillion_io::ClientConfig;
    /// use pavillion_proto::ClientId;
    ///
    /// let config = ClientConfig::psk(ClientId([1; 16]), parse_psk(&"07".repeat(32)).unwrap());
    /// assert_eq!(config.send_window_size(), 1024);
    /// assert_eq!(config.clone().send_window(16).send_window_size(), 16);
    /// assert_eq!(config.clone().send_window(0).send_window_size(), 1);
    /// assert_eq!(config.send_window(1 << 20).send_window_size(), 1 << 16);
    /// ```
    pub fn send_window_size(&self) -> usize {
        self.send_window.clamp(1, MAX_SEND_WINDOW)
    }

    /// Keeps durable messages (`docs/PROTOCOL.md` §16) in the store at `path` (one `redb`
    /// file, created if missing): connecting opens it and restores the messages queued and
    /// received but not consumed, and `send_durable`/`recv_durable` work. A store that
    /// cannot be opened (corrupt, truncated, held by another process, of another identity)
    /// makes the connect fail.
    pub fn durable(mut self, path: impl Into<PathBuf>) -> Self {
        self.durable = Some(path.into());
        self
    }

    /// The durable store's path, if any.
    pub fn durable_path(&self) -> Option<&Path> {
        self.durable.as_deref()
    }

    /// Binds the client socket to `addr` instead of an ephemeral port on every interface.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Sets the default deadline of a call.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the default deadline of a reliable message.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets the keepalive interval, or turns keepalives off with `None`.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.keepalive = interval;
        self
    }

    /// Asks every server for its clock this often (opcode 20), or only on demand with `None`.
    pub fn time_sync(mut self, interval: Option<Duration>) -> Self {
        self.time_sync = interval;
        self
    }

    /// Sets the ceiling of the retry interval while the client looks for a server it lost
    /// (900 ms by default: back within 1 s of the server on a LAN; `docs/PROTOCOL.md` §6.7).
    pub fn reconnect_retry_max(mut self, ceiling: Duration) -> Self {
        self.reconnect_retry_max = Some(ceiling);
        self
    }

    /// Replaces the endpoint's capacities and timers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the largest reliable message, call argument or answer the client sends or accepts
    /// (`Limits::max_message`, 1 MiB by default, at most [`Limits::MAX_MESSAGE_CEILING`]); one
    /// larger than a datagram is sent in segments. The reassembly budgets grow to hold at
    /// least one such message, so that raising the limit alone is enough to receive it. Call
    /// it after [`ClientConfig::limits`], which replaces every limit.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.limits.set_max_message(bytes);
        self
    }

    /// Sets the reassembly budgets (`Limits::reassembly_per_peer` and
    /// `Limits::reassembly_total`): how many bytes of partly received messages one server,
    /// and all of them together, may make us hold. A message that does not fit is refused and
    /// its sender sees why.
    pub fn reassembly_budget(mut self, per_peer: usize, total: usize) -> Self {
        self.limits.reassembly_per_peer = per_peer;
        self.limits.reassembly_total = total;
        self
    }

    /// The largest reliable message the client sends or accepts, as configured.
    pub fn max_message_size(&self) -> usize {
        self.limits.max_message()
    }

    /// Sets the receive buffer asked of the kernel for the client's sockets
    /// ([`DEFAULT_RECV_BUFFER`]), or leaves the system's default with `None`.
    pub fn recv_buffer(mut self, bytes: Option<usize>) -> Self {
        self.recv_buffer = bytes;
        self
    }

    /// Sets the TTL of datagrams to a multicast group.
    pub fn multicast_ttl(mut self, ttl: u32) -> Self {
        self.multicast_ttl = ttl;
        self
    }

    /// Sets how many unread messages each message stream of the async adapter holds before it
    /// drops new ones (at least 1). The blocking adapter's callbacks hold nothing.
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = messages.max(1);
        self
    }

    /// The client id the server will see.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// The endpoint's configuration for a client of `server`, seeded with `seed`.
    pub(crate) fn endpoint_config(
        &self,
        server: SocketAddr,
        seed: [u8; 32],
    ) -> proto::ClientConfig {
        let mut c = proto::ClientConfig::with_credentials(
            self.client_id,
            self.credentials.clone(),
            server,
            seed,
        );
        c.limits = self.limits.clone();
        c.limits.max_queued = c
            .limits
            .max_queued
            .max(self.send_window_size() + SEND_WINDOW_RESERVE);
        c.limits.default_timeout = self.send_timeout;
        c.call_timeout = self.call_timeout;
        c.keepalive = self.keepalive;
        c.time_sync = self.time_sync;
        if let Some(ceiling) = self.reconnect_retry_max {
            c.reconnect_retry_max = ceiling;
        }
        c
    }
}

/// Where a server sends from (see [`ServerConfig::reply_socket`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplySocket {
    /// A second socket only when the server binds a multicast group address, which can
    /// receive but cannot sensibly be sent from.
    #[default]
    Auto,
    /// Always a second socket, bound to this address (port 0 for an ephemeral one).
    Bind(SocketAddr),
    /// Always a second socket on an ephemeral port, bound to the listening IP (the
    /// unspecified address if that is a group or unspecified), as the reference server does.
    Ephemeral,
}

/// Configuration of a server: its clients, keys, multicast group and reply socket.
///
/// Defaults: no clients (add them with the builders), reliable messages time out after 10 s (the
/// reference server's default), no status bytes in ACKs, no multicast group, answers sent from
/// the listening socket, the standard calls 0 (echo) and 1 (function name) answered by the
/// endpoint itself, and [`DEFAULT_MESSAGE_BUFFER`] messages per stream (async adapter).
///
/// A server with a key pair and known client keys serves suite 2 (ECC) and suite 3 (Noise
/// `IK`) clients alike.
///
/// **Multicast.** With [`ServerConfig::multicast`], or when bound to a group address, the
/// server joins the group, shares its port with other group members on the host
/// (`SO_REUSEADDR`), and announces itself to the group (setup opcode 5, three times) so that
/// multicast clients that are already running set up a session with it.
///
/// **Reply socket.** A server bound to a group address (say `239.255.28.12:1783`) receives only
/// what is sent to the group, and cannot answer from a group address. It then sends
/// everything (answers, ACKs, its own messages, quit, announcements) from a second, unicast
/// socket, as the reference server always does, and receives on it too: clients send their
/// handshake replies and ACKs to the address the server's packets came from. Both sockets feed
/// the one endpoint. [`ServerConfig::reply_socket`] asks for such a socket on any server.
///
/// # Examples
/// ```
/// use pavillion_io::keys::{generate_keypair, parse_psk};
/// use pavillion_io::{ReplySocket, ServerConfig};
/// use pavillion_proto::ClientId;
///
/// let config = ServerConfig::new()
///     .psk_client(ClientId(*b"cid2cid2cid2cid2"), parse_psk(&"07".repeat(32)).unwrap())
///     .keys(generate_keypair())
///     .allow_guests(true)
///     .multicast("239.255.28.12".parse().unwrap())
///     .reply_socket(ReplySocket::Ephemeral);
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) inner: proto::ServerConfig,
    pub(crate) multicast: Option<IpAddr>,
    pub(crate) reply_socket: ReplySocket,
    /// `None`: announce to the group in multicast mode; `Some(x)`: announce to `x` only.
    pub(crate) announce: Option<Option<SocketAddr>>,
    pub(crate) send_timeout: Duration,
    pub(crate) message_buffer: usize,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) durable: Option<PathBuf>,
    pub(crate) send_window: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerConfig {
    /// A server that knows no clients yet.
    pub fn new() -> Self {
        ServerConfig {
            // The seed is drawn from OS randomness when the server binds.
            inner: proto::ServerConfig::new([0; 32]),
            multicast: None,
            reply_socket: ReplySocket::Auto,
            announce: None,
            send_timeout: Duration::from_secs(10),
            message_buffer: DEFAULT_MESSAGE_BUFFER,
            recv_buffer: Some(DEFAULT_RECV_BUFFER),
            durable: None,
            send_window: DEFAULT_SEND_WINDOW,
        }
    }

    /// Sets how many pipelined messages (the adapters' `send_pipelined_to`) may await their
    /// outcomes at once, over all clients together ([`DEFAULT_SEND_WINDOW`]); a send beyond
    /// it waits for room, or fails with `WouldBlock` (`try_send_pipelined_to`). At least 1,
    /// at most [`MAX_SEND_WINDOW`], as [`ClientConfig::send_window`]. One window for the whole
    /// server, not one per client, so that the memory pipelined sends hold is bounded however
    /// many clients come and go. Each client's queue (`Limits::max_queued`) grows if needed
    /// to hold a full window beside [`SEND_WINDOW_RESERVE`] other entries.
    pub fn send_window(mut self, messages: usize) -> Self {
        self.send_window = messages;
        self
    }

    /// The send window in effect: [`ServerConfig::send_window`] within 1 and
    /// [`MAX_SEND_WINDOW`].
    ///
    /// # Examples
    /// ```
    /// use pavillion_io::ServerConfig;
    ///
    /// assert_eq!(ServerConfig::new().send_window_size(), 1024);
    /// assert_eq!(ServerConfig::new().send_window(16).send_window_size(), 16);
    /// assert_eq!(ServerConfig::new().send_window(0).send_window_size(), 1);
    /// assert_eq!(ServerConfig::new().send_window(1 << 20).send_window_size(), 1 << 16);
    /// ```
    pub fn send_window_size(&self) -> usize {
        self.send_window.clamp(1, MAX_SEND_WINDOW)
    }

    /// Keeps durable messages (`docs/PROTOCOL.md` §16) in the store at `path` (one `redb`
    /// file, created if missing): binding opens it and restores the messages queued and
    /// received but not consumed, and `send_durable`/`recv_durable` work. A store that
    /// cannot be opened (corrupt, truncated, held by another process, of another identity)
    /// makes the bind fail.
    pub fn durable(mut self, path: impl Into<PathBuf>) -> Self {
        self.durable = Some(path.into());
        self
    }

    /// The durable store's path, if any.
    pub fn durable_path(&self) -> Option<&Path> {
        self.durable.as_deref()
    }

    /// Admits the suite 1 client `id` with pre-shared key `psk`.
    pub fn psk_client(mut self, id: ClientId, psk: Psk) -> Self {
        self.inner.psk_clients.insert(id, psk);
        self
    }

    /// Sets the server's X25519 key pair, needed for suites 2 and 3.
    pub fn keys(mut self, keys: KeyPair) -> Self {
        self.inner.keys = Some(keys);
        self
    }

    /// Admits the suite 2 or 3 client `id` with public key `public`.
    pub fn ecc_client(mut self, id: ClientId, public: PublicKey) -> Self {
        self.inner.ecc_clients.insert(id, public);
        self
    }

    /// Admits clients whose key is not configured, known by the hash of their key.
    pub fn allow_guests(mut self, allow: bool) -> Self {
        self.inner.allow_guest = allow;
        self
    }

    /// Joins multicast group `group` on the listening socket (see the type's docs).
    pub fn multicast(mut self, group: IpAddr) -> Self {
        self.multicast = Some(group);
        self
    }

    /// Chooses where the server sends from (see the type's docs); the default,
    /// [`ReplySocket::Auto`], adds a reply socket only for a server bound to a group address.
    pub fn reply_socket(mut self, reply: ReplySocket) -> Self {
        self.reply_socket = reply;
        self
    }

    /// Announces the server (setup opcode 5, three times) to `to` when it starts, or nowhere
    /// with `None`. The default announces to the multicast group, if any.
    pub fn announce(mut self, to: Option<SocketAddr>) -> Self {
        self.announce = Some(to);
        self
    }

    /// Appends this status to every ACK (11-byte ACKs, which a Python peer does not expect).
    pub fn status(mut self, status: Status) -> Self {
        self.inner.status = Some(status.to_bytes());
        self
    }

    /// Sets the default deadline of a reliable send.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Replaces the endpoint's capacities and timers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.inner.limits = limits;
        self
    }

    /// Sets the largest reliable message, call argument or answer the server sends or accepts
    /// (`Limits::max_message`, 1 MiB by default, at most [`Limits::MAX_MESSAGE_CEILING`]); as
    /// [`ClientConfig::max_message`], the reassembly budgets grow to hold one such message.
    /// Call it after [`ServerConfig::limits`].
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.inner.limits.set_max_message(bytes);
        self
    }

    /// Sets the reassembly budgets: bytes of partly received messages one client, and all
    /// clients together, may make the server hold (`Limits::reassembly_per_peer`,
    /// `Limits::reassembly_total`). What does not fit is refused, and the sender sees why.
    pub fn reassembly_budget(mut self, per_peer: usize, total: usize) -> Self {
        self.inner.limits.reassembly_per_peer = per_peer;
        self.inner.limits.reassembly_total = total;
        self
    }

    /// The largest reliable message the server sends or accepts, as configured.
    pub fn max_message_size(&self) -> usize {
        self.inner.limits.max_message()
    }

    /// Sets how many unread messages each message stream of the async adapter holds before it
    /// drops new ones (at least 1).
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = messages.max(1);
        self
    }

    /// Sets the receive buffer asked of the kernel for the server's sockets
    /// ([`DEFAULT_RECV_BUFFER`]), or leaves the system's default with `None`.
    pub fn recv_buffer(mut self, bytes: Option<usize>) -> Self {
        self.recv_buffer = bytes;
        self
    }

    /// The endpoint configuration, for settings without a builder here. Its seed is replaced
    /// by OS randomness, and its announcement address by [`ServerConfig::announce`]'s rule,
    /// when the server binds.
    pub fn endpoint_mut(&mut self) -> &mut proto::ServerConfig {
        &mut self.inner
    }
}
