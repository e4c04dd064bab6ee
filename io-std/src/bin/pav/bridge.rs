//! `pav bridge --config FILE`: Pavillion ↔ an MQTT broker (see `docs/BRIDGE.md`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_std::bridge::config::{self, BridgeConfig, Upstream};
use pavillion_std::bridge::Bridge;
use pavillion_std::{keys as std_keys, Client, ClientConfig, ReplySocket, Server, ServerConfig};
use serde_json::json;

use crate::common::{self, next_input, print_stopped, Ended, Failure};
use crate::keys::KeyFile;

pub(crate) const AFTER_HELP: &str = "\
The configuration file names the broker ([mqtt]), the bridge's own server ([pavillion], the
keys of `pav serve --config`), the mappings ([[to_mqtt]], [[from_mqtt]]), presence and the
upstream servers; docs/BRIDGE.md is the reference. A device's reliable message is
acknowledged to it only after the broker acknowledged its publish.

Examples:
  pav bridge --config bridge.toml
  pav bridge --config bridge.toml -v      # the counts every 10 s";

#[derive(Args, Debug)]
pub(crate) struct BridgeArgs {
    /// The bridge's configuration file (TOML).
    #[arg(long, short, env = "PAV_BRIDGE_CONFIG")]
    config: PathBuf,
    /// Print the counts every --interval.
    #[arg(long, short)]
    verbose: bool,
    /// Seconds between counts with -v.
    #[arg(long, value_parser = common::seconds, default_value = "10")]
    interval: Duration,
    /// Stop after this long (seconds) [default: until a signal].
    #[arg(long, value_parser = common::seconds)]
    duration: Option<Duration>,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "bridge".to_owned())
}

/// Reads and checks the whole file: the bridge's schema, then `[pavillion]` with `pav serve`'s
/// loader.
fn load(path: &Path) -> Result<(BridgeConfig, Option<crate::config::ServerFile>), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("--config {}: {e}", path.display())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let bridge = config::parse(&text, &base, &host_name())
        .map_err(|e| Failure::input(format!("{}, {e}", path.display())))?;
    let server = crate::config::load_section(path, &text)?;
    Ok((bridge, server))
}

fn server_config(f: &crate::config::ServerFile) -> Result<ServerConfig, Failure> {
    let mut c = ServerConfig::new().allow_guests(f.allow_guests.unwrap_or(false));
    for (id, psk) in &f.psk_clients {
        c = c.psk_client(*id, psk.clone());
    }
    for (id, key) in &f.key_clients {
        c = c.ecc_client(*id, *key);
    }
    if let Some(k) = &f.keys {
        c = c.keys(k.clone());
    } else if !f.key_clients.is_empty() || f.allow_guests == Some(true) {
        return Err(Failure::input(
            "[pavillion]: clients with public keys (or guests) need secret_key or secret_key_file",
        ));
    }
    if f.psk_clients.is_empty() && f.key_clients.is_empty() && f.allow_guests != Some(true) {
        return Err(Failure::input(
            "[pavillion]: no credentials: add [[client]] entries (or allow_guests = true)",
        ));
    }
    if let Some(g) = f.multicast {
        c = c.multicast(g);
    }
    if f.reply_socket == Some(true) {
        c = c.reply_socket(ReplySocket::Ephemeral);
    }
    Ok(c)
}

fn upstream_config(u: &Upstream) -> Result<ClientConfig, Failure> {
    let at =
        |m: String| Failure::input(format!("[[upstream]] {:?} (line {}): {m}", u.name, u.line));
    let k = &u.keys;
    let file = |p: &PathBuf, what: &str| KeyFile::read(p, what).map_err(at);
    let id = match (&k.id, &k.id_file) {
        (Some(s), None) => Some(std_keys::parse_client_id(s).map_err(|e| at(format!("id: {e}")))?),
        (None, Some(p)) => Some(file(p, "id_file")?.client_id("id_file").map_err(at)?),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(at("give id or id_file, not both".into())),
    };
    let psk = match (&k.psk, &k.psk_file) {
        (Some(s), None) => Some(std_keys::parse_psk(s).map_err(|e| at(format!("psk: {e}")))?),
        (None, Some(p)) => Some(file(p, "psk_file")?.psk("psk_file").map_err(at)?),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(at("give psk or psk_file, not both".into())),
    };
    if let Some(psk) = psk {
        let id = id.ok_or_else(|| at("a PSK needs an id".into()))?;
        return Ok(ClientConfig::psk(id, psk));
    }
    let secret = match &k.secret_key_file {
        Some(p) => file(p, "secret_key_file")?
            .secret_key("secret_key_file")
            .map_err(at)?,
        None => return Err(at("needs psk/psk_file or secret_key_file".into())),
    };
    let server = match (&k.server_key, &k.server_key_file) {
        (Some(s), None) => {
            std_keys::parse_public_key(s).map_err(|e| at(format!("server_key: {e}")))?
        }
        (None, Some(p)) => file(p, "server_key_file")?
            .public_key("server_key_file")
            .map_err(at)?,
        _ => return Err(at("needs one of server_key, server_key_file".into())),
    };
    let id = id.unwrap_or_else(|| pavillion_proto::crypto::ecc::default_client_id(secret.public()));
    Ok(match k.suite.as_deref() {
        Some("noise") => ClientConfig::noise_ik(id, secret, server),
        None | Some("ecc") => ClientConfig::ecc(id, secret, server),
        Some(other) => return Err(at(format!("suite: expected ecc or noise, not {other:?}"))),
    })
}

