//! Replies to duplicates: how often a server answers a packet it has already accepted.
//!
//! A client whose ACK or RPC answer was lost sends its packet again, and must get the reply
//! again. Anyone who recorded the packet can send it again too, as often as they like, and in
//! suites 1 and 2 (and in suite 3 from the session's own address) the server cannot tell the
//! two apart. So a duplicate is answered, but within limits that a retransmitting client never
//! reaches and that make a replay cost the attacker more than it costs the client:
//!
//! - **Per call.** A cached RPC answer is sent again at most [`MAX_RESENDS`](crate::features::rpc::MAX_RESENDS) times, each time
//!   only after a gap that starts at half the session's smoothed RTT (or half the minimum RTO
//!   before any sample) and doubles with every resend, as the caller's own retransmission
//!   timer does, up to half the maximum RTO (the caller retries at least that often). A
//!   duplicate never extends the cached answer's lifetime.
//! - **Per session.** Every reply to a duplicate (re-sent answers and re-acknowledgements)
//!   is paid from a byte allowance of [`ALLOWANCE_BURST`] bytes that refills at
//!   [`ALLOWANCE_RATE`] bytes a second.
//! - **Suite 3, other addresses.** A duplicate that arrives from an address other than its
//!   session's is dropped unanswered (`noise.rs`): a client that moved sends new packets, not
//!   old ones, and the session is only moved by a packet that is new.
//!
//! A reliable message's re-acknowledgement is no larger than the message it answers, so the
//! allowance alone bounds it.

use core::net::SocketAddr;

use bytes::Bytes;

use super::calls::cache_bounds;
use super::{Server, ServerSession, Via};
use crate::endpoint::Outgoing;
use crate::features::rpc::Answer;
use crate::id::Counter;
use crate::time::{Duration, Instant};
use crate::wire::{self, App, RpcStatus};

/// Bytes of replies to duplicates a session may send at once.
pub(super) const ALLOWANCE_BURST: u32 = 16 * 1024;

/// Bytes a second by which a session's allowance refills.
pub(super) const ALLOWANCE_RATE: u32 = 8 * 1024;

/// A session's byte allowance for replies to duplicates (a token bucket).
#[derive(Debug, Clone, Copy)]
pub(super) struct Allowance {
    bytes: u32,
    refilled: Instant,
}

impl Allowance {
    /// A full allowance.
    pub(super) fn new(now: Instant) -> Self {
        Allowance {
            bytes: ALLOWANCE_BURST,
            refilled: now,
        }
    }

    /// Takes `cost` bytes if that many are left after refilling for the time since the last
    /// refill.
    pub(super) fn take(&mut self, now: Instant, cost: usize) -> bool {
        let elapsed = (now - self.refilled).as_micros();
        let earned = elapsed.saturating_mul(u128::from(ALLOWANCE_RATE)) / 1_000_000;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.bytes = self.bytes.saturating_add(earned).min(ALLOWANCE_BURST);
            self.refilled = now;
        }
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        if self.bytes >= cost {
            self.bytes -= cost;
            true
        } else {
            false
        }
    }
}

/// The first gap between resends of an answer on `s`: half its smoothed RTT, or half the
/// minimum RTO before any sample, so that a caller retransmitting on its own timer (never
/// sooner than one RTO, doubling) always finds the next resend allowed.
pub(super) fn resend_gap(s: &ServerSession, min_rto: Duration) -> Duration {
    s.rtt.smoothed().unwrap_or(min_rto).max(min_rto) / 2
}

