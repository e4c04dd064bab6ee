//! Live statistics of a running endpoint: a [`MetricsSnapshot`] of its counters, session
//! count and round-trip histogram, rendered in the Prometheus text exposition format (version
//! 0.0.4), and a [`MetricsServer`] that serves it at `GET /metrics` for a Prometheus scraper.
//!
//! The adapters' handles make snapshots (`metrics()`) and serve them (`serve_metrics(addr)`);
//! `pav serve --metrics ADDR` and `pav relay --metrics ADDR` are built on them. Every series
//! carries a `role` label, so that the endpoints of one process (a relay's mesh, a server and
//! its clients) can share one exposition; `docs/METRICS.md` lists every metric.
//!
//! A snapshot is made by the driver from the endpoint's own [`Stats`], so it costs the
//! endpoint nothing between scrapes: the counters are kept whether or not anyone reads them.
//!
//! # Examples
//! ```
//! use pavillion_io::metrics::{MetricsRole, MetricsSnapshot};
//! use pavillion_proto::endpoint::Stats;
//!
//! let mut stats = Stats::default();
//! stats.handshakes = 3;
//! let text = MetricsSnapshot::new(MetricsRole::Server, 2, stats).render();
//! assert!(text.contains("pavillion_handshakes_total{role=\"server\"} 3\n"));
//! assert!(text.contains("pavillion_sessions{role=\"server\"} 2\n"));
//! ```

use std::fmt::{self, Write as _};
use std::time::Duration;

use pavillion_proto::endpoint::Stats;

mod server;
#[cfg(test)]
mod tests;

pub use server::{MetricsServer, MetricsSource, IO_TIMEOUT, MAX_REQUEST};

/// The content type of the exposition, as a scraper expects it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which kind of endpoint a snapshot is of: the `role` label of every series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricsRole {
    /// A fleet's authority.
    Authority,
    /// A client.
    Client,
    /// A fleet member.
    Member,
    /// A relay of the mesh (its mesh endpoints summed).
    Relay,
    /// A server.
    Server,
}

impl MetricsRole {
    /// The label value: `authority`, `client`, `member`, `relay` or `server`.
    pub const fn name(self) -> &'static str {
        match self {
            MetricsRole::Authority => "authority",
            MetricsRole::Client => "client",
            MetricsRole::Member => "member",
            MetricsRole::Relay => "relay",
            MetricsRole::Server => "server",
        }
    }
}

impl fmt::Display for MetricsRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one endpoint counted, at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// The kind of endpoint.
    pub role: MetricsRole,
    /// Sessions up now: a server's clients, a client's servers, a relay's or member's peers.
    pub sessions: u64,
    /// The endpoint's counters, drops by reason and round-trip histogram.
    pub stats: Stats,
}

impl MetricsSnapshot {
    /// A snapshot of `stats` for an endpoint of `role` holding `sessions` sessions.
    pub fn new(role: MetricsRole, sessions: u64, stats: Stats) -> Self {
        MetricsSnapshot {
            role,
            sessions,
            stats,
        }
    }

    /// The round-trip time under which a fraction `q` (0 to 1) of the samples fell, to the
    /// histogram's resolution; `None` before the first sample.
    pub fn rtt_quantile(&self, q: f64) -> Option<Duration> {
        self.stats.rtt.quantile(q)
    }

    /// The 50th, 90th and 99th percentiles of the round-trip samples, as `pav --stats` prints
    /// them; `None` before the first sample.
    pub fn rtt_percentiles(&self) -> Option<RttPercentiles> {
        RttPercentiles::of(&self.stats)
    }

    /// This snapshot alone in the Prometheus text format.
    pub fn render(&self) -> String {
        render(std::slice::from_ref(self))
    }
}

