//! The carry path: capturing a segment datagram, taking a `carry` frame from the mesh,
//! forwarding it around a partition, and emitting it (`docs/PROTOCOL.md` §14.4).

use alloc::vec::Vec;

use super::{Emit, LocalDatagram, Relay, RelayDrop, RelayId, EMIT_QUEUE};
use crate::endpoint::SendOptions;
use crate::features::relay::bucket::TokenBucket;
use crate::features::relay::echo::ContentKey;
use crate::features::relay::window::Verdict;
use crate::time::Instant;
use crate::wire::relay::{self as frames, Carry, FrameError};

impl Relay {
    /// The capture rules, in order: port, echo by source, size, echo by content, port rate.
    pub(super) fn capture(&mut self, now: Instant, d: LocalDatagram<'_>) {
        self.stats.captured += 1;
        if !self.config.ports.contains(&d.port) {
            return self.stats.drop(RelayDrop::UnknownPort);
        }
        if self.is_relay_addr(d.source) {
            return self.stats.drop(RelayDrop::Echo);
        }
        if Carry::header_len(&d.source, &d.scope) + d.payload.len() > frames::MAX_CARRY_FRAME {
            return self.stats.drop(RelayDrop::TooLarge);
        }
        let key = ContentKey::of(d.port, d.scope, d.payload);
        if self.echo.contains(now, &key) {
            return self.stats.drop(RelayDrop::Echo);
        }
        if !self
            .port_buckets
            .get_mut(&d.port)
            .is_some_and(|b| b.take(now))
        {
            return self.stats.drop(RelayDrop::PortRate);
        }
        self.echo.insert(now, key);
        self.seq += 1;
        let frame = Carry {
            hops: 1,
            origin: self.id,
            instance: self.instance,
            seq: self.seq,
            port: d.port,
            source: d.source,
            scope: d.scope,
            payload: d.payload,
        };
        if self.send_frame(now, &frame, |_, _| true) {
            self.stats.carried += 1;
        }
    }

    /// The receive rules, in order: parse, origin trusted, hops, port, our own, sequence
    /// window, origin rate, content; then emit (or stand by) and forward.
    pub(super) fn on_carry(&mut self, now: Instant, from: RelayId, payload: &[u8]) {
        let frame = match Carry::parse(payload) {
            Ok(f) => f,
            Err(FrameError::ZeroHops) => return self.stats.drop(RelayDrop::HopLimit),
            Err(_) => return self.stats.drop(RelayDrop::Malformed),
        };
        if frame.origin != self.id && !self.trusted.contains_key(&frame.origin) {
            return self.stats.drop(RelayDrop::UnknownRelay);
        }
        if frame.hops > self.config.limits.hop_limit {
            return self.stats.drop(RelayDrop::HopLimit);
        }
        if !self.config.ports.contains(&frame.port) {
            return self.stats.drop(RelayDrop::UnknownPort);
        }
        if frame.origin == self.id {
            return self.stats.drop(RelayDrop::Duplicate);
        }
        let verdict = self
            .windows
            .accept(now, frame.origin, frame.instance, frame.seq);
        if verdict == Verdict::Seen {
            return self.stats.drop(RelayDrop::Duplicate);
        }
        if !self.origin_bucket(now, frame.origin) {
            return self.stats.drop(RelayDrop::OriginRate);
        }
        let key = ContentKey::of(frame.port, frame.scope, frame.payload);
        if self.echo.contains(now, &key) {
            return self.stats.drop(RelayDrop::DuplicateContent);
        }
        self.echo.insert(now, key);
        // A sibling's capture was on our segment already: emitting it would send it back to
        // its own segment. It reaches us first whenever the sibling hears the broadcast before
        // we do, so its content key is recorded (our own capture of it becomes `echo`) and it
        // counts as `standby` even when we are the emitter.
        if self.emitter && !self.is_sibling(frame.origin) {
            self.queue_emit(&frame);
        } else {
            self.stats.standby += 1;
        }
        if frame.hops < self.config.limits.hop_limit {
            let fwd = Carry {
                hops: frame.hops + 1,
                ..frame
            };
            let origin = frame.origin;
            let sent = self.send_frame(now, &fwd, |id, p| {
                id != from && id != origin && !p.sees.contains(&origin)
            });
            if sent {
                self.stats.forwarded += 1;
            }
        }
    }

    /// Whether `relay` announced our segment (a sibling whose captures are ours too).
    fn is_sibling(&self, relay: RelayId) -> bool {
        self.peers
            .get(&relay)
            .is_some_and(|p| p.segment == self.config.segment)
    }

    /// Takes a token from `origin`'s bucket (made full on first use; at most `max_origins`
    /// buckets, the fullest forgotten first since it lost least by being forgotten).
    fn origin_bucket(&mut self, now: Instant, origin: RelayId) -> bool {
        let l = &self.config.limits;
        if !self.origin_buckets.contains_key(&origin)
            && self.origin_buckets.len() >= l.max_origins.max(1)
        {
            if let Some(k) = self.origin_buckets.keys().next().copied() {
                self.origin_buckets.remove(&k);
            }
        }
        self.origin_buckets
            .entry(origin)
            .or_insert_with(|| TokenBucket::new(l.per_origin_rate, l.per_origin_burst, now))
            .take(now)
    }

    /// Sends `frame` to every up peer `to` accepts; whether any got it.
    fn send_frame(
        &mut self,
        now: Instant,
        frame: &Carry<'_>,
        to: impl Fn(RelayId, &super::mesh::Peer) -> bool,
    ) -> bool {
        let mut buf = core::mem::take(&mut self.frame);
        buf.clear();
        buf.resize(frame.buffer_len(), 0);
        let mut any = false;
        if frame.emit(&mut buf).is_ok() {
            for (id, p) in self.peers.iter_mut() {
                if !p.up || !to(*id, p) {
                    continue;
                }
                let sent = p.client.send_message(
                    now,
                    frames::TARGET,
                    frames::CARRY,
                    &buf,
                    SendOptions::unreliable(),
                );
                any |= sent.is_ok();
            }
        }
        self.frame = buf;
        any
    }

    fn queue_emit(&mut self, frame: &Carry<'_>) {
        if self.emits.len() >= EMIT_QUEUE {
            return self.stats.drop(RelayDrop::EmitQueueFull);
        }
        let emit = Emit {
            source: frame.source,
            scope: frame.scope,
            port: frame.port,
            len: frame.payload.len(),
        };
        self.emits.push_back((emit, Vec::from(frame.payload)));
    }

    /// The next queued emission, copied into `buf`; one too large for `buf` is dropped
    /// `TooLarge` (the driver's buffer is smaller than documented).
    pub(super) fn next_emit(&mut self, buf: &mut [u8]) -> Option<Emit> {
        while let Some((emit, payload)) = self.emits.pop_front() {
            match buf.get_mut(..payload.len()) {
                Some(dst) => {
                    dst.copy_from_slice(&payload);
                    self.stats.emitted += 1;
                    return Some(emit);
                }
                None => self.stats.drop(RelayDrop::TooLarge),
            }
        }
        None
    }
}
