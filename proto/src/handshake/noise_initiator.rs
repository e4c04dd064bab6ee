//! The suite 3 initiator's state on a client: which initiations are in flight (one, or in
//! multicast mode several open to the whole group), the cookie a loaded server gave us, and
//! how old and worn the current keys are.
//!
//! The client endpoint routes responses, cookie replies and data to it and acts on what it
//! returns; the handshake messages themselves are [`SentInitiation`] and
//! [`SharedInitiation`]. Wire bytes: builds type 1 (initiation), reads the Noise message of
//! type 2 (response) and the cookie of type 3. Timers: the rekey deadline (`rekey_due`).
//! Events: none. Read first: `docs/PROTOCOL.md` §12.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::ecc::{KeyPair, PublicKey};
use crate::crypto::noise::{InitiatorKeys, NoiseError, Pattern, SharedInitiation};
use crate::crypto::static_dh::StaticDh;
use crate::endpoint::{ClientCredentials, Limits};
use crate::features::group::GroupState;
use crate::id::{ClientId, Counter};
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use crate::wire::noise::{Initiation, Mode, NoisePacket, SessionIndex, RESPONSE_PAYLOAD_LEN};

use super::noise::{initiation_payload, mode_of, Established, SentInitiation};

/// Initiations to a group kept open at once (retries, and unicast ones carrying a cookie);
/// the oldest is forgotten beyond it.
const MAX_OPEN: usize = 4;

/// Responses read per open initiation beyond `max_servers`, so that forged responses naming
/// our index cannot make us run Diffie-Hellman without end.
const SPARE_READS: usize = 8;

/// The client's suite 3 state.
#[derive(Debug)]
pub(crate) struct ClientNoise {
    pattern: Pattern,
    /// This process, as the server sees it; random at start.
    epoch: u64,
    /// The sequence number of the last initiation; each new one is higher.
    seq: u64,
    /// The handshake in flight: our index for it and the initiator state.
    pub(crate) pending: Option<SentInitiation>,
    /// The last cookie the server gave us (zeros if none).
    pub(crate) cookie: [u8; 16],
    /// When the current keys were agreed, and how many packets went out under them.
    pub(crate) established: Option<Instant>,
    pub(crate) sent_under_key: u64,
    /// Multicast: initiations sent to the group that servers may still answer, until the
    /// round closes.
    open: Vec<OpenInitiation>,
    /// Multicast: our sender id, group keys and their deliveries; `None` in unicast mode.
    pub(crate) group: Option<Box<GroupState>>,
    /// The top byte of our session indices, if the client shares a relay's socket.
    pub(crate) index_prefix: Option<u8>,
    /// IK patterns: `ss` with the server, computed once (`crypto::static_dh`).
    statics: Option<StaticDh>,
    /// The server said it lost our session (type 5): this round's initiations carry our
    /// oldest exchange in flight as 0-RTT data (`docs/PROTOCOL.md` §12.2). Cleared when keys
    /// are agreed.
    pub(crate) early_armed: bool,
    /// The counter of the exchange an initiation of this round carried, so that the new
    /// session does not send it again at once (the server acknowledges it).
    pub(crate) early_sent: Option<Counter>,
}

/// How the client reads its `Option<ClientNoise>`: as it is with suite 3 compiled, and as
/// `None`, a constant, without it. No suite 3 state can exist then, but the compiler cannot
/// know that from an `Option`; with the constant every suite 3 branch of the client is dead
/// code and not linked (issue 20).
pub(crate) trait NoiseSlot {
    /// The suite 3 state, if any.
    fn live(&self) -> Option<&ClientNoise>;
    /// The suite 3 state, if any, mutable.
    fn live_mut(&mut self) -> Option<&mut ClientNoise>;
}

impl NoiseSlot for Option<ClientNoise> {
    #[inline(always)]
    fn live(&self) -> Option<&ClientNoise> {
        if cfg!(feature = "suite-noise") {
            self.as_ref()
        } else {
            None
        }
    }

    #[inline(always)]
    fn live_mut(&mut self) -> Option<&mut ClientNoise> {
        if cfg!(feature = "suite-noise") {
            self.as_mut()
        } else {
            None
        }
    }
}

/// A group initiation that every server of the group may answer once.
#[derive(Debug)]
struct OpenInitiation {
    local: SessionIndex,
    init: SharedInitiation,
    answered: Vec<SocketAddr>,
    reads: usize,
}

