//! Op 38 and op 39 codecs: round trips, bounds, and never a panic on any input.

use alloc::vec::Vec;

use arrayvec::ArrayVec;

use quickcheck::{QuickCheck, TestResult};

use super::*;
use crate::wire::Message;

fn msg(payload: &[u8], reliable: bool) -> Frame<'_> {
    let m = Message {
        target: "t",
        name: "n",
        payload,
    };
    Frame::App(if reliable {
        App::ReliableMessage(m)
    } else {
        App::UnreliableMessage(m)
    })
}

fn counters(set: &[u64]) -> Vec<Counter> {
    let mut v: Vec<u64> = set.to_vec();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.dedup();
    v.into_iter().map(Counter).collect()
}

fn expand(acks: &Acks) -> Vec<Counter> {
    let mut out = Vec::new();
    for r in acks.ranges() {
        let mut c = r.high.0;
        loop {
            out.push(Counter(c));
            if c == r.low.0 {
                break;
            }
            c -= 1;
        }
    }
    out
}

#[test]
fn acks_round_trip_every_counter_set() {
    fn prop(set: Vec<u64>, spread: u8) -> TestResult {
        // Keep sets dense enough that gaps fit a u16 sometimes and not others.
        let set: Vec<u64> = set
            .iter()
            .map(|c| c % (u64::from(spread) * 40 + 2))
            .collect();
        let want = counters(&set);
        let Some((acks, taken)) = Acks::from_descending(want.iter().copied()) else {
            return TestResult::from_bool(want.is_empty());
        };
        let mut buf = [0u8; MAX_ACKS_LEN];
        let n = acks.emit(&mut buf).unwrap();
        let back = Acks::parse(&buf[..n]).unwrap();
        TestResult::from_bool(back == acks && expand(&back) == want[..taken])
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u64>, u8) -> TestResult);
}

#[test]
fn acks_stop_at_the_range_bound() {
    // Every other counter: each is its own range, so only 32 fit.
    let want: Vec<Counter> = (0..100u64).rev().map(|c| Counter(c * 2)).collect();
    let (acks, taken) = Acks::from_descending(want.iter().copied()).unwrap();
    assert_eq!(taken, MAX_RANGES);
    assert_eq!(acks.ranges().count(), MAX_RANGES);
    assert_eq!(acks.buffer_len(), MAX_ACKS_LEN);
}

#[test]
fn acks_below_zero_or_too_many_ranges_are_bad() {
    // largest 5, first 6: would reach counter -1.
    let mut p = alloc::vec![ACKS];
    p.extend_from_slice(&5u64.to_le_bytes());
    p.extend_from_slice(&6u16.to_le_bytes());
    p.push(0);
    assert_eq!(Acks::parse(&p), Err(Error::BadBatch));
    // largest 10, first 0, one range with gap 8: high = 10 - 8 - 2 = 0, len 0: fine.
    let mut ok = alloc::vec![ACKS];
    ok.extend_from_slice(&10u64.to_le_bytes());
    ok.extend_from_slice(&0u16.to_le_bytes());
    ok.push(1);
    ok.extend_from_slice(&8u16.to_le_bytes());
    ok.extend_from_slice(&0u16.to_le_bytes());
    let acks = Acks::parse(&ok).unwrap();
    assert_eq!(expand(&acks), alloc::vec![Counter(10), Counter(0)]);
    // A gap of 9 reaches below 0.
    ok[12] = 9;
    assert_eq!(Acks::parse(&ok), Err(Error::BadBatch));
    let mut many = alloc::vec![ACKS];
    many.extend_from_slice(&u64::MAX.to_le_bytes());
    many.extend_from_slice(&0u16.to_le_bytes());
    many.push(MAX_RANGES as u8);
    many.extend(core::iter::repeat_n(0, 4 * MAX_RANGES));
    assert_eq!(Acks::parse(&many), Err(Error::BadBatch));
}

#[test]
fn batch_round_trips() {
    fn prop(payloads: Vec<Vec<u8>>, more: bool, with_acks: Vec<u64>) -> TestResult {
        if payloads.is_empty() || payloads.len() > MAX_FRAMES - 1 {
            return TestResult::discard();
        }
        let mut frames: Vec<Frame<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| msg(p, i % 2 == 0))
            .collect();
        if let Some((acks, _)) = Acks::from_descending(counters(&with_acks)) {
            frames.insert(0, Frame::Acks(acks));
        }
        let mut buf = alloc::vec![0u8; batch_len(frames.iter().map(Frame::buffer_len))];
        let n = emit_batch(more, &frames, &mut buf).unwrap();
        assert_eq!(n, buf.len());
        let b = Batch::parse(&buf).unwrap();
        TestResult::from_bool(
            b.more == more && b.len() == frames.len() && b.frames().eq(frames.iter().copied()),
        )
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<Vec<u8>>, bool, Vec<u64>) -> TestResult);
}

