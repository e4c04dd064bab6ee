//! The suite 3 handshake as state types (docs/PROTOCOL.md §12; WireGuard's paper §5.3: the
//! responder only trusts new keys once the initiator uses them).
//!
//! ```text
//!  initiator                                      responder
//!  SentInitiation::start ── type 1 initiation ──> ExpectInitiation::read -> ReadInitiation
//!                                                  (identify the peer, refuse replays)
//!  SentInitiation::finish <── type 2 response ── ReadInitiation::respond -> ExpectFirstData
//!    -> Established (keys in use at once)
//!     ── first type 4 data packet ─────────────> ExpectFirstData::open, then confirm
//!                                                  -> Session (keys in use)
//! ```
//!
//! Each state consumes itself, so a handshake step cannot run twice, and keys come out only at
//! the end. The initiation's payload is this client process's epoch and a sequence number
//! that only grows, so the responder can tell a rekey of the same process (counters go on)
//! from a new process (they start afresh) and refuse a recorded initiation; the response's
//! payload is the responder's connection id, which changes exactly when its counters start
//! again.
//!
//! Wire bytes: the Noise messages inside the initiation (type 1) and response (type 2), whose
//! framing `wire::noise` parses, and the first data packet (type 4) of a new connection.
//! Timers: none here; the responder's pending table expires entries by [`ExpectFirstData::created`]
//! in its housekeeping, and the initiator's retries are the client's round timer. Events:
//! none; the endpoints report connections.

use crate::crypto::ecc::{KeyPair, PublicKey};
use crate::crypto::noise::{
    InitiatorKeys, NoiseError, NoiseInitiator, NoiseResponder, Pattern, TransportKeys,
};
use crate::crypto::static_dh::{Recorder, StaticDh};
use crate::crypto::Psk;
use crate::id::{ClientId, Counter, PeerId};
use crate::rng::Rng;
use crate::session::replay::ReplayWindow;
use crate::session::{open_with, NoiseRecord, OpenError, PendingKeys, RxKey, Session, TxKey};
use crate::time::Instant;
use crate::wire::noise::{
    Mode, SessionIndex, INITIATION_PAYLOAD_LEN, RESPONSE_MESSAGE_LEN, RESPONSE_PAYLOAD_LEN,
};
use crate::wire::SessionPacket;
#[cfg(target_has_atomic = "ptr")]
use alloc::sync::Arc;
// Targets without atomic read-modify-write (riscv32imc, the ESP32-C3): the same `Arc`,
// counted through portable-atomic under the device's critical section.
#[cfg(not(target_has_atomic = "ptr"))]
use portable_atomic_util::Arc;

/// The pattern an initiation's mode names.
pub(crate) fn pattern_of(mode: Mode) -> Pattern {
    match mode {
        Mode::Ik => Pattern::Ik,
        Mode::IkPsk2 => Pattern::IkPsk2,
        _ => Pattern::NnPsk0,
    }
}

/// The mode that announces `pattern` in an initiation.
pub(crate) fn mode_of(pattern: Pattern) -> Mode {
    match pattern {
        Pattern::Ik => Mode::Ik,
        Pattern::IkPsk2 => Mode::IkPsk2,
        _ => Mode::NnPsk0,
    }
}

/// The initiation's payload: the initiator process's epoch and the handshake's sequence number.
pub(crate) fn initiation_payload(epoch: u64, seq: u64) -> [u8; INITIATION_PAYLOAD_LEN] {
    let mut payload = [0u8; INITIATION_PAYLOAD_LEN];
    let (e, s) = payload.split_at_mut(8);
    e.copy_from_slice(&epoch.to_le_bytes());
    s.copy_from_slice(&seq.to_le_bytes());
    payload
}

/// Bytes that 0-RTT data adds to the initiation payload before its plaintext: the `u64`
/// counter it was sealed with in the session the server lost (`docs/PROTOCOL.md` §12.2).
pub(crate) const EARLY_COUNTER_LEN: usize = 8;

