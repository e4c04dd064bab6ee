//! Suite 3 batching (`docs/PROTOCOL.md` §17): op 38 carries several application frames under
//! one counter, op 39 acknowledges many counters at once.
//!
//! Both codecs validate the whole payload before handing anything out, so that a receiver can
//! parse first and act afterwards: a bad batch has no partial effect.

use arrayvec::ArrayVec;

use super::codec::{Reader, Writer};
use super::{App, Error};
use crate::id::Counter;

/// Op 38: a batch of frames sharing the datagram's counter.
pub const BATCH: u8 = 38;
/// Op 39: counter acknowledgement ranges.
pub const ACKS: u8 = 39;

/// The most frames one batch may carry; more is [`Error::BadBatch`].
pub const MAX_FRAMES: usize = 64;
/// The most ranges one op 39 frame may carry (the first one included).
pub const MAX_RANGES: usize = 32;
/// Flags bit 0: the sender had more acknowledgement-eliciting data queued than fitted.
pub const FLAG_MORE: u8 = 1;
/// Bytes a batch adds before its frames: opcode and flags.
pub const BATCH_HEADER: usize = 2;
/// Bytes each frame adds before its plaintext: the u16 length.
pub const FRAME_HEADER: usize = 2;
/// The longest op 39 frame (opcode included).
pub const MAX_ACKS_LEN: usize = 1 + 8 + 2 + 1 + 4 * (MAX_RANGES - 1);

/// Whether `op` may travel inside a batch: reliable and unreliable messages, ACKs and op 39.
pub fn batchable_opcode(op: u8) -> bool {
    matches!(op, 1..=3 | ACKS)
}

/// One parsed frame of a batch, or a plaintext of suite 3 that [`App`] does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Op 1, 2 or 3.
    App(App<'a>),
    /// Op 39.
    Acks(Acks),
}

impl<'a> Frame<'a> {
    /// Parses one frame's plaintext (opcode and payload), allowing only batchable opcodes.
    ///
    /// # Errors
    /// [`Error::BadBatch`] for any other opcode (a nested batch included); what the inner
    /// codec reports for a malformed payload.
    pub fn parse(plaintext: &'a [u8]) -> Result<Frame<'a>, Error> {
        match plaintext.first() {
            Some(&ACKS) => Acks::parse(plaintext).map(Frame::Acks),
            Some(&op) if batchable_opcode(op) => App::parse(plaintext).map(Frame::App),
            _ => Err(Error::BadBatch),
        }
    }

    /// Length of the frame's plaintext, opcode included.
    pub fn buffer_len(&self) -> usize {
        match self {
            Frame::App(a) => a.buffer_len(),
            Frame::Acks(a) => a.buffer_len(),
        }
    }

    fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        match self {
            Frame::App(a) => a.emit(buf),
            Frame::Acks(a) => a.emit(buf),
        }
    }
}

/// A parsed op 38 payload. Every frame was checked by [`Batch::parse`]; [`Batch::frames`]
/// hands them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Flags bit 0: a burst is under way (the receiver may delay its ACK).
    pub more: bool,
    body: &'a [u8],
    count: usize,
}

