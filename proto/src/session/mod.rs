//! Per-peer session state: `Session`, one type for both roles, holding the receive keys of one
//! authenticated peer (`keys`), the replay window over its counters (`replay`) and its
//! liveness; and the glue that turns a typed application packet into a sealed datagram and back.
//!
//! Suites 1 and 2 identify a session only by the peer's address (nothing in the header names a
//! key); suite 3 carries a receiver-chosen index. The endpoints own those maps; this module owns
//! what one entry holds, the one `Session::open` every receive path calls, and the sealing of
//! both framings.
//!
//! Wire bytes: the sealed part of session packets (suites 1 and 2, opcode 0 framing), suite 3
//! data (type 4) and group data (type 6), all parsed into `SessionPacket` by `wire` first; the
//! plaintext is parsed by the endpoints' dispatch (`wire::App`). Timers: none; the endpoints
//! run the down timeout over `Session::last_heard`. Events: none; the dispatch emits them.

pub(crate) mod keys;
pub mod remote_server;
pub mod replay;

use alloc::boxed::Box;

use crate::crypto::noise::ChaChaKey;
use crate::crypto::{CryptoError, SecretBoxKey, SessionCipher, TAG_LEN};
use crate::id::Counter;
use crate::time::Instant;
use crate::wire::noise::{
    emit_data_header, emit_group_header, KeyId, SenderId, SessionIndex, DATA_HEADER_LEN,
    GROUP_HEADER_LEN,
};
use crate::wire::{self, App, SessionPacket};

pub(crate) use keys::{KeyUsed, NoiseRecord, PendingKeys, RxKey};
use keys::{Previous, Replaced, Rotation};
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

/// For tests that open packets of one suite under one key.
#[cfg(test)]
impl<K: SessionCipher> RxSession<K> {
    pub(crate) fn new(key: K, floor: Counter) -> Self {
        RxSession {
            key,
            replay: ReplayWindow::new(floor),
        }
    }

    /// As [`open_with`] with this key and window.
    pub(crate) fn open<'s>(
        &mut self,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<&'s [u8], (OpenError, Option<&'s [u8]>)> {
        open_with(&self.key, &mut self.replay, packet, header, scratch)
    }
}

/// Authenticates and decrypts `packet` into `scratch` under `key`, then records its counter in
/// `replay`. Suite 3 opens packets under the current, previous or pending key against one
/// window, so a counter is accepted once whatever key sealed it.
///
/// A duplicate inside the window is still decrypted, so that the caller can re-acknowledge
/// a reliable message whose ACK was lost; it comes back as `Err((Duplicate, Some(plain)))`.
pub(crate) fn open_with<'s, K: SessionCipher>(
    key: &K,
    replay: &mut ReplayWindow,
    packet: &SessionPacket<'_>,
    header: &[u8],
    scratch: &'s mut [u8],
) -> Result<&'s [u8], (OpenError, Option<&'s [u8]>)> {
    let status = open_status(key, replay, packet, header, scratch);
    with_plain(status, packet.ciphertext.len(), scratch)
}

/// As [`open_with`], leaving the plaintext (as long as the ciphertext) at the start of
/// `scratch` for [`with_plain`], so that a caller may try another key on the same buffer.
fn open_status<K: SessionCipher>(
    key: &K,
    replay: &mut ReplayWindow,
    packet: &SessionPacket<'_>,
    header: &[u8],
    scratch: &mut [u8],
) -> Result<(), OpenError> {
    let verdict = replay.check(packet.counter);
    if verdict == Err(Replay::TooOld) {
        return Err(OpenError::TooOld);
    }
    let n = packet.ciphertext.len();
    let Some(buf) = scratch.get_mut(..n) else {
        return Err(OpenError::Oversized);
    };
    buf.copy_from_slice(packet.ciphertext);
    match key.open_in_place(packet.counter, header, packet.tag, buf) {
        Ok(()) => {}
        Err(CryptoError::BufferTooSmall) => return Err(OpenError::Oversized),
        Err(_) => return Err(OpenError::Forged),
    }
    match replay.commit(packet.counter) {
        Ok(()) => Ok(()),
        Err(Replay::Duplicate) => Err(OpenError::Duplicate),
        Err(_) => Err(OpenError::TooOld),
    }
}

/// The verdict of [`open_status`] with the `n`-byte plaintext it left in `scratch`.
fn with_plain(
    status: Result<(), OpenError>,
    n: usize,
    scratch: &mut [u8],
) -> Result<&[u8], (OpenError, Option<&[u8]>)> {
    let plain = scratch.get(..n);
    match (status, plain) {
        (Ok(()), Some(p)) => Ok(p),
        (Err(OpenError::Duplicate), Some(p)) => Err((OpenError::Duplicate, Some(p))),
        (Ok(()) | Err(OpenError::Duplicate), None) => Err((OpenError::Oversized, None)),
        (Err(e), _) => Err((e, None)),
    }
}

