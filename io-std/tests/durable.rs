//! Durable messages through the blocking adapter on loopback: both directions, restarts of
//! either side from its store, redelivery, and the store's bad input (corrupt, truncated,
//! foreign, in use, unwritable).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pavillion_proto::crypto::Psk;
use pavillion_proto::{ClientId, PeerId};
use pavillion_std::keys::generate_psk;
use pavillion_std::store::StoreErrorKind;
use pavillion_std::{
    Client, ClientConfig, DurableError, DurablePeer, OpenError, Server, ServerConfig,
};

const ID: ClientId = ClientId(*b"durable-test-id1");
const OTHER: ClientId = ClientId(*b"durable-test-id2");
const WAIT: Duration = Duration::from_secs(10);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pav-durable-std-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn server_config(psk: &Psk, store: &Path) -> ServerConfig {
    ServerConfig::new()
        .psk_client(ID, psk.clone())
        .psk_client(OTHER, psk.clone())
        .durable(store)
}

fn client_config(id: ClientId, psk: &Psk, store: &Path) -> ClientConfig {
    ClientConfig::psk(id, psk.clone()).durable(store)
}

/// A loopback address nobody listens on now (the server starts there later).
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Every message the server receives until `n` arrived; consumes each unless `keep`.
fn receive(server: &Server, n: usize, keep: bool) -> Vec<(String, bool)> {
    let mut got = Vec::new();
    while got.len() < n {
        let d = server
            .recv_durable(WAIT)
            .unwrap()
            .unwrap_or_else(|| panic!("only {} of {n} durable messages arrived", got.len()));
        assert_eq!(d.from, DurablePeer::Client(PeerId::Client(ID)));
        assert_eq!(d.message.peer, Some(PeerId::Client(ID)));
        got.push((
            String::from_utf8(d.message.payload().to_vec()).unwrap(),
            d.redelivered,
        ));
        if !keep {
            assert!(server.consume_durable(&d, None).unwrap());
        }
    }
    got
}

fn payloads(got: &[(String, bool)]) -> Vec<String> {
    got.iter().map(|(p, _)| p.clone()).collect()
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

#[test]
fn client_to_server_each_message_once_and_acknowledged() {
    let dir = scratch("c2s");
    let psk = generate_psk();
    let server = Server::bind("127.0.0.1:0", server_config(&psk, &dir.join("s.redb"))).unwrap();
    let client = Client::connect(
        server.local_addr(),
        client_config(ID, &psk, &dir.join("c.redb")),
    )
    .unwrap();
    assert!(client.durable_restored().unwrap().fresh);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            client
                .send_durable("t", "n", format!("m{i}").as_bytes())
                .unwrap(),
        );
    }
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 50, "ids are never reused");
    for id in &ids {
        client.wait_durable_delivered(*id, WAIT).unwrap();
    }
    assert!(client.wait_durable_drained(WAIT).unwrap());
    assert_eq!(client.durable_queued().unwrap(), 0);
    let got = receive(&server, 50, false);
    assert_eq!(payloads(&got), expected(50));
    assert!(got.iter().all(|(_, again)| !again));
    assert_eq!(
        server.recv_durable(Duration::from_millis(300)).unwrap(),
        None
    );
}

#[test]
fn server_to_client_by_identity() {
    let dir = scratch("s2c");
    let psk = generate_psk();
    let server = Server::bind("127.0.0.1:0", server_config(&psk, &dir.join("s.redb"))).unwrap();
    // Queued before the client ever connected: it waits for a session with that identity.
    let id = server
        .send_durable(PeerId::Client(ID), "t", "n", b"hello")
        .unwrap();
    let client = Client::connect(
        server.local_addr(),
        client_config(ID, &psk, &dir.join("c.redb")),
    )
    .unwrap();
    let d = client
        .recv_durable(WAIT)
        .unwrap()
        .expect("the server's message");
    assert_eq!(
        (d.id, d.from, d.message.payload()),
        (id, DurablePeer::Server, &b"hello"[..])
    );
    assert!(client.consume_durable(&d, None).unwrap());
    assert!(!client.consume_durable(&d, None).unwrap(), "consumed once");
    server.wait_durable_delivered(id, WAIT).unwrap();
}

