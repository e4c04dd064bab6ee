//! `handoff-faults`: the acknowledgement hand-off (`docs/PROTOCOL.md` §18) under faults. The
//! server's application is a bridge: it marks the target for hand-off, "publishes" each held
//! message to a broker that answers 20–200 ms later, and only then completes the hand-off,
//! so that the client's ACK means the broker has the message. It refuses one first delivery
//! in ten (the broker said no: the message must come again), disconnects the client once
//! (0.2–0.8 s after it connected) and crashes once (at 1.8–2.8 s, for 0.2–0.8 s), while the
//! client sends 100 reliable messages, one every 30 ms; the link loses 20% each way.
//!
//! The broker lives outside the server host, as a real one would: what it got survives the
//! crash, and the ledger's receptions are its entries (the broker's answer is the moment a
//! message is safe). The guarantee checked:
//! - every message the client saw acknowledged was in the broker by then (`lost-acked`, and
//!   `ack-before-completion` for an ACK that came before the broker's answer);
//! - every message reaches the broker (`delivered`) and is acknowledged in the end;
//! - a session that ends frees its held messages at once (`release`, rule 8 of §18.2).
//!
//! Messages may reach the broker more than once: after the drop or the crash, the client sends
//! again what was held, or completed but not yet acknowledged, on its new session (§18.2
//! rule 8: at-least-once across a reconnect). Those are the row's `redeliv`: a reception is
//! counted per session (every `Connected` and every start of the server begins a new one),
//! so `dup` is a message in the broker twice from one session, which must never happen. The
//! bridge drops a second copy of a message it published already in the session (same key and
//! payload, as the real one's de-duplication id), since a suite 3 batch refused because of one
//! frame comes again whole (rule 6); the frames of a batch share one key, so the key alone
//! would not do. The note under the table says how many messages the server delivered more
//! than once.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use core::cell::RefCell;
use core::time::Duration;

use pavillion_proto::endpoint::ServerEvent;
use pavillion_proto::endpoint::{HandoffError, HandoffId, HandoffTarget, MessageKey, Server};
use pavillion_proto::rng::Rng;
use pavillion_sim::{Ctl, LinkFaults, NetAction, Script, ServerSpec};

use crate::harness::{ms, secs, unicast, Batch, Harness};
use crate::outcome::{Ack, Ledger, Outcome};
use crate::Params;

const SERVER: &str = "server";
const CLIENT: &str = "client";
/// The target the bridge holds (the harness's clients send to it).
const TARGET: &str = "t";
const MESSAGES: usize = 100;
const LOSS: f64 = 0.2;
/// One first delivery in this many is refused.
const REFUSE_ONE_IN: u64 = 10;
/// The broker's answer comes this many milliseconds after a publish.
const BROKER_MS: (u64, u64) = (20, 200);

/// The bridge's state, and what the scenario reads of it: outside the server host, so that
/// it outlives the crash (the application's pending broker answers do not: they die with
/// the incarnation that waited for them).
struct Bridge {
    /// Draws the broker's delays and the refusals.
    rng: Rng,
    /// The server's session count: bumped at every start and every `Connected`, the
    /// ledger's "incarnation" of a broker entry.
    session: u32,
    /// Messages already in the broker, per session, by key and payload: a copy is dropped.
    published: BTreeSet<(u32, MessageKey, String)>,
    /// Counters refused, per session: their other held frames were released with them
    /// (`HandoffError::Unknown` for a batch-mate's answer after that is expected).
    refused_counters: BTreeSet<(u32, MessageKey)>,
    /// Answers `Unknown` explained by a batch-mate's refusal.
    released: u64,
    /// `HeldMessage` events per message.
    deliveries: BTreeMap<String, u32>,
    refused: u64,
    /// Completions and refusals answered `SessionGone`.
    gone: u64,
    /// Held copies the broker had already (same session and key).
    absorbed: u64,
    /// Messages held just before the drop, and just after it.
    drop: Option<(usize, usize)>,
    /// The drop is scheduled in the running incarnation (it dies with it if it crashes).
    drop_armed: bool,
    /// Answers the bridge did not expect.
    errors: Vec<String>,
}