/// One authenticated peer, in either role: its receive keys, our window over its counters and
/// whether it is alive. The endpoint finds it (by address, by suite 3 receiver index, or by
/// group sender id), calls [`Session::open`], and hands what is fresh to its dispatch; send
/// keys and counters stay with the role, since a client shares one sequence among its
/// servers.
#[derive(Debug)]
pub(crate) struct Session {
    /// The key the peer seals with now.
    current: RxKey,
    /// Cleared by the down timeout, set again by the next authenticated packet.
    pub(crate) up: bool,
    /// Previous and pending keys, and suite 3's record; see [`Rotation`].
    rotation: Option<Box<Rotation>>,
    /// One window over the peer's counters whatever key sealed them: a suite 3 initiator keeps
    /// one counter sequence across rekeys, so a message resealed under new keys with its old
    /// counter is still recognised as a duplicate.
    replay: ReplayWindow,
    /// When a packet last authenticated (or the session was made).
    pub(crate) last_heard: Instant,
}

/// How a packet names the key that sealed it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route<'k> {
    /// Suites 1 and 2: by nothing but the address it came from.
    Address,
    /// Suite 3 data: by the receiver index in its header.
    Index(SessionIndex),
    /// Suite 3 group data: under the peer's group key, which the endpoint found by sender id.
    Group(&'k ChaChaKey),
}

/// Why a session packet was dropped before the endpoint's dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It did not authenticate under any key it could have been sealed with.
    Forged,
    /// Suite 3 data for a session of suite 1 or 2.
    NotNoise,
    /// The receiver index names none of the session's keys.
    UnknownIndex,
    /// An authenticated duplicate from an address other than the session's. The session was
    /// found by index or sender id, so anyone who recorded the packet can send it again from
    /// anywhere; a peer that moved sends new packets, not old ones. Never answered
    /// (PROTOCOL §12.6), so a replay cannot aim the session's replies at its peer.
    ReplayFromElsewhere,
}

/// A session packet that authenticated, or was refused by the window after it did (or before
/// any crypto, if too old): what the endpoint's dispatch takes.
#[derive(Debug)]
pub(crate) struct Opened<'s> {
    /// The plaintext, or why it is not fresh; a duplicate comes with its plaintext, so that
    /// a reliable message whose ACK was lost can be acknowledged again.
    pub(crate) result: Result<&'s [u8], (OpenError, Option<&'s [u8]>)>,
    /// Which key opened it.
    pub(crate) by: KeyUsed,
    /// Suite 3 responder: the peer started using the pending keys.
    pub(crate) promoted: Option<Promoted>,
}

/// The send side of pending keys the peer has just confirmed, and the index they retire.
#[derive(Debug)]
pub(crate) struct Promoted {
    /// What the endpoint seals with from now on.
    pub(crate) send: TxKey,
    /// The index of the key before the previous one, which no packet may name any more.
    pub(crate) retired: Option<SessionIndex>,
}

impl Session {
    /// A suites 1 and 2 session under `key`, accepting counters above `floor`.
    pub(crate) fn new(key: RxKey, floor: Counter, now: Instant) -> Self {
        Session {
            current: key,
            up: true,
            rotation: None,
            replay: ReplayWindow::new(floor),
            last_heard: now,
        }
    }

    /// A suites 1 and 2 session that replaces `old` (a re-handshake with the same peer):
    /// `old`'s key still opens packets until `key` authenticates one, and its window marks
    /// counters that were delivered already.
    pub(crate) fn replacing(
        key: RxKey,
        floor: Counter,
        now: Instant,
        old: Option<Session>,
    ) -> Self {
        let mut s = Session::new(key, floor, now);
        if let Some(old) = old {
            let replaced = Replaced {
                seen: old.replay.clone(),
                session: Some(RxSession {
                    key: old.current,
                    replay: old.replay,
                }),
            };
            s.rotation = Some(Box::new(Rotation {
                previous: Some(Box::new(Previous::Replaced(Box::new(replaced)))),
                ..Rotation::default()
            }));
        }
        s
    }

    /// A suite 3 session under `recv`, with the window its first packet was opened against
    /// (responder) or a fresh one (initiator).
    pub(crate) fn noise(
        recv: ChaChaKey,
        replay: ReplayWindow,
        record: NoiseRecord,
        now: Instant,
    ) -> Self {
        Session {
            current: RxKey::Noise(recv),
            up: true,
            rotation: Some(Box::new(Rotation {
                noise: record,
                ..Rotation::default()
            })),
            replay,
            last_heard: now,
        }
    }