#[test]
fn a_batch_with_one_bad_frame_is_refused_whole() {
    let frames = [msg(b"a", true), msg(b"b", false)];
    let mut buf = [0u8; 64];
    let n = emit_batch(false, &frames, &mut buf).unwrap();
    assert!(Batch::parse(&buf[..n]).is_ok());
    // Each way a frame can be bad: opcode 4 (a call), a nested batch, zero length, overlong.
    let second = BATCH_HEADER + FRAME_HEADER + frames[0].buffer_len();
    for (at, byte) in [
        (second + 2, 4u8),
        (second + 2, BATCH),
        (second, 0),
        (second, 200),
    ] {
        let mut bad = buf;
        bad[at] = byte;
        assert_eq!(Batch::parse(&bad[..n]), Err(Error::BadBatch), "{at} {byte}");
    }
    // A frame whose own codec refuses it (a message without separators).
    let mut bad = buf;
    bad[BATCH_HEADER + FRAME_HEADER + 2] = b'x';
    assert_eq!(Batch::parse(&bad[..n]), Err(Error::BadBatch));
    // No frame at all.
    assert_eq!(Batch::parse(&[BATCH, 0]), Err(Error::BadBatch));
}

#[test]
fn more_than_64_frames_is_refused() {
    let frames: Vec<Frame<'_>> = (0..=MAX_FRAMES).map(|_| msg(b"", false)).collect();
    let mut buf = alloc::vec![0u8; 4096];
    assert_eq!(
        emit_batch(false, &frames, &mut buf),
        Err(Error::BadBatch),
        "the encoder refuses too"
    );
    let n = emit_batch(false, &frames[..MAX_FRAMES], &mut buf).unwrap();
    assert!(Batch::parse(&buf[..n]).is_ok());
    // Append one more frame by hand.
    let one = frames[0].buffer_len();
    let extra = buf[BATCH_HEADER..BATCH_HEADER + FRAME_HEADER + one].to_vec();
    let mut long = buf[..n].to_vec();
    long.extend_from_slice(&extra);
    assert_eq!(Batch::parse(&long), Err(Error::BadBatch));
}

#[test]
fn parsing_never_panics() {
    fn prop(bytes: Vec<u8>, op: bool) -> bool {
        let mut p = bytes;
        p.insert(0, if op { BATCH } else { ACKS });
        if let Ok(b) = Batch::parse(&p) {
            assert!(b.frames().count() == b.len());
        }
        if let Ok(a) = Acks::parse(&p) {
            assert!(a.covered() >= 1);
        }
        let _ = Frame::parse(&p);
        true
    }
    QuickCheck::new()
        .tests(5000)
        .quickcheck(prop as fn(Vec<u8>, bool) -> bool);
}

/// What `parse_into` says of `p`, with the frames it kept, is what `Batch::parse` and
/// `Batch::frames` say: the receiver's one parse accepts, refuses and hands out exactly what
/// the checking parse does.
fn parse_into_agrees<'a>(p: &'a [u8], frames: &mut ArrayVec<Frame<'a>, MAX_FRAMES>) -> bool {
    let into = Batch::parse_into(p, frames);
    match Batch::parse(p) {
        Ok(b) => into == Ok(b.more) && frames.iter().copied().eq(b.frames()),
        Err(e) => into == Err(e),
    }
}

#[test]
fn parse_into_agrees_with_parse() {
    fn prop(payloads: Vec<Vec<u8>>, more: bool, flips: Vec<(u16, u8)>, junk: Vec<u8>) -> bool {
        let frames: Vec<Frame<'_>> = payloads
            .iter()
            .take(MAX_FRAMES)
            .enumerate()
            .map(|(i, p)| msg(p, i % 3 == 0))
            .chain(core::iter::once(Frame::Acks(
                Acks::from_descending([Counter(9), Counter(7)]).unwrap().0,
            )))
            .collect();
        let keep = frames.len().min(MAX_FRAMES);
        let mut buf = alloc::vec![0u8; batch_len(frames.iter().map(Frame::buffer_len))];
        let n = emit_batch(more, &frames[..keep], &mut buf).unwrap_or(0);
        let valid = buf[..n].to_vec();
        // Damaged copies: a valid batch meets every refusal a few flipped bytes make.
        let mut bad = valid.clone();
        for &(at, byte) in &flips {
            if let Some(b) = bad.get_mut(usize::from(at) % n.max(1)) {
                *b = byte;
            }
        }
        let mut noise = junk;
        noise.insert(0, BATCH);
        let mut frames_over = valid.clone();
        if let Some(one) = valid.get(BATCH_HEADER..BATCH_HEADER + FRAME_HEADER + 2) {
            // Past the bound: appended frames of a (possibly bad) two-byte plaintext.
            for _ in 0..=MAX_FRAMES {
                frames_over.extend_from_slice(one);
            }
        }
        // One buffer for every call, as a receiver keeps it: each call starts it afresh.
        let mut kept = ArrayVec::new();
        [&valid[..], &bad, &noise, &frames_over]
            .iter()
            .all(|p| parse_into_agrees(p, &mut kept))
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<Vec<u8>>, bool, Vec<(u16, u8)>, Vec<u8>) -> bool);
}

#[test]
fn parse_into_keeps_every_frame_of_a_full_batch() {
    let bytes: Vec<u8> = (0..MAX_FRAMES as u8).collect();
    let frames: Vec<Frame<'_>> = (0..MAX_FRAMES)
        .map(|i| msg(&bytes[i..=i], i % 2 == 0))
        .collect();
    let mut buf = alloc::vec![0u8; 4096];
    let n = emit_batch(true, &frames, &mut buf).unwrap();
    let mut kept = ArrayVec::new();
    assert_eq!(Batch::parse_into(&buf[..n], &mut kept), Ok(true));
    assert_eq!(kept.as_slice(), &frames[..]);
    assert!(parse_into_agrees(&buf[..n], &mut kept));
}
