use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pavillion_proto::endpoint::{DropReason, Stats};

use super::server::{parse, Request};
use super::*;

/// One sample line of an exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch what a scraper would reject: every sample
/// line is `name{k="v",...} value`, every family has `# HELP` and `# TYPE` before its first
/// sample, a family is declared once, and its samples are contiguous.
fn parse_exposition(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut types = BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    let mut finished = std::collections::BTreeSet::new();
    let mut current: Option<String> = None;
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(helped.insert(name.clone()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let name = w.next().unwrap().to_owned();
            let kind = w.next().unwrap().to_owned();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                "{kind}"
            );
            assert!(helped.contains(&name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.clone(), kind).is_none(),
                "TYPE twice: {name}"
            );
            if let Some(c) = current.replace(name) {
                finished.insert(c);
            }
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().expect("a number")
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let mut map = BTreeMap::new();
        for kv in labels.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("k=v");
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .expect("quoted");
            assert!(map.insert(k.to_owned(), v.to_owned()).is_none());
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert_eq!(
            current.as_deref(),
            Some(family),
            "sample of {family} outside its family"
        );
        assert!(!finished.contains(family));
        samples.push(Sample {
            name: name.to_owned(),
            labels: map,
            value,
        });
    }
    (samples, types)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

fn stats_with_samples(rtts_us: &[u64]) -> Stats {
    let mut s = Stats::default();
    for us in rtts_us {
        s.rtt.record(Duration::from_micros(*us));
    }
    s
}

#[test]
fn every_counter_and_drop_reason_is_rendered_with_its_role() {
    let mut stats = Stats::default();
    stats.datagrams_received = 11;
    stats.datagrams_sent = 12;
    stats.handshakes = 2;
    stats.retransmissions = 5;
    stats.secrets_dropped = 7;
    let text = MetricsSnapshot::new(MetricsRole::Server, 3, stats).render();
    let (samples, types) = parse_exposition(&text);
    let role = [("role", "server")];
    assert_eq!(
        value(&samples, "pavillion_datagrams_received_total", &role),
        11.0
    );
    assert_eq!(
        value(&samples, "pavillion_datagrams_sent_total", &role),
        12.0
    );
    assert_eq!(value(&samples, "pavillion_handshakes_total", &role), 2.0);
    assert_eq!(
        value(&samples, "pavillion_retransmissions_total", &role),
        5.0
    );
    assert_eq!(
        value(&samples, "pavillion_secrets_dropped_total", &role),
        7.0
    );
    assert_eq!(value(&samples, "pavillion_sessions", &role), 3.0);
    assert_eq!(types["pavillion_sessions"], "gauge");
    assert_eq!(types["pavillion_handshakes_total"], "counter");
    assert_eq!(types["pavillion_rtt_seconds"], "histogram");
    for reason in DropReason::ALL {
        let v = value(
            &samples,
            "pavillion_drops_total",
            &[("role", "server"), ("reason", reason.name())],
        );
        assert_eq!(v, 0.0);
    }
    for c in COUNTERS {
        assert!(c.name.ends_with("_total"), "{}", c.name);
        assert_eq!(types[c.name], "counter");
    }
}

#[test]
fn the_rtt_histogram_is_cumulative_and_ends_in_inf_with_the_count() {
    let samples_us = [150, 900, 1_200, 1_300, 40_000, 2_000_000, 500_000_000];
    let stats = stats_with_samples(&samples_us);
    let text = MetricsSnapshot::new(MetricsRole::Client, 1, stats).render();
    let (samples, _) = parse_exposition(&text);
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == "pavillion_rtt_seconds_bucket")
        .map(|s| {
            let le = &s.labels["le"];
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s.value)
        })
        .collect();
    assert!(buckets.len() > 10);
    for w in buckets.windows(2) {
        assert!(w[0].0 < w[1].0, "le ascending: {w:?}");
        assert!(w[0].1 <= w[1].1, "counts cumulative: {w:?}");
    }
    let n = samples_us.len() as f64;
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, n));
    assert_eq!(value(&samples, "pavillion_rtt_seconds_count", &[]), n);
    let sum: u64 = samples_us.iter().sum();
    let got = value(&samples, "pavillion_rtt_seconds_sum", &[]);
    assert!((got - sum as f64 / 1e6).abs() < 1e-6, "{got}");
    // Each sample is counted at or under a bound within the histogram's resolution of it
    // (the 500 s one only under +Inf).
    for us in samples_us.iter().filter(|us| **us < 60_000_000) {
        let secs = *us as f64 / 1e6;
        let first = buckets.iter().find(|(le, _)| *le >= secs).unwrap();
        assert!(
            first.0 <= secs * 1.25 + 1e-6,
            "{us} µs lands under {}",
            first.0
        );
    }
    // Below the smallest sample nothing is counted.
    assert!(buckets
        .iter()
        .filter(|(le, _)| *le < 100e-6)
        .all(|(_, c)| *c == 0.0));
}