    /// Authenticates and decrypts `packet` (with `header` as associated data) into `scratch`
    /// under the key `route` names, then records its counter in the window.
    ///
    /// `elsewhere` says the packet came from an address other than the session's.
    ///
    /// # Errors
    /// A [`Refused`] packet goes no further; everything else goes to the dispatch, which
    /// counts the window's verdicts.
    pub(crate) fn open<'s>(
        &mut self,
        route: Route<'_>,
        elsewhere: bool,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<Opened<'s>, Refused> {
        match route {
            Route::Address => self.open_by_address(packet, header, scratch),
            Route::Index(index) => self.open_by_index(index, elsewhere, packet, header, scratch),
            Route::Group(key) => {
                let result = open_with(key, &mut self.replay, packet, header, scratch);
                refuse(&result, elsewhere)?;
                Ok(Opened {
                    result,
                    by: KeyUsed::Current,
                    promoted: None,
                })
            }
        }
    }

    /// Records `counter` of 0-RTT data (`docs/PROTOCOL.md` §12.2), which the initiation that
    /// carried it authenticated, in this session's window, as opening a data packet would.
    ///
    /// # Errors
    /// [`OpenError::Duplicate`] or [`OpenError::TooOld`], as the window judges.
    pub(crate) fn accept_early(&mut self, counter: Counter) -> Result<(), OpenError> {
        self.replay.commit(counter).map_err(|r| match r {
            replay::Replay::Duplicate => OpenError::Duplicate,
            _ => OpenError::TooOld,
        })
    }

    /// Makes `counter` unseen in the window, so that the peer's retransmission of it is fresh
    /// (the acknowledgement hand-off's refusal, `features::handoff`); `false` if it is too old
    /// for the window to judge (see [`ReplayWindow::forget`]).
    ///
    /// A client's suites 1 and 2 session that replaced another forgets it in the replaced
    /// session's windows too: the server reseals an unacknowledged message under the new key
    /// with its old counter, and under the old key until our client-info reaches it.
    pub(crate) fn forget(&mut self, counter: Counter) -> bool {
        if let Some(r) = self.rotation.as_deref_mut() {
            r.forget_replaced(counter);
        }
        self.replay.forget(counter)
    }

    /// Whether `packet` authenticates as fresh under the current key, changing nothing.
    pub(crate) fn authenticates(
        &self,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &mut [u8],
    ) -> bool {
        let mut window = self.replay.clone();
        open_status(&self.current, &mut window, packet, header, scratch).is_ok()
    }

    /// Whether the peer seals with `key` now.
    pub(crate) fn is_current(&self, key: &RxKey) -> bool {
        self.current == *key
    }

    /// Whether this is a suite 3 session.
    pub(crate) fn is_noise(&self) -> bool {
        matches!(self.current, RxKey::Noise(_)) && self.rotation.is_some()
    }

    /// Suite 3: what names the connection.
    pub(crate) fn noise_record(&self) -> Option<&NoiseRecord> {
        self.rotation
            .as_deref()
            .filter(|_| self.is_noise())
            .map(|r| &r.noise)
    }

    /// Suite 3: the indices that name this session's keys (current, pending, previous).
    pub(crate) fn indices(&self) -> [Option<SessionIndex>; 3] {
        match self.rotation.as_deref().filter(|_| self.is_noise()) {
            Some(r) => r.indices(),
            None => [None; 3],
        }
    }

    /// Suite 3 initiator: the peer answered our rekey; it seals with `recv` (named by `local`)
    /// from now on, and the old key stays for packets sealed before it switched.
    pub(crate) fn rekey(&mut self, local: SessionIndex, recv: ChaChaKey) {
        let old = core::mem::replace(&mut self.current, RxKey::Noise(recv));
        if let (Some(r), RxKey::Noise(old)) = (self.rotation.as_deref_mut(), old) {
            r.previous = Some(Box::new(Previous::Noise(r.noise.local, old)));
            r.noise.local = local;
        }
    }

    /// Suite 3 responder: a rekey of this connection (handshake `seq`) was answered; its keys
    /// wait for the peer's first packet under them. Returns the index of keys it replaces.
    pub(crate) fn set_pending(&mut self, keys: PendingKeys, seq: u64) -> Option<SessionIndex> {
        if !self.is_noise() {
            return None;
        }
        let r = self.rotation.as_deref_mut()?;
        r.noise.last_seq = seq;
        r.pending.replace(Box::new(keys)).map(|old| old.local)
    }

    /// Suites 1 and 2: tries the current key, then the replaced session's; a counter the
    /// replaced session saw is a duplicate.
    fn open_by_address<'s>(
        &mut self,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<Opened<'s>, Refused> {
        let replaced = self
            .rotation
            .as_deref_mut()
            .and_then(Rotation::replaced_mut)
            .is_some();
        // Statuses first, the plaintext after: it borrows `scratch`, which both tries use.
        let first = open_status(&self.current, &mut self.replay, packet, header, scratch);
        let (status, by) = match first {
            Err(OpenError::Forged) if replaced => {
                match self
                    .rotation
                    .as_deref_mut()
                    .and_then(Rotation::replaced_mut)
                {
                    Some(old) => (
                        open_status(&old.key, &mut old.replay, packet, header, scratch),
                        KeyUsed::Previous,
                    ),
                    None => return Err(Refused::Forged),
                }
            }
            r => (r, KeyUsed::Current),
        };
        let result = with_plain(status, packet.ciphertext.len(), scratch);
        refuse(&result, false)?;
        if by == KeyUsed::Current && result.is_ok() {
            // The new key works: the peer has our client-info, the old key is done.
            if let Some(Previous::Replaced(r)) = self
                .rotation
                .as_deref_mut()
                .and_then(|r| r.previous.as_deref_mut())
            {
                r.session = None;
            }
        }
        let seen = by == KeyUsed::Current
            && self
                .rotation
                .as_deref()
                .and_then(Rotation::seen_before)
                .is_some_and(|w| w.check(packet.counter) == Err(Replay::Duplicate));
        let result = match result {
            Ok(p) if seen => Err((OpenError::Duplicate, Some(p))),
            other => other,
        };
        Ok(Opened {
            result,
            by,
            promoted: None,
        })
    }

    /// Suite 3: opens under the key the index names; the first packet under pending keys
    /// makes them current.
    fn open_by_index<'s>(
        &mut self,
        index: SessionIndex,
        elsewhere: bool,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<Opened<'s>, Refused> {
        if !self.is_noise() {
            return Err(Refused::NotNoise);
        }
        let (key, by) = self
            .rotation
            .as_deref()
            .and_then(|r| r.select(&self.current, index))
            .ok_or(Refused::UnknownIndex)?;
        let result = open_with(&key, &mut self.replay, packet, header, scratch);
        refuse(&result, elsewhere)?;
        let promoted = if by == KeyUsed::Pending && !matches!(result, Err((OpenError::TooOld, _))) {
            self.promote()
        } else {
            None
        };
        Ok(Opened {
            result,
            by,
            promoted,
        })
    }

    /// The peer uses the pending keys: they become current, and the old receive key stays as
    /// the previous one for packets sealed before it switched.
    fn promote(&mut self) -> Option<Promoted> {
        let Session {
            current, rotation, ..
        } = self;
        let r = rotation.as_deref_mut()?;
        let p = *r.pending.take()?;
        let old_local = core::mem::replace(&mut r.noise.local, p.local);
        let old_key = core::mem::replace(current, RxKey::Noise(p.recv));
        let retired = match r.previous.take().map(|b| *b) {
            Some(Previous::Noise(i, _)) => Some(i),
            _ => None,
        };
        if let RxKey::Noise(k) = old_key {
            r.previous = Some(Box::new(Previous::Noise(old_local, k)));
        }
        Some(Promoted {
            send: TxKey::Noise {
                key: p.send,
                receiver: p.remote,
            },
            retired,
        })
    }
}

