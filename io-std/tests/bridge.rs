//! The bridge (`pavillion_std::bridge::Bridge`) between Pavillion clients on loopback and a
//! real mosquitto on 127.0.0.1: MQTT → Pavillion with the broker's ack after the Pavillion
//! ACK, Pavillion → MQTT with the device's (or the upstream server's) ACK after the broker's
//! PUBACK, presence. Every wait and count is bounded.
#![cfg(feature = "bridge")]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mosquitto::{Mosquitto, TestClient};
use pavillion_proto::ClientId;
use pavillion_std::bridge::config;
use pavillion_std::bridge::Bridge;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, Reliability, Server, ServerConfig};

const ID: ClientId = ClientId(*b"device-000000001");
const WAIT: Duration = Duration::from_secs(10);

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A bridge with its own server (one PSK device) and `sections` appended to the config.
fn bridge(
    broker: &Mosquitto,
    client_id: &str,
    sections: &str,
) -> (Bridge, SocketAddr, ClientConfig) {
    let text = format!(
        "site = \"s\"\nbridge_id = \"b1\"\n[mqtt]\nurl = \"{}\"\nclient_id = \"{client_id}\"\n{sections}",
        broker.url()
    );
    let cfg = config::parse(&text, Path::new("."), "h").unwrap();
    let psk = generate_psk();
    let addr = free_udp();
    let server = Server::bind(addr, ServerConfig::new().psk_client(ID, psk.clone())).unwrap();
    let b = Bridge::start(cfg, Some(server), Vec::new()).unwrap();
    wait_until("the bridge connected", || b.mqtt().is_connected());
    (b, addr, ClientConfig::psk(ID, psk))
}

#[test]
fn mqtt_to_every_client() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let (b, addr, device) = bridge(
        &broker,
        "bridge-in",
        "[[from_mqtt]]\nfilter = \"{prefix}/{site}/cmd/#\"\ntarget = \"commands\"\nname = \"{tail}\"\n",
    );
    let client = Client::connect(addr, device).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    client.on_message(Some("commands"), move |m| {
        g.lock()
            .unwrap()
            .push((m.name().to_string(), m.payload().to_vec()));
    });
    client.wait_connected(WAIT).unwrap();
    wait_until("the client is known", || {
        b.context().server.as_ref().unwrap().clients().len() == 1
    });
    let publisher = TestClient::connect(broker.port, "pub", false);
    for i in 0..20u32 {
        publisher.publish(&format!("pav/s/cmd/lamp/{i}"), &i.to_be_bytes(), false);
    }
    wait_until("20 messages", || got.lock().unwrap().len() >= 20);
    let got = got.lock().unwrap().clone();
    for i in 0..20u32 {
        assert!(
            got.contains(&(format!("lamp/{i}"), i.to_be_bytes().to_vec())),
            "{i} missing: {got:?}"
        );
    }
    wait_until("20 acked", || {
        b.counters().from_mqtt.load(Ordering::Relaxed) == 20
    });
    b.close();
}

