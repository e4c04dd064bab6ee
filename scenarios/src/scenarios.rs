//! The scenarios themselves: each builds a network, runs it and asserts on its outcome.
//!
//! Timings are simulated. Unless a scenario says otherwise, links delay every datagram by
//! 1 ms, a client sends reliable messages with unique payloads to one server, and a message
//! has 60 s to be acknowledged.

use core::net::SocketAddr;
use core::time::Duration;

use alloc::rc::Rc;
use core::cell::RefCell;

use pavillion_proto::endpoint::{
    Client, ClientEvent, DropReason, Register, SendOptions, ServerEvent,
};
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::{CipherId, Datagram, NonceRequest, RegisterId, RegisterValue, Setup};
use pavillion_proto::{ClientId, Instant};
use pavillion_sim::{
    is_spoofed, Attack, ClientSpec, HostEvent, LinkFaults, MiddleboxConfig, NetAction, Record,
    Route, Script, ServerSpec, CLIENT_PORT, SERVER_PORT,
};

use crate::harness::{ms, secs, unicast, Batch, Harness};
use crate::outcome::{Expect, Outcome};
use crate::{Params, Suite};

const SERVER: &str = "server";
const CLIENT: &str = "client";

/// One server and one client on `link` for `duration`, the client sending `batches`.
fn pair(p: &Params, duration: Duration, link: LinkFaults, batches: &[Batch]) -> Harness {
    let mut h = Harness::new(p, duration, link);
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(1)));
    h.client(CLIENT, p.suite.client_config(0, server), batches);
    h
}

fn connected(e: &HostEvent) -> bool {
    matches!(
        e,
        HostEvent::Client(ClientEvent::Connected { .. })
            | HostEvent::Server(ServerEvent::Connected { .. })
    )
}

/// Fails unless the session came back after the disruption, within `bound`.
fn expect_reconnect(out: &mut Outcome, bound: Duration) {
    let t = out.reconnect_time;
    out.check(t.is_some_and(|t| t <= bound), "reconnect", || match t {
        Some(t) => format!("took {t:?}, more than {bound:?}"),
        None => "the session never came back".into(),
    });
}

pub(crate) fn clean(p: &Params) -> Outcome {
    let batch = Batch::new(ms(100), ms(10), 100);
    let mut h = pair(p, secs(10), LinkFaults::clean(), &[batch]);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    if p.loss.is_none() {
        let (r, p99) = (out.retransmissions, out.latency.p99);
        out.check(r == 0, "retransmissions", || format!("{r} on a clean link"));
        // One handshake (two round trips) then one way: a few milliseconds at most.
        out.check(p99 <= ms(10), "latency", || {
            format!("p99 {p99:?} on a clean 1 ms link")
        });
    }
    out
}

/// 100 messages, one every 20 ms, over a link losing `loss` of the datagrams each way; at
/// least `percent` of them must reach the server within their 120 s deadline. The run lasts
/// past the last deadline, so every message gets its outcome.
///
/// The deadline is long because the handshake is: at 50% loss each attempt gets through
/// with odds of about one in four, and retries back off to one every 4 s, so a handshake
/// takes over a minute in a few percent of the seeds.
fn lossy(p: &Params, loss: f64, percent: u64) -> Outcome {
    let batch = Batch::new(ms(100), ms(20), 100).deadline(secs(120));
    let link = LinkFaults::clean().with_loss(loss);
    let mut h = pair(p, secs(125), link, &[batch]);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(percent);
    out
}

pub(crate) fn loss_10(p: &Params) -> Outcome {
    lossy(p, 0.1, 100)
}

pub(crate) fn loss_30(p: &Params) -> Outcome {
    lossy(p, 0.3, 100)
}

pub(crate) fn loss_50(p: &Params) -> Outcome {
    lossy(p, 0.5, 95)
}

pub(crate) fn dup_reorder(p: &Params) -> Outcome {
    let link = LinkFaults::clean()
        .with_duplicate(0.3)
        .with_reorder_jitter(ms(30));
    let batch = Batch::new(ms(100), ms(5), 100);
    let mut h = pair(p, secs(20), link, &[batch]);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    out
}

