//! Forged source addresses, which turmoil cannot send.
//!
//! An off-path attacker can put any source address on a datagram. turmoil gives every datagram
//! its real sender, so an adversary [middlebox](crate::middlebox) wraps the datagrams it forges
//! in one *envelope* to the target host; the target's driver unwraps it and hands each datagram
//! to its endpoint as if it had come from its forged source. Only hosts registered as spoofers
//! (adversary middleboxes) are unwrapped; an envelope from anyone else is an ordinary datagram.
//!
//! Forged sources are taken from 100.64.0.0/10 (shared address space, never a simulated host),
//! so that [`is_spoofed`] tells replies to them apart. Replies to forged sources are traced and
//! then go nowhere, as on a real network where nobody (or an unsuspecting victim) lives there.
//!
//! Envelope: `MAGIC`, then per datagram the IPv4 source (4 bytes), port and length (2 bytes
//! each, big-endian) and the bytes.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

const MAGIC: &[u8; 8] = b"\0spoofed";

/// Bytes of an envelope besides its datagrams, and per datagram.
pub(crate) const OVERHEAD: usize = MAGIC.len();
pub(crate) const ENTRY_OVERHEAD: usize = 8;

/// First address of the forged range (100.64.0.0) and its size (a /10).
const RANGE_START: u32 = 0x6440_0000;
const RANGE_LEN: u32 = 1 << 22;

/// Whether `addr` is in the range forged sources are drawn from.
///
/// # Examples
/// ```
/// assert!(pavillion_sim::is_spoofed(&pavillion_sim::spoofed_source(7)));
/// assert!(!pavillion_sim::is_spoofed(&"192.168.0.1:1783".parse().unwrap()));
/// ```
pub fn is_spoofed(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(v4) => u32::from(v4).wrapping_sub(RANGE_START) < RANGE_LEN,
        IpAddr::V6(_) => false,
    }
}

/// The `n`-th forged source: a new address for every `n` below 2^22, then new ports.
pub fn spoofed_source(n: u64) -> SocketAddr {
    // NOTE(cast): both values are reduced below their type's range first.
    let ip = RANGE_START + (n % u64::from(RANGE_LEN)) as u32;
    let port = 1024 + (n / u64::from(RANGE_LEN) % 60_000) as u16;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

/// Packs forged datagrams into one envelope; sources outside IPv4 are skipped.
pub(crate) fn wrap(batch: &[(SocketAddr, Vec<u8>)]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (from, bytes) in batch {
        let (IpAddr::V4(ip), Ok(len)) = (from.ip(), u16::try_from(bytes.len())) else {
            continue;
        };
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(&from.port().to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The forged datagrams of an envelope, or `None` if `data` is none.
pub(crate) fn unwrap(data: &[u8]) -> Option<Vec<(SocketAddr, &[u8])>> {
    let mut rest = data.strip_prefix(MAGIC.as_slice())?;
    let mut out = Vec::new();
    while let Some((head, tail)) = rest.split_first_chunk::<8>() {
        let ip = Ipv4Addr::new(head[0], head[1], head[2], head[3]);
        let port = u16::from_be_bytes([head[4], head[5]]);
        let len = usize::from(u16::from_be_bytes([head[6], head[7]]));
        let bytes = tail.get(..len)?;
        out.push((SocketAddr::new(IpAddr::V4(ip), port), bytes));
        rest = tail.get(len..)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_sources_are_in_the_range() {
        let batch: Vec<(SocketAddr, Vec<u8>)> = (0..5u64)
            .map(|i| (spoofed_source(i * 1_000_003), vec![i as u8; i as usize]))
            .collect();
        let env = wrap(&batch);
        let back = unwrap(&env).unwrap();
        assert_eq!(back.len(), 5);
        for ((a, b), (c, d)) in batch.iter().zip(&back) {
            assert_eq!((a, &b[..]), (c, *d));
            assert!(is_spoofed(a));
        }
        assert!(unwrap(b"PavillionS0").is_none());
        assert!(!is_spoofed(&"100.128.0.1:1".parse().unwrap()));
    }
}
