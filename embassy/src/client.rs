//! The client role: [`client`] makes the handle and the runner over one [`Resources`].

use core::net::SocketAddr;

use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{self as proto, ClientEvent, SendOptions};
use pavillion_proto::{ClientId, FunctionId, Instant};
use rand_core::{CryptoRng, RngCore};

use crate::inbox::{self, Inbox};
use crate::pending::{self, Op, Outcome, Pending};
use crate::runner::{self, DriverStats, Role};
use crate::{time, Core, Error, Message, Reliability, Resources, Shared};

/// How a client reaches its server: proto's configuration (credentials, server address,
/// limits, timeouts) and the local UDP port.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The protocol's configuration. Its `seed` is replaced by one drawn from the RNG given
    /// to [`client`].
    pub proto: proto::ClientConfig,
    /// The local port; 0 (the default) lets the stack pick an ephemeral one.
    pub local_port: u16,
}

impl ClientConfig {
    /// A client with proto's configuration `proto`, on an ephemeral port.
    pub fn new(proto: proto::ClientConfig) -> Self {
        ClientConfig {
            proto,
            local_port: 0,
        }
    }

    /// A suite 1 (PSK) client of the server at `server`.
    ///
    /// # Examples
    /// ```
    /// use pavillion_embassy::ClientConfig;
    /// use pavillion_proto::{crypto::Psk, ClientId};
    /// let config = ClientConfig::psk(
    ///     ClientId(*b"sensor-000000001"),
    ///     Psk::from_bytes([7; 32]),
    ///     "192.168.1.10:1783".parse().unwrap(),
    /// )
    /// .with_local_port(40000);
    /// assert_eq!(config.proto.server.port(), 1783);
    /// ```
    pub fn psk(client_id: ClientId, psk: Psk, server: SocketAddr) -> Self {
        Self::new(proto::ClientConfig::psk(client_id, psk, server, [0; 32]))
    }

    /// Binds the socket to `port` instead of an ephemeral one.
    pub fn with_local_port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }
}

/// What the client's handle and runner share.
pub(crate) struct ClientCore {
    endpoint: proto::Client,
    pending: Pending,
    inbox: Inbox,
    stats: DriverStats,
}

