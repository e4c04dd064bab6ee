//! Registers and observe (opcodes 6 to 10, `docs/PROTOCOL.md` §9.8) over the in-memory
//! network, on suites 1, 2 and 3.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use common::{client_addr, server_addr, Suite, SUITES};
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, DropReason, Register, RegisterError, RegisterFailure, RegisterOpId,
    SendOptions, Server, ServerConfig, ServerEvent,
};
use pavillion_proto::testing::{Link, Network, Node};
use pavillion_proto::wire::{RegisterId, RegisterStatus, RegisterType, RegisterValue};
use pavillion_proto::{ClientId, Duration};

const ID: ClientId = ClientId(*b"register-client!");
const TEMP: RegisterId = RegisterId(1);
const LABEL: RegisterId = RegisterId(2);
const SETPOINT: RegisterId = RegisterId(7);

fn server_config(suite: Suite, seed: u8) -> ServerConfig {
    common::server_config(suite, ID, seed)
}

fn client_config(suite: Suite, seed: u8) -> ClientConfig {
    let mut c = common::client_config(suite, ID, server_addr(), seed);
    c.keepalive = Some(Duration::from_millis(500));
    c
}

fn declare(server: &mut Server) {
    let regs = [
        (TEMP, "temp", "C", false, RegisterValue::F32(20.0)),
        (
            LABEL,
            "label",
            "",
            false,
            RegisterValue::Text("kitchen".into()),
        ),
        (SETPOINT, "setpoint", "C", true, RegisterValue::F32(21.0)),
    ];
    for (number, name, unit, writable, value) in regs {
        server
            .declare_register(Register {
                number,
                name: name.into(),
                unit: unit.into(),
                writable,
                value,
            })
            .unwrap();
    }
}

fn new_server(suite: Suite, seed: u8, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = server_config(suite, seed);
    tweak(&mut config);
    let mut s = Server::new(config);
    declare(&mut s);
    s
}

fn pair_with(suite: Suite, seed: u64, tweak: impl FnOnce(&mut ServerConfig)) -> Network {
    let mut net = Network::new(seed, Link::clean());
    net.add(server_addr(), Node::Server(new_server(suite, 1, tweak)));
    net.add_client(client_addr(), client_config(suite, 2));
    net.run_for(Duration::from_millis(200));
    net.client_events(client_addr());
    net.server_events(server_addr());
    net
}

fn pair(suite: Suite, seed: u64) -> Network {
    pair_with(suite, seed, |_| {})
}

/// The outcome event of `op`, if one came.
fn outcome(events: &[ClientEvent], op: RegisterOpId) -> Option<ClientEvent> {
    events
        .iter()
        .find(|e| match e {
            ClientEvent::RegisterValue { op: o, .. }
            | ClientEvent::RegisterFailed { op: o, .. }
            | ClientEvent::RegisterInfo { op: o, .. } => *o == op,
            _ => false,
        })
        .cloned()
}

fn value_of(e: Option<ClientEvent>) -> Option<RegisterValue> {
    match e {
        Some(ClientEvent::RegisterValue { value, .. }) => Some(value),
        _ => None,
    }
}

fn refused(e: Option<ClientEvent>) -> Option<RegisterStatus> {
    match e {
        Some(ClientEvent::RegisterFailed {
            failure: RegisterFailure::Refused(s),
            ..
        }) => Some(s),
        _ => None,
    }
}

