//! Panic-free cursors over input and output byte slices.
//!
//! Every field access in the wire module goes through these two types, so the "never index
//! without a length check" rule is enforced in one place: a short input becomes
//! [`Error::Truncated`] and a short output buffer becomes [`Error::BufferTooSmall`].

use super::Error;

/// A read cursor that hands out little-endian fields from the front of a slice.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Takes the next `N` bytes as a borrowed array.
    pub(super) fn array_ref<const N: usize>(&mut self) -> Result<&'a [u8; N], Error> {
        let (head, tail) = self.rest.split_first_chunk::<N>().ok_or(Error::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an owned array.
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.array_ref().copied()
    }

    /// Takes one byte.
    pub(super) fn u8(&mut self) -> Result<u8, Error> {
        self.array::<1>().map(|[b]| b)
    }

    /// Takes one byte as a two's-complement signed value.
    pub(super) fn i8(&mut self) -> Result<i8, Error> {
        self.array().map(i8::from_le_bytes)
    }

    /// Takes a little-endian u16.
    pub(super) fn u16(&mut self) -> Result<u16, Error> {
        self.array().map(u16::from_le_bytes)
    }

    /// Takes a little-endian u32.
    pub(super) fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_le_bytes)
    }

    /// Takes a little-endian u64.
    pub(super) fn u64(&mut self) -> Result<u64, Error> {
        self.array().map(u64::from_le_bytes)
    }

    /// Takes a little-endian i64.
    pub(super) fn i64(&mut self) -> Result<i64, Error> {
        self.array().map(i64::from_le_bytes)
    }

    /// Number of bytes not yet read.
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Everything not yet read.
    pub(super) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// A write cursor that appends fields to the front of a caller-supplied buffer.
///
/// Once a write fails the writer is left empty, so every later write fails too: a caller
/// that forgets one `?` still cannot produce a datagram with a hole in it.
#[derive(Debug)]
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
    written: usize,
}

impl<'a> Writer<'a> {
    /// Starts writing at the beginning of `buf`.
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, written: 0 }
    }

    /// Appends `src`.
    pub(super) fn put(&mut self, src: &[u8]) -> Result<(), Error> {
        let buf = core::mem::take(&mut self.buf);
        let (head, tail) = buf
            .split_at_mut_checked(src.len())
            .ok_or(Error::BufferTooSmall)?;
        // Cannot panic: `split_at_mut_checked` made `head` exactly `src.len()` long.
        head.copy_from_slice(src);
        self.buf = tail;
        self.written = self.written.saturating_add(src.len());
        Ok(())
    }

    /// Appends one byte.
    pub(super) fn u8(&mut self, v: u8) -> Result<(), Error> {
        self.put(&[v])
    }

    /// Appends a little-endian u16.
    pub(super) fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    /// Appends a little-endian u32.
    pub(super) fn u32(&mut self, v: u32) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    /// Appends a little-endian u64.
    pub(super) fn u64(&mut self, v: u64) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    /// Appends a little-endian i64.
    pub(super) fn i64(&mut self, v: i64) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    /// Appends one two's-complement signed byte.
    pub(super) fn i8(&mut self, v: i8) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    /// Number of bytes written so far.
    pub(super) fn written(&self) -> usize {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_and_keeps_position() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0201));
        assert_eq!(r.u16(), Err(Error::Truncated));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.u8(), Err(Error::Truncated));
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn writer_fails_closed() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u16(0x0201), Ok(()));
        assert_eq!(w.u16(7), Err(Error::BufferTooSmall));
        // The failed write emptied the writer, so even a write that would have fit fails.
        assert_eq!(w.u8(9), Err(Error::BufferTooSmall));
        assert_eq!(w.written(), 2);
        assert_eq!(buf, [1, 2, 0]);
    }
}
