//! The MQTT connection: a thread running rumqttc's connection loop, with publish completions
//! on the broker's PUBACK, manual acknowledgement of received publishes, and reconnection with
//! backoff.
//!
//! Why the completions are exact: rumqttc reports a QoS 1 publish as `Outgoing::Publish(pkid)`
//! when it writes it, in the order the publishes were queued, and the broker's ack as
//! `Incoming::PubAck(pkid)`. So a FIFO of queued publishes pairs each with its packet id, and a
//! table pkid → completion (bounded by rumqttc's in-flight limit) pairs each ack with its
//! publish. A fresh rumqttc connection is made after every disconnect, with every completion of
//! the old one reported [`PublishOutcome::Lost`]: rumqttc would otherwise resend the old
//! publishes itself, or drop them when the broker lost the session, and either would break the
//! pairing. A lost publish may have reached the broker (its ack was lost): the caller resends,
//! so delivery to the broker is at least once, never "acknowledged but lost".
//!
//! Received QoS 1/2 publishes are acknowledged only when every handler whose filter matched
//! has called [`AckToken::ack`]; a token dropped without `ack` leaves the publish unacknowledged,
//! and the broker sends it again when the bridge reconnects (its session is persistent). A token
//! of an older connection never acks on a newer one (the broker may reuse the packet id).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use pavillion_io::bridge::config::{MqttSection, MqttVersion, Qos, Transport};
use pavillion_io::bridge::topic;
use rumqttc::v5 as r5;

/// The capacity of the request channel to rumqttc.
const REQUEST_CAPACITY: usize = 1024;
/// Publishes that wait for room in that channel, at most; beyond, a publish is refused at
/// once ([`MqttError::Busy`]) rather than block the caller.
const MAX_OVERFLOW: usize = 16_384;
/// The most QoS 1/2 publishes in flight to the broker at once.
const MAX_INFLIGHT: u16 = 100;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The last will: published by the broker, retained, if the bridge vanishes without a
/// DISCONNECT.
#[derive(Debug, Clone)]
pub struct Will {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// Retained.
    pub retain: bool,
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The topic (already rendered and escaped).
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// The QoS.
    pub qos: Qos,
    /// Retained.
    pub retain: bool,
    /// MQTT 5 user properties (ignored by MQTT 3.1.1).
    pub user_properties: Vec<(String, String)>,
    /// MQTT 5 response topic (request/response).
    pub response_topic: Option<String>,
    /// MQTT 5 correlation data.
    pub correlation_data: Option<Bytes>,
}

impl Publish {
    /// A publish without properties.
    pub fn new(
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: Qos,
        retain: bool,
    ) -> Self {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            user_properties: Vec::new(),
            response_topic: None,
            correlation_data: None,
        }
    }
}

/// How a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// QoS 1/2: the broker acknowledged it. QoS 0: it was written to the connection.
    Acked,
    /// The broker answered with a failure reason code (MQTT 5).
    Refused(u8),
    /// The connection ended before the broker's ack; the publish may or may not have arrived.
    Lost,
}

/// Why a publish was not even queued. The completion is not called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttError {
    /// Not connected to the broker now.
    NotConnected,
    /// Too many publishes queued.
    Busy,
    /// MQTT 3.1.1 cannot carry what was asked (user properties, request/response).
    NeedsV5,
    /// The connection was closed.
    Closed,
}

impl std::fmt::Display for MqttError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MqttError::NotConnected => "not connected to the broker",
            MqttError::Busy => "too many publishes queued",
            MqttError::NeedsV5 => "needs MQTT 5",
            MqttError::Closed => "the MQTT connection is closed",
        })
    }
}

impl std::error::Error for MqttError {}

/// A received publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was delivered with.
    pub qos: Qos,
    /// Retained (a broker's stored value, not a live publish).
    pub retain: bool,
    /// A redelivery of a publish not acknowledged before.
    pub dup: bool,
    /// MQTT 5 user properties.
    pub user_properties: Vec<(String, String)>,
    /// MQTT 5 response topic.
    pub response_topic: Option<String>,
    /// MQTT 5 correlation data.
    pub correlation_data: Option<Bytes>,
}

/// The acknowledgement of a received publish, shared by the handlers it was given to; see
/// the module doc.
pub struct AckToken {
    shared: Option<Arc<PendingAck>>,
}

struct PendingAck {
    remaining: AtomicUsize,
    raw: RawPublish,
    generation: u64,
    link: Arc<Shared>,
}