/// 0-RTT data read from an initiation: one application datagram's counter and plaintext
/// (`app opcode || app payload`), as a data packet would have carried them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EarlyData {
    /// The counter the client gave it; the server's replay window judges it like any other.
    pub(crate) counter: Counter,
    /// `app opcode || app payload` (at least one byte).
    pub(crate) plain: alloc::vec::Vec<u8>,
}

/// The 0-RTT part of an initiation payload: `u64 counter || plaintext`.
pub(crate) fn early_bytes(counter: Counter, plain: &[u8]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(EARLY_COUNTER_LEN + plain.len());
    out.extend_from_slice(&counter.0.to_le_bytes());
    out.extend_from_slice(plain);
    out
}

/// Splits an initiation payload (the first `n` bytes of `buf`) into epoch, sequence number
/// and 0-RTT data: exactly 16 bytes (none), or 16 + 8 + at least one byte. Anything else is
/// not ours. The 0-RTT plaintext stays in `buf`, moved to its start, so that the read
/// allocates one buffer, not a second copy.
fn split_payload(
    mut buf: alloc::vec::Vec<u8>,
    n: usize,
) -> Result<(u64, u64, Option<EarlyData>), NoiseError> {
    buf.truncate(n);
    let payload = &buf[..];
    let word = |at: usize| -> Result<u64, NoiseError> {
        let bytes = payload.get(at..at + 8).ok_or(NoiseError::Setup)?;
        Ok(u64::from_le_bytes(
            bytes.try_into().map_err(|_| NoiseError::Setup)?,
        ))
    };
    let (epoch, seq) = (word(0)?, word(8)?);
    let early = match payload.len() {
        INITIATION_PAYLOAD_LEN => None,
        len if len > INITIATION_PAYLOAD_LEN + EARLY_COUNTER_LEN => {
            let counter = Counter(word(INITIATION_PAYLOAD_LEN)?);
            buf.drain(..INITIATION_PAYLOAD_LEN + EARLY_COUNTER_LEN);
            Some(EarlyData {
                counter,
                plain: buf,
            })
        }
        _ => return Err(NoiseError::Setup),
    };
    Ok((epoch, seq, early))
}

/// What a completed handshake gives the initiator.
#[derive(Debug)]
pub(crate) struct Established {
    /// Seals our packets, opens the responder's.
    pub(crate) keys: TransportKeys,
    /// The responder's name for the connection (see [`NoiseRecord::connection`]).
    pub(crate) connection: u64,
}

/// Initiator, unicast: an initiation was sent and its response is awaited.
#[derive(Debug)]
pub(crate) struct SentInitiation {
    /// The index the responder puts on its response (and on data under these keys).
    pub(crate) local: SessionIndex,
    initiator: NoiseInitiator,
}

impl SentInitiation {
    /// Writes the first message of `pattern` carrying `epoch` and `seq` into `out`; returns
    /// the state and the message's length.
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if the credentials cannot run `pattern`.
    #[cfg(test)]
    pub(crate) fn start(
        pattern: Pattern,
        rng: &mut Rng,
        credentials: (Option<&KeyPair>, Option<&PublicKey>, Option<&Psk>),
        epoch: u64,
        seq: u64,
        local: SessionIndex,
        out: &mut [u8],
    ) -> Result<(Self, usize), NoiseError> {
        Self::start_cached(
            pattern,
            rng,
            credentials,
            None,
            (epoch, seq, &[]),
            local,
            out,
        )
    }

