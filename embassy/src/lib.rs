//! A `no_std` async driver of the Pavillion protocol on [`embassy-net`](embassy_net): a client
//! (and, with the `server` feature, a server) over one embassy-net UDP socket, for
//! microcontrollers.
//!
//! `pavillion-proto` does the protocol and reads no clock, sockets or randomness; this crate
//! feeds it: datagrams from an [`embassy_net::udp::UdpSocket`], time from
//! [`embassy_time::Instant`], and a seed from an RNG the caller passes (never an ambient one).
//!
//! Each role comes in two halves over one [`Resources`]: a runner, whose `run` future drives
//! the protocol and is spawned as a task of its own, and a handle ([`Client`], or `Server`
//! with the `server` feature) whose async methods the application awaits. They share the
//! endpoint through an [`embassy_sync`] `NoopRawMutex`: both halves must run on the same
//! executor (the usual firmware has one), and no protocol work ever runs inside a critical
//! section, so a slow handshake on a small core never holds interrupts off.
//!
//! # Memory
//! The socket buffers, the datagram buffer, the tables of pending operations
//! ([`MAX_PENDING`]), of received messages ([`INBOX`]) and of handlers (`MAX_HANDLERS`, with
//! the `server` feature) are fixed and live in [`Resources`], which a firmware places in a
//! `static`. No heap is allocated here on the datagram path; `proto` allocates its own session
//! state and the messages it delivers (the device provides a global allocator, see
//! `README.md`), and its [`Limits`](pavillion_proto::endpoint::Limits) bound what a peer can
//! make it hold.
//!
//! # Example
//! A client task on a device (the stack, the RNG and the executor come from the board's
//! HAL, which is why this does not run here; `examples/host_client.rs` runs the same on
//! Linux over a TAP device):
//! ```ignore
//! use pavillion_embassy::{ClientConfig, ClientRunner, Reliability, Resources};
//! use pavillion_proto::{crypto::Psk, ClientId};
//! use static_cell::StaticCell;
//!
//! #[embassy_executor::task]
//! async fn pavillion(runner: ClientRunner<'static>) -> ! {
//!     runner.run().await
//! }
//!
//! static RESOURCES: StaticCell<Resources> = StaticCell::new();
//! let config = ClientConfig::psk(
//!     ClientId(*b"sensor-000000001"),
//!     Psk::from_bytes([7; 32]),
//!     "192.168.1.10:1783".parse().unwrap(),
//! );
//! let (client, runner) =
//!     pavillion_embassy::client(stack, RESOURCES.init(Resources::new()), config, rng)?;
//! spawner.spawn(pavillion(runner).unwrap());
//! let mut answer = [0u8; 64];
//! let n = client.call(0, b"ping", &mut answer).await?;
//! client.send("kitchen", "temp", b"21.5", Reliability::Reliable).await?;
//! ```
#![no_std]

mod addr;
mod client;
mod inbox;
mod pending;
mod runner;
#[cfg(feature = "server")]
mod server;
mod time;

use core::cell::RefCell;
use core::fmt;

use embassy_net::udp::PacketMetadata;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use pavillion_proto::wire::{RpcStatus, MAX_DATAGRAM};

pub use addr::{from_endpoint, to_endpoint};
pub use client::{client, Client, ClientConfig, ClientRunner};
pub use inbox::INBOX;
pub use pavillion_proto::endpoint::Reliability;
pub use pending::MAX_PENDING;
pub use runner::DriverStats;
#[cfg(feature = "server")]
pub use server::{server, Handler, Server, ServerConfig, ServerRunner, MAX_HANDLERS};
pub use time::{to_embassy, to_proto};

/// Packet metadata slots of each direction of the socket: how many datagrams its buffers hold
/// at once, whatever their sizes.
pub const PACKETS: usize = 8;

/// Fixed buffers for one endpoint: the socket's rx/tx buffers and packet metadata, the
/// datagram buffer, and the state the handle and the runner share.
///
/// `RX` and `TX` are the socket's buffers in bytes. A datagram is at most
/// [`MAX_DATAGRAM`] (4096) bytes, so the default of 4096 each holds one datagram of the
/// largest size or several small ones; a device that only exchanges small messages may go
/// lower, one that sends bursts higher (see `README.md`, "Memory").
pub struct Resources<const RX: usize = 4096, const TX: usize = 4096> {
    rx_meta: [PacketMetadata; PACKETS],
    rx: [u8; RX],
    tx_meta: [PacketMetadata; PACKETS],
    tx: [u8; TX],
    /// The one buffer of the datagram path: received into, sealed into, and the scratch a
    /// handler writes its answer in (never two of these at once: the runner does them in turn).
    datagram: [u8; MAX_DATAGRAM],
    shared: Shared,
}

