//! The server charging its unauthenticated replies to the per-source budgets of
//! `handshake::budget` (the table and its eviction policy live there, beside the cookies that
//! guard suite 3 the same way).

use core::net::SocketAddr;

use super::Server;
use crate::endpoint::{DropReason, Outgoing};
use crate::handshake::budget::{Found, ReplyBudget};
use crate::time::Instant;
use crate::wire::Setup;

/// The server's use of the budgets: every unauthenticated reply is charged here first.
impl Server {
    /// The rate-limit entry of `to`. The table is bounded by `max_rate_limited_sources` and
    /// evicts when full, so every source gets a budget (see `budget`).
    pub(super) fn budget(&mut self, now: Instant, to: SocketAddr) -> &mut ReplyBudget {
        let (b, found) = self.limiter.entry(now, to);
        if found == Found::Evicted {
            self.shared.stats.budget_evictions += 1;
        }
        b
    }

    /// Takes one handshake reply (op 2, 6, 11, suite 3 response) from `to`'s budget. Called
    /// before any public-key work for the request.
    pub(super) fn allow_reply(&mut self, now: Instant, to: SocketAddr) -> bool {
        let limit = self.config.replies_per_second;
        let allowed = self.budget(now, to).take_reply(now, limit);
        if !allowed {
            self.shared.stats.drop(DropReason::RateLimited);
        }
        allowed
    }

    pub(super) fn reply_setup(&mut self, now: Instant, to: SocketAddr, packet: Setup) {
        if self.allow_reply(now, to) {
            self.shared.tx.push_back(Outgoing::Setup { to, packet });
        }
    }

    /// Op 4 (20 bytes, smaller than any session packet), at most once per gap per source.
    pub(super) fn reply_unrecognized(&mut self, now: Instant, to: SocketAddr) {
        if self.allow_unrecognized(now, to) {
            self.shared.tx.push_back(Outgoing::Setup {
                to,
                packet: Setup::UnrecognizedClient,
            });
        }
    }

    /// Takes the "you have no session" allowance of `to` (op 4, or suite 3's unknown index):
    /// once per gap, apart from the handshake budget.
    pub(super) fn allow_unrecognized(&mut self, now: Instant, to: SocketAddr) -> bool {
        let allowed = self.budget(now, to).take_unrecognized(now);
        if !allowed {
            self.shared.stats.drop(DropReason::RateLimited);
        }
        allowed
    }
}
