//! Durable messages through io-smol on real loopback sockets, with real stores in a temporary
//! directory (`docs/DURABLE.md`): both directions, many sends in flight at once, restarts of
//! each side from its store with nothing lost and nothing delivered twice, redelivery of what
//! was not consumed, and the typed errors of a store that cannot be written or belongs to
//! another identity. Every test is bounded by a timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::features::durable::DurablePeer;
use pavillion_proto::{ClientId, PeerId};
use pavillion_smol::{
    Client, ClientConfig, DropReason, DurableError, OpenError, Server, ServerConfig,
};

const ID: ClientId = ClientId(*b"smol-durable-001");
const OTHER: ClientId = ClientId(*b"smol-durable-002");

#[derive(Clone, Copy, Debug)]
enum Suite {
    Psk,
    Ecc,
    NoiseIk,
}

const SUITES: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::NoiseIk];

fn psk() -> Psk {
    Psk::from_bytes([0x5a; 32])
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn server_config(suite: Suite) -> ServerConfig {
    match suite {
        Suite::Psk => ServerConfig::new()
            .psk_client(ID, psk())
            .psk_client(OTHER, psk()),
        Suite::Ecc | Suite::NoiseIk => ServerConfig::new()
            .keys(server_keys())
            .ecc_client(ID, *client_keys().public()),
    }
}

fn client_config(suite: Suite) -> ClientConfig {
    let server = *server_keys().public();
    match suite {
        Suite::Psk => ClientConfig::psk(ID, psk()),
        Suite::Ecc => ClientConfig::ecc(ID, client_keys(), server),
        Suite::NoiseIk => ClientConfig::noise_ik(ID, client_keys(), server),
    }
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// A loopback address whose port nothing listens on (bound, then freed), for a server that
/// starts later.
fn free_addr() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

/// A fresh directory for one test's stores, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pavillion-smol-durable-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Receives at the server until nothing more arrives for `quiet`, consuming each; returns
/// the payloads by how many times each was delivered.
async fn drain_server(server: &Server, quiet: Duration) -> BTreeMap<Vec<u8>, u32> {
    let mut seen = BTreeMap::new();
    while let Some(d) = server.recv_durable_timeout(quiet).await.unwrap() {
        *seen.entry(d.message.payload().to_vec()).or_insert(0) += 1;
        assert!(server.consume_durable(&d, None).await.unwrap());
    }
    seen
}

/// Checks that `seen` (payload → times delivered) holds each of `expected` once and nothing
/// else, naming the missing, doubled and unexpected ones (not dumping both maps).
fn assert_once(seen: &BTreeMap<Vec<u8>, u32>, expected: &[Vec<u8>]) {
    let text = |p: &Vec<u8>| String::from_utf8_lossy(p).into_owned();
    let missing: Vec<_> = expected
        .iter()
        .filter(|p| !seen.contains_key(*p))
        .map(text)
        .collect();
    let doubled: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(p, n)| format!("{} x{n}", text(p)))
        .collect();
    let unexpected: Vec<_> = seen
        .keys()
        .filter(|p| !expected.contains(p))
        .map(text)
        .collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && unexpected.is_empty(),
        "missing {missing:?}, delivered more than once {doubled:?}, unexpected {unexpected:?}"
    );
}

fn payloads(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|n| format!("reading {n}").into_bytes()).collect()
}