fn notified(events: &[ClientEvent], register: RegisterId) -> Vec<RegisterValue> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::RegisterNotified {
                register: r, value, ..
            } if *r == register => Some(value.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn reads_writes_and_their_statuses_on_every_suite() {
    for suite in SUITES {
        let mut net = pair(suite, 1);
        let now = net.now();
        let c = net.client(client_addr());
        let read = c.read_register(now, TEMP, None).unwrap();
        let text = c.read_register(now, LABEL, None).unwrap();
        let unknown = c.read_register(now, RegisterId(99), None).unwrap();
        let write = c
            .write_register(
                now,
                SETPOINT,
                RegisterValue::F32(22.5),
                SendOptions::reliable(),
            )
            .unwrap();
        let read_only = c
            .write_register(now, TEMP, RegisterValue::F32(1.0), SendOptions::reliable())
            .unwrap();
        let wrong_type = c
            .write_register(
                now,
                SETPOINT,
                RegisterValue::I64(3),
                SendOptions::reliable(),
            )
            .unwrap();
        let nowhere = c
            .write_register(
                now,
                RegisterId(99),
                RegisterValue::I64(3),
                SendOptions::reliable(),
            )
            .unwrap();
        net.run_for(Duration::from_millis(100));
        let events = net.client_events(client_addr());
        assert_eq!(
            value_of(outcome(&events, read)),
            Some(RegisterValue::F32(20.0)),
            "{suite:?}"
        );
        assert_eq!(
            value_of(outcome(&events, text)),
            Some(RegisterValue::Text("kitchen".into()))
        );
        assert_eq!(
            refused(outcome(&events, unknown)),
            Some(RegisterStatus::UNKNOWN_REGISTER)
        );
        assert_eq!(
            value_of(outcome(&events, write)),
            Some(RegisterValue::F32(22.5))
        );
        assert_eq!(
            refused(outcome(&events, read_only)),
            Some(RegisterStatus::READ_ONLY)
        );
        assert_eq!(
            refused(outcome(&events, wrong_type)),
            Some(RegisterStatus::WRONG_TYPE)
        );
        assert_eq!(
            refused(outcome(&events, nowhere)),
            Some(RegisterStatus::UNKNOWN_REGISTER)
        );
        let server_events = net.server_events(server_addr());
        let written: Vec<_> = server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::RegisterWritten {
                    register,
                    value,
                    by,
                    ..
                } => Some((*register, value.clone(), *by)),
                _ => None,
            })
            .collect();
        assert_eq!(
            written,
            [(SETPOINT, RegisterValue::F32(22.5), client_addr())],
            "{suite:?}: only the good write is applied"
        );
        assert_eq!(
            net.server(server_addr()).register(SETPOINT).unwrap().value,
            RegisterValue::F32(22.5)
        );
        assert_eq!(
            net.server(server_addr()).register(TEMP).unwrap().value,
            RegisterValue::F32(20.0)
        );
    }
}

#[test]
fn an_unreliable_write_is_applied_and_never_answered() {
    for suite in SUITES {
        let mut net = pair(suite, 2);
        let now = net.now();
        let c = net.client(client_addr());
        let ok = c
            .write_register(
                now,
                SETPOINT,
                RegisterValue::F32(5.0),
                SendOptions::unreliable(),
            )
            .unwrap();
        let bad = c
            .write_register(
                now,
                TEMP,
                RegisterValue::F32(5.0),
                SendOptions::unreliable(),
            )
            .unwrap();
        net.run_for(Duration::from_millis(100));
        let events = net.client_events(client_addr());
        assert_eq!(outcome(&events, ok), None, "{suite:?}");
        assert_eq!(outcome(&events, bad), None, "{suite:?}");
        let s = net.server(server_addr());
        assert_eq!(s.register(SETPOINT).unwrap().value, RegisterValue::F32(5.0));
        assert_eq!(s.register(TEMP).unwrap().value, RegisterValue::F32(20.0));
        assert_eq!(s.stats().dropped(DropReason::RegisterRefused), 1);
    }
}

#[test]
fn a_reliable_write_survives_loss_and_is_applied_once() {
    let mut net = pair(Suite::Psk, 3);
    net.set_link(Link::lossy(0.3));
    let now = net.now();
    let op = net
        .client(client_addr())
        .write_register(
            now,
            SETPOINT,
            RegisterValue::F32(9.0),
            SendOptions::reliable(),
        )
        .unwrap();
    net.run_for(Duration::from_secs(10));
    let events = net.client_events(client_addr());
    assert_eq!(
        value_of(outcome(&events, op)),
        Some(RegisterValue::F32(9.0))
    );
    let writes = net
        .server_events(server_addr())
        .iter()
        .filter(|e| matches!(e, ServerEvent::RegisterWritten { .. }))
        .count();
    assert_eq!(
        writes, 1,
        "a retried write is judged again, never applied twice"
    );
}

