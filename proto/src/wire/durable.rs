//! Op 37, Durable Message (ours): a reliable message with an end-to-end id that survives
//! retries, re-handshakes and reboots of either side (docs/PROTOCOL.md §16).
//!
//! ```text
//! offset  size  field
//!      0     1  opcode 37
//!      1     8  origin (u64 LE): the sender's durable identity, drawn once and stored
//!      9     8  seq (u64 LE): the message's place in the origin's sequence, from 1, never reused
//!     17     8  floor (u64 LE): every seq below it, to this receiver, is resolved at the sender
//!     25     *  target \n name \n payload (as op 1)
//! ```
//!
//! The parser checks lengths and the body only; what `seq` and `floor` may be (`seq` ≥ 1,
//! `floor` ≤ `seq` + 1) is the receiver's rule (`features::durable`), counted as a drop of
//! its own.

use super::app::Message;
use super::codec::{Reader, Writer};
use super::Error;
use crate::features::durable::{DurableSeq, OriginId};

/// The fixed part of an op 37 payload (after the opcode): origin, seq and floor.
pub const PREFIX_LEN: usize = 8 + 8 + 8;

/// A parsed op 37 payload, borrowing from the plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableMessage<'a> {
    /// The sender's durable identity.
    pub origin: OriginId,
    /// The message's place in the origin's sequence.
    pub seq: DurableSeq,
    /// Every seq below this one, sent to this receiver, is acknowledged or cancelled.
    pub floor: DurableSeq,
    /// Target, name and payload.
    pub message: Message<'a>,
}

impl<'a> DurableMessage<'a> {
    /// Parses the payload after the opcode byte.
    ///
    /// # Errors
    /// [`Error::Truncated`] if shorter than [`PREFIX_LEN`]; the errors of [`Message::parse`]
    /// for the body.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(payload);
        let origin = OriginId(r.u64()?);
        let seq = DurableSeq(r.u64()?);
        let floor = DurableSeq(r.u64()?);
        let message = Message::parse(r.rest())?;
        Ok(DurableMessage {
            origin,
            seq,
            floor,
            message,
        })
    }

    /// Bytes of the payload after the opcode.
    pub fn buffer_len(&self) -> usize {
        self.message.buffer_len().saturating_add(PREFIX_LEN)
    }

    /// Refuses a target or name with `\n` (see [`Message`]).
    pub(super) fn check_names(&self) -> Result<(), Error> {
        self.message.check_names()
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.origin.0)?;
        w.u64(self.seq.0)?;
        w.u64(self.floor.0)?;
        self.message.emit(w)
    }
}
