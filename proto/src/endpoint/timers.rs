//! The timer tables: one enum of timer kinds per role, and a fixed array of deadlines indexed
//! by it.
//!
//! Parses no wire bytes and emits no events: it only says which kinds are due. A role fills
//! the table from the owners of its deadlines (the handshake, the outbox, each feature), so
//! that a deadline is stored once, where it is changed; `poll_timeout` is the table's minimum,
//! and `handle_timeout` walks the kinds in [`ClientTimer::VALUES`] (or
//! [`ServerTimer::VALUES`]) order and dispatches each expired one to its owner. The walk
//! reads each deadline again just before its turn, because an earlier handler may have moved
//! it (a new handshake round arms a new retry); that order is part of the endpoints'
//! behaviour and the scenario digests depend on it.
//!
//! A new feature with a deadline adds a kind at the end of its role's enum (or where its
//! handler must run relative to the others), reports its deadline in the role's `deadline`,
//! and handles it in the role's `on_timer`.

use crate::time::Instant;

/// A kind of timer: a C-like enum whose discriminants index a [`TimerTable`].
pub(crate) trait TimerKind: Copy + 'static {
    /// Every kind, in the order `handle_timeout` runs them; `VALUES[k as usize] == k`.
    const VALUES: &'static [Self];

    /// The kind's slot in the table.
    fn index(self) -> usize;

    /// Whether the role's `pump` runs this kind (an outbox's retransmissions and deadlines),
    /// after every input, so that the walk of `handle_timeout` need not read its deadline.
    fn is_pumped(self) -> bool;
}

/// One optional deadline per timer kind. `N` is the kind's count (`K::VALUES.len()`); the
/// roles name it through [`ClientTimers`] and [`ServerTimers`], so it cannot drift from the
/// enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerTable<K, const N: usize> {
    deadlines: [Option<Instant>; N],
    kind: core::marker::PhantomData<K>,
}

impl<K: TimerKind, const N: usize> TimerTable<K, N> {
    /// A table with every timer stopped.
    pub(crate) fn new() -> Self {
        debug_assert_eq!(K::VALUES.len(), N);
        TimerTable {
            deadlines: [None; N],
            kind: core::marker::PhantomData,
        }
    }

    /// Arms (or, with `None`, stops) the timer `kind`.
    pub(crate) fn set(&mut self, kind: K, at: Option<Instant>) {
        if let Some(slot) = self.deadlines.get_mut(kind.index()) {
            *slot = at;
        }
    }

    /// The earliest armed deadline: when `handle_timeout` next has work.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

/// The client's timers, in the order `Client::handle_timeout` runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientTimer {
    /// Op 1 (or the suite 3 initiation) of the open round is sent again.
    HandshakeRetry = 0,
    /// Suite 3 keys are old or worn: a new handshake.
    Rekey = 1,
    /// A round asked for while rounds were rate limited.
    DeferredRound = 2,
    /// An unauthenticated claim that a server lost us is checked.
    Suspicion = 3,
    /// A session still unconfirmed: resend the client-info or start a round.
    Confirm = 4,
    /// Multicast: the open round's challenge rotates.
    RoundClose = 5,
    /// A server silent for the down timeout is reported down.
    Liveness = 6,
    /// The keepalive goes out.
    Keepalive = 7,
    /// The periodic time request (`ClientConfig::time_sync`).
    TimeSync = 8,
    /// The time request of `sync_time` is asked again, or times out.
    TimeRetry = 9,
    /// Segmented messages: a partial message without progress is freed, a transfer past its
    /// deadline ends.
    Segments = 10,
    /// Ordered streams (op 36) idle for `OrderedLimits::idle` are forgotten.
    OrderedStreams = 11,
    /// Reliable messages and calls: retransmissions and deadlines (run by `pump`).
    Outbox = 12,
    /// Suite 3 group key deliveries (run by `pump`).
    GroupKeys = 13,
    /// Our subscription exchanges, opcodes 13 and 14 (run by `pump`).
    Subscriptions = 14,
    /// Our register exchanges, opcodes 6 to 9 (run by `pump`).
    Registers = 15,
    /// Suite 3: ACKs held for a burst are sent (`features::ack_delay`; run by `pump`).
    AckDelay = 16,
    /// Held messages past `Limits::handoff_timeout` are refused (`features::handoff`; run by
    /// `pump`).
    Handoff = 17,
}

