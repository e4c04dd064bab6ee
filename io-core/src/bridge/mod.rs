//! The MQTT bridge's pure half (issue 21, `docs/BRIDGE.md`): what needs no broker and no
//! socket, so that it is tested here with quickcheck and the runtime in `pavillion-std`
//! only drives it.

pub mod dedupe;
pub mod election;
pub mod registers;
pub mod rpc;
