//! Connection events for the application: sessions coming up and ending, peers going silent
//! and coming back, a server's status changing. The endpoint reports them as
//! [`ClientEvent`]s and [`ServerEvent`]s; the routers hand them to the
//! [`ConnectionSubscriber`]s the application added (callbacks in the blocking adapter, streams
//! in the async one), in the order the endpoint emitted them. A subscriber added while
//! sessions are up first gets a `Connected` for each.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pavillion_proto::endpoint::{ClientEvent, CloseReason, ServerEvent};
use pavillion_proto::features::status::Status;
use pavillion_proto::PeerId;

/// A change in the state of one session, as the application sees it.
///
/// On a client, `addr` is the address the server answers from; on a server, the client's
/// address. A session goes `Connected`, then possibly `PeerDown` and `PeerUp` any number of
/// times, and ends with `Disconnected`; a later handshake with the same peer starts again with
/// `Connected`.
///
/// # Examples
/// ```
/// use pavillion_io::ConnectionEvent;
///
/// fn describe(event: &ConnectionEvent) -> String {
///     match event {
///         ConnectionEvent::Connected { addr, .. } => format!("{addr} up"),
///         ConnectionEvent::Disconnected { addr, reason } => format!("{addr} gone: {reason:?}"),
///         ConnectionEvent::PeerDown { addr } => format!("{addr} silent"),
///         ConnectionEvent::PeerUp { addr } => format!("{addr} heard again"),
///         ConnectionEvent::StatusChanged { addr, status } => format!("{addr}: {status:?}"),
///         _ => String::from("other"),
///     }
/// }
/// let addr = "127.0.0.1:1783".parse().unwrap();
/// assert_eq!(describe(&ConnectionEvent::PeerDown { addr }), "127.0.0.1:1783 silent");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A session came up (a handshake completed). `peer` is the client's authenticated
    /// identity on a server, `None` on a client.
    Connected {
        /// The peer's address.
        addr: SocketAddr,
        /// The client's identity (server side only).
        peer: Option<PeerId>,
    },
    /// A session ended: the peer sent quit, or we closed it.
    Disconnected {
        /// The peer's address.
        addr: SocketAddr,
        /// Why it ended.
        reason: CloseReason,
    },
    /// Nothing authenticated came from the peer for the configured down timeout
    /// (`Limits::down_timeout`). The session is kept: the peer may come back.
    PeerDown {
        /// The peer's address.
        addr: SocketAddr,
    },
    /// The first authenticated packet from a peer that was down.
    PeerUp {
        /// The peer's address.
        addr: SocketAddr,
    },
    /// A server reported different status bytes (battery, network, temperature) in its
    /// acknowledgements (client side only).
    StatusChanged {
        /// The server.
        addr: SocketAddr,
        /// Its new status.
        status: Status,
    },
}

impl ConnectionEvent {
    /// The connection event a client's endpoint event stands for, if it is one.
    pub fn from_client_event(event: &ClientEvent) -> Option<ConnectionEvent> {
        Some(match *event {
            ClientEvent::Connected { addr } => ConnectionEvent::Connected { addr, peer: None },
            ClientEvent::Disconnected { addr, reason } => {
                ConnectionEvent::Disconnected { addr, reason }
            }
            ClientEvent::PeerDown { addr } => ConnectionEvent::PeerDown { addr },
            ClientEvent::PeerUp { addr } => ConnectionEvent::PeerUp { addr },
            ClientEvent::StatusChanged { addr, status } => {
                ConnectionEvent::StatusChanged { addr, status }
            }
            _ => return None,
        })
    }

    /// The connection event a server's endpoint event stands for, if it is one.
    pub fn from_server_event(event: &ServerEvent) -> Option<ConnectionEvent> {
        Some(match *event {
            ServerEvent::Connected { addr, peer } => ConnectionEvent::Connected {
                addr,
                peer: Some(peer),
            },
            ServerEvent::Disconnected { addr, reason } => {
                ConnectionEvent::Disconnected { addr, reason }
            }
            ServerEvent::PeerDown { addr } => ConnectionEvent::PeerDown { addr },
            ServerEvent::PeerUp { addr } => ConnectionEvent::PeerUp { addr },
            _ => return None,
        })
    }

    /// The peer the event is about.
    pub fn addr(&self) -> SocketAddr {
        match *self {
            ConnectionEvent::Connected { addr, .. }
            | ConnectionEvent::Disconnected { addr, .. }
            | ConnectionEvent::PeerDown { addr }
            | ConnectionEvent::PeerUp { addr }
            | ConnectionEvent::StatusChanged { addr, .. } => addr,
        }
    }
}

/// Something that takes connection events, run on the driver.
pub trait ConnectionSubscriber: Send {
    /// Hands over one event. Returns `false` when this subscriber is gone for good (a dropped
    /// stream), so it is forgotten. It must not block the driver.
    fn offer(&mut self, event: &ConnectionEvent) -> bool;
}

/// A connection callback, run on the driver's thread.
pub struct ConnectionCallback(Box<dyn FnMut(&ConnectionEvent) + Send>);

impl ConnectionCallback {
    /// Wraps `callback`.
    pub fn new(callback: impl FnMut(&ConnectionEvent) + Send + 'static) -> Self {
        ConnectionCallback(Box::new(callback))
    }
}

impl std::fmt::Debug for ConnectionCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionCallback")
    }
}

impl ConnectionSubscriber for ConnectionCallback {
    /// Runs the callback. A panicking callback is logged and kept: one bad event must not take
    /// the endpoint down.
    fn offer(&mut self, event: &ConnectionEvent) -> bool {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(event))).is_err() {
            tracing::error!(?event, "connection callback panicked");
        }
        true
    }
}

/// The connection subscribers of one endpoint.
#[derive(Default)]
pub struct ConnectionSubscribers(Vec<Box<dyn ConnectionSubscriber>>);

impl std::fmt::Debug for ConnectionSubscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnectionSubscribers")
            .field(&self.0.len())
            .finish()
    }
}

impl ConnectionSubscribers {
    /// Adds a subscriber after handing it `current`, the sessions already up as `Connected`
    /// events, so that one added after a handshake does not miss it; then it gets the events
    /// from now on.
    pub fn add(
        &mut self,
        mut sub: Box<dyn ConnectionSubscriber>,
        current: impl IntoIterator<Item = ConnectionEvent>,
    ) {
        for event in current {
            if !sub.offer(&event) {
                return;
            }
        }
        self.0.push(sub);
    }

    /// Hands `event` to every subscriber, in the order they were added, forgetting those that
    /// are gone.
    pub fn deliver(&mut self, event: &ConnectionEvent) {
        self.0.retain_mut(|s| s.offer(event));
    }
}