#[test]
fn a_durable_message_reaches_the_server_once_in_every_suite() {
    bounded(Duration::from_secs(60), async {
        for suite in SUITES {
            let dir = TempDir::new("every-suite");
            let server = Server::bind(
                "127.0.0.1:0",
                server_config(suite).durable(dir.path("s.redb")),
            )
            .await
            .unwrap();
            let restored = server.durable_restored().unwrap();
            assert!(restored.fresh && restored.queued == 0 && restored.inbox == 0);
            let client = Client::connect(
                server.local_addr(),
                client_config(suite).durable(dir.path("c.redb")),
            )
            .await
            .unwrap();

            let id = client
                .send_durable("meter", "kwh", b"1234.5")
                .await
                .unwrap();
            client
                .wait_durable_delivered(id, Duration::from_secs(10))
                .await
                .unwrap();
            let d = server.recv_durable().await.unwrap();
            assert_eq!(d.id, id, "{suite:?}: the same end-to-end id at both ends");
            assert_eq!(d.from, DurablePeer::Client(PeerId::Client(ID)), "{suite:?}");
            assert_eq!(
                (d.message.target(), d.message.name(), d.message.payload()),
                ("meter", "kwh", &b"1234.5"[..]),
                "{suite:?}"
            );
            assert!(!d.redelivered, "{suite:?}");
            assert!(server.consume_durable(&d, None).await.unwrap());
            assert!(
                !server.consume_durable(&d, None).await.unwrap(),
                "{suite:?}: a message is consumed once"
            );
            assert_eq!(client.durable_queued().await.unwrap(), 0, "{suite:?}");
            assert!(
                server
                    .recv_durable_timeout(Duration::from_millis(300))
                    .await
                    .unwrap()
                    .is_none(),
                "{suite:?}: delivered once"
            );
            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn a_server_sends_durably_to_a_client_that_connects_later() {
    bounded(Duration::from_secs(30), async {
        let dir = TempDir::new("to-client");
        let suite = Suite::NoiseIk;
        let server = Server::bind(
            "127.0.0.1:0",
            server_config(suite).durable(dir.path("s.redb")),
        )
        .await
        .unwrap();
        // Nobody is connected: the message waits in the server's store for that identity.
        let id = server
            .send_durable(PeerId::Client(ID), "config", "interval", b"60")
            .await
            .unwrap();
        assert_eq!(server.durable_queued().await.unwrap(), 1);

        let client = Client::connect(
            server.local_addr(),
            client_config(suite).durable(dir.path("c.redb")),
        )
        .await
        .unwrap();
        let d = client.recv_durable().await.unwrap();
        assert_eq!((d.id, d.from), (id, DurablePeer::Server));
        assert_eq!(d.message.payload(), b"60");
        assert!(client.consume_durable(&d, Some(1)).await.unwrap());
        server
            .wait_durable_delivered(id, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(server
            .wait_durable_drained(Duration::from_secs(1))
            .await
            .unwrap());
        client.close().await;
        server.close().await;
    });
}

#[test]
fn a_broker_relays_a_durable_message_to_a_subscriber_and_consumes_it_in_one_go() {
    bounded(Duration::from_secs(30), async {
        let dir = TempDir::new("relay");
        let server = Server::bind(
            "127.0.0.1:0",
            server_config(Suite::Psk).durable(dir.path("s.redb")),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let listener = Client::connect(
            addr,
            ClientConfig::psk(OTHER, psk()).durable(dir.path("listener.redb")),
        )
        .await
        .unwrap();
        listener.subscribe("alerts").await.unwrap();
        // Polled: `subscribed_at` reports the state now, and the bounded test ends a hang.
        while listener.subscribed_at("alerts").await.is_none() {
            Timer::after(Duration::from_millis(10)).await;
        }
        let sender = Client::connect(addr, client_config(Suite::Psk).durable(dir.path("c.redb")))
            .await
            .unwrap();
        let sent = sender.send_durable("alerts", "fire", b"1").await.unwrap();

        let d = server.recv_durable().await.unwrap();
        let to: Vec<_> = server
            .client_subscribers("alerts")
            .await
            .into_iter()
            .map(|(_, peer)| peer)
            .collect();
        assert_eq!(to, vec![PeerId::Client(OTHER)]);
        let copies = server.relay_durable(&d, &to, None).await.unwrap();
        assert_eq!(copies.len(), 1);
        assert!(
            !server.consume_durable(&d, None).await.unwrap(),
            "the relay consumed it"
        );

        let got = listener.recv_durable().await.unwrap();
        assert_eq!((got.id, got.message.payload()), (copies[0], &b"1"[..]));
        assert_ne!(got.id, sent, "a relayed copy has the broker's id");
        assert!(listener.consume_durable(&got, None).await.unwrap());
        server
            .wait_durable_delivered(copies[0], Duration::from_secs(10))
            .await
            .unwrap();
        sender.close().await;
        listener.close().await;
        server.close().await;
    });
}

#[test]
fn many_durable_sends_in_flight_at_once_arrive_once_each() {
    const TASKS: u32 = 8;
    const EACH: u32 = 40;
    bounded(Duration::from_secs(60), async {
        let dir = TempDir::new("many");
        let server = Server::bind(
            "127.0.0.1:0",
            server_config(Suite::Psk).durable(dir.path("s.redb")),
        )
        .await
        .unwrap();
        let client = Arc::new(
            Client::connect(
                server.local_addr(),
                client_config(Suite::Psk).durable(dir.path("c.redb")),
            )
            .await
            .unwrap(),
        );
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let client = client.clone();
                smol::spawn(async move {
                    let mut ids = Vec::new();
                    for payload in payloads(t * EACH..(t + 1) * EACH) {
                        ids.push(client.send_durable("log", "line", &payload).await.unwrap());
                    }
                    ids
                })
            })
            .collect();
        // And one task with many sends queued at once, awaited afterwards.
        let queued: Vec<_> = payloads(TASKS * EACH..(TASKS + 1) * EACH)
            .iter()
            .map(|p| client.queue_durable("log", "line", p, None).unwrap())
            .collect();
        let mut ids = Vec::new();
        for stored in queued {
            ids.push(stored.await.unwrap());
        }
        for task in tasks {
            ids.extend(task.await);
        }
        let total = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), total, "every send has its own id");
        assert!(client
            .wait_durable_drained(Duration::from_secs(30))
            .await
            .unwrap());

        let seen = drain_server(&server, Duration::from_millis(500)).await;
        assert_once(&seen, &payloads(0..(TASKS + 1) * EACH));
        Arc::try_unwrap(client).unwrap().close().await;
        server.close().await;
    });
}

#[test]
fn a_restarted_sender_sends_its_stored_messages_again_and_resumes_at_its_mark() {
    bounded(Duration::from_secs(60), async {
        let dir = TempDir::new("sender-restart");
        let addr = free_addr();
        let store = dir.path("c.redb");
        // No server yet: every message stays queued.
        let client = Client::connect(addr, client_config(Suite::Psk).durable(&store))
            .await
            .unwrap();
        for (n, p) in payloads(0..20).iter().enumerate() {
            client
                .send_durable_marked("log", "line", p, n as u64 + 1)
                .await
                .unwrap();
        }
        assert_eq!(client.durable_queued().await.unwrap(), 20);
        let origin = client.durable_restored().unwrap().origin;
        client.close().await;

        let client = Client::connect(addr, client_config(Suite::Psk).durable(&store))
            .await
            .unwrap();
        let restored = client.durable_restored().unwrap();
        assert!(!restored.fresh);
        assert_eq!(restored.origin, origin, "the origin is kept in the store");
        assert_eq!((restored.queued, restored.send_mark), (20, Some(20)));
        // The application resumes after its mark.
        for (n, p) in payloads(20..30).iter().enumerate() {
            client
                .send_durable_marked("log", "line", p, n as u64 + 21)
                .await
                .unwrap();
        }

        let server = Server::bind(addr, server_config(Suite::Psk).durable(dir.path("s.redb")))
            .await
            .unwrap();
        assert!(client
            .wait_durable_drained(Duration::from_secs(30))
            .await
            .unwrap());
        let seen = drain_server(&server, Duration::from_millis(500)).await;
        assert_once(&seen, &payloads(0..30));
        client.close().await;
        server.close().await;
    });
}

#[test]
fn a_restarted_receiver_redelivers_what_was_not_consumed_and_only_that() {
    bounded(Duration::from_secs(60), async {
        let dir = TempDir::new("receiver-restart");
        let store = dir.path("s.redb");
        let server = Server::bind("127.0.0.1:0", server_config(Suite::Ecc).durable(&store))
            .await
            .unwrap();
        let addr = server.local_addr();
        let client = Client::connect(addr, client_config(Suite::Ecc).durable(dir.path("c.redb")))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for p in payloads(0..10) {
            ids.push(client.send_durable("log", "line", &p).await.unwrap());
        }
        assert!(client
            .wait_durable_drained(Duration::from_secs(20))
            .await
            .unwrap());
        // The application handles all ten and consumes only the first five (the "crash"
        // comes before the other consumes).
        let mut delivered = Vec::new();
        for _ in 0..10 {
            delivered.push(server.recv_durable().await.unwrap());
        }
        assert_eq!(delivered.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
        for (n, d) in delivered.iter().take(5).enumerate() {
            assert!(server.consume_durable(d, Some(n as u64 + 1)).await.unwrap());
        }
        server.close().await;

        let server = Server::bind(addr, server_config(Suite::Ecc).durable(&store))
            .await
            .unwrap();
        let restored = server.durable_restored().unwrap();
        assert_eq!((restored.inbox, restored.consume_mark), (5, Some(5)));
        let mut again = Vec::new();
        for _ in 0..5 {
            let d = server
                .recv_durable_timeout(Duration::from_secs(5))
                .await
                .unwrap()
                .expect("an unconsumed message is delivered again at restart");
            assert!(d.redelivered);
            assert_eq!(d.from, DurablePeer::Client(PeerId::Client(ID)));
            again.push(d);
        }
        let got: Vec<_> = again
            .iter()
            .map(|d| (d.id, d.message.payload().to_vec()))
            .collect();
        let expected: Vec<_> = ids[5..].iter().copied().zip(payloads(5..10)).collect();
        assert_eq!(
            got, expected,
            "the unconsumed ones, in order, with their payloads"
        );
        // The client is still there and may retransmit; nothing is delivered a second time.
        let seen = drain_server(&server, Duration::from_millis(700)).await;
        assert!(seen.is_empty(), "delivered again: {seen:?}");
        for d in &again {
            assert!(server.consume_durable(d, None).await.unwrap());
        }
        server.close().await;

        let server = Server::bind(addr, server_config(Suite::Ecc).durable(&store))
            .await
            .unwrap();
        assert_eq!(server.durable_restored().unwrap().inbox, 0);
        assert!(server
            .recv_durable_timeout(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none());
        client.close().await;
        server.close().await;
    });
}

/// The receiving application of `docs/DURABLE.md` §7: an output log truncated to the stored
/// consume mark at each start, then appended to and consumed with its new length as the mark.
/// Returns once `want` entries are in the log or `stop` entries were appended in this run.
async fn receive_into(server: &Server, log: &mut Vec<Vec<u8>>, want: usize, stop: usize) {
    static HISTORY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    HISTORY
        .lock()
        .unwrap()
        .push(format!("restart {:?}", server.durable_restored()));
    let mark = server.durable_restored().unwrap().consume_mark.unwrap_or(0);
    log.truncate(usize::try_from(mark).unwrap());
    let mut appended = 0;
    while log.len() < want && appended < stop {
        let d = server.recv_durable().await.unwrap();
        log.push(d.message.payload().to_vec());
        appended += 1;
        // A close may come before the consume is stored: the mark makes that harmless.
        let len = log.len() as u64;
        let consumed = server.consume_durable(&d, Some(len)).await.unwrap();
        HISTORY.lock().unwrap().push(format!(
            "{} {} redelivered {} consumed {consumed}",
            d.id,
            String::from_utf8_lossy(d.message.payload()),
            d.redelivered
        ));
        assert!(
            consumed,
            "{} ({}, redelivered {}) was not in the inbox: delivered twice? {:#?}",
            d.id,
            String::from_utf8_lossy(d.message.payload()),
            d.redelivered,
            HISTORY.lock().unwrap()
        );
    }
}

#[test]
fn both_sides_restart_mid_stream_and_the_output_holds_each_message_once() {
    const TOTAL: u32 = 120;
    bounded(Duration::from_secs(90), async {
        let dir = TempDir::new("both-restart");
        let (cstore, sstore) = (dir.path("c.redb"), dir.path("s.redb"));
        let addr = free_addr();
        let mut log = Vec::new();
        let mut next = 0u32;
        for round in 0..4u32 {
            let server = Server::bind(addr, server_config(Suite::NoiseIk).durable(&sstore))
                .await
                .unwrap();
            let client = Client::connect(addr, client_config(Suite::NoiseIk).durable(&cstore))
                .await
                .unwrap();
            // The sender resumes after its mark, as `pav send --lines` does.
            next = next.max(
                client
                    .durable_restored()
                    .unwrap()
                    .send_mark
                    .map_or(0, |m| u32::try_from(m).unwrap()),
            );
            let upto = (next + TOTAL / 4 + 10).min(TOTAL);
            for n in next..upto {
                let p = format!("reading {n}").into_bytes();
                client
                    .send_durable_marked("log", "line", &p, u64::from(n) + 1)
                    .await
                    .unwrap();
            }
            next = upto;
            // Each side goes away part way through the receiving.
            receive_into(&server, &mut log, TOTAL as usize, 25 + round as usize).await;
            if round % 2 == 0 {
                client.close().await;
                server.close().await;
            } else {
                server.close().await;
                client.close().await;
            }
        }
        let server = Server::bind(addr, server_config(Suite::NoiseIk).durable(&sstore))
            .await
            .unwrap();
        let client = Client::connect(addr, client_config(Suite::NoiseIk).durable(&cstore))
            .await
            .unwrap();
        assert_eq!(next, TOTAL);
        receive_into(&server, &mut log, TOTAL as usize, usize::MAX).await;
        assert!(client
            .wait_durable_drained(Duration::from_secs(30))
            .await
            .unwrap());
        let mut sorted = log.clone();
        sorted.sort();
        let mut expected = payloads(0..TOTAL);
        expected.sort();
        assert_eq!(sorted, expected, "each message exactly once in the output");
        client.close().await;
        server.close().await;
    });
}

#[test]
fn a_store_of_another_identity_is_refused_and_left_as_it_was() {
    bounded(Duration::from_secs(30), async {
        let dir = TempDir::new("foreign");
        let store = dir.path("c.redb");
        let client = Client::connect(free_addr(), ClientConfig::psk(ID, psk()).durable(&store))
            .await
            .unwrap();
        client.send_durable("log", "line", b"queued").await.unwrap();
        client.close().await;
        let before = std::fs::read(&store).unwrap();

        let refused = Client::connect(free_addr(), ClientConfig::psk(OTHER, psk()).durable(&store))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                OpenError::Durable(DurableError::ForeignIdentity { .. })
            ),
            "{refused:?}"
        );
        assert_eq!(
            std::fs::read(&store).unwrap(),
            before,
            "the store is untouched"
        );

        // Its own identity still opens it, with the message queued.
        let client = Client::connect(free_addr(), ClientConfig::psk(ID, psk()).durable(&store))
            .await
            .unwrap();
        assert_eq!(client.durable_restored().unwrap().queued, 1);
        client.close().await;
    });
}

/// Makes `path` unwritable even through file descriptors already open on it (the immutable
/// attribute, which needs privileges); `false` if this system does not allow it.
fn make_immutable(path: &Path, on: bool) -> bool {
    std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes the immutable attribute when dropped, so the directory can be removed even if the
/// test fails.
struct Mutable<'a>(&'a Path);

impl Drop for Mutable<'_> {
    fn drop(&mut self) {
        make_immutable(self.0, false);
    }
}

#[test]
fn a_store_that_cannot_be_written_fails_sends_with_a_typed_error() {
    bounded(Duration::from_secs(30), async {
        let dir = TempDir::new("read-only");
        let store = dir.path("c.redb");
        let client = Client::connect(free_addr(), client_config(Suite::Psk).durable(&store))
            .await
            .unwrap();
        client.send_durable("log", "line", b"before").await.unwrap();
        let _guard = Mutable(&store);
        if make_immutable(&store, true) {
            // The open store can no longer be written: the send is refused, not pretended.
            let failed = client
                .send_durable("log", "line", b"after")
                .await
                .unwrap_err();
            match &failed {
                DurableError::Store { path, .. } => {
                    assert!(
                        path.contains("c.redb"),
                        "the error names the store: {failed}"
                    );
                }
                other => panic!("expected a store error, got {other:?}"),
            }
            assert_eq!(
                client.durable_queued().await.unwrap(),
                1,
                "the failed send is not queued"
            );
            client.close().await;
        } else {
            // Without the privilege for that, a read-only file: refused at open.
            client.close().await;
            let mut perms = std::fs::metadata(&store).unwrap().permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(&store, perms).unwrap();
            if std::fs::OpenOptions::new().write(true).open(&store).is_ok() {
                // Privileged, on a file system without the immutable attribute: nothing here
                // can make a file unwritable, so there is nothing to test.
                eprintln!("skipped: this process can write to any file");
                return;
            }
            let refused = Client::connect(free_addr(), client_config(Suite::Psk).durable(&store))
                .await
                .unwrap_err();
            assert!(
                matches!(refused, OpenError::Durable(DurableError::Store { .. })),
                "{refused:?}"
            );
        }
    });
}

#[test]
fn without_a_store_durable_sends_are_refused_and_a_receiver_without_one_does_not_ack() {
    bounded(Duration::from_secs(30), async {
        let dir = TempDir::new("disabled");
        let server = Server::bind("127.0.0.1:0", server_config(Suite::Psk))
            .await
            .unwrap();
        let plain = Client::connect(server.local_addr(), client_config(Suite::Psk))
            .await
            .unwrap();
        assert!(plain.durable_restored().is_none());
        assert!(matches!(
            plain.send_durable("log", "line", b"x").await,
            Err(DurableError::NotEnabled)
        ));
        plain.close().await;

        // A durable sender to a server without a store: kept, unacknowledged, counted there.
        let client = Client::connect(
            server.local_addr(),
            client_config(Suite::Psk).durable(dir.path("c.redb")),
        )
        .await
        .unwrap();
        let id = client.send_durable("log", "line", b"kept").await.unwrap();
        assert!(matches!(
            client
                .wait_durable_delivered(id, Duration::from_millis(1500))
                .await,
            Err(DurableError::TimedOut)
        ));
        assert_eq!(client.durable_queued().await.unwrap(), 1);
        let stats = server.stats().await.unwrap();
        assert!(stats
            .drops()
            .any(|(r, n)| r == DropReason::DurableDisabled && n > 0));
        client.close().await;
        server.close().await;
    });
}
