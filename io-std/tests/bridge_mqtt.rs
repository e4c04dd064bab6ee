//! The bridge's MQTT connection (`pavillion_std::bridge::mqtt`) against a real mosquitto on
//! 127.0.0.1: publish completions come with the broker's PUBACK, a received publish is
//! acknowledged only when its handler acks (else the broker sends it again after a
//! reconnection), and the connection comes back after a broker restart.
#![cfg(feature = "bridge")]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mosquitto::{Mosquitto, TestClient};
use pavillion_std::bridge::config::{self, Qos};
use pavillion_std::bridge::mqtt::{Mqtt, MqttSettings, Publish, PublishOutcome};

const WAIT: Duration = Duration::from_secs(10);

fn settings(port: u16, client_id: &str, protocol: u8) -> MqttSettings {
    let text = format!(
        "site = \"t\"\nbridge_id = \"b\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"{client_id}\"\nprotocol = {protocol}\n"
    );
    let c = config::parse(&text, Path::new("."), "h").unwrap();
    MqttSettings {
        section: c.mqtt,
        will: None,
    }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn publishes_complete_on_puback(protocol: u8) {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let sub = TestClient::connect(broker.port, "sub", false);
    sub.subscribe("t/#");
    let mqtt = Mqtt::start(settings(broker.port, "bridge", protocol)).unwrap();
    wait_until("connected", || mqtt.is_connected());
    let (tx, rx) = mpsc::channel();
    for i in 0..50u32 {
        let tx = tx.clone();
        mqtt.publish(
            Publish::new(
                format!("t/{i}"),
                i.to_be_bytes().to_vec(),
                Qos::AtLeastOnce,
                false,
            ),
            move |o| tx.send((i, o)).unwrap(),
        )
        .unwrap();
    }
    let mut done = Vec::new();
    for _ in 0..50 {
        done.push(rx.recv_timeout(WAIT).expect("every publish completes"));
    }
    assert!(done.iter().all(|(_, o)| *o == PublishOutcome::Acked));
    let got = sub.wait_for(WAIT, |g| g.len() >= 50);
    assert_eq!(got.len(), 50);
    mqtt.close();
}

#[test]
fn publishes_complete_on_puback_v5() {
    publishes_complete_on_puback(5);
}

#[test]
fn publishes_complete_on_puback_v311() {
    publishes_complete_on_puback(3);
}

/// With the broker stopped, nothing is acknowledged: every completion says `Lost` (or the
/// publish is refused up front), never `Acked`.
#[test]
fn no_ack_without_a_broker() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let mqtt = Mqtt::start(settings(broker.port, "bridge", 5)).unwrap();
    wait_until("connected", || mqtt.is_connected());
    broker.kill();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut refused = 0;
    for i in 0..20u32 {
        let o = outcomes.clone();
        if mqtt
            .publish(
                Publish::new(format!("t/{i}"), vec![1], Qos::AtLeastOnce, false),
                move |x| o.lock().unwrap().push(x),
            )
            .is_err()
        {
            refused += 1;
        }
    }
    wait_until("every queued publish ended", || {
        outcomes.lock().unwrap().len() + refused == 20
    });
    assert!(outcomes
        .lock()
        .unwrap()
        .iter()
        .all(|o| *o == PublishOutcome::Lost));
    broker.start_again();
    wait_until("reconnected", || mqtt.is_connected());
    mqtt.close();
}

/// A publish the handler did not ack is delivered again after a reconnection (the session is
/// persistent); one it acked is not.
#[test]
fn unacked_publishes_come_again() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let publisher = TestClient::connect(broker.port, "pub", false);
    let mqtt = Mqtt::start(settings(broker.port, "bridge-in", 5)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), calls.clone());
    mqtt.subscribe("in/#", Qos::AtLeastOnce, move |m, token| {
        c.fetch_add(1, Ordering::SeqCst);
        s.lock().unwrap().push((m.topic.clone(), m.dup));
        if m.topic == "in/ack" {
            token.ack();
        }
        // "in/hold": the token is dropped without an ack.
    });
    wait_until("connected", || mqtt.is_connected());
    std::thread::sleep(Duration::from_millis(300));
    publisher.publish("in/ack", b"a", false);
    publisher.publish("in/hold", b"h", false);
    wait_until("both delivered", || calls.load(Ordering::SeqCst) >= 2);
    drop(publisher);
    broker.restart();
    wait_until("the held one again", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == "in/hold")
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|(t, _)| t == "in/ack").count(),
        1,
        "an acked publish is not delivered again: {seen:?}"
    );
    mqtt.close();
}
