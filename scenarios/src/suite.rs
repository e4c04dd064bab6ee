//! The cipher suites a scenario runs over, and the credentials each gives its hosts.

use core::fmt;
use core::net::SocketAddr;

use pavillion_proto::endpoint::{ClientConfig, ServerConfig};
pub use pavillion_proto::testing::fixture::client_id;
use pavillion_proto::testing::fixture::{client_keys, client_psk, server_keys};

/// A cipher suite this build can run.
///
/// Scenarios never match on the suite to build endpoints: they ask it for configurations
/// ([`Suite::server_config`], [`Suite::client_config`]) and for the behaviour they assert
/// ([`Suite::keeps_session_on_rebind`]), so a new suite is one variant and its arms here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[non_exhaustive]
pub enum Suite {
    /// Suite 1: pre-shared keys.
    Psk,
    /// Suite 2: X25519 key pairs (ECC).
    Ecc,
    /// Suite 3: Noise IK with X25519 key pairs, ChaCha20-Poly1305 sessions by index.
    Noise,
}

impl Suite {
    /// Every suite of this build, in suite-number order.
    pub const ALL: &'static [Suite] = &[Suite::Psk, Suite::Ecc, Suite::Noise];

    /// The short name used on the command line and in tables.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Psk => "psk",
            Suite::Ecc => "ecc",
            Suite::Noise => "noise",
        }
    }

    /// The suite number of the protocol.
    pub const fn number(self) -> u8 {
        match self {
            Suite::Psk => 1,
            Suite::Ecc => 2,
            Suite::Noise => 3,
        }
    }

    /// Whether a session survives the client's address changing under it (a NAT rebinding).
    ///
    /// Suites 1 and 2 bind a session to the client's address, so the client must re-handshake;
    /// suite 3 is meant to keep the session, and the NAT scenario asserts whichever applies.
    pub const fn keeps_session_on_rebind(self) -> bool {
        match self {
            Suite::Psk | Suite::Ecc => false,
            Suite::Noise => true,
        }
    }

    /// A server configuration that admits clients `0..clients` under this suite.
    pub fn server_config(self, clients: usize) -> ServerConfig {
        let mut config = ServerConfig::new([0; 32]);
        match self {
            Suite::Psk => {
                for i in 0..clients {
                    config = config.with_psk_client(client_id(i), client_psk(i));
                }
            }
            Suite::Ecc | Suite::Noise => {
                config = config.with_keys(server_keys());
                for i in 0..clients {
                    config = config.with_ecc_client(client_id(i), *client_keys(i).public());
                }
            }
        }
        config
    }

    /// The configuration of client `i`, talking to `server` (an address or a group).
    pub fn client_config(self, i: usize, server: SocketAddr) -> ClientConfig {
        match self {
            Suite::Psk => ClientConfig::psk(client_id(i), client_psk(i), server, [0; 32]),
            Suite::Ecc => ClientConfig::ecc(
                client_id(i),
                client_keys(i),
                *server_keys().public(),
                server,
                [0; 32],
            ),
            Suite::Noise => ClientConfig::noise_ik(
                client_id(i),
                client_keys(i),
                *server_keys().public(),
                server,
                [0; 32],
            ),
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_numbered_in_order() {
        assert_eq!(Suite::ALL.len(), 3);
        assert_eq!(Suite::Ecc.number(), 2);
    }
}