impl AckToken {
    /// Acknowledges, as far as this handler is concerned.
    pub fn ack(mut self) {
        let Some(p) = self.shared.take() else { return };
        if p.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let state = p.link.lock();
        if state.generation != p.generation {
            return;
        }
        let sent = match (&state.client, &p.raw) {
            (Some(Backend::V5(c)), RawPublish::V5(r)) => c.try_ack(r).is_ok(),
            (Some(Backend::V3(c)), RawPublish::V3(r)) => c.try_ack(r).is_ok(),
            _ => false,
        };
        drop(state);
        if sent {
            p.link.stats.acks_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            p.link.stats.acks_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counters of the connection.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Successful connections (the first and every reconnection).
    pub connects: AtomicU64,
    /// Publishes the broker acknowledged (or, QoS 0, written).
    pub published: AtomicU64,
    /// Publishes reported lost by a disconnect.
    pub lost: AtomicU64,
    /// Publishes received.
    pub received: AtomicU64,
    /// Received publishes acknowledged to the broker.
    pub acks_sent: AtomicU64,
    /// Acknowledgements that could not be sent (queue full or connection gone).
    pub acks_failed: AtomicU64,
    /// Received publishes no subscription matched (acknowledged at once).
    pub unrouted: AtomicU64,
}

type Done = Box<dyn FnOnce(PublishOutcome) + Send>;
type Handler = Arc<dyn Fn(&Message, AckToken) + Send + Sync>;
type OnConnect = Box<dyn FnMut(&Mqtt) + Send>;

enum Backend {
    V5(r5::Client),
    V3(rumqttc::Client),
}

#[derive(Clone)]
enum RawPublish {
    V5(r5::mqttbytes::v5::Publish),
    V3(rumqttc::Publish),
}

struct Subscription {
    filter: String,
    qos: Qos,
    handler: Handler,
}

#[derive(Default)]
struct LinkState {
    client: Option<Backend>,
    generation: u64,
    connected: bool,
    /// Queued publishes waiting for their packet id, in queue order (`None`: QoS 0).
    queued: VecDeque<(Qos, Option<Done>)>,
    /// Publishes waiting for room in rumqttc's channel, in order (at most [`MAX_OVERFLOW`]).
    overflow: VecDeque<(Publish, Option<Done>)>,
    /// Written QoS 1/2 publishes waiting for the broker's ack, by packet id.
    inflight: HashMap<u16, Done>,
    subscriptions: Vec<Subscription>,
}

struct Shared {
    state: Mutex<LinkState>,
    closed: AtomicBool,
    stats: MqttStats,
    version: MqttVersion,
    on_connect: Mutex<Vec<OnConnect>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Everything needed to connect.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// The `[mqtt]` section.
    pub section: MqttSection,
    /// The bridge's last will, if any.
    pub will: Option<Will>,
}

/// The broker connection; cheap to clone (all clones share the one connection).
#[derive(Clone)]
pub struct Mqtt {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Mqtt {
    /// Starts the connection thread; it connects, and reconnects with backoff, until
    /// [`Mqtt::close`]. Fails only on a configuration it cannot use (a TLS file).
    pub fn start(settings: MqttSettings) -> std::io::Result<Mqtt> {
        let tls = tls_config(&settings.section)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(LinkState::default()),
            closed: AtomicBool::new(false),
            stats: MqttStats::default(),
            version: settings.section.protocol,
            on_connect: Mutex::new(Vec::new()),
        });
        let mqtt = Mqtt {
            shared: shared.clone(),
            thread: Arc::new(Mutex::new(None)),
        };
        let runner = mqtt.clone();
        let handle = std::thread::Builder::new()
            .name("pav-bridge-mqtt".into())
            .spawn(move || runner.run(&settings, tls.as_ref()))?;
        *mqtt
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
        Ok(mqtt)
    }

    /// The protocol version in use.
    pub fn version(&self) -> MqttVersion {
        self.shared.version
    }

    /// The counters.
    pub fn stats(&self) -> &MqttStats {
        &self.shared.stats
    }

    /// Whether the broker accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Calls `callback` (on the connection thread) after every successful connection, after the
    /// subscriptions were renewed: presence and retained values are published again from it.
    pub fn on_connect(&self, callback: impl FnMut(&Mqtt) + Send + 'static) {
        self.shared
            .on_connect
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(callback));
    }

    /// Subscribes to `filter` (now, and again after every reconnection). `handler` runs on
    /// the connection thread, so it must not block: hand the message on and ack later.
    pub fn subscribe(
        &self,
        filter: &str,
        qos: Qos,
        handler: impl Fn(&Message, AckToken) + Send + Sync + 'static,
    ) {
        let mut state = self.shared.lock();
        state.subscriptions.push(Subscription {
            filter: filter.to_owned(),
            qos,
            handler: Arc::new(handler),
        });
        if state.connected {
            if let Some(c) = &state.client {
                let _ = subscribe_one(c, filter, qos);
            }
        }
    }

