//! The pure half of `pav bridge` (Pavillion ↔ MQTT): what has no MQTT connection and no socket
//! in it, so that it is tested without a broker.
//!
//! - [`config`]: the bridge's TOML file, decoded and checked (every error names the key and
//!   the line);
//! - [`topic`]: topic templates (`{prefix}/{site}/{client}/{target}/{name}`), the escaping that
//!   keeps MQTT's wildcards and NUL out of a topic made from Pavillion names, and filter
//!   matching for subscriptions;
//! - [`receipts`]: whether a broker publish reached every Pavillion receiver (a group's
//!   servers included) over the attempts to send it.
//!
//! The runtime (the MQTT connection, the two directions, presence) is `pavillion_std::bridge`.

pub mod config;
pub mod receipts;
pub mod topic;
// RPC, registers and several bridges for one site (helper F).
pub mod dedupe;
pub mod election;
pub mod registers;
pub mod rpc;