/// The usual percentiles of a round-trip histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttPercentiles {
    /// Samples counted.
    pub samples: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl RttPercentiles {
    /// The percentiles of `stats`' histogram; `None` before the first sample.
    pub fn of(stats: &Stats) -> Option<Self> {
        Some(RttPercentiles {
            samples: stats.rtt.count(),
            p50: stats.rtt.quantile(0.5)?,
            p90: stats.rtt.quantile(0.9)?,
            p99: stats.rtt.quantile(0.99)?,
        })
    }
}

impl fmt::Display for RttPercentiles {
    /// `rtt p50 1.2ms p90 3.4ms p99 9.9ms (812 samples)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rtt p50 {} p90 {} p99 {} ({} samples)",
            Millis(self.p50),
            Millis(self.p90),
            Millis(self.p99),
            self.samples
        )
    }
}

/// A duration as milliseconds with up to three decimals, for people.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us >= 100_000 {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{}.{:03}ms", us / 1000, us % 1000)
        }
    }
}

/// One counter family: its name, help text and how to read it from [`Stats`].
struct Counter {
    name: &'static str,
    help: &'static str,
    read: fn(&Stats) -> u64,
}

/// The plain counters, in the order they are rendered.
const COUNTERS: &[Counter] = &[
    Counter {
        name: "pavillion_datagrams_received_total",
        help: "Datagrams handed to the endpoint.",
        read: |s| s.datagrams_received,
    },
    Counter {
        name: "pavillion_datagrams_sent_total",
        help: "Datagrams the endpoint queued for sending.",
        read: |s| s.datagrams_sent,
    },
    Counter {
        name: "pavillion_handshakes_total",
        help: "Completed handshakes.",
        read: |s| s.handshakes,
    },
    Counter {
        name: "pavillion_handshake_requests_total",
        help: "Handshake requests sent (client) or answered (server).",
        read: |s| s.handshake_requests,
    },
    Counter {
        name: "pavillion_messages_received_total",
        help: "Messages delivered to the application.",
        read: |s| s.messages_received,
    },
    Counter {
        name: "pavillion_retransmissions_total",
        help: "Retransmissions of reliable messages.",
        read: |s| s.retransmissions,
    },
    Counter {
        name: "pavillion_send_errors_total",
        help: "Queued datagrams that could not be written.",
        read: |s| s.send_errors,
    },
    Counter {
        name: "pavillion_public_key_ops_total",
        help: "X25519 operations done for handshakes.",
        read: |s| s.public_key_ops,
    },
    Counter {
        name: "pavillion_claims_disbelieved_total",
        help: "Client: unauthenticated claims of a lost session not acted on.",
        read: |s| s.claims_disbelieved,
    },
    Counter {
        name: "pavillion_cookie_replies_total",
        help: "Server: suite 3 cookie replies sent.",
        read: |s| s.cookie_replies,
    },
    Counter {
        name: "pavillion_budget_evictions_total",
        help: "Server: sources whose reply budget was forgotten to make room.",
        read: |s| s.budget_evictions,
    },
    Counter {
        name: "pavillion_duplicate_replies_withheld_total",
        help: "Server: replies to duplicate packets held back by the duplicate-reply limits.",
        read: |s| s.duplicate_replies_withheld,
    },
    Counter {
        name: "pavillion_batches_sent_total",
        help: "Suite 3: datagrams sent as an op 38 batch.",
        read: |s| s.batches_sent,
    },
    Counter {
        name: "pavillion_frames_batched_total",
        help: "Suite 3: frames carried in op 38 batches.",
        read: |s| s.frames_batched,
    },
    Counter {
        name: "pavillion_acks_delayed_total",
        help: "Suite 3: acknowledgements held back for a burst.",
        read: |s| s.acks_delayed,
    },
    Counter {
        name: "pavillion_ack_ranges_sent_total",
        help: "Suite 3: op 39 frames sent (several counters acknowledged at once).",
        read: |s| s.ack_ranges_sent,
    },
    Counter {
        name: "pavillion_secrets_dropped_total",
        help: "Session secrets dropped from a full key log queue.",
        read: |s| s.secrets_dropped,
    },
    Counter {
        name: "pavillion_handoffs_refused_total",
        help: "Server: held messages refused by the application, to come again.",
        read: |s| s.handoffs_refused,
    },
    Counter {
        name: "pavillion_handoffs_expired_total",
        help: "Server: held messages refused because the hand-off timeout passed.",
        read: |s| s.handoffs_expired,
    },
    Counter {
        name: "pavillion_handoff_duplicates_total",
        help: "Server: duplicates of held messages, neither acknowledged nor delivered.",
        read: |s| s.handoff_duplicates,
    },
    Counter {
        name: "pavillion_handoffs_session_gone_total",
        help:
            "Server: held messages dropped because their session ended, to come again on the next.",
        read: |s| s.handoffs_session_gone,
    },
];

