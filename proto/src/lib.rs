//! Sans-IO state machines for the Pavillion UDP protocol.
//!
//! `pavillion-proto` holds all protocol logic of pavillion-rs and nothing else: no sockets, no
//! clocks, no threads and no ambient randomness. A driver (a real socket adapter, the network
//! simulator or a benchmark loop) feeds it datagrams and timestamps, and it answers with
//! datagrams to send, events for the application and the time at which it next wants to be woken.
//! Because of that, one seed replays a whole run exactly.
//!
//! # Driving an endpoint
//! Every endpoint ([`endpoint::Client`], [`endpoint::Server`]) follows one contract:
//! 1. `handle_datagram(now, from, bytes)` for each datagram received;
//! 2. `handle_timeout(now)` once the deadline from `poll_timeout()` has passed (calling it early
//!    is harmless);
//! 3. commands (`send_message`, ...) return an id at once; their outcome arrives later as an
//!    event ([`endpoint::ClientEvent`], [`endpoint::ServerEvent`]) carrying that id;
//! 4. after any of the above, drain `poll_transmit(now, buf)` until it returns `None`, then
//!    `poll_event()`, then sleep until `poll_timeout()` or the next datagram.
//!
//! The contract is the [`endpoint::Endpoint`] trait. The crate's `examples/` drive a client and
//! a server through it from a `tokio` task and from a hand-written `mio` poll loop.
//!
//! Time is an [`Instant`] in microseconds that must never go backwards. Randomness comes from a
//! [`rng::Rng`] seeded through the configuration.
//!
//! # Layers
//! Each module owns one concern; `docs/PROTOCOL.md` §13 names, for every packet, timer kind and
//! event, the module that parses, sets or emits it.
//! - [`wire`]: typed packets to and from bytes, where every datagram is parsed: framing
//!   in `wire`, setup ops in `wire::setup`, application opcodes in `wire::app`, suite 3 packets
//!   in `wire::noise`. Never panics on input, holds no state.
//! - [`crypto`]: the session cipher and the key derivations of suites 1 (PSK), 2 (ECC) and 3
//!   (Noise).
//! - [`handshake`]: the setup exchanges, as states that consume themselves: suites 1 and 2 in
//!   `handshake::client` and `handshake::server`, the client's round policy in
//!   `handshake::rounds`, the server's half-open tables in `handshake::responder`, suite 3 in
//!   `handshake::noise` and `handshake::noise_initiator`, cookies and load in
//!   `handshake::cookie`, per-source reply budgets in `handshake::budget`.
//! - [`session`]: one peer's state, the same type for both roles: receive keys, the replay
//!   window, liveness, and the one `open` every received session packet goes through.
//! - [`reliability`]: RTT estimation and the outbox of reliable exchanges (retransmission,
//!   deadlines, outcomes).
//! - [`features`]: what runs on sessions, each owning its state and rules: RPC, publish and
//!   subscribe, time sync, device status, suite 3 group keys, segmented messages.
//! - `table`: the bounded table that evicts its oldest entry, behind every state an
//!   unauthenticated peer can make an endpoint keep.
//! - [`endpoint`]: the client and server roles, which route: they find a datagram's session,
//!   hand each packet to the module that owns it, gather every deadline into one timer table
//!   per role and queue datagrams and events ([`endpoint::ClientEvent`],
//!   [`endpoint::ServerEvent`]) in plumbing both roles share (`endpoint::shared`). The [`endpoint::Endpoint`] trait is their common driving
//!   contract.
//!
//! # Features
//! - `std` (default): turns on the dependencies' std support. The crate is `#![no_std]` with
//!   `alloc` either way and reads no clock even with `std`: a driver's clock (`StdClock`) is in
//!   `pavillion-io`.
//! - `testing`: the in-memory network driver in the `testing` module, for sibling crates.
//! - `serde`: `serde::Serialize` on every event type and what it carries (see `serde_util`),
//!   for structured traces.
//!
//! # Example
//! A client and a server exchanging one reliable message over an in-memory "network":
//! ```
//! use pavillion_proto::crypto::Psk;
//! use pavillion_proto::endpoint::{
//!     Client, ClientConfig, ClientEvent, SendOptions, Server, ServerConfig, ServerEvent,
//! };
//! use pavillion_proto::{ClientId, Instant};
//!
//! let id = ClientId(*b"sensor-000000001");
//! let psk = Psk::from_bytes([7; 32]);
//! let server_addr = "127.0.0.1:1783".parse().unwrap();
//! let client_addr = "127.0.0.1:40000".parse().unwrap();
//!
//! let mut server = Server::new(ServerConfig::new([1; 32]).with_psk_client(id, psk.clone()));
//! let mut client = Client::new(ClientConfig::psk(id, psk, server_addr, [2; 32]));
//!
//! let mut now = Instant::ZERO;
//! let msg = client.send_message(now, "kitchen", "temp", b"21.5", SendOptions::reliable()).unwrap();
//! let mut buf = [0u8; 2048];
//! let mut delivered = false;
//! for _ in 0..20 {
//!     while let Some(t) = client.poll_transmit(now, &mut buf) {
//!         server.handle_datagram(now, client_addr, &buf[..t.len]);
//!     }
//!     while let Some(t) = server.poll_transmit(now, &mut buf) {
//!         client.handle_datagram(now, server_addr, &buf[..t.len]);
//!     }
//!     while let Some(ev) = client.poll_event() {
//!         if let ClientEvent::Delivered { id, .. } = ev {
//!             delivered |= id == msg;
//!         }
//!     }
//!     now += pavillion_proto::Duration::from_millis(1);
//!     client.handle_timeout(now);
//!     server.handle_timeout(now);
//! }
//! assert!(delivered);
//! let got = core::iter::from_fn(|| server.poll_event()).find_map(|ev| match ev {
//!     ServerEvent::Message { message, .. } => Some(message),
//!     _ => None,
//! });
//! assert_eq!(got.unwrap().payload(), b"21.5");
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(unused_must_use)]
// A build with fewer than three suites (`suite-*` features) still compiles the others' code:
// only the dispatch arms that reach it are cut, so it is unreachable and the linker drops it.
// What the cut leaves unused is expected there; the full build keeps every lint.
// The same holds for the optional features (`durable`, `ordered`, `registers`, `pubsub`,
// `segment`, `handoff`).
#![cfg_attr(
    not(all(
        feature = "suite-psk",
        feature = "suite-ecc",
        feature = "suite-noise",
        feature = "durable",
        feature = "ordered",
        feature = "registers",
        feature = "pubsub",
        feature = "segment",
        feature = "handoff"
    )),
    allow(dead_code, unused_imports, unused_variables, unused_mut)
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod crypto;
pub mod dissect;
pub mod endpoint;
pub mod features;
pub mod handshake;
pub mod id;
pub mod keylog;
pub mod reliability;
pub mod rng;
#[cfg(feature = "serde")]
pub mod serde_util;
pub mod session;
pub mod store;
mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod time;
mod util;
pub mod wire;

/// The README's library example, compiled and run as a doctest so that it cannot rot. It needs
/// the `testing` feature, which this crate's own tests always enable (`cargo test --workspace`,
/// `cargo test -p pavillion-proto --doc`).
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExample;

pub use endpoint::{FailReason, TransferRefusal};
pub use id::{ClientId, Counter, FunctionId, MessageId, PeerId};
pub use time::{Duration, Instant};
