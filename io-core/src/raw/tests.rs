//! Tests of the raw emitter: the header builder against a known packet and properties, and a
//! real send only on loopback or inside a network namespace the test makes and removes itself.

use super::*;
use quickcheck::{quickcheck, TestResult};
use std::net::UdpSocket;
use std::time::Duration;

/// A one's complement sum over `bytes` that verifies: a correct checksum makes it 0xFFFF. Written
/// apart from the builder's helpers so a bug in them cannot hide here.
fn verifies(bytes: &[u8]) -> bool {
    let mut sum: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        sum += if i % 2 == 0 {
            u64::from(*b) << 8
        } else {
            u64::from(*b)
        };
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum == 0xFFFF
}

fn addr(ip: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), port)
}

#[test]
fn builds_a_known_broadcast_packet() {
    // Computed apart (a Python struct/sum script), byte for byte.
    let expected: [u8; 33] = [
        0x45, 0x00, 0x00, 0x21, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11, 0x55, 0x87, 0x0a, 0x09, 0x09,
        0x09, 0xff, 0xff, 0xff, 0xff, 0x10, 0x92, 0x13, 0xd4, 0x00, 0x0d, 0x84, 0x8a, 0x68, 0x65,
        0x6c, 0x6c, 0x6f,
    ];
    let packet = ipv4_udp_packet(
        addr([10, 9, 9, 9], 4242),
        addr([255, 255, 255, 255], 5076),
        64,
        0x1234,
        b"hello",
    )
    .unwrap();
    assert_eq!(packet, expected);
}

#[test]
fn a_computed_zero_udp_checksum_is_sent_as_ffff() {
    // Find a payload whose checksum would be 0: the two-byte word that completes the sum.
    let (from, to) = (addr([10, 0, 0, 1], 1), addr([10, 0, 0, 2], 2));
    let base = ipv4_udp_packet(from, to, 64, 0, &[0, 0]).unwrap();
    let sum = u16::from_be_bytes([base[26], base[27]]);
    // The checksum with payload [0,0] is `sum`; adding the word `sum` to the data makes the
    // complemented total 0.
    let packet = ipv4_udp_packet(from, to, 64, 0, &sum.to_be_bytes()).unwrap();
    assert_eq!(&packet[26..28], &[0xFF, 0xFF]);
    assert!(verifies(&udp_with_pseudo_header(&packet)));
}

#[test]
fn the_largest_payload_fits_and_one_byte_more_is_refused() {
    let (from, to) = (addr([10, 0, 0, 1], 1), addr([10, 0, 0, 255], 2));
    let packet = ipv4_udp_packet(from, to, 64, 7, &vec![0xA5; MAX_PAYLOAD]).unwrap();
    assert_eq!(packet.len(), 65_535);
    assert_eq!(&packet[2..4], &[0xFF, 0xFF]);
    assert!(verifies(&packet[..20]));
    assert!(verifies(&udp_with_pseudo_header(&packet)));
    assert_eq!(
        ipv4_udp_packet(from, to, 64, 7, &vec![0; MAX_PAYLOAD + 1]),
        Err(PacketTooLarge { len: 65_508 })
    );
}

#[test]
fn multicast_goes_out_with_ttl_1_and_the_rest_with_64() {
    assert_eq!(ttl_for(Ipv4Addr::new(224, 0, 0, 251)), 1);
    assert_eq!(ttl_for(Ipv4Addr::new(239, 255, 0, 1)), 1);
    assert_eq!(ttl_for(Ipv4Addr::BROADCAST), 64);
    assert_eq!(ttl_for(Ipv4Addr::new(10, 1, 1, 255)), 64);
}

/// The pseudo-header of RFC 768 followed by the UDP part of `packet`.
fn udp_with_pseudo_header(packet: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&packet[12..20]);
    v.extend_from_slice(&[0, 17]);
    v.extend_from_slice(&packet[24..26]);
    v.extend_from_slice(&packet[20..]);
    v
}