impl Server {
    /// A packet the session at `from` had already accepted, opened to `plain`: re-acknowledge
    /// a reliable message or a group key delivery, re-send a call's cached answer, within the
    /// limits of the [module docs](self).
    pub(super) fn on_duplicate(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        plain: &[u8],
        via: Via,
    ) {
        let min_rto = self.config.limits.rtt.min_rto;
        let ceiling = self.config.limits.rtt.max_rto / 2;
        let status_len = if self.config.status.is_some() { 3 } else { 0 };
        if self.swallow_held_duplicate(from, counter) {
            return;
        }
        if self.on_duplicate_batch(now, from, counter, plain) {
            return;
        }
        let parsed = App::parse(plain);
        // Ordered: the receiver knows whether it holds it (it may have refused it before).
        if let Ok(App::OrderedMessage(o)) = &parsed {
            let Some(peer) = self.sessions.get(&from).map(|s| s.peer) else {
                return;
            };
            if !self.on_ordered(now, from, peer, o) {
                return;
            }
        }
        // Durable: its stored state decides whether to acknowledge again, not the window.
        if let Ok(App::DurableMessage(d)) = &parsed {
            if !self.on_durable(from, counter, d, via) {
                return;
            }
        }
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        if let Ok(
            app @ (App::RegisterRead(_)
            | App::RegisterValue(_)
            | App::Observe(_)
            | App::RegisterInfoRequest(_)),
        ) = parsed
        {
            // A retried register request: its answer may have been lost. Answered again
            // within the allowance (a write is judged again, never applied twice).
            if !s
                .duplicates
                .take(now, wire::SESSION_OVERHEAD + plain.len() + 16)
            {
                self.shared.stats.duplicate_replies_withheld += 1;
                return;
            }
            self.on_register_duplicate(now, from, counter, &app);
            return;
        }
        let (reply, plain_len) = match parsed {
            Ok(App::Segment(seg)) => {
                return self.on_segment_duplicate(now, from, counter, &seg, via)
            }
            // Re-acknowledge: the first ACK may have been lost (the reference never does, so
            // its clients report false failures: docs/PROTOCOL.md §10 item 10).
            Ok(App::ReliableMessage(_) | App::OrderedMessage(_) | App::DurableMessage(_)) => {
                (Outgoing::Ack { to: from, counter }, 9 + status_len)
            }
            // A subscription whose ACK was lost; one refused (table full) stays unacknowledged.
            Ok(App::Subscribe { target })
                if via == Via::Session && self.client_subs.holds(from, target) =>
            {
                (Outgoing::Ack { to: from, counter }, 9 + status_len)
            }
            // A group key delivery or unsubscription whose ACK was lost.
            Ok(App::GroupKey { .. } | App::Unsubscribe { .. }) if via == Via::Session => {
                (Outgoing::Ack { to: from, counter }, 9 + status_len)
            }
            // A retried call: answer from the cache, never run it again. If the answer is no
            // longer cached, say so rather than leave the caller waiting.
            Ok(App::RpcCall { .. }) if !s.calls.is_pending(counter) => {
                s.calls.expire_answers(self.config.rpc_cache_ttl, now);
                let gap = resend_gap(s, min_rto);
                let len = match s.calls.answer(counter) {
                    Some(a) if !a.resends.is_due(now) => {
                        self.shared.stats.duplicate_replies_withheld += 1;
                        return;
                    }
                    Some(a) => 11 + a.data.len(),
                    None => 11 + EXPIRED.len(),
                };
                if !s.duplicates.take(now, wire::SESSION_OVERHEAD + len) {
                    self.shared.stats.duplicate_replies_withheld += 1;
                    return;
                }
                match s.calls.answer_mut(counter) {
                    Some(a) => a.resends.record(now, gap, ceiling),
                    None => {
                        let data = Bytes::from_static(EXPIRED);
                        let expired = Answer::new(counter, RpcStatus::ERROR, data, now, gap);
                        s.calls.remember(cache_bounds(&self.config), expired, now);
                    }
                }
                let reply = Outgoing::RpcResponse {
                    to: from,
                    call: counter,
                };
                self.shared.tx.push_back(reply);
                return;
            }
            _ => return,
        };
        if !s.duplicates.take(now, wire::SESSION_OVERHEAD + plain_len) {
            self.shared.stats.duplicate_replies_withheld += 1;
            return;
        }
        self.shared.tx.push_back(reply);
    }
}

/// The answer to a retried call whose answer is no longer cached.
const EXPIRED: &[u8] = b"AnswerExpired";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_refills_at_its_rate() {
        let t0 = Instant::from_millis(1000);
        let mut a = Allowance::new(t0);
        assert!(a.take(t0, ALLOWANCE_BURST as usize));
        assert!(!a.take(t0, 1));
        let later = t0 + Duration::from_millis(500);
        assert!(a.take(later, (ALLOWANCE_RATE / 2) as usize));
        assert!(!a.take(later, 1));
    }
}
