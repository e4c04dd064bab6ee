//! The runtime-independent half of the Pavillion socket adapters, shared by the blocking
//! adapter `pavillion-std` (a `mio` thread) and the async one `pavillion-smol` (a `smol` task).
//!
//! Only the loop and the way a caller waits differ between the two adapters; everything else
//! is here, once: the configuration builders ([`config`]), errors ([`error`]), key and address
//! parsing ([`keys`]), the drivers' clock ([`StdClock`]), opening sockets, the commands and the
//! routers that carry them out on an endpoint and route its events to the callers waiting for
//! them ([`plumbing`]).
//!
//! It is a crate of its own, not a feature of `pavillion-std`, so that the async adapter's
//! dependency tree holds neither `mio` nor the `pav` CLI's crates, whatever features Cargo
//! unifies: a crate has only the dependencies it names.
//!
//! Applications use the adapters, which re-export what they need from here under the same
//! names; a new adapter (another runtime) builds on [`plumbing`] the same way.
// A std adapter half: std paths are the point here, unlike in `proto`.
#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

pub mod authority;
pub mod bridge;
mod clock;
pub mod config;
pub mod durable;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod plumbing;
pub mod raw;
pub mod relay;
pub mod segment;
pub mod store;
pub mod tap;

pub use clock::StdClock;
pub use config::{ClientConfig, ReplySocket, ServerConfig};
pub use error::{CallError, OpenError, SendError, ServerError};
pub use pavillion_proto::TransferRefusal;
pub use plumbing::client::ServerState;
pub use plumbing::events::ConnectionEvent;
pub use plumbing::messages::ReceivedMessage;
pub use plumbing::server::{Outcome, Responder, RpcFailure};
pub use plumbing::Delivery;

/// The protocol's default port.
pub const DEFAULT_PORT: u16 = 1783;
