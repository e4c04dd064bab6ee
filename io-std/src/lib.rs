//! A blocking adapter for Pavillion endpoints on `std::net::UdpSocket`, and the `pav` CLI.
//!
//! Each [`Client`] or [`Server`] owns one UDP socket and one background thread. The thread owns
//! the socket and the `pavillion-proto` endpoint, and sleeps in `recv_from` until the next
//! datagram or the endpoint's next deadline (`poll_timeout`). The handle's methods send commands
//! over a channel and wake the thread at once with a one-byte datagram from a loopback "waker"
//! socket, so a command never waits for a timer. This crate holds no protocol logic: every
//! retry, timeout and decision is the endpoint's; the adapter moves bytes, reads the clock and
//! routes outcomes back to the callers that wait for them.
//!
//! The API follows what a user of the Python reference expects:
//!
//! | Python | here |
//! |---|---|
//! | `Server(port, keys=..)` | [`Server::bind`] with [`ServerConfig`] |
//! | `server.registers[n] = f` | [`Server::register`], [`Server::register_deferred`] |
//! | `messageTarget(t, cb)` | [`Server::on_message`], [`Client::on_message`] |
//! | `sendMessage(t, n, v, reliable)` | [`Server::send_message`], [`Client::send_message`] |
//! | `Client(address, clientID, psk)` | [`Client::connect`] with [`ClientConfig`] |
//! | `client.call(n, data)` | [`Client::call`] |
//! | `getServer()`, `getServers()` | [`Client::server`], [`Client::servers`] ([`RemoteServer`]) |
//! | `close()`, garbage collection | [`Client::close`], [`Server::close`], `Drop` |
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

mod client;
mod driver;
mod error;
pub mod keys;
mod server;

use std::net::SocketAddr;

pub use client::{Client, ClientConfig, RemoteServer, ServerState};
pub use error::{CallError, OpenError, SendError, ServerError};
pub use pavillion_proto::endpoint::{ReceivedMessage, Reliability, RpcRequest, SendOptions};
pub use server::{Outcome, Responder, RpcFailure, Server, ServerConfig};

/// The protocol's default port.
pub const DEFAULT_PORT: u16 = 1783;

/// Who acknowledged a reliable message.
///
/// For a unicast send `acked` holds the one server; in multicast mode it holds every server
/// that acknowledged, and `missing` the expected subscribers that did not before the deadline.
/// An unreliable send returns both empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The receivers that acknowledged the message.
    pub acked: Vec<SocketAddr>,
    /// Expected receivers that did not acknowledge it in time.
    pub missing: Vec<SocketAddr>,
}

/// A message callback, run on the endpoint's thread.
pub(crate) type MessageCallback = Box<dyn FnMut(&ReceivedMessage) + Send>;
