//! The running bridge: its MQTT connection, its Pavillion sides (its own server and the
//! upstream servers it is a client of), and the directions between them.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pavillion_io::bridge::config::BridgeConfig;
use pavillion_io::bridge::topic::Var;
use pavillion_proto::PeerId;

use super::mqtt::{Mqtt, MqttSettings, Publish, Will};
use super::{inbound, outbound, presence};
use crate::{Client, Server};

/// The bridge's counters (what `pav bridge -v` prints every 10 s).
#[derive(Debug, Default)]
pub struct Counters {
    /// Device messages published to the broker, with its ack for QoS 1/2.
    pub to_mqtt: AtomicU64,
    /// Device messages whose publish failed (refused: the device sends them again).
    pub to_mqtt_failed: AtomicU64,
    /// Device messages no `[[to_mqtt]]` maps, or whose topic could not be made.
    pub to_mqtt_unmapped: AtomicU64,
    /// Broker publishes delivered to every chosen Pavillion receiver (and acked to the broker).
    pub from_mqtt: AtomicU64,
    /// Broker publishes given up (a receiver did not acknowledge in time, or the publish
    /// cannot be mapped) and left unacknowledged at the broker.
    pub from_mqtt_failed: AtomicU64,
    /// Broker publishes given up and moved to the route's `dead_letter` topic (then acked).
    pub from_mqtt_dead_lettered: AtomicU64,
    /// Broker publishes for "every client" while none was connected (acked: nobody to tell).
    pub from_mqtt_no_receiver: AtomicU64,
}

impl Counters {
    /// One line of the counters, for progress output.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "to_mqtt {} (failed {}, unmapped {}), from_mqtt {} (failed {}, dead-lettered {}, no receiver {})",
            g(&self.to_mqtt),
            g(&self.to_mqtt_failed),
            g(&self.to_mqtt_unmapped),
            g(&self.from_mqtt),
            g(&self.from_mqtt_failed),
            g(&self.from_mqtt_dead_lettered),
            g(&self.from_mqtt_no_receiver)
        )
    }
}

/// An `[[upstream]]` server the bridge is a client of.
pub struct UpstreamLink {
    /// Its name (`{server}`).
    pub name: String,
    /// The connected client.
    pub client: Arc<Client>,
}

/// What every part of the bridge shares: the configuration, the MQTT connection and the
/// Pavillion sides. The parts of `rpc`, `registers` and `dedupe` start from it too.
pub struct Context {
    /// The configuration.
    pub config: Arc<BridgeConfig>,
    /// The broker connection.
    pub mqtt: Mqtt,
    /// The bridge's own server, if `[pavillion]` is configured.
    pub server: Option<Arc<Server>>,
    /// The upstream servers.
    pub upstream: Vec<UpstreamLink>,
    /// The counters.
    pub counters: Arc<Counters>,
    /// Several bridges for one site (`[dedupe]`): the to-MQTT path of held device messages
    /// publishes through it (a pass-through when the mode is `off`).
    pub dedupe: Arc<super::dedupe::Dedupe>,
}

impl Context {
    /// The value of a placeholder that is the same for the whole bridge.
    pub fn static_var(&self, v: Var) -> Option<&str> {
        match v {
            Var::Prefix => Some(&self.config.mqtt.prefix),
            Var::Site => Some(&self.config.site),
            Var::Bridge => Some(&self.config.bridge_id),
            _ => None,
        }
    }

    /// The upstream named `name`.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamLink> {
        self.upstream.iter().find(|u| u.name == name)
    }
}

/// `{client}`: a client's id as text when it is printable ASCII (a key name such as
/// `alice-sensor-001`), else in hex; a guest's key hash in hex.
pub fn peer_name(peer: &PeerId) -> String {
    match peer {
        PeerId::Client(id) => match std::str::from_utf8(&id.0) {
            Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => s.to_owned(),
            _ => hex::encode(id.0),
        },
        PeerId::Guest(h) => hex::encode(h),
        other => other.to_string(),
    }
}

/// A running bridge. Dropping it does not stop it: call [`Bridge::close`].
pub struct Bridge {
    ctx: Arc<Context>,
    inbound: Option<inbound::Inbound>,
    services: super::rpc::Services,
}

impl Bridge {
    /// Connects to the broker and starts bridging: `server` is the bridge's own server (built
    /// from `[pavillion]` by the caller), `upstream` the clients of `[[upstream]]`, by name.
    ///
    /// # Errors
    /// A TLS file that cannot be read, a thread that cannot be started.
    pub fn start(
        config: BridgeConfig,
        server: Option<Server>,
        upstream: Vec<(String, Client)>,
    ) -> io::Result<Bridge> {
        let config = Arc::new(config);
        let will = presence::bridge_topic(&config).map(|topic| Will {
            topic,
            payload: Bytes::from_static(presence::OFFLINE),
            retain: true,
        });
        // Connected only once every part has subscribed (see `Mqtt::prepare`).
        let mqtt = Mqtt::prepare(MqttSettings {
            section: config.mqtt.clone(),
            will,
        })?;
        // Before `connect`, as every part that subscribes.
        let dedupe = super::dedupe::Dedupe::start(&mqtt, &config);
        let ctx = Arc::new(Context {
            config,
            mqtt,
            dedupe,
            server: server.map(Arc::new),
            upstream: upstream
                .into_iter()
                .map(|(name, client)| UpstreamLink {
                    name,
                    client: Arc::new(client),
                })
                .collect(),
            counters: Arc::new(Counters::default()),
        });
        presence::start(&ctx);
        let inbound = inbound::start(&ctx)?;
        outbound::start(&ctx);
        // The parts of `rpc`, `registers` and `dedupe` start here, before `connect`, so that
        // their subscriptions exist when the broker hands over what the session kept.
        let services = super::rpc::Services::start(&ctx);
        ctx.mqtt.connect();
        Ok(Bridge {
            ctx,
            inbound: Some(inbound),
            services,
        })
    }

    /// The shared context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The broker connection.
    pub fn mqtt(&self) -> &Mqtt {
        &self.ctx.mqtt
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.ctx.counters
    }

    /// RPC and register publishing (their counters).
    pub fn services(&self) -> &super::rpc::Services {
        &self.services
    }

    /// Publishes the bridge's `offline`, disconnects from the broker cleanly and closes the
    /// Pavillion sides.
    pub fn close(mut self) {
        if let Some(topic) = presence::bridge_topic(&self.ctx.config) {
            let (tx, rx) = std::sync::mpsc::channel();
            let sent = self.ctx.mqtt.publish(
                Publish::new(
                    topic,
                    presence::OFFLINE,
                    pavillion_io::bridge::config::Qos::AtLeastOnce,
                    true,
                ),
                move |o| {
                    let _ = tx.send(o);
                },
            );
            if sent.is_ok() {
                let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
            }
        }
        self.services.close();
        self.ctx.dedupe.close();
        self.ctx.mqtt.close();
        // The server first: the outcomes the inbound direction still waits for end at once.
        if let Some(s) = &self.ctx.server {
            s.close();
        }
        if let Some(i) = self.inbound.take() {
            i.stop();
        }
    }
}