#[test]
fn a_read_times_out_when_the_server_is_gone() {
    let mut net = pair(Suite::Psk, 4);
    net.set_up(server_addr(), false);
    let now = net.now();
    let op = net
        .client(client_addr())
        .read_register(now, TEMP, Some(Duration::from_millis(500)))
        .unwrap();
    net.run_for(Duration::from_secs(1));
    let events = net.client_events(client_addr());
    assert_eq!(
        outcome(&events, op),
        Some(ClientEvent::RegisterFailed {
            op,
            failure: RegisterFailure::TimedOut
        })
    );
}

#[test]
fn info_enumerates_every_register() {
    for suite in SUITES {
        let mut net = pair(suite, 5);
        let mut from = RegisterId(0);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let now = net.now();
            let op = net.client(client_addr()).register_info(now, from).unwrap();
            net.run_for(Duration::from_millis(50));
            let events = net.client_events(client_addr());
            match outcome(&events, op) {
                Some(ClientEvent::RegisterInfo { info: Some(i), .. }) => {
                    from = RegisterId(i.register.0 + 1);
                    seen.push((i.register, i.name, i.kind, i.unit, i.writable));
                }
                Some(ClientEvent::RegisterInfo { info: None, .. }) => break,
                other => panic!("{suite:?}: {other:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                (TEMP, "temp".into(), RegisterType::F32, "C".into(), false),
                (LABEL, "label".into(), RegisterType::Text, "".into(), false),
                (
                    SETPOINT,
                    "setpoint".into(),
                    RegisterType::F32,
                    "C".into(),
                    true
                ),
            ],
            "{suite:?}"
        );
    }
}

#[test]
fn declarations_are_refused_with_typed_errors() {
    let mut s = new_server(Suite::Psk, 1, |_| {});
    let r = |number, name: &str| Register {
        number,
        name: name.into(),
        unit: String::new(),
        writable: false,
        value: RegisterValue::Bool(true),
    };
    assert_eq!(
        s.declare_register(r(TEMP, "other")),
        Err(RegisterError::DuplicateNumber)
    );
    assert_eq!(
        s.declare_register(r(RegisterId(50), "temp")),
        Err(RegisterError::DuplicateName)
    );
    assert_eq!(
        s.declare_register(r(RegisterId(50), &"n".repeat(65))),
        Err(RegisterError::BadName)
    );
    let now = pavillion_proto::Instant::ZERO;
    assert_eq!(
        s.set_register(now, TEMP, RegisterValue::Bool(true)),
        Err(RegisterError::WrongType)
    );
}

/// Observes TEMP with `interval`, then changes it every 10 ms, 20 times.
fn observe_and_change(net: &mut Network, interval: Duration) -> Vec<RegisterValue> {
    let now = net.now();
    let op = net
        .client(client_addr())
        .observe(now, TEMP, Duration::from_secs(60), interval)
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let events = net.client_events(client_addr());
    assert_eq!(
        value_of(outcome(&events, op)),
        Some(RegisterValue::F32(20.0))
    );
    for i in 1..=20 {
        let now = net.now();
        net.server(server_addr())
            .set_register(now, TEMP, RegisterValue::F32(i as f32))
            .unwrap();
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_millis(500));
    notified(&net.client_events(client_addr()), TEMP)
}

#[test]
fn observed_changes_are_rate_limited_and_the_last_value_always_arrives() {
    for suite in SUITES {
        let mut net = pair(suite, 6);
        let fast = observe_and_change(&mut net, Duration::from_millis(1));
        assert_eq!(
            fast.len(),
            20,
            "{suite:?}: every change, when the limit allows"
        );
        let mut net = pair(suite, 6);
        let slow = observe_and_change(&mut net, Duration::from_millis(100));
        // 200 ms of changes at one per 100 ms at most: the first, then at most two more.
        assert!(slow.len() <= 3, "{suite:?}: {slow:?}");
        assert_eq!(slow.last(), Some(&RegisterValue::F32(20.0)), "{suite:?}");
    }
}

#[test]
fn the_last_value_arrives_under_loss() {
    let mut net = pair(Suite::Noise, 7);
    net.set_link(Link::lossy(0.3));
    let seen = observe_and_change(&mut net, Duration::from_millis(30));
    net.run_for(Duration::from_secs(10));
    let later = notified(&net.client_events(client_addr()), TEMP);
    let last = later.last().or(seen.last());
    assert_eq!(last, Some(&RegisterValue::F32(20.0)));
}

