//! `pav relay`: a relay of the mesh on one interface, carrying the broadcasts (and chosen
//! multicast groups) of some ports to and from the other relays; prints peers going up and
//! down, the emitter election and counters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use pavillion_io::segment::{self, Emission, Interface};
use pavillion_proto::crypto::ecc::PublicKey;
use pavillion_proto::endpoint::{RelayConfig, RelayEvent, RelayStats};
use pavillion_std::keys::{self as keys, random32};
use pavillion_std::relay::{RelayNotice, RelayOptions, SegmentOptions};
use pavillion_std::Relay;
use serde::Deserialize;
use serde_json::json;

use crate::common::{self, next_input, Ended, Failure};
use crate::keys::KeyFile;

/// How the relay emits on its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SourceMode {
    /// With the original source (raw socket, needs CAP_NET_RAW); fail if impossible.
    Keep,
    /// From the mesh socket (replies go to the relay and are lost).
    Relay,
    /// Keep if possible, else relay, with a warning.
    Auto,
}

#[derive(Args, Debug)]
pub(crate) struct RelayArgs {
    /// Our X25519 secret key file (from `pav keygen --out DIR`).
    #[arg(long, env = "PAV_RELAY_KEY", value_name = "FILE")]
    key: PathBuf,
    /// Segment interface for capture and emission [default: the first up, non-loopback IPv4
    /// interface].
    #[arg(long, env = "PAV_RELAY_INTERFACE", value_name = "IFACE")]
    interface: Option<String>,
    /// Carried broadcast ports (repeatable, or a comma list).
    #[arg(
        long = "port",
        env = "PAV_RELAY_PORTS",
        value_delimiter = ',',
        default_value = "5076"
    )]
    ports: Vec<u16>,
    /// Multicast groups to carry too (joined on the interface; repeatable or a comma list).
    #[arg(long = "group", env = "PAV_RELAY_GROUPS", value_delimiter = ',')]
    groups: Vec<Ipv4Addr>,
    /// The mesh port.
    #[arg(long, env = "PAV_RELAY_MESH_PORT", default_value_t = 7124)]
    mesh_port: u16,
    /// The mesh socket's address [default: 0.0.0.0:MESH-PORT].
    #[arg(long, env = "PAV_RELAY_MESH_BIND", value_name = "ADDR")]
    mesh_bind: Option<SocketAddr>,
    /// Another relay: ADDR=PUBKEY, the key as 64 hex characters or a path to a public.key file.
    #[arg(long = "peer", value_name = "ADDR=PUBKEY")]
    peers: Vec<String>,
    /// A relay key that may join by announcement (hex or a public.key file).
    #[arg(long = "trust", value_name = "PUBKEY")]
    trust: Vec<String>,
    /// Our segment's name [default: the interface's IPv4 network, e.g. 10.1.1.0/24].
    #[arg(long, env = "PAV_RELAY_SEGMENT")]
    segment: Option<String>,
    /// keep = raw sockets, fail if impossible; relay = emit from the mesh socket; auto = keep
    /// if possible, else relay, with a warning.
    #[arg(long, env = "PAV_RELAY_SOURCE", value_enum, default_value = "auto")]
    source: SourceMode,
    /// A TOML file with [[peer]] addr/key entries and trust = [...], for long lists.
    #[arg(long, env = "PAV_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the relay's counters (and its mesh sessions' RTT percentiles) every SECS.
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    stats: Option<Duration>,
    #[arg(long, value_name = "ADDR", value_parser = crate::live::metrics_addr, help = crate::live::METRICS_HELP)]
    metrics: Option<SocketAddr>,
    /// Exit 0 after SECS.
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    duration: Option<Duration>,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav keygen --out relay-a && pav keygen --out relay-b
  pav relay --key relay-a/secret.key --interface eth1 --peer 192.0.2.2:7124=relay-b/public.key
  pav relay --key relay-b/secret.key --interface eth1 --peer 192.0.2.1:7124=relay-a/public.key
  pav relay --key k/secret.key --port 5076,5064 --group 239.219.1.200 --stats 10

