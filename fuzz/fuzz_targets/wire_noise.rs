//! Suite 3 packets: handshakes, cookie replies, data and group data headers.
//!
//! Whatever the bytes, parsing returns. A handshake, cookie or hint packet that parses emits
//! the same bytes it was parsed from (every suite 3 layout has exact lengths); a data or group
//! data packet rebuilt from its header fields, ciphertext and tag is the same datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::wire::noise::{
    emit_data_header, emit_group_header, NoisePacket, DATA_HEADER_LEN, GROUP_HEADER_LEN,
};
use pavillion_proto::wire::{Datagram, SessionPacket};

fuzz_target!(|data: &[u8]| {
    let whole = Datagram::parse(data);
    let Ok(packet) = NoisePacket::parse(data) else {
        return;
    };
    if data.len() <= pavillion_proto::wire::MAX_DATAGRAM {
        assert_eq!(whole, Ok(Datagram::Noise(packet)));
    }
    let rebuilt = match packet {
        NoisePacket::Data { receiver, packet } => {
            let mut head = [0u8; DATA_HEADER_LEN];
            emit_data_header(&mut head, receiver, packet.counter).expect("header fits");
            sealed(&head, &packet)
        }
        NoisePacket::GroupData {
            sender,
            key,
            packet,
        } => {
            let mut head = [0u8; GROUP_HEADER_LEN];
            emit_group_header(&mut head, sender, key, packet.counter).expect("header fits");
            sealed(&head, &packet)
        }
        other => {
            let mut buf = vec![0u8; data.len()];
            let n = other.emit(&mut buf).expect("a parsed packet emits");
            buf.truncate(n);
            assert!(other.emit(&mut vec![0u8; n - 1]).is_err());
            buf
        }
    };
    assert_eq!(rebuilt, data);
    assert_eq!(NoisePacket::parse(&rebuilt), Ok(packet));
});

fn sealed(head: &[u8], p: &SessionPacket<'_>) -> Vec<u8> {
    [head, p.ciphertext, p.tag.as_slice()].concat()
}
