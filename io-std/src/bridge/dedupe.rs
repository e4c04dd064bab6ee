//! Several bridges for one site (`[dedupe] mode = "standby"`; `docs/BRIDGE.md`, "Several
//! bridges"): the leader publishes each device message at once; a standby holds it (its
//! hand-off uncompleted) until the leader's publish with the same `pav-id` comes back on its
//! subscription, and publishes it itself if `standby_wait_ms` passes first or the leader
//! changes. The election ([`Election`]) and the table ([`Standby`]) are pure, in
//! [`pavillion_io::bridge`]; this drives them from the broker's traffic and a timer thread.
//!
//! The to-MQTT path calls [`Dedupe::publish`] in place of [`Mqtt::publish`] for a message
//! whose hand-off waits: the completion it passes runs with [`PublishOutcome::Acked`] when
//! the broker acknowledged our publish or when a standby saw the leader's, so that path
//! completes the hand-off the same way in both cases.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pavillion_io::bridge::config::{BridgeConfig, DedupeMode, MqttVersion, Qos};
use pavillion_io::bridge::dedupe::{Hold, MessageFacts, PavId, Standby, PAV_ID};
use pavillion_io::bridge::election::{BridgeId, Election, Presence, Role};
use pavillion_io::bridge::topic::{self, Var};
use pavillion_proto::{Counter, PeerId};

use super::mqtt::{Message, Mqtt, MqttError, Publish, PublishOutcome};
use crate::ReceivedMessage;
use pavillion_proto::features::handoff::MessageKey;

/// The most messages a standby holds at once; more are published at once.
pub const MAX_HELD: usize = 4096;
/// How long a standby remembers a publish whose message has not reached it yet.
pub const REMEMBER: Duration = Duration::from_secs(10);
/// The most other bridges one site may have online.
pub const MAX_BRIDGES: usize = 64;
/// How often the timer thread looks at deadlines and at the broker connection.
const TICK: Duration = Duration::from_millis(10);

type Done = Box<dyn FnOnce(PublishOutcome) + Send>;

struct Pending {
    publish: Publish,
    done: Done,
}

/// Counters of the de-duplication.
#[derive(Debug, Default)]
pub struct DedupeStats {
    /// Messages published at once (leader, or de-duplication off).
    pub published_leading: AtomicU64,
    /// Messages a standby held.
    pub held: AtomicU64,
    /// Held messages completed without a publish: the leader's was seen.
    pub completed_by_leader: AtomicU64,
    /// Held messages a standby published itself (wait over, leader gone, table full).
    pub published_standing_in: AtomicU64,
    /// Leadership changes seen.
    pub role_changes: AtomicU64,
}

struct State {
    election: Election,
    standby: Standby<Pending>,
    /// Whether the election counts our connection yet: only after `settle`, so that the other
    /// bridges' retained states have arrived before we may think we lead.
    connected_since: Option<Instant>,
}

