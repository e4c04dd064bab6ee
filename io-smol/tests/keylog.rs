//! The async adapter's tap: with `PAVILLION_KEYLOGFILE` set and a capture asked for
//! (`pavillion_smol::tap::capture_to`), real loopback sessions over
//! suites 1, 2 and 3 write their secrets to the key log, and those secrets open the sessions'
//! captured packets with `pavillion_proto::dissect::Dissector`.
//!
//! The key log is read from the environment once per process, so the session runs in a child:
//! this test binary again, with the variables set (see `support/tap.rs`).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "../../io-std/tests/support/pcapng.rs"]
mod pcapng;
#[path = "../../io-std/tests/support/suites.rs"]
mod suites;
#[path = "../../io-std/tests/support/tap.rs"]
mod tap;

use std::path::Path;
use std::time::Duration;

use pavillion_capture::KEYLOG_ENV;
use pavillion_proto::ClientId;
use pavillion_smol::{Client, RpcFailure, Server};
use suites::{configs, Suite};

const NAME: &str = "the_key_log_opens_the_captured_sessions_of_every_suite";

#[test]
fn the_key_log_opens_the_captured_sessions_of_every_suite() {
    if let Some(capture) = std::env::var_os(tap::CHILD) {
        return sessions(Path::new(&capture));
    }
    tap::run_child_and_check(NAME, "smol");
}

/// The child: a capture, then one session and call per suite, each with its own server.
fn sessions(capture: &Path) {
    assert!(std::env::var_os(KEYLOG_ENV).is_some());
    pavillion_smol::tap::capture_to(capture).unwrap();
    smol::block_on(async {
        for (i, suite) in [Suite::Psk, Suite::Ecc, Suite::NoiseIk]
            .into_iter()
            .enumerate()
        {
            let id = ClientId([i as u8 + 1; 16]);
            let (sc, cc) = configs(id, suite);
            let server = Server::bind("127.0.0.1:0", sc).await.unwrap();
            server.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
            let client = Client::connect(server.local_addr(), cc).await.unwrap();
            client.wait_connected(Duration::from_secs(5)).await.unwrap();
            assert_eq!(&client.call(401, b"tapped").await.unwrap()[..], b"tapped");
            client.close().await;
            server.close().await;
        }
    });
}