    /// As [`SentInitiation::start`], with `ss` and our static public key taken from
    /// `statics` (`crypto::static_dh`), and `early` (empty, or [`early_bytes`]: 0-RTT data)
    /// after the epoch and sequence number in the payload.
    ///
    /// # Errors
    /// As [`SentInitiation::start`].
    pub(crate) fn start_cached(
        pattern: Pattern,
        rng: &mut Rng,
        credentials: (Option<&KeyPair>, Option<&PublicKey>, Option<&Psk>),
        statics: Option<&mut StaticDh>,
        (epoch, seq, early): (u64, u64, &[u8]),
        local: SessionIndex,
        out: &mut [u8],
    ) -> Result<(Self, usize), NoiseError> {
        let (keys, server, psk) = credentials;
        let keys = InitiatorKeys {
            local: keys,
            server,
            psk,
        };
        let mut statics = statics;
        let recorder = statics.is_some().then(|| Arc::new(Recorder::default()));
        let shared = statics.as_deref();
        let mut initiator =
            NoiseInitiator::new_recording(pattern, rng, keys, shared, recorder.clone())?;
        let n = if early.is_empty() {
            initiator.write_initiation(&initiation_payload(epoch, seq), out)?
        } else {
            let mut payload = initiation_payload(epoch, seq).to_vec();
            payload.extend_from_slice(early);
            initiator.write_initiation(&payload, out)?
        };
        // IK computes `ss` in the first message: keep it if it was not known yet.
        if let (Some(statics), Some(r), Some(server)) = (statics.as_mut(), &recorder, server) {
            if let Some(shared) = r.take_for(server) {
                statics.insert(server.to_bytes(), shared);
            }
        }
        Ok((SentInitiation { local, initiator }, n))
    }

    /// Reads the response; the keys are in use at once.
    ///
    /// # Errors
    /// [`NoiseError::Decrypt`] for a forged or stale response, [`NoiseError::Setup`] for one
    /// whose payload is not a connection id.
    pub(crate) fn finish(self, message: &[u8]) -> Result<Established, NoiseError> {
        let mut payload = [0u8; RESPONSE_PAYLOAD_LEN];
        match self.initiator.read_response(message, &mut payload)? {
            (RESPONSE_PAYLOAD_LEN, keys) => Ok(Established {
                keys,
                connection: u64::from_le_bytes(payload),
            }),
            _ => Err(NoiseError::Setup),
        }
    }
}

/// Responder: ready to read one initiation of a known pattern.
#[derive(Debug)]
pub(crate) struct ExpectInitiation {
    responder: NoiseResponder,
    recorder: Option<Arc<Recorder>>,
}

impl ExpectInitiation {
    /// A responder for `pattern` with our static keys (IK patterns) or the initiator's PSK
    /// (NNpsk0, whose initiation names the client in clear).
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if the keys cannot run `pattern`.
    #[cfg(test)]
    pub(crate) fn new(
        pattern: Pattern,
        rng: &mut Rng,
        keys: Option<&KeyPair>,
        nn_psk: Option<&Psk>,
    ) -> Result<Self, NoiseError> {
        Self::new_cached(pattern, rng, keys, nn_psk, None)
    }

    /// As [`ExpectInitiation::new`], with `ss` of known initiators and our static public key
    /// taken from `statics` (made for `keys`); an `ss` it has to compute is kept for
    /// [`ReadInitiation::computed_static`].
    ///
    /// # Errors
    /// As [`ExpectInitiation::new`].
    pub(crate) fn new_cached(
        pattern: Pattern,
        rng: &mut Rng,
        keys: Option<&KeyPair>,
        nn_psk: Option<&Psk>,
        statics: Option<&StaticDh>,
    ) -> Result<Self, NoiseError> {
        let recorder = statics.map(|_| Arc::new(Recorder::default()));
        let responder =
            NoiseResponder::new_recording(pattern, rng, keys, nn_psk, statics, recorder.clone())?;
        Ok(ExpectInitiation {
            responder,
            recorder,
        })
    }

    /// Reads the initiation's message.
    ///
    /// # Errors
    /// [`NoiseError::Decrypt`] if it was sealed to another static key or under another PSK;
    /// [`NoiseError::Setup`] if its payload is not an epoch and a sequence number, optionally
    /// followed by 0-RTT data (a counter and at least one plaintext byte).
    pub(crate) fn read(mut self, message: &[u8]) -> Result<ReadInitiation, NoiseError> {
        // The plaintext is shorter than the message; its length says whether 0-RTT data came.
        let mut buf = alloc::vec![0u8; message.len()];
        let n = self.responder.read_initiation(message, &mut buf)?;
        if n > buf.len() {
            return Err(NoiseError::Setup);
        }
        let (epoch, seq, early) = split_payload(buf, n)?;
        Ok(ReadInitiation {
            responder: self.responder,
            recorder: self.recorder,
            epoch,
            seq,
            early,
        })
    }
}

