//! The server role (feature `server`): [`server`] makes the handle and the runner; calls go
//! to handlers registered in a fixed table.

use core::net::SocketAddr;

use heapless::Vec;
use pavillion_proto::endpoint::{self as proto, SendOptions, ServerEvent};
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{FunctionId, Instant};
use rand_core::{CryptoRng, RngCore};

use crate::inbox::{self, Inbox};
use crate::pending::{self, Op, Outcome, Pending};
use crate::runner::{self, DriverStats, Role};
use crate::{time, Core, Error, Message, Reliability, Resources, Shared};

/// Functions a server may have handlers for at once; one more is refused with
/// [`Error::TableFull`].
pub const MAX_HANDLERS: usize = 16;

/// A function's handler: gets the call's arguments and a buffer for the answer, returns the
/// answer's length, or the status of a failure (docs/PROTOCOL.md §9.1). It runs in the
/// runner's task, so it must not block for long; the buffer is the datagram buffer
/// ([`pavillion_proto::wire::MAX_DATAGRAM`] bytes).
///
/// # Examples
/// ```
/// use pavillion_proto::wire::RpcStatus;
/// fn reverse(args: &[u8], answer: &mut [u8]) -> Result<usize, RpcStatus> {
///     let out = answer.get_mut(..args.len()).ok_or(RpcStatus::BAD_INPUT)?;
///     out.copy_from_slice(args);
///     out.reverse();
///     Ok(args.len())
/// }
/// let handler: pavillion_embassy::Handler = reverse;
/// let mut answer = [0u8; 8];
/// assert_eq!(handler(b"abc", &mut answer), Ok(3));
/// assert_eq!(&answer[..3], b"cba");
/// ```
pub type Handler = fn(&[u8], &mut [u8]) -> Result<usize, RpcStatus>;

/// How a server listens: proto's configuration (keys, clients, limits) and the UDP port.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The protocol's configuration. Its `seed` is replaced by one drawn from the RNG given
    /// to [`server`].
    pub proto: proto::ServerConfig,
    /// The port to listen on (1783 by default, the protocol's).
    pub port: u16,
}

impl ServerConfig {
    /// A server with proto's configuration `proto` on port 1783.
    ///
    /// # Examples
    /// ```
    /// use pavillion_embassy::ServerConfig;
    /// use pavillion_proto::{crypto::Psk, endpoint, ClientId};
    /// let proto = endpoint::ServerConfig::new([0; 32])
    ///     .with_psk_client(ClientId(*b"sensor-000000001"), Psk::from_bytes([7; 32]));
    /// let config = ServerConfig::new(proto).with_port(1784);
    /// assert_eq!(config.port, 1784);
    /// ```
    pub fn new(proto: proto::ServerConfig) -> Self {
        ServerConfig { proto, port: 1783 }
    }

    /// Listens on `port` instead.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// The fixed table of handlers.
pub(crate) struct Handlers {
    table: Vec<(FunctionId, Handler), MAX_HANDLERS>,
}

impl Handlers {
    const fn new() -> Self {
        Handlers { table: Vec::new() }
    }

    /// Adds or replaces the handler of `function`.
    fn insert(&mut self, function: FunctionId, handler: Handler) -> Result<(), Error> {
        if let Some(entry) = self.table.iter_mut().find(|(f, _)| *f == function) {
            entry.1 = handler;
            return Ok(());
        }
        self.table
            .push((function, handler))
            .map_err(|_| Error::TableFull)
    }

    fn remove(&mut self, function: FunctionId) {
        self.table.retain(|(f, _)| *f != function);
    }

    fn get(&self, function: FunctionId) -> Option<Handler> {
        self.table
            .iter()
            .find(|(f, _)| *f == function)
            .map(|(_, h)| *h)
    }
}

/// What the server's handle and runner share.
pub(crate) struct ServerCore {
    endpoint: proto::Server,
    pending: Pending,
    inbox: Inbox,
    handlers: Handlers,
    stats: DriverStats,
}

impl ServerCore {
    fn pick(core: &mut Core) -> Option<&mut ServerCore> {
        match core {
            Core::Server(s) => Some(s),
            _ => None,
        }
    }

