//! Failures say what failed (`docs/PROTOCOL.md` §5.5): a server that answers with replies that
//! do not authenticate fails the caller's work with a typed reason, not a timeout; a server
//! that cannot be judged (down, suite 3 by design) still times out; one spoofed reply fails
//! nothing; servers report failed authentications per source, rate-limited.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    AuthFailure, ClientConfig, ClientEvent, FailReason, SendOptions, ServerConfig, ServerEvent,
};
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::{EccNonce, Setup};
use pavillion_proto::{ClientId, Duration};

mod common;

use common::{client_addr, client_keys, psk, server_addr, server_keys};

const ID: ClientId = ClientId(*b"auth-client-0001");
const STRANGER: ClientId = ClientId(*b"auth-stranger-01");

fn other_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x33; 32])
}

fn server() -> ServerConfig {
    ServerConfig::new([1; 32])
        .with_psk_client(ID, psk())
        .with_keys(server_keys())
        .with_ecc_client(ID, *client_keys().public())
}

fn net_with(client: ClientConfig) -> Network {
    let mut net = Network::new(3, Link::clean());
    net.add_server(server_addr(), server());
    net.add_client(client_addr(), client);
    net
}

/// Makes a call (2 s deadline) and a reliable message (5 s), runs 6 s, and returns their
/// outcome events in that order, with when each came.
fn outcomes(net: &mut Network) -> Vec<(ClientEvent, Duration)> {
    let start = net.now();
    let call = net
        .client(client_addr())
        .echo(start, b"x")
        .expect("call queued");
    let msg = net
        .client(client_addr())
        .send_message(start, "t", "n", b"m", SendOptions::reliable())
        .expect("message queued");
    let mut out = Vec::new();
    while net.now() - start < Duration::from_secs(6) {
        net.run_for(Duration::from_millis(10));
        for e in net.client_events(client_addr()) {
            let mine = match &e {
                ClientEvent::CallFailed { call: c, .. } | ClientEvent::CallTimedOut { call: c } => {
                    *c == call
                }
                ClientEvent::Failed { id, .. } | ClientEvent::TimedOut { id } => *id == msg,
                _ => false,
            };
            if mine {
                out.push((e, net.now() - start));
            }
        }
    }
    out
}

fn failed_with(out: &[(ClientEvent, Duration)], reason: FailReason) -> bool {
    out.len() == 2
        && out.iter().all(|(e, t)| {
            let r = match e {
                ClientEvent::CallFailed { reason, .. } | ClientEvent::Failed { reason, .. } => {
                    Some(*reason)
                }
                _ => None,
            };
            // Well before the call's 2 s deadline: judged from the packets, not timed out.
            r == Some(reason) && *t < Duration::from_secs(1)
        })
}

fn timed_out(out: &[(ClientEvent, Duration)]) -> bool {
    out.len() == 2
        && out.iter().all(|(e, _)| {
            matches!(
                e,
                ClientEvent::CallTimedOut { .. } | ClientEvent::TimedOut { .. }
            )
        })
}

fn server_reports(net: &mut Network) -> Vec<(SocketAddr, u32)> {
    net.server_events(server_addr())
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::AuthenticationFailed { from, count } => Some((from, count)),
            _ => None,
        })
        .collect()
}

#[test]
fn suite_1_wrong_psk_fails_as_authentication_failed() {
    let c = ClientConfig::psk(ID, Psk::from_bytes([7; 32]), server_addr(), [2; 32]);
    let mut net = net_with(c);
    let out = outcomes(&mut net);
    assert!(
        failed_with(
            &out,
            FailReason::AuthenticationFailed(AuthFailure::WrongPsk)
        ),
        "{out:?}"
    );
}

#[test]
fn suite_2_wrong_server_key_fails_as_authentication_failed() {
    let c = ClientConfig::ecc(
        ID,
        client_keys(),
        *other_keys().public(),
        server_addr(),
        [2; 32],
    );
    let mut net = net_with(c);
    let out = outcomes(&mut net);
    assert!(
        failed_with(
            &out,
            FailReason::AuthenticationFailed(AuthFailure::WrongKey)
        ),
        "{out:?}"
    );
}

#[test]
fn suites_1_and_2_unknown_client_is_rejected_and_reported_by_the_server() {
    for c in [
        ClientConfig::psk(
            STRANGER,
            Psk::from_bytes([0x42; 32]),
            server_addr(),
            [2; 32],
        ),
        ClientConfig::ecc(
            STRANGER,
            client_keys(),
            *server_keys().public(),
            server_addr(),
            [2; 32],
        ),
    ] {
        let mut net = net_with(c);
        let out = outcomes(&mut net);
        assert!(failed_with(&out, FailReason::Rejected), "{out:?}");
        let reports = server_reports(&mut net);
        assert!(
            !reports.is_empty() && reports.iter().all(|(a, _)| *a == client_addr()),
            "{reports:?}"
        );
    }
}

#[test]
fn suite_3_failures_time_out_and_the_server_reports_them_at_most_once_per_interval() {
    let wrong_server_key = ClientConfig::noise_ik(
        ID,
        client_keys(),
        *other_keys().public(),
        server_addr(),
        [2; 32],
    );
    let unknown_client = ClientConfig::noise_ik(
        ID,
        other_keys(),
        *server_keys().public(),
        server_addr(),
        [2; 32],
    );
    let wrong_psk = ClientConfig::noise_psk(ID, Psk::from_bytes([7; 32]), server_addr(), [2; 32]);
    for c in [wrong_server_key, unknown_client, wrong_psk] {
        let mut net = net_with(c);
        let out = outcomes(&mut net);
        assert!(timed_out(&out), "{out:?}");
        // Initiations were retried many times in 6 s; one report for the first, and at most
        // one more per 10 s interval after it.
        let reports = server_reports(&mut net);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0], (client_addr(), 1));
        net.run_for(Duration::from_secs(10));
        let later = server_reports(&mut net);
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(
            later[0].1 > 1,
            "{later:?}: the failures in between are counted"
        );
    }
}

#[test]
fn a_down_server_still_times_out() {
    let c = ClientConfig::psk(ID, Psk::from_bytes([0x42; 32]), server_addr(), [2; 32]);
    let mut net = net_with(c);
    net.set_up(server_addr(), false);
    let out = outcomes(&mut net);
    assert!(timed_out(&out), "{out:?}");
}

#[test]
fn one_spoofed_bad_reply_fails_nothing() {
    // The server is down; an attacker sends one op 11 that does not open, from its address,
    // right after our first op 1. The work times out as for a down server.
    let c = ClientConfig::ecc(
        ID,
        client_keys(),
        *server_keys().public(),
        server_addr(),
        [2; 32],
    );
    let mut net = net_with(c);
    net.set_up(server_addr(), false);
    let forged = Setup::EccNonce(EccNonce {
        box_nonce: [9; 24],
        sealed: [9; 64],
    });
    let mut buf = [0u8; 200];
    let n = forged.emit(&mut buf).unwrap();
    net.run_for(Duration::from_millis(1));
    net.inject(server_addr(), client_addr(), &buf[..n]);
    let out = outcomes(&mut net);
    assert!(timed_out(&out), "{out:?}");
}
