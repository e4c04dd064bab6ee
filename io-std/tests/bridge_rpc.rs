//! RPC both ways and retained register values through the bridge
//! (`pavillion_std::bridge::Bridge`), against a real mosquitto on 127.0.0.1: an MQTT 5
//! requester calls a Pavillion server's function; a device's call to a bridged function is
//! answered by an MQTT 5 responder, or times out with the bridge's status; a dashboard that
//! subscribes after the value changed gets it retained. Every wait is bounded.
#![cfg(feature = "bridge")]
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mosquitto::{Mosquitto, TestClient};
use pavillion_io::bridge::rpc::BridgeRpcError;
use pavillion_proto::ClientId;
use pavillion_std::bridge::config::{self, Qos};
use pavillion_std::bridge::mqtt::{Message, Mqtt, MqttSettings, Publish};
use pavillion_std::bridge::Bridge;
use pavillion_std::keys::generate_psk;
use pavillion_std::{
    CallError, Client, ClientConfig, Register, RegisterId, RegisterValue, RpcFailure, Server,
    ServerConfig,
};

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

fn parse(broker: &Mosquitto, client_id: &str, sections: &str) -> config::BridgeConfig {
    let text = format!(
        "site = \"s\"\nbridge_id = \"b1\"\n[mqtt]\nurl = \"{}\"\nclient_id = \"{client_id}\"\n{sections}",
        broker.url()
    );
    config::parse(&text, Path::new("."), "h").unwrap()
}

/// A plain MQTT 5 client (the bridge's own connection type, which reports response topics
/// and correlation data) that collects what arrives on `filter`.
fn mqtt_peer(broker: &Mosquitto, id: &str, filter: &str) -> (Mqtt, Arc<Mutex<Vec<Message>>>) {
    let cfg = parse(broker, id, "");
    let mqtt = Mqtt::start(MqttSettings {
        section: cfg.mqtt,
        will: None,
    })
    .unwrap();
    wait_until("the MQTT peer connected", || mqtt.is_connected());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    mqtt.subscribe(filter, Qos::AtLeastOnce, move |m, token| {
        token.ack();
        g.lock().unwrap().push(m.clone());
    });
    std::thread::sleep(Duration::from_millis(200));
    (mqtt, got)
}

/// A Pavillion server (the upstream device) with function 7 (reverses its argument) and
/// register 1, and a bridge that is its client.
fn upstream(broker: &Mosquitto) -> (Bridge, Server) {
    let psk = generate_psk();
    let addr = free_udp();
    let server = Server::bind(addr, ServerConfig::new().psk_client(ID, psk.clone())).unwrap();
    server.register(7, "reverse", |req| {
        let mut v = req.args.to_vec();
        v.reverse();
        Ok::<_, RpcFailure>(v)
    });
    server
        .declare_register(Register {
            number: RegisterId(1),
            name: "temp".into(),
            unit: "C".into(),
            writable: false,
            value: RegisterValue::F32(20.0),
        })
        .unwrap();
    let cfg = parse(
        broker,
        "bridge-up",
        &format!(
            "[[upstream]]\nname = \"plc1\"\naddress = \"{addr}\"\nrpc = true\nregisters = [1]\n"
        ),
    );
    let client = Client::connect(addr, ClientConfig::psk(ID, psk)).unwrap();
    client.wait_connected(WAIT).unwrap();
    let b = Bridge::start(cfg, None, vec![("plc1".into(), client)]).unwrap();
    wait_until("the bridge connected", || b.mqtt().is_connected());
    std::thread::sleep(Duration::from_millis(300));
    (b, server)
}

fn prop<'a>(m: &'a Message, key: &str) -> Option<&'a str> {
    m.user_properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn an_mqtt_requester_calls_a_pavillion_servers_function() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let (b, _server) = upstream(&broker);
    let (requester, answers) = mqtt_peer(&broker, "requester", "app/answers");
    let request = |function: &str, args: &'static [u8], correlation: &'static [u8]| {
        let mut p = Publish::new(
            format!("pav/s/plc1/rpc/{function}"),
            Bytes::from_static(args),
            Qos::AtLeastOnce,
            false,
        );
        p.response_topic = Some("app/answers".into());
        p.correlation_data = Some(Bytes::from_static(correlation));
        requester.publish_and_forget(p).unwrap();
    };
    request("7", b"abc", b"req-1");
    request("9", b"", b"req-2");
    wait_until("two answers", || answers.lock().unwrap().len() >= 2);
    let got = answers.lock().unwrap().clone();
    let by = |c: &[u8]| {
        got.iter()
            .find(|m| m.correlation_data.as_deref() == Some(c))
            .unwrap_or_else(|| panic!("no answer for {c:?}: {got:?}"))
    };
    let ok = by(b"req-1");
    assert_eq!(&ok.payload[..], b"cba");
    assert_eq!(prop(ok, "pav-status"), Some("0"));
    assert_eq!(prop(ok, "pav-error"), None);
    // No function 9 on the server: its own status 2 (nonexistent function), with a text.
    let missing = by(b"req-2");
    assert_eq!(prop(missing, "pav-status"), Some("2"));
    assert!(prop(missing, "pav-error").is_some());
    assert_eq!(got.len(), 2, "one answer per request: {got:?}");
    requester.close();
    b.close();
}