pub(crate) fn handoff_faults(p: &Params) -> Outcome {
    let mut h = Harness::new(p, secs(40), LinkFaults::clean().with_loss(LOSS));
    let mut faults = Rng::seed_from_u64(p.seed ^ 0x4a_0d0f);
    let mut between = |a: u64, b: u64| ms(faults.range_inclusive(a, b));
    let drop_after = between(200, 800);
    let crash_at = between(1800, 2800);
    let up_at = crash_at + between(200, 800);

    let bridge = Rc::new(RefCell::new(Bridge {
        rng: Rng::seed_from_u64(p.seed ^ 0x00b2_1d9e),
        session: 0,
        published: BTreeSet::new(),
        refused_counters: BTreeSet::new(),
        released: 0,
        deliveries: BTreeMap::new(),
        refused: 0,
        gone: 0,
        absorbed: 0,
        drop: None,
        drop_armed: false,
        errors: Vec::new(),
    }));
    let script = bridge_app(bridge.clone(), h.ledger(), drop_after);
    let spec = ServerSpec::new(p.suite.server_config(1));
    let server = match h.sim.add_server_script(SERVER, spec, script) {
        Ok(a) => a,
        Err(e) => {
            h.setup_error(e);
            return h.run(unicast(SERVER));
        }
    };
    h.track(SERVER, true);
    let batch = Batch::new(ms(100), ms(30), MESSAGES).deadline(secs(35));
    h.client(CLIENT, p.suite.client_config(0, server), &[batch]);
    h.sim.at(crash_at, NetAction::Crash(SERVER.into()));
    h.sim.at(up_at, NetAction::Bounce(SERVER.into()));

    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    check(&h, &mut out, &bridge.borrow());
    let b = bridge.borrow();
    let held: u32 = b.deliveries.values().sum();
    let again = b.deliveries.values().filter(|n| **n > 1).count();
    let released: u64 = h
        .sim
        .stats(SERVER)
        .iter()
        .map(|s| s.handoffs_session_gone)
        .sum();
    let (before, after) = b.drop.unwrap_or_default();
    out.notes.push(format!(
        "handoff-faults {}: {held} held deliveries of {MESSAGES} messages, {again} delivered \
         more than once; {} refused ({} batch-mates released with them), {} answers \
         SessionGone, {} copies absorbed by the broker's de-duplication; the drop released \
         {before} held messages at once ({after} left), {released} in all; {} reached the \
         broker again after the drop or the crash",
        p.suite.name(),
        b.refused,
        b.released,
        b.gone,
        b.absorbed,
        out.redelivered,
    ));
    out
}

/// The bridge: marks the target at every start, publishes each held message and completes it
/// when the broker answers (or refuses it then, one first delivery in ten), and disconnects
/// the client `drop_after` its session is up (once in the run; again after a crash that
/// came first).
fn bridge_app(
    bridge: Rc<RefCell<Bridge>>,
    ledger: Rc<RefCell<Ledger>>,
    drop_after: Duration,
) -> Script<Server> {
    let b1 = bridge.clone();
    Script::<Server>::new()
        .on_start(move |ctl| {
            let mut b = b1.borrow_mut();
            b.session += 1;
            b.drop_armed = false;
            ctl.set_handoff(HandoffTarget::Exact(TARGET.into()));
        })
        .on_event(move |ctl, event| match event {
            ServerEvent::Connected { addr, .. } => {
                let mut b = bridge.borrow_mut();
                b.session += 1;
                if b.drop.is_none() && !b.drop_armed {
                    b.drop_armed = true;
                    let bridge = bridge.clone();
                    ctl.after(drop_after, move |ctl| {
                        let before = ctl.endpoint().held_count();
                        ctl.disconnect(addr);
                        let after = ctl.endpoint().held_count();
                        bridge.borrow_mut().drop = Some((before, after));
                    });
                }
            }
            ServerEvent::HeldMessage {
                message,
                handoff,
                key,
                ..
            } => {
                let text = String::from_utf8_lossy(message.payload()).into_owned();
                on_held(ctl, &bridge, &ledger, text, handoff, key);
            }
            _ => {}
        })
}