impl ClientCore {
    fn pick(core: &mut Core) -> Option<&mut ClientCore> {
        match core {
            Core::Client(c) => Some(c),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn pending(core: &mut Core) -> Option<&mut Pending> {
        Self::pick(core).map(|c| &mut c.pending)
    }

    fn inbox(core: &mut Core) -> Option<&mut Inbox> {
        Self::pick(core).map(|c| &mut c.inbox)
    }
}

impl Role for ClientCore {
    type Endpoint = proto::Client;

    fn pick(core: &mut Core) -> Option<&mut Self> {
        ClientCore::pick(core)
    }

    fn endpoint(&mut self) -> &mut proto::Client {
        &mut self.endpoint
    }

    fn on_event(&mut self, _now: Instant, event: ClientEvent, _scratch: &mut [u8]) {
        let (op, outcome) = match event {
            ClientEvent::Answered { call, data, .. } => (Op::Call(call), Outcome::Answered(data)),
            ClientEvent::RemoteError { call, status, .. } => {
                (Op::Call(call), Outcome::Error(Error::Remote(status)))
            }
            ClientEvent::CallFailed { call, reason } => {
                (Op::Call(call), Outcome::Error(Error::Failed(reason)))
            }
            ClientEvent::CallTimedOut { call } => (Op::Call(call), Outcome::Error(Error::TimedOut)),
            ClientEvent::Delivered { id, missing, .. } => {
                // Unicast: `missing` is non-empty only when the deadline passed first.
                let outcome = if missing.is_empty() {
                    Outcome::Delivered
                } else {
                    Outcome::Error(Error::TimedOut)
                };
                (Op::Message(id), outcome)
            }
            ClientEvent::Failed { id, reason } => {
                (Op::Message(id), Outcome::Error(Error::Failed(reason)))
            }
            ClientEvent::TimedOut { id } => (Op::Message(id), Outcome::Error(Error::TimedOut)),
            ClientEvent::Message(m) => {
                self.inbox.push(m);
                return;
            }
            _ => return,
        };
        self.pending.complete(op, outcome);
    }

    fn stats(&mut self) -> &mut DriverStats {
        &mut self.stats
    }
}

/// Makes a client on `stack` over `resources`: the handle for the application, and the
/// runner to spawn as a task of its own (nothing is sent until it runs). `rng` seeds the
/// protocol's generator once; pass the device's hardware RNG (or a CSPRNG seeded from it).
///
/// # Errors
/// [`Error::SuiteNotCompiled`] if `config`'s credentials are of a suite this build leaves
/// out; [`Error::Bind`] if the socket cannot be bound to the configured local port (the stack
/// has no address yet for an ephemeral port: wait for `stack.wait_config_up()` first).
pub fn client<'d, const RX: usize, const TX: usize, R: RngCore + CryptoRng>(
    stack: embassy_net::Stack<'d>,
    resources: &'d mut Resources<RX, TX>,
    config: ClientConfig,
    mut rng: R,
) -> Result<(Client<'d>, ClientRunner<'d>), Error> {
    let mut proto_config = config.proto;
    proto_config.seed = crate::seed(&mut rng);
    // Checked first, so that a configuration this build cannot run takes no resources.
    let endpoint = proto::Client::try_new(proto_config).map_err(Error::SuiteNotCompiled)?;
    let (mut socket, datagram, shared) = crate::split(stack, resources);
    socket.bind(config.local_port).map_err(|_| Error::Bind)?;
    shared.with(|core| {
        *core = Core::Client(ClientCore {
            endpoint,
            pending: Pending::new(),
            inbox: Inbox::new(),
            stats: DriverStats::default(),
        })
    });
    let shared: &'d Shared = shared;
    Ok((
        Client { shared },
        ClientRunner {
            shared,
            socket,
            datagram,
        },
    ))
}

/// Drives the client: spawn [`ClientRunner::run`] as a task.
pub struct ClientRunner<'d> {
    shared: &'d Shared,
    socket: embassy_net::udp::UdpSocket<'d>,
    datagram: &'d mut [u8; pavillion_proto::wire::MAX_DATAGRAM],
}

impl ClientRunner<'_> {
    /// Runs the protocol for ever: handshakes, retransmissions, keepalives, reconnection
    /// after the server restarts, and the handle's commands.
    pub async fn run(self) -> ! {
        runner::run::<ClientCore>(self.shared, self.socket, self.datagram).await
    }
}

/// The application's handle on a client; `Copy`, so every task of the executor may hold one.
///
/// Calls and messages made before the session is up wait for it (the protocol queues them).
/// Dropping a `call` or `send` future stops waiting for it but does not cancel it: the
/// endpoint still retries it until its deadline.
#[derive(Clone, Copy)]
pub struct Client<'d> {
    shared: &'d Shared,
}

