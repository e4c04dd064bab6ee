//! A mosquitto broker for the bridge's tests: started on a free 127.0.0.1 port with a
//! temporary configuration and persistence folder, restarted, killed; and a small MQTT 5 test
//! client (rumqttc) that records what it receives.
//!
//! Without the `mosquitto` binary, [`Mosquitto::start`] prints `SKIPPED: mosquitto not
//! installed` and returns `None` (the test passes without running), unless
//! `PAV_REQUIRE_TOOLS=1`, when it fails: `scripts/install-tools.sh` installs it. Every wait is
//! bounded.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the broker may take to accept connections.
const READY: Duration = Duration::from_secs(10);

/// The broker's program, if installed.
pub fn binary() -> Option<PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
    {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// `true` if the test may run; prints the skip reason (or fails under `PAV_REQUIRE_TOOLS=1`).
pub fn available() -> bool {
    if binary().is_some() {
        return true;
    }
    assert!(
        std::env::var("PAV_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "mosquitto is required (PAV_REQUIRE_TOOLS=1) but not installed: run scripts/install-tools.sh"
    );
    println!("SKIPPED: mosquitto not installed (scripts/install-tools.sh installs it)");
    false
}

/// A free TCP port on 127.0.0.1 (free when asked; the broker binds it right after).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "pav-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running broker (killed on drop).
pub struct Mosquitto {
    pub port: u16,
    pub dir: TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker with persistence, or `None` (skipped, see the module doc).
    pub fn start() -> Option<Mosquitto> {
        Self::start_with("")
    }

    /// Starts a broker whose configuration has `extra` appended (another listener, TLS).
    pub fn start_with(extra: &str) -> Option<Mosquitto> {
        if !available() {
            return None;
        }
        let dir = TempDir::new("mosquitto");
        let port = free_tcp_port();
        // As root, mosquitto drops to the `mosquitto` user, which cannot write the test's
        // folder; keep the test's own user.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let user = if root { "user root\n" } else { "" };
        let conf = format!(
            "{user}listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {}/\n\
             autosave_interval 1\n\
             max_queued_messages 0\n\
             max_inflight_messages 100\n\
             log_dest file {}/mosquitto.log\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             {extra}\n",
            dir.path().display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.spawn();
        Some(m)
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(binary().unwrap())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its log is in the file (`log()`); stderr holds only the run-as-root warning.
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} within {READY:?}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker gracefully (SIGTERM: it writes its persistence file) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + READY;
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the broker (SIGKILL: what it had not saved is gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &c.id().to_string()])
                .status();
        }
    }

    /// Starts it again, on the same port, with the same persistence.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop or kill it first");
        self.spawn();
    }

    /// Stops and starts again.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A received publish, as a test client saw it.
#[derive(Debug, Clone)]
pub struct Got {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub user_properties: Vec<(String, String)>,
}

/// An MQTT 5 test client (rumqttc) on its own thread that records every publish it receives
/// on its subscriptions; with `persistent`, its session (and what is queued for it) survives
/// its and the broker's restarts.
pub struct TestClient {
    pub client: rumqttc::v5::Client,
    pub got: Arc<Mutex<Vec<Got>>>,
    connected: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestClient {
    pub fn connect(port: u16, id: &str, persistent: bool) -> TestClient {
        use rumqttc::v5::mqttbytes::v5::Packet;
        let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5))
            .set_clean_start(!persistent)
            .set_session_expiry_interval(persistent.then_some(3600));
        let (client, mut connection) = rumqttc::v5::Client::new(o, 1024);
        let got = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(Mutex::new(0));
        let (g, c) = (got.clone(), connected.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                if halt.load(Ordering::Acquire) {
                    break;
                }
                match event {
                    Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(_))) => {
                        *c.lock().unwrap() += 1;
                    }
                    Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                        g.lock().unwrap().push(Got {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            user_properties: p
                                .properties
                                .map(|p| p.user_properties)
                                .unwrap_or_default(),
                        });
                    }
                    Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    // The broker restarting: rumqttc reconnects on the next poll.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        let t = TestClient {
            client,
            got,
            connected,
            stop,
            thread: Some(thread),
        };
        t.wait_connected(1);
        t
    }

    /// Waits until the broker accepted `n` connections of this client.
    pub fn wait_connected(&self, n: u32) {
        let deadline = Instant::now() + READY;
        while *self.connected.lock().unwrap() < n {
            assert!(Instant::now() < deadline, "the test client did not connect");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Subscribes with QoS 1 and gives the broker a moment to register it (a SUBACK round
    /// trip on loopback).
    pub fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Publishes with QoS 1.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                retain,
                payload.to_vec(),
            )
            .unwrap();
    }

    /// Waits until `pred` holds for what was received, or `timeout`; returns a copy.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got.lock().unwrap().clone();
            if pred(&got) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn received(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            // Bounded: the loop ends on the DISCONNECT, or on its next error.
            let _ = t.join();
        }
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}
