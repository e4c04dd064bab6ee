//! Durable messages (issue 17): a client streams durable messages to a server while both
//! reboot, the link drops for minutes and loses datagrams; the server's output holds each
//! message exactly once.
//!
//! Both hosts have a model store ([`StoreSpec`]): committed rows outlive reboots, a commit
//! takes 1–5 ms, and a crash loses what was not committed. The applications are the ones
//! `docs/PROTOCOL.md` §16 describes for a sink that is not transactional:
//! - The client's input is `LINES` lines; each tick it sends the next one with
//!   `send_durable(.., mark = lines done)`. Its cursor is process memory: at every start it
//!   resumes from the restored `send_mark`. A send whose batch a crash lost was never
//!   transmitted (the proto holds it until stored), so sending that line again is no
//!   duplicate.
//! - The server appends each delivered message to an output log that lives outside the host
//!   (it survives reboots, as a file does), then consumes it with mark = the log's length. At
//!   every start it truncates the log to the restored `consume_mark` before the inbox is
//!   redelivered, so a crash between the append and the stored consume is undone.
//!
//! The measurement is the final log: the ledger's receptions are its entries, so `dup` and
//! `redeliv` count repeats in what the application produced, and both must be 0.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::RefCell;
use core::time::Duration;

use pavillion_proto::endpoint::{Client, ClientEvent, SendError, Server, ServerEvent};
use pavillion_proto::features::durable::{DurableId, DurableTable};
use pavillion_proto::rng::Rng;
use pavillion_proto::Instant;
use pavillion_sim::{
    ClientSpec, HostEvent, InCommit, LinkFaults, NetAction, Script, ServerSpec, StoreSpec,
};

use crate::harness::{ms, secs, unicast, Harness};
use crate::outcome::{Ack, Outcome};
use crate::Params;

const SERVER: &str = "server";
const CLIENT: &str = "client";
/// Lines of the client's input: one durable message each.
const LINES: usize = 300;

/// One entry of the server's output log.
#[derive(Clone, Debug)]
struct Entry {
    key: String,
    id: DurableId,
    incarnation: u32,
    at: Instant,
}

/// The server application's output: a log outside the host, truncated at each start.
#[derive(Debug, Default)]
struct Output {
    log: Vec<Entry>,
    /// The running incarnation (counted by the application's own starts).
    incarnation: Option<u32>,
    /// Entries removed by truncations to the consume mark.
    truncated: usize,
    /// Deliveries marked `redelivered` (the inbox at restore).
    redeliveries: u64,
    /// Problems the application saw, with the message.
    errors: Vec<String>,
}

/// The client application's state: its cursor (process memory, reset at every start) and
/// what outlives it in the test's own bookkeeping.
#[derive(Debug, Default)]
struct Input {
    /// The next line to send; reset from `send_mark` at every start.
    cursor: usize,
    /// End-to-end id of each send to its ledger entry: ids are stable across reboots.
    ids: BTreeMap<DurableId, usize>,
    /// The `send_mark` each start resumed from.
    resumed: Vec<u64>,
    /// Sends given again because a crash lost their first batch.
    resent: u64,
    /// Problems the application saw, with the message.
    errors: Vec<String>,
}

/// What a durable run varies.
#[derive(Clone, Copy, Debug)]
struct Plan {
    duration: Duration,
    link: LinkFaults,
    /// One line per tick.
    tick: Duration,
    /// Reboots, crashes in commits and a long partition.
    faults: bool,
}

fn key(i: usize) -> String {
    format!("{CLIENT}/{i}")
}

/// Durable messages at 5% loss each way; client and server each reboot 4 times at seeded
/// times (2 of them in the middle of a commit, losing it; see `schedule`), and the link is
/// cut for 2 to 5 simulated minutes mid-stream.
pub(crate) fn durable_reboots(p: &Params) -> Outcome {
    run(
        p,
        Plan {
            duration: secs(420),
            link: LinkFaults::clean().with_loss(0.05),
            tick: ms(200),
            faults: true,
        },
    )
}

/// Durable messages at 10% loss each way and nothing else: the baseline of
/// [`durable_reboots`].
pub(crate) fn durable_loss(p: &Params) -> Outcome {
    run(
        p,
        Plan {
            duration: secs(60),
            link: LinkFaults::clean().with_loss(0.10),
            tick: ms(100),
            faults: false,
        },
    )
}

