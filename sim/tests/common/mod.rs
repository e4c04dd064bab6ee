//! Fixtures shared by the simulation tests.
#![allow(dead_code, unreachable_pub)]

use alloc::collections::BTreeMap;
use core::time::Duration;

use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, SendOptions, ServerConfig, ServerEvent,
};
use pavillion_proto::{ClientId, MessageId};
use pavillion_sim::{HostEvent, Script, Trace};

pub const ID: ClientId = ClientId(*b"sensor-000000001");

pub fn psk() -> Psk {
    Psk::from_bytes([7; 32])
}

pub fn server_config() -> ServerConfig {
    ServerConfig::new([0; 32]).with_psk_client(ID, psk())
}

pub fn client_config(server: core::net::SocketAddr) -> ClientConfig {
    ClientConfig::psk(ID, psk(), server, [0; 32])
}

/// `count` reliable messages with payloads "0", "1", ..., one every `interval` from `start`.
pub fn sender(
    start: Duration,
    interval: Duration,
    count: usize,
) -> Script<pavillion_proto::endpoint::Client> {
    Script::new().repeat(start, interval, count, |ctl, i| {
        let opts = SendOptions::reliable().with_timeout(Duration::from_secs(120));
        ctl.send_message("t", "n", i.to_string().as_bytes(), opts)
            .expect("queue has room");
    })
}

/// How many times each payload reached `host`.
pub fn received(trace: &Trace, host: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (_, e) in trace.events(host) {
        if let HostEvent::Client(ClientEvent::Message(msg))
        | HostEvent::Server(ServerEvent::Message { message: msg, .. }) = e
        {
            *m.entry(String::from_utf8_lossy(msg.payload()).into_owned())
                .or_insert(0) += 1;
        }
    }
    m
}

/// The ids `host` saw delivered.
pub fn delivered(trace: &Trace, host: &str) -> Vec<MessageId> {
    trace
        .events(host)
        .filter_map(|(_, e)| match e {
            HostEvent::Client(ClientEvent::Delivered { id, missing, .. })
            | HostEvent::Server(ServerEvent::Delivered { id, missing, .. })
                if missing.is_empty() =>
            {
                Some(*id)
            }
            _ => None,
        })
        .collect()
}

/// Asserts that payloads "0".."count" each arrived exactly once at `host`.
pub fn assert_exactly_once(trace: &Trace, host: &str, count: usize) {
    let got = received(trace, host);
    for i in 0..count {
        assert_eq!(
            got.get(&i.to_string()),
            Some(&1),
            "payload {i} at {host}: {got:?}"
        );
    }
    assert_eq!(got.len(), count, "unexpected payloads: {got:?}");
}
