//! `pav bridge`: Pavillion ↔ MQTT (issue 21). The configuration and topic templates are pure
//! and live in `pavillion_io::bridge`; this is the runtime.
//!
//! - [`mqtt`]: the broker connection (publish completions on PUBACK, manual acks of received
//!   publishes, reconnection);
//! - `rpc`, `registers`, `dedupe`: RPC over MQTT 5, retained register values, several bridges
//!   for one site.
//!
//! See `docs/BRIDGE.md` for what is bridged and the guarantees.

pub mod dedupe;
mod inbound;
pub mod mqtt;
mod outbound;
pub mod presence;
pub mod registers;
pub mod rpc;
mod run;

pub use run::{peer_name, Bridge, Context, Counters, UpstreamLink};

pub use pavillion_io::bridge::{config, topic};