impl TimerKind for ClientTimer {
    const VALUES: &'static [Self] = &[
        ClientTimer::HandshakeRetry,
        ClientTimer::Rekey,
        ClientTimer::DeferredRound,
        ClientTimer::Suspicion,
        ClientTimer::Confirm,
        ClientTimer::RoundClose,
        ClientTimer::Liveness,
        ClientTimer::Keepalive,
        ClientTimer::TimeSync,
        ClientTimer::TimeRetry,
        ClientTimer::Segments,
        ClientTimer::OrderedStreams,
        ClientTimer::Outbox,
        ClientTimer::GroupKeys,
        ClientTimer::Subscriptions,
        ClientTimer::Registers,
        ClientTimer::AckDelay,
        ClientTimer::Handoff,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn is_pumped(self) -> bool {
        matches!(
            self,
            ClientTimer::Outbox
                | ClientTimer::GroupKeys
                | ClientTimer::Subscriptions
                | ClientTimer::Registers
                | ClientTimer::AckDelay
                | ClientTimer::Handoff
        )
    }
}

/// The client's table: one slot per [`ClientTimer`], the last kind's discriminant plus one.
pub(crate) type ClientTimers = TimerTable<ClientTimer, { ClientTimer::Handoff as usize + 1 }>;

/// The server's timers, in the order `Server::handle_timeout` runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerTimer {
    /// Unauthenticated tables, the answer cache and liveness are swept.
    Housekeeping = 0,
    /// The next of the three join announcements.
    Announce = 1,
    /// Segmented messages: a partial message without progress is freed, a transfer past its
    /// deadline ends.
    Segments = 2,
    /// Ordered streams (op 36) idle for `OrderedLimits::idle` are forgotten.
    OrderedStreams = 3,
    /// Reliable messages and (un)subscriptions of busy sessions (run by `pump`).
    Outbox = 4,
    /// Register notifications held back by an observer's interval, and the ends of
    /// observations (run by `pump`, before the outboxes it fills).
    Registers = 5,
    /// Suite 3: ACKs held for a burst are sent (`features::ack_delay`; run by `pump`).
    AckDelay = 6,
    /// Held messages past `Limits::handoff_timeout` are refused (`features::handoff`; run by
    /// `pump`).
    Handoff = 7,
}

impl TimerKind for ServerTimer {
    const VALUES: &'static [Self] = &[
        ServerTimer::Housekeeping,
        ServerTimer::Announce,
        ServerTimer::Segments,
        ServerTimer::OrderedStreams,
        ServerTimer::Outbox,
        ServerTimer::Registers,
        ServerTimer::AckDelay,
        ServerTimer::Handoff,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn is_pumped(self) -> bool {
        matches!(
            self,
            ServerTimer::Outbox
                | ServerTimer::Registers
                | ServerTimer::AckDelay
                | ServerTimer::Handoff
        )
    }
}

/// The server's table: one slot per [`ServerTimer`].
pub(crate) type ServerTimers = TimerTable<ServerTimer, { ServerTimer::Handoff as usize + 1 }>;

#[cfg(test)]
mod tests {
    use super::*;

    fn values_index_themselves<K: TimerKind + core::fmt::Debug + PartialEq>() {
        for (i, k) in K::VALUES.iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?} out of order");
        }
    }

    #[test]
    fn every_kind_has_its_own_slot_in_order() {
        values_index_themselves::<ClientTimer>();
        values_index_themselves::<ServerTimer>();
        assert_eq!(
            ClientTimer::VALUES.len(),
            ClientTimers::new().deadlines.len()
        );
        assert_eq!(
            ServerTimer::VALUES.len(),
            ServerTimers::new().deadlines.len()
        );
    }

    fn pumped_kinds_come_last<K: TimerKind + core::fmt::Debug>() {
        let first = K::VALUES.iter().position(|k| k.is_pumped());
        let first = first.unwrap_or(K::VALUES.len());
        for k in &K::VALUES[first..] {
            assert!(k.is_pumped(), "{k:?} would run before the pump it follows");
        }
    }

    /// `handle_timeout` walks the other kinds, then pumps: the table's order must say so.
    #[test]
    fn the_pumped_kinds_are_the_last() {
        pumped_kinds_come_last::<ClientTimer>();
        pumped_kinds_come_last::<ServerTimer>();
    }

    #[test]
    fn next_timeout_is_the_earliest_armed_deadline() {
        let mut t = ClientTimers::new();
        assert_eq!(t.next_timeout(), None);
        t.set(ClientTimer::Keepalive, Some(Instant::from_micros(30)));
        t.set(ClientTimer::Rekey, Some(Instant::from_micros(20)));
        t.set(ClientTimer::Subscriptions, Some(Instant::from_micros(10)));
        assert_eq!(t.next_timeout(), Some(Instant::from_micros(10)));
        t.set(ClientTimer::Subscriptions, None);
        assert_eq!(t.next_timeout(), Some(Instant::from_micros(20)));
        assert_eq!(
            t.deadlines[ClientTimer::Keepalive as usize],
            Some(Instant::from_micros(30))
        );
        assert_eq!(t.deadlines[ClientTimer::Outbox as usize], None);
    }
}
