//! One client's credentials at a server, over suites 1, 2 and 3, for the adapter tests that run
//! the same check over every suite (both adapters include this file by path).

use pavillion_io::{ClientConfig, ServerConfig};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;

/// The suite a test runs over.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Suite {
    Psk,
    Ecc,
    NoiseIk,
}

/// A server that knows client `id` under `suite`, and that client's configuration.
pub(crate) fn configs(id: ClientId, suite: Suite) -> (ServerConfig, ClientConfig) {
    let server_keys = KeyPair::from_secret_bytes([0x22; 32]);
    let client_keys = KeyPair::from_secret_bytes([0x11; 32]);
    let server = *server_keys.public();
    match suite {
        Suite::Psk => {
            let psk = Psk::from_bytes([0x5a; 32]);
            (
                ServerConfig::new().psk_client(id, psk.clone()),
                ClientConfig::psk(id, psk),
            )
        }
        Suite::Ecc | Suite::NoiseIk => {
            let s = ServerConfig::new()
                .keys(server_keys)
                .ecc_client(id, *client_keys.public());
            let c = match suite {
                Suite::Ecc => ClientConfig::ecc(id, client_keys, server),
                _ => ClientConfig::noise_ik(id, client_keys, server),
            };
            (s, c)
        }
    }
}
