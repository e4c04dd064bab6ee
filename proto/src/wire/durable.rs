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

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use quickcheck::{Arbitrary, Gen, QuickCheck};

    use super::*;
    use crate::wire::App;

    #[test]
    fn layout_is_origin_seq_floor_then_the_message() {
        let bytes = hex::decode(concat!(
            "25",               // op 37
            "0807060504030201", // origin
            "0900000000000000", // seq 9
            "0300000000000000", // floor 3
            "740a6e0a7879",     // "t\nn\nxy"
        ))
        .unwrap();
        let app = App::parse(&bytes).unwrap();
        let expected = App::DurableMessage(DurableMessage {
            origin: OriginId(0x0102_0304_0506_0708),
            seq: DurableSeq(9),
            floor: DurableSeq(3),
            message: Message {
                target: "t",
                name: "n",
                payload: b"xy",
            },
        });
        assert_eq!(app, expected);
        assert_eq!(app.opcode(), crate::wire::app::opcode::DURABLE_MESSAGE);
        assert_eq!(app.buffer_len(), bytes.len());
        assert_eq!(1 + PREFIX_LEN + 6, bytes.len());
        let mut out = alloc::vec![0u8; bytes.len()];
        assert_eq!(app.emit(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }

    #[test]
    fn short_prefix_and_bad_bodies_are_typed() {
        let mut p = alloc::vec![37u8];
        for _ in 0..PREFIX_LEN {
            assert_eq!(App::parse(&p), Err(Error::Truncated));
            p.push(0);
        }
        assert_eq!(App::parse(&p), Err(Error::MissingSeparator));
        p.extend_from_slice(b"t\n");
        assert_eq!(App::parse(&p), Err(Error::MissingSeparator));
        p.truncate(1 + PREFIX_LEN);
        p.extend_from_slice(b"\xff\nn\n");
        assert_eq!(App::parse(&p), Err(Error::InvalidUtf8));
        p.truncate(1 + PREFIX_LEN);
        p.extend_from_slice(b"t\n\xc3\n");
        assert_eq!(App::parse(&p), Err(Error::InvalidUtf8));
    }

    #[test]
    fn a_name_with_a_newline_is_refused_and_the_buffer_untouched() {
        let app = App::DurableMessage(DurableMessage {
            origin: OriginId(1),
            seq: DurableSeq(1),
            floor: DurableSeq(1),
            message: Message {
                target: "a\nb",
                name: "n",
                payload: b"",
            },
        });
        let mut out = alloc::vec![0xaau8; 64];
        assert_eq!(app.emit(&mut out), Err(Error::InvalidName));
        assert!(out.iter().all(|&b| b == 0xaa));
        let App::DurableMessage(refused) = app else {
            unreachable!("built above")
        };
        let fine = App::DurableMessage(DurableMessage {
            message: Message {
                target: "ab",
                ..refused.message
            },
            ..refused
        });
        let mut short = alloc::vec![0u8; fine.buffer_len() - 1];
        assert_eq!(fine.emit(&mut short), Err(Error::BufferTooSmall));
    }

    /// Any op 37 value (names without `\n`, any ids, any payload).
    #[derive(Clone, Debug)]
    struct Spec {
        origin: u64,
        seq: u64,
        floor: u64,
        target: String,
        name: String,
        payload: Vec<u8>,
    }

    impl Arbitrary for Spec {
        fn arbitrary(g: &mut Gen) -> Self {
            let name = |g: &mut Gen| -> String {
                String::arbitrary(g)
                    .chars()
                    .filter(|&c| c != '\n')
                    .collect()
            };
            Spec {
                origin: u64::arbitrary(g),
                seq: u64::arbitrary(g),
                floor: u64::arbitrary(g),
                target: name(g),
                name: name(g),
                payload: Vec::arbitrary(g),
            }
        }
    }

    #[test]
    fn prop_emit_parse_round_trips_and_truncation_is_refused() {
        fn prop(s: Spec, cut: usize) -> bool {
            let app = App::DurableMessage(DurableMessage {
                origin: OriginId(s.origin),
                seq: DurableSeq(s.seq),
                floor: DurableSeq(s.floor),
                message: Message {
                    target: &s.target,
                    name: &s.name,
                    payload: &s.payload,
                },
            });
            let mut buf = alloc::vec![0u8; app.buffer_len()];
            if app.emit(&mut buf) != Ok(buf.len()) || App::parse(&buf) != Ok(app) {
                return false;
            }
            // Every cut inside the prefix, or before the second separator, is refused typed.
            let sep2 = 1 + PREFIX_LEN + s.target.len() + 1 + s.name.len();
            let cut = cut % (sep2 + 1);
            App::parse(buf.get(..cut).unwrap_or_default()).is_err()
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Spec, usize) -> bool);
    }
}
