use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use quickcheck::quickcheck;

use super::*;

/// A capture of one 3-byte datagram, as an independent writer (a short Python script using
/// `struct`, kept in the commit message) produced it; `tshark -V` reads it with the comment
/// `lost`, arrival 1.5 s and a correct IPv4 header checksum.
const KNOWN: &str =
    "0a0d0d0a280000004d3c2b1a01000000ffffffffffffffff04000400756e69740000000028000000\
01000000200000006500000027000100090001000600000000000000200000000600\
00004c000000000000000000000060e316001f0000001f0000004500001f00004000\
401126cc0a0000020a0000019c4006f7000bbf3468692100010004006c6f73740000\
00004c000000";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_known_small_capture_is_byte_exact() {
    let mut w = PcapngWriter::new(Vec::new(), "unit").unwrap();
    w.write_udp(
        CaptureTime(1_500_000),
        "10.0.0.2:40000".parse().unwrap(),
        "10.0.0.1:1783".parse().unwrap(),
        b"hi!",
        Some("lost"),
    )
    .unwrap();
    assert_eq!(hex(&w.into_inner().unwrap()), KNOWN);
}

/// The packet bytes of the one EPB of a capture, and the offset of the block after it.
fn first_packet(capture: &[u8]) -> (Vec<u8>, usize) {
    let le32 = |at: usize| u32::from_le_bytes(capture[at..at + 4].try_into().unwrap()) as usize;
    let shb_len = le32(4);
    let idb_len = le32(shb_len + 4);
    let epb = shb_len + idb_len;
    assert_eq!(le32(epb), 6, "an enhanced packet block");
    let len = le32(epb + 20);
    assert_eq!(le32(epb + 24), len, "captured = original length");
    (
        capture[epb + 28..epb + 28 + len].to_vec(),
        epb + le32(epb + 4),
    )
}

fn ones_complement_sum(parts: &[&[u8]]) -> u16 {
    !internet_checksum(parts)
}

fn udp_of(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new(), "p").unwrap();
    w.write_udp(CaptureTime(0), from, to, payload, None)
        .unwrap();
    let bytes = w.into_inner().unwrap();
    let (packet, end) = first_packet(&bytes);
    assert_eq!(end, bytes.len());
    packet
}

quickcheck! {
    /// Every IPv4 packet carries correct lengths, a header checksum that verifies and a UDP
    /// checksum that verifies over the pseudo-header.
    fn prop_ipv4_headers_verify(src: u32, dst: u32, sport: u16, dport: u16, payload: Vec<u8>) -> bool {
        let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
        let p = udp_of(SocketAddrV4::new(s, sport).into(), SocketAddrV4::new(d, dport).into(), &payload);
        let udp = &p[20..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&s.octets());
        pseudo.extend_from_slice(&d.octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
        p[0] == 0x45
            && p[9] == 17
            && usize::from(u16::from_be_bytes([p[2], p[3]])) == payload.len() + 28
            && ones_complement_sum(&[&p[..20]]) == 0xFFFF
            && p[12..16] == s.octets() && p[16..20] == d.octets()
            && u16::from_be_bytes([udp[0], udp[1]]) == sport
            && u16::from_be_bytes([udp[2], udp[3]]) == dport
            && usize::from(u16::from_be_bytes([udp[4], udp[5]])) == payload.len() + 8
            && ones_complement_sum(&[&pseudo, udp]) == 0xFFFF
            && udp[8..] == payload[..]
    }

    /// The same for IPv6, whose UDP checksum is mandatory.
    fn prop_ipv6_headers_verify(src: u128, dst: u128, sport: u16, dport: u16, payload: Vec<u8>) -> bool {
        let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
        let p = udp_of(SocketAddrV6::new(s, sport, 0, 0).into(), SocketAddrV6::new(d, dport, 0, 0).into(), &payload);
        let udp = &p[40..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&s.octets());
        pseudo.extend_from_slice(&d.octets());
        pseudo.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        p[0] >> 4 == 6
            && p[6] == 17
            && usize::from(u16::from_be_bytes([p[4], p[5]])) == payload.len() + 8
            && p[8..24] == s.octets() && p[24..40] == d.octets()
            && u16::from_be_bytes([udp[6], udp[7]]) != 0
            && ones_complement_sum(&[&pseudo, udp]) == 0xFFFF
            && udp[8..] == payload[..]
    }
}

#[test]
fn a_mixed_pair_is_written_as_ipv6_with_the_ipv4_address_mapped() {
    let p = udp_of(
        "10.0.0.2:40000".parse().unwrap(),
        "[2001:db8::1]:1783".parse().unwrap(),
        b"x",
    );
    assert_eq!(p[0] >> 4, 6);
    assert_eq!(
        Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()),
        Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped()
    );
}

#[test]
fn a_payload_too_long_for_udp_writes_nothing() {
    let mut w = PcapngWriter::new(Vec::new(), "p").unwrap();
    let before = w.out.len();
    let err = w
        .write_udp(
            CaptureTime(0),
            "10.0.0.2:1".parse().unwrap(),
            "10.0.0.1:2".parse().unwrap(),
            &vec![0; 65_508],
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(w.out.len(), before);
}

/// A fresh file in a fresh directory under the system's temporary directory.
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pavillion-capture-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("keys.log")
}

fn secrets() -> Vec<SessionSecret> {
    vec![
        SessionSecret::Reference {
            suite: pavillion_proto::keylog::ReferenceSuite::Psk,
            to_server: [1; 32],
            to_client: [2; 32],
        },
        SessionSecret::Reference {
            suite: pavillion_proto::keylog::ReferenceSuite::Ecc,
            to_server: [3; 32],
            to_client: [4; 32],
        },
        SessionSecret::Noise {
            to_server_index: 0x1a2b_3c4d,
            to_server: [5; 32],
            to_client_index: 7,
            to_client: [6; 32],
        },
        SessionSecret::Group {
            sender: 0x0102_0304_0506_0708,
            key_id: 1,
            key: [7; 32],
        },
    ]
}

#[test]
fn a_key_log_round_trips_and_reopening_appends_without_a_second_header() {
    let path = temp_path("round-trip");
    let all = secrets();
    let mut log = KeyLogFile::open(&path).unwrap();
    assert_eq!(log.path(), path);
    log.write(&all[0]).unwrap();
    log.write(&all[1]).unwrap();
    drop(log);
    let mut log = KeyLogFile::open(&path).unwrap();
    log.write(&all[2]).unwrap();
    log.write(&all[3]).unwrap();
    assert_eq!(read_key_log(&path).unwrap(), all);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches('#').count(), 1, "{text}");
    assert!(text.starts_with("# Pavillion key log, format 1"));
    assert_eq!(text.lines().count(), 5);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[cfg(unix)]
#[test]
fn a_new_key_log_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_path("mode");
    KeyLogFile::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_malformed_line_is_invalid_data_naming_its_line() {
    let text = format!("# comment\n\n{}\nPAVILLION_S1 00\n", secrets()[0]);
    let err = parse_key_log(&text).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("line 4"), "{err}");
    let ok = format!("# comment\n\n{}\n", secrets()[0]);
    assert_eq!(parse_key_log(&ok).unwrap(), secrets()[..1]);
}
