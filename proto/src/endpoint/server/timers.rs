//! The server's timer table: where each [`ServerTimer`] deadline is read from, and who handles
//! it when it expires.
//!
//! It parses no wire bytes and emits no events itself (housekeeping reports `PeerDown`). It
//! sends the join announcements (setup opcode 8, `NewServerJoin`).

use crate::id::Counter;
use crate::time::Instant;
use crate::wire::Setup;

use super::super::timers::{ServerTimer, ServerTimers, TimerKind};
use super::{Outgoing, Server, ANNOUNCE_GAP};

impl Server {
    /// Every timer's deadline, as `poll_timeout` reports their minimum.
    pub(super) fn timers(&self) -> ServerTimers {
        let mut table = ServerTimers::new();
        for &kind in ServerTimer::VALUES {
            table.set(kind, self.deadline(kind));
        }
        table
    }

    /// Runs every expired timer in [`ServerTimer::VALUES`] order; the outboxes are run by the
    /// `pump` that follows.
    pub(super) fn run_timers(&mut self, now: Instant) {
        for &kind in ServerTimer::VALUES.iter().filter(|k| !k.is_pumped()) {
            if self.deadline(kind).is_some_and(|t| t <= now) {
                self.on_timer(kind, now);
            }
        }
    }

    /// The deadline of `kind`, read from its owner.
    fn deadline(&self, kind: ServerTimer) -> Option<Instant> {
        match kind {
            ServerTimer::Housekeeping => self.next_housekeeping,
            ServerTimer::Announce => self.next_announce,
            ServerTimer::Segments => self.segments.next_due(),
            ServerTimer::OrderedStreams => self.ordered_due(),
            // Only sessions with something in flight: timers need not scan every session.
            ServerTimer::Outbox => self
                .busy
                .iter()
                .filter_map(|a| self.sessions.get(a))
                .filter_map(|s| {
                    s.outbox
                        .next_timeout(true, s.outbox.counter_budget(Counter(s.tx_counter)))
                })
                .min(),
            ServerTimer::Registers => self.registers_due(),
            ServerTimer::AckDelay => self.delayed_acks.next_due(),
            ServerTimer::Handoff => self.handoff_due(),
        }
    }

    /// Hands an expired timer to its owner.
    fn on_timer(&mut self, kind: ServerTimer, now: Instant) {
        match kind {
            ServerTimer::Housekeeping => {
                self.next_housekeeping = None;
                self.housekeeping(now);
            }
            ServerTimer::Announce => {
                if let Some(to) = self.config.announce {
                    self.shared.tx.push_back(Outgoing::Setup {
                        to,
                        packet: Setup::NewServerJoin,
                    });
                }
                self.announce_left = self.announce_left.saturating_sub(1);
                self.next_announce = (self.announce_left > 0).then(|| now + ANNOUNCE_GAP);
            }
            ServerTimer::Segments => {
                self.expire_partials(now);
                self.expire_transfers(now);
            }
            ServerTimer::OrderedStreams => self.on_ordered_timer(now),
            // Pumped (`is_pumped`): `handle_timeout` runs it through `pump`.
            ServerTimer::Outbox
            | ServerTimer::Registers
            | ServerTimer::AckDelay
            | ServerTimer::Handoff => {}
        }
    }
}