/// Responder: the initiation authenticated (up to the PSK of IKpsk2, set once the initiator is
/// identified); the endpoint decides whether to answer it.
#[derive(Debug)]
pub(crate) struct ReadInitiation {
    responder: NoiseResponder,
    recorder: Option<Arc<Recorder>>,
    /// The initiator's process.
    pub(crate) epoch: u64,
    /// The handshake's sequence number in that process.
    pub(crate) seq: u64,
    /// 0-RTT data the initiation carried, for the endpoint to deliver once the initiation
    /// passed its checks.
    pub(crate) early: Option<EarlyData>,
}

impl ReadInitiation {
    /// The initiator's static public key (IK patterns).
    pub(crate) fn remote_static(&self) -> Option<PublicKey> {
        self.responder.remote_static()
    }

    /// The `ss` this read computed (not found in the statics it was given): the initiator's
    /// static key and the result, to keep for its next handshake.
    pub(crate) fn computed_static(&self) -> Option<(PublicKey, [u8; 32])> {
        let peer = self.remote_static()?;
        let shared = self.recorder.as_ref()?.take_for(&peer)?;
        Some((peer, shared))
    }

    /// IKpsk2: the identified initiator's PSK, mixed in before the response.
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if the pattern takes no PSK here.
    pub(crate) fn set_psk(&mut self, psk: &Psk) -> Result<(), NoiseError> {
        self.responder.set_psk(psk)
    }

    /// Whether to answer, given the initiator's live connection (`live`, if it has one) and
    /// its handshakes still pending: `Ok(Some(connection))` for a rekey of that connection
    /// (same process: its counters go on), `Ok(None)` for a new connection.
    ///
    /// # Errors
    /// [`Replayed`] if the same process already got this far with this sequence number or a
    /// higher one: a recorded initiation, which must not replace the live keys or displace
    /// a newer pending handshake.
    pub(crate) fn judge<'p>(
        &self,
        live: Option<&NoiseRecord>,
        mut pending: impl Iterator<Item = &'p ExpectFirstData>,
    ) -> Result<Option<u64>, Replayed> {
        let same = live.filter(|r| r.peer_epoch == self.epoch);
        if same.is_some_and(|r| self.seq <= r.last_seq) {
            return Err(Replayed);
        }
        if pending.any(|p| p.epoch == self.epoch && self.seq <= p.seq) {
            return Err(Replayed);
        }
        Ok(same.map(|r| r.connection))
    }

    /// Writes the response naming `connection` into `out`; the keys wait for the initiator's
    /// first packet under them, which names `local`. `remote` is the initiator's index.
    ///
    /// # Errors
    /// As the Noise step fails.
    pub(crate) fn respond(
        self,
        connection: u64,
        local: SessionIndex,
        remote: SessionIndex,
        out: &mut [u8; RESPONSE_MESSAGE_LEN],
    ) -> Result<PendingKeys, NoiseError> {
        let (_, keys) = self
            .responder
            .write_response(&connection.to_le_bytes(), out)?;
        Ok(PendingKeys {
            local,
            remote,
            send: keys.send,
            recv: keys.recv,
        })
    }
}

/// An initiation the responder has seen (or a newer one of the same process): refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Replayed;

/// Responder: a handshake from a new initiator process, answered but not yet confirmed. It
/// stays in the responder's bounded table until the first packet under its keys arrives.
#[derive(Debug)]
pub(crate) struct ExpectFirstData {
    /// Who the initiation came from.
    pub(crate) peer: PeerId,
    pub(crate) client_id: ClientId,
    /// The initiator's process and the handshake's sequence number in it.
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    /// Our name for the connection, sent in the response.
    pub(crate) connection: u64,
    pub(crate) keys: PendingKeys,
    /// When the response went out; the entry expires `half_open_timeout` later.
    pub(crate) created: Instant,
}

/// The first packet of a new connection, opened: its plaintext and the window that saw it.
#[derive(Debug)]
pub(crate) struct FirstData<'s> {
    pub(crate) plain: &'s [u8],
    pub(crate) window: ReplayWindow,
}

