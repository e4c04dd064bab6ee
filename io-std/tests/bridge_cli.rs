//! `pav bridge` as a process against a real mosquitto on 127.0.0.1: messages both ways, the
//! bridge killed with `kill -9` (its last will says `offline`) and restarted, over MQTT 5 with
//! JSON output and over MQTT 3.1.1 with the `-v` text output; a bad configuration naming the
//! key and line. The device is a Pavillion client in this test.
//! Every wait and count is bounded.
#![cfg(feature = "bridge")]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/mosquitto.rs"]
mod mosquitto;
#[path = "support/process.rs"]
mod process;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mosquitto::{Mosquitto, TestClient};
use pavillion_proto::ClientId;
use pavillion_std::keys::parse_psk;
use pavillion_std::{Client, ClientConfig, Reliability};
use process::{free_port, run_with, scratch, Running};

const ID: &str = "device-000000001";
const PSK: &str = "7d1b1a3bd2f8f4f0a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9";
const WAIT: Duration = Duration::from_secs(10);

/// Output the test reads: `--json` events, or the text lines with `-v` counts every second.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    Json,
    Verbose,
}

fn config(dir: &Path, broker: &Mosquitto, listen: SocketAddr, protocol: u8) -> std::path::PathBuf {
    let text = format!(
        r#"site = "s"
bridge_id = "gw1"

[mqtt]
url = "{url}"
client_id = "cli-bridge"
keep_alive_secs = 5
protocol = {protocol}

[pavillion]
listen = "{listen}"

[[pavillion.client]]
id = "{ID}"
psk = "{PSK}"

[[to_mqtt]]
target = "sensors"

[[from_mqtt]]
filter = "{{prefix}}/{{site}}/cmd/#"
target = "commands"
name = "{{tail}}"
to = "client:{ID}"

[presence]
devices = "{{prefix}}/{{site}}/presence/{{client}}"
bridge = "{{prefix}}/{{site}}/bridges/{{bridge}}"
"#,
        url = broker.url()
    );
    mosquitto::write_file(dir, "bridge.toml", &text)
}

fn start_bridge(dir: &Path, file: &Path, output: Output) -> Running {
    let f = file.to_str().unwrap();
    match output {
        Output::Json => {
            let b = Running::start_in(Some(dir), &["--json", "bridge", "--config", f], &[]);
            b.next_event("listening");
            b.next_event("connected");
            b
        }
        Output::Verbose => {
            let args = ["bridge", "--config", f, "-v", "--interval", "1"];
            let b = Running::start_in(Some(dir), &args, &[]);
            assert!(b.next_line().starts_with("listening on 127.0.0.1:"));
            line_with(&b, "connected to broker mqtt://127.0.0.1:");
            b
        }
    }
}

/// Reads text lines until one contains `text`; fails after `WAIT`.
#[track_caller]
fn line_with(b: &Running, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match b.line_within(deadline.saturating_duration_since(Instant::now())) {
            Some(l) if l.contains(text) => return l,
            Some(l) => seen.push(l),
            None => break,
        }
    }
    panic!("no line with {text:?}; saw {seen:?}")
}

fn device(addr: SocketAddr) -> Client {
    let id = ClientId(ID.as_bytes().try_into().unwrap());
    let c = Client::connect(addr, ClientConfig::psk(id, parse_psk(PSK).unwrap())).unwrap();
    c.wait_connected(WAIT).unwrap();
    c
}

fn payloads(got: &[mosquitto::Got], topic_prefix: &str) -> Vec<Vec<u8>> {
    got.iter()
        .filter(|m| m.topic.starts_with(topic_prefix))
        .map(|m| m.payload.clone())
        .collect()
}

#[test]
fn both_ways_and_kill_9() {
    both_ways_and_kill_9_over(5, Output::Json);
}

/// MQTT 3.1.1 (no user properties: the bridge publishes without `pav-id`), and the text
/// output a person reads, counts included.
#[test]
fn both_ways_and_kill_9_over_mqtt_3_1_1_with_counts() {
    both_ways_and_kill_9_over(3, Output::Verbose);
}