fn run(p: &Params, plan: Plan) -> Outcome {
    let mut h = Harness::new(p, plan.duration, plan.link);
    let output: Rc<RefCell<Output>> = Rc::default();
    let input: Rc<RefCell<Input>> = Rc::default();

    let server_spec = ServerSpec::new(p.suite.server_config(1)).with_store(StoreSpec::default());
    let r = h
        .sim
        .add_server_script(SERVER, server_spec, server_app(output.clone()));
    let server = match r {
        Ok(a) => a,
        Err(e) => {
            h.setup_error(e);
            return h.run(unicast(SERVER));
        }
    };
    h.track(SERVER, true);
    let client_spec =
        ClientSpec::from(p.suite.client_config(0, server)).with_store(StoreSpec::default());
    let script = client_app(&h, input.clone(), server, plan);
    if let Err(e) = h.sim.add_client(CLIENT, client_spec, script) {
        h.setup_error(e);
    }
    h.track(CLIENT, false);

    let faults = plan.faults.then(|| schedule(&mut h, p.seed));

    let settled = output.clone();
    let mut out = h.run_with(unicast(SERVER), move |ledger| {
        for e in &settled.borrow().log {
            ledger.received_by(SERVER, e.incarnation, &e.key, e.at);
        }
    });
    out.expect_delivered_percent(100);
    check(&h, &mut out, &output.borrow(), &input.borrow());
    if faults.is_some() {
        check_coverage(&h, &mut out, &output.borrow(), &input.borrow());
    }
    if let Some(repair) = faults {
        out.reconnect_time = h.time_to(CLIENT, repair, |e| {
            matches!(e, HostEvent::Client(ClientEvent::DurableDelivered { .. }))
        });
    }
    let (o, i) = (output.borrow(), input.borrow());
    let (cs, ss) = (h.sim.store_stats(CLIENT), h.sim.store_stats(SERVER));
    out.notes.push(format!(
        "starts: client {} ({} crashes in a commit, {} batches lost), server {} ({} in a \
         commit, {} lost); sender resumed from marks {:?}, {} lines sent again; {} \
         redeliveries absorbed by the consume mark ({} log entries truncated); commits: \
         client {}, server {}",
        h.sim.stats(CLIENT).len(),
        cs.crashes_in_commit,
        cs.lost_batches,
        h.sim.stats(SERVER).len(),
        ss.crashes_in_commit,
        ss.lost_batches,
        i.resumed,
        i.resent,
        o.redeliveries,
        o.truncated,
        cs.commits,
        ss.commits,
    ));
    out
}

/// The server: appends each durable message to the log outside the host and consumes it
/// with mark = the log's length; at start, truncates the log to the restored mark.
fn server_app(output: Rc<RefCell<Output>>) -> Script<Server> {
    let o2 = output.clone();
    Script::<Server>::new()
        .on_start(move |ctl| {
            let mark = ctl.durable_restored().and_then(|r| r.consume_mark);
            let mut o = o2.borrow_mut();
            o.incarnation = Some(o.incarnation.map_or(0, |n| n + 1));
            let keep = usize::try_from(mark.unwrap_or(0)).unwrap_or(usize::MAX);
            let len = o.log.len();
            if keep > len {
                o.errors.push(format!(
                    "restored consume mark {keep} is past the log's {len} entries"
                ));
            }
            let cut = o.log.len().saturating_sub(keep);
            o.truncated += cut;
            o.log.truncate(keep);
        })
        .on_event(move |ctl, event| {
            let ServerEvent::DurableMessage {
                peer,
                id,
                message,
                redelivered,
            } = event
            else {
                return;
            };
            let now = ctl.now();
            let len = {
                let mut o = output.borrow_mut();
                let entry = Entry {
                    key: String::from_utf8_lossy(message.payload()).into_owned(),
                    id,
                    incarnation: o.incarnation.unwrap_or(0),
                    at: now,
                };
                o.log.push(entry);
                o.redeliveries += u64::from(redelivered);
                o.log.len() as u64
            };
            if !ctl.endpoint().consume_durable(now, peer, id, Some(len)) {
                output
                    .borrow_mut()
                    .errors
                    .push(format!("consume of {id} refused"));
            }
        })
}

