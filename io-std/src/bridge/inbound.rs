//! MQTT → Pavillion (`[[from_mqtt]]`): a broker publish is sent to the chosen Pavillion
//! receivers, and, for QoS 1/2, acknowledged to the broker only once every receiver
//! acknowledged the message. If one did not (it was not connected, its deadline passed), the
//! bridge tries again (after 0.25 s, doubling up to 5 s) for the route's `give_up_after_ms`
//! (60 s by default); then it gives up. A given-up publish goes to the route's `dead_letter`
//! topic when it has one (QoS 1, acknowledged to the broker on that publish's PUBACK);
//! otherwise it is left unacknowledged, and the broker sends it again when the bridge next
//! connects (its session is persistent). At least once, never acknowledged and lost. A crash
//! of the bridge meanwhile loses nothing either: the broker has not had the ack.
//!
//! Why a dead letter: the broker lets only so many publishes wait for the bridge's ack (its
//! in-flight window; mosquitto's `max_inflight_messages` is 20 by default). Publishes for a
//! receiver that is gone for good would fill it, and then nothing reaches the bridge on any
//! route until it reconnects.
//!
//! "Every connected client" with none connected is done at once (acknowledged): the set of
//! receivers is the clients connected when the publish arrives, as for a Pavillion broker.
//!
//! An upstream at a group address is one group client: its servers are the receivers. A send
//! to it ends with who acknowledged and which expected servers (those that announced the
//! target) did not; the publish is done when each missed server acknowledged some attempt and
//! at least `min_acks` servers did ([`Receipts`]).
//!
//! The MQTT thread only queues (a bounded channel: when full, it waits, which stops reading
//! from the broker: back-pressure, not loss); a sender thread makes the pipelined sends and a
//! waiter thread collects their outcomes in order, so that the sends of many publishes are in
//! flight at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pavillion_io::bridge::config::{Destination, FromMqtt, MqttVersion, Qos};
use pavillion_io::bridge::receipts::Receipts;
use pavillion_io::bridge::topic::{self, Var};

use super::mqtt::{AckToken, Message, Publish, PublishOutcome};
use super::run::{peer_name, Context};
use crate::{Reliability, SendHandle};

/// Publishes queued for sending, at most.
const QUEUE: usize = 1024;
/// Publishes whose Pavillion outcomes are awaited, at most (the send windows bound it too).
const WAITING: usize = 4096;
/// The longest wait for one receiver's outcome: past the endpoint's own send timeout.
const OUTCOME_WAIT: Duration = Duration::from_secs(60);
/// Publishes waiting to be tried again, at most; past it, a failed one is given up at once.
const MAX_RETRIES: usize = 1024;
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the sender looks at its retries while no publish arrives.
const POLL: Duration = Duration::from_millis(50);

struct Job {
    message: Message,
    token: AckToken,
    route: Arc<FromMqtt>,
    /// When it first failed, and how many times.
    first_failure: Option<Instant>,
    attempts: u32,
    /// Why the last attempt failed (the dead letter's `pav-error`).
    why: &'static str,
    /// Who acknowledged any attempt so far.
    receipts: Receipts,
}

struct Waiting {
    handles: Vec<SendHandle>,
    job: Job,
}

/// Where failed jobs go back to the sender (unbounded, but counted against `MAX_RETRIES`).
#[derive(Clone)]
struct Retry {
    tx: Sender<(Instant, Job)>,
    pending: Arc<AtomicUsize>,
}

