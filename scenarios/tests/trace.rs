//! The decoded trace (format version 1, `docs/TRACE.md`) of real scenario runs: every line
//! is valid against `docs/trace.schema.json`, session datagrams are decoded under the run's
//! own secrets, receives name the copies they are, events are objects with a `kind`, and the
//! digest is the one of the same run without a decoded trace.

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};

use pavillion_scenarios::{find, Outcome, Params, Suite};
use serde_json::Value;

/// The schema, compiled once per test (draft 2020-12, as its `$schema` says).
fn validator() -> jsonschema::Validator {
    let text = include_str!("../../docs/trace.schema.json");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::draft202012::new(&schema).expect("the schema is a valid draft 2020-12 schema")
}

/// Runs `name` over `suite` with a decoded trace, and the same run without one.
fn traced(name: &'static str, suite: Suite, seed: u64) -> (Outcome, Outcome) {
    let scenario = find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let plain = (scenario.run)(&Params::new(seed, suite));
    let traced = (scenario.run)(&Params {
        trace: true,
        scenario: scenario.name,
        ..Params::new(seed, suite)
    });
    (plain, traced)
}

/// Parses every line and checks it against the schema; returns them.
fn valid_lines(validator: &jsonschema::Validator, trace: &str, what: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for (i, line) in trace.lines().enumerate() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: line {i}: {e}: {line}"));
        if let Err(e) = validator.validate(&v) {
            panic!("{what}: line {i} is not valid against the schema: {e}\n{line}");
        }
        lines.push(v);
    }
    assert!(lines.len() > 10, "{what}: only {} lines", lines.len());
    lines
}

