//! Emission with the original source: the IPv4 and UDP headers a raw `IP_HDRINCL` socket
//! sends, built here because the kernel fills in nothing but the IP checksum and the packet
//! id for such a socket, and the UDP checksum covers the (spoofed) source address.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};

use crate::segment::SourceEmitter;

/// Length of the IPv4 (no options) and UDP headers in front of the payload.
pub const HEADERS_LEN: usize = 20 + 8;

/// Largest payload one IPv4 datagram holds with these headers.
pub const MAX_PAYLOAD: usize = 65_535 - HEADERS_LEN;

/// Builds the IPv4 and UDP headers of a datagram from `source` to `destination` carrying
/// `payload`: no options, "don't fragment" set, packet id 0 (allowed for unfragmentable
/// datagrams, RFC 6864), both checksums computed. `None` if the payload does not fit.
pub fn ipv4_udp_headers(
    source: SocketAddrV4,
    destination: SocketAddrV4,
    ttl: u8,
    payload: &[u8],
) -> Option<[u8; HEADERS_LEN]> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let total = u16::try_from(HEADERS_LEN + payload.len()).ok()?;
    let udp_len = total - 20;
    let mut h = [0u8; HEADERS_LEN];
    h[0] = 0x45; // version 4, header length 5 words
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = ttl;
    h[9] = 17; // UDP
    h[12..16].copy_from_slice(&source.ip().octets());
    h[16..20].copy_from_slice(&destination.ip().octets());
    let ip_sum = !fold(sum_words(&h[..20], 0));
    h[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    h[20..22].copy_from_slice(&source.port().to_be_bytes());
    h[22..24].copy_from_slice(&destination.port().to_be_bytes());
    h[24..26].copy_from_slice(&udp_len.to_be_bytes());
    // Pseudo-header: source, destination, zero, protocol, UDP length.
    let mut sum = sum_words(&h[12..20], 0);
    sum += 17 + u32::from(udp_len);
    sum = sum_words(&h[20..28], sum);
    sum = sum_words(payload, sum);
    let udp_sum = match !fold(sum) {
        // An all-zero checksum means "none" in UDP over IPv4; its one's-complement twin is sent.
        0 => 0xffff,
        s => s,
    };
    h[26..28].copy_from_slice(&udp_sum.to_be_bytes());
    Some(h)
}

/// Adds big-endian 16-bit words of `bytes` (an odd last byte padded with zero) to `sum`.
fn sum_words(bytes: &[u8], mut sum: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        sum = fold_once(sum + u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = fold_once(sum + (u32::from(*last) << 8));
    }
    sum
}

/// Keeps a running sum below 2^17 so adding words never overflows.
fn fold_once(sum: u32) -> u32 {
    (sum & 0xffff) + (sum >> 16)
}

/// The one's-complement 16-bit sum.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = fold_once(sum);
    }
    u16::try_from(sum).unwrap_or(u16::MAX)
}

/// A raw IPv4 socket with `IP_HDRINCL`, bound to one interface.
#[derive(Debug)]
pub struct RawEmitter {
    socket: Socket,
    ttl: u8,
}

impl RawEmitter {
    /// Opens it on `interface`; fails with `PermissionDenied` without `CAP_NET_RAW`.
    pub fn open(interface: &str) -> io::Result<RawEmitter> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
        socket.set_header_included_v4(true)?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(interface.as_bytes()))?;
        Ok(RawEmitter { socket, ttl: 1 })
    }
}

impl SourceEmitter for RawEmitter {
    fn send(
        &self,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        let headers = ipv4_udp_headers(source, destination, self.ttl, payload)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
        let mut packet = Vec::with_capacity(HEADERS_LEN + payload.len());
        packet.extend_from_slice(&headers);
        packet.extend_from_slice(payload);
        // The port in the address is ignored by raw sockets; the header carries it.
        let to = SocketAddr::V4(SocketAddrV4::new(*destination.ip(), 0));
        self.socket.send_to(&packet, &to.into())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The worked example of the IPv4 header checksum (Wikipedia, "Internet checksum"):
    /// `4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7`.
    #[test]
    fn ip_header_checksum_matches_the_known_packet() {
        let payload = vec![0u8; 0x73 - HEADERS_LEN];
        let h = ipv4_udp_headers(
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 1), 1),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 199), 2),
            64,
            &payload,
        )
        .unwrap();
        let expected = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(h[..20], expected);
    }

    /// The UDP checksum, checked against a separate RFC 768 sum over the pseudo-header: a
    /// correct checksum makes the one's-complement sum of everything all ones.
    #[test]
    fn udp_checksum_matches_a_reference_sum() {
        // Cross-check against a straightforward, separate implementation of RFC 768.
        for len in [0usize, 1, 2, 3, 57, 1400] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 1, 1, 7), 5076);
            let dst = SocketAddrV4::new(Ipv4Addr::new(10, 1, 1, 255), 5076);
            let h = ipv4_udp_headers(src, dst, 1, &payload).unwrap();
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&src.ip().octets());
            pseudo.extend_from_slice(&dst.ip().octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&((8 + len) as u16).to_be_bytes());
            pseudo.extend_from_slice(&h[20..28]);
            pseudo.extend_from_slice(&payload);
            if pseudo.len() % 2 == 1 {
                pseudo.push(0);
            }
            let mut s: u64 = 0;
            for w in pseudo.chunks(2) {
                s += u64::from(u16::from_be_bytes([w[0], w[1]]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            // A correct checksum makes the whole sum all ones.
            assert_eq!(s, 0xffff, "payload length {len}");
            // And the IP header sums to all ones too.
            let mut s: u64 = 0;
            for w in h[..20].chunks(2) {
                s += u64::from(u16::from_be_bytes([w[0], w[1]]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            assert_eq!(s, 0xffff);
            assert_eq!(u16::from_be_bytes([h[2], h[3]]) as usize, 28 + len);
            assert_eq!(u16::from_be_bytes([h[24], h[25]]) as usize, 8 + len);
        }
    }

    #[test]
    fn too_large_payload_is_refused() {
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        assert!(ipv4_udp_headers(a, a, 1, &vec![0; MAX_PAYLOAD + 1]).is_none());
        assert!(ipv4_udp_headers(a, a, 1, &vec![0; MAX_PAYLOAD]).is_some());
    }
}