impl<'a> Batch<'a> {
    /// Parses an op 38 plaintext (opcode included) and checks every frame.
    ///
    /// # Errors
    /// [`Error::BadBatch`] for no frame, more than [`MAX_FRAMES`], a zero-length frame, a
    /// frame longer than what is left, an opcode that may not be batched, or a frame whose
    /// own codec refuses it; [`Error::Truncated`] if even the flags are missing.
    pub fn parse(plaintext: &'a [u8]) -> Result<Batch<'a>, Error> {
        check(plaintext, |_| {})
    }

    /// As [`Batch::parse`], putting the frames it parsed to check them into `frames` (emptied
    /// first), so that a receiver that acts on them parses each once; returns the `MORE` flag.
    /// The caller owns `frames` so that they are written once, where they are read.
    ///
    /// # Errors
    /// As [`Batch::parse`]; `frames` then holds the frames before the bad one.
    pub fn parse_into(
        plaintext: &'a [u8],
        frames: &mut ArrayVec<Frame<'a>, MAX_FRAMES>,
    ) -> Result<bool, Error> {
        frames.clear();
        // `check` hands out at most MAX_FRAMES frames, so every one fits.
        let batch = check(plaintext, |f| {
            let _ = frames.try_push(f);
        })?;
        Ok(batch.more)
    }

    /// How many frames the batch carries (1 to [`MAX_FRAMES`]).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a batch has at least one frame.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The frames, in order. Parsing cannot fail here: [`Batch::parse`] checked them all.
    pub fn frames(&self) -> impl Iterator<Item = Frame<'a>> + 'a {
        FrameIter { rest: self.body }.filter_map(|f| f.ok().and_then(|f| Frame::parse(f).ok()))
    }
}

/// Parses an op 38 plaintext and checks every frame, handing each to `each` in order; a
/// frame past [`MAX_FRAMES`] is refused before it is handed out.
fn check<'a>(plaintext: &'a [u8], mut each: impl FnMut(Frame<'a>)) -> Result<Batch<'a>, Error> {
    let (&op, rest) = plaintext.split_first().ok_or(Error::Truncated)?;
    if op != BATCH {
        return Err(Error::UnknownAppOpcode(op));
    }
    let (&flags, body) = rest.split_first().ok_or(Error::Truncated)?;
    let mut count = 0;
    for frame in (FrameIter { rest: body }) {
        let frame = Frame::parse(frame?).map_err(|_| Error::BadBatch)?;
        count += 1;
        if count > MAX_FRAMES {
            return Err(Error::BadBatch);
        }
        each(frame);
    }
    if count == 0 {
        return Err(Error::BadBatch);
    }
    Ok(Batch {
        more: flags & FLAG_MORE != 0,
        body,
        count,
    })
}

/// The frame plaintexts of an op 38 plaintext (opcode included), unchecked: call
/// [`Batch::parse`] first. Stops at the first malformed frame.
pub fn frame_plaintexts(plaintext: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    FrameIter {
        rest: plaintext.get(BATCH_HEADER..).unwrap_or(&[]),
    }
    .map_while(Result::ok)
}

/// Splits a batch body into frame plaintexts.
struct FrameIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<&'a [u8], Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return Some(Err(Error::BadBatch));
        };
        let len = usize::from(u16::from_le_bytes(*len));
        match tail.split_at_checked(len) {
            Some((frame, tail)) if len > 0 => {
                self.rest = tail;
                Some(Ok(frame))
            }
            _ => Some(Err(Error::BadBatch)),
        }
    }
}

/// Writes an op 38 plaintext: the flags, then each frame with its length.
///
/// # Errors
/// [`Error::BadBatch`] for no frame or more than [`MAX_FRAMES`]; [`Error::BufferTooSmall`];
/// what a frame's own `emit` reports.
pub fn emit_batch(more: bool, frames: &[Frame<'_>], buf: &mut [u8]) -> Result<usize, Error> {
    if frames.is_empty() || frames.len() > MAX_FRAMES {
        return Err(Error::BadBatch);
    }
    if buf.len() < batch_len(frames.iter().map(Frame::buffer_len)) {
        return Err(Error::BufferTooSmall);
    }
    let mut at = BATCH_HEADER;
    buf[0] = BATCH;
    buf[1] = if more { FLAG_MORE } else { 0 };
    for f in frames {
        let len = f.buffer_len();
        let len16 = u16::try_from(len).map_err(|_| Error::BadBatch)?;
        let slot = buf.get_mut(at..).ok_or(Error::BufferTooSmall)?;
        slot.get_mut(..2)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(&len16.to_le_bytes());
        f.emit(slot.get_mut(2..).ok_or(Error::BufferTooSmall)?)?;
        at += FRAME_HEADER + len;
    }
    Ok(at)
}

/// The plaintext length of a batch whose frames have the given lengths.
pub fn batch_len(frames: impl Iterator<Item = usize>) -> usize {
    frames.fold(BATCH_HEADER, |acc, l| acc.saturating_add(FRAME_HEADER + l))
}

/// One range of acknowledged counters, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterRange {
    /// The lowest counter of the range.
    pub low: Counter,
    /// The highest counter of the range.
    pub high: Counter,
}

/// Op 39: up to [`MAX_RANGES`] ranges of acknowledged counters, highest first, kept in the
/// wire's form (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acks {
    largest: u64,
    first: u16,
    n: u8,
    pairs: [(u16, u16); MAX_RANGES - 1],
}

