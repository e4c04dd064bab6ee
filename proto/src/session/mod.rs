//! Per-peer session state: the receive side of one authenticated peer, and the glue that turns a
//! typed application packet into a sealed datagram and back.
//!
//! Suites 1 and 2 identify a session only by the peer's address (nothing in the header names a
//! key); suite 3 carries a receiver-chosen index. The endpoints own those maps; this module owns
//! what one entry holds, and the sealing of both framings.

pub mod replay;

use alloc::boxed::Box;

use crate::crypto::noise::ChaChaKey;
use crate::crypto::{CryptoError, SecretBoxKey, SessionCipher, TAG_LEN};
use crate::id::Counter;
use crate::wire::noise::{
    emit_data_header, emit_group_header, KeyId, SenderId, SessionIndex, DATA_HEADER_LEN,
    GROUP_HEADER_LEN,
};
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

/// A receive key of any suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RxKey {
    /// Suites 1 and 2.
    Reference(SecretBoxKey),
    /// Suite 3.
    Noise(ChaChaKey),
}

impl SessionCipher for RxKey {
    fn seal_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        plaintext: &mut [u8],
    ) -> [u8; TAG_LEN] {
        match self {
            RxKey::Reference(k) => k.seal_in_place(counter, header, plaintext),
            RxKey::Noise(k) => k.seal_in_place(counter, header, plaintext),
        }
    }

    fn open_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        tag: &[u8; TAG_LEN],
        ciphertext: &mut [u8],
    ) -> Result<(), CryptoError> {
        match self {
            RxKey::Reference(k) => k.open_in_place(counter, header, tag, ciphertext),
            RxKey::Noise(k) => k.open_in_place(counter, header, tag, ciphertext),
        }
    }
}

/// A send key and the framing it goes with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TxKey {
    /// Suites 1 and 2: `PavillionS0 || counter || tag || ciphertext`.
    Reference(SecretBoxKey),
    /// Suite 3: `PvS3 || 4 || receiver index || counter || ciphertext || tag`, the 17-byte
    /// header authenticated as associated data.
    Noise {
        /// Seals.
        key: ChaChaKey,
        /// The index the peer chose for packets to it.
        receiver: SessionIndex,
    },
    /// Suite 3 multicast: `PvS3 || 6 || sender id || key id || counter || ciphertext || tag`,
    /// the 25-byte header authenticated as associated data. Boxed: only a client sends it, and
    /// every server session holds a `TxKey`, which must not grow for it.
    Group(Box<GroupTx>),
}

/// A client's group send key and the header fields that name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupTx {
    /// The group key.
    pub(crate) key: ChaChaKey,
    /// Our sender id.
    pub(crate) sender: SenderId,
    /// The key's id.
    pub(crate) key_id: KeyId,
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
        open_with(&self.key, &mut self.replay, packet, header, scratch)
    }
}

/// As [`RxSession::open`], with a key and window held apart: suite 3 opens packets under the
/// current, previous or pending key against one window, so a counter is accepted once whatever
/// key sealed it.
pub(crate) fn open_with<'s, K: SessionCipher>(
    key: &K,
    replay: &mut ReplayWindow,
    packet: &SessionPacket<'_>,
    header: &[u8],
    scratch: &'s mut [u8],
) -> Result<&'s [u8], (OpenError, Option<&'s [u8]>)> {
    let verdict = replay.check(packet.counter);
    if verdict == Err(Replay::TooOld) {
        return Err((OpenError::TooOld, None));
    }
    let n = packet.ciphertext.len();
    let Some(buf) = scratch.get_mut(..n) else {
        return Err((OpenError::Oversized, None));
    };
    buf.copy_from_slice(packet.ciphertext);
    match key.open_in_place(packet.counter, header, packet.tag, buf) {
        Ok(()) => {}
        Err(CryptoError::BufferTooSmall) => return Err((OpenError::Oversized, None)),
        Err(_) => return Err((OpenError::Forged, None)),
    }
    match replay.commit(packet.counter) {
        Ok(()) => Ok(buf),
        Err(Replay::Duplicate) => Err((OpenError::Duplicate, Some(buf))),
        Err(_) => Err((OpenError::TooOld, None)),
    }
}

