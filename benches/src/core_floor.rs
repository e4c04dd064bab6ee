//! The `core vs crypto floor` rows of `compare`: reliable 64-byte messages through an
//! in-memory client–server pair, against the cost of only the seals and opens that the run's
//! datagrams needed.
//!
//! The floor is counted **per datagram**, from the datagrams a calibration batch actually
//! carried: one seal and one open of each datagram's plaintext (its length less the suite's
//! packet overhead), divided by the messages of the batch. With one message per datagram and
//! one ACK per message (suites 1 and 2) that is the old per-message formula, `t(message) +
//! t(ACK)`. Suite 3 batches (`docs/PROTOCOL.md` §17): a burst of messages shares one counter,
//! so one seal and one open cover many of them, and the ACKs coalesce; the old formula charged
//! a seal and an open to every message and so put the floor many times too low (our rate was
//! above it, a ratio below 1 that measured nothing).

use std::collections::BTreeMap;

use pavillion_proto::endpoint::{ClientEvent, SendOptions};
use pavillion_proto::wire::noise::DATA_HEADER_LEN;
use pavillion_proto::wire::{MAX_DATAGRAM, SESSION_OVERHEAD, TAG_LEN};
use pavillion_proto::Duration;

use crate::{
    client_addr, payload, rate, server_addr, DirectPair, NetPair, Suite, BATCH, NAME, PAYLOAD,
    TARGET,
};

/// The target: the core costs at most this many times its crypto floor.
pub const TARGET_RATIO: f64 = 1.2;

/// Which driver moved the datagrams of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// The two endpoints and one buffer ([`DirectPair`]): what the protocol core costs. The
    /// target applies to this row.
    Direct,
    /// The in-memory [`NetPair`] network, which adds its own costs (a copy and a queue entry
    /// per datagram); context.
    Network,
}

impl Driver {
    /// The label in the row.
    pub const fn name(self) -> &'static str {
        match self {
            Driver::Direct => "direct pump",
            Driver::Network => "testing::Network",
        }
    }
}

/// One row: our rate, the floor's, and what the floor was made of.
#[derive(Clone, Debug)]
pub struct CoreRow {
    /// The suite.
    pub suite: Suite,
    /// The driver.
    pub driver: Driver,
    /// Reliable messages a second, each delivered and acknowledged.
    pub ours: f64,
    /// Messages a second if only the seals and opens of the run's datagrams cost anything.
    pub floor: f64,
    /// Datagrams (both ways) per message in the calibration batch.
    pub datagrams_per_message: f64,
}

impl CoreRow {
    /// Floor rate over ours: how many times the floor the core costs (the target is
    /// [`TARGET_RATIO`]).
    pub fn ratio(&self) -> f64 {
        self.floor / self.ours
    }

    /// The row's label.
    pub fn what(&self) -> String {
        format!(
            "core vs crypto floor, {} ({}) [{:.3} dg/msg]",
            self.suite.name(),
            self.driver.name(),
            self.datagrams_per_message
        )
    }

    /// Whether the target is met; `None` for the context row.
    pub fn ok(&self) -> Option<bool> {
        (self.driver == Driver::Direct).then(|| self.ratio() <= TARGET_RATIO)
    }
}

/// Bytes a session datagram of `suite` adds around its plaintext.
pub const fn overhead(suite: Suite) -> usize {
    match suite {
        Suite::Noise => DATA_HEADER_LEN + TAG_LEN,
        Suite::Psk | Suite::Ecc => SESSION_OVERHEAD,
    }
}

/// The floor of a batch of `messages` that carried datagrams of the lengths in `sizes`
/// (length → how many): seconds of seal and open per message, `t(len)` giving one seal and one
/// open of a `len`-byte plaintext.
pub fn floor_secs_per_message(
    sizes: &BTreeMap<usize, u64>,
    messages: usize,
    suite: Suite,
    mut t: impl FnMut(usize) -> f64,
) -> f64 {
    let total: f64 = sizes
        .iter()
        .map(|(&len, &n)| n as f64 * t(len.saturating_sub(overhead(suite))))
        .sum();
    total / messages.max(1) as f64
}

/// Seconds per seal and open of a `len`-byte plaintext under `suite`'s cipher, measured for
/// `seconds`.
pub fn seal_open_secs(suite: Suite, len: usize, seconds: f64) -> f64 {
    let cipher = suite.cipher();
    let mut buf = payload(len);
    let mut counter = 1u64;
    1.0 / rate(seconds, || {
        for _ in 0..256 {
            counter += 1;
            cipher.seal_open(counter, core::hint::black_box(&mut buf));
        }
        256
    })
}