fn both_ways_and_kill_9_over(protocol: u8, output: Output) {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = scratch(&format!("bridge-cli-{protocol}"));
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let file = config(&dir, &broker, listen, protocol);
    let watcher = TestClient::connect(broker.port, "watcher", true);
    watcher.subscribe("pav/s/#");
    let mut bridge = start_bridge(&dir, &file, output);

    // Pavillion -> MQTT: each send returns once the device has its ACK.
    let dev = device(listen);
    let got_cmds = Arc::new(Mutex::new(Vec::new()));
    let g = got_cmds.clone();
    dev.on_message(Some("commands"), move |m| {
        g.lock().unwrap().push(m.name().to_string())
    });
    for i in 0..20u32 {
        dev.send_message("sensors", "temp", &i.to_be_bytes(), Reliability::Reliable)
            .unwrap();
    }
    let got = watcher.wait_for(WAIT, |g| {
        payloads(g, "pav/s/device-000000001/sensors/temp").len() >= 20
    });
    let seen: HashSet<Vec<u8>> = payloads(&got, "pav/s/device-000000001/sensors/temp")
        .into_iter()
        .collect();
    assert_eq!(seen.len(), 20, "{got:?}");

    // MQTT -> Pavillion.
    let publisher = TestClient::connect(broker.port, "pub", false);
    for i in 0..5 {
        publisher.publish(&format!("pav/s/cmd/lamp{i}"), b"on", false);
    }
    let deadline = Instant::now() + WAIT;
    while got_cmds.lock().unwrap().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(got_cmds.lock().unwrap().len(), 5);

    // kill -9: the broker publishes the bridge's last will.
    bridge.signal("KILL");
    let _ = bridge.child.wait();
    let got = watcher.wait_for(WAIT, |g| {
        g.iter()
            .any(|m| m.topic == "pav/s/bridges/gw1" && m.payload == b"offline")
    });
    assert!(
        got.iter()
            .any(|m| m.topic == "pav/s/bridges/gw1" && m.payload == b"offline"),
        "no last will: {got:?}"
    );

    // Commands published while the bridge is down wait in its persistent session.
    for i in 5..8 {
        publisher.publish(&format!("pav/s/cmd/lamp{i}"), b"on", false);
    }
    let bridge = start_bridge(&dir, &file, output);
    let got = watcher.wait_for(WAIT, |g| {
        g.iter()
            .rfind(|m| m.topic == "pav/s/bridges/gw1")
            .is_some_and(|m| m.payload == b"online")
    });
    assert!(got
        .iter()
        .any(|m| m.topic == "pav/s/bridges/gw1" && m.payload == b"online"));
    // The device reconnects to the new bridge by itself (its server came back).
    for i in 20..40u32 {
        dev.send_message("sensors", "temp", &i.to_be_bytes(), Reliability::Reliable)
            .unwrap();
    }
    let got = watcher.wait_for(WAIT, |g| {
        payloads(g, "pav/s/device-000000001/sensors/temp")
            .into_iter()
            .collect::<HashSet<_>>()
            .len()
            >= 40
    });
    let seen: HashSet<Vec<u8>> = payloads(&got, "pav/s/device-000000001/sensors/temp")
        .into_iter()
        .collect();
    for i in 0..40u32 {
        assert!(
            seen.contains(i.to_be_bytes().as_slice()),
            "{i} acknowledged but not published"
        );
    }
    let deadline = Instant::now() + WAIT;
    while got_cmds.lock().unwrap().len() < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cmds = got_cmds.lock().unwrap().clone();
    for i in 0..8 {
        assert!(cmds.contains(&format!("lamp{i}")), "lamp{i} lost: {cmds:?}");
    }
    // Over 3.1.1 nothing carries user properties; over 5 every device message has its pav-id.
    let published = watcher.received();
    let ids = published
        .iter()
        .filter(|m| m.topic.starts_with("pav/s/device-000000001/sensors/temp"))
        .filter(|m| m.user_properties.iter().any(|(k, _)| k == "pav-id"))
        .count();
    match protocol {
        3 => assert_eq!(ids, 0, "3.1.1 publishes carry properties"),
        _ => assert!(ids >= 40, "{ids} publishes with pav-id"),
    }
    if output == Output::Verbose {
        // The restarted bridge published the 20 later messages and delivered the 3 commands
        // that waited at the broker; its counts say so, about once a second.
        line_with(
            &bridge,
            "to_mqtt 20 (failed 0, unmapped 0), from_mqtt 3 (failed 0, dead-lettered 0",
        );
    }
}

#[test]
fn bad_config_names_key_and_line() {
    let dir = scratch("bridge-cli-bad");
    let file = mosquitto::write_file(
        &dir,
        "bad.toml",
        "site = \"s\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n[[to_mqtt]]\ntarget = \"t\"\ntopic = \"{nope}\"\n",
    );
    let out = run_with(
        Some(&dir),
        &["bridge", "--config", file.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 6") && err.contains("topic") && err.contains("nope"),
        "{err}"
    );
    let file = mosquitto::write_file(
        &dir,
        "bad2.toml",
        "site = \"s\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n[pavillion]\nlisten = \"127.0.0.1:1\"\nlisen = 2\n",
    );
    let out = run_with(
        Some(&dir),
        &["bridge", "--config", file.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 6") && err.contains("lisen"), "{err}");
    // A host name is resolved at start: one that is not a group cannot give two ACKs.
    let file = mosquitto::write_file(
        &dir,
        "bad3.toml",
        "site = \"s\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n[[upstream]]\nname = \"plc\"\naddress = \"localhost:7001\"\nid = \"bridge-client-01\"\npsk = \"7d1b1a3bd2f8f4f0a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9\"\nmin_acks = 2\n",
    );
    let out = run_with(
        Some(&dir),
        &["bridge", "--config", file.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4") && err.contains("min_acks") && err.contains("group"),
        "{err}"
    );
}