/// Writes `app` as a sealed session datagram of `tx`'s suite into `buf`; returns its length.
///
/// Encoding goes straight into the caller's buffer and is encrypted in place: no allocation.
pub(crate) fn seal(
    tx: &TxKey,
    counter: Counter,
    app: &App<'_>,
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    seal_with(
        tx,
        counter,
        app.buffer_len(),
        |body| app.emit(body).map(drop),
        buf,
    )
}

/// As [`seal`], for a plaintext (opcode and payload) given as bytes and not checked at all.
///
/// Only for `testing::established`: fuzzers seal arbitrary plaintext under a real session key
/// so that it reaches the receiver's application parser.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn seal_plaintext(
    tx: &TxKey,
    counter: Counter,
    plaintext: &[u8],
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    seal_with(
        tx,
        counter,
        plaintext.len(),
        |body| {
            body.copy_from_slice(plaintext);
            Ok(())
        },
        buf,
    )
}

/// Frames and seals a `body_len`-byte plaintext that `write` puts into the slice it is given
/// (exactly `body_len` bytes long), in `tx`'s suite.
fn seal_with(
    tx: &TxKey,
    counter: Counter,
    body_len: usize,
    write: impl FnOnce(&mut [u8]) -> Result<(), wire::Error>,
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    match tx {
        TxKey::Reference(key) => {
            let total = wire::SESSION_OVERHEAD + body_len;
            if buf.len() < total {
                return Err(wire::Error::BufferTooSmall);
            }
            wire::emit_session_header(buf, counter)?;
            let (head, rest) = buf.split_at_mut(wire::SESSION_OVERHEAD);
            // NOTE(unwrap-free): `rest` holds at least `body_len` bytes, checked above.
            let body = &mut rest[..body_len];
            write(body)?;
            let (header, tag_out) = head.split_at_mut(wire::HEADER_LEN);
            let tag = key.seal_in_place(counter, header, body);
            tag_out.copy_from_slice(&tag);
            Ok(total)
        }
        TxKey::Noise { key, receiver } => {
            let total = DATA_HEADER_LEN + body_len + TAG_LEN;
            if buf.len() < total {
                return Err(wire::Error::BufferTooSmall);
            }
            emit_data_header(buf, *receiver, counter)?;
            seal_after_header(key, counter, write, DATA_HEADER_LEN, body_len, buf)
        }
        TxKey::Group(g) => {
            let GroupTx {
                key,
                sender,
                key_id,
            } = &**g;
            let total = GROUP_HEADER_LEN + body_len + TAG_LEN;
            // Longer than any receiver accepts: refused here rather than dropped there.
            if buf.len() < total || total > wire::MAX_DATAGRAM {
                return Err(wire::Error::BufferTooSmall);
            }
            emit_group_header(buf, *sender, *key_id, counter)?;
            seal_after_header(key, counter, write, GROUP_HEADER_LEN, body_len, buf)
        }
    }
}

/// Suite 3: encrypts the plaintext `write` puts after a header already written into
/// `buf[..header_len]`, with the header as associated data and the tag last. `buf` holds at
/// least the whole packet.
fn seal_after_header(
    key: &ChaChaKey,
    counter: Counter,
    write: impl FnOnce(&mut [u8]) -> Result<(), wire::Error>,
    header_len: usize,
    body_len: usize,
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    let (header, rest) = buf.split_at_mut(header_len);
    let (body, tag_out) = rest.split_at_mut(body_len);
    write(body)?;
    let tag = key.seal_in_place(counter, header, body);
    tag_out
        .get_mut(..TAG_LEN)
        .ok_or(wire::Error::BufferTooSmall)?
        .copy_from_slice(&tag);
    Ok(header_len + body_len + TAG_LEN)
}
