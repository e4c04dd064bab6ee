//! The client's timer table: where each [`ClientTimer`] deadline is read from, and who handles
//! it when it expires.
//!
//! Deadlines stay with their owners (the handshake state, the outbox, each feature); this file
//! only gathers them into a [`ClientTimers`] table and dispatches. It parses no wire bytes; the
//! events it emits are `PeerDown` (liveness) and `TimeSyncTimedOut` (a time sync's deadline).

use alloc::vec::Vec;

use crate::features::timesync::Retry;
use crate::time::Instant;

use super::super::timers::{ClientTimer, ClientTimers, TimerKind};
use super::{Client, ClientEvent, Outgoing};
use crate::handshake::rounds::Connecting;

impl Client {
    /// Every timer's deadline, as `poll_timeout` reports their minimum.
    pub(super) fn timers(&self) -> ClientTimers {
        let mut table = ClientTimers::new();
        for &kind in ClientTimer::VALUES {
            table.set(kind, self.deadline(kind));
        }
        table
    }

    /// Runs every expired timer in [`ClientTimer::VALUES`] order. Each deadline is read again
    /// just before its turn, because an earlier handler may have moved it. The outbox, group
    /// key and subscription timers are run by the `pump` that follows.
    pub(super) fn run_timers(&mut self, now: Instant) {
        for &kind in ClientTimer::VALUES.iter().filter(|k| !k.is_pumped()) {
            if self.deadline(kind).is_some_and(|t| t <= now) {
                self.on_timer(kind, now);
            }
        }
    }

    /// The deadline of `kind`, read from its owner.
    fn deadline(&self, kind: ClientTimer) -> Option<Instant> {
        match kind {
            ClientTimer::HandshakeRetry => match self.rounds.connecting {
                Connecting::Requesting { next_retry, .. } => next_retry,
                _ => None,
            },
            ClientTimer::Rekey => self.rekey_due(),
            ClientTimer::DeferredRound => self.rounds.deferred,
            ClientTimer::Suspicion => self.suspicion_due(),
            ClientTimer::Confirm => self.rounds.confirm_by,
            ClientTimer::RoundClose => self.rounds.close,
            ClientTimer::Liveness => {
                let down = self.config.limits.down_timeout;
                self.servers
                    .values()
                    .filter(|s| s.up)
                    .map(|s| s.last_heard + down)
                    .min()
            }
            ClientTimer::Keepalive => self.keepalive_due(),
            ClientTimer::TimeSync => self.time.periodic_due(self.is_connected()),
            ClientTimer::TimeRetry => self.time.retry_due(),
            #[cfg(feature = "segment")]
            ClientTimer::Segments => self.segments.next_due(),
            #[cfg(not(feature = "segment"))]
            ClientTimer::Segments => None,
            ClientTimer::OrderedStreams => self.ordered_due(),
            ClientTimer::Outbox => self.outbox.next_timeout(
                self.is_connected() && self.session_ready(),
                self.counter_budget(),
            ),
            ClientTimer::GroupKeys => self.group_timeout(),
            ClientTimer::Subscriptions => self.subs_timeout(),
            ClientTimer::Registers => self.registers_timeout(),
            ClientTimer::AckDelay => self.delayed_acks.next_due(),
            ClientTimer::Handoff => self.handoff_due(),
        }
    }

    /// Hands an expired timer to its owner.
    fn on_timer(&mut self, kind: ClientTimer, now: Instant) {
        match kind {
            ClientTimer::HandshakeRetry => {
                if let Connecting::Requesting { attempt, .. } = self.rounds.connecting {
                    self.send_request(attempt.saturating_add(1));
                }
            }
            ClientTimer::Rekey => {
                // Suite 3 keys are old or worn: agree new ones; the current ones work meanwhile.
                self.group_rotate_on_next_round();
                self.request_handshake(now);
            }
            ClientTimer::DeferredRound => {
                self.rounds.deferred = None;
                self.request_handshake(now);
            }
            ClientTimer::Suspicion => self.check_suspicion(now),
            ClientTimer::Confirm => {
                self.rounds.confirm_by = None;
                self.on_unconfirmed(now);
            }
            ClientTimer::RoundClose => {
                self.rounds.close = None;
                self.initiator.new_round(&mut self.rng);
                self.group_round_closed();
            }
            ClientTimer::Liveness => self.on_liveness_timeout(now),
            ClientTimer::Keepalive => self.send_keepalive(now),
            ClientTimer::TimeSync => {
                self.send_time_request(now);
                self.time.on_periodic(now, self.config.time_sync);
            }
            ClientTimer::TimeRetry => {
                let connected = self.is_connected();
                let rtt = &self.rtt;
                match self.time.on_retry(now, connected, |sent| rtt.backoff(sent)) {
                    Retry::Send => self.send_time_request(now),
                    Retry::Wait => {}
                    Retry::TimedOut(sync) => self
                        .shared
                        .events
                        .push_back(ClientEvent::TimeSyncTimedOut { sync }),
                }
            }
            ClientTimer::Segments => {
                self.expire_partials(now);
                self.expire_transfers(now);
            }
            ClientTimer::OrderedStreams => self.on_ordered_timer(now),
            // Pumped kinds (`is_pumped`): `handle_timeout` runs them through `pump`.
            ClientTimer::Outbox
            | ClientTimer::GroupKeys
            | ClientTimer::Subscriptions
            | ClientTimer::Registers
            | ClientTimer::AckDelay
            | ClientTimer::Handoff => {}
        }
    }

    /// Reports down every server silent for the down timeout, and starts looking for them.
    fn on_liveness_timeout(&mut self, now: Instant) {
        let down_timeout = self.config.limits.down_timeout;
        let mut downed = Vec::new();
        for (addr, s) in self.servers.iter_mut() {
            if s.up && now - s.last_heard >= down_timeout {
                s.up = false;
                self.shared
                    .events
                    .push_back(ClientEvent::PeerDown { addr: *addr });
                downed.push(*addr);
            }
        }
        for addr in downed.iter() {
            self.subs_on_lost(now, *addr);
        }
        if !downed.is_empty() {
            self.on_contact_lost(now);
        }
    }

    /// Queues a time request to the server (the group); it is stamped when sealed.
    fn send_time_request(&mut self, now: Instant) {
        self.shared.tx.push_back(Outgoing::TimeRequest {
            to: self.config.server,
        });
        self.last_sent = now;
    }
}