#[test]
fn a_device_call_is_answered_by_an_mqtt_responder_or_times_out() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let psk = generate_psk();
    let addr = free_udp();
    let server = Server::bind(addr, ServerConfig::new().psk_client(ID, psk.clone())).unwrap();
    let cfg = parse(
        &broker,
        "bridge-out",
        "[[rpc_to_mqtt]]\nfunction = 100\ntopic = \"{prefix}/{site}/rpc/{function}\"\ntimeout_ms = 3000\n\
         [[rpc_to_mqtt]]\nfunction = 101\ntopic = \"{prefix}/{site}/rpc/{function}\"\ntimeout_ms = 300\n",
    );
    let b = Bridge::start(cfg, Some(server), Vec::new()).unwrap();
    wait_until("the bridge connected", || b.mqtt().is_connected());
    // The responder answers function 100 only: upper case, and status 3 for "bad".
    let (responder, requests) = mqtt_peer(&broker, "responder", "pav/s/rpc/100");
    let link = responder.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let halt = stop.clone();
    let answering = std::thread::spawn(move || {
        let mut done = 0;
        while !halt.load(std::sync::atomic::Ordering::Acquire) {
            let next: Vec<Message> = requests.lock().unwrap().drain(..).collect();
            for m in next {
                done += 1;
                let bad = &m.payload[..] == b"bad";
                let mut p = Publish::new(
                    m.response_topic.clone().unwrap(),
                    Bytes::from(m.payload.to_ascii_uppercase()),
                    Qos::AtLeastOnce,
                    false,
                );
                p.correlation_data = m.correlation_data.clone();
                p.user_properties = vec![("pav-status".into(), if bad { "3" } else { "0" }.into())];
                link.publish_and_forget(p).unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        done
    });
    std::thread::sleep(Duration::from_millis(300));
    let device = Client::connect(addr, ClientConfig::psk(ID, psk)).unwrap();
    device.wait_connected(WAIT).unwrap();
    assert_eq!(&device.call(100, b"hello").unwrap()[..], b"HELLO");
    assert_eq!(&device.call(100, b"again").unwrap()[..], b"AGAIN");
    match device.call(100, b"bad") {
        Err(CallError::Remote { status, data }) => {
            assert_eq!(status.0, 3);
            assert_eq!(&data[..], b"BAD");
        }
        other => panic!("expected the responder's status 3, got {other:?}"),
    }
    // Nobody answers function 101: the bridge's deadline (300 ms) fails it with its own
    // status, well before the device's call timeout (2 s).
    let t0 = Instant::now();
    match device.call(101, b"x") {
        Err(CallError::Remote { status, .. }) => {
            assert_eq!(status, BridgeRpcError::TimedOut.status());
        }
        other => panic!("expected the bridge's timeout, got {other:?}"),
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(answering.join().unwrap(), 3);
    assert_eq!(
        b.services()
            .rpc_stats
            .timed_out_out
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    device.close();
    responder.close();
    b.close();
}

#[test]
fn a_dashboard_that_subscribes_later_sees_the_current_register_value() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let (b, server) = upstream(&broker);
    server
        .set_register(RegisterId(1), RegisterValue::F32(21.5))
        .unwrap();
    wait_until("the new value published", || {
        b.services()
            .register_stats
            .published
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    // Subscribes only now: the broker's retained value is the latest.
    let dashboard = TestClient::connect(broker.port, "dashboard", false);
    dashboard.subscribe("pav/s/plc1/registers/+");
    let got = dashboard.wait_for(WAIT, |g| !g.is_empty());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].topic, "pav/s/plc1/registers/1");
    assert_eq!(got[0].payload, b"21.5");
    assert!(got[0].retain);
    assert!(got[0]
        .user_properties
        .contains(&("pav-type".into(), "f32".into())));
    b.close();
}