/// Ordered messages (op 36) on two targets in each direction, under 30% duplication, 30 ms
/// reordering jitter and 10% loss: every target's messages reach the application in send
/// order, each once, all of them (the "order" check).
pub(crate) fn ordered_delivery(p: &Params) -> Outcome {
    const EACH: usize = 100;
    let link = LinkFaults::clean()
        .with_loss(0.1)
        .with_duplicate(0.3)
        .with_reorder_jitter(ms(30));
    let a = Batch::new(ms(100), ms(5), EACH).ordered("a");
    let b = Batch::new(ms(102), ms(5), EACH).ordered("b");
    let mut h = Harness::new(p, secs(40), link);
    // The server sends its own ordered messages to the client once the session is up.
    let send = |ctl: &mut pavillion_sim::Ctl<'_, pavillion_proto::endpoint::Server>, i: usize| {
        let Some((to, _)) = ctl.endpoint().clients().next() else {
            return;
        };
        let opts = SendOptions::ordered().with_timeout(secs(60));
        for target in ["c", "d"] {
            let _ = ctl.send_message_to(to, target, "n", format!("s/{i}").as_bytes(), opts);
        }
    };
    let server = h.server_with(SERVER, ServerSpec::new(p.suite.server_config(1)), |s| {
        s.repeat(secs(3), ms(5), EACH, send)
    });
    h.client(CLIENT, p.suite.client_config(0, server), &[a, b]);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let at_server = h.events(SERVER, |e| match e {
        HostEvent::Server(ServerEvent::Message { message, .. }) => Some(message.clone()),
        _ => None,
    });
    let at_client = h.events(CLIENT, |e| match e {
        HostEvent::Client(ClientEvent::Message(message)) => Some(message.clone()),
        _ => None,
    });
    for (host, got, targets) in [
        (SERVER, at_server, ["a", "b"]),
        (CLIENT, at_client, ["c", "d"]),
    ] {
        for target in targets {
            let seq: Vec<usize> = got
                .iter()
                .filter(|(_, m)| m.target() == target)
                .filter_map(|(_, m)| {
                    let text = String::from_utf8_lossy(m.payload());
                    text.rsplit('/').next().and_then(|n| n.parse().ok())
                })
                .collect();
            let in_order = seq.windows(2).all(|w| w[0] < w[1]);
            out.check(in_order, "order", || {
                format!("{host} got {target} out of order or twice: {seq:?}")
            });
            // Client batches number their keys across batches ("b" starts at EACH).
            let n = seq.len();
            out.check(n == EACH, "order", || {
                format!("{host} got {n} of {EACH} ordered messages on {target}")
            });
        }
    }
    out
}

/// The server crashes at 0.8 s and restarts at 2 s; everything queued meanwhile arrives.
pub(crate) fn server_reboot(p: &Params) -> Outcome {
    const UP: Duration = secs(2);
    let batch = Batch::new(ms(100), ms(20), 100);
    let mut h = pair(p, secs(20), LinkFaults::clean(), &[batch]);
    h.sim.at(ms(800), NetAction::Crash(SERVER.into()));
    h.sim.at(UP, NetAction::Bounce(SERVER.into()));
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    out.reconnect_time = h.time_to(CLIENT, UP, connected);
    expect_reconnect(&mut out, secs(5));
    out
}

/// The server quits cleanly at 1.5 s (op 12 to the client, which has nothing pending: a
/// listener) and a new process starts at 3 s. The client must come back by itself within 1 s
/// of the restart, and every message it sends from 4 s on must arrive.
pub(crate) fn server_quit(p: &Params) -> Outcome {
    const QUIT: Duration = ms(1500);
    const UP: Duration = secs(3);
    let before = Batch::new(ms(100), ms(20), 50);
    let after = Batch::new(secs(4), ms(20), 50);
    let mut h = Harness::new(p, secs(10), LinkFaults::clean());
    let spec = ServerSpec::new(p.suite.server_config(1));
    let server = h.server_with(SERVER, spec, |s| {
        s.at(QUIT, |ctl| {
            let now = ctl.now();
            ctl.endpoint().close(now);
        })
    });
    // Keepalives out of the way: the quit alone must bring the client back.
    let mut config = p.suite.client_config(0, server);
    config.keepalive = None;
    h.client(CLIENT, config, &[before, after]);
    h.sim.at(QUIT + ms(1), NetAction::Crash(SERVER.into()));
    h.sim.at(UP, NetAction::Bounce(SERVER.into()));
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let quits = h.events(CLIENT, |e| match e {
        HostEvent::Client(ClientEvent::Disconnected { .. }) => Some(()),
        _ => None,
    });
    out.check(!quits.is_empty(), "quit", || {
        "the client never saw the server quit".into()
    });
    out.reconnect_time = h.time_to(CLIENT, UP, connected);
    expect_reconnect(&mut out, secs(1));
    out
}

/// The client crashes at 1 s and restarts at 1.5 s, forgetting what it had queued. What its
/// new incarnation sends must all arrive, and so must whatever the old one saw acknowledged.
pub(crate) fn client_reboot(p: &Params) -> Outcome {
    const UP: Duration = ms(1500);
    let batch = Batch::new(ms(100), ms(20), 100);
    let mut h = pair(p, secs(20), LinkFaults::clean(), &[batch]);
    h.sim.at(secs(1), NetAction::Crash(CLIENT.into()));
    h.sim.at(UP, NetAction::Bounce(CLIENT.into()));
    let mut out = h.run(unicast(SERVER));
    let missing: Vec<String> = h
        .sent()
        .into_iter()
        .filter(|m| m.at >= Instant::ZERO + UP)
        .filter(|m| h.receptions(SERVER, &m.key) == 0)
        .map(|m| m.key)
        .collect();
    out.check(missing.is_empty(), "delivered", || {
        format!("sent after the restart but never delivered: {missing:?}")
    });
    let hs = out.handshakes;
    out.check(hs >= 2, "handshakes", || {
        format!("{hs} handshakes; the restarted client must make a new one")
    });
    out.reconnect_time = h.time_to(CLIENT, UP, connected);
    expect_reconnect(&mut out, secs(2));
    out
}