    fn pending(core: &mut Core) -> Option<&mut Pending> {
        Self::pick(core).map(|s| &mut s.pending)
    }

    fn inbox(core: &mut Core) -> Option<&mut Inbox> {
        Self::pick(core).map(|s| &mut s.inbox)
    }
}

impl Role for ServerCore {
    type Endpoint = proto::Server;

    fn pick(core: &mut Core) -> Option<&mut Self> {
        ServerCore::pick(core)
    }

    fn endpoint(&mut self) -> &mut proto::Server {
        &mut self.endpoint
    }

    fn on_event(&mut self, now: Instant, event: ServerEvent, scratch: &mut [u8]) {
        let (op, outcome) = match event {
            ServerEvent::RpcRequest(request) => {
                // proto delivers only registered functions; a handler unregistered since
                // answers as proto would have.
                let result = match self.handlers.get(request.function) {
                    Some(handler) => handler(&request.args, scratch),
                    None => Err(RpcStatus::NONEXISTENT_FUNCTION),
                };
                let (status, answer) = match result {
                    Ok(n) => match scratch.get(..n) {
                        Some(answer) => (RpcStatus::OK, answer),
                        None => (RpcStatus::ERROR, &[][..]),
                    },
                    Err(status) => (status, &[][..]),
                };
                // The call's session may have ended meanwhile; nothing to answer then.
                let _ = self.endpoint.respond(now, request.call, status, answer);
                return;
            }
            ServerEvent::Message { message, .. } => {
                self.inbox.push(message);
                return;
            }
            ServerEvent::Delivered { id, missing, .. } => {
                let outcome = if missing.is_empty() {
                    Outcome::Delivered
                } else {
                    Outcome::Error(Error::TimedOut)
                };
                (Op::Message(id), outcome)
            }
            ServerEvent::Failed { id, reason } => {
                (Op::Message(id), Outcome::Error(Error::Failed(reason)))
            }
            ServerEvent::TimedOut { id } => (Op::Message(id), Outcome::Error(Error::TimedOut)),
            _ => return,
        };
        self.pending.complete(op, outcome);
    }

    fn stats(&mut self) -> &mut DriverStats {
        &mut self.stats
    }
}

/// Makes a server on `stack` over `resources`: the handle for the application, and the
/// runner to spawn as a task of its own. `rng` seeds the protocol's generator once.
///
/// # Errors
/// [`Error::Bind`] if the socket cannot be bound to the configured port.
pub fn server<'d, const RX: usize, const TX: usize, R: RngCore + CryptoRng>(
    stack: embassy_net::Stack<'d>,
    resources: &'d mut Resources<RX, TX>,
    config: ServerConfig,
    mut rng: R,
) -> Result<(Server<'d>, ServerRunner<'d>), Error> {
    let (mut socket, datagram, shared) = crate::split(stack, resources);
    socket.bind(config.port).map_err(|_| Error::Bind)?;
    let mut proto_config = config.proto;
    proto_config.seed = crate::seed(&mut rng);
    let endpoint = proto::Server::new(proto_config);
    shared.with(|core| {
        *core = Core::Server(ServerCore {
            endpoint,
            pending: Pending::new(),
            inbox: Inbox::new(),
            handlers: Handlers::new(),
            stats: DriverStats::default(),
        })
    });
    let shared: &'d Shared = shared;
    Ok((
        Server { shared },
        ServerRunner {
            shared,
            socket,
            datagram,
        },
    ))
}

/// Drives the server: spawn [`ServerRunner::run`] as a task.
pub struct ServerRunner<'d> {
    shared: &'d Shared,
    socket: embassy_net::udp::UdpSocket<'d>,
    datagram: &'d mut [u8; pavillion_proto::wire::MAX_DATAGRAM],
}

impl ServerRunner<'_> {
    /// Runs the protocol for ever: handshakes, sessions, calls to the handlers, and the
    /// handle's commands.
    pub async fn run(self) -> ! {
        runner::run::<ServerCore>(self.shared, self.socket, self.datagram).await
    }
}

/// The application's handle on a server; `Copy`.
#[derive(Clone, Copy)]
pub struct Server<'d> {
    shared: &'d Shared,
}

