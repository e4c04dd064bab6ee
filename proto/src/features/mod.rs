//! Application features built on sessions: typed device status and remote clock estimation.
//!
//! RPC, subscriptions and keepalives live in the endpoints, because they drive the outbox; what
//! is here is pure arithmetic over values the endpoints hand in.

pub(crate) mod pubsub;
pub(crate) mod rpc;
pub mod status;
pub mod timesync;