quickcheck! {
    fn every_field_lands_and_both_checksums_verify(
        src: (u32, u16), dst: (u32, u16), ttl: u8, id: u16, payload: Vec<u8>
    ) -> TestResult {
        let from = SocketAddrV4::new(Ipv4Addr::from(src.0), src.1);
        let to = SocketAddrV4::new(Ipv4Addr::from(dst.0), dst.1);
        let Ok(p) = ipv4_udp_packet(from, to, ttl, id, &payload) else {
            return TestResult::failed();
        };
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let udp_len = usize::from(u16::from_be_bytes([p[24], p[25]]));
        TestResult::from_bool(
            p.len() == 28 + payload.len()
                && total == p.len()
                && udp_len == 8 + payload.len()
                && p[0] == 0x45
                && p[1] == 0
                && u16::from_be_bytes([p[4], p[5]]) == id
                && p[6..8] == [0, 0]
                && p[8] == ttl
                && p[9] == 17
                && p[12..16] == src.0.to_be_bytes()
                && p[16..20] == dst.0.to_be_bytes()
                && u16::from_be_bytes([p[20], p[21]]) == src.1
                && u16::from_be_bytes([p[22], p[23]]) == dst.1
                && p[26..28] != [0, 0]
                && p[28..] == payload[..]
                && verifies(&p[..20])
                && verifies(&udp_with_pseudo_header(&p)),
        )
    }
}

#[test]
fn a_packet_within_the_mtu_is_not_fragmented() {
    let p = ipv4_udp_packet(
        addr([10, 0, 0, 1], 1),
        addr([10, 0, 0, 2], 2),
        64,
        9,
        &[1; 1472],
    )
    .unwrap();
    assert_eq!(ipv4_fragments(&p, 1500), vec![p]);
}

quickcheck! {
    fn fragments_fit_the_mtu_and_reassemble_to_the_packet(
        payload_len: u16, mtu: u16, id: u16
    ) -> TestResult {
        let len = usize::from(payload_len) % 9000;
        let mtu = 68 + usize::from(mtu) % 9000;
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let packet = ipv4_udp_packet(addr([10, 9, 9, 9], 4242), addr([10, 0, 0, 255], 5076), 64, id, &payload)
            .unwrap();
        let fragments = ipv4_fragments(&packet, mtu);
        let mut data = Vec::new();
        for (i, f) in fragments.iter().enumerate() {
            let last = i + 1 == fragments.len();
            let field = u16::from_be_bytes([f[6], f[7]]);
            let ok = f.len() <= mtu
                && usize::from(u16::from_be_bytes([f[2], f[3]])) == f.len()
                && f[4..6] == packet[4..6]
                && f[8..10] == packet[8..10]
                && f[12..20] == packet[12..20]
                && usize::from(field & 0x1FFF) * 8 == data.len()
                && (field & 0x2000 != 0) != last
                && field & 0x4000 == 0
                && (last || (f.len() - 20) % 8 == 0)
                && verifies(&f[..20]);
            if !ok {
                return TestResult::failed();
            }
            data.extend_from_slice(&f[20..]);
        }
        TestResult::from_bool(data == packet[20..])
    }
}

/// Opens the emitter, or says why the send test is skipped (no `CAP_NET_RAW`, not Linux).
fn emitter_or_skip(interface: &str) -> Option<RawEmitter> {
    match RawEmitter::open(interface) {
        Ok(e) => Some(e),
        Err(e) => {
            println!("skipped: cannot open a raw socket on {interface}: {e}");
            None
        }
    }
}

#[test]
fn a_raw_send_on_loopback_arrives_with_the_chosen_source() {
    let Some(emitter) = emitter_or_skip("lo") else {
        return;
    };
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let to = match receiver.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(_) => unreachable!("bound to an IPv4 address"),
    };
    let from = addr([10, 9, 9, 9], 4242);
    emitter.send(from, to, b"kept source").unwrap();
    let mut buf = [0u8; 64];
    let (n, source) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept source");
    assert_eq!(source, std::net::SocketAddr::V4(from));
}

