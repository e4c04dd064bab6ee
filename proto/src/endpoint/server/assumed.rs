//! Testing only: sessions installed without a handshake, for `testing::established`.
//!
//! Compiled only with the `testing` feature (or in this crate's tests). Each method puts the
//! server where a completed handshake would have: it goes through the same code that a verified
//! client-info or a confirmed suite 3 handshake calls, with keys the caller chose, so that a
//! fuzzer reaches application parsing without paying for key agreement on every input.

use core::net::SocketAddr;

use super::Server;
use crate::crypto::noise::ChaChaKey;
use crate::crypto::SecretBoxKey;
use crate::handshake::SessionKeys;
use crate::id::{ClientId, Counter, PeerId};
use crate::time::Instant;
use crate::wire::noise::SessionIndex;

/// A suite 1 or 2 session's keys and counters, as a client-info would have carried them.
pub(crate) struct AssumedReference {
    pub(crate) client_id: ClientId,
    pub(crate) peer: PeerId,
    pub(crate) client_to_server: SecretBoxKey,
    pub(crate) server_to_client: SecretBoxKey,
    /// The server accepts the client's counters above this one.
    pub(crate) client_counter: Counter,
    pub(crate) session_id: [u8; 16],
}

/// A suite 3 session's keys and indices, as a handshake would have agreed them.
pub(crate) struct AssumedNoise {
    pub(crate) client_id: ClientId,
    pub(crate) peer: PeerId,
    /// The index the client puts on packets to us.
    pub(crate) local: SessionIndex,
    /// The index we put on packets to the client.
    pub(crate) remote: SessionIndex,
    /// Seals our packets (S>C).
    pub(crate) send: ChaChaKey,
    /// Opens the client's packets (C>S).
    pub(crate) recv: ChaChaKey,
    /// The client process's epoch.
    pub(crate) epoch: u64,
}

impl Server {
    /// Establishes a suite 1 or 2 session with the client at `from` (queues op 7 to it and a
    /// `Connected` event, as a verified client-info does).
    pub(crate) fn danger_assume_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        s: AssumedReference,
    ) {
        self.advance(now);
        let keys = SessionKeys::danger_assumed(
            s.client_to_server,
            s.server_to_client,
            s.client_counter,
            s.session_id,
            s.peer,
        );
        self.establish(now, from, s.client_id, keys);
    }
}