#[test]
fn an_observation_ends_with_its_duration_or_a_cancel() {
    for suite in SUITES {
        let mut net = pair(suite, 8);
        let now = net.now();
        let c = net.client(client_addr());
        c.observe(
            now,
            TEMP,
            Duration::from_millis(300),
            Duration::from_millis(1),
        )
        .unwrap();
        c.observe(
            now,
            SETPOINT,
            Duration::from_secs(60),
            Duration::from_millis(1),
        )
        .unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(net.server(server_addr()).observer_count(), 2, "{suite:?}");
        let now = net.now();
        let cancel = net
            .client(client_addr())
            .cancel_observe(now, SETPOINT)
            .unwrap();
        net.run_for(Duration::from_millis(400));
        let events = net.client_events(client_addr());
        assert!(value_of(outcome(&events, cancel)).is_some());
        assert_eq!(net.server(server_addr()).observer_count(), 0, "{suite:?}");
        let now = net.now();
        let s = net.server(server_addr());
        s.set_register(now, TEMP, RegisterValue::F32(1.0)).unwrap();
        s.set_register(now, SETPOINT, RegisterValue::F32(1.0))
            .unwrap();
        net.run_for(Duration::from_millis(100));
        let events = net.client_events(client_addr());
        assert!(notified(&events, TEMP).is_empty(), "{suite:?}");
        assert!(notified(&events, SETPOINT).is_empty(), "{suite:?}");
        assert_eq!(net.client(client_addr()).observed().count(), 0);
    }
}

