//! Presence: a retained `up`/`down` per device (a client of the bridge's server, or an
//! upstream server), and the bridge's own retained `online` with a retained `offline` last
//! will, so that a subscriber that comes later sees who is there, and sees the bridge's
//! devices' state as unknown once the bridge itself is gone.
//!
//! The state is kept here and published again after every reconnection to the broker: a
//! change while the broker was unreachable is not lost, only late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use pavillion_io::bridge::config::{BridgeConfig, Qos};
use pavillion_io::bridge::topic::Var;
use pavillion_io::ConnectionEvent;

use super::mqtt::Publish;
use super::run::{peer_name, Context};

/// The bridge's own payload while it is connected.
pub const ONLINE: &[u8] = b"online";
/// The bridge's last will (and what it publishes when it stops cleanly).
pub const OFFLINE: &[u8] = b"offline";
/// A device's payload while its session is up.
pub const UP: &[u8] = b"up";
/// A device's payload once its session ended or it went silent.
pub const DOWN: &[u8] = b"down";

/// The bridge's own presence topic, if configured.
pub fn bridge_topic(config: &BridgeConfig) -> Option<String> {
    let t = config.presence.as_ref()?.bridge.as_ref()?;
    t.render(|v| match v {
        Var::Prefix => Some(config.mqtt.prefix.as_str()),
        Var::Site => Some(config.site.as_str()),
        Var::Bridge => Some(config.bridge_id.as_str()),
        _ => None,
    })
    .ok()
}

/// Device topic → its last state.
type States = Arc<Mutex<HashMap<String, bool>>>;

/// The most devices whose state is kept for republishing (guests could otherwise grow it
/// without bound); past it, a new device's state is still published, only not kept.
const MAX_KEPT: usize = 16_384;

fn remember(states: &States, topic: &str, up: bool) {
    let mut s = states.lock().unwrap_or_else(PoisonError::into_inner);
    if s.len() < MAX_KEPT || s.contains_key(topic) {
        s.insert(topic.to_owned(), up);
    }
}

fn publish_state(ctx: &Context, topic: &str, up: bool) {
    let payload = if up { UP } else { DOWN };
    // Not connected: the state is published again on the next connection.
    let _ = ctx
        .mqtt
        .publish_and_forget(Publish::new(topic, payload, Qos::AtLeastOnce, true));
}

fn device_topic(ctx: &Context, var: Var, name: &str) -> Option<String> {
    let t = ctx.config.presence.as_ref()?.devices.as_ref()?;
    t.render(|v| {
        if v == var {
            Some(name)
        } else {
            ctx.static_var(v)
        }
    })
    .ok()
}

/// Starts publishing presence (a no-op without `[presence]`).
pub(crate) fn start(ctx: &Arc<Context>) {
    let states: States = Arc::new(Mutex::new(HashMap::new()));
    let own = bridge_topic(&ctx.config);
    {
        let weak = Arc::downgrade(ctx);
        let states = states.clone();
        ctx.mqtt.on_connect(move |mqtt| {
            if let Some(t) = &own {
                let _ = mqtt.publish_and_forget(Publish::new(t, ONLINE, Qos::AtLeastOnce, true));
            }
            let Some(ctx) = weak.upgrade() else { return };
            let now: Vec<(String, bool)> = states
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(t, up)| (t.clone(), *up))
                .collect();
            for (t, up) in now {
                publish_state(&ctx, &t, up);
            }
        });
    }
    if ctx
        .config
        .presence
        .as_ref()
        .is_none_or(|p| p.devices.is_none())
    {
        return;
    }
    if let Some(server) = &ctx.server {
        let weak = Arc::downgrade(ctx);
        let states = states.clone();
        let mut names: HashMap<std::net::SocketAddr, String> = HashMap::new();
        server.on_connection(move |event| {
            let Some(ctx) = weak.upgrade() else { return };
            let (addr, up) = match event {
                ConnectionEvent::Connected { addr, peer } => {
                    if let Some(p) = peer {
                        names.insert(*addr, peer_name(p));
                    }
                    (*addr, true)
                }
                ConnectionEvent::Disconnected { addr, .. } => (*addr, false),
                ConnectionEvent::PeerDown { addr } => (*addr, false),
                ConnectionEvent::PeerUp { addr } => (*addr, true),
                _ => return,
            };
            let Some(name) = names.get(&addr).cloned() else {
                return;
            };
            if matches!(event, ConnectionEvent::Disconnected { .. }) {
                names.remove(&addr);
            }
            if let Some(topic) = device_topic(&ctx, Var::Client, &name) {
                remember(&states, &topic, up);
                publish_state(&ctx, &topic, up);
            }
        });
    }
    for u in &ctx.upstream {
        let weak = Arc::downgrade(ctx);
        let states = states.clone();
        let name = u.name.clone();
        u.client.on_connection(move |event| {
            let Some(ctx) = weak.upgrade() else { return };
            let up = match event {
                ConnectionEvent::Connected { .. } | ConnectionEvent::PeerUp { .. } => true,
                ConnectionEvent::Disconnected { .. } | ConnectionEvent::PeerDown { .. } => false,
                _ => return,
            };
            if let Some(topic) = device_topic(&ctx, Var::Server, &name) {
                remember(&states, &topic, up);
                publish_state(&ctx, &topic, up);
            }
        });
    }
}