/// What every decoded trace must satisfy beyond the schema: the header first and only
/// there, hosts named in the header, datagram ids 0, 1, 2, ... and receive ids naming a
/// datagram sent to that address earlier, events with a kind.
fn check_structure(lines: &[Value], what: &str, scenario: &str, suite: Suite) -> Summary {
    let header = &lines[0];
    assert_eq!(header["type"], "header", "{what}");
    assert_eq!(header["scenario"], scenario, "{what}");
    assert_eq!(header["suite"], suite.name(), "{what}");
    let hosts: BTreeSet<&str> = header["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    let mut sum = Summary::default();
    let mut sent: BTreeMap<u64, (&str, u64)> = BTreeMap::new();
    let mut last_t = 0;
    for l in &lines[1..] {
        let kind = l["type"].as_str().unwrap();
        assert_ne!(kind, "header", "{what}: a second header");
        let t = l["t"].as_u64().unwrap();
        assert!(t >= last_t, "{what}: time goes back at {l}");
        last_t = t;
        let host = l["host"].as_str().unwrap();
        assert!(
            hosts.contains(host) || host == "sim",
            "{what}: unknown host {host}"
        );
        *sum.types.entry(kind.to_owned()).or_default() += 1;
        match kind {
            "datagram" => {
                let id = l["id"].as_u64().unwrap();
                assert_eq!(
                    id,
                    sent.len() as u64,
                    "{what}: datagram ids are 0, 1, 2, ..."
                );
                sent.insert(id, (l["to"].as_str().unwrap(), t));
                let packet = &l["packet"];
                assert!(packet.is_object(), "{what}: a datagram without packet: {l}");
                if packet["layer"] == "session" || packet["layer"] == "group" {
                    let d = packet["decryption"].as_str().unwrap().to_owned();
                    *sum.session.entry(d).or_default() += 1;
                    if packet["decryption"] != "no_key" {
                        *sum.ops
                            .entry(packet["name"].as_str().unwrap().to_owned())
                            .or_default() += 1;
                    }
                }
                assert!(!l["label"].as_str().unwrap().is_empty());
            }
            "receive" => {
                if let Some(id) = l["id"].as_u64() {
                    let (to, at) = sent[&id];
                    assert_eq!(to, l["to"].as_str().unwrap(), "{what}: {l}");
                    assert!(at <= t, "{what}: received before sent: {l}");
                    sum.matched += 1;
                }
                if l["outcome"] == "dropped" {
                    sum.dropped += 1;
                }
            }
            "event" => {
                let event = &l["event"];
                assert!(event.is_object(), "{what}: {l}");
                let k = event["kind"].as_str().unwrap();
                *sum.events.entry(k.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
    sum
}

#[derive(Default, Debug)]
struct Summary {
    types: BTreeMap<String, u64>,
    /// Session and group datagrams by decryption.
    session: BTreeMap<String, u64>,
    /// Opened datagrams by name.
    ops: BTreeMap<String, u64>,
    events: BTreeMap<String, u64>,
    matched: u64,
    dropped: u64,
}

/// Every suite, a relay mesh, a fleet authority, durable messages and the hand-off: each
/// run's decoded trace validates, its digest is the untraced run's, and its session packets are opened.
#[test]
fn decoded_traces_of_many_scenarios_validate_against_the_schema() {
    let validator = validator();
    let runs: &[(&str, Suite)] = &[
        ("clean", Suite::Psk),
        ("clean", Suite::Ecc),
        ("clean", Suite::Noise),
        ("nat-rebind", Suite::Ecc),
        ("relay-mesh", Suite::Noise),
        ("authority-join", Suite::Noise),
        ("durable-loss", Suite::Psk),
        ("handoff-faults", Suite::Noise),
    ];
    for &(name, suite) in runs {
        let what = format!("{name} {suite}");
        let (plain, outcome) = traced(name, suite, 1);
        assert_eq!(
            outcome.digest, plain.digest,
            "{what}: a decoded trace changed the digest"
        );
        assert!(plain.trace.is_none() && plain.capture.is_none());
        let trace = outcome.trace.as_deref().expect("a decoded trace");
        let lines = valid_lines(&validator, trace, &what);
        let sum = check_structure(&lines, &what, name, suite);
        for t in ["datagram", "receive", "event", "note"] {
            assert!(
                sum.types.get(t).copied().unwrap_or(0) > 0,
                "{what}: no {t}: {sum:?}"
            );
        }
        assert!(sum.matched > 0, "{what}: no receive matched: {sum:?}");
        let opened = sum.session.get("to_server").copied().unwrap_or(0)
            + sum.session.get("to_client").copied().unwrap_or(0);
        assert!(opened > 0, "{what}: no session packet opened: {sum:?}");
        if name == "handoff-faults" {
            let held = sum.events.get("held_message").copied().unwrap_or(0);
            assert!(held >= 100, "{what}: {held} held messages in {sum:?}");
        }
        if name.starts_with("authority") {
            // Fleet events are structured events in version 1, not the notes of version 0.
            let role = |r: &str| lines.iter().filter(|l| l["role"] == r).count();
            assert!(role("authority") > 0 && role("member") > 0, "{what}");
            let notes = lines.iter().filter(|l| l["type"] == "note");
            let texts = notes.filter_map(|l| l["text"].as_str());
            assert_eq!(
                texts.filter(|t| t.starts_with("event ")).count(),
                0,
                "{what}"
            );
        }
        let capture = outcome.capture.as_ref().expect("a capture");
        assert_eq!(
            capture.copies.len() as u64,
            sum.types["datagram"],
            "{what}: one copy per datagram record"
        );
        assert!(!capture.secrets.is_empty(), "{what}: no secret");
    }
}

/// A suite 1 run decodes every session datagram (none stays `no_key`), in both directions,
/// into the application operations the scenario exchanges.
#[test]
fn every_session_datagram_of_a_psk_run_is_decoded() {
    let validator = validator();
    let (_, outcome) = traced("clean", Suite::Psk, 2);
    let lines = valid_lines(&validator, outcome.trace.as_deref().unwrap(), "clean psk");
    let sum = check_structure(&lines, "clean psk", "clean", Suite::Psk);
    assert_eq!(sum.session.get("no_key"), None, "{sum:?}");
    assert!(sum.session["to_server"] >= 100, "{sum:?}");
    assert!(sum.session["to_client"] >= 100, "{sum:?}");
    assert!(sum.ops["reliable_message"] >= 100, "{sum:?}");
    assert!(sum.ops["ack"] >= 100, "{sum:?}");
    // The events are typed: the server delivers each message with its fields.
    let message = lines
        .iter()
        .find(|l| l["type"] == "event" && l["event"]["kind"] == "message")
        .expect("a message event");
    assert_eq!(message["role"], "server");
    assert!(
        message["event"]["message"]["target"].is_string(),
        "{message}"
    );
    assert!(
        message["event"]["message"]["payload"].is_string(),
        "{message}"
    );
    // A session datagram's packet names its fields.
    let reliable = lines
        .iter()
        .find(|l| l["type"] == "datagram" && l["packet"]["name"] == "reliable_message")
        .unwrap();
    assert!(
        reliable["packet"]["fields"]["target"].is_string(),
        "{reliable}"
    );
    assert_eq!(reliable["packet"]["suite"], 1, "{reliable}");
    assert!(
        reliable["label"]
            .as_str()
            .unwrap()
            .starts_with("reliable_message #"),
        "{reliable}"
    );
}

/// Faults show in the trace: lost copies are never received, drops name their reason.
#[test]
fn lost_copies_are_not_received_and_drops_name_their_reason() {
    let validator = validator();
    let name = "ordered-delivery";
    let (plain, outcome) = traced(name, Suite::Psk, 1);
    assert_eq!(outcome.digest, plain.digest);
    let lines = valid_lines(&validator, outcome.trace.as_deref().unwrap(), name);
    let sum = check_structure(&lines, name, name, Suite::Psk);
    assert!(sum.dropped > 0, "duplicates are dropped: {sum:?}");
    let received: BTreeSet<u64> = lines
        .iter()
        .filter(|l| l["type"] == "receive")
        .filter_map(|l| l["id"].as_u64())
        .collect();
    let (mut duplicates, mut lost) = (0, 0);
    for l in lines.iter().filter(|l| l["type"] == "datagram") {
        if l["fate"] == "lost" {
            assert!(!received.contains(&l["id"].as_u64().unwrap()), "{l}");
            lost += 1;
        }
        duplicates += u32::from(l["fate"] == "duplicate");
    }
    assert!(
        duplicates > 0 && lost > 0,
        "{duplicates} duplicates, {lost} lost"
    );
    let reasons: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["type"] == "receive" && l["outcome"] == "dropped")
        .filter_map(|l| l["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| *r == "duplicate" || *r == "too_old"),
        "{reasons:?}"
    );
}
