//! Two bridges of one site with `[dedupe] mode = "standby"` (`pavillion_std::bridge::dedupe`),
//! against a real mosquitto on 127.0.0.1: both get the same messages (as a multicast reaches
//! both), a subscriber counts publishes per `pav-id`: exactly one each while the leader is up;
//! after the leader goes offline the standby publishes; every message is completed at both.
#![cfg(feature = "bridge")]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mosquitto::{Mosquitto, TestClient};
use pavillion_io::bridge::election::Role;
use pavillion_proto::{ClientId, Counter, PeerId};
use pavillion_std::bridge::config::{self, Qos};
use pavillion_std::bridge::dedupe::Dedupe;
use pavillion_std::bridge::mqtt::{Mqtt, MqttSettings, Publish, PublishOutcome};

const WAIT: Duration = Duration::from_secs(10);

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One bridge's MQTT link and de-duplication, with its retained `online`.
fn bridge(broker: &Mosquitto, id: &str) -> (Mqtt, Arc<Dedupe>) {
    let text = format!(
        "site = \"s\"\nbridge_id = \"{id}\"\n[mqtt]\nurl = \"{}\"\nclient_id = \"c-{id}\"\n\
         [[to_mqtt]]\ntarget = \"*\"\ntopic = \"{{prefix}}/{{site}}/{{client}}/{{target}}/{{name}}\"\n\
         [dedupe]\nmode = \"standby\"\nstandby_wait_ms = 1000\n",
        broker.url()
    );
    let cfg = config::parse(&text, Path::new("."), "h").unwrap();
    let mqtt = Mqtt::start(MqttSettings {
        section: cfg.mqtt.clone(),
        will: None,
    })
    .unwrap();
    wait_until("connected", || mqtt.is_connected());
    presence(&mqtt, id, "online");
    let d = Dedupe::start(&mqtt, &cfg);
    (mqtt, d)
}

fn presence(mqtt: &Mqtt, id: &str, state: &'static str) {
    mqtt.publish_and_forget(Publish::new(
        format!("pav/s/bridges/{id}"),
        state.as_bytes(),
        Qos::AtLeastOnce,
        true,
    ))
    .unwrap();
}

/// Gives message `i` to bridge `d` as its server would, counting completions.
fn give(d: &Dedupe, i: u64, acked: &Arc<AtomicUsize>) {
    let sender = PeerId::Client(ClientId(*b"device-000000001"));
    let payload = i.to_be_bytes();
    let id = d.pav_id(&sender, Counter(i), "sensors", "temp", &payload);
    let p = Publish::new(
        "pav/s/device-000000001/sensors/temp",
        payload.to_vec(),
        Qos::AtLeastOnce,
        false,
    );
    let a = acked.clone();
    d.publish(id, p, move |o| {
        if o == PublishOutcome::Acked {
            a.fetch_add(1, Ordering::Relaxed);
        }
    })
    .unwrap();
}

fn per_id(sub: &TestClient) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for g in sub.received() {
        if let Some((_, v)) = g.user_properties.iter().find(|(k, _)| k == "pav-id") {
            *count.entry(v.clone()).or_insert(0) += 1;
        }
    }
    count
}

#[test]
fn two_bridges_publish_each_message_once_and_the_standby_takes_over() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let sub = TestClient::connect(broker.port, "consumer", false);
    sub.subscribe("pav/s/device-000000001/#");
    let (m1, d1) = bridge(&broker, "gw1");
    let (m2, d2) = bridge(&broker, "gw2");
    wait_until("gw1 leads, gw2 stands by", || {
        d1.role() == Role::Leader
            && d2.role()
                == Role::Standby {
                    leader: pavillion_io::bridge::election::BridgeId("gw1".into()),
                }
    });
    let (a1, a2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for i in 1..=20 {
        // The standby sometimes gets its copy first, sometimes second.
        if i % 2 == 0 {
            give(&d2, i, &a2);
            give(&d1, i, &a1);
        } else {
            give(&d1, i, &a1);
            give(&d2, i, &a2);
        }
    }
    wait_until("20 completed at both", || {
        a1.load(Ordering::Relaxed) == 20 && a2.load(Ordering::Relaxed) == 20
    });
    let counts = sub.wait_for(WAIT, |g| g.len() >= 20);
    assert_eq!(counts.len(), 20);
    std::thread::sleep(Duration::from_millis(1500));
    let counts = per_id(&sub);
    assert_eq!(counts.len(), 20, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "a duplicate: {counts:?}");

    // The leader dies; its last will says offline (published here for it).
    m1.close();
    presence(&m2, "gw1", "offline");
    wait_until("gw2 leads", || d2.role() == Role::Leader);
    for i in 21..=30 {
        give(&d2, i, &a2);
    }
    wait_until("30 completed at gw2", || a2.load(Ordering::Relaxed) == 30);
    sub.wait_for(WAIT, |g| g.len() >= 30);
    let counts = per_id(&sub);
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "a duplicate: {counts:?}");
    d2.close();
    m2.close();
}