impl Retry {
    /// Schedules `job` again, or gives it up when it failed for too long or too many wait.
    fn again(&self, ctx: &Context, mut job: Job, why: &'static str) {
        let now = Instant::now();
        let first = *job.first_failure.get_or_insert(now);
        job.attempts = job.attempts.saturating_add(1);
        job.why = why;
        if now.duration_since(first) >= job.route.give_up_after
            || self.pending.load(Ordering::Relaxed) >= MAX_RETRIES
        {
            give_up(ctx, job);
            return;
        }
        let delay = RETRY_MIN
            .saturating_mul(1 << job.attempts.min(5))
            .min(RETRY_MAX);
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send((now + delay, job)).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The running direction.
pub(crate) struct Inbound {
    stop: Option<SyncSender<Option<Job>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Inbound {
    /// Stops after the queued publishes (their receivers' outcomes are still awaited).
    pub(crate) fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(None);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub(crate) fn start(ctx: &Arc<Context>) -> std::io::Result<Inbound> {
    let (tx, rx) = sync_channel::<Option<Job>>(QUEUE);
    let (wtx, wrx) = sync_channel::<Waiting>(WAITING);
    let (rtx, rrx) = channel::<(Instant, Job)>();
    let retry = Retry {
        tx: rtx,
        pending: Arc::new(AtomicUsize::new(0)),
    };
    for f in &ctx.config.from_mqtt {
        let route = Arc::new(f.clone());
        let tx = tx.clone();
        let qos = if f.reliable {
            Qos::AtLeastOnce
        } else {
            Qos::AtMostOnce
        };
        let min_acks = match &f.to {
            Destination::Upstream(n) => ctx
                .config
                .upstream
                .iter()
                .find(|u| &u.name == n)
                .map_or(1, |u| u.min_acks),
            Destination::Clients | Destination::Client(_) => 1,
        };
        ctx.mqtt.subscribe(&f.filter, qos, move |m, token| {
            // Blocks while the queue is full (see the module doc); fails only when stopped.
            let _ = tx.send(Some(Job {
                message: m.clone(),
                token,
                route: route.clone(),
                first_failure: None,
                attempts: 0,
                why: "",
                receipts: Receipts::new(min_acks),
            }));
        });
    }
    let sender = {
        let ctx = Arc::downgrade(ctx);
        std::thread::Builder::new()
            .name("pav-bridge-in".into())
            .spawn({
                let retry = retry.clone();
                move || send_loop(&ctx, &rx, &rrx, &wtx, &retry)
            })?
    };
    let waiter = {
        let ctx = Arc::downgrade(ctx);
        std::thread::Builder::new()
            .name("pav-bridge-in-wait".into())
            .spawn(move || wait_loop(&ctx, &wrx, &retry))?
    };
    Ok(Inbound {
        stop: Some(tx),
        threads: vec![sender, waiter],
    })
}

fn send_loop(
    ctx: &std::sync::Weak<Context>,
    rx: &Receiver<Option<Job>>,
    retries: &Receiver<(Instant, Job)>,
    waiting: &SyncSender<Waiting>,
    retry: &Retry,
) {
    let mut due: Vec<(Instant, Job)> = Vec::new();
    loop {
        let job = match rx.recv_timeout(POLL) {
            Ok(Some(job)) => Some(job),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => None,
        };
        let Some(ctx) = ctx.upgrade() else { return };
        if let Some(job) = job {
            send_one(&ctx, job, waiting, retry);
        }
        due.extend(retries.try_iter());
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = due.drain(..).partition(|(t, _)| *t <= now);
        due = later;
        for (_, job) in ready {
            retry.pending.fetch_sub(1, Ordering::Relaxed);
            send_one(&ctx, job, waiting, retry);
        }
    }
}

/// What one attempt at a publish came to.
enum Attempt {
    /// Queued to every receiver: wait for their outcomes.
    Sent(Vec<SendHandle>),
    /// Nobody to send to ("every client" with none connected), or sent unreliably.
    Done,
    /// A receiver could not be sent to, for the reason given.
    Failed(&'static str),
    /// The publish cannot be mapped (its name does not render; no server): never will be.
    Unmappable,
}

/// `pav-error` of a dead letter whose receiver was not connected.
const NOT_CONNECTED: &str = "no receiver connected";
/// `pav-error` of a dead letter that a receiver's session refused to queue.
const SEND_REFUSED: &str = "a receiver refused the send";
/// `pav-error` of a dead letter a receiver did not acknowledge.
const NOT_ACKNOWLEDGED: &str = "not acknowledged by every receiver";
/// `pav-error` of a dead letter that cannot be mapped to a Pavillion message.
const UNMAPPABLE: &str = "cannot be mapped to a Pavillion message";

fn attempt(ctx: &Context, message: &Message, route: &FromMqtt) -> Attempt {
    let tail = topic::matches(&route.filter, &message.topic).unwrap_or("");
    let name = route.name.render_raw(|v| match v {
        Var::Topic => Some(message.topic.as_str()),
        Var::Tail => Some(tail),
        v => ctx.static_var(v),
    });
    let Ok(name) = name else {
        return Attempt::Unmappable;
    };
    let reliability = if route.reliable {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    };
    let target = route.target.as_str();
    let payload = &message.payload[..];
    let mut handles = Vec::new();
    let mut failed = false;
    match &route.to {
        Destination::Clients | Destination::Client(_) => {
            let Some(server) = &ctx.server else {
                return Attempt::Unmappable;
            };
            let receivers: Vec<_> = server
                .clients()
                .into_iter()
                .filter(|(_, peer)| match &route.to {
                    Destination::Client(n) => peer_name(peer) == *n,
                    _ => true,
                })
                .collect();
            if receivers.is_empty() {
                if matches!(route.to, Destination::Clients) {
                    // "Every connected client" with none connected: delivered to all of them.
                    ctx.counters
                        .from_mqtt_no_receiver
                        .fetch_add(1, Ordering::Relaxed);
                    return Attempt::Done;
                }
                return Attempt::Failed(NOT_CONNECTED);
            }
            for (addr, _) in receivers {
                match server.send_pipelined_to(addr, target, &name, payload, reliability) {
                    Ok(h) => handles.push(h),
                    Err(_) => failed = true,
                }
            }
        }
        Destination::Upstream(n) => match ctx.upstream(n) {
            Some(u) => match u.client.send_pipelined(target, &name, payload, reliability) {
                Ok(h) => handles.push(h),
                Err(_) => failed = true,
            },
            None => return Attempt::Unmappable,
        },
    }
    if reliability == Reliability::Unreliable {
        // Best effort: nothing to wait for, nothing to try again.
        if failed {
            ctx.counters
                .from_mqtt_failed
                .fetch_add(1, Ordering::Relaxed);
        } else {
            ctx.counters.from_mqtt.fetch_add(1, Ordering::Relaxed);
        }
        return Attempt::Done;
    }
    if failed {
        // Receivers that did get it will get it again: at least once.
        return Attempt::Failed(SEND_REFUSED);
    }
    Attempt::Sent(handles)
}

fn send_one(ctx: &Context, job: Job, waiting: &SyncSender<Waiting>, retry: &Retry) {
    match attempt(ctx, &job.message, &job.route) {
        Attempt::Sent(handles) => {
            let _ = waiting.send(Waiting { handles, job });
        }
        Attempt::Done => job.token.ack(),
        Attempt::Failed(why) => retry.again(ctx, job, why),
        Attempt::Unmappable => {
            // Never acknowledged but through a dead letter: a configuration problem is not
            // hidden.
            let job = Job {
                why: UNMAPPABLE,
                ..job
            };
            give_up(ctx, job);
        }
    }
}

/// Gives `job` up: to the route's dead letter if it has one, else left unacknowledged.
fn give_up(ctx: &Context, job: Job) {
    let counters = ctx.counters.clone();
    let Some(template) = &job.route.dead_letter else {
        counters.from_mqtt_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let tail = topic::matches(&job.route.filter, &job.message.topic).unwrap_or("");
    let rendered = template.render(|v| match v {
        Var::Topic => Some(job.message.topic.as_str()),
        Var::Tail => Some(tail),
        v => ctx.static_var(v),
    });
    let Ok(dead_topic) = rendered else {
        counters.from_mqtt_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut p = Publish::new(
        dead_topic,
        job.message.payload.clone(),
        Qos::AtLeastOnce,
        false,
    );
    if ctx.config.mqtt.protocol == MqttVersion::V5 {
        // 3.1.1 has no properties: there the topic alone says where it came from.
        p.user_properties = vec![
            ("pav-topic".into(), job.message.topic.clone()),
            ("pav-error".into(), job.why.into()),
        ];
    }
    let token = job.token;
    let queued = ctx.mqtt.publish(p, move |outcome| {
        if outcome == PublishOutcome::Acked {
            counters
                .from_mqtt_dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            token.ack();
        } else {
            // Not moved: the original stays unacknowledged, and the broker sends it again.
            counters.from_mqtt_failed.fetch_add(1, Ordering::Relaxed);
        }
    });
    if queued.is_err() {
        ctx.counters
            .from_mqtt_failed
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn wait_loop(ctx: &std::sync::Weak<Context>, rx: &Receiver<Waiting>, retry: &Retry) {
    while let Ok(mut w) = rx.recv() {
        let mut ok = true;
        for h in w.handles {
            // Every outcome is awaited, so that what follows starts after all of them.
            ok &= match h.wait_timeout(OUTCOME_WAIT) {
                Ok(d) => w.job.receipts.on_outcome(&d.acked, &d.missing),
                Err(_) => false,
            };
        }
        let Some(ctx) = ctx.upgrade() else { return };
        if ok && w.job.receipts.is_enough() {
            ctx.counters.from_mqtt.fetch_add(1, Ordering::Relaxed);
            w.job.token.ack();
        } else {
            retry.again(&ctx, w.job, NOT_ACKNOWLEDGED);
        }
    }
}
