//! The blocking adapter's tap: with `PAVILLION_KEYLOGFILE` set and a capture asked for
//! (`pavillion_std::tap::capture_to`, what `pav --pcap` does), real loopback sessions over
//! suites 1, 2 and 3 write their secrets to the key log, and those secrets open the sessions'
//! captured packets with `pavillion_proto::dissect::Dissector`; so do a fleet's authority and
//! member (their own driver).
//!
//! The key log is read from the environment once per process, so the session runs in a child:
//! this test binary again, with the variables set (see [`CHILD`]).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/pcapng.rs"]
mod pcapng;
#[path = "support/suites.rs"]
mod suites;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pavillion_capture::{read_key_log, KEYLOG_ENV, KEYLOG_WARNING};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::dissect::{Decryption, Dissector};
use pavillion_proto::endpoint::{
    AuthorityConfig, JoinCredential, ListedPeer, MemberConfig, Policy,
};
use pavillion_proto::ClientId;
use pavillion_std::authority::{Authority, AuthorityOptions, Member, MemberOptions};
use pavillion_std::{Client, RpcFailure, Server};
use suites::{configs, Suite};

/// Set (to the capture's path) in the child that runs the sessions.
const CHILD: &str = "PAV_TAP_TEST_CAPTURE";
const NAME: &str = "the_key_log_opens_the_captured_sessions_of_every_suite";

#[test]
fn the_key_log_opens_the_captured_sessions_of_every_suite() {
    if let Some(capture) = std::env::var_os(CHILD) {
        return sessions(Path::new(&capture));
    }
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tap-std-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keylog = dir.join("keys.log");
    let capture = dir.join("cap.pcapng");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, &capture)
        .env(KEYLOG_ENV, &keylog)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {out:?}");
    assert_eq!(
        stderr.matches(KEYLOG_WARNING).count(),
        1,
        "the warning is printed once per process: {stderr}"
    );

    let secrets = read_key_log(&keylog).unwrap();
    assert!(
        secrets.len() >= 3,
        "one secret per suite at least: {secrets:?}"
    );
    let packets = pcapng::read(&std::fs::read(&capture).unwrap());
    // Every datagram is captured twice, as sent and as received (both ends are here).
    assert!(packets.len() >= 12, "{} packets", packets.len());
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(packets
        .iter()
        .all(|p| p.at_us <= now_us && p.at_us + 600_000_000 > now_us));

    let opened = |with_keys: bool| {
        let mut d = Dissector::new();
        if with_keys {
            for s in &secrets {
                d.add_secret(s.clone());
            }
        }
        let mut names: Vec<(Option<u8>, &'static str)> = Vec::new();
        for p in &packets {
            let x = d.dissect(p.from, p.to, &p.payload);
            if matches!(x.decryption, Decryption::Opened(_)) {
                names.push((x.suite.map(|s| s.number()), x.name));
            }
        }
        names
    };
    let names = opened(true);
    for suite in [1, 2, 3] {
        for name in ["rpc_call", "rpc_response"] {
            assert!(
                names.contains(&(Some(suite), name)),
                "suite {suite} {name} not opened: {names:?}"
            );
        }
    }
    assert!(
        opened(false).is_empty(),
        "nothing opens without the key log"
    );

    // The fleet: its sessions with the authority, opened too.
    let authority: std::net::SocketAddr =
        std::fs::read_to_string(capture.with_extension("authority"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let mut d = Dissector::new();
    for s in &secrets {
        d.add_secret(s.clone());
    }
    let fleet: Vec<_> = packets
        .iter()
        .filter(|p| p.from == authority || p.to == authority)
        .map(|p| d.dissect(p.from, p.to, &p.payload))
        .filter(|x| matches!(x.decryption, Decryption::Opened(_)))
        .collect();
    assert!(!fleet.is_empty(), "no fleet packet opened");
}

/// The child: a capture, then one session and call per suite, each with its own server.
fn sessions(capture: &Path) {
    assert!(std::env::var_os(KEYLOG_ENV).is_some());
    pavillion_std::tap::capture_to(capture).unwrap();
    for (i, suite) in [Suite::Psk, Suite::Ecc, Suite::NoiseIk]
        .into_iter()
        .enumerate()
    {
        let id = ClientId([i as u8 + 1; 16]);
        let (sc, cc) = configs(id, suite);
        let server = Server::bind("127.0.0.1:0", sc).unwrap();
        server.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
        let client = Client::connect(server.local_addr(), cc).unwrap();
        client.wait_connected(Duration::from_secs(5)).unwrap();
        assert_eq!(&client.call(401, b"tapped").unwrap()[..], b"tapped");
        client.close();
        server.close();
    }
    let authority_keys = KeyPair::from_secret_bytes([0x31; 32]);
    let member_keys = KeyPair::from_secret_bytes([0x32; 32]);
    let policy = Policy {
        peers: vec![ListedPeer {
            public: *member_keys.public(),
            role: "sensor".into(),
            name: "s-1".into(),
        }],
        max_peers: 16,
        ..Policy::default()
    };
    let config = AuthorityConfig::new(authority_keys.clone(), policy, [3; 32]);
    let authority = Authority::start(AuthorityOptions::new(config)).unwrap();
    std::fs::write(
        capture.with_extension("authority"),
        authority.local_addr().to_string(),
    )
    .unwrap();
    let config = MemberConfig::new(
        member_keys,
        authority.local_addr(),
        *authority_keys.public(),
        JoinCredential::Listed,
        [4; 32],
    );
    let member = Member::start(MemberOptions::new(config)).unwrap();
    member.wait_joined(Duration::from_secs(5)).unwrap();
    member.close();
    authority.close();
}
