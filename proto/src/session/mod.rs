//! Per-peer session state: the receive side of one authenticated peer, and the glue that turns a
//! typed application packet into a sealed datagram and back.
//!
//! Suites 1 and 2 identify a session only by the peer's address (nothing in the header names a
//! key), so the endpoints own the address maps; this module owns what one entry holds.

pub mod replay;

use crate::crypto::{CryptoError, SessionCipher};
use crate::id::Counter;
use crate::wire::{self, App, SessionPacket};

use replay::{Replay, ReplayWindow};

/// Why an incoming session packet was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// The counter was seen before (inside the window) and the packet authenticated.
    Duplicate,
    /// The counter is left of the replay window.
    TooOld,
    /// Authentication failed.
    Forged,
    /// The scratch buffer is smaller than the ciphertext (a datagram over the size limit).
    Oversized,
}

/// The receive half of a session: the peer's sending key and our replay window over its counters.
#[derive(Clone, Debug)]
pub(crate) struct RxSession<K> {
    pub(crate) key: K,
    pub(crate) replay: ReplayWindow,
}

impl<K: SessionCipher> RxSession<K> {
    pub(crate) fn new(key: K, floor: Counter) -> Self {
        RxSession {
            key,
            replay: ReplayWindow::new(floor),
        }
    }

    /// Authenticates and decrypts `packet` into `scratch`, then records its counter.
    ///
    /// A duplicate inside the window is still decrypted, so that the caller can re-acknowledge
    /// a reliable message whose ACK was lost; it comes back as `Err((Duplicate, Some(plain)))`.
    pub(crate) fn open<'s>(
        &mut self,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<&'s [u8], (OpenError, Option<&'s [u8]>)> {
        let verdict = self.replay.check(packet.counter);
        if verdict == Err(Replay::TooOld) {
            return Err((OpenError::TooOld, None));
        }
        let n = packet.ciphertext.len();
        let Some(buf) = scratch.get_mut(..n) else {
            return Err((OpenError::Oversized, None));
        };
        buf.copy_from_slice(packet.ciphertext);
        match self
            .key
            .open_in_place(packet.counter, header, packet.tag, buf)
        {
            Ok(()) => {}
            Err(CryptoError::BufferTooSmall) => return Err((OpenError::Oversized, None)),
            Err(_) => return Err((OpenError::Forged, None)),
        }
        match self.replay.commit(packet.counter) {
            Ok(()) => Ok(buf),
            Err(Replay::Duplicate) => Err((OpenError::Duplicate, Some(buf))),
            Err(_) => Err((OpenError::TooOld, None)),
        }
    }
}

/// Writes `app` as a sealed session datagram into `buf`; returns its length.
///
/// Encoding goes straight into the caller's buffer and is encrypted in place: no allocation.
pub(crate) fn seal<K: SessionCipher>(
    key: &K,
    counter: Counter,
    app: &App<'_>,
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    let body_len = app.buffer_len();
    let total = wire::SESSION_OVERHEAD + body_len;
    if buf.len() < total {
        return Err(wire::Error::BufferTooSmall);
    }
    wire::emit_session_header(buf, counter)?;
    let (head, rest) = buf.split_at_mut(wire::SESSION_OVERHEAD);
    let body = &mut rest[..body_len];
    app.emit(body)?;
    let (header, tag_out) = head.split_at_mut(wire::HEADER_LEN);
    let tag = key.seal_in_place(counter, header, body);
    tag_out.copy_from_slice(&tag);
    Ok(total)
}