impl ExpectFirstData {
    /// Opens a data packet under the pending keys. A packet that fails leaves the state as it
    /// was: a forged packet must not cancel the real handshake.
    ///
    /// # Errors
    /// Why it did not open.
    pub(crate) fn open<'s>(
        &self,
        packet: &SessionPacket<'_>,
        header: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<FirstData<'s>, OpenError> {
        let mut window = ReplayWindow::new(Counter(0));
        let key = RxKey::Noise(self.keys.recv.clone());
        match open_with(&key, &mut window, packet, header, scratch) {
            Ok(plain) => Ok(FirstData { plain, window }),
            Err((e, _)) => Err(e),
        }
    }

    /// The initiator used the keys: the session they make, the key we seal with, and the index
    /// the initiator puts on its packets.
    pub(crate) fn confirm(self, window: ReplayWindow, now: Instant) -> (Session, TxKey) {
        let record = NoiseRecord {
            local: self.keys.local,
            connection: self.connection,
            peer_epoch: self.epoch,
            last_seq: self.seq,
        };
        let tx = TxKey::Noise {
            key: self.keys.send,
            receiver: self.keys.remote,
        };
        (Session::noise(self.keys.recv, window, record, now), tx)
    }
}

/// The steps of the responder's side of a handshake, for counting their X25519 work.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    /// Building the state (IK: our static public key from the secret).
    Start,
    /// Reading the initiation (IK: `es`, `ss`).
    Read,
    /// Writing the response (our ephemeral key, `ee`; IK: `se`).
    Write,
}

