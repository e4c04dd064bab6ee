//! Segmented messages (ours, `docs/PROTOCOL.md` §9.7): opcodes 33 (segment), 34 (ACK ranges)
//! and 35 (transfer refused).
//!
//! A plaintext too large for one datagram (opcode 1, 4 or 5 with its payload) is cut into
//! segments, each a reliable exchange of its own. The receiver acknowledges many segments at
//! once with opcode 34, and refuses a whole transfer with opcode 35. The codecs here check
//! lengths only; whether a segment agrees with the others of its transfer is the reassembly's
//! business (`features::segment`).

use super::codec::{Reader, Writer};
use super::Error;
use crate::id::Counter;

/// Bytes of a segment before its data: transfer id, total length, offset.
pub const SEGMENT_HEADER_LEN: usize = 16;

/// Bytes of one range of an ACK-ranges packet: first counter, count.
pub const ACK_RANGE_LEN: usize = 10;

/// Most ranges one ACK-ranges packet carries (its count is one byte).
pub const MAX_ACK_RANGES: usize = 255;

/// Payload of a transfer refusal: transfer id, reason.
pub(super) const REFUSED_LEN: usize = 9;

/// Names one segmented message of one sender: random (from the sender's injected RNG), so
/// that a transfer id is not reused across the sender's restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

/// Op 33: `data` is the plaintext's bytes `offset..offset + data.len()` of a transfer whose
/// whole plaintext is `total` bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The transfer this segment belongs to.
    pub transfer: TransferId,
    /// Length of the whole plaintext (opcode included).
    pub total: u32,
    /// Where `data` starts in the plaintext.
    pub offset: u32,
    /// The bytes.
    pub data: &'a [u8],
}

impl<'a> Segment<'a> {
    pub(super) fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(payload);
        Ok(Segment {
            transfer: TransferId(r.u64()?),
            total: r.u32()?,
            offset: r.u32()?,
            data: r.rest(),
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        self.data.len().saturating_add(SEGMENT_HEADER_LEN)
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.transfer.0)?;
        w.u32(self.total)?;
        w.u32(self.offset)?;
        w.put(self.data)
    }
}

/// Op 34: acknowledges every counter of each range `first..first + count`, borrowed as the
/// wire bytes (`u8 n`, then `n` × (`u64 first`, `u16 count`)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckRanges<'a> {
    raw: &'a [u8],
}

impl<'a> AckRanges<'a> {
    /// The ranges in `raw` (the payload after the opcode).
    ///
    /// # Errors
    /// [`Error::Truncated`] for an empty payload, [`Error::BadLength`] unless it is exactly
    /// `1 + n × 10` bytes with `n ≥ 1`.
    pub fn parse(raw: &'a [u8]) -> Result<Self, Error> {
        let (&n, ranges) = raw.split_first().ok_or(Error::Truncated)?;
        let expected = usize::from(n) * ACK_RANGE_LEN;
        if n == 0 || ranges.len() != expected {
            return Err(Error::BadLength {
                expected: expected.max(ACK_RANGE_LEN) + 1,
                actual: raw.len(),
            });
        }
        Ok(AckRanges { raw })
    }

    /// Writes `ranges` (1 to [`MAX_ACK_RANGES`]) into `out` in wire form and borrows them.
    ///
    /// # Errors
    /// [`Error::BadLength`] for no ranges or too many; [`Error::BufferTooSmall`] if `out` is
    /// shorter than `1 + 10 × ranges.len()`.
    pub fn build(ranges: &[(Counter, u16)], out: &'a mut [u8]) -> Result<Self, Error> {
        let n = u8::try_from(ranges.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or(Error::BadLength {
                expected: MAX_ACK_RANGES,
                actual: ranges.len(),
            })?;
        let len = 1 + ranges.len() * ACK_RANGE_LEN;
        let out = out.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut w = Writer::new(out);
        w.u8(n)?;
        for (first, count) in ranges {
            w.u64(first.0)?;
            w.u16(*count)?;
        }
        Ok(AckRanges { raw: out })
    }

    /// The ranges, as (first counter, count).
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u16)> + 'a {
        self.raw
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(ACK_RANGE_LEN)
            .map(|c| {
                let mut r = Reader::new(c);
                let first = r.u64().unwrap_or(0);
                let count = r.u16().unwrap_or(0);
                (Counter(first), count)
            })
    }

    /// The wire bytes (count byte and ranges).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// The reason byte of op 35; the constants name the known ones. Any byte parses, so
/// that a newer peer's reason still ends the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefusalCode(pub u8);

impl RefusalCode {
    /// Larger than the receiver's maximum message.
    pub const TOO_LARGE: RefusalCode = RefusalCode(1);
    /// No room in the receiver's reassembly budget.
    pub const NO_ROOM: RefusalCode = RefusalCode(2);
    /// The receiver freed the partial message (no segment for its reassembly timeout).
    pub const EXPIRED: RefusalCode = RefusalCode(3);
    /// Segments disagreed: total, offset or overlapping bytes.
    pub const INCONSISTENT: RefusalCode = RefusalCode(4);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::App;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn segment_layout() {
        let app = App::Segment(Segment {
            transfer: TransferId(0x0102_0304_0506_0708),
            total: 5000,
            offset: 4000,
            data: b"ab",
        });
        let mut buf = [0u8; 19];
        assert_eq!(app.emit(&mut buf), Ok(19));
        assert_eq!(
            buf,
            [33, 8, 7, 6, 5, 4, 3, 2, 1, 0x88, 0x13, 0, 0, 0xa0, 0x0f, 0, 0, b'a', b'b']
        );
        assert_eq!(App::parse(&buf), Ok(app));
        assert_eq!(App::parse(&buf[..16]), Err(Error::Truncated));
    }

    #[test]
    fn ack_ranges_layout() {
        let mut raw = [0u8; 32];
        let ranges = AckRanges::build(&[(Counter(5), 3), (Counter(0x100), 1)], &mut raw).unwrap();
        let app = App::AckRanges(ranges);
        let mut buf = [0u8; 22];
        assert_eq!(app.emit(&mut buf), Ok(22));
        assert_eq!(
            buf,
            [34, 2, 5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
        );
        let parsed = App::parse(&buf).unwrap();
        assert_eq!(parsed, app);
        let App::AckRanges(r) = parsed else {
            panic!("not ack ranges");
        };
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![(Counter(5), 3), (Counter(0x100), 1)]
        );
        // No ranges, a count that disagrees with the length, a short range: typed errors.
        assert!(matches!(App::parse(&[34]), Err(Error::Truncated)));
        assert!(matches!(App::parse(&[34, 0]), Err(Error::BadLength { .. })));
        assert!(matches!(
            App::parse(&buf[..21]),
            Err(Error::BadLength { .. })
        ));
        assert!(AckRanges::build(&[], &mut raw).is_err());
        assert_eq!(
            AckRanges::build(&[(Counter(1), 1); 4], &mut raw),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn refusal_layout() {
        let app = App::TransferRefused {
            transfer: TransferId(9),
            reason: RefusalCode::NO_ROOM,
        };
        let mut buf = [0u8; 10];
        assert_eq!(app.emit(&mut buf), Ok(10));
        assert_eq!(buf, [35, 9, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(App::parse(&buf), Ok(app));
        assert!(matches!(
            App::parse(&buf[..9]),
            Err(Error::BadLength { .. })
        ));
        let mut long = vec![0u8; 11];
        long[..10].copy_from_slice(&buf);
        assert!(matches!(App::parse(&long), Err(Error::BadLength { .. })));
    }
}
