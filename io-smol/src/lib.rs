//! An async adapter for Pavillion endpoints on the [`smol`] runtime.
//!
//! Each [`Client`] or [`Server`] owns one UDP socket (`async_io::Async<std::net::UdpSocket>`)
//! and one driver task, spawned with `smol::spawn` on smol's global executor, so it runs
//! whatever executor or `block_on` the application itself uses. The task owns the socket and
//! the `pavillion-proto` endpoint and waits for the first of: a command from a handle, a
//! datagram, or a timer armed at the endpoint's `poll_timeout`. After each it sends what the
//! endpoint queued and routes the endpoint's events to the futures and streams that wait for
//! them, by call id and message id.
//!
//! This crate holds no protocol logic: every retry, timeout and decision is the endpoint's.
//! A [`Client::call`] resolves when the endpoint reports the call answered, failed or timed
//! out (at the configured deadline), never by a timer of ours.
//!
//! Only the loop and the waiting are this crate's own. The configuration builders, errors,
//! commands and the routers that map the endpoint's events to waiting callers are the blocking
//! adapter's, from `pavillion_io::plumbing`, re-exported here under the same names, so the
//! two adapters cannot drift apart.
//!
//! | io-std (blocking) | here |
//! |---|---|
//! | `Server::bind(addr, config)` | [`Server::bind`]`(addr, config).await` |
//! | `register`, `register_deferred` | [`Server::register`], [`Server::register_async`], [`Server::register_deferred`] |
//! | `on_message(target, callback)` | [`Server::on_message`], [`Client::on_message`]: a [`MessageStream`] |
//! | `send_message(..)` | [`Server::send_message`]`(..).await`, [`Client::send_message`]`(..).await` |
//! | `send_with_progress`, `send_to_with_progress` | [`Client::send_with_progress`]`(..).await`, [`Server::send_to_with_progress`]`(..).await` |
//! | `Client::connect(addr, config)` | [`Client::connect`]`(addr, config).await` |
//! | `client.call(n, data)` | [`Client::call`]`(n, data).await` |
//! | `server(addr)`, `servers()` | [`Client::server`], [`Client::servers`] ([`RemoteServer`]) |
//! | `on_connection(callback)` | [`Client::on_connection`], [`Server::on_connection`]: a [`ConnectionStream`] |
//! | `stats()` | [`Client::stats`]`.await`, [`Server::stats`]`.await` |
//! | `close()`, `Drop` | [`Client::close`]`.await`, [`Server::close`]`.await`, `Drop` |
//! | `join_multicast`, `leave_multicast` | [`Server::join_multicast`]`.await`, [`Server::leave_multicast`]`.await` |
//! | `ServerConfig::multicast`, `reply_socket` | the same ([`ServerConfig`] is shared) |
//! | `ClientConfig::durable(path)`, `ServerConfig::durable(path)` | the same: a store for durable messages |
//! | `send_durable`, `send_durable_marked`, `send_durable_with` | [`Client::send_durable`]`(..).await`, [`Server::send_durable`]`(peer, ..).await`: once stored |
//! | `wait_durable_delivered`, `wait_durable_drained` | [`Client::wait_durable_delivered`]`(..).await`, [`Client::wait_durable_drained`]`(..).await` |
//! | `recv_durable(timeout)`, `consume_durable(&delivery, mark)` | [`Client::recv_durable`]`().await` ([`Client::recv_durable_timeout`]), [`Client::consume_durable`]`(..).await` |
//! | `Server::relay_durable` (a broker) | [`Server::relay_durable`]`(..).await`: forward and consume in one commit |
//! | `queue_durable` (pipelining) | [`Client::queue_durable`], [`Server::queue_durable`]: queued at once, a future for "stored" |
//! | `cancel_durable`, `durable_queued`, `durable_restored` | the same, async (`durable_restored` is not) |
//!
//! Durable messages (exactly once across outages and reboots of either side, `docs/DURABLE.md`)
//! are opted into with a store path in the configuration; their store is written by a thread of
//! `pavillion_io::durable`, never by the driver task, so a disk sync never holds up the executor.
//!
//! A fleet's [`authority::Authority`] and [`authority::Member`] (`docs/AUTHORITY.md`) run on a
//! task each in the [`authority`] module.
//!
//! # Examples
//! A server with an RPC and a client calling it, on loopback:
//! ```no_run
//! use pavillion_proto::crypto::Psk;
//! use pavillion_proto::ClientId;
//! use pavillion_smol::{Client, ClientConfig, RpcFailure, Server, ServerConfig};
//!
//! smol::block_on(async {
//!     let id = ClientId(*b"cid2cid2cid2cid2");
//!     let psk = Psk::from_bytes([7; 32]);
//!     let config = ServerConfig::new().psk_client(id, psk.clone());
//!     let server = Server::bind("127.0.0.1:0", config).await?;
//!     server.register(401, "upper", |req| Ok::<_, RpcFailure>(req.args.to_ascii_uppercase()));
//!
//!     let client = Client::connect(server.local_addr(), ClientConfig::psk(id, psk)).await?;
//!     assert_eq!(&client.call(401, b"hi").await?[..], b"HI");
//!     client.close().await;
//!     server.close().await;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// A std adapter: std paths are the point here, unlike in `proto`.
#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