/// Renders `snapshots` as one exposition in the Prometheus text format 0.0.4: each family's
/// `# HELP` and `# TYPE` once, then one series per snapshot, labelled with its role. Two
/// snapshots of the same role would make duplicate series: give each endpoint its own role,
/// or sum their [`Stats`] first ([`Stats::add`]).
pub fn render(snapshots: &[MetricsSnapshot]) -> String {
    let mut out = String::with_capacity(4096 + snapshots.len() * 8192);
    // Writing into a String cannot fail.
    let _ = write_all(&mut out, snapshots);
    out
}

fn write_all(out: &mut String, snapshots: &[MetricsSnapshot]) -> fmt::Result {
    family(out, "pavillion_sessions", "Sessions up now.", "gauge")?;
    for s in snapshots {
        writeln!(
            out,
            "pavillion_sessions{{role=\"{}\"}} {}",
            s.role, s.sessions
        )?;
    }
    for c in COUNTERS {
        family(out, c.name, c.help, "counter")?;
        for s in snapshots {
            writeln!(
                out,
                "{}{{role=\"{}\"}} {}",
                c.name,
                s.role,
                (c.read)(&s.stats)
            )?;
        }
    }
    family(
        out,
        "pavillion_drops_total",
        "Datagrams dropped, by reason.",
        "counter",
    )?;
    for s in snapshots {
        for (reason, n) in s.stats.drops() {
            writeln!(
                out,
                "pavillion_drops_total{{role=\"{}\",reason=\"{}\"}} {n}",
                s.role,
                reason.name()
            )?;
        }
    }
    family(
        out,
        "pavillion_rtt_seconds",
        "Round-trip samples (acknowledged first transmissions).",
        "histogram",
    )?;
    for s in snapshots {
        let role = s.role;
        let rtt = &s.stats.rtt;
        let mut buckets = rtt.cumulative().peekable();
        while let Some((le, count)) = buckets.next() {
            match buckets.peek() {
                // The last bucket also holds every larger sample: it is the `+Inf` one below.
                None => break,
                // Bounds that round to the same microsecond are one series (`le` is unique),
                // holding the count up to the last of them.
                Some((next, _)) if next.as_micros() == le.as_micros() => continue,
                Some(_) => {}
            }
            writeln!(
                out,
                "pavillion_rtt_seconds_bucket{{role=\"{role}\",le=\"{}\"}} {count}",
                Seconds(le)
            )?;
        }
        writeln!(
            out,
            "pavillion_rtt_seconds_bucket{{role=\"{role}\",le=\"+Inf\"}} {}",
            rtt.count()
        )?;
        writeln!(
            out,
            "pavillion_rtt_seconds_sum{{role=\"{role}\"}} {}",
            Seconds(rtt.sum())
        )?;
        writeln!(
            out,
            "pavillion_rtt_seconds_count{{role=\"{role}\"}} {}",
            rtt.count()
        )?;
    }
    Ok(())
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// A duration in seconds, exactly (microsecond resolution, no float rounding): `0.000125`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        let (whole, frac) = (us / 1_000_000, us % 1_000_000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}
