//! Suite 3 on the client: the Noise initiator, cookies, key rotation.
//!
//! Read first: `docs/PROTOCOL.md` §12. Every initiation carries, encrypted, this process's epoch
//! and a handshake sequence number that only grows, so the server can tell a rekey of this
//! process (keep counters and window) from a new process (start afresh) and refuse a replayed
//! initiation. A new session is announced to the server by the first data packet under the new
//! keys; with nothing queued, the client sends a keepalive at once so the server learns of it.

use arrayvec::ArrayVec;
use core::net::SocketAddr;

use super::{Client, RemoteServer};
use crate::crypto::noise::{ChaChaKey, NoiseInitiator, Pattern};
use crate::endpoint::config::ClientCredentials;
use crate::endpoint::DropReason;
use crate::features::timesync::TimeSync;
use crate::id::Counter;
use crate::session::{open_with, OpenError, RxKey, RxSession, TxKey};
use crate::time::Instant;
use crate::wire::noise::{
    Initiation, Mode, NoisePacket, SessionIndex, DATA_HEADER_LEN, INITIATION_PAYLOAD_LEN,
    RESPONSE_PAYLOAD_LEN,
};
use crate::wire::SessionPacket;

/// The client's suite 3 state.
#[derive(Debug)]
pub(super) struct ClientNoise {
    pattern: Pattern,
    /// This process, as the server sees it; random at start.
    epoch: u64,
    /// The sequence number of the last initiation; each new one is higher.
    seq: u64,
    /// The handshake in flight: our index for it and the initiator state.
    pending: Option<(SessionIndex, NoiseInitiator)>,
    /// The last cookie the server gave us (zeros if none).
    cookie: [u8; 16],
    /// When the current keys were agreed, and how many packets went out under them.
    pub(super) established: Option<Instant>,
    pub(super) sent_under_key: u64,
}

/// Suite 3 state of one server session.
#[derive(Debug)]
pub(super) struct NoiseLink {
    /// The index the server puts on packets to us under the current keys.
    local: SessionIndex,
    /// The key before the last rotation, for packets still in flight.
    previous: Option<(SessionIndex, ChaChaKey)>,
    /// The server's name for this connection; a new one means its counters start afresh.
    epoch: u64,
}

impl ClientNoise {
    /// The suite 3 state for these credentials, or `None` for suites 1 and 2.
    pub(super) fn new(credentials: &ClientCredentials, epoch: u64) -> Option<Self> {
        let ClientCredentials::Noise { keys, server, psk } = credentials else {
            return None;
        };
        let pattern = match (keys.is_some() && server.is_some(), psk.is_some()) {
            (true, false) => Pattern::Ik,
            (true, true) => Pattern::IkPsk2,
            _ => Pattern::NnPsk0,
        };
        Some(ClientNoise {
            pattern,
            epoch,
            seq: 0,
            pending: None,
            cookie: [0; 16],
            established: None,
            sent_under_key: 0,
        })
    }
}

impl Client {
    /// A fresh initiation (new ephemeral key, higher sequence number), or `None` if the
    /// credentials cannot run the pattern.
    pub(super) fn noise_initiation(&mut self) -> Option<ArrayVec<u8, 160>> {
        let ClientCredentials::Noise { keys, server, psk } = &self.config.credentials else {
            return None;
        };
        let n = self.noise.as_mut()?;
        let mut initiator = NoiseInitiator::new(
            n.pattern,
            &mut self.rng,
            keys.as_ref(),
            server.as_ref(),
            psk.as_ref(),
        )
        .ok()?;
        n.seq += 1;
        let mut payload = [0u8; INITIATION_PAYLOAD_LEN];
        payload[..8].copy_from_slice(&n.epoch.to_le_bytes());
        payload[8..].copy_from_slice(&n.seq.to_le_bytes());
        let mut message = [0u8; 128];
        let len = initiator.write_initiation(&payload, &mut message).ok()?;
        let local = SessionIndex(self.rng.next_u64() as u32);
        let mode = match n.pattern {
            Pattern::Ik => Mode::Ik,
            Pattern::IkPsk2 => Mode::IkPsk2,
            _ => Mode::NnPsk0,
        };
        let packet = NoisePacket::Initiation(Initiation {
            mode,
            sender: local,
            cookie: n.cookie,
            client_id: (mode == Mode::NnPsk0).then_some(self.config.client_id),
            message: message.get(..len)?,
        });
        let mut buf = [0u8; 160];
        let written = packet.emit(&mut buf).ok()?;
        n.pending = Some((local, initiator));
        ArrayVec::try_from(&buf[..written]).ok()
    }

