//! Testing only: sessions installed without a handshake, for `testing::established`.
//!
//! Compiled only with the `testing` feature (or in this crate's tests). Each method puts the
//! client where an accepted server nonce (suites 1 and 2) or response (suite 3) would have,
//! through the same code those call, with keys the caller chose, so that a fuzzer reaches
//! application parsing without paying for key agreement on every input.

use core::net::SocketAddr;

use super::Client;
use crate::crypto::SecretBoxKey;
use crate::time::Instant;
use crate::wire::Setup;

impl Client {
    /// Establishes a suite 1 or 2 session with the server at `from` under the S>C key `rx`.
    ///
    /// The session stays unconfirmed until an op 7 with `session_id` arrives from `from`, as
    /// after a real handshake.
    pub(crate) fn danger_assume_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rx: SecretBoxKey,
        session_id: [u8; 16],
    ) {
        self.advance(now);
        // Resent only while unconfirmed; an op 7 answers it, so its content does not matter.
        let client_info = Setup::SessionEstablished { session_id };
        self.on_established(now, from, rx, session_id, client_info);
    }
}
