//! MQTT → Pavillion (`[[from_mqtt]]`): a broker publish is sent to the chosen Pavillion
//! receivers, and, for QoS 1/2, acknowledged to the broker only once every receiver
//! acknowledged the message. If one did not (it was gone, its deadline passed), the publish
//! stays unacknowledged and the broker sends it again when the bridge next connects (its
//! session is persistent): at least once, never acknowledged and lost.
//!
//! The MQTT thread only queues (a bounded channel: when full, it waits, which stops reading
//! from the broker: back-pressure, not loss); a sender thread makes the pipelined sends and a
//! waiter thread collects their outcomes in order, so that the sends of many publishes are in
//! flight at once.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pavillion_io::bridge::config::{Destination, FromMqtt, Qos};
use pavillion_io::bridge::topic::{self, Var};

use super::mqtt::{AckToken, Message};
use super::run::{peer_name, Context};
use crate::{Reliability, SendHandle};

/// Publishes queued for sending, at most.
const QUEUE: usize = 1024;
/// Publishes whose Pavillion outcomes are awaited, at most (the send windows bound it too).
const WAITING: usize = 4096;
/// The longest wait for one receiver's outcome: past the endpoint's own send timeout.
const OUTCOME_WAIT: Duration = Duration::from_secs(60);

struct Job {
    message: Message,
    token: AckToken,
    route: Arc<FromMqtt>,
}

struct Waiting {
    handles: Vec<SendHandle>,
    token: AckToken,
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
    for f in &ctx.config.from_mqtt {
        let route = Arc::new(f.clone());
        let tx = tx.clone();
        let qos = if f.reliable {
            Qos::AtLeastOnce
        } else {
            Qos::AtMostOnce
        };
        ctx.mqtt.subscribe(&f.filter, qos, move |m, token| {
            // Blocks while the queue is full (see the module doc); fails only when stopped.
            let _ = tx.send(Some(Job {
                message: m.clone(),
                token,
                route: route.clone(),
            }));
        });
    }
    let sender = {
        let ctx = Arc::downgrade(ctx);
        std::thread::Builder::new()
            .name("pav-bridge-in".into())
            .spawn(move || send_loop(&ctx, &rx, &wtx))?
    };
    let waiter = {
        let ctx = Arc::downgrade(ctx);
        std::thread::Builder::new()
            .name("pav-bridge-in-wait".into())
            .spawn(move || wait_loop(&ctx, &wrx))?
    };
    Ok(Inbound {
        stop: Some(tx),
        threads: vec![sender, waiter],
    })
}

fn send_loop(
    ctx: &std::sync::Weak<Context>,
    rx: &Receiver<Option<Job>>,
    waiting: &SyncSender<Waiting>,
) {
    while let Ok(Some(job)) = rx.recv() {
        let Some(ctx) = ctx.upgrade() else { return };
        send_one(&ctx, job, waiting);
    }
}

fn send_one(ctx: &Context, job: Job, waiting: &SyncSender<Waiting>) {
    let Job {
        message,
        token,
        route,
    } = job;
    let tail = topic::matches(&route.filter, &message.topic).unwrap_or("");
    let name = route.name.render_raw(|v| match v {
        Var::Topic => Some(message.topic.as_str()),
        Var::Tail => Some(tail),
        v => ctx.static_var(v),
    });
    let Ok(name) = name else {
        ctx.counters
            .from_mqtt_failed
            .fetch_add(1, Ordering::Relaxed);
        return;
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
                ctx.counters
                    .from_mqtt_failed
                    .fetch_add(1, Ordering::Relaxed);
                return;
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
                    token.ack();
                } else {
                    ctx.counters
                        .from_mqtt_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
                return;
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
            None => failed = true,
        },
    }
    if failed {
        ctx.counters
            .from_mqtt_failed
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    if reliability == Reliability::Unreliable {
        ctx.counters.from_mqtt.fetch_add(1, Ordering::Relaxed);
        token.ack();
        return;
    }
    let _ = waiting.send(Waiting { handles, token });
}

fn wait_loop(ctx: &std::sync::Weak<Context>, rx: &Receiver<Waiting>) {
    while let Ok(w) = rx.recv() {
        let mut ok = true;
        for h in w.handles {
            // Every outcome is awaited, so that what follows starts after all of them.
            ok &= matches!(h.wait_timeout(OUTCOME_WAIT), Ok(d) if d.missing.is_empty());
        }
        let Some(ctx) = ctx.upgrade() else { return };
        if ok {
            ctx.counters.from_mqtt.fetch_add(1, Ordering::Relaxed);
            w.token.ack();
        } else {
            ctx.counters
                .from_mqtt_failed
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
