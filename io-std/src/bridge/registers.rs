//! Retained register values (`[[upstream]] registers`; `docs/BRIDGE.md`, "Registers"): each
//! configured register of an upstream server is observed, and every value is published
//! retained (QoS 1) to `{prefix}/{site}/{server}/registers/{n}`, so that a dashboard that
//! subscribes later gets the current value from the broker at once. The payload and its
//! `pav-type` property are [`pavillion_io::bridge::registers`]'s.
//!
//! The last value of each register is kept and published again after every reconnection to
//! the broker (a broker that lost its store, or a value that changed while the broker was
//! away) and after every new session with the server (read again: a change while the
//! server was unreachable is not notified).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use pavillion_io::bridge::config::{BridgeConfig, Qos};
use pavillion_io::bridge::registers::{payload_of_value, PAV_TYPE};
use pavillion_io::bridge::topic;
use pavillion_proto::wire::{RegisterId, RegisterValue};

use super::mqtt::{Mqtt, Publish};
use crate::{Client, ConnectionEvent};

/// How long one observation asks for; it is renewed before it ends. Below the protocol's
/// limit of 24 h (`MAX_OBSERVE_DURATION`).
const OBSERVE_FOR: Duration = Duration::from_secs(12 * 3600);
/// The shortest time between two notifications of one register: a register that changes
/// faster is published at most this often (its last value always).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long to wait before asking a server that did not answer again.
const RETRY: Duration = Duration::from_millis(500);

/// Counters of the register publisher.
#[derive(Debug, Default)]
pub struct RegisterStats {
    /// Values published (queued to the broker).
    pub published: AtomicU64,
    /// Values not published because the broker connection was down (published again on
    /// reconnect).
    pub deferred: AtomicU64,
    /// Observations that failed (server unreachable, unknown register), retried.
    pub observe_failures: AtomicU64,
}

struct Shared {
    mqtt: Mqtt,
    /// Each register's topic and last value.
    latest: Mutex<BTreeMap<u16, (String, Option<RegisterValue>)>>,
    stats: Arc<RegisterStats>,
}

impl Shared {
    fn update(&self, register: u16, value: RegisterValue) {
        let topic = {
            let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(entry) = latest.get_mut(&register) else {
                return;
            };
            entry.1 = Some(value.clone());
            entry.0.clone()
        };
        self.publish(topic, &value);
    }

    fn publish(&self, topic: String, value: &RegisterValue) {
        let mut p = Publish::new(topic, payload_of_value(value), Qos::AtLeastOnce, true);
        p.user_properties = vec![(PAV_TYPE.to_owned(), value.kind().name().to_owned())];
        if self.mqtt.version() != pavillion_io::bridge::config::MqttVersion::V5 {
            p.user_properties.clear();
        }
        match self.mqtt.publish_and_forget(p) {
            Ok(()) => self.stats.published.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.deferred.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn republish_all(&self) {
        let all: Vec<(String, RegisterValue)> = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|(t, v)| v.clone().map(|v| (t.clone(), v)))
            .collect();
        for (t, v) in all {
            self.publish(t, &v);
        }
    }
}

/// The topic of register `n` of upstream `server`: `{prefix}/{site}/{server}/registers/{n}`.
pub fn register_topic(config: &BridgeConfig, server: &str, n: u16) -> String {
    format!(
        "{}/{}/{}/registers/{n}",
        topic::escape(&config.mqtt.prefix, true),
        topic::escape(&config.site, false),
        topic::escape(server, false)
    )
}

/// Publishes the registers of one upstream server; stops on [`RegisterPublisher::close`].
pub struct RegisterPublisher {
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RegisterPublisher {
    /// Observes `registers` of upstream `server` through `client` and publishes their values.
    pub fn start(
        mqtt: &Mqtt,
        config: &BridgeConfig,
        server: &str,
        client: Arc<Client>,
        registers: &[u16],
        stats: Arc<RegisterStats>,
    ) -> RegisterPublisher {
        let latest = registers
            .iter()
            .map(|&n| (n, (register_topic(config, server, n), None)))
            .collect();
        let shared = Arc::new(Shared {
            mqtt: mqtt.clone(),
            latest: Mutex::new(latest),
            stats,
        });
        {
            let shared = shared.clone();
            mqtt.on_connect(move |_| shared.republish_all());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<()>();
        {
            // A new session with the server: read every register again (the thread does; a
            // connection callback must not wait).
            let wake = Mutex::new(wake.clone());
            client.on_connection(move |e| {
                if matches!(
                    e,
                    ConnectionEvent::Connected { .. } | ConnectionEvent::PeerUp { .. }
                ) {
                    let _ = wake.lock().unwrap_or_else(PoisonError::into_inner).send(());
                }
            });
        }
        let registers = registers.to_vec();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("pav-bridge-registers".into())
                .spawn(move || run(&client, &shared, &registers, &stop, &woken))
                .ok()
        };
        RegisterPublisher {
            stop,
            wake,
            thread: Mutex::new(thread),
        }
    }

    /// Stops observing (the observations end with the client).
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(());
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
    }
}

/// Keeps an observation of every register in place, renewing each before it ends, and
/// reads them all again when the server has a new session.
fn run(
    client: &Client,
    shared: &Arc<Shared>,
    registers: &[u16],
    stop: &AtomicBool,
    woken: &mpsc::Receiver<()>,
) {
    let mut observed: BTreeMap<u16, std::time::Instant> = BTreeMap::new();
    while !stop.load(Ordering::Acquire) {
        let now = std::time::Instant::now();
        for &n in registers {
            if observed.get(&n).is_some_and(|&until| until > now) {
                continue;
            }
            let s = shared.clone();
            let result = client.observe(RegisterId(n), OBSERVE_FOR, MIN_INTERVAL, move |c| {
                s.update(n, c.value.clone());
            });
            match result {
                Ok(value) => {
                    // Renewed an hour before it ends.
                    observed.insert(n, now + OBSERVE_FOR - Duration::from_secs(3600));
                    shared.update(n, value);
                }
                Err(e) => {
                    shared
                        .stats
                        .observe_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("observing register {n}: {e}");
                }
            }
        }
        let all_observed = registers.iter().all(|n| observed.contains_key(n));
        let wait = if all_observed {
            Duration::from_secs(60)
        } else {
            RETRY
        };
        match woken.recv_timeout(wait) {
            Ok(()) => {
                // A new session: the values may have changed unseen.
                for &n in registers {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    match client.read_register(RegisterId(n)) {
                        Ok(v) => shared.update(n, v),
                        Err(_) => {
                            observed.remove(&n);
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
