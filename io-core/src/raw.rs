//! Emitting IPv4 UDP datagrams with a source address and port of our choosing, so a relay can
//! re-emit a carried broadcast as if its original sender had sent it on this segment: replies then
//! go straight to that sender instead of to the relay (PROTOCOL.md §14, "emitting with or without
//! the original source").
//!
//! The kernel only lets a socket pick its IP source when it writes the IP header itself: a raw
//! IPv4 socket with `IP_HDRINCL`, which needs `CAP_NET_RAW` on Linux. [`RawEmitter::open`] fails
//! with the OS error otherwise, and the driver falls back to emitting from its mesh socket.
//!
//! The header builder, [`ipv4_udp_packet`], is pure so that its bytes can be checked without
//! privileges; the socket only adds the sending.

use core::fmt;
use core::sync::atomic::{AtomicU16, Ordering};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Length of the IPv4 header we build: no options.
const IPV4_HEADER_LEN: usize = 20;
/// Length of the UDP header.
const UDP_HEADER_LEN: usize = 8;
/// IANA protocol number of UDP, for the IP header and the UDP pseudo-header.
const PROTOCOL_UDP: u8 = 17;
/// The largest UDP payload one IPv4 datagram holds: the 16-bit total length minus both headers.
pub const MAX_PAYLOAD: usize = 65_535 - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// TTL of a multicast emission: link-local scope, like the original sender's, so the re-emitted
/// copy never leaves the segment through a multicast router.
pub const MULTICAST_TTL: u8 = 1;
/// TTL of any other emission, the common default of hosts.
pub const UNICAST_TTL: u8 = 64;

/// A payload too large for one IPv4 datagram; we refuse rather than truncate or fragment it
/// ourselves, since a cut datagram would be a different message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketTooLarge {
    /// The length of the refused payload, in bytes.
    pub len: usize,
}

impl fmt::Display for PacketTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a UDP payload of {} bytes does not fit one IPv4 datagram (at most {MAX_PAYLOAD})",
            self.len
        )
    }
}

impl std::error::Error for PacketTooLarge {}

impl From<PacketTooLarge> for io::Error {
    fn from(e: PacketTooLarge) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// The TTL an emission to `destination` gets: [`MULTICAST_TTL`] for a multicast group,
/// [`UNICAST_TTL`] otherwise.
pub fn ttl_for(destination: Ipv4Addr) -> u8 {
    if destination.is_multicast() {
        MULTICAST_TTL
    } else {
        UNICAST_TTL
    }
}

/// The IPv4 + UDP header and payload as bytes: version 4, no options, DSCP/ECN 0, flags and
/// fragment offset 0 (DF clear, so a path with a smaller MTU may fragment it like a host's own
/// datagram), protocol UDP, both checksums computed.
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddrV4};
/// use pavillion_io::raw::ipv4_udp_packet;
///
/// let from = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 4242);
/// let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 5076);
/// let packet = ipv4_udp_packet(from, to, 64, 1, b"hi").unwrap();
/// assert_eq!(packet.len(), 20 + 8 + 2);
/// assert!(ipv4_udp_packet(from, to, 64, 1, &vec![0; 65_508]).is_err());
/// ```
pub fn ipv4_udp_packet(
    source: SocketAddrV4,
    destination: SocketAddrV4,
    ttl: u8,
    id: u16,
    payload: &[u8],
) -> Result<Vec<u8>, PacketTooLarge> {
    if payload.len() > MAX_PAYLOAD {
        return Err(PacketTooLarge { len: payload.len() });
    }
    let udp_len = UDP_HEADER_LEN + payload.len();
    let total_len = IPV4_HEADER_LEN + udp_len;
    // Both fit 16 bits: checked against MAX_PAYLOAD above.
    let udp_len16 = u16::try_from(udp_len).map_err(|_| PacketTooLarge { len: payload.len() })?;
    let total_len16 =
        u16::try_from(total_len).map_err(|_| PacketTooLarge { len: payload.len() })?;
    let src = source.ip().octets();
    let dst = destination.ip().octets();

    let mut packet = Vec::with_capacity(total_len);
    packet.push(0x45); // version 4, IHL 5 words
    packet.push(0); // DSCP 0, ECN 0
    packet.extend_from_slice(&total_len16.to_be_bytes());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0, 0]); // flags (DF clear, MF clear), fragment offset 0
    packet.push(ttl);
    packet.push(PROTOCOL_UDP);
    packet.extend_from_slice(&[0, 0]); // header checksum, filled below
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    let header_sum = !fold(sum_words(0, &packet[..IPV4_HEADER_LEN]));
    packet[10..12].copy_from_slice(&header_sum.to_be_bytes());

    packet.extend_from_slice(&source.port().to_be_bytes());
    packet.extend_from_slice(&destination.port().to_be_bytes());
    packet.extend_from_slice(&udp_len16.to_be_bytes());
    packet.extend_from_slice(&[0, 0]); // checksum, filled below
    packet.extend_from_slice(payload);

    // RFC 768: the sum covers a pseudo-header (addresses, protocol, UDP length) and the UDP part.
    let mut sum = sum_words(0, &src);
    sum = sum_words(sum, &dst);
    sum += u32::from(PROTOCOL_UDP);
    sum += u32::from(udp_len16);
    sum = sum_words(sum, &packet[IPV4_HEADER_LEN..]);
    let mut udp_sum = !fold(sum);
    // 0 means "no checksum" in UDP over IPv4; a computed 0 is sent as its other encoding.
    if udp_sum == 0 {
        udp_sum = 0xFFFF;
    }
    packet[IPV4_HEADER_LEN + 6..IPV4_HEADER_LEN + 8].copy_from_slice(&udp_sum.to_be_bytes());
    Ok(packet)
}