impl Client<'_> {
    /// Runs `f` on the client's state; `Err(Busy)` in the impossible case of another role.
    fn with<T>(&self, f: impl FnOnce(&mut ClientCore) -> Result<T, Error>) -> Result<T, Error> {
        self.shared
            .with(|core| ClientCore::pick(core).map_or(Err(Error::Busy), f))
    }

    /// Calls `function` with `args` and copies the answer into `answer`, returning its length;
    /// waits up to the configured call timeout (proto's `ClientConfig::call_timeout`).
    ///
    /// # Errors
    /// [`Error::Remote`] for a non-zero status, [`Error::TimedOut`] without an answer in time,
    /// [`Error::BufferTooSmall`] for an answer larger than `answer` (it is lost),
    /// [`Error::Busy`] with [`crate::MAX_PENDING`] operations already waiting,
    /// [`Error::Refused`] for arguments the endpoint will not send.
    pub async fn call(
        &self,
        function: u16,
        args: &[u8],
        answer: &mut [u8],
    ) -> Result<usize, Error> {
        let now = time::now();
        let slot = self.with(|c| {
            let slot = c.pending.free_slot()?;
            let call = c.endpoint.call(now, FunctionId(function), args, None)?;
            c.pending.insert(slot, Op::Call(call));
            Ok(slot)
        })?;
        self.shared.kick();
        match pending::wait(self.shared, slot, ClientCore::pending).await {
            Outcome::Answered(data) => {
                let out = answer
                    .get_mut(..data.len())
                    .ok_or(Error::BufferTooSmall { needed: data.len() })?;
                out.copy_from_slice(&data);
                Ok(data.len())
            }
            Outcome::Delivered => Ok(0),
            Outcome::Error(e) => Err(e),
        }
    }

    /// Sends a message to `target`/`name`. A reliable (or ordered) one resolves once the
    /// server acknowledged it, or with an error at the send timeout (5 s by default); an
    /// unreliable one as soon as it is queued.
    ///
    /// # Errors
    /// [`Error::TimedOut`] when nobody acknowledged it, [`Error::Refused`] for a message the
    /// endpoint cannot send, [`Error::Busy`] with [`crate::MAX_PENDING`] operations already
    /// waiting, [`Error::Failed`] when the session ended first.
    pub async fn send(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<(), Error> {
        let now = time::now();
        let options = match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            Reliability::Ordered => SendOptions::ordered(),
            _ => SendOptions::reliable(),
        };
        let slot = self.with(|c| {
            let slot = match reliability {
                Reliability::Unreliable => None,
                _ => Some(c.pending.free_slot()?),
            };
            let id = c.endpoint.send_message(now, target, name, data, options)?;
            if let Some(slot) = slot {
                c.pending.insert(slot, Op::Message(id));
            }
            Ok(slot)
        })?;
        self.shared.kick();
        let Some(slot) = slot else { return Ok(()) };
        match pending::wait(self.shared, slot, ClientCore::pending).await {
            Outcome::Error(e) => Err(e),
            Outcome::Answered(_) | Outcome::Delivered => Ok(()),
        }
    }

    /// Asks the server to forward the messages sent to `target` to this client (a broker
    /// such as `pav serve` does); they arrive through [`Client::recv_message`]. Kept across
    /// reconnections.
    ///
    /// # Errors
    /// [`Error::Refused`] for a bad target or a full queue.
    pub fn subscribe(&self, target: &str) -> Result<(), Error> {
        let now = time::now();
        self.with(|c| Ok(c.endpoint.subscribe(now, target)?))?;
        self.shared.kick();
        Ok(())
    }

    /// Waits for the next message from the server and copies it into `buf` (payload, then
    /// target and name); the returned [`Message`] borrows them from `buf`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold the message; it stays first in the
    /// queue for a call with a larger buffer.
    pub async fn recv_message<'b>(&self, buf: &'b mut [u8]) -> Result<Message<'b>, Error> {
        inbox::recv(self.shared, buf, ClientCore::inbox).await
    }

    /// Whether a session with the server is up.
    pub fn is_connected(&self) -> bool {
        self.with(|c| Ok(c.endpoint.is_connected()))
            .unwrap_or(false)
    }

    /// The driver's counters.
    pub fn driver_stats(&self) -> DriverStats {
        self.with(|c| {
            Ok(DriverStats {
                inbox_dropped: c.inbox.dropped(),
                ..c.stats
            })
        })
        .unwrap_or_default()
    }

    /// Runs `f` on the protocol's client (its `Stats`, RTT, servers, or a command this
    /// handle does not wrap). Do not block in `f`: the runner waits for it.
    pub fn with_endpoint<T>(&self, f: impl FnOnce(&mut proto::Client) -> T) -> Option<T> {
        let r = self.with(|c| Ok(f(&mut c.endpoint))).ok();
        self.shared.kick();
        r
    }
}
