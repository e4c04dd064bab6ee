//! Ordered sends (`Reliability::Ordered`, op 36) through io-smol on real loopback sockets,
//! every suite: many messages on two targets, all in flight at once, both directions, arrive
//! in send order, once each. Bounded by a timer, so it cannot hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{Client, ClientConfig, MessageStream, Reliability, Server, ServerConfig};

const ID: ClientId = ClientId(*b"smol-ordered-001");
const COUNT: usize = 60;

fn configs(suite: u8) -> (ServerConfig, ClientConfig) {
    let server_keys = KeyPair::from_secret_bytes([0x22; 32]);
    let client_keys = KeyPair::from_secret_bytes([0x11; 32]);
    let server = ServerConfig::new()
        .keys(server_keys.clone())
        .ecc_client(ID, *client_keys.public());
    match suite {
        0 => {
            let psk = Psk::from_bytes([0x5a; 32]);
            (
                ServerConfig::new().psk_client(ID, psk.clone()),
                ClientConfig::psk(ID, psk),
            )
        }
        1 => (
            server,
            ClientConfig::ecc(ID, client_keys, *server_keys.public()),
        ),
        _ => (
            server,
            ClientConfig::noise_ik(ID, client_keys, *server_keys.public()),
        ),
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Polls every future in list order until all are done, so that each send reaches the
/// driver in the order of the list while all of them are in flight together.
async fn all_in_order<'a, T>(mut futs: Vec<Boxed<'a, T>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    future::poll_fn(|cx| {
        for (f, slot) in futs.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *slot = Some(v);
                }
            }
        }
        if done.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// Takes `n` messages from `stream` as (target, name).
async fn take(stream: &mut MessageStream, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = stream.next().await.unwrap();
        got.push((m.target().to_string(), m.name().to_string()));
    }
    got
}

fn on(target: &str, got: &[(String, String)]) -> Vec<String> {
    got.iter()
        .filter(|(t, _)| t == target)
        .map(|(_, n)| n.clone())
        .collect()
}

fn names() -> Vec<(usize, &'static str)> {
    (0..COUNT).flat_map(|i| [(i, "a"), (i, "b")]).collect()
}

#[test]
fn many_ordered_messages_in_flight_arrive_in_order_in_every_suite() {
    let limit = Duration::from_secs(60);
    smol::block_on(future::or(
        async {
            for suite in 0..3 {
                one_suite(suite).await;
            }
        },
        async {
            Timer::after(limit).await;
            panic!("test did not finish within {limit:?}");
        },
    ));
}

async fn one_suite(suite: u8) {
    let (server_config, client_config) = configs(suite);
    // Room for every message at once: a stream drops what overflows its buffer, and the
    // driver may release the whole batch before this task reads any.
    let server_config = server_config.message_buffer(4 * COUNT);
    let client_config = client_config.message_buffer(4 * COUNT);
    let server = Server::bind("127.0.0.1:0", server_config).await.unwrap();
    let mut at_server = server.on_message(None);
    let client = Client::connect(server.local_addr(), client_config)
        .await
        .unwrap();
    let mut at_client = client.on_message(None);
    client.wait_connected(Duration::from_secs(5)).await.unwrap();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();

    let labels: Vec<(String, &str)> = names()
        .into_iter()
        .map(|(i, t)| (i.to_string(), t))
        .collect();
    let sends: Vec<Boxed<'_, _>> = labels
        .iter()
        .map(|(name, target)| {
            Box::pin(client.send_message(target, name, b"x", Reliability::Ordered)) as Boxed<'_, _>
        })
        .collect();
    let (results, got) = future::zip(all_in_order(sends), take(&mut at_server, 2 * COUNT)).await;
    assert_eq!(at_server.dropped(), 0);
    assert!(
        results.iter().all(Result::is_ok),
        "suite {suite}: {results:?}"
    );
    assert_eq!(on("a", &got), expected, "suite {suite} c>s");
    assert_eq!(on("b", &got), expected, "suite {suite} c>s");

    let (addr, _) = server.clients().await[0];
    let sends: Vec<Boxed<'_, _>> = labels
        .iter()
        .map(|(name, target)| {
            Box::pin(server.send_to(addr, target, name, b"y", Reliability::Ordered)) as Boxed<'_, _>
        })
        .collect();
    let (results, got) = future::zip(all_in_order(sends), take(&mut at_client, 2 * COUNT)).await;
    assert!(
        results.iter().all(Result::is_ok),
        "suite {suite}: {results:?}"
    );
    assert_eq!(on("a", &got), expected, "suite {suite} s>c");
    assert_eq!(on("b", &got), expected, "suite {suite} s>c");
    client.close().await;
    server.close().await;
}