/// The MTU assumed when the interface's cannot be read.
const ETHERNET_MTU: usize = 1500;
/// The smallest MTU IPv4 allows (RFC 791): a smaller configured value is treated as this.
const MIN_MTU: usize = 68;
/// The "more fragments" flag in the flags/offset field.
const MORE_FRAGMENTS: u16 = 0x2000;

/// Splits a packet built by [`ipv4_udp_packet`] into IPv4 fragments of at most `mtu` bytes
/// (RFC 791: same id, offsets in 8-byte units, "more fragments" on all but the last, each
/// header's checksum recomputed); a packet that fits is returned whole.
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddrV4};
/// use pavillion_io::raw::{ipv4_fragments, ipv4_udp_packet};
///
/// let from = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 4242);
/// let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 5076);
/// let packet = ipv4_udp_packet(from, to, 64, 1, &[7; 3000]).unwrap();
/// let fragments = ipv4_fragments(&packet, 1500);
/// assert_eq!(fragments.len(), 3);
/// assert!(fragments.iter().all(|f| f.len() <= 1500));
/// ```
pub fn ipv4_fragments(packet: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    if packet.len() <= mtu || packet.len() <= IPV4_HEADER_LEN {
        return vec![packet.to_vec()];
    }
    let (header, data) = packet.split_at(IPV4_HEADER_LEN);
    let step = (mtu.max(MIN_MTU) - IPV4_HEADER_LEN) / 8 * 8;
    let mut fragments = Vec::with_capacity(data.len().div_ceil(step));
    for (i, chunk) in data.chunks(step).enumerate() {
        let offset = i * step;
        let last = offset + chunk.len() == data.len();
        // Offsets stay below 65 536 / 8 because the packet's total length is 16 bits.
        let units = u16::try_from(offset / 8).unwrap_or(0x1FFF);
        let field = units | if last { 0 } else { MORE_FRAGMENTS };
        let total = u16::try_from(IPV4_HEADER_LEN + chunk.len()).unwrap_or(u16::MAX);
        let mut fragment = Vec::with_capacity(IPV4_HEADER_LEN + chunk.len());
        fragment.extend_from_slice(header);
        fragment[2..4].copy_from_slice(&total.to_be_bytes());
        fragment[6..8].copy_from_slice(&field.to_be_bytes());
        fragment[10..12].copy_from_slice(&[0, 0]);
        let sum = !fold(sum_words(0, &fragment));
        fragment[10..12].copy_from_slice(&sum.to_be_bytes());
        fragment.extend_from_slice(chunk);
        fragments.push(fragment);
    }
    fragments
}

/// Adds `bytes` as big-endian 16-bit words (an odd last byte padded with zero) to `sum`, without
/// folding: a `u32` holds the carries of any IPv4 datagram (at most 32 768 words of 0xFFFF).
fn sum_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Folds the carries of a one's complement sum back into 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

/// Emits IPv4 UDP datagrams with a chosen source address and port through a raw socket
/// (`IP_HDRINCL`).
#[derive(Debug)]
pub struct RawEmitter {
    socket: socket2::Socket,
    /// The IP id of the next packet; a fresh one per packet so that receivers reassembling
    /// fragments never mix two emissions.
    next_id: AtomicU16,
    /// The interface's MTU when opened: the kernel sends an `IP_HDRINCL` packet as it is and
    /// refuses one larger than the MTU, so we fragment ourselves, as the stack would have for a
    /// host's own datagram.
    mtu: usize,
}