/// A publish for a client that is not there is not acknowledged to the broker: a bridge that
/// stops before delivering it leaves it to the broker, and the next bridge with the same MQTT
/// session receives it again and delivers it once the client is there.
#[test]
fn mqtt_publish_unacked_until_delivered() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let section = "[[from_mqtt]]\nfilter = \"pav/s/to/#\"\ntarget = \"commands\"\nname = \"{tail}\"\nto = \"client:device-000000001\"\n";
    let (b, _, _) = bridge(&broker, "bridge-held", section);
    let publisher = TestClient::connect(broker.port, "pub", false);
    publisher.publish("pav/s/to/x", b"1", false);
    wait_until("the publish arrived", || {
        b.mqtt().stats().received.load(Ordering::Relaxed) == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.counters().from_mqtt.load(Ordering::Relaxed), 0);
    b.close();
    // Same MQTT client id: the broker kept the unacknowledged publish in the session.
    let (b, addr, device) = bridge(&broker, "bridge-held", section);
    wait_until("the publish again", || {
        b.mqtt().stats().received.load(Ordering::Relaxed) == 1
    });
    let client = Client::connect(addr, device).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    client.on_message(Some("commands"), move |m| {
        g.lock().unwrap().push(m.name().to_string())
    });
    client.wait_connected(WAIT).unwrap();
    let deadline = Instant::now() + WAIT;
    while !got.lock().unwrap().contains(&"x".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "not redelivered: {} / {} / {:?}",
            b.counters().line(),
            b.mqtt().stats().received.load(Ordering::Relaxed),
            b.context().server.as_ref().unwrap().clients()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_until("acked", || {
        b.counters().from_mqtt.load(Ordering::Relaxed) == 1
    });
    b.close();
}

/// A publish that cannot be delivered is given up after the route's `give_up_after_ms` and
/// moved to its `dead_letter` topic, with where it came from and why; the move acknowledges
/// it to the broker, so that publishes for a receiver that is gone do not fill the broker's
/// in-flight window for the bridge (the test broker's `max_inflight_messages` is 100, so 120
/// would stop every route without the move: checked by removing `dead_letter`): a publish on
/// another route still arrives, and a bridge started again under the same MQTT session is not
/// sent them again.
#[test]
fn given_up_publishes_go_to_the_dead_letter_and_the_rest_keep_flowing() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let sections = "[[from_mqtt]]\nfilter = \"pav/s/to/#\"\ntarget = \"commands\"\nname = \"{tail}\"\n\
                    to = \"client:ghost\"\ngive_up_after_ms = 300\n\
                    dead_letter = \"{prefix}/{site}/dead/{tail}\"\n\
                    [[from_mqtt]]\nfilter = \"pav/s/cmd/#\"\ntarget = \"commands\"\nname = \"{tail}\"\n";
    let (b, addr, device) = bridge(&broker, "bridge-dead", sections);
    let watcher = TestClient::connect(broker.port, "watch", false);
    watcher.subscribe("pav/s/dead/#");
    let publisher = TestClient::connect(broker.port, "pub", false);
    const N: usize = 120;
    for i in 0..N {
        publisher.publish(&format!("pav/s/to/x{i}"), &[i as u8], false);
    }
    let dead = watcher.wait_for(WAIT, |g| g.len() >= N);
    assert_eq!(dead.len(), N, "dead letters: {}", b.counters().line());
    for i in 0..N {
        let d = dead
            .iter()
            .find(|d| d.topic == format!("pav/s/dead/x{i}"))
            .unwrap_or_else(|| panic!("x{i} not dead-lettered"));
        assert_eq!(d.payload, [i as u8]);
        let prop = |k: &str| {
            d.user_properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            prop("pav-topic").as_deref(),
            Some(&*format!("pav/s/to/x{i}"))
        );
        assert_eq!(prop("pav-error").as_deref(), Some("no receiver connected"));
    }
    wait_until("all dead-lettered", || {
        b.counters().from_mqtt_dead_lettered.load(Ordering::Relaxed) == N as u64
    });
    assert_eq!(b.counters().from_mqtt_failed.load(Ordering::Relaxed), 0);

    // The other route still flows.
    let client = Client::connect(addr, device).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    client.on_message(Some("commands"), move |m| {
        g.lock().unwrap().push(m.name().to_string())
    });
    client.wait_connected(WAIT).unwrap();
    wait_until("the client is known", || {
        b.context().server.as_ref().unwrap().clients().len() == 1
    });
    publisher.publish("pav/s/cmd/after", b"!", false);
    wait_until("a later publish on the other route", || {
        got.lock().unwrap().contains(&"after".to_owned())
    });
    drop(client);
    b.close();

    // Acknowledged by the move: the broker keeps none of them for the session.
    let (b, _, _) = bridge(&broker, "bridge-dead", sections);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        b.mqtt().stats().received.load(Ordering::Relaxed),
        0,
        "the broker sent given-up publishes again"
    );
    b.close();
}

#[test]
fn presence_of_devices_and_bridge() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let (b, addr, device) = bridge(
        &broker,
        "bridge-presence",
        "[presence]\ndevices = \"{prefix}/{site}/presence/{client}\"\nbridge = \"{prefix}/{site}/bridges/{bridge}\"\n",
    );
    let watcher = TestClient::connect(broker.port, "watch", false);
    watcher.subscribe("pav/s/#");
    let got = watcher.wait_for(WAIT, |g| g.iter().any(|m| m.topic == "pav/s/bridges/b1"));
    let own = got.iter().rfind(|m| m.topic == "pav/s/bridges/b1").unwrap();
    assert_eq!(own.payload, b"online");
    assert!(own.retain, "a later subscriber sees it");
    let client = Client::connect(addr, device).unwrap();
    client.wait_connected(WAIT).unwrap();
    let topic = "pav/s/presence/device-000000001";
    let got = watcher.wait_for(WAIT, |g| {
        g.iter().any(|m| m.topic == topic && m.payload == b"up")
    });
    assert!(
        got.iter().any(|m| m.topic == topic && m.payload == b"up"),
        "{got:?}"
    );
    client.close();
    let got = watcher.wait_for(WAIT, |g| {
        g.iter().any(|m| m.topic == topic && m.payload == b"down")
    });
    assert!(
        got.iter().any(|m| m.topic == topic && m.payload == b"down"),
        "{got:?}"
    );
    // A subscriber that comes later sees the retained states.
    let late = TestClient::connect(broker.port, "late", false);
    late.subscribe("pav/s/#");
    let got = late.wait_for(WAIT, |g| g.len() >= 2);
    assert!(
        got.iter()
            .any(|m| m.topic == topic && m.payload == b"down" && m.retain),
        "{got:?}"
    );
    b.close();
    let got = watcher.wait_for(WAIT, |g| {
        g.iter()
            .any(|m| m.topic == "pav/s/bridges/b1" && m.payload == b"offline")
    });
    assert!(got
        .iter()
        .any(|m| m.topic == "pav/s/bridges/b1" && m.payload == b"offline"));
}

