//! The blocking adapter's tap: with `PAVILLION_KEYLOGFILE` set and a capture asked for
//! (`pavillion_std::tap::capture_to`, what `pav --pcap` does), real loopback sessions over
//! suites 1, 2 and 3 write their secrets to the key log, and those secrets open the sessions'
//! captured packets with `pavillion_proto::dissect::Dissector`; so do a fleet's authority and
//! member (their own driver).
//!
//! The key log is read from the environment once per process, so the session runs in a child:
//! this test binary again, with the variables set (see `support/tap.rs`).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/pcapng.rs"]
mod pcapng;
#[path = "support/suites.rs"]
mod suites;
#[path = "support/tap.rs"]
mod tap;

use std::path::Path;
use std::time::Duration;

use pavillion_capture::KEYLOG_ENV;
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::dissect::{Decryption, Dissector};
use pavillion_proto::endpoint::{
    AuthorityConfig, JoinCredential, ListedPeer, MemberConfig, Policy,
};
use pavillion_proto::ClientId;
use pavillion_std::authority::{Authority, AuthorityOptions, Member, MemberOptions};
use pavillion_std::{Client, RpcFailure, Server};
use suites::{configs, Suite};

const NAME: &str = "the_key_log_opens_the_captured_sessions_of_every_suite";

#[test]
fn the_key_log_opens_the_captured_sessions_of_every_suite() {
    if let Some(capture) = std::env::var_os(tap::CHILD) {
        return sessions(Path::new(&capture));
    }
    let (capture, secrets, packets) = tap::run_child_and_check(NAME, "std");

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