/// X25519 operations (Diffie-Hellman or key generation) a responder step does.
pub(crate) fn dh_count(pattern: Pattern, step: Step) -> u64 {
    let ik = pattern != Pattern::NnPsk0;
    match step {
        Step::Start => u64::from(ik),
        Step::Read => 2 * u64::from(ik),
        Step::Write => 2 + u64::from(ik),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::noise::ChaChaKey;
    use crate::session::seal;
    use crate::wire::noise::{NoisePacket, DATA_HEADER_LEN};
    use crate::wire::{App, Datagram, Message};

    fn pair(b: u8) -> KeyPair {
        KeyPair::from_secret_bytes([b; 32])
    }

    /// Runs a whole IK handshake in memory; the responder holds `responder_keys`.
    fn handshake(
        responder_keys: &KeyPair,
    ) -> Result<(Established, ReadInitiation, [u8; 128], usize), NoiseError> {
        let mut rng = Rng::from_seed([9; 32]);
        let (client, server) = (pair(1), pair(2));
        let mut m1 = [0u8; 128];
        let creds = (Some(&client), Some(server.public()), None);
        let (sent, n1) = SentInitiation::start(
            Pattern::Ik,
            &mut rng,
            creds,
            77,
            3,
            SessionIndex(5),
            &mut m1,
        )?;
        let read = ExpectInitiation::new(Pattern::Ik, &mut rng, Some(responder_keys), None)?
            .read(&m1[..n1])?;
        let mut m2 = [0u8; RESPONSE_MESSAGE_LEN];
        let pending = ExpectInitiation::new(Pattern::Ik, &mut rng, Some(responder_keys), None)?
            .read(&m1[..n1])?
            .respond(0xC0, SessionIndex(6), sent.local, &mut m2)?;
        let established = sent.finish(&m2)?;
        assert_eq!(established.keys.send, pending.recv);
        assert_eq!(established.keys.recv, pending.send);
        Ok((established, read, m1, n1))
    }

    #[test]
    fn initiator_and_responder_agree_on_keys_epoch_and_connection() {
        let (done, read, _, _) = handshake(&pair(2)).unwrap();
        assert_eq!((read.epoch, read.seq), (77, 3));
        assert_eq!(read.remote_static(), Some(*pair(1).public()));
        assert_eq!(done.connection, 0xC0);
        assert_ne!(done.keys.send, done.keys.recv);
    }

    #[test]
    fn a_recorded_initiation_is_refused_and_a_rekey_keeps_the_connection() {
        let (_, read, _, _) = handshake(&pair(2)).unwrap();
        // The initiation carried epoch 77, sequence number 3.
        let live = |last_seq| NoiseRecord {
            local: SessionIndex(1),
            connection: 0xAB,
            peer_epoch: 77,
            last_seq,
        };
        let none = core::iter::empty();
        assert_eq!(read.judge(None, none.clone()), Ok(None));
        assert_eq!(read.judge(Some(&live(2)), none.clone()), Ok(Some(0xAB)));
        assert_eq!(read.judge(Some(&live(3)), none.clone()), Err(Replayed));
        let other_process = NoiseRecord {
            peer_epoch: 76,
            ..live(9)
        };
        assert_eq!(read.judge(Some(&other_process), none), Ok(None));
        let waiting = |seq| ExpectFirstData {
            peer: PeerId::Client(ClientId([1; 16])),
            client_id: ClientId([1; 16]),
            epoch: 77,
            seq,
            connection: 1,
            keys: PendingKeys {
                local: SessionIndex(2),
                remote: SessionIndex(3),
                send: ChaChaKey::from_bytes([1; 32]),
                recv: ChaChaKey::from_bytes([2; 32]),
            },
            created: Instant::ZERO,
        };
        assert_eq!(read.judge(None, [waiting(3)].iter()), Err(Replayed));
        assert_eq!(read.judge(None, [waiting(2)].iter()), Ok(None));
    }

    #[test]
    fn a_wrong_static_key_fails() {
        assert_eq!(handshake(&pair(3)).err(), Some(NoiseError::Decrypt));
    }

    #[test]
    fn only_the_first_data_packet_under_the_pending_keys_confirms_them() {
        let mut rng = Rng::from_seed([4; 32]);
        let (client, server) = (pair(1), pair(2));
        let mut m1 = [0u8; 128];
        let creds = (Some(&client), Some(server.public()), None);
        let (sent, n1) =
            SentInitiation::start(Pattern::Ik, &mut rng, creds, 1, 1, SessionIndex(5), &mut m1)
                .unwrap();
        let mut m2 = [0u8; RESPONSE_MESSAGE_LEN];
        let keys = ExpectInitiation::new(Pattern::Ik, &mut rng, Some(&server), None)
            .unwrap()
            .read(&m1[..n1])
            .unwrap()
            .respond(9, SessionIndex(6), sent.local, &mut m2)
            .unwrap();
        let done = sent.finish(&m2).unwrap();
        let waiting = ExpectFirstData {
            peer: PeerId::Client(ClientId([1; 16])),
            client_id: ClientId([1; 16]),
            epoch: 1,
            seq: 1,
            connection: 9,
            keys,
            created: Instant::ZERO,
        };
        let app = App::UnreliableMessage(Message {
            target: "t",
            name: "n",
            payload: b"hi",
        });
        let tx = TxKey::Noise {
            key: done.keys.send,
            receiver: SessionIndex(6),
        };
        let mut buf = [0u8; 128];
        let n = seal(&tx, Counter(1), &app, &mut buf).unwrap();
        let Ok(Datagram::Noise(NoisePacket::Data { packet, .. })) = Datagram::parse(&buf[..n])
        else {
            panic!("a data packet");
        };
        let header = &buf[..DATA_HEADER_LEN];
        let mut scratch = [0u8; 128];
        let mut forged = buf;
        forged[n - 1] ^= 1;
        let Ok(Datagram::Noise(NoisePacket::Data { packet: bad, .. })) =
            Datagram::parse(&forged[..n])
        else {
            panic!("a data packet");
        };
        assert_eq!(
            waiting.open(&bad, header, &mut scratch).err(),
            Some(OpenError::Forged)
        );
        let first = waiting.open(&packet, header, &mut scratch).unwrap();
        assert_eq!(App::parse(first.plain), Ok(app));
        let window = first.window;
        let (session, _) = waiting.confirm(window, Instant::ZERO);
        assert_eq!(
            session.noise_record().map(|r| r.local),
            Some(SessionIndex(6))
        );
    }
}