Every relay of the mesh captures the broadcasts of the carried ports on its interface and
sends them to the others over authenticated suite 3 sessions; one relay per segment (the
lowest id among those up) emits what arrives. With --source keep (or auto, as root) the
emission keeps the original sender's address, so replies go straight to it; from the mesh
socket, replies reach the relay and are lost (PVAccess searches still work: they carry the
reply address). SIGTERM or Ctrl-C closes the sessions and exits 0.";

/// The configuration file: long peer and trust lists.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    peer: Vec<FilePeer>,
    #[serde(default)]
    trust: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FilePeer {
    addr: String,
    key: String,
}

/// A public key given as hex, or as a path to a key file (relative to `base`).
fn public_key(text: &str, base: &Path, what: &str) -> Result<PublicKey, Failure> {
    if let Ok(k) = keys::parse_public_key(text) {
        return Ok(k);
    }
    let path = common::relative_to(base, text);
    if !path.exists() {
        return Err(Failure::input(format!(
            "{what} {text:?}: neither 64 hex characters nor a readable key file"
        )));
    }
    KeyFile::read(&path, what)
        .and_then(|f| f.public_key(what))
        .map_err(Failure::input)
}

fn peer(text: &str, base: &Path) -> Result<(SocketAddr, PublicKey), Failure> {
    let (addr, key) = text
        .split_once('=')
        .ok_or_else(|| Failure::input(format!("--peer {text:?}: expected ADDR=PUBKEY")))?;
    let addr = keys::parse_addr(addr)
        .map_err(|e| Failure::input(format!("--peer {text:?}: address: {e}")))?;
    Ok((addr, public_key(key, base, "--peer")?))
}

pub(crate) fn run(json: bool, a: RelayArgs) -> Result<(), Failure> {
    let keypair = KeyFile::read(&a.key, "--key")
        .and_then(|f| f.secret_key("--key"))
        .map_err(Failure::input)?;
    let cwd = PathBuf::from(".");
    let mut peers = Vec::new();
    for p in &a.peers {
        peers.push(peer(p, &cwd)?);
    }
    let mut trusted = Vec::new();
    for t in &a.trust {
        trusted.push(public_key(t, &cwd, "--trust")?);
    }
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::input(format!("--config {}: {e}", path.display())))?;
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| Failure::input(format!("--config {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in &file.peer {
            peers.push(peer(&format!("{}={}", p.addr, p.key), base)?);
        }
        for t in &file.trust {
            trusted.push(public_key(t, base, "trust")?);
        }
    }
    if a.ports.is_empty() {
        return Err(Failure::input("--port: at least one port"));
    }
    // The mesh socket would capture the segment's broadcasts and answer them as mesh packets.
    let mesh_port = a.mesh_bind.map_or(a.mesh_port, |b| b.port());
    if a.ports.contains(&mesh_port) {
        return Err(Failure::input(format!(
            "--port {mesh_port}: the mesh port cannot also be a carried port"
        )));
    }

    let interface = match &a.interface {
        Some(name) => Interface::lookup(name),
        None => Interface::default_interface(),
    }
    .map_err(|e| Failure::input(format!("--interface: {e}")))?;
    let segment_name = a.segment.clone().unwrap_or_else(|| interface.network());
    if segment_name.len() > 64 {
        return Err(Failure::input("--segment: at most 64 bytes"));
    }
    let emission = match a.source {
        SourceMode::Relay => Emission::Relay,
        SourceMode::Keep => match segment::open_source_emitter(&interface.name) {
            Ok(e) => Emission::Keep(e),
            Err(e) => {
                return Err(Failure::failed(
                    "source",
                    format!("--source keep: cannot emit with the original source: {e}"),
                ))
            }
        },
        SourceMode::Auto => match segment::open_source_emitter(&interface.name) {
            Ok(e) => Emission::Keep(e),
            Err(e) => {
                eprintln!(
                    "warning: cannot emit with the original source ({e}); emitting from the \
                     mesh socket, so replies to carried datagrams reach this relay and are lost"
                );
                Emission::Relay
            }
        },
    };
    let source_name = emission.name();

    let mut config = RelayConfig::new(keypair, &segment_name, &a.ports, random32());
    for (addr, public) in peers {
        config = config.with_peer(addr, public);
    }
    for t in trusted {
        config = config.with_trusted(t);
    }
    let mesh_bind = a.mesh_bind.unwrap_or(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        a.mesh_port,
    ));
    let relay = Relay::open(RelayOptions {
        config,
        mesh_bind,
        segment: Some(SegmentOptions {
            interface: interface.clone(),
            groups: a.groups.clone(),
            emission,
        }),
    })
    .map_err(|e| Failure::failed("open", format!("cannot start the relay: {e}")))?;
    let relay = Arc::new(relay);

    let ports: Vec<String> = a.ports.iter().map(u16::to_string).collect();
    if json {
        println!(
            "{}",
            json!({"event": "started", "relay": relay.id().to_string(),
                   "mesh": relay.mesh_addr().to_string(), "segment": segment_name,
                   "ports": a.ports, "source": source_name})
        );
    } else {
        println!(
            "relay {} mesh {} segment {} ports {} source {}",
            relay.id(),
            relay.mesh_addr(),
            segment_name,
            ports.join(","),
            source_name
        );
    }

    // The core reports the election only when it changes; say where we start.
    if let Some(active) = relay.is_emitter() {
        print_event(json, &RelayEvent::Emitter { active });
    }

    let _exporter = a
        .metrics
        .map(|addr| crate::live::start_metrics(addr, |addr| relay.serve_metrics(addr)))
        .transpose()?;
    let (tx, inputs) = common::inputs::<RelayNotice>();
    let forwarder = {
        let relay = Arc::clone(&relay);
        common::Forwarder::start(tx, move |wait| relay.next_notice(wait))
    };

    let deadline = a.duration.map(|d| Instant::now() + d);
    let mut tick = a.stats.map(|s| Instant::now() + s);
    loop {
        match next_input(&inputs, deadline, tick) {
            Ok(RelayNotice::Event(e)) => print_event(json, &e),
            Ok(_) => {}
            Err(Ended::Tick) => {
                if let Some((s, mesh)) = relay.stats() {
                    print_stats(json, &s, &mesh);
                }
                tick = tick.zip(a.stats).map(|(t, s)| t + s);
            }
            Err(Ended::Deadline | Ended::Stopped) => break,
        }
    }
    let last = relay.stats();
    relay.close();
    forwarder.stop();
    if let Some((s, mesh)) = last {
        print_stats(json, &s, &mesh);
    }
    Ok(())
}

