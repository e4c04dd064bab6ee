//! A blocking adapter for Pavillion endpoints on `std::net::UdpSocket`, and the `pav` CLI.
//!
//! Each [`Client`] or [`Server`] owns its sockets and one background thread. The thread owns
//! the sockets and the `pavillion-proto` endpoint, and sleeps in a `mio` poller until the next
//! datagram or the endpoint's next deadline (`poll_timeout`). The handle's methods send
//! commands over a channel and wake the poller at once, so a command never waits for a timer.
//! This crate holds no protocol logic: every retry, timeout and decision is the endpoint's;
//! the adapter moves bytes, reads the clock and routes outcomes back to the callers that wait
//! for them.
//!
//! The runtime-independent half (configuration, errors, key parsing, the clock, the commands
//! and the routers that map the endpoint's events to waiting callers) is the `pavillion-io`
//! crate, re-exported here as [`config`], [`error`], [`keys`] and [`plumbing`]; the async
//! adapter `pavillion-smol` is built on it too: only the loop and the way a caller waits
//! differ between the two.
//!
//! The API follows what a user of the Python reference expects:
//!
//! | Python | here |
//! |---|---|
//! | `Server(port, keys=..)` | [`Server::bind`] with [`ServerConfig`] |
//! | `server.registers[n] = f` | [`Server::register`], [`Server::register_deferred`] |
//! | `messageTarget(t, cb)` | [`Server::on_message`], [`Client::on_message`] |
//! | `sendMessage(t, n, v, reliable)` | [`Server::send_message`], [`Client::send_message`] |
//! | (none) | messages, call arguments and answers larger than a datagram (up to [`ClientConfig::max_message`]), with [`Client::send_with_progress`], [`Server::send_to_with_progress`] |
//! | `Client(address, clientID, psk)` | [`Client::connect`] with [`ClientConfig`] |
//! | `client.call(n, data)` | [`Client::call`] |
//! | `getServer()`, `getServers()` | [`Client::server`], [`Client::servers`] ([`RemoteServer`]) |
//! | `onServerConnect`, `onServerDisconnect`, `onServerStatusUpdate` | [`Client::on_connection`], [`Server::on_connection`] ([`ConnectionEvent`]) |
//! | (none) | [`Client::stats`], [`Server::stats`]: datagrams, handshakes, drops by [`DropReason`] |
//! | `close()`, garbage collection | [`Client::close`], [`Server::close`], `Drop` |
//! | the server's reply socket | [`ServerConfig::reply_socket`] (automatic on a group address) |
//! | (none) | durable messages, exactly once across outages and restarts: [`ClientConfig::durable`], [`Client::send_durable`], [`Server::recv_durable`], [`Server::consume_durable`] |
//! | `multicast=` | [`ServerConfig::multicast`], [`Server::join_multicast`]; a client given a group joins it |
//!
//! Keys, ids and addresses given as text are parsed by [`keys`], with the reference's rules for
//! PSKs (raw 32 bytes, 64 hex characters, or base64 of 32 bytes).
//!
//! # Examples
//! A server with an RPC and a client calling it, on loopback:
//! ```no_run
//! use pavillion_std::keys::generate_psk;
//! use pavillion_std::{Client, ClientConfig, RpcFailure, Server, ServerConfig};
//! use pavillion_proto::ClientId;
//!
//! let id = ClientId(*b"cid2cid2cid2cid2");
//! let psk = generate_psk();
//! let server = Server::bind("127.0.0.1:0", ServerConfig::new().psk_client(id, psk.clone()))?;
//! server.register(401, "upper", |req| Ok::<_, RpcFailure>(req.args.to_ascii_uppercase()));
//!
//! let client = Client::connect(server.local_addr(), ClientConfig::psk(id, psk))?;
//! assert_eq!(&client.call(401, b"hi")?[..], b"HI");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// A std adapter: std paths are the point here, unlike in `proto`.
#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

pub mod authority;
#[cfg(feature = "bridge")]
pub mod bridge;
mod client;
mod driver;
mod durable_api;
mod handoff;
mod registers;
pub mod relay;
mod server;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub use client::{Client, RemoteServer};
pub use handoff::Handoff;
pub use pavillion_io::durable::{
    DurableDelivery, DurableError, DurableId, DurablePeer, DurableRestored,
};
/// Pipelined sends: a message's handle and its number (see `Client::send_pipelined`).
pub use pavillion_io::plumbing::window::{SendHandle, SendId};
pub use pavillion_io::{config, durable, error, keys, metrics, plumbing, segment, store, tap};
pub use pavillion_io::{
    CallError, ClientConfig, ConnectionEvent, Delivery, OpenError, Outcome, ReceivedMessage,
    ReplySocket, Responder, RpcFailure, SendError, ServerConfig, ServerError, ServerState,
    StdClock, TransferRefusal, DEFAULT_PORT,
};
pub use pavillion_proto::endpoint::{
    AuthFailure, CloseReason, DropReason, Reliability, RpcRequest, SendOptions, Stats,
};
pub use pavillion_proto::endpoint::{HandoffError, HandoffId, MessageKey};
pub use pavillion_proto::endpoint::{Register, RegisterError, RegisterInfo};
pub use pavillion_proto::wire::{RegisterId, RegisterStatus, RegisterType, RegisterValue};
pub use registers::{RegisterChange, RegisterOpError, RegisterWrite};
pub use relay::{Relay, RelayNotice, RelayOptions, SegmentOptions};
pub use server::Server;

/// How long a blocking wait lasts beyond the endpoint's own deadline before it gives up. The
/// endpoint reports every deadline itself; this only guards against a driver that died.
const GRACE: Duration = Duration::from_secs(2);

/// Resolves `addr` to its first address, as an I/O error (for listeners of our own).
fn resolve_io(addr: impl ToSocketAddrs) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))
}

/// Resolves `addr` to its first address.
fn resolve(addr: impl ToSocketAddrs) -> Result<SocketAddr, OpenError> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| OpenError::Address("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<Client>();
        send_sync::<Server>();
        send_sync::<RemoteServer>();
        send_sync::<Responder>();
        send_sync::<Handoff>();
    }
}