/// The broker restarted in mid-stream: every device message whose send returned (the device
/// had its ACK) is at the subscriber afterwards, and duplicates come only from publishes in
/// flight at the restart (their PUBACK lost: the device sent them again).
#[test]
fn broker_restart_loses_no_acknowledged_message() {
    const N: u32 = 100;
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let (b, addr, device) = bridge(
        &broker,
        "bridge-restart",
        "[[to_mqtt]]\ntarget = \"sensors\"\n",
    );
    let sub = TestClient::connect(broker.port, "counter", true);
    sub.subscribe("pav/s/+/sensors/#");
    let client = Arc::new(Client::connect(addr, device).unwrap());
    client.wait_connected(WAIT).unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (client, acked) = (client.clone(), acked.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                // Paced, so that the stream spans the broker's restart.
                std::thread::sleep(Duration::from_millis(20));
                let r =
                    client.send_message("sensors", "v", &i.to_be_bytes(), Reliability::Reliable);
                if r.is_ok() {
                    acked.lock().unwrap().push(i);
                }
            }
        })
    };
    wait_until("30 acknowledged", || acked.lock().unwrap().len() >= 30);
    broker.restart();
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 30,
        "the stream went on after the restart: {}",
        acked.len()
    );
    let got = sub.wait_for(Duration::from_secs(20), |g| {
        let seen: std::collections::HashSet<&[u8]> =
            g.iter().map(|m| m.payload.as_slice()).collect();
        acked
            .iter()
            .all(|i| seen.contains(i.to_be_bytes().as_slice()))
    });
    let seen: std::collections::HashSet<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|i| !seen.contains(i.to_be_bytes().as_slice()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged to the device but not at the subscriber: {lost:?}"
    );
    let duplicates = got.len() - seen.len();
    println!(
        "acknowledged {} of {N}, published {} ({} distinct, {duplicates} duplicates)",
        acked.len(),
        got.len(),
        seen.len()
    );
    // A duplicate is a publish whose PUBACK the restart cut off; at most the in-flight window.
    assert!(duplicates <= 100, "{duplicates} duplicates");
    b.close();
}

/// The same across a broker restart for an upstream server's messages (`[[upstream]]
/// subscribe`): the bridge is the server's client, and holds each reliable message's ACK
/// until the broker's PUBACK. Every message whose send returned at the server (it had the
/// bridge's ACK) is at the subscriber afterwards.
#[test]
fn upstream_messages_survive_a_broker_restart() {
    const N: u32 = 100;
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let psk = generate_psk();
    let addr = free_udp();
    let server = Arc::new(
        Server::bind(
            addr,
            ServerConfig::new()
                .psk_client(ID, psk.clone())
                .send_timeout(Duration::from_secs(30)),
        )
        .unwrap(),
    );
    let text = format!(
        "site = \"s\"\nbridge_id = \"b1\"\n[mqtt]\nurl = \"{}\"\nclient_id = \"bridge-upstream\"\n\
         [[upstream]]\nname = \"plc1\"\naddress = \"{addr}\"\nsubscribe = [\"alarms\"]\n",
        broker.url()
    );
    let cfg = config::parse(&text, Path::new("."), "h").unwrap();
    let client = Client::connect(addr, ClientConfig::psk(ID, psk)).unwrap();
    client.wait_connected(WAIT).unwrap();
    let b = Bridge::start(cfg, None, vec![("plc1".into(), client)]).unwrap();
    wait_until("the bridge connected", || b.mqtt().is_connected());
    wait_until("the bridge subscribed upstream", || {
        !server.client_subscribers("alarms").is_empty()
    });
    let to = server.client_subscribers("alarms")[0].0;
    let sub = TestClient::connect(broker.port, "upstream-counter", true);
    sub.subscribe("pav/s/plc1/alarms/#");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (server, acked) = (server.clone(), acked.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                // Paced, so that the stream spans the broker's restart.
                std::thread::sleep(Duration::from_millis(20));
                let r = server.send_to(to, "alarms", "v", &i.to_be_bytes(), Reliability::Reliable);
                if r.is_ok() {
                    acked.lock().unwrap().push(i);
                }
            }
        })
    };
    wait_until("30 acknowledged", || acked.lock().unwrap().len() >= 30);
    broker.restart();
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 30,
        "the stream went on after the restart: {}",
        acked.len()
    );
    let got = sub.wait_for(Duration::from_secs(20), |g| {
        let seen: std::collections::HashSet<&[u8]> =
            g.iter().map(|m| m.payload.as_slice()).collect();
        acked
            .iter()
            .all(|i| seen.contains(i.to_be_bytes().as_slice()))
    });
    let seen: std::collections::HashSet<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|i| !seen.contains(i.to_be_bytes().as_slice()))
        .collect();
    println!(
        "upstream: acknowledged {} of {N}, published {} ({} distinct), held refused {}",
        acked.len(),
        got.len(),
        seen.len(),
        b.context().upstream[0]
            .client
            .stats()
            .map_or(0, |s| s.handoffs_refused)
    );
    assert!(
        lost.is_empty(),
        "acknowledged to the upstream server but not at the subscriber: {lost:?}"
    );
    assert!(got.len() - seen.len() <= 100, "duplicates");
    b.close();
}
