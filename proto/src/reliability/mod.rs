//! Reliability: RTT estimation and retransmission.

pub mod rtt;