#[test]
fn bad_observations_get_typed_statuses() {
    let mut net = pair_with(Suite::Psk, 9, |c| c.max_observers_per_client = 1);
    let now = net.now();
    let c = net.client(client_addr());
    let zero = c
        .observe(now, TEMP, Duration::from_secs(1), Duration::ZERO)
        .unwrap();
    let absurd = c
        .observe(
            now,
            TEMP,
            Duration::from_secs(90_000),
            Duration::from_millis(10),
        )
        .unwrap();
    let unknown = c
        .observe(
            now,
            RegisterId(99),
            Duration::from_secs(1),
            Duration::from_millis(10),
        )
        .unwrap();
    let first = c
        .observe(
            now,
            LABEL,
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .unwrap();
    let second = c
        .observe(
            now,
            SETPOINT,
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let events = net.client_events(client_addr());
    assert_eq!(
        refused(outcome(&events, zero)),
        Some(RegisterStatus::BAD_REQUEST)
    );
    assert_eq!(
        refused(outcome(&events, absurd)),
        Some(RegisterStatus::BAD_REQUEST)
    );
    assert_eq!(
        refused(outcome(&events, unknown)),
        Some(RegisterStatus::UNKNOWN_REGISTER)
    );
    assert!(value_of(outcome(&events, first)).is_some());
    assert_eq!(
        refused(outcome(&events, second)),
        Some(RegisterStatus::TOO_MANY_OBSERVERS)
    );
    assert_eq!(net.server(server_addr()).observer_count(), 1);
    // A refused observation is not renewed either.
    let observed: Vec<RegisterId> = net
        .client(client_addr())
        .observed()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(observed, [LABEL]);
}

/// Observes SETPOINT, lets `disrupt` break the session, and checks that every change made
/// once the session is back is notified.
fn survives(suite: Suite, seed: u64, disrupt: impl FnOnce(&mut Network)) {
    let mut net = pair(suite, seed);
    let now = net.now();
    net.client(client_addr())
        .observe(
            now,
            SETPOINT,
            Duration::from_secs(600),
            Duration::from_millis(1),
        )
        .unwrap();
    net.run_for(Duration::from_millis(100));
    disrupt(&mut net);
    // Back: a new session, and the observation renewed on it.
    let start = net.now();
    while net.server(server_addr()).observer_count() == 0 {
        assert!(
            net.now() - start < Duration::from_secs(10),
            "{suite:?}: not renewed"
        );
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_millis(50));
    net.client_events(client_addr());
    for i in 0..10 {
        let now = net.now();
        net.server(server_addr())
            .set_register(now, SETPOINT, RegisterValue::F32(100.0 + i as f32))
            .unwrap();
        net.run_for(Duration::from_millis(20));
    }
    let got = notified(&net.client_events(client_addr()), SETPOINT);
    let want: Vec<RegisterValue> = (0..10)
        .map(|i| RegisterValue::F32(100.0 + i as f32))
        .collect();
    assert_eq!(got, want, "{suite:?}");
}

#[test]
fn observations_are_renewed_after_a_server_reboot() {
    for suite in SUITES {
        survives(suite, 10, |net| {
            net.set_up(server_addr(), false);
            net.run_for(Duration::from_secs(1));
            net.replace(server_addr(), Node::Server(new_server(suite, 9, |_| {})));
            net.set_up(server_addr(), true);
        });
    }
}

#[test]
fn observations_are_renewed_after_a_client_re_handshake() {
    for suite in SUITES {
        survives(suite, 11, |net| {
            let now = net.now();
            net.server(server_addr()).disconnect(now, client_addr());
            assert_eq!(net.server(server_addr()).observer_count(), 0);
        });
    }
}

fn tagv(value: f32, stamp_us: i64) -> Vec<u8> {
    let mut p = value.to_le_bytes().to_vec();
    p.extend(stamp_us.to_le_bytes());
    p
}

#[test]
fn core_tagv_writes_follow_the_reference_rules() {
    for suite in SUITES {
        let mut net = pair(suite, 12);
        let send = |net: &mut Network, name: &str, value: f32, ahead_us: i64| {
            let now = net.now();
            let stamp = now.as_micros() as i64 + ahead_us;
            net.client(client_addr())
                .send_message(
                    now,
                    "core.tagv",
                    name,
                    &tagv(value, stamp),
                    SendOptions::reliable(),
                )
                .unwrap();
            net.run_for(Duration::from_millis(20));
        };
        send(&mut net, "setpoint", 1.0, 0);
        assert_eq!(
            net.server(server_addr()).register(SETPOINT).unwrap().value,
            RegisterValue::F32(1.0),
            "{suite:?}"
        );
        // Read-only: refused.
        send(&mut net, "temp", 2.0, 0);
        // Too far ahead: refused.
        send(&mut net, "setpoint", 3.0, 61_000_000);
        // Within 60 s ahead: accepted; then one older than it: refused.
        send(&mut net, "setpoint", 4.0, 59_000_000);
        send(&mut net, "setpoint", 5.0, 0);
        let s = net.server(server_addr());
        assert_eq!(s.register(TEMP).unwrap().value, RegisterValue::F32(20.0));
        assert_eq!(s.register(SETPOINT).unwrap().value, RegisterValue::F32(4.0));
        assert_eq!(
            s.stats().dropped(DropReason::RegisterRefused),
            3,
            "{suite:?}"
        );
    }
}

#[test]
fn a_servers_tag_messages_become_tag_events() {
    let mut net = pair(Suite::Psk, 13);
    let now = net.now();
    net.server(server_addr())
        .send_message(
            now,
            client_addr(),
            "core.tagv",
            "boiler",
            &tagv(42.5, 7),
            SendOptions::reliable(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let events = net.client_events(client_addr());
    assert!(events.contains(&ClientEvent::TagNotified {
        from: server_addr(),
        name: "boiler".into(),
        value: RegisterValue::F32(42.5),
        timestamp_us: 7,
    }));
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Message(_))));
}

#[test]
fn notifications_never_go_back_in_time_under_reordering() {
    for suite in SUITES {
        let mut net = pair(suite, 14);
        let jittery = Link {
            jitter: Duration::from_millis(30),
            ..Link::clean()
        };
        net.set_path(server_addr(), client_addr(), jittery);
        let seen = observe_and_change(&mut net, Duration::from_millis(1));
        let floats: Vec<f32> = seen
            .iter()
            .map(|v| match v {
                RegisterValue::F32(f) => *f,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            floats.windows(2).all(|w| w[0] < w[1]),
            "{suite:?}: {floats:?}"
        );
        assert_eq!(floats.last(), Some(&20.0), "{suite:?}");
    }
}