    /// Queues `publish`; `done` is called once with the outcome (on the connection thread).
    /// On an error `done` is not called.
    pub fn publish(
        &self,
        publish: Publish,
        done: impl FnOnce(PublishOutcome) + Send + 'static,
    ) -> Result<(), MqttError> {
        self.publish_boxed(publish, Some(Box::new(done)))
    }

    /// Queues `publish` without waiting for its outcome.
    pub fn publish_and_forget(&self, publish: Publish) -> Result<(), MqttError> {
        self.publish_boxed(publish, None)
    }

    fn publish_boxed(&self, p: Publish, done: Option<Done>) -> Result<(), MqttError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(MqttError::Closed);
        }
        let v5_only = !p.user_properties.is_empty()
            || p.response_topic.is_some()
            || p.correlation_data.is_some();
        if v5_only && self.shared.version == MqttVersion::V311 {
            return Err(MqttError::NeedsV5);
        }
        let mut state = self.shared.lock();
        if !state.connected || state.client.is_none() {
            return Err(MqttError::NotConnected);
        }
        if state.overflow.is_empty() && try_send(&state, &p) {
            state.queued.push_back((p.qos, done));
            return Ok(());
        }
        // rumqttc's channel is full: wait here, in order, until its loop takes more.
        if state.overflow.len() >= MAX_OVERFLOW {
            return Err(MqttError::Busy);
        }
        state.overflow.push_back((p, done));
        Ok(())
    }

    /// Moves what waits in the overflow into rumqttc's channel, as far as it has room.
    fn drain_overflow(&self) {
        let mut state = self.shared.lock();
        while let Some((p, _)) = state.overflow.front() {
            if !try_send(&state, p) {
                break;
            }
            if let Some((p, done)) = state.overflow.pop_front() {
                state.queued.push_back((p.qos, done));
            }
        }
    }

    /// Disconnects (the broker does not publish the will) and stops the thread.
    pub fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let state = self.shared.lock();
            match &state.client {
                Some(Backend::V5(c)) => {
                    let _ = c.try_disconnect();
                }
                Some(Backend::V3(c)) => {
                    let _ = c.try_disconnect();
                }
                None => {}
            }
        }
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    fn run(&self, settings: &MqttSettings, tls: Option<&rumqttc::TlsConfiguration>) {
        let mut backoff = BACKOFF_MIN;
        while !self.shared.closed.load(Ordering::Acquire) {
            let connected = match settings.section.protocol {
                MqttVersion::V5 => self.run_v5(settings, tls),
                MqttVersion::V311 => self.run_v3(settings, tls),
            };
            self.disconnected();
            if connected {
                backoff = BACKOFF_MIN;
            }
            let mut slept = Duration::ZERO;
            while slept < backoff && !self.shared.closed.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                slept += Duration::from_millis(20);
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Forgets the connection; every publish not yet acknowledged is reported lost.
    fn disconnected(&self) {
        let (queued, inflight) = {
            let mut state = self.shared.lock();
            state.client = None;
            state.connected = false;
            let mut queued: Vec<Option<Done>> = std::mem::take(&mut state.queued)
                .into_iter()
                .map(|(_, d)| d)
                .collect();
            queued.extend(
                std::mem::take(&mut state.overflow)
                    .into_iter()
                    .map(|(_, d)| d),
            );
            (queued, std::mem::take(&mut state.inflight))
        };
        for done in queued.into_iter().flatten().chain(inflight.into_values()) {
            self.shared.stats.lost.fetch_add(1, Ordering::Relaxed);
            done(PublishOutcome::Lost);
        }
    }

    fn connected(&self) {
        {
            let mut state = self.shared.lock();
            state.connected = true;
            let state = &*state;
            if let Some(c) = &state.client {
                for s in &state.subscriptions {
                    let _ = subscribe_one(c, &s.filter, s.qos);
                }
            }
        }
        self.shared.stats.connects.fetch_add(1, Ordering::Relaxed);
        let mut hooks = std::mem::take(
            &mut *self
                .shared
                .on_connect
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for h in &mut hooks {
            h(self);
        }
        let mut slot = self
            .shared
            .on_connect
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hooks.append(&mut slot);
        *slot = hooks;
    }

    fn written(&self, pkid: u16) {
        let mut state = self.shared.lock();
        let Some((qos, done)) = state.queued.pop_front() else {
            return;
        };
        if qos == Qos::AtMostOnce || pkid == 0 {
            drop(state);
            self.shared.stats.published.fetch_add(1, Ordering::Relaxed);
            if let Some(d) = done {
                d(PublishOutcome::Acked);
            }
        } else if let Some(d) = done {
            state.inflight.insert(pkid, d);
        } else {
            state.inflight.insert(pkid, Box::new(|_| {}));
        }
    }

    fn acked(&self, pkid: u16, reason: Option<u8>) {
        let done = self.shared.lock().inflight.remove(&pkid);
        if let Some(d) = done {
            match reason {
                Some(code) if code >= 0x80 => d(PublishOutcome::Refused(code)),
                _ => {
                    self.shared.stats.published.fetch_add(1, Ordering::Relaxed);
                    d(PublishOutcome::Acked);
                }
            }
        }
    }

    fn received(&self, message: Message, raw: RawPublish) {
        self.shared.stats.received.fetch_add(1, Ordering::Relaxed);
        let (handlers, generation) = {
            let state = self.shared.lock();
            let h: Vec<Handler> = state
                .subscriptions
                .iter()
                .filter(|s| topic::matches(&s.filter, &message.topic).is_some())
                .map(|s| s.handler.clone())
                .collect();
            (h, state.generation)
        };
        let pending = Arc::new(PendingAck {
            remaining: AtomicUsize::new(handlers.len().max(1)),
            raw,
            generation,
            link: self.shared.clone(),
        });
        let needs_ack = message.qos != Qos::AtMostOnce;
        if handlers.is_empty() {
            self.shared.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            if needs_ack {
                AckToken {
                    shared: Some(pending),
                }
                .ack();
            }
            return;
        }
        for h in handlers {
            let token = AckToken {
                shared: needs_ack.then(|| pending.clone()),
            };
            h(&message, token);
        }
    }

    fn install(&self, client: Backend) {
        let mut state = self.shared.lock();
        state.generation += 1;
        state.client = Some(client);
    }

    /// One MQTT 5 connection, until it fails; true if the broker accepted it.
    fn run_v5(&self, settings: &MqttSettings, tls: Option<&rumqttc::TlsConfiguration>) -> bool {
        use r5::mqttbytes::v5::Packet;
        let s = &settings.section;
        let mut o = r5::MqttOptions::new(&s.client_id, &s.host, s.port);
        o.set_keep_alive(s.keep_alive.max(Duration::from_secs(5)))
            .set_clean_start(false)
            .set_session_expiry_interval(Some(
                u32::try_from(s.session_expiry.as_secs()).unwrap_or(u32::MAX),
            ))
            .set_manual_acks(true)
            .set_outgoing_inflight_upper_limit(MAX_INFLIGHT)
            .set_connection_timeout(5);
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            o.set_credentials(u, p);
        } else if let Some(u) = &s.username {
            o.set_credentials(u, "");
        }
        if let Some(t) = tls {
            o.set_transport(rumqttc::Transport::tls_with_config(t.clone()));
        }
        if let Some(w) = &settings.will {
            o.set_last_will(r5::mqttbytes::v5::LastWill::new(
                &w.topic,
                w.payload.to_vec(),
                r5::mqttbytes::QoS::AtLeastOnce,
                w.retain,
                None,
            ));
        }
        let (client, mut connection) = r5::Client::new(o, REQUEST_CAPACITY);
        self.install(Backend::V5(client));
        let mut accepted = false;
        for event in connection.iter() {
            if self.shared.closed.load(Ordering::Acquire) {
                break;
            }
            // Each event may have freed room in rumqttc's channel.
            self.drain_overflow();
            match event {
                Ok(r5::Event::Incoming(Packet::ConnAck(_))) => {
                    accepted = true;
                    self.connected();
                }
                Ok(r5::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => self.written(pkid),
                Ok(r5::Event::Incoming(Packet::PubAck(a))) => {
                    use r5::mqttbytes::v5::PubAckReason as R;
                    let code = match a.reason {
                        R::Success | R::NoMatchingSubscribers => None,
                        _ => Some(0x80),
                    };
                    self.acked(a.pkid, code);
                }
                Ok(r5::Event::Incoming(Packet::PubComp(c))) => self.acked(c.pkid, None),
                Ok(r5::Event::Incoming(Packet::Publish(p))) => {
                    let props = p.properties.clone().unwrap_or_default();
                    let message = Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.clone(),
                        qos: qos_from5(p.qos),
                        retain: p.retain,
                        dup: p.dup,
                        user_properties: props.user_properties,
                        response_topic: props.response_topic,
                        correlation_data: props.correlation_data,
                    };
                    self.received(message, RawPublish::V5(p));
                }
                Ok(r5::Event::Incoming(Packet::Disconnect(_))) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::info!("MQTT connection ended: {e}");
                    break;
                }
            }
        }
        accepted
    }

    /// One MQTT 3.1.1 connection, until it fails; true if the broker accepted it.
    fn run_v3(&self, settings: &MqttSettings, tls: Option<&rumqttc::TlsConfiguration>) -> bool {
        use rumqttc::Packet;
        let s = &settings.section;
        let mut o = rumqttc::MqttOptions::new(&s.client_id, &s.host, s.port);
        o.set_keep_alive(s.keep_alive.max(Duration::from_secs(5)))
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(MAX_INFLIGHT);
        if let Some(u) = &s.username {
            o.set_credentials(u, s.password.as_deref().unwrap_or(""));
        }
        if let Some(t) = tls {
            o.set_transport(rumqttc::Transport::tls_with_config(t.clone()));
        }
        if let Some(w) = &settings.will {
            o.set_last_will(rumqttc::LastWill::new(
                &w.topic,
                w.payload.to_vec(),
                rumqttc::QoS::AtLeastOnce,
                w.retain,
            ));
        }
        let (client, mut connection) = rumqttc::Client::new(o, REQUEST_CAPACITY);
        self.install(Backend::V3(client));
        let mut accepted = false;
        for event in connection.iter() {
            if self.shared.closed.load(Ordering::Acquire) {
                break;
            }
            // Each event may have freed room in rumqttc's channel.
            self.drain_overflow();
            match event {
                Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                    accepted = true;
                    self.connected();
                }
                Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                    self.written(pkid)
                }
                Ok(rumqttc::Event::Incoming(Packet::PubAck(a))) => self.acked(a.pkid, None),
                Ok(rumqttc::Event::Incoming(Packet::PubComp(c))) => self.acked(c.pkid, None),
                Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                    let message = Message {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                        qos: qos_from3(p.qos),
                        retain: p.retain,
                        dup: p.dup,
                        user_properties: Vec::new(),
                        response_topic: None,
                        correlation_data: None,
                    };
                    self.received(message, RawPublish::V3(p));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::info!("MQTT connection ended: {e}");
                    break;
                }
            }
        }
        accepted
    }
}