pub mod authority;
mod client;
mod driver;
mod durable;
mod handoff;
mod registers;
pub mod relay;
mod server;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::Stream;
use pavillion_io::plumbing::events::ConnectionSubscriber;
use pavillion_io::plumbing::messages::Subscriber;

pub use client::{Client, RemoteServer};
pub use handoff::{Handoff, HandoffStream};
pub use pavillion_io::config::DEFAULT_MESSAGE_BUFFER;
pub use pavillion_io::durable::{DurableDelivery, DurableError};
/// Pipelined sends: a message's handle and its number (see `Client::send_pipelined`).
pub use pavillion_io::plumbing::window::{SendHandle, SendId};
pub use pavillion_io::{metrics, tap};
pub use pavillion_io::{
    CallError, ClientConfig, ConnectionEvent, Delivery, OpenError, Outcome, ReceivedMessage,
    ReplySocket, Responder, RpcFailure, SendError, ServerConfig, ServerError, ServerState,
    TransferRefusal, DEFAULT_PORT,
};
pub use pavillion_proto::endpoint::{
    AuthFailure, CloseReason, DropReason, Reliability, RpcRequest, SendOptions, Stats,
};
pub use pavillion_proto::endpoint::{HandoffError, HandoffId, MessageKey};
pub use pavillion_proto::endpoint::{Register, RegisterError, RegisterInfo};
pub use pavillion_proto::features::durable::{
    DurableId, DurableLimits, DurablePeer, DurableRestored, OriginId,
};
pub use pavillion_proto::wire::{RegisterId, RegisterStatus, RegisterType, RegisterValue};
pub use registers::{RegisterChange, RegisterOpError, RegisterStream, RegisterWrite};
pub use relay::{Relay, RelayNotice, RelayOptions, SegmentOptions};
pub use server::Server;

/// How long an exporter's scrape waits for the driver's snapshot before it answers 503.
const METRICS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The messages to one target (or to all targets), as a [`Stream`].
///
/// The stream is bounded (see [`ClientConfig::message_buffer`] and
/// [`ServerConfig::message_buffer`]). The driver never waits for a reader: a message that
/// arrives while the buffer is full is dropped for this stream only (other streams still get
/// it), and counted in [`MessageStream::dropped`]. A reliable message is acknowledged by the
/// endpoint whether or not a stream had room for it. The stream ends when the endpoint closes.
/// Dropping it unsubscribes; a server notices at the next message to that target, and then
/// tells its clients it no longer takes the target if no other stream does.
///
/// # Examples
/// ```no_run
/// use futures_lite::StreamExt;
/// # smol::block_on(async {
/// # async fn example(server: pavillion_smol::Server) {
/// let mut kitchen = server.on_message(Some("kitchen"));
/// while let Some(m) = kitchen.next().await {
///     println!("{} = {:?} from {}", m.name(), m.payload(), m.from);
/// }
/// # }
/// # });
/// ```
#[derive(Debug)]
pub struct MessageStream {
    rx: Pin<Box<Receiver<ReceivedMessage>>>,
    dropped: Arc<AtomicU64>,
}