/// The site's de-duplication, as seen by this bridge.
pub struct Dedupe {
    mqtt: Mqtt,
    site: String,
    mode: DedupeMode,
    state: Mutex<State>,
    settle: Duration,
    stats: DedupeStats,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dedupe {
    /// Starts de-duplication per `config.dedupe`: with mode `standby`, watches the bridges'
    /// presence topics and the topics of every `[[to_mqtt]]` mapping.
    pub fn start(mqtt: &Mqtt, config: &BridgeConfig) -> Arc<Dedupe> {
        let wait = config.dedupe.standby_wait;
        let dedupe = Arc::new(Dedupe {
            mqtt: mqtt.clone(),
            site: config.site.clone(),
            mode: config.dedupe.mode,
            state: Mutex::new(State {
                election: Election::new(BridgeId(config.bridge_id.clone()), MAX_BRIDGES),
                standby: Standby::new(wait, REMEMBER, MAX_HELD),
                connected_since: None,
            }),
            settle: (wait / 2).min(Duration::from_millis(500)),
            stats: DedupeStats::default(),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        if dedupe.mode != DedupeMode::Standby {
            return dedupe;
        }
        let presence = presence_filter(config);
        {
            let d = dedupe.clone();
            let filter = presence.clone();
            mqtt.subscribe(&presence, Qos::AtLeastOnce, move |m: &Message, token| {
                token.ack();
                if let Some(id) = topic::matches(&filter, &m.topic).and_then(topic::unescape) {
                    d.on_presence(BridgeId(id), Presence::of_payload(&m.payload));
                }
            });
        }
        for filter in watch_filters(config) {
            let d = dedupe.clone();
            mqtt.subscribe(&filter, Qos::AtMostOnce, move |m: &Message, token| {
                token.ack();
                let id = m
                    .user_properties
                    .iter()
                    .find(|(k, _)| k == PAV_ID)
                    .and_then(|(_, v)| v.parse::<PavId>().ok());
                if let Some(id) = id {
                    d.on_seen(id);
                }
            });
        }
        let d = dedupe.clone();
        let thread = std::thread::Builder::new()
            .name("pav-bridge-dedupe".into())
            .spawn(move || {
                while !d.stop.load(Ordering::Acquire) {
                    std::thread::sleep(TICK);
                    d.tick(Instant::now());
                }
            })
            .ok();
        *dedupe.thread.lock().unwrap_or_else(PoisonError::into_inner) = thread;
        dedupe
    }

    /// The id of a message this bridge's server received: the same at every bridge a
    /// multicast message reaches.
    pub fn pav_id(
        &self,
        sender: &PeerId,
        counter: Counter,
        target: &str,
        name: &str,
        payload: &[u8],
    ) -> PavId {
        PavId::of(&MessageFacts {
            site: &self.site,
            sender,
            counter,
            target,
            name,
            payload,
        })
    }

    /// The id of a held device message, from its hand-off's key (`Handoff::key`): what the
    /// to-MQTT path passes to [`Dedupe::publish`].
    pub fn pav_id_of(&self, key: &MessageKey, m: &ReceivedMessage) -> PavId {
        self.pav_id(&key.peer, key.counter, m.target(), m.name(), m.payload())
    }

    /// Publishes (leader, or de-duplication off) or holds (standby) a device message whose
    /// hand-off waits. `publish` gets the [`PAV_ID`] property (MQTT 5 only). `done` runs once:
    /// [`PublishOutcome::Acked`] when the broker acknowledged our publish or the leader's
    /// publish was seen; otherwise as for [`Mqtt::publish`].
    ///
    /// # Errors
    /// As [`Mqtt::publish`] (then `done` is not called).
    pub fn publish(
        &self,
        id: PavId,
        mut publish: Publish,
        done: impl FnOnce(PublishOutcome) + Send + 'static,
    ) -> Result<(), MqttError> {
        if self.mqtt.version() == MqttVersion::V5 {
            publish
                .user_properties
                .push((PAV_ID.to_owned(), id.to_string()));
        }
        let done: Done = Box::new(done);
        if self.mode != DedupeMode::Standby {
            self.stats.published_leading.fetch_add(1, Ordering::Relaxed);
            return self.mqtt.publish(publish, done);
        }
        let mut state = self.lock();
        if state.election.is_leader() || !self.mqtt.is_connected() {
            drop(state);
            self.stats.published_leading.fetch_add(1, Ordering::Relaxed);
            return self.mqtt.publish(publish, done);
        }
        // A standby, or connected but not settled yet: hold.
        match state
            .standby
            .hold(Instant::now(), id, Pending { publish, done })
        {
            Hold::Held => {
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Hold::Published(p) => {
                drop(state);
                self.stats
                    .completed_by_leader
                    .fetch_add(1, Ordering::Relaxed);
                (p.done)(PublishOutcome::Acked);
                Ok(())
            }
            Hold::PublishNow(p) => {
                drop(state);
                self.stats
                    .published_standing_in
                    .fetch_add(1, Ordering::Relaxed);
                self.mqtt.publish(p.publish, p.done)
            }
        }
    }

    /// This bridge's role now.
    pub fn role(&self) -> Role {
        self.lock().election.role()
    }

    /// The counters.
    pub fn stats(&self) -> &DedupeStats {
        &self.stats
    }

    /// Stops the timer thread and publishes what is held (nothing held is dropped).
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
        let held = self.lock().standby.release_all();
        self.stand_in(held);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_presence(&self, bridge: BridgeId, state: Presence) {
        let released = {
            let mut s = self.lock();
            let before = s.election.role();
            let changed = s.election.on_state(bridge, state);
            self.released_on_change(&mut s, before, changed)
        };
        self.stand_in(released);
    }

    fn on_seen(&self, id: PavId) {
        let held = self.lock().standby.seen(Instant::now(), id);
        if let Some(p) = held {
            self.stats
                .completed_by_leader
                .fetch_add(1, Ordering::Relaxed);
            (p.done)(PublishOutcome::Acked);
        }
    }

    fn tick(&self, now: Instant) {
        let connected = self.mqtt.is_connected();
        let released = {
            let mut s = self.lock();
            let before = s.election.role();
            let changed = match (connected, s.connected_since) {
                (true, None) => {
                    s.connected_since = Some(now);
                    None
                }
                (true, Some(since)) if now.duration_since(since) >= self.settle => {
                    s.election.on_connected()
                }
                (false, Some(_)) => {
                    s.connected_since = None;
                    s.election.on_lost()
                }
                _ => None,
            };
            let mut out = self.released_on_change(&mut s, before, changed);
            // Nothing can be published while the broker is away: held messages keep waiting
            // (the device's own deadline still runs, as on any broker outage).
            if connected {
                out.extend(s.standby.expire(now));
            }
            out
        };
        self.stand_in(released);
    }

    /// On a change of leader (or of our own role to leader): every held message, to publish.
    fn released_on_change(
        &self,
        s: &mut State,
        before: Role,
        changed: Option<Role>,
    ) -> Vec<(PavId, Pending)> {
        let Some(after) = changed else {
            return Vec::new();
        };
        self.stats.role_changes.fetch_add(1, Ordering::Relaxed);
        tracing::info!("bridge role: {before:?} -> {after:?}");
        match after {
            Role::Disconnected => Vec::new(),
            Role::Leader | Role::Standby { .. } => {
                if matches!(
                    (&before, &after),
                    (Role::Disconnected, Role::Standby { .. })
                ) {
                    Vec::new()
                } else {
                    s.standby.release_all()
                }
            }
        }
    }

    fn stand_in(&self, released: Vec<(PavId, Pending)>) {
        for (_, p) in released {
            self.stats
                .published_standing_in
                .fetch_add(1, Ordering::Relaxed);
            let Pending { publish, done } = p;
            // A refused publish (not connected, queue full) reports the loss itself: the
            // hand-off is not completed, so the device sends again.
            let done = Arc::new(Mutex::new(Some(done)));
            let d2 = done.clone();
            let queued = self.mqtt.publish(publish, move |o| {
                if let Some(d) = d2.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    d(o);
                }
            });
            if queued.is_err() {
                if let Some(d) = done.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    d(PublishOutcome::Lost);
                }
            }
        }
    }
}

/// The filter of the bridges' presence topics: `[presence] bridge` with `{bridge}` = `+`.
fn presence_filter(config: &BridgeConfig) -> String {
    let template = config.presence.as_ref().and_then(|p| p.bridge.as_ref());
    let rendered = template.and_then(|t| {
        t.render_raw(|v| match v {
            Var::Prefix => Some(config.mqtt.prefix.as_str()),
            Var::Site => Some(config.site.as_str()),
            Var::Bridge => Some("+"),
            _ => None,
        })
        .ok()
    });
    rendered.unwrap_or_else(|| {
        format!(
            "{}/{}/bridges/+",
            topic::escape(&config.mqtt.prefix, true),
            topic::escape(&config.site, false)
        )
    })
}

/// The filters a standby watches for the leader's publishes: for each `[[to_mqtt]]` topic,
/// its fixed levels up to the first placeholder that a device's names fill, then `#` (a
/// name may hold `/`, so `+` would miss it).
fn watch_filters(config: &BridgeConfig) -> Vec<String> {
    const MARK: &str = "\u{1}";
    let mut out: Vec<String> = Vec::new();
    for m in &config.to_mqtt {
        let rendered = m.topic.render_raw(|v| match v {
            Var::Prefix => Some(config.mqtt.prefix.as_str()),
            Var::Site => Some(config.site.as_str()),
            Var::Bridge => Some(config.bridge_id.as_str()),
            _ => Some(MARK),
        });
        let Ok(rendered) = rendered else { continue };
        let fixed = match rendered.find(MARK) {
            Some(at) => rendered[..at]
                .rfind('/')
                .map_or("", |slash| &rendered[..=slash]),
            None => rendered.as_str(),
        };
        let filter = if rendered.contains(MARK) {
            format!("{fixed}#")
        } else {
            rendered.clone()
        };
        if !out.contains(&filter) {
            out.push(filter);
        }
    }
    out
}
