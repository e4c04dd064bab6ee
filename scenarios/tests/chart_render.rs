//! Renders charts in headless Chromium and checks what a person would see: every host's
//! lifeline drawn with a real size inside the page, the arrow labels and the drop marks.
//!
//! The chart's HTML page writes its rendered layout (bounding boxes) as JSON into
//! `<pre id="pav-layout">`; Chromium's `--dump-dom` prints the DOM after the page's script ran,
//! so the test reads the layout from it. An SVG chart is checked the same way, inlined in a
//! page that carries the same kind of script.
//!
//! Skips (saying why) when Chromium is missing, unless `PAV_REQUIRE_TOOLS=1`, when it fails.
//! `PAV_CHROMIUM` names another browser binary.

use core::time::Duration;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pavillion_scenarios::chart::{render, ChartFormat, ChartOptions};
use pavillion_scenarios::{find, Params, Suite};
use serde_json::Value;

const SMALL: &str = include_str!("data/chart-small.jsonl");
const HOSTS: [&str; 4] = ["server", "c1", "nat", "c2"];
/// Chromium is killed after this long.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The layout script for an SVG chart inlined in a page (the HTML chart has its own).
const SVG_PAGE_SCRIPT: &str = r#"(function(){
function box(el){var r=el.getBoundingClientRect(),cs=getComputedStyle(el);
 return {x:r.left+scrollX,y:r.top+scrollY,w:r.width,h:r.height,
  visible:cs.display!=="none"&&cs.visibility!=="hidden"&&r.width+r.height>0};}
var out={page:{w:document.documentElement.scrollWidth,h:document.documentElement.scrollHeight},lifelines:[],arrows:[],drops:[]};
document.querySelectorAll(".lifeline").forEach(function(g){var b=box(g);b.host=g.dataset.host;out.lifelines.push(b);});
document.querySelectorAll(".arrow").forEach(function(g){var t=g.querySelector(":scope>text");var b=t?box(t):box(g);b.label=g.dataset.label;b.outcome=g.dataset.outcome;b.text=t?t.textContent:"";out.arrows.push(b);});
document.querySelectorAll(".drop").forEach(function(g){var b=box(g);b.reason=g.dataset.reason;out.drops.push(b);});
document.getElementById("pav-layout").textContent=JSON.stringify(out);
})();"#;