/// The client: one line per tick from the cursor, which every start resets to the restored
/// send mark; acknowledgements go to the ledger by end-to-end id.
fn client_app(
    h: &Harness,
    input: Rc<RefCell<Input>>,
    server: core::net::SocketAddr,
    plan: Plan,
) -> Script<Client> {
    let ledger = h.ledger();
    let i2 = input.clone();
    let ticks = plan.duration.saturating_sub(secs(1)).as_millis() / plan.tick.as_millis().max(1);
    let (l2, i3) = (ledger.clone(), input.clone());
    Script::<Client>::new()
        .on_start(move |ctl| {
            let mark = ctl.durable_restored().and_then(|r| r.send_mark);
            let mut i = i2.borrow_mut();
            if let Some(m) = mark {
                i.resumed.push(m);
            }
            let resume = usize::try_from(mark.unwrap_or(0)).unwrap_or(usize::MAX);
            if resume < i.cursor {
                i.resent += (i.cursor - resume) as u64;
            }
            i.cursor = resume;
        })
        .repeat(secs(1), plan.tick, ticks as usize, move |ctl, _| {
            let n = input.borrow().cursor;
            if n >= LINES {
                return;
            }
            let now = ctl.now();
            let k = key(n);
            let mark = Some(n as u64 + 1);
            match ctl
                .endpoint()
                .send_durable(now, "t", "n", k.as_bytes(), mark)
            {
                Ok(id) => {
                    let entry = ledger.borrow_mut().sent_once(&k, now);
                    let mut i = input.borrow_mut();
                    i.ids.insert(id, entry);
                    i.cursor = n + 1;
                }
                // Back-pressure: the same line next tick.
                Err(SendError::QueueFull) => {}
                Err(e) => {
                    ledger.borrow_mut().refused += 1;
                    input
                        .borrow_mut()
                        .errors
                        .push(format!("send of {k}: {e:?}"));
                }
            }
        })
        .on_event(move |ctl, event| match event {
            ClientEvent::DurableDelivered { id } => {
                let entry = i3.borrow().ids.get(&id).copied();
                match entry {
                    Some(e) => l2.borrow_mut().ack(
                        e,
                        Ack::Delivered {
                            acked: vec![server],
                        },
                        ctl.now(),
                    ),
                    None => i3
                        .borrow_mut()
                        .errors
                        .push(format!("acknowledgement of unknown id {id}")),
                }
            }
            ClientEvent::DurableFailed { id, reason } => i3
                .borrow_mut()
                .errors
                .push(format!("durable send {id} failed: {reason:?}")),
            _ => {}
        })
}

/// Seeded faults: the partition (2 to 5 minutes from 15–40 s, mid-stream), and 4 reboots of
/// each side, 0.2–8 s down each, aimed at every phase of the protocol:
/// - the client crashes in a commit holding a send (its line is sent again: the batch never
///   left), once during the partition with a queue to restore, in a commit holding an
///   acknowledgement's delete just after the repair (the restart sends it again; the server
///   acknowledges a duplicate), and once in the flush after the repair;
/// - the server crashes in a commit holding a consume's mark (the log is truncated and the
///   message redelivered from the inbox) and in one holding a receipt (never acknowledged:
///   the client retries), both before the cut, then once during the partition and once in
///   the flush.
///
/// Returns when the link is repaired.
fn schedule(h: &mut Harness, seed: u64) -> Duration {
    let mut rng = Rng::seed_from_u64(seed ^ 0xd0_7ab1e);
    let mut between = |a: Duration, b: Duration| {
        let (a, b) = (a.as_millis() as u64, b.as_millis() as u64);
        ms(rng.range_inclusive(a, b))
    };
    let cut = between(secs(15), secs(40));
    let repair = cut + between(secs(120), secs(300));
    let mut actions = vec![
        (cut, NetAction::Partition(CLIENT.into(), SERVER.into())),
        (repair, NetAction::Repair(CLIENT.into(), SERVER.into())),
    ];
    // The client sends until about 61 s (plus its downtime), so a send crash armed before
    // 50 s fires; it deletes acknowledged rows again only after the repair (armed just
    // before it, since the queue may be flushed within milliseconds). The server receives
    // and consumes until the cut.
    let early = cut.saturating_sub(secs(1));
    let aimed = [
        (
            CLIENT,
            between(secs(3), secs(50)),
            InCommit::Put(DurableTable::Meta),
        ),
        (
            CLIENT,
            repair.saturating_sub(between(ms(0), secs(5))),
            InCommit::Delete(DurableTable::Outbox),
        ),
        (
            SERVER,
            between(secs(3), early),
            InCommit::Put(DurableTable::Meta),
        ),
        (
            SERVER,
            between(secs(3), early),
            InCommit::Put(DurableTable::Inbox),
        ),
    ];
    for (host, at, which) in aimed {
        let down = between(ms(200), secs(8));
        actions.push((at, NetAction::CrashInCommit(host.into(), which, down)));
    }
    for host in [CLIENT, SERVER] {
        for at in [between(cut, repair), repair + between(ms(500), secs(20))] {
            let down = between(ms(200), secs(8));
            actions.push((at, NetAction::Crash(host.into())));
            actions.push((at + down, NetAction::Bounce(host.into())));
        }
    }
    for (at, action) in actions {
        h.sim.at(at, action);
    }
    repair
}

