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

/// A publish is acknowledged only by the broker's PUBACK: with the broker frozen (the
/// connection open, nothing answered) no completion says `Acked`; once it is killed every
/// one says `Lost` (or the publish is refused up front); after a restart it reconnects.
#[test]
fn no_ack_without_a_broker() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let mqtt = Mqtt::start(settings(broker.port, "bridge", 5)).unwrap();
    wait_until("connected", || mqtt.is_connected());
    broker.pause();
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
    assert_eq!(refused, 0, "the connection looks alive");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        outcomes.lock().unwrap().is_empty(),
        "nothing ends while the broker is silent: {:?}",
        outcomes.lock().unwrap()
    );
    broker.kill();
    wait_until("every publish ended", || {
        outcomes.lock().unwrap().len() == 20
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

/// `mqtts://` with the CA from `ca_file`: a CA and a server certificate for 127.0.0.1 made by
/// the `openssl` command, mosquitto on a TLS listener. Skipped (saying why) without openssl.
#[test]
fn tls_with_a_private_ca() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        println!("SKIPPED: openssl not installed");
        return;
    }
    let dir = mosquitto::TempDir::new("tls");
    let d = dir.path();
    let sh = |args: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pav-test-ca \
        -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    sh("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr");
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    sh(
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -out server.pem -extfile ext.cnf",
    );
    let tls_port = mosquitto::free_tcp_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
        d.display()
    );
    let Some(broker) = Mosquitto::start_with(&extra) else {
        return;
    };
    let sub = TestClient::connect(broker.port, "sub", false);
    sub.subscribe("tls/#");
    let text = format!(
        "site = \"t\"\n[mqtt]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nclient_id = \"tls-bridge\"\nca_file = \"ca.pem\"\n"
    );
    let c = config::parse(&text, d, "h").unwrap();
    let mqtt = Mqtt::start(MqttSettings {
        section: c.mqtt,
        will: None,
    })
    .unwrap();
    wait_until("connected over TLS", || mqtt.is_connected());
    let (tx, rx) = mpsc::channel();
    mqtt.publish(
        Publish::new("tls/x", b"secret".to_vec(), Qos::AtLeastOnce, false),
        move |o| tx.send(o).unwrap(),
    )
    .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), PublishOutcome::Acked);
    let got = sub.wait_for(WAIT, |g| !g.is_empty());
    assert_eq!(got[0].payload, b"secret");
    mqtt.close();

    // The same broker with the system's roots only: the private CA is not trusted.
    let text = format!("site = \"t\"\n[mqtt]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nclient_id = \"tls-untrusted\"\n");
    let c = config::parse(&text, d, "h").unwrap();
    let untrusted = Mqtt::start(MqttSettings {
        section: c.mqtt,
        will: None,
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !untrusted.is_connected(),
        "an unknown CA must not be accepted"
    );
    untrusted.close();
}
