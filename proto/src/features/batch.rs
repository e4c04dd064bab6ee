//! Batching on the wire, suite 3 only (`docs/PROTOCOL.md` §17): several reliable messages
//! share one counter and travel in one op 38 datagram, with the ACKs and unreliable messages
//! owed to the same peer riding along.
//!
//! The rules this module keeps:
//! - Only plain reliable messages (op 1) join a run; calls, register requests, segments,
//!   ordered and durable messages, subscriptions and group keys travel alone, because their
//!   answers quote the counter or follow their own acknowledgement rules.
//! - A run's entries share the counter of its first, so one ACK completes them all and a
//!   retransmission resends the whole run under that counter (the outbox keeps the run;
//!   entries whose deadline passed drop out of it).
//! - A run never outgrows one datagram: at most [`MAX_RUN_FRAMES`] frames, and room is kept
//!   for one op 39 frame of riders.
//!
//! The endpoint asks [`Run::join`] at each first transmission (`endpoint/batch.rs`); the
//! encoder reads the run back from the outbox when it seals the datagram.

use crate::id::Counter;
use crate::reliability::Payload;
use crate::wire::{self, batch};

/// The most reliable frames of one run: a batch's frames less one for the ACK rider.
pub(crate) const MAX_RUN_FRAMES: usize = batch::MAX_FRAMES - 1;

/// The plaintext a batch may fill: one datagram less the session overhead, less room for an
/// op 39 rider.
pub(crate) const RUN_BUDGET: usize =
    wire::MAX_DATAGRAM - wire::SESSION_OVERHEAD - batch::FRAME_HEADER - batch::MAX_ACKS_LEN;

/// The frame length of a payload that may join a run, or `None` if it must travel alone.
pub(crate) fn frame_len(payload: &Payload) -> Option<usize> {
    match payload {
        // The keepalive (the empty message) stays alone: it is the reference's and costs
        // nothing to keep byte-identical. The length comes from the stored lengths: this
        // runs several times per message sent, and building the message's `App` would check
        // its target and name at each (issue 19).
        Payload::Message(m) if !m.is_unnamed() => Some(m.app_len()),
        _ => None,
    }
}

/// The open run: which counter its entries share and how full it is. A run stays open while
/// its datagram waits in the transmit queue, so messages sent one call at a time still join
/// it; sealing the datagram closes it ([`Run::sealed`]).
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// The peer whose run is open (a server has one open run at a time, whoever it is to).
    peer: Option<core::net::SocketAddr>,
    open: Option<(Counter, usize, usize)>,
    /// The counter last queued for retransmission in this pump.
    resent: Option<Counter>,
}

impl Run {
    /// The counter a first transmission of `len` plaintext bytes may share, if the open run
    /// has room for it; otherwise the run is closed and `None` says "take a new counter".
    pub(crate) fn join(&mut self, len: usize) -> Option<Counter> {
        let (c, frames, bytes) = self.open.as_mut()?;
        let grown = *bytes + batch::FRAME_HEADER + len;
        if *frames < MAX_RUN_FRAMES && grown <= RUN_BUDGET {
            *frames += 1;
            *bytes = grown;
            return Some(*c);
        }
        self.open = None;
        None
    }

    /// Opens a run at counter `c` with its first entry of `len` bytes (`None`: that entry
    /// travels alone and closes the run).
    pub(crate) fn start(&mut self, c: Counter, len: Option<usize>) {
        self.open = len.map(|l| (c, 1, batch::BATCH_HEADER + batch::FRAME_HEADER + l));
    }

    /// Closes the open run: the next entry waits for a counter of its own.
    pub(crate) fn close(&mut self) {
        self.open = None;
    }

    /// Starts a pump for `peer`: a run open for another peer is closed, and retransmissions
    /// are tracked afresh.
    pub(crate) fn pump(&mut self, peer: core::net::SocketAddr) {
        if self.peer != Some(peer) {
            self.open = None;
            self.peer = Some(peer);
        }
        self.resent = None;
    }

    /// The datagram of the run under `c` is being sealed: nothing may join it any more.
    pub(crate) fn sealed(&mut self, c: Counter) {
        if self.open.is_some_and(|(open, _, _)| open == c) {
            self.open = None;
        }
    }

    /// Whether the run under `c` is already queued for retransmission in this pump (then
    /// this entry goes with it); records it otherwise. Due retransmissions come in counter
    /// order, so a run's entries follow one another.
    pub(crate) fn retransmitted(&mut self, c: Counter) -> bool {
        self.resent.replace(c) == Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::OwnedMessage;
    use crate::wire::Message;
    use alloc::string::String;
    use alloc::vec::Vec;

    quickcheck::quickcheck! {
        /// Any message: it reads back as the parts it was made of, the frame length taken
        /// from the stored lengths is the length of the op 1 plaintext it emits (and of its
        /// op 3 form, which unreliable riders are measured by), and only the keepalive's form
        /// stays out of runs.
        fn the_frame_length_is_the_emitted_length(target: String, name: String, payload: Vec<u8>) -> bool {
            let m = OwnedMessage::new(&target, &name, &payload);
            let app = m.as_app(true);
            let mut buf = alloc::vec![0; app.buffer_len()];
            // A target or name holding a separator cannot be emitted; its length still counts.
            let emitted = app.emit(&mut buf).unwrap_or(app.buffer_len());
            let len = frame_len(&Payload::Message(m.clone()));
            let parts = Message { target: &target, name: &name, payload: &payload };
            m.as_message() == parts
                && m.app_len() == emitted
                && m.app_len() == m.as_app(false).buffer_len()
                && len == (!(target.is_empty() && name.is_empty())).then_some(emitted)
                // Two empty strings are rare among random ones: the keepalive's form, always.
                && frame_len(&Payload::Message(OwnedMessage::new("", "", &payload))).is_none()
        }
    }

    #[test]
    fn a_run_stops_at_its_frame_and_byte_bounds() {
        let mut run = Run::default();
        assert_eq!(run.join(10), None, "no run open");
        run.start(Counter(5), Some(10));
        for _ in 1..MAX_RUN_FRAMES {
            assert_eq!(run.join(10), Some(Counter(5)));
        }
        assert_eq!(run.join(10), None, "frame bound");
        assert_eq!(run.join(10), None, "closed");
        run.start(Counter(6), Some(2000));
        assert_eq!(run.join(2000), None, "byte bound: two of 2000 do not fit");
        run.start(Counter(7), None);
        assert_eq!(run.join(1), None, "an entry alone closes the run");
    }
}
