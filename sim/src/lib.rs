//! Deterministic network simulation of real Pavillion endpoints on [turmoil].
//!
//! Each host of a [`Simulation`] runs a real `pavillion-proto` endpoint (or a NAT or adversary
//! [middlebox](MiddleboxConfig)) over `turmoil::net::UdpSocket`, with simulated time and RNGs
//! derived from the simulation seed and the host's name. On top of turmoil's latency,
//! partitions, holds, crashes and bounces, the drivers add per-link loss, duplication,
//! corruption and reordering ([`LinkFaults`]), multicast groups ([`Simulation::join`]), NAT
//! mappings that expire, and scripted attacks. Relay hosts ([`Simulation::add_relay`]) carry
//! the broadcasts of stations ([`Simulation::add_station`]) between [`Segment`]s. A fleet's
//! authority ([`Simulation::add_authority`], with a store that outlives its crashes) and its
//! members ([`Simulation::add_member`], [`Simulation::add_members`]) run the issue 16 roles.
//! Every datagram and every application event goes into a [`Trace`], which reduces to a
//! digest: the same seed always gives the same digest.
//!
//! # Driving
//! Every endpoint host follows the contract of `pavillion_proto`: each received datagram goes
//! to `handle_datagram(now, from, bytes)`, an expired deadline to `handle_timeout(now)`, then
//! `poll_transmit` and `poll_event` are drained, and the host sleeps until `poll_timeout()`,
//! the next datagram, the next command of its [`Script`] or the next action its application
//! deferred ([`Ctl::after`], which dies with the incarnation that deferred it). `now` is the simulated time in
//! microseconds since the simulation started.
//!
//! # Determinism
//! turmoil is seeded with [`SimConfig::seed`] and runs hosts in a fixed order on one thread.
//! Every RNG of ours (the endpoints', the link faults', the attacks') is seeded from the
//! simulation seed, the host name and the host's restart count, so what a host draws does not
//! depend on the order other hosts ran in. `tokio::select!` is always `biased`.
//!
//! See [`Simulation`] for an example.
//!
//! [turmoil]: https://docs.rs/turmoil
#![forbid(unsafe_code)]
#![deny(unused_must_use, missing_docs)]

extern crate alloc;

mod authority;
mod config;
mod durable;
mod host;
pub mod middlebox;
mod net;
mod relay;
mod sim;
mod spoof;
mod tap;
mod trace;
mod trace_v1;

pub use authority::{
    AuthorityCtl, AuthorityScript, AuthoritySpec, FleetRole, MemberCtl, MemberScript, MemberSpec,
    Records, RoleScript, AUTHORITY_PORT, MEMBER_PORT,
};
pub use config::{ConfigError, LinkFaults, SimConfig};
pub use durable::{DurableRows, InCommit, StoreSpec, StoreStats};
pub use host::{
    ClientCtl, ClientSpec, Ctl, HostScript, Script, ServerCtl, ServerSpec, CLIENT_PORT, SERVER_PORT,
};
pub use middlebox::{Attack, MiddleboxConfig, Route};
pub use relay::{EmitFrom, Heard, PeerHost, RelayCtl, RelaySpec, Segment, MESH_PORT};
pub use sim::{NetAction, SimError, Simulation};
pub use spoof::{is_spoofed, spoofed_source};
pub use trace::{
    DatagramKind, DatagramRecord, Fate, HostEvent, ReceiveOutcome, ReceiveRecord, Record, Trace,
};
pub use trace_v1::{
    Capture, HostRole, NoteKind, TraceHeader, TraceHost, WireCopy, TRACE_FORMAT, TRACE_VERSION,
};
