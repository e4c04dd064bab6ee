//! `pav serve` as a broker and `pav listen` as its subscriber, as processes: subscriptions,
//! forwarding only to subscribers, one delivery from several brokers on a group, the server
//! going down and coming back, `--exit-on-disconnect`, and `--stats`. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[allow(dead_code)]
#[path = "support/netns.rs"]
mod netns;
#[path = "support/process.rs"]
mod process;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use process::{free_port, json_of, run_with, scratch, Running};

/// A folder with keys for a server and three devices: alice, bob and carol.
fn keys(name: &str) -> PathBuf {
    let dir = scratch(name);
    for who in ["server", "alice", "bob", "carol"] {
        let out = run_with(Some(&dir), &["keygen", "--out", who], &[], None);
        assert!(out.status.success(), "{out:?}");
    }
    dir
}

const SERVE: [&str; 8] = [
    "--secret-key-file",
    "server/secret.key",
    "--client",
    "alice/public.key",
    "--client",
    "bob/public.key",
    "--client",
    "carol/public.key",
];

/// `pav --json serve` on `addr` with the three devices, plus `extra`.
fn broker(dir: &Path, addr: &str, extra: &[&str]) -> Running {
    let mut args = vec!["--json", "serve", "--listen", addr, "--duration", "30"];
    args.extend_from_slice(&SERVE);
    args.extend_from_slice(extra);
    let server = Running::start_in(Some(dir), &args, &[]);
    assert_eq!(server.next_json()["event"], "listening");
    server
}

/// The flags of device `who` talking to `addr`.
fn device(who: &str, addr: &str) -> Vec<String> {
    [
        "-s",
        addr,
        "--secret-key-file",
        &format!("{who}/secret.key"),
        "--server-key-file",
        "server/public.key",
        "-t",
        "5",
    ]
    .map(String::from)
    .to_vec()
}

fn listen(dir: &Path, who: &str, addr: &str, target: &str, extra: &[&str]) -> Running {
    let flags = device(who, addr);
    let mut args = vec!["--json", "listen"];
    if !target.is_empty() {
        args.push(target);
    }
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let l = Running::start_in(Some(dir), &args, &[]);
    assert_eq!(l.next_json()["event"], "listening");
    l
}

fn send(dir: &Path, who: &str, addr: &str, target: &str, data: &str) -> serde_json::Value {
    let flags = device(who, addr);
    let mut args = vec!["--json", "send", target, "n", data];
    args.extend(flags.iter().map(String::as_str));
    let out = run_with(Some(dir), &args, &[], None);
    assert!(out.status.success(), "{out:?}");
    json_of(&out)
}

/// The next message event within `limit`, skipping other events.
fn message_within(l: &Running, limit: Duration) -> Option<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let v: serde_json::Value = serde_json::from_str(&l.line_within(left)?).unwrap();
        if v["event"] == "message" {
            return Some(v);
        }
    }
}

#[test]
fn the_broker_forwards_only_to_the_subscribers_of_a_target() {
    let dir = keys("subs");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = broker(&dir, &addr, &[]);
    let alice = listen(&dir, "alice", &addr, "kitchen", &[]);
    let carol = listen(&dir, "carol", &addr, "garage", &[]);
    // Each subscription is a reliable exchange that follows the listener's `listening` line;
    // on loopback it lands within milliseconds.
    std::thread::sleep(Duration::from_millis(300));

    let v = send(&dir, "bob", &addr, "kitchen", "21.5");
    assert_eq!(v["acked"][0], addr.as_str());
    assert_eq!(server.next_event("message")["target"], "kitchen");
    let got = message_within(&alice, Duration::from_secs(5)).expect("alice got nothing");
    assert_eq!(
        (&got["target"], &got["data"]),
        (&"kitchen".into(), &"21.5".into())
    );
    // carol subscribed to garage only.
    assert!(message_within(&carol, Duration::from_millis(700)).is_none());

    send(&dir, "bob", &addr, "garage", "open");
    let got = message_within(&carol, Duration::from_secs(5)).expect("carol got nothing");
    assert_eq!(got["data"], "open");
    assert!(message_within(&alice, Duration::from_millis(700)).is_none());

    // A sender subscribed to its own target does not get its message back.
    send(&dir, "alice", &addr, "kitchen", "mine");
    assert!(message_within(&alice, Duration::from_millis(700)).is_none());
}

/// `--forward-all`: every message to every other client, subscribed or not (for clients that
/// cannot subscribe); `--no-forward`: to nobody.
#[test]
fn forward_all_and_no_forward() {
    let dir = keys("forward-all");
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = broker(&dir, &addr, &["--forward-all"]);
    // Listening without a target subscribes to nothing.
    let alice = listen(&dir, "alice", &addr, "", &[]);
    send(&dir, "bob", &addr, "anything", "x");
    let got = message_within(&alice, Duration::from_secs(5)).expect("not forwarded");
    assert_eq!(got["target"], "anything");

    let addr = format!("127.0.0.1:{}", free_port());
    let _server = broker(&dir, &addr, &["--no-forward"]);
    let alice = listen(&dir, "alice", &addr, "kitchen", &[]);
    std::thread::sleep(Duration::from_millis(300));
    send(&dir, "bob", &addr, "kitchen", "x");
    assert!(message_within(&alice, Duration::from_millis(700)).is_none());
}