#[test]
fn a_payload_too_large_is_an_error_from_send_too() {
    let Some(emitter) = emitter_or_skip("lo") else {
        return;
    };
    let err = emitter
        .send(
            addr([10, 9, 9, 9], 4242),
            addr([127, 0, 0, 1], 9),
            &vec![0; MAX_PAYLOAD + 1],
        )
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn the_loopback_interface_reads_as_127_0_0_1_slash_8() {
    match interface_ipv4("lo") {
        Ok((ip, prefix, broadcast)) => {
            assert_eq!(ip, Ipv4Addr::LOCALHOST);
            assert_eq!(prefix, 8);
            assert_eq!(broadcast, Ipv4Addr::new(127, 255, 255, 255));
        }
        Err(e) => println!("skipped: lo has no IPv4 address here: {e}"),
    }
    assert_eq!(
        interface_ipv4("no-such-if0").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn the_default_interface_is_never_loopback() {
    if let Ok(name) = default_interface() {
        assert_ne!(name, "lo");
        assert!(interface_ipv4(&name).is_ok());
    }
}

/// Two network namespaces joined by a veth pair, made by the test and removed when dropped (also
/// when the test fails), so a raw send crosses a real link without touching the host's.
#[cfg(target_os = "linux")]
mod netns {
    use std::fs::File;
    use std::process::Command;

    /// The namespaces `<base>a` (interface `va`, 10.77.0.1/24) and `<base>b` (`vb`, 10.77.0.2/24).
    pub(super) struct Pair {
        pub(super) a: String,
        pub(super) b: String,
    }

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    impl Pair {
        /// Makes the pair, or says why it cannot (not root, no `ip`, no veth).
        pub(super) fn make(base: &str) -> Result<Pair, String> {
            let pair = Pair {
                a: format!("{base}a"),
                b: format!("{base}b"),
            };
            // Any leftover of a crashed earlier run goes first; its failure is expected.
            let _ = ip(&["netns", "del", &pair.a]);
            let _ = ip(&["netns", "del", &pair.b]);
            ip(&["netns", "add", &pair.a])?;
            // From here on, Drop removes what exists.
            ip(&["netns", "add", &pair.b])?;
            ip(&[
                "-n", &pair.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
                &pair.b,
            ])?;
            for (ns, dev, cidr) in [
                (&pair.a, "va", "10.77.0.1/24"),
                (&pair.b, "vb", "10.77.0.2/24"),
            ] {
                ip(&["-n", ns, "addr", "add", cidr, "brd", "+", "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
            }
            // A sender outside the subnet must pass reverse-path filtering in the receiver's
            // namespace, as on a segment where the relay re-emits for a remote sender.
            for key in ["all", "default", "vb"] {
                let status = Command::new("ip")
                    .args(["netns", "exec", &pair.b, "sysctl", "-qw"])
                    .arg(format!("net.ipv4.conf.{key}.rp_filter=0"))
                    .status()
                    .map_err(|e| format!("cannot run sysctl: {e}"))?;
                if !status.success() {
                    return Err(format!("sysctl rp_filter for {key} failed"));
                }
            }
            Ok(pair)
        }

        /// Runs `f` on a thread of its own that has entered namespace `ns`: a thread's network
        /// namespace is its own, so the rest of the test process stays where it is.
        pub(super) fn run_in<T: Send + 'static>(
            ns: &str,
            f: impl FnOnce() -> T + Send + 'static,
        ) -> T {
            let file = File::open(format!("/var/run/netns/{ns}")).unwrap();
            std::thread::spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        }
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            // Deleting a namespace removes its veth end, and with it the peer.
            let _ = ip(&["netns", "del", &self.a]);
            let _ = ip(&["netns", "del", &self.b]);
        }
    }
}

/// What namespace b saw of two sends from 10.9.9.9:4242 out of `va`: the UDP socket's payloads
/// and sources, and the IP headers a raw socket there captured.
#[cfg(target_os = "linux")]
struct Arrived {
    datagrams: Vec<(Vec<u8>, std::net::SocketAddr)>,
    headers: Vec<[u8; 20]>,
}

/// Sends `payload` twice from 10.9.9.9:4242 out of `va` to `destination` in namespace a and
/// returns what arrived in namespace b (`None` when the emitter cannot be opened: skipped).
#[cfg(target_os = "linux")]
fn send_across(
    pair: &netns::Pair,
    destination: SocketAddrV4,
    join: Option<Ipv4Addr>,
    payload: &[u8],
) -> Option<Arrived> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::io::Read;
    let (receiver, capture) = netns::Pair::run_in(&pair.b, move || {
        let s = UdpSocket::bind(("0.0.0.0", destination.port())).unwrap();
        if let Some(group) = join {
            s.join_multicast_v4(&group, &Ipv4Addr::new(10, 77, 0, 2))
                .unwrap();
        }
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // A raw UDP socket gets a copy of every UDP datagram with its IP header.
        let capture = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).unwrap();
        capture
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (s, capture)
    });
    let emitter = netns::Pair::run_in(&pair.a, || emitter_or_skip("va"))?;
    let mut arrived = Arrived {
        datagrams: Vec::new(),
        headers: Vec::new(),
    };
    for _ in 0..2 {
        emitter
            .send(addr([10, 9, 9, 9], 4242), destination, payload)
            .unwrap();
        let mut buf = [0u8; 65_536];
        let (n, source) = receiver.recv_from(&mut buf).unwrap();
        arrived.datagrams.push((buf[..n].to_vec(), source));
    }
    let mut buf = [0u8; 2048];
    while arrived.headers.len() < 2 {
        let n = (&capture).read(&mut buf).unwrap();
        if n >= 20 && buf[12..16] == [10, 9, 9, 9] {
            arrived.headers.push(buf[..20].try_into().unwrap());
        }
    }
    Some(arrived)
}

/// Checks both sends arrived whole with the original source, with `ttl`, DF clear and two
/// different IP ids.
#[cfg(target_os = "linux")]
fn check_arrived(arrived: &Arrived, ttl: u8, sent: &[u8]) {
    for (payload, source) in &arrived.datagrams {
        assert_eq!(payload, sent);
        assert_eq!(*source, "10.9.9.9:4242".parse().unwrap());
    }
    for header in &arrived.headers {
        assert_eq!(header[8], ttl, "TTL");
        assert_eq!(header[6] & 0x40, 0, "DF must be clear");
    }
    assert_ne!(arrived.headers[0][4..6], arrived.headers[1][4..6], "IP ids");
}

#[cfg(target_os = "linux")]
#[test]
fn a_raw_broadcast_crosses_a_link_with_the_original_source() {
    let pair = match netns::Pair::make(&format!("pavrawbc{}", std::process::id())) {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: cannot make network namespaces: {why}");
            return;
        }
    };
    // The interface reads as the namespace sees it, and is the only non-loopback one there.
    let (seen, default) = netns::Pair::run_in(&pair.b, || {
        (interface_ipv4("vb").unwrap(), default_interface().unwrap())
    });
    assert_eq!(
        seen,
        (
            Ipv4Addr::new(10, 77, 0, 2),
            24,
            Ipv4Addr::new(10, 77, 0, 255)
        )
    );
    assert_eq!(default, "vb");
    if let Some(arrived) = send_across(&pair, addr([10, 77, 0, 255], 5076), None, b"hi") {
        check_arrived(&arrived, 64, b"hi");
    }
    // Larger than the veth's MTU of 1500: sent in fragments, reassembled whole over there.
    let big: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    if let Some(arrived) = send_across(&pair, addr([10, 77, 0, 255], 5078), None, &big) {
        check_arrived(&arrived, 64, &big);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_raw_multicast_crosses_a_link_with_the_original_source() {
    let pair = match netns::Pair::make(&format!("pavrawmc{}", std::process::id())) {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: cannot make network namespaces: {why}");
            return;
        }
    };
    let group = Ipv4Addr::new(239, 255, 77, 1);
    let sent = b"across the link";
    if let Some(arrived) = send_across(&pair, SocketAddrV4::new(group, 5077), Some(group), sent) {
        check_arrived(&arrived, 1, sent);
    }
}