fn event(json: bool, text: String, value: serde_json::Value) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub(crate) fn run(json: bool, a: BridgeArgs) -> Result<(), Failure> {
    let (config, server_file) = load(&a.config)?;
    let broker = format!(
        "{}://{}:{}",
        match config.mqtt.transport {
            config::Transport::Tcp => "mqtt",
            config::Transport::Tls => "mqtts",
        },
        config.mqtt.host,
        config.mqtt.port
    );
    let server = match &server_file {
        Some(f) => {
            let listen = f.listen.unwrap_or_else(|| {
                std::net::SocketAddr::from(([0, 0, 0, 0], pavillion_std::DEFAULT_PORT))
            });
            let s = Server::bind(listen, server_config(f)?)
                .map_err(|e| Failure::failed("bind", format!("cannot serve on {listen}: {e}")))?;
            Some(s)
        }
        None => None,
    };
    if let Some(s) = &server {
        event(
            json,
            format!("listening on {}", s.local_addr()),
            json!({"event": "listening", "addr": s.local_addr().to_string()}),
        );
    }
    let mut upstream = Vec::new();
    for u in &config.upstream {
        let addr = std_keys::parse_addr(&u.address)
            .map_err(|e| Failure::input(format!("[[upstream]] {:?} address: {e}", u.name)))?;
        if u.min_acks > 1 && !config::is_group_address(addr.ip()) {
            // The file named a host: known only now that it is resolved.
            return Err(Failure::input(format!(
                "[[upstream]] {:?} (line {}): min_acks above 1 needs a group address, not {addr}",
                u.name, u.line
            )));
        }
        let client = Client::connect(addr, upstream_config(u)?)
            .map_err(|e| Failure::failed("connect", format!("upstream {}: {e}", u.name)))?;
        upstream.push((u.name.clone(), client));
    }
    let (tx, inputs) = common::inputs::<bool>();
    let bridge = Bridge::start(config, server, upstream)
        .map_err(|e| Failure::input(format!("--config {}: {e}", a.config.display())))?;
    {
        let tx = tx.clone();
        bridge.mqtt().on_connect(move |_| {
            let _ = tx.send(common::Input::Item(true));
        });
    }
    if bridge.mqtt().is_connected() {
        let _ = tx.send(common::Input::Item(true));
    }
    let deadline = a.duration.map(|d| Instant::now() + d);
    let mut tick = a.verbose.then(|| Instant::now() + a.interval);
    loop {
        match next_input(&inputs, deadline, tick) {
            Ok(_) => {
                let n = bridge.mqtt().stats().connects.load(Ordering::Relaxed);
                event(
                    json,
                    format!("connected to broker {broker} (connection {n})"),
                    json!({"event": "connected", "broker": broker, "connection": n}),
                );
            }
            Err(Ended::Tick) => {
                let c = bridge.counters();
                event(
                    json,
                    c.line(),
                    json!({
                        "event": "counts",
                        "to_mqtt": c.to_mqtt.load(Ordering::Relaxed),
                        "to_mqtt_failed": c.to_mqtt_failed.load(Ordering::Relaxed),
                        "to_mqtt_unmapped": c.to_mqtt_unmapped.load(Ordering::Relaxed),
                        "from_mqtt": c.from_mqtt.load(Ordering::Relaxed),
                        "from_mqtt_failed": c.from_mqtt_failed.load(Ordering::Relaxed),
                        "from_mqtt_dead_lettered": c.from_mqtt_dead_lettered.load(Ordering::Relaxed),
                        "from_mqtt_no_receiver": c.from_mqtt_no_receiver.load(Ordering::Relaxed),
                    }),
                );
                tick = Some(Instant::now() + a.interval);
            }
            Err(Ended::Deadline | Ended::Stopped) => break,
        }
    }
    bridge.close();
    print_stopped(json);
    Ok(())
}
