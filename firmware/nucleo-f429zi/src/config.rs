//! What a deployment changes: the server's address, the client's id and its credentials.
//! `pav serve` must know the same id and key (README.md, "Configure").

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The address `pav serve` listens on (its default port is 1783). Set it to your host's
/// address on the board's LAN.
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), 1783);

/// The board's client id: 16 bytes, as `pav` prints and takes them.
pub const CLIENT_ID: [u8; 16] = *b"nucleo-f429zi-01";

/// Suite 1: the pre-shared key, the 64 hex digits `pav serve --psk-client ID=KEY` is given.
/// Generate your own (`pav keygen --psk`); never ship this one.
#[cfg(feature = "suite-psk")]
pub const PSK_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Suites 2 and 3: the board's X25519 secret key and the server's public key, in hex.
#[cfg(any(feature = "suite-ecc", feature = "suite-noise"))]
pub const SECRET_HEX: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
#[cfg(any(feature = "suite-ecc", feature = "suite-noise"))]
pub const SERVER_PUBLIC_HEX: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The UDP port the client sends from.
pub const LOCAL_PORT: u16 = 40_000;