/// The link is cut from 2 s to 10 s. Both sides must report the peer down, then up again,
/// and the messages sent meanwhile arrive after the repair.
pub(crate) fn partition(p: &Params) -> Outcome {
    const REPAIR: Duration = secs(10);
    let mut h = Harness::new(p, secs(30), LinkFaults::clean());
    let down = pavillion_proto::Duration::from_secs(3);
    let spec = ServerSpec::new(p.suite.server_config(1).with_down_timeout(down));
    let server = h.server(SERVER, spec);
    let mut config = p.suite.client_config(0, server);
    config.limits.down_timeout = down;
    config.keepalive = Some(secs(1));
    h.client(CLIENT, config, &[Batch::new(ms(100), ms(500), 30)]);
    h.sim
        .at(secs(2), NetAction::Partition(CLIENT.into(), SERVER.into()));
    h.sim
        .at(REPAIR, NetAction::Repair(CLIENT.into(), SERVER.into()));
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    for host in [CLIENT, SERVER] {
        let seq = h.events(host, |e| match e {
            HostEvent::Client(ClientEvent::PeerDown { .. })
            | HostEvent::Server(ServerEvent::PeerDown { .. }) => Some("down"),
            HostEvent::Client(ClientEvent::PeerUp { .. })
            | HostEvent::Server(ServerEvent::PeerUp { .. }) => Some("up"),
            _ => None,
        });
        let kinds: Vec<&str> = seq.iter().map(|(_, k)| *k).collect();
        let up_after_repair = seq
            .get(1)
            .is_some_and(|(t, _)| *t >= Instant::ZERO + REPAIR);
        out.check(
            kinds == ["down", "up"] && up_after_repair,
            "liveness",
            || format!("{host} reported {seq:?}, expected PeerDown then PeerUp after the repair"),
        );
    }
    out.reconnect_time = h.time_to(CLIENT, REPAIR, |e| {
        matches!(e, HostEvent::Client(ClientEvent::PeerUp { .. }))
    });
    expect_reconnect(&mut out, secs(5));
    out
}

/// Three servers on a multicast group and two clients sending to it. Server `s2` dies at
/// 4 s; server `s4`, down from the start, comes up at 6 s and announces itself to the
/// clients' group. Messages have a 3 s deadline.
pub(crate) fn multicast(p: &Params) -> Outcome {
    const DEATH: Duration = secs(4);
    const JOIN: Duration = secs(6);
    // A message is expected at a server that is up when it is sent, with margins for the
    // moments around a death and for the late server's handshake round to finish.
    const DEATH_MARGIN: Duration = ms(300);
    const JOIN_MARGIN: Duration = secs(3);
    let group: SocketAddr = ([239, 1, 2, 3], SERVER_PORT).into();
    let clients_group: SocketAddr = ([239, 1, 2, 4], CLIENT_PORT).into();
    let mut h = Harness::new(p, secs(16), LinkFaults::clean());
    let servers = ["s1", "s2", "s3", "s4"];
    let mut addrs = Vec::new();
    for name in servers {
        let mut config = p.suite.server_config(2);
        if name == "s4" {
            config.announce = Some(clients_group);
        }
        let spec = ServerSpec::new(config).with_subscription("t");
        addrs.push(h.server(name, spec));
        if let Err(e) = h.sim.join(group, name, SERVER_PORT) {
            h.setup_error(e);
        }
    }
    for (i, name) in ["c1", "c2"].into_iter().enumerate() {
        let batch = Batch::new(secs(1), ms(100), 100).deadline(secs(3));
        h.client(name, p.suite.client_config(i, group), &[batch]);
        if let Err(e) = h.sim.join(clients_group, name, CLIENT_PORT) {
            h.setup_error(e);
        }
    }
    h.sim.at(Duration::ZERO, NetAction::Crash("s4".into()));
    h.sim.at(JOIN, NetAction::Bounce("s4".into()));
    h.sim.at(DEATH, NetAction::Crash("s2".into()));
    let at = |d: Duration| Instant::ZERO + d;
    let addrs2 = addrs.clone();
    let mut out = h.run(|m| {
        let mut want = vec![0, 2];
        if m.at < at(DEATH - DEATH_MARGIN) {
            want.push(1);
        }
        if m.at >= at(JOIN + JOIN_MARGIN) {
            want.push(3);
        }
        want.into_iter()
            .map(|i| Expect {
                host: servers[i].into(),
                addr: addrs2.get(i).copied(),
            })
            .collect()
    });
    out.expect_delivered_percent(100);
    let dead = addrs[1];
    for c in ["c1", "c2"] {
        let named = h.events(c, |e| match e {
            HostEvent::Client(ClientEvent::Delivered { missing, .. })
                if missing.contains(&dead) =>
            {
                Some(())
            }
            _ => None,
        });
        out.check(!named.is_empty(), "missing", || {
            format!("{c} never named the dead server {dead} in an outcome")
        });
    }
    out.reconnect_time = h.time_to("s4", JOIN, connected);
    expect_reconnect(&mut out, JOIN_MARGIN);
    out
}