impl MessageStream {
    /// How many messages were dropped because this stream's buffer was full.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_smol::Server) {
    /// let stream = server.on_message(Some("kitchen"));
    /// assert_eq!(stream.dropped(), 0);
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Stream for MessageStream {
    type Item = ReceivedMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// The driver's end of one [`MessageStream`].
#[derive(Debug)]
struct StreamSubscriber {
    tx: Sender<ReceivedMessage>,
    dropped: Arc<AtomicU64>,
}

impl Subscriber for StreamSubscriber {
    /// Queues the message, or drops it for this stream if its buffer is full; forgets a
    /// stream that was dropped.
    fn offer(&mut self, m: &ReceivedMessage) -> bool {
        match self.tx.try_send(m.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target = %m.target(), "message stream full; message dropped");
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// A new stream and the driver's end of it, holding up to `capacity` messages.
fn message_stream(capacity: usize) -> (StreamSubscriber, MessageStream) {
    let (tx, rx) = async_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let sub = StreamSubscriber {
        tx,
        dropped: dropped.clone(),
    };
    let stream = MessageStream {
        rx: Box::pin(rx),
        dropped,
    };
    (sub, stream)
}

/// The connection events of a client or server ([`ConnectionEvent`]: sessions up and down,
/// peers silent and back, status changes), as a [`Stream`].
///
/// It starts with a `Connected` for each session already up when it was made, then follows
/// the events in the order they happened. Like [`MessageStream`] it is bounded (the message
/// buffer size): the driver never waits for a reader, and an event that arrives while the
/// buffer is full is dropped for this stream and counted in [`ConnectionStream::dropped`].
/// The stream ends when the endpoint closes.
///
/// # Examples
/// ```no_run
/// use futures_lite::StreamExt;
/// use pavillion_smol::ConnectionEvent;
/// # smol::block_on(async {
/// # async fn example(client: pavillion_smol::Client) {
/// let mut events = client.on_connection();
/// while let Some(event) = events.next().await {
///     if let ConnectionEvent::Disconnected { addr, reason } = event {
///         println!("{addr} left: {reason:?}");
///     }
/// }
/// # }
/// # });
/// ```
#[derive(Debug)]
pub struct ConnectionStream {
    rx: Pin<Box<Receiver<ConnectionEvent>>>,
    dropped: Arc<AtomicU64>,
}

impl ConnectionStream {
    /// How many events were dropped because this stream's buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Stream for ConnectionStream {
    type Item = ConnectionEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// The driver's end of one [`ConnectionStream`].
#[derive(Debug)]
struct ConnectionSender {
    tx: Sender<ConnectionEvent>,
    dropped: Arc<AtomicU64>,
}

impl ConnectionSubscriber for ConnectionSender {
    /// Queues the event, or drops it for this stream if its buffer is full; forgets a stream
    /// that was dropped.
    fn offer(&mut self, event: &ConnectionEvent) -> bool {
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?event, "connection stream full; event dropped");
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// A new connection stream and the driver's end of it, holding up to `capacity` events.
fn connection_stream(capacity: usize) -> (ConnectionSender, ConnectionStream) {
    let (tx, rx) = async_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let sub = ConnectionSender {
        tx,
        dropped: dropped.clone(),
    };
    let stream = ConnectionStream {
        rx: Box::pin(rx),
        dropped,
    };
    (sub, stream)
}

/// Resolves `addr` without blocking the executor, to its first address.
async fn resolve(addr: impl smol::net::AsyncToSocketAddrs) -> Result<SocketAddr, OpenError> {
    smol::net::resolve(addr)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| OpenError::Address("no address".into()))
}

/// The user guide `docs/AUTHORITY.md`, whose Rust example is compiled as a doctest so that
/// it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../docs/AUTHORITY.md")]
pub struct AuthorityGuide;

/// The user guide `docs/DURABLE.md`, whose Rust examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/DURABLE.md")]
pub struct DurableGuide;

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<Client>();
        send_sync::<Server>();
        send_sync::<RemoteServer>();
        send_sync::<MessageStream>();
        send_sync::<ConnectionStream>();
        send_sync::<Responder>();
        send_sync::<authority::Authority>();
        send_sync::<authority::Member>();
    }
}