/// The server quits (SIGTERM) and a new one starts on the same port: the listener says so
/// both times, subscribes again by itself, and gets what is sent after the return.
#[test]
fn listen_says_when_the_server_goes_down_and_comes_back() {
    let dir = keys("downup");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = broker(&dir, &addr, &[]);
    let alice = listen(&dir, "alice", &addr, "kitchen", &[]);
    let seen = server.next_event("client_connected");
    assert!(seen["peer"].as_str().unwrap().contains("client"), "{seen}");
    server.signal("TERM");
    assert_eq!(server.wait().code(), Some(0));
    let down = alice.next_json();
    assert_eq!(down["event"], "server_down", "{down}");
    assert_eq!(down["reason"], "quit");
    assert_eq!(down["server"], addr.as_str());

    let _again = broker(&dir, &addr, &[]);
    let up = alice.next_json();
    assert_eq!(up["event"], "server_up", "{up}");
    assert_eq!(up["server"], addr.as_str());
    // Subscribed again at the new server: a message sent now arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        send(&dir, "bob", &addr, "kitchen", "after");
        if let Some(m) = message_within(&alice, Duration::from_millis(500)) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no message after the server came back"
        );
    };
    assert_eq!(got["data"], "after");
}

#[test]
fn listen_in_text_prints_down_and_back_lines() {
    let dir = keys("downup-text");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = broker(&dir, &addr, &[]);
    let flags = device("alice", &addr);
    let mut args = vec!["listen", "kitchen"];
    args.extend(flags.iter().map(String::as_str));
    let alice = Running::start_in(Some(&dir), &args, &[]);
    assert!(alice.next_line().starts_with("listening to kitchen on"));
    // Signal only once the server holds the session, or its quit would not reach alice.
    server.next_event("client_connected");
    server.signal("INT");
    assert_eq!(alice.next_line(), format!("server {addr} is down: it quit"));
    let _again = broker(&dir, &addr, &[]);
    assert_eq!(alice.next_line(), format!("server {addr} is back"));
}

#[test]
fn exit_on_disconnect_exits_1_on_a_quit_and_on_silence() {
    let dir = keys("exit");
    // A server that quits.
    let addr = format!("127.0.0.1:{}", free_port());
    let server = broker(&dir, &addr, &[]);
    let alice = listen(&dir, "alice", &addr, "kitchen", &["--exit-on-disconnect"]);
    server.next_event("client_connected");
    server.signal("TERM");
    assert_eq!(alice.next_json()["event"], "server_down");
    assert_eq!(alice.wait().code(), Some(1));

    // A server killed outright sends no quit: the listener notices the silence after its
    // down timeout (1 s here).
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = broker(&dir, &addr, &[]);
    let alice = listen(
        &dir,
        "alice",
        &addr,
        "kitchen",
        &["--exit-on-disconnect", "--down-timeout", "1"],
    );
    server.child.kill().unwrap();
    let killed = Instant::now();
    let down = alice.next_json();
    assert_eq!(
        (&down["event"], &down["reason"]),
        (&"server_down".into(), &"silent".into())
    );
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(alice.wait().code(), Some(1));
}

#[test]
fn serve_stats_counts_drops_by_reason_periodically_and_on_exit() {
    let dir = keys("stats");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = broker(&dir, &addr, &["--stats", "0.3"]);
    let first = server.next_event("stats");
    assert_eq!(first["final"], false);
    assert!(
        first["drops"]
            .as_object()
            .unwrap()
            .contains_key("bad_magic"),
        "{first}"
    );
    // Garbage: not a Pavillion datagram.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(b"garbage", &addr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let v = server.next_event("stats");
        if v["drops"]["bad_magic"] == 1 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the garbage was not counted: {v}"
        );
    };
    assert_eq!(seen["dropped"], 1);
    assert_eq!(seen["datagrams_received"], 1);
    server.signal("INT");
    let last = server.next_event("stats");
    assert_eq!(last["final"], true);
    assert_eq!(last["drops"]["bad_magic"], 1);
    server.next_event("stopped");

    // Text: one line per period, drops named.
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "serve",
        "--listen",
        &addr,
        "--stats",
        "0.2",
        "--duration",
        "1",
    ];
    args.extend_from_slice(&SERVE);
    let s2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = Running::start_in(Some(&dir), &args, &[]);
    assert!(text.next_line().starts_with("listening on"));
    s2.send_to(b"junk", &addr).unwrap();
    let mut lines = Vec::new();
    while let Some(l) = text.line_within(Duration::from_secs(3)) {
        lines.push(l);
    }
    let all = lines.join("\n");
    assert!(all.contains("stats (final):"), "{all}");
    assert!(all.contains("dropped 1 (bad_magic 1)"), "{all}");
}

/// Three brokers on one multicast group: a send to the group is acknowledged by all three,
/// and a listener gets the message once (it is subscribed at one broker only). Runs in a
/// private network namespace.
#[test]
fn three_brokers_on_a_group_deliver_once() {
    if !netns::inside() {
        netns::rerun_in_namespace("three_brokers_on_a_group_deliver_once");
        return;
    }
    let dir = keys("group");
    let group = format!("239.255.28.77:{}", free_port());
    let brokers: Vec<Running> = (0..3)
        .map(|_| broker(&dir, &group, &["--target", "kitchen"]))
        .collect();
    let alice = listen(&dir, "alice", &group, "kitchen", &[]);
    // The listener's sessions with every broker come up; its subscription sits at one.
    std::thread::sleep(Duration::from_millis(1500));
    let v = send(&dir, "bob", &group, "kitchen", "once");
    let acked = v["acked"].as_array().unwrap();
    assert_eq!(acked.len(), 3, "{v}");
    let got = message_within(&alice, Duration::from_secs(5)).expect("no delivery");
    assert_eq!(got["data"], "once");
    assert!(
        message_within(&alice, Duration::from_millis(1500)).is_none(),
        "delivered more than once"
    );
    drop(brokers);
}