/// One held message: published now, answered by the broker after a seeded delay.
fn on_held(
    ctl: &mut Ctl<'_, Server>,
    bridge: &Rc<RefCell<Bridge>>,
    ledger: &Rc<RefCell<Ledger>>,
    text: String,
    handoff: HandoffId,
    key: MessageKey,
) {
    let (refuse, delay, session) = {
        let mut b = bridge.borrow_mut();
        let n = b.deliveries.entry(text.clone()).or_default();
        *n += 1;
        let first = *n == 1;
        let refuse = b.rng.range_inclusive(1, REFUSE_ONE_IN) == 1 && first;
        let delay = ms(b.rng.range_inclusive(BROKER_MS.0, BROKER_MS.1));
        (refuse, delay, b.session)
    };
    let (bridge, ledger) = (bridge.clone(), ledger.clone());
    ctl.after(delay, move |ctl| {
        let answer = if refuse {
            let mut b = bridge.borrow_mut();
            b.refused += 1;
            b.refused_counters.insert((session, key));
            drop(b);
            ctl.refuse_handoff(handoff)
        } else {
            // The broker has it from now on, whatever the server answers next.
            let fresh = bridge
                .borrow_mut()
                .published
                .insert((session, key, text.clone()));
            if fresh {
                ledger
                    .borrow_mut()
                    .received_by(SERVER, session, &text, ctl.now());
            } else {
                bridge.borrow_mut().absorbed += 1;
            }
            ctl.complete_handoff(handoff)
        };
        let mut b = bridge.borrow_mut();
        match answer {
            Ok(()) => {}
            // The drop ended its session: the client sends it again on the next.
            Err(HandoffError::SessionGone) => b.gone += 1,
            // A batch-mate's refusal released it: the batch comes again (§18.2 rule 6).
            Err(HandoffError::Unknown) if b.refused_counters.contains(&(session, key)) => {
                b.released += 1;
            }
            Err(e) => b.errors.push(format!("{handoff} ({text}): {e}")),
        }
    });
}

/// The hand-off checks beyond the harness's.
fn check(h: &Harness, out: &mut Outcome, b: &Bridge) {
    let ledger = h.ledger();
    let ledger = ledger.borrow();
    let sent = h.sent();
    let early: Vec<String> = sent
        .iter()
        .filter_map(|s| {
            let acked = s.acked_at?;
            match ledger.first_reception(SERVER, &s.key) {
                Some(at) if at <= acked => None,
                Some(at) => Some(format!(
                    "{} (acknowledged at {acked}, in the broker at {at})",
                    s.key
                )),
                None => Some(format!("{} (acknowledged at {acked}, never)", s.key)),
            }
        })
        .collect();
    out.check(early.is_empty(), "ack-before-completion", || {
        format!(
            "{} messages acknowledged before the broker had them: {}",
            early.len(),
            early.join("; ")
        )
    });
    let pending: Vec<&str> = sent
        .iter()
        .filter(|s| !matches!(s.ack, Ack::Delivered { .. }))
        .map(|s| s.key.as_str())
        .collect();
    out.check(pending.is_empty(), "acknowledged", || {
        format!("never acknowledged: {pending:?}")
    });
    out.check(
        b.drop.is_none_or(|(_, after)| after == 0),
        "release",
        || {
            let (before, after) = b.drop.unwrap_or_default();
            format!("the drop left {after} of {before} held messages in the table")
        },
    );
    let restarts = h.sim.stats(SERVER).len();
    out.check(
        b.refused > 0 && b.drop.is_some() && restarts >= 2,
        "coverage",
        || {
            format!(
                "refusals {}, drop {:?}, server starts {restarts}: the run missed a fault",
                b.refused, b.drop
            )
        },
    );
    out.check(b.errors.is_empty(), "application", || {
        format!("{:?}", b.errors)
    });
}