impl<const RX: usize, const TX: usize> Resources<RX, TX> {
    /// Empty resources, for a `static` (`StaticCell`) or a long-lived stack frame.
    pub const fn new() -> Self {
        Resources {
            rx_meta: [PacketMetadata::EMPTY; PACKETS],
            rx: [0; RX],
            tx_meta: [PacketMetadata::EMPTY; PACKETS],
            tx: [0; TX],
            datagram: [0; MAX_DATAGRAM],
            shared: Shared::new(),
        }
    }
}

impl<const RX: usize, const TX: usize> Default for Resources<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the handle and the runner of one endpoint share: the role's state, and the signal
/// by which a command wakes the runner to send what it queued.
pub(crate) struct Shared {
    core: Mutex<NoopRawMutex, RefCell<Core>>,
    kick: Signal<NoopRawMutex, ()>,
}

impl Shared {
    const fn new() -> Self {
        Shared {
            core: Mutex::new(RefCell::new(Core::Empty)),
            kick: Signal::new(),
        }
    }

    /// Runs `f` on the role's state; never held across an await.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        self.core.lock(|c| f(&mut c.borrow_mut()))
    }

    /// Wakes the runner: a command queued something to send.
    pub(crate) fn kick(&self) {
        self.kick.signal(());
    }
}

/// The role an endpoint's [`Resources`] hold. Set once when the role is made; `Empty` only
/// before.
// The endpoint lives in `Resources` on purpose (a `static` on a device: its RAM is counted at
// link time), so the variants are not boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Core {
    Empty,
    Client(client::ClientCore),
    #[cfg(feature = "server")]
    Server(server::ServerCore),
}

/// Splits resources into the socket's buffers, the datagram buffer and the shared state.
fn split<'d, const RX: usize, const TX: usize>(
    stack: embassy_net::Stack<'d>,
    resources: &'d mut Resources<RX, TX>,
) -> (
    embassy_net::udp::UdpSocket<'d>,
    &'d mut [u8; MAX_DATAGRAM],
    &'d Shared,
) {
    let Resources {
        rx_meta,
        rx,
        tx_meta,
        tx,
        datagram,
        shared,
    } = resources;
    let socket = embassy_net::udp::UdpSocket::new(stack, rx_meta, rx, tx_meta, tx);
    (socket, datagram, shared)
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint refused the operation at once (a bad name, too large, its queue full,
    /// closed, no session with that peer).
    Refused(pavillion_proto::endpoint::SendError),
    /// Every slot for operations awaiting an outcome is taken ([`MAX_PENDING`]); try again
    /// once one ends.
    Busy,
    /// No answer or acknowledgement came before the deadline.
    TimedOut,
    /// The server answered the call with this non-zero status (docs/PROTOCOL.md §9.1).
    Remote(RpcStatus),
    /// The operation ended for a reason other than time (the session or the endpoint closed,
    /// the receiver refused it).
    Failed(pavillion_proto::FailReason),
    /// The caller's buffer is smaller than the answer or message, which is kept (a message
    /// stays first in the queue) for a call with a buffer of at least `needed` bytes.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The socket could not be bound to the configured local port.
    Bind,
    /// The configuration's credentials are of a suite this build leaves out (its `suite-*`
    /// feature is off): no endpoint is made.
    SuiteNotCompiled(pavillion_proto::crypto::suite::SuiteNotCompiled),
    /// The handler table is full ([`MAX_HANDLERS`] functions).
    #[cfg(feature = "server")]
    TableFull,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(e) => write!(f, "refused: {e}"),
            Error::Busy => f.write_str("too many operations await their outcome"),
            Error::TimedOut => f.write_str("timed out"),
            Error::Remote(status) => write!(f, "the server answered with status {}", status.0),
            Error::Failed(reason) => write!(f, "failed: {reason:?}"),
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
            Error::Bind => f.write_str("cannot bind the socket"),
            Error::SuiteNotCompiled(e) => write!(f, "{e}"),
            #[cfg(feature = "server")]
            Error::TableFull => f.write_str("the handler table is full"),
        }
    }
}

impl core::error::Error for Error {}

impl From<pavillion_proto::endpoint::SendError> for Error {
    fn from(e: pavillion_proto::endpoint::SendError) -> Self {
        Error::Refused(e)
    }
}

/// A message received, copied into the caller's buffer by `recv_message`: the payload first,
/// then the target and the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'b> {
    /// The address it came from.
    pub from: core::net::SocketAddr,
    /// The target (topic) it was sent to.
    pub target: &'b str,
    /// The message name.
    pub name: &'b str,
    /// The payload.
    pub data: &'b [u8],
    /// Whether it was sent reliably (and so was acknowledged).
    pub reliable: bool,
}

/// Seeds proto's `rand_chacha` from the caller's RNG: the only randomness an endpoint uses.
fn seed(rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng)) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed
}
