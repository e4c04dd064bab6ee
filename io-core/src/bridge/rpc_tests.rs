//! Tests of the bridge's RPC half: the correlation table and the status convention.

use super::*;
use quickcheck::{quickcheck, TestResult};
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn an_answer_matches_its_request_once() {
    let now = Instant::now();
    let mut t = Correlations::new(4, 7);
    let a = t.insert(now + Duration::from_secs(1), "a").unwrap();
    let b = t.insert(now + Duration::from_secs(1), "b").unwrap();
    assert_ne!(a, b);
    assert_eq!(t.take(Some(b.as_bytes())), Ok("b"));
    assert_eq!(t.take(Some(b.as_bytes())), Err(Unmatched::Unknown));
    assert_eq!(t.take(Some(&[1, 2, 3])), Err(Unmatched::Malformed(3)));
    assert_eq!(t.take(None), Err(Unmatched::Missing));
    assert_eq!(t.len(), 1);
    assert_eq!(t.take(Some(a.as_bytes())), Ok("a"));
    assert!(t.is_empty());
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn the_table_is_bounded_and_frees_room_as_answers_come() {
    let now = Instant::now();
    let mut t = Correlations::new(2, 0);
    let a = t.insert(now, 1).unwrap();
    t.insert(now, 2).unwrap();
    assert_eq!(t.insert(now, 3), Err((TableFull { capacity: 2 }, 3)));
    t.take(Some(a.as_bytes())).unwrap();
    assert!(t.insert(now, 3).is_ok());
}

#[test]
fn requests_expire_at_their_deadline_in_order_and_never_answer_late() {
    let now = Instant::now();
    let ms = Duration::from_millis;
    let mut t = Correlations::new(8, 99);
    let late = t.insert(now + ms(30), "late").unwrap();
    let early = t.insert(now + ms(10), "early").unwrap();
    t.insert(now + ms(50), "later").unwrap();
    assert_eq!(t.next_deadline(), Some(now + ms(10)));
    assert!(t.expire(now + ms(9)).is_empty());
    let due = t.expire(now + ms(30));
    assert_eq!(due, vec![(early, "early"), (late, "late")]);
    // An answer after the deadline finds nothing: the device already has its failure.
    assert_eq!(t.take(Some(late.as_bytes())), Err(Unmatched::Unknown));
    assert_eq!(t.next_deadline(), Some(now + ms(50)));
    assert_eq!(t.drain(), vec!["later"]);
    assert!(t.is_empty());
}

quickcheck! {
    /// Ids are fresh: no two requests of one table share one, whatever the seed, even when
    /// answers and expiries interleave with new requests.
    fn ids_are_never_reused(seed: u64, ops: Vec<u8>) -> bool {
        let now = Instant::now();
        let mut t = Correlations::new(16, seed);
        let mut seen = HashSet::new();
        let mut live = Vec::new();
        for op in ops {
            match op % 3 {
                0 | 1 => {
                    if let Ok(id) = t.insert(now + Duration::from_millis(u64::from(op)), ()) {
                        if !seen.insert(id) {
                            return false;
                        }
                        live.push(id);
                    }
                }
                _ => {
                    if let Some(id) = live.pop() {
                        let _ = t.take(Some(id.as_bytes()));
                    }
                    let _ = t.expire(now + Duration::from_millis(u64::from(op) / 2));
                }
            }
        }
        true
    }

    /// The table never holds more than its capacity and its deadline index always names
    /// exactly the waiting requests.
    fn bounded_and_consistent(cap: u8, ops: Vec<(bool, u16)>) -> bool {
        let cap = usize::from(cap % 8);
        let now = Instant::now();
        let mut t = Correlations::new(cap, 1);
        let mut ids = Vec::new();
        for (insert, x) in ops {
            if insert {
                if let Ok(id) = t.insert(now + Duration::from_millis(u64::from(x)), x) {
                    ids.push(id);
                }
            } else if let Some(id) = ids.get(usize::from(x) % ids.len().max(1)) {
                let _ = t.take(Some(id.as_bytes()));
                let _ = t.expire(now + Duration::from_millis(u64::from(x) / 4));
            }
            if t.len() > cap || t.deadlines.len() != t.waiting.len() {
                return false;
            }
        }
        true
    }

    /// A status goes to the property and back, and only canonical decimals are statuses.
    fn status_text_round_trips(s: u16, junk: String) -> TestResult {
        if parse_status(&s.to_string()) != Some(RpcStatus(s)) {
            return TestResult::failed();
        }
        if junk.parse::<u16>().map(|v| v.to_string()) == Ok(junk.clone()) {
            return TestResult::discard();
        }
        // Anything else but leading zeros of a number is refused.
        let digits = !junk.is_empty() && junk.bytes().all(|b| b.is_ascii_digit());
        TestResult::from_bool(digits || parse_status(&junk).is_none())
    }
}

#[test]
fn bridge_statuses_are_distinct_and_above_every_pavillion_status_in_use() {
    let statuses: HashSet<_> = BridgeRpcError::ALL.iter().map(|e| e.status()).collect();
    assert_eq!(statuses.len(), BridgeRpcError::ALL.len());
    for e in BridgeRpcError::ALL {
        assert!(e.status().0 > BRIDGE_STATUS_BASE);
        assert!(e.status() > RpcStatus::PYTHON_EXCEPTION);
        assert_eq!(BridgeRpcError::from_status(e.status()), Some(e));
    }
    assert_eq!(BridgeRpcError::from_status(RpcStatus::ERROR), None);
}

#[test]
fn a_call_result_becomes_an_answer_with_status_properties() {
    let ok = answer_of_call(Ok(Bytes::from_static(b"42")));
    assert_eq!(ok.properties(), vec![("pav-status".into(), "0".into())]);
    assert_eq!(&ok.payload[..], b"42");

    let remote = answer_of_call(Err(CallError::Remote {
        status: RpcStatus::BAD_INPUT,
        data: Bytes::from_static(b"expected 2 bytes"),
    }));
    assert_eq!(
        remote.properties(),
        vec![
            ("pav-status".into(), "3".into()),
            ("pav-error".into(), "expected 2 bytes".into())
        ]
    );

    let timeout = answer_of_call(Err(CallError::TimedOut));
    assert_eq!(timeout.status, BridgeRpcError::TimedOut.status());
    let closed = answer_of_call(Err(CallError::Closed));
    assert_eq!(closed.status, BridgeRpcError::Unreachable.status());

    // A traceback is not copied whole into a property.
    let long = "é".repeat(MAX_ERROR_TEXT);
    let clipped = answer_of_call(Err(CallError::Remote {
        status: RpcStatus::PYTHON_EXCEPTION,
        data: Bytes::from(long.clone()),
    }));
    let e = clipped.error.unwrap();
    assert!(e.len() <= MAX_ERROR_TEXT && long.starts_with(&e));
    assert_eq!(clipped.payload.len(), long.len());
}

#[test]
fn a_response_becomes_the_devices_result() {
    let p = || Bytes::from_static(b"x");
    assert_eq!(call_result_of_response(None, p()), Ok(p()));
    assert_eq!(call_result_of_response(Some("0"), p()), Ok(p()));
    assert_eq!(
        call_result_of_response(Some("3"), p()),
        Err(RpcFailure::new(RpcStatus::BAD_INPUT, p()))
    );
    assert_eq!(
        call_result_of_response(Some("ok"), p()),
        Err(BridgeRpcError::BadResponse.failure())
    );
    assert_eq!(
        call_result_of_response(Some("70000"), p()),
        Err(BridgeRpcError::BadResponse.failure())
    );
    assert_eq!(parse_function("12"), Some(FunctionId(12)));
    assert_eq!(parse_function("+"), None);
    assert_eq!(parse_function("-1"), None);
}
