//! Op 36, Ordered Message (ours): a reliable message with its place in a per-target stream
//! (docs/PROTOCOL.md §3.3).
//!
//! ```text
//! offset  size  field
//!      0     1  opcode 36
//!      1     4  stream epoch (u32 LE): random per sending stream table
//!      5     8  seq (u64 LE): the message's place in its target's stream, from 1
//!     13     8  floor (u64 LE): every seq below it is resolved at the sender
//!     21     *  target \n name \n payload (as op 1)
//! ```
//!
//! The parser checks lengths and the message body only; what `seq` and `floor` may be
//! (`seq` ≥ 1, `floor` ≤ `seq` + 1) is the receiver's rule (`features::ordered`), so that a
//! value breaking it is a counted drop of its own, not a generic encoding error.

use super::app::Message;
use super::codec::{Reader, Writer};
use super::Error;

/// The fixed part of an op 36 payload (after the opcode): epoch, seq and floor.
pub const PREFIX_LEN: usize = 4 + 8 + 8;

/// Identifies one incarnation of a sender's ordered streams: a receiver that sees a new epoch
/// for a (peer, target) stream knows the old stream is over and starts afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamEpoch(pub u32);

/// A place in an ordered stream; the first message of a target is 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderedSeq(pub u64);

/// A parsed op 36 payload, borrowing from the plaintext.
///
/// A packet whose `floor` is `seq + 1` is a *floor announcement*: the sender has resolved
/// `seq` and everything below it, and the message it carries (target, empty name, empty
/// payload) is never delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderedMessage<'a> {
    /// The sender's stream epoch.
    pub epoch: StreamEpoch,
    /// The message's place in its target's stream.
    pub seq: OrderedSeq,
    /// Every seq below this one is delivered or abandoned by the sender.
    pub floor: OrderedSeq,
    /// Target, name and payload; the target names the stream.
    pub message: Message<'a>,
}

impl<'a> OrderedMessage<'a> {
    /// Parses the payload after the opcode byte.
    ///
    /// # Errors
    /// [`Error::Truncated`] if shorter than [`PREFIX_LEN`]; the errors of [`Message::parse`]
    /// for the body.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(payload);
        let epoch = StreamEpoch(r.u32()?);
        let seq = OrderedSeq(r.u64()?);
        let floor = OrderedSeq(r.u64()?);
        Ok(OrderedMessage {
            epoch,
            seq,
            floor,
            message: Message::parse(r.rest())?,
        })
    }

    /// Whether this packet only announces the floor (`floor == seq + 1`).
    pub fn is_announcement(&self) -> bool {
        self.seq.0.checked_add(1) == Some(self.floor.0)
    }

    /// Length of the payload after the opcode byte.
    pub fn buffer_len(&self) -> usize {
        self.message.buffer_len().saturating_add(PREFIX_LEN)
    }

    /// Refuses a target or name with `\n` (see [`Message`]).
    pub(super) fn check_names(&self) -> Result<(), Error> {
        self.message.check_names()
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u32(self.epoch.0)?;
        w.u64(self.seq.0)?;
        w.u64(self.floor.0)?;
        self.message.emit(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::App;

    #[test]
    fn layout_is_epoch_seq_floor_then_the_message() {
        let bytes = hex::decode(concat!(
            "24",               // op 36
            "04030201",         // epoch
            "0700000000000000", // seq 7
            "0500000000000000", // floor 5
            "740a6e0a7879",     // "t\nn\nxy"
        ))
        .unwrap();
        let app = App::parse(&bytes).unwrap();
        let expected = App::OrderedMessage(OrderedMessage {
            epoch: StreamEpoch(0x0102_0304),
            seq: OrderedSeq(7),
            floor: OrderedSeq(5),
            message: Message {
                target: "t",
                name: "n",
                payload: b"xy",
            },
        });
        assert_eq!(app, expected);
        assert_eq!(app.buffer_len(), bytes.len());
        let mut out = alloc::vec![0u8; bytes.len()];
        assert_eq!(app.emit(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }

    #[test]
    fn short_prefix_and_bad_bodies_are_typed() {
        let mut p = alloc::vec![36u8];
        p.resize(1 + PREFIX_LEN - 1, 0);
        assert_eq!(App::parse(&p), Err(Error::Truncated));
        p.push(0);
        assert_eq!(App::parse(&p), Err(Error::MissingSeparator));
        p.extend_from_slice(b"\xff\nn\n");
        assert_eq!(App::parse(&p), Err(Error::InvalidUtf8));
    }

    #[test]
    fn announcement_is_floor_one_past_seq() {
        let m = |seq, floor| OrderedMessage {
            epoch: StreamEpoch(1),
            seq: OrderedSeq(seq),
            floor: OrderedSeq(floor),
            message: Message {
                target: "t",
                name: "",
                payload: b"",
            },
        };
        assert!(m(4, 5).is_announcement());
        assert!(!m(4, 4).is_announcement());
        assert!(!m(u64::MAX, 0).is_announcement());
    }
}
