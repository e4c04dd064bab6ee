//! Registers and observe through the blocking adapter, on real loopback sockets
//! (`docs/PROTOCOL.md` §9.8).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::sync::mpsc;
use std::time::Duration;

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{
    Client, ClientConfig, Register, RegisterError, RegisterId, RegisterOpError, RegisterStatus,
    RegisterType, RegisterValue, Reliability, Server, ServerConfig,
};

const ID: ClientId = ClientId(*b"regs-std-client!");
const WAIT: Duration = Duration::from_secs(5);
const TEMP: RegisterId = RegisterId(1);
const SETPOINT: RegisterId = RegisterId(2);

fn pair() -> (Server, Client) {
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(ID, psk.clone()),
    )
    .unwrap();
    for (number, name, writable, value) in [
        (TEMP, "temp", false, RegisterValue::F32(20.0)),
        (SETPOINT, "setpoint", true, RegisterValue::I64(21)),
    ] {
        server
            .declare_register(Register {
                number,
                name: name.into(),
                unit: "C".into(),
                writable,
                value,
            })
            .unwrap();
    }
    let client = Client::connect(server.local_addr(), ClientConfig::psk(ID, psk)).unwrap();
    client.wait_connected(WAIT).unwrap();
    (server, client)
}

#[test]
fn read_write_list_and_refusals_over_loopback() {
    let (server, client) = pair();
    let (tx, rx) = mpsc::channel();
    server.on_register_write(move |w| {
        let _ = tx.send((w.register, w.value.clone()));
    });
    assert_eq!(client.read_register(TEMP), Ok(RegisterValue::F32(20.0)));
    assert_eq!(
        client.read_register(RegisterId(9)),
        Err(RegisterOpError::Refused(RegisterStatus::UNKNOWN_REGISTER))
    );
    assert_eq!(
        client.write_register(SETPOINT, RegisterValue::I64(25), Reliability::Reliable),
        Ok(Some(RegisterValue::I64(25)))
    );
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (SETPOINT, RegisterValue::I64(25))
    );
    assert_eq!(
        client.write_register(TEMP, RegisterValue::F32(1.0), Reliability::Reliable),
        Err(RegisterOpError::Refused(RegisterStatus::READ_ONLY))
    );
    assert_eq!(
        client.write_register(SETPOINT, RegisterValue::F32(1.0), Reliability::Reliable),
        Err(RegisterOpError::Refused(RegisterStatus::WRONG_TYPE))
    );
    assert_eq!(
        client.write_register(SETPOINT, RegisterValue::I64(30), Reliability::Unreliable),
        Ok(None)
    );
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        (SETPOINT, RegisterValue::I64(30))
    );
    let list = client.list_registers().unwrap();
    let names: Vec<(RegisterId, String, RegisterType, bool)> = list
        .into_iter()
        .map(|i| (i.register, i.name, i.kind, i.writable))
        .collect();
    assert_eq!(
        names,
        [
            (TEMP, "temp".into(), RegisterType::F32, false),
            (SETPOINT, "setpoint".into(), RegisterType::I64, true)
        ]
    );
    assert_eq!(
        server.declare_register(Register {
            number: RegisterId(3),
            name: "temp".into(),
            unit: String::new(),
            writable: false,
            value: RegisterValue::Bool(true),
        }),
        Err(RegisterError::DuplicateName)
    );
}

#[test]
fn observe_sees_changes_until_cancelled() {
    let (server, client) = pair();
    let (tx, rx) = mpsc::channel();
    let now = client
        .observe(
            TEMP,
            Duration::from_secs(60),
            Duration::from_millis(1),
            move |c| {
                let _ = tx.send(c.value.clone());
            },
        )
        .unwrap();
    assert_eq!(now, RegisterValue::F32(20.0));
    for i in 1..=3 {
        server
            .set_register(TEMP, RegisterValue::F32(i as f32))
            .unwrap();
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), RegisterValue::F32(i as f32));
    }
    client.cancel_observe(TEMP).unwrap();
    server.set_register(TEMP, RegisterValue::F32(9.0)).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(
        server.register_value(TEMP).map(|r| r.value),
        Some(RegisterValue::F32(9.0))
    );
}
