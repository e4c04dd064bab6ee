//! Reboots, partitions and multicast groups.

extern crate alloc;

mod common;

use core::net::SocketAddr;
use core::time::Duration;

use common::*;
use pavillion_proto::endpoint::{Client, ClientEvent, SendOptions, ServerEvent};
use pavillion_proto::Duration as PDuration;
use pavillion_sim::{HostEvent, NetAction, Script, ServerSpec, SimConfig, Simulation, SERVER_PORT};

#[test]
fn server_bounce_mid_stream_recovers_and_queued_messages_arrive() {
    let config = SimConfig::new(21).with_duration(Duration::from_secs(20));
    let mut sim = Simulation::new(config).unwrap();
    let server = sim
        .add_server("server", server_config(), |_, _| {})
        .unwrap();
    let sender = sender(Duration::from_millis(100), Duration::from_millis(20), 100);
    sim.add_client("client", client_config(server), sender)
        .unwrap();
    // Down from 0.8 s to 2 s: messages sent meanwhile wait in the client's queue.
    sim.at(
        Duration::from_millis(800),
        NetAction::Crash("server".into()),
    );
    sim.at(Duration::from_secs(2), NetAction::Bounce("server".into()));
    sim.run().unwrap();

    let trace = sim.trace();
    let got = received(&trace, "server");
    for i in 0..100 {
        assert!(
            got.contains_key(&i.to_string()),
            "payload {i} never arrived"
        );
    }
    assert_eq!(delivered(&trace, "client").len(), 100);
    // Each incarnation delivers a payload at most once; only a message whose ACK died with
    // the first incarnation may reach the second again.
    let dupes = got.values().filter(|n| **n > 1).count();
    assert!(dupes <= 64, "{dupes} payloads arrived twice");
    assert!(trace.notes("server").any(|(_, n)| n == "start 1"));
    let connected = trace
        .client_events("client")
        .filter(|(_, e)| matches!(e, ClientEvent::Connected { .. }))
        .count();
    assert!(connected >= 2, "the client never re-handshook");
    // Stats survive the crash: one entry per incarnation.
    assert_eq!(sim.stats("server").len(), 2);
    assert!(sim.stats("client")[0].handshakes >= 2);
    assert!(sim.stats("nobody").is_empty());
}

#[test]
fn a_partition_that_heals_gives_peer_down_then_peer_up() {
    let config = SimConfig::new(22).with_duration(Duration::from_secs(20));
    let mut sim = Simulation::new(config).unwrap();
    let server_cfg = server_config().with_down_timeout(PDuration::from_secs(3));
    let server = sim.add_server("server", server_cfg, |_, _| {}).unwrap();
    let mut client_cfg = client_config(server);
    client_cfg.limits.down_timeout = PDuration::from_secs(3);
    client_cfg.keepalive = Some(PDuration::from_secs(1));
    let script = sender(Duration::from_millis(100), Duration::from_millis(100), 5);
    sim.add_client("client", client_cfg, script).unwrap();
    sim.at(
        Duration::from_secs(2),
        NetAction::Partition("client".into(), "server".into()),
    );
    sim.at(
        Duration::from_secs(10),
        NetAction::Repair("client".into(), "server".into()),
    );
    sim.run().unwrap();

    let trace = sim.trace();
    for host in ["client", "server"] {
        let seq: Vec<(u64, &str)> = trace
            .events(host)
            .filter_map(|(t, e)| match e {
                HostEvent::Client(ClientEvent::PeerDown { .. })
                | HostEvent::Server(ServerEvent::PeerDown { .. }) => Some((t.as_micros(), "down")),
                HostEvent::Client(ClientEvent::PeerUp { .. })
                | HostEvent::Server(ServerEvent::PeerUp { .. }) => Some((t.as_micros(), "up")),
                _ => None,
            })
            .collect();
        assert_eq!(
            seq.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            ["down", "up"],
            "{host}: {seq:?}"
        );
        assert!(
            (4_000_000..10_000_000).contains(&seq[0].0),
            "{host} down at {}",
            seq[0].0
        );
        assert!(seq[1].0 >= 10_000_000, "{host} up at {}", seq[1].0);
    }
}

#[test]
fn multicast_reaches_three_servers_through_the_group_table() {
    let config = SimConfig::new(23).with_duration(Duration::from_secs(10));
    let mut sim = Simulation::new(config).unwrap();
    let group: SocketAddr = "239.1.2.3:1783".parse().unwrap();
    let servers = ["s1", "s2", "s3"];
    for name in servers {
        let spec = ServerSpec::new(server_config()).with_subscription("t");
        sim.add_server(name, spec, |_, _| {}).unwrap();
        sim.join(group, name, SERVER_PORT).unwrap();
    }
    let script = Script::<Client>::new().repeat(
        Duration::from_secs(3),
        Duration::from_millis(50),
        10,
        |ctl, i| {
            let opts = SendOptions::reliable().with_timeout(PDuration::from_secs(5));
            ctl.send_message("t", "n", i.to_string().as_bytes(), opts)
                .unwrap();
        },
    );
    sim.add_client("client", client_config(group), script)
        .unwrap();
    sim.run().unwrap();

    let trace = sim.trace();
    for name in servers {
        assert_exactly_once(&trace, name, 10);
    }
    let full: Vec<usize> = trace
        .client_events("client")
        .filter_map(|(_, e)| match e {
            ClientEvent::Delivered { acked, missing, .. } if missing.is_empty() => {
                Some(acked.len())
            }
            _ => None,
        })
        .collect();
    assert_eq!(full, vec![3; 10], "every message acknowledged by all three");
    // The client sent to the group; the driver fanned it out to each member.
    let client_ip = sim.ip("client").unwrap();
    let fanned: alloc::collections::BTreeSet<SocketAddr> = trace
        .datagrams()
        .filter(|d| d.from.ip() == client_ip)
        .map(|d| d.to)
        .collect();
    assert_eq!(fanned.len(), 3, "{fanned:?}");
}

