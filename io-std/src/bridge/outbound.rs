//! Pavillion → MQTT: device messages to the bridge's server (`[[to_mqtt]]`) and messages of
//! the targets the bridge subscribes to at upstream servers (`[[upstream]] subscribe`).
//!
//! A reliable message is held (its ACK waits, `docs/PROTOCOL.md` §18), by the bridge's server
//! for a device's message and by the bridge's client for an upstream server's, and published
//! with QoS 1; the hand-off is completed, so the sender gets its ACK, only on the broker's
//! PUBACK. Any other end (the broker refused it, the connection dropped before the ack, the
//! publish queue was full, no mapping) refuses the hand-off, so the sender sends the message
//! again: never an ACK without a PUBACK. A publish whose PUBACK was lost is sent again too:
//! at least once. Unreliable messages are published with `unreliable_qos` (0 by default;
//! QoS 0 for an upstream server's), best effort.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use pavillion_io::bridge::config::{Qos, TargetMatch, ToMqtt};
use pavillion_io::bridge::topic::Var;

use super::mqtt::{MqttError, Publish, PublishOutcome};
use super::run::{peer_name, Context};
use crate::{Handoff, ReceivedMessage};
use pavillion_proto::features::handoff::MessageKey;

/// How the sender's message ends once its publish is known: `true` = safely at the broker.
pub(crate) type Finish = Box<dyn FnOnce(bool) + Send>;

/// The end of a held message: its hand-off completed on the broker's PUBACK (the sender gets
/// its ACK), refused on every other outcome (the sender sends it again).
fn settle(handoff: Handoff) -> Finish {
    Box::new(move |safe| {
        if safe {
            // On the MQTT thread: it must not wait for the endpoint's thread.
            handoff.complete_nowait();
        } else {
            handoff.refuse();
        }
    })
}

/// The `[[to_mqtt]]` that maps `target`: the first that matches.
fn route<'c>(ctx: &'c Context, target: &str) -> Option<&'c ToMqtt> {
    ctx.config.to_mqtt.iter().find(|t| t.target.matches(target))
}

/// Publishes one device message of the bridge's server; `finish` is called exactly once.
/// A held message (`key`, from its hand-off) goes through the site's de-duplication, which
/// adds its `pav-id` and, on a standby bridge, waits for the leader's publish.
pub(crate) fn forward(
    ctx: &Context,
    m: &ReceivedMessage,
    key: Option<&MessageKey>,
    finish: Finish,
) {
    let Some(r) = route(ctx, m.target()) else {
        ctx.counters
            .to_mqtt_unmapped
            .fetch_add(1, Ordering::Relaxed);
        finish(false);
        return;
    };
    let client = m.peer.as_ref().map(peer_name).unwrap_or_default();
    let topic = r.topic.render(|v| match v {
        Var::Client => Some(client.as_str()),
        Var::Target => Some(m.target()),
        Var::Name => Some(m.name()),
        v => ctx.static_var(v),
    });
    let Ok(topic) = topic else {
        ctx.counters
            .to_mqtt_unmapped
            .fetch_add(1, Ordering::Relaxed);
        finish(false);
        return;
    };
    let qos = if m.reliable { r.qos } else { r.unreliable_qos };
    let p = Publish::new(topic, m.payload_bytes(), qos, r.retain);
    match key {
        Some(key) => {
            let id = ctx.dedupe.pav_id_of(key, m);
            publish_with(ctx, p, finish, |p, done| ctx.dedupe.publish(id, p, done));
        }
        None => publish(ctx, p, finish),
    }
}

/// Publishes and calls `finish` once with whether the broker has it.
pub(crate) fn publish(ctx: &Context, p: Publish, finish: Finish) {
    publish_with(ctx, p, finish, |p, done| ctx.mqtt.publish(p, done));
}