/// The refusals every route shares: a forgery, and a duplicate from another address.
fn refuse(
    result: &Result<&[u8], (OpenError, Option<&[u8]>)>,
    elsewhere: bool,
) -> Result<(), Refused> {
    match result {
        Err((OpenError::Forged, _)) => Err(Refused::Forged),
        Err((OpenError::Duplicate, _)) if elsewhere => Err(Refused::ReplayFromElsewhere),
        _ => Ok(()),
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

/// Seals the frames of one suite 3 datagram (`docs/PROTOCOL.md` §17): a lone frame as the
/// plain packet it would be without batching, several as one op 38 batch.
pub(crate) fn seal_frames(
    tx: &TxKey,
    counter: Counter,
    more: bool,
    frames: &[wire::batch::Frame<'_>],
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    use wire::batch::{self, Frame};
    match frames {
        [Frame::App(a)] => seal(tx, counter, a, buf),
        [Frame::Acks(a)] => seal_with(tx, counter, a.buffer_len(), |b| a.emit(b).map(drop), buf),
        _ => {
            let len = batch::batch_len(frames.iter().map(Frame::buffer_len));
            let write = |b: &mut [u8]| batch::emit_batch(more, frames, b).map(drop);
            seal_with(tx, counter, len, write, buf)
        }
    }
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