#[test]
fn a_receiver_restart_redelivers_what_was_not_consumed_and_nothing_else() {
    let dir = scratch("receiver-restart");
    let psk = generate_psk();
    let addr = free_addr();
    let store = dir.join("s.redb");
    let client = Client::connect(addr, client_config(ID, &psk, &dir.join("c.redb"))).unwrap();
    {
        let server = Server::bind(addr, server_config(&psk, &store)).unwrap();
        for i in 0..6 {
            let id = client
                .send_durable("t", "n", format!("m{i}").as_bytes())
                .unwrap();
            client.wait_durable_delivered(id, WAIT).unwrap();
        }
        // Three handled and consumed, three received but not consumed: then a crash.
        let got = receive(&server, 3, false);
        assert_eq!(payloads(&got), expected(3));
        let kept = receive(&server, 3, true);
        assert_eq!(payloads(&kept), vec!["m3", "m4", "m5"]);
        server.close();
    }
    let server = Server::bind(addr, server_config(&psk, &store)).unwrap();
    let restored = server.durable_restored().unwrap();
    assert_eq!((restored.fresh, restored.inbox), (false, 3));
    let again = receive(&server, 3, false);
    assert_eq!(
        again,
        vec![
            ("m3".into(), true),
            ("m4".into(), true),
            ("m5".into(), true)
        ]
    );
    // The sender's retries of acknowledged messages are not delivered again either.
    assert_eq!(
        server.recv_durable(Duration::from_millis(500)).unwrap(),
        None
    );
    drop(server);
    let server = Server::bind(addr, server_config(&psk, &store)).unwrap();
    assert_eq!(server.durable_restored().unwrap().inbox, 0);
    assert_eq!(
        server.recv_durable(Duration::from_millis(300)).unwrap(),
        None
    );
}

#[test]
fn a_sender_restart_sends_what_was_stored_and_not_acknowledged() {
    let dir = scratch("sender-restart");
    let psk = generate_psk();
    let addr = free_addr();
    let store = dir.join("c.redb");
    let origin = {
        // Nobody listens: the messages are stored, not acknowledged.
        let client = Client::connect(addr, client_config(ID, &psk, &store)).unwrap();
        for i in 0..5 {
            client
                .send_durable_marked("t", "n", format!("m{i}").as_bytes(), i + 1)
                .unwrap();
        }
        assert_eq!(client.durable_queued().unwrap(), 5);
        let origin = client.durable_restored().unwrap().origin;
        client.close();
        origin
    };
    let server = Server::bind(addr, server_config(&psk, &dir.join("s.redb"))).unwrap();
    let client = Client::connect(addr, client_config(ID, &psk, &store)).unwrap();
    let restored = client.durable_restored().unwrap();
    assert_eq!(restored.origin, origin, "the origin is stored");
    assert_eq!((restored.queued, restored.send_mark), (5, Some(5)));
    let got = receive(&server, 5, false);
    assert_eq!(payloads(&got), expected(5));
    assert!(client.wait_durable_drained(WAIT).unwrap());
    // A new message after the restart gets a seq never used before.
    let next = client.send_durable("t", "n", b"m5").unwrap();
    assert_eq!(next.origin, origin);
    assert_eq!(next.seq.0, 6);
    assert_eq!(payloads(&receive(&server, 1, false)), vec!["m5"]);
}

fn open_error(result: Result<Client, OpenError>) -> DurableError {
    match result {
        Err(OpenError::Durable(e)) => e,
        Err(other) => panic!("not a durable error: {other}"),
        Ok(_) => panic!("the client started on a bad store"),
    }
}

