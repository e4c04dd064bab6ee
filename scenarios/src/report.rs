//! Summing runs per scenario and suite, and printing them as an aligned table.

use core::fmt::Write as _;
use core::time::Duration;

use crate::plot::LatencyHistogram;
use crate::{Failure, Outcome, Scenario, Suite};

/// The runs of one scenario over one suite, summed over seeds.
#[derive(Clone, Debug)]
pub struct Row {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The suite.
    pub suite: Suite,
    /// Seeds run so far.
    pub seeds: usize,
    /// Sum of [`Outcome::sent`].
    pub sent: u64,
    /// Sum of [`Outcome::delivered`].
    pub delivered: u64,
    /// Sum of [`Outcome::duplicates`].
    pub duplicates: u64,
    /// Sum of [`Outcome::redelivered`].
    pub redelivered: u64,
    /// Sum of [`Outcome::lost_acked`].
    pub lost_acked: u64,
    /// Each seed's median latency; the table shows their median.
    pub p50s: Vec<Duration>,
    /// The worst seed's 99th percentile latency.
    pub p99: Duration,
    /// Sum of [`Outcome::retransmissions`].
    pub retransmissions: u64,
    /// Sum of [`Outcome::handshakes`].
    pub handshakes: u64,
    /// The slowest reconnection over the seeds that measured one.
    pub reconnect: Option<Duration>,
    /// The digest of the first seed run.
    pub digest: String,
    /// Failed assertions, with the seed of the run.
    pub failures: Vec<(u64, Failure)>,
    /// The runs' [`Outcome::notes`], with the seed of the run.
    pub notes: Vec<(u64, String)>,
    /// Every run's [`Outcome::latencies_us`], counted (for `--plot`).
    pub latency_histogram: LatencyHistogram,
}

impl Row {
    /// A row with no runs yet.
    pub fn new(scenario: &Scenario, suite: Suite) -> Self {
        Row {
            scenario: scenario.name,
            suite,
            seeds: 0,
            sent: 0,
            delivered: 0,
            duplicates: 0,
            redelivered: 0,
            lost_acked: 0,
            p50s: Vec::new(),
            p99: Duration::ZERO,
            retransmissions: 0,
            handshakes: 0,
            reconnect: None,
            digest: String::new(),
            failures: Vec::new(),
            notes: Vec::new(),
            latency_histogram: LatencyHistogram::default(),
        }
    }

    /// Adds the outcome of the run with `seed`.
    pub fn add(&mut self, seed: u64, o: &Outcome) {
        if self.seeds == 0 {
            self.digest = o.digest.clone();
        }
        self.seeds += 1;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.duplicates += o.duplicates;
        self.redelivered += o.redelivered;
        self.lost_acked += o.lost_acked;
        self.p50s.push(o.latency.p50);
        self.p99 = self.p99.max(o.latency.p99);
        self.retransmissions += o.retransmissions;
        self.handshakes += o.handshakes;
        self.reconnect = self.reconnect.max(o.reconnect_time);
        self.failures
            .extend(o.failures.iter().map(|f| (seed, f.clone())));
        self.notes.extend(o.notes.iter().map(|n| (seed, n.clone())));
        for &us in &o.latencies_us {
            self.latency_histogram.add(us);
        }
    }

    /// The median over seeds of the median latency.
    pub fn p50(&self) -> Duration {
        let mut v = self.p50s.clone();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }

    /// How many seeds failed at least one assertion.
    pub fn failed_seeds(&self) -> usize {
        let mut seeds: Vec<u64> = self.failures.iter().map(|(s, _)| *s).collect();
        seeds.dedup();
        seeds.len()
    }
}

const HEADER: [&str; 14] = [
    "scenario",
    "suite",
    "seeds",
    "delivered/sent",
    "dup",
    "redeliv",
    "lost-acked",
    "p50",
    "p99",
    "retx",
    "handshakes",
    "reconnect",
    "digest",
    "verdict",
];

/// The rows as an aligned table, one line each, under a header.
///
/// Latency is simulated time from the send command to the receiver's message event: `p50`
/// is the median of the seeds' medians, `p99` the worst seed's. `reconnect` is the slowest
/// seed's; `digest` is the first seed's, shortened.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 14]> = rows
        .iter()
        .map(|r| {
            let verdict = match r.failed_seeds() {
                0 => "ok".to_string(),
                n => format!("FAIL {n}/{}", r.seeds),
            };
            [
                r.scenario.to_string(),
                r.suite.name().to_string(),
                r.seeds.to_string(),
                format!("{}/{}", r.delivered, r.sent),
                r.duplicates.to_string(),
                r.redelivered.to_string(),
                r.lost_acked.to_string(),
                duration(r.p50()),
                duration(r.p99),
                r.retransmissions.to_string(),
                r.handshakes.to_string(),
                r.reconnect.map_or("-".to_string(), duration),
                r.digest.chars().take(12).collect(),
                verdict,
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |row: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            // Names left-aligned, numbers right-aligned, so that digits line up.
            let _ = match i {
                0 | 1 | 12 | 13 => write!(l, "{c:<w$}  "),
                _ => write!(l, "{c:>w$}  "),
            };
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADER.map(String::from));
    for row in &cells {
        line(row);
    }
    out
}

/// Every failed assertion, one line each: scenario, suite, seed and what failed.
pub fn failures(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        for (seed, f) in &r.failures {
            let _ = writeln!(out, "{} {} seed {seed}: {f}", r.scenario, r.suite);
        }
    }
    out
}

/// Every note of a run, one line each: scenario, suite, seed and the note. Empty when no
/// scenario reported one, so the output of the scenarios without notes is unchanged.
pub fn notes(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        for (seed, n) in &r.notes {
            let _ = writeln!(out, "{} {} seed {seed}: {n}", r.scenario, r.suite);
        }
    }
    out
}

/// A duration in a short human form: `850us`, `12.3ms`, `4.21s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_micros(850)), "850us");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(duration(Duration::from_millis(4_210)), "4.21s");
    }

    #[test]
    fn table_aligns_and_reports_failures() {
        let s = crate::find("clean").unwrap();
        let mut row = Row::new(s, Suite::Psk);
        let mut o = Outcome {
            sent: 100,
            delivered: 100,
            digest: "abcdef0123456789".into(),
            ..Outcome::default()
        };
        row.add(1, &o);
        o.check(false, "delivered", || "99/100".into());
        row.add(2, &o);
        let t = table(&[row.clone()]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("clean"), "{t}");
        assert!(lines[1].contains("200/200"), "{t}");
        assert!(lines[1].ends_with("FAIL 1/2"), "{t}");
        assert!(lines[1].contains("abcdef012345 "), "{t}");
        assert_eq!(failures(&[row]), "clean psk seed 2: delivered: 99/100\n");
    }
}