/// [`publish`] through `send` (the broker connection, or the de-duplication in front of it).
fn publish_with<S>(ctx: &Context, p: Publish, finish: Finish, send: S)
where
    S: FnOnce(Publish, Box<dyn FnOnce(PublishOutcome) + Send>) -> Result<(), MqttError>,
{
    let slot = Arc::new(Mutex::new(Some(finish)));
    let taken = slot.clone();
    let counters = ctx.counters.clone();
    let queued = send(
        p,
        Box::new(move |outcome| {
            let ok = outcome == PublishOutcome::Acked;
            if ok {
                counters.to_mqtt.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.to_mqtt_failed.fetch_add(1, Ordering::Relaxed);
            }
            let f = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(f) = f {
                f(ok);
            }
        }),
    );
    if queued.is_err() {
        // Not connected, or the queue is full: the completion will never run.
        ctx.counters.to_mqtt_failed.fetch_add(1, Ordering::Relaxed);
        let f = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(f) = f {
            f(false);
        }
    }
}

pub(crate) fn start(ctx: &Arc<Context>) {
    if let Some(server) = &ctx.server {
        let targets: Vec<Option<String>> = if ctx
            .config
            .to_mqtt
            .iter()
            .any(|t| t.target == TargetMatch::Any)
        {
            vec![None]
        } else {
            ctx.config
                .to_mqtt
                .iter()
                .filter_map(|t| match &t.target {
                    TargetMatch::Exact(s) => Some(Some(s.clone())),
                    TargetMatch::Any => None,
                })
                .collect()
        };
        let mut targets = targets;
        targets.sort();
        targets.dedup();
        for target in targets {
            // Reliable messages are held: their ACK waits for the broker's PUBACK.
            let weak = Arc::downgrade(ctx);
            server.on_message_handoff(target.as_deref(), move |m, handoff| {
                let Some(ctx) = weak.upgrade() else { return };
                let key = handoff.key();
                forward(&ctx, m, key.as_ref(), settle(handoff));
            });
            // Unreliable messages (and those §18 does not hold: ordered, durable, segmented).
            let weak = Arc::downgrade(ctx);
            server.on_message(target.as_deref(), move |m| {
                let Some(ctx) = weak.upgrade() else { return };
                forward(&ctx, m, None, Box::new(|_| {}));
            });
        }
    }
    for u in &ctx.upstream {
        let Some(cfg) = ctx.config.upstream.iter().find(|c| c.name == u.name) else {
            continue;
        };
        for target in &cfg.subscribe {
            // Reliable messages are held: the upstream server's ACK waits for the PUBACK.
            let upstream = Arc::new(Upstream {
                server: u.name.clone(),
                topic: cfg.topic.clone(),
            });
            let (weak, up) = (Arc::downgrade(ctx), upstream.clone());
            u.client
                .on_message_handoff(Some(target), move |m, handoff| {
                    // A bridge closing drops the token: refused, the server sends it again.
                    let Some(ctx) = weak.upgrade() else { return };
                    up.forward(&ctx, m, settle(handoff));
                });
            // Unreliable messages (and those §18 does not hold: ordered, durable, segmented).
            let weak = Arc::downgrade(ctx);
            u.client.on_message(Some(target), move |m| {
                let Some(ctx) = weak.upgrade() else { return };
                upstream.forward(&ctx, m, Box::new(|_| {}));
            });
            // The subscription is renewed by the client itself after a reconnection.
            let _ = u.client.subscribe(target);
        }
    }
}

/// One `[[upstream]]`'s messages to MQTT: the server's name and the topic template.
struct Upstream {
    server: String,
    topic: pavillion_io::bridge::topic::Template,
}

impl Upstream {
    /// Publishes one message of the upstream server (QoS 1 if reliable, else 0); `finish` is
    /// called exactly once, with `false` if it cannot be mapped to a topic.
    fn forward(&self, ctx: &Context, m: &ReceivedMessage, finish: Finish) {
        let t = self.topic.render(|v| match v {
            Var::Server => Some(self.server.as_str()),
            Var::Target => Some(m.target()),
            Var::Name => Some(m.name()),
            v => ctx.static_var(v),
        });
        let Ok(t) = t else {
            ctx.counters
                .to_mqtt_unmapped
                .fetch_add(1, Ordering::Relaxed);
            finish(false);
            return;
        };
        let qos = if m.reliable {
            Qos::AtLeastOnce
        } else {
            Qos::AtMostOnce
        };
        publish(ctx, Publish::new(t, m.payload_bytes(), qos, false), finish);
    }
}
