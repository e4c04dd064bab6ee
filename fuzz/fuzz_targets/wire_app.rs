//! Application packets (the decrypted opcode and payload of every suite).
//!
//! Whatever the bytes, parsing returns; a packet that parses emits into exactly `buffer_len()`
//! bytes, which parse back to the same value and emit identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::wire::App;

fuzz_target!(|data: &[u8]| {
    let Ok(app) = App::parse(data) else {
        return;
    };
    let _ = app.opcode();
    let len = app.buffer_len();
    let mut buf = vec![0u8; len];
    let n = app.emit(&mut buf).expect("a parsed packet emits");
    assert_eq!(n, len);
    let again = App::parse(&buf).expect("an emitted packet parses");
    assert_eq!(again, app);
    let mut twice = vec![0u8; len];
    again.emit(&mut twice).expect("emits again");
    assert_eq!(twice, buf);
    if len > 0 {
        assert!(app.emit(&mut buf[..len - 1]).is_err());
    }
});
