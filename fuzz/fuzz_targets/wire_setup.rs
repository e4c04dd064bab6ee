//! Setup packets (suites 1 and 2, counter 0) and whole-datagram classification.
//!
//! Whatever the bytes, parsing returns; a setup packet that parses emits into exactly
//! `buffer_len()` bytes, and those bytes parse back to the same value and emit identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::wire::{Datagram, Setup};

fuzz_target!(|data: &[u8]| {
    let _ = Datagram::parse(data);
    let Ok(setup) = Setup::parse(data) else {
        return;
    };
    let len = setup.buffer_len();
    let mut buf = vec![0u8; len];
    let n = setup.emit(&mut buf).expect("a parsed setup packet emits");
    assert_eq!(n, len);
    let again = Setup::parse(&buf).expect("an emitted setup packet parses");
    assert_eq!(again, setup);
    assert_eq!(Datagram::parse(&buf), Ok(Datagram::Setup(setup.clone())));
    let mut twice = vec![0u8; len];
    again.emit(&mut twice).expect("emits again");
    assert_eq!(twice, buf);
    // A shorter buffer is refused, never written past.
    if len > 0 {
        assert!(setup.emit(&mut buf[..len - 1]).is_err());
    }
});
