//! Just enough of a pcapng reader to check what `pav --pcap` and the adapters' tap wrote:
//! the enhanced packet blocks of a little-endian file with raw IPv4/IPv6 + UDP packets.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One captured UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u16_be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

/// Every UDP datagram of `file`, in order; panics on anything it does not expect (a test
/// wants to know).
pub fn read(file: &[u8]) -> Vec<Packet> {
    assert!(file.len() >= 12, "too short for a pcapng file");
    assert_eq!(
        u32_at(file, 0),
        0x0A0D_0D0A,
        "not a section header block first"
    );
    assert_eq!(u32_at(file, 8), 0x1A2B_3C4D, "not little-endian");
    let mut packets = Vec::new();
    let mut at = 0;
    let mut link_raw = false;
    while at < file.len() {
        let kind = u32_at(file, at);
        let len = u32_at(file, at + 4) as usize;
        assert!(
            len >= 12 && len % 4 == 0 && at + len <= file.len(),
            "block length {len}"
        );
        assert_eq!(u32_at(file, at + len - 4) as usize, len, "trailing length");
        let body = &file[at + 8..at + len - 4];
        match kind {
            // Interface description: LINKTYPE_RAW (101).
            1 => {
                link_raw = u16::from_le_bytes([body[0], body[1]]) == 101;
            }
            6 => {
                assert!(link_raw, "a packet before a raw-IP interface");
                let ts = (u64::from(u32_at(body, 4)) << 32) | u64::from(u32_at(body, 8));
                let cap = u32_at(body, 12) as usize;
                let ip = &body[20..20 + cap];
                let (from_ip, to_ip, udp): (IpAddr, IpAddr, &[u8]) = match ip[0] >> 4 {
                    4 => {
                        let ihl = usize::from(ip[0] & 0x0f) * 4;
                        assert_eq!(ip[9], 17, "not UDP");
                        let a: [u8; 4] = ip[12..16].try_into().unwrap();
                        let b: [u8; 4] = ip[16..20].try_into().unwrap();
                        (
                            Ipv4Addr::from(a).into(),
                            Ipv4Addr::from(b).into(),
                            &ip[ihl..],
                        )
                    }
                    6 => {
                        assert_eq!(ip[6], 17, "not UDP");
                        let a: [u8; 16] = ip[8..24].try_into().unwrap();
                        let b: [u8; 16] = ip[24..40].try_into().unwrap();
                        (
                            Ipv6Addr::from(a).into(),
                            Ipv6Addr::from(b).into(),
                            &ip[40..],
                        )
                    }
                    v => panic!("IP version {v}"),
                };
                let udp_len = usize::from(u16_be(udp, 4));
                assert_eq!(udp_len, udp.len(), "UDP length");
                packets.push(Packet {
                    at_us: ts,
                    from: SocketAddr::new(from_ip, u16_be(udp, 0)),
                    to: SocketAddr::new(to_ip, u16_be(udp, 2)),
                    payload: udp[8..].to_vec(),
                });
            }
            _ => {}
        }
        at += len;
    }
    packets
}