fn print_event(json: bool, e: &RelayEvent) {
    let (text, value) = match e {
        RelayEvent::PeerUp {
            relay,
            addr,
            segment,
        } => (
            format!("peer up {relay} {addr} segment {segment}"),
            json!({"event": "peer_up", "relay": relay.to_string(), "addr": addr.to_string(),
                   "segment": segment}),
        ),
        RelayEvent::PeerDown { relay } => (
            format!("peer down {relay}"),
            json!({"event": "peer_down", "relay": relay.to_string()}),
        ),
        RelayEvent::PeerJoined { relay, addr } => (
            format!("peer joined {relay} {addr}"),
            json!({"event": "peer_joined", "relay": relay.to_string(),
                   "addr": addr.to_string()}),
        ),
        RelayEvent::Emitter { active } => (
            format!("emitter {}", if *active { "active" } else { "standby" }),
            json!({"event": "emitter", "active": active}),
        ),
        other => (
            format!("{other:?}"),
            json!({"event": "other", "detail": format!("{other:?}")}),
        ),
    };
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn print_stats(json: bool, s: &RelayStats, mesh: &pavillion_std::Stats) {
    if json {
        let drops: serde_json::Map<String, serde_json::Value> = s
            .drops()
            .map(|(r, n)| (r.name().to_string(), json!(n)))
            .collect();
        println!(
            "{}",
            json!({"event": "stats", "captured": s.captured, "carried": s.carried,
                   "received": s.received, "emitted": s.emitted, "forwarded": s.forwarded,
                   "standby": s.standby, "drops": drops, "rtt": crate::live::rtt_json(mesh)})
        );
    } else {
        let drops: Vec<String> = s
            .drops()
            .map(|(r, n)| format!("{}={n}", r.name()))
            .collect();
        println!(
            "stats captured={} carried={} received={} emitted={} forwarded={} standby={} drops: {}; {}",
            s.captured,
            s.carried,
            s.received,
            s.emitted,
            s.forwarded,
            s.standby,
            drops.join(" "),
            crate::live::rtt_text(mesh)
        );
    }
}
