//! The relay mesh's frames (`carry` and `members`, `docs/PROTOCOL.md` §14.2 and §14.3).
//!
//! Whatever the bytes, parsing returns. A frame that parses emits exactly the bytes it was
//! parsed from (both layouts are canonical: every field has one encoding), refuses a buffer
//! one byte short, and parses again to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::wire::relay::{Carry, Members};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Carry::parse(data) {
        assert_eq!(frame.buffer_len(), data.len());
        let mut buf = vec![0u8; data.len()];
        assert_eq!(frame.emit(&mut buf), Ok(data.len()));
        assert_eq!(buf, data);
        assert!(frame.emit(&mut vec![0u8; data.len() - 1]).is_err());
        assert_eq!(Carry::parse(&buf), Ok(frame));
    }
    if let Ok(frame) = Members::parse(data) {
        assert_eq!(frame.buffer_len(), data.len());
        let mut buf = vec![0u8; data.len()];
        assert_eq!(frame.emit(&mut buf), Ok(data.len()));
        assert_eq!(buf, data);
        assert!(frame.emit(&mut vec![0u8; data.len() - 1]).is_err());
        assert_eq!(Members::parse(&buf), Ok(frame));
    }
});
