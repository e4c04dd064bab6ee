//! NAT mappings that change, and an on-path adversary.

extern crate alloc;

mod common;

use core::net::SocketAddr;
use core::time::Duration;

use common::*;
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::endpoint::{ClientConfig, ServerConfig, ServerEvent};
use pavillion_proto::Duration as PDuration;
use pavillion_sim::{
    Attack, DatagramKind, Fate, MiddleboxConfig, Route, SimConfig, Simulation, SERVER_PORT,
};

/// A server, a NAT whose mappings expire after 5 s, and a client behind it that sends ten
/// messages at 1 s and ten more at 20 s, long after its first mapping expired.
fn nat_run(client: impl FnOnce(SocketAddr) -> ClientConfig, server: ServerConfig) -> Simulation {
    let config = SimConfig::new(31).with_duration(Duration::from_secs(40));
    let mut sim = Simulation::new(config).unwrap();
    let server = sim.add_server("server", server, |_, _| {}).unwrap();
    let route = Route {
        inside_port: SERVER_PORT,
        destination: server,
    };
    let nat = MiddleboxConfig::nat(vec![route], PDuration::from_secs(5));
    let nat_ip = sim.add_middlebox("nat", nat).unwrap();
    let mut cfg = client(SocketAddr::new(nat_ip, SERVER_PORT));
    // Silence between the bursts is what lets the mapping expire.
    cfg.keepalive = None;
    let script = sender(Duration::from_secs(1), Duration::from_millis(10), 10).at(
        Duration::from_secs(20),
        |ctl| {
            for i in 10..20 {
                let opts = pavillion_proto::endpoint::SendOptions::reliable()
                    .with_timeout(PDuration::from_secs(10));
                ctl.send_message("t", "n", i.to_string().as_bytes(), opts)
                    .unwrap();
            }
        },
    );
    sim.add_client("client", cfg, script).unwrap();
    sim.place_behind("client", "nat").unwrap();
    sim.run().unwrap();
    sim
}

