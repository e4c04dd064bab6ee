//! The server's per-client state: one authenticated session and what the server keeps for
//! it (outbox, answer cache, allowance for replies to duplicates). Keys, the replay window and
//! liveness are the shared [`Session`]'s; this adds only what the server role needs.

use crate::features::rpc;
use crate::id::{ClientId, PeerId};
use crate::reliability::rtt::RttEstimator;
use crate::reliability::Outbox;
use crate::session::{Session, TxKey};
use crate::time::Instant;

use super::{duplicates, Server};

/// The reference server's per-client counter base: `2^63 ..= 2^63 + 10^9`.
const COUNTER_BASE: (u64, u64) = (1 << 63, (1 << 63) + 1_000_000_000);

/// One authenticated client.
#[derive(Debug)]
pub(super) struct ServerSession {
    pub(super) peer: PeerId,
    pub(super) client_id: ClientId,
    /// Distinguishes this session from a later one at the same address, for call handles.
    pub(super) generation: u64,
    /// C>S keys, our window over the client's counters, liveness.
    pub(super) session: Session,
    /// S>C key (and, for suite 3, the client's index) and our counter under it.
    pub(super) tx_key: TxKey,
    pub(super) tx_counter: u64,
    pub(super) session_id: [u8; 16],
    pub(super) rtt: RttEstimator,
    pub(super) outbox: Outbox,
    /// Calls handed to the application and answers kept for retries (see
    /// [`features::rpc`](crate::features::rpc)).
    pub(super) calls: rpc::Calls,
    /// What is left of the allowance for replies to duplicates (see `duplicates`).
    pub(super) duplicates: duplicates::Allowance,
}

impl ServerSession {
    /// The one place a session is made, whatever the suite: `session` holds the keys the
    /// handshake gave, `tx_key` seals our packets from a fresh counter.
    pub(super) fn new(
        server: &mut Server,
        now: Instant,
        session: Session,
        who: Who,
        tx_key: TxKey,
    ) -> Self {
        let limits = &server.config.limits;
        let s = ServerSession {
            peer: who.peer,
            client_id: who.client_id,
            generation: server.next_generation,
            session,
            tx_key,
            tx_counter: server.rng.range_inclusive(COUNTER_BASE.0, COUNTER_BASE.1),
            session_id: who.session_id,
            rtt: RttEstimator::new(limits.rtt),
            outbox: Outbox::new(limits.max_queued, limits.max_in_flight),
            calls: rpc::Calls::default(),
            duplicates: duplicates::Allowance::new(now),
        };
        server.next_generation += 1;
        s
    }
}

/// Liveness and keys are the session's; the role's code reads them through the session.
impl core::ops::Deref for ServerSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl core::ops::DerefMut for ServerSession {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// Who a new session is with, as its handshake established.
#[derive(Clone, Copy, Debug)]
pub(super) struct Who {
    pub(super) peer: PeerId,
    pub(super) client_id: ClientId,
    /// Suites 1 and 2 (zeros for suite 3).
    pub(super) session_id: [u8; 16],
}

// The inline size of each part of an idle session on a server, in bytes, for the
// breakdown that `benches/src/memory.rs` prints beside the measured heap bytes per session
// (`compare --memory-only`). Heap that a part holds besides (B-tree nodes, boxes) shows only in
// the measurement; the parts that hold any are named here.
#[cfg(any(test, feature = "testing"))]
impl Server {
    /// The inline size of each part of an idle session, in bytes (see the comment above).
    pub fn idle_session_layout() -> alloc::vec::Vec<(&'static str, usize)> {
        use crate::reliability::rtt::RttEstimator;
        use crate::session::keys::Rotation;
        use crate::session::replay::ReplayWindow;
        use core::mem::size_of;
        use core::net::SocketAddr;
        alloc::vec![
            (
                "ServerSession (boxed, every suite)",
                size_of::<ServerSession>()
            ),
            (
                "  .peer + .client_id",
                size_of::<PeerId>() + size_of::<ClientId>()
            ),
            (
                "  .session (Session: keys, window, liveness)",
                size_of::<Session>()
            ),
            ("    of which the replay window", size_of::<ReplayWindow>()),
            ("  .tx_key", size_of::<TxKey>()),
            ("  .rtt", size_of::<RttEstimator>()),
            ("  .outbox (empty: no heap)", size_of::<Outbox>()),
            (
                "  .calls (boxed while any call is held)",
                size_of::<rpc::Calls>()
            ),
            ("  .duplicates", size_of::<duplicates::Allowance>()),
            ("Rotation (boxed, suite 3 only)", size_of::<Rotation>()),
            (
                "session table entry (IPv4 address, box), in B-tree nodes",
                size_of::<core::net::SocketAddrV4>() + size_of::<usize>(),
            ),
            (
                "  (an IPv6 address's entry)",
                size_of::<SocketAddr>() + size_of::<usize>(),
            ),
            (
                "suite 3 index entry (index, IPv4 address), in B-tree nodes",
                size_of::<u32>() + size_of::<core::net::SocketAddrV4>(),
            ),
            (
                "suite 3 peer entry (fingerprint, index), in B-tree nodes",
                2 * size_of::<u32>(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    /// Every idle session pays these sizes (the `compare` memory rows, held to 512 B per
    /// session in all by `benches/tests/memory.rs`). Suite 3 multicast keeps its keys in the
    /// server's own sender table and rarely-held keys are boxed, so neither struct grows with
    /// features; the replay window is 32 B until a gap falls below its top 64 counters, the
    /// RTT estimator packs its configuration, and the call cache is boxed only while it holds
    /// something (568 B before these three). The outbox's exact timer minimums and counters in
    /// flight (`reliability::earliest`) make a deadline query O(1) for 8 B more. Issue 19's
    /// last idle-session step left the figure at 376: the window's run skipped before its
    /// first counter (which spares suite 3 the ring) fits in the window's tag word, and the
    /// session table's 6-byte IPv4 keys (`addr_map`) are outside this struct.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn idle_session_state_stays_small() {
        let size = core::mem::size_of::<super::ServerSession>();
        assert!(size <= 376, "{size} B");
        assert!(core::mem::size_of::<crate::session::keys::Rotation>() <= 48);
    }
}