/// Queues `p` in rumqttc's channel; false when it is full (or there is no connection).
fn try_send(state: &LinkState, p: &Publish) -> bool {
    let p = p.clone();
    match &state.client {
        None => false,
        Some(Backend::V5(c)) => {
            let props = r5::mqttbytes::v5::PublishProperties {
                user_properties: p.user_properties,
                response_topic: p.response_topic,
                correlation_data: p.correlation_data,
                ..Default::default()
            };
            c.try_publish_with_properties(p.topic, qos5(p.qos), p.retain, p.payload, props)
                .is_ok()
        }
        Some(Backend::V3(c)) => c
            .try_publish(p.topic, qos3(p.qos), p.retain, p.payload)
            .is_ok(),
    }
}

fn subscribe_one(c: &Backend, filter: &str, qos: Qos) -> Result<(), ()> {
    match c {
        Backend::V5(c) => c.try_subscribe(filter, qos5(qos)).map_err(|_| ()),
        Backend::V3(c) => c.try_subscribe(filter, qos3(qos)).map_err(|_| ()),
    }
}

fn tls_config(s: &MqttSection) -> std::io::Result<Option<rumqttc::TlsConfiguration>> {
    if s.transport != Transport::Tls {
        return Ok(None);
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    };
    let client_auth = match &s.client_cert {
        Some((c, k)) => Some((read(c)?, read(k)?)),
        None => None,
    };
    Ok(Some(match &s.ca_file {
        Some(ca) => rumqttc::TlsConfiguration::Simple {
            ca: read(ca)?,
            alpn: None,
            client_auth,
        },
        None => rumqttc::TlsConfiguration::default(),
    }))
}

fn qos5(q: Qos) -> r5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => r5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => r5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => r5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn qos3(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos_from5(q: r5::mqttbytes::QoS) -> Qos {
    match q {
        r5::mqttbytes::QoS::AtMostOnce => Qos::AtMostOnce,
        r5::mqttbytes::QoS::AtLeastOnce => Qos::AtLeastOnce,
        r5::mqttbytes::QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

fn qos_from3(q: rumqttc::QoS) -> Qos {
    match q {
        rumqttc::QoS::AtMostOnce => Qos::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => Qos::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}