/// The durable checks beyond the harness's: the log holds every line exactly once (the
/// first failure names each message and its id), every send acknowledged, both stores
/// drained, and no error seen by the applications.
fn check(h: &Harness, out: &mut Outcome, o: &Output, i: &Input) {
    let mut seen: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in &o.log {
        seen.entry(e.key.as_str()).or_default().push(e);
    }
    let twice: Vec<String> = seen
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| {
            let ids: Vec<String> = v
                .iter()
                .map(|e| format!("{}@{}", e.id, e.incarnation))
                .collect();
            format!("{k} x{} ({})", v.len(), ids.join(", "))
        })
        .collect();
    out.check(twice.is_empty(), "exactly-once", || {
        format!(
            "delivered more than once in the output log: {}",
            twice.join("; ")
        )
    });
    let sent = h.sent();
    let lost: Vec<String> = (0..LINES)
        .map(key)
        .filter(|k| !seen.contains_key(k.as_str()))
        .map(|k| {
            let ids: Vec<String> = i
                .ids
                .iter()
                .filter(|(_, &e)| sent.get(e).is_some_and(|s| s.key == k))
                .map(|(id, _)| id.to_string())
                .collect();
            format!("{k} (ids {})", ids.join(", "))
        })
        .collect();
    out.check(lost.is_empty(), "lost", || {
        format!("never in the output log: {}", lost.join("; "))
    });
    out.check(sent.len() == LINES, "input", || {
        format!("{} of {LINES} lines sent", sent.len())
    });
    let pending: Vec<&str> = sent
        .iter()
        .filter(|s| !matches!(s.ack, Ack::Delivered { .. }))
        .map(|s| s.key.as_str())
        .collect();
    out.check(pending.is_empty(), "acknowledged", || {
        format!("never acknowledged: {pending:?}")
    });
    let rows = |host: &str, table: DurableTable| {
        h.sim
            .durable_rows(host)
            .keys()
            .filter(|(t, _)| *t == table)
            .count()
    };
    let (outbox, inbox) = (
        rows(CLIENT, DurableTable::Outbox),
        rows(SERVER, DurableTable::Inbox),
    );
    out.check(outbox == 0 && inbox == 0, "stores", || {
        format!("left in the stores: {outbox} outbox rows at the client, {inbox} inbox rows at the server")
    });
    let errors: Vec<&String> = o.errors.iter().chain(&i.errors).collect();
    out.check(errors.is_empty(), "application", || format!("{errors:?}"));
}

/// With faults, the run must have reached the windows it is about: each side crashed in a
/// commit (both of its aimed crashes fired), the sender sent a line again and the receiver's
/// log was truncated. A run that missed them would pass without testing anything.
fn check_coverage(h: &Harness, out: &mut Outcome, o: &Output, i: &Input) {
    let (cs, ss) = (h.sim.store_stats(CLIENT), h.sim.store_stats(SERVER));
    out.check(
        cs.crashes_in_commit >= 2 && ss.crashes_in_commit >= 2 && i.resent > 0 && o.truncated > 0,
        "coverage",
        || {
            format!(
                "crashes in a commit: client {}, server {} (2 each aimed); lines sent again {}; \
                 log entries truncated {}",
                cs.crashes_in_commit, ss.crashes_in_commit, i.resent, o.truncated
            )
        },
    );
}
