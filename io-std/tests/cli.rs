//! The `pav` binary driven as a process, on 127.0.0.1 with a free port. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use pavillion_proto::ClientId;
use pavillion_std::keys::parse_psk;
use pavillion_std::{Client, ClientConfig, Server, ServerConfig};
use process::{free_port, json_of, run, Running};

fn psk_hex() -> String {
    "5a".repeat(32)
}

#[test]
fn serve_then_call_send_listen_and_time() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let psk = psk_hex();
    // The PSK comes from the environment for every process.
    let env = [("PAV_PSK", psk.as_str())];
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--duration", "30"],
        &env,
    );
    let hello = server.next_json();
    assert_eq!(hello["event"], "listening");
    assert_eq!(hello["addr"], addr.as_str());

    let listener = Running::start(
        &["--json", "listen", "t1", "--server", &addr, "--count", "1"],
        &env,
    );
    assert_eq!(listener.next_json()["event"], "listening");

    // call: the demo functions (401 echoes, as the reference's does; 404 upper-cases), the
    // built-in echo, a failing function.
    let out = run(&["--json", "call", "401", "hello", "-s", &addr], &env);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"], "hello");
    let out = run(&["call", "404", "hello", "-s", &addr], &env);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HELLO");
    let out = run(&["call", "0", "--hex", "00ff", "-s", &addr], &env);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0x00ff");
    let out = run(&["--json", "call", "403", "-s", &addr], &env);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["error"], "remote");
    assert_eq!(v["status"], 1);

    // send: reliable by default, acknowledged by the server, forwarded to the listener.
    let out = run(&["--json", "send", "t1", "temp", "21.5", "-s", &addr], &env);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["reliable"], true);
    assert_eq!(v["acked"][0], addr.as_str());
    let m = server.next_event("message");
    assert_eq!(
        (&m["event"], &m["target"], &m["name"], &m["data"]),
        (
            &"message".into(),
            &"t1".into(),
            &"temp".into(),
            &"21.5".into()
        )
    );
    assert_eq!(m["reliable"], true);
    let got = listener.next_json();
    assert_eq!(got["name"], "temp");
    assert_eq!(got["data"], "21.5");
    assert!(listener.wait().success());

    let out = run(
        &[
            "--json",
            "send",
            "t2",
            "n",
            "d",
            "--unreliable",
            "-s",
            &addr,
        ],
        &env,
    );
    assert!(out.status.success());
    assert_eq!(json_of(&out)["reliable"], false);
    let m = server.next_event("message");
    assert_eq!(
        (&m["target"], &m["reliable"]),
        (&"t2".into(), &false.into())
    );

    // time: the server's clock and the offset.
    let out = run(&["--json", "time", "-s", &addr], &env);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    assert!(v["remote_now_us"].as_u64().unwrap() > 0);
    assert!(v["offset_us"].is_i64());

    // A wrong key is refused in time, not hung.
    let other = "11".repeat(32);
    let out = run(
        &[
            "call",
            "0",
            "x",
            "-s",
            &addr,
            "--timeout",
            "0.5",
            "--psk",
            &other,
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ecc_serve_and_call() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let keys = json_of(&run(&["--json", "keygen"], &[]));
    let server_secret = keys["secret_key"].as_str().unwrap().to_owned();
    let server_public = keys["public_key"].as_str().unwrap().to_owned();
    let client = json_of(&run(&["--json", "keygen"], &[]));
    let client_secret = client["secret_key"].as_str().unwrap();
    let client_public = client["public_key"].as_str().unwrap();
    let ecc_client = format!("cid2cid2cid2cid2={client_public}");
    let server = Running::start(
        &[
            "--json",
            "serve",
            "-l",
            &addr,
            "--duration",
            "20",
            "--secret-key",
            &server_secret,
            "--ecc-client",
            &ecc_client,
        ],
        &[],
    );
    assert_eq!(server.next_json()["public_key"], server_public.as_str());
    let out = run(
        &[
            "call",
            "402",
            "abc",
            "-s",
            &addr,
            "--suite",
            "ecc",
            "--secret-key",
            client_secret,
            "--server-key",
            &server_public,
            "--client-id",
            "cid2cid2cid2cid2",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "cba");
}

#[test]
fn keygen_output_parses_back() {
    let v = json_of(&run(&["--json", "keygen"], &[]));
    assert_eq!(v["psk_hex"].as_str().unwrap().len(), 64);
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    let b64 = v["psk_base64"].as_str().unwrap();
    let hex = v["psk_hex"].as_str().unwrap();
    assert_eq!(
        pavillion_std::keys::parse_psk(b64).unwrap(),
        pavillion_std::keys::parse_psk(hex).unwrap()
    );
    let text = run(&["keygen"], &[]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("public key:"));
}

#[test]
fn bad_input_gets_a_clear_message_and_status_2() {
    let psk = psk_hex();
    let cases: &[(&[&str], &str)] = &[
        (&["call", "abc", "--psk", &psk], "function number"),
        (&["call", "70000", "--psk", &psk], "function number"),
        (&["call", "0", "--psk", "not-a-key"], "PSK must be 32 bytes"),
        (&["call", "0", "--psk", &"zz".repeat(32)], "not valid hex"),
        (
            &["call", "0", "--psk", &psk, "-s", "no such host:x"],
            "cannot resolve",
        ),
        (&["call", "0"], "no credentials"),
        (&["call", "0", "--secret-key", "abc"], "secret key"),
        (
            &["call", "0", "--psk", &psk, "--client-id", "short"],
            "client id",
        ),
        (&["send", "t", "n", "zz", "--hex", "--psk", &psk], "bad hex"),
        (&["serve", "--ecc-client", "nonsense"], "ID=PUBLICKEY"),
        (&["--log", "[[", "keygen"], "log filter"),
    ];
    for (args, expect) in cases {
        let out = run(args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err:?} lacks {expect:?}");
    }
    // From the environment, too.
    let out = run(&["call", "0"], &[("PAV_PSK", "short")]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_down_server_times_out_within_the_deadline() {
    let addr = format!("127.0.0.1:{}", free_port());
    let psk = psk_hex();
    let started = Instant::now();
    let out = run(
        &[
            "--json", "call", "0", "x", "-s", &addr, "-t", "0.5", "--psk", &psk,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["error"], "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let out = run(
        &[
            "send", "t", "n", "x", "-s", &addr, "-t", "0.5", "--psk", &psk,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no acknowledgement"));
}

/// The client id `pav` uses with a PSK when none is given.
const PAV_CLIENT: ClientId = ClientId(*b"pavillion-client");

/// Waits until `gone()` holds, and returns how long it took; fails after `limit`.
fn within(limit: Duration, what: &str, mut gone: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !gone() {
        assert!(started.elapsed() < limit, "{what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// Ctrl-C on `pav serve`: the server sends quit, so a connected client drops the session at
/// once (a dead server is otherwise only reported down after the 40 s down timeout, and its
/// session kept), and pav exits 0. The server runs with `--reply-socket`, so everything,
/// quit included, comes from its second port.
#[test]
fn sigint_on_serve_sends_quit_and_exits_0() {
    let addr = format!("127.0.0.1:{}", free_port());
    let psk = psk_hex();
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--reply-socket"],
        &[("PAV_PSK", psk.as_str())],
    );
    let hello = server.next_json();
    assert_eq!(hello["event"], "listening");
    let reply = hello["reply_addr"].as_str().unwrap().to_owned();
    assert_ne!(reply, addr);
    let config = ClientConfig::psk(PAV_CLIENT, parse_psk(&psk).unwrap());
    let client = Client::connect(addr.as_str(), config).unwrap();
    assert_eq!(&client.call(401, b"up").unwrap()[..], b"up");
    let servers: Vec<String> = client
        .servers()
        .iter()
        .map(|s| s.addr().to_string())
        .collect();
    assert_eq!(servers, vec![reply]);

    server.signal("INT");
    let took = within(Duration::from_secs(3), "no quit from pav serve", || {
        client.servers().is_empty()
    });
    println!("session dropped {took:?} after SIGINT");
    server.next_event("stopped");
    assert_eq!(server.wait().code(), Some(0));
}

/// SIGTERM on `pav listen`: the client sends quit, so the server drops the session at once
/// (its down timeout is 75 s), and pav exits 0.
#[test]
fn sigterm_on_listen_sends_quit_and_exits_0() {
    let psk = psk_hex();
    let config = ServerConfig::new().psk_client(PAV_CLIENT, parse_psk(&psk).unwrap());
    let server = Server::bind("127.0.0.1:0", config).unwrap();
    let addr = server.local_addr().to_string();
    let listener = Running::start(
        &["--json", "listen", "t", "--server", &addr],
        &[("PAV_PSK", psk.as_str())],
    );
    assert_eq!(listener.next_json()["event"], "listening");
    // `listening` follows the subscription being queued, not acknowledged: on a loaded
    // machine the server may not hold the session yet.
    within(Duration::from_secs(5), "no session at the server", || {
        server.clients().len() == 1
    });

    listener.signal("TERM");
    let took = within(Duration::from_secs(3), "no quit from pav listen", || {
        server.clients().is_empty()
    });
    println!("session dropped {took:?} after SIGTERM");
    assert_eq!(listener.next_json()["event"], "stopped");
    assert_eq!(listener.wait().code(), Some(0));
}