    pub(super) fn on_noise(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        packet: NoisePacket<'_>,
    ) {
        if self.noise.is_none() {
            return self.stats.drop(DropReason::Unexpected);
        }
        match packet {
            NoisePacket::Response(r) => {
                let Some(n) = self.noise.as_mut() else { return };
                let Some((local, initiator)) = n.pending.take_if(|(l, _)| *l == r.receiver) else {
                    return self.stats.drop(DropReason::Unexpected);
                };
                let mut payload = [0u8; RESPONSE_PAYLOAD_LEN];
                match initiator.read_response(r.message, &mut payload) {
                    Ok((RESPONSE_PAYLOAD_LEN, keys)) => {
                        let epoch = u64::from_le_bytes(payload);
                        n.cookie = [0; 16];
                        n.established = Some(now);
                        n.sent_under_key = 0;
                        self.on_noise_established(
                            now, from, local, r.sender, keys.send, keys.recv, epoch,
                        );
                    }
                    // A forged or stale response; the retry timer starts a new handshake.
                    _ => self.stats.drop(DropReason::BadHandshake),
                }
            }
            NoisePacket::CookieReply { receiver, cookie } => {
                let Some(n) = self.noise.as_mut() else { return };
                if n.pending.as_ref().is_some_and(|(l, _)| *l == receiver) {
                    // The server is under load: prove our address and ask again at once.
                    n.cookie = cookie;
                    if let Some(datagram) = self.noise_initiation() {
                        self.tx.push_back(crate::endpoint::Outgoing::Sealed {
                            to: self.config.server,
                            datagram,
                        });
                    }
                } else {
                    self.stats.drop(DropReason::Unexpected);
                }
            }
            NoisePacket::Data { receiver, packet } => {
                let header = data.get(..DATA_HEADER_LEN).unwrap_or_default();
                let mut scratch = core::mem::take(&mut self.scratch);
                self.on_noise_data(now, from, header, receiver, &packet, &mut scratch);
                self.scratch = scratch;
            }
            NoisePacket::UnknownIndex { receiver } => {
                // It names the index our packet carried: the server's index for us.
                let ours = self.servers.contains_key(&from)
                    && matches!(&self.sealer, Some(TxKey::Noise { receiver: r, .. }) if *r == receiver);
                if ours {
                    // The server lost our session (it restarted): handshake again.
                    self.request_handshake(now);
                } else {
                    self.stats.drop(DropReason::Unexpected);
                }
            }
            _ => self.stats.drop(DropReason::Unexpected),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_noise_established(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: SessionIndex,
        remote: SessionIndex,
        send: ChaChaKey,
        recv: ChaChaKey,
        epoch: u64,
    ) {
        self.sealer = Some(TxKey::Noise {
            key: send,
            receiver: remote,
        });
        let rekey = self
            .servers
            .get(&from)
            .and_then(|s| s.noise.as_ref())
            .is_some_and(|l| l.epoch == epoch);
        match self.servers.get_mut(&from) {
            // The same connection: a rekey. Counters and window go on; the old key is kept for
            // packets sealed before the server switched.
            Some(s) if s.noise.as_ref().is_some_and(|l| l.epoch == epoch) => {
                let old = core::mem::replace(&mut s.rx.key, RxKey::Noise(recv));
                if let (Some(link), RxKey::Noise(old)) = (s.noise.as_mut(), old) {
                    link.previous = Some((link.local, old));
                    link.local = local;
                }
                s.last_heard = now;
            }
            _ => {
                self.servers.insert(
                    from,
                    RemoteServer {
                        rx: RxSession::new(RxKey::Noise(recv), Counter(0)),
                        previous: None,
                        seen_before: None,
                        session_id: [0; 16],
                        // The response authenticated the server: nothing left to confirm.
                        confirmed: true,
                        last_heard: now,
                        up: true,
                        status: None,
                        clock: TimeSync::default(),
                        noise: Some(NoiseLink {
                            local,
                            previous: None,
                            epoch,
                        }),
                        client_info: None,
                    },
                );
            }
        }
        self.after_established(now, from, !rekey);
        // The server trusts the new keys only once we use them.
        if self.outbox.is_empty() {
            self.send_keepalive(now);
        }
    }

    fn on_noise_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        receiver: SessionIndex,
        packet: &SessionPacket<'_>,
        scratch: &mut [u8],
    ) {
        let Some(s) = self.servers.get_mut(&from) else {
            return self.stats.drop(DropReason::UnknownPeer);
        };
        let Some(link) = s.noise.as_ref() else {
            return self.stats.drop(DropReason::Unexpected);
        };
        let (key, by_previous) = if link.local == receiver {
            (s.rx.key.clone(), false)
        } else if let Some((_, k)) = link.previous.as_ref().filter(|(i, _)| *i == receiver) {
            (RxKey::Noise(k.clone()), true)
        } else {
            return self.stats.drop(DropReason::UnknownPeer);
        };
        let opened = open_with(&key, &mut s.rx.replay, packet, header, scratch);
        if let Err((OpenError::Forged, _)) = opened {
            return self.stats.drop(DropReason::Forged);
        }
        self.on_opened(now, from, from, packet.counter, opened, by_previous);
    }

    /// When the current suite 3 keys must be replaced (age), if they are in use.
    pub(super) fn rekey_due(&self) -> Option<Instant> {
        let n = self.noise.as_ref()?;
        // A round already running or waiting for its turn covers it.
        if n.pending.is_some()
            || self.deferred_round.is_some()
            || !matches!(self.connecting, super::Connecting::Idle)
        {
            return None;
        }
        let at = n.established? + self.config.rekey_after;
        // Worn out by use: due now (the current instant is the earliest a timer can mean).
        Some(if n.sent_under_key >= self.config.rekey_after_messages {
            at.min(self.last_now)
        } else {
            at
        })
    }
}