impl Acks {
    /// Builds the frame from counters in strictly decreasing order; stops (and returns how
    /// many counters it took) when [`MAX_RANGES`] ranges are full or a gap or run does not
    /// fit a u16. `None` for no counter.
    pub fn from_descending(counters: impl IntoIterator<Item = Counter>) -> Option<(Acks, usize)> {
        let mut it = counters.into_iter().peekable();
        let largest = it.next()?.0;
        let mut acks = Acks {
            largest,
            first: 0,
            n: 0,
            pairs: [(0, 0); MAX_RANGES - 1],
        };
        let mut taken = 1;
        let (mut low, mut len) = (largest, 0u16);
        while let Some(&Counter(c)) = it.peek() {
            if c >= low {
                break; // not strictly decreasing: stop rather than misstate
            }
            if c + 1 == low && len < u16::MAX {
                len += 1;
            } else {
                // A new range: its gap is the counters skipped, less the two QUIC counts.
                let Some(gap) = low.checked_sub(c + 2) else {
                    break;
                };
                let Ok(gap) = u16::try_from(gap) else { break };
                if usize::from(acks.n) + 1 >= MAX_RANGES {
                    break;
                }
                acks.set_len(len);
                acks.pairs[usize::from(acks.n)] = (gap, 0);
                acks.n += 1;
                len = 0;
            }
            low = c;
            taken += 1;
            it.next();
        }
        acks.set_len(len);
        Some((acks, taken))
    }

    fn set_len(&mut self, len: u16) {
        match self.n {
            0 => self.first = len,
            n => self.pairs[usize::from(n) - 1].1 = len,
        }
    }

    /// Parses an op 39 plaintext (opcode included).
    ///
    /// # Errors
    /// [`Error::Truncated`]; [`Error::BadLength`] for bytes after the last range;
    /// [`Error::BadBatch`] for more than [`MAX_RANGES`] ranges or a range reaching below
    /// counter 0.
    pub fn parse(plaintext: &[u8]) -> Result<Acks, Error> {
        let (&op, payload) = plaintext.split_first().ok_or(Error::Truncated)?;
        if op != ACKS {
            return Err(Error::UnknownAppOpcode(op));
        }
        let mut r = Reader::new(payload);
        let largest = r.u64()?;
        let first = r.u16()?;
        let n = r.u8()?;
        if usize::from(n) >= MAX_RANGES {
            return Err(Error::BadBatch);
        }
        let mut pairs = [(0, 0); MAX_RANGES - 1];
        for p in pairs.iter_mut().take(usize::from(n)) {
            *p = (r.u16()?, r.u16()?);
        }
        if r.remaining() != 0 {
            let expected = 12 + 4 * usize::from(n);
            return Err(Error::BadLength {
                expected,
                actual: payload.len(),
            });
        }
        let acks = Acks {
            largest,
            first,
            n,
            pairs,
        };
        for range in acks.ranges_checked() {
            range?;
        }
        Ok(acks)
    }

    /// The ranges, highest first. Never fails after [`Acks::parse`] or
    /// [`Acks::from_descending`].
    pub fn ranges(&self) -> impl Iterator<Item = CounterRange> + '_ {
        self.ranges_checked().map_while(Result::ok)
    }

    fn ranges_checked(&self) -> impl Iterator<Item = Result<CounterRange, Error>> + '_ {
        let first = core::iter::once((None, self.first));
        let rest = self.pairs[..usize::from(self.n)]
            .iter()
            .map(|&(g, l)| (Some(g), l));
        let mut next_high = Some(self.largest);
        first.chain(rest).map(move |(gap, len)| {
            let high = match gap {
                None => next_high,
                Some(g) => next_high.and_then(|h| h.checked_sub(u64::from(g) + 1)),
            };
            let low = high.and_then(|h| h.checked_sub(u64::from(len)));
            let (Some(high), Some(low)) = (high, low) else {
                next_high = None;
                return Err(Error::BadBatch);
            };
            // Below `low` the next range starts after at least one unacknowledged counter.
            next_high = low.checked_sub(1);
            Ok(CounterRange {
                low: Counter(low),
                high: Counter(high),
            })
        })
    }

    /// How many counters the ranges cover in all.
    pub fn covered(&self) -> u64 {
        self.ranges().map(|r| r.high.0 - r.low.0 + 1).sum()
    }

    /// Length of the plaintext (opcode included).
    pub fn buffer_len(&self) -> usize {
        1 + 8 + 2 + 1 + 4 * usize::from(self.n)
    }

    /// Writes the plaintext (opcode included) and returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut w = Writer::new(buf);
        w.u8(ACKS)?;
        w.u64(self.largest)?;
        w.u16(self.first)?;
        w.u8(self.n)?;
        for &(g, l) in &self.pairs[..usize::from(self.n)] {
            w.u16(g)?;
            w.u16(l)?;
        }
        Ok(w.written())
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
