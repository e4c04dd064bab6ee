//! Failed authentications per source (`docs/PROTOCOL.md` §5.5): counted in a bounded table and
//! reported to the application as [`ServerEvent::AuthenticationFailed`] at most once per source per
//! `auth_report_interval`, so that a misconfigured client is visible in the server's log and
//! a flood of forgeries is not an event flood.

use alloc::collections::BTreeMap;
use core::net::SocketAddr;

use crate::time::Instant;

use super::super::ServerEvent;
use super::Server;

/// Failures of one source since its last report.
#[derive(Debug, Clone, Copy)]
pub(super) struct Failures {
    count: u32,
    last_report: Option<Instant>,
    last_seen: Instant,
}

/// The table, bounded by `max_rate_limited_sources`.
pub(super) type AuthLog = BTreeMap<SocketAddr, Failures>;

impl Server {
    /// A setup packet from `from` failed authentication: count it, and report it if this
    /// source was not reported within the interval.
    pub(super) fn auth_failed(&mut self, now: Instant, from: SocketAddr) {
        let interval = self.config.auth_report_interval;
        if !self.auth_log.contains_key(&from)
            && self.auth_log.len() >= self.config.max_rate_limited_sources.max(1)
        {
            // Make room: forget the source heard from least recently (a flood of spoofed
            // sources only ever costs the table its bound).
            if let Some(a) = crate::table::oldest_by(&self.auth_log, |f| f.last_seen) {
                self.auth_log.remove(&a);
            }
        }
        let f = self.auth_log.entry(from).or_insert(Failures {
            count: 0,
            last_report: None,
            last_seen: now,
        });
        f.count = f.count.saturating_add(1);
        f.last_seen = now;
        if f.last_report.is_none_or(|t| now - t >= interval) {
            let count = f.count;
            f.count = 0;
            f.last_report = Some(now);
            self.shared
                .events
                .push_back(ServerEvent::AuthenticationFailed { from, count });
        }
    }

    /// Forgets sources that neither failed nor were reported for two intervals.
    pub(super) fn expire_auth_log(&mut self, now: Instant) {
        let keep = self.config.auth_report_interval * 2;
        self.auth_log.retain(|_, f| now - f.last_seen < keep);
    }
}
