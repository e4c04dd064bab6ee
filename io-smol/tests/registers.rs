//! Registers and observe through io-smol, on real loopback sockets (`docs/PROTOCOL.md`
//! §9.8). Every test is bounded by a timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{
    Client, ClientConfig, Register, RegisterId, RegisterOpError, RegisterStatus, RegisterValue,
    Reliability, Server, ServerConfig,
};

const ID: ClientId = ClientId(*b"smol-registers01");
const TEMP: RegisterId = RegisterId(1);
const MODE: RegisterId = RegisterId(2);

fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

async fn pair() -> (Server, Client) {
    let psk = Psk::from_bytes([0x3c; 32]);
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(ID, psk.clone()),
    )
    .await
    .unwrap();
    for (number, name, writable, value) in [
        (TEMP, "temp", false, RegisterValue::F64(20.0)),
        (MODE, "mode", true, RegisterValue::Text("auto".into())),
    ] {
        server
            .declare_register(Register {
                number,
                name: name.into(),
                unit: String::new(),
                writable,
                value,
            })
            .await
            .unwrap();
    }
    let client = Client::connect(server.local_addr(), ClientConfig::psk(ID, psk))
        .await
        .unwrap();
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    (server, client)
}

#[test]
fn read_write_observe_and_list_over_loopback() {
    bounded(Duration::from_secs(30), async {
        let (server, client) = pair().await;
        let mut writes = server.register_writes();
        assert_eq!(
            client.read_register(TEMP).await,
            Ok(RegisterValue::F64(20.0))
        );
        assert_eq!(
            client
                .write_register(
                    MODE,
                    RegisterValue::Text("off".into()),
                    Reliability::Reliable
                )
                .await,
            Ok(Some(RegisterValue::Text("off".into())))
        );
        assert_eq!(
            writes.next().await.unwrap().value,
            RegisterValue::Text("off".into())
        );
        assert_eq!(
            client
                .write_register(TEMP, RegisterValue::F64(1.0), Reliability::Reliable)
                .await,
            Err(RegisterOpError::Refused(RegisterStatus::READ_ONLY))
        );
        client
            .write_register(
                MODE,
                RegisterValue::Text("on".into()),
                Reliability::Unreliable,
            )
            .await
            .unwrap();
        assert_eq!(
            writes.next().await.unwrap().value,
            RegisterValue::Text("on".into())
        );
        let names: Vec<String> = client
            .list_registers()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["temp", "mode"]);

        let (now, mut changes) = client
            .observe(TEMP, Duration::from_secs(60), Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(now, RegisterValue::F64(20.0));
        for i in 1..=3 {
            server
                .set_register(TEMP, RegisterValue::F64(f64::from(i)))
                .await
                .unwrap();
            assert_eq!(
                changes.next().await.unwrap().value,
                RegisterValue::F64(f64::from(i))
            );
        }
        client.cancel_observe(TEMP).await.unwrap();
        // Cancelling drops the stream's sender: it ends.
        assert_eq!(changes.next().await, None);
    });
}