impl ClientNoise {
    /// The suite 3 state for these credentials, or `None` for suites 1 and 2.
    pub(crate) fn new(
        credentials: &ClientCredentials,
        multicast: bool,
        limits: &Limits,
        rng: &mut Rng,
    ) -> Option<Self> {
        let epoch = rng.next_u64();
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
            open: Vec::new(),
            group: multicast.then(|| Box::new(GroupState::new(rng, limits))),
            index_prefix: None,
            statics: static_dh(keys.as_ref(), server.as_ref()),
            early_armed: false,
            early_sent: None,
        })
    }

    /// A fresh initiation (new ephemeral key, higher sequence number) carrying `cookie` and
    /// `early` (empty, or 0-RTT data made by `early_bytes`; unicast only), or `None` if the
    /// credentials cannot run the pattern. In multicast mode it stays open for every server
    /// of the group to answer, until the round closes.
    pub(crate) fn initiation(
        &mut self,
        keys: InitiatorKeys<'_>,
        client_id: ClientId,
        cookie: [u8; 16],
        early: &[u8],
        rng: &mut Rng,
    ) -> Option<Vec<u8>> {
        self.seq += 1;
        let payload = initiation_payload(self.epoch, self.seq);
        let mut message = alloc::vec![0u8; 128 + early.len()];
        // The index is drawn after the initiator's keys, as it always was: the same seed
        // gives the same handshake bytes.
        let (len, pending) = if self.group.is_some() {
            let (init, len) =
                SharedInitiation::new(self.pattern, rng, keys, &payload, &mut message).ok()?;
            (len, Err(init))
        } else {
            let creds = (keys.local, keys.server, keys.psk);
            let (sent, len) = SentInitiation::start_cached(
                self.pattern,
                rng,
                creds,
                self.statics.as_mut(),
                (self.epoch, self.seq, early),
                SessionIndex(0),
                &mut message,
            )
            .ok()?;
            (len, Ok(sent))
        };
        let local = SessionIndex(rng.next_u64() as u32).with_prefix(self.index_prefix);
        let mode = mode_of(self.pattern);
        let packet = NoisePacket::Initiation(Initiation {
            mode,
            sender: local,
            cookie,
            client_id: (mode == Mode::NnPsk0).then_some(client_id),
            message: message.get(..len)?,
        });
        let mut buf = alloc::vec![0u8; 160 + early.len()];
        let written = packet.emit(&mut buf).ok()?;
        match pending {
            Ok(mut sent) => {
                sent.local = local;
                self.pending = Some(sent);
            }
            Err(init) => {
                if self.open.len() >= MAX_OPEN {
                    self.open.remove(0);
                }
                self.open.push(OpenInitiation {
                    local,
                    init,
                    answered: Vec::new(),
                    reads: 0,
                });
            }
        }
        buf.truncate(written);
        Some(buf)
    }

    /// Reads a response from `from` to the initiation it names: our pending one (unicast), or
    /// one of the initiations open to the group. `None` if it names none, repeats an answer,
    /// or the initiation already read its share of responses (`max_servers` and a few spare).
    pub(crate) fn read_response(
        &mut self,
        keys: InitiatorKeys<'_>,
        max_servers: usize,
        from: SocketAddr,
        receiver: SessionIndex,
        message: &[u8],
    ) -> Option<Result<(SessionIndex, Established), NoiseError>> {
        let max_reads = max_servers.saturating_add(SPARE_READS);
        if self.group.is_none() {
            let sent = self.pending.take_if(|s| s.local == receiver)?;
            let local = sent.local;
            return Some(sent.finish(message).map(|e| (local, e)));
        }
        let open = self.open.iter_mut().find(|o| o.local == receiver)?;
        if open.answered.contains(&from) || open.reads >= max_reads {
            return None;
        }
        open.reads += 1;
        // A failed read leaves the initiation open for the other servers.
        let mut payload = [0u8; RESPONSE_PAYLOAD_LEN];
        let read = open.init.read_response(keys, message, &mut payload);
        if read.is_ok() {
            open.answered.push(from);
        }
        Some(match read {
            Ok((RESPONSE_PAYLOAD_LEN, keys)) => Ok((
                open.local,
                Established {
                    keys,
                    connection: u64::from_le_bytes(payload),
                },
            )),
            Ok(_) => Err(NoiseError::Setup),
            Err(e) => Err(e),
        })
    }

    /// A cookie reply naming `receiver`: whether it answers an initiation of ours. A unicast
    /// server's cookie is kept for our next initiations; a group's is good only at the one
    /// server that gave it, so the caller asks that one alone and it is not kept.
    pub(crate) fn on_cookie(&mut self, receiver: SessionIndex, cookie: [u8; 16]) -> bool {
        if self.group.is_some() {
            return self.open.iter().any(|o| o.local == receiver);
        }
        let ours = self.pending.as_ref().is_some_and(|s| s.local == receiver);
        if ours {
            self.cookie = cookie;
        }
        ours
    }

    /// New keys were agreed at `now`: the cookie is spent and the keys' age and use count
    /// start afresh.
    pub(crate) fn established(&mut self, now: Instant) {
        self.early_armed = false;
        self.cookie = [0; 16];
        self.established = Some(now);
        self.sent_under_key = 0;
    }

    /// Whether an initiation is in flight (pending, or open to the group).
    pub(crate) fn in_flight(&self) -> bool {
        self.pending.is_some() || !self.open.is_empty()
    }

    /// Multicast: the round closed; no server answers its initiations any more.
    pub(crate) fn close_round(&mut self) {
        self.open.clear();
    }

    /// Whether initiations to the group are still open.
    pub(crate) fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// When the current keys must be replaced: `after` their agreement, or at `now` once
    /// `after_messages` packets went out under them (the current instant is the earliest a
    /// timer can mean). `None` before the first keys or while an initiation is in flight.
    pub(crate) fn rekey_due(
        &self,
        after: Duration,
        after_messages: u64,
        now: Instant,
    ) -> Option<Instant> {
        if self.in_flight() {
            return None;
        }
        let at = self.established? + after;
        Some(if self.sent_under_key >= after_messages {
            at.min(now)
        } else {
            at
        })
    }
}

