//! Suite 3 batches (op 38) and counter ACK ranges (op 39), `docs/PROTOCOL.md` §17.
//!
//! Whatever the bytes, parsing returns. A batch that parses hands out exactly its counted
//! frames, and re-emitted from them parses back to the same batch; an op 39 frame that parses
//! re-emits byte for byte, and its ranges are descending and disjoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::wire::batch::{batch_len, emit_batch, Acks, Batch, Frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Batch::parse(data) {
        let frames: Vec<Frame<'_>> = b.frames().collect();
        assert_eq!(frames.len(), b.len());
        let mut buf = vec![0u8; batch_len(frames.iter().map(Frame::buffer_len))];
        let n = emit_batch(b.more, &frames, &mut buf).expect("a parsed batch emits");
        let again = Batch::parse(&buf[..n]).expect("an emitted batch parses");
        assert!(again.frames().eq(frames.iter().copied()));
    }
    if let Ok(a) = Acks::parse(data) {
        let mut buf = vec![0u8; a.buffer_len()];
        a.emit(&mut buf).expect("parsed ranges emit");
        assert_eq!(&buf[..], &data[..a.buffer_len()]);
        let mut below = u64::MAX;
        for (i, r) in a.ranges().enumerate() {
            assert!(r.low <= r.high);
            assert!(i == 0 || r.high.0 < below, "descending and disjoint");
            below = r.low.0;
        }
    }
});
