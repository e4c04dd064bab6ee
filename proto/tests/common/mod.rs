//! The credentials and addresses the in-memory suite tests share: one client id per test file,
//! one PSK, one server and one client key pair, over suites 1, 2 and 3.
// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, ReceivedMessage, ServerConfig, ServerEvent,
};
use pavillion_proto::{ClientId, MessageId};

/// The suite a test runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suite {
    Psk,
    Ecc,
    Noise,
}

/// Every suite, for tests that run over each.
pub(crate) const SUITES: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::Noise];

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) fn server_addr() -> SocketAddr {
    addr("10.0.0.1:1783")
}

pub(crate) fn client_addr() -> SocketAddr {
    addr("10.0.0.2:40000")
}

pub(crate) fn psk() -> Psk {
    Psk::from_bytes([0x42; 32])
}

pub(crate) fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

pub(crate) fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

/// A server that knows client `id` under `suite`, seeded with `seed`.
pub(crate) fn server_config(suite: Suite, id: ClientId, seed: u8) -> ServerConfig {
    let base = ServerConfig::new([seed; 32]);
    match suite {
        Suite::Psk => base.with_psk_client(id, psk()),
        Suite::Ecc | Suite::Noise => base
            .with_keys(server_keys())
            .with_ecc_client(id, *client_keys().public()),
    }
}

/// Client `id` of `server` under `suite` (IK for suite 3), seeded with `seed`.
pub(crate) fn client_config(
    suite: Suite,
    id: ClientId,
    server: SocketAddr,
    seed: u8,
) -> ClientConfig {
    let seed = [seed; 32];
    match suite {
        Suite::Psk => ClientConfig::psk(id, psk(), server, seed),
        Suite::Ecc => ClientConfig::ecc(id, client_keys(), *server_keys().public(), server, seed),
        Suite::Noise => {
            ClientConfig::noise_ik(id, client_keys(), *server_keys().public(), server, seed)
        }
    }
}

/// What the tests read from the events of either role, so that one helper serves the events
/// of a client and of a server.
pub(crate) trait Observed {
    /// The message this event delivers, if it is one.
    fn message(&self) -> Option<&ReceivedMessage>;
    /// The id of the reliable message this event reports delivered, if it is one.
    fn delivered(&self) -> Option<MessageId>;
    /// "up" or "down" if this event reports the peer's liveness.
    fn liveness(&self) -> Option<&'static str>;
}

impl Observed for ClientEvent {
    fn message(&self) -> Option<&ReceivedMessage> {
        match self {
            ClientEvent::Message(m) => Some(m),
            _ => None,
        }
    }

    fn delivered(&self) -> Option<MessageId> {
        match self {
            ClientEvent::Delivered { id, .. } => Some(*id),
            _ => None,
        }
    }

    fn liveness(&self) -> Option<&'static str> {
        match self {
            ClientEvent::PeerDown { .. } => Some("down"),
            ClientEvent::PeerUp { .. } => Some("up"),
            _ => None,
        }
    }
}

impl Observed for ServerEvent {
    fn message(&self) -> Option<&ReceivedMessage> {
        match self {
            ServerEvent::Message { message, .. } => Some(message),
            _ => None,
        }
    }

    fn delivered(&self) -> Option<MessageId> {
        match self {
            ServerEvent::Delivered { id, .. } => Some(*id),
            _ => None,
        }
    }

    fn liveness(&self) -> Option<&'static str> {
        match self {
            ServerEvent::PeerDown { .. } => Some("down"),
            ServerEvent::PeerUp { .. } => Some("up"),
            _ => None,
        }
    }
}
