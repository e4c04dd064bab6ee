//! `burst-1000`: a burst queued at once, the case suite 3 batching (`docs/PROTOCOL.md` §17)
//! is for. Every suite must deliver each message exactly once at 10% loss; the note under
//! the table says how many datagrams the client sent per message (suite 3 far fewer).

use pavillion_sim::{LinkFaults, ServerSpec};

use crate::harness::{ms, secs, unicast, Batch, Harness};
use crate::outcome::Outcome;
use crate::Params;

const SERVER: &str = "server";
const CLIENT: &str = "client";
const MESSAGES: usize = 1000;

pub(crate) fn burst_1000(p: &Params) -> Outcome {
    let batch = Batch::new(ms(100), ms(0), MESSAGES).deadline(secs(100));
    let mut h = Harness::new(p, secs(105), LinkFaults::clean().with_loss(0.1));
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(1)));
    h.client(CLIENT, p.suite.client_config(0, server), &[batch]);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let (dup, redelivered) = (out.duplicates, out.redelivered);
    out.check(dup == 0 && redelivered == 0, "exactly once", || {
        format!("{dup} duplicates, {redelivered} redelivered")
    });
    let sent: u64 = h.sim.stats(CLIENT).iter().map(|s| s.datagrams_sent).sum();
    out.notes.push(format!(
        "burst-1000 {}: client sent {sent} datagrams for {MESSAGES} messages ({:.3} per message)",
        p.suite.name(),
        sent as f64 / MESSAGES as f64
    ));
    out
}
