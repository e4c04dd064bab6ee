//! Tests of the chart over the hand-made trace `tests/data/chart-small.jsonl` and random ones.

use quickcheck::{quickcheck, Arbitrary, Gen};

use super::*;

const SMALL: &str = include_str!("../../tests/data/chart-small.jsonl");

fn svg(opts: &ChartOptions) -> Chart {
    render(SMALL, ChartFormat::Svg, opts).unwrap()
}

/// The `data-` attribute `name` of every element whose class list starts with `class` (empty
/// where it has none).
fn attrs(text: &str, class: &str, name: &str) -> Vec<String> {
    let open = format!("class=\"{class}");
    let key = format!(" {name}=\"");
    text.match_indices(&open)
        .map(|(i, _)| {
            let tag = &text[i..i + text[i..].find('>').unwrap_or(0)];
            let Some(at) = tag.find(&key).map(|a| a + key.len()) else {
                return String::new();
            };
            tag[at..at + tag[at..].find('"').unwrap_or(0)].to_string()
        })
        .collect()
}

#[test]
fn every_host_is_a_lifeline_in_header_order() {
    let c = svg(&ChartOptions::default());
    assert_eq!(
        attrs(&c.text, "lifeline\"", "data-host"),
        ["server", "c1", "nat", "c2"]
    );
    assert!(c.text.starts_with("<?xml"), "{}", &c.text[..40]);
}

#[test]
fn arrows_end_as_the_trace_says() {
    let c = svg(&ChartOptions::default());
    assert_eq!(
        c.summary.arrows, 14,
        "13 datagram copies and one forged receive"
    );
    let outcomes = attrs(&c.text, "arrow ", "data-outcome");
    let labels = attrs(&c.text, "arrow ", "data-label");
    let ids = attrs(&c.text, "arrow ", "data-id");
    let of = |id: &str| {
        let i = ids.iter().position(|x| x == id).unwrap();
        (labels[i].as_str(), outcomes[i].as_str())
    };
    assert_eq!(of("0"), ("nonce_request", "accepted"));
    assert_eq!(of("4"), ("reliable_message #1 sensors/temp", "lost"));
    assert_eq!(of("6").1, "dropped");
    assert_eq!(of("7"), ("ack 1", "accepted"));
    assert_eq!(of("8").1, "dropped");
    assert_eq!(of("9"), ("rpc_call #9 fn=401", "unreceived"));
    assert_eq!(of("10"), ("nonce_request", "forwarded"));
    assert_eq!(of("12"), ("psk_nonce", "blocked"));
    assert_eq!(
        attrs(&c.text, "drop\"", "data-reason"),
        ["duplicate", "forged", "bad_magic"]
    );
    assert_eq!(
        attrs(&c.text, "arrow ", "data-fate")
            .iter()
            .filter(|f| *f == "duplicate")
            .count(),
        1
    );
    // A lost copy is crossed out half-way and has no arrowhead.
    let lost = c.text.find("data-id=\"4\"").unwrap();
    let lost = &c.text[lost..lost + c.text[lost..].find("</g>").unwrap()];
    assert!(
        lost.contains("class=\"cross\"") && !lost.contains("marker-end"),
        "{lost}"
    );
}