#[test]
fn a_hold_delays_delivery_until_release_without_duplicates() {
    let config = SimConfig::new(24).with_duration(Duration::from_secs(10));
    let mut sim = Simulation::new(config).unwrap();
    let server = sim
        .add_server("server", server_config(), |_, _| {})
        .unwrap();
    let script = sender(Duration::from_millis(1500), Duration::from_millis(10), 10);
    sim.add_client("client", client_config(server), script)
        .unwrap();
    sim.at(
        Duration::from_secs(1),
        NetAction::Hold("client".into(), "server".into()),
    );
    sim.at(
        Duration::from_secs(4),
        NetAction::Release("client".into(), "server".into()),
    );
    sim.run().unwrap();

    let trace = sim.trace();
    assert_exactly_once(&trace, "server", 10);
    let first = trace
        .server_events("server")
        .find(|(_, e)| matches!(e, ServerEvent::Message { .. }))
        .map(|(t, _)| t.as_micros());
    assert!(
        first >= Some(4_000_000),
        "delivered during the hold: {first:?}"
    );
}

#[test]
fn clients_sharing_a_host_are_separate_endpoints() {
    use pavillion_proto::endpoint::{ClientConfig, ServerConfig};
    use pavillion_proto::ClientId;
    use pavillion_sim::ClientSpec;

    let config = SimConfig::new(25).with_duration(Duration::from_secs(3));
    let mut sim = Simulation::new(config).unwrap();
    let ids: Vec<ClientId> = (0..3u8).map(|i| ClientId([i; 16])).collect();
    let mut server_cfg = ServerConfig::new([0; 32]);
    for id in &ids {
        server_cfg = server_cfg.with_psk_client(*id, psk());
    }
    let server = sim.add_server("server", server_cfg, |_, _| {}).unwrap();
    let clients = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let spec = ClientSpec {
                config: ClientConfig::psk(*id, psk(), server, [0; 32]),
                port: 40000 + i as u16,
                store: None,
            };
            let script = Script::<Client>::new().at(Duration::from_millis(100), move |ctl| {
                ctl.send_message("t", "n", &[i as u8], SendOptions::reliable())
                    .unwrap();
            });
            (format!("c{i}"), spec, script)
        })
        .collect();
    let addrs = sim.add_clients("crowd", clients).unwrap();
    assert_eq!(addrs.len(), 3);
    assert!(addrs.iter().all(|a| a.ip() == sim.ip("crowd").unwrap()));
    sim.run().unwrap();

    let trace = sim.trace();
    for i in 0..3 {
        let name = format!("c{i}");
        assert_eq!(delivered(&trace, &name).len(), 1, "{name}");
        assert_eq!(sim.stats(&name)[0].handshakes, 1, "{name}");
    }
    assert_eq!(received(&trace, "server").len(), 3);
    drop(trace);
    let dup = sim.add_clients(
        "other",
        vec![("c1".into(), client_config(server).into(), Script::new())],
    );
    assert!(dup.is_err());
}

#[test]
fn deferred_actions_run_at_their_time_and_die_with_a_crash() {
    use pavillion_proto::endpoint::Server;
    use pavillion_proto::Instant;

    let config = SimConfig::new(23).with_duration(Duration::from_secs(5));
    let mut sim = Simulation::new(config).unwrap();
    let script = Script::<Server>::new().at(Duration::from_secs(1), |ctl| {
        ctl.after(Duration::from_millis(500), |ctl| {
            ctl.note("a");
            // An action may defer another.
            ctl.after(Duration::from_millis(100), |ctl| ctl.note("c"));
        });
        // Due after the crash at 2 s: it dies with the incarnation that deferred it.
        ctl.after(Duration::from_secs(2), |ctl| ctl.note("b"));
    });
    sim.add_server_script("server", ServerSpec::new(server_config()), script)
        .unwrap();
    sim.at(Duration::from_secs(2), NetAction::Crash("server".into()));
    sim.at(
        Duration::from_millis(2500),
        NetAction::Bounce("server".into()),
    );
    sim.run().unwrap();

    let trace = sim.trace();
    let notes: Vec<(Instant, &str)> = trace
        .notes("server")
        .filter(|(_, n)| ["a", "b", "c"].contains(n))
        .collect();
    assert_eq!(
        notes,
        [
            (Instant::from_millis(1500), "a"),
            (Instant::from_millis(1600), "c")
        ]
    );
}