/// A client behind a NAT whose mappings expire after 5 s idle sends ten messages at 1 s and
/// ten at 20 s: the second burst leaves from a new public port. Suites 1 and 2 must
/// re-handshake; a suite that keeps its session across the change must not.
pub(crate) fn nat_rebind(p: &Params) -> Outcome {
    const REBIND: Duration = secs(20);
    let mut h = Harness::new(p, secs(40), LinkFaults::clean());
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(1)));
    let route = Route {
        inside_port: SERVER_PORT,
        destination: server,
    };
    let nat = MiddleboxConfig::nat(vec![route], secs(5));
    let nat_ip = match h.sim.add_middlebox("nat", nat) {
        Ok(ip) => ip,
        Err(e) => {
            h.setup_error(e);
            server.ip()
        }
    };
    let mut config = p
        .suite
        .client_config(0, SocketAddr::new(nat_ip, SERVER_PORT));
    // Silence between the bursts is what lets the mapping expire.
    config.keepalive = None;
    let batches = [
        Batch::new(secs(1), ms(10), 10),
        Batch::new(REBIND, ms(10), 10),
    ];
    h.client(CLIENT, config, &batches);
    if let Err(e) = h.sim.place_behind(CLIENT, "nat") {
        h.setup_error(e);
    }
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let maps = h
        .sim
        .trace()
        .notes("nat")
        .filter(|(_, n)| n.starts_with("map "))
        .count();
    out.check(maps == 2, "rebind", || {
        format!("{maps} NAT mappings, expected 2: the mapping must change once")
    });
    let hs = out.handshakes;
    if p.suite.keeps_session_on_rebind() {
        out.check(hs == 1, "handshakes", || {
            format!("{hs} handshakes; the session should survive the rebinding")
        });
        out.reconnect_time = Some(Duration::ZERO);
    } else {
        out.check(hs >= 2, "handshakes", || {
            format!("{hs} handshakes; the new address needs a new session")
        });
        out.reconnect_time = h.time_to(CLIENT, REBIND, connected);
        expect_reconnect(&mut out, secs(3));
    }
    out
}

/// A server and a client behind one NAT; the client reaches the server only through the
/// NAT's public address (the server's mapping), which needs hairpin forwarding.
pub(crate) fn hairpin(p: &Params) -> Outcome {
    let mut h = Harness::new(p, secs(10), LinkFaults::clean());
    // An unspecified address stands for the NAT's own: a route to a closed port of the NAT
    // (the server's announcement goes there, to open its mapping, the NAT's first public
    // port), and the client's route to that first public port.
    let routes = vec![
        Route {
            inside_port: 1785,
            destination: ([0, 0, 0, 0], 9).into(),
        },
        Route {
            inside_port: SERVER_PORT,
            destination: ([0, 0, 0, 0], 20000).into(),
        },
    ];
    let nat = MiddleboxConfig::nat(routes, secs(60)).with_hairpin(true);
    let nat_ip = match h.sim.add_middlebox("nat", nat) {
        Ok(ip) => ip,
        Err(e) => {
            h.setup_error(e);
            [0, 0, 0, 0].into()
        }
    };
    let mut config = p.suite.server_config(1);
    config.announce = Some(SocketAddr::new(nat_ip, 1785));
    h.server(SERVER, ServerSpec::new(config));
    let client = p
        .suite
        .client_config(0, SocketAddr::new(nat_ip, SERVER_PORT));
    h.client(CLIENT, client, &[Batch::new(secs(1), ms(10), 20)]);
    for host in [SERVER, CLIENT] {
        if let Err(e) = h.sim.place_behind(host, "nat") {
            h.setup_error(e);
        }
    }
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    out
}

/// A client behind an on-path adversary sends 50 messages from 0.1 s and 50 more from 2 s;
/// the adversary carries out `attacks`. Nothing may be delivered twice, and the real client's
/// messages all arrive.
fn attacked(p: &Params, attacks: &[(Duration, Attack)]) -> (Harness, Outcome) {
    let (h, out, _) = attacked_with(p, attacks, |_, _| {});
    (h, out)
}

/// As [`attacked`], with `more` adding hosts or events before the run (it gets the server's
/// address); the server admits clients 0 and 1.
fn attacked_with(
    p: &Params,
    attacks: &[(Duration, Attack)],
    more: impl FnOnce(&mut Harness, SocketAddr),
) -> (Harness, Outcome, SocketAddr) {
    let mut h = Harness::new(p, secs(30), LinkFaults::clean());
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(2)));
    let route = Route {
        inside_port: SERVER_PORT,
        destination: server,
    };
    let mut adversary = MiddleboxConfig::adversary(vec![route]);
    for (at, attack) in attacks {
        let attack = match attack {
            Attack::Flood {
                count,
                sources,
                client_id,
                ..
            } => Attack::Flood {
                target: server,
                count: *count,
                sources: *sources,
                client_id: *client_id,
            },
            a => a.clone(),
        };
        adversary = adversary.with_attack(*at, attack);
    }
    let ip = match h.sim.add_middlebox("adversary", adversary) {
        Ok(ip) => ip,
        Err(e) => {
            h.setup_error(e);
            server.ip()
        }
    };
    let batches = [
        Batch::new(ms(100), ms(10), 50).deadline(secs(20)),
        Batch::new(secs(2), ms(40), 50).deadline(secs(20)),
    ];
    h.client(
        CLIENT,
        p.suite.client_config(0, SocketAddr::new(ip, SERVER_PORT)),
        &batches,
    );
    if let Err(e) = h.sim.place_behind(CLIENT, "adversary") {
        h.setup_error(e);
    }
    more(&mut h, server);
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    (h, out, server)
}

