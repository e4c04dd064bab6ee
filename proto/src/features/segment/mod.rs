//! Segmented messages (opcodes 33, 34 and 35, `docs/PROTOCOL.md` §9.7): a reliable message,
//! call or answer whose plaintext does not fit one datagram travels as segments, and is
//! dispatched whole at the receiver as if it had arrived in one packet.
//!
//! - [`send`]: the sender's transfers, fed lazily into the peer's outbox as ordinary reliable
//!   exchanges (one per segment, internal: no outcome event of their own), so that each
//!   segment is retransmitted alone, keeps its counter, and is windowed like any message.
//!   A transfer ends when every segment is acknowledged (`Delivered`), at its deadline
//!   (`TimedOut`, or `Delivered` naming who got it whole), or on op 35 (`Failed{Refused}`).
//! - [`reassembly`]: the receiver's partial messages under a per-peer and a total budget,
//!   the checks every segment passes, expiry, the recently finished transfers, and the ACKs
//!   owed for segments, which go out coalesced as op 34 when the packet is encoded.
//!
//! What the roles hand in and get back: a role parses op 33 and calls
//! [`Reassembly::on_segment`] (or [`Reassembly::on_duplicate`] for a copy), acknowledges what
//! it accepted through [`Reassembly::owe_ack`], sends op 35 for a refusal, and dispatches a
//! completed plaintext through the same per-opcode handling as a one-datagram packet (ops
//! 1, 4 and 5). It turns op 34 into one ACK per counter for its outbox, hands completed and
//! expired segments to [`Transfers`], and op 35 ends a transfer. Timers: the reassembly
//! expiry and the transfers' deadlines share one timer kind per role (`Segments`).
//! Events (built by the roles): `Progress`, and the outcomes of messages and calls.
//!
//! RPC: a call whose arguments do not fit is a segmented op 4 plaintext. The segment at
//! offset 0 stands for the call: it is an outbox exchange answered by the response (op 5)
//! quoting its counter, not by an ACK, so it is retransmitted until the answer comes, as a
//! one-datagram call is. The server runs the call when the plaintext is whole, under the
//! counter of that segment, so its answer cache makes a retried segmented call run at most
//! once. An answer that does not fit is sent back as a segmented op 5 plaintext (an internal
//! transfer); while it is under way, a copy of the call's first segment is only
//! re-acknowledged.

pub(crate) mod reassembly;
pub(crate) mod send;

pub(crate) use reassembly::{Accepted, Budget, Reassembly};
pub(crate) use send::{End, Kind, Transfer, Transfers};

use crate::endpoint::{Limits, TransferRefusal};
use alloc::vec::Vec;

use crate::id::Counter;
use crate::time::Instant;
use crate::wire::segment::{RefusalCode, SEGMENT_HEADER_LEN};
use crate::wire::MAX_DATAGRAM;

/// Most segments of one transfer in its outbox (and so in flight) at once. A window's burst
/// (16 × 4 KB = 64 KB) must fit the receiver's socket buffer beside other traffic: through
/// `io-std` on loopback, a 1 MB message with 64 in flight had about a quarter of its segments
/// dropped by the kernel and retransmitted, with 32 a few, with 16 none, and went faster.
pub(crate) const SEGMENT_WINDOW: usize = 16;

/// Data bytes of one segment in a datagram that adds `overhead` bytes around its plaintext
/// (the session overhead, or the suite 3 group overhead): the rest after the opcode and the
/// segment header.
pub(crate) const fn segment_len(overhead: usize) -> usize {
    MAX_DATAGRAM - overhead - 1 - SEGMENT_HEADER_LEN
}

/// The receiver's budget from the role's limits.
pub(crate) fn budget(limits: &Limits) -> Budget {
    Budget {
        max_message: limits.max_message(),
        per_peer: limits.reassembly_per_peer,
        total: limits.reassembly_total,
        timeout: limits.reassembly_timeout,
    }
}

/// Op 35's reason byte for a refusal.
pub(crate) fn code(r: TransferRefusal) -> RefusalCode {
    match r {
        TransferRefusal::TooLarge => RefusalCode::TOO_LARGE,
        TransferRefusal::NoRoom => RefusalCode::NO_ROOM,
        TransferRefusal::Expired => RefusalCode::EXPIRED,
        TransferRefusal::Inconsistent => RefusalCode::INCONSISTENT,
    }
}

/// The refusal an op 35 reason byte names; an unknown byte (a newer peer's reason) counts as
/// `Inconsistent`, which ends the transfer all the same.
pub(crate) fn refusal(c: RefusalCode) -> TransferRefusal {
    match c {
        RefusalCode::TOO_LARGE => TransferRefusal::TooLarge,
        RefusalCode::NO_ROOM => TransferRefusal::NoRoom,
        RefusalCode::EXPIRED => TransferRefusal::Expired,
        _ => TransferRefusal::Inconsistent,
    }
}

/// A role's segmented-message state: what it sends and what it reassembles.
#[derive(Debug)]
pub(crate) struct Segments {
    pub(crate) transfers: Transfers,
    pub(crate) reassembly: Reassembly,
    /// Reused by op 34's handling for the counters it acknowledges, so that an ACK of a
    /// window of segments does not allocate.
    pub(crate) acked: Vec<Counter>,
}

impl Segments {
    pub(crate) fn new(limits: &Limits) -> Self {
        Segments {
            transfers: Transfers::default(),
            reassembly: Reassembly::new(budget(limits)),
            acked: Vec::new(),
        }
    }

    /// The `Segments` timer of either role: the next partial message to free or transfer
    /// deadline.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let partials = self.reassembly.next_expiry();
        let transfers = self.transfers.earliest_deadline();
        partials.into_iter().chain(transfers).min()
    }
}