impl RawEmitter {
    /// Opens a raw IPv4 socket bound to `interface` (`SO_BINDTODEVICE`) with `SO_BROADCAST`;
    /// fails with the OS error (`EPERM` without `CAP_NET_RAW`) so a caller can fall back.
    pub fn open(interface: &str) -> io::Result<RawEmitter> {
        Self::open_impl(interface)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn open_impl(interface: &str) -> io::Result<RawEmitter> {
        use socket2::{Domain, Protocol, Socket, Type};
        // IPPROTO_RAW (255): a send-only raw socket; the kernel delivers nothing to it, so it
        // never queues the segment's traffic.
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
        socket.set_header_included_v4(true)?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(interface.as_bytes()))?;
        let mut seed = [0u8; 2];
        // A random first id keeps a restarted relay's ids apart from the previous run's.
        getrandom::fill(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
        // The kernel's view; where it cannot be read, Ethernet's, and a smaller real MTU then
        // shows as an EMSGSIZE error from `send`, never as a cut datagram.
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(ETHERNET_MTU);
        Ok(RawEmitter {
            socket,
            next_id: AtomicU16::new(u16::from_ne_bytes(seed)),
            mtu,
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn open_impl(_interface: &str) -> io::Result<RawEmitter> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "raw emission with the original source is only implemented on Linux",
        ))
    }

    /// Sends `payload` from `source` to `destination` (a broadcast address or multicast group,
    /// or any address), building the IPv4 and UDP headers (TTL 1 for multicast, 64 otherwise;
    /// correct checksums; DF clear; a fresh IP id per packet). Payloads that do not fit one IPv4
    /// datagram (65 507 bytes) are an error, never truncated; a datagram larger than the
    /// interface's MTU goes out in fragments.
    pub fn send(
        &self,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let packet = ipv4_udp_packet(source, destination, ttl_for(*destination.ip()), id, payload)?;
        // With IP_HDRINCL the port of the address is unused; the kernel routes on the IP only.
        let to = socket2::SockAddr::from(SocketAddrV4::new(*destination.ip(), 0));
        for fragment in ipv4_fragments(&packet, self.mtu) {
            let sent = self.socket.send_to(&fragment, &to)?;
            if sent != fragment.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("raw socket sent {sent} of {} bytes", fragment.len()),
                ));
            }
        }
        Ok(())
    }
}

/// The first IPv4 address of `interface`, its prefix length and its broadcast address (the
/// kernel's, or the address with the host bits set when the interface reports none).
///
/// Read with `getifaddrs` through `nix` (already in the dependency tree, safe, and the one call
/// that gives address, netmask and broadcast together, where `/proc/net` has no IPv4 addresses).
pub fn interface_ipv4(interface: &str) -> io::Result<(Ipv4Addr, u8, Ipv4Addr)> {
    imp::interface_ipv4(interface)
}

/// The first up, non-loopback interface with an IPv4 address: the segment a relay serves when
/// none is named.
pub fn default_interface() -> io::Result<String> {
    imp::default_interface()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use super::{io, Ipv4Addr};
    use nix::ifaddrs::{getifaddrs, InterfaceAddress};
    use nix::net::if_::InterfaceFlags;

    /// The IPv4 address, prefix and broadcast of one `getifaddrs` entry, if it is IPv4.
    fn ipv4_of(entry: &InterfaceAddress) -> Option<(Ipv4Addr, u8, Ipv4Addr)> {
        let address = entry.address.as_ref()?.as_sockaddr_in()?.ip();
        let mask = entry
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map_or(Ipv4Addr::BROADCAST, |m| m.ip());
        let mask_bits = u32::from(mask);
        let prefix = u8::try_from(mask_bits.leading_ones()).unwrap_or(32);
        let broadcast = entry
            .broadcast
            .as_ref()
            .filter(|_| entry.flags.contains(InterfaceFlags::IFF_BROADCAST))
            .and_then(|b| b.as_sockaddr_in())
            .map_or_else(
                || Ipv4Addr::from(u32::from(address) | !mask_bits),
                |b| b.ip(),
            );
        Some((address, prefix, broadcast))
    }

    pub(super) fn interface_ipv4(interface: &str) -> io::Result<(Ipv4Addr, u8, Ipv4Addr)> {
        getifaddrs()
            .map_err(io::Error::from)?
            .filter(|e| e.interface_name == interface)
            .find_map(|e| ipv4_of(&e))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("interface {interface} has no IPv4 address"),
                )
            })
    }

    pub(super) fn default_interface() -> io::Result<String> {
        getifaddrs()
            .map_err(io::Error::from)?
            .filter(|e| {
                e.flags.contains(InterfaceFlags::IFF_UP)
                    && !e.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            })
            .find(|e| ipv4_of(e).is_some())
            .map(|e| e.interface_name)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no up, non-loopback interface with an IPv4 address",
                )
            })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use super::{io, Ipv4Addr};

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "reading interface addresses is only implemented on Linux",
        )
    }

    pub(super) fn interface_ipv4(_interface: &str) -> io::Result<(Ipv4Addr, u8, Ipv4Addr)> {
        Err(unsupported())
    }

    pub(super) fn default_interface() -> io::Result<String> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests;
