//! Addresses between `core::net` (proto's) and smoltcp's (embassy-net's).

use core::net::{IpAddr, SocketAddr};

use embassy_net::{IpAddress, IpEndpoint};

/// The embassy-net endpoint of a socket address. Without the `proto-ipv6` feature an IPv6
/// address becomes the unspecified IPv4 endpoint, which the socket will not send to.
///
/// # Examples
/// ```
/// let a: core::net::SocketAddr = "10.0.0.1:1783".parse().unwrap();
/// assert_eq!(pavillion_embassy::from_endpoint(pavillion_embassy::to_endpoint(a)), a);
/// ```
pub fn to_endpoint(addr: SocketAddr) -> IpEndpoint {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => IpAddress::Ipv4(v4),
        #[cfg(feature = "proto-ipv6")]
        IpAddr::V6(v6) => IpAddress::Ipv6(v6),
        // A stack without IPv6 cannot address it: the unspecified address, to which the
        // socket refuses to send (a failed send), so that it never reaches another peer.
        #[cfg(not(feature = "proto-ipv6"))]
        IpAddr::V6(_) => IpAddress::Ipv4(core::net::Ipv4Addr::UNSPECIFIED),
    };
    IpEndpoint::new(ip, addr.port())
}

/// The socket address of an embassy-net endpoint.
pub fn from_endpoint(endpoint: IpEndpoint) -> SocketAddr {
    let ip = match endpoint.addr {
        IpAddress::Ipv4(v4) => IpAddr::V4(v4),
        #[cfg(feature = "proto-ipv6")]
        IpAddress::Ipv6(v6) => IpAddr::V6(v6),
    };
    SocketAddr::new(ip, endpoint.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip() {
        for text in ["192.168.69.1:1783", "[fe80::1]:40000", "0.0.0.0:0"] {
            let a: SocketAddr = text.parse().unwrap();
            assert_eq!(from_endpoint(to_endpoint(a)), a, "{text}");
        }
    }
}
