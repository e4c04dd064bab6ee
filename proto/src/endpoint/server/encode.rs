//! What the server queued, made into datagrams: setup and pre-sealed packets as they are,
//! everything else sealed under its session's key at the moment it is sent (so a message that
//! waited, or an answer resent from the cache, carries a fresh counter or its own).

use alloc::collections::BTreeMap;
use core::net::SocketAddr;

use super::{batch, Server, ServerSession};
use crate::endpoint::durable as route;
use crate::endpoint::{copy_out, Encoded, Outgoing};
use crate::features::durable::{Durable, DurablePeer};
use crate::features::ordered::OrderedSender;
use crate::id::Counter;
use crate::reliability::InFlight;
use crate::session;
use crate::time::Instant;
use crate::wire::{App, StatusBytes};

impl Server {
    /// Writes `out` into `buf`; [`Encoded::Obsolete`] if its session (or the exchange or
    /// answer it sends) is gone.
    pub(super) fn encode(&mut self, now: Instant, out: Outgoing, buf: &mut [u8]) -> Encoded {
        if let Outgoing::Setup { to, packet } = &out {
            return Encoded::from(*to, packet.emit(buf));
        }
        if let Outgoing::Sealed { to, datagram } = &out {
            return copy_out(*to, datagram, buf);
        }
        if let Some(encoded) = self.encode_segments(&out, buf) {
            return encoded;
        }
        let to = match &out {
            Outgoing::Ack { to, .. }
            | Outgoing::Unreliable { to, .. }
            | Outgoing::Reliable { to, .. }
            | Outgoing::RpcResponse { to, .. }
            | Outgoing::TimeRequest { to }
            | Outgoing::TimeResponse { to, .. }
            | Outgoing::Quit { to }
            | Outgoing::Setup { to, .. }
            | Outgoing::AckRanges { to }
            | Outgoing::Refuse { to, .. }
            | Outgoing::Sealed { to, .. }
            | Outgoing::Initiation { to, .. }
            | Outgoing::Register { to, .. } => *to,
        };
        // Everything else is sealed under the session's key; no session, nothing to send.
        // One lookup serves the common case (suites 1 and 2, anything but an answer): the
        // session table is walked once per datagram.
        match self.sessions.get_mut(&to) {
            None => return Encoded::Obsolete,
            Some(s) if !batch::batches(s) && !matches!(out, Outgoing::RpcResponse { .. }) => {
                let fields = (self.config.status, &self.durable, &self.ordered_tx);
                return seal_on(s, fields, now, to, &out, buf);
            }
            Some(_) => {}
        }
        if let Some(encoded) = self.encode_coalesced(&out, buf) {
            return encoded;
        }
        if let Outgoing::RpcResponse { to, call } = &out {
            // An answer too large for a datagram goes as a transfer instead.
            if self.answer_segmented(now, *to, *call) {
                return Encoded::Obsolete;
            }
        }
        let Some(s) = self.sessions.get_mut(&to) else {
            return Encoded::Obsolete;
        };
        let fields = (self.config.status, &self.durable, &self.ordered_tx);
        seal_on(s, fields, now, to, &out, buf)
    }
}

/// The server's fields besides the session that sealing reads: the status byte of its ACKs,
/// the durable store and the ordered streams.
type SealFields<'a> = (
    Option<StatusBytes>,
    &'a Durable,
    &'a BTreeMap<SocketAddr, OrderedSender>,
);

/// Seals `out`, due to `to`, under the session `s`.
fn seal_on(
    s: &mut ServerSession,
    (status, durable, ordered_tx): SealFields<'_>,
    now: Instant,
    to: SocketAddr,
    out: &Outgoing,
    buf: &mut [u8],
) -> Encoded {
    let result = match out {
        Outgoing::Ack { counter, .. } => {
            let app = App::Ack {
                counter: *counter,
                status,
            };
            session::seal(&s.tx_key, take(&mut s.tx_counter), &app, buf)
        }
        Outgoing::Unreliable { message, .. } => session::seal(
            &s.tx_key,
            take(&mut s.tx_counter),
            &message.as_app(false),
            buf,
        ),
        Outgoing::Reliable { id, .. } => match s.outbox.get(*id) {
            Some(InFlight {
                counter: Some(c),
                payload,
                ..
            }) => {
                let durable = payload.durable().map(|seq| {
                    let to = DurablePeer::Client(s.peer);
                    route::packet(durable, to, seq)
                });
                let Some(mut app) = payload.as_app().or(durable.flatten()) else {
                    return Encoded::Obsolete;
                };
                if let (App::OrderedMessage(o), Some(streams)) = (&mut app, ordered_tx.get(&to)) {
                    streams.stamp(o);
                }
                session::seal(&s.tx_key, *c, &app, buf)
            }
            _ => return Encoded::Obsolete,
        },
        Outgoing::RpcResponse { call, .. } => match s.calls.answer(*call) {
            Some(a) => {
                let app = App::RpcResponse {
                    call: a.call,
                    status: a.status,
                    data: &a.data,
                };
                session::seal(&s.tx_key, take(&mut s.tx_counter), &app, buf)
            }
            None => return Encoded::Obsolete,
        },
        Outgoing::Register { reply, .. } => {
            session::seal(&s.tx_key, take(&mut s.tx_counter), &reply.as_app(), buf)
        }
        Outgoing::TimeResponse { request, .. } => {
            let app = App::TimeSyncResponse {
                request: *request,
                monotonic_us: now.as_micros(),
                unix_us: None,
            };
            session::seal(&s.tx_key, take(&mut s.tx_counter), &app, buf)
        }
        // Not queued by a server: its quit is sealed before the session goes (`disconnect`),
        // and it makes no time requests; setup and sealed packets were handled above.
        Outgoing::Quit { .. }
        | Outgoing::TimeRequest { .. }
        | Outgoing::Setup { .. }
        | Outgoing::AckRanges { .. }
        | Outgoing::Refuse { .. }
        | Outgoing::Sealed { .. }
        | Outgoing::Initiation { .. } => return Encoded::Obsolete,
    };
    Encoded::from(to, result)
}

/// Takes the next counter of a session's send sequence.
pub(super) fn take(counter: &mut u64) -> Counter {
    let c = Counter(*counter);
    *counter += 1;
    c
}