#[test]
fn crash_to_restart_is_a_band_and_quiet_time_a_gap() {
    let c = svg(&ChartOptions::default());
    assert_eq!(attrs(&c.text, "band\"", "data-host"), ["server"]);
    assert_eq!(attrs(&c.text, "band\"", "data-t"), ["400000"]);
    // ... ending at the restart, not at the bottom of the chart.
    assert!(c
        .text
        .contains("<title>server down from 0.400000s to 5.400000s</title>"));
    let gaps = attrs(&c.text, "gap\"", "data-skipped-us");
    assert!(gaps.contains(&"4950000".to_string()), "{gaps:?}");
    // Events, commands and notes, the simulation's partition among them.
    let kinds = attrs(&c.text, "mark ", "data-sub");
    for k in [
        "peer_up",
        "delivered",
        "message",
        "command",
        "crash",
        "partition",
        "nat",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[test]
fn hosts_and_window_narrow_the_chart() {
    let c = svg(&ChartOptions::from_cli(None, None, Some("c1, server")));
    assert_eq!(attrs(&c.text, "lifeline\"", "data-host"), ["server", "c1"]);
    // The NAT's three datagrams are not drawn; the forged receive at the server is.
    assert_eq!(c.summary.arrows, 11);
    assert_eq!(c.summary.left_out_hosts, 3);
    let err = render(
        SMALL,
        ChartFormat::Svg,
        &ChartOptions::from_cli(None, None, Some("c9")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("c2"), "{err}");

    let c = svg(&ChartOptions::from_cli(Some(200.0), Some(310.0), None));
    assert_eq!(attrs(&c.text, "arrow ", "data-id"), ["5", "6", "7", "8"]);
    assert_eq!(c.summary.left_out_time, 10);
}

#[test]
fn the_cap_cuts_the_chart_and_says_so() {
    let opts = ChartOptions {
        max_arrows: 5,
        ..ChartOptions::default()
    };
    let c = svg(&opts);
    // Copies 5 and 6 leave at the same instant: the cut falls before both.
    assert_eq!(c.summary.arrows, 5);
    assert_eq!(c.summary.capped, 9);
    assert_eq!(c.summary.cut_at_us, Some(205_000));
    let line = c.summary.left_out_line().unwrap();
    assert!(line.contains("9 more"), "{line}");
    assert!(c.text.contains("class=\"summary\""));
    assert!(svg(&ChartOptions::default())
        .summary
        .left_out_line()
        .is_none());
}

#[test]
fn html_is_self_contained() {
    let c = render(SMALL, ChartFormat::Html, &ChartOptions::default()).unwrap();
    assert!(c.text.starts_with("<!DOCTYPE html>"));
    assert!(c.text.contains("<svg xmlns"));
    assert!(c.text.contains("id=\"pav-layout\""));
    // Nothing is fetched: no external script, style, image or font.
    for bad in ["src=", "href=", "@import", "url(http"] {
        assert!(!c.text.contains(bad), "{bad}");
    }
    assert_eq!(
        ChartFormat::from_path(Path::new("a/b.HTML")),
        Some(ChartFormat::Html)
    );
    assert_eq!(ChartFormat::from_path(Path::new("b.png")), None);
}

#[test]
fn a_broken_trace_names_its_line() {
    let broken = SMALL.replacen("\"fate\":\"sent\"", "\"fate\":7", 1);
    let err = render(&broken, ChartFormat::Svg, &ChartOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("bad trace: line 5:"), "{err}");
}

/// A random but well-formed trace: datagrams between three hosts, receives of some of them
/// (accepted or dropped), forged receives, events and crash/restart notes.
#[derive(Clone, Debug)]
struct RandomTrace(String);

impl Arbitrary for RandomTrace {
    fn arbitrary(g: &mut Gen) -> Self {
        let hosts = ["a", "b", "m"];
        let mut s = String::from(
            "{\"type\":\"header\",\"format\":\"pavillion-trace\",\"version\":1,\"hosts\":[\
             {\"name\":\"a\",\"role\":\"client\",\"addrs\":[\"1.1.1.1:1\"]},\
             {\"name\":\"b\",\"role\":\"server\",\"addrs\":[\"2.2.2.2:2\"]},\
             {\"name\":\"m\",\"role\":\"middlebox\",\"addrs\":[\"3.3.3.3:3\"]}]}\n",
        );
        let mut t = 0u64;
        let n = usize::arbitrary(g) % 60;
        for id in 0..n {
            t += u64::arbitrary(g) % 3_000_000;
            let from = *g.choose(&hosts).unwrap();
            let to = *g.choose(&["\"a\"", "\"b\"", "\"m\"", "null"]).unwrap();
            let fate = *g
                .choose(&["sent", "lost", "duplicate", "corrupted", "blocked"])
                .unwrap();
            let len = u8::arbitrary(g) % 4;
            s.push_str(&format!(
                "{{\"t\":{t},\"type\":\"datagram\",\"host\":\"{from}\",\"id\":{id},\"from\":\"x\",\
                 \"to\":\"y\",\"to_host\":{to},\"len\":{len},\"fate\":\"{fate}\",\"delay_us\":0,\
                 \"label\":\"op<{id}>\"}}\n"
            ));
            match u8::arbitrary(g) % 5 {
                0 => {}
                1 => s.push_str(&format!(
                    "{{\"t\":{},\"type\":\"receive\",\"host\":\"b\",\"id\":{id},\"from\":\"x\",\
                     \"outcome\":\"dropped\",\"reason\":\"forged\"}}\n",
                    t + 500
                )),
                2 => s.push_str(&format!(
                    "{{\"t\":{t},\"type\":\"receive\",\"host\":\"a\",\"id\":null,\"from\":\"x\",\
                     \"outcome\":\"accepted\"}}\n"
                )),
                3 => s.push_str(&format!(
                    "{{\"t\":{t},\"type\":\"note\",\"host\":\"{from}\",\"text\":\"n\",\
                     \"kind\":\"{}\"}}\n",
                    g.choose(&["crash", "restart", "other"]).unwrap()
                )),
                _ => s.push_str(&format!(
                    "{{\"t\":{},\"type\":\"receive\",\"host\":\"a\",\"id\":{id},\"from\":\"x\",\
                     \"outcome\":\"accepted\",\"reason\":null}}\n",
                    t + 1000
                )),
            }
        }
        RandomTrace(s)
    }
}

quickcheck! {
    /// Any well-formed trace charts: never more arrows than the cap, one element per arrow,
    /// every arrow inside the picture, and rows in time order.
    fn any_trace_charts_inside_its_picture(trace: RandomTrace, cap: u8) -> bool {
        let opts = ChartOptions { max_arrows: usize::from(cap % 40) + 1, ..ChartOptions::default() };
        let file = super::trace::parse(&trace.0).unwrap();
        let scene = layout::build(&file, &opts).unwrap();
        let c = render(&trace.0, ChartFormat::Svg, &opts).unwrap();
        let drawn = c.text.matches("<g class=\"arrow ").count();
        let ys_sorted = scene.axis.ys.windows(2).all(|w| w[0] < w[1]);
        let inside = scene.arrows.iter().all(|a| {
            let (y0, y1) = (scene.axis.y(a.t0), scene.axis.y(a.t1));
            y0 >= layout::TOP && y1 <= scene.height() && y0 <= y1
        });
        drawn == c.summary.arrows && drawn <= opts.max_arrows && ys_sorted && inside
            && !c.text.contains("op<")
    }

    /// Arbitrary bytes as a trace never panic: an error or a chart.
    fn arbitrary_text_never_panics(text: String) -> bool {
        let _ = render(&text, ChartFormat::Html, &ChartOptions::default());
        true
    }
}