/// The server's drop counters, summed over its incarnations.
fn server_drops(h: &Harness, reasons: &[DropReason]) -> u64 {
    h.sim
        .stats(SERVER)
        .iter()
        .map(|s| reasons.iter().map(|r| s.dropped(*r)).sum::<u64>())
        .sum()
}

pub(crate) fn adversary_replay(p: &Params) -> Outcome {
    let attacks = [
        (ms(1500), Attack::Replay { count: 200 }),
        (secs(6), Attack::Replay { count: 400 }),
    ];
    let (h, mut out) = attacked(p, &attacks);
    let rejected = server_drops(&h, &[DropReason::Duplicate, DropReason::TooOld]);
    out.check(rejected > 0, "replay", || {
        "the server rejected no replayed packet as a duplicate".into()
    });
    out
}

pub(crate) fn adversary_forgery(p: &Params) -> Outcome {
    let attacks = [
        (secs(2), Attack::FlipBits { count: 10 }),
        (ms(2500), Attack::Forge { count: 50 }),
    ];
    let (h, mut out) = attacked(p, &attacks);
    let forged = server_drops(&h, &[DropReason::Forged, DropReason::TooOld]);
    out.check(forged >= 50, "forgery", || {
        format!("the server rejected only {forged} of 50 forged packets")
    });
    out
}

/// Forged sources per second in the flood scenarios: 100 times the reply budget table's
/// 1024 slots, so the table is always full.
const FLOOD_RATE: u32 = 100_000;

/// A new client must connect within this of its start while the flood goes on.
const FLOOD_CONNECT_BOUND: Duration = secs(1);

/// What an off-path attacker floods a server of `p.suite` with, one of each in turn from each
/// new forged source: junk that looks like a session packet, and what the suite's server
/// answers without a session: nonce requests naming the real client (half-open state) and an
/// unknown one (suites 1 and 2), real initiations and data packets (suite 3). Real packets are
/// taken from an in-memory handshake of the same configurations.
fn flood_packets(p: &Params) -> Vec<Vec<u8>> {
    let server: SocketAddr = ([10, 0, 0, 1], SERVER_PORT).into();
    let mut net = Network::new(p.seed, Link::clean());
    net.add_server(server, p.suite.server_config(1));
    net.add_client(
        ([10, 0, 0, 2], CLIENT_PORT).into(),
        p.suite.client_config(0, server),
    );
    net.capture();
    net.run_for(pavillion_proto::Duration::from_millis(50));
    let mut session_junk = b"PavillionS0".to_vec();
    session_junk.extend_from_slice(&[0x5a; 25]);
    let mut packets = vec![session_junk];
    let mut taken = [false; 3];
    for d in net.captured().iter().filter(|d| d.to == server) {
        let slot = match Datagram::parse(&d.bytes) {
            Ok(Datagram::Setup(Setup::NonceRequest(_))) => 0,
            Ok(Datagram::Noise(pavillion_proto::wire::noise::NoisePacket::Initiation(_))) => 1,
            Ok(Datagram::Noise(pavillion_proto::wire::noise::NoisePacket::Data { .. })) => 2,
            _ => continue,
        };
        if !taken[slot] {
            taken[slot] = true;
            packets.push(d.bytes.clone());
        }
    }
    if taken[0] {
        let unknown = Setup::NonceRequest(NonceRequest {
            cipher: CipherId::Psk,
            client_id: ClientId([0xee; 16]),
            challenge: [1; 16],
            session_hint: [0; 16],
            public_key: [0; 32],
        });
        let mut buf = vec![0; unknown.buffer_len()];
        if let Ok(n) = unknown.emit(&mut buf) {
            buf.truncate(n);
            packets.push(buf);
        }
    }
    packets
}

/// The flood: `FLOOD_RATE` new forged sources a second at `target` for `duration`.
fn spoof_flood(p: &Params, target: SocketAddr, duration: Duration) -> Attack {
    Attack::SpoofFlood {
        target,
        source: None,
        per_second: FLOOD_RATE,
        duration,
        packets: flood_packets(p),
        random_tail: 16,
    }
}

/// Adds an off-path attacker host that floods `target` from `at` for `duration`.
fn add_flooder(h: &mut Harness, target: SocketAddr, at: Duration, duration: Duration) {
    let attack = spoof_flood(&h.params, target, duration);
    let attacker = MiddleboxConfig::adversary(Vec::new()).with_attack(at, attack);
    if let Err(e) = h.sim.add_middlebox("attacker", attacker) {
        h.setup_error(e);
    }
}

