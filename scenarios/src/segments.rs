//! Segmented messages (`docs/PROTOCOL.md` §9.7) under faults: a 4 MiB message through a lossy
//! link, and a reassembly flood from clients that announce large messages and send one
//! segment of each.

use alloc::rc::Rc;
use core::cell::Cell;
use core::time::Duration;

use pavillion_proto::endpoint::{Client, Limits, ReassemblyUsage, SendOptions, ServerEvent};
use pavillion_proto::rng::Rng;
use pavillion_sim::{LinkFaults, Script, ServerSpec};

use crate::harness::{ms, secs, unicast, Harness};
use crate::outcome::Outcome;
use crate::Params;

const SERVER: &str = "server";
const CLIENT: &str = "client";

/// The 4 MiB of the large-message scenarios.
const LARGE: usize = 4 << 20;

/// Limits that let a 4 MiB message through (the default maximum is 1 MiB).
fn large_limits() -> Limits {
    Limits {
        max_message: 8 << 20,
        reassembly_per_peer: 8 << 20,
        ..Limits::default()
    }
}

/// A payload of `len` printable bytes drawn from `seed`, opening with `key`: the ledger knows
/// a message by its whole payload, so a delivery counts only if every byte is right.
fn payload(key: &str, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut v = key.as_bytes().to_vec();
    let mut word = 0u64;
    while v.len() < len {
        if word < 26 {
            word = rng.next_u64();
        }
        v.push(b'a' + (word % 26) as u8);
        word /= 26;
    }
    v.truncate(len);
    v
}

/// One 4 MiB message from the client at 0.1 s over a link losing `loss` of the datagrams each
/// way, with 10 minutes to be acknowledged: delivered whole and exactly once. The row's `retx`
/// counts the segments retransmitted; the note gives the bytes.
fn large_message(p: &Params, loss: f64) -> Outcome {
    let mut h = Harness::new(p, secs(600), LinkFaults::clean().with_loss(loss));
    let mut server = p.suite.server_config(1);
    server.limits = large_limits();
    let server = h.server(SERVER, ServerSpec::new(server));
    let mut client = p.suite.client_config(0, server);
    client.limits = large_limits();
    let data = payload("client/large:", LARGE, p.seed);
    h.client_sending(CLIENT, client, vec![(ms(100), data, secs(590))]);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let d = out.delivered;
    out.check(d == 1, "large", || {
        format!("{d} of 1 large message delivered")
    });
    let segment = (pavillion_proto::wire::MAX_DATAGRAM - 52) as u64;
    let latency = out.latency.max;
    out.notes.push(format!(
        "4 MiB in {latency:?}, about {} KiB retransmitted ({} segments)",
        out.retransmissions * segment / 1024,
        out.retransmissions
    ));
    out
}

pub(crate) fn large_message_10(p: &Params) -> Outcome {
    large_message(p, 0.1)
}

pub(crate) fn large_message_30(p: &Params) -> Outcome {
    large_message(p, 0.3)
}

/// Hostile clients each announcing a message of almost 1 MiB every 100 ms, of which only the
/// first segment ever leaves (a 1 ms deadline, one exchange in flight): each would have the
/// server keep 1 MiB per announcement. An honest client meanwhile sends 50 small messages and
/// one of 900 KB. The server's reservation stays within its budgets (at most two partial
/// messages per hostile peer under the 2 MiB per-peer budget, and the 16 MiB total), and the
/// honest client's traffic all arrives.
pub(crate) fn reassembly_flood(p: &Params) -> Outcome {
    const HOSTILE: usize = 4;
    let mut h = Harness::new(p, secs(15), LinkFaults::clean());
    let limits = Limits::default();
    // The server's own count of its reservation, read at the end of the run.
    let seen: Rc<Cell<ReassemblyUsage>> = Rc::default();
    let seen2 = seen.clone();
    let spec = ServerSpec::new(p.suite.server_config(1 + HOSTILE));
    let server = h.server_with(SERVER, spec, move |script| {
        script.at(secs(14), move |ctl| seen2.set(ctl.endpoint().reassembly()))
    });
    for i in 0..HOSTILE {
        let mut config = p.suite.client_config(1 + i, server);
        config.limits = Limits {
            max_in_flight: 1,
            ..Limits::default()
        };
        let announced = vec![b'x'; 1_000_000];
        let script = Script::<Client>::new().repeat(ms(200), ms(100), 80, move |ctl, _| {
            let now = ctl.now();
            let opts = SendOptions::reliable().with_timeout(ms(1));
            let _ = ctl
                .endpoint()
                .send_message(now, "t", "flood", &announced, opts);
        });
        if let Err(e) = h.sim.add_client(&format!("hostile-{i}"), config, script) {
            h.setup_error(e);
        }
    }
    let honest = p.suite.client_config(0, server);
    // The honest client's sends are late by up to 50 ms each, drawn from the seed.
    let mut rng = Rng::seed_from_u64(p.seed);
    let mut sends: Vec<(Duration, Vec<u8>, Duration)> = (0..50)
        .map(|i| {
            let key = format!("{CLIENT}/{i}");
            let late = ms(rng.range_inclusive(0, 50));
            (ms(500) + ms(100) * i + late, key.into_bytes(), secs(10))
        })
        .collect();
    sends.push((secs(3), payload("client/large:", 900_000, p.seed), secs(10)));
    h.client_sending(CLIENT, honest, sends);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let usage = seen.get();
    let per_peer = limits.reassembly_per_peer;
    // Every peer within its own budget (the honest client's large message included).
    let bound = ((HOSTILE + 1) * per_peer).min(limits.reassembly_total);
    let peak = usage.peak;
    out.check(peak <= bound, "budget", || {
        format!("the server reserved {peak} bytes at its peak, more than {bound}")
    });
    out.check(peak > per_peer, "flood", || {
        format!("the flood reserved only {peak} bytes: it did not reach the server")
    });
    let refused: u64 = h
        .sim
        .stats(SERVER)
        .iter()
        .map(|s| s.dropped(pavillion_proto::endpoint::DropReason::TransferNoRoom))
        .sum();
    out.check(refused > 0, "refused", || {
        "no announcement was refused".into()
    });
    let flooded = h
        .events(SERVER, |e| match e {
            pavillion_sim::HostEvent::Server(ServerEvent::Message { message, .. })
                if message.name() == "flood" =>
            {
                Some(())
            }
            _ => None,
        })
        .len();
    out.check(flooded == 0, "partial", || {
        format!("{flooded} flood messages were delivered")
    });
    out.notes.push(format!(
        "reassembly peak {peak} bytes (budget {per_peer} per peer, {} in all), {refused} segments refused for room",
        limits.reassembly_total
    ));
    out
}