fn assert_survives_mapping_change(sim: &Simulation) {
    let trace = sim.trace();
    assert_exactly_once(&trace, "server", 20);
    assert_eq!(delivered(&trace, "client").len(), 20);
    let maps: Vec<&str> = trace
        .notes("nat")
        .filter(|(_, n)| n.starts_with("map "))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(maps.len(), 2, "{maps:?}");
    assert_ne!(maps[0], maps[1], "the mapped port must change");
    // The server saw the client from two public addresses: two handshakes.
    let sources: alloc::collections::BTreeSet<SocketAddr> = trace
        .server_events("server")
        .filter_map(|(_, e)| match e {
            ServerEvent::Connected { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    let nat_ip = sim.ip("nat").unwrap();
    assert!(sources.iter().all(|a| a.ip() == nat_ip));
}

#[test]
fn psk_client_behind_nat_survives_a_mapping_change() {
    let sim = nat_run(client_config, server_config());
    assert_survives_mapping_change(&sim);
}

#[test]
fn ecc_client_behind_nat_survives_a_mapping_change() {
    let server_keys = KeyPair::from_secret_bytes([3; 32]);
    let client_keys = KeyPair::from_secret_bytes([4; 32]);
    let server = ServerConfig::new([0; 32])
        .with_keys(server_keys.clone())
        .with_ecc_client(ID, *client_keys.public());
    let sim = nat_run(
        |addr| ClientConfig::ecc(ID, client_keys, *server_keys.public(), addr, [0; 32]),
        server,
    );
    assert_survives_mapping_change(&sim);
}

#[test]
fn adversary_replay_bit_flips_forgery_and_flood_cause_no_duplicates() {
    let config = SimConfig::new(32).with_duration(Duration::from_secs(30));
    let mut sim = Simulation::new(config).unwrap();
    let server = sim
        .add_server("server", server_config(), |_, _| {})
        .unwrap();
    let route = Route {
        inside_port: SERVER_PORT,
        destination: server,
    };
    let adversary = MiddleboxConfig::adversary(vec![route])
        .with_attack(Duration::from_millis(1500), Attack::Replay { count: 200 })
        .with_attack(Duration::from_millis(2000), Attack::FlipBits { count: 10 })
        .with_attack(Duration::from_millis(2500), Attack::Forge { count: 50 })
        .with_attack(
            Duration::from_millis(3000),
            Attack::Flood {
                target: server,
                count: 2000,
                sources: 100,
                client_id: Some(ID),
            },
        )
        .with_attack(Duration::from_millis(6000), Attack::Replay { count: 400 });
    let adv_ip = sim.add_middlebox("adversary", adversary).unwrap();
    let first = sender(Duration::from_millis(100), Duration::from_millis(10), 50);
    let script = first.repeat(
        Duration::from_millis(2000),
        Duration::from_millis(40),
        50,
        |ctl, i| {
            let opts = pavillion_proto::endpoint::SendOptions::reliable()
                .with_timeout(PDuration::from_secs(20));
            ctl.send_message("t", "n", (50 + i).to_string().as_bytes(), opts)
                .unwrap();
        },
    );
    let cfg = client_config(SocketAddr::new(adv_ip, SERVER_PORT));
    sim.add_client("client", cfg, script).unwrap();
    sim.place_behind("client", "adversary").unwrap();
    sim.run().unwrap();

    let trace = sim.trace();
    assert_exactly_once(&trace, "server", 100);
    assert_eq!(delivered(&trace, "client").len(), 100);
    let flood = trace
        .datagrams()
        .filter(|d| d.host.as_ref() == "adversary" && d.kind == DatagramKind::Setup(1))
        .filter(|d| d.from.port() >= 50000)
        .count();
    assert_eq!(flood, 2000);
    let flips = trace
        .notes("adversary")
        .filter(|(_, n)| n.starts_with("flip"))
        .count();
    assert_eq!(flips, 10);
    assert!(trace
        .datagrams()
        .all(|d| d.fate != Fate::Blocked || d.host.as_ref() == "adversary"));
}

/// A private server and a private client behind one NAT; the client's route points at the
/// NAT's own public address (the server's mapping), so only hairpin forwarding connects them.
fn hairpin_run(hairpin: bool) -> Simulation {
    let config = SimConfig::new(33).with_duration(Duration::from_secs(5));
    let mut sim = Simulation::new(config).unwrap();
    // An unspecified address stands for the NAT's own: the sink is a closed port of the NAT,
    // and the client's route leads to the NAT's first public port.
    let routes = vec![
        Route {
            inside_port: 1785,
            destination: "0.0.0.0:9".parse().unwrap(),
        },
        Route {
            inside_port: SERVER_PORT,
            destination: "0.0.0.0:20000".parse().unwrap(),
        },
    ];
    let nat = MiddleboxConfig::nat(routes, PDuration::from_secs(60)).with_hairpin(hairpin);
    let nat_ip = sim.add_middlebox("nat", nat).unwrap();
    // The private server announces itself at start, which gives it that first public port
    // before the client sends anything.
    let mut server = server_config();
    server.announce = Some(SocketAddr::new(nat_ip, 1785));
    sim.add_server("server", server, |_, _| {}).unwrap();
    let cfg = client_config(SocketAddr::new(nat_ip, SERVER_PORT));
    let script = sender(Duration::from_secs(1), Duration::from_millis(10), 5);
    sim.add_client("client", cfg, script).unwrap();
    sim.place_behind("server", "nat").unwrap();
    sim.place_behind("client", "nat").unwrap();
    sim.run().unwrap();
    sim
}

#[test]
fn hairpin_connects_private_hosts_only_when_enabled() {
    let sim = hairpin_run(true);
    assert_exactly_once(&sim.trace(), "server", 5);
    let sim = hairpin_run(false);
    let trace = sim.trace();
    assert!(received(&trace, "server").is_empty());
    assert!(trace
        .datagrams()
        .any(|d| d.host.as_ref() == "nat" && d.fate == Fate::Blocked));
}