/// Checks that the flood reached the server, and that what the server sent to forged
/// sources is at most `1.07` times what they sent it (suite 2's 108-byte op 11 for a 101-byte
/// op 1) under suites 1 and 2, and at most as much under suite 3.
fn expect_no_amplification(out: &mut Outcome, h: &Harness, p: &Params, server: SocketAddr) {
    let (mut forged, mut replies) = (0u64, 0u64);
    for r in h.sim.trace().records() {
        if let Record::Datagram(d) = r {
            if is_spoofed(&d.from) && d.to == server {
                forged += d.len as u64;
            } else if d.from == server && is_spoofed(&d.to) {
                replies += d.len as u64;
            }
        }
    }
    let limit = if p.suite.number() == 3 { 1.0 } else { 1.07 };
    out.check(forged > 1_000_000, "flood", || {
        format!("the flood sent only {forged} bytes")
    });
    // The flood reached the limit: the reply budget table was full and evicting.
    let evictions: u64 = h.sim.stats(SERVER).iter().map(|s| s.budget_evictions).sum();
    out.check(evictions > 10_000, "flood", || {
        format!("only {evictions} reply budgets were evicted: the table never filled")
    });
    let ratio = replies as f64 / forged.max(1) as f64;
    out.check(ratio <= limit, "amplification", || {
        format!("the server sent {ratio:.3}x the forged bytes ({replies} for {forged})")
    });
}

/// Fails unless `host` connected within [`FLOOD_CONNECT_BOUND`] of `start`, and reports it.
fn expect_connect_under_flood(out: &mut Outcome, h: &Harness, host: &str, start: Duration) {
    let t = h.time_to(host, start, connected);
    out.reconnect_time = t;
    out.check(
        t.is_some_and(|t| t <= FLOOD_CONNECT_BOUND),
        "connect",
        || match t {
            Some(t) => format!("{host} connected {t:?} after it started, under the flood"),
            None => format!("{host} never connected under the flood"),
        },
    );
}

/// The on-path adversary floods from 100 of its ports (2000 requests naming the real client),
/// and an off-path attacker floods from 100k new forged sources a second, 1.5 s to 3.5 s.
/// The client behind the adversary keeps delivering, and a second client that starts at 2 s,
/// in the middle of the flood, connects within 1 s. No amplification.
pub(crate) fn adversary_flood(p: &Params) -> Outcome {
    const LATE: Duration = secs(2);
    let flood = Attack::Flood {
        // Replaced by the server's address in `attacked`.
        target: ([0, 0, 0, 0], 0).into(),
        count: 2000,
        sources: 100,
        client_id: Some(crate::suite::client_id(0)),
    };
    let (h, mut out, server) = attacked_with(p, &[(secs(3), flood)], |h, server| {
        add_flooder(h, server, ms(1500), secs(2));
        let batch = Batch::new(LATE, ms(50), 10).deadline(secs(20));
        h.client("late", p.suite.client_config(1, server), &[batch]);
        h.sim.at(Duration::ZERO, NetAction::Crash("late".into()));
        h.sim.at(LATE, NetAction::Bounce("late".into()));
    });
    let answered: u64 = h
        .sim
        .stats(SERVER)
        .iter()
        .map(|s| s.handshake_requests)
        .sum();
    // The port flood: ten replies per port per second at most.
    out.check(answered < 2000 + FLOOD_RATE as u64 * 2, "flood", || {
        format!("the server answered {answered} flooded requests")
    });
    expect_connect_under_flood(&mut out, &h, "late", LATE);
    expect_no_amplification(&mut out, &h, p, server);
    out
}

/// The flood starts before the client's first handshake: 100k new forged sources a second
/// from 0 s to 2 s; the client starts at 0.2 s and connects within 1 s, then delivers.
pub(crate) fn flood_first(p: &Params) -> Outcome {
    const START: Duration = ms(200);
    let mut h = Harness::new(p, secs(10), LinkFaults::clean());
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(1)));
    add_flooder(&mut h, server, Duration::ZERO, secs(2));
    let batch = Batch::new(START, ms(20), 50).deadline(secs(8));
    h.client(CLIENT, p.suite.client_config(0, server), &[batch]);
    h.sim.at(Duration::ZERO, NetAction::Crash(CLIENT.into()));
    h.sim.at(START, NetAction::Bounce(CLIENT.into()));
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    expect_connect_under_flood(&mut out, &h, CLIENT, START);
    expect_no_amplification(&mut out, &h, p, server);
    out
}

/// The server reboots under the flood: down from 1 s to 1.5 s, the flood from 0.8 s to
/// 3.5 s. The client (sending since 0.1 s) is back within 1 s of the server's return.
pub(crate) fn flood_reboot(p: &Params) -> Outcome {
    const UP: Duration = ms(1500);
    let mut h = Harness::new(p, secs(10), LinkFaults::clean());
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(1)));
    add_flooder(&mut h, server, ms(800), ms(2700));
    let batch = Batch::new(ms(100), ms(40), 100).deadline(secs(8));
    h.client(CLIENT, p.suite.client_config(0, server), &[batch]);
    h.sim.at(secs(1), NetAction::Crash(SERVER.into()));
    h.sim.at(UP, NetAction::Bounce(SERVER.into()));
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    expect_connect_under_flood(&mut out, &h, CLIENT, UP);
    expect_no_amplification(&mut out, &h, p, server);
    out
}