impl Server<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut ServerCore) -> Result<T, Error>) -> Result<T, Error> {
        self.shared
            .with(|core| ServerCore::pick(core).map_or(Err(Error::Busy), f))
    }

    /// Answers calls to `function` with `handler`; `name` is what standard call 1 returns for
    /// it. Registering a function again replaces its handler.
    ///
    /// # Errors
    /// [`Error::TableFull`] with [`MAX_HANDLERS`] functions registered already.
    pub fn register(&self, function: u16, name: &str, handler: Handler) -> Result<(), Error> {
        self.with(|s| {
            s.handlers.insert(FunctionId(function), handler)?;
            s.endpoint.register_function(FunctionId(function), name);
            Ok(())
        })
    }

    /// Stops answering `function`; calls to it get status 2 (nonexistent function).
    pub fn unregister(&self, function: u16) {
        let _ = self.with(|s| {
            s.handlers.remove(FunctionId(function));
            s.endpoint.unregister_function(FunctionId(function));
            Ok(())
        });
    }

    /// Waits for the next message from a client and copies it into `buf`, as
    /// [`crate::Client::recv_message`] does; `from` is the client's address.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold the message; it stays first in the
    /// queue.
    pub async fn recv_message<'b>(&self, buf: &'b mut [u8]) -> Result<Message<'b>, Error> {
        inbox::recv(self.shared, buf, ServerCore::inbox).await
    }

    /// Sends a message to the client at `to`; a reliable one resolves once it acknowledged.
    ///
    /// # Errors
    /// [`Error::Refused`] with `UnknownPeer` without a session at `to`, and as
    /// [`crate::Client::send`].
    pub async fn send_to(
        &self,
        to: SocketAddr,
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
        let slot = self.with(|s| {
            let slot = match reliability {
                Reliability::Unreliable => None,
                _ => Some(s.pending.free_slot()?),
            };
            let id = s
                .endpoint
                .send_message(now, to, target, name, data, options)?;
            if let Some(slot) = slot {
                s.pending.insert(slot, Op::Message(id));
            }
            Ok(slot)
        })?;
        self.shared.kick();
        let Some(slot) = slot else { return Ok(()) };
        match pending::wait(self.shared, slot, ServerCore::pending).await {
            Outcome::Error(e) => Err(e),
            Outcome::Answered(_) | Outcome::Delivered => Ok(()),
        }
    }

    /// Clients with a session now.
    pub fn session_count(&self) -> usize {
        self.with(|s| Ok(s.endpoint.session_count())).unwrap_or(0)
    }

    /// The driver's counters.
    pub fn driver_stats(&self) -> DriverStats {
        self.with(|s| {
            Ok(DriverStats {
                inbox_dropped: s.inbox.dropped(),
                ..s.stats
            })
        })
        .unwrap_or_default()
    }

    /// Runs `f` on the protocol's server (its `Stats`, clients, or a command this handle does
    /// not wrap). Do not block in `f`: the runner waits for it.
    pub fn with_endpoint<T>(&self, f: impl FnOnce(&mut proto::Server) -> T) -> Option<T> {
        let r = self.with(|s| Ok(f(&mut s.endpoint))).ok();
        self.shared.kick();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(_: &[u8], _: &mut [u8]) -> Result<usize, RpcStatus> {
        Ok(1)
    }

    fn b(_: &[u8], _: &mut [u8]) -> Result<usize, RpcStatus> {
        Ok(2)
    }

    #[test]
    fn the_handler_table_is_bounded_and_replaces_in_place() {
        let mut h = Handlers::new();
        for f in 0..MAX_HANDLERS as u16 {
            h.insert(FunctionId(f), a).unwrap();
        }
        assert_eq!(h.insert(FunctionId(999), a), Err(Error::TableFull));
        // Replacing an existing function needs no room.
        h.insert(FunctionId(3), b).unwrap();
        let mut out = [0u8; 1];
        assert_eq!(h.get(FunctionId(3)).map(|f| f(b"", &mut out)), Some(Ok(2)));
        h.remove(FunctionId(3));
        assert!(h.get(FunctionId(3)).is_none());
        h.insert(FunctionId(999), a).unwrap();
    }
}
