//! Messages per second through `pav bridge` into mosquitto on loopback, against the same
//! messages published straight to mosquitto by `mosquitto_pub` (QoS 1), in the same run
//! (issue 21's benchmark).
//!
//! Bridge path: a Pavillion client sends [`MESSAGES`] 64-byte reliable messages pipelined
//! (`Client::send_pipelined`) to the bridge's server; the bridge publishes each with QoS 1 and
//! completes its hand-off (the device's ACK) on the broker's PUBACK; a subscriber (QoS 1)
//! counts them. Direct path: `mosquitto_pub -q 1 -l` publishes the same number of 64-byte
//! lines to the same broker and the same subscriber counts them (without `mosquitto_pub`, the
//! bridge's own MQTT client publishes them, QoS 1, 100 in flight; the row says which). Each
//! rate is messages counted by the subscriber over the time from the first send to the last
//! arrival. Both need the `mosquitto` binary; without it the row is skipped with the reason.

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pavillion_std::bridge::config::{self, Qos};
use pavillion_std::bridge::mqtt::{Mqtt, MqttSettings, Publish};
use pavillion_std::bridge::Bridge;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, Reliability, Server, ServerConfig};

/// Messages per measurement.
pub const MESSAGES: u64 = 20_000;
/// Payload bytes of each message.
pub const SIZE: usize = 64;
/// The longest a measurement may take.
const LIMIT: Duration = Duration::from_secs(30);

/// The two rates of one run.
#[derive(Debug, Clone)]
pub struct BridgeRates {
    /// Messages per second through the bridge.
    pub bridge: f64,
    /// Messages per second published directly.
    pub direct: f64,
    /// What published directly (`mosquitto_pub` or the fallback).
    pub direct_by: &'static str,
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A mosquitto on a free port with a scratch folder, killed and removed on drop.
struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start() -> Result<Broker, String> {
        let bin = find("mosquitto").ok_or("mosquitto not installed")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = std::env::temp_dir().join(format!("pav-bench-mosquitto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let conf = format!(
            "{}listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n\
             max_inflight_messages 100\n",
            if root { "user root\n" } else { "" }
        );
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let broker = Broker { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("mosquitto did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mqtt(port: u16, id: &str) -> Result<Mqtt, String> {
    let text = format!(
        "site = \"bench\"\nbridge_id = \"{id}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"{id}\"\n"
    );
    let c = config::parse(&text, Path::new("."), id).map_err(|e| e.to_string())?;
    let m = Mqtt::start(MqttSettings {
        section: c.mqtt,
        will: None,
    })
    .map_err(|e| e.to_string())?;
    wait(|| m.is_connected())?;
    Ok(m)
}

fn wait(f: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Measures both paths once.
///
/// # Errors
/// Why the row is skipped (no mosquitto) or failed.
pub fn measure() -> Result<BridgeRates, String> {
    let broker = Broker::start()?;
    let subscriber = mqtt(broker.port, "bench-sub")?;
    let (bridged, direct) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (b, d) = (bridged.clone(), direct.clone());
    subscriber.subscribe("bench/#", Qos::AtLeastOnce, move |m, token| {
        if m.topic.starts_with("bench/direct") {
            d.fetch_add(1, Ordering::Relaxed);
        } else {
            b.fetch_add(1, Ordering::Relaxed);
        }
        token.ack();
    });
    std::thread::sleep(Duration::from_millis(300));

    // Direct.
    let line = "x".repeat(SIZE);
    let start = Instant::now();
    let direct_by = match find("mosquitto_pub") {
        Some(bin) => {
            let mut child = Command::new(bin)
                .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
                .args(["-q", "1", "-t", "bench/direct", "-l"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let mut stdin = child.stdin.take().ok_or("no stdin")?;
            let mut text = String::with_capacity((SIZE + 1) * MESSAGES as usize);
            for _ in 0..MESSAGES {
                text.push_str(&line);
                text.push('\n');
            }
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| e.to_string())?;
            drop(stdin);
            wait(|| direct.load(Ordering::Relaxed) >= MESSAGES)
                .map_err(|e| format!("direct: {e} at {}", direct.load(Ordering::Relaxed)))?;
            let _ = child.wait();
            "mosquitto_pub -q 1 -l"
        }
        None => {
            let publisher = mqtt(broker.port, "bench-pub")?;
            for _ in 0..MESSAGES {
                while publisher
                    .publish_and_forget(Publish::new(
                        "bench/direct",
                        line.clone(),
                        Qos::AtLeastOnce,
                        false,
                    ))
                    .is_err()
                {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            wait(|| direct.load(Ordering::Relaxed) >= MESSAGES)?;
            publisher.close();
            "rumqttc QoS 1 (no mosquitto_pub)"
        }
    };
    let direct_rate = MESSAGES as f64 / start.elapsed().as_secs_f64();

    // Through the bridge.
    let id = pavillion_proto::ClientId(*b"bench-device-001");
    let psk = generate_psk();
    let addr = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?;
    let server = Server::bind(addr, ServerConfig::new().psk_client(id, psk.clone()))
        .map_err(|e| e.to_string())?;
    let text = format!(
        "site = \"bench\"\nbridge_id = \"b\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\
         [[to_mqtt]]\ntarget = \"{}\"\ntopic = \"bench/bridge/{{name}}\"\n",
        broker.port,
        crate::TARGET
    );
    let cfg = config::parse(&text, Path::new("."), "b").map_err(|e| e.to_string())?;
    let bridge = Bridge::start(cfg, Some(server), Vec::new()).map_err(|e| e.to_string())?;
    wait(|| bridge.mqtt().is_connected())?;
    let client = Client::connect(addr, ClientConfig::psk(id, psk)).map_err(|e| e.to_string())?;
    client
        .wait_connected(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let payload = vec![b'x'; SIZE];
    let start = Instant::now();
    for _ in 0..MESSAGES {
        // The outcome is awaited through the subscriber's count (and `flush` below).
        drop(
            client
                .send_pipelined(crate::TARGET, crate::NAME, &payload, Reliability::Reliable)
                .map_err(|e| e.to_string())?,
        );
    }
    wait(|| bridged.load(Ordering::Relaxed) >= MESSAGES)
        .map_err(|e| format!("bridge: {e} at {}", bridged.load(Ordering::Relaxed)))?;
    let bridge_rate = MESSAGES as f64 / start.elapsed().as_secs_f64();
    let _ = client.flush(Duration::from_secs(30));
    client.close();
    bridge.close();
    subscriber.close();
    crate::results::record("bridge_msgs_64", bridge_rate, "msg/s");
    crate::results::record("mqtt_direct_msgs_64", direct_rate, "msg/s");
    Ok(BridgeRates {
        bridge: bridge_rate,
        direct: direct_rate,
        direct_by,
    })
}
