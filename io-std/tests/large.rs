//! Messages, call arguments and answers larger than a datagram through the blocking adapter,
//! on real loopback sockets: sent in segments by the endpoint, reassembled whole, with progress
//! reported to the sender and refusals surfacing as typed errors.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/suites.rs"]
mod suites;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use pavillion_proto::endpoint::SendError as Refusal;
use pavillion_proto::ClientId;
use pavillion_std::{
    CallError, Client, Reliability, RpcFailure, SendError, Server, TransferRefusal,
};
use suites::{configs, Suite};

const ID: ClientId = ClientId(*b"large-client-001");
const WAIT: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

/// `len` bytes that differ from any shifted or reordered copy of themselves.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Progress reports as the callback saw them.
type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

fn recorder() -> (Seen, impl FnMut(u64, u64) + Send + 'static) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (seen, move |acked, total| {
        s.lock().unwrap().push((acked, total))
    })
}

/// Progress never goes back, never passes the total, and ends at it.
fn assert_progress(seen: &Seen, at_least: usize) {
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 2, "progress reported {} times", seen.len());
    let total = seen[0].1;
    assert!(
        total >= at_least as u64,
        "total {total} < payload {at_least}"
    );
    for w in seen.windows(2) {
        assert!(w[0].0 <= w[1].0, "progress went back: {w:?}");
    }
    assert!(seen.iter().all(|&(a, t)| t == total && a <= t), "{seen:?}");
    assert_eq!(seen.last().unwrap().0, total, "progress ended short");
}

/// A server taking messages up to 8 MiB with a reversing function 405, and a client of it.
fn pair(suite: Suite) -> (Server, Client, mpsc::Receiver<Vec<u8>>) {
    let (server_config, client_config) = configs(ID, suite);
    let server = Server::bind("127.0.0.1:0", server_config.max_message(8 * MIB)).unwrap();
    server.register(405, "reverse", |req| {
        let mut v = req.args.to_vec();
        v.reverse();
        Ok::<_, RpcFailure>(v)
    });
    let (tx, rx) = mpsc::channel();
    server.on_message(Some("blobs"), move |m| {
        let _ = tx.send(m.payload().to_vec());
    });
    let client_config = client_config
        .max_message(8 * MIB)
        .send_timeout(WAIT)
        .call_timeout(WAIT);
    let client = Client::connect(server.local_addr(), client_config).unwrap();
    client.wait_connected(WAIT).unwrap();
    (server, client, rx)
}

fn multi_mib_each_way(suite: Suite) {
    let (server, client, from_client) = pair(suite);

    let up = pattern(3 * MIB + 17, 1);
    let (seen, progress) = recorder();
    let delivery = client
        .send_with_progress("blobs", "up", &up, Reliability::Reliable, progress)
        .unwrap();
    assert_eq!(delivery.acked, vec![server.local_addr()]);
    let got = from_client.recv_timeout(WAIT).unwrap();
    assert!(got == up, "{suite:?}: client→server bytes differ");
    assert_progress(&seen, up.len());
    assert!(from_client.try_recv().is_err(), "delivered twice");

    let (tx, from_server) = mpsc::channel();
    client.on_message(Some("blobs"), move |m| {
        let _ = tx.send(m.payload().to_vec());
    });
    let down = pattern(3 * MIB + 5, 2);
    let (addr, _) = server.clients()[0];
    let (seen, progress) = recorder();
    server
        .send_to_with_progress(
            addr,
            "blobs",
            "down",
            &down,
            Reliability::Reliable,
            progress,
        )
        .unwrap();
    let got = from_server.recv_timeout(WAIT).unwrap();
    assert!(got == down, "{suite:?}: server→client bytes differ");
    assert_progress(&seen, down.len());
}

#[test]
fn a_multi_mib_message_goes_each_way_whole_with_progress_psk() {
    multi_mib_each_way(Suite::Psk);
}

#[test]
fn a_multi_mib_message_goes_each_way_whole_with_progress_ecc() {
    multi_mib_each_way(Suite::Ecc);
}

#[test]
fn a_multi_mib_message_goes_each_way_whole_with_progress_noise() {
    multi_mib_each_way(Suite::NoiseIk);
}

#[test]
fn a_message_of_exactly_the_configured_maximum_is_accepted() {
    let (server_config, client_config) = configs(ID, Suite::Psk);
    // Setting the maximum alone is enough: the reassembly budgets grow to hold such a message.
    let max = 3 * MIB;
    let server = Server::bind("127.0.0.1:0", server_config.max_message(max)).unwrap();
    let (tx, rx) = mpsc::channel();
    server.on_message(None, move |m| {
        let _ = tx.send(m.payload().len());
    });
    let client_config = client_config.max_message(max).send_timeout(WAIT);
    let client = Client::connect(server.local_addr(), client_config).unwrap();
    // The limit counts the whole plaintext: opcode, "edge\n", "e\n", payload.
    let data = pattern(max - 1 - "edge\n".len() - "e\n".len(), 5);
    client
        .send_message("edge", "e", &data, Reliability::Reliable)
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), data.len());
    assert_eq!(
        client.send_message(
            "edge",
            "e",
            &[data.as_slice(), b"x"].concat(),
            Reliability::Reliable
        ),
        Err(SendError::Refused(Refusal::TooLarge))
    );
}

#[test]
fn large_call_arguments_and_answer_through_a_registered_handler() {
    let (_server, client, _) = pair(Suite::Psk);
    let args = pattern(2 * MIB + 3, 3);
    let answer = client.call(405, &args).unwrap();
    let mut expected = args.clone();
    expected.reverse();
    assert_eq!(answer.len(), expected.len());
    assert!(answer[..] == expected[..], "answer bytes differ");
    // Small calls still work beside large ones.
    assert_eq!(&client.call(405, b"abc").unwrap()[..], b"cba");
}

#[test]
fn a_receiver_with_a_smaller_limit_refuses_and_the_sender_sees_why() {
    let (server_config, client_config) = configs(ID, Suite::Psk);
    // The server keeps the default limit of 1 MiB; the client would send up to 8 MiB.
    let server = Server::bind("127.0.0.1:0", server_config).unwrap();
    let (tx, rx) = mpsc::channel();
    server.on_message(None, move |m| {
        let _ = tx.send(m.payload().len());
    });
    server.register(405, "len", |req| {
        Ok::<_, RpcFailure>(req.args.len().to_string())
    });
    let client_config = client_config
        .max_message(8 * MIB)
        .send_timeout(WAIT)
        .call_timeout(WAIT);
    let client = Client::connect(server.local_addr(), client_config).unwrap();
    let big = pattern(2 * MIB, 4);
    match client.send_message("blobs", "big", &big, Reliability::Reliable) {
        Err(SendError::RefusedByReceiver { reason }) => {
            assert_eq!(reason, TransferRefusal::TooLarge)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client.call(405, &big) {
        Err(CallError::RefusedByReceiver { reason }) => {
            assert_eq!(reason, TransferRefusal::TooLarge)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "a refused message was delivered");
    // Beyond the sender's own limit: refused at once, locally.
    let huge = vec![0u8; 8 * MIB + 1];
    assert_eq!(
        client.send_message("blobs", "huge", &huge, Reliability::Reliable),
        Err(SendError::Refused(Refusal::TooLarge))
    );
    // The session still works.
    assert_eq!(&client.call(405, b"four").unwrap()[..], b"4");
}