/// Measures the two rows of `suite`, `seconds` for each rate and about as long again for the
/// floor; records `core_floor_ratio_SUITE` (the direct row's ratio) and `core_64_SUITE`
/// (msg/s).
pub fn rows(suite: Suite, seconds: f64) -> Vec<CoreRow> {
    let data = payload(PAYLOAD);

    let mut net = NetPair::connected(suite);
    let net_rate = rate(seconds, || {
        net.reliable_batch(BATCH, &data);
        BATCH as u64
    });
    let net_sizes = net_sizes(suite, &data);

    let mut direct = DirectPair::connected(suite);
    let direct_sizes = direct_sizes(&mut direct, &data);
    let direct_rate = rate(seconds, || {
        direct.reliable_batch(BATCH, &data);
        BATCH as u64
    });

    // Each plaintext length the runs carried, timed once.
    let lengths: std::collections::BTreeSet<usize> = direct_sizes
        .keys()
        .chain(net_sizes.keys())
        .map(|len| len.saturating_sub(overhead(suite)))
        .collect();
    let each = (seconds / 2.0 / lengths.len().max(1) as f64).max(0.05);
    let cost: BTreeMap<usize, f64> = lengths
        .into_iter()
        .map(|len| (len, seal_open_secs(suite, len, each)))
        .collect();
    let t = |len: usize| cost.get(&len).copied().unwrap_or(0.0);

    let rows: Vec<CoreRow> = [
        (Driver::Direct, direct_rate, &direct_sizes),
        (Driver::Network, net_rate, &net_sizes),
    ]
    .into_iter()
    .map(|(driver, ours, sizes)| CoreRow {
        suite,
        driver,
        ours,
        floor: 1.0 / floor_secs_per_message(sizes, BATCH, suite, t),
        datagrams_per_message: sizes.values().sum::<u64>() as f64 / BATCH as f64,
    })
    .collect();
    if let Some(r) = rows.first() {
        let name = suite.name();
        crate::results::record(&format!("core_64_{name}"), r.ours, "msg/s");
        crate::results::record(&format!("core_floor_ratio_{name}"), r.ratio(), "x");
    }
    rows
}

/// The datagram lengths of one batch of [`BATCH`] messages through a fresh network pair (the
/// capture is left on only there, so that the timed pair does not pay for it). The first
/// batch is a warm-up, so that the session's start does not count.
fn net_sizes(suite: Suite, data: &[u8]) -> BTreeMap<usize, u64> {
    let mut net = NetPair::connected(suite);
    net.reliable_batch(BATCH, data);
    net.net.capture();
    net.reliable_batch(BATCH, data);
    let mut sizes = BTreeMap::new();
    for c in net.net.captured() {
        *sizes.entry(c.bytes.len()).or_insert(0) += 1;
    }
    sizes
}

/// The datagram lengths of one batch of [`BATCH`] messages through `pair`, pumped as
/// [`DirectPair::reliable_batch`] does (after a warm-up batch), recorded outside the timed
/// runs.
fn direct_sizes(pair: &mut DirectPair, data: &[u8]) -> BTreeMap<usize, u64> {
    pair.reliable_batch(BATCH, data);
    for _ in 0..BATCH {
        pair.client
            .send_message(pair.now, TARGET, NAME, data, SendOptions::reliable())
            .expect("the queue holds a batch");
    }
    let (caddr, saddr) = (client_addr(0), server_addr());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sizes = BTreeMap::new();
    let mut delivered = 0;
    for _ in 0..1000 {
        loop {
            let mut moved = false;
            while let Some(t) = pair.client.poll_transmit(pair.now, &mut buf) {
                *sizes.entry(t.len).or_insert(0) += 1;
                pair.server
                    .handle_datagram(pair.now, caddr, buf.get(..t.len).unwrap_or_default());
                moved = true;
            }
            while let Some(t) = pair.server.poll_transmit(pair.now, &mut buf) {
                *sizes.entry(t.len).or_insert(0) += 1;
                pair.client
                    .handle_datagram(pair.now, saddr, buf.get(..t.len).unwrap_or_default());
                moved = true;
            }
            if !moved {
                break;
            }
        }
        pair.now += Duration::from_micros(1);
        delivered += core::iter::from_fn(|| pair.client.poll_event())
            .filter(|e| matches!(e, ClientEvent::Delivered { .. }))
            .count();
        while pair.server.poll_event().is_some() {}
        if delivered >= BATCH {
            break;
        }
        pair.skip_to_next_timer();
        pair.client.handle_timeout(pair.now);
        pair.server.handle_timeout(pair.now);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One message and one ACK per message: the per-datagram floor is the old formula.
    #[test]
    fn one_message_per_datagram_is_message_plus_ack() {
        let msg = crate::message_plaintext_len(PAYLOAD);
        let ack = crate::ACK_PLAINTEXT_LEN;
        let o = overhead(Suite::Psk);
        let sizes = BTreeMap::from([(msg + o, 64), (ack + o, 64)]);
        let t = |len: usize| len as f64;
        let per = floor_secs_per_message(&sizes, 64, Suite::Psk, t);
        assert_eq!(per, (msg + ack) as f64);
    }

    /// A batch that shares datagrams costs one seal and open per datagram, not per message.
    #[test]
    fn shared_datagrams_divide_among_their_messages() {
        let o = overhead(Suite::Noise);
        // 64 messages in two datagrams of 2,000 bytes of plaintext, and one ACK.
        let sizes = BTreeMap::from([(2000 + o, 2), (20 + o, 1)]);
        let t = |_len: usize| 1.0; // a unit cost per datagram
        let per = floor_secs_per_message(&sizes, 64, Suite::Noise, t);
        assert_eq!(per, 3.0 / 64.0);
    }

    /// The calibration sees suite 3 share datagrams and suites 1 and 2 not.
    #[test]
    fn calibration_counts_the_datagrams_the_run_carried() {
        let data = payload(PAYLOAD);
        for suite in Suite::ALL {
            let mut pair = DirectPair::connected(suite);
            let sizes = direct_sizes(&mut pair, &data);
            let datagrams: u64 = sizes.values().sum();
            match suite {
                Suite::Noise => assert!(datagrams < BATCH as u64 / 4, "{sizes:?}"),
                _ => assert!(datagrams >= 2 * BATCH as u64, "{suite:?}: {sizes:?}"),
            }
        }
    }
}