fn chromium() -> Option<PathBuf> {
    let required = std::env::var("PAV_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let candidates: Vec<PathBuf> = std::env::var_os("PAV_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    assert!(
        !required,
        "PAV_REQUIRE_TOOLS=1 but no Chromium at {candidates:?} (scripts/install-tools.sh installs it)"
    );
    eprintln!("skipped: no Chromium at {candidates:?} (scripts/install-tools.sh installs it)");
    None
}

/// Loads `page` in headless Chromium and returns the DOM after its scripts ran.
fn dump_dom(browser: &Path, dir: &Path, page: &Path) -> String {
    let profile = dir.join("profile");
    let out = dir.join("dom.html");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(out).unwrap()
}

/// The layout JSON the page's script wrote into `<pre id="pav-layout">`.
fn layout(dom: &str) -> Value {
    let start = dom
        .find("id=\"pav-layout\"")
        .and_then(|i| dom[i..].find('>').map(|j| i + j + 1))
        .expect("no #pav-layout in the dumped DOM");
    let end = start + dom[start..].find("</pre>").expect("unclosed #pav-layout");
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    assert!(!text.is_empty(), "the page's layout script did not run");
    serde_json::from_str(&text).expect("layout JSON")
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// Whether a box is drawn with a size, inside the page.
fn shown_inside(b: &Value, page: &Value) -> bool {
    let (x, y, w, h) = (num(b, "x"), num(b, "y"), num(b, "w"), num(b, "h"));
    b["visible"] == Value::Bool(true)
        && w > 0.0
        && h > 0.0
        && x >= 0.0
        && y >= 0.0
        && x + w <= num(page, "w") + 0.5
        && y + h <= num(page, "h") + 0.5
}

/// What is wrong with what the page shows of the hand-made trace, if anything.
fn problems(layout: &Value) -> Vec<String> {
    let mut out = lifeline_problems(layout, &HOSTS);
    let page = &layout["page"];
    let arrows = layout["arrows"].as_array().cloned().unwrap_or_default();
    for label in [
        "nonce_request",
        "psk_nonce",
        "session_established",
        "reliable_message #1 sensors/temp",
        "ack 1",
        "rpc_call #9 fn=401",
    ] {
        let seen = arrows
            .iter()
            .any(|a| a["text"] == label && shown_inside(a, page));
        if !seen {
            out.push(format!("no visible arrow label `{label}`"));
        }
    }
    let drops = layout["drops"].as_array().cloned().unwrap_or_default();
    for reason in ["duplicate", "forged", "bad_magic"] {
        if !drops
            .iter()
            .any(|d| d["reason"] == reason && shown_inside(d, page))
        {
            out.push(format!("no visible drop mark `{reason}`"));
        }
    }
    out
}

/// Which of `hosts` have no lifeline drawn tall and inside the page.
fn lifeline_problems(layout: &Value, hosts: &[&str]) -> Vec<String> {
    let page = &layout["page"];
    let mut out = Vec::new();
    let lifelines = layout["lifelines"].as_array().cloned().unwrap_or_default();
    for host in hosts {
        match lifelines.iter().find(|l| l["host"] == *host) {
            Some(l) if shown_inside(l, page) && num(l, "h") > 100.0 => {}
            Some(l) => out.push(format!("lifeline {host} not shown: {l}")),
            None => out.push(format!("no lifeline for {host}")),
        }
    }
    out
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pav-chart-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn html_chart_shows_lifelines_labels_and_drops() {
    let Some(browser) = chromium() else { return };
    let dir = temp_dir("html");
    let chart = render(SMALL, ChartFormat::Html, &ChartOptions::default()).unwrap();
    let page = dir.join("chart.html");
    std::fs::write(&page, &chart.text).unwrap();
    let found = problems(&layout(&dump_dom(&browser, &dir, &page)));
    assert!(found.is_empty(), "{found:#?}");

    // The check can fail: the same page with its lifelines not drawn is caught.
    let hidden = chart
        .text
        .replace("</style>", ".pav-chart .lifeline{display:none}</style>");
    std::fs::write(&page, hidden).unwrap();
    let found = problems(&layout(&dump_dom(&browser, &dir, &page)));
    assert_eq!(
        found.iter().filter(|p| p.starts_with("lifeline")).count(),
        HOSTS.len(),
        "{found:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn svg_chart_shows_lifelines_labels_and_drops() {
    let Some(browser) = chromium() else { return };
    let dir = temp_dir("svg");
    let chart = render(SMALL, ChartFormat::Svg, &ChartOptions::default()).unwrap();
    let svg = chart.text.split_once("?>").map_or(&*chart.text, |(_, s)| s);
    let page = dir.join("page.html");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><body>{svg}<pre id=\"pav-layout\"></pre>\
             <script>{SVG_PAGE_SCRIPT}</script></body></html>"
        ),
    )
    .unwrap();
    let found = problems(&layout(&dump_dom(&browser, &dir, &page)));
    assert!(found.is_empty(), "{found:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A real run, traced and charted: the NAT scenario's three hosts are drawn, and its handshake
/// and messages are labelled with their decoded operations.
#[test]
fn real_run_chart_shows_its_hosts_and_operations() {
    let Some(browser) = chromium() else { return };
    let scenario = find("nat-rebind").unwrap();
    let params = Params {
        trace: true,
        scenario: scenario.name,
        ..Params::new(1, Suite::Psk)
    };
    let outcome = (scenario.run)(&params);
    let trace = outcome.trace.expect("a traced run keeps its trace");
    let opts = ChartOptions {
        to_us: Some(2_000_000),
        ..ChartOptions::default()
    };
    let chart = render(&trace, ChartFormat::Html, &opts).unwrap();
    let dir = temp_dir("real");
    let page = dir.join("chart.html");
    std::fs::write(&page, &chart.text).unwrap();
    let layout = layout(&dump_dom(&browser, &dir, &page));
    let found = lifeline_problems(&layout, &["server", "nat", "client"]);
    assert!(found.is_empty(), "{found:#?}");
    let page_box = &layout["page"];
    let labels: Vec<String> = layout["arrows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| shown_inside(a, page_box))
        .filter_map(|a| a["text"].as_str().map(String::from))
        .collect();
    for op in ["nonce_request", "psk_nonce", "reliable_message", "ack"] {
        assert!(
            labels.iter().any(|l| l.starts_with(op)),
            "no visible `{op}` label in {labels:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
