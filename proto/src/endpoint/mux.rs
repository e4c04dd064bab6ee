//! Demultiplexing of one UDP socket shared by a suite 3 server and several suite 3 clients
//! (the relay's mesh, a member's fleet socket): each embedded endpoint owns the top byte of
//! its session indices, so the receiver index of a packet names its endpoint.
//!
//! A datagram not starting with `PvS3` is [`Route::Drop`]; type 1 (an initiation) goes to
//! the server; types 2, 3 and 4 go by the top byte of their receiver index (0 the server, k
//! the client whose prefix is k); type 5 (unknown index) to the client whose peer address is
//! the source; anything else (group packets) is dropped (`docs/PROTOCOL.md` §14.1).

use crate::wire::noise::NOISE_MAGIC;

const TYPE_INITIATION: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
const TYPE_COOKIE: u8 = 3;
const TYPE_DATA: u8 = 4;
const TYPE_UNKNOWN_INDEX: u8 = 5;

/// Which embedded endpoint a datagram belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The server (index prefix 0).
    Server,
    /// The client whose index prefix is this byte (1..=255).
    Client(u8),
    /// The client whose peer address is the datagram's source.
    Source,
    /// None: not suite 3, or a packet no embedded endpoint takes.
    Drop,
}

/// Where a received datagram goes.
pub(crate) fn route(datagram: &[u8]) -> Route {
    if datagram.get(..4) != Some(&NOISE_MAGIC[..]) {
        return Route::Drop;
    }
    // The receiver index is little endian: its top byte is its last.
    let top = |at: usize| match datagram.get(at + 3) {
        Some(0) | None => Route::Server,
        Some(k) => Route::Client(*k),
    };
    match datagram.get(4) {
        Some(&TYPE_INITIATION) => Route::Server,
        Some(&TYPE_RESPONSE) => top(9),
        Some(&TYPE_COOKIE) | Some(&TYPE_DATA) => top(5),
        Some(&TYPE_UNKNOWN_INDEX) => Route::Source,
        _ => Route::Drop,
    }
}