/// Most extra datagrams a client may send per second of a spoofed op 4/5/6 attack: one probe
/// (a keepalive) per `min_round_interval` (1 s) while its session is idle, none while it is
/// busy, and no re-handshake while the server answers (PROTOCOL §5.1). Suites 1 and 2 also
/// send the op 1 of the parallel round each claim opens (issue 19: a probe and an op 1 a
/// second), and never its client-info.
const SPOOFED_CLAIM_PROBES_PER_SECOND: u64 = 1;
const SPOOFED_CLAIM_DATAGRAMS_PER_SECOND_SUITES_1_2: u64 = 2;

/// An off-path attacker spoofs the server's address at the client: 1000 datagrams a second
/// of op 4, op 5 and op 6 (with random challenges) from 0.5 s to 10.5 s. The client sends 40
/// messages from 0.1 s, is idle from about 2.1 s to 6 s, and sends 40 more. Everything
/// arrives, the client makes no forced re-handshake (the server keeps answering), and it
/// sends at most one probe a second beyond its messages (and, suites 1 and 2, an op 1).
pub(crate) fn adversary_spoof(p: &Params) -> Outcome {
    const ATTACK: Duration = secs(10);
    let mut h = Harness::new(p, secs(12), LinkFaults::clean());
    let server = h.server(SERVER, ServerSpec::new(p.suite.server_config(1)));
    let batches = [
        Batch::new(ms(100), ms(50), 40).deadline(secs(10)),
        Batch::new(secs(6), ms(50), 40).deadline(secs(5)),
    ];
    let client = h.client(CLIENT, p.suite.client_config(0, server), &batches);
    let claims: Vec<Vec<u8>> = [
        Setup::UnrecognizedClient,
        Setup::NewServerJoin,
        Setup::InvalidClientId { challenge: [0; 16] },
    ]
    .iter()
    .filter_map(|s| {
        let mut buf = vec![0; s.buffer_len()];
        let n = s.emit(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    })
    .collect();
    let attack = Attack::SpoofFlood {
        target: client,
        source: Some(server),
        per_second: 1000,
        duration: ATTACK,
        packets: claims,
        random_tail: 0,
    };
    let attacker = MiddleboxConfig::adversary(Vec::new()).with_attack(ms(500), attack);
    if let Err(e) = h.sim.add_middlebox("attacker", attacker) {
        h.setup_error(e);
    }
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let hs = out.handshakes;
    out.check(hs == 1, "handshakes", || {
        format!(
            "{hs} handshakes: spoofed claims forced {} re-handshakes",
            hs.saturating_sub(1)
        )
    });
    let spoofed = |d: &pavillion_sim::DatagramRecord| d.host.as_ref() == "attacker";
    let (mut forged, mut from_client) = (0u64, 0u64);
    for r in h.sim.trace().records() {
        if let Record::Datagram(d) = r {
            if spoofed(d) && d.to == client {
                forged += 1;
            } else if d.from == client && d.to == server {
                from_client += 1;
            }
        }
    }
    out.check(forged >= 9_000, "spoof", || {
        format!("only {forged} spoofed claims")
    });
    // 80 messages and one handshake (2 datagrams, 3 with a retried client-info).
    let extra = from_client.saturating_sub(80 + 3);
    let per_second = if p.suite == Suite::Noise {
        SPOOFED_CLAIM_PROBES_PER_SECOND
    } else {
        SPOOFED_CLAIM_DATAGRAMS_PER_SECOND_SUITES_1_2
    };
    let bound = per_second * ATTACK.as_secs() + 2;
    out.check(extra <= bound, "probes", || {
        format!("{extra} datagrams beyond the messages and the handshake (at most {bound})")
    });
    out
}

/// Clients in the crowd scenario, and how many share one simulated host.
pub(crate) const CROWD: usize = 1000;
const CROWD_PER_HOST: usize = 100;

/// 1000 clients start within one second and each sends two messages to one server.
pub(crate) fn clients_1000(p: &Params) -> Outcome {
    crowd(p, CROWD, CROWD_PER_HOST)
}

/// 10,000 clients start within one second and each sends two messages to one server.
pub(crate) fn clients_10000(p: &Params) -> Outcome {
    // 1,000 to a host: the simulator's cost grows with the square of the hosts.
    crowd(p, 10 * CROWD, 10 * CROWD_PER_HOST)
}

/// `n` clients, `per_host` to a simulated host, start within one second (the first messages of
/// client `i` are due at 100 ms + i s / n) and each sends two messages to one server, which
/// is configured for all of them. Every client must connect and deliver both messages.
fn crowd(p: &Params, n: usize, per_host: usize) -> Outcome {
    let mut h = Harness::new(p, secs(15), LinkFaults::clean());
    let mut config = p.suite.server_config(n);
    // A server configured for n clients holds a session for each of them.
    config.max_sessions = config.max_sessions.max(n);
    let server = h.server(SERVER, ServerSpec::new(config));
    let spacing = secs(1) / n as u32;
    let width = (n - 1).to_string().len().max(4);
    let batches: Vec<[Batch; 1]> = (0..n)
        .map(|i| {
            let start = ms(100) + spacing * i as u32;
            [Batch::new(start, ms(500), 2).deadline(secs(10))]
        })
        .collect();
    for host in 0..n / per_host {
        let clients = (host * per_host..(host + 1) * per_host)
            .map(|i| {
                let spec = ClientSpec {
                    config: p.suite.client_config(i, server),
                    port: CLIENT_PORT + (i % per_host) as u16,
                    store: None,
                };
                (format!("c{i:0width$}"), spec, &batches[i][..])
            })
            .collect();
        h.crowd(&format!("crowd{host}"), clients);
    }
    let mut out = h.run(unicast(SERVER));
    out.expect_delivered_percent(100);
    let peers: std::collections::HashSet<_> = h
        .events(SERVER, |e| match e {
            HostEvent::Server(ServerEvent::Connected { peer, .. }) => Some(*peer),
            _ => None,
        })
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let connected = peers.len();
    out.check(connected == n, "connected", || {
        format!("{connected} of {n} clients connected")
    });
    out
}

/// A client observes a register that the server changes every 100 ms; the server crashes at
/// 3 s and restarts at 4 s (declaring the register again, at its initial value). Every change
/// the new server makes once the client's observation is renewed on the new session must be
/// notified: the row's delivered/sent is notified/expected changes.
pub(crate) fn register_observe(p: &Params) -> Outcome {
    const DOWN: Duration = secs(3);
    const UP: Duration = secs(4);
    const REG: RegisterId = RegisterId(1);
    let mut h = Harness::new(p, secs(10), LinkFaults::clean());
    // Every change the server makes: when, and the value.
    let changes: Rc<RefCell<Vec<(Duration, u64)>>> = Rc::default();
    let log = changes.clone();
    let server = h.server_with(SERVER, ServerSpec::new(p.suite.server_config(1)), |s| {
        // This server gets no messages, so its ledger's start record is not needed: the
        // start hook declares the register instead, as a device does at every boot.
        s.on_start(|ctl| {
            let declared = ctl.endpoint().declare_register(Register {
                number: REG,
                name: "counter".into(),
                unit: String::new(),
                writable: false,
                value: RegisterValue::U64(0),
            });
            if let Err(e) = declared {
                ctl.note(format!("declare failed: {e}"));
            }
        })
        .repeat(ms(500), ms(100), 95, move |ctl, i| {
            let now = ctl.now();
            let value = 1 + i as u64;
            if ctl
                .endpoint()
                .set_register(now, REG, RegisterValue::U64(value))
                .is_ok()
            {
                log.borrow_mut()
                    .push((now.saturating_duration_since(Instant::ZERO), value));
            }
        })
    });
    let mut config = p.suite.client_config(0, server);
    // An observer only listens: its keepalive is what finds the rebooted server.
    config.keepalive = Some(ms(500));
    h.client_with(CLIENT, config, &[], |s: Script<Client>| {
        s.at(ms(300), |ctl| {
            let now = ctl.now();
            if let Err(e) = ctl.endpoint().observe(now, REG, secs(600), ms(10)) {
                ctl.note(format!("observe refused: {e}"));
            }
        })
    });
    h.sim.at(DOWN, NetAction::Crash(SERVER.into()));
    h.sim.at(UP, NetAction::Bounce(SERVER.into()));
    let mut out = h.run(unicast(SERVER));
    let notified = h.events(CLIENT, |e| match e {
        HostEvent::Client(ClientEvent::RegisterNotified {
            value: RegisterValue::U64(v),
            ..
        }) => Some(*v),
        _ => None,
    });
    // The observation is back once its renewal is answered: the first notification after UP.
    let back = notified
        .iter()
        .find(|(at, _)| *at >= Instant::ZERO + UP)
        .map(|(at, _)| at.saturating_duration_since(Instant::ZERO));
    let expected: Vec<u64> = changes
        .borrow()
        .iter()
        .filter(|(at, _)| back.is_some_and(|b| *at > b))
        .map(|(_, v)| *v)
        .collect();
    let after: Vec<u64> = notified
        .iter()
        .filter(|(at, _)| back.is_some_and(|b| at.saturating_duration_since(Instant::ZERO) > b))
        .map(|(_, v)| *v)
        .collect();
    out.sent = expected.len() as u64;
    out.delivered = expected.iter().filter(|v| after.contains(v)).count() as u64;
    out.reconnect_time = back.map(|b| b.saturating_sub(UP));
    out.check(back.is_some(), "renewed", || {
        "the observation was never renewed after the reboot".into()
    });
    out.check(!expected.is_empty(), "changes", || {
        "the server made no change after the observation came back".into()
    });
    out.expect_delivered_percent(100);
    expect_reconnect(&mut out, secs(2));
    out
}