/// The initiator's keys in these credentials, or `None` for suites 1 and 2.
/// For the IK patterns: our static key pair, to which the first handshake adds `ss` with the
/// server (`crypto::static_dh`), so that later ones (rekeys, reconnections) skip it.
fn static_dh(keys: Option<&KeyPair>, server: Option<&PublicKey>) -> Option<StaticDh> {
    server?;
    keys.map(StaticDh::new)
}

pub(crate) fn initiator_keys(credentials: &ClientCredentials) -> Option<InitiatorKeys<'_>> {
    let ClientCredentials::Noise { keys, server, psk } = credentials else {
        return None;
    };
    Some(InitiatorKeys {
        local: keys.as_ref(),
        server: server.as_ref(),
        psk: psk.as_ref(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Psk;

    fn unicast() -> (ClientCredentials, ClientNoise, Rng) {
        let credentials = ClientCredentials::Noise {
            keys: None,
            server: None,
            psk: Some(Psk::from_bytes([9; 32])),
        };
        let mut rng = Rng::from_seed([3; 32]);
        let noise = ClientNoise::new(&credentials, false, &Limits::default(), &mut rng);
        (credentials, noise.expect("suite 3 credentials"), rng)
    }

    #[test]
    fn only_a_cookie_naming_the_pending_initiation_is_kept() {
        let (credentials, mut n, mut rng) = unicast();
        let keys = initiator_keys(&credentials).expect("noise keys");
        assert!(n
            .initiation(keys, ClientId([1; 16]), [0; 16], &[], &mut rng)
            .is_some());
        let local = n.pending.as_ref().expect("pending").local;
        let other = SessionIndex(local.0.wrapping_add(1));
        assert!(!n.on_cookie(other, [5; 16]));
        assert_eq!(n.cookie, [0; 16]);
        assert!(n.on_cookie(local, [5; 16]));
        assert_eq!(n.cookie, [5; 16]);
        n.established(Instant::ZERO);
        assert_eq!(n.cookie, [0; 16]);
    }

    #[test]
    fn rekey_is_due_by_age_or_by_use_but_not_while_initiating() {
        let (credentials, mut n, mut rng) = unicast();
        let (after, t0) = (Duration::from_secs(120), Instant::from_millis(1_000));
        let now = t0 + Duration::from_secs(1);
        assert_eq!(n.rekey_due(after, 10, now), None);
        n.established(t0);
        assert_eq!(n.rekey_due(after, 10, now), Some(t0 + after));
        n.sent_under_key = 10;
        assert_eq!(n.rekey_due(after, 10, now), Some(now));
        let keys = initiator_keys(&credentials).expect("noise keys");
        assert!(n
            .initiation(keys, ClientId([1; 16]), [0; 16], &[], &mut rng)
            .is_some());
        assert_eq!(n.rekey_due(after, 10, now), None);
    }
}