fn assert_corrupt_and_untouched(path: &Path, psk: &Psk) {
    let before = std::fs::read(path).unwrap();
    let e = open_error(Client::connect(free_addr(), client_config(ID, psk, path)));
    match &e {
        DurableError::Store { path: p, kind, .. } => {
            assert_eq!(*kind, StoreErrorKind::Corrupt, "{e}");
            assert_eq!(p, &path.display().to_string());
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the store was changed"
    );
}

/// A store with a few queued messages.
fn filled_store(path: &Path, psk: &Psk) {
    let client = Client::connect(free_addr(), client_config(ID, psk, path)).unwrap();
    for i in 0..3 {
        client
            .send_durable("t", "n", format!("m{i}").as_bytes())
            .unwrap();
    }
    client.close();
}

#[test]
fn a_truncated_store_is_refused_at_connect_and_left_as_it_is() {
    let dir = scratch("truncated");
    let psk = generate_psk();
    let path = dir.join("c.redb");
    filled_store(&path, &psk);
    let full = std::fs::read(&path).unwrap();
    for keep in [0, 64, full.len() / 2] {
        std::fs::write(&path, &full[..keep]).unwrap();
        assert_corrupt_and_untouched(&path, &psk);
    }
}

#[test]
fn a_corrupt_store_is_refused_at_connect_and_left_as_it_is() {
    let dir = scratch("corrupt");
    let psk = generate_psk();
    let path = dir.join("c.redb");
    filled_store(&path, &psk);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().take(512) {
        *b = !*b;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_corrupt_and_untouched(&path, &psk);
}

#[test]
fn a_store_of_another_identity_is_refused_and_left_as_it_is() {
    let dir = scratch("foreign");
    let psk = generate_psk();
    let path = dir.join("c.redb");
    filled_store(&path, &psk);
    let before = std::fs::read(&path).unwrap();
    let e = open_error(Client::connect(
        free_addr(),
        client_config(OTHER, &psk, &path),
    ));
    assert!(matches!(e, DurableError::ForeignIdentity { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Its owner still opens it, with its messages.
    let client = Client::connect(free_addr(), client_config(ID, &psk, &path)).unwrap();
    assert_eq!(client.durable_restored().unwrap().queued, 3);
}

#[test]
fn a_store_in_use_by_another_endpoint_is_refused() {
    let dir = scratch("in-use");
    let psk = generate_psk();
    let path = dir.join("c.redb");
    let _first = Client::connect(free_addr(), client_config(ID, &psk, &path)).unwrap();
    let e = open_error(Client::connect(free_addr(), client_config(ID, &psk, &path)));
    assert!(
        matches!(
            e,
            DurableError::Store {
                kind: StoreErrorKind::InUse,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn without_a_store_durable_sends_say_so() {
    let psk = generate_psk();
    let client = Client::connect(free_addr(), ClientConfig::psk(ID, psk)).unwrap();
    assert_eq!(client.durable_restored(), None);
    assert_eq!(
        client.send_durable("t", "n", b"x"),
        Err(DurableError::NotEnabled)
    );
}

/// Makes the file immutable (`chattr +i`): writes through an open descriptor fail then,
/// even for root. `None` where that is not possible (no privilege, another filesystem).
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn set(path: &'a Path) -> Option<Self> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Immutable(path))
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(self.0)
            .status();
    }
}

#[test]
fn a_store_that_cannot_be_written_fails_the_send_with_a_typed_error() {
    let dir = scratch("read-only");
    let psk = generate_psk();
    let path = dir.join("c.redb");
    let client = Client::connect(free_addr(), client_config(ID, &psk, &path)).unwrap();
    // The first batch (the store's identity and origin) is written before we freeze it.
    client.send_durable("t", "n", b"stored").unwrap();
    let Some(_frozen) = Immutable::set(&path) else {
        eprintln!(
            "skipped: cannot make {} immutable (chattr +i)",
            path.display()
        );
        return;
    };
    match client.send_durable("t", "n", b"not stored") {
        Err(DurableError::Store { path: p, .. }) => assert_eq!(p, path.display().to_string()),
        other => panic!("a send to an unwritable store said {other:?}"),
    }
}