#[test]
fn several_roles_share_one_family_each() {
    let a = MetricsSnapshot::new(MetricsRole::Server, 1, stats_with_samples(&[1000]));
    let b = MetricsSnapshot::new(MetricsRole::Client, 2, Stats::default());
    let (samples, _) = parse_exposition(&render(&[a, b]));
    assert_eq!(
        value(&samples, "pavillion_sessions", &[("role", "client")]),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "pavillion_rtt_seconds_count",
            &[("role", "server")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "pavillion_rtt_seconds_count",
            &[("role", "client")]
        ),
        0.0
    );
}

#[test]
fn seconds_are_exact_decimals() {
    let s = |us| Seconds(Duration::from_micros(us)).to_string();
    assert_eq!(s(0), "0");
    assert_eq!(s(1), "0.000001");
    assert_eq!(s(125), "0.000125");
    assert_eq!(s(1_500_000), "1.5");
    assert_eq!(s(70_000_000), "70");
}

#[test]
fn percentiles_follow_the_samples() {
    assert_eq!(RttPercentiles::of(&Stats::default()), None);
    let mut us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
    us.push(5_000_000);
    let p = RttPercentiles::of(&stats_with_samples(&us)).unwrap();
    assert_eq!(p.samples, 101);
    assert!(
        p.p50 >= Duration::from_millis(50) && p.p50 <= Duration::from_millis(63),
        "{p:?}"
    );
    assert!(
        p.p90 >= Duration::from_millis(90) && p.p90 <= Duration::from_millis(113),
        "{p:?}"
    );
    assert!(p.p99 >= Duration::from_millis(99), "{p:?}");
    assert!(p.p50 <= p.p90 && p.p90 <= p.p99);
    let line = p.to_string();
    assert!(
        line.starts_with("rtt p50 ") && line.ends_with("(101 samples)"),
        "{line}"
    );
}

#[test]
fn requests_are_parsed_strictly() {
    let p = |s: &str| parse(Some(s.as_bytes()));
    assert_eq!(
        p("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"),
        Request::Metrics { head: false }
    );
    assert_eq!(
        p("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
        Request::Metrics { head: false }
    );
    assert_eq!(
        p("HEAD /metrics HTTP/1.1\r\n\r\n"),
        Request::Metrics { head: true }
    );
    assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
    assert_eq!(p("GET /metricsx HTTP/1.1\r\n\r\n"), Request::NotFound);
    assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
    assert_eq!(p("GET /metrics\r\n\r\n"), Request::Bad);
    assert_eq!(p("GET /metrics SPDY/3\r\n\r\n"), Request::Bad);
    assert_eq!(p("\u{0}\u{1}"), Request::Bad);
    assert_eq!(parse(None), Request::TooLarge);
}

fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_server_answers_metrics_404_and_oversized_requests_then_stops_when_dropped() {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = open.clone();
    let source = MetricsSource::one(move || {
        let mut s = Stats::default();
        s.handshakes = 4;
        still
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| MetricsSnapshot::new(MetricsRole::Relay, 0, s))
    });
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), source).unwrap();
    let addr = server.local_addr();
    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    let (samples, _) = parse_exposition(body);
    assert_eq!(
        value(&samples, "pavillion_handshakes_total", &[("role", "relay")]),
        4.0
    );
    assert!(exchange(addr, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(exchange(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_REQUEST + 10));
    assert!(exchange(addr, &big).starts_with("HTTP/1.1 431 "));
    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 ") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    open.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503 "));
    drop(server);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the port is closed once the server is dropped"
    );
}

#[test]
fn a_silent_client_holds_the_slot_only_until_the_timeout() {
    let source = MetricsSource::one(|| {
        Some(MetricsSnapshot::new(
            MetricsRole::Server,
            0,
            Stats::default(),
        ))
    });
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), source).unwrap();
    let _silent = TcpStream::connect(server.local_addr()).unwrap();
    let started = std::time::Instant::now();
    let answer = exchange(server.local_addr(), b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 "));
    assert!(started.elapsed() < IO_TIMEOUT * 3);
}
